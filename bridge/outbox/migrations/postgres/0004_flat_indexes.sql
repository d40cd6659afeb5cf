-- Indexes that keep the relay's statements as fast with a million finished rows as without
-- (bench/outbox_scale.py). Claims and relay polls read only live rows, in claim order within a
-- shop (priority first, then age): a partial index of them.
CREATE INDEX outbox_live ON outbox (shop, priority DESC, id, status)
    WHERE status IN ('pending', 'in_flight');

-- A retry asks whether a newer superseding row replaced this one (policy.OUTDATED): only the
-- newer rows of its target are read. Partial on OUTDATED's own terms, so that the statements
-- looking for the *oldest* rows of a target keep using outbox_active_target.
CREATE INDEX outbox_newer ON outbox (shop, target, id)
    WHERE superseding AND status <> 'superseded';

-- The relay's depth gauge counts dead rows per shop (policy depth), not every finished row.
CREATE INDEX outbox_dead ON outbox (shop, status) WHERE status = 'dead';

-- outbox_claim (shop, status, next_attempt_at) held every row; nothing the relay or a consumer
-- runs reads it any more (claims and polls: outbox_live; supersede: outbox_active_target), and
-- each status change of a row rewrote its entry.
DROP INDEX outbox_claim;
