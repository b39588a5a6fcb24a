//! `Challenges` under concurrency: 64 tasks on 4 worker threads race on one
//! challenge in a shared `MemoryStore`. Whatever the interleaving, a code is
//! consumed once, every wrong code is counted once up to the limit, and no
//! limit is exceeded.
//!
//! `MemoryStore` answers without ever suspending, so a flow's read and its
//! compare-and-set would almost never interleave with another task's. Each
//! test therefore runs twice: on the bare `MemoryStore`, and on the same
//! `MemoryStore` behind `Yielding`, which suspends the task after every store
//! call (as a networked database would), so other tasks really do run
//! between a read and the write that depends on it.

use ninsho::{CodeRefusal, SendRefusal};
use std::sync::Arc;

use super::challenges_builder;
use super::support::{BASE, PHONE, T0, TASKS, Yielding, phone};
use ninsho::challenge::CodePolicy;
use ninsho::events::{Event, RecordingEvents};
use ninsho::flows::{Challenges, ChallengesBuilder, IssueRequest, LinkRequest, LinkStatus};
use ninsho::gateway::RecordingGateway;
use ninsho::limits::{LimitKind, RateLimit, SendLimits};
use ninsho::model::{ChallengeId, ChallengeState, Purpose};
use ninsho::store::{ChallengeStore, MemoryStore, Store};
use ninsho::{Error, ManualClock, Refusal};
use time::Duration;

/// Both ways of sharing the store.
const MODES: [bool; 2] = [false, true];

struct Env {
    challenges: Challenges,
    gateway: RecordingGateway,
    events: RecordingEvents,
    clock: ManualClock,
    store: Arc<MemoryStore>,
}

fn env_with(
    yield_in_store: bool,
    configure: impl FnOnce(ChallengesBuilder) -> ChallengesBuilder,
) -> Env {
    let gateway = RecordingGateway::new();
    let events = RecordingEvents::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let store = Arc::new(MemoryStore::new());
    let shared: Arc<dyn Store> = if yield_in_store {
        Arc::new(Yielding(store.clone()))
    } else {
        store.clone()
    };
    let builder = challenges_builder(shared, Arc::new(gateway.clone()), &clock, &events, 11);
    Env {
        challenges: configure(builder).build().unwrap(),
        gateway,
        events,
        clock,
        store,
    }
}

/// Per-destination (and every other) send limit out of the way, so only
/// the per-challenge rules decide.
fn high_limits() -> SendLimits {
    let lots = RateLimit::new(1_000_000, Duration::minutes(10));
    SendLimits {
        per_destination: lots,
        per_account: lots,
        per_caller: lots,
        countries: Vec::new(),
        other_countries: None,
    }
}

fn other_code(code: &str, k: usize) -> String {
    let n: usize = code.parse().unwrap();
    format!("{:06}", (n + 1 + k % 1000) % 1_000_000)
}

impl Env {
    async fn issue(&self) -> (ChallengeId, String) {
        let ticket = self
            .challenges
            .issue(IssueRequest::new(phone(), Purpose::SignIn))
            .await
            .unwrap();
        let code = self
            .gateway
            .last_secret_to(PHONE)
            .unwrap()
            .expose_secret()
            .to_owned();
        (ticket.challenge_id, code)
    }

    fn verified_events(&self) -> usize {
        self.events
            .events()
            .iter()
            .filter(|e| matches!(e, Event::Verified { .. }))
            .count()
    }
}

/// Runs `TASKS` copies of `job` (given its index), released together.
async fn race<T, F, Fut>(challenges: &Challenges, job: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Challenges, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    super::support::race(|i| job(challenges.clone(), i)).await
}

