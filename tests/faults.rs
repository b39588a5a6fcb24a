//! Fault injection over every multi-write journey (DESIGN.md rule 9,
//! issue 11 item 5): a failure after a secret is consumed never leaves the
//! user both signed out and without that secret; "trust this device" is
//! reported, not fatal; and every journey leaves the account whole —
//! changed completely or not at all — whichever store call fails.
//!
//! `Faulty` wraps a shared `MemoryStore`, records the calls of one journey
//! step and fails call N in one of two ways: `FailBefore` (the call never
//! reaches the store) or `LostReply` (a state-changing call lands, then its
//! reply is lost: the host sees an error although the write happened;
//! reads are not swept in this mode). Each journey runs once without a
//! fault to count the step's calls (K); then, for every N in 1..=K and
//! every mode, again on a fresh store: the account is set up without
//! faults, the fault is armed for the step only, and afterwards
//!
//! - the account is whole (every fact of the change changed, or none);
//! - if the step failed, a retry with the same inputs — for a sign-in, the
//!   same proof from the same `SignInAttempt` — ends where a run without
//!   faults ends: it must succeed when nothing had landed;
//! - once done, the step is done once: a sign-in proof replayed from
//!   another attempt (or none) is refused as already used, and any other
//!   step repeated is refused.
//!
//! Journeys: sign-in by recovery code, SMS code, authenticator code and
//! one-time link, each trusting the device; two-step sign-in off; a phone
//! change with two-step sign-in on and off; the first phone confirmed with
//! two-step sign-in turned on; an email added; sign-up (the last code, and
//! completion); an authenticator confirmed (first app, replacing one) and
//! removed; finding the account by a contact.
//!
//! Each journey is one test, and reports every broken case at once, each
//! named by journey, N, mode and store call, with the state it left.

mod support;

use ninsho::CodeRefusal;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ninsho::device::DeviceCheck;
use ninsho::gateway::RecordingGateway;
use ninsho::limits::{FailurePolicy, RateLimit, SendLimits};
use ninsho::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, ChallengeState, ContactEntry,
    Destination, DeviceId, DeviceRecord, FailureRecord, VerificationId, VerificationRecord,
};
use ninsho::otp::Totp;
use ninsho::service::{MethodKind, Proof, SignInAttempt, SignedIn, TwoFactor};
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ClaimChanges, Commit, Committed, DeviceStore,
    LimitStore, Load, Loaded, MemoryStore, PurgeStore, Purged, StepStore, StoreError,
    VerificationStore, WindowCount,
};
use ninsho::{Clock, Error, ManualClock, Refusal};
use support::{BASE, PHONE, T0, secret_to, two_factor};
use time::{Duration, OffsetDateTime};

/// The label of the device trusted by the step.
const LABEL: &str = "Firefox on Linux";
/// The label of a device trusted before the step.
const OLD_DEVICE: &str = "Old laptop";
/// `PHONE` as the user types it.
const TYPED: &str = "090-1234-5678";
/// The number a phone is changed to, as typed and in E.164.
const NEW_TYPED: &str = "080-1111-2222";
const NEW_PHONE: &str = "+818011112222";
const EMAIL: &str = "taro@example.com";

fn taro() -> AccountId {
    AccountId::new("taro")
}

// ------------------------------------------------------------ the wrapper

/// How the armed call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The call never reaches the store.
    FailBefore,
    /// A state-changing call lands, then its reply is lost. Reads pass.
    LostReply,
}

/// Fail call `n` (from 1) of the step, this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    n: usize,
    mode: Mode,
}

/// One store call: its method, and whether it changes state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Call {
    name: &'static str,
    writes: bool,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

#[derive(Debug, Default)]
struct Tape {
    /// Whether a step is running (only its calls are counted).
    recording: bool,
    calls: Vec<Call>,
    fault: Option<Fault>,
    /// The call the fault hit.
    fired: Option<Call>,
}

/// A shared `MemoryStore` that records the calls of a step and fails the
/// armed one.
#[derive(Debug)]
struct Faulty {
    inner: Arc<MemoryStore>,
    tape: Mutex<Tape>,
}

impl Faulty {
    fn new(inner: Arc<MemoryStore>) -> Self {
        Self {
            inner,
            tape: Mutex::new(Tape::default()),
        }
    }

    fn tape(&self) -> std::sync::MutexGuard<'_, Tape> {
        self.tape.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a step: counts its calls from 1 and fails call `fault.n`.
    fn arm(&self, fault: Option<Fault>) {
        *self.tape() = Tape {
            recording: true,
            calls: Vec::new(),
            fault,
            fired: None,
        };
    }

    /// Ends the step; its calls stay readable.
    fn disarm(&self) {
        self.tape().recording = false;
    }

    /// The calls of the last step.
    fn calls(&self) -> Vec<Call> {
        self.tape().calls.clone()
    }

    /// The call the fault hit, if it fired.
    fn fired(&self) -> Option<Call> {
        self.tape().fired
    }

    /// Counts a call; how it must fail, if it is the armed one.
    fn tick(&self, name: &'static str, writes: bool) -> Option<Mode> {
        let mut tape = self.tape();
        if !tape.recording {
            return None;
        }
        let call = Call { name, writes };
        tape.calls.push(call);
        match tape.fault {
            Some(f) if f.n == tape.calls.len() && (f.mode == Mode::FailBefore || writes) => {
                tape.fired = Some(call);
                Some(f.mode)
            }
            _ => None,
        }
    }

    async fn read<T>(
        &self,
        name: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.tick(name, false) {
            Some(Mode::FailBefore) => Err(injected_fault(name)),
            _ => call.await,
        }
    }

    async fn write<T>(
        &self,
        name: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.tick(name, true) {
            Some(Mode::FailBefore) => Err(injected_fault(name)),
            Some(Mode::LostReply) => {
                // The write lands; the answer never comes back.
                let _landed = call.await;
                Err(injected_fault(name))
            }
            None => call.await,
        }
    }
}

fn injected_fault(name: &str) -> StoreError {
    StoreError::unavailable(format!("injected fault at {name}"))
}

#[async_trait]
impl ChallengeStore for Faulty {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        let call = self.inner.insert_challenge(record);
        self.write("insert_challenge", call).await
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
        let call = self.inner.clear_failures(account);
        self.write("clear_failures", call).await
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
        let call = self.inner.delete_device(account, id);
        self.write("delete_device", call).await
    }
    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        let call = self.inner.delete_devices(account);
        self.write("delete_devices", call).await
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
        let call = self.inner.delete_account(account);
        self.write("delete_account", call).await
    }
}

