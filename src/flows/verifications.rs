//! Combined verification: several contacts (EZSMS's email **and** mobile
//! number) verified in any order, completing once when all are.

use serde::Serialize;
use std::fmt;

use time::{Duration, OffsetDateTime};

use super::cas::{self, Step, VerificationSlot};
use super::codes::Checked;
use super::{Challenges, IssueRequest, Ticket};
use crate::error::{CodeRefusal, ContactRefusal, Error, Misuse, Refusal};
use crate::model::{
    AccountId, Destination, DestinationKind, Locale, MemberRecord, Purpose, VerificationId,
    VerificationRecord,
};

/// How long a combined verification lives by default: 30 minutes, long
/// enough to read an SMS and an email and type two codes, short enough that
/// an abandoned sign-up dies the same session.
pub const DEFAULT_VERIFICATION_LIFETIME: Duration = Duration::minutes(30);

/// What to verify together.
///
/// `Debug` masks the members and redacts the caller key (often an IP
/// address).
#[derive(Clone)]
#[must_use]
pub struct VerificationRequest {
    members: Vec<Destination>,
    pub(super) purpose: Purpose,
    pub(super) account: Option<AccountId>,
    pub(super) locale: Option<Locale>,
    caller: Option<String>,
}

impl fmt::Debug for VerificationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationRequest")
            .field("members", &self.members)
            .field("purpose", &self.purpose)
            .field("account", &self.account)
            .field("locale", &self.locale)
            .field("caller", &self.caller.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl VerificationRequest {
    /// Verify every one of `members` (at least one; no duplicates), for
    /// [`Purpose::SignUp`].
    pub fn new(members: impl IntoIterator<Item = Destination>) -> Self {
        Self {
            members: members.into_iter().collect(),
            purpose: Purpose::SignUp,
            account: None,
            locale: None,
            caller: None,
        }
    }

    /// The requester (an IP address, say) for the per-caller send limit.
    pub fn caller(mut self, key: impl Into<String>) -> Self {
        self.caller = Some(key.into());
        self
    }

    /// The language of every member's messages (default: the service's).
    /// Resends keep it.
    pub fn locale(mut self, locale: Locale) -> Self {
        self.locale = Some(locale);
        self
    }
}

/// One member as started: the code went out, or its delivery failed and
/// the user should press "resend".
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MemberTicket {
    /// Its index: pass it to [`signup_verify`](crate::service::TwoFactor::signup_verify)
    /// and [`signup_resend`](crate::service::TwoFactor::signup_resend).
    pub index: usize,
    /// Phone or email.
    pub kind: DestinationKind,
    /// The contact, masked for display as the
    /// [`mask_policy`](crate::service::TwoFactorBuilder::mask_policy) says.
    pub masked_destination: String,
    /// The delivery, or `None` when no channel delivered (resend it).
    pub sent: Option<Ticket>,
}

/// A started combined verification.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct VerificationTicket {
    /// Keep it in the session; it identifies the verification.
    pub id: VerificationId,
    /// When the whole verification stops, whatever its codes say.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The members, in the order given.
    pub members: Vec<MemberTicket>,
}

/// The answer to a right code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Progress {
    /// The member just verified.
    pub verified: usize,
    /// Members still to verify (empty once complete).
    pub remaining: Vec<usize>,
    /// `true` for exactly one call per verification: the one that verified
    /// its last member.
    pub completed: bool,
}

/// One member's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MemberStatus {
    /// Its index.
    pub index: usize,
    /// Phone or email.
    pub kind: DestinationKind,
    /// The contact, masked for display as the
    /// [`mask_policy`](crate::service::TwoFactorBuilder::mask_policy) says.
    pub masked_destination: String,
    /// Whether its code was verified.
    pub verified: bool,
}

/// Where a combined verification stands (after a page reload, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerificationStatus {
    /// Its id.
    pub id: VerificationId,
    /// The members.
    pub members: Vec<MemberStatus>,
    /// When it stops.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Whether every member is verified.
    pub completed: bool,
    /// Whether [`signup_complete`](crate::service::TwoFactor::signup_complete)
    /// has collected it.
    pub taken: bool,
    /// Whether it has expired (and was not completed in time).
    pub expired: bool,
}

/// A completed verification, collected once by [`Verifications::take`]:
/// proof that the user received codes at every one of `destinations`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Completed {
    /// Its id.
    pub id: VerificationId,
    /// The account given at the start, if any.
    pub account: Option<AccountId>,
    /// The verified contacts, in the order given.
    pub destinations: Vec<Destination>,
    /// When its last member was verified.
    pub completed_at: OffsetDateTime,
}

