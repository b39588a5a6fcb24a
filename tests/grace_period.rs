//! The grace-period state machine, through the public API only.
//!
//! - every row of the transition table in `ninsho::grace`'s docs, each with
//!   the requirement met and not met after the event;
//! - the evaluate table, the deadline edge (deadline - 1 ns reminds, the
//!   deadline itself blocks), day 8 blocked, verification restores access;
//! - roll-out and contact-change starts, the anti-extension rule;
//! - properties over random event sequences at random times: the state is
//!   always valid, never blocked before the deadline, verifying every
//!   required contact restores access, serde round trips, no deadline
//!   extension without verification.
//!
//! CI runs the properties with `PROPTEST_CASES=256`.

use ninsho::grace::{
    GraceDecision, GraceEvent, GracePolicy, GraceStart, KindFilter, Requirement, Transition,
    VerificationPath,
};
use ninsho::model::{ContactKey, Destination, DestinationKind, GraceContact, GraceState, Phase};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// 2025-04-01 10:00 UTC.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_743_501_600).expect("in range")
}

fn day(n: i64) -> OffsetDateTime {
    t0() + Duration::days(n)
}

fn key(k: &str) -> ContactKey {
    ContactKey::new(k)
}

fn add(k: &str, kind: DestinationKind, verified: bool) -> GraceEvent {
    GraceEvent::ContactAdded {
        key: key(k),
        kind,
        verified,
    }
}

fn add_email(k: &str, verified: bool) -> GraceEvent {
    add(k, DestinationKind::Email, verified)
}

fn verify(k: &str) -> GraceEvent {
    GraceEvent::ContactVerified { key: key(k) }
}

fn remove(k: &str) -> GraceEvent {
    GraceEvent::ContactRemoved { key: key(k) }
}

fn change(old: &str, new: &str, verified: bool) -> GraceEvent {
    GraceEvent::ContactChanged {
        old: key(old),
        new: key(new),
        kind: DestinationKind::Phone,
        verified,
    }
}

fn grace(deadline: OffsetDateTime) -> Phase {
    Phase::InGrace { deadline }
}

fn blocked(since: OffsetDateTime) -> Phase {
    Phase::Blocked { since }
}

/// Where each test row starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    NotStarted,
    Compliant,
    InGrace,
    Blocked,
}

/// A state in `start` under `policy`, created on day 0. Contacts:
/// - `NotStarted`: `u` (unverified email), not enrolled;
/// - `Compliant`: `v` (verified email);
/// - `InGrace`: `u` (unverified email), deadline day 7, observed on day 1;
/// - `Blocked`: `u` (unverified email), deadline day 7, observed on day 8.
fn state(start: Start, policy: &GracePolicy) -> GraceState {
    let mut s = GraceState::new();
    match start {
        Start::NotStarted => {
            s.apply(policy, add_email("u", false), day(0));
            assert_eq!(s.phase(), Phase::NotStarted);
        }
        Start::Compliant => {
            s.apply(policy, GraceEvent::AccountCreated, day(0));
            s.apply(policy, add_email("v", true), day(0));
            assert_eq!(s.phase(), Phase::Compliant);
        }
        Start::InGrace => {
            s.apply(policy, GraceEvent::AccountCreated, day(0));
            s.apply(policy, add_email("u", false), day(1));
            assert_eq!(s.phase(), grace(day(7)));
        }
        Start::Blocked => {
            s.apply(policy, GraceEvent::AccountCreated, day(0));
            s.apply(policy, add_email("u", false), day(1));
            s.refresh(policy, day(8));
            assert_eq!(s.phase(), blocked(day(7)));
        }
    }
    s
}

/// Applies `event` at `at` to a fresh state in `start` and checks the
/// transition.
#[track_caller]
fn row(
    policy: &GracePolicy,
    start: Start,
    event: GraceEvent,
    at: OffsetDateTime,
    expected: Phase,
) -> GraceState {
    let mut s = state(start, policy);
    let from = s.phase();
    let what = format!("{start:?} + {event:?} at {at}");
    let t = s.apply(policy, event, at);
    assert_eq!(t, Transition { from, to: expected }, "{what}");
    assert_eq!(s.phase(), expected);
    s
}

// ---------------------------------------------------------------------------
// The transition table, row by row
// ---------------------------------------------------------------------------

