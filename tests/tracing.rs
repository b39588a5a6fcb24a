//! The `tracing` feature: [`TracingEvents`] writes every audit event as a
//! structured `tracing` event, each `TwoFactor` journey call runs in a
//! span with its account and method kind, and no code, token, seed or
//! full contact reaches any field.
//!
//! A capturing subscriber records every span and event with all its
//! fields as text while full journeys run (an SMS sign-in with a wrong
//! code, a trusted device, a recovery code, an authenticator enrolled and
//! used, a replayed app code, a one-time link denied, an email added, the
//! "I can't sign in" recovery, a sign-up, a lockout). The audit events
//! also go to a [`RecordingEvents`], to compare; every secret the journeys
//! produce is collected and searched for in everything captured.

#![cfg(feature = "tracing")]

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ninsho::events::{AUDIT_TARGET, Event, EventSink, RecordingEvents, TracingEvents};
use ninsho::gateway::RecordingGateway;
use ninsho::model::Destination;
use ninsho::otp::Totp;
use ninsho::prelude::*;
use ninsho::store::MemoryStore;
use ninsho::{Clock, ManualClock};
use support::{BASE, PHONE, T0, secret_to, two_factor};
use time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Metadata, Subscriber};

const EMAIL: &str = "taro@example.com";

// --------------------------------------------------------------- capture

/// A span as captured: its name and fields (recorded later ones too).
#[derive(Debug, Clone)]
struct SpanSeen {
    name: &'static str,
    metadata: &'static Metadata<'static>,
    fields: BTreeMap<String, String>,
}

/// An event as captured, with the names of the spans it happened in
/// (outermost first).
#[derive(Debug, Clone)]
struct EventSeen {
    target: String,
    level: Level,
    fields: BTreeMap<String, String>,
    spans: Vec<&'static str>,
}

#[derive(Debug, Default)]
struct Seen {
    spans: BTreeMap<u64, SpanSeen>,
    /// Span ids in creation order.
    order: Vec<u64>,
    /// The spans entered now, innermost last (the test runs on one thread).
    entered: Vec<u64>,
    events: Vec<EventSeen>,
}

/// A subscriber that keeps everything, every field as text.
#[derive(Debug, Clone, Default)]
struct Capture {
    seen: Arc<Mutex<Seen>>,
    next: Arc<AtomicU64>,
}

impl Capture {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut fields = BTreeMap::new();
        span.record(&mut Fields(&mut fields));
        let mut seen = self.seen();
        seen.spans.insert(
            id,
            SpanSeen {
                name: span.metadata().name(),
                metadata: span.metadata(),
                fields,
            },
        );
        seen.order.push(id);
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(seen) = self.seen().spans.get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let mut seen = self.seen();
        let spans = seen.entered.iter().map(|id| seen.spans[id].name).collect();
        seen.events.push(EventSeen {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields,
            spans,
        });
    }

    /// What `Span::current()` answers (a journey records its method kind
    /// on it).
    fn current_span(&self) -> tracing_core::span::Current {
        let seen = self.seen();
        match seen.entered.last() {
            Some(id) => {
                tracing_core::span::Current::new(Id::from_u64(*id), seen.spans[id].metadata)
            }
            None => tracing_core::span::Current::none(),
        }
    }

    fn enter(&self, span: &Id) {
        self.seen().entered.push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut seen = self.seen();
        if let Some(at) = seen.entered.iter().rposition(|&id| id == span.into_u64()) {
            seen.entered.remove(at);
        }
    }
}

/// Hands every audit event to both sinks.
#[derive(Debug)]
struct Tee(RecordingEvents, TracingEvents);

impl EventSink for Tee {
    fn record(&self, event: &Event) {
        self.0.record(event);
        self.1.record(event);
    }
}

/// What must never appear in a span or event, gathered as the journeys run.
#[derive(Debug, Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        assert!(secret.len() >= 4, "too short to search for: {secret:?}");
        self.0.push(secret);
    }
}

// --------------------------------------------------------------- journeys

