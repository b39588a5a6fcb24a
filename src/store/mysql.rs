//! The MySQL and MariaDB store adapter (feature `mysql`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::mysql::{MySqlDatabaseError, MySqlQueryResult};
use sqlx::{AssertSqlSafe, MySql, MySqlConnection, MySqlPool, SqlStr};
use time::{Duration, OffsetDateTime};

use super::sql_common::{
    IdRecord, Versioned, applied, consecutive_from_sql, count_from_sql, decode_record, distinct,
    encode_record, first_taken, statement, version_to_sql,
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
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/mysql/0001_init.sql"))];

/// The longest database name MySQL and MariaDB accept.
const MAX_IDENTIFIER: usize = 64;

/// The widths of the key columns, in bytes (`VARBINARY(n)`): an account id,
/// a counter key and a claim key longer than these is refused before it
/// reaches the server, so no `sql_mode` can truncate it into another key.
const MAX_ACCOUNT: usize = 1024;
const MAX_COUNTER_KEY: usize = 2048;
const MAX_CLAIM_KEY: usize = 1024;

/// How many times a transaction (or statement) that InnoDB chose as a
/// deadlock victim is run, in all, before the call fails as
/// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable).
const DEADLOCK_ATTEMPTS: usize = 16;

/// Seconds `migrate` waits for another instance's migration to finish.
const MIGRATION_LOCK_WAIT: i64 = 60;

/// Every record in MariaDB 10.6+ or MySQL 8.0+, through a
/// [`sqlx::MySqlPool`]. (CI runs the conformance suite against MariaDB
/// 10.11; the SQL keeps to what both servers have, but MySQL itself is not
/// tested.)
///
/// Each method that changes state is **one SQL statement**, atomic in the
/// database, except where MySQL needs a transaction: `hit` (MySQL has no
/// `UPDATE … RETURNING`, and MariaDB none with `ON DUPLICATE KEY UPDATE`),
/// `commit_account` and `delete_account` (see [Contact
/// claims](#contact-claims)), and a journey step's `commit` (see [Journey
/// steps](#journey-steps)). No application locks, no read-modify-write
/// round trips; any number of app instances may share the tables.
///
/// | method | statement |
/// |---|---|
/// | `insert_challenge` | `INSERT`; a duplicate key (error 1062) → conflict |
/// | `replace_challenge` | `UPDATE … WHERE id = ? AND version = ?expected`; no row matched → conflict |
/// | `hit` | one transaction: `INSERT … ON DUPLICATE KEY UPDATE count = IF(resets_at <= ?now, 1, count + 1), resets_at = IF(resets_at <= ?now, ?, resets_at)`, then `SELECT count, resets_at` of the row it holds locked, `COMMIT` |
/// | `replace_failures` | from no run: `INSERT` (duplicate → conflict); from a run: `UPDATE` (or `DELETE`) `… WHERE account = ? AND consecutive = ?expected AND last_failure_at = ?expected`; no row matched → conflict |
/// | `purge` | four statements, each its own transaction: `DELETE` challenges, verifications and devices `WHERE expires_at < ?`, counters `WHERE resets_at <= ?`, each counted |
/// | `clear_failures` | `DELETE … WHERE account = ?` |
/// | `insert_device` | `INSERT`; a duplicate `(account, id)` → conflict |
/// | `replace_device` | `UPDATE … WHERE account = ? AND id = ? AND version = ?expected`; no row matched → conflict |
/// | `delete_device` | `DELETE … WHERE account = ? AND id = ?`; whether a row went |
/// | `delete_devices` | `DELETE … WHERE account = ?`; how many rows went |
/// | `commit_account` | one transaction, see [Contact claims](#contact-claims) |
/// | `delete_account` | one transaction: `DELETE` the record, then `DELETE … WHERE account = ?` from the claims |
/// | `insert_verification` | `INSERT`; a duplicate key → conflict |
/// | `replace_verification` | `UPDATE … WHERE id = ? AND version = ?expected`; no row matched → conflict |
/// | `load` | one `SELECT … UNION ALL …`, one tagged row per part found: the store's marker (see [Initialisation](#initialisation)), the account record, the failure run, the challenge, the device |
/// | `account_record` | `load` of the account alone: the marker is checked in the same statement |
/// | `commit` | one transaction, see [Journey steps](#journey-steps) |
///
/// The other reads (`challenge`, `failures`, `device`, `devices`,
/// `claim_owner`, `verification`) are one `SELECT` each.
///
/// "No row matched" relies on sqlx asking the server for found rows
/// (`CLIENT_FOUND_ROWS`, which sqlx always sets): an `UPDATE` whose
/// condition holds counts its row even when the new values equal the old.
///
/// In `hit`'s `ON DUPLICATE KEY UPDATE`, MySQL applies the assignments
/// left to right and a later one sees the columns an earlier one changed,
/// so `count` is assigned first, while `resets_at` still holds the stored
/// window; the row stays locked until the `COMMIT`, so the `SELECT` reads
/// exactly this hit's count. Racing hits queue on the row lock: none is
/// lost, and each reads its own count.
///
/// # Contact claims
///
/// `commit_account` runs in one transaction (at the server's isolation
/// level, `REPEATABLE READ` or `READ COMMITTED`):
///
/// 1. it writes the record: `UPDATE … WHERE account = ? AND version =
///    ?expected` (or, for a first record, `INSERT`); no row matched, or a
///    duplicate key → rolled back, a conflict. The record's row stays
///    locked, so commits of one account run one after the other;
/// 2. it locks every key it claims or releases, in ascending byte order,
///    with one `INSERT … ON DUPLICATE KEY UPDATE account = account`: a key
///    nobody holds is inserted for the account, a held one is locked as it
///    is. Two commits touching one key therefore run one after the other,
///    and commits touching several keys take them in the same order, so
///    they don't deadlock;
/// 3. it reads who holds the keys to claim (a plain `SELECT`: the rows
///    are already locked by this transaction, so nobody can change them,
///    and a locking read might lock rows it scans but does not return): one
///    held by another account → rolled back, [`AccountCommit::Taken`] with
///    nothing written;
/// 4. it deletes the released keys the account holds, one primary-key
///    `DELETE` each (which also removes the rows step 2 inserted only to
///    lock a released key), inserts again any key that is both released
///    and claimed, and commits.
///
/// Of two accounts claiming one number the second waits on the first's
/// row lock and then reads the number as taken: never a duplicate-key
/// error, never two owners.
///
/// **Deadlocks.** InnoDB may still pick a deadlock victim where
/// transactions touch rows in ways this order does not cover (a
/// `delete_account` scanning the claims index, a purge racing a replace).
/// A deadlock (error 1213) rolls the victim's transaction back whole, so
/// the adapter runs it again, up to 16 times in all, then fails the call as
/// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable).
/// It is not reported as a
/// [`Conflict`](super::StoreErrorKind::Conflict): a conflict means "the
/// version you expected is gone", and though ninsho's flows would re-read
/// and retry, a direct caller (the testkit's claim races, a host's own
/// code) would take it as a lost compare-and-set. A lock wait timeout
/// (error 1205) is not retried: the call has already waited
/// `innodb_lock_wait_timeout` (50 s by default), so it fails at once as
/// `Unavailable` and the transaction is rolled back.
///
/// # Journey steps
///
/// [`commit`](StepStore::commit) runs in one transaction, its statements
/// in this order, each the conditional write of its part-trait
/// counterpart:
///
/// 1. each hit, in order, as `hit` does (the upsert, then the count read
///    back); the first past its `max` commits the hits so far, and only
///    them, and ends the call with [`Committed::LimitReached`];
/// 2. the failure run: `INSERT` (a duplicate key is a conflict), or
///    `UPDATE`/`DELETE … WHERE` the expected run; when no run is expected
///    and none is to be left, a `SELECT … FOR UPDATE` that must find none;
/// 3. the challenge: `INSERT`, or `UPDATE … WHERE id = ? AND version =
///    ?expected`;
/// 4. the device: `INSERT`;
/// 5. the record the step was decided on ([`Commit::record_check`]): a
///    `SELECT version … LOCK IN SHARE MODE` that must find the version read;
/// 6. the account record and its claims, as `commit_account` does.
///
/// Before all of them, the initialisation marker is read: without it the
/// call fails with
/// [`StoreErrorKind::NotInitialised`](super::StoreErrorKind::NotInitialised)
/// and writes nothing.
///
/// The first condition that fails rolls the whole transaction back, hits
/// included: a [`Conflict`](super::StoreErrorKind::Conflict), or
/// [`Committed::Taken`] for a claim held by another account. Every commit
/// takes its rows in this order, so commits of one account queue up rather
/// than deadlock, and deadlock victims are run again as above.
///
/// # Initialisation
///
/// Losing ninsho's rows is not harmless: an account whose record is gone
/// reads as an account that never turned on two-step sign-in. The store
/// therefore keeps a marker, the row `initialised` of `ninsho_meta`,
/// written only by [`initialise`](Self::initialise) (never by
/// [`migrate`](Self::migrate)). [`load`](StepStore::load),
/// [`account_record`](AccountStore::account_record) and
/// [`claim_owner`](AccountStore::claim_owner) read it in the same
/// statement as the records, and [`commit`](StepStore::commit) first in
/// its transaction; they fail with
/// [`StoreErrorKind::NotInitialised`](super::StoreErrorKind::NotInitialised)
/// when it is absent, or when the tables or the database are gone. A
/// database restored empty, truncated, or dropped and migrated again
/// therefore answers every journey with an error, never "two-step sign-in
/// is off".
///
/// Call `initialise` once, on purpose, when the store is first deployed
/// (after `migrate`), and again only after an operator has dealt with a
/// data loss; never on every start, which would re-arm an emptied database
/// silently.
///
/// # Tables
///
/// [`migrate`](Self::migrate) creates, in the store's database (the
/// connection's own unless [`with_database`](Self::with_database) names
/// another):
///
/// - version 1: `ninsho_meta (key, value)` (the marker),
///   `ninsho_challenges (id, version, expires_at, record)`,
///   `ninsho_counters (key, count, resets_at)`, `ninsho_failures (account,
///   consecutive, last_failure_at)`, `ninsho_devices (account, id, version,
///   expires_at, record)` (primary key `(account, id)`),
///   `ninsho_contact_books (account, version, record)`,
///   `ninsho_contact_claims (key, account)` (indexed on account),
///   `ninsho_verifications (id, version, expires_at, record)`;
///
/// and `ninsho_schema_version (version, applied_at)`, all InnoDB. The SQL is
/// shipped in `migrations/mysql/` for hosts that prefer their own migration
/// tool.
///
/// Keys (ids, account ids, counter and claim keys) are `VARBINARY`: their
/// UTF-8 bytes, compared exactly. `utf8mb4_bin` would not do, as it pads
/// with spaces (`alice` and `alice ` would be one account); a key may hold
/// U+0000, quotes or `LIKE` wildcards and is just a distinct key. An account
/// id or claim key longer than 1024 bytes, or a counter key longer than
/// 2048, fails, on reads and writes alike, with
/// [`StoreErrorKind::Other`](super::StoreErrorKind::Other) before anything
/// is sent, so no `sql_mode` can truncate it into another key.
///
/// Records (challenges, devices, account records, verifications) are JSON
/// in a `LONGTEXT` column (`utf8mb4`), kept byte for byte; the columns
/// beside them (version, expiry) are written in the same statement and are
/// authoritative when read back. Versions are stored as their 64 bits (any
/// `u64` compares and sets). The connection's character set must be
/// `utf8mb4`, which sqlx sets by default.
///
/// Nothing is deleted on a clock but by [`purge`](PurgeStore::purge): every
/// expiry column it filters on (`expires_at`, `resets_at`) is indexed.
///
/// # Time precision
///
/// Times are `BIGINT` microseconds since the Unix epoch, UTC (read one with
/// `FROM_UNIXTIME(expires_at / 1000000)`): the sub-microsecond part of a
/// counter's `resets_at`, of a failure's `last_failure_at` and of the
/// `expires_at` columns is dropped (times are truncated towards the past,
/// and `now` and the purges' cut-offs are truncated the same way before
/// they are compared). A failure run is compared the way it is stored, so
/// a flow can compare-and-set the run it wrote without reading it back.
/// Challenge, device and account records are stored whole as JSON and come
/// back exactly as written.
///
/// # Example
///
/// ```no_run
/// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use ninsho::store::{MySqlStore, Store};
///
/// let pool = sqlx::mysql::MySqlPoolOptions::new()
///     .max_connections(10)
///     .connect("mysql://app@db.internal/app")
///     .await?;
/// let store = MySqlStore::new(pool);
/// store.migrate().await?; // at start-up, before serving
/// // Once, when the store is first deployed (not on every start):
/// // store.initialise().await?;
/// let store: Arc<dyn Store> = Arc::new(store);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
///
/// The host depends on `sqlx` 0.9 itself (with the `mysql` and a
/// `runtime-tokio` feature) to build the pool.
#[derive(Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
    database: Option<Arc<str>>,
    sql: Arc<Statements>,
}

