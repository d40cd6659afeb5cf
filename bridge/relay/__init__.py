"""The relay: outbox rows to the platforms' write APIs, rate limited, retried, idempotent.

Invariants: docs/relay.md. ``Relay`` is the engine; ``commerce-bridge relay``
(:mod:`bridge.relay.cli`) runs
it as a process with its store, HTTP client, platform clients, Kafka publisher and /metrics.
"""

from bridge.relay.backoff import Decision, backoff_delay, ceiling, decide
from bridge.relay.lanes import RelayOptions
from bridge.relay.metrics import RelayMetrics
from bridge.relay.relay import Relay

__all__ = [
    "Decision",
    "Relay",
    "RelayMetrics",
    "RelayOptions",
    "backoff_delay",
    "ceiling",
    "decide",
]
