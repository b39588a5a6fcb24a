//! The grace-period state machine: contacts must be verified, within a grace
//! period, or sign-in is blocked until one is.
//!
//! Microsoft's rule (seed `004`): the contact details registered on an account
//! must be confirmed as the user's own. Someone who can't receive a code right
//! now gets **7 days**; after that, sign-in is blocked until a contact is
//! verified. A user who can reach none of the registered contacts adds a new
//! one and verifies it.
//!
//! This module is a pure engine: no I/O and no clock. The host (or the flows)
//! keeps one [`GraceState`] per account, feeds it [`GraceEvent`]s with the
//! instant they happened through [`GraceState::apply`], and asks
//! [`GraceState::evaluate`] at sign-in what to do. The state is plain data
//! (`serde`), so it can be stored inside any account record. The
//! [`GracePolicy`] is not stored in the state: pass the same policy to every
//! call (after changing it, see [`GraceState::refresh`]).
//!
//! # The policy and its defaults
//!
//! | knob | default | meaning |
//! |---|---|---|
//! | [`Requirement`] | [`AnyOf`](Requirement::AnyOf) | at least one verified contact (Microsoft's rule); [`AllOf`](Requirement::AllOf): every registered contact verified |
//! | [`KindFilter`] | [`All`](KindFilter::All) | which contacts count: phone numbers, email addresses or both |
//! | grace | 7 days | Microsoft's grace period |
//! | [`GraceStart`] | [`AccountCreated`](GraceStart::AccountCreated) | where the grace period is counted from |
//!
//! Both requirements need **at least one** verified counted contact: an
//! account with no contact at all never complies and has to add one.
//!
//! # Phases
//!
//! [`Phase::NotStarted`] until the account is enrolled (an
//! [`AccountCreated`](GraceEvent::AccountCreated) or
//! [`PolicyRolledOut`](GraceEvent::PolicyRolledOut) event); then
//! [`Compliant`](Phase::Compliant) exactly when the requirement is met, else
//! [`InGrace`](Phase::InGrace) before the deadline and
//! [`Blocked`](Phase::Blocked) from the deadline on.
//!
//! **The deadline edge.** The grace period is the half-open interval
//! `[start, deadline)` with `deadline = start + grace`: at `deadline - 1 ns`
//! the user is reminded, **at `deadline` exactly** sign-in is blocked. With
//! the default policy an account created at 10:00 on day 0 is blocked from
//! 10:00 on day 7.
//!
//! **Where a grace period starts** (a "new window" below), by [`GraceStart`]:
//!
//! | start | deadline of a new window |
//! |---|---|
//! | `AccountCreated` | account creation + grace (enrolment instant if the creation was never reported) |
//! | `Rollout(t)` | `max(creation, t)` + grace (`t` + grace if the creation was never reported) |
//! | `ContactChanged` | the instant of the event that opened the window + grace |
//!
//! **No extension by adding and removing contacts.** A running deadline never
//! moves: while the account is in grace or blocked, no event changes its
//! deadline; only meeting the requirement (verifying) leaves those phases. A
//! new window is opened only when the account leaves `NotStarted` or
//! `Compliant`, so a user who never verifies anything has exactly one
//! deadline, ever. With `AccountCreated` and `Rollout` a new window has the
//! *same* fixed deadline as the first, so losing compliance after it (removing
//! the only verified contact, say) blocks at once — no fresh 7 days. Only
//! `ContactChanged` grants a fresh grace period, and only to an account that
//! was compliant just before the change, i.e. had proved it owns a contact.
//! (Under `AllOf` + `ContactChanged` a user can keep removing and re-adding an
//! unverified *extra* contact, but every window then needs a compliant moment
//! in between, when all remaining contacts are verified.)
//!
//! # Transition table
//!
//! `apply(policy, event, at)` first updates the contact list (the event), then
//! settles the phase at `at`. "met" is the requirement after the update; "new
//! window" is the deadline from the table above; `d` the running deadline.
//! "window(d)" means `InGrace { deadline: d }` if `at < d`, else
//! `Blocked { since: d }`.
//!
//! | phase before | event | contacts | phase after |
//! |---|---|---|---|
//! | `NotStarted` | `AccountCreated` | creation recorded | `Compliant` if met, else window(new window) |
//! | `NotStarted` | `PolicyRolledOut` | enrolment recorded | `Compliant` if met, else window(new window) |
//! | `NotStarted` | `ContactAdded` / `ContactVerified` / `ContactRemoved` / `ContactChanged` | updated | `NotStarted` |
//! | `Compliant` | `AccountCreated` / `PolicyRolledOut` | unchanged | `Compliant` if met, else window(new window) |
//! | `Compliant` | `ContactAdded` | added | `Compliant` if met, else window(new window) |
//! | `Compliant` | `ContactVerified` | verified | `Compliant` |
//! | `Compliant` | `ContactRemoved` | removed | `Compliant` if met, else window(new window) |
//! | `Compliant` | `ContactChanged` | old replaced by new | `Compliant` if met, else window(new window) |
//! | `InGrace { d }` | `AccountCreated` / `PolicyRolledOut` | unchanged | `Compliant` if met, else window(d) |
//! | `InGrace { d }` | `ContactAdded` | added | `Compliant` if met, else window(d) |
//! | `InGrace { d }` | `ContactVerified` | verified | `Compliant` if met, else window(d) |
//! | `InGrace { d }` | `ContactRemoved` | removed | `Compliant` if met, else window(d) |
//! | `InGrace { d }` | `ContactChanged` | old replaced by new | `Compliant` if met, else window(d) |
//! | `Blocked { d }` | `AccountCreated` / `PolicyRolledOut` | unchanged | `Compliant` if met, else window(d) |
//! | `Blocked { d }` | `ContactAdded` | added | `Compliant` if met, else window(d) |
//! | `Blocked { d }` | `ContactVerified` | verified | `Compliant` if met, else window(d) |
//! | `Blocked { d }` | `ContactRemoved` | removed | `Compliant` if met, else window(d) |
//! | `Blocked { d }` | `ContactChanged` | old replaced by new | `Compliant` if met, else window(d) |
//!
//! Details: a second `AccountCreated` keeps the first creation instant; an
//! added key that is already registered replaces that entry (kind and
//! verified flag, as the host reports them); verifying, removing or changing
//! an unknown key changes no contact; `ContactChanged` with `old == new`
//! updates the entry. Events should arrive in time order; an event dated
//! before the running deadline settles to `InGrace` (window(d)), but the
//! deadline itself never moves, so no event can un-block an account for
//! later instants except by meeting the requirement.
//!
//! # Decisions
//!
//! `evaluate(policy, now)` is pure and cheap (one pass over the contacts). It
//! settles the phase at `now` the way `apply` would and answers:
//!
//! | phase at `now` | decision |
//! |---|---|
//! | any, with `GraceStart::Rollout(t)` and `now < t` | [`Allow`](GraceDecision::Allow) (the policy is not in force yet) |
//! | `NotStarted` | [`Allow`](GraceDecision::Allow) |
//! | `Compliant` | [`Allow`](GraceDecision::Allow) |
//! | `InGrace { d }` (`now < d`) | [`Remind { deadline: d, to_verify }`](GraceDecision::Remind) |
//! | `Blocked { d }` (`now >= d`) | [`Blocked { since: d, to_verify, paths }`](GraceDecision::Blocked) |
//!
//! A blocked user may still run the [`VerificationPath`]s: verify a
//! registered contact, or — "I can't reach any of these" — add a new contact
//! (under `AllOf`: put a new contact in place of an unreachable one) and verify
//! it. The host lets those steps through and feeds the resulting events in.
//!
//! # Example
//!
//! ```
//! use ninsho::model::DestinationKind;
//! use ninsho::grace::{GraceDecision, GraceEvent, GracePolicy};
//! use ninsho::model::{ContactKey, GraceState, Phase};
//! use time::{Date, Duration, Month};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = GracePolicy::default(); // any one contact verified, 7 days from sign-up
//! let mut state = GraceState::new();
//! let created = Date::from_calendar_date(2025, Month::April, 1)?.with_hms(10, 0, 0)?.assume_utc();
//! state.apply(&policy, GraceEvent::AccountCreated, created);
//! let email = ContactKey::new("taro@example.com");
//! state.apply(
//!     &policy,
//!     GraceEvent::ContactAdded { key: email.clone(), kind: DestinationKind::Email, verified: false },
//!     created,
//! );
//! let deadline = created + Duration::days(7);
//! assert_eq!(state.phase(), Phase::InGrace { deadline });
//!
//! // Day 6: signed in, with a reminder.
//! match state.evaluate(&policy, created + Duration::days(6)) {
//!     GraceDecision::Remind { deadline: d, to_verify } => {
//!         assert_eq!(d, deadline);
//!         assert_eq!(to_verify, vec![email.clone()]);
//!     }
//!     other => panic!("expected a reminder, got {other:?}"),
//! }
//! // Exactly 7 days later: blocked until a contact is verified.
//! assert!(state.evaluate(&policy, deadline).is_blocked());
//!
//! // Day 8: the user verifies the address; full access again.
//! let t = state.apply(&policy, GraceEvent::ContactVerified { key: email }, created + Duration::days(8));
//! assert!(t.restored());
//! assert_eq!(state.evaluate(&policy, created + Duration::days(8)), GraceDecision::Allow);
//! # Ok(())
//! # }
//! ```

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::model::{ContactKey, Destination, DestinationKind, GraceContact, GraceState, Phase};

