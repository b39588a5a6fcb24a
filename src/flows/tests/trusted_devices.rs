//! Trusted devices through the public API: `TrustedDevices` on a real
//! `MemoryStore` (behaviour), on mockall mocks (store failures fail closed),
//! and behind `Yielding`, which suspends after every store call so 64 tasks
//! on 4 worker threads really interleave between reads and writes.
//!
//! Time comes from a `ManualClock` (nothing sleeps) and randomness from a
//! seeded `LockedRng`.

use ninsho::AccountRefusal;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ninsho::device::{self, DeviceCheck, DevicePolicy, DeviceToken};

use super::ports;
use super::support::{MockDb, T0, TASKS, Yielding, db_down, hasher, store_error, t0};
use ninsho::events::{Event, RecordingEvents};
use ninsho::flows::{DeviceInfo, TrustedDevices};
use ninsho::model::{AccountId, DeviceId, DeviceRecord};
use ninsho::store::{DeviceStore, MemoryStore, StoreErrorKind};
use ninsho::{Error, LockedRng, ManualClock, Refusal};
use time::Duration;
use tokio::sync::Barrier;

const ALICE: &str = "alice@example.com";
const LABEL: &str = "Chrome on Windows";

// ------------------------------------------------------------------ set-up

fn alice() -> AccountId {
    AccountId::new(ALICE)
}

fn bob() -> AccountId {
    AccountId::new("bob@example.com")
}

struct Env {
    devices: TrustedDevices,
    store: Arc<MemoryStore>,
    clock: ManualClock,
    events: RecordingEvents,
}

fn env() -> Env {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::at_unix(T0).unwrap();
    let events = RecordingEvents::new();
    Env {
        devices: TrustedDevices::new(ports(store.clone(), &clock, &events)),
        store,
        clock,
        events,
    }
}

impl Env {
    async fn trust(&self, account: &AccountId, label: &str) -> (String, DeviceInfo) {
        let (token, info) = self.devices.trust(account, label).await.unwrap();
        (token.expose_secret().to_owned(), info)
    }

    async fn check(&self, account: &AccountId, token: &str) -> DeviceCheck {
        self.devices.check(account, token).await.unwrap()
    }

    async fn list(&self, account: &AccountId) -> Vec<DeviceInfo> {
        self.devices.list(account).await.unwrap()
    }

    async fn ids(&self, account: &AccountId) -> Vec<DeviceId> {
        self.list(account).await.iter().map(|d| d.id).collect()
    }

    async fn stored(&self, account: &AccountId, id: &DeviceId) -> Option<DeviceRecord> {
        self.store.device(account, id).await.unwrap()
    }
}

const VALID: DeviceCheck = DeviceCheck::Valid { refresh: false };
const REFRESH: DeviceCheck = DeviceCheck::Valid { refresh: true };

/// The token's secret part (after the last dot).
fn secret_part(token: &str) -> &str {
    token.rsplit('.').next().unwrap()
}

// ------------------------------------------------------------------- trust

#[tokio::test]
async fn trust_gives_a_redacted_token_and_the_device_info() {
    let env = env();
    let (token, info) = env.devices.trust(&alice(), LABEL).await.unwrap();
    let text = token.expose_secret();

    assert!(!format!("{token:?}").contains(text));
    assert!(!format!("{token:?}").contains(secret_part(text)));
    assert!(format!("{token:?}").contains("redacted"));
    let lower = text.to_lowercase();
    for revealing in [
        "alice",
        "example",
        "chrome",
        "windows",
        &ALICE.to_lowercase(),
    ] {
        assert!(!lower.contains(revealing), "{text} reveals {revealing}");
    }
    // Long enough to hold a 256-bit secret.
    assert!(secret_part(text).len() >= 52, "{text}");

    assert_eq!(info.label, LABEL);
    assert_eq!(info.created_at, t0());
    assert_eq!(info.last_used_at, t0());
    assert_eq!(info.expires_at, t0() + Duration::days(30));
    assert_eq!(env.list(&alice()).await, vec![info.clone()]);
    assert!(!format!("{info:?}").contains(secret_part(text)));

    // The store keeps no token.
    let record = env.stored(&alice(), &info.id).await.unwrap();
    assert_eq!(record.account, alice());
    assert_eq!(record.epoch, 0);
    assert_eq!(record.revoked_at, None);
    let json = serde_json::to_string(&record).unwrap();
    for shown in [json, format!("{record:?}"), format!("{:?}", env.devices)] {
        assert!(!shown.contains(secret_part(text)), "{shown}");
    }

    // A second device is another device with another token.
    let (other, other_info) = env.devices.trust(&alice(), LABEL).await.unwrap();
    assert_ne!(other.expose_secret(), text);
    assert_ne!(other_info.id, info.id);
    assert_eq!(env.list(&alice()).await.len(), 2);
}

