//! Review (session b) of three commits: `Standing` (devices and step-ups
//! issued before the account record's `created_at` no longer vouch),
//! the authenticator sign-in on one load and one commit
//! (`AccountGuessSlot`, the device trusted in that commit), and one-time
//! link tokens settled by `guess::judge`.
//!
//! - `finding_N_*`: a problem found, shown failing on the code as
//!   reviewed (`#[ignore]` while open; a fixed one runs and guards the fix).
//! - `holds_*`: an attack that held, kept where no other test covers it.
//!
//! Findings:
//!
//! 1. An authenticator sign-in retried by the attempt that made it (its
//!    reply lost) wrote its commit without checking the account record,
//!    then trusted the device in a separate insert: with the account
//!    deleted and made again under the same id between the retry's load
//!    and its commit, the retry signed in, and its device and step-up
//!    vouched for the new account (the hole finding 3 of
//!    `review_port_v2.rs` closed for first sign-ins). The same held for a
//!    recovery code's retry, which goes through the same slot. Fixed: a
//!    commit of `AccountGuessSlot` that does not write the record checks
//!    it, and the retry trusts the device in that commit.
//! 2. `Standing` compares the record's `created_at`, stamped by the clock
//!    of whichever instance created the record, with a device's or a
//!    proof's time, stamped by another instance's clock: with that clock a
//!    little behind, a device trusted (and a step-up proven) right after
//!    the record was created is revoked at once. Open (see the test).
//!
//! Harness copied from `review_port_v2.rs` (two instances on one store,
//! `Gated`, `Faulty`, the manual clock).

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ninsho::device::DeviceCheck;
use ninsho::events::{Event, RecordingEvents};
use ninsho::gateway::RecordingGateway;
use ninsho::limits::FailurePolicy;
use ninsho::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, DeviceId, DeviceRecord, FailureRecord,
    VerificationId, VerificationRecord,
};
use ninsho::otp::Totp;
use ninsho::service::{Method, MethodKind, Proof, SignInAttempt, SignInStart, SignedIn, TwoFactor};
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ClaimChanges, Commit, Committed, DeviceStore,
    LimitStore, Load, Loaded, MemoryStore, PurgeStore, Purged, StepStore, Store, StoreError,
    VerificationStore, WindowCount,
};
use ninsho::{AccountRefusal, Clock, CodeRefusal, Error, ManualClock, Refusal};
use support::{
    BASE, PHONE, T0, TASKS, Yielding, delegate_store, enrol, no_send_limits, race, secret_to,
    two_factor,
};
use time::{Duration, OffsetDateTime};
use tokio::sync::oneshot;

fn taro() -> AccountId {
    AccountId::new("taro")
}

/// The longest a test waits for a gated call to be reached: a safety net
/// against a hang, never a sleep (the gate opens as soon as it is reached).
const GATE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

// ------------------------------------------------------------------- Gated

/// The store call a [`Gate`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// The next `StepStore::commit`.
    Commit,
    /// The next `LimitStore::replace_failures` that shortens or ends a
    /// run (a guess's count taken back).
    Refund,
}

struct Armed {
    call: Call,
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// Stops the next call of one kind until the test releases it.
#[derive(Default)]
struct Gate(Mutex<Option<Armed>>);

impl Gate {
    /// Arms the gate for the next `call`: the first receiver fires when the
    /// call is reached (and held), the sender lets it go on.
    fn arm(&self, call: Call) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Armed {
            call,
            reached: reached_tx,
            release: release_rx,
        });
        (reached_rx, release_tx)
    }

    async fn pass(&self, call: Call) {
        let armed = {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.as_ref().is_some_and(|a| a.call == call) {
                slot.take()
            } else {
                None
            }
        };
        if let Some(armed) = armed {
            let _ = armed.reached.send(());
            let _ = armed.release.await;
        }
    }
}

/// Waits until the gated call is reached.
async fn reached(rx: oneshot::Receiver<()>) {
    tokio::time::timeout(GATE_WAIT, rx)
        .await
        .expect("the gated call was never reached")
        .expect("the gate was dropped");
}

/// A shared `MemoryStore` whose next commit can be held at the gate.
struct Gated {
    inner: Arc<MemoryStore>,
    gate: Gate,
}

impl std::fmt::Debug for Gated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gated").field("inner", &self.inner).finish()
    }
}

delegate_store!([] Gated, inner, support::directly =>
    ChallengeStore, DeviceStore, AccountStore, VerificationStore, PurgeStore);

#[async_trait]
impl LimitStore for Gated {
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        self.inner.hit(key, window, now).await
    }
    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        // A refund shortens the run; settling a right confirmation writes
        // the run unchanged (the compare-and-set alone).
        let length = |run: Option<FailureRecord>| run.map_or(0, |r| r.consecutive);
        if length(next) < length(expected) || next == expected {
            self.gate.pass(Call::Refund).await;
        }
        self.inner.replace_failures(account, expected, next).await
    }
    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        self.inner.failures(account).await
    }
    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        self.inner.clear_failures(account).await
    }
}

