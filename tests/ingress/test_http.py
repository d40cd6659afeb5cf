"""The ingress HTTP contract (ARCHITECTURE §3), with a recording publisher in place of Kafka.

These pin status codes and bodies; tests/ingress/test_kafka.py covers the real broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Match, Route, Router
from structlog.testing import capture_logs

from bridge import log as bridge_log
from bridge.config import Config
from bridge.devtools.sign import sign_request
from bridge.ingress.app import create_app, webhook_route
from bridge.kafka.publisher import Headers, Published
from tests.support import CB_SECRET, RecordingPublisher, fixture_bytes, make_config

VARIANT = b'{"id": 5001, "product_id": 1001, "inventory_quantity": 7, "updated_at": "2024-07-11 14:27:46"}'


def cb_headers(
    body: bytes, secret: str = CB_SECRET, event: str = "variants/update"
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-cyberbiz-event": event,
        "x-cyberbiz-hmac-sha256": digest,
        "x-cyberbiz-domain": "cb-taipei.cyberbiz.co",
    }


@pytest.fixture
def config() -> Config:
    return make_config()


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def app(config: Config, publisher: RecordingPublisher) -> Starlette:
    return create_app(config, publisher)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
        yield c


@pytest.fixture
async def ops(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.state.ops)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress-ops") as c:
        yield c


async def signed_post(
    client: httpx.AsyncClient, config: Config, shop: str, body: bytes, event: str
) -> httpx.Response:
    suffix, headers = sign_request(config.shops[shop], body, event, time.time())
    return await client.post(f"/webhooks/{shop}{suffix}", content=body, headers=headers)


async def test_accepted_webhook_answers_202_with_id_and_topic(
    client: httpx.AsyncClient, publisher: RecordingPublisher
) -> None:
    """A correctly signed Cyberbiz variant update is published once and answered 202."""
    response = await client.post(
        "/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT)
    )
    assert 202 == response.status_code
    assert "commerce.variants" == response.json()["topic"]
    assert 1 == len(publisher.records)
    topic, key, _value, headers = publisher.records[0]
    assert ("commerce.variants", b"cb-taipei:5001") == (topic, key)
    assert response.json()["id"].encode() == dict(headers)["ce_id"]


async def test_unknown_shop_is_404(client: httpx.AsyncClient) -> None:
    """A shop id that is not configured gets 404 with a JSON body."""
    response = await client.post("/webhooks/nope", content=VARIANT, headers=cb_headers(VARIANT))
    assert (404, "unknown_shop") == (response.status_code, response.json()["error"])


async def test_wrong_method_and_path_answer_json(client: httpx.AsyncClient) -> None:
    """GET on a webhook URL is 405 and an unknown path 404, both as JSON, never HTML."""
    wrong_method = await client.get("/webhooks/cb-taipei")
    missing = await client.post("/nothing-here")
    assert (405, "application/json") == (
        wrong_method.status_code,
        wrong_method.headers["content-type"],
    )
    assert (404, "application/json") == (missing.status_code, missing.headers["content-type"])


async def test_bad_and_missing_signature_get_the_same_401(
    client: httpx.AsyncClient, publisher: RecordingPublisher
) -> None:
    """Wrong and missing signatures are both 401 with an identical body; nothing published."""
    wrong = await client.post(
        "/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT, secret="wrong")
    )
    headers = cb_headers(VARIANT)
    del headers["x-cyberbiz-hmac-sha256"]
    missing = await client.post("/webhooks/cb-taipei", content=VARIANT, headers=headers)
    assert (401, 401) == (wrong.status_code, missing.status_code)
    assert wrong.content == missing.content
    assert [] == publisher.records


async def test_rotated_secret_is_accepted(client: httpx.AsyncClient) -> None:
    """Any of the shop's configured secrets verifies (rotation)."""
    headers = cb_headers(VARIANT, secret="cb-app-secret-previous")
    response = await client.post("/webhooks/cb-taipei", content=VARIANT, headers=headers)
    assert 202 == response.status_code


async def test_non_json_media_type_is_415(client: httpx.AsyncClient) -> None:
    """A form or text body is refused with 415 before verification."""
    headers = {**cb_headers(VARIANT), "content-type": "text/plain"}
    response = await client.post("/webhooks/cb-taipei", content=VARIANT, headers=headers)
    assert (415, "unsupported_media_type") == (response.status_code, response.json()["error"])


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    """A correctly signed body that is not JSON is 400 invalid_payload."""
    body = b'{"id": 1,'
    response = await client.post("/webhooks/cb-taipei", content=body, headers=cb_headers(body))
    assert (400, "invalid_payload") == (response.status_code, response.json()["error"])


async def test_unknown_event_is_400(client: httpx.AsyncClient) -> None:
    """An event name the platform does not send is 400 unknown_event."""
    headers = cb_headers(VARIANT, event="bogus")
    response = await client.post("/webhooks/cb-taipei", content=VARIANT, headers=headers)
    assert (400, "unknown_event") == (response.status_code, response.json()["error"])


