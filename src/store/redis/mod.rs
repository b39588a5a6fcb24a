//! The Redis store adapter (feature `redis`): see [`RedisStore`].
//!
//! The Lua scripts sit beside this file, one per atomic operation.

mod step;

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use ::redis::{
    Client, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, Script,
    ServerErrorKind, Value,
};
use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use super::{
    AccountCommit, AccountStore, ChallengeStore, ClaimChanges, DeviceStore, LimitStore, PurgeStore,
    Purged, StoreError, VerificationStore, WindowCount,
};

use crate::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, DeviceId, DeviceRecord, FailureRecord,
    VerificationId, VerificationRecord,
};

static INSERT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("insert.lua")));
static REPLACE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("replace.lua")));
static PURGE_SCAN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("purge_scan.lua")));
static HIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("hit.lua")));
static REPLACE_FAILURES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("replace_failures.lua")));
static DEVICE_INSERT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("device_insert.lua")));
static DEVICE_REPLACE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("device_replace.lua")));
static DEVICES: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("devices.lua")));
static DEVICE_DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("device_delete.lua")));
static DEVICES_DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("devices_delete.lua")));
static CONTACTS_COMMIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("contacts_commit.lua")));
static CONTACTS_DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("contacts_delete.lua")));

/// How long a challenge stays readable after its `expires_at`, by default.
const DEFAULT_RETENTION: Duration = Duration::hours(24);

/// Keys one `SCAN` batch asks for, and so about as many as one purge script
/// checks, so no single script holds the server for long.
const PURGE_BATCH: u32 = 500;

/// The longest key lifetime set, in milliseconds (2⁵³ − 1, which Lua's
/// doubles and Redis's expiry arithmetic both hold exactly).
const MAX_TTL_MS: i64 = (1 << 53) - 1;

/// Extra lifetime of a counter key beyond its window end, so that a test
/// clock running slower than the server's never loses a live window.
const COUNTER_GRACE_MS: i64 = 1_000;

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_MILLI: i128 = 1_000_000;

