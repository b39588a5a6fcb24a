//! Seed 004, Microsoft account contact verification: the user first
//! confirms the masked contact (the last four digits of a phone shown with
//! only its last two, or the whole email address shown with most of its
//! local part hidden) and only then is a code sent, by email, SMS or a
//! voice call; "don't ask again on this device"; "use another option";
//! authenticator-app setup; and a 7-day grace period for unverified
//! contacts after which sign-in is blocked until a contact is verified —
//! with "I can't reach any of these" to add a new one.
//!
//! Played through `TwoFactor` only.

mod support;

use ninsho::{AccountRefusal, CodeRefusal, SendRefusal};
use std::sync::Arc;

use ninsho::gateway::RecordingGateway;
use ninsho::grace::{GraceDecision, KindFilter, VerificationPath};
use ninsho::model::{AccountId, ChallengeId, Channel, ContactKey, Destination};
use ninsho::otp::Totp;
use ninsho::service::ChannelReason;
use ninsho::service::{Method, MethodKind, Proof, SignInStart, SignedIn, Skip, StepUp, TwoFactor};
use ninsho::store::MemoryStore;
use ninsho::{Error, ManualClock, Refusal};
use support::{T0, refusal, secret_to, t0, two_factor};
use time::Duration;

const PHONE: &str = "+819012345678";
const EMAIL: &str = "taro@example.com";

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
    taro: AccountId,
}

/// Masked-contact confirmation on, and email as a second factor (Microsoft
/// sends codes by email; it is off by default). taro has a verified phone
/// (two-step sign-in on) and a verified email address; the gateway's record
/// starts empty.
async fn env() -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = two_factor(
        "Microsoft account",
        Arc::new(MemoryStore::new()),
        &gateway,
        &clock,
        4,
    )
    .confirm_masked_contacts(true)
    .email_as_second_factor(true)
    .build()
    .unwrap();
    let taro = AccountId::new("taro");
    let ticket = service
        .phone_send_code(&taro, "090-1234-5678", None, None)
        .await
        .unwrap();
    let code = secret_to(&gateway, PHONE);
    service
        .phone_confirm(&taro, &ticket.challenge_id, &code, false)
        .await
        .unwrap();
    // Both contacts before two-step sign-in is on (afterwards a new one
    // needs a step-up).
    let email = Destination::email(EMAIL).unwrap();
    let ticket = service
        .contact_send_code(&taro, &email, None, None)
        .await
        .unwrap();
    let code = secret_to(&gateway, EMAIL);
    service
        .contact_confirm(&taro, &ticket.challenge_id, &code)
        .await
        .unwrap();
    service.enable_two_factor(&taro).await.unwrap();
    gateway.clear();
    Env {
        service,
        gateway,
        clock,
        taro,
    }
}

impl Env {
    async fn method(&self, account: &AccountId, kind: MethodKind) -> Method {
        self.service
            .methods(account)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} method"))
    }

    async fn complete(
        &self,
        challenge: &ChallengeId,
        code: &str,
        trust: Option<&str>,
    ) -> Result<SignedIn, Error> {
        self.service
            .sign_in_complete(&self.taro, Proof::Code { challenge, code }, trust, None)
            .await
    }

    /// A second step by SMS with the last four digits confirmed.
    async fn step_up(&self) -> StepUp {
        let sms = self.method(&self.taro, MethodKind::Sms).await;
        let ticket = self
            .service
            .sign_in_send_code(&self.taro, &sms, Some("5678"), None)
            .await
            .unwrap();
        let code = secret_to(&self.gateway, PHONE);
        self.complete(&ticket.challenge_id, &code, None)
            .await
            .unwrap()
            .step_up
    }
}

fn totp_code(uri: &str, at: time::OffsetDateTime) -> String {
    let unix = u64::try_from(at.unix_timestamp()).unwrap();
    Totp::from_uri(uri).unwrap().code_at(unix).to_string()
}

