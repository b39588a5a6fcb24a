//! The store conformance suite: run it against your [`Store`] adapter.
//!
//! ninsho's guarantees (a code verifies once, every guess is counted
//! before it is checked, no send limit is exceeded, a recovery code redeems
//! once, a bumped security epoch revokes every trusted device, a phone
//! number belongs to one account, a combined verification completes once)
//! hold only if the store keeps the contract of [`ChallengeStore`],
//! [`LimitStore`], [`DeviceStore`], [`ContactStore`] and
//! [`VerificationStore`]: inserts that refuse duplicates, a real
//! compare-and-set on the record version (and, for failure runs, on the
//! whole run), counters that never lose an increment, contact claims
//! changed together with their book in one atomic step. This module checks
//! that contract from the outside, the way `object_store`'s `integration`
//! module checks an object store: each `check_*` function drives the store
//! through the public traits and panics with a message naming the rule the
//! store broke.
//!
//! What is checked:
//!
//! - **records**: an inserted challenge reads back field for field (every
//!   purpose, state, channel, key id, a link, large counters); an absent id
//!   reads as `None`; inserting an existing id is a
//!   [`StoreErrorKind::Conflict`] that leaves the stored record alone;
//! - **compare-and-set**: a replace with the stored version succeeds; a stale
//!   version or an absent record is a `Conflict` that changes nothing;
//! - **purge**: exactly the challenges that expired before the cut-off go,
//!   and the count returned is exact (stores with native expiry must still
//!   implement it);
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
//! - **contact books and claims**: a first commit stores the book, which
//!   reads back field for field (with its recovery codes, authenticator and
//!   security epoch); commits are a compare-and-set on the book's version
//!   (a `Conflict` changes neither book nor claims); claims name their
//!   account, and claiming a held key again is fine; a key held by another
//!   account makes the commit [`ContactCommit::Taken`] (with the index of
//!   that key) and writes nothing; releases touch only the account's own
//!   keys; a swap (claim the new number, release the old) is one commit;
//!   `delete_contacts` removes the book and every claim of that account
//!   only; claim keys are exact strings;
//! - **verifications**: read back field for field; an insert over an
//!   existing id, or a replace from another version or of an absent id, is
//!   a `Conflict` that changes nothing; the purge deletes exactly what
//!   expired before the cut-off and leaves challenges alone (and the
//!   challenge purge leaves verifications alone);
//! - **races**: 64 tasks at once compare-and-set one record (one winner), run
//!   read-modify-write loops (no lost update), hit one counter, count
//!   failures for one account by compare-and-set (no lost count), insert
//!   one id (one winner), bump one account's epoch (each of 1 to 64 once);
//!   64 accounts claim one contact key (one commits, 63 are `Taken`, never
//!   an error) or overlapping pairs of keys (no deadlock, no key held
//!   twice); read-modify-commit loops on one contact book (no lost
//!   update); compare-and-set one verification (one winner);
//! - **through the flows**: [`Challenges`] on the store under test, 64
//!   simultaneous verifications of one code (exactly one succeeds) and 64
//!   simultaneous wrong codes (exactly the allowed attempts are counted, then
//!   even the right code is refused); racing wrong codes and recovery codes
//!   for one account with 99 failures on record (at most one compared, the
//!   run ends at 100) and with none (no more compared than the back-off
//!   allows); [`RecoveryCodes`], 64 simultaneous redemptions of one code
//!   (exactly one succeeds) or of all ten (each succeeds once), and a
//!   regeneration racing redemptions (no old code redeems once it
//!   returned); [`TrustedDevices`], an epoch bump racing device checks (no
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
//! [`Challenges`]: crate::flows::Challenges
//! [`RecoveryCodes`]: crate::flows::RecoveryCodes
//! [`TrustedDevices`]: crate::flows::TrustedDevices
//! [`ChallengeStore`]: crate::store::ChallengeStore
//! [`LimitStore`]: crate::store::LimitStore
//! [`DeviceStore`]: crate::store::DeviceStore
//! [`ContactStore`]: crate::store::ContactStore
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
use crate::contact::{Destination, PhoneType};
use crate::device::{DeviceCheck, DeviceId, DeviceRecord};
use crate::error::{Error, Refusal};
use crate::flows::{Challenges, IssueRequest, Ports, RecoveryCodes, TrustedDevices};
use crate::gateway::{Channel, Locale, RecordingGateway};
use crate::grace::{GraceEvent, GracePolicy, GraceState};
use crate::hash::{HashKey, KeyId, KeyedHash, KeyedHasher, Tag};
use crate::limits::{FailurePolicy, RateLimit, SendLimits};
use crate::random::LockedRng;
use crate::recovery::{RecoverySet, StoredRecoveryCode};
use crate::store::{
    AccountId, AuthenticatorRecord, ChallengeId, ChallengeRecord, ChallengeState, ClaimChanges,
    ContactBook, ContactCommit, ContactEntry, Factors, FailureRecord, LinkRecord, MemberRecord,
    Purpose, SendRecord, Store, StoreError, StoreErrorKind, VerificationId, VerificationRecord,
    WindowCount,
};

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
    check_purge_expired(new_store().await).await;
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
    check_delete_contacts(new_store().await).await;
    check_contact_claim_keys_independent(new_store().await).await;
    check_verification_insert_and_read_back(new_store().await).await;
    check_verification_insert_existing_conflicts(new_store().await).await;
    check_verification_replace(new_store().await).await;
    check_verification_purge(new_store().await).await;
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
/// - one code is verified by 32 tasks through [`Challenges`] built on `a`
///   and 32 through one built on `b` (same hashing key): exactly one
///   succeeds; 32 + 32 wrong codes on another challenge count exactly the
///   allowed attempts;
/// - 32 + 32 wrong codes, then wrong recovery codes, for one account with
///   99 failures on record are compared at most once and end the run at
///   100; with none on record, no more are compared than the back-off
///   allows (3);
/// - 32 + 32 read/compare-and-set loops on one failure run lose no count;
/// - 32 + 32 hits on one counter return the counts 1 to 64;
/// - one recovery code is redeemed by 32 tasks through [`RecoveryCodes`]
///   built on `a` and 32 through one built on `b` (same hashing key):
///   exactly one succeeds;
/// - 32 + 32 bumps of one account's security epoch return the epochs 1 to
///   64;
/// - 64 accounts, 32 on each handle, claim one contact key at once: exactly
///   one commits, the others are `Taken`, and both handles name the winner;
/// - 32 + 32 read-modify-commit loops on one contact book, each adding a
///   contact and claiming a key: no update is lost.
///
/// The namespace must be empty when this starts.
///
/// # Panics
/// When the stores break a rule; the message names it.
///
/// [`Challenges`]: crate::flows::Challenges
/// [`RecoveryCodes`]: crate::flows::RecoveryCodes
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
}

/// A typical pending sign-in challenge, version 0, whose id is derived from
/// `id_seed` (distinct seeds give distinct ids).
///
/// `now` is truncated to whole seconds in UTC; the record is created at
/// that instant and expires 10 minutes later. It has an account, goes to a
/// Japanese mobile number by SMS (voice as the fallback) and holds one send.
#[must_use]
pub fn sample_challenge(id_seed: u8, now: OffsetDateTime) -> ChallengeRecord {
    let now = whole_seconds(now);
    let mut id = [id_seed; 16];
    id[0] = 0x4e;
    id[1] = 0x53;
    let expires_at = now + Duration::minutes(10);
    ChallengeRecord {
        id: ChallengeId::from_bytes(id),
        version: 0,
        purpose: Purpose::SignIn,
        account: Some(AccountId::new(format!("testkit-account-{id_seed}"))),
        destination: Destination::phone(PHONE).expect("a valid phone number"),
        locale: Locale::Ja,
        channels: vec![Channel::Sms, Channel::Voice],
        channel_index: 0,
        state: ChallengeState::Pending,
        digits: 6,
        failed_attempts: 0,
        max_attempts: 5,
        sends: vec![SendRecord {
            channel: Channel::Sms,
            sent_at: now,
            expires_at,
            code: KeyedHash {
                key_id: KeyId(1),
                tag: Tag([id_seed; 32]),
            },
            failed_transiently: false,
        }],
        delivery_attempts: 1,
        link: None,
        created_at: now,
        expires_at,
        consumed_by: None,
        epoch: Some(u64::MAX - 3),
    }
}

/// A recovery set of 10 codes, version 0, whose salt and code
/// hashes are derived from `seed` (distinct seeds give distinct salts and
/// hashes).
///
/// `now` is truncated to whole seconds in UTC; the set was created at that
/// instant. Codes are 12 characters long, hashed under key id 1; code 3
/// was used five minutes later, by a sign-in attempt.
#[must_use]
pub fn sample_recovery_set(seed: u8, now: OffsetDateTime) -> RecoverySet {
    let now = whole_seconds(now);
    let mut salt = [seed; 16];
    salt[0] = 0x52;
    salt[1] = 0x53;
    RecoverySet {
        salt,
        version: 0,
        created_at: now,
        length: 12,
        codes: (0..10u8)
            .map(|i| {
                let mut tag = [seed; 32];
                tag[0] = i;
                // Code 3 was used by a sign-in attempt.
                let used = i == 3;
                StoredRecoveryCode {
                    hash: KeyedHash {
                        key_id: KeyId(1),
                        tag: Tag(tag),
                    },
                    used_at: used.then_some(now + Duration::minutes(5)),
                    used_by: used.then_some(KeyedHash {
                        key_id: KeyId(2),
                        tag: Tag([seed ^ 0x5A; 32]),
                    }),
                }
            })
            .collect(),
    }
}

/// A device of `account` trusted at `now` for 30 days, version 0, epoch 0,
/// not revoked, whose id and token hash are derived from `id_seed` (distinct
/// seeds give distinct ids; the same seed gives the same id whatever the
/// account).
///
/// `now` is truncated to whole seconds in UTC.
#[must_use]
pub fn sample_device(account: &AccountId, id_seed: u8, now: OffsetDateTime) -> DeviceRecord {
    let now = whole_seconds(now);
    DeviceRecord {
        account: account.clone(),
        id: device_id(id_seed),
        version: 0,
        token: KeyedHash {
            key_id: KeyId(1),
            tag: Tag([id_seed; 32]),
        },
        label: format!("testkit device {id_seed}"),
        created_at: now,
        last_used_at: now,
        expires_at: now + Duration::days(30),
        epoch: 0,
        revoked_at: None,
    }
}

/// A contact book of `account` as its first commit stores it: version 1,
/// created at `now`, with a verified phone number (`+819012345678`) that
/// two-step sign-in uses and an unverified email address, and a grace state
/// that records the account's creation and both contacts.
///
/// `now` is truncated to whole seconds in UTC.
#[must_use]
pub fn sample_contact_book(account: &AccountId, now: OffsetDateTime) -> ContactBook {
    let now = whole_seconds(now);
    let phone = phone();
    let email = Destination::email("Taro.Yamada+2fa@Example.co.jp").expect("a valid email");
    let policy = GracePolicy::new();
    let mut grace = GraceState::new();
    let _ = grace.apply(&policy, GraceEvent::AccountCreated, now);
    let _ = grace.apply(&policy, GraceEvent::added(&phone, true), now);
    let _ = grace.apply(&policy, GraceEvent::added(&email, false), now);
    ContactBook {
        account: account.clone(),
        version: 1,
        contacts: vec![
            ContactEntry {
                destination: phone,
                added_at: now,
                verified_at: Some(now + Duration::seconds(30)),
                two_factor: true,
                phone_type: Some(PhoneType::Mobile),
            },
            ContactEntry {
                destination: email,
                added_at: now + Duration::minutes(1),
                verified_at: None,
                two_factor: false,
                phone_type: None,
            },
        ],
        grace,
        created_at: now,
        factors: Factors {
            two_factor_since: Some(now),
            authenticator: Some(AuthenticatorRecord::new(
                "GEZDGNBVGY3TQOJQ".into(),
                Some(58_789_456),
                now,
            )),
            pending_authenticator: None,
            recovery: Some(sample_recovery_set(0x5B, now)),
        },
        epoch: u64::MAX - 7,
        last_change: Some(ChallengeId::from_bytes([0x5C; 16])),
    }
}

