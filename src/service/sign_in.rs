//! The second step of signing in, and the trusted devices it can skip.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{HEX, StepUp, TwoFactor};
use crate::contact::MaskPolicy;
use crate::device::{DeviceCheck, DeviceToken};
use crate::error::{AccountRefusal, CodeRefusal, ContactRefusal, Error, Misuse, Refusal};
use crate::events::Event;
use crate::flows::account::Standing;
use crate::flows::{
    Attempt, Code, DeviceInfo, IssueRequest, LinkRequest, LinkStatus, LinkTicket, LinkView, Ticket,
};
use crate::hash::{KeyedHasher, siphash24};
use crate::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, Channel, Destination, DestinationKind,
    DeviceId, DeviceRecord, FailureRecord, Purpose,
};
use crate::store::{Load, Loaded, StoreError};

/// How many times a code sign-in is decided again because the account's
/// record changed between its read and its commit: each round lost means
/// another change of the record landed, so a handful is plenty.
const RECORD_ROUNDS: usize = 8;

/// A way to pass the second step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MethodKind {
    /// A code by SMS.
    Sms,
    /// A code read out by a voice call.
    Voice,
    /// A code by email.
    Email,
    /// A one-time link by SMS or email, approved on the phone (au ID).
    Link,
    /// A code from the authenticator app.
    Authenticator,
    /// One of the account's recovery codes.
    RecoveryCode,
}

/// Names one sign-in method of one account: what a form sends back when
/// the user picks a method, and what
/// [`sign_in_send_code`](TwoFactor::sign_in_send_code) and
/// [`sign_in_send_link`](TwoFactor::sign_in_send_link) take.
///
/// It names the method itself (its kind and, for a code or link, its
/// contact), not a place in the list, so it stays right when the list
/// changes between showing the page and the user's click. It is bound to
/// the account: another account's id is refused. And it is safe in a form
/// field: the contact part is a keyed hash, so not even the digits a
/// screen hides can be worked out from it. It lasts as long as the
/// current hashing key; after a key rotation, list the methods again.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MethodId(String);

impl MethodId {
    /// Wraps the id a form sent back. It is checked when used: an id that
    /// names no current method of the account is refused then.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id, for the form field.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the method of `kind` whose binding (the account and its
    /// contact) hashes to `binding`.
    fn of(kind: MethodKind, binding: u64) -> Self {
        let mut id = String::with_capacity(32);
        id.push_str(kind.as_str());
        id.push('-');
        for byte in binding.to_be_bytes() {
            id.push(char::from(HEX[usize::from(byte >> 4)]));
            id.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self(id)
    }
}

/// What method ids are bound to: the account and, for a code or link, its
/// contact (the address's limit key; empty for the app and recovery
/// codes), under the service's method-id key (SipHash-2-4, a keyed
/// pseudorandom function: without the key nothing of the contact can be
/// worked out from an id). One per contact, shared by its methods.
fn binding(key: &[u8; 16], account: &AccountId, contact: &str) -> u64 {
    let (account, contact) = (account.0.as_bytes(), contact.as_bytes());
    let len = u64::try_from(account.len())
        .unwrap_or(u64::MAX)
        .to_be_bytes();
    let total = 8 + account.len() + contact.len();
    // Ids are made on every sign-in: no allocation for the usual sizes.
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let message: &mut [u8] = if total <= stack.len() {
        &mut stack[..total]
    } else {
        heap.resize(total, 0);
        &mut heap
    };
    message[..8].copy_from_slice(&len);
    message[8..8 + account.len()].copy_from_slice(account);
    message[8 + account.len()..].copy_from_slice(contact);
    siphash24(key, message)
}

/// The last binding computed, so a contact's methods (SMS, voice, link)
/// share one.
#[derive(Default)]
struct Binding<'a> {
    last: Option<(Option<&'a Destination>, u64)>,
}

impl<'a> Binding<'a> {
    fn of(&mut self, key: &[u8; 16], account: &AccountId, to: Option<&'a Destination>) -> u64 {
        match self.last {
            Some((last, value)) if last == to => value,
            _ => {
                let value = binding(
                    key,
                    account,
                    &to.map(Destination::limit_key).unwrap_or_default(),
                );
                self.last = Some((to, value));
                value
            }
        }
    }
}

/// The method-id key of a service whose hashing key is `hasher`'s current
/// one: derived from it, so instances sharing keys give the same ids, and
/// ids change when the key is rotated.
pub(super) fn method_key(hasher: &KeyedHasher) -> [u8; 16] {
    let tag = hasher.hash(b"ninsho/method-id-key/v1", b"").tag;
    let mut key = [0u8; 16];
    key.copy_from_slice(&tag.0[..16]);
    key
}

impl fmt::Display for MethodId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MethodId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MethodId({})", self.0)
    }
}

impl AsRef<MethodId> for MethodId {
    fn as_ref(&self) -> &MethodId {
        self
    }
}

impl AsRef<MethodId> for Method {
    fn as_ref(&self) -> &MethodId {
        &self.id
    }
}

