-- +goose Up
-- Event ids are no longer unique in the outbox: one index fewer to write per
-- event. PostgreSQL flavour; the SQLite file also rebuilds the table without
-- AUTOINCREMENT, which PostgreSQL's identity column does not need (it has no
-- sqlite_sequence to update).
--
-- Event ids are ULIDs minted per event by NewEvent and each event is inserted
-- once by Outbox.Add; downstream, JetStream de-duplicates by Nats-Msg-Id (the
-- event id) and consumers keep an inbox. No query outside tests looks a row
-- up by event_id.
-- The constraint has the default name 00001's inline UNIQUE gave it.
ALTER TABLE souk_outbox DROP CONSTRAINT souk_outbox_event_id_key;

-- +goose Down
-- Fails if two rows share an event id.
ALTER TABLE souk_outbox ADD CONSTRAINT souk_outbox_event_id_key UNIQUE (event_id);
