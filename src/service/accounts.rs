//! The account around the journeys: its contacts and recovery codes for a
//! settings page, creation, contacts brought in from before ninsho,
//! deletion, and the operator's unlock.

use super::TwoFactor;
use crate::error::Error;
use crate::flows::ContactView;
use crate::model::{AccountId, Destination};

impl TwoFactor {
    /// The account's contacts, oldest first (none for an account ninsho
    /// has not seen), each with the masked forms a settings page shows.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.contacts", skip_all, fields(account = account.0.as_str())))]
    pub async fn contacts(&self, account: &AccountId) -> Result<Vec<ContactView>, Error> {
        self.inner.contacts.list(account).await
    }

    /// Removes a contact and releases its claim. Removing a verified
    /// contact that can carry a second factor moves the account's security
    /// epoch on in the same write: devices trusted and step-ups proven with
    /// it die. [`phone_remove`](Self::phone_remove) is the same for the
    /// account's phone.
    ///
    /// # Errors
    /// [`ContactRefusal::NotOnAccount`](crate::error::ContactRefusal::NotOnAccount);
    /// [`ContactRefusal::Required`](crate::error::ContactRefusal::Required)
    /// while two-step sign-in uses it (change it instead, or turn two-step
    /// sign-in off first); [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.remove_contact", skip_all, fields(account = account.0.as_str())))]
    pub async fn remove_contact(
        &self,
        account: &AccountId,
        destination: &Destination,
    ) -> Result<(), Error> {
        self.inner.contacts.remove(account, destination).await
    }

    /// The account holding the claim on `destination`, if it is a one-owner
    /// contact (a phone number, by default) that an account verified. For
    /// the host's own tools (support staff, fraud checks): never show it to
    /// users, who could probe whose number is registered; the journeys that
    /// take a contact answer alike either way.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(name = "ninsho.contact_owner", skip_all)
    )]
    pub async fn contact_owner(
        &self,
        destination: &Destination,
    ) -> Result<Option<AccountId>, Error> {
        Ok(self.store().claim_owner(&destination.limit_key()).await?)
    }

    /// How many of the account's recovery codes are unused, or `None` when
    /// it has none (two-step sign-in was never turned on).
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.recovery_codes_left", skip_all, fields(account = account.0.as_str())))]
    pub async fn recovery_codes_left(&self, account: &AccountId) -> Result<Option<usize>, Error> {
        self.inner.recovery.remaining(account).await
    }

    /// Records that the account was just created. Under
    /// [`GraceStart::AccountCreated`](crate::grace::GraceStart::AccountCreated)
    /// its grace period starts now; an account ninsho first meets later
    /// starts it then instead. Idempotent; [`signup_complete`](Self::signup_complete)
    /// starts the record itself.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.account_created", skip_all, fields(account = account.0.as_str())))]
    pub async fn account_created(&self, account: &AccountId) -> Result<(), Error> {
        self.inner.contacts.create(account).await
    }

    /// Brings in a contact the host already had before ninsho, as verified
    /// or not. An unverified one is what the grace period asks the user to
    /// verify; a verified phone number is claimed for the account. The
    /// phone policy is not applied here (the number was already on file);
    /// it applies when the user verifies it.
    ///
    /// # Errors
    /// [`ContactRefusal::InUse`](crate::error::ContactRefusal::InUse),
    /// [`ContactRefusal::TooMany`](crate::error::ContactRefusal::TooMany);
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.import_contact", skip_all, fields(account = account.0.as_str())))]
    pub async fn import_contact(
        &self,
        account: &AccountId,
        destination: &Destination,
        verified: bool,
    ) -> Result<(), Error> {
        self.inner
            .contacts
            .import(account, destination, verified)
            .await
    }

    /// Forgets everything ninsho keeps about the account (it is being
    /// deleted): its record (contacts, second factors, recovery codes),
    /// the claims on its contacts, its trusted devices and its failure run.
    /// Challenges in flight die with the record: their codes no longer
    /// match a contact of the account. Idempotent.
    ///
    /// The record goes first. A sign-in racing the deletion commits its
    /// device only while the record it was decided on still stands, so a
    /// device is either trusted before the record goes (and deleted after
    /// it) or not at all: none outlives the account to skip the second step
    /// of a new account made later under the same id.
    ///
    /// # Errors
    /// [`Error::Store`]: call it again, it picks up where it stopped (until
    /// it succeeds, devices of the account may remain; they are dead with
    /// its record, but a new account under the same id would meet them).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.delete_account", skip_all, fields(account = account.0.as_str())))]
    pub async fn delete_account(&self, account: &AccountId) -> Result<(), Error> {
        self.inner.contacts.delete_all(account).await?;
        self.inner.devices.purge(account, true).await?;
        self.inner.challenges.reset_failures(account).await
    }

    /// Deletes the account's trusted-device records that can no longer be
    /// valid (revoked, expired, or from an older security epoch); returns
    /// how many. Housekeeping: a device list never shows them anyway.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.purge_devices", skip_all, fields(account = account.0.as_str())))]
    pub async fn purge_devices(&self, account: &AccountId) -> Result<u64, Error> {
        self.inner.devices.purge(account, false).await
    }

    /// Clears the account's run of failed guesses: after the hard stop
    /// ([`AccountRefusal::Locked`](crate::error::AccountRefusal::Locked) with no end),
    /// this is the operator's unlock, once they have checked who is asking.
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.reset_failures", skip_all, fields(account = account.0.as_str())))]
    pub async fn reset_failures(&self, account: &AccountId) -> Result<(), Error> {
        self.inner.challenges.reset_failures(account).await
    }
}