#[tokio::test]
async fn every_contact_method_asks_for_the_masked_contact_first() {
    let env = env().await;
    let SignInStart::Required { methods } =
        env.service.sign_in_begin(&env.taro, None).await.unwrap()
    else {
        panic!("two-step sign-in is on");
    };
    let shown: Vec<(MethodKind, Option<&str>, bool)> = methods
        .iter()
        .map(|m| {
            (
                m.kind,
                m.masked_destination.as_deref(),
                m.confirmation_required,
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (MethodKind::Sms, Some("+81 **-****-**78"), true),
            (MethodKind::Voice, Some("+81 **-****-**78"), true),
            (MethodKind::Email, Some("ta**@example.com"), true),
            (MethodKind::RecoveryCode, None, false),
        ]
    );
}

#[tokio::test]
async fn a_wrong_last_four_sends_nothing_and_the_right_one_sends_the_code() {
    let env = env().await;
    let sms = env.method(&env.taro, MethodKind::Sms).await;
    assert_eq!(sms.confirmation_digits, Some(4));
    // The two digits on screen are not the answer.
    for typed in [Some("1234"), None, Some("78")] {
        let r = env
            .service
            .sign_in_send_code(&env.taro, &sms, typed, None)
            .await;
        assert_eq!(
            refusal(r),
            Refusal::Send(SendRefusal::ContactNotConfirmed),
            "{typed:?}"
        );
    }
    assert!(env.gateway.attempts().is_empty(), "nothing was sent");
    // Past the back-off the third miss started.
    env.clock.advance(Duration::seconds(1));

    // Typed in full width: still the last four digits.
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &sms, Some("５６７８"), None)
        .await
        .unwrap();
    assert_eq!(ticket.channel, Channel::Sms);
    let code = secret_to(&env.gateway, PHONE);
    let signed_in = env
        .complete(&ticket.challenge_id, &code, None)
        .await
        .unwrap();
    assert_eq!(signed_in.method, MethodKind::Sms);
}

#[tokio::test]
async fn the_email_address_must_be_completed_in_full() {
    let env = env().await;
    let email = env.method(&env.taro, MethodKind::Email).await;
    for typed in ["taro@example.co", "ta@example.com", "example.com"] {
        let r = env
            .service
            .sign_in_send_code(&env.taro, &email, Some(typed), None)
            .await;
        assert_eq!(
            refusal(r),
            Refusal::Send(SendRefusal::ContactNotConfirmed),
            "{typed}"
        );
        // Past the failure back-off before the next try.
        env.clock.advance(Duration::minutes(1));
    }
    assert!(env.gateway.attempts().is_empty());

    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &email, Some("Taro@Example.COM"), None)
        .await
        .unwrap();
    assert_eq!(ticket.channel, Channel::Email);
    let message = env.gateway.last_to(EMAIL).unwrap();
    assert_eq!(
        message.subject.as_deref(),
        Some("Your Microsoft account sign-in code")
    );
    let code = secret_to(&env.gateway, EMAIL);
    let signed_in = env
        .complete(&ticket.challenge_id, &code, None)
        .await
        .unwrap();
    assert_eq!(signed_in.method, MethodKind::Email);
}

#[tokio::test]
async fn guessing_the_last_four_digits_runs_into_the_back_off() {
    let env = env().await;
    let sms = env.method(&env.taro, MethodKind::Sms).await;
    for guess in ["0000", "1111", "2222"] {
        let r = env
            .service
            .sign_in_send_code(&env.taro, &sms, Some(guess), None)
            .await;
        assert_eq!(refusal(r), Refusal::Send(SendRefusal::ContactNotConfirmed));
    }
    // The fourth try waits, even with the right digits.
    let r = env
        .service
        .sign_in_send_code(&env.taro, &sms, Some("5678"), None)
        .await;
    assert_eq!(
        refusal(r),
        Refusal::Account(AccountRefusal::Locked {
            until: Some(t0() + Duration::seconds(1)),
        })
    );
    assert!(env.gateway.attempts().is_empty());
    env.clock.advance(Duration::seconds(1));
    env.service
        .sign_in_send_code(&env.taro, &sms, Some("5678"), None)
        .await
        .unwrap();
    assert_eq!(env.gateway.messages().len(), 1);
}

#[tokio::test]
async fn a_code_by_voice_call_after_the_last_four_digits() {
    let env = env().await;
    let voice = env.method(&env.taro, MethodKind::Voice).await;
    let r = env
        .service
        .sign_in_send_code(&env.taro, &voice, Some("0000"), None)
        .await;
    assert_eq!(refusal(r), Refusal::Send(SendRefusal::ContactNotConfirmed));
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &voice, Some("5678"), None)
        .await
        .unwrap();
    assert_eq!(
        (ticket.channel, ticket.reason),
        (Channel::Voice, ChannelReason::FirstChoice)
    );
    let messages = env.gateway.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].channel, Channel::Voice);
    let code = secret_to(&env.gateway, PHONE);
    let signed_in = env
        .complete(&ticket.challenge_id, &code, None)
        .await
        .unwrap();
    assert_eq!(signed_in.method, MethodKind::Voice);
}

