//! Seed 000, EZSMS: a new account verifies its email address **and** its
//! mobile number in one sign-up, in either order, by one-time codes; the
//! sign-up completes only when both are verified. Japanese mobile numbers by
//! default, other countries only when the operator allows them.
//!
//! Played through `TwoFactor::signup_*` only, with the failure branches:
//! wrong code, resend (cooldown first), refused numbers, the 30-minute
//! expiry of the whole sign-up, a number already held by another account,
//! and completing exactly once.

mod support;

use ninsho::{CodeRefusal, ContactRefusal, SendRefusal};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use ninsho::contact::{ContactError, PhonePolicy, PhoneRefusal, Region};

use ninsho::gateway::RecordingGateway;
use ninsho::model::{AccountId, AccountRecord, Channel, Destination, DestinationKind};
use ninsho::service::TwoFactor;
use ninsho::service::{ContactPolicy, Progress, VerificationTicket};
use ninsho::store::{AccountCommit, AccountStore, ClaimChanges, MemoryStore, StoreError};
use ninsho::{Error, ManualClock, Refusal};
use support::{T0, db_down, delegate_store, refusal, secret_to, t0, take, two_factor};
use time::Duration;

const EMAIL: &str = "taro@example.com";
const MOBILE: &str = "+819012345678";

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
}

fn env() -> Env {
    env_with(|b| b)
}

fn env_with(
    configure: impl FnOnce(ninsho::service::TwoFactorBuilder) -> ninsho::service::TwoFactorBuilder,
) -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let builder = two_factor("EZSMS", Arc::new(MemoryStore::new()), &gateway, &clock, 0);
    Env {
        service: configure(builder).build().unwrap(),
        gateway,
        clock,
    }
}

/// Starts a sign-up with `email` and the number as typed on the form.
async fn start(env: &Env, email: &str, typed: &str) -> VerificationTicket {
    env.service
        .signup_start(email, typed, Some("203.0.113.7"))
        .await
        .unwrap()
}

/// Verifies both members (phone first) and returns the last progress.
async fn verify_both(env: &Env, ticket: &VerificationTicket, email: &str, phone: &str) -> Progress {
    let sms = secret_to(&env.gateway, phone);
    env.service
        .signup_verify(&ticket.id, 1, &sms)
        .await
        .unwrap();
    let mail = secret_to(&env.gateway, email);
    env.service
        .signup_verify(&ticket.id, 0, &mail)
        .await
        .unwrap()
}

