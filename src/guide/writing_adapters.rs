//! Writing adapters: your database behind the storage port, your provider
//! behind the gateway port.
//!
//! ninsho owns the rules; the host owns persistence and transport. Both
//! ports are small object-safe traits, held as `Arc<dyn …>`:
//!
//! - [`Store`] is every part trait together: [`ChallengeStore`],
//!   [`LimitStore`], [`DeviceStore`], [`AccountStore`],
//!   [`VerificationStore`] and [`StepStore`](crate::store::StepStore).
//!   Implement them and `Store` comes free.
//! - [`Gateway`] sends one [`Message`] by SMS, voice call or email.
//!
//! Two complete programs go with this page: `examples/custom_store.rs`
//! writes a store adapter from scratch, and `examples/custom_gateway.rs` a
//! gateway with its error mapping.
//!
//! # The store contract
//!
//! Every guarantee ninsho makes (a code verifies once, no wrong attempt is
//! lost, no limit is exceeded, a phone number has one owner) rests on the
//! store keeping one rule: **every method that changes state is one atomic
//! call.** The traits have no default bodies, so there is nothing to
//! inherit by accident; each method is one of these kinds.
//!
//! | kind | methods | contract |
//! |---|---|---|
//! | insert if absent | `insert_challenge`, `insert_device`, `insert_verification` | a record with that key already there → [`StoreError::conflict()`], and the stored record is left alone |
//! | compare-and-set | `replace_challenge`, `replace_device`, `replace_verification` | replace only if the stored `version` equals `expected_version`; otherwise, or if the record is gone → conflict, nothing written. The new record's `version` is already `expected_version + 1`: store it as given |
//! | compare-and-set on a value | `replace_failures` | replace (or, with `next` `None`, delete) the account's failure run only if the stored run equals `expected` field for field (`None`: only if there is none) → otherwise conflict, nothing written. Compare the instant exactly as you store it: a backend that keeps microseconds must compare the microseconds the way it truncated them on write |
//! | atomic increment | `hit` | read, add one and write back in one step, returning the new value; no increment is ever lost. `hit` keeps a fixed window: a counter that is absent, or whose `resets_at` is at or before `now`, restarts at 1 with `resets_at = now + window` |
//! | atomic commit | `commit_account` | in one step: compare-and-set the account's record (`None`: the account has no record yet), check that no *other* account holds a key to claim, then claim, release and write. A key held by another account is not an error: return [`AccountCommit::Taken`] and write nothing |
//! | journey step read | `load` | the account's record and failure run, a challenge and a device, in **one round trip** (one `SELECT` with joins, one script); may be stale like any read. A store that can lose its data checks its initialisation marker here and fails with [`NotInitialised`](crate::store::StoreErrorKind::NotInitialised) when it is gone |
//! | journey step write | `commit` | in **one atomic step** (one transaction, one script): a store that can lose its data first checks its initialisation marker (gone → [`NotInitialised`](crate::store::StoreErrorKind::NotInitialised), nothing written); charge the send counters in order, stopping with [`Committed::LimitReached`](crate::store::Committed::LimitReached) at the first over its max (those hits stay, nothing else is written); check every condition (failure run, challenge version or absence, device absence, the version of the record the step was decided on ([`RecordCheck`](crate::store::RecordCheck), read and not written; SQL stores read it with a share lock so it can't change before the commit), account record version and claims) → conflict or [`Committed::Taken`](crate::store::Committed::Taken) with nothing written; then write every part. `MemoryStore` is the reference |
//! | delete | `delete_device`, `delete_devices`, `delete_account`, `clear_failures` | idempotent; report exactly what went. `delete_account` also releases every claim of the account |
//! | purge | `purge` ([`PurgeStore`](crate::store::PurgeStore)) | delete every challenge, verification and device that expired before the cut-off and every counter whose window ended at or before it, and return the exact counts per kind (a store with native expiry still implements it); never accounts, claims or failure runs |
//! | read | everything else | may be stale: every decision that matters is re-checked by the compare-and-set that follows |
//!
//! **Errors.** The [`StoreErrorKind`] of an error steers the flows:
//!
//! - [`Conflict`](crate::store::StoreErrorKind::Conflict), made with
//!   [`StoreError::conflict()`], means *a conditional write lost* or *an
//!   insert found the record there*, and nothing else. The flows react by
//!   reading again and deciding again, so never return it for a backend
//!   failure.
//! - [`Unavailable`](crate::store::StoreErrorKind::Unavailable), with
//!   [`StoreError::unavailable`]: the backend could not be reached or timed
//!   out; worth retrying later.
//! - [`Other`](crate::store::StoreErrorKind::Other), with [`StoreError::other`]:
//!   anything else (a constraint you did not expect, a record that does not
//!   deserialize).
//!
//! Keep the backend's error as the source so it reaches the host's logs.
//! Both failure kinds surface as [`Error::Store`](crate::Error::Store), for
//! which [`Error::is_infrastructure`](crate::Error::is_infrastructure) is
//! true: nothing was verified or consumed.
//!
//! **Records.** They are plain serde types. The SQL adapters keep each one
//! as JSON in one column beside the few columns they query or compare (id,
//! version, expiry). Whatever you choose, every field must read back as
//! written, timestamps included, and integers exactly: an account record's
//! `incarnation` uses all 64 bits, so a JSON decoder that reads numbers as
//! doubles (Lua's `cjson`, JavaScript) corrupts it, and the conformance
//! kit's round trip fails. Keys (account ids, counter keys,
//! claim keys) are exact strings: case, spaces, separators and non-ASCII
//! text all count.
//!
//! **Expiry.** A record may be dropped some time after its `expires_at`,
//! not at it: the host chooses, by the cut-off it passes to
//! [`purge`](crate::store::PurgeStore::purge), how long expired challenges
//! stay so that late attempts are told "expired" rather than "unknown"
//! (the Redis adapter's native expiry keeps them 24 hours by default).
//!
//! # A store, method by method
//!
//! Two of the seven part traits over tables behind one lock. Each method
//! holds the lock from its read to its write, and that is the whole trick:
//! one atomic step per call. A database adapter gets the same from one
//! conditional statement, a transaction or a server-side script.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex, MutexGuard};
//!
//! use async_trait::async_trait;
//! use ninsho::model::{AccountId, ChallengeId, ChallengeRecord, FailureRecord};
//! use ninsho::store::{ChallengeStore, LimitStore, StoreError, WindowCount};
//! use time::{Duration, OffsetDateTime};
//!
//! #[derive(Debug, Default)]
//! struct TinyStore(Mutex<Tables>);
//!
//! #[derive(Debug, Default)]
//! struct Tables {
//!     challenges: HashMap<ChallengeId, ChallengeRecord>,
//!     counters: HashMap<String, WindowCount>,
//!     failures: HashMap<AccountId, FailureRecord>,
//! }
//!
//! impl TinyStore {
//!     fn tables(&self) -> Result<MutexGuard<'_, Tables>, StoreError> {
//!         // A backend failure, not a conflict: the flows retry conflicts.
//!         self.0.lock().map_err(|_| StoreError::other("store lock poisoned"))
//!     }
//! }
//!
//! #[async_trait]
//! impl ChallengeStore for TinyStore {
//!     async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
//!         let mut t = self.tables()?;
//!         if t.challenges.contains_key(&record.id) {
//!             return Err(StoreError::conflict());
//!         }
//!         t.challenges.insert(record.id, record.clone());
//!         Ok(())
//!     }
//!
//!     async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
//!         Ok(self.tables()?.challenges.get(id).cloned())
//!     }
//!
//!     async fn replace_challenge(
//!         &self,
//!         record: &ChallengeRecord,
//!         expected_version: u64,
//!     ) -> Result<(), StoreError> {
//!         let mut t = self.tables()?;
//!         match t.challenges.get_mut(&record.id) {
//!             Some(stored) if stored.version == expected_version => {
//!                 *stored = record.clone();
//!                 Ok(())
//!             }
//!             // Changed since it was read, or gone: this writer lost.
//!             _ => Err(StoreError::conflict()),
//!         }
//!     }
//! }
//!
//! #[async_trait]
//! impl LimitStore for TinyStore {
//!     async fn hit(
//!         &self,
//!         key: &str,
//!         window: Duration,
//!         now: OffsetDateTime,
//!     ) -> Result<WindowCount, StoreError> {
//!         let mut t = self.tables()?;
//!         let absent = WindowCount { count: 0, resets_at: now };
//!         let counter = t.counters.entry(key.to_owned()).or_insert(absent);
//!         if now >= counter.resets_at {
//!             // New, or its window ended: a new window starts with this hit.
//!             *counter = WindowCount { count: 0, resets_at: now.saturating_add(window) };
//!         }
//!         counter.count = counter.count.saturating_add(1);
//!         Ok(*counter)
//!     }
//!
//!     async fn replace_failures(
//!         &self,
//!         account: &AccountId,
//!         expected: Option<FailureRecord>,
//!         next: Option<FailureRecord>,
//!     ) -> Result<(), StoreError> {
//!         let mut t = self.tables()?;
//!         if t.failures.get(account).copied() != expected {
//!             return Err(StoreError::conflict());
//!         }
//!         match next {
//!             Some(run) => t.failures.insert(account.clone(), run),
//!             None => t.failures.remove(account),
//!         };
//!         Ok(())
//!     }
//!
//!     async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
//!         Ok(self.tables()?.failures.get(account).copied())
//!     }
//!
//!     async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
//!         self.tables()?.failures.remove(account);
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = TinyStore::default();
//! let t0 = OffsetDateTime::from_unix_timestamp(1_763_683_200).unwrap();
//!
//! // A fixed window that starts at the first hit and restarts at its end.
//! let window = Duration::minutes(10);
//! let key = "dest:+819012345678";
//! assert_eq!(store.hit(key, window, t0).await.unwrap().count, 1);
//! assert_eq!(store.hit(key, window, t0 + Duration::minutes(9)).await.unwrap().count, 2);
//! assert_eq!(store.hit(key, window, t0 + window).await.unwrap().count, 1);
//!
//! // A real challenge record to play with: issue one on the in-memory store.
//! # use ninsho::gateway::RecordingGateway;
//! # use ninsho::model::{Destination, Purpose};
//! # use ninsho::service::{IssueRequest, TwoFactor};
//! # use ninsho::store::MemoryStore;
//! # use ninsho::{AeadSealer, HashKey, KeyId, KeyedHasher, ManualClock, SealKey};
//! let memory = Arc::new(MemoryStore::new());
//! let codes = TwoFactor::builder(
//!     "Example",
//!     memory.clone(),
//!     Arc::new(RecordingGateway::new()),
//!     KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32]).unwrap()),
//!     Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[8; 32]).unwrap())),
//! )
//!     .clock(Arc::new(ManualClock::at_unix(1_763_683_200).unwrap()))
//!     .build()
//!     .unwrap()
//!     .one_time_codes();
//! let phone = Destination::phone("+81 90-1234-5678").unwrap();
//! let ticket = codes.send(IssueRequest::new(phone, Purpose::SignUp)).await.unwrap();
//! let record = memory.challenge(&ticket.challenge_id).await.unwrap().unwrap();
//!
//! // Inserting twice: the second insert is a conflict.
//! store.insert_challenge(&record).await.unwrap();
//! assert!(store.insert_challenge(&record).await.unwrap_err().is_conflict());
//!
//! // Two writers read the same version; exactly one of them wins.
//! let mut next = record.clone();
//! next.version = record.version + 1;
//! next.failed_attempts += 1;
//! store.replace_challenge(&next, record.version).await.unwrap();
//! assert!(store.replace_challenge(&next, record.version).await.unwrap_err().is_conflict());
//! let stored = store.challenge(&record.id).await.unwrap().unwrap();
//! assert_eq!(stored.failed_attempts, record.failed_attempts + 1);
//! # });
//! ```
//!
//! The other four part traits follow the same pattern; the contact commit
//! is the one that touches several records at once (the record and the
//! claims) and so needs the most care in a database.
//!
//! # Proving it: the conformance suite
//!
//! The `testkit` module (feature `testkit`) checks the whole contract from
//! the outside and panics with a message naming the rule a store broke. It
//! reads every record back field for field, tries stale versions, absent
//! records and duplicate inserts, counts purges and windows exactly, and
//! races 64 tasks on one record, counter, epoch, recovery set and phone
//! number, through the store and through the flows. Run it from your
//! adapter's tests:
//!
//! - add `ninsho` with the `testkit` feature, and tokio with `macros` and
//!   `rt-multi-thread`, to your dev-dependencies;
//! - give `testkit::run_all` a closure that returns a store over a **fresh,
//!   empty namespace** (schema, table prefix or key prefix) on every call:
//!   the checks count records exactly;
//! - give `testkit::race_two_instances` two stores on **one** namespace,
//!   each with its own connection pool, as two servers behind a load
//!   balancer;
//! - run both on a multi-threaded runtime, or the races interleave only at
//!   the store's own await points.
//!
//! ```no_run
//! # #[cfg(feature = "testkit")]
//! # mod doc {
//! # // Stand-ins for the adapter under test.
//! # struct MyStore;
//! # impl MyStore {
//! #     async fn connect(_url: &str, _namespace: &str) -> Result<MemoryStore, std::io::Error> {
//! #         Ok(MemoryStore::new())
//! #     }
//! # }
//! # fn unique_namespace() -> String {
//! #     String::from("ninsho_test_1")
//! # }
//! use std::sync::Arc;
//!
//! use ninsho::store::{MemoryStore, Store};
//! use ninsho::testkit;
//!
//! const URL: &str = "postgres://localhost/test";
//!
//! // In your tests, each under
//! // #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn conformance() {
//!     testkit::run_all(|| async {
//!         let store = MyStore::connect(URL, &unique_namespace()).await.unwrap();
//!         Arc::new(store) as Arc<dyn Store>
//!     })
//!     .await;
//! }
//!
//! async fn two_instances() {
//!     let namespace = unique_namespace();
//!     let a = MyStore::connect(URL, &namespace).await.unwrap();
//!     let b = MyStore::connect(URL, &namespace).await.unwrap();
//!     testkit::race_two_instances(Arc::new(a), Arc::new(b)).await;
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! Remove the namespace afterwards, and make the test fail (not skip) in
//! CI when the database is missing.
//!
//! # How the shipped adapters do it
//!
//! | store | feature | how each call is atomic |
//! |---|---|---|
//! | [`MemoryStore`](crate::store::MemoryStore) | `memory` (default) | one mutex held for the whole call |
//! | `PgStore` | `postgres` | one conditional statement per method: `INSERT … ON CONFLICT DO NOTHING` (no row inserted → conflict), `UPDATE … WHERE id = $1 AND version = $expected` (no row updated → conflict), `INSERT … ON CONFLICT DO UPDATE … RETURNING` for counters and epochs. A journey step's `load` is one `SELECT` that joins its parts into one row beside the initialisation marker; its `commit` is one `SELECT` of the PL/pgSQL function `ninsho_step` (the marker, then `ninsho_commit`, then the checked record), which runs the same conditional statements and raises (rolling back the whole call) when one touches no row. `commit_account` is that call with the record alone; it takes a transaction-level advisory lock per claim key, in ascending order of lock id, so commits on one key queue up and commits on several keys never deadlock |
//! | `MySqlStore` | `mysql` | the same conditional statements (`UPDATE … WHERE … AND version = ?`; a plain `INSERT`, whose duplicate-key error 1062 is the conflict). MySQL has no `UPDATE … RETURNING`, so `hit` is an `INSERT … ON DUPLICATE KEY UPDATE` read back in the transaction that holds the row locked. `commit_account` is one transaction that writes the record first, then locks every claim key in byte order with one `INSERT … ON DUPLICATE KEY UPDATE` (inserting the free ones), so commits on one key queue up on its row lock; InnoDB deadlock victims are run again. A journey step's `load` is one `SELECT … UNION ALL …` that also reads the initialisation marker (written by `MySqlStore::initialise` only); `commit` is one transaction that charges the hits, then runs each part's conditional write and rolls everything back at the first that fails |
//! | `SqliteStore` | `sqlite` | the same single statements (SQLite has one writer at a time, `UPSERT` and `RETURNING`); the multi-row `commit_account`, `delete_account` and a journey step's `commit` run in a `BEGIN IMMEDIATE` transaction, which holds the write lock from its first statement; `load` is one `SELECT` with joins and the marker check |
//! | `RedisStore` | `redis` | one Lua script per operation (`EVALSHA`, loaded on first use) or a single command: Redis runs a script without interleaving. A journey step's `load` and `commit` are one script each: `load.lua` checks the initialisation marker beside its reads, `commit.lua` checks every condition before its first write. Records expire natively some time after `expires_at`, and a sorted index keeps the purges exact |
//!
//! Each passes the conformance suite, two-instance race included (the
//! PostgreSQL, MariaDB and Redis adapters against real servers in CI). Their type-level documentation lists the statement
//! or script behind every method.
//!
//! **Migrations.** The SQL adapters ship their schema and apply it with
//! `migrate()` (`PgStore::migrate`, `MySqlStore::migrate`,
//! `SqliteStore::migrate`), which hosts call at start-up. It applies the
//! migrations not yet applied and records each in `ninsho_schema_version`;
//! it is idempotent and safe to run from several instances at once (one
//! transaction under an advisory lock on PostgreSQL, a `GET_LOCK` named
//! lock and idempotent statements on MySQL, whose DDL commits on its own,
//! `BEGIN IMMEDIATE` on SQLite). The same SQL is in `migrations/postgres/`,
//! `migrations/mysql/` and `migrations/sqlite/` for hosts that run their
//! own migration tool. Redis needs no schema. An adapter of your own
//! should do the same: versioned, idempotent, safe to race.
//!
//! **The initialisation marker.** The SQL adapters keep it as a row of
//! `ninsho_meta`, written only by the migration that creates that table
//! (a new schema, or the upgrade of an existing one), so `migrate()` run
//! again after the rows were lost does not re-arm it; their
//! `initialise()` is the operator's way to. Redis writes it only through
//! `RedisStore::initialise`. An adapter of your own should write its
//! marker only when it creates its namespace, or on an operator's
//! request, never on an ordinary start.
//!
//! # Writing a gateway
//!
//! A [`Gateway`] gets a [`Message`]: the [`Channel`], the destination
//! ([`Message::to`], an E.164 number such as `+819012345678` for SMS and
//! voice, an address for email), the rendered [`Message::body`] (the text
//! to send, or to speak), a [`Message::subject`] for email, and the bare
//! code or link in [`Message::secret`] for providers that fill their own
//! pre-approved template. Return a [`Receipt`] (with the provider's message
//! id, which lands in the `Delivered` event) once the provider has
//! *accepted* the message, or a [`DeliveryError`] whose
//! [`DeliveryErrorKind`] tells ninsho what to do next:
//!
//! | the provider says | return | what ninsho does |
//! |---|---|---|
//! | landline (or other non-mobile number) for SMS; blocked by the carrier or route, recipient opted out or refuses SMS, channel not supported | [`DeliveryError::refused`] | permanent for this channel: moves on to the next channel of the plan (SMS, then voice) |
//! | unknown, malformed or unreachable number; bounced mailbox | [`DeliveryError::invalid_destination`] | permanent for this destination: no fallback; the call fails with [`Error::Delivery`](crate::Error::Delivery), not an infrastructure error: ask the user for another contact |
//! | timeout, connection error, 5xx, outage | [`DeliveryError::transient`] | fails with [`Error::Delivery`](crate::Error::Delivery), an infrastructure error; the challenge exists and can be resent once the problem clears |
//! | HTTP 429, quota exceeded | [`DeliveryError::rate_limited`], with the provider's `Retry-After` | as transient, with the delay attached |
//! | credentials refused, unknown or suspended account, a sender the account does not own | [`DeliveryError::configuration`] | no fallback (the contact is not to blame); fails with [`Error::Delivery`](crate::Error::Delivery), an infrastructure error the operator must fix; the challenge exists and can be resent once it is fixed |
//!
//! When unsure between transient and a permanent kind, choose transient: a
//! wrong permanent answer makes ninsho give up on a working channel or
//! destination. Keep the provider's error as the source. The full mapping
//! table and a compiled example are on [`Gateway`]; `examples/custom_gateway.rs`
//! is a complete adapter.
//!
//! **Never log [`Message::body`] or [`Message::secret`]**: they hold the
//! code or link. `Message`'s own `Debug` redacts both, but a provider SDK
//! that logs its requests does not know that; turn such logging off for
//! these calls. Test your gateway's mapping with [`Message::new`], and test
//! your service's fallbacks with [`RecordingGateway`], which can be told to
//! fail a channel with a given kind.
//!
//! [`Store`]: crate::store::Store
//! [`ChallengeStore`]: crate::store::ChallengeStore
//! [`LimitStore`]: crate::store::LimitStore
//! [`DeviceStore`]: crate::store::DeviceStore
//! [`AccountStore`]: crate::store::AccountStore
//! [`VerificationStore`]: crate::store::VerificationStore
//! [`AccountCommit::Taken`]: crate::store::AccountCommit::Taken
//! [`StoreError::conflict()`]: crate::store::StoreError::conflict
//! [`StoreError::unavailable`]: crate::store::StoreError::unavailable
//! [`StoreError::other`]: crate::store::StoreError::other
//! [`StoreErrorKind`]: crate::store::StoreErrorKind
//! [`Gateway`]: crate::gateway::Gateway
//! [`Message`]: crate::gateway::Message
//! [`Message::to`]: crate::gateway::Message::to
//! [`Message::body`]: crate::gateway::Message::body
//! [`Message::subject`]: crate::gateway::Message::subject
//! [`Message::secret`]: crate::gateway::Message::secret
//! [`Message::new`]: crate::gateway::Message::new
//! [`Channel`]: crate::model::Channel
//! [`Receipt`]: crate::gateway::Receipt
//! [`DeliveryError`]: crate::gateway::DeliveryError
//! [`DeliveryErrorKind`]: crate::gateway::DeliveryErrorKind
//! [`DeliveryError::refused`]: crate::gateway::DeliveryError::refused
//! [`DeliveryError::invalid_destination`]: crate::gateway::DeliveryError::invalid_destination
//! [`DeliveryError::transient`]: crate::gateway::DeliveryError::transient
//! [`DeliveryError::rate_limited`]: crate::gateway::DeliveryError::rate_limited
//! [`DeliveryError::configuration`]: crate::gateway::DeliveryError::configuration
//! [`RecordingGateway`]: crate::gateway::RecordingGateway