/// Runs every journey under the capturing subscriber; returns what the
/// subscriber saw, the events the recorder saw, and the secrets.
async fn run_journeys() -> (Capture, Vec<Event>, Secrets) {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());

    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let recorder = RecordingEvents::new();
    let service = two_factor("Example", Arc::new(MemoryStore::new()), &gateway, &clock, 5)
        .link_base(BASE)
        .events(Arc::new(Tee(recorder.clone(), TracingEvents::new())))
        .build()
        .unwrap();
    let taro = AccountId::new("taro");
    let mut secrets = Secrets::default();
    for contact in [PHONE, "9012345678", "090-1234-5678", "09012345678", EMAIL] {
        secrets.add(contact);
    }

    // Register the phone with two-step sign-in on.
    let ticket = service
        .phone_send_code(&taro, "090-1234-5678", None, None)
        .await
        .unwrap();
    let code = secret_to(&gateway, PHONE);
    secrets.add(code.clone());
    let done = service
        .phone_confirm(&taro, &ticket.challenge_id, &code, true)
        .await
        .unwrap();
    let recovery_codes: Vec<String> = done
        .recovery_codes
        .unwrap()
        .expose_secret()
        .into_iter()
        .map(str::to_owned)
        .collect();
    for code in &recovery_codes {
        secrets.add(code.clone());
    }

    // Sign in by SMS: a wrong code first, then the right one, trusting
    // the device.
    let SignInStart::Required { methods } = service.sign_in_begin(&taro, None).await.unwrap()
    else {
        panic!("two-step sign-in is on");
    };
    let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
    let ticket = service
        .sign_in_send_code(&taro, &sms.id, None, None)
        .await
        .unwrap();
    let code = secret_to(&gateway, PHONE);
    secrets.add(code.clone());
    let wrong = if code == "000000" { "111111" } else { "000000" };
    service
        .sign_in_complete(
            &taro,
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: wrong,
            },
            None,
            None,
        )
        .await
        .unwrap_err();
    let signed_in = service
        .sign_in_complete(
            &taro,
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &code,
            },
            Some("Firefox on Linux"),
            None,
        )
        .await
        .unwrap();
    // The spent code presented again.
    service
        .sign_in_complete(
            &taro,
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &code,
            },
            None,
            None,
        )
        .await
        .unwrap_err();
    let (token, _) = signed_in.device.as_ref().unwrap();
    secrets.add(token.expose_secret());
    let step_up = serde_json::to_value(&signed_in.step_up).unwrap();
    secrets.add(step_up["tag"]["tag"].to_string());

    // The trusted device skips the second step.
    let start = service
        .sign_in_begin(&taro, Some(token.expose_secret()))
        .await
        .unwrap();
    assert!(matches!(start, SignInStart::NotNeeded(_)), "{start:?}");

    // An email added (a step-up, then its code).
    let email = Destination::email(EMAIL).unwrap();
    let ticket = service
        .contact_send_code(&taro, &email, Some(&signed_in.step_up), None)
        .await
        .unwrap();
    let code = secret_to(&gateway, EMAIL);
    secrets.add(code.clone());
    service
        .contact_confirm(&taro, &ticket.challenge_id, &code)
        .await
        .unwrap();

    // A one-time link, opened and denied on the phone.
    let link = methods.iter().find(|m| m.kind == MethodKind::Link).unwrap();
    service
        .sign_in_send_link(&taro, &link.id, "Chrome on Windows", None, None)
        .await
        .unwrap();
    let url = secret_to(&gateway, PHONE);
    secrets.add(url.clone());
    secrets.add(url.strip_prefix(BASE).unwrap());
    service
        .open_link(url.strip_prefix(BASE).unwrap())
        .await
        .unwrap();
    service
        .deny_link(url.strip_prefix(BASE).unwrap())
        .await
        .unwrap();

    // A recovery code: every trusted device dies.
    let signed_in = service
        .sign_in_complete(
            &taro,
            Proof::RecoveryCode {
                code: &recovery_codes[0],
            },
            None,
            None,
        )
        .await
        .unwrap();
    let step_up = serde_json::to_value(&signed_in.step_up).unwrap();
    secrets.add(step_up["tag"]["tag"].to_string());

    // The authenticator app: enrolled, used, and a code replayed.
    let setup = service
        .authenticator_start(&taro, EMAIL, Some(&signed_in.step_up))
        .await
        .unwrap();
    secrets.add(setup.uri.expose_secret());
    secrets.add(setup.manual_key.expose_secret());
    secrets.add(setup.manual_key.expose_secret().replace(' ', ""));
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    let code = app.code_at(clock.unix_seconds()).to_string();
    secrets.add(code.clone());
    service.authenticator_confirm(&taro, &code).await.unwrap();
    clock.advance(Duration::seconds(30));
    let code = app.code_at(clock.unix_seconds()).to_string();
    secrets.add(code.clone());
    let proof = Proof::Authenticator { code: &code };
    service
        .sign_in_complete(&taro, proof, None, None)
        .await
        .unwrap();
    service
        .sign_in_complete(&taro, proof, None, None)
        .await
        .unwrap_err();

    // "I can't sign in": the account found by its number.
    let ticket = service.recover_start("090-1234-5678", None).await.unwrap();
    let code = secret_to(&gateway, PHONE);
    secrets.add(code.clone());
    service
        .recover_verify(&ticket.challenge_id, &code)
        .await
        .unwrap();

    // Sign-up: email and phone verified together.
    for contact in ["hanako@example.com", "+818011112222", "8011112222"] {
        secrets.add(contact);
    }
    let signup = service
        .signup_start("hanako@example.com", "080-1111-2222", None)
        .await
        .unwrap();
    let code = secret_to(&gateway, "hanako@example.com");
    secrets.add(code.clone());
    service.signup_verify(&signup.id, 0, &code).await.unwrap();

    // A lockout: wrong app codes until the account is locked.
    let right = app.code_at(clock.unix_seconds()).to_string();
    secrets.add(right.clone());
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..10 {
        let _ = service
            .sign_in_complete(&taro, Proof::Authenticator { code: wrong }, None, None)
            .await;
        if recorder
            .events()
            .iter()
            .any(|e| matches!(e, Event::Locked { .. }))
        {
            break;
        }
    }

    drop(_default);
    (capture, recorder.events(), secrets)
}

