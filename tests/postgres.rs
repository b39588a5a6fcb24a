//! `PgStore` against a real PostgreSQL: the conformance suite, two app
//! instances racing on one schema, and the adapter's own rules.
//!
//! The server is `NINSHO_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it can't be reached the
//! tests print `SKIPPED` and pass, except under `CI=true`, where they fail:
//! CI must prove the adapter, not skip it. Every test works in schemas of
//! its own (`ninsho_t_<pid>_<nanos>_<n>`) and drops them at the end, so runs
//! never collide.

#![cfg(all(feature = "postgres", feature = "testkit"))]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use ninsho::model::{AccountId, ChallengeId, DeviceId, DeviceRecord, FailureRecord, Purpose};
use ninsho::store::PurgeStore;
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ChallengeWrite, ClaimChanges, Commit, Committed,
    DeviceStore, FailureChange, LimitHit, LimitStore, Load, PgStore, RecordWrite, StepStore, Store,
    StoreError, StoreErrorKind, VerificationStore,
};
use ninsho::{KeyId, KeyedHash, testkit};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use time::{Duration, OffsetDateTime};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn url() -> String {
    match std::env::var("NINSHO_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if under_ci() => panic!("PostgreSQL required under CI: set NINSHO_PG_URL"),
        _ => DEFAULT_URL.to_owned(),
    }
}

async fn pool(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(StdDuration::from_secs(5))
        .connect(url)
        .await
}

/// A pool on the test server, or `None` (after saying so) when it is down
/// outside CI.
async fn server(test: &str) -> Option<PgPool> {
    let url = url();
    match pool(&url).await {
        Ok(pool) => Some(pool),
        Err(e) if under_ci() => {
            panic!("PostgreSQL required under CI (CI=true): cannot reach {url}: {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED postgres::{test}: PostgreSQL unreachable at {url} ({e}); \
                 set NINSHO_PG_URL to run it (under CI=true this fails instead)"
            );
            None
        }
    }
}

/// A schema name no other test or run uses.
fn unique_schema() -> String {
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

async fn drop_schema(pool: &PgPool, name: &str) {
    // The name comes from `unique_schema`: letters, digits, underscores.
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
    )))
    .execute(pool)
    .await
    .expect("drop the test schema");
}

/// The schemas a test made; dropped when the guard goes, also when the test
/// fails, so a failing run leaves nothing behind.
#[derive(Default)]
struct Schemas(Mutex<Vec<String>>);

impl Schemas {
    /// A fresh schema name, dropped with the guard.
    fn fresh(&self) -> String {
        let name = unique_schema();
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name.clone());
        name
    }
}

impl Drop for Schemas {
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
                    eprintln!("could not drop test schemas {names:?}");
                    return;
                };
                for name in &names {
                    drop_schema(&pool, name).await;
                }
                pool.close().await;
            });
        });
        let _ = cleanup.join();
    }
}

