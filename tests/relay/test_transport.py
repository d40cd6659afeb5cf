"""The relay's wire: httpx requests sent through aiohttp, errors mapped to httpx's types."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.config import Config
from bridge.devtools.simulator import create_app
from bridge.platforms.base import StockTarget
from bridge.platforms.cyberbiz import CyberbizClient
from bridge.relay.cli import http_client, shared_session
from bridge.relay.pacing import CURRENT, Send
from bridge.relay.transport import AiohttpTransport
from bridge.serve import free_port, running_server
from tests.relay.support import cyberbiz


def echo_app(never: asyncio.Event) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        headers = {"x-method": request.method, "x-key": request.headers.get("idempotency-key", "")}
        return Response(body, 201, headers, "application/json")

    async def hang(_request: Request) -> Response:
        await never.wait()
        return Response(b"{}")

    return Starlette(routes=[Route("/echo", echo, methods=["PUT"]), Route("/hang", hang)])


async def test_a_put_and_its_answer_cross_unchanged() -> None:
    """Method, body and headers reach the server; status, headers and body come back."""
    async with (
        running_server(echo_app(asyncio.Event())) as url,
        httpx.AsyncClient(transport=AiohttpTransport()) as http,
    ):
        response = await http.put(
            f"{url}/echo", content=b'{"inventory_quantity": 3}', headers={"Idempotency-Key": "k1"}
        )
    assert (201, b'{"inventory_quantity": 3}', "PUT", "k1") == (
        response.status_code,
        response.content,
        response.headers["x-method"],
        response.headers["x-key"],
    )


async def test_no_answer_within_the_timeout_is_an_httpx_timeout() -> None:
    """A server that does not answer in time raises httpx.TimeoutException (retryable)."""
    never = asyncio.Event()
    async with (
        running_server(echo_app(never)) as url,
        httpx.AsyncClient(transport=AiohttpTransport(), timeout=0.2) as http,
    ):
        with pytest.raises(httpx.TimeoutException):
            await http.get(f"{url}/hang")
        never.set()


async def test_a_refused_connection_is_an_httpx_connect_error() -> None:
    """Nothing listening: httpx.ConnectError, as the platform clients expect."""
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{free_port()}/")


async def test_the_relay_client_notes_when_a_write_left() -> None:
    """Through the relay's client on a shared session, a write marks its Send as sent."""
    shop = cyberbiz("cb-wire")
    config = Config(shops={shop.id: shop})
    async with running_server(create_app(config)) as url:
        spec = replace(shop, api_base=f"{url}/cyberbiz/cb-wire")
        wire = shared_session(config)
        http = http_client(config, wire)
        send = Send(time.time, time.time())
        token = CURRENT.set(send)
        try:
            await CyberbizClient(spec, http).set_stock(
                StockTarget("variant", "5001", "1001"), 3, "k-1"
            )
        finally:
            CURRENT.reset(token)
            await http.aclose()
            await wire.close()
    assert send.left is not None
    assert send.started <= send.left <= time.time()
