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

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ninsho::hash::Tag;
use ninsho::model::{AccountId, DeviceId, DeviceRecord, FailureRecord};
use ninsho::store::PurgeStore;
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ChallengeWrite, ClaimChanges, Commit, Committed,
    DeviceStore, FailureChange, LimitHit, LimitStore, Load, MemoryStore, RecordWrite,
    RedisConnectError, RedisStore, StepStore, Store, StoreError, StoreErrorKind, VerificationStore,
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

/// A [`Commit`] with the named fields set, on `base` when one is given
/// before a `;` (the type is non-exhaustive: outside ninsho it is built by
/// assigning its public fields).
macro_rules! commit {
    ($base:expr; $($field:ident: $value:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut c: Commit<'_> = $base;
        $(c.$field = $value;)*
        c
    }};
    ($($field:ident: $value:expr),* $(,)?) => {
        commit!(Commit::default(); $($field: $value),*)
    };
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
        incarnation: 7,
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
/// on disk), not initialised. Both checks are waived, so building it makes
/// no round trip (some tests build it on a server that isn't there).
async fn volatile(conn: ConnectionManager, prefix: impl Into<String>) -> RedisStore {
    RedisStore::builder(prefix)
        .dangerously_allow_volatile_server()
        .dangerously_allow_evicting_server()
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
        // One namespace, initialised once (by the first instance).
        let b: Arc<dyn Store> = Arc::new(volatile(b, prefix).await);
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
        assert_eq!(store.purge(cut).await.unwrap().challenges, 2);
        for r in &gone {
            assert!(store.challenge(&r.id).await.unwrap().is_none());
        }
        for r in &kept {
            let back = store.challenge(&r.id).await.unwrap().unwrap();
            assert_eq!(back.expires_at, r.expires_at);
        }
        assert_eq!(store.purge(cut).await.unwrap().challenges, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_skips_what_redis_already_dropped_and_works_in_batches() {
    with_redis(|mut conn, prefixes| async move {
        let store = fresh_store(&conn, &prefixes).await;
        let now = OffsetDateTime::now_utc();
        // An expiry index an earlier version kept: the purge unlinks it.
        let index = format!("{}:challenges:by_expiry", store.prefix());
        let _: i64 = redis::cmd("ZADD")
            .arg(&index)
            .arg(1)
            .arg("old")
            .query_async(&mut conn)
            .await
            .unwrap();

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

        assert_eq!(store.purge(now).await.unwrap().challenges, 1_233);
        let left: Vec<String> = scan(&mut conn, &format!("{}:challenge:*", store.prefix())).await;
        assert_eq!(left.len(), 1, "only the live challenge stays: {left:?}");
        assert!(store.challenge(&live.id).await.unwrap().is_some());
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&index)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(exists, 0, "the old index is gone");
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
    assert_eq!(kind(store.purge(now).await), StoreErrorKind::Unavailable);
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
        kind(store.load(&Load::account(&account)).await),
        StoreErrorKind::Unavailable
    );
    let commit = commit! {
        challenge: Some(ChallengeWrite::Insert(&record)),
    };
    assert_eq!(
        kind(store.commit(&commit, now).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(kind(store.initialise().await), StoreErrorKind::Unavailable);

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

        // The challenge is untouched.
        let back = store.challenge(&record.id).await.unwrap().unwrap();
        assert_eq!(back.version, record.version);
        assert_eq!(
            store
                .purge(now + Duration::hours(1))
                .await
                .unwrap()
                .challenges,
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
        // A write that leaves expires_at where it was leaves the key's
        // deadline alone.
        let mut same = next.clone();
        same.version = 2;
        store.replace_verification(&same, 1).await.unwrap();
        let kept = pttl(&mut conn, &key).await;
        assert!(
            kept <= moved && kept > moved - 10_000,
            "{kept} after {moved}"
        );

        assert_eq!(
            store
                .purge(same.expires_at + Duration::seconds(1))
                .await
                .unwrap()
                .verifications,
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

// ---------------------------------------------------------------------------
// Journey steps: load and commit
// ---------------------------------------------------------------------------

fn run(consecutive: u32, at: OffsetDateTime) -> FailureRecord {
    FailureRecord {
        consecutive,
        last_failure_at: at,
    }
}

fn limit(key: &str, max: u64) -> LimitHit {
    LimitHit {
        key: key.to_owned(),
        window: Duration::minutes(10),
        max,
    }
}

/// What a key holds, by type, in a form that compares: hash fields and
/// set members sorted, sorted sets with their scores.
async fn contents(conn: &mut ConnectionManager, key: &str) -> String {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
    let mut cmd = match kind.as_str() {
        "string" => redis::cmd("GET"),
        "hash" => redis::cmd("HGETALL"),
        "set" => redis::cmd("SMEMBERS"),
        "zset" => {
            let mut c = redis::cmd("ZRANGE");
            c.arg(key).arg(0).arg(-1).arg("WITHSCORES");
            let items: Vec<String> = c.query_async(conn).await.unwrap();
            return format!("zset {items:?}");
        }
        other => return other.to_owned(),
    };
    let value: redis::Value = cmd.arg(key).query_async(conn).await.unwrap();
    let mut items: Vec<String> = match value {
        redis::Value::Array(items) => items
            .into_iter()
            .map(|v| redis::from_redis_value::<String>(v).unwrap())
            .collect(),
        redis::Value::Map(pairs) => pairs
            .into_iter()
            .flat_map(|(k, v)| [k, v])
            .map(|v| redis::from_redis_value::<String>(v).unwrap())
            .collect(),
        other => vec![redis::from_redis_value::<String>(other).unwrap()],
    };
    if kind == "hash" {
        let mut pairs: Vec<String> = items.chunks(2).map(|p| p.join("=")).collect();
        pairs.sort();
        items = pairs;
    } else if kind == "set" {
        items.sort();
    }
    format!("{kind} {items:?}")
}

/// Every key under `prefix` (its name after the prefix) with its contents.
async fn snapshot(conn: &mut ConnectionManager, prefix: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for key in scan(conn, &format!("{prefix}:*")).await {
        let held = contents(conn, &key).await;
        out.insert(key[prefix.len()..].to_owned(), held);
    }
    out
}

/// Every key under `prefix` with its time to live (-1: none).
async fn lifetimes(conn: &mut ConnectionManager, prefix: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for key in scan(conn, &format!("{prefix}:*")).await {
        let ttl = pttl(conn, &key).await;
        out.insert(key[prefix.len()..].to_owned(), ttl);
    }
    out
}

/// A commit writes exactly the keys, fields and lifetimes that the part
/// calls write for the same changes: the two kinds of call share their
/// records. Each part alone, then all together, on an account whose name
/// looks like keys and globs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_writes_the_records_the_part_calls_write() {
    with_redis(|mut conn, prefixes| async move {
        let parts = fresh_store(&conn, &prefixes).await;
        let steps = fresh_store(&conn, &prefixes).await;
        let now = OffsetDateTime::now_utc();
        let account = AccountId::new("a:b*{x}:claims:a");
        let first = run(1, now);
        let mut challenge = testkit::sample_challenge(0x31, now);
        challenge.account = Some(account.clone());
        let mut resent = challenge.clone();
        resent.version = 1;
        resent.expires_at += Duration::minutes(5);
        let device = sample_device(&account.0, 0x32, now);
        let book = testkit::sample_contact_book(&account, now);
        let mut next_book = book.clone();
        next_book.version = 2;
        let first_claims = claim(&["+819011112222", "k*[1]"], &[]);
        let second_claims = claim(&["+819033334444"], &["+819011112222"]);
        let hits = [
            limit("dest:+8190", 5),
            limit("dest:+8190", 5),
            limit("x", 5),
        ];

        // Each part alone, compared after each step.
        let mut compare = async |what: &str| {
            let (a, b) = (
                snapshot(&mut conn, parts.prefix()).await,
                snapshot(&mut conn, steps.prefix()).await,
            );
            assert_eq!(a, b, "{what}: the same keys and contents");
            let (a, b) = (
                lifetimes(&mut conn, parts.prefix()).await,
                lifetimes(&mut conn, steps.prefix()).await,
            );
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "{what}"
            );
            for (key, ttl) in &a {
                let other = b[key];
                assert!(
                    (*ttl == -1 && other == -1) || (*ttl > 0 && (ttl - other).abs() < 5_000),
                    "{what}: {key} lives {ttl} ms one way and {other} ms the other"
                );
            }
        };

        for hit in &hits {
            parts.hit(&hit.key, hit.window, now).await.unwrap();
        }
        let commit = commit! {
            hits: &hits,
        };
        assert_eq!(steps.commit(&commit, now).await.unwrap(), Committed::Done);
        compare("hits").await;

        parts
            .replace_failures(&account, None, Some(first))
            .await
            .unwrap();
        let commit = commit! {
            failures: Some(FailureChange {
                account: &account,
                expected: None,
                next: Some(first),
            }),
        };
        assert_eq!(steps.commit(&commit, now).await.unwrap(), Committed::Done);
        compare("a failure run").await;

        parts.insert_challenge(&challenge).await.unwrap();
        let commit = commit! {
            challenge: Some(ChallengeWrite::Insert(&challenge)),
        };
        assert_eq!(steps.commit(&commit, now).await.unwrap(), Committed::Done);
        compare("a challenge inserted").await;

        parts.replace_challenge(&resent, 0).await.unwrap();
        let commit = commit! {
            challenge: Some(ChallengeWrite::Replace {
                record: &resent,
                expected_version: 0,
            }),
        };
        assert_eq!(steps.commit(&commit, now).await.unwrap(), Committed::Done);
        compare("a challenge replaced, its deadline moved").await;

        parts.insert_device(&device).await.unwrap();
        let commit = commit! {
            device: Some(&device),
        };
        assert_eq!(steps.commit(&commit, now).await.unwrap(), Committed::Done);
        compare("a device").await;

        parts
            .commit_account(&book, None, &first_claims)
            .await
            .unwrap();
        let commit = commit! {
            record: Some(RecordWrite {
                record: &book,
                expected_version: None,
                claims: &first_claims,
            }),
        };
        assert_eq!(steps.commit(&commit, now).await.unwrap(), Committed::Done);
        compare("an account record with claims").await;

        // Then everything at once: run ended, challenge consumed, record
        // moved on with a claim changing hands, the same counters again.
        let mut consumed = resent.clone();
        consumed.version = 2;
        consumed.expires_at = consumed.created_at;
        for hit in &hits {
            parts.hit(&hit.key, hit.window, now).await.unwrap();
        }
        parts
            .replace_failures(&account, Some(first), None)
            .await
            .unwrap();
        parts.replace_challenge(&consumed, 1).await.unwrap();
        let mut second_device = device.clone();
        second_device.id = device_id(0x33);
        parts.insert_device(&second_device).await.unwrap();
        parts
            .commit_account(&next_book, Some(1), &second_claims)
            .await
            .unwrap();
        let commit = commit! {
            hits: &hits,
            failures: Some(FailureChange {
                account: &account,
                expected: Some(first),
                next: None,
            }),
            challenge: Some(ChallengeWrite::Replace {
                record: &consumed,
                expected_version: 1,
            }),
            record: Some(RecordWrite {
                record: &next_book,
                expected_version: Some(1),
                claims: &second_claims,
            }),
            device: Some(&second_device),
        };
        assert_eq!(steps.commit(&commit, now).await.unwrap(), Committed::Done);
        compare("every part at once").await;

        // And load reads back what either wrote.
        for store in [&parts, &steps] {
            let loaded = store
                .load(
                    &Load::account(&account)
                        .with_challenge(&challenge.id)
                        .with_device(&device.id),
                )
                .await
                .unwrap();
            assert_eq!(json(&loaded.record.unwrap()), json(&next_book));
            assert_eq!(loaded.failures, None);
            assert_eq!(json(&loaded.challenge.unwrap()), json(&consumed));
            assert_eq!(json(&loaded.device.unwrap()), json(&device));
        }
    })
    .await;
}

/// The records a failed commit would have touched, with a commit that
/// would land on them; `spoil` makes one condition fail.
struct Stage<S> {
    store: S,
    account: AccountId,
    run: FailureRecord,
    challenge: ninsho::model::ChallengeRecord,
    next_challenge: ninsho::model::ChallengeRecord,
    book: ninsho::model::AccountRecord,
    next_book: ninsho::model::AccountRecord,
    device: DeviceRecord,
    new_device: DeviceRecord,
    claims: ClaimChanges,
    hits: Vec<LimitHit>,
}

impl<S: Store> Stage<S> {
    async fn new(store: S, now: OffsetDateTime) -> Self {
        let account = AccountId::new("carol");
        let book = testkit::sample_contact_book(&account, now);
        store
            .commit_account(&book, None, &claim(&["+819055556666"], &[]))
            .await
            .unwrap();
        let stored_run = run(4, now);
        store
            .replace_failures(&account, None, Some(stored_run))
            .await
            .unwrap();
        let mut challenge = testkit::sample_challenge(0x41, now);
        challenge.account = Some(account.clone());
        store.insert_challenge(&challenge).await.unwrap();
        let device = sample_device("carol", 0x42, now);
        store.insert_device(&device).await.unwrap();
        // A counter already charged once, so a stray charge would show.
        store
            .hit("dest:carol", Duration::minutes(10), now)
            .await
            .unwrap();
        let mut next_challenge = challenge.clone();
        next_challenge.version = 1;
        next_challenge.failed_attempts = 1;
        let mut next_book = book.clone();
        next_book.version = 2;
        Self {
            store,
            account,
            run: stored_run,
            challenge,
            next_challenge,
            book,
            next_book,
            device,
            new_device: sample_device("carol", 0x43, now),
            claims: claim(&["+819077778888"], &["+819055556666"]),
            hits: vec![limit("dest:carol", 10), limit("caller:carol", 10)],
        }
    }

    fn good(&self) -> Commit<'_> {
        commit! {
            hits: &self.hits,
            failures: Some(FailureChange {
                account: &self.account,
                expected: Some(self.run),
                next: Some(run(5, self.run.last_failure_at)),
            }),
            challenge: Some(ChallengeWrite::Replace {
                record: &self.next_challenge,
                expected_version: 0,
            }),
            record: Some(RecordWrite {
                record: &self.next_book,
                expected_version: Some(self.book.version),
                claims: &self.claims,
            }),
            device: Some(&self.new_device),
        }
    }
}

/// Every condition that fails makes the commit a Conflict that writes
/// nothing at all, hits included: the namespace is the same, key by key,
/// before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_condition_writes_nothing() {
    with_redis(|mut conn, prefixes| async move {
        let now = OffsetDateTime::now_utc();
        let stage = Stage::new(fresh_store(&conn, &prefixes).await, now).await;
        let store = &stage.store;
        let good = stage.good();
        let stale_challenge = ChallengeWrite::Replace {
            record: &stage.next_challenge,
            expected_version: 1,
        };
        let mut gone = testkit::sample_challenge(0x44, now);
        gone.version = 1;
        let gone_challenge = ChallengeWrite::Replace {
            record: &gone,
            expected_version: 0,
        };
        let spoiled: Vec<(&str, Commit<'_>)> = vec![
            (
                "a failure run that moved on",
                commit! {
                    good;
                    failures: Some(FailureChange {
                        expected: Some(run(3, stage.run.last_failure_at)),
                        ..good.failures.unwrap()
                    }),
                },
            ),
            (
                "a failure run stored one nanosecond later",
                commit! {
                    good;
                    failures: Some(FailureChange {
                        expected: Some(run(
                            4,
                            stage.run.last_failure_at + Duration::nanoseconds(1),
                        )),
                        ..good.failures.unwrap()
                    }),
                },
            ),
            (
                "no failure run expected where one is stored",
                commit! {
                    good;
                    failures: Some(FailureChange {
                        expected: None,
                        ..good.failures.unwrap()
                    }),
                },
            ),
            (
                "a stale challenge version",
                commit! {
                    good;
                    challenge: Some(stale_challenge),
                },
            ),
            (
                "a challenge that is gone",
                commit! {
                    good;
                    challenge: Some(gone_challenge),
                },
            ),
            (
                "a challenge insert over an existing one",
                commit! {
                    good;
                    challenge: Some(ChallengeWrite::Insert(&stage.challenge)),
                },
            ),
            (
                "a device id already trusted",
                commit! {
                    good;
                    device: Some(&stage.device),
                },
            ),
            (
                "a stale record version",
                commit! {
                    good;
                    record: Some(RecordWrite {
                        expected_version: Some(7),
                        ..good.record.unwrap()
                    }),
                },
            ),
            (
                "no record expected where one is stored",
                commit! {
                    good;
                    record: Some(RecordWrite {
                        expected_version: None,
                        ..good.record.unwrap()
                    }),
                },
            ),
        ];
        let before = snapshot(&mut conn, store.prefix()).await;
        for (what, commit) in spoiled {
            let got = store.commit(&commit, now).await;
            assert_eq!(kind(got), StoreErrorKind::Conflict, "{what}");
            assert_eq!(
                snapshot(&mut conn, store.prefix()).await,
                before,
                "a commit with {what} wrote something"
            );
        }
        // The unspoiled commit lands, and then is stale itself.
        assert_eq!(store.commit(&good, now).await.unwrap(), Committed::Done);
        assert_eq!(
            kind(store.commit(&good, now).await),
            StoreErrorKind::Conflict
        );
        let after = store.hit("dest:carol", Duration::minutes(10), now).await;
        assert_eq!(
            after.unwrap().count,
            3,
            "one charge by the commit that landed"
        );
    })
    .await;
}

/// A hit past its max: it and the hits before it are charged, the later
/// ones are not, and nothing else is written (the counters are the only
/// keys that change). A counter at its max exactly lets the commit by.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limit_reached_charges_up_to_that_hit_only() {
    with_redis(|mut conn, prefixes| async move {
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(987_654_321)
            .unwrap();
        let stage = Stage::new(fresh_store(&conn, &prefixes).await, now).await;
        let store = &stage.store;
        let p = store.prefix().to_owned();
        // dest:carol holds 1; max 2 lets one more through, then stops.
        let hits = [limit("a", 10), limit("dest:carol", 2), limit("c", 10)];
        let first = commit! {
            hits: &hits,
        };
        assert_eq!(store.commit(&first, now).await.unwrap(), Committed::Done);
        let before = snapshot(&mut conn, &p).await;
        let commit = commit! {
            stage.good();
            hits: &hits,
        };
        let got = store.commit(&commit, now).await.unwrap();
        let Committed::LimitReached { index, count } = got else {
            panic!("expected LimitReached, got {got:?}");
        };
        assert_eq!(index, 1);
        assert_eq!(count.count, 3);
        // The window Stage::new opened, to the nanosecond.
        assert_eq!(count.resets_at, now + Duration::minutes(10));
        let after = snapshot(&mut conn, &p).await;
        let changed: Vec<&String> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(changed, [":limit:a", ":limit:dest:carol"]);
        assert_eq!(before.len(), after.len(), "no key added or removed");
        assert!(
            after[":limit:a"].contains("count=2") && after[":limit:c"].contains("count=1"),
            "{after:?}"
        );
        // A counter hit twice in one commit counts both, and the second
        // may be the one that passes.
        let twice = [limit("twice", 1), limit("twice", 1)];
        let got = store
            .commit(
                &commit! {
                    hits: &twice,
                },
                now,
            )
            .await
            .unwrap();
        assert!(
            matches!(got, Committed::LimitReached { index: 1, count } if count.count == 2),
            "{got:?}"
        );
        assert!(pttl(&mut conn, &format!("{p}:limit:twice")).await > 590_000);
    })
    .await;
}

/// A claim held by another account: Taken with its index, nothing
/// written (hits included), whatever else the commit carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_taken_claim_writes_nothing() {
    with_redis(|mut conn, prefixes| async move {
        let now = OffsetDateTime::now_utc();
        let stage = Stage::new(fresh_store(&conn, &prefixes).await, now).await;
        let store = &stage.store;
        let dave = AccountId::new("dave");
        store
            .commit_account(
                &testkit::sample_contact_book(&dave, now),
                None,
                &claim(&["+819099990000"], &[]),
            )
            .await
            .unwrap();
        let claims = claim(&["+819077778888", "+819099990000"], &[]);
        let commit = commit! {
            stage.good();
            record: Some(RecordWrite {
                claims: &claims,
                ..stage.good().record.unwrap()
            }),
        };
        let before = snapshot(&mut conn, store.prefix()).await;
        assert_eq!(
            store.commit(&commit, now).await.unwrap(),
            Committed::Taken { index: 1 }
        );
        assert_eq!(snapshot(&mut conn, store.prefix()).await, before);
        assert_eq!(
            store.claim_owner("+819099990000").await.unwrap(),
            Some(dave)
        );
    })
    .await;
}

/// Versions compare as exact decimal strings in commit.lua too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_compares_versions_above_2_pow_53_exactly() {
    with_redis(|conn, prefixes| async move {
        let store = fresh_store(&conn, &prefixes).await;
        let now = OffsetDateTime::now_utc();
        let big = (1_u64 << 53) + 1;
        let mut challenge = testkit::sample_challenge(0x51, now);
        challenge.version = big;
        store.insert_challenge(&challenge).await.unwrap();
        let mut next = challenge.clone();
        next.version = big + 1;
        let replace = |expected_version| {
            commit! {
                challenge: Some(ChallengeWrite::Replace {
                    record: &next,
                    expected_version,
                }),
            }
        };
        assert_eq!(
            kind(store.commit(&replace(big - 1), now).await),
            StoreErrorKind::Conflict
        );
        assert_eq!(
            store.commit(&replace(big), now).await.unwrap(),
            Committed::Done
        );
        let back = store.challenge(&challenge.id).await.unwrap().unwrap();
        assert_eq!(back.version, big + 1);
    })
    .await;
}

/// Which conditions a racing commit carries.
#[derive(Clone, Copy, Debug)]
enum On {
    Challenge,
    Failures,
    Both,
}

/// `tasks` commits at once on one challenge version and/or one failure run,
/// spread over `stores` (one per app instance), each also inserting a
/// device of its own: exactly one lands, every other is a Conflict, and
/// what is stored is the winner's.
async fn race_one_step(stores: &[RedisStore], on: On, tasks: usize) {
    let now = OffsetDateTime::now_utc();
    let account = AccountId::new(format!("race:{on:?}"));
    let mut challenge = testkit::sample_challenge(0x61, now);
    challenge.account = Some(account.clone());
    stores[0].insert_challenge(&challenge).await.unwrap();
    let before = run(2, now);
    stores[0]
        .replace_failures(&account, None, Some(before))
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let (account, barrier) = (account.clone(), barrier.clone());
            let mut next = challenge.clone();
            next.version = 1;
            next.failed_attempts = u32::try_from(i).unwrap();
            let mut device = sample_device(&account.0, 0, now);
            device.id = device_id(u8::try_from(i).unwrap());
            tokio::spawn(async move {
                let failures = FailureChange {
                    account: &account,
                    expected: Some(before),
                    next: Some(run(3 + u32::try_from(i).unwrap(), now)),
                };
                let challenge = ChallengeWrite::Replace {
                    record: &next,
                    expected_version: 0,
                };
                let commit = commit! {
                    failures: matches!(on, On::Failures | On::Both).then_some(failures),
                    challenge: matches!(on, On::Challenge | On::Both).then_some(challenge),
                    device: Some(&device),
                };
                barrier.wait().await;
                store.commit(&commit, now).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, handle) in handles.into_iter().enumerate() {
        match handle.await.unwrap() {
            Ok(Committed::Done) => winners.push(i),
            Err(e) if e.is_conflict() => {}
            other => panic!("task {i}: {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{on:?}, {} instance(s): exactly one commit lands, not {winners:?}",
        stores.len()
    );
    let winner = winners[0];
    let store = &stores[0];
    let devices = store.devices(&account).await.unwrap();
    assert_eq!(devices.len(), 1, "only the winner's device");
    assert_eq!(devices[0].id, device_id(u8::try_from(winner).unwrap()));
    let loaded = store
        .load(&Load::account(&account).with_challenge(&challenge.id))
        .await
        .unwrap();
    if matches!(on, On::Challenge | On::Both) {
        assert_eq!(
            loaded.challenge.unwrap().failed_attempts,
            u32::try_from(winner).unwrap()
        );
    }
    if matches!(on, On::Failures | On::Both) {
        assert_eq!(
            loaded.failures,
            Some(run(3 + u32::try_from(winner).unwrap(), now))
        );
    }
}

/// 32 tasks on one store commit on the same challenge version and failure
/// run (and on each alone): one Done, 31 Conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_commits_on_one_step_one_lands() {
    with_redis(|conn, prefixes| async move {
        for on in [On::Both, On::Challenge, On::Failures] {
            let store = fresh_store(&conn, &prefixes).await;
            race_one_step(&[store], on, 32).await;
        }
    })
    .await;
}

/// The same across two app instances: two connection managers (two TCP
/// connections) on one prefix, 16 tasks each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_commits_from_two_instances_one_lands() {
    with_redis(|_, prefixes| async move {
        for on in [On::Both, On::Challenge, On::Failures] {
            let prefix = prefixes.new_prefix();
            let (Some(a), Some(b)) = (connect().await, connect().await) else {
                panic!("the server answered a moment ago");
            };
            let a = store_on(a, prefix.clone()).await;
            let b = volatile(b, prefix).await;
            race_one_step(&[a, b], on, 32).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Data loss: the initialisation marker
// ---------------------------------------------------------------------------

/// A namespace wiped under a running store (a flush, a restart without
/// persistence): load and account_record answer NotInitialised, never
/// "no record"; initialise() makes them answer again (with the records
/// gone). A store never initialised answers the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_namespace_is_not_initialised_until_initialised_again() {
    with_redis(|mut conn, prefixes| async move {
        let now = OffsetDateTime::now_utc();
        let store = fresh_store(&conn, &prefixes).await;
        let alice = AccountId::new("alice");
        let book = testkit::sample_contact_book(&alice, now);
        store
            .commit_account(&book, None, &ClaimChanges::default())
            .await
            .unwrap();
        let challenge = testkit::sample_challenge(0x71, now);
        store.insert_challenge(&challenge).await.unwrap();
        let device = device_id(1);
        let everything = Load::account(&alice)
            .with_challenge(&challenge.id)
            .with_device(&device);
        assert!(store.load(&everything).await.unwrap().record.is_some());

        // Every key of the namespace goes, the marker with them.
        delete_prefix(&mut conn, store.prefix()).await;
        for load in [
            everything,
            Load::account(&alice),
            Load::challenge_only(&challenge.id),
        ] {
            assert_eq!(
                kind(store.load(&load).await),
                StoreErrorKind::NotInitialised,
                "{load:?}"
            );
        }
        let err = store.account_record(&alice).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::NotInitialised);
        assert!(err.to_string().contains("initialise"), "{err}");
        // Nor is anything written: a step's commit checks the marker first.
        let hits = [LimitHit {
            key: "not-initialised".to_owned(),
            window: Duration::minutes(1),
            max: 10,
        }];
        let mut commit = Commit::default();
        commit.hits = &hits;
        assert_eq!(
            kind(store.commit(&commit, OffsetDateTime::now_utc()).await),
            StoreErrorKind::NotInitialised,
            "commit"
        );
        let owner = store.claim_owner("not-initialised").await.unwrap_err();
        assert_eq!(owner.kind(), StoreErrorKind::NotInitialised);

        // The operator's deliberate act; twice is the same as once.
        store.initialise().await.unwrap();
        store.initialise().await.unwrap();
        let loaded = store.load(&everything).await.unwrap();
        assert!(loaded.record.is_none() && loaded.challenge.is_none());
        assert!(store.account_record(&alice).await.unwrap().is_none());
        let marker: Vec<String> = scan(&mut conn, &format!("{}:meta:*", store.prefix())).await;
        assert_eq!(marker, [format!("{}:meta:initialised", store.prefix())]);

        // A prefix nobody initialised.
        let never = volatile(conn.clone(), prefixes.new_prefix()).await;
        assert_eq!(
            kind(never.load(&Load::account(&alice)).await),
            StoreErrorKind::NotInitialised
        );
        assert_eq!(
            kind(never.account_record(&alice).await),
            StoreErrorKind::NotInitialised
        );
    })
    .await;
}

/// The done-when of issue 16: a store wiped under a running service
/// answers errors, never "two-step sign-in is off". An enrolled account's
/// sign-in, its methods, its status and a new code all fail with
/// `NotInitialised` once the namespace is gone, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_wiped_under_a_running_service_fails_closed() {
    with_redis(|mut conn, prefixes| async move {
        let store = Arc::new(fresh_store(&conn, &prefixes).await);
        let gateway = ninsho::gateway::RecordingGateway::new();
        let clock = ninsho::ManualClock::at_unix(support::T0).unwrap();
        let service = support::two_factor("Example", store.clone(), &gateway, &clock, 41)
            .limits(support::no_send_limits())
            .build()
            .unwrap();
        let taro = AccountId::new("taro");
        support::enrol(&service, &gateway, &taro).await;
        let before = service.sign_in_begin(&taro, None).await.unwrap();
        assert!(matches!(
            before,
            ninsho::service::SignInStart::Required { .. }
        ));
        let sent = gateway.attempts().len();

        delete_prefix(&mut conn, store.prefix()).await;

        let wiped = |e: ninsho::Error| match e {
            ninsho::Error::Store(e) => e.kind(),
            other => panic!("a wiped store must answer a store error, not {other:?}"),
        };
        let begin = service.sign_in_begin(&taro, None).await;
        assert!(
            !matches!(begin, Ok(ninsho::service::SignInStart::NotNeeded(_))),
            "a wiped store read as 'no second step needed': {begin:?}"
        );
        assert_eq!(wiped(begin.unwrap_err()), StoreErrorKind::NotInitialised);
        assert_eq!(
            wiped(service.two_factor_enabled(&taro).await.unwrap_err()),
            StoreErrorKind::NotInitialised
        );
        assert_eq!(
            wiped(service.methods(&taro).await.unwrap_err()),
            StoreErrorKind::NotInitialised
        );
        assert_eq!(
            wiped(
                service
                    .phone_send_code(&AccountId::new("jiro"), "090-8765-4321", None, None)
                    .await
                    .unwrap_err()
            ),
            StoreErrorKind::NotInitialised
        );
        assert_eq!(gateway.attempts().len(), sent, "nothing may be sent");
    })
    .await;
}

// ---------------------------------------------------------------------------
// Persistence check at connect
// ---------------------------------------------------------------------------

/// Whether the test server keeps nothing on disk, as the store judges it;
/// `None` when it refuses CONFIG.
async fn server_is_volatile(conn: &mut ConnectionManager) -> Option<bool> {
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query_async(conn)
        .await
        .ok()?;
    let appendonly: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(conn)
        .await
        .ok()?;
    Some(save.get(1)?.trim().is_empty() && appendonly.get(1)? == "no")
}

/// A server that keeps nothing on disk is refused, unless the host opted
/// in; one that keeps its data is accepted either way. The test server is
/// usually volatile (`--save "" --appendonly no`), so the refusal is what
/// this sees there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_volatile_server_is_refused_unless_accepted() {
    with_redis(|mut conn, prefixes| async move {
        let url = redis_url();
        let volatile_server = server_is_volatile(&mut conn).await;
        let plain = RedisStore::connect(&url, prefixes.new_prefix()).await;
        let built = RedisStore::builder(prefixes.new_prefix())
            .build(conn.clone())
            .await;
        match volatile_server {
            Some(true) => {
                for got in [plain, built] {
                    let err = got.unwrap_err();
                    assert!(matches!(err, RedisConnectError::VolatileServer), "{err:?}");
                    assert!(err.to_string().contains("persistence"), "{err}");
                    let as_store = StoreError::from(err);
                    assert_eq!(as_store.kind(), StoreErrorKind::Other);
                    assert!(std::error::Error::source(&as_store).is_some());
                }
            }
            Some(false) | None => {
                eprintln!("note: the test server keeps its data (or hides CONFIG); accepted");
                plain.unwrap();
                built.unwrap();
            }
        }
        let accepted = RedisStore::builder(prefixes.new_prefix())
            .dangerously_allow_volatile_server()
            .connect(&url)
            .await
            .unwrap();
        accepted.initialise().await.unwrap();
        assert!(
            accepted
                .load(&Load::account(&AccountId::new("a")))
                .await
                .is_ok()
        );
    })
    .await;
}

/// A server that refuses CONFIG (here: an ACL user without it, as managed
/// services set up) is accepted without the opt-in: its persistence can't
/// be seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_refuses_config_is_accepted() {
    with_redis(|mut conn, prefixes| async move {
        let url = redis_url();
        let Some(rest) = url.strip_prefix("redis://").filter(|r| !r.contains('@')) else {
            eprintln!("SKIPPED (part): NINSHO_REDIS_URL carries a login; no ACL user made");
            return;
        };
        let user = format!("ninsho-test-noconfig-{}", unique_prefix().replace(':', "-"));
        let password = "ninsho-test-password";
        let made: Result<(), redis::RedisError> = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .arg("-config")
            .query_async(&mut conn)
            .await;
        if let Err(e) = made {
            assert!(!under_ci(), "ACL SETUSER refused under CI: {e}");
            eprintln!("SKIPPED (part): the server refuses ACL SETUSER ({e})");
            return;
        }
        let limited = format!("redis://{user}:{password}@{rest}");
        let got = RedisStore::connect(&limited, prefixes.new_prefix()).await;
        let _: i64 = redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&user)
            .query_async(&mut conn)
            .await
            .unwrap();
        let store = got.expect("a server that refuses CONFIG is accepted");
        assert!(store.prefix().starts_with("ninsho-test:"));
    })
    .await;
}

