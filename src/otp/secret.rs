//! Authenticator seeds.

use std::fmt;

use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

use super::{Algorithm, MIN_SECRET_LEN, OtpError};
use crate::random::{Random, RandomError};
use crate::secret::{SecretBytes, SecretString};

/// The shared seed of an authenticator (the `K` of RFC 4226).
///
/// At least 16 bytes. Redacted in `Debug`, compared in constant time, wiped
/// on drop. The host stores it (sealed, if it can) because codes must be
/// recomputed from it; everything else ninsho stores only as keyed hashes.
#[derive(Clone)]
pub struct OtpSecret(SecretBytes);

impl OtpSecret {
    /// A new random seed of the size `algorithm` wants (20, 32 or 64 bytes).
    ///
    /// # Errors
    /// When the random source fails.
    pub fn generate(algorithm: Algorithm, rng: &dyn Random) -> Result<Self, RandomError> {
        let mut bytes = Zeroizing::new(vec![0u8; algorithm.recommended_secret_len()]);
        rng.fill(&mut bytes)?;
        Ok(Self(SecretBytes::new(std::mem::take(&mut *bytes))))
    }

    /// A seed from raw bytes.
    ///
    /// # Errors
    /// [`OtpError::SecretTooShort`] under 16 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, OtpError> {
        let bytes = SecretBytes::new(bytes);
        if bytes.len() < MIN_SECRET_LEN {
            return Err(OtpError::SecretTooShort { len: bytes.len() });
        }
        Ok(Self(bytes))
    }

    /// A seed from base32 as apps and sites print it: upper or lower case,
    /// with or without `=` padding, grouped with spaces or hyphens.
    ///
    /// # Errors
    /// [`OtpError::InvalidBase32`] for other characters or an impossible
    /// length; [`OtpError::SecretTooShort`] under 16 bytes.
    pub fn from_base32(text: &str) -> Result<Self, OtpError> {
        let mut clean = Zeroizing::new(String::with_capacity(text.len()));
        for c in text.chars() {
            match c {
                'a'..='z' | 'A'..='Z' | '2'..='7' => clean.push(c.to_ascii_uppercase()),
                '=' | '-' => {}
                c if c.is_whitespace() => {}
                _ => return Err(OtpError::InvalidBase32),
            }
        }
        // 8 base32 characters carry 5 bytes; lengths 1, 3 and 6 (mod 8)
        // cannot come from any byte string.
        if matches!(clean.len() % 8, 1 | 3 | 6) {
            return Err(OtpError::InvalidBase32);
        }
        let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &clean)
            .ok_or(OtpError::InvalidBase32)?;
        Self::from_bytes(bytes)
    }

    /// The seed as unpadded upper-case base32, the form apps accept.
    ///
    /// **Security:** show it only to the user enrolling (for manual entry).
    #[must_use]
    pub fn to_base32(&self) -> SecretString {
        SecretString::new(base32::encode(
            base32::Alphabet::Rfc4648 { padding: false },
            self.0.expose_secret(),
        ))
    }

    /// The raw seed bytes.
    ///
    /// **Security:** for sealing and storing the seed; never log them.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a seed has at least 16 bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ConstantTimeEq for OtpSecret {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl fmt::Debug for OtpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::LockedRng;

    #[test]
    fn generate_sizes() {
        let rng = LockedRng::seeded(1);
        for (a, n) in [
            (Algorithm::Sha1, 20),
            (Algorithm::Sha256, 32),
            (Algorithm::Sha512, 64),
        ] {
            assert_eq!(OtpSecret::generate(a, &rng).unwrap().len(), n);
        }
    }

    #[test]
    fn base32_leniency() {
        let want = b"12345678901234567890";
        for text in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ",
        ] {
            assert_eq!(
                OtpSecret::from_base32(text).unwrap().expose_secret(),
                want,
                "{text}"
            );
        }
        // 16 bytes: 26 characters unpadded, 32 with padding.
        let s = OtpSecret::from_bytes(vec![0xA5; 16]).unwrap();
        let b32 = s.to_base32();
        assert_eq!(b32.expose_secret().len(), 26);
        let padded = format!("{}======", b32.expose_secret());
        assert!(bool::from(
            OtpSecret::from_base32(&padded).unwrap().ct_eq(&s)
        ));
    }

    #[test]
    fn base32_errors() {
        assert_eq!(
            OtpSecret::from_base32("GEZDGNB1").unwrap_err(),
            OtpError::InvalidBase32
        );
        assert_eq!(
            OtpSecret::from_base32("GEZDGNBVG").unwrap_err(),
            OtpError::InvalidBase32
        );
        assert_eq!(
            OtpSecret::from_base32("JBSWY3DPEHPK3PXP").unwrap_err(),
            OtpError::SecretTooShort { len: 10 }
        );
        assert_eq!(
            OtpSecret::from_base32("").unwrap_err(),
            OtpError::SecretTooShort { len: 0 }
        );
        assert!(OtpSecret::from_base32("ＧＥＺＤ").is_err());
    }

    #[test]
    fn debug_redacted() {
        let s = OtpSecret::from_bytes(vec![0x41; 20]).unwrap();
        assert_eq!(format!("{s:?}"), "OtpSecret([redacted])");
    }
}