/// A combined sign-up verification (email **and** phone), version 0, no
/// account yet, no member verified, whose id and member challenge ids are
/// derived from `id_seed` (distinct seeds give distinct ids).
///
/// `now` is truncated to whole seconds in UTC; the verification starts at
/// that instant and expires 30 minutes later.
#[must_use]
pub fn sample_verification(id_seed: u8, now: OffsetDateTime) -> VerificationRecord {
    let now = whole_seconds(now);
    let mut id = [id_seed; 16];
    id[0] = 0x56;
    id[1] = 0x46;
    let challenge = |member: u8| {
        let mut bytes = [id_seed; 16];
        bytes[0] = 0x4d;
        bytes[1] = member;
        ChallengeId::from_bytes(bytes)
    };
    VerificationRecord {
        id: VerificationId::from_bytes(id),
        version: 0,
        purpose: Purpose::SignUp,
        account: None,
        members: vec![
            MemberRecord {
                destination: Destination::email("hanako@example.jp").expect("a valid email"),
                challenge: challenge(0),
                verified_at: None,
            },
            MemberRecord {
                destination: phone(),
                challenge: challenge(1),
                verified_at: None,
            },
        ],
        locale: Locale::Ja,
        created_at: now,
        expires_at: now + Duration::minutes(30),
        completed_at: None,
        taken_at: None,
        taken_by: None,
    }
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// Rule: a challenge read back after `insert_challenge` equals what was
/// inserted, field for field.
pub async fn check_insert_and_read_back(store: Arc<dyn Store>) {
    let record = sample_challenge(1, base_time());
    ok(
        store.insert_challenge(&record).await,
        "insert_challenge of a new id",
    );
    let back = read(&*store, &record.id, "challenge after insert_challenge").await;
    assert_same_record(
        "a challenge read back after insert_challenge must equal what was inserted",
        &back,
        &record,
    );
}

/// Rule: reading an id that was never inserted returns `Ok(None)`.
pub async fn check_read_absent(store: Arc<dyn Store>) {
    let present = sample_challenge(2, base_time());
    ok(store.insert_challenge(&present).await, "insert_challenge");
    let absent = sample_challenge(3, base_time()).id;
    let got = ok(store.challenge(&absent).await, "challenge of an absent id");
    assert!(
        got.is_none(),
        "ChallengeStore::challenge must return None for an id that was never inserted \
         (got {got:?})"
    );
}

/// Rule: inserting an id that exists fails with
/// [`StoreErrorKind::Conflict`] and leaves the stored record unchanged
/// (an insert is never an upsert).
pub async fn check_insert_existing_conflicts(store: Arc<dyn Store>) {
    let original = sample_challenge(4, base_time());
    ok(store.insert_challenge(&original).await, "insert_challenge");
    let mut other = sample_challenge(4, base_time() + Duration::minutes(1));
    other.version = 7;
    other.failed_attempts = 3;
    other.state = ChallengeState::Consumed;
    other.purpose = Purpose::Recovery;
    expect_conflict(
        store.insert_challenge(&other).await,
        "insert_challenge of an existing id must fail with StoreErrorKind::Conflict",
    );
    let back = read(&*store, &original.id, "challenge after a duplicate insert").await;
    assert_same_record(
        "a duplicate insert_challenge must leave the original record unchanged",
        &back,
        &original,
    );
}

/// Rule: every field of a challenge survives the round trip: each purpose
/// (a host's own `Purpose::Other` included), with and without an account,
/// email and phone destinations, several sends on different channels with
/// different key ids, a one-time link, each [`ChallengeState`], each
/// locale, and counters near their type's maximum.
pub async fn check_round_trip_every_field(store: Arc<dyn Store>) {
    let now = base_time();
    let states = [
        ChallengeState::Pending,
        ChallengeState::Approved,
        ChallengeState::Consumed,
        ChallengeState::Denied,
        ChallengeState::Exhausted,
    ];
    let purposes = [
        Purpose::SignUp,
        Purpose::SignIn,
        Purpose::ContactChange,
        Purpose::StepUp,
        Purpose::Recovery,
        Purpose::Other("x".to_owned()),
    ];
    let mut records = Vec::new();

    // Every purpose and state, alternating account and locale.
    for (i, purpose) in purposes.iter().enumerate() {
        let seed = 0x10 + u8::try_from(i).expect("few purposes");
        let mut r = sample_challenge(seed, now);
        r.purpose = purpose.clone();
        r.state = states[i % states.len()];
        r.account = (i % 2 == 0).then(|| AccountId::new(format!("acct-{i}")));
        r.locale = if i % 2 == 0 { Locale::En } else { Locale::Ja };
        records.push(r);
    }
    for (i, state) in states.iter().enumerate() {
        let seed = 0x20 + u8::try_from(i).expect("few states");
        let mut r = sample_challenge(seed, now);
        r.state = *state;
        // A consumed one remembers the sign-in attempt that consumed it.
        r.consumed_by = (*state == ChallengeState::Consumed).then_some(KeyedHash {
            key_id: KeyId(3),
            tag: Tag([seed; 32]),
        });
        records.push(r);
    }

    // The richest record: an email, a host purpose, no account, several
    // sends with different channels and keys, large counters.
    let mut rich = sample_challenge(0x30, now);
    rich.version = 1 << 40;
    rich.purpose = Purpose::Other("x".to_owned());
    rich.account = None;
    rich.destination = Destination::email("Taro.Yamada+2fa@Example.COM").expect("a valid email");
    rich.locale = Locale::En;
    rich.channels = vec![Channel::Email, Channel::Sms, Channel::Voice];
    rich.channel_index = 2;
    rich.state = ChallengeState::Exhausted;
    rich.digits = 10;
    rich.failed_attempts = u32::MAX;
    rich.max_attempts = u32::MAX - 1;
    rich.delivery_attempts = u32::MAX - 2;
    rich.sends = vec![
        SendRecord {
            channel: Channel::Email,
            sent_at: now,
            expires_at: now + Duration::minutes(10),
            code: KeyedHash {
                key_id: KeyId(1),
                tag: Tag([0xA1; 32]),
            },
            failed_transiently: false,
        },
        SendRecord {
            channel: Channel::Sms,
            sent_at: now + Duration::seconds(61),
            expires_at: now + Duration::seconds(661),
            code: KeyedHash {
                key_id: KeyId(2),
                tag: Tag(std::array::from_fn(|i| u8::try_from(i).expect("< 32"))),
            },
            failed_transiently: true,
        },
        SendRecord {
            channel: Channel::Voice,
            sent_at: now + Duration::seconds(122),
            expires_at: now + Duration::seconds(722),
            code: KeyedHash {
                key_id: KeyId(u32::MAX),
                tag: Tag([0xFF; 32]),
            },
            failed_transiently: false,
        },
    ];
    rich.created_at = now - Duration::seconds(5);
    rich.expires_at = now + Duration::seconds(722);
    records.push(rich);

    // A one-time link with a device description full of awkward characters.
    let mut link = sample_challenge(0x31, now);
    link.purpose = Purpose::SignIn;
    link.account = Some(AccountId::new("アカウント:42 'quoted' \"double\" \\ %_*"));
    link.state = ChallengeState::Approved;
    link.sends.clear();
    link.delivery_attempts = 2;
    link.link = Some(LinkRecord {
        token: KeyedHash {
            key_id: KeyId(9),
            tag: Tag([0x5C; 32]),
        },
        device: "iPhone 15 · Safari · 東京 \"quoted\" 'single' \\ \n new line".to_owned(),
    });
    records.push(link);

    for r in &records {
        ok(store.insert_challenge(r).await, "insert_challenge");
    }
    for r in &records {
        let back = read(&*store, &r.id, "challenge after insert_challenge").await;
        assert_same_record(
            "every field of a challenge must survive insert_challenge and challenge",
            &back,
            r,
        );
    }

    // The same through replace_challenge, from a large version.
    let mut next = records[records.len() - 2].clone();
    let expected = next.version;
    next.version = expected + 1;
    next.sends.truncate(1);
    next.failed_attempts = u32::MAX - 7;
    ok(
        store.replace_challenge(&next, expected).await,
        "replace_challenge with the stored (large) version",
    );
    let back = read(&*store, &next.id, "challenge after replace_challenge").await;
    assert_same_record(
        "every field of a challenge must survive replace_challenge and challenge",
        &back,
        &next,
    );
}

// ---------------------------------------------------------------------------
// Compare-and-set
// ---------------------------------------------------------------------------

/// Rule: `replace_challenge(record, v)` succeeds when the stored version is
/// `v`, and what is read back afterwards is the new record (version
/// `v + 1`); a second replace from the new version succeeds too.
pub async fn check_replace_with_expected_version(store: Arc<dyn Store>) {
    let record = sample_challenge(5, base_time());
    ok(store.insert_challenge(&record).await, "insert_challenge");

    let mut next = record.clone();
    next.version = 1;
    next.failed_attempts = 1;
    ok(
        store.replace_challenge(&next, 0).await,
        "replace_challenge with the stored version must succeed",
    );
    let back = read(&*store, &record.id, "challenge after replace_challenge").await;
    assert_same_record(
        "after a successful replace_challenge the new record (and version) is read back",
        &back,
        &next,
    );

    let mut last = next.clone();
    last.version = 2;
    last.state = ChallengeState::Consumed;
    ok(
        store.replace_challenge(&last, 1).await,
        "a second replace_challenge from the new version must succeed",
    );
    let back = read(&*store, &record.id, "challenge after two replaces").await;
    assert_same_record(
        "after a second replace_challenge the latest record is read back",
        &back,
        &last,
    );
}

/// Rule: `replace_challenge` with a version other than the stored one (an
/// older or a newer one) fails with [`StoreErrorKind::Conflict`] and
/// changes nothing.
pub async fn check_replace_stale_version_conflicts(store: Arc<dyn Store>) {
    let record = sample_challenge(6, base_time());
    ok(store.insert_challenge(&record).await, "insert_challenge");
    let mut current = record.clone();
    current.version = 1;
    current.failed_attempts = 1;
    ok(
        store.replace_challenge(&current, 0).await,
        "replace_challenge",
    );

    // A writer that read version 0 before the replace above.
    let mut stale = record.clone();
    stale.version = 1;
    stale.state = ChallengeState::Consumed;
    expect_conflict(
        store.replace_challenge(&stale, 0).await,
        "replace_challenge with a stale expected version must fail with StoreErrorKind::Conflict",
    );
    // A writer that claims a version the store never had.
    let mut ahead = record.clone();
    ahead.version = 6;
    ahead.state = ChallengeState::Consumed;
    expect_conflict(
        store.replace_challenge(&ahead, 5).await,
        "replace_challenge with an expected version newer than the stored one must fail \
         with StoreErrorKind::Conflict",
    );
    let back = read(&*store, &record.id, "challenge after refused replaces").await;
    assert_same_record(
        "a replace_challenge that lost its compare-and-set must change nothing",
        &back,
        &current,
    );
}

/// Rule: `replace_challenge` of a challenge that does not exist fails with
/// [`StoreErrorKind::Conflict`] and does not create it (a replace is never
/// an upsert).
pub async fn check_replace_absent_conflicts(store: Arc<dyn Store>) {
    let mut record = sample_challenge(7, base_time());
    record.version = 1;
    expect_conflict(
        store.replace_challenge(&record, 0).await,
        "replace_challenge of an absent challenge must fail with StoreErrorKind::Conflict",
    );
    let got = ok(
        store.challenge(&record.id).await,
        "challenge after replacing an absent one",
    );
    assert!(
        got.is_none(),
        "replace_challenge of an absent challenge must not create it (got {got:?})"
    );
}

// ---------------------------------------------------------------------------
// Purge
// ---------------------------------------------------------------------------

/// Rule: `purge_challenges(before)` deletes exactly the challenges whose
/// `expires_at` is strictly before `before` and returns how many it deleted
/// (exactly; stores with native expiry must still implement it). A
/// challenge expiring at `before` stays.
pub async fn check_purge_expired(store: Arc<dyn Store>) {
    let now = base_time();
    let cut = now + Duration::hours(1);
    let with_expiry = |seed: u8, expires_at: OffsetDateTime| {
        let mut r = sample_challenge(seed, now);
        r.expires_at = expires_at;
        if let Some(send) = r.sends.first_mut() {
            send.expires_at = expires_at;
        }
        r
    };
    let gone = [
        with_expiry(0x40, now + Duration::minutes(10)),
        with_expiry(0x41, cut - Duration::minutes(30)),
        with_expiry(0x42, cut - Duration::seconds(1)),
    ];
    let kept = [
        with_expiry(0x43, cut),
        with_expiry(0x44, cut + Duration::seconds(1)),
        with_expiry(0x45, cut + Duration::days(1)),
    ];
    for r in gone.iter().chain(&kept) {
        ok(store.insert_challenge(r).await, "insert_challenge");
    }

    let before_any = ok(
        store.purge_challenges(now).await,
        "purge_challenges before any expiry",
    );
    assert_eq!(
        before_any, 0,
        "purge_challenges must delete nothing (and return 0) when no challenge expired \
         before the cut-off"
    );
    let purged = ok(store.purge_challenges(cut).await, "purge_challenges");
    assert_eq!(
        purged,
        u64::try_from(gone.len()).expect("small"),
        "purge_challenges must return exactly how many challenges expired before the cut-off"
    );
    for r in &gone {
        let got = ok(store.challenge(&r.id).await, "challenge after purge");
        assert!(
            got.is_none(),
            "purge_challenges must delete a challenge whose expires_at ({}) is before the \
             cut-off ({cut})",
            r.expires_at
        );
    }
    for r in &kept {
        let back = read(&*store, &r.id, "challenge after purge").await;
        assert_same_record(
            "purge_challenges must keep (unchanged) every challenge whose expires_at is at or \
             after the cut-off",
            &back,
            r,
        );
    }
    let again = ok(
        store.purge_challenges(cut).await,
        "a second purge_challenges",
    );
    assert_eq!(
        again, 0,
        "a second purge_challenges with the same cut-off must find nothing to delete"
    );
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

/// Rule: `hit` keeps a fixed window. The first hit on a key returns count 1
/// and `resets_at = now + window`; hits before `resets_at` increment the
/// count and keep `resets_at` (the window does not slide); a hit at
/// `now >= resets_at` starts a new window `[now, now + window)` at count 1.
pub async fn check_hit_window(store: Arc<dyn Store>) {
    let window = Duration::minutes(10);
    let t0 = base_time();
    let key = "testkit:hit-window";
    let hit = |at: OffsetDateTime| {
        let store = store.clone();
        async move { ok(store.hit(key, window, at).await, "hit") }
    };

    assert_eq!(
        hit(t0).await,
        WindowCount {
            count: 1,
            resets_at: t0 + window
        },
        "the first hit on a key must return count 1 and resets_at = now + window"
    );
    assert_eq!(
        hit(t0 + Duration::seconds(1)).await,
        WindowCount {
            count: 2,
            resets_at: t0 + window
        },
        "a hit within the window must increment the count and keep resets_at"
    );
    assert_eq!(
        hit(t0 + window - Duration::seconds(1)).await,
        WindowCount {
            count: 3,
            resets_at: t0 + window
        },
        "a hit one second before resets_at must still count in the same window"
    );
    let t1 = t0 + window;
    assert_eq!(
        hit(t1).await,
        WindowCount {
            count: 1,
            resets_at: t1 + window
        },
        "a hit at now == resets_at must start a new window at count 1 with \
         resets_at = now + window"
    );
    assert_eq!(
        hit(t1 + Duration::seconds(30)).await,
        WindowCount {
            count: 2,
            resets_at: t1 + window
        },
        "hits in the new window must increment from 1"
    );
    let t2 = t1 + window * 5 + Duration::seconds(7);
    assert_eq!(
        hit(t2).await,
        WindowCount {
            count: 1,
            resets_at: t2 + window
        },
        "a hit long after resets_at must start a new window at count 1, \
         resets_at = now + window"
    );

    // A window of another length on another key.
    let short = Duration::seconds(1);
    let got = ok(
        store.hit("testkit:hit-window:short", short, t0).await,
        "hit",
    );
    assert_eq!(
        got,
        WindowCount {
            count: 1,
            resets_at: t0 + short
        },
        "resets_at must be now + the window passed to hit"
    );
}

/// Rule: counters are independent per key, and any string is a key:
/// separators (`:`), spaces, quotes, SQL and glob wildcards, non-ASCII
/// text, keys that are prefixes of others, keys differing only in case, and
/// long keys (200 characters).
pub async fn check_hit_keys_independent(store: Arc<dyn Store>) {
    let window = Duration::minutes(10);
    let t0 = base_time();
    let keys = [
        "dest:+819012345678".to_owned(),
        "dest:+81901234567".to_owned(),
        "dest".to_owned(),
        "acct:user 42 with spaces".to_owned(),
        "Acct:User 42 With Spaces".to_owned(),
        "caller:'quoted' \"double\" \\ back".to_owned(),
        "wild:%_*?[a-z]{}".to_owned(),
        "宛先:＋８１ 電話 ✓ 🚀".to_owned(),
        format!("long:{}", "x".repeat(195)),
        format!("long:{}", "é".repeat(195)),
    ];
    assert_eq!(keys[8].chars().count(), 200);
    // Hit key i (i + 1) times.
    for (i, key) in keys.iter().enumerate() {
        for n in 1..=i + 1 {
            let got = ok(store.hit(key, window, t0).await, "hit");
            assert_eq!(
                got.count,
                u64::try_from(n).expect("small"),
                "hit counters must be independent per key and any string must work as a key; \
                 key {key:?} (hit {n} times) read {}",
                got.count
            );
        }
    }
    for (i, key) in keys.iter().enumerate() {
        let got = ok(store.hit(key, window, t0).await, "hit");
        assert_eq!(
            got.count,
            u64::try_from(i + 2).expect("small"),
            "hit counters must not affect each other; key {key:?}"
        );
    }
}

/// Rule: `replace_failures` is a compare-and-set on the whole run. From no
/// run (`expected` `None`) it creates one; with the stored run as
/// `expected` it replaces it (or, with `next` `None`, ends it); any other
/// `expected` — a stale count, another instant, a run where there is none,
/// none where there is one — is a [`StoreErrorKind::Conflict`] that changes
/// nothing. `failures` reads the run exactly as written (`None` for an
/// account with none); `clear_failures` ends it unconditionally; accounts
/// are independent; clearing an account without failures is `Ok`.
pub async fn check_failures(store: Arc<dyn Store>) {
    let t0 = base_time();
    let alice = AccountId::new("testkit:alice");
    let bob = AccountId::new("testkit:ボブ 'quoted' %_");
    let run = |consecutive, last_failure_at| FailureRecord {
        consecutive,
        last_failure_at,
    };
    let read = |store: Arc<dyn Store>, account: AccountId| async move {
        ok(store.failures(&account).await, "failures")
    };
    let none = read(store.clone(), alice.clone()).await;
    assert!(
        none.is_none(),
        "failures must be None for an account that never failed (got {none:?})"
    );

    let first = run(1, t0);
    ok(
        store.replace_failures(&alice, None, Some(first)).await,
        "replace_failures from no run",
    );
    assert_eq!(
        read(store.clone(), alice.clone()).await,
        Some(first),
        "failures must return the run replace_failures wrote"
    );
    let t1 = t0 + Duration::seconds(42);
    let cases: [(Option<FailureRecord>, &str); 3] = [
        (None, "no run expected while one is stored"),
        (Some(run(7, t0)), "a stale consecutive count"),
        (Some(run(1, t1)), "the right count at another instant"),
    ];
    for (expected, why) in cases {
        let got = store
            .replace_failures(&alice, expected, Some(run(9, t1)))
            .await;
        assert_conflict(got, &format!("replace_failures with {why}"));
        assert_eq!(
            read(store.clone(), alice.clone()).await,
            Some(first),
            "a replace_failures that conflicted ({why}) must leave the run alone"
        );
    }
    let second = run(2, t1);
    ok(
        store
            .replace_failures(&alice, Some(first), Some(second))
            .await,
        "replace_failures from the stored run",
    );
    assert_eq!(
        read(store.clone(), alice.clone()).await,
        Some(second),
        "replace_failures must store the new run (count and instant)"
    );

    assert!(
        read(store.clone(), bob.clone()).await.is_none(),
        "failure runs must be per account: another account's run leaked"
    );
    ok(
        store.replace_failures(&bob, None, Some(run(1, t1))).await,
        "replace_failures for a second account",
    );
    assert_eq!(
        read(store.clone(), bob.clone())
            .await
            .map(|r| r.consecutive),
        Some(1),
        "failure runs must be per account"
    );

    let ended = store.replace_failures(&alice, Some(first), None).await;
    assert_conflict(ended, "replace_failures ending a run from a stale one");
    ok(
        store.replace_failures(&alice, Some(second), None).await,
        "replace_failures ending the stored run",
    );
    assert!(
        read(store.clone(), alice.clone()).await.is_none(),
        "replace_failures with next None must end the run"
    );
    ok(
        store.replace_failures(&alice, None, None).await,
        "replace_failures from no run to no run",
    );
    let t2 = t1 + Duration::minutes(3);
    ok(
        store.replace_failures(&alice, None, Some(run(1, t2))).await,
        "replace_failures starting a new run",
    );
    ok(store.clear_failures(&alice).await, "clear_failures");
    let cleared = read(store.clone(), alice.clone()).await;
    assert!(
        cleared.is_none(),
        "after clear_failures, failures must be None, got {cleared:?}"
    );
    assert_eq!(
        read(store.clone(), bob.clone())
            .await
            .map(|r| r.consecutive),
        Some(1),
        "clear_failures of one account must not touch another's run"
    );
    ok(
        store
            .clear_failures(&AccountId::new("testkit:never-failed"))
            .await,
        "clear_failures of an account without failures must be Ok",
    );
}

/// Panics unless `result` is a [`StoreErrorKind::Conflict`].
fn assert_conflict(result: Result<(), StoreError>, what: &str) {
    match result {
        Err(e) if e.is_conflict() => {}
        Err(e) => panic!("{what} must be a Conflict, got {}", describe(&e)),
        Ok(()) => panic!("{what} must be a Conflict, but it was applied"),
    }
}

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

/// Rule: a device read back after `insert_device` equals what was inserted,
/// field for field: account, id, a large version, token key id and tag,
/// a label full of awkward characters, the three instants, a large epoch,
/// and `revoked_at` both `None` and `Some`. An absent id reads `None`.
pub async fn check_device_insert_and_read_back(store: Arc<dyn Store>) {
    let now = base_time();
    let account = AccountId::new("testkit:device:アカウント 'quoted' %_");
    let plain = sample_device(&account, 1, now);

    let mut rich = sample_device(&account, 2, now);
    rich.version = 1 << 40;
    rich.token = KeyedHash {
        key_id: KeyId(u32::MAX),
        tag: Tag(std::array::from_fn(|i| u8::try_from(i * 8).expect("< 256"))),
    };
    rich.label = "Chrome on Windows · 東京 \"quoted\" 'single' \\ %_* \n new line 🚀".to_owned();
    rich.created_at = now + Duration::seconds(1);
    rich.last_used_at = now + Duration::seconds(61);
    rich.expires_at = now + Duration::days(27);
    rich.epoch = 1 << 40;
    rich.revoked_at = Some(now + Duration::seconds(122));

    let mut empty_label = sample_device(&account, 3, now);
    empty_label.label = String::new();
    empty_label.token.key_id = KeyId(0);

    let devices = [plain, rich, empty_label];
    for d in &devices {
        ok(
            store.insert_device(d).await,
            "insert_device of a new account and id",
        );
    }
    for d in &devices {
        let back = read_device(&*store, &d.account, &d.id, "device after insert_device").await;
        assert_same_device(
            "a device read back after insert_device must equal what was inserted",
            &back,
            d,
        );
    }

    let absent = ok(
        store.device(&account, &device_id(4)).await,
        "device of an absent id",
    );
    assert!(
        absent.is_none(),
        "DeviceStore::device must return None for an id never inserted (got {absent:?})"
    );
}

/// Rule: inserting a device whose account and id exist fails with
/// [`StoreErrorKind::Conflict`] and leaves the stored device unchanged (an
/// insert is never an upsert).
pub async fn check_device_insert_existing_conflicts(store: Arc<dyn Store>) {
    let account = AccountId::new("testkit:device:insert-twice");
    let original = sample_device(&account, 5, base_time());
    ok(store.insert_device(&original).await, "insert_device");
    let mut other = sample_device(&account, 5, base_time() + Duration::minutes(1));
    other.version = 7;
    other.label = "another device with the same id".to_owned();
    other.epoch = 3;
    other.revoked_at = Some(base_time());
    expect_conflict(
        store.insert_device(&other).await,
        "insert_device of an id the account already has must fail with \
         StoreErrorKind::Conflict",
    );
    let back = read_device(
        &*store,
        &account,
        &original.id,
        "device after a duplicate insert",
    )
    .await;
    assert_same_device(
        "a duplicate insert_device must leave the original device unchanged",
        &back,
        &original,
    );
}

/// Rule: a device is keyed by account **and** id. The same device id under
/// two accounts (here differing only in case) is two independent devices:
/// both inserts succeed, each reads back its own record, and replacing or
/// deleting one leaves the other alone.
pub async fn check_device_ids_per_account(store: Arc<dyn Store>) {
    let now = base_time();
    let alice = AccountId::new("testkit:device:alice");
    let upper = AccountId::new("testkit:device:ALICE");
    let mut a = sample_device(&alice, 6, now);
    a.label = "alice's".to_owned();
    let mut b = sample_device(&upper, 6, now + Duration::seconds(1));
    b.label = "ALICE's".to_owned();
    b.epoch = 2;
    assert_eq!(a.id, b.id);
    ok(store.insert_device(&a).await, "insert_device");
    ok(
        store.insert_device(&b).await,
        "insert_device of a device id another account already has must succeed (devices are \
         keyed by account and id)",
    );
    for d in [&a, &b] {
        let back = read_device(&*store, &d.account, &d.id, "device after insert_device").await;
        assert_same_device(
            "the same device id under two accounts must be two independent devices",
            &back,
            d,
        );
    }

    let mut a2 = a.clone();
    a2.version = 1;
    a2.revoked_at = Some(now + Duration::seconds(2));
    ok(store.replace_device(&a2, 0).await, "replace_device");
    let back = read_device(&*store, &upper, &b.id, "device after another's replace").await;
    assert_same_device(
        "replace_device must touch only the device of its own account (same id, other \
         account)",
        &back,
        &b,
    );
    let existed = ok(store.delete_device(&alice, &a.id).await, "delete_device");
    assert!(
        existed,
        "delete_device of an existing device must return true"
    );
    let back = read_device(&*store, &upper, &b.id, "device after another's delete").await;
    assert_same_device(
        "delete_device must delete only the device of its own account (same id, other \
         account)",
        &back,
        &b,
    );
}

/// Rule: `devices(account)` lists exactly the account's devices, each once
/// and field for field: none of an account that differs only in case, or
/// whose id is a prefix (or an extension) of this one, and an empty list
/// for an account without devices.
pub async fn check_devices_lists_one_account(store: Arc<dyn Store>) {
    let now = base_time();
    let accounts = awkward_accounts("testkit:devices");
    // Account i gets i + 1 devices; device seed 0 is under every account.
    let mut expected: Vec<Vec<DeviceRecord>> = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        let mut mine = Vec::new();
        for n in 0..=i {
            let seed = if n == 0 {
                0
            } else {
                u8::try_from(16 * i + n).expect("few devices")
            };
            let mut d = sample_device(account, seed, now);
            d.label = format!("device {n} of {account}");
            d.revoked_at = (n % 2 == 1).then_some(now);
            ok(store.insert_device(&d).await, "insert_device");
            mine.push(d);
        }
        expected.push(mine);
    }
    for (account, want) in accounts.iter().zip(&expected) {
        let mut got = ok(store.devices(account).await, "devices");
        got.sort_by_key(|d| d.id);
        let mut want = want.clone();
        want.sort_by_key(|d| d.id);
        let ids = |list: &[DeviceRecord]| list.iter().map(|d| d.id).collect::<Vec<_>>();
        assert_eq!(
            ids(&got),
            ids(&want),
            "devices({account:?}) must list exactly that account's devices, each once (none of \
             an account differing in case, or a prefix or extension of it)"
        );
        assert!(
            got.iter().all(|d| d.account == *account),
            "devices({account:?}) returned a device of another account"
        );
        for (g, w) in got.iter().zip(&want) {
            assert_same_device("devices must return every field of each device", g, w);
        }
    }
    let none = ok(
        store
            .devices(&AccountId::new("testkit:devices:nobody"))
            .await,
        "devices of an account without devices",
    );
    assert!(
        none.is_empty(),
        "devices must return an empty list for an account without devices (got {none:?})"
    );
}

/// Rule: `replace_device(record, v)` succeeds when the stored device has
/// version `v` and the new record is read back; a stale or newer version,
/// an absent id, or the same id under another account is a
/// [`StoreErrorKind::Conflict`] that changes (or creates) nothing.
pub async fn check_device_replace(store: Arc<dyn Store>) {
    let now = base_time();
    let account = AccountId::new("testkit:device:replace");
    let original = sample_device(&account, 7, now);
    ok(store.insert_device(&original).await, "insert_device");

    // "Last used" refreshed.
    let mut refreshed = original.clone();
    refreshed.version = 1;
    refreshed.last_used_at = now + Duration::hours(1);
    ok(
        store.replace_device(&refreshed, 0).await,
        "replace_device with the stored version must succeed",
    );
    let back = read_device(&*store, &account, &original.id, "device after replace").await;
    assert_same_device(
        "after a successful replace_device the new record (and version) is read back",
        &back,
        &refreshed,
    );
    // Revoked, from the new version.
    let mut revoked = refreshed.clone();
    revoked.version = 2;
    revoked.revoked_at = Some(now + Duration::hours(2));
    ok(
        store.replace_device(&revoked, 1).await,
        "a second replace_device from the new version must succeed",
    );
    let back = read_device(&*store, &account, &original.id, "device after two replaces").await;
    assert_same_device(
        "after a second replace_device the latest record is read back",
        &back,
        &revoked,
    );

    // A refresh prepared against version 1, and one claiming version 5.
    let mut stale = refreshed.clone();
    stale.version = 2;
    stale.last_used_at = now + Duration::hours(3);
    expect_conflict(
        store.replace_device(&stale, 1).await,
        "replace_device with a stale expected version must fail with StoreErrorKind::Conflict \
         (a late refresh must not undo a revocation)",
    );
    let mut ahead = revoked.clone();
    ahead.version = 6;
    ahead.revoked_at = None;
    expect_conflict(
        store.replace_device(&ahead, 5).await,
        "replace_device with an expected version newer than the stored one must fail with \
         StoreErrorKind::Conflict",
    );
    let back = read_device(
        &*store,
        &account,
        &original.id,
        "device after refused replaces",
    )
    .await;
    assert_same_device(
        "a replace_device that lost its compare-and-set must change nothing",
        &back,
        &revoked,
    );

    // Absent: another id, or this id under another account.
    let mut absent = sample_device(&account, 8, now);
    absent.version = 1;
    let mut elsewhere = original.clone();
    elsewhere.account = AccountId::new("testkit:device:replace:other");
    elsewhere.version = 1;
    for d in [&absent, &elsewhere] {
        expect_conflict(
            store.replace_device(d, 0).await,
            "replace_device of an absent device (unknown id, or a known id under another \
             account) must fail with StoreErrorKind::Conflict",
        );
        let got = ok(
            store.device(&d.account, &d.id).await,
            "device after replacing an absent one",
        );
        assert!(
            got.is_none(),
            "replace_device of an absent device must not create it (got {got:?})"
        );
    }
}

/// Rule: `delete_device` returns `true` when it removed the device and
/// `false` when there was none (already deleted, never inserted, or only
/// under another account); it removes only that device.
pub async fn check_delete_device(store: Arc<dyn Store>) {
    let now = base_time();
    let account = AccountId::new("testkit:device:delete");
    let neighbour = AccountId::new("testkit:device:delete:2");
    let gone = sample_device(&account, 9, now);
    let kept = sample_device(&account, 10, now);
    let other = sample_device(&neighbour, 11, now);
    for d in [&gone, &kept, &other] {
        ok(store.insert_device(d).await, "insert_device");
    }

    let first = ok(
        store.delete_device(&account, &gone.id).await,
        "delete_device",
    );
    assert!(
        first,
        "delete_device of an existing device must return true"
    );
    let got = ok(
        store.device(&account, &gone.id).await,
        "device after delete_device",
    );
    assert!(
        got.is_none(),
        "after delete_device the device must read None (got {got:?})"
    );
    let second = ok(
        store.delete_device(&account, &gone.id).await,
        "delete_device",
    );
    assert!(
        !second,
        "delete_device of an already deleted device must return false"
    );
    let never = ok(
        store.delete_device(&account, &device_id(12)).await,
        "delete_device",
    );
    assert!(
        !never,
        "delete_device of a device never inserted must return false"
    );
    let wrong_account = ok(
        store.delete_device(&account, &other.id).await,
        "delete_device",
    );
    assert!(
        !wrong_account,
        "delete_device of another account's device id must return false (and delete nothing)"
    );

    for d in [&kept, &other] {
        let back = read_device(&*store, &d.account, &d.id, "device after delete_device").await;
        assert_same_device(
            "delete_device must remove only the device it names",
            &back,
            d,
        );
    }
}

/// Rule: `delete_devices(account)` removes every device of the account
/// (revoked or not) and returns exactly how many there were; devices of
/// other accounts (differing in case, sharing a prefix) stay. Afterwards
/// `devices` is empty, and a second call, or one for an account without
/// devices, returns 0.
pub async fn check_delete_devices(store: Arc<dyn Store>) {
    let now = base_time();
    let accounts = awkward_accounts("testkit:delete-devices");
    let mut all = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        for n in 0..3u8 {
            let mut d = sample_device(account, n, now);
            d.revoked_at = (n == 1).then_some(now);
            d.epoch = u64::try_from(i).expect("few");
            ok(store.insert_device(&d).await, "insert_device");
            all.push(d);
        }
    }
    let target = &accounts[0];
    let deleted = ok(store.delete_devices(target).await, "delete_devices");
    assert_eq!(
        deleted, 3,
        "delete_devices must return exactly how many devices the account had (3)"
    );
    let left = ok(store.devices(target).await, "devices after delete_devices");
    assert!(
        left.is_empty(),
        "after delete_devices the account must have no devices (got {left:?})"
    );
    for d in all.iter().filter(|d| d.account != *target) {
        let back = read_device(&*store, &d.account, &d.id, "device after delete_devices").await;
        assert_same_device(
            "delete_devices must leave every other account's devices alone (accounts differing \
             in case, or sharing a prefix, included)",
            &back,
            d,
        );
    }
    let again = ok(
        store.delete_devices(target).await,
        "a second delete_devices",
    );
    assert_eq!(
        again, 0,
        "a second delete_devices must find nothing to delete and return 0"
    );
    let nobody = ok(
        store
            .delete_devices(&AccountId::new("testkit:delete-devices:nobody"))
            .await,
        "delete_devices of an account without devices",
    );
    assert_eq!(
        nobody, 0,
        "delete_devices of an account without devices must return 0"
    );
}

