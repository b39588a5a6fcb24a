//! `Challenges` when the store or the gateway fails.
//!
//! mockall mocks inject pure failures (and prove what is *not* called); a
//! hand-written store that delegates to a real `MemoryStore` and fails on
//! cue proves that nothing is lost when a call fails.

use ninsho::{CodeRefusal, SendRefusal};
use std::error::Error as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::challenges_builder;
use super::support::{BASE, MockDb, PHONE, T0, db_down, delegate_store, phone, refusal, take};
use async_trait::async_trait;
use mockall::{Sequence, mock};
use ninsho::events::{Event, RecordingEvents};
use ninsho::flows::{Challenges, IssueRequest, LinkRequest, LinkStatus};
use ninsho::gateway::{
    DeliveryError, DeliveryErrorKind, Gateway, Message, Receipt, RecordingGateway,
};
use ninsho::model::{
    AccountId, ChallengeId, ChallengeRecord, ChallengeState, Channel, Destination, FailureRecord,
    Purpose,
};
use ninsho::store::{
    ChallengeStore, LimitStore, MemoryStore, Store, StoreError, StoreErrorKind, WindowCount,
};
use ninsho::{Error, ManualClock, Refusal};
use time::{Duration, OffsetDateTime};

mock! {
    #[derive(Debug)]
    pub Sender {}

    #[async_trait]
    impl Gateway for Sender {
        async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError>;
    }
}

/// A real `MemoryStore` that fails on cue.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    /// `replace_challenge` calls to fail with `Unavailable` (writing nothing).
    fail_replace: AtomicU32,
    /// `replace_challenge` calls to lose to a real concurrent writer: the
    /// stored record gets one more failed attempt and a new version, then
    /// the call reports a conflict.
    race_replace: AtomicU32,
    /// `clear_failures` calls to fail with `Unavailable`.
    fail_clear: AtomicU32,
    replace_calls: AtomicU32,
}

#[async_trait]
impl ChallengeStore for Flaky {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.inner.insert_challenge(record).await
    }

    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        self.inner.challenge(id).await
    }

    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.replace_calls.fetch_add(1, Ordering::SeqCst);
        if take(&self.fail_replace) {
            return Err(db_down());
        }
        if take(&self.race_replace) {
            let mut winner = self.inner.challenge(&record.id).await?.expect("stored");
            let version = winner.version;
            winner.version += 1;
            winner.failed_attempts += 1;
            self.inner.replace_challenge(&winner, version).await?;
            return Err(StoreError::conflict());
        }
        self.inner.replace_challenge(record, expected_version).await
    }
}

#[async_trait]
impl LimitStore for Flaky {
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        self.inner.hit(key, window, now).await
    }

    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        self.inner.replace_failures(account, expected, next).await
    }

    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        self.inner.failures(account).await
    }

    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        if take(&self.fail_clear) {
            return Err(db_down());
        }
        self.inner.clear_failures(account).await
    }
}

delegate_store!([] Flaky, inner, super::support::directly =>
    DeviceStore, AccountStore, VerificationStore, StepStore, PurgeStore);

fn clock() -> ManualClock {
    ManualClock::at_unix(T0).unwrap()
}

fn build(
    store: Arc<dyn Store>,
    gateway: Arc<dyn Gateway>,
    clock: &ManualClock,
    events: &RecordingEvents,
) -> Challenges {
    challenges_builder(store, gateway, clock, events, 3)
        .build()
        .unwrap()
}

/// A challenge issued for real: its stored record and its code.
async fn real_challenge(account: Option<AccountId>) -> (ChallengeRecord, String) {
    let store = Arc::new(MemoryStore::new());
    let gateway = RecordingGateway::new();
    let challenges = build(
        store.clone(),
        Arc::new(gateway.clone()),
        &clock(),
        &RecordingEvents::new(),
    );
    let mut request = IssueRequest::new(phone(), Purpose::SignIn);
    if let Some(account) = account {
        request = request.account(account);
    }
    let ticket = challenges.issue(request).await.unwrap();
    let code = gateway
        .last_secret_to(PHONE)
        .unwrap()
        .expose_secret()
        .to_owned();
    let record = store
        .challenge(&ticket.challenge_id)
        .await
        .unwrap()
        .unwrap();
    (record, code)
}

