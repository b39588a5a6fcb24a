//! The account's record (its [`AccountRecord`]): contacts, two-step
//! settings, authenticator app, recovery codes and security epoch, changed
//! together by one compare-and-set.

use time::OffsetDateTime;

use super::cas::{self, AccountSlot, Step};
use crate::error::Error;
use crate::model::{AccountId, AccountRecord};
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
/// is consulted, so instances whose clocks disagree agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    /// The security epoch (0 without a record).
    pub(crate) epoch: u64,
    /// The stored record's incarnation (0 without a record).
    pub(crate) incarnation: u64,
}

impl Standing {
    /// The standing `record` gives (`None`, or a fresh record not stored
    /// yet: the account has no record).
    pub(crate) fn of(record: Option<&AccountRecord>) -> Self {
        Self {
            epoch: record.map_or(0, |b| b.epoch),
            incarnation: record
                .filter(|b| b.version > 0)
                .map_or(0, |b| b.incarnation),
        }
    }

    /// Whether something issued at security epoch `epoch` for the record
    /// of incarnation `incarnation` still stands: the epoch has not moved
    /// past it, and the record is the one it was issued for.
    pub(crate) fn admits(&self, epoch: u64, incarnation: u64) -> bool {
        epoch >= self.epoch && incarnation == self.incarnation
    }

    /// Whether a challenge issued for the record of `incarnation` (0: for
    /// no record in particular) may be used with this one.
    pub(crate) fn owns_challenge(&self, incarnation: u64) -> bool {
        incarnation == 0 || incarnation == self.incarnation
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