#[track_caller]
fn phone_refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> PhoneRefusal {
    match result {
        Err(Error::Contact(ContactError::Phone(r))) => r,
        other => panic!("expected a phone refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn both_codes_go_out_at_once_and_the_phone_can_be_verified_first() {
    let env = env();
    let ticket = start(&env, EMAIL, "090-1234-5678").await;

    // One sign-up, two members, two messages: an email and an SMS.
    assert_eq!(ticket.expires_at, t0() + Duration::minutes(30));
    assert_eq!(ticket.members.len(), 2);
    let (email, phone) = (&ticket.members[0], &ticket.members[1]);
    assert_eq!((email.index, email.kind), (0, DestinationKind::Email));
    assert_eq!((phone.index, phone.kind), (1, DestinationKind::Phone));
    assert_eq!(email.masked_destination, "ta**@example.com");
    assert_eq!(phone.masked_destination, "+81 **-****-**78");
    assert_eq!(email.sent.as_ref().unwrap().channel, Channel::Email);
    assert_eq!(phone.sent.as_ref().unwrap().channel, Channel::Sms);
    let messages = env.gateway.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (messages[0].channel, messages[0].to.as_str()),
        (Channel::Email, EMAIL)
    );
    assert_eq!(
        (messages[1].channel, messages[1].to.as_str()),
        (Channel::Sms, MOBILE)
    );

    // Phone first.
    let sms = secret_to(&env.gateway, MOBILE);
    assert_eq!(sms.len(), 6);
    assert!(sms.chars().all(|c| c.is_ascii_digit()));
    let step = env
        .service
        .signup_verify(&ticket.id, 1, &sms)
        .await
        .unwrap();
    assert_eq!(step.verified, 1);
    assert_eq!(step.remaining, vec![0]);
    assert!(!step.completed);

    // After a reload the page shows where it stands.
    let status = env.service.signup_status(&ticket.id).await.unwrap();
    assert!(!status.members[0].verified);
    assert!(status.members[1].verified);
    assert!(!status.completed && !status.taken && !status.expired);

    // Completing early is refused, naming the contact still pending, and
    // changes nothing.
    let early = env
        .service
        .signup_complete(&ticket.id, &AccountId::new("taro"))
        .await;
    assert_eq!(
        refusal(early),
        Refusal::Contact(ContactRefusal::Unverified {
            email: true,
            phone: false
        })
    );

    let mail = secret_to(&env.gateway, EMAIL);
    let step = env
        .service
        .signup_verify(&ticket.id, 0, &mail)
        .await
        .unwrap();
    assert_done(&step, 0);

    // A verified member can't be verified again.
    let again = env.service.signup_verify(&ticket.id, 1, &sms).await;
    assert_eq!(refusal(again), Refusal::Code(CodeRefusal::AlreadyUsed));

    let taro = AccountId::new("taro");
    let contacts = env
        .service
        .signup_complete(&ticket.id, &taro)
        .await
        .unwrap();
    assert_eq!(contacts.len(), 2);
    assert!(contacts.iter().all(|c| c.verified && !c.two_factor));
    assert_eq!(contacts[0].destination, Destination::email(EMAIL).unwrap());
    assert_eq!(contacts[1].destination, Destination::phone(MOBILE).unwrap());
    // The number is now taro's: one owner per number.
    let owner = env
        .service
        .contact_owner(&Destination::phone(MOBILE).unwrap())
        .await
        .unwrap();
    assert_eq!(owner, Some(taro.clone()));
    // Verified contacts satisfy the contact check.
    let check = env.service.contact_check(&taro).await.unwrap();
    assert_eq!(check.decision, ninsho::grace::GraceDecision::Allow);
}

#[track_caller]
fn assert_done(step: &Progress, verified: usize) {
    assert_eq!(step.verified, verified);
    assert!(step.remaining.is_empty(), "{step:?}");
    assert!(step.completed);
}

#[tokio::test]
async fn the_email_can_be_verified_first_and_full_width_input_is_read() {
    let env = env();
    // Typed with an input method in full-width mode.
    let ticket = start(&env, "Hanako@Example.COM", "０８０－９８７６－５４３２").await;
    let mail = secret_to(&env.gateway, "Hanako@example.com");
    let step = env
        .service
        .signup_verify(&ticket.id, 0, &mail)
        .await
        .unwrap();
    assert_eq!(step.remaining, vec![1]);
    assert!(!step.completed);

    // The code as typed in full width, with a space.
    let sms = secret_to(&env.gateway, "+818098765432");
    let wide: String = sms
        .chars()
        .map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap())
        .collect();
    let typed = format!("{} {}", &wide[..9], &wide[9..]);
    let step = env
        .service
        .signup_verify(&ticket.id, 1, &typed)
        .await
        .unwrap();
    assert_done(&step, 1);

    let status = env.service.signup_status(&ticket.id).await.unwrap();
    assert!(status.completed && !status.taken);
    let contacts = env
        .service
        .signup_complete(&ticket.id, &AccountId::new("hanako"))
        .await
        .unwrap();
    assert_eq!(contacts.len(), 2);
    assert!(env.service.signup_status(&ticket.id).await.unwrap().taken);
}

#[tokio::test]
async fn a_wrong_code_says_how_many_attempts_are_left_and_the_right_one_still_works() {
    let env = env();
    let ticket = start(&env, EMAIL, "090-1234-5678").await;
    let sms = secret_to(&env.gateway, MOBILE);
    let wrong = if sms == "000000" { "111111" } else { "000000" };

    let first = env.service.signup_verify(&ticket.id, 1, wrong).await;
    assert_eq!(
        refusal(first),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    let second = env.service.signup_verify(&ticket.id, 1, wrong).await;
    assert_eq!(
        refusal(second),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(3)
        })
    );
    // The email code is no use for the phone.
    let mail = secret_to(&env.gateway, EMAIL);
    assert_ne!(mail, sms, "each member has its own code");
    let crossed = env.service.signup_verify(&ticket.id, 1, &mail).await;
    assert_eq!(
        refusal(crossed),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(2)
        })
    );
    // Not a member.
    let nobody = env.service.signup_verify(&ticket.id, 2, &sms).await;
    assert_eq!(refusal(nobody), Refusal::Code(CodeRefusal::Unknown));

    let step = env
        .service
        .signup_verify(&ticket.id, 1, &sms)
        .await
        .unwrap();
    assert_eq!(step.remaining, vec![0]);
    let step = env
        .service
        .signup_verify(&ticket.id, 0, &mail)
        .await
        .unwrap();
    assert!(step.completed);
}

