"""The ingress ASGI application: POST /webhooks/{shop}[/{event}] into Kafka.

Order of checks, cheapest and least trusting first: shop → declared size → media type → what
the headers alone can verify (token, signature header present) → body (streamed, bounded in size,
time and, across all requests, in count and bytes) → signature → event name → JSON →
normalisation → replay bounds → dedup → publish (wait for the ack).

The webhook app serves only ``/webhooks/…``; ``/healthz``, ``/readyz`` and ``/metrics`` (which
names every shop) are served by ``app.state.ops``, on the separate ``ingress.ops_port``.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.config import Config
from bridge.errors import (
    InvalidPayload,
    PublishUnavailable,
    UnknownShop,
    UnsupportedMediaType,
    WebhookError,
)
from bridge.events import CanonicalEvent
from bridge.ingress.body import BodyBudget, declared_length
from bridge.ingress.checks import is_json_media_type, printable, valid_traceparent
from bridge.ingress.dedup import Abandoned, Change, Deduplicator
from bridge.ingress.hooks import check_replay, verify_headers
from bridge.ingress.metrics import IngressMetrics
from bridge.kafka.cloudevents import headers_for
from bridge.kafka.publisher import KafkaPublisher, Publisher, RecordTooLarge
from bridge.kafka.topics import Topics, record_limit
from bridge.log import get_logger
from bridge.ops import ops_app
from bridge.platforms import get_platform
from bridge.platforms.base import Delivery
from bridge.privacy import Privacy

log = get_logger("bridge.ingress")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


class Ingress:
    """Request handling, with its collaborators injected (publisher, clock, metrics)."""

    def __init__(
        self,
        config: Config,
        publisher: Publisher,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.publisher = publisher
        self.registry = registry
        self.clock = clock
        self.metrics = IngressMetrics.create(registry)
        self.topics = Topics(config.kafka.topic_prefix)
        self.privacy = Privacy(config.privacy)
        # (partition, offset): a tuple of ints, which the garbage collector stops tracking, so a
        # memory of 100k entities does not lengthen every full collection.
        self.dedup: Deduplicator[tuple[int, int]] = Deduplicator(
            config.ingress.dedup_capacity, config.ingress.dedup_window
        )
        cfg = config.ingress
        self.budget = BodyBudget(
            cfg.max_concurrent_bodies, cfg.max_buffered_bytes, cfg.body_timeout
        )

    async def webhook(self, request: Request) -> Response:
        shop_id = request.path_params["shop"]
        shop = self.config.shop(shop_id)
        label = shop_id if shop is not None else "unknown"
        self.metrics.shop(label).received.inc()
        structlog.contextvars.bind_contextvars(shop=label)
        self.metrics.in_flight.inc()
        try:
            if shop is None:
                raise UnknownShop("this shop is not configured")
            limit = self.config.ingress.max_body_bytes
            declared_length(request, limit)
            headers = _headers(request)
            if not is_json_media_type(headers.get("content-type")):
                raise UnsupportedMediaType("Content-Type must be application/json")
            now = self.clock()
            received_at = datetime.fromtimestamp(now, UTC)
            query = dict(request.query_params) if request.scope.get("query_string") else {}
            path_event = request.path_params.get("event")
            client_ip = request.client.host if request.client else None
            verify_headers(
                Delivery(shop, b"", headers, query, path_event, client_ip, received_at), now
            )
            async with self.budget.reading(request, limit) as body:
                delivery = Delivery(shop, body, headers, query, path_event, client_ip, received_at)
                event = self._normalise(delivery, now)
                traceparent = valid_traceparent(headers.get("traceparent"))
                return await self._publish(event, delivery, traceparent)
        except WebhookError as exc:
            return self._reject(label, request.url.path, exc)
        finally:
            self.metrics.in_flight.dec()
            structlog.contextvars.clear_contextvars()

    def _normalise(self, delivery: Delivery, now: float) -> CanonicalEvent:
        platform = get_platform(delivery.shop.platform)
        platform.verify(delivery, now)
        event_name = platform.event_name(delivery)
        try:
            payload = orjson.loads(delivery.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidPayload(f"body is not valid JSON: {exc.msg}") from None
        event = platform.normalise(delivery, event_name, payload, self.privacy)
        check_replay(delivery, event_name, payload, now, self.config.ingress.max_event_age)
        return event

    async def _publish(
        self, event: CanonicalEvent, delivery: Delivery, traceparent: str | None
    ) -> Response:
        topic = self.topics.for_entity(event.entity)
        shop = delivery.shop.id
        series = self.metrics.topic(shop, topic)
        change = Change(f"{event.entity}\x1f{event.key}", event.id, delivery.body)
        timeout = self.config.ingress.publish_timeout

        async def send(published_id: str) -> tuple[int, int]:
            final = _with_id(event, published_id)
            structlog.contextvars.bind_contextvars(event_id=final.id)
            value = orjson.dumps(final.value)
            headers = headers_for(final, delivery.received_at, traceparent)
            started = time.perf_counter()
            published = await self.publisher.publish(
                topic, final.key.encode(), value, headers, timeout
            )
            series.publish_seconds.observe(time.perf_counter() - started)
            return published.partition, published.offset

        structlog.contextvars.bind_contextvars(ce_type=event.type, topic=topic)
        try:
            outcome = await self.dedup.run(change, send)
        except (PublishUnavailable, Abandoned) as exc:
            self.metrics.rejected.labels(shop, "kafka_unavailable").inc()
            log.warning("webhook_not_published", reason=str(exc))
            retry_after = {"Retry-After": str(self.config.ingress.retry_after)}
            return _error(503, "unavailable", "event store unavailable, retry later", retry_after)
        except RecordTooLarge as exc:
            self.metrics.rejected.labels(shop, "record_too_large").inc()
            log.warning("webhook_not_published", reason=str(exc))
            return _error(413, "record_too_large", "the event is too large for the event store")
        partition, offset = outcome.value
        structlog.contextvars.bind_contextvars(event_id=outcome.id)
        if outcome.duplicate:
            self.metrics.shop(shop).duplicates.inc()
            log.info("webhook_duplicate", partition=partition, offset=offset)
            return JSONResponse({"id": outcome.id, "duplicate": True}, status_code=200)
        series.accepted.inc()
        log.info("webhook_accepted", partition=partition, offset=offset)
        return JSONResponse({"id": outcome.id, "topic": topic}, status_code=202)

    def _reject(self, shop_label: str, path: str, exc: WebhookError) -> Response:
        self.metrics.rejected.labels(shop_label, exc.code).inc()
        log.warning(
            "webhook_rejected",
            status=exc.status,
            reason=exc.code,
            detail=printable(exc.detail),
            path=printable(path),
        )
        if exc.status == 401:
            # Same answer for every authentication failure: no hint which part failed.
            return _error(401, "unauthorized", "missing or invalid signature")
        if exc.status == 503:
            retry_after = {"Retry-After": str(self.config.ingress.retry_after)}
            return _error(exc.status, exc.code, exc.detail, retry_after)
        return _error(exc.status, exc.code, exc.detail)

    def readiness(self) -> tuple[bool, dict[str, bool]]:
        """Ready once the Kafka producer is connected."""
        return self.publisher.ready, {"kafka": self.publisher.ready}


def _headers(request: Request) -> dict[str, str]:
    """The request's headers, names lower-cased (the last of repeated ones wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}


