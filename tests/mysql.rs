//! `MySqlStore` against a real MySQL or MariaDB: the conformance suite, two
//! app instances racing on one database, and the adapter's own rules.
//!
//! The server is `NINSHO_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`). When it can't be reached the tests
//! print `SKIPPED` and pass, except under `CI=true`, where they fail: CI
//! must prove the adapter, not skip it. Every test works in databases of
//! its own (`ninsho_t_<pid>_<nanos>_<n>`) and drops them at the end, so runs
//! never collide.

#![cfg(all(feature = "mysql", feature = "testkit"))]

mod support;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use ninsho::model::{AccountId, ChallengeId, DeviceId, DeviceRecord, FailureRecord, Purpose};
use ninsho::store::PurgeStore;
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ChallengeWrite, ClaimChanges, Commit, DeviceStore,
    FailureChange, LimitHit, LimitStore, Load, MySqlStore, RecordWrite, StepStore, Store,
    StoreError, StoreErrorKind, VerificationStore,
};
use ninsho::{KeyId, KeyedHash, testkit};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, MySqlConnection, MySqlPool};
use time::{Duration, OffsetDateTime};

const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn url() -> String {
    match std::env::var("NINSHO_MYSQL_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if under_ci() => panic!("MySQL or MariaDB required under CI: set NINSHO_MYSQL_URL"),
        _ => DEFAULT_URL.to_owned(),
    }
}

async fn pool(url: &str) -> Result<MySqlPool, sqlx::Error> {
    MySqlPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(StdDuration::from_secs(5))
        .connect(url)
        .await
}

/// A pool on the test server, or `None` (after saying so) when it is down
/// outside CI.
async fn server(test: &str) -> Option<MySqlPool> {
    let url = url();
    match pool(&url).await {
        Ok(pool) => Some(pool),
        Err(e) if under_ci() => {
            panic!("MySQL or MariaDB required under CI (CI=true): cannot reach {url}: {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED mysql::{test}: MySQL/MariaDB unreachable at {url} ({e}); \
                 set NINSHO_MYSQL_URL to run it (under CI=true this fails instead)"
            );
            None
        }
    }
}

/// A database name no other test or run uses.
fn unique_database() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "ninsho_t_{}_{}_{}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

async fn drop_database(pool: &MySqlPool, name: &str) {
    // The name comes from `unique_database`: letters, digits, underscores.
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
        .execute(pool)
        .await
        .expect("drop the test database");
}

/// The databases a test made; dropped when the guard goes, also when the
/// test fails, so a failing run leaves nothing behind.
#[derive(Default)]
struct Databases(Mutex<Vec<String>>);

impl Databases {
    /// A fresh database name, dropped with the guard.
    fn fresh(&self) -> String {
        let name = unique_database();
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name.clone());
        name
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        let names = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if names.is_empty() {
            return;
        }
        // Drop can't await, and may run inside the test's runtime: clean up
        // on a thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async {
                let Ok(pool) = pool(&url()).await else {
                    eprintln!("could not drop test databases {names:?}");
                    return;
                };
                for name in &names {
                    drop_database(&pool, name).await;
                }
                pool.close().await;
            });
        });
        let _ = cleanup.join();
    }
}

/// A store on `database`, migrated and initialised (as a first deploy
/// does).
async fn migrated(pool: MySqlPool, database: &str) -> MySqlStore {
    let store = MySqlStore::with_database(pool, database).expect("valid database name");
    store.migrate().await.expect("migrate");
    store.initialise().await.expect("initialise");
    store
}

/// The test server's connection options with `database` as the default
/// database.
fn options_on(database: &str) -> MySqlConnectOptions {
    MySqlConnectOptions::from_str(&url())
        .expect("a valid NINSHO_MYSQL_URL")
        .database(database)
}

/// The kind of a call's error, `None` when it succeeded.
fn kind<T>(result: Result<T, StoreError>) -> Option<StoreErrorKind> {
    result.err().map(|e| e.kind())
}

/// A record as JSON, to compare records that don't implement `PartialEq`.
fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("records serialise")
}

/// A device of `account` whose id derives from `seed`.
fn sample_device(account: &AccountId, seed: u8, now: OffsetDateTime) -> DeviceRecord {
    DeviceRecord {
        account: account.clone(),
        id: DeviceId::parse(&format!("{seed:032x}")).expect("valid id"),
        version: 0,
        token: KeyedHash {
            key_id: KeyId(2),
            tag: ninsho::hash::Tag([seed; 32]),
        },
        label: format!("Chrome on Windows #{seed}"),
        created_at: now,
        last_used_at: now,
        expires_at: now + Duration::days(30),
        epoch: 0,
        revoked_at: None,
        incarnation: 7,
    }
}

fn claim(keys: &[&str], release: &[&str]) -> ClaimChanges {
    ClaimChanges {
        claim: keys.iter().map(|k| (*k).to_owned()).collect(),
        release: release.iter().map(|k| (*k).to_owned()).collect(),
    }
}

async fn count_rows(pool: &MySqlPool, database: &str, table: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM `{database}`.{table}"
    )))
    .fetch_one(pool)
    .await
    .expect("count rows")
}