#[async_trait]
impl StepStore for Gated {
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        self.inner.load(load).await
    }

    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        self.gate.pass(Call::Commit).await;
        self.inner.commit(commit, now).await
    }
}

// ------------------------------------------------------------------ Faulty

/// How the armed call of a [`Faulty`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The call never reaches the store.
    FailBefore,
    /// A call that writes lands, then its reply is lost.
    LostReply,
}

/// A shared store that logs every call by name and fails call `n` (from
/// 1, counted from when it was armed) in the armed mode.
struct Faulty {
    inner: Arc<dyn Store>,
    calls: Mutex<Vec<&'static str>>,
    seen: AtomicU32,
    fail_at: AtomicU32,
    mode: Mutex<Mode>,
}

impl std::fmt::Debug for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faulty").finish_non_exhaustive()
    }
}

impl Faulty {
    fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
            seen: AtomicU32::new(0),
            fail_at: AtomicU32::new(0),
            mode: Mutex::new(Mode::FailBefore),
        }
    }

    /// Fails call `n` from now on (0: none), and starts a new log.
    fn arm(&self, n: u32, mode: Mode) {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
        self.seen.store(0, Ordering::SeqCst);
        self.fail_at.store(n, Ordering::SeqCst);
        self.take();
    }

    /// The calls logged since the last `arm` or `take`.
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether this call (just logged) is the one to fail, and how.
    fn fault(&self, name: &'static str) -> Option<Mode> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name);
        let seen = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        (seen == self.fail_at.load(Ordering::SeqCst))
            .then(|| *self.mode.lock().unwrap_or_else(PoisonError::into_inner))
    }

    async fn read<T>(
        &self,
        name: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.fault(name) {
            Some(Mode::FailBefore) => Err(StoreError::unavailable(format!("injected: {name}"))),
            _ => call.await,
        }
    }

    async fn write<T>(
        &self,
        name: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.fault(name) {
            Some(Mode::FailBefore) => Err(StoreError::unavailable(format!("injected: {name}"))),
            Some(Mode::LostReply) => {
                let _ = call.await;
                Err(StoreError::unavailable(format!(
                    "injected lost reply: {name}"
                )))
            }
            None => call.await,
        }
    }
}

#[async_trait]
impl ChallengeStore for Faulty {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.write("insert_challenge", self.inner.insert_challenge(record))
            .await
    }
    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        self.read("challenge", self.inner.challenge(id)).await
    }
    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let call = self.inner.replace_challenge(record, expected_version);
        self.write("replace_challenge", call).await
    }
}

#[async_trait]
impl LimitStore for Faulty {
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        self.write("hit", self.inner.hit(key, window, now)).await
    }
    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        let call = self.inner.replace_failures(account, expected, next);
        self.write("replace_failures", call).await
    }
    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        self.read("failures", self.inner.failures(account)).await
    }
    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        self.write("clear_failures", self.inner.clear_failures(account))
            .await
    }
}

#[async_trait]
impl DeviceStore for Faulty {
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        self.write("insert_device", self.inner.insert_device(record))
            .await
    }
    async fn device(
        &self,
        account: &AccountId,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        self.read("device", self.inner.device(account, id)).await
    }
    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        self.read("devices", self.inner.devices(account)).await
    }
    async fn replace_device(
        &self,
        record: &DeviceRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let call = self.inner.replace_device(record, expected_version);
        self.write("replace_device", call).await
    }
    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError> {
        self.write("delete_device", self.inner.delete_device(account, id))
            .await
    }
    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        self.write("delete_devices", self.inner.delete_devices(account))
            .await
    }
}

#[async_trait]
impl AccountStore for Faulty {
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.read("account_record", self.inner.account_record(account))
            .await
    }
    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        self.read("claim_owner", self.inner.claim_owner(key)).await
    }
    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        let call = self.inner.commit_account(book, expected_version, changes);
        self.write("commit_account", call).await
    }
    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        self.write("delete_account", self.inner.delete_account(account))
            .await
    }
}

#[async_trait]
impl VerificationStore for Faulty {
    async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError> {
        let call = self.inner.insert_verification(record);
        self.write("insert_verification", call).await
    }
    async fn verification(
        &self,
        id: &VerificationId,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        self.read("verification", self.inner.verification(id)).await
    }
    async fn replace_verification(
        &self,
        record: &VerificationRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let call = self.inner.replace_verification(record, expected_version);
        self.write("replace_verification", call).await
    }
}

