//! Attacks on the fixes of issue 11, through the public API only.
//!
//! Each test is one attack, written from the issue and the seed documents
//! as an independent acceptance suite would. The ones that fail expose a
//! hole; the ones that pass add a property the rest of the suite did not
//! pin down.
//!
//! `Rigged` wraps a shared `MemoryStore` and can
//! - park the next challenge read until released, so a request decides on
//!   the record as it was while another request changes it (the ordering
//!   of two racing requests, made deterministic), and
//! - lose the reply of the next contact commit after it landed (a timeout
//!   or a dropped connection).

mod support;

use ninsho::{AccountRefusal, CodeRefusal, SendRefusal};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use ninsho::challenge::CodePolicy;
use ninsho::device::DeviceCheck;
use ninsho::events::{Event, RecordingEvents};
use ninsho::gateway::RecordingGateway;
use ninsho::limits::FailurePolicy;
use ninsho::model::{AccountId, AccountRecord, ChallengeId, ChallengeRecord, Destination, Purpose};
use ninsho::otp::Totp;
use ninsho::service::IssueRequest;
use ninsho::service::{
    Method, MethodKind, Proof, SignInStart, SignedIn, TwoFactor, TwoFactorBuilder,
};
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ClaimChanges, Commit, Committed, LimitStore, Load,
    Loaded, MemoryStore, StepStore, StoreError,
};
use ninsho::{Clock, Error, ManualClock, Refusal};
use support::{
    BASE, PHONE, T0, Yielding, delegate_store, enrol, no_send_limits, race, refusal, secret_to,
    sms_sign_in, two_factor,
};
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;

const EMAIL: &str = "taro@example.com";
/// The number a phone is changed to, as typed and in E.164.
const NEW_TYPED: &str = "080-1111-2222";
const NEW_PHONE: &str = "+818011112222";

fn taro() -> AccountId {
    AccountId::new("taro")
}

// ------------------------------------------------------------ the wrapper

/// A `MemoryStore` that parks a read or loses a reply on cue (see the
/// module docs).
#[derive(Debug, Default)]
struct Rigged {
    inner: MemoryStore,
    park_read: AtomicBool,
    parked: Notify,
    release: Notify,
    lose_commit: AtomicBool,
}

impl Rigged {
    /// The next challenge read hands its answer back only after
    /// [`release`](Self::release).
    fn park_next_read(&self) {
        self.park_read.store(true, Ordering::SeqCst);
    }

    /// Waits until a read is parked.
    async fn wait_parked(&self) {
        self.parked.notified().await;
    }

    fn release(&self) {
        self.release.notify_one();
    }

    /// The next contact commit lands, then reports the store unavailable.
    fn lose_next_commit(&self) {
        self.lose_commit.store(true, Ordering::SeqCst);
    }
}

delegate_store!([] Rigged, inner, support::directly =>
    LimitStore, DeviceStore, VerificationStore, PurgeStore);

#[async_trait]
impl StepStore for Rigged {
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        let read = self.inner.load(load).await;
        if load.challenge.is_some() && self.park_read.swap(false, Ordering::SeqCst) {
            self.parked.notify_one();
            self.release.notified().await;
        }
        read
    }
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        self.inner.commit(commit, now).await
    }
}

#[async_trait]
impl ChallengeStore for Rigged {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.inner.insert_challenge(record).await
    }
    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        let read = self.inner.challenge(id).await;
        if self.park_read.swap(false, Ordering::SeqCst) {
            self.parked.notify_one();
            self.release.notified().await;
        }
        read
    }
    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.inner.replace_challenge(record, expected_version).await
    }
}

#[async_trait]
impl AccountStore for Rigged {
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.inner.account_record(account).await
    }
    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        self.inner.claim_owner(key).await
    }
    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        let result = self
            .inner
            .commit_account(book, expected_version, changes)
            .await;
        match result {
            Ok(_) if self.lose_commit.swap(false, Ordering::SeqCst) => {
                Err(StoreError::unavailable(std::io::Error::other("reply lost")))
            }
            other => other,
        }
    }
    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        self.inner.delete_account(account).await
    }
}

// ------------------------------------------------------------------ set-up

struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
    store: Arc<Rigged>,
    events: RecordingEvents,
}

