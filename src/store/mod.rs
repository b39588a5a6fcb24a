//! The storage port: the records ninsho keeps and the atomic operations it
//! needs from the host's database.
//!
//! Every method that changes state is **one atomic call** with no default
//! body: an insert that fails if the record exists, a compare-and-set on a
//! record version, an increment that returns the new value. Two racing
//! requests, or two app instances sharing one database, can therefore never
//! both consume a code, and no failed attempt is ever lost. Methods that
//! only read may return stale data; every decision that matters is
//! re-checked by the compare-and-set that follows.
//!
//! Records are plain serde types: an adapter may store them as JSON in one
//! column beside the few fields it indexes (id, version, expiry).
//!
//! [`MemoryStore`] (feature `memory`, on by default) is the reference
//! implementation, for single-process hosts and tests.

mod account;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod purge;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod sql_common;
#[cfg(feature = "sqlite")]
mod sqlite;
mod step;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

#[cfg(feature = "redis")]
pub use self::redis::{RedisConnectError, RedisStore, RedisStoreBuilder};
pub use account::{AccountCommit, AccountStore, ClaimChanges, VerificationStore};
#[cfg(feature = "memory")]
pub use memory::MemoryStore;
#[cfg(feature = "mysql")]
pub use mysql::MySqlStore;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use purge::{PurgeStore, Purged};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use step::{
    ChallengeWrite, Commit, Committed, FailureChange, LimitHit, Load, Loaded, RecordCheck,
    RecordWrite, StepStore,
};

use crate::model::{
    AccountId, ChallengeId, ChallengeRecord, DeviceId, DeviceRecord, FailureRecord,
};

/// What went wrong in a store, with the backend's own error kept as the
/// source.
#[derive(Debug, thiserror::Error)]
#[error("{}", match .kind {
    StoreErrorKind::Conflict => "the record changed or already exists (a concurrent write won)",
    StoreErrorKind::Unavailable => "the store is unavailable; retry later",
    StoreErrorKind::NotInitialised => "the store holds no ninsho data marker: it was never initialised, or it lost its data (an operator must re-initialise it)",
    StoreErrorKind::Other => "the store failed",
})]
#[non_exhaustive]
pub struct StoreError {
    kind: StoreErrorKind,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The kind of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// A conditional write lost: the record's version changed since it was
    /// read, or an insert found the record already there. Flows re-read and
    /// retry; hosts rarely see it.
    Conflict,
    /// The backend could not be reached or timed out; retry later.
    Unavailable,
    /// The store's initialisation marker is missing: the database or
    /// Redis lost its data (a restart without persistence, a flush, a
    /// restore of an empty backup) or was never initialised. Every account
    /// would read as new, with two-step sign-in off, so the store refuses
    /// to answer until an operator initialises it again on purpose (each
    /// adapter documents how). Retrying does not help.
    NotInitialised,
    /// Any other backend failure.
    Other,
}

impl StoreError {
    /// An error of `kind` with no source.
    #[must_use]
    pub fn new(kind: StoreErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// A conditional write lost (see [`StoreErrorKind::Conflict`]).
    #[must_use]
    pub fn conflict() -> Self {
        Self::new(StoreErrorKind::Conflict)
    }

    /// The backend is unreachable, keeping its error as the source.
    #[must_use]
    pub fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: StoreErrorKind::Unavailable,
            source: Some(source.into()),
        }
    }

    /// The store lost its data or was never initialised (see
    /// [`StoreErrorKind::NotInitialised`]).
    #[must_use]
    pub fn not_initialised() -> Self {
        Self::new(StoreErrorKind::NotInitialised)
    }

    /// Any other backend failure, keeping its error as the source.
    #[must_use]
    pub fn other(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: StoreErrorKind::Other,
            source: Some(source.into()),
        }
    }

    /// The kind of failure.
    #[must_use]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether this is a lost compare-and-set or a duplicate insert.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        self.kind == StoreErrorKind::Conflict
    }
}

/// A fixed-window counter after an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCount {
    /// Hits in the current window, this one included.
    pub count: u64,
    /// When the window ends and the count starts again from zero.
    pub resets_at: OffsetDateTime,
}

