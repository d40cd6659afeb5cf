"""Platform API clients: request building and response mapping, against httpx.MockTransport."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from bridge.config import ShopConfig
from bridge.errors import ConfigError, PlatformError, RequestTooLarge
from bridge.platforms import client_for, get_platform
from bridge.platforms.base import PlatformClient, StockTarget
from bridge.platforms.bentoweb import BentoWebClient
from bridge.platforms.cyberbiz import CyberbizClient
from bridge.platforms.standard import StandardClient
from tests.platforms.support import shop

Handler = Callable[[httpx.Request], httpx.Response]
NOW = 1_720_684_800.0
VARIANT = StockTarget("variant", "5001", "1001")
GROUP = StockTarget("group", "77")


class Recorder:
    """A MockTransport handler that records requests and answers from a queue."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(body), headers=headers)


def _cyberbiz(recorder: Recorder, clock: Clock | None = None, **overrides: Any) -> CyberbizClient:
    settings: dict[str, Any] = {"api_token": "cb-token"} | overrides
    config = shop("cyberbiz", **settings)
    return CyberbizClient(config, recorder.client(), clock=clock or Clock())


async def _failure(call: Any) -> PlatformError:
    with pytest.raises(PlatformError) as info:
        await call
    return info.value


# -- Cyberbiz ----------------------------------------------------------------------------------


async def test_cyberbiz_variant_stock_request() -> None:
    """set_stock on a variant PUTs inventory_quantity to the product variant with auth headers."""
    recorder = Recorder(_json(200, {"id": 5001}))
    await _cyberbiz(recorder).set_stock(VARIANT, 7, "key-1")
    request = recorder.requests[0]
    expected = (
        "PUT",
        "https://api.example.test/v1/products/1001/product_variants/5001",
        {"inventory_quantity": 7},
        "Bearer cb-token",
        "key-1",
        "application/json",
    )
    actual = (
        request.method,
        str(request.url),
        orjson.loads(request.content),
        request.headers["authorization"],
        request.headers["idempotency-key"],
        request.headers["content-type"],
    )
    assert expected == actual


async def test_cyberbiz_group_stock_request() -> None:
    """set_stock on a sync group PUTs the group's shared count."""
    recorder = Recorder(_json(200, {}))
    await _cyberbiz(recorder).set_stock(GROUP, 3, "key-2")
    request = recorder.requests[0]
    expected = ("PUT", "/v1/inventory_sync_groups/77", {"inventory_quantity": 3}, "key-2")
    actual = (
        request.method,
        request.url.path,
        orjson.loads(request.content),
        request.headers["idempotency-key"],
    )
    assert expected == actual


async def test_cyberbiz_variant_without_product_is_not_retryable() -> None:
    """A variant target without its product id fails locally, without a request."""
    recorder = Recorder(_json(200, {}))
    error = await _failure(_cyberbiz(recorder).set_stock(StockTarget("variant", "5001"), 1, "k"))
    assert (False, [], True) == (error.retryable, recorder.requests, "product" in error.detail)


async def test_cyberbiz_without_token_is_not_retryable() -> None:
    """A shop without api_token cannot write, and retrying will not help."""
    error = await _failure(
        _cyberbiz(Recorder(_json(200, {})), api_token=None).set_stock(VARIANT, 1, "k")
    )
    assert False is error.retryable


async def test_request_over_limit_is_refused_locally() -> None:
    """A body over max_request_bytes raises RequestTooLarge before any request."""
    recorder = Recorder(_json(200, {}))
    client = _cyberbiz(recorder, max_request_bytes=10)
    with pytest.raises(RequestTooLarge) as info:
        await client.set_stock(VARIANT, 1_000_000, "k")
    assert (False, [], 10) == (info.value.retryable, recorder.requests, info.value.limit)


async def test_429_with_seconds_is_retryable_after() -> None:
    """429 with Retry-After: 3 → retryable, retry_after 3 s."""
    recorder = Recorder(_json(429, {"error": "slow down"}, {"Retry-After": "3"}))
    error = await _failure(_cyberbiz(recorder).set_stock(VARIANT, 1, "k"))
    assert (True, 3.0, 429) == (error.retryable, error.retry_after, error.status)


