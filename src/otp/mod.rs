//! Authenticator-app codes: HOTP (RFC 4226) and TOTP (RFC 6238).
//!
//! - [`Totp`] and [`Hotp`] generate and verify codes with SHA-1, SHA-256 or
//!   SHA-512, 6 to 10 digits, any period of at least one second and any `T0`.
//! - Verification compares every candidate in the window in constant time,
//!   does the same work whether it accepts or rejects, and **refuses
//!   replays**: it takes the last accepted step (TOTP) or the next expected
//!   counter (HOTP) and tells you exactly what to persist.
//! - [`OtpSecret`] generates seeds and reads base32 the way apps print it.
//!   Seeds of at least 128 bits only, except through the `danger_` imports
//!   that carry over 80-bit seeds other services issued (never generated).
//! - [`Totp::from_uri`] / [`Totp::to_uri`] (and the same on [`Hotp`]) read
//!   and write `otpauth://` key URIs; [`Totp::uri_warnings`] says which
//!   parameters common apps would get wrong ([`UriWarning`]).
//! - [`TotpEnrollment`] makes a new authenticator active only after the user
//!   proves one code, and that code can't be used again. With the `qr`
//!   feature it draws its URI as a QR code (SVG or terminal,
//!   [`TotpEnrollment::qr_svg`]).
//!
//! ```
//! use ninsho::otp::{Totp, Rejection};
//!
//! let totp = Totp::from_uri(
//!     "otpauth://totp/Example:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example",
//! )
//! .unwrap();
//!
//! let now = 1_700_000_000;
//! let code = totp.code_at(now).to_string();
//!
//! // First use: accepted; persist `accepted.step` with the credential.
//! let accepted = totp.verify(&code, now, None).unwrap();
//!
//! // The same code again (or any older one) is refused.
//! assert_eq!(totp.verify(&code, now, Some(accepted.step)), Err(Rejection::Replayed));
//! ```

mod code;
mod enroll;
mod hotp;
#[cfg(feature = "qr")]
pub(crate) mod qr;
mod secret;
mod totp;
mod uri;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

pub use code::OtpCode;
pub(crate) use code::parse_code;
pub use enroll::{ConfirmedTotp, TotpEnrollment};
pub use hotp::{Hotp, HotpBuilder, HotpMatch};
#[cfg(feature = "qr")]
#[cfg_attr(docsrs, doc(cfg(feature = "qr")))]
pub use qr::{MAX_QR_URI_LEN, QrError};
pub use secret::OtpSecret;
pub use totp::{Totp, TotpBuilder, TotpMatch, Window};
pub use uri::{UriError, UriWarning};

/// The HMAC hash function of an authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Algorithm {
    /// HMAC-SHA-1, what every authenticator app supports and the default.
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The seed length this algorithm wants: its output size (RFC 6238 uses
    /// 20, 32 and 64 bytes).
    #[must_use]
    pub fn recommended_secret_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// The name used in `otpauth://` URIs (`SHA1`, `SHA256`, `SHA512`).
    #[must_use]
    pub fn uri_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    fn from_uri_name(name: &str) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha512]
            .into_iter()
            .find(|a| a.uri_name().eq_ignore_ascii_case(name))
    }
}

/// Fewest digits an authenticator code may have.
pub const MIN_DIGITS: u8 = 6;
/// Most digits an authenticator code may have.
pub const MAX_DIGITS: u8 = 10;
/// Fewest seed bytes accepted (RFC 4226 §4: at least 128 bits).
pub const MIN_SECRET_LEN: usize = 16;
/// Fewest seed bytes the `danger_…` imports accept (80 bits), for seeds
/// that other services issued before ninsho: see
/// [`OtpSecret::danger_from_base32_allow_short`].
pub const DANGER_MIN_SECRET_LEN: usize = 10;

/// Why an authenticator could not be built. No variant carries secret bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtpError {
    /// The seed is shorter than 128 bits (RFC 4226 §4), or shorter than 80
    /// bits when read through a `danger_…_allow_short` import.
    #[error(
        "the secret is {len} bytes; at least 16 bytes (128 bits) are required, or 10 bytes (80 bits) for an existing seed imported with a `danger_` function"
    )]
    SecretTooShort {
        /// The seed's length in bytes.
        len: usize,
    },
    /// The seed text is not base32.
    #[error("the secret is not valid base32 (letters A-Z and digits 2-7)")]
    InvalidBase32,
    /// Codes must have 6 to 10 digits.
    #[error("codes must have 6 to 10 digits, not {0}")]
    InvalidDigits(u8),
    /// The TOTP period must be at least one second.
    #[error("the TOTP period must be at least one second")]
    InvalidPeriod,
    /// A verification window side is larger than [`Window::MAX_SIDE`] steps.
    #[error("a verification window may reach at most {max} steps back or ahead, not {got}", max = Window::MAX_SIDE)]
    WindowTooLarge {
        /// The requested number of steps.
        got: u8,
    },
    /// The account name is missing or empty.
    #[error("an account name is required (it labels the entry in the authenticator app)")]
    MissingAccount,
    /// The issuer or account name contains a colon, which the key URI
    /// format reserves as their separator.
    #[error("the {0} must not contain a colon")]
    ColonInLabel(&'static str),
    /// A malformed `otpauth://` URI.
    #[error(transparent)]
    Uri(#[from] UriError),
}

/// Why a code was refused. Shown to the user as "wrong code", except
/// `Replayed`, which a UI may explain as "this code was already used; wait
/// for the next one".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The input is not a code of the right length (after removing spaces
    /// and hyphens and folding full-width digits).
    #[error("the code is not a number of the expected length")]
    Malformed,
    /// No code in the window matches.
    #[error("the code is wrong or has expired")]
    Mismatch,
    /// The code matches, but only for a step at or before the last one
    /// already accepted: a replay.
    #[error("the code was already used")]
    Replayed,
}

