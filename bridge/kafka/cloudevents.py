"""CloudEvents Kafka binary binding: event attributes as ``ce_*`` record headers."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.events import CanonicalEvent


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def attributes(
    id: str, source: str, type: str, time: datetime, subject: str | None = None
) -> list[tuple[str, bytes]]:
    """CloudEvents headers for a record the bridge itself emits (dead letters, alerts)."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type.encode()),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    headers += [("ce_time", rfc3339(time).encode()), ("content-type", b"application/json")]
    return headers


def headers_for(
    event: CanonicalEvent, received_at: datetime, traceparent: str | None = None
) -> list[tuple[str, bytes]]:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("ce_subject", event.entity_id.encode()),
        ("ce_time", rfc3339(event.time or received_at).encode()),
        ("content-type", b"application/json"),
    ]
    if traceparent:
        headers.append(("traceparent", traceparent.encode("ascii", "replace")))
    return headers
