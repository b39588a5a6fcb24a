//! The contact registry: an account's verified phone numbers and email
//! addresses, one owner per phone number, and the grace period.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::codes::Code;
use super::verifications::Completed;
use super::{Challenges, IssueRequest, Ticket, account};
use crate::contact::{MaskPolicy, PhonePolicy};
use crate::error::{AccountRefusal, CodeRefusal, ContactRefusal, Error, Misuse, Refusal};
use crate::events::Event;
use crate::grace::{GraceDecision, GraceEvent, GracePolicy};
use crate::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, Channel, ContactEntry, ContactKey,
    Destination, DestinationKind, FailureRecord, Locale, Phase, Purpose, draw_incarnation,
};
use crate::store::{ClaimChanges, Load};

/// What the registry allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ContactPolicy {
    /// Which phone numbers may be registered (default: Japanese mobile
    /// numbers, which can receive SMS).
    pub phone: PhonePolicy,
    /// Phone numbers per account (default 1, as nizima: change it rather
    /// than add a second).
    pub max_phones: usize,
    /// Email addresses per account (default 3).
    pub max_emails: usize,
    /// Whether a verified phone number belongs to at most one account
    /// (default `true`).
    pub unique_phones: bool,
    /// Whether a verified email address belongs to at most one account
    /// (default `false`: the host's own account table usually owns that
    /// rule for the sign-in address).
    pub unique_emails: bool,
    /// Whether a verified email address counts as a second factor (default
    /// `false`: NIST SP 800-63B §5.1.3.1 rules email out for out-of-band
    /// authentication); decides which removals would leave two-step sign-in
    /// with none. The service's `email_as_second_factor` sets it.
    pub email_second_factor: bool,
}

impl Default for ContactPolicy {
    fn default() -> Self {
        Self {
            phone: PhonePolicy::default(),
            max_phones: 1,
            max_emails: 3,
            unique_phones: true,
            unique_emails: false,
            email_second_factor: false,
        }
    }
}

impl ContactPolicy {
    /// The default policy.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `phone` for phone numbers.
    #[must_use]
    pub fn with_phone_policy(mut self, phone: PhonePolicy) -> Self {
        self.phone = phone;
        self
    }

    /// At most `phones` phone numbers and `emails` email addresses per
    /// account.
    #[must_use]
    pub fn with_limits(mut self, phones: usize, emails: usize) -> Self {
        self.max_phones = phones;
        self.max_emails = emails;
        self
    }

    /// Whether phone numbers and email addresses are one-owner.
    #[must_use]
    pub fn with_unique(mut self, phones: bool, emails: bool) -> Self {
        self.unique_phones = phones;
        self.unique_emails = emails;
        self
    }

    /// Whether emails count as a second factor.
    #[must_use]
    pub fn with_email_second_factor(mut self, counts: bool) -> Self {
        self.email_second_factor = counts;
        self
    }

    fn unique(&self, kind: DestinationKind) -> bool {
        match kind {
            DestinationKind::Phone => self.unique_phones,
            DestinationKind::Email => self.unique_emails,
        }
    }

    fn max(&self, kind: DestinationKind) -> usize {
        match kind {
            DestinationKind::Phone => self.max_phones,
            DestinationKind::Email => self.max_emails,
        }
    }
}

/// One contact, for display and for the host's own use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ContactView {
    /// The contact (its `Debug` is masked). Left out of the JSON form,
    /// which carries the masked one: a page never needs the whole address.
    #[serde(skip)]
    pub destination: Destination,
    /// The masked form to show, as the
    /// [`mask_policy`](crate::service::TwoFactorBuilder::mask_policy) says
    /// (`+81 **-****-**78`).
    pub masked_destination: String,
    /// Whether it is verified.
    pub verified: bool,
    /// Whether two-step sign-in sends codes here.
    pub two_factor: bool,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
    /// When it was last verified.
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
}

impl ContactView {
    /// The view of `entry`, masked as `policy` says.
    pub(crate) fn masked_with(entry: &ContactEntry, policy: &MaskPolicy) -> Self {
        Self {
            masked_destination: entry.destination.masked_for(policy),
            ..Self::from(entry)
        }
    }
}

