//! Where ninsho gets the time from.
//!
//! Every rule that depends on time (code expiry, TOTP steps, cooldowns, grace
//! periods) reads it from a [`Clock`] handed in by the host, never from the
//! system directly. Production code uses [`SystemClock`]; tests use
//! [`ManualClock`], which only moves when told to, so no test ever sleeps.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use time::{Duration, OffsetDateTime};

/// A source of the current time.
///
/// The trait is synchronous, object safe and shareable across threads, so a
/// service can hold it as `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// The current instant as whole seconds since the Unix epoch.
    ///
    /// Instants before 1970 read as `0`: nothing in ninsho is meaningful
    /// before the epoch, and TOTP counts time as an unsigned number.
    fn unix_seconds(&self) -> u64 {
        unix_seconds(self.now())
    }
}

/// Whole seconds since the Unix epoch, with instants before 1970 read as `0`.
#[must_use]
pub fn unix_seconds(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp()).unwrap_or(0)
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to, for tests and simulations.
///
/// Clones share one instant: hand a clone to the code under test, keep one,
/// and move time from the test. It can be set to any instant, advanced, and
/// moved backwards (to test clock skew and servers whose time jumps).
///
/// ```
/// use ninsho::{Clock, ManualClock};
/// use time::Duration;
///
/// let clock = ManualClock::at_unix(1_700_000_000).unwrap();
/// let seen_by_service = clock.clone();
/// clock.advance(Duration::minutes(10));
/// assert_eq!(seen_by_service.unix_seconds(), 1_700_000_600);
/// clock.rewind(Duration::seconds(30));
/// assert_eq!(seen_by_service.unix_seconds(), 1_700_000_570);
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<RwLock<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock stopped at `at`.
    #[must_use]
    pub fn new(at: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(RwLock::new(at)),
        }
    }

    /// A clock stopped at `unix_seconds` after the Unix epoch.
    ///
    /// # Errors
    /// When the instant is outside the range the `time` crate can represent.
    pub fn at_unix(unix_seconds: i64) -> Result<Self, time::error::ComponentRange> {
        OffsetDateTime::from_unix_timestamp(unix_seconds).map(Self::new)
    }

    /// Moves every clone of this clock to `at`, forwards or backwards.
    pub fn set(&self, at: OffsetDateTime) {
        *self.write() = at;
    }

    /// Moves every clone of this clock by `by` (negative moves it back).
    ///
    /// The instant saturates at the limits the `time` crate can represent
    /// rather than overflowing.
    pub fn advance(&self, by: Duration) {
        let mut now = self.write();
        *now = now.checked_add(by).unwrap_or(if by.is_negative() {
            OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT)
        } else {
            OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX)
        });
    }

    /// Moves every clone of this clock back by `by`.
    pub fn rewind(&self, by: Duration) {
        self.advance(-by);
    }

    // The guarded value is a plain instant: a panic elsewhere cannot leave
    // it half-written, so a poisoned lock is safe to keep using.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, OffsetDateTime> {
        self.now.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_instant() {
        let a = ManualClock::at_unix(100).unwrap();
        let b = a.clone();
        a.advance(Duration::seconds(5));
        assert_eq!(b.unix_seconds(), 105);
        b.set(OffsetDateTime::from_unix_timestamp(7).unwrap());
        assert_eq!(a.unix_seconds(), 7);
    }

    #[test]
    fn moves_backwards_and_saturates() {
        let c = ManualClock::at_unix(100).unwrap();
        c.rewind(Duration::seconds(40));
        assert_eq!(c.unix_seconds(), 60);
        c.rewind(Duration::seconds(1_000));
        // Before the epoch reads as zero seconds.
        assert_eq!(c.unix_seconds(), 0);
        c.advance(Duration::MAX);
        assert_eq!(c.now().date(), time::Date::MAX);
    }

    #[test]
    fn far_past_2038() {
        let c = ManualClock::at_unix(20_000_000_000).unwrap();
        assert_eq!(c.unix_seconds(), 20_000_000_000);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.unix_seconds() > 1_700_000_000);
    }
}
