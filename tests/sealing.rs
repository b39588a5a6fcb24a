//! The seed sealer through the public API: what opens, what does not, how
//! keys rotate, and that a service can't be built without a sealer.

mod support;

use std::sync::Arc;

use ninsho::gateway::RecordingGateway;
use ninsho::hash::KeyError;
use ninsho::seal::{AeadSealer, DangerousUnsealed, SealError, SealErrorKind, SealKey, Sealer};
use ninsho::service::TwoFactor;
use ninsho::store::MemoryStore;
use ninsho::{Error, KeyId, LockedRng, Random, RandomError};

const URI: &[u8] =
    b"otpauth://totp/Example:taro?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Example";

fn key(id: u32, byte: u8) -> SealKey {
    SealKey::new(KeyId(id), &[byte; 32]).unwrap()
}

fn kind(result: Result<impl std::fmt::Debug, SealError>) -> SealErrorKind {
    result.unwrap_err().kind()
}

/// What is sealed opens again, for the same account, and the sealed bytes
/// neither contain the plaintext nor repeat (a fresh nonce each time).
#[test]
fn seal_and_open_round_trip() {
    let sealer = AeadSealer::new(key(1, 1));
    let sealed = sealer.seal("taro", URI).unwrap();
    assert_eq!(sealer.open("taro", &sealed).unwrap().expose_secret(), URI);
    assert_eq!(sealed.len(), 1 + 4 + 24 + URI.len() + 16);
    assert!(!sealed.windows(8).any(|w| URI.windows(8).any(|u| u == w)));
    let again = sealer.seal("taro", URI).unwrap();
    assert_ne!(sealed, again, "every seal draws its own nonce");
    assert_eq!(sealer.open("taro", &again).unwrap().expose_secret(), URI);
}

/// A seed sealed for one account does not open for another, including
/// account ids that differ only by a prefix or a trailing byte.
#[test]
fn a_seed_sealed_for_one_account_does_not_open_for_another() {
    let sealer = AeadSealer::new(key(1, 1));
    let sealed = sealer.seal("taro", URI).unwrap();
    for other in ["jiro", "Taro", "taro ", "tar", "", "taro\0"] {
        assert_eq!(
            kind(sealer.open(other, &sealed)),
            SealErrorKind::AuthenticationFailed,
            "{other:?}"
        );
    }
}

