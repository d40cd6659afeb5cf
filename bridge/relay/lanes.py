"""The relay's options and the state of one lane (one shop's sending) and one claimed batch."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.config import ShopConfig
from bridge.platforms.base import PlatformClient
from bridge.relay.pacing import Flag, PaceOn


@dataclass(frozen=True, slots=True)
class RelayOptions:
    """Tuning beyond ``[relay]`` in bridge.toml; the defaults suit production."""

    max_lanes: int = 1000  # shops sent to at once by one relay process
    batch_seconds: float = 2.0  # a claim takes about this many seconds of the shop's rate
    max_batch: int = 200
    # Send at (1 - headroom) x rate_limit: slack for jitter we cannot see (transit, the
    # platform's own scheduling), so no window at the platform holds more than rate_limit
    # requests: 1.5% of 1 s is 15 ms. Late departures on our side are handled exactly
    # (bridge.relay.pacing).
    rate_headroom: float = 0.015
    # When an earlier request surely counted at the platform: once answered (safe whatever the
    # platform does) or once written (tighter, for platforms that count on arrival). See pacing.
    pace_on: PaceOn = "answer"
    # A lane busy this long hands its shop over (pausing it for two polls) so that replicas
    # started later get a share of busy shops. 0 keeps a lane until its shop has nothing due.
    lane_turn_seconds: float = 300.0
    # The least time between two polls for due shops: a poll scans the outbox, and every lane
    # that ends asks for one. Within poll_interval (a wake after new work still polls at once
    # when the last poll is older than this).
    poll_gap: float = 0.05
    claim_chunk: int = 200  # lanes taken, with their first batches, in one transaction
    depth_interval: float = 5.0  # how often bridge_outbox_rows is refreshed from the database
    publish_timeout: float = 10.0
    flush_timeout: float = 10.0  # at shutdown, for the last delivery records
    min_defer: float = 1.0  # a 429 without Retry-After pauses the shop at least this long
    # A request starts no later than deadline (relay.request_timeout) + this before its row's
    # lease ends, so its outcome is recorded while the lease still holds.
    lease_margin: float = 1.0


@dataclass(slots=True)
class Lane:
    shop: str
    spec: ShopConfig
    client: PlatformClient
    started: float
    renewed: float
    held: bool = True
    # Rows went back unsent: end the lane rather than claim again, and leave the shop alone
    # until then (a deferral's end, or the first send slot beyond the lease).
    idle_until: float | None = None

    def pause(self, until: float) -> None:
        self.idle_until = max(until, self.idle_until or until)


@dataclass(slots=True, eq=False)  # identity equality: batches live in a set
class Batch:
    """One claimed batch; ``interrupt`` stops sending its rest (429 deferral or shutdown)."""

    interrupt: Flag = field(default_factory=Flag)
    deferred_until: float | None = None

    def defer(self, until: float) -> None:
        self.deferred_until = max(until, self.deferred_until or until)
        self.interrupt.set()
