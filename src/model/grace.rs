//! The grace-period machine's stored state; its transitions are
//! [`crate::grace`]'s.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Destination, DestinationKind};

/// One account's grace-period state: its contacts, its phase and the
/// instants the deadline is counted from. Plain data; store it with the
/// account. Its transitions, and the table of them, are in [`crate::grace`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GraceState {
    pub(crate) contacts: Vec<GraceContact>,
    pub(crate) phase: Phase,
    pub(crate) created_at: Option<OffsetDateTime>,
    pub(crate) enrolled_at: Option<OffsetDateTime>,
}

/// Where an account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// The policy doesn't apply to the account yet (not enrolled).
    #[default]
    NotStarted,
    /// The requirement is met.
    Compliant,
    /// The requirement is not met; sign-in is allowed, with a reminder,
    /// until `deadline` (exclusive).
    InGrace {
        /// The first instant at which sign-in is blocked.
        deadline: OffsetDateTime,
    },
    /// The requirement is not met and the deadline has passed: sign-in is
    /// blocked until a contact is verified.
    Blocked {
        /// The deadline that passed.
        since: OffsetDateTime,
    },
}

impl Phase {
    /// The deadline of the grace period, in grace or blocked.
    #[must_use]
    pub fn deadline(self) -> Option<OffsetDateTime> {
        match self {
            Self::InGrace { deadline } | Self::Blocked { since: deadline } => Some(deadline),
            Self::NotStarted | Self::Compliant => None,
        }
    }
}

/// A contact as the grace machine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraceContact {
    pub(crate) key: ContactKey,
    pub(crate) kind: DestinationKind,
    pub(crate) verified: bool,
}

impl GraceContact {
    /// The contact's key.
    #[must_use]
    pub fn key(&self) -> &ContactKey {
        &self.key
    }

    /// Phone or email.
    #[must_use]
    pub fn kind(&self) -> DestinationKind {
        self.kind
    }

    /// Whether it is verified.
    #[must_use]
    pub fn verified(&self) -> bool {
        self.verified
    }
}

/// The stable identity of a registered contact, e.g. its normalised address
/// ([`Destination::limit_key`]) or the host's own contact id.
///
/// It may be personal data, so `Debug` prints `ContactKey(..)` only.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactKey(pub String);

impl ContactKey {
    /// A key from any string the host uses to identify the contact.
    #[must_use]
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&Destination> for ContactKey {
    /// The destination's [`limit_key`](Destination::limit_key): the E.164
    /// number, or the wholly lower-cased email address.
    fn from(destination: &Destination) -> Self {
        Self(destination.limit_key())
    }
}

impl fmt::Debug for ContactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContactKey(..)")
    }
}
