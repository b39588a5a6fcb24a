//! Adding an authenticator app, confirmed by a first code.

use std::fmt;

#[cfg(feature = "qr")]
use super::QrError;
use super::{Algorithm, OtpError, OtpSecret, Rejection, Totp, UriWarning};
use crate::random::Random;
use crate::secret::SecretString;

/// An authenticator app being added, not yet active.
///
/// Show [`uri`](Self::uri) (as a QR code) and the
/// [`secret`](Self::manual_entry_key) for manual entry; keep the enrolment
/// until the user types a code. Only [`confirm`](Self::confirm) turns it
/// into a credential, which guarantees the app was set up correctly before
/// the account relies on it.
///
/// ```
/// use ninsho::otp::TotpEnrollment;
/// use ninsho::LockedRng;
///
/// let rng = LockedRng::seeded(1);
/// let enrolment = TotpEnrollment::start(&rng, "Example", "alice@example.com").unwrap();
/// let uri = enrolment.uri(); // render as a QR code for the user's app
/// assert!(uri.expose_secret().starts_with("otpauth://totp/Example:alice%40example.com?"));
///
/// // The user's app shows a code; the user types it back.
/// let now = 1_700_000_000;
/// let typed = enrolment.totp().code_at(now).to_string();
/// let confirmed = enrolment.confirm(&typed, now).unwrap();
///
/// // The confirming code is already spent.
/// assert!(confirmed.totp.verify(&typed, now, Some(confirmed.last_step)).is_err());
/// ```
#[derive(Clone)]
pub struct TotpEnrollment {
    totp: Totp,
}

/// An authenticator proven by its first code: store both fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConfirmedTotp {
    /// The authenticator (store its seed and parameters, e.g. as its URI).
    pub totp: Totp,
    /// The step of the confirming code; pass it as `last_step` to
    /// [`Totp::verify`] next time so that code can't be replayed.
    pub last_step: u64,
}

impl TotpEnrollment {
    /// Starts enrolment with a fresh 20-byte seed and the defaults every app
    /// supports (SHA-1, 6 digits, 30 seconds).
    ///
    /// # Errors
    /// [`crate::Error::Random`] when the random source fails,
    /// [`crate::Error::Otp`] for an empty account or a colon in a name.
    pub fn start(rng: &dyn Random, issuer: &str, account: &str) -> Result<Self, crate::Error> {
        let secret = OtpSecret::generate(Algorithm::Sha1, rng)?;
        let totp = Totp::builder(secret)
            .issuer(issuer)
            .account(account)
            .build()?;
        Ok(Self { totp })
    }

    /// Starts enrolment for an authenticator built by the caller (other
    /// algorithm, digits or period).
    ///
    /// Give it a seed from [`OtpSecret::generate`]. A seed read through a
    /// `danger_…_allow_short` import belongs to an app the user already
    /// has and must not be handed out again as a new one; an enrolment
    /// holding one can't be resumed with [`from_uri`](Self::from_uri),
    /// which refuses seeds under 128 bits.
    #[must_use]
    pub fn with_totp(totp: Totp) -> Self {
        Self { totp }
    }

    /// Resumes a pending enrolment the host stored as its URI.
    ///
    /// # Errors
    /// As for [`Totp::from_uri`]: in particular a seed under 128 bits is
    /// refused, since an enrolment hands out a new seed and ninsho never
    /// makes short ones.
    pub fn from_uri(uri: &str) -> Result<Self, OtpError> {
        Totp::from_uri(uri).map(Self::with_totp)
    }

    /// The key URI for the QR code. It contains the seed.
    ///
    /// With [`start`](Self::start) it has the parameters every app
    /// supports; for an authenticator given to
    /// [`with_totp`](Self::with_totp), check
    /// [`uri_warnings`](Self::uri_warnings) first.
    #[must_use]
    pub fn uri(&self) -> SecretString {
        SecretString::new(self.totp.to_uri())
    }

