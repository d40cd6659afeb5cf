"""Taking lanes with their first batches, and giving lanes back: a few set-based statements for
any number of shops.

A relay starting hundreds of lanes at once used to run four statements per shop (take the lane,
claim its batch, read and write its bucket). On SQLite each statement hands the GIL to the
connection's thread and back, and with a busy event loop a claim of 200 lanes took 1.3 to 3 s
(``bench/relay.py``, 500 shops); on PostgreSQL each statement is a round trip. Here the same
rules (:mod:`bridge.outbox.policy`) run as at most five statements, whatever the number of
shops: take the lanes, claim each shop's batch (one statement per distinct batch size), give
back the lanes that had nothing due, read the buckets, write the buckets.

Giving lanes back (``release_lanes_in``) is two statements: the handover times (``defer``'s
rule, capped past now), then the release. Shops are taken in sorted order, so two relays claiming
overlapping sets lock PostgreSQL's lane rows in the same order and never deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from bridge.outbox.bucket import gcra_slots, validate_rate
from bridge.outbox.policy import Statements
from bridge.outbox.rows import LaneClaim
from bridge.outbox.session import Record, Session

Taken = dict[str, tuple[list[Record], list[float]]]  # shop -> (claimed records, send slots)


def next_slots(
    bucket: Record, wanted: LaneClaim, count: int, now: float
) -> tuple[list[float], float]:
    """The send slots of ``count`` claimed rows from a shop's ``lanes`` row (GCRA)."""
    tat, not_before = float(bucket["tat"]), float(bucket["not_before"])
    return gcra_slots(tat, not_before, wanted.rate, wanted.burst, count, now, wanted.horizon)


async def claim_lanes_in(
    session: Session,
    sql: Statements,
    owner: str,
    lease_seconds: float,
    now: float,
    wanted: Sequence[LaneClaim],
    *,
    release_empty: bool = False,
) -> Taken:
    """Inside the caller's transaction: the lanes of ``wanted`` taken by ``owner``, each with up
    to its ``limit`` claimed rows and their slots. A lane held by another relay is left out; one
    with nothing due is kept (empty) or, with ``release_empty``, given back and left out."""
    by_shop: dict[str, LaneClaim] = {}
    for w in wanted:
        validate_rate(w.rate, w.burst, max(0, w.limit))
        by_shop.setdefault(w.shop, w)
    if not by_shop:
        return {}
    listed = sql.dialect.encode_list
    lease = {"owner": owner, "until": now + lease_seconds, "now": now}
    shops = sorted(by_shop)
    rows = await session.fetch(sql.acquire_lanes, lease | {"shops": listed(shops)})
    acquired = {str(r["shop"]) for r in rows}
    held = [s for s in shops if s in acquired]
    records: dict[str, list[Record]] = {s: [] for s in held}
    by_limit: defaultdict[int, list[str]] = defaultdict(list)
    for shop in held:
        if by_shop[shop].limit > 0:
            by_limit[by_shop[shop].limit].append(shop)
    for limit, group in sorted(by_limit.items()):
        claim = lease | {"shops": listed(group), "limit": limit}
        for record in await session.fetch(sql.claim_many, claim):
            records[str(record["shop"])].append(record)
    if release_empty:
        empty = [s for s in held if not records[s]]
        if empty:
            await session.fetch(sql.release_lanes, {"owner": owner, "shops": listed(empty)})
        held = [s for s in held if records[s]]
    taken: Taken = {s: (records[s], []) for s in held}
    busy = [s for s in held if records[s]]
    if busy:
        found = await session.fetch(sql.read_buckets, {"shops": listed(busy)})
        buckets = {str(b["shop"]): b for b in found}
        tats = []
        for shop in busy:
            slots, tat = next_slots(buckets[shop], by_shop[shop], len(records[shop]), now)
            taken[shop] = (records[shop], slots)
            tats.append(tat)
        await session.execute(sql.write_tats, {"shops": listed(busy), "values": listed(tats)})
    return taken


async def release_lanes_in(
    session: Session,
    sql: Statements,
    owner: str,
    lanes: Mapping[str, float | None],
    now: float,
    max_defer: float,
) -> set[str]:
    """Inside the caller's transaction: give up ``owner``'s lanes of ``lanes``, each next holder
    sending no earlier than its ``not_before`` (capped at ``now + max_defer``); the shops given up.
    """
    if not lanes:
        return set()
    listed = sql.dialect.encode_list
    cap = now + max_defer
    handovers = sorted((shop, min(t, cap)) for shop, t in lanes.items() if t is not None)
    if handovers:
        shops, times = [s for s, _ in handovers], [t for _, t in handovers]
        deferral = {"shops": listed(shops), "values": listed(times), "cap": cap}
        await session.execute(sql.defer_many, deferral)
    given = await session.fetch(sql.release_lanes, {"owner": owner, "shops": listed(sorted(lanes))})
    return {str(r["shop"]) for r in given}
