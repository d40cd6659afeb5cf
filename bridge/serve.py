"""Process plumbing: SIGTERM/SIGINT as a stop event, and uvicorn run inside our own loop.

Every long-running process (ingress, consumers, relay, simulator) stops taking work on SIGTERM,
drains, and exits 0; uvicorn's own signal capture re-raises the signal after shutdown, so we
install our handlers instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM or SIGINT while the block runs (main thread, running loop)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_server(app: Any, host: str, port: int, **options: Any) -> EmbeddedServer:
    options.setdefault("log_config", None)
    options.setdefault("access_log", False)
    options.setdefault("server_header", False)
    return EmbeddedServer(uvicorn.Config(app, host=host, port=port, lifespan="on", **options))


@contextlib.asynccontextmanager
async def running_server(
    app: Any, host: str = "127.0.0.1", port: int | None = None, **options: Any
) -> AsyncIterator[str]:
    """Serve ``app`` until the block exits; yields its base URL once it accepts connections."""
    port = port or free_port(host)
    server = make_server(app, host, port, **options)
    task = asyncio.create_task(server.serve(), name=f"uvicorn:{port}")
    try:
        while not server.started:
            if task.done():
                task.result()  # re-raise why it could not start
                raise RuntimeError(f"server on {host}:{port} stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


async def serve_until_stopped(app: Any, host: str, port: int, **options: Any) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight requests and run the lifespan shutdown."""
    stop = asyncio.Event()
    server = make_server(app, host, port, **options)
    with stop_on_signals(stop):
        task = asyncio.create_task(server.serve())
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        waiter.cancel()
        await task


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
