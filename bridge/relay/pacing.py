"""Keeping a shop's limit as the *platform* counts it, not only as the token bucket planned it.

The shared token bucket (``OutboxStore.reserve``) hands out start times, but the platform counts a
request when it gets to it, and a request can leave late (a fresh connection, TLS, the first request
of a process, a busy event loop) or be counted late (a platform busy with a queue). Then request k
lands closer to request k + L and the platform sees L + 1 requests in one window. Each lane of a
relay therefore also keeps, per shop, a :class:`SendWindow`:

* a local bucket on *actual* start times with the shop's rate and burst, so a relay that fell
  behind its slots never catches up in a burst;
* request k + L starts only a (padded) window after request k was surely counted: after its
  answer came back (``pace_on="answer"``, the default: nothing the platform does can have counted
  it later), or after its body was written to the socket (``pace_on="sent"``: tighter when the
  platform counts at its edge; httpcore's ``trace`` extension, set by :class:`PacedTransport` on
  requests carrying an ``Idempotency-Key``).

With ``answer`` a shop whose requests take ``rtt`` seconds is paced at ``limit / (window + rtt)``
at most; on a fast platform (rtt below the headroom, ~15 ms) that costs nothing.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Clock = Callable[[], float]
PaceOn = Literal["answer", "sent"]
PACE_ON: tuple[PaceOn, ...] = ("answer", "sent")
_SENT_EVENTS = frozenset(
    {
        "http11.send_request_body.complete",
        "http11.send_request_body.failed",
        "http2.send_request_body.complete",
        "http2.send_request_body.failed",
    }
)


class Flag:
    """asyncio.Event's ``set``/``clear``/``is_set``/``wait``, with plain futures as waiters, so
    :func:`sleep_until` waits on a flag *or* a time with one future and one timer: no task, no
    cancellation, no exception (it runs twice for every row the relay sends)."""

    __slots__ = ("_on", "_waiters")

    def __init__(self) -> None:
        self._on = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._on

    @property
    def waiting(self) -> int:
        """Futures waiting for the flag (gone once woken, discarded or cancelled)."""
        return len(self._waiters)

    def set(self) -> None:
        self._on = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _wake(waiter)

    def clear(self) -> None:
        self._on = False

    def waiter(self) -> asyncio.Future[None]:
        """A future done once the flag is set (at once if it is); :meth:`discard` it after."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._on:
            future.set_result(None)
        else:
            self._waiters.append(future)
        return future

    def discard(self, waiter: asyncio.Future[None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    async def wait(self) -> None:
        if not self._on:
            waiter = self.waiter()
            try:
                await waiter
            finally:
                self.discard(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(slots=True, eq=False)
class Send:
    """One write of a lane: when it started, when it left (if traced), when it was answered."""

    clock: Clock
    started: float
    left: float | None = None  # the body was written to the socket
    finished: float | None = None  # the answer (or the error) came back
    departed: Flag = field(default_factory=Flag)  # left or finished
    answered: Flag = field(default_factory=Flag)  # finished

    async def trace(self, event: str, _info: Mapping[str, Any]) -> None:
        if event in _SENT_EVENTS:
            self.left = self.clock()
            self.departed.set()

    def finish(self) -> None:
        self.finished = self.clock()
        self.departed.set()
        self.answered.set()

    def counted_by(self, pace_on: PaceOn) -> float | None:
        """Latest time the platform can have counted it (None while unknown)."""
        if pace_on == "sent" and self.left is not None:
            return self.left
        return self.finished

    def known(self, pace_on: PaceOn) -> Flag:
        return self.departed if pace_on == "sent" else self.answered


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


# uvloop's timers (libuv's) count whole milliseconds from a truncated loop time and fire up to
# ~1 ms before the moment asked for: a send window of exactly 1 s then let the platform count six
# requests within 0.9997 s (the simulator answered 429; seen in bench/relay.py's bare client).
TIMER_SLACK = 0.002


async def sleep_until(clock: Clock, moment: float, interrupt: Flag) -> None:
    """Sleep until ``clock() >= moment`` or ``interrupt`` is set, whichever comes first (the timer
    is set :data:`TIMER_SLACK` late, so that it never ends before the moment)."""
    delay = moment - clock()
    if delay <= 0 or interrupt.is_set():
        return
    waiter = interrupt.waiter()
    timer = asyncio.get_running_loop().call_later(delay + TIMER_SLACK, _wake, waiter)
    try:
        await waiter
    finally:
        timer.cancel()
        interrupt.discard(waiter)


class SendWindow:
    """One relay's writes to one shop: at most ``limit`` counted in any ``window`` seconds.

    ``rate_limit`` 5 means 5 per 1 s; a fractional rate such as 0.5 means 1 per 2 s (the
    simulator counts the same way). ``headroom`` slows the local bucket like the shared one
    (``rate * (1 - headroom)``) and, with ``pace_on="sent"``, pads the window the same way.
    """

    def __init__(
        self,
        rate_limit: float,
        clock: Clock,
        *,
        headroom: float = 0.0,
        burst: int = 1,
        pace_on: PaceOn = "answer",
    ) -> None:
        if not 0.0 <= headroom < 1.0:
            raise ValueError(f"headroom must be within [0, 1), got {headroom}")
        if pace_on not in PACE_ON:
            raise ValueError(f"pace_on must be one of {', '.join(PACE_ON)}, got {pace_on!r}")
        self.limit = max(1, math.floor(rate_limit))
        # An answer comes after the platform counted the request, so "answer" needs no padding;
        # "sent" pads for the transit and scheduling jitter between writing and being counted.
        pad = 1.0 / (1.0 - headroom) if pace_on == "sent" else 1.0
        self.window = self.limit / rate_limit * pad
        self.interval = 1.0 / (rate_limit * (1.0 - headroom))  # the token bucket's spacing
        self.tolerance = (max(1, burst) - 1) * self.interval
        self.pace_on = pace_on
        self.clock = clock
        self._sends: deque[Send] = deque(maxlen=self.limit)
        self._tat = 0.0  # the local bucket on actual start times

    def start(self) -> Send:
        now = self.clock()
        send = Send(self.clock, now)
        self._sends.append(send)
        # Lateness under half an interval (timer jitter) is forgiven rather than accumulated;
        # a lane further behind its slots restarts the spacing from now: no catch-up burst.
        self._tat = max(self._tat, now - self.interval / 2) + self.interval
        return send

    @property
    def idle(self) -> bool:
        """Nothing counted within the last window: the entry can be forgotten."""
        if not self._sends:
            return True
        counted = self._sends[-1].counted_by(self.pace_on)
        return counted is not None and counted + self.window < self.clock()

    def handover(self, burst: int) -> float:
        """The earliest first send for whoever sends to this shop next (``defer`` it).

        Another relay's n-th request after ours starts no earlier than its first plus
        ``max(0, n - burst)`` intervals (its token bucket), and must be counted a window after our
        request ``limit - n`` places before our last. 0.0 when nothing constrains it.
        """
        sends = list(self._sends)
        until = 0.0
        for n in range(1, self.limit + 1):
            index = len(sends) - self.limit + n - 1
            if index < 0:
                continue
            counted = sends[index].counted_by(self.pace_on)
            if counted is None:  # still under way: it may be counted as late as now
                counted = self.clock()
            until = max(until, counted + self.window - max(0, n - burst) * self.interval)
        return until

    async def wait_turn(self, interrupt: Flag) -> None:
        """Until one more write may start; returns early when ``interrupt`` is set."""
        await sleep_until(self.clock, self._tat - self.tolerance, interrupt)
        if len(self._sends) < self.limit or interrupt.is_set():
            return
        oldest = self._sends[0]
        known = oldest.known(self.pace_on)
        if not known.is_set():
            answer, stop = known.waiter(), interrupt.waiter()
            try:
                await asyncio.wait((answer, stop), return_when=asyncio.FIRST_COMPLETED)
            finally:
                known.discard(answer)
                interrupt.discard(stop)
        counted = oldest.counted_by(self.pace_on)
        if counted is not None:
            await sleep_until(self.clock, counted + self.window, interrupt)
