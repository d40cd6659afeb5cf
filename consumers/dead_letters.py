"""Dead letters of consumer apps: a ``schemas/dlq.v1.json`` document as an :class:`Outgoing`. Pure.

Kinds written here: ``invalid_command`` and ``idempotency_conflict`` (the commands app),
``poison_record`` (the runtime, for a record an app failed on alone). The CloudEvents id is a
function of the kind and the record's position, so a dead letter published again after a crash
carries the same ``ce_id``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from bridge.kafka.cloudevents import attributes, rfc3339
from bridge.kafka.records import Record
from consumers.app import Outgoing

MAX_REASON = 1000


def _field(value: Any, name: str) -> str | None:
    found = value.get(name) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def original_of(record: Record) -> Any:
    """The record's value as received: its JSON, or its text when it was not JSON."""
    if record.decode_error is None:
        return record.value
    return record.raw.decode("utf-8", "replace")


def dead_letter(
    kind: str,
    reason: str,
    record: Record,
    now: float,
    *,
    topic: str,
    app: str,
    outbox_id: int | None = None,
) -> Outgoing:
    """The dead letter (on ``topic``, the dlq topic) of ``record``, refused by ``app``."""
    moment = datetime.fromtimestamp(now, UTC)
    document = {
        "kind": kind,
        "reason": (reason or kind)[:MAX_REASON],
        "at": rfc3339(moment),
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "shop": _field(record.value, "shop"),
        "outbox_id": outbox_id,
        "idempotency_key": _field(record.value, "idempotency_key"),
        "original": original_of(record),
    }
    headers = attributes(
        id=f"{kind}:{record.position}",
        source=f"/bridge/consumers/{app}",
        type=f"commerce.dead_letter.{kind}",
        time=moment,
        subject=record.key,
    )
    key = (record.key or "").encode()
    return Outgoing(topic=topic, key=key, value=orjson.dumps(document), headers=headers)
