//! The SQLite store adapter (feature `sqlite`).

use std::fmt;

use async_trait::async_trait;
use sqlx::{Executor, Sqlite, SqliteConnection, SqlitePool};
use time::{Duration, OffsetDateTime};

use super::sql_common::{
    IdRecord, Versioned, applied, consecutive_from_sql, count_from_sql, decode_joined,
    decode_record, distinct, encode_record, first_taken, map_err, store_err, version_to_sql,
};
use super::{
    AccountCommit, AccountStore, ChallengeStore, ChallengeWrite, ClaimChanges, Commit, Committed,
    DeviceStore, LimitStore, Load, Loaded, PurgeStore, Purged, StepStore, StoreError,
    VerificationStore, WindowCount,
};
use crate::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, DeviceId, DeviceRecord, FailureRecord,
    VerificationId, VerificationRecord,
};

/// The shipped migrations, in order: `(version, SQL)`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_factors.sql")),
    (3, include_str!("../../migrations/sqlite/0003_contacts.sql")),
    (4, include_str!("../../migrations/sqlite/0004_steps.sql")),
];

const INSERT: &str = "INSERT INTO ninsho_challenges (id, version, expires_at, record) \
     VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (id) DO NOTHING";

const SELECT: &str = "SELECT version, record FROM ninsho_challenges WHERE id = ?1";

const REPLACE: &str = "UPDATE ninsho_challenges \
     SET version = ?2, expires_at = ?3, record = ?4 \
     WHERE id = ?1 AND version = ?5";

/// What [`PurgeStore::purge`] deletes, in this order, each with the
/// cut-off as `?1`.
const PURGES: [&str; 4] = [
    "DELETE FROM ninsho_challenges WHERE expires_at < ?1",
    "DELETE FROM ninsho_verifications WHERE expires_at < ?1",
    "DELETE FROM ninsho_counters WHERE resets_at <= ?1",
    "DELETE FROM ninsho_devices WHERE expires_at < ?1",
];

// In `DO UPDATE`, bare column names are the stored row's values and
// `excluded.*` the values the insert proposed; every `SET` expression sees
// the row as it was before the update.
const HIT: &str = "INSERT INTO ninsho_counters (key, count, resets_at) \
     VALUES (?1, 1, ?3) \
     ON CONFLICT (key) DO UPDATE SET \
     count = CASE WHEN resets_at <= ?2 THEN 1 \
             ELSE MIN(count, 9223372036854775806) + 1 END, \
     resets_at = CASE WHEN resets_at <= ?2 THEN excluded.resets_at \
                 ELSE resets_at END \
     RETURNING count, resets_at";

const INSERT_FAILURES: &str = "INSERT INTO ninsho_failures (account, consecutive, last_failure_at) \
     VALUES (?1, ?2, ?3) ON CONFLICT (account) DO NOTHING";

const UPDATE_FAILURES: &str = "UPDATE ninsho_failures SET consecutive = ?4, last_failure_at = ?5 \
     WHERE account = ?1 AND consecutive = ?2 AND last_failure_at = ?3";

const DELETE_FAILURES: &str = "DELETE FROM ninsho_failures \
     WHERE account = ?1 AND consecutive = ?2 AND last_failure_at = ?3";

const FAILURES: &str =
    "SELECT consecutive, last_failure_at FROM ninsho_failures WHERE account = ?1";

const FAILURES_EXIST: &str = "SELECT 1 FROM ninsho_failures WHERE account = ?1";

const CLEAR_FAILURES: &str = "DELETE FROM ninsho_failures WHERE account = ?1";

// The new set may have a new salt (a regenerated set), so the salt is
// written as well as compared.
const INSERT_DEVICE: &str = "INSERT INTO ninsho_devices (account, id, version, expires_at, record) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (account, id) DO NOTHING";

const DEVICE: &str = "SELECT version, record FROM ninsho_devices WHERE account = ?1 AND id = ?2";

const DEVICES: &str = "SELECT version, record FROM ninsho_devices WHERE account = ?1";

const REPLACE_DEVICE: &str = "UPDATE ninsho_devices \
     SET version = ?3, expires_at = ?4, record = ?5 \
     WHERE account = ?1 AND id = ?2 AND version = ?6";

const DELETE_DEVICE: &str = "DELETE FROM ninsho_devices WHERE account = ?1 AND id = ?2";

const DELETE_DEVICES: &str = "DELETE FROM ninsho_devices WHERE account = ?1";