#[async_trait]
impl PurgeStore for Faulty {
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError> {
        let call = self.inner.purge(before);
        self.write("purge", call).await
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

// ---------------------------------------------------------------- the sweep

/// A case's verdict: `Err` says what broke.
type Verdict = Result<(), String>;

/// Returns early from a case with the message when `cond` is false.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

/// Runs `case` once without a fault to count the step's store calls, then
/// once per call and mode with that call failing, each on a fresh store.
/// Panics with every broken case.
async fn sweep<F, Fut>(journey: &str, case: F)
where
    F: Fn(Env, Option<Fault>) -> Fut,
    Fut: Future<Output = Verdict> + Send + 'static,
{
    let env = Env::new();
    let faulty = env.faulty.clone();
    if let Err(why) = run(case(env, None)).await {
        panic!("{journey}: the run without a fault fails: {why}");
    }
    let calls = faulty.calls();
    assert!(!calls.is_empty(), "{journey}: the step makes no store call");
    let k = calls.len();
    let mut broken = Vec::new();
    let mut runs = 0;
    for (i, &call) in calls.iter().enumerate() {
        for mode in [Mode::FailBefore, Mode::LostReply] {
            if mode == Mode::LostReply && !call.writes {
                continue; // a read's lost reply is a failed read
            }
            runs += 1;
            let n = i + 1;
            let env = Env::new();
            let faulty = env.faulty.clone();
            let mut verdict = run(case(env, Some(Fault { n, mode }))).await;
            let fired = faulty.fired();
            if fired != Some(call) {
                let and = verdict.err().map(|why| format!("; and {why}"));
                verdict = Err(format!(
                    "the fault meant for {call} hit {fired:?}: the step's calls changed{}",
                    and.unwrap_or_default()
                ));
            }
            if let Err(why) = verdict {
                broken.push(format!("{journey}, N={n} of {k}, {mode:?}, {call}: {why}"));
            }
        }
    }
    let names: Vec<&str> = calls.iter().map(|c| c.name).collect();
    assert!(
        broken.is_empty(),
        "{journey}: {} of {runs} faulted runs break rule 9 (the step's calls: {})\n{}",
        broken.len(),
        names.join(", "),
        broken.join("\n"),
    );
}

/// Runs a case on its own task, so a panic is reported as its verdict.
async fn run(case: impl Future<Output = Verdict> + Send + 'static) -> Verdict {
    match tokio::spawn(case).await {
        Ok(verdict) => verdict,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Err(format!("panicked: {message}"))
        }
        Err(e) => Err(format!("the case was cancelled: {e}")),
    }
}

// ------------------------------------------------------------ environment

#[derive(Clone)]
struct Env {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
    /// The store itself, to read what landed without counting calls.
    store: Arc<MemoryStore>,
    faulty: Arc<Faulty>,
}

impl Env {
    /// A service on a fresh store through `Faulty`, with send limits and
    /// the back-off out of the way (the sweep is not about them).
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let faulty = Arc::new(Faulty::new(store.clone()));
        let gateway = RecordingGateway::new();
        let clock = ManualClock::at_unix(T0).unwrap();
        let lots = RateLimit::new(1_000_000, Duration::minutes(10));
        let service = two_factor("Example", faulty.clone(), &gateway, &clock, 17)
            .limits(SendLimits {
                per_destination: lots,
                per_account: lots,
                per_caller: lots,
                countries: Vec::new(),
                other_countries: None,
            })
            .failure_policy(FailurePolicy {
                free_failures: 50,
                ..FailurePolicy::default()
            })
            .link_base(BASE)
            .build()
            .unwrap();
        Self {
            service,
            gateway,
            clock,
            store,
            faulty,
        }
    }