#[tokio::test]
async fn dont_ask_again_on_this_device() {
    let env = env().await;
    let sms = env.method(&env.taro, MethodKind::Sms).await;
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &sms, Some("5678"), None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    let signed_in = env
        .complete(&ticket.challenge_id, &code, Some("Edge on Windows"))
        .await
        .unwrap();
    let (token, info) = signed_in.device.unwrap();
    assert_eq!(info.label, "Edge on Windows");

    env.clock.advance(Duration::days(3));
    assert_eq!(
        env.service
            .sign_in_begin(&env.taro, Some(token.expose_secret()))
            .await
            .unwrap(),
        SignInStart::NotNeeded(Skip::TrustedDevice)
    );
    // Without the cookie (another browser): asked again.
    assert!(matches!(
        env.service.sign_in_begin(&env.taro, None).await.unwrap(),
        SignInStart::Required { .. }
    ));
}

#[tokio::test]
async fn use_another_option_calls_instead_or_picks_another_contact() {
    let env = env().await;
    let sms = env.method(&env.taro, MethodKind::Sms).await;
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &sms, Some("5678"), None)
        .await
        .unwrap();

    // "Use another option" on the same challenge: a call, no second
    // confirmation (the contact was confirmed), no cooldown.
    let call = env
        .service
        .another_option(&env.taro, &ticket.challenge_id, None)
        .await
        .unwrap();
    assert_eq!(
        (call.channel, call.reason),
        (Channel::Voice, ChannelReason::AnotherOption)
    );
    let code = secret_to(&env.gateway, PHONE);
    assert_eq!(
        env.gateway.messages().last().unwrap().channel,
        Channel::Voice
    );
    let signed_in = env
        .complete(&ticket.challenge_id, &code, None)
        .await
        .unwrap();
    assert_eq!(signed_in.method, MethodKind::Voice);

    // Or another contact from the list: the email address (confirmed in
    // full), which has no further option of its own.
    let email = env.method(&env.taro, MethodKind::Email).await;
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &email, Some(EMAIL), None)
        .await
        .unwrap();
    let none = env
        .service
        .another_option(&env.taro, &ticket.challenge_id, None)
        .await;
    assert_eq!(refusal(none), Refusal::Send(SendRefusal::NoMoreOptions));
    let code = secret_to(&env.gateway, EMAIL);
    let signed_in = env
        .complete(&ticket.challenge_id, &code, None)
        .await
        .unwrap();
    assert_eq!(signed_in.method, MethodKind::Email);
}