fn other_code(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[track_caller]
fn assert_store_error<T: std::fmt::Debug>(result: Result<T, Error>, kind: StoreErrorKind) {
    match result {
        Err(err @ Error::Store(_)) => {
            let Error::Store(store_error) = &err else {
                unreachable!()
            };
            assert_eq!(store_error.kind(), kind);
            assert!(err.is_infrastructure());
            assert_eq!(err.refusal(), None);
            if kind == StoreErrorKind::Unavailable {
                let mut chain = Vec::new();
                let mut source = err.source();
                while let Some(s) = source {
                    chain.push(s.to_string());
                    source = s.source();
                }
                assert!(chain.iter().any(|s| s == "db down"), "{chain:?}");
            }
        }
        other => panic!("expected a store error, got {other:?}"),
    }
}

/// A mock store that serves `record` and fails every `replace_challenge`.
fn db_failing_replace(record: &ChallengeRecord, replaces: usize) -> MockDb {
    let mut db = MockDb::new();
    let served = record.clone();
    db.expect_challenge()
        .returning(move |_| Ok(Some(served.clone())));
    db.expect_replace_challenge()
        .times(replaces)
        .returning(|_, _| Err(db_down()));
    db
}

// ---------------------------------------------------------------- store failures

#[tokio::test]
async fn store_error_on_replace_during_verify_is_never_ok() {
    let (record, code) = real_challenge(None).await;
    let events = RecordingEvents::new();
    let challenges = build(
        Arc::new(db_failing_replace(&record, 2)),
        Arc::new(RecordingGateway::new()),
        &clock(),
        &events,
    );
    // The right code: not verified.
    assert_store_error(
        challenges
            .verify(&record.id, &code, &Purpose::SignIn, &phone())
            .await,
        StoreErrorKind::Unavailable,
    );
    // A wrong code: a store error, not a refusal that pretends it was counted.
    assert_store_error(
        challenges
            .verify(&record.id, &other_code(&code), &Purpose::SignIn, &phone())
            .await,
        StoreErrorKind::Unavailable,
    );
    assert!(
        !events
            .events()
            .iter()
            .any(|e| matches!(e, Event::Verified { .. } | Event::Failed { .. })),
        "{:?}",
        events.events()
    );
}

#[tokio::test]
async fn store_error_on_the_commit_with_an_account_is_never_ok() {
    // A guess at an account's code is counted in the commit that writes the
    // challenge; when that commit fails, the answer is the store error,
    // right code or not, and nothing is cleared or taken back afterwards.
    // (The mock writes the run before the challenge, so it sees the count.)
    let account = AccountId::new("user-1");
    let (record, code) = real_challenge(Some(account.clone())).await;
    let mut db = db_failing_replace(&record, 2);
    db.expect_failures().times(2).returning(|_| Ok(None));
    db.expect_account_record().times(2).returning(|_| Ok(None));
    db.expect_replace_failures()
        .times(2)
        .returning(|_, expected, next| {
            // The right code ends the run, the wrong one is its first
            // failure; both in the commit that fails.
            assert!(expected.is_none());
            assert!(next.is_none_or(|r| r.consecutive == 1));
            Ok(())
        });
    db.expect_clear_failures().times(0);
    let challenges = build(
        Arc::new(db),
        Arc::new(RecordingGateway::new()),
        &clock(),
        &RecordingEvents::new(),
    );
    for typed in [code.clone(), other_code(&code)] {
        assert_store_error(
            challenges
                .verify(&record.id, &typed, &Purpose::SignIn, &phone())
                .await,
            StoreErrorKind::Unavailable,
        );
    }
}

#[tokio::test]
async fn failed_replace_loses_nothing() {
    let store = Arc::new(Flaky::default());
    let gateway = RecordingGateway::new();
    let challenges = build(
        store.clone(),
        Arc::new(gateway.clone()),
        &clock(),
        &RecordingEvents::new(),
    );
    let ticket = challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap();
    let id = ticket.challenge_id;
    let code = gateway
        .last_secret_to(PHONE)
        .unwrap()
        .expose_secret()
        .to_owned();
    let before = store.challenge(&id).await.unwrap().unwrap();

    // A wrong code while the store is down: not counted, and not reported as counted.
    store.fail_replace.store(1, Ordering::SeqCst);
    assert_store_error(
        challenges
            .verify(&id, &other_code(&code), &Purpose::SignIn, &phone())
            .await,
        StoreErrorKind::Unavailable,
    );
    // The right code while the store is down: not verified, not consumed.
    store.fail_replace.store(1, Ordering::SeqCst);
    assert_store_error(
        challenges
            .verify(&id, &code, &Purpose::SignIn, &phone())
            .await,
        StoreErrorKind::Unavailable,
    );
    let after = store.challenge(&id).await.unwrap().unwrap();
    assert_eq!(after.version, before.version);
    assert_eq!(after.state, ChallengeState::Pending);
    assert_eq!(after.failed_attempts, 0);

    // The store is back: everything works as if nothing had happened.
    assert_eq!(
        refusal(
            challenges
                .verify(&id, &other_code(&code), &Purpose::SignIn, &phone())
                .await
        ),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    let verified = challenges
        .verify(&id, &code, &Purpose::SignIn, &phone())
        .await
        .unwrap();
    assert_eq!(verified.challenge_id, id);
    assert_eq!(store.replace_calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn failed_replace_during_resend_and_link_decisions_loses_nothing() {
    let store = Arc::new(Flaky::default());
    let gateway = RecordingGateway::new();
    let clock = clock();
    let challenges = build(
        store.clone(),
        Arc::new(gateway.clone()),
        &clock,
        &RecordingEvents::new(),
    );
    let ticket = challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap();
    clock.advance(Duration::seconds(60));
    store.fail_replace.store(1, Ordering::SeqCst);
    assert_store_error(
        challenges.resend(&ticket.challenge_id, None).await,
        StoreErrorKind::Unavailable,
    );
    assert_eq!(
        gateway.messages().len(),
        1,
        "nothing sent without a stored code"
    );
    let resent = challenges.resend(&ticket.challenge_id, None).await.unwrap();
    assert_eq!(resent.sends_left, 3);

    let link = challenges
        .issue_link(LinkRequest::new(
            Destination::email("taro@example.com").unwrap(),
            Purpose::SignIn,
            "Chrome",
        ))
        .await
        .unwrap();
    let url = gateway
        .last_secret_to("taro@example.com")
        .unwrap()
        .expose_secret()
        .to_owned();
    let token = url.strip_prefix(BASE).unwrap();
    store.fail_replace.store(1, Ordering::SeqCst);
    assert_store_error(
        challenges.approve_link(token).await,
        StoreErrorKind::Unavailable,
    );
    assert!(matches!(
        challenges
            .poll_link(&link.challenge_id, &Purpose::SignIn)
            .await,
        Ok(LinkStatus::Pending { .. })
    ));
    challenges.approve_link(token).await.unwrap();
    store.fail_replace.store(1, Ordering::SeqCst);
    assert_store_error(
        challenges
            .poll_link(&link.challenge_id, &Purpose::SignIn)
            .await,
        StoreErrorKind::Unavailable,
    );
    assert!(matches!(
        challenges
            .poll_link(&link.challenge_id, &Purpose::SignIn)
            .await,
        Ok(LinkStatus::Approved(_))
    ));
}

#[tokio::test]
async fn store_error_reading_a_challenge() {
    let mut db = MockDb::new();
    db.expect_challenge().returning(|_| Err(db_down()));
    db.expect_replace_challenge().times(0);
    db.expect_hit().times(0);
    let mut sender = MockSender::new();
    sender.expect_send().times(0);
    let challenges = build(
        Arc::new(db),
        Arc::new(sender),
        &clock(),
        &RecordingEvents::new(),
    );
    let id = ChallengeId::from_bytes([1; 16]);
    assert_store_error(
        challenges
            .verify(&id, "123456", &Purpose::SignIn, &phone())
            .await,
        StoreErrorKind::Unavailable,
    );
    assert_store_error(
        challenges.resend(&id, None).await,
        StoreErrorKind::Unavailable,
    );
    assert_store_error(
        challenges.another_option(&id, None).await,
        StoreErrorKind::Unavailable,
    );
    assert_store_error(
        challenges.poll_link(&id, &Purpose::SignIn).await,
        StoreErrorKind::Unavailable,
    );
    let token = format!("{id}.{}", "a".repeat(52));
    assert_store_error(
        challenges.open_link(&token).await,
        StoreErrorKind::Unavailable,
    );
    assert_store_error(
        challenges.approve_link(&token).await,
        StoreErrorKind::Unavailable,
    );
}

#[tokio::test]
async fn store_error_on_hit_during_issue_sends_nothing() {
    let mut db = MockDb::new();
    db.expect_hit()
        .withf(|key, _, _| key.starts_with("dest:"))
        .times(2)
        .returning(|_, _, _| Err(db_down()));
    db.expect_insert_challenge().times(0);
    db.expect_failures().returning(|_| Ok(None));
    db.expect_account_record().returning(|_| Ok(None));
    let mut sender = MockSender::new();
    sender.expect_send().times(0);
    let events = RecordingEvents::new();
    let challenges = build(Arc::new(db), Arc::new(sender), &clock(), &events);
    assert_store_error(
        challenges
            .issue(IssueRequest::new(phone(), Purpose::SignIn).account(AccountId::new("u")))
            .await,
        StoreErrorKind::Unavailable,
    );
    assert_store_error(
        challenges
            .issue_link(LinkRequest::new(phone(), Purpose::SignIn, "Chrome"))
            .await,
        StoreErrorKind::Unavailable,
    );
    assert!(events.events().is_empty(), "{:?}", events.events());
}

#[tokio::test]
async fn store_error_on_insert_sends_nothing() {
    let mut db = MockDb::new();
    db.expect_hit().returning(|_, window, now| {
        Ok(WindowCount {
            count: 1,
            resets_at: now + window,
        })
    });
    db.expect_insert_challenge()
        .times(1)
        .returning(|_| Err(db_down()));
    let mut sender = MockSender::new();
    sender.expect_send().times(0);
    let challenges = build(
        Arc::new(db),
        Arc::new(sender),
        &clock(),
        &RecordingEvents::new(),
    );
    assert_store_error(
        challenges
            .issue(IssueRequest::new(phone(), Purpose::SignIn))
            .await,
        StoreErrorKind::Unavailable,
    );
}

#[tokio::test]
async fn conflict_once_is_retried_with_a_fresh_read() {
    let (record, code) = real_challenge(None).await;
    let mut db = MockDb::new();
    let served = record.clone();
    db.expect_challenge()
        .times(2)
        .returning(move |_| Ok(Some(served.clone())));
    let mut seq = Sequence::new();
    db.expect_replace_challenge()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(StoreError::conflict()));
    let version = record.version;
    db.expect_replace_challenge()
        .withf(move |next, expected| {
            *expected == version
                && next.version == version + 1
                && next.state == ChallengeState::Consumed
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let events = RecordingEvents::new();
    let challenges = build(
        Arc::new(db),
        Arc::new(RecordingGateway::new()),
        &clock(),
        &events,
    );
    let verified = challenges
        .verify(&record.id, &code, &Purpose::SignIn, &phone())
        .await
        .unwrap();
    assert_eq!(verified.challenge_id, record.id);
    let verified_events = events
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Verified { .. }))
        .count();
    assert_eq!(verified_events, 1);
}

#[tokio::test]
async fn conflict_with_a_real_concurrent_write_verifies_exactly_once() {
    let store = Arc::new(Flaky::default());
    let gateway = RecordingGateway::new();
    let events = RecordingEvents::new();
    let challenges = build(store.clone(), Arc::new(gateway.clone()), &clock(), &events);
    let ticket = challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap();
    let id = ticket.challenge_id;
    let code = gateway
        .last_secret_to(PHONE)
        .unwrap()
        .expose_secret()
        .to_owned();

    // A wrong code loses a race to another wrong code: both are counted.
    store.race_replace.store(1, Ordering::SeqCst);
    assert_eq!(
        refusal(
            challenges
                .verify(&id, &other_code(&code), &Purpose::SignIn, &phone())
                .await
        ),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(3)
        })
    );
    assert_eq!(
        store.challenge(&id).await.unwrap().unwrap().failed_attempts,
        2
    );

    // The right code loses a race to a wrong one: re-read, still verified, once.
    store.race_replace.store(1, Ordering::SeqCst);
    let calls_before = store.replace_calls.load(Ordering::SeqCst);
    let verified = challenges
        .verify(&id, &code, &Purpose::SignIn, &phone())
        .await
        .unwrap();
    assert_eq!(verified.challenge_id, id);
    assert_eq!(store.replace_calls.load(Ordering::SeqCst) - calls_before, 2);
    let stored = store.challenge(&id).await.unwrap().unwrap();
    assert_eq!(stored.state, ChallengeState::Consumed);
    assert_eq!(stored.failed_attempts, 3);
    assert_eq!(
        refusal(
            challenges
                .verify(&id, &code, &Purpose::SignIn, &phone())
                .await
        ),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    let verified_events = events
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Verified { .. }))
        .count();
    assert_eq!(verified_events, 1);
}

