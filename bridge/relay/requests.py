"""One request to a platform: a write within one total deadline, or a token fetch in its own slot.

The deadline (``relay.request_timeout``) covers the whole request, connect to answer, whatever
the per-phase httpx timeouts would allow, and is cut shorter when the row's lease ends sooner
(less half the lease margin, to record the outcome): a request never outlives its row's lease, so
no other relay can claim and send the row while it is still on the wire.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Protocol, cast, runtime_checkable

from bridge.commands import target_of
from bridge.deadline import Deadline
from bridge.errors import PlatformError
from bridge.log import get_logger
from bridge.outbox.store import SET_STOCK, OutboxRow
from bridge.platforms.base import PlatformClient
from bridge.relay.outcomes import Outcomes
from bridge.relay.pacing import CURRENT, Send, SendWindow

log = get_logger(__name__)

Defer = Callable[[float], None]


@runtime_checkable
class TokenSource(Protocol):
    """A client that fetches an access token before some writes (OAuth client credentials): the
    relay gives each fetch a rate-limit slot of its own, so the shop never sees more than its
    limit."""

    def needs_token(self) -> bool: ...

    async def access_token(self, stale: str | None = None) -> str: ...


class Requests:
    """Sends for one relay; every outcome goes to :class:`Outcomes`."""

    def __init__(
        self, outcomes: Outcomes, clock: Callable[[], float], *, deadline: float, margin: float
    ) -> None:
        self.outcomes = outcomes
        self.clock = clock
        self.deadline = deadline
        self.margin = margin

    async def fetch_token(
        self,
        client: PlatformClient,
        platform: str,
        row: OutboxRow,
        defer: Defer,
        window: SendWindow,
    ) -> bool | None:
        """Fetch a due access token in this slot: None when none is due (send the row now);
        True when fetched (the row waits for the next slot); False when the fetch failed, which
        is the row's outcome (its write needs the token)."""
        if not _fetches_tokens(type(client)):
            return None
        source = cast(TokenSource, client)  # checked by its class
        if not source.needs_token():
            return None
        send = window.start()  # the platform counts it like a write
        error: PlatformError | None = None
        try:
            async with asyncio.timeout(self._budget(row)):
                await source.access_token()
        except PlatformError as exc:
            error = exc
        except TimeoutError:
            error = timed_out(self.deadline)
        finally:
            send.finish()
        if error is None:
            return True
        await self.outcomes.record(row, platform, error, defer)
        return False

    async def deliver(
        self, client: PlatformClient, platform: str, row: OutboxRow, defer: Defer, send: Send
    ) -> None:
        """Send ``row`` (its slot has come) and record the outcome."""
        error: PlatformError | None = None
        token = CURRENT.set(send)  # PacedTransport notes when the write leaves
        deadline = Deadline(self._budget(row))  # one timer: asyncio.timeout costs several
        try:
            quantity = _quantity(row)
            await client.set_stock(target_of(row.payload), quantity, row.idempotency_key)
        except PlatformError as exc:
            error = exc
        except asyncio.CancelledError:
            if not deadline.absorb():
                raise  # the relay stopping, not the deadline
            error = timed_out(self.deadline)
        except TimeoutError:
            error = timed_out(self.deadline)
        except Exception as exc:  # a client bug: retry with backoff, dead after max_attempts
            log.exception("relay_send_crashed", shop=row.shop, outbox_id=row.id)
            error = PlatformError(f"unexpected error: {exc!r}", retryable=True)
        finally:
            deadline.disarm()
            CURRENT.reset(token)
            send.finish()
        log.debug(
            "relay_sent", shop=row.shop, outbox_id=row.id, started=send.started, left=send.left,
            finished=send.finished,
        )  # fmt: skip
        try:
            await self.outcomes.record(row, platform, error, defer)
        except Exception:  # the database: the lease runs out and the row is claimed again
            log.exception("relay_record_failed", shop=row.shop, outbox_id=row.id)

    def _budget(self, row: OutboxRow) -> float:
        """Seconds this request may take: the deadline, or less when the lease ends sooner."""
        left = (row.lease_until or 0.0) - self.clock() - self.margin / 2
        return max(0.0, min(self.deadline, left))


@functools.cache
def _fetches_tokens(kind: type) -> bool:
    """Whether clients of class ``kind`` are a :class:`TokenSource`: asked once per class (a
    runtime protocol check costs more than the rest of a row's turn)."""
    return issubclass(kind, TokenSource)


def timed_out(deadline: float) -> PlatformError:
    return PlatformError(f"no answer within the request deadline ({deadline:g} s)", retryable=True)


def _quantity(row: OutboxRow) -> int:
    """The quantity of a set_stock row; anything else cannot be sent (dead at once)."""
    if row.kind != SET_STOCK:
        raise PlatformError(f"the relay cannot send outbox kind {row.kind!r}", retryable=False)
    quantity = row.payload.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise PlatformError(f"set_stock without a valid quantity: {quantity!r}", retryable=False)
    return quantity
