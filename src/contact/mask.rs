//! Masking: the forms of a contact that are safe to show on screen and to
//! write to logs.
//!
//! Two families of forms:
//!
//! - **Screen forms** follow a [`MaskPolicy`]: by default a phone number
//!   shows its last two digits (`+81 **-****-**78`) while confirming it asks
//!   for the last four, and an email address shows at most two characters of
//!   its local part while confirming it asks for the whole address. What a
//!   screen shows is always less than what a confirmation asks for.
//! - **Log forms** (`+81 **-****-5678`, `ta*********@example.com`) keep the
//!   last four digits, so support staff can tell numbers apart. They are
//!   what events and `Debug` show, never what a user sees.
//!
//! Phone numbers keep the country code and are grouped `rest-4-4` from the
//! right: `+81 **-****-5678` (international) or `***-****-5678` (national,
//! with the trunk prefix). For Japanese mobile and Tokyo/Osaka numbers this
//! is exactly libphonenumber's grouping with the digits hidden; for other
//! numbers the grouping is generic. The exact libphonenumber formatting
//! costs several microseconds per call (it walks the country's format
//! patterns through a shared regex cache), while this path needs one hash
//! lookup for the country code, and masked forms are made on every code
//! issued. Whatever the policy, at least four digits of the national number
//! stay hidden, so short numbers show fewer digits than asked for.
//!
//! Email addresses keep the first characters of the local part and the
//! whole domain: `ta*********@example.com`.

use rlibphonenumber::enums::Region as LibRegion;
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat};
use serde::{Deserialize, Serialize};

/// Digits of a national number that no masked form shows.
const ALWAYS_HIDDEN: usize = 4;

/// How many trailing digits of a national number of `len` digits the log
/// forms show: four, or fewer so that four stay hidden.
fn visible_tail(len: usize) -> usize {
    4.min(len.saturating_sub(ALWAYS_HIDDEN))
}

/// What screens show of a contact, and what a user types to confirm one
/// before a code is sent to it (Microsoft's masked-contact check).
///
/// The default follows Microsoft: a phone number shows its last **2**
/// digits (`+81 **-****-**78`) and its confirmation asks for the last
/// **4**; an email address shows at most **2** characters of its local
/// part (`ta**@example.com`) and its confirmation asks for the whole
/// address. The constructors refuse a policy whose screen would give the
/// answer away: a confirmation asks for at least
/// [`MIN_DIGITS_UNSEEN`](Self::MIN_DIGITS_UNSEEN) digits more than the
/// screen shows.
///
/// For numbers with few digits the figures shrink: at most
/// [`phone_digits_asked`](Self::phone_digits_asked) digits are asked, never
/// more than the national number has, and at least four digits of it stay
/// hidden on screen, so the screen always shows fewer digits than asked.
/// [`Destination::confirmation_digits`](super::Destination::confirmation_digits)
/// gives the figure for one number.
///
/// It deserialises through the same checks (missing fields take the
/// defaults), so a bad configuration file is an error, not a weak policy.
///
/// ```
/// use ninsho::contact::{MaskPolicy, MaskPolicyError};
/// use ninsho::model::Destination;
///
/// let phone = Destination::phone("+81 90-1234-5678")?;
/// let policy = MaskPolicy::default();
/// assert_eq!(phone.masked_for(&policy), "+81 **-****-**78");
/// assert_eq!(phone.confirmation_digits(&policy), Some(4));
///
/// let stricter = MaskPolicy::new(1, 6)?;
/// assert_eq!(phone.masked_national_for(&stricter), "***-****-***8");
/// assert_eq!(phone.confirmation_digits(&stricter), Some(6));
///
/// // Showing 3 and asking for 4 would leave one digit to guess.
/// assert_eq!(
///     MaskPolicy::new(3, 4),
///     Err(MaskPolicyError::AnswerShown { shown: 3, asked: 4 })
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MaskPolicyFields")]
#[non_exhaustive]
pub struct MaskPolicy {
    phone_digits_shown: u8,
    phone_digits_asked: u8,
    email_chars_shown: u8,
}

impl Default for MaskPolicy {
    fn default() -> Self {
        Self {
            phone_digits_shown: 2,
            phone_digits_asked: 4,
            email_chars_shown: 2,
        }
    }
}