/// The store's statements, database-qualified when the store names a
/// database, built once.
struct Statements {
    /// The qualified name of the claims table, for the statements whose
    /// key lists vary in length.
    claims: String,
    insert: SqlStr,
    select: SqlStr,
    replace: SqlStr,
    /// Challenges, verifications, counters, devices: the order of
    /// [`Purged`]'s fields.
    purge: [SqlStr; 4],
    hit: SqlStr,
    read_counter: SqlStr,
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
    claim_owner: SqlStr,
    insert_book: SqlStr,
    update_book: SqlStr,
    delete_book: SqlStr,
    delete_claims: SqlStr,
    release_claim: SqlStr,
    insert_verification: SqlStr,
    verification: SqlStr,
    replace_verification: SqlStr,
    load: SqlStr,
    initialise: SqlStr,
    failures_for_update: SqlStr,
    marked: SqlStr,
    book_version_shared: SqlStr,
}

impl Statements {
    /// `prefix` is empty or the quoted database name followed by a dot.
    fn new(prefix: &str) -> Self {
        let t = |name: &str| format!("{prefix}{name}");
        let challenges = t("ninsho_challenges");
        let counters = t("ninsho_counters");
        let failures = t("ninsho_failures");
        let devices = t("ninsho_devices");
        let books = t("ninsho_contact_books");
        let claims = t("ninsho_contact_claims");
        let verifications = t("ninsho_verifications");
        let meta = t("ninsho_meta");
        Self {
            insert: statement(format!(
                "INSERT INTO {challenges} (id, version, expires_at, record) VALUES (?, ?, ?, ?)"
            )),
            select: statement(format!(
                "SELECT version, record FROM {challenges} WHERE id = ?"
            )),
            replace: statement(format!(
                "UPDATE {challenges} SET version = ?, expires_at = ?, record = ? \
                 WHERE id = ? AND version = ?"
            )),
            purge: [
                statement(format!("DELETE FROM {challenges} WHERE expires_at < ?")),
                statement(format!("DELETE FROM {verifications} WHERE expires_at < ?")),
                statement(format!("DELETE FROM {counters} WHERE resets_at <= ?")),
                statement(format!("DELETE FROM {devices} WHERE expires_at < ?")),
            ],
            // Assignments run left to right and later ones see earlier
            // ones: `count` first, while `resets_at` is still the stored
            // window's end.
            hit: statement(format!(
                "INSERT INTO {counters} (`key`, count, resets_at) VALUES (?, 1, ?) \
                 ON DUPLICATE KEY UPDATE \
                 count = IF(resets_at <= ?, 1, LEAST(count, 9223372036854775806) + 1), \
                 resets_at = IF(resets_at <= ?, ?, resets_at)"
            )),
            read_counter: statement(format!(
                "SELECT count, resets_at FROM {counters} WHERE `key` = ?"
            )),
            insert_failures: statement(format!(
                "INSERT INTO {failures} (account, consecutive, last_failure_at) VALUES (?, ?, ?)"
            )),
            update_failures: statement(format!(
                "UPDATE {failures} SET consecutive = ?, last_failure_at = ? \
                 WHERE account = ? AND consecutive = ? AND last_failure_at = ?"
            )),
            delete_failures: statement(format!(
                "DELETE FROM {failures} \
                 WHERE account = ? AND consecutive = ? AND last_failure_at = ?"
            )),
            failures: statement(format!(
                "SELECT consecutive, last_failure_at FROM {failures} WHERE account = ?"
            )),
            clear_failures: statement(format!("DELETE FROM {failures} WHERE account = ?")),
            insert_device: statement(format!(
                "INSERT INTO {devices} (account, id, version, expires_at, record) \
                 VALUES (?, ?, ?, ?, ?)"
            )),
            device: statement(format!(
                "SELECT version, record FROM {devices} WHERE account = ? AND id = ?"
            )),
            devices: statement(format!(
                "SELECT version, record FROM {devices} WHERE account = ?"
            )),
            replace_device: statement(format!(
                "UPDATE {devices} SET version = ?, expires_at = ?, record = ? \
                 WHERE account = ? AND id = ? AND version = ?"
            )),
            delete_device: statement(format!(
                "DELETE FROM {devices} WHERE account = ? AND id = ?"
            )),
            delete_devices: statement(format!("DELETE FROM {devices} WHERE account = ?")),
            claim_owner: statement(format!(
                "SELECT EXISTS (SELECT 1 FROM {meta} WHERE `key` = 'initialised'), \
                 (SELECT account FROM {claims} WHERE `key` = ?)"
            )),
            insert_book: statement(format!(
                "INSERT INTO {books} (account, version, record) VALUES (?, ?, ?)"
            )),
            update_book: statement(format!(
                "UPDATE {books} SET version = ?, record = ? WHERE account = ? AND version = ?"
            )),
            delete_book: statement(format!("DELETE FROM {books} WHERE account = ?")),
            delete_claims: statement(format!("DELETE FROM {claims} WHERE account = ?")),
            release_claim: statement(format!(
                "DELETE FROM {claims} WHERE `key` = ? AND account = ?"
            )),
            insert_verification: statement(format!(
                "INSERT INTO {verifications} (id, version, expires_at, record) \
                 VALUES (?, ?, ?, ?)"
            )),
            verification: statement(format!(
                "SELECT version, record FROM {verifications} WHERE id = ?"
            )),
            replace_verification: statement(format!(
                "UPDATE {verifications} SET version = ?, expires_at = ?, record = ? \
                 WHERE id = ? AND version = ?"
            )),
            // One row per part found, tagged; the first is the store's
            // marker (1 when initialised, else 0). A part not asked for is
            // bound as NULL, which matches no row.
            load: statement(format!(
                "SELECT 0, COUNT(*), NULL, NULL FROM {meta} WHERE `key` = 'initialised' \
                 UNION ALL SELECT 1, version, NULL, record FROM {books} WHERE account = ? \
                 UNION ALL SELECT 2, consecutive, last_failure_at, NULL FROM {failures} \
                 WHERE account = ? \
                 UNION ALL SELECT 3, version, NULL, record FROM {challenges} WHERE id = ? \
                 UNION ALL SELECT 4, version, NULL, record FROM {devices} \
                 WHERE account = ? AND id = ?"
            )),
            initialise: statement(format!(
                "INSERT INTO {meta} (`key`, value) VALUES ('initialised', '1') \
                 ON DUPLICATE KEY UPDATE value = value"
            )),
            failures_for_update: statement(format!(
                "SELECT consecutive FROM {failures} WHERE account = ? FOR UPDATE"
            )),
            marked: statement(format!(
                "SELECT COUNT(*) FROM {meta} WHERE `key` = 'initialised'"
            )),
            // A locking read: the record can't change until the commit.
            book_version_shared: statement(format!(
                "SELECT version FROM {books} WHERE account = ? LOCK IN SHARE MODE"
            )),
            claims,
        }
    }

