"""The operations endpoints every process serves: /healthz, /readyz, /metrics.

``/readyz`` answers the same shape everywhere: ``{"ready": bool, "checks": {...}}``, 200 when
ready, else 503; ``checks`` names what the process depends on (e.g. ``"kafka": true``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Readiness: whether the process can do its work now, plus its checks for the operator.
Readiness = Callable[[], tuple[bool, Mapping[str, Any]]]


def _json(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def readiness_body(ready: bool, checks: Mapping[str, Any]) -> dict[str, Any]:
    """The one /readyz document."""
    return {"ready": ready, "checks": dict(checks)}


def ops_routes(registry: CollectorRegistry, readiness: Readiness) -> list[Route]:
    """/healthz, /readyz and /metrics, for a process's own app or :func:`ops_app`."""

    async def healthz(_request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        ready, checks = readiness()
        return _json(readiness_body(ready, checks), 200 if ready else 503)

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def ops_app(registry: CollectorRegistry, readiness: Readiness) -> Starlette:
    """The operations endpoints as an app of their own (relay, consumers: a metrics port)."""
    return Starlette(routes=ops_routes(registry, readiness))
