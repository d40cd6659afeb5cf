"""The simulator over real HTTP on loopback: contract, limits, idempotency, faults, inspection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bridge.devtools.simulator import point_config_at, running_simulator
from tests.devtools.simulator.helpers import AUTH, CONFIG, bento_token, variant_path

pytestmark = pytest.mark.timeout(60)


async def stock(client: httpx.AsyncClient, shop: str) -> dict[str, Any]:
    result: dict[str, Any] = (await client.get("/_sim/stock")).json()[shop]
    return result


async def requests_log(client: httpx.AsyncClient, shop: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = (await client.get(f"/_sim/requests?shop={shop}")).json()
    return result


async def test_put_variant_sets_stock_and_answers_the_variant(client: httpx.AsyncClient) -> None:
    """PUT inventory_quantity answers the variant JSON and changes the stock."""
    response = await client.put(variant_path("cb-1"), json={"inventory_quantity": 7}, headers=AUTH)
    body = response.json()
    assert 200 == response.status_code
    assert {"id": 5001, "product_id": 1001, "inventory_quantity": 7} == {
        k: body[k] for k in ("id", "product_id", "inventory_quantity")
    }
    assert 19 == len(body["updated_at"])  # YYYY-MM-DD HH:MM:SS
    assert {"variants": {"5001": 7}, "groups": {}} == await stock(client, "cb-1")


async def test_get_variant_reads_it_back(client: httpx.AsyncClient) -> None:
    """GET returns what PUT stored; an unknown variant is 404."""
    await client.put(variant_path("cb-1"), json={"inventory_quantity": 3}, headers=AUTH)
    known = await client.get(variant_path("cb-1"), headers=AUTH)
    unknown = await client.get(variant_path("cb-1", "404404"), headers=AUTH)
    assert (200, 3) == (known.status_code, known.json()["inventory_quantity"])
    assert (404, {"error": "not found"}) == (unknown.status_code, unknown.json())


@pytest.mark.parametrize(
    "path",
    [
        variant_path("nope"),
        variant_path("bw-1"),  # a BentoWeb shop has no Cyberbiz API
        variant_path("std-1"),
        "/bentoweb/cb-1/product-variant/1",
    ],
)
async def test_unknown_shop_is_404(client: httpx.AsyncClient, path: str) -> None:
    """A shop that is not a simulated shop of that platform answers 404 JSON."""
    response = await client.put(path, json={"inventory_quantity": 1}, headers=AUTH)
    assert (404, {"error": "not found"}) == (response.status_code, response.json())


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Y2ItdG9rZW4="}],
)
async def test_bad_or_missing_cyberbiz_token_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Only 'Bearer <api_token>' gets in; nothing is applied otherwise."""
    response = await client.put(
        variant_path("cb-1"), json={"inventory_quantity": 1}, headers=headers
    )
    assert (401, {"error": "unauthorized"}) == (response.status_code, response.json())
    assert {"variants": {}, "groups": {}} == await stock(client, "cb-1")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[1]", "body must be a JSON object"),
        (b"{}", "inventory_quantity is required"),
        (b'{"inventory_quantity": "5"}', "inventory_quantity must be an integer"),
        (b'{"inventory_quantity": 1.5}', "inventory_quantity must be an integer"),
        (b'{"inventory_quantity": true}', "inventory_quantity must be an integer"),
        (b'{"inventory_quantity": -1}', "inventory_quantity must be between 0 and 2147483647"),
    ],
)
async def test_invalid_quantity_is_422(
    client: httpx.AsyncClient, content: bytes, message: str
) -> None:
    """Malformed JSON or a non-integer/negative quantity answers 422 {"messages": [...]}."""
    response = await client.put(variant_path("cb-fast"), content=content, headers=AUTH)
    assert (422, {"messages": [message]}) == (response.status_code, response.json())


