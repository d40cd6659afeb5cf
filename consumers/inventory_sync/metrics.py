"""The inventory-sync app's Prometheus metrics (served by the consumer runtime's /metrics)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True, slots=True)
class SyncMetrics:
    inputs: Counter
    writes: Counter
    oversold: Counter
    drift: Counter
    reconcile_reads: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> SyncMetrics:
        return cls(
            inputs=Counter(
                "bridge_inventory_inputs",
                "Stock inputs applied, by what they meant (echo, external, order, drift, ...)",
                ["kind"],
                registry=registry,
            ),
            writes=Counter(
                "bridge_inventory_writes",
                "set_stock rows queued in the outbox",
                ["shop"],
                registry=registry,
            ),
            oversold=Counter(
                "bridge_inventory_oversold",
                "Changes that left a sync group's pool below zero",
                ["group"],
                registry=registry,
            ),
            drift=Counter(
                "bridge_inventory_drift",
                "Reconcile found a member's real level differing with no write in flight",
                ["group"],
                registry=registry,
            ),
            reconcile_reads=Counter(
                "bridge_inventory_reconcile_reads",
                "Member levels read through the platform API by reconcile, by result",
                ["shop", "result"],
                registry=registry,
            ),
        )