/// A [`MaskPolicy`] that was refused, saying what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum MaskPolicyError {
    /// The confirmation asks for too few or too many digits.
    #[error(
        "a masked-contact confirmation asks for 2 to 8 of a phone number's last digits, \
         not {0}; 4 is usual"
    )]
    DigitsAsked(u8),
    /// The screen shows too much of what the confirmation asks for.
    #[error(
        "a masked phone number showing {shown} of its last digits gives away too much of a \
         confirmation asking for {asked}: show at least 2 digits fewer than asked \
         (Microsoft shows 2 and asks for 4)"
    )]
    AnswerShown {
        /// Digits the screen would show.
        shown: u8,
        /// Digits the confirmation would ask for.
        asked: u8,
    },
    /// An email address would show too much of its local part.
    #[error(
        "a masked email address shows at most 4 characters of its local part, not {0}; \
         2 is usual"
    )]
    EmailCharsShown(u8),
}

impl MaskPolicy {
    /// The fewest last digits of a phone number a confirmation asks for.
    pub const MIN_DIGITS_ASKED: u8 = 2;
    /// The most last digits of a phone number a confirmation asks for.
    pub const MAX_DIGITS_ASKED: u8 = 8;
    /// How many more digits a confirmation asks for than the screen shows,
    /// at least: a guess then succeeds at most once in a hundred tries, and
    /// every wrong one counts against the account's back-off.
    pub const MIN_DIGITS_UNSEEN: u8 = 2;
    /// The most characters of an email address's local part shown.
    pub const MAX_EMAIL_CHARS_SHOWN: u8 = 4;

    /// A policy showing a phone number's last `phone_digits_shown` digits
    /// and asking for its last `phone_digits_asked`; email addresses as by
    /// default.
    ///
    /// # Errors
    /// [`MaskPolicyError::DigitsAsked`] when `phone_digits_asked` is not in
    /// [`MIN_DIGITS_ASKED`](Self::MIN_DIGITS_ASKED)`..=`[`MAX_DIGITS_ASKED`](Self::MAX_DIGITS_ASKED);
    /// [`MaskPolicyError::AnswerShown`] when it is not at least
    /// [`MIN_DIGITS_UNSEEN`](Self::MIN_DIGITS_UNSEEN) more than
    /// `phone_digits_shown`.
    pub fn new(phone_digits_shown: u8, phone_digits_asked: u8) -> Result<Self, MaskPolicyError> {
        if !(Self::MIN_DIGITS_ASKED..=Self::MAX_DIGITS_ASKED).contains(&phone_digits_asked) {
            return Err(MaskPolicyError::DigitsAsked(phone_digits_asked));
        }
        if phone_digits_asked - Self::MIN_DIGITS_UNSEEN < phone_digits_shown {
            return Err(MaskPolicyError::AnswerShown {
                shown: phone_digits_shown,
                asked: phone_digits_asked,
            });
        }
        Ok(Self {
            phone_digits_shown,
            phone_digits_asked,
            ..Self::default()
        })
    }

    /// Shows `chars` characters of an email address's local part (default
    /// 2; at least two always stay hidden). A confirmation always asks for
    /// the whole address.
    ///
    /// # Errors
    /// [`MaskPolicyError::EmailCharsShown`] above
    /// [`MAX_EMAIL_CHARS_SHOWN`](Self::MAX_EMAIL_CHARS_SHOWN).
    pub fn with_email_chars_shown(mut self, chars: u8) -> Result<Self, MaskPolicyError> {
        if chars > Self::MAX_EMAIL_CHARS_SHOWN {
            return Err(MaskPolicyError::EmailCharsShown(chars));
        }
        self.email_chars_shown = chars;
        Ok(self)
    }

    /// How many of a phone number's last digits screens show (default 2).
    #[must_use]
    pub fn phone_digits_shown(&self) -> u8 {
        self.phone_digits_shown
    }

    /// How many of a phone number's last digits a confirmation asks for
    /// (default 4).
    #[must_use]
    pub fn phone_digits_asked(&self) -> u8 {
        self.phone_digits_asked
    }

    /// How many characters of an email address's local part screens show
    /// (default 2).
    #[must_use]
    pub fn email_chars_shown(&self) -> u8 {
        self.email_chars_shown
    }

    /// Trailing digits shown of a national number of `len` digits.
    fn digits_shown(&self, len: usize) -> usize {
        usize::from(self.phone_digits_shown).min(len.saturating_sub(ALWAYS_HIDDEN))
    }

    /// Trailing digits asked of a national number of `len` digits.
    fn digits_asked(&self, len: usize) -> usize {
        usize::from(self.phone_digits_asked).min(len)
    }
}

/// What a [`MaskPolicy`] deserialises from, before its checks.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MaskPolicyFields {
    phone_digits_shown: u8,
    phone_digits_asked: u8,
    email_chars_shown: u8,
}

