"""The webhook echo: payload shapes, signatures, and delivery to a real receiving app."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.devtools.simulator import SimulatorOptions, create_app
from bridge.devtools.simulator.state import SimShop, Variant
from bridge.devtools.simulator.webhooks import (
    bentoweb_variant_webhook,
    cyberbiz_variant_webhook,
    taipei_time,
)
from bridge.serve import running_server
from tests.devtools.simulator.helpers import AUTH, BW_HOOK_TOKEN, CB_SECRET, CONFIG, bento_token

pytestmark = pytest.mark.timeout(60)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A stand-in ingress that records every webhook and wakes waiters."""

    expected: int = 1
    received: list[Received] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: int = 202

    async def endpoint(self, request: Request) -> Response:
        self.received.append(
            Received(request.url.path, dict(request.headers), await request.body())
        )
        if len(self.received) >= self.expected:
            self.done.set()
        return Response(b'{"id": "x"}', self.status, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/webhooks/{shop}", self.endpoint, methods=["POST"]),
                Route("/webhooks/{shop}/{event}", self.endpoint, methods=["POST"]),
            ]
        )

    async def wait(self, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            await self.done.wait()
        return self.received


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    async with running_server(rec.app()) as url:
        yield rec, url


def test_taipei_time_is_utc_plus_eight() -> None:
    """Cyberbiz timestamps are Asia/Taipei wall time, second resolution."""
    assert "1970-01-01 08:00:00" == taipei_time(0.9)


def test_cyberbiz_payload_and_signature() -> None:
    """variants/update carries the variant and a hex HMAC-SHA256 of the exact body."""
    shop = SimShop("cb-1", "cyberbiz", webhook_secret=CB_SECRET)
    out = cyberbiz_variant_webhook(shop, Variant("5001", "1001", 7, 0.0))
    expected_sig = hmac.new(CB_SECRET.encode(), out.body, hashlib.sha256).hexdigest()
    assert ("/webhooks/cb-1", "variants/update", "cb-1.cyberbiz.co", expected_sig) == (
        out.path,
        out.headers["x-cyberbiz-event"],
        out.headers["x-cyberbiz-domain"],
        out.headers["x-cyberbiz-hmac-sha256"],
    )
    assert {"id": 5001, "product_id": 1001, "sku": "SKU-5001", "price": 100.0,
            "inventory_management": True, "inventory_quantity": 7,
            "updated_at": "1970-01-01 08:00:00"} == orjson.loads(out.body)  # fmt: skip


def test_bentoweb_payload_has_the_published_shape() -> None:
    """variant.update has BentoWeb's example fields, old and new stock, and the token header."""
    shop = SimShop("bw-1", "bentoweb", webhook_secret=BW_HOOK_TOKEN)
    out = bentoweb_variant_webhook(shop, Variant("753758", "53716", 4, 0.0), old_stock=6)
    assert ("/webhooks/bw-1/variant.update", BW_HOOK_TOKEN) == (
        out.path,
        out.headers["x-webhook-token"],
    )
    assert {"product_id": 53716, "name": "Product 53716", "variant_id": 753758,
            "variant_name": "Variant 753758", "sku": "", "barcode": "", "price": "100.00",
            "loyalty_points": "0", "cost": "", "old_stock": 6, "new_stock": 4,
            "active": 1} == orjson.loads(out.body)  # fmt: skip


async def test_cyberbiz_write_is_echoed_with_a_valid_hmac(
    receiver: tuple[Receiver, str],
) -> None:
    """An applied PUT reaches the ingress as variants/update, signed with the shop secret."""
    rec, ingress = receiver
    app = create_app(CONFIG, options=SimulatorOptions(webhooks_to=ingress))
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        path = "/cyberbiz/cb-1/v1/products/1001/product_variants/5001"
        response = await client.put(path, json={"inventory_quantity": 8}, headers=AUTH)
        [hook] = await rec.wait()
    assert 200 == response.status_code
    signature = hmac.new(CB_SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert ("/webhooks/cb-1", "variants/update", signature) == (
        hook.path,
        hook.headers["x-cyberbiz-event"],
        hook.headers["x-cyberbiz-hmac-sha256"],
    )
    assert (5001, 8) == (orjson.loads(hook.body)["id"], orjson.loads(hook.body)["inventory_quantity"])  # fmt: skip


async def test_bentoweb_write_is_echoed_with_old_and_new_stock(
    receiver: tuple[Receiver, str],
) -> None:
    """A BentoWeb stock write reaches the ingress as variant.update with the token header."""
    rec, ingress = receiver
    app = create_app(CONFIG, options=SimulatorOptions(webhooks_to=ingress))
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        await client.post("/_sim/stock", json={"shop": "bw-1", "variants": {"77": 5}})
        token = await bento_token(client)
        await client.put(
            "/bentoweb/bw-1/product-variant/77",
            json={"stock": 2},
            headers={"Authorization": f"Bearer {token}"},
        )
        [hook] = await rec.wait()
    body = orjson.loads(hook.body)
    assert ("/webhooks/bw-1/variant.update", BW_HOOK_TOKEN, 5, 2) == (
        hook.path,
        hook.headers["x-webhook-token"],
        body["old_stock"],
        body["new_stock"],
    )


async def test_sale_emits_a_webhook_for_every_group_member(
    receiver: tuple[Receiver, str],
) -> None:
    """A sale of a sync-group member changes the shared count: each member is announced."""
    rec, ingress = receiver
    rec.expected = 2
    app = create_app(CONFIG, options=SimulatorOptions(webhooks_to=ingress))
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        seed = {"shop": "cb-1", "variants": {"1": 5, "2": 5}, "groups": {"9": 5},
                "group_members": {"9": ["1", "2"]}}  # fmt: skip
        await client.post("/_sim/stock", json=seed)
        sale = await client.post("/_sim/sale", json={"shop": "cb-1", "variant": "2", "quantity": 1})
        hooks = await rec.wait()
    assert 4 == sale.json()["new"]
    assert [(1, 4), (2, 4)] == sorted(
        (orjson.loads(h.body)["id"], orjson.loads(h.body)["inventory_quantity"]) for h in hooks
    )


async def test_unreachable_ingress_never_fails_the_api_answer() -> None:
    """Webhook delivery failures are counted and logged; the write still answers 200."""
    async with running_server(Starlette()) as dead_url:
        pass  # the port is closed again: nothing listens there now
    app = create_app(CONFIG, options=SimulatorOptions(webhooks_to=dead_url))
    simulator = app.state.simulator
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        path = "/cyberbiz/cb-1/v1/products/1001/product_variants/5001"
        response = await client.put(path, json={"inventory_quantity": 8}, headers=AUTH)
        async with asyncio.timeout(10):
            await simulator.emitter.drain()
        counters = (await client.get("/_sim/webhooks")).json()
    assert (200, 1, 0) == (response.status_code, counters["failed"], counters["sent"])


async def _writes_with_drops(ingress: str, rate: float, seed: int, writes: int) -> int:
    """``writes`` PUTs through a simulator dropping ``rate`` of its echoes; the dropped count."""
    options = SimulatorOptions(webhooks_to=ingress, drop_webhooks=rate)
    app = create_app(CONFIG, options=options, seed=seed)
    simulator = app.state.simulator
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        path = "/cyberbiz/cb-fast/v1/products/1001/product_variants/5001"
        for quantity in range(1, writes + 1):
            response = await client.put(path, json={"inventory_quantity": quantity}, headers=AUTH)
            assert 200 == response.status_code
        async with asyncio.timeout(10):
            await simulator.emitter.drain()
        dropped: int = (await client.get("/_sim/stats")).json()["cb-fast"]["webhooks_dropped"]
    return dropped


async def test_drop_webhooks_drops_that_share_and_counts_it(
    receiver: tuple[Receiver, str],
) -> None:
    """--drop-webhooks 0.5 sends about half the echoes; sent + dropped is every write."""
    rec, ingress = receiver
    dropped = await _writes_with_drops(ingress, 0.5, seed=7, writes=40)
    assert (40, True) == (len(rec.received) + dropped, 8 <= dropped <= 32)


async def test_drop_webhooks_is_reproducible_with_a_seed(
    receiver: tuple[Receiver, str],
) -> None:
    """The same seed drops the same webhooks: the same levels arrive, run after run."""
    rec, ingress = receiver
    await _writes_with_drops(ingress, 0.3, seed=11, writes=20)
    first = [orjson.loads(r.body)["inventory_quantity"] for r in rec.received]
    rec.received.clear()
    await _writes_with_drops(ingress, 0.3, seed=11, writes=20)
    second = [orjson.loads(r.body)["inventory_quantity"] for r in rec.received]
    assert (first, True) == (second, len(first) < 20)


async def test_drop_webhooks_applies_to_sales(receiver: tuple[Receiver, str]) -> None:
    """A sale's webhook is subject to the drop rate too (1.0: none is sent, one is counted)."""
    rec, ingress = receiver
    app = create_app(CONFIG, options=SimulatorOptions(webhooks_to=ingress, drop_webhooks=1.0))
    simulator = app.state.simulator
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        await client.post("/_sim/stock", json={"shop": "cb-1", "variants": {"5": 3}})
        sale = await client.post("/_sim/sale", json={"shop": "cb-1", "variant": "5"})
        async with asyncio.timeout(10):
            await simulator.emitter.drain()
        stats = (await client.get("/_sim/stats")).json()["cb-1"]
    assert (200, 1, []) == (sale.status_code, stats["webhooks_dropped"], rec.received)


def test_drop_rate_outside_zero_to_one_is_refused() -> None:
    """A drop rate of 1.5 is a ValueError naming drop_webhooks."""
    with pytest.raises(ValueError, match="drop_webhooks"):
        SimulatorOptions(drop_webhooks=1.5)