async def test_rate_limit_refuses_past_five_in_one_second(client: httpx.AsyncClient) -> None:
    """Seven quick writes: five 200, then 429 with Retry-After; all seven are logged."""
    started = time.monotonic()
    responses = [
        await client.put(variant_path("cb-1"), json={"inventory_quantity": i}, headers=AUTH)
        for i in range(7)
    ]
    assert time.monotonic() - started < 1.0, "the machine was too slow to test a 1 s window"
    assert [200] * 5 + [429] * 2 == [r.status_code for r in responses]
    assert {"error": "rate limit exceeded"} == responses[5].json()
    assert int(responses[5].headers["retry-after"]) >= 1
    assert [200] * 5 + [429] * 2 == [e["status"] for e in await requests_log(client, "cb-1")]
    stats = (await client.get("/_sim/stats")).json()["cb-1"]
    assert {"requests": 7, "applied": 5, "429": 2, "max_in_any_1s": 7} == {
        k: stats[k] for k in ("requests", "applied", "429", "max_in_any_1s")
    }


async def test_idempotency_key_replays_without_a_second_effect(client: httpx.AsyncClient) -> None:
    """A repeated key gets the stored answer and changes nothing, even after another write."""
    keyed = {**AUTH, "Idempotency-Key": "k-1"}
    first = await client.put(variant_path("cb-fast"), json={"inventory_quantity": 5}, headers=keyed)
    await client.put(variant_path("cb-fast"), json={"inventory_quantity": 9}, headers=AUTH)
    again = await client.put(variant_path("cb-fast"), json={"inventory_quantity": 5}, headers=keyed)
    assert (200, first.content) == (again.status_code, again.content)
    assert "true" == again.headers["idempotent-replayed"]
    assert {"5001": 9} == (await stock(client, "cb-fast"))["variants"]
    log = [(e["idempotency_key"], e["replay"], e["applied"]) for e in await requests_log(client, "cb-fast")]  # fmt: skip
    assert [("k-1", False, True), (None, False, True), ("k-1", True, False)] == log


async def test_idempotency_key_reused_with_another_body_is_422(client: httpx.AsyncClient) -> None:
    """Like Stripe: the same key with a different request is refused, not applied."""
    keyed = {**AUTH, "Idempotency-Key": "k-2"}
    await client.put(variant_path("cb-fast"), json={"inventory_quantity": 5}, headers=keyed)
    other = await client.put(variant_path("cb-fast"), json={"inventory_quantity": 6}, headers=keyed)
    assert 422 == other.status_code
    assert {"5001": 5} == (await stock(client, "cb-fast"))["variants"]


async def test_same_key_in_another_shop_is_another_request(client: httpx.AsyncClient) -> None:
    """Idempotency keys are scoped to the shop."""
    keyed = {**AUTH, "Idempotency-Key": "k-3"}
    await client.put(variant_path("cb-fast"), json={"inventory_quantity": 5}, headers=keyed)
    other = await client.put(variant_path("cb-1"), json={"inventory_quantity": 6}, headers=keyed)
    assert (200, 6) == (other.status_code, other.json()["inventory_quantity"])


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    """A body past max_request_bytes is refused, whether its length is declared or streamed."""
    big = b'{"inventory_quantity": 1, "pad": "' + b"x" * 2000 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 256):
            yield big[i : i + 256]

    declared = await client.put(variant_path("cb-small"), content=big, headers=AUTH)
    streamed = await client.put(variant_path("cb-small"), content=chunks(), headers=AUTH)
    fits = await client.put(variant_path("cb-small"), content=big[:1000] + b'"}', headers=AUTH)
    assert [413, 413] == [declared.status_code, streamed.status_code]
    assert {"error": "request body too large"} == declared.json()
    assert 200 == fits.status_code


async def test_default_limit_is_two_mebibytes(client: httpx.AsyncClient) -> None:
    """2 MiB is accepted, one byte more is 413."""
    head, tail = b'{"inventory_quantity": 1, "pad": "', b'"}'
    exact = head + b"x" * (2 * 1024 * 1024 - len(head) - len(tail)) + tail
    over = head + b"x" * (2 * 1024 * 1024 - len(head) - len(tail) + 1) + tail
    statuses = [
        (await client.put(variant_path("cb-fast"), content=body, headers=AUTH)).status_code
        for body in (exact, over)
    ]
    assert [200, 413] == statuses


