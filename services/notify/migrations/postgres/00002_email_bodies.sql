-- +goose Up
-- Notify: an email's message (subject, text and HTML bodies) apart from its
-- delivery state. PostgreSQL here; SQLite rebuilds notify_emails instead.
--
-- Every UPDATE writes a new version of the row. With the bodies (several
-- KB) in notify_emails, claiming an email and recording its outcome each
-- copied what of them stays in the row (compressed, up to about 2 KB a row;
-- only larger values go out of line to TOAST, which versions share). The
-- message is written once, at insert, into notify_email_bodies and never
-- updated; the sender's UPDATEs touch only the small state row (ADR 14).
--
-- One row per email, written in the same transaction as it and never
-- updated. Deleting an email deletes its message (nothing deletes emails
-- yet).
CREATE TABLE notify_email_bodies (
    email_id  TEXT PRIMARY KEY REFERENCES notify_emails (id) ON DELETE CASCADE,
    subject   TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL
);
INSERT INTO notify_email_bodies (email_id, subject, text_body, html_body)
    SELECT id, subject, text_body, html_body FROM notify_emails;

-- DROP COLUMN only hides the columns: rows written before keep their bytes
-- until they are next updated and vacuumed (sent emails never are).
-- VACUUM FULL notify_emails reclaims the space, under an exclusive lock.
ALTER TABLE notify_emails DROP COLUMN subject, DROP COLUMN text_body, DROP COLUMN html_body;

-- +goose Down
-- Back to 00001's columns (now last in the table), the bodies copied back.
ALTER TABLE notify_emails ADD COLUMN subject TEXT, ADD COLUMN text_body TEXT, ADD COLUMN html_body TEXT;
UPDATE notify_emails e SET subject = b.subject, text_body = b.text_body, html_body = b.html_body
    FROM notify_email_bodies b WHERE b.email_id = e.id;
-- An email without a message fails here rather than being left empty.
ALTER TABLE notify_emails ALTER COLUMN subject SET NOT NULL, ALTER COLUMN text_body SET NOT NULL,
    ALTER COLUMN html_body SET NOT NULL;
DROP TABLE notify_email_bodies;
