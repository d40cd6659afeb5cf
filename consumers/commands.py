"""``commerce-bridge consume commands``: group ``bridge-commands`` moves commands into the outbox.

Valid commands become outbox rows (in the runtime's transaction for the batch); invalid ones are
dead-lettered (``invalid_command``) with the reason, and so is a command whose idempotency key the
shop already used for different content (``idempotency_conflict``): nothing is dropped silently.
Replays are harmless: the outbox answers a known key with the same content as a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

from bridge.commands import InvalidCommand, parse_command, to_write
from bridge.kafka.records import Record
from bridge.kafka.topics import Topics
from bridge.log import get_logger
from bridge.outbox.store import OutboxTx
from consumers.app import AppContext, AppSpec, Outgoing
from consumers.dead_letters import dead_letter

GROUP = "bridge-commands"
log = get_logger(__name__)


class CommandsApp:
    """``commerce.commands`` → outbox rows; refused commands → ``commerce.dlq``."""

    name = "commands"

    def __init__(self, group_id: str = GROUP, clock: Callable[[], float] = time.time) -> None:
        self.group_id = group_id
        self.clock = clock
        self._shops: Collection[str] = ()
        self._dlq = Topics().dlq

    def topics(self, topics: Topics) -> Sequence[str]:
        return [topics.commands]

    async def start(self, ctx: AppContext) -> None:
        self._shops = frozenset(ctx.config.shops)
        self._dlq = ctx.topics.dlq

    async def stop(self) -> None:
        return None

    async def handle(self, tx: OutboxTx, records: Sequence[Record]) -> list[Outgoing]:
        now = self.clock()
        refused: list[Outgoing] = []
        for record in records:
            bound = log.bind(partition=record.partition, offset=record.offset)
            try:
                command = parse_command(record.raw, self._shops)
            except InvalidCommand as exc:
                bound.warning("command_rejected", reason=exc.reason)
                refused.append(self._refuse("invalid_command", exc.reason, record, now))
                continue
            result = await tx.add(to_write(command), now)
            if getattr(result, "conflict", False):  # AddResult.conflict: same key, other content
                reason = (
                    f"idempotency key already used by shop {command.shop!r} for a different "
                    f"command (outbox row {result.id})"
                )
                bound.warning("command_conflict", shop=command.shop, outbox_id=result.id)
                refused.append(self._refuse("idempotency_conflict", reason, record, now, result.id))
                continue
            bound.info(
                "command_queued",
                shop=command.shop,
                command_id=command.id,
                outbox_id=result.id,
                duplicate=result.duplicate,
                superseded=result.superseded,
            )
        return refused

    def _refuse(
        self, kind: str, reason: str, record: Record, now: float, outbox_id: int | None = None
    ) -> Outgoing:
        return dead_letter(
            kind, reason, record, now, topic=self._dlq, app=self.name, outbox_id=outbox_id
        )


SPEC = AppSpec(
    name=CommandsApp.name,
    summary=f"commerce.commands → outbox rows; refused commands → commerce.dlq (group {GROUP})",
    create=CommandsApp,
)
