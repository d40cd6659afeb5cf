"""Prometheus metrics of the ingress, registered on a registry of the caller's choice."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True, slots=True)
class IngressMetrics:
    received: Counter
    accepted: Counter
    duplicates: Counter
    rejected: Counter
    publish_seconds: Histogram
    in_flight: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IngressMetrics:
        return cls(
            received=Counter(
                "bridge_webhooks_received", "Webhooks received", ["shop"], registry=registry
            ),
            accepted=Counter(
                "bridge_webhooks_accepted",
                "Webhooks published and acknowledged by Kafka",
                ["shop", "topic"],
                registry=registry,
            ),
            duplicates=Counter(
                "bridge_webhooks_duplicate",
                "Redeliveries answered without publishing again",
                ["shop"],
                registry=registry,
            ),
            rejected=Counter(
                "bridge_webhooks_rejected",
                "Webhooks rejected, by reason",
                ["shop", "reason"],
                registry=registry,
            ),
            publish_seconds=Histogram(
                "bridge_publish_seconds",
                "Time from publish to Kafka acknowledgement",
                ["topic"],
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4),
                registry=registry,
            ),
            in_flight=Gauge(
                "bridge_webhooks_in_flight", "Webhooks being processed", registry=registry
            ),
        )