impl MethodKind {
    /// A stable, snake_case name: `"sms"`, `"voice"`, `"email"`, `"link"`,
    /// `"authenticator"`, `"recovery_code"` (as it serialises).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Voice => "voice",
            Self::Email => "email",
            Self::Link => "link",
            Self::Authenticator => "authenticator",
            Self::RecoveryCode => "recovery_code",
        }
    }
}

/// One method the account can use now, to show as a choice ("Text
/// ***-****-**78", "Use your authenticator app", …).
///
/// It serialises (for the browser) to its id, kind, masked destination and
/// what confirmation it requires — never the full contact. When the user
/// picks one, the form sends back its [`id`](Self::id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Method {
    /// Names this method of this account (see [`MethodId`]).
    pub id: MethodId,
    /// What kind.
    pub kind: MethodKind,
    /// Where the code or link goes, masked as the service's
    /// [`MaskPolicy`] says (`+81 **-****-**78`; none for the app and
    /// recovery codes). It always shows less than a confirmation asks for.
    pub masked_destination: Option<String>,
    /// Whether the user must first prove they know the masked contact (the
    /// last [`confirmation_digits`](Self::confirmation_digits) digits of
    /// the phone, or the whole email address) before anything is sent.
    pub confirmation_required: bool,
    /// When confirmation is required for a phone number: how many of its
    /// last digits to ask for ("type the last 4 digits"). `None` otherwise.
    pub confirmation_digits: Option<u8>,
    #[serde(skip)]
    destination: Option<Destination>,
}

impl Method {
    fn contact(
        id: MethodId,
        kind: MethodKind,
        destination: &Destination,
        confirm: bool,
        mask: &MaskPolicy,
    ) -> Self {
        Self {
            id,
            kind,
            masked_destination: Some(destination.masked_for(mask)),
            confirmation_required: confirm,
            confirmation_digits: destination.confirmation_digits(mask).filter(|_| confirm),
            destination: Some(destination.clone()),
        }
    }

    fn local(id: MethodId, kind: MethodKind) -> Self {
        Self {
            id,
            kind,
            masked_destination: None,
            confirmation_required: false,
            confirmation_digits: None,
            destination: None,
        }
    }
}

/// Why the second step is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Two-step sign-in is off for the account (also the answer for an
    /// account ninsho has never seen, so the two can't be told apart).
    TwoFactorOff,
    /// "Don't ask again on this device": the device token is valid.
    TrustedDevice,
}

/// The start of the second step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[serde(tag = "second_step", rename_all = "snake_case")]
pub enum SignInStart {
    /// No second step needed.
    NotNeeded(Skip),
    /// Ask for one of `methods` (in order of preference; never empty).
    Required {
        /// The choices.
        methods: Vec<Method>,
    },
}

/// What the user proves the second step with. Its `Debug` never shows
/// what the user typed.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Proof<'a> {
    /// The code sent by [`TwoFactor::sign_in_send_code`].
    Code {
        /// The ticket's challenge.
        challenge: &'a ChallengeId,
        /// What the user typed.
        code: &'a str,
    },
    /// A code from the authenticator app.
    Authenticator {
        /// What the user typed.
        code: &'a str,
    },
    /// A recovery code.
    RecoveryCode {
        /// What the user typed.
        code: &'a str,
    },
}

impl fmt::Debug for Proof<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code { challenge, .. } => f
                .debug_struct("Code")
                .field("challenge", challenge)
                .field("code", &"[redacted]")
                .finish(),
            Self::Authenticator { .. } => f
                .debug_struct("Authenticator")
                .field("code", &"[redacted]")
                .finish(),
            Self::RecoveryCode { .. } => f
                .debug_struct("RecoveryCode")
                .field("code", &"[redacted]")
                .finish(),
        }
    }
}

/// Identifies one sign-in attempt: the pending sign-in of one browser,
/// from the password to the second step.
///
/// Pass the same attempt to every [`sign_in_complete`](TwoFactor::sign_in_complete)
/// (and [`sign_in_poll_link`](TwoFactor::sign_in_poll_link)) of that
/// sign-in. ninsho records it, as a keyed hash, with the secret the sign-in
/// spends. When the store's reply to that write is lost (a timeout, a
/// dropped connection) the host sees an error although the code was used;
/// a retry **from the same attempt** with the same proof then succeeds
/// again, while a replay of the proof from any other attempt stays refused
/// (the way payment APIs use idempotency keys).
///
/// Make one with [`TwoFactor::new_attempt`] when the password is accepted
/// and keep it server-side with the pending sign-in, or wrap an
/// unguessable id the host already has for it ([`SignInAttempt::new`]).
/// Never use something an attacker can learn or choose, such as a user
/// name. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignInAttempt(String);

impl SignInAttempt {
    /// Wraps the host's own unguessable id for the pending sign-in.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id, to keep with the pending sign-in.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SignInAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignInAttempt([redacted])")
    }
}

