//! Where ninsho gets randomness from.
//!
//! Secrets, codes and tokens are drawn from a [`Random`] source handed in by
//! the host. [`OsRandom`] (the operating system's CSPRNG) is the default;
//! [`LockedRng::seeded`] gives reproducible output for tests. Any
//! [`rand_core::TryCryptoRng`] can be plugged in through [`LockedRng`].
//!
//! A failing source is reported as [`RandomError`], never as a panic and
//! never by falling back to weaker randomness.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use rand_chacha::ChaCha20Rng;
use rand_core::{SeedableRng, TryCryptoRng};

/// The random source could not produce bytes.
///
/// This is an infrastructure failure: the operation that needed randomness
/// did not happen, and retrying later may succeed.
#[derive(Debug, thiserror::Error)]
#[error("the random number generator failed; nothing was issued")]
#[non_exhaustive]
pub struct RandomError {
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl RandomError {
    /// Wraps the generator's own error so it stays in the `source()` chain.
    #[must_use]
    pub fn new(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            source: Some(Box::new(source)),
        }
    }
}

/// A cryptographically secure source of random bytes.
///
/// Object safe and shareable (`Arc<dyn Random>`); `fill` takes `&self`, so
/// implementations that keep state must synchronise it themselves (see
/// [`LockedRng`]).
pub trait Random: Send + Sync + fmt::Debug {
    /// Fills `dest` entirely with random bytes.
    ///
    /// # Errors
    /// When the underlying generator fails; `dest` must then not be used.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError>;
}

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        use rand_core::TryRng as _;
        getrandom::SysRng
            .try_fill_bytes(dest)
            .map_err(RandomError::new)
    }
}

/// Any `rand_core` CSPRNG behind a mutex, so it can be shared as a [`Random`].
pub struct LockedRng<R> {
    rng: Mutex<R>,
}

impl<R: TryCryptoRng + Send> LockedRng<R> {
    /// Wraps `rng`.
    pub fn new(rng: R) -> Self {
        Self {
            rng: Mutex::new(rng),
        }
    }
}

impl LockedRng<ChaCha20Rng> {
    /// A deterministic ChaCha20 generator for tests: the same seed gives the
    /// same secrets, codes and tokens. Never use it in production.
    #[must_use]
    pub fn seeded(seed: u64) -> Self {
        Self::new(ChaCha20Rng::seed_from_u64(seed))
    }
}

impl<R: TryCryptoRng + Send> Random for LockedRng<R>
where
    R::Error: Send + Sync + 'static,
{
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        // A panic while the lock was held cannot leave a CSPRNG in a state
        // that repeats output, so a poisoned lock is safe to keep using.
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        rng.try_fill_bytes(dest).map_err(RandomError::new)
    }
}

impl<R> fmt::Debug for LockedRng<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The generator's state is a secret: never print it.
        f.write_str("LockedRng { .. }")
    }
}

/// A uniform random integer in `0..bound`, without modulo bias.
///
/// Uses rejection sampling on 32-bit draws: values from the incomplete last
/// block of `bound` are redrawn, so every result is equally likely.
///
/// # Errors
/// When the source fails.
pub fn uniform_below(rng: &dyn Random, bound: u32) -> Result<u32, RandomError> {
    if bound <= 1 {
        return Ok(0);
    }
    // Largest multiple of `bound` that fits in u32 space (as u64 to avoid overflow).
    let zone = (1u64 << 32) - ((1u64 << 32) % u64::from(bound));
    loop {
        let mut buf = [0u8; 4];
        rng.fill(&mut buf)?;
        let draw = u64::from(u32::from_le_bytes(buf));
        if draw < zone {
            // `draw % bound` < bound ≤ u32::MAX.
            return Ok(u32::try_from(draw % u64::from(bound)).unwrap_or(0));
        }
    }
}

/// A uniform random integer in `0..bound` for bounds above `u32::MAX`
/// (ten-digit codes), without modulo bias.
///
/// # Errors
/// When the source fails.
pub fn uniform_below_u64(rng: &dyn Random, bound: u64) -> Result<u64, RandomError> {
    if bound <= 1 {
        return Ok(0);
    }
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let mut buf = [0u8; 8];
        rng.fill(&mut buf)?;
        let draw = u64::from_le_bytes(buf);
        if draw < zone {
            return Ok(draw % bound);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Broken;
    impl Random for Broken {
        fn fill(&self, _: &mut [u8]) -> Result<(), RandomError> {
            Err(RandomError::new(std::io::Error::other("entropy pool gone")))
        }
    }

    #[test]
    fn seeded_is_reproducible() {
        let (a, b) = (LockedRng::seeded(7), LockedRng::seeded(7));
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        a.fill(&mut x).unwrap();
        b.fill(&mut y).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 32]);
    }

    #[test]
    fn os_random_fills() {
        let mut x = [0u8; 32];
        OsRandom.fill(&mut x).unwrap();
        assert_ne!(x, [0u8; 32]);
    }

    #[test]
    fn failure_is_an_error_with_source() {
        let err = uniform_below(&Broken, 10).unwrap_err();
        assert!(std::error::Error::source(&err).is_some());
        assert!(uniform_below_u64(&Broken, 10).is_err());
    }

    #[test]
    fn uniform_stays_in_range_and_covers_it() {
        let rng = LockedRng::seeded(1);
        let mut seen = [0u32; 7];
        for _ in 0..7_000 {
            let v = uniform_below(&rng, 7).unwrap();
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        for _ in 0..1_000 {
            assert!(uniform_below_u64(&rng, 10_000_000_000).unwrap() < 10_000_000_000);
        }
        assert_eq!(uniform_below(&rng, 1).unwrap(), 0);
    }

    #[test]
    fn debug_hides_state() {
        assert_eq!(format!("{:?}", LockedRng::seeded(3)), "LockedRng { .. }");
    }
}
