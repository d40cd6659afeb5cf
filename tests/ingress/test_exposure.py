"""Hostile input and exposure: what is refused before the body, ops endpoints off the webhook
port, W3C-only traceparent, bounded and escaped log text."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

from bridge.config import Config
from bridge.ingress.app import create_app
from bridge.ingress.checks import printable, valid_traceparent
from bridge.serve import running_server
from tests.support import BENTO_TOKEN, CB_SECRET, RecordingPublisher, make_config

VARIANT = b'{"id": 5001, "product_id": 1001, "inventory_quantity": 7, "updated_at": "2024-07-11 14:27:46"}'


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def config() -> Config:
    return make_config()


@pytest.fixture
async def server(config: Config, publisher: RecordingPublisher) -> AsyncIterator[str]:
    app = create_app(config, publisher)
    async with running_server(app) as url:
        yield url


async def head_only(url: str, path: str, headers: dict[str, str], timeout: float = 2.0) -> bytes:
    """Send a request line and headers announcing a body that never comes; the raw answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(timeout):
            status = await reader.readline()
            rest = await reader.readuntil(b"\r\n\r\n")
        return status + rest
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/webhooks/nope", {"Content-Length": "1000"}, b"404"),
        ("/webhooks/cb-taipei", {"Content-Length": "1000", "X-Cyberbiz-Event": "orders/paid"}, b"401"),
        ("/webhooks/cb-taipei", {"Content-Length": "1000", "X-Cyberbiz-Hmac-Sha256": "zz!"}, b"401"),
        ("/webhooks/bento-bkk/variant.update", {"Content-Length": "1000", "X-Webhook-Token": "bad"}, b"401"),
        ("/webhooks/bento-bkk/variant.update?token=bad", {"Content-Length": "1000"}, b"401"),
        ("/webhooks/std-shop", {"Content-Length": "1000", "webhook-id": "m1"}, b"401"),
        ("/webhooks/cb-taipei", {"Content-Length": "3000000"}, b"413"),
        ("/webhooks/bento-bkk/variant.update", {"Content-Length": "1000", "Content-Type": "text/plain", "X-Webhook-Token": BENTO_TOKEN}, b"415"),
    ],
)  # fmt: skip
async def test_what_the_headers_decide_is_answered_before_the_body(
    server: str, path: str, headers: dict[str, str], status: bytes
) -> None:
    """Unknown shop, missing/bad signature header or token, a declared oversize body and a wrong
    media type are answered at once, while the announced body has not been sent."""
    answer = await head_only(server, path, headers)
    assert status == answer.split(b" ", 2)[1]


async def test_a_valid_bentoweb_token_waits_for_the_body(server: str) -> None:
    """A request whose headers pass is not answered until its body arrives (the timeout)."""
    headers = {"Content-Length": "1000", "X-Webhook-Token": BENTO_TOKEN}
    with pytest.raises(TimeoutError):
        await head_only(server, "/webhooks/bento-bkk/variant.update", headers, timeout=0.5)


async def test_ops_endpoints_are_not_on_the_webhook_port(server: str, config: Config) -> None:
    """/metrics (which names every shop), /healthz and /readyz answer 404 JSON on the webhook
    port; the ops app serves them."""
    async with httpx.AsyncClient(base_url=server) as client:
        answers = [await client.get(p) for p in ("/metrics", "/healthz", "/readyz")]
    assert [404] * 3 == [a.status_code for a in answers]
    assert ["not_found"] * 3 == [a.json()["error"] for a in answers]
    assert all(b"cb-taipei" not in a.content for a in answers)


def cb_headers(body: bytes, **extra: str) -> dict[str, str]:
    digest = hmac.new(CB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-cyberbiz-event": "variants/update",
        "x-cyberbiz-hmac-sha256": digest,
        **extra,
    }


GOOD_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (GOOD_TRACE, GOOD_TRACE),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", None),
        ("x" * 5000, None),
        ("", None),
    ],
)
def test_traceparent_is_w3c_or_nothing(given: str, expected: str | None) -> None:
    """Only version-00 W3C traceparents with non-zero ids pass; anything else is dropped."""
    assert expected == valid_traceparent(given)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (GOOD_TRACE, True),
        ("00-bogus-zz", False),
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", False),
    ],
)
async def test_traceparent_reaches_kafka_only_when_valid(
    server: str, publisher: RecordingPublisher, given: str, kept: bool
) -> None:
    """A valid traceparent is copied to the record's headers; an invalid one is dropped."""
    headers = cb_headers(VARIANT, traceparent=given)
    async with httpx.AsyncClient(base_url=server) as client:
        response = await client.post("/webhooks/cb-taipei", content=VARIANT, headers=headers)
    assert 202 == response.status_code
    record_headers = dict(publisher.records[0][3])
    assert ({"traceparent": given.encode()} if kept else {}) == {
        k: v for k, v in record_headers.items() if k == "traceparent"
    }


