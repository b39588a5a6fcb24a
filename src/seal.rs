//! Sealing authenticator seeds at rest.
//!
//! Codes, tokens and recovery codes are stored as keyed hashes, but a TOTP
//! seed has to be read back at every sign-in to compute the expected code,
//! so it can't be hashed. It is encrypted instead, with a key the database
//! never sees: a [`Sealer`] turns the seed's `otpauth://` URI into opaque
//! bytes before anything is written, and back when a code is checked.
//! [`TwoFactor`](crate::service::TwoFactor) requires one: pass
//! [`AeadSealer`] (or your own implementation backed by a KMS) to
//! [`TwoFactor::builder`](crate::service::TwoFactor::builder).
//!
//! ```
//! use ninsho::KeyId;
//! use ninsho::seal::{AeadSealer, SealKey, Sealer};
//!
//! // In production the 32 key bytes come from a secret manager.
//! let sealer = AeadSealer::new(SealKey::new(KeyId(1), &[0x42; 32]).unwrap());
//! let sealed = sealer.seal("taro", b"otpauth://totp/...").unwrap();
//! assert_eq!(sealer.open("taro", &sealed).unwrap().expose_secret(), b"otpauth://totp/...");
//! // Copied to another account's record, it does not open.
//! assert!(sealer.open("jiro", &sealed).is_err());
//! ```
//!
//! # The format of [`AeadSealer`]
//!
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) with 256-bit keys.
//! A sealed seed is
//!
//! | bytes | content |
//! | --- | --- |
//! | 1 | format version, `1` |
//! | 4 | the [`KeyId`] of the key that sealed it, big-endian |
//! | 24 | a nonce drawn from the sealer's [`Random`] for this seal only |
//! | n | the ciphertext, as long as the seed's key URI |
//! | 16 | the Poly1305 tag |
//!
//! so 45 bytes plus the URI. The 192-bit nonce is drawn at random for every
//! seal: at that size, random nonces don't collide in any realistic number
//! of seals under one key. [`TwoFactor`](crate::service::TwoFactor) stores
//! these bytes base32-encoded (RFC 4648, no padding) in
//! [`AuthenticatorRecord::sealed_uri`](crate::model::AuthenticatorRecord::sealed_uri).
//!
//! # What the tag covers
//!
//! Besides the ciphertext, the tag authenticates this associated data:
//!
//! ```text
//! "ninsho/seal/authenticator-seed" ‖ version ‖ key id ‖ len(account) as u64 BE ‖ account
//! ```
//!
//! So the seed only opens for the account it was sealed for: an attacker
//! who can write to the database can't copy their own authenticator's
//! sealed seed into a victim's record (or the victim's into theirs). The
//! version and key id are covered too: editing the key id of a record
//! makes it fail to open, rather than be read under some other key. The
//! account's length is part of it so that no two accounts give the same
//! bytes.
//!
//! What it does not cover: which of an account's seeds is current. Someone
//! who can write to the database and kept an older sealed seed of the same
//! account (an app the user has since replaced) can put it back, and it
//! opens. Guarding against that takes integrity for the whole record,
//! which is the store's concern.
//!
//! # Rotating keys
//!
//! Every sealed seed names the key that sealed it. To rotate:
//!
//! 1. Deploy the new key as current, and the old one as previous:
//!    `AeadSealer::new(new).with_previous(old)?`. New seeds are sealed with
//!    the new key; existing ones still open.
//! 2. Let the seeds move: [`TwoFactor`](crate::service::TwoFactor) seals a
//!    seed again with the current key when it is used (an accepted code at
//!    sign-in, or the first code of a new app), in the same write that
//!    records the code, and
//!    [`TwoFactor::reseal_authenticator`](crate::service::TwoFactor::reseal_authenticator)
//!    moves one account's seeds ahead of use.
//!    [`TwoFactor::key_usage`](crate::service::TwoFactor::key_usage) counts
//!    the seeds per key, for progress reports.
//! 3. When no record uses the old key any more, drop it from the sealer.
//!
//! The [key rotation guide](crate::guide::key_rotation) has the full
//! procedure, for several instances too. A seed whose key the sealer no
//! longer holds fails with [`SealErrorKind::UnknownKey`], which is never
//! mistaken for a wrong code or a tampered record (the service reports it
//! as [`Error::RetiredKey`](crate::Error::RetiredKey)): the key was retired
//! too early, or the record comes from another deployment.
//!
//! # Without sealing
//!
//! [`DangerousUnsealed`] stores the URI as it is; a copy of the database is
//! then enough to compute every user's codes. It exists for tests that need
//! to look at the stored seed, and is selected by passing
//! [`DangerousUnsealed`] to [`TwoFactor::builder`](crate::service::TwoFactor::builder),
//! a name meant to stand out in review.

