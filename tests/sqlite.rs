//! `SqliteStore` on database files and in memory: the conformance suite,
//! two app instances (two pools) racing on one file, and the adapter's own
//! rules. Each test uses database files of its own in the temp directory
//! and removes them at the end.

#![cfg(all(feature = "sqlite", feature = "testkit"))]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use ninsho::store::{
    AccountId, ChallengeId, ChallengeStore, LimitStore, Purpose, SqliteStore, Store, StoreErrorKind,
};
use ninsho::testkit;
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
    assert_eq!(versions, [1], "each migration is recorded once");
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
        store.purge_challenges(now).await.err().map(|e| e.kind()),
        store
            .hit("k", Duration::minutes(1), now)
            .await
            .err()
            .map(|e| e.kind()),
        store
            .record_failure(&account, now)
            .await
            .err()
            .map(|e| e.kind()),
        store.failures(&account).await.err().map(|e| e.kind()),
        store.clear_failures(&account).await.err().map(|e| e.kind()),
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
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
        let run = store.record_failure(&account, now).await.expect("failure");
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
    let run = store
        .record_failure(&AccountId::new("precise"), now)
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
    let a = store
        .record_failure(&AccountId::new("acct\u{0}x"), now)
        .await
        .expect("NUL in a key");
    let b = store
        .record_failure(&AccountId::new("acct"), now)
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
    assert_eq!(store.purge_challenges(far).await.expect("purge"), 2);
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
