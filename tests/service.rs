//! `TwoFactor` itself: what `build()` refuses, step-up proofs that can't be
//! forged, moved to another account or kept past their window, and the
//! second step under a race (one authenticator code, one SMS code, one
//! recovery code: each signs in exactly once among 64 tasks).

mod support;

use ninsho::{AccountRefusal, CodeRefusal, SendRefusal};
use std::sync::Arc;

use ninsho::events::{Event, RecordingEvents};
use ninsho::gateway::RecordingGateway;
use ninsho::limits::{FailurePolicy, RateLimit, SendLimits};
use ninsho::model::AccountId;
use ninsho::otp::Totp;
use ninsho::service::{
    MethodId, MethodKind, Proof, SignInStart, StepUp, TwoFactor, TwoFactorBuilder,
};
use ninsho::store::{MemoryStore, Store};
use ninsho::{Clock, Error, LockedRng, ManualClock, Refusal};
use support::{T0, TASKS, Yielding, hasher, race, refusal, sealer};
use time::Duration;

const PHONE: &str = "+819012345678";

fn builder(
    store: Arc<dyn Store>,
    gateway: &RecordingGateway,
    clock: &ManualClock,
) -> TwoFactorBuilder {
    let lots = RateLimit::new(1_000_000, Duration::minutes(10));
    TwoFactor::builder(
        "Example",
        store,
        Arc::new(gateway.clone()),
        hasher(),
        sealer(),
    )
    .clock(Arc::new(clock.clone()))
    .rng(Arc::new(LockedRng::seeded(3)))
    .limits(SendLimits {
        per_destination: lots,
        per_account: lots,
        per_caller: lots,
        countries: Vec::new(),
        other_countries: None,
    })
}

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
}

fn env_on(store: Arc<dyn Store>) -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    Env {
        service: builder(store, &gateway, &clock).build().unwrap(),
        gateway,
        clock,
    }
}

fn env() -> Env {
    env_on(Arc::new(MemoryStore::new()))
}

fn taro() -> AccountId {
    AccountId::new("taro")
}

impl Env {
    fn sms(&self) -> String {
        self.gateway
            .last_secret_to(PHONE)
            .unwrap()
            .expose_secret()
            .to_owned()
    }