use std::fmt;
use std::sync::Arc;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use crate::hash::{KeyError, KeyId};
use crate::random::{OsRandom, Random, RandomError};
use crate::secret::SecretBytes;

/// Encrypts authenticator seeds before they reach the store, and decrypts
/// them to check a code.
///
/// [`AeadSealer`] is the implementation ninsho ships. Implement this trait
/// yourself to keep the key in a KMS or an HSM; bind `account` to the
/// sealed bytes (as associated data of an AEAD) so a seed sealed for one
/// account does not open for another.
pub trait Sealer: Send + Sync + fmt::Debug {
    /// Encrypts `plain` (a key URI) for `account`.
    ///
    /// # Errors
    /// [`SealError`] of kind [`SealErrorKind::Unavailable`] when the key
    /// service or the random source fails.
    fn seal(&self, account: &str, plain: &[u8]) -> Result<Vec<u8>, SealError>;

    /// Decrypts what [`seal`](Self::seal) produced for `account`.
    ///
    /// # Errors
    /// [`SealError`] of kind [`SealErrorKind::AuthenticationFailed`] when
    /// the data was not sealed for this account or was altered,
    /// [`SealErrorKind::UnknownKey`] when its key is not held,
    /// [`SealErrorKind::Unavailable`] when the key service fails.
    fn open(&self, account: &str, sealed: &[u8]) -> Result<SecretBytes, SealError>;

    /// Whether `sealed` (which [`open`](Self::open)s) was sealed with a key
    /// other than the one [`seal`](Self::seal) uses now, and should be
    /// sealed again while its plain seed is at hand.
    ///
    /// [`TwoFactor`](crate::service::TwoFactor) asks after every accepted
    /// authenticator code (at sign-in and when confirming a new app) and
    /// reseals in the same compare-and-set that records the code, so seeds
    /// move to the current key as their users sign in.
    ///
    /// The default answers `false`: right for a sealer with a single key,
    /// or one whose key service re-encrypts on its own. A sealer that
    /// rotates keys overrides it, as [`AeadSealer`] does.
    fn needs_reseal(&self, sealed: &[u8]) -> bool {
        let _ = sealed;
        false
    }

    /// The id of the key that sealed `sealed`, if the format says, without
    /// opening it: for reports of which keys stored seeds still use
    /// ([`TwoFactor::key_usage`](crate::service::TwoFactor::key_usage)).
    ///
    /// The default answers `None` (such seeds are counted apart, as
    /// unlabelled); [`AeadSealer`] reads the id it wrote.
    fn sealed_key_id(&self, sealed: &[u8]) -> Option<KeyId> {
        let _ = sealed;
        None
    }
}

/// What went wrong while sealing or opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealErrorKind {
    /// The key service or the random source failed: nothing was sealed or
    /// opened. Retrying later may succeed.
    Unavailable,
    /// The data names a key the sealer does not hold: retired too early,
    /// or from another deployment. Add the key back as a previous key.
    UnknownKey(KeyId),
    /// The data is malformed, was altered, or was sealed for another
    /// account. It will never open.
    AuthenticationFailed,
}

