//! Time-based one-time passwords (RFC 6238).

use std::fmt;

use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::uri::{self, OtpAuthUri, SecretFloor, UriKind, UriWarning};
use super::{
    Algorithm, Generator, OtpCode, OtpError, OtpSecret, Rejection, check_label, parse_code,
};

/// How many time steps around the current one a code may come from.
///
/// The default, one step back and one ahead, absorbs ordinary clock drift
/// and the seconds a user needs to type (RFC 6238 §5.2). Each side is
/// capped at [`Window::MAX_SIDE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Steps before the current one that are still accepted.
    pub behind: u8,
    /// Steps after the current one that are already accepted.
    pub ahead: u8,
}

impl Window {
    /// The largest number of steps either side may reach.
    pub const MAX_SIDE: u8 = 10;

    /// A window reaching `behind` steps back and `ahead` steps forward.
    #[must_use]
    pub const fn new(behind: u8, ahead: u8) -> Self {
        Self { behind, ahead }
    }

    fn check(self) -> Result<Self, OtpError> {
        let widest = self.behind.max(self.ahead);
        if widest > Self::MAX_SIDE {
            return Err(OtpError::WindowTooLarge { got: widest });
        }
        Ok(self)
    }
}

impl Default for Window {
    fn default() -> Self {
        Self::new(1, 1)
    }
}

/// A code accepted by [`Totp::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TotpMatch {
    /// The time step the code belongs to. **Persist it** with the
    /// credential and pass it as `last_step` next time: every code of this
    /// step or an earlier one is then refused.
    pub step: u64,
    /// `step` minus the current step: negative when the user's device is
    /// behind, positive when ahead. Useful to spot drifting clocks.
    pub drift: i16,
}

/// A TOTP authenticator: seed, parameters and the label apps show.
///
/// Built once (the HMAC key schedule is prepared at construction) and then
/// cheap to use from many threads. `Debug` never shows the seed.
///
/// ```
/// use ninsho::otp::{Algorithm, OtpSecret, Totp, Window};
///
/// let secret = OtpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
/// let totp = Totp::builder(secret)
///     .issuer("Example")
///     .account("alice@example.com")
///     .digits(8)
///     .window(Window::new(1, 0))
///     .build()
///     .unwrap();
/// // RFC 6238 Appendix B, SHA-1 at T = 59.
/// assert_eq!(totp.code_at(59).to_string(), "94287082");
/// ```
#[derive(Clone)]
pub struct Totp {
    generator: Generator,
    period: u64,
    t0: u64,
    window: Window,
    issuer: Option<String>,
    account: String,
}

/// Builds a [`Totp`]; see [`Totp::builder`].
#[derive(Clone)]
#[must_use]
pub struct TotpBuilder {
    secret: OtpSecret,
    algorithm: Algorithm,
    digits: u8,
    period: u64,
    t0: u64,
    window: Window,
    issuer: Option<String>,
    account: Option<String>,
}

impl fmt::Debug for TotpBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpBuilder")
            .field("secret", &self.secret)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("t0", &self.t0)
            .field("window", &self.window)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .finish()
    }
}

impl TotpBuilder {
    /// The HMAC hash (default SHA-1, the only one every app supports).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Code length, 6 to 10 (default 6).
    pub fn digits(mut self, digits: u8) -> Self {
        self.digits = digits;
        self
    }

    /// Step length in seconds, at least 1 (default 30).
    pub fn period(mut self, seconds: u64) -> Self {
        self.period = seconds;
        self
    }

    /// The Unix time steps are counted from (`T0`, default 0). Key URIs have
    /// no field for it and apps assume 0: change it only for tokens that
    /// are not enrolled through a URI.
    pub fn t0(mut self, unix_seconds: u64) -> Self {
        self.t0 = unix_seconds;
        self
    }