// ---------------------------------------------------------------------------
// The conformance suite and the two-instance races.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let Some(pool) = server("conformance").await else {
        return;
    };
    let databases = Databases::default();
    testkit::run_all(|| {
        let pool = pool.clone();
        let name = databases.fresh();
        async move { Arc::new(migrated(pool, &name).await) as Arc<dyn Store> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_app_instances_on_one_database() {
    if server("two_app_instances_on_one_database").await.is_none() {
        return;
    }
    let databases = Databases::default();
    let name = databases.fresh();
    // Two independent pools: two servers behind a load balancer. Both run
    // the start-up migration at once, as they would.
    let url = url();
    let a = MySqlStore::with_database(pool(&url).await.expect("pool a"), &name).expect("name");
    let b = MySqlStore::with_database(pool(&url).await.expect("pool b"), &name).expect("name");
    let (ma, mb) = tokio::join!(a.migrate(), b.migrate());
    ma.expect("migrate from instance a");
    mb.expect("migrate from instance b");
    // Initialised once, by whoever deploys; the second instance does not.
    a.initialise().await.expect("initialise");

    testkit::race_two_instances(Arc::new(a), Arc::new(b)).await;
}

// ---------------------------------------------------------------------------
// Migrations, databases and names.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_is_idempotent_and_concurrent() {
    let Some(pool) = server("migrate_is_idempotent_and_concurrent").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = MySqlStore::with_database(pool.clone(), &name).expect("name");
    assert_eq!(store.database(), Some(name.as_str()));

    // Eight instances starting at once on a database that does not exist
    // yet, each on a pool of its own.
    let mut runs = Vec::new();
    for _ in 0..8 {
        let store = MySqlStore::with_database(self::pool(&url()).await.expect("pool"), &name)
            .expect("name");
        runs.push(tokio::spawn(async move { store.migrate().await }));
    }
    for run in runs {
        run.await.expect("task").expect("concurrent migrate");
    }

    let now = OffsetDateTime::now_utc();
    store
        .hit("kept", Duration::hours(1), now)
        .await
        .expect("hit");
    store.migrate().await.expect("migrate again");
    assert_eq!(
        store
            .hit("kept", Duration::hours(1), now)
            .await
            .expect("hit")
            .count,
        2,
        "migrating again keeps the data"
    );

    let versions: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM `{name}`.ninsho_schema_version ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .expect("read versions");
    assert_eq!(versions, [1], "each migration is recorded once");

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
    )
    .bind(&name)
    .fetch_all(&pool)
    .await
    .expect("list tables");
    assert_eq!(
        tables,
        [
            "ninsho_challenges",
            "ninsho_contact_books",
            "ninsho_contact_claims",
            "ninsho_counters",
            "ninsho_devices",
            "ninsho_failures",
            "ninsho_meta",
            "ninsho_schema_version",
            "ninsho_verifications"
        ],
        "every table lives in the store's database"
    );
    // Migrating does not initialise: only `initialise` writes the marker.
    assert_eq!(
        kind(store.load(&Load::account(&AccountId::new("alice"))).await),
        Some(StoreErrorKind::NotInitialised)
    );
    let engines: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT CAST(ENGINE AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ?",
    )
    .bind(&name)
    .fetch_all(&pool)
    .await
    .expect("list engines");
    assert_eq!(engines, ["InnoDB"], "transactions need InnoDB");

    // No migration lock is left behind, and the pool's connections kept
    // their default database (the migration ran on a connection of its
    // own, closed afterwards).
    let current: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(&pool)
        .await
        .expect("current database");
    assert_eq!(
        current.as_deref(),
        MySqlConnectOptions::from_str(&url())
            .expect("url")
            .get_database()
    );
}

/// `MySqlStore::new` keeps its tables in the connection's default
/// database, and its migration needs one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_uses_the_connections_database() {
    let Some(pool) = server("new_uses_the_connections_database").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
        .execute(&pool)
        .await
        .expect("create the database");
    let own = MySqlPoolOptions::new()
        .max_connections(4)
        .connect_with(options_on(&name))
        .await
        .expect("pool on the test database");
    let store = MySqlStore::new(own.clone());
    assert_eq!(store.database(), None);
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrate again");
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    store
        .insert_challenge(&testkit::sample_challenge(1, now))
        .await
        .expect("insert");
    assert_eq!(count_rows(&pool, &name, "ninsho_challenges").await, 1);
    own.close().await;

    // No default database and none named: a typed, permanent error.
    let bare = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&url_without_database(&url()))
        .await
        .expect("pool without a database");
    let current: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(&bare)
        .await
        .expect("current database");
    assert_eq!(current, None);
    let err = MySqlStore::new(bare.clone())
        .migrate()
        .await
        .expect_err("no database");
    assert_eq!(err.kind(), StoreErrorKind::Other, "{err:?}");
    let err = MySqlStore::new(bare.clone())
        .challenge(&ChallengeId::from_bytes([1; 16]))
        .await
        .expect_err("no database");
    assert_eq!(err.kind(), StoreErrorKind::Other, "{err:?}");
    bare.close().await;
}

/// `url` with its path (the database) removed, its query kept.
fn url_without_database(url: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let Some(slash) = url[authority..].find('/').map(|i| authority + i) else {
        return url.to_owned();
    };
    let query = url[slash..].find('?').map_or("", |i| &url[slash + i..]);
    format!("{}{query}", &url[..slash])
}

/// Stores on two databases of one server never see each other's records.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn databases_keep_stores_apart() {
    let Some(pool) = server("databases_keep_stores_apart").await else {
        return;
    };
    let databases = Databases::default();
    let (one, two) = (databases.fresh(), databases.fresh());
    let a = migrated(pool.clone(), &one).await;
    let b = migrated(pool.clone(), &two).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");

    let challenge = testkit::sample_challenge(9, now);
    a.insert_challenge(&challenge).await.expect("insert in a");
    assert!(b.challenge(&challenge.id).await.expect("read b").is_none());
    b.insert_challenge(&challenge)
        .await
        .expect("the same id is free in b");
    assert_eq!(
        a.hit("k", Duration::hours(1), now)
            .await
            .expect("hit")
            .count,
        1
    );
    assert_eq!(
        b.hit("k", Duration::hours(1), now)
            .await
            .expect("hit")
            .count,
        1
    );
    let book = testkit::sample_contact_book(&alice, now);
    assert_eq!(
        a.commit_account(&book, None, &claim(&["+819012345678"], &[]))
            .await
            .expect("commit a"),
        AccountCommit::Committed
    );
    assert_eq!(b.claim_owner("+819012345678").await.expect("owner"), None);
    let bob = testkit::sample_contact_book(&AccountId::new("bob"), now);
    assert_eq!(
        b.commit_account(&bob, None, &claim(&["+819012345678"], &[]))
            .await
            .expect("commit b"),
        AccountCommit::Committed,
        "a claim in one database does not hold the key in another"
    );
    assert_eq!(
        a.purge(now + Duration::days(365))
            .await
            .expect("purge")
            .challenges,
        1
    );
    assert!(
        b.challenge(&challenge.id).await.expect("read b").is_some(),
        "a purge in one database leaves the other alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_names_are_validated() {
    // No server needed: validation happens before any I/O.
    let pool = MySqlPoolOptions::new()
        .connect_lazy(DEFAULT_URL)
        .expect("lazy pool");
    for bad in [
        "",
        "bad-name",
        "a`b",
        "test; DROP DATABASE mysql",
        "space d",
        "ünicode",
        "a.b",
        &"x".repeat(65),
    ] {
        let err = MySqlStore::with_database(pool.clone(), bad).expect_err(bad);
        assert_eq!(err.kind(), StoreErrorKind::Other, "{bad:?}");
    }
    for good in ["test", "Tenant_42", "_x", "9lives", &"x".repeat(64)] {
        let store = MySqlStore::with_database(pool.clone(), good).expect(good);
        assert_eq!(store.database(), Some(good));
    }
    assert_eq!(MySqlStore::new(pool).database(), None);
}