/// The view of an entry masked as the default [`MaskPolicy`] says; the
/// registry's own views follow its policy.
impl From<&ContactEntry> for ContactView {
    fn from(entry: &ContactEntry) -> Self {
        Self {
            destination: entry.destination.clone(),
            masked_destination: entry.destination.masked_for(&MaskPolicy::default()),
            verified: entry.is_verified(),
            two_factor: entry.two_factor,
            added_at: entry.added_at,
            verified_at: entry.verified_at,
        }
    }
}

/// An account's contacts: add and verify, change, remove, one owner per
/// phone number, and the grace period that makes users verify them.
///
/// - **Adding or verifying** a contact sends a one-time code
///   ([`send_code`](Self::send_code)); the contact is written (and, for a
///   phone number, claimed) only when the code is confirmed
///   ([`confirm`](Self::confirm)).
/// - **One owner per number.** A verified phone number is claimed for the
///   account in the same atomic store write that records it; of two
///   accounts racing for one number exactly one gets it, the other gets
///   [`ContactRefusal::InUse`](crate::ContactRefusal::InUse).
/// - **Changing** a number ([`send_change_code_from`](Self::send_change_code_from),
///   [`confirm_change`](Self::confirm_change)) verifies the new number
///   first, then swaps it in, claims it and releases the old one in one
///   write. A new number is a new authenticator (NIST SP 800-63B): the
///   account's security epoch is bumped, so every trusted device dies, and
///   codes in flight to the old number no longer match the account's
///   contact.
/// - **Removing** a contact that two-step sign-in uses is refused
///   ([`ContactRefusal::Required`](crate::ContactRefusal::Required)): change it instead.
/// - **Grace period**: every change feeds the account's
///   [`GraceState`](crate::model::GraceState); [`grace`](Self::grace) answers at sign-in.
///
/// Cheap to clone; share one.
#[derive(Debug, Clone)]
pub struct Contacts {
    pub(super) challenges: Challenges,
    policy: ContactPolicy,
    grace: GracePolicy,
}

/// How a write to the record ended, inside [`Contacts::update`].
pub(crate) type Edit<T> = Result<(T, ClaimChanges, Vec<GraceEvent>), Error>;

impl Contacts {
    /// A registry sending its codes through `challenges`, with the default
    /// [`ContactPolicy`] and [`GracePolicy`].
    #[must_use]
    pub fn new(challenges: Challenges) -> Self {
        Self {
            challenges,
            policy: ContactPolicy::default(),
            grace: GracePolicy::default(),
        }
    }

