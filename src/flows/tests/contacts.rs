//! The contact registry through the public API: add and verify, the phone
//! policy's refusals, one owner per number (also under a race of 64
//! accounts), change (verify first, swap atomically, release the old claim,
//! kill trusted devices and codes in flight), removal rules, sign-up
//! adoption, and the grace period from reminder to blocked and back.

use ninsho::{CodeRefusal, ContactRefusal};
use std::sync::Arc;

use super::challenges_builder;
use super::support::{T0, TASKS, Yielding, race, refusal};
use ninsho::events::RecordingEvents;
use ninsho::flows::{
    Challenges, ContactPolicy, Contacts, IssueRequest, VerificationRequest, Verifications,
};
use ninsho::gateway::RecordingGateway;
use ninsho::grace::{GraceDecision, GracePolicy, VerificationPath};
use ninsho::limits::{RateLimit, SendLimits};
use ninsho::model::{AccountId, Destination, Purpose};
use ninsho::store::{AccountStore, MemoryStore, Store};
use ninsho::{Clock, Error, ManualClock, Refusal};
use time::Duration;

struct Env {
    contacts: Contacts,
    challenges: Challenges,
    gateway: RecordingGateway,
    clock: ManualClock,
    store: Arc<MemoryStore>,
}

fn env() -> Env {
    let store = Arc::new(MemoryStore::new());
    env_on(store.clone(), store)
}

fn env_on(memory: Arc<MemoryStore>, store: Arc<dyn Store>) -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let events = RecordingEvents::new();
    let lots = RateLimit::new(1_000_000, Duration::minutes(10));
    let challenges = challenges_builder(store, Arc::new(gateway.clone()), &clock, &events, 5)
        .limits(SendLimits {
            per_destination: lots,
            per_account: lots,
            per_caller: lots,
            countries: Vec::new(),
            other_countries: None,
        })
        .build()
        .unwrap();
    Env {
        contacts: Contacts::new(challenges.clone()),
        challenges,
        gateway,
        clock,
        store: memory,
    }
}

fn taro() -> AccountId {
    AccountId::new("taro")
}

fn hanako() -> AccountId {
    AccountId::new("hanako")
}

fn mobile() -> Destination {
    Destination::phone("+81 90-1234-5678").unwrap()
}

fn other_mobile() -> Destination {
    Destination::phone("+81 80-9876-5432").unwrap()
}

fn email() -> Destination {
    Destination::email("taro@example.com").unwrap()
}

impl Env {
    fn code(&self, to: &Destination) -> String {
        self.gateway
            .last_secret_to(to.address())
            .unwrap()
            .expose_secret()
            .to_owned()
    }

    /// Adds and verifies a contact.
    async fn add(&self, account: &AccountId, to: &Destination) -> Result<(), Error> {
        let ticket = self.contacts.send_code(account, to, None, None).await?;
        self.contacts
            .confirm(account, &ticket.challenge_id, &self.code(to))
            .await
            .map(|_| ())
    }
}

#[tokio::test]
async fn adds_a_verified_phone_and_claims_it() {
    let env = env();
    let ticket = env
        .contacts
        .send_code(&taro(), &mobile(), None, None)
        .await
        .unwrap();
    // Nothing is registered until the code is confirmed.
    assert!(env.contacts.list(&taro()).await.unwrap().is_empty());
    assert_eq!(env.contacts.owner(&mobile()).await.unwrap(), None);

    let view = env
        .contacts
        .confirm(&taro(), &ticket.challenge_id, &env.code(&mobile()))
        .await
        .unwrap();
    assert!(view.verified && !view.two_factor);
    assert_eq!(view.destination, mobile());
    assert_eq!(view.verified_at, Some(env.clock.now()));
    assert_eq!(env.contacts.owner(&mobile()).await.unwrap(), Some(taro()));
    let list = env.contacts.list(&taro()).await.unwrap();
    assert_eq!(list, vec![view]);

    // Adding it again is refused; so is a second phone (one per account).
    assert_eq!(
        refusal(env.contacts.send_code(&taro(), &mobile(), None, None).await),
        Refusal::Contact(ContactRefusal::AlreadyAdded)
    );
    assert_eq!(
        refusal(
            env.contacts
                .send_code(&taro(), &other_mobile(), None, None)
                .await
        ),
        Refusal::Contact(ContactRefusal::TooMany)
    );
    // Emails are not one-owner by default, and up to three per account.
    env.add(&taro(), &email()).await.unwrap();
    env.add(&hanako(), &email()).await.unwrap();
    assert_eq!(env.contacts.owner(&email()).await.unwrap(), None);
}

