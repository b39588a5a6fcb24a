//! The PostgreSQL store adapter (feature `postgres`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgDatabaseError;
use sqlx::{PgPool, Postgres, SqlStr};
use time::{Duration, OffsetDateTime};

use super::sql_common::{
    IdRecord, Versioned, applied, consecutive_from_sql, count_from_sql, decode_joined,
    decode_record, distinct, encode_record, map_err, max_to_sql, statement, store_err,
    version_to_sql,
};
use super::{
    AccountCommit, AccountStore, ChallengeStore, ChallengeWrite, ClaimChanges, Commit, Committed,
    DeviceStore, LimitStore, Load, Loaded, PurgeStore, Purged, RecordWrite, StepStore, StoreError,
    VerificationStore, WindowCount,
};
use crate::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, DeviceId, DeviceRecord, FailureRecord,
    VerificationId, VerificationRecord,
};

/// The shipped migrations, in order: `(version, SQL)`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_factors.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_contacts.sql"),
    ),
    (4, include_str!("../../migrations/postgres/0004_steps.sql")),
    (
        5,
        include_str!("../../migrations/postgres/0005_step_checks.sql"),
    ),
];

/// The SQLSTATE `ninsho_commit` raises when a condition fails (a
/// conflict: everything the call wrote is rolled back).
const COMMIT_CONFLICT: &str = "NSC01";

/// The SQLSTATE `ninsho_commit` raises when a claim is held by another
/// account, with the claim's index as the error's DETAIL.
const COMMIT_TAKEN: &str = "NSC02";

