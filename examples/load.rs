//! A load test of whole sign-ins that anyone can run against the store they
//! deploy on, ending with an audit of what the store let through:
//!
//! ```text
//! cargo run --release --example load -- --store memory --users 10000 --concurrency 64 --seconds 30
//! ```
//!
//! # What it measures
//!
//! Second steps of signing in, by SMS, as a busy service sees them. First
//! `--users` accounts are registered through the public API, in parallel:
//! a phone verified with a code and two-step sign-in turned on in the same
//! step ([`phone_send_code`](ninsho::service::TwoFactor::phone_send_code),
//! [`phone_confirm`](ninsho::service::TwoFactor::phone_confirm)), each
//! account keeping its recovery codes. Then `--concurrency` tasks run for
//! `--seconds`. Each picks a random user that no other task is signing in
//! and plays a whole second step: `sign_in_begin`, `sign_in_send_code` by
//! SMS, and `sign_in_complete` with the code the gateway received. A share
//! of the sign-ins (`--wrong-rate`, 10 % by default) types a wrong code
//! first, which must be refused as wrong, then the right one; another share
//! (`--recovery-rate`, 2 %) signs in with one of the user's recovery codes
//! instead, each code used once (a user whose codes are used up signs in
//! by SMS). Any other answer than the expected one is an error, counted by
//! step and kind.
//!
//! Two app instances serve the load, as two app servers would: two
//! `TwoFactor` services over two store handles of their own (two
//! connection pools, two Redis connections) on the same database. Each
//! call goes to the other instance than the call before it, as behind a
//! round-robin load balancer without sticky sessions, so a code sent by
//! one instance is checked by the other. (Memory is one process's: with
//! `--store memory` both instances share the one `MemoryStore`.)
//!
//! The service runs as in production: the system clock, the operating
//! system's randomness, the default code and failure policies. Only the
//! send limits are raised so far that they never refuse, since a load test
//! sends a number far more codes than a person would. Nothing is really
//! sent: the gateway keeps the last code per number for the simulated user
//! to type.
//!
//! # Running it on each store
//!
//! Every store but memory needs its cargo feature; without it the example
//! exits with status 2 and prints the command to use.
//!
//! ```text
//! cargo run --release --example load -- --store memory
//! cargo run --release --example load --features sqlite -- --store sqlite
//! cargo run --release --example load --features postgres -- --store postgres
//! cargo run --release --example load --features redis -- --store redis
//! cargo run --release --example load --features redis -- --store redis-cluster
//! cargo run --release --example load --features mysql -- --store mysql
//! ```
//!
//! - PostgreSQL: `NINSHO_PG_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/test`); the run works in a schema
//!   of its own, `ninsho_load_<pid>_<nanos>`, dropped at the end.
//! - Redis: `NINSHO_REDIS_URL` (default `redis://127.0.0.1:6379/`); every
//!   key is under the prefix `ninsho-load:<pid>_<nanos>`, deleted at the end.
//! - Redis Cluster: `NINSHO_REDIS_CLUSTER_URL`, the nodes' URLs separated by
//!   commas (no default); the keys as for Redis, under the hash tag
//!   `{ninsho-load:<pid>_<nanos>}`, deleted at the end.
//! - MySQL or MariaDB: `NINSHO_MYSQL_URL` (default
//!   `mysql://root@127.0.0.1:3306/test`); the run works in a database of
//!   its own, `ninsho_load_<pid>_<nanos>`, dropped at the end.
//! - SQLite: a database file of its own in the temp directory (WAL
//!   journal, sqlx's defaults otherwise), removed at the end.
//!
//! Flags (defaults in brackets): `--store` (`memory`), `--users` (10000),
//! `--concurrency` (64), `--seconds` (30), `--wrong-rate` (0.10),
//! `--recovery-rate` (0.02), both as a fraction or a percentage (`10%`),
//! `--pool` (connections per pool for PostgreSQL, MySQL and SQLite: the
//! concurrency, at least 2 and at most 16), and `--quick` for 200 users, 8
//! tasks and 3 seconds (flags given explicitly win), which is what CI runs.
//!
//! # What the audit proves
//!
//! After the run, with the instances still up:
//!
//! 1. **No code succeeded twice.** Every code that signed someone in is
//!    presented again (the same challenge and code) and must be refused as
//!    already used; so must every recovery code that was spent. A used
//!    recovery code typed again counts as a failed guess against the
//!    account, so the audit clears the account's failure run after each
//!    (as an operator would, with `reset_failures`), or the next replay
//!    would meet the back-off instead.
//! 2. **No failure was lost, no success doubled.** An [`EventSink`] counts
//!    the audit events. The `failed` events must be exactly the wrong codes
//!    the simulator typed (reason `wrong_code`) and the replays
//!    (`already_used`), with no other reason; the `verified` sign-in events
//!    exactly the sign-ins by code; the `recovery_code_used` events exactly
//!    the sign-ins by recovery code; and no account may have been locked.
//!
//! Under concurrency and with two instances, these are the store's atomic
//! operations at work: a compare-and-set that let two writers through would
//! show as a code accepted twice or a wrong code not counted. The example
//! prints `audit: ok` or each mismatch, and exits with status 0 only when
//! the audit passed and no error happened (1 otherwise; 2 for bad
//! arguments or a missing feature).
//!
//! # Reading the numbers
//!
//! - **throughput**: whole sign-ins (a code or recovery code accepted) per
//!   second of the run; a sign-in that typed a wrong code first counts
//!   once.
//! - **latency** per step, in milliseconds (p50, p99, max), timed around
//!   each call, so it includes waiting for a pooled connection and for a
//!   CPU. `complete` is the call that accepts the right code, `wrong code`
//!   the one refusing the wrong code, `recovery` a recovery-code
//!   completion. The store calls behind each step are counted in
//!   `benches/journeys.rs` and the README (begin 1, send 2, complete 2,
//!   recovery 2).
//! - **purge**: `PurgeStore::purge` runs once a second on instance `a`
//!   beside the traffic, as a host's schedule would; it must not disturb
//!   the audit. Nothing a 30-second run writes has expired yet, so it
//!   usually deletes nothing.
//! - At concurrency 1 a sign-in's latency is its store round trips one
//!   after the other. With more tasks, throughput grows until a core, the
//!   database's write path or the pool is saturated; after that, latency
//!   grows with the queue (tasks ≈ throughput × time per sign-in).
//! - The load generator, both instances and the database share the
//!   machine, so the figures are the machine's as much as ninsho's:
//!   compare stores and concurrencies on one machine, not machines.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration as StdDuration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ninsho::events::{Event, EventSink};
use ninsho::gateway::{DeliveryError, Gateway, Message, Receipt};
use ninsho::limits::{RateLimit, SendLimits};
use ninsho::model::{ChallengeId, Purpose};
use ninsho::prelude::*;
use ninsho::store::{MemoryStore, Purged, Store};
use ninsho::{OsRandom, Random};

