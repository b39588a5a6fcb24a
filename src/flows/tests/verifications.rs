//! Combined verification (EZSMS's sign-up: email and phone together)
//! through the public API: any order, progress kept across restarts,
//! completion exactly once (also under a race), expiry as a whole, resends
//! that restart dead member challenges, and collecting the result once.

use ninsho::{CodeRefusal, ContactRefusal, SendRefusal};
use std::sync::Arc;

use super::challenges_builder;
use super::support::{T0, TASKS, Yielding, race, refusal};
use ninsho::events::RecordingEvents;
use ninsho::flows::{Challenges, Progress, VerificationRequest, Verifications};
use ninsho::gateway::{DeliveryErrorKind, RecordingGateway};
use ninsho::limits::{RateLimit, SendLimits};
use ninsho::model::{AccountId, Destination, VerificationId};
use ninsho::store::{MemoryStore, Store, VerificationStore};
use ninsho::{Clock, Error, ManualClock, Refusal};
use time::Duration;

struct Env {
    flow: Verifications,
    gateway: RecordingGateway,
    clock: ManualClock,
    store: Arc<MemoryStore>,
}

fn env() -> Env {
    let store = Arc::new(MemoryStore::new());
    env_on(store.clone(), store, &RecordingGateway::new())
}

fn env_on(memory: Arc<MemoryStore>, store: Arc<dyn Store>, gateway: &RecordingGateway) -> Env {
    let clock = ManualClock::at_unix(T0).unwrap();
    let challenges = challenges(store, gateway, &clock, 11);
    Env {
        flow: Verifications::new(challenges),
        gateway: gateway.clone(),
        clock,
        store: memory,
    }
}

fn challenges(
    store: Arc<dyn Store>,
    gateway: &RecordingGateway,
    clock: &ManualClock,
    seed: u64,
) -> Challenges {
    challenges_builder(
        store,
        Arc::new(gateway.clone()),
        clock,
        &RecordingEvents::new(),
        seed,
    )
    .limits(generous_limits())
    .build()
    .unwrap()
}

/// Limits that never get in the way (the tests start many verifications to
/// one address).
fn generous_limits() -> SendLimits {
    let lots = RateLimit::new(1_000_000, Duration::minutes(10));
    SendLimits {
        per_destination: lots,
        per_account: lots,
        per_caller: lots,
        countries: Vec::new(),
        other_countries: None,
    }
}

fn email() -> Destination {
    Destination::email("taro@example.com").unwrap()
}

fn phone() -> Destination {
    Destination::phone("+81 90-1234-5678").unwrap()
}

impl Env {
    async fn start(&self) -> VerificationId {
        let ticket = self
            .flow
            .start(VerificationRequest::new([email(), phone()]))
            .await
            .unwrap();
        assert_eq!(ticket.members.len(), 2);
        assert!(ticket.members.iter().all(|m| m.sent.is_some()));
        assert_eq!(ticket.expires_at, self.clock.now() + Duration::minutes(30));
        ticket.id
    }

    fn code(&self, to: &Destination) -> String {
        self.gateway
            .last_secret_to(to.address())
            .unwrap()
            .expose_secret()
            .to_owned()
    }

    async fn verify(&self, id: &VerificationId, member: usize) -> Result<Progress, Error> {
        let to = if member == 0 { email() } else { phone() };
        self.flow.verify(id, member, &self.code(&to)).await
    }
}

fn shape(p: &Progress) -> (usize, Vec<usize>, bool) {
    (p.verified, p.remaining.clone(), p.completed)
}

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test]
async fn completes_in_either_order_exactly_once() {
    for first in [1, 0] {
        let env = env();
        let id = env.start().await;
        let second = 1 - first;
        let p = env.verify(&id, first).await.unwrap();
        assert_eq!(shape(&p), (first, vec![second], false));
        let status = env.flow.status(&id).await.unwrap();
        assert!(!status.completed && !status.expired && !status.taken);
        assert!(status.members[first].verified);
        assert!(!status.members[second].verified);

        let p = env.verify(&id, second).await.unwrap();
        assert_eq!(shape(&p), (second, vec![], true));
        // Nothing more can be verified.
        assert_eq!(
            refusal(env.flow.verify(&id, first, "123456").await),
            Refusal::Code(CodeRefusal::AlreadyUsed)
        );
        let done = env.flow.take(&id).await.unwrap();
        assert_eq!(done.destinations, vec![email(), phone()]);
        assert_eq!(done.account, None);
        assert_eq!(done.completed_at, env.clock.now());
        assert_eq!(
            refusal(env.flow.take(&id).await),
            Refusal::Code(CodeRefusal::AlreadyUsed)
        );
        assert!(env.flow.status(&id).await.unwrap().taken);
    }
}