// The marker is read in the same statement as the record.
const CONTACT_BOOK: &str = "SELECT \
     EXISTS (SELECT 1 FROM ninsho_meta WHERE key = 'initialised'), b.version, b.record \
     FROM (SELECT 1) AS one \
     LEFT JOIN ninsho_contact_books AS b ON b.account = ?1";

// One row whatever exists: the marker, then each part or NULLs (a NULL
// key matches nothing).
const LOAD: &str = "SELECT \
     EXISTS (SELECT 1 FROM ninsho_meta WHERE key = 'initialised'), \
     b.version, b.record, f.consecutive, f.last_failure_at, \
     c.version, c.record, d.version, d.record \
     FROM (SELECT 1) AS one \
     LEFT JOIN ninsho_contact_books AS b ON b.account = ?1 \
     LEFT JOIN ninsho_failures AS f ON f.account = ?1 \
     LEFT JOIN ninsho_challenges AS c ON c.id = ?2 \
     LEFT JOIN ninsho_devices AS d ON d.account = ?1 AND d.id = ?3";

const MARKED: &str = "SELECT EXISTS (SELECT 1 FROM ninsho_meta WHERE key = 'initialised')";

const BOOK_VERSION: &str = "SELECT version FROM ninsho_contact_books WHERE account = ?1";

const INITIALISE: &str = "INSERT INTO ninsho_meta (key, written_at) \
     VALUES ('initialised', ?1) ON CONFLICT (key) DO NOTHING";

const CLAIM_OWNER: &str = "SELECT \
     EXISTS (SELECT 1 FROM ninsho_meta WHERE key = 'initialised'), \
     (SELECT account FROM ninsho_contact_claims WHERE key = ?1)";

const INSERT_BOOK: &str = "INSERT INTO ninsho_contact_books (account, version, record) \
     VALUES (?1, ?2, ?3) \
     ON CONFLICT (account) DO NOTHING";

const UPDATE_BOOK: &str = "UPDATE ninsho_contact_books \
     SET version = ?2, record = ?3 \
     WHERE account = ?1 AND version = ?4";

// Key lists travel as one JSON array of strings, unpacked by `json_each`.
const CLAIM_HOLDERS: &str = "SELECT key, account FROM ninsho_contact_claims \
     WHERE key IN (SELECT value FROM json_each(?1))";

const RELEASE_CLAIMS: &str = "DELETE FROM ninsho_contact_claims \
     WHERE key IN (SELECT value FROM json_each(?1)) AND account = ?2";

const INSERT_CLAIMS: &str = "INSERT INTO ninsho_contact_claims (key, account) \
     SELECT value, ?2 FROM json_each(?1) WHERE true \
     ON CONFLICT (key) DO NOTHING";

const DELETE_BOOK: &str = "DELETE FROM ninsho_contact_books WHERE account = ?1";

const DELETE_CLAIMS: &str = "DELETE FROM ninsho_contact_claims WHERE account = ?1";

const INSERT_VERIFICATION: &str = "INSERT INTO ninsho_verifications (id, version, expires_at, record) \
     VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (id) DO NOTHING";

const VERIFICATION: &str = "SELECT version, record FROM ninsho_verifications WHERE id = ?1";

const REPLACE_VERIFICATION: &str = "UPDATE ninsho_verifications \
     SET version = ?2, expires_at = ?3, record = ?4 \
     WHERE id = ?1 AND version = ?5";

const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS ninsho_schema_version (\
     version INTEGER PRIMARY KEY NOT NULL, \
     applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)";

const VERSION_APPLIED: &str =
    "SELECT EXISTS (SELECT 1 FROM ninsho_schema_version WHERE version = ?1)";

const RECORD_VERSION: &str = "INSERT INTO ninsho_schema_version (version) VALUES (?1)";

