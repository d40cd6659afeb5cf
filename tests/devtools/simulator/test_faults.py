"""Fault decisions: seeded, reproducible, scoped to shops, validated."""

from __future__ import annotations

import pytest

from bridge.devtools.simulator.faults import (
    FAIL_STATUSES,
    NO_FAULT,
    Decision,
    Faults,
    FaultSettings,
)


def run(faults: Faults, n: int = 200, *, write: bool = True) -> list[Decision]:
    return [faults.decide("shop", write=write) for _ in range(n)]


def test_same_seed_same_decisions() -> None:
    """Two runs with one seed and one setting decide identically."""
    settings = FaultSettings(fail_rate=0.3, fail_after_rate=0.2, rate_429=0.1, latency_jitter_ms=5)
    assert run(Faults(settings, seed=42)) == run(Faults(settings, seed=42))


def test_reseeding_restarts_the_sequence() -> None:
    """configure(..., seed) rewinds the RNG to that seed."""
    faults = Faults(FaultSettings(fail_rate=0.5), seed=1)
    first = run(faults, 50)
    faults.configure(FaultSettings(fail_rate=0.5), seed=1)
    assert first == run(faults, 50)


def test_rates_are_roughly_honoured() -> None:
    """fail_rate 0.3 fails about 30% with 500/502/503 only."""
    decisions = run(Faults(FaultSettings(fail_rate=0.3), seed=3), 2000)
    failed = [d.status for d in decisions if d.status is not None]
    assert set(FAIL_STATUSES) == set(failed)
    assert 0.25 < len(failed) / 2000 < 0.35


def test_no_faults_means_no_decision() -> None:
    """Default settings never fail or delay anything."""
    assert {NO_FAULT} == set(run(Faults(seed=5)))


def test_fail_after_only_applies_to_writes() -> None:
    """A read cannot be 'applied then failed'."""
    faults = Faults(FaultSettings(fail_after_rate=1.0), seed=1)
    assert {Decision(fail_after=False)} == set(run(faults, 10, write=False))
    assert {Decision(fail_after=True)} == set(run(faults, 10, write=True))


def test_spurious_429_takes_precedence() -> None:
    """rate_429 1.0 answers every request 429."""
    faults = Faults(FaultSettings(rate_429=1.0, fail_rate=1.0), seed=1)
    assert {429} == {d.status for d in run(faults, 20)}


def test_latency_with_jitter_stays_in_range() -> None:
    """delay is latency plus up to jitter, in seconds."""
    delays = [d.delay for d in run(Faults(FaultSettings(latency_ms=10, latency_jitter_ms=5)))]
    assert all(0.010 <= d < 0.015 for d in delays)


def test_faults_can_target_some_shops() -> None:
    """With shops set, other shops are untouched."""
    faults = Faults(FaultSettings(fail_rate=1.0, shops=frozenset({"bad"})), seed=1)
    assert NO_FAULT == faults.decide("good", write=True)
    assert faults.decide("bad", write=True).status in FAIL_STATUSES


@pytest.mark.parametrize(
    "changes",
    [{"fail_rate": 1.5}, {"latency_ms": -1}, {"fail_rate": "x"}, {"nope": 1}, {"shops": "a"}],
)
def test_bad_settings_are_refused(changes: dict[str, object]) -> None:
    """Out-of-range, mistyped and unknown settings raise ValueError."""
    with pytest.raises(ValueError, match=r"."):
        FaultSettings().updated(changes)


def test_updated_keeps_unmentioned_settings() -> None:
    """A partial update changes only the named fields."""
    base = FaultSettings(fail_rate=0.2, latency_ms=3)
    expected = FaultSettings(fail_rate=0.2, latency_ms=3, rate_429=0.5, shops=frozenset({"a"}))
    assert expected == base.updated({"rate_429": 0.5, "shops": ["a"]})