    /// Uses `policy`.
    #[must_use]
    pub fn with_policy(mut self, policy: ContactPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Uses `grace` for the grace period.
    #[must_use]
    pub fn with_grace_policy(mut self, grace: GracePolicy) -> Self {
        self.grace = grace;
        self
    }

    /// The registry's policy.
    #[must_use]
    pub fn policy(&self) -> &ContactPolicy {
        &self.policy
    }

    fn now(&self) -> OffsetDateTime {
        self.challenges.now()
    }

    /// An entry as screens may show it.
    pub(crate) fn view(&self, entry: &ContactEntry) -> ContactView {
        ContactView::masked_with(entry, self.challenges.mask_policy())
    }

    /// Refuses a destination the policy does not allow.
    fn admit(&self, destination: &Destination) -> Result<(), Error> {
        if destination.kind() == DestinationKind::Phone {
            self.policy
                .phone
                .check(destination.address(), Channel::Sms)
                .map_err(|refusal| Error::Contact(refusal.into()))?;
        }
        Ok(())
    }

    /// Reads, edits and writes the account's record with compare-and-set,
    /// retrying on conflict. `edit` returns its answer, the claims to change
    /// and the grace events that happened; it may run more than once. The
    /// first time the contact flows see an account, its grace period starts
    /// (an [`AccountCreated`](GraceEvent::AccountCreated) event, now).
    pub(crate) async fn update<T>(
        &self,
        account: &AccountId,
        edit: impl FnMut(&mut AccountRecord) -> Edit<T>,
    ) -> Result<T, Error> {
        let book = self.challenges.inner.store.account_record(account).await?;
        self.update_from(account, book, edit).await
    }

    /// [`update`](Self::update) from the record the caller just read
    /// (`None`: the account has none yet).
    pub(crate) async fn update_from<T>(
        &self,
        account: &AccountId,
        book: Option<AccountRecord>,
        mut edit: impl FnMut(&mut AccountRecord) -> Edit<T>,
    ) -> Result<T, Error> {
        let store = &*self.challenges.inner.store;
        let now = self.now();
        let rng = &*self.challenges.inner.rng;
        let book = match book {
            Some(book) => book,
            None => AccountRecord::fresh(account, now, draw_incarnation(rng)?),
        };
        let result = account::update_from(store, rng, account, now, book, |book| {
            self.enroll(book, now);
            let (answer, changes, events) = edit(book)?;
            for event in events {
                book.grace.apply(&self.grace, event, now);
            }
            Ok((answer, changes))
        })
        .await;
        if let Err(Error::Refused(reason @ Refusal::Contact(ContactRefusal::InUse))) = &result {
            return Err(self.refuse(account, *reason));
        }
        result
    }

    /// Starts the grace period of an account the contact flows see for the
    /// first time.
    fn enroll(&self, book: &mut AccountRecord, now: OffsetDateTime) {
        if book.grace.phase() == Phase::NotStarted {
            book.grace
                .apply(&self.grace, GraceEvent::AccountCreated, now);
        }
    }

    fn refuse(&self, account: &AccountId, reason: Refusal) -> Error {
        self.challenges.emit(Event::Failed {
            challenge: None,
            account: Some(account.clone()),
            reason,
        });
        Error::Refused(reason)
    }

    fn claims_for(&self, destination: &Destination) -> Vec<String> {
        if self.policy.unique(destination.kind()) {
            vec![destination.limit_key()]
        } else {
            Vec::new()
        }
    }

    /// Starts the account's account record when the account is created, which
    /// starts the grace period under [`GraceStart::AccountCreated`].
    /// Accounts that predate the registry get a record on first use instead
    /// (their grace period then runs from that moment, or from the
    /// roll-out date under [`GraceStart::Rollout`]). Idempotent.
    ///
    /// [`GraceStart::AccountCreated`]: crate::grace::GraceStart::AccountCreated
    /// [`GraceStart::Rollout`]: crate::grace::GraceStart::Rollout
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn create(&self, account: &AccountId) -> Result<(), Error> {
        self.update(account, |_| Ok(((), ClaimChanges::default(), Vec::new())))
            .await
    }

    /// Brings in a contact the host already has (from before ninsho), as
    /// verified or not. An unverified contact is what the grace period
    /// asks the user to verify. A verified unique phone number is claimed.
    ///
    /// # Errors
    /// [`ContactRefusal::InUse`](crate::ContactRefusal::InUse), [`ContactRefusal::TooMany`](crate::ContactRefusal::TooMany);
    /// [`Error::Store`]. The phone policy is not applied (the host had the
    /// number already); it applies when the user verifies it.
    pub async fn import(
        &self,
        account: &AccountId,
        destination: &Destination,
        verified: bool,
    ) -> Result<(), Error> {
        let now = self.now();
        self.update(account, |book| {
            if book
                .contacts
                .iter()
                .any(|c| c.destination.limit_key() == destination.limit_key())
            {
                return Err(Refusal::Contact(ContactRefusal::AlreadyAdded).into());
            }
            self.check_room(book, destination.kind())?;
            book.contacts
                .push(self.entry(destination.clone(), now, verified.then_some(now)));
            let claim = if verified {
                self.claims_for(destination)
            } else {
                Vec::new()
            };
            Ok((
                (),
                ClaimChanges {
                    claim,
                    release: Vec::new(),
                },
                vec![GraceEvent::added(destination, verified)],
            ))
        })
        .await
    }

    /// A new entry; a phone's number type is read once, here.
    fn entry(
        &self,
        destination: Destination,
        now: OffsetDateTime,
        verified_at: Option<OffsetDateTime>,
    ) -> ContactEntry {
        let phone_type = (destination.kind() == DestinationKind::Phone)
            .then(|| self.policy.phone.parse(destination.address()).ok())
            .flatten()
            .map(|number| number.phone_type());
        ContactEntry {
            destination,
            added_at: now,
            verified_at,
            two_factor: false,
            phone_type,
        }
    }

    fn check_room(&self, book: &AccountRecord, kind: DestinationKind) -> Result<(), Error> {
        let count = book.contacts.iter().filter(|c| c.kind() == kind).count();
        if count >= self.policy.max(kind) {
            return Err(Refusal::Contact(ContactRefusal::TooMany).into());
        }
        Ok(())
    }

    /// The account's contacts, oldest first (empty if it has none).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn list(&self, account: &AccountId) -> Result<Vec<ContactView>, Error> {
        let book = self.challenges.inner.store.account_record(account).await?;
        Ok(book
            .map(|b| b.contacts.iter().map(|c| self.view(c)).collect())
            .unwrap_or_default())
    }

