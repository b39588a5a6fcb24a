//! The two-factor service: every user journey of the seed documents in a
//! few calls on one type, [`TwoFactor`].
//!
//! The engines and flows below it are parts; this is the assembled thing a
//! host holds. It wires the store, gateway, clock, randomness, hashing keys
//! and every policy together once, and keeps the rules that are easy to get
//! wrong when wiring by hand: a recovery code bumps the security epoch,
//! turning two-step sign-in off needs a fresh second factor, a changed
//! phone number kills trusted devices, and journeys that take a contact
//! answer the same way whether or not it is registered.
//!
//! | journey | seed | calls |
//! | --- | --- | --- |
//! | sign-up, email **and** phone | EZSMS | [`signup_start`](TwoFactor::signup_start), [`signup_verify`](TwoFactor::signup_verify), [`signup_resend`](TwoFactor::signup_resend), [`signup_another_option`](TwoFactor::signup_another_option), [`signup_complete`](TwoFactor::signup_complete) |
//! | register or change a phone | nizima | [`phone_send_code`](TwoFactor::phone_send_code), [`resend`](TwoFactor::resend), [`phone_confirm`](TwoFactor::phone_confirm), [`phone_remove`](TwoFactor::phone_remove) |
//! | two-step sign-in on / off | nizima | [`enable_two_factor`](TwoFactor::enable_two_factor), [`disable_two_factor`](TwoFactor::disable_two_factor), [`regenerate_recovery_codes`](TwoFactor::regenerate_recovery_codes) |
//! | authenticator app | Microsoft | [`authenticator_start`](TwoFactor::authenticator_start), [`authenticator_confirm`](TwoFactor::authenticator_confirm), [`authenticator_remove`](TwoFactor::authenticator_remove) |
//! | sign-in second step | all | [`sign_in_begin`](TwoFactor::sign_in_begin), [`sign_in_send_code`](TwoFactor::sign_in_send_code), [`resend`](TwoFactor::resend), [`another_option`](TwoFactor::another_option), [`sign_in_send_link`](TwoFactor::sign_in_send_link), [`sign_in_complete`](TwoFactor::sign_in_complete) |
//! | one-time link on the phone | au ID | [`open_link`](TwoFactor::open_link), [`approve_link`](TwoFactor::approve_link), [`deny_link`](TwoFactor::deny_link) |
//! | contact check, grace period | Microsoft | [`contact_check`](TwoFactor::contact_check), [`contact_send_code`](TwoFactor::contact_send_code), [`contact_confirm`](TwoFactor::contact_confirm) |
//! | step-up for sensitive actions | all | a [`StepUp`] from [`sign_in_complete`](TwoFactor::sign_in_complete), checked by [`check_step_up`](TwoFactor::check_step_up) |
//! | "I can't sign in": find the account by a contact | OWASP | [`recover_start`](TwoFactor::recover_start), [`recover_verify`](TwoFactor::recover_verify) |
//! | trusted devices | nizima, au ID | [`devices`](TwoFactor::devices), [`revoke_device`](TwoFactor::revoke_device) |
//! | key rotation (operators) | — | [`key_usage`](TwoFactor::key_usage), [`reseal_authenticator`](TwoFactor::reseal_authenticator) |
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use ninsho::prelude::*;
//! use ninsho::gateway::RecordingGateway;
//! use ninsho::store::MemoryStore;
//!
//! let gateway = RecordingGateway::new();
//! let service = TwoFactor::builder(
//!     "nizima",
//!     Arc::new(MemoryStore::new()),
//!     Arc::new(gateway.clone()),
//!     KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32]).unwrap()),
//!     Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[8; 32]).unwrap())),
//! )
//!     .build()
//!     .unwrap();
//! let taro = AccountId::new("taro");
//!
//! // Register a phone and turn two-step sign-in on in the same step.
//! let ticket = service.phone_send_code(&taro, "090-1234-5678", None, None).await.unwrap();
//! let code = gateway.last_secret_to("+819012345678").unwrap();
//! let done = service
//!     .phone_confirm(&taro, &ticket.challenge_id, code.expose_secret(), true)
//!     .await
//!     .unwrap();
//! assert_eq!(done.recovery_codes.unwrap().len(), 10); // shown once
//!
//! // Next sign-in: the second step asks for a code.
//! let SignInStart::Required { methods } = service.sign_in_begin(&taro, None).await.unwrap() else {
//!     panic!("two-step sign-in is on");
//! };
//! let ticket = service.sign_in_send_code(&taro, &methods[0], None, None).await.unwrap();
//! let code = gateway.last_secret_to("+819012345678").unwrap();
//! let signed_in = service
//!     .sign_in_complete(&taro, Proof::Code { challenge: &ticket.challenge_id, code: code.expose_secret() }, None, None)
//!     .await
//!     .unwrap();
//! assert!(service.check_step_up(&taro, &signed_in.step_up).await.is_ok());
//! # });
//! ```

