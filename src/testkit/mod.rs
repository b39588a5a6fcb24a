//! The store conformance suite: run it against your [`Store`] adapter.
//!
//! ninsho's guarantees (a code verifies once, every guess is counted
//! before it is checked, no send limit is exceeded, a recovery code redeems
//! once, a bumped security epoch revokes every trusted device, a phone
//! number belongs to one account, a combined verification completes once)
//! hold only if the store keeps the contract of [`ChallengeStore`],
//! [`LimitStore`], [`DeviceStore`], [`AccountStore`] and
//! [`VerificationStore`]: inserts that refuse duplicates, a real
//! compare-and-set on the record version (and, for failure runs, on the
//! whole run), counters that never lose an increment, contact claims
//! changed together with their record in one atomic step. This module checks
//! that contract from the outside, the way `object_store`'s `integration`
//! module checks an object store: each `check_*` function drives the store
//! through the public traits and panics with a message naming the rule the
//! store broke.
//!
//! **Not a stable API.** The checks follow the store contract as it
//! evolves: a new release may add, tighten or rename checks (and sample
//! records) without a major version, as `object_store`'s integration suite
//! does. Pin ninsho's version in your dev-dependencies and expect to
//! revisit your adapter when you upgrade.
//!
//! The checks live in parts by concern (challenges, counters and failure
//! runs, devices, account records and claims, verifications, races, the
//! flows); all of them are exported here.
//!
//! What is checked:
//!
//! - **records**: an inserted challenge reads back field for field (every
//!   purpose, state, channel, key id, a link, large counters); an absent id
//!   reads as `None`; inserting an existing id is a
//!   [`StoreErrorKind::Conflict`] that leaves the stored record alone;
//! - **compare-and-set**: a replace with the stored version succeeds; a stale
//!   version or an absent record is a `Conflict` that changes nothing;
//! - **counters**: fixed windows that start at the first hit and restart at
//!   `now >= resets_at`; independent keys, whatever characters they hold;
//! - **failure runs**: a compare-and-set on the whole run (count and
//!   instant) that creates, replaces and ends a run, refuses every other
//!   expectation with a `Conflict` that changes nothing, and stays per
//!   account;
//! - **devices**: devices read back field for field (revoked or not) and
//!   are keyed by account *and* id; `devices` lists exactly one account's;
//!   replace is a compare-and-set; `delete_device` and `delete_devices`
//!   report exactly what they removed and touch no other account;
//! - **account records and claims**: a first commit stores the record, which
//!   reads back field for field (with its recovery codes, authenticator and
//!   security epoch); commits are a compare-and-set on the record's version
//!   (a `Conflict` changes neither record nor claims); claims name their
//!   account, and claiming a held key again is fine; a key held by another
//!   account makes the commit [`AccountCommit::Taken`] (with the index of
//!   that key) and writes nothing; releases touch only the account's own
//!   keys; a swap (claim the new number, release the old) is one commit;
//!   `delete_account` removes the record and every claim of that account
//!   only; claim keys are exact strings;
//! - **verifications**: read back field for field; an insert over an
//!   existing id, or a replace from another version or of an absent id, is
//!   a `Conflict` that changes nothing;
//! - **purge** ([`PurgeStore`](crate::store::PurgeStore)): every
//!   challenge, verification and device (revoked or not) that expired
//!   before the cut-off goes, and every counter whose window ended at or
//!   before it; the counts are exact, per kind; everything on the other
//!   side stays unchanged (live counters keep counting); a second purge
//!   finds nothing; account records, claims, failure runs and the
//!   initialisation marker never go, however old (stores with native
//!   expiry must still implement it exactly);
//! - **journey steps** ([`StepStore`](crate::store::StepStore)): `load`
//!   returns what the part traits stored (and `None` for what it was not
//!   asked for); each part of a `commit` alone writes what its part-trait
//!   call would; a commit with any stale condition is a `Conflict` that
//!   writes nothing, its hits included; a hit past its max stops the commit
//!   with `LimitReached` (earlier hits and that one charged, nothing else);
//!   a claim held elsewhere makes it `Taken` with nothing written;
//! - **races**: 64 tasks at once compare-and-set one record (one winner), run
//!   read-modify-write loops (no lost update), hit one counter, count
//!   failures for one account by compare-and-set (no lost count), insert
//!   one id (one winner), bump one account's epoch (each of 1 to 64 once);
//!   64 accounts claim one contact key (one commits, 63 are `Taken`, never
//!   an error) or overlapping pairs of keys (no deadlock, no key held
//!   twice); read-modify-commit loops on one account record (no lost
//!   update); compare-and-set one verification (one winner); commit one
//!   journey step on one challenge version and failure run (one winner);
//! - **through the flows**: [`OneTimeCodes`](crate::service::OneTimeCodes) on the store under test, 64
//!   simultaneous verifications of one code (exactly one succeeds) and 64
//!   simultaneous wrong codes (exactly the allowed attempts are counted, then
//!   even the right code is refused); racing wrong codes and recovery codes
//!   for one account with 99 failures on record (at most one compared, the
//!   run ends at 100) and with none (no more compared than the back-off
//!   allows); [`TwoFactor`](crate::service::TwoFactor), 64 simultaneous redemptions of one code
//!   (exactly one succeeds) or of all ten (each succeeds once), and a
//!   regeneration racing redemptions (no old code redeems once it
//!   returned); [`TwoFactor`](crate::service::TwoFactor), an epoch bump racing device checks (no
//!   check that starts after it returned is valid);
//! - **two app instances** ([`race_two_instances`]): the same races through
//!   two handles on one database, as two servers behind a load balancer.
//!
//! # Using it for your adapter
//!
//! Add `ninsho` with the `testkit` feature, and tokio with the
//! `rt-multi-thread` and `macros` features, to your dev-dependencies. Then,
//! in a test, hand [`run_all`] a closure that makes a store over a **fresh,
//! empty namespace** (a new schema, table prefix or key prefix) every time it
//! is called: the checks count records and counters exactly, so leftovers
//! from another check or an earlier run make them fail. The races only race
//! on a multi-threaded runtime, so the test must use
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` (on a
//! current-thread runtime they still pass or fail, but interleave only at
//! the store's own await points).
//!
//! Here is the whole suite against [`MemoryStore`]; a database adapter does
//! the same with its own constructor, and calls [`race_two_instances`] with
//! two stores built from two independent connection pools:
//!
//! ```
//! use std::sync::Arc;
//!
//! use ninsho::store::{MemoryStore, Store};
//! use ninsho::testkit;
//!
//! // In your crate: #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! #[tokio::main(flavor = "multi_thread", worker_threads = 4)]
//! async fn main() {
//!     // Every check gets a store of its own.
//!     testkit::run_all(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
//!
//!     // Two handles on one namespace. For MemoryStore that is one store
//!     // passed twice; for a database, two pools on the same schema.
//!     let shared: Arc<dyn Store> = Arc::new(MemoryStore::new());
//!     testkit::race_two_instances(shared.clone(), shared).await;
//! }
//! ```
//!
//! Each check is also public, to run one alone while fixing an adapter:
//!
//! ```
//! # use std::sync::Arc;
//! # use ninsho::store::{MemoryStore, Store};
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
//! ninsho::testkit::check_replace_stale_version_conflicts(store).await;
//! # }
//! ```
//!
//! # Time
//!
//! The checks pass instants explicitly, as ninsho does. All of them are
//! whole seconds (backends that keep microseconds round-trip them exactly)
//! and lie a day or more after the wall clock at the start of the check, so
//! a store that also sets a native expiry (a TTL derived from `expires_at`
//! or `resets_at`) does not drop records in the middle of a check. No check
//! sleeps.
//!
//! [`ChallengeStore`]: crate::store::ChallengeStore
//! [`LimitStore`]: crate::store::LimitStore
//! [`DeviceStore`]: crate::store::DeviceStore
//! [`AccountStore`]: crate::store::AccountStore
//! [`VerificationStore`]: crate::store::VerificationStore
//! [`MemoryStore`]: crate::store::MemoryStore