    /// `INSERT … ON DUPLICATE KEY UPDATE account = account` of `n` keys
    /// (binds: key, account, key, account, …): inserts the keys nobody
    /// holds, and locks every one.
    fn lock_claims(&self, n: usize) -> SqlStr {
        let rows = vec!["(?, ?)"; n].join(", ");
        statement(format!(
            "INSERT INTO {} (`key`, account) VALUES {rows} \
             ON DUPLICATE KEY UPDATE account = account",
            self.claims
        ))
    }

    /// The holders of `n` keys (binds: the keys). A plain read, which
    /// takes no lock: the commit already holds every one of these rows
    /// locked, and a locking read could lock more rows than it returns
    /// (when the optimizer scans the table), out of order.
    fn claim_holders(&self, n: usize) -> SqlStr {
        statement(format!(
            "SELECT `key`, account FROM {} WHERE `key` IN ({})",
            self.claims,
            placeholders(n)
        ))
    }

    /// Inserts `n` keys for one account (binds: key, account, …).
    fn insert_claims(&self, n: usize) -> SqlStr {
        let rows = vec!["(?, ?)"; n].join(", ");
        statement(format!(
            "INSERT INTO {} (`key`, account) VALUES {rows}",
            self.claims
        ))
    }
}

/// `n` comma-separated placeholders.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl fmt::Debug for MySqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlStore")
            .field("database", &self.database)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// Whether a MySQL or MariaDB error number means "the server is busy,
/// overloaded, shutting down or timed out; retry later": too many
/// connections (1040, 1203), out of memory or resources (1037, 1038, 1041),
/// a shutdown (1053, 1077, 1079, 1152), network read and write errors
/// (1158–1161), a user resource limit (1226), a lock wait timeout (1205), a
/// deadlock that outlived the retries (1213), an interrupted or timed-out
/// statement (1317, MariaDB's 1969, MySQL's 3024), a killed connection
/// (MariaDB's 1927) and an idle connection dropped by the server (4031).
fn transient(number: u16) -> bool {
    matches!(
        number,
        1037 | 1038 | 1040 | 1041 | 1053 | 1077 | 1079 | 1152 | 1158
            ..=1161 | 1203 | 1205 | 1213 | 1226 | 1317 | 1927 | 1969 | 3024 | 4031
    )
}