#[async_trait]
impl PurgeStore for Faulty {
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError> {
        self.write("purge", self.inner.purge(before)).await
    }
}

#[async_trait]
impl StepStore for Faulty {
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        self.read("load", self.inner.load(load)).await
    }
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        self.write("commit", self.inner.commit(commit, now)).await
    }
}

// ------------------------------------------------------------- the account

/// taro, enrolled (phone `PHONE`, two-step sign-in on) and served by two
/// `TwoFactor` instances on one store, as two app servers would be.
struct Env {
    /// The store as the instances see it (shared).
    store: Arc<dyn Store>,
    gateway: RecordingGateway,
    clock: ManualClock,
    events: RecordingEvents,
    a: TwoFactor,
    b: TwoFactor,
    recovery: Vec<String>,
}

/// An instance on `store`; instances of one test share the keys, the
/// clock and the gateway.
fn instance(
    store: Arc<dyn Store>,
    gateway: &RecordingGateway,
    clock: &ManualClock,
    events: &RecordingEvents,
    seed: u64,
) -> TwoFactor {
    two_factor("Example", store, gateway, clock, seed)
        .events(Arc::new(events.clone()))
        .limits(no_send_limits())
        .link_base(BASE)
        .build()
        .expect("a service")
}

/// taro enrolled on `a` (what instance `a` uses) with `b` a second
/// instance on `b_store` (the same data through another connection, or
/// the same handle).
async fn env_on(store: Arc<dyn Store>, b_store: Arc<dyn Store>) -> Env {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).expect("a valid instant");
    let events = RecordingEvents::new();
    let a = instance(store.clone(), &gateway, &clock, &events, 31);
    let b = instance(b_store, &gateway, &clock, &events, 32);
    let recovery = enrol(&a, &gateway, &taro()).await;
    Env {
        store,
        gateway,
        clock,
        events,
        a,
        b,
        recovery,
    }
}

/// [`env_on`] a fresh `MemoryStore`, every call yielding.
async fn memory_env() -> Env {
    let store: Arc<dyn Store> = Arc::new(Yielding(Arc::new(MemoryStore::new())));
    env_on(store.clone(), store).await
}

/// [`env_on`] a `Gated` memory store (returned too, to arm its gate).
async fn gated_env() -> (Env, Arc<Gated>) {
    let gated = Arc::new(Gated {
        inner: Arc::new(MemoryStore::new()),
        gate: Gate::default(),
    });
    let env = env_on(gated.clone(), gated.clone()).await;
    (env, gated)
}

impl Env {
    /// Instance `a` or `b` by the task's index.
    fn by(&self, i: usize) -> TwoFactor {
        if i.is_multiple_of(2) {
            self.a.clone()
        } else {
            self.b.clone()
        }
    }

    async fn method(&self, kind: MethodKind) -> Method {
        let methods = match self.a.sign_in_begin(&taro(), None).await.unwrap() {
            SignInStart::Required { methods } => methods,
            other => panic!("two-step sign-in is on: {other:?}"),
        };
        methods
            .into_iter()
            .find(|m| m.kind == kind)
            .unwrap_or_else(|| panic!("a {kind:?} method"))
    }

    /// A sign-in code sent by SMS: its challenge and the code.
    async fn sms_code(&self) -> (ChallengeId, String) {
        let sms = self.method(MethodKind::Sms).await;
        let ticket = self
            .a
            .sign_in_send_code(&taro(), &sms, None, None)
            .await
            .unwrap();
        (ticket.challenge_id, secret_to(&self.gateway, PHONE))
    }

    /// A fresh step-up (an SMS sign-in, no device).
    async fn step_up(&self) -> ninsho::service::StepUp {
        let (challenge, code) = self.sms_code().await;
        self.a
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
            .unwrap()
            .step_up
    }

    /// Sets up an authenticator app for taro; the app, with the clock
    /// moved past the step that confirmed it.
    async fn app(&self) -> Totp {
        let step_up = self.step_up().await;
        let setup = self
            .a
            .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
            .await
            .unwrap();
        let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
        let code = app_code(&app, &self.clock, 0);
        self.a.authenticator_confirm(&taro(), &code).await.unwrap();
        self.clock.advance(Duration::minutes(2));
        app
    }

    /// taro's failure run now (0: none).
    async fn run(&self) -> u32 {
        self.store
            .failures(&taro())
            .await
            .unwrap()
            .map_or(0, |r| r.consecutive)
    }

    /// Puts `consecutive` failures on record, an hour old.
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
}

/// The authenticator's code `steps` steps from now.
fn app_code(app: &Totp, clock: &ManualClock, steps: i64) -> String {
    let at = ninsho::clock::unix_seconds(clock.now()).saturating_add_signed(steps * 30);
    app.code_at(at).to_string()
}

