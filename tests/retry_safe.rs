//! Completing a sign-in is retry-safe: when the store's reply is lost after
//! the write that spends the secret has landed, the host sees an error; a
//! retry of the same proof **from the same sign-in attempt** then gets the
//! same success, while a replay from any other attempt stays refused.
//!
//! The store wrapper here lets the chosen write land, then answers with an
//! error, as a stalled Redis or a dropped PostgreSQL connection does.

mod support;

use ninsho::CodeRefusal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use ninsho::gateway::RecordingGateway;
use ninsho::model::{AccountId, AccountRecord, ChallengeRecord};
use ninsho::otp::Totp;
use ninsho::service::{MethodKind, Proof, SignInAttempt, SignedIn, TwoFactor};
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ClaimChanges, Commit, Committed, Load, Loaded,
    MemoryStore, StepStore, StoreError, StoreErrorKind,
};
use ninsho::{Clock, Error, ManualClock, Refusal};
use support::{
    BASE, PHONE, T0, delegate_store, enrol, no_send_limits, refusal, secret_to, sms_sign_in,
    store_error, two_factor,
};
use time::{Duration, OffsetDateTime};

/// A `MemoryStore` whose next challenge replace or contact commit, once
/// armed, lands and then reports the store unavailable.
#[derive(Debug, Default)]
struct LostReply {
    inner: MemoryStore,
    armed: AtomicBool,
}

impl LostReply {
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn lost<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match result {
            Ok(_) if self.armed.swap(false, Ordering::SeqCst) => Err(StoreError::unavailable(
                std::io::Error::other("the reply was lost"),
            )),
            other => other,
        }
    }
}

delegate_store!([] LostReply, inner, support::directly =>
    LimitStore, DeviceStore, VerificationStore, PurgeStore);

#[async_trait]
impl StepStore for LostReply {
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        self.inner.load(load).await
    }
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        // The commits that spend a secret: a code consumed, or a record
        // (with its recovery codes) written.
        let consumes = commit.record.is_some()
            || commit
                .challenge
                .is_some_and(|c| c.record().state == ninsho::model::ChallengeState::Consumed);
        let result = self.inner.commit(commit, now).await;
        if consumes { self.lost(result) } else { result }
    }
}

#[async_trait]
impl ChallengeStore for LostReply {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.inner.insert_challenge(record).await
    }
    async fn challenge(
        &self,
        id: &ninsho::model::ChallengeId,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        self.inner.challenge(id).await
    }
    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        // Only the write that consumes: the one the reply of matters.
        let consumes = record.state == ninsho::model::ChallengeState::Consumed;
        let result = self.inner.replace_challenge(record, expected_version).await;
        if consumes { self.lost(result) } else { result }
    }
}

#[async_trait]
impl AccountStore for LostReply {
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.inner.account_record(account).await
    }
    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        self.inner.claim_owner(key).await
    }
    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        let result = self
            .inner
            .commit_account(book, expected_version, changes)
            .await;
        self.lost(result)
    }
    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        self.inner.delete_account(account).await
    }
}

struct Env {
    service: TwoFactor,
    store: Arc<LostReply>,
    gateway: RecordingGateway,
    clock: ManualClock,
    recovery: Vec<String>,
}

fn taro() -> AccountId {
    AccountId::new("taro")
}

async fn env() -> Env {
    let store = Arc::new(LostReply::default());
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = two_factor("Example", store.clone(), &gateway, &clock, 9)
        .limits(no_send_limits())
        .link_base(BASE)
        .build()
        .unwrap();
    let recovery = enrol(&service, &gateway, &taro()).await;
    Env {
        service,
        store,
        gateway,
        clock,
        recovery,
    }
}

impl Env {
    async fn complete(
        &self,
        proof: Proof<'_>,
        attempt: Option<&SignInAttempt>,
    ) -> Result<SignedIn, Error> {
        self.service
            .sign_in_complete(&taro(), proof, Some("Firefox on Linux"), attempt)
            .await
    }

