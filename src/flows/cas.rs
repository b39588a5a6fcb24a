//! Load → decide → compare-and-set: the one loop every change of a stored
//! record goes through.
//!
//! A change reads the record, lets a pure `decide` say what the record
//! becomes (or that nothing is to be written) and writes it with the
//! store's compare-and-set. When another writer got there first the write
//! is refused as a conflict, the record is read again and `decide` runs on
//! the fresh copy, so a decision is always made on the record it replaces.
//! `decide` may therefore run more than once and must not have effects of
//! its own; an error from it writes nothing.
//!
//! Where a record lives (which store call reads it, which writes it, what
//! an absent record means) is a [`Slot`]; every slot shares one retry
//! bound, [`MAX_ROUNDS`].

use std::future::Future;

use time::OffsetDateTime;

use crate::error::{CodeRefusal, ContactRefusal, Error, Refusal};
use crate::model::draw_incarnation;
use crate::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, DeviceRecord, FailureRecord,
    VerificationId, VerificationRecord,
};
use crate::random::Random;
use crate::store::{
    AccountCommit, ChallengeWrite, ClaimChanges, Commit, FailureChange, Load, RecordCheck,
    RecordWrite, Store, StoreError,
};

/// Most compare-and-set rounds one change makes before it gives up with a
/// conflict. Each lost round means another change of the same record
/// landed: 64 racing changes of one record settle well within it, and under
/// the back-off only a few guesses are ever counted at once.
pub(crate) const MAX_ROUNDS: usize = 256;

/// What `decide` made of the record.
pub(crate) enum Step<T> {
    /// The record was changed in place: write it, then answer `T`.
    Write(T),
    /// Write nothing (and `decide` left the record as read); answer `T`.
    Keep(T),
}

/// How a change ended: the answer, the record as written (or, when
/// nothing was, as last read), and whether it was written.
pub(crate) struct Landed<R, T> {
    pub(crate) answer: T,
    pub(crate) record: R,
    pub(crate) written: bool,
}

/// Where one record lives: how to read it afresh and how to replace it.
pub(crate) trait Slot: Sync {
    /// The record, as read and as changed by `decide`.
    type Record: Send + Sync;
    /// What the compare-and-set compares: the version read, or the value.
    type Expected: Send + Sync;

    /// What the compare-and-set of a change of `record` expects to find.
    fn expected(record: &Self::Record) -> Self::Expected;

    /// Reads the record afresh (after a lost compare-and-set).
    fn load(&self) -> impl Future<Output = Result<Self::Record, Error>> + Send;

    /// Writes `next` if the stored record still matches `expected`, moving
    /// `next`'s version on first. A conflict when it doesn't; nothing is
    /// written then.
    fn replace(
        &self,
        expected: &Self::Expected,
        next: &mut Self::Record,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Lets `decide` change `record` in place and writes the result with
/// compare-and-set, reading the record again and deciding again after each
/// lost race, at most [`MAX_ROUNDS`] times.
///
/// # Errors
/// What `decide` or the slot returns; a conflict [`Error::Store`] when
/// every round was lost.
pub(crate) async fn change<S: Slot, T>(
    slot: &S,
    mut record: S::Record,
    mut decide: impl FnMut(&mut S::Record) -> Result<Step<T>, Error>,
) -> Result<Landed<S::Record, T>, Error> {
    for _ in 0..MAX_ROUNDS {
        let expected = S::expected(&record);
        match decide(&mut record)? {
            Step::Keep(answer) => {
                return Ok(Landed {
                    answer,
                    record,
                    written: false,
                });
            }
            Step::Write(answer) => match slot.replace(&expected, &mut record).await {
                Ok(()) => {
                    return Ok(Landed {
                        answer,
                        record,
                        written: true,
                    });
                }
                Err(e) if e.is_conflict() => record = slot.load().await?,
                Err(e) => return Err(e),
            },
        }
    }
    Err(StoreError::conflict().into())
}

/// A challenge, by id. Gone means [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown).
pub(crate) struct ChallengeSlot<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) id: ChallengeId,
}

impl Slot for ChallengeSlot<'_> {
    type Record = ChallengeRecord;
    type Expected = u64;

    fn expected(record: &ChallengeRecord) -> u64 {
        record.version
    }

    async fn load(&self) -> Result<ChallengeRecord, Error> {
        self.store
            .challenge(&self.id)
            .await?
            .ok_or(Error::Refused(Refusal::Code(CodeRefusal::Unknown)))
    }

    async fn replace(&self, expected: &u64, next: &mut ChallengeRecord) -> Result<(), Error> {
        next.version = expected.wrapping_add(1);
        Ok(self.store.replace_challenge(next, *expected).await?)
    }
}

/// A combined verification, by id. Gone means [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown).
pub(crate) struct VerificationSlot<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) id: VerificationId,
}

