//! The crate's error type.
//!
//! Errors fall in two families, and [`Error::is_infrastructure`] tells them
//! apart:
//!
//! - **the caller's input or configuration is wrong** (a malformed key URI,
//!   a short key): fix the input; retrying the same call fails the same way;
//! - **infrastructure failed** (the random source, later the store or the
//!   gateway): nothing was changed or issued; retry later.
//!
//! A code that is simply wrong is not an error of either kind: verification
//! returns a typed [`Rejection`](crate::otp::Rejection) for that. No error
//! carries secret material, so every error is safe to log.

use crate::hash::KeyError;
use crate::otp::OtpError;
use crate::random::RandomError;

/// Everything that can go wrong in ninsho.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An authenticator's parameters or key URI are invalid.
    #[error(transparent)]
    Otp(#[from] OtpError),
    /// A hashing key is invalid or missing.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The random source failed; nothing was issued.
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl Error {
    /// Whether this is an infrastructure failure (worth retrying later)
    /// rather than bad input or configuration.
    #[must_use]
    pub fn is_infrastructure(&self) -> bool {
        matches!(self, Self::Random(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert!(!Error::from(OtpError::InvalidPeriod).is_infrastructure());
        assert!(Error::from(RandomError::new(std::io::Error::other("x"))).is_infrastructure());
        let e = Error::from(RandomError::new(std::io::Error::other("x")));
        assert!(std::error::Error::source(&e).is_some());
    }
}
