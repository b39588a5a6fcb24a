//! The one-time-code engine: pure rules, no I/O.
//!
//! Generating codes, hashing them for storage, and deciding what a typed
//! code means for a stored challenge. The service's async layer reads and
//! writes the records; everything it decides comes from
//! here, so the rules can be tested and benchmarked without a store.

use serde::{Deserialize, Serialize};
use subtle::{Choice, ConstantTimeEq};
use time::{Duration, OffsetDateTime};

use crate::error::{CodeRefusal, Refusal};
use crate::hash::{KeyId, KeyedHash, KeyedHasher, Tag};
use crate::model::{
    AccountId, ChallengeId, ChallengeRecord, ChallengeState, Channel, Destination, LinkRecord,
    Locale, Purpose,
};
use crate::otp::{OtpCode, parse_code};
use crate::random::{Random, RandomError, uniform_below_u64};

pub(crate) mod link;
pub(crate) mod resend;

/// Rules for one-time codes and links (every one a knob with a default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodePolicy {
    digits: u8,
    /// How long each code works (default 10 minutes, the NIST SP 800-63B
    /// maximum for out-of-band codes).
    pub lifetime: Duration,
    /// Wrong codes allowed per challenge, across resends (default 5).
    pub max_attempts: u32,
    /// Wait between sends of one challenge (default 60 s), counted from the
    /// last send the gateway did not fail transiently: after a timeout or
    /// an outage nothing is on its way, so "resend" works at once.
    pub resend_cooldown: Duration,
    /// Sends per challenge, the first included (default 5). Sends the
    /// gateway failed count too.
    pub max_sends: u32,
    /// How long a one-time link works (default 10 minutes).
    pub link_lifetime: Duration,
}

impl Default for CodePolicy {
    fn default() -> Self {
        Self {
            digits: 6,
            lifetime: Duration::minutes(10),
            max_attempts: 5,
            resend_cooldown: Duration::seconds(60),
            max_sends: 5,
            link_lifetime: Duration::minutes(10),
        }
    }
}

/// A code length outside what the policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "one-time codes have 6 to 10 digits (4 or 5 only through `dangerous_short_digits`), not {0}"
)]
pub struct DigitsError(pub u8);

impl CodePolicy {
    /// Digits per code.
    #[must_use]
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// Sets the code length, 6 to 10.
    ///
    /// # Errors
    /// [`DigitsError`] outside 6..=10.
    pub fn with_digits(mut self, digits: u8) -> Result<Self, DigitsError> {
        if !(6..=10).contains(&digits) {
            return Err(DigitsError(digits));
        }
        self.digits = digits;
        Ok(self)
    }

    /// **Dangerous:** allows 4- or 5-digit codes, which an attacker guesses
    /// 100 or 10 times more easily. Only for channels where the host has
    /// other strong limits.
    ///
    /// # Errors
    /// [`DigitsError`] outside 4..=10.
    pub fn dangerous_short_digits(mut self, digits: u8) -> Result<Self, DigitsError> {
        if !(4..=10).contains(&digits) {
            return Err(DigitsError(digits));
        }
        self.digits = digits;
        Ok(self)
    }
}

/// A fresh uniformly random code of `digits` digits.
///
/// # Errors
/// When the random source fails.
pub fn generate_code(rng: &dyn Random, digits: u8) -> Result<OtpCode, RandomError> {
    let modulus = 10u64.pow(u32::from(digits.min(19)));
    Ok(OtpCode::new(uniform_below_u64(rng, modulus)?, digits))
}

/// The hashing context of a challenge's codes: binds each hash to its
/// challenge, so a hash copied to another record never matches.
pub(crate) fn code_context(id: &ChallengeId) -> [u8; 21] {
    let mut ctx = [0u8; 21];
    ctx[..5].copy_from_slice(b"code:");
    ctx[5..].copy_from_slice(id.as_bytes());
    ctx
}

/// The hashing context of a challenge's link token.
pub(crate) fn link_context(id: &ChallengeId) -> [u8; 21] {
    let mut ctx = code_context(id);
    ctx[..5].copy_from_slice(b"link:");
    ctx
}

/// ASCII digits of `value`, zero-padded to `digits`, on the stack.
pub(crate) fn ascii_code(value: u64, digits: u8) -> ([u8; 20], usize) {
    let mut out = [b'0'; 20];
    let len = usize::from(digits.min(20));
    let mut v = value;
    for slot in out[..len].iter_mut().rev() {
        // `v % 10` is a single decimal digit.
        *slot = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
    }
    (out, len)
}

/// Hashes a code for storage.
pub(crate) fn hash_code(hasher: &KeyedHasher, id: &ChallengeId, code: &OtpCode) -> KeyedHash {
    let (buf, len) = ascii_code(code.value(), code.digits());
    hasher.hash(&code_context(id), &buf[..len])
}