/// The second step passed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SignedIn {
    /// How.
    pub method: MethodKind,
    /// The new trusted-device token and its entry, when asked to trust the
    /// device: put the token in an `HttpOnly`, `Secure` cookie. Serialised
    /// as `trusted_device`, the entry alone (which device was trusted):
    /// the token never goes into JSON.
    #[serde(rename = "trusted_device", serialize_with = "device_entry_only")]
    pub device: Option<(DeviceToken, DeviceInfo)>,
    /// Whether trusting the device was asked for but could not be done
    /// (no randomness for its token, or a store outage after the proof was
    /// spent). The sign-in stands: "trust this device" is a convenience,
    /// and failing to store it never undoes a second factor that was
    /// passed. The device is asked again next time. (A code or recovery
    /// code trusts the device in the same write that spends it, so a store
    /// outage there fails the whole step, nothing spent.)
    pub trust_failed: bool,
    /// After a recovery code: how many are left (prompt for new ones when
    /// few are). Every trusted device was revoked.
    pub recovery_codes_left: Option<usize>,
    /// Proof of a fresh second factor, for sensitive actions. Keep it in
    /// the server-side session: it is a bearer proof, so it is left out of
    /// the JSON form.
    #[serde(skip)]
    pub step_up: StepUp,
}

/// The kind a method id claims (its prefix), for a journey span: a known
/// kind's name or `"unknown"`, never the rest of the id (the id comes
/// from a form and is checked later).
#[cfg(feature = "tracing")]
fn claimed_kind(id: &MethodId) -> &'static str {
    [
        MethodKind::Sms,
        MethodKind::Voice,
        MethodKind::Email,
        MethodKind::Link,
        MethodKind::Authenticator,
        MethodKind::RecoveryCode,
    ]
    .into_iter()
    .find(|kind| {
        id.as_str()
            .strip_prefix(kind.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    })
    .map_or("unknown", MethodKind::as_str)
}

/// The method kind a proof names, for a journey span; `None` for a code,
/// whose channel is known once it is verified (recorded then).
#[cfg(feature = "tracing")]
fn proof_kind(proof: &Proof<'_>) -> Option<&'static str> {
    match proof {
        Proof::Code { .. } => None,
        Proof::Authenticator { .. } => Some(MethodKind::Authenticator.as_str()),
        Proof::RecoveryCode { .. } => Some(MethodKind::RecoveryCode.as_str()),
    }
}

/// A trusted device's entry without its token.
fn device_entry_only<S: serde::Serializer>(
    device: &Option<(DeviceToken, DeviceInfo)>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&device.as_ref().map(|(_, info)| info), serializer)
}

impl TwoFactor {
    /// Starts the second step after the password: either no second step is
    /// needed (two-step sign-in is off, or `device_token` is a valid
    /// trusted-device token), or the methods the account can use. A device
    /// token that can't be checked because its key was retired
    /// ([`DeviceCheck::RetiredKey`]) is not trusted: the second step is
    /// asked for, never refused.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.sign_in_begin", skip_all, fields(account = account.0.as_str())))]
    pub async fn sign_in_begin(
        &self,
        account: &AccountId,
        device_token: Option<&str>,
    ) -> Result<SignInStart, Error> {
        // The record and the token's device in one read.
        let device = device_token
            .and_then(crate::device::parse_token)
            .map(|(id, _)| id);
        let mut load = Load::account(account);
        if let Some(id) = &device {
            load = load.with_device(id);
        }
        let loaded = self.store().load(&load).await?;
        let Some(book) = loaded
            .record
            .filter(|b| b.factors.two_factor_since.is_some())
        else {
            return Ok(SignInStart::NotNeeded(Skip::TwoFactorOff));
        };
        if let Some(token) = device_token
            && let DeviceCheck::Valid { .. } = self
                .inner
                .devices
                .check_loaded(account, token, Standing::of(Some(&book)), loaded.device)
                .await
        {
            return Ok(SignInStart::NotNeeded(Skip::TrustedDevice));
        }
        let methods = self.methods_of(&book);
        Ok(SignInStart::Required { methods })
    }

    /// Every method the account can pass a second step with now, whether
    /// or not two-step sign-in is on (for a step-up, say).
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.methods", skip_all, fields(account = account.0.as_str())))]
    pub async fn methods(&self, account: &AccountId) -> Result<Vec<Method>, Error> {
        match self.store().account_record(account).await? {
            Some(book) => Ok(self.methods_of(&book)),
            None => Ok(Vec::new()),
        }
    }

    /// The methods `record` offers (pure: everything is in the record).
    fn methods_of(&self, book: &AccountRecord) -> Vec<Method> {
        let key = &self.inner.method_key;
        let mut bound = Binding::default();
        self.offered(book)
            .into_iter()
            .map(|(kind, to)| {
                let id = MethodId::of(kind, bound.of(key, &book.account, to));
                self.method(id, kind, to)
            })
            .collect()
    }

