//! ninsho's sign-in completion against a hand-written floor: the same
//! check done in the fewest statements, on the same servers, in the same
//! run.
//!
//! Two rows, each on PostgreSQL and on Redis:
//!
//! - **SMS code**: [`TwoFactor::sign_in_complete`] with a code sent
//!   earlier (`sign_in_begin` + `sign_in_send_code`, untimed, the code
//!   caught by a gateway that only remembers it), against a table (a hash
//!   on Redis) of pending codes — account, HMAC-SHA-256 of the code,
//!   attempts, expiry, used — spent by one conditional statement:
//!   `UPDATE … SET used = true WHERE id = $1 AND code_hash = $2 AND NOT
//!   used AND attempts < 5 AND expires_at > $3 RETURNING account`, or one
//!   `EVALSHA` of a script doing the same checks and set. Only the right
//!   code is timed (a wrong one would cost the floor a second statement
//!   counting the attempt).
//! - **Authenticator code**: `sign_in_complete` with the TOTP code of the
//!   enrolled seed at the service's (manual) clock, against totp-rs
//!   checking the code plus one conditional statement moving the
//!   account's last used step on (`UPDATE … SET last_step = $2 WHERE
//!   account = $1 AND last_step < $2 RETURNING 1`, or one script). The
//!   floor keeps its seeds in memory and in the clear, so it reads
//!   nothing; ninsho reads the sealed seed from the account's record.
//!
//! Every timed sign-in spends a code nobody used before: each criterion
//! sample prepares its own (untimed), the authenticator rows cycling
//! through [`ACCOUNTS`] accounts and moving the time on one step whenever
//! they come round again (an account takes one code per step).
//!
//! Criterion times one task (latency). After it, each row runs a batch of
//! [`BATCH`] sign-ins over [`TASKS`] concurrent tasks (throughput), in
//! [`ROUNDS`] rounds where the rows take turns. The raw round trips
//! (PostgreSQL `SELECT 1`, Redis `PING` and a one-key `EVALSHA`) are
//! measured the same ways so the ratios can be read. A summary table
//! closes the run.
//!
//! On PostgreSQL each committed write waits for its WAL flush (the
//! server's `synchronous_commit`), so there a row's latency follows how
//! many writes it commits more than how many statements it sends, and
//! moves with the disk.
//!
//! Needs PostgreSQL (`NINSHO_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) and Redis
//! (`NINSHO_REDIS_URL`, default `redis://127.0.0.1:6379/`); the run works
//! in a schema and key prefix of its own and drops them at the end:
//!
//! ```sh
//! cargo bench --all-features --bench floor
//! cargo bench --all-features --bench floor -- --warm-up-time 1 --measurement-time 3
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::Criterion;
use hmac::{Hmac, KeyInit, Mac};
use ninsho::gateway::{DeliveryError, Gateway, Message, Receipt};
use ninsho::limits::{RateLimit, SendLimits};
use ninsho::model::{AccountId, ChallengeId};
use ninsho::otp::Totp;
use ninsho::service::{MethodKind, Proof, SignInStart, TwoFactor};
use ninsho::store::{PgStore, RedisStore, Store};
use ninsho::{AeadSealer, HashKey, KeyId, KeyedHasher, ManualClock, SealKey};
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use sha2::Sha256;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::runtime::Runtime;

/// Accounts per store, each with a verified phone (two-step sign-in on)
/// and an authenticator; as many floor accounts again.
const ACCOUNTS: usize = 2048;
/// Sign-ins per throughput batch.
const BATCH: usize = 2048;
/// Concurrent tasks of the throughput batches.
const TASKS: usize = 16;
/// Throughput batches per row.
const ROUNDS: usize = 3;
/// Criterion samples per bench (set, so the recorded samples can be told
/// from the warm-up).
const SAMPLES: usize = 100;
/// The manual clock's start.
const T0: i64 = 1_763_683_200;
/// TOTP period.
const PERIOD: i64 = 30;
/// The floor's code lifetime.
const CODE_TTL: i64 = 600;

// ------------------------------------------------------------------ ninsho

/// Accepts every message and remembers the last code per destination.
#[derive(Debug, Default)]
struct Codes(Mutex<HashMap<String, String>>);