fn env_with(configure: impl FnOnce(TwoFactorBuilder) -> TwoFactorBuilder) -> Env {
    let store = Arc::new(Rigged::default());
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let events = RecordingEvents::new();
    let builder = two_factor("Example", store.clone(), &gateway, &clock, 23)
        .limits(no_send_limits())
        .events(Arc::new(events.clone()));
    Env {
        service: configure(builder).build().unwrap(),
        gateway,
        clock,
        store,
        events,
    }
}

fn env() -> Env {
    env_with(|b| b)
}

/// Codes with one attempt each: the last attempt is the first.
fn one_attempt() -> CodePolicy {
    let mut policy = CodePolicy::default();
    policy.max_attempts = 1;
    policy
}

/// A six-digit code other than `right`.
fn wrong(right: &str) -> String {
    if right == "000000" {
        "111111".into()
    } else {
        "000000".into()
    }
}

impl Env {
    async fn methods(&self) -> Vec<Method> {
        match self.service.sign_in_begin(&taro(), None).await.unwrap() {
            SignInStart::Required { methods } => methods,
            other => panic!("two-step sign-in is on: {other:?}"),
        }
    }

    async fn method(&self, kind: MethodKind) -> Method {
        self.methods()
            .await
            .into_iter()
            .find(|m| m.kind == kind)
            .unwrap_or_else(|| panic!("a {kind:?} method"))
    }

    /// Adds `EMAIL` to taro's verified contacts (two-step sign-in on, so
    /// with a step-up).
    async fn add_email(&self) -> Destination {
        let step_up = sms_sign_in(&self.service, &self.gateway, &taro(), None)
            .await
            .step_up;
        let email = Destination::email(EMAIL).unwrap();
        let ticket = self
            .service
            .contact_send_code(&taro(), &email, Some(&step_up), None)
            .await
            .unwrap();
        self.service
            .contact_confirm(
                &taro(),
                &ticket.challenge_id,
                &secret_to(&self.gateway, EMAIL),
            )
            .await
            .unwrap();
        email
    }

    /// Signs taro in with a code by email, trusting the device.
    async fn email_sign_in(&self, label: &str) -> SignedIn {
        let method = self.method(MethodKind::Email).await;
        let ticket = self
            .service
            .sign_in_send_code(&taro(), &method, None, None)
            .await
            .unwrap();
        self.service
            .sign_in_complete(
                &taro(),
                Proof::Code {
                    challenge: &ticket.challenge_id,
                    code: &secret_to(&self.gateway, EMAIL),
                },
                Some(label),
                None,
            )
            .await
            .unwrap()
    }

    async fn device(&self, signed: &SignedIn) -> DeviceCheck {
        let (token, _) = signed.device.as_ref().expect("the device was trusted");
        self.service
            .check_device(&taro(), token.expose_secret())
            .await
            .unwrap()
    }
}

// ------------------------------------------ 1. guesses counted before checked