// ---------------------------------------------------------------------------
// Error mapping.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_server_is_unavailable() {
    // Port 1 on loopback: connection refused, quickly.
    let pool = MySqlPoolOptions::new()
        .acquire_timeout(StdDuration::from_millis(500))
        .connect_lazy("mysql://root@127.0.0.1:1/test")
        .expect("lazy pool");
    let store = MySqlStore::new(pool.clone());
    let now = OffsetDateTime::now_utc();
    let account = AccountId::new("alice");
    let id = ChallengeId::from_bytes([1; 16]);
    let record = testkit::sample_challenge(1, now);

    let kinds = [
        store.migrate().await.err().map(|e| e.kind()),
        MySqlStore::with_database(pool.clone(), "ninsho")
            .expect("name")
            .migrate()
            .await
            .err()
            .map(|e| e.kind()),
        kind(store.insert_challenge(&record).await),
        kind(store.challenge(&id).await),
        kind(store.replace_challenge(&record, 0).await),
        kind(store.purge(now).await),
        kind(store.hit("k", Duration::minutes(1), now).await),
        kind(support::record_failure(&store, &account, now).await),
        kind(store.failures(&account).await),
        kind(store.clear_failures(&account).await),
    ];
    let device = sample_device(&account, 1, now);
    let factor_kinds = [
        kind(store.insert_device(&device).await),
        kind(store.device(&account, &device.id).await),
        kind(store.devices(&account).await),
        kind(store.replace_device(&device, 0).await),
        kind(store.delete_device(&account, &device.id).await),
        kind(store.delete_devices(&account).await),
    ];
    let book = testkit::sample_contact_book(&account, now);
    let verification = testkit::sample_verification(1, now);
    let contact_kinds = [
        kind(store.account_record(&account).await),
        kind(store.claim_owner("+819012345678").await),
        kind(store.commit_account(&book, None, &claim(&["k"], &[])).await),
        kind(store.commit_account(&book, Some(1), &claim(&[], &[])).await),
        kind(store.delete_account(&account).await),
        kind(store.insert_verification(&verification).await),
        kind(store.verification(&verification.id).await),
        kind(store.replace_verification(&verification, 0).await),
    ];
    for (i, kind) in kinds
        .into_iter()
        .chain(factor_kinds)
        .chain(contact_kinds)
        .enumerate()
    {
        assert_eq!(kind, Some(StoreErrorKind::Unavailable), "call {i}");
    }

    // The backend's error is kept as the source.
    let err = store.challenge(&id).await.expect_err("unreachable");
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");

    // A closed pool reads the same way.
    pool.close().await;
    let err = store.challenge(&id).await.expect_err("closed pool");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

/// Tables that are not there (a store never migrated) are a permanent
/// error, not an outage; a duplicate is a conflict, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_tables_are_other_and_duplicates_conflict() {
    let Some(pool) = server("missing_tables_are_other_and_duplicates_conflict").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let unmigrated = MySqlStore::with_database(pool.clone(), &name).expect("name");
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    assert_eq!(
        kind(
            unmigrated
                .challenge(&ChallengeId::from_bytes([2; 16]))
                .await
        ),
        Some(StoreErrorKind::Other)
    );
    assert_eq!(
        kind(unmigrated.hit("k", Duration::minutes(1), now).await),
        Some(StoreErrorKind::Other)
    );
    assert_eq!(
        kind(
            unmigrated
                .commit_account(
                    &testkit::sample_contact_book(&alice, now),
                    None,
                    &claim(&["k"], &[])
                )
                .await
        ),
        Some(StoreErrorKind::Other)
    );

    let store = migrated(pool, &name).await;
    let device = sample_device(&alice, 3, now);
    store.insert_device(&device).await.expect("insert");
    let err = store.insert_device(&device).await.expect_err("duplicate");
    assert!(err.is_conflict(), "{err:?}");
    let run = FailureRecord {
        consecutive: 1,
        last_failure_at: now,
    };
    store
        .replace_failures(&alice, None, Some(run))
        .await
        .expect("first run");
    assert_eq!(
        kind(store.replace_failures(&alice, None, Some(run)).await),
        Some(StoreErrorKind::Conflict),
        "a run created twice from none is a conflict (a duplicate key)"
    );
    // Replacing a run with an equal one matches its row (found rows, not
    // changed rows), so it is no conflict.
    store
        .replace_failures(&alice, Some(run), Some(run))
        .await
        .expect("an unchanged run still compares and sets");
}

/// A transaction that waits on a row lock longer than
/// `innodb_lock_wait_timeout` fails as `Unavailable` and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_wait_timeout_is_unavailable_and_writes_nothing() {
    let Some(pool) = server("lock_wait_timeout_is_unavailable_and_writes_nothing").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    migrated(pool.clone(), &name).await;
    // The store's connections give up waiting for a lock after a second.
    let impatient = MySqlPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION innodb_lock_wait_timeout = 1")
                    .await
                    .map(|_| ())
            })
        })
        .connect(&url())
        .await
        .expect("pool");
    let store = MySqlStore::with_database(impatient, &name).expect("name");
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let (alice, bob) = (AccountId::new("alice"), AccountId::new("bob"));
    let key = "+819012345678";
    assert_eq!(
        store
            .commit_account(
                &testkit::sample_contact_book(&bob, now),
                None,
                &claim(&[key], &[])
            )
            .await
            .expect("bob claims"),
        AccountCommit::Committed
    );

    // Another client holds bob's claim row locked.
    let mut other = MySqlConnection::connect(&url()).await.expect("connect");
    other.execute("BEGIN").await.expect("begin");
    sqlx::query(AssertSqlSafe(format!(
        "SELECT account FROM `{name}`.ninsho_contact_claims WHERE `key` = ? FOR UPDATE"
    )))
    .bind(key.as_bytes())
    .fetch_all(&mut other)
    .await
    .expect("lock the claim");

    let got = store
        .commit_account(
            &testkit::sample_contact_book(&alice, now),
            None,
            &claim(&[key], &[]),
        )
        .await;
    assert_eq!(kind(got), Some(StoreErrorKind::Unavailable));
    other.execute("ROLLBACK").await.expect("rollback");
    other.close().await.expect("close");
    assert!(
        store.account_record(&alice).await.expect("read").is_none(),
        "the timed-out commit stored nothing"
    );
    assert_eq!(store.claim_owner(key).await.expect("owner"), Some(bob));
}