async fn migrated(pool: PgPool, schema: &str) -> PgStore {
    let store = PgStore::with_schema(pool, schema).expect("valid schema name");
    store.migrate().await.expect("migrate");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let Some(pool) = server("conformance").await else {
        return;
    };
    let schemas = Schemas::default();
    testkit::run_all(|| {
        let pool = pool.clone();
        let name = schemas.fresh();
        async move { Arc::new(migrated(pool, &name).await) as Arc<dyn Store> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_app_instances_on_one_schema() {
    if server("two_app_instances_on_one_schema").await.is_none() {
        return;
    }
    let schemas = Schemas::default();
    let name = schemas.fresh();
    // Two independent pools: two servers behind a load balancer. Both run
    // the start-up migration at once, as they would.
    let url = url();
    let a = PgStore::with_schema(pool(&url).await.expect("pool a"), &name).expect("schema");
    let b = PgStore::with_schema(pool(&url).await.expect("pool b"), &name).expect("schema");
    let (ma, mb) = tokio::join!(a.migrate(), b.migrate());
    ma.expect("migrate from instance a");
    mb.expect("migrate from instance b");

    testkit::race_two_instances(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_is_idempotent_and_concurrent() {
    let Some(pool) = server("migrate_is_idempotent_and_concurrent").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = PgStore::with_schema(pool.clone(), &name).expect("schema");
    assert_eq!(store.schema(), name);

    // Eight instances starting at once on a schema that does not exist yet.
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
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
        "SELECT version FROM \"{name}\".ninsho_schema_version ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .expect("read versions");
    assert_eq!(versions, [1, 2, 3, 4, 5], "each migration is recorded once");

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 ORDER BY table_name",
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
            "ninsho_epochs",
            "ninsho_failures",
            "ninsho_meta",
            "ninsho_recovery_sets",
            "ninsho_schema_version",
            "ninsho_verifications"
        ],
        "every table lives in the store's schema"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_names_are_validated() {
    // No server needed: validation happens before any I/O.
    let pool = PgPoolOptions::new()
        .connect_lazy(DEFAULT_URL)
        .expect("lazy pool");
    for bad in [
        "",
        "bad-name",
        "a\"b",
        "public; DROP TABLE x",
        "space d",
        "ünicode",
        &"x".repeat(64),
    ] {
        let err = PgStore::with_schema(pool.clone(), bad).expect_err(bad);
        assert_eq!(err.kind(), StoreErrorKind::Other, "{bad:?}");
    }
    for good in ["public", "Tenant_42", "_x", "9lives", &"x".repeat(63)] {
        let store = PgStore::with_schema(pool.clone(), good).expect(good);
        assert_eq!(store.schema(), good);
    }
    assert_eq!(PgStore::new(pool).schema(), "public");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_server_is_unavailable() {
    // Port 1 on loopback: connection refused, quickly.
    let pool = PgPoolOptions::new()
        .acquire_timeout(StdDuration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/test")
        .expect("lazy pool");
    let store = PgStore::new(pool.clone());
    let now = OffsetDateTime::now_utc();
    let account = AccountId::new("alice");
    let id = ChallengeId::from_bytes([1; 16]);
    let record = testkit::sample_challenge(1, now);

    let kinds = [
        store.migrate().await.err().map(|e| e.kind()),
        store
            .insert_challenge(&record)
            .await
            .err()
            .map(|e| e.kind()),
        store.challenge(&id).await.err().map(|e| e.kind()),
        store
            .replace_challenge(&record, 0)
            .await
            .err()
            .map(|e| e.kind()),
        store.purge(now).await.err().map(|e| e.kind()),
        store
            .hit("k", Duration::minutes(1), now)
            .await
            .err()
            .map(|e| e.kind()),
        support::record_failure(&store, &account, now)
            .await
            .err()
            .map(|e| e.kind()),
        store.failures(&account).await.err().map(|e| e.kind()),
        store.clear_failures(&account).await.err().map(|e| e.kind()),
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
    let hits = [LimitHit {
        key: "k".to_owned(),
        window: Duration::minutes(1),
        max: 5,
    }];
    let mut commit = Commit::default();
    commit.hits = &hits;
    let step_kinds = [
        kind(store.load(&Load::account(&account)).await),
        kind(store.commit(&commit, now).await),
        kind(store.initialise().await),
    ];
    for (i, kind) in kinds
        .into_iter()
        .chain(factor_kinds)
        .chain(contact_kinds)
        .chain(step_kinds)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_injection_is_inert() {
    let Some(pool) = server("sql_injection_is_inert").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::now_utc();
    let hostile = [
        "'; DROP TABLE ninsho_counters; --",
        "x' OR '1'='1",
        "\"; DROP SCHEMA public CASCADE; --",
        "$1",
        "\\'; SELECT pg_sleep(10); --",
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
    let counters: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{name}\".ninsho_counters"
    )))
    .fetch_one(&pool)
    .await
    .expect("count counters");
    assert_eq!(counters, i64::try_from(hostile.len()).expect("small"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn times_keep_microseconds_and_records_keep_everything() {
    let Some(pool) = server("times_keep_microseconds_and_records_keep_everything").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
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

    // U+0000 in a host-supplied string survives inside the record; as a
    // key or account id PostgreSQL's TEXT refuses it, as a typed error.
    let mut odd = testkit::sample_challenge(8, now);
    odd.purpose = Purpose::Other("nul\u{0}inside".to_owned());
    odd.account = Some(AccountId::new("acct\u{0}x"));
    store.insert_challenge(&odd).await.expect("insert");
    let back = store
        .challenge(&odd.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(back.purpose, odd.purpose);
    assert_eq!(back.account, odd.account);
    let err = support::record_failure(&store, &AccountId::new("acct\u{0}x"), now)
        .await
        .expect_err("NUL in TEXT");
    assert_eq!(err.kind(), StoreErrorKind::Other);
}

// ---------------------------------------------------------------------------
// Recovery sets, trusted devices and security epochs (schema version 2).
// ---------------------------------------------------------------------------

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

async fn count_rows(pool: &PgPool, schema: &str, table: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".{table}"
    )))
    .fetch_one(pool)
    .await
    .expect("count rows")
}

/// The schema the previous release's `migrate` left: version 1 applied and
/// recorded, nothing of version 2.
async fn version_1_schema(name: &str) {
    let mut conn = PgConnection::connect(&url()).await.expect("connect");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE SCHEMA \"{name}\"; \
         SET search_path TO \"{name}\"; \
         CREATE TABLE ninsho_schema_version (\
         version BIGINT PRIMARY KEY, \
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now());"
    )))
    .execute(&mut conn)
    .await
    .expect("create the schema");
    sqlx::raw_sql(include_str!("../migrations/postgres/0001_init.sql"))
        .execute(&mut conn)
        .await
        .expect("apply version 1");
    sqlx::query(
        "INSERT INTO ninsho_schema_version (version, applied_at) \
         VALUES (1, '2020-01-02T03:04:05Z')",
    )
    .execute(&mut conn)
    .await
    .expect("record version 1");
    conn.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrates_a_version_1_schema_to_version_2() {
    let Some(pool) = server("migrates_a_version_1_schema_to_version_2").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    version_1_schema(&name).await;
    let store = PgStore::with_schema(pool.clone(), &name).expect("schema");

    // Data written by the previous release.
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    let challenge = testkit::sample_challenge(3, now);
    store.insert_challenge(&challenge).await.expect("insert");
    store.hit("k", Duration::hours(1), now).await.expect("hit");
    support::record_failure(&store, &alice, now)
        .await
        .expect("failure");
    // The version-2 tables are not there yet: a permanent error.
    assert_eq!(
        kind(store.devices(&alice).await),
        Some(StoreErrorKind::Other)
    );

    // Two instances of the new release start at once.
    let other = store.clone();
    let (a, b) = tokio::join!(store.migrate(), other.migrate());
    a.expect("migrate a");
    b.expect("migrate b");

    let versions: Vec<(i64, OffsetDateTime)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT version, applied_at FROM \"{name}\".ninsho_schema_version ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .expect("read versions");
    assert_eq!(
        versions.iter().map(|v| v.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5],
        "versions 2 to 5 applied once"
    );
    assert_eq!(
        versions[0].1,
        OffsetDateTime::from_unix_timestamp(1_577_934_245).expect("2020-01-02T03:04:05Z"),
        "version 1 is not applied again"
    );

    // The old data is intact.
    let back = store
        .challenge(&challenge.id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(json(&back), json(&challenge));
    assert_eq!(
        store
            .hit("k", Duration::hours(1), now)
            .await
            .expect("hit")
            .count,
        2
    );
    assert_eq!(
        store
            .failures(&alice)
            .await
            .expect("read")
            .map(|f| f.consecutive),
        Some(1)
    );

    // The new tables work.
    store
        .insert_device(&sample_device(&alice, 1, now))
        .await
        .expect("device");
    store.migrate().await.expect("migrate again");
    assert_eq!(store.devices(&alice).await.expect("devices").len(), 1);
    assert_eq!(count_rows(&pool, &name, "ninsho_schema_version").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn factor_tables_keep_hostile_accounts_apart() {
    let Some(pool) = server("factor_tables_keep_hostile_accounts_apart").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let hostile = [
        "'; DROP TABLE ninsho_devices; --",
        "x' OR '1'='1",
        "\"; DROP SCHEMA public CASCADE; --",
        "$1",
        "%",
        "_",
        "alice",
        "alice ",
        "ALICE",
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
    }
    for account in &hostile {
        let account = AccountId::new(*account);
        let devices = store.devices(&account).await.expect("list");
        assert_eq!(devices.len(), 2, "{account:?}");
        assert!(devices.iter().all(|d| d.account == account), "{account:?}");
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn factor_tables_refuse_nul_accounts_but_keep_nul_labels() {
    let Some(pool) = server("factor_tables_refuse_nul_accounts_but_keep_nul_labels").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");

    // PostgreSQL's TEXT can't hold U+0000: an account id with one is a
    // typed, permanent error on every call, and nothing is written.
    let nul = AccountId::new("acct\u{0}x");
    let device = sample_device(&nul, 1, now);
    let kinds = [
        kind(store.insert_device(&device).await),
        kind(store.device(&nul, &device.id).await),
        kind(store.devices(&nul).await),
        kind(store.replace_device(&device, 0).await),
        kind(store.delete_device(&nul, &device.id).await),
        kind(store.delete_devices(&nul).await),
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        assert_eq!(kind, Some(StoreErrorKind::Other), "call {i}");
    }
    assert_eq!(count_rows(&pool, &name, "ninsho_devices").await, 0);

    // Inside the JSON record U+0000 is escaped, so a label keeps it, and
    // the prefix account is unaffected by the refused calls.
    let acct = AccountId::new("acct");
    let mut device = sample_device(&acct, 1, now);
    device.label = "nul\u{0}inside \"quoted\" \\ 東京".to_owned();
    store.insert_device(&device).await.expect("insert");
    let back = store
        .device(&acct, &device.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(back.label, device.label);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn factor_records_compare_and_set_on_every_bit() {
    let Some(pool) = server("factor_records_compare_and_set_on_every_bit").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_789)
        .expect("valid instant");
    let alice = AccountId::new("alice");

    // Devices: huge versions; the device table's expiry column keeps
    // microseconds while the record keeps nanoseconds.
    let mut device = sample_device(&alice, 5, now);
    device.version = u64::MAX - 1;
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
}

// ---------------------------------------------------------------------------
// Account records, contact claims and verifications (schema version 3).
// ---------------------------------------------------------------------------

/// The schema the previous release's `migrate` left: versions 1 and 2
/// applied and recorded, nothing of version 3.
async fn version_2_schema(name: &str) {
    version_1_schema(name).await;
    let mut conn = PgConnection::connect(&url()).await.expect("connect");
    sqlx::raw_sql(AssertSqlSafe(format!("SET search_path TO \"{name}\";")))
        .execute(&mut conn)
        .await
        .expect("search path");
    sqlx::raw_sql(include_str!("../migrations/postgres/0002_factors.sql"))
        .execute(&mut conn)
        .await
        .expect("apply version 2");
    sqlx::query(
        "INSERT INTO ninsho_schema_version (version, applied_at) \
         VALUES (2, '2021-01-02T03:04:05Z')",
    )
    .execute(&mut conn)
    .await
    .expect("record version 2");
    conn.close().await.expect("close");
}

fn claim(keys: &[&str], release: &[&str]) -> ClaimChanges {
    ClaimChanges {
        claim: keys.iter().map(|k| (*k).to_owned()).collect(),
        release: release.iter().map(|k| (*k).to_owned()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrates_a_version_2_schema_to_version_3() {
    let Some(pool) = server("migrates_a_version_2_schema_to_version_3").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    version_2_schema(&name).await;
    let store = PgStore::with_schema(pool.clone(), &name).expect("schema");

    // Data written by the previous release.
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    let device = sample_device(&alice, 1, now);
    store.insert_device(&device).await.expect("device");
    // The version-3 tables are not there yet: a permanent error.
    assert_eq!(
        kind(store.account_record(&alice).await),
        Some(StoreErrorKind::Other)
    );

    let other = store.clone();
    let (a, b) = tokio::join!(store.migrate(), other.migrate());
    a.expect("migrate a");
    b.expect("migrate b");
    let versions: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM \"{name}\".ninsho_schema_version ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .expect("read versions");
    assert_eq!(versions, [1, 2, 3, 4, 5], "versions 3 to 5 applied once");

    // The old data is intact and the new tables work.
    let back = store
        .device(&alice, &device.id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(json(&back), json(&device));
    let book = testkit::sample_contact_book(&alice, now);
    assert_eq!(
        store
            .commit_account(&book, None, &claim(&["+819012345678"], &[]))
            .await
            .expect("commit"),
        AccountCommit::Committed
    );
    let verification = testkit::sample_verification(1, now);
    store
        .insert_verification(&verification)
        .await
        .expect("verification");
    store.migrate().await.expect("migrate again");
    assert_eq!(
        store.claim_owner("+819012345678").await.expect("owner"),
        Some(alice)
    );
    assert_eq!(count_rows(&pool, &name, "ninsho_verifications").await, 1);
}

/// A commit that fails half-way (PostgreSQL's `TEXT` refuses U+0000, here
/// in the second key to claim) is rolled back whole: no record, no claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_contact_commit_writes_nothing() {
    let Some(pool) = server("a_failed_contact_commit_writes_nothing").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    let book = testkit::sample_contact_book(&alice, now);
    let got = store
        .commit_account(&book, None, &claim(&["+819012345678", "bad\u{0}key"], &[]))
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

/// Verification versions are stored as their 64 bits, and the expiry
/// column keeps microseconds while the record keeps nanoseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verifications_compare_and_set_on_every_bit() {
    let Some(pool) = server("verifications_compare_and_set_on_every_bit").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
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
        "SELECT version FROM \"{name}\".ninsho_verifications"
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

// ---------------------------------------------------------------------------
// Journey steps (load and commit) and the initialisation marker (schema
// version 4).
// ---------------------------------------------------------------------------

fn run(consecutive: u32, at: OffsetDateTime) -> FailureRecord {
    FailureRecord {
        consecutive,
        last_failure_at: at,
    }
}

fn limit_hit(key: &str, max: u64) -> LimitHit {
    LimitHit {
        key: key.to_owned(),
        window: Duration::hours(1),
        max,
    }
}

/// Every table of `schema`, as a comma-separated list for `TRUNCATE`.
async fn all_tables(pool: &PgPool, schema: &str) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables \
         WHERE table_schema = $1 ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("list tables");
    assert!(tables.len() >= 11, "{tables:?}");
    tables.join(", ")
}

async fn execute(pool: &PgPool, sql: String) {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(pool)
        .await
        .expect("execute");
}

async fn marker_rows(pool: &PgPool, schema: &str) -> Vec<(String, OffsetDateTime)> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT key, written_at FROM \"{schema}\".ninsho_meta"
    )))
    .fetch_all(pool)
    .await
    .expect("read the marker")
}

/// `load` (with every part, and a challenge alone), `account_record`,
/// `commit` and `claim_owner` all fail with `NotInitialised`.
async fn assert_not_initialised(store: &PgStore, account: &AccountId, what: &str) {
    let id = ChallengeId::from_bytes([9; 16]);
    let loads = [
        Load::account(account),
        Load::challenge_only(&id),
        Load::account(account).with_challenge(&id),
    ];
    for load in loads {
        assert_eq!(
            kind(store.load(&load).await),
            Some(StoreErrorKind::NotInitialised),
            "{what}: load {load:?}"
        );
    }
    assert_eq!(
        kind(store.account_record(account).await),
        Some(StoreErrorKind::NotInitialised),
        "{what}: account_record"
    );
    // Nor is anything written: a step's commit checks the marker first.
    let hits = [LimitHit {
        key: "not-initialised".to_owned(),
        window: time::Duration::minutes(1),
        max: 10,
    }];
    let mut commit = Commit::default();
    commit.hits = &hits;
    assert_eq!(
        kind(store.commit(&commit, time::OffsetDateTime::now_utc()).await),
        Some(StoreErrorKind::NotInitialised),
        "{what}: commit"
    );
    assert_eq!(
        kind(store.claim_owner("not-initialised").await),
        Some(StoreErrorKind::NotInitialised),
        "{what}: claim_owner"
    );
}

/// Emptied tables (all of them, the migration record and the marker
/// included) fail closed, `migrate` does not re-arm them, and only
/// `initialise` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn truncated_tables_fail_closed_until_initialised() {
    let Some(pool) = server("truncated_tables_fail_closed_until_initialised").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");

    // A new schema is initialised by migrate, once.
    let marker = marker_rows(&pool, &name).await;
    assert_eq!(marker.len(), 1);
    assert_eq!(marker[0].0, "initialised");
    let book = testkit::sample_contact_book(&alice, now);
    store
        .commit_account(&book, None, &claim(&["+819012345678"], &[]))
        .await
        .expect("commit");
    let loaded = store.load(&Load::account(&alice)).await.expect("load");
    assert_eq!(loaded.record.map(|b| b.version), Some(1));

    // Everything emptied, as by a restore of an empty dump.
    execute(
        &pool,
        format!("TRUNCATE {}", all_tables(&pool, &name).await),
    )
    .await;
    assert_not_initialised(&store, &alice, "after TRUNCATE").await;

    // Starting the service again (migrate) applies the migrations again but
    // does not write the marker: still closed.
    store.migrate().await.expect("migrate after the loss");
    let versions: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM \"{name}\".ninsho_schema_version ORDER BY version"
    )))
    .fetch_all(&pool)
    .await
    .expect("read versions");
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert!(marker_rows(&pool, &name).await.is_empty());
    assert_not_initialised(&store, &alice, "after migrate").await;
    // Other calls still work (only the reads a journey starts with check).
    store.hit("k", Duration::hours(1), now).await.expect("hit");

    // The operator's act: the store answers again, with what it has.
    store.initialise().await.expect("initialise");
    let loaded = store.load(&Load::account(&alice)).await.expect("load");
    assert!(loaded.record.is_none() && loaded.failures.is_none());
    assert_eq!(store.account_record(&alice).await.expect("read"), None);
    let first = marker_rows(&pool, &name).await;
    assert_eq!(first.len(), 1);

    // initialise is idempotent and keeps the first time.
    store.initialise().await.expect("initialise again");
    assert_eq!(marker_rows(&pool, &name).await, first);

    // Only the marker deleted: the same.
    execute(&pool, format!("DELETE FROM \"{name}\".ninsho_meta")).await;
    assert_not_initialised(&store, &alice, "after DELETE of the marker").await;
    store.migrate().await.expect("migrate");
    assert_not_initialised(&store, &alice, "after DELETE and migrate").await;
    store.initialise().await.expect("initialise");
    store.load(&Load::account(&alice)).await.expect("load");

    // The marker's table dropped: closed as well (a permanent error), and
    // migrate makes it again only once version 4 is no longer recorded.
    execute(&pool, format!("DROP TABLE \"{name}\".ninsho_meta")).await;
    assert_eq!(
        kind(store.load(&Load::account(&alice)).await),
        Some(StoreErrorKind::Other)
    );
    store.migrate().await.expect("migrate");
    assert_eq!(
        kind(store.load(&Load::account(&alice)).await),
        Some(StoreErrorKind::Other)
    );
    execute(
        &pool,
        format!("DELETE FROM \"{name}\".ninsho_schema_version WHERE version = 4"),
    )
    .await;
    store.migrate().await.expect("migrate");
    store.load(&Load::account(&alice)).await.expect("load");
}

/// The one time the marker is written without an operator: the upgrade of
/// a version-3 schema (an existing deployment), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_upgrade_from_version_3_writes_the_marker_once() {
    let Some(pool) = server("the_upgrade_from_version_3_writes_the_marker_once").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    version_2_schema(&name).await;
    execute(
        &pool,
        format!(
            "SET search_path TO \"{name}\"; {} \
             INSERT INTO ninsho_schema_version (version) VALUES (3);",
            include_str!("../migrations/postgres/0003_contacts.sql")
        ),
    )
    .await;
    let store = PgStore::with_schema(pool.clone(), &name).expect("schema");
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    // A record as the previous release wrote it.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{name}\".ninsho_contact_books (account, version, record) \
         VALUES ($1, 1, $2)"
    )))
    .bind(&alice.0)
    .bind(serde_json::to_string(&testkit::sample_contact_book(&alice, now)).expect("json"))
    .execute(&pool)
    .await
    .expect("written by the previous release");
    // The previous release's schema has no marker table, and no commit
    // function: permanent errors, not NotInitialised (the schema is not
    // migrated yet).
    assert_eq!(
        kind(
            store
                .commit_account(
                    &testkit::sample_contact_book(&alice, now),
                    Some(1),
                    &claim(&[], &[])
                )
                .await
        ),
        Some(StoreErrorKind::Other)
    );
    assert_eq!(
        kind(store.load(&Load::account(&alice)).await),
        Some(StoreErrorKind::Other)
    );

    let other = store.clone();
    let (a, b) = tokio::join!(store.migrate(), other.migrate());
    a.expect("migrate a");
    b.expect("migrate b");
    assert_eq!(marker_rows(&pool, &name).await.len(), 1);
    let loaded = store.load(&Load::account(&alice)).await.expect("load");
    assert_eq!(loaded.record.map(|b| b.account), Some(alice.clone()));

    // Once: lost afterwards, it stays lost through migrate.
    execute(&pool, format!("DELETE FROM \"{name}\".ninsho_meta")).await;
    store.migrate().await.expect("migrate again");
    assert_not_initialised(&store, &alice, "after the upgrade").await;
}

/// What the marker can't catch, pinned so the docs stay true: a dropped
/// schema is, to `migrate`, a first deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_schema_is_created_again_as_new() {
    let Some(pool) = server("a_dropped_schema_is_created_again_as_new").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    store
        .commit_account(
            &testkit::sample_contact_book(&alice, now),
            None,
            &claim(&[], &[]),
        )
        .await
        .expect("commit");
    drop_schema(&pool, &name).await;
    store.migrate().await.expect("migrate");
    let loaded = store.load(&Load::account(&alice)).await.expect("load");
    assert!(
        loaded.record.is_none(),
        "a new store: the account is unknown"
    );
}

/// A commit that fails half-way (PostgreSQL's `TEXT` refuses U+0000, here
/// in the claim, its last part) is rolled back whole: counters, failure
/// run, challenge, device and record alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_step_commit_writes_nothing() {
    let Some(pool) = server("a_failed_step_commit_writes_nothing").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    let mut challenge = testkit::sample_challenge(1, now);
    challenge.account = Some(alice.clone());
    let device = sample_device(&alice, 1, now);
    let book = testkit::sample_contact_book(&alice, now);
    let bad = claim(&["+819012345678", "bad\u{0}key"], &[]);
    let hits = [limit_hit("dest:a", 5), limit_hit("acct:a", 5)];
    let mut commit = Commit::default();
    commit.hits = &hits;
    commit.failures = Some(FailureChange {
        account: &alice,
        expected: None,
        next: Some(run(1, now)),
    });
    commit.challenge = Some(ChallengeWrite::Insert(&challenge));
    commit.device = Some(&device);
    commit.record = Some(RecordWrite {
        record: &book,
        expected_version: None,
        claims: &bad,
    });
    assert_eq!(
        kind(store.commit(&commit, now).await),
        Some(StoreErrorKind::Other)
    );
    for table in [
        "ninsho_counters",
        "ninsho_failures",
        "ninsho_challenges",
        "ninsho_devices",
        "ninsho_contact_books",
        "ninsho_contact_claims",
    ] {
        assert_eq!(count_rows(&pool, &name, table).await, 0, "{table}");
    }

    // Without the bad key it lands whole, in one call.
    let good = claim(&["+819012345678"], &[]);
    commit.record = Some(RecordWrite {
        record: &book,
        expected_version: None,
        claims: &good,
    });
    assert_eq!(
        store.commit(&commit, now).await.expect("commit"),
        Committed::Done
    );
    let loaded = store
        .load(
            &Load::account(&alice)
                .with_challenge(&challenge.id)
                .with_device(&device.id),
        )
        .await
        .expect("load");
    assert_eq!(json(&loaded.record), json(&Some(book)));
    assert_eq!(loaded.failures, Some(run(1, now)));
    assert_eq!(json(&loaded.challenge), json(&Some(challenge)));
    assert_eq!(json(&loaded.device), json(&Some(device)));
    assert_eq!(
        store.claim_owner("+819012345678").await.expect("owner"),
        Some(alice)
    );
    assert_eq!(count_rows(&pool, &name, "ninsho_counters").await, 2);
}

/// What the statement-level rules mean for a commit: failure runs compare
/// at the stored precision (microseconds), versions on all 64 bits, and a
/// maximum of `u64::MAX` never stops a commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn step_commits_compare_as_the_part_calls_do() {
    let Some(pool) = server("step_commits_compare_as_the_part_calls_do").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_789)
        .expect("valid instant");
    let alice = AccountId::new("alice");

    // A run written with nanoseconds is compared as stored.
    let written = run(1, now);
    let mut commit = Commit::default();
    commit.failures = Some(FailureChange {
        account: &alice,
        expected: None,
        next: Some(written),
    });
    assert_eq!(
        store.commit(&commit, now).await.expect("start"),
        Committed::Done
    );
    commit.failures = Some(FailureChange {
        account: &alice,
        expected: Some(written),
        next: Some(run(2, now)),
    });
    assert_eq!(
        store
            .commit(&commit, now)
            .await
            .expect("the written run compares equal"),
        Committed::Done
    );

    // Huge versions, on the challenge and the record.
    let mut challenge = testkit::sample_challenge(2, now);
    challenge.version = u64::MAX - 1;
    store.insert_challenge(&challenge).await.expect("insert");
    let mut next = challenge.clone();
    next.version = u64::MAX;
    let mut commit = Commit::default();
    commit.challenge = Some(ChallengeWrite::Replace {
        record: &next,
        expected_version: u64::MAX - 1,
    });
    assert_eq!(
        store.commit(&commit, now).await.expect("replace"),
        Committed::Done
    );
    assert_eq!(
        kind(store.commit(&commit, now).await),
        Some(StoreErrorKind::Conflict)
    );

    // No maximum at all.
    let hits = [limit_hit("unlimited", u64::MAX)];
    let mut commit = Commit::default();
    commit.hits = &hits;
    for _ in 0..3 {
        assert_eq!(
            store.commit(&commit, now).await.expect("hit"),
            Committed::Done
        );
    }
    assert_eq!(
        store
            .hit("unlimited", Duration::hours(1), now)
            .await
            .expect("hit")
            .count,
        4
    );

    // A NUL in an account id is a typed error on load, as on every call.
    assert_eq!(
        kind(store.load(&Load::account(&AccountId::new("a\u{0}b"))).await),
        Some(StoreErrorKind::Other)
    );
}