/// Which contacts the account must have verified.
///
/// Either way at least one counted contact must be verified, so an account
/// without contacts never complies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Requirement {
    /// Every registered (counted) contact is verified, and there is at least
    /// one. Pair it with [`GraceStart::ContactChanged`]: with a fixed start, a
    /// contact added after the deadline blocks sign-in until it is verified.
    AllOf,
    /// At least one registered (counted) contact is verified (Microsoft's
    /// rule; the default).
    #[default]
    AnyOf,
}

/// Which kinds of contact the [`Requirement`] counts. Contacts of other kinds
/// are kept in the state but neither help nor hurt compliance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KindFilter {
    /// Every kind counts (the default).
    #[default]
    All,
    /// Only these kinds count. An empty list counts every kind, like
    /// [`KindFilter::All`], so a policy can never be impossible to meet.
    Only(Vec<DestinationKind>),
}

impl KindFilter {
    /// Whether contacts of `kind` count.
    #[must_use]
    pub fn counts(&self, kind: DestinationKind) -> bool {
        match self {
            Self::All => true,
            Self::Only(kinds) => kinds.is_empty() || kinds.contains(&kind),
        }
    }
}

/// Where a grace period is counted from. See the [module docs](self) for the
/// exact deadlines and the anti-extension rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GraceStart {
    /// From the account's creation (the default): one fixed deadline per
    /// account.
    #[default]
    AccountCreated,
    /// From the policy's roll-out instant for accounts created before it,
    /// from their creation for accounts created after it: one fixed deadline
    /// per account. Before the instant, [`GraceState::evaluate`] allows
    /// everyone.
    Rollout(OffsetDateTime),
    /// From the contact change that broke compliance: a compliant account
    /// that adds, removes or changes a contact so that the requirement is no
    /// longer met gets a fresh grace period from that change. The first
    /// grace period starts at enrolment.
    ContactChanged,
}

