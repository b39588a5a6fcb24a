//! The async layer under [`TwoFactor`](crate::service::TwoFactor), private
//! to the crate: read records, let the engines decide, write back with
//! compare-and-set ([`cas`]), hand messages to the gateway.
//!
//! One flow per concern: [`Challenges`] (one-time codes by SMS, voice and
//! email, and one-time links, with fallback channels, masked-contact
//! confirmation, send limits, the per-account back-off and audit events),
//! [`Contacts`] (the account's contacts, their one-owner claims and the
//! grace period), [`Verifications`] (several contacts verified together),
//! [`RecoveryCodes`] and [`TrustedDevices`]. The service builds them all
//! from one set of ports and keeps the rules that span them; nothing here is
//! public, so no host can go around those rules.

pub(crate) mod account;
pub(crate) mod authenticator;
pub(crate) mod cas;
pub(crate) mod codes;
mod contacts;
mod devices;
pub(crate) mod guess;
mod links;
mod ports;
mod recovery;
mod verifications;

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

pub(crate) use codes::Code;
pub use codes::{ChannelReason, IssueRequest, Ticket, Verified};
pub(crate) use contacts::Read;
pub use contacts::{ContactPolicy, ContactView, Contacts};
pub use devices::{DeviceInfo, TrustedDevices};
pub use links::{LinkRequest, LinkStatus, LinkTicket, LinkView};
pub use ports::Ports;
pub use recovery::RecoveryCodes;
pub use verifications::{
    DEFAULT_VERIFICATION_LIFETIME, MemberStatus, MemberTicket, Progress, VerificationRequest,
    VerificationStatus, VerificationTicket, Verifications,
};

use crate::challenge::CodePolicy;
use crate::clock::{Clock, SystemClock};
use crate::contact::MaskPolicy;
use crate::error::{CodeRefusal, Error, Misuse, Refusal, RetiredKey, SecretKind, SendRefusal};
use crate::events::{Event, EventSink, NoEvents};
use crate::gateway::{Gateway, Templates};
use crate::hash::{KeyId, KeyedHash, KeyedHasher};
use crate::limits::{FailurePolicy, LimitKind, SendLimits};
use crate::model::{
    AccountId, ChallengeId, ChallengeRecord, Channel, Destination, DestinationKind, FailureRecord,
    Locale,
};
use crate::random::{OsRandom, Random};
use crate::store::{Commit, Committed, LimitHit, Load, Store};

/// A sign-in attempt presenting a proof, with the account's security
/// epoch as the attempt read it. The epoch is part of what a spent secret
/// records, so once it moves on ("sign out everywhere", a password change)
/// not even the attempt that spent a secret can present it again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt<'a> {
    pub(crate) id: &'a str,
    pub(crate) epoch: u64,
}

/// The keyed hash a spent secret records of the sign-in attempt that spent
/// it, bound to `scope` (the challenge, or the account and the kind of
/// secret) so a hash copied elsewhere never matches.
pub(crate) fn attempt_hash(hasher: &KeyedHasher, scope: &[u8], attempt: Attempt<'_>) -> KeyedHash {
    hasher.hash(
        &attempt_context(scope, attempt.epoch),
        attempt.id.as_bytes(),
    )
}

/// Whether `attempt` is the one `stored` records, at the same epoch (in
/// constant time; a hash under a retired key matches nothing).
pub(crate) fn same_attempt(
    hasher: &KeyedHasher,
    scope: &[u8],
    attempt: Option<Attempt<'_>>,
    stored: Option<&KeyedHash>,
) -> bool {
    match (attempt, stored) {
        (Some(attempt), Some(stored)) => hasher
            .verify(
                &attempt_context(scope, attempt.epoch),
                attempt.id.as_bytes(),
                stored,
            )
            .unwrap_or(false),
        _ => false,
    }
}

/// Reports a secret that could not be checked because its key is no longer
/// held, and makes the error to hand back.
pub(crate) fn retired_key(
    events: &dyn EventSink,
    account: Option<AccountId>,
    secret: SecretKind,
    key_id: KeyId,
) -> Error {
    let retired = RetiredKey::new(secret, key_id);
    events.record(&Event::RetiredKey { account, retired });
    Error::RetiredKey(retired)
}

fn attempt_context(scope: &[u8], epoch: u64) -> Vec<u8> {
    let mut context = Vec::with_capacity(16 + scope.len());
    context.extend_from_slice(b"attempt:");
    context.extend_from_slice(&epoch.to_be_bytes());
    context.extend_from_slice(scope);
    context
}

/// One-time codes and links: issue, deliver with fallback, verify once.
///
/// Cheap to clone and `Send + Sync`: build one at start-up and share it.
#[derive(Clone)]
pub struct Challenges {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    gateway: Arc<dyn Gateway>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Random>,
    hasher: KeyedHasher,
    policy: CodePolicy,
    limits: SendLimits,
    failures: FailurePolicy,
    templates: Templates,
    service: String,
    origin: Option<String>,
    locale: Locale,
    link_base: Option<String>,
    events: Arc<dyn EventSink>,
    phone_channels: Vec<Channel>,
    mask: MaskPolicy,
}

