//! Recovery codes: single-use codes a user keeps for when the phone is lost.
//!
//! A set holds 10 codes by default, each 12 characters from an unambiguous
//! 31-symbol alphabet (digits 2–9 and the letters without I, L and O, so no
//! `0/O` or `1/I/L` confusion), shown as `XXXX-XXXX-XXXX`: 59.4 bits each.
//! The plain codes are returned once, to show the user; only keyed hashes
//! are stored, under a per-set salt.
//!
//! Redemption folds what people type (case, spaces, hyphens, full-width
//! characters), computes one HMAC of the input, and compares it with every
//! unused code of the set in constant time without stopping at a match.
//! Any unused code works, in any order; each works once.
//!
//! This module is the pure engine; the flows store the set and mark codes
//! used atomically.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::{Choice, ConstantTimeEq};
use time::OffsetDateTime;

use crate::hash::{KeyId, KeyedHasher, Tag};
use crate::model::{RecoverySet, StoredRecoveryCode};
use crate::random::{Random, RandomError, uniform_below};
use crate::secret::SecretString;

/// The symbols codes are made of: no `0`, `1`, `I`, `L` or `O`.
pub const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// Which ASCII bytes are in [`ALPHABET`] (a table, not a search: lookups
/// run for every typed character).
const IN_ALPHABET: [bool; 128] = {
    let mut table = [false; 128];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = true;
        i += 1;
    }
    table
};

/// Bits of entropy a code must have at least.
pub const MIN_BITS: f64 = 40.0;

/// How recovery codes are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPolicy {
    count: u8,
    length: u8,
    /// The "running low" threshold: when a redemption leaves this many or
    /// fewer codes, the host is told (default 3).
    pub low_threshold: u8,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self {
            count: 10,
            length: 12,
            low_threshold: 3,
        }
    }
}

/// A recovery policy outside the allowed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryPolicyError {
    /// A set needs 1 to 50 codes.
    #[error("a recovery set holds 1 to 50 codes, not {0}")]
    Count(u8),
    /// A code needs 9 to 32 characters (9 is the first length with at
    /// least 40 bits from a 31-symbol alphabet).
    #[error("recovery codes have 9 to 32 characters (at least 40 bits), not {0}")]
    Length(u8),
}

impl RecoveryPolicy {
    /// Codes per set (default 10).
    #[must_use]
    pub fn count(&self) -> u8 {
        self.count
    }

    /// Characters per code (default 12).
    #[must_use]
    pub fn length(&self) -> u8 {
        self.length
    }

    /// Sets the number of codes per set.
    ///
    /// # Errors
    /// Outside 1..=50.
    pub fn with_count(mut self, count: u8) -> Result<Self, RecoveryPolicyError> {
        if !(1..=50).contains(&count) {
            return Err(RecoveryPolicyError::Count(count));
        }
        self.count = count;
        Ok(self)
    }

    /// Sets the code length in characters.
    ///
    /// # Errors
    /// Outside 9..=32 (fewer than 9 characters is under 40 bits).
    pub fn with_length(mut self, length: u8) -> Result<Self, RecoveryPolicyError> {
        if !(9..=32).contains(&length) {
            return Err(RecoveryPolicyError::Length(length));
        }
        self.length = length;
        Ok(self)
    }

    /// Bits of entropy per code.
    #[must_use]
    pub fn bits(&self) -> f64 {
        f64::from(self.length) * 31f64.log2()
    }
}

/// Plain recovery codes, to show the user exactly once.
///
/// `Debug` is redacted; read them through [`expose_secret`](Self::expose_secret).
pub struct PlainCodes(Vec<SecretString>);

impl PlainCodes {
    /// The codes, formatted `XXXX-XXXX-XXXX`.
    ///
    /// **Security:** show them to the user once (and offer a download); never
    /// log or store them.
    #[must_use]
    pub fn expose_secret(&self) -> Vec<&str> {
        self.0.iter().map(SecretString::expose_secret).collect()
    }

    /// How many.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for PlainCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainCodes([{} redacted])", self.0.len())
    }
}

/// The hashing context of a set: a domain label and the set's salt.
fn context(salt: &[u8; 16]) -> [u8; 25] {
    let mut ctx = [0u8; 25];
    ctx[..9].copy_from_slice(b"recovery:");
    ctx[9..].copy_from_slice(salt);
    ctx
}

