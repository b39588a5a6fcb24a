//! The service's hardening, from a security review: each test is a way a
//! hijacked session or an outage could have weakened an account (a second
//! factor added without a step-up, the last factor removed, a link or code
//! in flight to a changed number, the masked-contact check skipped for
//! links, an outage counted as a wrong code, a code spent on the wrong
//! journey), and asserts it can't.

mod support;

use ninsho::{AccountRefusal, CodeRefusal, SendRefusal};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ninsho::gateway::RecordingGateway;
use ninsho::limits::{FailurePolicy, RateLimit, SendLimits};
use ninsho::model::{AccountId, Destination};
use ninsho::otp::Totp;
use ninsho::seal::AeadSealer;
use ninsho::service::{
    MethodKind, Proof, SealError, Sealer, SignInStart, StepUp, TwoFactor, TwoFactorBuilder,
};
use ninsho::store::MemoryStore;
use ninsho::{Clock, Error, ManualClock, Refusal, SecretBytes};
use support::{BASE, PHONE, T0, refusal, secret_to, two_factor};
use time::Duration;

/// A second Japanese mobile number (the user's new phone).
const PHONE2: &str = "+819087654321";
/// The attacker's Japanese mobile number.
const ATTACKER: &str = "+818011112222";
const EMAIL: &str = "taro@example.com";

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
}

fn taro() -> AccountId {
    AccountId::new("taro")
}

/// Send limits out of the way: these tests are not about them.
fn lots() -> SendLimits {
    let lots = RateLimit::new(1_000_000, Duration::minutes(10));
    SendLimits {
        per_destination: lots,
        per_account: lots,
        per_caller: lots,
        countries: Vec::new(),
        other_countries: None,
    }
}

fn env_with(configure: impl FnOnce(TwoFactorBuilder) -> TwoFactorBuilder) -> Env {
    env_sealed(support::sealer(), configure)
}

/// [`env_with`] with a sealer of the test's own.
fn env_sealed(
    sealer: Arc<dyn ninsho::seal::Sealer>,
    configure: impl FnOnce(TwoFactorBuilder) -> TwoFactorBuilder,
) -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let store = Arc::new(MemoryStore::new());
    let builder = support::two_factor_with(
        "Example",
        store,
        &gateway,
        &clock,
        11,
        support::hasher(),
        sealer,
    )
    .limits(lots());
    Env {
        service: configure(builder).build().unwrap(),
        gateway,
        clock,
    }
}

fn env() -> Env {
    env_with(|b| b)
}

impl Env {
    /// Registers `typed` as taro's phone (E.164 `e164`), optionally turning
    /// two-step sign-in on in the same step.
    async fn register_phone(&self, typed: &str, e164: &str, enable: bool) {
        let ticket = self
            .service
            .phone_send_code(&taro(), typed, None, None)
            .await
            .unwrap();
        self.service
            .phone_confirm(
                &taro(),
                &ticket.challenge_id,
                &secret_to(&self.gateway, e164),
                enable,
            )
            .await
            .unwrap();
    }

    /// A step-up by an SMS code to `e164`.
    async fn sms_step_up(&self, e164: &str) -> StepUp {
        let methods = self.service.methods(&taro()).await.unwrap();
        let sms = methods
            .iter()
            .find(|m| m.kind == MethodKind::Sms)
            .expect("an SMS method");
        let ticket = self
            .service
            .sign_in_send_code(&taro(), sms, None, None)
            .await
            .unwrap();
        let code = secret_to(&self.gateway, e164);
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

    /// Sets up and confirms an authenticator app while two-step sign-in is
    /// off (no step-up needed then).
    async fn authenticator(&self) -> Totp {
        let setup = self
            .service
            .authenticator_start(&taro(), "taro@example.com", None)
            .await
            .unwrap();
        let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
        let code = app.code_at(self.clock.unix_seconds()).to_string();
        self.service
            .authenticator_confirm(&taro(), &code)
            .await
            .unwrap();
        app
    }

    /// A step-up by the authenticator app (at the next 30-second step).
    async fn app_step_up(&self, app: &Totp) -> StepUp {
        self.clock.advance(Duration::seconds(30));
        let code = app.code_at(self.clock.unix_seconds()).to_string();
        self.service
            .sign_in_complete(&taro(), Proof::Authenticator { code: &code }, None, None)
            .await
            .unwrap()
            .step_up
    }

    /// The second-step methods other than recovery codes.
    async fn real_factors(&self) -> Vec<MethodKind> {
        self.service
            .methods(&taro())
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.kind)
            .filter(|k| *k != MethodKind::RecoveryCode)
            .collect()
    }
}