/// Changing any single bit, cutting the end off or adding a byte makes
/// the seed fail to open.
#[test]
fn any_altered_byte_fails_to_open() {
    let sealer = AeadSealer::new(key(1, 1));
    let sealed = sealer.seal("taro", URI).unwrap();
    for i in 0..sealed.len() {
        for bit in 0..8 {
            let mut bad = sealed.clone();
            bad[i] ^= 1 << bit;
            assert!(sealer.open("taro", &bad).is_err(), "byte {i} bit {bit}");
        }
    }
    for len in 0..sealed.len() {
        assert!(sealer.open("taro", &sealed[..len]).is_err(), "cut to {len}");
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(sealer.open("taro", &longer).is_err());
}

/// The key id is authenticated: pointing a seed at another key the sealer
/// holds is an authentication failure, not a read under that key.
#[test]
fn an_edited_key_id_does_not_open() {
    let sealer = AeadSealer::new(key(2, 7)).with_previous(key(1, 7)).unwrap();
    let sealed = sealer.seal("taro", URI).unwrap();
    assert_eq!(AeadSealer::key_id_of(&sealed), Some(KeyId(2)));
    let mut edited = sealed.clone();
    edited[1..5].copy_from_slice(&1u32.to_be_bytes());
    // Same key bytes under both ids: only the associated data tells them
    // apart, and it does.
    assert_eq!(
        kind(sealer.open("taro", &edited)),
        SealErrorKind::AuthenticationFailed
    );
}

/// Rotation: key 1 sealed it; a sealer with key 2 current and key 1 as
/// previous opens it and says it needs resealing; resealing moves it to
/// key 2; a sealer without key 1 reports the unknown key, not tampering.
#[test]
fn keys_rotate() {
    let old = AeadSealer::new(key(1, 1));
    let sealed = old.seal("taro", URI).unwrap();
    assert!(!old.needs_reseal(&sealed));
    assert_eq!(AeadSealer::key_id_of(&sealed), Some(KeyId(1)));

    let rotated = AeadSealer::new(key(2, 2)).with_previous(key(1, 1)).unwrap();
    assert_eq!(rotated.current_key_id(), KeyId(2));
    let opened = rotated.open("taro", &sealed).unwrap();
    assert_eq!(opened.expose_secret(), URI);
    assert!(rotated.needs_reseal(&sealed));

    let resealed = rotated.seal("taro", opened.expose_secret()).unwrap();
    assert_eq!(AeadSealer::key_id_of(&resealed), Some(KeyId(2)));
    assert!(!rotated.needs_reseal(&resealed));

    let retired = AeadSealer::new(key(2, 2));
    let err = retired.open("taro", &sealed).unwrap_err();
    assert_eq!(err.kind(), SealErrorKind::UnknownKey(KeyId(1)));
    assert!(err.to_string().contains("key 1"), "{err}");
    assert_eq!(
        retired.open("taro", &resealed).unwrap().expose_secret(),
        URI
    );

    // Bytes that are not in the format need resealing and name no key.
    assert!(rotated.needs_reseal(URI));
    assert_eq!(AeadSealer::key_id_of(URI), None);
}

#[test]
fn bad_keys_are_refused() {
    assert_eq!(
        AeadSealer::new(key(1, 1))
            .with_previous(key(1, 2))
            .unwrap_err(),
        KeyError::DuplicateId(KeyId(1))
    );
    for len in [0, 16, 31, 33, 64] {
        assert_eq!(
            SealKey::new(KeyId(4), &vec![0; len]).unwrap_err(),
            KeyError::WrongLength {
                id: KeyId(4),
                len,
                expected: 32
            }
        );
    }
    // Through the crate error, a bad key is configuration, not an outage.
    let err = Error::from(SealKey::new(KeyId(4), &[0; 31]).unwrap_err());
    assert!(!err.is_infrastructure());
}

#[derive(Debug)]
struct Broken;

impl Random for Broken {
    fn fill(&self, _: &mut [u8]) -> Result<(), RandomError> {
        Err(RandomError::new(std::io::Error::other("entropy gone")))
    }
}

/// A failing random source is an error, never a panic and never a seal
/// with a predictable nonce.
#[test]
fn a_failing_random_source_is_an_error() {
    let sealer = AeadSealer::new(key(1, 1)).with_rng(Arc::new(Broken));
    let err = sealer.seal("taro", URI).unwrap_err();
    assert_eq!(err.kind(), SealErrorKind::Unavailable);
    assert!(std::error::Error::source(&err).is_some());
    assert!(SealKey::generate(KeyId(1), &Broken).is_err());
    // A seeded source is honoured (and repeats, so only for tests).
    let a = AeadSealer::new(key(1, 1)).with_rng(Arc::new(LockedRng::seeded(9)));
    let b = AeadSealer::new(key(1, 1)).with_rng(Arc::new(LockedRng::seeded(9)));
    assert_eq!(a.seal("taro", URI).unwrap(), b.seal("taro", URI).unwrap());
}

/// `Debug` shows key ids, never key bytes.
#[test]
fn debug_shows_key_ids_only() {
    let sealer = AeadSealer::new(key(2, 0xAB))
        .with_previous(key(1, 0xCD))
        .unwrap();
    let text = format!("{sealer:?} {:?}", key(3, 0xAB));
    assert!(
        text.contains("AeadSealer") && text.contains("KeyId(2)"),
        "{text}"
    );
    assert!(
        text.contains("KeyId(1)") && text.contains("KeyId(3)"),
        "{text}"
    );
    for leak in ["171", "205", "ab", "AB", "cd", "CD"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}

/// The service can't be built without a sealer (it is an argument of
/// `TwoFactor::builder`; the doc test there shows that leaving it out does
/// not compile). Storing seeds in clear has to be asked for by name.
#[test]
fn the_builder_takes_a_sealer_and_unsealed_storage_by_name() {
    let gateway = RecordingGateway::new();
    let builder = |sealer: Arc<dyn ninsho::seal::Sealer>| {
        TwoFactor::builder(
            "Example",
            Arc::new(MemoryStore::new()),
            Arc::new(gateway.clone()),
            support::hasher(),
            sealer,
        )
    };
    assert!(builder(support::sealer()).build().is_ok());
    assert!(builder(Arc::new(DangerousUnsealed)).build().is_ok());
}

/// The old paths keep compiling: the trait and error from `service`, the
/// unsealed store under its old name (deprecated).
#[test]
fn old_paths_still_work() {
    let sealer: Arc<dyn ninsho::service::Sealer> = Arc::new(DangerousUnsealed);
    assert_eq!(sealer.seal("a", b"x").unwrap(), b"x");
    let _: Option<ninsho::service::SealError> = None;
    #[allow(deprecated)]
    let old = ninsho::service::UnsealedStorage;
    assert_eq!(old.open("a", b"x").unwrap().expose_secret(), b"x");
}