/// Generates a new set: the plain codes to show and the record to store.
///
/// # Errors
/// When the random source fails.
pub fn generate(
    policy: &RecoveryPolicy,
    hasher: &KeyedHasher,
    rng: &dyn Random,
    now: OffsetDateTime,
) -> Result<(PlainCodes, RecoverySet), RandomError> {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)?;
    let ctx = context(&salt);
    let mut plain = Vec::with_capacity(usize::from(policy.count));
    let mut codes = Vec::with_capacity(usize::from(policy.count));
    for _ in 0..policy.count {
        let mut raw = zeroize::Zeroizing::new(Vec::with_capacity(usize::from(policy.length)));
        for _ in 0..policy.length {
            let i = uniform_below(rng, 31)?;
            raw.push(ALPHABET[usize::try_from(i).unwrap_or(0)]);
        }
        codes.push(StoredRecoveryCode {
            hash: hasher.hash(&ctx, &raw),
            used_at: None,
            used_by: None,
        });
        plain.push(SecretString::new(display_form(&raw)));
    }
    Ok((
        PlainCodes(plain),
        RecoverySet {
            salt,
            version: 0,
            created_at: now,
            length: policy.length,
            codes,
        },
    ))
}

/// `ABCDEFGHJKMN` → `ABCD-EFGH-JKMN` (groups of four).
fn display_form(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + raw.len() / 4);
    for (i, &b) in raw.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(char::from(b));
    }
    out
}

/// Folds typed input to the canonical code: upper case, full-width folded,
/// spaces and hyphen-like characters dropped. Returns `None` when a
/// character can't be part of a code (including `0`, `1`, `I`, `L`, `O`),
/// or the length is wrong.
#[must_use]
pub fn normalize(input: &str, length: u8) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(usize::from(length)));
    for c in input.chars() {
        let c = match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0)?,
            c => c,
        };
        if c.is_whitespace()
            || matches!(
                c,
                '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}' | '_' | '.'
            )
        {
            continue;
        }
        let b = u8::try_from(c.to_ascii_uppercase()).ok()?;
        if !IN_ALPHABET.get(usize::from(b)).copied().unwrap_or(false)
            || out.len() >= usize::from(length)
        {
            return None;
        }
        out.push(b);
    }
    (out.len() == usize::from(length)).then_some(out)
}

/// What typed input is to a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup {
    /// The unused code at this index.
    Unused(usize),
    /// The code at this index, already used.
    Used(usize),
    /// No code of the set.
    NoMatch,
    /// No code matched, but unused codes of the set were hashed with this
    /// key, which the hasher no longer holds: the input may be one of them.
    /// Neither right nor wrong; see
    /// [`Error::RetiredKey`](crate::Error::RetiredKey).
    RetiredKey(KeyId),
}