#[tokio::test]
async fn the_phone_policy_refuses_with_its_reason() {
    let env = env();
    for (number, why) in [
        ("+81 3-1234-5678", "landline"),
        ("+81 50-1234-5678", "IP phone"),
        ("+81 120-123-456", "toll free"),
        ("+1 415-555-2671", "foreign"),
    ] {
        let to = Destination::phone(number).unwrap();
        let err = env
            .contacts
            .send_code(&taro(), &to, None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Contact(_)), "{why}: {err:?}");
        assert!(!err.is_infrastructure());
    }
    // Nothing was sent.
    assert!(env.gateway.messages().is_empty());
}

#[tokio::test]
async fn a_number_belongs_to_one_account() {
    let env = env();
    env.add(&taro(), &mobile()).await.unwrap();
    // The code goes out (asking can't tell whether the number is taken);
    // only the one who receives it learns that it is.
    assert_eq!(
        refusal(env.add(&hanako(), &mobile()).await),
        Refusal::Contact(ContactRefusal::InUse)
    );
    assert!(env.contacts.list(&hanako()).await.unwrap().is_empty());

    // Both asked for codes before either confirmed: the second confirm loses.
    let env = self::env();
    let a = env
        .contacts
        .send_code(&taro(), &mobile(), None, None)
        .await
        .unwrap();
    let code_a = env.code(&mobile());
    env.clock.advance(Duration::minutes(1));
    let b = env
        .contacts
        .send_code(&hanako(), &mobile(), None, None)
        .await
        .unwrap();
    let code_b = env.code(&mobile());
    env.contacts
        .confirm(&hanako(), &b.challenge_id, &code_b)
        .await
        .unwrap();
    assert_eq!(
        refusal(
            env.contacts
                .confirm(&taro(), &a.challenge_id, &code_a)
                .await
        ),
        Refusal::Contact(ContactRefusal::InUse)
    );
    assert!(env.contacts.list(&taro()).await.unwrap().is_empty());
    assert_eq!(env.contacts.owner(&mobile()).await.unwrap(), Some(hanako()));
}

#[tokio::test]
async fn someone_elses_challenge_is_unknown() {
    let env = env();
    let ticket = env
        .contacts
        .send_code(&taro(), &mobile(), None, None)
        .await
        .unwrap();
    assert_eq!(
        refusal(
            env.contacts
                .confirm(&hanako(), &ticket.challenge_id, &env.code(&mobile()))
                .await
        ),
        Refusal::Code(CodeRefusal::Unknown)
    );
    // A sign-in code is not a contact-change code.
    let sign_in = env
        .challenges
        .issue(IssueRequest::new(mobile(), Purpose::SignIn).account(taro()))
        .await
        .unwrap();
    assert_eq!(
        refusal(
            env.contacts
                .confirm(&taro(), &sign_in.challenge_id, &env.code(&mobile()))
                .await
        ),
        Refusal::Code(CodeRefusal::PurposeMismatch)
    );
}

/// 64 accounts, each holding a right code for the same number, confirm at
/// once on a store that yields between every read and write: exactly one
/// owns the number, and only its record lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_accounts_claim_a_number_once() {
    let memory = Arc::new(MemoryStore::new());
    let env = Arc::new(env_on(memory.clone(), Arc::new(Yielding(memory.clone()))));
    let mut pending = Vec::new();
    for i in 0..TASKS {
        let account = AccountId::new(format!("user{i}"));
        let ticket = env
            .contacts
            .send_code(&account, &mobile(), None, None)
            .await
            .unwrap();
        pending.push((account, ticket.challenge_id, env.code(&mobile())));
    }
    let pending = Arc::new(pending);
    let outcomes = race(|i| {
        let env = env.clone();
        let pending = pending.clone();
        async move {
            let (account, id, code) = &pending[i];
            env.contacts.confirm(account, id, code).await
        }
    })
    .await;
    let winners: Vec<usize> = (0..TASKS).filter(|&i| outcomes[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for (i, outcome) in outcomes.iter().enumerate() {
        if let Err(e) = outcome {
            assert_eq!(
                e.refusal(),
                Some(Refusal::Contact(ContactRefusal::InUse)),
                "task {i}"
            );
        }
    }
    let winner = &pending[winners[0]].0;
    assert_eq!(
        env.contacts.owner(&mobile()).await.unwrap().as_ref(),
        Some(winner)
    );
    for (account, _, _) in pending.iter() {
        let listed = !env.contacts.list(account).await.unwrap().is_empty();
        assert_eq!(listed, account == winner, "{account}");
    }
}

#[tokio::test]
async fn sign_up_adopts_a_completed_verification_all_or_nothing() {
    let env = env();
    let signup = Verifications::new(env.challenges.clone());
    let ticket = signup
        .start(VerificationRequest::new([email(), mobile()]))
        .await
        .unwrap();
    signup
        .verify(&ticket.id, 1, &env.code(&mobile()))
        .await
        .unwrap();
    signup
        .verify(&ticket.id, 0, &env.code(&email()))
        .await
        .unwrap();
    let done = signup.take(&ticket.id).await.unwrap();

    // Someone else got the number meanwhile: nothing is registered.
    env.contacts
        .import(&hanako(), &mobile(), true)
        .await
        .unwrap();
    assert_eq!(
        refusal(env.contacts.adopt(&taro(), &done).await),
        Refusal::Contact(ContactRefusal::InUse)
    );
    assert!(env.contacts.list(&taro()).await.unwrap().is_empty());

    env.contacts.delete_all(&hanako()).await.unwrap();
    assert_eq!(env.contacts.owner(&mobile()).await.unwrap(), None);
    env.contacts.adopt(&taro(), &done).await.unwrap();
    let list = env.contacts.list(&taro()).await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|c| c.verified));
    assert_eq!(env.contacts.owner(&mobile()).await.unwrap(), Some(taro()));
    assert_eq!(
        env.contacts.grace(&taro()).await.unwrap(),
        GraceDecision::Allow
    );
}