/// Every record in a SQLite database, through a [`sqlx::SqlitePool`].
///
/// Each method that changes state is **one SQL statement**, atomic in the
/// database (SQLite runs one writer at a time and supports `UPSERT` and
/// `RETURNING`): no application locks, no read-modify-write round trips.
/// The three exceptions, which change several rows, are one `BEGIN
/// IMMEDIATE` transaction each (holding SQLite's write lock from its first
/// statement, so nothing interleaves): `commit_account`, `delete_account`
/// and a journey step's [`commit`](StepStore::commit). Several processes
/// may share one database file.
///
/// | method | statement |
/// |---|---|
/// | `insert_challenge` | `INSERT … ON CONFLICT (id) DO NOTHING`; no row inserted → conflict |
/// | `replace_challenge` | `UPDATE … WHERE id = ?1 AND version = ?5`; no row updated → conflict |
/// | `hit` | `INSERT … ON CONFLICT (key) DO UPDATE SET count = CASE … END, resets_at = CASE … END RETURNING …` |
/// | `replace_failures` | from no run: `INSERT … ON CONFLICT (account) DO NOTHING`; from a run: `UPDATE` (or `DELETE`) `… WHERE account = ?1 AND consecutive = ?2 AND last_failure_at = ?3`; no row touched → conflict |
/// | `purge` | `BEGIN IMMEDIATE`; `DELETE` challenges, verifications and devices `WHERE expires_at < ?1`, counters `WHERE resets_at <= ?1`, each counted; `COMMIT` |
/// | `clear_failures` | `DELETE … WHERE account = ?1` |
/// | `insert_device` | `INSERT … ON CONFLICT (account, id) DO NOTHING`; no row inserted → conflict |
/// | `replace_device` | `UPDATE … WHERE account = ?1 AND id = ?2 AND version = ?6`; no row updated → conflict |
/// | `delete_device` | `DELETE … WHERE account = ?1 AND id = ?2`; whether a row went |
/// | `delete_devices` | `DELETE … WHERE account = ?1`; how many rows went |
/// | `commit_account` | `BEGIN IMMEDIATE`; the record: `UPDATE … WHERE account = ?1 AND version = ?4` (a first record: `INSERT … ON CONFLICT (account) DO NOTHING`), no row written → rollback, conflict; the claim keys' holders: one held by another account → rollback, `Taken`; `DELETE` the released keys the account holds; `INSERT … ON CONFLICT (key) DO NOTHING` the claimed ones; `COMMIT` |
/// | `delete_account` | `BEGIN IMMEDIATE`; `DELETE` the record; `DELETE … WHERE account = ?1` from the claims; `COMMIT` |
/// | `insert_verification` | `INSERT … ON CONFLICT (id) DO NOTHING`; no row inserted → conflict |
/// | `replace_verification` | `UPDATE … WHERE id = ?1 AND version = ?5`; no row updated → conflict |
/// | `load` | one `SELECT`: the [initialisation marker](#initialisation-marker) and each part asked for, `LEFT JOIN`ed into one row |
/// | `commit` | `BEGIN IMMEDIATE`; the [initialisation marker](#initialisation-marker) read (gone → rollback, `NotInitialised`); each counter charged with the statement of `hit`, in order, the first past its maximum ends it (`COMMIT`, `LimitReached`); then the failure run, the challenge, the device, the version of the record the step was decided on (`Commit::record_check`, a `SELECT`: another version → rollback, conflict) and the account record with its claims, each with the statement of its part call, any that touches no row (or a claim held elsewhere) → rollback, conflict (or `Taken`); `COMMIT` |
///
/// Reads (`challenge`, `failures`, `device`, `devices`, `account_record`, `claim_owner`, `verification`) are one
/// `SELECT` each; `account_record` reads the marker in the same `SELECT`.
/// Key lists go to SQLite as one JSON array, unpacked with `json_each`.
///
/// # Initialisation marker
///
/// A database can lose ninsho's rows while the tables stay: a `DELETE`, a
/// file replaced by an emptied copy. Every account would then read as new,
/// with two-step sign-in off. To fail closed instead, `ninsho_meta` holds
/// one marker row, checked by the statement of every
/// [`load`](StepStore::load),
/// [`account_record`](AccountStore::account_record) and
/// [`claim_owner`](AccountStore::claim_owner), and first in every
/// [`commit`](StepStore::commit): without it they fail with
/// [`NotInitialised`](super::StoreErrorKind::NotInitialised), until an
/// operator calls [`initialise`](Self::initialise).
///
/// The marker is written by the statement that creates the `ninsho_meta`
/// table (migration version 4): in a brand-new database, and once when a
/// database of version 3 is upgraded; that upgrade is the one time it is
/// written without an operator deciding so (the upgrade can't tell whether
/// the tables it finds were emptied before). Running
/// [`migrate`](Self::migrate) again, even after `ninsho_schema_version`
/// was emptied too, does not write it back. (A dropped `ninsho_meta`
/// table, with the rest in place, fails closed too, as
/// [`Other`](super::StoreErrorKind::Other) errors; `migrate` creates it
/// again, marker included, only once version 4 is deleted from
/// `ninsho_schema_version`, which is then the operator's act.)
///
/// What the marker can't catch: when the tables themselves are gone (a
/// new, empty file in place of the database), `migrate` can't tell a
/// wiped store from a first deployment. It creates everything again,
/// marker included, and the store answers as a new one: every account
/// without a record. Keep ninsho's tables in the same file, and the same
/// backups, as the host's own accounts, so that they are lost and restored
/// together.
///
/// # Tables and times
///
/// [`migrate`](Self::migrate) creates
///
/// - version 1: `ninsho_challenges (id, version, expires_at, record)`,
///   `ninsho_counters (key, count, resets_at)`, `ninsho_failures (account,
///   consecutive, last_failure_at)`;
/// - version 2: `ninsho_devices (account, id, version, expires_at, record)`
///   (primary key `(account, id)`), and `ninsho_recovery_sets` and
///   `ninsho_epochs`, which this release no longer uses (recovery codes and
///   the security epoch now live in the account's account record; drop the two
///   tables once no older instance runs);
/// - version 3: `ninsho_contact_books (account, version, record)`,
///   `ninsho_contact_claims (key, account)` (indexed on account),
///   `ninsho_verifications (id, version, expires_at, record)`;
/// - version 4: `ninsho_meta (key, written_at)` (unique on key), the
///   [initialisation marker](#initialisation-marker);
///
/// and `ninsho_schema_version`. The SQL is shipped in `migrations/sqlite/`
/// (the marker logic is in the version 4 file itself).
///
/// Records (challenges, devices, account records, verifications) are JSON
/// text; the columns beside them (version, expiry) are written in the same
/// statement and are authoritative when read back. Keys are compared as
/// exact bytes (SQLite's `BINARY` collation), so account ids holding U+0000,
/// quotes or `LIKE` wildcards are just distinct accounts.
///
/// Versions are stored as their 64 bits (any `u64` compares and sets).
///
/// Nothing is deleted on a clock but by [`purge`](PurgeStore::purge): every
/// expiry column it filters on (`expires_at`, `resets_at`) is indexed.
///
/// Times are stored as `INTEGER` nanoseconds since the Unix epoch, UTC. That
/// round-trips every instant exactly and compares correctly as a number
/// (RFC 3339 text would compare wrongly across offsets and fraction
/// lengths). The range is 1677-09-21 to 2262-04-11; times outside it are
/// clamped to its ends. Times come back in UTC.
///
/// # Pools
///
/// For a database file, any pool works; writers queue on SQLite's lock for
/// up to the connection's busy timeout (sqlx's default is 5 s), after which
/// a call fails as
/// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable).
///
/// For an in-memory database every connection of the pool must see the
/// same database. sqlx opens `sqlite::memory:` (parsed from the URL) as a
/// named shared-cache database, private to that pool; a plain `:memory:`
/// filename set through `SqliteConnectOptions::filename` is instead a new,
/// empty database on every connection, so use `max_connections(1)` there.
/// Either way the database disappears with its last connection: keep one
/// open with `min_connections(1)`, `idle_timeout(None)` and
/// `max_lifetime(None)`.
///
/// ```no_run
/// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
/// use std::str::FromStr;
/// use ninsho::store::SqliteStore;
/// use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
///
/// let options = SqliteConnectOptions::from_str("sqlite://ninsho.db")?.create_if_missing(true);
/// let pool = SqlitePoolOptions::new().connect_with(options).await?;
/// let store = SqliteStore::new(pool);
/// store.migrate().await?; // at start-up, before serving
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("pool", &self.pool)
            .finish()
    }
}