// The testkit's whole job is to assert: a store that breaks a rule must fail
// the adapter author's test loudly, with a message naming the rule. Library
// code elsewhere never unwraps or panics (see the crate-level denials).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use time::{Duration, OffsetDateTime, UtcOffset};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

use crate::ManualClock;
use crate::challenge::CodePolicy;
use crate::device::DeviceCheck;
use crate::error::{Error, Refusal};
use crate::flows::{Challenges, IssueRequest, Ports, RecoveryCodes, TrustedDevices};
use crate::gateway::RecordingGateway;
use crate::grace::{GraceEvent, GracePolicy};
use crate::hash::{HashKey, KeyId, KeyedHash, KeyedHasher, Tag};
use crate::limits::{FailurePolicy, RateLimit, SendLimits};
use crate::model::{
    AccountId, AccountRecord, AuthenticatorRecord, ChallengeId, ChallengeRecord, ChallengeState,
    Channel, ContactEntry, Destination, DeviceId, DeviceRecord, Factors, FailureRecord, GraceState,
    LinkRecord, Locale, MemberRecord, PhoneType, Purpose, RecoverySet, SendRecord,
    StoredRecoveryCode, VerificationId, VerificationRecord,
};
use crate::random::LockedRng;
use crate::store::{AccountCommit, ClaimChanges, Store, StoreError, StoreErrorKind, WindowCount};