#[tokio::test]
async fn the_lifetime_is_configurable() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::at_unix(T0).unwrap();
    let events = RecordingEvents::new();
    let devices = TrustedDevices::new(ports(store, &clock, &events)).with_policy(DevicePolicy {
        lifetime: Duration::days(1),
        refresh_every: Duration::minutes(5),
    });
    let (token, info) = devices.trust(&alice(), LABEL).await.unwrap();
    assert_eq!(info.expires_at, t0() + Duration::days(1));
    clock.advance(Duration::minutes(5));
    assert_eq!(
        devices
            .check(&alice(), token.expose_secret())
            .await
            .unwrap(),
        REFRESH
    );
    clock.set(t0() + Duration::days(1));
    assert_eq!(
        devices
            .check(&alice(), token.expose_secret())
            .await
            .unwrap(),
        DeviceCheck::Expired
    );
}

// ------------------------------------------------------------------- check

#[tokio::test]
async fn last_used_is_refreshed_at_most_hourly() {
    let env = env();
    let (token, info) = env.trust(&alice(), LABEL).await;
    assert_eq!(env.check(&alice(), &token).await, VALID);
    env.clock.advance(Duration::hours(1) - Duration::seconds(1));
    assert_eq!(env.check(&alice(), &token).await, VALID);
    assert_eq!(env.list(&alice()).await[0].last_used_at, t0());

    env.clock.set(t0() + Duration::hours(1));
    assert_eq!(env.check(&alice(), &token).await, REFRESH);
    let listed = env.list(&alice()).await;
    assert_eq!(listed[0].last_used_at, t0() + Duration::hours(1));
    // Refreshing "last used" does not extend trust.
    assert_eq!(listed[0].expires_at, info.expires_at);
    assert_eq!(listed[0].created_at, t0());
    assert_eq!(
        env.stored(&alice(), &info.id).await.unwrap().last_used_at,
        t0() + Duration::hours(1)
    );
    assert_eq!(env.check(&alice(), &token).await, VALID);
    env.clock.advance(Duration::minutes(59));
    assert_eq!(env.check(&alice(), &token).await, VALID);
    env.clock.advance(Duration::minutes(1));
    assert_eq!(env.check(&alice(), &token).await, REFRESH);
    assert_eq!(
        env.list(&alice()).await[0].last_used_at,
        t0() + Duration::hours(2)
    );
}

#[tokio::test]
async fn trust_ends_at_exactly_thirty_days() {
    let env = env();
    let (token, info) = env.trust(&alice(), LABEL).await;
    env.clock.set(info.expires_at - Duration::seconds(1));
    assert_eq!(env.check(&alice(), &token).await, REFRESH);
    assert_eq!(env.list(&alice()).await.len(), 1);
    env.clock.set(t0() + Duration::days(30));
    assert_eq!(env.check(&alice(), &token).await, DeviceCheck::Expired);
    assert!(env.list(&alice()).await.is_empty());
    env.clock.advance(Duration::days(400));
    assert_eq!(env.check(&alice(), &token).await, DeviceCheck::Expired);
}

#[tokio::test]
async fn a_token_of_another_account_is_unknown() {
    let env = env();
    let (alices, _) = env.trust(&alice(), LABEL).await;
    let (bobs, _) = env.trust(&bob(), LABEL).await;
    assert_eq!(env.check(&bob(), &alices).await, DeviceCheck::Unknown);
    assert_eq!(env.check(&alice(), &bobs).await, DeviceCheck::Unknown);
    assert_eq!(
        env.check(&AccountId::new("carol"), &alices).await,
        DeviceCheck::Unknown
    );
    // An account whose name differs only in case is another account.
    assert_eq!(
        env.check(&AccountId::new(ALICE.to_uppercase()), &alices)
            .await,
        DeviceCheck::Unknown
    );
    assert_eq!(env.check(&alice(), &alices).await, VALID);
    assert_eq!(env.check(&bob(), &bobs).await, VALID);
}