/// What the scenarios of [`commit_outcomes_match_the_reference_store`]
/// put into a commit.
struct Extras {
    over: [LimitHit; 2],
    stale_run: FailureRecord,
    taken: ClaimChanges,
}

/// One scenario: changes to the good commit.
type Spoil = for<'a> fn(&mut Commit<'a>, &'a Extras);

/// Seeds `store` as `Stage::new` does (and a claim held by another
/// account), runs the good commit spoiled by `spoil`, and returns its
/// outcome and every record and counter it could have touched.
async fn outcome_on<S: Store>(
    store: S,
    now: OffsetDateTime,
    spoil: Spoil,
    extras: &Extras,
) -> Vec<String> {
    let stage = Stage::new(store, now).await;
    let s = &stage.store;
    s.commit_account(
        &testkit::sample_contact_book(&AccountId::new("dave"), now),
        None,
        &claim(&["+819099990000"], &[]),
    )
    .await
    .unwrap();
    let mut commit = stage.good();
    spoil(&mut commit, extras);
    let outcome = match s.commit(&commit, now).await {
        Ok(done) => format!("{done:?}"),
        Err(e) => format!("{:?}", e.kind()),
    };
    let loaded = s
        .load(
            &Load::account(&stage.account)
                .with_challenge(&stage.challenge.id)
                .with_device(&stage.new_device.id),
        )
        .await
        .unwrap();
    let mut after = vec![
        outcome,
        json(&loaded.record).to_string(),
        format!("{:?}", loaded.failures),
        json(&loaded.challenge).to_string(),
        json(&loaded.device).to_string(),
    ];
    for key in ["dest:carol", "caller:carol", "after"] {
        let count = s.hit(key, Duration::minutes(10), now).await.unwrap();
        after.push(format!("{key} {count:?}"));
    }
    for key in ["+819055556666", "+819077778888", "+819099990000"] {
        after.push(format!("{key} {:?}", s.claim_owner(key).await.unwrap()));
    }
    after
}