mod challenges;
mod contacts;
mod devices;
mod flows;
mod helpers;
mod limits;
mod purge;
mod races;
mod samples;
mod shared;
mod steps;
mod verifications;

pub use challenges::*;
pub use contacts::*;
pub use devices::*;
pub use flows::*;
use helpers::*;
pub use limits::*;
pub use purge::*;
pub use races::*;
pub use samples::*;
pub use shared::*;
pub use steps::*;
pub use verifications::*;

/// Tasks in every race.
const TASKS: usize = 64;

/// The phone number the flow checks send codes to.
const PHONE: &str = "+819012345678";

/// Runs every check, each against a fresh store from `new_store` (so each
/// gets a clean namespace).
///
/// Call it from a `#[tokio::test(flavor = "multi_thread")]` test; see the
/// [module docs](self). `new_store` must return a store over an empty
/// namespace every time.
///
/// # Panics
/// When the store breaks a rule; the message names it.
pub async fn run_all<F, Fut>(mut new_store: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    check_insert_and_read_back(new_store().await).await;
    check_read_absent(new_store().await).await;
    check_insert_existing_conflicts(new_store().await).await;
    check_round_trip_every_field(new_store().await).await;
    check_replace_with_expected_version(new_store().await).await;
    check_replace_stale_version_conflicts(new_store().await).await;
    check_replace_absent_conflicts(new_store().await).await;
    check_hit_window(new_store().await).await;
    check_hit_keys_independent(new_store().await).await;
    check_failures(new_store().await).await;
    check_device_insert_and_read_back(new_store().await).await;
    check_device_insert_existing_conflicts(new_store().await).await;
    check_device_ids_per_account(new_store().await).await;
    check_devices_lists_one_account(new_store().await).await;
    check_device_replace(new_store().await).await;
    check_delete_device(new_store().await).await;
    check_delete_devices(new_store().await).await;
    check_contact_book_insert_and_read_back(new_store().await).await;
    check_contact_book_compare_and_set(new_store().await).await;
    check_contact_claims(new_store().await).await;
    check_contact_claim_taken_writes_nothing(new_store().await).await;
    check_contact_release_only_own(new_store().await).await;
    check_contact_swap(new_store().await).await;
    check_delete_account(new_store().await).await;
    check_contact_claim_keys_independent(new_store().await).await;
    check_verification_insert_and_read_back(new_store().await).await;
    check_verification_insert_existing_conflicts(new_store().await).await;
    check_verification_replace(new_store().await).await;
    check_purge(new_store().await).await;
    check_race_replace(new_store().await).await;
    check_race_read_modify_write(new_store().await).await;
    check_race_hit(new_store().await).await;
    check_race_replace_failures(new_store().await).await;
    check_race_insert(new_store().await).await;
    check_race_bump_epoch(new_store().await).await;
    check_race_claim(new_store().await).await;
    check_race_claim_overlapping(new_store().await).await;
    check_race_contact_book_read_modify_write(new_store().await).await;
    check_race_verification_replace(new_store().await).await;
    check_load_reads_together(new_store().await).await;
    check_commit_each_part(new_store().await).await;
    check_commit_conflict_writes_nothing(new_store().await).await;
    check_commit_record_check(new_store().await).await;
    check_commit_limit_reached(new_store().await).await;
    check_commit_taken_writes_nothing(new_store().await).await;
    check_race_commit(new_store().await).await;
    check_flows_verify_once(new_store().await).await;
    check_flows_attempts_counted(new_store().await).await;
    check_flows_guesses_counted_first(new_store().await).await;
    check_flows_redeem_once(new_store().await).await;
    check_flows_redeem_each_code_once(new_store().await).await;
    check_flows_regenerate_voids_old_codes(new_store().await).await;
    check_flows_bump_epoch_revokes(new_store().await).await;
}

