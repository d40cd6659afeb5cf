"""Every outbox state rule, stated once as SQL, and the few ways the two dialects differ. Pure.

Statements use named parameters (``:name``); :class:`Dialect` holds what differs between SQLite
and PostgreSQL (functions, row locks, JSON encoding, the migration lock). ``Statements`` builds
each statement for one dialect, so both stores run the same rules. The rules are explained in
docs/outbox.md; no command kind appears here: a row carries ``superseding`` itself.
"""

# ruff: noqa: S608  # SQL is composed only from this module's constant fragments

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

ROW_COLUMNS = (
    "id, shop, kind, target, payload, idempotency_key, status, attempts, next_attempt_at, "
    "last_error, created_at, updated_at, supersedes, lease_owner, lease_until, done_at, "
    "superseding, priority"
)
_LIVE = "('pending', 'in_flight')"
_TERMINAL = "('done', 'dead', 'superseded')"


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the two databases; everything else is in :class:`Statements`."""

    name: str  # the migrations folder
    greatest: str  # the two-argument maximum function
    least: str  # the two-argument minimum function
    skip_locked: str  # appended to the claim's row selection
    lock_row: str  # appended to a read-modify-write of one row
    now_sql: str  # the current time in schema_version's column type
    schema_version_ddl: str
    split: Callable[[str], list[str]]  # a migration script -> statements
    encode_json: Callable[[Any], Any]
    decode_json: Callable[[Any], Any]
    # ``id`` is one of the ids bound as :ids (a batch), and how a list of ids is bound.
    in_ids: str
    encode_ids: Callable[[Sequence[int]], Any]
    # Lists bound as one parameter (:shops, :values): a subquery of the shops in :shops (column
    # ``shop``), one of the pairs of :shops and :values by position (``shop``, ``value``), how a
    # list is bound, and whether a claim of each shop's first rows is a LATERAL join (PostgreSQL,
    # which can lock them there) or a correlated list (SQLite).
    shop_list: str
    shop_values: str
    encode_list: Callable[[Sequence[Any]], Any]
    lateral: bool
    lock_state: str | None = None  # locks (namespace, key) until the transaction ends
    lock_migrations: str | None = None  # serialises concurrent migrate() calls


# -- the rules ----------------------------------------------------------------------------------

# A row `claim` may take: due (pending and its time has come, or in flight with its lease run out),
# and the oldest live row of its (shop, target), so each target has at most one row in flight and
# its rows go out in id order. The first term repeats the statuses so that both databases use the
# partial index of live rows (``outbox_live``, migration 0004): finished rows cost nothing here.
# "The oldest" is a scalar MIN, one index probe per candidate whatever the planner's statistics
# say (as NOT EXISTS, PostgreSQL planned a nested loop over every live row once its statistics
# predated the live rows: quadratic, 244 ms for 1,200 due rows).
CLAIMABLE = f"""
    o.status IN {_LIVE}
    AND ((o.status = 'pending' AND o.next_attempt_at <= :now)
     OR (o.status = 'in_flight' AND o.lease_until <= :now))
    AND o.id = (
        SELECT MIN(p.id) FROM outbox p
        WHERE p.shop = o.shop AND p.target = o.target AND p.status IN {_LIVE})
"""
# Claim order within a shop: priority first (a sell-out before a restock), then age.
CLAIM_ORDER = "o.priority DESC, o.id"

# A superseding row is outdated once a newer superseding row of the same (shop, target, kind)
# exists that was not itself superseded: its value would move the target backwards.
OUTDATED = """
    outbox.superseding AND EXISTS (
        SELECT 1 FROM outbox n
        WHERE n.shop = outbox.shop AND n.target = outbox.target AND n.kind = outbox.kind
          AND n.superseding AND n.id > outbox.id AND n.status <> 'superseded')