// ---------------------------------------------------------------------------
// Contact books and claims
// ---------------------------------------------------------------------------

/// Rule: an account without a book reads `None`; the first
/// `commit_contacts` (expected version `None`) stores the book, which reads
/// back equal, field for field (contacts, verification times, the
/// two-factor flag, the grace state); a key nobody claimed has no owner.
pub async fn check_contact_book_insert_and_read_back(store: Arc<dyn Store>) {
    let account = AccountId::new("testkit:contacts:insert");
    let absent = ok(store.contact_book(&account).await, "contact_book");
    assert!(
        absent.is_none(),
        "ContactStore::contact_book must return None for an account without a book \
         (got {absent:?})"
    );
    let book = sample_contact_book(&account, base_time());
    committed(
        &*store,
        &book,
        None,
        &[],
        &[],
        "the first commit_contacts of an account without a book",
    )
    .await;
    let back = read_book(&*store, &account, "contact book after its first commit").await;
    assert_same_book(
        "a contact book read back after commit_contacts must equal what was committed",
        &back,
        &book,
    );
    let other = AccountId::new("testkit:contacts:insert:other");
    let none = ok(store.contact_book(&other).await, "contact_book");
    assert!(
        none.is_none(),
        "contact_book must return None for an account without a book, also when another \
         account has one (got {none:?})"
    );
    let owner = ok(
        store.claim_owner("+819099999999").await,
        "claim_owner of a key never claimed",
    );
    assert!(
        owner.is_none(),
        "claim_owner must return None for a key never claimed (got {owner:?})"
    );
}