impl Codes {
    fn take(&self, to: &str) -> String {
        self.0.lock().unwrap().remove(to).expect("a code was sent")
    }
}

#[async_trait]
impl Gateway for Codes {
    async fn send(&self, m: &Message) -> Result<Receipt, DeliveryError> {
        if let Some(s) = &m.secret {
            self.0
                .lock()
                .unwrap()
                .insert(m.to.clone(), s.expose_secret().to_owned());
        }
        Ok(Receipt::new(None))
    }
}

/// ninsho on one store: the service, its clock and gateway, and the
/// accounts with their authenticators.
struct Ninsho {
    svc: TwoFactor,
    gw: Arc<Codes>,
    clock: Arc<ManualClock>,
    /// The clock's time, kept here too (only the bench moves it).
    now: RefCell<i64>,
    ids: Vec<AccountId>,
    phones: Vec<String>,
    apps: Vec<Totp>,
}

fn service(store: Arc<dyn Store>, gw: Arc<Codes>, clock: Arc<ManualClock>) -> TwoFactor {
    let unlimited = RateLimit::new(u64::MAX, time::Duration::minutes(10));
    TwoFactor::builder(
        "Bench",
        store,
        gw,
        KeyedHasher::new(HashKey::new(KeyId(1), &[3; 32]).unwrap()),
        Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[4; 32]).unwrap())),
    )
    .clock(clock)
    .limits(SendLimits {
        per_destination: unlimited,
        per_account: unlimited,
        per_caller: unlimited,
        ..SendLimits::default()
    })
    .build()
    .unwrap()
}

/// A sign-in code sent to `account`'s phone: begin, then send by SMS;
/// the challenge (the gateway has the code).
async fn send_code(svc: &TwoFactor, account: &AccountId) -> ChallengeId {
    let methods = match svc.sign_in_begin(account, None).await.unwrap() {
        SignInStart::Required { methods } => methods,
        other => panic!("expected a second step, got {other:?}"),
    };
    let sms = methods.iter().find(|m| m.kind == MethodKind::Sms).unwrap();
    let ticket = svc
        .sign_in_send_code(account, sms, None, None)
        .await
        .unwrap();
    ticket.challenge_id
}

/// Registers `account`: a verified phone turning two-step sign-in on,
/// a sign-in by SMS for the step-up, and an authenticator confirmed with
/// its first code. Returns the app.
async fn register(svc: &TwoFactor, gw: &Codes, account: &AccountId, phone: &str, now: i64) -> Totp {
    let ticket = svc
        .phone_send_code(account, phone, None, None)
        .await
        .unwrap();
    let code = gw.take(phone);
    svc.phone_confirm(account, &ticket.challenge_id, &code, true)
        .await
        .unwrap();
    let challenge = send_code(svc, account).await;
    let code = gw.take(phone);
    let proof = Proof::Code {
        challenge: &challenge,
        code: &code,
    };
    let step_up = svc
        .sign_in_complete(account, proof, None, None)
        .await
        .unwrap()
        .step_up;
    let setup = svc
        .authenticator_start(account, "bench@example.com", Some(&step_up))
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    let first = app.code_at(u64::try_from(now).unwrap()).to_string();
    svc.authenticator_confirm(account, &first).await.unwrap();
    app
}

impl Ninsho {
    fn new(rt: &Runtime, store: Arc<dyn Store>, tag: &str) -> Self {
        let gw = Arc::new(Codes::default());
        let clock = Arc::new(ManualClock::at_unix(T0).unwrap());
        let svc = service(store, gw.clone(), clock.clone());
        let ids: Vec<_> = (0..ACCOUNTS)
            .map(|i| AccountId::new(format!("{tag}-{i}")))
            .collect();
        let phones: Vec<_> = (0..ACCOUNTS).map(|i| format!("+81901{i:07}")).collect();
        let apps = {
            let (svc, gw, ids, phones) = (svc.clone(), gw.clone(), ids.clone(), phones.clone());
            let work: Vec<usize> = (0..ACCOUNTS).collect();
            let mut apps: Vec<(usize, Totp)> = run_tasks(rt, TASKS, work, move |i| {
                let (svc, gw, id, phone) =
                    (svc.clone(), gw.clone(), ids[i].clone(), phones[i].clone());
                async move { (i, register(&svc, &gw, &id, &phone, T0).await) }
            })
            .1;
            apps.sort_by_key(|(i, _)| *i);
            apps.into_iter().map(|(_, app)| app).collect()
        };
        Self {
            svc,
            gw,
            clock,
            now: RefCell::new(T0),
            ids,
            phones,
            apps,
        }
    }

