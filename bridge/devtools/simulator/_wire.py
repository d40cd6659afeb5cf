"""The simulator's wire details: JSON answers, header scanning, bounded body reads, bodies."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive

from bridge.devtools.simulator.state import Group, Variant
from bridge.devtools.simulator.webhooks import platform_id, taipei_time

JSON = "application/json"
MAX_QUANTITY = 2**31 - 1


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(payload), status, headers, JSON)


ERRORS = {
    401: dumps({"error": "unauthorized"}),
    404: dumps({"error": "not found"}),
    413: dumps({"error": "request body too large"}),
    429: dumps({"error": "rate limit exceeded"}),
    500: dumps({"error": "internal server error"}),
    502: dumps({"error": "bad gateway"}),
    503: dumps({"error": "service unavailable"}),
}
IDEMPOTENCY_CONFLICT = dumps({"error": "Idempotency-Key was already used with a different request"})


def scan_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None, int | None]:
    """``Authorization``, ``Idempotency-Key`` and ``Content-Length`` in one pass."""
    authorization = key = None
    length = None
    for name, value in raw:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"idempotency-key":
            key = value.decode("latin-1")
        elif name == b"content-length" and value.isdigit():
            length = int(value)
    return authorization, key, length


async def read_limited(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_quantity(body: bytes, name: str) -> tuple[int, list[str]]:
    """``{name: N}`` with N a non-negative integer; else the 422 messages."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, ["body is not valid JSON"]
    if not isinstance(doc, dict):
        return 0, ["body must be a JSON object"]
    if name not in doc:
        return 0, [f"{name} is required"]
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int):
        return 0, [f"{name} must be an integer"]
    if not 0 <= value <= MAX_QUANTITY:
        return 0, [f"{name} must be between 0 and {MAX_QUANTITY}"]
    return value, []


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    if header is None or header[:6].lower() != "basic ":
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else (None, None)


def cyberbiz_variant_body(variant: Variant) -> dict[str, Any]:
    return {
        "id": platform_id(variant.id),
        "product_id": platform_id(variant.product_id),
        "inventory_quantity": variant.quantity,
        "updated_at": taipei_time(variant.updated_at),
    }


def cyberbiz_group_body(group: Group) -> dict[str, Any]:
    return {
        "id": platform_id(group.id),
        "title": f"Group {group.id}",
        "inventory_quantity": group.quantity,
        "variants": [{"product_variant_id": platform_id(v)} for v in group.members],
        "updated_at": taipei_time(group.updated_at),
    }