    /// A lost reply, the retry from the same attempt, and replays from
    /// another attempt and from none.
    async fn lose_then_retry(&self, proof: Proof<'_>) -> SignedIn {
        let attempt = self.service.new_attempt().unwrap();
        self.store.arm();
        assert_eq!(
            store_error(self.complete(proof, Some(&attempt)).await),
            StoreErrorKind::Unavailable,
            "the reply of the write that spent the secret was lost"
        );
        let retried = self.complete(proof, Some(&attempt)).await.unwrap();
        self.service
            .check_step_up(&taro(), &retried.step_up)
            .await
            .unwrap();
        // Again from the same attempt: still the same success.
        self.complete(proof, Some(&attempt)).await.unwrap();
        let other = self.service.new_attempt().unwrap();
        assert_eq!(
            refusal(self.complete(proof, Some(&other)).await),
            Refusal::Code(CodeRefusal::AlreadyUsed),
            "a replay from another attempt"
        );
        assert_eq!(
            refusal(self.complete(proof, None).await),
            Refusal::Code(CodeRefusal::AlreadyUsed),
            "a replay without an attempt"
        );
        retried
    }
}

#[tokio::test]
async fn a_sent_code_whose_reply_was_lost_signs_in_on_retry() {
    let env = env().await;
    let methods = env.service.methods(&taro()).await.unwrap();
    let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
    let ticket = env
        .service
        .sign_in_send_code(&taro(), sms, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    let signed_in = env
        .lose_then_retry(Proof::Code {
            challenge: &ticket.challenge_id,
            code: &code,
        })
        .await;
    assert_eq!(signed_in.method, MethodKind::Sms);
}

#[tokio::test]
async fn a_recovery_code_whose_reply_was_lost_signs_in_on_retry() {
    let env = env().await;
    let signed_in = env
        .lose_then_retry(Proof::RecoveryCode {
            code: &env.recovery[0],
        })
        .await;
    assert_eq!(signed_in.recovery_codes_left, Some(9));
    assert_eq!(
        env.service.recovery_codes_left(&taro()).await.unwrap(),
        Some(9),
        "spent once"
    );
}

#[tokio::test]
async fn an_authenticator_code_whose_reply_was_lost_signs_in_on_retry() {
    let env = env().await;
    let step_up = sms_sign_in(&env.service, &env.gateway, &taro(), None)
        .await
        .step_up;
    let setup = env
        .service
        .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    let now = || ninsho::clock::unix_seconds(env.clock.now());
    env.service
        .authenticator_confirm(&taro(), &app.code_at(now()).to_string())
        .await
        .unwrap();
    env.clock.advance(Duration::seconds(30));
    let code = app.code_at(now()).to_string();
    env.lose_then_retry(Proof::Authenticator { code: &code })
        .await;
    // The next step's code from the same attempt is a new sign-in, not a
    // retry; it works too.
    env.clock.advance(Duration::seconds(30));
    let code = app.code_at(now()).to_string();
    env.complete(Proof::Authenticator { code: &code }, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_collected_link_approval_whose_reply_was_lost_is_collected_again() {
    let env = env().await;
    let methods = env.service.methods(&taro()).await.unwrap();
    let link = methods.iter().find(|m| m.kind == MethodKind::Link).unwrap();
    let ticket = env
        .service
        .sign_in_send_link(&taro(), link, "Firefox on Linux", None, None)
        .await
        .unwrap();
    let url = secret_to(&env.gateway, PHONE);
    env.service
        .approve_link(url.strip_prefix(BASE).unwrap())
        .await
        .unwrap();
    let attempt = env.service.new_attempt().unwrap();
    let poll = async |attempt: Option<&SignInAttempt>| {
        env.service
            .sign_in_poll_link(&taro(), &ticket.challenge_id, None, attempt)
            .await
    };
    env.store.arm();
    assert_eq!(
        store_error(poll(Some(&attempt)).await),
        StoreErrorKind::Unavailable
    );
    assert!(poll(Some(&attempt)).await.unwrap().is_some());
    let other = env.service.new_attempt().unwrap();
    assert_eq!(
        refusal(poll(Some(&other)).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert_eq!(
        refusal(poll(None).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
}
