-- ninsho SQLite schema, version 1.
--
-- Times are INTEGER nanoseconds since the Unix epoch (UTC): they round-trip
-- exactly and compare as numbers. Every statement is idempotent, so the file
-- may also be applied by the host's own migration tool.

-- Challenges: the record is JSON text; id, version and expiry are columns so
-- the compare-and-set and the purge run in SQL.
CREATE TABLE IF NOT EXISTS ninsho_challenges (
    id          TEXT    PRIMARY KEY NOT NULL,
    version     INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    record      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS ninsho_challenges_expires_at
    ON ninsho_challenges (expires_at);

-- Fixed-window rate-limit counters.
CREATE TABLE IF NOT EXISTS ninsho_counters (
    key         TEXT    PRIMARY KEY NOT NULL,
    count       INTEGER NOT NULL,
    resets_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ninsho_counters_resets_at
    ON ninsho_counters (resets_at);

-- Per-account runs of consecutive verification failures.
CREATE TABLE IF NOT EXISTS ninsho_failures (
    account          TEXT    PRIMARY KEY NOT NULL,
    consecutive      INTEGER NOT NULL,
    last_failure_at  INTEGER NOT NULL
);
