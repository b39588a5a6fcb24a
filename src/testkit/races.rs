//! 64-task races on one store.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------
// Races
// ---------------------------------------------------------------------------

/// Rule: of 64 tasks that compare-and-set one record from the same read
/// version at the same moment, exactly one succeeds and 63 get
/// [`StoreErrorKind::Conflict`]; the winner's record is what is stored.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_race_replace(store: Arc<dyn Store>) {
    race_replace(&[store], 0x50).await;
}

/// Rule: no lost update. 64 tasks each run read → add one to
/// `failed_attempts` → compare-and-set, retrying on conflict; afterwards
/// `failed_attempts` is exactly 64 and the version moved by exactly 64.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_race_read_modify_write(store: Arc<dyn Store>) {
    let record = sample_challenge(0x51, base_time());
    ok(store.insert_challenge(&record).await, "insert_challenge");
    let id = record.id;
    let jobs = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            async move {
                // Each lost round means another task won one; reads may be
                // stale, so allow far more rounds than that bound.
                for _ in 0..TASKS * TASKS {
                    let current = read(&*store, &id, "challenge in a retry loop").await;
                    let mut next = current.clone();
                    next.version = current.version + 1;
                    next.failed_attempts = current.failed_attempts + 1;
                    match store.replace_challenge(&next, current.version).await {
                        Ok(()) => return,
                        Err(e) if e.is_conflict() => tokio::task::yield_now().await,
                        Err(e) => panic!(
                            "replace_challenge failed in a read-modify-write loop: {}",
                            describe(&e)
                        ),
                    }
                }
                panic!(
                    "replace_challenge kept reporting Conflict in a read-modify-write loop \
                     although every other writer had finished"
                );
            }
        })
        .collect();
    race(jobs).await;
    let back = read(&*store, &id, "challenge after the race").await;
    assert_eq!(
        back.failed_attempts,
        u32::try_from(TASKS).expect("small"),
        "lost update: {TASKS} read-modify-compare-and-set loops must add exactly {TASKS} \
         (replace_challenge must compare and set atomically)"
    );
    assert_eq!(
        back.version,
        u64::try_from(TASKS).expect("small"),
        "{TASKS} successful replace_challenge calls must leave version {TASKS}"
    );
}

/// Rule: `hit` loses no increment. 64 concurrent hits on one key return
/// exactly the counts 1 to 64, one each, all with the same `resets_at`; the
/// counter then stands at 64 (the next hit returns 65).
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_race_hit(store: Arc<dyn Store>) {
    race_hit(&[store], "testkit:race:hit").await;
}

/// Rule: `replace_failures` loses no count. 64 tasks each read the run and
/// compare-and-set it one longer, re-reading after a conflict, until their
/// write lands: the runs they wrote are 1 to 64, one each, and `failures`
/// then reads 64.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_race_replace_failures(store: Arc<dyn Store>) {
    race_failures(&[store], "testkit:race:failures").await;
}

pub(super) async fn race_failures(stores: &[Arc<dyn Store>], account: &str) {
    let account = AccountId::new(account);
    let now = base_time();
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            let account = account.clone();
            async move {
                loop {
                    let seen = ok(store.failures(&account).await, "failures");
                    let next = FailureRecord {
                        consecutive: seen.map_or(0, |r| r.consecutive) + 1,
                        last_failure_at: now,
                    };
                    match store.replace_failures(&account, seen, Some(next)).await {
                        Ok(()) => return next.consecutive,
                        Err(e) if e.is_conflict() => {}
                        Err(e) => panic!("the store failed in replace_failures: {}", describe(&e)),
                    }
                }
            }
        })
        .collect();
    let mut seen = race(jobs).await;
    seen.sort_unstable();
    let want: Vec<u32> = (1..=u32::try_from(TASKS).expect("small")).collect();
    assert_eq!(
        seen,
        want,
        "{TASKS} concurrent read/compare-and-set loops on one failure run must each land \
         one count, 1..={TASKS} once each{}",
        across(stores)
    );
    for store in stores {
        let stored = ok(store.failures(&account).await, "failures");
        assert_eq!(
            stored.map(|r| r.consecutive),
            Some(u32::try_from(TASKS).expect("small")),
            "after {TASKS} counted failures the run must read {TASKS}{}",
            across(stores)
        );
    }
}

/// Rule: of 64 concurrent inserts of one id, exactly one succeeds and 63
/// get [`StoreErrorKind::Conflict`]; the winner's record is what is stored.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_race_insert(store: Arc<dyn Store>) {
    let base = sample_challenge(0x52, base_time());
    let jobs = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            let mut record = base.clone();
            record.failed_attempts = u32::try_from(i).expect("small");
            async move { store.insert_challenge(&record).await }
        })
        .collect();
    let results = race(jobs).await;
    let winner = single_winner(&results, "of concurrent insert_challenge calls with one id");
    let back = read(&*store, &base.id, "challenge after the race").await;
    assert_eq!(
        back.failed_attempts,
        u32::try_from(winner).expect("small"),
        "the record stored after concurrent inserts must be the one whose insert succeeded"
    );
}

