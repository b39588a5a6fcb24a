//! Messages chosen by purpose and by the user's language (issue 12).
//!
//! What an email carrying a code tells a user who did not ask for it
//! depends on why it was sent: at sign-in, that someone else may know their
//! password; at sign-up, that someone may have typed their address by
//! mistake. The language is the user's when the host names it
//! (`TwoFactor::with_locale`), the service's otherwise, and a challenge
//! keeps the language it was first sent in. Host overrides for one occasion
//! win over overrides for every occasion, which win over the built-in texts.
//!
//! Played through the journeys and the recording gateway only.

mod support;

use std::sync::Arc;

use ninsho::gateway::{
    Message, Occasion, RecordingGateway, TemplateError, TemplateKind, Templates,
};
use ninsho::model::{AccountId, Channel, Destination, Locale, Purpose};
use ninsho::service::{IssueRequest, Method, MethodKind, SignInStart, TwoFactor, TwoFactorBuilder};
use ninsho::store::MemoryStore;
use ninsho::{Error, ManualClock, Misuse};
use support::{BASE, PHONE, T0, no_send_limits, secret_to, two_factor};
use time::Duration;

/// taro's verified email address.
const EMAIL: &str = "taro@example.com";
/// A number and an address no account holds yet.
const NEW_PHONE: &str = "+819087654321";
const NEW_PHONE_TYPED: &str = "090-8765-4321";
const NEW_EMAIL: &str = "hanako@example.com";

/// What an email tells a user who did not ask for a sign-in code.
fn password_warning(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "someone else may know your password",
        _ => "第三者があなたのパスワードを知っている可能性があります",
    }
}

/// What an email tells a user who did not ask for a sign-up code.
fn mistyped_note(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "someone may have typed your email address by mistake",
        _ => "どなたかがメールアドレスを誤って入力した可能性があります",
    }
}

const LOCALES: [Locale; 2] = [Locale::Ja, Locale::En];

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
    taro: AccountId,
}

/// A service in `locale`, configured further by `configure`, on which taro
/// has a verified phone and email address and two-step sign-in on; email
/// counts as a second factor and one-time links are on. Set up through the
/// default handle; the gateway's record starts empty.
async fn env_with(
    locale: Locale,
    configure: impl FnOnce(TwoFactorBuilder) -> TwoFactorBuilder,
) -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let builder = two_factor(
        "Example",
        Arc::new(MemoryStore::new()),
        &gateway,
        &clock,
        12,
    )
    .locale(locale)
    .limits(no_send_limits())
    .link_base(BASE)
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

async fn env(locale: Locale) -> Env {
    env_with(locale, |b| b).await
}

impl Env {
    async fn method(&self, kind: MethodKind, to_email: bool) -> Method {
        let SignInStart::Required { methods } =
            self.service.sign_in_begin(&self.taro, None).await.unwrap()
        else {
            panic!("two-step sign-in is on");
        };
        let n = usize::from(to_email && kind == MethodKind::Link);
        methods
            .into_iter()
            .filter(|m| m.kind == kind)
            .nth(n)
            .unwrap_or_else(|| panic!("no {kind:?} method"))
    }

    /// The last message delivered to `to`.
    #[track_caller]
    fn last_to(&self, to: &str) -> Message {
        self.gateway.last_to(to).expect("a message was delivered")
    }

    /// Past the resend cooldown.
    fn wait_for_resend(&self) {
        self.clock.advance(Duration::seconds(61));
    }
}

fn body(message: &Message) -> &str {
    message.body.expose_secret()
}

/// Whether the text has kana in it: a Japanese message.
fn is_japanese(text: &str) -> bool {
    text.chars().any(|c| ('\u{3040}'..='\u{30ff}').contains(&c))
}

/// The message is in `locale`: it says so, and its text (subject too) is.
#[track_caller]
fn assert_in(message: &Message, locale: Locale) {
    assert_eq!(message.locale, locale, "{:?}", message.channel);
    let japanese = locale == Locale::Ja;
    assert_eq!(is_japanese(body(message)), japanese, "{}", body(message));
    if let Some(subject) = &message.subject {
        assert_eq!(is_japanese(subject), japanese, "{subject}");
    }
}

// ---------------------------------------------------------------- purpose

