"""Keeping a shop's limit as the *platform* counts it: by when requests arrive, not when started.

The token bucket gives each request a start time, but a platform counts arrivals, and a request can
leave late: a fresh connection (TCP, TLS), the first request of a process, a busy event loop. A
late request k lands closer to request k + L, and the platform sees L + 1 requests in one window.

So every write records when its body was actually written to the socket (httpcore's ``trace``
extension, set by :class:`PacedTransport` on requests carrying an ``Idempotency-Key``), and a lane
starts request k + L only once request k has left and a full window has passed since
(:class:`SendWindow`). In steady state requests leave within a millisecond of their start and this
costs nothing; it only holds back the requests after one that left late.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx

Clock = Callable[[], float]
_SENT_EVENTS = frozenset(
    {
        "http11.send_request_body.complete",
        "http11.send_request_body.failed",
        "http2.send_request_body.complete",
        "http2.send_request_body.failed",
    }
)


@dataclass(slots=True, eq=False)
class Send:
    """One write of a lane: when it started, when it left (if traced), when it finished."""

    clock: Clock
    started: float
    left: float | None = None  # the body was written (the platform has it, give or take transit)
    finished: float | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    async def trace(self, event: str, _info: Mapping[str, Any]) -> None:
        if event in _SENT_EVENTS:
            self.left = self.clock()
            self.settled.set()

    def finish(self) -> None:
        self.finished = self.clock()
        self.settled.set()

    @property
    def arrived_by(self) -> float | None:
        """Latest time the platform can have received it; None while unknown."""
        if self.left is not None:
            return self.left
        return self.finished  # untraced: the answer came back, so it had arrived by then


CURRENT: ContextVar[Send | None] = ContextVar("bridge_relay_send", default=None)


class PacedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; tags writes (``Idempotency-Key``) of the current :class:`Send`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        send = CURRENT.get()
        if send is not None and "idempotency-key" in request.headers:
            previous = request.extensions.get("trace")
            if previous is None:
                request.extensions["trace"] = send.trace
            else:

                async def both(event: str, info: Mapping[str, Any]) -> None:
                    await previous(event, info)
                    await send.trace(event, info)

                request.extensions["trace"] = both
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class SendWindow:
    """At most ``limit`` of a shop's writes arrive in any ``window`` seconds (one relay's view).

    ``rate_limit`` 5 means 5 per 1 s; a fractional rate such as 0.5 means 1 per 2 s (the
    simulator counts the same way). ``headroom`` pads the window like the token bucket's rate
    (``window / (1 - headroom)``), so jitter on the platform's side still fits.
    """

    def __init__(self, rate_limit: float, clock: Clock, headroom: float = 0.0) -> None:
        if not 0.0 <= headroom < 1.0:
            raise ValueError(f"headroom must be within [0, 1), got {headroom}")
        self.limit = max(1, math.floor(rate_limit))
        self.window = self.limit / rate_limit / (1.0 - headroom)
        self.clock = clock
        self._sends: deque[Send] = deque(maxlen=self.limit)

    def start(self) -> Send:
        send = Send(self.clock, self.clock())
        self._sends.append(send)
        return send

    @property
    def idle(self) -> bool:
        """Nothing sent within the last window: the entry can be forgotten."""
        last = self._sends[-1] if self._sends else None
        if last is None:
            return True
        arrived = last.arrived_by
        return arrived is not None and arrived + self.window < self.clock()

    def handover(self, burst: int) -> float:
        """The earliest first send for whoever sends to this shop next (``defer`` it).

        Another relay's n-th request after ours starts no earlier than its first plus
        ``max(0, n - burst)`` intervals (its token bucket), and must arrive a window after our
        request ``limit - n`` places before our last. 0.0 when nothing constrains it.
        """
        interval = self.window / self.limit
        sends = list(self._sends)
        until = 0.0
        for n in range(1, self.limit + 1):
            index = len(sends) - self.limit + n - 1
            if index < 0:
                continue
            arrived = sends[index].arrived_by
            if arrived is None:  # still on its way: assume it leaves now
                arrived = self.clock()
            until = max(until, arrived + self.window - max(0, n - burst) * interval)
        return until

    async def wait_turn(self, interrupt: asyncio.Event) -> None:
        """Until one more write may start; returns early when ``interrupt`` is set."""
        if len(self._sends) < self.limit:
            return
        oldest = self._sends[0]
        if not oldest.settled.is_set():
            waiters = {
                asyncio.ensure_future(oldest.settled.wait()),
                asyncio.ensure_future(interrupt.wait()),
            }
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
        arrived = oldest.arrived_by
        if arrived is None or interrupt.is_set():
            return
        delay = arrived + self.window - self.clock()
        if delay > 0:
            try:
                async with asyncio.timeout(delay):
                    await interrupt.wait()
            except TimeoutError:
                pass
