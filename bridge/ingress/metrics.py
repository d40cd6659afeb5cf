"""Prometheus metrics of the ingress, registered on a registry of the caller's choice.

The children of the per-request series (by shop, by shop and topic) are resolved once and kept:
``labels()`` takes a lock and builds a key on every call. Their label values are bounded by the
configuration (configured shops plus ``unknown``, the topics of one prefix), never by traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True, slots=True)
class ShopSeries:
    """The children of one shop's per-request series."""

    received: Counter
    duplicates: Counter


@dataclass(frozen=True, slots=True)
class TopicSeries:
    """The children of one shop's series on one topic."""

    accepted: Counter
    publish_seconds: Histogram


@dataclass(frozen=True, slots=True)
class IngressMetrics:
    received: Counter
    accepted: Counter
    duplicates: Counter
    rejected: Counter
    publish_seconds: Histogram
    in_flight: Gauge
    _shops: dict[str, ShopSeries] = field(default_factory=dict)
    _topics: dict[tuple[str, str], TopicSeries] = field(default_factory=dict)

    def shop(self, label: str) -> ShopSeries:
        """``label``'s children (a configured shop id or ``unknown``), resolved once."""
        series = self._shops.get(label)
        if series is None:
            series = ShopSeries(self.received.labels(label), self.duplicates.labels(label))
            self._shops[label] = series
        return series

    def topic(self, shop: str, topic: str) -> TopicSeries:
        """The accepted counter and publish histogram of ``shop`` on ``topic``, resolved once."""
        series = self._topics.get((shop, topic))
        if series is None:
            accepted = self.accepted.labels(shop, topic)
            series = TopicSeries(accepted, self.publish_seconds.labels(topic))
            self._topics[shop, topic] = series
        return series

    @classmethod
    def create(
        cls, registry: CollectorRegistry, in_flight: Callable[[], float] | None = None
    ) -> IngressMetrics:
        """The series on ``registry``; ``in_flight`` reads the number of webhooks being handled
        at scrape time (no lock taken per request)."""
        metrics = cls(
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
        if in_flight is not None:
            metrics.in_flight.set_function(in_flight)
        return metrics
