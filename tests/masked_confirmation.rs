//! Masked-contact confirmation is a real check (issue 11): a screen shows
//! fewer digits of a phone number than the confirmation asks for, and only
//! part of an email address while the confirmation asks for all of it. So
//! whoever knows only the password can't read the answer off the screen.
//!
//! Through the public API only: `TwoFactor` for the journeys, `OneTimeCodes`
//! and `Destination` for the property over many numbers.

mod support;

use ninsho::SendRefusal;
use std::sync::Arc;

use ninsho::contact::{MaskPolicy, MaskPolicyError};

use ninsho::gateway::RecordingGateway;
use ninsho::model::{AccountId, Channel, Destination, Purpose};
use ninsho::service::IssueRequest;
use ninsho::service::{Method, MethodKind, SignInStart, TwoFactor, TwoFactorBuilder};
use ninsho::store::MemoryStore;
use ninsho::{ManualClock, Refusal};
use proptest::prelude::*;
use support::{PHONE, T0, refusal, secret_to, two_factor};
use time::Duration;

const EMAIL: &str = "taro@example.com";

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
    taro: AccountId,
}

/// Masked-contact confirmation on, configured further by `configure`. taro
/// has a verified phone and email address and two-step sign-in on; the
/// gateway's record starts empty.
async fn env_with(configure: impl FnOnce(TwoFactorBuilder) -> TwoFactorBuilder) -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let builder = two_factor(
        "Example",
        Arc::new(MemoryStore::new()),
        &gateway,
        &clock,
        11,
    )
    .confirm_masked_contacts(true)
    // The email tests sign in by email, which counts only when chosen.
    .email_as_second_factor(true);
    let service = configure(builder).build().unwrap();
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
    async fn methods(&self) -> Vec<Method> {
        match self.service.sign_in_begin(&self.taro, None).await.unwrap() {
            SignInStart::Required { methods } => methods,
            other => panic!("two-step sign-in is on: {other:?}"),
        }
    }

    async fn method(&self, kind: MethodKind) -> Method {
        self.methods()
            .await
            .into_iter()
            .find(|m| m.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} method"))
    }

    /// Sends a sign-in code by `method` after `typed` as the confirmation;
    /// waits out any back-off first, so each answer is judged on its own.
    async fn send(&self, method: &Method, typed: &str) -> Result<(), Refusal> {
        self.clock.advance(Duration::hours(1));
        match self
            .service
            .sign_in_send_code(&self.taro, method, Some(typed), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(refusal::<()>(Err(e))),
        }
    }
}

/// How many digits a masked form shows at its end (`+81 **-****-**78` → 2).
fn trailing_digits(masked: &str) -> usize {
    masked
        .chars()
        .rev()
        .filter(|c| *c != '-')
        .take_while(char::is_ascii_digit)
        .count()
}

// ------------------------------------------------------------ the defaults

/// The key regression: before the fix the method showed `+81
/// **-****-5678` and the check asked for `5678`, the answer on screen.
#[tokio::test]
async fn a_phone_shows_its_last_two_digits_and_the_check_asks_for_four() {
    let env = env_with(|b| b).await;
    let sms = env.method(MethodKind::Sms).await;
    let voice = env.method(MethodKind::Voice).await;
    for method in [&sms, &voice] {
        assert!(method.confirmation_required);
        assert_eq!(
            method.masked_destination.as_deref(),
            Some("+81 **-****-**78")
        );
    }

    // What the screen shows is not enough, nor is any other wrong answer.
    for typed in ["78", "678", "1278", "45678", "", "+819012345678"] {
        assert_eq!(
            env.send(&sms, typed).await,
            Err(Refusal::Send(SendRefusal::ContactNotConfirmed)),
            "{typed:?}"
        );
    }
    assert!(env.gateway.attempts().is_empty(), "nothing was sent");

    // The last four digits, however they are typed.
    for typed in ["5678", "５６７８", "56-78", "５６－７８", " 5 6 7 8 "] {
        assert_eq!(env.send(&sms, typed).await, Ok(()), "{typed:?}");
    }
    assert_eq!(env.send(&voice, "5678").await, Ok(()));
    assert_eq!(env.gateway.messages().len(), 6);
}

/// No other screen of the service hands out the answer either: tickets
/// (also of codes sent without a confirmation), resends and the contact
/// views of the grace-period check.
#[tokio::test]
async fn no_screen_shows_the_four_digits_asked_for() {
    let env = env_with(|b| b).await;
    let sms = env.method(MethodKind::Sms).await;
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &sms, Some("5678"), None)
        .await
        .unwrap();
    env.clock.advance(Duration::minutes(2));
    let resent = env
        .service
        .resend(&env.taro, &ticket.challenge_id, None)
        .await
        .unwrap();
    let check = env.service.contact_check(&env.taro).await.unwrap();
    let recover = env
        .service
        .recover_start("090-1234-5678", None)
        .await
        .unwrap();
    let mut shown: Vec<String> = vec![
        ticket.masked_destination,
        resent.masked_destination,
        recover.masked_destination,
    ];
    shown.extend(
        check
            .contacts
            .iter()
            .filter(|c| c.destination.kind() == ninsho::model::DestinationKind::Phone)
            .map(|c| c.masked_destination.clone()),
    );
    assert_eq!(shown.len(), 4);
    for masked in shown {
        assert_eq!(masked, "+81 **-****-**78");
    }
}