impl Default for MaskPolicyFields {
    fn default() -> Self {
        let d = MaskPolicy::default();
        Self {
            phone_digits_shown: d.phone_digits_shown,
            phone_digits_asked: d.phone_digits_asked,
            email_chars_shown: d.email_chars_shown,
        }
    }
}

impl TryFrom<MaskPolicyFields> for MaskPolicy {
    type Error = MaskPolicyError;

    fn try_from(f: MaskPolicyFields) -> Result<Self, Self::Error> {
        Self::new(f.phone_digits_shown, f.phone_digits_asked)?
            .with_email_chars_shown(f.email_chars_shown)
    }
}

/// `+819012345678` → `("81", "9012345678")`: splits an E.164 string into
/// its country calling code and national significant number, using the
/// codes libphonenumber knows (they are prefix-free, so the first hit is the
/// only one). `None` if the string is not `+` and digits with a known code.
pub(crate) fn split_e164(e164: &str) -> Option<(&str, &str)> {
    let digits = e164.strip_prefix('+')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    (1..=3.min(digits.len().saturating_sub(1))).find_map(|len| {
        let (cc, nsn) = digits.split_at(len);
        let code: i32 = cc.parse().ok()?;
        main_region(code).map(|_| (cc, nsn))
    })
}

/// The digits of a number's national form as libphonenumber writes it:
/// the trunk prefix where the country dials one before the number (Japan's
/// and the UK's `0`, not the US's `1`), then the national number
/// (`09012345678`). Falls back to the national number alone.
fn national_digits(e164: &str, nsn: &str) -> String {
    PHONE_NUMBER_UTIL
        .parse(e164, None)
        .ok()
        .map(|number| {
            number
                .format_as(PhoneNumberFormat::National)
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|digits| digits.ends_with(nsn))
        .unwrap_or_else(|| nsn.to_owned())
}

/// The main region of a country calling code libphonenumber knows
/// (`World` for the non-geographic codes).
fn main_region(code: i32) -> Option<LibRegion> {
    PHONE_NUMBER_UTIL.get_region_for_country_code(code)
}

/// `+819012345678` → `+81 **-****-5678` (the log form).
pub(crate) fn mask_phone(e164: &str) -> String {
    international(e164, visible_tail)
}

/// `+819012345678` → `***-****-5678` (the log form): the digits of the
/// national form (see [`national_digits`]).
pub(crate) fn mask_phone_national(e164: &str) -> String {
    national(e164, visible_tail)
}

/// `+819012345678` → `+81 **-****-**78` with the default policy.
pub(crate) fn mask_phone_for(e164: &str, policy: &MaskPolicy) -> String {
    international(e164, |len| policy.digits_shown(len))
}

/// `+819012345678` → `***-****-**78` with the default policy.
pub(crate) fn mask_phone_national_for(e164: &str, policy: &MaskPolicy) -> String {
    national(e164, |len| policy.digits_shown(len))
}

/// The international masked form showing `tail(len)` trailing digits of a
/// national number of `len` digits.
fn international(e164: &str, tail: impl Fn(usize) -> usize) -> String {
    match split_e164(e164) {
        Some((cc, nsn)) => {
            let masked = mask_digits(nsn, tail(nsn.len()));
            format!("+{cc} {}", group(&masked))
        }
        None => mask_opaque(e164, tail),
    }
}

/// The national masked form showing `tail(len)` trailing digits.
fn national(e164: &str, tail: impl Fn(usize) -> usize) -> String {
    let Some((_, nsn)) = split_e164(e164) else {
        return mask_opaque(e164, tail);
    };
    let national = national_digits(e164, nsn);
    group(&mask_digits(&national, tail(nsn.len())))
}

/// The last digits of a phone number its confirmation asks for: `5678` for
/// `+819012345678` by default. `None` for a stored address that is not
/// well-formed E.164, which can't be confirmed.
pub(crate) fn phone_answer<'a>(e164: &'a str, policy: &MaskPolicy) -> Option<&'a str> {
    let (_, nsn) = split_e164(e164)?;
    nsn.get(nsn.len() - policy.digits_asked(nsn.len())..)
        .filter(|answer| !answer.is_empty())
}

/// Every character but the last `visible` replaced by `*`.
fn mask_digits(digits: &str, visible: usize) -> String {
    let count = digits.chars().count();
    let hidden = count.saturating_sub(visible);
    digits
        .chars()
        .enumerate()
        .map(|(i, c)| if i < hidden { '*' } else { c })
        .collect()
}

