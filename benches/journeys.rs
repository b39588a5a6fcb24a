//! Whole sign-in journeys on [`TwoFactor`] over `MemoryStore`, with a
//! gateway that only remembers the codes, and the production defaults for
//! time and randomness (`SystemClock`, `OsRandom`).
//!
//! - `sign_in_code`: the full second step: `sign_in_begin` (two-step on,
//!   no device token) + `sign_in_send_code` (SMS) + `sign_in_complete`
//!   with the code;
//! - `sign_in_trusted_device`: `sign_in_begin` with a valid device token,
//!   answered `NotNeeded(TrustedDevice)`;
//! - `sign_in_recovery_code`: `sign_in_begin` + `sign_in_complete` with a
//!   recovery code (which also revokes the account's trusted devices);
//! - `sign_in_two_factor_off`: `sign_in_begin` for an account with a
//!   verified phone and two-step sign-in off.
//!
//! Each journey cycles through 4096 accounts set up before measuring, each
//! with its own verified phone, and with send limits so generous they
//! never refuse.
//!
//! Before measuring, each journey is also played once on a store that
//! counts its calls, and the calls of each step are printed (the line
//! starting `journeys:`).
//!
//! # Store round trips
//!
//! Every journey step is one read and at most one atomic write
//! (`ninsho::store::StepStore`): `load` brings the records a step decides
//! on, `commit` writes everything the step decided, checking every
//! condition it was decided under first. A decision needs the records it
//! is made on and its result must land with those conditions, so one read
//! and one write is the least the store port's rules allow (reads may be
//! stale; the write re-checks):
//!
//! - **begin**: the account's record (is two-step on, which methods), with
//!   the device of a device token in the same read — **1**;
//! - **send**: the record with the failure run (the method looked up
//!   afresh, no codes while locked out), then the send counters charged in
//!   the commit that inserts the challenge they guard — **2**;
//! - **complete** with a code: the challenge with the record and the run,
//!   then the challenge and the run written together (a wrong code one more
//!   failure on both, a right one spent and the run ended), "trust this
//!   device" in the same commit — **2**;
//! - **complete** with a recovery code: the record with the run, then the
//!   code used, the epoch moved and the run ended in one commit — **2**;
//! - **complete** with an authenticator code: the record (the sealed seed,
//!   the last accepted step) with the run, then the accepted step and the
//!   run ended (or the run one longer) in one commit, "trust this device"
//!   in it too — **2**;
//! - **phone registration**, two-step on: send **2** + confirm **4** (the
//!   read; the guess counted with the challenge; the account with its claim;
//!   the code spent with the run ended — the change lands before the code
//!   is spent, so a failure in between leaves a retry that finishes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ninsho::gateway::{DeliveryError, Gateway, Message, Receipt};
use ninsho::limits::{RateLimit, SendLimits};
use ninsho::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, DeviceId, DeviceRecord, FailureRecord,
    VerificationId, VerificationRecord,
};
use ninsho::otp::Totp;
use ninsho::service::{MethodKind, Proof, SignInStart, Skip, StepUp, TwoFactor};
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ClaimChanges, Commit, Committed, DeviceStore,
    LimitStore, Load, Loaded, MemoryStore, PurgeStore, Purged, StepStore, Store, StoreError,
    VerificationStore, WindowCount,
};
use ninsho::{AeadSealer, HashKey, KeyId, KeyedHasher, SealKey};
use time::OffsetDateTime;

/// Accounts per journey.
const ACCOUNTS: usize = 4096;

/// Accepts every message and remembers the last code per destination.
#[derive(Debug, Default)]
struct NoopGateway {
    last: Mutex<HashMap<String, String>>,
}

impl NoopGateway {
    fn take(&self, to: &str) -> String {
        self.last
            .lock()
            .unwrap()
            .remove(to)
            .expect("a code was sent")
    }
}

#[async_trait]
impl Gateway for NoopGateway {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        if let Some(s) = &message.secret {
            self.last
                .lock()
                .unwrap()
                .insert(message.to.clone(), s.expose_secret().to_owned());
        }
        Ok(Receipt::new(None))
    }
}