#[tokio::test]
async fn five_wrong_codes_kill_the_member_and_resend_starts_it_afresh() {
    let env = env();
    let ticket = start(&env, EMAIL, "090-1234-5678").await;
    let sms = secret_to(&env.gateway, MOBILE);
    let wrong = if sms == "000000" { "111111" } else { "000000" };
    for left in (0..5).rev() {
        let r = env.service.signup_verify(&ticket.id, 1, wrong).await;
        let expected = if left == 0 {
            Refusal::Code(CodeRefusal::TooManyAttempts)
        } else {
            Refusal::Code(CodeRefusal::WrongCode {
                attempts_left: Some(left),
            })
        };
        assert_eq!(refusal(r), expected);
    }
    // Even the right code is refused now.
    let late = env.service.signup_verify(&ticket.id, 1, &sms).await;
    assert_eq!(refusal(late), Refusal::Code(CodeRefusal::TooManyAttempts));

    // "Resend" gives the member a fresh challenge (no cooldown to wait:
    // the old one is dead).
    let fresh = env
        .service
        .signup_resend(&ticket.id, 1, None)
        .await
        .unwrap();
    assert_eq!(fresh.channel, Channel::Sms);
    let sms2 = secret_to(&env.gateway, MOBILE);
    let step = env
        .service
        .signup_verify(&ticket.id, 1, &sms2)
        .await
        .unwrap();
    assert_eq!(step.remaining, vec![0]);
}

#[tokio::test]
async fn resend_waits_for_the_cooldown_then_sends_a_new_code() {
    let env = env();
    let ticket = start(&env, EMAIL, "090-1234-5678").await;
    let first = secret_to(&env.gateway, MOBILE);
    let sent = ticket.members[1].sent.clone().unwrap();
    assert_eq!(sent.resend_available_at, t0() + Duration::seconds(60));

    // Pressed at once: refused, with the instant it will work.
    let early = env.service.signup_resend(&ticket.id, 1, None).await;
    assert_eq!(
        refusal(early),
        Refusal::Send(SendRefusal::Cooldown {
            retry_at: t0() + Duration::seconds(60)
        })
    );
    assert_eq!(env.gateway.sent_to(MOBILE).len(), 1, "nothing was sent");

    env.clock.advance(Duration::seconds(59));
    let still = env.service.signup_resend(&ticket.id, 1, None).await;
    assert!(matches!(
        refusal(still),
        Refusal::Send(SendRefusal::Cooldown { .. })
    ));

    env.clock.advance(Duration::seconds(1));
    let again = env
        .service
        .signup_resend(&ticket.id, 1, None)
        .await
        .unwrap();
    assert_eq!(again.challenge_id, sent.challenge_id, "the same challenge");
    assert_eq!(again.channel, Channel::Sms);
    assert_eq!(again.sends_left, sent.sends_left - 1);
    assert_eq!(
        again.expires_at,
        t0() + Duration::seconds(60) + Duration::minutes(10)
    );
    assert_eq!(again.resend_available_at, t0() + Duration::seconds(120));
    assert_eq!(env.gateway.sent_to(MOBILE).len(), 2);
    let second = secret_to(&env.gateway, MOBILE);

    // The newest code works (and the email side was not touched).
    assert_eq!(env.gateway.sent_to(EMAIL).len(), 1);
    assert_ne!(second, first, "a new code");
    let code = &second;
    let step = env
        .service
        .signup_verify(&ticket.id, 1, code)
        .await
        .unwrap();
    assert_eq!(step.remaining, vec![0]);

    // A verified member has nothing to resend.
    env.clock.advance(Duration::seconds(60));
    let done = env.service.signup_resend(&ticket.id, 1, None).await;
    assert_eq!(refusal(done), Refusal::Code(CodeRefusal::AlreadyUsed));
}