/// Groups `rest-4-4` from the right: `**********` → `**-****-****`.
fn group(masked: &str) -> String {
    let chars: Vec<char> = masked.chars().collect();
    let tail_start = chars.len().saturating_sub(4);
    let mid_start = tail_start.saturating_sub(4);
    let mut out = String::with_capacity(chars.len() + 2);
    for part in [
        &chars[..mid_start],
        &chars[mid_start..tail_start],
        &chars[tail_start..],
    ] {
        if part.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.extend(part.iter());
    }
    out
}

/// A stored address that is not a well-formed E.164 number (only possible
/// through deserialisation of foreign data): hide all but a short tail.
fn mask_opaque(address: &str, tail: impl Fn(usize) -> usize) -> String {
    let count = address.chars().count();
    mask_digits(address, tail(count))
}

/// `taro.yamada@example.com` → `ta*********@example.com` (the log form).
pub(crate) fn mask_email(address: &str) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let shown = if local.chars().count() > 2 { 2 } else { 1 };
    let head: String = local.chars().take(shown).collect();
    let hidden = local.chars().count().saturating_sub(shown).max(1);
    format!("{head}{}@{domain}", "*".repeat(hidden))
}

/// An address whose kind is not known (a gateway message's recipient, a
/// claim key), masked by its shape: with an `@` as an email address,
/// otherwise as a phone number (anything not E.164 keeps only a short tail).
pub(crate) fn mask_address(address: &str) -> String {
    if address.contains('@') {
        mask_email(address)
    } else {
        mask_phone(address)
    }
}