#[tokio::test]
async fn malformed_or_tampered_tokens_are_unknown() {
    let env = env();
    let (token, info) = env.trust(&alice(), LABEL).await;
    let (other, other_info) = env.trust(&alice(), "Firefox").await;
    let id = info.id.to_string();
    let secret = secret_part(&token).to_owned();
    let other_secret = secret_part(&other).to_owned();

    let flip_last = |s: &str| {
        let mut s = s.to_owned();
        let c = s.pop().unwrap();
        s.push(if c == 'q' { 'r' } else { 'q' });
        s
    };
    let mut flipped_id = id.clone().into_bytes();
    flipped_id[0] = if flipped_id[0] == b'0' { b'1' } else { b'0' };
    let flipped_id = String::from_utf8(flipped_id).unwrap();

    let tampered = [
        String::new(),
        " ".into(),
        "nd1".into(),
        "nd1..".into(),
        format!("nd1.{id}"),
        format!("nd1.{id}."),
        format!("nd1..{secret}"),
        token.to_uppercase(),
        token.replacen("nd1", "nd2", 1),
        format!("{token}.x"),
        format!("{token} "),
        format!(" {token}"),
        format!("{token}\n"),
        format!("{token}=="),
        flip_last(&token),
        token[..token.len() - 1].to_owned(),
        format!("{token}a"),
        // Another device's secret under this id, and this secret under
        // another id.
        format!("nd1.{id}.{other_secret}"),
        format!("nd1.{}.{secret}", other_info.id),
        format!("nd1.{flipped_id}.{secret}"),
        format!("nd1.{}.{secret}", id.to_uppercase()),
        // An all-zero secret.
        format!("nd1.{id}.{}", "a".repeat(secret.len())),
        "🔑".repeat(100),
        "x".repeat(100_000),
        "\0".into(),
    ];
    for t in &tampered {
        if t == &token {
            continue;
        }
        assert_eq!(env.check(&alice(), t).await, DeviceCheck::Unknown, "{t:?}");
    }
    // Nothing was changed by the attempts.
    assert_eq!(env.check(&alice(), &token).await, VALID);
    assert_eq!(env.check(&alice(), &other).await, VALID);
    assert_eq!(env.list(&alice()).await.len(), 2);
}

// ------------------------------------------------------------------ revoke

#[tokio::test]
async fn a_revoked_device_is_revoked_and_leaves_the_list() {
    let env = env();
    let (a, a_info) = env.trust(&alice(), "A").await;
    env.clock.advance(Duration::minutes(1));
    let (b, b_info) = env.trust(&alice(), "B").await;
    env.devices.revoke(&alice(), &a_info.id).await.unwrap();
    assert_eq!(env.check(&alice(), &a).await, DeviceCheck::Revoked);
    assert_eq!(env.check(&alice(), &b).await, VALID);
    assert_eq!(env.ids(&alice()).await, vec![b_info.id]);
    assert_eq!(
        env.stored(&alice(), &a_info.id).await.unwrap().revoked_at,
        Some(t0() + Duration::minutes(1))
    );
    // Revoked stays revoked: later, and after the refresh interval.
    env.clock.advance(Duration::hours(2));
    assert_eq!(env.check(&alice(), &a).await, DeviceCheck::Revoked);
    // Revoking again is fine and changes nothing.
    env.devices.revoke(&alice(), &a_info.id).await.unwrap();
    assert_eq!(env.check(&alice(), &a).await, DeviceCheck::Revoked);
    let revoked_events = env
        .events
        .events()
        .iter()
        .filter(|e| matches!(e, Event::DeviceRevoked { .. }))
        .count();
    assert_eq!(revoked_events, 1);
}

#[tokio::test]
async fn revoking_an_unknown_device_is_refused() {
    let env = env();
    let (token, info) = env.trust(&alice(), LABEL).await;
    let unknown = DeviceId::parse(&"ab".repeat(16)).unwrap();
    assert!(matches!(
        env.devices.revoke(&alice(), &unknown).await,
        Err(Error::Refused(Refusal::Account(AccountRefusal::NotFound)))
    ));
    // Bob can't revoke alice's device by its id.
    assert!(matches!(
        env.devices.revoke(&bob(), &info.id).await,
        Err(Error::Refused(Refusal::Account(AccountRefusal::NotFound)))
    ));
    assert_eq!(env.check(&alice(), &token).await, VALID);
    assert_eq!(env.list(&alice()).await.len(), 1);
    assert!(
        !env.events
            .events()
            .iter()
            .any(|e| matches!(e, Event::DeviceRevoked { .. }))
    );
}