/// A six-digit code that is none of `avoid`, numbered `i`.
fn wrong_code(i: usize, avoid: &[&str]) -> String {
    (0..)
        .map(|n: usize| format!("{:06}", (100_003 + i * 7_919 + n * 104_729) % 1_000_000))
        .find(|c| !avoid.contains(&c.as_str()))
        .expect("a wrong code")
}

/// The token of a sign-in's trusted device.
fn token_of(signed: &SignedIn) -> String {
    signed
        .device
        .as_ref()
        .expect("a trusted device")
        .0
        .expose_secret()
        .to_owned()
}

/// A fresh account on a `Faulty` memory store, for one sweep case.
async fn faulty_env() -> (Env, Arc<Faulty>) {
    let faulty = Arc::new(Faulty::new(Arc::new(MemoryStore::new())));
    let env = env_on(faulty.clone(), faulty.clone()).await;
    (env, faulty)
}

/// What a guess answered: compared with the secret, refused before any
/// comparison (locked), or anything else (a bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Compared,
    Locked,
}

#[track_caller]
fn answer<T: std::fmt::Debug>(what: &str, result: &Result<T, Error>) -> Answer {
    match result {
        Err(Error::Refused(Refusal::Account(AccountRefusal::Locked { .. }))) => Answer::Locked,
        Err(Error::Refused(Refusal::Code(CodeRefusal::WrongCode { .. }))) => Answer::Compared,
        other => panic!("{what}: a wrong guess answered {other:?}"),
    }
}

// ============================================================== findings

// -------------------------------------------------------------- finding 1

// ============================================================== findings

// -------------------------------------------------------------- finding 1

/// Whether a sign-in answer vouches for the account as it is now: a device
/// token that skips its second step, or a step-up proof it accepts.
async fn vouches(env: &Env, answer: &Result<SignedIn, Error>) -> Vec<String> {
    let mut vouching = Vec::new();
    let Ok(signed) = answer else {
        return vouching;
    };
    if let Some((token, _)) = &signed.device {
        let begin = env
            .a
            .sign_in_begin(&taro(), Some(token.expose_secret()))
            .await
            .unwrap();
        if matches!(begin, SignInStart::NotNeeded(_)) {
            vouching.push(format!(
                "its device token skips the second step ({begin:?})"
            ));
        }
    }
    if env.a.check_step_up(&taro(), &signed.step_up).await.is_ok() {
        vouching.push("its step-up proof is accepted".to_owned());
    }
    let devices = env.a.devices(&taro()).await.unwrap();
    if !devices.is_empty() {
        vouching.push(format!("the new account lists {} device(s)", devices.len()));
    }
    vouching
}

/// The id is taken again while a retry is held at its commit: the old
/// account is deleted and the new holder turns two-step sign-in on.
async fn recreate(env: &Env) {
    env.b.delete_account(&taro()).await.unwrap();
    enrol(&env.b, &env.gateway, &taro()).await;
}

/// An authenticator sign-in retried by the attempt that made it (its reply
/// was lost) takes the retry path: the record is left as it is, so its
/// commit wrote only the failure run, without checking the record the
/// retry was decided on, and the device went in afterwards with an insert
/// of its own. Held at that commit while the account is deleted and made
/// again under the same id, the retry went on to sign in, and its device
/// (trusted at epoch 0, after the new record's creation) and its step-up
/// vouched for the new account: what finding 3 of `review_port_v2.rs`
/// closed for a first sign-in, open again for its retry.
///
/// Fixed: a commit of `AccountGuessSlot` that does not write the record
/// checks it (`RecordCheck`), and the retry trusts its device in that
/// commit; the retry now finds the new record, with no authenticator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_1_an_authenticator_retry_racing_a_new_account_of_the_same_id_vouches_for_it() {
    let (env, gated) = gated_env().await;
    let app = env.app().await;
    let code = app_code(&app, &env.clock, 0);
    let attempt = env.a.new_attempt().unwrap();
    // The first try lands; its reply is lost on the way to the browser.
    env.a
        .sign_in_complete(
            &taro(),
            Proof::Authenticator { code: &code },
            None,
            Some(&attempt),
        )
        .await
        .unwrap();

    let (at_commit, go) = gated.gate.arm(Call::Commit);
    let service = env.a.clone();
    let retry = tokio::spawn(async move {
        service
            .sign_in_complete(
                &taro(),
                Proof::Authenticator { code: &code },
                Some("old laptop"),
                Some(&attempt),
            )
            .await
    });
    reached(at_commit).await;
    recreate(&env).await;
    go.send(()).unwrap();
    let retried = retry.await.unwrap();

    let vouching = vouches(&env, &retried).await;
    assert!(
        vouching.is_empty(),
        "a retry of the deleted account's sign-in vouches for the new one: {}",
        vouching.join("; ")
    );
}