/// The server's error number, when `err` is a MySQL or MariaDB error.
fn error_number(err: &sqlx::Error) -> Option<u16> {
    match err {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// Error 1213: InnoDB rolled the whole transaction back to break a
/// deadlock; running it again is safe.
fn is_deadlock(err: &sqlx::Error) -> bool {
    error_number(err) == Some(1213)
}

/// Maps a sqlx error to a [`StoreError`], keeping it as the source.
///
/// Pool timeouts, a closed pool, I/O and TLS failures and the server
/// errors [`transient`] lists read as [`StoreError::unavailable`]; a
/// duplicate key (1062) reads as a conflict when `duplicate_is_conflict`;
/// everything else is [`StoreError::other`].
fn map_err(err: sqlx::Error, duplicate_is_conflict: bool) -> StoreError {
    match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(err),
        sqlx::Error::Database(db) => {
            let number = error_number(&err);
            if duplicate_is_conflict && (number == Some(1062) || db.is_unique_violation()) {
                StoreError::conflict()
            } else if number.is_some_and(transient) {
                StoreError::unavailable(err)
            } else {
                StoreError::other(err)
            }
        }
        _ => StoreError::other(err),
    }
}

/// How one attempt of a write failed: InnoDB chose it as a deadlock victim
/// (run it again), or the call's own error.
enum Fail {
    Deadlock(sqlx::Error),
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// Sorts a sqlx error into [`Fail`]: a deadlock to retry, or (through
/// [`map_err`]) the call's error.
fn fail(duplicate_is_conflict: bool) -> impl Fn(sqlx::Error) -> Fail {
    move |err| {
        if is_deadlock(&err) {
            Fail::Deadlock(err)
        } else {
            Fail::Store(map_err(err, duplicate_is_conflict))
        }
    }
}

/// Runs `attempt` until it does not end in a deadlock, at most
/// [`DEADLOCK_ATTEMPTS`] times; a deadlock on the last one is
/// [`StoreError::unavailable`].
///
/// Only for attempts that a deadlock undoes whole: one statement, or one
/// transaction that is rolled back on every error.
async fn retry<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    let mut last = None;
    for _ in 0..DEADLOCK_ATTEMPTS {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Fail::Store(err)) => return Err(err),
            Err(Fail::Deadlock(err)) => last = Some(err),
        }
    }
    Err(match last {
        Some(err) => StoreError::unavailable(err),
        None => StoreError::unavailable("no attempt was made"),
    })
}

/// An instant as microseconds since the epoch, truncated towards the past
/// (every `OffsetDateTime` fits an `i64` of microseconds).
fn micros(at: OffsetDateTime) -> i64 {
    let m = at.unix_timestamp_nanos().div_euclid(1_000);
    i64::try_from(m).unwrap_or(if m < 0 { i64::MIN } else { i64::MAX })
}

/// The inverse of [`micros`], in UTC.
fn from_micros(m: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1_000).map_err(StoreError::other)
}

/// `value`'s bytes, if it fits a key column of `max` bytes; otherwise a
/// permanent error naming `what`, before anything is sent.
fn key_bytes<'a>(what: &str, value: &'a str, max: usize) -> Result<&'a [u8], StoreError> {
    if value.len() > max {
        return Err(StoreError::other(format!(
            "{what} of {} bytes is longer than the {max} bytes the MySQL store keeps",
            value.len()
        )));
    }
    Ok(value.as_bytes())
}

/// An account id as its key column's bytes.
fn account_key(account: &str) -> Result<&[u8], StoreError> {
    key_bytes("account id", account, MAX_ACCOUNT)
}

/// Text read back from a `VARBINARY` key column.
fn text(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(StoreError::other)
}

impl MySqlStore {
    /// A store over `pool`, with its tables in the connections' default
    /// database (the one the connection URL names).
    ///
    /// Nothing is sent to the server until the first call; call
    /// [`migrate`](Self::migrate) at start-up to create the tables.
    #[must_use]
    pub fn new(pool: MySqlPool) -> Self {
        Self {
            pool,
            database: None,
            sql: Arc::new(Statements::new("")),
        }
    }

