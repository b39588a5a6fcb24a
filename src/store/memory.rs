//! The in-memory reference store.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{
    AccountCommit, AccountStore, ChallengeStore, ChallengeWrite, ClaimChanges, Commit, Committed,
    DeviceStore, LimitStore, Load, Loaded, PurgeStore, Purged, StepStore, StoreError,
    VerificationStore, WindowCount,
};

use crate::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, DeviceId, DeviceRecord, FailureRecord,
    VerificationId, VerificationRecord,
};

/// Every record in one process's memory.
///
/// The reference implementation of the store traits. Records live in 16
/// shards, each behind its own mutex, chosen by the record's key (the
/// challenge id, the counter key, the account): each method runs entirely
/// under the lock of the one shard its key lives in, which makes it atomic,
/// while requests for different keys rarely wait for each other. Suitable
/// for tests and single-process hosts; records vanish on restart. Call
/// [`purge`](PurgeStore::purge) now and then: nothing else drops
/// expired challenges, verifications, counters and devices.
///
/// `Debug` prints how many records of each kind it holds, never the
/// records or their keys: counter keys and claims name phone numbers,
/// email addresses and callers' IP addresses.
pub struct MemoryStore {
    shards: Vec<Mutex<Inner>>,
    hasher: RandomState,
    /// Account records and claims live apart, behind one lock: a commit
    /// touches one record and any number of claims atomically.
    contacts: Mutex<Contacts>,
}

#[derive(Default)]
struct Contacts {
    books: HashMap<AccountId, AccountRecord>,
    claims: HashMap<String, AccountId>,
}

/// Number of shards.
const SHARDS: usize = 16;

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Inner::default())).collect(),
            hasher: RandomState::new(),
            contacts: Mutex::new(Contacts::default()),
        }
    }
}

#[derive(Default)]
struct Inner {
    challenges: HashMap<ChallengeId, ChallengeRecord>,
    counters: HashMap<String, WindowCount>,
    failures: HashMap<AccountId, FailureRecord>,
    devices: HashMap<(AccountId, DeviceId), DeviceRecord>,
    verifications: HashMap<VerificationId, VerificationRecord>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of the shard `key` lives in.
    fn index<K: Hash + ?Sized>(&self, key: &K) -> usize {
        usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0)
    }

    /// The shard `key` lives in, locked.
    fn shard<K: Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, Inner> {
        lock(&self.shards[self.index(key)])
    }
}

/// A fixed-window counter after one more hit at `now` (the rule of
/// [`LimitStore::hit`]).
fn bumped(counter: Option<WindowCount>, window: Duration, now: OffsetDateTime) -> WindowCount {
    match counter {
        Some(c) if c.resets_at > now => WindowCount {
            count: c.count.saturating_add(1),
            resets_at: c.resets_at,
        },
        _ => WindowCount {
            count: 1,
            resets_at: now.saturating_add(window),
        },
    }
}

fn lock<T>(shard: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every method leaves the maps consistent before any point that could
    // panic, so a poisoned lock still guards valid data.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut counts = [0usize; 5];
        for shard in &self.shards {
            let inner = lock(shard);
            for (count, len) in counts.iter_mut().zip([
                inner.challenges.len(),
                inner.counters.len(),
                inner.failures.len(),
                inner.devices.len(),
                inner.verifications.len(),
            ]) {
                *count += len;
            }
        }
        let [challenges, counters, failures, devices, verifications] = counts;
        let (books, claims) = {
            let contacts = lock(&self.contacts);
            (contacts.books.len(), contacts.claims.len())
        };
        f.debug_struct("MemoryStore")
            .field("challenges", &challenges)
            .field("counters", &counters)
            .field("failure_runs", &failures)
            .field("devices", &devices)
            .field("verifications", &verifications)
            .field("contact_books", &books)
            .field("claims", &claims)
            .finish()
    }
}