    /// Sends a code to add `destination` to the account, or to verify it if
    /// it is registered unverified, in `locale` (`None`: the service's).
    /// [`confirm`](Self::confirm) finishes.
    ///
    /// # Errors
    /// [`Error::Contact`] when the phone policy refuses the number (a
    /// landline, a foreign number, …, with the reason);
    /// [`ContactRefusal::AlreadyAdded`](crate::ContactRefusal::AlreadyAdded) when it is on the account and
    /// verified; [`ContactRefusal::TooMany`](crate::ContactRefusal::TooMany); otherwise as for
    /// [`Challenges::issue`].
    ///
    /// Whether another account holds the contact is **not** checked here:
    /// that would let anyone probe which numbers are registered. The code
    /// goes out either way, and [`confirm`](Self::confirm) refuses with
    /// [`ContactRefusal::InUse`](crate::ContactRefusal::InUse) — telling only the person who proved they
    /// receive codes there.
    pub async fn send_code(
        &self,
        account: &AccountId,
        destination: &Destination,
        caller: Option<&str>,
        locale: Option<Locale>,
    ) -> Result<Ticket, Error> {
        let loaded = self
            .challenges
            .inner
            .store
            .load(&Load::account(account))
            .await?;
        self.send_code_from(
            account,
            (loaded.record, loaded.failures),
            destination,
            caller,
            locale,
        )
        .await
    }

    /// [`send_code`](Self::send_code) on the account's record and failure
    /// run as the caller just read them (in one store call).
    pub(crate) async fn send_code_from(
        &self,
        account: &AccountId,
        (book, failures): (Option<AccountRecord>, Option<FailureRecord>),
        destination: &Destination,
        caller: Option<&str>,
        locale: Option<Locale>,
    ) -> Result<Ticket, Error> {
        self.admit(destination)?;
        if let Some(book) = &book {
            match find(book, destination) {
                Some(entry) if entry.is_verified() => {
                    return Err(
                        self.refuse(account, Refusal::Contact(ContactRefusal::AlreadyAdded))
                    );
                }
                Some(_) => {}
                None => self.check_room(book, destination.kind())?,
            }
        }
        let epoch = book.map_or(0, |b| b.epoch);
        self.issue(account, destination, epoch, failures, caller, locale)
            .await
    }

    /// Sends a contact-change code, bound to the account's security epoch
    /// `epoch`: it confirms nothing once the epoch has moved on. `locale`
    /// `None` is the service's.
    async fn issue(
        &self,
        account: &AccountId,
        destination: &Destination,
        epoch: u64,
        failures: Option<FailureRecord>,
        caller: Option<&str>,
        locale: Option<Locale>,
    ) -> Result<Ticket, Error> {
        let mut request =
            IssueRequest::new(destination.clone(), Purpose::ContactChange).account(account.clone());
        request.epoch = Some(epoch);
        request.failures_read = Some(failures);
        request.locale = locale;
        if let Some(caller) = caller {
            request = request.caller(caller);
        }
        self.challenges.issue(request).await
    }

    /// Checks the code sent by [`send_code`](Self::send_code) and records
    /// the contact as verified (adding it if new), claiming a unique phone
    /// number for the account. Returns the contact.
    ///
    /// The contact is written **before** the code is spent: if anything
    /// fails in between, the code still works and a retry finishes the job
    /// (it finds the change made and only spends the code), so no failure
    /// loses both.
    ///
    /// # Errors
    /// As for [`Challenges::verify`]; [`ContactRefusal::InUse`](crate::ContactRefusal::InUse) when another
    /// account claimed the number meanwhile (exactly one of racing accounts
    /// wins); [`ContactRefusal::TooMany`](crate::ContactRefusal::TooMany); [`Error::Store`].
    pub async fn confirm(
        &self,
        account: &AccountId,
        challenge: &ChallengeId,
        code: &str,
    ) -> Result<ContactView, Error> {
        let loaded = self
            .challenges
            .inner
            .store
            .load(&Load::account(account).with_challenge(challenge))
            .await?;
        let Some(record) = loaded.challenge else {
            return Err(self.challenges.unknown(*challenge));
        };
        let read = Read {
            challenge: record,
            failures: loaded.failures,
            book: loaded.record,
        };
        self.confirm_record(account, read, code, None, |_| Ok(()))
            .await
            .map(|(view, _)| view)
    }