#[test]
fn table_not_started() {
    let p = GracePolicy::default();
    // AccountCreated: met → Compliant, not met → new window (creation + 7 d).
    let mut s = GraceState::new();
    s.apply(&p, add_email("v", true), day(0));
    let t = s.apply(&p, GraceEvent::AccountCreated, day(0));
    assert_eq!(t.to, Phase::Compliant);
    row(
        &p,
        Start::NotStarted,
        GraceEvent::AccountCreated,
        day(2),
        grace(day(9)),
    );
    // PolicyRolledOut: same, counted from the enrolment when the creation is unknown.
    let mut s = GraceState::new();
    s.apply(&p, add_email("v", true), day(0));
    assert_eq!(
        s.apply(&p, GraceEvent::PolicyRolledOut, day(3)).to,
        Phase::Compliant
    );
    row(
        &p,
        Start::NotStarted,
        GraceEvent::PolicyRolledOut,
        day(3),
        grace(day(10)),
    );
    // Contact events keep NotStarted, and do record the contacts.
    for event in [
        add_email("w", true),
        verify("u"),
        remove("u"),
        change("u", "p", true),
    ] {
        row(&p, Start::NotStarted, event, day(1), Phase::NotStarted);
    }
    let s = row(
        &p,
        Start::NotStarted,
        verify("u"),
        day(1),
        Phase::NotStarted,
    );
    assert!(s.requirement_met(&p));
    assert_eq!(
        s.clone().apply(&p, GraceEvent::AccountCreated, day(1)).to,
        Phase::Compliant
    );
}

#[test]
fn table_compliant() {
    let p = GracePolicy::default();
    // AccountCreated / PolicyRolledOut: still met → Compliant.
    row(
        &p,
        Start::Compliant,
        GraceEvent::AccountCreated,
        day(1),
        Phase::Compliant,
    );
    row(
        &p,
        Start::Compliant,
        GraceEvent::PolicyRolledOut,
        day(1),
        Phase::Compliant,
    );
    // ... not met under a stricter policy → new window (fixed: creation + 7 d).
    let phones_only =
        GracePolicy::default().with_kinds(KindFilter::Only(vec![DestinationKind::Phone]));
    let mut s = state(Start::Compliant, &p);
    assert_eq!(
        s.apply(&phones_only, GraceEvent::PolicyRolledOut, day(2))
            .to,
        grace(day(7))
    );
    let mut s = state(Start::Compliant, &p);
    assert_eq!(
        s.apply(&phones_only, GraceEvent::AccountCreated, day(9)).to,
        blocked(day(7))
    );
    // ContactAdded: AnyOf stays met; AllOf breaks → new window.
    row(
        &p,
        Start::Compliant,
        add_email("u", false),
        day(1),
        Phase::Compliant,
    );
    let all = GracePolicy::default().with_requirement(Requirement::AllOf);
    row(
        &all,
        Start::Compliant,
        add_email("u", false),
        day(1),
        grace(day(7)),
    );
    row(
        &all,
        Start::Compliant,
        add_email("u", false),
        day(7),
        blocked(day(7)),
    );
    row(
        &all,
        Start::Compliant,
        add_email("w", true),
        day(8),
        Phase::Compliant,
    );
    // ContactVerified → Compliant (known or unknown key).
    row(&p, Start::Compliant, verify("v"), day(1), Phase::Compliant);
    row(&p, Start::Compliant, verify("x"), day(1), Phase::Compliant);
    // ContactRemoved: the only verified one → new window; unknown key → no change.
    row(&p, Start::Compliant, remove("v"), day(3), grace(day(7)));
    row(&p, Start::Compliant, remove("v"), day(30), blocked(day(7)));
    row(&p, Start::Compliant, remove("x"), day(30), Phase::Compliant);
    // ContactChanged: to a verified contact → Compliant; unverified → new window.
    row(
        &p,
        Start::Compliant,
        change("v", "p", true),
        day(30),
        Phase::Compliant,
    );
    row(
        &p,
        Start::Compliant,
        change("v", "p", false),
        day(3),
        grace(day(7)),
    );
    row(
        &p,
        Start::Compliant,
        change("v", "p", false),
        day(30),
        blocked(day(7)),
    );
}

