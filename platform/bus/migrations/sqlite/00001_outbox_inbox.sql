-- +goose Up
-- The transactional outbox: a service inserts its events here in the same
-- transaction as the change they report; the relay publishes them in seq order.
CREATE TABLE souk_outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    aggregate_id TEXT NOT NULL DEFAULT '',
    payload      TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    published_at TIMESTAMP,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX souk_outbox_pending ON souk_outbox (seq) WHERE published_at IS NULL;

-- The inbox: which events each durable consumer has already applied, written
-- in the consumer's own transaction, so a redelivery changes nothing.
CREATE TABLE souk_inbox (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- +goose Down
DROP TABLE souk_inbox;
DROP TABLE souk_outbox;