/// Rule: `commit_contacts` is a compare-and-set on the book's version. A
/// commit from the stored version succeeds and the new book is read back;
/// a stale or newer version, or "no book" (`None`) when one exists, is a
/// [`StoreErrorKind::Conflict`] that changes nothing, neither the book
/// nor any claim (keys it would claim stay free, keys it would release
/// stay held); an expected version for an account without a book is a
/// `Conflict` that creates nothing.
pub async fn check_contact_book_compare_and_set(store: Arc<dyn Store>) {
    let account = AccountId::new("testkit:contacts:cas");
    let now = base_time();
    let held = claim_key(0xCA, 0);
    let wanted = claim_key(0xCA, 1);
    let v1 = sample_contact_book(&account, now);
    committed(&*store, &v1, None, &[&held], &[], "the first commit").await;

    let v2 = next_book(&v1, "cas-2@example.com", now);
    committed(
        &*store,
        &v2,
        Some(1),
        &[],
        &[],
        "commit_contacts from the stored version",
    )
    .await;
    let back = read_book(&*store, &account, "contact book after a commit").await;
    assert_same_book(
        "after commit_contacts from the stored version the new book must be read back",
        &back,
        &v2,
    );

    let stale = next_book(&v1, "stale@example.com", now);
    let mut newer = next_book(&v2, "newer@example.com", now);
    newer.version = 9;
    for (book, expected, what) in [
        (&stale, Some(1), "a stale version"),
        (&newer, Some(8), "a newer version"),
        (&newer, None, "no book expected while one exists"),
    ] {
        expect_commit_conflict(
            store
                .commit_contacts(book, expected, &changes(&[&wanted], &[&held]))
                .await,
            &format!("commit_contacts with {what} must fail with StoreErrorKind::Conflict"),
        );
        let back = read_book(&*store, &account, "contact book after a conflict").await;
        assert_same_book(
            &format!("a commit_contacts with {what} must leave the book unchanged"),
            &back,
            &v2,
        );
        assert_owners(
            &*store,
            &[(&held, Some(&account)), (&wanted, None)],
            &format!(
                "a commit_contacts with {what} must change no claim (none claimed, none \
                 released)"
            ),
        )
        .await;
    }

    let ghost = AccountId::new("testkit:contacts:cas:ghost");
    let mut phantom = sample_contact_book(&ghost, now);
    phantom.version = 2;
    expect_commit_conflict(
        store
            .commit_contacts(&phantom, Some(1), &changes(&[&wanted], &[]))
            .await,
        "commit_contacts with an expected version for an account without a book must fail \
         with StoreErrorKind::Conflict (a compare-and-set is never an upsert)",
    );
    let none = ok(store.contact_book(&ghost).await, "contact_book");
    assert!(
        none.is_none(),
        "a conflicting commit_contacts must not create a book (got {none:?})"
    );
    assert_owners(
        &*store,
        &[(&wanted, None)],
        "a conflicting commit_contacts must claim nothing",
    )
    .await;
}

/// Rule: `commit_contacts` claims keys for the book's account, and
/// `claim_owner` names it; claiming a key the account already holds again
/// (in the next commit, or twice in one list) is fine and keeps it; keys
/// never claimed have no owner.
pub async fn check_contact_claims(store: Arc<dyn Store>) {
    let account = AccountId::new("testkit:contacts:claims");
    let now = base_time();
    let (k0, k1, k2) = (claim_key(0xC1, 0), claim_key(0xC1, 1), claim_key(0xC1, 2));
    let v1 = sample_contact_book(&account, now);
    committed(
        &*store,
        &v1,
        None,
        &[&k0],
        &[],
        "a first commit claiming one key",
    )
    .await;
    assert_owners(
        &*store,
        &[(&k0, Some(&account)), (&k1, None), (&k2, None)],
        "after a commit claiming a key, claim_owner must name the account (and only that key \
         is claimed)",
    )
    .await;

    let v2 = next_book(&v1, "claims-2@example.com", now);
    committed(
        &*store,
        &v2,
        Some(1),
        &[&k0, &k1, &k1],
        &[],
        "a commit claiming a held key again plus a new key (listed twice)",
    )
    .await;
    assert_owners(
        &*store,
        &[(&k0, Some(&account)), (&k1, Some(&account)), (&k2, None)],
        "claiming a key the account already holds must keep it, and a new key must be claimed",
    )
    .await;
    let back = read_book(&*store, &account, "contact book after claims").await;
    assert_same_book(
        "a commit that claims keys must also store the book",
        &back,
        &v2,
    );
}

/// Rule: a commit claiming a key held by **another** account returns
/// [`ContactCommit::Taken`] with the index of the first such key in the
/// claim list, and writes nothing: the book stays as it was (or absent),
/// no other key in the list is claimed, and no key in the release list is
/// released.
pub async fn check_contact_claim_taken_writes_nothing(store: Arc<dyn Store>) {
    let now = base_time();
    let alice = AccountId::new("testkit:contacts:taken:alice");
    let bob = AccountId::new("testkit:contacts:taken:bob");
    let (a0, a1) = (claim_key(0x7A, 0), claim_key(0x7A, 1));
    let (b0, free) = (claim_key(0x7A, 2), claim_key(0x7A, 3));
    let alice_book = sample_contact_book(&alice, now);
    committed(
        &*store,
        &alice_book,
        None,
        &[&a0, &a1],
        &[],
        "alice's first commit",
    )
    .await;

    // Bob has no book yet: his first commit hits alice's key at index 1.
    let bob_first = sample_contact_book(&bob, now);
    let got = commit(
        &*store,
        &bob_first,
        None,
        &[&free, &a1, &a0],
        &[],
        "a commit claiming another account's key",
    )
    .await;
    assert_eq!(
        got,
        ContactCommit::Taken { index: 1 },
        "commit_contacts claiming [free, held by another, held by another] must return Taken \
         with the index of the first key held by another account"
    );
    let none = ok(store.contact_book(&bob).await, "contact_book");
    assert!(
        none.is_none(),
        "a Taken commit must not store the book (got {none:?})"
    );
    assert_owners(
        &*store,
        &[(&free, None), (&a0, Some(&alice)), (&a1, Some(&alice))],
        "a Taken commit must claim nothing, not even the free keys before the taken one, and \
         must leave the other account's claims alone",
    )
    .await;

    // Bob with a book and a claim of his own: a Taken commit releases nothing.
    committed(&*store, &bob_first, None, &[&b0], &[], "bob's first commit").await;
    let bob_next = next_book(&bob_first, "bob-2@example.com", now);
    let got = commit(
        &*store,
        &bob_next,
        Some(1),
        &[&a0],
        &[&b0],
        "a swap onto another account's key",
    )
    .await;
    assert_eq!(
        got,
        ContactCommit::Taken { index: 0 },
        "commit_contacts claiming a key held by another account must return Taken"
    );
    let back = read_book(&*store, &bob, "bob's book after a Taken commit").await;
    assert_same_book(
        "a Taken commit must leave the account's book unchanged",
        &back,
        &bob_first,
    );
    assert_owners(
        &*store,
        &[(&b0, Some(&bob)), (&a0, Some(&alice))],
        "a Taken commit must release nothing (the account keeps its key)",
    )
    .await;
    // The commit can be retried from the same version once it claims no
    // taken key.
    committed(
        &*store,
        &bob_next,
        Some(1),
        &[&free],
        &[],
        "the same commit without the taken key",
    )
    .await;
}

/// Rule: a commit releases only keys the book's account holds: keys held
/// by another account and keys nobody holds are left as they are.
pub async fn check_contact_release_only_own(store: Arc<dyn Store>) {
    let now = base_time();
    let alice = AccountId::new("testkit:contacts:release:alice");
    let bob = AccountId::new("testkit:contacts:release:bob");
    let (a0, a1, b0, free) = (
        claim_key(0x2E, 0),
        claim_key(0x2E, 1),
        claim_key(0x2E, 2),
        claim_key(0x2E, 3),
    );
    let alice_book = sample_contact_book(&alice, now);
    committed(
        &*store,
        &alice_book,
        None,
        &[&a0, &a1],
        &[],
        "alice's first commit",
    )
    .await;
    committed(
        &*store,
        &sample_contact_book(&bob, now),
        None,
        &[&b0],
        &[],
        "bob's first commit",
    )
    .await;
    let next = next_book(&alice_book, "release@example.com", now);
    committed(
        &*store,
        &next,
        Some(1),
        &[],
        &[&a0, &b0, &free],
        "a commit releasing its own key, another account's key and a free key",
    )
    .await;
    assert_owners(
        &*store,
        &[
            (&a0, None),
            (&a1, Some(&alice)),
            (&b0, Some(&bob)),
            (&free, None),
        ],
        "commit_contacts must release only the keys the book's account holds (another \
         account's key stays its own, a free key stays free, keys not listed stay held)",
    )
    .await;
    // The released key is free for anyone.
    let bob_book = read_book(&*store, &bob, "bob's book").await;
    committed(
        &*store,
        &next_book(&bob_book, "bob-2@example.com", now),
        Some(1),
        &[&a0],
        &[],
        "claiming a released key",
    )
    .await;
    assert_owners(
        &*store,
        &[(&a0, Some(&bob))],
        "a released key must be claimable by another account",
    )
    .await;
}

/// Rule: a number changes hands in one commit: claiming the new key and
/// releasing the old one together leaves the account holding the new key
/// only, and the old key free for another account. A key released and
/// claimed in the same commit stays claimed. A swap onto a key held by
/// another account is `Taken`, and the old key stays held.
pub async fn check_contact_swap(store: Arc<dyn Store>) {
    let now = base_time();
    let alice = AccountId::new("testkit:contacts:swap:alice");
    let bob = AccountId::new("testkit:contacts:swap:bob");
    let (old, new, bobs, both) = (
        claim_key(0x5A, 0),
        claim_key(0x5A, 1),
        claim_key(0x5A, 2),
        claim_key(0x5A, 3),
    );
    let v1 = sample_contact_book(&alice, now);
    committed(
        &*store,
        &v1,
        None,
        &[&old, &both],
        &[],
        "alice's first commit",
    )
    .await;
    committed(
        &*store,
        &sample_contact_book(&bob, now),
        None,
        &[&bobs],
        &[],
        "bob's first commit",
    )
    .await;

    let refused = next_book(&v1, "swap-refused@example.com", now);
    let got = commit(
        &*store,
        &refused,
        Some(1),
        &[&bobs],
        &[&old],
        "a swap onto another account's key",
    )
    .await;
    assert_eq!(
        got,
        ContactCommit::Taken { index: 0 },
        "a swap onto a key held by another account must return Taken"
    );
    assert_owners(
        &*store,
        &[(&old, Some(&alice)), (&bobs, Some(&bob))],
        "a Taken swap must keep the old key held and the other account's key its own",
    )
    .await;

    let v2 = next_book(&v1, "swap@example.com", now);
    committed(
        &*store,
        &v2,
        Some(1),
        &[&new, &both],
        &[&old, &both],
        "a swap (claim the new key, release the old one)",
    )
    .await;
    assert_owners(
        &*store,
        &[
            (&new, Some(&alice)),
            (&old, None),
            (&both, Some(&alice)),
            (&bobs, Some(&bob)),
        ],
        "after a swap the account must hold the new key and not the old one, and a key both \
         released and claimed in one commit must stay claimed",
    )
    .await;
    let back = read_book(&*store, &alice, "contact book after a swap").await;
    assert_same_book("a swap must store the new book", &back, &v2);

    let bob_book = read_book(&*store, &bob, "bob's book").await;
    committed(
        &*store,
        &next_book(&bob_book, "bob-2@example.com", now),
        Some(1),
        &[&old],
        &[],
        "claiming the key released by a swap",
    )
    .await;
    assert_owners(
        &*store,
        &[(&old, Some(&bob))],
        "the key released by a swap must be claimable by another account",
    )
    .await;
}

/// Rule: `delete_contacts` removes the account's book and releases every
/// key it holds, and nothing of any other account (accounts differing
/// only in case or sharing a prefix included); deleting again, or an
/// account that never had a book, is `Ok`; afterwards the account may
/// start a new book (expected version `None`) and claim its keys again.
pub async fn check_delete_contacts(store: Arc<dyn Store>) {
    let now = base_time();
    let accounts = awkward_accounts("testkit:contacts:delete");
    let mut books = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        let seed = u8::try_from(i).expect("few accounts");
        let book = sample_contact_book(account, now);
        committed(
            &*store,
            &book,
            None,
            &[&claim_key(0xD0, 2 * seed), &claim_key(0xD0, 2 * seed + 1)],
            &[],
            "a first commit",
        )
        .await;
        books.push(book);
    }
    let gone = &accounts[0];
    ok(store.delete_contacts(gone).await, "delete_contacts");
    let none = ok(store.contact_book(gone).await, "contact_book");
    assert!(
        none.is_none(),
        "after delete_contacts the account must have no book (got {none:?})"
    );
    assert_owners(
        &*store,
        &[(&claim_key(0xD0, 0), None), (&claim_key(0xD0, 1), None)],
        "delete_contacts must release every key the account held",
    )
    .await;
    for (i, (account, book)) in accounts.iter().zip(&books).enumerate().skip(1) {
        let seed = u8::try_from(i).expect("few accounts");
        let back = read_book(&*store, account, "another account's book").await;
        assert_same_book(
            &format!("delete_contacts of {gone:?} must leave the book of {account:?} alone"),
            &back,
            book,
        );
        assert_owners(
            &*store,
            &[
                (&claim_key(0xD0, 2 * seed), Some(account)),
                (&claim_key(0xD0, 2 * seed + 1), Some(account)),
            ],
            &format!("delete_contacts of {gone:?} must leave the claims of {account:?} alone"),
        )
        .await;
    }
    ok(store.delete_contacts(gone).await, "delete_contacts again");
    ok(
        store
            .delete_contacts(&AccountId::new("testkit:contacts:delete:never"))
            .await,
        "delete_contacts of an account without a book",
    );
    committed(
        &*store,
        &sample_contact_book(gone, now),
        None,
        &[&claim_key(0xD0, 1)],
        &[],
        "a first commit after delete_contacts",
    )
    .await;
    assert_owners(
        &*store,
        &[
            (&claim_key(0xD0, 1), Some(gone)),
            (&claim_key(0xD0, 0), None),
        ],
        "after delete_contacts the account must be able to start again",
    )
    .await;
}

