//! The account's record: its contacts, second factors, recovery codes,
//! security epoch and grace-period state, changed together by one
//! compare-and-set; and its run of failed guesses.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AccountId, ChallengeId, Destination, DestinationKind, GraceState, PhoneType};
use crate::hash::KeyedHash;
use crate::random::{Random, RandomError};

/// Everything ninsho keeps about one account in one record: its contacts,
/// the grace-period state that follows from them, its second factors and
/// recovery codes, and its security epoch.
///
/// One record, so that every change that must land together (a phone
/// swapped and the epoch moved; two-step sign-in turned on with its
/// recovery codes) is one compare-and-set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Whose record.
    pub account: AccountId,
    /// Bumped by every write; the compare-and-set key (the first write
    /// stores version 1).
    pub version: u64,
    /// The contacts, oldest first.
    pub contacts: Vec<ContactEntry>,
    /// Where the account stands in the grace-period machine.
    pub grace: GraceState,
    /// When the record was created.
    pub created_at: OffsetDateTime,
    /// The account's two-step settings, its authenticator app and its
    /// recovery codes, kept in the same record so that turning two-step
    /// sign-in on or off, and the contacts it relies on, change together.
    #[serde(default)]
    pub factors: Factors,
    /// The account's security epoch (0 until first bumped). Bumping it
    /// revokes every trusted device and every step-up proof issued before;
    /// it moves on in the same write as the change that calls for it (a
    /// second factor changed or removed, a recovery code used, two-step
    /// sign-in turned off), so the two can't come apart.
    #[serde(default)]
    pub epoch: u64,
    /// The contact-change challenge whose change this record applied last.
    /// A change is written before its code is spent, so a retry after a
    /// failure in between finds it here and only spends the code.
    #[serde(default)]
    pub last_change: Option<ChallengeId>,
    /// Which record of the account this is: a random number drawn when the
    /// record is first written, never changed. An account deleted and made
    /// again under the same id gets a new one, so a trusted device, a
    /// step-up proof or a sign-in code issued for the old record (which
    /// carries the old number) is not taken for the new one's, whatever
    /// the clocks say. 0 in a record written before ninsho kept it.
    #[serde(default)]
    pub incarnation: u64,
}

impl AccountRecord {
    /// The record of an account ninsho has not seen before: no contacts,
    /// no factors, epoch 0, and a grace period not yet started (the contact
    /// journeys start it the first time they see the account). Version 0:
    /// nothing is stored yet. `incarnation` is its new, random
    /// [`incarnation`](Self::incarnation) (see [`draw_incarnation`]).
    pub(crate) fn fresh(account: &AccountId, now: OffsetDateTime, incarnation: u64) -> Self {
        Self {
            account: account.clone(),
            version: 0,
            contacts: Vec::new(),
            grace: GraceState::default(),
            created_at: now,
            factors: Factors::default(),
            epoch: 0,
            last_change: None,
            incarnation,
        }
    }
}

/// A new record's [`incarnation`](AccountRecord::incarnation): 64 random
/// bits, never 0 (which marks records from before incarnations).
///
/// # Errors
/// When the random source fails: no record is made without one.
pub(crate) fn draw_incarnation(rng: &dyn Random) -> Result<u64, RandomError> {
    let mut bytes = [0u8; 8];
    rng.fill(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes).max(1))
}

/// One contact (phone number or email address) of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactEntry {
    /// The normalised address.
    pub destination: Destination,
    /// When it was added to the account.
    pub added_at: OffsetDateTime,
    /// When the user last proved they receive codes there; `None` while
    /// unverified (a contact the host imported, say).
    pub verified_at: Option<OffsetDateTime>,
    /// Whether the account's two-step sign-in sends codes here. Such a
    /// contact can be changed (to a newly verified one) but not removed.
    pub two_factor: bool,
    /// For a phone: its number type (mobile, fixed line, …) as read when
    /// it was registered, so sign-in can tell which channels reach it
    /// without parsing the number again. `None` for email, and for phones
    /// recorded before this field existed (they are parsed when needed).
    #[serde(default)]
    pub phone_type: Option<PhoneType>,
}

