//! One-time codes: issue, resend, another option, verify.

use serde::Serialize;
use std::fmt;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::cas::{self, ChallengeSlot, GuessRecord, GuessSlot, Step};
use super::guess;
use super::{Attempt, Challenges};
use crate::challenge::{
    Decision, NewChallenge, decide, generate_code, hash_code, is_live_code, refusal_before_check,
    resend,
};
use crate::error::{CodeRefusal, Error, Misuse, Refusal, SecretKind, SendRefusal};
use crate::events::Event;
use crate::gateway::{CodeParams, DeliveryErrorKind, LinkParams, Message, Occasion, TemplateError};
use crate::hash::KeyId;
use crate::model::DeviceRecord;
use crate::model::{
    AccountId, ChallengeId, ChallengeRecord, ChallengeState, Channel, Destination, FailureRecord,
    Locale, Purpose,
};
use crate::secret::SecretString;
use crate::store::{ChallengeWrite, Commit, Load};

/// A request to send a code.
///
/// `Debug` masks the destination and redacts the caller key (often an IP
/// address) and the typed confirmation (the whole email address, for an
/// email): requests can be logged.
#[derive(Clone)]
#[non_exhaustive]
pub struct IssueRequest {
    /// Where to send it.
    pub destination: Destination,
    /// Why.
    pub purpose: Purpose,
    /// The account, if there is one yet.
    pub account: Option<AccountId>,
    /// A key for the per-caller limit (client IP, session id), if any.
    pub caller: Option<String>,
    /// Message language (default: the service's).
    pub locale: Option<Locale>,
    /// Masked-contact confirmation: what the user typed when asked to
    /// confirm the contact on file (the last digits of the phone that the
    /// [`MaskPolicy`](crate::contact::MaskPolicy) asks for, 4 by default, or
    /// the whole email address). When set, nothing is sent unless it
    /// matches.
    pub confirmation: Option<String>,
    /// The channel to start with (it must be in the plan for the
    /// destination: "call me instead"); the rest of the plan stays as
    /// fallback.
    pub channel: Option<Channel>,
    /// For a code that changes the account's factors: the account's
    /// security epoch it is issued under (see [`ChallengeRecord::epoch`]).
    pub(crate) epoch: Option<u64>,
    /// The [`incarnation`](crate::model::AccountRecord::incarnation) of the
    /// account's record it is issued for (0: none, or not known).
    pub(crate) incarnation: u64,
    /// The account's failure run as the caller just read it (with the
    /// account's record, in one store call): the lockout is decided on it
    /// instead of reading the run again. `None`: not read.
    pub(crate) failures_read: Option<Option<FailureRecord>>,
}

impl fmt::Debug for IssueRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueRequest")
            .field("destination", &self.destination)
            .field("purpose", &self.purpose)
            .field("account", &self.account)
            .field("caller", &self.caller.as_ref().map(|_| "[redacted]"))
            .field("locale", &self.locale)
            .field(
                "confirmation",
                &self.confirmation.as_ref().map(|_| "[redacted]"),
            )
            .field("channel", &self.channel)
            .finish()
    }
}

impl IssueRequest {
    /// A request with no account, caller key, locale or confirmation.
    #[must_use]
    pub fn new(destination: Destination, purpose: Purpose) -> Self {
        Self {
            destination,
            purpose,
            account: None,
            caller: None,
            locale: None,
            confirmation: None,
            channel: None,
            epoch: None,
            incarnation: 0,
            failures_read: None,
        }
    }

    /// Sets the account.
    #[must_use]
    pub fn account(mut self, account: AccountId) -> Self {
        self.account = Some(account);
        self
    }

    /// Sets the per-caller limit key.
    #[must_use]
    pub fn caller(mut self, key: impl Into<String>) -> Self {
        self.caller = Some(key.into());
        self
    }

    /// Sets the message language.
    #[must_use]
    pub fn locale(mut self, locale: Locale) -> Self {
        self.locale = Some(locale);
        self
    }

    /// Requires the user's confirmation of the masked contact.
    #[must_use]
    pub fn confirmation(mut self, typed: impl Into<String>) -> Self {
        self.confirmation = Some(typed.into());
        self
    }

    /// Starts on `channel` (a voice call, say) instead of the plan's first.
    #[must_use]
    pub fn channel(mut self, channel: Channel) -> Self {
        self.channel = Some(channel);
        self
    }
}

/// Why a code went out on the channel it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum ChannelReason {
    /// The first channel of the plan worked.
    FirstChoice,
    /// An earlier channel failed permanently and the plan moved on.
    Fallback {
        /// The channel that failed.
        from: Channel,
        /// How it failed.
        kind: DeliveryErrorKind,
    },
    /// The user asked for another option.
    AnotherOption,
}

/// What the UI needs after a code was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Ticket {
    /// Pass this back to verify or resend (keep it in the session).
    pub challenge_id: ChallengeId,
    /// The channel the code went out on.
    pub channel: Channel,
    /// Why that channel.
    pub reason: ChannelReason,
    /// The destination, masked for display as the
    /// [`mask_policy`](crate::service::TwoFactorBuilder::mask_policy) says (`+81 **-****-**78`).
    pub masked_destination: String,
    /// When this code stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When "resend" may be pressed: the cooldown after this send.
    #[serde(with = "time::serde::rfc3339")]
    pub resend_available_at: OffsetDateTime,
    /// Sends left on this challenge (sends the gateway failed used one
    /// too).
    pub sends_left: u32,
}