    /// The QR code of [`uri`](Self::uri) as a complete SVG document, for a
    /// web page: black on white with the quiet zone, 4 pixels per module by
    /// default and a `viewBox`, so CSS can resize it without blurring. It
    /// references nothing outside itself.
    ///
    /// **It contains the seed**, like the URI: send it only to the user
    /// enrolling (inline, or as a `data:` URL, never a cacheable one) and
    /// never log it.
    ///
    /// ```
    /// use ninsho::otp::TotpEnrollment;
    /// use ninsho::LockedRng;
    ///
    /// let enrolment = TotpEnrollment::start(&LockedRng::seeded(1), "Example", "alice@example.com")?;
    /// let svg = enrolment.qr_svg()?;
    /// assert!(svg.expose_secret().starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`QrError::TooLong`] when the URI is over
    /// [`MAX_QR_URI_LEN`](super::MAX_QR_URI_LEN) bytes (an issuer or
    /// account name of a thousand characters or so).
    #[cfg(feature = "qr")]
    #[cfg_attr(docsrs, doc(cfg(feature = "qr")))]
    pub fn qr_svg(&self) -> Result<SecretString, QrError> {
        super::qr::svg(self.uri().expose_secret())
    }

    /// The QR code of [`uri`](Self::uri) for a terminal: Unicode half
    /// blocks (two rows of modules per line), with the quiet zone, and ANSI
    /// colours that make it black on white whatever the terminal's theme
    /// (apps' scanners don't all read a code drawn light on dark). Print it
    /// as it is; a key URI of the usual length (about 130 bytes, a
    /// version-8 code) takes 57 columns and 29 lines.
    ///
    /// **It contains the seed**: show it only to the user enrolling.
    ///
    /// ```
    /// use ninsho::otp::TotpEnrollment;
    /// use ninsho::LockedRng;
    ///
    /// let enrolment = TotpEnrollment::start(&LockedRng::seeded(1), "Example", "alice@example.com")?;
    /// print!("{}", enrolment.qr_terminal()?.expose_secret());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As for [`qr_svg`](Self::qr_svg).
    #[cfg(feature = "qr")]
    #[cfg_attr(docsrs, doc(cfg(feature = "qr")))]
    pub fn qr_terminal(&self) -> Result<SecretString, QrError> {
        super::qr::terminal(self.uri().expose_secret())
    }

    /// What common authenticator apps would get wrong in
    /// [`uri`](Self::uri) ([`Totp::uri_warnings`]). Always empty after
    /// [`start`](Self::start).
    #[must_use = "a warning means the user's app may show codes that never match"]
    pub fn uri_warnings(&self) -> Vec<UriWarning> {
        self.totp.uri_warnings()
    }

    /// The seed in base32, for users who type it into their app.
    #[must_use]
    pub fn manual_entry_key(&self) -> SecretString {
        self.totp.secret().to_base32()
    }

    /// The authenticator being enrolled.
    #[must_use]
    pub fn totp(&self) -> &Totp {
        &self.totp
    }

    /// Confirms the enrolment with the first code the app shows.
    ///
    /// # Errors
    /// The [`Rejection`] of [`Totp::verify`]; the enrolment stays pending and
    /// the user may try again (the host should limit attempts).
    pub fn confirm(&self, input: &str, unix_seconds: u64) -> Result<ConfirmedTotp, Rejection> {
        let accepted = self.totp.verify(input, unix_seconds, None)?;
        Ok(ConfirmedTotp {
            totp: self.totp.clone(),
            last_step: accepted.step,
        })
    }
}

impl fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpEnrollment")
            .field("totp", &self.totp)
            .finish()
    }
}

impl fmt::Debug for ConfirmedTotp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfirmedTotp")
            .field("totp", &self.totp)
            .field("last_step", &self.last_step)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::LockedRng;

    #[test]
    fn enrolment_makes_long_seeds_and_standard_uris() {
        for seed in 0..16 {
            let e = TotpEnrollment::start(&LockedRng::seeded(seed), "Example", "a").unwrap();
            assert_eq!(e.totp().secret().len(), 20);
            assert!(e.uri_warnings().is_empty());
            // And a host can resume it.
            let again = TotpEnrollment::from_uri(e.uri().expose_secret()).unwrap();
            assert_eq!(again.uri().expose_secret(), e.uri().expose_secret());
        }
    }
}