/// A [`Store`](super::Store) in Redis, shared safely by any number of app
/// instances.
///
/// Every method is **one atomic round trip**: a Lua script (sent as
/// `EVALSHA`, falling back to `SCRIPT LOAD` and `EVALSHA` once when the
/// server does not know it yet) or a single command. Redis runs a script
/// without interleaving, so each method is atomic across every app instance
/// sharing the server. That includes the two calls of a journey step:
/// [`load`](super::StepStore::load) is one `load.lua`, and
/// [`commit`](super::StepStore::commit) one `commit.lua` that checks every
/// condition and writes every part of the step (see the tables below).
///
/// Challenges are JSON in a hash beside their version; they expire natively
/// [`retention`](Self::with_retention) after their `expires_at` (24 hours
/// by default), so late attempts are told "expired" rather than "unknown".
/// Rate-limit counters expire at the end of their window; failure runs
/// live until cleared (see [`PurgeStore`] for why).
///
/// Trusted devices and combined verifications expire like challenges:
/// `retention` after their `expires_at`. Native expiry follows the
/// server's clock; [`purge`](PurgeStore::purge) deletes exactly what
/// expired by the cut-off it is given, by a `SCAN` of each kind's keys
/// checked in scripts of one batch each (about 500 keys), so a large
/// backlog never holds the server for long. No index is kept beside the
/// records, so nothing grows when purge is never called: native expiry
/// alone bounds the data. Records Redis already dropped are not counted.
/// Each
/// account's set of device ids lives at least as long
/// as its longest-lived device and is trimmed of ids whose device Redis
/// dropped whenever the devices are listed. Account records (which hold the
/// recovery codes and the security epoch) and contact claims have no
/// expiry: they live until deleted.
///
/// # Setting up, and data loss
///
/// Redis keeps data in memory; what survives a restart depends on the
/// server's persistence (RDB snapshots, `save`, or the append-only file,
/// `appendonly`). Losing ninsho's records is not harmless: an account whose
/// record is gone reads as an account that never turned on two-step
/// sign-in. Two guards stand against that:
///
/// - **The connect check.** [`connect`](Self::connect) and the
///   [builder](Self::builder) ask the server `CONFIG GET save` and
///   `CONFIG GET appendonly`. When both say nothing is written to disk
///   (`save` empty, `appendonly no`), they refuse with
///   [`RedisConnectError::VolatileServer`], unless the host opted in with
///   [`RedisStoreBuilder::dangerously_allow_volatile_server`]. In the
///   same round trip they read `maxmemory-policy`: an `allkeys-*` policy
///   may evict one account's record and keep everything else, the marker
///   included, which no marker can catch, so it is refused with
///   [`RedisConnectError::EvictingServer`] unless the host opted in with
///   [`RedisStoreBuilder::dangerously_allow_evicting_server`]. A server
///   that refuses `CONFIG` (managed Redis services often do; renamed or
///   forbidden by ACL) is accepted without a word: its settings can't be
///   seen from here, and the marker below still guards against a wipe.
/// - **The initialisation marker.** The key `{prefix}:meta:initialised` is
///   written only by [`initialise`](Self::initialise).
///   [`load`](super::StepStore::load),
///   [`account_record`](AccountStore::account_record) and
///   [`claim_owner`](AccountStore::claim_owner) check it in the same
///   script or command that reads the records, and
///   [`commit`](super::StepStore::commit) before it writes anything; they
///   fail with
///   [`StoreErrorKind::NotInitialised`](super::StoreErrorKind::NotInitialised)
///   when it is gone. A flushed or restarted-empty server therefore answers
///   errors, never "two-step sign-in is off".
///
/// Call [`initialise`](Self::initialise) once, on purpose, when the store
/// is first deployed, and again only after an operator has dealt with a
/// data loss (restored a backup, or accepted that every account's second
/// factor is gone). Never call it on every start: that would re-arm a wiped
/// store silently and defeat the marker.
///
/// # Keys
///
/// Every key starts with the store's prefix and a colon (on a cluster, the
/// prefix in braces: see [below](#redis-cluster)), so several hosts (or
/// test runs) can share one Redis. Choose prefixes so that none is
/// another followed by `:` and more (`app` and `app:limit` would overlap).
///
/// | key | type | fields |
/// |---|---|---|
/// | `{prefix}:challenge:{id}` | hash | `record` (JSON), `version`, `expires_ms`, `expires_s`, `expires_ns` |
/// | `{prefix}:limit:{key}` | hash | `count`, `resets_s`, `resets_ns` |
/// | `{prefix}:failures:{account}` | hash | `consecutive`, `last_s`, `last_ns` |
/// | `{prefix}:device:{len}:{account}:{id}` | hash | `record` (JSON), `version`, `expires_ms` |
/// | `{prefix}:devices:{account}` | set | the account's device ids |
/// | `{prefix}:contacts:{account}` | hash | `record` (JSON), `version` |
/// | `{prefix}:claim:{key}` | string | the account holding the claim key |
/// | `{prefix}:claims:{account}` | set | the claim keys the account holds |
/// | `{prefix}:verification:{id}` | hash | as a challenge's: `record` (JSON), `version`, `expires_ms`, `expires_s`, `expires_ns` |
/// | `{prefix}:meta:initialised` | string | `1`; written by [`initialise`](Self::initialise) only |
///
/// Rate-limit keys and account ids go into key names verbatim. Redis keys
/// are binary safe and the scripts receive them as `KEYS`, so no character
/// in them has a meaning (no globbing, no escaping, no injection). No two
/// accounts (or rate-limit keys) share a key, whatever characters they
/// hold, `:` included: where the name is the key's whole tail (after
/// `contacts:`, `devices:` and so on) distinct names give distinct keys, and
/// in device keys, where the device id follows the account, the account is
/// preceded by its length in bytes (`{len}`, decimal), so `a:b` with one id
/// can never be `a` with another. An operator's
/// `SCAN MATCH {prefix}:device:5:alice:*` therefore finds exactly alice's
/// devices (glob characters in a name still need escaping there).
///
/// | script | what it does, atomically |
/// |---|---|
/// | `insert.lua` / `replace.lua` | a challenge: insert if absent / compare-and-set on `version`, moving its key's expiry only when `expires_at` moved |
/// | `purge_scan.lua` | one `SCAN` batch of one kind's hashes (counters, devices, challenges or verifications): delete those whose window ended or that expired |
/// | `hit.lua` | one hit on a fixed-window counter |
/// | `replace_failures.lua` | compare-and-set an account's failure run |
/// | `device_insert.lua` | a device, only if absent; adds its id to the account's set and stretches the set's expiry |
/// | `device_replace.lua` | a device, compare-and-set on `version`, moving its expiry as `expires_at` moved |
/// | `devices.lua` | every record of the account's set, dropping ids whose device is gone |
/// | `device_delete.lua` | one device and its set entry; whether it existed |
/// | `devices_delete.lua` | every device of the set and the set; how many there were |
/// | `contacts_commit.lua` | a account record, compare-and-set on `version` (or insert if absent), with its claims: nothing written if a key to claim names another account; else the released keys the account holds deleted, the claimed ones set, the account's claim set kept in step |
/// | `contacts_delete.lua` | the record, every claim key of the account's claim set that still names it, and the set |
/// | `load.lua` | checks the marker, then reads the hashes it is given: an account record, a failure run, a device, a challenge ([`load`](super::StepStore::load), and [`account_record`](AccountStore::account_record) with the record alone) |
/// | `commit.lua` | a journey step: checks the marker, works out its counter hits (stopping at the first past its max), checks the failure run, the challenge's version or absence, the device's absence, the version of a record the step was decided on, the record's version and claims, then writes them all as the part scripts above would |
///
/// Combined verifications go through the challenge scripts (`insert.lua`,
/// `replace.lua`) on their own keys: the same records-with-expiry
/// operations.
///
/// Reading a challenge, one device or a verification is one `HGET`, a
/// claim's owner one `MGET` of the marker and the claim key; deleting a failure run one `DEL`.
///
/// # Redis Cluster
///
/// [`RedisStoreBuilder::connect_cluster`] and
/// [`build_cluster`](RedisStoreBuilder::build_cluster) put the store on a
/// cluster. There every key name begins with the prefix as a hash tag,
/// `{prefix}:` in place of `prefix:` in the table above, so all of one
/// store's keys share one slot: every script finds its keys together, and
/// the store keeps on a cluster every guarantee it has on one server (each
/// method one atomic script, the marker checked in it). The purge's `SCAN`
/// and the connect checks' `CONFIG GET` go to the master owning that slot.
/// The store therefore lives on one master (and its replicas): a cluster
/// runs it, a managed service that only offers cluster mode included, but
/// does not spread one store over several masters. Several stores (one
/// per tenant or per host, each with its own prefix) land on different
/// slots.
///
/// On one server the keys are as in the table: some scripts build keys
/// from stored ids (the device listing and deleting
/// scripts, `contacts_delete.lua`), and a journey step's keys span several
/// accounts' and contacts' names, which one server allows. `load.lua` and
/// `commit.lua` get every key they touch from the caller.
///
/// # Time
///
/// Times are stored as whole Unix seconds plus a nanosecond part, so nothing
/// is rounded: `resets_at` comes back exactly as computed, and the purge
/// cut-off is exact to the nanosecond for challenges, verifications and
/// counters. Records keep every field at full precision in their JSON.
///
/// Native expiry is set as a **duration from the write** (`PEXPIRE`), not
/// as an instant (`PEXPIREAT`): record times come from the injected
/// [`Clock`](crate::Clock), which need not agree with the Redis server's
/// clock (a test's manual clock, or a skewed host), and an instant in the
/// server's past would delete the key at once. A challenge or a device
/// lives `expires_at - created_at + retention` from its insert; a replace
/// moves that deadline by exactly as much as `expires_at` moved. A counter
/// lives until its window ends, plus one second. Expiry only collects garbage:
/// every decision is taken on the stored times.
///
/// # Errors
///
/// While the server is unreachable, or when a reply times out (500 ms by
/// default in the [`ConnectionManager`], which reconnects by itself),
/// methods return [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable);
/// so do cluster-down, loading, `TRYAGAIN` and read-only-replica replies. A
/// write whose reply timed out may or may not have happened; the flows'
/// compare-and-set makes the retry safe. Unexpected replies (a key of the
/// wrong type, a record that is not valid JSON) are
/// [`StoreErrorKind::Other`](super::StoreErrorKind::Other). The Redis or
/// JSON error is always the [`source`](std::error::Error::source).
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
///
/// use ninsho::store::{RedisStore, Store};
///
/// # async fn run() -> Result<(), ninsho::store::StoreError> {
/// // Refused if the server keeps nothing on disk.
/// let store = RedisStore::connect("redis://127.0.0.1:6379/", "myapp:2fa")
///     .await?
///     .with_retention(time::Duration::hours(6));
/// let store: Arc<dyn Store> = Arc::new(store);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
///
/// Once, by hand or from a deployment tool, when the store is first set up
/// (not at every start):
///
/// ```no_run
/// # use ninsho::store::RedisStore;
/// # async fn run() -> Result<(), ninsho::store::StoreError> {
/// RedisStore::connect("redis://127.0.0.1:6379/", "myapp:2fa")
///     .await?
///     .initialise()
///     .await?;
/// # Ok(())
/// # }
/// ```
///
/// With a connection manager the host already has (its own timeouts and
/// retries):
///
/// ```no_run
/// use redis::aio::{ConnectionManager, ConnectionManagerConfig};
/// use ninsho::store::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
/// let config = ConnectionManagerConfig::new()
///     .set_response_timeout(Some(std::time::Duration::from_secs(1)));
/// let manager = ConnectionManager::new_with_config(client, config).await?;
/// let store = RedisStore::builder("myapp:2fa").build(manager).await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: String,
    /// What every key starts with: the prefix, or on a cluster the prefix
    /// as a hash tag (`{prefix}`).
    base: String,
    retention: Duration,
}

