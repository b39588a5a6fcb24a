-- ninsho PostgreSQL schema, version 1.
--
-- Names are unqualified: `PgStore::migrate` runs this file with
-- `search_path` set to the store's schema. Every statement is idempotent,
-- so the file may also be applied by the host's own migration tool.

-- Challenges: the record is JSON text, kept byte for byte (JSONB would refuse
-- a U+0000 in a host-supplied string); id, version and expiry are columns so
-- the compare-and-set and the purge run in SQL. Query it with `record::jsonb`.
CREATE TABLE IF NOT EXISTS ninsho_challenges (
    id          TEXT        PRIMARY KEY,
    version     BIGINT      NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    record      TEXT        NOT NULL
);
CREATE INDEX IF NOT EXISTS ninsho_challenges_expires_at
    ON ninsho_challenges (expires_at);

-- Fixed-window rate-limit counters.
CREATE TABLE IF NOT EXISTS ninsho_counters (
    key         TEXT        PRIMARY KEY,
    count       BIGINT      NOT NULL,
    resets_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS ninsho_counters_resets_at
    ON ninsho_counters (resets_at);

-- Per-account runs of consecutive verification failures.
CREATE TABLE IF NOT EXISTS ninsho_failures (
    account          TEXT        PRIMARY KEY,
    consecutive      BIGINT      NOT NULL,
    last_failure_at  TIMESTAMPTZ NOT NULL
);
