//! Trusted devices: trust, check, list, revoke, and the security epoch.

use serde::Serialize;
use time::OffsetDateTime;

use super::Ports;
use super::account::{self, Standing};
use super::cas::{self, DeviceSlot, Step};
use crate::device::{self, DeviceCheck, DevicePolicy, DeviceToken};
use crate::error::{AccountRefusal, Error, RetiredKey, SecretKind};
use crate::events::Event;
use crate::model::{AccountId, DeviceId, DeviceRecord};
use crate::store::ClaimChanges;

/// A trusted device as the user sees it in "your devices" (au ID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// Its id (to revoke it).
    pub id: DeviceId,
    /// The host's label ("Chrome on Windows").
    pub label: String,
    /// When it was trusted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last skipped a second step (updated at most hourly).
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    /// When trust ends.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl From<&DeviceRecord> for DeviceInfo {
    fn from(r: &DeviceRecord) -> Self {
        Self {
            id: r.id,
            label: r.label.clone(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
        }
    }
}

/// "Don't ask again on this device" (nizima, Microsoft), with the device
/// list and revocation au ID offers.
///
/// A convenience inside the host's session policy, not a factor: a valid
/// device token lets the host skip the second step, never the password.
#[derive(Debug, Clone)]
pub struct TrustedDevices {
    ports: Ports,
    policy: DevicePolicy,
}