/// The same race with a recovery code's retry (the same slot): it must
/// not vouch for the new account either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_1_a_recovery_code_retry_racing_a_new_account_of_the_same_id_vouches_for_it() {
    let (env, gated) = gated_env().await;
    let code = env.recovery[0].clone();
    let attempt = env.a.new_attempt().unwrap();
    env.a
        .sign_in_complete(
            &taro(),
            Proof::RecoveryCode { code: &code },
            None,
            Some(&attempt),
        )
        .await
        .unwrap();

    let (at_commit, go) = gated.gate.arm(Call::Commit);
    let service = env.a.clone();
    let retry = tokio::spawn(async move {
        service
            .sign_in_complete(
                &taro(),
                Proof::RecoveryCode { code: &code },
                Some("old laptop"),
                Some(&attempt),
            )
            .await
    });
    reached(at_commit).await;
    recreate(&env).await;
    go.send(()).unwrap();
    let retried = retry.await.unwrap();

    let vouching = vouches(&env, &retried).await;
    assert!(
        vouching.is_empty(),
        "a retry of the deleted account's sign-in vouches for the new one: {}",
        vouching.join("; ")
    );
}

// -------------------------------------------------------------- finding 2

/// `Standing` revokes what was issued before the record's `created_at`,
/// comparing instants stamped by different clocks: the record's by the
/// instance that created it, a device's (and a step-up proof's) by the
/// instance that signed in. With the second instance's clock a second
/// behind, a device trusted right after the account was made is revoked at
/// once, and the step-up that came with it refused. (Before `Standing` the
/// epoch alone was compared, and skew did not matter.) Low: it needs a
/// sign-in within the skew of the record's creation, but then the user's
/// "trust this device" silently does nothing.
#[tokio::test]
#[ignore = "finding 2: Standing compares created_at stamped by different instances' clocks"]
async fn finding_2_a_device_trusted_on_an_instance_a_second_behind_is_revoked_at_once() {
    let gateway = RecordingGateway::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let events = RecordingEvents::new();
    let clock = ManualClock::at_unix(T0).expect("a valid instant");
    let behind = ManualClock::at_unix(T0 - 1).expect("a valid instant");
    let a = instance(store.clone(), &gateway, &clock, &events, 41);
    let b = instance(store, &gateway, &behind, &events, 42);
    enrol(&a, &gateway, &taro()).await;
    let signed = support::sms_sign_in(&b, &gateway, &taro(), Some("laptop")).await;
    clock.advance(Duration::seconds(5));
    behind.advance(Duration::seconds(5));
    let check = a.check_device(&taro(), &token_of(&signed)).await.unwrap();
    assert!(
        matches!(check, DeviceCheck::Valid { .. }),
        "a device trusted after the record was made answers {check:?}"
    );
    a.check_step_up(&taro(), &signed.step_up).await.unwrap();
}

// ================================================================= holds

// --------------------------------------------------------- authenticator

/// One authenticator code raced by many attempts across two instances,
/// each trusting its device: one signs in, with one device, trusted in its
/// commit and reported once; every loser that compared the code was
/// refused as used and counted once, the rest refused as locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_one_authenticator_code_signs_in_once_across_instances() {
    let env = memory_env().await;
    let app = env.app().await;
    let code = app_code(&app, &env.clock, 0);
    let trusted_before = trusted_events(&env);
    let attempts: Vec<SignInAttempt> = (0..TASKS).map(|_| env.a.new_attempt().unwrap()).collect();
    let attempts = Arc::new(attempts);
    let outcomes = race(|i| {
        let service = env.by(i);
        let code = code.clone();
        let attempts = attempts.clone();
        async move {
            service
                .sign_in_complete(
                    &taro(),
                    Proof::Authenticator { code: &code },
                    Some("racer"),
                    Some(&attempts[i]),
                )
                .await
        }
    })
    .await;
    let winners: Vec<&SignedIn> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one sign-in");
    let mut used = 0;
    for r in &outcomes {
        match r {
            Ok(_) => {}
            Err(Error::Refused(Refusal::Code(CodeRefusal::AlreadyUsed))) => used += 1,
            Err(Error::Refused(Refusal::Account(AccountRefusal::Locked { .. }))) => {}
            Err(e) => panic!("a loser answered {e:?}"),
        }
    }
    assert_eq!(env.run().await, used, "each loser compared is counted once");
    assert!(used <= FailurePolicy::default().free_failures);
    assert!(matches!(
        env.a
            .check_device(&taro(), &token_of(winners[0]))
            .await
            .unwrap(),
        DeviceCheck::Valid { .. }
    ));
    assert_eq!(env.a.devices(&taro()).await.unwrap().len(), 1);
    assert_eq!(trusted_events(&env) - trusted_before, 1);
    env.a
        .check_step_up(&taro(), &winners[0].step_up)
        .await
        .unwrap();
}