#[test]
fn table_in_grace() {
    let p = GracePolicy::default();
    // AccountCreated / PolicyRolledOut: deadline kept; a second creation is ignored.
    let s = row(
        &p,
        Start::InGrace,
        GraceEvent::AccountCreated,
        day(5),
        grace(day(7)),
    );
    assert_eq!(s.created_at(), Some(day(0)));
    row(
        &p,
        Start::InGrace,
        GraceEvent::PolicyRolledOut,
        day(5),
        grace(day(7)),
    );
    row(
        &p,
        Start::InGrace,
        GraceEvent::PolicyRolledOut,
        day(7),
        blocked(day(7)),
    );
    // ContactAdded: verified → Compliant; unverified → same deadline.
    row(
        &p,
        Start::InGrace,
        add_email("w", true),
        day(6),
        Phase::Compliant,
    );
    row(
        &p,
        Start::InGrace,
        add_email("w", false),
        day(6),
        grace(day(7)),
    );
    row(
        &p,
        Start::InGrace,
        add_email("w", false),
        day(7),
        blocked(day(7)),
    );
    // ContactVerified: met → Compliant; unknown key → same deadline.
    row(&p, Start::InGrace, verify("u"), day(6), Phase::Compliant);
    row(&p, Start::InGrace, verify("x"), day(6), grace(day(7)));
    row(&p, Start::InGrace, verify("x"), day(8), blocked(day(7)));
    // ContactRemoved: never met by a removal under AnyOf; the deadline stays.
    row(&p, Start::InGrace, remove("u"), day(6), grace(day(7)));
    row(&p, Start::InGrace, remove("u"), day(7), blocked(day(7)));
    // ... under AllOf, removing the last unverified contact can meet it.
    let all = GracePolicy::default().with_requirement(Requirement::AllOf);
    let mut s = GraceState::new();
    s.apply(&all, GraceEvent::AccountCreated, day(0));
    s.apply(&all, add_email("v", true), day(0));
    s.apply(&all, add_email("u", false), day(1));
    assert_eq!(s.phase(), grace(day(7)));
    assert_eq!(s.apply(&all, remove("u"), day(2)).to, Phase::Compliant);
    // ContactChanged: to verified → Compliant; unverified → same deadline.
    row(
        &p,
        Start::InGrace,
        change("u", "p", true),
        day(6),
        Phase::Compliant,
    );
    row(
        &p,
        Start::InGrace,
        change("u", "p", false),
        day(6),
        grace(day(7)),
    );
    row(
        &p,
        Start::InGrace,
        change("u", "p", false),
        day(9),
        blocked(day(7)),
    );
}

#[test]
fn table_blocked() {
    let p = GracePolicy::default();
    // Nothing but meeting the requirement leaves Blocked.
    row(
        &p,
        Start::Blocked,
        GraceEvent::AccountCreated,
        day(9),
        blocked(day(7)),
    );
    row(
        &p,
        Start::Blocked,
        GraceEvent::PolicyRolledOut,
        day(9),
        blocked(day(7)),
    );
    row(
        &p,
        Start::Blocked,
        add_email("w", false),
        day(9),
        blocked(day(7)),
    );
    row(&p, Start::Blocked, verify("x"), day(9), blocked(day(7)));
    row(&p, Start::Blocked, remove("u"), day(9), blocked(day(7)));
    row(
        &p,
        Start::Blocked,
        change("u", "p", false),
        day(9),
        blocked(day(7)),
    );
    // Meeting it restores access.
    for event in [add_email("w", true), verify("u"), change("u", "p", true)] {
        let mut s = state(Start::Blocked, &p);
        let t = s.apply(&p, event, day(9));
        assert!(t.restored());
        assert_eq!(t.to, Phase::Compliant);
        assert_eq!(s.evaluate(&p, day(9)), GraceDecision::Allow);
    }
    // A back-dated event settles to the running window, with the same deadline.
    row(
        &p,
        Start::Blocked,
        add_email("w", false),
        day(3),
        grace(day(7)),
    );
}

// ---------------------------------------------------------------------------
// evaluate and the deadline edge
// ---------------------------------------------------------------------------

#[test]
fn evaluate_table() {
    let p = GracePolicy::default();
    let s = state(Start::NotStarted, &p);
    assert_eq!(s.evaluate(&p, day(100)), GraceDecision::Allow);
    let s = state(Start::Compliant, &p);
    assert_eq!(s.evaluate(&p, day(100)), GraceDecision::Allow);
    let s = state(Start::InGrace, &p);
    assert_eq!(
        s.evaluate(&p, day(2)),
        GraceDecision::Remind {
            deadline: day(7),
            to_verify: vec![key("u")],
        }
    );
    // The stored phase says InGrace, but evaluate settles at `now`.
    assert_eq!(
        s.evaluate(&p, day(8)),
        GraceDecision::Blocked {
            since: day(7),
            to_verify: vec![key("u")],
            paths: vec![
                VerificationPath::VerifyContact(key("u")),
                VerificationPath::AddContact {
                    kinds: KindFilter::All
                },
            ],
        }
    );
    assert_eq!(s.phase_at(&p, day(8)), blocked(day(7)));
    // A stored Blocked evaluated before the deadline reminds.
    let s = state(Start::Blocked, &p);
    assert!(matches!(
        s.evaluate(&p, day(6)),
        GraceDecision::Remind { .. }
    ));
}