/// Whether an extended result code means "busy or unreachable; retry
/// later": `SQLITE_BUSY`, `SQLITE_LOCKED`, `SQLITE_IOERR` and
/// `SQLITE_CANTOPEN`, with any extension.
fn transient(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6 | 10 | 14))
}

/// An instant as nanoseconds since the epoch, clamped to `i64`.
fn to_sql(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// The inverse of [`to_sql`], in UTC.
fn from_sql(nanos: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).map_err(StoreError::other)
}

impl SqliteStore {
    /// A store over `pool`. Call [`migrate`](Self::migrate) at start-up to
    /// create the tables.
    #[must_use]
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool the store uses.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Applies the shipped migrations not yet applied, recording each in
    /// `ninsho_schema_version`.
    ///
    /// This is the call hosts make at start-up, before serving. It is
    /// idempotent and safe to run from several processes at once: it runs
    /// in one `BEGIN IMMEDIATE` transaction, which holds SQLite's write lock
    /// from the start.
    ///
    /// It writes the [initialisation marker](Self#initialisation-marker)
    /// only in the migration that creates its table (a new database, or
    /// the upgrade from version 3), never again: after a data loss it
    /// leaves the store answering `NotInitialised` until
    /// [`initialise`](Self::initialise) is called.
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable)
    /// when the database can't be opened or stays locked; other failures as
    /// [`StoreErrorKind::Other`](super::StoreErrorKind::Other).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let err = store_err(transient);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        sqlx::query(CREATE_VERSION_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        for &(version, sql) in MIGRATIONS {
            let applied: bool = sqlx::query_scalar(VERSION_APPLIED)
                .bind(version)
                .fetch_one(&mut *tx)
                .await
                .map_err(&err)?;
            if applied {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(&err)?;
            sqlx::query(RECORD_VERSION)
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)
    }
}