async def test_sync_groups_without_the_add_on_are_422(client: httpx.AsyncClient) -> None:
    """A shop without the inventory sync group add-on answers 422 on every group call."""
    expected = (422, {"error": "inventory sync group add-on not enabled"})
    base = "/cyberbiz/cb-nogroups/v1/inventory_sync_groups"
    listed = await client.get(base, headers=AUTH)
    put = await client.put(f"{base}/7", json={"inventory_quantity": 1}, headers=AUTH)
    assert [expected, expected] == [(r.status_code, r.json()) for r in (listed, put)]


async def test_sync_group_put_sets_every_member(client: httpx.AsyncClient) -> None:
    """PUT a group's inventory_quantity: the group and its member variants show it."""
    seed = {"shop": "cb-1", "variants": {"1": 4, "2": 4}, "groups": {"70": 4},
            "group_members": {"70": ["1", "2"]}}  # fmt: skip
    assert 200 == (await client.post("/_sim/stock", json=seed)).status_code
    base = "/cyberbiz/cb-1/v1/inventory_sync_groups"
    put = await client.put(f"{base}/70", json={"inventory_quantity": 11}, headers=AUTH)
    listed = await client.get(base, headers=AUTH)
    assert (200, 11) == (put.status_code, put.json()["inventory_quantity"])
    assert [{"product_variant_id": 1}, {"product_variant_id": 2}] == listed.json()[0]["variants"]
    assert {"variants": {"1": 11, "2": 11}, "groups": {"70": 11}} == await stock(client, "cb-1")


async def test_bentoweb_token_then_write(client: httpx.AsyncClient) -> None:
    """client_credentials gives a Bearer token that the variant PUT accepts."""
    form = {"grant_type": "client_credentials", "client_id": "bw-client",
            "client_secret": "bw-client-secret"}  # fmt: skip
    issued = await client.post("/bentoweb/bw-1/oauth/token", data=form)
    token = issued.json()
    assert ("Bearer", 3600) == (token["token_type"], token["expires_in"])
    response = await client.put(
        "/bentoweb/bw-1/product-variant/753758",
        json={"stock": 12},
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert (200, {"variant_id": 753758, "stock": 12}) == (response.status_code, response.json())


async def test_bentoweb_get_reads_a_variant_without_writing(client: httpx.AsyncClient) -> None:
    """GET /product-variant/{id} answers its stock, applies nothing; an unknown one is 404."""
    await client.post("/_sim/stock", json={"shop": "bw-1", "variants": {"77": 6}})
    headers = {"Authorization": f"Bearer {await bento_token(client)}"}
    known = await client.get("/bentoweb/bw-1/product-variant/77", headers=headers)
    unknown = await client.get("/bentoweb/bw-1/product-variant/78", headers=headers)
    stats = (await client.get("/_sim/stats")).json()["bw-1"]
    assert (200, {"variant_id": 77, "stock": 6}, 404, 0) == (
        known.status_code, known.json(), unknown.status_code, stats["applied"],
    )  # fmt: skip


async def test_bentoweb_accepts_basic_client_credentials(client: httpx.AsyncClient) -> None:
    """The client id and secret may come as HTTP Basic auth instead of form fields."""
    response = await client.post(
        "/bentoweb/bw-1/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("bw-client", "bw-client-secret"),
    )
    assert 200 == response.status_code


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"grant_type": "client_credentials", "client_id": "bw-client", "client_secret": "no"}, 401),
        ({"grant_type": "client_credentials", "client_id": "x", "client_secret": "bw-client-secret"}, 401),
        ({"grant_type": "password", "client_id": "bw-client", "client_secret": "bw-client-secret"}, 400),
    ],
)  # fmt: skip
async def test_bentoweb_token_refusals(
    client: httpx.AsyncClient, form: dict[str, str], status: int
) -> None:
    """Wrong client credentials are 401, another grant type 400."""
    assert status == (await client.post("/bentoweb/bw-1/oauth/token", data=form)).status_code


async def test_bentoweb_unknown_or_expired_token_is_401(client: httpx.AsyncClient) -> None:
    """A made-up token and a revoked one are both refused."""
    token = await bento_token(client)
    path = "/bentoweb/bw-1/product-variant/1"
    made_up = await client.put(path, json={"stock": 1}, headers={"Authorization": "Bearer nope"})
    expired = await client.post("/_sim/tokens", json={"expire": True, "shop": "bw-1"})
    revoked = await client.put(
        path, json={"stock": 1}, headers={"Authorization": f"Bearer {token}"}
    )
    assert (401, 1, 401) == (made_up.status_code, expired.json()["expired"], revoked.status_code)


