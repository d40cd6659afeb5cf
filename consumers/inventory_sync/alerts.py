"""Alert records inventory sync publishes on ``commerce.deliveries`` (schemas/alert.v1.json).

An oversold alert says a change left a sync group's pool below zero: the group sold more units
than it had. The pool is kept as it is (never clamped), members are set to 0, and an operator
decides (a recount with ``commerce-bridge sync-groups set``, or cancelling orders).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from bridge.times import rfc3339
from consumers.app import Outgoing

OVERSOLD = "oversold"
ALERT_TYPE = "commerce.alert.oversold"


def oversold(
    topic: str,
    group: str,
    pool: int,
    delta: int,
    member: str | None,
    now: float,
    source: str | None,
) -> Outgoing:
    """The alert record: key ``inventory-sync:{group}``, value per schemas/alert.v1.json."""
    value: dict[str, Any] = {
        "schema": "alert.v1",
        "kind": OVERSOLD,
        "group": group,
        "pool": pool,
        "delta": delta,
        "member": member,
        "at": rfc3339(datetime.fromtimestamp(now, UTC), "milliseconds"),
        "source": source,
    }
    headers = [("content-type", b"application/json"), ("ce_type", ALERT_TYPE.encode())]
    return Outgoing(topic, f"inventory-sync:{group}".encode(), orjson.dumps(value), headers)
