//! Recovery codes: generate (show once), redeem once, regenerate.

//!
//! The codes live in the account's record, so using one and moving the
//! security epoch on are one compare-and-set: a failure can't spend a code
//! and leave the account's devices trusted, or the other way round.

use super::account::Standing;
use super::cas::{self, AccountGuess, AccountGuessSlot, Step};
use super::{Attempt, Ports};
use crate::error::{CodeRefusal, Error, Refusal, SecretKind};
use crate::events::Event;
use crate::hash::KeyId;
use crate::limits::FailurePolicy;
use crate::model::{AccountId, DeviceRecord, RecoverySet};
use crate::recovery::{self, Lookup, PlainCodes, RecoveryPolicy};
use crate::store::Load;

/// How long after a recovery code was used the sign-in attempt that used it
/// may present it again and get the same success (its reply was lost): as
/// long as a sent code lives.
const RETRY_WINDOW: time::Duration = time::Duration::minutes(10);

/// A successful redemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Redeemed {
    /// Unused codes left.
    pub remaining: usize,
    /// Whether that is at or below the policy's "running low" threshold:
    /// prompt the user to generate a new set.
    pub running_low: bool,
    /// The account's security epoch after the redemption (moved on by it:
    /// every trusted device and step-up proof from before is dead).
    pub epoch: u64,
}

/// Recovery codes of accounts (nizima: 10 single-use codes; regenerating
/// voids the old set).
#[derive(Debug, Clone)]
pub struct RecoveryCodes {
    pub(super) ports: Ports,
    policy: RecoveryPolicy,
    failures: FailurePolicy,
}