/// Sign-up (EZSMS) has no account, so only the challenge's own attempt
/// limit stands between a guesser and the number. A request that read the
/// challenge before another one used its last attempt must not verify the
/// member afterwards: with N parallel requests all N codes would be
/// compared, whatever the limit.
#[tokio::test]
async fn sign_up_a_code_compared_after_the_last_attempt_is_used_verifies_nothing() {
    let env = env_with(|b| b.code_policy(one_attempt()));
    let ticket = env
        .service
        .signup_start(EMAIL, "090-1234-5678", None)
        .await
        .unwrap();
    let right = secret_to(&env.gateway, PHONE);
    let id = ticket.id;

    env.store.park_next_read();
    let late = tokio::spawn({
        let service = env.service.clone();
        let right = right.clone();
        async move { service.signup_verify(&id, 1, &right).await }
    });
    env.store.wait_parked().await;
    // Meanwhile a wrong guess uses the challenge's only attempt.
    assert_eq!(
        refusal(env.service.signup_verify(&id, 1, &wrong(&right)).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
    env.store.release();
    let late = late.await.unwrap();

    let status = env.service.signup_status(&id).await.unwrap();
    assert!(
        !status.members[1].verified,
        "the phone's only attempt went to a wrong code, yet a code compared after it \
         verified the number (that request answered {late:?})"
    );
    // ... and with the email (the attacker's own) the sign-up completes.
    env.service
        .signup_verify(&id, 0, &secret_to(&env.gateway, EMAIL))
        .await
        .unwrap();
    let taken = env
        .service
        .signup_complete(&id, &AccountId::new("mallory"))
        .await;
    assert!(
        taken.is_err(),
        "an account took a number whose code was never verified: {taken:?}"
    );
}

/// The same on an account's contact confirm: the phone becomes the
/// account's (claimed, two-step sign-in on) from a code compared after the
/// challenge's last attempt was used. An attacker claiming someone else's
/// number for their own account resets their own failure run at will (a
/// right code of their own ends it), so the challenge's limit is the one
/// that counts.
#[tokio::test]
async fn phone_confirm_compared_after_the_last_attempt_is_used_registers_nothing() {
    let env = env_with(|b| b.code_policy(one_attempt()));
    let ticket = env
        .service
        .phone_send_code(&taro(), "090-1234-5678", None, None)
        .await
        .unwrap();
    let right = secret_to(&env.gateway, PHONE);
    let id = ticket.challenge_id;

    env.store.park_next_read();
    let late = tokio::spawn({
        let service = env.service.clone();
        let right = right.clone();
        async move {
            service
                .phone_confirm(&taro(), &id, &right, true)
                .await
                .map(|done| done.recovery_codes.is_some())
        }
    });
    env.store.wait_parked().await;
    assert_eq!(
        refusal(
            env.service
                .phone_confirm(&taro(), &id, &wrong(&right), false)
                .await
        ),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
    env.store.release();
    let late = late.await.unwrap();

    let contacts = env.service.contacts(&taro()).await.unwrap();
    let owner = env
        .service
        .contact_owner(&Destination::phone(PHONE).unwrap())
        .await
        .unwrap();
    assert!(
        contacts.iter().all(|c| !c.verified) && owner.is_none(),
        "the code's only attempt went to a wrong code, yet a code compared after it \
         registered and claimed the number (owner {owner:?}, two-step on: {:?}; that \
         request answered {late:?})",
        env.service.two_factor_enabled(&taro()).await
    );
}

/// "I can't sign in" has no account either; a right code compared after
/// the last attempt was used must not name the account. (Holds: the code
/// is spent with compare-and-set before the owner is returned.)
#[tokio::test]
async fn recover_verify_compared_after_the_last_attempt_is_used_names_no_account() {
    let env = env_with(|b| b.code_policy(one_attempt()));
    enrol(&env.service, &env.gateway, &taro()).await;
    let ticket = env
        .service
        .recover_start("090-1234-5678", None)
        .await
        .unwrap();
    let right = secret_to(&env.gateway, PHONE);
    let id = ticket.challenge_id;

    env.store.park_next_read();
    let late = tokio::spawn({
        let service = env.service.clone();
        let right = right.clone();
        async move { service.recover_verify(&id, &right).await }
    });
    env.store.wait_parked().await;
    assert_eq!(
        refusal(env.service.recover_verify(&id, &wrong(&right)).await),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
    env.store.release();
    assert_eq!(
        refusal(late.await.unwrap()),
        Refusal::Code(CodeRefusal::TooManyAttempts)
    );
}

/// What one racing request of
/// `refunds_racing_wrong_guesses_take_back_no_failure` answered.
#[derive(Debug)]
enum Raced {
    Wrong,
    Taken(Result<(), Error>),
}

/// Right masked-contact confirmations and link opens take their own
/// count back. Racing wrong guesses, no such refund may take back a
/// failure that another request counted: the run ends at least as long as
/// the wrong guesses that were compared. (Holds.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_racing_wrong_guesses_take_back_no_failure() {
    let store = Arc::new(MemoryStore::new());
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let lenient = FailurePolicy {
        free_failures: 10_000,
        hard_stop: 100_000,
        ..FailurePolicy::default()
    };
    let service = two_factor(
        "Example",
        Arc::new(Yielding(store.clone())),
        &gateway,
        &clock,
        29,
    )
    .limits(no_send_limits())
    .link_base(BASE)
    .confirm_masked_contacts(true)
    .failure_policy(lenient)
    .build()
    .unwrap();
    enrol(&service, &gateway, &taro()).await;
    let methods = service.methods(&taro()).await.unwrap();
    let sms = methods
        .iter()
        .find(|m| m.kind == MethodKind::Sms)
        .unwrap()
        .clone();
    let link = methods
        .iter()
        .find(|m| m.kind == MethodKind::Link)
        .unwrap()
        .clone();
    service
        .sign_in_send_link(&taro(), &link, "Firefox on Linux", Some("5678"), None)
        .await
        .unwrap();
    let url = secret_to(&gateway, PHONE);
    let token = url.strip_prefix(BASE).unwrap().to_owned();

    let outcomes = race(|i| {
        let service = service.clone();
        let sms = sms.clone();
        let token = token.clone();
        async move {
            match i % 3 {
                0 => match service
                    .sign_in_complete(
                        &taro(),
                        Proof::RecoveryCode {
                            code: "zzzz-zzzz-zzzz",
                        },
                        None,
                        None,
                    )
                    .await
                {
                    Err(Error::Refused(Refusal::Code(CodeRefusal::WrongRecoveryCode))) => {
                        Raced::Wrong
                    }
                    other => Raced::Taken(other.map(drop)),
                },
                1 => Raced::Taken(
                    service
                        .sign_in_send_code(&taro(), &sms, Some("5678"), None)
                        .await
                        .map(drop),
                ),
                _ => Raced::Taken(service.open_link(&token).await.map(drop)),
            }
        }
    })
    .await;
    let mut wrong = 0;
    for outcome in outcomes {
        match outcome {
            Raced::Wrong => wrong += 1,
            Raced::Taken(Ok(())) => {}
            Raced::Taken(Err(e)) => panic!("a right confirmation or link open failed: {e:?}"),
        }
    }
    let run = store
        .failures(&taro())
        .await
        .unwrap()
        .map_or(0, |r| r.consecutive);
    assert!(
        run >= wrong,
        "{wrong} wrong recovery codes were compared, the run is {run}"
    );
}

// ------------------------------------- 3./4. security epoch and step-ups

/// A phone change started with a step-up is finished after "sign out
/// everywhere" / a password change: the step-up is dead, so must be the
/// change it authorised. Otherwise a hijacked session that once had a
/// step-up survives the victim's password change and swaps the number
/// for its own.
#[tokio::test]
async fn a_phone_change_started_before_the_password_change_is_refused_after_it() {
    let env = env();
    enrol(&env.service, &env.gateway, &taro()).await;
    let step_up = sms_sign_in(&env.service, &env.gateway, &taro(), None)
        .await
        .step_up;
    let ticket = env
        .service
        .phone_send_code(&taro(), NEW_TYPED, Some(&step_up), None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, NEW_PHONE);

    env.service.password_changed(&taro()).await.unwrap();
    assert_eq!(
        refusal(env.service.check_step_up(&taro(), &step_up).await),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );

    let changed = env
        .service
        .phone_confirm(&taro(), &ticket.challenge_id, &code, false)
        .await;
    assert_eq!(
        refusal(changed),
        Refusal::Account(AccountRefusal::StepUpRequired),
        "the number was changed on the authority of a step-up the password change revoked"
    );
}

/// The same for an authenticator app: started with a step-up, confirmed
/// after "sign out everywhere", it replaces the user's app.
#[tokio::test]
async fn an_authenticator_started_before_sign_out_everywhere_is_refused_after_it() {
    let env = env();
    enrol(&env.service, &env.gateway, &taro()).await;
    let step_up = sms_sign_in(&env.service, &env.gateway, &taro(), None)
        .await
        .step_up;
    let setup = env
        .service
        .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();

    env.service.sign_out_everywhere(&taro()).await.unwrap();

    let now = ninsho::clock::unix_seconds(env.clock.now());
    let confirmed = env
        .service
        .authenticator_confirm(&taro(), &app.code_at(now).to_string())
        .await;
    assert!(
        matches!(confirmed, Err(Error::Refused(_))),
        "an app set up under a step-up that sign-out-everywhere revoked became a second \
         factor: {confirmed:?}"
    );
}

/// A hijacked session of an account without two-step sign-in starts an
/// app (no step-up is due then) and waits. The owner turns two-step
/// sign-in on with their phone. Days later the session confirms its app:
/// it becomes a second factor of a protected account without any step-up.
#[tokio::test]
async fn an_authenticator_started_before_two_step_went_on_needs_a_step_up_to_confirm() {
    let env = env();
    let setup = env
        .service
        .authenticator_start(&taro(), "taro@example.com", None)
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();

    enrol(&env.service, &env.gateway, &taro()).await;
    env.clock.advance(Duration::days(3));

    let now = ninsho::clock::unix_seconds(env.clock.now());
    let confirmed = env
        .service
        .authenticator_confirm(&taro(), &app.code_at(now).to_string())
        .await;
    let methods = env.service.methods(&taro()).await.unwrap();
    assert!(
        matches!(confirmed, Err(Error::Refused(_))),
        "an app started 3 days before two-step sign-in went on became its second factor \
         with no step-up ({confirmed:?}); sign-in now offers {:?}",
        methods.iter().map(|m| m.kind).collect::<Vec<_>>()
    );
}

/// Removing a verified email address that is a second factor (the service
/// opted in) is a change of a second factor: devices trusted through it
/// and step-ups proven with it must die.
#[tokio::test]
async fn removing_an_email_second_factor_revokes_its_devices_and_step_ups() {
    let env = env_with(|b| b.email_as_second_factor(true));
    enrol(&env.service, &env.gateway, &taro()).await;
    let email = env.add_email().await;
    let signed = env.email_sign_in("Attacker's laptop").await;
    assert!(matches!(
        env.device(&signed).await,
        DeviceCheck::Valid { .. }
    ));

    env.service.remove_contact(&taro(), &email).await.unwrap();

    let device = env.device(&signed).await;
    let step_up = env.service.check_step_up(&taro(), &signed.step_up).await;
    assert!(
        device == DeviceCheck::Revoked && step_up.is_err(),
        "the email second factor is gone, yet the device trusted through it checks as \
         {device:?} and its step-up as {step_up:?}"
    );
}

// ------------------------------------------------ 5. retries of one attempt

/// A retry from the same attempt exists for a reply lost seconds ago. A
/// recovery code spent a month ago, replayed from that attempt after
/// "sign out everywhere", must not sign in again — let alone hand out a
/// step-up and a trusted device valid at the new epoch.
#[tokio::test]
async fn a_spent_recovery_code_replayed_from_its_attempt_a_month_later_is_refused() {
    let env = env();
    let codes = enrol(&env.service, &env.gateway, &taro()).await;
    let attempt = env.service.new_attempt().unwrap();
    env.service
        .sign_in_complete(
            &taro(),
            Proof::RecoveryCode { code: &codes[0] },
            None,
            Some(&attempt),
        )
        .await
        .unwrap();

    env.service.sign_out_everywhere(&taro()).await.unwrap();
    env.clock.advance(Duration::days(30));

    let replay = env
        .service
        .sign_in_complete(
            &taro(),
            Proof::RecoveryCode { code: &codes[0] },
            Some("Attacker's laptop"),
            Some(&attempt),
        )
        .await;
    let detail = match &replay {
        Ok(signed) => format!(
            "signed in; step-up {:?}, device {:?}",
            env.service.check_step_up(&taro(), &signed.step_up).await,
            env.device(signed).await
        ),
        Err(e) => format!("{e:?}"),
    };
    assert_eq!(
        refusal(replay),
        Refusal::Code(CodeRefusal::AlreadyUsed),
        "a recovery code used 30 days ago, before sign-out-everywhere: {detail}"
    );
}

/// A sent code retried from its attempt after the epoch moved on (sign out
/// everywhere in between) may get its lost success back, but not a step-up
/// or a trusted device at the new epoch: the sign-in happened before it.
#[tokio::test]
async fn a_code_retried_from_its_attempt_after_sign_out_everywhere_gets_no_fresh_step_up() {
    let env = env();
    enrol(&env.service, &env.gateway, &taro()).await;
    let sms = env.method(MethodKind::Sms).await;
    let ticket = env
        .service
        .sign_in_send_code(&taro(), &sms, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    let attempt = env.service.new_attempt().unwrap();
    let proof = Proof::Code {
        challenge: &ticket.challenge_id,
        code: &code,
    };
    env.service
        .sign_in_complete(&taro(), proof, None, Some(&attempt))
        .await
        .unwrap();

    env.service.sign_out_everywhere(&taro()).await.unwrap();

    let again = env
        .service
        .sign_in_complete(&taro(), proof, Some("Attacker's laptop"), Some(&attempt))
        .await;
    if let Ok(signed) = again {
        let step_up = env.service.check_step_up(&taro(), &signed.step_up).await;
        let device = env.device(&signed).await;
        assert!(
            step_up.is_err() && device != DeviceCheck::Valid { refresh: false },
            "after sign-out-everywhere, a replay of the spent code from its attempt got a \
             step-up ({step_up:?}) and a trusted device ({device:?}) at the new epoch"
        );
    }
}

/// `phone_confirm` with two-step sign-in turned on: the commit lands, its
/// reply is lost. The retry finds the change made and answers success —
/// without the recovery codes, which nobody has seen. The user ends up
/// with two-step sign-in on and recovery codes they never got.
#[tokio::test]
async fn phone_confirm_whose_reply_was_lost_still_shows_the_recovery_codes() {
    let env = env();
    let ticket = env
        .service
        .phone_send_code(&taro(), "090-1234-5678", None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    env.store.lose_next_commit();
    let first = env
        .service
        .phone_confirm(&taro(), &ticket.challenge_id, &code, true)
        .await;
    assert!(matches!(first, Err(Error::Store(_))), "{first:?}");
    assert!(env.service.two_factor_enabled(&taro()).await.unwrap());

    let retry = env
        .service
        .phone_confirm(&taro(), &ticket.challenge_id, &code, true)
        .await
        .unwrap();
    assert!(
        retry.recovery_codes.is_some(),
        "two-step sign-in is on with a recovery set no one was shown, and the retry \
         answered success without codes: {retry:?}"
    );
}

// --------------------------------------- 10. email is no second factor

/// With email not a second factor (the default), there is no way to get a
/// sign-in code to the account's verified email: the journeys offer no
/// email method, and the standalone codes refuse the sign-in purpose, so
/// nothing reaches the inbox to complete the second step with. (Holds; the
/// flows that once allowed it are no longer public.)
#[tokio::test]
async fn no_sign_in_code_can_be_sent_to_an_email_around_the_journeys() {
    let env = env_with(|b| b.link_base(BASE));
    enrol(&env.service, &env.gateway, &taro()).await;
    let email = env.add_email().await;
    let sent = env.gateway.messages().len();

    let methods = env.service.methods(&taro()).await.unwrap();
    assert!(
        methods.iter().all(|m| m.kind != MethodKind::Email),
        "{methods:?}"
    );
    for purpose in [Purpose::SignIn, Purpose::ContactChange, Purpose::Recovery] {
        let refused = env
            .service
            .one_time_codes()
            .send(IssueRequest::new(email.clone(), purpose.clone()).account(taro()))
            .await;
        assert!(
            matches!(refused, Err(Error::Misuse(ninsho::Misuse::ReservedPurpose(ref p))) if *p == purpose),
            "{refused:?}"
        );
    }
    assert_eq!(env.gateway.messages().len(), sent, "nothing was sent");
}

// ------------------------------------------------ 2. masked confirmation

/// The confirmation asks for the whole address; a screen showing all but
/// one character of it leaves about 40 candidates, less than the 1 in 100
/// `MaskPolicy` promises for phones (`MIN_DIGITS_UNSEEN`).
#[tokio::test]
async fn a_short_email_address_on_screen_leaves_at_least_two_characters_to_guess() {
    let env = env_with(|b| b.email_as_second_factor(true).confirm_masked_contacts(true));
    enrol(&env.service, &env.gateway, &taro()).await;
    let short = "bob@example.com";
    env.service
        .import_contact(&taro(), &Destination::email(short).unwrap(), true)
        .await
        .unwrap();
    let method = env
        .methods()
        .await
        .into_iter()
        .find(|m| m.kind == MethodKind::Email)
        .unwrap();
    let screen = method.masked_destination.clone().unwrap();
    let local = screen.split('@').next().unwrap();
    let shown = local.trim_end_matches('*').chars().count();
    assert!(
        "bob".len() - shown >= 2,
        "the screen shows {screen:?} and the confirmation asks for {short:?}: one \
         character to guess"
    );
}

/// Events are what hosts build "recent activity" pages and "a code was
/// sent to …" notices from, shown to whoever is signed in — an attacker
/// with the password included. They must not carry the digits the
/// masked-contact confirmation asks for.
#[tokio::test]
async fn no_event_carries_the_digits_the_confirmation_asks_for() {
    let env = env_with(|b| b.confirm_masked_contacts(true));
    enrol(&env.service, &env.gateway, &taro()).await;
    let sms = env.method(MethodKind::Sms).await;
    assert_eq!(sms.confirmation_digits, Some(4));
    env.service
        .sign_in_send_code(&taro(), &sms, Some("5678"), None)
        .await
        .unwrap();
    let shown: Vec<String> = env
        .events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Issued { destination, .. } => Some(destination),
            _ => None,
        })
        .collect();
    assert!(!shown.is_empty());
    assert!(
        shown.iter().all(|d| !d.ends_with("5678")),
        "events show {shown:?}; the confirmation asks for 5678"
    );
}

/// The confirmation is the service's rule (`confirm_masked_contacts`), not
/// the caller's: a `Method` whose public `confirmation_required` was
/// cleared (a stale copy from the session, or a careless host) must not
/// send a code unconfirmed.
#[tokio::test]
async fn a_method_edited_to_need_no_confirmation_still_needs_one() {
    let env = env_with(|b| b.confirm_masked_contacts(true));
    enrol(&env.service, &env.gateway, &taro()).await;
    let mut sms = env.method(MethodKind::Sms).await;
    assert!(sms.confirmation_required);
    sms.confirmation_required = false;
    let sent = env
        .service
        .sign_in_send_code(&taro(), &sms, None, None)
        .await;
    assert_eq!(
        refusal(sent),
        Refusal::Send(SendRefusal::ContactNotConfirmed),
        "the code went out without the masked-contact confirmation"
    );
}

// --------------------------------------------------- regressions and docs

thread_local! {
    /// Store calls made on this thread (a `#[tokio::test]` runs on one).
    static CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

async fn count_call<T>(result: T) -> T {
    CALLS.with(|c| c.set(c.get() + 1));
    result
}

/// The store calls since the last call of `calls`.
fn calls() -> u64 {
    CALLS.with(|c| c.replace(0))
}

/// A `MemoryStore` that counts every call.
#[derive(Debug, Default)]
struct Counting(MemoryStore);

delegate_store!([] Counting, 0, count_call =>
    ChallengeStore, LimitStore, DeviceStore, AccountStore, VerificationStore, StepStore, PurgeStore);

fn counted_service(gateway: &RecordingGateway) -> TwoFactor {
    let clock = ManualClock::at_unix(T0).unwrap();
    two_factor("Example", Arc::new(Counting::default()), gateway, &clock, 3)
        .limits(no_send_limits())
        .build()
        .unwrap()
}

/// The recovery codes and the epoch now live in the account's record, so
/// the record `sign_in_begin` reads holds every method: reading it again
/// for the recovery codes is a wasted round trip (and a second, possibly
/// different, snapshot deciding one answer).
#[tokio::test]
async fn sign_in_begin_reads_the_accounts_record_once() {
    let gateway = RecordingGateway::new();
    let service = counted_service(&gateway);
    enrol(&service, &gateway, &taro()).await;
    calls();
    let start = service.sign_in_begin(&taro(), None).await.unwrap();
    assert!(matches!(start, SignInStart::Required { .. }));
    assert_eq!(calls(), 1, "sign_in_begin's store calls");
}

/// README's "Whole journeys" table gives each journey's store calls.
#[tokio::test]
async fn journeys_make_the_store_calls_the_readme_gives() {
    let gateway = RecordingGateway::new();
    let service = counted_service(&gateway);
    let codes = enrol(&service, &gateway, &taro()).await;
    calls();
    let SignInStart::Required { methods } = service.sign_in_begin(&taro(), None).await.unwrap()
    else {
        panic!("two-step sign-in is on");
    };
    let begin = calls();
    let ticket = service
        .sign_in_send_code(&taro(), &methods[0], None, None)
        .await
        .unwrap();
    let send = calls();
    let code = secret_to(&gateway, PHONE);
    let proof = Proof::Code {
        challenge: &ticket.challenge_id,
        code: &code,
    };
    service
        .sign_in_complete(&taro(), proof, None, None)
        .await
        .unwrap();
    let complete = calls();
    let trusted = sms_sign_in(&service, &gateway, &taro(), Some("Firefox")).await;
    let (token, _) = trusted.device.unwrap();
    calls();
    service
        .sign_in_begin(&taro(), Some(token.expose_secret()))
        .await
        .unwrap();
    let trusted_begin = calls();
    service.sign_in_begin(&taro(), None).await.unwrap();
    let recovery_begin = calls();
    service
        .sign_in_complete(&taro(), Proof::RecoveryCode { code: &codes[0] }, None, None)
        .await
        .unwrap();
    let recovery_complete = calls();

    let measured = [
        ("SMS: begin", begin),
        ("SMS: send", send),
        ("SMS: complete", complete),
        ("trusted-device: begin", trusted_begin),
        ("recovery code: begin", recovery_begin),
        ("recovery code: complete", recovery_complete),
    ];
    // The table's rows, as the README writes them.
    let readme = include_str!("../README.md");
    let row = |journey: &str| {
        readme
            .lines()
            .find(|l| l.starts_with(&format!("| {journey}")))
            .unwrap_or_else(|| panic!("README has a row for {journey}"))
            .to_owned()
    };
    let said = [
        (
            row("sign-in second step by SMS"),
            format!("| {begin} + {send} + {complete} ("),
        ),
        (
            row("trusted-device sign-in"),
            format!("| {trusted_begin} ("),
        ),
        (
            row("recovery-code sign-in"),
            format!("| {recovery_begin} + {recovery_complete} ("),
        ),
    ];
    let wrong: Vec<String> = said
        .iter()
        .filter(|(line, counts)| !line.contains(counts.as_str()))
        .map(|(line, counts)| format!("README row {line:?} should give {counts:?}"))
        .collect();
    assert!(wrong.is_empty(), "{measured:?}: {}", wrong.join("; "));
}

/// An authenticator code signs in with one read and one write (the device
/// trusted in that write), as README's table gives.
#[tokio::test]
async fn an_authenticator_sign_in_makes_the_store_calls_the_readme_gives() {
    let gateway = RecordingGateway::new();
    let service = counted_service(&gateway);
    enrol(&service, &gateway, &taro()).await;
    let step_up = sms_sign_in(&service, &gateway, &taro(), None).await.step_up;
    let setup = service
        .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
        .await
        .unwrap();
    let app = ninsho::otp::Totp::from_uri(setup.uri.expose_secret()).unwrap();
    let now = u64::try_from(T0).unwrap();
    service
        .authenticator_confirm(&taro(), &app.code_at(now).to_string())
        .await
        .unwrap();
    calls();
    service.sign_in_begin(&taro(), None).await.unwrap();
    let begin = calls();
    // The next time step: confirming spent this one.
    let code = app.code_at(now + 30).to_string();
    let done = service
        .sign_in_complete(
            &taro(),
            Proof::Authenticator { code: &code },
            Some("Firefox"),
            None,
        )
        .await
        .unwrap();
    let complete = calls();
    assert!(done.device.is_some(), "the device was trusted");
    let readme = include_str!("../README.md");
    let row = readme
        .lines()
        .find(|l| l.starts_with("| authenticator sign-in"))
        .expect("README has a row for the authenticator sign-in");
    assert!(
        row.contains(&format!("| {begin} + {complete} (")),
        "README row {row:?} should give {begin} + {complete}"
    );
    assert_eq!((begin, complete), (1, 2));
}

/// The standalone codes can't resend a journey's code: a challenge id is
/// not a secret (it sits in the page), and `TwoFactor::resend` checks whose
/// challenge it is; `OneTimeCodes` answers as if it did not exist.
#[tokio::test]
async fn one_time_codes_cannot_resend_a_sign_in_code() {
    let env = env_with(|b| b);
    enrol(&env.service, &env.gateway, &taro()).await;
    let method = env.method(MethodKind::Sms).await;
    let ticket = env
        .service
        .sign_in_send_code(&taro(), &method, None, None)
        .await
        .unwrap();
    env.clock.advance(Duration::minutes(2));
    let sent = env.gateway.messages().len();
    let codes = env.service.one_time_codes();
    assert_eq!(
        refusal(codes.resend(&ticket.challenge_id, None).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(
        refusal(codes.another_option(&ticket.challenge_id, None).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(env.gateway.messages().len(), sent, "nothing was sent");
}
