//! The store adapters against the local servers: each atomic operation
//! (a challenge compare-and-set, and a journey step's `load` and `commit`)
//! against the raw round trip of the same kind, and the verify flow, at 1
//! and 16 concurrent tasks.
//!
//! Needs PostgreSQL (`NINSHO_PG_URL`), MySQL or MariaDB
//! (`NINSHO_MYSQL_URL`) and Redis (`NINSHO_REDIS_URL`):
//! `cargo bench --all-features --bench adapters`. Per-operation p50/p99
//! latencies are printed after the criterion runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::Criterion;
use ninsho::gateway::{DeliveryError, Gateway, Message, Receipt};
use ninsho::limits::{RateLimit, SendLimits};
use ninsho::model::{AccountId, ChallengeRecord, Destination, FailureRecord, Purpose};
use ninsho::seal::DangerousUnsealed;
use ninsho::service::{IssueRequest, OneTimeCodes, Ticket, TwoFactor};
use ninsho::store::{
    ChallengeWrite, ClaimChanges, Commit, Committed, FailureChange, Load, MySqlStore, PgStore,
    RedisStore, SqliteStore, Store,
};
use ninsho::testkit::{sample_challenge, sample_contact_book};
use ninsho::{HashKey, KeyId, KeyedHasher, ManualClock};
use tokio::runtime::Runtime;

const CONCURRENCY: [usize; 2] = [1, 16];

/// Remembers the last code per destination.
#[derive(Debug, Default)]
struct Codes(Mutex<HashMap<String, String>>);

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

fn service(store: Arc<dyn Store>, gw: Arc<Codes>) -> OneTimeCodes {
    let unlimited = RateLimit::new(u64::MAX, time::Duration::minutes(10));
    TwoFactor::builder(
        "Bench",
        store,
        gw,
        KeyedHasher::new(HashKey::new(KeyId(1), &[3; 32]).unwrap()),
        Arc::new(DangerousUnsealed),
    )
    .clock(Arc::new(ManualClock::at_unix(1_763_683_200).unwrap()))
    .limits(SendLimits {
        per_destination: unlimited,
        per_account: unlimited,
        per_caller: unlimited,
        ..SendLimits::default()
    })
    .build()
    .unwrap()
    .one_time_codes()
}

/// A backend under test: its store and one raw round trip of the same kind
/// as an atomic store write.
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    raw: Arc<
        dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync,
    >,
}