/// The connection a [`RedisStore`] talks through: one server's
/// [`ConnectionManager`], or a cluster's [`ClusterConnection`], which
/// routes each command to the master owning its keys' slot.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Runs `cmd`, which names no key, on the server holding the store's
    /// keys: on a cluster, the master owning the slot of `key` (any key of
    /// the store: they share one slot).
    async fn on_store_node<T: FromRedisValue>(
        &mut self,
        cmd: Cmd,
        key: &str,
    ) -> Result<T, RedisError> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => {
                let route = Route::with_key(key, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let value = c.route_command(cmd, routing).await?;
                T::from_redis_value(value).map_err(Into::into)
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    // The manager's `Debug` shows the connection info; keep credentials out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`]: from [`RedisStore::builder`], finished by
/// [`connect`](Self::connect) (a URL) or [`build`](Self::build) (a
/// connection manager of your own). Both check the server's persistence
/// first.
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    prefix: String,
    allow_volatile: bool,
    allow_evicting: bool,
}

impl RedisStoreBuilder {
    /// Accepts a server that keeps nothing on disk (`save` empty and
    /// `appendonly no`), which the store otherwise refuses.
    ///
    /// **Dangerous**: such a server forgets every record when it restarts,
    /// is restarted by its host or runs out of memory with an eviction
    /// policy. Accounts' records (which say that two-step sign-in is on and
    /// hold the recovery codes), trusted devices and failure runs all go at
    /// once; the initialisation marker goes with them, so the store then
    /// answers [`NotInitialised`](super::StoreErrorKind::NotInitialised)
    /// until someone initialises it again, and whoever does so turns every
    /// account's second factor off. Fit for tests, demos and data that may
    /// be lost; for anything else, turn on RDB snapshots or the append-only
    /// file on the server instead.
    pub fn dangerously_allow_volatile_server(mut self) -> Self {
        self.allow_volatile = true;
        self
    }

    /// Accepts a server whose `maxmemory-policy` evicts any key when memory
    /// runs short (`allkeys-lru`, `allkeys-lfu`, `allkeys-random`), which
    /// the store otherwise refuses.
    ///
    /// **Dangerous**: such a server may drop an account's record (which
    /// says that two-step sign-in is on) while keeping the initialisation
    /// marker, and that account then reads as one that never turned it on;
    /// it may drop failure runs (fresh guesses for an attacker) and send
    /// counters. Give ninsho a server (or a database of its own on one)
    /// with `noeviction`, or a `volatile-*` policy, which evicts only keys
    /// with a time to live: challenges, devices and counters, never
    /// accounts, claims, failure runs or the marker (an evicted counter
    /// does forget sends, so size `maxmemory` so it is never reached).
    pub fn dangerously_allow_evicting_server(mut self) -> Self {
        self.allow_evicting = true;
        self
    }

    /// Connects to the Redis at `url` (`redis://[user:password@]host:port/db`)
    /// with the connection manager's default retries and timeouts, then
    /// [builds](Self::build) the store on that connection.
    ///
    /// # Errors
    /// [`RedisConnectError::Store`] of kind
    /// [`Unavailable`](super::StoreErrorKind::Unavailable) when the server
    /// can't be reached (after the manager's retries), of kind
    /// [`Other`](super::StoreErrorKind::Other) for a malformed URL or a
    /// refused login; [`RedisConnectError::VolatileServer`] as
    /// [`build`](Self::build).
    pub async fn connect(self, url: &str) -> Result<RedisStore, RedisConnectError> {
        let client = Client::open(url).map_err(map_redis)?;
        let manager = ConnectionManager::new(client).await.map_err(map_redis)?;
        self.build(manager).await
    }

    /// The store on `manager`, after one round trip that reads the
    /// server's `save`, `appendonly` and `maxmemory-policy` settings (none
    /// when the host accepted both a
    /// [volatile](Self::dangerously_allow_volatile_server) and an
    /// [evicting](Self::dangerously_allow_evicting_server) server).
    ///
    /// A server that refuses `CONFIG` (an error reply: an unknown or
    /// renamed command, an ACL without the permission) is accepted, as is
    /// one whose reply names neither setting: their persistence can't be
    /// seen, and the initialisation marker still guards against a loss.
    ///
    /// # Errors
    /// [`RedisConnectError::VolatileServer`] when the server keeps nothing
    /// on disk and the host did not accept that;
    /// [`RedisConnectError::EvictingServer`] when its `maxmemory-policy`
    /// may evict any key and the host did not accept that;
    /// [`RedisConnectError::Store`] of kind
    /// [`Unavailable`](super::StoreErrorKind::Unavailable) when the server
    /// can't be reached or is still loading its data.
    pub async fn build(self, manager: ConnectionManager) -> Result<RedisStore, RedisConnectError> {
        let base = self.prefix.clone();
        self.finish(Conn::Single(manager), base).await
    }

    /// Connects to the Redis Cluster that `nodes` belong to (one or more
    /// `redis://host:port/` URLs; the rest of the cluster is found from
    /// them), then [builds](Self::build_cluster) the store on it.
    ///
    /// # Errors
    /// As [`connect`](Self::connect), and
    /// [`RedisConnectError::UnsuitableClusterPrefix`] as
    /// [`build_cluster`](Self::build_cluster).
    pub async fn connect_cluster(self, nodes: &[&str]) -> Result<RedisStore, RedisConnectError> {
        let client = ClusterClient::new(nodes.to_vec()).map_err(map_redis)?;
        let connection = client.get_async_connection().await.map_err(map_redis)?;
        self.build_cluster(connection).await
    }

    /// The store on a Redis Cluster `connection` (a
    /// [`ClusterClient`]'s, with your own timeouts and retries).
    ///
    /// Every key carries the prefix as its hash tag (`{prefix}:…`), so all
    /// of the store's keys share one slot: every script keeps its keys
    /// together, and the store has on a cluster exactly the guarantees it
    /// has on one server. It lives on the master owning that slot (with
    /// that master's replicas): a cluster runs it, but does not spread it
    /// over its masters. To spread several hosts' (or tenants') data, give
    /// each a store of its own prefix. The persistence and eviction checks
    /// read that master's settings.
    ///
    /// # Errors
    /// [`RedisConnectError::UnsuitableClusterPrefix`] when the prefix is
    /// empty or starts with `}`: Redis would then see no hash tag, and the
    /// keys would scatter over slots; otherwise as [`build`](Self::build).
    pub async fn build_cluster(
        self,
        connection: ClusterConnection,
    ) -> Result<RedisStore, RedisConnectError> {
        if self.prefix.is_empty() || self.prefix.starts_with('}') {
            return Err(RedisConnectError::UnsuitableClusterPrefix {
                prefix: self.prefix,
            });
        }
        let base = format!("{{{}}}", self.prefix);
        self.finish(Conn::Cluster(connection), base).await
    }

    /// The store on `conn` with keys under `base`, once the server's
    /// settings pass the checks the host did not waive.
    async fn finish(self, conn: Conn, base: String) -> Result<RedisStore, RedisConnectError> {
        let store = RedisStore {
            conn,
            prefix: self.prefix,
            base,
            retention: DEFAULT_RETENTION,
        };
        if self.allow_volatile && self.allow_evicting {
            return Ok(store);
        }
        let settings = settings(&mut store.conn.clone(), &store.marker_key()).await?;
        if !self.allow_volatile && settings.keeps_nothing() {
            return Err(RedisConnectError::VolatileServer);
        }
        if !self.allow_evicting
            && let Some(policy) = settings.evicts_any_key()
        {
            return Err(RedisConnectError::EvictingServer { policy });
        }
        Ok(store)
    }
}

/// Why a [`RedisStore`] could not be built.
///
/// Converts into a [`StoreError`] (a volatile server becomes one of kind
/// [`Other`](super::StoreErrorKind::Other) with this error as its source),
/// so `?` works in functions that return either.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConnectError {
    /// The server could not be reached, the URL is malformed or the login
    /// was refused: the store error says which by its kind.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server keeps nothing on disk (`save` is empty and `appendonly`
    /// is `no`), and the host did not call
    /// [`dangerously_allow_volatile_server`](RedisStoreBuilder::dangerously_allow_volatile_server).
    #[error(
        "the Redis server keeps nothing on disk (save is empty, appendonly is no): a restart \
         would erase every account's two-step settings; turn on RDB or AOF persistence"
    )]
    VolatileServer,
    /// The server's `maxmemory-policy` (named here) may evict any key when
    /// memory runs short, an account's record included, and the host did
    /// not call
    /// [`dangerously_allow_evicting_server`](RedisStoreBuilder::dangerously_allow_evicting_server).
    #[error(
        "the Redis server's maxmemory-policy is {policy}: it may evict an account's record and \
         read it as two-step sign-in off; use noeviction or a volatile-* policy"
    )]
    EvictingServer {
        /// The server's policy, as it reported it.
        policy: String,
    },
    /// A cluster store's prefix is empty or starts with `}`: as a hash tag
    /// (`{prefix}`) Redis would ignore it, and the store's keys would
    /// scatter over slots that no script can span. Choose another prefix.
    #[error(
        "the prefix {prefix:?} can't be a Redis Cluster hash tag (empty, or starting with '}}'); \
         choose a non-empty prefix that does not start with '}}'"
    )]
    UnsuitableClusterPrefix {
        /// The prefix given.
        prefix: String,
    },
}

