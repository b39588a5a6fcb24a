//! The crate's error type.
//!
//! Errors fall in two families, and [`Error::is_infrastructure`] tells them
//! apart:
//!
//! - **the caller's input or configuration is wrong** (a malformed key URI,
//!   a short key): fix the input; retrying the same call fails the same way;
//! - **infrastructure failed** (the random source, the store, the
//!   gateway, or a stored record made with a key this deployment no longer
//!   holds): nothing was changed or issued; retry later, or once an
//!   operator has fixed the cause.
//!
//! A code that is simply wrong is not an error of either kind: verification
//! returns a typed [`Rejection`](crate::otp::Rejection) for that. No error
//! carries secret material, so every error is safe to log.

use std::fmt;

use time::OffsetDateTime;

use crate::contact::ContactError;
use crate::gateway::{DeliveryError, DeliveryErrorKind, TemplateError};
use crate::hash::{KeyError, KeyId};
use crate::limits::LimitKind;
use crate::model::{ChallengeId, Channel, Purpose};
use crate::otp::OtpError;
use crate::random::RandomError;
use crate::store::StoreError;

/// Why a request from the user was refused: the user's side of things, to
/// show in the UI. Never an infrastructure failure, and never success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The code is wrong; `attempts_left` more tries on this challenge.
    #[error("the code is wrong; {attempts_left} attempts left")]
    WrongCode {
        /// Tries left before the challenge dies.
        attempts_left: u32,
    },
    /// Every code of the challenge (or the link) has expired: send a new one.
    #[error("the code has expired; ask for a new one")]
    Expired,
    /// Too many wrong codes: the challenge is dead; start a new one.
    #[error("too many wrong codes; ask for a new one")]
    TooManyAttempts,
    /// No such challenge (or the token is wrong).
    #[error("no such code or link; ask for a new one")]
    Unknown,
    /// The code or link was already used.
    #[error("the code or link was already used")]
    AlreadyUsed,
    /// The challenge was issued for another purpose.
    #[error("the code was issued for something else")]
    PurposeMismatch,
    /// The challenge was issued for another destination.
    #[error("the code was sent to another destination")]
    DestinationMismatch,
    /// The account failed too often: wait until `until`, or (when `None`)
    /// until an operator clears the account's failures.
    #[error("too many failed attempts; try again later")]
    Locked {
        /// When trying is allowed again; `None` means only after a reset.
        until: Option<OffsetDateTime>,
    },
    /// A send limit was reached; retry at `retry_at`.
    #[error("too many codes requested; try again later")]
    RateLimited {
        /// The limit that refused.
        limit: LimitKind,
        /// When a retry can succeed.
        retry_at: OffsetDateTime,
    },
    /// The user's confirmation of the masked contact (the last digits the
    /// [`MaskPolicy`](crate::contact::MaskPolicy) asks for, or the whole
    /// email address) does not match: nothing was sent.
    #[error("that does not match the contact on file")]
    ContactNotConfirmed,
    /// The user denied the sign-in from the one-time link.
    #[error("the sign-in was denied")]
    Denied,
    /// The recovery code is not one of the account's codes.
    #[error("that is not one of your recovery codes")]
    WrongRecoveryCode,
    /// No further delivery channel is left for "use another option".
    #[error("no other way to send the code is available")]
    NoMoreOptions,
    /// The contact is verified on another account; a phone number belongs to
    /// at most one account.
    #[error("that contact is already registered to another account")]
    ContactInUse,
    /// The contact is already on this account (and verified).
    #[error("that contact is already registered to this account")]
    ContactAlreadyAdded,
    /// The contact is not on this account.
    #[error("that contact is not registered to this account")]
    NotAContact,
    /// The account has as many contacts of this kind as the policy allows:
    /// change one instead.
    #[error("no more contacts of this kind can be added; change one instead")]
    TooManyContacts,
    /// Two-step sign-in sends codes to this contact: it can be changed to a
    /// newly verified one, but not removed while two-step sign-in is on.
    #[error("this contact is used for two-step sign-in; change it instead of removing it")]
    ContactRequired,
    /// A sensitive action needs a fresh second factor: pass the second step
    /// again and retry with its proof.
    #[error("confirm it's you with a second factor first")]
    StepUpRequired,
    /// Two-step sign-in is already on.
    #[error("two-step sign-in is already on")]
    TwoFactorAlreadyOn,
    /// Two-step sign-in is off, and the action needs it on.
    #[error("two-step sign-in is off")]
    TwoFactorOff,
    /// The sign-in method picked is not one the account can use now (its
    /// id names another account's method, or a contact since removed):
    /// list the methods again and pick one.
    #[error("that sign-in method is not available; choose another")]
    NoSuchMethod,
    /// No second factor to use (a verified phone, an authenticator app):
    /// add one first, or keep the last one.
    #[error("add a verified phone number or an authenticator app first")]
    NoSecondFactor,
}

