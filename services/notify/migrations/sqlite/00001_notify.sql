-- +goose Up
-- Notify: the email outbox, webhook subscriptions and their delivery log.
-- Same in both engines except column types (TIMESTAMP here, TIMESTAMPTZ in
-- PostgreSQL).

-- One row per email to send, written in the transaction of the consumer
-- that decided to send it. event_id is UNIQUE: an event applied twice (a
-- redelivery that got past the inbox, a handler called twice) still makes
-- one email. The sender claims a due row with a conditional UPDATE that
-- sets a lease (lease_owner, lease_until), so two processes never send the
-- same email at once; next_attempt_at is set exactly while it is pending.
CREATE TABLE notify_emails (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    reference       TEXT NOT NULL DEFAULT '',
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT NOT NULL DEFAULT '',
    next_attempt_at TIMESTAMP,
    lease_owner     TEXT,
    lease_until     TIMESTAMP,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    sent_at         TIMESTAMP,
    CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX notify_emails_due ON notify_emails (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- Webhook subscriptions. secret is kept as given (it signs every delivery,
-- so it cannot be hashed): whoever reads this table can sign as Souk.
-- consecutive_failures counts deliveries that ended failed since the last
-- successful attempt; it and last_success_at drive automatic disabling.
CREATE TABLE notify_webhooks (
    id                   TEXT PRIMARY KEY,
    url                  TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    event_types          TEXT NOT NULL,
    secret               TEXT NOT NULL,
    enabled              BOOLEAN NOT NULL,
    disabled_reason      TEXT NOT NULL DEFAULT '',
    disabled_at          TIMESTAMP,
    consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    last_success_at      TIMESTAMP,
    last_failure_at      TIMESTAMP,
    version              BIGINT NOT NULL,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL
);

-- One delivery per (subscription, event): the UNIQUE key makes a
-- redelivered event create nothing new. payload is the exact CloudEvent
-- JSON that is posted (and signed) on every attempt. next_attempt_at is set
-- exactly while the delivery is pending or retrying; retry_until is when
-- automatic retries stop (creation + 24 h; "now" for a manual retry, which
-- is one attempt).
CREATE TABLE notify_webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES notify_webhooks (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'retrying')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status_code INTEGER,
    last_error       TEXT NOT NULL DEFAULT '',
    last_attempt_at  TIMESTAMP,
    next_attempt_at  TIMESTAMP,
    retry_until      TIMESTAMP NOT NULL,
    lease_owner      TEXT,
    lease_until      TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    completed_at     TIMESTAMP,
    UNIQUE (webhook_id, event_id),
    CHECK ((status IN ('pending', 'retrying')) = (next_attempt_at IS NOT NULL))
);
CREATE INDEX notify_webhook_deliveries_due ON notify_webhook_deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX notify_webhook_deliveries_log ON notify_webhook_deliveries (webhook_id, id);

-- +goose Down
DROP TABLE notify_webhook_deliveries;
DROP TABLE notify_webhooks;
DROP TABLE notify_emails;