/// Storage of challenges (codes and one-time links).
///
/// Object safe; hold it as `Arc<dyn Store>`.
#[async_trait]
pub trait ChallengeStore: Send + Sync + fmt::Debug {
    /// Stores a new challenge.
    ///
    /// # Errors
    /// A [`StoreErrorKind::Conflict`] error when a challenge with this id
    /// exists; backend failures otherwise.
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError>;

    /// Reads a challenge, `None` when there is none with this id.
    ///
    /// # Errors
    /// Backend failures.
    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError>;

    /// Replaces a challenge **only if** its stored version is still
    /// `expected_version`; `record.version` is already `expected_version + 1`.
    ///
    /// This is the compare-and-set every change goes through: of two
    /// writers that read the same version, exactly one succeeds.
    ///
    /// # Errors
    /// A [`StoreErrorKind::Conflict`] error when the stored version differs
    /// or the challenge is gone; backend failures otherwise.
    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError>;
}

/// Rate-limit counters and per-account failure runs.
#[async_trait]
pub trait LimitStore: Send + Sync + fmt::Debug {
    /// Atomically adds one hit to the fixed-window counter `key` and returns
    /// the new count. A counter that is absent or whose window ended at or
    /// before `now` starts a new window `[now, now + window)` with count 1.
    /// No increment is ever lost, whatever the concurrency.
    ///
    /// # Errors
    /// Backend failures.
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError>;

    /// Replaces the account's failure run **only if** it still equals
    /// `expected` (`None`: only if the account has no run), with `next`
    /// (`None` ends the run).
    ///
    /// This compare-and-set is how a guess is counted *before* it is
    /// checked: the flow reads the run, decides from the policy whether a
    /// guess may be tried now, and writes the run one longer. Of racing
    /// guesses that read the same run exactly one is counted; the others
    /// re-read and decide again, so none slips past a back-off or the hard
    /// stop another one just reached. Compare both fields exactly as stored
    /// (a backend that keeps microseconds compares the instant the same way
    /// it stores it).
    ///
    /// # Errors
    /// A [`StoreErrorKind::Conflict`] error when the stored run differs
    /// from `expected`; backend failures otherwise.
    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError>;

    /// The account's current failure run, if any.
    ///
    /// # Errors
    /// Backend failures.
    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError>;

    /// Ends the account's failure run (after a success, or when an operator
    /// unlocks the account).
    ///
    /// # Errors
    /// Backend failures.
    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError>;
}

/// Storage of trusted devices (their security epoch lives in the
/// account's [`AccountRecord`](crate::model::AccountRecord)).
#[async_trait]
pub trait DeviceStore: Send + Sync + fmt::Debug {
    /// Stores a newly trusted device.
    ///
    /// # Errors
    /// A [`StoreErrorKind::Conflict`] error when the account already has a
    /// device with this id; backend failures otherwise.
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError>;

    /// One device of an account.
    ///
    /// # Errors
    /// Backend failures.
    async fn device(
        &self,
        account: &AccountId,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError>;

    /// Every device of an account, in no particular order.
    ///
    /// # Errors
    /// Backend failures.
    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError>;

    /// Replaces a device **only if** its stored version is still
    /// `expected_version` (used to refresh "last used").
    ///
    /// # Errors
    /// A [`StoreErrorKind::Conflict`] error when the version differs or the
    /// device is gone; backend failures otherwise.
    async fn replace_device(
        &self,
        record: &DeviceRecord,
        expected_version: u64,
    ) -> Result<(), StoreError>;

    /// Revokes one device; returns whether it existed.
    ///
    /// # Errors
    /// Backend failures.
    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError>;

    /// Revokes every device of an account; returns how many there were.
    ///
    /// # Errors
    /// Backend failures.
    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError>;
}

/// Everything ninsho stores: implement the part traits and this comes free.
pub trait Store:
    ChallengeStore
    + LimitStore
    + DeviceStore
    + AccountStore
    + VerificationStore
    + StepStore
    + PurgeStore
{
}

impl<T> Store for T where
    T: ChallengeStore
        + LimitStore
        + DeviceStore
        + AccountStore
        + VerificationStore
        + StepStore
        + PurgeStore
        + ?Sized
{
}