async fn backends() -> Vec<Backend> {
    let suffix = format!(
        "{}_{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp()
    );
    let mut out = Vec::new();

    let pg_url = std::env::var("NINSHO_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&pg_url)
        .await
        .expect("PostgreSQL");
    let schema = format!("ninsho_bench_{suffix}");
    let pg = PgStore::with_schema(pool.clone(), &schema).unwrap();
    pg.migrate().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {schema}.floor (id INT PRIMARY KEY, n BIGINT NOT NULL)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.floor SELECT g, 0 FROM generate_series(0, 15) g"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let floor_sql: &'static str = Box::leak(
        format!("UPDATE {schema}.floor SET n = n + 1 WHERE id = $1 RETURNING n").into_boxed_str(),
    );
    let counter = Arc::new(std::sync::atomic::AtomicI32::new(0));
    out.push(Backend {
        name: "postgres",
        store: Arc::new(pg),
        raw: Arc::new(move || {
            let (pool, counter) = (pool.clone(), counter.clone());
            Box::pin(async move {
                let id = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 16;
                let _: (i64,) = sqlx::query_as(floor_sql)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            })
        }),
    });

    let my_url = std::env::var("NINSHO_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(16)
        .connect(&my_url)
        .await
        .expect("MySQL or MariaDB");
    let database = format!("ninsho_bench_{suffix}");
    let my = MySqlStore::with_database(pool.clone(), &database).unwrap();
    my.migrate().await.unwrap();
    my.initialise().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE `{database}`.floor (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE = InnoDB; \
         INSERT INTO `{database}`.floor VALUES (0,0),(1,0),(2,0),(3,0),(4,0),(5,0),(6,0),(7,0), \
         (8,0),(9,0),(10,0),(11,0),(12,0),(13,0),(14,0),(15,0)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    // MySQL has no `UPDATE … RETURNING`: the floor is the bare conditional
    // update a compare-and-set is.
    let floor_sql: &'static str =
        Box::leak(format!("UPDATE `{database}`.floor SET n = n + 1 WHERE id = ?").into_boxed_str());
    let counter = Arc::new(std::sync::atomic::AtomicI32::new(0));
    out.push(Backend {
        name: "mysql",
        store: Arc::new(my),
        raw: Arc::new(move || {
            let (pool, counter) = (pool.clone(), counter.clone());
            Box::pin(async move {
                let id = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 16;
                sqlx::query(floor_sql)
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
            })
        }),
    });

    let redis_url =
        std::env::var("NINSHO_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let manager = redis::aio::ConnectionManager::new(client)
        .await
        .expect("Redis");
    let prefix = format!("ninsho-bench:{suffix}");
    // The local Redis keeps nothing on disk (and a bench machine's may
    // evict): fine for a benchmark's throwaway keys, never in production.
    let store = RedisStore::builder(prefix.clone())
        .dangerously_allow_volatile_server()
        .dangerously_allow_evicting_server()
        .build(manager.clone())
        .await
        .expect("Redis");
    store.initialise().await.expect("Redis");
    let script = redis::Script::new("return redis.call('INCR', KEYS[1])");
    out.push(Backend {
        name: "redis",
        store: Arc::new(store),
        raw: Arc::new(move || {
            let (mut conn, script, key) =
                (manager.clone(), script.clone(), format!("{prefix}:floor"));
            Box::pin(async move {
                let _: i64 = script.key(key).invoke_async(&mut conn).await.unwrap();
            })
        }),
    });

    let path = std::env::temp_dir().join(format!("ninsho-bench-{suffix}.db"));
    let sqlite = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
        )
        .await
        .unwrap();
    let lite = SqliteStore::new(sqlite.clone());
    lite.migrate().await.unwrap();
    sqlx::query("CREATE TABLE floor (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        .execute(&sqlite)
        .await
        .unwrap();
    sqlx::query("INSERT INTO floor VALUES (1, 0)")
        .execute(&sqlite)
        .await
        .unwrap();
    out.push(Backend {
        name: "sqlite",
        store: Arc::new(lite),
        raw: Arc::new(move || {
            let pool = sqlite.clone();
            Box::pin(async move {
                let _: (i64,) =
                    sqlx::query_as("UPDATE floor SET n = n + 1 WHERE id = 1 RETURNING n")
                        .fetch_one(&pool)
                        .await
                        .unwrap();
            })
        }),
    });
    out
}

/// Runs `total` operations split over `tasks` tasks; returns the elapsed time.
fn run_split<F, Fut>(rt: &Runtime, tasks: usize, total: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..tasks as u64 {
            let op = op.clone();
            let share = total / tasks as u64 + u64::from(t < total % tasks as u64);
            handles.push(tokio::spawn(async move {
                for i in 0..share {
                    op(t * 1_000_000_000 + i).await;
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    start.elapsed()
}

/// One task's journey step: an account with its record, failure run and
/// challenge, as last written.
struct Step {
    account: AccountId,
    challenge: ChallengeRecord,
    run: FailureRecord,
}

/// Stores `tasks` accounts' records, runs and challenges (untimed), the
/// ids made unique by `seed`.
fn prepare_steps(rt: &Runtime, store: &Arc<dyn Store>, tasks: usize, seed: u64) -> Vec<Step> {
    let now = time::OffsetDateTime::now_utc();
    rt.block_on(async {
        let mut out = Vec::with_capacity(tasks);
        for i in 0..tasks {
            let account = AccountId::new(format!("bench:{seed}:{i}"));
            let book = sample_contact_book(&account, now);
            store
                .commit_account(&book, None, &ClaimChanges::default())
                .await
                .unwrap();
            let run = FailureRecord {
                consecutive: 1,
                last_failure_at: now,
            };
            store
                .replace_failures(&account, None, Some(run))
                .await
                .unwrap();
            let mut challenge = sample_challenge(u8::try_from(i).unwrap(), now);
            let mut id = [u8::try_from(i).unwrap(); 16];
            id[..8].copy_from_slice(&seed.to_be_bytes());
            challenge.id = ninsho::model::ChallengeId::from_bytes(id);
            challenge.account = Some(account.clone());
            store.insert_challenge(&challenge).await.unwrap();
            out.push(Step {
                account,
                challenge,
                run,
            });
        }
        out
    })
}

/// Issues `n` challenges ahead of a verify run (untimed).
fn prepare(
    rt: &Runtime,
    svc: &OneTimeCodes,
    gw: &Codes,
    base: u64,
    n: u64,
) -> Vec<(Ticket, Destination, String)> {
    rt.block_on(async {
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let dest =
                Destination::phone(&format!("+8190{:08}", (base + i) % 100_000_000)).unwrap();
            let ticket = svc
                .send(IssueRequest::new(dest.clone(), Purpose::StepUp))
                .await
                .unwrap();
            let code = gw.0.lock().unwrap().remove(dest.address()).unwrap();
            out.push((ticket, dest, code));
        }
        out
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let all = rt.block_on(backends());
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut next = 0u64;
    for b in &all {
        let mut g = c.benchmark_group(b.name);
        for tasks in CONCURRENCY {
            let raw = b.raw.clone();
            g.bench_function(format!("raw_round_trip/{tasks}"), |bench| {
                bench.iter_custom(|iters| {
                    let raw = raw.clone();
                    run_split(&rt, tasks, iters, move |_| raw())
                })
            });

            // One atomic store operation: compare-and-set on a challenge.
            let store = b.store.clone();
            let records: Vec<_> = (0..tasks)
                .map(|i| {
                    let mut r =
                        sample_challenge(u8::try_from(i).unwrap(), time::OffsetDateTime::now_utc());
                    r.id = ninsho::model::ChallengeId::from_bytes(
                        [u8::try_from(i).unwrap().wrapping_add(next as u8); 16],
                    );
                    r
                })
                .collect();
            next += 1;
            rt.block_on(async {
                for r in &records {
                    store.insert_challenge(r).await.unwrap();
                }
            });
            let records = Arc::new(records.into_iter().map(Mutex::new).collect::<Vec<_>>());
            g.bench_function(format!("replace_challenge/{tasks}"), |bench| {
                bench.iter_custom(|iters| {
                    let (store, records) = (store.clone(), records.clone());
                    run_split(&rt, tasks, iters, move |i| {
                        let (store, records) = (store.clone(), records.clone());
                        async move {
                            let slot = &records[(i / 1_000_000_000) as usize];
                            let mut next = slot.lock().unwrap().clone();
                            let expected = next.version;
                            next.version += 1;
                            store.replace_challenge(&next, expected).await.unwrap();
                            *slot.lock().unwrap() = next;
                        }
                    })
                })
            });

            // A journey step's read: record, failure run and challenge.
            next += 1;
            let steps = Arc::new(
                prepare_steps(&rt, &b.store, tasks, next)
                    .into_iter()
                    .map(Mutex::new)
                    .collect::<Vec<_>>(),
            );
            let store = b.store.clone();
            let read = steps.clone();
            g.bench_function(format!("load/{tasks}"), |bench| {
                bench.iter_custom(|iters| {
                    let (store, steps) = (store.clone(), read.clone());
                    run_split(&rt, tasks, iters, move |i| {
                        let (store, steps) = (store.clone(), steps.clone());
                        async move {
                            let (account, id) = {
                                let step = steps[(i / 1_000_000_000) as usize].lock().unwrap();
                                (step.account.clone(), step.challenge.id)
                            };
                            let loaded = store
                                .load(&Load::account(&account).with_challenge(&id))
                                .await
                                .unwrap();
                            assert!(loaded.record.is_some() && loaded.challenge.is_some());
                        }
                    })
                })
            });

            // A journey step's write: a guess counted, in one commit that
            // replaces the challenge and moves the failure run on.
            g.bench_function(format!("commit/{tasks}"), |bench| {
                bench.iter_custom(|iters| {
                    let (store, steps) = (store.clone(), steps.clone());
                    run_split(&rt, tasks, iters, move |i| {
                        let (store, steps) = (store.clone(), steps.clone());
                        async move {
                            let slot = &steps[(i / 1_000_000_000) as usize];
                            let (account, mut challenge, run) = {
                                let step = slot.lock().unwrap();
                                (step.account.clone(), step.challenge.clone(), step.run)
                            };
                            let expected_version = challenge.version;
                            challenge.version += 1;
                            challenge.failed_attempts += 1;
                            let next = FailureRecord {
                                consecutive: run.consecutive + 1,
                                last_failure_at: run.last_failure_at,
                            };
                            let mut commit = Commit::default();
                            commit.challenge = Some(ChallengeWrite::Replace {
                                record: &challenge,
                                expected_version,
                            });
                            commit.failures = Some(FailureChange {
                                account: &account,
                                expected: Some(run),
                                next: Some(next),
                            });
                            let done = store
                                .commit(&commit, time::OffsetDateTime::now_utc())
                                .await
                                .unwrap();
                            assert_eq!(done, Committed::Done);
                            let mut step = slot.lock().unwrap();
                            step.challenge = challenge;
                            step.run = next;
                        }
                    })
                })
            });

            // The verify flow: read + compare-and-set.
            let gw = Arc::new(Codes::default());
            let svc = service(b.store.clone(), gw.clone());
            g.bench_function(format!("verify/{tasks}"), |bench| {
                bench.iter_custom(|iters| {
                    next += 1;
                    let work = Arc::new(Mutex::new(prepare(
                        &rt,
                        &svc,
                        &gw,
                        next * 10_000_000,
                        iters,
                    )));
                    let svc = svc.clone();
                    run_split(&rt, tasks, iters, move |_| {
                        let (svc, work) = (svc.clone(), work.clone());
                        async move {
                            let (t, d, code) = work.lock().unwrap().pop().unwrap();
                            svc.verify(&t.challenge_id, &code, &Purpose::StepUp, &d)
                                .await
                                .unwrap();
                        }
                    })
                })
            });
        }
        g.finish();
    }

    // Per-operation latency percentiles for the verify flow, single task.
    for b in &all {
        let gw = Arc::new(Codes::default());
        let svc = service(b.store.clone(), gw.clone());
        next += 1;
        let work = prepare(&rt, &svc, &gw, next * 10_000_000, 1_000);
        let mut lat: Vec<Duration> = rt.block_on(async {
            let mut lat = Vec::with_capacity(work.len());
            for (t, d, code) in work {
                let start = Instant::now();
                svc.verify(&t.challenge_id, &code, &Purpose::StepUp, &d)
                    .await
                    .unwrap();
                lat.push(start.elapsed());
            }
            lat
        });
        lat.sort();
        println!(
            "{}: verify p50 {:?}, p99 {:?} (2 store round trips: read, compare-and-set)",
            b.name,
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100]
        );
    }
    c.final_summary();
}
