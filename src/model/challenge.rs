//! A one-time code or link sent to a destination: its stored record.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AccountId, ChallengeId, Channel, Destination, Locale, Purpose};
use crate::hash::KeyedHash;

/// Where a challenge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChallengeState {
    /// Waiting for the code (or for the link to be approved).
    Pending,
    /// A one-time link was approved; the waiting sign-in has not yet
    /// collected the approval.
    Approved,
    /// Done: the code was verified or the approval collected. Single use.
    Consumed,
    /// A one-time link was denied by the user.
    Denied,
    /// Too many wrong attempts; the challenge is dead.
    Exhausted,
}

/// One delivery of a code: each resend adds one, with its own code and
/// expiry, so a late SMS still works until its own code expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendRecord {
    /// The channel the code went out on.
    pub channel: Channel,
    /// When it was handed to the gateway.
    pub sent_at: OffsetDateTime,
    /// When this send's code stops working.
    pub expires_at: OffsetDateTime,
    /// The keyed hash of the code (never the code).
    pub code: KeyedHash,
    /// Whether the gateway failed this send with an error that is not
    /// permanent ([`Transient`](crate::gateway::DeliveryErrorKind::Transient),
    /// [`RateLimited`](crate::gateway::DeliveryErrorKind::RateLimited) or
    /// [`Configuration`](crate::gateway::DeliveryErrorKind::Configuration):
    /// no message is on its way).
    /// The resend cooldown does not count from such a send; the send limits
    /// still count it. `false` in records written before this field existed.
    #[serde(default)]
    pub failed_transiently: bool,
}

/// The one-time-link part of a challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The keyed hash of the link's 256-bit token.
    pub token: KeyedHash,
    /// The host's description of the device asking to sign in, shown to the
    /// user before they approve.
    pub device: String,
}

/// A challenge: a code (or link) sent to a destination for a purpose.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// The challenge's id.
    pub id: ChallengeId,
    /// Bumped by every successful write; the compare-and-set key.
    pub version: u64,
    /// Why it was issued.
    pub purpose: Purpose,
    /// The account it belongs to, if any (none during sign-up).
    pub account: Option<AccountId>,
    /// Where the code goes.
    pub destination: Destination,
    /// The language messages for this challenge are written in.
    pub locale: Locale,
    /// The fallback plan: channels in order of preference.
    pub channels: Vec<Channel>,
    /// Index in `channels` of the channel now in use.
    pub channel_index: usize,
    /// Where it stands.
    pub state: ChallengeState,
    /// Digits per code.
    pub digits: u8,
    /// Wrong codes entered so far, across all sends.
    pub failed_attempts: u32,
    /// Wrong codes allowed before the challenge dies.
    pub max_attempts: u32,
    /// Every delivery, oldest first (empty for links).
    pub sends: Vec<SendRecord>,
    /// Sends of this challenge, the first included (the per-challenge send
    /// limit counts these; a fallback within one send counts once).
    pub delivery_attempts: u32,
    /// The link, for one-time-link challenges.
    pub link: Option<LinkRecord>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When the last code (or the link) stops working. Adapters may drop
    /// the record some time after this (keep it a while so late attempts get
    /// "expired" rather than "unknown").
    pub expires_at: OffsetDateTime,
    /// The keyed hash of the sign-in attempt that consumed it, if the host
    /// passed one: a retry of the same code from that attempt succeeds again
    /// (its reply may have been lost), a replay from any other is refused.
    #[serde(default)]
    pub consumed_by: Option<KeyedHash>,
    /// For a code that changes the account's contacts or factors: the
    /// account's security epoch when it was issued. Once the epoch moves on
    /// ("sign out everywhere", a password change, a factor changed) the
    /// change it would make is refused: it was authorised under the old
    /// epoch.
    #[serde(default)]
    pub epoch: Option<u64>,
    /// For a challenge of an account that had a record when it was issued:
    /// that record's [`incarnation`](super::AccountRecord::incarnation)
    /// (0 otherwise). Once the record is deleted and another made under
    /// the same account id, the challenge is unknown to it.
    #[serde(default)]
    pub incarnation: u64,
}