    /// [`confirm`](Self::confirm) or [`confirm_change`](Self::confirm_change)
    /// on a challenge record the caller has just read (sparing a read): a
    /// change when `replacing` is given. `also` changes the record further in
    /// the same write (turning two-step sign-in on with the new phone).
    /// Also says whether the change was made by an earlier try (whose
    /// caller saw an error), this call only spending the code.
    pub(crate) async fn confirm_record(
        &self,
        account: &AccountId,
        read: Read,
        code: &str,
        replacing: Option<&Destination>,
        mut also: impl FnMut(&mut AccountRecord) -> Result<(), Error>,
    ) -> Result<(ContactView, bool), Error> {
        let Read {
            challenge: record,
            failures,
            book,
        } = read;
        if record.account.as_ref() != Some(account) {
            // Someone else's challenge: as unknown as a made-up id.
            return Err(self.refuse(account, Refusal::Code(CodeRefusal::Unknown)));
        }
        let id = record.id;
        let issued_at_epoch = record.epoch;
        let new = record.destination.clone();
        if let Some(old) = replacing
            && new.kind() != old.kind()
        {
            return Err(self.refuse(account, Refusal::Code(CodeRefusal::DestinationMismatch)));
        }
        let purpose = Purpose::ContactChange;
        // Checked, not spent: a wrong code is counted here as always, in
        // the write that records it on the challenge.
        let code = Code {
            input: code,
            purpose: &purpose,
            destination: &new,
            attempt: None,
        };
        let checked = self
            .challenges
            .check_step(account, (record, failures), code)
            .await?;
        let now = self.now();
        let (view, epoch, earlier) = self
            .update_from(account, book, |book| {
                if book.last_change == Some(id) {
                    // Made by an earlier try whose code was not spent.
                    let view = find(book, &new).map(|c| self.view(c));
                    let view = view.ok_or(Error::Refused(Refusal::Contact(
                        ContactRefusal::NotOnAccount,
                    )))?;
                    return Ok(((view, None, true), ClaimChanges::default(), Vec::new()));
                }
                // A change started before "sign out everywhere", a password
                // change or a factor change was authorised under the old
                // epoch: it is void now.
                if issued_at_epoch.is_some_and(|e| e != book.epoch) {
                    return Err(Refusal::Account(AccountRefusal::StepUpRequired).into());
                }
                let (_, claims, events) = match replacing {
                    Some(old) => self.swap(book, old, &new, now)?,
                    None => self.mark_verified(book, &new, now)?,
                };
                also(book)?;
                book.last_change = Some(id);
                // As stored, after `also` (which may make it a factor).
                let view = find(book, &new).map(|c| self.view(c));
                let view = view.ok_or(Error::Refused(Refusal::Contact(
                    ContactRefusal::NotOnAccount,
                )))?;
                let epoch = replacing.is_some().then_some(book.epoch);
                Ok(((view, epoch, false), claims, events))
            })
            .await?;
        self.challenges.spend_step(account, checked).await?;
        if let Some(epoch) = epoch {
            self.challenges.emit(Event::EpochBumped {
                account: account.clone(),
                epoch,
            });
        }
        Ok((view, earlier))
    }

