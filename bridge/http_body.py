"""Read an HTTP request body without ever holding more than a limit (ASGI ``receive``)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import ClientDisconnect
from starlette.types import Receive


class BodyTooLarge(Exception):
    """The body is, or has grown, larger than the limit; ``declared`` when the header said so."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        super().__init__(f"body exceeds the limit of {limit} bytes")
        self.limit = limit
        self.declared = declared


async def read_body(
    receive: Receive,
    limit: int,
    declared: int | None = None,
    charge: Callable[[int], None] | None = None,
) -> bytes:
    """The whole body; BodyTooLarge as soon as it is known to exceed ``limit`` bytes (from the
    declared Content-Length before reading, else while streaming); ClientDisconnect when the
    sender goes away first. ``charge(size)`` is told the size read so far after each chunk (it
    may raise to stop reading)."""
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit, declared)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        if charge is not None:
            charge(size)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