impl From<RedisConnectError> for StoreError {
    fn from(error: RedisConnectError) -> Self {
        match error {
            RedisConnectError::Store(error) => error,
            refused @ (RedisConnectError::VolatileServer
            | RedisConnectError::EvictingServer { .. }
            | RedisConnectError::UnsuitableClusterPrefix { .. }) => StoreError::other(refused),
        }
    }
}

/// What the server says of the settings the store checks at connect;
/// `None` where it would not say (it refuses `CONFIG`, or its reply names
/// no such setting).
#[derive(Debug, Default)]
struct Settings {
    save: Option<String>,
    appendonly: Option<String>,
    maxmemory_policy: Option<String>,
}

impl Settings {
    /// Whether the server keeps nothing on disk: `save` empty and
    /// `appendonly no`. `false` when it did not say.
    fn keeps_nothing(&self) -> bool {
        self.save.as_deref().is_some_and(|v| v.trim().is_empty())
            && self
                .appendonly
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case("no"))
    }

    /// The policy, when the server may evict any key (`allkeys-*`), an
    /// account's record included. `None` for `noeviction`, the
    /// `volatile-*` policies (only keys with a time to live, which account
    /// records, claims, failure runs and the marker never have) and when it
    /// did not say.
    fn evicts_any_key(&self) -> Option<String> {
        self.maxmemory_policy
            .as_deref()
            .filter(|p| p.trim().to_ascii_lowercase().starts_with("allkeys-"))
            .map(str::to_owned)
    }
}

