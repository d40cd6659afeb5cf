"""Signing a Standard Webhooks request (for ``commerce-bridge sign`` and tests)."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import orjson

from bridge.platforms.base import SignedRequest
from bridge.platforms.standard.webhooks import (
    ID_HEADERS,
    SIGNATURE_HEADERS,
    TIMESTAMP_HEADERS,
    sign,
)


def body_type(body: bytes) -> str | None:
    """The body's ``type``, when it is a JSON object with one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    kind = data.get("type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) and kind else None


def sign_request(secret: str, shop_id: str, body: bytes, event: str, now: float) -> SignedRequest:
    """A fresh message id, ``now`` as the timestamp; the event goes in the URL only when the
    body has no ``type`` (an empty ``event`` means "the body's type")."""
    msg_id = f"msg_{secrets.token_hex(16)}"
    stamp = int(now)
    headers = {
        ID_HEADERS[0]: msg_id,
        TIMESTAMP_HEADERS[0]: str(stamp),
        SIGNATURE_HEADERS[0]: sign(secret, msg_id, stamp, body),
    }
    suffix = f"/{quote(event, safe='')}" if event and body_type(body) is None else ""
    return SignedRequest(suffix, headers)
