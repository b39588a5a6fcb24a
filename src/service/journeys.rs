//! The journeys around the second step: sign-up, phone registration,
//! turning two-step sign-in on and off, the authenticator app, the
//! contact check with its grace period, and finding an account by a
//! contact.

use super::{AuthenticatorSetup, StepUp, TwoFactor};
use crate::error::{AccountRefusal, CodeRefusal, ContactRefusal, Error, Refusal};
use crate::events::Event;
use crate::factors;
use crate::flows::Read;
use crate::flows::account::Standing;
use crate::flows::codes::Checked;

use crate::flows::{
    ContactView, Progress, Ticket, VerificationRequest, VerificationStatus, VerificationTicket,
};
use crate::grace::{GraceDecision, VerificationPath};
use crate::model::{
    AccountId, AccountRecord, ChallengeId, Channel, Destination, DestinationKind, Purpose,
    VerificationId,
};
use crate::recovery::PlainCodes;
use crate::store::{ClaimChanges, Load};
use serde::Serialize;

/// A confirmed phone number (nizima's registration or change).
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct PhoneConfirmed {
    /// The phone, now verified and (one owner per number) claimed.
    pub contact: ContactView,
    /// Whether it replaced another number (trusted devices were revoked).
    pub changed: bool,
    /// When two-step sign-in was turned on in the same step: the recovery
    /// codes, to show once. Secrets: left out of the JSON form; render them
    /// with [`PlainCodes::expose_secret`].
    #[serde(skip)]
    pub recovery_codes: Option<PlainCodes>,
}

/// The contact check at sign-in (Microsoft): the grace decision and the
/// account's contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ContactCheck {
    /// Allow, remind (with the deadline), or blocked until a contact is
    /// verified (with the paths still open).
    #[serde(serialize_with = "decision_summary")]
    pub decision: GraceDecision,
    /// The contacts, to offer "verify this one" or "I can't reach any of
    /// these: add a new one".
    pub contacts: Vec<ContactView>,
}

/// The grace decision in the JSON form: the decision and its deadline, how
/// many contacts are still to verify, and what the user may do, with no
/// contact named (the page names them by the masked `contacts`).
fn decision_summary<S: serde::Serializer>(
    decision: &GraceDecision,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct as _;
    let rfc3339 = |at: time::OffsetDateTime| {
        at.format(&time::format_description::well_known::Rfc3339)
            .map_err(serde::ser::Error::custom)
    };
    let path = |p: &VerificationPath| match p {
        VerificationPath::VerifyContact(_) => "verify_contact",
        VerificationPath::AddContact { .. } => "add_contact",
        VerificationPath::ReplaceContact(_) => "replace_contact",
    };
    let mut out = serializer.serialize_struct("GraceDecision", 4)?;
    match decision {
        GraceDecision::Remind {
            deadline,
            to_verify,
        } => {
            out.serialize_field("decision", "remind")?;
            out.serialize_field("deadline", &rfc3339(*deadline)?)?;
            out.serialize_field("to_verify", &to_verify.len())?;
        }
        GraceDecision::Blocked {
            since,
            to_verify,
            paths,
        } => {
            out.serialize_field("decision", "blocked")?;
            out.serialize_field("since", &rfc3339(*since)?)?;
            out.serialize_field("to_verify", &to_verify.len())?;
            let paths: Vec<&str> = paths.iter().map(path).collect();
            out.serialize_field("paths", &paths)?;
        }
        GraceDecision::Allow => out.serialize_field("decision", "allow")?,
    }
    out.end()
}

/// The result of finding an account by a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Recovered {
    /// The contact the user proved they receive codes at (left out of the
    /// JSON form).
    #[serde(skip)]
    pub destination: Destination,
    /// The account holding it, when it is a one-owner contact (a phone
    /// number, by default) claimed by an account; otherwise look it up in
    /// your own records.
    pub account: Option<AccountId>,
}

