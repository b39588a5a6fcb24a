//! Recovery-code redemption and trusted-device checks.
//!
//! - `hmac_sha256_prepared`: the floor, one HMAC-SHA-256 with a prepared key;
//! - `engine/find_hit_last`, `engine/find_miss`: the pure lookup over a set
//!   of 10 (one HMAC, ten constant-time compares);
//! - `service/recovery_miss`: a wrong recovery code at the second step on
//!   `MemoryStore` (record read, the guess counted, lookup);
//! - `service/device_check`: `TwoFactor::check_device` (device read, epoch
//!   read, one HMAC). A right recovery code is in the `journeys` bench.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use ninsho::gateway::RecordingGateway;
use ninsho::limits::FailurePolicy;
use ninsho::model::AccountId;
use ninsho::recovery::{self, RecoveryPolicy};
use ninsho::service::{Proof, SignInStart, TwoFactor};
use ninsho::store::MemoryStore;
use ninsho::{AeadSealer, HashKey, KeyId, KeyedHasher, LockedRng, ManualClock, SealKey};
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
    let gateway = RecordingGateway::new();
    // Misses must not lock the bench account out.
    let no_lockout = FailurePolicy {
        free_failures: u32::MAX,
        hard_stop: u32::MAX,
        ..FailurePolicy::default()
    };
    let service = TwoFactor::builder(
        "Bench",
        Arc::new(MemoryStore::new()),
        Arc::new(gateway.clone()),
        hasher(),
        Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[4; 32]).unwrap())),
    )
    .clock(Arc::new(clock.clone()))
    .rng(Arc::new(LockedRng::seeded(2)))
    .failure_policy(no_lockout)
    .build()
    .unwrap();
    let alice = AccountId::new("alice");
    // A phone with two-step sign-in on, then a sign-in that trusts the
    // device.
    let token = rt.block_on(async {
        let ticket = service
            .phone_send_code(&alice, "090-1234-5678", None, None)
            .await
            .unwrap();
        let code = gateway.last_secret_to("+819012345678").unwrap();
        service
            .phone_confirm(&alice, &ticket.challenge_id, code.expose_secret(), true)
            .await
            .unwrap();
        let SignInStart::Required { methods } = service.sign_in_begin(&alice, None).await.unwrap()
        else {
            panic!("two-step sign-in is on");
        };
        let ticket = service
            .sign_in_send_code(&alice, &methods[0], None, None)
            .await
            .unwrap();
        let code = gateway.last_secret_to("+819012345678").unwrap();
        let proof = Proof::Code {
            challenge: &ticket.challenge_id,
            code: code.expose_secret(),
        };
        let signed_in = service
            .sign_in_complete(&alice, proof, Some("bench"), None)
            .await
            .unwrap();
        signed_in.device.unwrap().0
    });
    g.bench_function("service/recovery_miss", |b| {
        b.iter(|| {
            let proof = Proof::RecoveryCode {
                code: black_box("ZZZZ-ZZZZ-ZZZZ"),
            };
            let r = rt.block_on(service.sign_in_complete(&alice, proof, None, None));
            assert!(r.is_err());
        })
    });
    g.bench_function("service/device_check", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(service.check_device(&alice, black_box(token.expose_secret())))
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(factor_benches, benches);
criterion_main!(factor_benches);