    /// A store over `pool`, with its tables in `database` (created by
    /// [`migrate`](Self::migrate) if missing), whatever the connections'
    /// default database. Useful to keep ninsho's tables apart, or to give
    /// each test run its own.
    ///
    /// The name is used exactly as given, quoted.
    ///
    /// # Errors
    /// A [`StoreErrorKind::Other`](super::StoreErrorKind::Other) error when
    /// `database` is empty, longer than 64 bytes, or holds anything but
    /// ASCII letters, digits and underscores.
    ///
    /// # Example
    ///
    /// ```
    /// use ninsho::store::MySqlStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // A lazy pool: nothing is sent until the first call.
    /// let pool = sqlx::mysql::MySqlPoolOptions::new()
    ///     .connect_lazy("mysql://app@db.internal/app")
    ///     .unwrap();
    /// let store = MySqlStore::with_database(pool.clone(), "ninsho").unwrap();
    /// assert_eq!(store.database(), Some("ninsho"));
    /// assert!(MySqlStore::with_database(pool, "no-dashes").is_err());
    /// # }
    /// ```
    pub fn with_database(pool: MySqlPool, database: &str) -> Result<Self, StoreError> {
        let valid = !database.is_empty()
            && database.len() <= MAX_IDENTIFIER
            && database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(StoreError::other(format!(
                "invalid database name {database:?}: use 1 to {MAX_IDENTIFIER} ASCII letters, digits and underscores"
            )));
        }
        Ok(Self {
            pool,
            database: Some(Arc::from(database)),
            sql: Arc::new(Statements::new(&format!("{}.", quote(database)))),
        })
    }

    /// The pool the store uses.
    #[must_use]
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// The database holding the store's tables, when the store names one
    /// ([`with_database`](Self::with_database)); `None` for the
    /// connections' default database ([`new`](Self::new)).
    #[must_use]
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// Creates the database (if the store names one and it is missing) and
    /// applies the shipped migrations not yet applied, recording each in
    /// `ninsho_schema_version`.
    ///
    /// This is the call hosts make at start-up, before serving. It is
    /// idempotent and safe to run from several instances at once: it holds
    /// a named lock (`GET_LOCK`, one per database) while it checks and
    /// applies, so concurrent callers apply each migration exactly once;
    /// the others wait for it, up to 60 seconds. MySQL commits each
    /// `CREATE TABLE` on its own, so a migration is not one transaction:
    /// every statement of the shipped SQL is idempotent instead, and a
    /// migration interrupted half-way is completed by the next `migrate`.
    /// Creating a missing database needs the `CREATE` privilege; an
    /// existing one is only used.
    ///
    /// The work runs on a connection of the pool that is closed afterwards
    /// rather than returned (it changed its default database), so the lock
    /// can never outlive the call.
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable)
    /// when the server can't be reached, or another instance held the
    /// migration lock for 60 seconds; other backend failures (a missing
    /// privilege, no database named by the store or the connection URL) as
    /// [`StoreErrorKind::Other`](super::StoreErrorKind::Other).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn start(pool: sqlx::MySqlPool) -> Result<(), ninsho::store::StoreError> {
    /// use ninsho::store::MySqlStore;
    ///
    /// let store = MySqlStore::with_database(pool, "ninsho")?;
    /// store.migrate().await?;
    /// store.migrate().await?; // a no-op the second time
    /// # Ok(())
    /// # }
    /// ```
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let err = |e| map_err(e, false);
        let mut conn = self.pool.acquire().await.map_err(err)?;
        conn.close_on_drop();
        let result = self.migrate_on(&mut conn).await;
        let closed = conn.close().await.map_err(err);
        result.and(closed)
    }

    /// Writes the initialisation marker (the row `initialised` of
    /// `ninsho_meta`), so that [`load`](StepStore::load) and
    /// [`account_record`](AccountStore::account_record) answer (see
    /// [Initialisation](#initialisation)). Run [`migrate`](Self::migrate)
    /// first.
    ///
    /// A deliberate act, made once when the store is first deployed, and
    /// again only after an operator has dealt with a data loss: restored
    /// the data, or accepted that the accounts' records are gone (every
    /// account then reads as new, with two-step sign-in off). **Never call
    /// it on every start**: a database that came back empty would be
    /// marked as fine and the loss would go unnoticed. Calling it on a
    /// store that has the marker changes nothing.
    ///
    /// # Errors
    /// [`StoreErrorKind::Other`](super::StoreErrorKind::Other) when the
    /// tables are missing (not migrated); backend failures otherwise.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn deploy(pool: sqlx::MySqlPool) -> Result<(), ninsho::store::StoreError> {
    /// use ninsho::store::MySqlStore;
    ///
    /// // A one-off deploy step, not the service's start-up:
    /// let store = MySqlStore::with_database(pool, "ninsho")?;
    /// store.migrate().await?;
    /// store.initialise().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn initialise(&self) -> Result<(), StoreError> {
        self.write(false, || sqlx::query(self.sql.initialise.clone()))
            .await?;
        Ok(())
    }

    /// [`migrate`](Self::migrate)'s work on one connection of its own.
    async fn migrate_on(&self, conn: &mut MySqlConnection) -> Result<(), StoreError> {
        let err = |e| map_err(e, false);
        let database = match &self.database {
            Some(name) => name.to_string(),
            None => {
                let current: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(err)?;
                current.ok_or_else(|| {
                    StoreError::other(
                        "no database to migrate: name one in the connection URL, \
                         or use MySqlStore::with_database",
                    )
                })?
            }
        };

        let lock = migration_lock(&database);
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
            .bind(&lock)
            .bind(MIGRATION_LOCK_WAIT)
            .fetch_one(&mut *conn)
            .await
            .map_err(err)?;
        if got != Some(1) {
            return Err(StoreError::unavailable(format!(
                "another instance held the migration lock of database {database:?} \
                 for {MIGRATION_LOCK_WAIT} s"
            )));
        }

        if self.database.is_some() {
            let exists: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            )
            .bind(&database)
            .fetch_one(&mut *conn)
            .await
            .map_err(err)?;
            if exists == 0 {
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "CREATE DATABASE IF NOT EXISTS {} \
                     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                    quote(&database)
                )))
                .execute(&mut *conn)
                .await
                .map_err(err)?;
            }
            // The migration files use unqualified names.
            sqlx::raw_sql(AssertSqlSafe(format!("USE {}", quote(&database))))
                .execute(&mut *conn)
                .await
                .map_err(err)?;
        }

        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS ninsho_schema_version (\
             version BIGINT NOT NULL PRIMARY KEY, \
             applied_at DATETIME(6) NOT NULL\
             ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
        )
        .execute(&mut *conn)
        .await
        .map_err(err)?;

        for &(version, sql) in MIGRATIONS {
            let applied: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM ninsho_schema_version WHERE version = ?")
                    .bind(version)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(err)?;
            if applied > 0 {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *conn).await.map_err(err)?;
            sqlx::query(
                "INSERT INTO ninsho_schema_version (version, applied_at) \
                 VALUES (?, UTC_TIMESTAMP(6))",
            )
            .bind(version)
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        }

        sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&lock)
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// The `GET_LOCK` name guarding `database`'s migrations: 128 bits of
/// SHA-256 of the name, in hex (lock names are limited to 64 characters).
fn migration_lock(database: &str) -> String {
    let digest = Sha256::digest(format!("ninsho migrate\0{database}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("ninsho-migrate-{hex}")
}

/// The quoted identifier; `name` holds only ASCII letters, digits and
/// underscores, so wrapping it in backticks is enough.
fn quote(name: &str) -> String {
    format!("`{name}`")
}

/// The reads and writes that challenges and combined verifications share,
/// each kind on its own table through its own statements (account records
/// are read the same way too).
impl MySqlStore {
    /// The record that `sql` selects (`version, record`) by `key`.
    async fn fetch_record<T: Versioned>(
        &self,
        sql: &SqlStr,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let row: Option<(i64, String)> = sqlx::query_as(sql.clone())
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| map_err(e, false))?;
        row.map(|(version, json)| decode_record(&json, version))
            .transpose()
    }

    /// Runs the write `query` builds, again after a deadlock; `duplicate`
    /// says whether a duplicate key is a conflict.
    async fn write<F>(&self, duplicate: bool, query: F) -> Result<MySqlQueryResult, StoreError>
    where
        F: Fn() -> sqlx::query::Query<'static, MySql, sqlx::mysql::MySqlArguments>,
    {
        retry(|| async { query().execute(&self.pool).await.map_err(fail(duplicate)) }).await
    }

    /// Inserts `record` with `sql` (`INSERT`); a duplicate key → conflict.
    async fn insert_record<T: IdRecord>(&self, sql: &SqlStr, record: &T) -> Result<(), StoreError> {
        let json = encode_record(record)?;
        let (id, version, expires) = (
            record.key(),
            version_to_sql(record.version()),
            micros(record.expires_at()),
        );
        let done = self
            .write(true, || {
                sqlx::query(sql.clone())
                    .bind(id.as_bytes())
                    .bind(version)
                    .bind(expires)
                    .bind(&json)
            })
            .await?;
        applied(done.rows_affected())
    }

    /// Replaces the stored record with `record` with `sql` (`UPDATE … WHERE
    /// id = ? AND version = ?`); no row matched → conflict.
    async fn replace_record<T: IdRecord>(
        &self,
        sql: &SqlStr,
        record: &T,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let json = encode_record(record)?;
        let (id, version, expires) = (
            record.key(),
            version_to_sql(record.version()),
            micros(record.expires_at()),
        );
        let done = self
            .write(false, || {
                sqlx::query(sql.clone())
                    .bind(version)
                    .bind(expires)
                    .bind(&json)
                    .bind(id.as_bytes())
                    .bind(version_to_sql(expected_version))
            })
            .await?;
        applied(done.rows_affected())
    }
}

#[async_trait]
impl ChallengeStore for MySqlStore {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.insert_record(&self.sql.insert, record).await
    }

    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        self.fetch_record(&self.sql.select, id.to_string().as_bytes())
            .await
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

impl MySqlStore {
    /// Charges one hit to counter `key` inside the transaction on `conn`:
    /// the upsert, then the read back of the row it now holds locked.
    /// Returns the count and the window's end (microseconds).
    async fn charge(
        &self,
        conn: &mut MySqlConnection,
        key: &[u8],
        now: i64,
        resets: i64,
    ) -> Result<(i64, i64), Fail> {
        sqlx::query(self.sql.hit.clone())
            .bind(key)
            .bind(resets)
            .bind(now)
            .bind(now)
            .bind(resets)
            .execute(&mut *conn)
            .await
            .map_err(fail(false))?;
        sqlx::query_as(self.sql.read_counter.clone())
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .map_err(fail(false))
    }

    /// One attempt of [`hit`](LimitStore::hit), in one transaction.
    async fn hit_once(&self, key: &[u8], now: i64, resets: i64) -> Result<(i64, i64), Fail> {
        let mut tx = self.pool.begin().await.map_err(fail(false))?;
        let row = self.charge(&mut tx, key, now, resets).await?;
        tx.commit().await.map_err(fail(false))?;
        Ok(row)
    }
}

#[async_trait]
impl LimitStore for MySqlStore {
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        let key = key_bytes("counter key", key, MAX_COUNTER_KEY)?;
        let (now, resets) = (micros(now), micros(now.saturating_add(window)));
        let (count, resets_at) = retry(|| self.hit_once(key, now, resets)).await?;
        Ok(WindowCount {
            count: count_from_sql(count)?,
            resets_at: from_micros(resets_at)?,
        })
    }

    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        let id = account_key(&account.0)?;
        let done = match (expected, next) {
            (None, None) => {
                return match self.failures(account).await? {
                    None => Ok(()),
                    Some(_) => Err(StoreError::conflict()),
                };
            }
            (None, Some(run)) => {
                self.write(true, || {
                    sqlx::query(self.sql.insert_failures.clone())
                        .bind(id)
                        .bind(i64::from(run.consecutive))
                        .bind(micros(run.last_failure_at))
                })
                .await?
            }
            (Some(old), Some(run)) => {
                self.write(false, || {
                    sqlx::query(self.sql.update_failures.clone())
                        .bind(i64::from(run.consecutive))
                        .bind(micros(run.last_failure_at))
                        .bind(id)
                        .bind(i64::from(old.consecutive))
                        .bind(micros(old.last_failure_at))
                })
                .await?
            }
            (Some(old), None) => {
                self.write(false, || {
                    sqlx::query(self.sql.delete_failures.clone())
                        .bind(id)
                        .bind(i64::from(old.consecutive))
                        .bind(micros(old.last_failure_at))
                })
                .await?
            }
        };
        applied(done.rows_affected())
    }

    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        let id = account_key(&account.0)?;
        let row: Option<(i64, i64)> = sqlx::query_as(self.sql.failures.clone())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| map_err(e, false))?;
        row.map(|(consecutive, last_failure_at)| {
            Ok(FailureRecord {
                consecutive: consecutive_from_sql(consecutive)?,
                last_failure_at: from_micros(last_failure_at)?,
            })
        })
        .transpose()
    }

    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        let id = account_key(&account.0)?;
        self.write(false, || {
            sqlx::query(self.sql.clear_failures.clone()).bind(id)
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl DeviceStore for MySqlStore {
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        let account = account_key(&record.account.0)?;
        let json = encode_record(record)?;
        let id = record.id.to_string();
        let done = self
            .write(true, || {
                sqlx::query(self.sql.insert_device.clone())
                    .bind(account)
                    .bind(id.as_bytes())
                    .bind(version_to_sql(record.version))
                    .bind(micros(record.expires_at))
                    .bind(&json)
            })
            .await?;
        applied(done.rows_affected())
    }

    async fn device(
        &self,
        account: &AccountId,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let account = account_key(&account.0)?;
        let row: Option<(i64, String)> = sqlx::query_as(self.sql.device.clone())
            .bind(account)
            .bind(id.to_string().into_bytes())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| map_err(e, false))?;
        row.map(|(version, json)| decode_record(&json, version))
            .transpose()
    }

    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        let account = account_key(&account.0)?;
        let rows: Vec<(i64, String)> = sqlx::query_as(self.sql.devices.clone())
            .bind(account)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_err(e, false))?;
        rows.iter()
            .map(|(version, json)| decode_record(json, *version))
            .collect()
    }

    async fn replace_device(
        &self,
        record: &DeviceRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let account = account_key(&record.account.0)?;
        let json = encode_record(record)?;
        let id = record.id.to_string();
        let done = self
            .write(false, || {
                sqlx::query(self.sql.replace_device.clone())
                    .bind(version_to_sql(record.version))
                    .bind(micros(record.expires_at))
                    .bind(&json)
                    .bind(account)
                    .bind(id.as_bytes())
                    .bind(version_to_sql(expected_version))
            })
            .await?;
        applied(done.rows_affected())
    }

    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError> {
        let account = account_key(&account.0)?;
        let id = id.to_string();
        let done = self
            .write(false, || {
                sqlx::query(self.sql.delete_device.clone())
                    .bind(account)
                    .bind(id.as_bytes())
            })
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        let account = account_key(&account.0)?;
        let done = self
            .write(false, || {
                sqlx::query(self.sql.delete_devices.clone()).bind(account)
            })
            .await?;
        Ok(done.rows_affected())
    }
}