#[tokio::test]
async fn bumping_the_epoch_revokes_every_older_token() {
    let env = env();
    let (a, _) = env.trust(&alice(), "A").await;
    let (b, _) = env.trust(&alice(), "B").await;
    let (bobs, _) = env.trust(&bob(), "bob's").await;
    assert_eq!(env.devices.bump_epoch(&alice()).await.unwrap(), 1);
    assert_eq!(env.check(&alice(), &a).await, DeviceCheck::Revoked);
    assert_eq!(env.check(&alice(), &b).await, DeviceCheck::Revoked);
    assert!(env.list(&alice()).await.is_empty());
    // Bob's epoch is his own.
    assert_eq!(env.check(&bob(), &bobs).await, VALID);

    let (c, c_info) = env.trust(&alice(), "C").await;
    assert_eq!(env.check(&alice(), &c).await, VALID);
    assert_eq!(env.ids(&alice()).await, vec![c_info.id]);
    // Old tokens stay dead however time moves.
    env.clock.advance(Duration::hours(3));
    assert_eq!(env.check(&alice(), &a).await, DeviceCheck::Revoked);
    assert_eq!(env.check(&alice(), &c).await, REFRESH);

    assert_eq!(env.devices.bump_epoch(&alice()).await.unwrap(), 2);
    assert_eq!(env.check(&alice(), &c).await, DeviceCheck::Revoked);
    assert!(env.events.events().contains(&Event::EpochBumped {
        account: alice(),
        epoch: 1,
    }));
    assert!(env.events.events().contains(&Event::EpochBumped {
        account: alice(),
        epoch: 2,
    }));
}

#[tokio::test]
async fn revoke_all_revokes_every_older_token() {
    let env = env();
    let tokens = [
        env.trust(&alice(), "A").await.0,
        env.trust(&alice(), "B").await.0,
        env.trust(&alice(), "C").await.0,
    ];
    let (bobs, _) = env.trust(&bob(), "bob's").await;
    env.devices.revoke_all(&alice()).await.unwrap();
    for t in &tokens {
        assert_eq!(env.check(&alice(), t).await, DeviceCheck::Revoked);
    }
    assert!(env.list(&alice()).await.is_empty());
    assert_eq!(env.check(&bob(), &bobs).await, VALID);
    let (fresh, _) = env.trust(&alice(), "D").await;
    assert_eq!(env.check(&alice(), &fresh).await, VALID);
    assert_eq!(env.list(&alice()).await.len(), 1);
    assert!(env.events.events().contains(&Event::EpochBumped {
        account: alice(),
        epoch: 1,
    }));
}

#[tokio::test]
async fn purge_removes_what_can_no_longer_be_valid() {
    let env = env();
    // Revoked.
    let (_, revoked) = env.trust(&alice(), "revoked").await;
    env.devices.revoke(&alice(), &revoked.id).await.unwrap();
    // Old epoch.
    env.trust(&alice(), "old epoch").await;
    env.devices.bump_epoch(&alice()).await.unwrap();
    // Will expire.
    let (expired_token, _) = env.trust(&alice(), "expires").await;
    env.clock.advance(Duration::days(20));
    // Still valid after the purge.
    let (kept_token, kept) = env.trust(&alice(), "kept").await;
    // Bob's revoked device is bob's business.
    let (_, bobs) = env.trust(&bob(), "bob's").await;
    env.devices.revoke(&bob(), &bobs.id).await.unwrap();
    env.clock.advance(Duration::days(10));
    assert_eq!(
        env.check(&alice(), &expired_token).await,
        DeviceCheck::Expired
    );

    assert_eq!(env.store.devices(&alice()).await.unwrap().len(), 4);
    assert_eq!(env.devices.purge(&alice(), false).await.unwrap(), 3);
    let left = env.store.devices(&alice()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, kept.id);
    assert_eq!(env.ids(&alice()).await, vec![kept.id]);
    assert_eq!(env.check(&alice(), &kept_token).await, REFRESH);
    assert_eq!(
        env.check(&alice(), &expired_token).await,
        DeviceCheck::Unknown
    );
    assert_eq!(env.store.devices(&bob()).await.unwrap().len(), 1);
    // Nothing more to purge.
    assert_eq!(env.devices.purge(&alice(), false).await.unwrap(), 0);
    // Everything (account deleted).
    assert_eq!(env.devices.purge(&alice(), true).await.unwrap(), 1);
    assert!(env.store.devices(&alice()).await.unwrap().is_empty());
    assert_eq!(env.check(&alice(), &kept_token).await, DeviceCheck::Unknown);
    assert_eq!(env.store.devices(&bob()).await.unwrap().len(), 1);
}