    /// Marks `destination` verified in `record` (adding it if new).
    fn mark_verified(
        &self,
        book: &mut AccountRecord,
        destination: &Destination,
        now: OffsetDateTime,
    ) -> Edit<ContactView> {
        let key = destination.limit_key();
        let event = match book
            .contacts
            .iter_mut()
            .find(|c| c.destination.limit_key() == key)
        {
            Some(entry) => {
                entry.verified_at = Some(now);
                GraceEvent::verified(&entry.destination)
            }
            None => {
                self.check_room(book, destination.kind())?;
                book.contacts
                    .push(self.entry(destination.clone(), now, Some(now)));
                GraceEvent::added(destination, true)
            }
        };
        // While two-step sign-in is on, a verified phone is one of its
        // factors (changeable, not removable), as when it was turned on.
        if book.factors.two_factor_since.is_some()
            && let Some(entry) = book
                .contacts
                .iter_mut()
                .find(|c| c.destination.limit_key() == key)
        {
            entry.two_factor |= entry.kind() == DestinationKind::Phone;
        }
        let view = find(book, destination).map(|c| self.view(c));
        let view = view.ok_or(Error::Refused(Refusal::Contact(
            ContactRefusal::NotOnAccount,
        )))?;
        Ok((
            view,
            ClaimChanges {
                claim: self.claims_for(destination),
                release: Vec::new(),
            },
            vec![event],
        ))
    }

    /// Sends a code to `new`, to replace `old` once confirmed, on the
    /// account's record and failure run as the caller just read them (in
    /// one store call).
    pub(crate) async fn send_change_code_from(
        &self,
        account: &AccountId,
        (book, failures): (Option<AccountRecord>, Option<FailureRecord>),
        old: &Destination,
        new: &Destination,
        caller: Option<&str>,
        locale: Option<Locale>,
    ) -> Result<Ticket, Error> {
        if old.kind() != new.kind() {
            return Err(Misuse::KindChange.into());
        }
        self.admit(new)?;
        let Some(book) = book.filter(|b| find(b, old).is_some()) else {
            return Err(self.refuse(account, Refusal::Contact(ContactRefusal::NotOnAccount)));
        };
        if find(&book, new).is_some() {
            return Err(self.refuse(account, Refusal::Contact(ContactRefusal::AlreadyAdded)));
        }
        self.issue(account, new, book.epoch, failures, caller, locale)
            .await
    }

    /// Puts the verified `new` in place of `old` in `record` (see
    /// [`confirm_change`](Self::confirm_change)).
    fn swap(
        &self,
        book: &mut AccountRecord,
        old: &Destination,
        new: &Destination,
        now: OffsetDateTime,
    ) -> Edit<ContactView> {
        let old_key = old.limit_key();
        if book
            .contacts
            .iter()
            .any(|c| c.destination.limit_key() == new.limit_key())
        {
            return Err(Refusal::Contact(ContactRefusal::AlreadyAdded).into());
        }
        let entry = book
            .contacts
            .iter_mut()
            .find(|c| c.destination.limit_key() == old_key)
            .ok_or(Error::Refused(Refusal::Contact(
                ContactRefusal::NotOnAccount,
            )))?;
        let event = GraceEvent::ContactChanged {
            old: ContactKey::from(&entry.destination),
            new: ContactKey::from(new),
            kind: new.kind(),
            verified: true,
        };
        let released = entry.destination.limit_key();
        let fresh = self.entry(new.clone(), now, Some(now));
        entry.destination = fresh.destination;
        entry.phone_type = fresh.phone_type;
        entry.added_at = now;
        entry.verified_at = Some(now);
        let view = self.view(entry);
        // A new number is a new authenticator: devices trusted and
        // step-ups proven before die in this same write.
        crate::factors::move_epoch(book);
        Ok((
            view,
            ClaimChanges {
                claim: self.claims_for(new),
                release: vec![released],
            },
            vec![event],
        ))
    }