/// A transaction InnoDB picks as a deadlock victim is run again: the call
/// ends as if there had been no deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deadlock_victim_is_run_again() {
    let Some(pool) = server("a_deadlock_victim_is_run_again").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let (alice, bob) = (AccountId::new("alice"), AccountId::new("bob"));
    let key = "+819012345678";
    let book = testkit::sample_contact_book(&alice, now);
    store
        .commit_account(&book, None, &claim(&[], &[]))
        .await
        .expect("alice's record");
    store
        .commit_account(
            &testkit::sample_contact_book(&bob, now),
            None,
            &claim(&[key], &[]),
        )
        .await
        .expect("bob claims");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE `{name}`.ballast (n INT PRIMARY KEY) ENGINE = InnoDB"
    )))
    .execute(&pool)
    .await
    .expect("ballast table");

    // Another client: a heavy transaction (many rows written, so InnoDB
    // picks the store's transaction as the victim) that holds bob's claim.
    let mut other = MySqlConnection::connect(&url()).await.expect("connect");
    other.execute("BEGIN").await.expect("begin");
    let values: Vec<String> = (1..=2000).map(|n| format!("({n})")).collect();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "INSERT INTO `{name}`.ballast VALUES {}",
        values.join(", ")
    )))
    .execute(&mut other)
    .await
    .expect("ballast");
    sqlx::query(AssertSqlSafe(format!(
        "SELECT account FROM `{name}`.ninsho_contact_claims WHERE `key` = ? FOR UPDATE"
    )))
    .bind(key.as_bytes())
    .fetch_all(&mut other)
    .await
    .expect("lock the claim");

    // The store's commit locks alice's record, then waits for the claim.
    let mut next = book.clone();
    next.version = 2;
    let commit = {
        let store = store.clone();
        let next = next.clone();
        tokio::spawn(async move {
            store
                .commit_account(&next, Some(1), &claim(&[key], &[]))
                .await
        })
    };
    wait_for_lock_wait(&pool, &name).await;
    // Now the other client wants alice's record: a deadlock. That this
    // update returns at all shows InnoDB rolled back the store's (lighter)
    // transaction to break it; the store then runs it again, and that run
    // waits for this transaction to end.
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE `{name}`.ninsho_contact_books SET record = record WHERE account = ?"
    )))
    .bind(alice.0.as_bytes())
    .execute(&mut other)
    .await
    .expect("the heavy transaction is not the victim");
    other.execute("ROLLBACK").await.expect("rollback");
    other.close().await.expect("close");

    let got = commit.await.expect("task").expect("no error after a retry");
    assert_eq!(got, AccountCommit::Taken { index: 0 });
    let stored = store
        .account_record(&alice)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(stored.version, 1, "a Taken commit wrote nothing");
}

/// Waits (bounded) until a transaction on `database`'s claims waits for a
/// row lock.
async fn wait_for_lock_wait(pool: &MySqlPool, database: &str) {
    // InnoDB refreshes what INNODB_TRX shows only when it was last read
    // 0.1 s ago or more: a faster poll would read a stale copy forever.
    for _ in 0..100 {
        tokio::time::sleep(StdDuration::from_millis(150)).await;
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX \
             WHERE trx_state = 'LOCK WAIT' \
             AND trx_query LIKE CONCAT('%`', ?, '`.ninsho_contact_claims%')",
        )
        .bind(database)
        .fetch_one(pool)
        .await
        .expect("INNODB_TRX");
        if waiting > 0 {
            return;
        }
    }
    panic!("the store's transaction never waited for the claim's row lock");
}