#[tokio::test]
async fn a_sign_in_email_warns_that_the_password_may_be_known() {
    for locale in LOCALES {
        let env = env(locale).await;
        let email = env.method(MethodKind::Email, true).await;
        env.service
            .sign_in_send_code(&env.taro, &email, None, None)
            .await
            .unwrap();
        let message = env.last_to(EMAIL);
        assert_in(&message, locale);
        let text = body(&message);
        assert!(text.contains(password_warning(locale)), "{text}");
        assert!(!text.contains(mistyped_note(locale)), "{text}");
        // The code itself is there, and the rule never to share it.
        assert!(text.contains(&secret_to(&env.gateway, EMAIL)));
        let never_share = match locale {
            Locale::En => "Do not share this code with anyone.",
            _ => "このコードは誰にも教えないでください。",
        };
        assert!(text.contains(never_share), "{text}");
        let subject = match locale {
            Locale::En => "Your Example sign-in code",
            _ => "【Example】ログイン用の認証コード",
        };
        assert_eq!(message.subject.as_deref(), Some(subject));
    }
}

#[tokio::test]
async fn a_sign_up_email_says_the_address_may_be_mistyped() {
    for locale in LOCALES {
        let env = env(locale).await;
        env.service
            .signup_start(NEW_EMAIL, NEW_PHONE_TYPED, None)
            .await
            .unwrap();
        let message = env.last_to(NEW_EMAIL);
        assert_in(&message, locale);
        let text = body(&message);
        assert!(text.contains(mistyped_note(locale)), "{text}");
        assert!(!text.contains(password_warning(locale)), "{text}");
        assert!(
            !text.contains(match locale {
                Locale::En => "password",
                _ => "パスワード",
            }),
            "{text}"
        );
        // The SMS of the same sign-up is the usual short one.
        let sms = env.last_to(NEW_PHONE);
        assert_in(&sms, locale);
        assert!(!body(&sms).contains(mistyped_note(locale)));
    }
}

#[tokio::test]
async fn other_purposes_get_their_own_note() {
    for locale in LOCALES {
        let env = env(locale).await;
        // Adding an address: it may have been mistyped.
        let new = Destination::email(NEW_EMAIL).unwrap();
        let hanako = AccountId::new("hanako");
        env.service
            .contact_send_code(&hanako, &new, None, None)
            .await
            .unwrap();
        let text = body(&env.last_to(NEW_EMAIL)).to_owned();
        assert!(text.contains(mistyped_note(locale)), "{text}");
        assert!(!text.contains(password_warning(locale)), "{text}");

        // "I can't sign in": someone may be trying to get into an account.
        env.service.recover_start(EMAIL, None).await.unwrap();
        let text = body(&env.last_to(EMAIL)).to_owned();
        let attempt = match locale {
            Locale::En => "someone may be trying to get into an account with your email address",
            _ => {
                "第三者があなたのメールアドレスを使ってアカウントに入ろうとしている可能性があります"
            }
        };
        assert!(text.contains(attempt), "{text}");
        assert!(!text.contains(password_warning(locale)), "{text}");
        assert!(!text.contains(mistyped_note(locale)), "{text}");

        // A host's own purpose, through `OneTimeCodes`: as for sign-up.
        env.service
            .one_time_codes()
            .send(IssueRequest::new(new, Purpose::Other("newsletter".into())))
            .await
            .unwrap();
        let text = body(&env.last_to(NEW_EMAIL)).to_owned();
        assert!(text.contains(mistyped_note(locale)), "{text}");
    }
}

// --------------------------------------------------------------- language

#[tokio::test]
async fn with_locale_sends_sign_in_codes_and_links_in_the_users_language() {
    let env = env(Locale::Ja).await;
    let en = env.service.with_locale(Locale::En);
    for (kind, to) in [
        (MethodKind::Sms, PHONE),
        (MethodKind::Voice, PHONE),
        (MethodKind::Email, EMAIL),
    ] {
        let method = env.method(kind, to == EMAIL).await;
        en.sign_in_send_code(&env.taro, &method, None, None)
            .await
            .unwrap();
        assert_in(&env.last_to(to), Locale::En);
    }
    let email = env.last_to(EMAIL);
    assert!(body(&email).contains(password_warning(Locale::En)));

    for to in [PHONE, EMAIL] {
        let link = env.method(MethodKind::Link, to == EMAIL).await;
        en.sign_in_send_link(&env.taro, &link, "Chrome on Windows", None, None)
            .await
            .unwrap();
        let message = env.last_to(to);
        assert_in(&message, Locale::En);
        assert!(body(&message).contains("If you did not try to sign in"));
    }

    // The service's own handle still speaks Japanese.
    let sms = env.method(MethodKind::Sms, false).await;
    env.service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap();
    assert_in(&env.last_to(PHONE), Locale::Ja);
}

