//! Types that hold secrets.
//!
//! Every secret in ninsho (authenticator seeds, one-time codes, tokens) lives
//! in a type that:
//!
//! - prints as `[redacted]` under `Debug` and has no `Display`, so a secret
//!   never reaches a log line by accident;
//! - has no derived `PartialEq`: equality is a constant-time comparison
//!   through [`subtle`], so timing does not reveal how many bytes matched;
//! - wipes its memory when dropped ([`zeroize`]).
//!
//! Reading the secret is possible, but only through a method whose name says
//! so (`expose_secret`), which makes every use easy to audit.

use std::fmt;

use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

/// Secret bytes: redacted, compared in constant time, wiped on drop.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; the vector's memory is wiped on drop.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret itself.
    ///
    /// **Security:** whatever you do with these bytes escapes ninsho's
    /// protections. Do not log them, do not compare them with `==`, and do
    /// not keep copies longer than needed.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ConstantTimeEq for SecretBytes {
    fn ct_eq(&self, other: &Self) -> Choice {
        // `subtle` returns "not equal" for different lengths without looking at
        // the bytes; the length of a secret is not itself secret here.
        self.0.as_slice().ct_eq(other.0.as_slice())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes([redacted])")
    }
}

/// A secret string (a token, a code as typed): redacted, compared in constant
/// time, wiped on drop.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Takes ownership of `value`; its memory is wiped on drop.
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret itself.
    ///
    /// **Security:** show it only to the person it belongs to (for example an
    /// enrolment URI rendered as a QR code), never to logs.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl ConstantTimeEq for SecretString {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretBytes::new(b"hunter2hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "SecretBytes([redacted])");
        let t = SecretString::new("hunter2".into());
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    #[test]
    fn equality_is_by_value() {
        let a = SecretBytes::new(vec![1, 2, 3]);
        assert!(bool::from(a.ct_eq(&SecretBytes::new(vec![1, 2, 3]))));
        assert!(!bool::from(a.ct_eq(&SecretBytes::new(vec![1, 2, 4]))));
        assert!(!bool::from(a.ct_eq(&SecretBytes::new(vec![1, 2]))));
        let s = SecretString::from("abc".to_string());
        assert!(bool::from(s.ct_eq(&SecretString::new("abc".into()))));
        assert!(!bool::from(s.ct_eq(&SecretString::new("abd".into()))));
        assert_eq!(s.expose_secret(), "abc");
        assert_eq!(a.len(), 3);
        assert!(!a.is_empty());
    }
}