#[test]
fn exactly_seven_days() {
    let p = GracePolicy::default();
    let created = t0();
    let mut s = GraceState::new();
    s.apply(&p, GraceEvent::AccountCreated, created);
    s.apply(
        &p,
        GraceEvent::added(
            &Destination::phone("+81 90-1234-5678").expect("phone"),
            false,
        ),
        created,
    );
    let deadline = created + Duration::days(7);
    assert_eq!(s.deadline(), Some(deadline));

    let last = deadline - Duration::NANOSECOND;
    assert_eq!(
        s.evaluate(&p, last),
        GraceDecision::Remind {
            deadline,
            to_verify: vec![key("+819012345678")],
        }
    );
    assert!(s.evaluate(&p, last).is_allowed());
    assert!(s.evaluate(&p, deadline).is_blocked());
    assert!(s.evaluate(&p, created + Duration::days(8)).is_blocked());
    assert!(s.evaluate(&p, created + Duration::days(365)).is_blocked());

    // Recorded: the first event at or after the deadline reports the block.
    let mut before = s.clone();
    assert!(!before.refresh(&p, last).changed());
    let t = s.refresh(&p, deadline);
    assert!(t.blocked());
    assert_eq!(t.to, blocked(deadline));

    // Day 8: verifying restores full access.
    let phone = Destination::phone("+81 90-1234-5678").expect("phone");
    let t = s.apply(
        &p,
        GraceEvent::verified(&phone),
        created + Duration::days(8),
    );
    assert!(t.restored());
    assert_eq!(s.deadline(), None);
    assert_eq!(
        s.evaluate(&p, created + Duration::days(8)),
        GraceDecision::Allow
    );
}

#[test]
fn custom_grace_length_edges() {
    let p = GracePolicy::default().with_grace(Duration::hours(36));
    let mut s = GraceState::new();
    s.apply(&p, GraceEvent::AccountCreated, t0());
    let d = t0() + Duration::hours(36);
    assert!(!s.evaluate(&p, d - Duration::NANOSECOND).is_blocked());
    assert!(s.evaluate(&p, d).is_blocked());
    // Zero grace: blocked at once; negative is clamped to zero.
    let zero = GracePolicy::default().with_grace(Duration::days(-1));
    assert_eq!(zero.grace, Duration::ZERO);
    let mut s = GraceState::new();
    assert_eq!(
        s.apply(&zero, GraceEvent::AccountCreated, t0()).to,
        blocked(t0())
    );
}

#[test]
fn cannot_reach_any_contact_adds_a_new_one() {
    let p = GracePolicy::default();
    let mut s = GraceState::new();
    s.apply(&p, GraceEvent::AccountCreated, day(0));
    s.apply(&p, add_email("old-mail", false), day(0));
    s.apply(&p, add("old-phone", DestinationKind::Phone, false), day(0));
    let GraceDecision::Blocked {
        paths, to_verify, ..
    } = s.evaluate(&p, day(10))
    else {
        panic!("expected blocked");
    };
    assert_eq!(to_verify, vec![key("old-mail"), key("old-phone")]);
    assert!(paths.contains(&VerificationPath::AddContact {
        kinds: KindFilter::All
    }));
    s.apply(&p, add("new-phone", DestinationKind::Phone, false), day(10));
    assert!(s.evaluate(&p, day(10)).is_blocked());
    s.apply(&p, verify("new-phone"), day(10));
    assert_eq!(s.evaluate(&p, day(10)), GraceDecision::Allow);
}

#[test]
fn all_of_paths() {
    let p = GracePolicy::default().with_requirement(Requirement::AllOf);
    let mut s = GraceState::new();
    s.apply(&p, GraceEvent::AccountCreated, day(0));
    assert_eq!(
        s.paths(&p),
        vec![VerificationPath::AddContact {
            kinds: KindFilter::All
        }]
    );
    s.apply(&p, add_email("e", true), day(0));
    s.apply(&p, add("p", DestinationKind::Phone, false), day(0));
    assert_eq!(s.to_verify(&p), vec![key("p")]);
    assert_eq!(
        s.paths(&p),
        vec![
            VerificationPath::VerifyContact(key("p")),
            VerificationPath::ReplaceContact(key("p")),
        ]
    );
    // Replacing the unreachable phone by a verified one meets the requirement.
    s.apply(&p, change("p", "p2", true), day(9));
    assert_eq!(s.phase(), Phase::Compliant);
    assert!(s.paths(&p).is_empty());
}

