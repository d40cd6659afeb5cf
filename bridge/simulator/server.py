"""Running the simulator (or any ASGI app) under uvicorn: in-process for tests, or as a process.

The listening socket is bound before uvicorn starts, so the URL (and a port chosen by the kernel
for ``port=0``) is known up front; readiness is uvicorn's own startup finishing, not a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from contextlib import asynccontextmanager
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from bridge.config import Config
from bridge.simulator.app import SimulatorOptions, create_app, demo_options
from bridge.simulator.faults import FaultSettings


class _Server(uvicorn.Server):
    """uvicorn.Server that signals readiness and, in-process, leaves signal handlers alone."""

    def __init__(self, config: uvicorn.Config, *, handle_signals: bool) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self._handle_signals = handle_signals

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if self._handle_signals:
            with super().capture_signals():
                yield
        else:
            yield


def _uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        ws="none",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; ``port=0`` lets the kernel choose a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve(server: _Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits the process when startup fails
        raise RuntimeError(f"server failed to start (exit code {exc.code})") from None


async def _until_ready(server: _Server, task: asyncio.Task[None], timeout: float) -> None:
    ready = asyncio.create_task(server.ready.wait())
    done, _ = await asyncio.wait({ready, task}, timeout=timeout, return_when="FIRST_COMPLETED")
    if ready in done:
        return
    ready.cancel()
    if task in done:
        task.result()  # raises the startup error
        raise RuntimeError("server stopped before it was ready")
    server.should_exit = True
    raise TimeoutError(f"server not ready after {timeout} s")


@asynccontextmanager
async def running_app(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0
) -> AsyncIterator[str]:
    """Serve ``app`` in this event loop; yields its base URL, stops it on exit."""
    sock = bind_socket(host, port)
    url = socket_url(sock)
    server = _Server(_uvicorn_config(app, host, port), handle_signals=False)
    task = asyncio.create_task(_serve(server, sock), name=f"uvicorn {url}")
    try:
        await _until_ready(server, task, startup_timeout)
        yield url
    finally:
        server.should_exit = True
        with contextlib.suppress(RuntimeError):
            await task
        sock.close()


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
    no_sync_groups: Iterable[str] = (),
    token_ttl: float = 3600.0,
) -> AsyncIterator[str]:
    """The simulator on a free loopback port for the duration of the block; yields its base URL.

    Shop ``s`` is at ``f"{base_url}/cyberbiz/{s}"`` or ``f"{base_url}/bentoweb/{s}"``
    (:func:`bridge.simulator.point_config_at` rewrites a Config's ``api_base`` values).
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
        token_ttl=token_ttl,
        initial_stock=demo_options().initial_stock if config is None else (),
    )
    app = create_app(config, options=options, faults=faults, seed=seed)
    async with running_app(app, host=host, port=port) as url:
        yield url


def serve_forever(app: ASGIApp, host: str, port: int, *, on_ready: Callable[[str], None]) -> None:
    """Run ``app`` until SIGTERM or SIGINT, then shut down gracefully and return normally.

    Uses uvloop when installed. Raises OSError when the address cannot be bound.
    """
    sock = bind_socket(host, port)
    config = _uvicorn_config(app, host, port)
    server = _Server(config, handle_signals=True)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.should_exit = True

    async def main() -> None:
        task = asyncio.create_task(_serve(server, sock))
        await _until_ready(server, task, 30.0)
        on_ready(socket_url(sock))
        await task

    # uvicorn re-raises a captured signal once it has shut down; these handlers take it then,
    # so SIGTERM ends in a normal return (exit code 0) instead of death by signal.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(main())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
