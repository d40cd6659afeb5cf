"""Retry timing: capped exponential backoff with full jitter, where ``Retry-After`` wins. Pure.

Full jitter (the AWS Architecture Blog's "Exponential Backoff And Jitter"): the n-th retry waits a
uniformly random time in ``[0, min(cap, base * 2 ** (n - 1))]``, which spreads the retries of many
rows that failed together instead of bunching them. A platform's ``Retry-After`` is an instruction,
not a hint, so when one is given it is used as it is, up to ``relay.max_retry_after`` (1 h by
default): a platform answering ``Retry-After: 86400`` or an HTTP-date next year must not park a
shop that long.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from bridge.config import RelayConfig
from bridge.errors import PlatformError

MAX_EXPONENT = 62  # 2**62 * base overflows no float; the cap applies long before


def ceiling(attempt: int, base: float, cap: float) -> float:
    """The upper bound of the wait before retry number ``attempt`` (1 = the first retry)."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if base <= 0 or cap <= 0:
        raise ValueError(f"base and cap must be > 0, got base={base}, cap={cap}")
    return min(cap, base * 2.0 ** min(attempt - 1, MAX_EXPONENT))


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    rng: random.Random,
    retry_after: float | None = None,
    max_retry_after: float = math.inf,
) -> float:
    """Seconds to wait before retry ``attempt``: ``Retry-After`` if given (at most
    ``max_retry_after``), else full jitter."""
    if retry_after is not None and math.isfinite(retry_after):
        return min(max(0.0, retry_after), max_retry_after)
    return rng.uniform(0.0, ceiling(attempt, base, cap))


Verdict = Literal["retry", "dead"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a row whose send failed.

    ``next_attempt_at`` is set for ``retry``; ``defer_until`` (a 429) pauses the whole shop.
    """

    verdict: Verdict
    next_attempt_at: float | None = None
    defer_until: float | None = None


def decide(
    error: PlatformError,
    attempt: int,
    config: RelayConfig,
    now: float,
    rng: random.Random,
    *,
    min_defer: float = 1.0,
) -> Decision:
    """Retry or give up after ``error`` on the ``attempt``-th try (``attempt`` counts from 1).

    Non-retryable errors (4xx other than 408/409/429, a request too large) are dead at once;
    retryable ones are dead once ``attempt >= config.max_attempts``. A 429 also defers the shop:
    until ``Retry-After`` (capped at ``config.max_retry_after``), or for the backoff delay (at
    least ``min_defer``) when none was given.
    """
    if not error.retryable or attempt >= config.max_attempts:
        return Decision("dead")
    delay = backoff_delay(
        attempt,
        config.backoff_base,
        config.backoff_cap,
        rng,
        retry_after=error.retry_after,
        max_retry_after=config.max_retry_after,
    )
    defer_until = None
    if error.status == 429:
        defer_until = now + (delay if error.retry_after is not None else max(delay, min_defer))
        delay = defer_until - now
    return Decision("retry", next_attempt_at=now + delay, defer_until=defer_until)