def test_printable_bounds_and_escapes() -> None:
    """Log text is cut to 200 characters and carries no control characters."""
    assert "a\\nb\\x1b[31m" == printable("a\nb\x1b[31m")
    long = printable("\x00" * 1000)
    assert (201, True) == (len(long), long.endswith("…"))
    assert all(c.isprintable() for c in long)


async def test_warning_lines_hold_bounded_escaped_paths(server: str) -> None:
    """A 5000-character path with control characters yields a warning whose fields are at most
    ~200 characters and printable."""
    shop = "%1B%5B31m" + "x" * 5000 + "%0Aforged=1"
    with capture_logs() as logs:
        async with httpx.AsyncClient(base_url=server) as client:
            response = await client.post(f"/webhooks/{shop}", content=b"{}")
    assert 404 == response.status_code
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert "webhook_rejected" == warning["event"]
    texts = [str(v) for v in warning.values()]
    assert [] == [t for t in texts if len(t) > 201 or not t.isprintable()]
    assert warning["path"].startswith("/webhooks/\\x1b[31mxxx")


async def test_a_body_over_the_byte_budget_is_503_and_small_ones_still_pass(
    publisher: RecordingPublisher,
) -> None:
    """Bytes beyond each body's first 64 KiB count against max_buffered_bytes: past it a large
    body is 503 + Retry-After (the platform retries), while a small webhook is still accepted."""
    config = make_config()
    config = replace(config, ingress=replace(config.ingress, max_buffered_bytes=1000))
    large = orjson.dumps({"id": 1, "pad": "x" * 100_000})
    async with (
        running_server(create_app(config, publisher)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        refused = await client.post("/webhooks/cb-taipei", content=large, headers=cb_headers(large))
        small = await client.post(
            "/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT)
        )
    assert (503, "busy", "5") == (
        refused.status_code,
        refused.json()["error"],
        refused.headers.get("retry-after"),
    )
    assert 202 == small.status_code


async def test_a_body_that_does_not_arrive_in_time_is_408(publisher: RecordingPublisher) -> None:
    """A sender whose headers pass but whose body never comes is answered 408 after
    ingress.body_timeout, and holds nothing after."""
    config = make_config()
    config = replace(config, ingress=replace(config.ingress, body_timeout=0.3))
    app = create_app(config, publisher)
    headers = {"Content-Length": "1000", "X-Webhook-Token": BENTO_TOKEN}
    async with running_server(app) as url:
        answer = await head_only(url, "/webhooks/bento-bkk/variant.update", headers, timeout=5)
    assert b"408" == answer.split(b" ", 2)[1]
    assert (0, 0) == (app.state.ingress.budget.bodies, app.state.ingress.budget.buffered)


async def test_bodies_beyond_max_concurrent_bodies_are_503(publisher: RecordingPublisher) -> None:
    """With max_concurrent_bodies = 1 and one body being received, the next request is 503 busy
    with Retry-After at once."""
    config = make_config()
    config = replace(config, ingress=replace(config.ingress, max_concurrent_bodies=1))
    app = create_app(config, publisher)
    budget = app.state.ingress.budget
    head = (
        "POST /webhooks/bento-bkk/variant.update HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: 1000\r\nX-Webhook-Token: {BENTO_TOKEN}\r\n\r\n{{"
    )
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        _reader, holder = await asyncio.open_connection(host, int(port))
        try:
            holder.write(head.encode())
            await holder.drain()
            deadline = asyncio.get_running_loop().time() + 5
            while budget.bodies < 1:  # poll until the holder's body is being read
                assert asyncio.get_running_loop().time() < deadline, "holder never read"
                await asyncio.sleep(0.01)
            response = await client.post(
                "/webhooks/bento-bkk/variant.update",
                content=b"{}",
                headers={"X-Webhook-Token": BENTO_TOKEN},
            )
        finally:
            holder.close()
    assert (503, "busy", "5") == (
        response.status_code,
        response.json()["error"],
        response.headers.get("retry-after"),
    )