#[tokio::test]
async fn store_error_after_a_right_code_leaves_it_usable() {
    let store = Arc::new(Flaky::default());
    let gateway = RecordingGateway::new();
    let challenges = build(
        store.clone(),
        Arc::new(gateway.clone()),
        &clock(),
        &RecordingEvents::new(),
    );
    let account = AccountId::new("user-1");
    let ticket = challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn).account(account))
        .await
        .unwrap();
    let code = gateway
        .last_secret_to(PHONE)
        .unwrap()
        .expose_secret()
        .to_owned();
    store.fail_clear.store(1, Ordering::SeqCst);
    let first = challenges
        .verify(&ticket.challenge_id, &code, &Purpose::SignIn, &phone())
        .await;
    if let Err(err) = first {
        assert!(matches!(err, Error::Store(_)), "{err:?}");
        let retry = challenges
            .verify(&ticket.challenge_id, &code, &Purpose::SignIn, &phone())
            .await;
        assert!(
            retry.is_ok(),
            "verify said Error::Store (nothing consumed) but the retry got {retry:?}"
        );
    }
}

#[tokio::test]
async fn store_error_while_collecting_an_approval_loses_nothing() {
    let store = Arc::new(Flaky::default());
    let gateway = RecordingGateway::new();
    let challenges = build(
        store.clone(),
        Arc::new(gateway.clone()),
        &clock(),
        &RecordingEvents::new(),
    );
    let ticket = challenges
        .issue_link(
            LinkRequest::new(phone(), Purpose::SignIn, "Chrome").account(AccountId::new("u")),
        )
        .await
        .unwrap();
    let url = gateway
        .last_secret_to(PHONE)
        .unwrap()
        .expose_secret()
        .to_owned();
    challenges
        .approve_link(url.strip_prefix(BASE).unwrap())
        .await
        .unwrap();
    store.fail_clear.store(1, Ordering::SeqCst);
    let first = challenges
        .poll_link(&ticket.challenge_id, &Purpose::SignIn)
        .await;
    if let Err(err) = first {
        assert!(matches!(err, Error::Store(_)), "{err:?}");
        let retry = challenges
            .poll_link(&ticket.challenge_id, &Purpose::SignIn)
            .await;
        assert!(
            matches!(retry, Ok(LinkStatus::Approved(_))),
            "poll said Error::Store but the approval is gone: {retry:?}"
        );
    }
}