#[tokio::test]
async fn landlines_ip_phones_and_foreign_numbers_are_refused_before_anything_is_sent() {
    let env = env();
    let cases = [
        ("03-1234-5678", PhoneRefusal::LandlineCannotReceiveSms),
        ("050-1234-5678", PhoneRefusal::IpPhone),
        (
            "+44 7400 123456",
            PhoneRefusal::RegionNotAllowed {
                region: Region::new("GB"),
            },
        ),
        (
            "+1 415 555 2671",
            PhoneRefusal::RegionNotAllowed {
                region: Region::new("US"),
            },
        ),
        ("090-1234-567", PhoneRefusal::InvalidNumber),
        ("taro", PhoneRefusal::NotANumber),
    ];
    for (typed, expected) in cases {
        let r = env.service.signup_start(EMAIL, typed, None).await;
        assert_eq!(phone_refusal(r), expected, "{typed}");
    }
    // A bad email address is refused too, with its own typed reason.
    let r = env
        .service
        .signup_start("taro@", "090-1234-5678", None)
        .await;
    assert!(
        matches!(r, Err(Error::Contact(ContactError::Email(_)))),
        "{r:?}"
    );
    assert!(env.gateway.attempts().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn foreign_numbers_are_accepted_once_the_operator_allows_their_country() {
    let gb = Region::new("GB").unwrap();
    let env = env_with(|b| {
        b.contact_policy(
            ContactPolicy::default().with_phone_policy(PhonePolicy::default().allow_region(gb)),
        )
    });
    let ticket = start(&env, EMAIL, "+44 7400 123456").await;
    assert_eq!(
        ticket.members[1].sent.as_ref().unwrap().channel,
        Channel::Sms
    );
    let progress = verify_both(&env, &ticket, EMAIL, "+447400123456").await;
    assert!(progress.completed);
    // Japanese mobiles still work; other countries still don't.
    start(&env, "jiro@example.com", "090-1111-2222").await;
    let us = env
        .service
        .signup_start(EMAIL, "+1 415 555 2671", None)
        .await;
    assert!(matches!(
        phone_refusal(us),
        PhoneRefusal::RegionNotAllowed { .. }
    ));
}

#[tokio::test]
async fn the_whole_sign_up_expires_after_30_minutes() {
    let env = env();
    let late = start(&env, EMAIL, "090-1234-5678").await;
    let in_time = start(&env, "hanako@example.com", "080-9876-5432").await;
    // Both phones verified within the first minutes.
    env.clock.advance(Duration::minutes(1));
    let sms = env.gateway.sent_to(MOBILE)[0].secret.clone().unwrap();
    env.service
        .signup_verify(&late.id, 1, sms.expose_secret())
        .await
        .unwrap();
    let sms = secret_to(&env.gateway, "+818098765432");
    env.service
        .signup_verify(&in_time.id, 1, &sms)
        .await
        .unwrap();

    // The email codes died after 10 minutes; at 25 minutes both users ask
    // for new ones, which get fresh challenges.
    env.clock.set(t0() + Duration::minutes(25));
    let stale = secret_to(&env.gateway, EMAIL);
    let expired_code = env.service.signup_verify(&late.id, 0, &stale).await;
    assert_eq!(refusal(expired_code), Refusal::Code(CodeRefusal::Expired));
    let t1 = env.service.signup_resend(&late.id, 0, None).await.unwrap();
    let t2 = env
        .service
        .signup_resend(&in_time.id, 0, None)
        .await
        .unwrap();
    assert_eq!(t1.expires_at, t0() + Duration::minutes(35));
    assert_eq!(t2.expires_at, t0() + Duration::minutes(35));

    // One second before the end: still in time.
    env.clock
        .set(t0() + Duration::minutes(30) - Duration::seconds(1));
    let mail = secret_to(&env.gateway, "hanako@example.com");
    let step = env
        .service
        .signup_verify(&in_time.id, 0, &mail)
        .await
        .unwrap();
    assert!(step.completed);

    // At 30 minutes the sign-up is over, even with a live code.
    env.clock.set(t0() + Duration::minutes(30));
    let mail = secret_to(&env.gateway, EMAIL);
    let over = env.service.signup_verify(&late.id, 0, &mail).await;
    assert_eq!(refusal(over), Refusal::Code(CodeRefusal::Expired));
    let status = env.service.signup_status(&late.id).await.unwrap();
    assert!(status.expired && !status.completed);
    let resend = env.service.signup_resend(&late.id, 0, None).await;
    assert_eq!(refusal(resend), Refusal::Code(CodeRefusal::Expired));
    let complete = env
        .service
        .signup_complete(&late.id, &AccountId::new("taro"))
        .await;
    assert_eq!(refusal(complete), Refusal::Code(CodeRefusal::Expired));

    // The one completed in time can still be collected.
    assert!(
        !env.service
            .signup_status(&in_time.id)
            .await
            .unwrap()
            .expired
    );
    env.service
        .signup_complete(&in_time.id, &AccountId::new("hanako"))
        .await
        .unwrap();
}

#[tokio::test]
async fn completing_with_a_number_another_account_holds_is_refused_and_registers_nothing() {
    let env = env();
    // taro signed up with the number first.
    let taro = AccountId::new("taro");
    let first = start(&env, EMAIL, "090-1234-5678").await;
    verify_both(&env, &first, EMAIL, MOBILE).await;
    env.service.signup_complete(&first.id, &taro).await.unwrap();

    // jiro proves he receives codes at the same number (a recycled number):
    // the start and the codes behave as for any number.
    env.clock.advance(Duration::minutes(1));
    let second = start(&env, "jiro@example.com", "090-1234-5678").await;
    assert!(second.members.iter().all(|m| m.sent.is_some()));
    let done = verify_both(&env, &second, "jiro@example.com", MOBILE).await;
    assert!(done.completed);

    let jiro = AccountId::new("jiro");
    let refused = env.service.signup_complete(&second.id, &jiro).await;
    assert_eq!(refusal(refused), Refusal::Contact(ContactRefusal::InUse));
    // All or nothing: not even the email address was registered.
    assert!(env.service.contacts(&jiro).await.unwrap().is_empty());
    let owner = env
        .service
        .contact_owner(&Destination::phone(MOBILE).unwrap())
        .await
        .unwrap();
    assert_eq!(owner, Some(taro.clone()));
    assert_eq!(env.service.contacts(&taro).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_sign_up_completes_exactly_once() {
    let env = env();
    let ticket = start(&env, EMAIL, "090-1234-5678").await;
    verify_both(&env, &ticket, EMAIL, MOBILE).await;
    let taro = AccountId::new("taro");
    env.service
        .signup_complete(&ticket.id, &taro)
        .await
        .unwrap();

    // Completing again for the same account (a retry) changes nothing.
    let twice = env
        .service
        .signup_complete(&ticket.id, &taro)
        .await
        .unwrap();
    assert_eq!(twice.len(), 2);
    // Nor can it register the contacts on a second account.
    let other = AccountId::new("mallory");
    let elsewhere = env.service.signup_complete(&ticket.id, &other).await;
    assert_eq!(refusal(elsewhere), Refusal::Code(CodeRefusal::AlreadyUsed));
    assert!(env.service.contacts(&other).await.unwrap().is_empty());
    // A made-up id is unknown.
    let made_up = ninsho::model::VerificationId::parse(&"9".repeat(32)).unwrap();
    let unknown = env.service.signup_status(&made_up).await;
    assert_eq!(refusal(unknown), Refusal::Code(CodeRefusal::Unknown));
}

/// A memory store whose next `n` contact commits fail as if the database
/// were down.
#[derive(Debug)]
struct FlakyContacts {
    inner: Arc<MemoryStore>,
    fail_commits: AtomicU32,
}

delegate_store!([] FlakyContacts, inner, support::directly =>
    ChallengeStore, LimitStore, DeviceStore, VerificationStore, StepStore, PurgeStore);

#[async_trait::async_trait]
impl AccountStore for FlakyContacts {
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
        if take(&self.fail_commits) {
            return Err(db_down());
        }
        self.inner
            .commit_account(book, expected_version, changes)
            .await
    }
    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        self.inner.delete_account(account).await
    }
}

#[tokio::test]
async fn a_completion_that_failed_on_the_store_can_be_retried() {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let store = Arc::new(FlakyContacts {
        inner: Arc::new(MemoryStore::new()),
        fail_commits: AtomicU32::new(0),
    });
    let service = two_factor("EZSMS", store.clone(), &gateway, &clock, 0)
        .build()
        .unwrap();
    let env = Env {
        service,
        gateway,
        clock,
    };
    let ticket = start(&env, EMAIL, "090-1234-5678").await;
    verify_both(&env, &ticket, EMAIL, MOBILE).await;

    let taro = AccountId::new("taro");
    store.fail_commits.store(1, Ordering::SeqCst);
    let down = env.service.signup_complete(&ticket.id, &taro).await;
    assert!(
        matches!(down, Err(Error::Store(_))),
        "the outage is reported: {down:?}"
    );
    assert!(env.service.contacts(&taro).await.unwrap().is_empty());

    // The database is back: the user presses the button again.
    let contacts = env
        .service
        .signup_complete(&ticket.id, &taro)
        .await
        .expect("a failed completion leaves the sign-up collectable");
    assert_eq!(contacts.len(), 2);
}
