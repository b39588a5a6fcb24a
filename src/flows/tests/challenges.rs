//! `Challenges`: every outcome of issuing, resending and verifying one-time
//! codes and links, at the exact edges, through the public API only.
//!
//! Time only moves through `ManualClock`; codes and links are read from the
//! `RecordingGateway`; audit events from `RecordingEvents`.

use ninsho::{AccountRefusal, CodeRefusal, SendRefusal};
use std::sync::Arc;

use super::challenges_builder;
use super::support::{BASE, PHONE, T0, hasher, refusal, t0};
use ninsho::challenge::CodePolicy;
use ninsho::events::{Event, RecordingEvents};
use ninsho::flows::Challenges;
use ninsho::flows::{
    ChallengesBuilder, ChannelReason, IssueRequest, LinkRequest, LinkStatus, Ticket, Verified,
};
use ninsho::gateway::{DeliveryErrorKind, RecordingGateway};
use ninsho::limits::{CountryBudget, FailurePolicy, LimitKind, RateLimit, SendLimits};
use ninsho::model::{
    AccountId, ChallengeId, ChallengeRecord, ChallengeState, Channel, Destination, Purpose,
};
use ninsho::store::{ChallengeStore, LimitStore, MemoryStore};
use ninsho::{Clock, Error, ManualClock, Refusal};
use time::{Duration, OffsetDateTime};

struct Env {
    challenges: Challenges,
    gateway: RecordingGateway,
    events: RecordingEvents,
    clock: ManualClock,
    store: Arc<MemoryStore>,
}

fn env() -> Env {
    env_with(|b| b)
}

fn env_with(configure: impl FnOnce(ChallengesBuilder) -> ChallengesBuilder) -> Env {
    let gateway = RecordingGateway::new();
    let events = RecordingEvents::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let store = Arc::new(MemoryStore::new());
    let builder = challenges_builder(store.clone(), Arc::new(gateway.clone()), &clock, &events, 7);
    Env {
        challenges: configure(builder).build().unwrap(),
        gateway,
        events,
        clock,
        store,
    }
}

/// Limits that never get in the way.
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

fn phone() -> Destination {
    Destination::phone("+81 90-1234-5678").unwrap()
}

/// A distinct Japanese mobile number per `i`.
fn phone_n(i: u32) -> Destination {
    Destination::phone(&format!("+8180{:08}", 20_000_000 + i)).unwrap()
}

/// A code that is not `code` (same length).
fn other_code(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

fn full_width(code: &str) -> String {
    code.chars()
        .map(|c| char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).unwrap())
        .collect()
}

fn last_lock(events: &RecordingEvents) -> Option<Event> {
    events
        .events()
        .into_iter()
        .rev()
        .find(|e| matches!(e, Event::Locked { .. }))
}

impl Env {
    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn secret_to(&self, address: &str) -> String {
        self.gateway
            .last_secret_to(address)
            .expect("a message with a secret was delivered")
            .expose_secret()
            .to_owned()
    }

    async fn issue_req(&self, request: IssueRequest) -> (Ticket, String) {
        let address = request.destination.address().to_owned();
        let ticket = self.challenges.issue(request).await.unwrap();
        (ticket, self.secret_to(&address))
    }

    async fn issue(&self, destination: &Destination) -> (Ticket, String) {
        self.issue_req(IssueRequest::new(destination.clone(), Purpose::SignIn))
            .await
    }

    async fn verify(
        &self,
        id: &ChallengeId,
        code: &str,
        destination: &Destination,
    ) -> Result<Verified, Error> {
        self.challenges
            .verify(id, code, &Purpose::SignIn, destination)
            .await
    }

    async fn record(&self, id: &ChallengeId) -> ChallengeRecord {
        self.store.challenge(id).await.unwrap().expect("stored")
    }

    /// Issues a link to `destination` and returns its id and token.
    async fn link(&self, destination: &Destination) -> (ChallengeId, String) {
        let ticket = self
            .challenges
            .issue_link(LinkRequest::new(
                destination.clone(),
                Purpose::SignIn,
                "Chrome on Windows",
            ))
            .await
            .unwrap();
        let url = self.secret_to(destination.address());
        let token = url.strip_prefix(BASE).expect("URL starts with the base");
        (ticket.challenge_id, token.to_owned())
    }
}

// ---------------------------------------------------------------- issuing

#[tokio::test]
async fn issue_returns_a_complete_ticket() {
    let env = env();
    let (ticket, code) = env.issue(&phone()).await;

    assert_eq!(ticket.channel, Channel::Sms);
    assert_eq!(ticket.reason, ChannelReason::FirstChoice);
    assert_eq!(ticket.masked_destination, "+81 **-****-**78");
    assert_eq!(ticket.expires_at, t0() + Duration::minutes(10));
    assert_eq!(ticket.resend_available_at, t0() + Duration::seconds(60));
    assert_eq!(ticket.sends_left, 4);

    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_digit()));
    let sent = env.gateway.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].channel, Channel::Sms);
    assert_eq!(sent[0].to, PHONE);
    assert!(sent[0].body.expose_secret().contains(&code));
    assert!(sent[0].subject.is_none());

    let record = env.record(&ticket.challenge_id).await;
    assert_eq!(record.state, ChallengeState::Pending);
    assert_eq!(record.failed_attempts, 0);
    assert_eq!(record.sends.len(), 1);
    assert_eq!(record.delivery_attempts, 1);

    let events = env.events.events();
    assert_eq!(
        events[0],
        Event::Issued {
            challenge: ticket.challenge_id,
            purpose: Purpose::SignIn,
            account: None,
            // Events show contacts as screens do (two digits, by default).
            destination: "+81 **-****-**78".into(),
        }
    );
    assert_eq!(
        events[1],
        Event::Delivered {
            challenge: ticket.challenge_id,
            channel: Channel::Sms,
            provider_id: Some("recorded-1".into()),
        }
    );
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn sms_ends_with_the_origin_bound_line() {
    let env = env_with(|b| b.origin("example.com"));
    let (_, code) = env.issue(&phone()).await;
    let body = env
        .gateway
        .last_to(PHONE)
        .unwrap()
        .body
        .expose_secret()
        .to_owned();
    assert!(body.contains(&format!("code: {code}")), "{body}");
    assert_eq!(
        body.lines().last(),
        Some(format!("@example.com #{code}").as_str())
    );
    assert!(
        body.ends_with(&format!("\n\n@example.com #{code}")),
        "{body}"
    );
}

#[tokio::test]
async fn sms_without_origin_has_no_origin_line() {
    let env = env();
    let (_, code) = env.issue(&phone()).await;
    let body = env
        .gateway
        .last_to(PHONE)
        .unwrap()
        .body
        .expose_secret()
        .to_owned();
    assert!(body.contains(&code));
    assert!(!body.contains('@') && !body.contains('#'), "{body}");
}