mod accounts;
mod codes;
mod journeys;
mod keys;
mod sign_in;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

pub use crate::flows::authenticator::AuthenticatorSetup;
use crate::flows::authenticator::Authenticators;
pub use crate::flows::{
    ChannelReason, ContactPolicy, ContactView, DEFAULT_VERIFICATION_LIFETIME, DeviceInfo,
    IssueRequest, LinkTicket, LinkView, MemberStatus, MemberTicket, Progress, Ticket,
    VerificationStatus, VerificationTicket, Verified,
};
#[allow(deprecated)]
pub use crate::seal::UnsealedStorage;
pub use crate::seal::{SealError, Sealer};
pub use codes::OneTimeCodes;
pub use journeys::{ContactCheck, PhoneConfirmed, Recovered};
pub use keys::KeyUsage;
pub use sign_in::{
    Method, MethodId, MethodKind, Proof, SignInAttempt, SignInStart, SignedIn, Skip,
};

use crate::challenge::CodePolicy;
use crate::clock::Clock;
use crate::contact::MaskPolicy;
use crate::device::DevicePolicy;
use crate::error::{AccountRefusal, Error, Misuse, Refusal};
use crate::events::EventSink;
use crate::flows::account::{self, Standing};
use crate::flows::{
    Challenges, ChallengesBuilder, Contacts, Ports, RecoveryCodes, TrustedDevices, Verifications,
};
use crate::gateway::{Gateway, Templates};
use crate::grace::GracePolicy;
use crate::hash::{KeyedHash, KeyedHasher};
use crate::limits::{FailurePolicy, SendLimits};
use crate::model::{AccountId, Channel, Locale};
use crate::random::Random;
use crate::recovery::RecoveryPolicy;
use crate::store::Store;

/// How long a second factor counts as fresh for sensitive actions by
/// default: 10 minutes.
pub const DEFAULT_STEP_UP_WINDOW: Duration = Duration::minutes(10);

/// Contact verification and two-step sign-in for a service: every journey,
/// one type.
///
/// Build one at start-up with [`TwoFactor::builder`] and share it: it is
/// cheap to clone (one `Arc`), `Send` and `Sync`, and holds its ports as
/// `Arc<dyn …>`, so its type never changes with the store or gateway.
///
/// Messages go out in the service's language
/// ([`TwoFactorBuilder::locale`]) unless a request names the user's:
/// [`with_locale`](Self::with_locale) gives a handle for one user's
/// language, as cheap as a clone.
#[derive(Clone)]
pub struct TwoFactor {
    inner: Arc<Inner>,
    /// The language of the messages this handle sends; `None`: the
    /// service's.
    locale: Option<Locale>,
}

struct Inner {
    challenges: Challenges,
    ports: Ports,
    recovery: RecoveryCodes,
    devices: TrustedDevices,
    contacts: Contacts,
    verifications: Verifications,
    apps: Authenticators,
    /// The key sign-in method ids are derived under.
    method_key: [u8; 16],
    service: String,
    step_up_window: Duration,
    confirm_masked: bool,
    email_second_factor: bool,
    links: bool,
}

