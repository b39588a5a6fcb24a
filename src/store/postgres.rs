//! The PostgreSQL store adapter (feature `postgres`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, SqlStr};
use time::{Duration, OffsetDateTime};

use super::sql_common::{
    IdRecord, Versioned, applied, consecutive_from_sql, count_from_sql, decode_record, distinct,
    encode_record, first_taken, map_err, statement, store_err, version_to_sql,
};
use super::{
    AccountCommit, AccountStore, ChallengeStore, ClaimChanges, DeviceStore, LimitStore, StoreError,
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
];

/// Takes the transaction-level advisory locks whose ids `$1` lists, in
/// that order (`unnest` yields the array in order).
const LOCK_CLAIMS: &str =
    "SELECT count(pg_catalog.pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k";

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1`); longer ones
/// are silently truncated, so they are refused instead.
const MAX_IDENTIFIER: usize = 63;

/// Every record in PostgreSQL, through a [`sqlx::PgPool`].
///
/// Each method that changes state is **one SQL statement**, atomic in the
/// database: no application locks, no read-modify-write round trips. The
/// two exceptions, which change several rows, are one transaction each:
/// `commit_account` and `delete_account` (see [Contact
/// claims](#contact-claims)). Any number of app instances may share the
/// tables.
///
/// | method | statement |
/// |---|---|
/// | `insert_challenge` | `INSERT … ON CONFLICT (id) DO NOTHING`; no row inserted → conflict |
/// | `replace_challenge` | `UPDATE … WHERE id = $1 AND version = $expected`; no row updated → conflict |
/// | `hit` | `INSERT … ON CONFLICT (key) DO UPDATE SET count = CASE … END, resets_at = CASE … END RETURNING …` |
/// | `replace_failures` | from no run: `INSERT … ON CONFLICT (account) DO NOTHING`; from a run: `UPDATE` (or `DELETE`) `… WHERE account = $1 AND consecutive = $expected AND last_failure_at = $expected`; no row touched → conflict |
/// | `purge_challenges` | `DELETE … WHERE expires_at < $1` (and, in the same statement, counters whose window has ended) |
/// | `clear_failures` | `DELETE … WHERE account = $1` |
/// | `insert_device` | `INSERT … ON CONFLICT (account, id) DO NOTHING`; no row inserted → conflict |
/// | `replace_device` | `UPDATE … WHERE account = $1 AND id = $2 AND version = $expected`; no row updated → conflict |
/// | `delete_device` | `DELETE … WHERE account = $1 AND id = $2`; whether a row went |
/// | `delete_devices` | `DELETE … WHERE account = $1`; how many rows went |
/// | `commit_account` | one transaction, see [Contact claims](#contact-claims) |
/// | `delete_account` | one transaction: `DELETE` the record, then `DELETE … WHERE account = $1` from the claims |
/// | `insert_verification` | `INSERT … ON CONFLICT (id) DO NOTHING`; no row inserted → conflict |
/// | `replace_verification` | `UPDATE … WHERE id = $1 AND version = $expected`; no row updated → conflict |
/// | `purge_verifications` | `DELETE … WHERE expires_at < $1` |
///
/// Reads (`challenge`, `failures`, `device`, `devices`, `account_record`, `claim_owner`, `verification`) are one
/// `SELECT` each.
///
/// # Contact claims
///
/// `commit_account` runs in one `READ COMMITTED` transaction:
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
///    claims (`ON CONFLICT (key) DO NOTHING`, keeping those it holds), and
///    commits.
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
///
/// and `ninsho_schema_version (version, applied_at)`. The SQL is shipped in
/// `migrations/postgres/` for hosts that prefer their own migration tool.
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
/// Devices are never deleted by
/// [`purge_challenges`](super::ChallengeStore::purge_challenges): an expired
/// device stays, so its token reads as expired rather than unknown, until
/// it is revoked or pruned through the device flows. Hosts may also delete
/// long-expired rows themselves (`expires_at` is indexed).
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
    claim_owner: SqlStr,
    insert_book: SqlStr,
    update_book: SqlStr,
    claim_holders: SqlStr,
    release_claims: SqlStr,
    insert_claims: SqlStr,
    delete_book: SqlStr,
    delete_claims: SqlStr,
    insert_verification: SqlStr,
    verification: SqlStr,
    replace_verification: SqlStr,
    purge_verifications: SqlStr,
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
                "WITH ended AS (DELETE FROM {s}.ninsho_counters WHERE resets_at <= $1) \
                 DELETE FROM {s}.ninsho_challenges WHERE expires_at < $1"
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
            account_record: statement(format!(
                "SELECT version, record FROM {s}.ninsho_contact_books WHERE account = $1"
            )),
            claim_owner: statement(format!(
                "SELECT account FROM {s}.ninsho_contact_claims WHERE key = $1"
            )),
            insert_book: statement(format!(
                "INSERT INTO {s}.ninsho_contact_books (account, version, record) \
                 VALUES ($1, $2, $3) \
                 ON CONFLICT (account) DO NOTHING"
            )),
            update_book: statement(format!(
                "UPDATE {s}.ninsho_contact_books \
                 SET version = $2, record = $3 \
                 WHERE account = $1 AND version = $4"
            )),
            claim_holders: statement(format!(
                "SELECT key, account FROM {s}.ninsho_contact_claims WHERE key = ANY($1)"
            )),
            release_claims: statement(format!(
                "DELETE FROM {s}.ninsho_contact_claims WHERE key = ANY($1) AND account = $2"
            )),
            insert_claims: statement(format!(
                "INSERT INTO {s}.ninsho_contact_claims (key, account) \
                 SELECT k, $2 FROM unnest($1::text[]) AS k \
                 ON CONFLICT (key) DO NOTHING"
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
            purge_verifications: statement(format!(
                "DELETE FROM {s}.ninsho_verifications WHERE expires_at < $1"
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

    /// Runs the purge `sql` with `before` as `$1`; how many rows it deleted.
    async fn purge(&self, sql: &SqlStr, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query::<Postgres>(sql.clone())
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(done.rows_affected())
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

    async fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.purge(&self.sql.purge, before).await
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
        self.fetch_record(&self.sql.account_record, &account.0)
            .await
    }

    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        let owner: Option<String> = sqlx::query_scalar(self.sql.claim_owner.clone())
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(owner.map(AccountId))
    }

    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        let err = store_err(transient);
        let json = encode_record(book)?;
        let account = book.account.0.as_str();
        let claim = distinct(&changes.claim);
        let release = distinct(&changes.release);
        let locks = claim_locks(&self.schema, claim.iter().chain(&release).copied());

        let mut tx = self.pool.begin().await.map_err(&err)?;
        if !locks.is_empty() {
            sqlx::query::<Postgres>(LOCK_CLAIMS)
                .bind(&locks)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
        }

        let written = match expected_version {
            None => sqlx::query::<Postgres>(self.sql.insert_book.clone())
                .bind(account)
                .bind(version_to_sql(book.version))
                .bind(&json)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, transient, true))?,
            Some(expected) => sqlx::query::<Postgres>(self.sql.update_book.clone())
                .bind(account)
                .bind(version_to_sql(book.version))
                .bind(&json)
                .bind(version_to_sql(expected))
                .execute(&mut *tx)
                .await
                .map_err(&err)?,
        };
        if written.rows_affected() == 0 {
            tx.rollback().await.map_err(&err)?;
            return Err(StoreError::conflict());
        }

        let holders: Vec<(String, String)> = if claim.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(self.sql.claim_holders.clone())
                .bind(&claim)
                .fetch_all(&mut *tx)
                .await
                .map_err(&err)?
        };
        if let Some(index) = first_taken(&changes.claim, &holders, account) {
            tx.rollback().await.map_err(&err)?;
            return Ok(AccountCommit::Taken { index });
        }

        if !release.is_empty() {
            sqlx::query::<Postgres>(self.sql.release_claims.clone())
                .bind(&release)
                .bind(account)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
        }
        if !claim.is_empty() {
            let inserted = sqlx::query::<Postgres>(self.sql.insert_claims.clone())
                .bind(&claim)
                .bind(account)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
            // Every key not already held (after the releases) must have
            // been inserted; anything else means a claim changed hands
            // outside the locks, so nothing is written.
            let kept = claim
                .iter()
                .filter(|key| {
                    !release.contains(key) && holders.iter().any(|(held, _)| held == *key)
                })
                .count();
            let wanted = u64::try_from(claim.len() - kept).unwrap_or(u64::MAX);
            if inserted.rows_affected() != wanted {
                tx.rollback().await.map_err(&err)?;
                return Err(StoreError::conflict());
            }
        }
        tx.commit().await.map_err(&err)?;
        Ok(AccountCommit::Committed)
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

    async fn purge_verifications(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.purge(&self.sql.purge_verifications, before).await
    }
}
