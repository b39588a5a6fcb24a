//! The two calls a journey step is built from: one read, [`StepStore::load`],
//! and one atomic write, [`StepStore::commit`].
//!
//! The part traits ([`ChallengeStore`](super::ChallengeStore), …) give one
//! call per record. A sign-in step touches several records of one account
//! (its record, its run of failed guesses, a challenge, a device, the send
//! counters guarding a new code), so on those alone each step costs one
//! round trip per record. These two calls bundle them: everything a step
//! reads comes back from one `load`, and everything it writes lands in one
//! `commit` that checks every condition first and writes all or nothing.
//!
//! What the journeys cost with them (store calls, each one round trip on a
//! database that runs the call as one statement, one script or one
//! transaction):
//!
//! | step | calls | which |
//! |---|---|---|
//! | sign-in begin | 1 | `load` (record; with a device token, the device too) |
//! | send a code | 2 | `load` (record + failure run), `commit` (send counters + the new challenge) |
//! | complete with a code | 2 | `load` (challenge + record + run), `commit` (challenge + run, and a trusted device) |
//! | complete with a recovery code | 2 | `load` (record + run), `commit` (record + run, and a trusted device) |
//! | complete with an authenticator code | 2 | `load` (record + run), `commit` (record + run, and a trusted device) |
//!
//! That is the least the rules allow: a decision needs the records it is
//! made on (one read), and its result must land together with the
//! conditions it was made under (one conditional write).

use time::{Duration, OffsetDateTime};

use super::{ClaimChanges, WindowCount};
use crate::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, DeviceId, DeviceRecord, FailureRecord,
};

/// What one [`StepStore::load`] reads. Build it with
/// [`Load::account`] or [`Load::challenge_only`] and add parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Load<'a> {
    /// Read this account's record and failure run.
    pub account: Option<&'a AccountId>,
    /// Read this challenge.
    pub challenge: Option<&'a ChallengeId>,
    /// Read this device of [`account`](Self::account) (ignored without
    /// one).
    pub device: Option<&'a DeviceId>,
}

impl<'a> Load<'a> {
    /// The account's record and failure run.
    #[must_use]
    pub fn account(account: &'a AccountId) -> Self {
        Self {
            account: Some(account),
            challenge: None,
            device: None,
        }
    }

    /// Only a challenge (its account is not known yet).
    #[must_use]
    pub fn challenge_only(id: &'a ChallengeId) -> Self {
        Self {
            account: None,
            challenge: Some(id),
            device: None,
        }
    }

    /// Also the challenge `id`.
    #[must_use]
    pub fn with_challenge(mut self, id: &'a ChallengeId) -> Self {
        self.challenge = Some(id);
        self
    }

    /// Also the account's device `id`.
    #[must_use]
    pub fn with_device(mut self, id: &'a DeviceId) -> Self {
        self.device = Some(id);
        self
    }
}

/// What [`StepStore::load`] found: each part `None` when it was not asked
/// for or is not stored.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Loaded {
    /// The account's record.
    pub record: Option<AccountRecord>,
    /// The account's failure run.
    pub failures: Option<FailureRecord>,
    /// The challenge.
    pub challenge: Option<ChallengeRecord>,
    /// The device.
    pub device: Option<DeviceRecord>,
}

/// One send counter to charge in a [`Commit`]: the fixed-window counter
/// `key` of [`LimitStore::hit`](super::LimitStore::hit), and the most hits
/// its window allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    /// The counter.
    pub key: String,
    /// Its window.
    pub window: Duration,
    /// The most hits a window allows; the hit that makes the count larger
    /// stops the commit.
    pub max: u64,
}

/// A challenge to write in a [`Commit`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ChallengeWrite<'a> {
    /// Insert a new challenge; a [`Conflict`](super::StoreErrorKind::Conflict)
    /// when one with its id exists.
    Insert(&'a ChallengeRecord),
    /// Replace the challenge if its stored version is still
    /// `expected_version` (`record.version` is already one more); a
    /// `Conflict` when it differs or the challenge is gone.
    Replace {
        /// The record to store.
        record: &'a ChallengeRecord,
        /// The version it replaces.
        expected_version: u64,
    },
}

impl ChallengeWrite<'_> {
    /// The record written.
    #[must_use]
    pub fn record(&self) -> &ChallengeRecord {
        match self {
            Self::Insert(record) | Self::Replace { record, .. } => record,
        }
    }
}

/// A failure run to change in a [`Commit`], with the compare-and-set of
/// [`LimitStore::replace_failures`](super::LimitStore::replace_failures):
/// only if the stored run still equals `expected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureChange<'a> {
    /// Whose run.
    pub account: &'a AccountId,
    /// The run as read (`None`: no run).
    pub expected: Option<FailureRecord>,
    /// The run to store (`None` ends it).
    pub next: Option<FailureRecord>,
}

/// An account record to write in a [`Commit`], with its claims: the
/// compare-and-set of
/// [`AccountStore::commit_account`](super::AccountStore::commit_account).
#[derive(Debug, Clone, Copy)]
pub struct RecordWrite<'a> {
    /// The record (its version already moved on).
    pub record: &'a AccountRecord,
    /// The version it replaces; `None`: the account has no record yet.
    pub expected_version: Option<u64>,
    /// Contact claims to change with it.
    pub claims: &'a ClaimChanges,
}

