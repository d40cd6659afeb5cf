"""Backoff and the retry decision: pure, with a seeded RNG."""

from __future__ import annotations

import random
import statistics
from dataclasses import replace

import pytest

from bridge.config import RelayConfig, parse_config
from bridge.errors import ConfigError, PlatformError, RequestTooLarge
from bridge.relay.backoff import Decision, backoff_delay, ceiling, decide

NOW = 1_700_000_000.0
CONFIG = RelayConfig(max_attempts=5, backoff_base=0.5, backoff_cap=30.0)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (60, 30.0), (10_000, 30.0)],
)
def test_ceiling_doubles_then_caps(attempt: int, expected: float) -> None:
    """The bound doubles per attempt from ``base`` and never exceeds ``cap``."""
    assert expected == ceiling(attempt, 0.5, 30.0)


@pytest.mark.parametrize(
    ("attempt", "base", "cap"), [(0, 0.5, 30.0), (1, 0.0, 30.0), (1, 0.5, -1.0)]
)
def test_ceiling_rejects_nonsense(attempt: int, base: float, cap: float) -> None:
    """Attempts count from 1; base and cap are positive."""
    with pytest.raises(ValueError, match="must be"):
        ceiling(attempt, base, cap)


def test_delays_stay_within_zero_and_the_bound() -> None:
    """Every delay lies in [0, min(cap, base * 2**(n-1))]."""
    rng = random.Random(1)
    for attempt in range(1, 40):
        bound = ceiling(attempt, 0.5, 30.0)
        delays = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert [] == [d for d in delays if not 0.0 <= d <= bound]


def test_full_jitter_is_uniform_over_the_whole_range() -> None:
    """Full jitter: mean near bound/2, spread over the whole range, not bunched at the top."""
    rng = random.Random(42)
    delays = [backoff_delay(7, 0.5, 30.0, rng) for _ in range(20_000)]
    assert 15.0 == pytest.approx(statistics.fmean(delays), rel=0.03)
    deciles = [sum(1 for d in delays if k * 3.0 <= d < (k + 1) * 3.0) for k in range(10)]
    assert [] == [n for n in deciles if not 1_800 <= n <= 2_200]
    assert min(delays) < 0.05


def test_same_seed_same_delays() -> None:
    """A seeded RNG makes the sequence repeatable (tests and simulations)."""
    first = [backoff_delay(n, 0.5, 30.0, random.Random(3)) for n in range(1, 10)]
    second = [backoff_delay(n, 0.5, 30.0, random.Random(3)) for n in range(1, 10)]
    assert first == second


@pytest.mark.parametrize("retry_after", [0.0, 2.0, 45.0, 3600.0])
def test_retry_after_wins_over_backoff_and_cap(retry_after: float) -> None:
    """A platform's Retry-After is used as given, even above the cap."""
    assert retry_after == backoff_delay(3, 0.5, 30.0, random.Random(0), retry_after=retry_after)


def test_negative_or_infinite_retry_after() -> None:
    """A negative Retry-After means "now"; a non-finite one is ignored in favour of backoff."""
    assert 0.0 == backoff_delay(1, 0.5, 30.0, random.Random(0), retry_after=-5.0)
    delay = backoff_delay(1, 0.5, 30.0, random.Random(0), retry_after=float("inf"))
    assert 0.0 <= delay <= 0.5


@pytest.mark.parametrize("status", [None, 408, 409, 500, 502, 503])
def test_retryable_errors_retry_with_backoff(status: int | None) -> None:
    """5xx, 408, 409 and transport errors go back to pending after a jittered delay."""
    error = PlatformError("boom", status=status, retryable=True)
    decision = decide(error, 2, CONFIG, NOW, random.Random(5))
    assert "retry" == decision.verdict
    assert decision.next_attempt_at is not None
    assert NOW <= decision.next_attempt_at <= NOW + 1.0
    assert None is decision.defer_until


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_4xx_are_dead_at_once(status: int) -> None:
    """A 4xx other than 408/409/429 will not succeed by repeating it."""
    error = PlatformError("no", status=status, retryable=False)
    assert Decision("dead") == decide(error, 1, CONFIG, NOW, random.Random(0))


def test_request_too_large_is_dead() -> None:
    """A write refused locally for its size is dead on the first attempt."""
    assert Decision("dead") == decide(
        RequestTooLarge(3_000_000, 2_097_152), 1, CONFIG, NOW, random.Random(0)
    )


def test_retryable_error_on_the_last_attempt_is_dead() -> None:
    """attempts >= max_attempts turns a retryable failure into a dead row."""
    error = PlatformError("still down", status=503, retryable=True)
    assert Decision("dead") == decide(error, CONFIG.max_attempts, CONFIG, NOW, random.Random(0))
    assert "retry" == decide(error, CONFIG.max_attempts - 1, CONFIG, NOW, random.Random(0)).verdict


def test_429_with_retry_after_defers_the_shop_until_then() -> None:
    """429 + Retry-After: the row and the whole shop wait exactly Retry-After."""
    error = PlatformError("slow down", status=429, retryable=True, retry_after=7.0)
    assert Decision("retry", NOW + 7.0, NOW + 7.0) == decide(
        error, 1, CONFIG, NOW, random.Random(0)
    )


def test_429_without_retry_after_defers_at_least_min_defer() -> None:
    """A bare 429 pauses the shop for the backoff delay, but never less than min_defer."""
    error = PlatformError("slow down", status=429, retryable=True)
    decision = decide(error, 1, CONFIG, NOW, random.Random(0), min_defer=1.0)
    assert decision.defer_until is not None
    assert decision.defer_until >= NOW + 1.0
    assert decision.defer_until == decision.next_attempt_at


@pytest.mark.parametrize("retry_after", [3600.0, 3601.0, 86_400.0, 10.0**9])
def test_429_retry_after_is_capped_at_max_retry_after(retry_after: float) -> None:
    """Retry-After beyond relay.max_retry_after (default 1 h) defers the shop only that long."""
    error = PlatformError(
        "come back next year", status=429, retryable=True, retry_after=retry_after
    )
    assert 3600.0 == RelayConfig().max_retry_after
    assert Decision("retry", NOW + 3600.0, NOW + 3600.0) == decide(
        error, 1, RelayConfig(), NOW, random.Random(0)
    )


def test_max_retry_after_is_configurable() -> None:
    """A smaller max_retry_after caps Retry-After for the row and the shop alike."""
    config = replace(CONFIG, max_retry_after=120.0)
    error = PlatformError("later", status=429, retryable=True, retry_after=900.0)
    assert Decision("retry", NOW + 120.0, NOW + 120.0) == decide(
        error, 1, config, NOW, random.Random(0)
    )


def test_max_retry_after_is_read_from_the_relay_table() -> None:
    """[relay] max_retry_after in bridge.toml; below 1 s is refused with the key's name."""
    text = '[privacy]\nmode = "redact"\n[relay]\nmax_retry_after = {}\n'
    assert 60.0 == parse_config(text.format(60), {}).relay.max_retry_after
    with pytest.raises(ConfigError, match=r"relay\.max_retry_after"):
        parse_config(text.format(0), {})