// -------------------------------------------------------------------- list

#[tokio::test]
async fn the_list_is_newest_first_valid_only_and_per_account() {
    let env = env();
    let (_, a) = env.trust(&alice(), "A").await;
    env.clock.advance(Duration::minutes(1));
    let (_, b) = env.trust(&alice(), "B").await;
    env.clock.advance(Duration::minutes(1));
    let (_, c) = env.trust(&alice(), "C").await;
    env.clock.advance(Duration::minutes(1));
    let (_, d) = env.trust(&alice(), "D").await;
    env.clock.advance(Duration::minutes(1));
    let (_, bobs) = env.trust(&bob(), "bob's").await;

    let labels = |list: Vec<DeviceInfo>| list.into_iter().map(|d| d.label).collect::<Vec<_>>();
    assert_eq!(labels(env.list(&alice()).await), ["D", "C", "B", "A"]);
    env.devices.revoke(&alice(), &c.id).await.unwrap();
    assert_eq!(env.ids(&alice()).await, vec![d.id, b.id, a.id]);
    assert_eq!(env.ids(&bob()).await, vec![bobs.id]);
    assert!(env.list(&AccountId::new("carol")).await.is_empty());
    // A expires first.
    env.clock.set(a.expires_at);
    assert_eq!(env.ids(&alice()).await, vec![d.id, b.id]);
    assert_eq!(env.list(&alice()).await[0], d);
}

// ------------------------------------------------------------------ events

#[tokio::test]
async fn events_are_emitted_and_never_carry_the_token() {
    let env = env();
    let (token, info) = env.devices.trust(&alice(), LABEL).await.unwrap();
    let text = token.expose_secret().to_owned();
    env.clock.advance(Duration::hours(1));
    env.check(&alice(), &text).await;
    env.devices.revoke(&alice(), &info.id).await.unwrap();
    env.check(&alice(), &text).await;
    let epoch = env.devices.bump_epoch(&alice()).await.unwrap();
    env.check(&alice(), "nd1.garbage").await;

    let events = env.events.events();
    assert_eq!(
        events,
        vec![
            Event::DeviceTrusted {
                account: alice(),
                device: info.id,
            },
            Event::DeviceRevoked {
                account: alice(),
                device: info.id,
            },
            Event::EpochBumped {
                account: alice(),
                epoch,
            },
        ]
    );
    for e in &events {
        for shown in [format!("{e:?}"), format!("{e:#?}")] {
            assert!(!shown.contains(&text), "{shown}");
            assert!(!shown.contains(secret_part(&text)), "{shown}");
        }
    }
    let debug_token: &DeviceToken = &token;
    assert!(!format!("{debug_token:#?}").contains(secret_part(&text)));
}

// ------------------------------------------------------------- concurrency

