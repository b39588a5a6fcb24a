//! The store conformance suite: run it against your [`Store`] adapter.
//!
//! ninsho's guarantees (a code verifies once, no wrong attempt is lost, no
//! send limit is exceeded) hold only if the store keeps the contract of
//! [`ChallengeStore`] and [`LimitStore`]: inserts that refuse duplicates, a
//! real compare-and-set on the record version, counters that never lose an
//! increment. This module checks that contract from the outside, the way
//! `object_store`'s `integration` module checks an object store: each
//! `check_*` function drives the store through the public traits and panics
//! with a message naming the rule the store broke.
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
//!   failure runs that count, record the time, clear, and stay per account;
//! - **races**: 64 tasks at once compare-and-set one record (one winner), run
//!   read-modify-write loops (no lost update), hit one counter, record
//!   failures for one account, insert one id (one winner);
//! - **through the flows**: [`Challenges`] on the store under test, 64
//!   simultaneous verifications of one code (exactly one succeeds) and 64
//!   simultaneous wrong codes (exactly the allowed attempts are counted, then
//!   even the right code is refused);
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
//! [`ChallengeStore`]: crate::store::ChallengeStore
//! [`LimitStore`]: crate::store::LimitStore
//! [`MemoryStore`]: crate::store::MemoryStore

// The testkit's whole job is to assert: a store that breaks a rule must fail
// the adapter author's test loudly, with a message naming the rule. Library
// code elsewhere never unwraps or panics (see the crate-level denials).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;

use time::{Duration, OffsetDateTime, UtcOffset};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

