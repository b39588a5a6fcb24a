//! Counter-based one-time passwords (RFC 4226).

use std::fmt;

use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::uri::{self, OtpAuthUri, SecretFloor, UriKind, UriWarning};
use super::{
    Algorithm, Generator, OtpCode, OtpError, OtpSecret, Rejection, check_label, parse_code,
};

/// A code accepted by [`Hotp::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct HotpMatch {
    /// The counter the code belongs to.
    pub counter: u64,
    /// **Persist this** as the next expected counter: every code of
    /// `counter` or an earlier counter is then refused.
    pub next_counter: u64,
}

/// An HOTP authenticator (hardware tokens, "press for next code" apps).
///
/// The server keeps the next expected counter. Verification looks ahead
/// from it by a resynchronisation window (default 5, RFC 4226 §7.4), since
/// the token advances each time its button is pressed even if the code is
/// never used. `Debug` never shows the seed.
#[derive(Clone)]
pub struct Hotp {
    generator: Generator,
    counter: u64,
    look_ahead: u8,
    issuer: Option<String>,
    account: String,
}

/// Builds an [`Hotp`]; see [`Hotp::builder`].
#[derive(Clone)]
#[must_use]
pub struct HotpBuilder {
    secret: OtpSecret,
    algorithm: Algorithm,
    digits: u8,
    counter: u64,
    look_ahead: u8,
    issuer: Option<String>,
    account: Option<String>,
}

impl fmt::Debug for HotpBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotpBuilder")
            .field("secret", &self.secret)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("counter", &self.counter)
            .field("look_ahead", &self.look_ahead)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .finish()
    }
}

impl HotpBuilder {
    /// The HMAC hash (default SHA-1).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Code length, 6 to 10 (default 6).
    pub fn digits(mut self, digits: u8) -> Self {
        self.digits = digits;
        self
    }

    /// The initial counter written to the key URI (default 0).
    pub fn counter(mut self, counter: u64) -> Self {
        self.counter = counter;
        self
    }

    /// How many counters past the expected one are accepted (default 5,
    /// at most [`Hotp::MAX_LOOK_AHEAD`]).
    pub fn look_ahead(mut self, counters: u8) -> Self {
        self.look_ahead = counters;
        self
    }

    /// The service name apps show (recommended).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The account name apps show (required).
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// Checks every parameter and prepares the HMAC.
    ///
    /// # Errors
    /// An [`OtpError`] naming the bad parameter.
    pub fn build(self) -> Result<Hotp, OtpError> {
        if self.look_ahead > Hotp::MAX_LOOK_AHEAD {
            return Err(OtpError::WindowTooLarge {
                got: self.look_ahead,
            });
        }
        let (issuer, account) = check_label(self.issuer, self.account)?;
        Ok(Hotp {
            generator: Generator::new(self.secret, self.algorithm, self.digits)?,
            counter: self.counter,
            look_ahead: self.look_ahead,
            issuer,
            account,
        })
    }
}

impl Hotp {
    /// Default resynchronisation window.
    pub const DEFAULT_LOOK_AHEAD: u8 = 5;
    /// Largest resynchronisation window accepted.
    pub const MAX_LOOK_AHEAD: u8 = 50;

    /// Starts a builder with the defaults: SHA-1, 6 digits, counter 0,
    /// look-ahead 5.
    pub fn builder(secret: OtpSecret) -> HotpBuilder {
        HotpBuilder {
            secret,
            algorithm: Algorithm::Sha1,
            digits: 6,
            counter: 0,
            look_ahead: Self::DEFAULT_LOOK_AHEAD,
            issuer: None,
            account: None,
        }
    }

    /// Reads an `otpauth://hotp/...` key URI.
    ///
    /// # Errors
    /// [`OtpError::Uri`] naming the malformed part, or another [`OtpError`]
    /// for a parameter out of range.
    /// A URI with an `encoder` parameter (such as Steam's) is refused with
    /// [`UriError::UnsupportedEncoder`](super::UriError::UnsupportedEncoder).
    pub fn from_uri(uri: &str) -> Result<Self, OtpError> {
        Self::from_parsed(OtpAuthUri::parse(uri, SecretFloor::Rfc4226)?)
    }

    /// Reads an `otpauth://hotp/...` key URI as [`from_uri`](Self::from_uri)
    /// does, but also accepts an existing seed of 80 to 120 bits, which
    /// `from_uri` refuses.
    ///
    /// For carrying over authenticators users already have from a service
    /// that issued short seeds; never for new ones. Read the security note
    /// of [`OtpSecret::danger_from_base32_allow_short`] first. A host that
    /// keeps such an authenticator stores its [`to_uri`](Self::to_uri) (or
    /// its seed) and reads it back with this function (or
    /// [`OtpSecret::danger_from_bytes_allow_short`]); verification works as
    /// for any other. [`TwoFactor`](crate::service::TwoFactor) does not
    /// import authenticators and never takes this path.
    ///
    /// ```
    /// use ninsho::otp::{OtpError, Hotp};
    ///
    /// let uri = "otpauth://hotp/Example:alice@example.com?secret=JBSWY3DPEHPK3PXP&issuer=Example&counter=0";
    /// assert_eq!(Hotp::from_uri(uri).unwrap_err(), OtpError::SecretTooShort { len: 10 });
    /// let legacy = Hotp::danger_from_uri_allow_short_secret(uri).unwrap();
    /// assert_eq!(legacy.secret().len(), 10);
    /// ```
    ///
    /// # Errors
    /// As for [`from_uri`](Self::from_uri), with
    /// [`OtpError::SecretTooShort`] only under 10 bytes.
    pub fn danger_from_uri_allow_short_secret(uri: &str) -> Result<Self, OtpError> {
        Self::from_parsed(OtpAuthUri::parse(uri, SecretFloor::DangerShort)?)
    }

