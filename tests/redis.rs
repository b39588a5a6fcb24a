//! `RedisStore` against a real Redis: the whole conformance kit, two app
//! instances racing through independent connections, and the adapter's own
//! promises (native expiry, error kinds, inert key characters, exact times,
//! accounts that never share keys).
//!
//! The server is `NINSHO_REDIS_URL` (default `redis://127.0.0.1:6379/`).
//! When it can't be reached the tests print `SKIPPED` and pass, except
//! under `CI=true`, where they fail: CI must never skip them. Every store
//! gets a key prefix of its own, and the prefix's keys are deleted at the
//! end, also when a test fails.

#![cfg(all(feature = "redis", feature = "testkit"))]

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ninsho::hash::Tag;
use ninsho::model::{AccountId, DeviceId, DeviceRecord};
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ClaimChanges, DeviceStore, LimitStore,
    RedisConnectError, RedisStore, Store, StoreError, StoreErrorKind, VerificationStore,
};
use ninsho::testkit;
use ninsho::{KeyId, KeyedHash};
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

fn challenge_key(store: &RedisStore, record: &ninsho::model::ChallengeRecord) -> String {
    format!("{}:challenge:{}", store.prefix(), record.id)
}

fn device_key(store: &RedisStore, account: &str, id: &DeviceId) -> String {
    format!("{}:device:{}:{account}:{id}", store.prefix(), account.len())
}

/// A device id whose 16 bytes are all `seed`.
fn device_id(seed: u8) -> DeviceId {
    DeviceId::parse(&format!("{seed:02x}").repeat(16)).unwrap()
}

/// A device of `account` trusted at `now` for 30 days, version 0.
fn sample_device(account: &str, seed: u8, now: OffsetDateTime) -> DeviceRecord {
    DeviceRecord {
        account: AccountId::new(account),
        id: device_id(seed),
        version: 0,
        token: KeyedHash {
            key_id: KeyId(1),
            tag: Tag([seed; 32]),
        },
        label: format!("device {seed} of {account:?}"),
        created_at: now,
        last_used_at: now,
        expires_at: now + Duration::days(30),
        epoch: 0,
        revoked_at: None,
    }
}

/// Records compare by their JSON (they are not `PartialEq`).
fn json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

async fn pttl(conn: &mut ConnectionManager, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("PTTL")
}

/// A store on `prefix` that accepts the test server (which keeps nothing
/// on disk), not initialised.
async fn volatile(conn: ConnectionManager, prefix: impl Into<String>) -> RedisStore {
    RedisStore::builder(prefix)
        .dangerously_allow_volatile_server()
        .build(conn)
        .await
        .expect("a store that accepts a volatile server")
}

/// A store on `prefix`, initialised: what every test starts from.
async fn store_on(conn: ConnectionManager, prefix: String) -> RedisStore {
    let store = volatile(conn, prefix).await;
    store.initialise().await.expect("initialise");
    store
}

/// A store on a fresh prefix of the test's, initialised.
async fn fresh_store(conn: &ConnectionManager, prefixes: &Prefixes) -> RedisStore {
    store_on(conn.clone(), prefixes.new_prefix()).await
}