// ---------------------------------------------------------------------------
// Starts and anti-extension
// ---------------------------------------------------------------------------

#[test]
fn rollout_start() {
    let rollout = day(100);
    let p = GracePolicy::default().with_start(GraceStart::Rollout(rollout));
    // Created before the roll-out: counted from the roll-out; allowed before it.
    let mut old = GraceState::new();
    old.apply(&p, GraceEvent::AccountCreated, day(0));
    assert_eq!(old.deadline(), Some(day(107)));
    assert_eq!(old.evaluate(&p, day(99)), GraceDecision::Allow);
    assert!(matches!(
        old.evaluate(&p, day(100)),
        GraceDecision::Remind { .. }
    ));
    assert!(
        !old.evaluate(&p, day(107) - Duration::NANOSECOND)
            .is_blocked()
    );
    assert!(old.evaluate(&p, day(107)).is_blocked());
    // Created after it: counted from the creation.
    let mut new = GraceState::new();
    new.apply(&p, GraceEvent::AccountCreated, day(120));
    assert_eq!(new.deadline(), Some(day(127)));
    // Enrolled by PolicyRolledOut, creation unknown: counted from the roll-out.
    let mut existing = GraceState::new();
    existing.apply(&p, GraceEvent::PolicyRolledOut, day(101));
    assert_eq!(existing.phase(), grace(day(107)));
    // Compliant, then the only verified contact goes after the deadline: blocked at once.
    let mut s = GraceState::new();
    s.apply(&p, add_email("v", true), day(0));
    s.apply(&p, GraceEvent::PolicyRolledOut, day(100));
    assert_eq!(s.phase(), Phase::Compliant);
    assert_eq!(s.apply(&p, remove("v"), day(200)).to, blocked(day(107)));
}

#[test]
fn contact_changed_start() {
    let p = GracePolicy::default().with_start(GraceStart::ContactChanged);
    let mut s = GraceState::new();
    s.apply(&p, GraceEvent::AccountCreated, day(0));
    assert_eq!(s.phase(), grace(day(7)));
    s.apply(&p, add("p", DestinationKind::Phone, true), day(1));
    assert_eq!(s.phase(), Phase::Compliant);
    // The change that breaks compliance opens a fresh window from the change.
    let t = s.apply(&p, change("p", "q", false), day(50));
    assert!(t.entered_grace());
    assert_eq!(s.phase(), grace(day(57)));
    // Further changes while in grace don't move it.
    s.apply(&p, change("q", "r", false), day(56));
    s.apply(&p, remove("r"), day(56));
    s.apply(&p, add_email("e", false), day(56));
    assert_eq!(s.deadline(), Some(day(57)));
    assert!(s.evaluate(&p, day(57)).is_blocked());
    s.apply(&p, verify("e"), day(60));
    assert_eq!(s.evaluate(&p, day(60)), GraceDecision::Allow);
}

#[test]
fn add_remove_loops_never_extend() {
    for starts in [
        GraceStart::AccountCreated,
        GraceStart::Rollout(day(0)),
        GraceStart::ContactChanged,
    ] {
        for requirement in [Requirement::AnyOf, Requirement::AllOf] {
            let p = GracePolicy::default()
                .with_start(starts)
                .with_requirement(requirement);
            let mut s = GraceState::new();
            s.apply(&p, GraceEvent::AccountCreated, day(0));
            for i in 0..60 {
                let at = day(0) + Duration::hours(6 * i);
                let k = format!("k{}", i % 3);
                s.apply(&p, add_email(&k, false), at);
                s.apply(&p, change(&k, "x", false), at);
                s.apply(&p, remove("x"), at);
                s.apply(&p, GraceEvent::PolicyRolledOut, at);
                assert_eq!(s.deadline(), Some(day(7)), "{starts:?} {requirement:?}");
            }
            assert!(s.evaluate(&p, day(15)).is_blocked());
        }
    }
}

