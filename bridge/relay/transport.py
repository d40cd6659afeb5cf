"""The relay's wire: an ``httpx`` transport that sends through one shared ``aiohttp`` session.

The platform clients are written against ``httpx.AsyncClient`` (their seam, and every test's);
only the bytes on the wire change. ``bench/http_clients.py`` measured the relay's request pattern
(hundreds of shops, keep-alive, small JSON PUTs, a deadline each): httpcore's pool and h11 cost
more CPU per request than aiohttp's connector and its C parser, and the relay is CPU-bound on
them. One session (one connector) serves every shop: its idle connections are kept per host in
O(1) structures, unlike an httpcore pool, which is scanned on each request.

What the transport keeps of httpx: the request's own timeouts (their sum over connect, write and
read bounds the whole exchange; the relay's deadline is an ``asyncio.timeout`` inside that), httpx's
exception types (timeouts, connect errors, protocol errors), and the ``trace`` extension for the
one event the relay listens to: the request body written (:mod:`bridge.relay.pacing`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx

Trace = Callable[[str, Mapping[str, Any]], Awaitable[None]]
BODY_SENT = "http11.send_request_body.complete"


async def _body_sent(
    _session: aiohttp.ClientSession, context: SimpleNamespace, _params: object
) -> None:
    trace: Trace | None = context.trace_request_ctx
    if trace is not None:
        await trace(BODY_SENT, {})


def trace_config() -> aiohttp.TraceConfig:
    """Reports the end of the request headers and body to a request's ``trace`` extension.

    Both the headers' and each body chunk's signal report it: the last report is when the whole
    request was written (``Send.trace`` keeps the latest).
    """
    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_body_sent)
    config.on_request_chunk_sent.append(_body_sent)
    return config


def session(
    *, connections: int = 0, keepalive: float = 30.0, traced: bool = True
) -> aiohttp.ClientSession:
    """The shared session: ``connections`` in flight at most (0: no limit), idle ones kept for
    ``keepalive`` seconds; ``traced``: requests report their body written (``pace_on="sent"``;
    otherwise nothing listens, and aiohttp's trace signals cost every request). Create it inside
    the running event loop."""
    connector = aiohttp.TCPConnector(
        limit=connections, limit_per_host=0, keepalive_timeout=keepalive, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(
        connector=connector,
        trace_configs=[trace_config()] if traced else None,
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def _total_timeout(extensions: Mapping[str, Any]) -> float | None:
    """httpx's phase timeouts as one bound on the exchange: connect + write + read (a phase
    unset means no bound). The relay's own deadline (``asyncio.timeout``) is shorter and wins."""
    timeouts = extensions.get("timeout") or {}
    phases = [timeouts.get(name) for name in ("connect", "write", "read")]
    return None if None in phases else sum(p for p in phases if p is not None)


def as_httpx_error(
    exc: TimeoutError | aiohttp.ClientError | OSError, request: httpx.Request, total: float | None
) -> httpx.TransportError:
    """The httpx exception a failure of aiohttp's stands for (the platform clients map those)."""
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(f"no answer within {total} s", request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(str(exc), request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(
        exc,
        aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError,
    ):  # a malformed or cut answer
        return httpx.RemoteProtocolError(str(exc), request=request)
    return httpx.NetworkError(f"{type(exc).__name__}: {exc}", request=request)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncBaseTransport`` over an aiohttp session.

    Given a session, the caller owns it (one for every shop) unless ``owns``; without one the
    transport opens its own on the first request. ``aclose`` closes what the transport owns.
    """

    def __init__(self, shared: aiohttp.ClientSession | None = None, *, owns: bool = False) -> None:
        self._shared = shared
        self._own: aiohttp.ClientSession | None = shared if owns else None

    def _session(self) -> aiohttp.ClientSession:
        if self._shared is not None:
            return self._shared
        if self._own is None:
            self._own = session()
        return self._own

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        trace: Trace | None = request.extensions.get("trace")
        body = await request.aread()
        timeout = aiohttp.ClientTimeout(total=_total_timeout(request.extensions))
        try:
            async with self._session().request(
                request.method,
                str(request.url),
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ],
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
                trace_request_ctx=trace,
            ) as answer:
                content = await answer.read()
                return httpx.Response(
                    answer.status,
                    headers=answer.raw_headers,
                    content=content,
                    request=request,
                    extensions={"http_version": b"HTTP/1.1"},
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise as_httpx_error(exc, request, timeout.total) from exc

    async def aclose(self) -> None:
        """Close the transport's own session; a shared one belongs to the caller."""
        if self._own is not None:
            await self._own.close()
            self._own = None
