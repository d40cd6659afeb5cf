"""The platform's webhook after a stock change, posted to an ingress in the background.

Bodies have each simulated platform's shape; event names, headers and signatures come from the
platform's plugin (``Platform.stock_event``, ``Platform.sign``). Payload builders are pure;
:class:`WebhookEmitter` owns the HTTP client and a few bounded queues (one worker each, a shop
always on the same queue so its webhooks keep their order). A full queue drops the webhook and
says so in the log: the API answer never waits for a webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import httpx
import orjson

from bridge import platforms
from bridge.devtools.simulator.state import SimShop, Variant
from bridge.log import get_logger

TAIPEI = timezone(timedelta(hours=8), "Asia/Taipei")  # no daylight saving since 1979

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One webhook ready to send: ``path`` is appended to the ingress base URL."""

    shop: str
    path: str
    headers: dict[str, str]
    body: bytes


@functools.lru_cache(maxsize=64)
def _taipei_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).astimezone(TAIPEI).strftime("%Y-%m-%d %H:%M:%S")


def taipei_time(wall: float) -> str:
    """Cyberbiz's timestamp format: ``YYYY-MM-DD HH:MM:SS`` in Asia/Taipei."""
    return _taipei_second(math.floor(wall))


def platform_id(value: str | None) -> int | str:
    """Ids as the platforms send them: a number when the id is all digits."""
    if value is None:
        return 0
    if value.isdigit() and str(int(value)) == value:
        return int(value)
    return value


def _signed(shop: SimShop, body: bytes, wall: float) -> Outgoing:
    """The platform's stock-change webhook for ``body``, signed by the platform's plugin."""
    plugin = platforms.get(shop.platform)
    event = plugin.stock_event
    if event is None:
        raise ValueError(f"platform {shop.platform!r} sends no stock webhook")
    signed = plugin.sign(shop.webhook_secret or "", shop.id, body, event, wall)
    headers = {"content-type": "application/json"}
    headers.update({name.lower(): value for name, value in signed.headers.items()})
    return Outgoing(shop.id, f"/webhooks/{shop.id}{signed.suffix}", headers, body)


def cyberbiz_variant_webhook(shop: SimShop, variant: Variant) -> Outgoing:
    """``variants/update`` as Cyberbiz posts it: the variant itself, hex HMAC of the raw body."""
    body = orjson.dumps(
        {
            "id": platform_id(variant.id),
            "product_id": platform_id(variant.product_id),
            "sku": f"SKU-{variant.id}",
            "price": 100.0,
            "inventory_management": True,
            "inventory_quantity": variant.quantity,
            "updated_at": taipei_time(variant.updated_at),
        }
    )
    return _signed(shop, body, variant.updated_at)


def bentoweb_variant_webhook(shop: SimShop, variant: Variant, old_stock: int) -> Outgoing:
    """``variant.update`` in the shape of BentoWeb's published example, with the token header."""
    body = orjson.dumps(
        {
            "product_id": platform_id(variant.product_id),
            "name": f"Product {variant.product_id or variant.id}",
            "variant_id": platform_id(variant.id),
            "variant_name": f"Variant {variant.id}",
            "sku": "",
            "barcode": "",
            "price": "100.00",
            "loyalty_points": "0",
            "cost": "",
            "old_stock": old_stock,
            "new_stock": variant.quantity,
            "active": 1,
        }
    )
    return _signed(shop, body, variant.updated_at)


def variant_webhook(shop: SimShop, variant: Variant, old_stock: int) -> Outgoing:
    """The stock-change webhook the shop's platform sends (body shape per simulated platform)."""
    if shop.platform == "cyberbiz":
        return cyberbiz_variant_webhook(shop, variant)
    return bentoweb_variant_webhook(shop, variant, old_stock)


class WebhookEmitter:
    """Posts :class:`Outgoing` webhooks to ``ingress``; ``emit`` never blocks."""

    def __init__(
        self,
        ingress: str,
        *,
        queues: int = 4,
        queue_size: int = 10_000,
        timeout: float = 5.0,
        drain_timeout: float = 2.0,
    ) -> None:
        self.ingress = ingress.rstrip("/")
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._timeout = timeout
        self._drain_timeout = drain_timeout
        self._queues: list[asyncio.Queue[Outgoing]] = [
            asyncio.Queue(maxsize=queue_size) for _ in range(queues)
        ]
        self._workers: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    @property
    def pending(self) -> int:
        return sum(q.qsize() for q in self._queues)

    def counters(self) -> dict[str, int | str]:
        return {
            "to": self.ingress,
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "pending": self.pending,
        }

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._timeout)
        self._workers = [
            asyncio.create_task(self._work(q), name=f"sim-webhooks-{i}")
            for i, q in enumerate(self._queues)
        ]

    def emit(self, outgoing: Outgoing) -> bool:
        """Queue a webhook; False (and logged) when its queue is full."""
        queue = self._queues[zlib.crc32(outgoing.shop.encode()) % len(self._queues)]
        try:
            queue.put_nowait(outgoing)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("simulator webhook dropped: queue full", shop=outgoing.shop)
            return False
        return True

    async def drain(self) -> None:
        """Wait until every queued webhook has been sent or has failed."""
        for queue in self._queues:
            await queue.join()

    async def aclose(self) -> None:
        """Give queued webhooks ``drain_timeout`` seconds, then stop the workers."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._drain_timeout):
                await self.drain()
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _work(self, queue: asyncio.Queue[Outgoing]) -> None:
        while True:
            outgoing = await queue.get()
            try:
                await self._send(outgoing)
            finally:
                queue.task_done()

    async def _send(self, outgoing: Outgoing) -> None:
        if self._client is None:
            raise RuntimeError("WebhookEmitter.start() was not awaited")
        url = self.ingress + outgoing.path
        try:
            response = await self._client.post(url, content=outgoing.body, headers=outgoing.headers)
        except httpx.HTTPError as exc:
            self.failed += 1
            log.warning("simulator webhook failed", shop=outgoing.shop, url=url, error=repr(exc))
            return
        if response.is_success:
            self.sent += 1
        else:
            self.failed += 1
            log.warning(
                "simulator webhook rejected",
                shop=outgoing.shop,
                url=url,
                status=response.status_code,
            )
