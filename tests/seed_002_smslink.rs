//! Seed 002, the SMSLINK article on SMS one-time codes: codes are valid for a
//! limited time; they go out through a delivery API that can fail (the user
//! refuses SMS, the carrier blocks the route), so a fallback channel — a
//! voice call reading the code — must exist, and a temporary failure must
//! leave something the user can resend.
//!
//! Played through `TwoFactor` with a `RecordingGateway` told to fail.

mod support;

use ninsho::{CodeRefusal, SendRefusal};
use std::sync::Arc;

use ninsho::gateway::{Attempt, DeliveryErrorKind, RecordingGateway};
use ninsho::model::{AccountId, ChallengeId, Channel};
use ninsho::service::ChannelReason;
use ninsho::service::{Method, MethodKind, Proof, TwoFactor};
use ninsho::store::MemoryStore;
use ninsho::{Error, ManualClock, Refusal};
use support::{T0, refusal, secret_to, t0, two_factor};
use time::Duration;

const PHONE: &str = "+819012345678";

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
    taro: AccountId,
}

/// taro has a verified mobile number and two-step sign-in on; the gateway's
/// record starts empty.
async fn env() -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = two_factor("SMSLINK", Arc::new(MemoryStore::new()), &gateway, &clock, 2)
        .build()
        .unwrap();
    let taro = AccountId::new("taro");
    let ticket = service
        .phone_send_code(&taro, "090-1234-5678", None, None)
        .await
        .unwrap();
    let code = secret_to(&gateway, PHONE);
    service
        .phone_confirm(&taro, &ticket.challenge_id, &code, true)
        .await
        .unwrap();
    gateway.clear();
    Env {
        service,
        gateway,
        clock,
        taro,
    }
}

impl Env {
    async fn method(&self, kind: MethodKind) -> Method {
        let methods = self.service.methods(&self.taro).await.unwrap();
        methods
            .into_iter()
            .find(|m| m.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} method"))
    }

    async fn complete(&self, challenge: &ChallengeId, code: &str) -> Result<MethodKind, Error> {
        self.service
            .sign_in_complete(&self.taro, Proof::Code { challenge, code }, None, None)
            .await
            .map(|s| s.method)
    }
}

/// The code as the voice call reads it out: "…code is: 1, 2, 3, 4, 5, 6.
/// Again: 1, 2, 3, 4, 5, 6."
fn heard(body: &str) -> String {
    let (_, spoken) = body
        .split_once("Your verification code is: ")
        .expect("the call reads a code");
    let (once, again) = spoken.split_once(". Again: ").expect("and repeats it");
    let digits: String = once.chars().filter(char::is_ascii_digit).collect();
    let repeated: String = again.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits, repeated, "the call repeats the same code");
    digits
}

fn attempt(
    channel: Channel,
    result: Result<(), DeliveryErrorKind>,
) -> (Channel, String, Result<(), DeliveryErrorKind>) {
    (channel, PHONE.to_owned(), result)
}

fn attempts(gateway: &RecordingGateway) -> Vec<(Channel, String, Result<(), DeliveryErrorKind>)> {
    gateway
        .attempts()
        .into_iter()
        .map(
            |Attempt {
                 channel,
                 to,
                 result,
                 ..
             }| (channel, to, result),
        )
        .collect()
}

#[tokio::test]
async fn a_code_works_for_ten_minutes_and_not_a_second_longer() {
    let env = env().await;
    let sms = env.method(MethodKind::Sms).await;
    let a = env
        .service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap();
    let b = env
        .service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap();
    assert_eq!(a.expires_at, t0() + Duration::minutes(10));
    assert_eq!(b.expires_at, t0() + Duration::minutes(10));
    let messages = env.gateway.sent_to(PHONE);
    assert_eq!(messages.len(), 2);
    let body = messages[0].body.expose_secret().to_owned();
    assert!(body.contains("Valid for 10 min"), "{body}");
    assert!(body.contains("Do not share this code"), "{body}");
    let code_a = messages[0].secret.clone().unwrap();
    let code_b = messages[1].secret.clone().unwrap();
    assert!(body.contains(code_a.expose_secret()));

    env.clock
        .advance(Duration::minutes(10) - Duration::seconds(1));
    assert_eq!(
        env.complete(&a.challenge_id, code_a.expose_secret())
            .await
            .unwrap(),
        MethodKind::Sms
    );
    env.clock.advance(Duration::seconds(1));
    let late = env.complete(&b.challenge_id, code_b.expose_secret()).await;
    assert_eq!(refusal(late), Refusal::Code(CodeRefusal::Expired));
    // An expired challenge can't be resent either: ask for a new code.
    let resend = env.service.resend(&env.taro, &b.challenge_id, None).await;
    assert_eq!(refusal(resend), Refusal::Code(CodeRefusal::Expired));
    let fresh = env
        .service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    assert_eq!(
        env.complete(&fresh.challenge_id, &code).await.unwrap(),
        MethodKind::Sms
    );
}