    /// The verification window (default one step back, one ahead).
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// The service name apps show above the account (recommended).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The account name apps show (required, e.g. the user's email).
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// Checks every parameter and prepares the HMAC.
    ///
    /// # Errors
    /// An [`OtpError`] naming the bad parameter.
    pub fn build(self) -> Result<Totp, OtpError> {
        if self.period == 0 {
            return Err(OtpError::InvalidPeriod);
        }
        let (issuer, account) = check_label(self.issuer, self.account)?;
        Ok(Totp {
            generator: Generator::new(self.secret, self.algorithm, self.digits)?,
            period: self.period,
            t0: self.t0,
            window: self.window.check()?,
            issuer,
            account,
        })
    }
}

impl Totp {
    /// Default step length in seconds.
    pub const DEFAULT_PERIOD: u64 = 30;

    /// Starts a builder with the defaults: SHA-1, 6 digits, 30 s, `T0` = 0,
    /// window ±1 step.
    pub fn builder(secret: OtpSecret) -> TotpBuilder {
        TotpBuilder {
            secret,
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: Self::DEFAULT_PERIOD,
            t0: 0,
            window: Window::default(),
            issuer: None,
            account: None,
        }
    }

    /// Reads an `otpauth://totp/...` key URI.
    ///
    /// # Errors
    /// [`OtpError::Uri`] naming the malformed part, or another [`OtpError`]
    /// for a parameter out of range (short secret, digits, period).
    /// A URI with an `encoder` parameter (such as Steam's) is refused with
    /// [`UriError::UnsupportedEncoder`](super::UriError::UnsupportedEncoder).
    pub fn from_uri(uri: &str) -> Result<Self, OtpError> {
        Self::from_parsed(OtpAuthUri::parse(uri, SecretFloor::Rfc4226)?)
    }

