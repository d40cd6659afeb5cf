"""The relay's client (``WireClient``): plain requests straight onto aiohttp, the rest by httpx."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl

import aiohttp
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.relay.pacing import CURRENT, Send
from bridge.relay.transport import session
from bridge.relay.wire import WireClient
from bridge.serve import free_port, running_server


def app(never: asyncio.Event) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        seen = {
            "method": request.method,
            "body": body.decode(),
            "key": request.headers.get("idempotency-key"),
            "type": request.headers.get("content-type"),
            "form": dict(parse_qsl(body.decode())) if b"=" in body else None,
        }
        return JSONResponse(seen, 201, {"x-echo": "yes"})

    async def hang(_request: Request) -> Response:
        await never.wait()
        return Response(b"{}")

    return Starlette(routes=[Route("/echo", echo, methods=["PUT", "POST"]), Route("/hang", hang)])


async def test_a_plain_put_crosses_unchanged_and_names_its_request_when_asked() -> None:
    """Body and headers reach the server; status, headers and body come back; the response's
    request (built only on demand) is the method and URL sent."""
    async with (
        running_server(app(asyncio.Event())) as url,
        WireClient(session(traced=False), timeout=5.0, traced=False, owns=True) as http,
    ):
        headers = {"Idempotency-Key": "k1", "Content-Type": "application/json"}
        response = await http.request("PUT", f"{url}/echo", headers=headers, content=b'{"q": 3}')
    assert (201, "yes") == (response.status_code, response.headers["x-echo"])
    assert {"method": "PUT", "body": '{"q": 3}', "key": "k1", "type": "application/json",
            "form": None} == response.json()  # fmt: skip
    assert ("PUT", f"{url}/echo") == (response.request.method, str(response.request.url))


async def test_a_form_post_takes_httpx_own_path_on_the_same_wire() -> None:
    """``data=`` (a token fetch) is not a plain request: httpx encodes the form."""
    async with (
        running_server(app(asyncio.Event())) as url,
        WireClient(session(traced=False), timeout=5.0, traced=False, owns=True) as http,
    ):
        response = await http.request("POST", f"{url}/echo", data={"grant_type": "x"})
    assert {"grant_type": "x"} == response.json()["form"]
    assert response.headers["x-echo"] == "yes"


async def test_failures_are_httpx_errors_with_their_request() -> None:
    """Nothing listening: ConnectError; no answer within the client's bound: a timeout."""
    never = asyncio.Event()
    async with (
        running_server(app(never)) as url,
        WireClient(session(traced=False), timeout=0.1, traced=False, owns=True) as http,
    ):
        with pytest.raises(httpx.ConnectError) as refused:
            await http.request("PUT", f"http://127.0.0.1:{free_port()}/x", content=b"{}")
        assert "PUT" == refused.value.request.method
        with pytest.raises(httpx.TimeoutException):
            await http.request("GET", f"{url}/hang")
        never.set()


@pytest.mark.parametrize("traced", [True, False])
async def test_a_write_marks_its_send_as_left_only_when_traced(traced: bool) -> None:
    """With ``traced`` a write (it has an Idempotency-Key) notes when its body was on the
    wire; without, the relay paces on answers and nothing is noted."""
    async with running_server(app(asyncio.Event())) as url:
        wire: aiohttp.ClientSession = session(traced=traced)
        async with WireClient(wire, timeout=5.0, traced=traced) as http:
            send = Send(time.time, time.time())
            token = CURRENT.set(send)
            try:
                await http.request("PUT", f"{url}/echo", headers={"Idempotency-Key": "k"})
            finally:
                CURRENT.reset(token)
        assert not wire.closed  # the caller's session
        await wire.close()
    assert (send.left is not None) is traced


async def test_a_bounded_client_leaves_the_deadline_to_its_caller() -> None:
    """``bounded``: no timer of aiohttp's (unbounded, 3 x 0.05 s would end it as an httpx
    timeout); the caller's own deadline ends a request that hangs."""
    never = asyncio.Event()
    async with (
        running_server(app(never)) as url,
        WireClient(
            session(traced=False), timeout=0.05, traced=False, owns=True, bounded=True
        ) as http,
    ):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await http.request("GET", f"{url}/hang")
        never.set()