/// Combined verification on top of [`Challenges`].
///
/// Each member gets its own one-time code (so each has its own attempts,
/// resends and fallback channel); the combined record remembers which are
/// verified, so progress survives resends, reloads and restarts. It
/// completes exactly once — [`Progress::completed`] is `true` for one call
/// only, even when the last two codes are typed at once — and expires as a
/// whole after [`DEFAULT_VERIFICATION_LIFETIME`] unless configured.
#[derive(Debug, Clone)]
pub struct Verifications {
    challenges: Challenges,
    lifetime: Duration,
}

impl Verifications {
    /// Combined verification sending its codes through `challenges`.
    #[must_use]
    pub fn new(challenges: Challenges) -> Self {
        Self {
            challenges,
            lifetime: DEFAULT_VERIFICATION_LIFETIME,
        }
    }

    /// Lets a verification live `lifetime` as a whole (at least a minute).
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.max(Duration::MINUTE);
        self
    }

    fn now(&self) -> OffsetDateTime {
        self.challenges.now()
    }

    /// Sends a code to every member and starts the verification.
    ///
    /// A member whose delivery failed on every channel is still part of the
    /// verification ([`MemberTicket::sent`] is `None`): the user resends it.
    ///
    /// # Errors
    /// [`Error::Misuse`] when there are no members or the same contact is
    /// given twice; otherwise as for [`Challenges::issue`] (a refusal or an
    /// infrastructure failure of any member stops the start; codes already
    /// sent to earlier members then simply expire unused).
    pub async fn start(&self, request: VerificationRequest) -> Result<VerificationTicket, Error> {
        let VerificationRequest {
            members,
            purpose,
            account,
            locale,
            caller,
        } = request;
        if members.is_empty() {
            return Err(Misuse::NoMembers.into());
        }
        for (i, member) in members.iter().enumerate() {
            if members[..i]
                .iter()
                .any(|m| m.limit_key() == member.limit_key())
            {
                return Err(Misuse::DuplicateMember.into());
            }
        }
        let inner = &self.challenges.inner;
        let id = VerificationId::random(&*inner.rng)?;
        let now = self.now();
        let locale = locale.unwrap_or(inner.locale);
        let mut records = Vec::with_capacity(members.len());
        let mut tickets = Vec::with_capacity(members.len());
        for (index, destination) in members.into_iter().enumerate() {
            let masked_destination = destination.masked_for(&inner.mask);
            let kind = destination.kind();
            let mut issue = IssueRequest::new(destination.clone(), purpose.clone()).locale(locale);
            if let Some(account) = &account {
                issue = issue.account(account.clone());
            }
            if let Some(caller) = &caller {
                issue = issue.caller(caller.clone());
            }
            let (challenge, sent) = match self.challenges.issue(issue).await {
                Ok(ticket) => (ticket.challenge_id, Some(ticket)),
                Err(Error::Delivery {
                    challenge: Some(challenge),
                    ..
                }) => (challenge, None),
                Err(e) => return Err(e),
            };
            records.push(MemberRecord {
                destination,
                challenge,
                verified_at: None,
            });
            tickets.push(MemberTicket {
                index,
                kind,
                masked_destination,
                sent,
            });
        }
        let record = VerificationRecord {
            id,
            version: 1,
            purpose,
            account,
            members: records,
            locale,
            created_at: now,
            expires_at: now.saturating_add(self.lifetime),
            completed_at: None,
            taken_at: None,
            taken_by: None,
        };
        inner.store.insert_verification(&record).await?;
        Ok(VerificationTicket {
            id,
            expires_at: record.expires_at,
            members: tickets,
        })
    }

    async fn load(&self, id: &VerificationId) -> Result<VerificationRecord, Error> {
        self.challenges
            .inner
            .store
            .verification(id)
            .await?
            .ok_or(Error::Refused(Refusal::Code(CodeRefusal::Unknown)))
    }

    /// The record, if `member` of it can still be worked on now.
    fn open_member(
        record: &VerificationRecord,
        member: usize,
        now: OffsetDateTime,
    ) -> Result<&MemberRecord, Error> {
        if record.completed_at.is_some() {
            return Err(Refusal::Code(CodeRefusal::AlreadyUsed).into());
        }
        if now >= record.expires_at {
            return Err(Refusal::Code(CodeRefusal::Expired).into());
        }
        let m = record
            .members
            .get(member)
            .ok_or(Refusal::Code(CodeRefusal::Unknown))?;
        if m.verified_at.is_some() {
            return Err(Refusal::Code(CodeRefusal::AlreadyUsed).into());
        }
        Ok(m)
    }

    /// Sends a new code to one member (the "resend" button), honouring the
    /// cooldown and send limits.
    ///
    /// When the member's challenge can't be resent any more — its codes
    /// expired, it was exhausted by wrong codes, or it was consumed without
    /// the verification noticing (a crash in between) — a fresh challenge
    /// replaces it, within the verification's own lifetime and the send
    /// limits.
    ///
    /// # Errors
    /// [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown), [`CodeRefusal::Expired`](crate::CodeRefusal::Expired) (the verification as a
    /// whole), [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed) (member verified or verification
    /// complete); otherwise as for [`Challenges::resend`].
    pub async fn resend(
        &self,
        id: &VerificationId,
        member: usize,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        self.send_again(id, member, caller, false).await
    }

    /// "Use another option" for one member: its next channel (SMS → voice).
    ///
    /// # Errors
    /// As for [`resend`](Self::resend), plus [`SendRefusal::NoMoreOptions`](crate::SendRefusal::NoMoreOptions).
    pub async fn another_option(
        &self,
        id: &VerificationId,
        member: usize,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        self.send_again(id, member, caller, true).await
    }

    async fn send_again(
        &self,
        id: &VerificationId,
        member: usize,
        caller: Option<&str>,
        next_channel: bool,
    ) -> Result<Ticket, Error> {
        let record = self.load(id).await?;
        let m = Self::open_member(&record, member, self.now())?;
        let challenge = m.challenge;
        let again = if next_channel {
            self.challenges.another_option(&challenge, caller).await
        } else {
            self.challenges.resend(&challenge, caller).await
        };
        match again {
            Err(Error::Refused(
                Refusal::Code(CodeRefusal::Expired)
                | Refusal::Code(CodeRefusal::TooManyAttempts)
                | Refusal::Code(CodeRefusal::AlreadyUsed),
            )) => self.restart_member(record, member, caller).await,
            other => other,
        }
    }

    /// Replaces a dead member challenge with a fresh one.
    async fn restart_member(
        &self,
        record: VerificationRecord,
        member: usize,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        let destination = Self::open_member(&record, member, self.now())?
            .destination
            .clone();
        let mut issue =
            IssueRequest::new(destination, record.purpose.clone()).locale(record.locale);
        if let Some(account) = &record.account {
            issue = issue.account(account.clone());
        }
        if let Some(caller) = caller {
            issue = issue.caller(caller);
        }
        let (challenge, outcome) = match self.challenges.issue(issue).await {
            Ok(ticket) => (ticket.challenge_id, Ok(ticket)),
            Err(
                e @ Error::Delivery {
                    challenge: Some(challenge),
                    ..
                },
            ) => (challenge, Err(e)),
            Err(e) => return Err(e),
        };
        let slot = VerificationSlot {
            store: &*self.challenges.inner.store,
            id: record.id,
        };
        let now = self.now();
        cas::change(&slot, record, |record| {
            Self::open_member(record, member, now)?;
            record.members[member].challenge = challenge;
            Ok(Step::Write(()))
        })
        .await?;
        outcome
    }

    /// Checks one member's code. Members may be verified in any order; the
    /// call that verifies the last one gets [`Progress::completed`].
    ///
    /// # Errors
    /// [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown), [`CodeRefusal::Expired`](crate::CodeRefusal::Expired) (the verification as a
    /// whole), [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed) (member already verified, or the
    /// verification complete); otherwise as for [`Challenges::verify`]
    /// (wrong code with attempts left, too many attempts, …).
    pub async fn verify(
        &self,
        id: &VerificationId,
        member: usize,
        code: &str,
    ) -> Result<Progress, Error> {
        let record = self.load(id).await?;
        let now = self.now();
        if record.completed_at.is_none() && now >= record.expires_at {
            return Err(Refusal::Code(CodeRefusal::Expired).into());
        }
        let m = record
            .members
            .get(member)
            .ok_or(Refusal::Code(CodeRefusal::Unknown))?
            .clone();
        let purpose = record.purpose.clone();
        let challenge = self.challenges.load(&m.challenge).await?;
        // Checked, not yet spent: the member is recorded first, so a failure
        // in between leaves the code working and a retry finishes.
        let challenge = match self
            .challenges
            .check_code(challenge, code, &purpose, &m.destination)
            .await?
        {
            Checked::Right(challenge) => *challenge,
            Checked::Settled(_) => return Err(Refusal::Code(CodeRefusal::AlreadyUsed).into()),
        };
        let slot = VerificationSlot {
            store: &*self.challenges.inner.store,
            id: *id,
        };
        let landed = cas::change(&slot, record, |record| {
            let Some(slot) = record.members.get_mut(member) else {
                return Err(Refusal::Code(CodeRefusal::Unknown).into());
            };
            if slot.verified_at.is_some() {
                // Recorded by an earlier try (or a racing one) whose code was
                // not spent yet: whichever spends it answers.
                return Ok(Step::Keep(()));
            }
            slot.verified_at = Some(now);
            Ok(Step::Write(()))
        })
        .await?;
        let record = landed.record;
        // One success per member: the call that spends its code.
        self.challenges.spend(challenge).await?;
        // One completion: the spend that finds every member verified and
        // marks the verification complete first.
        let (completed, record) = self.mark_complete(record, now).await?;
        Ok(Progress {
            verified: member,
            remaining: unverified(&record),
            completed,
        })
    }

    /// Marks the verification complete when every member is verified and
    /// no one has yet: whether this call did, and the record as last read.
    /// Should this fail, the members stay verified and
    /// [`take`](Self::take) still completes a verification whose members
    /// all are.
    async fn mark_complete(
        &self,
        record: VerificationRecord,
        now: OffsetDateTime,
    ) -> Result<(bool, VerificationRecord), Error> {
        let slot = VerificationSlot {
            store: &*self.challenges.inner.store,
            id: record.id,
        };
        // Fresh: racing members may have been verified since.
        let record = self.load(&record.id).await?;
        let landed = cas::change(&slot, record, |record| {
            if record.completed_at.is_some() || !unverified(record).is_empty() {
                return Ok(Step::Keep(()));
            }
            record.completed_at = Some(now);
            Ok(Step::Write(()))
        })
        .await?;
        Ok((landed.written, landed.record))
    }

    /// Where the verification stands.
    ///
    /// # Errors
    /// [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown); [`Error::Store`].
    pub async fn status(&self, id: &VerificationId) -> Result<VerificationStatus, Error> {
        let record = self.load(id).await?;
        let now = self.now();
        Ok(VerificationStatus {
            id: record.id,
            members: record
                .members
                .iter()
                .enumerate()
                .map(|(index, m)| MemberStatus {
                    index,
                    kind: m.destination.kind(),
                    masked_destination: m.destination.masked_for(self.challenges.mask_policy()),
                    verified: m.verified_at.is_some(),
                })
                .collect(),
            expires_at: record.expires_at,
            completed: record.completed_at.is_some() || unverified(&record).is_empty(),
            taken: record.taken_at.is_some(),
            expired: record.completed_at.is_none() && now >= record.expires_at,
        })
    }

    /// [`take`](Self::take) for `account`: the same account may take it
    /// again (to retry whatever failed after the first take, such as
    /// registering the contacts), any other is refused.
    ///
    /// # Errors
    /// As for [`take`](Self::take).
    pub async fn take_for(
        &self,
        id: &VerificationId,
        account: &AccountId,
    ) -> Result<Completed, Error> {
        self.take_as(id, Some(account)).await
    }

    pub(super) async fn take_as(
        &self,
        id: &VerificationId,
        account: Option<&AccountId>,
    ) -> Result<Completed, Error> {
        let record = self.load(id).await?;
        let slot = VerificationSlot {
            store: &*self.challenges.inner.store,
            id: *id,
        };
        let now = self.now();
        let landed = cas::change(&slot, record, |record| {
            // Complete when marked so, or when every member is verified (the
            // marking write may have failed after the last member's code).
            let all_verified = unverified(record).is_empty();
            let last_verified = record.members.iter().filter_map(|m| m.verified_at).max();
            let Some(completed_at) = record
                .completed_at
                .or(last_verified.filter(|_| all_verified))
            else {
                if now >= record.expires_at {
                    return Err(Refusal::Code(CodeRefusal::Expired).into());
                }
                return Err(pending(record).into());
            };
            if now >= record.expires_at.saturating_add(Duration::HOUR) {
                return Err(Refusal::Code(CodeRefusal::Expired).into());
            }
            if record.taken_at.is_some() {
                // Taken before: only by the same account, again.
                if account.is_none() || record.taken_by.as_ref() != account {
                    return Err(Refusal::Code(CodeRefusal::AlreadyUsed).into());
                }
                return Ok(Step::Keep(completed_at));
            }
            record.completed_at = Some(completed_at);
            record.taken_at = Some(now);
            record.taken_by = account.cloned();
            Ok(Step::Write(completed_at))
        })
        .await?;
        let record = landed.record;
        Ok(Completed {
            id: record.id,
            account: record.account,
            destinations: record.members.into_iter().map(|m| m.destination).collect(),
            completed_at: landed.answer,
        })
    }
}

/// The refusal naming the kinds of contact still waiting for their code.
fn pending(record: &VerificationRecord) -> ContactRefusal {
    let waiting = |kind: DestinationKind| {
        record
            .members
            .iter()
            .any(|m| m.verified_at.is_none() && m.destination.kind() == kind)
    };
    ContactRefusal::Unverified {
        email: waiting(DestinationKind::Email),
        phone: waiting(DestinationKind::Phone),
    }
}

/// The members not verified yet.
fn unverified(record: &VerificationRecord) -> Vec<usize> {
    record
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.verified_at.is_none())
        .map(|(i, _)| i)
        .collect()
}
