-- When a row was first claimed for sending (NULL: never). A platform can only echo a write
-- after it was sent; inventory sync compares this with when a webhook arrived.
ALTER TABLE outbox ADD COLUMN first_sent_at double precision;
