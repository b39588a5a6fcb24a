#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod clock;
pub mod error;
pub mod hash;
pub mod otp;
pub mod random;
pub mod secret;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use hash::{HashKey, KeyId, KeyedHash, KeyedHasher};
pub use random::{LockedRng, OsRandom, Random, RandomError};
pub use secret::{SecretBytes, SecretString};
