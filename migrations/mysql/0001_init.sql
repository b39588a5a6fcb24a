-- ninsho MySQL / MariaDB schema, version 1: every table the store uses.
--
-- Names are unqualified: `MySqlStore::migrate` runs this file on a
-- connection whose default database is the store's. Every statement is
-- idempotent (`CREATE TABLE IF NOT EXISTS`, indexes declared inside the
-- table, since MySQL has no `CREATE INDEX IF NOT EXISTS`), so the file may
-- also be applied by the host's own migration tool. Written for MySQL 8.0+
-- and MariaDB 10.6+; CI runs it on MariaDB 10.11.
--
-- Keys (ids, account ids, counter and claim keys) are VARBINARY: the UTF-8
-- bytes, compared exactly. The `utf8mb4_bin` collation would not do: it
-- pads with spaces, so `alice` and `alice ` would be one key.
-- Times are BIGINT microseconds since the Unix epoch, UTC, compared as
-- numbers. Records are JSON text, kept byte for byte; the columns beside
-- them (version, expiry) are written in the same statement.

-- Challenges. The version is compared by the compare-and-set, the expiry
-- by the purge.
CREATE TABLE IF NOT EXISTS ninsho_challenges (
    id          VARBINARY(255) NOT NULL,
    version     BIGINT         NOT NULL,
    expires_at  BIGINT         NOT NULL,
    record      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (id),
    INDEX ninsho_challenges_expires_at (expires_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Fixed-window rate-limit counters.
CREATE TABLE IF NOT EXISTS ninsho_counters (
    `key`       VARBINARY(2048) NOT NULL,
    count       BIGINT          NOT NULL,
    resets_at   BIGINT          NOT NULL,
    PRIMARY KEY (`key`),
    INDEX ninsho_counters_resets_at (resets_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Per-account runs of consecutive verification failures.
CREATE TABLE IF NOT EXISTS ninsho_failures (
    account          VARBINARY(1024) NOT NULL,
    consecutive      BIGINT          NOT NULL,
    last_failure_at  BIGINT          NOT NULL,
    PRIMARY KEY (account)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Trusted devices. The primary key's leading column serves the per-account
-- list and "revoke all"; `expires_at` is indexed for hosts that delete
-- long-expired devices with their own SQL (ninsho keeps them, so a late
-- token reads as "expired" rather than "unknown").
CREATE TABLE IF NOT EXISTS ninsho_devices (
    account     VARBINARY(1024) NOT NULL,
    id          VARBINARY(255)  NOT NULL,
    version     BIGINT          NOT NULL,
    expires_at  BIGINT          NOT NULL,
    record      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (account, id),
    INDEX ninsho_devices_expires_at (expires_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One account record per account (contacts, recovery codes, authenticator,
-- security epoch).
CREATE TABLE IF NOT EXISTS ninsho_contact_books (
    account     VARBINARY(1024) NOT NULL,
    version     BIGINT          NOT NULL,
    record      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (account)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Contact claims: a key (an E.164 number, a lower-cased email address)
-- belongs to at most one account, which the primary key enforces. The
-- index on account serves "release every claim of an account".
CREATE TABLE IF NOT EXISTS ninsho_contact_claims (
    `key`       VARBINARY(1024) NOT NULL,
    account     VARBINARY(1024) NOT NULL,
    PRIMARY KEY (`key`),
    INDEX ninsho_contact_claims_account (account)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Combined verifications.
CREATE TABLE IF NOT EXISTS ninsho_verifications (
    id          VARBINARY(255) NOT NULL,
    version     BIGINT         NOT NULL,
    expires_at  BIGINT         NOT NULL,
    record      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (id),
    INDEX ninsho_verifications_expires_at (expires_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The initialisation marker: the row `initialised`, written only by
-- `MySqlStore::initialise` (never by the migration). `load` and
-- `account_record` check it, so a database emptied under the service
-- answers errors instead of reading every account as new.
CREATE TABLE IF NOT EXISTS ninsho_meta (
    `key`       VARBINARY(64)  NOT NULL,
    value       VARBINARY(255) NOT NULL,
    PRIMARY KEY (`key`)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