/// Two-step sign-in is on with the authenticator app as the only factor.
/// A hijacked session without a step-up can't register its own phone
/// (which would then be offered as an SMS second factor).
#[tokio::test]
async fn hijacked_session_cannot_add_its_phone_as_a_second_factor() {
    let env = env();
    env.authenticator().await;
    env.service.enable_two_factor(&taro()).await.unwrap();

    // The same thing through contact_send_code is refused…
    let attacker = Destination::phone(ATTACKER).unwrap();
    assert_eq!(
        refusal(
            env.service
                .contact_send_code(&taro(), &attacker, None, None)
                .await
        ),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );

    // …but phone_send_code takes it without a step-up.
    let sent = env
        .service
        .phone_send_code(&taro(), "080-1111-2222", None, None)
        .await;
    let ticket = match sent {
        Err(e) => {
            assert_eq!(
                e.refusal(),
                Some(Refusal::Account(AccountRefusal::StepUpRequired)),
                "{e:?}"
            );
            return;
        }
        Ok(ticket) => ticket,
    };
    env.service
        .phone_confirm(
            &taro(),
            &ticket.challenge_id,
            &secret_to(&env.gateway, ATTACKER),
            false,
        )
        .await
        .unwrap();
    let SignInStart::Required { methods } = env.service.sign_in_begin(&taro(), None).await.unwrap()
    else {
        panic!("two-step sign-in is on");
    };
    assert!(
        !methods.iter().any(|m| m.kind == MethodKind::Sms),
        "the attacker's phone became an SMS second factor without any step-up"
    );
}

/// App first, then a phone added while two-step sign-in is on: removing
/// the app is fine, removing the phone after it is not (it is the last
/// factor).
#[tokio::test]
async fn the_last_second_factor_cannot_be_removed_while_two_step_is_on() {
    let env = env();
    let app = env.authenticator().await;
    env.service.enable_two_factor(&taro()).await.unwrap();
    let step_up = env.app_step_up(&app).await;

    let ticket = env
        .service
        .phone_send_code(&taro(), "090-1234-5678", Some(&step_up), None)
        .await
        .unwrap();
    env.service
        .phone_confirm(
            &taro(),
            &ticket.challenge_id,
            &secret_to(&env.gateway, PHONE),
            false,
        )
        .await
        .unwrap();
    // Allowed, rightly: the phone is a factor.
    env.service
        .authenticator_remove(&taro(), &step_up)
        .await
        .unwrap();

    let removed = env.service.phone_remove(&taro()).await;
    assert!(env.service.two_factor_enabled(&taro()).await.unwrap());
    assert!(
        removed.is_err(),
        "the only second factor was removed while two-step sign-in is on; factors left: {:?}",
        env.real_factors().await
    );
}

/// Two-step sign-in on with a verified email as the only factor (where the
/// service counts email as one): the email can't be removed.
#[tokio::test]
async fn an_email_second_factor_cannot_be_removed_while_it_is_the_last() {
    let env = env_with(|b| b.email_as_second_factor(true));
    let email = Destination::email(EMAIL).unwrap();
    let ticket = env
        .service
        .contact_send_code(&taro(), &email, None, None)
        .await
        .unwrap();
    env.service
        .contact_confirm(
            &taro(),
            &ticket.challenge_id,
            &secret_to(&env.gateway, EMAIL),
        )
        .await
        .unwrap();
    env.service.enable_two_factor(&taro()).await.unwrap();
    assert_eq!(env.real_factors().await, vec![MethodKind::Email]);

    let removed = env.service.remove_contact(&taro(), &email).await;
    assert!(env.service.two_factor_enabled(&taro()).await.unwrap());
    assert!(
        removed.is_err(),
        "the only second factor was removed while two-step sign-in is on; factors left: {:?}",
        env.real_factors().await
    );
}

/// A one-time link sent to the old number, approved after the number was
/// changed, signs nobody in.
#[tokio::test]
async fn a_link_in_flight_to_a_changed_number_is_dead() {
    let env = env_with(|b| b.link_base(BASE));
    env.register_phone("090-1234-5678", PHONE, true).await;
    let step_up = env.sms_step_up(PHONE).await;

    // The attacker (with the password) starts a sign-in by link to the
    // current number…
    let methods = env.service.methods(&taro()).await.unwrap();
    let link = methods
        .iter()
        .find(|m| m.kind == MethodKind::Link)
        .expect("a link method");
    let ticket = env
        .service
        .sign_in_send_link(&taro(), link, "Chrome on Windows", None, None)
        .await
        .unwrap();
    let url = secret_to(&env.gateway, PHONE);
    let token = url.strip_prefix(BASE).unwrap().to_owned();

    // …the owner changes the number (the old one was lost, say)…
    let change = env
        .service
        .phone_send_code(&taro(), "090-8765-4321", Some(&step_up), None)
        .await
        .unwrap();
    let done = env
        .service
        .phone_confirm(
            &taro(),
            &change.challenge_id,
            &secret_to(&env.gateway, PHONE2),
            false,
        )
        .await
        .unwrap();
    assert!(done.changed);

    // …and whoever holds the old number approves the link.
    env.service.approve_link(&token).await.unwrap();
    let polled = env
        .service
        .sign_in_poll_link(&taro(), &ticket.challenge_id, None, None)
        .await;
    assert!(
        polled.is_err(),
        "a link to the replaced number signed in: {:?}",
        polled.map(|s| s.map(|s| s.method))
    );
}