/// The SQLSTATE `ninsho_step` raises when the initialisation marker is
/// gone (nothing was written).
const COMMIT_NOT_INITIALISED: &str = "NSC03";

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1`); longer ones
/// are silently truncated, so they are refused instead.
const MAX_IDENTIFIER: usize = 63;

/// Every record in PostgreSQL, through a [`sqlx::PgPool`].
///
/// Each method that changes state is **one SQL statement**, atomic in the
/// database: no application locks, no read-modify-write round trips. A
/// journey step's [`commit`](StepStore::commit), and `commit_account`,
/// which change several rows, are one statement too: a call of the
/// function `ninsho_step` (see [Journey steps](#journey-steps) and
/// [Contact claims](#contact-claims)). The one exception is
/// `delete_account`, one transaction of two statements. Any number of app
/// instances may share the tables.
///
/// | method | statement |
/// |---|---|
/// | `insert_challenge` | `INSERT … ON CONFLICT (id) DO NOTHING`; no row inserted → conflict |
/// | `replace_challenge` | `UPDATE … WHERE id = $1 AND version = $expected`; no row updated → conflict |
/// | `hit` | `INSERT … ON CONFLICT (key) DO UPDATE SET count = CASE … END, resets_at = CASE … END RETURNING …` |
/// | `replace_failures` | from no run: `INSERT … ON CONFLICT (account) DO NOTHING`; from a run: `UPDATE` (or `DELETE`) `… WHERE account = $1 AND consecutive = $expected AND last_failure_at = $expected`; no row touched → conflict |
/// | `purge` | one statement: four `DELETE`s in `WITH` clauses (challenges, verifications and devices `WHERE expires_at < $1`, counters `WHERE resets_at <= $1`), counted |
/// | `clear_failures` | `DELETE … WHERE account = $1` |
/// | `insert_device` | `INSERT … ON CONFLICT (account, id) DO NOTHING`; no row inserted → conflict |
/// | `replace_device` | `UPDATE … WHERE account = $1 AND id = $2 AND version = $expected`; no row updated → conflict |
/// | `delete_device` | `DELETE … WHERE account = $1 AND id = $2`; whether a row went |
/// | `delete_devices` | `DELETE … WHERE account = $1`; how many rows went |
/// | `commit_account` | one `SELECT … FROM ninsho_step(…)` with the record alone, see [Contact claims](#contact-claims) |
/// | `delete_account` | one transaction: `DELETE` the record, then `DELETE … WHERE account = $1` from the claims |
/// | `insert_verification` | `INSERT … ON CONFLICT (id) DO NOTHING`; no row inserted → conflict |
/// | `replace_verification` | `UPDATE … WHERE id = $1 AND version = $expected`; no row updated → conflict |
/// | `load` | one `SELECT`: the [initialisation marker](#initialisation-marker) and each part asked for, `LEFT JOIN`ed into one row |
/// | `commit` | one `SELECT … FROM ninsho_step(…)`, see [Journey steps](#journey-steps) |
///
/// Reads (`challenge`, `failures`, `device`, `devices`, `account_record`, `claim_owner`, `verification`) are one
/// `SELECT` each; `account_record` and `claim_owner` read the marker in the same `SELECT`.
///
/// # Journey steps
///
/// [`load`](StepStore::load) and [`commit`](StepStore::commit) are one
/// round trip each. `commit` calls the PL/pgSQL function `ninsho_step`,
/// which [`migrate`](Self::migrate) installs (schema version 5; it wraps
/// version 4's `ninsho_commit`), in one `SELECT`; a statement outside a
/// transaction block is one transaction, so the whole call commits or
/// rolls back as one. In it, under `READ COMMITTED`:
///
/// 0. the [initialisation marker](#initialisation-marker) is read; when it
///    is gone the function raises SQLSTATE `NSC03`, which reads as
///    [`NotInitialised`](super::StoreErrorKind::NotInitialised) with
///    nothing written;
/// 1. each send counter is charged with the statement of `hit`, in order;
///    the first one past its maximum ends the call, which returns
///    `LimitReached` and commits the counters charged so far;
/// 2. each part is written by the statement that checks its condition,
///    the same statements as the part calls (the failure run, then the
///    challenge, the device, and the account record with its claims as
///    `commit_account` writes them, advisory locks included). A
///    conditional `UPDATE` or `DELETE` that waited for another writer's
///    lock checks the row again as that writer left it, and an
///    `INSERT … ON CONFLICT DO NOTHING` waits for a racing insert of the
///    same key, so a statement that touched no row means the condition
///    failed: the function raises SQLSTATE `NSC01`, which rolls back
///    everything the call wrote, counters included, and reads as a
///    [`Conflict`](super::StoreErrorKind::Conflict). A claim held by
///    another account raises `NSC02` (the claim's index in its DETAIL)
///    and reads as [`Committed::Taken`], rolled back the same way;
///    conflicts are checked before claims;
/// 3. the record the step was decided on
///    ([`Commit::record_check`]), when there is one and the step does not
///    write it, is read `FOR SHARE`: at another version, `NSC01` as above;
///    the lock keeps it from changing until the call commits;
/// 4. it returns `done`.
///
/// Losing a race therefore shows in the server's log as an `ERROR` with
/// SQLSTATE `NSC01` (its message names the part, never a value). Rows are
/// locked in one order (counters in the order given, then the failure
/// run, challenge, device, claim locks, account record, claims), so step
/// commits do not deadlock each other as long as hosts charge counters in
/// a consistent order, as the flows do; PostgreSQL breaks any other
/// deadlock by failing one statement, which reads as
/// [`Unavailable`](super::StoreErrorKind::Unavailable).
///
/// # Initialisation marker
///
/// A database can lose ninsho's rows while the tables stay: a `TRUNCATE`,
/// a `DELETE`, a restore of an empty backup. Every account would then read
/// as new, with two-step sign-in off. To fail closed instead,
/// `ninsho_meta` holds one marker row, checked by the statement of every
/// [`load`](StepStore::load),
/// [`account_record`](AccountStore::account_record) and
/// [`claim_owner`](AccountStore::claim_owner), and first in every
/// [`commit`](StepStore::commit): without it they fail with
/// [`NotInitialised`](super::StoreErrorKind::NotInitialised), until an
/// operator calls [`initialise`](Self::initialise).
///
/// The marker is written with the `ninsho_meta` table itself, by the
/// migration that creates it (version 4): on a brand-new schema, and once
/// when a schema of version 3 is upgraded; that upgrade is the one time it
/// is written without an operator deciding so (the upgrade can't tell
/// whether the tables it finds were emptied before). Running
/// [`migrate`](Self::migrate) again, even after `ninsho_schema_version`
/// was emptied too, does not write it back. (A dropped `ninsho_meta`
/// table, with the rest in place, fails closed too, as
/// [`Other`](super::StoreErrorKind::Other) errors; `migrate` creates it
/// again, marker included, only once version 4 is deleted from
/// `ninsho_schema_version`, which is then the operator's act.)
///
/// What the marker can't catch: when the tables themselves are gone (the
/// schema dropped, or a database restored from a backup that predates
/// ninsho), `migrate` can't tell a wiped store from a first deployment.
/// It creates everything again, marker included, and the store answers
/// as a new one: every account without a record. Guard against that
/// outside ninsho (keep ninsho's tables in the backups of the host's own
/// tables, and restore them together), or run `migrate` as a deployment
/// step rather than at every start, where an operator notices it
/// creating tables that should exist.
///
/// # Contact claims
///
/// `commit_account` is a [step commit](#journey-steps) of the record
/// alone: one call of `ninsho_step`, one transaction under `READ
/// COMMITTED`, in which
///
/// 1. it takes a transaction-level advisory lock per claim key it claims
///    or releases (`pg_advisory_xact_lock`, on 64 bits of SHA-256 of the
///    schema and the key), in ascending order of lock id, so two commits
///    touching one key run one after the other and commits touching
///    several keys never deadlock;
/// 2. it writes the record: `UPDATE … WHERE account = $1 AND version =
///    $expected` (or, for a first record, `INSERT … ON CONFLICT (account) DO
///    NOTHING`); no row written → rolled back, a conflict;
/// 3. it reads who holds the keys to claim: one held by another account →
///    rolled back, [`AccountCommit::Taken`] with nothing written;
/// 4. it deletes the released keys the account holds, then inserts the
///    claims (`ON CONFLICT (key) DO NOTHING`, keeping those it holds); a
///    key to claim that is then not the account's (it changed hands
///    outside the locks) → rolled back, a conflict.
///
/// Under the locks a claim key can only change hands inside another
/// commit that holds its lock, so of two accounts claiming one number the
/// second waits for the first and then reads it as taken: never a
/// unique-key error, never two owners. The primary key on the claim key
/// backs this up.
///
/// # Tables
///
/// [`migrate`](Self::migrate) creates, in the store's schema (`public`
/// unless [`with_schema`](Self::with_schema) names another):
///
/// - version 1: `ninsho_challenges (id, version, expires_at, record)`,
///   `ninsho_counters (key, count, resets_at)`,
///   `ninsho_failures (account, consecutive, last_failure_at)`;
/// - version 2: `ninsho_devices (account, id, version, expires_at, record)`
///   (primary key `(account, id)`), and `ninsho_recovery_sets` and
///   `ninsho_epochs`, which this release no longer uses (recovery codes and
///   the security epoch now live in the account's account record; drop the two
///   tables once no older instance runs);
/// - version 3: `ninsho_contact_books (account, version, record)`,
///   `ninsho_contact_claims (key, account)` (indexed on account),
///   `ninsho_verifications (id, version, expires_at, record)`;
/// - version 4: `ninsho_meta (key, written_at)`, the [initialisation
///   marker](#initialisation-marker), and the function `ninsho_commit`
///   (created with `SET search_path FROM CURRENT`, so it finds the tables
///   whatever the caller's `search_path`; it runs with the caller's
///   rights, so the application's role needs `EXECUTE` on it, which
///   PostgreSQL grants to `PUBLIC` unless the database's default
///   privileges say otherwise);
/// - version 5: the function `ninsho_step`, `ninsho_commit` with the
///   marker checked first and the record a step was decided on
///   ([`Commit::record_check`]) checked last, under a share lock
///   (`ninsho_commit` stays, for instances of the previous release while
///   an upgrade rolls out);
///
/// and `ninsho_schema_version (version, applied_at)`. The SQL is shipped in
/// `migrations/postgres/` for hosts that prefer their own migration tool
/// (run each file with `search_path` set to the schema; the marker logic
/// is in the version 4 file itself).
///
/// Records (challenges, devices, account records, verifications) are JSON in a `TEXT` column,
/// kept byte for byte (`JSONB` would refuse a U+0000 in a host-supplied
/// string such as a device label); query them with `record::jsonb`. The
/// columns beside them (version, salt, expiry) are written in the same
/// statement and are authoritative when read back. `TEXT` can't hold U+0000
/// itself, so a counter key or account id containing one fails, on reads
/// and writes alike, with
/// [`StoreErrorKind::Other`](super::StoreErrorKind::Other); so does a
/// claim key holding one.
///
/// Versions are stored as their 64 bits (any `u64` compares and sets).
///
/// Nothing is deleted on a clock but by [`purge`](PurgeStore::purge): every
/// expiry column it filters on (`expires_at`, `resets_at`) is indexed.
///
/// # Time precision
///
/// `TIMESTAMPTZ` keeps microseconds: the sub-microsecond part of a counter's
/// `resets_at`, of a failure's `last_failure_at` and of the `expires_at`
/// columns (used by the purge, and by hosts' own queries on devices) is
/// dropped (times are truncated, and `now` is truncated the same way before
/// it is compared). Challenge, device and account records are stored
/// whole as JSON and come back exactly as written.
///
/// # Example
///
/// ```no_run
/// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use ninsho::store::{PgStore, Store};
///
/// let pool = sqlx::postgres::PgPoolOptions::new()
///     .max_connections(10)
///     .connect("postgres://app@db.internal/app")
///     .await?;
/// let store = PgStore::new(pool);
/// store.migrate().await?; // at start-up, before serving
/// let store: Arc<dyn Store> = Arc::new(store);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
///
/// The host depends on `sqlx` 0.9 itself (with the `postgres` and a
/// `runtime-tokio` feature) to build the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    schema: Arc<str>,
    sql: Arc<Statements>,
}