/// Rule: any string is a claim key, and keys are exact: numbers that are
/// prefixes of one another, email addresses differing only in case,
/// separators, spaces, quotes, SQL and glob wildcards and non-ASCII text
/// are all distinct keys, each with its own owner.
pub async fn check_contact_claim_keys_independent(store: Arc<dyn Store>) {
    let now = base_time();
    let keys = [
        "+819012345678",
        "+81901234567",
        "+8190123456789",
        "taro@example.com",
        "Taro@example.com",
        "taro@example.co",
        "a:b",
        "a",
        "a b",
        "'quoted' \"double\" \\ %_*?[a-z]{}",
        "東京@例え.jp",
    ];
    // Account i claims key i.
    let accounts: Vec<AccountId> = (0..keys.len())
        .map(|i| AccountId::new(format!("testkit:contacts:keys:{i}")))
        .collect();
    for (account, key) in accounts.iter().zip(keys) {
        committed(
            &*store,
            &sample_contact_book(account, now),
            None,
            &[key],
            &[],
            "a first commit claiming an awkward key",
        )
        .await;
    }
    for (account, key) in accounts.iter().zip(keys) {
        assert_owners(
            &*store,
            &[(key, Some(account))],
            "claim keys must be exact: a key that is a prefix of another, differs only in \
             case or holds separators, wildcards or non-ASCII text is a key of its own",
        )
        .await;
    }
    // Releasing one key leaves its look-alikes held.
    let book = read_book(&*store, &accounts[0], "contact book").await;
    committed(
        &*store,
        &next_book(&book, "keys@example.com", now),
        Some(1),
        &[],
        &[keys[0]],
        "releasing one key",
    )
    .await;
    assert_owners(
        &*store,
        &[
            (keys[0], None),
            (keys[1], Some(&accounts[1])),
            (keys[2], Some(&accounts[2])),
        ],
        "releasing a key must not release keys that merely look like it",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Combined verifications
// ---------------------------------------------------------------------------

/// Rule: a verification read back after `insert_verification` equals what
/// was inserted, field for field (members, verification times, purpose,
/// account, times); an id never inserted reads `None`.
pub async fn check_verification_insert_and_read_back(store: Arc<dyn Store>) {
    let now = base_time();
    let record = sample_verification(1, now);
    ok(
        store.insert_verification(&record).await,
        "insert_verification of a new id",
    );
    let back = read_verification(&*store, &record.id, "verification after insert").await;
    assert_eq!(
        back, record,
        "a verification read back after insert_verification must equal what was inserted"
    );

    // Every optional field set, another purpose and a large version.
    let mut full = sample_verification(2, now);
    full.version = u64::MAX - 1;
    full.purpose = Purpose::Other("testkit:custom purpose".to_owned());
    full.account = Some(AccountId::new("testkit:verification:アカウント"));
    full.locale = Locale::En;
    full.members[0].verified_at = Some(now + Duration::seconds(10));
    full.members[1].verified_at = Some(now + Duration::seconds(20));
    full.completed_at = Some(now + Duration::seconds(20));
    full.taken_at = Some(now + Duration::seconds(21));
    ok(
        store.insert_verification(&full).await,
        "insert_verification",
    );
    let back = read_verification(&*store, &full.id, "verification after insert").await;
    assert_eq!(
        back, full,
        "every field of a verification must survive the round trip"
    );

    let absent = sample_verification(3, now).id;
    let got = ok(
        store.verification(&absent).await,
        "verification of an absent id",
    );
    assert!(
        got.is_none(),
        "VerificationStore::verification must return None for an id never inserted (got \
         {got:?})"
    );
}

/// Rule: inserting a verification whose id exists fails with
/// [`StoreErrorKind::Conflict`] and leaves the stored record unchanged.
pub async fn check_verification_insert_existing_conflicts(store: Arc<dyn Store>) {
    let now = base_time();
    let original = sample_verification(4, now);
    ok(
        store.insert_verification(&original).await,
        "insert_verification",
    );
    let mut other = sample_verification(4, now + Duration::minutes(1));
    other.version = 7;
    other.purpose = Purpose::ContactChange;
    expect_conflict(
        store.insert_verification(&other).await,
        "insert_verification of an existing id must fail with StoreErrorKind::Conflict",
    );
    let back = read_verification(&*store, &original.id, "verification after a duplicate").await;
    assert_eq!(
        back, original,
        "a duplicate insert_verification must leave the original record unchanged"
    );
}

/// Rule: `replace_verification(record, v)` succeeds when the stored version
/// is `v`, and the new record is read back (twice in a row); a stale or
/// newer version, or an absent id, is a [`StoreErrorKind::Conflict`] that
/// changes (or creates) nothing.
pub async fn check_verification_replace(store: Arc<dyn Store>) {
    let now = base_time();
    let record = sample_verification(5, now);
    ok(
        store.insert_verification(&record).await,
        "insert_verification",
    );
    let mut v1 = record.clone();
    v1.version = 1;
    v1.members[1].verified_at = Some(now + Duration::seconds(5));
    ok(
        store.replace_verification(&v1, 0).await,
        "replace_verification from the stored version",
    );
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.members[0].verified_at = Some(now + Duration::seconds(9));
    v2.completed_at = Some(now + Duration::seconds(9));
    v2.expires_at = now + Duration::hours(1);
    ok(
        store.replace_verification(&v2, 1).await,
        "replace_verification from the new version",
    );
    let back = read_verification(&*store, &record.id, "verification after replaces").await;
    assert_eq!(
        back, v2,
        "after replace_verification from the stored version the new record must be read back"
    );

    let mut stale = v1.clone();
    stale.version = 2;
    stale.taken_at = Some(now);
    for expected in [0, 1, 3] {
        expect_conflict(
            store.replace_verification(&stale, expected).await,
            &format!(
                "replace_verification with version {expected} while 2 is stored must fail \
                 with StoreErrorKind::Conflict"
            ),
        );
    }
    let back = read_verification(&*store, &record.id, "verification after conflicts").await;
    assert_eq!(
        back, v2,
        "a conflicting replace_verification must change nothing"
    );

    let mut ghost = sample_verification(6, now);
    ghost.version = 1;
    expect_conflict(
        store.replace_verification(&ghost, 0).await,
        "replace_verification of an absent id must fail with StoreErrorKind::Conflict",
    );
    let got = ok(store.verification(&ghost.id).await, "verification");
    assert!(
        got.is_none(),
        "replace_verification of an absent id must not create it (got {got:?})"
    );
}

/// Rule: `purge_verifications(before)` deletes exactly the verifications
/// whose `expires_at` is strictly before `before` and returns how many; one
/// expiring at `before` stays. It leaves challenges alone, and
/// `purge_challenges` leaves verifications alone.
pub async fn check_verification_purge(store: Arc<dyn Store>) {
    let now = base_time();
    let cut = now + Duration::minutes(30);
    // Expiring 1 s before, at, and 1 s after the cut-off; two before.
    let offsets = [-60, -1, 0, 1];
    let records: Vec<VerificationRecord> = offsets
        .iter()
        .zip(10u8..)
        .map(|(offset, seed)| {
            let mut record = sample_verification(seed, now);
            record.expires_at = cut + Duration::seconds(*offset);
            record
        })
        .collect();
    for record in &records {
        ok(
            store.insert_verification(record).await,
            "insert_verification",
        );
    }
    let mut challenge = sample_challenge(0x9C, now);
    challenge.expires_at = cut - Duration::minutes(5);
    ok(store.insert_challenge(&challenge).await, "insert_challenge");

    let purged_challenges = ok(store.purge_challenges(cut).await, "purge_challenges");
    assert_eq!(
        purged_challenges, 1,
        "purge_challenges must count only the challenge (no verification)"
    );
    for record in &records {
        let got = ok(store.verification(&record.id).await, "verification");
        assert!(
            got.is_some(),
            "purge_challenges must not delete verifications"
        );
    }

    let mut other = sample_challenge(0x9D, now);
    other.expires_at = cut - Duration::minutes(5);
    ok(store.insert_challenge(&other).await, "insert_challenge");
    let purged = ok(store.purge_verifications(cut).await, "purge_verifications");
    assert_eq!(
        purged, 2,
        "purge_verifications must delete, and count, exactly the verifications that expired \
         strictly before the cut-off"
    );
    for (record, offset) in records.iter().zip(offsets) {
        let got = ok(store.verification(&record.id).await, "verification");
        assert_eq!(
            got.is_some(),
            offset >= 0,
            "after purge_verifications(before) a verification expiring {offset} s from \
             `before` must {}",
            if offset >= 0 { "stay" } else { "be gone" }
        );
    }
    let kept = ok(store.challenge(&other.id).await, "challenge");
    assert!(
        kept.is_some(),
        "purge_verifications must not delete challenges"
    );
    let again = ok(
        store.purge_verifications(cut).await,
        "purge_verifications again",
    );
    assert_eq!(again, 0, "a second purge_verifications must delete nothing");
}

// ---------------------------------------------------------------------------
// Races
// ---------------------------------------------------------------------------

/// Rule: of 64 tasks that compare-and-set one record from the same read
/// version at the same moment, exactly one succeeds and 63 get
/// [`StoreErrorKind::Conflict`]; the winner's record is what is stored.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_replace(store: Arc<dyn Store>) {
    race_replace(&[store], 0x50).await;
}

/// Rule: no lost update. 64 tasks each run read → add one to
/// `failed_attempts` → compare-and-set, retrying on conflict; afterwards
/// `failed_attempts` is exactly 64 and the version moved by exactly 64.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_read_modify_write(store: Arc<dyn Store>) {
    let record = sample_challenge(0x51, base_time());
    ok(store.insert_challenge(&record).await, "insert_challenge");
    let id = record.id;
    let jobs = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            async move {
                // Each lost round means another task won one; reads may be
                // stale, so allow far more rounds than that bound.
                for _ in 0..TASKS * TASKS {
                    let current = read(&*store, &id, "challenge in a retry loop").await;
                    let mut next = current.clone();
                    next.version = current.version + 1;
                    next.failed_attempts = current.failed_attempts + 1;
                    match store.replace_challenge(&next, current.version).await {
                        Ok(()) => return,
                        Err(e) if e.is_conflict() => tokio::task::yield_now().await,
                        Err(e) => panic!(
                            "replace_challenge failed in a read-modify-write loop: {}",
                            describe(&e)
                        ),
                    }
                }
                panic!(
                    "replace_challenge kept reporting Conflict in a read-modify-write loop \
                     although every other writer had finished"
                );
            }
        })
        .collect();
    race(jobs).await;
    let back = read(&*store, &id, "challenge after the race").await;
    assert_eq!(
        back.failed_attempts,
        u32::try_from(TASKS).expect("small"),
        "lost update: {TASKS} read-modify-compare-and-set loops must add exactly {TASKS} \
         (replace_challenge must compare and set atomically)"
    );
    assert_eq!(
        back.version,
        u64::try_from(TASKS).expect("small"),
        "{TASKS} successful replace_challenge calls must leave version {TASKS}"
    );
}

/// Rule: `hit` loses no increment. 64 concurrent hits on one key return
/// exactly the counts 1 to 64, one each, all with the same `resets_at`; the
/// counter then stands at 64 (the next hit returns 65).
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_hit(store: Arc<dyn Store>) {
    race_hit(&[store], "testkit:race:hit").await;
}

/// Rule: `replace_failures` loses no count. 64 tasks each read the run and
/// compare-and-set it one longer, re-reading after a conflict, until their
/// write lands: the runs they wrote are 1 to 64, one each, and `failures`
/// then reads 64.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_replace_failures(store: Arc<dyn Store>) {
    race_failures(&[store], "testkit:race:failures").await;
}

async fn race_failures(stores: &[Arc<dyn Store>], account: &str) {
    let account = AccountId::new(account);
    let now = base_time();
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            let account = account.clone();
            async move {
                loop {
                    let seen = ok(store.failures(&account).await, "failures");
                    let next = FailureRecord {
                        consecutive: seen.map_or(0, |r| r.consecutive) + 1,
                        last_failure_at: now,
                    };
                    match store.replace_failures(&account, seen, Some(next)).await {
                        Ok(()) => return next.consecutive,
                        Err(e) if e.is_conflict() => {}
                        Err(e) => panic!("the store failed in replace_failures: {}", describe(&e)),
                    }
                }
            }
        })
        .collect();
    let mut seen = race(jobs).await;
    seen.sort_unstable();
    let want: Vec<u32> = (1..=u32::try_from(TASKS).expect("small")).collect();
    assert_eq!(
        seen,
        want,
        "{TASKS} concurrent read/compare-and-set loops on one failure run must each land \
         one count, 1..={TASKS} once each{}",
        across(stores)
    );
    for store in stores {
        let stored = ok(store.failures(&account).await, "failures");
        assert_eq!(
            stored.map(|r| r.consecutive),
            Some(u32::try_from(TASKS).expect("small")),
            "after {TASKS} counted failures the run must read {TASKS}{}",
            across(stores)
        );
    }
}

/// Rule: of 64 concurrent inserts of one id, exactly one succeeds and 63
/// get [`StoreErrorKind::Conflict`]; the winner's record is what is stored.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_insert(store: Arc<dyn Store>) {
    let base = sample_challenge(0x52, base_time());
    let jobs = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            let mut record = base.clone();
            record.failed_attempts = u32::try_from(i).expect("small");
            async move { store.insert_challenge(&record).await }
        })
        .collect();
    let results = race(jobs).await;
    let winner = single_winner(&results, "of concurrent insert_challenge calls with one id");
    let back = read(&*store, &base.id, "challenge after the race").await;
    assert_eq!(
        back.failed_attempts,
        u32::try_from(winner).expect("small"),
        "the record stored after concurrent inserts must be the one whose insert succeeded"
    );
}

/// Rule: no epoch bump is lost. 64 concurrent bumps of one account's
/// security epoch through [`TrustedDevices::bump_epoch`] (each a
/// compare-and-set of the account's contact book) return exactly the
/// epochs 1 to 64, one each, and the book then holds 64.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_bump_epoch(store: Arc<dyn Store>) {
    race_bump_epoch(&[store], "testkit:race:epoch").await;
}

/// Rule: of 64 accounts that each commit a first book claiming the same
/// key at the same moment, exactly one gets [`ContactCommit::Committed`]
/// and 63 get `Taken { index: 0 }` (never an error: a unique-key clash is
/// a `Taken`); `claim_owner` names the winner, whose book is stored, and
/// no loser has a book.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_claim(store: Arc<dyn Store>) {
    race_claim(&[store], "testkit:race:claim").await;
}

/// Rule: claims of overlapping key sets never deadlock and never end with
/// a key held twice. 64 accounts at once each claim two of four keys (a
/// ring: keys `i` and `i + 1`, listed in either order) and release a third
/// they don't hold; every commit ends `Committed` or `Taken` (no error:
/// no deadlock, no unique-key failure); each key ends with at most one
/// owner, every committed account holds both its keys, and each `Taken`
/// names a key that another account holds.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_claim_overlapping(store: Arc<dyn Store>) {
    let now = base_time();
    let keys: Vec<String> = (0..4).map(|n| claim_key(0x0E, n)).collect();
    let plan = |i: usize| {
        let (a, b) = (keys[i % 4].clone(), keys[(i + 1) % 4].clone());
        let claim = if i.is_multiple_of(2) {
            vec![a, b]
        } else {
            vec![b, a]
        };
        (claim, vec![keys[(i + 2) % 4].clone()])
    };
    let account = |i: usize| AccountId::new(format!("testkit:race:overlap:{i}"));
    let jobs = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            let book = sample_contact_book(&account(i), now);
            let (claim, release) = plan(i);
            async move {
                store
                    .commit_contacts(&book, None, &ClaimChanges { claim, release })
                    .await
                    .map_err(|e| describe(&e))
            }
        })
        .collect();
    let results = race(jobs).await;
    let mut winners = Vec::new();
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(ContactCommit::Committed) => winners.push(i),
            Ok(ContactCommit::Taken { index }) => {
                let (claim, _) = plan(i);
                assert!(
                    *index < claim.len(),
                    "Taken must index into the claim list (got {index} of {})",
                    claim.len()
                );
                let owner = ok(store.claim_owner(&claim[*index]).await, "claim_owner");
                assert!(
                    owner.is_some() && owner != Some(account(i)),
                    "a Taken commit must name a key another account holds; key {index} of \
                     task {i} is held by {owner:?}"
                );
                let none = ok(store.contact_book(&account(i)).await, "contact_book");
                assert!(none.is_none(), "a Taken commit must not store the book");
            }
            Err(e) => panic!(
                "of concurrent commit_contacts calls claiming overlapping keys, each must end \
                 Committed or Taken; one failed (a deadlock or a unique-key error?): {e}"
            ),
        }
    }
    assert!(
        !winners.is_empty(),
        "of concurrent commits claiming free keys at least one must succeed"
    );
    for (n, key) in keys.iter().enumerate() {
        let holders: Vec<usize> = winners
            .iter()
            .copied()
            .filter(|&i| plan(i).0.contains(key))
            .collect();
        assert!(
            holders.len() <= 1,
            "key {n} was claimed by {} committed accounts at once (tasks {holders:?})",
            holders.len()
        );
        let owner = ok(store.claim_owner(key).await, "claim_owner");
        assert_eq!(
            owner,
            holders.first().map(|&i| account(i)),
            "after the race key {n} must be held by the committed account that claimed it, \
             and by nobody if none did"
        );
    }
}

/// Rule: no lost update on a contact book. 64 tasks each run read → add a
/// contact of their own and claim a key of their own → `commit_contacts`
/// from the version read, retrying on conflict; afterwards the book holds
/// every task's contact exactly once, its version moved by exactly 64,
/// and the account holds every task's key.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_contact_book_read_modify_write(store: Arc<dyn Store>) {
    race_contact_book(&[store], "testkit:race:book").await;
}

/// Rule: of 64 tasks that compare-and-set one verification from the same
/// version at the same moment, each marking a member verified at its own
/// time, exactly one succeeds and 63 get [`StoreErrorKind::Conflict`]; the
/// winner's record is what is stored.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_verification_replace(store: Arc<dyn Store>) {
    let now = base_time();
    let record = sample_verification(0x54, now);
    ok(
        store.insert_verification(&record).await,
        "insert_verification",
    );
    let prepared = |i: usize| {
        let mut next = record.clone();
        next.version = record.version + 1;
        let n = next.members.len();
        next.members[i % n].verified_at =
            Some(now + Duration::seconds(i64::try_from(i).expect("small")));
        next
    };
    let jobs = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            let next = prepared(i);
            let expected = record.version;
            async move { store.replace_verification(&next, expected).await }
        })
        .collect();
    let results = race(jobs).await;
    let winner = single_winner(
        &results,
        "of concurrent replace_verification calls from one version",
    );
    let back = read_verification(&*store, &record.id, "verification after the race").await;
    assert_eq!(
        back,
        prepared(winner),
        "after a compare-and-set race the stored verification must be the winner's"
    );
}

