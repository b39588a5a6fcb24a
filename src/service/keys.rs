//! Key rotation: which keys an account's records still use, and moving
//! its authenticator seeds to the current sealing key ahead of use.
//!
//! The procedure is in the [key rotation guide](crate::guide::key_rotation).

use serde::Serialize;
use std::collections::BTreeMap;
use std::iter::Sum;

use super::TwoFactor;
use crate::error::Error;
use crate::flows::account;
use crate::flows::authenticator::same_seed;
use crate::hash::KeyId;
use crate::model::AccountId;
use crate::store::ClaimChanges;

/// Which keys the long-lived records of one account (or, summed, of many)
/// still use, from [`TwoFactor::key_usage`].
///
/// A hashing key can be retired once no account's report names it in
/// [`recovery_codes`](Self::recovery_codes) or
/// [`trusted_devices`](Self::trusted_devices) (and the short-lived records
/// have expired, see the [guide](crate::guide::key_rotation)); a sealing
/// key once none names it in [`authenticators`](Self::authenticators).
///
/// Reports add up: sum them over the host's accounts with
/// [`add`](Self::add), [`Extend`] or [`Sum`].
///
/// ```
/// use ninsho::KeyId;
/// use ninsho::service::KeyUsage;
///
/// let mut one = KeyUsage::default();
/// one.recovery_codes.insert(KeyId(1), 10);
/// let mut other = KeyUsage::default();
/// other.recovery_codes.insert(KeyId(1), 3);
/// other.trusted_devices.insert(KeyId(2), 1);
/// let total: KeyUsage = [one, other].into_iter().sum();
/// assert_eq!(total.hashing(KeyId(1)), 13);
/// assert_eq!(total.hashing(KeyId(2)), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyUsage {
    /// Unused recovery codes, per hashing key id. They can't move to a new
    /// key (only their hashes are stored): they go when the user
    /// regenerates the set.
    pub recovery_codes: BTreeMap<KeyId, u64>,
    /// Trusted devices still valid (not revoked, not expired, of the
    /// account's current security epoch), per hashing key id. Each moves
    /// to the current key at its next check.
    pub trusted_devices: BTreeMap<KeyId, u64>,
    /// Authenticator seeds, confirmed and pending setups alike, per sealing
    /// key id. Each moves to the current key at its next use, or with
    /// [`TwoFactor::reseal_authenticator`].
    pub authenticators: BTreeMap<KeyId, u64>,
    /// Authenticator seeds whose sealer can't tell which key sealed them
    /// ([`Sealer::sealed_key_id`](crate::seal::Sealer::sealed_key_id)
    /// answers `None`: a sealer of the host's own, or unsealed seeds).
    pub authenticators_unlabelled: u64,
}

impl KeyUsage {
    /// Records under hashing key `key`: unused recovery codes and valid
    /// trusted devices.
    #[must_use]
    pub fn hashing(&self, key: KeyId) -> u64 {
        let count = |map: &BTreeMap<KeyId, u64>| map.get(&key).copied().unwrap_or(0);
        count(&self.recovery_codes).saturating_add(count(&self.trusted_devices))
    }

    /// Authenticator seeds under sealing key `key`.
    #[must_use]
    pub fn sealing(&self, key: KeyId) -> u64 {
        self.authenticators.get(&key).copied().unwrap_or(0)
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &KeyUsage) {
        let merge = |into: &mut BTreeMap<KeyId, u64>, from: &BTreeMap<KeyId, u64>| {
            for (key, n) in from {
                let slot = into.entry(*key).or_default();
                *slot = slot.saturating_add(*n);
            }
        };
        merge(&mut self.recovery_codes, &other.recovery_codes);
        merge(&mut self.trusted_devices, &other.trusted_devices);
        merge(&mut self.authenticators, &other.authenticators);
        self.authenticators_unlabelled = self
            .authenticators_unlabelled
            .saturating_add(other.authenticators_unlabelled);
    }
}

impl Extend<KeyUsage> for KeyUsage {
    fn extend<I: IntoIterator<Item = KeyUsage>>(&mut self, reports: I) {
        for report in reports {
            self.add(&report);
        }
    }
}

impl<'a> Extend<&'a KeyUsage> for KeyUsage {
    fn extend<I: IntoIterator<Item = &'a KeyUsage>>(&mut self, reports: I) {
        for report in reports {
            self.add(report);
        }
    }
}

impl Sum for KeyUsage {
    fn sum<I: Iterator<Item = KeyUsage>>(reports: I) -> Self {
        let mut total = Self::default();
        total.extend(reports);
        total
    }
}

impl<'a> Sum<&'a KeyUsage> for KeyUsage {
    fn sum<I: Iterator<Item = &'a KeyUsage>>(reports: I) -> Self {
        let mut total = Self::default();
        total.extend(reports);
        total
    }
}

