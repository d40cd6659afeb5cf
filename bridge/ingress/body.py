"""Read request bodies without letting unauthenticated senders hold unbounded memory.

Bodies are read before a signature can be checked (an HMAC covers the body), so what they may
hold is bounded three ways: each body by ``max_body_bytes`` (413), all bodies being read at once
by ``max_concurrent_bodies`` and by ``max_buffered_bytes`` of buffered data (503 + Retry-After:
the platform retries), and the time a body may take by ``body_timeout`` (408).

The first ``FREE_BYTES`` of every body are not counted against ``max_buffered_bytes``: real
webhooks are a few KiB, so however many large uploads fill the budget, a small webhook still
gets through. Worst case held: max_concurrent_bodies x FREE_BYTES + max_buffered_bytes (with the
defaults 64 MiB + 64 MiB). A sender that trickles holds only what it has sent so far.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from bridge.errors import InvalidPayload, PayloadTooLarge, WebhookError

FREE_BYTES = 64 * 1024


class Busy(WebhookError):
    """Too many bodies (or bytes) are being read right now; the platform should retry."""

    status = 503
    code = "busy"


class BodyTimeout(WebhookError):
    """The body did not arrive in time."""

    status = 408
    code = "body_timeout"


def declared_length(request: Request, limit: int) -> int | None:
    """Content-Length if it is given; PayloadTooLarge at once when it exceeds ``limit``."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.strip().isdigit():
        return None
    size = int(declared)
    if size > limit:
        raise PayloadTooLarge(f"body of {size} bytes exceeds the limit of {limit} bytes")
    return size


class BodyBudget:
    """The bodies being read at once: at most ``bodies`` of them holding ``buffered`` bytes."""

    def __init__(self, bodies: int, buffered: int, timeout: float | None) -> None:
        self.max_bodies = bodies
        self.max_buffered = buffered
        self.timeout = timeout
        self.bodies = 0
        self.buffered = 0

    @contextlib.asynccontextmanager
    async def reading(self, request: Request, limit: int) -> AsyncIterator[bytes]:
        """The whole body, held against the budget until the block exits (the answer is sent).

        Raises a WebhookError as soon as a bound is known to be exceeded.
        """
        declared_length(request, limit)
        if self.bodies >= self.max_bodies:
            raise Busy(f"{self.bodies} bodies are being read; retry later")
        self.bodies += 1
        taken = charged = 0
        try:
            chunks: list[bytes] = []
            try:
                async with asyncio.timeout(self.timeout):
                    async for chunk in request.stream():
                        taken += len(chunk)
                        charge = max(0, taken - FREE_BYTES) - charged
                        charged += charge
                        self.buffered += charge
                        if taken > limit:
                            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
                        if self.buffered > self.max_buffered:
                            raise Busy("too many bytes are being received; retry later")
                        chunks.append(chunk)
            except TimeoutError:
                raise BodyTimeout(f"the body did not arrive within {self.timeout} s") from None
            except ClientDisconnect:
                raise InvalidPayload(
                    "the sender disconnected before the body was complete"
                ) from None
            body = b"".join(chunks)
            del chunks
            yield body
        finally:
            self.bodies -= 1
            self.buffered -= charged
