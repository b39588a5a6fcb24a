//! Seed 001, nizima: register a phone by a 6-digit SMS code (with a resend
//! button), optionally turning two-step sign-in on in the same step; change
//! the number (not delete it) while two-step sign-in is on; one number per
//! account; no landlines, no foreign numbers; 10 single-use recovery codes,
//! shown once, regenerated on demand and on re-enabling; the same browser
//! skips the second step next time.
//!
//! Played through `TwoFactor` only, including the branches: resend, wrong
//! code, step-up missing or stale, lost phone → recovery code, turning
//! two-step sign-in off and on again.

mod support;

use ninsho::{AccountRefusal, CodeRefusal, ContactRefusal, SendRefusal};
use std::sync::Arc;

use ninsho::contact::{ContactError, PhoneRefusal, Region};

use ninsho::device::DeviceCheck;
use ninsho::gateway::RecordingGateway;
use ninsho::limits::{RateLimit, SendLimits};
use ninsho::model::{AccountId, Channel, Destination};
use ninsho::recovery::PlainCodes;
use ninsho::service::{Method, MethodKind, Proof, SignInStart, SignedIn, Skip, StepUp, TwoFactor};
use ninsho::store::MemoryStore;
use ninsho::{Error, ManualClock, Refusal};
use support::{T0, refusal, secret_to, t0, two_factor};
use time::Duration;

const PHONE: &str = "+819012345678";
const NEW_PHONE: &str = "+818098765432";

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
}

/// The service with send limits out of the way (this file is about the
/// journey; the limits have their own tests).
fn env() -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let lots = RateLimit::new(1_000, Duration::minutes(10));
    let service = two_factor("nizima", Arc::new(MemoryStore::new()), &gateway, &clock, 1)
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
        service,
        gateway,
        clock,
    }
}

fn taro() -> AccountId {
    AccountId::new("taro")
}

fn hanako() -> AccountId {
    AccountId::new("hanako")
}

/// Registers `typed` (which normalises to `e164`) on the account: send,
/// read the SMS, confirm.
async fn register(
    env: &Env,
    account: &AccountId,
    typed: &str,
    e164: &str,
    enable: bool,
) -> Option<PlainCodes> {
    let ticket = env
        .service
        .phone_send_code(account, typed, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, e164);
    env.service
        .phone_confirm(account, &ticket.challenge_id, &code, enable)
        .await
        .unwrap()
        .recovery_codes
}

fn method(methods: &[Method], kind: MethodKind) -> Method {
    methods
        .iter()
        .find(|m| m.kind == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind:?} method in {methods:?}"))
}