#[tokio::test]
async fn with_locale_sends_sign_up_phone_contact_and_recovery_codes_in_the_users_language() {
    let env = env(Locale::Ja).await;
    let en = env.service.with_locale(Locale::En);

    en.signup_start(NEW_EMAIL, NEW_PHONE_TYPED, None)
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_EMAIL), Locale::En);
    assert_in(&env.last_to(NEW_PHONE), Locale::En);

    let hanako = AccountId::new("hanako");
    en.phone_send_code(&hanako, NEW_PHONE_TYPED, None, None)
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_PHONE), Locale::En);

    let new = Destination::email(NEW_EMAIL).unwrap();
    en.contact_send_code(&hanako, &new, None, None)
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_EMAIL), Locale::En);

    en.recover_start(EMAIL, None).await.unwrap();
    assert_in(&env.last_to(EMAIL), Locale::En);

    // The same journeys through the service's handle: Japanese.
    env.service
        .signup_start(NEW_EMAIL, NEW_PHONE_TYPED, None)
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_EMAIL), Locale::Ja);
    assert_in(&env.last_to(NEW_PHONE), Locale::Ja);
    env.service
        .phone_send_code(&hanako, NEW_PHONE_TYPED, None, None)
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_PHONE), Locale::Ja);
    env.service.recover_start(EMAIL, None).await.unwrap();
    assert_in(&env.last_to(EMAIL), Locale::Ja);
}

#[tokio::test]
async fn changing_a_phone_number_speaks_the_users_language() {
    let env = env(Locale::Ja).await;
    // taro has two-step sign-in on: changing the number needs a step-up.
    let sms = env.method(MethodKind::Sms, false).await;
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap();
    let signed_in = env
        .service
        .sign_in_complete(
            &env.taro,
            ninsho::service::Proof::Code {
                challenge: &ticket.challenge_id,
                code: &secret_to(&env.gateway, PHONE),
            },
            None,
            None,
        )
        .await
        .unwrap();
    env.service
        .with_locale(Locale::En)
        .phone_send_code(&env.taro, NEW_PHONE_TYPED, Some(&signed_in.step_up), None)
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_PHONE), Locale::En);
}

#[tokio::test]
async fn one_time_codes_take_the_handles_language_unless_the_request_names_one() {
    let env = env(Locale::Ja).await;
    let to = Destination::email(NEW_EMAIL).unwrap();
    let purpose = Purpose::Other("newsletter".into());

    let en = env.service.with_locale(Locale::En).one_time_codes();
    en.send(IssueRequest::new(to.clone(), purpose.clone()))
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_EMAIL), Locale::En);

    // The request's own locale wins over the handle's.
    en.send(IssueRequest::new(to.clone(), purpose.clone()).locale(Locale::Ja))
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_EMAIL), Locale::Ja);

    env.service
        .one_time_codes()
        .send(IssueRequest::new(to, purpose))
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_EMAIL), Locale::Ja);
}

#[tokio::test]
async fn a_challenge_keeps_the_language_it_was_sent_in() {
    let env = env(Locale::Ja).await;
    let en = env.service.with_locale(Locale::En);

    // An English sign-in code, resent and then called through the
    // service's (Japanese) handle: still English.
    let sms = env.method(MethodKind::Sms, false).await;
    let ticket = en
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap();
    env.wait_for_resend();
    env.service
        .resend(&env.taro, &ticket.challenge_id, None)
        .await
        .unwrap();
    let resent = env.last_to(PHONE);
    assert_eq!(resent.channel, Channel::Sms);
    assert_in(&resent, Locale::En);
    env.wait_for_resend();
    env.service
        .another_option(&env.taro, &ticket.challenge_id, None)
        .await
        .unwrap();
    let call = env.last_to(PHONE);
    assert_eq!(call.channel, Channel::Voice);
    assert_in(&call, Locale::En);

    // And the other way round: a Japanese code stays Japanese through an
    // English handle.
    let ticket = env
        .service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap();
    env.wait_for_resend();
    en.resend(&env.taro, &ticket.challenge_id, None)
        .await
        .unwrap();
    assert_in(&env.last_to(PHONE), Locale::Ja);

    // A sign-up started in English resends both codes in English.
    let signup = en
        .signup_start(NEW_EMAIL, NEW_PHONE_TYPED, None)
        .await
        .unwrap();
    env.wait_for_resend();
    for (member, to) in [(0, NEW_EMAIL), (1, NEW_PHONE)] {
        env.service
            .signup_resend(&signup.id, member, None)
            .await
            .unwrap();
        assert_in(&env.last_to(to), Locale::En);
    }
    env.wait_for_resend();
    env.service
        .signup_another_option(&signup.id, 1, None)
        .await
        .unwrap();
    let call = env.last_to(NEW_PHONE);
    assert_eq!(call.channel, Channel::Voice);
    assert_in(&call, Locale::En);

    // A member whose code died gets a new one, in the sign-up's language.
    env.clock.advance(Duration::minutes(11));
    env.service
        .signup_resend(&signup.id, 0, None)
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_EMAIL), Locale::En);

    // `OneTimeCodes` resends likewise.
    let to = Destination::email(NEW_EMAIL).unwrap();
    let ticket = env
        .service
        .with_locale(Locale::En)
        .one_time_codes()
        .send(IssueRequest::new(to, Purpose::Other("newsletter".into())))
        .await
        .unwrap();
    env.wait_for_resend();
    env.service
        .one_time_codes()
        .resend(&ticket.challenge_id, None)
        .await
        .unwrap();
    assert_in(&env.last_to(NEW_EMAIL), Locale::En);
}