impl fmt::Debug for TwoFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("TwoFactor")
            .field("service", &i.service)
            .field("locale", &self.locale)
            .field("challenges", &i.challenges)
            .field("contacts", &i.contacts)
            .field("apps", &i.apps)
            .field("step_up_window", &i.step_up_window)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TwoFactor`]: start it with [`TwoFactor::builder`], which
/// takes the required parts; everything else has a safe default.
#[must_use]
pub struct TwoFactorBuilder {
    challenges: ChallengesBuilder,
    store: Arc<dyn Store>,
    hasher: KeyedHasher,
    clock: Option<Arc<dyn Clock>>,
    rng: Option<Arc<dyn Random>>,
    events: Option<Arc<dyn EventSink>>,
    service: String,
    recovery: RecoveryPolicy,
    devices: DevicePolicy,
    contacts: ContactPolicy,
    grace: GracePolicy,
    failures: FailurePolicy,
    verification_lifetime: Option<Duration>,
    sealer: Arc<dyn Sealer>,
    step_up_window: Duration,
    confirm_masked: bool,
    email_second_factor: bool,
    links: bool,
}

impl fmt::Debug for TwoFactorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactorBuilder")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl TwoFactorBuilder {
    fn new(
        service: String,
        store: Arc<dyn Store>,
        gateway: Arc<dyn Gateway>,
        hasher: KeyedHasher,
        sealer: Arc<dyn Sealer>,
    ) -> Self {
        Self {
            challenges: Challenges::builder()
                .service_name(service.clone())
                .store(store.clone())
                .gateway(gateway)
                .hasher(hasher.clone()),
            store,
            hasher,
            clock: None,
            rng: None,
            events: None,
            service,
            recovery: RecoveryPolicy::default(),
            devices: DevicePolicy::default(),
            contacts: ContactPolicy::default(),
            grace: GracePolicy::default(),
            failures: FailurePolicy::default(),
            verification_lifetime: None,
            sealer,
            step_up_window: DEFAULT_STEP_UP_WINDOW,
            confirm_masked: false,
            email_second_factor: false,
            links: false,
        }
    }
}

impl TwoFactorBuilder {
    /// The web origin's domain, for the WebOTP line in SMS
    /// (`@example.com #123456`).
    pub fn origin(mut self, domain: impl Into<String>) -> Self {
        self.challenges = self.challenges.origin(domain);
        self
    }

    /// The default language of messages (default Japanese): the one a
    /// message goes out in when neither the call
    /// ([`TwoFactor::with_locale`]) nor the request names the user's.
    pub fn locale(mut self, locale: Locale) -> Self {
        self.challenges = self.challenges.locale(locale);
        self
    }

    /// Message templates.
    pub fn templates(mut self, templates: Templates) -> Self {
        self.challenges = self.challenges.templates(templates);
        self
    }

    /// Turns on one-time sign-in links (au ID), opened at `url` followed by
    /// the token.
    pub fn link_base(mut self, url: impl Into<String>) -> Self {
        self.challenges = self.challenges.link_base(url);
        self.links = true;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.challenges = self.challenges.clock(clock.clone());
        self.clock = Some(clock);
        self
    }

    /// The random source (default: the operating system's).
    pub fn rng(mut self, rng: Arc<dyn Random>) -> Self {
        self.challenges = self.challenges.rng(rng.clone());
        self.rng = Some(rng);
        self
    }

    /// Where audit events go (default: nowhere).
    pub fn events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.challenges = self.challenges.events(sink.clone());
        self.events = Some(sink);
        self
    }

    /// One-time code length, lifetime, attempts, resends.
    pub fn code_policy(mut self, policy: CodePolicy) -> Self {
        self.challenges = self.challenges.policy(policy);
        self
    }

    /// Send limits per destination, account, caller and country.
    pub fn limits(mut self, limits: SendLimits) -> Self {
        self.challenges = self.challenges.limits(limits);
        self
    }

    /// The per-account back-off and hard stop, shared by every factor.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.challenges = self.challenges.failure_policy(policy);
        self.failures = policy;
        self
    }

    /// The fallback plan for phones (default SMS, then voice).
    pub fn phone_channels(mut self, channels: Vec<Channel>) -> Self {
        self.challenges = self.challenges.phone_channels(channels);
        self
    }

    /// Recovery-code count and length.
    pub fn recovery_policy(mut self, policy: RecoveryPolicy) -> Self {
        self.recovery = policy;
        self
    }

    /// Trusted-device lifetime.
    pub fn device_policy(mut self, policy: DevicePolicy) -> Self {
        self.devices = policy;
        self
    }

    /// Which contacts may be registered (phone policy, one owner per
    /// number, limits).
    pub fn contact_policy(mut self, policy: ContactPolicy) -> Self {
        self.contacts = policy;
        self
    }

    /// The grace period.
    pub fn grace_policy(mut self, policy: GracePolicy) -> Self {
        self.grace = policy;
        self
    }

    /// How long a combined sign-up verification lives (default 30 minutes).
    pub fn verification_lifetime(mut self, lifetime: Duration) -> Self {
        self.verification_lifetime = Some(lifetime);
        self
    }

    /// How long a second factor counts as fresh for sensitive actions
    /// (default 10 minutes).
    pub fn step_up_window(mut self, window: Duration) -> Self {
        self.step_up_window = window;
        self
    }

    /// Whether a sign-in code or link is sent only after the user proves
    /// they know the masked contact, as Microsoft does (default off): the
    /// last digits of the phone number (4 by default), or the whole email
    /// address. [`mask_policy`](Self::mask_policy) sets how many digits are
    /// asked for and how many screens show; a wrong answer counts against
    /// the account's back-off.
    pub fn confirm_masked_contacts(mut self, on: bool) -> Self {
        self.confirm_masked = on;
        self
    }

    /// How much of a contact screens show, and what confirming a masked
    /// contact asks for (default [`MaskPolicy::default`]: the last 2 digits
    /// of a phone number shown and the last 4 asked for; at most 2
    /// characters of an email address's local part shown and the whole
    /// address asked for).
    ///
    /// Every masked contact the service returns for display follows it —
    /// sign-in methods, tickets, contact views, sign-up members — so no
    /// screen shows what a confirmation asks for, whichever journey it
    /// belongs to. Events and logs keep [`Destination::masked`](crate::model::Destination::masked).
    pub fn mask_policy(mut self, policy: MaskPolicy) -> Self {
        self.challenges = self.challenges.mask_policy(policy);
        self
    }

    /// Whether verified email addresses count as a second factor (default
    /// off).
    ///
    /// NIST SP 800-63B (§5.1.3.1) rules email out for out-of-band
    /// authentication: a mailbox is reached with a password, often the
    /// same one or one the account's own password reset controls, so it
    /// proves little that the password didn't. Off, sign-in offers no
    /// email method and refuses one, and an account with only a verified
    /// email has no second factor to turn two-step sign-in on with. Some
    /// services choose it anyway (au ID, Microsoft); turn it on to do the
    /// same, knowing the mailbox then guards the account.
    pub fn email_as_second_factor(mut self, on: bool) -> Self {
        self.email_second_factor = on;
        self
    }

    /// Builds the service.
    ///
    /// # Errors
    /// [`Error::Misuse`] naming the missing part or the bad value.
    pub fn build(self) -> Result<TwoFactor, Error> {
        let challenges = self.challenges.build()?;
        if self.step_up_window <= Duration::ZERO {
            return Err(Misuse::StepUpWindow.into());
        }
        let (service, sealer) = (self.service, self.sealer);
        let method_key = sign_in::method_key(&self.hasher);
        let mut ports = Ports::new(self.store, self.hasher);
        if let Some(clock) = self.clock {
            ports = ports.with_clock(clock);
        }
        if let Some(rng) = self.rng {
            ports = ports.with_rng(rng);
        }
        if let Some(events) = self.events {
            ports = ports.with_events(events);
        }
        let mut verifications = Verifications::new(challenges.clone());
        if let Some(lifetime) = self.verification_lifetime {
            verifications = verifications.with_lifetime(lifetime);
        }
        let contacts = Contacts::new(challenges.clone())
            .with_policy(
                self.contacts
                    .with_email_second_factor(self.email_second_factor),
            )
            .with_grace_policy(self.grace);
        let apps = Authenticators::new(
            ports.clone(),
            contacts.clone(),
            sealer,
            self.failures,
            service.clone(),
        );
        Ok(TwoFactor {
            inner: Arc::new(Inner {
                recovery: RecoveryCodes::new(ports.clone())
                    .with_policy(self.recovery)
                    .with_failure_policy(self.failures),
                devices: TrustedDevices::new(ports.clone()).with_policy(self.devices),
                contacts,
                verifications,
                challenges,
                ports,
                apps,
                method_key,
                service,
                step_up_window: self.step_up_window,
                confirm_masked: self.confirm_masked,
                email_second_factor: self.email_second_factor,
                links: self.links,
            }),
            locale: None,
        })
    }
}