#[tokio::test]
async fn an_email_address_hides_its_local_part_and_the_check_asks_for_all_of_it() {
    let env = env_with(|b| b).await;
    let email = env.method(MethodKind::Email).await;
    assert!(email.confirmation_required);
    assert_eq!(
        email.masked_destination.as_deref(),
        Some("ta**@example.com")
    );
    assert_eq!(email.confirmation_digits, None);
    for typed in [
        "ta**@example.com",
        "ta@example.com",
        "taro",
        "example.com",
        "taro@example.co",
    ] {
        assert_eq!(
            env.send(&email, typed).await,
            Err(Refusal::Send(SendRefusal::ContactNotConfirmed)),
            "{typed:?}"
        );
    }
    assert!(env.gateway.attempts().is_empty());
    assert_eq!(env.send(&email, "Taro@Example.COM").await, Ok(()));
    assert_eq!(env.gateway.last_to(EMAIL).unwrap().channel, Channel::Email);
}

#[tokio::test]
async fn the_method_says_how_many_digits_to_ask_for() {
    let env = env_with(|b| b).await;
    let sms = env.method(MethodKind::Sms).await;
    assert_eq!(sms.confirmation_digits, Some(4));
    let json = serde_json::to_string(&sms).unwrap();
    assert!(json.contains(r#""confirmation_digits":4"#), "{json}");
    assert!(!json.contains("5678"), "{json}");

    // Without confirmation nothing is asked, and the screen still shows
    // the policy's form.
    let env = env_with(|b| b.confirm_masked_contacts(false)).await;
    let sms = env.method(MethodKind::Sms).await;
    assert!(!sms.confirmation_required);
    assert_eq!(sms.confirmation_digits, None);
    assert_eq!(sms.masked_destination.as_deref(), Some("+81 **-****-**78"));
}

// ---------------------------------------------------------------- policies

#[tokio::test]
async fn a_custom_policy_shows_one_digit_and_asks_for_three() {
    let policy = MaskPolicy::new(1, 3).unwrap();
    let env = env_with(|b| b.mask_policy(policy)).await;
    let sms = env.method(MethodKind::Sms).await;
    assert_eq!(sms.masked_destination.as_deref(), Some("+81 **-****-***8"));
    assert_eq!(sms.confirmation_digits, Some(3));
    for typed in ["8", "78", "5678"] {
        assert_eq!(
            env.send(&sms, typed).await,
            Err(Refusal::Send(SendRefusal::ContactNotConfirmed)),
            "{typed:?}"
        );
    }
    assert_eq!(env.send(&sms, "６７８").await, Ok(()));

    // Email addresses as the policy says too.
    let policy = policy.with_email_chars_shown(1).unwrap();
    let env = env_with(|b| b.mask_policy(policy)).await;
    let email = env.method(MethodKind::Email).await;
    assert_eq!(
        email.masked_destination.as_deref(),
        Some("t***@example.com")
    );
    assert_eq!(env.send(&email, EMAIL).await, Ok(()));
}

#[test]
fn a_policy_that_gives_the_answer_away_is_refused() {
    for (shown, asked) in [(4, 4), (5, 4), (3, 4), (2, 2), (7, 8)] {
        let err = MaskPolicy::new(shown, asked).unwrap_err();
        assert_eq!(err, MaskPolicyError::AnswerShown { shown, asked });
        assert!(err.to_string().contains("fewer than asked"), "{err}");
    }
    for asked in [0, 1, 9] {
        assert_eq!(
            MaskPolicy::new(0, asked),
            Err(MaskPolicyError::DigitsAsked(asked))
        );
    }
    assert_eq!(
        MaskPolicy::default().with_email_chars_shown(5),
        Err(MaskPolicyError::EmailCharsShown(5))
    );
    // A configuration file goes through the same checks.
    let bad = r#"{"phone_digits_shown":4,"phone_digits_asked":4}"#;
    assert!(serde_json::from_str::<MaskPolicy>(bad).is_err());
    let good = r#"{"phone_digits_shown":1,"phone_digits_asked":3}"#;
    assert_eq!(
        serde_json::from_str::<MaskPolicy>(good).unwrap(),
        MaskPolicy::new(1, 3).unwrap()
    );
}

#[test]
fn defaults() {
    let p = MaskPolicy::default();
    assert_eq!(
        (
            p.phone_digits_shown(),
            p.phone_digits_asked(),
            p.email_chars_shown()
        ),
        (2, 4, 2)
    );
}

// ------------------------------------------------- many numbers, any policy

/// Phone numbers of several countries and lengths, as E.164.
fn numbers() -> impl Strategy<Value = String> {
    prop_oneof![
        // Japanese mobiles: 10-digit national numbers.
        ("[789]0[1-9][0-9]{7}").prop_map(|n| format!("+81{n}")),
        // Japanese landlines: Tokyo, Osaka, Sapporo (9 digits).
        ("(3|6|11)[2-9][0-9]{6}").prop_map(|n| format!("+81{n}")),
        ("[2-9][0-9]{2}[2-9][0-9]{6}").prop_map(|n| format!("+1{n}")),
        ("7[1-9][0-9]{8}").prop_map(|n| format!("+44{n}")),
        ("20[0-9]{8}").prop_map(|n| format!("+44{n}")),
        // Short national numbers: Iceland (7), Saint Helena (5), Niue (4).
        ("[4-8][0-9]{6}").prop_map(|n| format!("+354{n}")),
        ("[2-8][0-9]{3,4}").prop_map(|n| format!("+290{n}")),
        ("[2-7][0-9]{3}").prop_map(|n| format!("+683{n}")),
    ]
}

/// Every policy the constructor accepts.
fn policies() -> impl Strategy<Value = MaskPolicy> {
    (MaskPolicy::MIN_DIGITS_ASKED..=MaskPolicy::MAX_DIGITS_ASKED)
        .prop_flat_map(|asked| (0..=asked - MaskPolicy::MIN_DIGITS_UNSEEN, Just(asked)))
        .prop_map(|(shown, asked)| MaskPolicy::new(shown, asked).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// For any number and any valid policy, both screen forms show fewer
    /// trailing digits than the confirmation asks for, the digits they show
    /// are the number's own, and the real check refuses what is shown and
    /// accepts the digits asked for.
    #[test]
    fn the_screen_never_shows_as_many_digits_as_the_answer(
        e164 in numbers(),
        policy in policies(),
    ) {
        let Ok(phone) = Destination::phone(&e164) else {
            return Err(TestCaseError::reject("not a valid length"));
        };
        let asked = usize::from(phone.confirmation_digits(&policy).unwrap());
        prop_assert!(asked >= 2);
        prop_assert!(asked <= usize::from(policy.phone_digits_asked()));
        for masked in [phone.masked_for(&policy), phone.masked_national_for(&policy)] {
            let shown = trailing_digits(&masked);
            prop_assert!(
                shown + 2 <= asked,
                "{} shows {} digits, {} asked", masked, shown, asked
            );
            prop_assert!(shown <= usize::from(policy.phone_digits_shown()));
            let tail = &e164[e164.len() - shown..];
            prop_assert!(masked.replace('-', "").ends_with(tail), "{}", masked);
            // At least four digits of the number stay hidden.
            prop_assert!(masked.matches('*').count() >= 4, "{}", masked);
        }

        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let gateway = RecordingGateway::new();
            let clock = ManualClock::at_unix(T0).unwrap();
            let codes = two_factor("Example", Arc::new(MemoryStore::new()), &gateway, &clock, 3)
                .mask_policy(policy)
                .build()
                .unwrap()
                .one_time_codes();
            let issue = |typed: &str| {
                codes.send(IssueRequest::new(phone.clone(), Purpose::StepUp).confirmation(typed))
            };
            let masked = phone.masked_for(&policy);
            let on_screen = &e164[e164.len() - trailing_digits(&masked)..];
            prop_assert_eq!(
                refusal(issue(on_screen).await),
                Refusal::Send(SendRefusal::ContactNotConfirmed),
                "{} typed from {}", on_screen, masked
            );
            let answer = &e164[e164.len() - asked..];
            let ticket = issue(answer).await.unwrap();
            prop_assert_eq!(ticket.masked_destination, masked);
            prop_assert_eq!(gateway.messages().len(), 1);
            Ok(())
        })?;
    }

    /// An email address's screen form always hides part of the local part,
    /// so it is never the address the confirmation asks for.
    #[test]
    fn an_email_screen_form_is_never_the_address(
        local in "[a-z0-9][a-z0-9._]{0,12}[a-z0-9]|[a-z0-9]",
        shown in 0..=MaskPolicy::MAX_EMAIL_CHARS_SHOWN,
    ) {
        prop_assume!(!local.contains(".."));
        let Ok(email) = Destination::email(&format!("{local}@example.com")) else {
            return Err(TestCaseError::reject("not an address"));
        };
        let policy = MaskPolicy::default().with_email_chars_shown(shown).unwrap();
        let masked = email.masked_for(&policy);
        prop_assert!(masked.ends_with("@example.com"));
        prop_assert!(masked.contains('*'));
        let head = masked.split('*').next().unwrap();
        prop_assert!(head.len() < local.len(), "{} for {}", masked, local);
        prop_assert!(head.len() <= usize::from(shown));
        prop_assert!(local.starts_with(head));
        prop_assert_eq!(email.confirmation_digits(&policy), None);
    }
}