// ---------------------------------------------------------------------------
// Keys, times and records.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_injection_is_inert() {
    let Some(pool) = server("sql_injection_is_inert").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::now_utc();
    let hostile = [
        "'; DROP TABLE ninsho_counters; --",
        "x' OR '1'='1",
        "`; DROP DATABASE test; --",
        "?",
        "\\'; SELECT SLEEP(10); --",
        "%",
        "_",
    ];
    for (i, key) in hostile.iter().enumerate() {
        let got = store.hit(key, Duration::hours(1), now).await.expect("hit");
        assert_eq!(got.count, 1, "{key:?} is its own counter");
        let account = AccountId::new(*key);
        let run = support::record_failure(&store, &account, now)
            .await
            .expect("failure");
        assert_eq!(run.consecutive, 1, "{key:?} is its own account");
        if i % 2 == 0 {
            store.clear_failures(&account).await.expect("clear");
            assert_eq!(store.failures(&account).await.expect("read"), None);
        }
    }
    // Every key kept its own count, and the tables are all still there.
    for key in hostile {
        let got = store.hit(key, Duration::hours(1), now).await.expect("hit");
        assert_eq!(got.count, 2, "{key:?}");
    }
    assert_eq!(
        count_rows(&pool, &name, "ninsho_counters").await,
        i64::try_from(hostile.len()).expect("small")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn times_keep_microseconds_and_records_keep_everything() {
    let Some(pool) = server("times_keep_microseconds_and_records_keep_everything").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = migrated(pool.clone(), &name).await;

    // Counters and failure runs keep microseconds; the nanoseconds go.
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_789)
        .expect("valid instant");
    let micros = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_000)
        .expect("valid instant");
    let got = store
        .hit("precise", Duration::seconds(1), now)
        .await
        .expect("hit");
    assert_eq!(got.resets_at, micros + Duration::seconds(1));
    // The window ends at its own microsecond: a hit one nanosecond before
    // (the same microsecond) counts in it, one at it starts a new one.
    let end = now + Duration::seconds(1);
    assert_eq!(
        store
            .hit(
                "precise",
                Duration::seconds(1),
                micros + Duration::seconds(1) - Duration::nanoseconds(1)
            )
            .await
            .expect("hit")
            .count,
        2
    );
    let fresh = store
        .hit("precise", Duration::seconds(1), end)
        .await
        .expect("hit");
    assert_eq!(fresh.count, 1);
    assert_eq!(fresh.resets_at, micros + Duration::seconds(2));

    let run = support::record_failure(&store, &AccountId::new("precise"), now)
        .await
        .expect("failure");
    assert_eq!(run.last_failure_at, micros);
    // A run is compared the way it is stored: the instant as the flow wrote
    // it (nanoseconds) matches the microseconds kept, so a flow can compare
    // and set the run it wrote without reading it back.
    let written = FailureRecord {
        consecutive: 1,
        last_failure_at: now,
    };
    store
        .replace_failures(&AccountId::new("precise"), Some(written), None)
        .await
        .expect("the written run compares equal at the stored precision");

    // Times before 1970 are truncated towards the past too, and round-trip.
    let early = OffsetDateTime::from_unix_timestamp_nanos(-1_500).expect("valid instant");
    let run = support::record_failure(&store, &AccountId::new("early"), early)
        .await
        .expect("failure");
    assert_eq!(
        run.last_failure_at,
        OffsetDateTime::from_unix_timestamp_nanos(-2_000).expect("valid instant")
    );

    // A challenge record comes back exactly, nanoseconds included, and a
    // replace with a u64 version above i64::MAX still compares and sets.
    let mut record = testkit::sample_challenge(7, now);
    record.created_at = now;
    record.expires_at = now + Duration::minutes(10);
    record.version = u64::MAX - 1;
    store.insert_challenge(&record).await.expect("insert");
    let back = store
        .challenge(&record.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(back.created_at, now);
    assert_eq!(back.expires_at, record.expires_at);
    assert_eq!(back.version, u64::MAX - 1);
    let mut next = back.clone();
    next.version = u64::MAX;
    store
        .replace_challenge(&next, u64::MAX - 1)
        .await
        .expect("compare-and-set on a huge version");
    let err = store
        .replace_challenge(&next, u64::MAX - 1)
        .await
        .expect_err("stale version");
    assert!(err.is_conflict());
    let version: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM `{name}`.ninsho_challenges"
    )))
    .fetch_one(&pool)
    .await
    .expect("version column");
    assert_eq!(version, -1, "u64::MAX is stored as its bits");

    // U+0000, emoji and quotes survive inside the record, and (unlike
    // PostgreSQL's TEXT) a VARBINARY account id holds U+0000 as well.
    let mut odd = testkit::sample_challenge(8, now);
    odd.purpose = Purpose::Other("nul\u{0}inside 🔐 \"q\" \\ 東京".to_owned());
    odd.account = Some(AccountId::new("acct\u{0}x"));
    store.insert_challenge(&odd).await.expect("insert");
    let back = store
        .challenge(&odd.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(back.purpose, odd.purpose);
    assert_eq!(back.account, odd.account);
    let nul = AccountId::new("acct\u{0}x");
    let run = support::record_failure(&store, &nul, now)
        .await
        .expect("NUL is just a byte");
    assert_eq!(run.consecutive, 1);
    assert_eq!(
        store.failures(&AccountId::new("acct")).await.expect("read"),
        None,
        "the prefix before the NUL is another account"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_exact_bytes() {
    let Some(pool) = server("keys_are_exact_bytes").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    // Trailing spaces (which MySQL's PAD SPACE collations ignore), case,
    // accents and look-alikes, NUL, wildcards: every one its own key.
    let hostile = [
        "'; DROP TABLE ninsho_devices; --",
        "x' OR '1'='1",
        "`; DROP DATABASE test; --",
        "?",
        "%",
        "_",
        "alice",
        "alice ",
        "alice  ",
        "ALICE",
        "alicé",
        "alice\u{0}",
        "",
        "東京\u{200b}",
    ];
    for account in &hostile {
        let account = AccountId::new(*account);
        // The same two device ids for every account: the key is the pair.
        for d in [1, 2] {
            store
                .insert_device(&sample_device(&account, d, now))
                .await
                .expect("device");
        }
        let got = store
            .hit(&account.0, Duration::hours(1), now)
            .await
            .expect("hit");
        assert_eq!(got.count, 1, "{account:?} is its own counter");
    }
    for account in &hostile {
        let account = AccountId::new(*account);
        let devices = store.devices(&account).await.expect("list");
        assert_eq!(devices.len(), 2, "{account:?}");
        assert!(devices.iter().all(|d| d.account == account), "{account:?}");
    }
    // Claim keys likewise: a key with a trailing space is another key.
    let book = testkit::sample_contact_book(&AccountId::new("alice"), now);
    store
        .commit_account(&book, None, &claim(&["a@example.jp", "+81 90"], &[]))
        .await
        .expect("commit");
    assert_eq!(
        store.claim_owner("a@example.jp ").await.expect("owner"),
        None
    );
    assert_eq!(
        store.claim_owner("A@example.jp").await.expect("owner"),
        None
    );
    let other = testkit::sample_contact_book(&AccountId::new("alice "), now);
    assert_eq!(
        store
            .commit_account(&other, None, &claim(&["a@example.jp "], &[]))
            .await
            .expect("commit"),
        AccountCommit::Committed
    );

    // Deleting through wildcard-looking accounts touches only their rows.
    let percent = AccountId::new("%");
    assert_eq!(store.delete_devices(&percent).await.expect("delete"), 2);
    let id = DeviceId::parse(&format!("{:032x}", 1)).expect("id");
    assert!(
        store
            .delete_device(&AccountId::new("_"), &id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_device(&AccountId::new("_"), &id)
            .await
            .expect("again")
    );
    let n = i64::try_from(hostile.len()).expect("small");
    assert_eq!(count_rows(&pool, &name, "ninsho_devices").await, 2 * n - 3);
}

/// Keys longer than their columns are refused before anything is sent, on
/// reads and writes alike, whatever the server's `sql_mode`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_longer_than_their_columns_are_refused() {
    let Some(pool) = server("keys_longer_than_their_columns_are_refused").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");

    // The longest keys fit, one byte more does not.
    let longest = AccountId::new("a".repeat(1024));
    let device = sample_device(&longest, 1, now);
    store
        .insert_device(&device)
        .await
        .expect("1024-byte account");
    assert_eq!(store.devices(&longest).await.expect("list").len(), 1);
    let counter = "k".repeat(2048);
    assert_eq!(
        store
            .hit(&counter, Duration::hours(1), now)
            .await
            .expect("2048-byte counter key")
            .count,
        1
    );
    // Multi-byte characters count in bytes: 342 × 3 bytes = 1026.
    let long_claim = "東".repeat(342);
    let fits_claim = "東".repeat(341);

    let long = AccountId::new("a".repeat(1025));
    let device = sample_device(&long, 1, now);
    let book = testkit::sample_contact_book(&long, now);
    let fine = testkit::sample_contact_book(&AccountId::new("fine"), now);
    let kinds = [
        kind(store.insert_device(&device).await),
        kind(store.device(&long, &device.id).await),
        kind(store.devices(&long).await),
        kind(store.replace_device(&device, 0).await),
        kind(store.delete_device(&long, &device.id).await),
        kind(store.delete_devices(&long).await),
        kind(support::record_failure(&store, &long, now).await),
        kind(store.failures(&long).await),
        kind(store.clear_failures(&long).await),
        kind(store.account_record(&long).await),
        kind(store.commit_account(&book, None, &claim(&[], &[])).await),
        kind(store.delete_account(&long).await),
        kind(store.hit(&"k".repeat(2049), Duration::hours(1), now).await),
        kind(store.claim_owner(&long_claim).await),
        kind(
            store
                .commit_account(&fine, None, &claim(&["+819012345678", &long_claim], &[]))
                .await,
        ),
        kind(
            store
                .commit_account(&fine, None, &claim(&[], &[&long_claim]))
                .await,
        ),
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        assert_eq!(kind, Some(StoreErrorKind::Other), "call {i}");
    }
    assert!(
        store
            .account_record(&fine.account)
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(count_rows(&pool, &name, "ninsho_contact_claims").await, 0);
    assert_eq!(count_rows(&pool, &name, "ninsho_devices").await, 1);
    assert_eq!(
        store
            .commit_account(&fine, None, &claim(&[&fits_claim], &[]))
            .await
            .expect("a 1023-byte claim key"),
        AccountCommit::Committed
    );
    assert_eq!(
        store.claim_owner(&fits_claim).await.expect("owner"),
        Some(fine.account.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn factor_records_compare_and_set_on_every_bit() {
    let Some(pool) = server("factor_records_compare_and_set_on_every_bit").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_789)
        .expect("valid instant");
    let alice = AccountId::new("alice");

    // Devices: huge versions; the device table's expiry column keeps
    // microseconds while the record keeps nanoseconds.
    let mut device = sample_device(&alice, 5, now);
    device.version = u64::MAX - 1;
    device.label = "nul\u{0}inside \"quoted\" \\ 東京 🔐".to_owned();
    store.insert_device(&device).await.expect("insert");
    let mut next = device.clone();
    next.version = u64::MAX;
    next.last_used_at = now + Duration::hours(2);
    store
        .replace_device(&next, u64::MAX - 1)
        .await
        .expect("compare-and-set");
    assert_eq!(
        kind(store.replace_device(&next, u64::MAX - 1).await),
        Some(StoreErrorKind::Conflict)
    );
    let back = store
        .device(&alice, &device.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(json(&back), json(&next));
    let expires: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT expires_at FROM `{name}`.ninsho_devices"
    )))
    .fetch_one(&pool)
    .await
    .expect("expiry column");
    assert_eq!(
        i128::from(expires) * 1_000,
        (next.expires_at.unix_timestamp_nanos() / 1_000) * 1_000,
        "microseconds since the epoch"
    );
}

// ---------------------------------------------------------------------------
// Account records, contact claims and verifications.
// ---------------------------------------------------------------------------

/// A commit that fails half-way (a CHECK constraint added here refuses the
/// second key to claim, after the record was written) is rolled back
/// whole: no record, no claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_contact_commit_writes_nothing() {
    let Some(pool) = server("a_failed_contact_commit_writes_nothing").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = migrated(pool.clone(), &name).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "ALTER TABLE `{name}`.ninsho_contact_claims \
         ADD CONSTRAINT no_bad_keys CHECK (`key` <> 'bad key')"
    )))
    .execute(&pool)
    .await
    .expect("add a CHECK constraint");
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    let book = testkit::sample_contact_book(&alice, now);
    let got = store
        .commit_account(&book, None, &claim(&["+819012345678", "bad key"], &[]))
        .await;
    assert_eq!(kind(got), Some(StoreErrorKind::Other));
    assert!(store.account_record(&alice).await.expect("read").is_none());
    assert_eq!(count_rows(&pool, &name, "ninsho_contact_books").await, 0);
    assert_eq!(count_rows(&pool, &name, "ninsho_contact_claims").await, 0);

    // The same commit without the bad key goes through, and a hostile
    // account or key is just data.
    let hostile = AccountId::new("'; DROP TABLE ninsho_contact_claims; --");
    let got = store
        .commit_account(
            &testkit::sample_contact_book(&hostile, now),
            None,
            &claim(&["x' OR '1'='1", "%", "_"], &[]),
        )
        .await
        .expect("commit");
    assert_eq!(got, AccountCommit::Committed);
    assert_eq!(
        store.claim_owner("%").await.expect("owner"),
        Some(hostile.clone())
    );
    assert_eq!(store.claim_owner("x").await.expect("owner"), None);
    store.delete_account(&hostile).await.expect("delete");
    assert_eq!(count_rows(&pool, &name, "ninsho_contact_claims").await, 0);
}