    /// A phone registered and two-step sign-in on; returns the recovery codes.
    async fn enrol(&self) -> Vec<String> {
        let ticket = self
            .service
            .phone_send_code(&taro(), "090-1234-5678", None, None)
            .await
            .unwrap();
        let done = self
            .service
            .phone_confirm(&taro(), &ticket.challenge_id, &self.sms(), true)
            .await
            .unwrap();
        done.recovery_codes
            .unwrap()
            .expose_secret()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    async fn step_up(&self) -> StepUp {
        let methods = self.service.methods(&taro()).await.unwrap();
        let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
        let ticket = self
            .service
            .sign_in_send_code(&taro(), sms, None, None)
            .await
            .unwrap();
        let code = self.sms();
        self.service
            .sign_in_complete(
                &taro(),
                Proof::Code {
                    challenge: &ticket.challenge_id,
                    code: &code,
                },
                None,
                None,
            )
            .await
            .unwrap()
            .step_up
    }
}

#[test]
fn the_service_is_clone_send_sync() {
    fn assert<T: Clone + Send + Sync + 'static>() {}
    assert::<TwoFactor>();
}

/// The required parts are arguments of `TwoFactor::builder` (leaving one
/// out does not compile: see its doc test); what remains to refuse at
/// `build` are bad values, each with its own `Misuse`.
#[test]
fn build_refuses_bad_values_by_name() {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut no_attempts = ninsho::challenge::CodePolicy::default();
    no_attempts.max_attempts = 0;
    let cases: Vec<(ninsho::Misuse, TwoFactorBuilder)> = vec![
        (
            ninsho::Misuse::StepUpWindow,
            builder(store.clone(), &gateway, &clock).step_up_window(Duration::ZERO),
        ),
        (
            ninsho::Misuse::CodePolicy,
            builder(store.clone(), &gateway, &clock).code_policy(no_attempts),
        ),
        (
            ninsho::Misuse::PhoneChannels,
            builder(store.clone(), &gateway, &clock).phone_channels(vec![]),
        ),
    ];
    for (expected, b) in cases {
        match b.build() {
            Err(Error::Misuse(misuse)) => assert_eq!(misuse, expected),
            other => panic!("{expected:?}: expected a misuse error, got {other:?}"),
        }
    }
    assert!(builder(store, &gateway, &clock).build().is_ok());
}

#[tokio::test]
async fn step_up_proofs_are_bound_fresh_and_unforgeable() {
    let env = env();
    env.enrol().await;
    let proof = env.step_up().await;
    assert!(env.service.check_step_up(&taro(), &proof).await.is_ok());
    assert_eq!(proof.method(), MethodKind::Sms);
    assert_eq!(proof.at(), env.clock.now());

    // Another account can't use it.
    assert_eq!(
        refusal(
            env.service
                .check_step_up(&AccountId::new("jiro"), &proof)
                .await
        ),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    // Edited in the session store: moved to another account, or made newer.
    let mut json: serde_json::Value = serde_json::to_value(&proof).unwrap();
    json["account"] = serde_json::json!("jiro");
    let moved: StepUp = serde_json::from_value(json).unwrap();
    assert_eq!(
        refusal(
            env.service
                .check_step_up(&AccountId::new("jiro"), &moved)
                .await
        ),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    let mut json: serde_json::Value = serde_json::to_value(&proof).unwrap();
    let later = env.clock.now() + Duration::minutes(9);
    json["at"] = serde_json::to_value(later).unwrap();
    let newer: StepUp = serde_json::from_value(json).unwrap();
    env.clock
        .advance(Duration::minutes(10) + Duration::seconds(1));
    assert_eq!(
        refusal(env.service.check_step_up(&taro(), &newer).await),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    // The genuine one: fresh for exactly 10 minutes.
    assert_eq!(
        refusal(env.service.check_step_up(&taro(), &proof).await),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    env.clock.rewind(Duration::seconds(1));
    assert!(env.service.check_step_up(&taro(), &proof).await.is_ok());
    // Sensitive actions ask for it.
    env.clock.advance(Duration::seconds(1));
    assert_eq!(
        refusal(env.service.disable_two_factor(&taro(), &proof).await),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    assert_eq!(
        refusal(env.service.regenerate_recovery_codes(&taro(), &proof).await),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    assert_eq!(
        refusal(
            env.service
                .authenticator_start(&taro(), "taro@example.com", None)
                .await
        ),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
}

/// 64 tasks hold the same authenticator code: one signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_authenticator_code_signs_in_once() {
    // No back-off in the way: every racing guess reaches the check, so only
    // the compare-and-set on the replay marker keeps the code single-use.
    let memory = Arc::new(MemoryStore::new());
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let env = Arc::new(Env {
        service: builder(Arc::new(Yielding(memory)), &gateway, &clock)
            .failure_policy(FailurePolicy {
                free_failures: 10_000,
                hard_stop: 10_000,
                ..FailurePolicy::default()
            })
            .build()
            .unwrap(),
        gateway,
        clock,
    });
    env.enrol().await;
    let step_up = env.step_up().await;
    let setup = env
        .service
        .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    let unix = env.clock.unix_seconds();
    env.service
        .authenticator_confirm(&taro(), &app.code_at(unix).to_string())
        .await
        .unwrap();
    env.clock.advance(Duration::seconds(30));
    let code = Arc::new(app.code_at(env.clock.unix_seconds()).to_string());
    let outcomes = race(|_| {
        let env = env.clone();
        let code = code.clone();
        async move {
            env.service
                .sign_in_complete(&taro(), Proof::Authenticator { code: &code }, None, None)
                .await
        }
    })
    .await;
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    for o in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(
            o.refusal(),
            Some(Refusal::Code(CodeRefusal::AlreadyUsed)),
            "{o:?}"
        );
    }
}

/// A wrong and a replayed authenticator code are refusals an activity page
/// must show, as recovery codes' are: each leaves an `Event::Failed`.
#[tokio::test]
async fn refused_authenticator_codes_reach_the_audit_trail() {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let events = RecordingEvents::new();
    let env = Env {
        service: builder(Arc::new(MemoryStore::new()), &gateway, &clock)
            .events(Arc::new(events.clone()))
            .build()
            .unwrap(),
        gateway,
        clock,
    };
    env.enrol().await;
    let step_up = env.step_up().await;
    let setup = env
        .service
        .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    env.service
        .authenticator_confirm(&taro(), &app.code_at(env.clock.unix_seconds()).to_string())
        .await
        .unwrap();
    env.clock.advance(Duration::seconds(30));
    let code = app.code_at(env.clock.unix_seconds()).to_string();
    let sign_in = |code: String| {
        let service = env.service.clone();
        async move {
            service
                .sign_in_complete(&taro(), Proof::Authenticator { code: &code }, None, None)
                .await
        }
    };
    sign_in(code.clone()).await.unwrap();
    let failed = |reason: CodeRefusal| Event::Failed {
        challenge: None,
        account: Some(taro()),
        reason: Refusal::Code(reason),
    };
    assert_eq!(
        refusal(sign_in(code.clone()).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
    assert_eq!(
        events.events().last(),
        Some(&failed(CodeRefusal::AlreadyUsed)),
        "a replayed authenticator code left no audit event"
    );
    let last = code.chars().last().unwrap().to_digit(10).unwrap();
    let wrong = format!("{}{}", &code[..code.len() - 1], (last + 1) % 10);
    let refused = refusal(sign_in(wrong).await);
    assert!(matches!(
        refused,
        Refusal::Code(CodeRefusal::WrongCode { .. })
    ));
    let Refusal::Code(reason) = refused else {
        unreachable!()
    };
    assert_eq!(
        events.events().last(),
        Some(&failed(reason)),
        "a wrong authenticator code left no audit event"
    );
}

/// 64 tasks hold the same SMS code, or the same recovery code: each signs
/// in once, and the recovery code revokes the devices once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_sms_code_and_one_recovery_code_sign_in_once() {
    let memory = Arc::new(MemoryStore::new());
    let env = Arc::new(env_on(Arc::new(Yielding(memory))));
    let codes = env.enrol().await;
    let SignInStart::Required { methods } = env.service.sign_in_begin(&taro(), None).await.unwrap()
    else {
        panic!("two-step sign-in is on");
    };
    let ticket = env
        .service
        .sign_in_send_code(&taro(), &methods[0], None, None)
        .await
        .unwrap();
    let sms = Arc::new((ticket.challenge_id, env.sms()));
    let outcomes = race(|_| {
        let env = env.clone();
        let sms = sms.clone();
        async move {
            env.service
                .sign_in_complete(
                    &taro(),
                    Proof::Code {
                        challenge: &sms.0,
                        code: &sms.1,
                    },
                    None,
                    None,
                )
                .await
        }
    })
    .await;
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    // Every copy was counted as a guess before it was checked; the copies
    // counted after the winner ended the run may have started a back-off.
    env.clock.advance(Duration::minutes(1));

    let code = Arc::new(codes[0].clone());
    let outcomes = race(|_| {
        let env = env.clone();
        let code = code.clone();
        async move {
            env.service
                .sign_in_complete(&taro(), Proof::RecoveryCode { code: &code }, None, None)
                .await
        }
    })
    .await;
    let wins: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(wins.len(), 1);
    assert_eq!(wins[0].recovery_codes_left, Some(9));
    assert_eq!(
        env.service.recovery_codes_left(&taro()).await.unwrap(),
        Some(9)
    );
    assert_eq!(outcomes.len(), TASKS);
}

#[tokio::test]
async fn methods_follow_the_policy() {
    // With email as a second factor (off by default).
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let env = Env {
        service: builder(Arc::new(MemoryStore::new()), &gateway, &clock)
            .email_as_second_factor(true)
            .build()
            .unwrap(),
        gateway,
        clock,
    };
    env.enrol().await;
    let email = ninsho::model::Destination::email("taro@example.com").unwrap();
    // A new contact is a new second factor: it needs a fresh step-up.
    assert_eq!(
        refusal(
            env.service
                .contact_send_code(&taro(), &email, None, None)
                .await
        ),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    let step_up = env.step_up().await;
    let ticket = env
        .service
        .contact_send_code(&taro(), &email, Some(&step_up), None)
        .await
        .unwrap();
    let code = env
        .gateway
        .last_secret_to("taro@example.com")
        .unwrap()
        .expose_secret()
        .to_owned();
    env.service
        .contact_confirm(&taro(), &ticket.challenge_id, &code)
        .await
        .unwrap();
    let kinds = |methods: Vec<ninsho::service::Method>| -> Vec<MethodKind> {
        methods.into_iter().map(|m| m.kind).collect()
    };
    assert_eq!(
        kinds(env.service.methods(&taro()).await.unwrap()),
        vec![
            MethodKind::Sms,
            MethodKind::Voice,
            MethodKind::Email,
            MethodKind::RecoveryCode
        ]
    );

    // Without email as a second factor, email is neither offered nor sent to.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let strict = Env {
        service: builder(store, &env.gateway, &env.clock)
            .email_as_second_factor(false)
            .build()
            .unwrap(),
        gateway: env.gateway.clone(),
        clock: env.clock.clone(),
    };
    strict.enrol().await;
    let strict_step_up = strict.step_up().await;
    let email_method = env
        .service
        .methods(&taro())
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.kind == MethodKind::Email)
        .unwrap();
    let ticket = strict
        .service
        .contact_send_code(&taro(), &email, Some(&strict_step_up), None)
        .await
        .unwrap();
    let code = strict
        .gateway
        .last_secret_to("taro@example.com")
        .unwrap()
        .expose_secret()
        .to_owned();
    strict
        .service
        .contact_confirm(&taro(), &ticket.challenge_id, &code)
        .await
        .unwrap();
    assert!(!kinds(strict.service.methods(&taro()).await.unwrap()).contains(&MethodKind::Email));
    assert_eq!(
        refusal(
            strict
                .service
                .sign_in_send_code(&taro(), &email_method, None, None)
                .await
        ),
        // Not one of this service's methods for the account.
        Refusal::Account(AccountRefusal::NoSuchMethod)
    );
}

#[tokio::test]
async fn resend_and_another_option_stay_with_the_account() {
    let env = env();
    env.enrol().await;
    let methods = env.service.methods(&taro()).await.unwrap();
    let ticket = env
        .service
        .sign_in_send_code(&taro(), &methods[0], None, None)
        .await
        .unwrap();
    let jiro = AccountId::new("jiro");
    let id = &ticket.challenge_id;
    assert_eq!(
        refusal(env.service.resend(&jiro, id, None).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(
        refusal(env.service.another_option(&jiro, id, None).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert!(matches!(
        refusal(env.service.resend(&taro(), id, None).await),
        Refusal::Send(SendRefusal::Cooldown { .. })
    ));
    let call = env.service.another_option(&taro(), id, None).await.unwrap();
    assert_eq!(call.channel, ninsho::model::Channel::Voice);
    env.clock.advance(Duration::minutes(1));
    let again = env.service.resend(&taro(), id, None).await.unwrap();
    assert_eq!(again.channel, ninsho::model::Channel::Voice);
    let code = env.sms();
    let done = env
        .service
        .sign_in_complete(
            &taro(),
            Proof::Code {
                challenge: id,
                code: &code,
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(done.method, MethodKind::Voice);
}

/// The authenticator app lists the entry under the label the host passes
/// (what the user knows the account by), never the internal account id;
/// a label the key URI can't carry is refused, with nothing stored.
#[tokio::test]
async fn the_authenticator_entry_carries_the_users_label_not_the_account_id() {
    let env = env();
    let internal = AccountId::new("user-8f3a");
    let setup = env
        .service
        .authenticator_start(&internal, "hanako@example.com", None)
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    assert_eq!(app.account(), "hanako@example.com");
    assert_eq!(app.issuer(), Some("Example"));
    assert!(!setup.uri.expose_secret().contains("user-8f3a"));

    for bad in ["", "a:b"] {
        let r = env
            .service
            .authenticator_start(&AccountId::new("jiro"), bad, None)
            .await;
        assert!(matches!(r, Err(Error::Otp(_))), "{bad:?}: {r:?}");
    }
    // Nothing pending for jiro: confirming finds no setup.
    assert_eq!(
        refusal(
            env.service
                .authenticator_confirm(&AccountId::new("jiro"), "123456")
                .await
        ),
        Refusal::Account(AccountRefusal::NotFound)
    );
}

/// A method is picked by its `MethodId`: it survives a round trip through
/// a form (serde), stays the same when the list changes order, is refused
/// for another account, and gives nothing of the number away.
#[tokio::test]
async fn methods_are_picked_by_an_id_bound_to_the_account() {
    let env = env();
    env.enrol().await;
    let methods = env.service.methods(&taro()).await.unwrap();
    let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();

    // Through a form field and back.
    let json = serde_json::to_string(&sms.id).unwrap();
    let back: MethodId = serde_json::from_str(&json).unwrap();
    assert_eq!(back, sms.id);
    let from_form = MethodId::new(sms.id.as_str());
    let ticket = env
        .service
        .sign_in_send_code(&taro(), &from_form, None, None)
        .await
        .unwrap();
    assert_eq!(ticket.channel, ninsho::model::Channel::Sms);

    // Nothing of the number in the id, nor in the serialised method but its
    // masked form.
    for digits in ["9012345678", "12345678", "5678", "+81"] {
        assert!(!sms.id.as_str().contains(digits), "{}", sms.id);
    }
    let shown = serde_json::to_string(sms).unwrap();
    assert!(shown.contains(sms.id.as_str()), "{shown}");
    assert!(!shown.contains("9012345678"), "{shown}");

    // The list changes (an authenticator app now comes first); the id of
    // the SMS method does not.
    let step_up = env.step_up().await;
    let setup = env
        .service
        .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    env.service
        .authenticator_confirm(&taro(), &app.code_at(env.clock.unix_seconds()).to_string())
        .await
        .unwrap();
    let after = env.service.methods(&taro()).await.unwrap();
    assert_eq!(after[0].kind, MethodKind::Authenticator);
    let sms_after = after.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
    assert_eq!(sms_after.id, sms.id);
    // Every id of the list is distinct.
    let mut ids: Vec<&str> = after.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), after.len());

    // Another account with the same kind of method: taro's id is refused
    // there, and nothing is sent.
    let jiro = AccountId::new("jiro");
    let ticket = env
        .service
        .phone_send_code(&jiro, "080-1111-2222", None, None)
        .await
        .unwrap();
    let code = env.gateway.last_secret_to("+818011112222").unwrap();
    env.service
        .phone_confirm(&jiro, &ticket.challenge_id, code.expose_secret(), true)
        .await
        .unwrap();
    let sent = env.gateway.messages().len();
    assert_eq!(
        refusal(
            env.service
                .sign_in_send_code(&jiro, &sms.id, None, None)
                .await
        ),
        Refusal::Account(AccountRefusal::NoSuchMethod)
    );
    // A made-up id too.
    assert_eq!(
        refusal(
            env.service
                .sign_in_send_code(
                    &taro(),
                    &MethodId::new("sms-000000000000000000000000"),
                    None,
                    None
                )
                .await
        ),
        Refusal::Account(AccountRefusal::NoSuchMethod)
    );
    assert_eq!(env.gateway.messages().len(), sent);
}

/// `normalize_contact` reads a contact exactly as the journeys do: every
/// way of typing a number registers the contact it names, and what it
/// refuses the journeys refuse with the same reason.
#[tokio::test]
async fn normalize_contact_agrees_with_the_journeys() {
    let env = env();
    for (i, typed) in [
        "090-1234-5678",
        "０９０ー１２３４ー５６７８",
        "+81 (0)90 1234 5678",
        "+819012345678",
    ]
    .into_iter()
    .enumerate()
    {
        let account = AccountId::new(format!("user-{i}"));
        let normal = env.service.normalize_contact(typed).unwrap();
        env.service
            .phone_send_code(&account, typed, None, None)
            .await
            .unwrap();
        // The code went to the number normalize_contact read.
        let sent_to = env.gateway.messages().last().map(|m| m.to.clone());
        assert_eq!(sent_to.as_deref(), Some(normal.address()), "{typed}");
    }
    for refused in ["03-1234-5678", "050-1234-5678", "not a number", "taro@"] {
        let reason = env
            .service
            .normalize_contact(refused)
            .unwrap_err()
            .contact_error()
            .unwrap();
        let journey = env
            .service
            .recover_start(refused, None)
            .await
            .unwrap_err()
            .contact_error()
            .unwrap();
        assert_eq!(reason, journey, "{refused}");
    }
}