/// A successful verification: what was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Verified {
    /// The challenge, now consumed.
    pub challenge_id: ChallengeId,
    /// Its purpose.
    pub purpose: Purpose,
    /// Its account, if any.
    pub account: Option<AccountId>,
    /// The destination proven reachable (left out of the JSON form).
    #[serde(skip)]
    pub destination: Destination,
    /// The channel of the latest send.
    pub channel: Channel,
}

impl Verified {
    pub(super) fn from_record(record: &ChallengeRecord) -> Self {
        Self {
            challenge_id: record.id,
            purpose: record.purpose.clone(),
            account: record.account.clone(),
            destination: record.destination.clone(),
            channel: current_channel(record),
        }
    }
}

pub(super) fn current_channel(record: &ChallengeRecord) -> Channel {
    record
        .channels
        .get(record.channel_index)
        .copied()
        .unwrap_or(Channel::Sms)
}

/// What is delivered: a code or a link.
pub(super) enum Payload<'a> {
    Code(&'a str),
    Link { url: &'a str, device: &'a str },
}

impl Payload<'_> {
    /// Whether `channel` can carry this payload (a link can't be read out).
    fn fits(&self, channel: Channel) -> bool {
        !matches!((self, channel), (Payload::Link { .. }, Channel::Voice))
    }
}

/// The outcome of delivering along the plan.
pub(super) struct Delivered {
    pub(super) index: usize,
    pub(super) reason: ChannelReason,
}

impl Challenges {
    /// Sends a new code to a destination.
    ///
    /// Checks the masked-contact confirmation (if asked), the account's
    /// lockout and every send limit, then stores the challenge (the code only
    /// as a keyed hash) and delivers along the fallback plan: a permanent
    /// refusal on one channel moves to the next.
    ///
    /// # Errors
    /// [`Error::Refused`] with [`SendRefusal::ContactNotConfirmed`](crate::SendRefusal::ContactNotConfirmed),
    /// [`AccountRefusal::Locked`](crate::AccountRefusal::Locked) or [`SendRefusal::RateLimited`](crate::SendRefusal::RateLimited); [`Error::Delivery`]
    /// when no channel delivered (the challenge exists and can be resent,
    /// at once when the failure was not permanent);
    /// [`Error::Store`] / [`Error::Random`] for infrastructure failures;
    /// [`Error::Misuse`] when the requested first channel is not in the plan.
    pub async fn issue(&self, request: IssueRequest) -> Result<Ticket, Error> {
        let now = self.now();
        let mut channels = self.channels_for(&request.destination);
        if let Some(first) = request.channel {
            let Some(at) = channels.iter().position(|c| *c == first) else {
                return Err(Misuse::ChannelNotInPlan { channel: first }.into());
            };
            channels.remove(at);
            channels.insert(0, first);
        }
        let account = request.account.as_ref();
        if let Some(typed) = &request.confirmation {
            // Counting the confirmation as a guess checks the lockout too.
            self.check_confirmation(&request.destination, typed, account, now)
                .await?;
        } else if let Some(account) = account {
            match request.failures_read {
                Some(run) => self.refuse_locked(None, account, run.as_ref(), now)?,
                None => self.check_lockout(None, account, now).await?,
            }
        }

        let inner = &self.inner;
        let id = ChallengeId::random(&*inner.rng)?;
        let code = generate_code(&*inner.rng, inner.policy.digits())?;
        let record = NewChallenge {
            id,
            purpose: request.purpose,
            account: request.account.clone(),
            destination: request.destination,
            locale: request.locale.unwrap_or(inner.locale),
            channels,
            epoch: request.epoch,
            incarnation: request.incarnation,
        }
        .with_code(
            hash_code(&inner.hasher, &id, &code),
            code.digits(),
            &inner.policy,
            now,
        );
        // The send limits are charged in the same call that inserts the
        // challenge they guard.
        let (kinds, hits) = self.send_limits(
            &record.destination,
            record.account.as_ref(),
            request.caller.as_deref(),
        );
        let commit = Commit {
            hits: &hits,
            challenge: Some(ChallengeWrite::Insert(&record)),
            ..Commit::default()
        };
        let committed = inner.store.commit(&commit, now).await?;
        self.limit_reached(&committed, &kinds, record.account.as_ref())?;
        self.emit(Event::Issued {
            challenge: id,
            purpose: record.purpose.clone(),
            account: record.account.clone(),
            destination: record.destination.masked_for(&inner.mask),
        });
        let code = SecretString::new(code.to_string());
        let delivered = match self
            .deliver(&record, 0, &Payload::Code(code.expose_secret()), false)
            .await
        {
            Ok(delivered) => delivered,
            Err(e) => return Err(self.note_undelivered(record, e).await),
        };
        let record = self.note_channel(record, delivered.index).await;
        Ok(self.ticket(&record, delivered.reason))
    }