impl Refusal {
    /// A stable identifier for the refusal, in `snake_case`: for a UI's
    /// translations, an API's error body, metrics. Unlike the message, it
    /// never changes between releases, and no two refusals share one.
    ///
    /// ```
    /// use ninsho::Refusal;
    /// assert_eq!(Refusal::WrongCode { attempts_left: 2 }.code(), "wrong_code");
    /// assert_eq!(Refusal::StepUpRequired.code(), "step_up_required");
    /// ```
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongCode { .. } => "wrong_code",
            Self::Expired => "expired",
            Self::TooManyAttempts => "too_many_attempts",
            Self::Unknown => "unknown",
            Self::AlreadyUsed => "already_used",
            Self::PurposeMismatch => "purpose_mismatch",
            Self::DestinationMismatch => "destination_mismatch",
            Self::Locked { .. } => "locked",
            Self::RateLimited { .. } => "rate_limited",
            Self::ContactNotConfirmed => "contact_not_confirmed",
            Self::Denied => "denied",
            Self::WrongRecoveryCode => "wrong_recovery_code",
            Self::NoMoreOptions => "no_more_options",
            Self::ContactInUse => "contact_in_use",
            Self::ContactAlreadyAdded => "contact_already_added",
            Self::NotAContact => "not_a_contact",
            Self::TooManyContacts => "too_many_contacts",
            Self::ContactRequired => "contact_required",
            Self::StepUpRequired => "step_up_required",
            Self::TwoFactorAlreadyOn => "two_factor_already_on",
            Self::TwoFactorOff => "two_factor_off",
            Self::NoSecondFactor => "no_second_factor",
            Self::NoSuchMethod => "no_such_method",
        }
    }
}

/// The kind of stored secret a [`RetiredKey`] error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretKind {
    /// A one-time code sent by SMS, voice or email (hashing key).
    OneTimeCode,
    /// A one-time sign-in link (hashing key).
    Link,
    /// A recovery code (hashing key).
    RecoveryCode,
    /// A trusted-device token (hashing key).
    TrustedDevice,
    /// An authenticator app's seed (sealing key).
    Authenticator,
}

impl SecretKind {
    /// Whether this secret is stored under a hashing or a sealing key.
    #[must_use]
    pub fn key_kind(self) -> KeyKind {
        match self {
            Self::Authenticator => KeyKind::Sealing,
            _ => KeyKind::Hashing,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::OneTimeCode => "a one-time code",
            Self::Link => "a one-time link",
            Self::RecoveryCode => "a recovery code",
            Self::TrustedDevice => "a trusted-device token",
            Self::Authenticator => "an authenticator seed",
        }
    }

    /// What the user can do when the key can't be brought back.
    fn remedy(self) -> &'static str {
        match self {
            Self::OneTimeCode => "have the user ask for a new code",
            Self::Link => "have the user ask for a new link",
            Self::RecoveryCode => {
                "have the user sign in another way and regenerate their recovery codes"
            }
            Self::TrustedDevice => "have the user pass a second factor and trust the device again",
            Self::Authenticator => "have the user set up the authenticator app again",
        }
    }
}

/// The two sets of keys a deployment holds. Their [`KeyId`]s are separate
/// namespaces: hashing key 1 and sealing key 1 are unrelated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// A hashing key of the [`KeyedHasher`](crate::hash::KeyedHasher).
    Hashing,
    /// A sealing key of the [`Sealer`](crate::seal::Sealer).
    Sealing,
}

/// A stored secret can't be checked: it was hashed or sealed with a key
/// this deployment no longer holds.
///
/// The user did nothing wrong, so this is never a [`Refusal`]: the guess
/// that met it is not counted against the account, and no failure is
/// recorded. The key was retired too early (or is not yet configured on
/// this instance, during a rolling deploy), or the record comes from
/// another deployment. Configure the key again as a previous key
/// ([`KeyedHasher::with_previous`](crate::hash::KeyedHasher::with_previous),
/// [`AeadSealer::with_previous`](crate::seal::AeadSealer::with_previous)),
/// or have the user replace the secret; the
/// [key rotation guide](crate::guide::key_rotation) says how to avoid it
/// and what each user can do. It carries the key's id, never key material or the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RetiredKey {
    /// What kind of secret the record holds.
    pub secret: SecretKind,
    /// The id of the missing key, in the namespace of
    /// [`secret.key_kind()`](SecretKind::key_kind).
    pub key_id: KeyId,
}