/// 32 tasks on each of two pools (two app instances) commit the same step
/// at once, each with a hit: the same challenge version and a failure run
/// that does not exist yet (an insert race) on a shared counter, or (odd
/// rounds) the challenge version alone, each task on a counter of its own,
/// so that nothing but the challenge's own condition orders them. Exactly
/// one lands; the losers write nothing, their hits included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_step_commits_from_two_pools_land_once() {
    if server("racing_step_commits_from_two_pools_land_once")
        .await
        .is_none()
    {
        return;
    }
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let url = url();
    let a = migrated(pool(&url).await.expect("pool a"), &name).await;
    let b = PgStore::with_schema(pool(&url).await.expect("pool b"), &name).expect("schema");
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");

    for round in 0..6u8 {
        let with_run = round % 2 == 0;
        let alice = AccountId::new(format!("alice-{round}"));
        let mut challenge = testkit::sample_challenge(round, now);
        challenge.account = Some(alice.clone());
        a.insert_challenge(&challenge).await.expect("insert");
        let counter = format!("race:{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64u32)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let (alice, challenge, counter, barrier) = (
                    alice.clone(),
                    challenge.clone(),
                    counter.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    let mut next = challenge.clone();
                    next.version = 1;
                    next.failed_attempts = i;
                    let counter = if with_run {
                        counter
                    } else {
                        format!("{counter}:{i}")
                    };
                    let hits = [limit_hit(&counter, 1_000)];
                    let mut commit = Commit::default();
                    commit.hits = &hits;
                    if with_run {
                        commit.failures = Some(FailureChange {
                            account: &alice,
                            expected: None,
                            next: Some(run(i + 1, now)),
                        });
                    }
                    commit.challenge = Some(ChallengeWrite::Replace {
                        record: &next,
                        expected_version: 0,
                    });
                    barrier.wait().await;
                    (i, store.commit(&commit, now).await)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.expect("task") {
                (i, Ok(Committed::Done)) => winners.push(i),
                (_, Err(e)) if e.is_conflict() => {}
                (i, other) => panic!("task {i}: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let winner = winners[0];
        let loaded = b
            .load(&Load::account(&alice).with_challenge(&challenge.id))
            .await
            .expect("load");
        assert_eq!(
            loaded.challenge.map(|c| c.failed_attempts),
            Some(winner),
            "the winner's challenge"
        );
        assert_eq!(
            loaded.failures,
            with_run.then(|| run(winner + 1, now)),
            "the winner's run"
        );
        let charged: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT coalesce(sum(count), 0)::bigint FROM \"{name}\".ninsho_counters \
             WHERE key = $1 OR key LIKE $1 || ':%'"
        )))
        .bind(&counter)
        .fetch_one(a.pool())
        .await
        .expect("sum the counters");
        assert_eq!(charged, 1, "only the winner's hit is charged");
    }
}