    /// Reads an `otpauth://totp/...` key URI as [`from_uri`](Self::from_uri)
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
    /// use ninsho::otp::{OtpError, Totp};
    ///
    /// let uri = "otpauth://totp/Example:alice@example.com?secret=JBSWY3DPEHPK3PXP&issuer=Example";
    /// assert_eq!(Totp::from_uri(uri).unwrap_err(), OtpError::SecretTooShort { len: 10 });
    /// let legacy = Totp::danger_from_uri_allow_short_secret(uri).unwrap();
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
        let UriKind::Totp { period } = parsed.kind else {
            return Err(super::UriError::WrongType { expected: "totp" }.into());
        };
        let mut builder = Self::builder(parsed.secret)
            .algorithm(parsed.algorithm)
            .digits(parsed.digits)
            .period(period)
            .account(parsed.account);
        if let Some(issuer) = parsed.issuer {
            builder = builder.issuer(issuer);
        }
        builder.build()
    }

    /// Writes the key URI apps scan (usually shown as a QR code).
    ///
    /// The URI contains the seed: show it to the enrolling user only.
    /// `T0` and the verification window are not part of the format. Before
    /// showing it, check [`uri_warnings`](Self::uri_warnings): a period
    /// other than 30 seconds, digits other than 6 or 8 or a hash other than SHA-1
    /// is written as asked, but common apps get it wrong.
    #[must_use]
    pub fn to_uri(&self) -> String {
        OtpAuthUri::write(
            UriKind::Totp {
                period: self.period,
            },
            self.issuer.as_deref(),
            &self.account,
            self.generator.secret(),
            self.generator.algorithm(),
            self.generator.digits(),
        )
    }

    /// What common authenticator apps would get wrong in
    /// [`to_uri`](Self::to_uri): a period other than 30 seconds, digits other than 6 or 8, a hash other
    /// than SHA-1. Empty with the defaults.
    ///
    /// Nothing is refused: the parameters are valid and ninsho verifies
    /// them. A host that shows the URI to users should act on each warning
    /// (keep to the defaults, or name the apps that work); see
    /// [`UriWarning`].
    ///
    /// ```
    /// use ninsho::otp::{OtpSecret, Totp, UriWarning};
    ///
    /// let secret = OtpSecret::from_bytes(vec![7; 20]).unwrap();
    /// let standard = Totp::builder(secret.clone()).account("alice").build().unwrap();
    /// assert!(standard.uri_warnings().is_empty());
    ///
    /// let slow = Totp::builder(secret).account("alice").period(60).build().unwrap();
    /// assert_eq!(slow.uri_warnings(), [UriWarning::Period { period: 60 }]);
    /// ```
    #[must_use = "a warning means users' apps may show codes that never match"]
    pub fn uri_warnings(&self) -> Vec<UriWarning> {
        uri::warnings(
            UriKind::Totp {
                period: self.period,
            },
            self.generator.algorithm(),
            self.generator.digits(),
        )
    }

    /// The time step `unix_seconds` falls in. Instants before `T0` fall in
    /// step 0.
    #[must_use]
    pub fn step_at(&self, unix_seconds: u64) -> u64 {
        unix_seconds.saturating_sub(self.t0) / self.period
    }

    /// The code for the step `unix_seconds` falls in.
    #[must_use]
    pub fn code_at(&self, unix_seconds: u64) -> OtpCode {
        self.generator.code(self.step_at(unix_seconds))
    }

    /// The code of time step `step`.
    #[must_use]
    pub fn code_at_step(&self, step: u64) -> OtpCode {
        self.generator.code(step)
    }

    /// Checks a code typed at `unix_seconds`, refusing replays.
    ///
    /// `last_step` is the [`TotpMatch::step`] persisted at the previous
    /// success for this credential (`None` if there was none). Every code in
    /// the window is computed and compared in constant time whatever the
    /// outcome, so timing reveals neither whether nor where a code matched.
    ///
    /// # Errors
    /// - [`Rejection::Malformed`]: not a code of the right length;
    /// - [`Rejection::Replayed`]: it matches a step ≤ `last_step` only;
    /// - [`Rejection::Mismatch`]: no step in the window matches.
    pub fn verify(
        &self,
        input: &str,
        unix_seconds: u64,
        last_step: Option<u64>,
    ) -> Result<TotpMatch, Rejection> {
        let input = parse_code(input, self.generator.digits()).ok_or(Rejection::Malformed)?;
        let current = self.step_at(unix_seconds);
        let first = current.saturating_sub(u64::from(self.window.behind));
        let last = current.saturating_add(u64::from(self.window.ahead));

        // Whether a step comes after `last_step` depends only on step
        // numbers, which are public (time is), so it may branch; the code
        // comparison is constant time, and its result is accumulated as
        // plain bits (one optimisation barrier per step, not seven).
        let mut fresh = 0u8;
        let mut stale = 0u8;
        let mut best = 0u64;
        self.generator.for_each_value(first, last, |step, value| {
            let hit = value.ct_eq(&input);
            if last_step.is_none_or(|used| step > used) {
                // Keep the latest fresh matching step: persisting the
                // highest one refuses the most if one code matches two steps.
                best.conditional_assign(&step, hit);
                fresh |= hit.unwrap_u8();
            } else {
                stale |= hit.unwrap_u8();
            }
        });

        if fresh == 1 {
            let drift = if best >= current {
                i16::try_from(best - current).unwrap_or(i16::MAX)
            } else {
                i16::try_from(current - best).map_or(i16::MIN, |d| -d)
            };
            Ok(TotpMatch { step: best, drift })
        } else if stale == 1 {
            Err(Rejection::Replayed)
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

    /// Step length in seconds.
    #[must_use]
    pub fn period(&self) -> u64 {
        self.period
    }

    /// The Unix time steps are counted from.
    #[must_use]
    pub fn t0(&self) -> u64 {
        self.t0
    }

    /// The verification window.
    #[must_use]
    pub fn window(&self) -> Window {
        self.window
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

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("secret", self.generator.secret())
            .field("algorithm", &self.algorithm())
            .field("digits", &self.digits())
            .field("period", &self.period)
            .field("t0", &self.t0)
            .field("window", &self.window)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp(window: Window) -> Totp {
        Totp::builder(OtpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap())
            .account("a")
            .window(window)
            .build()
            .unwrap()
    }

    #[test]
    fn window_edges_are_exact() {
        let t = totp(Window::new(2, 1));
        let now = 30 * 1_000 + 7;
        let code = |s: u64| t.code_at_step(s).to_string();
        assert_eq!(t.verify(&code(998), now, None).unwrap().drift, -2);
        assert_eq!(t.verify(&code(1_001), now, None).unwrap().drift, 1);
        assert_eq!(t.verify(&code(997), now, None), Err(Rejection::Mismatch));
        assert_eq!(t.verify(&code(1_002), now, None), Err(Rejection::Mismatch));
    }

    #[test]
    fn replay_refused_at_and_before_last_step() {
        let t = totp(Window::default());
        let now = 30 * 500;
        let m = t.verify(&t.code_at(now).to_string(), now, None).unwrap();
        assert_eq!(m.step, 500);
        let again = t.verify(&t.code_at(now).to_string(), now, Some(m.step));
        assert_eq!(again, Err(Rejection::Replayed));
        let older = t.verify(&t.code_at_step(499).to_string(), now, Some(m.step));
        assert_eq!(older, Err(Rejection::Replayed));
        // The next step's code is still fine.
        assert_eq!(
            t.verify(&t.code_at_step(501).to_string(), now, Some(m.step))
                .unwrap()
                .step,
            501
        );
    }

    #[test]
    fn step_zero_with_look_back() {
        let t = totp(Window::new(10, 10));
        assert_eq!(
            t.verify(&t.code_at(0).to_string(), 0, None).unwrap().step,
            0
        );
        assert_eq!(
            t.verify(&t.code_at(0).to_string(), 0, Some(0)),
            Err(Rejection::Replayed)
        );
    }

    #[test]
    fn far_future_saturates() {
        let t = totp(Window::new(1, 10));
        let m = t
            .verify(&t.code_at(u64::MAX).to_string(), u64::MAX, None)
            .unwrap();
        assert_eq!(m.step, u64::MAX / 30);
    }

    #[test]
    fn bad_parameters() {
        let s = || OtpSecret::from_bytes(vec![1; 20]).unwrap();
        assert_eq!(
            Totp::builder(s())
                .account("a")
                .period(0)
                .build()
                .unwrap_err(),
            OtpError::InvalidPeriod
        );
        assert_eq!(
            Totp::builder(s())
                .account("a")
                .digits(5)
                .build()
                .unwrap_err(),
            OtpError::InvalidDigits(5)
        );
        assert_eq!(
            Totp::builder(s())
                .account("a")
                .digits(11)
                .build()
                .unwrap_err(),
            OtpError::InvalidDigits(11)
        );
        assert_eq!(
            Totp::builder(s()).build().unwrap_err(),
            OtpError::MissingAccount
        );
        assert_eq!(
            Totp::builder(s()).account("  ").build().unwrap_err(),
            OtpError::MissingAccount
        );
        assert_eq!(
            Totp::builder(s())
                .account("a")
                .window(Window::new(11, 0))
                .build()
                .unwrap_err(),
            OtpError::WindowTooLarge { got: 11 }
        );
        assert_eq!(
            Totp::builder(s()).account("a:b").build().unwrap_err(),
            OtpError::ColonInLabel("account name")
        );
    }

    #[test]
    fn t0_shifts_steps() {
        let s = OtpSecret::from_bytes(vec![1; 20]).unwrap();
        let t = Totp::builder(s).account("a").t0(1_000).build().unwrap();
        assert_eq!(t.step_at(1_000), 0);
        assert_eq!(t.step_at(1_029), 0);
        assert_eq!(t.step_at(1_030), 1);
        assert_eq!(t.step_at(10), 0);
    }
}
