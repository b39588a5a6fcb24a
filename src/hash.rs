//! Keyed hashes for secrets at rest.
//!
//! One-time codes, URL tokens, recovery codes and device tokens are never
//! stored as typed: ninsho stores `HMAC-SHA-256(key, context ‖ secret)` and
//! the id of the key that made it. A database dump alone then reveals
//! nothing, and a short code cannot be brute-forced offline without the key.
//!
//! Keys rotate: a [`KeyedHasher`] writes with its *current* key and still
//! verifies hashes made with the *previous* keys it was given, so a host can
//! introduce a new key, let old records expire or move, then retire the old
//! key: the [key rotation guide](crate::guide::key_rotation) gives the
//! steps.
//!
//! ```
//! use ninsho::hash::{HashKey, KeyId, KeyedHasher};
//!
//! let old = HashKey::new(KeyId(1), &[7u8; 32]).unwrap();
//! let new = HashKey::new(KeyId(2), &[9u8; 32]).unwrap();
//!
//! // Before rotation: records are written with key 1.
//! let stored = KeyedHasher::new(old.clone()).hash(b"signin", b"123456");
//!
//! // After rotation: key 2 writes, key 1 still verifies.
//! let hasher = KeyedHasher::new(new).with_previous(old).unwrap();
//! assert!(hasher.verify(b"signin", b"123456", &stored).unwrap());
//! assert!(!hasher.verify(b"signin", b"654321", &stored).unwrap());
//! assert!(hasher.needs_rehash(&stored));
//! ```

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// Identifies a key: a hashing key, stored beside every hash it made, or a
/// [sealing key](crate::seal::SealKey), stored in every seed it sealed.
/// Hashing and sealing ids are separate namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Problems with hashing and sealing keys. None of them carries key
/// material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is shorter than 32 bytes (256 bits), the HMAC-SHA-256 output
    /// size; generate one with a CSPRNG.
    #[error("hashing key {id} is {len} bytes; at least 32 random bytes are required")]
    TooShort {
        /// The key's id.
        id: KeyId,
        /// Its length in bytes.
        len: usize,
    },
    /// Two keys given to one hasher or one sealer share an id.
    #[error("key id {0} is used twice; give every key its own id")]
    DuplicateId(KeyId),
    /// A stored hash names a key this hasher does not hold: it was retired
    /// too early, or the record comes from another deployment. The record
    /// cannot be verified: it neither matches nor proves the input wrong.
    /// The flows report it as [`Error::RetiredKey`](crate::Error::RetiredKey),
    /// never as a wrong guess.
    #[error("no hashing key with id {0} is configured; the record cannot be verified")]
    UnknownKeyId(KeyId),
    /// A sealing key is not exactly `expected` bytes long; generate one
    /// with a CSPRNG.
    #[error("sealing key {id} is {len} bytes; exactly {expected} random bytes are required")]
    WrongLength {
        /// The key's id.
        id: KeyId,
        /// Its length in bytes.
        len: usize,
        /// The length required.
        expected: usize,
    },
}

/// Minimum key length in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// A host-supplied HMAC-SHA-256 key with its id.
///
/// The key's inner and outer HMAC states are prepared once here, so hashing
/// costs one HMAC, not a re-keying. Its `Debug` shows the id only, and its
/// memory is wiped on drop.
#[derive(Clone)]
pub struct HashKey {
    id: KeyId,
    mac: Hmac<Sha256>,
}