/// `taro.yamada@example.com` → `ta*********@example.com` with the default
/// policy; at least two characters of the local part stay hidden
/// (`bob@b.jp` → `b**@b.jp`, `a@b.jp` → `*@b.jp`).
pub(crate) fn mask_email_for(address: &str, policy: &MaskPolicy) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let count = local.chars().count();
    // At least two characters stay hidden: a short local part must not
    // leave a one-character guess between the screen and the answer.
    let shown = usize::from(policy.email_chars_shown).min(count.saturating_sub(2));
    let head: String = local.chars().take(shown).collect();
    let hidden = count.saturating_sub(shown).max(1);
    format!("{head}{}@{domain}", "*".repeat(hidden))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_country_codes() {
        assert_eq!(split_e164("+819012345678"), Some(("81", "9012345678")));
        assert_eq!(split_e164("+14155552671"), Some(("1", "4155552671")));
        assert_eq!(split_e164("+8613800138000"), Some(("86", "13800138000")));
        assert_eq!(split_e164("+88161234567"), Some(("881", "61234567")));
        for bad in [
            "",
            "+",
            "+8",
            "819012345678",
            "+81 90",
            "+999123456",
            "+８１",
        ] {
            assert_eq!(split_e164(bad), None, "{bad}");
        }
    }

    #[test]
    fn phone_masks() {
        let cases = [
            ("+819012345678", "+81 **-****-5678", "***-****-5678"),
            ("+81312345678", "+81 *-****-5678", "**-****-5678"),
            ("+81120123456", "+81 *-****-3456", "**-****-3456"),
            ("+14155552671", "+1 **-****-2671", "**-****-2671"),
            ("+8613800138000", "+86 ***-****-8000", "***-****-8000"),
            ("+447911123456", "+44 **-****-3456", "***-****-3456"),
            // Short national numbers keep at least four digits hidden.
            ("+3545512345", "+354 ***-*345", "***-*345"),
            ("+6834002", "+683 ****", "****"),
        ];
        for (e164, intl, national) in cases {
            assert_eq!(mask_phone(e164), intl, "{e164}");
            assert_eq!(mask_phone_national(e164), national, "{e164}");
        }
    }

    #[test]
    fn opaque_addresses_never_panic_and_stay_hidden() {
        assert_eq!(mask_phone("+éé9012345678"), "*********5678");
        assert_eq!(mask_phone(""), "");
        assert_eq!(mask_phone_national("é"), "*");
        assert!(!mask_phone("nonsense-9012345678").contains("901234"));
    }

    #[test]
    fn addresses_are_masked_by_shape() {
        assert_eq!(mask_address("+819012345678"), "+81 **-****-5678");
        assert_eq!(
            mask_address("taro.yamada@example.com"),
            "ta*********@example.com"
        );
        // Not E.164: only a short tail shows.
        assert_eq!(mask_address("09012345678"), "*******5678");
        assert_eq!(mask_address(""), "");
    }

    #[test]
    fn email_masks() {
        assert_eq!(
            mask_email("taro.yamada@example.com"),
            "ta*********@example.com"
        );
        assert_eq!(mask_email("ab@b.jp"), "a*@b.jp");
        assert_eq!(mask_email("a@b.jp"), "a*@b.jp");
    }

    #[test]
    fn policy_forms_show_fewer_digits_than_asked() {
        let p = MaskPolicy::default();
        let cases = [
            // e164, international, national, answer
            ("+819012345678", "+81 **-****-**78", "***-****-**78", "5678"),
            ("+81312345678", "+81 *-****-**78", "**-****-**78", "5678"),
            ("+14155552671", "+1 **-****-**71", "**-****-**71", "2671"),
            // Seven digits: two shown, four asked, at least four hidden.
            ("+3545512345", "+354 ***-**45", "***-**45", "2345"),
            // Five digits: one shown.
            ("+29012345", "+290 *-***5", "*-***5", "2345"),
            // Four digits: nothing shown, the whole number asked.
            ("+6834002", "+683 ****", "****", "4002"),
        ];
        for (e164, intl, national, answer) in cases {
            assert_eq!(mask_phone_for(e164, &p), intl, "{e164}");
            assert_eq!(mask_phone_national_for(e164, &p), national, "{e164}");
            assert_eq!(phone_answer(e164, &p), Some(answer), "{e164}");
        }
        let wide = MaskPolicy::new(6, 8).unwrap();
        assert_eq!(mask_phone_for("+819012345678", &wide), "+81 **-**34-5678");
        assert_eq!(phone_answer("+819012345678", &wide), Some("12345678"));
        assert_eq!(phone_answer("+6834002", &wide), Some("4002"));
        assert_eq!(mask_phone_for("+6834002", &wide), "+683 ****");
    }

    #[test]
    fn opaque_addresses_cannot_be_confirmed() {
        let p = MaskPolicy::default();
        for bad in ["", "+", "+éé9012345678", "9012345678"] {
            assert_eq!(phone_answer(bad, &p), None, "{bad}");
            let _ = (mask_phone_for(bad, &p), mask_phone_national_for(bad, &p));
        }
        assert_eq!(mask_phone_for("+éé9012345678", &p), "***********78");
    }

    #[test]
    fn policy_email_forms_hide_part_of_the_local_part() {
        let p = MaskPolicy::default();
        assert_eq!(
            mask_email_for("taro.yamada@example.com", &p),
            "ta*********@example.com"
        );
        // At least two characters stay hidden.
        assert_eq!(mask_email_for("bob@b.jp", &p), "b**@b.jp");
        assert_eq!(mask_email_for("ab@b.jp", &p), "**@b.jp");
        assert_eq!(mask_email_for("a@b.jp", &p), "*@b.jp");
        assert_eq!(mask_email_for("", &p), "*@");
        let none = p.with_email_chars_shown(0).unwrap();
        assert_eq!(
            mask_email_for("taro@example.com", &none),
            "****@example.com"
        );
        let four = p.with_email_chars_shown(4).unwrap();
        assert_eq!(
            mask_email_for("taro@example.com", &four),
            "ta**@example.com"
        );
    }

    #[test]
    fn policy_checks() {
        assert_eq!(MaskPolicy::new(2, 4), Ok(MaskPolicy::default()));
        assert!(MaskPolicy::new(0, 2).is_ok());
        assert!(MaskPolicy::new(6, 8).is_ok());
        for (shown, asked) in [(4, 4), (3, 4), (5, 4), (1, 2)] {
            assert_eq!(
                MaskPolicy::new(shown, asked),
                Err(MaskPolicyError::AnswerShown { shown, asked })
            );
        }
        for asked in [0, 1, 9, 255] {
            assert_eq!(
                MaskPolicy::new(0, asked),
                Err(MaskPolicyError::DigitsAsked(asked))
            );
        }
        assert_eq!(
            MaskPolicy::default().with_email_chars_shown(5),
            Err(MaskPolicyError::EmailCharsShown(5))
        );
    }

    #[test]
    fn policy_deserialises_through_its_checks() {
        let p: MaskPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, MaskPolicy::default());
        let p: MaskPolicy = serde_json::from_str(r#"{"phone_digits_asked":6}"#).unwrap();
        assert_eq!((p.phone_digits_shown(), p.phone_digits_asked()), (2, 6));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<MaskPolicy>(&json).unwrap(), p);
        for bad in [
            r#"{"phone_digits_shown":4}"#,
            r#"{"phone_digits_asked":1}"#,
            r#"{"email_chars_shown":9}"#,
            r#"{"phone_digits_show":1}"#,
        ] {
            assert!(serde_json::from_str::<MaskPolicy>(bad).is_err(), "{bad}");
        }
    }
}