def _with_id(event: CanonicalEvent, published_id: str) -> CanonicalEvent:
    """``event`` under the id the deduplicator chose (the platform's own id for a first change)."""
    if published_id == event.id:
        return event
    return dataclasses.replace(event, id=published_id, value={**event.value, "id": published_id})


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _internal_error(_request: Request, exc: Exception) -> Response:
    log.error("ingress_internal_error", error_type=type(exc).__name__, exc_info=exc)
    return _error(500, "internal_error", "internal error")


def create_app(
    config: Config,
    publisher: Publisher | None = None,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The webhook app; its ops endpoints are ``app.state.ops`` (serve them on another port).

    Without a ``publisher`` it owns a KafkaPublisher for its lifespan.
    """
    owned: KafkaPublisher | None = None
    if publisher is None:
        owned = publisher = KafkaPublisher(
            config.kafka,
            client_id="bridge-ingress",
            max_request_size=record_limit(config.ingress.max_body_bytes),
        )
    ingress = Ingress(config, publisher, registry or CollectorRegistry(), clock)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if owned is not None:
            await owned.start()
        # Everything allocated so far (modules, config, clients) lives as long as the process:
        # keep it out of the collector's generations so full collections stay short.
        gc.collect()
        gc.freeze()
        log.info("ingress_started", shops=len(config.shops), config=config.source)
        try:
            yield
        finally:
            if owned is not None:
                await owned.stop()
            log.info("ingress_stopped")

    routes = [
        Route("/webhooks/{shop}", ingress.webhook, methods=["POST"]),
        Route("/webhooks/{shop}/{event}", ingress.webhook, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.router.redirect_slashes = False  # "/webhooks/x/" is a 404 JSON, not a redirect
    app.state.ingress = ingress
    app.state.ops = ops_app(ingress.registry, ingress.readiness)
    return app
