//! The account's record (its [`AccountRecord`]): contacts, two-step
//! settings, authenticator app, recovery codes and security epoch, changed
//! together by one compare-and-set.

use time::OffsetDateTime;

use super::cas::{self, AccountSlot, Step};
use crate::error::Error;
use crate::model::{AccountId, AccountRecord};
use crate::store::{ClaimChanges, Store, StoreError};

/// The account's security epoch (0 for an account without a record).
pub(crate) async fn epoch(store: &dyn Store, account: &AccountId) -> Result<u64, StoreError> {
    Ok(store.account_record(account).await?.map_or(0, |b| b.epoch))
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
    account: &AccountId,
    now: OffsetDateTime,
    edit: impl FnMut(&mut AccountRecord) -> Result<(T, ClaimChanges), Error>,
) -> Result<T, Error> {
    let slot = AccountSlot {
        store,
        account,
        now,
        create: true,
    };
    let record = slot.read().await?;
    update_from(store, account, now, record, edit).await
}

/// [`update`] starting from `record`, the account's record as the caller
/// just read it ([`AccountRecord::fresh`] when it has none): no read of its
/// own unless the compare-and-set finds it changed.
///
/// # Errors
/// As for [`update`].
pub(crate) async fn update_from<T>(
    store: &dyn Store,
    account: &AccountId,
    now: OffsetDateTime,
    record: AccountRecord,
    mut edit: impl FnMut(&mut AccountRecord) -> Result<(T, ClaimChanges), Error>,
) -> Result<T, Error> {
    let slot = AccountSlot {
        store,
        account,
        now,
        create: true,
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
        create: false,
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