fn trusted_events(env: &Env) -> usize {
    env.events
        .events()
        .iter()
        .filter(|e| matches!(e, Event::DeviceTrusted { .. }))
        .count()
}

/// The authenticator is removed (or replaced) while a right code's commit
/// is held: the commit is refused on the record it was decided on, and the
/// code decided again on the record as it is signs nothing in, trusts
/// nothing and counts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_an_authenticator_removed_or_replaced_before_the_commit_signs_nothing_in() {
    for replace in [false, true] {
        let (env, gated) = gated_env().await;
        let app = env.app().await;
        let code = app_code(&app, &env.clock, 0);
        let step_up = env.step_up().await;

        let (at_commit, go) = gated.gate.arm(Call::Commit);
        let service = env.a.clone();
        let code_in = code.clone();
        let signing_in = tokio::spawn(async move {
            service
                .sign_in_complete(
                    &taro(),
                    Proof::Authenticator { code: &code_in },
                    Some("laptop"),
                    None,
                )
                .await
        });
        reached(at_commit).await;
        env.b.authenticator_remove(&taro(), &step_up).await.unwrap();
        if replace {
            // A fresh step-up: removing the app moved the epoch on.
            let step_up = env.step_up().await;
            let setup = env
                .b
                .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
                .await
                .unwrap();
            let new_app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
            env.b
                .authenticator_confirm(&taro(), &app_code(&new_app, &env.clock, 0))
                .await
                .unwrap();
        }
        go.send(()).unwrap();
        let answer = signing_in.await.unwrap();
        assert!(
            matches!(
                answer,
                Err(Error::Refused(Refusal::Code(CodeRefusal::Unknown)))
            ),
            "replace {replace}: the old app's code answered {answer:?}"
        );
        assert!(env.a.devices(&taro()).await.unwrap().is_empty());
        assert_eq!(env.run().await, 0);
        if replace {
            // The old app's code is still nothing to the new one.
            let again = env
                .a
                .sign_in_complete(&taro(), Proof::Authenticator { code: &code }, None, None)
                .await;
            assert!(again.is_err(), "the old app's code signs in: {again:?}");
        }
    }
}

/// One authenticator sign-in (right code, a device to trust, an attempt)
/// with store call `n` failing in `mode`; then the same attempt again,
/// without a fault. Checks that the retry signs in with a device that is
/// valid, the run ends, and the code is spent for any other attempt.
async fn app_sign_in_under_fault(n: u32, mode: Mode) -> Result<usize, String> {
    let (env, faulty) = faulty_env().await;
    let app = env.app().await;
    let code = app_code(&app, &env.clock, 0);
    env.put_failures(1).await;
    let attempt = env.a.new_attempt().unwrap();
    let complete = |service: &TwoFactor, attempt: SignInAttempt| {
        let service = service.clone();
        let code = code.clone();
        async move {
            service
                .sign_in_complete(
                    &taro(),
                    Proof::Authenticator { code: &code },
                    Some("laptop"),
                    Some(&attempt),
                )
                .await
        }
    };
    faulty.arm(n, mode);
    let first = complete(&env.a, attempt.clone()).await;
    let calls = faulty.take().len();
    faulty.arm(0, Mode::FailBefore);
    if n == 0 && first.is_err() {
        return Err(format!("without a fault: {first:?}"));
    }
    let retried = match complete(&env.b, attempt).await {
        Ok(signed) => signed,
        Err(e) => return Err(format!("the retry failed: {e:?} (first: {first:?})")),
    };
    match env.a.check_device(&taro(), &token_of(&retried)).await {
        Ok(DeviceCheck::Valid { .. }) => {}
        other => return Err(format!("the retry's device answers {other:?}")),
    }
    if env
        .a
        .check_step_up(&taro(), &retried.step_up)
        .await
        .is_err()
    {
        return Err("the retry's step-up is refused".to_owned());
    }
    if env.run().await != 0 {
        return Err("the sign-in did not end the run".to_owned());
    }
    let other = env.a.new_attempt().unwrap();
    match complete(&env.a, other).await {
        Err(Error::Refused(Refusal::Code(CodeRefusal::AlreadyUsed))) => {}
        other => return Err(format!("another attempt with the code answered {other:?}")),
    }
    Ok(calls)
}