use crate::ManualClock;
use crate::challenge::CodePolicy;
use crate::contact::Destination;
use crate::error::{Error, Refusal};
use crate::flows::{Challenges, IssueRequest};
use crate::gateway::{Channel, Locale, RecordingGateway};
use crate::hash::{HashKey, KeyId, KeyedHash, KeyedHasher, Tag};
use crate::limits::{RateLimit, SendLimits};
use crate::random::LockedRng;
use crate::store::{
    AccountId, ChallengeId, ChallengeRecord, ChallengeState, LinkRecord, Purpose, SendRecord,
    Store, StoreError, StoreErrorKind, WindowCount,
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
    check_race_replace(new_store().await).await;
    check_race_read_modify_write(new_store().await).await;
    check_race_hit(new_store().await).await;
    check_race_record_failure(new_store().await).await;
    check_race_insert(new_store().await).await;
    check_flows_verify_once(new_store().await).await;
    check_flows_attempts_counted(new_store().await).await;
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
/// - 32 + 32 hits on one counter return the counts 1 to 64.
///
/// The namespace must be empty when this starts.
///
/// # Panics
/// When the stores break a rule; the message names it.
///
/// [`Challenges`]: crate::flows::Challenges
pub async fn race_two_instances(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let stores = [a, b];
    race_replace(&stores, 0xB1).await;
    flows_verify_once(&stores, 0xB2).await;
    flows_attempts_counted(&stores, 0xB3).await;
    race_hit(&stores, "testkit:two-instances:hit").await;
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
        }],
        delivery_attempts: 1,
        link: None,
        created_at: now,
        expires_at,
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
        },
        SendRecord {
            channel: Channel::Sms,
            sent_at: now + Duration::seconds(61),
            expires_at: now + Duration::seconds(661),
            code: KeyedHash {
                key_id: KeyId(2),
                tag: Tag(std::array::from_fn(|i| u8::try_from(i).expect("< 32"))),
            },
        },
        SendRecord {
            channel: Channel::Voice,
            sent_at: now + Duration::seconds(122),
            expires_at: now + Duration::seconds(722),
            code: KeyedHash {
                key_id: KeyId(u32::MAX),
                tag: Tag([0xFF; 32]),
            },
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

/// Rule: `record_failure` increments the account's run and stores the time
/// of the latest failure; `failures` reads the run (`None` for an account
/// with none); `clear_failures` ends it (the next failure counts 1 again);
/// accounts are independent; clearing an account without failures is `Ok`.
pub async fn check_failures(store: Arc<dyn Store>) {
    let t0 = base_time();
    let alice = AccountId::new("testkit:alice");
    let bob = AccountId::new("testkit:ボブ 'quoted' %_");
    let none = ok(store.failures(&alice).await, "failures");
    assert!(
        none.is_none(),
        "failures must be None for an account that never failed (got {none:?})"
    );

    let first = ok(store.record_failure(&alice, t0).await, "record_failure");
    assert_eq!(
        (first.consecutive, first.last_failure_at),
        (1, t0),
        "the first record_failure must return consecutive 1 and last_failure_at = now"
    );
    let t1 = t0 + Duration::seconds(42);
    let second = ok(store.record_failure(&alice, t1).await, "record_failure");
    assert_eq!(
        (second.consecutive, second.last_failure_at),
        (2, t1),
        "record_failure must increment consecutive and set last_failure_at to the latest now"
    );
    let read_back = ok(store.failures(&alice).await, "failures");
    assert_eq!(
        read_back.map(|r| (r.consecutive, r.last_failure_at)),
        Some((2, t1)),
        "failures must return the run record_failure wrote"
    );

    let other = ok(store.failures(&bob).await, "failures");
    assert!(
        other.is_none(),
        "failure runs must be per account: another account's failures leaked ({other:?})"
    );
    let bob_first = ok(store.record_failure(&bob, t1).await, "record_failure");
    assert_eq!(
        bob_first.consecutive, 1,
        "failure runs must be per account: a new account's first failure must count 1"
    );

    ok(store.clear_failures(&alice).await, "clear_failures");
    let cleared = ok(store.failures(&alice).await, "failures");
    assert!(
        cleared.is_none_or(|r| r.consecutive == 0),
        "after clear_failures, failures must be None (or a zero run), got {cleared:?}"
    );
    let t2 = t1 + Duration::minutes(3);
    let again = ok(store.record_failure(&alice, t2).await, "record_failure");
    assert_eq!(
        (again.consecutive, again.last_failure_at),
        (1, t2),
        "after clear_failures, the next record_failure must count 1 again"
    );
    let bob_now = ok(store.failures(&bob).await, "failures");
    assert_eq!(
        bob_now.map(|r| r.consecutive),
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

/// Rule: `record_failure` loses no increment. 64 concurrent failures for
/// one account return the runs 1 to 64, one each, and `failures` then reads
/// 64.
///
/// Needs a multi-thread runtime to race (see the [module docs](self)).
pub async fn check_race_record_failure(store: Arc<dyn Store>) {
    let account = AccountId::new("testkit:race:failures");
    let now = base_time();
    let jobs = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            let account = account.clone();
            async move { ok(store.record_failure(&account, now).await, "record_failure") }
        })
        .collect();
    let runs = race(jobs).await;
    let mut seen: Vec<u32> = runs.iter().map(|r| r.consecutive).collect();
    seen.sort_unstable();
    let want: Vec<u32> = (1..=u32::try_from(TASKS).expect("small")).collect();
    assert_eq!(
        seen, want,
        "{TASKS} concurrent record_failure calls must return each of 1..={TASKS} exactly once \
         (an atomic increment)"
    );
    let stored = ok(store.failures(&account).await, "failures");
    assert_eq!(
        stored.map(|r| r.consecutive),
        Some(u32::try_from(TASKS).expect("small")),
        "after {TASKS} concurrent record_failure calls the run must be {TASKS}"
    );
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

// ---------------------------------------------------------------------------
// Shared races (one store, or two handles on one namespace)
// ---------------------------------------------------------------------------

/// What one verification returned, in a form tasks can hand back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Verified,
    Refused(Refusal),
    Failed(String),
}

impl From<Result<crate::flows::Verified, Error>> for Outcome {
    fn from(result: Result<crate::flows::Verified, Error>) -> Self {
        match result {
            Ok(_) => Self::Verified,
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
    let verified = outcomes.iter().filter(|o| **o == Outcome::Verified).count();
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
            Outcome::Verified | Outcome::Refused(Refusal::AlreadyUsed)
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
        !outcomes.contains(&Outcome::Verified),
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
    let key = HashKey::new(KeyId(1), &[0x42; 32]).expect("a 32-byte key");
    let rng_seed = u64::from(seed) << 8 | u64::try_from(instance).expect("few instances");
    Challenges::builder()
        .service_name("ninsho testkit")
        .store(store)
        .gateway(Arc::new(gateway.clone()))
        .hasher(KeyedHasher::new(key))
        .clock(Arc::new(clock.clone()))
        .rng(Arc::new(LockedRng::seeded(rng_seed)))
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
                && same_hash(&g.code, &w.code),
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