impl TrustedDevices {
    /// Trusted devices on `ports` with the default policy (30 days).
    #[must_use]
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            policy: DevicePolicy::default(),
        }
    }

    /// Sets lifetime and refresh interval.
    #[must_use]
    pub fn with_policy(mut self, policy: DevicePolicy) -> Self {
        self.policy = policy;
        self
    }

    #[cfg(any(test, feature = "testkit"))]
    /// Trusts the device the user just completed a second factor on.
    /// Returns the token for the cookie and what to show in the device list.
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Random`].
    pub async fn trust(
        &self,
        account: &AccountId,
        label: &str,
    ) -> Result<(DeviceToken, DeviceInfo), Error> {
        let standing = account::standing(&*self.ports.store, account).await?;
        self.trust_at(account, label, standing).await
    }

    /// [`trust`](Self::trust) at the account's `standing`, just read by the
    /// caller.
    pub(crate) async fn trust_at(
        &self,
        account: &AccountId,
        label: &str,
        standing: Standing,
    ) -> Result<(DeviceToken, DeviceInfo), Error> {
        let (token, record) = self.prepare(account, label, standing)?;
        self.ports.store.insert_device(&record).await?;
        Ok(self.trusted(token, &record))
    }

    /// A new trusted device of `account` at `standing` (its epoch and
    /// incarnation), not stored yet: the token and the record a journey
    /// step writes together with the success that earns it (then
    /// [`trusted`](Self::trusted)).
    pub(crate) fn prepare(
        &self,
        account: &AccountId,
        label: &str,
        standing: Standing,
    ) -> Result<(DeviceToken, DeviceRecord), Error> {
        let p = &self.ports;
        let (token, mut record) = device::trust(
            account,
            label,
            standing.epoch,
            &self.policy,
            &p.hasher,
            &*p.rng,
            p.now(),
        )?;
        record.incarnation = standing.incarnation;
        Ok((token, record))
    }

    /// A [`prepare`](Self::prepare)d device was stored: reports it.
    pub(crate) fn trusted(
        &self,
        token: DeviceToken,
        record: &DeviceRecord,
    ) -> (DeviceToken, DeviceInfo) {
        self.ports.emit(Event::DeviceTrusted {
            account: record.account.clone(),
            device: record.id,
        });
        (token, DeviceInfo::from(record))
    }

    /// Checks a device token for an account: valid, expired, revoked or
    /// unknown (constant-time comparison; a token of another account is
    /// unknown). A device trusted before the account's current record was
    /// created (left over from a deleted record of the same account id) is
    /// revoked. A valid check refreshes "last used" at most once per
    /// refresh interval; that write never changes the answer.
    ///
    /// Key rotation: a valid token whose record was hashed with a previous
    /// key is hashed again with the current one, in the same best-effort
    /// compare-and-set (a lost race or a store error leaves the record as
    /// it was, and the answer stands). A record under a key the hasher no
    /// longer holds is [`DeviceCheck::RetiredKey`], reported as
    /// [`Event::RetiredKey`]: ask for the second factor.
    ///
    /// # Errors
    /// [`Error::Store`] — fail closed: treat as "ask for the second factor".
    pub async fn check(&self, account: &AccountId, token: &str) -> Result<DeviceCheck, Error> {
        let standing = account::standing(&*self.ports.store, account).await?;
        let Some((id, _)) = device::parse_token(token) else {
            return Ok(DeviceCheck::Unknown);
        };
        let record = self.ports.store.device(account, &id).await?;
        Ok(self.check_loaded(account, token, standing, record).await)
    }

    /// [`check`](Self::check) on the device record the caller read for the
    /// token's id (`None`: the account has no such device), against the
    /// account's `standing`, read by the caller too. A device trusted for
    /// another record of the account id (an earlier one, deleted; see
    /// [`Standing`]) is revoked.
    pub(crate) async fn check_loaded(
        &self,
        account: &AccountId,
        token: &str,
        standing: Standing,
        record: Option<DeviceRecord>,
    ) -> DeviceCheck {
        let p = &self.ports;
        let Some((id, secret)) = device::parse_token(token) else {
            return DeviceCheck::Unknown;
        };
        let Some(record) = record.filter(|r| r.id == id && &r.account == account) else {
            return DeviceCheck::Unknown;
        };
        let now = p.now();
        let result = match device::check(
            &record,
            account,
            &secret,
            standing.epoch,
            &self.policy,
            &p.hasher,
            now,
        ) {
            // The token matched: only then may it say "revoked".
            DeviceCheck::Valid { .. } | DeviceCheck::Expired
                if !standing.admits(record.epoch, record.incarnation, record.created_at) =>
            {
                DeviceCheck::Revoked
            }
            other => other,
        };
        match result {
            DeviceCheck::Valid { refresh } => {
                let rehash = p.hasher.needs_rehash(&record.token);
                if refresh || rehash {
                    let mut next = record.clone();
                    next.version = record.version.wrapping_add(1);
                    if refresh {
                        next.last_used_at = now;
                    }
                    if rehash {
                        next.token = device::rehash(&record, account, &secret, &p.hasher);
                    }
                    // Best effort: a lost race means someone else just
                    // wrote it (a later check moves it on), and a store
                    // error changes nothing the user sees.
                    let _ = p.store.replace_device(&next, record.version).await;
                }
            }
            DeviceCheck::RetiredKey { key_id } => {
                // Not an error for the user, but the operator must know.
                p.emit(Event::RetiredKey {
                    account: Some(account.clone()),
                    retired: RetiredKey::new(SecretKind::TrustedDevice, key_id),
                });
            }
            _ => {}
        }
        result
    }

    /// The account's trusted devices that are still valid, newest first.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn list(&self, account: &AccountId) -> Result<Vec<DeviceInfo>, Error> {
        let p = &self.ports;
        let standing = account::standing(&*p.store, account).await?;
        let now = p.now();
        let mut list: Vec<DeviceInfo> = p
            .store
            .devices(account)
            .await?
            .iter()
            .filter(|d| {
                standing.admits(d.epoch, d.incarnation, d.created_at)
                    && d.revoked_at.is_none()
                    && now < d.expires_at
            })
            .map(DeviceInfo::from)
            .collect();
        list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(list)
    }

    /// Revokes one device ("I don't recognise this one").
    ///
    /// # Errors
    /// [`AccountRefusal::NotFound`](crate::AccountRefusal::NotFound) when the account has no such device;
    /// [`Error::Store`].
    pub async fn revoke(&self, account: &AccountId, id: &DeviceId) -> Result<(), Error> {
        let p = &self.ports;
        let Some(record) = p.store.device(account, id).await? else {
            return Err(AccountRefusal::NotFound.into());
        };
        let slot = DeviceSlot {
            store: &*p.store,
            account,
            id: *id,
        };
        let now = p.now();
        let landed = cas::change(&slot, record, |record| {
            if record.revoked_at.is_some() {
                return Ok(Step::Keep(()));
            }
            record.revoked_at = Some(now);
            Ok(Step::Write(()))
        })
        .await?;
        if landed.written {
            p.emit(Event::DeviceRevoked {
                account: account.clone(),
                device: *id,
            });
        }
        Ok(())
    }

    /// Deletes the account's device records that can no longer be valid
    /// (revoked, expired, from an older epoch, or trusted before the
    /// account's record was created); returns how many. Or,
    /// with `everything`, every record (the account is being deleted).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn purge(&self, account: &AccountId, everything: bool) -> Result<u64, Error> {
        let p = &self.ports;
        if everything {
            return Ok(p.store.delete_devices(account).await?);
        }
        let standing = account::standing(&*p.store, account).await?;
        let now = p.now();
        let mut deleted = 0;
        for d in p.store.devices(account).await? {
            if !standing.admits(d.epoch, d.incarnation, d.created_at)
                || d.revoked_at.is_some()
                || now >= d.expires_at
            {
                deleted += u64::from(p.store.delete_device(account, &d.id).await?);
            }
        }
        Ok(deleted)
    }

    /// Moves the account's security epoch on: every device token issued
    /// before is dead. Call it on password change, 2FA disable,
    /// recovery-code use and "sign out everywhere".
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn bump_epoch(&self, account: &AccountId) -> Result<u64, Error> {
        let p = &self.ports;
        let epoch = account::update(&*p.store, &*p.rng, account, p.now(), |book| {
            crate::factors::move_epoch(book);
            Ok((book.epoch, ClaimChanges::default()))
        })
        .await?;
        self.ports.emit(Event::EpochBumped {
            account: account.clone(),
            epoch,
        });
        Ok(epoch)
    }
}
