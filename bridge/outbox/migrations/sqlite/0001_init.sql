-- Outbox rows, consumer state and per-shop relay lanes (SQLite). Times are Unix seconds (REAL).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after a purge
    shop            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    idempotency_key TEXT    NOT NULL UNIQUE,
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'in_flight', 'done', 'dead', 'superseded')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL,
    last_error      TEXT,
    created_at      REAL    NOT NULL,
    updated_at      REAL    NOT NULL,
    supersedes      INTEGER,
    lease_owner     TEXT,
    lease_until     REAL,
    done_at         REAL
);

-- claiming: due rows of one shop
CREATE INDEX outbox_claim ON outbox (shop, status, next_attempt_at);

-- supersede and per-target order look only at live rows
CREATE INDEX outbox_active_target ON outbox (shop, target, id)
    WHERE status IN ('pending', 'in_flight');

-- purge
CREATE INDEX outbox_finished ON outbox (updated_at)
    WHERE status IN ('done', 'dead', 'superseded');

CREATE TABLE consumer_state (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL CHECK (json_valid(value)),
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

-- one row per shop: the lane lease and the shared GCRA token bucket
CREATE TABLE lanes (
    shop        TEXT PRIMARY KEY,
    owner       TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    tat         REAL NOT NULL DEFAULT 0,  -- theoretical arrival time
    not_before  REAL NOT NULL DEFAULT 0   -- Retry-After: no send time before this
) WITHOUT ROWID;