/// Passes the second step by SMS, optionally trusting the browser.
async fn sign_in_by_sms(env: &Env, account: &AccountId, trust: Option<&str>) -> SignedIn {
    let methods = env.service.methods(account).await.unwrap();
    let sms = method(&methods, MethodKind::Sms);
    let ticket = env
        .service
        .sign_in_send_code(account, &sms, None, None)
        .await
        .unwrap();
    let to = env.gateway.messages().last().unwrap().to.clone();
    let code = secret_to(&env.gateway, &to);
    env.service
        .sign_in_complete(
            account,
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

async fn step_up(env: &Env, account: &AccountId) -> StepUp {
    sign_in_by_sms(env, account, None).await.step_up
}

fn kinds(start: &SignInStart) -> Vec<MethodKind> {
    match start {
        SignInStart::Required { methods } => methods.iter().map(|m| m.kind).collect(),
        other => panic!("the second step was skipped: {other:?}"),
    }
}

#[track_caller]
fn phone_refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> PhoneRefusal {
    match result {
        Err(Error::Contact(ContactError::Phone(r))) => r,
        other => panic!("expected a phone refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn registering_a_phone_with_two_step_on_shows_ten_recovery_codes_once() {
    let env = env();
    let taro = taro();
    let ticket = env
        .service
        .phone_send_code(&taro, "090-1234-5678", None, None)
        .await
        .unwrap();
    assert_eq!(ticket.channel, Channel::Sms);
    assert_eq!(ticket.masked_destination, "+81 **-****-**78");
    assert_eq!(ticket.expires_at, t0() + Duration::minutes(10));
    let first = secret_to(&env.gateway, PHONE);
    assert_eq!(first.len(), 6, "a 6-digit code");
    assert!(first.chars().all(|c| c.is_ascii_digit()));

    // "Resend": not before the cooldown; not someone else's challenge.
    let early = env.service.resend(&taro, &ticket.challenge_id, None).await;
    assert_eq!(
        refusal(early),
        Refusal::Send(SendRefusal::Cooldown {
            retry_at: t0() + Duration::seconds(60)
        })
    );
    env.clock.advance(Duration::seconds(60));
    let theirs = env
        .service
        .resend(&hanako(), &ticket.challenge_id, None)
        .await;
    assert_eq!(refusal(theirs), Refusal::Code(CodeRefusal::Unknown));
    let resent = env
        .service
        .resend(&taro, &ticket.challenge_id, None)
        .await
        .unwrap();
    assert_eq!(resent.challenge_id, ticket.challenge_id);
    assert_eq!(env.gateway.sent_to(PHONE).len(), 2);
    let code = secret_to(&env.gateway, PHONE);
    assert_ne!(code, first, "a new code");

    // A wrong code first; hanako can't confirm taro's challenge.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = env
        .service
        .phone_confirm(&taro, &ticket.challenge_id, wrong, true)
        .await;
    assert_eq!(
        refusal(r),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    let r = env
        .service
        .phone_confirm(&hanako(), &ticket.challenge_id, &code, true)
        .await;
    assert_eq!(refusal(r), Refusal::Code(CodeRefusal::Unknown));
    assert!(!env.service.two_factor_enabled(&taro).await.unwrap());

    // "Also turn on two-step sign-in" ticked.
    let done = env
        .service
        .phone_confirm(&taro, &ticket.challenge_id, &code, true)
        .await
        .unwrap();
    assert!(!done.changed);
    assert!(done.contact.verified);
    assert_eq!(done.contact.destination, Destination::phone(PHONE).unwrap());
    let codes = done.recovery_codes.expect("recovery codes, shown once");
    let shown = codes.expose_secret();
    assert_eq!(shown.len(), 10);
    let mut distinct = shown.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    assert!(
        shown.iter().all(|c| c.len() == 14),
        "xxxx-xxxx-xxxx: {}",
        shown[0].len()
    );

    assert!(env.service.two_factor_enabled(&taro).await.unwrap());
    assert_eq!(
        env.service.recovery_codes_left(&taro).await.unwrap(),
        Some(10)
    );
    let contacts = env.service.contacts(&taro).await.unwrap();
    assert_eq!(contacts.len(), 1);
    assert!(contacts[0].verified && contacts[0].two_factor);

    // The code is spent; two-step sign-in can't be turned on twice.
    let again = env
        .service
        .phone_confirm(&taro, &ticket.challenge_id, &code, true)
        .await;
    assert_eq!(refusal(again), Refusal::Code(CodeRefusal::AlreadyUsed));
    let twice = env.service.enable_two_factor(&taro).await;
    assert_eq!(
        refusal(twice),
        Refusal::Account(AccountRefusal::TwoFactorAlreadyOn)
    );

    // Next sign-in asks for the second step: SMS, a call, or a recovery code.
    let start = env.service.sign_in_begin(&taro, None).await.unwrap();
    assert_eq!(
        kinds(&start),
        vec![MethodKind::Sms, MethodKind::Voice, MethodKind::RecoveryCode]
    );
    let SignInStart::Required { methods } = start else {
        unreachable!()
    };
    assert_eq!(
        methods[0].masked_destination.as_deref(),
        Some("+81 **-****-**78")
    );
    assert!(methods.iter().all(|m| !m.confirmation_required));
    assert_eq!(methods[2].masked_destination, None);
}

#[tokio::test]
async fn the_confirmed_phone_says_two_step_sign_in_uses_it() {
    let env = env();
    let taro = taro();
    let ticket = env
        .service
        .phone_send_code(&taro, "090-1234-5678", None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    let done = env
        .service
        .phone_confirm(&taro, &ticket.challenge_id, &code, true)
        .await
        .unwrap();
    assert!(done.recovery_codes.is_some());
    assert!(done.contact.two_factor, "the view handed back is stale");
}

#[tokio::test]
async fn two_step_sign_in_can_be_turned_on_after_registering() {
    let env = env();
    let taro = taro();
    let codes = register(&env, &taro, "090-1234-5678", PHONE, false).await;
    assert!(codes.is_none(), "not ticked: no recovery codes");
    assert_eq!(
        env.service.sign_in_begin(&taro, None).await.unwrap(),
        SignInStart::NotNeeded(Skip::TwoFactorOff)
    );
    assert_eq!(env.service.recovery_codes_left(&taro).await.unwrap(), None);
    // Recovery codes can't be shown or regenerated while it is off.
    let proof = step_up(&env, &taro).await;
    let off = env.service.regenerate_recovery_codes(&taro, &proof).await;
    assert_eq!(refusal(off), Refusal::Account(AccountRefusal::TwoFactorOff));

    let codes = env.service.enable_two_factor(&taro).await.unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        kinds(&env.service.sign_in_begin(&taro, None).await.unwrap()),
        vec![MethodKind::Sms, MethodKind::Voice, MethodKind::RecoveryCode]
    );

    // Without a phone there is nothing to send codes to.
    let none = env.service.enable_two_factor(&hanako()).await;
    assert_eq!(
        refusal(none),
        Refusal::Account(AccountRefusal::NoSecondFactor)
    );
}

#[tokio::test]
async fn changing_the_phone_needs_a_fresh_second_factor_and_kills_trusted_devices() {
    let env = env();
    let taro = taro();
    register(&env, &taro, "090-1234-5678", PHONE, true).await;
    let trusted = sign_in_by_sms(&env, &taro, Some("Firefox on Mac")).await;
    let (token, _) = trusted.device.clone().unwrap();

    // Without a step-up: refused, nothing sent to the new number.
    let r = env
        .service
        .phone_send_code(&taro, "080-9876-5432", None, None)
        .await;
    assert_eq!(refusal(r), Refusal::Account(AccountRefusal::StepUpRequired));
    assert!(env.gateway.sent_to(NEW_PHONE).is_empty());

    // With a fresh one (the sign-in above, 0 s ago).
    let ticket = env
        .service
        .phone_send_code(&taro, "080-9876-5432", Some(&trusted.step_up), None)
        .await
        .unwrap();
    assert_eq!(ticket.masked_destination, "+81 **-****-**32");
    let code = secret_to(&env.gateway, NEW_PHONE);
    let done = env
        .service
        .phone_confirm(&taro, &ticket.challenge_id, &code, true)
        .await
        .unwrap();
    assert!(done.changed);
    assert!(
        done.recovery_codes.is_none(),
        "two-step sign-in was on already"
    );
    assert_eq!(
        done.contact.destination,
        Destination::phone(NEW_PHONE).unwrap()
    );

    // The new number replaced the old one, keeping its two-step role.
    let contacts = env.service.contacts(&taro).await.unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        contacts[0].destination,
        Destination::phone(NEW_PHONE).unwrap()
    );
    assert!(contacts[0].verified && contacts[0].two_factor);
    let owner = |n: &str| {
        let d = Destination::phone(n).unwrap();
        let service = env.service.clone();
        async move { service.contact_owner(&d).await.unwrap() }
    };
    assert_eq!(owner(NEW_PHONE).await, Some(taro.clone()));
    assert_eq!(owner(PHONE).await, None, "the old number is released");
    // Sign-in codes now go to the new number.
    let methods = env.service.methods(&taro).await.unwrap();
    assert_eq!(
        method(&methods, MethodKind::Sms)
            .masked_destination
            .as_deref(),
        Some("+81 **-****-**32")
    );
    // A new number is a new authenticator: the trusted browser must pass the
    // second step again.
    assert_eq!(
        env.service
            .check_device(&taro, token.expose_secret())
            .await
            .unwrap(),
        DeviceCheck::Revoked
    );
    assert!(matches!(
        env.service
            .sign_in_begin(&taro, Some(token.expose_secret()))
            .await
            .unwrap(),
        SignInStart::Required { .. }
    ));
    // The old number is free for someone else.
    register(&env, &hanako(), "090-1234-5678", PHONE, false).await;
    assert_eq!(owner(PHONE).await, Some(hanako()));
}

#[tokio::test]
async fn a_step_up_is_fresh_for_ten_minutes_for_its_own_account_only() {
    let env = env();
    let taro = taro();
    register(&env, &taro, "090-1234-5678", PHONE, true).await;
    register(&env, &hanako(), "080-1111-2222", "+818011112222", true).await;
    let proof = step_up(&env, &taro).await;
    assert_eq!(proof.at(), t0());
    assert_eq!(proof.method(), MethodKind::Sms);
    assert_eq!(proof.account(), &taro);

    env.clock.advance(Duration::minutes(10));
    env.service.check_step_up(&taro, &proof).await.unwrap();
    let theirs = env.service.check_step_up(&hanako(), &proof).await;
    assert_eq!(
        refusal(theirs),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );

    // A forged proof (its instant moved on) is refused even while fresh.
    let mut json = serde_json::to_value(&proof).unwrap();
    json["at"] = serde_json::to_value(t0() + Duration::minutes(5)).unwrap();
    let forged: StepUp = serde_json::from_value(json).unwrap();
    assert_eq!(
        refusal(env.service.check_step_up(&taro, &forged).await),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );

    env.clock.advance(Duration::seconds(1));
    assert_eq!(
        refusal(env.service.check_step_up(&taro, &proof).await),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    let stale = env
        .service
        .phone_send_code(&taro, "080-9876-5432", Some(&proof), None)
        .await;
    assert_eq!(
        refusal(stale),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    let stale = env.service.regenerate_recovery_codes(&taro, &proof).await;
    assert_eq!(
        refusal(stale),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    let stale = env.service.disable_two_factor(&taro, &proof).await;
    assert_eq!(
        refusal(stale),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    assert!(env.gateway.sent_to(NEW_PHONE).is_empty());
    assert!(env.service.two_factor_enabled(&taro).await.unwrap());
}

#[tokio::test]
async fn the_phone_cannot_be_deleted_while_two_step_sign_in_is_on() {
    let env = env();
    let taro = taro();
    register(&env, &taro, "090-1234-5678", PHONE, true).await;

    let r = env.service.phone_remove(&taro).await;
    assert_eq!(refusal(r), Refusal::Contact(ContactRefusal::Required));
    assert_eq!(env.service.contacts(&taro).await.unwrap().len(), 1);

    // Turned off first, the number can go (and is released).
    let proof = step_up(&env, &taro).await;
    env.service.disable_two_factor(&taro, &proof).await.unwrap();
    env.service.phone_remove(&taro).await.unwrap();
    assert!(env.service.contacts(&taro).await.unwrap().is_empty());
    let owner = env
        .service
        .contact_owner(&Destination::phone(PHONE).unwrap())
        .await
        .unwrap();
    assert_eq!(owner, None);
    assert_eq!(
        refusal(env.service.phone_remove(&taro).await),
        Refusal::Contact(ContactRefusal::NotOnAccount)
    );
}

#[tokio::test]
async fn one_number_belongs_to_one_account() {
    let env = env();
    let taro = taro();
    register(&env, &taro, "090-1234-5678", PHONE, true).await;

    // hanako tries taro's number. The code goes out as for any number (so
    // the form can't be used to probe who is registered); once she proves
    // she receives it, she is told the number is taken.
    let hanako = hanako();
    let ticket = env
        .service
        .phone_send_code(&hanako, "+81 90 1234 5678", None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    let refused = env
        .service
        .phone_confirm(&hanako, &ticket.challenge_id, &code, true)
        .await;
    assert_eq!(refusal(refused), Refusal::Contact(ContactRefusal::InUse));
    assert!(env.service.contacts(&hanako).await.unwrap().is_empty());
    assert!(!env.service.two_factor_enabled(&hanako).await.unwrap());
    let owner = env
        .service
        .contact_owner(&Destination::phone(PHONE).unwrap())
        .await
        .unwrap();
    assert_eq!(owner, Some(taro.clone()));

    // Registering the number taro already has is no change either.
    let same = env
        .service
        .phone_send_code(&taro, "090-1234-5678", None, None)
        .await;
    assert_eq!(
        refusal(same),
        Refusal::Contact(ContactRefusal::AlreadyAdded)
    );
}

#[tokio::test]
async fn landlines_ip_phones_and_foreign_numbers_are_refused() {
    let env = env();
    let taro = taro();
    let cases = [
        ("03-1234-5678", PhoneRefusal::LandlineCannotReceiveSms),
        ("06-6123-4567", PhoneRefusal::LandlineCannotReceiveSms),
        ("050-1234-5678", PhoneRefusal::IpPhone),
        ("0120-123-456", PhoneRefusal::TollFree),
        (
            "+44 7400 123456",
            PhoneRefusal::RegionNotAllowed {
                region: Region::new("GB"),
            },
        ),
        (
            "+82 10-1234-5678",
            PhoneRefusal::RegionNotAllowed {
                region: Region::new("KR"),
            },
        ),
    ];
    for (typed, expected) in cases {
        let r = env.service.phone_send_code(&taro, typed, None, None).await;
        assert_eq!(phone_refusal(r), expected, "{typed}");
    }
    assert!(env.gateway.attempts().is_empty(), "nothing was sent");
    assert!(env.service.contacts(&taro).await.unwrap().is_empty());
}

#[tokio::test]
async fn trusting_the_browser_skips_the_second_step_next_time() {
    let env = env();
    let taro = taro();
    register(&env, &taro, "090-1234-5678", PHONE, true).await;
    register(&env, &hanako(), "080-1111-2222", "+818011112222", true).await;

    let SignInStart::Required { methods } = env.service.sign_in_begin(&taro, None).await.unwrap()
    else {
        panic!("two-step sign-in is on");
    };
    let ticket = env
        .service
        .sign_in_send_code(&taro, &method(&methods, MethodKind::Sms), None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = env
        .service
        .sign_in_complete(
            &taro,
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: wrong,
            },
            Some("Chrome on Windows"),
            None,
        )
        .await;
    assert_eq!(
        refusal(r),
        Refusal::Code(CodeRefusal::WrongCode {
            attempts_left: Some(4)
        })
    );
    // Another account can't use taro's challenge.
    let r = env
        .service
        .sign_in_complete(
            &hanako(),
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &code,
            },
            None,
            None,
        )
        .await;
    assert_eq!(refusal(r), Refusal::Code(CodeRefusal::Unknown));

    let signed_in = env
        .service
        .sign_in_complete(
            &taro,
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &code,
            },
            Some("Chrome on Windows"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(signed_in.method, MethodKind::Sms);
    assert_eq!(signed_in.recovery_codes_left, None);
    let (token, info) = signed_in.device.expect("the browser is trusted");
    assert_eq!(info.label, "Chrome on Windows");
    assert_eq!(info.expires_at, t0() + Duration::days(30));
    // The code signs in once.
    let replay = env
        .service
        .sign_in_complete(
            &taro,
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &code,
            },
            None,
            None,
        )
        .await;
    assert_eq!(refusal(replay), Refusal::Code(CodeRefusal::AlreadyUsed));

    // Next time, from the same browser: no second step.
    env.clock.advance(Duration::days(1));
    let sent = env.gateway.messages().len();
    assert_eq!(
        env.service
            .sign_in_begin(&taro, Some(token.expose_secret()))
            .await
            .unwrap(),
        SignInStart::NotNeeded(Skip::TrustedDevice)
    );
    assert_eq!(env.gateway.messages().len(), sent, "no code was sent");
    // Another browser, a tampered cookie, or another account: asked again.
    for (account, cookie) in [
        (taro.clone(), "nd1.garbage".to_owned()),
        (taro.clone(), format!("{}x", token.expose_secret())),
        (hanako(), token.expose_secret().to_owned()),
    ] {
        let start = env
            .service
            .sign_in_begin(&account, Some(&cookie))
            .await
            .unwrap();
        assert!(matches!(start, SignInStart::Required { .. }), "{cookie}");
    }
    // Trust runs out after 30 days.
    env.clock.set(t0() + Duration::days(30));
    assert!(matches!(
        env.service
            .sign_in_begin(&taro, Some(token.expose_secret()))
            .await
            .unwrap(),
        SignInStart::Required { .. }
    ));
}

#[tokio::test]
async fn a_lost_phone_is_replaced_by_a_recovery_code_which_revokes_trusted_browsers() {
    let env = env();
    let taro = taro();
    let codes = register(&env, &taro, "090-1234-5678", PHONE, true)
        .await
        .unwrap();
    let codes: Vec<String> = codes
        .expose_secret()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let (old_browser, _) = sign_in_by_sms(&env, &taro, Some("Old PC"))
        .await
        .device
        .unwrap();

    // The phone is gone: "I can't receive the code" → a recovery code.
    env.clock.advance(Duration::hours(1));
    let start = env.service.sign_in_begin(&taro, None).await.unwrap();
    assert!(kinds(&start).contains(&MethodKind::RecoveryCode));
    let wrong = env
        .service
        .sign_in_complete(
            &taro,
            Proof::RecoveryCode {
                code: "AAAA-AAAA-AAAA",
            },
            None,
            None,
        )
        .await;
    assert_eq!(
        refusal(wrong),
        Refusal::Code(CodeRefusal::WrongRecoveryCode)
    );
    // Typed in lower case with spaces: still the code.
    let typed = codes[3].to_lowercase().replace('-', " ");
    let signed_in = env
        .service
        .sign_in_complete(
            &taro,
            Proof::RecoveryCode { code: &typed },
            Some("New PC"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(signed_in.method, MethodKind::RecoveryCode);
    assert_eq!(signed_in.recovery_codes_left, Some(9));
    let (new_browser, _) = signed_in.device.expect("the new browser is trusted");

    // Every browser trusted before is revoked; the new one is not.
    assert_eq!(
        env.service
            .check_device(&taro, old_browser.expose_secret())
            .await
            .unwrap(),
        DeviceCheck::Revoked
    );
    assert!(matches!(
        env.service
            .sign_in_begin(&taro, Some(old_browser.expose_secret()))
            .await
            .unwrap(),
        SignInStart::Required { .. }
    ));
    assert_eq!(
        env.service
            .sign_in_begin(&taro, Some(new_browser.expose_secret()))
            .await
            .unwrap(),
        SignInStart::NotNeeded(Skip::TrustedDevice)
    );
    let devices = env.service.devices(&taro).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].label, "New PC");

    // A used code never works again; the others do, and the count goes down.
    let reused = env
        .service
        .sign_in_complete(&taro, Proof::RecoveryCode { code: &codes[3] }, None, None)
        .await;
    assert_eq!(refusal(reused), Refusal::Code(CodeRefusal::AlreadyUsed));
    let next = env
        .service
        .sign_in_complete(&taro, Proof::RecoveryCode { code: &codes[0] }, None, None)
        .await
        .unwrap();
    assert_eq!(next.recovery_codes_left, Some(8));
    assert_eq!(
        env.service.recovery_codes_left(&taro).await.unwrap(),
        Some(8)
    );
    // A recovery code is a fresh second factor.
    env.service
        .check_step_up(&taro, &next.step_up)
        .await
        .unwrap();
    assert_eq!(next.step_up.method(), MethodKind::RecoveryCode);
}

#[tokio::test]
async fn regenerating_recovery_codes_voids_the_old_set() {
    let env = env();
    let taro = taro();
    let old = register(&env, &taro, "090-1234-5678", PHONE, true)
        .await
        .unwrap();
    let old: Vec<String> = old
        .expose_secret()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let proof = step_up(&env, &taro).await;

    let new = env
        .service
        .regenerate_recovery_codes(&taro, &proof)
        .await
        .unwrap();
    let new: Vec<String> = new
        .expose_secret()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    assert_eq!(
        env.service.recovery_codes_left(&taro).await.unwrap(),
        Some(10)
    );

    for code in &old {
        let r = env
            .service
            .sign_in_complete(&taro, Proof::RecoveryCode { code }, None, None)
            .await;
        assert_eq!(refusal(r), Refusal::Code(CodeRefusal::WrongRecoveryCode));
        // Past the failure back-off (at most 15 minutes) before the next.
        env.clock.advance(Duration::minutes(15));
    }
    let signed_in = env
        .service
        .sign_in_complete(&taro, Proof::RecoveryCode { code: &new[9] }, None, None)
        .await
        .unwrap();
    assert_eq!(signed_in.recovery_codes_left, Some(9));
}

#[tokio::test]
async fn turning_two_step_off_needs_a_step_up_and_on_again_issues_new_codes() {
    let env = env();
    let taro = taro();
    let first = register(&env, &taro, "090-1234-5678", PHONE, true)
        .await
        .unwrap();
    let first: Vec<String> = first
        .expose_secret()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let trusted = sign_in_by_sms(&env, &taro, Some("Chrome on Windows")).await;
    let (token, _) = trusted.device.unwrap();

    let someone_elses = {
        register(&env, &hanako(), "080-1111-2222", "+818011112222", true).await;
        step_up(&env, &hanako()).await
    };
    let r = env.service.disable_two_factor(&taro, &someone_elses).await;
    assert_eq!(refusal(r), Refusal::Account(AccountRefusal::StepUpRequired));

    env.service
        .disable_two_factor(&taro, &trusted.step_up)
        .await
        .unwrap();
    assert!(!env.service.two_factor_enabled(&taro).await.unwrap());
    // Recovery codes are gone, trusted browsers revoked, the phone no
    // longer a second factor (so it could be removed now).
    assert_eq!(env.service.recovery_codes_left(&taro).await.unwrap(), None);
    let methods = env.service.methods(&taro).await.unwrap();
    assert!(methods.iter().all(|m| m.kind != MethodKind::RecoveryCode));
    assert_eq!(
        env.service
            .check_device(&taro, token.expose_secret())
            .await
            .unwrap(),
        DeviceCheck::Revoked
    );
    assert!(env.service.devices(&taro).await.unwrap().is_empty());
    assert!(!env.service.contacts(&taro).await.unwrap()[0].two_factor);
    assert_eq!(
        env.service.sign_in_begin(&taro, None).await.unwrap(),
        SignInStart::NotNeeded(Skip::TwoFactorOff)
    );
    let r = env
        .service
        .sign_in_complete(&taro, Proof::RecoveryCode { code: &first[0] }, None, None)
        .await;
    assert_eq!(
        refusal(r),
        Refusal::Code(CodeRefusal::Unknown),
        "no set any more"
    );
    // Turning it off moved the security epoch on: the step-up that did it
    // is spent. A fresh one hears that two-step sign-in is off already.
    let r = env
        .service
        .disable_two_factor(&taro, &trusted.step_up)
        .await;
    assert_eq!(refusal(r), Refusal::Account(AccountRefusal::StepUpRequired));
    let fresh = step_up(&env, &taro).await;
    let r = env.service.disable_two_factor(&taro, &fresh).await;
    assert_eq!(refusal(r), Refusal::Account(AccountRefusal::TwoFactorOff));

    // On again: a new set, the old one still dead.
    let second = env.service.enable_two_factor(&taro).await.unwrap();
    let second: Vec<String> = second
        .expose_secret()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    assert_eq!(second.len(), 10);
    assert!(second.iter().all(|c| !first.contains(c)));
    assert!(env.service.contacts(&taro).await.unwrap()[0].two_factor);
    assert_eq!(
        kinds(&env.service.sign_in_begin(&taro, None).await.unwrap()),
        vec![MethodKind::Sms, MethodKind::Voice, MethodKind::RecoveryCode]
    );
    let r = env
        .service
        .sign_in_complete(&taro, Proof::RecoveryCode { code: &first[0] }, None, None)
        .await;
    assert_eq!(refusal(r), Refusal::Code(CodeRefusal::WrongRecoveryCode));
    let signed_in = env
        .service
        .sign_in_complete(&taro, Proof::RecoveryCode { code: &second[0] }, None, None)
        .await
        .unwrap();
    assert_eq!(signed_in.recovery_codes_left, Some(9));
}
