//! Storage ports for accounts' records (with the one-owner claims on
//! phone numbers) and for combined verifications.

use std::fmt;

use async_trait::async_trait;

use super::StoreError;
use crate::model::{AccountId, AccountRecord, VerificationId, VerificationRecord};

/// Claims to change together with a [`AccountRecord`] write.
///
/// A claim key is a contact's [`Destination::limit_key`](crate::model::Destination::limit_key): the E.164 number
/// for a phone, the lower-cased address for an email. A key claimed by one
/// account cannot be claimed by another until released.
///
/// The keys are full contacts, so `Debug` shows them masked
/// (`+81 **-****-5678`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClaimChanges {
    /// Keys to claim for the record's account. Keys it already holds are fine.
    pub claim: Vec<String>,
    /// Keys to release. Only keys held by the record's account are released;
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

/// The result of [`AccountStore::commit_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountCommit {
    /// The record was written and the claims changed.
    Committed,
    /// `ClaimChanges::claim[index]` belongs to another account: nothing was
    /// written.
    Taken {
        /// Index into [`ClaimChanges::claim`].
        index: usize,
    },
}

/// Storage of account records and contact claims.
///
/// The one state-changing call, [`commit_account`](Self::commit_account),
/// is atomic over the record **and** the claims: a phone number changes hands
/// (new one claimed, old one released, record rewritten) in one step, and of
/// two accounts racing to claim one number exactly one succeeds.
#[async_trait]
pub trait AccountStore: Send + Sync + fmt::Debug {
    /// The account's account record, if it has one.
    ///
    /// # Errors
    /// Backend failures.
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError>;

    /// The account holding the claim on `key`, if any.
    ///
    /// # Errors
    /// Backend failures.
    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError>;

    /// In one atomic step: checks that the stored record of `record.account`
    /// has version `expected_version` (`None`: that the account has no
    /// record), checks that no other account holds any key in
    /// `changes.claim`, then claims those keys for the account, releases
    /// the keys in `changes.release` that the account holds, and stores
    /// `record` (whose version the caller has already advanced).
    ///
    /// # Errors
    /// A [`StoreErrorKind::Conflict`](super::StoreErrorKind::Conflict)
    /// error when the record's version differs (or a record exists when
    /// `expected_version` is `None`); backend failures otherwise. A claim
    /// held by another account is not an error but
    /// [`AccountCommit::Taken`], with nothing written.
    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError>;

    /// Deletes the account's record and releases every claim it holds (the
    /// account is being deleted). Ok when there is nothing to delete.
    ///
    /// # Errors
    /// Backend failures.
    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError>;
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
}