    fn from_parsed(parsed: OtpAuthUri) -> Result<Self, OtpError> {
        let UriKind::Hotp { counter } = parsed.kind else {
            return Err(super::UriError::WrongType { expected: "hotp" }.into());
        };
        let mut builder = Self::builder(parsed.secret)
            .algorithm(parsed.algorithm)
            .digits(parsed.digits)
            .counter(counter)
            .account(parsed.account);
        if let Some(issuer) = parsed.issuer {
            builder = builder.issuer(issuer);
        }
        builder.build()
    }

    /// Writes the key URI apps scan; it contains the seed. Before showing
    /// it, check [`uri_warnings`](Self::uri_warnings): digits other than 6 or 8 or
    /// a hash other than SHA-1 is written as asked, but common apps get it
    /// wrong.
    #[must_use]
    pub fn to_uri(&self) -> String {
        OtpAuthUri::write(
            UriKind::Hotp {
                counter: self.counter,
            },
            self.issuer.as_deref(),
            &self.account,
            self.generator.secret(),
            self.generator.algorithm(),
            self.generator.digits(),
        )
    }

    /// What common authenticator apps would get wrong in
    /// [`to_uri`](Self::to_uri): digits other than 6 or 8, a hash other than
    /// SHA-1. Empty with the defaults.
    ///
    /// Nothing is refused: the parameters are valid and ninsho verifies
    /// them. A host that shows the URI to users should act on each warning
    /// (keep to the defaults, or name the apps that work); see
    /// [`UriWarning`].
    ///
    #[must_use = "a warning means users' apps may show codes that never match"]
    pub fn uri_warnings(&self) -> Vec<UriWarning> {
        uri::warnings(
            UriKind::Hotp {
                counter: self.counter,
            },
            self.generator.algorithm(),
            self.generator.digits(),
        )
    }

    /// The code for `counter`.
    #[must_use]
    pub fn code(&self, counter: u64) -> OtpCode {
        self.generator.code(counter)
    }

    /// Checks a code against the next expected counter and the look-ahead.
    ///
    /// `next_counter` is what was persisted at the last success (or the
    /// initial [`counter`](Self::counter) for a new token). Codes for
    /// counters `next_counter ..= next_counter + look_ahead` are accepted;
    /// all are computed and compared in constant time. Codes of earlier
    /// counters were used or skipped and are never accepted. If one code
    /// matches two counters in the window, the later one is taken, so the
    /// code can't succeed a second time. Counter `u64::MAX` is never
    /// accepted.
    ///
    /// # Errors
    /// [`Rejection::Malformed`] or [`Rejection::Mismatch`].
    pub fn verify(&self, input: &str, next_counter: u64) -> Result<HotpMatch, Rejection> {
        let input = parse_code(input, self.generator.digits()).ok_or(Rejection::Malformed)?;
        // The last counter can never be used: nothing could come after it
        // to refuse its replay.
        let last = next_counter
            .saturating_add(u64::from(self.look_ahead))
            .min(u64::MAX - 1);
        let mut found = 0u8;
        let mut matched = 0u64;
        self.generator
            .for_each_value(next_counter, last, |counter, value| {
                let hit = value.ct_eq(&input);
                // Keep the latest match: if one code happens to match two
                // counters, moving past both means it can't succeed twice.
                matched.conditional_assign(&counter, hit);
                found |= hit.unwrap_u8();
            });
        if found == 1 {
            Ok(HotpMatch {
                counter: matched,
                next_counter: matched + 1,
            })
        } else {
            Err(Rejection::Mismatch)
        }
    }

    /// The hash function.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.generator.algorithm()
    }

    /// Digits per code.
    #[must_use]
    pub fn digits(&self) -> u8 {
        self.generator.digits()
    }

    /// The initial counter (as in the key URI).
    #[must_use]
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The resynchronisation window.
    #[must_use]
    pub fn look_ahead(&self) -> u8 {
        self.look_ahead
    }

    /// The issuer shown in apps, if any.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The account name shown in apps.
    #[must_use]
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The seed. **Security:** for sealing and storing only.
    #[must_use]
    pub fn secret(&self) -> &OtpSecret {
        self.generator.secret()
    }
}

impl fmt::Debug for Hotp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hotp")
            .field("secret", self.generator.secret())
            .field("algorithm", &self.algorithm())
            .field("digits", &self.digits())
            .field("counter", &self.counter)
            .field("look_ahead", &self.look_ahead)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hotp() -> Hotp {
        Hotp::builder(OtpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap())
            .account("a")
            .build()
            .unwrap()
    }

    #[test]
    fn resync_within_window_only() {
        let h = hotp();
        let m = h.verify(&h.code(15).to_string(), 10).unwrap();
        assert_eq!((m.counter, m.next_counter), (15, 16));
        assert_eq!(
            h.verify(&h.code(16).to_string(), 10),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            h.verify(&h.code(9).to_string(), 10),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            h.verify(&h.code(10).to_string(), 11),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn counter_limits() {
        let h = hotp();
        // The very last counter is never accepted, so it can't be replayed.
        assert_eq!(
            h.verify(&h.code(u64::MAX).to_string(), u64::MAX),
            Err(Rejection::Mismatch)
        );
        let m = h
            .verify(&h.code(u64::MAX - 1).to_string(), u64::MAX - 3)
            .unwrap();
        assert_eq!(m.next_counter, u64::MAX);
        assert_eq!(
            Hotp::builder(OtpSecret::from_bytes(vec![1; 20]).unwrap())
                .account("a")
                .look_ahead(51)
                .build()
                .unwrap_err(),
            OtpError::WindowTooLarge { got: 51 }
        );
    }
}
