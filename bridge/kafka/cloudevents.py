"""CloudEvents Kafka binary binding: event attributes as ``ce_*`` record headers."""

from __future__ import annotations

from datetime import datetime

from bridge.events import CanonicalEvent
from bridge.times import rfc3339


def headers_for(
    event: CanonicalEvent, received_at: datetime, traceparent: str | None = None
) -> list[tuple[str, bytes]]:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("ce_subject", event.entity_id.encode()),
        ("ce_time", rfc3339(event.time or received_at, "milliseconds").encode()),
        ("content-type", b"application/json"),
    ]
    if traceparent:
        headers.append(("traceparent", traceparent.encode("ascii", "replace")))
    return headers
