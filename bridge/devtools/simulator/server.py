"""Running the simulator in-process (tests, ``commerce-bridge dev``) on the shared uvicorn
plumbing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from bridge.config import Config
from bridge.devtools.simulator.app import create_app
from bridge.devtools.simulator.faults import FaultSettings
from bridge.devtools.simulator.options import SimulatorOptions, demo_options
from bridge.serve import running_server

# The simulator speaks plain HTTP/1.1 to loopback clients: no websockets, no proxy headers.
SIMULATOR_SERVER_OPTIONS: dict[str, Any] = {
    "ws": "none",
    "proxy_headers": False,
    "timeout_graceful_shutdown": 5,
}


@asynccontextmanager
async def running_simulator(
    config: Config | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int | None = None,
    fail_rate: float = 0.0,
    fail_after_rate: float = 0.0,
    latency_ms: float = 0.0,
    latency_jitter_ms: float = 0.0,
    rate_429: float = 0.0,
    webhooks_to: str | None = None,
    drop_webhooks: float = 0.0,
    no_sync_groups: Iterable[str] = (),
    token_ttl: float = 3600.0,
) -> AsyncIterator[str]:
    """The simulator on a free loopback port for the duration of the block; yields its base URL.

    Shop ``s`` is at ``f"{base_url}/cyberbiz/{s}"`` or ``f"{base_url}/bentoweb/{s}"``
    (:func:`bridge.devtools.simulator.point_config_at` rewrites a Config's ``api_base`` values).
    """
    faults = FaultSettings(
        fail_rate=fail_rate,
        fail_after_rate=fail_after_rate,
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        rate_429=rate_429,
    )
    options = SimulatorOptions(
        no_sync_groups=frozenset(no_sync_groups),
        webhooks_to=webhooks_to,
        drop_webhooks=drop_webhooks,
        token_ttl=token_ttl,
        initial_stock=demo_options().initial_stock if config is None else (),
    )
    app = create_app(config, options=options, faults=faults, seed=seed)
    async with running_server(app, host, port, **SIMULATOR_SERVER_OPTIONS) as url:
        yield url