impl SqliteStore {
    /// Writes the initialisation marker (the row `'initialised'` of
    /// `ninsho_meta`), so that [`load`](StepStore::load) and
    /// [`account_record`](AccountStore::account_record) answer again after
    /// they failed with
    /// [`NotInitialised`](super::StoreErrorKind::NotInitialised).
    ///
    /// [`migrate`](Self::migrate) writes the marker itself when it creates
    /// the tables, so a new deployment never needs this. It is the
    /// operator's deliberate act after the tables lost their rows (a
    /// `DELETE`, a restore of an emptied copy): once the data is restored,
    /// or once it is accepted that the accounts' records are gone (every
    /// account then reads as new, with two-step sign-in off). **Never call
    /// it on every start**: it would mark emptied tables as fine and the
    /// loss would go unnoticed. Calling it when the marker is there changes
    /// nothing (the time it was first written is kept).
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable)
    /// when the database stays locked; other failures (such as tables that
    /// [`migrate`](Self::migrate) has not created) as
    /// [`StoreErrorKind::Other`](super::StoreErrorKind::Other).
    pub async fn initialise(&self) -> Result<(), StoreError> {
        sqlx::query::<Sqlite>(INITIALISE)
            .bind(to_sql(OffsetDateTime::now_utc()))
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(())
    }
}

/// The reads and writes that challenges and combined verifications share,
/// each kind on its own table through its own statements (account records
/// are read the same way too).
impl SqliteStore {
    /// The record that `sql` selects (`version, record`) by `key`.
    async fn fetch_record<T: Versioned>(
        &self,
        sql: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let row: Option<(i64, String)> = sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err(transient))?;
        row.map(|(version, json)| decode_record(&json, version))
            .transpose()
    }

    /// Inserts `record` with `sql` (`INSERT … ON CONFLICT (id) DO
    /// NOTHING`); no row inserted, or a unique violation, → conflict.
    async fn insert_record<T: IdRecord>(
        &self,
        sql: &'static str,
        record: &T,
    ) -> Result<(), StoreError> {
        let json = encode_record(record)?;
        let done = sqlx::query::<Sqlite>(sql)
            .bind(record.key())
            .bind(version_to_sql(record.version()))
            .bind(to_sql(record.expires_at()))
            .bind(json)
            .execute(&self.pool)
            .await
            .map_err(|e| map_err(e, transient, true))?;
        applied(done.rows_affected())
    }

    /// Replaces the stored record with `record` with `sql` (`UPDATE … WHERE
    /// id = ?1 AND version = ?5`); no row updated → conflict.
    async fn replace_record<T: IdRecord>(
        &self,
        sql: &'static str,
        record: &T,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let json = encode_record(record)?;
        let done = sqlx::query::<Sqlite>(sql)
            .bind(record.key())
            .bind(version_to_sql(record.version()))
            .bind(to_sql(record.expires_at()))
            .bind(json)
            .bind(version_to_sql(expected_version))
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        applied(done.rows_affected())
    }
}

#[async_trait]
impl ChallengeStore for SqliteStore {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.insert_record(INSERT, record).await
    }

    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        self.fetch_record(SELECT, &id.to_string()).await
    }

    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.replace_record(REPLACE, record, expected_version).await
    }
}

