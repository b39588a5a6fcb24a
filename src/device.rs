//! Trusted devices ("don't ask again on this device"): the pure engine.
//!
//! After a successful second factor the host may trust the browser: it gets
//! an opaque token for a cookie and the store keeps a record (device id,
//! label, created, last used, expires) with only a keyed hash of the token.
//!
//! A token is `nd1.<device id>.<secret>`: a version tag, 128-bit id and a
//! 256-bit secret, nothing about the user readable in it. Its hash is bound
//! to the account, so a token stolen from one account is worthless against
//! another. Every record carries the account's **security epoch** at
//! issue: the host bumps the epoch on password change, 2FA disable,
//! recovery-code use or "sign out everywhere", and every older token dies.
//!
//! Trusting a device is a convenience inside the host's session policy, not
//! an authentication factor (NIST SP 800-63B treats a remembered device as
//! reducing prompts, not as proof of identity): use it to skip the second
//! step, never to skip the password.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::hash::{KeyError, KeyId, KeyedHash, KeyedHasher};
use crate::model::{AccountId, DeviceId, DeviceRecord};
use crate::random::{Random, RandomError};
use crate::secret::SecretString;

/// Token format version tag.
const TAG: &str = "nd1";

/// How long trust lasts and how often "last used" is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePolicy {
    /// How long a device stays trusted (default 30 days).
    pub lifetime: Duration,
    /// "Last used" is written at most this often (default 1 hour), to
    /// spare writes on busy sites.
    pub refresh_every: Duration,
}

impl Default for DevicePolicy {
    fn default() -> Self {
        Self {
            lifetime: Duration::days(30),
            refresh_every: Duration::hours(1),
        }
    }
}

/// The cookie value for a trusted device.
///
/// Opaque and secret: `Debug` is redacted; put it in an `HttpOnly`,
/// `Secure`, `SameSite` cookie through [`expose_secret`](Self::expose_secret).
#[derive(Clone)]
pub struct DeviceToken(SecretString);

impl DeviceToken {
    /// The token text.
    ///
    /// **Security:** only for the cookie; never log it.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceToken([redacted])")
    }
}