impl ContactEntry {
    /// Whether the contact is verified.
    #[must_use]
    pub fn is_verified(&self) -> bool {
        self.verified_at.is_some()
    }

    /// Phone or email.
    #[must_use]
    pub fn kind(&self) -> DestinationKind {
        self.destination.kind()
    }
}

/// An account's two-step settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Factors {
    /// When two-step sign-in was turned on; `None` while it is off.
    pub two_factor_since: Option<OffsetDateTime>,
    /// The confirmed authenticator app, if any.
    pub authenticator: Option<AuthenticatorRecord>,
    /// An authenticator app being set up: shown to the user, not yet
    /// confirmed by a first code.
    pub pending_authenticator: Option<AuthenticatorRecord>,
    /// The account's recovery codes (keyed hashes only), if any. Kept in
    /// the account's record so that using one and moving the security
    /// epoch on are one write.
    pub recovery: Option<RecoverySet>,
}

/// An authenticator app (TOTP) of an account.
///
/// The seed has to be recomputed at every sign-in, so it can't be hashed;
/// it is kept as its `otpauth://` URI **sealed** by the host's
/// [`Sealer`](crate::service::Sealer) (encrypted with a key the database
/// never sees), as base32 text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthenticatorRecord {
    /// The sealed key URI, base32.
    pub sealed_uri: String,
    /// The step of the last accepted code: that code and every older one
    /// are refused (replay).
    pub last_step: Option<u64>,
    /// When it was added.
    pub added_at: OffsetDateTime,
    /// The keyed hash of the sign-in attempt that made `last_step`, if the
    /// host passed one: that attempt may present the same code again (its
    /// reply was lost) and succeed; any other attempt gets a replay refusal.
    #[serde(default)]
    pub last_attempt: Option<KeyedHash>,
}

impl AuthenticatorRecord {
    /// A record for a sealed key URI.
    #[must_use]
    pub fn new(sealed_uri: String, last_step: Option<u64>, added_at: OffsetDateTime) -> Self {
        Self {
            last_attempt: None,
            sealed_uri,
            last_step,
            added_at,
        }
    }
}

impl fmt::Debug for AuthenticatorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sealed, but still not for logs.
        f.debug_struct("AuthenticatorRecord")
            .field("sealed_uri", &"[sealed]")
            .field("last_step", &self.last_step)
            .field("added_at", &self.added_at)
            .field(
                "last_attempt",
                &self.last_attempt.as_ref().map(|_| "[hash]"),
            )
            .finish()
    }
}

/// A stored recovery set (never the plain codes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverySet {
    /// The set's random salt (also its identity: a regenerated set has
    /// another one).
    pub salt: [u8; 16],
    /// Bumped by every write; the compare-and-set key.
    pub version: u64,
    /// When the set was generated.
    pub created_at: OffsetDateTime,
    /// Characters per code.
    pub length: u8,
    /// The codes.
    pub codes: Vec<StoredRecoveryCode>,
}

impl RecoverySet {
    /// Codes not yet used.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.codes.iter().filter(|c| c.used_at.is_none()).count()
    }
}

/// One stored code: its keyed hash and when it was used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecoveryCode {
    /// Keyed hash of the normalised code under the set's salt.
    pub hash: KeyedHash,
    /// When it was redeemed; `None` while unused.
    pub used_at: Option<OffsetDateTime>,
    /// The keyed hash of the sign-in attempt that redeemed it, if the host
    /// passed one: a retry from that attempt succeeds again (its reply may
    /// have been lost), a replay from any other is refused.
    #[serde(default)]
    pub used_by: Option<KeyedHash>,
}

/// An account's run of consecutive verification failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Failures since the last success or reset.
    pub consecutive: u32,
    /// When the latest one happened.
    pub last_failure_at: OffsetDateTime,
}