type BoxError = Box<dyn StdError + Send + Sync>;

// ------------------------------------------------------------------ options

/// The store the run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `MemoryStore` (default features).
    Memory,
    /// `SqliteStore` (feature `sqlite`).
    Sqlite,
    /// `PgStore` (feature `postgres`).
    Postgres,
    /// `RedisStore` (feature `redis`).
    Redis,
    /// `RedisStore` on a Redis Cluster (feature `redis`).
    RedisCluster,
    /// `MySqlStore` (feature `mysql`).
    MySql,
}

impl StoreKind {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "memory" => Self::Memory,
            "sqlite" => Self::Sqlite,
            "postgres" => Self::Postgres,
            "redis" => Self::Redis,
            "redis-cluster" => Self::RedisCluster,
            "mysql" => Self::MySql,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::RedisCluster => "redis-cluster",
            Self::MySql => "mysql",
        }
    }

    /// The cargo feature the store needs, if any.
    fn feature(self) -> Option<&'static str> {
        match self {
            Self::Memory => None,
            Self::RedisCluster => Some("redis"),
            other => Some(other.name()),
        }
    }

    /// Whether this build can run the store.
    fn compiled_in(self) -> bool {
        match self {
            Self::Memory => true,
            Self::Sqlite => cfg!(feature = "sqlite"),
            Self::Postgres => cfg!(feature = "postgres"),
            Self::Redis | Self::RedisCluster => cfg!(feature = "redis"),
            Self::MySql => cfg!(feature = "mysql"),
        }
    }
}

/// What one run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The store.
    pub store: StoreKind,
    /// Accounts registered before the run.
    pub users: usize,
    /// Tasks signing in at once.
    pub concurrency: usize,
    /// How long the run lasts.
    pub seconds: u64,
    /// The share of code sign-ins that type a wrong code first.
    pub wrong_rate: f64,
    /// The share of sign-ins made with a recovery code.
    pub recovery_rate: f64,
    /// Connections per pool (PostgreSQL, MySQL, SQLite).
    pub pool: u32,
}

const USAGE: &str = "usage: load [--store memory|sqlite|postgres|redis|redis-cluster|mysql] [--users N] \
[--concurrency C] [--seconds S] [--wrong-rate R] [--recovery-rate R] [--pool P] [--quick]";

/// The options from the command line (`Err` holds what to tell the user).
fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut given: HashMap<&str, &str> = HashMap::new();
    let mut quick = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (arg.as_str(), None),
        };
        match flag {
            "--quick" if inline.is_none() => quick = true,
            "-h" | "--help" => return Err(String::new()),
            "--store" | "--users" | "--concurrency" | "--seconds" | "--wrong-rate"
            | "--recovery-rate" | "--pool" => {
                let value = match inline {
                    Some(value) => value,
                    None => rest
                        .next()
                        .map(String::as_str)
                        .ok_or(format!("{flag} needs a value"))?,
                };
                given.insert(flag, value);
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let number = |flag: &str, default: u64| -> Result<u64, String> {
        given.get(flag).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{flag} takes a whole number, not {v:?}"))
        })
    };
    let rate = |flag: &str, default: f64| -> Result<f64, String> {
        let Some(v) = given.get(flag) else {
            return Ok(default);
        };
        let parsed = match v.strip_suffix('%') {
            Some(percent) => percent.parse::<f64>().map(|p| p / 100.0),
            None => v.parse::<f64>(),
        };
        match parsed {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(format!(
                "{flag} takes a share between 0 and 1 (or 0% and 100%), not {v:?}"
            )),
        }
    };
    let store = match given.get("--store") {
        Some(name) => StoreKind::parse(name).ok_or(format!(
            "--store takes memory, sqlite, postgres, redis, redis-cluster or mysql, not {name:?}"
        ))?,
        None => StoreKind::Memory,
    };
    let (users, concurrency, seconds) = if quick { (200, 8, 3) } else { (10_000, 64, 30) };
    let users = number("--users", users)?;
    let concurrency = number("--concurrency", concurrency)?;
    let seconds = number("--seconds", seconds)?;
    if concurrency == 0 || seconds == 0 {
        return Err("--concurrency and --seconds must be at least 1".into());
    }
    // Phone numbers +81 90-1000-0000 onwards: room for 9 million users.
    if users < concurrency || users > 9_000_000 {
        return Err(format!(
            "--users must be at least the concurrency ({concurrency}) and at most 9000000"
        ));
    }
    let pool = number("--pool", concurrency.clamp(2, 16))?;
    Ok(Options {
        store,
        users: usize::try_from(users).map_err(|e| e.to_string())?,
        concurrency: usize::try_from(concurrency).map_err(|e| e.to_string())?,
        seconds,
        wrong_rate: rate("--wrong-rate", 0.10)?,
        recovery_rate: rate("--recovery-rate", 0.02)?,
        pool: u32::try_from(pool.max(1)).map_err(|e| e.to_string())?,
    })
}

// ------------------------------------------------------------ the parts

/// The users' phones: keeps the last code sent to each number, for the
/// simulated user to type.
#[derive(Debug, Default)]
struct Phones {
    inbox: Mutex<HashMap<String, String>>,
}

impl Phones {
    /// The code that last arrived at `to`, taken out of the inbox.
    fn read(&self, to: &str) -> Option<String> {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(to)
    }
}

#[async_trait]
impl Gateway for Phones {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        if let Some(secret) = &message.secret {
            self.inbox
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(message.to.clone(), secret.expose_secret().to_owned());
        }
        Ok(Receipt::new(None))
    }
}

/// Counts the audit events the audit compares (both instances report
/// here).
#[derive(Debug, Default)]
struct Tally {
    sign_in_verified: AtomicU64,
    recovery_used: AtomicU64,
    locked: AtomicU64,
    failed: Mutex<BTreeMap<&'static str, u64>>,
}