/// Proof that the user passed a second factor at `at`: hand it to the
/// sensitive actions (change phone, turn two-step off, regenerate recovery
/// codes, authenticator changes) within the step-up window.
///
/// Keep it in the server-side session (it is serde-serialisable). It is
/// bound to the account, to the account's security epoch and to the
/// account's record (an account deleted and made again under the same id
/// does not honour it), and carries a
/// keyed hash, so a forged or edited one is refused, and so is one proven
/// before the epoch moved on ("sign out everywhere", a password change, a
/// recovery-code sign-in, a changed or removed second factor).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepUp {
    account: AccountId,
    at: OffsetDateTime,
    method: MethodKind,
    epoch: u64,
    /// The incarnation of the account's record it was proven for.
    #[serde(default)]
    incarnation: u64,
    tag: KeyedHash,
}

impl StepUp {
    /// When the second factor was passed.
    #[must_use]
    pub fn at(&self) -> OffsetDateTime {
        self.at
    }

    /// With which method.
    #[must_use]
    pub fn method(&self) -> MethodKind {
        self.method
    }

    /// The account.
    #[must_use]
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The account's security epoch it was proven at.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// What a [`StepUp`]'s tag covers: account, instant, method, and the
/// account's standing (epoch and record incarnation).
fn step_up_context(
    account: &AccountId,
    at: OffsetDateTime,
    method: MethodKind,
    standing: Standing,
) -> Vec<u8> {
    let mut message = Vec::with_capacity(account.0.len() + 40);
    message.extend_from_slice(&at.unix_timestamp_nanos().to_be_bytes());
    message.push(method as u8);
    message.extend_from_slice(&standing.epoch.to_be_bytes());
    message.extend_from_slice(&standing.incarnation.to_be_bytes());
    message.extend_from_slice(account.0.as_bytes());
    message
}

const STEP_UP: &[u8] = b"ninsho/step-up/v3";

const HEX: &[u8; 16] = b"0123456789abcdef";

impl TwoFactor {
    /// Starts a builder from the parts a service can't do without, so that
    /// leaving one out is a compile error rather than a runtime one:
    ///
    /// - `service_name`: the name users see in messages and authenticator
    ///   apps;
    /// - `store`: where records live ([`MemoryStore`](crate::store::MemoryStore),
    ///   `PgStore`, `MySqlStore`, `SqliteStore`, `RedisStore`, or your own);
    /// - `gateway`: how messages leave;
    /// - `hasher`: the keys every secret at rest is hashed with;
    /// - `sealer`: how authenticator seeds are sealed at rest:
    ///   [`AeadSealer`](crate::seal::AeadSealer) with a key from your secret
    ///   manager, or your own [`Sealer`] backed by a KMS.
    ///   [`DangerousUnsealed`](crate::seal::DangerousUnsealed) stores them in clear, for tests that must
    ///   read them: a copy of the database then yields every user's codes.
    ///
    /// Everything else has a safe default and a setter.
    ///
    /// ```compile_fail
    /// # use std::sync::Arc;
    /// # use ninsho::{gateway::RecordingGateway, store::MemoryStore, service::TwoFactor};
    /// # use ninsho::{HashKey, KeyId, KeyedHasher};
    /// // No sealer: this does not compile.
    /// let service = TwoFactor::builder(
    ///     "Example",
    ///     Arc::new(MemoryStore::new()),
    ///     Arc::new(RecordingGateway::new()),
    ///     KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32]).unwrap()),
    /// )
    /// .build();
    /// ```
    pub fn builder(
        service_name: impl Into<String>,
        store: Arc<dyn Store>,
        gateway: Arc<dyn Gateway>,
        hasher: KeyedHasher,
        sealer: Arc<dyn Sealer>,
    ) -> TwoFactorBuilder {
        TwoFactorBuilder::new(service_name.into(), store, gateway, hasher, sealer)
    }