async def test_429_with_http_date_is_retryable_after() -> None:
    """429 with an HTTP-date Retry-After → seconds from now."""
    when = email.utils.formatdate(NOW + 120, usegmt=True)
    recorder = Recorder(_json(429, {}, {"Retry-After": when}))
    error = await _failure(_cyberbiz(recorder).set_stock(VARIANT, 1, "k"))
    assert (True, 120.0) == (error.retryable, error.retry_after)


async def test_429_without_retry_after() -> None:
    """429 without Retry-After is retryable with no hint."""
    error = await _failure(_cyberbiz(Recorder(_json(429, {}))).set_stock(VARIANT, 1, "k"))
    assert (True, None) == (error.retryable, error.retry_after)


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504])
async def test_transient_statuses_are_retryable(status: int) -> None:
    """408, 409 and 5xx are worth retrying."""
    error = await _failure(_cyberbiz(Recorder(_json(status, {}))).set_stock(VARIANT, 1, "k"))
    assert (True, status) == (error.retryable, error.status)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": "Variant not found"}, "Variant not found"),
        ({"message": "No such product"}, "No such product"),
        ({"messages": ["bad quantity", "too big"]}, "bad quantity; too big"),
    ],
)
async def test_other_4xx_is_final_with_platform_message(body: Any, message: str) -> None:
    """A 404 is not retryable and carries the platform's own message."""
    error = await _failure(_cyberbiz(Recorder(_json(404, body))).set_stock(VARIANT, 1, "k"))
    assert (False, 404, True) == (error.retryable, error.status, error.detail.endswith(message))


async def test_non_json_error_body_is_quoted() -> None:
    """An HTML error page becomes a short text message."""
    recorder = Recorder(httpx.Response(400, text="<h1>Bad   Request</h1>"))
    error = await _failure(_cyberbiz(recorder).set_stock(VARIANT, 1, "k"))
    assert True is error.detail.endswith("<h1>Bad Request</h1>")


async def test_422_on_sync_group_mentions_add_on() -> None:
    """A 422 for a sync group explains the missing inventory sync group add-on."""
    recorder = Recorder(_json(422, {"error": "Unprocessable"}))
    error = await _failure(_cyberbiz(recorder).set_stock(GROUP, 1, "k"))
    assert (False, True) == (error.retryable, "inventory sync group add-on" in error.detail)


async def test_422_on_variant_does_not_mention_add_on() -> None:
    """A 422 for a variant is just the platform's message."""
    error = await _failure(
        _cyberbiz(Recorder(_json(422, {"error": "x"}))).set_stock(VARIANT, 1, "k")
    )
    assert False is ("add-on" in error.detail)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("slow"),
        httpx.ConnectTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("reset"),
    ],
)
async def test_transport_errors_are_retryable(exc: Exception) -> None:
    """Timeouts and connection failures are retryable."""
    error = await _failure(_cyberbiz(Recorder(exc)).set_stock(VARIANT, 1, "k"))
    assert (True, None) == (error.retryable, error.status)


async def test_list_sync_groups_bare_list() -> None:
    """GET /v1/inventory_sync_groups returning a list gives that list."""
    groups = [{"id": 77, "title": "Tee", "inventory_quantity": 5}]
    recorder = Recorder(_json(200, groups))
    actual = await _cyberbiz(recorder).list_sync_groups()
    assert (groups, "GET", "/v1/inventory_sync_groups") == (
        actual,
        recorder.requests[0].method,
        recorder.requests[0].url.path,
    )


async def test_list_sync_groups_wrapped() -> None:
    """A wrapped list is unwrapped."""
    groups = [{"id": 77}]
    recorder = Recorder(_json(200, {"inventory_sync_groups": groups}))
    assert groups == await _cyberbiz(recorder).list_sync_groups()


async def test_list_sync_groups_without_add_on() -> None:
    """Listing groups on a shop without the add-on fails with the explanation."""
    error = await _failure(_cyberbiz(Recorder(_json(422, {}))).list_sync_groups())
    assert True is ("add-on" in error.detail)