/// The counts at one moment.
#[derive(Debug, Clone, Default)]
struct Counts {
    sign_in_verified: u64,
    recovery_used: u64,
    locked: u64,
    failed: BTreeMap<&'static str, u64>,
}

impl EventSink for Tally {
    fn record(&self, event: &Event) {
        match event {
            Event::Verified {
                purpose: Purpose::SignIn,
                ..
            } => {
                self.sign_in_verified.fetch_add(1, Ordering::Relaxed);
            }
            Event::RecoveryCodeUsed { .. } => {
                self.recovery_used.fetch_add(1, Ordering::Relaxed);
            }
            Event::Locked { .. } => {
                self.locked.fetch_add(1, Ordering::Relaxed);
            }
            Event::Failed { reason, .. } => {
                *self
                    .failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(reason.code())
                    .or_default() += 1;
            }
            _ => {}
        }
    }
}

impl Tally {
    fn counts(&self) -> Counts {
        Counts {
            sign_in_verified: self.sign_in_verified.load(Ordering::Relaxed),
            recovery_used: self.recovery_used.load(Ordering::Relaxed),
            locked: self.locked.load(Ordering::Relaxed),
            failed: self
                .failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

impl Counts {
    /// What happened between `before` and `self`.
    fn since(&self, before: &Counts) -> Counts {
        let mut failed = self.failed.clone();
        for (reason, n) in &before.failed {
            if let Some(now) = failed.get_mut(reason) {
                *now -= n;
            }
        }
        failed.retain(|_, n| *n > 0);
        Counts {
            sign_in_verified: self.sign_in_verified - before.sign_in_verified,
            recovery_used: self.recovery_used - before.recovery_used,
            locked: self.locked - before.locked,
            failed,
        }
    }
}

/// SplitMix64, seeded from the operating system: the simulator's own
/// choices (which user, which kind of sign-in). The service draws its
/// codes from `OsRandom` itself.
struct Dice(u64);

impl Dice {
    fn new() -> Result<Self, BoxError> {
        let mut seed = [0u8; 8];
        OsRandom.fill(&mut seed)?;
        Ok(Self(u64::from_le_bytes(seed)))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `true` with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// A registered user, held by one task at a time.
#[derive(Debug)]
struct User {
    id: AccountId,
    /// E.164, as the gateway sees it.
    phone: String,
    /// Recovery codes not used yet.
    recovery: Vec<String>,
}

/// Two app instances on one database.
struct Stores {
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
    /// What they are, for the report.
    what: String,
    cleanup: Cleanup,
}

/// What to remove when the run ends.
enum Cleanup {
    Nothing,
    #[cfg(feature = "sqlite")]
    Sqlite {
        pools: [sqlx::SqlitePool; 2],
        path: std::path::PathBuf,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        pools: [sqlx::PgPool; 2],
        schema: String,
    },
    #[cfg(feature = "redis")]
    Redis {
        conn: redis::aio::ConnectionManager,
        prefix: String,
    },
    #[cfg(feature = "redis")]
    RedisCluster {
        conn: redis::cluster_async::ClusterConnection,
        prefix: String,
    },
    #[cfg(feature = "mysql")]
    MySql {
        pools: [sqlx::MySqlPool; 2],
        database: String,
    },
}

/// `<pid>_<nanos>`: unique per run.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "redis",
        feature = "mysql"
    )),
    allow(dead_code)
)]
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}_{nanos}", std::process::id())
}

#[cfg_attr(
    not(any(feature = "postgres", feature = "redis", feature = "mysql")),
    allow(dead_code)
)]
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A URL without its user information (a password may be in it).
#[cfg_attr(
    not(any(feature = "postgres", feature = "redis", feature = "mysql")),
    allow(dead_code)
)]
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => "(the URL)".to_owned(),
    }
}

