//! Counters and failure runs.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

/// Rule: `hit` keeps a fixed window. The first hit on a key returns count 1
/// and `resets_at = now + window`; hits before `resets_at` increment the
/// count and keep `resets_at` (the window does not slide); a hit at
/// `now >= resets_at` starts a new window `[now, now + window)` at count 1.
pub async fn check_hit_window(store: Arc<dyn Store>) {
    let window = Duration::minutes(10);
    let t0 = base_time();
    let key = "testkit:hit-window";
    let hit = |at: OffsetDateTime| {
        let store = store.clone();
        async move { ok(store.hit(key, window, at).await, "hit") }
    };

    assert_eq!(
        hit(t0).await,
        WindowCount {
            count: 1,
            resets_at: t0 + window
        },
        "the first hit on a key must return count 1 and resets_at = now + window"
    );
    assert_eq!(
        hit(t0 + Duration::seconds(1)).await,
        WindowCount {
            count: 2,
            resets_at: t0 + window
        },
        "a hit within the window must increment the count and keep resets_at"
    );
    assert_eq!(
        hit(t0 + window - Duration::seconds(1)).await,
        WindowCount {
            count: 3,
            resets_at: t0 + window
        },
        "a hit one second before resets_at must still count in the same window"
    );
    let t1 = t0 + window;
    assert_eq!(
        hit(t1).await,
        WindowCount {
            count: 1,
            resets_at: t1 + window
        },
        "a hit at now == resets_at must start a new window at count 1 with \
         resets_at = now + window"
    );
    assert_eq!(
        hit(t1 + Duration::seconds(30)).await,
        WindowCount {
            count: 2,
            resets_at: t1 + window
        },
        "hits in the new window must increment from 1"
    );
    let t2 = t1 + window * 5 + Duration::seconds(7);
    assert_eq!(
        hit(t2).await,
        WindowCount {
            count: 1,
            resets_at: t2 + window
        },
        "a hit long after resets_at must start a new window at count 1, \
         resets_at = now + window"
    );

    // A window of another length on another key.
    let short = Duration::seconds(1);
    let got = ok(
        store.hit("testkit:hit-window:short", short, t0).await,
        "hit",
    );
    assert_eq!(
        got,
        WindowCount {
            count: 1,
            resets_at: t0 + short
        },
        "resets_at must be now + the window passed to hit"
    );
}

/// Rule: counters are independent per key, and any string is a key:
/// separators (`:`), spaces, quotes, SQL and glob wildcards, non-ASCII
/// text, keys that are prefixes of others, keys differing only in case, and
/// long keys (200 characters).
pub async fn check_hit_keys_independent(store: Arc<dyn Store>) {
    let window = Duration::minutes(10);
    let t0 = base_time();
    let keys = [
        "dest:+819012345678".to_owned(),
        "dest:+81901234567".to_owned(),
        "dest".to_owned(),
        "acct:user 42 with spaces".to_owned(),
        "Acct:User 42 With Spaces".to_owned(),
        "caller:'quoted' \"double\" \\ back".to_owned(),
        "wild:%_*?[a-z]{}".to_owned(),
        "宛先:＋８１ 電話 ✓ 🚀".to_owned(),
        format!("long:{}", "x".repeat(195)),
        format!("long:{}", "é".repeat(195)),
    ];
    assert_eq!(keys[8].chars().count(), 200);
    // Hit key i (i + 1) times.
    for (i, key) in keys.iter().enumerate() {
        for n in 1..=i + 1 {
            let got = ok(store.hit(key, window, t0).await, "hit");
            assert_eq!(
                got.count,
                u64::try_from(n).expect("small"),
                "hit counters must be independent per key and any string must work as a key; \
                 key {key:?} (hit {n} times) read {}",
                got.count
            );
        }
    }
    for (i, key) in keys.iter().enumerate() {
        let got = ok(store.hit(key, window, t0).await, "hit");
        assert_eq!(
            got.count,
            u64::try_from(i + 2).expect("small"),
            "hit counters must not affect each other; key {key:?}"
        );
    }
}

