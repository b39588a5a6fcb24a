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
use ninsho::gateway::{DeliveryError, Gateway, Message, Receipt};
use ninsho::limits::{RateLimit, SendLimits};
use ninsho::model::{Destination, Purpose};
use ninsho::seal::DangerousUnsealed;
use ninsho::service::{IssueRequest, OneTimeCodes, TwoFactor};
use ninsho::store::{ChallengeStore, LimitStore, MemoryStore, PurgeStore};
use ninsho::{HashKey, KeyId, KeyedHasher};

/// Accepts every message and remembers the last code per destination
/// (in 16 shards, so the bench's own bookkeeping doesn't serialise threads).
#[derive(Debug, Default)]
struct NoopGateway {
    last: [std::sync::Mutex<std::collections::HashMap<String, String>>; 16],
}

impl NoopGateway {
    fn shard(
        &self,
        to: &str,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        let i = to.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        self.last[i % 16].lock().unwrap()
    }
}

#[async_trait]
impl Gateway for NoopGateway {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        if let Some(s) = &message.secret {
            self.shard(&message.to)
                .insert(message.to.clone(), s.expose_secret().to_owned());
        }
        Ok(Receipt::new(None))
    }
}

fn service_on(store: Arc<MemoryStore>, gateway: Arc<NoopGateway>) -> OneTimeCodes {
    let unlimited = RateLimit::new(u64::MAX, time::Duration::minutes(10));
    let limits = SendLimits {
        per_destination: unlimited,
        per_account: unlimited,
        per_caller: unlimited,
        ..SendLimits::default()
    };
    TwoFactor::builder(
        "Bench",
        store,
        gateway,
        KeyedHasher::new(HashKey::new(KeyId(1), &[3; 32]).unwrap()),
        Arc::new(DangerousUnsealed), // no authenticator seeds here
    )
    // The production defaults: SystemClock and OsRandom.
    .limits(limits)
    .build()
    .unwrap()
    .one_time_codes()
}

/// Destinations cycle through 4096 numbers: distinct enough that racing
/// threads rarely share a counter, few enough that the store's maps stay
/// the size a real deployment's would.
/// Parsed once (number parsing is the host's input handling, not part of
/// the round trip being measured).
fn phone(n: u64) -> Destination {
    static PHONES: std::sync::OnceLock<Vec<Destination>> = std::sync::OnceLock::new();
    let phones = PHONES.get_or_init(|| {
        (0..4096)
            .map(|i| Destination::phone(&format!("+8190{i:08}")).unwrap())
            .collect()
    });
    phones[usize::try_from(n % 4096).unwrap()].clone()
}

async fn round_trip(svc: &OneTimeCodes, gw: &NoopGateway, n: u64) {
    let dest = phone(n);
    let ticket = svc
        .send(IssueRequest::new(dest.clone(), Purpose::StepUp))
        .await
        .unwrap();
    let code = gw.shard(dest.address()).remove(dest.address()).unwrap();
    svc.verify(&ticket.challenge_id, &code, &Purpose::StepUp, &dest)
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

    // The harness's own cost per iteration (entering the runtime), to
    // subtract from the flow figures.
    g.bench_function("block_on_empty", |b| b.iter(|| rt.block_on(async {})));

    let gw = Arc::new(NoopGateway::default());
    let svc_store = Arc::new(MemoryStore::new());
    let svc = service_on(svc_store.clone(), gw.clone());
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
    // The wrong code is the real one with its first digit changed, so it is
    // well formed and hashed like an attacker's guess.
    let dest = phone(0);
    let mut ticket = None;
    let mut wrong = String::new();
    let mut tries = 0u32;
    g.bench_function("verify_wrong", |b| {
        b.iter(|| {
            rt.block_on(async {
                if tries.is_multiple_of(4) {
                    ticket = Some(
                        svc.send(IssueRequest::new(dest.clone(), Purpose::StepUp))
                            .await
                            .unwrap(),
                    );
                    let code = gw.shard(dest.address()).remove(dest.address()).unwrap();
                    let first = (code.as_bytes()[0] - b'0' + 1) % 10;
                    wrong = format!("{first}{}", &code[1..]);
                }
                tries += 1;
                let t = ticket.as_ref().unwrap();
                let r = svc
                    .verify(&t.challenge_id, &wrong, &Purpose::StepUp, &dest)
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

    // The store's share of a round trip: the five store calls issue and
    // verify make (one limit hit, insert, two reads, one compare-and-set)
    // on a record like the flow's.
    let raw_store = MemoryStore::new();
    let template = {
        let dest = phone(1);
        let ticket = rt
            .block_on(svc.send(IssueRequest::new(dest.clone(), Purpose::StepUp)))
            .unwrap();
        rt.block_on(svc_store.challenge(&ticket.challenge_id))
            .unwrap()
            .unwrap()
    };
    let mut n = 0u64;
    g.bench_function("store_calls_only", |b| {
        b.iter(|| {
            rt.block_on(async {
                n += 1;
                let mut r = template.clone();
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&n.to_le_bytes());
                r.id = ninsho::model::ChallengeId::from_bytes(id);
                raw_store
                    .hit(
                        &format!("dest:{}", n % 4096),
                        time::Duration::minutes(10),
                        r.created_at,
                    )
                    .await
                    .unwrap();
                raw_store.insert_challenge(&r).await.unwrap();
                let read = raw_store.challenge(&r.id).await.unwrap().unwrap();
                let mut next = read.clone();
                next.version += 1;
                raw_store
                    .replace_challenge(&next, read.version)
                    .await
                    .unwrap();
                std::hint::black_box(raw_store.challenge(&r.id).await.unwrap());
            })
        })
    });

    // The machine's own scaling ceiling in the same run: the HMAC work
    // alone, split over one or two OS threads.
    for threads in [1u64, 2] {
        let hasher = Arc::new(KeyedHasher::new(HashKey::new(KeyId(1), &[3; 32]).unwrap()));
        g.bench_function(format!("hmac_only_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for t in 0..threads {
                        let hasher = hasher.clone();
                        let share = iters / threads + u64::from(t < iters % threads);
                        scope.spawn(move || {
                            for i in 0..share {
                                std::hint::black_box(hasher.hash(&i.to_le_bytes(), b"123456"));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }

    // The same round trips split over one or two worker threads.
    for threads in [1usize, 2] {
        let mt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .build()
            .unwrap();
        // One service and one store shared by every thread, as in a host.
        let gw = Arc::new(NoopGateway::default());
        let store = Arc::new(MemoryStore::new());
        let svc = service_on(store.clone(), gw.clone());
        let counter = Arc::new(AtomicU64::new(1 << 40));
        g.bench_function(format!("issue_verify_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                // Drop the consumed challenges of earlier samples (untimed),
                // as a host's periodic purge would.
                let far = time::OffsetDateTime::now_utc() + time::Duration::days(1);
                mt.block_on(store.purge(far)).unwrap();
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