async fn open_stores(opts: &Options) -> Result<Stores, BoxError> {
    match opts.store {
        StoreKind::Memory => {
            let store = Arc::new(MemoryStore::new());
            Ok(Stores {
                a: store.clone(),
                b: store,
                what: "one MemoryStore, shared by both instances".into(),
                cleanup: Cleanup::Nothing,
            })
        }
        #[cfg(feature = "sqlite")]
        StoreKind::Sqlite => open_sqlite(opts).await,
        #[cfg(feature = "postgres")]
        StoreKind::Postgres => open_postgres(opts).await,
        #[cfg(feature = "redis")]
        StoreKind::Redis => open_redis().await,
        #[cfg(feature = "redis")]
        StoreKind::RedisCluster => open_redis_cluster().await,
        #[cfg(feature = "mysql")]
        StoreKind::MySql => open_mysql(opts).await,
        #[allow(unreachable_patterns)]
        other => Err(format!("store {} is not compiled in", other.name()).into()),
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(opts: &Options) -> Result<Stores, BoxError> {
    use ninsho::store::SqliteStore;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    let path = std::env::temp_dir().join(format!("ninsho_load_{}.db", run_id()));
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(StdDuration::from_secs(30));
    let pool = || {
        SqlitePoolOptions::new()
            .max_connections(opts.pool)
            .acquire_timeout(StdDuration::from_secs(30))
            .connect_with(options.clone())
    };
    let a = pool().await?;
    let first = SqliteStore::new(a.clone());
    first.migrate().await?;
    let b = pool().await?;
    Ok(Stores {
        a: Arc::new(first),
        b: Arc::new(SqliteStore::new(b.clone())),
        what: format!(
            "SQLite file {}, two pools of {} connections",
            path.display(),
            opts.pool
        ),
        cleanup: Cleanup::Sqlite {
            pools: [a, b],
            path,
        },
    })
}

#[cfg(feature = "postgres")]
async fn open_postgres(opts: &Options) -> Result<Stores, BoxError> {
    use ninsho::store::PgStore;
    use sqlx::postgres::PgPoolOptions;

    let url = env_or("NINSHO_PG_URL", "postgres://postgres@127.0.0.1:5432/test");
    let pool = || {
        PgPoolOptions::new()
            .max_connections(opts.pool)
            .acquire_timeout(StdDuration::from_secs(30))
            .connect(&url)
    };
    let unreachable = |e: sqlx::Error| -> BoxError {
        format!(
            "cannot reach PostgreSQL at {} ({e}); is it running? set NINSHO_PG_URL",
            shown(&url)
        )
        .into()
    };
    let a = pool().await.map_err(unreachable)?;
    let b = pool().await.map_err(unreachable)?;
    let schema = format!("ninsho_load_{}", run_id());
    let first = PgStore::with_schema(a.clone(), &schema)?;
    let second = PgStore::with_schema(b.clone(), &schema)?;
    let cleanup = Cleanup::Postgres {
        pools: [a, b],
        schema: schema.clone(),
    };
    if let Err(e) = first.migrate().await {
        // The schema may exist half made: drop it before giving up.
        let _ = cleanup.run().await;
        return Err(e.into());
    }
    Ok(Stores {
        a: Arc::new(first),
        b: Arc::new(second),
        what: format!(
            "PostgreSQL at {}, schema {schema}, two pools of {} connections",
            shown(&url),
            opts.pool
        ),
        cleanup,
    })
}

#[cfg(feature = "redis")]
async fn open_redis() -> Result<Stores, BoxError> {
    use ninsho::store::RedisStore;
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};

    let url = env_or("NINSHO_REDIS_URL", "redis://127.0.0.1:6379/");
    let connect = || async {
        let client = redis::Client::open(url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_response_timeout(Some(StdDuration::from_secs(10)));
        ConnectionManager::new_with_config(client, config).await
    };
    let unreachable = |e: redis::RedisError| -> BoxError {
        format!(
            "cannot reach Redis at {} ({e}); is it running? set NINSHO_REDIS_URL",
            shown(&url)
        )
        .into()
    };
    let a = connect().await.map_err(unreachable)?;
    let b = connect().await.map_err(unreachable)?;
    let prefix = format!("ninsho-load:{}", run_id());
    // A throwaway namespace, deleted at the end: a server that keeps
    // nothing on disk is fine here (never in production, see
    // `dangerously_allow_volatile_server`), and the namespace is new, so
    // initialising it is the deliberate first-deployment step.
    let store = |manager: ConnectionManager| {
        RedisStore::builder(prefix.clone())
            .dangerously_allow_volatile_server()
            .build(manager)
    };
    let first = store(a.clone()).await?;
    first.initialise().await?;
    let second = store(b).await?;
    Ok(Stores {
        a: Arc::new(first),
        b: Arc::new(second),
        what: format!(
            "Redis at {}, key prefix {prefix}, two connections",
            shown(&url)
        ),
        cleanup: Cleanup::Redis { conn: a, prefix },
    })
}

#[cfg(feature = "redis")]
async fn open_redis_cluster() -> Result<Stores, BoxError> {
    use ninsho::store::RedisStore;
    use redis::cluster::ClusterClient;

    let urls = env_or("NINSHO_REDIS_CLUSTER_URL", "");
    let nodes: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if nodes.is_empty() {
        return Err(
            "set NINSHO_REDIS_CLUSTER_URL to the cluster nodes' URLs, separated by commas".into(),
        );
    }
    let shown_nodes = nodes.iter().map(|u| shown(u)).collect::<Vec<_>>().join(",");
    let client = ClusterClient::new(nodes)?;
    let unreachable = |e: redis::RedisError| -> BoxError {
        format!("cannot reach the Redis Cluster at {shown_nodes} ({e})").into()
    };
    let a = client.get_async_connection().await.map_err(unreachable)?;
    let b = client.get_async_connection().await.map_err(unreachable)?;
    let prefix = format!("ninsho-load:{}", run_id());
    // As for one server: a throwaway namespace on a test cluster.
    let store = |conn| {
        RedisStore::builder(prefix.clone())
            .dangerously_allow_volatile_server()
            .build_cluster(conn)
    };
    let first = store(a.clone()).await?;
    first.initialise().await?;
    let second = store(b).await?;
    Ok(Stores {
        a: Arc::new(first),
        b: Arc::new(second),
        what: format!(
            "Redis Cluster at {shown_nodes}, key hash tag {{{prefix}}}, two cluster connections"
        ),
        cleanup: Cleanup::RedisCluster { conn: a, prefix },
    })
}

#[cfg(feature = "mysql")]
async fn open_mysql(opts: &Options) -> Result<Stores, BoxError> {
    use ninsho::store::MySqlStore;
    use sqlx::mysql::MySqlPoolOptions;

    let url = env_or("NINSHO_MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
    let pool = || {
        MySqlPoolOptions::new()
            .max_connections(opts.pool)
            .acquire_timeout(StdDuration::from_secs(30))
            .connect(&url)
    };
    let unreachable = |e: sqlx::Error| -> BoxError {
        format!(
            "cannot reach MySQL/MariaDB at {} ({e}); is it running? set NINSHO_MYSQL_URL",
            shown(&url)
        )
        .into()
    };
    let a = pool().await.map_err(unreachable)?;
    let b = pool().await.map_err(unreachable)?;
    let database = format!("ninsho_load_{}", run_id());
    let first = MySqlStore::with_database(a.clone(), &database)?;
    let second = MySqlStore::with_database(b.clone(), &database)?;
    let cleanup = Cleanup::MySql {
        pools: [a, b],
        database: database.clone(),
    };
    // The database is new, so initialising it is the deliberate
    // first-deployment step.
    let ready = async {
        first.migrate().await?;
        first.initialise().await
    };
    if let Err(e) = ready.await {
        // The database may exist half made: drop it before giving up.
        let _ = cleanup.run().await;
        return Err(e.into());
    }
    Ok(Stores {
        a: Arc::new(first),
        b: Arc::new(second),
        what: format!(
            "MySQL/MariaDB at {}, database {database}, two pools of {} connections",
            shown(&url),
            opts.pool
        ),
        cleanup,
    })
}

impl Cleanup {
    /// Removes what the run made; says what it removed.
    async fn run(self) -> Result<String, BoxError> {
        match self {
            Self::Nothing => Ok("nothing to remove".into()),
            #[cfg(feature = "sqlite")]
            Self::Sqlite { pools, path } => {
                for pool in pools {
                    pool.close().await;
                }
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut file = path.as_os_str().to_owned();
                    file.push(suffix);
                    match std::fs::remove_file(&file) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(e.into());
                        }
                        _ => {}
                    }
                }
                Ok(format!("removed {}", path.display()))
            }
            #[cfg(feature = "postgres")]
            Self::Postgres { pools, schema } => {
                // The name is ours: letters, digits and underscores.
                let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                sqlx::query(sqlx::AssertSqlSafe(drop))
                    .execute(&pools[0])
                    .await?;
                for pool in pools {
                    pool.close().await;
                }
                Ok(format!("dropped schema {schema}"))
            }
            #[cfg(feature = "redis")]
            Self::Redis { mut conn, prefix } => {
                // The prefix is ours and holds no glob characters.
                let pattern = format!("{prefix}:*");
                let mut cursor: u64 = 0;
                let mut removed = 0usize;
                loop {
                    let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await?;
                    if !keys.is_empty() {
                        removed += keys.len();
                        let _: i64 = redis::cmd("UNLINK")
                            .arg(keys)
                            .query_async(&mut conn)
                            .await?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                Ok(format!("deleted {removed} keys under {prefix}"))
            }
            #[cfg(feature = "redis")]
            Self::RedisCluster { mut conn, prefix } => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                // Every key sits on the slot of the tag, on one master.
                let tag = format!("{{{prefix}}}");
                let route = || {
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
                        &tag,
                        SlotAddr::Master,
                    )))
                };
                let pattern = format!("{tag}:*");
                let mut cursor: u64 = 0;
                let mut removed = 0usize;
                loop {
                    let mut scan = redis::cmd("SCAN");
                    scan.arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000);
                    let reply = conn.route_command(scan, route()).await?;
                    let (next, keys): (u64, Vec<Vec<u8>>) =
                        redis::FromRedisValue::from_redis_value(reply)?;
                    if !keys.is_empty() {
                        removed += keys.len();
                        let _: i64 = redis::cmd("UNLINK")
                            .arg(keys)
                            .query_async(&mut conn)
                            .await?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                Ok(format!("deleted {removed} keys under {tag}"))
            }
            #[cfg(feature = "mysql")]
            Self::MySql { pools, database } => {
                // The name is ours: letters, digits and underscores.
                let drop = format!("DROP DATABASE IF EXISTS `{database}`");
                sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                    .execute(&pools[0])
                    .await?;
                for pool in pools {
                    pool.close().await;
                }
                Ok(format!("dropped database {database}"))
            }
        }
    }
}