"""
_LEASED = "id = :id AND status = 'in_flight' AND lease_owner = :owner"
_LEASED_ANY = "status = 'in_flight' AND lease_owner = :owner"
_UNLEASE = "lease_owner = NULL, lease_until = NULL"
_REVIVE = "status = 'pending', attempts = 0, next_attempt_at = :now, updated_at = :now"


class Statements:
    """Every statement the stores run; the dialect-specific ones are built for one dialect."""

    # -- adding ---------------------------------------------------------------------------------
    insert = (
        "INSERT INTO outbox (shop, kind, target, payload, idempotency_key, superseding,"
        " priority, next_attempt_at, created_at, updated_at) VALUES (:shop, :kind, :target,"
        " :payload, :key, :superseding, :priority, :now, :now, :now)"
        " ON CONFLICT (shop, idempotency_key) DO NOTHING RETURNING id"
    )
    existing = (
        "SELECT id, kind, target, payload FROM outbox WHERE shop = :shop AND idempotency_key = :key"
    )
    # When the row was first claimed for sending; NULL: never.
    first_sent = "SELECT first_sent_at FROM outbox WHERE id = :id"
    # A new superseding row replaces the *pending* superseding rows of its (shop, target, kind);
    # a row in flight may be on the wire and is left alone. The live-status term lets both
    # databases find them through outbox_active_target (the target's live rows), not by reading
    # every pending row of the shop: a backlog of writes to many targets must not slow each add.
    supersede = (
        "UPDATE outbox SET status = 'superseded', updated_at = :now"
        f" WHERE shop = :shop AND target = :target AND status IN {_LIVE} AND kind = :kind"
        " AND superseding AND status = 'pending' AND id < :id RETURNING id"
    )
    record_superseded = "UPDATE outbox SET supersedes = :old WHERE id = :id"
    # -- relay ----------------------------------------------------------------------------------
    due_shops = f"SELECT DISTINCT o.shop FROM outbox o WHERE {CLAIMABLE} ORDER BY o.shop"
    mark_done = (
        f"UPDATE outbox SET status = 'done', done_at = :now, updated_at = :now, {_UNLEASE}"
        f" WHERE {_LEASED}"
    )
    mark_dead = (
        f"UPDATE outbox SET status = 'dead', last_error = :error, updated_at = :now, {_UNLEASE}"
        f" WHERE {_LEASED}"
    )
    # -- lanes and the bucket -------------------------------------------------------------------
    acquire_lane = (
        "INSERT INTO lanes (shop, owner, lease_until) VALUES (:shop, :owner, :until)"
        " ON CONFLICT (shop) DO UPDATE SET owner = excluded.owner,"
        " lease_until = excluded.lease_until WHERE lanes.owner IS NULL"
        " OR lanes.owner = excluded.owner OR lanes.lease_until <= :now RETURNING shop"
    )
    release_lane = (
        "UPDATE lanes SET owner = NULL, lease_until = 0 WHERE shop = :shop AND owner = :owner"
    )
    ensure_lane = "INSERT INTO lanes (shop) VALUES (:shop) ON CONFLICT (shop) DO NOTHING"
    write_tat = "UPDATE lanes SET tat = :tat WHERE shop = :shop"
    # An operator's retry ends the shop's deferral, so a stuck shop moves at once.
    unstick_lane = "UPDATE lanes SET not_before = :now WHERE shop = :shop AND not_before > :now"
    # -- operators ------------------------------------------------------------------------------
    get = f"SELECT {ROW_COLUMNS} FROM outbox WHERE id = :id"
    list_rows = (
        f"SELECT {ROW_COLUMNS} FROM outbox WHERE (CAST(:status AS TEXT) IS NULL OR"
        " status = :status) AND (CAST(:shop AS TEXT) IS NULL OR shop = :shop)"
        " ORDER BY id DESC LIMIT :limit"
    )
    retry = (
        f"UPDATE outbox SET {_REVIVE} WHERE id = :id AND status = 'dead' AND NOT ({OUTDATED})"
        " RETURNING shop"
    )
    retry_all_dead = (
        f"UPDATE outbox SET {_REVIVE} WHERE status = 'dead'"
        f" AND (CAST(:shop AS TEXT) IS NULL OR shop = :shop) AND NOT ({OUTDATED}) RETURNING shop"
    )
    purge = f"DELETE FROM outbox WHERE status IN {_TERMINAL} AND updated_at < :cutoff"
    # At most :limit of them (the oldest first, through outbox_finished): a background purge
    # holds the write lock briefly, however many rows are due.
    purge_batch = (
        f"DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status IN {_TERMINAL}"
        " AND updated_at < :cutoff ORDER BY updated_at LIMIT :limit)"
    )
    counts = "SELECT shop, status, COUNT(*) AS n FROM outbox GROUP BY shop, status"
    # The relay's depth gauge: live and dead rows only, through partial indexes (counting the
    # finished rows would read all of them every few seconds). The inner ORDER BY is
    # outbox_live's own order: without it SQLite scans the whole outbox_claim for the grouping.
    depth = (
        f"SELECT shop, status, COUNT(*) AS n FROM (SELECT shop, status FROM outbox"
        f" WHERE status IN {_LIVE} ORDER BY shop, priority DESC, id) AS live"
        " GROUP BY shop, status UNION ALL SELECT shop, status, COUNT(*) AS n FROM outbox"
        " WHERE status = 'dead' GROUP BY shop, status"
    )
    # -- consumer state -------------------------------------------------------------------------
    get_state = "SELECT value FROM consumer_state WHERE namespace = :namespace AND key = :key"
    put_state = (
        "INSERT INTO consumer_state (namespace, key, value) VALUES (:namespace, :key, :value)"
        " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value"
    )
    # -- migrations -----------------------------------------------------------------------------
    schema_version = "SELECT COALESCE(MAX(version), 0) AS v FROM schema_version"

    def __init__(self, d: Dialect) -> None:
        self.dialect = d
        self.claim = (
            f"WITH picked AS MATERIALIZED (SELECT o.id FROM outbox o WHERE o.shop = :shop AND"
            f" {CLAIMABLE} ORDER BY {CLAIM_ORDER} LIMIT :limit{d.skip_locked})"
            " UPDATE outbox SET status = 'in_flight', lease_owner = :owner, lease_until = :until,"
            " attempts = attempts + 1, updated_at = :now,"
            " first_sent_at = COALESCE(first_sent_at, :now)"
            f" WHERE id IN (SELECT id FROM picked) RETURNING {ROW_COLUMNS}"
        )
        # A failed row goes back to pending, unless a newer row replaced it meanwhile.
        self.mark_retry = (
            f"UPDATE outbox SET status = CASE WHEN {OUTDATED} THEN 'superseded' ELSE 'pending'"
            " END, next_attempt_at = :next, last_error = :error, updated_at = :now,"
            f" attempts = {d.greatest}(attempts - :undo, 0), {_UNLEASE} WHERE {_LEASED}"
        )
        # The batched outcomes: one statement for many rows of one relay (``:ids``), the same
        # rule as the single-row statement, each row checked for its own lease.
        self.mark_done_many = (
            f"UPDATE outbox SET status = 'done', done_at = :now, updated_at = :now, {_UNLEASE}"
            f" WHERE {d.in_ids} AND {_LEASED_ANY} RETURNING id"
        )
        self.mark_retry_many = (
            f"UPDATE outbox SET status = CASE WHEN {OUTDATED} THEN 'superseded' ELSE 'pending'"
            " END, next_attempt_at = :next, last_error = :error, updated_at = :now,"
            f" attempts = {d.greatest}(attempts - :undo, 0), {_UNLEASE}"
            f" WHERE {d.in_ids} AND {_LEASED_ANY} RETURNING id"
        )
        self.read_bucket = f"SELECT tat, not_before FROM lanes WHERE shop = :shop{d.lock_row}"
        self._lanes_of_many(d)
        # A later deadline wins, but none lies more than max_defer past now (:cap).
        self.defer = (
            "INSERT INTO lanes (shop, not_before) VALUES (:shop, :until) ON CONFLICT (shop)"
            f" DO UPDATE SET not_before = {d.least}({d.greatest}(lanes.not_before,"
            " excluded.not_before), :cap)"
        )
        self.record_version = (
            "INSERT INTO schema_version (version, name, applied_at)"
            f" VALUES (:version, :name, {d.now_sql})"
        )

    def _lanes_of_many(self, d: Dialect) -> None:
        """The set-based lane statements of ``claim_lanes`` (:mod:`bridge.outbox.claims`): the
        same rules as ``acquire_lane``, ``claim``, ``release_lane`` and the bucket's, for every
        shop in ``:shops`` at once."""
        shops = f"({d.shop_list}) AS s"
        self.acquire_lanes = (
            "INSERT INTO lanes (shop, owner, lease_until)"
            f" SELECT s.shop, :owner, :until FROM {shops} WHERE true ON CONFLICT (shop)"
            " DO UPDATE SET owner = excluded.owner,"
            " lease_until = excluded.lease_until WHERE lanes.owner IS NULL"
            " OR lanes.owner = excluded.owner OR lanes.lease_until <= :now RETURNING shop"
        )
        first = (
            f"SELECT o.id FROM outbox o WHERE o.shop = s.shop AND {CLAIMABLE}"
            f" ORDER BY {CLAIM_ORDER} LIMIT :limit{d.skip_locked}"
        )
        if d.lateral:
            picked = f"SELECT x.id FROM {shops} CROSS JOIN LATERAL ({first}) AS x"
        else:
            picked = f"SELECT x.id FROM {shops} JOIN outbox x ON x.id IN ({first})"
        self.claim_many = (
            f"WITH picked AS MATERIALIZED ({picked})"
            " UPDATE outbox SET status = 'in_flight', lease_owner = :owner, lease_until = :until,"
            " attempts = attempts + 1, updated_at = :now,"
            " first_sent_at = COALESCE(first_sent_at, :now)"
            f" WHERE id IN (SELECT id FROM picked) RETURNING {ROW_COLUMNS}"
        )
        self.release_lanes = (
            "UPDATE lanes SET owner = NULL, lease_until = 0"
            f" WHERE owner = :owner AND shop IN (SELECT s.shop FROM {shops}) RETURNING shop"
        )
        self.defer_many = (
            f"INSERT INTO lanes (shop, not_before) SELECT v.shop, v.value FROM ({d.shop_values})"
            " AS v WHERE true ON CONFLICT (shop) DO UPDATE SET not_before ="
            f" {d.least}({d.greatest}(lanes.not_before, excluded.not_before), :cap)"
        )
        self.read_buckets = (
            "SELECT shop, tat, not_before FROM lanes"
            f" WHERE shop IN (SELECT s.shop FROM {shops}){d.lock_row}"
        )
        self.write_tats = (
            f"UPDATE lanes SET tat = v.value FROM ({d.shop_values}) AS v WHERE lanes.shop = v.shop"
        )
