//! Housekeeping: [`PurgeStore::purge`](crate::store::PurgeStore::purge)
//! deletes every record whose lifetime ended, and nothing else.

use super::*;
use crate::store::{Load, Purged};

/// Offsets from the cut-off, in seconds, of records that must go (their
/// lifetime ended strictly before it).
const GONE: [i64; 2] = [-1_800, -1];

/// Offsets from the cut-off, in seconds, of records that must stay
/// (except the counter at 0: a window that ends at the cut-off is over).
const KEPT: [i64; 3] = [0, 1, 86_400];

/// The window of the counters this check writes.
const WINDOW: Duration = Duration::minutes(10);

fn counter_key(offset: i64) -> String {
    format!("testkit:purge:counter:{offset}")
}

/// Rule: `purge(before)` deletes, and counts exactly, every challenge,
/// verification and trusted device (revoked or not) whose `expires_at` is
/// strictly before `before`, and every rate-limit window whose `resets_at`
/// is at or before it; records of each kind on the other side of the
/// cut-off stay unchanged (a live counter keeps its count and window); a
/// second purge with the same cut-off deletes nothing. Account records,
/// contact claims, failure runs and the store's initialisation marker never
/// expire, however old.
#[allow(clippy::too_many_lines)]
pub async fn check_purge(store: Arc<dyn Store>) {
    let now = base_time();
    let cut = now + Duration::hours(1);
    let at = |offset: i64| cut + Duration::seconds(offset);
    let account = AccountId::new("testkit:purge:account");

    // One record of every kind at each offset; two devices (one revoked)
    // at each.
    let mut challenges = Vec::new();
    let mut verifications = Vec::new();
    let mut devices = Vec::new();
    for (offset, seed) in GONE.iter().chain(&KEPT).zip(0u8..) {
        let expires_at = at(*offset);
        let mut challenge = sample_challenge(0xA0 + seed, now);
        challenge.expires_at = expires_at;
        for send in &mut challenge.sends {
            send.expires_at = expires_at;
        }
        ok(store.insert_challenge(&challenge).await, "insert_challenge");
        challenges.push((*offset, challenge));

        let mut verification = sample_verification(0xB0 + seed, now);
        verification.expires_at = expires_at;
        ok(
            store.insert_verification(&verification).await,
            "insert_verification",
        );
        verifications.push((*offset, verification));

        for revoked in [false, true] {
            let mut device = sample_device(&account, 0xC0 + 2 * seed + u8::from(revoked), now);
            device.expires_at = expires_at;
            device.revoked_at = revoked.then_some(now);
            ok(store.insert_device(&device).await, "insert_device");
            devices.push((*offset, device));
        }

        // A window that ends at the offset, with two hits in it.
        let key = counter_key(*offset);
        for _ in 0..2 {
            ok(
                store.hit(&key, WINDOW, expires_at - WINDOW).await,
                "hit on a counter",
            );
        }
    }

    let book = sample_contact_book(&account, now - Duration::days(3_650));
    let claim = claim_key(0xE0, 1);
    committed(&*store, &book, None, &[&claim], &[], "commit_account").await;
    let run = FailureRecord {
        consecutive: 7,
        last_failure_at: now - Duration::days(3_650),
    };
    ok(
        store.replace_failures(&account, None, Some(run)).await,
        "replace_failures",
    );

    let nothing_yet = ok(store.purge(now).await, "purge before anything expired");
    assert_eq!(
        nothing_yet,
        Purged::default(),
        "purge(before) must delete nothing, and count nothing, when no record's lifetime \
         ended before the cut-off"
    );

    let purged = ok(store.purge(cut).await, "purge");
    let gone = u64::try_from(GONE.len()).unwrap_or(0);
    let want = Purged {
        challenges: gone,
        verifications: gone,
        // The windows ending before the cut-off, and the one ending at it
        // (a window that ends at `before` has ended by then).
        counters: gone + 1,
        devices: 2 * gone,
    };
    assert_eq!(
        purged, want,
        "purge(before) must delete and count exactly: the challenges, verifications and \
         devices (revoked or not) whose expires_at is before the cut-off, and the counters \
         whose resets_at is at or before it"
    );

    for (offset, challenge) in &challenges {
        let got = ok(
            store.challenge(&challenge.id).await,
            "challenge after purge",
        );
        if *offset < 0 {
            assert!(
                got.is_none(),
                "purge must delete a challenge that expired {} s before the cut-off",
                -offset
            );
        } else {
            let got = got.unwrap_or_else(|| {
                panic!("purge must keep a challenge expiring {offset} s after the cut-off")
            });
            assert_same_record(
                "purge must leave a live challenge unchanged",
                &got,
                challenge,
            );
        }
    }
    for (offset, verification) in &verifications {
        let got = ok(
            store.verification(&verification.id).await,
            "verification after purge",
        );
        if *offset < 0 {
            assert!(
                got.is_none(),
                "purge must delete a verification that expired {} s before the cut-off",
                -offset
            );
        } else {
            assert_eq!(
                got.as_ref(),
                Some(verification),
                "purge must keep, unchanged, a verification expiring {offset} s after the \
                 cut-off"
            );
        }
    }
    for (offset, device) in &devices {
        let got = ok(
            store.device(&account, &device.id).await,
            "device after purge",
        );
        let revoked = if device.revoked_at.is_some() {
            "revoked"
        } else {
            "trusted"
        };
        if *offset < 0 {
            assert!(
                got.is_none(),
                "purge must delete a {revoked} device that expired {} s before the cut-off",
                -offset
            );
        } else {
            let got = got.unwrap_or_else(|| {
                panic!("purge must keep a {revoked} device expiring {offset} s after the cut-off")
            });
            assert_same_device("purge must leave a live device unchanged", &got, device);
        }
    }
    let listed = ok(store.devices(&account).await, "devices after purge");
    assert_eq!(
        listed.len(),
        2 * KEPT.len(),
        "after purge, devices() must list exactly the devices that did not expire"
    );
    for offset in KEPT.into_iter().filter(|offset| *offset > 0) {
        // Still in its window: the third hit in it, same window end.
        let count = ok(
            store.hit(&counter_key(offset), WINDOW, cut).await,
            "hit on a live counter after purge",
        );
        assert_eq!(
            count,
            WindowCount {
                count: 3,
                resets_at: at(offset),
            },
            "purge must keep a counter whose window ends {offset} s after the cut-off, with \
             its count and window end"
        );
    }

    let again = ok(store.purge(cut).await, "a second purge");
    assert_eq!(
        again,
        Purged::default(),
        "a second purge with the same cut-off must find nothing to delete (the first one \
         must really have deleted what it counted)"
    );

    // Far in the future: everything with a lifetime goes, the account's own
    // records and the marker stay.
    let far = now + Duration::days(36_500);
    let rest = ok(store.purge(far).await, "purge far in the future");
    let kept = u64::try_from(KEPT.len()).unwrap_or(0);
    assert_eq!(
        rest,
        Purged {
            challenges: kept,
            verifications: kept,
            counters: kept - 1,
            devices: 2 * kept,
        },
        "purge far in the future must delete every remaining challenge, verification, \
         counter and device"
    );
    let back = read_book(&*store, &account, "account record after purge").await;
    assert_same_book(
        "purge must never delete or change an account record, however old",
        &back,
        &book,
    );
    assert_owners(
        &*store,
        &[(claim.as_str(), Some(&account))],
        "purge must never release a contact claim",
    )
    .await;
    assert_eq!(
        ok(store.failures(&account).await, "failures after purge"),
        Some(run),
        "purge must never delete a failure run, however old: forgetting it would hand out a \
         fresh run of guesses"
    );
    let loaded = ok(
        store.load(&Load::account(&account)).await,
        "load after purge (the initialisation marker must survive purge)",
    );
    assert!(
        loaded.record.is_some(),
        "load after purge must still return the account record"
    );
}