#[tokio::test]
async fn progress_survives_a_restart() {
    let memory = Arc::new(MemoryStore::new());
    let gateway = RecordingGateway::new();
    let before = env_on(memory.clone(), memory.clone(), &gateway);
    let id = before.start().await;
    before.verify(&id, 0).await.unwrap();
    drop(before);

    // A new process: new flow objects on the same store.
    let after = env_on(memory.clone(), memory, &gateway);
    let status = after.flow.status(&id).await.unwrap();
    assert!(status.members[0].verified);
    assert!(!status.members[1].verified);
    let p = after.verify(&id, 1).await.unwrap();
    assert!(p.completed);
}

#[tokio::test]
async fn a_wrong_code_counts_against_its_member_only() {
    let env = env();
    let id = env.start().await;
    let code = env.code(&phone());
    assert_eq!(
        refusal(env.flow.verify(&id, 1, &wrong(&code)).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    // The email's code is unaffected, and the right phone code still works.
    assert!(!env.verify(&id, 0).await.unwrap().completed);
    assert!(env.flow.verify(&id, 1, &code).await.unwrap().completed);
}

#[tokio::test]
async fn expires_as_a_whole() {
    let env = env();
    let id = env.start().await;
    env.verify(&id, 0).await.unwrap();
    env.clock.advance(Duration::minutes(9));
    env.flow.resend(&id, 1, None).await.unwrap();
    // The phone's fresh code is still live, but the verification is over.
    env.clock.advance(Duration::minutes(21));
    assert_eq!(
        refusal(env.verify(&id, 1).await),
        Refusal::Code(CodeRefusal::Expired)
    );
    assert_eq!(
        refusal(env.flow.resend(&id, 1, None).await),
        Refusal::Code(CodeRefusal::Expired)
    );
    assert_eq!(
        refusal(env.flow.take(&id).await),
        Refusal::Code(CodeRefusal::Expired)
    );
    let status = env.flow.status(&id).await.unwrap();
    assert!(status.expired && !status.completed);
    // One instant earlier it would have worked.
    let env = env_with_lifetime(Duration::minutes(5));
    let id = env.start_short().await;
    env.clock
        .advance(Duration::minutes(5) - Duration::nanoseconds(1));
    env.verify(&id, 0).await.unwrap();
    env.clock.advance(Duration::nanoseconds(1));
    assert_eq!(
        refusal(env.verify(&id, 1).await),
        Refusal::Code(CodeRefusal::Expired)
    );
}

fn env_with_lifetime(lifetime: Duration) -> Env {
    let mut env = env();
    env.flow = env.flow.clone().with_lifetime(lifetime);
    env
}

impl Env {
    async fn start_short(&self) -> VerificationId {
        self.flow
            .start(VerificationRequest::new([email(), phone()]))
            .await
            .unwrap()
            .id
    }
}

#[tokio::test]
async fn resend_restarts_a_dead_member_challenge() {
    let env = env();
    let id = env.start().await;
    let first = env.code(&phone());
    // Five wrong codes kill the phone's challenge.
    for _ in 0..5 {
        let _ = env.flow.verify(&id, 1, &wrong(&first)).await;
    }
    assert_eq!(
        refusal(env.flow.verify(&id, 1, &first).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
    env.clock.advance(Duration::minutes(1));
    let ticket = env.flow.resend(&id, 1, None).await.unwrap();
    let fresh = env.code(&phone());
    assert_ne!(ticket.challenge_id.to_string(), "");
    // The old code is gone with its challenge; the fresh one works.
    if fresh != first {
        assert!(env.flow.verify(&id, 1, &first).await.is_err());
    }
    env.flow.verify(&id, 1, &fresh).await.unwrap();

    // An expired member challenge is restarted the same way.
    let env = self::env();
    let id = env.start().await;
    env.clock.advance(Duration::minutes(10));
    assert_eq!(
        refusal(env.verify(&id, 0).await),
        Refusal::Code(CodeRefusal::Expired)
    );
    env.flow.resend(&id, 0, None).await.unwrap();
    env.verify(&id, 0).await.unwrap();
}

#[tokio::test]
async fn resend_honours_the_cooldown_and_verified_members() {
    let env = env();
    let id = env.start().await;
    assert!(matches!(
        refusal(env.flow.resend(&id, 1, None).await),
        Refusal::Send(SendRefusal::Cooldown { .. })
    ));
    env.verify(&id, 0).await.unwrap();
    env.clock.advance(Duration::minutes(1));
    assert_eq!(
        refusal(env.flow.resend(&id, 0, None).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    env.flow.resend(&id, 1, None).await.unwrap();
    // "Another option" moves the phone to a voice call.
    let ticket = env.flow.another_option(&id, 1, None).await.unwrap();
    assert_eq!(ticket.channel, ninsho::model::Channel::Voice);
    env.verify(&id, 1).await.unwrap();
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let env = env();
    assert!(matches!(
        env.flow.start(VerificationRequest::new([])).await,
        Err(Error::Misuse(ninsho::Misuse::NoMembers))
    ));
    let upper = Destination::email("TARO@example.com").unwrap();
    assert!(matches!(
        env.flow
            .start(VerificationRequest::new([email(), upper]))
            .await,
        Err(Error::Misuse(ninsho::Misuse::DuplicateMember))
    ));
    let unknown = VerificationId::from_bytes([9; 16]);
    assert_eq!(
        refusal(env.flow.verify(&unknown, 0, "123456").await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(
        refusal(env.flow.status(&unknown).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    let id = env.start().await;
    assert_eq!(
        refusal(env.flow.verify(&id, 2, "123456").await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    // Taking it before it completes is refused, naming what is pending.
    assert_eq!(
        refusal(env.flow.take(&id).await),
        Refusal::Contact(ContactRefusal::Unverified {
            email: true,
            phone: true
        })
    );
    let code = env.code(&email());
    env.flow.verify(&id, 0, &code).await.unwrap();
    assert_eq!(
        refusal(env.flow.take(&id).await),
        Refusal::Contact(ContactRefusal::Unverified {
            email: false,
            phone: true
        })
    );
}

#[tokio::test]
async fn a_failed_delivery_is_resent() {
    let env = env();
    env.gateway
        .fail_channel(ninsho::model::Channel::Email, DeliveryErrorKind::Transient);
    let ticket = env
        .flow
        .start(VerificationRequest::new([email(), phone()]).account(AccountId::new("taro")))
        .await
        .unwrap();
    assert!(ticket.members[0].sent.is_none());
    assert!(ticket.members[1].sent.is_some());
    env.gateway.heal();
    env.clock.advance(Duration::minutes(1));
    env.flow.resend(&ticket.id, 0, None).await.unwrap();
    env.verify(&ticket.id, 0).await.unwrap();
    assert!(env.verify(&ticket.id, 1).await.unwrap().completed);
    let done = env.flow.take(&ticket.id).await.unwrap();
    assert_eq!(done.account, Some(AccountId::new("taro")));
}

#[tokio::test]
async fn the_record_never_holds_a_code() {
    let env = env();
    let id = env.start().await;
    let record = env.store.verification(&id).await.unwrap().unwrap();
    let json = serde_json::to_string(&record).unwrap();
    assert!(!json.contains(&env.code(&phone())));
    assert!(!json.contains(&env.code(&email())));
}

/// Many sets, each with both members verified at once by racing tasks
/// (every task holding the right code): each member verifies once and each
/// set completes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn completion_is_exactly_once_under_a_race() {
    let memory = Arc::new(MemoryStore::new());
    let gateway = RecordingGateway::new();
    let env = Arc::new(env_on(
        memory.clone(),
        Arc::new(Yielding(memory.clone())),
        &gateway,
    ));
    for _ in 0..8 {
        let id = env.start().await;
        let codes = Arc::new([env.code(&email()), env.code(&phone())]);
        let outcomes = race(|i| {
            let env = env.clone();
            let codes = codes.clone();
            async move { env.flow.verify(&id, i % 2, &codes[i % 2]).await }
        })
        .await;
        let wins: Vec<&Progress> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(wins.len(), 2, "one success per member");
        assert_eq!(wins.iter().filter(|p| p.completed).count(), 1);
        assert_eq!(outcomes.len(), TASKS);
        for loser in outcomes.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(
                loser.refusal(),
                Some(Refusal::Code(CodeRefusal::AlreadyUsed)),
                "{loser:?}"
            );
        }
        // And it is taken once.
        let takes = race(|_| {
            let env = env.clone();
            async move { env.flow.take(&id).await }
        })
        .await;
        assert_eq!(takes.iter().filter(|t| t.is_ok()).count(), 1);
        env.clock.advance(Duration::minutes(1));
    }
}
