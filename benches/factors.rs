//! Recovery-code redemption and trusted-device checks.
//!
//! - `hmac_sha256_prepared`: the floor, one HMAC-SHA-256 with a prepared key;
//! - `engine/find_hit_last`, `engine/find_miss`: the pure lookup over a set
//!   of 10 (one HMAC, ten constant-time compares);
//! - `flow/redeem_hit_last`, `flow/redeem_miss`: the whole redemption on
//!   `MemoryStore` (lockout read, set read, lookup, compare-and-set or
//!   failure count);
//! - `flow/device_check`: a trusted-device check (device read, epoch read,
//!   one HMAC).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use ninsho::flows::{Ports, RecoveryCodes, TrustedDevices};
use ninsho::limits::FailurePolicy;
use ninsho::model::AccountId;
use ninsho::recovery::{self, RecoveryPolicy};
use ninsho::store::MemoryStore;
use ninsho::{HashKey, KeyId, KeyedHasher, LockedRng, ManualClock};
use sha2::Sha256;
use time::OffsetDateTime;

fn hasher() -> KeyedHasher {
    KeyedHasher::new(HashKey::new(KeyId(1), &[3; 32]).unwrap())
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("factors");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    // The floor: the same bytes the recovery lookup hashes (context of 25
    // bytes behind a 4-byte length, then 12 code bytes), prepared key.
    let prepared = <Hmac<Sha256> as KeyInit>::new_from_slice(&[3; 32]).unwrap();
    let ctx = [7u8; 25];
    g.bench_function("hmac_sha256_prepared", |b| {
        b.iter(|| {
            let mut m = prepared.clone();
            m.update(&25u32.to_be_bytes());
            m.update(black_box(&ctx));
            m.update(black_box(b"ABCDEFGHJKMN"));
            black_box(m.finalize().into_bytes())
        })
    });

    let h = hasher();
    let rng = LockedRng::seeded(1);
    let (plain, set) = recovery::generate(
        &RecoveryPolicy::default(),
        &h,
        &rng,
        OffsetDateTime::UNIX_EPOCH,
    )
    .unwrap();
    let last = plain.expose_secret()[9].to_owned();
    g.bench_function("engine/find_hit_last", |b| {
        b.iter(|| black_box(recovery::find(&set, black_box(&last), &h)))
    });
    g.bench_function("engine/find_miss", |b| {
        b.iter(|| black_box(recovery::find(&set, black_box("ZZZZ-ZZZZ-ZZZZ"), &h)))
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let clock = ManualClock::at_unix(1_763_683_200).unwrap();
    let ports = Ports::new(Arc::new(MemoryStore::new()), hasher())
        .with_clock(Arc::new(clock.clone()))
        .with_rng(Arc::new(LockedRng::seeded(2)));
    // Misses must not lock the bench account out.
    let no_lockout = FailurePolicy {
        free_failures: u32::MAX,
        hard_stop: u32::MAX,
        ..FailurePolicy::default()
    };
    let codes = RecoveryCodes::new(ports.clone()).with_failure_policy(no_lockout);
    let alice = AccountId::new("alice");
    g.bench_function("flow/redeem_hit_last", |b| {
        b.iter_batched(
            || {
                let set = rt.block_on(codes.generate(&alice)).unwrap();
                set.expose_secret()[9].to_owned()
            },
            |code| rt.block_on(codes.redeem(&alice, &code)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    rt.block_on(codes.generate(&alice)).unwrap();
    g.bench_function("flow/redeem_miss", |b| {
        b.iter(|| {
            let r = rt.block_on(codes.redeem(&alice, black_box("ZZZZ-ZZZZ-ZZZZ")));
            assert!(r.is_err());
        })
    });

    let devices = TrustedDevices::new(ports);
    let (token, _) = rt.block_on(devices.trust(&alice, "bench")).unwrap();
    g.bench_function("flow/device_check", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(devices.check(&alice, black_box(token.expose_secret())))
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(factor_benches, benches);
criterion_main!(factor_benches);