// --------------------------------------------------------------- checks

#[tokio::test]
async fn every_audit_event_arrives_structured() {
    let (capture, recorded, _) = run_journeys().await;
    let seen = capture.seen();
    let audit: Vec<&EventSeen> = seen
        .events
        .iter()
        .filter(|e| e.target == AUDIT_TARGET)
        .collect();
    let names: Vec<&str> = audit.iter().map(|e| e.fields["event"].as_str()).collect();
    let expected: Vec<&str> = recorded.iter().map(Event::name).collect();
    assert_eq!(
        names, expected,
        "one tracing event per audit event, in order"
    );
    for kind in [
        "issued",
        "delivered",
        "verified",
        "failed",
        "locked",
        "link_opened",
        "link_decided",
        "recovery_codes_generated",
        "recovery_code_used",
        "device_trusted",
        "epoch_bumped",
        "two_factor_enabled",
        "authenticator_added",
    ] {
        assert!(names.contains(&kind), "no {kind} event: {names:?}");
    }

    for (event, seen) in recorded.iter().zip(&audit) {
        assert_eq!(seen.fields["message"], "ninsho audit event");
        // Every field is structured: no Debug blob of the event.
        for value in seen.fields.values() {
            assert!(!value.contains('{'), "{seen:?}");
        }
        match event {
            Event::Issued {
                challenge,
                destination,
                account,
                ..
            } => {
                assert_eq!(seen.fields["challenge"], challenge.to_string());
                assert_eq!(&seen.fields["destination"], destination);
                assert_eq!(
                    seen.fields.get("account"),
                    account.as_ref().map(|a| &a.0),
                    "{seen:?}"
                );
                assert_eq!(seen.level, Level::INFO);
            }
            Event::Locked {
                account,
                consecutive,
                ..
            } => {
                assert_eq!(seen.fields["account"], account.0);
                assert_eq!(seen.fields["consecutive"], consecutive.to_string());
                assert_eq!(seen.level, Level::WARN);
                assert!(seen.spans.contains(&"ninsho.sign_in_complete"), "{seen:?}");
            }
            Event::Failed { reason, .. } => {
                assert_eq!(seen.fields["reason"], reason.code());
                let warn = matches!(reason.code(), "already_used" | "denied");
                let level = if warn { Level::WARN } else { Level::INFO };
                assert_eq!(seen.level, level, "{seen:?}");
            }
            Event::LinkDecided { approved, .. } => {
                assert_eq!(seen.fields["approved"], approved.to_string());
                assert_eq!(seen.level, Level::WARN, "a denied link");
            }
            Event::RecoveryCodeUsed { remaining, .. } => {
                assert_eq!(seen.fields["remaining"], remaining.to_string());
            }
            _ => {}
        }
    }
    // The replayed SMS code is at WARN.
    assert!(
        audit.iter().any(
            |e| e.fields.get("reason").map(String::as_str) == Some("already_used")
                && e.level == Level::WARN
        ),
        "no replay warning"
    );
}

