//! The in-memory reference store.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{
    AccountId, ChallengeId, ChallengeRecord, ChallengeStore, FailureRecord, LimitStore, StoreError,
    WindowCount,
};

/// Every record in one process's memory, behind one mutex.
///
/// The reference implementation of the store traits: each method runs
/// entirely under the lock, which makes it atomic. Suitable for tests and
/// single-process hosts; records vanish on restart. Call
/// [`purge_challenges`](ChallengeStore::purge_challenges) now and then to
/// drop expired challenges (counters reset themselves).
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    challenges: HashMap<ChallengeId, ChallengeRecord>,
    counters: HashMap<String, WindowCount>,
    failures: HashMap<AccountId, FailureRecord>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every method leaves the maps consistent before any point that
        // could panic, so a poisoned lock still guards valid data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ChallengeStore for MemoryStore {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.challenges.contains_key(&record.id) {
            return Err(StoreError::conflict());
        }
        inner.challenges.insert(record.id, record.clone());
        Ok(())
    }

    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        Ok(self.lock().challenges.get(id).cloned())
    }

    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.challenges.get_mut(&record.id) {
            Some(stored) if stored.version == expected_version => {
                *stored = record.clone();
                Ok(())
            }
            _ => Err(StoreError::conflict()),
        }
    }

    async fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let was = inner.challenges.len();
        inner.challenges.retain(|_, c| c.expires_at >= before);
        inner.counters.retain(|_, c| c.resets_at > before);
        Ok(u64::try_from(was - inner.challenges.len()).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl LimitStore for MemoryStore {
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        let mut inner = self.lock();
        let counter = inner.counters.entry(key.to_owned()).or_insert(WindowCount {
            count: 0,
            resets_at: now,
        });
        if counter.resets_at <= now {
            counter.count = 0;
            counter.resets_at = now.saturating_add(window);
        }
        counter.count = counter.count.saturating_add(1);
        Ok(*counter)
    }

    async fn record_failure(
        &self,
        account: &AccountId,
        now: OffsetDateTime,
    ) -> Result<FailureRecord, StoreError> {
        let mut inner = self.lock();
        let run = inner
            .failures
            .entry(account.clone())
            .or_insert(FailureRecord {
                consecutive: 0,
                last_failure_at: now,
            });
        run.consecutive = run.consecutive.saturating_add(1);
        run.last_failure_at = now;
        Ok(*run)
    }

    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        Ok(self.lock().failures.get(account).copied())
    }

    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        self.lock().failures.remove(account);
        Ok(())
    }
}
