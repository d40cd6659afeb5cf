"""Standard Webhooks v1 (standardwebhooks.com): verification and the event type.

Verification follows the specification (and svix's reference implementation): headers
``webhook-id``, ``webhook-timestamp`` (Unix seconds, ±5 minutes of now) and ``webhook-signature``
(space-separated ``v1,<base64 HMAC-SHA256>``, several during a rotation) over
``{id}.{timestamp}.{raw body}``. Secrets are ``whsec_<base64>``; raw base64 or a plain string work
too. The ``svix-*`` header names are accepted as well.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

import orjson

from bridge.errors import UnknownEvent, VerificationFailed
from bridge.platforms.base import Delivery

NAME = "standard"

ID_HEADERS = ("webhook-id", "svix-id")
TIMESTAMP_HEADERS = ("webhook-timestamp", "svix-timestamp")
SIGNATURE_HEADERS = ("webhook-signature", "svix-signature")
TOLERANCE_SECONDS = 5 * 60
SECRET_PREFIX = "whsec_"  # noqa: S105 - the secret format's prefix, not a secret

SECRET_HEADERS = frozenset(SIGNATURE_HEADERS)

EVENT_TYPE = re.compile(r"[a-z][a-z0-9_-]{0,40}(\.[a-z][a-z0-9_-]{0,40}){1,4}")


def secret_bytes(secret: str) -> bytes:
    """``whsec_<base64>`` → its bytes; other base64 is decoded too; anything else is UTF-8."""
    material = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(material, validate=True)
    except (binascii.Error, ValueError):
        if secret.startswith(SECRET_PREFIX):
            return material.encode()
        return secret.encode()


def sign(secret: str, msg_id: str, timestamp_: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of a message."""
    content = f"{msg_id}.{timestamp_}.".encode() + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def header(delivery: Delivery, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = delivery.headers.get(name)
        if value:
            return value
    return None


def _signatures(header: str) -> list[bytes]:
    found = []
    for part in header.split():
        version, _, value = part.partition(",")
        if version != "v1" or not value:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify(delivery: Delivery, now: float) -> None:
    """A ``v1`` signature of ``{id}.{timestamp}.{body}`` under a shop secret, timestamp fresh."""
    msg_id = header(delivery, ID_HEADERS)
    if not msg_id:
        raise VerificationFailed("missing webhook-id header")
    stamp = header(delivery, TIMESTAMP_HEADERS)
    if not stamp:
        raise VerificationFailed("missing webhook-timestamp header")
    if not re.fullmatch(r"\d{1,12}", stamp.strip()):
        raise VerificationFailed("webhook-timestamp is not Unix seconds")
    sent = int(stamp)
    if sent < now - TOLERANCE_SECONDS:
        raise VerificationFailed("webhook-timestamp is too old")
    if sent > now + TOLERANCE_SECONDS:
        raise VerificationFailed("webhook-timestamp is too new")
    given = _signatures(header(delivery, SIGNATURE_HEADERS) or "")
    if not given:
        raise VerificationFailed("no v1 signature in webhook-signature")
    content = f"{msg_id}.{sent}.".encode() + delivery.body
    matched = False
    for secret in delivery.shop.webhook_secrets:
        expected = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
        for signature in given:
            matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise VerificationFailed("no webhook-signature matches")


def event_name(delivery: Delivery) -> str:
    """The body's ``type``; the URL's event when the body has none."""
    given: object = None
    try:
        body = orjson.loads(delivery.body)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        given = body.get("type")
    if not isinstance(given, str) or not given:
        given = delivery.path_event
    if not given:
        raise UnknownEvent("no 'type' in the body and no event in the URL")
    name = given.strip().lower()
    if not EVENT_TYPE.fullmatch(name):
        raise UnknownEvent(f"not an event type: {given[:60]!r}")
    return name