#[async_trait]
impl ChallengeStore for MemoryStore {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        let mut inner = self.shard(&record.id);
        if inner.challenges.contains_key(&record.id) {
            return Err(StoreError::conflict());
        }
        inner.challenges.insert(record.id, record.clone());
        Ok(())
    }

    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        Ok(self.shard(id).challenges.get(id).cloned())
    }

    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut inner = self.shard(&record.id);
        match inner.challenges.get_mut(&record.id) {
            Some(stored) if stored.version == expected_version => {
                *stored = record.clone();
                Ok(())
            }
            _ => Err(StoreError::conflict()),
        }
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
        let mut inner = self.shard(key);
        let counter = bumped(inner.counters.get(key).copied(), window, now);
        inner.counters.insert(key.to_owned(), counter);
        Ok(counter)
    }

    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        let mut inner = self.shard(account);
        if inner.failures.get(account).copied() != expected {
            return Err(StoreError::conflict());
        }
        match next {
            Some(run) => inner.failures.insert(account.clone(), run),
            None => inner.failures.remove(account),
        };
        Ok(())
    }

    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        Ok(self.shard(account).failures.get(account).copied())
    }

    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        self.shard(account).failures.remove(account);
        Ok(())
    }
}

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        let mut inner = self.shard(&record.account);
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
        Ok(self
            .shard(account)
            .devices
            .get(&(account.clone(), *id))
            .cloned())
    }

    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        Ok(self
            .shard(account)
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
        let mut inner = self.shard(&record.account);
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
            .shard(account)
            .devices
            .remove(&(account.clone(), *id))
            .is_some())
    }

    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        let mut inner = self.shard(account);
        let before = inner.devices.len();
        inner.devices.retain(|(a, _), _| a != account);
        Ok(u64::try_from(before - inner.devices.len()).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        Ok(lock(&self.contacts).books.get(account).cloned())
    }

    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        Ok(lock(&self.contacts).claims.get(key).cloned())
    }

    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        let mut contacts = lock(&self.contacts);
        let stored = contacts.books.get(&book.account).map(|b| b.version);
        if stored != expected_version {
            return Err(StoreError::conflict());
        }
        let taken = changes.claim.iter().position(|key| {
            contacts
                .claims
                .get(key)
                .is_some_and(|owner| owner != &book.account)
        });
        if let Some(index) = taken {
            return Ok(AccountCommit::Taken { index });
        }
        apply_claims(&mut contacts, book, changes);
        Ok(AccountCommit::Committed)
    }

    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        let mut contacts = lock(&self.contacts);
        contacts.books.remove(account);
        contacts.claims.retain(|_, owner| owner != account);
        Ok(())
    }
}

#[async_trait]
impl VerificationStore for MemoryStore {
    async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError> {
        let mut inner = self.shard(&record.id);
        if inner.verifications.contains_key(&record.id) {
            return Err(StoreError::conflict());
        }
        inner.verifications.insert(record.id, record.clone());
        Ok(())
    }

    async fn verification(
        &self,
        id: &VerificationId,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        Ok(self.shard(id).verifications.get(id).cloned())
    }

    async fn replace_verification(
        &self,
        record: &VerificationRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut inner = self.shard(&record.id);
        match inner.verifications.get_mut(&record.id) {
            Some(stored) if stored.version == expected_version => {
                *stored = record.clone();
                Ok(())
            }
            _ => Err(StoreError::conflict()),
        }
    }
}

