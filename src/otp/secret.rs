//! Authenticator seeds.

use std::fmt;

use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

use super::{Algorithm, DANGER_MIN_SECRET_LEN, MIN_SECRET_LEN, OtpError};
use crate::random::{Random, RandomError};
use crate::secret::{SecretBytes, SecretString};

/// The shared seed of an authenticator (the `K` of RFC 4226).
///
/// At least 16 bytes (128 bits, RFC 4226 §4), or 10 for an existing seed
/// read on purpose through a `danger_…_allow_short` import; ninsho itself
/// only generates 20, 32 or 64. Redacted in `Debug`, compared in constant
/// time, wiped on drop. The host stores it (sealed, if it can) because codes must be
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
        Self::at_least(bytes, MIN_SECRET_LEN)
    }

    /// A seed from raw bytes, also accepting an existing seed of 10 to 15
    /// bytes (80 to 120 bits) that [`from_bytes`](Self::from_bytes)
    /// refuses.
    ///
    /// For a seed the host stored itself after importing it with
    /// [`danger_from_base32_allow_short`](Self::danger_from_base32_allow_short)
    /// or [`Totp::danger_from_uri_allow_short_secret`](super::Totp::danger_from_uri_allow_short_secret);
    /// the security note there applies.
    ///
    /// # Errors
    /// [`OtpError::SecretTooShort`] under 10 bytes
    /// ([`DANGER_MIN_SECRET_LEN`](super::DANGER_MIN_SECRET_LEN)).
    pub fn danger_from_bytes_allow_short(bytes: Vec<u8>) -> Result<Self, OtpError> {
        Self::at_least(bytes, DANGER_MIN_SECRET_LEN)
    }

    fn at_least(bytes: Vec<u8>, min: usize) -> Result<Self, OtpError> {
        let bytes = SecretBytes::new(bytes);
        if bytes.len() < min {
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
        Self::at_least(decode_base32(text)?, MIN_SECRET_LEN)
    }

    /// A seed from base32, as [`from_base32`](Self::from_base32), but also
    /// accepting an **existing** seed of 80 to 120 bits (16 to 24 base32
    /// characters), such as `JBSWY3DPEHPK3PXP` in Google's key URI
    /// documentation or the 16-character setup keys some services issued.
    ///
    /// Use it only to carry over authenticators users already have, when
    /// moving accounts from a service that issued such seeds. ninsho never
    /// makes one: [`generate`](Self::generate) and enrolment use 20 bytes
    /// or more, and [`TwoFactor`](crate::service::TwoFactor) reads the seeds
    /// it stores with the strict functions.
    ///
    /// # Security
    ///
    /// RFC 4226 §4 requires seeds of at least 128 bits and recommends 160.
    /// The seed is all an attacker needs, and every code leaks a little of
    /// it: with a code someone saw (over a shoulder, on a phishing page, in
    /// a log) and its time step, which is public, they can test candidate
    /// seeds offline, computing the HMAC of that step under each and keeping
    /// those that give the code. A few codes single out one seed, so the
    /// search runs over the whole seed space with no rate limit and no
    /// trace on the service. At 80 bits that is about 2⁸⁰ HMAC-SHA-1
    /// computations, within reach of an attacker with dedicated hardware;
    /// at 128 bits it is not. Move users to a fresh seed
    /// ([`TotpEnrollment`](super::TotpEnrollment)) when you can, and keep
    /// imported ones for the migration only. (pyotp 2.12, for the same
    /// reason, refuses seeds under 112 bits unless told otherwise.)
    ///
    /// ```
    /// use ninsho::otp::{OtpError, OtpSecret};
    ///
    /// // 80 bits: refused by default, read on purpose here.
    /// assert_eq!(
    ///     OtpSecret::from_base32("JBSWY3DPEHPK3PXP").unwrap_err(),
    ///     OtpError::SecretTooShort { len: 10 }
    /// );
    /// let legacy = OtpSecret::danger_from_base32_allow_short("JBSWY3DPEHPK3PXP").unwrap();
    /// assert_eq!(legacy.expose_secret(), b"Hello!\xDE\xAD\xBE\xEF");
    ///
    /// // Under 80 bits stays refused (15 characters: 9 bytes).
    /// assert_eq!(
    ///     OtpSecret::danger_from_base32_allow_short("JBSWY3DPEHPK3PI").unwrap_err(),
    ///     OtpError::SecretTooShort { len: 9 }
    /// );
    /// ```
    ///
    /// # Errors
    /// [`OtpError::InvalidBase32`] as for `from_base32`;
    /// [`OtpError::SecretTooShort`] under 10 bytes
    /// ([`DANGER_MIN_SECRET_LEN`](super::DANGER_MIN_SECRET_LEN)).
    pub fn danger_from_base32_allow_short(text: &str) -> Result<Self, OtpError> {
        Self::at_least(decode_base32(text)?, DANGER_MIN_SECRET_LEN)
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

    /// Always false: a seed has at least 10 bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads base32 as apps and sites print it (see [`OtpSecret::from_base32`]).
fn decode_base32(text: &str) -> Result<Vec<u8>, OtpError> {
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
    base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &clean)
        .ok_or(OtpError::InvalidBase32)
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
    fn short_seeds_only_on_purpose() {
        // 10 to 15 bytes: refused by the ordinary functions, read by the
        // danger ones.
        for len in DANGER_MIN_SECRET_LEN..MIN_SECRET_LEN {
            let bytes = vec![0x5A; len];
            assert_eq!(
                OtpSecret::from_bytes(bytes.clone()).unwrap_err(),
                OtpError::SecretTooShort { len }
            );
            let s = OtpSecret::danger_from_bytes_allow_short(bytes.clone()).unwrap();
            assert_eq!(s.expose_secret(), bytes.as_slice());
            let b32 = s.to_base32();
            assert_eq!(
                OtpSecret::from_base32(b32.expose_secret()).unwrap_err(),
                OtpError::SecretTooShort { len }
            );
            let again = OtpSecret::danger_from_base32_allow_short(b32.expose_secret()).unwrap();
            assert!(bool::from(again.ct_eq(&s)));
        }
        // Under 80 bits: refused either way.
        for len in [0, 1, 9] {
            assert_eq!(
                OtpSecret::danger_from_bytes_allow_short(vec![1; len]).unwrap_err(),
                OtpError::SecretTooShort { len }
            );
        }
        assert_eq!(
            OtpSecret::danger_from_base32_allow_short("GEZDGNBVGY3TQOI").unwrap_err(),
            OtpError::SecretTooShort { len: 9 }
        );
        assert_eq!(
            OtpSecret::danger_from_base32_allow_short("GEZDGNB1").unwrap_err(),
            OtpError::InvalidBase32
        );
        // Longer seeds read the same either way.
        let long = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert!(bool::from(
            OtpSecret::danger_from_base32_allow_short(long)
                .unwrap()
                .ct_eq(&OtpSecret::from_base32(long).unwrap())
        ));
    }

    #[test]
    fn generated_seeds_are_never_short() {
        let rng = LockedRng::seeded(7);
        for a in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert!(a.recommended_secret_len() >= 20);
            for _ in 0..8 {
                assert!(OtpSecret::generate(a, &rng).unwrap().len() >= 20);
            }
        }
    }

    #[test]
    fn debug_redacted() {
        let s = OtpSecret::from_bytes(vec![0x41; 20]).unwrap();
        assert_eq!(format!("{s:?}"), "OtpSecret([redacted])");
    }
}