/// Hash context binding a device secret to its account and id.
fn context(account: &AccountId, id: &DeviceId) -> Vec<u8> {
    let account = account.0.as_bytes();
    let mut ctx = Vec::with_capacity(7 + 4 + account.len() + 16);
    ctx.extend_from_slice(b"device:");
    ctx.extend_from_slice(
        &u32::try_from(account.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    ctx.extend_from_slice(account);
    ctx.extend_from_slice(&id.0);
    ctx
}

/// Makes a token and the record to store for it, at the account's security
/// `epoch`.
///
/// The record's [`incarnation`](DeviceRecord::incarnation) is 0; set it
/// to the account record's ([`AccountRecord::incarnation`](crate::model::AccountRecord::incarnation))
/// before storing it, or the device counts as revoked once the account has
/// a record. [`TwoFactor`](crate::service::TwoFactor) does this itself.
///
/// # Errors
/// When the random source fails.
pub fn trust(
    account: &AccountId,
    label: &str,
    epoch: u64,
    policy: &DevicePolicy,
    hasher: &KeyedHasher,
    rng: &dyn Random,
    now: OffsetDateTime,
) -> Result<(DeviceToken, DeviceRecord), RandomError> {
    let mut id = [0u8; 16];
    rng.fill(&mut id)?;
    let id = DeviceId(id);
    let mut secret = Zeroizing::new([0u8; 32]);
    rng.fill(&mut *secret)?;
    let token = DeviceToken(SecretString::new(format!(
        "{TAG}.{id}.{}",
        base32::encode(base32::Alphabet::Rfc4648Lower { padding: false }, &*secret)
    )));
    let record = DeviceRecord {
        account: account.clone(),
        id,
        version: 0,
        token: hasher.hash(&context(account, &id), &*secret),
        label: label.to_owned(),
        created_at: now,
        last_used_at: now,
        expires_at: now.saturating_add(policy.lifetime),
        epoch,
        revoked_at: None,
        incarnation: 0,
    };
    Ok((token, record))
}

/// Splits a token into its device id and secret; `None` unless it is in
/// the exact canonical form this crate writes.
#[must_use]
pub fn parse_token(token: &str) -> Option<(DeviceId, Zeroizing<Vec<u8>>)> {
    let mut parts = token.split('.');
    let (tag, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if tag != TAG || parts.next().is_some() {
        return None;
    }
    let id = DeviceId::parse(id).ok()?;
    let bytes = Zeroizing::new(base32::decode(
        base32::Alphabet::Rfc4648Lower { padding: false },
        secret,
    )?);
    let canonical = base32::encode(base32::Alphabet::Rfc4648Lower { padding: false }, &bytes);
    // Both sides come from the caller's token, but compare in constant time
    // anyway: nothing secret-shaped is compared with `==` in this crate.
    let canonical = bool::from(canonical.as_bytes().ct_eq(secret.as_bytes()));
    (bytes.len() == 32 && canonical).then_some((id, bytes))
}

/// What a device token is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[serde(tag = "device", rename_all = "snake_case")]
pub enum DeviceCheck {
    /// Trusted: skip the second step. `refresh` says "last used" is due
    /// for a write.
    Valid {
        /// Whether to write a new "last used".
        refresh: bool,
    },
    /// Trust ran out; ask for the second factor (and offer to trust again).
    Expired,
    /// The account's security epoch moved on since, or the device was
    /// revoked.
    Revoked,
    /// Not a token of this account (malformed, forged, or another account's).
    Unknown,
    /// The device's record was hashed with a key the hasher no longer
    /// holds, so the token can't be checked: ask for the second factor
    /// (and offer to trust the device again).
    ///
    /// An answer rather than an error, on purpose: a trusted device only
    /// spares the user a second step they can still take, so a retired key
    /// costs them one prompt, never a sign-in. It is still distinct from
    /// [`Unknown`](Self::Unknown) so that the host can see that a key was
    /// retired while records still used it (the flows also report
    /// [`Event::RetiredKey`](crate::events::Event::RetiredKey)).
    RetiredKey {
        /// The id of the hashing key the record names.
        key_id: KeyId,
    },
}

impl DeviceCheck {
    /// Whether the cookie holding the token is stale and should be cleared:
    /// the token will never be trusted again (trust ran out, the device
    /// was revoked or the epoch moved on, or it is not this account's).
    /// Not for [`RetiredKey`](Self::RetiredKey): restoring the key as a
    /// previous one would bring the token back.
    #[must_use]
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::Expired | Self::Revoked | Self::Unknown)
    }
}

/// Checks a token's secret against its record, in constant time.
///
/// A record hashed with a key `hasher` no longer holds is
/// [`DeviceCheck::RetiredKey`]: its token can't be checked, so it is not
/// trusted.
#[must_use]
pub fn check(
    record: &DeviceRecord,
    account: &AccountId,
    secret: &[u8],
    current_epoch: u64,
    policy: &DevicePolicy,
    hasher: &KeyedHasher,
    now: OffsetDateTime,
) -> DeviceCheck {
    let same_account = bool::from(record.account.0.as_bytes().ct_eq(account.0.as_bytes()));
    let matches = match hasher.matches(&context(account, &record.id), secret, &record.token) {
        Ok(choice) => bool::from(choice),
        Err(KeyError::UnknownKeyId(key_id)) if same_account => {
            return DeviceCheck::RetiredKey { key_id };
        }
        Err(_) => false,
    };
    if !(matches && same_account) {
        DeviceCheck::Unknown
    } else if record.epoch < current_epoch || record.revoked_at.is_some() {
        DeviceCheck::Revoked
    } else if now >= record.expires_at {
        DeviceCheck::Expired
    } else {
        DeviceCheck::Valid {
            refresh: now >= record.last_used_at.saturating_add(policy.refresh_every),
        }
    }
}

/// The hash of a device token's `secret` with the hasher's current key, to
/// move a record checked valid off a key about to be retired.
pub(crate) fn rehash(
    record: &DeviceRecord,
    account: &AccountId,
    secret: &[u8],
    hasher: &KeyedHasher,
) -> KeyedHash {
    hasher.hash(&context(account, &record.id), secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HashKey, KeyId, LockedRng};

    fn setup() -> (
        KeyedHasher,
        LockedRng<rand_chacha::ChaCha20Rng>,
        OffsetDateTime,
    ) {
        (
            KeyedHasher::new(HashKey::new(KeyId(1), &[4; 32]).unwrap()),
            LockedRng::seeded(3),
            OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
        )
    }

    #[test]
    fn trust_then_check() {
        let (h, rng, now) = setup();
        let alice = AccountId::new("alice");
        let p = DevicePolicy::default();
        let (token, record) = trust(&alice, "Chrome on Windows", 4, &p, &h, &rng, now).unwrap();
        assert!(token.expose_secret().starts_with("nd1."));
        assert!(!token.expose_secret().contains("alice"));
        assert_eq!(format!("{token:?}"), "DeviceToken([redacted])");
        let (id, secret) = parse_token(token.expose_secret()).unwrap();
        assert_eq!(id, record.id);
        assert_eq!(
            check(&record, &alice, &secret, 4, &p, &h, now),
            DeviceCheck::Valid { refresh: false }
        );
        let later = now + Duration::hours(1);
        assert_eq!(
            check(&record, &alice, &secret, 4, &p, &h, later),
            DeviceCheck::Valid { refresh: true }
        );
        assert_eq!(
            check(&record, &alice, &secret, 5, &p, &h, now),
            DeviceCheck::Revoked
        );
        assert_eq!(
            check(
                &record,
                &alice,
                &secret,
                4,
                &p,
                &h,
                now + Duration::days(30)
            ),
            DeviceCheck::Expired
        );
        assert_eq!(
            check(&record, &AccountId::new("bob"), &secret, 4, &p, &h, now),
            DeviceCheck::Unknown
        );
        assert_eq!(
            check(&record, &alice, &[0u8; 32], 4, &p, &h, now),
            DeviceCheck::Unknown
        );
    }

    #[test]
    fn a_retired_key_is_not_an_unknown_token() {
        let (h, rng, now) = setup();
        let alice = AccountId::new("alice");
        let p = DevicePolicy::default();
        let (token, record) = trust(&alice, "x", 0, &p, &h, &rng, now).unwrap();
        let (_, secret) = parse_token(token.expose_secret()).unwrap();
        let new = KeyedHasher::new(HashKey::new(KeyId(2), &[5; 32]).unwrap());
        assert_eq!(
            check(&record, &alice, &secret, 0, &p, &new, now),
            DeviceCheck::RetiredKey { key_id: KeyId(1) }
        );
        // Re-hashed under the current key, it checks again.
        let rotated = new
            .clone()
            .with_previous(HashKey::new(KeyId(1), &[4; 32]).unwrap())
            .unwrap();
        let mut moved = record.clone();
        moved.token = rehash(&record, &alice, &secret, &rotated);
        assert_eq!(moved.token.key_id, KeyId(2));
        assert_eq!(
            check(&moved, &alice, &secret, 0, &p, &new, now),
            DeviceCheck::Valid { refresh: false }
        );
    }

    #[test]
    fn tokens_must_be_canonical() {
        let (h, rng, now) = setup();
        let (token, _) = trust(
            &AccountId::new("a"),
            "x",
            0,
            &DevicePolicy::default(),
            &h,
            &rng,
            now,
        )
        .unwrap();
        let t = token.expose_secret();
        assert!(parse_token(t).is_some());
        assert!(parse_token(&t.to_uppercase()).is_none());
        assert!(parse_token(&t.replacen("nd1", "nd2", 1)).is_none());
        assert!(parse_token(&format!("{t}.x")).is_none());
        assert!(parse_token("").is_none());
        assert!(parse_token("nd1..").is_none());
        let mut last = t.to_owned();
        let c = last.pop().unwrap();
        last.push(if c == 'a' { 'b' } else { 'a' });
        assert!(parse_token(&last).is_none() || last == t);
    }
}