    /// Removes a contact and releases its claim. Removing a verified
    /// contact that can carry a second factor (a phone, or an email where
    /// email counts) moves the account's security epoch on in the same
    /// write: devices trusted and step-ups proven with it die.
    ///
    /// # Errors
    /// [`ContactRefusal::NotOnAccount`](crate::ContactRefusal::NotOnAccount); [`ContactRefusal::Required`](crate::ContactRefusal::Required) when two-step
    /// sign-in uses it (change it instead, or turn two-step sign-in off
    /// first); [`Error::Store`].
    pub async fn remove(
        &self,
        account: &AccountId,
        destination: &Destination,
    ) -> Result<(), Error> {
        let result = self
            .update(account, |book| {
                let key = destination.limit_key();
                let index = book
                    .contacts
                    .iter()
                    .position(|c| c.destination.limit_key() == key)
                    .ok_or(Error::Refused(Refusal::Contact(
                        ContactRefusal::NotOnAccount,
                    )))?;
                let last_factor = book.factors.two_factor_since.is_some()
                    && !crate::factors::has_second_factor(
                        book,
                        self.policy.email_second_factor,
                        Some(index),
                    );
                if book.contacts[index].two_factor || last_factor {
                    return Err(Refusal::Contact(ContactRefusal::Required).into());
                }
                let entry = book.contacts.remove(index);
                // A contact that could carry a second factor is a factor
                // removed: devices and step-ups proven with it die too.
                let factor = entry.is_verified()
                    && (entry.kind() == DestinationKind::Phone || self.policy.email_second_factor);
                let epoch = factor.then(|| crate::factors::move_epoch(book));
                Ok((
                    epoch,
                    ClaimChanges {
                        claim: Vec::new(),
                        release: vec![key],
                    },
                    vec![GraceEvent::ContactRemoved {
                        key: ContactKey::from(&entry.destination),
                    }],
                ))
            })
            .await;
        match result {
            Err(Error::Refused(reason)) => Err(self.refuse(account, reason)),
            Err(e) => Err(e),
            Ok(epoch) => {
                if let Some(epoch) = epoch {
                    self.challenges.emit(Event::EpochBumped {
                        account: account.clone(),
                        epoch,
                    });
                }
                Ok(())
            }
        }
    }

    /// Registers the contacts of a completed combined verification (the
    /// EZSMS sign-up) as verified contacts of `account`, claiming unique
    /// ones — all or none.
    ///
    /// # Errors
    /// [`ContactRefusal::InUse`](crate::ContactRefusal::InUse) when another account holds one of them
    /// (nothing is registered); [`ContactRefusal::TooMany`](crate::ContactRefusal::TooMany);
    /// [`Error::Store`].
    pub async fn adopt(&self, account: &AccountId, completed: &Completed) -> Result<(), Error> {
        let now = self.now();
        self.update(account, |book| {
            let mut claims = ClaimChanges::default();
            let mut events = Vec::new();
            for destination in &completed.destinations {
                let key = destination.limit_key();
                match book
                    .contacts
                    .iter_mut()
                    .find(|c| c.destination.limit_key() == key)
                {
                    Some(entry) => {
                        entry.verified_at = Some(now);
                        events.push(GraceEvent::verified(destination));
                    }
                    None => {
                        self.check_room(book, destination.kind())?;
                        book.contacts
                            .push(self.entry(destination.clone(), now, Some(now)));
                        events.push(GraceEvent::added(destination, true));
                    }
                }
                claims.claim.extend(self.claims_for(destination));
            }
            Ok(((), claims, events))
        })
        .await
    }

    /// The grace decision for an account's record, now.
    pub(crate) fn decide_grace(&self, book: &AccountRecord) -> GraceDecision {
        book.grace.evaluate(&self.grace, self.now())
    }

    /// The account's record with its grace period started (written, if this
    /// is the first time the contact flows see the account).
    pub(crate) async fn book(&self, account: &AccountId) -> Result<AccountRecord, Error> {
        let stored = self.challenges.inner.store.account_record(account).await?;
        match stored {
            Some(book) if book.grace.phase() != Phase::NotStarted => Ok(book),
            _ => {
                self.update(account, |book| {
                    Ok((book.clone(), ClaimChanges::default(), Vec::new()))
                })
                .await
            }
        }
    }

    /// Deletes every contact of the account and releases its claims (the
    /// account is being deleted).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn delete_all(&self, account: &AccountId) -> Result<(), Error> {
        Ok(self.challenges.inner.store.delete_account(account).await?)
    }
}

fn find<'a>(book: &'a AccountRecord, destination: &Destination) -> Option<&'a ContactEntry> {
    let key = destination.limit_key();
    book.contacts
        .iter()
        .find(|c| c.destination.limit_key() == key)
}

/// What a contact confirmation reads in one store call: the challenge,
/// the account's failure run and its record.
#[derive(Debug)]
pub(crate) struct Read {
    pub(crate) challenge: ChallengeRecord,
    pub(crate) failures: Option<FailureRecord>,
    pub(crate) book: Option<AccountRecord>,
}