/// The grace-period rules for a set of accounts.
///
/// ```
/// use ninsho::model::DestinationKind;
/// use ninsho::grace::{GracePolicy, GraceStart, KindFilter, Requirement};
/// use time::Duration;
///
/// let policy = GracePolicy::default()
///     .with_requirement(Requirement::AllOf)
///     .with_kinds(KindFilter::Only(vec![DestinationKind::Phone]))
///     .with_grace(Duration::days(14))
///     .with_start(GraceStart::ContactChanged);
/// assert_eq!(policy.grace, Duration::days(14));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GracePolicy {
    /// Which contacts must be verified (default: any one).
    pub requirement: Requirement,
    /// Which kinds of contact count (default: all).
    pub kinds: KindFilter,
    /// How long the grace period lasts (default: 7 days, Microsoft's rule).
    /// A negative value counts as zero: blocked at once.
    pub grace: Duration,
    /// Where the grace period is counted from (default: account creation).
    pub starts: GraceStart,
}

impl GracePolicy {
    /// The default grace period: 7 days.
    pub const DEFAULT_GRACE: Duration = Duration::days(7);

    /// The default policy: any one contact verified within 7 days of the
    /// account's creation.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// With this requirement.
    #[must_use]
    pub fn with_requirement(mut self, requirement: Requirement) -> Self {
        self.requirement = requirement;
        self
    }

