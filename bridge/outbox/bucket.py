"""The per-shop token bucket as a GCRA (generic cell rate algorithm). Pure.

The bucket's whole state is one number per shop, ``tat`` (theoretical arrival time), plus the
deferral ``not_before`` (Retry-After); both live in the shop's ``lanes`` row so that every relay
replica draws from the same bucket.
"""

from __future__ import annotations


def validate_rate(rate: float, burst: int, count: int) -> None:
    """Refuse a bucket that cannot exist (a programming error, raised before any I/O)."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if burst < 1:
        raise ValueError(f"burst must be >= 1, got {burst}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")


def gcra_slots(
    tat: float,
    not_before: float,
    rate: float,
    burst: int,
    count: int,
    now: float,
    horizon: float | None = None,
) -> tuple[list[float], float]:
    """Up to ``count`` send times, ascending, and the new theoretical arrival time.

    Up to ``burst`` slots at once, then one every ``1/rate``, none before ``not_before``. A slot
    later than ``horizon`` is not handed out and does not advance ``tat`` (so fewer than ``count``
    come back): nothing is reserved that the caller could not use before its lease ends.
    """
    validate_rate(rate, burst, count)
    interval = 1.0 / rate
    tolerance = (burst - 1) * interval
    slots: list[float] = []
    for _ in range(count):
        send = max(now, not_before, tat - tolerance)
        if horizon is not None and send > horizon:
            break
        slots.append(send)
        tat = max(tat, send) + interval
    return slots, tat
