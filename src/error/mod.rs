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

use crate::contact::ContactError;
use crate::gateway::{DeliveryError, DeliveryErrorKind, TemplateError};
use crate::hash::{KeyError, KeyId};
use crate::model::{ChallengeId, Channel, Purpose};
use crate::otp::OtpError;
use crate::random::RandomError;
use crate::store::StoreError;

mod refusal;

pub use refusal::{AccountRefusal, CodeRefusal, ContactRefusal, Refusal, SendRefusal};

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
    /// it). So does a gateway's
    /// [`Configuration`](DeliveryErrorKind::Configuration) failure (the
    /// provider refused the gateway's credentials or sender), for the same
    /// reason: the operator must fix it, the user can only wait.
    #[must_use]
    pub fn is_infrastructure(&self) -> bool {
        match self {
            Self::Random(_) | Self::Store(_) | Self::RetiredKey(_) => true,
            Self::Delivery { source, .. } => matches!(
                source.kind(),
                DeliveryErrorKind::Transient
                    | DeliveryErrorKind::RateLimited
                    | DeliveryErrorKind::Configuration
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
}