/// With masked-contact confirmation on, a link goes out only after the
/// contact is confirmed, like a code.
#[tokio::test]
async fn links_honour_the_masked_contact_confirmation() {
    let env = env_with(|b| b.link_base(BASE).confirm_masked_contacts(true));
    env.register_phone("090-1234-5678", PHONE, true).await;
    let SignInStart::Required { methods } = env.service.sign_in_begin(&taro(), None).await.unwrap()
    else {
        panic!("two-step sign-in is on");
    };
    let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
    let link = methods.iter().find(|m| m.kind == MethodKind::Link).unwrap();
    assert!(sms.confirmation_required && link.confirmation_required);

    let before = env.gateway.sent_to(PHONE).len();
    // A code is refused without the confirmation…
    assert_eq!(
        refusal(
            env.service
                .sign_in_send_code(&taro(), sms, None, None)
                .await
        ),
        Refusal::Send(SendRefusal::ContactNotConfirmed)
    );
    // …a link is not.
    let sent = env
        .service
        .sign_in_send_link(&taro(), link, "Chrome on Windows", None, None)
        .await;
    assert_eq!(
        env.gateway.sent_to(PHONE).len(),
        before,
        "a link went out without the masked-contact confirmation: {sent:?}"
    );
}

/// An email challenge given to `phone_confirm` is refused before its code
/// is spent; the email can still be confirmed.
#[tokio::test]
async fn phone_confirm_does_not_burn_an_email_code() {
    let env = env();
    env.register_phone("090-1234-5678", PHONE, false).await;
    let email = Destination::email(EMAIL).unwrap();
    let ticket = env
        .service
        .contact_send_code(&taro(), &email, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, EMAIL);
    let wrong_door = env
        .service
        .phone_confirm(&taro(), &ticket.challenge_id, &code, false)
        .await;
    if wrong_door.is_err() {
        // Refusing is fine, as long as the code still works where it belongs.
        let right_door = env
            .service
            .contact_confirm(&taro(), &ticket.challenge_id, &code)
            .await;
        assert!(
            right_door.is_ok(),
            "phone_confirm refused ({wrong_door:?}) but consumed the email code: {right_door:?}"
        );
    }
}

/// A sealer backed by a key service that can go down.
#[derive(Debug)]
struct KmsSealer {
    inner: Arc<AeadSealer>,
    down: AtomicBool,
}

impl Default for KmsSealer {
    fn default() -> Self {
        Self {
            inner: support::sealer(),
            down: AtomicBool::new(false),
        }
    }
}

impl Sealer for KmsSealer {
    fn seal(&self, account: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        self.inner.seal(account, plain)
    }

    fn open(&self, account: &str, sealed: &[u8]) -> Result<SecretBytes, SealError> {
        if self.down.load(Ordering::SeqCst) {
            Err(SealError::new(std::io::Error::other("key service down")))
        } else {
            self.inner.open(account, sealed)
        }
    }
}

/// A failing seed sealer (key service down) is an infrastructure error and
/// is not counted against the account: the right code works afterwards.
#[tokio::test]
async fn an_outage_is_not_a_wrong_authenticator_code() {
    let sealer = Arc::new(KmsSealer::default());
    let env = env_sealed(sealer.clone(), |b| {
        b.failure_policy(FailurePolicy {
            free_failures: 10,
            hard_stop: 3,
            ..FailurePolicy::default()
        })
    });
    let app = env.authenticator().await;
    env.service.enable_two_factor(&taro()).await.unwrap();
    env.clock.advance(Duration::seconds(30));
    let code = app.code_at(env.clock.unix_seconds()).to_string();

    sealer.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let outage = env
            .service
            .sign_in_complete(&taro(), Proof::Authenticator { code: &code }, None, None)
            .await;
        assert!(matches!(outage, Err(Error::Store(_))), "{outage:?}");
    }
    sealer.down.store(false, Ordering::SeqCst);

    let after = env
        .service
        .sign_in_complete(&taro(), Proof::Authenticator { code: &code }, None, None)
        .await;
    assert!(
        after.is_ok(),
        "the right code is refused after an outage: {:?}",
        after.map(|s| s.method)
    );
}