    /// `n` sign-in codes sent (untimed): account, challenge, code.
    fn sms_work(&self, rt: &Runtime, n: usize) -> Vec<(AccountId, ChallengeId, String)> {
        let mut out = Vec::with_capacity(n);
        // The gateway keeps one code per phone, so no two sends to one
        // phone may run together: the accounts are taken in rounds.
        for round in (0..n).collect::<Vec<_>>().chunks(ACCOUNTS) {
            let (svc, gw, ids, phones) = (
                self.svc.clone(),
                self.gw.clone(),
                self.ids.clone(),
                self.phones.clone(),
            );
            let sent = run_tasks(rt, TASKS, round.to_vec(), move |i| {
                let (svc, gw) = (svc.clone(), gw.clone());
                let (id, phone) = (ids[i % ACCOUNTS].clone(), phones[i % ACCOUNTS].clone());
                async move {
                    let challenge = send_code(&svc, &id).await;
                    let code = gw.take(&phone);
                    (id, challenge, code)
                }
            })
            .1;
            out.extend(sent);
        }
        out
    }

    /// `n` authenticator sign-ins: account, code, and whether the clock
    /// moves on a step first. Every round of the accounts (the first one
    /// too) is a step later than the last, so no code is a replay.
    fn totp_work(&self, n: usize) -> Vec<(AccountId, String, bool)> {
        let mut now = self.now.borrow_mut();
        (0..n)
            .map(|i| {
                let next = i % ACCOUNTS == 0;
                if next {
                    *now += PERIOD;
                }
                let code = self.apps[i % ACCOUNTS]
                    .code_at(u64::try_from(*now).unwrap())
                    .to_string();
                (self.ids[i % ACCOUNTS].clone(), code, next)
            })
            .collect()
    }

    /// Moves the clock on one step: before a throughput batch's timer
    /// starts (a single task moves it at the items marked instead).
    fn step_clock(&self) {
        self.clock.advance(time::Duration::seconds(PERIOD));
    }
}

// ------------------------------------------------------------------- floor

/// The floor on one server.
#[derive(Clone)]
enum Floor {
    Pg {
        pool: PgPool,
        insert_code: &'static str,
        spend_code: &'static str,
        use_step: &'static str,
    },
    Redis {
        conn: ConnectionManager,
        prefix: String,
        spend_code: redis::Script,
        use_step: redis::Script,
        incr: redis::Script,
    },
}

/// The floor's code check, in one `EVALSHA`: the code's hash must match
/// while the code is unused, unexpired and under its attempts; a match
/// marks it used and answers the account, a miss counts an attempt.
const SPEND_CODE_LUA: &str = r"
local c = redis.call('HMGET', KEYS[1], 'hash', 'attempts', 'expires', 'used', 'account')
if not c[1] or c[4] == '1' or tonumber(c[2]) >= 5 or tonumber(c[3]) <= tonumber(ARGV[2]) then
  return false
end
if c[1] ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  return false
end
redis.call('HSET', KEYS[1], 'used', '1')
return c[5]
";

/// The floor's replay guard: the step must be past the last one used.
const USE_STEP_LUA: &str = r"
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if last >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// A pending floor code, as the floor's send would have left it.
struct PendingCode {
    id: i64,
    account: String,
    code: String,
}

/// The floor's key for code hashes.
fn code_mac() -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(&[5; 32]).unwrap()
}

/// HMAC-SHA-256 of a code, bound to its id.
fn code_hash(mac: &Hmac<Sha256>, id: i64, code: &str) -> [u8; 32] {
    let mut mac = mac.clone();
    mac.update(&id.to_be_bytes());
    mac.update(code.as_bytes());
    mac.finalize().into_bytes().into()
}