#[tokio::test]
async fn the_services_locale_is_the_default() {
    for locale in LOCALES {
        let env = env(locale).await;
        let email = env.method(MethodKind::Email, true).await;
        env.service
            .sign_in_send_code(&env.taro, &email, None, None)
            .await
            .unwrap();
        assert_in(&env.last_to(EMAIL), locale);
        // A handle for one user leaves the service's own alone.
        let _other = env.service.with_locale(match locale {
            Locale::En => Locale::Ja,
            _ => Locale::En,
        });
        env.service.recover_start(EMAIL, None).await.unwrap();
        assert_in(&env.last_to(EMAIL), locale);
    }
}

// -------------------------------------------------------------- overrides

#[tokio::test]
async fn an_override_for_the_occasion_beats_the_general_one_which_beats_the_built_in() {
    let templates = Templates::new()
        .with(
            Locale::Ja,
            TemplateKind::EmailCodeSubject,
            "【{service}】コード",
        )
        .with(Locale::Ja, TemplateKind::EmailCodeBody, "全般：{code}")
        .with_for(
            Occasion::SignIn,
            Locale::Ja,
            TemplateKind::EmailCodeBody,
            "ログイン：{code}",
        );
    templates.validate().unwrap();
    let env = env_with(Locale::Ja, |b| b.templates(templates)).await;

    // Sign-in: its own body, the general subject.
    let email = env.method(MethodKind::Email, true).await;
    env.service
        .sign_in_send_code(&env.taro, &email, None, None)
        .await
        .unwrap();
    let message = env.last_to(EMAIL);
    let code = secret_to(&env.gateway, EMAIL);
    assert_eq!(body(&message), format!("ログイン：{code}"));
    assert_eq!(message.subject.as_deref(), Some("【Example】コード"));

    // Recovery: the general body and subject.
    env.service.recover_start(EMAIL, None).await.unwrap();
    let message = env.last_to(EMAIL);
    let code = secret_to(&env.gateway, EMAIL);
    assert_eq!(body(&message), format!("全般：{code}"));
    assert_eq!(message.subject.as_deref(), Some("【Example】コード"));

    // English has no override: the built-in texts for the occasion.
    env.service
        .with_locale(Locale::En)
        .sign_in_send_code(&env.taro, &email, None, None)
        .await
        .unwrap();
    let message = env.last_to(EMAIL);
    assert_eq!(
        message.subject.as_deref(),
        Some("Your Example sign-in code")
    );
    assert!(body(&message).contains(password_warning(Locale::En)));

    // SMS has no override either.
    let sms = env.method(MethodKind::Sms, false).await;
    env.service
        .sign_in_send_code(&env.taro, &sms, None, None)
        .await
        .unwrap();
    assert!(body(&env.last_to(PHONE)).starts_with("【Example】認証コード："));
}

#[tokio::test]
async fn a_bad_override_for_one_occasion_is_caught() {
    let templates = Templates::new().with_for(
        Occasion::SignUp,
        Locale::En,
        TemplateKind::EmailCodeBody,
        "Welcome to {service}",
    );
    let expected = TemplateError::MissingPlaceholder {
        occasion: Some(Occasion::SignUp),
        locale: Locale::En,
        kind: TemplateKind::EmailCodeBody,
        placeholder: "{code}",
    };
    assert_eq!(templates.validate(), Err(expected.clone()));
    assert!(
        expected
            .to_string()
            .contains("en email code body template for sign-up")
    );

    // A service that skipped `validate` refuses to send that one message,
    // as a mistake of the host's, and sends the others.
    let env = env_with(Locale::En, |b| b.templates(templates)).await;
    match env
        .service
        .signup_start(NEW_EMAIL, NEW_PHONE_TYPED, None)
        .await
    {
        Err(Error::Misuse(Misuse::Template(e))) => assert_eq!(e, expected),
        other => panic!("expected the template mistake, got {other:?}"),
    }
    assert!(env.gateway.last_to(NEW_EMAIL).is_none());
    let email = env.method(MethodKind::Email, true).await;
    env.service
        .sign_in_send_code(&env.taro, &email, None, None)
        .await
        .unwrap();
    assert!(body(&env.last_to(EMAIL)).contains(password_warning(Locale::En)));
}
