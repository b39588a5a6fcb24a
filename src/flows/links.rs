//! One-time links (au ID): approve a sign-in from the phone.
//!
//! The link carries a 256-bit token; only its keyed hash is stored. Opening
//! the link shows the device asking to sign in, without consuming anything;
//! the user then approves or denies. The waiting sign-in polls and collects
//! an approval exactly once.

use serde::Serialize;
use std::fmt;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::cas::{self, ChallengeSlot, Step};
use super::codes::{ChannelReason, Payload, Verified, current_channel};
use super::{Challenges, guess};
use crate::challenge::link::{self, Poll};
use crate::challenge::{NewChallenge, link_context};
use crate::error::{CodeRefusal, Error, Misuse, Refusal, SecretKind};
use crate::events::Event;
use crate::model::{
    AccountId, ChallengeId, ChallengeRecord, Channel, Destination, LinkRecord, Locale, Purpose,
};
use crate::secret::SecretString;

/// A request to send a one-time sign-in link.
///
/// `Debug` masks the destination and redacts the caller key (often an IP
/// address).
#[derive(Clone)]
#[non_exhaustive]
pub struct LinkRequest {
    /// Where to send it (a phone for SMS, or an email address).
    pub destination: Destination,
    /// Why.
    pub purpose: Purpose,
    /// The account, if any.
    pub account: Option<AccountId>,
    /// The device asking to sign in, shown before approval
    /// ("Chrome on Windows, Tokyo").
    pub device: String,
    /// A key for the per-caller limit, if any.
    pub caller: Option<String>,
    /// Message language (default: the service's).
    pub locale: Option<Locale>,
    /// The [`incarnation`](crate::model::AccountRecord::incarnation) of the
    /// account's record it is issued for (0: none, or not known).
    pub(crate) incarnation: u64,
}

impl fmt::Debug for LinkRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkRequest")
            .field("destination", &self.destination)
            .field("purpose", &self.purpose)
            .field("account", &self.account)
            .field("device", &self.device)
            .field("caller", &self.caller.as_ref().map(|_| "[redacted]"))
            .field("locale", &self.locale)
            .finish()
    }
}