/// How writing an account record (with its claims) inside a transaction
/// ended; on anything but `Written` the caller rolls back.
enum RecordOutcome {
    Written,
    /// The record's version differed (or a first record found one).
    Conflict,
    /// `claims.claim[index]` is held by another account.
    Taken(usize),
}

/// Checks that an account id and every claim key of `changes` fit their
/// columns (before any statement runs).
fn check_record_keys<'a>(
    account: &'a AccountId,
    changes: &ClaimChanges,
) -> Result<&'a [u8], StoreError> {
    let account = account_key(&account.0)?;
    for key in changes.claim.iter().chain(&changes.release) {
        key_bytes("claim key", key, MAX_CLAIM_KEY)?;
    }
    Ok(account)
}

impl MySqlStore {
    /// Writes `book` and its claim `changes` inside the transaction on
    /// `conn`, in the order the [type docs](MySqlStore#contact-claims)
    /// give: the record's compare-and-set, every key locked in byte order,
    /// the holders read, the releases, the claims. The caller checked the
    /// keys' lengths and rolls back unless this returns `Written`.
    async fn write_record(
        &self,
        conn: &mut MySqlConnection,
        book: &AccountRecord,
        json: &str,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<RecordOutcome, Fail> {
        let account = book.account.0.as_bytes();
        let claim = distinct(&changes.claim);
        let release = distinct(&changes.release);
        // Every key touched, in ascending byte order: the order every
        // commit locks them in.
        let mut touched: Vec<&str> = claim.iter().chain(&release).copied().collect();
        touched.sort_unstable();
        touched.dedup();

        // 1. The record, compare-and-set; its row stays locked.
        let written = match expected_version {
            None => sqlx::query(self.sql.insert_book.clone())
                .bind(account)
                .bind(version_to_sql(book.version))
                .bind(json)
                .execute(&mut *conn)
                .await
                .map_err(fail(true))?,
            Some(expected) => sqlx::query(self.sql.update_book.clone())
                .bind(version_to_sql(book.version))
                .bind(json)
                .bind(account)
                .bind(version_to_sql(expected))
                .execute(&mut *conn)
                .await
                .map_err(fail(false))?,
        };
        if written.rows_affected() == 0 {
            return Ok(RecordOutcome::Conflict);
        }

        // 2. Every key, locked in order (inserted for the account when
        //    nobody holds it).
        if !touched.is_empty() {
            let mut lock = sqlx::query(self.sql.lock_claims(touched.len()));
            for key in &touched {
                lock = lock.bind(key.as_bytes()).bind(account);
            }
            lock.execute(&mut *conn).await.map_err(fail(false))?;
        }

        // 3. Who holds the keys to claim.
        if !claim.is_empty() {
            let mut read =
                sqlx::query_as::<_, (Vec<u8>, Vec<u8>)>(self.sql.claim_holders(claim.len()));
            for key in &claim {
                read = read.bind(key.as_bytes());
            }
            let rows = read.fetch_all(&mut *conn).await.map_err(fail(false))?;
            let holders = rows
                .into_iter()
                .map(|(key, owner)| Ok((text(key)?, text(owner)?)))
                .collect::<Result<Vec<(String, String)>, StoreError>>()?;
            if let Some(index) = first_taken(&changes.claim, &holders, &book.account.0) {
                return Ok(RecordOutcome::Taken(index));
            }
        }

        // 4. Release what the account holds (and the rows step 2 inserted
        //    only to lock a released key), then claim again any key that
        //    was both released and claimed.
        if !release.is_empty() {
            // One key per statement: a primary-key lookup locks that row
            // only, where an `IN` list might be run as a scan that locks
            // every row it reads.
            for key in &release {
                sqlx::query(self.sql.release_claim.clone())
                    .bind(key.as_bytes())
                    .bind(account)
                    .execute(&mut *conn)
                    .await
                    .map_err(fail(false))?;
            }
            let again: Vec<&str> = claim
                .iter()
                .copied()
                .filter(|key| release.contains(key))
                .collect();
            if !again.is_empty() {
                let mut insert = sqlx::query(self.sql.insert_claims(again.len()));
                for key in &again {
                    insert = insert.bind(key.as_bytes()).bind(account);
                }
                insert.execute(&mut *conn).await.map_err(fail(false))?;
            }
        }
        Ok(RecordOutcome::Written)
    }

    /// One attempt of [`commit_account`](AccountStore::commit_account), in
    /// one transaction; rolled back on every outcome but success (an error
    /// drops the transaction, which sqlx rolls back). `Ok(None)` is a
    /// conflict.
    async fn commit_once(
        &self,
        book: &AccountRecord,
        json: &str,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<Option<AccountCommit>, Fail> {
        let mut tx = self.pool.begin().await.map_err(fail(false))?;
        let outcome = self
            .write_record(&mut tx, book, json, expected_version, changes)
            .await?;
        let done = match outcome {
            RecordOutcome::Written => {
                tx.commit().await.map_err(fail(false))?;
                return Ok(Some(AccountCommit::Committed));
            }
            RecordOutcome::Conflict => None,
            RecordOutcome::Taken(index) => Some(AccountCommit::Taken { index }),
        };
        tx.rollback().await.map_err(fail(false))?;
        Ok(done)
    }

    /// One attempt of [`delete_account`](AccountStore::delete_account).
    async fn delete_account_once(&self, account: &[u8]) -> Result<(), Fail> {
        let mut tx = self.pool.begin().await.map_err(fail(false))?;
        // The record first: a commit in flight for the account holds its
        // row, so this waits for it, and the claims are then read with the
        // locks of the delete (the latest committed rows).
        sqlx::query(self.sql.delete_book.clone())
            .bind(account)
            .execute(&mut *tx)
            .await
            .map_err(fail(false))?;
        sqlx::query(self.sql.delete_claims.clone())
            .bind(account)
            .execute(&mut *tx)
            .await
            .map_err(fail(false))?;
        tx.commit().await.map_err(fail(false))
    }
}

#[async_trait]
impl AccountStore for MySqlStore {
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        // Through `load`: the same one statement checks the marker.
        Ok(self.load(&Load::account(account)).await?.record)
    }

    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        let key = key_bytes("claim key", key, MAX_CLAIM_KEY)?;
        // The marker in the same statement: a wiped store must not answer
        // "nobody holds this contact".
        let (initialised, owner): (i64, Option<Vec<u8>>) =
            sqlx::query_as(self.sql.claim_owner.clone())
                .bind(key)
                .fetch_one(&self.pool)
                .await
                .map_err(load_err)?;
        if initialised == 0 {
            return Err(StoreError::not_initialised());
        }
        owner.map(|owner| text(owner).map(AccountId)).transpose()
    }

    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        check_record_keys(&book.account, changes)?;
        let json = encode_record(book)?;
        retry(|| self.commit_once(book, &json, expected_version, changes))
            .await?
            .ok_or_else(StoreError::conflict)
    }

    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        let account = account_key(&account.0)?;
        retry(|| self.delete_account_once(account)).await
    }
}

