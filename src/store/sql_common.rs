//! What the SQL adapters share: error mapping, record (de)serialisation and
//! the integer conversions between Rust's unsigned fields and SQL's signed
//! `BIGINT`.

#[cfg(feature = "postgres")]
use std::sync::Arc;

#[cfg(feature = "postgres")]
use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use super::{ChallengeRecord, StoreError};

/// How an adapter tells a transient database error (a busy or restarting
/// server, a dropped connection) from a permanent one, by the error's code
/// (a SQLSTATE for PostgreSQL, an extended result code for SQLite).
pub(super) type TransientCode = fn(&str) -> bool;

/// Maps a sqlx error to a [`StoreError`], keeping it as the source.
///
/// Pool timeouts, a closed pool, I/O and TLS failures and the database
/// errors `transient` recognises read as [`StoreError::unavailable`]; a
/// unique violation reads as a conflict when `unique_is_conflict`;
/// everything else is [`StoreError::other`].
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
pub(super) fn store_err(transient: TransientCode) -> impl Fn(sqlx::Error) -> StoreError {
    move |err| map_err(err, transient, false)
}

/// The record as JSON text.
pub(super) fn encode_record(record: &ChallengeRecord) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(StoreError::other)
}

/// A record from its JSON text. The `version` column, which the
/// compare-and-set checks, is authoritative over the copy in the JSON (the
/// two are always written together).
pub(super) fn decode_record(json: &str, version: i64) -> Result<ChallengeRecord, StoreError> {
    let mut record: ChallengeRecord = serde_json::from_str(json).map_err(StoreError::other)?;
    record.version = version_from_sql(version);
    Ok(record)
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
/// quoted schema name and constant text), shared cheaply between calls.
#[cfg(feature = "postgres")]
pub(super) fn statement(sql: String) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(sql)).into_sql_str()
}
