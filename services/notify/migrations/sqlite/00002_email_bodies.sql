-- +goose Up
-- Notify: an email's message (subject, text and HTML bodies) apart from its
-- delivery state. SQLite here; PostgreSQL drops the columns in place.
--
-- SQLite writes a whole record, overflow pages included, on every UPDATE:
-- with the bodies (several KB) in notify_emails, claiming an email and
-- recording its outcome each wrote its message again. The message is
-- written once, at insert, into notify_email_bodies and never updated; the
-- sender's UPDATEs touch only the small state row (ADR 14).
--
-- notify_emails is rebuilt rather than altered with three DROP COLUMNs,
-- each of which would rewrite every row (and the outbox is never pruned):
-- renamed out of the way, recreated without the body columns exactly as
-- 00001 declared the rest, filled, and dropped once the bodies are copied.
-- Nothing references notify_emails yet, so the rename changes no foreign
-- key; notify_email_bodies is created after it, referencing the new table.
ALTER TABLE notify_emails RENAME TO notify_emails_00001;

CREATE TABLE notify_emails (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    reference       TEXT NOT NULL DEFAULT '',
    recipient       TEXT NOT NULL,
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
INSERT INTO notify_emails (id, event_id, kind, reference, recipient, state, attempts, last_error,
    next_attempt_at, lease_owner, lease_until, created_at, updated_at, sent_at)
    SELECT id, event_id, kind, reference, recipient, state, attempts, last_error,
    next_attempt_at, lease_owner, lease_until, created_at, updated_at, sent_at
    FROM notify_emails_00001;

-- One row per email, written in the same transaction as it and never
-- updated. Deleting an email deletes its message (nothing deletes emails
-- yet; foreign keys are on, see platform/store).
CREATE TABLE notify_email_bodies (
    email_id  TEXT PRIMARY KEY REFERENCES notify_emails (id) ON DELETE CASCADE,
    subject   TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL
);
INSERT INTO notify_email_bodies (email_id, subject, text_body, html_body)
    SELECT id, subject, text_body, html_body FROM notify_emails_00001;

-- Drops the old notify_emails_due with it.
DROP TABLE notify_emails_00001;
CREATE INDEX notify_emails_due ON notify_emails (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- +goose Down
-- Back to 00001's notify_emails, declared exactly as there, the bodies
-- copied back. A LEFT JOIN: an email without a message fails the NOT NULL
-- constraints instead of being left out.
ALTER TABLE notify_emails RENAME TO notify_emails_00002;

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
INSERT INTO notify_emails (id, event_id, kind, reference, recipient, subject, text_body, html_body, state, attempts,
    last_error, next_attempt_at, lease_owner, lease_until, created_at, updated_at, sent_at)
    SELECT e.id, e.event_id, e.kind, e.reference, e.recipient, b.subject, b.text_body, b.html_body, e.state, e.attempts,
    e.last_error, e.next_attempt_at, e.lease_owner, e.lease_until, e.created_at, e.updated_at, e.sent_at
    FROM notify_emails_00002 e LEFT JOIN notify_email_bodies b ON b.email_id = e.id;

DROP TABLE notify_email_bodies;
DROP TABLE notify_emails_00002;
CREATE INDEX notify_emails_due ON notify_emails (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
