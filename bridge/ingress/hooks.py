"""Optional checks a platform module may offer the ingress, looked up by name.

- ``verify_headers(delivery, now)``: raise VerificationFailed when the headers (and query, source
  address) alone show the delivery is not authentic; ``delivery.body`` is empty then. Run before
  the body is read, so unauthenticated senders are turned away before they cost memory.
- ``check_replay(delivery, event, payload, now, max_age)``: raise VerificationFailed for a
  verified body that looks replayed — where the platform's signature does not cover everything
  that decides what a delivery means (e.g. an event name sent outside the HMAC).

A platform without them is checked by ``verify`` and ``normalise`` alone.
"""

from __future__ import annotations

from typing import Any

from bridge.platforms import get_platform
from bridge.platforms.base import Delivery


def verify_headers(delivery: Delivery, now: float) -> None:
    check = getattr(get_platform(delivery.shop.platform), "verify_headers", None)
    if check is not None:
        check(delivery, now)


def check_replay(
    delivery: Delivery,
    event_name: str,
    payload: Any,
    now: float,
    max_age: float,
) -> None:
    check = getattr(get_platform(delivery.shop.platform), "check_replay", None)
    if check is not None:
        check(delivery, event_name, payload, now, max_age)