    /// A handle on the same service that sends its messages in `locale`:
    /// the user's language for the messages this handle sends. The
    /// service's locale ([`TwoFactorBuilder::locale`]) stays the default
    /// for every other handle. Cheap (it clones one `Arc`); make one per
    /// request from the user's profile or `Accept-Language`.
    ///
    /// Every journey that sends a code or link in this handle uses it:
    /// [`sign_in_send_code`](Self::sign_in_send_code),
    /// [`sign_in_send_link`](Self::sign_in_send_link),
    /// [`signup_start`](Self::signup_start),
    /// [`phone_send_code`](Self::phone_send_code),
    /// [`contact_send_code`](Self::contact_send_code),
    /// [`recover_start`](Self::recover_start), and
    /// [`one_time_codes`](Self::one_time_codes) for a request that names
    /// no locale of its own.
    ///
    /// A challenge keeps the language it was issued in: a resend or "use
    /// another option" ([`resend`](Self::resend),
    /// [`another_option`](Self::another_option),
    /// [`signup_resend`](Self::signup_resend),
    /// [`signup_another_option`](Self::signup_another_option),
    /// [`OneTimeCodes::resend`]) speaks the language of the first message,
    /// whichever handle asks, so one sign-in never switches language half
    /// way.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::sync::Arc;
    /// # use ninsho::gateway::RecordingGateway;
    /// # use ninsho::store::MemoryStore;
    /// use ninsho::prelude::*;
    ///
    /// # let gateway = RecordingGateway::new();
    /// // A Japanese service...
    /// let service = TwoFactor::builder(
    /// #     "Example",
    /// #     Arc::new(MemoryStore::new()),
    /// #     Arc::new(gateway.clone()),
    /// #     KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32]).unwrap()),
    /// #     Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[8; 32]).unwrap())),
    ///     // ...
    /// )
    /// .locale(Locale::Ja)
    /// .build()
    /// .unwrap();
    ///
    /// // ...and a user who reads English.
    /// let taro = AccountId::new("taro");
    /// service
    ///     .with_locale(Locale::En)
    ///     .phone_send_code(&taro, "090-1234-5678", None, None)
    ///     .await
    ///     .unwrap();
    /// let sms = gateway.last_to("+819012345678").unwrap();
    /// assert_eq!(sms.locale, Locale::En);
    /// # });
    /// ```
    #[must_use]
    pub fn with_locale(&self, locale: Locale) -> TwoFactor {
        TwoFactor {
            inner: Arc::clone(&self.inner),
            locale: Some(locale),
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.inner.ports.clock.now()
    }

    fn store(&self) -> &dyn Store {
        &*self.inner.ports.store
    }

    /// A step-up proof for a second factor passed now, at the account's
    /// security epoch `epoch`.
    pub(crate) fn step_up(
        &self,
        account: &AccountId,
        method: MethodKind,
        standing: Standing,
    ) -> StepUp {
        let at = self.now();
        let tag = self
            .inner
            .ports
            .hasher
            .hash(STEP_UP, &step_up_context(account, at, method, standing));
        StepUp {
            account: account.clone(),
            at,
            method,
            epoch: standing.epoch,
            incarnation: standing.incarnation,
            tag,
        }
    }

    /// Checks that `proof` is this account's, genuine, fresh (within the
    /// step-up window) and proven at the account's current security epoch.
    ///
    /// # Errors
    /// [`AccountRefusal::StepUpRequired`] otherwise: ask for a second factor again
    /// ([`sign_in_begin`](Self::sign_in_begin) without a device token, then
    /// [`sign_in_complete`](Self::sign_in_complete)); [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.check_step_up", skip_all, fields(account = account.0.as_str())))]
    pub async fn check_step_up(&self, account: &AccountId, proof: &StepUp) -> Result<(), Error> {
        let standing = account::standing(self.store(), account).await?;
        self.verify_step_up(account, proof, standing)
    }

    /// [`check_step_up`](Self::check_step_up) against the account's
    /// `standing`, read by the caller (inside the write it guards, where it
    /// can). A proof issued for another record of the account id (an
    /// earlier one, deleted) is refused.
    pub(crate) fn verify_step_up(
        &self,
        account: &AccountId,
        proof: &StepUp,
        standing: Standing,
    ) -> Result<(), Error> {
        let proven = Standing {
            epoch: proof.epoch,
            incarnation: proof.incarnation,
            since: None,
        };
        let genuine = self
            .inner
            .ports
            .hasher
            .verify(
                STEP_UP,
                &step_up_context(&proof.account, proof.at, proof.method, proven),
                &proof.tag,
            )
            .unwrap_or(false);
        let now = self.now();
        let fresh = proof.at <= now && now - proof.at <= self.inner.step_up_window;
        let current = proof.epoch == standing.epoch && standing.is_for(proof.incarnation, proof.at);
        if genuine && &proof.account == account && fresh && current {
            Ok(())
        } else {
            Err(Refusal::Account(AccountRefusal::StepUpRequired).into())
        }
    }

    /// Requires a fresh step-up when two-step sign-in is on.
    async fn step_up_if_enabled(
        &self,
        account: &AccountId,
        proof: Option<&StepUp>,
    ) -> Result<(), Error> {
        let book = self.store().account_record(account).await?;
        if let Some(book) = book.filter(|b| b.factors.two_factor_since.is_some()) {
            let proof = proof.ok_or(Error::Refused(Refusal::Account(
                AccountRefusal::StepUpRequired,
            )))?;
            self.verify_step_up(account, proof, Standing::of(Some(&book)))?;
        }
        Ok(())
    }

    /// A fresh sign-in attempt id (128 random bits): make one when the
    /// password is accepted and keep it with the pending sign-in (see
    /// [`SignInAttempt`]).
    ///
    /// # Errors
    /// [`Error::Random`] when the random source fails.
    pub fn new_attempt(&self) -> Result<SignInAttempt, Error> {
        let mut bytes = [0u8; 16];
        self.inner.ports.rng.fill(&mut bytes)?;
        let hex = bytes.iter().fold(String::with_capacity(32), |mut out, b| {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
            out
        });
        Ok(SignInAttempt::new(hex))
    }

    /// Moves the account's security epoch on: every trusted device and
    /// every step-up proof issued before is dead. Call it when the user
    /// asks to sign out everywhere, and when the password changes (see
    /// [`password_changed`](Self::password_changed)).
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.sign_out_everywhere", skip_all, fields(account = account.0.as_str())))]
    pub async fn sign_out_everywhere(&self, account: &AccountId) -> Result<(), Error> {
        self.inner.devices.bump_epoch(account).await.map(drop)
    }

    /// The account's password changed: as
    /// [`sign_out_everywhere`](Self::sign_out_everywhere), every trusted
    /// device and step-up proof from before dies.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.password_changed", skip_all, fields(account = account.0.as_str())))]
    pub async fn password_changed(&self, account: &AccountId) -> Result<(), Error> {
        self.sign_out_everywhere(account).await
    }

    /// Whether two-step sign-in is on for the account.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.two_factor_enabled", skip_all, fields(account = account.0.as_str())))]
    pub async fn two_factor_enabled(&self, account: &AccountId) -> Result<bool, Error> {
        Ok(self
            .store()
            .account_record(account)
            .await?
            .is_some_and(|b| b.factors.two_factor_since.is_some()))
    }
}
