//! What the SQL adapters share: error mapping (PostgreSQL and SQLite; the
//! MySQL adapter reads MySQL's error numbers itself), record
//! (de)serialisation and the integer conversions between Rust's unsigned
//! fields and SQL's signed `BIGINT`.
//!
//! Two kinds of integers cross that border, on purpose handled differently:
//!
//! - **versions** (challenges, recovery sets, devices, account records,
//!   verifications) are only ever compared for equality, so their 64 bits
//!   are stored as they are ([`version_to_sql`]); every `u64` round-trips;
//! - **counts** (counter hits, failure runs, security epochs) are ordered
//!   and incremented in SQL, so they are plain non-negative `BIGINT`s that
//!   the statements cap (`LEAST`/`MIN`) before they could overflow, and a
//!   negative value read back is an error ([`count_from_sql`],
//!   [`epoch_from_sql`]).

#[cfg(any(feature = "postgres", feature = "mysql"))]
use std::sync::Arc;

#[cfg(any(feature = "postgres", feature = "mysql"))]
use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::StoreError;

use crate::model::{AccountRecord, ChallengeRecord, DeviceRecord, VerificationRecord};

/// How an adapter tells a transient database error (a busy or restarting
/// server, a dropped connection) from a permanent one, by the error's code
/// (a SQLSTATE for PostgreSQL, an extended result code for SQLite).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(super) type TransientCode = fn(&str) -> bool;

/// Maps a sqlx error to a [`StoreError`], keeping it as the source.
///
/// Pool timeouts, a closed pool, I/O and TLS failures and the database
/// errors `transient` recognises read as [`StoreError::unavailable`]; a
/// unique violation reads as a conflict when `unique_is_conflict`;
/// everything else is [`StoreError::other`].
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(super) fn map_err(
    err: sqlx::Error,
    transient: TransientCode,
    unique_is_conflict: bool,
) -> StoreError {
    match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(err),
        sqlx::Error::Database(db) => {
            if unique_is_conflict && db.is_unique_violation() {
                StoreError::conflict()
            } else if db.code().is_some_and(|code| transient(&code)) {
                StoreError::unavailable(err)
            } else {
                StoreError::other(err)
            }
        }
        _ => StoreError::other(err),
    }
}

/// [`map_err`] for statements where a unique violation is not expected.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(super) fn store_err(transient: TransientCode) -> impl Fn(sqlx::Error) -> StoreError {
    move |err| map_err(err, transient, false)
}

/// A record kept as JSON beside a `version` column.
pub(super) trait Versioned: Serialize + DeserializeOwned {
    /// Overwrites the record's version.
    fn set_version(&mut self, version: u64);
}

impl Versioned for ChallengeRecord {
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
}

impl Versioned for DeviceRecord {
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
}

impl Versioned for AccountRecord {
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
}

impl Versioned for VerificationRecord {
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
}

/// A record kept by its id in a table of the shape `(id, version,
/// expires_at, record)`: challenges and combined verifications, which the
/// adapters read and write with the same code, each through the statements
/// on its own table.
pub(super) trait IdRecord: Versioned {
    /// The `id` column.
    fn key(&self) -> String;
    /// The `version` column, before [`version_to_sql`].
    fn version(&self) -> u64;
    /// The `expires_at` column.
    fn expires_at(&self) -> OffsetDateTime;
}

impl IdRecord for ChallengeRecord {
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

impl IdRecord for VerificationRecord {
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

/// The record as JSON text.
///
/// `serde_json` escapes U+0000 (as `\u0000`), so the text never holds a NUL
/// and fits PostgreSQL's `TEXT` whatever the host-supplied strings hold.
pub(super) fn encode_record<T: Versioned>(record: &T) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(StoreError::other)
}

/// A record from its JSON text. The `version` column, which the
/// compare-and-set checks, is authoritative over the copy in the JSON (the
/// two are always written together).
pub(super) fn decode_record<T: Versioned>(json: &str, version: i64) -> Result<T, StoreError> {
    let mut record: T = serde_json::from_str(json).map_err(StoreError::other)?;
    record.set_version(version_from_sql(version));
    Ok(record)
}

/// A record read through a `LEFT JOIN`: `None` when the join found no row
/// (both columns `NULL`).
pub(super) fn decode_joined<T: Versioned>(
    version: Option<i64>,
    json: Option<String>,
) -> Result<Option<T>, StoreError> {
    match (version, json) {
        (Some(version), Some(json)) => decode_record(&json, version).map(Some),
        _ => Ok(None),
    }
}

/// A send counter's maximum as a `BIGINT`. Counts are capped below
/// `i64::MAX`, so a maximum at or above it can never be passed, exactly as
/// `u64::MAX` can't be in Rust.
pub(super) fn max_to_sql(max: u64) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

/// A record version as a `BIGINT`. Versions are only ever compared for
/// equality, so the bits are kept as they are: every `u64` round-trips,
/// and versions below 2⁶³ (all of them, in practice) read the same in SQL.
pub(super) fn version_to_sql(version: u64) -> i64 {
    i64::from_ne_bytes(version.to_ne_bytes())
}

/// The inverse of [`version_to_sql`].
pub(super) fn version_from_sql(version: i64) -> u64 {
    u64::from_ne_bytes(version.to_ne_bytes())
}

/// A counter's value from SQL, which never stores a negative one.
pub(super) fn count_from_sql(count: i64) -> Result<u64, StoreError> {
    u64::try_from(count).map_err(|_| StoreError::other(format!("negative counter value {count}")))
}

/// A failure run's length from SQL (the statements cap it at `u32::MAX`).
pub(super) fn consecutive_from_sql(consecutive: i64) -> Result<u32, StoreError> {
    u32::try_from(consecutive)
        .map_err(|_| StoreError::other(format!("failure run out of range: {consecutive}")))
}

/// A statement built at run time from trusted parts only (a validated,
/// quoted schema or database name, constant text and placeholders), shared
/// cheaply between calls.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(super) fn statement(sql: String) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(sql)).into_sql_str()
}

/// A conditional write (insert-if-absent, update-if-version) took effect
/// only if it touched a row; otherwise it lost and reads as a conflict.
pub(super) fn applied(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::conflict())
    } else {
        Ok(())
    }
}

/// The index in `claim` of the first key that `holders` (key, account
/// pairs read from the claims table) give to an account other than
/// `account`: what [`AccountCommit::Taken`](super::AccountCommit::Taken)
/// reports.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(super) fn first_taken(
    claim: &[String],
    holders: &[(String, String)],
    account: &str,
) -> Option<usize> {
    claim.iter().position(|key| {
        holders
            .iter()
            .any(|(held, owner)| held == key && owner != account)
    })
}

/// `keys` without repeats, in their first order (a statement that claims
/// or releases a list of keys touches each once).
pub(super) fn distinct(keys: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(keys.len());
    for key in keys {
        if !out.contains(&key.as_str()) {
            out.push(key);
        }
    }
    out
}