impl RecoveryCodes {
    /// Recovery codes on `ports` with the default policies.
    #[must_use]
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            policy: RecoveryPolicy::default(),
            failures: FailurePolicy::default(),
        }
    }

    /// Sets how codes are made (count, length, low threshold).
    #[must_use]
    pub fn with_policy(mut self, policy: RecoveryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the per-account failure back-off redemptions count against
    /// (the same run as one-time codes).
    #[must_use]
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failures = policy;
        self
    }

    /// A new set for the account, not yet stored: the plain codes (show
    /// once) and the record. The service stores it in the same write that
    /// turns two-step sign-in on.
    pub(crate) fn fresh_set(&self) -> Result<(PlainCodes, RecoverySet), Error> {
        let p = &self.ports;
        Ok(recovery::generate(
            &self.policy,
            &p.hasher,
            &*p.rng,
            p.now(),
        )?)
    }

    /// Reports a set that was just stored.
    pub(crate) fn generated(&self, account: &AccountId, count: usize) {
        self.ports.emit(Event::RecoveryCodesGenerated {
            account: account.clone(),
            count,
        });
    }

    #[cfg(any(test, feature = "testkit"))]
    /// Generates a new set for the account, replacing any previous set in
    /// one atomic write: every old code stops working at once. Returns the
    /// plain codes, to show the user exactly once.
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Random`].
    pub async fn generate(&self, account: &AccountId) -> Result<PlainCodes, Error> {
        let p = &self.ports;
        let (plain, set) = self.fresh_set()?;
        super::account::update(&*p.store, &*p.rng, account, p.now(), |book| {
            crate::factors::put_recovery(book, set.clone());
            Ok(((), crate::store::ClaimChanges::default()))
        })
        .await?;
        self.generated(account, plain.len());
        Ok(plain)
    }

    #[cfg(any(test, feature = "testkit"))]
    /// Redeems a code as the user typed it (case, spaces, hyphens and
    /// full-width characters don't matter). The code is marked used, and
    /// the account's security epoch moved on (a recovery code is used when
    /// the usual factor is lost: every trusted device dies), in one
    /// compare-and-set: of racing redemptions of one code exactly one
    /// succeeds, and no failure spends the code without moving the epoch.
    ///
    /// Every guess is counted against the account's failure back-off
    /// *before* it is checked, and the run ends when it is right, so no
    /// number of concurrent guesses gets past the back-off or the hard
    /// stop. A used code typed again counts like a wrong one.
    ///
    /// # Errors
    /// [`CodeRefusal::WrongRecoveryCode`](crate::CodeRefusal::WrongRecoveryCode), [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed),
    /// [`AccountRefusal::Locked`](crate::AccountRefusal::Locked), [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown) (no set); [`Error::Store`]
    /// — then nothing was consumed; [`Error::RetiredKey`] when no code
    /// matched and unused codes were hashed with a key the hasher no longer
    /// holds (the guess is not counted).
    pub async fn redeem(&self, account: &AccountId, input: &str) -> Result<Redeemed, Error> {
        self.redeem_step(account, input, None, None)
            .await
            .map(|(redeemed, _, _)| redeemed)
    }

    /// [`redeem`](Self::redeem) for a sign-in attempt, in the fewest store
    /// calls: one [`load`](crate::store::StepStore::load) of the record with
    /// its failure run, and one commit that writes the guess's outcome to
    /// both (and, with `device`, trusts it at the epoch the redemption moves
    /// to). The code records the attempt, and a retry from the same attempt
    /// (whose reply was lost) gets the same success instead of "already
    /// used"; its device is written in its commit too, which lands only
    /// while the record it was decided on stands. Answers whether the
    /// device was written.
    pub(crate) async fn redeem_step(
        &self,
        account: &AccountId,
        input: &str,
        attempt: Option<&str>,
        device: Option<&DeviceRecord>,
    ) -> Result<(Redeemed, Standing, bool), Error> {
        let p = &self.ports;
        let scope = attempt_scope(account);
        let now = p.now();
        let store = &*p.store;
        let loaded = store.load(&Load::account(account)).await?;
        let Some(record) = loaded.record.filter(|r| r.factors.recovery.is_some()) else {
            return Err(self.refuse(account, Refusal::Code(CodeRefusal::Unknown)));
        };
        let slot = AccountGuessSlot {
            store,
            account,
            device,
        };
        let first = AccountGuess::new(record, loaded.failures);
        let landed = cas::change(&slot, first, |guess| {
            guess.changed = false;
            guess.trust = false;
            // Counted before it is checked (and the run ended if it is
            // right), in the same write: racing guesses can't outrun the
            // limits.
            if let Some(reason) = self.failures.lockout(guess.run.as_ref(), now).refusal() {
                return Ok(Step::Keep(Redemption::Locked(reason)));
            }
            let counted = guess.one_more(now);
            let epoch = guess.record.epoch;
            let Some(set) = guess.record.factors.recovery.as_mut() else {
                return Ok(Step::Keep(Redemption::NoSet));
            };
            let index = match recovery::find(set, input, &p.hasher) {
                Lookup::Unused(i) => i,
                Lookup::Used(i) => {
                    // The attempt that spent it may present it again, to
                    // learn the answer it lost: soon after, and only while
                    // the epoch it moved to is still the account's.
                    let code = set.codes.get(i);
                    let recent = code
                        .and_then(|c| c.used_at)
                        .is_some_and(|at| now < at.saturating_add(RETRY_WINDOW));
                    let by = code.and_then(|c| c.used_by.as_ref());
                    let at = attempt.map(|id| Attempt { id, epoch });
                    if !(recent && super::same_attempt(&p.hasher, &scope, at, by)) {
                        guess.run = counted;
                        return Ok(Step::Write(Redemption::AlreadyUsed));
                    }
                    // The attempt that spent it, retrying after a lost
                    // reply: the same success, the record left as it is.
                    // The device goes in with it, in a commit that
                    // checks the record this was decided on. The run is
                    // left as it is: wrong guesses counted since the
                    // success are not a retry's to erase.
                    let remaining = set.remaining();
                    guess.trust = true;
                    return Ok(Step::Write(Redemption::Again { remaining, epoch }));
                }
                // Neither right nor wrong: not counted.
                Lookup::RetiredKey(key_id) => return Ok(Step::Keep(Redemption::Retired(key_id))),
                _ => {
                    guess.run = counted;
                    return Ok(Step::Write(Redemption::Wrong));
                }
            };
            set.version = set.version.wrapping_add(1);
            // Recorded at the epoch this redemption moves to.
            let moved_to = epoch.saturating_add(1);
            if let Some(code) = set.codes.get_mut(index) {
                code.used_at = Some(now);
                code.used_by = attempt.map(|id| {
                    super::attempt_hash(
                        &p.hasher,
                        &scope,
                        Attempt {
                            id,
                            epoch: moved_to,
                        },
                    )
                });
            }
            let remaining = set.remaining();
            let epoch = crate::factors::move_epoch(&mut guess.record);
            guess.changed = true;
            guess.trust = true;
            guess.run = None;
            Ok(Step::Write(Redemption::Used { remaining, epoch }))
        })
        .await;
        let landed = match landed {
            Ok(landed) => landed,
            Err(Error::Refused(reason)) => return Err(self.refuse(account, reason)),
            Err(e) => return Err(e),
        };
        let trusted = landed.record.trust;
        // The record as written (or, for a retry, as checked): the device
        // trusted with it, and the step-up proof, belong to it.
        let standing = Standing::of(Some(&landed.record.record));
        let low = |remaining| remaining <= usize::from(self.policy.low_threshold);
        match landed.answer {
            Redemption::Used { remaining, epoch } => {
                p.emit(Event::RecoveryCodeUsed {
                    account: account.clone(),
                    remaining,
                });
                p.emit(Event::EpochBumped {
                    account: account.clone(),
                    epoch,
                });
                if low(remaining) {
                    p.emit(Event::RecoveryCodesLow {
                        account: account.clone(),
                        remaining,
                    });
                }
                let redeemed = Redeemed {
                    remaining,
                    running_low: low(remaining),
                    epoch,
                };
                Ok((redeemed, standing, trusted))
            }
            Redemption::Again { remaining, epoch } => {
                let redeemed = Redeemed {
                    remaining,
                    running_low: low(remaining),
                    epoch,
                };
                Ok((redeemed, standing, trusted))
            }
            Redemption::Retired(key_id) => Err(super::retired_key(
                &*p.events,
                Some(account.clone()),
                SecretKind::RecoveryCode,
                key_id,
            )),
            Redemption::Wrong => {
                if let Some(run) = &landed.record.run {
                    super::guess::report_lock(&self.failures, &*p.events, account, run, now);
                }
                Err(self.refuse(account, Refusal::Code(CodeRefusal::WrongRecoveryCode)))
            }
            Redemption::AlreadyUsed => {
                Err(self.refuse(account, Refusal::Code(CodeRefusal::AlreadyUsed)))
            }
            Redemption::Locked(reason) => Err(self.refuse(account, reason)),
            Redemption::NoSet => Err(self.refuse(account, Refusal::Code(CodeRefusal::Unknown))),
        }
    }

    /// Unused codes left, or `None` when the account has no set.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn remaining(&self, account: &AccountId) -> Result<Option<usize>, Error> {
        let book = self.ports.store.account_record(account).await?;
        Ok(book.and_then(|b| b.factors.recovery.map(|s| s.remaining())))
    }

    fn refuse(&self, account: &AccountId, reason: Refusal) -> Error {
        self.ports.emit(Event::Failed {
            challenge: None,
            account: Some(account.clone()),
            reason,
        });
        Error::Refused(reason)
    }
}

/// What a recovery code's attempt hash is bound to: the account.
fn attempt_scope(account: &AccountId) -> Vec<u8> {
    let mut scope = b"recovery:".to_vec();
    scope.extend_from_slice(account.0.as_bytes());
    scope
}

/// What a recovery code turned out to be, decided on the freshest record.
enum Redemption {
    /// Unused and now spent, the epoch moved on to `epoch`.
    Used { remaining: usize, epoch: u64 },
    /// Spent before by the same attempt: the same success again.
    Again { remaining: usize, epoch: u64 },
    /// No code matched, and unused codes were hashed with this retired key.
    Retired(KeyId),
    /// No code matched.
    Wrong,
    /// Spent before, by another attempt.
    AlreadyUsed,
    /// The account has no set (any more).
    NoSet,
    /// The account may not guess now (backing off, or stopped).
    Locked(Refusal),
}