/// Releasing a key nobody holds, or one another account holds, leaves no
/// row behind (the commit locks such a key by inserting it, then deletes
/// it); a key both released and claimed stays claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn releases_leave_no_rows_behind() {
    let Some(pool) = server("releases_leave_no_rows_behind").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let (alice, bob) = (AccountId::new("alice"), AccountId::new("bob"));
    let mut book = testkit::sample_contact_book(&alice, now);
    store
        .commit_account(
            &testkit::sample_contact_book(&bob, now),
            None,
            &claim(&["bob-key"], &[]),
        )
        .await
        .expect("bob");
    assert_eq!(
        store
            .commit_account(
                &book,
                None,
                &claim(&["kept", "both"], &["free", "bob-key", "both"])
            )
            .await
            .expect("commit"),
        AccountCommit::Committed
    );
    assert_eq!(store.claim_owner("free").await.expect("owner"), None);
    assert_eq!(
        store.claim_owner("bob-key").await.expect("owner"),
        Some(bob.clone())
    );
    assert_eq!(
        store.claim_owner("both").await.expect("owner"),
        Some(alice.clone())
    );
    assert_eq!(count_rows(&pool, &name, "ninsho_contact_claims").await, 3);

    // Swap: release "kept", claim "new".
    book.version = 2;
    assert_eq!(
        store
            .commit_account(&book, Some(1), &claim(&["new"], &["kept"]))
            .await
            .expect("swap"),
        AccountCommit::Committed
    );
    assert_eq!(store.claim_owner("kept").await.expect("owner"), None);
    assert_eq!(store.claim_owner("new").await.expect("owner"), Some(alice));
    assert_eq!(count_rows(&pool, &name, "ninsho_contact_claims").await, 3);
}