/// Rule: `replace_failures` is a compare-and-set on the whole run. From no
/// run (`expected` `None`) it creates one; with the stored run as
/// `expected` it replaces it (or, with `next` `None`, ends it); any other
/// `expected` — a stale count, another instant, a run where there is none,
/// none where there is one — is a [`StoreErrorKind::Conflict`] that changes
/// nothing. `failures` reads the run exactly as written (`None` for an
/// account with none); `clear_failures` ends it unconditionally; accounts
/// are independent; clearing an account without failures is `Ok`.
pub async fn check_failures(store: Arc<dyn Store>) {
    let t0 = base_time();
    let alice = AccountId::new("testkit:alice");
    let bob = AccountId::new("testkit:ボブ 'quoted' %_");
    let run = |consecutive, last_failure_at| FailureRecord {
        consecutive,
        last_failure_at,
    };
    let read = |store: Arc<dyn Store>, account: AccountId| async move {
        ok(store.failures(&account).await, "failures")
    };
    let none = read(store.clone(), alice.clone()).await;
    assert!(
        none.is_none(),
        "failures must be None for an account that never failed (got {none:?})"
    );

    let first = run(1, t0);
    ok(
        store.replace_failures(&alice, None, Some(first)).await,
        "replace_failures from no run",
    );
    assert_eq!(
        read(store.clone(), alice.clone()).await,
        Some(first),
        "failures must return the run replace_failures wrote"
    );
    let t1 = t0 + Duration::seconds(42);
    let cases: [(Option<FailureRecord>, &str); 3] = [
        (None, "no run expected while one is stored"),
        (Some(run(7, t0)), "a stale consecutive count"),
        (Some(run(1, t1)), "the right count at another instant"),
    ];
    for (expected, why) in cases {
        let got = store
            .replace_failures(&alice, expected, Some(run(9, t1)))
            .await;
        assert_conflict(got, &format!("replace_failures with {why}"));
        assert_eq!(
            read(store.clone(), alice.clone()).await,
            Some(first),
            "a replace_failures that conflicted ({why}) must leave the run alone"
        );
    }
    let second = run(2, t1);
    ok(
        store
            .replace_failures(&alice, Some(first), Some(second))
            .await,
        "replace_failures from the stored run",
    );
    assert_eq!(
        read(store.clone(), alice.clone()).await,
        Some(second),
        "replace_failures must store the new run (count and instant)"
    );

    assert!(
        read(store.clone(), bob.clone()).await.is_none(),
        "failure runs must be per account: another account's run leaked"
    );
    ok(
        store.replace_failures(&bob, None, Some(run(1, t1))).await,
        "replace_failures for a second account",
    );
    assert_eq!(
        read(store.clone(), bob.clone())
            .await
            .map(|r| r.consecutive),
        Some(1),
        "failure runs must be per account"
    );

    let ended = store.replace_failures(&alice, Some(first), None).await;
    assert_conflict(ended, "replace_failures ending a run from a stale one");
    ok(
        store.replace_failures(&alice, Some(second), None).await,
        "replace_failures ending the stored run",
    );
    assert!(
        read(store.clone(), alice.clone()).await.is_none(),
        "replace_failures with next None must end the run"
    );
    ok(
        store.replace_failures(&alice, None, None).await,
        "replace_failures from no run to no run",
    );
    let t2 = t1 + Duration::minutes(3);
    ok(
        store.replace_failures(&alice, None, Some(run(1, t2))).await,
        "replace_failures starting a new run",
    );
    ok(store.clear_failures(&alice).await, "clear_failures");
    let cleared = read(store.clone(), alice.clone()).await;
    assert!(
        cleared.is_none(),
        "after clear_failures, failures must be None, got {cleared:?}"
    );
    assert_eq!(
        read(store.clone(), bob.clone())
            .await
            .map(|r| r.consecutive),
        Some(1),
        "clear_failures of one account must not touch another's run"
    );
    ok(
        store
            .clear_failures(&AccountId::new("testkit:never-failed"))
            .await,
        "clear_failures of an account without failures must be Ok",
    );
}

/// Panics unless `result` is a [`StoreErrorKind::Conflict`].
pub(super) fn assert_conflict(result: Result<(), StoreError>, what: &str) {
    match result {
        Err(e) if e.is_conflict() => {}
        Err(e) => panic!("{what} must be a Conflict, got {}", describe(&e)),
        Ok(()) => panic!("{what} must be a Conflict, but it was applied"),
    }
}
