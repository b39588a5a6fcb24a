//! Sealing authenticator seeds at rest.

use std::fmt;

use crate::secret::SecretBytes;

/// Encrypts authenticator seeds before they reach the store, and decrypts
/// them to check a code.
///
/// A TOTP seed must be recomputed at every sign-in, so unlike codes and
/// tokens it can't be stored as a hash. Implement this with your key
/// management (an AEAD such as AES-256-GCM or XChaCha20-Poly1305 under a
/// key from your KMS, with the account as associated data): then a database
/// leak alone yields no seed. ninsho ships no cipher of its own.
pub trait Sealer: Send + Sync + fmt::Debug {
    /// Encrypts `plain` (a key URI) for `account`.
    ///
    /// # Errors
    /// [`SealError`] when the key service fails.
    fn seal(&self, account: &str, plain: &[u8]) -> Result<Vec<u8>, SealError>;

    /// Decrypts what [`seal`](Self::seal) produced for `account`.
    ///
    /// # Errors
    /// [`SealError`] when the data was not sealed for this account, was
    /// altered, or the key service fails.
    fn open(&self, account: &str, sealed: &[u8]) -> Result<SecretBytes, SealError>;
}

/// Sealing or opening failed. Carries no secret.
#[derive(Debug, thiserror::Error)]
#[error("sealing or opening an authenticator seed failed")]
pub struct SealError {
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SealError {
    /// A failure with its cause.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: Some(source.into()),
        }
    }

    /// A failure without a cause to report (authentication of the sealed
    /// data failed, say).
    #[must_use]
    pub fn opaque() -> Self {
        Self { source: None }
    }
}

/// Stores seeds as they are: for tests, and for hosts whose database is
/// itself encrypted with keys the application controls. The default when
/// no sealer is configured.
///
/// **Security:** with it, a copy of the database is enough to compute
/// every user's authenticator codes. Configure a real [`Sealer`] in
/// production.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnsealedStorage;

impl Sealer for UnsealedStorage {
    fn seal(&self, _account: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        Ok(plain.to_vec())
    }

    fn open(&self, _account: &str, sealed: &[u8]) -> Result<SecretBytes, SealError> {
        Ok(SecretBytes::new(sealed.to_vec()))
    }
}