/// Verification versions are stored as their 64 bits, and the expiry
/// column keeps microseconds while the record keeps nanoseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verifications_compare_and_set_on_every_bit() {
    let Some(pool) = server("verifications_compare_and_set_on_every_bit").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_789)
        .expect("valid instant");
    let mut record = testkit::sample_verification(1, now);
    record.created_at = now;
    record.expires_at = now + Duration::minutes(30);
    record.version = u64::MAX - 1;
    store.insert_verification(&record).await.expect("insert");
    let mut next = record.clone();
    next.version = u64::MAX;
    next.members[0].verified_at = Some(now);
    store
        .replace_verification(&next, u64::MAX - 1)
        .await
        .expect("compare-and-set on a huge version");
    assert_eq!(
        kind(store.replace_verification(&next, u64::MAX - 1).await),
        Some(StoreErrorKind::Conflict)
    );
    let back = store
        .verification(&record.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(back, next, "nanoseconds and all");
    let version: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM `{name}`.ninsho_verifications"
    )))
    .fetch_one(&pool)
    .await
    .expect("version column");
    assert_eq!(version, -1, "u64::MAX is stored as its bits");
    // The purge compares microseconds: a cut-off in the expiry's own
    // microsecond does not delete it, the next microsecond does.
    assert_eq!(
        store
            .purge(next.expires_at)
            .await
            .expect("purge")
            .verifications,
        0
    );
    assert_eq!(
        store
            .purge(next.expires_at + Duration::microseconds(1))
            .await
            .expect("purge")
            .verifications,
        1
    );
}

/// The purge drops counters whose window has ended (they act as absent),
/// and leaves running windows alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_drops_ended_counters() {
    let Some(pool) = server("purge_drops_ended_counters").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    store
        .hit("short", Duration::minutes(1), now)
        .await
        .expect("hit");
    store
        .hit("long", Duration::hours(1), now)
        .await
        .expect("hit");
    assert_eq!(
        store
            .purge(now + Duration::minutes(1))
            .await
            .expect("purge")
            .counters,
        1,
        "the window that ended at the cut-off goes, and is counted"
    );
    assert_eq!(count_rows(&pool, &name, "ninsho_counters").await, 1);
    assert_eq!(
        store
            .hit("long", Duration::hours(1), now + Duration::minutes(2))
            .await
            .expect("hit")
            .count,
        2
    );
}

// ---------------------------------------------------------------------------
// Journey steps (`StepStore`): the initialisation marker and the adapter's
// own rules; the conformance suite checks the rest.
// ---------------------------------------------------------------------------

/// `load` and `account_record` read the store's marker (the row
/// `initialised` of `ninsho_meta`, written by `initialise` only) in their
/// one statement: a database never initialised, emptied, or that lost its
/// tables answers `NotInitialised`, never "this account has no record",
/// and migrating again does not re-arm it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_refuses_a_store_that_lost_its_marker() {
    let Some(pool) = server("load_refuses_a_store_that_lost_its_marker").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    let store = MySqlStore::with_database(pool.clone(), &name).expect("name");
    let refused = |store: MySqlStore, what: &'static str| {
        let alice = alice.clone();
        async move {
            assert_eq!(
                kind(store.load(&Load::account(&alice)).await),
                Some(StoreErrorKind::NotInitialised),
                "load on {what}"
            );
            assert_eq!(
                kind(store.account_record(&alice).await),
                Some(StoreErrorKind::NotInitialised),
                "account_record on {what}"
            );
        }
    };

    // Never set up: no database at all, then no tables, then migrated
    // but not initialised.
    refused(store.clone(), "no database").await;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
        .execute(&pool)
        .await
        .expect("create the database");
    refused(store.clone(), "no tables").await;
    assert_eq!(
        kind(store.initialise().await),
        Some(StoreErrorKind::Other),
        "initialise needs the tables"
    );
    store.migrate().await.expect("migrate");
    refused(store.clone(), "a migrated, uninitialised store").await;

    store.initialise().await.expect("initialise");
    store
        .initialise()
        .await
        .expect("initialise again changes nothing");
    let book = testkit::sample_contact_book(&alice, now);
    store
        .commit_account(&book, None, &claim(&[], &[]))
        .await
        .expect("commit");
    let loaded = store.load(&Load::account(&alice)).await.expect("load");
    assert_eq!(loaded.record.map(|r| r.version), Some(1));
    assert_eq!(
        store
            .account_record(&alice)
            .await
            .expect("read")
            .map(|r| r.version),
        Some(1)
    );
    assert!(
        store
            .account_record(&AccountId::new("bob"))
            .await
            .expect("read")
            .is_none()
    );
    let challenge = testkit::sample_challenge(4, now);
    store.insert_challenge(&challenge).await.expect("insert");
    assert!(
        store
            .load(&Load::challenge_only(&challenge.id))
            .await
            .expect("load")
            .challenge
            .is_some()
    );

    // The rows go (a restore of an empty dump, a TRUNCATE): refused, also
    // for a challenge alone, and a start-up migration does not re-arm it.
    for table in ["ninsho_contact_books", "ninsho_challenges", "ninsho_meta"] {
        sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE TABLE `{name}`.{table}")))
            .execute(&pool)
            .await
            .expect("truncate");
    }
    refused(store.clone(), "emptied tables").await;
    assert_eq!(
        kind(store.load(&Load::challenge_only(&challenge.id)).await),
        Some(StoreErrorKind::NotInitialised),
        "load of a challenge alone on emptied tables"
    );
    store.migrate().await.expect("migrate again");
    refused(store.clone(), "emptied tables, migrated again").await;

    // An operator initialises it again on purpose.
    store.initialise().await.expect("initialise");
    let loaded = store.load(&Load::account(&alice)).await.expect("load");
    assert!(loaded.record.is_none() && loaded.failures.is_none());

    // The tables go: refused again.
    sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE `{name}`.ninsho_meta")))
        .execute(&pool)
        .await
        .expect("drop");
    refused(store.clone(), "a lost table").await;
}