/// A six-digit code drawn from the id (the floor's codes need not be
/// secret here, only different).
fn floor_code(id: i64) -> String {
    let mut x = u64::try_from(id)
        .unwrap()
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 31;
    format!("{:06}", x % 1_000_000)
}

/// The floor's TOTP app of account `i`.
fn floor_app(i: usize) -> totp_rs::Totp {
    let mut seed = [0u8; 20];
    seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
    seed[8..].copy_from_slice(b"floor-seed!!");
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(PERIOD as u64)
        .with_secret(totp_rs::Secret::new_stack(seed))
        .build()
        .unwrap()
}

fn floor_account(i: usize) -> String {
    format!("floor-{i}")
}

impl Floor {
    /// Stores pending codes (untimed): what the floor's send would write.
    async fn insert_codes(&self, codes: &[PendingCode], now: i64) {
        let mac = code_mac();
        let expires = now + CODE_TTL;
        match self {
            Self::Pg {
                pool, insert_code, ..
            } => {
                for c in codes {
                    sqlx::query(*insert_code)
                        .bind(c.id)
                        .bind(c.account.as_str())
                        .bind(&code_hash(&mac, c.id, &c.code)[..])
                        .bind(OffsetDateTime::from_unix_timestamp(expires).unwrap())
                        .execute(pool)
                        .await
                        .unwrap();
                }
            }
            Self::Redis { conn, prefix, .. } => {
                let mut pipe = redis::pipe();
                for c in codes {
                    let key = format!("{prefix}:floor:code:{}", c.id);
                    pipe.hset_multiple(
                        &key,
                        &[
                            ("account", c.account.as_bytes()),
                            ("hash", &code_hash(&mac, c.id, &c.code)[..]),
                            ("attempts", &b"0"[..]),
                            ("expires", expires.to_string().as_bytes()),
                            ("used", &b"0"[..]),
                        ],
                    )
                    .ignore()
                    // Real seconds (the bench's clock is in the past): a
                    // host's key TTL beside the code's own expiry.
                    .expire(&key, CODE_TTL + 60)
                    .ignore();
                }
                let () = pipe.query_async(&mut conn.clone()).await.unwrap();
            }
        }
    }

    /// The timed part of the floor's sign-in with a sent code: hash it,
    /// spend it in one statement.
    async fn spend_code(&self, mac: &Hmac<Sha256>, id: i64, code: &str, now: i64) -> String {
        let hash = code_hash(mac, id, code);
        match self {
            Self::Pg {
                pool, spend_code, ..
            } => {
                let (account,): (String,) = sqlx::query_as(*spend_code)
                    .bind(id)
                    .bind(&hash[..])
                    .bind(OffsetDateTime::from_unix_timestamp(now).unwrap())
                    .fetch_one(pool)
                    .await
                    .unwrap();
                account
            }
            Self::Redis {
                conn,
                prefix,
                spend_code,
                ..
            } => {
                let account: Option<String> = spend_code
                    .key(format!("{prefix}:floor:code:{id}"))
                    .arg(&hash[..])
                    .arg(now)
                    .invoke_async(&mut conn.clone())
                    .await
                    .unwrap();
                account.expect("the right code")
            }
        }
    }

    /// The timed part of the floor's authenticator sign-in: check the
    /// code, then move the account's last step on in one statement.
    async fn use_totp(&self, app: &totp_rs::Totp, account: &str, code: &str, now: i64) {
        let step = app
            .check(code, u64::try_from(now).unwrap())
            .expect("the right code");
        let step = i64::try_from(step).unwrap();
        match self {
            Self::Pg { pool, use_step, .. } => {
                let _: (i32,) = sqlx::query_as(*use_step)
                    .bind(account)
                    .bind(step)
                    .fetch_one(pool)
                    .await
                    .expect("a step not used before");
            }
            Self::Redis {
                conn,
                prefix,
                use_step,
                ..
            } => {
                let landed: i64 = use_step
                    .key(format!("{prefix}:floor:totp:{account}"))
                    .arg(step)
                    .invoke_async(&mut conn.clone())
                    .await
                    .unwrap();
                assert_eq!(landed, 1, "a step not used before");
            }
        }
    }
}

