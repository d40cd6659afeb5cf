"""Arrival pacing: the per-shop send window, its handover time, and the tracing transport."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

import httpx
import pytest
import uvloop

from bridge.config import Config
from bridge.devtools.simulator import create_app
from bridge.platforms.base import StockTarget
from bridge.platforms.cyberbiz import CyberbizClient
from bridge.relay.pacing import (
    CURRENT,
    Flag,
    PacedTransport,
    PaceOn,
    Send,
    SendWindow,
    sleep_until,
)
from bridge.serve import running_server
from tests.relay.support import cyberbiz


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("rate", "headroom", "pace_on", "limit", "window"),
    [
        (5.0, 0.0, "answer", 5, 1.0),
        (0.5, 0.0, "answer", 1, 2.0),
        (2.5, 0.0, "answer", 2, 0.8),
        (5.0, 0.2, "answer", 5, 1.0),
        (5.0, 0.2, "sent", 5, 1.25),
    ],
)
def test_window_counts_like_the_platform(
    rate: float, headroom: float, pace_on: PaceOn, limit: int, window: float
) -> None:
    """floor(rate) requests per floor(rate)/rate seconds; padded by the headroom when `sent`."""
    sends = SendWindow(rate, Clock(), headroom=headroom, pace_on=pace_on)
    assert limit == sends.limit
    assert window == pytest.approx(sends.window)
    assert 1 / (rate * (1 - headroom)) == pytest.approx(sends.interval)


def test_headroom_must_be_a_fraction() -> None:
    """A headroom of 1 or more would never send."""
    with pytest.raises(ValueError, match="headroom"):
        SendWindow(5.0, Clock(), headroom=1.0)


def answered(window: SendWindow, clock: Clock, *moments: float) -> None:
    """Writes started and answered at each of ``moments``."""
    for moment in moments:
        clock.now = moment
        window.start().finish()


def test_handover_is_zero_before_a_full_window() -> None:
    """No sends constrain nothing; two recent ones constrain the newcomer's 4th and 5th."""
    clock = Clock()
    window = SendWindow(5.0, clock)
    assert 0.0 == window.handover(burst=1)
    answered(window, clock, 1000.0, 1000.2)
    # the newcomer's 4th and 5th requests come 3 and 4 intervals after its first
    assert pytest.approx(1000.2 + 1.0 - 0.8) == window.handover(burst=1)


def test_handover_protects_every_one_of_the_last_limit_sends() -> None:
    """A late last send pushes the next holder's first request a window minus 4 intervals out."""
    clock = Clock()
    window = SendWindow(5.0, clock)
    answered(window, clock, 1000.0, 1000.2, 1000.4, 1000.6, 1000.95)  # the last one was late
    assert pytest.approx(max(1001.0, 1000.95 + 1.0 - 0.8)) == window.handover(burst=1)
    assert pytest.approx(1000.95 + 1.0) == window.handover(burst=5)  # a burst may come at once


async def test_wait_turn_is_free_below_the_limit() -> None:
    """With fewer than `limit` sends in the window and a burst allowance nothing waits."""
    window = SendWindow(5.0, time.time, burst=5)
    for _ in range(4):
        window.start().finish()
    async with asyncio.timeout(0.05):
        await window.wait_turn(Flag())


async def test_no_catch_up_burst_after_falling_behind() -> None:
    """Burst 1: however late the lane, starts come an interval apart (the first after half)."""
    window = SendWindow(20.0, time.time)  # 50 ms apart; the 20-per-second window never binds
    window.start().finish()
    started = time.monotonic()
    for _ in range(4):
        await window.wait_turn(Flag())
        window.start().finish()
    assert 0.025 + 3 * 0.05 - 0.01 <= time.monotonic() - started < 1.0


@pytest.mark.parametrize("pace_on", ["answer", "sent"])
async def test_wait_turn_waits_a_window_after_the_oldest_counted(pace_on: PaceOn) -> None:
    """The (limit+1)-th write starts a window after the first was answered (or written)."""
    window = SendWindow(20.0, time.time, burst=20, pace_on=pace_on)  # 20 per 1 s
    first = window.start()
    first.left = time.time() - 0.9  # written 0.9 s ago ...
    first.finish()  # ... answered now
    for _ in range(19):
        window.start().finish()
    started = time.monotonic()
    await window.wait_turn(Flag())
    expected = 1.0 if pace_on == "answer" else 0.1
    assert expected - 0.02 <= time.monotonic() - started < expected + 0.4