impl RetiredKey {
    /// The error for a record of `secret` made with key `key_id`.
    #[must_use]
    pub fn new(secret: SecretKind, key_id: KeyId) -> Self {
        Self { secret, key_id }
    }

    /// Whether the missing key is a hashing or a sealing key.
    #[must_use]
    pub fn key_kind(&self) -> KeyKind {
        self.secret.key_kind()
    }
}

impl std::error::Error for RetiredKey {}

impl fmt::Display for RetiredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (done, kind) = match self.key_kind() {
            KeyKind::Hashing => ("hashed", "hashing"),
            KeyKind::Sealing => ("sealed", "sealing"),
        };
        write!(
            f,
            "{} was {done} with {kind} key {}, which this deployment no longer holds: \
             configure that key again as a previous key, or {}",
            self.secret.noun(),
            self.key_id,
            self.secret.remedy()
        )
    }
}

/// A call the host's code should not make: a mistake in the calling code or
/// its configuration, never the user's doing. The same call fails the same
/// way every time; fix the code (the message says what to change) rather
/// than retry or show it to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// The builder was not given a part it needs.
    #[error("the builder needs {0}")]
    MissingPart(&'static str),
    /// The step-up window is zero or negative.
    #[error("the step-up window must be positive")]
    StepUpWindow,
    /// The phone channel plan is empty or lists email.
    #[error("the phone channel plan must list SMS and/or voice, and nothing else")]
    PhoneChannels,
    /// A code lifetime, attempt count or send count is zero.
    #[error("code lifetimes, attempts and sends must be positive")]
    CodePolicy,
    /// The channel asked for is not one the destination's plan uses (SMS
    /// or voice for a phone, email for an address).
    #[error("{channel} is not in the delivery plan for this destination")]
    ChannelNotInPlan {
        /// The channel asked for.
        channel: Channel,
    },
    /// A message template failed to render.
    #[error("a message template failed to render: {0}")]
    Template(#[from] TemplateError),
    /// A one-time link was asked for, and the builder was given no link base
    /// URL to put the token under.
    #[error("one-time links need a link base URL: set link_base on the builder")]
    NoLinkBase,
    /// A combined verification was started with no contact.
    #[error("a verification needs at least one contact")]
    NoMembers,
    /// A combined verification was given the same contact twice.
    #[error("the same contact is given twice")]
    DuplicateMember,
    /// A combined verification was collected before every member was
    /// verified.
    #[error("the verification is not complete: verify every member first")]
    NotComplete,
    /// A contact was to be changed into one of another kind (a phone into
    /// an email address).
    #[error("a contact can only be changed to one of the same kind")]
    KindChange,
    /// A code was asked for by a sign-in method that sends nothing (the
    /// authenticator app, recovery codes).
    #[error("this method sends nothing: pass its code to sign_in_complete")]
    MethodSendsNothing,
    /// A sign-in method of the wrong kind was passed.
    #[error("{call} takes {expected}")]
    WrongMethod {
        /// The call that was made.
        call: &'static str,
        /// What it takes.
        expected: &'static str,
    },
    /// A standalone one-time code was asked for with a purpose that only
    /// [`TwoFactor`](crate::service::TwoFactor)'s own journeys may issue
    /// (sign-in, contact change, recovery): use those journeys, or a
    /// purpose of your own.
    #[error("codes for {0:?} are issued by TwoFactor's own journeys only")]
    ReservedPurpose(Purpose),
}

/// Everything that can go wrong in ninsho.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An authenticator's parameters or key URI are invalid.
    #[error(transparent)]
    Otp(#[from] OtpError),
    /// A hashing key is invalid or missing.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The random source failed; nothing was issued.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The user's request was refused (wrong code, expired, limits, …).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A phone number or email address is malformed.
    #[error(transparent)]
    Contact(#[from] ContactError),
    /// The store failed; nothing was verified or consumed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gateway could not deliver a message on `channel` (after any
    /// fallback channels were tried).
    #[error("delivery by {channel} failed")]
    Delivery {
        /// The last channel tried.
        channel: Channel,
        /// The challenge the message belonged to: it exists, and the user
        /// can ask to resend once the problem clears.
        challenge: Option<ChallengeId>,
        /// The gateway's error.
        #[source]
        source: DeliveryError,
    },
    /// The calling code or its configuration is wrong (see [`Misuse`]).
    #[error(transparent)]
    Misuse(#[from] Misuse),
    /// A stored secret was hashed or sealed with a key this deployment no
    /// longer holds, so it could not be checked. Not the user's failure:
    /// nothing was counted against the account and nothing was consumed.
    /// An operator must configure the key again as a previous key, or the
    /// user must replace the secret (see [`RetiredKey`]).
    #[error(transparent)]
    RetiredKey(#[from] RetiredKey),
}

impl Error {
    /// Whether a compare-and-set lost to a concurrent write (the caller
    /// reads again and decides again).
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_conflict())
    }

    /// Whether this is an infrastructure failure (worth retrying later)
    /// rather than bad input or configuration.
    ///
    /// [`Error::RetiredKey`] counts as infrastructure: the user did nothing
    /// wrong, and a retry succeeds once the key is configured again (at
    /// once, during a rolling deploy, on an instance that already holds
    /// it).
    #[must_use]
    pub fn is_infrastructure(&self) -> bool {
        match self {
            Self::Random(_) | Self::Store(_) | Self::RetiredKey(_) => true,
            Self::Delivery { source, .. } => matches!(
                source.kind(),
                DeliveryErrorKind::Transient | DeliveryErrorKind::RateLimited
            ),
            _ => false,
        }
    }

    /// The refusal, when this is one.
    #[must_use]
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Refused(r) => Some(*r),
            _ => None,
        }
    }

    /// The refused contact's reason, when this is one (its
    /// [`code`](ContactError::code) is stable, for the UI).
    #[must_use]
    pub fn contact_error(&self) -> Option<ContactError> {
        match self {
            Self::Contact(e) => Some(*e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert!(!Error::from(OtpError::InvalidPeriod).is_infrastructure());
        assert!(Error::from(RandomError::new(std::io::Error::other("x"))).is_infrastructure());
        let e = Error::from(RandomError::new(std::io::Error::other("x")));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn retired_key_says_what_to_do() {
        let e = Error::from(RetiredKey::new(SecretKind::RecoveryCode, KeyId(3)));
        assert!(e.is_infrastructure());
        assert_eq!(e.refusal(), None);
        let text = e.to_string();
        assert!(text.contains("hashing key 3"), "{text}");
        assert!(text.contains("previous key"), "{text}");
        assert!(text.contains("regenerate"), "{text}");
        let seed = RetiredKey::new(SecretKind::Authenticator, KeyId(4));
        assert_eq!(seed.key_kind(), KeyKind::Sealing);
        assert!(seed.to_string().contains("sealing key 4"), "{seed}");
    }

    /// Every refusal, one of each variant (the match in `code` keeps the
    /// list honest: a new variant without a code does not compile).
    fn every_refusal() -> Vec<Refusal> {
        let at = OffsetDateTime::UNIX_EPOCH;
        vec![
            Refusal::WrongCode { attempts_left: 1 },
            Refusal::Expired,
            Refusal::TooManyAttempts,
            Refusal::Unknown,
            Refusal::AlreadyUsed,
            Refusal::PurposeMismatch,
            Refusal::DestinationMismatch,
            Refusal::Locked { until: Some(at) },
            Refusal::RateLimited {
                limit: LimitKind::Destination,
                retry_at: at,
            },
            Refusal::ContactNotConfirmed,
            Refusal::Denied,
            Refusal::WrongRecoveryCode,
            Refusal::NoMoreOptions,
            Refusal::ContactInUse,
            Refusal::ContactAlreadyAdded,
            Refusal::NotAContact,
            Refusal::TooManyContacts,
            Refusal::ContactRequired,
            Refusal::StepUpRequired,
            Refusal::TwoFactorAlreadyOn,
            Refusal::TwoFactorOff,
            Refusal::NoSecondFactor,
            Refusal::NoSuchMethod,
        ]
    }

    #[test]
    fn every_refusal_has_its_own_stable_snake_case_code() {
        let all = every_refusal();
        let mut codes: Vec<&str> = all.iter().map(Refusal::code).collect();
        for code in &codes {
            assert!(
                !code.is_empty()
                    && code.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    && !code.starts_with('_')
                    && !code.ends_with('_'),
                "{code}"
            );
        }
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), before, "two refusals share a code");
        assert_eq!(before, 23, "a refusal is missing from the list");
    }
}
