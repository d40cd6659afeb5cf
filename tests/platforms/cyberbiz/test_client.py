"""The Cyberbiz API client: request building and response mapping, against httpx.MockTransport."""

from __future__ import annotations

import email.utils
from typing import Any

import httpx
import orjson
import pytest

from bridge.errors import RequestTooLarge
from bridge.platforms.base import StockTarget
from bridge.platforms.cyberbiz import CyberbizClient
from tests.platforms.http_support import NOW, Clock, Recorder, failure, json_response
from tests.platforms.support import shop

VARIANT = StockTarget("variant", "5001", "1001")
GROUP = StockTarget("group", "77")


def _cyberbiz(recorder: Recorder, clock: Clock | None = None, **overrides: Any) -> CyberbizClient:
    settings: dict[str, Any] = {"api_token": "cb-token"} | overrides
    config = shop("cyberbiz", **settings)
    return CyberbizClient(config, recorder.client(), clock=clock or Clock())


# -- Cyberbiz ----------------------------------------------------------------------------------


async def test_cyberbiz_variant_stock_request() -> None:
    """set_stock on a variant PUTs inventory_quantity to the product variant with auth headers."""
    recorder = Recorder(json_response(200, {"id": 5001}))
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
    recorder = Recorder(json_response(200, {}))
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
    recorder = Recorder(json_response(200, {}))
    error = await failure(_cyberbiz(recorder).set_stock(StockTarget("variant", "5001"), 1, "k"))
    assert (False, [], True) == (error.retryable, recorder.requests, "product" in error.detail)


async def test_cyberbiz_without_token_is_not_retryable() -> None:
    """A shop without api_token cannot write, and retrying will not help."""
    error = await failure(
        _cyberbiz(Recorder(json_response(200, {})), api_token=None).set_stock(VARIANT, 1, "k")
    )
    assert False is error.retryable


async def test_request_over_limit_is_refused_locally() -> None:
    """A body over max_request_bytes raises RequestTooLarge before any request."""
    recorder = Recorder(json_response(200, {}))
    client = _cyberbiz(recorder, max_request_bytes=10)
    with pytest.raises(RequestTooLarge) as info:
        await client.set_stock(VARIANT, 1_000_000, "k")
    assert (False, [], 10) == (info.value.retryable, recorder.requests, info.value.limit)


async def test_429_with_seconds_is_retryable_after() -> None:
    """429 with Retry-After: 3 → retryable, retry_after 3 s."""
    recorder = Recorder(json_response(429, {"error": "slow down"}, {"Retry-After": "3"}))
    error = await failure(_cyberbiz(recorder).set_stock(VARIANT, 1, "k"))
    assert (True, 3.0, 429) == (error.retryable, error.retry_after, error.status)


async def test_429_with_http_date_is_retryable_after() -> None:
    """429 with an HTTP-date Retry-After → seconds from now."""
    when = email.utils.formatdate(NOW + 120, usegmt=True)
    recorder = Recorder(json_response(429, {}, {"Retry-After": when}))
    error = await failure(_cyberbiz(recorder).set_stock(VARIANT, 1, "k"))
    assert (True, 120.0) == (error.retryable, error.retry_after)


async def test_429_without_retry_after() -> None:
    """429 without Retry-After is retryable with no hint."""
    error = await failure(_cyberbiz(Recorder(json_response(429, {}))).set_stock(VARIANT, 1, "k"))
    assert (True, None) == (error.retryable, error.retry_after)


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504])
async def test_transient_statuses_are_retryable(status: int) -> None:
    """408, 409 and 5xx are worth retrying."""
    error = await failure(_cyberbiz(Recorder(json_response(status, {}))).set_stock(VARIANT, 1, "k"))
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
    error = await failure(_cyberbiz(Recorder(json_response(404, body))).set_stock(VARIANT, 1, "k"))
    assert (False, 404, True) == (error.retryable, error.status, error.detail.endswith(message))


async def test_non_json_error_body_is_quoted() -> None:
    """An HTML error page becomes a short text message."""
    recorder = Recorder(httpx.Response(400, text="<h1>Bad   Request</h1>"))
    error = await failure(_cyberbiz(recorder).set_stock(VARIANT, 1, "k"))
    assert True is error.detail.endswith("<h1>Bad Request</h1>")


