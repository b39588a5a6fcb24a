//! The in-memory reference store.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{
    AccountId, ChallengeId, ChallengeRecord, ChallengeStore, DeviceStore, FailureRecord,
    LimitStore, RecoveryStore, StoreError, WindowCount,
};
use crate::device::{DeviceId, DeviceRecord};
use crate::recovery::RecoverySet;

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
    recovery: HashMap<AccountId, RecoverySet>,
    devices: HashMap<(AccountId, DeviceId), DeviceRecord>,
    epochs: HashMap<AccountId, u64>,
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

#[async_trait]
impl RecoveryStore for MemoryStore {
    async fn recovery_set(&self, account: &AccountId) -> Result<Option<RecoverySet>, StoreError> {
        Ok(self.lock().recovery.get(account).cloned())
    }

    async fn insert_recovery_set(
        &self,
        account: &AccountId,
        set: &RecoverySet,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.recovery.contains_key(account) {
            return Err(StoreError::conflict());
        }
        inner.recovery.insert(account.clone(), set.clone());
        Ok(())
    }

    async fn replace_recovery_set(
        &self,
        account: &AccountId,
        set: &RecoverySet,
        expected_salt: &[u8; 16],
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.recovery.get_mut(account) {
            Some(stored) if stored.salt == *expected_salt && stored.version == expected_version => {
                *stored = set.clone();
                Ok(())
            }
            _ => Err(StoreError::conflict()),
        }
    }

    async fn delete_recovery_set(&self, account: &AccountId) -> Result<(), StoreError> {
        self.lock().recovery.remove(account);
        Ok(())
    }
}

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = (record.account.clone(), record.id);
        if inner.devices.contains_key(&key) {
            return Err(StoreError::conflict());
        }
        inner.devices.insert(key, record.clone());
        Ok(())
    }

    async fn device(
        &self,
        account: &AccountId,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(self.lock().devices.get(&(account.clone(), *id)).cloned())
    }

    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        Ok(self
            .lock()
            .devices
            .values()
            .filter(|d| &d.account == account)
            .cloned()
            .collect())
    }

    async fn replace_device(
        &self,
        record: &DeviceRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.devices.get_mut(&(record.account.clone(), record.id)) {
            Some(stored) if stored.version == expected_version => {
                *stored = record.clone();
                Ok(())
            }
            _ => Err(StoreError::conflict()),
        }
    }

    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .devices
            .remove(&(account.clone(), *id))
            .is_some())
    }

    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let before = inner.devices.len();
        inner.devices.retain(|(a, _), _| a != account);
        Ok(u64::try_from(before - inner.devices.len()).unwrap_or(u64::MAX))
    }

    async fn epoch(&self, account: &AccountId) -> Result<u64, StoreError> {
        Ok(self.lock().epochs.get(account).copied().unwrap_or(0))
    }

    async fn bump_epoch(&self, account: &AccountId) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let epoch = inner.epochs.entry(account.clone()).or_insert(0);
        *epoch = epoch.saturating_add(1);
        Ok(*epoch)
    }
}