/// One app instance: the service over one store handle. Both instances
/// hold the same keys (from the deployment's secret manager, in real
/// life) and report to the same event sink.
fn instance(
    store: Arc<dyn Store>,
    phones: Arc<Phones>,
    tally: Arc<Tally>,
    keys: &[[u8; 32]; 2],
) -> Result<TwoFactor, BoxError> {
    // A load test sends one number many codes: limits that never refuse.
    let plenty = RateLimit::new(1_000_000_000, time::Duration::minutes(10));
    let limits = SendLimits {
        per_destination: plenty,
        per_account: plenty,
        per_caller: plenty,
        ..SendLimits::default()
    };
    Ok(TwoFactor::builder(
        "Load",
        store,
        phones,
        KeyedHasher::new(HashKey::new(KeyId(1), &keys[0])?),
        Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &keys[1])?)),
    )
    .limits(limits)
    .events(tally)
    .build()?)
}

/// Everything the tasks share.
struct Shared {
    instances: [TwoFactor; 2],
    phones: Arc<Phones>,
    /// Users no task holds.
    idle: Mutex<Vec<User>>,
}

impl Shared {
    /// A random idle user, now held by the caller. There is always one:
    /// there are at least as many users as tasks.
    fn take_user(&self, dice: &mut Dice) -> Option<User> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.is_empty() {
            return None;
        }
        let i = dice.below(idle.len());
        Some(idle.swap_remove(i))
    }

    fn give_back(&self, user: User) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(user);
    }
}

/// Hands out the instances in turn, like a round-robin load balancer.
struct Balancer {
    turn: usize,
}

impl Balancer {
    fn next<'a>(&mut self, shared: &'a Shared) -> &'a TwoFactor {
        self.turn = self.turn.wrapping_add(1);
        &shared.instances[self.turn % 2]
    }
}

/// What a step's failure was, as `step: kind`.
fn kind(step: &str, error: &Error) -> String {
    let kind = match error {
        Error::Refused(refusal) => format!("refused ({})", refusal.code()),
        Error::Store(e) => format!("store error ({:?})", e.kind()),
        Error::Delivery { .. } => "delivery failed".to_owned(),
        Error::Random(_) => "random source failed".to_owned(),
        Error::RetiredKey(_) => "retired key".to_owned(),
        Error::Misuse(_) => "misuse".to_owned(),
        _ => "other error".to_owned(),
    };
    format!("{step}: {kind}")
}

fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

// ------------------------------------------------------------------ setup