    /// Sends a new code for the same challenge on the same channel.
    ///
    /// Honours the cooldown and the per-challenge send limit, and charges
    /// the send limits. The codes of earlier sends stay valid until their own
    /// expiry (a late SMS still works); wrong attempts are shared.
    ///
    /// The cooldown counts from the last send that the gateway did not fail
    /// transiently ([`DeliveryErrorKind::Transient`],
    /// [`RateLimited`](DeliveryErrorKind::RateLimited), or
    /// [`Configuration`](DeliveryErrorKind::Configuration) until the
    /// operator fixes the gateway): after such a failure the user is waiting
    /// for nothing, so a resend may follow at once. The failed send still counts toward the per-challenge and
    /// per-destination limits, because a provider that timed out may have
    /// delivered after all, and those limits bound what a phone or inbox
    /// receives. After a permanent failure the cooldown holds: the same
    /// channel can't succeed, [`another_option`](Self::another_option) can.
    ///
    /// # Errors
    /// As for [`issue`](Self::issue), plus [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown),
    /// [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed), [`CodeRefusal::TooManyAttempts`](crate::CodeRefusal::TooManyAttempts) and
    /// [`SendRefusal::Cooldown`](crate::SendRefusal::Cooldown), and
    /// [`SendRefusal::SendsUsedUp`](crate::SendRefusal::SendsUsedUp).
    pub async fn resend(&self, id: &ChallengeId, caller: Option<&str>) -> Result<Ticket, Error> {
        self.send_again(id, caller, false).await
    }

    /// "Use another option": sends a new code on the next channel of the
    /// plan (SMS → voice call). No cooldown applies; the send limits do.
    ///
    /// # Errors
    /// As for [`resend`](Self::resend), plus [`SendRefusal::NoMoreOptions`](crate::SendRefusal::NoMoreOptions).
    pub async fn another_option(
        &self,
        id: &ChallengeId,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        self.send_again(id, caller, true).await
    }

    async fn send_again(
        &self,
        id: &ChallengeId,
        caller: Option<&str>,
        next_channel: bool,
    ) -> Result<Ticket, Error> {
        let now = self.now();
        let inner = &self.inner;
        let record = self.load(id).await?;
        if let Err(reason) = resend::may_send_again(&record, &inner.policy, next_channel, now) {
            return Err(self.refuse(Some(record.id), record.account, reason));
        }
        self.charge_send_limits(&record.destination, record.account.as_ref(), caller, now)
            .await?;

        let code = generate_code(&*inner.rng, record.digits)?;
        let hashed = hash_code(&inner.hasher, id, &code);
        let slot = ChallengeSlot {
            store: &*inner.store,
            id: *id,
        };
        let landed = cas::change(&slot, record, |record| {
            Ok(
                match resend::may_send_again(record, &inner.policy, next_channel, now) {
                    Ok(index) => {
                        resend::add_send(record, index, hashed, &inner.policy, now);
                        Step::Write(Ok(index))
                    }
                    Err(reason) => Step::Keep(Err(reason)),
                },
            )
        })
        .await?;
        let index = match landed.answer {
            Ok(index) => index,
            Err(reason) => {
                let (id, account) = (landed.record.id, landed.record.account);
                return Err(self.refuse(Some(id), account, reason));
            }
        };
        let record = landed.record;
        let code = SecretString::new(code.to_string());
        let delivered = match self
            .deliver(
                &record,
                index,
                &Payload::Code(code.expose_secret()),
                next_channel,
            )
            .await
        {
            Ok(delivered) => delivered,
            Err(e) => return Err(self.note_undelivered(record, e).await),
        };
        let record = self.note_channel(record, delivered.index).await;
        Ok(self.ticket(&record, delivered.reason))
    }

    /// Checks a code and consumes the challenge if it is right.
    ///
    /// Every live code of the challenge is compared in constant time. A
    /// success is written with compare-and-set, so of any number of racing
    /// verifications exactly one succeeds; every wrong code is counted
    /// exactly once, and after the last allowed one even the right code is
    /// refused. `purpose` and `destination` must be those the code was
    /// issued for. Input may contain spaces, hyphens and full-width digits.
    ///
    /// # Errors
    /// [`Error::Refused`] with the reason ([`CodeRefusal::WrongCode`](crate::CodeRefusal::WrongCode) says how
    /// many attempts are left); [`Error::Store`] when the store fails — then
    /// nothing was verified or consumed.
    pub async fn verify(
        &self,
        id: &ChallengeId,
        input: &str,
        purpose: &Purpose,
        destination: &Destination,
    ) -> Result<Verified, Error> {
        let record = self.load(id).await?;
        self.verify_loaded(record, input, purpose, destination, None)
            .await
    }

    /// [`verify`](Self::verify) from a record the caller has just read (to
    /// check whose it is), sparing a second read: the compare-and-set
    /// still refuses the write if it changed since.
    ///
    /// With a sign-in `attempt`, the consumed challenge records it, and a
    /// retry of the same code from the same attempt — whose reply was lost
    /// after the write landed — gets the same success; from any other
    /// attempt it stays [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed).
    pub(crate) async fn verify_loaded(
        &self,
        record: ChallengeRecord,
        input: &str,
        purpose: &Purpose,
        destination: &Destination,
        attempt: Option<Attempt<'_>>,
    ) -> Result<Verified, Error> {
        let code = Code {
            input,
            purpose,
            destination,
            attempt,
        };
        match self.check(record, &code, true).await? {
            Checked::Settled(verified) => Ok(verified),
            Checked::Right(record) => Ok(self.verified(&record).await),
        }
    }

