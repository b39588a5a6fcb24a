//! One-time-code round trips on `MemoryStore` with a no-op gateway.
//!
//! - `issue_verify`: issue a code, then verify it (the user's path);
//! - `verify_wrong`: one wrong code against a live challenge (the
//!   attacker's path; the challenge is replaced before it runs out of
//!   attempts);
//! - `hmac_only`: the HMAC work a round trip needs (hash the code at issue,
//!   hash the input at verify), the floor the library overhead is compared to;
//! - `*_2_threads`: the same round trip on two worker threads, for scaling.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use ninsho::contact::Destination;
use ninsho::flows::{Challenges, IssueRequest};
use ninsho::gateway::{DeliveryError, Gateway, Message, Receipt};
use ninsho::limits::{RateLimit, SendLimits};
use ninsho::store::{MemoryStore, Purpose};
use ninsho::{HashKey, KeyId, KeyedHasher, LockedRng, ManualClock, Random};

/// Accepts every message and remembers the last code per destination.
#[derive(Debug, Default)]
struct NoopGateway {
    last: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

#[async_trait]
impl Gateway for NoopGateway {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        if let Some(s) = &message.secret {
            let mut last = self.last.lock().unwrap();
            last.insert(message.to.clone(), s.expose_secret().to_owned());
        }
        Ok(Receipt::new(None))
    }
}

fn service(gateway: Arc<NoopGateway>) -> Challenges {
    let unlimited = RateLimit::new(u64::MAX, time::Duration::minutes(10));
    let limits = SendLimits {
        per_destination: unlimited,
        per_account: unlimited,
        per_caller: unlimited,
        ..SendLimits::default()
    };
    Challenges::builder()
        .service_name("Bench")
        .store(Arc::new(MemoryStore::new()))
        .gateway(gateway)
        .hasher(KeyedHasher::new(HashKey::new(KeyId(1), &[3; 32]).unwrap()))
        .clock(Arc::new(ManualClock::at_unix(1_763_683_200).unwrap()))
        .rng(Arc::new(LockedRng::seeded(1)) as Arc<dyn Random>)
        .limits(limits)
        .build()
        .unwrap()
}

/// A distinct destination per iteration keeps the per-destination
/// counters from growing into one hot key.
fn phone(n: u64) -> Destination {
    Destination::phone(&format!("+8190{:08}", n % 100_000_000)).unwrap()
}

async fn round_trip(svc: &Challenges, gw: &NoopGateway, n: u64) {
    let dest = phone(n);
    let ticket = svc
        .issue(IssueRequest::new(dest.clone(), Purpose::SignIn))
        .await
        .unwrap();
    let code = gw.last.lock().unwrap().remove(dest.address()).unwrap();
    svc.verify(&ticket.challenge_id, &code, &Purpose::SignIn, &dest)
        .await
        .unwrap();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("challenges");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));

    let gw = Arc::new(NoopGateway::default());
    let svc = service(gw.clone());
    let counter = AtomicU64::new(0);
    g.bench_function("issue_verify", |b| {
        b.iter(|| {
            rt.block_on(round_trip(
                &svc,
                &gw,
                counter.fetch_add(1, Ordering::Relaxed),
            ))
        })
    });

    // Wrong code: replace the challenge every 4 attempts (5 would kill it).
    let dest = phone(0);
    let mut ticket = None;
    let mut tries = 0u32;
    g.bench_function("verify_wrong", |b| {
        b.iter(|| {
            rt.block_on(async {
                if tries % 4 == 0 {
                    ticket = Some(
                        svc.issue(IssueRequest::new(dest.clone(), Purpose::SignIn))
                            .await
                            .unwrap(),
                    );
                }
                tries += 1;
                let t = ticket.as_ref().unwrap();
                let r = svc
                    .verify(&t.challenge_id, "000000", &Purpose::SignIn, &dest)
                    .await;
                assert!(r.is_err());
            })
        })
    });

    let hasher = KeyedHasher::new(HashKey::new(KeyId(1), &[3; 32]).unwrap());
    let ctx = [7u8; 21];
    g.bench_function("hmac_only", |b| {
        b.iter(|| {
            let stored = hasher.hash(std::hint::black_box(&ctx), b"123456");
            std::hint::black_box(
                hasher
                    .verify(&ctx, std::hint::black_box(b"123456"), &stored)
                    .unwrap(),
            )
        })
    });

    // The same round trips split over one or two worker threads.
    for threads in [1usize, 2] {
        let mt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .build()
            .unwrap();
        // One service and one store shared by every thread, as in a host.
        let gw = Arc::new(NoopGateway::default());
        let svc = service(gw.clone());
        let counter = Arc::new(AtomicU64::new(1 << 40));
        g.bench_function(format!("issue_verify_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                mt.block_on(async {
                    let mut tasks = Vec::new();
                    for t in 0..threads {
                        let (svc, gw, counter) = (svc.clone(), gw.clone(), counter.clone());
                        let share =
                            iters / threads as u64 + u64::from((t as u64) < iters % threads as u64);
                        tasks.push(tokio::spawn(async move {
                            for _ in 0..share {
                                round_trip(&svc, &gw, counter.fetch_add(1, Ordering::Relaxed))
                                    .await;
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(challenge_benches, benches);
criterion_main!(challenge_benches);
