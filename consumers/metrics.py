"""Prometheus metrics of the consumer runtime, labelled by consumer group and topic."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class ConsumerMetrics:
    records: Counter
    failures: Counter
    poison: Counter
    lag: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ConsumerMetrics:
        return cls(
            records=Counter(
                "bridge_consumer_records",
                "Records handled and committed",
                ["group", "topic"],
                registry=registry,
            ),
            failures=Counter(
                "bridge_consumer_batch_failures",
                "Batches whose handling, publishing or transaction failed (retried)",
                ["group", "topic"],
                registry=registry,
            ),
            poison=Counter(
                "bridge_consumer_poison_records",
                "Records the app failed on alone, dead-lettered as poison_record",
                ["group", "topic"],
                registry=registry,
            ),
            lag=Gauge(
                "bridge_consumer_lag",
                "Records behind the partition's high watermark",
                ["group", "topic", "partition"],
                registry=registry,
            ),
        )