/// Reads `save`, `appendonly` and `maxmemory-policy` in one round trip (a
/// pipeline of `CONFIG GET`s, which every Redis version understands). A
/// server that refuses `CONFIG` says nothing: everything `None`.
/// On a cluster, three `CONFIG GET`s on the master holding `key` (the
/// store's slot).
async fn settings(conn: &mut Conn, key: &str) -> Result<Settings, StoreError> {
    let get = |name: &str| {
        let mut cmd = ::redis::cmd("CONFIG");
        cmd.arg("GET").arg(name);
        cmd
    };
    let reply: Result<(Value, Value, Value), RedisError> = match conn {
        Conn::Single(c) => {
            ::redis::pipe()
                .add_command(get("save"))
                .add_command(get("appendonly"))
                .add_command(get("maxmemory-policy"))
                .query_async(c)
                .await
        }
        Conn::Cluster(_) => {
            async {
                Ok((
                    conn.on_store_node(get("save"), key).await?,
                    conn.on_store_node(get("appendonly"), key).await?,
                    conn.on_store_node(get("maxmemory-policy"), key).await?,
                ))
            }
            .await
        }
    };
    let (save, appendonly, policy) = match reply {
        Ok(reply) => reply,
        Err(error) if refused(&error) => return Ok(Settings::default()),
        Err(error) => return Err(map_redis(error)),
    };
    let setting = |value: Value, name: &str| -> Option<String> {
        HashMap::<String, String>::from_redis_value(value)
            .ok()?
            .remove(name)
    };
    Ok(Settings {
        save: setting(save, "save"),
        appendonly: setting(appendonly, "appendonly"),
        maxmemory_policy: setting(policy, "maxmemory-policy"),
    })
}

/// Whether the server answered a command with a refusal of its own (not
/// an outage): an error reply such as `ERR unknown command` or `NOPERM`.
fn refused(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Extension
            | ErrorKind::Server(ServerErrorKind::ResponseError | ServerErrorKind::NoPerm)
    )
}