impl TwoFactor {
    /// Reads a contact as a user typed it, the way the journeys read it: an
    /// email address (anything with `@` or `＠`), or a phone number the
    /// service's phone policy accepts for SMS, in national or international
    /// form, with the full-width digits and Japanese dashes that keyboards
    /// produce folded. Store and look up contacts beside ninsho in this
    /// form, and the two always agree.
    ///
    /// ```
    /// # let service = ninsho::service::TwoFactor::builder(
    /// #     "Example",
    /// #     std::sync::Arc::new(ninsho::store::MemoryStore::new()),
    /// #     std::sync::Arc::new(ninsho::gateway::RecordingGateway::new()),
    /// #     ninsho::KeyedHasher::new(ninsho::HashKey::new(ninsho::KeyId(1), &[7; 32]).unwrap()),
    /// #     std::sync::Arc::new(ninsho::seal::DangerousUnsealed),
    /// # )
    /// # .build()
    /// # .unwrap();
    /// let phone = service.normalize_contact("０９０ー１２３４ー５６７８").unwrap();
    /// assert_eq!(phone.address(), "+819012345678");
    /// let email = service.normalize_contact("Taro@Example.COM").unwrap();
    /// assert_eq!(email.address(), "Taro@example.com");
    /// // A landline can't receive the codes: refused, with the reason.
    /// let landline = service.normalize_contact("03-1234-5678").unwrap_err();
    /// assert_eq!(landline.contact_error().unwrap().code(), "landline_cannot_receive_sms");
    /// ```
    ///
    /// # Errors
    /// [`Error::Contact`] with the typed reason (a malformed address, a
    /// landline, a number from a region the policy does not allow, …).
    pub fn normalize_contact(&self, input: &str) -> Result<Destination, Error> {
        if input.contains('@') || input.contains('＠') {
            Ok(Destination::email(input)?)
        } else {
            self.sms_number(input)
        }
    }

    /// A phone number as typed, if the phone policy lets it receive SMS.
    fn sms_number(&self, input: &str) -> Result<Destination, Error> {
        let policy = &self.inner.contacts.policy().phone;
        match policy.check(input, Channel::Sms) {
            Ok(number) => Ok(number.destination()),
            Err(refusal) => Err(Error::Contact(refusal.into())),
        }
    }

    // ---------------------------------------------------------------- sign-up