impl Slot for VerificationSlot<'_> {
    type Record = VerificationRecord;
    type Expected = u64;

    fn expected(record: &VerificationRecord) -> u64 {
        record.version
    }

    async fn load(&self) -> Result<VerificationRecord, Error> {
        self.store
            .verification(&self.id)
            .await?
            .ok_or(Error::Refused(Refusal::Code(CodeRefusal::Unknown)))
    }

    async fn replace(&self, expected: &u64, next: &mut VerificationRecord) -> Result<(), Error> {
        next.version = expected.wrapping_add(1);
        Ok(self.store.replace_verification(next, *expected).await?)
    }
}

/// A trusted device's record. Gone means [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown).
pub(crate) struct DeviceSlot<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) account: &'a AccountId,
    pub(crate) id: crate::model::DeviceId,
}

impl Slot for DeviceSlot<'_> {
    type Record = DeviceRecord;
    type Expected = u64;

    fn expected(record: &DeviceRecord) -> u64 {
        record.version
    }

    async fn load(&self) -> Result<DeviceRecord, Error> {
        self.store
            .device(self.account, &self.id)
            .await?
            .ok_or(Error::Refused(Refusal::Code(CodeRefusal::Unknown)))
    }

    async fn replace(&self, expected: &u64, next: &mut DeviceRecord) -> Result<(), Error> {
        next.version = expected.wrapping_add(1);
        Ok(self.store.replace_device(next, *expected).await?)
    }
}

/// An account's record, written together with the contact claims the
/// change makes (`decide` fills them in; they start empty on every read).
/// An account without a record reads as a fresh one (version 0, nothing
/// stored yet, with a new incarnation drawn from it) when `create` holds a
/// random source, as [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown)
/// when not.
pub(crate) struct AccountSlot<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) account: &'a AccountId,
    pub(crate) now: OffsetDateTime,
    pub(crate) create: Option<&'a dyn Random>,
}

impl AccountSlot<'_> {
    /// The record as it stands, or what [`load`](Slot::load) makes of its
    /// absence.
    pub(crate) async fn read(&self) -> Result<AccountRecord, Error> {
        match self.store.account_record(self.account).await? {
            Some(record) => Ok(record),
            None => match self.create {
                Some(rng) => Ok(AccountRecord::fresh(
                    self.account,
                    self.now,
                    draw_incarnation(rng)?,
                )),
                None => Err(Refusal::Code(CodeRefusal::Unknown).into()),
            },
        }
    }
}

impl Slot for AccountSlot<'_> {
    type Record = (AccountRecord, ClaimChanges);
    /// `None`: no record is stored yet (stored records start at version 1).
    type Expected = Option<u64>;

    fn expected((record, _): &(AccountRecord, ClaimChanges)) -> Option<u64> {
        (record.version != 0).then_some(record.version)
    }

    async fn load(&self) -> Result<(AccountRecord, ClaimChanges), Error> {
        Ok((self.read().await?, ClaimChanges::default()))
    }

    async fn replace(
        &self,
        expected: &Option<u64>,
        (next, claims): &mut (AccountRecord, ClaimChanges),
    ) -> Result<(), Error> {
        next.version = expected.map_or(1, |v| v.wrapping_add(1));
        match self.store.commit_account(next, *expected, claims).await? {
            AccountCommit::Committed => Ok(()),
            AccountCommit::Taken { .. } => Err(Refusal::Contact(ContactRefusal::InUse).into()),
        }
    }
}

/// A challenge of an account together with the account's failure run,
/// read by one [`load`](crate::store::StepStore::load) and written by one
/// [`commit`](crate::store::StepStore::commit): a guess is counted (or the
/// run ended) in the same atomic step that writes the challenge, and both
/// are compared with what was read. With `device`, a right guess also
/// trusts that device in the same step ([`GuessRecord::trust`]).
///
/// With `decided_on`, the guess was judged on the account's record at that
/// version (`None`: no record), say a sign-in that checked the code's
/// contact and took the epoch of its device from it: every commit checks
/// the record is still there ([`RecordCheck`]), and a fresh read that
/// finds it changed ends the loop with a conflict, for the caller to
/// decide again from the record.
pub(crate) struct GuessSlot<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) account: &'a AccountId,
    pub(crate) id: ChallengeId,
    pub(crate) device: Option<&'a DeviceRecord>,
    pub(crate) decided_on: Option<Option<u64>>,
}

/// What a [`GuessSlot`] reads and writes.
pub(crate) struct GuessRecord {
    pub(crate) challenge: ChallengeRecord,
    pub(crate) run: Option<FailureRecord>,
    /// Whether the write also inserts the slot's device (`decide` sets it
    /// for a right guess).
    pub(crate) trust: bool,
}

