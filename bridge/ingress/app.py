"""The ingress ASGI application: POST /webhooks/{shop}[/{event}] into Kafka.

The webhook app serves only ``/webhooks/…``; ``/healthz``, ``/readyz`` and ``/metrics`` (which
names every shop) are served by ``app.state.ops``, on the separate ``ingress.ops_port``.

A webhook POST goes straight to :class:`~bridge.ingress.webhook.Ingress`, ahead of Starlette's
middleware stack and router (each layer is a frame every resumption of the request passes
through): the app matches ``/webhooks/{shop}[/{event}]`` itself, as the router would, and
answers an unexpected error with the same 500 JSON. Everything else — other methods (405), other
paths (404), the lifespan — is Starlette's.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge import memory
from bridge.config import Config
from bridge.ingress.webhook import Ingress, error_answer
from bridge.kafka.publisher import KafkaPublisher, Publisher
from bridge.kafka.topics import record_limit
from bridge.log import get_logger
from bridge.ops import ops_app

log = get_logger("bridge.ingress")

PREFIX = "/webhooks/"


def webhook_route(path: str) -> dict[str, str] | None:
    """The path parameters of ``/webhooks/{shop}`` or ``/webhooks/{shop}/{event}`` (non-empty
    segments, as Starlette's ``{name}`` matches them), or None for any other path."""
    if not path.startswith(PREFIX):
        return None
    shop, slash, event = path[len(PREFIX) :].partition("/")
    if not shop or "/" in event or (slash and not event):
        return None
    return {"shop": shop, "event": event} if event else {"shop": shop}


class IngressApp(Starlette):
    """Starlette, with webhook POSTs dispatched to the ingress before the middleware stack."""

    ingress: Ingress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            params = webhook_route(scope["path"])
            if params is not None:
                scope["app"] = self
                scope["path_params"] = params
                await self._webhook(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What ServerErrorMiddleware does around a route: an unexpected error is logged and
        answered 500, then raised for the server to log."""
        try:
            answer = await self.ingress.answer(scope, receive)
        except Exception as exc:
            log.exception("ingress_internal_error", error_type=type(exc).__name__)
            await error_answer(500, "internal_error", "internal error").send(send)
            raise
        await answer.send(send)


def _json_error(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """:func:`~bridge.ingress.webhook.error_answer`'s body as a Starlette response (for the
    exception handlers of everything that is not a webhook POST)."""
    answer = error_answer(status, code, detail)
    return Response(answer.body, status, headers=headers, media_type="application/json")


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _json_error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _internal_error(_request: Request, exc: Exception) -> Response:
    log.error("ingress_internal_error", error_type=type(exc).__name__, exc_info=exc)
    return _json_error(500, "internal_error", "internal error")


def create_app(
    config: Config,
    publisher: Publisher | None = None,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> IngressApp:
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
        # A webhook's objects die with it (nothing of a payload outlives the publish): young
        # collections every 700 allocations found nothing to free (bridge.memory).
        memory.settle_heap()
        log.info("ingress_started", shops=len(config.shops), config=config.source)
        try:
            yield
        finally:
            if owned is not None:
                await owned.stop()
            log.info("ingress_stopped")

    routes = [
        Route("/webhooks/{shop}", ingress, methods=["POST"]),
        Route("/webhooks/{shop}/{event}", ingress, methods=["POST"]),
    ]
    app = IngressApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.router.redirect_slashes = False  # "/webhooks/x/" is a 404 JSON, not a redirect
    app.ingress = app.state.ingress = ingress
    app.state.ops = ops_app(ingress.registry, ingress.readiness)
    return app
