"""Records as consumer apps see them: bridge-owned, decoded, never aiokafka types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """The CloudEvents attributes of a record (Kafka binary binding, ``ce_*`` headers)."""

    id: str | None
    source: str | None
    type: str | None
    time: str | None
    specversion: str | None = None
    subject: str | None = None  # ``ce_subject``: the entity id on the commerce.* entity topics


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record handed to a consumer app.

    ``value`` is the JSON-decoded value (a canonical event for the commerce.* entity topics, a
    command on commerce.commands) or None when it is not valid JSON; ``raw`` is the value's bytes
    as they were on the topic, ``decode_error`` says why ``value`` is None.
    """

    topic: str
    partition: int
    offset: int
    key: str | None
    ce: CloudEvent
    headers: Mapping[str, bytes]
    value: Any
    raw: bytes
    timestamp_ms: int
    decode_error: str | None = None

    @property
    def position(self) -> str:
        """``topic:partition:offset``, unique per record of a cluster."""
        return f"{self.topic}:{self.partition}:{self.offset}"
