"""The relay's HTTP client: ``httpx.AsyncClient``'s API, plain requests straight onto aiohttp.

The platform clients are written against ``httpx.AsyncClient`` (their seam, and every test's).
Behind :class:`bridge.relay.transport.AiohttpTransport` a request still went through httpx's
client layer — request building and URL parsing, auth and redirect handling, cookies, the
transport adapter, response building — about 240 µs of the ~770 µs of relay CPU per delivery
(docs/performance.md). :class:`WireClient` keeps the seam and skips that layer for what the relay
sends: ``request(method, url, headers=..., content=...)`` with an absolute URL goes to the shared
aiohttp session directly and comes back as an ``httpx.Response`` whose ``request`` is built only
when somebody asks for it (an error message). Anything else (form data, params, auth, a base
URL) takes httpx's own path, through the same transport.

What is kept: the total bound on the exchange (connect + write + read of the client's timeout),
httpx's exception types, and the ``pace_on="sent"`` trace of writes (:mod:`bridge.relay.pacing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx

from bridge.relay.pacing import CURRENT, PacedTransport
from bridge.relay.transport import AiohttpTransport, as_httpx_error

HTTP11 = {"http_version": b"HTTP/1.1"}
_READ = httpx.ByteStream(b"")  # the stream of every answer: its body was read already
IDEMPOTENCY_KEY = "idempotency-key"


class _Answer(httpx.Response):
    """An ``httpx.Response`` of a body already read, whose request is made on first use (rarely:
    errors only). The body is set as read content, not passed as ``content=`` (which runs it
    through httpx's stream and decoder machinery: 16 µs per answer against 2.6 µs)."""

    def __init__(self, status: int, headers: Any, content: bytes, method: str, url: str) -> None:
        super().__init__(status, headers=headers, stream=_READ, extensions=HTTP11)
        self._content = content
        self.is_stream_consumed = True
        self.is_closed = True
        self._method = method
        self._url = url

    @property
    def request(self) -> httpx.Request:
        if self._request is None:
            self._request = httpx.Request(self._method, self._url)
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value


class WireClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` sending plain requests through ``shared`` (an aiohttp session).

    ``timeout`` is each phase's bound, as ``httpx.Timeout(timeout)``; the relay's own deadline
    per request is shorter. ``traced``: tell the current :class:`~bridge.relay.pacing.Send` when a
    write's body is on the wire (the session must have been made with ``traced=True``). ``owns``:
    ``aclose`` closes the session too (otherwise it is the caller's, shared by every shop).
    ``bounded``: every plain request runs inside a deadline of the caller's (the relay's own
    per request), so aiohttp sets no timer of its own (one per request, ~10% of the relay's CPU).
    """

    def __init__(
        self,
        shared: aiohttp.ClientSession,
        *,
        timeout: float,
        traced: bool,
        owns: bool = False,
        bounded: bool = False,
    ) -> None:
        transport = PacedTransport(AiohttpTransport(shared, owns=owns))  # closes what it owns
        super().__init__(timeout=httpx.Timeout(timeout), transport=transport)
        self._wire = shared
        self._traced = traced
        total = None if bounded else 3 * timeout  # connect + write + read
        self._total = aiohttp.ClientTimeout(total=total)

    async def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        if isinstance(url, str) and _plain(url, kwargs):
            return await self._send(method, url, kwargs.get("headers") or {}, kwargs.get("content"))
        return await super().request(method, url, **kwargs)

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes | None
    ) -> httpx.Response:
        trace = None
        if self._traced:
            send = CURRENT.get()
            if send is not None and any(k.lower() == IDEMPOTENCY_KEY for k in headers):
                trace = send.trace
        try:
            async with self._wire.request(
                method,
                url,
                headers=headers,
                data=content,
                allow_redirects=False,
                timeout=self._total,
                trace_request_ctx=trace,
            ) as answer:
                body = await answer.read()
                return _Answer(answer.status, answer.raw_headers, body, method, url)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            request = httpx.Request(method, url, headers=headers, content=content)
            raise as_httpx_error(exc, request, self._total.total) from exc


def _plain(url: str, kwargs: Mapping[str, Any]) -> bool:
    """An absolute URL with at most headers (a mapping) and a bytes body: the relay's requests."""
    headers, content = kwargs.get("headers"), kwargs.get("content")
    return (
        url.startswith(("http://", "https://"))
        and kwargs.keys() <= {"headers", "content"}
        and (headers is None or isinstance(headers, Mapping))
        and (content is None or isinstance(content, bytes))
    )