/// A wrong authenticator code with store call `n` failing in `mode`: it is
/// counted once or not at all, and trusts nothing.
async fn app_wrong_code_under_fault(n: u32, mode: Mode) -> Result<usize, String> {
    let (env, faulty) = faulty_env().await;
    let app = env.app().await;
    let near: Vec<String> = (-2..=2).map(|s| app_code(&app, &env.clock, s)).collect();
    let near: Vec<&str> = near.iter().map(String::as_str).collect();
    let guess = wrong_code(3, &near);
    env.put_failures(1).await;
    faulty.arm(n, mode);
    let result = env
        .a
        .sign_in_complete(
            &taro(),
            Proof::Authenticator { code: &guess },
            Some("laptop"),
            None,
        )
        .await;
    let calls = faulty.take().len();
    faulty.arm(0, Mode::FailBefore);
    let run = env.run().await;
    let counted_once = if n == 0 {
        run == 2
    } else {
        matches!(run, 1 | 2)
    };
    if !counted_once {
        return Err(format!(
            "the run is {run} after one guess from 1 ({result:?})"
        ));
    }
    if !env.a.devices(&taro()).await.unwrap().is_empty() {
        return Err("a wrong code trusted a device".to_owned());
    }
    Ok(calls)
}

/// Every store call of an authenticator sign-in failing, before it lands
/// or with its reply lost: a wrong code is counted at most once; a right
/// one, retried by its attempt, signs in with a valid device and proof,
/// and its code is spent for everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_an_authenticator_sign_in_under_a_failing_call_counts_once_and_retries() {
    let mut broken = Vec::new();
    let calls = app_sign_in_under_fault(0, Mode::FailBefore)
        .await
        .unwrap_or_else(|why| panic!("right code without a fault: {why}"));
    assert_eq!(calls, 2, "one load and one commit");
    let wrong_calls = app_wrong_code_under_fault(0, Mode::FailBefore)
        .await
        .unwrap_or_else(|why| panic!("wrong code without a fault: {why}"));
    assert_eq!(wrong_calls, 2, "one load and one commit");
    for n in 1..=2 {
        for mode in [Mode::FailBefore, Mode::LostReply] {
            if let Err(why) = app_sign_in_under_fault(n, mode).await {
                broken.push(format!("right code, call {n}, {mode:?}: {why}"));
            }
            if let Err(why) = app_wrong_code_under_fault(n, mode).await {
                broken.push(format!("wrong code, call {n}, {mode:?}: {why}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

/// Events of authenticator sign-ins: each wrong code one `Failed`, the one
/// that locks the account one `Locked`; refused while locked, nothing
/// counted; a right code with a device one `DeviceTrusted`.
#[tokio::test]
async fn holds_authenticator_events_are_reported_once_each() {
    let env = memory_env().await;
    let app = env.app().await;
    let near: Vec<String> = (-2..=2).map(|s| app_code(&app, &env.clock, s)).collect();
    let near: Vec<&str> = near.iter().map(String::as_str).collect();
    let from = env.events.events().len();
    let free = FailurePolicy::default().free_failures;
    for i in 0..usize::try_from(free).unwrap() {
        let guess = wrong_code(i, &near);
        let r = env
            .a
            .sign_in_complete(&taro(), Proof::Authenticator { code: &guess }, None, None)
            .await;
        assert_eq!(answer("wrong app code", &r), Answer::Compared);
    }
    let locked = env
        .b
        .sign_in_complete(
            &taro(),
            Proof::Authenticator {
                code: &app_code(&app, &env.clock, 0),
            },
            Some("laptop"),
            None,
        )
        .await;
    assert_eq!(answer("right code while locked", &locked), Answer::Locked);
    assert_eq!(env.run().await, free);
    let events = env.events.events()[from..].to_vec();
    let failed = events
        .iter()
        .filter(|e| matches!(e, Event::Failed { reason: Refusal::Code(CodeRefusal::WrongCode { .. }), account: Some(a), .. } if *a == taro()))
        .count();
    let locks: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Locked { consecutive, .. } => Some(*consecutive),
            _ => None,
        })
        .collect();
    assert_eq!(failed, usize::try_from(free).unwrap(), "{events:?}");
    assert_eq!(locks, vec![free], "{events:?}");
    assert_eq!(trusted_events(&env), 0);

    env.clock.advance(Duration::seconds(2));
    let from = env.events.events().len();
    let signed = env
        .a
        .sign_in_complete(
            &taro(),
            Proof::Authenticator {
                code: &app_code(&app, &env.clock, 0),
            },
            Some("laptop"),
            None,
        )
        .await
        .unwrap();
    assert!(!signed.trust_failed);
    let events = env.events.events()[from..].to_vec();
    let trusted: Vec<&Event> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::DeviceTrusted { .. } | Event::DeviceTrustFailed { .. }
            )
        })
        .collect();
    assert_eq!(trusted.len(), 1, "{events:?}");
    assert!(matches!(
        trusted[0],
        Event::DeviceTrusted { device, .. } if *device == signed.device.as_ref().unwrap().1.id
    ));
    assert_eq!(env.run().await, 0);
}