/// The store's statements, schema-qualified, built once.
struct Statements {
    insert: SqlStr,
    select: SqlStr,
    replace: SqlStr,
    purge: SqlStr,
    hit: SqlStr,
    insert_failures: SqlStr,
    update_failures: SqlStr,
    delete_failures: SqlStr,
    failures: SqlStr,
    clear_failures: SqlStr,
    insert_device: SqlStr,
    device: SqlStr,
    devices: SqlStr,
    replace_device: SqlStr,
    delete_device: SqlStr,
    delete_devices: SqlStr,
    account_record: SqlStr,
    load: SqlStr,
    commit: SqlStr,
    initialise: SqlStr,
    claim_owner: SqlStr,
    delete_book: SqlStr,
    delete_claims: SqlStr,
    insert_verification: SqlStr,
    verification: SqlStr,
    replace_verification: SqlStr,
    version_applied: SqlStr,
    create_version_table: SqlStr,
    record_version: SqlStr,
    create_schema: SqlStr,
}

impl Statements {
    /// `s` is the quoted schema name.
    fn new(s: &str) -> Self {
        Self {
            insert: statement(format!(
                "INSERT INTO {s}.ninsho_challenges (id, version, expires_at, record) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING"
            )),
            select: statement(format!(
                "SELECT version, record FROM {s}.ninsho_challenges WHERE id = $1"
            )),
            replace: statement(format!(
                "UPDATE {s}.ninsho_challenges \
                 SET version = $2, expires_at = $3, record = $4 \
                 WHERE id = $1 AND version = $5"
            )),
            purge: statement(format!(
                "WITH c AS (DELETE FROM {s}.ninsho_challenges WHERE expires_at < $1 RETURNING 1), \
                 v AS (DELETE FROM {s}.ninsho_verifications WHERE expires_at < $1 RETURNING 1), \
                 k AS (DELETE FROM {s}.ninsho_counters WHERE resets_at <= $1 RETURNING 1), \
                 d AS (DELETE FROM {s}.ninsho_devices WHERE expires_at < $1 RETURNING 1) \
                 SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM v), \
                 (SELECT count(*) FROM k), (SELECT count(*) FROM d)"
            )),
            hit: statement(format!(
                "INSERT INTO {s}.ninsho_counters AS t (key, count, resets_at) \
                 VALUES ($1, 1, $3) \
                 ON CONFLICT (key) DO UPDATE SET \
                 count = CASE WHEN t.resets_at <= $2 THEN 1 \
                         ELSE LEAST(t.count, 9223372036854775806) + 1 END, \
                 resets_at = CASE WHEN t.resets_at <= $2 THEN EXCLUDED.resets_at \
                             ELSE t.resets_at END \
                 RETURNING count, resets_at"
            )),
            insert_failures: statement(format!(
                "INSERT INTO {s}.ninsho_failures (account, consecutive, last_failure_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (account) DO NOTHING"
            )),
            update_failures: statement(format!(
                "UPDATE {s}.ninsho_failures SET consecutive = $4, last_failure_at = $5 \
                 WHERE account = $1 AND consecutive = $2 AND last_failure_at = $3"
            )),
            delete_failures: statement(format!(
                "DELETE FROM {s}.ninsho_failures \
                 WHERE account = $1 AND consecutive = $2 AND last_failure_at = $3"
            )),
            failures: statement(format!(
                "SELECT consecutive, last_failure_at FROM {s}.ninsho_failures WHERE account = $1"
            )),
            clear_failures: statement(format!(
                "DELETE FROM {s}.ninsho_failures WHERE account = $1"
            )),
            // The new set may have a new salt (a regenerated set), so the
            // salt is written as well as compared.
            insert_device: statement(format!(
                "INSERT INTO {s}.ninsho_devices (account, id, version, expires_at, record) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (account, id) DO NOTHING"
            )),
            device: statement(format!(
                "SELECT version, record FROM {s}.ninsho_devices WHERE account = $1 AND id = $2"
            )),
            devices: statement(format!(
                "SELECT version, record FROM {s}.ninsho_devices WHERE account = $1"
            )),
            replace_device: statement(format!(
                "UPDATE {s}.ninsho_devices \
                 SET version = $3, expires_at = $4, record = $5 \
                 WHERE account = $1 AND id = $2 AND version = $6"
            )),
            delete_device: statement(format!(
                "DELETE FROM {s}.ninsho_devices WHERE account = $1 AND id = $2"
            )),
            delete_devices: statement(format!("DELETE FROM {s}.ninsho_devices WHERE account = $1")),
            // The marker is read in the same statement as the record.
            account_record: statement(format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.ninsho_meta WHERE key = 'initialised'), \
                 b.version, b.record \
                 FROM (VALUES (1)) AS one (x) \
                 LEFT JOIN {s}.ninsho_contact_books AS b ON b.account = $1"
            )),
            // One row whatever exists: the marker, then each part or NULLs
            // (a NULL key matches nothing).
            load: statement(format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.ninsho_meta WHERE key = 'initialised'), \
                 b.version, b.record, f.consecutive, f.last_failure_at, \
                 c.version, c.record, d.version, d.record \
                 FROM (VALUES (1)) AS one (x) \
                 LEFT JOIN {s}.ninsho_contact_books AS b ON b.account = $1 \
                 LEFT JOIN {s}.ninsho_failures AS f ON f.account = $1 \
                 LEFT JOIN {s}.ninsho_challenges AS c ON c.id = $2 \
                 LEFT JOIN {s}.ninsho_devices AS d ON d.account = $1 AND d.id = $3"
            )),
            commit: statement(format!(
                "SELECT o_outcome, o_index, o_count, o_resets_at FROM {s}.ninsho_step(\
                 $1::text[], $2::timestamptz[], $3::bigint[], $4::timestamptz, \
                 $5::text, $6::bigint, $7::timestamptz, $8::bigint, $9::timestamptz, \
                 $10::boolean, $11::text, $12::bigint, $13::timestamptz, $14::text, $15::bigint, \
                 $16::text, $17::text, $18::bigint, $19::timestamptz, $20::text, \
                 $21::text, $22::bigint, $23::text, $24::bigint, \
                 $25::text[], $26::text[], $27::bigint[], $28::text, $29::bigint)"
            )),
            initialise: statement(format!(
                "INSERT INTO {s}.ninsho_meta (key, written_at) VALUES ('initialised', now()) \
                 ON CONFLICT (key) DO NOTHING"
            )),
            claim_owner: statement(format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.ninsho_meta WHERE key = 'initialised'), \
                 (SELECT account FROM {s}.ninsho_contact_claims WHERE key = $1)"
            )),
            delete_book: statement(format!(
                "DELETE FROM {s}.ninsho_contact_books WHERE account = $1"
            )),
            delete_claims: statement(format!(
                "DELETE FROM {s}.ninsho_contact_claims WHERE account = $1"
            )),
            insert_verification: statement(format!(
                "INSERT INTO {s}.ninsho_verifications (id, version, expires_at, record) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING"
            )),
            verification: statement(format!(
                "SELECT version, record FROM {s}.ninsho_verifications WHERE id = $1"
            )),
            replace_verification: statement(format!(
                "UPDATE {s}.ninsho_verifications \
                 SET version = $2, expires_at = $3, record = $4 \
                 WHERE id = $1 AND version = $5"
            )),
            version_applied: statement(format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.ninsho_schema_version WHERE version = $1)"
            )),
            create_version_table: statement(format!(
                "CREATE TABLE IF NOT EXISTS {s}.ninsho_schema_version (\
                 version BIGINT PRIMARY KEY, \
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )),
            record_version: statement(format!(
                "INSERT INTO {s}.ninsho_schema_version (version) VALUES ($1)"
            )),
            create_schema: statement(format!("CREATE SCHEMA IF NOT EXISTS {s}")),
        }
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// Whether a SQLSTATE means "the server is unreachable, busy or restarting;
/// retry later": connection exceptions (class 08), insufficient resources
/// (class 53), shutdowns and start-up (57P01–57P03), a cancelled statement
/// (57014, e.g. `statement_timeout`), serialization failures and deadlocks.
fn transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01"
        )
}