fn service_on(store: Arc<dyn Store>, gateway: Arc<NoopGateway>) -> TwoFactor {
    let unlimited = RateLimit::new(u64::MAX, time::Duration::minutes(10));
    let limits = SendLimits {
        per_destination: unlimited,
        per_account: unlimited,
        per_caller: unlimited,
        ..SendLimits::default()
    };
    TwoFactor::builder(
        "Bench",
        store,
        gateway,
        KeyedHasher::new(HashKey::new(KeyId(1), &[3; 32]).unwrap()),
        Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[4; 32]).unwrap())),
    )
    // The production defaults: SystemClock and OsRandom.
    .limits(limits)
    .build()
    .unwrap()
}

/// The phone number of account slot `n` (distinct for every account of
/// every journey: one owner per number).
fn phone(n: usize) -> String {
    format!("+81901{n:07}")
}

/// An account with a verified phone; with `two_factor`, two-step sign-in
/// turned on in the same step, and its recovery codes returned.
async fn register(
    svc: &TwoFactor,
    gw: &NoopGateway,
    account: &AccountId,
    phone: &str,
    two_factor: bool,
) -> Vec<String> {
    let ticket = svc
        .phone_send_code(account, phone, None, None)
        .await
        .unwrap();
    let code = gw.take(phone);
    let done = svc
        .phone_confirm(account, &ticket.challenge_id, &code, two_factor)
        .await
        .unwrap();
    done.recovery_codes
        .map(|c| c.expose_secret().into_iter().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The second step's methods (two-step sign-in must be on).
async fn begin_required(svc: &TwoFactor, account: &AccountId) -> Vec<ninsho::service::Method> {
    match svc.sign_in_begin(account, None).await.unwrap() {
        SignInStart::Required { methods } => methods,
        other => panic!("expected a second step, got {other:?}"),
    }
}

/// The full second step by SMS; with `trust`, the device is trusted and
/// its token returned.
async fn sign_in_code(
    svc: &TwoFactor,
    gw: &NoopGateway,
    account: &AccountId,
    phone: &str,
    trust: Option<&str>,
) -> Option<String> {
    let methods = begin_required(svc, account).await;
    let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
    let ticket = svc
        .sign_in_send_code(account, sms, None, None)
        .await
        .unwrap();
    let code = gw.take(phone);
    let done = svc
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
        .unwrap();
    done.device.map(|(t, _)| t.expose_secret().to_owned())
}

/// A fresh step-up from a sign-in by SMS (for set-up, untimed).
async fn sms_step_up(
    svc: &TwoFactor,
    gw: &NoopGateway,
    account: &AccountId,
    phone: &str,
) -> StepUp {
    let methods = begin_required(svc, account).await;
    let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
    let ticket = svc
        .sign_in_send_code(account, sms, None, None)
        .await
        .unwrap();
    let code = gw.take(phone);
    let proof = Proof::Code {
        challenge: &ticket.challenge_id,
        code: &code,
    };
    svc.sign_in_complete(account, proof, None, None)
        .await
        .unwrap()
        .step_up
}

/// Now, in whole Unix seconds (the service runs on the system clock).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An account with two-step sign-in on by SMS, then an authenticator app
/// set up and confirmed with the current time step's code (for set-up,
/// untimed).
async fn enrol_app(svc: &TwoFactor, gw: &NoopGateway, account: &AccountId, phone: &str) -> Totp {
    register(svc, gw, account, phone, true).await;
    let step_up = sms_step_up(svc, gw, account, phone).await;
    let setup = svc
        .authenticator_start(account, "bench@example.com", Some(&step_up))
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    svc.authenticator_confirm(account, &app.code_at(unix_now()).to_string())
        .await
        .unwrap();
    app
}

/// `sign_in_begin` + `sign_in_complete` with a recovery code.
async fn sign_in_recovery(svc: &TwoFactor, account: &AccountId, code: &str) {
    let methods = begin_required(svc, account).await;
    assert!(methods.iter().any(|m| m.kind == MethodKind::RecoveryCode));
    let done = svc
        .sign_in_complete(account, Proof::RecoveryCode { code }, None, None)
        .await
        .unwrap();
    assert!(done.recovery_codes_left.is_some());
}

async fn sign_in_trusted(svc: &TwoFactor, account: &AccountId, token: &str) {
    let start = svc.sign_in_begin(account, Some(token)).await.unwrap();
    assert_eq!(start, SignInStart::NotNeeded(Skip::TrustedDevice));
}

async fn sign_in_off(svc: &TwoFactor, account: &AccountId) {
    let start = svc.sign_in_begin(account, None).await.unwrap();
    assert_eq!(start, SignInStart::NotNeeded(Skip::TwoFactorOff));
}

// ------------------------------------------------------------ counting store

/// `MemoryStore` with every call noted (its method name), to count a
/// journey's round trips. Only the untimed count uses it: the wrapper
/// boxes one more future per call.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryStore,
    calls: AtomicU64,
    names: Mutex<Vec<&'static str>>,
}

impl Counting {
    fn note(&self, method: &'static str) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.names.lock().unwrap().push(method);
    }

    /// The calls since the last `take`: how many, and which.
    fn take(&self) -> (u64, Vec<&'static str>) {
        let n = self.calls.swap(0, Ordering::Relaxed);
        let names = std::mem::take(&mut *self.names.lock().unwrap());
        assert_eq!(usize::try_from(n).unwrap(), names.len());
        (n, names)
    }
}

/// Notes the call, then hands it to the `MemoryStore`.
macro_rules! counted {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {{
        $self.note(stringify!($method));
        $self.inner.$method($($arg),*).await
    }};
}

#[async_trait]
impl ChallengeStore for Counting {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        counted!(self.insert_challenge(record))
    }
    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        counted!(self.challenge(id))
    }
    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        counted!(self.replace_challenge(record, expected_version))
    }
}