/// The floor's state across samples: the next code id and its clock.
struct FloorState {
    next_id: i64,
    /// The floor's TOTP time (moved on a step per round of accounts).
    now: i64,
}

fn floor_code_work(state: &mut FloorState, n: usize) -> Vec<PendingCode> {
    (0..n)
        .map(|i| {
            state.next_id += 1;
            PendingCode {
                id: state.next_id,
                account: floor_account(i % ACCOUNTS),
                code: floor_code(state.next_id),
            }
        })
        .collect()
}

/// `n` floor authenticator sign-ins: account index, code and time.
fn floor_totp_work(
    state: &mut FloorState,
    apps: &[totp_rs::Totp],
    n: usize,
) -> Vec<(usize, String, i64)> {
    (0..n)
        .map(|i| {
            if i % ACCOUNTS == 0 {
                state.now += PERIOD;
            }
            let a = i % ACCOUNTS;
            let code = apps[a]
                .generate(u64::try_from(state.now).unwrap())
                .to_string();
            (a, code, state.now)
        })
        .collect()
}

// ------------------------------------------------------------------ servers

/// One server: ninsho on it, the floor on it, and its raw round trips.
struct Server {
    name: &'static str,
    ninsho: Ninsho,
    floor: Floor,
    floor_state: RefCell<FloorState>,
}

async fn postgres(suffix: &str) -> (PgPool, String, Arc<dyn Store>, Floor) {
    let url = std::env::var("NINSHO_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(TASKS).unwrap())
        .connect(&url)
        .await
        .expect("PostgreSQL");
    let schema = format!("ninsho_floor_{suffix}");
    let store = PgStore::with_schema(pool.clone(), &schema).unwrap();
    store.migrate().await.unwrap();
    store.initialise().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {schema}.floor_codes (
             id BIGINT PRIMARY KEY,
             account TEXT NOT NULL,
             code_hash BYTEA NOT NULL,
             attempts INT NOT NULL DEFAULT 0,
             expires_at TIMESTAMPTZ NOT NULL,
             used BOOLEAN NOT NULL DEFAULT false
         );
         CREATE TABLE {schema}.floor_totp (
             account TEXT PRIMARY KEY,
             last_step BIGINT NOT NULL
         );
         INSERT INTO {schema}.floor_totp
             SELECT 'floor-' || g, 0 FROM generate_series(0, {}) g;",
        ACCOUNTS - 1
    )))
    .execute(&pool)
    .await
    .unwrap();
    let leak = |sql: String| -> &'static str { Box::leak(sql.into_boxed_str()) };
    let floor = Floor::Pg {
        pool: pool.clone(),
        insert_code: leak(format!(
            "INSERT INTO {schema}.floor_codes (id, account, code_hash, expires_at) \
             VALUES ($1, $2, $3, $4)"
        )),
        spend_code: leak(format!(
            "UPDATE {schema}.floor_codes SET used = true \
             WHERE id = $1 AND code_hash = $2 AND NOT used AND attempts < 5 AND expires_at > $3 \
             RETURNING account"
        )),
        use_step: leak(format!(
            "UPDATE {schema}.floor_totp SET last_step = $2 \
             WHERE account = $1 AND last_step < $2 RETURNING 1"
        )),
    };
    (pool, schema, Arc::new(store), floor)
}

