"""What the ingress can judge from the request line and headers alone, before any body.

Also the two header values it passes on or logs: a ``traceparent`` only in W3C form, and
request text (paths, shop ids) only bounded and with control characters escaped.
"""

from __future__ import annotations

import re

# W3C Trace Context: version 00, 16-byte trace id, 8-byte parent id, 1-byte flags; lower hex.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
LOG_TEXT_LIMIT = 200


def is_json_media_type(value: str | None) -> bool:
    """JSON or a ``+json`` type; a missing Content-Type is tolerated (some platforms omit it)."""
    if value is None or not value.strip():
        return True
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def valid_traceparent(value: str | None) -> str | None:
    """``value`` when it is a W3C ``traceparent`` (version 00, ids not all zeros), else None."""
    if value is None:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return match[0]


def printable(text: str, limit: int = LOG_TEXT_LIMIT) -> str:
    """``text`` safe for a log line: at most ``limit`` characters, control characters escaped."""
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return escaped[:limit] + ("…" if len(text) > limit or len(escaped) > limit else "")
