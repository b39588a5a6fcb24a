//! The account's record (its [`AccountRecord`]): contacts, two-step
//! settings, authenticator app, recovery codes and security epoch, changed
//! together by one compare-and-set.

use time::OffsetDateTime;

use super::cas::{self, AccountSlot, Step};
use crate::error::Error;
use crate::model::{AccountId, AccountRecord, ChallengeRecord, Purpose};
use crate::random::Random;
use crate::store::{ClaimChanges, Store, StoreError};

/// What a trusted device, a step-up proof or a sign-in challenge is checked
/// against: the account's security epoch, and which record of the account
/// stands (its [`incarnation`](AccountRecord::incarnation)).
///
/// The incarnation matters when an account's record was deleted and a new
/// one made under the same id: the new record starts again at epoch 0, so
/// a device or proof left over from the old one (a
/// [`delete_account`](crate::service::TwoFactor::delete_account) that failed
/// after deleting the record, say) would match its epoch. It carries the
/// old record's incarnation, not the new one's, and is revoked; no clock
/// is compared, so instances whose clocks disagree agree on it.
///
/// Incarnation 0 means "not known": a record or device written before
/// incarnations were kept, or rewritten by such a version during a rolling
/// upgrade (which drops the field). Where either side is 0, the rule before
/// them decides: whatever was issued before the record was created belongs
/// to an earlier record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    /// The security epoch (0 without a record).
    pub(crate) epoch: u64,
    /// The stored record's incarnation (0 without a record, or not known).
    pub(crate) incarnation: u64,
    /// When the stored record was created (`None` without a record).
    pub(crate) since: Option<OffsetDateTime>,
}

impl Standing {
    /// The standing `record` gives (`None`, or a fresh record not stored
    /// yet: the account has no record).
    pub(crate) fn of(record: Option<&AccountRecord>) -> Self {
        let stored = record.filter(|b| b.version > 0);
        Self {
            epoch: record.map_or(0, |b| b.epoch),
            incarnation: stored.map_or(0, |b| b.incarnation),
            since: stored.map(|b| b.created_at),
        }
    }

    /// Whether something issued at `at` for the record of incarnation
    /// `incarnation` is this record's: the same incarnation when both are
    /// known; otherwise not issued before this record was created.
    pub(crate) fn is_for(&self, incarnation: u64, at: OffsetDateTime) -> bool {
        if incarnation != 0 && self.incarnation != 0 {
            incarnation == self.incarnation
        } else {
            self.since.is_none_or(|since| at >= since)
        }
    }

    /// Whether something issued at security epoch `epoch`, at `at`, for the
    /// record of incarnation `incarnation` still stands: the epoch has not
    /// moved past it, and it was issued for this record ([`is_for`](Self::is_for)).
    pub(crate) fn admits(&self, epoch: u64, incarnation: u64, at: OffsetDateTime) -> bool {
        epoch >= self.epoch && self.is_for(incarnation, at)
    }

    /// Whether `challenge` may be used with this record. A sign-in
    /// challenge is issued for the record the account had
    /// ([`is_for`](Self::is_for)), and stricter than a device: one that
    /// carries no incarnation is not this record's when this record has
    /// one (it was issued for an earlier record, or by an instance of a
    /// version before incarnations during an upgrade; it lives minutes,
    /// and the user asks for another). Other challenges carry no
    /// incarnation (a contact code may be sent before the account has a
    /// record) and pass.
    pub(crate) fn owns_challenge(&self, challenge: &ChallengeRecord) -> bool {
        if challenge.purpose != Purpose::SignIn {
            return true;
        }
        if challenge.incarnation == 0 && self.incarnation != 0 {
            return false;
        }
        self.is_for(challenge.incarnation, challenge.created_at)
    }
}

/// The account's [`Standing`], read from its record.
pub(crate) async fn standing(
    store: &dyn Store,
    account: &AccountId,
) -> Result<Standing, StoreError> {
    Ok(Standing::of(store.account_record(account).await?.as_ref()))
}

/// Reads the account's record (a fresh one if it has none), lets `edit`
/// change it and return its answer with the claims to change, and writes it
/// back with compare-and-set ([`cas::change`]), so `edit` may run more than
/// once. An error from `edit` writes nothing.
///
/// # Errors
/// What `edit` returns; [`ContactRefusal::InUse`](crate::error::ContactRefusal::InUse) when a claim is held by
/// another account; [`Error::Store`].
pub(crate) async fn update<T>(
    store: &dyn Store,
    rng: &dyn Random,
    account: &AccountId,
    now: OffsetDateTime,
    edit: impl FnMut(&mut AccountRecord) -> Result<(T, ClaimChanges), Error>,
) -> Result<T, Error> {
    let slot = AccountSlot {
        store,
        account,
        now,
        create: Some(rng),
    };
    let record = slot.read().await?;
    update_from(store, rng, account, now, record, edit).await
}

/// [`update`] starting from `record`, the account's record as the caller
/// just read it ([`AccountRecord::fresh`] when it has none): no read of its
/// own unless the compare-and-set finds it changed.
///
/// # Errors
/// As for [`update`].
pub(crate) async fn update_from<T>(
    store: &dyn Store,
    rng: &dyn Random,
    account: &AccountId,
    now: OffsetDateTime,
    record: AccountRecord,
    mut edit: impl FnMut(&mut AccountRecord) -> Result<(T, ClaimChanges), Error>,
) -> Result<T, Error> {
    let slot = AccountSlot {
        store,
        account,
        now,
        create: Some(rng),
    };
    let record = (record, ClaimChanges::default());
    let landed = cas::change(&slot, record, |(record, claims)| {
        let (answer, changes) = edit(record)?;
        *claims = changes;
        Ok(Step::Write(answer))
    })
    .await?;
    Ok(landed.answer)
}

/// Like [`update`], for an account that has a record: nothing is written
/// when it has none, or when `edit` answers `None` (nothing to change; it
/// must then leave the record as it found it).
///
/// # Errors
/// What `edit` returns; [`ContactRefusal::InUse`](crate::error::ContactRefusal::InUse) when a claim is held by
/// another account; [`Error::Store`].
pub(crate) async fn update_existing<T>(
    store: &dyn Store,
    account: &AccountId,
    mut edit: impl FnMut(&mut AccountRecord) -> Result<Option<(T, ClaimChanges)>, Error>,
) -> Result<Option<T>, Error> {
    let Some(record) = store.account_record(account).await? else {
        return Ok(None);
    };
    let slot = AccountSlot {
        store,
        account,
        now: record.created_at,
        create: None,
    };
    let landed = cas::change(
        &slot,
        (record, ClaimChanges::default()),
        |(record, claims)| {
            Ok(match edit(record)? {
                Some((answer, changes)) => {
                    *claims = changes;
                    Step::Write(Some(answer))
                }
                None => Step::Keep(None),
            })
        },
    )
    .await?;
    Ok(landed.answer)
}
