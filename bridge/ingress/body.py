"""The webhook body: :func:`bridge.http_body.read_body`, its failures as webhook errors."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from bridge.errors import InvalidPayload, PayloadTooLarge
from bridge.http_body import BodyTooLarge, read_body


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it is known to exceed ``limit`` bytes."""
    header = request.headers.get("content-length")
    declared = int(header) if header is not None and header.isdigit() else None
    try:
        return await read_body(request.receive, limit, declared)
    except BodyTooLarge as exc:
        size = "body" if exc.declared is None else f"body of {exc.declared} bytes"
        raise PayloadTooLarge(f"{size} exceeds the limit of {limit} bytes") from None
    except ClientDisconnect:
        raise InvalidPayload("the sender disconnected before the body was complete") from None