/// Who a new challenge is for and where it goes: what the caller decided
/// before any record exists.
pub(crate) struct NewChallenge {
    /// Its id (random).
    pub(crate) id: ChallengeId,
    /// Why it is sent.
    pub(crate) purpose: Purpose,
    /// The account, if any.
    pub(crate) account: Option<AccountId>,
    /// Where it goes.
    pub(crate) destination: Destination,
    /// The language of its messages, for every send.
    pub(crate) locale: Locale,
    /// The delivery plan (first channel first); never empty.
    pub(crate) channels: Vec<Channel>,
    /// The account's security epoch it is bound to, if any.
    pub(crate) epoch: Option<u64>,
    /// The incarnation of the account's record it is issued for (0: none).
    pub(crate) incarnation: u64,
}

impl NewChallenge {
    fn record(self, policy: &CodePolicy, now: OffsetDateTime) -> ChallengeRecord {
        ChallengeRecord {
            id: self.id,
            version: 0,
            purpose: self.purpose,
            account: self.account,
            destination: self.destination,
            locale: self.locale,
            channels: self.channels,
            channel_index: 0,
            state: ChallengeState::Pending,
            digits: 0,
            failed_attempts: 0,
            max_attempts: policy.max_attempts,
            sends: Vec::new(),
            delivery_attempts: 0,
            link: None,
            created_at: now,
            expires_at: now,
            consumed_by: None,
            epoch: self.epoch,
            incarnation: self.incarnation,
        }
    }

    /// The record of a one-time-code challenge whose first code, of
    /// `digits` digits and hashed as `code`, goes out on the plan's first
    /// channel at `now`.
    pub(crate) fn with_code(
        self,
        code: KeyedHash,
        digits: u8,
        policy: &CodePolicy,
        now: OffsetDateTime,
    ) -> ChallengeRecord {
        let mut record = self.record(policy, now);
        record.digits = digits;
        resend::add_send(&mut record, 0, code, policy, now);
        record
    }

    /// The record of a one-time link, sent once at `now` and valid for the
    /// policy's link lifetime. Links are never resent, and carry no epoch.
    pub(crate) fn with_link(
        self,
        link: LinkRecord,
        policy: &CodePolicy,
        now: OffsetDateTime,
    ) -> ChallengeRecord {
        let mut record = self.record(policy, now);
        record.epoch = None;
        record.delivery_attempts = 1;
        record.expires_at = now.saturating_add(policy.link_lifetime);
        record.link = Some(link);
        record
    }
}

/// What a typed code means for a challenge, and the record to write.
#[derive(Debug)]
pub(crate) enum Decision {
    /// The code is right: write `record` (consumed) with compare-and-set.
    Accept(ChallengeRecord),
    /// The code is wrong: write `record` (one more failure) with
    /// compare-and-set, then refuse with the refusal.
    Reject(ChallengeRecord, Refusal),
    /// Refuse without writing anything.
    Refuse(Refusal),
    /// No live code matched, and a live code was hashed with a key the
    /// hasher no longer holds, so the input may be that code: neither right
    /// nor wrong. Refund the guess and report the retired key. When live
    /// codes under keys the hasher holds were compared too, the record
    /// (one more failure on the challenge) is to be written first, so that
    /// those codes stay bounded by the challenge's attempts.
    RetiredKey(KeyId, Option<ChallengeRecord>),
}

/// Why a code typed for this challenge would be refused without being
/// compared at all (used, exhausted, expired, or not a code challenge);
/// `None` when it would be compared. Such an attempt is no guess, so it is
/// not counted against the account.
pub(crate) fn refusal_before_check(
    record: &ChallengeRecord,
    now: OffsetDateTime,
) -> Option<Refusal> {
    match record.state {
        ChallengeState::Pending => {}
        ChallengeState::Exhausted => return Some(Refusal::Code(CodeRefusal::TooManyAttempts)),
        _ => return Some(Refusal::Code(CodeRefusal::AlreadyUsed)),
    }
    if record.link.is_some() {
        return Some(Refusal::Code(CodeRefusal::Unknown));
    }
    if now >= record.expires_at || record.sends.iter().all(|s| now >= s.expires_at) {
        return Some(Refusal::Code(CodeRefusal::Expired));
    }
    None
}

