//! `RedisStore` on a real Redis Cluster (three masters on loopback ports,
//! started by `.ci/run`): the whole conformance kit, two app instances
//! racing through independent cluster connections, a wiped master failing
//! closed, and every key of a store on the one slot its prefix names.
//!
//! The cluster is `NINSHO_REDIS_CLUSTER_URL`: its nodes' URLs, separated by
//! commas. Unset, the tests print `SKIPPED` and pass, except under
//! `CI=true`, where they fail: CI must never skip them. Every store gets a
//! prefix of its own, whose keys are deleted at the end, also when a test
//! fails.

#![cfg(all(feature = "redis", feature = "testkit"))]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ninsho::model::AccountId;
use ninsho::store::{
    AccountStore, Load, RedisConnectError, RedisStore, StepStore, Store, StoreErrorKind,
};
use ninsho::testkit;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{FromRedisValue, Value};

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The cluster's node URLs, or `None` (after saying so) when none is set
/// and we are not under CI.
fn nodes() -> Option<Vec<String>> {
    match std::env::var("NINSHO_REDIS_CLUSTER_URL") {
        Ok(urls) if !urls.trim().is_empty() => Some(
            urls.split(',')
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect(),
        ),
        _ if under_ci() => panic!(
            "a Redis Cluster is required under CI: set NINSHO_REDIS_CLUSTER_URL (.ci/run starts one)"
        ),
        _ => {
            eprintln!(
                "SKIPPED: Redis Cluster tests need NINSHO_REDIS_CLUSTER_URL \
                 (comma-separated node URLs; .ci/run starts a cluster)"
            );
            None
        }
    }
}