#[async_trait]
impl LimitStore for SqliteStore {
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        let (count, resets_at): (i64, i64) = sqlx::query_as(HIT)
            .bind(key)
            .bind(to_sql(now))
            .bind(to_sql(now.saturating_add(window)))
            .fetch_one(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(WindowCount {
            count: count_from_sql(count)?,
            resets_at: from_sql(resets_at)?,
        })
    }

    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        swap_failures(&self.pool, account, expected, next).await
    }

    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(FAILURES)
            .bind(&account.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err(transient))?;
        row.map(|(consecutive, last_failure_at)| {
            Ok(FailureRecord {
                consecutive: consecutive_from_sql(consecutive)?,
                last_failure_at: from_sql(last_failure_at)?,
            })
        })
        .transpose()
    }

    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        sqlx::query::<Sqlite>(CLEAR_FAILURES)
            .bind(&account.0)
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(())
    }
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        let json = encode_record(record)?;
        let done = sqlx::query::<Sqlite>(INSERT_DEVICE)
            .bind(&record.account.0)
            .bind(record.id.to_string())
            .bind(version_to_sql(record.version))
            .bind(to_sql(record.expires_at))
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
        let row: Option<(i64, String)> = sqlx::query_as(DEVICE)
            .bind(&account.0)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err(transient))?;
        row.map(|(version, json)| decode_record(&json, version))
            .transpose()
    }

    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(DEVICES)
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
        let done = sqlx::query::<Sqlite>(REPLACE_DEVICE)
            .bind(&record.account.0)
            .bind(record.id.to_string())
            .bind(version_to_sql(record.version))
            .bind(to_sql(record.expires_at))
            .bind(json)
            .bind(version_to_sql(expected_version))
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        applied(done.rows_affected())
    }

    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError> {
        let done = sqlx::query::<Sqlite>(DELETE_DEVICE)
            .bind(&account.0)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        let done = sqlx::query::<Sqlite>(DELETE_DEVICES)
            .bind(&account.0)
            .execute(&self.pool)
            .await
            .map_err(store_err(transient))?;
        Ok(done.rows_affected())
    }
}

/// The compare-and-set of
/// [`replace_failures`](LimitStore::replace_failures), one statement on
/// `exec` (the pool, or a transaction's connection).
async fn swap_failures<'e, E>(
    exec: E,
    account: &AccountId,
    expected: Option<FailureRecord>,
    next: Option<FailureRecord>,
) -> Result<(), StoreError>
where
    E: Executor<'e, Database = Sqlite>,
{
    let err = store_err(transient);
    let done = match (expected, next) {
        (None, None) => {
            let stored: Option<i64> = sqlx::query_scalar(FAILURES_EXIST)
                .bind(&account.0)
                .fetch_optional(exec)
                .await
                .map_err(err)?;
            return match stored {
                None => Ok(()),
                Some(_) => Err(StoreError::conflict()),
            };
        }
        (None, Some(run)) => sqlx::query::<Sqlite>(INSERT_FAILURES)
            .bind(&account.0)
            .bind(i64::from(run.consecutive))
            .bind(to_sql(run.last_failure_at)),
        (Some(old), Some(run)) => sqlx::query::<Sqlite>(UPDATE_FAILURES)
            .bind(&account.0)
            .bind(i64::from(old.consecutive))
            .bind(to_sql(old.last_failure_at))
            .bind(i64::from(run.consecutive))
            .bind(to_sql(run.last_failure_at)),
        (Some(old), None) => sqlx::query::<Sqlite>(DELETE_FAILURES)
            .bind(&account.0)
            .bind(i64::from(old.consecutive))
            .bind(to_sql(old.last_failure_at)),
    }
    .execute(exec)
    .await
    .map_err(err)?;
    applied(done.rows_affected())
}

/// A key list as the JSON array the statements unpack with `json_each`.
fn json_keys(keys: &[&str]) -> Result<String, StoreError> {
    serde_json::to_string(keys).map_err(StoreError::other)
}

/// Rolls back `tx`, which `err` ended, and returns `err`: that is what the
/// caller needs to know. A rollback that fails too leaves the connection
/// to sqlx, which discards it; the transaction is undone either way.
async fn abandon(tx: sqlx::Transaction<'_, Sqlite>, err: StoreError) -> StoreError {
    let _ = tx.rollback().await;
    err
}

/// Commits the transaction `tx` when `keep`, rolls it back otherwise.
async fn finish(tx: sqlx::Transaction<'_, Sqlite>, keep: bool) -> Result<(), StoreError> {
    if keep {
        tx.commit().await
    } else {
        tx.rollback().await
    }
    .map_err(store_err(transient))
}