    /// Verifies a code of `account`'s in the fewest store calls: `loaded` is
    /// the challenge and the account's failure run as one
    /// [`load`](crate::store::StepStore::load) just read them, and the
    /// guess is settled in **one** commit that writes the challenge and the
    /// run together, compared with what was read: a wrong code is one more
    /// failure on both, a right one spends the code and ends the run, and,
    /// with `device`, trusts that device in the same step. A commit that
    /// loses a race reads both again and decides again, so a guess is always
    /// decided on the run it lengthens: no number of parallel requests gets
    /// more comparisons than the back-off allows (the rule
    /// [`guess`](super::guess) keeps with separate calls).
    ///
    /// The challenge must be `account`'s (the caller checked). Answers
    /// whether `device` was written with the success (not on a retry of
    /// the attempt that already spent the code).
    ///
    /// With `decided_on`, the caller judged the code (its contact, the
    /// epoch of `device`) on the account's record at that version: the
    /// commit lands only while the record is still there, and a record
    /// changed meanwhile ends the call with a conflict [`Error::Store`],
    /// nothing written, for the caller to read it again and decide again.
    pub(crate) async fn verify_step(
        &self,
        account: &AccountId,
        loaded: (ChallengeRecord, Option<FailureRecord>),
        code: Code<'_>,
        device: Option<&DeviceRecord>,
        decided_on: Option<Option<u64>>,
    ) -> Result<(Verified, bool), Error> {
        match self
            .guess_step(account, loaded, code, true, device, decided_on)
            .await?
        {
            Stepped::Again(verified, trusted) => Ok((verified, trusted)),
            Stepped::Right(guess) => Ok((self.report_spent(&guess.challenge), guess.trust)),
        }
    }

    /// [`check_code`](Self::check_code) in the fewest store calls, as
    /// [`verify_step`](Self::verify_step): the guess counted and the
    /// challenge written in one commit. A right code stays counted until
    /// [`spend_step`](Self::spend_step) spends it and ends the run.
    pub(crate) async fn check_step(
        &self,
        account: &AccountId,
        loaded: (ChallengeRecord, Option<FailureRecord>),
        code: Code<'_>,
    ) -> Result<(ChallengeRecord, Option<FailureRecord>), Error> {
        let id = loaded.0.id;
        match self
            .guess_step(account, loaded, code, false, None, None)
            .await?
        {
            Stepped::Right(guess) => Ok((guess.challenge, guess.run)),
            Stepped::Again(..) => Err(self.refuse(
                Some(id),
                Some(account.clone()),
                Refusal::Code(CodeRefusal::AlreadyUsed),
            )),
        }
    }

    /// Spends a code [`check_step`](Self::check_step) found right, given
    /// the challenge and run it wrote, ending the account's failure run in
    /// the same commit. Of racing spends exactly one succeeds; the others
    /// are refused as used.
    pub(crate) async fn spend_step(
        &self,
        account: &AccountId,
        written: (ChallengeRecord, Option<FailureRecord>),
    ) -> Result<Verified, Error> {
        let (challenge, run) = written;
        let id = challenge.id;
        let slot = GuessSlot {
            store: &*self.inner.store,
            account,
            id,
            device: None,
            decided_on: None,
        };
        let first = GuessRecord {
            challenge,
            run,
            trust: false,
        };
        let landed = cas::change(&slot, first, |guess| {
            // Found right on an earlier version, within its attempts: later
            // wrong guesses don't undo that. Only a racing spend wins.
            if guess.challenge.state == ChallengeState::Consumed {
                return Ok(Step::Keep(false));
            }
            guess.challenge.state = ChallengeState::Consumed;
            guess.run = None;
            Ok(Step::Write(true))
        })
        .await?;
        let challenge = landed.record.challenge;
        if landed.answer {
            Ok(self.report_spent(&challenge))
        } else {
            Err(self.refuse(
                Some(id),
                Some(account.clone()),
                Refusal::Code(CodeRefusal::AlreadyUsed),
            ))
        }
    }

