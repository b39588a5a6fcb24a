//! What the integration tests share: the start instant and the keys, the
//! store wrappers (`Yielding`, a mockall `MockDb`, and `delegate_store!`
//! for hand-written wrappers that fail on cue), and the small helpers every
//! flow's tests use.
//!
//! Cargo builds `tests/support/mod.rs` into each test that says
//! `mod support;`, not as a test of its own. No test uses all of it, hence
//! the `allow`s.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use mockall::mock;
use ninsho::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, Destination, DeviceId, DeviceRecord,
    FailureRecord, Locale, VerificationId, VerificationRecord,
};
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ClaimChanges, Commit, Committed, DeviceStore,
    LimitStore, Load, Loaded, PurgeStore, Purged, StepStore, Store, StoreError, StoreErrorKind,
    VerificationStore, WindowCount,
};
use ninsho::{Error, HashKey, KeyId, KeyedHasher, LockedRng, ManualClock, Refusal};
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

/// 2025-11-21 00:00:00 UTC.
pub const T0: i64 = 1_763_683_200;
pub const PHONE: &str = "+819012345678";
pub const BASE: &str = "https://example.com/l/";
/// How many tasks a race runs.
pub const TASKS: usize = 64;

// ------------------------------------------------------------------ set-up

pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T0).unwrap()
}

pub fn hasher() -> KeyedHasher {
    KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32]).unwrap())
}

pub fn phone() -> Destination {
    Destination::phone(PHONE).unwrap()
}

// ----------------------------------------------------------------- results

