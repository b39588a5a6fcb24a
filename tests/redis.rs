//! `RedisStore` against a real Redis: the whole conformance kit, two app
//! instances racing through independent connections, and the adapter's own
//! promises (native expiry, error kinds, inert key characters, exact times).
//!
//! The server is `NINSHO_REDIS_URL` (default `redis://127.0.0.1:6379/`).
//! When it can't be reached the tests print `SKIPPED` and pass, except
//! under `CI=true`, where they fail: CI must never skip them. Every store
//! gets a key prefix of its own, and the prefix's keys are deleted at the
//! end, also when a test fails.

#![cfg(all(feature = "redis", feature = "testkit"))]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ninsho::store::{
    AccountId, ChallengeStore, LimitStore, RedisStore, Store, StoreError, StoreErrorKind,
};
use ninsho::testkit;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use time::{Duration, OffsetDateTime};

const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn redis_url() -> String {
    match std::env::var("NINSHO_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if under_ci() => panic!("Redis required under CI: set NINSHO_REDIS_URL"),
        _ => DEFAULT_URL.to_owned(),
    }
}

/// A fresh connection manager on the test server, or `None` (after saying
/// so) when there is no server and we are not under CI.
async fn connect() -> Option<ConnectionManager> {
    let url = redis_url();
    let attempt = async {
        let client = redis::Client::open(url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_response_timeout(Some(std::time::Duration::from_secs(5)));
        let mut manager = ConnectionManager::new_with_config(client, config).await?;
        let _: String = redis::cmd("PING").query_async(&mut manager).await?;
        Ok::<_, redis::RedisError>(manager)
    };
    match attempt.await {
        Ok(manager) => Some(manager),
        Err(e) if under_ci() => panic!("Redis required under CI: can't reach {url}: {e}"),
        Err(e) => {
            eprintln!(
                "SKIPPED: Redis tests need a Redis at {url} ({e}); \
                 start one or set NINSHO_REDIS_URL"
            );
            None
        }
    }
}

/// `ninsho-test:<pid>:<nanos>:<n>`: unique per store, per run.
fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "ninsho-test:{}:{nanos}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes every key under `prefix` (SCAN + DEL). Test prefixes hold no
/// glob characters, so the pattern matches exactly that prefix.
async fn delete_prefix(conn: &mut ConnectionManager, prefix: &str) {
    let pattern = format!("{prefix}:*");
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(conn)
                .await
                .expect("DEL");
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// The prefixes a test handed out, deleted when it ends.
#[derive(Clone, Default)]
struct Prefixes(Arc<Mutex<Vec<String>>>);

impl Prefixes {
    fn new_prefix(&self) -> String {
        let prefix = unique_prefix();
        self.0.lock().unwrap().push(prefix.clone());
        prefix
    }
}

/// Runs `body` with a connection and a prefix registry, then deletes every
/// registered prefix's keys, whether `body` passed or panicked.
async fn with_redis<F, Fut>(body: F)
where
    F: FnOnce(ConnectionManager, Prefixes) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(mut conn) = connect().await else {
        return;
    };
    let prefixes = Prefixes::default();
    let outcome = tokio::spawn(body(conn.clone(), prefixes.clone())).await;
    let used = prefixes.0.lock().unwrap().clone();
    for prefix in used {
        delete_prefix(&mut conn, &prefix).await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn challenge_key(store: &RedisStore, record: &ninsho::store::ChallengeRecord) -> String {
    format!("{}:challenge:{}", store.prefix(), record.id)
}

async fn pttl(conn: &mut ConnectionManager, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("PTTL")
}

fn kind(result: Result<impl std::fmt::Debug, StoreError>) -> StoreErrorKind {
    match result {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

// ---------------------------------------------------------------------------
// The conformance kit
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    with_redis(|conn, prefixes| async move {
        testkit::run_all(|| {
            let store = RedisStore::new(conn.clone(), prefixes.new_prefix());
            async move { Arc::new(store) as Arc<dyn Store> }
        })
        .await;
    })
    .await;
}

/// Two app instances: two independent connection managers (two TCP
/// connections) on one prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_race_on_one_prefix() {
    with_redis(|_, prefixes| async move {
        let prefix = prefixes.new_prefix();
        let (Some(a), Some(b)) = (connect().await, connect().await) else {
            panic!("the server answered a moment ago");
        };
        let a: Arc<dyn Store> = Arc::new(RedisStore::new(a, prefix.clone()));
        let b: Arc<dyn Store> = Arc::new(RedisStore::new(b, prefix));
        testkit::race_two_instances(a, b).await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Native expiry
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn challenges_and_counters_expire_natively() {
    with_redis(|mut conn, prefixes| async move {
        let now = OffsetDateTime::now_utc();
        let hour = 3_600_000;

        // Default retention: 10 minutes to live + 24 hours.
        let store = RedisStore::new(conn.clone(), prefixes.new_prefix());
        let record = testkit::sample_challenge(1, now);
        store.insert_challenge(&record).await.unwrap();
        let ttl = pttl(&mut conn, &challenge_key(&store, &record)).await;
        assert!(
            ttl > 24 * hour && ttl <= 24 * hour + 600_000,
            "a challenge lives expires_at + 24 h (PTTL {ttl})"
        );

        // Configured retention.
        let store =
            RedisStore::new(conn.clone(), prefixes.new_prefix()).with_retention(Duration::hours(1));
        store.insert_challenge(&record).await.unwrap();
        let key = challenge_key(&store, &record);
        let ttl = pttl(&mut conn, &key).await;
        assert!(
            ttl > hour && ttl <= hour + 600_000,
            "a challenge lives expires_at + retention (PTTL {ttl})"
        );

        // A resend pushes expires_at 5 minutes later: the deadline moves
        // with it.
        let mut resent = record.clone();
        resent.version = 1;
        resent.expires_at += Duration::minutes(5);
        store.replace_challenge(&resent, 0).await.unwrap();
        let moved = pttl(&mut conn, &key).await;
        assert!(
            moved > ttl + 290_000 && moved <= ttl + 300_000,
            "replace moves the deadline by as much as expires_at moved ({ttl} -> {moved})"
        );
        // Consumed and expiring at once (at its creation): the deadline
        // moves back to retention from now.
        let mut consumed = resent.clone();
        consumed.version = 2;
        consumed.expires_at = consumed.created_at;
        store.replace_challenge(&consumed, 1).await.unwrap();
        let back = pttl(&mut conn, &key).await;
        assert!(
            back > hour - 10_000 && back <= hour,
            "an earlier expires_at brings the deadline in (PTTL {back})"
        );

        // A counter lives until its window ends (plus a second's grace).
        let window = Duration::minutes(10);
        store.hit("dest:x", window, now).await.unwrap();
        let ttl = pttl(&mut conn, &format!("{}:limit:dest:x", store.prefix())).await;
        assert!(
            ttl > 590_000 && ttl <= 601_000,
            "a counter lives until its window ends (PTTL {ttl})"
        );

        // A failure run has no expiry.
        let account = AccountId::new("alice");
        store.record_failure(&account, now).await.unwrap();
        let ttl = pttl(&mut conn, &format!("{}:failures:alice", store.prefix())).await;
        assert_eq!(ttl, -1, "a failure run lives until cleared");
    })
    .await;
}

/// Record times come from the host's clock, not the server's: a manual
/// clock a year in the past (or the future) must not make keys vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_follows_record_times_not_the_servers_clock() {
    with_redis(|mut conn, prefixes| async move {
        let store = RedisStore::new(conn.clone(), prefixes.new_prefix());
        for (seed, at) in [
            (1, OffsetDateTime::now_utc() - Duration::days(365)),
            (2, OffsetDateTime::now_utc() + Duration::days(365)),
            (3, OffsetDateTime::UNIX_EPOCH),
        ] {
            let record = testkit::sample_challenge(seed, at);
            store.insert_challenge(&record).await.unwrap();
            let ttl = pttl(&mut conn, &challenge_key(&store, &record)).await;
            assert!(ttl > 24 * 3_600_000, "PTTL {ttl} for a record at {at}");
            let back = store.challenge(&record.id).await.unwrap();
            assert!(back.is_some(), "a record at {at} reads back");

            let window = Duration::minutes(10);
            let key = format!("k{seed}");
            assert_eq!(store.hit(&key, window, at).await.unwrap().count, 1);
            assert_eq!(store.hit(&key, window, at).await.unwrap().count, 2);
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Exact times
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn times_keep_every_nanosecond() {
    with_redis(|conn, prefixes| async move {
        let store = RedisStore::new(conn, prefixes.new_prefix());
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(123_456_789)
            .unwrap();

        let window = Duration::nanoseconds(1_000_000_001);
        let first = store.hit("k", window, now).await.unwrap();
        assert_eq!(first.resets_at, now + window);
        // One nanosecond before the end: same window.
        let inside = now + window - Duration::nanoseconds(1);
        let second = store.hit("k", window, inside).await.unwrap();
        assert_eq!((second.count, second.resets_at), (2, now + window));
        // At the end: a new one.
        let third = store.hit("k", window, now + window).await.unwrap();
        assert_eq!((third.count, third.resets_at), (1, now + window + window));

        let account = AccountId::new("bob");
        let run = store.record_failure(&account, now).await.unwrap();
        assert_eq!(run.last_failure_at, now);
        assert_eq!(store.failures(&account).await.unwrap(), Some(run));

        // Purge around a cut-off inside one millisecond.
        let cut = now;
        let at = |seed: u8, expires_at: OffsetDateTime| {
            let mut r = testkit::sample_challenge(seed, now - Duration::hours(1));
            r.expires_at = expires_at;
            r
        };
        let gone = [
            at(1, cut - Duration::nanoseconds(1)),
            at(2, cut - Duration::microseconds(500)),
        ];
        let kept = [at(3, cut), at(4, cut + Duration::nanoseconds(1))];
        for r in gone.iter().chain(&kept) {
            store.insert_challenge(r).await.unwrap();
        }
        assert_eq!(store.purge_challenges(cut).await.unwrap(), 2);
        for r in &gone {
            assert!(store.challenge(&r.id).await.unwrap().is_none());
        }
        for r in &kept {
            let back = store.challenge(&r.id).await.unwrap().unwrap();
            assert_eq!(back.expires_at, r.expires_at);
        }
        assert_eq!(store.purge_challenges(cut).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_skips_what_redis_already_dropped_and_works_in_batches() {
    with_redis(|mut conn, prefixes| async move {
        let store = RedisStore::new(conn.clone(), prefixes.new_prefix());
        let now = OffsetDateTime::now_utc();
        let index = format!("{}:challenges:by_expiry", store.prefix());

        // 1 234 expired challenges (several purge batches) and one live.
        let mut ids = Vec::new();
        for n in 0..1_234_u32 {
            let mut r = testkit::sample_challenge(0, now - Duration::hours(2));
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&n.to_be_bytes());
            r.id = ninsho::store::ChallengeId::from_bytes(id);
            store.insert_challenge(&r).await.unwrap();
            ids.push(r);
        }
        let live = testkit::sample_challenge(0xEE, now);
        store.insert_challenge(&live).await.unwrap();

        // Redis drops one by itself (as native expiry would).
        let _: i64 = redis::cmd("DEL")
            .arg(challenge_key(&store, &ids[7]))
            .query_async(&mut conn)
            .await
            .unwrap();

        assert_eq!(store.purge_challenges(now).await.unwrap(), 1_233);
        let left: i64 = redis::cmd("ZCARD")
            .arg(&index)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 1, "only the live challenge stays in the index");
        assert!(store.challenge(&live.id).await.unwrap().is_some());
    })
    .await;
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_server_is_unavailable() {
    // A lazy manager that gives up at once, so every call tries to connect.
    let client = redis::Client::open("redis://127.0.0.1:1/").unwrap();
    let config = ConnectionManagerConfig::new().set_number_of_retries(0);
    let manager = ConnectionManager::new_lazy_with_config(client, config).unwrap();
    let store = RedisStore::new(manager, unique_prefix());
    let now = OffsetDateTime::now_utc();
    let record = testkit::sample_challenge(1, now);

    let err = store.challenge(&record.id).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    assert!(
        std::error::Error::source(&err).is_some(),
        "the Redis error is kept as the source"
    );
    assert_eq!(
        kind(store.insert_challenge(&record).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.replace_challenge(&record, 0).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.purge_challenges(now).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.hit("k", Duration::minutes(1), now).await),
        StoreErrorKind::Unavailable
    );
    let account = AccountId::new("a");
    assert_eq!(
        kind(store.record_failure(&account, now).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.failures(&account).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.clear_failures(&account).await),
        StoreErrorKind::Unavailable
    );

    // `connect` says the same after the manager's own retries.
    let err = RedisStore::connect("redis://127.0.0.1:1/", "p")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    // A URL that is not one is not an outage.
    let err = RedisStore::connect("not a url", "p").await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unexpected_data_is_other_with_a_source() {
    with_redis(|mut conn, prefixes| async move {
        let store = RedisStore::new(conn.clone(), prefixes.new_prefix());
        let now = OffsetDateTime::now_utc();

        // A string where a counter hash belongs: WRONGTYPE from the script.
        let _: () = redis::cmd("SET")
            .arg(format!("{}:limit:k", store.prefix()))
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
        let err = store.hit("k", Duration::minutes(1), now).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Other);
        assert!(std::error::Error::source(&err).is_some());

        // A record that is not JSON.
        let record = testkit::sample_challenge(1, now);
        store.insert_challenge(&record).await.unwrap();
        let _: i64 = redis::cmd("HSET")
            .arg(challenge_key(&store, &record))
            .arg("record")
            .arg("{not json")
            .query_async(&mut conn)
            .await
            .unwrap();
        let err = store.challenge(&record.id).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Other);
        let source = std::error::Error::source(&err).expect("a source");
        assert!(
            source.is::<serde_json::Error>(),
            "the JSON error is the source"
        );
    })
    .await;
}

#[tokio::test]
async fn debug_shows_no_credentials() {
    let client = redis::Client::open("redis://user:hunter2@127.0.0.1:1/").unwrap();
    let manager =
        ConnectionManager::new_lazy_with_config(client, ConnectionManagerConfig::new()).unwrap();
    let store = RedisStore::new(manager, "app").with_retention(Duration::hours(2));
    let shown = format!("{store:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("app"), "{shown}");
    assert_eq!(store.retention(), Duration::hours(2));
    assert_eq!(
        RedisStore::new(store_manager(), "x")
            .with_retention(Duration::hours(-1))
            .retention(),
        Duration::ZERO
    );
}

fn store_manager() -> ConnectionManager {
    let client = redis::Client::open("redis://127.0.0.1:1/").unwrap();
    ConnectionManager::new_lazy_with_config(client, ConnectionManagerConfig::new()).unwrap()
}

// ---------------------------------------------------------------------------
// Odd characters
// ---------------------------------------------------------------------------

/// Keys and account ids that look like other keys, globs, separators or
/// Lua are just names: nothing aliases, nothing else is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn odd_characters_in_keys_and_accounts_are_inert() {
    with_redis(|mut conn, prefixes| async move {
        let store = RedisStore::new(conn.clone(), prefixes.new_prefix());
        let now = OffsetDateTime::now_utc();
        let window = Duration::minutes(10);
        let record = testkit::sample_challenge(1, now);
        store.insert_challenge(&record).await.unwrap();

        let odd = [
            String::new(),
            "*".to_owned(),
            "?".to_owned(),
            "[a-z]".to_owned(),
            "{prefix}".to_owned(),
            ":".to_owned(),
            "::".to_owned(),
            format!("../challenge:{}", record.id),
            format!("challenge:{}", record.id),
            "challenges:by_expiry".to_owned(),
            "../failures:alice".to_owned(),
            "failures:alice".to_owned(),
            "limit:x".to_owned(),
            "x".to_owned(),
            "x\r\nFLUSHALL\r\n".to_owned(),
            "') redis.call('FLUSHALL') --".to_owned(),
            "\0nul\0".to_owned(),
            "宛先 ✓ 🚀".to_owned(),
            "a".repeat(10_000),
        ];
        for (i, key) in odd.iter().enumerate() {
            for n in 1..=i + 1 {
                let got = store.hit(key, window, now).await.unwrap();
                assert_eq!(got.count, u64::try_from(n).unwrap(), "key {key:?}");
            }
            let account = AccountId::new(key.clone());
            for n in 1..=i + 1 {
                let got = store.record_failure(&account, now).await.unwrap();
                assert_eq!(
                    got.consecutive,
                    u32::try_from(n).unwrap(),
                    "account {key:?}"
                );
            }
        }
        for (i, key) in odd.iter().enumerate() {
            let got = store.hit(key, window, now).await.unwrap();
            assert_eq!(got.count, u64::try_from(i + 2).unwrap(), "key {key:?}");
            let account = AccountId::new(key.clone());
            let run = store.failures(&account).await.unwrap().unwrap();
            assert_eq!(
                run.consecutive,
                u32::try_from(i + 1).unwrap(),
                "account {key:?}"
            );
        }

        // Clearing a glob-looking account clears that account only.
        store.clear_failures(&AccountId::new("*")).await.unwrap();
        assert!(
            store
                .failures(&AccountId::new("*"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .failures(&AccountId::new("x"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .failures(&AccountId::new("?"))
                .await
                .unwrap()
                .is_some()
        );

        // The challenge and its index are untouched.
        let back = store.challenge(&record.id).await.unwrap().unwrap();
        assert_eq!(back.version, record.version);
        let indexed: i64 = redis::cmd("ZCARD")
            .arg(format!("{}:challenges:by_expiry", store.prefix()))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(indexed, 1);
        assert_eq!(
            store
                .purge_challenges(now + Duration::hours(1))
                .await
                .unwrap(),
            1
        );

        // The server still holds other data (nothing was flushed).
        let ping: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        assert_eq!(ping, "PONG");
    })
    .await;
}
