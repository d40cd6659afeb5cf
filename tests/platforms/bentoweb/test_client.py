"""The BentoWeb API client: OAuth tokens, writes and their failures, against httpx.MockTransport."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson

from bridge.platforms.base import StockTarget
from bridge.platforms.bentoweb import BentoWebClient
from tests.platforms.http_support import NOW, Clock, Recorder, failure, json_response
from tests.platforms.support import shop

VARIANT = StockTarget("variant", "5001", "1001")
GROUP = StockTarget("group", "77")


# -- BentoWeb ----------------------------------------------------------------------------------


def _token(value: str = "tok-1", expires_in: Any = 3600) -> httpx.Response:
    return json_response(
        200, {"access_token": value, "token_type": "Bearer", "expires_in": expires_in}
    )


def _bento(recorder: Recorder, clock: Clock | None = None, **overrides: Any) -> BentoWebClient:
    settings: dict[str, Any] = {"client_id": "cid", "client_secret": "csecret"} | overrides
    return BentoWebClient(shop("bentoweb", **settings), recorder.client(), clock=clock or Clock())


async def test_bentoweb_token_request_and_stock_write() -> None:
    """Client credentials are posted as a form; the write PUTs {"stock": N} with the token."""
    recorder = Recorder(_token(), json_response(200, {"status": 1}))
    await _bento(recorder).set_stock(StockTarget("variant", "753758"), 12, "key-9")
    token_request, write = recorder.requests
    expected = (
        ("POST", "/oauth/token", "application/x-www-form-urlencoded"),
        {"grant_type": ["client_credentials"], "client_id": ["cid"], "client_secret": ["csecret"]},
        ("PUT", "/product-variant/753758", {"stock": 12}, "Bearer tok-1", "key-9"),
    )
    actual = (
        (token_request.method, token_request.url.path, token_request.headers["content-type"]),
        parse_qs(token_request.content.decode()),
        (
            write.method,
            write.url.path,
            orjson.loads(write.content),
            write.headers["authorization"],
            write.headers["idempotency-key"],
        ),
    )
    assert expected == actual


async def test_bentoweb_token_is_cached() -> None:
    """Two writes within the token's life fetch it once."""
    recorder = Recorder(_token(), json_response(200, {}), json_response(200, {}))
    client = _bento(recorder)
    await client.set_stock(StockTarget("variant", "1"), 1, "a")
    await client.set_stock(StockTarget("variant", "1"), 2, "b")
    assert ["/oauth/token", "/product-variant/1", "/product-variant/1"] == [
        r.url.path for r in recorder.requests
    ]


async def test_bentoweb_token_refreshed_a_minute_before_expiry() -> None:
    """A one-hour token is replaced once less than 60 s of it remain."""
    recorder = Recorder(_token("tok-1"), _token("tok-2"))
    clock = Clock()
    client = _bento(recorder, clock)
    first = await client.access_token()
    clock.now = NOW + 3600 - 61
    still = await client.access_token()
    clock.now = NOW + 3600 - 59
    refreshed = await client.access_token()
    assert ("tok-1", "tok-1", "tok-2") == (first, still, refreshed)


async def test_bentoweb_short_token_refreshed_at_ninety_percent() -> None:
    """A 100 s token is refreshed 10 s (10%) before expiry, not 60 s."""
    recorder = Recorder(_token("tok-1", 100), _token("tok-2", 100))
    clock = Clock()
    client = _bento(recorder, clock)
    await client.access_token()
    clock.now = NOW + 89
    before = await client.access_token()
    clock.now = NOW + 91
    assert ("tok-1", "tok-2") == (before, await client.access_token())


async def test_bentoweb_401_refreshes_the_token_and_leaves_the_retry_to_the_relay() -> None:
    """A 401 on the write fetches a new token and raises a retryable error instead of writing
    again at once (a second write would fall outside the shop's rate limit); the retry, through
    a new slot, uses the fresh token."""
    recorder = Recorder(
        _token("tok-1"), json_response(401, {}), _token("tok-2"), json_response(200, {})
    )
    client = _bento(recorder)
    error = await failure(client.set_stock(StockTarget("variant", "1"), 5, "k"))
    assert (True, 401, 3) == (error.retryable, error.status, len(recorder.requests))
    await client.set_stock(StockTarget("variant", "1"), 5, "k")
    expected = [
        ("/oauth/token", None),
        ("/product-variant/1", "Bearer tok-1"),
        ("/oauth/token", None),
        ("/product-variant/1", "Bearer tok-2"),
    ]
    assert expected == [(r.url.path, r.headers.get("authorization")) for r in recorder.requests]


async def test_bentoweb_rejected_credentials_are_final() -> None:
    """The token endpoint refusing the credentials is not retryable."""
    recorder = Recorder(json_response(401, {"error": "invalid_client"}))
    error = await failure(_bento(recorder).set_stock(StockTarget("variant", "1"), 5, "k"))
    assert (False, True) == (error.retryable, "invalid_client" in error.detail)


async def test_bentoweb_token_endpoint_outage_is_retryable() -> None:
    """A 503 from the token endpoint is retryable."""
    error = await failure(
        _bento(Recorder(json_response(503, {}))).set_stock(StockTarget("variant", "1"), 5, "k")
    )
    assert True is error.retryable


async def test_bentoweb_without_credentials_is_final() -> None:
    """A shop without client_id/client_secret cannot write."""
    recorder = Recorder(_token())
    client = _bento(recorder, client_id=None)
    error = await failure(client.set_stock(StockTarget("variant", "1"), 5, "k"))
    assert (False, []) == (error.retryable, recorder.requests)


async def test_bentoweb_group_target_is_final() -> None:
    """Cyberbiz sync groups are not BentoWeb targets."""
    error = await failure(_bento(Recorder(_token())).set_stock(GROUP, 5, "k"))
    assert False is error.retryable


async def test_bentoweb_429_is_retryable() -> None:
    """BentoWeb's 429 maps like Cyberbiz's."""
    recorder = Recorder(_token(), json_response(429, {}, {"Retry-After": "2"}))
    error = await failure(_bento(recorder).set_stock(StockTarget("variant", "1"), 5, "k"))
    assert (True, 2.0) == (error.retryable, error.retry_after)


async def test_bentoweb_get_stock_reads_the_variant_stock() -> None:
    """get_stock GETs the product variant with the bearer token and answers its stock."""
    recorder = Recorder(_token(), json_response(200, {"variant_id": 753758, "stock": 9}))
    level = await _bento(recorder).get_stock(StockTarget("variant", "753758"))
    request = recorder.requests[1]
    assert (9, "GET", "/product-variant/753758", "Bearer tok-1") == (
        level, request.method, request.url.path, request.headers["authorization"],
    )  # fmt: skip


async def test_bentoweb_get_stock_401_refreshes_and_is_retryable() -> None:
    """A 401 on a read refreshes the token and leaves the retry to the caller."""
    recorder = Recorder(_token("old"), json_response(401, {}), _token("new"))
    client = _bento(recorder)
    error = await failure(client.get_stock(StockTarget("variant", "1")))
    assert (True, 401, "new") == (error.retryable, error.status, await client.access_token())


async def test_bentoweb_get_stock_without_stock_is_final() -> None:
    """An answer without a stock field is a non-retryable PlatformError naming it."""
    recorder = Recorder(_token(), json_response(200, {"variant_id": 1}))
    error = await failure(_bento(recorder).get_stock(StockTarget("variant", "1")))
    assert (False, True) == (error.retryable, "stock" in str(error))