// ---------------------------------------------------------------------------
// Through the flows
// ---------------------------------------------------------------------------

/// Rule (single use, end to end): [`Challenges`] on this store issues one
/// code; 64 tasks verify the right code at once; exactly one succeeds, the
/// 63 others are refused with [`Refusal::AlreadyUsed`], and the stored
/// challenge is consumed.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
///
/// [`Challenges`]: crate::flows::Challenges
pub async fn check_flows_verify_once(store: Arc<dyn Store>) {
    flows_verify_once(&[store], 0x60).await;
}

/// Rule (attempts counted exactly, end to end): [`Challenges`] on this store
/// issues one code; 64 tasks send wrong codes at once; the stored
/// `failed_attempts` ends exactly at the policy's `max_attempts` (5), the
/// refusals report each remaining count once, and the right code is then
/// refused with [`Refusal::TooManyAttempts`].
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
///
/// [`Challenges`]: crate::flows::Challenges
pub async fn check_flows_attempts_counted(store: Arc<dyn Store>) {
    flows_attempts_counted(&[store], 0x61).await;
}

/// Rule (single use, end to end): [`RecoveryCodes`] on this store
/// generates a set of 10; 64 tasks redeem the same code at once; exactly
/// one succeeds (reporting 9 remaining), the 63 others are refused with
/// [`Refusal::AlreadyUsed`], and `remaining` then reads 9.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
///
/// [`RecoveryCodes`]: crate::flows::RecoveryCodes
pub async fn check_flows_redeem_once(store: Arc<dyn Store>) {
    flows_redeem_once(&[store], 0x62).await;
}

/// Rule (each code once, end to end): [`RecoveryCodes`] on this store
/// generates a set of 10; 64 tasks redeem its 10 different codes at once
/// (task `i` redeems code `i % 10`, so each code by 6 or 7 tasks); each
/// code succeeds exactly once (10 successes in all), the other tasks are
/// refused with [`Refusal::AlreadyUsed`], the winners report 9, 8, … 0
/// codes remaining, once each, and `remaining` then reads 0.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
///
/// [`RecoveryCodes`]: crate::flows::RecoveryCodes
pub async fn check_flows_redeem_each_code_once(store: Arc<dyn Store>) {
    let clock = ManualClock::new(base_time());
    let service = recovery_codes(store, &clock, 0x63, 0);
    let account = AccountId::new("testkit:flows:redeem-each");
    let plain = generate(&service, &account).await;
    let n = plain.len();

    let jobs = (0..TASKS)
        .map(|i| {
            let service = service.clone();
            let account = account.clone();
            let code = plain[i % n].clone();
            async move { service.redeem(&account, &code).await }
        })
        .collect();
    let results = race(jobs).await;
    let mut remaining: Vec<usize> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|r| r.remaining))
        .collect();
    let outcomes: Vec<Outcome> = results.into_iter().map(Outcome::from).collect();
    assert_no_failures(&outcomes, "a redemption", &[]);
    for k in 0..n {
        let wins = outcomes
            .iter()
            .enumerate()
            .filter(|(i, o)| i % n == k && **o == Outcome::Succeeded)
            .count();
        assert_eq!(
            wins,
            1,
            "each recovery code must redeem exactly once: code #{k}, redeemed by {} concurrent \
             tasks while the other codes were, succeeded {wins} times (replace_recovery_set \
             must be a real compare-and-set)",
            (k..TASKS).step_by(n).count()
        );
    }
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Succeeded | Outcome::Refused(Refusal::AlreadyUsed)
        )),
        "the {} losing redemptions must be refused as AlreadyUsed; got {outcomes:?}",
        TASKS - n
    );
    remaining.sort_unstable();
    let want: Vec<usize> = (0..n).collect();
    assert_eq!(
        remaining,
        want,
        "no redemption may be lost: the {n} successful redemptions must report {} … 0 codes \
         remaining, once each (each must see every code used before it)",
        n - 1
    );
    let left = remaining_codes(&service, &account).await;
    assert_eq!(
        left,
        Some(0),
        "after every code of the set was redeemed, remaining must read 0"
    );
}

/// Rule (regenerating voids the old set, end to end): [`RecoveryCodes`] on
/// this store generates a set; then one task generates a new set while 63
/// tasks keep redeeming codes of the old one. Once `generate` has returned,
/// no redemption that starts afterwards succeeds with an old code (each is
/// refused with [`Refusal::WrongRecoveryCode`]); no old code redeems twice;
/// and no redemption prepared against the old set lands on the new one: the
/// new set still has all its codes, and they redeem.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
///
/// [`RecoveryCodes`]: crate::flows::RecoveryCodes
pub async fn check_flows_regenerate_voids_old_codes(store: Arc<dyn Store>) {
    let clock = ManualClock::new(base_time());
    // Redeeming old codes after the regeneration counts failures: keep the
    // account from locking so the answers stay WrongRecoveryCode.
    let service = recovery_codes(store, &clock, 0x64, 0).with_failure_policy(FailurePolicy {
        free_failures: u32::MAX,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
        hard_stop: u32::MAX,
    });
    let account = AccountId::new("testkit:flows:regenerate");
    let old = Arc::new(generate(&service, &account).await);
    let regenerated = Arc::new(AtomicBool::new(false));

    let jobs = (0..TASKS)
        .map(|i| {
            let service = service.clone();
            let account = account.clone();
            let old = old.clone();
            let regenerated = regenerated.clone();
            async move {
                if i == 0 {
                    let new = generate(&service, &account).await;
                    regenerated.store(true, Ordering::SeqCst);
                    return (Some(new), Vec::new());
                }
                // Redeem one old code again and again, until one attempt
                // that started after the regeneration returned.
                let code = &old[i % old.len()];
                let mut attempts = Vec::new();
                for _ in 0..TASKS {
                    let after = regenerated.load(Ordering::SeqCst);
                    attempts.push((after, Outcome::from(service.redeem(&account, code).await)));
                    if after {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                (None, attempts)
            }
        })
        .collect();
    let results = race(jobs).await;
    let mut new = None;
    let mut wins = vec![0usize; old.len()];
    for (i, (generated, attempts)) in results.into_iter().enumerate() {
        if generated.is_some() {
            new = generated;
        }
        let outcomes: Vec<Outcome> = attempts.iter().map(|(_, o)| o.clone()).collect();
        assert_no_failures(&outcomes, "a redemption racing a regeneration", &[]);
        for (after, outcome) in attempts {
            if after {
                assert_eq!(
                    outcome,
                    Outcome::Refused(Refusal::WrongRecoveryCode),
                    "once RecoveryCodes::generate has returned, no code of the replaced set \
                     may redeem: a redemption of old code #{} that started afterwards must be \
                     refused as WrongRecoveryCode",
                    i % old.len()
                );
            } else {
                assert!(
                    matches!(
                        outcome,
                        Outcome::Succeeded
                            | Outcome::Refused(Refusal::AlreadyUsed | Refusal::WrongRecoveryCode)
                    ),
                    "a redemption of an old code racing a regeneration must succeed or be \
                     refused as AlreadyUsed or WrongRecoveryCode; got {outcome:?}"
                );
            }
            if outcome == Outcome::Succeeded {
                wins[i % old.len()] += 1;
            }
        }
    }
    assert!(
        wins.iter().all(|&w| w <= 1),
        "single use: while a regeneration raced them, an old recovery code redeemed more than \
         once (successes per old code: {wins:?})"
    );
    let new = new.expect("the regenerating task returns the new codes");

    for (k, code) in old.iter().enumerate() {
        let late = Outcome::from(service.redeem(&account, code).await);
        assert_eq!(
            late,
            Outcome::Refused(Refusal::WrongRecoveryCode),
            "after RecoveryCodes::generate returned, old code #{k} must be refused as \
             WrongRecoveryCode"
        );
    }
    let left = remaining_codes(&service, &account).await;
    assert_eq!(
        left,
        Some(new.len()),
        "no redemption prepared against the replaced set may land on the new set: after the \
         race the regenerated set must still have all {} codes unused \
         (replace_recovery_set must be an atomic compare-and-set on salt and version)",
        new.len()
    );
    let first = service.redeem(&account, &new[0]).await;
    match first {
        Ok(r) => assert_eq!(
            r.remaining,
            new.len() - 1,
            "redeeming a code of the regenerated set must leave the others"
        ),
        Err(e) => panic!(
            "a code of the regenerated set must redeem after the race; it failed: {}",
            error_chain(&e)
        ),
    }
}

/// Rule (an epoch bump revokes at once, end to end): [`TrustedDevices`] on
/// this store trusts a device; then one task bumps the account's epoch
/// while 63 tasks keep checking the device's token. Once `bump_epoch` has
/// returned (epoch 1), no check that starts afterwards is
/// [`DeviceCheck::Valid`]: each is [`DeviceCheck::Revoked`]; checks that
/// started before are `Valid` or `Revoked`. Afterwards the token checks
/// `Revoked` and the account lists no device.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
///
/// [`TrustedDevices`]: crate::flows::TrustedDevices
pub async fn check_flows_bump_epoch_revokes(store: Arc<dyn Store>) {
    let clock = ManualClock::new(base_time());
    let service = trusted_devices(store, &clock, 0x65, 0);
    let account = AccountId::new("testkit:flows:epoch");
    let token = Arc::new(trust(&service, &account, "testkit browser").await);
    let before = checked(service.check(&account, &token).await);
    assert_eq!(
        before,
        Ok(DeviceCheck::Valid { refresh: false }),
        "a device just trusted through TrustedDevices must check Valid"
    );
    let bumped = Arc::new(AtomicBool::new(false));

    let jobs = (0..TASKS)
        .map(|i| {
            let service = service.clone();
            let account = account.clone();
            let token = token.clone();
            let bumped = bumped.clone();
            async move {
                if i == 0 {
                    let epoch = service
                        .bump_epoch(&account)
                        .await
                        .map_err(|e| error_chain(&e));
                    bumped.store(true, Ordering::SeqCst);
                    return (Some(epoch), Vec::new());
                }
                // Check again and again, until one check that started
                // after the bump returned.
                let mut checks = Vec::new();
                for _ in 0..TASKS {
                    let after = bumped.load(Ordering::SeqCst);
                    checks.push((after, checked(service.check(&account, &token).await)));
                    if after {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                (None, checks)
            }
        })
        .collect();
    let results = race(jobs).await;
    for (epoch, checks) in results {
        if let Some(epoch) = epoch {
            assert_eq!(
                epoch,
                Ok(1),
                "TrustedDevices::bump_epoch of an account never bumped must return 1"
            );
        }
        for (after, result) in checks {
            let result = match result {
                Ok(check) => check,
                Err(e) => panic!(
                    "a device check failed with an infrastructure error (the store should have \
                     answered): {e}"
                ),
            };
            if after {
                assert_eq!(
                    result,
                    DeviceCheck::Revoked,
                    "once bump_epoch has returned, every device trusted before it is dead: a \
                     check that started afterwards must be Revoked (the store's epoch read \
                     must see the bump)"
                );
            } else {
                assert!(
                    matches!(
                        result,
                        DeviceCheck::Valid { refresh: false } | DeviceCheck::Revoked
                    ),
                    "a device check racing an epoch bump must be Valid or Revoked; got \
                     {result:?}"
                );
            }
        }
    }
    let late = checked(service.check(&account, &token).await);
    assert_eq!(
        late,
        Ok(DeviceCheck::Revoked),
        "after bump_epoch the device trusted before it must check Revoked"
    );
    let listed = match service.list(&account).await {
        Ok(list) => list,
        Err(e) => panic!("TrustedDevices::list failed: {}", error_chain(&e)),
    };
    assert!(
        listed.is_empty(),
        "after bump_epoch no device trusted before it may be listed (got {listed:?})"
    );
}

// ---------------------------------------------------------------------------
// Shared races (one store, or two handles on one namespace)
// ---------------------------------------------------------------------------

/// What one verification or redemption returned, in a form tasks can hand
/// back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Refused(Refusal),
    Failed(String),
}

impl<T> From<Result<T, Error>> for Outcome {
    fn from(result: Result<T, Error>) -> Self {
        match result {
            Ok(_) => Self::Succeeded,
            Err(Error::Refused(reason)) => Self::Refused(reason),
            Err(e) => Self::Failed(error_chain(&e)),
        }
    }
}

async fn race_replace(stores: &[Arc<dyn Store>], seed: u8) {
    let record = sample_challenge(seed, base_time());
    ok(
        stores[0].insert_challenge(&record).await,
        "insert_challenge",
    );
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            let mut next = record.clone();
            next.version = record.version + 1;
            next.failed_attempts = u32::try_from(i).expect("small");
            next.state = ChallengeState::Consumed;
            let expected = record.version;
            async move { store.replace_challenge(&next, expected).await }
        })
        .collect();
    let results = race(jobs).await;
    let winner = single_winner(
        &results,
        &format!(
            "of concurrent replace_challenge calls from one version{}",
            across(stores)
        ),
    );
    for store in stores {
        let back = read(&**store, &record.id, "challenge after the race").await;
        assert_eq!(
            (back.version, back.failed_attempts),
            (record.version + 1, u32::try_from(winner).expect("small")),
            "after a compare-and-set race the stored record must be the winner's{}",
            across(stores)
        );
    }
}

async fn race_hit(stores: &[Arc<dyn Store>], key: &'static str) {
    let window = Duration::hours(1);
    let now = base_time();
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            async move { ok(store.hit(key, window, now).await, "hit") }
        })
        .collect();
    let counts = race(jobs).await;
    let mut seen: Vec<u64> = counts.iter().map(|c| c.count).collect();
    seen.sort_unstable();
    let want: Vec<u64> = (1..=u64::try_from(TASKS).expect("small")).collect();
    assert_eq!(
        seen,
        want,
        "{TASKS} concurrent hits on one key must return each count 1..={TASKS} exactly once \
         (an atomic increment){}",
        across(stores)
    );
    assert!(
        counts.iter().all(|c| c.resets_at == now + window),
        "concurrent hits in one window must all report resets_at = now + window{}",
        across(stores)
    );
    for (i, store) in stores.iter().enumerate() {
        let next = ok(store.hit(key, window, now).await, "hit");
        assert_eq!(
            next.count,
            u64::try_from(TASKS + 1 + i).expect("small"),
            "after {TASKS} concurrent hits the counter must stand at {TASKS}{}",
            across(stores)
        );
    }
}

async fn flows_verify_once(stores: &[Arc<dyn Store>], seed: u8) {
    let clock = ManualClock::new(base_time());
    let gateway = RecordingGateway::new();
    let services: Vec<Challenges> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| challenges(s.clone(), &clock, &gateway, seed, i))
        .collect();
    let (id, code) = issue(&services[0], &gateway).await;
    let phone = phone();

    let jobs = (0..TASKS)
        .map(|i| {
            let service = services[i % services.len()].clone();
            let code = code.clone();
            let phone = phone.clone();
            async move { Outcome::from(service.verify(&id, &code, &Purpose::SignIn, &phone).await) }
        })
        .collect();
    let outcomes = race(jobs).await;
    if let Some(Outcome::Failed(e)) = outcomes.iter().find(|o| matches!(o, Outcome::Failed(_))) {
        panic!(
            "a verification failed with an infrastructure error (the store should have \
             answered){}: {e}",
            across(stores)
        );
    }
    let verified = outcomes
        .iter()
        .filter(|o| **o == Outcome::Succeeded)
        .count();
    assert_eq!(
        verified,
        1,
        "single use: of {TASKS} concurrent verifications of one code exactly one must \
         succeed{} (replace_challenge must be a real compare-and-set)",
        across(stores)
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Succeeded | Outcome::Refused(Refusal::AlreadyUsed)
        )),
        "the {} losing verifications must be refused as AlreadyUsed{}; got {outcomes:?}",
        TASKS - 1,
        across(stores)
    );
    let stored = read(&*stores[0], &id, "challenge after the race").await;
    assert_eq!(
        stored.state,
        ChallengeState::Consumed,
        "after a successful verification the stored challenge must be consumed"
    );
}