/// Validated digit count (6 to 10).
pub(crate) fn check_digits(digits: u8) -> Result<u8, OtpError> {
    if (MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
        Ok(digits)
    } else {
        Err(OtpError::InvalidDigits(digits))
    }
}

/// Checks the two parts of an app label and trims surrounding spaces.
pub(crate) fn check_label(
    issuer: Option<String>,
    account: Option<String>,
) -> Result<(Option<String>, String), OtpError> {
    let account = account
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .ok_or(OtpError::MissingAccount)?;
    if account.contains(':') {
        return Err(OtpError::ColonInLabel("account name"));
    }
    let issuer = issuer
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty());
    if issuer.as_deref().is_some_and(|i| i.contains(':')) {
        return Err(OtpError::ColonInLabel("issuer"));
    }
    Ok((issuer, account))
}

/// An HMAC keyed once with the seed; each code clones the prepared state.
#[derive(Clone)]
enum PreparedMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

/// The part shared by HOTP and TOTP: seed, algorithm, digits, prepared HMAC.
#[derive(Clone)]
pub(crate) struct Generator {
    secret: OtpSecret,
    algorithm: Algorithm,
    digits: u8,
    /// `10^digits` for fewer than ten digits (unused for ten).
    modulus: u32,
    mac: PreparedMac,
}

impl Generator {
    pub(crate) fn new(
        secret: OtpSecret,
        algorithm: Algorithm,
        digits: u8,
    ) -> Result<Self, OtpError> {
        let digits = check_digits(digits)?;
        let key = secret.expose_secret();
        let short = |_| OtpError::SecretTooShort { len: key.len() };
        let mac = match algorithm {
            Algorithm::Sha1 => PreparedMac::Sha1(KeyInit::new_from_slice(key).map_err(short)?),
            Algorithm::Sha256 => PreparedMac::Sha256(KeyInit::new_from_slice(key).map_err(short)?),
            Algorithm::Sha512 => PreparedMac::Sha512(KeyInit::new_from_slice(key).map_err(short)?),
        };
        Ok(Self {
            secret,
            algorithm,
            digits,
            modulus: 10u32.pow(u32::from(digits.min(9))),
            mac,
        })
    }

    /// RFC 4226 §5.3: HMAC of the big-endian counter, dynamic truncation,
    /// reduced to `digits` decimal digits.
    #[inline]
    pub(crate) fn value(&self, counter: u64) -> u64 {
        let mut out = 0;
        self.for_each_value(counter, counter, |_, v| out = v);
        out
    }

    /// Calls `f(counter, value)` for every counter in `first..=last`, with
    /// the algorithm dispatch hoisted out of the loop (verification computes
    /// a whole window of codes).
    #[inline]
    pub(crate) fn for_each_value(&self, first: u64, last: u64, mut f: impl FnMut(u64, u64)) {
        match &self.mac {
            PreparedMac::Sha1(m) => self.each(m, first, last, &mut f),
            PreparedMac::Sha256(m) => self.each(m, first, last, &mut f),
            PreparedMac::Sha512(m) => self.each(m, first, last, &mut f),
        }
    }

    #[inline(always)]
    fn each<M: Mac + Clone>(&self, mac: &M, first: u64, last: u64, f: &mut impl FnMut(u64, u64)) {
        for counter in first..=last {
            let bin = truncate(&finish(mac, &counter.to_be_bytes()));
            // A truncated value has 31 bits, below 10^10: ten-digit codes
            // are the value itself, shorter ones a 32-bit remainder.
            let value = if self.digits >= 10 {
                bin
            } else {
                bin % self.modulus
            };
            f(counter, u64::from(value));
        }
    }

    pub(crate) fn code(&self, counter: u64) -> OtpCode {
        OtpCode::new(self.value(counter), self.digits)
    }

    pub(crate) fn secret(&self) -> &OtpSecret {
        &self.secret
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub(crate) fn digits(&self) -> u8 {
        self.digits
    }
}

#[inline]
fn finish<M: Mac + Clone>(prepared: &M, msg: &[u8]) -> hmac::digest::Output<M> {
    let mut mac = prepared.clone();
    mac.update(msg);
    mac.finalize().into_bytes()
}

/// Dynamic truncation (RFC 4226 §5.3): 31 bits from the offset the last
/// nibble names. Every supported output is at least 20 bytes, so the
/// offset (≤ 15) plus four bytes is always in range.
#[inline]
fn truncate(h: &[u8]) -> u32 {
    let offset = usize::from(h.last().copied().unwrap_or(0) & 0x0f);
    let mut word = [0u8; 4];
    if let Some(bytes) = h.get(offset..offset + 4) {
        word.copy_from_slice(bytes);
    }
    u32::from_be_bytes(word) & 0x7fff_ffff
}
