"""Fault injection: which API request fails, how, and how late. Seeded, so runs repeat exactly.

Every decision draws the same five numbers from the RNG, whichever branch it takes, so the n-th
request of a run gets the same fate for the same seed and settings.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

FAIL_STATUSES = (500, 502, 503)
RATE_FIELDS = ("fail_rate", "fail_after_rate", "rate_429")
DELAY_FIELDS = ("latency_ms", "latency_jitter_ms")


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """Fractions in [0, 1]; delays in milliseconds; ``shops`` None means every shop."""

    fail_rate: float = 0.0  # answered 500/502/503 before the write is applied
    fail_after_rate: float = 0.0  # write applied, then answered 500
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0  # uniform extra delay in [0, jitter)
    rate_429: float = 0.0  # spurious 429 with Retry-After
    retry_after: int = 1
    shops: frozenset[str] | None = None
    active: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        for name in DELAY_FIELDS:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.retry_after < 1:
            raise ValueError(f"retry_after must be >= 1, got {self.retry_after}")
        active = any(getattr(self, name) for name in (*RATE_FIELDS, *DELAY_FIELDS))
        object.__setattr__(self, "active", active)  # frozen: computed once, read per request

    def updated(self, changes: Mapping[str, Any]) -> FaultSettings:
        """A copy with the JSON fields in ``changes`` applied; ValueError on a bad field."""
        known = {*RATE_FIELDS, *DELAY_FIELDS, "retry_after", "shops", "seed"}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault setting {unknown[0]!r}")
        values: dict[str, Any] = {}
        for name in (*RATE_FIELDS, *DELAY_FIELDS):
            if name in changes:
                value = changes[name]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number")
                values[name] = float(value)
        if "retry_after" in changes:
            value = changes["retry_after"]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("retry_after must be an integer")
            values["retry_after"] = value
        if "shops" in changes:
            shops = changes["shops"]
            if shops is not None and (
                not isinstance(shops, list) or not all(isinstance(s, str) for s in shops)
            ):
                raise ValueError("shops must be a list of shop ids or null")
            values["shops"] = None if shops is None else frozenset(shops)
        return replace(self, **values)

    def to_json(self) -> dict[str, Any]:
        return {
            "fail_rate": self.fail_rate,
            "fail_after_rate": self.fail_after_rate,
            "latency_ms": self.latency_ms,
            "latency_jitter_ms": self.latency_jitter_ms,
            "rate_429": self.rate_429,
            "retry_after": self.retry_after,
            "shops": None if self.shops is None else sorted(self.shops),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """``status``: answer this instead of doing anything (429 or 5xx); ``delay`` in seconds."""

    status: int | None = None
    fail_after: bool = False
    delay: float = 0.0


NO_FAULT = Decision()


class Faults:
    """Draws decisions from a seeded RNG; settings and seed can change at run time."""

    def __init__(self, settings: FaultSettings | None = None, seed: int | None = None) -> None:
        self.settings = settings or FaultSettings()
        self.seed = seed
        self._rng = random.Random(seed)  # noqa: S311 -- fault injection, not cryptography

    def configure(self, settings: FaultSettings, seed: int | None = None) -> None:
        """Replace the settings; a given seed restarts the decision sequence."""
        self.settings = settings
        if seed is not None:
            self.seed = seed
            self._rng.seed(seed)

    def decide(self, shop: str, *, write: bool) -> Decision:
        s = self.settings
        if not s.active or (s.shops is not None and shop not in s.shops):
            return NO_FAULT
        draw = self._rng.random
        r429, rfail, rkind, rafter, rjitter = draw(), draw(), draw(), draw(), draw()
        delay = (s.latency_ms + rjitter * s.latency_jitter_ms) / 1000.0
        if r429 < s.rate_429:
            return Decision(status=429, delay=delay)
        if rfail < s.fail_rate:
            return Decision(status=FAIL_STATUSES[int(rkind * len(FAIL_STATUSES))], delay=delay)
        return Decision(fail_after=write and rafter < s.fail_after_rate, delay=delay)