/// An account record a [`Commit`] was decided on without writing it: the
/// commit lands only while the record is still at `version`.
///
/// A sign-in decides on the record (the code's contact is still the
/// account's, the security epoch a trusted device and a step-up are bound
/// to) and then writes only the challenge and the failure run. Checking the
/// record in the same atomic step keeps a change that lands in between (a
/// replaced phone number, "sign out everywhere", the account's deletion)
/// from being overtaken: the commit is a
/// [`Conflict`](super::StoreErrorKind::Conflict), and the caller reads the
/// record again and decides again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordCheck<'a> {
    /// Whose record.
    pub account: &'a AccountId,
    /// Its version as read; `None`: the account had no record.
    pub version: Option<u64>,
}

/// Everything one journey step writes, applied by [`StepStore::commit`] as
/// one atomic step. Every part is optional; an empty commit writes nothing.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Commit<'a> {
    /// Send counters to charge, in order, before anything else.
    pub hits: &'a [LimitHit],
    /// A failure run to change.
    pub failures: Option<FailureChange<'a>>,
    /// A challenge to insert or replace.
    pub challenge: Option<ChallengeWrite<'a>>,
    /// An account record (and its claims) to write.
    pub record: Option<RecordWrite<'a>>,
    /// An account record to check without writing it (see [`RecordCheck`]).
    /// Leave it `None` when [`record`](Self::record) writes the same
    /// account's record: that write's expected version already checks it
    /// (stores may skip the check then).
    pub record_check: Option<RecordCheck<'a>>,
    /// A newly trusted device to insert; a `Conflict` when its account
    /// already has a device with its id.
    pub device: Option<&'a DeviceRecord>,
}

/// How a [`StepStore::commit`] ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Committed {
    /// Every part was written.
    Done,
    /// `hits[index]` went over its `max`: the hits up to and including it
    /// are charged (a refused send still counts, as with
    /// [`LimitStore::hit`](super::LimitStore::hit)), the ones after it are
    /// not, and nothing else was written.
    LimitReached {
        /// Index into [`Commit::hits`].
        index: usize,
        /// That counter after the hit.
        count: WindowCount,
    },
    /// The record's `claims.claim[index]` is held by another account:
    /// nothing was written.
    Taken {
        /// Index into [`ClaimChanges::claim`].
        index: usize,
    },
}

/// One read and one write per journey step.
///
/// The part traits ([`ChallengeStore`](super::ChallengeStore), …) give one
/// call per record; a sign-in step touches several records of one account
/// (its record, its run of failed guesses, a challenge, a device, the send
/// counters guarding a new code). These two calls bundle them, so each
/// journey step costs one read and at most one write:
///
/// | step | calls |
/// |---|---|
/// | sign-in begin | `load` (record; with a device token, the device too) |
/// | send a code | `load` (record + failure run), `commit` (send counters + the new challenge) |
/// | complete with a code | `load` (challenge + record + run), `commit` (challenge + run, and a trusted device) |
/// | complete with a recovery code | `load` (record + run), `commit` (record + run, and a trusted device) |
/// | complete with an authenticator code | `load` (record + run), `commit` (record + run, and a trusted device) |
///
/// `load` may return parts read at slightly different moments (reads may
/// be stale everywhere in the port: every decision is re-checked by the
/// write that follows). `commit` must be **one atomic step**: it checks
/// every condition it carries and writes all of its parts or none, with no
/// other writer in between, against the same records the part traits
/// read and write. Give each call one round trip (one statement, one
/// script, one transaction): the two calls exist for their cost.
#[async_trait::async_trait]
pub trait StepStore: Send + Sync + std::fmt::Debug {
    /// Reads what `load` names, in one round trip.
    ///
    /// A store that can lose its data (a database that can be flushed, a
    /// Redis without persistence) checks its initialisation marker in the
    /// same round trip and fails with
    /// [`StoreErrorKind::NotInitialised`](super::StoreErrorKind::NotInitialised)
    /// when it is gone: every journey starts with a `load`, so a wiped
    /// store answers errors, never "this account has two-step sign-in off".
    ///
    /// # Errors
    /// `NotInitialised` as above; backend failures.
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, super::StoreError>;

    /// Applies `commit` atomically, in this order of effect:
    ///
    /// 1. each `hits` counter is charged as [`LimitStore::hit`] at `now`;
    ///    the first whose count passes its `max`
    ///    stops the commit with [`Committed::LimitReached`];
    /// 2. the conditions of `failures`, `challenge`, `device`,
    ///    `record_check` and `record` are checked: any that fails is a
    ///    [`Conflict`](super::StoreErrorKind::Conflict) (a claim held by
    ///    another account is [`Committed::Taken`] instead), and **nothing**
    ///    is written, the hits included;
    /// 3. all parts are written.
    ///
    /// [`LimitStore::hit`]: super::LimitStore::hit
    ///
    /// A store that can lose its data checks its initialisation marker
    /// first, in the same atomic step, and fails with
    /// [`StoreErrorKind::NotInitialised`](super::StoreErrorKind::NotInitialised)
    /// (nothing written) when it is gone: a step that was decided on a
    /// `load` from before a wipe must not write into the empty store (send
    /// a code, start a failure run, trust a device).
    ///
    /// # Errors
    /// A `Conflict` as above; `NotInitialised` as above; backend failures
    /// otherwise (then nothing was written, or, if the backend can't tell,
    /// the caller treats the step as failed and a retry decides again).
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, super::StoreError>;
}