/// Finds what `input` is in `set`, in constant time over the set: one HMAC
/// per hashing key, every code compared, no early exit.
///
/// A match under a key the hasher holds wins. Otherwise, when an unused
/// code was hashed with a key the hasher no longer holds, the answer is
/// [`Lookup::RetiredKey`]: that code can't be compared, so the input is
/// not known to be wrong.
#[must_use]
pub fn find(set: &RecoverySet, input: &str, hasher: &KeyedHasher) -> Lookup {
    let Some(code) = normalize(input, set.length) else {
        return Lookup::NoMatch;
    };
    let ctx = context(&set.salt);
    let mut cached: Option<(KeyId, Tag)> = None;
    let mut unused = Choice::from(0);
    let mut used = Choice::from(0);
    let mut index = 0u64;
    let mut used_index = 0u64;
    let mut retired = None;
    for (i, stored) in set.codes.iter().enumerate() {
        let tag = match cached {
            Some((id, tag)) if id == stored.hash.key_id => Some(tag),
            _ => hasher.tag_with(stored.hash.key_id, &ctx, &code).ok(),
        };
        // A retired key: that code can't be compared. Key ids and use are
        // not secret, so noting it leaks nothing.
        let Some(tag) = tag else {
            if stored.used_at.is_none() && retired.is_none() {
                retired = Some(stored.hash.key_id);
            }
            continue;
        };
        cached = Some((stored.hash.key_id, tag));
        let hit = tag.ct_eq(&stored.hash.tag);
        let is_unused = Choice::from(u8::from(stored.used_at.is_none()));
        let fresh = hit & is_unused;
        let spent = hit & !is_unused;
        subtle::ConditionallySelectable::conditional_assign(&mut index, &(i as u64), fresh);
        subtle::ConditionallySelectable::conditional_assign(&mut used_index, &(i as u64), spent);
        unused |= fresh;
        used |= spent;
    }
    if bool::from(unused) {
        Lookup::Unused(usize::try_from(index).unwrap_or(usize::MAX))
    } else if bool::from(used) {
        Lookup::Used(usize::try_from(used_index).unwrap_or(usize::MAX))
    } else if let Some(key_id) = retired {
        Lookup::RetiredKey(key_id)
    } else {
        Lookup::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HashKey, LockedRng};

    fn hasher() -> KeyedHasher {
        KeyedHasher::new(HashKey::new(KeyId(1), &[1; 32]).unwrap())
    }

    #[test]
    fn generates_shown_once_codes() {
        let (plain, set) = generate(
            &RecoveryPolicy::default(),
            &hasher(),
            &LockedRng::seeded(1),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(plain.len(), 10);
        assert_eq!(set.remaining(), 10);
        for code in plain.expose_secret() {
            assert_eq!(code.len(), 14);
            assert_eq!(code.as_bytes()[4], b'-');
            assert!(
                code.chars()
                    .all(|c| c == '-' || ALPHABET.contains(&(c as u8)))
            );
        }
        assert!(!format!("{plain:?} {set:?}").contains(plain.expose_secret()[0]));
    }

    #[test]
    fn finds_any_code_with_folding() {
        let h = hasher();
        let (plain, set) = generate(
            &RecoveryPolicy::default(),
            &h,
            &LockedRng::seeded(2),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let codes = plain.expose_secret();
        assert_eq!(find(&set, codes[7], &h), Lookup::Unused(7));
        let lower = codes[3].to_lowercase().replace('-', " ");
        assert_eq!(find(&set, &lower, &h), Lookup::Unused(3));
        let wide: String = codes[0]
            .chars()
            .map(|c| char::from_u32(u32::from(c) + 0xFEE0).unwrap())
            .collect();
        assert_eq!(find(&set, &wide, &h), Lookup::Unused(0));
        assert_eq!(find(&set, "AAAA-AAAA-AAAA", &h), Lookup::NoMatch);
        assert_eq!(find(&set, "OOOO-OOOO-OOOO", &h), Lookup::NoMatch);
        assert_eq!(find(&set, "", &h), Lookup::NoMatch);
        let mut used = set.clone();
        used.codes[7].used_at = Some(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(find(&used, codes[7], &h), Lookup::Used(7));
    }

    #[test]
    fn codes_under_a_retired_key_are_not_wrong() {
        let old = hasher();
        let (plain, set) = generate(
            &RecoveryPolicy::default(),
            &old,
            &LockedRng::seeded(3),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let codes = plain.expose_secret();
        let new = KeyedHasher::new(HashKey::new(KeyId(2), &[2; 32]).unwrap());
        assert_eq!(find(&set, codes[0], &new), Lookup::RetiredKey(KeyId(1)));
        assert_eq!(
            find(&set, "AAAA-AAAA-AAAA", &new),
            Lookup::RetiredKey(KeyId(1))
        );
        // Input that can't be a code is wrong whatever the key.
        assert_eq!(find(&set, "", &new), Lookup::NoMatch);
        // A match under a held key wins over codes under a retired one.
        let mut mixed = set.clone();
        let ctx = context(&set.salt);
        let raw = normalize(codes[4], set.length).unwrap();
        mixed.codes[4].hash = new.hash(&ctx, &raw);
        assert_eq!(find(&mixed, codes[4], &new), Lookup::Unused(4));
        assert_eq!(find(&mixed, codes[5], &new), Lookup::RetiredKey(KeyId(1)));
        // Used codes under a retired key can't be redeemed anyway.
        let mut spent = set.clone();
        for code in &mut spent.codes {
            code.used_at = Some(OffsetDateTime::UNIX_EPOCH);
        }
        assert_eq!(find(&spent, codes[0], &new), Lookup::NoMatch);
    }

    #[test]
    fn policy_bounds() {
        let p = RecoveryPolicy::default();
        assert!(p.bits() > 59.0 && p.bits() < 60.0);
        assert_eq!(
            p.with_length(8).unwrap_err(),
            RecoveryPolicyError::Length(8)
        );
        assert!(p.with_length(9).unwrap().bits() >= MIN_BITS);
        assert_eq!(p.with_count(0).unwrap_err(), RecoveryPolicyError::Count(0));
    }
}