#[tokio::test]
async fn an_authenticator_app_is_set_up_with_a_step_up_and_signs_in_once_per_code() {
    let env = env().await;
    let r = env
        .service
        .authenticator_start(&env.taro, "taro@example.com", None)
        .await;
    assert_eq!(refusal(r), Refusal::Account(AccountRefusal::StepUpRequired));

    let proof = env.step_up().await;
    let setup = env
        .service
        .authenticator_start(&env.taro, "taro@example.com", Some(&proof))
        .await
        .unwrap();
    let uri = setup.uri.expose_secret().to_owned();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains("issuer=Microsoft%20account"), "{uri}");
    assert!(uri.contains(&format!("secret={}", setup.manual_key.expose_secret())));

    // Not a factor until confirmed.
    let methods = env.service.methods(&env.taro).await.unwrap();
    assert!(methods.iter().all(|m| m.kind != MethodKind::Authenticator));
    let early = env
        .service
        .sign_in_complete(
            &env.taro,
            Proof::Authenticator {
                code: &totp_code(&uri, t0()),
            },
            None,
            None,
        )
        .await;
    assert_eq!(refusal(early), Refusal::Code(CodeRefusal::Unknown));

    // A typo, then the code the app shows. Every guess counts against the
    // account's hard stop (100), but an app's codes have no per-code limit
    // to show: the refusal says none (the account's count is not a figure
    // for the UI). The attempt above, with no app to check against, was no
    // guess.
    let now_code = totp_code(&uri, t0());
    let typo = if now_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = env.service.authenticator_confirm(&env.taro, typo).await;
    assert_eq!(
        refusal(r),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: None
        })
    );
    env.service
        .authenticator_confirm(&env.taro, &now_code)
        .await
        .unwrap();
    let again = env
        .service
        .authenticator_confirm(&env.taro, &now_code)
        .await;
    assert_eq!(
        refusal(again),
        Refusal::Account(AccountRefusal::NotFound),
        "nothing pending any more"
    );

    // The app comes first among the methods.
    let methods = env.service.methods(&env.taro).await.unwrap();
    assert_eq!(methods[0].kind, MethodKind::Authenticator);
    assert_eq!(methods[0].masked_destination, None);
    assert!(!methods[0].confirmation_required);

    // The confirming code can't sign in: it was used.
    let replay = env
        .service
        .sign_in_complete(
            &env.taro,
            Proof::Authenticator { code: &now_code },
            None,
            None,
        )
        .await;
    assert_eq!(refusal(replay), Refusal::Code(CodeRefusal::AlreadyUsed));

    // Thirty seconds on, the next code signs in — once.
    env.clock.advance(Duration::seconds(30));
    let next = totp_code(&uri, t0() + Duration::seconds(30));
    let signed_in = env
        .service
        .sign_in_complete(
            &env.taro,
            Proof::Authenticator { code: &next },
            Some("Surface"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(signed_in.method, MethodKind::Authenticator);
    assert_eq!(signed_in.step_up.method(), MethodKind::Authenticator);
    assert!(signed_in.device.is_some());
    let replay = env
        .service
        .sign_in_complete(&env.taro, Proof::Authenticator { code: &next }, None, None)
        .await;
    assert_eq!(refusal(replay), Refusal::Code(CodeRefusal::AlreadyUsed));
}

#[tokio::test]
async fn an_authenticator_can_be_the_only_second_factor() {
    let env = env().await;
    let jiro = AccountId::new("jiro");
    let none = env.service.enable_two_factor(&jiro).await;
    assert_eq!(
        refusal(none),
        Refusal::Account(AccountRefusal::NoSecondFactor)
    );

    // Two-step sign-in is off: no step-up needed to add the app.
    let setup = env
        .service
        .authenticator_start(&jiro, "jiro@example.com", None)
        .await
        .unwrap();
    let uri = setup.uri.expose_secret().to_owned();
    env.service
        .authenticator_confirm(&jiro, &totp_code(&uri, t0()))
        .await
        .unwrap();
    let codes = env.service.enable_two_factor(&jiro).await.unwrap();
    assert_eq!(codes.len(), 10);
    let kinds: Vec<MethodKind> = env
        .service
        .methods(&jiro)
        .await
        .unwrap()
        .iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![MethodKind::Authenticator, MethodKind::RecoveryCode]
    );

    // The last second factor can't be removed while two-step sign-in is on.
    env.clock.advance(Duration::seconds(30));
    let signed_in = env
        .service
        .sign_in_complete(
            &jiro,
            Proof::Authenticator {
                code: &totp_code(&uri, t0() + Duration::seconds(30)),
            },
            None,
            None,
        )
        .await
        .unwrap();
    let r = env
        .service
        .authenticator_remove(&jiro, &signed_in.step_up)
        .await;
    assert_eq!(refusal(r), Refusal::Account(AccountRefusal::NoSecondFactor));
}