async fn flows_attempts_counted(stores: &[Arc<dyn Store>], seed: u8) {
    let clock = ManualClock::new(base_time());
    let gateway = RecordingGateway::new();
    let services: Vec<Challenges> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| challenges(s.clone(), &clock, &gateway, seed, i))
        .collect();
    let (id, code) = issue(&services[0], &gateway).await;
    let phone = phone();
    let max = CodePolicy::default().max_attempts;
    let right: u32 = code.parse().expect("a numeric code");

    let jobs = (0..TASKS)
        .map(|i| {
            let service = services[i % services.len()].clone();
            let phone = phone.clone();
            // Never the right code: right + 1 ..= right + 64, modulo 10⁶.
            let wrong = format!(
                "{:06}",
                (right + 1 + u32::try_from(i).expect("small")) % 1_000_000
            );
            async move {
                Outcome::from(
                    service
                        .verify(&id, &wrong, &Purpose::SignIn, &phone)
                        .await,
                )
            }
        })
        .collect();
    let outcomes = race(jobs).await;
    if let Some(Outcome::Failed(e)) = outcomes.iter().find(|o| matches!(o, Outcome::Failed(_))) {
        panic!(
            "a verification failed with an infrastructure error (the store should have \
             answered){}: {e}",
            across(stores)
        );
    }
    assert!(
        !outcomes.contains(&Outcome::Succeeded),
        "a wrong code was accepted{}",
        across(stores)
    );
    let mut left: Vec<u32> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Refused(Refusal::WrongCode { attempts_left }) => Some(*attempts_left),
            _ => None,
        })
        .collect();
    left.sort_unstable();
    let want: Vec<u32> = (1..max).collect();
    assert_eq!(
        left,
        want,
        "each wrong attempt must be counted exactly once: the refusals must report \
         {want:?} attempts left, once each{}",
        across(stores)
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Refused(Refusal::WrongCode { .. } | Refusal::TooManyAttempts)
        )),
        "wrong codes must be refused as WrongCode or TooManyAttempts{}; got {outcomes:?}",
        across(stores)
    );

    let stored = read(&*stores[0], &id, "challenge after the race").await;
    assert_eq!(
        stored.failed_attempts,
        max,
        "after {TASKS} concurrent wrong codes the stored failed_attempts must be exactly \
         max_attempts ({max}): none lost, none counted past the limit{}",
        across(stores)
    );
    assert_eq!(
        stored.state,
        ChallengeState::Exhausted,
        "after max_attempts wrong codes the stored challenge must be exhausted{}",
        across(stores)
    );
    for service in &services {
        let late = Outcome::from(service.verify(&id, &code, &Purpose::SignIn, &phone).await);
        assert_eq!(
            late,
            Outcome::Refused(Refusal::TooManyAttempts),
            "after max_attempts wrong codes even the right code must be refused with \
             TooManyAttempts{}",
            across(stores)
        );
    }
}

/// Rule (through the flows): every guess is counted against the account's
/// failure run **before** it is checked, so racing guesses can't outrun
/// the limits. Under the default [`FailurePolicy`] (3 free failures, then
/// back-off, hard stop at 100):
///
/// - with 99 failures on record, 64 racing wrong codes for one account are
///   checked at most once — every other one is refused as `Locked` without
///   being compared — and the run ends at exactly 100;
/// - with none on record, 64 racing wrong codes at one instant are checked
///   exactly 3 times and the run ends at 3;
/// - the right code signs in once and ends the run;
/// - the same for recovery codes ([`RecoveryCodes`]).
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_flows_guesses_counted_first(store: Arc<dyn Store>) {
    flows_guesses_counted_first(&[store], 0x61).await;
}

async fn flows_guesses_counted_first(stores: &[Arc<dyn Store>], seed: u8) {
    let now = base_time();
    let clock = ManualClock::new(now);
    let gateway = RecordingGateway::new();
    let codes: Vec<Challenges> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| challenges(s.clone(), &clock, &gateway, seed, i))
        .collect();
    let ports = |i: usize| ports(stores[i].clone(), &clock, seed, i);
    let recovery: Vec<RecoveryCodes> = (0..stores.len())
        .map(|i| RecoveryCodes::new(ports(i)))
        .collect();
    let hard_stop = FailurePolicy::default().hard_stop;
    let free = FailurePolicy::default().free_failures;

    for (on_record, checked_at_most, run_after) in [(hard_stop - 1, 1, hard_stop), (0, free, free)]
    {
        let account = AccountId::new(format!("testkit:guesses:{seed:02x}:code:{on_record}"));
        put_failures(stores, &account, on_record, now).await;
        let (id, code) = issue_for(&codes[0], &gateway, &account).await;
        let right: u32 = code.parse().expect("a numeric code");
        let jobs = (0..TASKS)
            .map(|i| {
                let service = codes[i % codes.len()].clone();
                let wrong = format!(
                    "{:06}",
                    (right + 1 + u32::try_from(i).expect("small")) % 1_000_000
                );
                async move {
                    Outcome::from(
                        service
                            .verify(&id, &wrong, &Purpose::SignIn, &phone())
                            .await,
                    )
                }
            })
            .collect();
        let outcomes = race(jobs).await;
        let checked = checked_guesses(&outcomes, "a wrong code", stores);
        assert!(
            checked <= checked_at_most,
            "with {on_record} failures on record, {TASKS} racing wrong codes must be compared \
             at most {checked_at_most} time(s): every other one is refused as Locked before it \
             is checked; {checked} were compared{}",
            across(stores)
        );
        assert_run(stores, &account, run_after, "wrong codes").await;
    }

    // The right code, after two failures: signs in once and ends the run.
    let account = AccountId::new(format!("testkit:guesses:{seed:02x}:code:right"));
    put_failures(stores, &account, free - 1, now).await;
    let (id, code) = issue_for(&codes[0], &gateway, &account).await;
    let first = Outcome::from(
        codes[0]
            .verify(&id, &code, &Purpose::SignIn, &phone())
            .await,
    );
    assert_eq!(
        first,
        Outcome::Succeeded,
        "the right code must verify with {} failures on record{}",
        free - 1,
        across(stores)
    );
    assert_run(stores, &account, 0, "the right code").await;
    let again = Outcome::from(
        codes[codes.len() - 1]
            .verify(&id, &code, &Purpose::SignIn, &phone())
            .await,
    );
    assert_eq!(
        again,
        Outcome::Refused(Refusal::AlreadyUsed),
        "a verified code must not verify again{}",
        across(stores)
    );

    for (on_record, checked_at_most, run_after) in [(hard_stop - 1, 1, hard_stop), (0, free, free)]
    {
        let account = AccountId::new(format!("testkit:guesses:{seed:02x}:recovery:{on_record}"));
        let plain = generate(&recovery[0], &account).await;
        put_failures(stores, &account, on_record, now).await;
        let jobs = (0..TASKS)
            .map(|i| {
                let service = recovery[i % recovery.len()].clone();
                let account = account.clone();
                // A well-formed code that is not in the set.
                let wrong = plain[0].chars().rev().collect::<String>();
                async move { Outcome::from(service.redeem(&account, &wrong).await) }
            })
            .collect();
        let outcomes = race(jobs).await;
        let checked = checked_guesses(&outcomes, "a wrong recovery code", stores);
        assert!(
            checked <= checked_at_most,
            "with {on_record} failures on record, {TASKS} racing wrong recovery codes must be \
             compared at most {checked_at_most} time(s); {checked} were compared{}",
            across(stores)
        );
        assert_run(stores, &account, run_after, "wrong recovery codes").await;
    }
}

/// Puts a run of `consecutive` failures on record for `account`, the last
/// one long enough ago that no back-off is running.
async fn put_failures(
    stores: &[Arc<dyn Store>],
    account: &AccountId,
    consecutive: u32,
    now: OffsetDateTime,
) {
    if consecutive == 0 {
        return;
    }
    let run = FailureRecord {
        consecutive,
        last_failure_at: now - Duration::hours(1),
    };
    ok(
        stores[0].replace_failures(account, None, Some(run)).await,
        "replace_failures",
    );
}

/// How many of the outcomes were compared (refused as wrong rather than
/// as locked); panics on successes and infrastructure errors.
fn checked_guesses(outcomes: &[Outcome], what: &str, stores: &[Arc<dyn Store>]) -> u32 {
    assert_no_failures(outcomes, what, stores);
    let mut checked = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Refused(
                Refusal::WrongCode { .. } | Refusal::TooManyAttempts | Refusal::WrongRecoveryCode,
            ) => checked += 1,
            Outcome::Refused(Refusal::Locked { .. }) => {}
            other => panic!(
                "{what} must be refused as wrong or as Locked{}; got {other:?}",
                across(stores)
            ),
        }
    }
    checked
}

/// Panics unless every handle reads a run of `want` (0: no run).
async fn assert_run(stores: &[Arc<dyn Store>], account: &AccountId, want: u32, after: &str) {
    for store in stores {
        let run = ok(store.failures(account).await, "failures");
        assert_eq!(
            run.map_or(0, |r| r.consecutive),
            want,
            "after {after} the account's failure run must be {want}{}",
            across(stores)
        );
    }
}

async fn race_bump_epoch(stores: &[Arc<dyn Store>], account: &str) {
    let account = AccountId::new(account);
    let clock = ManualClock::new(base_time());
    let flows: Vec<TrustedDevices> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| trusted_devices(s.clone(), &clock, 0x5E, i))
        .collect();
    let jobs = (0..TASKS)
        .map(|i| {
            let flow = flows[i % flows.len()].clone();
            let account = account.clone();
            async move {
                match flow.bump_epoch(&account).await {
                    Ok(epoch) => epoch,
                    Err(e) => panic!("bump_epoch failed on this store: {}", error_chain(&e)),
                }
            }
        })
        .collect();
    let mut seen = race(jobs).await;
    seen.sort_unstable();
    let want: Vec<u64> = (1..=u64::try_from(TASKS).expect("small")).collect();
    assert_eq!(
        seen,
        want,
        "{TASKS} concurrent epoch bumps (each a compare-and-set of the account's contact book) \
         must return each epoch 1..={TASKS} exactly once{}",
        across(stores)
    );
    for store in stores {
        let book = ok(store.contact_book(&account).await, "contact_book");
        assert_eq!(
            book.map(|b| b.epoch),
            Some(u64::try_from(TASKS).expect("small")),
            "after {TASKS} concurrent epoch bumps the book's epoch must read {TASKS}{}",
            across(stores)
        );
    }
}

async fn flows_redeem_once(stores: &[Arc<dyn Store>], seed: u8) {
    let clock = ManualClock::new(base_time());
    let services: Vec<RecoveryCodes> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| recovery_codes(s.clone(), &clock, seed, i))
        .collect();
    let account = AccountId::new(format!("testkit:flows:redeem-once:{seed:02x}"));
    let plain = generate(&services[0], &account).await;
    let n = plain.len();
    let code = Arc::new(plain[3].clone());

    let jobs = (0..TASKS)
        .map(|i| {
            let service = services[i % services.len()].clone();
            let account = account.clone();
            let code = code.clone();
            async move { service.redeem(&account, &code).await }
        })
        .collect();
    let results = race(jobs).await;
    let remaining: Vec<usize> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|r| r.remaining))
        .collect();
    let outcomes: Vec<Outcome> = results.into_iter().map(Outcome::from).collect();
    assert_no_failures(&outcomes, "a redemption", stores);
    assert_eq!(
        remaining.len(),
        1,
        "single use: of {TASKS} concurrent redemptions of one recovery code exactly one must \
         succeed{} (replace_recovery_set must be a real compare-and-set)",
        across(stores)
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Succeeded | Outcome::Refused(Refusal::AlreadyUsed)
        )),
        "the {} losing redemptions must be refused as AlreadyUsed{}; got {outcomes:?}",
        TASKS - 1,
        across(stores)
    );
    assert_eq!(
        remaining[0],
        n - 1,
        "the successful redemption must report {} codes remaining{}",
        n - 1,
        across(stores)
    );
    for service in &services {
        let left = remaining_codes(service, &account).await;
        assert_eq!(
            left,
            Some(n - 1),
            "after one code of {n} was redeemed, remaining must read {}{}",
            n - 1,
            across(stores)
        );
        let again = Outcome::from(service.redeem(&account, &code).await);
        assert_eq!(
            again,
            Outcome::Refused(Refusal::AlreadyUsed),
            "a recovery code redeemed once must be refused as AlreadyUsed afterwards{}",
            across(stores)
        );
    }
}

async fn race_claim(stores: &[Arc<dyn Store>], name: &str) {
    let now = base_time();
    let key = format!("{name}:+819012345678");
    let account = |i: usize| AccountId::new(format!("{name}:{i}"));
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            let book = sample_contact_book(&account(i), now);
            let key = key.clone();
            async move {
                store
                    .commit_contacts(&book, None, &changes(&[&key], &[]))
                    .await
                    .map_err(|e| describe(&e))
            }
        })
        .collect();
    let results = race(jobs).await;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        panic!(
            "of {TASKS} accounts claiming one key at once{}, each commit must end Committed or \
             Taken, never an error (a unique-key clash must read as Taken): {e}",
            across(stores)
        );
    }
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Ok(ContactCommit::Committed)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "of {TASKS} accounts claiming one key at once{}, exactly one must commit; {} did",
        across(stores),
        winners.len()
    );
    let winner = winners[0];
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(i, r)| i == winner || matches!(r, Ok(ContactCommit::Taken { index: 0 }))),
        "the {} losing claims must return Taken {{ index: 0 }}{}; got {results:?}",
        TASKS - 1,
        across(stores)
    );
    for store in stores {
        let owner = ok(store.claim_owner(&key).await, "claim_owner");
        assert_eq!(
            owner,
            Some(account(winner)),
            "after a claim race claim_owner must name the winner{}",
            across(stores)
        );
        for i in 0..TASKS {
            let book = ok(store.contact_book(&account(i)).await, "contact_book");
            assert_eq!(
                book.is_some(),
                i == winner,
                "after a claim race only the winner may have a book (task {i}){}",
                across(stores)
            );
        }
    }
}

async fn race_contact_book(stores: &[Arc<dyn Store>], name: &str) {
    let now = base_time();
    let account = AccountId::new(name);
    let first = sample_contact_book(&account, now);
    committed(&*stores[0], &first, None, &[], &[], "the first commit").await;
    let email = |i: usize| format!("race-{i}@example.com");
    let key = |i: usize| format!("{name}:key:{i}");
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            let account = account.clone();
            let (address, claim) = (email(i), key(i));
            async move {
                // Each lost round means another task won one; reads may be
                // stale, so allow far more rounds than that bound.
                for _ in 0..TASKS * TASKS {
                    let current =
                        read_book(&*store, &account, "contact book in a retry loop").await;
                    let next = next_book(&current, &address, now);
                    match store
                        .commit_contacts(&next, Some(current.version), &changes(&[&claim], &[]))
                        .await
                    {
                        Ok(ContactCommit::Committed) => return,
                        Ok(other) => panic!(
                            "commit_contacts claiming a free key returned {other:?} in a \
                             read-modify-write loop"
                        ),
                        Err(e) if e.is_conflict() => tokio::task::yield_now().await,
                        Err(e) => panic!(
                            "commit_contacts failed in a read-modify-write loop: {}",
                            describe(&e)
                        ),
                    }
                }
                panic!(
                    "commit_contacts kept reporting Conflict in a read-modify-write loop \
                     although every other writer had finished"
                );
            }
        })
        .collect();
    race(jobs).await;
    for store in stores {
        let back = read_book(&**store, &account, "contact book after the race").await;
        assert_eq!(
            back.version,
            first.version + u64::try_from(TASKS).expect("small"),
            "{TASKS} successful commit_contacts calls must move the version by {TASKS}{}",
            across(stores)
        );
        assert_eq!(
            back.contacts.len(),
            first.contacts.len() + TASKS,
            "lost update: {TASKS} read-modify-commit loops must add exactly {TASKS} contacts \
             (commit_contacts must compare and set atomically){}",
            across(stores)
        );
        for i in 0..TASKS {
            let address = email(i);
            let n = back
                .contacts
                .iter()
                .filter(|c| c.destination.address() == address)
                .count();
            assert_eq!(
                n,
                1,
                "each task's contact must be in the book exactly once (task {i}: {n} times){}",
                across(stores)
            );
            let owner = ok(store.claim_owner(&key(i)).await, "claim_owner");
            assert_eq!(
                owner.as_ref(),
                Some(&account),
                "each task's claim must be held after the race (task {i}){}",
                across(stores)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A day after the wall clock, in whole seconds: see "Time" in the module
/// docs.
fn base_time() -> OffsetDateTime {
    whole_seconds(OffsetDateTime::now_utc() + Duration::days(1))
}

fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("zero nanoseconds is always valid")
}

fn phone() -> Destination {
    Destination::phone(PHONE).expect("a valid phone number")
}

/// `Challenges` over `store` with a recording gateway, a manual clock, a
/// seeded rng, a fixed hashing key and send limits out of the way.
fn challenges(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    gateway: &RecordingGateway,
    seed: u8,
    instance: usize,
) -> Challenges {
    let lots = RateLimit::new(1_000_000, Duration::minutes(10));
    let limits = SendLimits {
        per_destination: lots,
        per_account: lots,
        per_caller: lots,
        countries: Vec::new(),
        other_countries: None,
    };
    Challenges::builder()
        .service_name("ninsho testkit")
        .store(store)
        .gateway(Arc::new(gateway.clone()))
        .hasher(testkit_hasher())
        .clock(Arc::new(clock.clone()))
        .rng(Arc::new(LockedRng::seeded(rng_seed(seed, instance))))
        .limits(limits)
        .locale(Locale::En)
        .build()
        .expect("a valid Challenges configuration")
}

/// Issues a sign-in code to [`PHONE`]; returns the id and the code sent.
async fn issue(service: &Challenges, gateway: &RecordingGateway) -> (ChallengeId, String) {
    let ticket = match service
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
    {
        Ok(ticket) => ticket,
        Err(e) => panic!(
            "Challenges::issue failed on this store: {}",
            error_chain(&e)
        ),
    };
    let code = gateway
        .last_secret_to(PHONE)
        .expect("the recording gateway holds the code just sent")
        .expose_secret()
        .to_owned();
    (ticket.challenge_id, code)
}

/// Issues a sign-in code for `account` to [`PHONE`]; returns its id and the
/// code.
async fn issue_for(
    service: &Challenges,
    gateway: &RecordingGateway,
    account: &AccountId,
) -> (ChallengeId, String) {
    let request = IssueRequest::new(phone(), Purpose::SignIn).account(account.clone());
    let ticket = match service.issue(request).await {
        Ok(ticket) => ticket,
        Err(e) => panic!(
            "Challenges::issue failed on this store: {}",
            error_chain(&e)
        ),
    };
    let code = gateway
        .last_secret_to(PHONE)
        .expect("the recording gateway holds the code just sent");
    (ticket.challenge_id, code.expose_secret().to_owned())
}

/// Runs the jobs as tasks released together by a barrier; returns their
/// results in order. A panic in a task is re-raised here with its message.
async fn race<T, Fut>(jobs: Vec<Fut>) -> Vec<T>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let handles: Vec<JoinHandle<T>> = jobs
        .into_iter()
        .map(|job| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                job.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(value) => results.push(value),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a testkit task did not finish: {e}"),
        }
    }
    results
}

