-- +goose Up
-- Customers, staff users, signing keys and refresh tokens. Same in both
-- engines except the time column type (TIMESTAMP in SQLite, TIMESTAMPTZ in
-- PostgreSQL).

-- Emails are stored trimmed and lower-case, so UNIQUE is case-insensitive.
-- customer_groups is a JSON array of group names, read and written whole.
CREATE TABLE customers (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    customer_groups TEXT NOT NULL DEFAULT '[]',
    version         BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE staff_users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    version       BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Ed25519 signing keys of access tokens. active is 1 for the one key that
-- signs and NULL for the others: UNIQUE (NULLs are distinct in both engines)
-- makes two active keys impossible, even with concurrent rotations.
-- private_key (the base64url seed) is erased when the key is rotated out;
-- the public key stays published until retire_at.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    private_key TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    active      INTEGER UNIQUE CHECK (active = 1),
    created_at  TIMESTAMPTZ NOT NULL,
    rotated_at  TIMESTAMPTZ,
    retire_at   TIMESTAMPTZ
);

-- A refresh family is one login's chain of refresh tokens. Revoking the
-- family (logout, reuse detected, staff user disabled) ends the session:
-- every refresh locks its family's row first, so a refresh racing a
-- revocation either finishes before it (and its new token is revoked with
-- the family) or sees the family revoked.
CREATE TABLE refresh_families (
    id            TEXT PRIMARY KEY,
    subject_id    TEXT NOT NULL,
    subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('customer', 'staff')),
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    revoke_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX refresh_families_subject ON refresh_families (subject_id);

-- Refresh tokens, by the SHA-256 digest of their secret. A token is used
-- once: the refresh that consumes it sets used_at with a conditional UPDATE
-- (… WHERE used_at IS NULL AND revoked_at IS NULL). Presenting a used token
-- again is reuse and revokes its family.
CREATE TABLE refresh_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    family_id    TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    subject_id   TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- +goose Down
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
DROP TABLE signing_keys;
DROP TABLE staff_users;
DROP TABLE customers;