    /// Counting only these kinds of contact.
    #[must_use]
    pub fn with_kinds(mut self, kinds: KindFilter) -> Self {
        self.kinds = kinds;
        self
    }

    /// With this grace length (negative values are clamped to zero).
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace.max(Duration::ZERO);
        self
    }

    /// Counting the grace period from `starts`.
    #[must_use]
    pub fn with_start(mut self, starts: GraceStart) -> Self {
        self.starts = starts;
        self
    }

    fn effective_grace(&self) -> Duration {
        self.grace.max(Duration::ZERO)
    }
}

impl Default for GracePolicy {
    fn default() -> Self {
        Self {
            requirement: Requirement::AnyOf,
            kinds: KindFilter::All,
            grace: Self::DEFAULT_GRACE,
            starts: GraceStart::AccountCreated,
        }
    }
}

/// Something that happened to an account; the instant goes to
/// [`GraceState::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GraceEvent {
    /// The account was created (enrols it; only the first one counts).
    AccountCreated,
    /// The policy now applies to this existing account (enrols it). Also
    /// re-checks the requirement, like [`GraceState::refresh`].
    PolicyRolledOut,
    /// A contact was registered (replaces the entry if the key is known).
    ContactAdded {
        /// The contact.
        key: ContactKey,
        /// Phone or email.
        kind: DestinationKind,
        /// Whether it was verified when added (e.g. by a code at sign-up).
        verified: bool,
    },
    /// A registered contact was verified.
    ContactVerified {
        /// The contact.
        key: ContactKey,
    },
    /// A contact was removed.
    ContactRemoved {
        /// The contact.
        key: ContactKey,
    },
    /// A contact was replaced by another (a changed phone number, say).
    ContactChanged {
        /// The contact that goes.
        old: ContactKey,
        /// The contact that takes its place.
        new: ContactKey,
        /// The new contact's kind.
        kind: DestinationKind,
        /// Whether the new contact is verified (the flows verify a new
        /// number before swapping it in).
        verified: bool,
    },
}

impl GraceEvent {
    /// [`GraceEvent::ContactAdded`] for a destination, keyed by
    /// [`ContactKey::from`].
    #[must_use]
    pub fn added(destination: &Destination, verified: bool) -> Self {
        Self::ContactAdded {
            key: ContactKey::from(destination),
            kind: destination.kind(),
            verified,
        }
    }

    /// [`GraceEvent::ContactVerified`] for a destination.
    #[must_use]
    pub fn verified(destination: &Destination) -> Self {
        Self::ContactVerified {
            key: ContactKey::from(destination),
        }
    }
}

/// What an event did to the phase, for events, logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transition {
    /// The phase before the event.
    pub from: Phase,
    /// The phase after it.
    pub to: Phase,
}

impl Transition {
    /// Whether the phase (or its deadline) changed.
    #[must_use]
    pub fn changed(&self) -> bool {
        self.from != self.to
    }

    /// Whether the account went from grace or blocked to compliant.
    #[must_use]
    pub fn restored(&self) -> bool {
        matches!(self.from, Phase::InGrace { .. } | Phase::Blocked { .. })
            && self.to == Phase::Compliant
    }

    /// Whether the account entered a grace period (from not started or
    /// compliant).
    #[must_use]
    pub fn entered_grace(&self) -> bool {
        matches!(self.from, Phase::NotStarted | Phase::Compliant)
            && matches!(self.to, Phase::InGrace { .. })
    }