/// Writes `book` with its claims inside the caller's `BEGIN IMMEDIATE`
/// transaction, the rules of
/// [`commit_account`](AccountStore::commit_account): `Ok(None)` when it
/// was written; `Ok(Some(index))` when `changes.claim[index]` is held by
/// another account, and `Err` (a conflict when the version differs) with
/// the record perhaps written: in both the caller rolls back.
async fn write_book(
    conn: &mut SqliteConnection,
    book: &AccountRecord,
    expected_version: Option<u64>,
    changes: &ClaimChanges,
) -> Result<Option<usize>, StoreError> {
    let err = store_err(transient);
    let json = encode_record(book)?;
    let account = book.account.0.as_str();
    let claim = distinct(&changes.claim);
    let release = distinct(&changes.release);
    let claim_json = json_keys(&claim)?;

    let written = match expected_version {
        None => sqlx::query::<Sqlite>(INSERT_BOOK)
            .bind(account)
            .bind(version_to_sql(book.version))
            .bind(&json)
            .execute(&mut *conn)
            .await
            .map_err(|e| map_err(e, transient, true))?,
        Some(expected) => sqlx::query::<Sqlite>(UPDATE_BOOK)
            .bind(account)
            .bind(version_to_sql(book.version))
            .bind(&json)
            .bind(version_to_sql(expected))
            .execute(&mut *conn)
            .await
            .map_err(&err)?,
    };
    applied(written.rows_affected())?;

    let holders: Vec<(String, String)> = if claim.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(CLAIM_HOLDERS)
            .bind(&claim_json)
            .fetch_all(&mut *conn)
            .await
            .map_err(&err)?
    };
    if let Some(index) = first_taken(&changes.claim, &holders, account) {
        return Ok(Some(index));
    }

    if !release.is_empty() {
        sqlx::query::<Sqlite>(RELEASE_CLAIMS)
            .bind(json_keys(&release)?)
            .bind(account)
            .execute(&mut *conn)
            .await
            .map_err(&err)?;
    }
    if !claim.is_empty() {
        sqlx::query::<Sqlite>(INSERT_CLAIMS)
            .bind(&claim_json)
            .bind(account)
            .execute(&mut *conn)
            .await
            .map_err(&err)?;
    }
    Ok(None)
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let (initialised, version, json): (bool, Option<i64>, Option<String>) =
            sqlx::query_as(CONTACT_BOOK)
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
        let (initialised, owner): (bool, Option<String>) = sqlx::query_as(CLAIM_OWNER)
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
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_err(transient))?;
        let written = write_book(&mut tx, book, expected_version, changes).await;
        let committed = match written {
            Ok(None) => AccountCommit::Committed,
            Ok(Some(index)) => AccountCommit::Taken { index },
            Err(err) => return Err(abandon(tx, err).await),
        };
        finish(tx, committed == AccountCommit::Committed).await?;
        Ok(committed)
    }

    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        let err = store_err(transient);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        sqlx::query::<Sqlite>(DELETE_BOOK)
            .bind(&account.0)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        sqlx::query::<Sqlite>(DELETE_CLAIMS)
            .bind(&account.0)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        tx.commit().await.map_err(&err)
    }
}

#[async_trait]
impl VerificationStore for SqliteStore {
    async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError> {
        self.insert_record(INSERT_VERIFICATION, record).await
    }

    async fn verification(
        &self,
        id: &VerificationId,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        self.fetch_record(VERIFICATION, &id.to_string()).await
    }

    async fn replace_verification(
        &self,
        record: &VerificationRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.replace_record(REPLACE_VERIFICATION, record, expected_version)
            .await
    }
}