/// Commits whose conditions fail in more than one way at once, run on
/// MemoryStore (the reference) and on RedisStore from the same records:
/// the same outcome (which failure wins: a limit before any condition, a
/// stale condition before a taken claim) and the same records after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_outcomes_match_the_reference_store() {
    with_redis(|conn, prefixes| async move {
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(123_456_789)
            .unwrap();
        let extras = Extras {
            over: [limit("dest:carol", 1), limit("after", 10)],
            stale_run: run(9, now),
            taken: claim(&["+819077778888", "+819099990000"], &[]),
        };
        let scenarios: Vec<(&str, Spoil)> = vec![
            ("good", |_, _| {}),
            ("a limit passed and a stale run", |c, x| {
                c.hits = &x.over;
                c.failures = c.failures.map(|f| FailureChange {
                    expected: Some(x.stale_run),
                    ..f
                });
            }),
            ("a limit passed and a taken claim", |c, x| {
                c.hits = &x.over;
                c.record = c.record.map(|r| RecordWrite {
                    claims: &x.taken,
                    ..r
                });
            }),
            ("a stale run and a taken claim", |c, x| {
                c.failures = c.failures.map(|f| FailureChange {
                    expected: Some(x.stale_run),
                    ..f
                });
                c.record = c.record.map(|r| RecordWrite {
                    claims: &x.taken,
                    ..r
                });
            }),
            ("a stale record version and a taken claim", |c, x| {
                c.record = c.record.map(|r| RecordWrite {
                    expected_version: Some(9),
                    claims: &x.taken,
                    ..r
                });
            }),
            ("a gone challenge version, no device", |c, _| {
                if let Some(ChallengeWrite::Replace { record, .. }) = c.challenge {
                    c.challenge = Some(ChallengeWrite::Replace {
                        record,
                        expected_version: 5,
                    });
                }
                c.device = None;
            }),
            ("only a taken claim", |c, x| {
                c.record = c.record.map(|r| RecordWrite {
                    claims: &x.taken,
                    ..r
                });
            }),
        ];
        for (what, spoil) in scenarios {
            let reference = outcome_on(MemoryStore::new(), now, spoil, &extras).await;
            let redis = outcome_on(fresh_store(&conn, &prefixes).await, now, spoil, &extras).await;
            assert_eq!(reference, redis, "{what}: MemoryStore, then RedisStore");
        }
    })
    .await;
}