impl Slot for GuessSlot<'_> {
    type Record = GuessRecord;
    type Expected = (u64, Option<FailureRecord>);

    fn expected(record: &GuessRecord) -> (u64, Option<FailureRecord>) {
        (record.challenge.version, record.run)
    }

    async fn load(&self) -> Result<GuessRecord, Error> {
        let loaded = self
            .store
            .load(&Load::account(self.account).with_challenge(&self.id))
            .await?;
        if let Some(version) = self.decided_on
            && loaded.record.as_ref().map(|r| r.version) != version
        {
            return Err(StoreError::conflict().into());
        }
        let challenge = loaded
            .challenge
            .ok_or(Error::Refused(Refusal::Code(CodeRefusal::Unknown)))?;
        Ok(GuessRecord {
            challenge,
            run: loaded.failures,
            trust: false,
        })
    }

    async fn replace(
        &self,
        (version, run): &(u64, Option<FailureRecord>),
        next: &mut GuessRecord,
    ) -> Result<(), Error> {
        next.challenge.version = version.wrapping_add(1);
        let commit = Commit {
            failures: Some(FailureChange {
                account: self.account,
                expected: *run,
                next: next.run,
            }),
            challenge: Some(ChallengeWrite::Replace {
                record: &next.challenge,
                expected_version: *version,
            }),
            device: self.device.filter(|_| next.trust),
            record_check: self.decided_on.map(|version| RecordCheck {
                account: self.account,
                version,
            }),
            ..Commit::default()
        };
        // No hits: the instant is not used.
        self.store
            .commit(&commit, OffsetDateTime::UNIX_EPOCH)
            .await?;
        Ok(())
    }
}

/// An account's record together with its failure run, read by one
/// [`load`](crate::store::StepStore::load) and written by one
/// [`commit`](crate::store::StepStore::commit): a guess at a secret kept in
/// the record (a recovery code) is counted, or the run ended, in the same
/// atomic step that changes the record. With `device`, a success that asks
/// for it ([`AccountGuess::trust`]) also trusts that device, at the epoch
/// the record is written with.
///
/// A commit that leaves the record as it is (a wrong guess, the retry of
/// an attempt whose reply was lost) still checks it ([`RecordCheck`]): the
/// decision was made on that record, and a device trusted on it must not
/// land once the account is gone, or made again under the same id.
pub(crate) struct AccountGuessSlot<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) account: &'a AccountId,
    pub(crate) device: Option<&'a DeviceRecord>,
}

/// What an [`AccountGuessSlot`] reads and writes.
pub(crate) struct AccountGuess {
    pub(crate) record: AccountRecord,
    pub(crate) run: Option<FailureRecord>,
    /// Whether `decide` changed the record (else only the run is written).
    pub(crate) changed: bool,
    /// Whether the write also inserts the slot's device.
    pub(crate) trust: bool,
}

impl AccountGuess {
    pub(crate) fn new(record: AccountRecord, run: Option<FailureRecord>) -> Self {
        Self {
            record,
            run,
            changed: false,
            trust: false,
        }
    }

    /// The run with one more failure, at `now`: what a wrong guess writes.
    pub(crate) fn one_more(&self, now: OffsetDateTime) -> Option<FailureRecord> {
        Some(FailureRecord {
            consecutive: self.run.map_or(0, |r| r.consecutive).saturating_add(1),
            last_failure_at: now,
        })
    }
}

impl Slot for AccountGuessSlot<'_> {
    type Record = AccountGuess;
    type Expected = (u64, Option<FailureRecord>);

    fn expected(guess: &AccountGuess) -> (u64, Option<FailureRecord>) {
        (guess.record.version, guess.run)
    }

    async fn load(&self) -> Result<AccountGuess, Error> {
        let loaded = self.store.load(&Load::account(self.account)).await?;
        let record = loaded
            .record
            .ok_or(Error::Refused(Refusal::Code(CodeRefusal::Unknown)))?;
        Ok(AccountGuess::new(record, loaded.failures))
    }

    async fn replace(
        &self,
        (version, run): &(u64, Option<FailureRecord>),
        next: &mut AccountGuess,
    ) -> Result<(), Error> {
        let claims = ClaimChanges::default();
        if next.changed {
            next.record.version = version.wrapping_add(1);
        }
        // The device belongs to the record as it is written: its epoch and
        // incarnation.
        let device = self.device.filter(|_| next.trust).map(|d| DeviceRecord {
            epoch: next.record.epoch,
            incarnation: next.record.incarnation,
            ..d.clone()
        });
        let commit = Commit {
            failures: Some(FailureChange {
                account: self.account,
                expected: *run,
                next: next.run,
            }),
            record: next.changed.then_some(RecordWrite {
                record: &next.record,
                expected_version: Some(*version),
                claims: &claims,
            }),
            device: device.as_ref(),
            // Written, the record's expected version checks it.
            record_check: (!next.changed).then_some(RecordCheck {
                account: self.account,
                version: Some(*version),
            }),
            ..Commit::default()
        };
        // No hits: the instant is not used.
        self.store
            .commit(&commit, OffsetDateTime::UNIX_EPOCH)
            .await?;
        Ok(())
    }
}