async def test_get_sync_group() -> None:
    """GET /v1/inventory_sync_groups/{id} returns the group object."""
    group = {"id": 77, "variants": [{"product_variant_id": 5001}]}
    recorder = Recorder(_json(200, {"inventory_sync_group": group}))
    actual = await _cyberbiz(recorder).get_sync_group("77")
    assert (group, "/v1/inventory_sync_groups/77") == (actual, recorder.requests[0].url.path)


async def test_unexpected_list_shape_is_an_error() -> None:
    """A response that is not a list of groups is a non-retryable error."""
    error = await _failure(_cyberbiz(Recorder(_json(200, {"a": 1}))).list_sync_groups())
    assert False is error.retryable


# -- BentoWeb ----------------------------------------------------------------------------------


def _token(value: str = "tok-1", expires_in: Any = 3600) -> httpx.Response:
    return _json(200, {"access_token": value, "token_type": "Bearer", "expires_in": expires_in})


def _bento(recorder: Recorder, clock: Clock | None = None, **overrides: Any) -> BentoWebClient:
    settings: dict[str, Any] = {"client_id": "cid", "client_secret": "csecret"} | overrides
    return BentoWebClient(shop("bentoweb", **settings), recorder.client(), clock=clock or Clock())


async def test_bentoweb_token_request_and_stock_write() -> None:
    """Client credentials are posted as a form; the write PUTs {"stock": N} with the token."""
    recorder = Recorder(_token(), _json(200, {"status": 1}))
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
    recorder = Recorder(_token(), _json(200, {}), _json(200, {}))
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
    recorder = Recorder(_token("tok-1"), _json(401, {}), _token("tok-2"), _json(200, {}))
    client = _bento(recorder)
    error = await _failure(client.set_stock(StockTarget("variant", "1"), 5, "k"))
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
    recorder = Recorder(_json(401, {"error": "invalid_client"}))
    error = await _failure(_bento(recorder).set_stock(StockTarget("variant", "1"), 5, "k"))
    assert (False, True) == (error.retryable, "invalid_client" in error.detail)


async def test_bentoweb_token_endpoint_outage_is_retryable() -> None:
    """A 503 from the token endpoint is retryable."""
    error = await _failure(
        _bento(Recorder(_json(503, {}))).set_stock(StockTarget("variant", "1"), 5, "k")
    )
    assert True is error.retryable


async def test_bentoweb_without_credentials_is_final() -> None:
    """A shop without client_id/client_secret cannot write."""
    recorder = Recorder(_token())
    client = _bento(recorder, client_id=None)
    error = await _failure(client.set_stock(StockTarget("variant", "1"), 5, "k"))
    assert (False, []) == (error.retryable, recorder.requests)


async def test_bentoweb_group_target_is_final() -> None:
    """Cyberbiz sync groups are not BentoWeb targets."""
    error = await _failure(_bento(Recorder(_token())).set_stock(GROUP, 5, "k"))
    assert False is error.retryable


async def test_bentoweb_429_is_retryable() -> None:
    """BentoWeb's 429 maps like Cyberbiz's."""
    recorder = Recorder(_token(), _json(429, {}, {"Retry-After": "2"}))
    error = await _failure(_bento(recorder).set_stock(StockTarget("variant", "1"), 5, "k"))
    assert (True, 2.0) == (error.retryable, error.retry_after)


# -- registry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "kind"),
    [("cyberbiz", CyberbizClient), ("bentoweb", BentoWebClient), ("standard", StandardClient)],
)
async def test_client_for_picks_the_platform_client(platform: str, kind: type[Any]) -> None:
    """client_for returns the shop's platform client."""
    async with httpx.AsyncClient() as http:
        client: PlatformClient = client_for(shop(platform), http)
        assert kind is type(client)


async def test_standard_client_cannot_write() -> None:
    """Standard Webhooks shops have no stock API: a non-retryable error."""
    async with httpx.AsyncClient() as http:
        error = await _failure(client_for(shop("standard"), http).set_stock(VARIANT, 1, "k"))
    assert False is error.retryable


async def test_unknown_platform_is_a_config_error() -> None:
    """get_platform and client_for name an unknown platform."""
    with pytest.raises(ConfigError, match="shopify"):
        get_platform("shopify")
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError, match="shopify"):
            client_for(ShopConfig(id="s", platform="shopify"), http)