#[async_trait]
impl LimitStore for Counting {
    async fn hit(
        &self,
        key: &str,
        window: time::Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        counted!(self.hit(key, window, now))
    }
    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        counted!(self.replace_failures(account, expected, next))
    }
    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        counted!(self.failures(account))
    }
    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        counted!(self.clear_failures(account))
    }
}

#[async_trait]
impl DeviceStore for Counting {
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        counted!(self.insert_device(record))
    }
    async fn device(
        &self,
        account: &AccountId,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        counted!(self.device(account, id))
    }
    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        counted!(self.devices(account))
    }
    async fn replace_device(
        &self,
        record: &DeviceRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        counted!(self.replace_device(record, expected_version))
    }
    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError> {
        counted!(self.delete_device(account, id))
    }
    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        counted!(self.delete_devices(account))
    }
}

#[async_trait]
impl AccountStore for Counting {
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        counted!(self.account_record(account))
    }
    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        counted!(self.claim_owner(key))
    }
    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        counted!(self.commit_account(book, expected_version, changes))
    }
    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        counted!(self.delete_account(account))
    }
}

#[async_trait]
impl VerificationStore for Counting {
    async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError> {
        counted!(self.insert_verification(record))
    }
    async fn verification(
        &self,
        id: &VerificationId,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        counted!(self.verification(id))
    }
    async fn replace_verification(
        &self,
        record: &VerificationRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        counted!(self.replace_verification(record, expected_version))
    }
}

#[async_trait]
impl PurgeStore for Counting {
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError> {
        counted!(self.purge(before))
    }
}

#[async_trait]
impl StepStore for Counting {
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        counted!(self.load(load))
    }
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        counted!(self.commit(commit, now))
    }
}

/// One step's count, as `5 (account_record, failures, …)`.
fn step(store: &Counting) -> String {
    let (n, names) = store.take();
    format!("{n} ({})", names.join(", "))
}