#[tokio::test]
async fn store_error_after_a_fallback_delivery_still_returns_the_ticket() {
    let store = Arc::new(Flaky::default());
    let gateway = RecordingGateway::new();
    gateway.fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
    let challenges = build(
        store.clone(),
        Arc::new(gateway.clone()),
        &clock(),
        &RecordingEvents::new(),
    );
    store.fail_replace.store(1, Ordering::SeqCst);
    let result = challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await;
    assert_eq!(gateway.messages().len(), 1, "the voice call went out");
    let ticket = result.expect("a delivered code comes with its ticket");
    let code = gateway
        .last_secret_to(PHONE)
        .unwrap()
        .expose_secret()
        .to_owned();
    challenges
        .verify(&ticket.challenge_id, &code, &Purpose::SignIn, &phone())
        .await
        .unwrap();
}

// ---------------------------------------------------------------- gateway failures

type Sent = Arc<Mutex<Vec<(Channel, String, String)>>>;

fn record_into(sent: &Sent, message: &Message) {
    sent.lock().unwrap().push((
        message.channel,
        message.to.clone(),
        message.secret.as_ref().unwrap().expose_secret().to_owned(),
    ));
}

#[tokio::test]
async fn refused_sms_moves_to_a_voice_send() {
    let sent: Sent = Arc::default();
    let mut sender = MockSender::new();
    let mut seq = Sequence::new();
    let log = sent.clone();
    sender
        .expect_send()
        .withf(|m| m.channel == Channel::Sms && m.to == PHONE)
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |m| {
            record_into(&log, m);
            Err(DeliveryError::refused("carrier block"))
        });
    let log = sent.clone();
    sender
        .expect_send()
        .withf(|m| m.channel == Channel::Voice && m.to == PHONE)
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |m| {
            record_into(&log, m);
            Ok(Receipt::new(Some("voice-1".into())))
        });
    let events = RecordingEvents::new();
    let challenges = build(
        Arc::new(MemoryStore::new()),
        Arc::new(sender),
        &clock(),
        &events,
    );
    let ticket = challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap();
    assert_eq!(ticket.channel, Channel::Voice);
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].2, sent[1].2, "the same code on both channels");
    assert!(events.events().contains(&Event::Delivered {
        challenge: ticket.challenge_id,
        channel: Channel::Voice,
        provider_id: Some("voice-1".into()),
    }));
    let verified = challenges
        .verify(&ticket.challenge_id, &sent[1].2, &Purpose::SignIn, &phone())
        .await
        .unwrap();
    assert_eq!(verified.channel, Channel::Voice);
}

