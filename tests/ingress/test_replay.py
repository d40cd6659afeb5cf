"""Cyberbiz's event name is outside its HMAC: replays under another name or long after are 401."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import httpx
import orjson
import pytest

from bridge.ingress.app import create_app
from tests.support import CB_SECRET, RecordingPublisher, fixture_bytes, make_config

TAIPEI = timezone(timedelta(hours=8))
UNAUTHORIZED = {"error": "unauthorized", "detail": "missing or invalid signature"}


def taipei(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).astimezone(TAIPEI).strftime("%Y-%m-%d %H:%M:%S")


def fresh(fixture: str, updated: float | None = None) -> bytes:
    body = orjson.loads(fixture_bytes(fixture))
    body["updated_at"] = taipei(time.time() if updated is None else updated)
    return orjson.dumps(body)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    config = make_config()
    config = replace(config, ingress=replace(config.ingress, max_event_age=86_400.0))
    app = create_app(config, RecordingPublisher())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
        yield c


async def send(client: httpx.AsyncClient, body: bytes, event: str) -> httpx.Response:
    headers = {
        "content-type": "application/json",
        "x-cyberbiz-event": event,
        "x-cyberbiz-hmac-sha256": hmac.new(CB_SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }
    return await client.post("/webhooks/cb-taipei", content=body, headers=headers)


@pytest.mark.parametrize(
    ("fixture", "event"),
    [
        ("cyberbiz/order.json", "orders/paid"),
        ("cyberbiz/variant.json", "variants/update"),
        ("cyberbiz/product.json", "products/update"),
        ("cyberbiz/customer.json", "customers/update"),
        ("cyberbiz/app_uninstall.json", "apps/uninstalled"),
    ],
)
async def test_a_fresh_body_under_its_own_event_is_accepted(
    client: httpx.AsyncClient, fixture: str, event: str
) -> None:
    """Each sample, updated now, under its own event name: 202."""
    assert 202 == (await send(client, fresh(fixture), event)).status_code


@pytest.mark.parametrize(
    ("fixture", "event"),
    [
        ("cyberbiz/variant.json", "orders/paid"),
        ("cyberbiz/order.json", "variants/update"),
        ("cyberbiz/order.json", "customers/update"),
        ("cyberbiz/product.json", "variants/update"),
        ("cyberbiz/variant.json", "products/update"),
    ],
)
async def test_a_body_replayed_under_another_kind_of_event_is_401(
    client: httpx.AsyncClient, fixture: str, event: str
) -> None:
    """A correctly signed body under an event name of another kind is refused like a bad
    signature."""
    response = await send(client, fresh(fixture), event)
    assert (401, UNAUTHORIZED) == (response.status_code, response.json())


async def test_a_body_older_than_max_event_age_is_401(client: httpx.AsyncClient) -> None:
    """updated_at more than ingress.max_event_age (24 h) ago: refused; 23 h ago: accepted."""
    old = await send(
        client, fresh("cyberbiz/variant.json", time.time() - 25 * 3600), "variants/update"
    )
    recent = await send(
        client, fresh("cyberbiz/variant.json", time.time() - 23 * 3600), "variants/update"
    )
    assert (401, 202) == (old.status_code, recent.status_code)
