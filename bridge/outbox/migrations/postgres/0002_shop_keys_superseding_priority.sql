-- Idempotency keys unique per shop (not globally); a row says itself whether it supersedes
-- (existing rows: the set_stock ones did); a claim priority.
ALTER TABLE outbox ADD COLUMN superseding boolean NOT NULL DEFAULT false;
ALTER TABLE outbox ADD COLUMN priority integer NOT NULL DEFAULT 0;
UPDATE outbox SET superseding = (kind = 'set_stock');

ALTER TABLE outbox DROP CONSTRAINT outbox_idempotency_key_key;
ALTER TABLE outbox ADD CONSTRAINT outbox_shop_idempotency_key UNIQUE (shop, idempotency_key);