/// Accounts racing to claim one number through step commits and through
/// `commit_account` at once (the two take the same locks): exactly one
/// holds it, every other is `Taken`, never an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn step_commits_and_commit_account_share_the_claim_locks() {
    let Some(pool) = server("step_commits_and_commit_account_share_the_claim_locks").await else {
        return;
    };
    let schemas = Schemas::default();
    let name = schemas.fresh();
    let store = migrated(pool.clone(), &name).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (0..32u32)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let account = AccountId::new(format!("claimer-{i}"));
                let book = testkit::sample_contact_book(&account, now);
                let claims = claim(&[&format!("own-{i}"), "+819012345678"], &[]);
                barrier.wait().await;
                if i % 2 == 0 {
                    let mut commit = Commit::default();
                    commit.record = Some(RecordWrite {
                        record: &book,
                        expected_version: None,
                        claims: &claims,
                    });
                    match store.commit(&commit, now).await {
                        Ok(Committed::Done) => Ok(true),
                        Ok(Committed::Taken { index: 1 }) => Ok(false),
                        other => Err(format!("{other:?}")),
                    }
                } else {
                    match store.commit_account(&book, None, &claims).await {
                        Ok(AccountCommit::Committed) => Ok(true),
                        Ok(AccountCommit::Taken { index: 1 }) => Ok(false),
                        other => Err(format!("{other:?}")),
                    }
                }
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        if task.await.expect("task").expect("Committed or Taken") {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    assert_eq!(count_rows(&pool, &name, "ninsho_contact_books").await, 1);
    // The winner's two claims, nothing of the losers'.
    assert_eq!(count_rows(&pool, &name, "ninsho_contact_claims").await, 2);
}
