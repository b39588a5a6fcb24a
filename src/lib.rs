#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unnameable_types)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod challenge;
pub mod clock;
pub mod contact;
pub mod device;
pub mod error;
pub mod events;
mod factors;
mod flows;
// The flows' unit tests share the integration tests' support code, which
// names the crate `ninsho`.
#[cfg(test)]
extern crate self as ninsho;
pub mod gateway;
pub mod grace;
pub mod guide;
pub mod hash;
pub mod limits;
pub mod model;
pub mod otp;
pub mod random;
pub mod recovery;
pub mod seal;
pub mod secret;
pub mod service;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod web;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{AccountRefusal, CodeRefusal, ContactRefusal, Error, Misuse, Refusal, SendRefusal};
pub use hash::{HashKey, KeyId, KeyedHash, KeyedHasher};
pub use random::{LockedRng, OsRandom, Random, RandomError};
pub use seal::{AeadSealer, SealKey, Sealer};
pub use secret::{SecretBytes, SecretString};

/// The names a host needs for the journeys, in one import:
/// `use ninsho::prelude::*;`.
///
/// The service and its builder, the sign-in vocabulary, the ids and
/// contacts, the errors, and the keys for hashing and sealing. Adapters
/// (stores, gateways) are chosen by name from [`store`] and [`gateway`].
pub mod prelude {
    pub use crate::error::{
        AccountRefusal, CodeRefusal, ContactRefusal, Error, Misuse, Refusal, SendRefusal,
    };
    pub use crate::hash::{HashKey, KeyId, KeyedHasher};
    pub use crate::model::{AccountId, Channel, Destination, Locale};
    pub use crate::seal::{AeadSealer, SealKey};
    pub use crate::service::{
        Method, MethodId, MethodKind, Proof, SignInAttempt, SignInStart, SignedIn, StepUp,
        TwoFactor,
    };
}