/// Plays each journey once on a counting store and prints the store calls
/// of each step.
fn print_round_trips(rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let store = Arc::new(Counting::default());
        let gw = Arc::new(NoopGateway::default());
        let svc = service_on(store.clone(), gw.clone());
        let (on, off) = (AccountId::new("count-on"), AccountId::new("count-off"));
        let (on_phone, off_phone) = (phone(9_000_000), phone(9_000_001));
        // Registration (not timed below; printed for reference): a phone
        // code, then its confirmation turning two-step sign-in on.
        let ticket = svc
            .phone_send_code(&on, &on_phone, None, None)
            .await
            .unwrap();
        let send = step(&store);
        let code = gw.take(&on_phone);
        let done = svc
            .phone_confirm(&on, &ticket.challenge_id, &code, true)
            .await
            .unwrap();
        let confirm = step(&store);
        println!("journeys: phone registration, two-step on: send {send} + confirm {confirm}");
        let codes: Vec<String> = done
            .recovery_codes
            .unwrap()
            .expose_secret()
            .into_iter()
            .map(str::to_owned)
            .collect();
        register(&svc, &gw, &off, &off_phone, false).await;
        // A first sign-in trusts the device (and leaves any first-use
        // writes behind).
        let token = sign_in_code(&svc, &gw, &on, &on_phone, Some("bench"))
            .await
            .unwrap();
        store.take();

        // Full second step by SMS.
        let methods = begin_required(&svc, &on).await;
        let begin = step(&store);
        let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
        let ticket = svc.sign_in_send_code(&on, sms, None, None).await.unwrap();
        let send = step(&store);
        let code = gw.take(&on_phone);
        let proof = Proof::Code {
            challenge: &ticket.challenge_id,
            code: &code,
        };
        svc.sign_in_complete(&on, proof, None, None).await.unwrap();
        let complete = step(&store);
        println!(
            "journeys: sign-in second step: begin {begin} + send {send} + complete {complete}"
        );

        // The same, trusting the device at the end.
        let methods = begin_required(&svc, &on).await;
        let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
        let ticket = svc.sign_in_send_code(&on, sms, None, None).await.unwrap();
        let code = gw.take(&on_phone);
        store.take();
        let proof = Proof::Code {
            challenge: &ticket.challenge_id,
            code: &code,
        };
        svc.sign_in_complete(&on, proof, Some("bench"), None)
            .await
            .unwrap();
        println!(
            "journeys: sign-in second step, trusting the device: complete {}",
            step(&store)
        );

        // Trusted device.
        sign_in_trusted(&svc, &on, &token).await;
        println!("journeys: trusted-device sign-in: begin {}", step(&store));

        // Two-step off.
        sign_in_off(&svc, &off).await;
        println!("journeys: two-step off: begin {}", step(&store));

        // Authenticator app, on accounts of their own (each accepted code
        // spends a time step of its app), without and with trusting the
        // device.
        for (n, trust) in [(9_000_002, None), (9_000_003, Some("bench"))] {
            let account = AccountId::new(format!("count-app-{n}"));
            let app = enrol_app(&svc, &gw, &account, &phone(n)).await;
            store.take();
            begin_required(&svc, &account).await;
            let begin = step(&store);
            // The next time step: the enrolment spent this one.
            let code = app.code_at(unix_now() + 30).to_string();
            let done = svc
                .sign_in_complete(&account, Proof::Authenticator { code: &code }, trust, None)
                .await
                .unwrap();
            assert_eq!(done.device.is_some(), trust.is_some());
            let complete = step(&store);
            let how = if trust.is_some() {
                ", trusting the device"
            } else {
                ""
            };
            println!("journeys: authenticator sign-in{how}: begin {begin} + complete {complete}");
        }

        // Recovery code (last: it revokes the trusted devices).
        begin_required(&svc, &on).await;
        let begin = step(&store);
        svc.sign_in_complete(&on, Proof::RecoveryCode { code: &codes[0] }, None, None)
            .await
            .unwrap();
        let complete = step(&store);
        println!("journeys: recovery-code sign-in: begin {begin} + complete {complete}");
    });
}

// --------------------------------------------------------------------- benches

/// The accounts of one journey, set up before measuring.
struct Accounts {
    ids: Vec<AccountId>,
    phones: Vec<String>,
}