async def test_token_ttl_is_configurable() -> None:
    """running_simulator(token_ttl=...) sets expires_in."""
    async with (
        running_simulator(CONFIG, token_ttl=120) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        form = {"grant_type": "client_credentials", "client_id": "bw-client",
                "client_secret": "bw-client-secret"}  # fmt: skip
        response = await client.post("/bentoweb/bw-1/oauth/token", data=form)
    assert 120 == response.json()["expires_in"]


async def test_seeded_faults_are_reproducible(client: httpx.AsyncClient) -> None:
    """The same seed and settings give the same statuses for the same request sequence."""

    async def statuses() -> list[int]:
        return [
            (await client.get(variant_path("cb-fast"), headers=AUTH)).status_code for _ in range(30)
        ]

    await client.put(variant_path("cb-fast"), json={"inventory_quantity": 1}, headers=AUTH)
    await client.post("/_sim/faults", json={"fail_rate": 0.4, "seed": 7})
    first = await statuses()
    await client.post("/_sim/faults", json={"seed": 7})
    second = await statuses()
    assert first == second
    assert {200} < set(first) <= {200, 500, 502, 503}


async def test_fail_after_applies_then_500_and_the_retry_replays(
    client: httpx.AsyncClient,
) -> None:
    """fail_after: the write lands but the answer is 500; the retry with its key is a replay."""
    await client.post("/_sim/faults", json={"fail_after_rate": 1.0, "seed": 1})
    keyed = {**AUTH, "Idempotency-Key": "k-after"}
    failed = await client.put(
        variant_path("cb-fast"), json={"inventory_quantity": 4}, headers=keyed
    )
    assert (500, {"5001": 4}) == (failed.status_code, (await stock(client, "cb-fast"))["variants"])
    retried = await client.put(
        variant_path("cb-fast"), json={"inventory_quantity": 4}, headers=keyed
    )
    assert (200, 4) == (retried.status_code, retried.json()["inventory_quantity"])
    stats = (await client.get("/_sim/stats")).json()["cb-fast"]
    assert (1, 1) == (stats["applied"], stats["replays"])


async def test_fail_before_applies_nothing(client: httpx.AsyncClient) -> None:
    """fail_rate 1.0: every write answers 5xx and the stock is untouched."""
    await client.post("/_sim/faults", json={"fail_rate": 1.0})
    response = await client.put(variant_path("cb-fast"), json={"inventory_quantity": 4}, headers=AUTH)  # fmt: skip
    assert response.status_code in (500, 502, 503)
    assert {} == (await stock(client, "cb-fast"))["variants"]


async def test_spurious_429_carries_retry_after(client: httpx.AsyncClient) -> None:
    """rate_429 answers 429 with Retry-After even under the rate limit."""
    await client.post("/_sim/faults", json={"rate_429": 1.0, "retry_after": 2})
    response = await client.get(variant_path("cb-fast"), headers=AUTH)
    assert (429, "2") == (response.status_code, response.headers["retry-after"])


async def test_latency_delays_the_answer(client: httpx.AsyncClient) -> None:
    """latency_ms holds every API answer back at least that long."""
    await client.post("/_sim/faults", json={"latency_ms": 60})
    started = time.monotonic()
    await client.get(variant_path("cb-fast"), headers=AUTH)
    assert time.monotonic() - started >= 0.06


async def test_faults_can_be_scoped_to_shops(client: httpx.AsyncClient) -> None:
    """Faults for one shop leave the others alone."""
    await client.post("/_sim/faults", json={"fail_rate": 1.0, "shops": ["cb-1"]})
    ok = await client.put(variant_path("cb-fast"), json={"inventory_quantity": 1}, headers=AUTH)
    bad = await client.put(variant_path("cb-1"), json={"inventory_quantity": 1}, headers=AUTH)
    assert (200, True) == (ok.status_code, bad.status_code >= 500)


async def test_bad_fault_settings_are_400(client: httpx.AsyncClient) -> None:
    """An out-of-range setting is refused and the settings stay as they were."""
    response = await client.post("/_sim/faults", json={"fail_rate": 2})
    current = await client.get("/_sim/faults")
    assert (400, 0.0) == (response.status_code, current.json()["fail_rate"])


async def test_requests_log_since_and_reset(client: httpx.AsyncClient) -> None:
    """/_sim/requests?since=N lists later entries; /_sim/reset forgets stock, log and faults."""
    for i in range(3):
        await client.put(variant_path("cb-fast"), json={"inventory_quantity": i}, headers=AUTH)
    entries = (await client.get("/_sim/requests?since=1")).json()
    assert [2, 3] == [e["seq"] for e in entries]
    assert {"seq", "t", "shop", "method", "path", "status", "idempotency_key", "replay",
            "applied"} == set(entries[0])  # fmt: skip
    await client.post("/_sim/faults", json={"fail_rate": 1.0})
    await client.post("/_sim/reset")
    after = await client.get(variant_path("cb-fast", "1"), headers=AUTH)
    assert (404, [], {}) == (
        after.status_code,
        (await client.get("/_sim/requests?since=4")).json(),
        (await stock(client, "cb-fast"))["variants"],
    )


async def test_sale_decrements_and_refuses_overselling(client: httpx.AsyncClient) -> None:
    """/_sim/sale takes stock away; more than the shop has is 409."""
    await client.post("/_sim/stock", json={"shop": "bw-1", "variants": {"753758": 3}})
    sold = await client.post("/_sim/sale", json={"shop": "bw-1", "variant": 753758, "quantity": 2})
    oversold = await client.post("/_sim/sale", json={"shop": "bw-1", "variant": "753758", "quantity": 2})  # fmt: skip
    assert {"shop": "bw-1", "variant": "753758", "old": 3, "new": 1} == sold.json()
    assert (409, 1) == (oversold.status_code, oversold.json()["available"])


@pytest.mark.parametrize(
    "seed",
    [{"shop": "nope"}, {"shop": "cb-1", "variants": {"1": -1}}, {"shop": "cb-1", "variants": []}],
)
async def test_bad_stock_seed_is_400(client: httpx.AsyncClient, seed: dict[str, Any]) -> None:
    """Seeding an unknown shop or a negative quantity is refused."""
    assert 400 == (await client.post("/_sim/stock", json=seed)).status_code


async def test_default_demo_shops_without_config() -> None:
    """Without a config the demo shops exist with some stock."""
    async with running_simulator() as url, httpx.AsyncClient(base_url=url) as client:
        demo = (await client.get("/_sim/stock")).json()
    assert {"cb-taipei": {"variants": {"5001": 10}, "groups": {}},
            "bento-bkk": {"variants": {"753758": 10}, "groups": {}}} == demo  # fmt: skip


async def test_concurrent_requests_with_one_key_apply_once(client: httpx.AsyncClient) -> None:
    """Two in-flight requests with the same key (held back by latency) apply a single time."""
    await client.post("/_sim/faults", json={"latency_ms": 50})
    keyed = {**AUTH, "Idempotency-Key": "k-race"}
    first, second = await asyncio.gather(
        *(
            client.put(variant_path("cb-fast"), json={"inventory_quantity": 2}, headers=keyed)
            for _ in range(2)
        )
    )
    stats = (await client.get("/_sim/stats")).json()["cb-fast"]
    assert ([200, 200], 1, 1) == (
        [first.status_code, second.status_code],
        stats["applied"],
        stats["replays"],
    )


def test_point_config_at_rewrites_only_simulated_shops() -> None:
    """api_base of Cyberbiz and BentoWeb shops points at the simulator; others stay."""
    pointed = point_config_at(CONFIG, "http://127.0.0.1:9/")
    assert (
        "http://127.0.0.1:9/cyberbiz/cb-1",
        "http://127.0.0.1:9/bentoweb/bw-1",
        "",
    ) == (
        pointed.shops["cb-1"].api_base,
        pointed.shops["bw-1"].api_base,
        pointed.shops["std-1"].api_base,
    )
