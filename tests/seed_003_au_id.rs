//! Seed 003, au ID: signing in by a one-time URL sent by SMS and opened on
//! the phone, which shows the device trying to sign in before the user
//! approves; a one-time code by SMS or email as the alternative; the list of
//! authorised devices, any of which can be revoked; and messages that warn
//! not to open the link without having tried to sign in.
//!
//! Played through `TwoFactor` only.

mod support;

use ninsho::{AccountRefusal, CodeRefusal};
use std::sync::Arc;

use ninsho::device::DeviceCheck;
use ninsho::gateway::RecordingGateway;
use ninsho::model::{AccountId, Channel, Destination, Locale, Purpose};
use ninsho::service::{ChannelReason, LinkTicket};
use ninsho::service::{Method, MethodKind, Proof, SignInStart, SignedIn, Skip, TwoFactor};
use ninsho::store::MemoryStore;
use ninsho::{Error, ManualClock, Refusal};
use support::{BASE, T0, refusal, secret_to, t0, two_factor};
use time::Duration;

const PHONE: &str = "+819012345678";
const EMAIL: &str = "taro@example.com";

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
    taro: AccountId,
}

async fn env() -> Env {
    env_with(Locale::En).await
}

/// taro has a verified mobile number (two-step sign-in on) and a verified
/// contact email address; the gateway's record starts empty. au ID sends
/// codes and links by email too, so email counts as a second factor here
/// (it does not by default).
async fn env_with(locale: Locale) -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = two_factor("au ID", Arc::new(MemoryStore::new()), &gateway, &clock, 3)
        .link_base(BASE)
        .locale(locale)
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
    // The email is added before two-step sign-in is on (afterwards, adding
    // a second factor needs a step-up).
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

    /// The `n`th method of `kind` (phone first, then email).
    async fn method(&self, kind: MethodKind, n: usize) -> Method {
        self.methods()
            .await
            .into_iter()
            .filter(|m| m.kind == kind)
            .nth(n)
            .unwrap_or_else(|| panic!("no {kind:?} method #{n}"))
    }

    async fn send_link(&self, n: usize, device: &str) -> (LinkTicket, String) {
        let link = self.method(MethodKind::Link, n).await;
        let ticket = self
            .service
            .sign_in_send_link(&self.taro, &link, device, None, None)
            .await
            .unwrap();
        let to = self.gateway.messages().last().unwrap().to.clone();
        let url = secret_to(&self.gateway, &to);
        let token = url
            .strip_prefix(BASE)
            .unwrap_or_else(|| panic!("the URL starts with the link base: {url}"))
            .to_owned();
        (ticket, token)
    }

    async fn poll(
        &self,
        ticket: &LinkTicket,
        trust: Option<&str>,
    ) -> Result<Option<SignedIn>, Error> {
        self.service
            .sign_in_poll_link(&self.taro, &ticket.challenge_id, trust, None)
            .await
    }

    async fn sign_in_by_code(&self, kind: MethodKind, trust: Option<&str>) -> SignedIn {
        let method = self.method(kind, 0).await;
        let ticket = self
            .service
            .sign_in_send_code(&self.taro, &method, None, None)
            .await
            .unwrap();
        let to = self.gateway.messages().last().unwrap().to.clone();
        let code = secret_to(&self.gateway, &to);
        self.service
            .sign_in_complete(
                &self.taro,
                Proof::Code {
                    challenge: &ticket.challenge_id,
                    code: &code,
                },
                trust,
                None,
            )
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_second_step_offers_a_one_time_url_beside_the_codes() {
    let env = env().await;
    let methods = env.methods().await;
    let kinds: Vec<MethodKind> = methods.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        vec![
            MethodKind::Sms,
            MethodKind::Voice,
            MethodKind::Link,
            MethodKind::Email,
            MethodKind::Link,
            MethodKind::RecoveryCode,
        ]
    );
    assert_eq!(
        methods[2].masked_destination.as_deref(),
        Some("+81 **-****-**78")
    );
    assert_eq!(
        methods[4].masked_destination.as_deref(),
        Some("ta**@example.com")
    );

    // Without a link base there is no link method, and sending one is a
    // configuration error.
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let plain = two_factor("au ID", Arc::new(MemoryStore::new()), &gateway, &clock, 3)
        .build()
        .unwrap();
    let hanako = AccountId::new("hanako");
    let ticket = plain
        .phone_send_code(&hanako, "080-1111-2222", None, None)
        .await
        .unwrap();
    let code = secret_to(&gateway, "+818011112222");
    plain
        .phone_confirm(&hanako, &ticket.challenge_id, &code, true)
        .await
        .unwrap();
    let methods = plain.methods(&hanako).await.unwrap();
    assert!(methods.iter().all(|m| m.kind != MethodKind::Link));
    let sms = methods[0].clone();
    let r = plain
        .sign_in_send_link(&hanako, &sms, "Chrome on Windows", None, None)
        .await;
    assert!(
        matches!(r, Err(Error::Misuse(ninsho::Misuse::WrongMethod { .. }))),
        "{r:?}"
    );
}