#[tokio::test]
async fn sms_refused_by_the_carrier_falls_back_to_a_voice_call() {
    let env = env().await;
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
    let sms = env.method(MethodKind::Sms).await;
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap();
    assert_eq!(ticket.channel, Channel::Voice);
    assert_eq!(
        ticket.reason,
        ChannelReason::Fallback {
            from: Channel::Sms,
            kind: DeliveryErrorKind::Refused,
        }
    );
    assert_eq!(ticket.masked_destination, "+81 **-****-**78");
    assert_eq!(
        attempts(&env.gateway),
        vec![
            attempt(Channel::Sms, Err(DeliveryErrorKind::Refused)),
            attempt(Channel::Voice, Ok(())),
        ]
    );
    let messages = env.gateway.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].channel, Channel::Voice);
    assert_eq!(messages[0].subject, None);

    // The user listens to the call and types what they heard.
    let code = heard(messages[0].body.expose_secret());
    assert_eq!(code, secret_to(&env.gateway, PHONE));
    let signed_in = env
        .service
        .sign_in_complete(
            &env.taro,
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &code,
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(signed_in.method, MethodKind::Voice);
    assert_eq!(signed_in.step_up.method(), MethodKind::Voice);
}

#[tokio::test]
async fn when_every_channel_refuses_the_error_names_the_last_one_and_the_challenge() {
    let env = env().await;
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
    env.gateway
        .fail_channel(Channel::Voice, DeliveryErrorKind::Refused);
    let sms = env.method(MethodKind::Sms).await;
    let err = env
        .service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap_err();
    let Error::Delivery {
        channel,
        challenge,
        source,
    } = &err
    else {
        panic!("expected a delivery error, got {err:?}");
    };
    assert_eq!(*channel, Channel::Voice);
    assert!(challenge.is_some());
    assert_eq!(source.kind(), DeliveryErrorKind::Refused);
    assert!(!err.is_infrastructure(), "a refusal is not worth retrying");
    assert_eq!(
        attempts(&env.gateway),
        vec![
            attempt(Channel::Sms, Err(DeliveryErrorKind::Refused)),
            attempt(Channel::Voice, Err(DeliveryErrorKind::Refused)),
        ]
    );
    assert!(env.gateway.messages().is_empty());
}

#[tokio::test]
async fn another_option_sends_the_code_by_voice_at_once() {
    let env = env().await;
    let sms = env.method(MethodKind::Sms).await;
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap();
    assert_eq!(
        (ticket.channel, ticket.reason),
        (Channel::Sms, ChannelReason::FirstChoice)
    );

    // The SMS does not arrive; "use another option" — no cooldown to wait.
    let voice = env
        .service
        .another_option(&env.taro, &ticket.challenge_id, None)
        .await
        .unwrap();
    assert_eq!(voice.challenge_id, ticket.challenge_id);
    assert_eq!(voice.channel, Channel::Voice);
    assert_eq!(voice.reason, ChannelReason::AnotherOption);
    assert_eq!(voice.sends_left, ticket.sends_left - 1);
    let messages = env.gateway.sent_to(PHONE);
    assert_eq!(
        messages.iter().map(|m| m.channel).collect::<Vec<_>>(),
        vec![Channel::Sms, Channel::Voice]
    );
    // Voice is the last option.
    let none = env
        .service
        .another_option(&env.taro, &ticket.challenge_id, None)
        .await;
    assert_eq!(refusal(none), Refusal::Send(SendRefusal::NoMoreOptions));

    let code = heard(messages[1].body.expose_secret());
    assert_eq!(
        env.complete(&ticket.challenge_id, &code).await.unwrap(),
        MethodKind::Voice
    );
}