async def test_422_on_sync_group_mentions_add_on() -> None:
    """A 422 for a sync group explains the missing inventory sync group add-on."""
    recorder = Recorder(json_response(422, {"error": "Unprocessable"}))
    error = await failure(_cyberbiz(recorder).set_stock(GROUP, 1, "k"))
    assert (False, True) == (error.retryable, "inventory sync group add-on" in error.detail)


async def test_422_on_variant_does_not_mention_add_on() -> None:
    """A 422 for a variant is just the platform's message."""
    error = await failure(
        _cyberbiz(Recorder(json_response(422, {"error": "x"}))).set_stock(VARIANT, 1, "k")
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
    error = await failure(_cyberbiz(Recorder(exc)).set_stock(VARIANT, 1, "k"))
    assert (True, None) == (error.retryable, error.status)


async def test_list_sync_groups_bare_list() -> None:
    """GET /v1/inventory_sync_groups returning a list gives that list."""
    groups = [{"id": 77, "title": "Tee", "inventory_quantity": 5}]
    recorder = Recorder(json_response(200, groups))
    actual = await _cyberbiz(recorder).list_sync_groups()
    assert (groups, "GET", "/v1/inventory_sync_groups") == (
        actual,
        recorder.requests[0].method,
        recorder.requests[0].url.path,
    )


async def test_list_sync_groups_wrapped() -> None:
    """A wrapped list is unwrapped."""
    groups = [{"id": 77}]
    recorder = Recorder(json_response(200, {"inventory_sync_groups": groups}))
    assert groups == await _cyberbiz(recorder).list_sync_groups()


async def test_list_sync_groups_without_add_on() -> None:
    """Listing groups on a shop without the add-on fails with the explanation."""
    error = await failure(_cyberbiz(Recorder(json_response(422, {}))).list_sync_groups())
    assert True is ("add-on" in error.detail)


async def test_get_sync_group() -> None:
    """GET /v1/inventory_sync_groups/{id} returns the group object."""
    group = {"id": 77, "variants": [{"product_variant_id": 5001}]}
    recorder = Recorder(json_response(200, {"inventory_sync_group": group}))
    actual = await _cyberbiz(recorder).get_sync_group("77")
    assert (group, "/v1/inventory_sync_groups/77") == (actual, recorder.requests[0].url.path)


async def test_unexpected_list_shape_is_an_error() -> None:
    """A response that is not a list of groups is a non-retryable error."""
    error = await failure(_cyberbiz(Recorder(json_response(200, {"a": 1}))).list_sync_groups())
    assert False is error.retryable


async def test_get_stock_of_a_variant_reads_inventory_quantity() -> None:
    """get_stock GETs the product variant and answers its inventory_quantity (bare or wrapped)."""
    bare = Recorder(json_response(200, {"id": 5001, "inventory_quantity": 6}))
    wrapped = Recorder(json_response(200, {"product_variant": {"inventory_quantity": "8"}}))
    levels = (await _cyberbiz(bare).get_stock(VARIANT), await _cyberbiz(wrapped).get_stock(VARIANT))
    request = bare.requests[0]
    expected = ((6, 8), "GET", "https://api.example.test/v1/products/1001/product_variants/5001")
    assert expected == (levels, request.method, str(request.url))


async def test_get_stock_of_a_sync_group_reads_its_shared_count() -> None:
    """get_stock on a group GETs the inventory sync group's inventory_quantity."""
    recorder = Recorder(json_response(200, {"inventory_sync_group": {"inventory_quantity": 4}}))
    level = await _cyberbiz(recorder).get_stock(GROUP)
    assert (4, "/v1/inventory_sync_groups/77") == (level, recorder.requests[0].url.path)


@pytest.mark.parametrize("body", [{"id": 5001}, {"inventory_quantity": "many"}, [1, 2]])
async def test_get_stock_without_a_usable_level_is_final(body: Any) -> None:
    """An answer without an integer inventory_quantity is a non-retryable PlatformError."""
    error = await failure(_cyberbiz(Recorder(json_response(200, body))).get_stock(VARIANT))
    assert (False, True) == (error.retryable, "inventory_quantity" in str(error))