impl RedisStore {
    /// A builder for a store with every key under `prefix` (a colon is
    /// added after it): use it to bring a connection manager of your own or
    /// to accept a server without persistence.
    pub fn builder(prefix: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            prefix: prefix.into(),
            allow_volatile: false,
            allow_evicting: false,
        }
    }

    /// Connects to the Redis at `url` (`redis://[user:password@]host:port/db`)
    /// with the connection manager's default retries and timeouts, every key
    /// under `prefix`, after checking that the server keeps its data on
    /// disk (see the [type's docs](Self#setting-up-and-data-loss)).
    ///
    /// The same as `RedisStore::builder(prefix).connect(url)`.
    ///
    /// # Errors
    /// As [`RedisStoreBuilder::connect`].
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, RedisConnectError> {
        Self::builder(prefix).connect(url).await
    }

    /// Writes the initialisation marker (`{prefix}:meta:initialised`), so
    /// that [`load`](super::StepStore::load) and
    /// [`account_record`](AccountStore::account_record) answer again.
    ///
    /// A deliberate act, made once when the store is first deployed, and
    /// again only after an operator has dealt with a data loss: restored
    /// the data, or accepted that the accounts' records are gone (every
    /// account then reads as new, with two-step sign-in off). **Never call
    /// it on every start**: a server that came back empty would be marked
    /// as fine and the loss would go unnoticed. Calling it on a store that
    /// has the marker changes nothing.
    ///
    /// # Errors
    /// Backend failures.
    pub async fn initialise(&self) -> Result<(), StoreError> {
        let () = ::redis::cmd("SET")
            .arg(self.marker_key())
            .arg("1")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        Ok(())
    }

    /// Keeps challenges and trusted devices readable for `retention` after
    /// their `expires_at` before Redis drops them (24 hours by default;
    /// negative counts as zero).
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention.max(Duration::ZERO);
        self
    }

    /// The key prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How long challenges and devices stay after their `expires_at`.
    #[must_use]
    pub fn retention(&self) -> Duration {
        self.retention
    }

    fn marker_key(&self) -> String {
        format!("{}:meta:initialised", self.base)
    }

    fn challenge_key(&self, id: &ChallengeId) -> String {
        format!("{}:challenge:{id}", self.base)
    }

    fn limit_key(&self, key: &str) -> String {
        format!("{}:limit:{key}", self.base)
    }

    fn failures_key(&self, account: &AccountId) -> String {
        format!("{}:failures:{}", self.base, account.0)
    }

    /// `{prefix}:device:{len}:{account}:`, the start of every device key of
    /// the account. The account is length-prefixed because the id follows
    /// it (see the module docs on keys).
    fn device_key_prefix(&self, account: &AccountId) -> String {
        format!("{}:device:{}:{}:", self.base, account.0.len(), account.0)
    }

    fn device_key(&self, account: &AccountId, id: &DeviceId) -> String {
        format!("{}{id}", self.device_key_prefix(account))
    }

    fn devices_key(&self, account: &AccountId) -> String {
        format!("{}:devices:{}", self.base, account.0)
    }

    fn contacts_key(&self, account: &AccountId) -> String {
        format!("{}:contacts:{}", self.base, account.0)
    }

    fn claims_key(&self, account: &AccountId) -> String {
        format!("{}:claims:{}", self.base, account.0)
    }

    fn claim_key_prefix(&self) -> String {
        format!("{}:claim:", self.base)
    }

    fn claim_key(&self, key: &str) -> String {
        format!("{}:claim:{key}", self.base)
    }

    fn verification_key(&self, id: &VerificationId) -> String {
        format!("{}:verification:{id}", self.base)
    }

    /// The record (JSON) in the `record` field of the hash at `key`, if any.
    async fn fetch_record<T: DeserializeOwned>(
        &self,
        key: String,
    ) -> Result<Option<T>, StoreError> {
        let json: Option<Vec<u8>> = ::redis::cmd("HGET")
            .arg(key)
            .arg("record")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        json.map(|json| serde_json::from_slice(&json).map_err(StoreError::other))
            .transpose()
    }

    /// Runs `insert.lua`: `record` into the hash at `key` if it is absent;
    /// otherwise a conflict.
    async fn insert_expiring<T: Expiring>(
        &self,
        key: String,
        record: &T,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(StoreError::other)?;
        let expires_at = record.expires_at();
        let (secs, nanos) = split(expires_at);
        // Lives `retention` past `expires_at`, counted from the record's
        // own creation time (see the module docs on time).
        let lifetime = (expires_at - record.created_at()).max(Duration::ZERO);
        let ttl = ttl_ms(lifetime.saturating_add(self.retention));
        let stored: i64 = INSERT
            .key(key)
            .arg(json)
            .arg(record.version())
            .arg(whole_ms(expires_at))
            .arg(secs)
            .arg(nanos)
            .arg(ttl)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        written(stored)
    }

    /// Runs `replace.lua`: `record` into the hash at `key` if its stored
    /// version is `expected_version`, moving its expiry as far as
    /// `expires_at` moved; otherwise a conflict.
    async fn replace_expiring<T: Expiring>(
        &self,
        key: String,
        record: &T,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(StoreError::other)?;
        let expires_at = record.expires_at();
        let (secs, nanos) = split(expires_at);
        let replaced: i64 = REPLACE
            .key(key)
            .arg(expected_version)
            .arg(json)
            .arg(record.version())
            .arg(whole_ms(expires_at))
            .arg(secs)
            .arg(nanos)
            .arg(MAX_TTL_MS)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        written(replaced)
    }

    /// Deletes the records of one kind whose lifetime ended before
    /// `before`: a `SCAN` of the hashes under `{prefix}{tail}`, each batch
    /// checked and deleted by one `purge_scan.lua` (`kind` says which
    /// fields decide). Returns how many it deleted.
    async fn purge_scanned(
        &self,
        tail: &str,
        kind: &str,
        before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let (secs, nanos) = split(before);
        let mut conn = self.conn.clone();
        let marker = self.marker_key();
        let pattern = format!("{}{tail}", glob_escape(&self.base));
        let mut deleted = 0u64;
        let mut cursor: u64 = 0;
        loop {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(PURGE_BATCH)
                .arg("TYPE")
                .arg("hash");
            let (next, keys): (u64, Vec<Vec<u8>>) =
                conn.on_store_node(scan, &marker).await.map_err(map_redis)?;
            if !keys.is_empty() {
                let mut call = PURGE_SCAN.prepare_invoke();
                for key in &keys {
                    call.key(key);
                }
                let n: u64 = call
                    .arg(secs)
                    .arg(nanos)
                    .arg(whole_ms(before))
                    .arg(kind)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(map_redis)?;
                deleted = deleted.saturating_add(n);
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// A record kept in a hash with its expiry beside it, through
/// `insert.lua` and `replace.lua`, and purged by `purge_scan.lua`:
/// challenges and combined verifications, each on its own keys.
trait Expiring: Serialize {
    /// The version the compare-and-set checks.
    fn version(&self) -> u64;
    /// When it was created, the start of its key's lifetime.
    fn created_at(&self) -> OffsetDateTime;
    /// When it expires.
    fn expires_at(&self) -> OffsetDateTime;
}

impl Expiring for ChallengeRecord {
    fn version(&self) -> u64 {
        self.version
    }
    fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }
    fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

impl Expiring for VerificationRecord {
    fn version(&self) -> u64 {
        self.version
    }
    fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }
    fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

#[async_trait]
impl ChallengeStore for RedisStore {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.insert_expiring(self.challenge_key(&record.id), record)
            .await
    }

    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        self.fetch_record(self.challenge_key(id)).await
    }

    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let key = self.challenge_key(&record.id);
        self.replace_expiring(key, record, expected_version).await
    }
}