    /// Whether the account became blocked.
    #[must_use]
    pub fn blocked(&self) -> bool {
        !matches!(self.from, Phase::Blocked { .. }) && matches!(self.to, Phase::Blocked { .. })
    }
}

/// What a blocked (or reminded) user may still do to get access back.
///
/// Not serialisable on purpose: it names contacts by their full
/// [`ContactKey`]. Show users the masked forms (the service's contact
/// views) instead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerificationPath {
    /// Send a code to this registered contact and enter it.
    VerifyContact(ContactKey),
    /// "I can't reach any of these": register a new contact of a counted
    /// kind and verify it.
    AddContact {
        /// The kinds that count.
        kinds: KindFilter,
    },
    /// Under [`Requirement::AllOf`]: put a new contact (of a counted kind)
    /// in place of this unreachable one and verify it.
    ReplaceContact(ContactKey),
}

/// What to do at sign-in.
///
/// Not serialisable on purpose: it names contacts by their full
/// [`ContactKey`], which must not reach a browser before the second step.
/// Map keys to masked forms (the service's contact views) for display.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraceDecision {
    /// Full access.
    Allow,
    /// Access, with a reminder to verify before `deadline`.
    Remind {
        /// The first instant at which sign-in will be blocked.
        deadline: OffsetDateTime,
        /// The registered contacts still to verify (any one of them under
        /// `AnyOf`, all of them under `AllOf`); empty when the account has
        /// no counted contact and must add one.
        to_verify: Vec<ContactKey>,
    },
    /// No access until the requirement is met, except along `paths`.
    Blocked {
        /// The deadline that passed.
        since: OffsetDateTime,
        /// The registered contacts still to verify, as in `Remind`.
        to_verify: Vec<ContactKey>,
        /// What the user may still do.
        paths: Vec<VerificationPath>,
    },
}

impl GraceDecision {
    /// Whether sign-in goes ahead (`Allow` or `Remind`).
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        !self.is_blocked()
    }

    /// Whether sign-in is blocked.
    #[must_use]
    pub fn is_blocked(&self) -> bool {
        matches!(self, Self::Blocked { .. })
    }
}

impl GraceState {
    /// A new account: not enrolled, no contacts.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `event`, which happened at `at`, and settles the phase at
    /// `at` (see the transition table in the [module docs](self)).
    pub fn apply(
        &mut self,
        policy: &GracePolicy,
        event: GraceEvent,
        at: OffsetDateTime,
    ) -> Transition {
        let from = self.phase;
        match event {
            GraceEvent::AccountCreated => {
                self.created_at.get_or_insert(at);
                self.enrolled_at.get_or_insert(at);
            }
            GraceEvent::PolicyRolledOut => {
                self.enrolled_at.get_or_insert(at);
            }
            GraceEvent::ContactAdded {
                key,
                kind,
                verified,
            } => self.upsert(key, kind, verified),
            GraceEvent::ContactVerified { key } => {
                if let Some(contact) = self.contacts.iter_mut().find(|c| c.key == key) {
                    contact.verified = true;
                }
            }
            GraceEvent::ContactRemoved { key } => self.contacts.retain(|c| c.key != key),
            GraceEvent::ContactChanged {
                old,
                new,
                kind,
                verified,
            } => {
                self.contacts.retain(|c| c.key != old);
                self.upsert(new, kind, verified);
            }
        }
        self.phase = self.settle(policy, at);
        Transition {
            from,
            to: self.phase,
        }
    }

    /// Re-checks the requirement at `at` without an event: call it after
    /// changing the policy (a stricter requirement opens a window as the
    /// policy says) or to record that the deadline has passed.
    pub fn refresh(&mut self, policy: &GracePolicy, at: OffsetDateTime) -> Transition {
        let from = self.phase;
        self.phase = self.settle(policy, at);
        Transition {
            from,
            to: self.phase,
        }
    }

