//! OTP and keyed-hash costs against their compute floors and totp-rs.
//!
//! Everything uses the RFC 6238 SHA-1 seed `12345678901234567890`, 6 digits
//! and a 30 s period. Bench ids are `<who>/<what>`:
//!
//! - `floor/*`: the least work the operation can do with the same crates
//!   (hmac 0.13, sha1 0.11, sha2 0.11, subtle 2.6) used directly;
//! - `ninsho/*`: the public API;
//! - `totp-rs/*`: the same operation in totp-rs 6.
//!
//! Ratios to read: `ninsho/totp_generate`, `ninsho/verify_*` and
//! `totp-rs/*` over `floor/g0_sha1_totp_code` (G0, one prepared HMAC-SHA-1
//! code); `ninsho/keyed_hash_code` over `floor/hmac_sha256_prepared`;
//! `floor/tag_compare_32` in absolute nanoseconds.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use ninsho::hash::{HashKey, KeyId, KeyedHasher, Tag};
use ninsho::otp::{OtpSecret, Totp, Window};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// RFC 6238 Appendix B SHA-1 seed.
const SEED: &[u8; 20] = b"12345678901234567890";
/// A realistic instant, 20 s into its step.
const T: u64 = 1_700_000_000;
const PERIOD: u64 = 30;
/// Context for the keyed-hash benches.
const CTX: &[u8] = b"ctx";
/// The secret hashed by the keyed-hash benches.
const CODE: &[u8] = b"123456";
/// Key for the keyed-hash benches (32 bytes, the minimum).
const HASH_KEY: [u8; 32] = [0x42; 32];

/// RFC 4226 §5.3 dynamic truncation of an HMAC-SHA-1 output.
#[inline]
fn truncate(h: &[u8; 20]) -> u32 {
    let offset = usize::from(h[19] & 0x0f);
    u32::from_be_bytes([h[offset], h[offset + 1], h[offset + 2], h[offset + 3]]) & 0x7fff_ffff
}

/// G0: one code from a prepared HMAC-SHA-1 state, nothing else.
#[inline]
fn g0(prepared: &Hmac<Sha1>, counter: u64) -> u32 {
    let mut mac = prepared.clone();
    mac.update(&counter.to_be_bytes());
    let out: [u8; 20] = mac.finalize().into_bytes().into();
    truncate(&out) % 1_000_000
}

fn ninsho_totp() -> Totp {
    Totp::builder(OtpSecret::from_bytes(SEED.to_vec()).expect("seed"))
        .account("bench")
        .digits(6)
        .period(PERIOD)
        .window(Window::new(1, 1))
        .build()
        .expect("totp")
}

fn totp_rs() -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(PERIOD)
        .with_secret(totp_rs::Secret::new_stack(*SEED))
        .build()
        .expect("totp-rs")
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn otp(c: &mut Criterion) {
    let prepared = <Hmac<Sha1> as KeyInit>::new_from_slice(SEED).expect("hmac key");
    let totp = ninsho_totp();
    let theirs = totp_rs();
    let step = T / PERIOD;

    // Inputs, built and cross-checked once.
    let current = totp.code_at(T).to_string();
    let edge = totp.code_at_step(step - 1).to_string();
    let window: Vec<String> = (step - 1..=step + 1)
        .map(|s| totp.code_at_step(s).to_string())
        .collect();
    let wrong = (0..1_000_000u32)
        .map(|v| format!("{v:06}"))
        .find(|c| !window.contains(c))
        .expect("a code outside the window");
    assert_eq!(format!("{:06}", g0(&prepared, step)), current);
    assert_eq!(theirs.generate(T).to_string(), current);
    assert_eq!(totp.verify(&current, T, None).map(|m| m.drift), Ok(0));
    assert_eq!(totp.verify(&edge, T, None).map(|m| m.drift), Ok(-1));
    assert!(totp.verify(&wrong, T, None).is_err());
    assert_eq!(theirs.check(&current, T), Some(step));
    assert_eq!(theirs.check(&edge, T), Some(step - 1));
    assert_eq!(theirs.check(&wrong, T), None);

    let mut floor = c.benchmark_group("floor");
    floor.bench_function("g0_sha1_totp_code", |b| {
        b.iter(|| black_box(g0(black_box(&prepared), black_box(T) / PERIOD)));
    });
    floor.finish();

    let mut ours = c.benchmark_group("ninsho");
    ours.bench_function("totp_generate", |b| {
        b.iter(|| black_box(totp.code_at(black_box(T))));
    });
    ours.bench_function("verify_wrong_code", |b| {
        b.iter(|| black_box(totp.verify(black_box(&wrong), black_box(T), None)));
    });
    ours.bench_function("verify_accept_current", |b| {
        b.iter(|| black_box(totp.verify(black_box(&current), black_box(T), None)));
    });
    ours.bench_function("verify_accept_window_edge", |b| {
        b.iter(|| black_box(totp.verify(black_box(&edge), black_box(T), None)));
    });
    ours.finish();

    let mut rs = c.benchmark_group("totp-rs");
    rs.bench_function("generate", |b| {
        b.iter(|| black_box(theirs.generate(black_box(T))));
    });
    rs.bench_function("check_wrong", |b| {
        b.iter(|| black_box(theirs.check(black_box(&wrong), black_box(T))));
    });
    rs.bench_function("check_current", |b| {
        b.iter(|| black_box(theirs.check(black_box(&current), black_box(T))));
    });
    rs.bench_function("check_edge", |b| {
        b.iter(|| black_box(theirs.check(black_box(&edge), black_box(T))));
    });
    rs.finish();
}

fn hashing(c: &mut Criterion) {
    let key = HashKey::new(KeyId(1), &HASH_KEY).expect("hash key");
    let hasher = KeyedHasher::new(key);
    let prepared = <Hmac<Sha256> as KeyInit>::new_from_slice(&HASH_KEY).expect("hmac key");

    // The floor hashes exactly what `HashKey::tag` hashes:
    // u32 big-endian context length ‖ context ‖ secret.
    let floor_tag = |mac: &Hmac<Sha256>, context: &[u8], secret: &[u8]| -> [u8; 32] {
        let mut mac = mac.clone();
        mac.update(&(context.len() as u32).to_be_bytes());
        mac.update(context);
        mac.update(secret);
        mac.finalize().into_bytes().into()
    };
    assert_eq!(
        floor_tag(&prepared, CTX, CODE),
        hasher.hash(CTX, CODE).tag.0,
        "the floor must hash the same bytes as ninsho"
    );

    let a = Tag(hasher.hash(CTX, CODE).tag.0);
    let mut flipped = a.0;
    flipped[31] ^= 1;
    let b_tag = Tag(flipped);

    let mut floor = c.benchmark_group("floor");
    floor.bench_function("tag_compare_32", |b| {
        b.iter(|| black_box(black_box(&a).ct_eq(black_box(&b_tag))));
    });
    floor.bench_function("hmac_sha256_prepared", |b| {
        b.iter(|| {
            black_box(floor_tag(
                black_box(&prepared),
                black_box(CTX),
                black_box(CODE),
            ))
        });
    });
    floor.finish();

    let mut ours = c.benchmark_group("ninsho");
    ours.bench_function("keyed_hash_code", |b| {
        b.iter(|| black_box(hasher.hash(black_box(CTX), black_box(CODE))));
    });
    ours.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = otp, hashing
}
criterion_main!(benches);