impl fmt::Debug for Challenges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Challenges")
            .field("store", &i.store)
            .field("gateway", &i.gateway)
            .field("clock", &i.clock)
            .field("hasher", &i.hasher)
            .field("policy", &i.policy)
            .field("limits", &i.limits)
            .field("failures", &i.failures)
            .field("service", &i.service)
            .field("origin", &i.origin)
            .field("locale", &i.locale)
            .field("mask", &i.mask)
            .finish_non_exhaustive()
    }
}

/// Builds [`Challenges`]; `store`, `gateway`, `hasher` and `service_name`
/// are required, everything else has a default.
#[derive(Default)]
#[must_use]
pub struct ChallengesBuilder {
    store: Option<Arc<dyn Store>>,
    gateway: Option<Arc<dyn Gateway>>,
    clock: Option<Arc<dyn Clock>>,
    rng: Option<Arc<dyn Random>>,
    hasher: Option<KeyedHasher>,
    policy: CodePolicy,
    limits: SendLimits,
    failures: FailurePolicy,
    templates: Templates,
    service: Option<String>,
    origin: Option<String>,
    locale: Locale,
    link_base: Option<String>,
    events: Option<Arc<dyn EventSink>>,
    phone_channels: Option<Vec<Channel>>,
    mask: MaskPolicy,
}