async def test_declared_oversize_body_is_413(client: httpx.AsyncClient) -> None:
    """A body over max_body_bytes is 413."""
    body = b'{"x": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    response = await client.post("/webhooks/cb-taipei", content=body, headers=cb_headers(body))
    assert (413, "payload_too_large") == (response.status_code, response.json()["error"])


async def test_kafka_unavailable_is_503_with_retry_after(
    client: httpx.AsyncClient, publisher: RecordingPublisher
) -> None:
    """When the publisher cannot take the event the answer is 503 with Retry-After."""
    publisher.available = False
    response = await client.post(
        "/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT)
    )
    assert (503, "5") == (response.status_code, response.headers.get("retry-after"))
    publisher.available = True
    again = await client.post("/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT))
    assert 202 == again.status_code


async def test_redelivery_is_200_duplicate_and_published_once(
    client: httpx.AsyncClient, publisher: RecordingPublisher
) -> None:
    """The same delivery twice: 202 then 200 duplicate with the same id, one record."""
    first = await client.post("/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT))
    second = await client.post("/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT))
    assert (202, 200) == (first.status_code, second.status_code)
    assert {"id": first.json()["id"], "duplicate": True} == second.json()
    assert 1 == len(publisher.records)


async def test_concurrent_twins_publish_once(
    client: httpx.AsyncClient, publisher: RecordingPublisher
) -> None:
    """Ten simultaneous copies of one delivery publish one record."""
    responses = await asyncio.gather(
        *(
            client.post("/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT))
            for _ in range(10)
        )
    )
    assert [200] * 9 + [202] == sorted(r.status_code for r in responses)
    assert 1 == len(publisher.records)


async def test_bentoweb_seed_order_is_accepted(
    client: httpx.AsyncClient, config: Config, publisher: RecordingPublisher
) -> None:
    """The BentoWeb seed order, with the token, lands on the orders topic keyed by order id."""
    body = fixture_bytes("bentoweb/order.json")
    response = await signed_post(client, config, "bento-bkk", body, "order.paid")
    assert 202 == response.status_code
    assert ("commerce.orders", b"bento-bkk:432580") == publisher.records[0][:2]
    assert b"@gmail.com" not in publisher.records[0][2]


async def test_health_ready_and_metrics(
    client: httpx.AsyncClient, ops: httpx.AsyncClient, publisher: RecordingPublisher
) -> None:
    """healthz is always 200; readyz follows the publisher; metrics count outcomes."""
    await client.post("/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT))
    await client.post("/webhooks/cb-taipei", content=b"{}", headers=cb_headers(b"", secret="x"))
    assert 200 == (await ops.get("/healthz")).status_code
    ready = await ops.get("/readyz")
    assert (200, {"ready": True, "checks": {"kafka": True}}) == (ready.status_code, ready.json())
    publisher.available = False
    ready = await ops.get("/readyz")
    assert (503, {"ready": False, "checks": {"kafka": False}}) == (ready.status_code, ready.json())
    metrics = (await ops.get("/metrics")).text
    assert (
        'bridge_webhooks_accepted_total{shop="cb-taipei",topic="commerce.variants"} 1.0' in metrics
    )
    assert 'bridge_webhooks_rejected_total{reason="unauthorized",shop="cb-taipei"} 1.0' in metrics


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.just(b"[" * 5000 + b"]" * 5000),
        st.just(b'{"id": 1' + b"0" * 400 + b"}"),
        st.just(b"\xff\xfe{}"),
    ),
    target=st.sampled_from(
        [("cb-taipei", "variants/update"), ("cb-taipei", "orders/paid"), ("bento-bkk", "order.paid"),
         ("bento-bkk", "variant.update"), ("std-shop", "order.paid")]
    ),
)  # fmt: skip
async def test_no_input_produces_a_500(
    client: httpx.AsyncClient, config: Config, body: bytes, target: tuple[str, str]
) -> None:
    """Whatever a correctly signed body holds, the answer is a JSON 2xx or 4xx, never a 500."""
    response = await signed_post(client, config, target[0], body, target[1])
    assert response.status_code in {200, 202, 400, 401}, response.text
    assert "application/json" == response.headers["content-type"]


HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
HEADER_NAMES = st.sampled_from(
    [
        "content-type", "x-cyberbiz-event", "x-cyberbiz-hmac-sha256", "x-webhook-token",
        "webhook-id", "webhook-timestamp", "webhook-signature", "traceparent",
        "x-forwarded-for", "content-encoding", "transfer-encoding-x",
    ]
)  # fmt: skip
SEGMENT = st.text(max_size=30).map(lambda s: quote(s, safe=""))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shop=st.one_of(st.sampled_from(["cb-taipei", "bento-bkk", "std-shop"]), SEGMENT),
    event=st.one_of(st.none(), st.sampled_from(["order.paid", "variant.update"]), SEGMENT),
    query=st.dictionaries(st.sampled_from(["token", "x", "event"]) | st.text(max_size=8), st.text(max_size=20), max_size=3),
    headers=st.dictionaries(HEADER_NAMES, HEADER_TEXT, max_size=6),
    content_type=st.one_of(
        st.none(),
        st.sampled_from(["application/json", "text/plain", "application/cloudevents+json", "multipart/form-data; boundary=x", ";", "application/json; charset=utf-8", "APPLICATION/JSON"]),
    ),
    body=st.one_of(st.binary(max_size=300), JSON_VALUES.map(lambda v: json.dumps(v).encode())),
    signed=st.booleans(),
    method=st.sampled_from(["POST", "POST", "GET", "PUT"]),
)  # fmt: skip
async def test_no_request_line_or_header_produces_a_500(
    client: httpx.AsyncClient,
    config: Config,
    shop: str,
    event: str | None,
    query: dict[str, str],
    headers: dict[str, str],
    content_type: str | None,
    body: bytes,
    signed: bool,
    method: str,
) -> None:
    """Whatever the path, query, headers, content type and body (signed or not), the answer is
    JSON with a 2xx/4xx/503 status, never a 500 or a traceback."""
    sent = dict(headers)
    if signed and shop in config.shops:
        suffix, signature = sign_request(
            config.shops[shop], body, event or "orders/paid", time.time()
        )
        sent |= {k.lower(): v for k, v in signature.items()}
        path = f"/webhooks/{shop}{suffix}"
    else:
        path = f"/webhooks/{shop}" + (f"/{event}" if event is not None else "")
    if content_type is not None:
        sent["content-type"] = content_type
    with capture_logs() as logs:
        response = await client.request(method, path, params=query, content=body, headers=sent)
    assert response.status_code in {200, 202, 400, 401, 404, 405, 413, 415}, response.text
    assert "application/json" == response.headers["content-type"]
    assert [] == [e for e in logs if e["log_level"] == "error"]
    assert b"Traceback" not in response.content


class BrokenPublisher(RecordingPublisher):
    """A publisher with a bug: every publish raises something the ingress does not expect."""

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Headers, timeout: float
    ) -> Published:
        raise RuntimeError("a bug in the publisher")


async def test_an_unexpected_error_is_a_logged_500_json(config: Config) -> None:
    """A bug on the webhook path (here: the publisher raises) answers 500 with the JSON error
    body, logs ``ingress_internal_error`` with the traceback, and reaches the server."""
    app = create_app(config, BrokenPublisher())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
        with capture_logs() as logs:
            response = await client.post(
                "/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT)
            )
    assert (500, {"error": "internal_error", "detail": "internal error"}) == (
        response.status_code,
        response.json(),
    )
    errors = [e for e in logs if e["event"] == "ingress_internal_error"]
    assert ["RuntimeError"] == [e["error_type"] for e in errors]
    assert errors[0]["exc_info"] is True


ROUTES = Router(
    [
        Route("/webhooks/{shop}", lambda _r: None, methods=["POST"]),
        Route("/webhooks/{shop}/{event}", lambda _r: None, methods=["POST"]),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    path=st.lists(
        st.one_of(st.just(""), st.just("webhooks"), st.text(alphabet="ab./%-", max_size=4)),
        max_size=4,
    ).map(lambda parts: "/" + "/".join(parts))
)
def test_the_webhook_route_matches_as_starlettes_router(path: str) -> None:
    """The ingress's own match of a webhook POST agrees with Starlette's routes on every path:
    the same path parameters, or no match (then Starlette answers, 404)."""
    scope = {"type": "http", "method": "POST", "path": path, "root_path": ""}
    starlette = None
    for route in ROUTES.routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            starlette = child["path_params"]
            break
    assert starlette == webhook_route(path)


async def test_log_lines_of_a_webhook_carry_its_context(client: httpx.AsyncClient) -> None:
    """The accepted and duplicate lines name the shop, event id, type, topic, partition and
    offset (bound context, as ops search for them), and nothing of the body."""
    stream = io.StringIO()
    bridge_log.configure("info", "json", stream=stream)
    try:
        first = await client.post(
            "/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT)
        )
        again = await client.post(
            "/webhooks/cb-taipei", content=VARIANT, headers=cb_headers(VARIANT)
        )
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = []
    lines = {line["event"]: line for line in map(json.loads, stream.getvalue().splitlines())}
    context = {
        "shop": "cb-taipei", "event_id": first.json()["id"], "ce_type": "commerce.variant.updated",
        "topic": "commerce.variants", "partition": 0, "offset": 0,
    }  # fmt: skip
    for name in ("webhook_accepted", "webhook_duplicate"):
        assert context == {k: lines[name].get(k) for k in context}
    assert (202, 200) == (first.status_code, again.status_code)
    assert "inventory_quantity" not in stream.getvalue()