async def test_wait_turn_waits_for_an_answer() -> None:
    """A request not yet answered holds back the one `limit` places behind it."""
    window = SendWindow(1.0, time.time, burst=2)  # 1 per 1 s; the bucket would allow 2
    slow = window.start()
    waiter = asyncio.create_task(window.wait_turn(Flag()))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    slow.finish()
    slow.finished = time.time() - 0.95
    async with asyncio.timeout(1.0):
        await waiter


async def test_wait_turn_returns_when_interrupted() -> None:
    """Stop or a 429 deferral interrupts the wait."""
    window = SendWindow(1.0, time.time)
    window.start()  # never answered
    interrupt = Flag()
    waiter = asyncio.create_task(window.wait_turn(interrupt))
    interrupt.set()
    async with asyncio.timeout(1.0):
        await waiter


async def test_transport_notes_when_a_write_left() -> None:
    """PacedTransport marks the current Send when a write's body is on the wire; reads not."""
    shop = cyberbiz("cb-paced")
    app = create_app(Config(shops={shop.id: shop}))
    async with running_server(app) as url:
        spec = replace(shop, api_base=f"{url}/cyberbiz/cb-paced")
        transport = PacedTransport(httpx.AsyncHTTPTransport())
        async with httpx.AsyncClient(transport=transport) as http:
            send = Send(time.time, time.time())
            token = CURRENT.set(send)
            try:
                await CyberbizClient(spec, http).set_stock(
                    StockTarget("variant", "5001", "1001"), 3, "k-1"
                )
                assert send.left is not None
                read = Send(time.time, time.time())
                CURRENT.set(read)
                await http.get(f"{url}/_sim/stats")
                assert None is read.left
            finally:
                CURRENT.reset(token)
    assert send.started <= send.left <= time.time()


def test_sleep_until_never_ends_before_the_moment_on_uvloop() -> None:
    """The relay runs on uvloop, whose timers fire up to ~1 ms early (whole milliseconds from a
    truncated loop time): without the slack a quarter of these sleeps ended 0.1-0.8 ms before
    their moment, and a send window of exactly 1 s let the platform count six requests in it."""

    async def sleeps() -> list[float]:
        early = []
        for n in range(100):
            moment = time.monotonic() + 0.0203 + (n % 10) * 0.00011  # sub-millisecond phases
            await sleep_until(time.monotonic, moment, Flag())
            early.append(moment - time.monotonic())
        return early

    assert max(uvloop.run(sleeps())) <= 0


async def test_sleep_until_sleeps_until_the_moment() -> None:
    """Without an interrupt the sleep ends at the moment, not before."""
    moment = time.time() + 0.05
    await sleep_until(time.time, moment, Flag())
    assert time.time() >= moment


async def test_sleep_until_ends_early_when_interrupted_and_leaves_nothing_behind() -> None:
    """Setting the flag ends every sleep on it at once; the finished sleeps are no waiters."""
    interrupt = Flag()
    sleepers = [asyncio.create_task(sleep_until(time.time, time.time() + 60, interrupt))]
    sleepers.append(asyncio.create_task(interrupt.wait()))
    await asyncio.sleep(0)
    interrupt.set()
    async with asyncio.timeout(1.0):
        await asyncio.gather(*sleepers)
    interrupt.clear()
    assert (False, 0) == (interrupt.is_set(), interrupt.waiting)


async def test_a_cancelled_sleep_leaves_no_waiter_or_timer() -> None:
    """Cancelling a sleeper (the relay stopping) removes its waiter; the flag stays usable."""
    interrupt = Flag()
    sleeper = asyncio.create_task(sleep_until(time.time, time.time() + 60, interrupt))
    await asyncio.sleep(0)
    sleeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sleeper
    assert 0 == interrupt.waiting
    await sleep_until(time.time, time.time() + 0.01, interrupt)  # an ordinary sleep again