#[async_trait]
impl StepStore for MemoryStore {
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        if let Some(account) = load.account {
            loaded.record = lock(&self.contacts).books.get(account).cloned();
            let inner = self.shard(account);
            loaded.failures = inner.failures.get(account).copied();
            if let Some(device) = load.device {
                loaded.device = inner.devices.get(&(account.clone(), *device)).cloned();
            }
        }
        if let Some(id) = load.challenge {
            loaded.challenge = self.shard(id).challenges.get(id).cloned();
        }
        Ok(loaded)
    }

    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        // Every lock the commit needs, in one fixed order (the claims and
        // records first, then shards by index), so that commits never wait
        // for each other in a circle and no single-record call slips in
        // between the checks and the writes.
        let mut contacts = (commit.record.is_some() || commit.record_check.is_some())
            .then(|| lock(&self.contacts));
        let mut wanted: Vec<usize> = commit
            .hits
            .iter()
            .map(|h| self.index(h.key.as_str()))
            .chain(commit.failures.map(|f| self.index(f.account)))
            .chain(commit.challenge.map(|c| self.index(&c.record().id)))
            .chain(commit.device.map(|d| self.index(&d.account)))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Inner>)> =
            wanted.iter().map(|&i| (i, lock(&self.shards[i]))).collect();

        // 1. The counters, worked out before anything is written.
        let mut counts = Vec::with_capacity(commit.hits.len());
        for (at, hit) in commit.hits.iter().enumerate() {
            let index = self.index(hit.key.as_str());
            let earlier = commit.hits[..at]
                .iter()
                .zip(&counts)
                .rev()
                .find(|(h, _)| h.key == hit.key)
                .map(|(_, c): (_, &WindowCount)| *c);
            let stored =
                earlier.or_else(|| held(&mut guards, index).counters.get(&hit.key).copied());
            let count = bumped(stored, hit.window, now);
            counts.push(count);
            if count.count > hit.max {
                for (hit, count) in commit.hits.iter().zip(&counts) {
                    held(&mut guards, self.index(hit.key.as_str()))
                        .counters
                        .insert(hit.key.clone(), *count);
                }
                return Ok(Committed::LimitReached { index: at, count });
            }
        }

        // 2. Every condition.
        if let Some(change) = commit.failures {
            let stored = held(&mut guards, self.index(change.account))
                .failures
                .get(change.account)
                .copied();
            if stored != change.expected {
                return Err(StoreError::conflict());
            }
        }
        if let Some(write) = commit.challenge {
            let id = write.record().id;
            let stored = held(&mut guards, self.index(&id))
                .challenges
                .get(&id)
                .map(|c| c.version);
            let fits = match write {
                ChallengeWrite::Insert(_) => stored.is_none(),
                ChallengeWrite::Replace {
                    expected_version, ..
                } => stored == Some(expected_version),
            };
            if !fits {
                return Err(StoreError::conflict());
            }
        }
        if let Some(device) = commit.device {
            let key = (device.account.clone(), device.id);
            if held(&mut guards, self.index(&device.account))
                .devices
                .contains_key(&key)
            {
                return Err(StoreError::conflict());
            }
        }
        if let (Some(check), Some(contacts)) = (commit.record_check, contacts.as_deref())
            && contacts.books.get(check.account).map(|b| b.version) != check.version
        {
            return Err(StoreError::conflict());
        }
        if let (Some(write), Some(contacts)) = (commit.record, contacts.as_deref_mut()) {
            let account = &write.record.account;
            if contacts.books.get(account).map(|b| b.version) != write.expected_version {
                return Err(StoreError::conflict());
            }
            let taken = write.claims.claim.iter().position(|key| {
                contacts
                    .claims
                    .get(key)
                    .is_some_and(|owner| owner != account)
            });
            if let Some(index) = taken {
                return Ok(Committed::Taken { index });
            }
        }

        // 3. Every write.
        for (hit, count) in commit.hits.iter().zip(&counts) {
            held(&mut guards, self.index(hit.key.as_str()))
                .counters
                .insert(hit.key.clone(), *count);
        }
        if let Some(change) = commit.failures {
            let inner = held(&mut guards, self.index(change.account));
            match change.next {
                Some(run) => inner.failures.insert(change.account.clone(), run),
                None => inner.failures.remove(change.account),
            };
        }
        if let Some(write) = commit.challenge {
            let record = write.record();
            held(&mut guards, self.index(&record.id))
                .challenges
                .insert(record.id, record.clone());
        }
        if let Some(device) = commit.device {
            held(&mut guards, self.index(&device.account))
                .devices
                .insert((device.account.clone(), device.id), device.clone());
        }
        if let (Some(write), Some(contacts)) = (commit.record, contacts.as_deref_mut()) {
            apply_claims(contacts, write.record, write.claims);
        }
        Ok(Committed::Done)
    }
}

/// The locked shard `index` among `guards` (which hold every shard a
/// commit touches).
fn held<'g, 's>(guards: &'g mut [(usize, MutexGuard<'s, Inner>)], index: usize) -> &'g mut Inner {
    let at = guards.iter().position(|(i, _)| *i == index).unwrap_or(0);
    &mut guards[at].1
}

/// Releases and claims `changes` for `record`'s account and stores the
/// record (the checks were made).
fn apply_claims(contacts: &mut Contacts, record: &AccountRecord, changes: &ClaimChanges) {
    for key in &changes.release {
        if contacts.claims.get(key) == Some(&record.account) {
            contacts.claims.remove(key);
        }
    }
    for key in &changes.claim {
        contacts.claims.insert(key.clone(), record.account.clone());
    }
    contacts
        .books
        .insert(record.account.clone(), record.clone());
}

#[async_trait]
impl PurgeStore for MemoryStore {
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError> {
        let mut purged = Purged::default();
        // One shard at a time: other shards keep serving meanwhile.
        for shard in &self.shards {
            let mut inner = lock(shard);
            purged.challenges += drop_where(&mut inner.challenges, |c| c.expires_at < before);
            purged.verifications += drop_where(&mut inner.verifications, |v| v.expires_at < before);
            purged.counters += drop_where(&mut inner.counters, |c| c.resets_at <= before);
            purged.devices += drop_where(&mut inner.devices, |d| d.expires_at < before);
        }
        Ok(purged)
    }
}

/// Removes the entries of `map` whose value is `dead`; how many went.
fn drop_where<K, V>(map: &mut HashMap<K, V>, mut dead: impl FnMut(&V) -> bool) -> u64 {
    let was = map.len();
    map.retain(|_, v| !dead(v));
    u64::try_from(was - map.len()).unwrap_or(u64::MAX)
}