impl PgStore {
    /// A store over `pool`, with its tables in the `public` schema.
    ///
    /// Nothing is sent to the server until the first call; call
    /// [`migrate`](Self::migrate) at start-up to create the tables.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self::build(pool, "public")
    }

    /// A store over `pool`, with its tables in `schema` (created by
    /// [`migrate`](Self::migrate) if missing). Useful to keep ninsho's
    /// tables apart, or to give each test run its own.
    ///
    /// The name is used exactly as given, quoted (so it is case-sensitive).
    ///
    /// # Errors
    /// A [`StoreErrorKind::Other`](super::StoreErrorKind::Other) error when
    /// `schema` is empty, longer than 63 bytes, or holds anything but ASCII
    /// letters, digits and underscores.
    pub fn with_schema(pool: PgPool, schema: &str) -> Result<Self, StoreError> {
        let valid = !schema.is_empty()
            && schema.len() <= MAX_IDENTIFIER
            && schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(StoreError::other(format!(
                "invalid schema name {schema:?}: use 1 to {MAX_IDENTIFIER} ASCII letters, digits and underscores"
            )));
        }
        Ok(Self::build(pool, schema))
    }

    fn build(pool: PgPool, schema: &str) -> Self {
        Self {
            pool,
            schema: Arc::from(schema),
            sql: Arc::new(Statements::new(&quote(schema))),
        }
    }

    /// The pool the store uses.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema holding the store's tables.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Creates the schema (if missing) and applies the shipped migrations
    /// not yet applied, recording each in `ninsho_schema_version`.
    ///
    /// This is the call hosts make at start-up, before serving. It is
    /// idempotent and safe to run from several instances at once: it runs
    /// in one transaction under a PostgreSQL advisory lock, so concurrent
    /// callers apply each migration exactly once. Creating a missing schema
    /// needs the `CREATE` privilege on the database; an existing one is
    /// only used.
    ///
    /// It writes the [initialisation marker](Self#initialisation-marker)
    /// only in the migration that creates its table (a new schema, or the
    /// upgrade from version 3), never again: after a data loss it leaves
    /// the store answering `NotInitialised` until
    /// [`initialise`](Self::initialise) is called.
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable)
    /// when the server can't be reached; other backend failures (such as a
    /// missing privilege) as
    /// [`StoreErrorKind::Other`](super::StoreErrorKind::Other).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let err = store_err(transient);
        let mut tx = self.pool.begin().await.map_err(&err)?;

        sqlx::query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext($1))")
            .bind(format!("ninsho migrate {}", self.schema))
            .execute(&mut *tx)
            .await
            .map_err(&err)?;

        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        )
        .bind(&*self.schema)
        .fetch_one(&mut *tx)
        .await
        .map_err(&err)?;
        if !exists {
            sqlx::query(self.sql.create_schema.clone())
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
        }
        sqlx::query(self.sql.create_version_table.clone())
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;

        // The migration files use unqualified names.
        sqlx::query("SELECT pg_catalog.set_config('search_path', $1, true)")
            .bind(quote(&self.schema))
            .execute(&mut *tx)
            .await
            .map_err(&err)?;

        for &(version, sql) in MIGRATIONS {
            let applied: bool = sqlx::query_scalar(self.sql.version_applied.clone())
                .persistent(false)
                .bind(version)
                .fetch_one(&mut *tx)
                .await
                .map_err(&err)?;
            if applied {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(&err)?;
            sqlx::query(self.sql.record_version.clone())
                .persistent(false)
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)
    }
}

