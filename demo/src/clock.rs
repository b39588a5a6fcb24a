//! The demo's clock: the system clock moved forward by an offset that the
//! dev clock page sets, so the grace period can be walked through in a
//! minute instead of a week.

use std::sync::{Arc, PoisonError, RwLock};

use ninsho::Clock;
use time::{Duration, OffsetDateTime};

/// System time plus an adjustable offset; clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct OffsetClock {
    offset: Arc<RwLock<Duration>>,
}

impl OffsetClock {
    /// A clock that reads the system time (offset zero).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (backward when negative).
    /// The offset never goes beyond ten years either way, so the clock
    /// stays far inside the range of dates.
    pub fn advance(&self, by: Duration) {
        let limit = Duration::days(3653);
        let mut offset = self.offset.write().unwrap_or_else(PoisonError::into_inner);
        *offset = offset.saturating_add(by).clamp(-limit, limit);
    }

    /// How far the clock is ahead of the system time.
    #[must_use]
    pub fn offset(&self) -> Duration {
        *self.offset.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset() {
        let clock = OffsetClock::new();
        let other = clock.clone();
        let before = clock.now();
        other.advance(Duration::days(8));
        assert!(clock.now() - before >= Duration::days(8));
        assert_eq!(clock.offset(), Duration::days(8));
    }
}