    /// The compare-and-set loop of a guess settled in one commit (see
    /// [`verify_step`](Self::verify_step)); without `spend`, a right code
    /// is written with its version moved on and the guess left counted.
    async fn guess_step(
        &self,
        account: &AccountId,
        loaded: (ChallengeRecord, Option<FailureRecord>),
        code: Code<'_>,
        spend: bool,
        device: Option<&DeviceRecord>,
        decided_on: Option<Option<u64>>,
    ) -> Result<Stepped, Error> {
        let (record, run) = loaded;
        let now = self.now();
        let inner = &self.inner;
        let id = record.id;
        let scope = challenge_scope(&id);
        // The attempt that spent it, retrying after a lost reply.
        let retry = |challenge: &ChallengeRecord| {
            challenge.state == ChallengeState::Consumed
                && super::same_attempt(
                    &inner.hasher,
                    &scope,
                    code.attempt,
                    challenge.consumed_by.as_ref(),
                )
        };
        if !retry(&record)
            && let Some(reason) = refusal_before_check(&record, now)
        {
            return Err(self.refuse(Some(id), Some(account.clone()), reason));
        }
        let consumed_by = code
            .attempt
            .map(|a| super::attempt_hash(&inner.hasher, &scope, a));
        let slot = GuessSlot {
            store: &*inner.store,
            account,
            id,
            device,
            decided_on,
        };
        let first = GuessRecord {
            challenge: record,
            run,
            trust: false,
        };
        let landed = cas::change(&slot, first, |guess| {
            guess.trust = false;
            let retried = retry(&guess.challenge);
            if !retried && let Some(reason) = refusal_before_check(&guess.challenge, now) {
                return Ok(Step::Keep(Outcome::Refused(reason)));
            }
            // Counted before it is compared: a locked account compares
            // nothing.
            if let Some(reason) = inner.failures.lockout(guess.run.as_ref(), now).refusal() {
                return Ok(Step::Keep(Outcome::Refused(reason)));
            }
            let counted = FailureRecord {
                consecutive: guess.run.map_or(0, |r| r.consecutive).saturating_add(1),
                last_failure_at: now,
            };
            if retried {
                // The same success again, written as one: the challenge
                // as it is (its version moved on) and the device asked for
                // trusted in this commit, which checks the record the
                // sign-in was decided on. The run stays as it is: the
                // success already ended the run it was counted on, and
                // wrong guesses counted since are not a retry's to erase.
                return Ok(
                    match is_live_code(
                        &guess.challenge,
                        code.input,
                        code.purpose,
                        code.destination,
                        &inner.hasher,
                        now,
                    ) {
                        Ok(true) => {
                            guess.trust = true;
                            Step::Write(Outcome::Again)
                        }
                        Ok(false) => {
                            guess.run = Some(counted);
                            Step::Write(Outcome::Wrong(Refusal::Code(CodeRefusal::AlreadyUsed)))
                        }
                        Err(key_id) => Step::Keep(Outcome::Retired(key_id)),
                    },
                );
            }
            let decision = decide(
                &guess.challenge,
                code.input,
                code.purpose,
                code.destination,
                &inner.hasher,
                now,
            );
            Ok(match decision {
                Decision::Refuse(reason) => Step::Keep(Outcome::Refused(reason)),
                // Right, kept for later: written unchanged but for its
                // version (a comparison made on a stale read conflicts and
                // is decided again), the guess still counted.
                Decision::Accept(_) if !spend => {
                    guess.run = Some(counted);
                    Step::Write(Outcome::Right)
                }
                Decision::Accept(next) => {
                    guess.challenge = next;
                    guess.challenge.consumed_by = consumed_by;
                    guess.run = None;
                    guess.trust = true;
                    Step::Write(Outcome::Right)
                }
                Decision::Reject(next, reason) => {
                    guess.challenge = next;
                    guess.run = Some(counted);
                    Step::Write(Outcome::Wrong(reason))
                }
                // Neither right nor wrong: not counted.
                Decision::RetiredKey(key_id, None) => Step::Keep(Outcome::Retired(key_id)),
                Decision::RetiredKey(key_id, Some(next)) => {
                    guess.challenge = next;
                    Step::Write(Outcome::Retired(key_id))
                }
            })
        })
        .await?;
        let guess = landed.record;
        let owner = Some(account.clone());
        match landed.answer {
            Outcome::Right => Ok(Stepped::Right(Box::new(guess))),
            Outcome::Again => Ok(Stepped::Again(
                Verified::from_record(&guess.challenge),
                guess.trust,
            )),
            Outcome::Refused(reason) => Err(self.refuse(Some(id), owner, reason)),
            Outcome::Wrong(reason) => {
                if let Some(run) = &guess.run {
                    super::guess::report_lock(&inner.failures, &*inner.events, account, run, now);
                }
                Err(self.refuse(Some(id), owner, reason))
            }
            Outcome::Retired(key_id) => Err(super::retired_key(
                &*inner.events,
                owner,
                SecretKind::OneTimeCode,
                key_id,
            )),
        }
    }

    /// Checks a code **without spending it** (a wrong one is counted and
    /// written as usual): for journeys that apply their change first and
    /// spend the code last, with [`spend`](Self::spend), so a failure in
    /// between leaves the code usable for a retry.
    pub(crate) async fn check_code(
        &self,
        record: ChallengeRecord,
        input: &str,
        purpose: &Purpose,
        destination: &Destination,
    ) -> Result<Checked, Error> {
        let code = Code {
            input,
            purpose,
            destination,
            attempt: None,
        };
        self.check(record, &code, false).await
    }

    /// Spends a code [`check_code`](Self::check_code) found right, given
    /// the record it handed back. Of racing spends exactly one succeeds; the
    /// others are refused as used.
    pub(crate) async fn spend(&self, record: ChallengeRecord) -> Result<Verified, Error> {
        let id = record.id;
        let slot = ChallengeSlot {
            store: &*self.inner.store,
            id,
        };
        let landed = cas::change(&slot, record, |record| {
            // The code was found right on this version, within its
            // attempts: later wrong guesses don't undo that. Only a racing
            // spend of the same code wins over it.
            if record.state == ChallengeState::Consumed {
                return Ok(Step::Keep(()));
            }
            record.state = ChallengeState::Consumed;
            Ok(Step::Write(()))
        })
        .await?;
        if landed.written {
            Ok(self.verified(&landed.record).await)
        } else {
            Err(self.refuse(
                Some(id),
                landed.record.account,
                Refusal::Code(CodeRefusal::AlreadyUsed),
            ))
        }
    }