    /// The kind and contact of the account's method named `id`, if it
    /// offers one now. Nothing is built or masked: only the id is checked.
    fn method_named<'a>(
        &self,
        book: &'a AccountRecord,
        id: &MethodId,
    ) -> Option<(MethodKind, Option<&'a Destination>)> {
        let key = &self.inner.method_key;
        let mut bound = Binding::default();
        self.offered(book).into_iter().find(|&(kind, to)| {
            // Only a method of the id's kind can match: skip the hash for
            // the rest.
            id.as_str()
                .strip_prefix(kind.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
                && MethodId::of(kind, bound.of(key, &book.account, to)) == *id
        })
    }

    fn method(&self, id: MethodId, kind: MethodKind, to: Option<&Destination>) -> Method {
        let i = &self.inner;
        match to {
            Some(to) => Method::contact(id, kind, to, i.confirm_masked, i.challenges.mask_policy()),
            None => Method::local(id, kind),
        }
    }

    /// The methods the account offers now, in the order users expect them
    /// (the app, phones with SMS, voice and link, emails where they count,
    /// recovery codes), each with its contact.
    fn offered<'a>(&self, book: &'a AccountRecord) -> Vec<(MethodKind, Option<&'a Destination>)> {
        let i = &self.inner;
        let mut offered = Vec::new();
        if book.factors.authenticator.is_some() {
            offered.push((MethodKind::Authenticator, None));
        }
        let verified = || book.contacts.iter().filter(|c| c.is_verified());
        let phone = &i.contacts.policy().phone;
        for entry in verified().filter(|c| c.kind() == DestinationKind::Phone) {
            let to = &entry.destination;
            offered.push((MethodKind::Sms, Some(to)));
            // The type read at registration spares parsing the number at
            // every sign-in; older entries are parsed.
            let callable = match entry.phone_type {
                Some(kind) => phone.types_for(Channel::Voice).contains(&kind),
                None => phone.check_destination(to, Channel::Voice).is_ok(),
            };
            if callable {
                offered.push((MethodKind::Voice, Some(to)));
            }
            if i.links {
                offered.push((MethodKind::Link, Some(to)));
            }
        }
        if i.email_second_factor {
            for to in verified()
                .map(|c| &c.destination)
                .filter(|d| d.kind() == DestinationKind::Email)
            {
                offered.push((MethodKind::Email, Some(to)));
                if i.links {
                    offered.push((MethodKind::Link, Some(to)));
                }
            }
        }
        // The codes live in the same record: no second read.
        if book
            .factors
            .recovery
            .as_ref()
            .is_some_and(|set| set.remaining() > 0)
        {
            offered.push((MethodKind::RecoveryCode, None));
        }
        offered
    }

    /// The method's contact, if it is still a verified contact of the
    /// account.
    ///
    /// The method is looked up afresh by its id among the account's methods
    /// now: nothing the caller hands in (a kind, a destination, whether to
    /// confirm) is taken on trust. An id that names no current method of
    /// the account (another account's, or one whose contact is gone) is
    /// [`AccountRefusal::NoSuchMethod`](crate::AccountRefusal::NoSuchMethod).
    ///
    /// Also hands back the account's failure run, read in the same store
    /// call, for the lockout check that follows.
    async fn contact_of(
        &self,
        account: &AccountId,
        id: &MethodId,
    ) -> Result<(MethodKind, Destination, Option<FailureRecord>, Standing), Error> {
        let loaded = self.store().load(&Load::account(account)).await?;
        let record = loaded.record;
        let (kind, to) = record
            .as_ref()
            .and_then(|r| self.method_named(r, id))
            .ok_or(Error::Refused(Refusal::Account(
                AccountRefusal::NoSuchMethod,
            )))?;
        let Some(to) = to else {
            return Err(Misuse::MethodSendsNothing.into());
        };
        let to = self.contact_in(record.as_ref(), to)?;
        Ok((kind, to, loaded.failures, Standing::of(record.as_ref())))
    }

    /// `to`, if it is a verified contact in `record` that may carry a second
    /// factor; [`ContactRefusal::NotOnAccount`](crate::ContactRefusal::NotOnAccount) if not.
    fn contact_in(
        &self,
        book: Option<&AccountRecord>,
        to: &Destination,
    ) -> Result<Destination, Error> {
        if to.kind() == DestinationKind::Email && !self.inner.email_second_factor {
            return Err(Refusal::Contact(ContactRefusal::NotOnAccount).into());
        }
        let current = book.is_some_and(|b| {
            b.contacts
                .iter()
                .any(|c| c.is_verified() && c.destination.limit_key() == to.limit_key())
        });
        if current {
            Ok(to.clone())
        } else {
            Err(Refusal::Contact(ContactRefusal::NotOnAccount).into())
        }
    }

    /// `destination`, if it is still a verified contact of the account that
    /// may carry a second factor, with the account's security epoch;
    /// [`CodeRefusal::DestinationMismatch`](crate::CodeRefusal::DestinationMismatch) if not (a code or link in flight to
    /// a contact changed since is dead).
    async fn still_contact(
        &self,
        account: &AccountId,
        destination: &Destination,
    ) -> Result<(Destination, Standing), Error> {
        let book = self.store().account_record(account).await?;
        self.contact_still_in(book.as_ref(), destination)
    }

    /// [`still_contact`](Self::still_contact) in the record the caller
    /// just read.
    fn contact_still_in(
        &self,
        book: Option<&AccountRecord>,
        destination: &Destination,
    ) -> Result<(Destination, Standing), Error> {
        match self.contact_in(book, destination) {
            Ok(to) => Ok((to, Standing::of(book))),
            Err(Error::Refused(Refusal::Contact(ContactRefusal::NotOnAccount))) => {
                Err(Refusal::Code(CodeRefusal::DestinationMismatch).into())
            }
            Err(e) => Err(e),
        }
    }

    /// Sends a sign-in code by the method's channel (SMS, voice or email).
    /// `method` is the [`MethodId`] the user picked (or the [`Method`]
    /// itself); it is looked up afresh among the account's methods. When
    /// the method requires it, `confirmation` is what the user typed for
    /// the masked contact; nothing is sent unless it matches.
    ///
    /// # Errors
    /// [`AccountRefusal::NoSuchMethod`] when `method` names no current method of
    /// the account; [`SendRefusal::ContactNotConfirmed`](crate::SendRefusal::ContactNotConfirmed); otherwise as for
    /// [`OneTimeCodes::send`](crate::service::OneTimeCodes::send).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.sign_in_send_code", skip_all, fields(account = account.0.as_str(), method = claimed_kind(method.as_ref()))))]
    pub async fn sign_in_send_code(
        &self,
        account: &AccountId,
        method: &(impl AsRef<MethodId> + ?Sized),
        confirmation: Option<&str>,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        let (kind, to, failures, standing) = self.contact_of(account, method.as_ref()).await?;
        let channel = match kind {
            MethodKind::Sms => Channel::Sms,
            MethodKind::Voice => Channel::Voice,
            MethodKind::Email => Channel::Email,
            _ => {
                return Err(Misuse::WrongMethod {
                    call: "sign_in_send_code",
                    expected: "an SMS, voice or email method",
                }
                .into());
            }
        };
        let mut request = IssueRequest::new(to, Purpose::SignIn)
            .account(account.clone())
            .channel(channel);
        request.locale = self.locale;
        request.failures_read = Some(failures);
        // Bound to this record of the account: one made again under the
        // same id does not take it.
        request.incarnation = standing.incarnation;
        // The service's setting decides, whatever a page showed.
        if self.inner.confirm_masked || confirmation.is_some() {
            request = request.confirmation(confirmation.unwrap_or_default());
        }
        if let Some(caller) = caller {
            request = request.caller(caller);
        }
        self.inner.challenges.issue(request).await
    }

    /// Sends a code of the account's again (the "resend" button), after
    /// the cooldown (none after a send that failed transiently): a sign-in
    /// code, or one sent to register, change or verify a contact. It goes
    /// out in the language the code was first sent in, whatever this
    /// handle's ([`with_locale`](Self::with_locale)).
    ///
    /// # Errors
    /// [`CodeRefusal::Unknown`] for another account's challenge;
    /// [`CodeRefusal::DestinationMismatch`] for a sign-in code whose contact
    /// the account no longer has; otherwise as for
    /// [`OneTimeCodes::resend`](crate::service::OneTimeCodes::resend).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.resend", skip_all, fields(account = account.0.as_str(), challenge = challenge.to_string())))]
    pub async fn resend(
        &self,
        account: &AccountId,
        challenge: &ChallengeId,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        self.own_challenge(account, challenge).await?;
        self.inner.challenges.resend(challenge, caller).await
    }

    /// "Use another option" for a code of the account's: the next channel
    /// of the plan (SMS → voice call), in the language the code was first
    /// sent in. To use another contact at sign-in, send a code for another
    /// [`Method`] instead.
    ///
    /// # Errors
    /// As for [`resend`](Self::resend), plus
    /// [`SendRefusal::NoMoreOptions`](crate::SendRefusal::NoMoreOptions).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.another_option", skip_all, fields(account = account.0.as_str(), challenge = challenge.to_string())))]
    pub async fn another_option(
        &self,
        account: &AccountId,
        challenge: &ChallengeId,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        self.own_challenge(account, challenge).await?;
        self.inner
            .challenges
            .another_option(challenge, caller)
            .await
    }

    /// Refuses a challenge that is not the account's, as if unknown.
    /// A sign-in code is resent only to a contact the account still has
    /// (a code for a number changed since is dead anyway).
    pub(super) async fn own_challenge(
        &self,
        account: &AccountId,
        challenge: &ChallengeId,
    ) -> Result<(), Error> {
        let record = self.inner.challenges.load(challenge).await?;
        if record.account.as_ref() != Some(account) {
            return Err(Refusal::Code(CodeRefusal::Unknown).into());
        }
        if record.purpose == Purpose::SignIn {
            let (_, standing) = self.still_contact(account, &record.destination).await?;
            if !standing.owns_challenge(&record) {
                return Err(Refusal::Code(CodeRefusal::Unknown).into());
            }
        }
        Ok(())
    }

    /// Sends a one-time sign-in link (au ID): the user opens it on the
    /// phone, sees `device` (the device asking to sign in) and approves or
    /// denies; the waiting sign-in polls with
    /// [`sign_in_poll_link`](Self::sign_in_poll_link). `confirmation` is
    /// the masked contact as typed, when the method requires it.
    ///
    /// # Errors
    /// As for [`sign_in_send_code`](Self::sign_in_send_code), and
    /// [`Error::Misuse`] when links are not configured.
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.sign_in_send_link", skip_all, fields(account = account.0.as_str(), method = claimed_kind(method.as_ref()))))]
    pub async fn sign_in_send_link(
        &self,
        account: &AccountId,
        method: &(impl AsRef<MethodId> + ?Sized),
        device: &str,
        confirmation: Option<&str>,
        caller: Option<&str>,
    ) -> Result<LinkTicket, Error> {
        let (kind, to, _, standing) = self.contact_of(account, method.as_ref()).await?;
        if kind != MethodKind::Link {
            return Err(Misuse::WrongMethod {
                call: "sign_in_send_link",
                expected: "a link method",
            }
            .into());
        }
        // The service's setting decides, whatever a page showed.
        if self.inner.confirm_masked || confirmation.is_some() {
            self.inner
                .challenges
                .confirm_contact(&to, confirmation.unwrap_or_default(), Some(account))
                .await?;
        }
        let mut request = LinkRequest::new(to, Purpose::SignIn, device).account(account.clone());
        request.locale = self.locale;
        request.incarnation = standing.incarnation;
        if let Some(caller) = caller {
            request = request.caller(caller);
        }
        self.inner.challenges.issue_link(request).await
    }

    /// What the phone shows when the link is opened (does not consume it).
    ///
    /// # Errors
    /// a wrong token is [`CodeRefusal::Unknown`]; an expired link [`CodeRefusal::Expired`]; one already decided [`CodeRefusal::AlreadyUsed`] or [`CodeRefusal::Denied`]; [`Error::Store`].
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(name = "ninsho.open_link", skip_all)
    )]
    pub async fn open_link(&self, token: &str) -> Result<LinkView, Error> {
        self.inner.challenges.open_link(token).await
    }

    /// The user approves the sign-in on the phone.
    ///
    /// # Errors
    /// a wrong token is [`CodeRefusal::Unknown`]; an expired link [`CodeRefusal::Expired`]; one already decided [`CodeRefusal::AlreadyUsed`] or [`CodeRefusal::Denied`]; [`Error::Store`].
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(name = "ninsho.approve_link", skip_all)
    )]
    pub async fn approve_link(&self, token: &str) -> Result<(), Error> {
        self.inner.challenges.approve_link(token).await
    }

    /// The user did not try to sign in: deny.
    ///
    /// # Errors
    /// a wrong token is [`CodeRefusal::Unknown`]; an expired link [`CodeRefusal::Expired`]; one already decided [`CodeRefusal::AlreadyUsed`] or [`CodeRefusal::Denied`]; [`Error::Store`].
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(name = "ninsho.deny_link", skip_all)
    )]
    pub async fn deny_link(&self, token: &str) -> Result<(), Error> {
        self.inner.challenges.deny_link(token).await
    }

    /// The waiting sign-in polls: `None` while the user has not decided;
    /// the sign-in once approved (collected by exactly one poll).
    ///
    /// # Errors
    /// [`CodeRefusal::Denied`], [`CodeRefusal::Expired`], [`CodeRefusal::AlreadyUsed`],
    /// [`CodeRefusal::Unknown`] (also for another account's link).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.sign_in_poll_link", skip_all, fields(account = account.0.as_str(), challenge = challenge.to_string(), method = "link")))]
    pub async fn sign_in_poll_link(
        &self,
        account: &AccountId,
        challenge: &ChallengeId,
        trust_device: Option<&str>,
        attempt: Option<&SignInAttempt>,
    ) -> Result<Option<SignedIn>, Error> {
        let record = self.inner.challenges.load(challenge).await?;
        if record.account.as_ref() != Some(account) {
            return Err(Refusal::Code(CodeRefusal::Unknown).into());
        }
        // A link in flight to a contact the account has since changed or
        // removed is dead, like a code (see `sign_in_complete`).
        let (_, standing) = self.still_contact(account, &record.destination).await?;
        if !standing.owns_challenge(&record) {
            return Err(Refusal::Code(CodeRefusal::Unknown).into());
        }
        let attempt = attempt.map(|a| Attempt {
            id: a.as_str(),
            epoch: standing.epoch,
        });
        match self
            .inner
            .challenges
            .poll_link_from(challenge, &Purpose::SignIn, attempt)
            .await?
        {
            LinkStatus::Pending { .. } => Ok(None),
            LinkStatus::Approved(_) => self
                .signed_in(account, MethodKind::Link, None, trust_device, standing)
                .await
                .map(Some),
        }
    }

    /// Completes the second step with any method, optionally trusting the
    /// device ("don't ask again on this device", with its label).
    ///
    /// A recovery code is a security event: every trusted device of the
    /// account is revoked (the security epoch moves on) before this
    /// device is trusted, and the answer says how many codes are left.
    ///
    /// # Errors
    /// The refusal of the method ([`CodeRefusal::WrongCode`],
    /// [`CodeRefusal::WrongRecoveryCode`], [`CodeRefusal::AlreadyUsed`] for a
    /// replayed authenticator code, [`AccountRefusal::Locked`], …);
    /// [`CodeRefusal::Unknown`] for another account's challenge;
    /// [`Error::Store`]; [`Error::RetiredKey`] when the code, recovery code
    /// or authenticator seed was hashed or sealed with a key this
    /// deployment no longer holds (not counted as a failure; see the
    /// [key rotation guide](crate::guide::key_rotation)).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.sign_in_complete", skip_all, fields(account = account.0.as_str(), method = proof_kind(&proof))))]
    pub async fn sign_in_complete(
        &self,
        account: &AccountId,
        proof: Proof<'_>,
        trust_device: Option<&str>,
        attempt: Option<&SignInAttempt>,
    ) -> Result<SignedIn, Error> {
        let attempt = attempt.map(SignInAttempt::as_str);
        match proof {
            Proof::Code { challenge, code } => {
                // Decided on the account's record as read; when it changes
                // before the commit lands (a replaced number, "sign out
                // everywhere", the account's deletion), the commit is a
                // conflict and the sign-in is decided again on the record
                // as it now is.
                for _ in 0..RECORD_ROUNDS {
                    match self
                        .code_sign_in(account, challenge, code, trust_device, attempt)
                        .await
                    {
                        Err(Error::Store(e)) if e.is_conflict() => {}
                        answer => return answer,
                    }
                }
                Err(StoreError::conflict().into())
            }
            Proof::Authenticator { code } => {
                // The device is trusted in the write that accepts the code.
                let prepared = self.prepare_device(account, trust_device, Standing::of(None));
                let device = prepared.as_ref().and_then(|p| p.as_ref().map(|(_, r)| r));
                let (standing, trusted) = self
                    .inner
                    .apps
                    .check(account, code, attempt, device)
                    .await?;
                self.settle_device(
                    account,
                    MethodKind::Authenticator,
                    None,
                    trust_device,
                    prepared,
                    trusted,
                    standing,
                )
                .await
            }
            Proof::RecoveryCode { code } => {
                // Spending the code moves the epoch on in the same write:
                // every device trusted before dies, and the one trusted now
                // is written at the new epoch, in that write too.
                let prepared = self.prepare_device(account, trust_device, Standing::of(None));
                let device = prepared.as_ref().and_then(|p| p.as_ref().map(|(_, r)| r));
                let (redeemed, standing, trusted) = self
                    .inner
                    .recovery
                    .redeem_step(account, code, attempt, device)
                    .await?;
                self.settle_device(
                    account,
                    MethodKind::RecoveryCode,
                    Some(redeemed.remaining),
                    trust_device,
                    prepared,
                    trusted,
                    standing,
                )
                .await
            }
        }
    }

    /// The device to trust with a sign-in's write, when `trust_device`
    /// names it: `Some(None)` when it can't be made (no randomness; the
    /// sign-in still stands, untrusted), at `standing` (a step that reads
    /// the record in its own write sets the device's when it writes it).
    fn prepare_device(
        &self,
        account: &AccountId,
        trust_device: Option<&str>,
        standing: Standing,
    ) -> Option<Option<(DeviceToken, DeviceRecord)>> {
        trust_device.map(|label| self.inner.devices.prepare(account, label, standing).ok())
    }

    /// Finishes a sign-in whose step was offered a `prepared` device to
    /// trust in its own write: reported when that write took it
    /// (`trusted`), a failed trust when it could not even be prepared, and
    /// otherwise (not asked, or an attempt's retry, which writes nothing)
    /// trusted now, in a call of its own.
    #[allow(clippy::too_many_arguments)]
    async fn settle_device(
        &self,
        account: &AccountId,
        kind: MethodKind,
        left: Option<usize>,
        trust_device: Option<&str>,
        prepared: Option<Option<(DeviceToken, DeviceRecord)>>,
        trusted: bool,
        standing: Standing,
    ) -> Result<SignedIn, Error> {
        match prepared {
            Some(Some((token, mut record))) if trusted => {
                record.epoch = standing.epoch;
                record.incarnation = standing.incarnation;
                let device = self.inner.devices.trusted(token, &record);
                Ok(self.finish(account, kind, left, Some(device), false, standing))
            }
            Some(None) => {
                self.inner.ports.emit(Event::DeviceTrustFailed {
                    account: account.clone(),
                });
                Ok(self.finish(account, kind, left, None, true, standing))
            }
            _ => {
                self.signed_in(account, kind, left, trust_device, standing)
                    .await
            }
        }
    }

    /// One try at a sign-in with a sent code: the challenge, the account's
    /// record and its failure run in one read; the guess settled (and the
    /// device trusted) in one write, which lands only while the record is
    /// still as read. A conflict [`Error::Store`] when it changed.
    /// The challenge `challenge` with the account's record and failure run,
    /// in one read; refused as unknown unless the challenge is there and is
    /// the account's. (`loaded.challenge` is taken out: it is the first
    /// part of the answer.)
    pub(super) async fn load_own_challenge(
        &self,
        account: &AccountId,
        challenge: &ChallengeId,
    ) -> Result<(ChallengeRecord, Loaded), Error> {
        let mut loaded = self
            .store()
            .load(&Load::account(account).with_challenge(challenge))
            .await?;
        let Some(record) = loaded.challenge.take() else {
            return Err(self.inner.challenges.unknown(*challenge));
        };
        // Another account's, or issued for an earlier record of this
        // account id (deleted since): unknown to this one.
        if record.account.as_ref() != Some(account)
            || !Standing::of(loaded.record.as_ref()).owns_challenge(&record)
        {
            return Err(Refusal::Code(CodeRefusal::Unknown).into());
        }
        Ok((record, loaded))
    }

    async fn code_sign_in(
        &self,
        account: &AccountId,
        challenge: &ChallengeId,
        code: &str,
        trust_device: Option<&str>,
        attempt: Option<&str>,
    ) -> Result<SignedIn, Error> {
        // A proof presented again by the attempt that spent it counts only
        // at the epoch it was spent at.
        let at = |epoch| attempt.map(|id| Attempt { id, epoch });
        let (record, loaded) = self.load_own_challenge(account, challenge).await?;
        // The contact must still be the account's: a code in flight
        // to a number changed since is dead.
        let (to, standing) = self.contact_still_in(loaded.record.as_ref(), &record.destination)?;
        // A device token needs randomness; without it the sign-in
        // still stands, untrusted (as when the store can't keep it).
        let prepared = self.prepare_device(account, trust_device, standing);
        let device = prepared.as_ref().and_then(|p| p.as_ref().map(|(_, r)| r));
        let code = Code {
            input: code,
            purpose: &Purpose::SignIn,
            destination: &to,
            attempt: at(standing.epoch),
        };
        let (verified, trusted) = self
            .inner
            .challenges
            .verify_step(
                account,
                (record, loaded.failures),
                code,
                device,
                Some(loaded.record.as_ref().map(|r| r.version)),
            )
            .await?;
        let kind = match verified.channel {
            Channel::Voice => MethodKind::Voice,
            Channel::Email => MethodKind::Email,
            _ => MethodKind::Sms,
        };
        self.settle_device(
            account,
            kind,
            None,
            trust_device,
            prepared,
            trusted,
            standing,
        )
        .await
    }

    async fn signed_in(
        &self,
        account: &AccountId,
        method: MethodKind,
        recovery_codes_left: Option<usize>,
        trust_device: Option<&str>,
        standing: Standing,
    ) -> Result<SignedIn, Error> {
        // The second factor is passed and its secret spent: from here on
        // nothing may turn the sign-in into an error. Trusting the device
        // is optional and reported.
        let (device, trust_failed) = match trust_device {
            Some(label) => match self.inner.devices.trust_at(account, label, standing).await {
                Ok(trusted) => (Some(trusted), false),
                Err(_) => {
                    self.inner.ports.emit(Event::DeviceTrustFailed {
                        account: account.clone(),
                    });
                    (None, true)
                }
            },
            None => (None, false),
        };
        Ok(self.finish(
            account,
            method,
            recovery_codes_left,
            device,
            trust_failed,
            standing,
        ))
    }

    /// The answer of a passed second step.
    fn finish(
        &self,
        account: &AccountId,
        method: MethodKind,
        recovery_codes_left: Option<usize>,
        device: Option<(DeviceToken, DeviceInfo)>,
        trust_failed: bool,
        standing: Standing,
    ) -> SignedIn {
        // The journey span of a code sign-in learns its channel here.
        #[cfg(feature = "tracing")]
        tracing::Span::current().record("method", method.as_str());
        SignedIn {
            method,
            device,
            trust_failed,
            recovery_codes_left,
            step_up: self.step_up(account, method, standing),
        }
    }

    /// The account's trusted devices.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.devices", skip_all, fields(account = account.0.as_str())))]
    pub async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceInfo>, Error> {
        self.inner.devices.list(account).await
    }

    /// Revokes one trusted device (au ID's device list).
    ///
    /// # Errors
    /// [`AccountRefusal::NotFound`] when the account has no such device; [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.revoke_device", skip_all, fields(account = account.0.as_str(), device = id.to_string())))]
    pub async fn revoke_device(&self, account: &AccountId, id: &DeviceId) -> Result<(), Error> {
        self.inner.devices.revoke(account, id).await
    }

    /// Whether a device token is valid for the account (without starting a
    /// sign-in). A valid token whose record was hashed with a previous key
    /// moves to the current key.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.check_device", skip_all, fields(account = account.0.as_str())))]
    pub async fn check_device(
        &self,
        account: &AccountId,
        token: &str,
    ) -> Result<DeviceCheck, Error> {
        self.inner.devices.check(account, token).await
    }
}