impl PgStore {
    /// Writes the initialisation marker (the row `'initialised'` of
    /// `ninsho_meta`), so that [`load`](StepStore::load) and
    /// [`account_record`](AccountStore::account_record) answer again after
    /// they failed with
    /// [`NotInitialised`](super::StoreErrorKind::NotInitialised).
    ///
    /// [`migrate`](Self::migrate) writes the marker itself when it creates
    /// the tables, so a new deployment never needs this. It is the
    /// operator's deliberate act after the tables lost their rows
    /// (`TRUNCATE`, a restore of an empty backup): once the data is
    /// restored, or once it is accepted that the accounts' records are
    /// gone (every account then reads as new, with two-step sign-in off).
    /// **Never call it on every start**: it would mark emptied tables as
    /// fine and the loss would go unnoticed. Calling it when the marker is
    /// there changes nothing (the time it was first written is kept).
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable)
    /// when the server can't be reached; other backend failures (such as
    /// tables that [`migrate`](Self::migrate) has not created) as
    /// [`StoreErrorKind::Other`](super::StoreErrorKind::Other).
    pub async fn initialise(&self) -> Result<(), StoreError> {
        sqlx::query::<Postgres>(self.sql.initialise.clone())
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(())
    }
}

/// The quoted identifier; `name` holds only ASCII letters, digits and
/// underscores, so wrapping it in double quotes is enough.
fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// The reads and writes that challenges and combined verifications share,
/// each kind on its own table through its own statements (account records
/// are read the same way too).
impl PgStore {
    /// The record that `sql` selects (`version, record`) by `key`.
    async fn fetch_record<T: Versioned>(
        &self,
        sql: &SqlStr,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let row: Option<(i64, String)> = sqlx::query_as(sql.clone())
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err(transient))?;
        row.map(|(version, json)| decode_record(&json, version))
            .transpose()
    }

    /// Inserts `record` with `sql` (`INSERT … ON CONFLICT (id) DO
    /// NOTHING`); no row inserted, or a unique violation, → conflict.
    async fn insert_record<T: IdRecord>(&self, sql: &SqlStr, record: &T) -> Result<(), StoreError> {
        let json = encode_record(record)?;
        let done = sqlx::query::<Postgres>(sql.clone())
            .bind(record.key())
            .bind(version_to_sql(record.version()))
            .bind(record.expires_at())
            .bind(json)
            .execute(&self.pool)
            .await
            .map_err(|e| map_err(e, transient, true))?;
        applied(done.rows_affected())
    }

    /// Replaces the stored record with `record` with `sql` (`UPDATE … WHERE
    /// id = $1 AND version = $5`); no row updated → conflict.
    async fn replace_record<T: IdRecord>(
        &self,
        sql: &SqlStr,
        record: &T,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let json = encode_record(record)?;
        let done = sqlx::query::<Postgres>(sql.clone())
            .bind(record.key())
            .bind(version_to_sql(record.version()))
            .bind(record.expires_at())
            .bind(json)
            .bind(version_to_sql(expected_version))
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        applied(done.rows_affected())
    }
}