    /// Sign-up (EZSMS): sends codes to the email address (member 0) and the
    /// mobile number (member 1) at once. The number must pass the phone
    /// policy for SMS. Nothing here depends on whether the contacts are
    /// registered already, so the answer can't be used to probe for them.
    ///
    /// # Errors
    /// [`Error::Contact`] with the typed reason for a refused number or
    /// address; otherwise as for
    /// [`OneTimeCodes::send`](crate::service::OneTimeCodes::send).
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(name = "ninsho.signup_start", skip_all)
    )]
    pub async fn signup_start(
        &self,
        email: &str,
        phone: &str,
        caller: Option<&str>,
    ) -> Result<VerificationTicket, Error> {
        let email = Destination::email(email)?;
        let phone = self.sms_number(phone)?;
        let mut request = VerificationRequest::new([email, phone]);
        if let Some(locale) = self.locale {
            request = request.locale(locale);
        }
        if let Some(caller) = caller {
            request = request.caller(caller);
        }
        self.inner.verifications.start(request).await
    }

    /// Checks one sign-up code (member 0: email, 1: phone), in any order.
    ///
    /// # Errors
    /// As for [`OneTimeCodes::verify`](crate::service::OneTimeCodes::verify).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.signup_verify", skip_all, fields(verification = id.to_string(), member)))]
    pub async fn signup_verify(
        &self,
        id: &VerificationId,
        member: usize,
        code: &str,
    ) -> Result<Progress, Error> {
        self.inner.verifications.verify(id, member, code).await
    }

    /// Resends one sign-up code, in the language the sign-up started in
    /// (a member whose code died gets a new one in that language too).
    ///
    /// # Errors
    /// As for [`OneTimeCodes::resend`](crate::service::OneTimeCodes::resend).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.signup_resend", skip_all, fields(verification = id.to_string(), member)))]
    pub async fn signup_resend(
        &self,
        id: &VerificationId,
        member: usize,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        self.inner.verifications.resend(id, member, caller).await
    }

    /// "Use another option" for one sign-up code: the phone's code by voice
    /// call, in the language the sign-up started in.
    ///
    /// # Errors
    /// As for
    /// [`OneTimeCodes::another_option`](crate::service::OneTimeCodes::another_option).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.signup_another_option", skip_all, fields(verification = id.to_string(), member)))]
    pub async fn signup_another_option(
        &self,
        id: &VerificationId,
        member: usize,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        self.inner
            .verifications
            .another_option(id, member, caller)
            .await
    }

    /// Where a sign-up stands (after a reload).
    ///
    /// # Errors
    /// [`CodeRefusal::Unknown`]; [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.signup_status", skip_all, fields(verification = id.to_string())))]
    pub async fn signup_status(&self, id: &VerificationId) -> Result<VerificationStatus, Error> {
        self.inner.verifications.status(id).await
    }

    /// Completes a verified sign-up for the account the host just created:
    /// the contacts become its verified contacts, the number claimed. For
    /// one account only; calling it again for the same account (after a
    /// failure) is safe.
    ///
    /// # Errors
    /// [`ContactRefusal::Unverified`] naming the contacts still waiting for
    /// their code (the user pressed "continue" early: nothing changed);
    /// [`ContactRefusal::InUse`] when another account holds the number
    /// (the user proved they receive codes there, so telling them is no
    /// leak); [`ContactRefusal::TooMany`] when the account already has as
    /// many contacts of a kind as the policy allows;
    /// [`CodeRefusal::Expired`] once the sign-up has run out;
    /// [`CodeRefusal::AlreadyUsed`] when another account completed it;
    /// [`CodeRefusal::Unknown`]; [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.signup_complete", skip_all, fields(verification = id.to_string(), account = account.0.as_str())))]
    pub async fn signup_complete(
        &self,
        id: &VerificationId,
        account: &AccountId,
    ) -> Result<Vec<ContactView>, Error> {
        // Taken for this account, so a retry after a failure below (a store
        // outage) can take it again; no other account can.
        let completed = self.inner.verifications.take_for(id, account).await?;
        self.inner.contacts.adopt(account, &completed).await?;
        self.inner.contacts.list(account).await
    }

    // ------------------------------------------------------------------ phone

    async fn phone_of(&self, account: &AccountId) -> Result<Option<Destination>, Error> {
        let book = self.store().account_record(account).await?;
        Ok(phone_in(book.as_ref()))
    }

    /// Registers or changes the account's phone (nizima): sends a 6-digit
    /// code to the number as typed (`090-1234-5678`, full-width, `+81 …`).
    /// While two-step sign-in is on, changing the number — or adding one
    /// to an account that signs in with an app or email — needs a fresh
    /// [`StepUp`].
    ///
    /// # Errors
    /// [`Error::Contact`] with the typed reason (landline, IP phone,
    /// foreign number, …); [`AccountRefusal::StepUpRequired`];
    /// [`ContactRefusal::InUse`]; [`ContactRefusal::AlreadyAdded`];
    /// otherwise as for [`OneTimeCodes::send`](crate::service::OneTimeCodes::send).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.phone_send_code", skip_all, fields(account = account.0.as_str())))]
    pub async fn phone_send_code(
        &self,
        account: &AccountId,
        number: &str,
        step_up: Option<&StepUp>,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        let contacts = &self.inner.contacts;
        let new = self.sms_number(number)?;
        // One read decides both the branch and whether a step-up is due,
        // and brings the failure run for the lockout check of the send.
        let loaded = self.store().load(&Load::account(account)).await?;
        let (book, failures) = (loaded.record, loaded.failures);
        match phone_in(book.as_ref()) {
            Some(old) if old.limit_key() != new.limit_key() => {
                self.require_step_up(
                    account,
                    book.as_ref(),
                    new_factor(book.as_ref(), None),
                    step_up,
                )?;
                contacts
                    .send_change_code_from(
                        account,
                        (book, failures),
                        &old,
                        &new,
                        caller,
                        self.locale,
                    )
                    .await
            }
            _ => {
                self.require_step_up(
                    account,
                    book.as_ref(),
                    new_factor(book.as_ref(), Some(&new)),
                    step_up,
                )?;
                contacts
                    .send_code_from(account, (book, failures), &new, caller, self.locale)
                    .await
            }
        }
    }

    /// Confirms the phone code: the number becomes the account's (in place
    /// of the old one, whose trusted devices and step-up proofs die). With
    /// `enable_two_factor`, two-step sign-in is turned on in the same write
    /// and the recovery codes come back, to show once.
    ///
    /// The change is written before the code is spent, so a failure in
    /// between leaves the code working and a retry finishes. A retry that
    /// finds two-step sign-in turned on by an earlier try whose answer was
    /// lost replaces the unseen recovery codes with a set it returns.
    ///
    /// # Errors
    /// As for [`OneTimeCodes::verify`](crate::service::OneTimeCodes::verify) and
    /// [`enable_two_factor`](Self::enable_two_factor).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.phone_confirm", skip_all, fields(account = account.0.as_str(), challenge = challenge.to_string())))]
    pub async fn phone_confirm(
        &self,
        account: &AccountId,
        challenge: &ChallengeId,
        code: &str,
        enable_two_factor: bool,
    ) -> Result<PhoneConfirmed, Error> {
        // The challenge, the account's record and its failure run in one
        // read.
        let (record, loaded) = self.load_own_challenge(account, challenge).await?;
        if record.destination.kind() != DestinationKind::Phone {
            // Not a phone code: refuse before spending it.
            return Err(Refusal::Code(CodeRefusal::DestinationMismatch).into());
        }
        let old = phone_in(loaded.record.as_ref())
            .filter(|old| old.limit_key() != record.destination.limit_key());
        let changed = old.is_some();
        // Two-step sign-in goes on in the same write as the phone.
        let fresh = if enable_two_factor {
            Some(self.inner.recovery.fresh_set()?)
        } else {
            None
        };
        let now = self.now();
        let email_counts = self.inner.email_second_factor;
        let mut enabled = false;
        let read = Read {
            challenge: record,
            failures: loaded.failures,
            book: loaded.record,
        };
        let (contact, earlier) = self
            .inner
            .contacts
            .confirm_record(account, read, code, old.as_ref(), |book| {
                enabled = false;
                if let Some((_, set)) = &fresh
                    && book.factors.two_factor_since.is_none()
                {
                    factors::enable(book, now, email_counts, set.clone())?;
                    enabled = true;
                }
                Ok(())
            })
            .await?;
        let recovery_codes = match fresh {
            Some((plain, _)) if enabled => {
                self.two_factor_enabled_events(account, plain.len());
                Some(plain)
            }
            // An earlier try turned two-step sign-in on and failed before
            // answering: its codes were never shown. This call has now
            // spent the code (so that try can't answer any more): replace
            // them with a set to show.
            Some(_) if earlier && self.two_factor_enabled(account).await? => {
                Some(self.fresh_codes_if_on(account).await?)
            }
            _ => None,
        };
        Ok(PhoneConfirmed {
            contact,
            changed,
            recovery_codes,
        })
    }

    /// Removes the account's phone. Refused while two-step sign-in uses it
    /// (nizima: change it instead, or turn two-step sign-in off first).
    ///
    /// # Errors
    /// [`ContactRefusal::Required`]; [`ContactRefusal::NotOnAccount`] when there is
    /// no phone; [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.phone_remove", skip_all, fields(account = account.0.as_str())))]
    pub async fn phone_remove(&self, account: &AccountId) -> Result<(), Error> {
        let phone = self
            .phone_of(account)
            .await?
            .ok_or(Error::Refused(Refusal::Contact(
                ContactRefusal::NotOnAccount,
            )))?;
        self.inner.contacts.remove(account, &phone).await
    }

    // -------------------------------------------------------- two-step on/off

    /// Turns two-step sign-in on: the account's verified phone numbers
    /// become its second factor (they can then be changed but not
    /// removed), and a fresh set of recovery codes comes back, to show
    /// once. Turning it on again after turning it off issues a new set.
    ///
    /// Two-step sign-in and the codes are stored in one write: an outage
    /// leaves neither behind.
    ///
    /// # Errors
    /// [`AccountRefusal::TwoFactorAlreadyOn`]; [`AccountRefusal::NoSecondFactor`] when the
    /// account has no verified phone, no authenticator app (and no verified
    /// email, where email counts); [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.enable_two_factor", skip_all, fields(account = account.0.as_str())))]
    pub async fn enable_two_factor(&self, account: &AccountId) -> Result<PlainCodes, Error> {
        let now = self.now();
        let email_counts = self.inner.email_second_factor;
        let (plain, set) = self.inner.recovery.fresh_set()?;
        self.inner
            .contacts
            .update(account, |book| {
                factors::enable(book, now, email_counts, set.clone())?;
                Ok(((), ClaimChanges::default(), Vec::new()))
            })
            .await?;
        self.two_factor_enabled_events(account, plain.len());
        Ok(plain)
    }

    /// A new recovery set for an account whose two-step sign-in is on.
    async fn fresh_codes_if_on(&self, account: &AccountId) -> Result<PlainCodes, Error> {
        let recovery = &self.inner.recovery;
        let (plain, set) = recovery.fresh_set()?;
        self.inner
            .contacts
            .update(account, |book| {
                factors::replace_recovery(book, set.clone())?;
                Ok(((), ClaimChanges::default(), Vec::new()))
            })
            .await?;
        recovery.generated(account, plain.len());
        Ok(plain)
    }

    fn two_factor_enabled_events(&self, account: &AccountId, codes: usize) {
        self.inner.ports.emit(Event::TwoFactorEnabled {
            account: account.clone(),
        });
        self.inner.recovery.generated(account, codes);
    }

    /// Turns two-step sign-in off: needs a fresh second factor. Recovery
    /// codes and the authenticator app are deleted, phones become
    /// removable, and every trusted device and step-up proof is revoked
    /// (the security epoch moves on) — all in one write.
    ///
    /// # Errors
    /// [`AccountRefusal::StepUpRequired`]; [`AccountRefusal::TwoFactorOff`] when it is
    /// off already; [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.disable_two_factor", skip_all, fields(account = account.0.as_str())))]
    pub async fn disable_two_factor(
        &self,
        account: &AccountId,
        step_up: &StepUp,
    ) -> Result<(), Error> {
        // One write: the step-up is checked against the epoch it moves on,
        // and the factors, the codes and every trusted device go together.
        let epoch = self
            .inner
            .contacts
            .update(account, |book| {
                self.verify_step_up(account, step_up, Standing::of(Some(book)))?;
                let epoch = factors::disable(book)?;
                Ok((epoch, ClaimChanges::default(), Vec::new()))
            })
            .await?;
        self.emit_epoch(account, epoch);
        self.inner.ports.emit(Event::TwoFactorDisabled {
            account: account.clone(),
        });
        Ok(())
    }

    fn emit_epoch(&self, account: &AccountId, epoch: u64) {
        self.inner.ports.emit(Event::EpochBumped {
            account: account.clone(),
            epoch,
        });
    }

    /// A new set of recovery codes (the old set dies at once); needs a
    /// fresh second factor.
    ///
    /// # Errors
    /// [`AccountRefusal::StepUpRequired`]; [`AccountRefusal::TwoFactorOff`];
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.regenerate_recovery_codes", skip_all, fields(account = account.0.as_str())))]
    pub async fn regenerate_recovery_codes(
        &self,
        account: &AccountId,
        step_up: &StepUp,
    ) -> Result<PlainCodes, Error> {
        let recovery = &self.inner.recovery;
        let (plain, set) = recovery.fresh_set()?;
        self.inner
            .contacts
            .update(account, |book| {
                self.verify_step_up(account, step_up, Standing::of(Some(book)))?;
                factors::replace_recovery(book, set.clone())?;
                Ok(((), ClaimChanges::default(), Vec::new()))
            })
            .await?;
        recovery.generated(account, plain.len());
        Ok(plain)
    }

    // ---------------------------------------------------------- authenticator

    /// Starts setting up an authenticator app (Microsoft's prompt): a new
    /// seed, shown as an `otpauth://` URI for a QR code and as a key to
    /// type. It counts only once confirmed by a first code. Needs a fresh
    /// [`StepUp`] when two-step sign-in is on (so a hijacked session can't
    /// add the attacker's app).
    ///
    /// `label` is what the app lists the entry under, beside the service's
    /// name: what the user knows the account by, such as their email
    /// address or user name (never an internal id they would not
    /// recognise). It goes into the URI, and so into the QR code.
    ///
    /// # Errors
    /// [`AccountRefusal::StepUpRequired`]; [`Error::Otp`] for a label the URI
    /// can't carry (empty, or with a `:`); [`Error::Random`];
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.authenticator_start", skip_all, fields(account = account.0.as_str(), method = "authenticator")))]
    pub async fn authenticator_start(
        &self,
        account: &AccountId,
        label: &str,
        step_up: Option<&StepUp>,
    ) -> Result<AuthenticatorSetup, Error> {
        self.step_up_if_enabled(account, step_up).await?;
        self.inner.apps.start(account, label).await
    }

    /// Confirms the app with the first code it shows; it then replaces any
    /// previous app. Wrong codes count against the account like any other
    /// factor.
    ///
    /// # Errors
    /// [`CodeRefusal::WrongCode`]; [`AccountRefusal::NotFound`] when no setup is
    /// pending; [`AccountRefusal::Locked`]; [`Error::Store`];
    /// [`Error::RetiredKey`] when the pending seed was sealed with a key
    /// the sealer no longer holds (nothing is counted: start again).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.authenticator_confirm", skip_all, fields(account = account.0.as_str(), method = "authenticator")))]
    pub async fn authenticator_confirm(
        &self,
        account: &AccountId,
        code: &str,
    ) -> Result<(), Error> {
        let bumped = self.inner.apps.confirm(account, code).await?;
        if let Some(epoch) = bumped {
            self.emit_epoch(account, epoch);
        }
        self.inner.ports.emit(Event::AuthenticatorAdded {
            account: account.clone(),
        });
        Ok(())
    }

    /// Removes the authenticator app; needs a fresh second factor. Refused
    /// when it is the only second factor left while two-step sign-in is on.
    ///
    /// # Errors
    /// [`AccountRefusal::StepUpRequired`]; [`AccountRefusal::NoSecondFactor`];
    /// [`AccountRefusal::NotFound`] when there is none; [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.authenticator_remove", skip_all, fields(account = account.0.as_str(), method = "authenticator")))]
    pub async fn authenticator_remove(
        &self,
        account: &AccountId,
        step_up: &StepUp,
    ) -> Result<(), Error> {
        // A second factor removed: devices and step-ups from before die in
        // the same write.
        let epoch = self
            .inner
            .apps
            .remove(account, self.inner.email_second_factor, |book| {
                self.verify_step_up(account, step_up, Standing::of(Some(book)))
            })
            .await?;
        self.emit_epoch(account, epoch);
        self.inner.ports.emit(Event::AuthenticatorRemoved {
            account: account.clone(),
        });
        Ok(())
    }

    // ---------------------------------------------------------- contact check

    /// The contact check at sign-in (Microsoft): allow, remind until the
    /// deadline, or blocked until a contact is verified — with the
    /// account's contacts, so the user can verify one, or add a new one
    /// when none can be reached ([`contact_send_code`](Self::contact_send_code)).
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.contact_check", skip_all, fields(account = account.0.as_str())))]
    pub async fn contact_check(&self, account: &AccountId) -> Result<ContactCheck, Error> {
        // The first check of an account ninsho has never seen starts and
        // stores its grace period: the deadline can't move after that.
        let contacts = &self.inner.contacts;
        let book = contacts.book(account).await?;
        Ok(ContactCheck {
            decision: contacts.decide_grace(&book),
            contacts: book.contacts.iter().map(|c| contacts.view(c)).collect(),
        })
    }

    /// Sends a code to verify one of the account's contacts, or to add a
    /// new one ("I can't reach any of these"). Allowed while blocked.
    ///
    /// While two-step sign-in is on, a **new** contact is a new second
    /// factor, so adding one needs a fresh [`StepUp`] (a hijacked session
    /// must not add the attacker's address); verifying a contact already on
    /// the account does not.
    ///
    /// # Errors
    /// [`AccountRefusal::StepUpRequired`]; otherwise as for
    /// [`OneTimeCodes::send`](crate::service::OneTimeCodes::send).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.contact_send_code", skip_all, fields(account = account.0.as_str())))]
    pub async fn contact_send_code(
        &self,
        account: &AccountId,
        destination: &Destination,
        step_up: Option<&StepUp>,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        self.step_up_for_new_contact(account, destination, step_up)
            .await?;
        self.inner
            .contacts
            .send_code(account, destination, caller, self.locale)
            .await
    }

    /// While two-step sign-in is on, a contact not yet on the account is a
    /// new second factor: adding it needs a fresh step-up.
    async fn step_up_for_new_contact(
        &self,
        account: &AccountId,
        destination: &Destination,
        step_up: Option<&StepUp>,
    ) -> Result<(), Error> {
        let book = self.store().account_record(account).await?;
        self.require_step_up(
            account,
            book.as_ref(),
            new_factor(book.as_ref(), Some(destination)),
            step_up,
        )
    }

    /// Checks a fresh step-up when `needed`, against the epoch in `record`.
    fn require_step_up(
        &self,
        account: &AccountId,
        book: Option<&AccountRecord>,
        needed: bool,
        step_up: Option<&StepUp>,
    ) -> Result<(), Error> {
        if needed {
            let proof = step_up.ok_or(Error::Refused(Refusal::Account(
                AccountRefusal::StepUpRequired,
            )))?;
            self.verify_step_up(account, proof, Standing::of(book))?;
        }
        Ok(())
    }

    /// Confirms a contact code; verifying restores full access.
    ///
    /// # Errors
    /// As for [`OneTimeCodes::verify`](crate::service::OneTimeCodes::verify).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.contact_confirm", skip_all, fields(account = account.0.as_str(), challenge = challenge.to_string())))]
    pub async fn contact_confirm(
        &self,
        account: &AccountId,
        challenge: &ChallengeId,
        code: &str,
    ) -> Result<ContactView, Error> {
        self.inner.contacts.confirm(account, challenge, code).await
    }

    // ------------------------------------------------- find account by contact

    /// "I can't sign in": the user types a phone number or email address
    /// and a code is sent to it — **whether or not any account uses it**.
    /// The store and gateway see the same calls either way and the answer
    /// has the same shape, so the call can't be used to find out who is
    /// registered (OWASP's forgot-password rule). Who the contact belongs
    /// to is told only to whoever proves they receive codes there
    /// ([`recover_verify`](Self::recover_verify)).
    ///
    /// # Errors
    /// [`Error::Contact`] for input that is not a number or address the
    /// policy allows (independent of registration); otherwise as for
    /// [`OneTimeCodes::send`](crate::service::OneTimeCodes::send).
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(name = "ninsho.recover_start", skip_all)
    )]
    pub async fn recover_start(
        &self,
        contact: &str,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        let destination = self.normalize_contact(contact)?;
        let mut request = crate::flows::IssueRequest::new(destination, Purpose::Recovery);
        request.locale = self.locale;
        if let Some(caller) = caller {
            request = request.caller(caller);
        }
        self.inner.challenges.issue(request).await
    }

    /// Checks the code from [`recover_start`](Self::recover_start) and says
    /// which account, if any, holds the contact.
    ///
    /// # Errors
    /// As for [`OneTimeCodes::verify`](crate::service::OneTimeCodes::verify).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.recover_verify", skip_all, fields(challenge = challenge.to_string())))]
    pub async fn recover_verify(
        &self,
        challenge: &ChallengeId,
        code: &str,
    ) -> Result<Recovered, Error> {
        let challenges = &self.inner.challenges;
        let record = challenges.load(challenge).await?;
        let destination = record.destination.clone();
        let purpose = Purpose::Recovery;
        // Checked, then the owner read, then spent: a failed read leaves
        // the code working for a retry.
        let record = match challenges
            .check_code(record, code, &purpose, &destination)
            .await?
        {
            Checked::Right(record) => *record,
            Checked::Settled(_) => return Err(Refusal::Code(CodeRefusal::AlreadyUsed).into()),
        };
        let account = self.store().claim_owner(&destination.limit_key()).await?;
        let verified = challenges.spend(record).await?;
        Ok(Recovered {
            destination: verified.destination,
            account,
        })
    }
}