    /// Decides a code and writes the outcome: a wrong code is one more
    /// failure; a right one is spent when `spend` is set.
    ///
    /// A challenge of an account is decided with the account's failure run,
    /// read together with it, and settled in one commit that writes both
    /// ([`guess_step`](Self::guess_step)): a lost race reads and decides
    /// again, so the guess is counted exactly once, on the run it
    /// lengthens, and nothing is taken back afterwards. A challenge of no
    /// account has no run: only its own attempts count.
    async fn check(
        &self,
        record: ChallengeRecord,
        code: &Code<'_>,
        spend: bool,
    ) -> Result<Checked, Error> {
        if let Some(account) = record.account.clone() {
            let id = record.id;
            let mut loaded = self
                .inner
                .store
                .load(&Load::account(&account).with_challenge(&id))
                .await?;
            let Some(record) = loaded.challenge.take() else {
                return Err(self.unknown(id));
            };
            let run = loaded.failures;
            return Ok(
                match self
                    .guess_step(&account, (record, run), *code, spend, None, None)
                    .await?
                {
                    Stepped::Again(verified, _) => Checked::Settled(verified),
                    // Spent, and the run ended, in the guess's commit.
                    Stepped::Right(guess) if spend => {
                        Checked::Settled(self.report_spent(&guess.challenge))
                    }
                    Stepped::Right(guess) => Checked::Right(Box::new(guess.challenge)),
                },
            );
        }
        let now = self.now();
        let inner = &self.inner;
        let id = record.id;
        let retry = record.state == ChallengeState::Consumed
            && super::same_attempt(
                &inner.hasher,
                &challenge_scope(&id),
                code.attempt,
                record.consumed_by.as_ref(),
            );
        if retry {
            return match is_live_code(
                &record,
                code.input,
                code.purpose,
                code.destination,
                &inner.hasher,
                now,
            ) {
                Ok(true) => Ok(Checked::Settled(Verified::from_record(&record))),
                Ok(false) => {
                    Err(self.refuse(Some(id), None, Refusal::Code(CodeRefusal::AlreadyUsed)))
                }
                Err(key_id) => Err(super::retired_key(
                    &*inner.events,
                    None,
                    SecretKind::OneTimeCode,
                    key_id,
                )),
            };
        }
        if let Some(reason) = refusal_before_check(&record, now) {
            return Err(self.refuse(Some(id), None, reason));
        }
        let record = self.decide_and_write(record, code, spend).await?;
        Ok(Checked::Right(Box::new(record)))
    }

    /// The compare-and-set loop of a check: decides on the freshest record
    /// and writes a failure, or, for a right code, the consumption (with
    /// `spend`) or the record with its version moved on (without: see
    /// [`spend`](Self::spend)).
    async fn decide_and_write(
        &self,
        record: ChallengeRecord,
        code: &Code<'_>,
        spend: bool,
    ) -> Result<ChallengeRecord, Error> {
        let now = self.now();
        let inner = &self.inner;
        let id = record.id;
        let consumed_by = code
            .attempt
            .map(|a| super::attempt_hash(&inner.hasher, &challenge_scope(&id), a));
        let slot = ChallengeSlot {
            store: &*inner.store,
            id,
        };
        let landed = cas::change(&slot, record, |record| {
            let decision = decide(
                record,
                code.input,
                code.purpose,
                code.destination,
                &inner.hasher,
                now,
            );
            Ok(match decision {
                Decision::Refuse(reason) => Step::Keep(Outcome::Refused(reason)),
                // Right, kept for later: the record is written unchanged
                // but for its version, so a comparison made on a stale read
                // (after another request used up the last attempt)
                // conflicts here and is decided again.
                Decision::Accept(_) if !spend => Step::Write(Outcome::Right),
                Decision::Accept(next) => {
                    *record = next;
                    record.consumed_by = consumed_by;
                    Step::Write(Outcome::Right)
                }
                Decision::Reject(next, reason) => {
                    *record = next;
                    Step::Write(Outcome::Wrong(reason))
                }
                Decision::RetiredKey(key_id, None) => Step::Keep(Outcome::Retired(key_id)),
                Decision::RetiredKey(key_id, Some(next)) => {
                    *record = next;
                    Step::Write(Outcome::Retired(key_id))
                }
            })
        })
        .await?;
        let record = landed.record;
        match landed.answer {
            // Not decided here: `decide` never answers a retry.
            Outcome::Right | Outcome::Again => Ok(record),
            Outcome::Refused(reason) => Err(self.refuse(Some(id), record.account, reason)),
            Outcome::Wrong(reason) => Err(self.refuse(Some(id), record.account, reason)),
            Outcome::Retired(key_id) => Err(super::retired_key(
                &*inner.events,
                record.account,
                SecretKind::OneTimeCode,
                key_id,
            )),
        }
    }

    /// A challenge was just written as verified (a code, or a collected
    /// link approval): a second factor was proven, so the account's failure
    /// run ends. That is bookkeeping: a store error there leaves the run a
    /// little stricter until the next success, and the answer stands.
    pub(super) async fn verified(&self, record: &ChallengeRecord) -> Verified {
        if let Some(account) = &record.account {
            let _ = self.inner.store.clear_failures(account).await;
        }
        self.report_spent(record)
    }