#[tokio::test]
async fn an_unverified_contact_gets_seven_days_then_sign_in_is_blocked_until_a_new_one_is_verified()
{
    let env = env().await;
    // An account from before verification was required, with an email
    // address nobody verified.
    let kenji = AccountId::new("kenji");
    let old = Destination::email("Kenji@example.com").unwrap();
    env.service
        .import_contact(&kenji, &old, false)
        .await
        .unwrap();
    let key = ContactKey::new("kenji@example.com");

    let check = env.service.contact_check(&kenji).await.unwrap();
    assert_eq!(
        check.decision,
        GraceDecision::Remind {
            deadline: t0() + Duration::days(7),
            to_verify: vec![key.clone()],
        }
    );
    assert_eq!(check.contacts.len(), 1);
    assert!(!check.contacts[0].verified);
    assert_eq!(check.contacts[0].masked_destination, "Ke***@example.com");

    env.clock
        .set(t0() + Duration::days(7) - Duration::seconds(1));
    assert!(matches!(
        env.service.contact_check(&kenji).await.unwrap().decision,
        GraceDecision::Remind { .. }
    ));

    // Exactly at 7 days: blocked, with the ways back.
    env.clock.set(t0() + Duration::days(7));
    let blocked = GraceDecision::Blocked {
        since: t0() + Duration::days(7),
        to_verify: vec![key.clone()],
        paths: vec![
            VerificationPath::VerifyContact(key.clone()),
            VerificationPath::AddContact {
                kinds: KindFilter::All,
            },
        ],
    };
    assert_eq!(
        env.service.contact_check(&kenji).await.unwrap().decision,
        blocked
    );

    // Day 8: still blocked, the deadline unchanged.
    env.clock.set(t0() + Duration::days(8));
    assert_eq!(
        env.service.contact_check(&kenji).await.unwrap().decision,
        blocked
    );

    // "I can't reach any of these": add a phone number and verify it —
    // allowed while blocked.
    let phone = Destination::phone("+81 80-2222-3333").unwrap();
    let ticket = env
        .service
        .contact_send_code(&kenji, &phone, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, "+818022223333");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = env
        .service
        .contact_confirm(&kenji, &ticket.challenge_id, wrong)
        .await;
    assert_eq!(
        refusal(r),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    assert!(
        env.service
            .contact_check(&kenji)
            .await
            .unwrap()
            .decision
            .is_blocked()
    );
    let view = env
        .service
        .contact_confirm(&kenji, &ticket.challenge_id, &code)
        .await
        .unwrap();
    assert!(view.verified);

    let check = env.service.contact_check(&kenji).await.unwrap();
    assert_eq!(check.decision, GraceDecision::Allow);
    assert_eq!(check.contacts.len(), 2);
    assert!(
        !check.contacts[0].verified,
        "the old address stays unverified"
    );
    assert!(check.contacts[1].verified);
    assert_eq!(
        env.service.contact_owner(&phone).await.unwrap(),
        Some(kenji.clone())
    );
}

#[tokio::test]
async fn verifying_the_registered_contact_lifts_the_block() {
    let env = env().await;
    let kenji = AccountId::new("kenji");
    let phone = Destination::phone("+81 80-2222-3333").unwrap();
    env.service
        .import_contact(&kenji, &phone, false)
        .await
        .unwrap();
    env.clock.set(t0() + Duration::days(8));
    assert!(
        env.service
            .contact_check(&kenji)
            .await
            .unwrap()
            .decision
            .is_blocked()
    );

    let ticket = env
        .service
        .contact_send_code(&kenji, &phone, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, "+818022223333");
    env.service
        .contact_confirm(&kenji, &ticket.challenge_id, &code)
        .await
        .unwrap();
    let check = env.service.contact_check(&kenji).await.unwrap();
    assert_eq!(check.decision, GraceDecision::Allow);
    assert_eq!(check.contacts.len(), 1);
    assert!(check.contacts[0].verified);
}

#[tokio::test]
async fn a_contact_verified_within_the_grace_period_never_blocks() {
    let env = env().await;
    let kenji = AccountId::new("kenji");
    let old = Destination::email("kenji@example.com").unwrap();
    env.service
        .import_contact(&kenji, &old, false)
        .await
        .unwrap();
    env.clock.set(t0() + Duration::days(3));
    let ticket = env
        .service
        .contact_send_code(&kenji, &old, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, "kenji@example.com");
    env.service
        .contact_confirm(&kenji, &ticket.challenge_id, &code)
        .await
        .unwrap();
    for day in [3, 7, 8, 30] {
        env.clock.set(t0() + Duration::days(day));
        assert_eq!(
            env.service.contact_check(&kenji).await.unwrap().decision,
            GraceDecision::Allow,
            "day {day}"
        );
    }
    // taro, whose contacts were verified as he added them, is allowed too.
    assert_eq!(
        env.service.contact_check(&env.taro).await.unwrap().decision,
        GraceDecision::Allow
    );
}

#[tokio::test]
async fn the_methods_as_json_show_only_the_masked_contacts() {
    let env = env().await;
    let SignInStart::Required { methods } =
        env.service.sign_in_begin(&env.taro, None).await.unwrap()
    else {
        panic!("two-step sign-in is on");
    };
    let json = serde_json::to_string(&methods).unwrap();
    assert!(json.contains("+81 **-****-**78"), "{json}");
    assert!(json.contains(r#""confirmation_digits":4"#), "{json}");
    assert!(
        !json.contains("5678"),
        "the digits the confirmation asks for leak: {json}"
    );
    assert!(!json.contains(EMAIL), "the full address leaks: {json}");
}

#[tokio::test]
async fn a_session_without_a_step_up_cannot_add_a_second_factor() {
    let env = env().await;
    // A hijacked session (password only, or a stolen cookie) adds the
    // attacker's address.
    let evil = Destination::email("evil@example.net").unwrap();
    if let Ok(ticket) = env
        .service
        .contact_send_code(&env.taro, &evil, None, None)
        .await
    {
        let code = secret_to(&env.gateway, "evil@example.net");
        let _ = env
            .service
            .contact_confirm(&env.taro, &ticket.challenge_id, &code)
            .await;
    }
    let methods = env.service.methods(&env.taro).await.unwrap();
    assert!(
        methods
            .iter()
            .all(|m| m.masked_destination.as_deref() != Some("ev**@example.net")),
        "the attacker's address became a second factor: {methods:?}"
    );
}
