//! Storage ports for an account's contacts (with the one-owner claims on
//! phone numbers) and for combined verifications.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AccountId, ChallengeId, Purpose, StoreError, VerificationId};
use crate::contact::{Destination, DestinationKind, PhoneType};
use crate::gateway::Locale;
use crate::grace::GraceState;
use crate::hash::KeyedHash;
use crate::recovery::RecoverySet;

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

/// Everything ninsho keeps about an account's contacts: the list, and the
/// grace-period state that follows from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactBook {
    /// Whose contacts.
    pub account: AccountId,
    /// Bumped by every write; the compare-and-set key (the first write
    /// stores version 1).
    pub version: u64,
    /// The contacts, oldest first.
    pub contacts: Vec<ContactEntry>,
    /// Where the account stands in the grace-period machine.
    pub grace: GraceState,
    /// When the book was created.
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
    /// The contact-change challenge whose change this book applied last.
    /// A change is written before its code is spent, so a retry after a
    /// failure in between finds it here and only spends the code.
    #[serde(default)]
    pub last_change: Option<ChallengeId>,
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

/// Claims to change together with a [`ContactBook`] write.
///
/// A claim key is a contact's [`Destination::limit_key`]: the E.164 number
/// for a phone, the lower-cased address for an email. A key claimed by one
/// account cannot be claimed by another until released.
///
/// The keys are full contacts, so `Debug` shows them masked
/// (`+81 **-****-5678`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClaimChanges {
    /// Keys to claim for the book's account. Keys it already holds are fine.
    pub claim: Vec<String>,
    /// Keys to release. Only keys held by the book's account are released;
    /// others are left alone.
    pub release: Vec<String>,
}

impl fmt::Debug for ClaimChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |keys: &[String]| -> Vec<String> {
            keys.iter()
                .map(|k| crate::contact::mask_address(k))
                .collect()
        };
        f.debug_struct("ClaimChanges")
            .field("claim", &masked(&self.claim))
            .field("release", &masked(&self.release))
            .finish()
    }
}

/// The result of [`ContactStore::commit_contacts`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContactCommit {
    /// The book was written and the claims changed.
    Committed,
    /// `ClaimChanges::claim[index]` belongs to another account: nothing was
    /// written.
    Taken {
        /// Index into [`ClaimChanges::claim`].
        index: usize,
    },
}

/// Storage of contact books and contact claims.
///
/// The one state-changing call, [`commit_contacts`](Self::commit_contacts),
/// is atomic over the book **and** the claims: a phone number changes hands
/// (new one claimed, old one released, book rewritten) in one step, and of
/// two accounts racing to claim one number exactly one succeeds.
#[async_trait]
pub trait ContactStore: Send + Sync + fmt::Debug {
    /// The account's contact book, if it has one.
    ///
    /// # Errors
    /// Backend failures.
    async fn contact_book(&self, account: &AccountId) -> Result<Option<ContactBook>, StoreError>;

    /// The account holding the claim on `key`, if any.
    ///
    /// # Errors
    /// Backend failures.
    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError>;

    /// In one atomic step: checks that the stored book of `book.account`
    /// has version `expected_version` (`None`: that the account has no
    /// book), checks that no other account holds any key in
    /// `changes.claim`, then claims those keys for the account, releases
    /// the keys in `changes.release` that the account holds, and stores
    /// `book` (whose version the caller has already advanced).
    ///
    /// # Errors
    /// A [`StoreErrorKind::Conflict`](super::StoreErrorKind::Conflict)
    /// error when the book's version differs (or a book exists when
    /// `expected_version` is `None`); backend failures otherwise. A claim
    /// held by another account is not an error but
    /// [`ContactCommit::Taken`], with nothing written.
    async fn commit_contacts(
        &self,
        book: &ContactBook,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<ContactCommit, StoreError>;

    /// Deletes the account's book and releases every claim it holds (the
    /// account is being deleted). Ok when there is nothing to delete.
    ///
    /// # Errors
    /// Backend failures.
    async fn delete_contacts(&self, account: &AccountId) -> Result<(), StoreError>;
}

/// One member of a combined verification: a contact verified by its own
/// one-time-code challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The contact being verified.
    pub destination: Destination,
    /// The challenge carrying its code (replaced when a dead challenge is
    /// restarted by a resend).
    pub challenge: ChallengeId,
    /// When its code was verified.
    pub verified_at: Option<OffsetDateTime>,
}

/// A combined verification (EZSMS's sign-up: email **and** phone): every
/// member must be verified, in any order, before it completes, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRecord {
    /// Its id.
    pub id: VerificationId,
    /// Bumped by every write; the compare-and-set key.
    pub version: u64,
    /// What the members' codes were issued for.
    pub purpose: Purpose,
    /// The account, if it exists yet (none during sign-up).
    pub account: Option<AccountId>,
    /// The contacts to verify, in the order given.
    pub members: Vec<MemberRecord>,
    /// The language of its messages.
    pub locale: Locale,
    /// When it started.
    pub created_at: OffsetDateTime,
    /// When it stops, as a whole, whatever its members' codes say.
    pub expires_at: OffsetDateTime,
    /// When its last member was verified.
    pub completed_at: Option<OffsetDateTime>,
    /// When the host took the result ([`Verifications::take`]); a
    /// verification is taken at most once.
    ///
    /// [`Verifications::take`]: crate::flows::Verifications::take
    pub taken_at: Option<OffsetDateTime>,
    /// The account it was taken for, when taken with
    /// [`Verifications::take_for`](crate::flows::Verifications::take_for):
    /// that account may take it again (a retry after a failure).
    #[serde(default)]
    pub taken_by: Option<AccountId>,
}

/// Storage of combined verifications.
#[async_trait]
pub trait VerificationStore: Send + Sync + fmt::Debug {
    /// Stores a new verification.
    ///
    /// # Errors
    /// A [`StoreErrorKind::Conflict`](super::StoreErrorKind::Conflict)
    /// error when one with this id exists; backend failures otherwise.
    async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError>;

    /// A verification by id.
    ///
    /// # Errors
    /// Backend failures.
    async fn verification(
        &self,
        id: &VerificationId,
    ) -> Result<Option<VerificationRecord>, StoreError>;

    /// Replaces a verification **only if** its stored version is still
    /// `expected_version`.
    ///
    /// # Errors
    /// A [`StoreErrorKind::Conflict`](super::StoreErrorKind::Conflict)
    /// error when the version differs or the record is gone; backend
    /// failures otherwise.
    async fn replace_verification(
        &self,
        record: &VerificationRecord,
        expected_version: u64,
    ) -> Result<(), StoreError>;

    /// Deletes verifications that expired before `before`; returns how many.
    ///
    /// # Errors
    /// Backend failures.
    async fn purge_verifications(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}