    /// Reports a challenge just written as spent ([`Event::Verified`]) and
    /// answers what it verified.
    fn report_spent(&self, record: &ChallengeRecord) -> Verified {
        self.emit(Event::Verified {
            challenge: record.id,
            purpose: record.purpose.clone(),
            account: record.account.clone(),
        });
        Verified::from_record(record)
    }

    /// Masked-contact confirmation for a send that doesn't go through
    /// [`issue`](Self::issue) (a one-time link): the account's lockout,
    /// then the constant-time check; a mismatch counts as a failure.
    pub(crate) async fn confirm_contact(
        &self,
        destination: &Destination,
        typed: &str,
        account: Option<&AccountId>,
    ) -> Result<(), Error> {
        self.check_confirmation(destination, typed, account, self.now())
            .await
    }

    /// Masked-contact confirmation, in constant time. With an account, the
    /// answer is settled as a guess against it ([`guess::judge`]): refused
    /// while the account is locked; a wrong answer counted (and nothing
    /// sent); a right one answered only while the failure run it was judged
    /// on stands, and not counted — it proves nothing the account doesn't
    /// already show.
    async fn check_confirmation(
        &self,
        destination: &Destination,
        typed: &str,
        account: Option<&AccountId>,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let matches = destination
            .confirmation_form(typed, &self.inner.mask)
            .is_some_and(|(typed, expected)| {
                bool::from(typed.as_bytes().ct_eq(expected.as_bytes()))
            });
        let inner = &self.inner;
        if let Some(account) = account {
            match guess::judge(&*inner.store, &inner.failures, account, now, matches).await? {
                Err(reason) => return Err(self.refuse(None, Some(account.clone()), reason)),
                Ok(None) => return Ok(()),
                Ok(Some(run)) => {
                    guess::report_lock(&inner.failures, &*inner.events, account, &run, now);
                }
            }
        } else if matches {
            return Ok(());
        }
        Err(self.refuse(
            None,
            account.cloned(),
            Refusal::Send(SendRefusal::ContactNotConfirmed),
        ))
    }

    /// Delivers along the plan from `start`; permanent refusals move on.
    pub(super) async fn deliver(
        &self,
        record: &ChallengeRecord,
        start: usize,
        payload: &Payload<'_>,
        asked_for_another: bool,
    ) -> Result<Delivered, Error> {
        let inner = &self.inner;
        let minutes =
            |d: time::Duration| u32::try_from(d.whole_minutes().max(1)).unwrap_or(u32::MAX);
        let mut failed: Option<(Channel, crate::gateway::DeliveryError)> = None;
        for index in start..record.channels.len() {
            let channel = record.channels[index];
            let rendered = match payload {
                Payload::Code(code) => inner.templates.render_code(
                    record.locale,
                    channel,
                    &CodeParams {
                        service: &inner.service,
                        code,
                        minutes: minutes(inner.policy.lifetime),
                        origin: inner.origin.as_deref(),
                        occasion: Occasion::of(&record.purpose),
                    },
                ),
                Payload::Link { url, device } => inner.templates.render_link(
                    record.locale,
                    channel,
                    &LinkParams {
                        service: &inner.service,
                        url,
                        minutes: minutes(inner.policy.link_lifetime),
                        device,
                    },
                ),
            };
            let rendered = match rendered {
                Ok(r) => r,
                // This channel can't carry this message (a link by voice).
                Err(TemplateError::UnsupportedChannel { .. }) => continue,
                Err(e) => return Err(Misuse::Template(e).into()),
            };
            let mut message = Message::new(
                channel,
                record.destination.address().to_owned(),
                rendered.subject,
                SecretString::new(rendered.body),
                record.locale,
            );
            message.secret = Some(SecretString::new(match payload {
                Payload::Code(code) => (*code).to_owned(),
                Payload::Link { url, .. } => (*url).to_owned(),
            }));
            match inner.gateway.send(&message).await {
                Ok(receipt) => {
                    self.emit(Event::Delivered {
                        challenge: record.id,
                        channel,
                        provider_id: receipt.provider_id,
                    });
                    let reason = match &failed {
                        Some((from, e)) => ChannelReason::Fallback {
                            from: *from,
                            kind: e.kind(),
                        },
                        None if asked_for_another => ChannelReason::AnotherOption,
                        None => ChannelReason::FirstChoice,
                    };
                    return Ok(Delivered { index, reason });
                }
                Err(e) => {
                    // Only a refusal of this channel moves on. A
                    // misconfigured gateway (`Configuration`) does not: the
                    // next channel would hide it, and the user is not to blame.
                    let moves_on = e.kind() == DeliveryErrorKind::Refused;
                    let fallback = record.channels[index + 1..]
                        .iter()
                        .copied()
                        .find(|c| payload.fits(*c))
                        .filter(|_| moves_on);
                    self.emit(Event::DeliveryFailed {
                        challenge: record.id,
                        channel,
                        kind: e.kind(),
                        fallback,
                    });
                    if !moves_on {
                        return Err(Error::Delivery {
                            channel,
                            challenge: Some(record.id),
                            source: e,
                        });
                    }
                    failed = Some((channel, e));
                }
            }
        }
        match failed {
            Some((channel, source)) => Err(Error::Delivery {
                channel,
                challenge: Some(record.id),
                source,
            }),
            None => Err(self.refuse(
                Some(record.id),
                record.account.clone(),
                Refusal::Send(SendRefusal::NoMoreOptions),
            )),
        }
    }