/// The account's verified phone, if any.
fn phone_in(book: Option<&AccountRecord>) -> Option<Destination> {
    book?
        .contacts
        .iter()
        .find(|c| c.kind() == DestinationKind::Phone && c.is_verified())
        .map(|c| c.destination.clone())
}

/// Whether a change needs a step-up: two-step sign-in is on, and the change
/// replaces a factor (`adding` is `None`) or adds a contact not yet on the
/// account.
fn new_factor(book: Option<&AccountRecord>, adding: Option<&Destination>) -> bool {
    book.is_some_and(|book| {
        book.factors.two_factor_since.is_some()
            && adding.is_none_or(|new| {
                !book
                    .contacts
                    .iter()
                    .any(|c| c.destination.limit_key() == new.limit_key())
            })
    })
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::ContactCheck;
    use crate::grace::{GraceDecision, KindFilter, VerificationPath};
    use crate::model::ContactKey;

    /// The grace decision's JSON names no contact: it counts them, and
    /// gives its instants as RFC 3339 text.
    #[test]
    fn a_grace_decision_serialises_without_its_contacts() {
        let at = OffsetDateTime::from_unix_timestamp(1_763_683_200).unwrap();
        let key = ContactKey::new("+819012345678");
        let blocked = ContactCheck {
            decision: GraceDecision::Blocked {
                since: at,
                to_verify: vec![key.clone()],
                paths: vec![
                    VerificationPath::VerifyContact(key.clone()),
                    VerificationPath::AddContact {
                        kinds: KindFilter::All,
                    },
                ],
            },
            contacts: Vec::new(),
        };
        let json = serde_json::to_value(&blocked).unwrap();
        assert_eq!(
            json["decision"],
            serde_json::json!({
                "decision": "blocked",
                "since": "2025-11-21T00:00:00Z",
                "to_verify": 1,
                "paths": ["verify_contact", "add_contact"],
            })
        );
        let remind = ContactCheck {
            decision: GraceDecision::Remind {
                deadline: at,
                to_verify: vec![key],
            },
            contacts: Vec::new(),
        };
        let text = serde_json::to_string(&remind).unwrap();
        assert!(
            text.contains(r#""deadline":"2025-11-21T00:00:00Z""#),
            "{text}"
        );
        assert!(!text.contains("9012345678"), "{text}");
    }
}
