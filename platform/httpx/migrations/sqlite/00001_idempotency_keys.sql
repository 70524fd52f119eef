-- +goose Up
-- Idempotency keys (API.md "retries"): one row per (scope, key). A request
-- claims its key by inserting the row in_progress; the response it produced
-- is stored when it completes and replayed to every retry until expires_at.
-- owner is the claim token of the request that holds the row, so a request
-- only ever completes or releases its own claim. The same in both engines
-- except BLOB/BYTEA and TIMESTAMP/TIMESTAMPTZ.
CREATE TABLE souk_idempotency_keys (
    scope           TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    state           TEXT NOT NULL,
    owner           TEXT NOT NULL,
    status_code     INTEGER NOT NULL DEFAULT 0,
    content_type    TEXT NOT NULL DEFAULT '',
    headers         TEXT NOT NULL DEFAULT '',
    body            BLOB,
    created_at      TIMESTAMP NOT NULL,
    locked_until    TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX souk_idempotency_keys_expires ON souk_idempotency_keys (expires_at);

-- +goose Down
DROP TABLE souk_idempotency_keys;
