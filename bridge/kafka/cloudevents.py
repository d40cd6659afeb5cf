"""CloudEvents Kafka binary binding: event attributes as ``ce_*`` record headers."""

from __future__ import annotations

from datetime import datetime

from bridge.events import CanonicalEvent
from bridge.times import rfc3339


def binary_headers(
    *, id: str, source: str, type: str, subject: str | None, time: datetime
) -> list[tuple[str, bytes]]:
    """The ``ce_*`` headers of one JSON event (every record the bridge publishes uses these)."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type.encode()),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    headers += [
        ("ce_time", rfc3339(time, "milliseconds").encode()),
        ("content-type", b"application/json"),
    ]
    return headers


def attributes(
    id: str, source: str, type: str, time: datetime, subject: str | None = None
) -> list[tuple[str, bytes]]:
    """CloudEvents headers for a record the bridge itself emits (dead letters, alerts)."""
    return binary_headers(id=id, source=source, type=type, subject=subject, time=time)


def headers_for(
    event: CanonicalEvent,
    received_at: datetime,
    traceparent: str | None = None,
    id: str | None = None,
) -> list[tuple[str, bytes]]:
    """The headers of ``event``'s record; ``id`` when it is published under another id than its
    own (a later change of the same entity, see ``bridge.ingress.dedup``)."""
    headers = binary_headers(
        id=event.id if id is None else id,
        source=event.source,
        type=event.type,
        subject=event.entity_id,
        time=event.time or received_at,
    )
    if traceparent:
        headers.append(("traceparent", traceparent.encode("ascii", "replace")))
    return headers
