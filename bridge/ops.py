"""The operations endpoints every process serves: /healthz, /readyz, /metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Readiness: whether the process can do its work now, plus details for the operator.
Readiness = Callable[[], tuple[bool, Mapping[str, Any]]]


def _json(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def ops_app(registry: CollectorRegistry, readiness: Readiness) -> Starlette:
    async def healthz(_request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        ready, details = readiness()
        return _json({"ready": ready, **details}, 200 if ready else 503)

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )
