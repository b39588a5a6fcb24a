//! Key rotation never silently kills secrets.
//!
//! One store, three deployments of the same service over it: `before` holds
//! hashing key 1 and sealing key 1; `rotated` writes with key 2 and keeps
//! key 1 as a previous key; `retired` holds key 2 only (key 1 was retired
//! too early). A secret made before the rotation must
//!
//! - still work on `rotated`, and move to key 2 where the plain secret is at
//!   hand (a trusted-device token at its check, an authenticator seed at its
//!   use);
//! - on `retired`, give the distinct `Error::RetiredKey` (for a trusted
//!   device, the answer `DeviceCheck::RetiredKey`), never a wrong guess: the
//!   account's failure run is the same afterwards and no failure is
//!   recorded.

mod support;

use ninsho::{AccountRefusal, CodeRefusal};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use ninsho::device::DeviceCheck;
use ninsho::model::{AccountId, ChallengeId, DeviceId, DeviceRecord};

use ninsho::error::{RetiredKey, SecretKind};
use ninsho::events::{Event, RecordingEvents};
use ninsho::gateway::RecordingGateway;
use ninsho::limits::{RateLimit, SendLimits};
use ninsho::otp::Totp;
use ninsho::service::{Method, MethodKind, Proof, SignInStart, Skip, TwoFactor};
use ninsho::store::{DeviceStore, LimitStore, MemoryStore, Store, StoreError};
use ninsho::{Clock, Error, HashKey, KeyId, KeyedHasher, LockedRng, ManualClock, Refusal};
use support::{BASE, PHONE, T0, delegate_store, refusal, secret_to};
use time::Duration;

fn taro() -> AccountId {
    AccountId::new("taro")
}

fn hash_key(id: u32) -> HashKey {
    // Key 1 is the one `support::hasher` uses.
    let byte = if id == 1 {
        7
    } else {
        0x70 + u8::try_from(id).unwrap()
    };
    HashKey::new(KeyId(id), &[byte; 32]).unwrap()
}

fn seal_key(id: u32) -> ninsho::SealKey {
    // Key 1 is the one `support::sealer` uses.
    let byte = if id == 1 {
        0x5E
    } else {
        0x60 + u8::try_from(id).unwrap()
    };
    ninsho::SealKey::new(KeyId(id), &[byte; 32]).unwrap()
}

/// One deployment of the service, with its own keys and event log.
struct Deployment {
    service: TwoFactor,
    events: RecordingEvents,
}

impl Deployment {
    fn failures_recorded(&self) -> usize {
        self.events
            .events()
            .iter()
            .filter(|e| matches!(e, Event::Failed { .. } | Event::Locked { .. }))
            .count()
    }

    fn retired_reported(&self) -> Vec<RetiredKey> {
        self.events
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::RetiredKey { retired, .. } => Some(*retired),
                _ => None,
            })
            .collect()
    }
}

struct Env {
    store: Arc<MemoryStore>,
    gateway: RecordingGateway,
    clock: ManualClock,
    /// Keys 1 only.
    before: Deployment,
    /// Key 2 current, key 1 previous.
    rotated: Deployment,
    /// Key 2 only.
    retired: Deployment,
    /// Taro's recovery codes, hashed with key 1.
    recovery: Vec<String>,
}

fn deployment(
    store: Arc<dyn Store>,
    gateway: &RecordingGateway,
    clock: &ManualClock,
    seed: u64,
    hasher: KeyedHasher,
    sealer: ninsho::AeadSealer,
) -> Deployment {
    let events = RecordingEvents::new();
    let lots = RateLimit::new(1_000_000, Duration::minutes(10));
    let sealer = Arc::new(sealer.with_rng(Arc::new(LockedRng::seeded(seed + 100))));
    let service = support::two_factor_with("Example", store, gateway, clock, seed, hasher, sealer)
        .events(Arc::new(events.clone()))
        .limits(SendLimits {
            per_destination: lots,
            per_account: lots,
            per_caller: lots,
            countries: Vec::new(),
            other_countries: None,
        })
        .link_base(BASE)
        .build()
        .unwrap();
    Deployment { service, events }
}

/// Taro with a phone and two-step sign-in on, set up on `before`.
async fn env() -> Env {
    let store = Arc::new(MemoryStore::new());
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let before = deployment(
        store.clone(),
        &gateway,
        &clock,
        1,
        KeyedHasher::new(hash_key(1)),
        ninsho::AeadSealer::new(seal_key(1)),
    );
    let rotated = deployment(
        store.clone(),
        &gateway,
        &clock,
        2,
        KeyedHasher::new(hash_key(2))
            .with_previous(hash_key(1))
            .unwrap(),
        ninsho::AeadSealer::new(seal_key(2))
            .with_previous(seal_key(1))
            .unwrap(),
    );
    let retired = deployment(
        store.clone(),
        &gateway,
        &clock,
        3,
        KeyedHasher::new(hash_key(2)),
        ninsho::AeadSealer::new(seal_key(2)),
    );
    let recovery = enrol(&before.service, &gateway, &taro(), "090-1234-5678", PHONE).await;
    Env {
        store,
        gateway,
        clock,
        before,
        rotated,
        retired,
        recovery,
    }
}

/// Registers a phone for `account` and turns two-step sign-in on; returns
/// the recovery codes.
async fn enrol(
    service: &TwoFactor,
    gateway: &RecordingGateway,
    account: &AccountId,
    typed: &str,
    e164: &str,
) -> Vec<String> {
    let ticket = service
        .phone_send_code(account, typed, None, None)
        .await
        .unwrap();
    let done = service
        .phone_confirm(
            account,
            &ticket.challenge_id,
            &secret_to(gateway, e164),
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

#[track_caller]
fn retired<T: std::fmt::Debug>(result: Result<T, Error>) -> RetiredKey {
    match result {
        Err(Error::RetiredKey(retired)) => retired,
        other => panic!("expected a retired key, got {other:?}"),
    }
}

async fn method(service: &TwoFactor, kind: MethodKind) -> Method {
    match service.sign_in_begin(&taro(), None).await.unwrap() {
        SignInStart::Required { methods } => methods.into_iter().find(|m| m.kind == kind).unwrap(),
        other => panic!("two-step sign-in is on: {other:?}"),
    }
}

impl Env {
    /// Taro's run of consecutive failures.
    async fn run(&self) -> u32 {
        self.store
            .failures(&taro())
            .await
            .unwrap()
            .map_or(0, |r| r.consecutive)
    }

    /// Sends a sign-in code by SMS from `service`; its challenge and code.
    async fn send_code(&self, service: &TwoFactor) -> (ChallengeId, String) {
        let sms = method(service, MethodKind::Sms).await;
        let ticket = service
            .sign_in_send_code(&taro(), &sms, None, None)
            .await
            .unwrap();
        (ticket.challenge_id, secret_to(&self.gateway, PHONE))
    }

    /// A code that is not `code`.
    fn other_than(code: &str) -> String {
        if code == "000000" { "111111" } else { "000000" }.to_owned()
    }
}

async fn complete_code(
    service: &TwoFactor,
    challenge: &ChallengeId,
    code: &str,
) -> Result<ninsho::service::SignedIn, Error> {
    service
        .sign_in_complete(&taro(), Proof::Code { challenge, code }, None, None)
        .await
}

// ---------------------------------------------------------- one-time codes

#[tokio::test]
async fn a_code_under_a_retired_key_is_an_error_not_a_wrong_guess() {
    let env = env().await;
    let (challenge, code) = env.send_code(&env.before.service).await;
    let want = RetiredKey::new(SecretKind::OneTimeCode, KeyId(1));
    // Right or wrong, the retired deployment can't tell: neither is a
    // guess held against the user.
    for typed in [code.clone(), Env::other_than(&code)] {
        let got = retired(complete_code(&env.retired.service, &challenge, &typed).await);
        assert_eq!(got, want);
        assert_eq!(got.key_kind(), ninsho::error::KeyKind::Hashing);
    }
    assert_eq!(env.run().await, 0);
    assert_eq!(env.retired.failures_recorded(), 0);
    assert_eq!(env.retired.retired_reported(), vec![want, want]);
    // The code is not spent nor worn down: with key 1 kept as a previous
    // key, it signs in.
    complete_code(&env.rotated.service, &challenge, &code)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_right_code_under_a_held_key_verifies_beside_a_retired_one() {
    let env = env().await;
    let (challenge, old_code) = env.send_code(&env.before.service).await;
    // A resend from the deployment without key 1: the challenge has a live
    // code under each key.
    env.clock.advance(Duration::seconds(61));
    env.retired
        .service
        .resend(&taro(), &challenge, None)
        .await
        .unwrap();
    let new_code = secret_to(&env.gateway, PHONE);
    assert_ne!(old_code, new_code);
    // The first code can't be checked there...
    assert_eq!(
        retired(complete_code(&env.retired.service, &challenge, &old_code).await),
        RetiredKey::new(SecretKind::OneTimeCode, KeyId(1))
    );
    assert_eq!(env.run().await, 0);
    // ...and the second one, under a key it holds, signs in.
    complete_code(&env.retired.service, &challenge, &new_code)
        .await
        .unwrap();
    assert_eq!(env.retired.failures_recorded(), 0);
}

#[tokio::test]
async fn guesses_at_a_half_retired_challenge_stay_bounded() {
    let env = env().await;
    let (challenge, old_code) = env.send_code(&env.before.service).await;
    env.clock.advance(Duration::seconds(61));
    env.retired
        .service
        .resend(&taro(), &challenge, None)
        .await
        .unwrap();
    let new_code = secret_to(&env.gateway, PHONE);
    // Wrong guesses were compared with the code under key 2: they are not
    // held against the account, but they use up the challenge's attempts
    // (5), so they can't go on for ever.
    let mut wrong = (0..)
        .map(|n| format!("{:06}", n * 7919 % 1_000_000))
        .filter(|c| *c != old_code && *c != new_code);
    for _ in 0..5 {
        let guess = wrong.next().unwrap();
        retired(complete_code(&env.retired.service, &challenge, &guess).await);
    }
    assert_eq!(env.run().await, 0);
    assert_eq!(
        refusal(complete_code(&env.retired.service, &challenge, &new_code).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
}

// ------------------------------------------------------------------- links

#[tokio::test]
async fn a_link_under_a_retired_key_is_an_error_not_a_wrong_guess() {
    let env = env().await;
    let link = method(&env.before.service, MethodKind::Link).await;
    let ticket = env
        .before
        .service
        .sign_in_send_link(&taro(), &link, "Firefox on Linux", None, None)
        .await
        .unwrap();
    let url = secret_to(&env.gateway, PHONE);
    let token = url.strip_prefix(BASE).unwrap();
    let want = RetiredKey::new(SecretKind::Link, KeyId(1));
    assert_eq!(retired(env.retired.service.open_link(token).await), want);
    assert_eq!(retired(env.retired.service.approve_link(token).await), want);
    assert_eq!(env.run().await, 0);
    assert_eq!(env.retired.failures_recorded(), 0);
    // A token that is not even well formed is still just unknown.
    assert_eq!(
        refusal(env.retired.service.open_link(&format!("{token}x")).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    // With key 1 kept, the link works.
    env.rotated.service.approve_link(token).await.unwrap();
    let signed_in = env
        .rotated
        .service
        .sign_in_poll_link(&taro(), &ticket.challenge_id, None, None)
        .await
        .unwrap();
    assert!(signed_in.is_some());
}

// ---------------------------------------------------------- recovery codes

async fn redeem(service: &TwoFactor, code: &str) -> Result<ninsho::service::SignedIn, Error> {
    service
        .sign_in_complete(&taro(), Proof::RecoveryCode { code }, None, None)
        .await
}

#[tokio::test]
async fn recovery_codes_under_a_retired_key_are_an_error_not_a_wrong_guess() {
    let env = env().await;
    let want = RetiredKey::new(SecretKind::RecoveryCode, KeyId(1));
    // The right code, and one that is no code of the set: neither can be
    // told apart without key 1.
    for typed in [env.recovery[0].as_str(), "AAAA-BBBB-CCCC"] {
        assert_eq!(retired(redeem(&env.retired.service, typed).await), want);
    }
    assert_eq!(env.run().await, 0);
    assert_eq!(env.retired.failures_recorded(), 0);
    assert_eq!(env.retired.retired_reported(), vec![want, want]);
    // Input that can't be a recovery code at all is wrong whatever the key.
    assert_eq!(
        refusal(redeem(&env.retired.service, "0000").await),
        Refusal::Code(CodeRefusal::WrongRecoveryCode)
    );
    assert_eq!(env.run().await, 1);
    // Nothing was spent: with key 1 kept, the code signs in.
    let signed_in = redeem(&env.rotated.service, &env.recovery[0])
        .await
        .unwrap();
    assert_eq!(signed_in.recovery_codes_left, Some(9));
    assert_eq!(env.run().await, 0);
}

#[tokio::test]
async fn regenerated_recovery_codes_work_without_the_old_key() {
    let env = env().await;
    // Signed in on the rotated deployment, the user regenerates: the new
    // set is hashed with key 2, and the deployment without key 1 takes it.
    let step_up = redeem(&env.rotated.service, &env.recovery[1])
        .await
        .unwrap()
        .step_up;
    let fresh = env
        .rotated
        .service
        .regenerate_recovery_codes(&taro(), &step_up)
        .await
        .unwrap();
    let fresh = fresh.expose_secret()[0].to_owned();
    redeem(&env.retired.service, &fresh).await.unwrap();
    // And a wrong code is a wrong code again.
    assert_eq!(
        refusal(redeem(&env.retired.service, &env.recovery[2]).await),
        Refusal::Code(CodeRefusal::WrongRecoveryCode)
    );
    assert_eq!(env.run().await, 1);
}

// ---------------------------------------------------- authenticator seeds

impl Env {
    /// A step-up from an SMS sign-in on `service`.
    async fn step_up(&self, service: &TwoFactor) -> ninsho::service::StepUp {
        let (challenge, code) = self.send_code(service).await;
        complete_code(service, &challenge, &code)
            .await
            .unwrap()
            .step_up
    }

    /// Starts setting up an authenticator app on `service`.
    async fn start_app(&self, service: &TwoFactor) -> Totp {
        let step_up = self.step_up(service).await;
        let setup = service
            .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
            .await
            .unwrap();
        Totp::from_uri(setup.uri.expose_secret()).unwrap()
    }

    /// Sets up and confirms an authenticator app on `service`, then moves
    /// to the next time step.
    async fn add_app(&self, service: &TwoFactor) -> Totp {
        let app = self.start_app(service).await;
        service
            .authenticator_confirm(&taro(), &self.app_code(&app))
            .await
            .unwrap();
        self.clock.advance(Duration::seconds(30));
        app
    }

    fn app_code(&self, app: &Totp) -> String {
        app.code_at(ninsho::clock::unix_seconds(self.clock.now()))
            .to_string()
    }

    /// The key id sealed into Taro's confirmed (or pending) seed.
    async fn seed_key(&self, pending: bool) -> Option<KeyId> {
        use ninsho::store::AccountStore;
        let book = self.store.account_record(&taro()).await.unwrap().unwrap();
        let record = if pending {
            book.factors.pending_authenticator
        } else {
            book.factors.authenticator
        };
        let sealed = base32::decode(
            base32::Alphabet::Rfc4648 { padding: false },
            &record?.sealed_uri,
        )
        .unwrap();
        ninsho::AeadSealer::key_id_of(&sealed)
    }
}

async fn app_sign_in(service: &TwoFactor, code: &str) -> Result<ninsho::service::SignedIn, Error> {
    service
        .sign_in_complete(&taro(), Proof::Authenticator { code }, None, None)
        .await
}

#[tokio::test]
async fn a_seed_under_a_retired_sealing_key_is_an_error_not_a_store_failure() {
    let env = env().await;
    let app = env.add_app(&env.before.service).await;
    assert_eq!(env.seed_key(false).await, Some(KeyId(1)));
    let want = RetiredKey::new(SecretKind::Authenticator, KeyId(1));
    for typed in [env.app_code(&app), Env::other_than(&env.app_code(&app))] {
        let got = retired(app_sign_in(&env.retired.service, &typed).await);
        assert_eq!(got, want);
        assert_eq!(got.key_kind(), ninsho::error::KeyKind::Sealing);
    }
    assert_eq!(env.run().await, 0);
    assert_eq!(env.retired.failures_recorded(), 0);
    assert_eq!(env.retired.retired_reported(), vec![want, want]);
    // With key 1 kept as a previous key, the app signs in.
    app_sign_in(&env.rotated.service, &env.app_code(&app))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_seed_used_with_the_old_key_kept_moves_to_the_current_key() {
    let env = env().await;
    let app = env.add_app(&env.before.service).await;
    assert_eq!(env.seed_key(false).await, Some(KeyId(1)));
    app_sign_in(&env.rotated.service, &env.app_code(&app))
        .await
        .unwrap();
    // Sealed again with key 2 in the write that took the code.
    assert_eq!(env.seed_key(false).await, Some(KeyId(2)));
    // The code is spent all the same: it can't sign in twice.
    assert_eq!(
        refusal(app_sign_in(&env.rotated.service, &env.app_code(&app)).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    // Key 1 can go now: the same app signs in on the next step.
    env.clock.advance(Duration::seconds(30));
    app_sign_in(&env.retired.service, &env.app_code(&app))
        .await
        .unwrap();
}

#[tokio::test]
async fn racing_sign_ins_that_reseal_still_see_one_app() {
    let env = env().await;
    let app = env.add_app(&env.before.service).await;
    let rotated = deployment(
        Arc::new(support::Yielding(env.store.clone())),
        &env.gateway,
        &env.clock,
        5,
        KeyedHasher::new(hash_key(2))
            .with_previous(hash_key(1))
            .unwrap(),
        ninsho::AeadSealer::new(seal_key(2))
            .with_previous(seal_key(1))
            .unwrap(),
    );
    let code = env.app_code(&app);
    let service = rotated.service.clone();
    let results = support::race(move |_| {
        let service = service.clone();
        let code = code.clone();
        async move { app_sign_in(&service, &code).await.map(|_| ()) }
    })
    .await;
    // One sign-in took the code (and resealed the seed); those that lost
    // the race to it read the resealed seed as the same app: the code is
    // used, not unknown.
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for result in results.into_iter().filter(Result::is_err) {
        let refused = refusal(result);
        assert!(
            matches!(
                refused,
                Refusal::Code(CodeRefusal::AlreadyUsed)
                    | Refusal::Account(AccountRefusal::Locked { .. })
            ),
            "{refused:?}"
        );
    }
    assert_eq!(env.seed_key(false).await, Some(KeyId(2)));
}

#[tokio::test]
async fn confirming_a_seed_with_the_old_key_kept_seals_it_with_the_current_key() {
    let env = env().await;
    let app = env.start_app(&env.before.service).await;
    assert_eq!(env.seed_key(true).await, Some(KeyId(1)));
    env.rotated
        .service
        .authenticator_confirm(&taro(), &env.app_code(&app))
        .await
        .unwrap();
    assert_eq!(env.seed_key(true).await, None);
    assert_eq!(env.seed_key(false).await, Some(KeyId(2)));
    env.clock.advance(Duration::seconds(30));
    app_sign_in(&env.retired.service, &env.app_code(&app))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pending_seed_under_a_retired_sealing_key_is_an_error_not_a_store_failure() {
    let env = env().await;
    let app = env.start_app(&env.before.service).await;
    assert_eq!(
        retired(
            env.retired
                .service
                .authenticator_confirm(&taro(), &env.app_code(&app))
                .await
        ),
        RetiredKey::new(SecretKind::Authenticator, KeyId(1))
    );
    assert_eq!(env.run().await, 0);
    env.rotated
        .service
        .authenticator_confirm(&taro(), &env.app_code(&app))
        .await
        .unwrap();
}

// ---------------------------------------------------------- trusted devices

impl Env {
    /// Signs in by SMS on `service`, trusting the browser; its token.
    async fn trust(&self, service: &TwoFactor) -> String {
        let (challenge, code) = self.send_code(service).await;
        let signed_in = service
            .sign_in_complete(
                &taro(),
                Proof::Code {
                    challenge: &challenge,
                    code: &code,
                },
                Some("Firefox on Linux"),
                None,
            )
            .await
            .unwrap();
        let (token, _) = signed_in.device.unwrap();
        token.expose_secret().to_owned()
    }

    /// The hashing key id of the stored record of the device `token` names.
    async fn device_key(&self, token: &str) -> KeyId {
        let (id, _) = ninsho::device::parse_token(token).unwrap();
        self.store
            .device(&taro(), &id)
            .await
            .unwrap()
            .unwrap()
            .token
            .key_id
    }
}

#[tokio::test]
async fn a_device_under_a_retired_key_asks_for_the_second_factor() {
    let env = env().await;
    let token = env.trust(&env.before.service).await;
    let service = &env.retired.service;
    assert_eq!(
        service.check_device(&taro(), &token).await.unwrap(),
        DeviceCheck::RetiredKey { key_id: KeyId(1) }
    );
    // Sign-in goes on to the second step: one prompt, never a lock-out.
    assert!(matches!(
        service.sign_in_begin(&taro(), Some(&token)).await.unwrap(),
        SignInStart::Required { .. }
    ));
    assert_eq!(env.run().await, 0);
    assert_eq!(env.retired.failures_recorded(), 0);
    let want = RetiredKey::new(SecretKind::TrustedDevice, KeyId(1));
    assert_eq!(env.retired.retired_reported(), vec![want, want]);
    // Nothing was changed: with key 1 kept, the device is trusted.
    assert!(matches!(
        env.rotated
            .service
            .check_device(&taro(), &token)
            .await
            .unwrap(),
        DeviceCheck::Valid { .. }
    ));
}

#[tokio::test]
async fn a_device_checked_with_the_old_key_kept_moves_to_the_current_key() {
    let env = env().await;
    let token = env.trust(&env.before.service).await;
    assert_eq!(env.device_key(&token).await, KeyId(1));
    // Well within the refresh interval: the write is for the key alone.
    assert!(matches!(
        env.rotated
            .service
            .check_device(&taro(), &token)
            .await
            .unwrap(),
        DeviceCheck::Valid { refresh: false }
    ));
    assert_eq!(env.device_key(&token).await, KeyId(2));
    // Key 1 can go now: the device is still trusted, sign-in skips the
    // second step.
    let service = &env.retired.service;
    assert!(matches!(
        service.check_device(&taro(), &token).await.unwrap(),
        DeviceCheck::Valid { .. }
    ));
    assert_eq!(
        service.sign_in_begin(&taro(), Some(&token)).await.unwrap(),
        SignInStart::NotNeeded(Skip::TrustedDevice)
    );
    // The device list is unchanged.
    assert_eq!(service.devices(&taro()).await.unwrap().len(), 1);
}

/// A `MemoryStore` whose device writes lose a race, then fail.
#[derive(Debug)]
struct DeviceWritesFail {
    inner: Arc<MemoryStore>,
    writes: AtomicU32,
}

delegate_store!([] DeviceWritesFail, inner, support::directly =>
    ChallengeStore, LimitStore, AccountStore, VerificationStore, StepStore, PurgeStore);

#[async_trait]
impl DeviceStore for DeviceWritesFail {
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        self.inner.insert_device(record).await
    }
    async fn device(
        &self,
        account: &AccountId,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        self.inner.device(account, id).await
    }
    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        self.inner.devices(account).await
    }
    async fn replace_device(
        &self,
        _record: &DeviceRecord,
        _expected_version: u64,
    ) -> Result<(), StoreError> {
        if self.writes.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(StoreError::conflict())
        } else {
            Err(support::db_down())
        }
    }
    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError> {
        self.inner.delete_device(account, id).await
    }
    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        self.inner.delete_devices(account).await
    }
}

#[tokio::test]
async fn a_failed_rehash_never_changes_the_answer() {
    let env = env().await;
    let token = env.trust(&env.before.service).await;
    let failing = Arc::new(DeviceWritesFail {
        inner: env.store.clone(),
        writes: AtomicU32::new(0),
    });
    let rotated = deployment(
        failing.clone(),
        &env.gateway,
        &env.clock,
        4,
        KeyedHasher::new(hash_key(2))
            .with_previous(hash_key(1))
            .unwrap(),
        ninsho::AeadSealer::new(seal_key(2)),
    );
    // A lost race, then a store outage: the device is trusted all the same.
    for _ in 0..2 {
        assert!(matches!(
            rotated.service.check_device(&taro(), &token).await.unwrap(),
            DeviceCheck::Valid { .. }
        ));
    }
    assert_eq!(failing.writes.load(Ordering::SeqCst), 2);
    assert_eq!(env.device_key(&token).await, KeyId(1));
}

// --------------------------------------------------------------- key usage

fn jiro() -> AccountId {
    AccountId::new("jiro")
}

fn keys(pairs: &[(u32, u64)]) -> std::collections::BTreeMap<KeyId, u64> {
    pairs.iter().map(|&(k, n)| (KeyId(k), n)).collect()
}

#[tokio::test]
async fn key_usage_counts_what_still_needs_each_key_and_sums_over_accounts() {
    let env = env().await;
    let app = env.add_app(&env.before.service).await;
    let token = env.trust(&env.before.service).await;
    // A revoked device needs no key.
    let revoked = env.trust(&env.before.service).await;
    let (revoked_id, _) = ninsho::device::parse_token(&revoked).unwrap();
    env.before
        .service
        .revoke_device(&taro(), &revoked_id)
        .await
        .unwrap();
    enrol(
        &env.before.service,
        &env.gateway,
        &jiro(),
        "080-1111-2222",
        "+818011112222",
    )
    .await;

    let service = &env.rotated.service;
    let taro_before = service.key_usage(&taro()).await.unwrap();
    assert_eq!(taro_before.recovery_codes, keys(&[(1, 10)]));
    assert_eq!(taro_before.trusted_devices, keys(&[(1, 1)]));
    assert_eq!(taro_before.authenticators, keys(&[(1, 1)]));
    assert_eq!(taro_before.authenticators_unlabelled, 0);
    assert_eq!(taro_before.hashing(KeyId(1)), 11);
    assert_eq!(taro_before.sealing(KeyId(1)), 1);
    let jiro_usage = service.key_usage(&jiro()).await.unwrap();
    assert_eq!(jiro_usage.hashing(KeyId(1)), 10);
    assert_eq!(
        service.key_usage(&AccountId::new("nobody")).await.unwrap(),
        ninsho::service::KeyUsage::default()
    );

    // Taro signs in with the app and the trusted device: both move.
    app_sign_in(service, &env.app_code(&app)).await.unwrap();
    service.check_device(&taro(), &token).await.unwrap();
    let taro_after = service.key_usage(&taro()).await.unwrap();
    assert_eq!(taro_after.recovery_codes, keys(&[(1, 10)]));
    assert_eq!(taro_after.trusted_devices, keys(&[(2, 1)]));
    assert_eq!(taro_after.authenticators, keys(&[(2, 1)]));
    // The recovery codes can't move without their plain text: they hold
    // key 1 until Taro regenerates them.
    assert_eq!(taro_after.hashing(KeyId(1)), 10);

    let total: ninsho::service::KeyUsage = [&taro_after, &jiro_usage].into_iter().sum();
    assert_eq!(total.recovery_codes, keys(&[(1, 20)]));
    assert_eq!(total.trusted_devices, keys(&[(2, 1)]));
    assert_eq!(total.authenticators, keys(&[(2, 1)]));
    let mut extended = taro_after.clone();
    extended.extend([jiro_usage.clone()]);
    assert_eq!(extended, total);

    env.clock.advance(Duration::seconds(30));
    let step_up = app_sign_in(service, &env.app_code(&app))
        .await
        .unwrap()
        .step_up;
    service
        .regenerate_recovery_codes(&taro(), &step_up)
        .await
        .unwrap();
    let migrated = service.key_usage(&taro()).await.unwrap();
    assert_eq!(migrated.hashing(KeyId(1)), 0);
    assert_eq!(migrated.sealing(KeyId(1)), 0);
    assert_eq!(migrated.recovery_codes, keys(&[(2, 10)]));
}

#[tokio::test]
async fn reseal_authenticator_moves_every_seed_ahead_of_use() {
    let env = env().await;
    let app = env.add_app(&env.before.service).await;
    // A second app being set up, not yet confirmed.
    env.start_app(&env.before.service).await;
    assert_eq!(env.seed_key(false).await, Some(KeyId(1)));
    assert_eq!(env.seed_key(true).await, Some(KeyId(1)));

    // Without key 1 nothing can be moved, and nothing is written.
    assert_eq!(
        retired(env.retired.service.reseal_authenticator(&taro()).await),
        RetiredKey::new(SecretKind::Authenticator, KeyId(1))
    );
    assert_eq!(env.seed_key(false).await, Some(KeyId(1)));

    let service = &env.rotated.service;
    assert_eq!(service.reseal_authenticator(&taro()).await.unwrap(), 2);
    assert_eq!(env.seed_key(false).await, Some(KeyId(2)));
    assert_eq!(env.seed_key(true).await, Some(KeyId(2)));
    assert_eq!(service.reseal_authenticator(&taro()).await.unwrap(), 0);
    assert_eq!(
        service
            .reseal_authenticator(&AccountId::new("nobody"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        service.key_usage(&taro()).await.unwrap().sealing(KeyId(1)),
        0
    );
    // Key 1 can go: the app signs in without it.
    app_sign_in(&env.retired.service, &env.app_code(&app))
        .await
        .unwrap();
}
