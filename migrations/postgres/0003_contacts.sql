-- ninsho PostgreSQL schema, version 3: contact books, contact claims and
-- combined verifications.
--
-- Names are unqualified: `PgStore::migrate` runs this file with
-- `search_path` set to the store's schema. Every statement is idempotent,
-- so the file may also be applied by the host's own migration tool.

-- One contact book per account. The record is JSON text, as for
-- challenges; version is a column so the compare-and-set
-- (`WHERE account = $1 AND version = $2`) runs in SQL.
CREATE TABLE IF NOT EXISTS ninsho_contact_books (
    account     TEXT        PRIMARY KEY,
    version     BIGINT      NOT NULL,
    record      TEXT        NOT NULL
);

-- Contact claims: a key (an E.164 number, a lower-cased email address)
-- belongs to at most one account, which the primary key enforces. The
-- index on account serves "release every claim of an account".
CREATE TABLE IF NOT EXISTS ninsho_contact_claims (
    key         TEXT        PRIMARY KEY,
    account     TEXT        NOT NULL
);
CREATE INDEX IF NOT EXISTS ninsho_contact_claims_account
    ON ninsho_contact_claims (account);

-- Combined verifications: the record is JSON text; id, version and expiry
-- are columns so the compare-and-set and the purge run in SQL.
CREATE TABLE IF NOT EXISTS ninsho_verifications (
    id          TEXT        PRIMARY KEY,
    version     BIGINT      NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    record      TEXT        NOT NULL
);
CREATE INDEX IF NOT EXISTS ninsho_verifications_expires_at
    ON ninsho_verifications (expires_at);
