"""What happened to a claimed row, recorded in the outbox first and then reported to Kafka.

The database is the source of truth: ``mark_done`` / ``mark_retry`` / ``mark_dead`` come first, and
only when they succeed does a record go to ``commerce.deliveries`` (and a dead letter to
``commerce.dlq``), off the send path through :class:`~bridge.relay.deliveries.Reporter`. A mark
that returns False means the row's lease was taken over by another relay: the result is dropped
(logged, counted as ``lost``) and nothing contradictory is published; the new owner reports.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from bridge.config import RelayConfig
from bridge.errors import PlatformError
from bridge.kafka.topics import Topics
from bridge.log import get_logger
from bridge.outbox.store import OutboxRow, OutboxStore
from bridge.relay.backoff import decide
from bridge.relay.deliveries import (
    DeliveryStatus,
    Reporter,
    dead_letter_document,
    delivery_document,
    headers,
    record_key,
)
from bridge.relay.marks import DoneMarks
from bridge.relay.metrics import RelayMetrics

log = get_logger(__name__)


class Outcomes:
    """Marks rows done / retry / dead for one relay (``owner``) and reports each outcome."""

    def __init__(
        self,
        store: OutboxStore,
        owner: str,
        settings: RelayConfig,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        metrics: RelayMetrics,
        reporter: Reporter,
        topics: Topics,
        min_defer: float,
    ) -> None:
        self.store = store
        self.owner = owner
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.metrics = metrics
        self.reporter = reporter
        self.topics = topics
        self.min_defer = min_defer
        self.marks = DoneMarks(store, owner, clock)

    async def record(
        self,
        row: OutboxRow,
        platform: str,
        error: PlatformError | None,
        defer: Callable[[float], None],
    ) -> None:
        """The outcome of one sent attempt; ``defer(until)`` pauses the caller's batch (429)."""
        store, owner, now = self.store, self.owner, self.clock()
        if error is None:
            marked = await self.marks.done(row.id)  # with the other answers of this moment
            if marked is None:
                self._lost(row, "done")
                return
            now = marked
            self.metrics.delivery_seconds.labels(platform).observe(now - row.created_at)
            self._report(row, "done", now)
            return
        decision = decide(
            error, row.attempts, self.settings, now, self.rng, min_defer=self.min_defer
        )
        if error.status == 429:
            self.metrics.rate_limited.labels(row.shop).inc()
        if decision.defer_until is not None:
            defer(decision.defer_until)  # first: the batch must not send on while we write
            await store.defer(
                row.shop, decision.defer_until, now, max_defer=self.settings.max_retry_after
            )
            log.info("relay_shop_deferred", shop=row.shop, seconds=decision.defer_until - now)
        if decision.verdict == "dead":
            if not await store.mark_dead(row.id, owner, error.detail, now):
                self._lost(row, "dead")
                return
            log.warning(
                "relay_dead", shop=row.shop, outbox_id=row.id, attempt=row.attempts,
                status=error.status, error=error.detail,
            )  # fmt: skip
            self.metrics.dead_letters.labels(row.shop).inc()
            self._report(row, "dead", now, http_status=error.status, error=error.detail)
            self.reporter.submit(
                self.topics.dlq,
                record_key(row),
                dead_letter_document(row, error.detail, now),
                headers("dead_letter", row, now, "delivery_failed"),
            )
            return
        due = decision.next_attempt_at if decision.next_attempt_at is not None else now
        if not await store.mark_retry(row.id, owner, due, error.detail, now):
            self._lost(row, "retry")
            return
        log.info(
            "relay_retry", shop=row.shop, outbox_id=row.id, attempt=row.attempts,
            status=error.status, error=error.detail, delay=round(due - now, 3),
        )  # fmt: skip
        self._report(
            row, "retry", now, http_status=error.status, error=error.detail, next_attempt_at=due
        )

    async def put_back(self, rows: list[OutboxRow], due: float, why: str) -> None:
        """Return claimed rows unsent, due again at ``due``; their claim is not an attempt, so
        put-backs never bring a row closer to ``max_attempts``. Nothing is published: a put-back
        is not an outcome (no request was made), only counted (``outcome="unsent"``)."""
        if not rows:
            return
        now = self.clock()
        due = max(now, due)
        reason = f"not sent: {why}"
        ids = [row.id for row in rows]
        returned = await self.store.mark_retry_many(ids, self.owner, due, reason, now, sent=False)
        for row in rows:
            if row.id in returned:
                self.metrics.attempts.labels(row.shop, "unsent").inc()
            else:
                self._lost(row, "retry")
        log.info(
            "relay_put_back", shop=rows[0].shop, rows=len(returned), why=why,
            due_in=round(due - now, 3),
        )  # fmt: skip

    async def close(self) -> None:
        """The last batch of done marks is written."""
        await self.marks.close()

    def _report(
        self,
        row: OutboxRow,
        status: DeliveryStatus,
        now: float,
        *,
        http_status: int | None = None,
        error: str | None = None,
        next_attempt_at: float | None = None,
    ) -> None:
        """Count the outcome and publish the delivery record of this attempt."""
        self.metrics.attempts.labels(row.shop, status).inc()
        document = delivery_document(
            row, status, now, http_status=http_status, error=error, next_attempt_at=next_attempt_at
        )
        self.reporter.submit(
            self.topics.deliveries, record_key(row), document, headers("delivery", row, now, status)
        )

    def _lost(self, row: OutboxRow, outcome: str) -> None:
        """The row's lease was taken over: its new owner reports; this result is dropped."""
        self.metrics.attempts.labels(row.shop, "lost").inc()
        log.warning("relay_lease_lost", shop=row.shop, outbox_id=row.id, dropped=outcome)