/// Registers the users: a verified phone, two-step sign-in on, recovery
/// codes kept. In parallel, with a progress line on stderr.
async fn set_up(shared: &Arc<Shared>, opts: &Options) -> Result<Vec<User>, BoxError> {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let workers = opts.concurrency.max(16).min(opts.users);
    let mut handles = Vec::with_capacity(workers);
    for worker in 0..workers {
        let (shared, next, done, users) = (shared.clone(), next.clone(), done.clone(), opts.users);
        handles.push(tokio::spawn(async move {
            let mut registered = Vec::new();
            let mut lb = Balancer { turn: worker };
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= users {
                    return Ok::<_, String>(registered);
                }
                let user = register(&shared, &mut lb, n).await?;
                registered.push(user);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let progress = tokio::spawn(progress(done.clone(), opts.users));
    let mut users = Vec::with_capacity(opts.users);
    let mut failure = None;
    for handle in handles {
        match handle.await {
            Ok(Ok(mut registered)) => users.append(&mut registered),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(format!("a setup task died: {e}"))),
        }
    }
    progress.abort();
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    match failure {
        Some(e) => Err(format!("setup failed: {e}").into()),
        None => Ok(users),
    }
}

/// Prints how far the setup is: in place on a terminal, else every 5 s.
async fn progress(done: Arc<AtomicUsize>, total: usize) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        StdDuration::from_millis(200)
    } else {
        StdDuration::from_secs(5)
    };
    loop {
        tokio::time::sleep(every).await;
        let n = done.load(Ordering::Relaxed);
        if terminal {
            eprint!("\rsetting up users: {n}/{total}");
        } else {
            eprintln!("setting up users: {n}/{total}");
        }
    }
}

/// User `n`: a phone code sent by one instance, confirmed on the other
/// with two-step sign-in turned on.
async fn register(shared: &Shared, lb: &mut Balancer, n: usize) -> Result<User, String> {
    let id = AccountId::new(format!("load-user-{n}"));
    // Japanese mobile numbers, 090-1000-0000 onwards.
    let phone = format!("+8190{}", 10_000_000 + n);
    let ticket = lb
        .next(shared)
        .phone_send_code(&id, &phone, None, None)
        .await
        .map_err(|e| format!("{id}: {}", kind("phone_send_code", &e)))?;
    let code = shared
        .phones
        .read(&phone)
        .ok_or(format!("{id}: no code arrived at {phone}"))?;
    let confirmed = lb
        .next(shared)
        .phone_confirm(&id, &ticket.challenge_id, &code, true)
        .await
        .map_err(|e| format!("{id}: {}", kind("phone_confirm", &e)))?;
    let recovery = confirmed
        .recovery_codes
        .map(|codes| {
            codes
                .expose_secret()
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .ok_or(format!("{id}: two-step sign-in on, but no recovery codes"))?;
    Ok(User {
        id,
        phone,
        recovery,
    })
}

// -------------------------------------------------------------------- run

/// What one task saw.
#[derive(Default)]
struct TaskLog {
    begin: Vec<u64>,
    send: Vec<u64>,
    complete: Vec<u64>,
    wrong: Vec<u64>,
    recovery: Vec<u64>,
    errors: BTreeMap<String, u64>,
    /// Wrong codes typed.
    wrong_typed: u64,
    /// Sign-ins by code (`after_wrong` of them typed a wrong code first).
    by_code: u64,
    after_wrong: u64,
    /// Sign-ins by recovery code.
    by_recovery: u64,
    /// Codes that signed someone in: account, challenge, code.
    used_codes: Vec<(AccountId, ChallengeId, String)>,
    /// Recovery codes that signed someone in.
    used_recovery: Vec<(AccountId, String)>,
}

impl TaskLog {
    fn merge(&mut self, other: TaskLog) {
        self.begin.extend(other.begin);
        self.send.extend(other.send);
        self.complete.extend(other.complete);
        self.wrong.extend(other.wrong);
        self.recovery.extend(other.recovery);
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.wrong_typed += other.wrong_typed;
        self.by_code += other.by_code;
        self.after_wrong += other.after_wrong;
        self.by_recovery += other.by_recovery;
        self.used_codes.extend(other.used_codes);
        self.used_recovery.extend(other.used_recovery);
    }
}

/// One task: whole sign-ins of random idle users until `deadline`.
async fn sign_in_task(
    shared: Arc<Shared>,
    opts: Options,
    task: usize,
    deadline: Instant,
) -> Result<TaskLog, BoxError> {
    let mut log = TaskLog::default();
    let mut dice = Dice::new()?;
    let mut lb = Balancer { turn: task };
    while Instant::now() < deadline {
        let Some(mut user) = shared.take_user(&mut dice) else {
            return Err("no idle user: fewer users than tasks".into());
        };
        let recovery = !user.recovery.is_empty() && dice.chance(opts.recovery_rate);
        let wrong_first = !recovery && dice.chance(opts.wrong_rate);
        let outcome = if recovery {
            sign_in_by_recovery(&shared, &mut lb, &mut user, &mut log).await
        } else {
            sign_in_by_code(&shared, &mut lb, &user, wrong_first, &mut log).await
        };
        if let Err(kind) = outcome {
            *log.errors.entry(kind).or_default() += 1;
        }
        shared.give_back(user);
    }
    Ok(log)
}

/// `sign_in_begin`, which must ask for a second step; its methods.
async fn begin(
    shared: &Shared,
    lb: &mut Balancer,
    user: &User,
    log: &mut TaskLog,
) -> Result<Vec<Method>, String> {
    let t = Instant::now();
    let start = lb
        .next(shared)
        .sign_in_begin(&user.id, None)
        .await
        .map_err(|e| kind("begin", &e))?;
    log.begin.push(nanos(t));
    match start {
        SignInStart::Required { methods } => Ok(methods),
        _ => Err("begin: no second step asked for".into()),
    }
}

/// A wrong code for `right`: its last digit moved on by one.
fn wrong_code(right: &str) -> String {
    let mut wrong: Vec<char> = right.chars().collect();
    match wrong.last_mut() {
        Some(last) if last.is_ascii_digit() => {
            let digit = last.to_digit(10).unwrap_or(0);
            *last = char::from_digit((digit + 1) % 10, 10).unwrap_or('0');
        }
        _ => wrong.push('0'),
    }
    wrong.into_iter().collect()
}

async fn sign_in_by_code(
    shared: &Shared,
    lb: &mut Balancer,
    user: &User,
    wrong_first: bool,
    log: &mut TaskLog,
) -> Result<(), String> {
    let methods = begin(shared, lb, user, log).await?;
    let sms = methods
        .iter()
        .find(|m| m.kind == MethodKind::Sms)
        .ok_or("begin: no SMS method offered")?;

    let t = Instant::now();
    let ticket = lb
        .next(shared)
        .sign_in_send_code(&user.id, sms, None, None)
        .await
        .map_err(|e| kind("send", &e))?;
    log.send.push(nanos(t));
    let code = shared
        .phones
        .read(&user.phone)
        .ok_or("send: no SMS arrived")?;
    let challenge = ticket.challenge_id;

    if wrong_first {
        let wrong = wrong_code(&code);
        log.wrong_typed += 1;
        let t = Instant::now();
        let proof = Proof::Code {
            challenge: &challenge,
            code: &wrong,
        };
        match lb
            .next(shared)
            .sign_in_complete(&user.id, proof, None, None)
            .await
        {
            Err(Error::Refused(Refusal::Code(CodeRefusal::WrongCode { .. }))) => {
                log.wrong.push(nanos(t));
            }
            Ok(_) => return Err("wrong code: ACCEPTED".into()),
            Err(e) => return Err(kind("wrong code", &e)),
        }
    }

    let t = Instant::now();
    let proof = Proof::Code {
        challenge: &challenge,
        code: &code,
    };
    let signed_in = lb
        .next(shared)
        .sign_in_complete(&user.id, proof, None, None)
        .await
        .map_err(|e| kind("complete", &e))?;
    log.complete.push(nanos(t));
    if signed_in.method != MethodKind::Sms {
        return Err(format!(
            "complete: signed in by {:?}, not SMS",
            signed_in.method
        ));
    }
    log.by_code += 1;
    if wrong_first {
        log.after_wrong += 1;
    }
    log.used_codes.push((user.id.clone(), challenge, code));
    Ok(())
}

async fn sign_in_by_recovery(
    shared: &Shared,
    lb: &mut Balancer,
    user: &mut User,
    log: &mut TaskLog,
) -> Result<(), String> {
    let methods = begin(shared, lb, user, log).await?;
    if !methods.iter().any(|m| m.kind == MethodKind::RecoveryCode) {
        return Err("begin: no recovery-code method offered".into());
    }
    // Spent whatever the answer: a code is typed once.
    let code = user
        .recovery
        .pop()
        .ok_or("recovery: the user has no codes left")?;
    let t = Instant::now();
    let signed_in = lb
        .next(shared)
        .sign_in_complete(&user.id, Proof::RecoveryCode { code: &code }, None, None)
        .await
        .map_err(|e| kind("recovery", &e))?;
    log.recovery.push(nanos(t));
    if signed_in.recovery_codes_left != Some(user.recovery.len()) {
        return Err(format!(
            "recovery: {:?} codes left, expected {}",
            signed_in.recovery_codes_left,
            user.recovery.len()
        ));
    }
    log.by_recovery += 1;
    log.used_recovery.push((user.id.clone(), code));
    Ok(())
}

// ------------------------------------------------------------------ audit

/// What the replays found.
#[derive(Default)]
struct Replays {
    codes: u64,
    recovery: u64,
    /// Answers other than "already used", by kind.
    wrong_answers: BTreeMap<String, u64>,
}

/// Presents every used code and recovery code again, with `workers`
/// tasks; each must be refused as already used.
async fn replay(shared: &Arc<Shared>, log: &TaskLog, workers: usize) -> Replays {
    let workers = workers.max(1);
    let codes = Arc::new(log.used_codes.clone());
    // Recovery codes by account: one account's replays run one after the
    // other, each followed by clearing the failure run it counted.
    let mut by_account: BTreeMap<String, (AccountId, Vec<String>)> = BTreeMap::new();
    for (account, code) in &log.used_recovery {
        by_account
            .entry(account.0.clone())
            .or_insert_with(|| (account.clone(), Vec::new()))
            .1
            .push(code.clone());
    }
    let accounts: Arc<Vec<(AccountId, Vec<String>)>> = Arc::new(by_account.into_values().collect());

    let mut handles = Vec::with_capacity(workers);
    for worker in 0..workers {
        let (shared, codes, accounts) = (shared.clone(), codes.clone(), accounts.clone());
        handles.push(tokio::spawn(async move {
            let mut found = Replays::default();
            let mut lb = Balancer { turn: worker };
            let already_used = |result: Result<SignedIn, Error>, step: &str| match result {
                Err(Error::Refused(Refusal::Code(CodeRefusal::AlreadyUsed))) => None,
                Ok(_) => Some(format!("{step}: ACCEPTED AGAIN")),
                Err(e) => Some(kind(step, &e)),
            };
            for (account, challenge, code) in codes.iter().skip(worker).step_by(workers) {
                let proof = Proof::Code { challenge, code };
                let result = lb
                    .next(&shared)
                    .sign_in_complete(account, proof, None, None)
                    .await;
                found.codes += 1;
                if let Some(wrong) = already_used(result, "code replay") {
                    *found.wrong_answers.entry(wrong).or_default() += 1;
                }
            }
            for (account, used) in accounts.iter().skip(worker).step_by(workers) {
                for code in used {
                    let service = lb.next(&shared);
                    let proof = Proof::RecoveryCode { code };
                    let result = service.sign_in_complete(account, proof, None, None).await;
                    found.recovery += 1;
                    if let Some(wrong) = already_used(result, "recovery replay") {
                        *found.wrong_answers.entry(wrong).or_default() += 1;
                    }
                    if let Err(e) = service.reset_failures(account).await {
                        *found
                            .wrong_answers
                            .entry(kind("reset_failures", &e))
                            .or_default() += 1;
                    }
                }
            }
            found
        }));
    }
    let mut all = Replays::default();
    for handle in handles {
        match handle.await {
            Ok(found) => {
                all.codes += found.codes;
                all.recovery += found.recovery;
                for (kind, n) in found.wrong_answers {
                    *all.wrong_answers.entry(kind).or_default() += n;
                }
            }
            Err(e) => {
                *all.wrong_answers
                    .entry(format!("a replay task died: {e}"))
                    .or_default() += 1;
            }
        }
    }
    all
}

/// The audit's findings: empty when it passed.
fn audit(log: &TaskLog, replays: &Replays, events: &Counts) -> Vec<String> {
    let mut problems = Vec::new();
    for (answer, n) in &replays.wrong_answers {
        problems.push(format!("{n} replays answered {answer}, not already_used"));
    }
    let mut expect = |what: &str, seen: u64, expected: u64, of: &str| {
        if seen != expected {
            problems.push(format!(
                "{what}: {seen} events, but {expected} {of} (off by {})",
                seen.abs_diff(expected)
            ));
        }
    };
    let failed = |reason: &str| events.failed.get(reason).copied().unwrap_or(0);
    expect(
        "failed (wrong_code)",
        failed("wrong_code"),
        log.wrong_typed,
        "wrong codes typed",
    );
    expect(
        "failed (already_used)",
        failed("already_used"),
        replays.codes + replays.recovery,
        "replays",
    );
    expect(
        "verified (sign-in)",
        events.sign_in_verified,
        log.by_code,
        "sign-ins by code",
    );
    expect(
        "recovery_code_used",
        events.recovery_used,
        log.by_recovery,
        "sign-ins by recovery code",
    );
    expect("locked", events.locked, 0, "expected");
    for (reason, n) in &events.failed {
        if *reason != "wrong_code" && *reason != "already_used" {
            problems.push(format!("failed ({reason}): {n} events, none expected"));
        }
    }
    problems
}

// ----------------------------------------------------------------- report

/// The `p`-quantile of sorted samples (nearest rank), in ms.
fn quantile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

fn latency_row(name: &str, samples: &mut [u64]) {
    if samples.is_empty() {
        println!("  {name:<10} {:>9}", 0);
        return;
    }
    samples.sort_unstable();
    println!(
        "  {name:<10} {:>9} {:>9.3} {:>9.3} {:>9.3}",
        samples.len(),
        quantile_ms(samples, 0.50),
        quantile_ms(samples, 0.99),
        quantile_ms(samples, 1.0),
    );
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Whole sign-ins per second.
    pub throughput: f64,
    /// Unexpected answers during the run.
    pub errors: u64,
    /// The audit's findings (empty: it passed).
    pub problems: Vec<String>,
}

impl Outcome {
    /// No errors, and the audit passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.errors == 0 && self.problems.is_empty()
    }
}

/// Opens the stores, runs, audits and cleans up.
pub async fn load(opts: Options) -> Result<Outcome, BoxError> {
    let stores = open_stores(&opts).await?;
    let Stores {
        a,
        b,
        what,
        cleanup,
    } = stores;
    let outcome = measure(&opts, a, b, &what).await;
    match cleanup.run().await {
        Ok(done) => println!("cleanup       {done}"),
        Err(e) => eprintln!("cleanup failed: {e}"),
    }
    outcome
}

async fn measure(
    opts: &Options,
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
    what: &str,
) -> Result<Outcome, BoxError> {
    let phones = Arc::new(Phones::default());
    let tally = Arc::new(Tally::default());
    let mut keys = [[0u8; 32]; 2];
    for key in &mut keys {
        OsRandom.fill(key)?;
    }
    let instances = [
        instance(a.clone(), phones.clone(), tally.clone(), &keys)?,
        instance(b, phones.clone(), tally.clone(), &keys)?,
    ];
    let shared = Arc::new(Shared {
        instances,
        phones,
        idle: Mutex::new(Vec::new()),
    });

    println!("store         {}: {what}", opts.store.name());
    println!("users         {}", opts.users);
    println!("concurrency   {}", opts.concurrency);
    println!("seconds       {}", opts.seconds);
    println!(
        "mix           {:.1}% wrong code first, {:.1}% recovery code",
        opts.wrong_rate * 100.0,
        opts.recovery_rate * 100.0
    );

    let started = Instant::now();
    let users = set_up(&shared, opts).await?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "setup         {} users in {took:.1} s ({:.0} registrations/s)",
        users.len(),
        users.len() as f64 / took
    );
    *shared.idle.lock().unwrap_or_else(PoisonError::into_inner) = users;

    // The audit counts what happens from here on.
    let before = tally.counts();
    let started = Instant::now();
    let deadline = started + StdDuration::from_secs(opts.seconds);
    let mut handles = Vec::with_capacity(opts.concurrency);
    for task in 0..opts.concurrency {
        handles.push(tokio::spawn(sign_in_task(
            shared.clone(),
            opts.clone(),
            task,
            deadline,
        )));
    }
    // Housekeeping alongside the traffic, as a host schedules it: a purge
    // every second on instance `a`, racing the sign-ins' writes.
    let housekeeping = tokio::spawn(purge_until(a.clone(), deadline));
    let mut log = TaskLog::default();
    for handle in handles {
        log.merge(handle.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (purges, purged) = housekeeping.await??;
    let sign_ins = log.by_code + log.by_recovery;
    let throughput = sign_ins as f64 / elapsed;

    println!();
    println!(
        "sign-ins      {sign_ins} in {elapsed:.2} s: {} by SMS code ({} after a wrong code), {} by recovery code",
        log.by_code, log.after_wrong, log.by_recovery
    );
    println!("throughput    {throughput:.1} sign-ins/s");
    println!("latency (ms)      count       p50       p99       max");
    latency_row("begin", &mut log.begin);
    latency_row("send", &mut log.send);
    latency_row("complete", &mut log.complete);
    latency_row("wrong code", &mut log.wrong);
    latency_row("recovery", &mut log.recovery);
    println!(
        "purge         {purges} runs alongside, {} records deleted",
        purged.total()
    );
    let errors: u64 = log.errors.values().sum();
    if errors == 0 {
        println!("errors        none");
    } else {
        println!("errors        {errors}");
        for (kind, n) in &log.errors {
            println!("  {n:>8}  {kind}");
        }
    }

    let replays = replay(&shared, &log, opts.concurrency.max(16)).await;
    let events = tally.counts().since(&before);
    println!();
    println!(
        "audit         replayed {} used codes and {} used recovery codes",
        replays.codes, replays.recovery
    );
    println!(
        "  events: failed {:?}, verified sign-ins {}, recovery codes used {}, locked {}",
        events.failed, events.sign_in_verified, events.recovery_used, events.locked
    );
    println!(
        "  simulator: wrong codes typed {}, sign-ins by code {}, by recovery code {}",
        log.wrong_typed, log.by_code, log.by_recovery
    );
    let problems = audit(&log, &replays, &events);
    if problems.is_empty() {
        println!("audit: ok");
    } else {
        println!("audit: FAILED");
        for problem in &problems {
            println!("  {problem}");
        }
    }
    Ok(Outcome {
        throughput,
        errors,
        problems,
    })
}

/// Purges `store` once a second until `deadline` (at least once), with the real clock's
/// now as the cut-off; how many purges ran and what they deleted.
async fn purge_until(store: Arc<dyn Store>, deadline: Instant) -> Result<(u64, Purged), BoxError> {
    let mut timer = tokio::time::interval(StdDuration::from_secs(1));
    let (mut runs, mut purged) = (0, Purged::default());
    loop {
        timer.tick().await;
        purged += store.purge(time::OffsetDateTime::now_utc()).await?;
        runs += 1;
        if Instant::now() >= deadline {
            return Ok((runs, purged));
        }
    }
}

/// The command that runs this store, for a build without its feature.
fn command_with_feature(feature: &str, args: &[String]) -> String {
    let mut command = format!("cargo run --release --example load --features {feature} --");
    for arg in args {
        command.push(' ');
        command.push_str(arg);
    }
    command
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(opts) => opts,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !opts.store.compiled_in() {
        let feature = opts.store.feature().unwrap_or_default();
        eprintln!(
            "store {} needs `--features {feature}`:\n  {}",
            opts.store.name(),
            command_with_feature(feature, &args)
        );
        return ExitCode::from(2);
    }
    match load(opts).await {
        Ok(outcome) if outcome.passed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
