-- Idempotency keys unique per shop (not globally); a row says itself whether it supersedes
-- (existing rows: the set_stock ones did); a claim priority. SQLite cannot drop a column
-- constraint, so the table is rebuilt, keeping ids and the AUTOINCREMENT counter.
CREATE TABLE outbox_next (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after a purge
    shop            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    idempotency_key TEXT    NOT NULL,
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
    done_at         REAL,
    superseding     INTEGER NOT NULL DEFAULT 0 CHECK (superseding IN (0, 1)),
    priority        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (shop, idempotency_key)
);

INSERT INTO outbox_next (id, shop, kind, target, payload, idempotency_key, status, attempts,
    next_attempt_at, last_error, created_at, updated_at, supersedes, lease_owner, lease_until,
    done_at, superseding, priority)
SELECT id, shop, kind, target, payload, idempotency_key, status, attempts, next_attempt_at,
    last_error, created_at, updated_at, supersedes, lease_owner, lease_until, done_at,
    kind = 'set_stock', 0
FROM outbox;

DELETE FROM sqlite_sequence WHERE name = 'outbox_next';
INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox_next', seq FROM sqlite_sequence
    WHERE name = 'outbox';

DROP TABLE outbox;
ALTER TABLE outbox_next RENAME TO outbox;

CREATE INDEX outbox_claim ON outbox (shop, status, next_attempt_at);
CREATE INDEX outbox_active_target ON outbox (shop, target, id)
    WHERE status IN ('pending', 'in_flight');
CREATE INDEX outbox_finished ON outbox (updated_at)
    WHERE status IN ('done', 'dead', 'superseded');
