"""What the app says about each applied input: a log line, metrics, an oversold alert."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.log import get_logger
from consumers.app import Outgoing
from consumers.inventory_sync import alerts
from consumers.inventory_sync.metrics import SyncMetrics
from consumers.inventory_sync.outcome import Outcome
from consumers.inventory_sync.state import Kind
from consumers.inventory_sync.transaction import Queued

log = get_logger(__name__)

_QUIET = frozenset({Kind.ECHO, Kind.DUPLICATE, Kind.IGNORED, Kind.IN_FLIGHT})


class Reporter:
    """Turns core outcomes into logs, metrics and alert records for ``alert_topic``."""

    def __init__(self, metrics: SyncMetrics, alert_topic: str) -> None:
        self.metrics = metrics
        self.alert_topic = alert_topic

    def outcome(
        self, group: str, outcome: Outcome, now: float, source: str | None
    ) -> Outgoing | None:
        """Note one input's outcome; the oversold alert to publish when it left the pool < 0."""
        self.metrics.inputs.labels(outcome.kind.value).inc()
        fields = {
            "group": group,
            "member": outcome.member,
            "kind": outcome.kind.value,
            "delta": outcome.delta,
            "pool": outcome.pool,
            "source": source,
        }
        if outcome.kind is Kind.DRIFT:
            self.metrics.drift.labels(group).inc()
            log.warning("sync_drift", **fields)
        elif outcome.kind in _QUIET:
            log.debug("sync_input", **fields, settled=list(outcome.settled))
        else:
            log.info("sync_input", **fields)
        if outcome.expired:
            log.warning(
                "sync_echo_timeout",
                group=group,
                member=outcome.member,
                outbox_ids=list(outcome.expired),
            )
        if not (outcome.oversold and outcome.delta < 0 and outcome.pool is not None):
            return None
        self.metrics.oversold.labels(group).inc()
        log.warning("sync_oversold", **fields)
        return alerts.oversold(
            self.alert_topic, group, outcome.pool, outcome.delta, outcome.member, now, source
        )

    def queued(self, rows: Sequence[Queued]) -> None:
        for row in rows:
            if not row.duplicate:
                self.metrics.writes.labels(row.shop).inc()
            log.info(
                "sync_write_queued",
                group=row.group,
                member=row.member,
                shop=row.shop,
                target=row.target,
                quantity=row.quantity,
                outbox_id=row.outbox_id,
                duplicate=row.duplicate,
                superseded=row.superseded,
            )