fn accounts(
    rt: &tokio::runtime::Runtime,
    svc: &TwoFactor,
    gw: &NoopGateway,
    name: &str,
    first_phone: usize,
    two_factor: bool,
) -> (Accounts, Vec<Vec<String>>) {
    let ids: Vec<_> = (0..ACCOUNTS)
        .map(|i| AccountId::new(format!("{name}-{i}")))
        .collect();
    let phones: Vec<_> = (0..ACCOUNTS).map(|i| phone(first_phone + i)).collect();
    let codes = rt.block_on(async {
        let mut codes = Vec::with_capacity(ACCOUNTS);
        for (id, phone) in ids.iter().zip(&phones) {
            codes.push(register(svc, gw, id, phone, two_factor).await);
        }
        codes
    });
    (Accounts { ids, phones }, codes)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    print_round_trips(&rt);

    let gw = Arc::new(NoopGateway::default());
    let store = Arc::new(MemoryStore::new());
    let svc = service_on(store.clone(), gw.clone());
    let (on, _) = accounts(&rt, &svc, &gw, "on", 0, true);
    let (off, _) = accounts(&rt, &svc, &gw, "off", ACCOUNTS, false);
    let (rec, mut codes) = accounts(&rt, &svc, &gw, "rec", 2 * ACCOUNTS, true);
    // A trusted device per account, from a first sign-in.
    let tokens: Vec<String> = rt.block_on(async {
        let mut tokens = Vec::with_capacity(ACCOUNTS);
        for (id, phone) in on.ids.iter().zip(&on.phones) {
            tokens.push(
                sign_in_code(&svc, &gw, id, phone, Some("bench"))
                    .await
                    .unwrap(),
            );
        }
        tokens
    });

    let mut g = c.benchmark_group("journeys");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    // The harness's own cost per iteration (entering the runtime).
    g.bench_function("block_on_empty", |b| b.iter(|| rt.block_on(async {})));

    let mut n = 0usize;
    g.bench_function("sign_in_code", |b| {
        b.iter_custom(|iters| {
            // Drop the consumed challenges of earlier samples (untimed), as
            // a host's periodic purge would.
            let far = OffsetDateTime::now_utc() + time::Duration::days(1);
            rt.block_on(store.purge(far)).unwrap();
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..iters {
                    let i = n % ACCOUNTS;
                    n += 1;
                    sign_in_code(&svc, &gw, &on.ids[i], &on.phones[i], None).await;
                }
            });
            start.elapsed()
        })
    });

    let mut n = 0usize;
    g.bench_function("sign_in_trusted_device", |b| {
        b.iter(|| {
            let i = n % ACCOUNTS;
            n += 1;
            rt.block_on(sign_in_trusted(&svc, &on.ids[i], &tokens[i]));
        })
    });

    // Each account has 10 codes; a used-up account gets a new set
    // (untimed, in the batch's set-up).
    let mut n = 0usize;
    g.bench_function("sign_in_recovery_code", |b| {
        b.iter_batched(
            || {
                let i = n % ACCOUNTS;
                n += 1;
                if codes[i].is_empty() {
                    let fresh = rt
                        .block_on(async {
                            let step_up = sms_step_up(&svc, &gw, &rec.ids[i], &rec.phones[i]).await;
                            svc.regenerate_recovery_codes(&rec.ids[i], &step_up).await
                        })
                        .unwrap();
                    codes[i] = fresh
                        .expose_secret()
                        .into_iter()
                        .map(str::to_owned)
                        .collect();
                }
                (i, codes[i].pop().unwrap())
            },
            |(i, code)| rt.block_on(sign_in_recovery(&svc, &rec.ids[i], &code)),
            // Small batches: a batch's inputs are all drawn before any
            // runs, and one that wrapped round the accounts would regenerate
            // a set whose codes it still holds.
            BatchSize::NumIterations(64),
        )
    });

    let mut n = 0usize;
    g.bench_function("sign_in_two_factor_off", |b| {
        b.iter(|| {
            let i = n % ACCOUNTS;
            n += 1;
            rt.block_on(sign_in_off(&svc, &off.ids[i]));
        })
    });
    g.finish();
}

criterion_group!(journey_benches, benches);
criterion_main!(journey_benches);