    /// Registers `PHONE` (turning two-step sign-in on with it, when
    /// `enable`); the recovery codes, if any.
    async fn register_phone(&self, enable: bool) -> Vec<String> {
        let ticket = self
            .service
            .phone_send_code(&taro(), TYPED, None, None)
            .await
            .unwrap();
        let done = self
            .service
            .phone_confirm(
                &taro(),
                &ticket.challenge_id,
                &secret_to(&self.gateway, PHONE),
                enable,
            )
            .await
            .unwrap();
        done.recovery_codes
            .map(|codes| {
                codes
                    .expose_secret()
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Taro with `PHONE` and two-step sign-in on; his recovery codes.
    async fn two_step_on(&self) -> Vec<String> {
        self.register_phone(true).await
    }

    fn attempt(&self) -> SignInAttempt {
        self.service.new_attempt().unwrap()
    }

    async fn method(&self, kind: MethodKind) -> ninsho::service::Method {
        self.service
            .methods(&taro())
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} method"))
    }

    /// Signs in by SMS (trusting the device as `trust`).
    async fn sms_sign_in(&self, trust: Option<&str>) -> SignedIn {
        let sms = self.method(MethodKind::Sms).await;
        let ticket = self
            .service
            .sign_in_send_code(&taro(), &sms, None, None)
            .await
            .unwrap();
        self.service
            .sign_in_complete(
                &taro(),
                Proof::Code {
                    challenge: &ticket.challenge_id,
                    code: &secret_to(&self.gateway, PHONE),
                },
                trust,
                None,
            )
            .await
            .unwrap()
    }

    /// The app's code now.
    fn app_code(&self, app: &Totp) -> String {
        app.code_at(ninsho::clock::unix_seconds(self.clock.now()))
            .to_string()
    }

    /// Starts an authenticator setup (after a fresh SMS step-up).
    async fn start_app(&self) -> Totp {
        let step_up = self.sms_sign_in(None).await.step_up;
        let setup = self
            .service
            .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
            .await
            .unwrap();
        Totp::from_uri(setup.uri.expose_secret()).unwrap()
    }

    /// Sets up and confirms an authenticator app; the clock then moves to
    /// its next code.
    async fn add_app(&self) -> Totp {
        let app = self.start_app().await;
        self.service
            .authenticator_confirm(&taro(), &self.app_code(&app))
            .await
            .unwrap();
        self.clock.advance(Duration::seconds(30));
        app
    }

    /// Taro's record as stored (an empty one when there is none).
    async fn book(&self) -> Option<AccountRecord> {
        self.store.account_record(&taro()).await.unwrap()
    }

    async fn epoch(&self) -> u64 {
        self.book().await.map_or(0, |b| b.epoch)
    }

    async fn device_check(&self, token: &str) -> DeviceCheck {
        self.service.check_device(&taro(), token).await.unwrap()
    }

    /// Who holds the claim on an E.164 number.
    async fn owner(&self, key: &str) -> Option<AccountId> {
        self.store.claim_owner(key).await.unwrap()
    }

    /// What is stored, for failure messages.
    async fn snapshot(&self, challenge: Option<&ChallengeId>) -> String {
        let mut out = match self.book().await {
            None => "no account record".to_owned(),
            Some(b) => {
                let contacts: Vec<String> = b
                    .contacts
                    .iter()
                    .map(|c| {
                        format!(
                            "{}{}{}",
                            c.destination.limit_key(),
                            if c.is_verified() { "" } else { " unverified" },
                            if c.two_factor { " 2fa" } else { "" },
                        )
                    })
                    .collect();
                format!(
                    "epoch {}, two-step {}, recovery codes left {:?}, app {}, pending app {}, contacts [{}]",
                    b.epoch,
                    if b.factors.two_factor_since.is_some() {
                        "on"
                    } else {
                        "off"
                    },
                    b.factors.recovery.as_ref().map(|s| s.remaining()),
                    b.factors.authenticator.is_some(),
                    b.factors.pending_authenticator.is_some(),
                    contacts.join(", "),
                )
            }
        };
        if let Some(id) = challenge {
            let state = self
                .store
                .challenge(id)
                .await
                .unwrap()
                .map(|c| format!("{:?}", c.state));
            out.push_str(&format!(
                ", the step's challenge {}",
                state.unwrap_or_default()
            ));
        }
        out
    }
}

fn token_of(signed: &SignedIn) -> String {
    let (token, _) = signed.device.as_ref().expect("the device was trusted");
    token.expose_secret().to_owned()
}

fn refusal_of<T>(result: &Result<T, Error>) -> Option<Refusal> {
    match result {
        Err(Error::Refused(reason)) => Some(*reason),
        _ => None,
    }
}

/// An injected fault surfaces as a store error, never as a refusal (the
/// user did nothing wrong) or anything else.
fn injected(e: &Error) -> Verdict {
    match e {
        Error::Store(_) => Ok(()),
        other => Err(format!(
            "the fault surfaced as {other:?}, not as a store error"
        )),
    }
}

/// A description, shown as it is.
struct Plain(String);

impl fmt::Debug for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A contact entry as found.
fn contact(entry: Option<&ContactEntry>) -> Plain {
    Plain(
        match entry {
            None => "absent",
            Some(e) if !e.is_verified() => "unverified",
            Some(e) if e.two_factor => "verified, two-step role",
            Some(_) => "verified, no two-step role",
        }
        .to_owned(),
    )
}

/// Where a step that must land whole stands.
#[derive(Debug)]
enum Landed {
    /// Everything it changes changed.
    Yes,
    /// Nothing changed.
    No,
    /// Some of it: the facts as found.
    Half(String),
}

/// Facts about the account, each of which holds one way when the step
/// landed and another when it did not.
#[derive(Default)]
struct Facts(Vec<(&'static str, Option<bool>, String)>);

impl Facts {
    /// A fact: `landed` is what it looks like when the step landed,
    /// `not_landed` when it did not; `found` describes it.
    fn add(&mut self, name: &'static str, landed: bool, not_landed: bool, found: impl fmt::Debug) {
        let side = if landed {
            Some(true)
        } else if not_landed {
            Some(false)
        } else {
            None
        };
        self.0.push((name, side, format!("{found:?}")));
    }

    /// A fact that must hold whether or not the step landed.
    fn keep(&mut self, name: &'static str, holds: bool, found: impl fmt::Debug) {
        if !holds {
            self.0.push((name, None, format!("{found:?}")));
        }
    }

    fn landed(self) -> Landed {
        let sides: Vec<Option<bool>> = self.0.iter().map(|f| f.1).collect();
        if sides.iter().all(|s| *s == Some(true)) {
            Landed::Yes
        } else if sides.iter().all(|s| *s == Some(false)) {
            Landed::No
        } else {
            let described: Vec<String> = self
                .0
                .iter()
                .map(|(name, side, found)| {
                    let side = match side {
                        Some(true) => "changed",
                        Some(false) => "unchanged",
                        None => "neither",
                    };
                    format!("{name}: {side} ({found})")
                })
                .collect();
            Landed::Half(described.join("; "))
        }
    }
}

/// Checks a step that must land whole or not at all: after the first try
/// the account is whole; if the first try failed, a retry with the same
/// inputs must succeed when nothing had landed, and the account must end
/// changed; once changed, the same step again is refused (done once).
/// `answer` checks a successful step's answer.
async fn whole<T, S, SF, R, RF>(
    env: &Env,
    challenge: Option<&ChallengeId>,
    first: Result<T, Error>,
    answer: impl Fn(&T) -> Verdict,
    state: S,
    step: R,
) -> Verdict
where
    T: fmt::Debug,
    S: Fn() -> SF,
    SF: Future<Output = Landed>,
    R: Fn() -> RF,
    RF: Future<Output = Result<T, Error>>,
{
    let landed = state().await;
    match (&first, landed) {
        (Ok(_), Landed::Half(what)) => return Err(format!("answered Ok, half done: {what}")),
        (Err(e), Landed::Half(what)) => {
            return Err(format!("failed ({e}) and left it half done: {what}"));
        }
        (Ok(_), Landed::No) => {
            let state = env.snapshot(challenge).await;
            return Err(format!("answered Ok, but nothing changed: {state}"));
        }
        (Ok(t), Landed::Yes) => answer(t)?,
        (Err(e), landed) => {
            injected(e)?;
            let before = env.snapshot(challenge).await;
            let retried = step().await;
            if let Landed::No = landed {
                match &retried {
                    Ok(t) => answer(t).map_err(|why| format!("the retry: {why}"))?,
                    Err(again) => {
                        return Err(format!(
                            "nothing changed and the retry with the same inputs was refused: \
                             {again:?}; after the fault: {before}"
                        ));
                    }
                }
            }
            match state().await {
                Landed::Yes => {}
                Landed::No => {
                    return Err(format!(
                        "nothing changed after the retry ({retried:?}): {}",
                        env.snapshot(challenge).await
                    ));
                }
                Landed::Half(what) => return Err(format!("half done after the retry: {what}")),
            }
        }
    }
    let again = step().await;
    ensure!(
        matches!(again, Err(Error::Refused(_))),
        "once done, the same step again got {again:?}, not a refusal"
    );
    Ok(())
}

// --------------------------------------------------------------- sign-ins

impl Env {
    /// `sign_in_complete` trusting the device, from `attempt`.
    async fn complete(
        &self,
        proof: Proof<'_>,
        attempt: &SignInAttempt,
    ) -> Result<Option<SignedIn>, Error> {
        self.service
            .sign_in_complete(&taro(), proof, Some(LABEL), Some(attempt))
            .await
            .map(Some)
    }

    /// `sign_in_poll_link` trusting the device, from `attempt`.
    async fn poll(
        &self,
        challenge: &ChallengeId,
        attempt: &SignInAttempt,
    ) -> Result<Option<SignedIn>, Error> {
        self.service
            .sign_in_poll_link(&taro(), challenge, Some(LABEL), Some(attempt))
            .await
    }

    /// The sign-in after the first try: its answer if it succeeded (a
    /// failure to trust the device reported, not fatal); if it failed, the
    /// answer of the retry from the same attempt, which must succeed and
    /// trust the device.
    async fn signed_in(
        &self,
        challenge: Option<&ChallengeId>,
        first: Result<Option<SignedIn>, Error>,
        retry: impl Future<Output = Result<Option<SignedIn>, Error>>,
    ) -> Result<SignedIn, String> {
        let e = match first {
            Ok(Some(signed)) => {
                self.trust_reported(&signed)?;
                return Ok(signed);
            }
            Ok(None) => return Err("the sign-in answered 'still pending'".into()),
            Err(e) => e,
        };
        injected(&e)?;
        let state = self.snapshot(challenge).await;
        match retry.await {
            Ok(Some(signed)) if signed.device.is_some() && !signed.trust_failed => Ok(signed),
            Ok(Some(signed)) => Err(format!(
                "the retry from the same attempt signed in without trusting the device \
                 (trust_failed {})",
                signed.trust_failed
            )),
            Ok(None) => Err("the retry answered 'still pending'".into()),
            Err(again) => Err(format!(
                "the sign-in failed ({e}) and its retry from the same attempt was refused: \
                 {again:?}; after the fault: {state}"
            )),
        }
    }

    /// A sign-in that asked to trust the device either did, or says it
    /// could not (only when a store call failed).
    fn trust_reported(&self, signed: &SignedIn) -> Verdict {
        let fired = self.faulty.fired();
        match (&signed.device, signed.trust_failed) {
            (Some(_), false) => {
                ensure!(
                    fired.is_none_or(|c| c.name != "insert_device"),
                    "the device is reported trusted although storing it failed"
                );
                Ok(())
            }
            (None, true) => {
                ensure!(
                    fired.is_some(),
                    "trusting the device failed without a fault"
                );
                Ok(())
            }
            (device, failed) => Err(format!(
                "asked to trust the device: a token {}, trust_failed {failed}",
                if device.is_some() {
                    "given"
                } else {
                    "not given"
                }
            )),
        }
    }

    /// The sign-in's step-up passes, and its device, if any, is trusted.
    async fn signed_in_holds(&self, signed: &SignedIn) -> Verdict {
        let step_up = self.service.check_step_up(&taro(), &signed.step_up).await;
        ensure!(
            step_up.is_ok(),
            "the sign-in's own step-up is refused: {step_up:?}"
        );
        if signed.device.is_some() {
            let check = self.device_check(&token_of(signed)).await;
            ensure!(
                matches!(check, DeviceCheck::Valid { .. }),
                "the device just trusted checks as {check:?}"
            );
        }
        Ok(())
    }

    /// The proof, replayed from another attempt and from none, is refused
    /// as already used.
    async fn replays_refused(&self, proof: Proof<'_>) -> Verdict {
        let other = self.attempt();
        for (from, attempt) in [("another attempt", Some(&other)), ("no attempt", None)] {
            let replay = self
                .service
                .sign_in_complete(&taro(), proof, None, attempt)
                .await;
            ensure!(
                refusal_of(&replay) == Some(Refusal::Code(CodeRefusal::AlreadyUsed)),
                "a replay from {from} got {replay:?}, not AlreadyUsed"
            );
        }
        Ok(())
    }
}

/// A recovery code, trusting the device: the code is spent and the epoch
/// moved on once (devices trusted before are revoked), or a retry from the
/// same attempt gets the same success.
async fn recovery_code_sign_in(env: Env, fault: Option<Fault>) -> Verdict {
    let codes = env.two_step_on().await;
    let before = env.sms_sign_in(Some(OLD_DEVICE)).await;
    let old = token_of(&before);
    let epoch = before.step_up.epoch();
    let attempt = env.attempt();
    let proof = Proof::RecoveryCode { code: &codes[0] };

    env.faulty.arm(fault);
    let first = env.complete(proof, &attempt).await;
    env.faulty.disarm();

    let signed = env
        .signed_in(None, first, env.complete(proof, &attempt))
        .await?;
    ensure!(
        signed.method == MethodKind::RecoveryCode,
        "signed in by {:?}",
        signed.method
    );
    ensure!(
        signed.recovery_codes_left == Some(9),
        "the answer says {:?} codes left, not 9",
        signed.recovery_codes_left
    );
    let left = env.service.recovery_codes_left(&taro()).await;
    ensure!(
        matches!(left, Ok(Some(9))),
        "{left:?} recovery codes left, not 9"
    );
    ensure!(
        signed.step_up.epoch() == epoch + 1 && env.epoch().await == epoch + 1,
        "the epoch moved from {epoch} to {} (step-up at {}), not once",
        env.epoch().await,
        signed.step_up.epoch()
    );
    env.signed_in_holds(&signed).await?;
    let check = env.device_check(&old).await;
    ensure!(
        check == DeviceCheck::Revoked,
        "a device trusted before the recovery code checks as {check:?}"
    );
    env.replays_refused(proof).await
}

/// An SMS code, trusting the device: the same rule, without an epoch move.
async fn code_sign_in(env: Env, fault: Option<Fault>) -> Verdict {
    env.two_step_on().await;
    let before = env.sms_sign_in(Some(OLD_DEVICE)).await;
    let old = token_of(&before);
    let epoch = before.step_up.epoch();
    let sms = env.method(MethodKind::Sms).await;
    let ticket = env
        .service
        .sign_in_send_code(&taro(), &sms, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    let id = ticket.challenge_id;
    let attempt = env.attempt();
    let proof = Proof::Code {
        challenge: &id,
        code: &code,
    };

    env.faulty.arm(fault);
    let first = env.complete(proof, &attempt).await;
    env.faulty.disarm();

    let signed = env
        .signed_in(Some(&id), first, env.complete(proof, &attempt))
        .await?;
    ensure!(
        signed.method == MethodKind::Sms,
        "signed in by {:?}",
        signed.method
    );
    ensure!(
        signed.step_up.epoch() == epoch && env.epoch().await == epoch,
        "a code sign-in moved the epoch from {epoch} to {}",
        env.epoch().await
    );
    env.signed_in_holds(&signed).await?;
    let check = env.device_check(&old).await;
    ensure!(
        matches!(check, DeviceCheck::Valid { .. }),
        "a code sign-in left the device trusted before as {check:?}"
    );
    env.replays_refused(proof).await
}

/// An authenticator code, trusting the device.
async fn authenticator_sign_in(env: Env, fault: Option<Fault>) -> Verdict {
    env.two_step_on().await;
    let app = env.add_app().await;
    let before = env.sms_sign_in(Some(OLD_DEVICE)).await;
    let old = token_of(&before);
    let epoch = before.step_up.epoch();
    let code = env.app_code(&app);
    let attempt = env.attempt();
    let proof = Proof::Authenticator { code: &code };

    env.faulty.arm(fault);
    let first = env.complete(proof, &attempt).await;
    env.faulty.disarm();

    let signed = env
        .signed_in(None, first, env.complete(proof, &attempt))
        .await?;
    ensure!(
        signed.method == MethodKind::Authenticator,
        "signed in by {:?}",
        signed.method
    );
    ensure!(
        env.epoch().await == epoch,
        "an authenticator sign-in moved the epoch from {epoch} to {}",
        env.epoch().await
    );
    env.signed_in_holds(&signed).await?;
    let check = env.device_check(&old).await;
    ensure!(
        matches!(check, DeviceCheck::Valid { .. }),
        "an authenticator sign-in left the device trusted before as {check:?}"
    );
    env.replays_refused(proof).await
}

/// A one-time link approved on the phone, collected by the waiting
/// sign-in, trusting the device.
async fn link_sign_in(env: Env, fault: Option<Fault>) -> Verdict {
    env.two_step_on().await;
    let before = env.sms_sign_in(Some(OLD_DEVICE)).await;
    let old = token_of(&before);
    let epoch = before.step_up.epoch();
    let link = env.method(MethodKind::Link).await;
    let ticket = env
        .service
        .sign_in_send_link(&taro(), &link, LABEL, None, None)
        .await
        .unwrap();
    let url = secret_to(&env.gateway, PHONE);
    let token = url.strip_prefix(BASE).expect("a link URL");
    env.service.approve_link(token).await.unwrap();
    let id = ticket.challenge_id;
    let attempt = env.attempt();

    env.faulty.arm(fault);
    let first = env.poll(&id, &attempt).await;
    env.faulty.disarm();

    let signed = env
        .signed_in(Some(&id), first, env.poll(&id, &attempt))
        .await?;
    ensure!(
        signed.method == MethodKind::Link,
        "signed in by {:?}",
        signed.method
    );
    ensure!(
        env.epoch().await == epoch,
        "a link sign-in moved the epoch from {epoch} to {}",
        env.epoch().await
    );
    env.signed_in_holds(&signed).await?;
    let check = env.device_check(&old).await;
    ensure!(
        matches!(check, DeviceCheck::Valid { .. }),
        "a link sign-in left the device trusted before as {check:?}"
    );
    let other = env.attempt();
    for (from, attempt) in [("another attempt", Some(&other)), ("no attempt", None)] {
        let replay = env
            .service
            .sign_in_poll_link(&taro(), &id, None, attempt)
            .await;
        ensure!(
            refusal_of(&replay) == Some(Refusal::Code(CodeRefusal::AlreadyUsed)),
            "a poll from {from} got {replay:?}, not AlreadyUsed"
        );
    }
    Ok(())
}

#[tokio::test]
async fn recovery_code_sign_in_with_trust() {
    sweep("recovery-code sign-in", recovery_code_sign_in).await;
}

#[tokio::test]
async fn code_sign_in_with_trust() {
    sweep("code sign-in", code_sign_in).await;
}

#[tokio::test]
async fn authenticator_sign_in_with_trust() {
    sweep("authenticator sign-in", authenticator_sign_in).await;
}

#[tokio::test]
async fn link_sign_in_with_trust() {
    sweep("link sign-in", link_sign_in).await;
}

// ---------------------------------------------------------- two-step off

/// Turning two-step sign-in off: everything goes (two-step, recovery
/// codes, the app, the phone's role, every trusted device) or nothing.
async fn disable_two_step(env: Env, fault: Option<Fault>) -> Verdict {
    env.two_step_on().await;
    env.add_app().await;
    let before = env.sms_sign_in(Some(OLD_DEVICE)).await;
    let old = token_of(&before);
    let epoch = env.epoch().await;
    let account = taro();

    env.faulty.arm(fault);
    let first = env
        .service
        .disable_two_factor(&account, &before.step_up)
        .await;
    env.faulty.disarm();

    let state = || async {
        let book = env.book().await.expect("taro's record");
        let f = &book.factors;
        let remaining = f.recovery.as_ref().map(|s| s.remaining());
        let role = book.contacts.iter().any(|c| c.two_factor);
        let check = env.device_check(&old).await;
        let mut facts = Facts::default();
        let on = f.two_factor_since.is_some();
        facts.add("two-step", !on, on, on);
        facts.add(
            "recovery codes",
            remaining.is_none(),
            remaining == Some(10),
            remaining,
        );
        let app = f.authenticator.is_some();
        facts.add("app", !app, app, app);
        facts.add("the phone's two-step role", !role, role, role);
        facts.add(
            "epoch",
            book.epoch == epoch + 1,
            book.epoch == epoch,
            book.epoch,
        );
        facts.add(
            "device trusted before",
            check == DeviceCheck::Revoked,
            matches!(check, DeviceCheck::Valid { .. }),
            check,
        );
        facts.landed()
    };
    whole(
        &env,
        None,
        first,
        |_| Ok(()),
        state,
        || env.service.disable_two_factor(&account, &before.step_up),
    )
    .await
}

#[tokio::test]
async fn disable_two_step_sign_in() {
    sweep("disable two-step", disable_two_step).await;
}

// ------------------------------------------------------- contact changes

/// A phone or email change as it must land.
struct Change<'a> {
    /// The contact replaced, if any (E.164).
    old: Option<&'a str>,
    /// The contact confirmed (its limit key).
    new: &'a str,
    /// Whether it is a phone (claimed, one owner).
    claimed: bool,
    /// Whether two-step sign-in is on (and stays on).
    two_step: bool,
    /// A device trusted before: revoked when a phone is replaced.
    device: Option<&'a str>,
    /// The epoch before: moved on once when a phone is replaced.
    epoch: u64,
}

impl Env {
    async fn change_state(&self, c: &Change<'_>) -> Landed {
        let book = self.book().await.expect("taro's record");
        let find = |key: &str| {
            book.contacts
                .iter()
                .find(|e| e.destination.limit_key() == key)
        };
        let mut facts = Facts::default();
        let new = find(c.new);
        facts.add(
            "new contact",
            new.is_some_and(|e| e.is_verified() && (!c.claimed || e.two_factor == c.two_step)),
            new.is_none(),
            contact(new),
        );
        if c.claimed {
            let owner = self.owner(c.new).await;
            facts.add(
                "claim on the new number",
                owner == Some(taro()),
                owner.is_none(),
                owner,
            );
        }
        if let Some(old_key) = c.old {
            let old = find(old_key);
            facts.add(
                "old number",
                old.is_none(),
                old.is_some_and(|e| e.is_verified() && e.two_factor == c.two_step),
                contact(old),
            );
            let owner = self.owner(old_key).await;
            facts.add(
                "claim on the old number",
                owner.is_none(),
                owner == Some(taro()),
                owner,
            );
            facts.add(
                "epoch",
                book.epoch == c.epoch + 1,
                book.epoch == c.epoch,
                book.epoch,
            );
            if let Some(token) = c.device {
                let check = self.device_check(token).await;
                facts.add(
                    "device trusted before",
                    check == DeviceCheck::Revoked,
                    matches!(check, DeviceCheck::Valid { .. }),
                    check,
                );
            }
        } else {
            facts.keep("epoch", book.epoch == c.epoch, book.epoch);
        }
        let on = book.factors.two_factor_since.is_some();
        facts.keep("two-step", on == c.two_step, on);
        facts.landed()
    }
}

/// Changes taro's phone to `NEW_PHONE` with `phone_send_code` and
/// `phone_confirm`, two-step sign-in on or off: the new number is in place
/// of the old (claimed, old released, devices revoked), or the same code
/// still works.
async fn phone_change(env: Env, fault: Option<Fault>, two_step: bool) -> Verdict {
    env.register_phone(two_step).await;
    let (old, step_up) = if two_step {
        let before = env.sms_sign_in(Some(OLD_DEVICE)).await;
        (token_of(&before), Some(before.step_up))
    } else {
        // Without two-step sign-in no journey trusts a device: put one in
        // place as trust would, at the account's epoch.
        let book = env.store.account_record(&taro()).await.unwrap();
        let epoch = book.as_ref().map_or(0, |r| r.epoch);
        let (token, mut record) = ninsho::device::trust(
            &taro(),
            OLD_DEVICE,
            epoch,
            &ninsho::device::DevicePolicy::default(),
            &support::hasher(),
            &ninsho::LockedRng::seeded(7),
            env.clock.now(),
        )
        .unwrap();
        record.incarnation = book.map_or(0, |r| r.incarnation);
        env.store.insert_device(&record).await.unwrap();
        (token.expose_secret().to_owned(), None)
    };
    let ticket = env
        .service
        .phone_send_code(&taro(), NEW_TYPED, step_up.as_ref(), None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, NEW_PHONE);
    let id = ticket.challenge_id;
    let epoch = env.epoch().await;
    let account = taro();

    env.faulty.arm(fault);
    let first = env.service.phone_confirm(&account, &id, &code, false).await;
    env.faulty.disarm();

    let change = Change {
        old: Some(PHONE),
        new: NEW_PHONE,
        claimed: true,
        two_step,
        device: Some(&old),
        epoch,
    };
    whole(
        &env,
        Some(&id),
        first,
        |done| {
            ensure!(
                done.changed && done.contact.verified && done.recovery_codes.is_none(),
                "answered {done:?}"
            );
            Ok(())
        },
        || env.change_state(&change),
        || env.service.phone_confirm(&account, &id, &code, false),
    )
    .await
}

async fn phone_change_two_step_on(env: Env, fault: Option<Fault>) -> Verdict {
    phone_change(env, fault, true).await
}

async fn phone_change_two_step_off(env: Env, fault: Option<Fault>) -> Verdict {
    phone_change(env, fault, false).await
}

/// The first phone, confirmed with `enable_two_factor`: the phone and
/// two-step sign-in with its recovery codes land together, or the same
/// code still works.
async fn first_phone_with_enable(env: Env, fault: Option<Fault>) -> Verdict {
    let ticket = env
        .service
        .phone_send_code(&taro(), TYPED, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    let id = ticket.challenge_id;
    let account = taro();

    env.faulty.arm(fault);
    let first = env.service.phone_confirm(&account, &id, &code, true).await;
    env.faulty.disarm();

    let state = || async {
        let book = env.book().await;
        let phone = book.as_ref().and_then(|b| {
            b.contacts
                .iter()
                .find(|e| e.destination.limit_key() == PHONE)
                .cloned()
        });
        let on = book
            .as_ref()
            .is_some_and(|b| b.factors.two_factor_since.is_some());
        let remaining = book
            .as_ref()
            .and_then(|b| b.factors.recovery.as_ref().map(|s| s.remaining()));
        let owner = env.owner(PHONE).await;
        let mut facts = Facts::default();
        facts.add(
            "phone",
            phone
                .as_ref()
                .is_some_and(|e| e.is_verified() && e.two_factor),
            phone.is_none(),
            contact(phone.as_ref()),
        );
        facts.add("two-step", on, !on, on);
        facts.add(
            "recovery codes",
            remaining == Some(10),
            remaining.is_none(),
            remaining,
        );
        facts.add("claim", owner == Some(taro()), owner.is_none(), owner);
        facts.landed()
    };
    whole(
        &env,
        Some(&id),
        first,
        |done| {
            ensure!(
                !done.changed
                    && done.contact.two_factor
                    && done.recovery_codes.as_ref().map(|c| c.len()) == Some(10),
                "answered {done:?}"
            );
            Ok(())
        },
        state,
        || env.service.phone_confirm(&account, &id, &code, true),
    )
    .await
}

/// An email added with `contact_send_code` and `contact_confirm` (two-step
/// sign-in on, so with a step-up).
async fn email_add(env: Env, fault: Option<Fault>) -> Verdict {
    env.two_step_on().await;
    let step_up = env.sms_sign_in(None).await.step_up;
    let email = Destination::email(EMAIL).unwrap();
    let ticket = env
        .service
        .contact_send_code(&taro(), &email, Some(&step_up), None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, EMAIL);
    let id = ticket.challenge_id;
    let epoch = env.epoch().await;
    let account = taro();

    env.faulty.arm(fault);
    let first = env.service.contact_confirm(&account, &id, &code).await;
    env.faulty.disarm();

    let change = Change {
        old: None,
        new: EMAIL,
        claimed: false,
        two_step: true,
        device: None,
        epoch,
    };
    whole(
        &env,
        Some(&id),
        first,
        |view| {
            ensure!(view.verified, "answered {view:?}");
            Ok(())
        },
        || env.change_state(&change),
        || env.service.contact_confirm(&account, &id, &code),
    )
    .await
}

#[tokio::test]
async fn phone_change_with_two_step_on() {
    sweep("phone change, two-step on", phone_change_two_step_on).await;
}

#[tokio::test]
async fn first_phone_confirm_with_enable() {
    sweep("first phone with enable", first_phone_with_enable).await;
}

#[tokio::test]
async fn contact_change_phone() {
    sweep("phone change, two-step off", phone_change_two_step_off).await;
}

#[tokio::test]
async fn contact_change_email() {
    sweep("email added", email_add).await;
}

// ------------------------------------------------------------------ sign-up

/// Starts a sign-up with `EMAIL` and `PHONE` and verifies the email.
async fn signup_half(env: &Env) -> (VerificationId, Option<ChallengeId>) {
    let ticket = env.service.signup_start(EMAIL, TYPED, None).await.unwrap();
    env.service
        .signup_verify(&ticket.id, 0, &secret_to(&env.gateway, EMAIL))
        .await
        .unwrap();
    let phone = ticket.members[1]
        .sent
        .as_ref()
        .map(|sent| sent.challenge_id);
    (ticket.id, phone)
}

impl Env {
    /// Both sign-up contacts on the account, verified, the number claimed.
    async fn signup_state(&self) -> Landed {
        let book = self.book().await;
        let entry = |key: &str| {
            book.as_ref().and_then(|b| {
                b.contacts
                    .iter()
                    .find(|e| e.destination.limit_key() == key)
                    .map(|e| e.is_verified())
            })
        };
        let owner = self.owner(PHONE).await;
        let mut facts = Facts::default();
        let email = entry(EMAIL);
        facts.add("email", email == Some(true), email.is_none(), email);
        let phone = entry(PHONE);
        facts.add("phone", phone == Some(true), phone.is_none(), phone);
        facts.add("claim", owner == Some(taro()), owner.is_none(), owner);
        facts.landed()
    }
}

/// `signup_complete` after both codes: a retry after any failure
/// completes, for this account and no other.
async fn signup_complete(env: Env, fault: Option<Fault>) -> Verdict {
    let (id, _) = signup_half(&env).await;
    env.service
        .signup_verify(&id, 1, &secret_to(&env.gateway, PHONE))
        .await
        .unwrap();

    env.faulty.arm(fault);
    let first = env.service.signup_complete(&id, &taro()).await;
    env.faulty.disarm();

    let contacts = match first {
        Ok(contacts) => contacts,
        Err(e) => {
            injected(&e)?;
            if let Landed::Half(what) = env.signup_state().await {
                return Err(format!("failed ({e}) and left it half done: {what}"));
            }
            let state = env.snapshot(None).await;
            env.service
                .signup_complete(&id, &taro())
                .await
                .map_err(|again| {
                    format!(
                        "the sign-up failed ({e}) and its retry was refused: {again:?}; \
                         after the fault: {state}"
                    )
                })?
        }
    };
    ensure!(
        contacts.len() == 2 && contacts.iter().all(|c| c.verified),
        "completed with {contacts:?}"
    );
    match env.signup_state().await {
        Landed::Yes => {}
        other => return Err(format!("completed, but the account holds {other:?}")),
    }
    let hanako = env
        .service
        .signup_complete(&id, &AccountId::new("hanako"))
        .await;
    ensure!(
        refusal_of(&hanako) == Some(Refusal::Code(CodeRefusal::AlreadyUsed)),
        "another account took the sign-up: {hanako:?}"
    );
    Ok(())
}

/// The last `signup_verify` (the phone's code): the member is recorded as
/// verified, or the same code still verifies it; the sign-up then
/// completes.
async fn signup_verify_last(env: Env, fault: Option<Fault>) -> Verdict {
    let (id, phone_challenge) = signup_half(&env).await;
    let code = secret_to(&env.gateway, PHONE);

    env.faulty.arm(fault);
    let first = env.service.signup_verify(&id, 1, &code).await;
    env.faulty.disarm();

    let state = || async {
        let status = env.service.signup_status(&id).await.unwrap();
        let verified = status.members[1].verified;
        let mut facts = Facts::default();
        facts.add("phone member", verified, !verified, verified);
        facts.add(
            "completed",
            status.completed,
            !status.completed,
            status.completed,
        );
        facts.landed()
    };
    whole(
        &env,
        phone_challenge.as_ref(),
        first,
        |progress| {
            ensure!(progress.completed, "answered {progress:?}");
            Ok(())
        },
        state,
        || env.service.signup_verify(&id, 1, &code),
    )
    .await?;
    let done = env.service.signup_complete(&id, &taro()).await;
    ensure!(
        done.as_ref().is_ok_and(|c| c.len() == 2),
        "the sign-up does not complete afterwards: {done:?}"
    );
    Ok(())
}

#[tokio::test]
async fn signup_complete_is_retry_safe() {
    sweep("sign-up complete", signup_complete).await;
}

#[tokio::test]
async fn signup_verify_keeps_the_code() {
    sweep("sign-up verify (last member)", signup_verify_last).await;
}

// ------------------------------------------------------------ authenticator

/// `authenticator_confirm`: the app replaces the pending setup (and, when
/// it replaces an app, the epoch moves on and devices die in the same
/// write), or nothing changed and the code still works.
async fn authenticator_confirm(env: Env, fault: Option<Fault>, replacing: bool) -> Verdict {
    env.two_step_on().await;
    let (old, token) = if replacing {
        env.add_app().await;
        let before = env.sms_sign_in(Some(OLD_DEVICE)).await;
        let old = env.book().await.and_then(|b| b.factors.authenticator);
        (old.map(|a| a.sealed_uri), Some(token_of(&before)))
    } else {
        (None, None)
    };
    let app = env.start_app().await;
    let code = env.app_code(&app);
    let pending = env
        .book()
        .await
        .and_then(|b| b.factors.pending_authenticator)
        .map(|a| a.sealed_uri)
        .expect("a pending setup");
    let epoch = env.epoch().await;
    let account = taro();

    env.faulty.arm(fault);
    let first = env.service.authenticator_confirm(&account, &code).await;
    env.faulty.disarm();

    let state = || async {
        let book = env.book().await.expect("taro's record");
        let f = &book.factors;
        let app = f.authenticator.as_ref().map(|a| a.sealed_uri.clone());
        let setup = f
            .pending_authenticator
            .as_ref()
            .map(|a| a.sealed_uri.clone());
        let mut facts = Facts::default();
        facts.add(
            "app",
            app.as_ref() == Some(&pending),
            app == old,
            app.as_ref().map(|_| "an app"),
        );
        facts.add(
            "pending setup",
            setup.is_none(),
            setup.as_ref() == Some(&pending),
            setup.as_ref().map(|_| "a setup"),
        );
        if let Some(token) = &token {
            facts.add(
                "epoch",
                book.epoch == epoch + 1,
                book.epoch == epoch,
                book.epoch,
            );
            let check = env.device_check(token).await;
            facts.add(
                "device trusted before",
                check == DeviceCheck::Revoked,
                matches!(check, DeviceCheck::Valid { .. }),
                check,
            );
        } else {
            facts.keep("epoch", book.epoch == epoch, book.epoch);
        }
        facts.landed()
    };
    whole(
        &env,
        None,
        first,
        |_| Ok(()),
        state,
        || env.service.authenticator_confirm(&account, &code),
    )
    .await
}

async fn authenticator_confirm_first(env: Env, fault: Option<Fault>) -> Verdict {
    authenticator_confirm(env, fault, false).await
}

async fn authenticator_confirm_replacing(env: Env, fault: Option<Fault>) -> Verdict {
    authenticator_confirm(env, fault, true).await
}

/// `authenticator_remove`: app gone ⇔ epoch moved on ⇔ devices revoked.
async fn authenticator_remove(env: Env, fault: Option<Fault>) -> Verdict {
    env.two_step_on().await;
    env.add_app().await;
    let before = env.sms_sign_in(Some(OLD_DEVICE)).await;
    let old = token_of(&before);
    let epoch = env.epoch().await;
    let account = taro();

    env.faulty.arm(fault);
    let first = env
        .service
        .authenticator_remove(&account, &before.step_up)
        .await;
    env.faulty.disarm();

    let state = || async {
        let book = env.book().await.expect("taro's record");
        let app = book.factors.authenticator.is_some();
        let check = env.device_check(&old).await;
        let mut facts = Facts::default();
        facts.add("app", !app, app, app);
        facts.add(
            "epoch",
            book.epoch == epoch + 1,
            book.epoch == epoch,
            book.epoch,
        );
        facts.add(
            "device trusted before",
            check == DeviceCheck::Revoked,
            matches!(check, DeviceCheck::Valid { .. }),
            check,
        );
        let on = book.factors.two_factor_since.is_some();
        facts.keep("two-step", on, on);
        facts.landed()
    };
    whole(
        &env,
        None,
        first,
        |_| Ok(()),
        state,
        || env.service.authenticator_remove(&account, &before.step_up),
    )
    .await
}

#[tokio::test]
async fn authenticator_confirm_first_app() {
    sweep(
        "authenticator confirm (first app)",
        authenticator_confirm_first,
    )
    .await;
}

#[tokio::test]
async fn authenticator_confirm_replacing_an_app() {
    sweep(
        "authenticator confirm (replacing an app)",
        authenticator_confirm_replacing,
    )
    .await;
}

#[tokio::test]
async fn authenticator_remove_revokes_in_the_same_write() {
    sweep("authenticator remove", authenticator_remove).await;
}

// ------------------------------------------------------------- find account

/// "I can't sign in": `recover_verify` tells who holds the number. A
/// failure leaves the code usable, so the retry finds the account — except
/// when the reply to the write that spends the code is lost: this call
/// takes no attempt id, so a retry can't be told from a replay, and the
/// code must stay spent.
async fn find_account(env: Env, fault: Option<Fault>) -> Verdict {
    env.two_step_on().await;
    let ticket = env.service.recover_start(TYPED, None).await.unwrap();
    let code = secret_to(&env.gateway, PHONE);
    let id = ticket.challenge_id;

    env.faulty.arm(fault);
    let first = env.service.recover_verify(&id, &code).await;
    env.faulty.disarm();

    let found = match first {
        Ok(found) => found,
        Err(e) => {
            injected(&e)?;
            let state = env.snapshot(Some(&id)).await;
            // Spent if the write that landed consumed the challenge (the
            // first compare-and-set only holds it; the last spends it).
            let spent = env
                .store
                .challenge(&id)
                .await
                .unwrap()
                .is_some_and(|c| c.state == ChallengeState::Consumed);
            let retry = env.service.recover_verify(&id, &code).await;
            if spent {
                ensure!(
                    refusal_of(&retry) == Some(Refusal::Code(CodeRefusal::AlreadyUsed)),
                    "a spent code was accepted again: {retry:?}"
                );
                return Ok(());
            }
            retry.map_err(|again| {
                format!(
                    "the look-up failed ({e}) and its retry was refused: {again:?}; \
                     after the fault: {state}"
                )
            })?
        }
    };
    ensure!(
        found.account == Some(taro()) && found.destination.limit_key() == PHONE,
        "found {found:?}"
    );
    let replay = env.service.recover_verify(&id, &code).await;
    ensure!(
        refusal_of(&replay) == Some(Refusal::Code(CodeRefusal::AlreadyUsed)),
        "a replay got {replay:?}, not AlreadyUsed"
    );
    Ok(())
}

#[tokio::test]
async fn find_account_by_contact() {
    sweep("find account by contact", find_account).await;
}
