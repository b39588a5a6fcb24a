//! Counting a guess before it is checked: the one protocol every secret
//! goes through (sent codes, one-time links, the masked-contact
//! confirmation, recovery codes, authenticator codes).
//!
//! A guess is charged to the account's failure run **first**, with a
//! compare-and-set that refuses it if the run, as it stands at that moment,
//! locks the account (a back-off still running, or the hard stop). Only a
//! guess that was counted is compared with the secret. Racing guesses that
//! read the same run can't all be counted: one wins the compare-and-set, the
//! others re-read the longer run and decide again, so no number of parallel
//! requests gets more comparisons than the back-off allows, and the run
//! never grows past the hard stop.
//!
//! After the comparison the caller settles the guess: [`Counted::right`]
//! ends the run (a second factor was proven) and [`Counted::wrong`] leaves
//! it counted and reports a new lockout. Nothing is ever taken back: a
//! secret that is right but proves nothing on its own (the masked-contact
//! confirmation, a link token that was only opened) is [`judge`]d instead,
//! and most secrets are counted in the very commit that settles them
//! (`cas::GuessSlot`, `cas::AccountGuessSlot`), which is where a new check
//! belongs.

use time::OffsetDateTime;

use super::cas::{self, FailureSlot, Step};
use crate::error::{AccountRefusal, Error, Refusal};
use crate::events::{Event, EventSink};
use crate::limits::FailurePolicy;
use crate::model::{AccountId, FailureRecord};
use crate::store::{Load, Store};

/// A guess charged to an account's failure run, waiting to be settled.
#[derive(Debug)]
#[must_use = "a counted guess is settled with right or wrong"]
pub(crate) struct Counted {
    account: AccountId,
    run: FailureRecord,
}

/// Charges one guess to `account`'s failure run if the policy lets the
/// account guess at `now`; the refusal (`Locked`) if not. A guess that
/// loses the compare-and-set to another is decided again on the longer run.
///
/// # Errors
/// Store failures: nothing was counted or checked then.
pub(crate) async fn count(
    store: &dyn Store,
    policy: &FailurePolicy,
    account: &AccountId,
    now: OffsetDateTime,
) -> Result<Result<Counted, Refusal>, Error> {
    let slot = FailureSlot { store, account };
    // Read through `load`, which checks the initialisation marker: a store
    // that lost its data must not count (or answer) a guess as if the
    // account had no failures.
    let run = store.load(&Load::account(account)).await?.failures;
    let landed = cas::change(&slot, run, |run| {
        if let Some(refusal) = policy.lockout(run.as_ref(), now).refusal() {
            return Ok(Step::Keep(Err(refusal)));
        }
        let counted = FailureRecord {
            consecutive: run.map_or(0, |r| r.consecutive).saturating_add(1),
            last_failure_at: now,
        };
        *run = Some(counted);
        Ok(Step::Write(Ok(counted)))
    })
    .await?;
    Ok(landed.answer.map(|run| Counted {
        account: account.clone(),
        run,
    }))
}

/// Settles a guess whose answer is already known, `right` or not (a check
/// made in constant time against something the caller holds, such as the
/// masked-contact confirmation), in one compare-and-set loop on the
/// account's failure run, where [`count`] and a refund would take two: a
/// locked account is refused (`Err`) and nothing is answered; a wrong
/// guess lengthens the run and answers it (`Ok(Some(run))`); a right one
/// is answered (`Ok(None)`) only when a compare-and-set of the run on
/// itself lands, that is, only while the run it was judged on is still the
/// account's. Racing guesses therefore get no more answers than the
/// back-off allows, as with [`count`], and a right guess never takes
/// anything back, so it can't erase a failure counted meanwhile (which a
/// refund compared by value could, when a newer run had the same length
/// and instant).
///
/// # Errors
/// Store failures: nothing was counted or answered then.
pub(crate) async fn judge(
    store: &dyn Store,
    policy: &FailurePolicy,
    account: &AccountId,
    now: OffsetDateTime,
    right: bool,
) -> Result<Result<Option<FailureRecord>, Refusal>, Error> {
    let slot = FailureSlot { store, account };
    let run = store.load(&Load::account(account)).await?.failures;
    let landed = cas::change(&slot, run, |run| {
        if let Some(refusal) = policy.lockout(run.as_ref(), now).refusal() {
            return Ok(Step::Keep(Err(refusal)));
        }
        if right {
            // Written unchanged: the compare-and-set alone.
            return Ok(Step::Write(Ok(None)));
        }
        let counted = FailureRecord {
            consecutive: run.map_or(0, |r| r.consecutive).saturating_add(1),
            last_failure_at: now,
        };
        *run = Some(counted);
        Ok(Step::Write(Ok(Some(counted))))
    })
    .await?;
    Ok(landed.answer)
}

impl Counted {
    /// The guess was right and proves a factor: the run ends. Bookkeeping
    /// that must not turn a success into an error, so a store failure here
    /// leaves the run counted (stricter than it should be until the next
    /// success).
    pub(crate) async fn right(self, store: &dyn Store) {
        let _ = store.clear_failures(&self.account).await;
    }

    /// The guess was wrong: it stays counted. Reports when this failure
    /// locks the account.
    pub(crate) fn wrong(
        &self,
        policy: &FailurePolicy,
        events: &dyn EventSink,
        now: OffsetDateTime,
    ) {
        report_lock(policy, events, &self.account, &self.run, now);
    }
}

/// Reports [`Event::Locked`] when `run`, just lengthened by a wrong guess,
/// locks the account at `now`.
pub(crate) fn report_lock(
    policy: &FailurePolicy,
    events: &dyn EventSink,
    account: &AccountId,
    run: &FailureRecord,
    now: OffsetDateTime,
) {
    if let Some(Refusal::Account(AccountRefusal::Locked { until })) =
        policy.lockout(Some(run), now).refusal()
    {
        events.record(&Event::Locked {
            account: account.clone(),
            consecutive: run.consecutive,
            until,
        });
    }
}