// ----------------------------------------------------------------- links

/// A link for taro, sent through instance `a`: its token and challenge.
async fn link_token(env: &Env) -> (String, ChallengeId) {
    let link = env.method(MethodKind::Link).await;
    let ticket = env
        .a
        .sign_in_send_link(&taro(), &link, "Firefox on Linux", None, None)
        .await
        .unwrap();
    let url = secret_to(&env.gateway, PHONE);
    let token = url.strip_prefix(BASE).expect("a link URL").to_owned();
    (token, ticket.challenge_id)
}

/// A token for the same link with the secret's last character changed:
/// well formed, wrong.
fn wrong_token(token: &str, i: usize) -> String {
    let (id, secret) = token.split_once('.').unwrap();
    let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = secret.as_bytes().to_vec();
    // The first character carries no spare bits: any change is another
    // secret.
    let current = bytes[0];
    let pick = alphabet
        .iter()
        .copied()
        .filter(|c| *c != current)
        .nth(i % 31)
        .unwrap();
    bytes[0] = pick;
    format!("{id}.{}", String::from_utf8(bytes).unwrap())
}

/// Wrong tokens for one account's link, raced across two instances: the
/// back-off's free failures are compared and counted, each exactly once,
/// the rest refused as locked; the right token opened while the account
/// is locked is refused as locked too, and opens once the back-off ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_racing_wrong_link_tokens_are_counted_once_and_a_locked_account_is_refused() {
    let env = memory_env().await;
    let (token, _) = link_token(&env).await;
    let outcomes = race(|i| {
        let service = env.by(i);
        let guess = wrong_token(&token, i);
        async move {
            match service.open_link(&guess).await {
                Err(Error::Refused(Refusal::Code(CodeRefusal::Unknown))) => Answer::Compared,
                Err(Error::Refused(Refusal::Account(AccountRefusal::Locked { .. }))) => {
                    Answer::Locked
                }
                other => panic!("a wrong token answered {other:?}"),
            }
        }
    })
    .await;
    let compared = outcomes.iter().filter(|a| **a == Answer::Compared).count();
    let free = FailurePolicy::default().free_failures;
    assert_eq!(u32::try_from(compared).unwrap(), free);
    assert_eq!(env.run().await, free);
    let locks = env
        .events
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Locked { .. }))
        .count();
    assert_eq!(locks, 1, "one lockout reported");

    for service in [&env.a, &env.b] {
        let opened = service.open_link(&token).await;
        assert!(
            matches!(
                opened,
                Err(Error::Refused(Refusal::Account(
                    AccountRefusal::Locked { .. }
                )))
            ),
            "the right token of a locked account answered {opened:?}"
        );
        let approved = service.approve_link(&token).await;
        assert!(matches!(
            approved,
            Err(Error::Refused(Refusal::Account(
                AccountRefusal::Locked { .. }
            )))
        ));
    }
    assert_eq!(env.run().await, free, "refused tokens are not counted");
    env.clock.advance(Duration::seconds(2));
    env.b.open_link(&token).await.unwrap();
    assert_eq!(env.run().await, free, "a right token counts nothing");
    env.a.approve_link(&token).await.unwrap();
}

// --------------------------------------------------------------- standing

/// `purge_devices` after an account was made again under the same id:
/// the devices left from the deleted record go, the new record's own
/// (trusted at the very instant the new record was made) stay and work.
#[tokio::test]
async fn holds_purge_keeps_the_new_records_devices_and_drops_the_old_ones() {
    let env = memory_env().await;
    let old = support::sms_sign_in(&env.a, &env.gateway, &taro(), Some("old")).await;
    // What a delete_account cut off after its first write leaves.
    env.store.delete_account(&taro()).await.unwrap();
    env.clock.advance(Duration::minutes(1));
    enrol(&env.b, &env.gateway, &taro()).await;
    // The same instant as the new record's creation.
    let new = support::sms_sign_in(&env.b, &env.gateway, &taro(), Some("new")).await;
    assert_eq!(env.store.devices(&taro()).await.unwrap().len(), 2);
    assert_eq!(env.a.devices(&taro()).await.unwrap().len(), 1);
    assert_eq!(env.a.purge_devices(&taro()).await.unwrap(), 1);
    assert_eq!(env.store.devices(&taro()).await.unwrap().len(), 1);
    assert_eq!(
        env.a.check_device(&taro(), &token_of(&old)).await.unwrap(),
        DeviceCheck::Unknown
    );
    assert!(matches!(
        env.a.check_device(&taro(), &token_of(&new)).await.unwrap(),
        DeviceCheck::Valid { .. }
    ));
    env.a.check_step_up(&taro(), &new.step_up).await.unwrap();
    assert!(env.a.check_step_up(&taro(), &old.step_up).await.is_err());
}
