"""bridge.ops: the operations endpoints and the one /readyz shape."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, Counter

from bridge.ops import ops_app


async def test_readyz_shape_and_status_follow_readiness() -> None:
    """/readyz is {"ready", "checks"}: 200 when ready, 503 when not; /healthz is always 200."""
    state = {"ready": False}
    registry = CollectorRegistry()
    Counter("probe_things", "things", registry=registry).inc()
    app = ops_app(registry, lambda: (state["ready"], {"kafka": state["ready"], "lanes": 2}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
        before = await client.get("/readyz")
        state["ready"] = True
        after = await client.get("/readyz")
        health = await client.get("/healthz")
        metrics = await client.get("/metrics")
    assert (503, {"ready": False, "checks": {"kafka": False, "lanes": 2}}) == (
        before.status_code,
        before.json(),
    )
    assert (200, {"ready": True, "checks": {"kafka": True, "lanes": 2}}) == (
        after.status_code,
        after.json(),
    )
    assert (200, {"status": "ok"}, True) == (
        health.status_code,
        health.json(),
        "probe_things_total 1.0" in metrics.text,
    )
