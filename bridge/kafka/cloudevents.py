"""CloudEvents Kafka binary binding: event attributes as ``ce_*`` record headers."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.events import CanonicalEvent


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def binary_headers(
    *, id: str, source: str, type: str, subject: str, time: datetime
) -> list[tuple[str, bytes]]:
    """The ``ce_*`` headers of one JSON event (every record the bridge publishes uses these)."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", rfc3339(time).encode()),
        ("content-type", b"application/json"),
    ]


def headers_for(
    event: CanonicalEvent, received_at: datetime, traceparent: str | None = None
) -> list[tuple[str, bytes]]:
    headers = binary_headers(
        id=event.id,
        source=event.source,
        type=event.type,
        subject=event.entity_id,
        time=event.time or received_at,
    )
    if traceparent:
        headers.append(("traceparent", traceparent.encode("ascii", "replace")))
    return headers