impl fmt::Display for SealErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable => f.write_str(
                "sealing or opening an authenticator seed failed: \
                 the key service or the random source is unavailable",
            ),
            Self::UnknownKey(id) => write!(
                f,
                "the authenticator seed was sealed with key {id}, which the sealer does not hold"
            ),
            Self::AuthenticationFailed => f.write_str(
                "the sealed authenticator seed is malformed, was altered, \
                 or belongs to another account",
            ),
        }
    }
}

/// Sealing or opening failed. Carries no secret.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
#[non_exhaustive]
pub struct SealError {
    kind: SealErrorKind,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SealError {
    /// The key service (or the random source) failed, with its error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: SealErrorKind::Unavailable,
            source: Some(source.into()),
        }
    }

    /// The sealed data does not authenticate: malformed, altered, or sealed
    /// for another account. Deliberately without detail.
    #[must_use]
    pub fn authentication_failed() -> Self {
        Self {
            kind: SealErrorKind::AuthenticationFailed,
            source: None,
        }
    }

    /// The sealed data names key `id`, which is not held.
    #[must_use]
    pub fn unknown_key(id: KeyId) -> Self {
        Self {
            kind: SealErrorKind::UnknownKey(id),
            source: None,
        }
    }

    /// A failure without a cause to report.
    #[deprecated(note = "use `SealError::authentication_failed` or `SealError::new`")]
    #[must_use]
    pub fn opaque() -> Self {
        Self::authentication_failed()
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> SealErrorKind {
        self.kind
    }
}

impl From<RandomError> for SealError {
    fn from(error: RandomError) -> Self {
        Self::new(error)
    }
}

/// Length of an [`AeadSealer`] key in bytes.
pub const SEAL_KEY_LEN: usize = 32;

/// A 256-bit XChaCha20-Poly1305 key with its id.
///
/// The id is stored in every seed the key seals. It is a [`KeyId`] like the
/// hashing keys', but the two are separate namespaces: sealing key 1 and
/// hashing key 1 are unrelated. `Debug` shows the id only, and the key is
/// wiped from memory on drop.
#[derive(Clone)]
pub struct SealKey {
    id: KeyId,
    cipher: XChaCha20Poly1305,
}

impl SealKey {
    /// Takes `key` ([`SEAL_KEY_LEN`] random bytes) under `id`. The caller
    /// keeps responsibility for wiping its own copy of the bytes.
    ///
    /// # Errors
    /// [`KeyError::WrongLength`] unless `key` is exactly 32 bytes.
    pub fn new(id: KeyId, key: &[u8]) -> Result<Self, KeyError> {
        let wrong = || KeyError::WrongLength {
            id,
            len: key.len(),
            expected: SEAL_KEY_LEN,
        };
        if key.len() != SEAL_KEY_LEN {
            return Err(wrong());
        }
        let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| wrong())?;
        Ok(Self { id, cipher })
    }

    /// A fresh random key under `id`, from `rng`.
    ///
    /// The key can't be read back: seeds sealed with it open only while
    /// this process lives. For demos and tests; in production, load a key
    /// that outlives the process with [`new`](Self::new).
    ///
    /// # Errors
    /// [`RandomError`] when the source fails.
    pub fn generate(id: KeyId, rng: &dyn Random) -> Result<Self, RandomError> {
        let mut bytes = Zeroizing::new([0u8; SEAL_KEY_LEN]);
        rng.fill(&mut bytes[..])?;
        let cipher = XChaCha20Poly1305::new(&(*bytes).into());
        Ok(Self { id, cipher })
    }

    /// This key's id.
    #[must_use]
    pub fn id(&self) -> KeyId {
        self.id
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The format version written by [`AeadSealer`].
const VERSION: u8 = 1;
/// Version and key id: the part of the header the associated data repeats.
const PREFIX_LEN: usize = 1 + 4;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = PREFIX_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Separates these seals from any other use of the same key.
const DOMAIN: &[u8] = b"ninsho/seal/authenticator-seed";

/// The parts of sealed bytes, borrowed.
struct Parts<'a> {
    prefix: &'a [u8],
    key_id: KeyId,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

impl<'a> Parts<'a> {
    /// Splits `sealed`, or `None` when it is too short or of another
    /// version.
    fn split(sealed: &'a [u8]) -> Option<Self> {
        let (prefix, rest) = sealed.split_at_checked(PREFIX_LEN)?;
        let (&version, id) = prefix.split_first()?;
        if version != VERSION {
            return None;
        }
        let key_id = KeyId(u32::from_be_bytes(id.try_into().ok()?));
        let (nonce, rest) = rest.split_at_checked(NONCE_LEN)?;
        let (ciphertext, tag) = rest.split_at_checked(rest.len().checked_sub(TAG_LEN)?)?;
        Some(Self {
            prefix,
            key_id,
            nonce,
            ciphertext,
            tag,
        })
    }
}

/// Domain label, version and key id, then the length-prefixed account.
fn associated_data(prefix: &[u8], account: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DOMAIN.len() + PREFIX_LEN + 8 + account.len());
    aad.extend_from_slice(DOMAIN);
    aad.extend_from_slice(prefix);
    let len = u64::try_from(account.len()).unwrap_or(u64::MAX);
    aad.extend_from_slice(&len.to_be_bytes());
    aad.extend_from_slice(account.as_bytes());
    aad
}