/// Adds one record under `key` to `map`.
fn count(map: &mut BTreeMap<KeyId, u64>, key: KeyId) {
    let slot = map.entry(key).or_default();
    *slot = slot.saturating_add(1);
}

impl TwoFactor {
    /// Which hashing and sealing keys the account's long-lived records
    /// still use: its unused recovery codes, its valid trusted devices and
    /// its authenticator seeds (see [`KeyUsage`]). Reads only this
    /// account's records, so the host, which owns the list of accounts,
    /// can sum the reports over all of them (or a sample) without a scan
    /// of the store.
    ///
    /// One-time codes, links, combined verifications and step-up proofs are
    /// not counted: they live minutes, and their key can go once the
    /// longest of their lifetimes has passed since the new key became
    /// current (see the [guide](crate::guide::key_rotation)).
    ///
    /// # Errors
    /// [`Error::Store`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.key_usage", skip_all, fields(account = account.0.as_str())))]
    pub async fn key_usage(&self, account: &AccountId) -> Result<KeyUsage, Error> {
        let mut usage = KeyUsage::default();
        let book = self.store().account_record(account).await?;
        let epoch = book.as_ref().map_or(0, |b| b.epoch);
        if let Some(book) = &book {
            if let Some(set) = &book.factors.recovery {
                for code in set.codes.iter().filter(|c| c.used_at.is_none()) {
                    count(&mut usage.recovery_codes, code.hash.key_id);
                }
            }
            let seeds = [
                &book.factors.authenticator,
                &book.factors.pending_authenticator,
            ];
            for app in seeds.into_iter().flatten() {
                let key = base32::decode(
                    base32::Alphabet::Rfc4648 { padding: false },
                    &app.sealed_uri,
                )
                .and_then(|bytes| self.inner.apps.sealer().sealed_key_id(&bytes));
                match key {
                    Some(key) => count(&mut usage.authenticators, key),
                    None => {
                        usage.authenticators_unlabelled =
                            usage.authenticators_unlabelled.saturating_add(1);
                    }
                }
            }
        }
        let now = self.now();
        for device in self.store().devices(account).await? {
            if device.epoch >= epoch && device.revoked_at.is_none() && now < device.expires_at {
                count(&mut usage.trusted_devices, device.token.key_id);
            }
        }
        Ok(usage)
    }

    /// Seals the account's authenticator seeds (the confirmed app and any
    /// pending setup) again with the sealer's current key, where the
    /// sealer says they need it
    /// ([`Sealer::needs_reseal`](crate::seal::Sealer::needs_reseal)); returns
    /// how many were. Seeds move on their own at their next use; this is
    /// for moving the rest ahead of retiring a sealing key, account by
    /// account.
    ///
    /// The seeds are written back with one compare-and-set on the
    /// account's record, and only where they are still what was opened: a
    /// seed replaced or resealed meanwhile is left alone. Nothing else of
    /// the record changes, and calling it again is harmless.
    ///
    /// # Errors
    /// [`Error::RetiredKey`] when a seed was sealed with a key the sealer
    /// no longer holds (nothing is written: configure the key again as a
    /// previous key, or have the user set up the app again);
    /// [`Error::Store`], also when the key service fails.
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "ninsho.reseal_authenticator", skip_all, fields(account = account.0.as_str())))]
    pub async fn reseal_authenticator(&self, account: &AccountId) -> Result<usize, Error> {
        let Some(book) = self.store().account_record(account).await? else {
            return Ok(0);
        };
        // Opened and sealed before the write: a key service may be slow,
        // and the write may have to be tried again.
        let mut moves: Vec<(String, String)> = Vec::new();
        let seeds = [
            &book.factors.authenticator,
            &book.factors.pending_authenticator,
        ];
        for app in seeds.into_iter().flatten() {
            if !self.inner.apps.needs_reseal(&app.sealed_uri) {
                continue;
            }
            let plain = self.inner.apps.open_seed(account, &app.sealed_uri)?;
            let resealed = self.inner.apps.seal(account, plain.expose_secret())?;
            moves.push((app.sealed_uri.clone(), resealed));
        }
        if moves.is_empty() {
            return Ok(0);
        }
        let moved = account::update_existing(self.store(), account, |book| {
            let mut moved = 0;
            let slots = [
                &mut book.factors.authenticator,
                &mut book.factors.pending_authenticator,
            ];
            for app in slots.into_iter().flatten() {
                if let Some((_, resealed)) = moves
                    .iter()
                    .find(|(old, _)| same_seed(old, &app.sealed_uri))
                {
                    app.sealed_uri.clone_from(resealed);
                    moved += 1;
                }
            }
            Ok((moved > 0).then_some((moved, ClaimChanges::default())))
        })
        .await?;
        Ok(moved.unwrap_or(0))
    }
}