/// A step commit refuses over-long keys before anything runs, and an
/// unreachable server is `Unavailable` for both calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steps_refuse_long_keys_and_map_outages() {
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let long = AccountId::new("a".repeat(1025));
    let challenge = testkit::sample_challenge(5, now);
    let long_hits = [LimitHit {
        key: "k".repeat(2049),
        window: Duration::hours(1),
        max: 10,
    }];
    let hits = [LimitHit {
        key: "k".to_owned(),
        window: Duration::hours(1),
        max: 10,
    }];
    let device = sample_device(&long, 1, now);
    let book = testkit::sample_contact_book(&long, now);
    let no_claims = claim(&[], &[]);
    let long_claims = claim(&[&"東".repeat(342)], &[]);
    let fine_book = testkit::sample_contact_book(&AccountId::new("fine"), now);
    // `Commit` is non-exhaustive: built from the default, part by part.
    let mut long_commits = [Commit::default(); 5];
    long_commits[0].hits = &long_hits;
    long_commits[1].failures = Some(FailureChange {
        account: &long,
        expected: None,
        next: None,
    });
    long_commits[2].device = Some(&device);
    long_commits[3].record = Some(RecordWrite {
        record: &book,
        expected_version: None,
        claims: &no_claims,
    });
    long_commits[4].record = Some(RecordWrite {
        record: &fine_book,
        expected_version: None,
        claims: &long_claims,
    });

    if let Some(pool) = server("steps_refuse_long_keys_and_map_outages").await {
        let databases = Databases::default();
        let name = databases.fresh();
        let store = migrated(pool.clone(), &name).await;
        assert_eq!(
            kind(store.load(&Load::account(&long)).await),
            Some(StoreErrorKind::Other)
        );
        for (i, commit) in long_commits.iter().enumerate() {
            // Each also carries a challenge that would otherwise land.
            let mut commit = *commit;
            commit.challenge = Some(ChallengeWrite::Insert(&challenge));
            assert_eq!(
                kind(store.commit(&commit, now).await),
                Some(StoreErrorKind::Other),
                "commit {i}"
            );
        }
        assert_eq!(count_rows(&pool, &name, "ninsho_challenges").await, 0);
        assert_eq!(count_rows(&pool, &name, "ninsho_counters").await, 0);
    }

    // Port 1 on loopback: connection refused, quickly.
    let pool = MySqlPoolOptions::new()
        .acquire_timeout(StdDuration::from_millis(500))
        .connect_lazy("mysql://root@127.0.0.1:1/test")
        .expect("lazy pool");
    let store = MySqlStore::new(pool);
    let alice = AccountId::new("alice");
    assert_eq!(
        kind(
            store
                .load(&Load::account(&alice).with_challenge(&challenge.id))
                .await
        ),
        Some(StoreErrorKind::Unavailable)
    );
    let mut commit = Commit::default();
    commit.hits = &hits;
    commit.challenge = Some(ChallengeWrite::Insert(&challenge));
    assert_eq!(
        kind(store.commit(&commit, now).await),
        Some(StoreErrorKind::Unavailable)
    );
}

/// A step commit that waits on a row lock past `innodb_lock_wait_timeout`
/// fails as `Unavailable` and writes nothing, its hits included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_commit_that_times_out_writes_nothing() {
    let Some(pool) = server("a_step_commit_that_times_out_writes_nothing").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    migrated(pool.clone(), &name).await;
    let impatient = MySqlPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION innodb_lock_wait_timeout = 1")
                    .await
                    .map(|_| ())
            })
        })
        .connect(&url())
        .await
        .expect("pool");
    let store = MySqlStore::with_database(impatient, &name).expect("name");
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let challenge = testkit::sample_challenge(6, now);
    store.insert_challenge(&challenge).await.expect("insert");

    // Another client holds the challenge's row locked.
    let mut other = MySqlConnection::connect(&url()).await.expect("connect");
    other.execute("BEGIN").await.expect("begin");
    sqlx::query(AssertSqlSafe(format!(
        "SELECT version FROM `{name}`.ninsho_challenges WHERE id = ? FOR UPDATE"
    )))
    .bind(challenge.id.to_string().into_bytes())
    .fetch_all(&mut other)
    .await
    .expect("lock the challenge");

    let mut next = challenge.clone();
    next.version = 1;
    let hits = [LimitHit {
        key: "sends".to_owned(),
        window: Duration::hours(1),
        max: 10,
    }];
    let mut commit = Commit::default();
    commit.hits = &hits;
    commit.challenge = Some(ChallengeWrite::Replace {
        record: &next,
        expected_version: 0,
    });
    assert_eq!(
        kind(store.commit(&commit, now).await),
        Some(StoreErrorKind::Unavailable)
    );
    other.execute("ROLLBACK").await.expect("rollback");
    other.close().await.expect("close");
    assert_eq!(
        store
            .challenge(&challenge.id)
            .await
            .expect("read")
            .map(|c| c.version),
        Some(0)
    );
    assert_eq!(
        store
            .hit("sends", Duration::hours(1), now)
            .await
            .expect("hit")
            .count,
        1,
        "the timed-out commit's hit was rolled back"
    );
}

/// A database emptied under a running service (every table truncated, as
/// a restore of an empty dump leaves it) answers errors, never "two-step
/// sign-in is off": an enrolled account's sign-in, its methods, its status
/// and a new code all fail with `NotInitialised`, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_emptied_under_a_running_service_fails_closed() {
    let Some(pool) = server("a_database_emptied_under_a_running_service_fails_closed").await else {
        return;
    };
    let databases = Databases::default();
    let name = databases.fresh();
    let store = Arc::new(migrated(pool.clone(), &name).await);
    let gateway = ninsho::gateway::RecordingGateway::new();
    let clock = ninsho::ManualClock::at_unix(support::T0).expect("clock");
    let service = support::two_factor("Example", store.clone(), &gateway, &clock, 41)
        .limits(support::no_send_limits())
        .build()
        .expect("service");
    let taro = AccountId::new("taro");
    support::enrol(&service, &gateway, &taro).await;
    let before = service
        .sign_in_begin(&taro, None)
        .await
        .expect("sign-in begins");
    assert!(matches!(
        before,
        ninsho::service::SignInStart::Required { .. }
    ));
    let sent = gateway.attempts().len();

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
    )
    .bind(&name)
    .fetch_all(&pool)
    .await
    .expect("list tables");
    for table in tables {
        sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE TABLE `{name}`.`{table}`")))
            .execute(&pool)
            .await
            .expect("truncate");
    }

    let wiped = |e: ninsho::Error| match e {
        ninsho::Error::Store(e) => e.kind(),
        other => panic!("an emptied store must answer a store error, not {other:?}"),
    };
    let begin = service.sign_in_begin(&taro, None).await;
    assert!(
        !matches!(begin, Ok(ninsho::service::SignInStart::NotNeeded(_))),
        "an emptied store read as 'no second step needed': {begin:?}"
    );
    assert_eq!(
        wiped(begin.expect_err("refused")),
        StoreErrorKind::NotInitialised
    );
    assert_eq!(
        wiped(
            service
                .two_factor_enabled(&taro)
                .await
                .expect_err("refused")
        ),
        StoreErrorKind::NotInitialised
    );
    assert_eq!(
        wiped(service.methods(&taro).await.expect_err("refused")),
        StoreErrorKind::NotInitialised
    );
    assert_eq!(
        wiped(
            service
                .phone_send_code(&AccountId::new("jiro"), "090-8765-4321", None, None)
                .await
                .expect_err("refused")
        ),
        StoreErrorKind::NotInitialised
    );
    assert_eq!(gateway.attempts().len(), sent, "nothing may be sent");
}