/// Seals seeds with XChaCha20-Poly1305 under a current key, and opens those
/// sealed with it or with any previous key it was given.
///
/// See the [module documentation](self) for the format, what is
/// authenticated, and how to rotate keys.
///
/// ```
/// use std::sync::Arc;
/// use ninsho::{KeyId, LockedRng};
/// use ninsho::seal::{AeadSealer, SealErrorKind, SealKey, Sealer};
///
/// let key = |id, byte| SealKey::new(KeyId(id), &[byte; 32]).unwrap();
/// let old = AeadSealer::new(key(1, 1));
/// let sealed = old.seal("taro", b"otpauth://totp/...").unwrap();
///
/// // Key 2 takes over; key 1 still opens what it sealed.
/// let rotated = AeadSealer::new(key(2, 2)).with_previous(key(1, 1)).unwrap();
/// assert!(rotated.open("taro", &sealed).is_ok());
/// assert!(rotated.needs_reseal(&sealed));
/// assert_eq!(AeadSealer::key_id_of(&sealed), Some(KeyId(1)));
///
/// // Key 1 retired: the seed names a key that is gone.
/// let retired = AeadSealer::new(key(2, 2));
/// let err = retired.open("taro", &sealed).unwrap_err();
/// assert_eq!(err.kind(), SealErrorKind::UnknownKey(KeyId(1)));
/// ```
#[derive(Clone)]
pub struct AeadSealer {
    current: SealKey,
    previous: Vec<SealKey>,
    rng: Arc<dyn Random>,
}