#[test]
fn kind_filter() {
    let p = GracePolicy::default().with_kinds(KindFilter::Only(vec![DestinationKind::Phone]));
    let mut s = GraceState::new();
    s.apply(&p, GraceEvent::AccountCreated, day(0));
    s.apply(&p, add_email("e", true), day(0));
    assert_eq!(s.phase(), grace(day(7)));
    assert_eq!(s.to_verify(&p), Vec::<ContactKey>::new());
    let GraceDecision::Blocked { paths, .. } = s.evaluate(&p, day(7)) else {
        panic!("expected blocked");
    };
    assert_eq!(
        paths,
        vec![VerificationPath::AddContact {
            kinds: KindFilter::Only(vec![DestinationKind::Phone])
        }]
    );
    s.apply(&p, add("p", DestinationKind::Phone, true), day(8));
    assert_eq!(s.phase(), Phase::Compliant);
}

#[test]
fn serde_shapes() {
    let p = GracePolicy::default();
    let s = state(Start::InGrace, &p);
    let json = serde_json::to_string(&s).expect("serialize");
    let back: GraceState = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, s);
    // Keys are transparent strings.
    assert_eq!(serde_json::to_string(&key("a")).expect("key"), "\"a\"");
    // A policy missing fields takes the defaults.
    let policy: GracePolicy = serde_json::from_str("{}").expect("policy");
    assert_eq!(policy, GracePolicy::default());
    let empty: GraceState = serde_json::from_str("{}").expect("state");
    assert_eq!(empty, GraceState::new());
}

#[test]
fn debug_never_prints_contacts() {
    let p = GracePolicy::default();
    let mut s = GraceState::new();
    s.apply(&p, GraceEvent::AccountCreated, day(0));
    s.apply(&p, add_email("taro@example.com", false), day(0));
    let decision = s.evaluate(&p, day(9));
    for text in [format!("{s:?}"), format!("{decision:?}")] {
        assert!(!text.contains("taro"), "{text}");
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

const KEYS: [&str; 4] = ["a", "b", "c", "d"];

fn kind() -> impl Strategy<Value = DestinationKind> {
    prop_oneof![Just(DestinationKind::Phone), Just(DestinationKind::Email)]
}

fn contact_key() -> impl Strategy<Value = ContactKey> {
    prop::sample::select(&KEYS[..]).prop_map(ContactKey::new)
}

fn event() -> impl Strategy<Value = GraceEvent> {
    prop_oneof![
        1 => Just(GraceEvent::AccountCreated),
        1 => Just(GraceEvent::PolicyRolledOut),
        4 => (contact_key(), kind(), any::<bool>())
            .prop_map(|(key, kind, verified)| GraceEvent::ContactAdded { key, kind, verified }),
        2 => contact_key().prop_map(|key| GraceEvent::ContactVerified { key }),
        3 => contact_key().prop_map(|key| GraceEvent::ContactRemoved { key }),
        2 => (contact_key(), contact_key(), kind(), any::<bool>()).prop_map(
            |(old, new, kind, verified)| GraceEvent::ContactChanged { old, new, kind, verified }
        ),
    ]
}

/// An event that verifies nothing: contacts are added and changed unverified.
fn unverifying_event() -> impl Strategy<Value = GraceEvent> {
    event().prop_filter_map("verifies", |e| match e {
        GraceEvent::ContactVerified { .. } => None,
        GraceEvent::ContactAdded { key, kind, .. } => Some(GraceEvent::ContactAdded {
            key,
            kind,
            verified: false,
        }),
        GraceEvent::ContactChanged { old, new, kind, .. } => Some(GraceEvent::ContactChanged {
            old,
            new,
            kind,
            verified: false,
        }),
        other => Some(other),
    })
}

fn policy() -> impl Strategy<Value = GracePolicy> {
    let requirement = prop_oneof![Just(Requirement::AnyOf), Just(Requirement::AllOf)];
    let kinds = prop_oneof![
        3 => Just(KindFilter::All),
        1 => Just(KindFilter::Only(vec![DestinationKind::Phone])),
        1 => Just(KindFilter::Only(vec![DestinationKind::Email])),
        1 => Just(KindFilter::Only(vec![])),
    ];
    let grace = prop_oneof![
        3 => Just(Duration::days(7)),
        2 => (0i64..=30 * 86_400).prop_map(Duration::seconds),
        1 => Just(Duration::ZERO),
    ];
    let starts = prop_oneof![
        Just(GraceStart::AccountCreated),
        (-20i64..=40).prop_map(|d| GraceStart::Rollout(day(d))),
        Just(GraceStart::ContactChanged),
    ];
    (requirement, kinds, grace, starts).prop_map(|(r, k, g, s)| {
        GracePolicy::default()
            .with_requirement(r)
            .with_kinds(k)
            .with_grace(g)
            .with_start(s)
    })
}

/// A step forward in time: nothing, nanoseconds, hours or days.
fn step() -> impl Strategy<Value = Duration> {
    prop_oneof![
        2 => Just(Duration::ZERO),
        1 => (1i64..=1_000).prop_map(Duration::nanoseconds),
        3 => (0i64..=48 * 3_600).prop_map(Duration::seconds),
        2 => (0i64..=10).prop_map(Duration::days),
    ]
}

/// Events at non-decreasing times from day 0.
fn timeline(
    events: impl Strategy<Value = GraceEvent>,
) -> impl Strategy<Value = Vec<(GraceEvent, OffsetDateTime)>> {
    prop::collection::vec((events, step()), 0..40).prop_map(|steps| {
        let mut at = t0();
        steps
            .into_iter()
            .map(|(e, s)| {
                at += s;
                (e, at)
            })
            .collect()
    })
}

/// Any instant, including the far ends of `OffsetDateTime`.
fn any_instant() -> impl Strategy<Value = OffsetDateTime> {
    prop_oneof![
        4 => (-30i64 * 86_400..=90 * 86_400).prop_map(|s| t0() + Duration::seconds(s)),
        1 => Just(OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT)),
        1 => Just(OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX)),
        1 => (-62_000_000_000i64..=250_000_000_000).prop_map(|s| {
            OffsetDateTime::from_unix_timestamp(s).expect("in range")
        }),
    ]
}