#[tokio::test]
async fn invalid_destination_does_not_fall_back() {
    let mut sender = MockSender::new();
    sender
        .expect_send()
        .withf(|m| m.channel == Channel::Sms)
        .times(1)
        .returning(|_| Err(DeliveryError::invalid_destination("no such number")));
    sender
        .expect_send()
        .withf(|m| m.channel != Channel::Sms)
        .times(0);
    let challenges = build(
        Arc::new(MemoryStore::new()),
        Arc::new(sender),
        &clock(),
        &RecordingEvents::new(),
    );
    let err = challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap_err();
    match &err {
        Error::Delivery {
            channel, source, ..
        } => {
            assert_eq!(*channel, Channel::Sms);
            assert_eq!(source.kind(), DeliveryErrorKind::InvalidDestination);
            assert_eq!(source.source().unwrap().to_string(), "no such number");
        }
        other => panic!("expected a delivery error, got {other:?}"),
    }
    assert!(!err.is_infrastructure());
}

#[tokio::test]
async fn transient_gateway_failure_is_not_retried_elsewhere() {
    let mut sender = MockSender::new();
    sender
        .expect_send()
        .times(1)
        .returning(|_| Err(DeliveryError::transient("timeout")));
    let challenges = build(
        Arc::new(MemoryStore::new()),
        Arc::new(sender),
        &clock(),
        &RecordingEvents::new(),
    );
    let err = challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Delivery { channel: Channel::Sms, source, .. } if source.kind() == DeliveryErrorKind::Transient)
    );
    assert!(err.is_infrastructure());
}