/// A sign-in code in flight to a number changed since is neither resent
/// nor accepted.
#[tokio::test]
async fn a_code_in_flight_to_a_changed_number_is_not_resent() {
    let env = env();
    env.register_phone("090-1234-5678", PHONE, true).await;
    let step_up = env.sms_step_up(PHONE).await;
    let methods = env.service.methods(&taro()).await.unwrap();
    let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
    let ticket = env
        .service
        .sign_in_send_code(&taro(), sms, None, None)
        .await
        .unwrap();
    let old_code = secret_to(&env.gateway, PHONE);
    let change = env
        .service
        .phone_send_code(&taro(), "090-8765-4321", Some(&step_up), None)
        .await
        .unwrap();
    env.service
        .phone_confirm(
            &taro(),
            &change.challenge_id,
            &secret_to(&env.gateway, PHONE2),
            false,
        )
        .await
        .unwrap();
    env.clock.advance(time::Duration::minutes(1));
    let sent_before = env.gateway.messages().len();
    for again in [
        env.service
            .resend(&taro(), &ticket.challenge_id, None)
            .await
            .map(|_| ()),
        env.service
            .another_option(&taro(), &ticket.challenge_id, None)
            .await
            .map(|_| ()),
        env.service
            .sign_in_complete(
                &taro(),
                Proof::Code {
                    challenge: &ticket.challenge_id,
                    code: &old_code,
                },
                None,
                None,
            )
            .await
            .map(|_| ()),
    ] {
        assert_eq!(
            refusal(again),
            Refusal::Code(CodeRefusal::DestinationMismatch)
        );
    }
    assert_eq!(
        env.gateway.messages().len(),
        sent_before,
        "nothing was sent"
    );
}

/// Email is not a second factor unless the service turns it on (NIST SP
/// 800-63B §5.1.3.1 rules email out for out-of-band authentication): a
/// service built with the defaults offers no email method, refuses one
/// handed to it anyway, and won't turn two-step sign-in on with an email
/// as the only factor.
#[tokio::test]
async fn email_is_not_a_second_factor_by_default() {
    let store = Arc::new(MemoryStore::new());
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let build = |on: Option<bool>| {
        let builder = two_factor("Example", store.clone(), &gateway, &clock, 11).limits(lots());
        match on {
            Some(on) => builder.email_as_second_factor(on),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let service = build(None);
    // The same records, seen by a service that chose email as a factor.
    let email_on = build(Some(true));
    let email = Destination::email(EMAIL).unwrap();
    let add_email = |account: AccountId| {
        let (service, gateway, email) = (&service, &gateway, &email);
        async move {
            let ticket = service
                .contact_send_code(&account, email, None, None)
                .await
                .unwrap();
            service
                .contact_confirm(&account, &ticket.challenge_id, &secret_to(gateway, EMAIL))
                .await
                .unwrap();
        }
    };

    // Only a verified email: two-step sign-in has no factor to use.
    let hanako = AccountId::new("hanako");
    add_email(hanako.clone()).await;
    assert_eq!(
        refusal(service.enable_two_factor(&hanako).await),
        Refusal::Account(AccountRefusal::NoSecondFactor)
    );
    assert!(!service.two_factor_enabled(&hanako).await.unwrap());
    assert!(email_on.enable_two_factor(&hanako).await.is_ok());

    // A verified phone (two-step on) and a verified email: only the phone
    // is offered.
    add_email(taro()).await;
    let ticket = service
        .phone_send_code(&taro(), "090-1234-5678", None, None)
        .await
        .unwrap();
    service
        .phone_confirm(
            &taro(),
            &ticket.challenge_id,
            &secret_to(&gateway, PHONE),
            true,
        )
        .await
        .unwrap();
    let SignInStart::Required { methods } = service.sign_in_begin(&taro(), None).await.unwrap()
    else {
        panic!("two-step sign-in is on");
    };
    let kinds: Vec<MethodKind> = methods.iter().map(|m| m.kind).collect();
    assert!(kinds.contains(&MethodKind::Sms), "{kinds:?}");
    assert!(!kinds.contains(&MethodKind::Email), "{kinds:?}");
    assert_eq!(service.methods(&taro()).await.unwrap(), methods);

    // An email method from elsewhere is refused, and nothing is sent.
    let forged = email_on
        .methods(&taro())
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.kind == MethodKind::Email)
        .expect("the email method, where email counts");
    let sent = gateway.sent_to(EMAIL).len();
    assert_eq!(
        refusal(
            service
                .sign_in_send_code(&taro(), &forged, None, None)
                .await
        ),
        Refusal::Account(AccountRefusal::NoSuchMethod)
    );
    assert_eq!(gateway.sent_to(EMAIL).len(), sent);
}