#[track_caller]
pub fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> Refusal {
    match result {
        Err(Error::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[track_caller]
pub fn store_error<T: std::fmt::Debug>(result: Result<T, Error>) -> StoreErrorKind {
    match result {
        Err(Error::Store(e)) => e.kind(),
        other => panic!("expected a store error, got {other:?}"),
    }
}

// ------------------------------------------------------------------ stores

pub fn db_down() -> StoreError {
    StoreError::unavailable("db down")
}

/// Takes one from a "fail the next n calls" counter: whether this call
/// fails.
pub fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Hands a store's answer back as it is (for `delegate_store!`).
pub async fn directly<T>(result: T) -> T {
    result
}

/// Hands a store's answer back after yielding to the scheduler (for
/// `delegate_store!`).
pub async fn yielding<T>(result: T) -> T {
    tokio::task::yield_now().await;
    result
}

/// Implements store traits for a wrapper by handing every call to one of
/// its fields, and its answer to `then` (`directly` or `yielding`):
///
/// ```ignore
/// delegate_store!([] Flaky, inner, support::directly => DeviceStore);
/// ```
///
/// The generics in brackets go to every `impl`. A wrapper that fails on cue
/// writes the traits it changes by hand and delegates the rest.
macro_rules! delegate_store {
    (@ChallengeStore [$($g:tt)*] $ty:ty, $field:tt, $then:path) => {
        #[::async_trait::async_trait]
        impl<$($g)*> ::ninsho::store::ChallengeStore for $ty {
            async fn insert_challenge(
                &self,
                record: &::ninsho::model::ChallengeRecord,
            ) -> Result<(), ::ninsho::store::StoreError> {
                $then(self.$field.insert_challenge(record).await).await
            }
            async fn challenge(
                &self,
                id: &::ninsho::model::ChallengeId,
            ) -> Result<Option<::ninsho::model::ChallengeRecord>, ::ninsho::store::StoreError> {
                $then(self.$field.challenge(id).await).await
            }
            async fn replace_challenge(
                &self,
                record: &::ninsho::model::ChallengeRecord,
                expected_version: u64,
            ) -> Result<(), ::ninsho::store::StoreError> {
                $then(self.$field.replace_challenge(record, expected_version).await).await
            }
        }
    };
    (@LimitStore [$($g:tt)*] $ty:ty, $field:tt, $then:path) => {
        #[::async_trait::async_trait]
        impl<$($g)*> ::ninsho::store::LimitStore for $ty {
            async fn hit(
                &self,
                key: &str,
                window: ::time::Duration,
                now: ::time::OffsetDateTime,
            ) -> Result<::ninsho::store::WindowCount, ::ninsho::store::StoreError> {
                $then(self.$field.hit(key, window, now).await).await
            }
            async fn replace_failures(
                &self,
                account: &::ninsho::model::AccountId,
                expected: Option<::ninsho::model::FailureRecord>,
                next: Option<::ninsho::model::FailureRecord>,
            ) -> Result<(), ::ninsho::store::StoreError> {
                $then(self.$field.replace_failures(account, expected, next).await).await
            }
            async fn failures(
                &self,
                account: &::ninsho::model::AccountId,
            ) -> Result<Option<::ninsho::model::FailureRecord>, ::ninsho::store::StoreError> {
                $then(self.$field.failures(account).await).await
            }
            async fn clear_failures(
                &self,
                account: &::ninsho::model::AccountId,
            ) -> Result<(), ::ninsho::store::StoreError> {
                $then(self.$field.clear_failures(account).await).await
            }
        }
    };
    (@DeviceStore [$($g:tt)*] $ty:ty, $field:tt, $then:path) => {
        #[::async_trait::async_trait]
        impl<$($g)*> ::ninsho::store::DeviceStore for $ty {
            async fn insert_device(
                &self,
                record: &::ninsho::model::DeviceRecord,
            ) -> Result<(), ::ninsho::store::StoreError> {
                $then(self.$field.insert_device(record).await).await
            }
            async fn device(
                &self,
                account: &::ninsho::model::AccountId,
                id: &::ninsho::model::DeviceId,
            ) -> Result<Option<::ninsho::model::DeviceRecord>, ::ninsho::store::StoreError> {
                $then(self.$field.device(account, id).await).await
            }
            async fn devices(
                &self,
                account: &::ninsho::model::AccountId,
            ) -> Result<Vec<::ninsho::model::DeviceRecord>, ::ninsho::store::StoreError> {
                $then(self.$field.devices(account).await).await
            }
            async fn replace_device(
                &self,
                record: &::ninsho::model::DeviceRecord,
                expected_version: u64,
            ) -> Result<(), ::ninsho::store::StoreError> {
                $then(self.$field.replace_device(record, expected_version).await).await
            }
            async fn delete_device(
                &self,
                account: &::ninsho::model::AccountId,
                id: &::ninsho::model::DeviceId,
            ) -> Result<bool, ::ninsho::store::StoreError> {
                $then(self.$field.delete_device(account, id).await).await
            }
            async fn delete_devices(
                &self,
                account: &::ninsho::model::AccountId,
            ) -> Result<u64, ::ninsho::store::StoreError> {
                $then(self.$field.delete_devices(account).await).await
            }
        }
    };
    (@AccountStore [$($g:tt)*] $ty:ty, $field:tt, $then:path) => {
        #[::async_trait::async_trait]
        impl<$($g)*> ::ninsho::store::AccountStore for $ty {
            async fn account_record(
                &self,
                account: &::ninsho::model::AccountId,
            ) -> Result<Option<::ninsho::model::AccountRecord>, ::ninsho::store::StoreError> {
                $then(self.$field.account_record(account).await).await
            }
            async fn claim_owner(
                &self,
                key: &str,
            ) -> Result<Option<::ninsho::model::AccountId>, ::ninsho::store::StoreError> {
                $then(self.$field.claim_owner(key).await).await
            }
            async fn commit_account(
                &self,
                book: &::ninsho::model::AccountRecord,
                expected_version: Option<u64>,
                changes: &::ninsho::store::ClaimChanges,
            ) -> Result<::ninsho::store::AccountCommit, ::ninsho::store::StoreError> {
                $then(self.$field.commit_account(book, expected_version, changes).await).await
            }
            async fn delete_account(
                &self,
                account: &::ninsho::model::AccountId,
            ) -> Result<(), ::ninsho::store::StoreError> {
                $then(self.$field.delete_account(account).await).await
            }
        }
    };
    (@VerificationStore [$($g:tt)*] $ty:ty, $field:tt, $then:path) => {
        #[::async_trait::async_trait]
        impl<$($g)*> ::ninsho::store::VerificationStore for $ty {
            async fn insert_verification(
                &self,
                record: &::ninsho::model::VerificationRecord,
            ) -> Result<(), ::ninsho::store::StoreError> {
                $then(self.$field.insert_verification(record).await).await
            }
            async fn verification(
                &self,
                id: &::ninsho::model::VerificationId,
            ) -> Result<Option<::ninsho::model::VerificationRecord>, ::ninsho::store::StoreError>
            {
                $then(self.$field.verification(id).await).await
            }
            async fn replace_verification(
                &self,
                record: &::ninsho::model::VerificationRecord,
                expected_version: u64,
            ) -> Result<(), ::ninsho::store::StoreError> {
                $then(self.$field.replace_verification(record, expected_version).await).await
            }
        }
    };
    (@PurgeStore [$($g:tt)*] $ty:ty, $field:tt, $then:path) => {
        #[::async_trait::async_trait]
        impl<$($g)*> ::ninsho::store::PurgeStore for $ty {
            async fn purge(
                &self,
                before: ::time::OffsetDateTime,
            ) -> Result<::ninsho::store::Purged, ::ninsho::store::StoreError> {
                $then(self.$field.purge(before).await).await
            }
        }
    };
    (@StepStore [$($g:tt)*] $ty:ty, $field:tt, $then:path) => {
        #[::async_trait::async_trait]
        impl<$($g)*> ::ninsho::store::StepStore for $ty {
            async fn load(
                &self,
                load: &::ninsho::store::Load<'_>,
            ) -> Result<::ninsho::store::Loaded, ::ninsho::store::StoreError> {
                $then(self.$field.load(load).await).await
            }
            async fn commit(
                &self,
                commit: &::ninsho::store::Commit<'_>,
                now: ::time::OffsetDateTime,
            ) -> Result<::ninsho::store::Committed, ::ninsho::store::StoreError> {
                $then(self.$field.commit(commit, now).await).await
            }
        }
    };
    ($generics:tt $ty:ty, $field:tt, $then:path => $($store:ident),+ $(,)?) => {
        $(delegate_store!(@$store $generics $ty, $field, $then);)+
    };
}
#[allow(unused_imports)] // Used by the tests with a wrapper of their own.
pub(crate) use delegate_store;

/// Delegates to a shared store, yielding to the scheduler after every
/// call, so other tasks run between a read and the write that depends on
/// it (as with a networked database).
#[derive(Debug)]
pub struct Yielding<S>(pub Arc<S>);

delegate_store!([S: Store] Yielding<S>, 0, yielding =>
    ChallengeStore, LimitStore, DeviceStore, AccountStore, VerificationStore, StepStore, PurgeStore);

mock! {
    #[derive(Debug)]
    pub Db {}

    #[async_trait]
    impl ChallengeStore for Db {
        async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError>;
        async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError>;
        async fn replace_challenge(
            &self,
            record: &ChallengeRecord,
            expected_version: u64,
        ) -> Result<(), StoreError>;
    }

    #[async_trait]
    impl LimitStore for Db {
        async fn hit(
            &self,
            key: &str,
            window: Duration,
            now: OffsetDateTime,
        ) -> Result<WindowCount, StoreError>;
        async fn replace_failures(
            &self,
            account: &AccountId,
            expected: Option<FailureRecord>,
            next: Option<FailureRecord>,
        ) -> Result<(), StoreError>;
        async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError>;
        async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError>;
    }

    #[async_trait]
    impl DeviceStore for Db {
        async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError>;
        async fn device(
            &self,
            account: &AccountId,
            id: &DeviceId,
        ) -> Result<Option<DeviceRecord>, StoreError>;
        async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError>;
        async fn replace_device(
            &self,
            record: &DeviceRecord,
            expected_version: u64,
        ) -> Result<(), StoreError>;
        async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError>;
        async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError>;
    }

    #[async_trait]
    impl AccountStore for Db {
        async fn account_record(&self, account: &AccountId) -> Result<Option<AccountRecord>, StoreError>;
        async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError>;
        async fn commit_account(
            &self,
            book: &AccountRecord,
            expected_version: Option<u64>,
            changes: &ClaimChanges,
        ) -> Result<AccountCommit, StoreError>;
        async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError>;
    }

    #[async_trait]
    impl VerificationStore for Db {
        async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError>;
        async fn verification(
            &self,
            id: &VerificationId,
        ) -> Result<Option<VerificationRecord>, StoreError>;
        async fn replace_verification(
            &self,
            record: &VerificationRecord,
            expected_version: u64,
        ) -> Result<(), StoreError>;
    }

    #[async_trait]
    impl PurgeStore for Db {
        async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError>;
    }
}

/// The mock answers the journey-step calls with the part calls they
/// bundle, so tests set expectations on those (a mock has no atomicity to
/// keep).
#[async_trait]
impl StepStore for MockDb {
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        if let Some(account) = load.account {
            loaded.record = self.account_record(account).await?;
            loaded.failures = self.failures(account).await?;
            if let Some(id) = load.device {
                loaded.device = self.device(account, id).await?;
            }
        }
        if let Some(id) = load.challenge {
            loaded.challenge = self.challenge(id).await?;
        }
        Ok(loaded)
    }

    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        for (index, hit) in commit.hits.iter().enumerate() {
            let count = self.hit(&hit.key, hit.window, now).await?;
            if count.count > hit.max {
                return Ok(Committed::LimitReached { index, count });
            }
        }
        if let Some(change) = commit.failures {
            self.replace_failures(change.account, change.expected, change.next)
                .await?;
        }
        match commit.challenge {
            Some(ninsho::store::ChallengeWrite::Insert(record)) => {
                self.insert_challenge(record).await?;
            }
            Some(ninsho::store::ChallengeWrite::Replace {
                record,
                expected_version,
            }) => self.replace_challenge(record, expected_version).await?,
            // Inside the crate (the unit tests include this file) the enum
            // is exhaustive; outside it is not.
            #[allow(unreachable_patterns)]
            Some(_) | None => {}
        }
        if let Some(write) = commit.record
            && let AccountCommit::Taken { index } = self
                .commit_account(write.record, write.expected_version, write.claims)
                .await?
        {
            return Ok(Committed::Taken { index });
        }
        if let Some(device) = commit.device {
            self.insert_device(device).await?;
        }
        Ok(Committed::Done)
    }
}

// ------------------------------------------------------------------- races

/// Runs `TASKS` jobs (given their index), released together.
pub async fn race<T, F, Fut>(job: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let work = job(i);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(TASKS);
    for handle in handles {
        out.push(handle.await.expect("task did not panic"));
    }
    out
}

// ------------------------------------------------------------- the service

/// The test sealer: XChaCha20-Poly1305 under a fixed key, nonces from the
/// operating system.
pub fn sealer() -> Arc<ninsho::seal::AeadSealer> {
    Arc::new(ninsho::seal::AeadSealer::new(
        ninsho::seal::SealKey::new(KeyId(1), &[0x5E; 32]).expect("a 32-byte key"),
    ))
}

/// A `TwoFactor` builder for `service` on `store` and `gateway`, with the
/// manual clock, randomness seeded with `seed`, the test keys (the sealer
/// included) and English messages; add policies, then `build()`.
pub fn two_factor(
    service: &str,
    store: Arc<dyn Store>,
    gateway: &ninsho::gateway::RecordingGateway,
    clock: &ManualClock,
    seed: u64,
) -> ninsho::service::TwoFactorBuilder {
    two_factor_with(service, store, gateway, clock, seed, hasher(), sealer())
}

/// [`two_factor`] with keys of the test's own.
pub fn two_factor_with(
    service: &str,
    store: Arc<dyn Store>,
    gateway: &ninsho::gateway::RecordingGateway,
    clock: &ManualClock,
    seed: u64,
    hasher: KeyedHasher,
    sealer: Arc<dyn ninsho::seal::Sealer>,
) -> ninsho::service::TwoFactorBuilder {
    ninsho::service::TwoFactor::builder(service, store, Arc::new(gateway.clone()), hasher, sealer)
        .clock(Arc::new(clock.clone()))
        .rng(Arc::new(LockedRng::seeded(seed)))
        .locale(Locale::En)
}

/// The bare secret (code or URL) of the last message delivered to `to`.
#[track_caller]
pub fn secret_to(gateway: &ninsho::gateway::RecordingGateway, to: &str) -> String {
    gateway
        .last_secret_to(to)
        .expect("a message with a secret was delivered")
        .expose_secret()
        .to_owned()
}

/// Send limits out of the way, for tests that are not about them.
pub fn no_send_limits() -> ninsho::limits::SendLimits {
    let lots = ninsho::limits::RateLimit::new(1_000_000, Duration::minutes(10));
    ninsho::limits::SendLimits {
        per_destination: lots,
        per_account: lots,
        per_caller: lots,
        countries: Vec::new(),
        other_countries: None,
    }
}

/// Registers `typed` (E.164 `PHONE`) as `account`'s phone with two-step
/// sign-in turned on in the same step; returns the recovery codes.
pub async fn enrol(
    service: &ninsho::service::TwoFactor,
    gateway: &ninsho::gateway::RecordingGateway,
    account: &AccountId,
) -> Vec<String> {
    let ticket = service
        .phone_send_code(account, "090-1234-5678", None, None)
        .await
        .unwrap();
    let done = service
        .phone_confirm(
            account,
            &ticket.challenge_id,
            &secret_to(gateway, PHONE),
            true,
        )
        .await
        .unwrap();
    done.recovery_codes
        .unwrap()
        .expose_secret()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Signs `account` in by an SMS code to `PHONE` (its first SMS method),
/// trusting the device when `trust` names it.
pub async fn sms_sign_in(
    service: &ninsho::service::TwoFactor,
    gateway: &ninsho::gateway::RecordingGateway,
    account: &AccountId,
    trust: Option<&str>,
) -> ninsho::service::SignedIn {
    use ninsho::service::{MethodKind, Proof};
    let methods = service.methods(account).await.unwrap();
    let sms = methods
        .iter()
        .find(|m| m.kind == MethodKind::Sms)
        .expect("an SMS method");
    let ticket = service
        .sign_in_send_code(account, sms, None, None)
        .await
        .unwrap();
    service
        .sign_in_complete(
            account,
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &secret_to(gateway, PHONE),
            },
            trust,
            None,
        )
        .await
        .unwrap()
}

/// One more failure in the account's run, counted the way the flows count
/// one (read, then compare-and-set one longer); the run as stored.
pub async fn record_failure<S: LimitStore + ?Sized>(
    store: &S,
    account: &AccountId,
    now: OffsetDateTime,
) -> Result<FailureRecord, StoreError> {
    loop {
        let seen = store.failures(account).await?;
        let next = FailureRecord {
            consecutive: seen.map_or(0, |r| r.consecutive) + 1,
            last_failure_at: now,
        };
        match store.replace_failures(account, seen, Some(next)).await {
            Ok(()) => return Ok(store.failures(account).await?.unwrap_or(next)),
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e),
        }
    }
}
