-- Outbox rows, consumer state and per-shop relay lanes (PostgreSQL). Times are Unix seconds.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop            text    NOT NULL,
    kind            text    NOT NULL,
    target          text    NOT NULL,
    payload         jsonb   NOT NULL,
    idempotency_key text    NOT NULL UNIQUE,
    status          text    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'in_flight', 'done', 'dead', 'superseded')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    last_error      text,
    created_at      double precision NOT NULL,
    updated_at      double precision NOT NULL,
    supersedes      bigint,
    lease_owner     text,
    lease_until     double precision,
    done_at         double precision
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
    namespace text  NOT NULL,
    key       text  NOT NULL,
    value     jsonb NOT NULL,
    PRIMARY KEY (namespace, key)
);

-- one row per shop: the lane lease and the shared GCRA token bucket
CREATE TABLE lanes (
    shop        text PRIMARY KEY,
    owner       text,
    lease_until double precision NOT NULL DEFAULT 0,
    tat         double precision NOT NULL DEFAULT 0,  -- theoretical arrival time
    not_before  double precision NOT NULL DEFAULT 0   -- Retry-After: no send time before this
);