#[tokio::test]
async fn journey_calls_run_in_spans_with_their_account_and_method() {
    let (capture, _, _) = run_journeys().await;
    let seen = capture.seen();
    let spans: Vec<&SpanSeen> = seen.order.iter().map(|id| &seen.spans[id]).collect();
    let named = |name: &'static str| spans.iter().filter(move |s| s.name == name);
    for name in [
        "ninsho.phone_send_code",
        "ninsho.phone_confirm",
        "ninsho.sign_in_begin",
        "ninsho.sign_in_send_code",
        "ninsho.sign_in_complete",
        "ninsho.contact_send_code",
        "ninsho.contact_confirm",
        "ninsho.sign_in_send_link",
        "ninsho.authenticator_start",
        "ninsho.authenticator_confirm",
    ] {
        assert!(named(name).next().is_some(), "no {name} span");
        for span in named(name) {
            assert_eq!(span.fields["account"], "taro", "{span:?}");
        }
    }
    for name in [
        "ninsho.open_link",
        "ninsho.deny_link",
        "ninsho.recover_start",
        "ninsho.recover_verify",
        "ninsho.signup_start",
        "ninsho.signup_verify",
    ] {
        assert!(named(name).next().is_some(), "no {name} span");
    }
    let methods = |name: &'static str| {
        named(name)
            .map(|s| s.fields.get("method").map_or("", String::as_str))
            .collect::<Vec<_>>()
    };
    assert_eq!(methods("ninsho.sign_in_send_code"), ["sms"]);
    assert_eq!(methods("ninsho.sign_in_send_link"), ["link"]);
    let complete = methods("ninsho.sign_in_complete");
    // Wrong SMS code (the channel is known only once a code verifies),
    // right SMS code, its replay, recovery code, app code, its replay,
    // then the lockout.
    assert_eq!(
        &complete[..6],
        [
            "",
            "sms",
            "",
            "recovery_code",
            "authenticator",
            "authenticator"
        ]
    );
    assert!(complete[6..].iter().all(|m| *m == "authenticator"));
    // Audit events carry the journey they happened in.
    let issued = seen
        .events
        .iter()
        .find(|e| e.fields.get("event").map(String::as_str) == Some("issued"))
        .unwrap();
    assert_eq!(issued.spans, ["ninsho.phone_send_code"]);
}

#[tokio::test]
async fn no_secret_reaches_a_span_or_an_event() {
    let (capture, _, secrets) = run_journeys().await;
    let seen = capture.seen();
    let texts = seen
        .spans
        .values()
        .flat_map(|s| std::iter::once(s.name.to_owned()).chain(s.fields.iter().map(pair)))
        .chain(seen.events.iter().flat_map(|e| e.fields.iter().map(pair)));
    let mut checked = 0;
    for text in texts {
        for secret in &secrets.0 {
            assert!(!text.contains(secret.as_str()), "{text:?} leaks {secret:?}");
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} fields captured");
    // The masked destination is what stands in for the phone.
    assert!(
        seen.events
            .iter()
            .any(|e| e.fields.get("destination").map(String::as_str) == Some("+81 **-****-**78"))
    );
}

fn pair((name, value): (&String, &String)) -> String {
    format!("{name}={value}")
}