/// Two handles to the SAME backend namespace through independent
/// connections/pools ("two app instances"): races them; exactly one winner
/// in total.
///
/// - a record inserted through `a` is compare-and-set from the same version
///   by 32 tasks on `a` and 32 on `b`: exactly one succeeds;
/// - one code is verified by 32 tasks through [`OneTimeCodes`](crate::service::OneTimeCodes) built on `a`
///   and 32 through one built on `b` (same hashing key): exactly one
///   succeeds; 32 + 32 wrong codes on another challenge count exactly the
///   allowed attempts;
/// - 32 + 32 wrong codes, then wrong recovery codes, for one account with
///   99 failures on record are compared at most once and end the run at
///   100; with none on record, no more are compared than the back-off
///   allows (3);
/// - 32 + 32 read/compare-and-set loops on one failure run lose no count;
/// - 32 + 32 hits on one counter return the counts 1 to 64;
/// - one recovery code is redeemed by 32 tasks through [`TwoFactor`](crate::service::TwoFactor)
///   built on `a` and 32 through one built on `b` (same hashing key):
///   exactly one succeeds;
/// - 32 + 32 bumps of one account's security epoch return the epochs 1 to
///   64;
/// - 64 accounts, 32 on each handle, claim one contact key at once: exactly
///   one commits, the others are `Taken`, and both handles name the winner;
/// - 32 + 32 read-modify-commit loops on one account record, each adding a
///   contact and claiming a key: no update is lost;
/// - 32 + 32 step commits on one challenge version and failure run: exactly
///   one lands.
///
/// The namespace must be empty when this starts.
///
/// # Panics
/// When the stores break a rule; the message names it.
///
pub async fn race_two_instances(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let stores = [a, b];
    race_replace(&stores, 0xB1).await;
    flows_verify_once(&stores, 0xB2).await;
    flows_attempts_counted(&stores, 0xB3).await;
    flows_guesses_counted_first(&stores, 0xB5).await;
    race_failures(&stores, "testkit:two-instances:failures").await;
    race_hit(&stores, "testkit:two-instances:hit").await;
    flows_redeem_once(&stores, 0xB4).await;
    race_bump_epoch(&stores, "testkit:two-instances:epoch").await;
    race_claim(&stores, "testkit:two-instances:claim").await;
    race_contact_book(&stores, "testkit:two-instances:book").await;
    steps::race_commit(&stores, 0xB6).await;
}