/// Decides a verification attempt. Every live code of the challenge is
/// compared in constant time, with one HMAC per hashing key.
pub(crate) fn decide(
    record: &ChallengeRecord,
    input: &str,
    purpose: &Purpose,
    destination: &Destination,
    hasher: &KeyedHasher,
    now: OffsetDateTime,
) -> Decision {
    if let Some(reason) = refusal_before_check(record, now) {
        return Decision::Refuse(reason);
    }

    let context_ok = &record.purpose == purpose && &record.destination == destination;
    let live = parse_code(input, record.digits)
        .map(|value| matches_live_code(record, value, hasher, now))
        .unwrap_or_default();

    let mut next = record.clone();
    next.version = record.version.wrapping_add(1);
    if context_ok && bool::from(live.found) {
        next.state = ChallengeState::Consumed;
        return Decision::Accept(next);
    }
    next.failed_attempts = record.failed_attempts.saturating_add(1);
    if next.failed_attempts >= record.max_attempts {
        next.state = ChallengeState::Exhausted;
    }
    if context_ok && let Some(key_id) = live.retired {
        return Decision::RetiredKey(key_id, live.compared.then_some(next));
    }
    let refusal = if !context_ok {
        if &record.purpose == purpose {
            Refusal::Code(CodeRefusal::DestinationMismatch)
        } else {
            Refusal::Code(CodeRefusal::PurposeMismatch)
        }
    } else {
        let left = record.max_attempts.saturating_sub(next.failed_attempts);
        if left == 0 {
            Refusal::Code(CodeRefusal::TooManyAttempts)
        } else {
            Refusal::Code(CodeRefusal::WrongCode {
                attempts_left: Some(left),
            })
        }
    };
    Decision::Reject(next, refusal)
}

/// Whether `input` is the code of one of the challenge's live sends, for
/// `purpose` and `destination`, whatever the challenge's state: used to
/// recognise a retry of the very code that consumed it.
///
/// # Errors
/// The id of a retired key when no live code matched and a live code was
/// hashed with that key: the input may be that code.
pub(crate) fn is_live_code(
    record: &ChallengeRecord,
    input: &str,
    purpose: &Purpose,
    destination: &Destination,
    hasher: &KeyedHasher,
    now: OffsetDateTime,
) -> Result<bool, KeyId> {
    let context_ok = &record.purpose == purpose && &record.destination == destination;
    let live = parse_code(input, record.digits)
        .map(|value| matches_live_code(record, value, hasher, now))
        .unwrap_or_default();
    if context_ok && bool::from(live.found) {
        return Ok(true);
    }
    match live.retired {
        Some(key_id) if context_ok => Err(key_id),
        _ => Ok(false),
    }
}

/// What comparing a typed code with the live codes of a challenge found.
struct LiveMatch {
    /// A live code matched (under a key the hasher holds).
    found: Choice,
    /// The key of a live code that could not be compared: the hasher no
    /// longer holds it.
    retired: Option<KeyId>,
    /// Whether any live code was compared at all.
    compared: bool,
}

impl Default for LiveMatch {
    /// Nothing compared, nothing found (input that is not a code).
    fn default() -> Self {
        Self {
            found: Choice::from(0),
            retired: None,
            compared: false,
        }
    }
}

fn matches_live_code(
    record: &ChallengeRecord,
    value: u64,
    hasher: &KeyedHasher,
    now: OffsetDateTime,
) -> LiveMatch {
    let (buf, len) = ascii_code(value, record.digits);
    let ctx = code_context(&record.id);
    let mut cached: Option<(KeyId, Tag)> = None;
    let mut out = LiveMatch::default();
    for send in &record.sends {
        // Expiry and key ids are not secret: skipping on them leaks nothing.
        let is_live = now < send.expires_at;
        let tag = match cached {
            Some((id, tag)) if id == send.code.key_id => Some(tag),
            _ => hasher.tag_with(send.code.key_id, &ctx, &buf[..len]).ok(),
        };
        let Some(tag) = tag else {
            // A retired key: this send can't be compared, so it neither
            // matches nor proves the input wrong.
            if is_live && out.retired.is_none() {
                out.retired = Some(send.code.key_id);
            }
            continue;
        };
        cached = Some((send.code.key_id, tag));
        out.compared |= is_live;
        out.found |= tag.ct_eq(&send.code.tag) & Choice::from(u8::from(is_live));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LockedRng;

    #[test]
    fn codes_are_uniform_and_padded() {
        let rng = LockedRng::seeded(9);
        let mut first_digit = [0u32; 10];
        for _ in 0..10_000 {
            let c = generate_code(&rng, 6).unwrap();
            let s = c.to_string();
            assert_eq!(s.len(), 6);
            first_digit[usize::from(s.as_bytes()[0] - b'0')] += 1;
        }
        // Each leading digit ~1000 times; a modulo bias would skew low digits.
        assert!(
            first_digit.iter().all(|&n| (850..1150).contains(&n)),
            "{first_digit:?}"
        );
        assert_eq!(generate_code(&rng, 10).unwrap().to_string().len(), 10);
    }

    #[test]
    fn ascii_code_pads() {
        let (b, n) = ascii_code(42, 6);
        assert_eq!(&b[..n], b"000042");
        let (b, n) = ascii_code(9_999_999_999, 10);
        assert_eq!(&b[..n], b"9999999999");
    }

    #[test]
    fn digits_policy() {
        let p = CodePolicy::default();
        assert_eq!(p.digits(), 6);
        assert_eq!(p.with_digits(5).unwrap_err(), DigitsError(5));
        assert_eq!(p.with_digits(10).unwrap().digits(), 10);
        assert_eq!(p.dangerous_short_digits(4).unwrap().digits(), 4);
        assert!(p.dangerous_short_digits(3).is_err());
    }
}
