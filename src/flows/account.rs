//! The account's record (its [`AccountRecord`]): contacts, two-step
//! settings, authenticator app, recovery codes and security epoch, changed
//! together by one compare-and-set.

use time::OffsetDateTime;

use crate::error::{Error, Refusal};
use crate::model::{AccountId, AccountRecord, Factors, GraceState};
use crate::store::{AccountCommit, ClaimChanges, Store, StoreError};

/// Most compare-and-set rounds one change makes before giving up with a
/// conflict. Each lost round means another change of the same account
/// landed; even 64 racing changes of one account settle well within it.
const MAX_ROUNDS: usize = 128;

/// The record of an account ninsho has not seen before: no contacts, no
/// factors, epoch 0, and a grace period not yet started (the contact flows
/// start it the first time they see the account).
pub(crate) fn fresh_book(account: &AccountId, now: OffsetDateTime) -> AccountRecord {
    AccountRecord {
        account: account.clone(),
        version: 0,
        contacts: Vec::new(),
        grace: GraceState::new(),
        created_at: now,
        factors: Factors::default(),
        epoch: 0,
        last_change: None,
    }
}

/// Moves the account's security epoch on, in the record about to be
/// written: every trusted device and step-up proof from before dies, and so
/// does an authenticator app being set up (it was started under the old
/// epoch: a session that has since been signed out must not finish it).
/// Returns the new epoch.
pub(crate) fn move_epoch(book: &mut AccountRecord) -> u64 {
    book.epoch = book.epoch.saturating_add(1);
    book.factors.pending_authenticator = None;
    book.epoch
}

/// The account's security epoch (0 for an account without a record).
pub(crate) async fn epoch(store: &dyn Store, account: &AccountId) -> Result<u64, StoreError> {
    Ok(store.account_record(account).await?.map_or(0, |b| b.epoch))
}

/// Reads the account's record (a fresh one if it has none), lets `edit`
/// change it and return its answer with the claims to change, and writes it
/// back with compare-and-set, re-reading and editing again after a
/// conflict (so `edit` may run more than once). An error from `edit`
/// writes nothing.
///
/// # Errors
/// What `edit` returns; [`Refusal::ContactInUse`] when a claim is held by
/// another account; [`Error::Store`].
pub(crate) async fn update<T>(
    store: &dyn Store,
    account: &AccountId,
    now: OffsetDateTime,
    mut edit: impl FnMut(&mut AccountRecord) -> Result<(T, ClaimChanges), Error>,
) -> Result<T, Error> {
    for _ in 0..MAX_ROUNDS {
        let stored = store.account_record(account).await?;
        let expected = stored.as_ref().map(|b| b.version);
        let mut book = stored.unwrap_or_else(|| fresh_book(account, now));
        let (answer, changes) = edit(&mut book)?;
        book.version = expected.map_or(1, |v| v.wrapping_add(1));
        match store.commit_account(&book, expected, &changes).await {
            Ok(AccountCommit::Committed) => return Ok(answer),
            Ok(AccountCommit::Taken { .. }) => return Err(Refusal::ContactInUse.into()),
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::conflict().into())
}

/// Like [`update`], for an account that has a record: nothing is written
/// when it has none, or when `edit` answers `None` (nothing to change).
///
/// # Errors
/// What `edit` returns; [`Refusal::ContactInUse`] when a claim is held by
/// another account; [`Error::Store`].
pub(crate) async fn update_existing<T>(
    store: &dyn Store,
    account: &AccountId,
    mut edit: impl FnMut(&mut AccountRecord) -> Result<Option<(T, ClaimChanges)>, Error>,
) -> Result<Option<T>, Error> {
    for _ in 0..MAX_ROUNDS {
        let Some(mut book) = store.account_record(account).await? else {
            return Ok(None);
        };
        let expected = book.version;
        let Some((answer, changes)) = edit(&mut book)? else {
            return Ok(None);
        };
        book.version = expected.wrapping_add(1);
        match store.commit_account(&book, Some(expected), &changes).await {
            Ok(AccountCommit::Committed) => return Ok(Some(answer)),
            Ok(AccountCommit::Taken { .. }) => return Err(Refusal::ContactInUse.into()),
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::conflict().into())
}
