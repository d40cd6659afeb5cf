"""Time zones and the one RFC 3339 formatter every event, header and record uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Literal, overload

TAIPEI = timezone(timedelta(hours=8), "Asia/Taipei")  # no daylight saving since 1979

Precision = Literal["auto", "milliseconds"]


@overload
def rfc3339(moment: datetime, precision: Precision = "auto") -> str: ...
@overload
def rfc3339(moment: None, precision: Precision = "auto") -> None: ...
@overload
def rfc3339(moment: datetime | None, precision: Precision = "auto") -> str | None: ...
def rfc3339(moment: datetime | None, precision: Precision = "auto") -> str | None:
    """``2024-07-11T07:27:46Z`` in UTC; None stays None.

    ``auto``: seconds, with microseconds only when present (canonical event fields);
    ``milliseconds``: always three decimals (CloudEvents ``ce_time``, delivery records).
    """
    if moment is None:
        return None
    if precision == "milliseconds":
        spec = "milliseconds"
    else:
        spec = "microseconds" if moment.microsecond else "seconds"
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")
