//! Every result a host hands to its front end serialises, and no secret
//! reaches the JSON: not a code, a link token, a device token, a recovery
//! code, an authenticator seed, a step-up proof, nor a whole contact (the
//! masked forms stand in for them).
//!
//! The journeys run on the public API; everything secret they produce (or
//! that the gateway delivered) is collected, and every JSON text is
//! searched for each of them.

mod support;

use std::sync::Arc;

use ninsho::gateway::RecordingGateway;
use ninsho::model::{Destination, Purpose};
use ninsho::otp::Totp;
use ninsho::prelude::*;
use ninsho::service::IssueRequest;
use ninsho::store::MemoryStore;
use ninsho::{Clock, ManualClock};
use serde::Serialize;
use support::{BASE, PHONE, T0, secret_to, two_factor};

const EMAIL: &str = "taro@example.com";

/// What must never appear in JSON, gathered as the journeys run.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        assert!(secret.len() >= 4, "too short to search for: {secret:?}");
        self.0.push(secret);
    }

    /// Serialises `value` and checks it holds no secret; returns the JSON.
    #[track_caller]
    fn check(&self, what: &str, value: &impl Serialize) -> serde_json::Value {
        let json = serde_json::to_value(value).expect("it serialises");
        let text = json.to_string();
        for secret in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "{what} leaks {secret:?}: {text}"
            );
        }
        json
    }
}

#[tokio::test]
async fn every_result_serialises_without_a_secret() {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = two_factor("Example", Arc::new(MemoryStore::new()), &gateway, &clock, 5)
        .link_base(BASE)
        .build()
        .unwrap();
    let taro = AccountId::new("taro");
    let mut secrets = Secrets::default();
    // Whole contacts: the number in every form a page might print it.
    for contact in [PHONE, "9012345678", "090-1234-5678", EMAIL] {
        secrets.add(contact);
    }

    // Register the phone with two-step sign-in on.
    let ticket = service
        .phone_send_code(&taro, "090-1234-5678", None, None)
        .await
        .unwrap();
    let code = secret_to(&gateway, PHONE);
    secrets.add(code.clone());
    let json = secrets.check("Ticket", &ticket);
    assert_eq!(json["masked_destination"], "+81 **-****-**78");
    // Instants as RFC 3339 text, which every front end reads.
    assert_eq!(json["expires_at"], "2025-11-21T00:10:00Z", "{json}");
    let done = service
        .phone_confirm(&taro, &ticket.challenge_id, &code, true)
        .await
        .unwrap();
    for code in done.recovery_codes.as_ref().unwrap().expose_secret() {
        secrets.add(code);
    }
    let json = secrets.check("PhoneConfirmed", &done);
    assert!(json.get("recovery_codes").is_none(), "{json}");

    // The sign-in second step, trusting the device.
    let start = service.sign_in_begin(&taro, None).await.unwrap();
    let json = secrets.check("SignInStart", &start);
    assert_eq!(json["second_step"], "required");
    let SignInStart::Required { methods } = start else {
        panic!("two-step sign-in is on");
    };
    let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
    secrets.check("Method", sms);
    let ticket = service
        .sign_in_send_code(&taro, &sms.id, None, None)
        .await
        .unwrap();
    let code = secret_to(&gateway, PHONE);
    secrets.add(code.clone());
    let proof = Proof::Code {
        challenge: &ticket.challenge_id,
        code: &code,
    };
    let signed_in = service
        .sign_in_complete(&taro, proof, Some("Firefox on Linux"), None)
        .await
        .unwrap();
    let (token, _) = signed_in.device.as_ref().unwrap();
    secrets.add(token.expose_secret());
    // The step-up proof is a bearer secret: its tag must not leak.
    let step_up = serde_json::to_value(&signed_in.step_up).unwrap();
    secrets.add(step_up["tag"]["tag"].to_string());
    let json = secrets.check("SignedIn", &signed_in);
    assert_eq!(
        json["trusted_device"]["label"], "Firefox on Linux",
        "{json}"
    );
    assert!(json.get("step_up").is_none(), "{json}");

    // The device list, and a device check.
    let devices = service.devices(&taro).await.unwrap();
    secrets.check("DeviceInfo", &devices);
    let check = service
        .check_device(&taro, token.expose_secret())
        .await
        .unwrap();
    secrets.check("DeviceCheck", &check);
    assert!(!check.is_stale());
    let stale = service.check_device(&taro, "nd1.garbage").await.unwrap();
    assert!(stale.is_stale(), "{stale:?}");
    assert_eq!(secrets.check("DeviceCheck", &stale)["device"], "unknown");

    // A one-time link, opened on the phone.
    let link = methods.iter().find(|m| m.kind == MethodKind::Link).unwrap();
    let ticket = service
        .sign_in_send_link(&taro, &link.id, "Chrome on Windows", None, None)
        .await
        .unwrap();
    let url = secret_to(&gateway, PHONE);
    let token = url.strip_prefix(BASE).unwrap().to_owned();
    secrets.add(token.clone());
    secrets.check("LinkTicket", &ticket);
    let view = service.open_link(&token).await.unwrap();
    secrets.check("LinkView", &view);
    service.approve_link(&token).await.unwrap();

    // The authenticator app: its setup holds the seed and is not
    // serialisable at all; the seed must not turn up anywhere else.
    let setup = service
        .authenticator_start(&taro, EMAIL, Some(&signed_in.step_up))
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    secrets.add(setup.manual_key.expose_secret().replace(' ', ""));

    // The contact check and the settings page.
    let check = service.contact_check(&taro).await.unwrap();
    let json = secrets.check("ContactCheck", &check);
    assert_eq!(json["decision"]["decision"], "allow", "{json}");
    let contacts = service.contacts(&taro).await.unwrap();
    secrets.check("ContactView", &contacts);

    // Sign-up: email and phone verified together.
    let email = Destination::email("hanako@example.com").unwrap();
    for contact in ["hanako@example.com", "+818011112222", "8011112222"] {
        secrets.add(contact);
    }
    let signup = service
        .signup_start("hanako@example.com", "080-1111-2222", None)
        .await
        .unwrap();
    secrets.check("VerificationTicket", &signup);
    let code = secret_to(&gateway, "hanako@example.com");
    secrets.add(code.clone());
    let progress = service.signup_verify(&signup.id, 0, &code).await.unwrap();
    secrets.check("Progress", &progress);
    let status = service.signup_status(&signup.id).await.unwrap();
    secrets.check("VerificationStatus", &status);

    // "I can't sign in": the account found by its number.
    let ticket = service.recover_start("080-1111-2222", None).await.unwrap();
    let code = secret_to(&gateway, "+818011112222");
    secrets.add(code.clone());
    secrets.check("Ticket", &ticket);
    let recovered = service.recover_verify(&ticket.challenge_id, &code).await;
    if let Ok(recovered) = recovered {
        secrets.check("Recovered", &recovered);
    }

    // Codes on their own.
    let codes = service.one_time_codes();
    let ticket = codes
        .send(IssueRequest::new(email.clone(), Purpose::StepUp))
        .await
        .unwrap();
    let code = secret_to(&gateway, "hanako@example.com");
    secrets.add(code.clone());
    let verified = codes
        .verify(&ticket.challenge_id, &code, &Purpose::StepUp, &email)
        .await
        .unwrap();
    secrets.check("Verified", &verified);

    // The operator's key report.
    let usage = service.key_usage(&taro).await.unwrap();
    secrets.check("KeyUsage", &usage);

    // The app's code, for completeness: it never went anywhere.
    secrets.add(app.code_at(clock.unix_seconds()).to_string());
}