#[async_trait]
impl ChallengeStore for PgStore {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.insert_record(&self.sql.insert, record).await
    }

    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        self.fetch_record(&self.sql.select, &id.to_string()).await
    }

    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.replace_record(&self.sql.replace, record, expected_version)
            .await
    }
}

#[async_trait]
impl LimitStore for PgStore {
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        let (count, resets_at): (i64, OffsetDateTime) = sqlx::query_as(self.sql.hit.clone())
            .bind(key)
            .bind(now)
            .bind(now.saturating_add(window))
            .fetch_one(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(WindowCount {
            count: count_from_sql(count)?,
            resets_at,
        })
    }

    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        let done = match (expected, next) {
            (None, None) => {
                return match self.failures(account).await? {
                    None => Ok(()),
                    Some(_) => Err(StoreError::conflict()),
                };
            }
            (None, Some(run)) => sqlx::query::<Postgres>(self.sql.insert_failures.clone())
                .bind(&account.0)
                .bind(i64::from(run.consecutive))
                .bind(run.last_failure_at),
            (Some(old), Some(run)) => sqlx::query::<Postgres>(self.sql.update_failures.clone())
                .bind(&account.0)
                .bind(i64::from(old.consecutive))
                .bind(old.last_failure_at)
                .bind(i64::from(run.consecutive))
                .bind(run.last_failure_at),
            (Some(old), None) => sqlx::query::<Postgres>(self.sql.delete_failures.clone())
                .bind(&account.0)
                .bind(i64::from(old.consecutive))
                .bind(old.last_failure_at),
        }
        .execute(&self.pool)
        .await
        .map_err(store_err(transient))?;
        applied(done.rows_affected())
    }

    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        let row: Option<(i64, OffsetDateTime)> = sqlx::query_as(self.sql.failures.clone())
            .bind(&account.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err(transient))?;
        row.map(|(consecutive, last_failure_at)| {
            Ok(FailureRecord {
                consecutive: consecutive_from_sql(consecutive)?,
                last_failure_at,
            })
        })
        .transpose()
    }

    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        sqlx::query::<Postgres>(self.sql.clear_failures.clone())
            .bind(&account.0)
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(())
    }
}

#[async_trait]
impl DeviceStore for PgStore {
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        let json = encode_record(record)?;
        let done = sqlx::query::<Postgres>(self.sql.insert_device.clone())
            .bind(&record.account.0)
            .bind(record.id.to_string())
            .bind(version_to_sql(record.version))
            .bind(record.expires_at)
            .bind(json)
            .execute(&self.pool)
            .await
            .map_err(|e| map_err(e, transient, true))?;
        applied(done.rows_affected())
    }

    async fn device(
        &self,
        account: &AccountId,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let row: Option<(i64, String)> = sqlx::query_as(self.sql.device.clone())
            .bind(&account.0)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err(transient))?;
        row.map(|(version, json)| decode_record(&json, version))
            .transpose()
    }

    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(self.sql.devices.clone())
            .bind(&account.0)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err(transient))?;
        rows.iter()
            .map(|(version, json)| decode_record(json, *version))
            .collect()
    }

    async fn replace_device(
        &self,
        record: &DeviceRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let json = encode_record(record)?;
        let done = sqlx::query::<Postgres>(self.sql.replace_device.clone())
            .bind(&record.account.0)
            .bind(record.id.to_string())
            .bind(version_to_sql(record.version))
            .bind(record.expires_at)
            .bind(json)
            .bind(version_to_sql(expected_version))
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        applied(done.rows_affected())
    }

    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError> {
        let done = sqlx::query::<Postgres>(self.sql.delete_device.clone())
            .bind(&account.0)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        let done = sqlx::query::<Postgres>(self.sql.delete_devices.clone())
            .bind(&account.0)
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(done.rows_affected())
    }
}