    /// What to do at sign-in at `now`. Pure: it settles the phase at `now`
    /// as [`apply`](Self::apply) would, without recording anything.
    #[must_use]
    pub fn evaluate(&self, policy: &GracePolicy, now: OffsetDateTime) -> GraceDecision {
        if let GraceStart::Rollout(rollout) = policy.starts
            && now < rollout
        {
            return GraceDecision::Allow;
        }
        match self.settle(policy, now) {
            Phase::NotStarted | Phase::Compliant => GraceDecision::Allow,
            Phase::InGrace { deadline } => GraceDecision::Remind {
                deadline,
                to_verify: self.to_verify(policy),
            },
            Phase::Blocked { since } => GraceDecision::Blocked {
                since,
                to_verify: self.to_verify(policy),
                paths: self.paths(policy),
            },
        }
    }

    /// The phase as of the last event.
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The phase at `now` under `policy`, as [`evaluate`](Self::evaluate)
    /// sees it (e.g. `Blocked` once the deadline has passed).
    #[must_use]
    pub fn phase_at(&self, policy: &GracePolicy, now: OffsetDateTime) -> Phase {
        self.settle(policy, now)
    }

    /// The running deadline, in grace or blocked.
    #[must_use]
    pub fn deadline(&self) -> Option<OffsetDateTime> {
        self.phase.deadline()
    }

    /// The registered contacts, in registration order.
    #[must_use]
    pub fn contacts(&self) -> &[GraceContact] {
        &self.contacts
    }

    /// When the account was created, if reported.
    #[must_use]
    pub fn created_at(&self) -> Option<OffsetDateTime> {
        self.created_at
    }

    /// When the account was enrolled (its first `AccountCreated` or
    /// `PolicyRolledOut`), if it was.
    #[must_use]
    pub fn enrolled_at(&self) -> Option<OffsetDateTime> {
        self.enrolled_at
    }

    /// Whether the contacts meet the policy's requirement.
    #[must_use]
    pub fn requirement_met(&self, policy: &GracePolicy) -> bool {
        let mut counted = self.contacts.iter().filter(|c| policy.kinds.counts(c.kind));
        match policy.requirement {
            Requirement::AnyOf => counted.any(|c| c.verified),
            Requirement::AllOf => {
                let mut any = false;
                for contact in counted {
                    if !contact.verified {
                        return false;
                    }
                    any = true;
                }
                any
            }
        }
    }

    /// The counted contacts that are not verified yet, in registration
    /// order (empty once the requirement is met).
    #[must_use]
    pub fn to_verify(&self, policy: &GracePolicy) -> Vec<ContactKey> {
        if self.requirement_met(policy) {
            return Vec::new();
        }
        self.contacts
            .iter()
            .filter(|c| policy.kinds.counts(c.kind) && !c.verified)
            .map(|c| c.key.clone())
            .collect()
    }

    /// What the user can do to meet the requirement: verify each contact in
    /// [`to_verify`](Self::to_verify); under `AnyOf`, add a new contact;
    /// under `AllOf`, replace each unverified contact (or add one when there
    /// is no counted contact). Empty once the requirement is met.
    #[must_use]
    pub fn paths(&self, policy: &GracePolicy) -> Vec<VerificationPath> {
        let to_verify = self.to_verify(policy);
        if to_verify.is_empty() && self.requirement_met(policy) {
            return Vec::new();
        }
        let mut paths: Vec<VerificationPath> = to_verify
            .iter()
            .cloned()
            .map(VerificationPath::VerifyContact)
            .collect();
        match policy.requirement {
            Requirement::AnyOf => paths.push(VerificationPath::AddContact {
                kinds: policy.kinds.clone(),
            }),
            Requirement::AllOf => {
                if to_verify.is_empty() {
                    paths.push(VerificationPath::AddContact {
                        kinds: policy.kinds.clone(),
                    });
                }
                paths.extend(to_verify.into_iter().map(VerificationPath::ReplaceContact));
            }
        }
        paths
    }

    fn upsert(&mut self, key: ContactKey, kind: DestinationKind, verified: bool) {
        if let Some(contact) = self.contacts.iter_mut().find(|c| c.key == key) {
            contact.kind = kind;
            contact.verified = verified;
        } else {
            self.contacts.push(GraceContact {
                key,
                kind,
                verified,
            });
        }
    }

