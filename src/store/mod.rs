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

mod contacts;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql_common;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use contacts::{
    AuthenticatorRecord, ClaimChanges, ContactBook, ContactCommit, ContactEntry, ContactStore,
    Factors, MemberRecord, VerificationRecord, VerificationStore,
};
#[cfg(feature = "memory")]
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::contact::Destination;
use crate::device::{DeviceId, DeviceRecord};
use crate::gateway::{Channel, Locale};
use crate::hash::KeyedHash;

/// What went wrong in a store, with the backend's own error kept as the
/// source.
#[derive(Debug, thiserror::Error)]
#[error("{}", match .kind {
    StoreErrorKind::Conflict => "the record changed or already exists (a concurrent write won)",
    StoreErrorKind::Unavailable => "the store is unavailable; retry later",
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

/// Declares a 128-bit random id type shown as 32 lower-case hex digits.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(into = "String", try_from = "String")]
        pub struct $name([u8; 16]);

        impl $name {
            /// The id's bytes.
            #[must_use]
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// An id from its bytes.
            #[must_use]
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            /// Parses the 32-hex-digit form.
            ///
            /// # Errors
            /// [`InvalidId`] for anything else.
            pub fn parse(text: &str) -> Result<Self, InvalidId> {
                parse_hex_id(text).map(Self)
            }

            #[allow(dead_code, reason = "not every id type is generated by the crate")]
            pub(crate) fn random(rng: &dyn crate::Random) -> Result<Self, crate::RandomError> {
                let mut bytes = [0u8; 16];
                rng.fill(&mut bytes)?;
                Ok(Self(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.to_string()
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                Self::parse(&value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }
    };
}

random_id! {
    /// A challenge's id: 128 random bits, shown as 32 lower-case hex digits.
    ///
    /// Not a secret (it identifies the challenge in the host's session or a
    /// URL), but unguessable, so challenges can't be enumerated.
    ChallengeId
}

random_id! {
    /// A combined verification's id (see [`VerificationRecord`]): 128 random
    /// bits, shown as 32 lower-case hex digits. Not a secret, but
    /// unguessable.
    VerificationId
}

fn parse_hex_id(text: &str) -> Result<[u8; 16], InvalidId> {
    let text = text.trim();
    if text.len() != 32 {
        return Err(InvalidId);
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = text.get(i * 2..i * 2 + 2).ok_or(InvalidId)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| InvalidId)?;
    }
    Ok(out)
}

/// Text that is not an id (a [`ChallengeId`] or [`VerificationId`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an id (32 hexadecimal digits)")]
pub struct InvalidId;

/// The host's identifier for an account (a user id, as a string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub String);

impl AccountId {
    /// Wraps the host's id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a code is being sent. A code issued for one purpose never verifies
/// another (a sign-up code can't approve a phone change).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Purpose {
    /// Verifying a contact while creating an account.
    SignUp,
    /// The second step of signing in.
    SignIn,
    /// Adding or changing a phone number or email address.
    ContactChange,
    /// Re-verifying before a sensitive action.
    StepUp,
    /// Regaining access to an account.
    Recovery,
    /// A purpose of the host's own.
    Other(String),
}

/// Where a challenge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChallengeState {
    /// Waiting for the code (or for the link to be approved).
    Pending,
    /// A one-time link was approved; the waiting sign-in has not yet
    /// collected the approval.
    Approved,
    /// Done: the code was verified or the approval collected. Single use.
    Consumed,
    /// A one-time link was denied by the user.
    Denied,
    /// Too many wrong attempts; the challenge is dead.
    Exhausted,
}

/// One delivery of a code: each resend adds one, with its own code and
/// expiry, so a late SMS still works until its own code expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendRecord {
    /// The channel the code went out on.
    pub channel: Channel,
    /// When it was handed to the gateway.
    pub sent_at: OffsetDateTime,
    /// When this send's code stops working.
    pub expires_at: OffsetDateTime,
    /// The keyed hash of the code (never the code).
    pub code: KeyedHash,
    /// Whether the gateway failed this send with an error that is not
    /// permanent ([`Transient`](crate::gateway::DeliveryErrorKind::Transient)
    /// or [`RateLimited`](crate::gateway::DeliveryErrorKind::RateLimited)).
    /// The resend cooldown does not count from such a send; the send limits
    /// still count it. `false` in records written before this field existed.
    #[serde(default)]
    pub failed_transiently: bool,
}

/// The one-time-link part of a challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The keyed hash of the link's 256-bit token.
    pub token: KeyedHash,
    /// The host's description of the device asking to sign in, shown to the
    /// user before they approve.
    pub device: String,
}

/// A challenge: a code (or link) sent to a destination for a purpose.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// The challenge's id.
    pub id: ChallengeId,
    /// Bumped by every successful write; the compare-and-set key.
    pub version: u64,
    /// Why it was issued.
    pub purpose: Purpose,
    /// The account it belongs to, if any (none during sign-up).
    pub account: Option<AccountId>,
    /// Where the code goes.
    pub destination: Destination,
    /// The language messages for this challenge are written in.
    pub locale: Locale,
    /// The fallback plan: channels in order of preference.
    pub channels: Vec<Channel>,
    /// Index in `channels` of the channel now in use.
    pub channel_index: usize,
    /// Where it stands.
    pub state: ChallengeState,
    /// Digits per code.
    pub digits: u8,
    /// Wrong codes entered so far, across all sends.
    pub failed_attempts: u32,
    /// Wrong codes allowed before the challenge dies.
    pub max_attempts: u32,
    /// Every delivery, oldest first (empty for links).
    pub sends: Vec<SendRecord>,
    /// Sends of this challenge, the first included (the per-challenge send
    /// limit counts these; a fallback within one send counts once).
    pub delivery_attempts: u32,
    /// The link, for one-time-link challenges.
    pub link: Option<LinkRecord>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When the last code (or the link) stops working. Adapters may drop
    /// the record some time after this (keep it a while so late attempts get
    /// "expired" rather than "unknown").
    pub expires_at: OffsetDateTime,
    /// The keyed hash of the sign-in attempt that consumed it, if the host
    /// passed one: a retry of the same code from that attempt succeeds again
    /// (its reply may have been lost), a replay from any other is refused.
    #[serde(default)]
    pub consumed_by: Option<KeyedHash>,
    /// For a code that changes the account's contacts or factors: the
    /// account's security epoch when it was issued. Once the epoch moves on
    /// ("sign out everywhere", a password change, a factor changed) the
    /// change it would make is refused: it was authorised under the old
    /// epoch.
    #[serde(default)]
    pub epoch: Option<u64>,
}

/// A fixed-window counter after an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCount {
    /// Hits in the current window, this one included.
    pub count: u64,
    /// When the window ends and the count starts again from zero.
    pub resets_at: OffsetDateTime,
}

/// An account's run of consecutive verification failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Failures since the last success or reset.
    pub consecutive: u32,
    /// When the latest one happened.
    pub last_failure_at: OffsetDateTime,
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

    /// Deletes challenges whose `expires_at` is before `before`; returns how
    /// many. Hosts call it periodically (stores with native expiry may
    /// return 0).
    ///
    /// # Errors
    /// Backend failures.
    async fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
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
/// account's [`ContactBook`]).
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
    ChallengeStore + LimitStore + DeviceStore + ContactStore + VerificationStore
{
}

impl<T> Store for T where
    T: ChallengeStore + LimitStore + DeviceStore + ContactStore + VerificationStore + ?Sized
{
}