    /// After the last send of `record` failed to deliver: when the failure
    /// was not permanent (a timeout, an outage, the provider throttling),
    /// marks the send as [`failed_transiently`](SendRecord::failed_transiently),
    /// so that "resend" needn't wait out a cooldown for a message that is
    /// not on its way. Returns `error` as it was.
    ///
    /// The send still counts toward the per-challenge and per-destination
    /// limits: a provider that timed out may have sent the message after
    /// all, and the limits must bound what a phone or inbox receives
    /// whatever the gateway reports.
    ///
    /// Best effort: if the mark can't be written (the store fails, or keeps
    /// losing the compare-and-set), the cooldown stays — the stricter side —
    /// and the caller still gets the delivery error.
    async fn note_undelivered(&self, record: ChallengeRecord, error: Error) -> Error {
        let transient = matches!(&error, Error::Delivery { source, .. } if !source.is_permanent());
        // Sends are only ever appended, so the index stays ours on a reload.
        let Some(index) = record.sends.len().checked_sub(1).filter(|_| transient) else {
            return error;
        };
        let slot = ChallengeSlot {
            store: &*self.inner.store,
            id: record.id,
        };
        let _ = cas::change(&slot, record, |record| {
            Ok(match record.sends.get_mut(index) {
                Some(send) if !send.failed_transiently => {
                    send.failed_transiently = true;
                    Step::Write(())
                }
                _ => Step::Keep(()),
            })
        })
        .await;
        error
    }

    /// Records that a fallback moved the challenge to another channel.
    /// Cosmetic (the code is the same on every channel, and the message is
    /// already delivered), so it never fails the send: a store error here
    /// leaves the record as it was.
    pub(super) async fn note_channel(
        &self,
        record: ChallengeRecord,
        index: usize,
    ) -> ChallengeRecord {
        if record.channel_index >= index {
            return record;
        }
        let slot = ChallengeSlot {
            store: &*self.inner.store,
            id: record.id,
        };
        let kept = record.clone();
        let landed = cas::change(&slot, record, |record| {
            let Some(&channel) = record.channels.get(index) else {
                return Ok(Step::Keep(()));
            };
            if record.channel_index >= index {
                return Ok(Step::Keep(()));
            }
            record.channel_index = index;
            if let Some(last) = record.sends.last_mut() {
                last.channel = channel;
            }
            Ok(Step::Write(()))
        })
        .await;
        landed.map_or(kept, |landed| landed.record)
    }

    fn ticket(&self, record: &ChallengeRecord, reason: ChannelReason) -> Ticket {
        let last = record.sends.last();
        Ticket {
            challenge_id: record.id,
            channel: current_channel(record),
            reason,
            masked_destination: record.destination.masked_for(&self.inner.mask),
            expires_at: last.map_or(record.expires_at, |s| s.expires_at),
            resend_available_at: resend::cooldown_ends(record, &self.inner.policy)
                .unwrap_or_else(|| last.map_or(record.created_at, |s| s.sent_at)),
            sends_left: self
                .inner
                .policy
                .max_sends
                .saturating_sub(record.delivery_attempts),
        }
    }
}

/// What a written check means, once its write landed.
enum Outcome {
    /// The code was right and is spent.
    Right,
    /// The attempt that spent the code presented it again: the same
    /// success (the run ended, the device trusted, if asked).
    Again,
    /// Refused before any comparison was written: nothing changed.
    Refused(Refusal),
    /// The code was wrong: refuse with this.
    Wrong(Refusal),
    /// The code may be one hashed with this retired key: the challenge's
    /// other live codes were compared (and the attempt written), but the
    /// account's run takes the guess back.
    Retired(KeyId),
}

/// What a challenge's attempt hash is bound to: the challenge.
pub(super) fn challenge_scope(id: &ChallengeId) -> [u8; 26] {
    let mut scope = [0u8; 26];
    scope[..10].copy_from_slice(b"challenge:");
    scope[10..].copy_from_slice(id.as_bytes());
    scope
}

/// A typed code and what it must be for.
#[derive(Clone, Copy)]
pub(crate) struct Code<'a> {
    pub(crate) input: &'a str,
    pub(crate) purpose: &'a Purpose,
    pub(crate) destination: &'a Destination,
    pub(crate) attempt: Option<Attempt<'a>>,
}

/// How [`Challenges::guess_step`] ended when the code was right.
enum Stepped {
    /// The attempt that already spent this code, retrying: the same
    /// success, and whether the slot's device was trusted with it.
    Again(Verified, bool),
    /// Right, and written (spent or not, as asked).
    Right(Box<GuessRecord>),
}

/// A code found right by [`Challenges::check_code`].
pub(crate) enum Checked {
    /// Right: the record as written (its version moved on), not yet spent;
    /// or, for a challenge of no account, as written when spent.
    Right(Box<ChallengeRecord>),
    /// Right and settled: spent with the account's run ended in one commit
    /// (and reported), or presented again by the attempt that spent it.
    Settled(Verified),
}
