"""Process plumbing: SIGTERM/SIGINT as a stop event, and uvicorn run inside our own loop.

Every long-running process (ingress, consumers, relay, simulator) stops taking work on SIGTERM,
drains, and exits 0; uvicorn's own signal capture re-raises the signal after shutdown, so the
server here leaves signals to the host process. The listening socket is bound before uvicorn
starts, so the URL (and a port the kernel picked for ``port=0``) is known up front and nothing
can take the port in between; readiness is uvicorn's startup finishing, not a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn

from bridge.errors import ListenError

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for processes we cannot hand a socket to)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; ``port=0`` lets the kernel choose a free port. Raises ListenError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(host, port, exc.strerror or str(exc)) from exc
    return sock


def socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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
    """A uvicorn server that leaves signals to its host process and reports readiness."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def make_server(app: Any, host: str, port: int, **options: Any) -> EmbeddedServer:
    options.setdefault("log_config", None)
    options.setdefault("access_log", False)
    options.setdefault("server_header", False)
    return EmbeddedServer(uvicorn.Config(app, host=host, port=port, lifespan="on", **options))


async def _serve(server: EmbeddedServer, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits the process when startup (the lifespan) fails
        raise RuntimeError(f"server failed to start (exit code {exc.code})") from None


async def _until_ready(server: EmbeddedServer, task: asyncio.Task[None], timeout: float) -> None:
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


@contextlib.asynccontextmanager
async def running_server(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 30.0,
    **options: Any,
) -> AsyncIterator[str]:
    """Serve ``app`` in this event loop until the block exits; yields its base URL once ready."""
    sock = bind_socket(host, port)
    url = socket_url(sock)
    server = make_server(app, host, port, **options)
    task = asyncio.create_task(_serve(server, sock), name=f"uvicorn {url}")
    try:
        await _until_ready(server, task, startup_timeout)
        yield url
    finally:
        server.should_exit = True
        with contextlib.suppress(RuntimeError):
            await task
        sock.close()


@dataclass(frozen=True, slots=True)
class Sidecar:
    """Another app served by the same process, on its own port (ops endpoints)."""

    app: Any
    port: int
    on_ready: Callable[[str], None] | None = None


async def serve_until_stopped(
    app: Any,
    host: str,
    port: int,
    *,
    on_ready: Callable[[str], None] | None = None,
    sidecars: Sequence[Sidecar] = (),
    **options: Any,
) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight requests and run the lifespan shutdown.

    ``sidecars`` start before ``app`` and stop after it (probes keep answering while it drains).
    """
    stop = asyncio.Event()
    with stop_on_signals(stop):
        async with contextlib.AsyncExitStack() as stack:
            for sidecar in sidecars:
                url = await stack.enter_async_context(
                    running_server(sidecar.app, host, sidecar.port)
                )
                if sidecar.on_ready is not None:
                    sidecar.on_ready(url)
            url = await stack.enter_async_context(running_server(app, host, port, **options))
            if on_ready is not None:
                on_ready(url)
            await stop.wait()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