#[async_trait]
impl LimitStore for RedisStore {
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        let resets_at = now.saturating_add(window);
        let (now_secs, now_nanos) = split(now);
        let (end_secs, end_nanos) = split(resets_at);
        let ttl =
            ttl_ms((resets_at - now).saturating_add(Duration::milliseconds(COUNTER_GRACE_MS)));
        let (count, secs, nanos): (u64, i64, i64) = HIT
            .key(self.limit_key(key))
            .arg(now_secs)
            .arg(now_nanos)
            .arg(end_secs)
            .arg(end_nanos)
            .arg(ttl)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        Ok(WindowCount {
            count,
            resets_at: join(secs, nanos)?,
        })
    }

    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        let fields = |run: Option<FailureRecord>| {
            let (secs, nanos) = run.map_or((0, 0), |r| split(r.last_failure_at));
            (
                if run.is_some() { "1" } else { "0" },
                run.map_or(0, |r| r.consecutive),
                secs,
                nanos,
            )
        };
        let (had, old_n, old_s, old_ns) = fields(expected);
        let (has, new_n, new_s, new_ns) = fields(next);
        let replaced: i64 = REPLACE_FAILURES
            .key(self.failures_key(account))
            .arg(had)
            .arg(old_n)
            .arg(old_s)
            .arg(old_ns)
            .arg(has)
            .arg(new_n)
            .arg(new_s)
            .arg(new_ns)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        if replaced == 1 {
            Ok(())
        } else {
            Err(StoreError::conflict())
        }
    }

    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        let (consecutive, secs, nanos): (Option<u32>, Option<i64>, Option<i64>) =
            ::redis::cmd("HMGET")
                .arg(self.failures_key(account))
                .arg("consecutive")
                .arg("last_s")
                .arg("last_ns")
                .query_async(&mut self.conn.clone())
                .await
                .map_err(map_redis)?;
        match (consecutive, secs, nanos) {
            (Some(consecutive), Some(secs), Some(nanos)) => Ok(Some(FailureRecord {
                consecutive,
                last_failure_at: join(secs, nanos)?,
            })),
            _ => Ok(None),
        }
    }

    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        let _deleted: i64 = ::redis::cmd("DEL")
            .arg(self.failures_key(account))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        Ok(())
    }
}

#[async_trait]
impl DeviceStore for RedisStore {
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(StoreError::other)?;
        // Lives `retention` past `expires_at`, counted from the record's own
        // creation time, as challenges do (see the module docs on time).
        let lifetime = (record.expires_at - record.created_at).max(Duration::ZERO);
        let ttl = ttl_ms(lifetime.saturating_add(self.retention));
        let stored: i64 = DEVICE_INSERT
            .key(self.device_key(&record.account, &record.id))
            .key(self.devices_key(&record.account))
            .arg(json)
            .arg(record.version)
            .arg(whole_ms(record.expires_at))
            .arg(ttl)
            .arg(record.id.to_string())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        written(stored)
    }

    async fn device(
        &self,
        account: &AccountId,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        self.fetch_record(self.device_key(account, id)).await
    }

    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        let records: Vec<Vec<u8>> = DEVICES
            .key(self.devices_key(account))
            .arg(self.device_key_prefix(account))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        records
            .iter()
            .map(|json| serde_json::from_slice(json).map_err(StoreError::other))
            .collect()
    }

    async fn replace_device(
        &self,
        record: &DeviceRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(StoreError::other)?;
        let replaced: i64 = DEVICE_REPLACE
            .key(self.device_key(&record.account, &record.id))
            .key(self.devices_key(&record.account))
            .arg(expected_version)
            .arg(json)
            .arg(record.version)
            .arg(whole_ms(record.expires_at))
            .arg(record.id.to_string())
            .arg(MAX_TTL_MS)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        written(replaced)
    }

    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError> {
        let deleted: i64 = DEVICE_DELETE
            .key(self.device_key(account, id))
            .key(self.devices_key(account))
            .arg(id.to_string())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        Ok(deleted > 0)
    }

    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        let deleted: u64 = DEVICES_DELETE
            .key(self.devices_key(account))
            .arg(self.device_key_prefix(account))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        Ok(deleted)
    }
}

#[async_trait]
impl AccountStore for RedisStore {
    /// One `load.lua`: the initialisation marker is checked with the read
    /// (`NotInitialised` when it is gone).
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.load_account_record(account).await
    }

    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        // The marker in the same command: a wiped store must not answer
        // "nobody holds this contact".
        let (marker, owner): (Option<String>, Option<String>) = ::redis::cmd("MGET")
            .arg(self.marker_key())
            .arg(self.claim_key(key))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        if marker.is_none() {
            return Err(StoreError::not_initialised());
        }
        Ok(owner.map(AccountId))
    }

    /// One script (`contacts_commit.lua`) that gets the record key, the
    /// account's claim set and every claim key as `KEYS`: Redis runs it
    /// without interleaving, so the version check, the claim checks and
    /// every write are one atomic step.
    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        let json = serde_json::to_string(book).map_err(StoreError::other)?;
        let mut invocation = CONTACTS_COMMIT.key(self.contacts_key(&book.account));
        invocation.key(self.claims_key(&book.account));
        for key in changes.claim.iter().chain(&changes.release) {
            invocation.key(self.claim_key(key));
        }
        invocation
            .arg(expected_version.map_or_else(String::new, |v| v.to_string()))
            .arg(json)
            .arg(book.version)
            .arg(&book.account.0)
            .arg(changes.claim.len());
        for key in changes.claim.iter().chain(&changes.release) {
            invocation.arg(key);
        }
        let (outcome, index): (i64, usize) = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        match outcome {
            0 => Ok(AccountCommit::Committed),
            1 => Err(StoreError::conflict()),
            2 => Ok(AccountCommit::Taken { index }),
            other => Err(StoreError::other(format!(
                "contacts_commit.lua replied {other}, not 0, 1 or 2"
            ))),
        }
    }

    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        let _done: i64 = CONTACTS_DELETE
            .key(self.contacts_key(account))
            .key(self.claims_key(account))
            .arg(self.claim_key_prefix())
            .arg(&account.0)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        Ok(())
    }
}

#[async_trait]
impl VerificationStore for RedisStore {
    async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError> {
        let key = self.verification_key(&record.id);
        self.insert_expiring(key, record).await
    }

    async fn verification(
        &self,
        id: &VerificationId,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        self.fetch_record(self.verification_key(id)).await
    }

    async fn replace_verification(
        &self,
        record: &VerificationRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let key = self.verification_key(&record.id);
        self.replace_expiring(key, record, expected_version).await
    }
}

/// A conditional write's reply: 1 when it landed, 0 when it lost.
fn written(reply: i64) -> Result<(), StoreError> {
    if reply == 1 {
        Ok(())
    } else {
        Err(StoreError::conflict())
    }
}