impl HashKey {
    /// Prepares `key` (at least [`MIN_KEY_LEN`] random bytes) under `id`.
    ///
    /// # Errors
    /// [`KeyError::TooShort`] for keys under 32 bytes.
    pub fn new(id: KeyId, key: &[u8]) -> Result<Self, KeyError> {
        if key.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort { id, len: key.len() });
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .map_err(|_| KeyError::TooShort { id, len: key.len() })?;
        Ok(Self { id, mac })
    }

    /// This key's id.
    #[must_use]
    pub fn id(&self) -> KeyId {
        self.id
    }

    fn tag(&self, context: &[u8], secret: &[u8]) -> Tag {
        let mut mac = self.mac.clone();
        // Length-prefix the context so (context, secret) pairs can't collide.
        let len = u32::try_from(context.len()).unwrap_or(u32::MAX);
        mac.update(&len.to_be_bytes());
        mac.update(context);
        mac.update(secret);
        Tag(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A 32-byte HMAC-SHA-256 tag, compared in constant time.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub struct Tag(pub [u8; 32]);

impl ConstantTimeEq for Tag {
    fn ct_eq(&self, other: &Self) -> Choice {
        // Four 64-bit words instead of 32 bytes: the same constant-time
        // guarantee, a quarter of the operations.
        let word = |t: &Tag, i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&t.0[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        word(self, 0).ct_eq(&word(other, 0))
            & word(self, 1).ct_eq(&word(other, 1))
            & word(self, 2).ct_eq(&word(other, 2))
            & word(self, 3).ct_eq(&word(other, 3))
    }
}

/// `==` on tags is the constant-time comparison: no early exit, so code
/// that compares stored records can't leak how much of a tag matched.
impl PartialEq for Tag {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Tag {}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not reversible without the key, but there is no reason to print it.
        f.write_str("Tag([redacted])")
    }
}

/// What is stored in place of a secret: the key id and the tag. Its `==`
/// compares the tag in constant time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedHash {
    /// The key that made [`tag`](Self::tag).
    pub key_id: KeyId,
    /// HMAC-SHA-256 over the length-prefixed context and the secret.
    pub tag: Tag,
}

/// Hashes secrets with the current key and verifies with any configured key.
#[derive(Debug, Clone)]
pub struct KeyedHasher {
    current: HashKey,
    previous: Vec<HashKey>,
}

impl KeyedHasher {
    /// A hasher that writes and verifies with `current`.
    #[must_use]
    pub fn new(current: HashKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Adds a retired key that still verifies existing records.
    ///
    /// # Errors
    /// [`KeyError::DuplicateId`] when the id is already in use.
    pub fn with_previous(mut self, key: HashKey) -> Result<Self, KeyError> {
        if self.key(key.id).is_some() {
            return Err(KeyError::DuplicateId(key.id));
        }
        self.previous.push(key);
        Ok(self)
    }

    /// The id new hashes are written with.
    #[must_use]
    pub fn current_key_id(&self) -> KeyId {
        self.current.id
    }

    /// Hashes `secret` under `context` with the current key.
    ///
    /// `context` separates uses (`b"challenge:..."`, `b"recovery"`): the same
    /// secret hashed under two contexts gives unrelated tags.
    #[must_use]
    pub fn hash(&self, context: &[u8], secret: &[u8]) -> KeyedHash {
        KeyedHash {
            key_id: self.current.id,
            tag: self.current.tag(context, secret),
        }
    }

    /// Whether `secret` under `context` matches `stored`, in constant time.
    ///
    /// # Errors
    /// [`KeyError::UnknownKeyId`] when `stored` was made with a key this
    /// hasher does not hold: the record can't be checked (never accept it;
    /// don't count it as a wrong guess either).
    pub fn verify(
        &self,
        context: &[u8],
        secret: &[u8],
        stored: &KeyedHash,
    ) -> Result<bool, KeyError> {
        Ok(self.matches(context, secret, stored)?.into())
    }

    /// Like [`verify`](Self::verify), returning a [`Choice`] for callers that
    /// combine several comparisons without branching.
    ///
    /// # Errors
    /// [`KeyError::UnknownKeyId`] as for `verify`.
    pub fn matches(
        &self,
        context: &[u8],
        secret: &[u8],
        stored: &KeyedHash,
    ) -> Result<Choice, KeyError> {
        let key = self
            .key(stored.key_id)
            .ok_or(KeyError::UnknownKeyId(stored.key_id))?;
        Ok(key.tag(context, secret).ct_eq(&stored.tag))
    }

    /// The tag `secret` under `context` would have with key `key_id`, for
    /// comparing one input against several stored hashes with a single HMAC.
    ///
    /// # Errors
    /// [`KeyError::UnknownKeyId`] when this hasher does not hold that key.
    pub fn tag_with(&self, key_id: KeyId, context: &[u8], secret: &[u8]) -> Result<Tag, KeyError> {
        let key = self.key(key_id).ok_or(KeyError::UnknownKeyId(key_id))?;
        Ok(key.tag(context, secret))
    }

    /// Whether `stored` was made with a key other than the current one and
    /// should be re-hashed at the next chance.
    #[must_use]
    pub fn needs_rehash(&self, stored: &KeyedHash) -> bool {
        stored.key_id != self.current.id
    }

    fn key(&self, id: KeyId) -> Option<&HashKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32, b: u8) -> HashKey {
        HashKey::new(KeyId(id), &[b; 32]).unwrap()
    }

    #[test]
    fn rfc4231_case_2_shape() {
        // With an empty context the tag is HMAC(key, 0u32 ‖ secret): check
        // against a direct HMAC so the construction is pinned down.
        let k = [0x0bu8; 32];
        let h = KeyedHasher::new(HashKey::new(KeyId(1), &k).unwrap()).hash(b"", b"abc");
        let mut direct = <Hmac<Sha256> as KeyInit>::new_from_slice(&k).unwrap();
        direct.update(&[0, 0, 0, 0]);
        direct.update(b"abc");
        let want: [u8; 32] = direct.finalize().into_bytes().into();
        assert_eq!(h.tag.0, want);
    }

    #[test]
    fn context_separates() {
        let h = KeyedHasher::new(key(1, 1));
        let a = h.hash(b"a", b"123456");
        assert!(!h.verify(b"b", b"123456", &a).unwrap());
        // Moving bytes between context and secret changes the tag.
        let x = h.hash(b"ab", b"c");
        assert!(!h.verify(b"a", b"bc", &x).unwrap());
    }

    #[test]
    fn rotation() {
        let stored = KeyedHasher::new(key(1, 1)).hash(b"c", b"s");
        let rotated = KeyedHasher::new(key(2, 2))
            .with_previous(key(1, 1))
            .unwrap();
        assert!(rotated.verify(b"c", b"s", &stored).unwrap());
        assert!(rotated.needs_rehash(&stored));
        assert_eq!(rotated.hash(b"c", b"s").key_id, KeyId(2));
        let retired = KeyedHasher::new(key(2, 2));
        assert_eq!(
            retired.verify(b"c", b"s", &stored),
            Err(KeyError::UnknownKeyId(KeyId(1)))
        );
        assert_eq!(
            KeyedHasher::new(key(1, 1))
                .with_previous(key(1, 2))
                .unwrap_err(),
            KeyError::DuplicateId(KeyId(1))
        );
    }

    #[test]
    fn short_keys_refused() {
        assert_eq!(
            HashKey::new(KeyId(3), &[0u8; 31]).unwrap_err(),
            KeyError::TooShort {
                id: KeyId(3),
                len: 31
            }
        );
    }

    #[test]
    fn tag_compare_finds_any_difference() {
        let a = Tag([5u8; 32]);
        assert!(bool::from(a.ct_eq(&Tag([5u8; 32]))));
        for i in 0..32 {
            let mut b = [5u8; 32];
            b[i] ^= 1;
            assert!(!bool::from(a.ct_eq(&Tag(b))), "byte {i}");
        }
    }

    #[test]
    fn debug_shows_no_key_or_tag() {
        let k = HashKey::new(KeyId(9), &[0xAB; 32]).unwrap();
        let s = format!("{k:?} {:?}", KeyedHasher::new(k.clone()).hash(b"", b"x"));
        assert!(
            !s.to_lowercase().contains("ab, ") && !s.contains("171"),
            "{s}"
        );
    }
}

/// SipHash-2-4 (Aumasson and Bernstein) of `data` under a 128-bit key: a
/// fast pseudorandom function for identifiers that must be unguessable
/// without the key but are not secrets themselves (sign-in method ids).
/// Not for anything stored: secrets at rest go through [`KeyedHasher`].
pub(crate) fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let word = |bytes: &[u8]| {
        let mut w = [0u8; 8];
        w[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(w)
    };
    let (k0, k1) = (word(&key[..8]), word(&key[8..]));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let m = word(chunk);
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    // The last block: the remaining bytes, and the length's low byte on top.
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the length mod 256 is the rule"
    )]
    let last = word(chunks.remainder()) | (u64::from(data.len() as u8) << 56);
    v[3] ^= last;
    round(&mut v);
    round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod siphash_tests {
    use std::hash::Hasher as _;

    use super::siphash24;

    /// The paper's vector (key 00..0f, message 00..0e), and agreement with
    /// the standard library's own SipHash-2-4 (deprecated for hashing
    /// tables, still the reference here) on every length to 64 bytes and
    /// on other keys.
    #[test]
    fn siphash24_matches_the_paper_and_the_standard_library() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let message: Vec<u8> = (0u8..64).collect();
        assert_eq!(siphash24(&key, &message[..15]), 0xa129_ca61_49be_45e5);
        for seed in 0u8..4 {
            let key: [u8; 16] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ seed);
            let k0 = u64::from_le_bytes(key[..8].try_into().unwrap());
            let k1 = u64::from_le_bytes(key[8..].try_into().unwrap());
            for len in 0..=64 {
                #[allow(deprecated)]
                let mut reference = std::hash::SipHasher::new_with_keys(k0, k1);
                reference.write(&message[..len]);
                assert_eq!(
                    siphash24(&key, &message[..len]),
                    reference.finish(),
                    "key {seed}, length {len}"
                );
            }
        }
    }
}
