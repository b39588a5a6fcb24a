//! Every guess is counted before it is checked, for every kind of secret:
//! sent codes, one-time links, the masked-contact confirmation, recovery
//! codes and authenticator codes.
//!
//! Racing guesses for one account go through `TwoFactor` at once. With 99
//! failures on record at most one of them is compared with the secret (the
//! rest are refused as `Locked` before any comparison) and the run ends at
//! exactly 100, the hard stop; with none on record, no more are compared
//! than the back-off lets through (3 by default) and the run ends at 3. The
//! right secret still works afterwards and, where it proves a factor, ends
//! the run.

mod support;

use ninsho::{AccountRefusal, CodeRefusal, SendRefusal};
use std::sync::Arc;

use ninsho::gateway::RecordingGateway;
use ninsho::limits::FailurePolicy;
use ninsho::model::{AccountId, FailureRecord};
use ninsho::otp::Totp;
use ninsho::service::{Method, MethodKind, Proof, SignInStart, TwoFactor};
use ninsho::store::{LimitStore, MemoryStore};
use ninsho::{Clock, Error, ManualClock, Refusal};
use support::{
    BASE, PHONE, T0, Yielding, enrol, no_send_limits, race, refusal, secret_to, two_factor,
};
use time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Code,
    Link,
    Confirmation,
    Recovery,
    Authenticator,
}

const KINDS: [Kind; 5] = [
    Kind::Code,
    Kind::Link,
    Kind::Confirmation,
    Kind::Recovery,
    Kind::Authenticator,
];

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
    store: Arc<MemoryStore>,
    recovery: Vec<String>,
    app: Totp,
}

fn taro() -> AccountId {
    AccountId::new("taro")
}