/// Maps a Redis error to the store's kinds: anything that says "the server
/// is not there right now" is `Unavailable`, the rest `Other`.
fn map_redis(error: RedisError) -> StoreError {
    let unavailable = error.is_io_error()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_cluster_error()
        || matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ReadOnly
                )
        );
    if unavailable {
        StoreError::unavailable(error)
    } else {
        StoreError::other(error)
    }
}

/// Whole seconds since the epoch (rounded down) and the nanoseconds past
/// them, `0..1_000_000_000`.
fn split(at: OffsetDateTime) -> (i64, i64) {
    let nanos = at.unix_timestamp_nanos();
    let secs = nanos.div_euclid(NANOS_PER_SECOND);
    let rest = nanos.rem_euclid(NANOS_PER_SECOND);
    // `OffsetDateTime` spans far less than ±2⁶³ seconds.
    (
        i64::try_from(secs).unwrap_or(i64::MAX),
        i64::try_from(rest).unwrap_or(0),
    )
}

/// The inverse of [`split`].
fn join(secs: i64, nanos: i64) -> Result<OffsetDateTime, StoreError> {
    let total = i128::from(secs) * NANOS_PER_SECOND + i128::from(nanos);
    OffsetDateTime::from_unix_timestamp_nanos(total).map_err(StoreError::other)
}

/// Whole milliseconds since the epoch, rounded down.
/// `text` with the characters `SCAN MATCH` treats as a pattern (`*`, `?`,
/// `[`, `]`, `\\`) escaped, so it matches only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn whole_ms(at: OffsetDateTime) -> i64 {
    let ms = at.unix_timestamp_nanos().div_euclid(NANOS_PER_MILLI);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A key lifetime in milliseconds: rounded up, at least 1 (Redis deletes a
/// key given zero or less) and at most [`MAX_TTL_MS`].
fn ttl_ms(lifetime: Duration) -> i64 {
    let nanos = lifetime.whole_nanoseconds();
    let ms = nanos.div_euclid(NANOS_PER_MILLI) + i128::from(nanos.rem_euclid(NANOS_PER_MILLI) != 0);
    i64::try_from(ms.clamp(1, i128::from(MAX_TTL_MS))).unwrap_or(MAX_TTL_MS)
}

#[async_trait]
impl PurgeStore for RedisStore {
    /// Every kind by a `SCAN` of its keys (`purge_scan.lua` per batch),
    /// after unlinking the sorted expiry indexes earlier versions kept
    /// (`{prefix}:challenges:by_expiry`, `{prefix}:verifications:by_expiry`). Records
    /// Redis already dropped by native expiry are not counted. A device is
    /// compared to the millisecond: one that expired less than a
    /// millisecond before the cut-off may stay until the next purge, or its
    /// native expiry.
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError> {
        // The sorted expiry indexes earlier versions kept are no longer
        // written: they go with the first purge.
        let legacy = [
            format!("{}:challenges:by_expiry", self.base),
            format!("{}:verifications:by_expiry", self.base),
        ];
        let mut unlink = ::redis::cmd("UNLINK");
        unlink.arg(&legacy[0]).arg(&legacy[1]);
        let _: i64 = self
            .conn
            .clone()
            .on_store_node(unlink, &self.marker_key())
            .await
            .map_err(map_redis)?;
        let challenges = self
            .purge_scanned(":challenge:*", "expiring", before)
            .await?;
        let verifications = self
            .purge_scanned(":verification:*", "expiring", before)
            .await?;
        let counters = self.purge_scanned(":limit:*", "limit", before).await?;
        let devices = self.purge_scanned(":device:*", "device", before).await?;
        Ok(Purged {
            challenges,
            verifications,
            counters,
            devices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(save: &str, appendonly: &str, policy: &str) -> Settings {
        Settings {
            save: Some(save.to_owned()),
            appendonly: Some(appendonly.to_owned()),
            maxmemory_policy: Some(policy.to_owned()),
        }
    }

    #[test]
    fn only_a_server_with_neither_snapshots_nor_aof_keeps_nothing() {
        assert!(said("", "no", "noeviction").keeps_nothing());
        assert!(said("  ", "NO", "noeviction").keeps_nothing());
        assert!(!said("3600 1", "no", "noeviction").keeps_nothing());
        assert!(!said("", "yes", "noeviction").keeps_nothing());
        assert!(!Settings::default().keeps_nothing());
    }

    #[test]
    fn only_allkeys_policies_evict_any_key() {
        for policy in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "ALLKEYS-LRU",
        ] {
            assert_eq!(
                said("3600 1", "yes", policy).evicts_any_key().as_deref(),
                Some(policy)
            );
        }
        for policy in [
            "noeviction",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ] {
            assert_eq!(said("3600 1", "yes", policy).evicts_any_key(), None);
        }
        assert_eq!(Settings::default().evicts_any_key(), None);
    }

    #[test]
    fn split_and_join_keep_every_nanosecond() {
        for nanos in [
            0_i128,
            1,
            -1,
            999_999_999,
            -1_000_000_000,
            1_763_683_200_123_456_789,
            -62_135_596_800_000_000_001,
        ] {
            let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            let (secs, rest) = split(at);
            assert!((0..1_000_000_000).contains(&rest));
            assert_eq!(join(secs, rest).unwrap(), at);
        }
    }

    #[test]
    fn whole_ms_rounds_down() {
        let at = |n| OffsetDateTime::from_unix_timestamp_nanos(n).unwrap();
        assert_eq!(whole_ms(at(1_999_999)), 1);
        assert_eq!(whole_ms(at(-1)), -1);
        assert_eq!(whole_ms(at(-1_000_000)), -1);
    }

    #[test]
    fn ttl_rounds_up_and_stays_in_range() {
        assert_eq!(ttl_ms(Duration::nanoseconds(1)), 1);
        assert_eq!(ttl_ms(Duration::milliseconds(1500)), 1500);
        assert_eq!(ttl_ms(Duration::nanoseconds(1_500_001)), 2);
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::seconds(-5)), 1);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS);
    }
}