/// The invariants every state satisfies after `apply(.., at)`.
fn check_invariants(
    s: &GraceState,
    p: &GracePolicy,
    at: OffsetDateTime,
    t: Transition,
    before: Phase,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(t.from, before);
    prop_assert_eq!(t.to, s.phase());
    // Not started iff not enrolled.
    prop_assert_eq!(s.phase() == Phase::NotStarted, s.enrolled_at().is_none());
    // Compliant iff enrolled and the requirement is met.
    if s.enrolled_at().is_some() {
        prop_assert_eq!(s.phase() == Phase::Compliant, s.requirement_met(p));
    }
    // A deadline iff in grace or blocked; the phase agrees with `at`.
    match s.phase() {
        Phase::InGrace { deadline } => {
            prop_assert!(at < deadline);
            prop_assert_eq!(s.deadline(), Some(deadline));
        }
        Phase::Blocked { since } => {
            prop_assert!(at >= since);
            prop_assert_eq!(s.deadline(), Some(since));
        }
        _ => prop_assert_eq!(s.deadline(), None),
    }
    // Keys are unique.
    let mut keys: Vec<&ContactKey> = s.contacts().iter().map(GraceContact::key).collect();
    keys.sort();
    keys.dedup();
    prop_assert_eq!(keys.len(), s.contacts().len());
    // The decision agrees with the phase: never blocked before the deadline.
    let decision = s.evaluate(p, at);
    match &decision {
        GraceDecision::Blocked {
            since,
            to_verify,
            paths,
        } => {
            prop_assert!(at >= *since);
            prop_assert_eq!(Some(*since), s.deadline());
            prop_assert!(!s.requirement_met(p));
            prop_assert!(!paths.is_empty());
            prop_assert_eq!(to_verify, &s.to_verify(p));
        }
        GraceDecision::Remind { deadline, .. } => {
            prop_assert!(at < *deadline);
            prop_assert!(!s.requirement_met(p));
        }
        _ => {}
    }
    if let Some(deadline) = s.deadline() {
        if deadline > at {
            prop_assert!(!s.evaluate(p, deadline - Duration::NANOSECOND).is_blocked());
        }
        let rolled_out = match p.starts {
            GraceStart::Rollout(r) => deadline >= r,
            _ => true,
        };
        if rolled_out {
            prop_assert!(s.evaluate(p, deadline).is_blocked());
        }
    }
    Ok(())
}

/// The deadline a window opened at `at` must have under a fixed start.
fn fixed_deadline(s: &GraceState, p: &GracePolicy) -> Option<OffsetDateTime> {
    let start = match p.starts {
        GraceStart::AccountCreated => s.created_at().or(s.enrolled_at())?,
        GraceStart::Rollout(r) => s.created_at().map_or(r, |c| c.max(r)),
        _ => return None,
    };
    Some(start + p.grace)
}