async fn env() -> Env {
    let store = Arc::new(MemoryStore::new());
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = two_factor(
        "Example",
        Arc::new(Yielding(store.clone())),
        &gateway,
        &clock,
        11,
    )
    .limits(no_send_limits())
    .link_base(BASE)
    .confirm_masked_contacts(true)
    .build()
    .unwrap();
    let recovery = enrol(&service, &gateway, &taro()).await;
    let mut env = Env {
        service,
        gateway,
        clock,
        store,
        recovery,
        app: Totp::from_uri("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
    };
    let ticket = env.send(Kind::Code).await;
    let step_up = env
        .service
        .sign_in_complete(
            &taro(),
            Proof::Code {
                challenge: &ticket,
                code: &secret_to(&env.gateway, PHONE),
            },
            None,
            None,
        )
        .await
        .unwrap()
        .step_up;
    let setup = env
        .service
        .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
        .await
        .unwrap();
    env.app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    env.service
        .authenticator_confirm(&taro(), &env.app_code(0))
        .await
        .unwrap();
    // Later steps than the one the confirmation used.
    env.clock.advance(Duration::minutes(2));
    env
}

impl Env {
    fn method(&self, methods: &[Method], kind: MethodKind) -> Method {
        methods.iter().find(|m| m.kind == kind).unwrap().clone()
    }

    async fn methods(&self) -> Vec<Method> {
        match self.service.sign_in_begin(&taro(), None).await.unwrap() {
            SignInStart::Required { methods } => methods,
            other => panic!("two-step sign-in is on: {other:?}"),
        }
    }

    /// Sends a sign-in code (or link) to the phone; returns its challenge.
    async fn send(&self, kind: Kind) -> ninsho::model::ChallengeId {
        let methods = self.methods().await;
        if kind == Kind::Link {
            let link = self.method(&methods, MethodKind::Link);
            return self
                .service
                .sign_in_send_link(&taro(), &link, "Firefox on Linux", Some("5678"), None)
                .await
                .unwrap()
                .challenge_id;
        }
        let sms = self.method(&methods, MethodKind::Sms);
        self.service
            .sign_in_send_code(&taro(), &sms, Some("5678"), None)
            .await
            .unwrap()
            .challenge_id
    }

    /// The authenticator's code `steps` steps from now.
    fn app_code(&self, steps: i64) -> String {
        let at = ninsho::clock::unix_seconds(self.clock.now()).saturating_add_signed(steps * 30);
        self.app.code_at(at).to_string()
    }

    /// A six-digit code the app shows in no step near now.
    fn wrong_app_code(&self, i: usize) -> String {
        let near: Vec<String> = (-2..=2).map(|s| self.app_code(s)).collect();
        (0..)
            .map(|n: u32| format!("{:06}", (n * 7919 + u32::try_from(i).unwrap()) % 1_000_000))
            .find(|c| !near.contains(c))
            .unwrap()
    }

    async fn put_failures(&self, consecutive: u32) {
        self.store.clear_failures(&taro()).await.unwrap();
        if consecutive > 0 {
            let run = FailureRecord {
                consecutive,
                last_failure_at: self.clock.now() - Duration::hours(1),
            };
            self.store
                .replace_failures(&taro(), None, Some(run))
                .await
                .unwrap();
        }
    }

    async fn run(&self) -> u32 {
        self.store
            .failures(&taro())
            .await
            .unwrap()
            .map_or(0, |r| r.consecutive)
    }
}

/// What a wrong guess of `kind` numbered `i` answers.
async fn wrong_guess(
    service: TwoFactor,
    kind: Kind,
    challenge: Option<ninsho::model::ChallengeId>,
    link_token: Option<String>,
    wrong_app: String,
    i: usize,
) -> Result<(), Error> {
    let guess = format!("{:06}", 100_000 + i);
    match kind {
        Kind::Code => {
            let challenge = challenge.unwrap();
            service
                .sign_in_complete(
                    &taro(),
                    Proof::Code {
                        challenge: &challenge,
                        code: &guess,
                    },
                    None,
                    None,
                )
                .await
                .map(drop)
        }
        Kind::Link => service.approve_link(&link_token.unwrap()).await,
        Kind::Confirmation => {
            let methods = service.methods(&taro()).await.unwrap();
            let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
            service
                .sign_in_send_code(&taro(), sms, Some(&guess[2..]), None)
                .await
                .map(drop)
        }
        Kind::Recovery => service
            .sign_in_complete(
                &taro(),
                Proof::RecoveryCode {
                    code: "zzzz-zzzz-zzzz",
                },
                None,
                None,
            )
            .await
            .map(drop),
        Kind::Authenticator => service
            .sign_in_complete(
                &taro(),
                Proof::Authenticator { code: &wrong_app },
                None,
                None,
            )
            .await
            .map(drop),
    }
}

/// A link token for the same challenge with another (well-formed) secret.
fn forged(token: &str) -> String {
    let (id, secret) = token.split_once('.').unwrap();
    let mut chars: Vec<char> = secret.chars().collect();
    chars[3] = if chars[3] == 'a' { 'b' } else { 'a' };
    format!("{id}.{}", chars.into_iter().collect::<String>())
}

/// Races wrong guesses of `kind` with `on_record` failures on record;
/// returns how many were compared and the run afterwards.
async fn race_wrong(env: &Env, kind: Kind, on_record: u32) -> (u32, u32) {
    env.put_failures(0).await;
    let challenge = match kind {
        Kind::Code | Kind::Link => Some(env.send(kind).await),
        _ => None,
    };
    let link_token = (kind == Kind::Link).then(|| {
        let url = secret_to(&env.gateway, PHONE);
        forged(url.strip_prefix(BASE).unwrap())
    });
    env.put_failures(on_record).await;
    let outcomes = race(|i| {
        wrong_guess(
            env.service.clone(),
            kind,
            challenge,
            link_token.clone(),
            env.wrong_app_code(i),
            i,
        )
    })
    .await;
    let mut compared = 0;
    for outcome in outcomes {
        match outcome {
            Err(Error::Refused(Refusal::Account(AccountRefusal::Locked { .. }))) => {}
            Err(Error::Refused(
                Refusal::Code(CodeRefusal::WrongCode { .. })
                | Refusal::Code(CodeRefusal::TooManyAttempts)
                | Refusal::Code(CodeRefusal::WrongRecoveryCode)
                | Refusal::Send(SendRefusal::ContactNotConfirmed)
                | Refusal::Code(CodeRefusal::Unknown),
            )) => compared += 1,
            other => panic!("{kind:?}: a wrong guess answered {other:?}"),
        }
    }
    (compared, env.run().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_hard_stop_racing_guesses_are_checked_at_most_once() {
    let env = env().await;
    let hard_stop = FailurePolicy::default().hard_stop;
    for kind in KINDS {
        let (compared, run) = race_wrong(&env, kind, hard_stop - 1).await;
        assert!(
            compared <= 1,
            "{kind:?}: with {} failures on record, {compared} racing wrong guesses were \
             compared",
            hard_stop - 1
        );
        assert_eq!(
            run, hard_stop,
            "{kind:?}: the run must end at the hard stop"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_guesses_get_no_more_checks_than_the_back_off_allows() {
    let env = env().await;
    let free = FailurePolicy::default().free_failures;
    for kind in KINDS {
        let (compared, run) = race_wrong(&env, kind, 0).await;
        assert!(
            compared <= free,
            "{kind:?}: {compared} racing wrong guesses were compared at one instant; the \
             back-off allows {free}"
        );
        assert_eq!(run, free, "{kind:?}: the run must end at {free}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_right_secret_still_works_and_ends_the_run() {
    let env = env().await;
    let before = FailureRecord {
        consecutive: 2,
        last_failure_at: env.clock.now(),
    };

    // A sent code: signs in once, the run ends.
    let challenge = env.send(Kind::Code).await;
    let code = secret_to(&env.gateway, PHONE);
    env.put_failures(2).await;
    let complete = |code: String| {
        let service = env.service.clone();
        async move {
            service
                .sign_in_complete(
                    &taro(),
                    Proof::Code {
                        challenge: &challenge,
                        code: &code,
                    },
                    None,
                    None,
                )
                .await
        }
    };
    complete(code.clone()).await.unwrap();
    assert_eq!(env.run().await, 0, "the right code ends the run");
    assert_eq!(
        refusal(complete(code).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );

    // The masked confirmation proves nothing by itself: a right answer
    // takes its count back and leaves the run as it was.
    env.store.clear_failures(&taro()).await.unwrap();
    env.store
        .replace_failures(&taro(), None, Some(before))
        .await
        .unwrap();
    env.send(Kind::Code).await;
    assert_eq!(env.run().await, 2, "a right confirmation is not a success");

    // A recovery code and an authenticator code end the run.
    env.put_failures(2).await;
    env.service
        .sign_in_complete(
            &taro(),
            Proof::RecoveryCode {
                code: &env.recovery[0],
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(env.run().await, 0, "a right recovery code ends the run");
    env.put_failures(2).await;
    env.service
        .sign_in_complete(
            &taro(),
            Proof::Authenticator {
                code: &env.app_code(0),
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        env.run().await,
        0,
        "a right authenticator code ends the run"
    );

    // A link: approving it proves nothing yet; collecting the approval
    // signs in and ends the run.
    let challenge = env.send(Kind::Link).await;
    let url = secret_to(&env.gateway, PHONE);
    env.put_failures(2).await;
    env.service
        .approve_link(url.strip_prefix(BASE).unwrap())
        .await
        .unwrap();
    assert_eq!(env.run().await, 2, "approving alone is not the sign-in");
    let signed_in = env
        .service
        .sign_in_poll_link(&taro(), &challenge, None, None)
        .await
        .unwrap();
    assert!(signed_in.is_some());
    assert_eq!(env.run().await, 0, "collecting the approval ends the run");
}