impl fmt::Debug for ChallengesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengesBuilder")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl ChallengesBuilder {
    /// Where challenges, counters and failure runs live (required).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Who delivers messages (required).
    pub fn gateway(mut self, gateway: Arc<dyn Gateway>) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// The keyed hasher codes and tokens are stored through (required).
    pub fn hasher(mut self, hasher: KeyedHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// The service name messages show (required).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service = Some(name.into());
        self
    }

    /// The clock (default [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The random source (default [`OsRandom`]).
    pub fn rng(mut self, rng: Arc<dyn Random>) -> Self {
        self.rng = Some(rng);
        self
    }

    /// Code rules (default [`CodePolicy::default`]).
    pub fn policy(mut self, policy: CodePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Send limits (default [`SendLimits::default`]).
    pub fn limits(mut self, limits: SendLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Per-account failure back-off (default [`FailurePolicy::default`]).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failures = policy;
        self
    }

    /// Message templates (default: the built-in Japanese and English ones).
    pub fn templates(mut self, templates: Templates) -> Self {
        self.templates = templates;
        self
    }

    /// The host's domain (`example.com`): SMS codes end with the
    /// origin-bound line `@example.com #123456` for WebOTP and iOS autofill.
    pub fn origin(mut self, domain: impl Into<String>) -> Self {
        self.origin = Some(domain.into());
        self
    }

    /// The default message language (default Japanese).
    pub fn locale(mut self, locale: Locale) -> Self {
        self.locale = locale;
        self
    }

    /// The start of one-time-link URLs; the token is appended
    /// (`https://example.com/approve/`). Required for one-time links.
    pub fn link_base(mut self, url: impl Into<String>) -> Self {
        self.link_base = Some(url.into());
        self
    }

    /// Where audit events go (default: discarded).
    pub fn events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = Some(sink);
        self
    }

    /// The fallback plan for phone numbers (default SMS, then voice).
    pub fn phone_channels(mut self, channels: Vec<Channel>) -> Self {
        self.phone_channels = Some(channels);
        self
    }

    /// How much of a contact screens show, and what confirming a masked
    /// contact asks for (default [`MaskPolicy::default`]: the last 2 digits
    /// of a phone number shown, the last 4 asked for; the whole email
    /// address asked for).
    ///
    /// Every ticket returned shows the contact masked this way, whether or
    /// not its send asked for a confirmation, so that no screen of any
    /// journey gives away the answer to another's question.
    /// [`IssueRequest::confirmation`] is checked against it.
    pub fn mask_policy(mut self, policy: MaskPolicy) -> Self {
        self.mask = policy;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Misuse`] naming a missing part or an invalid setting.
    pub fn build(self) -> Result<Challenges, Error> {
        let missing = |what| Error::Misuse(Misuse::MissingPart(what));
        let phone_channels = self
            .phone_channels
            .unwrap_or_else(|| vec![Channel::Sms, Channel::Voice]);
        if phone_channels.is_empty() || phone_channels.contains(&Channel::Email) {
            return Err(Misuse::PhoneChannels.into());
        }
        let p = &self.policy;
        if p.max_attempts == 0
            || p.max_sends == 0
            || !p.lifetime.is_positive()
            || !p.link_lifetime.is_positive()
        {
            return Err(Misuse::CodePolicy.into());
        }
        Ok(Challenges {
            inner: Arc::new(Inner {
                store: self.store.ok_or_else(|| missing("a store"))?,
                gateway: self.gateway.ok_or_else(|| missing("a gateway"))?,
                hasher: self.hasher.ok_or_else(|| missing("a hasher"))?,
                service: self.service.ok_or_else(|| missing("a service name"))?,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                rng: self.rng.unwrap_or_else(|| Arc::new(OsRandom)),
                policy: self.policy,
                limits: self.limits,
                failures: self.failures,
                templates: self.templates,
                origin: self.origin,
                locale: self.locale,
                link_base: self.link_base,
                events: self.events.unwrap_or_else(|| Arc::new(NoEvents)),
                phone_channels,
                mask: self.mask,
            }),
        })
    }
}

impl Challenges {
    /// Starts a builder.
    pub fn builder() -> ChallengesBuilder {
        ChallengesBuilder::default()
    }

    /// How contacts are masked on screen and confirmed
    /// ([`ChallengesBuilder::mask_policy`]).
    #[must_use]
    pub fn mask_policy(&self) -> &MaskPolicy {
        &self.inner.mask
    }

    /// Clears an account's run of failures: after a hard stop, this is the
    /// operator's unlock.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn reset_failures(&self, account: &AccountId) -> Result<(), Error> {
        Ok(self.inner.store.clear_failures(account).await?)
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    fn emit(&self, event: Event) {
        self.inner.events.record(&event);
    }

    /// Records a refusal event and returns the error to hand back.
    fn refuse(
        &self,
        challenge: Option<ChallengeId>,
        account: Option<AccountId>,
        reason: Refusal,
    ) -> Error {
        self.emit(Event::Failed {
            challenge,
            account,
            reason,
        });
        Error::Refused(reason)
    }

    fn channels_for(&self, destination: &Destination) -> Vec<Channel> {
        match destination.kind() {
            DestinationKind::Phone => self.inner.phone_channels.clone(),
            DestinationKind::Email => vec![Channel::Email],
        }
    }

    pub(crate) async fn load(&self, id: &ChallengeId) -> Result<ChallengeRecord, Error> {
        match self.inner.store.challenge(id).await? {
            Some(record) => Ok(record),
            None => Err(self.unknown(*id)),
        }
    }

    /// The refusal (and its audit event) for a challenge id the store does
    /// not know.
    pub(crate) fn unknown(&self, id: ChallengeId) -> Error {
        self.refuse(Some(id), None, Refusal::Code(CodeRefusal::Unknown))
    }

    /// Refuses when the account is backing off or stopped.
    async fn check_lockout(
        &self,
        challenge: Option<ChallengeId>,
        account: &AccountId,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        // `load` checks the initialisation marker (`failures` alone does
        // not): a wiped store answers an error, not "no failures".
        let run = self
            .inner
            .store
            .load(&Load::account(account))
            .await?
            .failures;
        self.refuse_locked(challenge, account, run.as_ref(), now)
    }

    /// Refuses when `run` (the account's failure run, as just read) locks
    /// the account at `now`.
    fn refuse_locked(
        &self,
        challenge: Option<ChallengeId>,
        account: &AccountId,
        run: Option<&FailureRecord>,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        match self.inner.failures.lockout(run, now).refusal() {
            None => Ok(()),
            Some(reason) => Err(self.refuse(challenge, Some(account.clone()), reason)),
        }
    }

    /// Charges every send limit that applies; refuses at the first exceeded.
    async fn charge_send_limits(
        &self,
        destination: &Destination,
        account: Option<&AccountId>,
        caller: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let (kinds, hits) = self.send_limits(destination, account, caller);
        let commit = Commit {
            hits: &hits,
            ..Commit::default()
        };
        let committed = self.inner.store.commit(&commit, now).await?;
        self.limit_reached(&committed, &kinds, account)
    }

    /// The send counters a send to `destination` is charged to, in the
    /// order they are charged, with the kind of limit each one is.
    fn send_limits(
        &self,
        destination: &Destination,
        account: Option<&AccountId>,
        caller: Option<&str>,
    ) -> (Vec<LimitKind>, Vec<LimitHit>) {
        let limits = &self.inner.limits;
        let mut checks = vec![(
            LimitKind::Destination,
            format!("dest:{}", destination.limit_key()),
            limits.per_destination,
        )];
        if let Some(account) = account {
            checks.push((
                LimitKind::Account,
                format!("acct:{account}"),
                limits.per_account,
            ));
        }
        if let Some(caller) = caller {
            checks.push((
                LimitKind::Caller,
                format!("caller:{caller}"),
                limits.per_caller,
            ));
        }
        if destination.kind() == DestinationKind::Phone
            && let Some((prefix, limit)) = limits.country_budget(destination.address())
        {
            checks.push((LimitKind::Country, format!("country:{prefix}"), limit));
        }
        checks
            .into_iter()
            .map(|(kind, key, limit)| {
                let hit = LimitHit {
                    key,
                    window: limit.window,
                    max: limit.max,
                };
                (kind, hit)
            })
            .unzip()
    }

    /// The refusal for a commit a send limit stopped.
    fn limit_reached(
        &self,
        committed: &Committed,
        kinds: &[LimitKind],
        account: Option<&AccountId>,
    ) -> Result<(), Error> {
        match committed {
            Committed::LimitReached { index, count } => Err(self.refuse(
                None,
                account.cloned(),
                Refusal::Send(SendRefusal::RateLimited {
                    limit: kinds.get(*index).copied().unwrap_or(LimitKind::Destination),
                    retry_at: count.resets_at,
                }),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
