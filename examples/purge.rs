//! Housekeeping on a schedule: `cargo run --example purge`.
//!
//! Every record ninsho writes has a lifetime (see `PurgeStore`'s docs);
//! a store without native expiry keeps dead ones until `purge` runs. This
//! example sends codes to a stream of new phone numbers, and a background
//! task purges the store on a timer, as a host would every few minutes.
//! Time is a manual clock here, moved 15 minutes per round, so the run is
//! instant and repeatable; in production, the timer and the clock are both
//! real and the loop looks the same.

use std::sync::Arc;
use std::time::Duration as Interval;

use ninsho::gateway::RecordingGateway;
use ninsho::prelude::*;
use ninsho::store::{MemoryStore, PurgeStore, Store};
use ninsho::{Clock, ManualClock};
use time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long expired records stay before the purge takes them: a late
/// attempt on a code that expired less than this ago is told "expired"
/// rather than "unknown".
const GRACE: Duration = Duration::minutes(5);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::at_unix(1_763_683_200)?; // 2025-11-21 00:00:00 UTC
    let service = TwoFactor::builder(
        "Example",
        store.clone() as Arc<dyn Store>,
        Arc::new(RecordingGateway::new()),
        KeyedHasher::new(HashKey::new(KeyId(1), &[0x5A; 32])?),
        Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[0x5B; 32])?)),
    )
    .clock(Arc::new(clock.clone()))
    .build()?;

    // The housekeeping task: purge on every tick of a timer. Here each
    // tick also waits for the simulation to hand it a round (and hears
    // back when the purge is done), so the printout comes out in order.
    let (tick_tx, mut tick_rx) = mpsc::channel::<oneshot::Sender<()>>(1);
    let housekeeping = {
        let (store, clock) = (store.clone(), clock.clone());
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(Interval::from_millis(10));
            let mut total = 0;
            while let Some(done) = tick_rx.recv().await {
                timer.tick().await;
                match store.purge(clock.now() - GRACE).await {
                    Ok(purged) => {
                        total += purged.total();
                        println!(
                            "  purge: {} challenges, {} counters, {} devices, {} verifications",
                            purged.challenges,
                            purged.counters,
                            purged.devices,
                            purged.verifications
                        );
                    }
                    // A failed purge loses nothing: the next one catches up.
                    Err(e) => eprintln!("  purge failed, trying again next time: {e}"),
                }
                let _ = done.send(());
            }
            total
        })
    };

    for round in 0..4u32 {
        // Twenty sign-ups send a code each: a challenge and a few rate-limit
        // windows apiece.
        for n in 0..20u32 {
            let account = AccountId::new(format!("user-{round}-{n}"));
            let number = format!("+8190{:04}{:04}", 1000 + round, 1000 + n);
            service
                .phone_send_code(&account, &number, None, None)
                .await?;
        }
        println!("round {round}: {store:?}");
        clock.advance(Duration::minutes(15));
        purge_now(&tick_tx).await?;
    }
    // A last purge once everything sent has expired.
    clock.advance(Duration::days(2));
    purge_now(&tick_tx).await?;
    drop(tick_tx);
    let total = housekeeping.await?;
    println!("after the last purge: {store:?}");
    println!("{total} records purged in all.");
    Ok(())
}

/// Lets the housekeeping task run one purge, and waits until it has.
async fn purge_now(
    tick: &mpsc::Sender<oneshot::Sender<()>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (done, finished) = oneshot::channel();
    tick.send(done).await?;
    finished.await?;
    Ok(())
}