/// A fresh cluster connection (its own connections to every node).
async fn connect(nodes: &[String]) -> ClusterConnection {
    let client = ClusterClient::new(nodes.to_vec()).expect("cluster node URLs");
    client
        .get_async_connection()
        .await
        .unwrap_or_else(|e| panic!("can't reach the Redis Cluster at {nodes:?}: {e}"))
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

/// Runs `cmd` on the master owning `key`'s slot.
async fn on_slot_of<T: FromRedisValue>(
    conn: &mut ClusterConnection,
    key: &str,
    cmd: redis::Cmd,
) -> T {
    let route = Route::with_key(key, SlotAddr::Master);
    let value = conn
        .route_command(
            cmd,
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
        )
        .await
        .expect("a routed command");
    T::from_redis_value(value).expect("the reply's type")
}

/// Every key of the store on `prefix`, wherever in the cluster: a `SCAN`
/// of every master (the keys of a store all sit on one slot, but this
/// looks everywhere, to prove it).
async fn keys_everywhere(conn: &mut ClusterConnection, prefix: &str) -> Vec<(String, u16)> {
    let pattern = format!("{{{prefix}}}:*");
    let mut found = Vec::new();
    let masters: Value = conn
        .route_command(
            redis::cmd("CLUSTER").arg("SHARDS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .expect("CLUSTER SHARDS");
    for (host, port) in master_addresses(masters) {
        let mut cursor: u64 = 0;
        loop {
            let reply = conn
                .route_command(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port,
                    }),
                )
                .await
                .expect("SCAN");
            let (next, keys): (u64, Vec<String>) =
                FromRedisValue::from_redis_value(reply).expect("a SCAN reply");
            for key in keys {
                let slot = redis::cluster_routing::Slot::for_key(&key);
                found.push((key, slot_number(slot)));
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    found
}

/// The slot's number, from its `Debug` form (`Slot(n)`): the type keeps it
/// private.
fn slot_number(slot: redis::cluster_routing::Slot) -> u16 {
    let text = format!("{slot:?}");
    text.trim_start_matches("Slot(")
        .trim_end_matches(')')
        .parse()
        .expect("a slot number")
}

/// The (host, port) of every master in a `CLUSTER SHARDS` reply.
fn master_addresses(reply: Value) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    let Value::Array(shards) = reply else {
        panic!("CLUSTER SHARDS replied {reply:?}");
    };
    for shard in shards {
        let fields = pairs(shard);
        let Some(Value::Array(nodes)) = fields.get("nodes").cloned() else {
            continue;
        };
        for node in nodes {
            let node = pairs(node);
            let text = |name: &str| match node.get(name) {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                Some(Value::Int(i)) => i.to_string(),
                _ => String::new(),
            };
            if text("role") == "master" {
                let port = text("port").parse().expect("a port");
                out.push((text("ip"), port));
            }
        }
    }
    assert!(!out.is_empty(), "the cluster has masters");
    out
}

/// A RESP2 flat list or RESP3 map of name → value.
fn pairs(value: Value) -> std::collections::HashMap<String, Value> {
    let items: Vec<(Value, Value)> = match value {
        Value::Map(map) => map,
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            out
        }
        other => panic!("expected a map, got {other:?}"),
    };
    items
        .into_iter()
        .filter_map(|(k, v)| match k {
            Value::BulkString(b) => Some((String::from_utf8_lossy(&b).into_owned(), v)),
            Value::SimpleString(s) => Some((s, v)),
            _ => None,
        })
        .collect()
}

/// Deletes every key of the store on `prefix` (all on its slot's master).
async fn delete_prefix(conn: &mut ClusterConnection, prefix: &str) {
    let keys: Vec<String> = keys_everywhere(conn, prefix)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for key in keys {
        let _: i64 = on_slot_of(conn, &key, redis::cmd("DEL").arg(&key).clone()).await;
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

/// Runs `body` with the nodes and a prefix registry, then deletes every
/// registered prefix's keys, whether `body` passed or panicked.
async fn with_cluster<F, Fut>(body: F)
where
    F: FnOnce(Vec<String>, Prefixes) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(nodes) = nodes() else {
        return;
    };
    let mut conn = connect(&nodes).await;
    let prefixes = Prefixes::default();
    let outcome = tokio::spawn(body(nodes, prefixes.clone())).await;
    let used = prefixes.0.lock().unwrap().clone();
    for prefix in used {
        delete_prefix(&mut conn, &prefix).await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A store on `prefix` over its own cluster connection, accepting the test
/// cluster (which keeps nothing on disk); initialised when `initialise`.
async fn store_on(nodes: &[String], prefix: String, initialise: bool) -> RedisStore {
    let store = RedisStore::builder(prefix)
        .dangerously_allow_volatile_server()
        .dangerously_allow_evicting_server()
        .build_cluster(connect(nodes).await)
        .await
        .expect("a cluster store");
    if initialise {
        store.initialise().await.expect("initialise");
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_a_cluster() {
    with_cluster(|nodes, prefixes| async move {
        testkit::run_all(|| {
            let (nodes, prefix) = (nodes.clone(), prefixes.new_prefix());
            async move { Arc::new(store_on(&nodes, prefix, true).await) as Arc<dyn Store> }
        })
        .await;
    })
    .await;
}

/// Two app instances: two independent cluster connections on one prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_race_on_a_cluster() {
    with_cluster(|nodes, prefixes| async move {
        let prefix = prefixes.new_prefix();
        let a: Arc<dyn Store> = Arc::new(store_on(&nodes, prefix.clone(), true).await);
        let b: Arc<dyn Store> = Arc::new(store_on(&nodes, prefix, false).await);
        testkit::race_two_instances(a, b).await;
    })
    .await;
}

/// After the kit's journeys, every key of the store, found by scanning
/// every master, carries the prefix as its hash tag and sits on one slot:
/// no operation can span slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_key_of_a_store_sits_on_its_prefixs_slot() {
    with_cluster(|nodes, prefixes| async move {
        let prefix = prefixes.new_prefix();
        let a: Arc<dyn Store> = Arc::new(store_on(&nodes, prefix.clone(), true).await);
        let b: Arc<dyn Store> = Arc::new(store_on(&nodes, prefix.clone(), false).await);
        testkit::race_two_instances(a, b).await;
        let mut conn = connect(&nodes).await;
        let keys = keys_everywhere(&mut conn, &prefix).await;
        assert!(keys.len() > 10, "the races wrote keys: {keys:?}");
        let tag = format!("{{{prefix}}}:");
        let slots: std::collections::BTreeSet<u16> = keys.iter().map(|(_, s)| *s).collect();
        assert_eq!(slots.len(), 1, "the store's keys span slots {slots:?}");
        for (key, _) in &keys {
            assert!(key.starts_with(&tag), "{key} is not under {tag}");
        }
    })
    .await;
}

/// A master that lost its data (flushed, as a restart without persistence
/// leaves it) answers "not initialised" for the stores on its slots, never
/// "two-step sign-in is off".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_master_fails_closed() {
    with_cluster(|nodes, prefixes| async move {
        let prefix = prefixes.new_prefix();
        let store = store_on(&nodes, prefix.clone(), true).await;
        let account = AccountId::new("taro");
        assert!(store.account_record(&account).await.unwrap().is_none());
        // Wipe just this store's keys on its master (FLUSHALL would hit
        // the other tests sharing the cluster): the marker goes with them.
        let mut conn = connect(&nodes).await;
        delete_prefix(&mut conn, &prefix).await;
        assert_eq!(
            kind(store.account_record(&account).await.map(|_| ())),
            StoreErrorKind::NotInitialised
        );
        assert_eq!(
            kind(store.load(&Load::account(&account)).await.map(|_| ())),
            StoreErrorKind::NotInitialised
        );
        assert_eq!(
            kind(store.claim_owner("phone:+81901234567").await.map(|_| ())),
            StoreErrorKind::NotInitialised
        );
    })
    .await;
}

/// The kind of a store error (which must be one).
fn kind(result: Result<(), ninsho::store::StoreError>) -> StoreErrorKind {
    result.expect_err("a store error").kind()
}

/// A prefix Redis would not read as a hash tag is refused, before any
/// round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefix_that_is_no_hash_tag_is_refused() {
    let Some(nodes) = nodes() else {
        return;
    };
    for prefix in ["", "}app"] {
        let refused = RedisStore::builder(prefix)
            .dangerously_allow_volatile_server()
            .dangerously_allow_evicting_server()
            .build_cluster(connect(&nodes).await)
            .await;
        assert!(
            matches!(
                refused,
                Err(RedisConnectError::UnsuitableClusterPrefix { prefix: ref p }) if p == prefix
            ),
            "{prefix:?}: {refused:?}"
        );
    }
}

/// The persistence check reads the settings of the master holding the
/// store's slot: the test cluster keeps nothing on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_volatile_cluster_is_refused() {
    let Some(nodes) = nodes() else {
        return;
    };
    let refused = RedisStore::builder(unique_prefix())
        .build_cluster(connect(&nodes).await)
        .await;
    assert!(
        matches!(refused, Err(RedisConnectError::VolatileServer)),
        "{refused:?}"
    );
}