/// The store for task `i`: alternates between the handles.
fn pick(stores: &[Arc<dyn Store>], i: usize) -> Arc<dyn Store> {
    stores[i % stores.len()].clone()
}

/// " across two store instances" when racing two handles.
fn across(stores: &[Arc<dyn Store>]) -> &'static str {
    if stores.len() > 1 {
        " (across two store instances on one namespace)"
    } else {
        ""
    }
}

/// Asserts exactly one `Ok` and only conflicts otherwise; returns the
/// winner's index.
fn single_winner(results: &[Result<(), StoreError>], what: &str) -> usize {
    if let Some(e) = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .find(|e| e.kind() != StoreErrorKind::Conflict)
    {
        panic!(
            "{what}, the losers must fail with StoreErrorKind::Conflict, not: {}",
            describe(e)
        );
    }
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{what}, exactly one must succeed and the others fail with StoreErrorKind::Conflict; \
         {} succeeded",
        winners.len()
    );
    winners[0]
}

/// The value of a store call that must succeed.
fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("the store failed in {what}: {}", describe(&e)),
    }
}

/// Asserts a [`StoreErrorKind::Conflict`].
fn expect_conflict(result: Result<(), StoreError>, rule: &str) {
    match result {
        Err(e) if e.kind() == StoreErrorKind::Conflict => {}
        Err(e) => panic!("{rule}; it failed with another error: {}", describe(&e)),
        Ok(()) => panic!("{rule}; it succeeded"),
    }
}

/// Reads a challenge that must exist.
async fn read(store: &dyn Store, id: &ChallengeId, what: &str) -> ChallengeRecord {
    match ok(store.challenge(id).await, what) {
        Some(record) => record,
        None => panic!("{what}: challenge {id} must exist but the store returned None"),
    }
}

fn describe(e: &StoreError) -> String {
    format!("{:?}: {}", e.kind(), error_chain(e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Compares two challenges field by field, naming the first that differs.
fn assert_same_record(rule: &str, got: &ChallengeRecord, want: &ChallengeRecord) {
    let id = want.id;
    macro_rules! same {
        ($field:ident) => {
            assert!(
                got.$field == want.$field,
                "{rule}: challenge {id}, field `{}` reads {:?}, expected {:?}",
                stringify!($field),
                got.$field,
                want.$field
            );
        };
    }
    same!(id);
    same!(version);
    same!(purpose);
    same!(account);
    same!(destination);
    same!(locale);
    same!(channels);
    same!(channel_index);
    same!(state);
    same!(digits);
    same!(failed_attempts);
    same!(max_attempts);
    same!(delivery_attempts);
    same!(created_at);
    same!(expires_at);
    // The destination's Debug is masked: compare the full address too.
    assert!(
        got.destination.address() == want.destination.address(),
        "{rule}: challenge {id}, field `destination` has another address"
    );
    assert_eq!(
        got.sends.len(),
        want.sends.len(),
        "{rule}: challenge {id}, field `sends` has {} entries, expected {}",
        got.sends.len(),
        want.sends.len()
    );
    for (i, (g, w)) in got.sends.iter().zip(&want.sends).enumerate() {
        assert!(
            g.channel == w.channel
                && g.sent_at == w.sent_at
                && g.expires_at == w.expires_at
                && same_hash(&g.code, &w.code)
                && g.failed_transiently == w.failed_transiently,
            "{rule}: challenge {id}, `sends[{i}]` reads {g:?} (key {}), expected {w:?} (key {})",
            g.code.key_id,
            w.code.key_id
        );
    }
    match (&got.link, &want.link) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!(
            same_hash(&g.token, &w.token) && g.device == w.device,
            "{rule}: challenge {id}, field `link` reads device {:?} (token key {}), expected \
             device {:?} (token key {}), or the token differs",
            g.device,
            g.token.key_id,
            w.device,
            w.token.key_id
        ),
        (g, w) => panic!(
            "{rule}: challenge {id}, field `link` is {}, expected {}",
            if g.is_some() { "Some" } else { "None" },
            if w.is_some() { "Some" } else { "None" }
        ),
    }
}

/// Two stored hashes are the same key id and tag (not a secret comparison:
/// both are test data).
fn same_hash(a: &KeyedHash, b: &KeyedHash) -> bool {
    a.key_id == b.key_id && a.tag.0 == b.tag.0
}

/// The hashing key every flow check uses (two instances share it).
fn testkit_hasher() -> KeyedHasher {
    KeyedHasher::new(HashKey::new(KeyId(1), &[0x42; 32]).expect("a 32-byte key"))
}

/// A distinct rng seed per check and per instance.
fn rng_seed(seed: u8, instance: usize) -> u64 {
    u64::from(seed) << 8 | u64::try_from(instance).expect("few instances")
}

/// [`Ports`] over `store` with a manual clock, a seeded rng and the fixed
/// hashing key.
fn ports(store: Arc<dyn Store>, clock: &ManualClock, seed: u8, instance: usize) -> Ports {
    Ports::new(store, testkit_hasher())
        .with_clock(Arc::new(clock.clone()))
        .with_rng(Arc::new(LockedRng::seeded(rng_seed(seed, instance))))
}

/// `RecoveryCodes` over `store` with the default policies.
fn recovery_codes(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    seed: u8,
    instance: usize,
) -> RecoveryCodes {
    // These checks test the store's compare-and-set, not the back-off: 64
    // racing guesses would (rightly) lock the account under the default
    // policy, since every guess is counted before it is checked.
    RecoveryCodes::new(ports(store, clock, seed, instance)).with_failure_policy(FailurePolicy {
        free_failures: u32::MAX,
        hard_stop: u32::MAX,
        ..FailurePolicy::default()
    })
}

/// `TrustedDevices` over `store` with the default policy.
fn trusted_devices(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    seed: u8,
    instance: usize,
) -> TrustedDevices {
    TrustedDevices::new(ports(store, clock, seed, instance))
}

/// Generates a recovery set for `account`; returns the plain codes.
async fn generate(service: &RecoveryCodes, account: &AccountId) -> Vec<String> {
    match service.generate(account).await {
        Ok(plain) => plain
            .expose_secret()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        Err(e) => panic!(
            "RecoveryCodes::generate failed on this store: {}",
            error_chain(&e)
        ),
    }
}

/// The account's unused recovery codes, through the flow.
async fn remaining_codes(service: &RecoveryCodes, account: &AccountId) -> Option<usize> {
    match service.remaining(account).await {
        Ok(left) => left,
        Err(e) => panic!(
            "RecoveryCodes::remaining failed on this store: {}",
            error_chain(&e)
        ),
    }
}

/// Trusts a device for `account`; returns its token.
async fn trust(service: &TrustedDevices, account: &AccountId, label: &str) -> String {
    match service.trust(account, label).await {
        Ok((token, _)) => token.expose_secret().to_owned(),
        Err(e) => panic!(
            "TrustedDevices::trust failed on this store: {}",
            error_chain(&e)
        ),
    }
}

/// A device check with the error as text (tasks hand it back).
fn checked(result: Result<DeviceCheck, Error>) -> Result<DeviceCheck, String> {
    result.map_err(|e| error_chain(&e))
}

/// Panics on the first infrastructure error among the outcomes.
fn assert_no_failures(outcomes: &[Outcome], what: &str, stores: &[Arc<dyn Store>]) {
    if let Some(Outcome::Failed(e)) = outcomes.iter().find(|o| matches!(o, Outcome::Failed(_))) {
        panic!(
            "{what} failed with an infrastructure error (the store should have answered){}: {e}",
            across(stores)
        );
    }
}

/// The device id derived from `seed`.
fn device_id(seed: u8) -> DeviceId {
    let mut bytes = [seed; 16];
    bytes[0] = 0x44;
    bytes[1] = 0x56;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    DeviceId::parse(&hex).expect("32 lower-case hex digits")
}

/// Accounts a store must keep apart: the first, one differing only in case
/// (twice), prefixes and extensions of it, separators, spaces, quotes,
/// wildcards and non-ASCII text. At most 15.
fn awkward_accounts(prefix: &str) -> Vec<AccountId> {
    let mut accounts: Vec<AccountId> = [
        "alice",
        "Alice",
        "ALICE",
        "alic",
        "alice:2",
        "alice 2",
        "alice ",
        "alice:",
        "'quoted' \"double\" \\ %_*?[a-z]{}",
        "アカウント:42",
        "アカウント:4",
    ]
    .iter()
    .map(|s| AccountId::new(format!("{prefix}:{s}")))
    .collect();
    accounts.push(AccountId::new(prefix));
    accounts
}

/// Reads a device that must exist.
async fn read_device(
    store: &dyn Store,
    account: &AccountId,
    id: &DeviceId,
    what: &str,
) -> DeviceRecord {
    match ok(store.device(account, id).await, what) {
        Some(record) => record,
        None => panic!(
            "{what}: device {id} of account {account:?} must exist but the store returned None"
        ),
    }
}

/// Compares two devices field by field, naming the first that differs.
fn assert_same_device(rule: &str, got: &DeviceRecord, want: &DeviceRecord) {
    let (account, id) = (&want.account, want.id);
    macro_rules! same {
        ($field:ident) => {
            assert!(
                got.$field == want.$field,
                "{rule}: device {id} of {account:?}, field `{}` reads {:?}, expected {:?}",
                stringify!($field),
                got.$field,
                want.$field
            );
        };
    }
    same!(account);
    same!(id);
    same!(version);
    same!(label);
    same!(created_at);
    same!(last_used_at);
    same!(expires_at);
    same!(epoch);
    same!(revoked_at);
    assert!(
        same_hash(&got.token, &want.token),
        "{rule}: device {id} of {account:?}, field `token` reads {:?} (key {}), expected {:?} \
         (key {})",
        got.token,
        got.token.key_id,
        want.token,
        want.token.key_id
    );
}

/// A claim key derived from `seed` and `n`: a Japanese-mobile-looking
/// E.164 number (distinct pairs give distinct keys).
fn claim_key(seed: u8, n: u8) -> String {
    format!("+8180{seed:03}{n:05}")
}

/// Claim changes from string slices.
fn changes(claim: &[&str], release: &[&str]) -> ClaimChanges {
    ClaimChanges {
        claim: claim.iter().map(|k| (*k).to_owned()).collect(),
        release: release.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// The book's successor: version + 1, with an email contact `address`
/// added at `now`.
fn next_book(book: &ContactBook, address: &str, now: OffsetDateTime) -> ContactBook {
    let mut next = book.clone();
    next.version = book.version + 1;
    next.contacts.push(ContactEntry {
        destination: Destination::email(address).expect("a valid email"),
        added_at: whole_seconds(now),
        verified_at: None,
        two_factor: false,
        phone_type: None,
    });
    next
}

/// A `commit_contacts` that must not fail.
async fn commit(
    store: &dyn Store,
    book: &ContactBook,
    expected: Option<u64>,
    claim: &[&str],
    release: &[&str],
    what: &str,
) -> ContactCommit {
    ok(
        store
            .commit_contacts(book, expected, &changes(claim, release))
            .await,
        what,
    )
}

/// A `commit_contacts` that must commit.
async fn committed(
    store: &dyn Store,
    book: &ContactBook,
    expected: Option<u64>,
    claim: &[&str],
    release: &[&str],
    what: &str,
) {
    let got = commit(store, book, expected, claim, release, what).await;
    assert_eq!(
        got,
        ContactCommit::Committed,
        "{what}: commit_contacts must return Committed (no key it claims is held by another \
         account)"
    );
}

/// Asserts a [`StoreErrorKind::Conflict`] from `commit_contacts`.
fn expect_commit_conflict(result: Result<ContactCommit, StoreError>, rule: &str) {
    match result {
        Err(e) if e.kind() == StoreErrorKind::Conflict => {}
        Err(e) => panic!("{rule}; it failed with another error: {}", describe(&e)),
        Ok(outcome) => panic!("{rule}; it returned {outcome:?}"),
    }
}

/// Reads a contact book that must exist.
async fn read_book(store: &dyn Store, account: &AccountId, what: &str) -> ContactBook {
    match ok(store.contact_book(account).await, what) {
        Some(book) => book,
        None => panic!(
            "{what}: account {account:?} must have a contact book but the store returned None"
        ),
    }
}

/// Asserts each key's owner.
async fn assert_owners(store: &dyn Store, owners: &[(&str, Option<&AccountId>)], rule: &str) {
    for (key, want) in owners {
        let got = ok(store.claim_owner(key).await, "claim_owner");
        assert!(
            got.as_ref() == *want,
            "{rule}: claim key {key:?} is held by {got:?}, expected {want:?}"
        );
    }
}

/// Compares two contact books, naming the first field that differs (the
/// destinations' `Debug` is masked: their addresses are compared too).
fn assert_same_book(rule: &str, got: &ContactBook, want: &ContactBook) {
    let account = &want.account;
    assert_eq!(
        got.account, want.account,
        "{rule}: contact book of {account:?}, field `account` differs"
    );
    assert_eq!(
        got.version, want.version,
        "{rule}: contact book of {account:?}, field `version` differs"
    );
    assert_eq!(
        got.created_at, want.created_at,
        "{rule}: contact book of {account:?}, field `created_at` differs"
    );
    assert_eq!(
        got.contacts.len(),
        want.contacts.len(),
        "{rule}: contact book of {account:?}, field `contacts` has {} entries, expected {}",
        got.contacts.len(),
        want.contacts.len()
    );
    for (i, (g, w)) in got.contacts.iter().zip(&want.contacts).enumerate() {
        assert!(
            g == w && g.destination.address() == w.destination.address(),
            "{rule}: contact book of {account:?}, `contacts[{i}]` reads {g:?} ({}), expected \
             {w:?} ({})",
            g.destination.address(),
            w.destination.address()
        );
    }
    assert_eq!(
        got.grace, want.grace,
        "{rule}: contact book of {account:?}, field `grace` differs"
    );
}

/// Reads a verification that must exist.
async fn read_verification(
    store: &dyn Store,
    id: &VerificationId,
    what: &str,
) -> VerificationRecord {
    match ok(store.verification(id).await, what) {
        Some(record) => record,
        None => panic!("{what}: verification {id} must exist but the store returned None"),
    }
}
