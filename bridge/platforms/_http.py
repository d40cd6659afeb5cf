"""HTTP plumbing shared by the platform API clients: body limits, error mapping, Retry-After.

What the relay needs from a failed call is one decision: retry (``retryable=True``, maybe after
``retry_after`` seconds) or give up (dead letter). This module makes it in one place.
"""

from __future__ import annotations

import math
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import orjson

from bridge import __version__
from bridge.errors import PlatformError, RequestTooLarge

BASE_HEADERS = {
    "Accept": "application/json",
    "User-Agent": f"commerce-bridge/{__version__}",
}
MAX_MESSAGE = 300
RETRYABLE_STATUS = frozenset({408, 409, 429})


def encode_body(payload: Any, limit: int) -> bytes:
    """The JSON body of a write, refused locally when over the platform's per-request limit."""
    body = orjson.dumps(payload)
    if len(body) > limit:
        raise RequestTooLarge(len(body), limit)
    return body


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    platform: str,
    *,
    headers: dict[str, str],
    content: bytes | None = None,
    data: dict[str, str] | None = None,
) -> httpx.Response:
    """One request; transport failures become PlatformError (timeouts and resets retryable)."""
    if content is not None:
        headers = {"Content-Type": "application/json", **headers}
    try:
        if data is not None:
            return await http.request(method, url, headers=headers, data=data)
        return await http.request(method, url, headers=headers, content=content)
    except httpx.TimeoutException as exc:
        where = _where(platform, method, url)
        raise PlatformError(f"{where}: timed out ({type(exc).__name__})", retryable=True) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise PlatformError(
            f"{_where(platform, method, url)}: bad URL: {exc}", retryable=False
        ) from exc
    except httpx.TransportError as exc:
        where = _where(platform, method, url)
        raise PlatformError(f"{where}: {type(exc).__name__}: {exc}", retryable=True) from exc


def _where(platform: str, method: str, url: str) -> str:
    """``cyberbiz PUT /v1/products/…``: the request in an error message (never the query)."""
    return f"{platform} {method} {unquote(urlsplit(url).path)}"


def check(response: httpx.Response, platform: str, now: float, hint_422: str | None = None) -> None:
    """Return on 2xx; otherwise raise PlatformError with the retry decision and the message."""
    status = response.status_code
    if 200 <= status < 300:
        return
    where = f"{platform} {response.request.method} {response.request.url.path} → {status}"
    message = error_message(response)
    if status == 422 and hint_422:
        message = f"{hint_422}: {message}" if message else hint_422
    detail = f"{where}: {message}" if message else where
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        raise PlatformError(detail, status=status, retryable=True, retry_after=retry_after)
    retryable = status in RETRYABLE_STATUS or status >= 500
    raise PlatformError(detail, status=status, retryable=retryable)


def json_body(response: httpx.Response, platform: str) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise PlatformError(
            f"{platform}: response to {response.request.url.path} is not JSON",
            status=response.status_code,
            retryable=False,
        ) from None


def error_message(response: httpx.Response) -> str:
    """The platform's own words from ``{"error"|"message"|"messages": …}``, else the text."""
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return " ".join(response.text.split())[:MAX_MESSAGE]
    if isinstance(data, dict):
        for key in ("error", "message", "messages", "errors", "error_description"):
            if data.get(key):
                return _flatten(data[key])[:MAX_MESSAGE]
    return _flatten(data)[:MAX_MESSAGE]


def _flatten(value: Any, depth: int = 0) -> str:
    if isinstance(value, str):
        return value
    if depth > 4:
        return "…"
    if isinstance(value, list):
        return "; ".join(_flatten(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_flatten(v, depth + 1)}" for k, v in value.items())
    return "" if value is None else str(value)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date; else ``None``."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
