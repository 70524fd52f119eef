-- +goose Up
-- The outbox without AUTOINCREMENT and without UNIQUE (event_id), so that an
-- insert writes only the table and the pending index. SQLite flavour; the
-- PostgreSQL file only drops the unique constraint (an identity column has
-- no sqlite_sequence to update).
--
-- Why: AUTOINCREMENT makes every insert update sqlite_sequence, and the
-- unique event_id is an index of its own (sqlite_autoindex_souk_outbox_1);
-- under the checkout benchmark the two cost 0.2-0.8 and 0.3-1.1 WAL pages
-- per commit in every service database. Event ids are ULIDs minted per event
-- by NewEvent and each event is inserted once by Outbox.Add; downstream,
-- JetStream de-duplicates by Nats-Msg-Id (the event id) and consumers keep
-- an inbox. No query outside tests looks a row up by event_id.
--
-- Without AUTOINCREMENT a new row gets max(seq)+1: still above every seq in
-- the table, so seq order among the rows present stays insertion order, but
-- a seq can be reused once the row holding the highest one is deleted. The
-- relay prunes only published rows, remembers only the seqs of unpublished
-- rows it is handling, and orders by seq only among unpublished rows, so a
-- reused seq never names a row it did not mean (docs/adr/0003-event-bus.md).
--
-- SQLite cannot drop AUTOINCREMENT or a column constraint in place; this is
-- its documented rebuild (https://sqlite.org/lang_altertable.html#otheralter):
-- create the new table, copy every row with its seq, drop the old one (which
-- also deletes its sqlite_sequence row), rename, re-create the index. No
-- foreign key, trigger or view refers to souk_outbox, so foreign_keys can stay
-- on and the whole rebuild runs in goose's transaction.
CREATE TABLE souk_outbox_new (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    aggregate_id TEXT NOT NULL DEFAULT '',
    payload      TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    published_at TIMESTAMP,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT ''
);
INSERT INTO souk_outbox_new (seq, event_id, event_type, aggregate_id, payload, created_at, published_at, attempts, last_error)
    SELECT seq, event_id, event_type, aggregate_id, payload, created_at, published_at, attempts, last_error FROM souk_outbox;
DROP TABLE souk_outbox;
ALTER TABLE souk_outbox_new RENAME TO souk_outbox;
CREATE INDEX souk_outbox_pending ON souk_outbox (seq) WHERE published_at IS NULL;

-- +goose Down
-- Back to 00001's shape. Copying the rows with their seq sets sqlite_sequence
-- to the highest one; seqs of deleted rows above it are forgotten. Fails if
-- two rows share an event id.
CREATE TABLE souk_outbox_old (
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
INSERT INTO souk_outbox_old (seq, event_id, event_type, aggregate_id, payload, created_at, published_at, attempts, last_error)
    SELECT seq, event_id, event_type, aggregate_id, payload, created_at, published_at, attempts, last_error FROM souk_outbox;
DROP TABLE souk_outbox;
ALTER TABLE souk_outbox_old RENAME TO souk_outbox;
CREATE INDEX souk_outbox_pending ON souk_outbox (seq) WHERE published_at IS NULL;