impl AeadSealer {
    /// A sealer that seals and opens with `current`, drawing nonces from the
    /// operating system ([`OsRandom`]).
    #[must_use]
    pub fn new(current: SealKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
            rng: Arc::new(OsRandom),
        }
    }

    /// Adds a retired key that still opens existing seeds.
    ///
    /// # Errors
    /// [`KeyError::DuplicateId`] when the id is already in use.
    pub fn with_previous(mut self, key: SealKey) -> Result<Self, KeyError> {
        if self.key(key.id).is_some() {
            return Err(KeyError::DuplicateId(key.id));
        }
        self.previous.push(key);
        Ok(self)
    }

    /// Draws nonces from `rng` instead of the operating system.
    #[must_use]
    pub fn with_rng(mut self, rng: Arc<dyn Random>) -> Self {
        self.rng = rng;
        self
    }

    /// The id new seeds are sealed with.
    #[must_use]
    pub fn current_key_id(&self) -> KeyId {
        self.current.id
    }

    /// The key id written in `sealed`, or `None` when the bytes are not
    /// in this sealer's format. Nothing is decrypted or authenticated: the
    /// answer is only as trustworthy as the bytes.
    #[must_use]
    pub fn key_id_of(sealed: &[u8]) -> Option<KeyId> {
        Parts::split(sealed).map(|p| p.key_id)
    }

    /// Whether `sealed` was sealed with a key other than the current one
    /// (or is not in this format at all) and should be sealed again.
    #[must_use]
    pub fn needs_reseal(&self, sealed: &[u8]) -> bool {
        Self::key_id_of(sealed) != Some(self.current.id)
    }

    fn key(&self, id: KeyId) -> Option<&SealKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
}

impl fmt::Debug for AeadSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<KeyId> = self.previous.iter().map(|k| k.id).collect();
        f.debug_struct("AeadSealer")
            .field("current", &self.current.id)
            .field("previous", &previous)
            .finish_non_exhaustive()
    }
}

impl Sealer for AeadSealer {
    fn seal(&self, account: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = &self.current;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce)?;
        // Room for everything up front: the plaintext is copied in once and
        // encrypted in place, and no reallocation leaves a copy behind.
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&key.id.0.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let aad = associated_data(&out[..PREFIX_LEN], account);
        let (_, body) = out.split_at_mut(HEADER_LEN);
        match key
            .cipher
            .encrypt_inout_detached(&XNonce::from(nonce), &aad, body.into())
        {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(out)
            }
            Err(e) => {
                // Only for inputs of hundreds of gigabytes; wipe the copy.
                out.zeroize();
                Err(SealError::new(e))
            }
        }
    }

    fn needs_reseal(&self, sealed: &[u8]) -> bool {
        // The inherent method, which callers without the trait in scope use.
        AeadSealer::needs_reseal(self, sealed)
    }

    fn sealed_key_id(&self, sealed: &[u8]) -> Option<KeyId> {
        Self::key_id_of(sealed)
    }

    fn open(&self, account: &str, sealed: &[u8]) -> Result<SecretBytes, SealError> {
        let parts = Parts::split(sealed).ok_or_else(SealError::authentication_failed)?;
        let key = self
            .key(parts.key_id)
            .ok_or_else(|| SealError::unknown_key(parts.key_id))?;
        let nonce =
            XNonce::try_from(parts.nonce).map_err(|_| SealError::authentication_failed())?;
        let tag = Tag::try_from(parts.tag).map_err(|_| SealError::authentication_failed())?;
        let aad = associated_data(parts.prefix, account);
        let mut plain = Zeroizing::new(parts.ciphertext.to_vec());
        key.cipher
            .decrypt_inout_detached(&nonce, &aad, plain.as_mut_slice().into(), &tag)
            .map_err(|_| SealError::authentication_failed())?;
        Ok(SecretBytes::new(std::mem::take(&mut *plain)))
    }
}

/// Stores seeds as they are, unencrypted.
///
/// **Security:** with it, a copy of the database is enough to compute every
/// user's authenticator codes. It is for tests that need to see the stored
/// seed. Pass it to [`TwoFactor::builder`](crate::service::TwoFactor::builder)
/// by name; use [`AeadSealer`] or a KMS-backed [`Sealer`] everywhere else.
#[derive(Debug, Clone, Copy, Default)]
pub struct DangerousUnsealed;

/// The former name of [`DangerousUnsealed`].
#[deprecated(note = "renamed `DangerousUnsealed`; use `AeadSealer` outside tests")]
pub type UnsealedStorage = DangerousUnsealed;