#[tokio::test]
async fn grace_period_reminds_then_blocks_then_verification_restores() {
    let env = env();
    env.contacts.create(&taro()).await.unwrap();
    env.contacts
        .import(&taro(), &mobile(), false)
        .await
        .unwrap();
    let deadline = env.clock.now() + Duration::days(7);
    match env.contacts.grace(&taro()).await.unwrap() {
        GraceDecision::Remind {
            deadline: d,
            to_verify,
        } => {
            assert_eq!(d, deadline);
            assert_eq!(to_verify.len(), 1);
        }
        other => panic!("expected a reminder, got {other:?}"),
    }
    env.clock.advance(Duration::days(7) - Duration::seconds(1));
    assert!(matches!(
        env.contacts.grace(&taro()).await.unwrap(),
        GraceDecision::Remind { .. }
    ));
    env.clock.advance(Duration::seconds(1));
    match env.contacts.grace(&taro()).await.unwrap() {
        GraceDecision::Blocked { since, paths, .. } => {
            assert_eq!(since, deadline);
            assert!(
                paths
                    .iter()
                    .any(|p| matches!(p, VerificationPath::AddContact { .. }))
            );
            assert!(
                paths
                    .iter()
                    .any(|p| matches!(p, VerificationPath::VerifyContact(_)))
            );
        }
        other => panic!("expected blocked, got {other:?}"),
    }
    // Day 8: still blocked; verifying the imported number restores access.
    env.clock.advance(Duration::days(1));
    assert!(env.contacts.grace(&taro()).await.unwrap().is_blocked());
    env.add(&taro(), &mobile()).await.unwrap();
    assert_eq!(
        env.contacts.grace(&taro()).await.unwrap(),
        GraceDecision::Allow
    );
    assert_eq!(env.contacts.list(&taro()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_custom_policy_allows_more() {
    let env = env();
    let contacts = Contacts::new(env.challenges.clone())
        .with_policy(
            ContactPolicy::new()
                .with_limits(2, 1)
                .with_unique(true, true),
        )
        .with_grace_policy(GracePolicy::default().with_grace(Duration::days(14)));
    let ticket = contacts
        .send_code(&taro(), &mobile(), None, None)
        .await
        .unwrap();
    contacts
        .confirm(&taro(), &ticket.challenge_id, &env.code(&mobile()))
        .await
        .unwrap();
    let ticket = contacts
        .send_code(&taro(), &other_mobile(), None, None)
        .await
        .unwrap();
    contacts
        .confirm(&taro(), &ticket.challenge_id, &env.code(&other_mobile()))
        .await
        .unwrap();
    assert_eq!(contacts.list(&taro()).await.unwrap().len(), 2);
    // Emails are one-owner now.
    let ticket = contacts
        .send_code(&taro(), &email(), None, None)
        .await
        .unwrap();
    contacts
        .confirm(&taro(), &ticket.challenge_id, &env.code(&email()))
        .await
        .unwrap();
    let ticket = contacts
        .send_code(&hanako(), &email(), None, None)
        .await
        .unwrap();
    assert_eq!(
        refusal(
            contacts
                .confirm(&hanako(), &ticket.challenge_id, &env.code(&email()))
                .await
        ),
        Refusal::Contact(ContactRefusal::InUse)
    );
    let book = env.store.account_record(&taro()).await.unwrap().unwrap();
    assert_eq!(book.contacts.len(), 3);
}