/// A send that failed transiently is marked in the store so the resend
/// cooldown skips it. The mark is best effort: when the store can't take it
/// the caller still gets the delivery error and the cooldown stays (the
/// strict side); a conflict is retried on a fresh read.
#[tokio::test]
async fn marking_a_transiently_failed_send_never_hides_the_delivery_error() {
    let store = Arc::new(Flaky::default());
    let gateway = RecordingGateway::new();
    let challenges = build(
        store.clone(),
        Arc::new(gateway.clone()),
        &clock(),
        &RecordingEvents::new(),
    );
    let issue_failing = || async {
        gateway.fail_next(DeliveryErrorKind::Transient);
        match challenges
            .issue(IssueRequest::new(phone(), Purpose::SignIn))
            .await
        {
            Err(Error::Delivery {
                challenge: Some(id),
                source,
                ..
            }) if source.kind() == DeliveryErrorKind::Transient => id,
            other => panic!("expected the transient delivery error, got {other:?}"),
        }
    };

    // The store is down when the mark is written.
    store.fail_replace.store(1, Ordering::SeqCst);
    let id = issue_failing().await;
    assert_eq!(store.replace_calls.load(Ordering::SeqCst), 1);
    let record = store.challenge(&id).await.unwrap().unwrap();
    assert!(!record.sends[0].failed_transiently);
    assert_eq!(
        refusal(challenges.resend(&id, None).await),
        Refusal::Send(SendRefusal::Cooldown {
            retry_at: OffsetDateTime::from_unix_timestamp(T0).unwrap() + Duration::seconds(60)
        })
    );

    // Another writer gets in first: the mark is written on a fresh read,
    // keeping that writer's change.
    store.race_replace.store(1, Ordering::SeqCst);
    let id = issue_failing().await;
    let record = store.challenge(&id).await.unwrap().unwrap();
    assert!(record.sends[0].failed_transiently);
    assert_eq!(record.failed_attempts, 1);
    let ticket = challenges.resend(&id, None).await.unwrap();
    assert_eq!(ticket.challenge_id, id);
    assert_eq!(gateway.sent_to(PHONE).len(), 1);
}
