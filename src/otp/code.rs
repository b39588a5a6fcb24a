//! A one-time code value and the parser for what users type.

use std::fmt;

use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroize;

/// A numeric one-time code.
///
/// `Display` prints the zero-padded digits, because showing or sending the
/// code is its purpose (in a test, a message, a console demo). `Debug` is
/// redacted, equality is constant time, and the value is wiped on drop.
/// Making one allocates nothing.
#[derive(Clone)]
pub struct OtpCode {
    value: u64,
    digits: u8,
}

impl OtpCode {
    pub(crate) fn new(value: u64, digits: u8) -> Self {
        Self { value, digits }
    }

    pub(crate) fn value(&self) -> u64 {
        self.value
    }

    /// Number of digits, leading zeros included.
    #[must_use]
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// Whether `input`, as a user typed it, is this code (constant time).
    ///
    /// Spaces, hyphens and full-width digits are accepted as in [`parse`
    /// rules](crate::otp) for verification.
    #[must_use]
    pub fn matches(&self, input: &str) -> bool {
        parse_code(input, self.digits).is_some_and(|v| bool::from(v.ct_eq(&self.value)))
    }
}

impl ConstantTimeEq for OtpCode {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.value.ct_eq(&other.value) & self.digits.ct_eq(&other.digits)
    }
}

impl fmt::Display for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0width$}",
            self.value,
            width = usize::from(self.digits)
        )
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpCode")
            .field("value", &"[redacted]")
            .field("digits", &self.digits)
            .finish()
    }
}

impl Drop for OtpCode {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

/// Reads a code as users type it: exactly `digits` decimal digits, ASCII or
/// full-width (`１２３４５６`), with any whitespace and hyphen-like
/// characters (`-`, `‐`, `－`, `ー`, `―`, …) ignored. Anything else, or the
/// wrong number of digits, gives `None`. Allocates nothing.
pub(crate) fn parse_code(input: &str, digits: u8) -> Option<u64> {
    let mut value: u64 = 0;
    let mut count: u8 = 0;
    for c in input.chars() {
        let d = match c {
            '0'..='9' => u32::from(c) - u32::from('0'),
            '０'..='９' => u32::from(c) - u32::from('０'),
            c if is_separator(c) => continue,
            _ => return None,
        };
        count = count.checked_add(1)?;
        if count > digits {
            return None;
        }
        value = value * 10 + u64::from(d);
    }
    (count == digits).then_some(value)
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}' | '\u{FF0D}' | '\u{FF70}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_pads() {
        assert_eq!(OtpCode::new(42, 6).to_string(), "000042");
        assert_eq!(OtpCode::new(1_234_567_890, 10).to_string(), "1234567890");
        assert!(!format!("{:?}", OtpCode::new(123_456, 6)).contains("123456"));
    }

    #[test]
    fn parses_what_people_type() {
        assert_eq!(parse_code("123456", 6), Some(123_456));
        assert_eq!(parse_code(" 123 456 ", 6), Some(123_456));
        assert_eq!(parse_code("123-456", 6), Some(123_456));
        assert_eq!(parse_code("１２３４５６", 6), Some(123_456));
        assert_eq!(parse_code("１２３ー４５６", 6), Some(123_456));
        assert_eq!(parse_code("\t012345\n", 6), Some(12_345));
        assert_eq!(parse_code("12345", 6), None);
        assert_eq!(parse_code("1234567", 6), None);
        assert_eq!(parse_code("12345a", 6), None);
        assert_eq!(parse_code("", 6), None);
        assert_eq!(parse_code("9999999999", 10), Some(9_999_999_999));
        assert_eq!(parse_code(&"1".repeat(400), 10), None);
    }

    #[test]
    fn matches_is_exact() {
        let c = OtpCode::new(7, 6);
        assert!(c.matches("000007"));
        assert!(!c.matches("000008"));
        assert!(!c.matches("7"));
        assert!(bool::from(c.ct_eq(&OtpCode::new(7, 6))));
        assert!(!bool::from(c.ct_eq(&OtpCode::new(7, 8))));
    }
}