async fn redis_server(suffix: &str) -> (ConnectionManager, String, Arc<dyn Store>, Floor) {
    let url =
        std::env::var("NINSHO_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = ConnectionManager::new(client).await.expect("Redis");
    let prefix = format!("ninsho-floor:{suffix}");
    // The local Redis keeps nothing on disk and may evict: fine for a
    // benchmark, never for production.
    let store = RedisStore::builder(prefix.clone())
        .dangerously_allow_volatile_server()
        .dangerously_allow_evicting_server()
        .build(conn.clone())
        .await
        .expect("Redis");
    store.initialise().await.expect("Redis");
    let floor = Floor::Redis {
        conn: conn.clone(),
        prefix: prefix.clone(),
        spend_code: redis::Script::new(SPEND_CODE_LUA),
        use_step: redis::Script::new(USE_STEP_LUA),
        incr: redis::Script::new("return redis.call('INCR', KEYS[1])"),
    };
    (conn, prefix, Arc::new(store), floor)
}

// ------------------------------------------------------------------ running

/// Runs `op` on every item over `tasks` tasks (items dealt round-robin,
/// before the timer starts); the elapsed time and the results.
fn run_tasks<I, T, F, Fut>(rt: &Runtime, tasks: usize, items: Vec<I>, op: F) -> (Duration, Vec<T>)
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
{
    let op = Arc::new(op);
    let mut shares: Vec<Vec<I>> = (0..tasks).map(|_| Vec::new()).collect();
    for (n, item) in items.into_iter().enumerate() {
        shares[n % tasks].push(item);
    }
    let start = Instant::now();
    let out = rt.block_on(async {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                let op = op.clone();
                tokio::spawn(async move {
                    let mut out = Vec::with_capacity(share.len());
                    for item in share {
                        out.push(op(item).await);
                    }
                    out
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.extend(h.await.unwrap());
        }
        out
    });
    (start.elapsed(), out)
}

/// What a row does: prepares `n` fresh sign-ins (untimed) and runs them
/// over `tasks` tasks, answering the time they took.
type Row<'a> = Box<dyn Fn(&Runtime, usize, usize) -> Duration + 'a>;

fn rows(server: &Server) -> Vec<(&'static str, &'static str, Row<'_>)> {
    let mut out: Vec<(&'static str, &'static str, Row<'_>)> = Vec::new();
    let n = &server.ninsho;

    out.push((
        "sms",
        "ninsho",
        Box::new(move |rt, tasks, count| {
            let work = n.sms_work(rt, count);
            let svc = n.svc.clone();
            run_tasks(rt, tasks, work, move |(account, challenge, code)| {
                let svc = svc.clone();
                async move {
                    let proof = Proof::Code {
                        challenge: &challenge,
                        code: &code,
                    };
                    svc.sign_in_complete(&account, proof, None, None)
                        .await
                        .unwrap();
                }
            })
            .0
        }),
    ));

    out.push((
        "sms",
        "floor",
        Box::new(move |rt, tasks, count| {
            let now = T0;
            let work = floor_code_work(&mut server.floor_state.borrow_mut(), count);
            rt.block_on(server.floor.insert_codes(&work, now));
            let (floor, mac) = (server.floor.clone(), Arc::new(code_mac()));
            run_tasks(rt, tasks, work, move |c| {
                let (floor, mac) = (floor.clone(), mac.clone());
                async move {
                    let account = floor.spend_code(&mac, c.id, &c.code, now).await;
                    assert_eq!(account, c.account);
                }
            })
            .0
        }),
    ));

    out.push((
        "totp",
        "ninsho",
        Box::new(move |rt, tasks, count| {
            let work = n.totp_work(count);
            let (svc, clock) = (n.svc.clone(), n.clock.clone());
            // Several tasks: the step moves on before the timer (a batch
            // is one round of the accounts).
            let concurrent = tasks > 1;
            if concurrent {
                assert!(count <= ACCOUNTS);
                n.step_clock();
            }
            run_tasks(rt, tasks, work, move |(account, code, next)| {
                let (svc, clock) = (svc.clone(), clock.clone());
                async move {
                    if next && !concurrent {
                        clock.advance(time::Duration::seconds(PERIOD));
                    }
                    let proof = Proof::Authenticator { code: &code };
                    svc.sign_in_complete(&account, proof, None, None)
                        .await
                        .unwrap();
                }
            })
            .0
        }),
    ));

    // The floor's apps, seeds in memory.
    let apps: Arc<Vec<totp_rs::Totp>> = Arc::new((0..ACCOUNTS).map(floor_app).collect());
    out.push((
        "totp",
        "floor",
        Box::new(move |rt, tasks, count| {
            let apps = apps.clone();
            let work = floor_totp_work(&mut server.floor_state.borrow_mut(), &apps, count);
            let floor = server.floor.clone();
            run_tasks(rt, tasks, work, move |(a, code, now)| {
                let (floor, apps) = (floor.clone(), apps.clone());
                async move {
                    floor
                        .use_totp(&apps[a], &floor_account(a), &code, now)
                        .await;
                }
            })
            .0
        }),
    ));

    match &server.floor {
        Floor::Pg { pool, .. } => {
            let pool = pool.clone();
            out.push((
                "raw",
                "select_1",
                Box::new(move |rt, tasks, count| {
                    let pool = pool.clone();
                    run_tasks(rt, tasks, vec![(); count], move |()| {
                        let pool = pool.clone();
                        async move {
                            let _: (i32,) =
                                sqlx::query_as("SELECT 1").fetch_one(&pool).await.unwrap();
                        }
                    })
                    .0
                }),
            ));
        }
        Floor::Redis {
            conn, prefix, incr, ..
        } => {
            let conn2 = conn.clone();
            out.push((
                "raw",
                "ping",
                Box::new(move |rt, tasks, count| {
                    let conn = conn2.clone();
                    run_tasks(rt, tasks, vec![(); count], move |()| {
                        let mut conn = conn.clone();
                        async move {
                            let _: String =
                                redis::cmd("PING").query_async(&mut conn).await.unwrap();
                        }
                    })
                    .0
                }),
            ));
            let (conn, key, incr) = (conn.clone(), format!("{prefix}:floor:raw"), incr.clone());
            out.push((
                "raw",
                "evalsha",
                Box::new(move |rt, tasks, count| {
                    let (conn, key, incr) = (conn.clone(), key.clone(), incr.clone());
                    run_tasks(rt, tasks, vec![(); count], move |()| {
                        let (mut conn, key, incr) = (conn.clone(), key.clone(), incr.clone());
                        async move {
                            let _: i64 = incr.key(key).invoke_async(&mut conn).await.unwrap();
                        }
                    })
                    .0
                }),
            ));
        }
    }
    out
}

/// A bench: server, row and who (`ninsho`, `floor`, or the raw round
/// trip's name).
type Key = (String, String, String);

/// Criterion's samples (iterations, time) of each bench.
type Samples = BTreeMap<Key, Vec<(u64, Duration)>>;

/// Criterion's median: the median of the per-iteration means of the
/// measured samples (the last `SAMPLES` calls; the warm-up's come first).
fn median(samples: &[(u64, Duration)]) -> Option<Duration> {
    let measured = &samples[samples.len().saturating_sub(SAMPLES)..];
    let mut per_iter: Vec<f64> = measured
        .iter()
        .map(|(iters, d)| d.as_secs_f64() / *iters as f64)
        .collect();
    if per_iter.is_empty() {
        return None;
    }
    per_iter.sort_by(f64::total_cmp);
    let mid = per_iter.len() / 2;
    let m = if per_iter.len().is_multiple_of(2) {
        (per_iter[mid - 1] + per_iter[mid]) / 2.0
    } else {
        per_iter[mid]
    };
    Some(Duration::from_secs_f64(m))
}

fn micros(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1} µs", d.as_secs_f64() * 1e6),
    )
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".into(),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let suffix = format!(
        "{}_{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp()
    );
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // then every part runs once on small batches.
    let benching = std::env::args().any(|a| a == "--bench");
    let batch = if benching { BATCH } else { 32 };

    let (pool, schema, pg_store, pg_floor) = rt.block_on(postgres(&suffix));
    let (conn, prefix, redis_store, redis_floor) = rt.block_on(redis_server(&suffix));
    let started = Instant::now();
    let servers = [
        Server {
            name: "postgres",
            ninsho: Ninsho::new(&rt, pg_store, "pg"),
            floor: pg_floor,
            floor_state: RefCell::new(FloorState {
                next_id: 0,
                now: T0,
            }),
        },
        Server {
            name: "redis",
            ninsho: Ninsho::new(&rt, redis_store, "redis"),
            floor: redis_floor,
            floor_state: RefCell::new(FloorState {
                next_id: 0,
                now: T0,
            }),
        },
    ];
    println!(
        "floor: {} accounts registered per store in {:.1?}",
        ACCOUNTS,
        started.elapsed()
    );

    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    // Criterion's samples (iterations, time) of each bench.
    let samples: Rc<RefCell<Samples>> = Rc::default();
    for server in &servers {
        let mut g = c.benchmark_group(format!("floor/{}", server.name));
        g.sample_size(SAMPLES);
        for (row, who, run) in rows(server) {
            let key = (server.name.to_owned(), row.to_owned(), who.to_owned());
            let samples = samples.clone();
            g.bench_function(format!("{row}/{who}"), |b| {
                b.iter_custom(|iters| {
                    let took = run(&rt, 1, usize::try_from(iters).unwrap());
                    samples
                        .borrow_mut()
                        .entry(key.clone())
                        .or_default()
                        .push((iters, took));
                    took
                });
            });
        }
        g.finish();
    }

    // Throughput: a fixed batch over TASKS tasks, ROUNDS times, ninsho
    // and its floor taking turns so a server slowing down for a while
    // (a disk flushing for someone else) weighs on both; the median round.
    let mut rates: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for _ in 0..ROUNDS {
        for server in &servers {
            for (row, who, run) in rows(server) {
                let took = run(&rt, TASKS, batch);
                rates
                    .entry((server.name.into(), row.into(), who.into()))
                    .or_default()
                    .push(batch as f64 / took.as_secs_f64());
            }
        }
    }
    let rates: BTreeMap<Key, f64> = rates
        .into_iter()
        .map(|((server, row, who), mut r)| {
            r.sort_by(f64::total_cmp);
            let rounds: Vec<String> = r.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "floor/{server}/{row}/{who}: {TASKS} tasks, {batch} per round: {}/s (median {:.0}/s)",
                rounds.join(", "),
                r[r.len() / 2]
            );
            ((server, row, who), r[r.len() / 2])
        })
        .collect();

    // The summary.
    let samples = samples.borrow();
    let med = |s: &str, r: &str, w: &str| {
        samples
            .get(&(s.into(), r.into(), w.into()))
            .and_then(|v| median(v))
    };
    let rate = |s: &str, r: &str, w: &str| rates.get(&(s.into(), r.into(), w.into())).copied();
    println!();
    println!(
        "Both ratios say how many times the floor's cost ninsho pays: median \
         latency ninsho/floor (1 task), sign-ins per second floor/ninsho ({TASKS} tasks)."
    );
    println!(
        "{:<9} {:<5} {:>12} {:>12} {:>7} {:>14} {:>14} {:>7}",
        "store", "row", "ninsho p50", "floor p50", "ratio", "ninsho/s@16", "floor/s@16", "ratio"
    );
    for server in &servers {
        for row in ["sms", "totp"] {
            let (ours, floor) = (
                med(server.name, row, "ninsho"),
                med(server.name, row, "floor"),
            );
            let (ours_rate, floor_rate) = (
                rate(server.name, row, "ninsho"),
                rate(server.name, row, "floor"),
            );
            println!(
                "{:<9} {:<5} {:>12} {:>12} {:>7} {:>14} {:>14} {:>7}",
                server.name,
                row,
                micros(ours),
                micros(floor),
                ratio(
                    ours.map(|d| d.as_secs_f64()),
                    floor.map(|d| d.as_secs_f64())
                ),
                ours_rate.map_or("-".into(), |r| format!("{r:.0}")),
                floor_rate.map_or("-".into(), |r| format!("{r:.0}")),
                // Throughput ratio: floor over ninsho (how many times
                // more sign-ins the floor does per second).
                ratio(floor_rate, ours_rate),
            );
        }
    }
    for (server, what) in [
        ("postgres", "select_1"),
        ("redis", "ping"),
        ("redis", "evalsha"),
    ] {
        println!(
            "{:<9} raw {:<8} p50 {:>10}, {:>7}/s @{TASKS}",
            server,
            what,
            micros(med(server, "raw", what)),
            rate(server, "raw", what).map_or("-".into(), |r| format!("{r:.0}")),
        );
    }

    // Leave nothing behind.
    rt.block_on(async {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await
            .unwrap();
        let mut conn = conn;
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> =
                conn.scan_match(format!("{prefix}:*")).await.unwrap();
            let mut keys = Vec::new();
            while let Some(k) = iter.next_item().await {
                keys.push(k.unwrap());
            }
            keys
        };
        for chunk in keys.chunks(512) {
            let _: i64 = redis::cmd("UNLINK")
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    });
    c.final_summary();
}