/// Rule: no epoch bump is lost. 64 concurrent bumps of one account's
/// security epoch (as [`TwoFactor::sign_out_everywhere`](crate::service::TwoFactor::sign_out_everywhere) makes them; each a
/// compare-and-set of the account record) return exactly the
/// epochs 1 to 64, one each, and the record then holds 64.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_race_bump_epoch(store: Arc<dyn Store>) {
    race_bump_epoch(&[store], "testkit:race:epoch").await;
}

/// Rule: of 64 accounts that each commit a first record claiming the same
/// key at the same moment, exactly one gets [`AccountCommit::Committed`]
/// and 63 get `Taken { index: 0 }` (never an error: a unique-key clash is
/// a `Taken`); `claim_owner` names the winner, whose record is stored, and
/// no loser has a record.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_race_claim(store: Arc<dyn Store>) {
    race_claim(&[store], "testkit:race:claim").await;
}

/// Rule: claims of overlapping key sets never deadlock and never end with
/// a key held twice. 64 accounts at once each claim two of four keys (a
/// ring: keys `i` and `i + 1`, listed in either order) and release a third
/// they don't hold; every commit ends `Committed` or `Taken` (no error:
/// no deadlock, no unique-key failure); each key ends with at most one
/// owner, every committed account holds both its keys, and each `Taken`
/// names a key that another account holds.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_race_claim_overlapping(store: Arc<dyn Store>) {
    let now = base_time();
    let keys: Vec<String> = (0..4).map(|n| claim_key(0x0E, n)).collect();
    let plan = |i: usize| {
        let (a, b) = (keys[i % 4].clone(), keys[(i + 1) % 4].clone());
        let claim = if i.is_multiple_of(2) {
            vec![a, b]
        } else {
            vec![b, a]
        };
        (claim, vec![keys[(i + 2) % 4].clone()])
    };
    let account = |i: usize| AccountId::new(format!("testkit:race:overlap:{i}"));
    let jobs = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            let book = sample_contact_book(&account(i), now);
            let (claim, release) = plan(i);
            async move {
                store
                    .commit_account(&book, None, &ClaimChanges { claim, release })
                    .await
                    .map_err(|e| describe(&e))
            }
        })
        .collect();
    let results = race(jobs).await;
    let mut winners = Vec::new();
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(AccountCommit::Committed) => winners.push(i),
            Ok(AccountCommit::Taken { index }) => {
                let (claim, _) = plan(i);
                assert!(
                    *index < claim.len(),
                    "Taken must index into the claim list (got {index} of {})",
                    claim.len()
                );
                let owner = ok(store.claim_owner(&claim[*index]).await, "claim_owner");
                assert!(
                    owner.is_some() && owner != Some(account(i)),
                    "a Taken commit must name a key another account holds; key {index} of \
                     task {i} is held by {owner:?}"
                );
                let none = ok(store.account_record(&account(i)).await, "account_record");
                assert!(none.is_none(), "a Taken commit must not store the record");
            }
            Err(e) => panic!(
                "of concurrent commit_account calls claiming overlapping keys, each must end \
                 Committed or Taken; one failed (a deadlock or a unique-key error?): {e}"
            ),
        }
    }
    assert!(
        !winners.is_empty(),
        "of concurrent commits claiming free keys at least one must succeed"
    );
    for (n, key) in keys.iter().enumerate() {
        let holders: Vec<usize> = winners
            .iter()
            .copied()
            .filter(|&i| plan(i).0.contains(key))
            .collect();
        assert!(
            holders.len() <= 1,
            "key {n} was claimed by {} committed accounts at once (tasks {holders:?})",
            holders.len()
        );
        let owner = ok(store.claim_owner(key).await, "claim_owner");
        assert_eq!(
            owner,
            holders.first().map(|&i| account(i)),
            "after the race key {n} must be held by the committed account that claimed it, \
             and by nobody if none did"
        );
    }
}

/// Rule: no lost update on a account record. 64 tasks each run read → add a
/// contact of their own and claim a key of their own → `commit_account`
/// from the version read, retrying on conflict; afterwards the record holds
/// every task's contact exactly once, its version moved by exactly 64,
/// and the account holds every task's key.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_race_contact_book_read_modify_write(store: Arc<dyn Store>) {
    race_contact_book(&[store], "testkit:race:book").await;
}

/// Rule: of 64 tasks that compare-and-set one verification from the same
/// version at the same moment, each marking a member verified at its own
/// time, exactly one succeeds and 63 get [`StoreErrorKind::Conflict`]; the
/// winner's record is what is stored.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_race_verification_replace(store: Arc<dyn Store>) {
    let now = base_time();
    let record = sample_verification(0x54, now);
    ok(
        store.insert_verification(&record).await,
        "insert_verification",
    );
    let prepared = |i: usize| {
        let mut next = record.clone();
        next.version = record.version + 1;
        let n = next.members.len();
        next.members[i % n].verified_at =
            Some(now + Duration::seconds(i64::try_from(i).expect("small")));
        next
    };
    let jobs = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            let next = prepared(i);
            let expected = record.version;
            async move { store.replace_verification(&next, expected).await }
        })
        .collect();
    let results = race(jobs).await;
    let winner = single_winner(
        &results,
        "of concurrent replace_verification calls from one version",
    );
    let back = read_verification(&*store, &record.id, "verification after the race").await;
    assert_eq!(
        back,
        prepared(winner),
        "after a compare-and-set race the stored verification must be the winner's"
    );
}