/// What [`SqliteStore::load`](StepStore::load) reads: the marker, then the
/// version and JSON of the account record, the failure run, and the
/// version and JSON of the challenge and of the device.
type LoadRow = (
    bool,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

/// Charges `hit`'s counter at `now` inside the caller's transaction, the
/// statement of [`hit`](LimitStore::hit).
async fn charge(
    conn: &mut SqliteConnection,
    key: &str,
    window: Duration,
    now: OffsetDateTime,
) -> Result<WindowCount, StoreError> {
    let (count, resets_at): (i64, i64) = sqlx::query_as(HIT)
        .bind(key)
        .bind(to_sql(now))
        .bind(to_sql(now.saturating_add(window)))
        .fetch_one(&mut *conn)
        .await
        .map_err(store_err(transient))?;
    Ok(WindowCount {
        count: count_from_sql(count)?,
        resets_at: from_sql(resets_at)?,
    })
}

/// The steps of [`SqliteStore::commit`](StepStore::commit) inside its
/// transaction, in the order of the trait's docs. A failed condition is an
/// `Err` (a conflict) or `Taken`, and the caller rolls back; `Done` and
/// `LimitReached` are committed.
async fn apply(
    conn: &mut SqliteConnection,
    commit: &Commit<'_>,
    now: OffsetDateTime,
) -> Result<Committed, StoreError> {
    let marked: bool = sqlx::query_scalar(MARKED)
        .fetch_one(&mut *conn)
        .await
        .map_err(store_err(transient))?;
    if !marked {
        return Err(StoreError::not_initialised());
    }
    for (index, hit) in commit.hits.iter().enumerate() {
        let count = charge(conn, &hit.key, hit.window, now).await?;
        if count.count > hit.max {
            return Ok(Committed::LimitReached { index, count });
        }
    }
    if let Some(change) = commit.failures {
        swap_failures(&mut *conn, change.account, change.expected, change.next).await?;
    }
    if let Some(write) = commit.challenge {
        let record = write.record();
        let json = encode_record(record)?;
        let done = match write {
            ChallengeWrite::Insert(_) => sqlx::query::<Sqlite>(INSERT)
                .bind(record.key())
                .bind(version_to_sql(record.version))
                .bind(to_sql(record.expires_at))
                .bind(json),
            ChallengeWrite::Replace {
                expected_version, ..
            } => sqlx::query::<Sqlite>(REPLACE)
                .bind(record.key())
                .bind(version_to_sql(record.version))
                .bind(to_sql(record.expires_at))
                .bind(json)
                .bind(version_to_sql(expected_version)),
        }
        .execute(&mut *conn)
        .await
        .map_err(|e| map_err(e, transient, true))?;
        applied(done.rows_affected())?;
    }
    if let Some(device) = commit.device {
        let json = encode_record(device)?;
        let done = sqlx::query::<Sqlite>(INSERT_DEVICE)
            .bind(&device.account.0)
            .bind(device.id.to_string())
            .bind(version_to_sql(device.version))
            .bind(to_sql(device.expires_at))
            .bind(json)
            .execute(&mut *conn)
            .await
            .map_err(|e| map_err(e, transient, true))?;
        applied(done.rows_affected())?;
    }
    if let Some(check) = commit.record_check.filter(|_| commit.record.is_none()) {
        let version: Option<i64> = sqlx::query_scalar(BOOK_VERSION)
            .bind(&check.account.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_err(transient))?;
        if version != check.version.map(version_to_sql) {
            return Err(StoreError::conflict());
        }
    }
    if let Some(write) = commit.record
        && let Some(index) =
            write_book(conn, write.record, write.expected_version, write.claims).await?
    {
        return Ok(Committed::Taken { index });
    }
    Ok(Committed::Done)
}

#[async_trait]
impl StepStore for SqliteStore {
    /// One `SELECT`: the marker and every part asked for, joined to a
    /// single row.
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        let account = load.account.map(|a| a.0.as_str());
        let challenge = load.challenge.map(ToString::to_string);
        let device = load.device.map(ToString::to_string);
        let row: LoadRow = sqlx::query_as(LOAD)
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
                last_failure_at: from_sql(last_failure_at)?,
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

    /// One `BEGIN IMMEDIATE` transaction: the statements of the part calls
    /// in the trait's order, committed when every condition held (or a
    /// counter passed its maximum), rolled back otherwise.
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_err(transient))?;
        match apply(&mut tx, commit, now).await {
            Ok(committed) => {
                let keep = !matches!(committed, Committed::Taken { .. });
                finish(tx, keep).await?;
                Ok(committed)
            }
            Err(err) => Err(abandon(tx, err).await),
        }
    }
}

#[async_trait]
impl PurgeStore for SqliteStore {
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError> {
        let err = store_err(transient);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        let mut counts = [0u64; 4];
        for (sql, count) in PURGES.into_iter().zip(&mut counts) {
            *count = sqlx::query::<Sqlite>(sql)
                .bind(to_sql(before))
                .execute(&mut *tx)
                .await
                .map_err(&err)?
                .rows_affected();
        }
        tx.commit().await.map_err(&err)?;
        Ok(Purged::from_counts(counts))
    }
}