fn refusal_of<T: std::fmt::Debug>(result: &Result<T, Error>) -> Option<Refusal> {
    match result {
        Ok(_) => None,
        Err(Error::Refused(r)) => Some(*r),
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn right_code_verifies_exactly_once() {
    for mode in MODES {
        eprintln!("store yields: {mode}");
        right_code_verifies_exactly_once_in(mode).await;
    }
}

async fn right_code_verifies_exactly_once_in(mode: bool) {
    let env = env_with(mode, |b| b);
    let (id, code) = env.issue().await;
    let results = race(&env.challenges, |c, _| {
        let code = code.clone();
        async move { c.verify(&id, &code, &Purpose::SignIn, &phone()).await }
    })
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let used = results
        .iter()
        .filter(|r| refusal_of(r) == Some(Refusal::Code(CodeRefusal::AlreadyUsed)))
        .count();
    assert_eq!(ok, 1, "{results:?}");
    assert_eq!(used, TASKS - 1, "{results:?}");
    assert_eq!(env.verified_events(), 1);
    let stored = env.store.challenge(&id).await.unwrap().unwrap();
    assert_eq!(stored.state, ChallengeState::Consumed);
    assert_eq!(stored.failed_attempts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_codes_are_counted_exactly_up_to_the_limit() {
    for mode in MODES {
        eprintln!("store yields: {mode}");
        wrong_codes_are_counted_exactly_up_to_the_limit_in(mode).await;
    }
}

async fn wrong_codes_are_counted_exactly_up_to_the_limit_in(mode: bool) {
    let env = env_with(mode, |b| b);
    let (id, code) = env.issue().await;
    let results = race(&env.challenges, |c, i| {
        let wrong = other_code(&code, i);
        async move { c.verify(&id, &wrong, &Purpose::SignIn, &phone()).await }
    })
    .await;
    assert!(results.iter().all(Result::is_err));
    let mut left: Vec<u32> = results
        .iter()
        .filter_map(|r| match refusal_of(r) {
            Some(Refusal::Code(CodeRefusal::WrongCode { attempts_left })) => attempts_left,
            _ => None,
        })
        .collect();
    left.sort_unstable();
    // Each counted attempt saw its own count: 4, 3, 2, 1 left, once each.
    assert_eq!(left, vec![1, 2, 3, 4], "{results:?}");
    let too_many = results
        .iter()
        .filter(|r| refusal_of(r) == Some(Refusal::Code(CodeRefusal::TooManyAttempts)))
        .count();
    assert_eq!(too_many, TASKS - 4, "{results:?}");

    let stored = env.store.challenge(&id).await.unwrap().unwrap();
    assert_eq!(stored.failed_attempts, 5);
    assert_eq!(stored.state, ChallengeState::Exhausted);
    let err = env
        .challenges
        .verify(&id, &code, &Purpose::SignIn, &phone())
        .await;
    assert_eq!(
        refusal_of(&err),
        Some(Refusal::Code(CodeRefusal::TooManyAttempts))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_resends_respect_the_cooldown() {
    for mode in MODES {
        eprintln!("store yields: {mode}");
        racing_resends_respect_the_cooldown_in(mode).await;
    }
}

async fn racing_resends_respect_the_cooldown_in(mode: bool) {
    let env = env_with(mode, |b| b.limits(high_limits()));
    let (id, _) = env.issue().await;
    env.clock.advance(Duration::seconds(61));
    let results = race(
        &env.challenges,
        |c, _| async move { c.resend(&id, None).await },
    )
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    for result in &results {
        if let Some(reason) = refusal_of(result) {
            assert!(
                matches!(reason, Refusal::Send(SendRefusal::Cooldown { .. })),
                "{reason:?}"
            );
        }
    }
    let stored = env.store.challenge(&id).await.unwrap().unwrap();
    assert_eq!(stored.sends.len(), 2);
    assert_eq!(stored.delivery_attempts, 2);
    assert_eq!(env.gateway.sent_to(PHONE).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_resends_without_cooldown_stop_at_five_sends() {
    for mode in MODES {
        eprintln!("store yields: {mode}");
        racing_resends_without_cooldown_stop_at_five_sends_in(mode).await;
    }
}

async fn racing_resends_without_cooldown_stop_at_five_sends_in(mode: bool) {
    let mut policy = CodePolicy::default();
    policy.resend_cooldown = Duration::ZERO;
    let env = env_with(mode, |b| b.policy(policy).limits(high_limits()));
    let (id, _) = env.issue().await;
    let results = race(
        &env.challenges,
        |c, _| async move { c.resend(&id, None).await },
    )
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 4, "five sends per challenge, the first included");
    for result in &results {
        if let Some(reason) = refusal_of(result) {
            assert!(
                matches!(reason, Refusal::Send(SendRefusal::SendsUsedUp)),
                "{reason:?}"
            );
        }
    }
    let stored = env.store.challenge(&id).await.unwrap().unwrap();
    assert_eq!(stored.sends.len(), 5);
    assert_eq!(stored.delivery_attempts, 5);
    assert_eq!(env.gateway.sent_to(PHONE).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_resends_never_exceed_the_destination_limit() {
    for mode in MODES {
        eprintln!("store yields: {mode}");
        racing_resends_never_exceed_the_destination_limit_in(mode).await;
    }
}

async fn racing_resends_never_exceed_the_destination_limit_in(mode: bool) {
    let mut policy = CodePolicy::default();
    policy.resend_cooldown = Duration::ZERO;
    policy.max_sends = 1_000;
    // Default limits: 5 sends per destination per 10 minutes.
    let env = env_with(mode, |b| b.policy(policy));
    let (id, _) = env.issue().await;
    let results = race(
        &env.challenges,
        |c, _| async move { c.resend(&id, None).await },
    )
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 4, "{results:?}");
    assert_eq!(env.gateway.sent_to(PHONE).len(), 5);
    for result in &results {
        if let Some(reason) = refusal_of(result) {
            assert!(
                matches!(
                    reason,
                    Refusal::Send(SendRefusal::RateLimited {
                        limit: LimitKind::Destination,
                        ..
                    })
                ),
                "{reason:?}"
            );
        }
    }
    // And racing fresh issues to the same number fit in the same budget.
    env.clock.advance(Duration::minutes(10));
    let issued = race(&env.challenges, |c, _| async move {
        c.issue(IssueRequest::new(phone(), Purpose::SignIn)).await
    })
    .await;
    assert_eq!(issued.iter().filter(|r| r.is_ok()).count(), 5);
    assert_eq!(env.gateway.sent_to(PHONE).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_polls_collect_an_approval_once() {
    for mode in MODES {
        eprintln!("store yields: {mode}");
        racing_polls_collect_an_approval_once_in(mode).await;
    }
}

async fn racing_polls_collect_an_approval_once_in(mode: bool) {
    let env = env_with(mode, |b| b);
    let ticket = env
        .challenges
        .issue_link(LinkRequest::new(phone(), Purpose::SignIn, "Chrome"))
        .await
        .unwrap();
    let url = env
        .gateway
        .last_secret_to(PHONE)
        .unwrap()
        .expose_secret()
        .to_owned();
    env.challenges
        .approve_link(url.strip_prefix(BASE).unwrap())
        .await
        .unwrap();
    let id = ticket.challenge_id;
    let results = race(&env.challenges, |c, _| async move {
        c.poll_link(&id, &Purpose::SignIn).await
    })
    .await;
    let approved = results
        .iter()
        .filter(|r| matches!(r, Ok(LinkStatus::Approved(_))))
        .count();
    let used = results
        .iter()
        .filter(|r| refusal_of(r) == Some(Refusal::Code(CodeRefusal::AlreadyUsed)))
        .count();
    assert_eq!(approved, 1, "{results:?}");
    assert_eq!(used, TASKS - 1, "{results:?}");
    assert_eq!(env.verified_events(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_approve_and_deny_decide_once() {
    for mode in MODES {
        eprintln!("store yields: {mode}");
        racing_approve_and_deny_decide_once_in(mode).await;
    }
}

async fn racing_approve_and_deny_decide_once_in(mode: bool) {
    let env = env_with(mode, |b| b);
    let ticket = env
        .challenges
        .issue_link(LinkRequest::new(phone(), Purpose::SignIn, "Chrome"))
        .await
        .unwrap();
    let url = env
        .gateway
        .last_secret_to(PHONE)
        .unwrap()
        .expose_secret()
        .to_owned();
    let token = url.strip_prefix(BASE).unwrap().to_owned();
    let results = race(&env.challenges, |c, i| {
        let token = token.clone();
        async move {
            if i % 2 == 0 {
                c.approve_link(&token).await
            } else {
                c.deny_link(&token).await
            }
        }
    })
    .await;
    let ok: Vec<usize> = (0..TASKS).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    let approved = ok[0].is_multiple_of(2);
    let stored = env
        .store
        .challenge(&ticket.challenge_id)
        .await
        .unwrap()
        .unwrap();
    let expected = if approved {
        ChallengeState::Approved
    } else {
        ChallengeState::Denied
    };
    assert_eq!(stored.state, expected);
    let decided = env
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::LinkDecided { .. }))
        .collect::<Vec<_>>();
    assert_eq!(
        decided,
        vec![Event::LinkDecided {
            challenge: ticket.challenge_id,
            approved,
        }]
    );
    let poll = env
        .challenges
        .poll_link(&ticket.challenge_id, &Purpose::SignIn)
        .await;
    if approved {
        assert!(matches!(poll, Ok(LinkStatus::Approved(_))), "{poll:?}");
    } else {
        assert_eq!(refusal_of(&poll), Some(Refusal::Code(CodeRefusal::Denied)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_right_and_wrong_codes() {
    for mode in MODES {
        eprintln!("store yields: {mode}");
        mixed_right_and_wrong_codes_in(mode).await;
    }
}

async fn mixed_right_and_wrong_codes_in(mode: bool) {
    // Several rounds, each with a different mix, to vary the interleavings.
    for round in 0..8usize {
        let env = env_with(mode, |b| b.limits(high_limits()));
        let (id, code) = env.issue().await;
        let results = race(&env.challenges, |c, i| {
            let typed = if (i + round) % (round + 2) == 0 {
                code.clone()
            } else {
                other_code(&code, i)
            };
            async move { c.verify(&id, &typed, &Purpose::SignIn, &phone()).await }
        })
        .await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert!(ok <= 1, "round {round}: {results:?}");
        let stored = env.store.challenge(&id).await.unwrap().unwrap();
        assert!(stored.failed_attempts <= 5, "round {round}");
        let wrong = results
            .iter()
            .filter(|r| {
                matches!(
                    refusal_of(r),
                    Some(Refusal::Code(CodeRefusal::WrongCode { .. }))
                )
            })
            .count();
        assert_eq!(
            u32::try_from(wrong).unwrap(),
            stored.failed_attempts.min(4),
            "round {round}: every counted wrong code was reported once"
        );
        match stored.state {
            ChallengeState::Consumed => {
                assert_eq!(ok, 1);
                assert!(stored.failed_attempts < 5);
            }
            ChallengeState::Exhausted => {
                assert_eq!(ok, 0);
                assert_eq!(stored.failed_attempts, 5);
            }
            other => panic!("round {round}: left {other:?}"),
        }
        assert_eq!(env.verified_events(), ok);
    }
}
