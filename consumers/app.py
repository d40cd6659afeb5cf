"""What a consumer-group application is: a small object the shared runtime runs.

The runtime (``consumers.runtime``) owns the consume loop, the outbox store and Kafka publisher
lifecycle, probes and metrics, SIGTERM, and commits each partition's offset only after the app's
database transaction committed. An app only decides what a batch of records means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bridge.config import Config
from bridge.kafka.publisher import Publisher
from bridge.kafka.records import Record
from bridge.kafka.topics import Topics
from bridge.outbox.store import OutboxStore, OutboxTx


@dataclass(frozen=True, slots=True)
class AppContext:
    """What the runtime gives an app at start-up."""

    config: Config
    topics: Topics
    store: OutboxStore
    publisher: Publisher


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record an app wants published once its transaction committed (dead letter, alert)."""

    topic: str
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()


class ConsumerApp(Protocol):
    """One consumer-group application (``commerce-bridge consume NAME``)."""

    name: str  # the NAME of ``consume NAME``
    group_id: str  # the Kafka consumer group

    def topics(self, topics: Topics) -> Sequence[str]:
        """The topics this app reads."""

    async def start(self, ctx: AppContext) -> None:
        """Optional start-up step (after the store is migrated and the publisher connected)."""

    async def handle(self, tx: OutboxTx, records: Sequence[Record]) -> Sequence[Outgoing]:
        """Handle records of one partition (offset order) inside ``tx``.

        Raising rolls ``tx`` back. What it returns is published after the commit and before the
        offset commit (so a crash in between publishes it again: at-least-once). Be idempotent:
        records come again after a crash or rebalance, and a batch that keeps failing is handed
        over again one record at a time (each in a savepoint) to find the record that fails.
        """

    async def stop(self) -> None:
        """Release what ``start`` took."""


@dataclass(frozen=True, slots=True)
class AppSpec:
    """How an app module offers its app to ``consumers.registry`` (module attribute ``SPEC``)."""

    name: str  # the NAME of ``consume NAME``, equal to the app's ``name``
    summary: str  # one line for ``commerce-bridge consume --help``
    create: Callable[[], ConsumerApp]  # configuration comes later, in ``start(ctx)``
