"""Handling one webhook: POST /webhooks/{shop}[/{event}] into Kafka, answered once acknowledged.

Order of checks, cheapest and least trusting first: shop → declared size → media type → what
the headers alone can verify (token, signature header present) → body (streamed, bounded in size,
time and, across all requests, in count and bytes) → signature → event name → JSON →
normalisation → replay bounds → dedup → publish (wait for the ack).

:class:`Ingress` is a plain ASGI callable: it reads the scope and the ``receive`` channel itself
and answers on ``send``, without a Request or Response object (this runs for every webhook).
Before the broker is awaited the record is serialised and the parsed payload dropped, so a
webhook in flight holds bytes only: nothing for the garbage collector to walk, little memory.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import structlog
from prometheus_client import CollectorRegistry
from starlette.datastructures import QueryParams
from starlette.types import Receive, Scope, Send

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
from bridge.kafka.publisher import Publisher, RecordTooLarge
from bridge.kafka.topics import Topics
from bridge.log import get_logger
from bridge.platforms import get_platform
from bridge.platforms.base import Delivery
from bridge.privacy import Privacy
from bridge.settings import ShopConfig

log = get_logger("bridge.ingress")


@dataclasses.dataclass(frozen=True, slots=True)
class _Record:
    """What one webhook publishes: bytes only (the parsed payload is gone by the time the broker
    is awaited, so in-flight webhooks hold no object trees for the garbage collector to walk)."""

    id: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    change: Change


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """A JSON answer, sent straight to the ASGI channel."""

    status: int
    body: bytes
    extra: tuple[tuple[bytes, bytes], ...] = ()

    async def send(self, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(self.body)),
        ]
        headers += self.extra
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def error_answer(status: int, code: str, detail: str, retry_after: int | None = None) -> Answer:
    extra = () if retry_after is None else ((b"retry-after", str(retry_after).encode()),)
    return Answer(status, orjson.dumps({"error": code, "detail": detail}), extra)


class Ingress:
    """Request handling, with its collaborators injected (publisher, clock, metrics): an ASGI
    callable for ``/webhooks/{shop}[/{event}]`` whose scope carries ``path_params``."""

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
        self.in_flight = 0
        self.metrics = IngressMetrics.create(registry, in_flight=lambda: self.in_flight)
        self.topics = Topics(config.kafka.topic_prefix)
        self.privacy = Privacy(config.privacy)
        # (partition, offset): a tuple of ints, which the garbage collector stops tracking, so a
        # memory of 100k entities does not lengthen every full collection.
        self.dedup: Deduplicator[tuple[int, int]] = Deduplicator(
            config.ingress.dedup_capacity, config.ingress.dedup_window
        )
        cfg = config.ingress
        self.limit = cfg.max_body_bytes
        self.budget = BodyBudget(
            cfg.max_concurrent_bodies, cfg.max_buffered_bytes, cfg.body_timeout
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (await self.answer(scope, receive)).send(send)

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        """The answer to the webhook of ``scope`` (a rejection included)."""
        shop_id = scope["path_params"]["shop"]
        shop = self.config.shops.get(shop_id)
        label = shop_id if shop is not None else "unknown"
        self.metrics.shop(label).received.inc()
        structlog.contextvars.bind_contextvars(shop=label)
        self.in_flight += 1
        try:
            if shop is None:
                raise UnknownShop("this shop is not configured")
            answer = await self._webhook(scope, receive, shop)
        except WebhookError as exc:
            answer = self._reject(label, scope["path"], exc)
        finally:
            self.in_flight -= 1
            structlog.contextvars.clear_contextvars()
        return answer

    async def _webhook(self, scope: Scope, receive: Receive, shop: ShopConfig) -> Answer:
        headers = _headers(scope)
        declared_length(headers, self.limit)
        if not is_json_media_type(headers.get("content-type")):
            raise UnsupportedMediaType("Content-Type must be application/json")
        now = self.clock()
        received_at = datetime.fromtimestamp(now, UTC)
        query = _query(scope)
        path_event = scope["path_params"].get("event")
        client = scope.get("client")
        client_ip = client[0] if client else None
        verify_headers(Delivery(shop, b"", headers, query, path_event, client_ip, received_at), now)
        async with self.budget.reading(receive, self.limit) as body:
            delivery = Delivery(shop, body, headers, query, path_event, client_ip, received_at)
            prepared = self._prepare(delivery, now, headers.get("traceparent"))
            if isinstance(prepared, Answer):
                return prepared
            return await self._publish(prepared, shop.id)

    def _prepare(self, delivery: Delivery, now: float, traceparent: str | None) -> _Record | Answer:
        """Verify, normalise and serialise: the record to publish, or the answer to a
        redelivery already published. The payload's objects do not outlive this call."""
        event = self._normalise(delivery, now)
        change = Change(f"{event.entity}\x1f{event.key}", event.id, delivery.body)
        id_, published = self.dedup.identify(change)
        topic, ce_type = self.topics.for_entity(event.entity), event.type
        # Every later line of this webhook (ours, the publisher's late-ack callback) carries them.
        structlog.contextvars.bind_contextvars(event_id=id_, ce_type=ce_type, topic=topic)
        if published is not None:
            return self._duplicate(delivery.shop.id, id_, published[0])
        value = event.value
        if id_ != event.id:
            value["id"] = id_  # the deduplicator's id for a later change of the entity
        headers = headers_for(event, delivery.received_at, valid_traceparent(traceparent), id_)
        try:
            data = orjson.dumps(value)
        except TypeError as exc:  # orjson.JSONEncodeError: e.g. an integer over 64 bits
            raise InvalidPayload(f"the event cannot be encoded as JSON: {exc}") from None
        return _Record(id_, topic, event.key.encode(), data, headers, change)

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

    async def _publish(self, record: _Record, shop: str) -> Answer:
        """Publish ``record`` (or wait for its twin being published now) and answer."""
        series = self.metrics.topic(shop, record.topic)

        async def publish(_id: str) -> tuple[int, int]:
            started = time.perf_counter()
            published = await self.publisher.publish(
                record.topic, record.key, record.value, record.headers,
                self.config.ingress.publish_timeout,
            )  # fmt: skip
            series.publish_seconds.observe(time.perf_counter() - started)
            return published.partition, published.offset

        try:
            outcome = await self.dedup.publish(record.change, record.id, publish)
        except (PublishUnavailable, Abandoned) as exc:
            return self._unpublished(shop, "kafka_unavailable", str(exc), 503)
        except RecordTooLarge as exc:
            return self._unpublished(shop, "record_too_large", str(exc), 413)
        if outcome.duplicate:  # the same delivery, published meanwhile by its twin
            return self._duplicate(shop, record.id, outcome.value)
        series.accepted.inc()
        partition, offset = outcome.value
        log.info("webhook_accepted", partition=partition, offset=offset)
        return Answer(202, orjson.dumps({"id": record.id, "topic": record.topic}))

    def _duplicate(self, shop: str, id_: str, published: tuple[int, int]) -> Answer:
        """The answer to a redelivery of a change published already (at ``published``)."""
        self.metrics.shop(shop).duplicates.inc()
        partition, offset = published
        log.info("webhook_duplicate", partition=partition, offset=offset)
        return Answer(200, orjson.dumps({"id": id_, "duplicate": True}))

    def _unpublished(self, shop: str, reason: str, detail: str, status: int) -> Answer:
        self.metrics.rejected.labels(shop, reason).inc()
        log.warning("webhook_not_published", reason=detail)
        if status == 503:
            retry = self.config.ingress.retry_after
            return error_answer(503, "unavailable", "event store unavailable, retry later", retry)
        return error_answer(413, reason, "the event is too large for the event store")

    def _reject(self, shop_label: str, path: str, exc: WebhookError) -> Answer:
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
            return error_answer(401, "unauthorized", "missing or invalid signature")
        if exc.status == 503:
            return error_answer(exc.status, exc.code, exc.detail, self.config.ingress.retry_after)
        return error_answer(exc.status, exc.code, exc.detail)

    def readiness(self) -> tuple[bool, dict[str, bool]]:
        """Ready once the Kafka producer is connected."""
        return self.publisher.ready, {"kafka": self.publisher.ready}


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers, names lower-cased (the last of repeated ones wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string")
    return dict(QueryParams(raw)) if raw else {}