/// An account's run of failed guesses, compared as a whole value (`None`:
/// no run).
pub(crate) struct FailureSlot<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) account: &'a AccountId,
}

impl Slot for FailureSlot<'_> {
    type Record = Option<FailureRecord>;
    type Expected = Option<FailureRecord>;

    fn expected(record: &Option<FailureRecord>) -> Option<FailureRecord> {
        *record
    }

    async fn load(&self) -> Result<Option<FailureRecord>, Error> {
        // Through `load`: the initialisation marker is checked with it.
        Ok(self
            .store
            .load(&Load::account(self.account))
            .await?
            .failures)
    }

    async fn replace(
        &self,
        expected: &Option<FailureRecord>,
        next: &mut Option<FailureRecord>,
    ) -> Result<(), Error> {
        Ok(self
            .store
            .replace_failures(self.account, *expected, *next)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A counter in memory that loses the next `conflicts` writes, as if
    /// another writer had got there first each time.
    struct Counter {
        stored: Mutex<(u64, u32)>,
        conflicts: Mutex<usize>,
        writes: Mutex<usize>,
    }

    impl Counter {
        fn new(conflicts: usize) -> Self {
            Self {
                stored: Mutex::new((1, 0)),
                conflicts: Mutex::new(conflicts),
                writes: Mutex::new(0),
            }
        }
    }

    impl Slot for Counter {
        type Record = (u64, u32);
        type Expected = u64;

        fn expected(record: &(u64, u32)) -> u64 {
            record.0
        }

        async fn load(&self) -> Result<(u64, u32), Error> {
            Ok(*self.stored.lock().unwrap())
        }

        async fn replace(&self, expected: &u64, next: &mut (u64, u32)) -> Result<(), Error> {
            let mut conflicts = self.conflicts.lock().unwrap();
            let mut stored = self.stored.lock().unwrap();
            if *conflicts > 0 {
                // Another writer lands first.
                *conflicts -= 1;
                stored.0 += 1;
                stored.1 += 10;
                return Err(StoreError::conflict().into());
            }
            if stored.0 != *expected {
                return Err(StoreError::conflict().into());
            }
            next.0 = expected + 1;
            *stored = *next;
            *self.writes.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn run<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn add_one(record: &mut (u64, u32)) -> Result<Step<u32>, Error> {
        record.1 += 1;
        Ok(Step::Write(record.1))
    }

    #[test]
    fn a_lost_race_decides_again_on_the_fresh_record() {
        let slot = Counter::new(3);
        let first = run(slot.load()).unwrap();
        let landed = run(change(&slot, first, add_one)).unwrap();
        // Three other writers added 10 each before this one landed.
        assert_eq!(landed.answer, 31);
        assert!(landed.written);
        assert_eq!(landed.record, (5, 31));
        assert_eq!(*slot.stored.lock().unwrap(), (5, 31));
        assert_eq!(*slot.writes.lock().unwrap(), 1);
    }

    #[test]
    fn every_round_lost_is_a_conflict_and_nothing_of_ours_is_written() {
        let slot = Counter::new(MAX_ROUNDS);
        let first = run(slot.load()).unwrap();
        let error = run(change(&slot, first, add_one)).err().unwrap();
        assert!(error.is_conflict());
        assert_eq!(*slot.writes.lock().unwrap(), 0);
        // One round fewer lost, and the change lands in the last round.
        let slot = Counter::new(MAX_ROUNDS - 1);
        let first = run(slot.load()).unwrap();
        assert!(run(change(&slot, first, add_one)).unwrap().written);
    }

    #[test]
    fn keep_and_errors_write_nothing() {
        let slot = Counter::new(0);
        let first = run(slot.load()).unwrap();
        let kept = run(change(&slot, first, |r| Ok(Step::Keep(r.1)))).unwrap();
        assert!(!kept.written);
        assert_eq!(kept.record, (1, 0));
        let refused = run(change(&slot, first, |r: &mut (u64, u32)| {
            r.1 = 99;
            Err::<Step<()>, _>(Refusal::Code(CodeRefusal::Unknown).into())
        }));
        assert!(matches!(
            refused,
            Err(Error::Refused(Refusal::Code(CodeRefusal::Unknown)))
        ));
        assert_eq!(*slot.stored.lock().unwrap(), (1, 0));
        assert_eq!(*slot.writes.lock().unwrap(), 0);
    }
}