/// The advisory lock ids guarding `keys` in `schema`: 64 bits of SHA-256
/// of both, sorted ascending and without repeats, the order every commit
/// takes them in.
fn claim_locks<'a>(schema: &str, keys: impl Iterator<Item = &'a str>) -> Vec<i64> {
    let mut locks: Vec<i64> = keys
        .map(|key| {
            let mut hash = Sha256::new();
            hash.update(b"ninsho contact claim\0");
            hash.update(schema.as_bytes());
            hash.update(b"\0");
            hash.update(key.as_bytes());
            let digest = hash.finalize();
            let mut id = [0u8; 8];
            id.copy_from_slice(&digest[..8]);
            i64::from_be_bytes(id)
        })
        .collect();
    locks.sort_unstable();
    locks.dedup();
    locks
}

#[async_trait]
impl AccountStore for PgStore {
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let (initialised, version, json): (bool, Option<i64>, Option<String>) =
            sqlx::query_as(self.sql.account_record.clone())
                .bind(&account.0)
                .fetch_one(&self.pool)
                .await
                .map_err(store_err(transient))?;
        if !initialised {
            return Err(StoreError::not_initialised());
        }
        decode_joined(version, json)
    }

    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        // The marker in the same statement: a wiped store must not answer
        // "nobody holds this contact".
        let (initialised, owner): (bool, Option<String>) =
            sqlx::query_as(self.sql.claim_owner.clone())
                .bind(key)
                .fetch_one(&self.pool)
                .await
                .map_err(store_err(transient))?;
        if !initialised {
            return Err(StoreError::not_initialised());
        }
        Ok(owner.map(AccountId))
    }

    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        // A step commit of the record alone: no counters, so its instant
        // is never read.
        let commit = Commit {
            record: Some(RecordWrite {
                record: book,
                expected_version,
                claims: changes,
            }),
            ..Commit::default()
        };
        match self.commit(&commit, OffsetDateTime::UNIX_EPOCH).await? {
            Committed::Done => Ok(AccountCommit::Committed),
            Committed::Taken { index } => Ok(AccountCommit::Taken { index }),
            Committed::LimitReached { .. } => Err(StoreError::other(
                "ninsho_commit reported a limit for a commit without counters",
            )),
        }
    }

    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        let err = store_err(transient);
        let mut tx = self.pool.begin().await.map_err(&err)?;
        // The record first: a commit in flight for the account holds its row,
        // so this waits for it, and the claims are then read afresh (each
        // statement of a READ COMMITTED transaction sees every commit that
        // finished before it started).
        sqlx::query::<Postgres>(self.sql.delete_book.clone())
            .bind(&account.0)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        sqlx::query::<Postgres>(self.sql.delete_claims.clone())
            .bind(&account.0)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        tx.commit().await.map_err(&err)
    }
}

#[async_trait]
impl VerificationStore for PgStore {
    async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError> {
        self.insert_record(&self.sql.insert_verification, record)
            .await
    }

    async fn verification(
        &self,
        id: &VerificationId,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        self.fetch_record(&self.sql.verification, &id.to_string())
            .await
    }

    async fn replace_verification(
        &self,
        record: &VerificationRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.replace_record(&self.sql.replace_verification, record, expected_version)
            .await
    }
}

