//! Housekeeping: deleting the records whose lifetime has ended.

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// How many records one [`purge`](PurgeStore::purge) deleted, by kind.
///
/// Adapters outside this crate build it from [`Purged::default`] and set
/// the fields:
///
/// ```
/// let mut purged = ninsho::store::Purged::default();
/// purged.challenges = 3;
/// purged.devices = 1;
/// assert_eq!(purged.total(), 4);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Purged {
    /// Challenges (codes, one-time links) whose `expires_at` was before
    /// the cut-off.
    pub challenges: u64,
    /// Combined verifications whose `expires_at` was before the cut-off.
    pub verifications: u64,
    /// Rate-limit windows that had ended at or before the cut-off.
    pub counters: u64,
    /// Trusted devices (revoked ones included) whose `expires_at` was
    /// before the cut-off.
    pub devices: u64,
}

impl Purged {
    /// From the counts in field order: challenges, verifications,
    /// counters, devices.
    #[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
    pub(crate) fn from_counts([challenges, verifications, counters, devices]: [u64; 4]) -> Self {
        Self {
            challenges,
            verifications,
            counters,
            devices,
        }
    }

    /// Every record deleted, all kinds together.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.challenges
            .saturating_add(self.verifications)
            .saturating_add(self.counters)
            .saturating_add(self.devices)
    }
}

impl std::ops::AddAssign for Purged {
    fn add_assign(&mut self, other: Self) {
        self.challenges = self.challenges.saturating_add(other.challenges);
        self.verifications = self.verifications.saturating_add(other.verifications);
        self.counters = self.counters.saturating_add(other.counters);
        self.devices = self.devices.saturating_add(other.devices);
    }
}

/// Deleting every record whose lifetime has ended.
///
/// Every record ninsho writes has a lifetime:
///
/// | record | lives until |
/// |---|---|
/// | challenge (code, one-time link) | its `expires_at` |
/// | combined verification | its `expires_at` |
/// | rate-limit window | its `resets_at` (a window that ended acts as absent) |
/// | trusted device, revoked or not | its `expires_at` |
/// | failure run | the account's next success, [`clear_failures`](super::LimitStore::clear_failures), or the account's deletion |
/// | account record and its contact claims | [`delete_account`](super::AccountStore::delete_account) |
/// | the store's initialisation marker | for ever |
///
/// The last three never expire on a clock, on purpose. An account record
/// that expired would read as an account that never turned on two-step
/// sign-in: a silent fail-open. A failure run that expired would give an
/// attacker a fresh run of guesses just for waiting, which defeats the
/// limit on consecutive failures (NIST SP 800-63B allows at most 100); a
/// run is one small record per account that ever failed, so it cannot grow
/// without bound.
///
/// Stores with native expiry (Redis) drop dead records by themselves; the
/// others keep them until [`purge`](Self::purge) runs. Either way, call it
/// on a schedule (every few minutes to hourly): it is exact, by the
/// injected clock, where native expiry follows the server's clock.
///
/// # Example: on a schedule
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use ninsho::store::Store;
/// use ninsho::Clock;
///
/// async fn housekeeping(store: Arc<dyn Store>, clock: Arc<dyn Clock>) {
///     let mut every = tokio::time::interval(Duration::from_secs(600));
///     loop {
///         every.tick().await;
///         // Keep expired challenges an hour, so a late attempt hears
///         // "expired, ask for a new code" rather than "unknown".
///         let cut = clock.now() - time::Duration::hours(1);
///         match store.purge(cut).await {
///             Ok(purged) => eprintln!("purged {} records", purged.total()),
///             Err(e) => eprintln!("purge failed, trying again later: {e}"),
///         }
///     }
/// }
/// ```
///
/// `examples/purge.rs` runs such a loop.
#[async_trait]
pub trait PurgeStore: Send + Sync + fmt::Debug {
    /// Deletes every record whose lifetime ended before `before`:
    /// challenges and verifications whose `expires_at < before`, rate-limit
    /// windows whose `resets_at <= before`, trusted devices whose
    /// `expires_at < before`. Returns how many of each went; runs until
    /// everything that qualifies is gone (an adapter may work in batches
    /// inside, but returns only when done).
    ///
    /// Pass the current time to drop everything that can no longer be
    /// used, or an earlier instant to keep expired challenges readable a
    /// while, so that late attempts are told "expired" rather than
    /// "unknown". Purging is idempotent and safe to run from several app
    /// instances at once: a record deleted by one is not counted by the
    /// other. Accounts, claims, failure runs and the initialisation marker
    /// are never touched (see the table above).
    ///
    /// # Errors
    /// Backend failures; a purge that failed part-way may have deleted
    /// some records and can simply run again.
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError>;
}