/// A journey step's parts, checked and encoded once before the attempts of
/// [`StepStore::commit`].
struct StepParts<'c> {
    /// Each hit's key bytes, its `now` and its new window's end
    /// (microseconds).
    hits: Vec<(&'c [u8], i64, i64)>,
    /// The challenge's id and JSON.
    challenge: Option<(String, String)>,
    /// The device's id and JSON.
    device: Option<(String, String)>,
    /// The account record's JSON.
    record: Option<String>,
}

impl MySqlStore {
    /// One attempt of [`StepStore::commit`], in one transaction, in the
    /// order of its docs: the hits, then each conditional write (failure
    /// run, challenge, device, account record and claims), the first that
    /// fails rolling everything back. `Ok(None)` is a conflict.
    async fn step_once(
        &self,
        commit: &Commit<'_>,
        parts: &StepParts<'_>,
    ) -> Result<Option<Committed>, Fail> {
        let mut tx = self.pool.begin().await.map_err(fail(false))?;

        // 0. The marker: nothing is written into a store that lost it.
        let marked: i64 = sqlx::query_scalar(self.sql.marked.clone())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| Fail::Store(load_err(e)))?;
        if marked == 0 {
            tx.rollback().await.map_err(fail(false))?;
            return Err(Fail::Store(StoreError::not_initialised()));
        }

        // 1. The hits, in order; one past its max commits the hits so far
        //    and nothing else.
        for (index, &(key, now, resets)) in parts.hits.iter().enumerate() {
            let (count, resets_at) = self.charge(&mut tx, key, now, resets).await?;
            let count = WindowCount {
                count: count_from_sql(count)?,
                resets_at: from_micros(resets_at)?,
            };
            if commit
                .hits
                .get(index)
                .is_some_and(|hit| count.count > hit.max)
            {
                tx.commit().await.map_err(fail(false))?;
                return Ok(Some(Committed::LimitReached { index, count }));
            }
        }