impl LinkRequest {
    /// A request for `destination`, `purpose` and the requesting `device`.
    #[must_use]
    pub fn new(destination: Destination, purpose: Purpose, device: impl Into<String>) -> Self {
        Self {
            destination,
            purpose,
            account: None,
            device: device.into(),
            caller: None,
            locale: None,
            incarnation: 0,
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
}

/// What the waiting sign-in gets: enough to poll, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LinkTicket {
    /// Poll with this.
    pub challenge_id: ChallengeId,
    /// The channel the link went out on.
    pub channel: Channel,
    /// Why that channel.
    pub reason: ChannelReason,
    /// The destination, masked for display as the
    /// [`mask_policy`](crate::service::TwoFactorBuilder::mask_policy) says.
    pub masked_destination: String,
    /// When the link stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What the phone shows when the link is opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LinkView {
    /// The challenge.
    pub challenge_id: ChallengeId,
    /// The device asking to sign in.
    pub device: String,
    /// Why.
    pub purpose: Purpose,
    /// When the link stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What a poll sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LinkStatus {
    /// Not decided yet; poll again.
    Pending {
        /// When the link stops working.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// Approved, and this poll collected it (no other poll will).
    Approved(Verified),
}

impl Challenges {
    /// Sends a one-time link to approve a sign-in.
    ///
    /// The URL is the configured link base followed by the token; the
    /// message warns not to open it without having tried to sign in, and
    /// names the device. Voice can't carry a link, so the plan skips it.
    ///
    /// # Errors
    /// [`Error::Misuse`] without a link base; otherwise as for
    /// [`issue`](Self::issue).
    pub async fn issue_link(&self, request: LinkRequest) -> Result<LinkTicket, Error> {
        let inner = &self.inner;
        let base = inner
            .link_base
            .clone()
            .ok_or(Error::Misuse(Misuse::NoLinkBase))?;
        let now = self.now();
        if let Some(account) = &request.account {
            self.check_lockout(None, account, now).await?;
        }
        self.charge_send_limits(
            &request.destination,
            request.account.as_ref(),
            request.caller.as_deref(),
            now,
        )
        .await?;

        let id = ChallengeId::random(&*inner.rng)?;
        let mut secret = Zeroizing::new([0u8; 32]);
        inner.rng.fill(&mut *secret)?;
        let token = SecretString::new(format!(
            "{id}.{}",
            base32::encode(base32::Alphabet::Rfc4648Lower { padding: false }, &*secret)
        ));
        let url = SecretString::new(format!("{base}{}", token.expose_secret()));
        let record = NewChallenge {
            id,
            purpose: request.purpose,
            account: request.account,
            locale: request.locale.unwrap_or(inner.locale),
            channels: self.channels_for(&request.destination),
            destination: request.destination,
            epoch: None,
            incarnation: request.incarnation,
        }
        .with_link(
            LinkRecord {
                token: inner.hasher.hash(&link_context(&id), &*secret),
                device: request.device,
            },
            &inner.policy,
            now,
        );
        inner.store.insert_challenge(&record).await?;
        self.emit(Event::Issued {
            challenge: id,
            purpose: record.purpose.clone(),
            account: record.account.clone(),
            destination: record.destination.masked_for(&inner.mask),
        });
        let device = record
            .link
            .as_ref()
            .map(|l| l.device.clone())
            .unwrap_or_default();
        let payload = Payload::Link {
            url: url.expose_secret(),
            device: &device,
        };
        let delivered = self.deliver(&record, 0, &payload, false).await?;
        let record = self.note_channel(record, delivered.index).await;
        Ok(LinkTicket {
            challenge_id: id,
            channel: current_channel(&record),
            reason: delivered.reason,
            masked_destination: record.destination.masked_for(&inner.mask),
            expires_at: record.expires_at,
        })
    }

    /// The link was opened: shows what is asking to sign in. Changes
    /// nothing; the link stays usable until approved, denied or expired.
    ///
    /// # Errors
    /// [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown) for a wrong or malformed token,
    /// [`CodeRefusal::Expired`](crate::CodeRefusal::Expired), [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed), [`CodeRefusal::Denied`](crate::CodeRefusal::Denied).
    pub async fn open_link(&self, token: &str) -> Result<LinkView, Error> {
        let record = self.find_link(token).await?;
        if let Err(reason) = link::is_open(&record, self.now()) {
            return Err(self.refuse(Some(record.id), record.account, reason.into()));
        }
        self.emit(Event::LinkOpened {
            challenge: record.id,
        });
        Ok(LinkView {
            challenge_id: record.id,
            device: record
                .link
                .as_ref()
                .map(|l| l.device.clone())
                .unwrap_or_default(),
            purpose: record.purpose.clone(),
            expires_at: record.expires_at,
        })
    }

    /// The user approved the sign-in on their phone.
    ///
    /// # Errors
    /// As for [`open_link`](Self::open_link).
    pub async fn approve_link(&self, token: &str) -> Result<(), Error> {
        self.decide_link(token, true).await
    }

    /// The user denied the sign-in ("this wasn't me").
    ///
    /// # Errors
    /// As for [`open_link`](Self::open_link).
    pub async fn deny_link(&self, token: &str) -> Result<(), Error> {
        self.decide_link(token, false).await
    }

    /// [`poll_link`](Self::poll_link) for a sign-in attempt: the collected
    /// approval records it, and a poll from the same attempt that comes
    /// again (its reply was lost) collects the same approval.
    pub(crate) async fn poll_link_from(
        &self,
        id: &ChallengeId,
        purpose: &Purpose,
        attempt: Option<super::Attempt<'_>>,
    ) -> Result<LinkStatus, Error> {
        let hasher = &self.inner.hasher;
        let scope = super::codes::challenge_scope(id);
        let record = self.load(id).await?;
        let slot = ChallengeSlot {
            store: &*self.inner.store,
            id: *id,
        };
        let consumed_by = attempt.map(|a| super::attempt_hash(hasher, &scope, a));
        let now = self.now();
        let landed = cas::change(&slot, record, |record| {
            let found = link::poll(record, purpose, now, || {
                super::same_attempt(hasher, &scope, attempt, record.consumed_by.as_ref())
            });
            if found == Poll::Collect {
                link::collect(record, consumed_by);
                return Ok(Step::Write(found));
            }
            Ok(Step::Keep(found))
        })
        .await?;
        let record = landed.record;
        match landed.answer {
            Poll::Collect => Ok(LinkStatus::Approved(self.verified(&record).await)),
            Poll::Again => Ok(LinkStatus::Approved(Verified::from_record(&record))),
            Poll::Pending => Ok(LinkStatus::Pending {
                expires_at: record.expires_at,
            }),
            Poll::Refuse(reason) => Err(self.refuse(Some(*id), record.account, reason.into())),
        }
    }

    async fn decide_link(&self, token: &str, approve: bool) -> Result<(), Error> {
        let record = self.find_link(token).await?;
        let slot = ChallengeSlot {
            store: &*self.inner.store,
            id: record.id,
        };
        let now = self.now();
        let landed = cas::change(&slot, record, |record| {
            match link::decide(record, approve, now) {
                Ok(()) => Ok(Step::Write(Ok(()))),
                Err(reason) => Ok(Step::Keep(Err(reason))),
            }
        })
        .await?;
        let record = landed.record;
        if let Err(reason) = landed.answer {
            return Err(self.refuse(Some(record.id), record.account, reason.into()));
        }
        self.emit(Event::LinkDecided {
            challenge: record.id,
            approved: approve,
        });
        Ok(())
    }

    /// Finds the challenge a token names and checks the token in constant
    /// time. Every failure reads as [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown), except a
    /// well-formed token for a link whose hash was made with a key the
    /// hasher no longer holds: that can't be checked, and is
    /// [`Error::RetiredKey`], not counted.
    ///
    /// A token is a guess like a code: for an account's link it is settled
    /// against the account's failure run ([`guess::judge`]; a 256-bit token
    /// can't be guessed, but nothing is answered outside the back-off). A
    /// wrong token is one more failure; a right one counts nothing, as
    /// opening or deciding proves nothing yet (the sign-in that collects
    /// the approval ends the run), and is answered only while the account
    /// may guess.
    async fn find_link(&self, token: &str) -> Result<ChallengeRecord, Error> {
        let unknown = || self.refuse(None, None, Refusal::Code(CodeRefusal::Unknown));
        let (id, secret) = token.trim().split_once('.').ok_or_else(unknown)?;
        let id = ChallengeId::parse(id).map_err(|_| unknown())?;
        let secret = Zeroizing::new(
            base32::decode(base32::Alphabet::Rfc4648Lower { padding: false }, secret)
                .ok_or_else(unknown)?,
        );
        let record = self.inner.store.challenge(&id).await?.ok_or_else(unknown)?;
        let link = record.link.as_ref().ok_or_else(unknown)?;
        let now = self.now();
        // Only the canonical spelling of a token is accepted (base32's last
        // character carries spare bits; hex ids could be upper case).
        let canonical = format!(
            "{id}.{}",
            base32::encode(base32::Alphabet::Rfc4648Lower { padding: false }, &secret)
        );
        let well_formed =
            bool::from(canonical.as_bytes().ct_eq(token.trim().as_bytes())) && secret.len() == 32;
        let inner = &self.inner;
        let verdict = match inner
            .hasher
            .tag_with(link.token.key_id, &link_context(&id), &secret)
        {
            Ok(tag) if bool::from(tag.ct_eq(&link.token.tag)) && well_formed => Verdict::Right,
            Ok(_) => Verdict::Wrong,
            // A token of the right shape may be the right one: it can't be
            // told from a wrong one without the key, so it is not counted.
            Err(_) if well_formed => Verdict::Retired,
            Err(_) => Verdict::Wrong,
        };
        if let Some(account) = &record.account {
            // Judged, then settled in one compare-and-set of the account's
            // failure run: a wrong token lengthens it; any other answer is
            // given only while the run it was judged on stands and lets the
            // account guess, and takes nothing back.
            let right = verdict != Verdict::Wrong;
            match guess::judge(&*inner.store, &inner.failures, account, now, right).await? {
                Err(reason) => return Err(self.refuse(Some(id), Some(account.clone()), reason)),
                Ok(Some(run)) => {
                    guess::report_lock(&inner.failures, &*inner.events, account, &run, now);
                }
                Ok(None) => {}
            }
        }
        match verdict {
            Verdict::Right => Ok(record),
            Verdict::Wrong => Err(unknown()),
            Verdict::Retired => Err(super::retired_key(
                &*inner.events,
                record.account.clone(),
                SecretKind::Link,
                link.token.key_id,
            )),
        }
    }
}

/// What a link token turned out to be, before it is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Right,
    Wrong,
    /// Hashed with a key the hasher no longer holds: neither.
    Retired,
}