/// The store error kind inside a connect error (which must be one).
fn connect_kind(error: RedisConnectError) -> StoreErrorKind {
    match error {
        RedisConnectError::Store(e) => e.kind(),
        other => panic!("expected a store error, got {other:?}"),
    }
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
            let (conn, prefix) = (conn.clone(), prefixes.new_prefix());
            async move { Arc::new(store_on(conn, prefix).await) as Arc<dyn Store> }
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
        let a: Arc<dyn Store> = Arc::new(store_on(a, prefix.clone()).await);
        let b: Arc<dyn Store> = Arc::new(store_on(b, prefix).await);
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
        let store = fresh_store(&conn, &prefixes).await;
        let record = testkit::sample_challenge(1, now);
        store.insert_challenge(&record).await.unwrap();
        let ttl = pttl(&mut conn, &challenge_key(&store, &record)).await;
        assert!(
            ttl > 24 * hour && ttl <= 24 * hour + 600_000,
            "a challenge lives expires_at + 24 h (PTTL {ttl})"
        );

        // Configured retention.
        let store = fresh_store(&conn, &prefixes)
            .await
            .with_retention(Duration::hours(1));
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
        support::record_failure(&store, &account, now)
            .await
            .unwrap();
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
        let store = fresh_store(&conn, &prefixes).await;
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
        let store = fresh_store(&conn, &prefixes).await;
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
        let run = support::record_failure(&store, &account, now)
            .await
            .unwrap();
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
        let store = fresh_store(&conn, &prefixes).await;
        let now = OffsetDateTime::now_utc();
        let index = format!("{}:challenges:by_expiry", store.prefix());

        // 1 234 expired challenges (several purge batches) and one live.
        let mut ids = Vec::new();
        for n in 0..1_234_u32 {
            let mut r = testkit::sample_challenge(0, now - Duration::hours(2));
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&n.to_be_bytes());
            r.id = ninsho::model::ChallengeId::from_bytes(id);
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
    let store = volatile(manager.clone(), unique_prefix()).await;
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
        kind(support::record_failure(&store, &account, now).await),
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
    let device = sample_device("a", 1, now);
    assert_eq!(
        kind(store.insert_device(&device).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.device(&account, &device.id).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.devices(&account).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.replace_device(&device, 0).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.delete_device(&account, &device.id).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.delete_devices(&account).await),
        StoreErrorKind::Unavailable
    );
    let book = testkit::sample_contact_book(&account, now);
    let verification = testkit::sample_verification(1, now);
    assert_eq!(
        kind(store.account_record(&account).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.claim_owner("+819012345678").await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.commit_account(&book, None, &claim(&["k"], &[])).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.delete_account(&account).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.insert_verification(&verification).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.verification(&verification.id).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.replace_verification(&verification, 0).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        kind(store.purge_verifications(now).await),
        StoreErrorKind::Unavailable
    );

    // `connect` says the same after the manager's own retries.
    let err = RedisStore::connect("redis://127.0.0.1:1/", "p")
        .await
        .unwrap_err();
    assert_eq!(connect_kind(err), StoreErrorKind::Unavailable);
    // A URL that is not one is not an outage.
    let err = RedisStore::connect("not a url", "p").await.unwrap_err();
    assert_eq!(connect_kind(err), StoreErrorKind::Other);
    // The persistence check needs the server: without it, unavailable.
    let err = RedisStore::builder("p").build(manager).await.unwrap_err();
    assert_eq!(connect_kind(err), StoreErrorKind::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unexpected_data_is_other_with_a_source() {
    with_redis(|mut conn, prefixes| async move {
        let store = fresh_store(&conn, &prefixes).await;
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
    let store = volatile(manager, "app")
        .await
        .with_retention(Duration::hours(2));
    let shown = format!("{store:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("app"), "{shown}");
    assert_eq!(store.retention(), Duration::hours(2));
    assert_eq!(
        volatile(store_manager(), "x")
            .await
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
        let store = fresh_store(&conn, &prefixes).await;
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
                let got = support::record_failure(&store, &account, now)
                    .await
                    .unwrap();
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

// ---------------------------------------------------------------------------
// Recovery sets, trusted devices and epochs
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_expire_natively_and_the_rest_does_not() {
    with_redis(|mut conn, prefixes| async move {
        let now = OffsetDateTime::now_utc();
        let hour: i64 = 3_600_000;
        let day = 24 * hour;
        let store = fresh_store(&conn, &prefixes).await;
        let set_key = format!("{}:devices:alice", store.prefix());

        // 30 days of trust + 24 hours of retention, from the insert.
        let device = sample_device("alice", 1, now);
        store.insert_device(&device).await.unwrap();
        let key = device_key(&store, "alice", &device.id);
        let ttl = pttl(&mut conn, &key).await;
        assert!(
            ttl > 31 * day - 10_000 && ttl <= 31 * day,
            "a device lives expires_at + 24 h (PTTL {ttl})"
        );
        let set_ttl = pttl(&mut conn, &set_key).await;
        assert!(
            set_ttl >= ttl - 1_000 && set_ttl <= 31 * day,
            "the id set lives as long as its device (PTTL {set_ttl} vs {ttl})"
        );

        // The hash holds exactly the documented fields.
        let fields: Vec<String> = redis::cmd("HKEYS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut fields = fields;
        fields.sort();
        assert_eq!(fields, ["expires_ms", "record", "version"]);

        // Trust extended by a day: the deadline moves with it, and the set
        // is stretched to cover it.
        let mut extended = device.clone();
        extended.version = 1;
        extended.expires_at += Duration::days(1);
        store.replace_device(&extended, 0).await.unwrap();
        let moved = pttl(&mut conn, &key).await;
        assert!(
            moved > ttl + day - 10_000 && moved <= ttl + day,
            "replace moves the deadline by as much as expires_at moved ({ttl} -> {moved})"
        );
        let set_moved = pttl(&mut conn, &set_key).await;
        assert!(set_moved >= moved - 1_000, "{set_moved} vs {moved}");

        // Expiring at once (at its creation): retention from now; the set
        // is never shortened.
        let mut ended = extended.clone();
        ended.version = 2;
        ended.expires_at = ended.created_at;
        store.replace_device(&ended, 1).await.unwrap();
        let back = pttl(&mut conn, &key).await;
        assert!(
            back > day - 10_000 && back <= day,
            "an earlier expires_at brings the deadline in (PTTL {back})"
        );
        assert!(pttl(&mut conn, &set_key).await >= set_moved - 10_000);

        // A shorter-lived second device leaves the set's expiry alone.
        let mut short = sample_device("alice", 2, now);
        short.expires_at = now + Duration::hours(1);
        store.insert_device(&short).await.unwrap();
        assert!(pttl(&mut conn, &set_key).await >= set_moved - 10_000);

        // Configured retention applies to devices too.
        let short_store = fresh_store(&conn, &prefixes)
            .await
            .with_retention(Duration::hours(1));
        short_store.insert_device(&device).await.unwrap();
        let ttl = pttl(&mut conn, &device_key(&short_store, "alice", &device.id)).await;
        assert!(
            ttl > 30 * day + hour - 10_000 && ttl <= 30 * day + hour,
            "PTTL {ttl}"
        );

        // Record times come from the host's clock: a device trusted a year
        // ago (by a manual clock) or in a year still gets its full life.
        for (seed, at) in [
            (3, now - Duration::days(365)),
            (4, now + Duration::days(365)),
            (5, OffsetDateTime::UNIX_EPOCH),
        ] {
            let d = sample_device("bob", seed, at);
            store.insert_device(&d).await.unwrap();
            let ttl = pttl(&mut conn, &device_key(&store, "bob", &d.id)).await;
            assert!(ttl > 31 * day - 10_000, "PTTL {ttl} for a device at {at}");
            assert!(store.device(&d.account, &d.id).await.unwrap().is_some());
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn device_listing_forgets_what_redis_dropped() {
    with_redis(|mut conn, prefixes| async move {
        let store = fresh_store(&conn, &prefixes).await;
        let now = OffsetDateTime::now_utc();
        let alice = AccountId::new("alice");
        let set_key = format!("{}:devices:alice", store.prefix());
        for seed in 1..=3 {
            store
                .insert_device(&sample_device("alice", seed, now))
                .await
                .unwrap();
        }

        // Redis drops one by itself (as native expiry would).
        let _: i64 = redis::cmd("DEL")
            .arg(device_key(&store, "alice", &device_id(2)))
            .query_async(&mut conn)
            .await
            .unwrap();

        let mut ids: Vec<_> = store
            .devices(&alice)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        ids.sort();
        assert_eq!(ids, [device_id(1), device_id(3)]);
        let members: i64 = redis::cmd("SCARD")
            .arg(&set_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(members, 2, "the vanished id left the set");

        // Deleting what Redis already dropped: it did not exist.
        assert!(!store.delete_device(&alice, &device_id(2)).await.unwrap());
        assert!(store.delete_device(&alice, &device_id(1)).await.unwrap());
        assert!(!store.delete_device(&alice, &device_id(1)).await.unwrap());

        // Again with one vanished: delete_devices counts what it deleted and
        // leaves no key behind.
        store
            .insert_device(&sample_device("alice", 4, now))
            .await
            .unwrap();
        let _: i64 = redis::cmd("DEL")
            .arg(device_key(&store, "alice", &device_id(4)))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(store.delete_devices(&alice).await.unwrap(), 1);
        let left: i64 = redis::cmd("EXISTS")
            .arg(&set_key)
            .arg(device_key(&store, "alice", &device_id(3)))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 0);
        assert!(store.devices(&alice).await.unwrap().is_empty());
        assert_eq!(store.delete_devices(&alice).await.unwrap(), 0);

        // The last device deleted one by one takes the set with it.
        store
            .insert_device(&sample_device("alice", 5, now))
            .await
            .unwrap();
        assert!(store.delete_device(&alice, &device_id(5)).await.unwrap());
        let left: i64 = redis::cmd("EXISTS")
            .arg(&set_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 0);
    })
    .await;
}

/// Versions compare as exact decimal strings (Lua numbers are doubles, which
/// would confuse versions above 2⁵³), and a recovery set's compare-and-set
/// needs both the salt and the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_set_is_exact_on_versions_and_salts() {
    with_redis(|conn, prefixes| async move {
        let store = fresh_store(&conn, &prefixes).await;
        let now = OffsetDateTime::now_utc();
        let alice = AccountId::new("alice");
        let big = (1_u64 << 53) + 1;

        let mut device = sample_device("alice", 1, now);
        device.version = big;
        store.insert_device(&device).await.unwrap();
        let mut refreshed = device.clone();
        refreshed.version = big + 1;
        refreshed.last_used_at = now + Duration::hours(1);
        let err = store.replace_device(&refreshed, big - 1).await.unwrap_err();
        assert!(err.is_conflict());
        store.replace_device(&refreshed, big).await.unwrap();
        let back = store.device(&alice, &device.id).await.unwrap().unwrap();
        assert_eq!(json(&back), json(&refreshed));
    })
    .await;
}

/// Puts a recovery set, two devices (the same two ids for every account)
/// and an epoch of `i + 1` on every account, then checks that each reads
/// back its own, and that deleting one account's data touches no other.
async fn assert_accounts_isolated(store: &RedisStore, accounts: &[String]) {
    let now = OffsetDateTime::now_utc();
    for (i, name) in accounts.iter().enumerate() {
        let seed = u8::try_from(i + 1).unwrap();
        for id in [0xA1, 0xA2] {
            let mut device = sample_device(name, id, now);
            device.epoch = u64::from(seed);
            store
                .insert_device(&device)
                .await
                .unwrap_or_else(|e| panic!("account {name:?}: {e}"));
        }
    }
    for (i, name) in accounts.iter().enumerate() {
        check_account(store, name, i).await;
    }

    // Wipe the first account: every other keeps everything.
    let first = AccountId::new(accounts[0].clone());
    assert_eq!(store.delete_devices(&first).await.unwrap(), 2);
    assert!(store.devices(&first).await.unwrap().is_empty());
    // One device of the second account.
    let second = AccountId::new(accounts[1].clone());
    assert!(
        store
            .delete_device(&second, &device_id(0xA1))
            .await
            .unwrap()
    );
    assert_eq!(store.devices(&second).await.unwrap().len(), 1);
    for (i, name) in accounts.iter().enumerate().skip(2) {
        check_account(store, name, i).await;
    }
}

/// What [`assert_accounts_isolated`] put on the `i`-th account.
async fn check_account(store: &RedisStore, name: &str, i: usize) {
    let account = AccountId::new(name);
    let seed = u8::try_from(i + 1).unwrap();
    let devices = store.devices(&account).await.unwrap();
    assert_eq!(devices.len(), 2, "account {name:?}");
    for d in &devices {
        assert_eq!(d.account, account, "account {name:?}");
        assert_eq!(d.epoch, u64::from(seed), "account {name:?}");
    }
    let one = store.device(&account, &device_id(0xA1)).await.unwrap();
    assert_eq!(one.unwrap().epoch, u64::from(seed), "account {name:?}");
}

/// Account ids with `:` in them never share a key with another account.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_with_colons_never_share_keys() {
    with_redis(|mut conn, prefixes| async move {
        let store = fresh_store(&conn, &prefixes).await;
        let id = device_id(0xA1);
        let accounts: Vec<String> = [
            "a".to_owned(),
            "a:".to_owned(),
            ":a".to_owned(),
            "a:b".to_owned(),
            "a:b:".to_owned(),
            "1:a".to_owned(),
            "3:a:b".to_owned(),
            format!("a:{id}"),
            format!("1:a:{id}"),
            "alice".to_owned(),
            "5:alice".to_owned(),
            "alice:devices:alice".to_owned(),
            "devices:alice".to_owned(),
            "epoch:alice".to_owned(),
            "recovery:alice".to_owned(),
            "x:device:1:a".to_owned(),
            ":".to_owned(),
            "::".to_owned(),
        ]
        .into();
        assert_accounts_isolated(&store, &accounts).await;

        // The failure runs of the same accounts are separate too.
        for (i, name) in accounts.iter().enumerate() {
            let account = AccountId::new(name.clone());
            for _ in 0..=i {
                support::record_failure(&store, &account, OffsetDateTime::now_utc())
                    .await
                    .unwrap();
            }
        }
        for (i, name) in accounts.iter().enumerate() {
            let run = store
                .failures(&AccountId::new(name.clone()))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(run.consecutive, u32::try_from(i + 1).unwrap(), "{name:?}");
        }

        // An operator's scan for one account's devices finds only those
        // (verbatim, `device:alice:*` would also match "alice:devices:alice").
        let mut found = scan(&mut conn, &format!("{}:device:5:alice:*", store.prefix())).await;
        found.sort();
        assert_eq!(
            found,
            [
                device_key(&store, "alice", &device_id(0xA1)),
                device_key(&store, "alice", &device_id(0xA2)),
            ]
        );
    })
    .await;
}

async fn scan(conn: &mut ConnectionManager, pattern: &str) -> Vec<String> {
    let mut cursor: u64 = 0;
    let mut found = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        found.extend(keys);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

/// Account ids that look like globs, other keys, protocol or Lua are just
/// names for recovery sets, devices and epochs too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_account_names_are_inert_for_recovery_devices_and_epochs() {
    with_redis(|mut conn, prefixes| async move {
        let store = fresh_store(&conn, &prefixes).await;
        let canary = format!("{}:canary", store.prefix());
        let _: () = redis::cmd("SET")
            .arg(&canary)
            .arg("alive")
            .query_async(&mut conn)
            .await
            .unwrap();
        let accounts: Vec<String> = [
            "*".to_owned(),
            String::new(),
            "?".to_owned(),
            "[a-z]".to_owned(),
            "{prefix}".to_owned(),
            "{a}".to_owned(),
            "../devices:*".to_owned(),
            "x\r\nFLUSHALL\r\n".to_owned(),
            "') redis.call('FLUSHALL') --".to_owned(),
            "]] redis.call('DEL', KEYS[1]) --[[".to_owned(),
            "\0nul\0".to_owned(),
            "宛先 ✓ 🚀".to_owned(),
            "%s%d%n".to_owned(),
            "a".repeat(10_000),
        ]
        .into();
        assert_accounts_isolated(&store, &accounts).await;

        let alive: String = redis::cmd("GET")
            .arg(&canary)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(alive, "alive", "nothing else was touched");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unexpected_device_and_epoch_data_is_other() {
    with_redis(|mut conn, prefixes| async move {
        let store = fresh_store(&conn, &prefixes).await;
        let now = OffsetDateTime::now_utc();
        let alice = AccountId::new("alice");

        let device = sample_device("alice", 1, now);
        store.insert_device(&device).await.unwrap();
        let _: i64 = redis::cmd("HSET")
            .arg(device_key(&store, "alice", &device.id))
            .arg("record")
            .arg("{not json")
            .query_async(&mut conn)
            .await
            .unwrap();
        for err in [
            store.device(&alice, &device.id).await.unwrap_err(),
            store.devices(&alice).await.unwrap_err(),
        ] {
            assert_eq!(err.kind(), StoreErrorKind::Other);
            let source = std::error::Error::source(&err).expect("a source");
            assert!(source.is::<serde_json::Error>());
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Account records, contact claims and verifications
// ---------------------------------------------------------------------------

fn claim(keys: &[&str], release: &[&str]) -> ClaimChanges {
    ClaimChanges {
        claim: keys.iter().map(|k| (*k).to_owned()).collect(),
        release: release.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// Account records and claims never expire; verifications expire like
/// challenges, `retention` after their `expires_at`, and a replace moves
/// the deadline as `expires_at` moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contacts_never_expire_and_verifications_do() {
    with_redis(|mut conn, prefixes| async move {
        let store = fresh_store(&conn, &prefixes).await;
        let p = store.prefix().to_owned();
        let now = OffsetDateTime::now_utc();
        let alice = AccountId::new("alice");
        let book = testkit::sample_contact_book(&alice, now);
        assert_eq!(
            store
                .commit_account(&book, None, &claim(&["+819012345678"], &[]))
                .await
                .unwrap(),
            AccountCommit::Committed
        );
        for key in [
            format!("{p}:contacts:alice"),
            format!("{p}:claims:alice"),
            format!("{p}:claim:+819012345678"),
        ] {
            assert_eq!(pttl(&mut conn, &key).await, -1, "{key} has no expiry");
        }
        let owner: String = redis::cmd("GET")
            .arg(format!("{p}:claim:+819012345678"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(owner, "alice");

        // 30 minutes to live + 24 hours of retention.
        let hour = 3_600_000;
        let verification = testkit::sample_verification(1, now);
        let lifetime = (verification.expires_at - verification.created_at).whole_milliseconds();
        let lifetime = i64::try_from(lifetime).unwrap();
        store.insert_verification(&verification).await.unwrap();
        let key = format!("{p}:verification:{}", verification.id);
        let ttl = pttl(&mut conn, &key).await;
        assert!(
            ttl > lifetime + 24 * hour - 10_000 && ttl <= lifetime + 24 * hour,
            "{ttl}"
        );
        let mut next = verification.clone();
        next.version = 1;
        next.expires_at += Duration::hours(1);
        store.replace_verification(&next, 0).await.unwrap();
        let moved = pttl(&mut conn, &key).await;
        assert!(
            moved > ttl + hour - 10_000 && moved <= ttl + hour,
            "{moved}"
        );
        let indexed: Option<f64> = redis::cmd("ZSCORE")
            .arg(format!("{p}:verifications:by_expiry"))
            .arg(verification.id.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(indexed.is_some(), "the verification is in its own index");

        // The purge uses the verifications' index only.
        let challenges: i64 = redis::cmd("ZCARD")
            .arg(format!("{p}:challenges:by_expiry"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(challenges, 0);
        assert_eq!(
            store
                .purge_verifications(next.expires_at + Duration::seconds(1))
                .await
                .unwrap(),
            1
        );
        assert_eq!(pttl(&mut conn, &key).await, -2, "deleted");

        store.delete_account(&alice).await.unwrap();
        let left: Vec<String> = scan(&mut conn, &format!("{p}:*")).await;
        assert_eq!(
            left,
            [format!("{p}:meta:initialised")],
            "only the marker is left"
        );
    })
    .await;
}

/// Keys and accounts with colons, globs and look-alike names never share
/// Redis keys, and `delete_account` releases a claim only while it still
/// names the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_and_books_never_share_keys() {
    with_redis(|mut conn, prefixes| async move {
        let store = fresh_store(&conn, &prefixes).await;
        let p = store.prefix().to_owned();
        let now = OffsetDateTime::now_utc();
        let accounts = ["a", "a:b", "s:a", "*", "a b", "claims", ""];
        for (i, name) in accounts.iter().enumerate() {
            let account = AccountId::new(*name);
            let keys = [
                format!("{name}:{i}"),
                format!("s:{name}"),
                format!("[{i}]*"),
            ];
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            assert_eq!(
                store
                    .commit_account(
                        &testkit::sample_contact_book(&account, now),
                        None,
                        &claim(&keys, &[])
                    )
                    .await
                    .unwrap(),
                AccountCommit::Committed,
                "{name:?}"
            );
        }
        for (i, name) in accounts.iter().enumerate() {
            let account = AccountId::new(*name);
            assert_eq!(
                store
                    .account_record(&account)
                    .await
                    .unwrap()
                    .unwrap()
                    .account,
                account
            );
            for key in [
                format!("{name}:{i}"),
                format!("s:{name}"),
                format!("[{i}]*"),
            ] {
                assert_eq!(
                    store.claim_owner(&key).await.unwrap(),
                    Some(account.clone()),
                    "{key:?}"
                );
            }
        }
        // A claim key the account's set still lists but that now names
        // another account (written behind the store's back) stays.
        let _: () = redis::cmd("SET")
            .arg(format!("{p}:claim:s:a"))
            .arg("someone else")
            .query_async(&mut conn)
            .await
            .unwrap();
        store.delete_account(&AccountId::new("a")).await.unwrap();
        assert!(
            store
                .account_record(&AccountId::new("a"))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.claim_owner("a:0").await.unwrap(), None);
        assert_eq!(
            store.claim_owner("s:a").await.unwrap(),
            Some(AccountId::new("someone else"))
        );
        for (i, name) in accounts.iter().enumerate().skip(1) {
            assert_eq!(
                store.claim_owner(&format!("[{i}]*")).await.unwrap(),
                Some(AccountId::new(*name)),
                "{name:?}"
            );
        }
    })
    .await;
}