#[tokio::test]
async fn the_phone_sees_the_device_then_approves_and_the_sign_in_is_collected_once() {
    let env = env().await;
    let (ticket, token) = env.send_link(0, "Chrome on Windows").await;
    assert_eq!(ticket.channel, Channel::Sms);
    assert_eq!(ticket.reason, ChannelReason::FirstChoice);
    assert_eq!(ticket.masked_destination, "+81 **-****-**78");
    assert_eq!(ticket.expires_at, t0() + Duration::minutes(10));

    // The SMS names the device and warns.
    let messages = env.gateway.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (messages[0].channel, messages[0].to.as_str()),
        (Channel::Sms, PHONE)
    );
    let body = messages[0].body.expose_secret();
    assert!(body.contains("Chrome on Windows"), "{body}");
    assert!(
        body.contains("If you did not try to sign in, do not open this link."),
        "{body}"
    );
    assert!(body.contains(&format!("{BASE}{token}")), "{body}");

    // The sign-in page waits.
    assert!(env.poll(&ticket, None).await.unwrap().is_none());

    // Opening the link shows the device and consumes nothing.
    for _ in 0..2 {
        let view = env.service.open_link(&token).await.unwrap();
        assert_eq!(view.challenge_id, ticket.challenge_id);
        assert_eq!(view.device, "Chrome on Windows");
        assert_eq!(view.purpose, Purpose::SignIn);
        assert_eq!(view.expires_at, ticket.expires_at);
    }
    assert!(env.poll(&ticket, None).await.unwrap().is_none());

    // A tampered token is unknown; another account can't poll this one.
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'a' { 'b' } else { 'a' });
    assert_eq!(
        refusal(env.service.open_link(&tampered).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(
        refusal(env.service.approve_link(&tampered).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    let theirs = env
        .service
        .sign_in_poll_link(&AccountId::new("hanako"), &ticket.challenge_id, None, None)
        .await;
    assert_eq!(refusal(theirs), Refusal::Code(CodeRefusal::Unknown));

    // "Sign in on the device above."
    env.clock.advance(Duration::seconds(20));
    env.service.approve_link(&token).await.unwrap();
    let signed_in = env
        .poll(&ticket, Some("Chrome on Windows"))
        .await
        .unwrap()
        .expect("approved");
    assert_eq!(signed_in.method, MethodKind::Link);
    assert_eq!(signed_in.recovery_codes_left, None);
    assert_eq!(signed_in.step_up.at(), t0() + Duration::seconds(20));
    let (cookie, info) = signed_in.device.expect("the browser is trusted");
    assert_eq!(info.label, "Chrome on Windows");

    // Exactly once.
    assert_eq!(
        refusal(env.poll(&ticket, None).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert_eq!(
        refusal(env.service.approve_link(&token).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert_eq!(
        refusal(env.service.open_link(&token).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert_eq!(
        env.service
            .sign_in_begin(&env.taro, Some(cookie.expose_secret()))
            .await
            .unwrap(),
        SignInStart::NotNeeded(Skip::TrustedDevice)
    );
}

#[tokio::test]
async fn this_was_not_me_denies_the_sign_in() {
    let env = env().await;
    let (ticket, token) = env.send_link(0, "Unknown browser on Linux").await;
    let view = env.service.open_link(&token).await.unwrap();
    assert_eq!(view.device, "Unknown browser on Linux");
    env.service.deny_link(&token).await.unwrap();

    assert_eq!(
        refusal(env.poll(&ticket, None).await),
        Refusal::Code(CodeRefusal::Denied)
    );
    assert_eq!(
        refusal(env.service.approve_link(&token).await),
        Refusal::Code(CodeRefusal::Denied)
    );
    assert_eq!(
        refusal(env.service.open_link(&token).await),
        Refusal::Code(CodeRefusal::Denied)
    );
    assert_eq!(
        refusal(env.poll(&ticket, None).await),
        Refusal::Code(CodeRefusal::Denied)
    );
}

#[tokio::test]
async fn a_link_works_for_ten_minutes_and_an_approval_must_be_collected_in_time() {
    let env = env().await;
    let (unopened, token) = env.send_link(0, "Chrome on Windows").await;
    env.clock.advance(Duration::minutes(10));
    assert_eq!(
        refusal(env.service.open_link(&token).await),
        Refusal::Code(CodeRefusal::Expired)
    );
    assert_eq!(
        refusal(env.service.approve_link(&token).await),
        Refusal::Code(CodeRefusal::Expired)
    );
    assert_eq!(
        refusal(env.poll(&unopened, None).await),
        Refusal::Code(CodeRefusal::Expired)
    );

    let (late, token) = env.send_link(0, "Chrome on Windows").await;
    env.clock.advance(Duration::minutes(9));
    env.service.approve_link(&token).await.unwrap();
    env.clock.advance(Duration::minutes(1));
    assert_eq!(
        refusal(env.poll(&late, None).await),
        Refusal::Code(CodeRefusal::Expired)
    );
}

#[tokio::test]
async fn a_link_can_go_to_the_contact_email_address_too() {
    let env = env().await;
    let (ticket, token) = env.send_link(1, "Edge on Windows").await;
    assert_eq!(ticket.channel, Channel::Email);
    assert_eq!(ticket.masked_destination, "ta**@example.com");
    let message = env.gateway.last_to(EMAIL).unwrap();
    assert_eq!(message.subject.as_deref(), Some("au ID sign-in request"));
    let body = message.body.expose_secret();
    assert!(body.contains("Device: Edge on Windows"), "{body}");
    assert!(body.contains("If you did not try to sign in, do not open this link."));
    assert!(body.contains("The link works only once."));

    env.service.approve_link(&token).await.unwrap();
    let signed_in = env.poll(&ticket, None).await.unwrap().unwrap();
    assert_eq!(signed_in.method, MethodKind::Link);
    assert!(signed_in.device.is_none());
}

#[tokio::test]
async fn the_japanese_message_warns_too() {
    let env = env_with(Locale::Ja).await;
    env.send_link(0, "Chrome on Windows").await;
    let body = env
        .gateway
        .last_to(PHONE)
        .unwrap()
        .body
        .expose_secret()
        .to_owned();
    assert!(body.contains("Chrome on Windows"), "{body}");
    assert!(
        body.contains("お心当たりがなければ開かないでください"),
        "{body}"
    );
}

#[tokio::test]
async fn a_one_time_code_by_sms_or_email_is_the_alternative() {
    let env = env().await;
    let by_sms = env.sign_in_by_code(MethodKind::Sms, None).await;
    assert_eq!(by_sms.method, MethodKind::Sms);
    assert_eq!(env.gateway.messages().last().unwrap().channel, Channel::Sms);

    let by_email = env.sign_in_by_code(MethodKind::Email, None).await;
    assert_eq!(by_email.method, MethodKind::Email);
    let mail = env.gateway.last_to(EMAIL).unwrap();
    assert_eq!(mail.channel, Channel::Email);
    assert!(mail.subject.is_some());
    assert_eq!(env.gateway.messages().len(), 2);
}

#[tokio::test]
async fn authorised_devices_are_listed_and_a_revoked_one_is_asked_again() {
    let env = env().await;
    // Two devices, trusted a day apart: one by the link, one by a code.
    let (ticket, token) = env.send_link(0, "Chrome on Windows").await;
    env.service.approve_link(&token).await.unwrap();
    let chrome = env
        .poll(&ticket, Some("Chrome on Windows"))
        .await
        .unwrap()
        .unwrap()
        .device
        .unwrap();
    env.clock.advance(Duration::days(1));
    let safari = env
        .sign_in_by_code(MethodKind::Sms, Some("Safari on iPhone"))
        .await
        .device
        .unwrap();

    let devices = env.service.devices(&env.taro).await.unwrap();
    let labels: Vec<&str> = devices.iter().map(|d| d.label.as_str()).collect();
    assert_eq!(
        labels,
        vec!["Safari on iPhone", "Chrome on Windows"],
        "newest first"
    );
    assert_eq!(devices[0].id, safari.1.id);
    assert_eq!(devices[1].id, chrome.1.id);
    assert_eq!(devices[1].created_at, t0());
    assert_eq!(devices[0].created_at, t0() + Duration::days(1));

    // "I don't recognise this one": revoke it. Another account can't.
    let hanako = AccountId::new("hanako");
    let r = env.service.revoke_device(&hanako, &safari.1.id).await;
    assert_eq!(refusal(r), Refusal::Account(AccountRefusal::NotFound));
    env.service
        .revoke_device(&env.taro, &safari.1.id)
        .await
        .unwrap();
    env.service
        .revoke_device(&env.taro, &safari.1.id)
        .await
        .unwrap();

    let devices = env.service.devices(&env.taro).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].label, "Chrome on Windows");
    assert_eq!(
        env.service
            .check_device(&env.taro, safari.0.expose_secret())
            .await
            .unwrap(),
        DeviceCheck::Revoked
    );
    assert!(matches!(
        env.service
            .sign_in_begin(&env.taro, Some(safari.0.expose_secret()))
            .await
            .unwrap(),
        SignInStart::Required { .. }
    ));
    // The other device still skips the second step.
    assert_eq!(
        env.service
            .sign_in_begin(&env.taro, Some(chrome.0.expose_secret()))
            .await
            .unwrap(),
        SignInStart::NotNeeded(Skip::TrustedDevice)
    );
}
