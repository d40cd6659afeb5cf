"""Read request bodies without letting unauthenticated senders hold unbounded memory.

Bodies are read before a signature can be checked (an HMAC covers the body), so what they may
hold is bounded three ways: each body by ``max_body_bytes`` (413), all bodies being read at once
by ``max_concurrent_bodies`` and by ``max_buffered_bytes`` of buffered data (503 + Retry-After:
the platform retries), and the time a body may take by ``body_timeout`` (408).

The first ``FREE_BYTES`` of every body are not counted against ``max_buffered_bytes``: real
webhooks are a few KiB, so however many large uploads fill the budget, a small webhook still
gets through. Worst case held: max_concurrent_bodies x FREE_BYTES + max_buffered_bytes (with the
defaults 64 MiB + 64 MiB). A sender that trickles holds only what it has sent so far.

The body is read from the ASGI ``receive`` channel itself (:func:`bridge.http_body.read_body`),
without a Request object or an async generator per webhook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from bridge.deadline import Deadline
from bridge.errors import InvalidPayload, PayloadTooLarge, WebhookError
from bridge.http_body import BodyTooLarge, read_body

FREE_BYTES = 64 * 1024


class Busy(WebhookError):
    """Too many bodies (or bytes) are being read right now; the platform should retry."""

    status = 503
    code = "busy"


class BodyTimeout(WebhookError):
    """The body did not arrive in time."""

    status = 408
    code = "body_timeout"


def declared_length(headers: Mapping[str, str], limit: int) -> int | None:
    """Content-Length if it is given; PayloadTooLarge at once when it exceeds ``limit``."""
    declared = headers.get("content-length")
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

    def reading(self, receive: Receive, limit: int) -> Reading:
        """``async with budget.reading(receive, limit) as body``: the whole body, held against
        the budget until the block exits (the answer is made).

        Raises a WebhookError as soon as a bound is known to be exceeded.
        """
        return Reading(self, receive, limit)


class Reading:
    """One body being read, and then held (a plain class: this runs once per webhook)."""

    __slots__ = ("budget", "charged", "limit", "receive")

    def __init__(self, budget: BodyBudget, receive: Receive, limit: int) -> None:
        self.budget = budget
        self.receive = receive
        self.limit = limit
        self.charged = 0

    async def __aenter__(self) -> bytes:
        budget = self.budget
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
        budget = self.budget
        deadline = None if budget.timeout is None else Deadline(budget.timeout)
        try:
            return await read_body(self.receive, self.limit, charge=self._charge)
        except BodyTooLarge:
            raise PayloadTooLarge(f"body exceeds the limit of {self.limit} bytes") from None
        except ClientDisconnect:
            raise InvalidPayload("the sender disconnected before the body was complete") from None
        except asyncio.CancelledError:
            if deadline is None or not deadline.absorb():
                raise
            raise BodyTimeout(f"the body did not arrive within {budget.timeout} s") from None
        finally:
            if deadline is not None:
                deadline.disarm()

    def _charge(self, taken: int) -> None:
        """``taken`` bytes of this body are in: charge what is past the free part."""
        if taken > FREE_BYTES:
            budget = self.budget
            charge = taken - FREE_BYTES - self.charged
            self.charged += charge
            budget.buffered += charge
            if budget.buffered > budget.max_buffered:
                raise Busy("too many bytes are being received; retry later")