#[tokio::test]
async fn a_temporary_failure_names_the_challenge_and_a_resend_delivers_once_healed() {
    let env = env().await;
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Transient);
    let sms = env.method(MethodKind::Sms).await;
    let err = env
        .service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap_err();
    assert!(err.is_infrastructure(), "worth retrying: {err:?}");
    let Error::Delivery {
        channel: Channel::Sms,
        challenge: Some(challenge),
        source,
    } = err
    else {
        panic!("expected an SMS delivery error with its challenge, got {err:?}");
    };
    assert_eq!(source.kind(), DeliveryErrorKind::Transient);
    // A temporary failure is retried on the same channel, not escalated to
    // a call.
    assert_eq!(
        attempts(&env.gateway),
        vec![attempt(Channel::Sms, Err(DeliveryErrorKind::Transient))]
    );

    // The provider recovers; the user presses "resend".
    env.gateway.heal();
    env.clock.advance(Duration::seconds(60));
    let ticket = env
        .service
        .resend(&env.taro, &challenge, None)
        .await
        .unwrap();
    assert_eq!(ticket.challenge_id, challenge);
    assert_eq!(
        (ticket.channel, ticket.reason),
        (Channel::Sms, ChannelReason::FirstChoice)
    );
    assert_eq!(
        ticket.expires_at,
        t0() + Duration::seconds(60) + Duration::minutes(10)
    );
    let code = secret_to(&env.gateway, PHONE);
    assert_eq!(
        env.complete(&challenge, &code).await.unwrap(),
        MethodKind::Sms
    );
}

#[tokio::test]
async fn signing_in_by_voice_reads_the_code_aloud() {
    let env = env().await;
    let voice = env.method(MethodKind::Voice).await;
    assert_eq!(
        voice.masked_destination.as_deref(),
        Some("+81 **-****-**78")
    );
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &voice, None, None)
        .await
        .unwrap();
    assert_eq!(
        (ticket.channel, ticket.reason),
        (Channel::Voice, ChannelReason::FirstChoice)
    );
    let messages = env.gateway.messages();
    assert_eq!(messages.len(), 1, "no SMS went out");
    assert_eq!(messages[0].channel, Channel::Voice);
    let body = messages[0].body.expose_secret().to_owned();
    assert!(body.contains("valid for 10 minutes"), "{body}");
    let code = heard(&body);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = env.complete(&ticket.challenge_id, wrong).await;
    assert_eq!(
        refusal(r),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    assert_eq!(
        env.complete(&ticket.challenge_id, &code).await.unwrap(),
        MethodKind::Voice
    );
}

#[tokio::test]
async fn a_sign_up_member_whose_delivery_failed_is_resent() {
    let env = env().await;
    env.gateway
        .fail_channel(Channel::Sms, DeliveryErrorKind::Transient);
    let ticket = env
        .service
        .signup_start("jiro@example.com", "080-1111-2222", None)
        .await
        .unwrap();
    // The email went out; the SMS did not, and the sign-up says so.
    assert!(ticket.members[0].sent.is_some());
    assert!(ticket.members[1].sent.is_none());
    assert_eq!(env.gateway.messages().len(), 1);

    env.gateway.heal();
    env.clock.advance(Duration::seconds(60));
    let resent = env
        .service
        .signup_resend(&ticket.id, 1, None)
        .await
        .unwrap();
    assert_eq!(resent.channel, Channel::Sms);
    let sms = secret_to(&env.gateway, "+818011112222");
    let mail = secret_to(&env.gateway, "jiro@example.com");
    env.service
        .signup_verify(&ticket.id, 1, &sms)
        .await
        .unwrap();
    let done = env
        .service
        .signup_verify(&ticket.id, 0, &mail)
        .await
        .unwrap();
    assert!(done.completed);
}