fn yielding_env() -> (TrustedDevices, Arc<MemoryStore>, ManualClock) {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::at_unix(T0).unwrap();
    let devices = TrustedDevices::new(ports(
        Arc::new(Yielding(store.clone())),
        &clock,
        &RecordingEvents::new(),
    ));
    (devices, store, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_epoch_bump_racing_checks_wins_for_every_later_check() {
    for round in 0..10 {
        let (devices, _, clock) = yielding_env();
        let (token, _) = devices.trust(&alice(), LABEL).await.unwrap();
        let token = token.expose_secret().to_owned();
        // Refresh is due: the checks also race each other's writes.
        clock.advance(Duration::hours(1));
        let bumped = Arc::new(AtomicBool::new(false));
        let barrier = Arc::new(Barrier::new(TASKS + 1));

        let bumper = {
            let (devices, bumped, barrier) = (devices.clone(), bumped.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                for _ in 0..round {
                    tokio::task::yield_now().await;
                }
                devices.bump_epoch(&alice()).await.unwrap();
                bumped.store(true, Ordering::SeqCst);
            })
        };
        let checkers: Vec<_> = (0..TASKS)
            .map(|_| {
                let (devices, bumped, barrier) = (devices.clone(), bumped.clone(), barrier.clone());
                let token = token.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let (mut before, mut after) = (0, 0);
                    // Keep checking until three checks started after the
                    // bump returned.
                    while after < 3 {
                        let started_after = bumped.load(Ordering::SeqCst);
                        let result = devices.check(&alice(), &token).await.unwrap();
                        if started_after {
                            assert_eq!(result, DeviceCheck::Revoked, "round {round}");
                            after += 1;
                        } else {
                            assert!(
                                matches!(result, DeviceCheck::Valid { .. } | DeviceCheck::Revoked),
                                "round {round}: {result:?}"
                            );
                            before += 1;
                        }
                        assert!(before < 100_000, "the bump never returned");
                    }
                    before
                })
            })
            .collect();
        bumper.await.unwrap();
        for checker in checkers {
            checker.await.unwrap();
        }
        assert_eq!(
            devices.check(&alice(), &token).await.unwrap(),
            DeviceCheck::Revoked
        );
        assert!(devices.list(&alice()).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_trusts_give_distinct_devices() {
    let (devices, store, _) = yielding_env();
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let (devices, barrier) = (devices.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let (token, info) = devices
                    .trust(&alice(), &format!("device {i}"))
                    .await
                    .unwrap();
                (token.expose_secret().to_owned(), info)
            })
        })
        .collect();
    let mut trusted = Vec::new();
    for h in handles {
        trusted.push(h.await.unwrap());
    }
    let ids: HashSet<DeviceId> = trusted.iter().map(|(_, i)| i.id).collect();
    let tokens: HashSet<&String> = trusted.iter().map(|(t, _)| t).collect();
    assert_eq!(ids.len(), TASKS);
    assert_eq!(tokens.len(), TASKS);
    let listed = devices.list(&alice()).await.unwrap();
    assert_eq!(listed.len(), TASKS);
    assert_eq!(listed.iter().map(|d| d.id).collect::<HashSet<_>>(), ids);
    let labels: HashSet<String> = listed.into_iter().map(|d| d.label).collect();
    assert_eq!(labels.len(), TASKS);
    assert_eq!(store.devices(&alice()).await.unwrap().len(), TASKS);
    for (token, _) in &trusted {
        assert_eq!(devices.check(&alice(), token).await.unwrap(), VALID);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoking_while_checks_refresh_still_revokes() {
    for _ in 0..10 {
        let (devices, store, clock) = yielding_env();
        let (token, info) = devices.trust(&alice(), LABEL).await.unwrap();
        let token = token.expose_secret().to_owned();
        clock.advance(Duration::hours(1));
        let barrier = Arc::new(Barrier::new(TASKS));
        let handles: Vec<_> = (0..TASKS)
            .map(|i| {
                let (devices, barrier, token) = (devices.clone(), barrier.clone(), token.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    if i == 0 {
                        devices.revoke(&alice(), &info.id).await.unwrap();
                    } else {
                        devices.check(&alice(), &token).await.unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        // No "last used" write prepared before the revocation undid it.
        assert!(
            store
                .device(&alice(), &info.id)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        assert_eq!(
            devices.check(&alice(), &token).await.unwrap(),
            DeviceCheck::Revoked
        );
    }
}

// ----------------------------------------------------------- store failures

/// A real record and its token, trusted at `t0`, as the engine makes them.
fn real_device() -> (String, DeviceRecord) {
    let (token, record) = device::trust(
        &alice(),
        LABEL,
        0,
        &DevicePolicy::default(),
        &hasher(),
        &LockedRng::seeded(9),
        t0(),
    )
    .unwrap();
    (token.expose_secret().to_owned(), record)
}

/// `TrustedDevices` on a mock, two hours after `t0` (a refresh is due, so
/// a check that went on past a failure would try to write).
fn on_mock(db: MockDb, events: &RecordingEvents) -> TrustedDevices {
    let clock = ManualClock::at_unix(T0).unwrap();
    clock.advance(Duration::hours(2));
    TrustedDevices::new(ports(Arc::new(db), &clock, events))
}

#[tokio::test]
async fn a_failed_device_read_during_check_is_a_store_error() {
    let (token, _) = real_device();
    let mut db = MockDb::new();
    db.expect_device().times(1).returning(|_, _| Err(db_down()));
    db.expect_account_record().returning(|_| Ok(None));
    db.expect_replace_device().times(0);
    let devices = on_mock(db, &RecordingEvents::new());
    assert_eq!(
        store_error(devices.check(&alice(), &token).await),
        StoreErrorKind::Unavailable
    );
}

#[tokio::test]
async fn a_failed_epoch_read_during_check_is_a_store_error() {
    let (token, record) = real_device();
    let mut db = MockDb::new();
    db.expect_device()
        .returning(move |_, _| Ok(Some(record.clone())));
    db.expect_account_record()
        .times(1)
        .returning(|_| Err(db_down()));
    db.expect_replace_device().times(0);
    let devices = on_mock(db, &RecordingEvents::new());
    assert_eq!(
        store_error(devices.check(&alice(), &token).await),
        StoreErrorKind::Unavailable
    );
}

#[tokio::test]
async fn the_mock_sees_a_real_valid_device() {
    // The two tests above fail for the store's sake, not the record's: with
    // a working store the same record checks valid and gets its refresh.
    let (token, record) = real_device();
    let mut db = MockDb::new();
    db.expect_device()
        .returning(move |_, _| Ok(Some(record.clone())));
    db.expect_account_record().returning(|_| Ok(None));
    db.expect_replace_device()
        .times(1)
        .withf(|next, expected| {
            *expected == 0 && next.version == 1 && next.last_used_at == t0() + Duration::hours(2)
        })
        .returning(|_, _| Ok(()));
    let devices = on_mock(db, &RecordingEvents::new());
    assert_eq!(devices.check(&alice(), &token).await.unwrap(), REFRESH);
}

#[tokio::test]
async fn a_failed_refresh_write_does_not_change_the_answer() {
    let (token, record) = real_device();
    let mut db = MockDb::new();
    db.expect_device()
        .returning(move |_, _| Ok(Some(record.clone())));
    db.expect_account_record().returning(|_| Ok(None));
    db.expect_replace_device()
        .times(1)
        .returning(|_, _| Err(db_down()));
    let devices = on_mock(db, &RecordingEvents::new());
    assert_eq!(devices.check(&alice(), &token).await.unwrap(), REFRESH);
}

#[tokio::test]
async fn failed_writes_are_store_errors_without_events() {
    let (_, record) = real_device();
    let id = record.id;

    // trust: the epoch read fails, nothing is inserted.
    let mut db = MockDb::new();
    db.expect_account_record().returning(|_| Err(db_down()));
    db.expect_insert_device().times(0);
    let events = RecordingEvents::new();
    let devices = on_mock(db, &events);
    assert_eq!(
        store_error(devices.trust(&alice(), LABEL).await),
        StoreErrorKind::Unavailable
    );

    // trust: the insert fails.
    let mut db = MockDb::new();
    db.expect_account_record().returning(|_| Ok(None));
    db.expect_insert_device()
        .times(1)
        .returning(|_| Err(db_down()));
    let devices = on_mock(db, &events);
    assert_eq!(
        store_error(devices.trust(&alice(), LABEL).await),
        StoreErrorKind::Unavailable
    );

    // bump_epoch fails: no "epoch bumped" for the host to trust.
    let mut db = MockDb::new();
    db.expect_account_record().returning(|_| Err(db_down()));
    let devices = on_mock(db, &events);
    assert_eq!(
        store_error(devices.bump_epoch(&alice()).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        store_error(devices.revoke_all(&alice()).await),
        StoreErrorKind::Unavailable
    );

    // revoke: the write fails.
    let mut db = MockDb::new();
    db.expect_device()
        .returning(move |_, _| Ok(Some(record.clone())));
    db.expect_replace_device().returning(|_, _| Err(db_down()));
    let devices = on_mock(db, &events);
    assert_eq!(
        store_error(devices.revoke(&alice(), &id).await),
        StoreErrorKind::Unavailable
    );

    // list: the read fails.
    let mut db = MockDb::new();
    db.expect_account_record().returning(|_| Ok(None));
    db.expect_devices().returning(|_| Err(db_down()));
    let devices = on_mock(db, &events);
    assert_eq!(
        store_error(devices.list(&alice()).await),
        StoreErrorKind::Unavailable
    );

    assert_eq!(events.events(), vec![]);
}
