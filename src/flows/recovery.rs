//! Recovery codes: generate (show once), redeem once, regenerate.

use super::{Ports, guess};
use crate::error::{Error, Refusal};
use crate::events::Event;
use crate::limits::FailurePolicy;
use crate::recovery::{self, Lookup, PlainCodes, RecoveryPolicy};
use crate::store::{AccountId, StoreError};

/// Most compare-and-set rounds before giving up with a conflict: each lost
/// round means another writer used a code, and a set has few codes.
const MAX_ROUNDS: usize = 128;

/// A successful redemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Redeemed {
    /// Unused codes left.
    pub remaining: usize,
    /// Whether that is at or below the policy's "running low" threshold:
    /// prompt the user to generate a new set.
    pub running_low: bool,
}

/// Recovery codes of accounts (nizima: 10 single-use codes; regenerating
/// voids the old set).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use ninsho::flows::{Ports, RecoveryCodes};
/// use ninsho::store::{AccountId, MemoryStore};
/// use ninsho::{HashKey, KeyId, KeyedHasher};
///
/// let ports = Ports::new(
///     Arc::new(MemoryStore::new()),
///     KeyedHasher::new(HashKey::new(KeyId(1), &[9; 32]).unwrap()),
/// );
/// let codes = RecoveryCodes::new(ports);
/// let alice = AccountId::new("alice");
///
/// let shown_once = codes.generate(&alice).await.unwrap();
/// let first = shown_once.expose_secret()[0].to_owned();
/// assert_eq!(codes.redeem(&alice, &first).await.unwrap().remaining, 9);
/// assert!(codes.redeem(&alice, &first).await.is_err()); // single use
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct RecoveryCodes {
    ports: Ports,
    policy: RecoveryPolicy,
    failures: FailurePolicy,
}

impl RecoveryCodes {
    /// Recovery codes on `ports` with the default policies.
    #[must_use]
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            policy: RecoveryPolicy::default(),
            failures: FailurePolicy::default(),
        }
    }

    /// Sets how codes are made (count, length, low threshold).
    #[must_use]
    pub fn with_policy(mut self, policy: RecoveryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the per-account failure back-off redemptions count against
    /// (the same run as one-time codes).
    #[must_use]
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failures = policy;
        self
    }

    /// Generates a new set for the account, replacing any previous set in
    /// one atomic write: every old code stops working at once. Returns the
    /// plain codes, to show the user exactly once.
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Random`].
    pub async fn generate(&self, account: &AccountId) -> Result<PlainCodes, Error> {
        let p = &self.ports;
        let now = p.now();
        let (plain, mut set) = recovery::generate(&self.policy, &p.hasher, &*p.rng, now)?;
        for _ in 0..MAX_ROUNDS {
            let written = match p.store.recovery_set(account).await? {
                None => p.store.insert_recovery_set(account, &set).await,
                Some(old) => {
                    // Versions keep rising across sets, so nothing prepared
                    // against the old set can ever match the new one.
                    set.version = old.version.wrapping_add(1);
                    p.store
                        .replace_recovery_set(account, &set, &old.salt, old.version)
                        .await
                }
            };
            match written {
                Ok(()) => {
                    p.emit(Event::RecoveryCodesGenerated {
                        account: account.clone(),
                        count: plain.len(),
                    });
                    return Ok(plain);
                }
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::conflict().into())
    }

    /// Redeems a code as the user typed it (case, spaces, hyphens and
    /// full-width characters don't matter). The code is marked used
    /// atomically: of racing redemptions of one code exactly one succeeds.
    ///
    /// Every guess is counted against the account's failure back-off
    /// *before* it is checked (one atomic increment) and the run is cleared
    /// when it is right, so no number of concurrent guesses gets past the
    /// hard stop. A used code typed again counts like a wrong one.
    ///
    /// # Errors
    /// [`Refusal::WrongRecoveryCode`], [`Refusal::AlreadyUsed`],
    /// [`Refusal::Locked`], [`Refusal::Unknown`] (no set); [`Error::Store`]
    /// — then nothing was consumed.
    pub async fn redeem(&self, account: &AccountId, input: &str) -> Result<Redeemed, Error> {
        let p = &self.ports;
        let now = p.now();
        let Some(mut set) = p.store.recovery_set(account).await? else {
            return Err(self.refuse(account, Refusal::Unknown));
        };
        // Counted before it is checked (and cleared if it is right), so
        // racing guesses can't outrun the limits.
        let counted = match guess::count(&*p.store, &self.failures, account, now).await? {
            Ok(counted) => counted,
            Err(reason) => return Err(self.refuse(account, reason)),
        };
        for _ in 0..MAX_ROUNDS {
            let index = match recovery::find(&set, input, &p.hasher) {
                Lookup::Unused(i) => i,
                Lookup::Used => return Err(self.refuse(account, Refusal::AlreadyUsed)),
                _ => {
                    counted.wrong(&self.failures, &*p.events, now);
                    return Err(self.refuse(account, Refusal::WrongRecoveryCode));
                }
            };
            let mut next = set.clone();
            next.version = set.version.wrapping_add(1);
            if let Some(code) = next.codes.get_mut(index) {
                code.used_at = Some(now);
            }
            match p
                .store
                .replace_recovery_set(account, &next, &set.salt, set.version)
                .await
            {
                Ok(()) => {
                    counted.right(&*p.store).await;
                    let remaining = next.remaining();
                    let running_low = remaining <= usize::from(self.policy.low_threshold);
                    p.emit(Event::RecoveryCodeUsed {
                        account: account.clone(),
                        remaining,
                    });
                    if running_low {
                        p.emit(Event::RecoveryCodesLow {
                            account: account.clone(),
                            remaining,
                        });
                    }
                    return Ok(Redeemed {
                        remaining,
                        running_low,
                    });
                }
                Err(e) if e.is_conflict() => match p.store.recovery_set(account).await? {
                    Some(fresh) => set = fresh,
                    None => return Err(self.refuse(account, Refusal::Unknown)),
                },
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::conflict().into())
    }

    /// Unused codes left, or `None` when the account has no set.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn remaining(&self, account: &AccountId) -> Result<Option<usize>, Error> {
        Ok(self
            .ports
            .store
            .recovery_set(account)
            .await?
            .map(|s| s.remaining()))
    }

    /// Deletes the account's codes (2FA turned off).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn delete(&self, account: &AccountId) -> Result<(), Error> {
        Ok(self.ports.store.delete_recovery_set(account).await?)
    }

    fn refuse(&self, account: &AccountId, reason: Refusal) -> Error {
        self.ports.emit(Event::Failed {
            challenge: None,
            account: Some(account.clone()),
            reason,
        });
        Error::Refused(reason)
    }
}