proptest! {
    #[test]
    fn state_always_valid(p in policy(), events in timeline(event())) {
        let mut s = GraceState::new();
        for (event, at) in events {
            let before = s.phase();
            let t = s.apply(&p, event, at);
            check_invariants(&s, &p, at, t, before)?;
            // A deadline moves only when leaving NotStarted or Compliant.
            if let (Some(old), Some(new)) = (before.deadline(), s.deadline()) {
                prop_assert_eq!(old, new);
            }
            // Fixed starts: every window ends at the one fixed deadline.
            if let (Some(d), Some(fixed)) = (s.deadline(), fixed_deadline(&s, &p))
                && matches!(t.from, Phase::NotStarted | Phase::Compliant)
            {
                prop_assert_eq!(d, fixed);
            }
            // ContactChanged: a new window runs exactly `grace` from the event.
            if p.starts == GraceStart::ContactChanged
                && t.from == Phase::Compliant
                && s.deadline().is_some()
            {
                prop_assert_eq!(s.deadline(), Some(at + p.grace));
            }
        }
    }

    #[test]
    fn random_times_never_panic_and_stay_valid(
        p in policy(),
        events in prop::collection::vec((event(), any_instant()), 0..30),
        probes in prop::collection::vec(any_instant(), 0..8),
    ) {
        let mut s = GraceState::new();
        for (event, at) in events {
            let before = s.phase();
            let t = s.apply(&p, event, at);
            check_invariants(&s, &p, at, t, before)?;
            for &now in &probes {
                let decision = s.evaluate(&p, now);
                if let GraceDecision::Blocked { since, .. } = decision {
                    prop_assert!(now >= since);
                }
                let _ = s.phase_at(&p, now);
            }
        }
    }

    #[test]
    fn verifying_restores_access(
        p in policy(),
        events in timeline(event()),
        later in step(),
        new_kind in kind(),
    ) {
        let mut s = GraceState::new();
        let mut at = t0();
        for (event, t) in events {
            s.apply(&p, event, t);
            at = t;
        }
        at += later;
        s.apply(&p, GraceEvent::PolicyRolledOut, at);
        for key in s.to_verify(&p) {
            s.apply(&p, GraceEvent::ContactVerified { key }, at);
        }
        if !s.requirement_met(&p) {
            // No counted contact at all: add one of a counted kind, verified.
            let kind = if p.kinds.counts(new_kind) {
                new_kind
            } else if p.kinds.counts(DestinationKind::Phone) {
                DestinationKind::Phone
            } else {
                DestinationKind::Email
            };
            let t = s.apply(
                &p,
                GraceEvent::ContactAdded { key: ContactKey::new("new"), kind, verified: false },
                at,
            );
            prop_assert_ne!(t.to, Phase::Compliant);
            s.apply(&p, GraceEvent::ContactVerified { key: ContactKey::new("new") }, at);
        }
        prop_assert!(s.requirement_met(&p));
        prop_assert_eq!(s.phase(), Phase::Compliant);
        prop_assert_eq!(s.deadline(), None);
        prop_assert_eq!(s.evaluate(&p, at), GraceDecision::Allow);
        prop_assert_eq!(s.evaluate(&p, at + Duration::days(365)), GraceDecision::Allow);
    }

    #[test]
    fn serde_round_trip(
        p in policy(),
        events in timeline(event()),
        probes in prop::collection::vec(any_instant(), 1..6),
    ) {
        let mut s = GraceState::new();
        for (event, at) in events {
            s.apply(&p, event, at);
        }
        let json = serde_json::to_string(&s).expect("serialize");
        let back: GraceState = serde_json::from_str(&json).expect("deserialize");
        prop_assert_eq!(&back, &s);
        let policy_json = serde_json::to_string(&p).expect("serialize policy");
        let p2: GracePolicy = serde_json::from_str(&policy_json).expect("deserialize policy");
        prop_assert_eq!(&p2, &p);
        for now in probes {
            prop_assert_eq!(back.evaluate(&p2, now), s.evaluate(&p, now));
        }
    }

    /// Without verifying anything, an account gets one deadline, ever: no
    /// loop of adding, changing and removing contacts moves it.
    #[test]
    fn no_extension_without_verification(
        p in policy(),
        events in timeline(unverifying_event()),
    ) {
        let mut s = GraceState::new();
        let mut first: Option<OffsetDateTime> = None;
        for (event, at) in events {
            s.apply(&p, event, at);
            if let Some(d) = s.deadline() {
                prop_assert_eq!(*first.get_or_insert(d), d);
            }
            if let Some(d) = first {
                // Once past it, blocked for good.
                if at >= d {
                    prop_assert!(s.evaluate(&p, at).is_blocked());
                }
                prop_assert!(s.phase() != Phase::Compliant);
            }
        }
    }
}