/// What [`PgStore::load`](StepStore::load) reads: the marker, then the
/// version and JSON of the account record, the failure run, and the
/// version and JSON of the challenge and of the device.
type LoadRow = (
    bool,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<OffsetDateTime>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

/// What `ninsho_commit` returns: its outcome (`done` or `limit`) and, for
/// `limit`, the index, count and window end of the counter that passed.
type CommitRow = (String, Option<i32>, Option<i64>, Option<OffsetDateTime>);

/// The outcome of a `ninsho_commit` call that raised: its own SQLSTATEs
/// are a conflict or a taken claim (both rolled back whole), anything
/// else maps as usual.
fn commit_failed(err: sqlx::Error) -> Result<Committed, StoreError> {
    if let sqlx::Error::Database(db) = &err {
        match db.code().as_deref() {
            Some(COMMIT_CONFLICT) => return Err(StoreError::conflict()),
            Some(COMMIT_NOT_INITIALISED) => return Err(StoreError::not_initialised()),
            Some(COMMIT_TAKEN) => {
                let index = db
                    .try_downcast_ref::<PgDatabaseError>()
                    .and_then(PgDatabaseError::detail)
                    .and_then(|detail| detail.parse::<usize>().ok());
                return match index {
                    Some(index) => Ok(Committed::Taken { index }),
                    None => Err(StoreError::other(err)),
                };
            }
            _ => {}
        }
    }
    Err(map_err(err, transient, true))
}

#[async_trait]
impl StepStore for PgStore {
    /// One `SELECT`: the marker and every part asked for, joined to a
    /// single row.
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        let account = load.account.map(|a| a.0.as_str());
        let challenge = load.challenge.map(ToString::to_string);
        let device = load.device.map(ToString::to_string);
        let row: LoadRow = sqlx::query_as(self.sql.load.clone())
            .bind(account)
            .bind(challenge)
            .bind(device)
            .fetch_one(&self.pool)
            .await
            .map_err(store_err(transient))?;
        let (initialised, book_v, book, run_n, run_at, ch_v, ch, dev_v, dev) = row;
        if !initialised {
            return Err(StoreError::not_initialised());
        }
        let failures = match (run_n, run_at) {
            (Some(consecutive), Some(last_failure_at)) => Some(FailureRecord {
                consecutive: consecutive_from_sql(consecutive)?,
                last_failure_at,
            }),
            _ => None,
        };
        Ok(Loaded {
            record: decode_joined(book_v, book)?,
            failures,
            challenge: decode_joined(ch_v, ch)?,
            device: decode_joined(dev_v, dev)?,
        })
    }

    /// One `SELECT ninsho_step(…)` (see the [type docs](PgStore#journey-steps)).
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        let hit_keys: Vec<&str> = commit.hits.iter().map(|h| h.key.as_str()).collect();
        let hit_resets: Vec<OffsetDateTime> = commit
            .hits
            .iter()
            .map(|h| now.saturating_add(h.window))
            .collect();
        let hit_max: Vec<i64> = commit.hits.iter().map(|h| max_to_sql(h.max)).collect();

        let run = commit.failures;
        let old = run.and_then(|r| r.expected);
        let new = run.and_then(|r| r.next);

        let (challenge, insert, expected_challenge) = match commit.challenge {
            None => (None, None, None),
            Some(ChallengeWrite::Insert(record)) => (Some(record), Some(true), None),
            Some(ChallengeWrite::Replace {
                record,
                expected_version,
            }) => (
                Some(record),
                Some(false),
                Some(version_to_sql(expected_version)),
            ),
        };
        let challenge_json = challenge.map(encode_record).transpose()?;

        let device = commit.device;
        let device_json = device.map(encode_record).transpose()?;

        let book = commit.record;
        let book_json = book.map(|w| encode_record(w.record)).transpose()?;
        let check = commit.record_check.filter(|_| book.is_none());
        let (claim, release, locks) = match book {
            None => (Vec::new(), Vec::new(), Vec::new()),
            Some(write) => {
                let claim: Vec<&str> = write.claims.claim.iter().map(String::as_str).collect();
                let release = distinct(&write.claims.release);
                let keys = distinct(&write.claims.claim);
                let locks = claim_locks(&self.schema, keys.iter().chain(&release).copied());
                (claim, release, locks)
            }
        };

        let row: Result<CommitRow, sqlx::Error> = sqlx::query_as(self.sql.commit.clone())
            .bind(hit_keys)
            .bind(hit_resets)
            .bind(hit_max)
            .bind(now)
            .bind(run.map(|r| r.account.0.as_str()))
            .bind(old.map(|r| i64::from(r.consecutive)))
            .bind(old.map(|r| r.last_failure_at))
            .bind(new.map(|r| i64::from(r.consecutive)))
            .bind(new.map(|r| r.last_failure_at))
            .bind(insert)
            .bind(challenge.map(|c| c.id.to_string()))
            .bind(challenge.map(|c| version_to_sql(c.version)))
            .bind(challenge.map(|c| c.expires_at))
            .bind(challenge_json)
            .bind(expected_challenge)
            .bind(device.map(|d| d.account.0.as_str()))
            .bind(device.map(|d| d.id.to_string()))
            .bind(device.map(|d| version_to_sql(d.version)))
            .bind(device.map(|d| d.expires_at))
            .bind(device_json)
            .bind(book.map(|w| w.record.account.0.as_str()))
            .bind(book.map(|w| version_to_sql(w.record.version)))
            .bind(book_json)
            .bind(book.and_then(|w| w.expected_version).map(version_to_sql))
            .bind(claim)
            .bind(release)
            .bind(locks)
            .bind(check.map(|c| c.account.0.as_str()))
            .bind(check.and_then(|c| c.version).map(version_to_sql))
            .fetch_one(&self.pool)
            .await;
        let (outcome, index, count, resets_at) = match row {
            Ok(row) => row,
            Err(err) => return commit_failed(err),
        };
        match (outcome.as_str(), index, count, resets_at) {
            ("done", ..) => Ok(Committed::Done),
            ("limit", Some(index), Some(count), Some(resets_at)) => Ok(Committed::LimitReached {
                index: usize::try_from(index).map_err(StoreError::other)?,
                count: WindowCount {
                    count: count_from_sql(count)?,
                    resets_at,
                },
            }),
            _ => Err(StoreError::other(format!(
                "ninsho_commit answered an unknown outcome {outcome:?}"
            ))),
        }
    }
}

#[async_trait]
impl PurgeStore for PgStore {
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError> {
        let (challenges, verifications, counters, devices): (i64, i64, i64, i64) =
            sqlx::query_as::<Postgres, _>(self.sql.purge.clone())
                .bind(before)
                .fetch_one(&self.pool)
                .await
                .map_err(store_err(transient))?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Purged::from_counts(
            [challenges, verifications, counters, devices].map(count),
        ))
    }
}
