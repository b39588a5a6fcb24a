//! The ports every flow needs, bundled.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::clock::{Clock, SystemClock};
use crate::events::{Event, EventSink, NoEvents};
use crate::hash::KeyedHasher;
use crate::random::{OsRandom, Random};
use crate::store::Store;

/// The store, hasher, clock, randomness and event sink a flow runs on.
///
/// Cheap to clone (everything is behind `Arc`); build one and hand clones
/// to [`RecoveryCodes`](super::RecoveryCodes) and
/// [`TrustedDevices`](super::TrustedDevices).
#[derive(Clone)]
pub struct Ports {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hasher: Arc<KeyedHasher>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Arc<dyn Random>,
    pub(crate) events: Arc<dyn EventSink>,
}

impl Ports {
    /// Ports on `store` and `hasher`, with the system clock, the operating
    /// system's randomness and no event sink.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, hasher: KeyedHasher) -> Self {
        Self {
            store,
            hasher: Arc::new(hasher),
            clock: Arc::new(SystemClock),
            rng: Arc::new(OsRandom),
            events: Arc::new(NoEvents),
        }
    }

    /// Uses `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `rng`.
    #[must_use]
    pub fn with_rng(mut self, rng: Arc<dyn Random>) -> Self {
        self.rng = rng;
        self
    }

    /// Sends audit events to `sink`.
    #[must_use]
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = sink;
        self
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub(crate) fn emit(&self, event: Event) {
        self.events.record(&event);
    }
}

impl fmt::Debug for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ports")
            .field("store", &self.store)
            .field("hasher", &self.hasher)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
