//! A trusted device: its stored record.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AccountId, DeviceId};
use crate::hash::KeyedHash;

/// A stored trusted device (never the token).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The account that trusted it.
    pub account: AccountId,
    /// Its id.
    pub id: DeviceId,
    /// Bumped by every write; the compare-and-set key.
    pub version: u64,
    /// Keyed hash of the token's secret, bound to account and id.
    pub token: KeyedHash,
    /// The host's label ("Chrome on Windows").
    pub label: String,
    /// When it was trusted.
    pub created_at: OffsetDateTime,
    /// When it last skipped a second step (written at most hourly).
    pub last_used_at: OffsetDateTime,
    /// When trust ends.
    pub expires_at: OffsetDateTime,
    /// The account's security epoch when it was trusted.
    pub epoch: u64,
    /// When the user revoked it, if they did.
    pub revoked_at: Option<OffsetDateTime>,
    /// The [`incarnation`](super::AccountRecord::incarnation) of the
    /// account's record it was trusted under (0: no record, or one from
    /// before incarnations). A record made again under the same account id
    /// has another, and does not honour it.
    #[serde(default)]
    pub incarnation: u64,
}