#[tokio::test]
async fn email_destination_uses_the_email_channel() {
    let env = env_with(|b| b.origin("example.com"));
    let email = Destination::email("taro@Example.com").unwrap();
    let (ticket, code) = env.issue(&email).await;
    assert_eq!(ticket.channel, Channel::Email);
    assert_eq!(ticket.reason, ChannelReason::FirstChoice);
    assert_eq!(ticket.masked_destination, "ta**@example.com");

    let message = env.gateway.last_to("taro@example.com").unwrap();
    assert_eq!(message.channel, Channel::Email);
    let subject = message.subject.clone().expect("emails have a subject");
    assert!(
        !subject.contains(&code),
        "no code in the subject: {subject}"
    );
    let body = message.body.expose_secret();
    assert!(body.contains(&code));
    assert!(!body.contains("@example.com #"), "no origin line in email");

    let verified = env
        .verify(&ticket.challenge_id, &code, &email)
        .await
        .unwrap();
    assert_eq!(verified.channel, Channel::Email);
    assert_eq!(verified.destination, email);
    // An email has no other channel.
    assert_eq!(
        refusal(
            env.challenges
                .another_option(&ticket.challenge_id, None)
                .await
        ),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    let (ticket, _) = env.issue(&email).await;
    assert_eq!(
        refusal(
            env.challenges
                .another_option(&ticket.challenge_id, None)
                .await
        ),
        Refusal::Send(SendRefusal::NoMoreOptions)
    );
}

#[tokio::test]
async fn issue_link_needs_a_link_base_and_codes_do_not() {
    let gateway = RecordingGateway::new();
    let challenges = Challenges::builder()
        .service_name("Example")
        .store(Arc::new(MemoryStore::new()))
        .gateway(Arc::new(gateway.clone()))
        .hasher(hasher())
        .clock(Arc::new(ManualClock::at_unix(T0).unwrap()))
        .build()
        .unwrap();
    let err = challenges
        .issue_link(LinkRequest::new(phone(), Purpose::SignIn, "Chrome"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Misuse(ninsho::Misuse::NoLinkBase)),
        "{err:?}"
    );
    assert!(gateway.attempts().is_empty());
    challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap();
    // Default locale is Japanese.
    assert!(
        gateway
            .last_to(PHONE)
            .unwrap()
            .body
            .expose_secret()
            .contains("認証コード")
    );
}

#[tokio::test]
async fn builder_rejects_bad_configuration() {
    let base = || {
        Challenges::builder()
            .service_name("Example")
            .store(Arc::new(MemoryStore::new()))
            .gateway(Arc::new(RecordingGateway::new()))
            .hasher(hasher())
    };
    assert!(base().build().is_ok());
    assert!(matches!(
        Challenges::builder().service_name("x").build(),
        Err(Error::Misuse(ninsho::Misuse::MissingPart(_)))
    ));
    let mut policy = CodePolicy::default();
    policy.max_attempts = 0;
    assert!(matches!(
        base().policy(policy).build(),
        Err(Error::Misuse(ninsho::Misuse::CodePolicy))
    ));
    let mut policy = CodePolicy::default();
    policy.lifetime = Duration::ZERO;
    assert!(matches!(
        base().policy(policy).build(),
        Err(Error::Misuse(ninsho::Misuse::CodePolicy))
    ));
    assert!(matches!(
        base().phone_channels(vec![]).build(),
        Err(Error::Misuse(ninsho::Misuse::PhoneChannels))
    ));
    assert!(matches!(
        base()
            .phone_channels(vec![Channel::Sms, Channel::Email])
            .build(),
        Err(Error::Misuse(ninsho::Misuse::PhoneChannels))
    ));
}

// ---------------------------------------------------------------- verifying

#[tokio::test]
async fn right_code_verifies_once() {
    let env = env();
    let account = AccountId::new("user-1");
    let (ticket, code) = env
        .issue_req(IssueRequest::new(phone(), Purpose::SignIn).account(account.clone()))
        .await;
    let verified = env
        .verify(&ticket.challenge_id, &code, &phone())
        .await
        .unwrap();
    assert_eq!(verified.challenge_id, ticket.challenge_id);
    assert_eq!(verified.destination, phone());
    assert_eq!(verified.purpose, Purpose::SignIn);
    assert_eq!(verified.account, Some(account.clone()));
    assert_eq!(verified.channel, Channel::Sms);
    assert_eq!(
        env.record(&ticket.challenge_id).await.state,
        ChallengeState::Consumed
    );
    assert!(env.events.events().contains(&Event::Verified {
        challenge: ticket.challenge_id,
        purpose: Purpose::SignIn,
        account: Some(account.clone()),
    }));

    assert_eq!(
        refusal(env.verify(&ticket.challenge_id, &code, &phone()).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    // A used challenge can't be resent either, and a second use counts nothing.
    assert_eq!(
        refusal(env.challenges.resend(&ticket.challenge_id, None).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert_eq!(env.record(&ticket.challenge_id).await.failed_attempts, 0);
    assert_eq!(
        env.events.events().last(),
        Some(&Event::Failed {
            challenge: Some(ticket.challenge_id),
            account: Some(account),
            reason: Refusal::Code(CodeRefusal::AlreadyUsed),
        })
    );
}

#[tokio::test]
async fn typed_input_is_normalised() {
    let env = env();
    let spaced = |c: &str| format!("{} {}", &c[..3], &c[3..]);
    let hyphen = |c: &str| format!("{}-{}", &c[..3], &c[3..]);
    let padded = |c: &str| format!("  {c}\t");
    let fw = |c: &str| full_width(c);
    let fw_spaced = |c: &str| format!("{}\u{3000}{}", full_width(&c[..3]), full_width(&c[3..]));
    let forms: [&dyn Fn(&str) -> String; 5] = [&spaced, &hyphen, &padded, &fw, &fw_spaced];
    for (i, form) in forms.into_iter().enumerate() {
        let dest = phone_n(i as u32);
        let (ticket, code) = env.issue(&dest).await;
        let typed = form(&code);
        assert_ne!(typed, code);
        let verified = env.verify(&ticket.challenge_id, &typed, &dest).await;
        assert!(verified.is_ok(), "{typed:?} for {code}: {verified:?}");
    }
}

#[tokio::test]
async fn malformed_input_counts_as_a_wrong_code() {
    let env = env();
    let (ticket, code) = env.issue(&phone()).await;
    let id = ticket.challenge_id;
    let too_short = &code[..5];
    let too_long = format!("{code}0");
    let letters = format!("{}a", &code[..5]);
    assert_eq!(
        refusal(env.verify(&id, too_short, &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    assert_eq!(
        refusal(env.verify(&id, &too_long, &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(3)
        })
    );
    assert_eq!(
        refusal(env.verify(&id, &letters, &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(2)
        })
    );
    assert_eq!(
        refusal(env.verify(&id, "", &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(1)
        })
    );
    env.verify(&id, &code, &phone()).await.unwrap();
}

#[tokio::test]
async fn code_expires_at_exactly_ten_minutes() {
    let env = env();
    let (early, early_code) = env.issue(&phone_n(1)).await;
    let (late, late_code) = env.issue(&phone_n(2)).await;

    env.clock
        .advance(Duration::minutes(10) - Duration::seconds(1));
    env.verify(&early.challenge_id, &early_code, &phone_n(1))
        .await
        .expect("accepted at 9:59");

    env.clock.advance(Duration::seconds(1));
    assert_eq!(env.now(), late.expires_at);
    assert_eq!(
        refusal(
            env.verify(&late.challenge_id, &late_code, &phone_n(2))
                .await
        ),
        Refusal::Code(CodeRefusal::Expired)
    );
    // A wrong code after expiry is "expired" too, and counts nothing.
    assert_eq!(
        refusal(
            env.verify(&late.challenge_id, &other_code(&late_code), &phone_n(2))
                .await
        ),
        Refusal::Code(CodeRefusal::Expired)
    );
    assert_eq!(env.record(&late.challenge_id).await.failed_attempts, 0);
}

#[tokio::test]
async fn expiry_is_exact_to_the_nanosecond() {
    let env = env();
    let (ticket, code) = env.issue(&phone()).await;
    env.clock
        .advance(Duration::minutes(10) - Duration::nanoseconds(1));
    // One nanosecond before expiry a wrong code is still a wrong code...
    assert_eq!(
        refusal(
            env.verify(&ticket.challenge_id, &other_code(&code), &phone())
                .await
        ),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    env.clock.advance(Duration::nanoseconds(1));
    // ...and at expiry even the right one is refused.
    assert_eq!(
        refusal(env.verify(&ticket.challenge_id, &code, &phone()).await),
        Refusal::Code(CodeRefusal::Expired)
    );
}

#[tokio::test]
async fn five_wrong_codes_kill_the_challenge() {
    let env = env();
    let (ticket, code) = env.issue(&phone()).await;
    let id = ticket.challenge_id;
    let wrong = other_code(&code);
    for left in [4, 3, 2, 1] {
        assert_eq!(
            refusal(env.verify(&id, &wrong, &phone()).await),
            Refusal::Code(CodeRefusal::WrongCode {
                attempts_left: Some(left)
            })
        );
    }
    assert_eq!(
        refusal(env.verify(&id, &wrong, &phone()).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
    let record = env.record(&id).await;
    assert_eq!(record.failed_attempts, 5);
    assert_eq!(record.state, ChallengeState::Exhausted);

    assert_eq!(
        refusal(env.verify(&id, &code, &phone()).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
    assert_eq!(
        env.record(&id).await.failed_attempts,
        5,
        "no further counting"
    );
    // A dead challenge can't be revived by a resend.
    env.clock.advance(Duration::minutes(1));
    assert_eq!(
        refusal(env.challenges.resend(&id, None).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
    assert_eq!(
        refusal(env.challenges.another_option(&id, None).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
    assert_eq!(env.gateway.messages().len(), 1);
}

#[tokio::test]
async fn max_attempts_is_a_knob() {
    let mut policy = CodePolicy::default();
    policy.max_attempts = 2;
    let env = env_with(|b| b.policy(policy));
    let (ticket, code) = env.issue(&phone()).await;
    let wrong = other_code(&code);
    assert_eq!(
        refusal(env.verify(&ticket.challenge_id, &wrong, &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(1)
        })
    );
    assert_eq!(
        refusal(env.verify(&ticket.challenge_id, &wrong, &phone()).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
}

#[tokio::test]
async fn purpose_and_destination_mismatches_are_refused_and_counted() {
    let env = env();
    let (ticket, code) = env.issue(&phone()).await;
    let id = ticket.challenge_id;

    let err = env
        .challenges
        .verify(&id, &code, &Purpose::SignUp, &phone())
        .await;
    assert_eq!(refusal(err), Refusal::Code(CodeRefusal::PurposeMismatch));
    let err = env
        .challenges
        .verify(&id, &code, &Purpose::SignIn, &phone_n(9))
        .await;
    assert_eq!(
        refusal(err),
        Refusal::Code(CodeRefusal::DestinationMismatch)
    );
    let err = env
        .challenges
        .verify(&id, &code, &Purpose::Other("x".into()), &phone_n(9))
        .await;
    assert_eq!(refusal(err), Refusal::Code(CodeRefusal::PurposeMismatch));
    assert_eq!(env.record(&id).await.failed_attempts, 3);

    // They used three of the five attempts.
    assert_eq!(
        refusal(env.verify(&id, &other_code(&code), &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(1)
        })
    );
    env.verify(&id, &code, &phone()).await.unwrap();
}

#[tokio::test]
async fn mismatches_can_exhaust_the_challenge() {
    let env = env();
    let (ticket, code) = env.issue(&phone()).await;
    for _ in 0..5 {
        let err = env
            .challenges
            .verify(&ticket.challenge_id, &code, &Purpose::StepUp, &phone())
            .await;
        assert_eq!(refusal(err), Refusal::Code(CodeRefusal::PurposeMismatch));
    }
    assert_eq!(
        refusal(env.verify(&ticket.challenge_id, &code, &phone()).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
}

#[tokio::test]
async fn unknown_challenge_is_refused() {
    let env = env();
    let id = ChallengeId::from_bytes([0x5a; 16]);
    assert_eq!(
        refusal(env.verify(&id, "123456", &phone()).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(
        refusal(env.challenges.resend(&id, None).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(
        refusal(env.challenges.another_option(&id, None).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(
        refusal(env.challenges.poll_link(&id, &Purpose::SignIn).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(
        env.events.events(),
        vec![
            Event::Failed {
                challenge: Some(id),
                account: None,
                reason: Refusal::Code(CodeRefusal::Unknown),
            };
            4
        ]
    );
    assert!(env.gateway.attempts().is_empty());
}

// ---------------------------------------------------------------- resending

#[tokio::test]
async fn resend_waits_for_the_cooldown() {
    let env = env();
    let (ticket, first) = env.issue(&phone()).await;
    let id = ticket.challenge_id;

    assert_eq!(
        refusal(env.challenges.resend(&id, None).await),
        Refusal::Send(SendRefusal::Cooldown {
            retry_at: t0() + Duration::seconds(60)
        })
    );
    env.clock.advance(Duration::seconds(59));
    assert_eq!(
        refusal(env.challenges.resend(&id, None).await),
        Refusal::Send(SendRefusal::Cooldown {
            retry_at: t0() + Duration::seconds(60)
        })
    );
    assert_eq!(env.gateway.messages().len(), 1);

    env.clock.advance(Duration::seconds(1));
    let again = env.challenges.resend(&id, None).await.unwrap();
    let second = env.secret_to(PHONE);
    assert_ne!(first, second, "a resend sends a new code");
    assert_eq!(again.challenge_id, id);
    assert_eq!(again.channel, Channel::Sms);
    assert_eq!(again.reason, ChannelReason::FirstChoice);
    assert_eq!(again.masked_destination, "+81 **-****-**78");
    assert_eq!(
        again.expires_at,
        t0() + Duration::seconds(60) + Duration::minutes(10)
    );
    assert_eq!(again.resend_available_at, t0() + Duration::seconds(120));
    assert_eq!(again.sends_left, 3);
    assert_eq!(env.gateway.sent_to(PHONE).len(), 2);

    // The cooldown restarts from the latest send.
    env.clock.advance(Duration::seconds(30));
    assert_eq!(
        refusal(env.challenges.resend(&id, None).await),
        Refusal::Send(SendRefusal::Cooldown {
            retry_at: t0() + Duration::seconds(120)
        })
    );
}

/// The challenge a failed delivery names.
#[track_caller]
fn undelivered(result: Result<Ticket, Error>, kind: DeliveryErrorKind) -> ChallengeId {
    match result {
        Err(Error::Delivery {
            challenge: Some(id),
            source,
            ..
        }) if source.kind() == kind => id,
        other => panic!("expected a {kind:?} delivery error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_send_that_failed_transiently_starts_no_cooldown() {
    let env = env();
    env.gateway.fail_next(DeliveryErrorKind::Transient);
    let id = undelivered(
        env.challenges
            .issue(IssueRequest::new(phone(), Purpose::SignIn))
            .await,
        DeliveryErrorKind::Transient,
    );
    assert!(env.record(&id).await.sends[0].failed_transiently);

    // Nothing reached the user: "resend" works at once, and delivers.
    let ticket = env.challenges.resend(&id, None).await.unwrap();
    assert_eq!(ticket.challenge_id, id);
    assert_eq!(env.gateway.sent_to(PHONE).len(), 1);
    // The cooldown counts from this send; the failed one used a send.
    assert_eq!(ticket.resend_available_at, t0() + Duration::seconds(60));
    assert_eq!(ticket.sends_left, 3);
    let record = env.record(&id).await;
    assert!(!record.sends[1].failed_transiently);
    assert_eq!(record.delivery_attempts, 2);

    // After a send that went out, the cooldown holds.
    assert_eq!(
        refusal(env.challenges.resend(&id, None).await),
        Refusal::Send(SendRefusal::Cooldown {
            retry_at: t0() + Duration::seconds(60)
        })
    );

    // A later resend that fails transiently doesn't restart it either: the
    // next one counts from the last send that went out.
    env.clock.advance(Duration::seconds(60));
    env.gateway.fail_next(DeliveryErrorKind::RateLimited);
    undelivered(
        env.challenges.resend(&id, None).await,
        DeliveryErrorKind::RateLimited,
    );
    let again = env.challenges.resend(&id, None).await.unwrap();
    assert_eq!(again.resend_available_at, env.now() + Duration::seconds(60));
    assert_eq!(again.sends_left, 1);
    let code = env.secret_to(PHONE);
    env.verify(&id, &code, &phone()).await.unwrap();
}

#[tokio::test]
async fn a_send_that_failed_permanently_keeps_the_cooldown() {
    // Resending on the same channel can't help: "another option" can.
    let env = env();
    env.gateway.fail_next(DeliveryErrorKind::InvalidDestination);
    let id = undelivered(
        env.challenges
            .issue(IssueRequest::new(phone(), Purpose::SignIn))
            .await,
        DeliveryErrorKind::InvalidDestination,
    );
    assert!(!env.record(&id).await.sends[0].failed_transiently);
    assert_eq!(
        refusal(env.challenges.resend(&id, None).await),
        Refusal::Send(SendRefusal::Cooldown {
            retry_at: t0() + Duration::seconds(60)
        })
    );
    env.challenges.another_option(&id, None).await.unwrap();
}

#[tokio::test]
async fn sends_that_failed_transiently_still_count_toward_the_limits() {
    let env = env();
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Transient);
    let id = undelivered(
        env.challenges
            .issue(IssueRequest::new(phone(), Purpose::SignIn))
            .await,
        DeliveryErrorKind::Transient,
    );
    for _ in 0..4 {
        undelivered(
            env.challenges.resend(&id, None).await,
            DeliveryErrorKind::Transient,
        );
    }
    assert_eq!(env.gateway.attempts().len(), 5);
    assert!(env.gateway.messages().is_empty());

    // The challenge has used its five sends…
    assert!(matches!(
        refusal(env.challenges.resend(&id, None).await),
        Refusal::Send(SendRefusal::SendsUsedUp)
    ));
    // …and the number its five per ten minutes, even with SMS working again.
    env.gateway.heal();
    assert_eq!(
        refusal(
            env.challenges
                .issue(IssueRequest::new(phone(), Purpose::SignIn))
                .await
        ),
        Refusal::Send(SendRefusal::RateLimited {
            limit: LimitKind::Destination,
            retry_at: t0() + Duration::minutes(10),
        })
    );
    assert_eq!(env.gateway.attempts().len(), 5);
}

#[tokio::test]
async fn earlier_code_still_verifies_after_a_resend() {
    let env = env();
    let (ticket, first) = env.issue(&phone()).await;
    env.clock.advance(Duration::seconds(60));
    env.challenges
        .resend(&ticket.challenge_id, None)
        .await
        .unwrap();
    let second = env.secret_to(PHONE);
    assert_ne!(first, second);
    env.verify(&ticket.challenge_id, &first, &phone())
        .await
        .expect("the first (late) code still works");
    assert_eq!(
        refusal(env.verify(&ticket.challenge_id, &second, &phone()).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
}

#[tokio::test]
async fn newest_code_verifies_after_a_resend() {
    let env = env();
    let (ticket, first) = env.issue(&phone()).await;
    env.clock.advance(Duration::seconds(60));
    env.challenges
        .resend(&ticket.challenge_id, None)
        .await
        .unwrap();
    let second = env.secret_to(PHONE);
    assert_ne!(first, second);
    env.verify(&ticket.challenge_id, &second, &phone())
        .await
        .expect("the new code works");
    assert_eq!(
        refusal(env.verify(&ticket.challenge_id, &first, &phone()).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
}

#[tokio::test]
async fn each_code_keeps_its_own_expiry() {
    let env = env();
    let (ticket, first) = env.issue(&phone()).await;
    let id = ticket.challenge_id;
    env.clock.advance(Duration::seconds(60));
    let again = env.challenges.resend(&id, None).await.unwrap();
    let second = env.secret_to(PHONE);

    // At the first code's expiry it is just a wrong code (the challenge lives on).
    env.clock.set(ticket.expires_at);
    assert_eq!(
        refusal(env.verify(&id, &first, &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    // The second one works until its own expiry, one minute later.
    env.clock.set(again.expires_at - Duration::seconds(1));
    env.verify(&id, &second, &phone()).await.unwrap();

    // And on another challenge, at the second code's expiry everything is over.
    let (ticket, _) = env.issue(&phone_n(1)).await;
    env.clock.advance(Duration::seconds(60));
    let again = env
        .challenges
        .resend(&ticket.challenge_id, None)
        .await
        .unwrap();
    let second = env.secret_to(phone_n(1).address());
    env.clock.set(again.expires_at);
    assert_eq!(
        refusal(env.verify(&ticket.challenge_id, &second, &phone_n(1)).await),
        Refusal::Code(CodeRefusal::Expired)
    );
}

#[tokio::test]
async fn wrong_attempts_are_shared_across_sends() {
    let env = env();
    let (ticket, first) = env.issue(&phone()).await;
    let id = ticket.challenge_id;
    let wrong = |c: &str| other_code(c);
    assert_eq!(
        refusal(env.verify(&id, &wrong(&first), &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    assert_eq!(
        refusal(env.verify(&id, &wrong(&first), &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(3)
        })
    );
    env.clock.advance(Duration::seconds(60));
    env.challenges.resend(&id, None).await.unwrap();
    let second = env.secret_to(PHONE);
    let bad = (0..)
        .map(|n| format!("{n:06}"))
        .find(|c| c != &first && c != &second)
        .unwrap();
    assert_eq!(
        refusal(env.verify(&id, &bad, &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(2)
        })
    );
    assert_eq!(
        refusal(env.verify(&id, &bad, &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(1)
        })
    );
    assert_eq!(
        refusal(env.verify(&id, &bad, &phone()).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
    assert_eq!(
        refusal(env.verify(&id, &second, &phone()).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
}

#[tokio::test]
async fn at_most_five_sends_per_challenge() {
    let env = env();
    let (ticket, _) = env.issue(&phone()).await;
    let id = ticket.challenge_id;
    for left in [3, 2, 1, 0] {
        env.clock.advance(Duration::seconds(60));
        let last = env.challenges.resend(&id, None).await.unwrap();
        assert_eq!(last.sends_left, left);
    }
    assert_eq!(env.gateway.sent_to(PHONE).len(), 5);
    env.clock.advance(Duration::seconds(60));
    assert_eq!(
        refusal(env.challenges.resend(&id, None).await),
        Refusal::Send(SendRefusal::SendsUsedUp)
    );
    assert_eq!(
        refusal(env.challenges.another_option(&id, None).await),
        Refusal::Send(SendRefusal::SendsUsedUp)
    );
    assert_eq!(env.gateway.sent_to(PHONE).len(), 5);
    // Every one of the five codes still verifies (the last one here).
    let code = env.secret_to(PHONE);
    env.verify(&id, &code, &phone()).await.unwrap();
}

#[tokio::test]
async fn another_option_switches_to_voice_once() {
    let env = env();
    let (ticket, sms_code) = env.issue(&phone()).await;
    let id = ticket.challenge_id;
    // No cooldown for "another option".
    let voice = env.challenges.another_option(&id, None).await.unwrap();
    assert_eq!(voice.channel, Channel::Voice);
    assert_eq!(voice.reason, ChannelReason::AnotherOption);
    assert_eq!(voice.sends_left, 3);
    let message = env.gateway.last_to(PHONE).unwrap();
    assert_eq!(message.channel, Channel::Voice);
    let voice_code = env.secret_to(PHONE);
    assert_ne!(voice_code, sms_code);
    // The voice text spells the code out.
    let spelled = voice_code
        .chars()
        .map(String::from)
        .collect::<Vec<_>>()
        .join(", ");
    assert!(message.body.expose_secret().contains(&spelled));

    assert_eq!(
        refusal(env.challenges.another_option(&id, None).await),
        Refusal::Send(SendRefusal::NoMoreOptions)
    );
    let verified = env.verify(&id, &voice_code, &phone()).await.unwrap();
    assert_eq!(verified.channel, Channel::Voice);
}

#[tokio::test]
async fn resend_after_another_option_stays_on_voice() {
    let env = env();
    let (ticket, _) = env.issue(&phone()).await;
    env.challenges
        .another_option(&ticket.challenge_id, None)
        .await
        .unwrap();
    env.clock.advance(Duration::seconds(60));
    let again = env
        .challenges
        .resend(&ticket.challenge_id, None)
        .await
        .unwrap();
    assert_eq!(again.channel, Channel::Voice);
    assert_eq!(env.gateway.last_to(PHONE).unwrap().channel, Channel::Voice);
}

// ---------------------------------------------------------------- send limits

#[tokio::test]
async fn per_destination_limit_and_reset() {
    let env = env();
    for _ in 0..5 {
        env.issue(&phone()).await;
    }
    let sixth = env
        .challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await;
    assert_eq!(
        refusal(sixth),
        Refusal::Send(SendRefusal::RateLimited {
            limit: LimitKind::Destination,
            retry_at: t0() + Duration::minutes(10),
        })
    );
    assert_eq!(env.gateway.sent_to(PHONE).len(), 5);
    // Another number is unaffected.
    env.issue(&phone_n(1)).await;

    env.clock
        .advance(Duration::minutes(10) - Duration::seconds(1));
    assert!(matches!(
        refusal(
            env.challenges
                .issue(IssueRequest::new(phone(), Purpose::SignIn))
                .await
        ),
        Refusal::Send(SendRefusal::RateLimited {
            limit: LimitKind::Destination,
            ..
        })
    ));
    env.clock.advance(Duration::seconds(1));
    env.issue(&phone()).await;
    assert_eq!(env.gateway.sent_to(PHONE).len(), 6);
}

#[tokio::test]
async fn resends_count_towards_the_destination_limit() {
    let env = env();
    let (ticket, _) = env.issue(&phone()).await;
    for _ in 0..3 {
        env.issue(&phone()).await;
    }
    env.clock.advance(Duration::seconds(60));
    env.challenges
        .resend(&ticket.challenge_id, None)
        .await
        .unwrap();
    env.clock.advance(Duration::seconds(60));
    assert_eq!(
        refusal(env.challenges.resend(&ticket.challenge_id, None).await),
        Refusal::Send(SendRefusal::RateLimited {
            limit: LimitKind::Destination,
            retry_at: t0() + Duration::minutes(10),
        })
    );
    assert_eq!(env.gateway.sent_to(PHONE).len(), 5);
}

#[tokio::test]
async fn per_destination_limit_ignores_email_case() {
    let env = env();
    for _ in 0..5 {
        env.issue(&Destination::email("taro@example.com").unwrap())
            .await;
    }
    let same_mailbox = Destination::email("TARO@example.com").unwrap();
    assert!(matches!(
        refusal(
            env.challenges
                .issue(IssueRequest::new(same_mailbox, Purpose::SignIn))
                .await
        ),
        Refusal::Send(SendRefusal::RateLimited {
            limit: LimitKind::Destination,
            ..
        })
    ));
}

#[tokio::test]
async fn per_account_limit() {
    let env = env();
    let account = AccountId::new("user-1");
    for i in 0..10 {
        env.issue_req(IssueRequest::new(phone_n(i), Purpose::SignIn).account(account.clone()))
            .await;
    }
    let eleventh = env
        .challenges
        .issue(IssueRequest::new(phone_n(10), Purpose::SignIn).account(account.clone()))
        .await;
    assert_eq!(
        refusal(eleventh),
        Refusal::Send(SendRefusal::RateLimited {
            limit: LimitKind::Account,
            retry_at: t0() + Duration::hours(1),
        })
    );
    assert!(env.gateway.sent_to(phone_n(10).address()).is_empty());
    // Another account may still send to that number.
    env.issue_req(
        IssueRequest::new(phone_n(10), Purpose::SignIn).account(AccountId::new("user-2")),
    )
    .await;
    env.clock.advance(Duration::hours(1));
    env.issue_req(IssueRequest::new(phone_n(11), Purpose::SignIn).account(account))
        .await;
}

#[tokio::test]
async fn per_caller_limit() {
    let env = env();
    for i in 0..20 {
        env.issue_req(IssueRequest::new(phone_n(i), Purpose::SignIn).caller("203.0.113.9"))
            .await;
    }
    let over = env
        .challenges
        .issue(IssueRequest::new(phone_n(20), Purpose::SignIn).caller("203.0.113.9"))
        .await;
    assert_eq!(
        refusal(over),
        Refusal::Send(SendRefusal::RateLimited {
            limit: LimitKind::Caller,
            retry_at: t0() + Duration::minutes(10),
        })
    );
    // Resends charge the caller too.
    let (ticket, _) = env.issue(&phone_n(21)).await;
    env.clock.advance(Duration::seconds(60));
    assert!(matches!(
        refusal(
            env.challenges
                .resend(&ticket.challenge_id, Some("203.0.113.9"))
                .await
        ),
        Refusal::Send(SendRefusal::RateLimited {
            limit: LimitKind::Caller,
            ..
        })
    ));
    env.challenges
        .resend(&ticket.challenge_id, Some("198.51.100.1"))
        .await
        .unwrap();
}

#[tokio::test]
async fn country_budget() {
    let env = env_with(|b| {
        b.limits(SendLimits {
            countries: vec![CountryBudget {
                prefix: "+81".into(),
                limit: RateLimit::new(2, Duration::hours(1)),
            }],
            ..SendLimits::default()
        })
    });
    env.issue(&phone_n(1)).await;
    env.issue(&phone_n(2)).await;
    let third = env
        .challenges
        .issue(IssueRequest::new(phone_n(3), Purpose::SignIn))
        .await;
    assert_eq!(
        refusal(third),
        Refusal::Send(SendRefusal::RateLimited {
            limit: LimitKind::Country,
            retry_at: t0() + Duration::hours(1),
        })
    );
    // Other countries and email are outside that budget.
    env.issue(&Destination::phone("+1 415 555 2671").unwrap())
        .await;
    env.issue(&Destination::email("taro@example.com").unwrap())
        .await;
    env.clock.advance(Duration::hours(1));
    env.issue(&phone_n(3)).await;
}

// ---------------------------------------------------------------- delivery

#[tokio::test]
async fn refused_sms_falls_back_to_voice() {
    let env = env();
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
    let (ticket, code) = env.issue(&phone()).await;
    assert_eq!(ticket.channel, Channel::Voice);
    assert_eq!(
        ticket.reason,
        ChannelReason::Fallback {
            from: Channel::Sms,
            kind: DeliveryErrorKind::Refused,
        }
    );
    let attempts = env.gateway.attempts();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].channel, Channel::Sms);
    assert_eq!(attempts[0].result, Err(DeliveryErrorKind::Refused));
    assert_eq!(attempts[1].channel, Channel::Voice);
    assert_eq!(attempts[1].result, Ok(()));
    let delivered = env.gateway.messages();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].channel, Channel::Voice);

    let events = env.events.events();
    assert!(events.contains(&Event::DeliveryFailed {
        challenge: ticket.challenge_id,
        channel: Channel::Sms,
        kind: DeliveryErrorKind::Refused,
        fallback: Some(Channel::Voice),
    }));
    assert!(events.contains(&Event::Delivered {
        challenge: ticket.challenge_id,
        channel: Channel::Voice,
        provider_id: Some("recorded-1".into()),
    }));
    // The "another option" is used up by the fallback.
    assert_eq!(
        refusal(
            env.challenges
                .another_option(&ticket.challenge_id, None)
                .await
        ),
        Refusal::Send(SendRefusal::NoMoreOptions)
    );

    let verified = env
        .verify(&ticket.challenge_id, &code, &phone())
        .await
        .unwrap();
    assert_eq!(verified.channel, Channel::Voice);
}

#[tokio::test]
async fn every_channel_refused_is_a_delivery_error() {
    let env = env();
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
    env.gateway
        .fail_channel(Channel::Voice, DeliveryErrorKind::Refused);
    let err = env
        .challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap_err();
    match &err {
        Error::Delivery {
            channel, source, ..
        } => {
            assert_eq!(*channel, Channel::Voice);
            assert_eq!(source.kind(), DeliveryErrorKind::Refused);
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_infrastructure());
    assert_eq!(env.gateway.attempts().len(), 2);
    assert!(env.gateway.messages().is_empty());
}

#[tokio::test]
async fn transient_failure_is_reported_not_swallowed() {
    let env = env();
    env.gateway.fail_next(DeliveryErrorKind::Transient);
    let err = env
        .challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap_err();
    match &err {
        Error::Delivery {
            channel, source, ..
        } => {
            assert_eq!(*channel, Channel::Sms);
            assert_eq!(source.kind(), DeliveryErrorKind::Transient);
        }
        other => panic!("expected a delivery error, got {other:?}"),
    }
    assert!(err.is_infrastructure());
    // No fallback on a transient failure, nothing delivered.
    assert_eq!(env.gateway.attempts().len(), 1);
    assert!(env.gateway.messages().is_empty());
    let events = env.events.events();
    let id = match &events[0] {
        Event::Issued { challenge, .. } => *challenge,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        events[1],
        Event::DeliveryFailed {
            challenge: id,
            channel: Channel::Sms,
            kind: DeliveryErrorKind::Transient,
            fallback: None,
        }
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Delivered { .. })));
}

#[tokio::test]
async fn provider_rate_limit_is_infrastructure_without_fallback() {
    let env = env();
    env.gateway.fail_next(DeliveryErrorKind::RateLimited);
    let err = env
        .challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Delivery { channel: Channel::Sms, source, .. } if source.kind() == DeliveryErrorKind::RateLimited)
    );
    assert!(err.is_infrastructure());
    assert_eq!(env.gateway.attempts().len(), 1);
}

#[tokio::test]
async fn a_misconfigured_gateway_neither_falls_back_nor_blames_the_contact() {
    // The provider refused the gateway's credentials or sender: voice would
    // only hide that, and the user's number is not at fault.
    let env = env();
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Configuration);
    let id = undelivered(
        env.challenges
            .issue(IssueRequest::new(phone(), Purpose::SignIn))
            .await,
        DeliveryErrorKind::Configuration,
    );
    assert_eq!(env.gateway.attempts().len(), 1);
    assert!(env.events.events().iter().any(|e| matches!(
        e,
        Event::DeliveryFailed {
            channel: Channel::Sms,
            fallback: None,
            kind: DeliveryErrorKind::Configuration,
            ..
        }
    )));
    let err = env.challenges.resend(&id, None).await.unwrap_err();
    assert!(err.is_infrastructure(), "{err:?}");
    assert_eq!(err.refusal(), None);

    // Nothing is on its way, so once the operator fixes the gateway the
    // user may resend at once, without waiting out a cooldown.
    assert!(env.record(&id).await.sends[0].failed_transiently);
    env.gateway.heal();
    env.challenges.resend(&id, None).await.unwrap();
    assert_eq!(env.gateway.sent_to(PHONE).len(), 1);
    assert_eq!(env.gateway.messages()[0].channel, Channel::Sms);
}

#[tokio::test]
async fn invalid_destination_does_not_fall_back() {
    let env = env();
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::InvalidDestination);
    let err = env
        .challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Delivery { channel: Channel::Sms, source, .. } if source.kind() == DeliveryErrorKind::InvalidDestination)
    );
    assert!(!err.is_infrastructure());
    assert_eq!(env.gateway.attempts().len(), 1);
    assert!(env.events.events().iter().any(|e| matches!(
        e,
        Event::DeliveryFailed {
            fallback: None,
            kind: DeliveryErrorKind::InvalidDestination,
            ..
        }
    )));
}

// ---------------------------------------------------------------- confirmation

#[tokio::test]
async fn masked_contact_confirmation_for_phones() {
    let env = env();
    let (ticket, _) = env
        .issue_req(IssueRequest::new(phone(), Purpose::SignIn).confirmation("5678"))
        .await;
    assert_eq!(ticket.channel, Channel::Sms);
    env.issue_req(IssueRequest::new(phone(), Purpose::SignIn).confirmation("５６７８"))
        .await;
    assert_eq!(env.gateway.attempts().len(), 2);

    for typed in ["1234", "", "567", "45678", "+819012345678"] {
        let err = env
            .challenges
            .issue(IssueRequest::new(phone(), Purpose::SignIn).confirmation(typed))
            .await;
        assert_eq!(
            refusal(err),
            Refusal::Send(SendRefusal::ContactNotConfirmed),
            "{typed:?}"
        );
    }
    assert_eq!(
        env.gateway.attempts().len(),
        2,
        "nothing sent on a mismatch"
    );
    assert_eq!(env.gateway.messages().len(), 2);
    // Refused confirmations charge no send limit: three more sends fit.
    for _ in 0..3 {
        env.issue(&phone()).await;
    }
}

#[tokio::test]
async fn masked_contact_confirmation_for_email() {
    let env = env();
    let email = Destination::email("taro@example.com").unwrap();
    for typed in ["taro@example.com", "taro@EXAMPLE.COM", " taro@Example.com "] {
        env.issue_req(IssueRequest::new(email.clone(), Purpose::SignIn).confirmation(typed))
            .await;
    }
    assert_eq!(env.gateway.messages().len(), 3);
    for typed in [
        "jiro@example.com",
        "taro@example.co",
        "taro",
        "ta**@example.com",
    ] {
        let err = env
            .challenges
            .issue(IssueRequest::new(email.clone(), Purpose::SignIn).confirmation(typed))
            .await;
        assert_eq!(
            refusal(err),
            Refusal::Send(SendRefusal::ContactNotConfirmed),
            "{typed:?}"
        );
    }
    assert_eq!(env.gateway.attempts().len(), 3);
}

#[tokio::test]
async fn failed_confirmations_count_towards_the_account_back_off() {
    let env = env();
    let account = AccountId::new("user-1");
    let request = |typed: &str| {
        IssueRequest::new(phone(), Purpose::SignIn)
            .account(account.clone())
            .confirmation(typed)
    };
    for _ in 0..3 {
        assert_eq!(
            refusal(env.challenges.issue(request("0000")).await),
            Refusal::Send(SendRefusal::ContactNotConfirmed)
        );
    }
    // Even the right confirmation waits now.
    assert_eq!(
        refusal(env.challenges.issue(request("5678")).await),
        Refusal::Account(AccountRefusal::Locked {
            until: Some(t0() + Duration::seconds(1)),
        })
    );
    assert!(env.gateway.attempts().is_empty());
    env.clock.advance(Duration::seconds(1));
    env.issue_req(request("5678")).await;
}

// ---------------------------------------------------------------- back-off

#[tokio::test]
async fn account_back_off_doubles_across_challenges_and_resets_on_success() {
    let env = env_with(|b| b.limits(generous_limits()));
    let account = AccountId::new("user-1");
    let env_ref = &env;
    let issue = || {
        let account = account.clone();
        async move {
            env_ref
                .issue_req(IssueRequest::new(phone(), Purpose::SignIn).account(account))
                .await
        }
    };
    let locked =
        |until: OffsetDateTime| Refusal::Account(AccountRefusal::Locked { until: Some(until) });

    let (first, code1) = issue().await;
    let wrong1 = other_code(&code1);
    for left in [4, 3, 2] {
        assert_eq!(
            refusal(env.verify(&first.challenge_id, &wrong1, &phone()).await),
            Refusal::Code(CodeRefusal::WrongCode {
                attempts_left: Some(left)
            })
        );
    }
    assert_eq!(
        last_lock(&env.events),
        Some(Event::Locked {
            account: account.clone(),
            consecutive: 3,
            until: Some(t0() + Duration::seconds(1)),
        })
    );
    // Within the second, even the right code is refused, and not counted.
    assert_eq!(
        refusal(env.verify(&first.challenge_id, &code1, &phone()).await),
        locked(t0() + Duration::seconds(1))
    );
    env.clock.advance(Duration::milliseconds(999));
    assert_eq!(
        refusal(env.verify(&first.challenge_id, &code1, &phone()).await),
        locked(t0() + Duration::seconds(1))
    );
    // Issuing for the account is refused too.
    assert_eq!(
        refusal(
            env.challenges
                .issue(IssueRequest::new(phone(), Purpose::SignIn).account(account.clone()))
                .await
        ),
        locked(t0() + Duration::seconds(1))
    );
    assert_eq!(env.record(&first.challenge_id).await.failed_attempts, 3);
    assert_eq!(
        env.store
            .failures(&account)
            .await
            .unwrap()
            .unwrap()
            .consecutive,
        3
    );

    // At the end of the second: allowed (and a 4th failure doubles the wait).
    env.clock.advance(Duration::milliseconds(1));
    assert_eq!(
        refusal(env.verify(&first.challenge_id, &wrong1, &phone()).await),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(1)
        })
    );
    let t1 = t0() + Duration::seconds(1);
    assert_eq!(
        refusal(env.verify(&first.challenge_id, &code1, &phone()).await),
        locked(t1 + Duration::seconds(2))
    );
    env.clock.advance(Duration::seconds(1));
    assert_eq!(
        refusal(env.verify(&first.challenge_id, &code1, &phone()).await),
        locked(t1 + Duration::seconds(2))
    );
    env.clock.advance(Duration::seconds(1));

    // A 5th failure, on another challenge: 4 s.
    let (second, code2) = issue().await;
    let t3 = env.now();
    assert_eq!(
        refusal(
            env.verify(&second.challenge_id, &other_code(&code2), &phone())
                .await
        ),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    assert_eq!(
        refusal(env.verify(&second.challenge_id, &code2, &phone()).await),
        locked(t3 + Duration::seconds(4))
    );
    env.clock.advance(Duration::seconds(4));

    // Success ends the run.
    env.verify(&second.challenge_id, &code2, &phone())
        .await
        .unwrap();
    assert_eq!(env.store.failures(&account).await.unwrap(), None);
    let (third, code3) = issue().await;
    for left in [4, 3] {
        assert_eq!(
            refusal(
                env.verify(&third.challenge_id, &other_code(&code3), &phone())
                    .await
            ),
            Refusal::Code(CodeRefusal::WrongCode {
                attempts_left: Some(left)
            })
        );
    }
    env.verify(&third.challenge_id, &code3, &phone())
        .await
        .expect("two failures are free again");
}

#[tokio::test]
async fn hard_stop_after_one_hundred_failures() {
    let mut policy = CodePolicy::default();
    policy.max_attempts = 1_000;
    policy.lifetime = Duration::days(3);
    let env = env_with(|b| b.policy(policy).limits(generous_limits()));
    let account = AccountId::new("user-1");
    let (ticket, code) = env
        .issue_req(IssueRequest::new(phone(), Purpose::SignIn).account(account.clone()))
        .await;
    let id = ticket.challenge_id;
    let wrong = other_code(&code);
    let max_delay = FailurePolicy::default().max_delay;
    for n in 1..=100u32 {
        assert_eq!(
            refusal(env.verify(&id, &wrong, &phone()).await),
            Refusal::Code(CodeRefusal::WrongCode {
                attempts_left: Some(1_000 - n)
            }),
            "failure {n}"
        );
        if n < 100 {
            env.clock.advance(max_delay);
        }
    }
    assert_eq!(
        last_lock(&env.events),
        Some(Event::Locked {
            account: account.clone(),
            consecutive: 100,
            until: None,
        })
    );
    assert_eq!(
        refusal(env.verify(&id, &code, &phone()).await),
        Refusal::Account(AccountRefusal::Locked { until: None })
    );
    env.clock.advance(Duration::days(1));
    assert_eq!(
        refusal(env.verify(&id, &code, &phone()).await),
        Refusal::Account(AccountRefusal::Locked { until: None })
    );
    assert_eq!(
        refusal(
            env.challenges
                .issue(IssueRequest::new(phone(), Purpose::SignIn).account(account.clone()))
                .await
        ),
        Refusal::Account(AccountRefusal::Locked { until: None })
    );
    assert_eq!(env.record(&id).await.failed_attempts, 100);

    env.challenges.reset_failures(&account).await.unwrap();
    env.verify(&id, &code, &phone()).await.unwrap();
}

#[tokio::test]
async fn no_back_off_without_an_account() {
    let env = env_with(|b| b.limits(generous_limits()));
    for _ in 0..3 {
        let (ticket, code) = env.issue(&phone()).await;
        for _ in 0..4 {
            env.verify(&ticket.challenge_id, &other_code(&code), &phone())
                .await
                .unwrap_err();
        }
        env.verify(&ticket.challenge_id, &code, &phone())
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------- links

#[tokio::test]
async fn link_message_carries_url_device_and_warning() {
    let env = env();
    let ticket = env
        .challenges
        .issue_link(LinkRequest::new(
            phone(),
            Purpose::SignIn,
            "Chrome on Windows",
        ))
        .await
        .unwrap();
    assert_eq!(ticket.channel, Channel::Sms);
    assert_eq!(ticket.reason, ChannelReason::FirstChoice);
    assert_eq!(ticket.masked_destination, "+81 **-****-**78");
    assert_eq!(ticket.expires_at, t0() + Duration::minutes(10));

    let message = env.gateway.last_to(PHONE).unwrap();
    assert_eq!(message.channel, Channel::Sms);
    let url = message.secret.clone().unwrap().expose_secret().to_owned();
    let token = url.strip_prefix(BASE).expect("URL = base + token");
    let body = message.body.expose_secret();
    assert!(body.contains(&url), "{body}");
    assert!(body.contains("Chrome on Windows"), "{body}");
    assert!(body.contains("do not open this link"), "{body}");

    // The token names the challenge and carries 256 random bits.
    let (id, secret) = token.split_once('.').unwrap();
    assert_eq!(id, ticket.challenge_id.to_string());
    assert_eq!(secret.len(), 52);
    let record = env.record(&ticket.challenge_id).await;
    assert!(record.link.is_some());
    assert!(record.sends.is_empty());
}

#[tokio::test]
async fn link_by_email() {
    let env = env();
    let email = Destination::email("taro@example.com").unwrap();
    let ticket = env
        .challenges
        .issue_link(LinkRequest::new(
            email.clone(),
            Purpose::SignIn,
            "Safari on iPhone",
        ))
        .await
        .unwrap();
    assert_eq!(ticket.channel, Channel::Email);
    let message = env.gateway.last_to("taro@example.com").unwrap();
    let url = message.secret.clone().unwrap().expose_secret().to_owned();
    assert!(!message.subject.clone().unwrap().contains(&url));
    assert!(message.body.expose_secret().contains(&url));
    let token = url.strip_prefix(BASE).unwrap();
    env.challenges.approve_link(token).await.unwrap();
    let status = env
        .challenges
        .poll_link(&ticket.challenge_id, &Purpose::SignIn)
        .await
        .unwrap();
    let LinkStatus::Approved(verified) = status else {
        panic!("{status:?}")
    };
    assert_eq!(verified.destination, email);
    assert_eq!(verified.channel, Channel::Email);
}

#[tokio::test]
async fn link_open_approve_poll() {
    let env = env();
    let account = AccountId::new("user-1");
    let ticket = env
        .challenges
        .issue_link(
            LinkRequest::new(phone(), Purpose::SignIn, "Chrome on Windows")
                .account(account.clone()),
        )
        .await
        .unwrap();
    let id = ticket.challenge_id;
    let token = env.secret_to(PHONE).strip_prefix(BASE).unwrap().to_owned();

    for _ in 0..2 {
        let view = env.challenges.open_link(&token).await.unwrap();
        assert_eq!(view.challenge_id, id);
        assert_eq!(view.device, "Chrome on Windows");
        assert_eq!(view.purpose, Purpose::SignIn);
        assert_eq!(view.expires_at, t0() + Duration::minutes(10));
    }
    assert_eq!(env.record(&id).await.state, ChallengeState::Pending);
    assert_eq!(
        env.challenges
            .poll_link(&id, &Purpose::SignIn)
            .await
            .unwrap(),
        LinkStatus::Pending {
            expires_at: t0() + Duration::minutes(10),
        }
    );
    assert_eq!(
        refusal(env.challenges.poll_link(&id, &Purpose::SignUp).await),
        Refusal::Code(CodeRefusal::PurposeMismatch)
    );

    env.challenges.approve_link(&token).await.unwrap();
    assert!(env.events.events().contains(&Event::LinkDecided {
        challenge: id,
        approved: true,
    }));
    let status = env
        .challenges
        .poll_link(&id, &Purpose::SignIn)
        .await
        .unwrap();
    let LinkStatus::Approved(verified) = status else {
        panic!("{status:?}")
    };
    assert_eq!(verified.challenge_id, id);
    assert_eq!(verified.purpose, Purpose::SignIn);
    assert_eq!(verified.account, Some(account));
    assert_eq!(verified.destination, phone());
    assert_eq!(verified.channel, Channel::Sms);

    assert_eq!(
        refusal(env.challenges.poll_link(&id, &Purpose::SignIn).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert_eq!(
        refusal(env.challenges.approve_link(&token).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert_eq!(
        refusal(env.challenges.deny_link(&token).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert_eq!(
        refusal(env.challenges.open_link(&token).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
}

#[tokio::test]
async fn approved_link_is_refused_before_collection_on_second_approve() {
    let env = env();
    let (id, token) = env.link(&phone()).await;
    env.challenges.approve_link(&token).await.unwrap();
    assert_eq!(
        refusal(env.challenges.approve_link(&token).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert_eq!(
        refusal(env.challenges.deny_link(&token).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert!(matches!(
        env.challenges.poll_link(&id, &Purpose::SignIn).await,
        Ok(LinkStatus::Approved(_))
    ));
}

#[tokio::test]
async fn denied_link() {
    let env = env();
    let (id, token) = env.link(&phone()).await;
    env.challenges.deny_link(&token).await.unwrap();
    assert!(env.events.events().contains(&Event::LinkDecided {
        challenge: id,
        approved: false,
    }));
    for _ in 0..2 {
        assert_eq!(
            refusal(env.challenges.poll_link(&id, &Purpose::SignIn).await),
            Refusal::Code(CodeRefusal::Denied)
        );
    }
    assert_eq!(
        refusal(env.challenges.approve_link(&token).await),
        Refusal::Code(CodeRefusal::Denied)
    );
    assert_eq!(
        refusal(env.challenges.open_link(&token).await),
        Refusal::Code(CodeRefusal::Denied)
    );
}

#[tokio::test]
async fn link_expires_after_ten_minutes() {
    let env = env();
    let (id, token) = env.link(&phone()).await;
    env.clock
        .advance(Duration::minutes(10) - Duration::seconds(1));
    env.challenges.open_link(&token).await.unwrap();
    assert!(matches!(
        env.challenges.poll_link(&id, &Purpose::SignIn).await,
        Ok(LinkStatus::Pending { .. })
    ));
    env.clock.advance(Duration::seconds(1));
    assert_eq!(
        refusal(env.challenges.open_link(&token).await),
        Refusal::Code(CodeRefusal::Expired)
    );
    assert_eq!(
        refusal(env.challenges.approve_link(&token).await),
        Refusal::Code(CodeRefusal::Expired)
    );
    assert_eq!(
        refusal(env.challenges.deny_link(&token).await),
        Refusal::Code(CodeRefusal::Expired)
    );
    assert_eq!(
        refusal(env.challenges.poll_link(&id, &Purpose::SignIn).await),
        Refusal::Code(CodeRefusal::Expired)
    );
}

/// Replaces the character at `at` with another one of the same alphabet.
fn tamper(token: &str, at: usize) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    chars[at] = match chars[at] {
        '0' => '1',
        c if c.is_ascii_hexdigit() && at < 32 => '0',
        'a' => 'q',
        _ => 'a',
    };
    chars.into_iter().collect()
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_unknown() {
    let env = env();
    let (a_id, a_token) = env.link(&phone()).await;
    let (b_id, b_token) = env.link(&phone_n(1)).await;
    assert_ne!(a_id, b_id);

    let mut bad: Vec<String> = vec![
        tamper(&a_token, 0),
        tamper(&a_token, 31),
        tamper(&a_token, 33),
        tamper(&a_token, 50),
        tamper(&a_token, 82),
    ];
    // Token of another challenge: A's id with B's secret, and B's with A's.
    let (a_prefix, a_secret) = a_token.split_once('.').unwrap();
    let (b_prefix, b_secret) = b_token.split_once('.').unwrap();
    bad.push(format!("{a_prefix}.{b_secret}"));
    bad.push(format!("{b_prefix}.{a_secret}"));
    // Malformed.
    bad.extend(
        [
            String::new(),
            a_prefix.to_owned(),
            format!("{a_prefix}."),
            format!("{a_prefix}.{}", &a_secret[..51]),
            format!("{a_prefix}.{a_secret}aaaaaaaa"),
            format!("{a_prefix}{a_secret}"),
            format!("{a_prefix}.{}", a_secret.to_uppercase()),
            format!("{}.{a_secret}", &a_prefix[..31]),
            "not a token".into(),
        ]
        .into_iter(),
    );
    for token in &bad {
        assert_ne!(token, &a_token);
        assert_eq!(
            refusal(env.challenges.open_link(token).await),
            Refusal::Code(CodeRefusal::Unknown),
            "open {token:?}"
        );
        assert_eq!(
            refusal(env.challenges.approve_link(token).await),
            Refusal::Code(CodeRefusal::Unknown),
            "approve {token:?}"
        );
        assert_eq!(
            refusal(env.challenges.deny_link(token).await),
            Refusal::Code(CodeRefusal::Unknown),
            "deny {token:?}"
        );
    }
    // Nothing happened to either link.
    for (id, token) in [(a_id, &a_token), (b_id, &b_token)] {
        assert_eq!(env.record(&id).await.state, ChallengeState::Pending);
        env.challenges.open_link(token).await.unwrap();
    }
}

#[tokio::test]
async fn token_with_changed_last_character_is_unknown() {
    let env = env();
    let (_, token) = env.link(&phone()).await;
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let last = *token.as_bytes().last().unwrap();
    let value = ALPHABET.iter().position(|&c| c == last).unwrap();
    let changed = ALPHABET[value ^ 1] as char;
    let tampered = format!("{}{changed}", &token[..token.len() - 1]);
    assert_ne!(tampered, token);
    assert_eq!(
        refusal(env.challenges.open_link(&tampered).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
}

#[tokio::test]
async fn links_and_codes_do_not_mix() {
    let env = env();
    let (link_id, token) = env.link(&phone()).await;
    let (code_ticket, code) = env.issue(&phone_n(1)).await;

    // A code check on a link challenge, and link calls on a code challenge.
    assert_eq!(
        refusal(env.verify(&link_id, &code, &phone()).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(
        refusal(env.challenges.resend(&link_id, None).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(
        refusal(
            env.challenges
                .poll_link(&code_ticket.challenge_id, &Purpose::SignIn)
                .await
        ),
        Refusal::Code(CodeRefusal::Unknown)
    );
    let (_, secret) = token.split_once('.').unwrap();
    let forged = format!("{}.{secret}", code_ticket.challenge_id);
    assert_eq!(
        refusal(env.challenges.open_link(&forged).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    // Both still work.
    env.verify(&code_ticket.challenge_id, &code, &phone_n(1))
        .await
        .unwrap();
    env.challenges.approve_link(&token).await.unwrap();
}

#[tokio::test]
async fn link_with_refused_sms_cannot_go_by_voice() {
    let env = env();
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
    let err = env
        .challenges
        .issue_link(LinkRequest::new(phone(), Purpose::SignIn, "Chrome"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Delivery { channel: Channel::Sms, source, .. } if source.kind() == DeliveryErrorKind::Refused),
        "{err:?}"
    );
    // No voice call was placed: a link can't be read out.
    assert_eq!(env.gateway.attempts().len(), 1);
}

#[tokio::test]
async fn link_delivery_failure_event_names_no_fallback() {
    let env = env();
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
    env.challenges
        .issue_link(LinkRequest::new(phone(), Purpose::SignIn, "Chrome"))
        .await
        .unwrap_err();
    let failed: Vec<_> = env
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::DeliveryFailed { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        matches!(failed[0], Event::DeliveryFailed { fallback: None, .. }),
        "{failed:?}"
    );
}

// ---------------------------------------------------------------- events

#[tokio::test]
async fn events_never_carry_codes_tokens_or_full_numbers() {
    let env = env_with(|b| b.origin("example.com"));
    let account = AccountId::new("user-1");
    let email = Destination::email("taro.yamada@example.com").unwrap();

    // Codes: issue, wrong, resend, verify; a fallback; an email.
    let (ticket, code) = env
        .issue_req(IssueRequest::new(phone(), Purpose::SignIn).account(account.clone()))
        .await;
    env.verify(&ticket.challenge_id, &other_code(&code), &phone())
        .await
        .unwrap_err();
    env.clock.advance(Duration::seconds(60));
    env.challenges
        .resend(&ticket.challenge_id, None)
        .await
        .unwrap();
    env.challenges
        .another_option(&ticket.challenge_id, None)
        .await
        .unwrap();
    let code = env.secret_to(PHONE);
    env.verify(&ticket.challenge_id, &code, &phone())
        .await
        .unwrap();
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
    env.issue(&phone()).await;
    env.gateway.heal();
    let (ticket, code) = env.issue(&email).await;
    env.verify(&ticket.challenge_id, &code, &email)
        .await
        .unwrap();
    env.challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn).confirmation("0000"))
        .await
        .unwrap_err();

    // Links: open, approve, poll; deny; a tampered token.
    let (id, token) = env.link(&phone()).await;
    env.challenges.open_link(&token).await.unwrap();
    env.challenges
        .open_link(&tamper(&token, 40))
        .await
        .unwrap_err();
    env.challenges.approve_link(&token).await.unwrap();
    env.challenges
        .poll_link(&id, &Purpose::SignIn)
        .await
        .unwrap();
    let (_, token) = env.link(&email).await;
    env.challenges.deny_link(&token).await.unwrap();

    let events = env.events.events();
    assert!(events.len() > 20, "{events:?}");
    let mut secrets: Vec<String> = Vec::new();
    for message in env.gateway.messages() {
        let secret = message.secret.unwrap().expose_secret().to_owned();
        if let Some(token) = secret.strip_prefix(BASE) {
            secrets.push(token.to_owned());
            secrets.push(token.split_once('.').unwrap().1.to_owned());
            secrets.push(secret.clone());
        } else {
            assert_eq!(secret.len(), 6);
            secrets.push(secret);
        }
    }
    assert!(secrets.len() >= 8);
    for forbidden in [
        PHONE,
        "819012345678",
        "9012345678",
        "12345678",
        "taro.yamada@example.com",
        "taro.yamada",
    ] {
        secrets.push(forbidden.to_owned());
    }
    for event in &events {
        for text in [format!("{event:?}"), format!("{event:#?}")] {
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "{secret} in {text}");
            }
        }
    }
    // ...while still saying what happened, with the masked contact.
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Issued { destination, .. } if destination == "+81 **-****-**78"
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Issued { destination, .. } if destination == "ta*********@example.com"
    )));
}

// ---------------------------------------------------------------------------
// Lifetimes of a whole challenge
// ---------------------------------------------------------------------------

#[tokio::test]
async fn resend_after_every_code_expired_is_refused() {
    let env = env();
    let ticket = env
        .challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap();
    env.clock.advance(Duration::minutes(10));
    let r = env.challenges.resend(&ticket.challenge_id, None).await;
    assert_eq!(refusal(r), Refusal::Code(CodeRefusal::Expired));
    let r = env
        .challenges
        .another_option(&ticket.challenge_id, None)
        .await;
    assert_eq!(refusal(r), Refusal::Code(CodeRefusal::Expired));
}

#[tokio::test]
async fn an_approval_must_be_collected_before_the_link_expires() {
    let env = env();
    let ticket = env
        .challenges
        .issue_link(LinkRequest::new(
            phone(),
            Purpose::SignIn,
            "Firefox on Linux",
        ))
        .await
        .unwrap();
    let url = env.gateway.last_secret_to(PHONE).unwrap();
    let token = url.expose_secret().strip_prefix(BASE).unwrap().to_owned();
    env.challenges.approve_link(&token).await.unwrap();
    env.clock.advance(Duration::minutes(10));
    let r = env
        .challenges
        .poll_link(&ticket.challenge_id, &Purpose::SignIn)
        .await;
    assert_eq!(refusal(r), Refusal::Code(CodeRefusal::Expired));
}

#[tokio::test]
async fn a_failed_delivery_names_the_challenge_to_resend() {
    let env = env();
    env.gateway.fail_next(DeliveryErrorKind::Transient);
    let err = env
        .challenges
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
        .unwrap_err();
    let Error::Delivery {
        challenge: Some(id),
        ..
    } = err
    else {
        panic!("expected a delivery error naming its challenge, got {err:?}");
    };
    env.clock.advance(Duration::minutes(1));
    let ticket = env.challenges.resend(&id, None).await.unwrap();
    assert_eq!(ticket.challenge_id, id);
}