    /// The phase the state settles to at `at`.
    fn settle(&self, policy: &GracePolicy, at: OffsetDateTime) -> Phase {
        if self.enrolled_at.is_none() {
            return Phase::NotStarted;
        }
        if self.requirement_met(policy) {
            return Phase::Compliant;
        }
        let deadline = match self.phase {
            // A running deadline never moves.
            Phase::InGrace { deadline } | Phase::Blocked { since: deadline } => deadline,
            Phase::NotStarted | Phase::Compliant => self.new_deadline(policy, at),
        };
        if at < deadline {
            Phase::InGrace { deadline }
        } else {
            Phase::Blocked { since: deadline }
        }
    }

    /// The deadline of a window opened at `at`.
    fn new_deadline(&self, policy: &GracePolicy, at: OffsetDateTime) -> OffsetDateTime {
        let start = match policy.starts {
            GraceStart::AccountCreated => self.created_at.or(self.enrolled_at).unwrap_or(at),
            GraceStart::Rollout(rollout) => self.created_at.map_or(rollout, |c| c.max(rollout)),
            GraceStart::ContactChanged => at,
        };
        start
            .checked_add(policy.effective_grace())
            .unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-04-01 10:00 UTC.
    const T0: OffsetDateTime = match OffsetDateTime::from_unix_timestamp(1_743_501_600) {
        Ok(t) => t,
        Err(_) => panic!("in range"),
    };

    fn email(key: &str, verified: bool) -> GraceEvent {
        GraceEvent::ContactAdded {
            key: ContactKey::new(key),
            kind: DestinationKind::Email,
            verified,
        }
    }

    fn phone(key: &str, verified: bool) -> GraceEvent {
        GraceEvent::ContactAdded {
            key: ContactKey::new(key),
            kind: DestinationKind::Phone,
            verified,
        }
    }

    fn created(policy: &GracePolicy) -> GraceState {
        let mut state = GraceState::new();
        state.apply(policy, GraceEvent::AccountCreated, T0);
        state
    }

    #[test]
    fn defaults_follow_microsoft() {
        let policy = GracePolicy::default();
        assert_eq!(policy.grace, Duration::days(7));
        assert_eq!(policy.requirement, Requirement::AnyOf);
        assert_eq!(policy.kinds, KindFilter::All);
        assert_eq!(policy.starts, GraceStart::AccountCreated);
        assert_eq!(GraceState::new().phase(), Phase::NotStarted);
    }

    #[test]
    fn no_contacts_means_must_add_one() {
        let policy = GracePolicy::default();
        let state = created(&policy);
        let deadline = T0 + Duration::days(7);
        assert_eq!(state.phase(), Phase::InGrace { deadline });
        assert_eq!(
            state.evaluate(&policy, T0),
            GraceDecision::Remind {
                deadline,
                to_verify: vec![]
            }
        );
        assert_eq!(
            state.evaluate(&policy, deadline),
            GraceDecision::Blocked {
                since: deadline,
                to_verify: vec![],
                paths: vec![VerificationPath::AddContact {
                    kinds: KindFilter::All
                }],
            }
        );
    }

    #[test]
    fn deadline_edge_is_half_open() {
        let policy = GracePolicy::default();
        let mut state = created(&policy);
        state.apply(&policy, email("a", false), T0);
        let deadline = T0 + Duration::days(7);
        assert!(matches!(
            state.evaluate(&policy, deadline - Duration::NANOSECOND),
            GraceDecision::Remind { .. }
        ));
        assert!(state.evaluate(&policy, deadline).is_blocked());
    }

    #[test]
    fn removal_after_deadline_gives_no_fresh_grace_with_fixed_start() {
        let policy = GracePolicy::default();
        let mut state = created(&policy);
        state.apply(&policy, email("a", true), T0);
        assert_eq!(state.phase(), Phase::Compliant);
        let later = T0 + Duration::days(30);
        let t = state.apply(
            &policy,
            GraceEvent::ContactRemoved {
                key: ContactKey::new("a"),
            },
            later,
        );
        assert_eq!(
            t.to,
            Phase::Blocked {
                since: T0 + Duration::days(7)
            }
        );
        assert!(t.blocked());
    }

    #[test]
    fn contact_changed_start_grants_fresh_grace_only_from_compliant() {
        let policy = GracePolicy::default()
            .with_requirement(Requirement::AllOf)
            .with_start(GraceStart::ContactChanged);
        let mut state = created(&policy);
        state.apply(&policy, phone("p", true), T0);
        assert_eq!(state.phase(), Phase::Compliant);
        let t1 = T0 + Duration::days(30);
        state.apply(&policy, email("e", false), t1);
        assert_eq!(
            state.phase(),
            Phase::InGrace {
                deadline: t1 + Duration::days(7)
            }
        );
        // Adding more while in grace does not move the deadline.
        state.apply(&policy, email("f", false), t1 + Duration::days(6));
        assert_eq!(state.deadline(), Some(t1 + Duration::days(7)));
    }

    #[test]
    fn rollout_counts_from_rollout_or_creation() {
        let rollout = T0 + Duration::days(100);
        let policy = GracePolicy::default().with_start(GraceStart::Rollout(rollout));
        let old = created(&policy);
        assert_eq!(old.deadline(), Some(rollout + Duration::days(7)));
        assert_eq!(old.evaluate(&policy, T0), GraceDecision::Allow);

        let mut new = GraceState::new();
        let c = rollout + Duration::days(1);
        new.apply(&policy, GraceEvent::AccountCreated, c);
        assert_eq!(new.deadline(), Some(c + Duration::days(7)));

        let mut migrated = GraceState::new();
        migrated.apply(
            &policy,
            GraceEvent::PolicyRolledOut,
            rollout + Duration::days(8),
        );
        assert_eq!(
            migrated.phase(),
            Phase::Blocked {
                since: rollout + Duration::days(7)
            }
        );
    }

    #[test]
    fn kind_filter_ignores_other_kinds() {
        let policy =
            GracePolicy::default().with_kinds(KindFilter::Only(vec![DestinationKind::Phone]));
        let mut state = created(&policy);
        state.apply(&policy, email("e", true), T0);
        assert!(!state.requirement_met(&policy));
        assert_eq!(state.to_verify(&policy), Vec::<ContactKey>::new());
        state.apply(&policy, phone("p", false), T0);
        assert_eq!(state.to_verify(&policy), vec![ContactKey::new("p")]);
        let empty = GracePolicy::default().with_kinds(KindFilter::Only(vec![]));
        assert!(state.requirement_met(&empty));
    }

    #[test]
    fn all_of_paths_offer_replacement() {
        let policy = GracePolicy::default().with_requirement(Requirement::AllOf);
        let mut state = created(&policy);
        state.apply(&policy, phone("p", false), T0);
        assert_eq!(
            state.paths(&policy),
            vec![
                VerificationPath::VerifyContact(ContactKey::new("p")),
                VerificationPath::ReplaceContact(ContactKey::new("p")),
            ]
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let key = ContactKey::new("taro@example.com");
        assert_eq!(format!("{key:?}"), "ContactKey(..)");
        let mut state = GraceState::new();
        state.apply(
            &GracePolicy::default(),
            GraceEvent::ContactAdded {
                key,
                kind: DestinationKind::Email,
                verified: false,
            },
            T0,
        );
        assert!(!format!("{state:?}").contains("taro"));
    }

    #[test]
    fn saturates_far_in_the_future() {
        let policy = GracePolicy::default().with_grace(Duration::MAX);
        let state = created(&policy);
        assert!(state.deadline().is_some());
        assert!(matches!(
            state.evaluate(&policy, T0),
            GraceDecision::Remind { .. }
        ));
        let negative = GracePolicy {
            grace: Duration::days(-3),
            ..GracePolicy::default()
        };
        assert_eq!(created(&negative).phase(), Phase::Blocked { since: T0 });
    }
}