        // 2. and 3. Each condition, checked by the statement that writes
        //    it; any that fails rolls the whole transaction back.
        if !self.step_writes(&mut tx, commit, parts).await?
            || !self.record_unchanged(&mut tx, commit).await?
        {
            tx.rollback().await.map_err(fail(false))?;
            return Ok(None);
        }
        if let (Some(write), Some(json)) = (commit.record, &parts.record) {
            let outcome = self
                .write_record(
                    &mut tx,
                    write.record,
                    json,
                    write.expected_version,
                    write.claims,
                )
                .await?;
            match outcome {
                RecordOutcome::Written => {}
                RecordOutcome::Conflict => {
                    tx.rollback().await.map_err(fail(false))?;
                    return Ok(None);
                }
                RecordOutcome::Taken(index) => {
                    tx.rollback().await.map_err(fail(false))?;
                    return Ok(Some(Committed::Taken { index }));
                }
            }
        }
        tx.commit().await.map_err(fail(false))?;
        Ok(Some(Committed::Done))
    }

    /// Whether the record a step was decided on ([`Commit::record_check`])
    /// is still at the version read, by a locking read that keeps it so
    /// until the transaction ends; `true` when there is nothing to check.
    async fn record_unchanged(
        &self,
        conn: &mut MySqlConnection,
        commit: &Commit<'_>,
    ) -> Result<bool, Fail> {
        let Some(check) = commit.record_check.filter(|_| commit.record.is_none()) else {
            return Ok(true);
        };
        let version: Option<i64> = sqlx::query_scalar(self.sql.book_version_shared.clone())
            .bind(account_key(&check.account.0)?)
            .fetch_optional(&mut *conn)
            .await
            .map_err(fail(false))?;
        Ok(version == check.version.map(version_to_sql))
    }

    /// The failure run, challenge and device writes of a step, inside the
    /// transaction on `conn`; `false` when one's condition failed.
    async fn step_writes(
        &self,
        conn: &mut MySqlConnection,
        commit: &Commit<'_>,
        parts: &StepParts<'_>,
    ) -> Result<bool, Fail> {
        if let Some(change) = commit.failures {
            let account = change.account.0.as_bytes();
            let rows = match (change.expected, change.next) {
                // No run expected and none left: the row must be absent,
                // checked with a locking read (which, under REPEATABLE
                // READ, also keeps one from being inserted until the
                // commit).
                (None, None) => {
                    let found: Vec<i64> = sqlx::query_scalar(self.sql.failures_for_update.clone())
                        .bind(account)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(fail(false))?;
                    u64::from(found.is_empty())
                }
                (None, Some(run)) => sqlx::query(self.sql.insert_failures.clone())
                    .bind(account)
                    .bind(i64::from(run.consecutive))
                    .bind(micros(run.last_failure_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(fail(true))?
                    .rows_affected(),
                (Some(old), Some(run)) => sqlx::query(self.sql.update_failures.clone())
                    .bind(i64::from(run.consecutive))
                    .bind(micros(run.last_failure_at))
                    .bind(account)
                    .bind(i64::from(old.consecutive))
                    .bind(micros(old.last_failure_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(fail(false))?
                    .rows_affected(),
                (Some(old), None) => sqlx::query(self.sql.delete_failures.clone())
                    .bind(account)
                    .bind(i64::from(old.consecutive))
                    .bind(micros(old.last_failure_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(fail(false))?
                    .rows_affected(),
            };
            if rows == 0 {
                return Ok(false);
            }
        }
        if let (Some(write), Some((id, json))) = (commit.challenge, &parts.challenge) {
            let record = write.record();
            let rows = match write {
                ChallengeWrite::Insert(_) => sqlx::query(self.sql.insert.clone())
                    .bind(id.as_bytes())
                    .bind(version_to_sql(record.version))
                    .bind(micros(record.expires_at))
                    .bind(json)
                    .execute(&mut *conn)
                    .await
                    .map_err(fail(true))?,
                ChallengeWrite::Replace {
                    expected_version, ..
                } => sqlx::query(self.sql.replace.clone())
                    .bind(version_to_sql(record.version))
                    .bind(micros(record.expires_at))
                    .bind(json)
                    .bind(id.as_bytes())
                    .bind(version_to_sql(expected_version))
                    .execute(&mut *conn)
                    .await
                    .map_err(fail(false))?,
            }
            .rows_affected();
            if rows == 0 {
                return Ok(false);
            }
        }
        if let (Some(device), Some((id, json))) = (commit.device, &parts.device) {
            let rows = sqlx::query(self.sql.insert_device.clone())
                .bind(device.account.0.as_bytes())
                .bind(id.as_bytes())
                .bind(version_to_sql(device.version))
                .bind(micros(device.expires_at))
                .bind(json)
                .execute(&mut *conn)
                .await
                .map_err(fail(true))?
                .rows_affected();
            if rows == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A `load` failure: a missing table means the store was never migrated
/// or lost its tables, which reads as
/// [`StoreErrorKind::NotInitialised`](super::StoreErrorKind::NotInitialised);
/// the rest as [`map_err`].
fn load_err(err: sqlx::Error) -> StoreError {
    // ER_NO_SUCH_TABLE, ER_BAD_DB_ERROR.
    if matches!(error_number(&err), Some(1146 | 1049)) {
        StoreError::not_initialised()
    } else {
        map_err(err, false)
    }
}

#[async_trait]
impl StepStore for MySqlStore {
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        let account = load.account.map(|a| account_key(&a.0)).transpose()?;
        let challenge = load.challenge.map(ToString::to_string);
        let device = load
            .device
            .filter(|_| account.is_some())
            .map(ToString::to_string);
        type Row = (i64, i64, Option<i64>, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(self.sql.load.clone())
            .bind(account)
            .bind(account)
            .bind(challenge.as_deref().map(str::as_bytes))
            .bind(account)
            .bind(device.as_deref().map(str::as_bytes))
            .fetch_all(&self.pool)
            .await
            .map_err(load_err)?;
        let mut loaded = Loaded::default();
        let mut marked = false;
        for (part, number, at, record) in rows {
            let json = || {
                record
                    .as_deref()
                    .ok_or_else(|| StoreError::other("a part without its record"))
            };
            match part {
                0 => marked = number > 0,
                1 => loaded.record = Some(decode_record(json()?, number)?),
                2 => {
                    loaded.failures = Some(FailureRecord {
                        consecutive: consecutive_from_sql(number)?,
                        last_failure_at: from_micros(
                            at.ok_or_else(|| StoreError::other("a failure run without its time"))?,
                        )?,
                    });
                }
                3 => loaded.challenge = Some(decode_record(json()?, number)?),
                4 => loaded.device = Some(decode_record(json()?, number)?),
                _ => {
                    return Err(StoreError::other(format!(
                        "an unknown part {part} in a load"
                    )));
                }
            }
        }
        if !marked {
            return Err(StoreError::not_initialised());
        }
        Ok(loaded)
    }

    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        // Every key checked and every record encoded before anything runs.
        let hits = commit
            .hits
            .iter()
            .map(|hit| {
                Ok((
                    key_bytes("counter key", &hit.key, MAX_COUNTER_KEY)?,
                    micros(now),
                    micros(now.saturating_add(hit.window)),
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if let Some(change) = commit.failures {
            account_key(&change.account.0)?;
        }
        if let Some(device) = commit.device {
            account_key(&device.account.0)?;
        }
        if let Some(write) = commit.record {
            check_record_keys(&write.record.account, write.claims)?;
        }
        if let Some(check) = commit.record_check {
            account_key(&check.account.0)?;
        }
        let parts = StepParts {
            hits,
            challenge: commit
                .challenge
                .map(|write| {
                    let record = write.record();
                    Ok::<_, StoreError>((record.key(), encode_record(record)?))
                })
                .transpose()?,
            device: commit
                .device
                .map(|device| Ok::<_, StoreError>((device.id.to_string(), encode_record(device)?)))
                .transpose()?,
            record: commit
                .record
                .map(|write| encode_record(write.record))
                .transpose()?,
        };
        retry(|| self.step_once(commit, &parts))
            .await?
            .ok_or_else(StoreError::conflict)
    }
}

#[async_trait]
impl VerificationStore for MySqlStore {
    async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError> {
        self.insert_record(&self.sql.insert_verification, record)
            .await
    }

    async fn verification(
        &self,
        id: &VerificationId,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        self.fetch_record(&self.sql.verification, id.to_string().as_bytes())
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

#[async_trait]
impl PurgeStore for MySqlStore {
    /// Four statements, each committed on its own: a long purge never
    /// holds locks on more than one table, and one that failed part-way
    /// simply runs again.
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError> {
        let cut = micros(before);
        let mut counts = [0u64; 4];
        for (sql, count) in self.sql.purge.iter().zip(&mut counts) {
            *count = self
                .write(false, || sqlx::query(sql.clone()).bind(cut))
                .await?
                .rows_affected();
        }
        Ok(Purged::from_counts(counts))
    }
}
