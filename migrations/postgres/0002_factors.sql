-- ninsho PostgreSQL schema, version 2: recovery codes and trusted devices.
--
-- Names are unqualified: `PgStore::migrate` runs this file with
-- `search_path` set to the store's schema. Every statement is idempotent,
-- so the file may also be applied by the host's own migration tool.

-- One recovery-code set per account. The record is JSON text, as for
-- challenges; salt and version are columns so the compare-and-set
-- (`WHERE account = $1 AND salt = $2 AND version = $3`) runs in SQL.
CREATE TABLE IF NOT EXISTS ninsho_recovery_sets (
    account     TEXT        PRIMARY KEY,
    salt        BYTEA       NOT NULL,
    version     BIGINT      NOT NULL,
    record      TEXT        NOT NULL
);

-- Trusted devices. The primary key's leading column serves the per-account
-- list and "revoke all". `expires_at` is indexed for hosts that delete
-- long-expired devices with their own SQL (ninsho keeps them, so a late
-- token reads as "expired" rather than "unknown").
CREATE TABLE IF NOT EXISTS ninsho_devices (
    account     TEXT        NOT NULL,
    id          TEXT        NOT NULL,
    version     BIGINT      NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    record      TEXT        NOT NULL,
    PRIMARY KEY (account, id)
);
CREATE INDEX IF NOT EXISTS ninsho_devices_expires_at
    ON ninsho_devices (expires_at);

-- Per-account security epochs (absent = 0), only ever incremented.
CREATE TABLE IF NOT EXISTS ninsho_epochs (
    account     TEXT        PRIMARY KEY,
    epoch       BIGINT      NOT NULL
);
