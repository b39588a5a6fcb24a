//! `SqliteStore` on database files and in memory: the conformance suite,
//! two app instances (two pools) racing on one file, and the adapter's own
//! rules. Each test uses database files of its own in the temp directory
//! and removes them at the end.

#![cfg(all(feature = "sqlite", feature = "testkit"))]

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use ninsho::model::FailureRecord;
use ninsho::model::{AccountId, ChallengeId, DeviceId, DeviceRecord, Purpose};
use ninsho::store::PurgeStore;
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ChallengeWrite, ClaimChanges, Commit, Committed,
    DeviceStore, FailureChange, LimitHit, LimitStore, Load, RecordWrite, SqliteStore, StepStore,
    Store, StoreError, StoreErrorKind, VerificationStore,
};
use ninsho::{KeyId, KeyedHash, testkit};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use time::{Duration, OffsetDateTime};

/// A database path no other test or run uses.
fn unique_path() -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "ninsho_t_{}_{}_{}.db",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The database files a test made; removed when the guard goes, also when
/// the test fails.
#[derive(Default)]
struct Files(Mutex<Vec<PathBuf>>);

impl Files {
    /// A fresh database path, removed with the guard.
    fn fresh(&self) -> PathBuf {
        let path = unique_path();
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(path.clone());
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let paths = self
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for path in paths.drain(..) {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
    }
}

/// A pool on the database file `path` (created if missing), WAL mode.
async fn file_pool(path: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(StdDuration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .expect("open the database file")
}

/// A pool on a fresh in-memory database, kept alive for the pool's life.
async fn memory_pool() -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await
        .expect("open an in-memory database")
}

async fn migrated(pool: SqlitePool) -> SqliteStore {
    let store = SqliteStore::new(pool);
    store.migrate().await.expect("migrate");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_files() {
    let files = Files::default();
    testkit::run_all(|| {
        let path = files.fresh();
        async move { Arc::new(migrated(file_pool(&path).await).await) as Arc<dyn Store> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_memory() {
    testkit::run_all(|| async { Arc::new(migrated(memory_pool().await).await) as Arc<dyn Store> })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_app_instances_on_one_file() {
    let files = Files::default();
    let path = files.fresh();
    let a = SqliteStore::new(file_pool(&path).await);
    let b = SqliteStore::new(file_pool(&path).await);
    let (ma, mb) = tokio::join!(a.migrate(), b.migrate());
    ma.expect("migrate from instance a");
    mb.expect("migrate from instance b");
    testkit::race_two_instances(Arc::new(a.clone()), Arc::new(b.clone())).await;
    a.pool().close().await;
    b.pool().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_is_idempotent_and_concurrent() {
    let files = Files::default();
    let path = files.fresh();
    let pool = file_pool(&path).await;
    let store = SqliteStore::new(pool.clone());
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
    let again = store
        .hit("kept", Duration::hours(1), now)
        .await
        .expect("hit");
    assert_eq!(again.count, 2, "migrating again keeps the data");

    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM ninsho_schema_version ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("read versions");
    assert_eq!(versions, [1, 2, 3, 4], "each migration is recorded once");

    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
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
        ]
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unopenable_database_is_unavailable() {
    // A file in a directory that does not exist, not created on demand.
    let path = unique_path().join("missing").join("ninsho.db");
    let options = SqliteConnectOptions::new().filename(&path);
    let pool = SqlitePoolOptions::new()
        .acquire_timeout(StdDuration::from_millis(500))
        .connect_lazy_with(options);
    let store = SqliteStore::new(pool.clone());
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
    let hits = [limit_hit("k", 5)];
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
    let err = store.challenge(&id).await.expect_err("unopenable");
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");

    pool.close().await;
    let err = store.challenge(&id).await.expect_err("closed pool");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_tables_are_other_errors() {
    // Not migrated: a permanent problem, not "retry later".
    let store = SqliteStore::new(memory_pool().await);
    let err = store
        .hit("k", Duration::minutes(1), OffsetDateTime::now_utc())
        .await
        .expect_err("no tables");
    assert_eq!(err.kind(), StoreErrorKind::Other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_injection_is_inert() {
    let pool = memory_pool().await;
    let store = migrated(pool.clone()).await;
    let now = OffsetDateTime::now_utc();
    let hostile = [
        "'; DROP TABLE ninsho_counters; --",
        "x' OR '1'='1",
        "\"; DROP TABLE ninsho_failures; --",
        "?1",
        "\\'; ATTACH DATABASE '/tmp/x' AS x; --",
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
    for key in hostile {
        let got = store.hit(key, Duration::hours(1), now).await.expect("hit");
        assert_eq!(got.count, 2, "{key:?}");
    }
    let counters: i64 = sqlx::query_scalar("SELECT count(*) FROM ninsho_counters")
        .fetch_one(&pool)
        .await
        .expect("count counters");
    assert_eq!(counters, i64::try_from(hostile.len()).expect("small"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn times_round_trip_to_the_nanosecond() {
    let store = migrated(memory_pool().await).await;
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_789)
        .expect("valid instant");
    let got = store
        .hit("precise", Duration::nanoseconds(1), now)
        .await
        .expect("hit");
    assert_eq!(got.resets_at, now + Duration::nanoseconds(1));
    // One nanosecond later the window has ended: a new one starts.
    let later = store
        .hit(
            "precise",
            Duration::seconds(1),
            now + Duration::nanoseconds(1),
        )
        .await
        .expect("hit");
    assert_eq!(later.count, 1);
    let run = support::record_failure(&store, &AccountId::new("precise"), now)
        .await
        .expect("failure");
    assert_eq!(run.last_failure_at, now);

    // Versions above i64::MAX still compare and set.
    let mut record = testkit::sample_challenge(7, now);
    record.version = u64::MAX - 1;
    store.insert_challenge(&record).await.expect("insert");
    let mut next = store
        .challenge(&record.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(next.version, u64::MAX - 1);
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

    // U+0000 in host-supplied strings survives, in the record and as a key.
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
    let a = support::record_failure(&store, &AccountId::new("acct\u{0}x"), now)
        .await
        .expect("NUL in a key");
    let b = support::record_failure(&store, &AccountId::new("acct"), now)
        .await
        .expect("its prefix");
    assert_eq!((a.consecutive, b.consecutive), (1, 1), "distinct accounts");

    // Instants outside 1677..2262 are clamped, not refused.
    let far = OffsetDateTime::from_unix_timestamp(i64::from(i32::MAX) * 8).expect("year 2514");
    store
        .hit("far", Duration::seconds(1), far)
        .await
        .expect("far-future hit");
    // Both challenges above expire long before the (clamped) cut-off.
    assert_eq!(store.purge(far).await.expect("purge").challenges, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_database_is_shared_by_the_pool() {
    // `sqlite::memory:` with four connections: one database, seen by all.
    let pool = memory_pool().await;
    let store = migrated(pool.clone()).await;
    let now = OffsetDateTime::now_utc();
    store
        .hit("shared", Duration::hours(1), now)
        .await
        .expect("hit");
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(pool.acquire().await.expect("connection"));
    }
    for connection in &mut connections {
        let count: i64 =
            sqlx::query_scalar("SELECT count FROM ninsho_counters WHERE key = 'shared'")
                .fetch_one(&mut **connection)
                .await
                .expect("every connection sees the tables and the row");
        assert_eq!(count, 1);
    }
    drop(connections);

    // Concurrent hits through the pool lose nothing.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.hit("shared", Duration::hours(1), now).await })
        })
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.expect("task").expect("hit").count);
    }
    counts.sort_unstable();
    assert_eq!(counts, (2..=17).collect::<Vec<u64>>());
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

async fn count_rows(pool: &SqlitePool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .expect("count rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrates_a_version_1_database_to_version_2() {
    let files = Files::default();
    let path = files.fresh();
    let pool = file_pool(&path).await;

    // The database the previous release's `migrate` left: version 1
    // applied and recorded, nothing of version 2.
    sqlx::raw_sql(
        "CREATE TABLE ninsho_schema_version (\
         version INTEGER PRIMARY KEY NOT NULL, \
         applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);",
    )
    .execute(&pool)
    .await
    .expect("version table");
    sqlx::raw_sql(include_str!("../migrations/sqlite/0001_init.sql"))
        .execute(&pool)
        .await
        .expect("apply version 1");
    sqlx::query(
        "INSERT INTO ninsho_schema_version (version, applied_at) \
         VALUES (1, '2020-01-02 03:04:05')",
    )
    .execute(&pool)
    .await
    .expect("record version 1");

    let store = SqliteStore::new(pool.clone());
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_789)
        .expect("valid instant");
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

    // Two instances of the new release start at once, each with its pool.
    let other = SqliteStore::new(file_pool(&path).await);
    let (a, b) = tokio::join!(store.migrate(), other.migrate());
    a.expect("migrate a");
    b.expect("migrate b");

    let versions: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, applied_at FROM ninsho_schema_version ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("read versions");
    assert_eq!(
        versions.iter().map(|v| v.0).collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "versions 2, 3 and 4 applied once"
    );
    assert_eq!(
        versions[0].1, "2020-01-02 03:04:05",
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
            .map(|f| (f.consecutive, f.last_failure_at)),
        Some((1, now))
    );

    // The new tables work, from either instance.
    other
        .insert_device(&sample_device(&alice, 1, now))
        .await
        .expect("device");
    store.migrate().await.expect("migrate again");
    assert_eq!(store.devices(&alice).await.expect("list").len(), 1);
    assert_eq!(count_rows(&pool, "ninsho_schema_version").await, 4);
    other.pool().close().await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn factor_tables_keep_hostile_accounts_apart() {
    let pool = memory_pool().await;
    let store = migrated(pool.clone()).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let hostile = [
        "'; DROP TABLE ninsho_devices; --",
        "x' OR '1'='1",
        "\"; DROP TABLE ninsho_epochs; --",
        "?1",
        "%",
        "_",
        "alice",
        "alice ",
        "ALICE",
        "",
        "acct",
        "acct\u{0}x",
        "\u{0}",
        "東京\u{200b}",
    ];
    for account in &hostile {
        let account = AccountId::new(*account);
        // The same two device ids for every account: the key is the pair.
        for d in [1, 2] {
            let mut device = sample_device(&account, d, now);
            device.label = format!("nul\u{0}inside {account:?}");
            store.insert_device(&device).await.expect("device");
        }
    }
    for account in &hostile {
        let account = AccountId::new(*account);
        let devices = store.devices(&account).await.expect("list");
        assert_eq!(devices.len(), 2, "{account:?}");
        for device in &devices {
            assert_eq!(device.account, account);
            assert_eq!(device.label, format!("nul\u{0}inside {account:?}"));
        }
    }
    // Deleting through wildcard-looking or NUL-prefixed accounts touches
    // only their own rows.
    assert_eq!(
        store
            .delete_devices(&AccountId::new("%"))
            .await
            .expect("delete"),
        2
    );
    assert_eq!(
        store
            .delete_devices(&AccountId::new("acct"))
            .await
            .expect("delete"),
        2
    );
    assert_eq!(
        store
            .devices(&AccountId::new("acct\u{0}x"))
            .await
            .expect("list")
            .len(),
        2
    );
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
    assert_eq!(count_rows(&pool, "ninsho_devices").await, 2 * n - 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn factor_records_compare_and_set_on_every_bit() {
    let pool = memory_pool().await;
    let store = migrated(pool.clone()).await;
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_789)
        .expect("valid instant");
    let alice = AccountId::new("alice");

    // Devices: huge versions, nanoseconds kept in the expiry column too.
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
    let expires: i64 = sqlx::query_scalar("SELECT expires_at FROM ninsho_devices")
        .fetch_one(&pool)
        .await
        .expect("expiry column");
    assert_eq!(
        i128::from(expires),
        device.expires_at.unix_timestamp_nanos()
    );
}

// ---------------------------------------------------------------------------
// Account records, contact claims and verifications (schema version 3).
// ---------------------------------------------------------------------------

fn claim(keys: &[&str], release: &[&str]) -> ClaimChanges {
    ClaimChanges {
        claim: keys.iter().map(|k| (*k).to_owned()).collect(),
        release: release.iter().map(|k| (*k).to_owned()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrates_a_version_2_database_to_version_3() {
    let files = Files::default();
    let path = files.fresh();
    let pool = file_pool(&path).await;

    // The database the previous release's `migrate` left: versions 1 and 2
    // applied and recorded, nothing of version 3.
    sqlx::raw_sql(
        "CREATE TABLE ninsho_schema_version (\
         version INTEGER PRIMARY KEY NOT NULL, \
         applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);",
    )
    .execute(&pool)
    .await
    .expect("version table");
    for sql in [
        include_str!("../migrations/sqlite/0001_init.sql"),
        include_str!("../migrations/sqlite/0002_factors.sql"),
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.expect("apply");
    }
    sqlx::query(
        "INSERT INTO ninsho_schema_version (version, applied_at) \
         VALUES (1, '2020-01-02 03:04:05'), (2, '2021-01-02 03:04:05')",
    )
    .execute(&pool)
    .await
    .expect("record versions 1 and 2");

    let store = SqliteStore::new(pool.clone());
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_789)
        .expect("valid instant");
    let alice = AccountId::new("alice");
    let device = sample_device(&alice, 1, now);
    store.insert_device(&device).await.expect("device");
    // The version-3 tables are not there yet: a permanent error.
    assert_eq!(
        kind(store.account_record(&alice).await),
        Some(StoreErrorKind::Other)
    );

    let other = SqliteStore::new(file_pool(&path).await);
    let (a, b) = tokio::join!(store.migrate(), other.migrate());
    a.expect("migrate a");
    b.expect("migrate b");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM ninsho_schema_version ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("read versions");
    assert_eq!(versions, [1, 2, 3, 4], "versions 3 and 4 applied once");

    let back = store
        .device(&alice, &device.id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(json(&back), json(&device));
    let book = testkit::sample_contact_book(&alice, now);
    assert_eq!(
        other
            .commit_account(&book, None, &claim(&["+819012345678"], &[]))
            .await
            .expect("commit"),
        AccountCommit::Committed
    );
    assert_eq!(
        store.claim_owner("+819012345678").await.expect("owner"),
        Some(alice)
    );
    let mut verification = testkit::sample_verification(1, now);
    verification.created_at = now;
    verification.expires_at = now + Duration::minutes(30);
    store
        .insert_verification(&verification)
        .await
        .expect("verification");
    assert_eq!(
        other
            .verification(&verification.id)
            .await
            .expect("read")
            .expect("present"),
        verification,
        "nanoseconds and all"
    );
    store.migrate().await.expect("migrate again");
    assert_eq!(count_rows(&pool, "ninsho_schema_version").await, 4);
    other.pool().close().await;
    pool.close().await;
}

/// Key lists reach SQLite as JSON arrays: keys holding quotes, backslashes,
/// JSON and SQL syntax or non-ASCII text are claimed, released and read
/// back exactly, and hostile accounts are just data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claim_keys_survive_the_json_key_lists() {
    let pool = memory_pool().await;
    let store = migrated(pool.clone()).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let keys = [
        "\"],[\"x",
        "\\",
        "'; DROP TABLE ninsho_contact_claims; --",
        "?1",
        "東京@例え.jp",
        "tab\there",
        "null",
        "[]",
    ];
    let account = AccountId::new("x' OR '1'='1");
    let book = testkit::sample_contact_book(&account, now);
    assert_eq!(
        store
            .commit_account(&book, None, &claim(&keys, &[]))
            .await
            .expect("commit"),
        AccountCommit::Committed
    );
    for key in keys {
        assert_eq!(
            store.claim_owner(key).await.expect("owner"),
            Some(account.clone()),
            "{key:?}"
        );
    }
    assert_eq!(
        count_rows(&pool, "ninsho_contact_claims").await,
        i64::try_from(keys.len()).expect("small")
    );
    let mut next = book.clone();
    next.version = 2;
    assert_eq!(
        store
            .commit_account(&next, Some(1), &claim(&[], &keys[..4]))
            .await
            .expect("release"),
        AccountCommit::Committed
    );
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            store.claim_owner(key).await.expect("owner").is_some(),
            i >= 4,
            "{key:?}"
        );
    }
    store.delete_account(&account).await.expect("delete");
    assert_eq!(count_rows(&pool, "ninsho_contact_claims").await, 0);
    assert_eq!(count_rows(&pool, "ninsho_contact_books").await, 0);
    pool.close().await;
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

async fn marker_rows(pool: &SqlitePool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT key, written_at FROM ninsho_meta")
        .fetch_all(pool)
        .await
        .expect("read the marker")
}

/// `load` (with every part, and a challenge alone), `account_record`,
/// `commit` and `claim_owner` all fail with `NotInitialised`.
async fn assert_not_initialised(store: &SqliteStore, account: &AccountId, what: &str) {
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
async fn emptied_tables_fail_closed_until_initialised() {
    let files = Files::default();
    let pool = file_pool(&files.fresh()).await;
    let store = migrated(pool.clone()).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");

    let marker = marker_rows(&pool).await;
    assert_eq!(marker.len(), 1);
    assert_eq!(marker[0].0, "initialised");
    store
        .commit_account(
            &testkit::sample_contact_book(&alice, now),
            None,
            &claim(&["+819012345678"], &[]),
        )
        .await
        .expect("commit");
    let loaded = store.load(&Load::account(&alice)).await.expect("load");
    assert_eq!(loaded.record.map(|b| b.version), Some(1));

    // Every table emptied.
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type = 'table'")
            .fetch_all(&pool)
            .await
            .expect("list tables");
    assert!(tables.len() >= 11, "{tables:?}");
    for table in tables {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&pool)
            .await
            .expect("empty a table");
    }
    assert_not_initialised(&store, &alice, "after DELETE").await;

    // Migrating again applies the migrations again, not the marker.
    store.migrate().await.expect("migrate after the loss");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM ninsho_schema_version ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("read versions");
    assert_eq!(versions, [1, 2, 3, 4]);
    assert!(marker_rows(&pool).await.is_empty());
    assert_not_initialised(&store, &alice, "after migrate").await;

    store.initialise().await.expect("initialise");
    let loaded = store.load(&Load::account(&alice)).await.expect("load");
    assert!(loaded.record.is_none() && loaded.failures.is_none());
    let first = marker_rows(&pool).await;
    assert_eq!(first.len(), 1);
    store.initialise().await.expect("initialise again");
    assert_eq!(
        marker_rows(&pool).await,
        first,
        "idempotent, first time kept"
    );

    // Only the marker deleted: the same.
    sqlx::query("DELETE FROM ninsho_meta")
        .execute(&pool)
        .await
        .expect("delete the marker");
    assert_not_initialised(&store, &alice, "after DELETE of the marker").await;
    store.migrate().await.expect("migrate");
    assert_not_initialised(&store, &alice, "after DELETE and migrate").await;
    store.initialise().await.expect("initialise");
    store.load(&Load::account(&alice)).await.expect("load");
}

/// The upgrade of a version-3 database (an existing deployment) writes the
/// marker, once; a new, empty file is a first deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_upgrade_from_version_3_writes_the_marker_once() {
    let files = Files::default();
    let path = files.fresh();
    let pool = file_pool(&path).await;
    sqlx::raw_sql(
        "CREATE TABLE ninsho_schema_version (\
         version INTEGER PRIMARY KEY NOT NULL, \
         applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);",
    )
    .execute(&pool)
    .await
    .expect("version table");
    for sql in [
        include_str!("../migrations/sqlite/0001_init.sql"),
        include_str!("../migrations/sqlite/0002_factors.sql"),
        include_str!("../migrations/sqlite/0003_contacts.sql"),
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.expect("apply");
    }
    sqlx::query("INSERT INTO ninsho_schema_version (version) VALUES (1), (2), (3)")
        .execute(&pool)
        .await
        .expect("record versions");
    let store = SqliteStore::new(pool.clone());
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    store
        .commit_account(
            &testkit::sample_contact_book(&alice, now),
            None,
            &claim(&[], &[]),
        )
        .await
        .expect("written by the previous release");
    assert_eq!(
        kind(store.load(&Load::account(&alice)).await),
        Some(StoreErrorKind::Other),
        "not migrated yet: no marker table"
    );

    let other = SqliteStore::new(file_pool(&path).await);
    let (a, b) = tokio::join!(store.migrate(), other.migrate());
    a.expect("migrate a");
    b.expect("migrate b");
    assert_eq!(marker_rows(&pool).await.len(), 1);
    let loaded = store.load(&Load::account(&alice)).await.expect("load");
    assert_eq!(loaded.record.map(|b| b.account), Some(alice.clone()));

    sqlx::query("DELETE FROM ninsho_meta")
        .execute(&pool)
        .await
        .expect("delete the marker");
    store.migrate().await.expect("migrate again");
    assert_not_initialised(&store, &alice, "after the upgrade").await;
}

/// Two pools (two processes) on one file, 32 tasks each, commit the same
/// step: the same challenge version, a failure run that does not exist
/// yet, a hit each. Exactly one lands; the losers write nothing, their
/// hits included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_step_commits_from_two_pools_land_once() {
    let files = Files::default();
    let path = files.fresh();
    let a = migrated(file_pool(&path).await).await;
    let b = SqliteStore::new(file_pool(&path).await);
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let alice = AccountId::new("alice");
    let mut challenge = testkit::sample_challenge(1, now);
    challenge.account = Some(alice.clone());
    a.insert_challenge(&challenge).await.expect("insert");
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64u32)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (alice, challenge, barrier) = (alice.clone(), challenge.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut next = challenge.clone();
                next.version = 1;
                next.failed_attempts = i;
                let hits = [limit_hit(&format!("race:{i}"), 1_000)];
                let mut commit = Commit::default();
                commit.hits = &hits;
                commit.failures = Some(FailureChange {
                    account: &alice,
                    expected: None,
                    next: Some(run(i + 1, now)),
                });
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
    assert_eq!(winners.len(), 1, "winners {winners:?}");
    let winner = winners[0];
    let loaded = b
        .load(&Load::account(&alice).with_challenge(&challenge.id))
        .await
        .expect("load");
    assert_eq!(loaded.challenge.map(|c| c.failed_attempts), Some(winner));
    assert_eq!(loaded.failures, Some(run(winner + 1, now)));
    assert_eq!(
        count_rows(a.pool(), "ninsho_counters").await,
        1,
        "only the winner's hit is charged"
    );
}

/// A step commit that is `Taken` or a `Conflict` leaves the database as it
/// was, counters included, and the same commit without the bad part lands
/// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_step_commits_roll_back_whole() {
    let pool = memory_pool().await;
    let store = migrated(pool.clone()).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("valid instant");
    let (alice, bob) = (AccountId::new("alice"), AccountId::new("bob"));
    store
        .commit_account(
            &testkit::sample_contact_book(&bob, now),
            None,
            &claim(&["+819012345678"], &[]),
        )
        .await
        .expect("bob's number");
    let mut challenge = testkit::sample_challenge(1, now);
    challenge.account = Some(alice.clone());
    let device = sample_device(&alice, 1, now);
    let book = testkit::sample_contact_book(&alice, now);
    let taken = claim(&["own", "+819012345678"], &[]);
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
        claims: &taken,
    });
    let tables = [
        "ninsho_counters",
        "ninsho_failures",
        "ninsho_challenges",
        "ninsho_devices",
        "ninsho_contact_books",
        "ninsho_contact_claims",
    ];
    let mut before = Vec::new();
    for table in tables {
        before.push(count_rows(&pool, table).await);
    }
    assert_eq!(
        store.commit(&commit, now).await.expect("commit"),
        Committed::Taken { index: 1 }
    );
    let stale = RecordWrite {
        record: &book,
        expected_version: Some(4),
        claims: &ClaimChanges::default(),
    };
    commit.record = Some(stale);
    assert_eq!(
        kind(store.commit(&commit, now).await),
        Some(StoreErrorKind::Conflict)
    );
    for (table, before) in tables.iter().zip(&before) {
        assert_eq!(count_rows(&pool, table).await, *before, "{table}");
    }

    let own = claim(&["own"], &[]);
    commit.record = Some(RecordWrite {
        record: &book,
        expected_version: None,
        claims: &own,
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
    assert!(loaded.record.is_some() && loaded.challenge.is_some() && loaded.device.is_some());
    assert_eq!(loaded.failures, Some(run(1, now)));
    assert_eq!(count_rows(&pool, "ninsho_counters").await, 2);
    assert_eq!(store.claim_owner("own").await.expect("owner"), Some(alice));
}
