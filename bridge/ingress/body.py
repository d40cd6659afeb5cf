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

from starlette.requests import ClientDisconnect, Request

from bridge.deadline import Deadline
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

    def reading(self, request: Request, limit: int) -> Reading:
        """``async with budget.reading(request, limit) as body``: the whole body, held against
        the budget until the block exits (the answer is sent).

        Raises a WebhookError as soon as a bound is known to be exceeded.
        """
        return Reading(self, request, limit)


class Reading:
    """One body being read, and then held (a plain class: this runs once per webhook)."""

    __slots__ = ("budget", "charged", "limit", "request")

    def __init__(self, budget: BodyBudget, request: Request, limit: int) -> None:
        self.budget = budget
        self.request = request
        self.limit = limit
        self.charged = 0

    async def __aenter__(self) -> bytes:
        budget, limit = self.budget, self.limit
        declared_length(self.request, limit)
        if budget.bodies >= budget.max_bodies:
            raise Busy(f"{budget.bodies} bodies are being read; retry later")
        budget.bodies += 1
        try:
            return await self._read()
        except BaseException:
            self._release()
            raise

    async def __aexit__(self, *_exc: object) -> None:
        self._release()

    def _release(self) -> None:
        self.budget.bodies -= 1
        self.budget.buffered -= self.charged
        self.charged = 0

    async def _read(self) -> bytes:
        budget, limit = self.budget, self.limit
        deadline = None if budget.timeout is None else Deadline(budget.timeout)
        chunks: list[bytes] = []
        taken = 0
        try:
            async for chunk in self.request.stream():
                taken += len(chunk)
                charge = max(0, taken - FREE_BYTES) - self.charged
                self.charged += charge
                budget.buffered += charge
                if taken > limit:
                    raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
                if budget.buffered > budget.max_buffered:
                    raise Busy("too many bytes are being received; retry later")
                chunks.append(chunk)
        except asyncio.CancelledError:
            if deadline is None or not deadline.absorb():
                raise
            raise BodyTimeout(f"the body did not arrive within {budget.timeout} s") from None
        except ClientDisconnect:
            raise InvalidPayload("the sender disconnected before the body was complete") from None
        finally:
            if deadline is not None:
                deadline.disarm()
        return b"".join(chunks)
