"""Prometheus metrics of the relay, registered on a registry of the caller's choice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Queue-to-done latency: a write normally leaves within seconds; retries push it to minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)


@dataclass(frozen=True, slots=True)
class RelayMetrics:
    outbox_rows: Gauge
    delivery_seconds: Histogram
    attempts: Counter
    rate_limited: Counter
    dead_letters: Counter
    publish_failures: Counter
    active_lanes: Gauge
    _seen: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RelayMetrics:
        return cls(
            outbox_rows=Gauge(
                "bridge_outbox_rows",
                "Outbox rows by shop and status (refreshed every few seconds)",
                ["shop", "status"],
                registry=registry,
            ),
            delivery_seconds=Histogram(
                "bridge_relay_delivery_seconds",
                "Time from a write entering the outbox to the platform accepting it",
                ["platform"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            attempts=Counter(
                "bridge_relay_attempts",
                "Send attempts by outcome: done, retry, dead, lost (lease taken over: result "
                "dropped), unsent (claimed, put back without sending)",
                ["shop", "outcome"],
                registry=registry,
            ),
            rate_limited=Counter(
                "bridge_relay_429", "429 answers from the platform", ["shop"], registry=registry
            ),
            dead_letters=Counter(
                "bridge_relay_dead_letters",
                "Writes that failed permanently (status dead, sent to the dlq topic)",
                ["shop"],
                registry=registry,
            ),
            publish_failures=Counter(
                "bridge_relay_publish_failures",
                "Delivery results or dead letters Kafka did not take (dropped, the DB has them)",
                ["topic", "reason"],
                registry=registry,
            ),
            active_lanes=Gauge(
                "bridge_relay_active_lanes", "Shops this relay is sending to now", registry=registry
            ),
        )

    def set_depth(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Set ``bridge_outbox_rows`` from ``store.depth()``; vanished pairs drop to zero."""
        for key in self._seen - set(counts):
            self.outbox_rows.labels(*key).set(0)
        for (shop, status), count in counts.items():
            self.outbox_rows.labels(shop, status).set(count)
        self._seen.update(counts)