/// The former name of [`DangerousUnsealed`], as a value, so that
/// `Arc::new(UnsealedStorage)` keeps compiling (with a warning).
#[deprecated(note = "renamed `DangerousUnsealed`; use `AeadSealer` outside tests")]
#[allow(non_upper_case_globals)]
pub const UnsealedStorage: DangerousUnsealed = DangerousUnsealed;

impl Sealer for DangerousUnsealed {
    fn seal(&self, _account: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        Ok(plain.to_vec())
    }

    fn open(&self, _account: &str, sealed: &[u8]) -> Result<SecretBytes, SealError> {
        Ok(SecretBytes::new(sealed.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::LockedRng;

    fn key(id: u32, byte: u8) -> SealKey {
        SealKey::new(KeyId(id), &[byte; 32]).unwrap()
    }

    /// Pins the layout and the associated data with a direct use of the
    /// cipher, so a refactor can't change the format unnoticed.
    #[test]
    fn format_is_pinned() {
        let sealer = AeadSealer::new(key(7, 9)).with_rng(Arc::new(LockedRng::seeded(1)));
        let sealed = sealer.seal("taro", b"otpauth://x").unwrap();

        let mut nonce = [0u8; 24];
        LockedRng::seeded(1).fill(&mut nonce).unwrap();
        let mut aad = b"ninsho/seal/authenticator-seed".to_vec();
        aad.extend_from_slice(&[1, 0, 0, 0, 7]);
        aad.extend_from_slice(&4u64.to_be_bytes());
        aad.extend_from_slice(b"taro");
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let mut body = b"otpauth://x".to_vec();
        let tag = cipher
            .encrypt_inout_detached(&XNonce::from(nonce), &aad, body.as_mut_slice().into())
            .unwrap();

        let mut want = vec![1, 0, 0, 0, 7];
        want.extend_from_slice(&nonce);
        want.extend_from_slice(&body);
        want.extend_from_slice(&tag);
        assert_eq!(sealed, want);
        assert_eq!(sealed.len(), 45 + 11);
    }

    #[test]
    fn short_or_foreign_input_is_not_authentic() {
        let sealer = AeadSealer::new(key(1, 1));
        for bad in [&b""[..], &[1u8; 44][..], &[2u8; 80][..]] {
            assert_eq!(
                sealer.open("a", bad).unwrap_err().kind(),
                SealErrorKind::AuthenticationFailed
            );
            assert!(AeadSealer::key_id_of(bad).is_none());
        }
        // The smallest well-formed input: an empty plaintext.
        let empty = sealer.seal("a", b"").unwrap();
        assert_eq!(empty.len(), 45);
        assert!(sealer.open("a", &empty).unwrap().is_empty());
    }

    #[test]
    fn the_trait_asks_to_reseal_only_what_a_rotating_sealer_should() {
        let old = AeadSealer::new(key(1, 1));
        let sealed = old.seal("a", b"seed").unwrap();
        let rotated: &dyn Sealer = &AeadSealer::new(key(2, 2)).with_previous(key(1, 1)).unwrap();
        assert!(rotated.needs_reseal(&sealed));
        let resealed = rotated.seal("a", b"seed").unwrap();
        assert!(!rotated.needs_reseal(&resealed));
        assert_eq!(rotated.sealed_key_id(&sealed), Some(KeyId(1)));
        assert_eq!(rotated.sealed_key_id(&resealed), Some(KeyId(2)));
        let plain: &dyn Sealer = &DangerousUnsealed;
        assert!(!plain.needs_reseal(b"otpauth://totp/x"));
        assert_eq!(plain.sealed_key_id(b"otpauth://totp/x"), None);
    }

    #[test]
    fn generated_keys_work() {
        let k = SealKey::generate(KeyId(3), &LockedRng::seeded(5)).unwrap();
        let sealer = AeadSealer::new(k);
        let sealed = sealer.seal("a", b"seed").unwrap();
        assert_eq!(sealer.open("a", &sealed).unwrap().expose_secret(), b"seed");
    }
}
