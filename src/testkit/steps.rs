//! Checks of [`StepStore`](crate::store::StepStore): one read that returns
//! what the part traits stored, and one commit that checks every condition
//! before it writes all of its parts or none.

use super::*;
use crate::store::{
    ChallengeWrite, Commit, Committed, FailureChange, LimitHit, Load, Loaded, RecordCheck,
    RecordWrite,
};

fn loaded(result: Result<Loaded, StoreError>) -> Loaded {
    ok(result, "load")
}

fn committed(result: Result<Committed, StoreError>, what: &str) -> Committed {
    ok(result, what)
}

fn run(consecutive: u32, at: OffsetDateTime) -> FailureRecord {
    FailureRecord {
        consecutive,
        last_failure_at: at,
    }
}

fn hit(key: &str, max: u64) -> LimitHit {
    LimitHit {
        key: key.to_owned(),
        window: Duration::hours(1),
        max,
    }
}

/// The count of counter `key` now, read by charging one more hit.
async fn count_after_one_more(store: &dyn Store, key: &str, now: OffsetDateTime) -> u64 {
    ok(store.hit(key, Duration::hours(1), now).await, "hit").count
}

/// Rule: `load` returns, in one call, exactly what the part traits stored:
/// the account's record, its failure run, the challenge and the device
/// asked for; parts not asked for, or not stored, are `None`.
pub async fn check_load_reads_together(store: Arc<dyn Store>) {
    let now = base_time();
    let account = AccountId::new("testkit:load:account");
    let book = sample_contact_book(&account, now);
    let claims = ClaimChanges::default();
    assert_eq!(
        ok(
            store.commit_account(&book, None, &claims).await,
            "commit_account"
        ),
        AccountCommit::Committed
    );
    let failures = run(3, now);
    ok(
        store.replace_failures(&account, None, Some(failures)).await,
        "replace_failures",
    );
    let mut challenge = sample_challenge(0x71, now);
    challenge.account = Some(account.clone());
    ok(store.insert_challenge(&challenge).await, "insert_challenge");
    let device = sample_device(&account, 0x72, now);
    ok(store.insert_device(&device).await, "insert_device");

    let all = loaded(
        store
            .load(
                &Load::account(&account)
                    .with_challenge(&challenge.id)
                    .with_device(&device.id),
            )
            .await,
    );
    assert_same_book(
        "load returns the account's record",
        all.record
            .as_ref()
            .expect("load must return the stored account record"),
        &book,
    );
    assert_eq!(
        all.failures,
        Some(failures),
        "load must return the failure run as stored"
    );
    assert_same_record(
        "load returns the challenge",
        all.challenge
            .as_ref()
            .expect("load must return the stored challenge"),
        &challenge,
    );
    assert_same_device(
        "load returns the device",
        all.device
            .as_ref()
            .expect("load must return the stored device"),
        &device,
    );

    let only_account = loaded(store.load(&Load::account(&account)).await);
    assert!(only_account.record.is_some() && only_account.failures.is_some());
    assert!(
        only_account.challenge.is_none() && only_account.device.is_none(),
        "load must not return parts it was not asked for"
    );
    let only_challenge = loaded(store.load(&Load::challenge_only(&challenge.id)).await);
    assert!(
        only_challenge.challenge.is_some(),
        "load must read a challenge alone"
    );
    assert!(
        only_challenge.record.is_none() && only_challenge.failures.is_none(),
        "load without an account must return no account parts"
    );

    let stranger = AccountId::new("testkit:load:stranger");
    let absent = loaded(
        store
            .load(
                &Load::account(&stranger)
                    .with_challenge(&ChallengeId::from_bytes([0x73; 16]))
                    .with_device(&device.id),
            )
            .await,
    );
    assert!(
        absent.record.is_none()
            && absent.failures.is_none()
            && absent.challenge.is_none()
            && absent.device.is_none(),
        "load of records that don't exist must return None for each (a device is per account)"
    );
}

/// Rule: each part of a commit alone writes exactly what the matching part
/// trait call would: a failure run created, replaced and ended; a challenge
/// inserted and replaced by version; an account record with its claims; a
/// device inserted; counters charged.
pub async fn check_commit_each_part(store: Arc<dyn Store>) {
    let now = base_time();
    let account = AccountId::new("testkit:commit:parts");
    let s = &*store;

    // Failure run: create, replace, end.
    let first = run(1, now);
    let second = run(2, now + Duration::seconds(5));
    for (expected, next) in [
        (None, Some(first)),
        (Some(first), Some(second)),
        (Some(second), None),
    ] {
        let commit = Commit {
            failures: Some(FailureChange {
                account: &account,
                expected,
                next,
            }),
            ..Commit::default()
        };
        assert_eq!(
            committed(s.commit(&commit, now).await, "commit"),
            Committed::Done
        );
        assert_eq!(
            ok(s.failures(&account).await, "failures"),
            next,
            "a committed failure run must read back as written"
        );
    }

    // Challenge: insert, then replace by version.
    let mut challenge = sample_challenge(0x74, now);
    challenge.account = Some(account.clone());
    let commit = Commit {
        challenge: Some(ChallengeWrite::Insert(&challenge)),
        ..Commit::default()
    };
    assert_eq!(
        committed(s.commit(&commit, now).await, "commit"),
        Committed::Done
    );
    let stored = ok(s.challenge(&challenge.id).await, "challenge").expect("inserted");
    assert_same_record("a committed insert reads back", &stored, &challenge);
    let mut next = challenge.clone();
    next.version = 1;
    next.failed_attempts = 2;
    let commit = Commit {
        challenge: Some(ChallengeWrite::Replace {
            record: &next,
            expected_version: 0,
        }),
        ..Commit::default()
    };
    assert_eq!(
        committed(s.commit(&commit, now).await, "commit"),
        Committed::Done
    );
    let stored = ok(s.challenge(&challenge.id).await, "challenge").expect("replaced");
    assert_same_record("a committed replace reads back", &stored, &next);

    // Account record with a claim.
    let book = sample_contact_book(&account, now);
    let claims = changes(&[&claim_key(0x74, 1)], &[]);
    let commit = Commit {
        record: Some(RecordWrite {
            record: &book,
            expected_version: None,
            claims: &claims,
        }),
        ..Commit::default()
    };
    assert_eq!(
        committed(s.commit(&commit, now).await, "commit"),
        Committed::Done
    );
    let stored = ok(s.account_record(&account).await, "account_record").expect("committed");
    assert_same_book("a committed account record reads back", &stored, &book);
    assert_eq!(
        ok(s.claim_owner(&claim_key(0x74, 1)).await, "claim_owner"),
        Some(account.clone()),
        "a commit's claim must name its account"
    );

    // Device.
    let device = sample_device(&account, 0x75, now);
    let commit = Commit {
        device: Some(&device),
        ..Commit::default()
    };
    assert_eq!(
        committed(s.commit(&commit, now).await, "commit"),
        Committed::Done
    );
    let stored = ok(s.device(&account, &device.id).await, "device").expect("inserted");
    assert_same_device("a committed device reads back", &stored, &device);

    // Counters, the same key twice in one commit.
    let hits = [
        hit("testkit:commit:parts:a", 5),
        hit("testkit:commit:parts:a", 5),
    ];
    let commit = Commit {
        hits: &hits,
        ..Commit::default()
    };
    assert_eq!(
        committed(s.commit(&commit, now).await, "commit"),
        Committed::Done
    );
    assert_eq!(
        count_after_one_more(s, "testkit:commit:parts:a", now).await,
        3,
        "a commit charges each hit, the same counter twice included"
    );

    // Everything at once.
    let other = AccountId::new("testkit:commit:parts:all");
    let mut challenge = sample_challenge(0x76, now);
    challenge.account = Some(other.clone());
    let book = sample_contact_book(&other, now);
    let device = sample_device(&other, 0x77, now);
    let claims = ClaimChanges::default();
    let hits = [hit("testkit:commit:parts:b", 5)];
    let commit = Commit {
        hits: &hits,
        failures: Some(FailureChange {
            account: &other,
            expected: None,
            next: Some(first),
        }),
        challenge: Some(ChallengeWrite::Insert(&challenge)),
        record: Some(RecordWrite {
            record: &book,
            expected_version: None,
            claims: &claims,
        }),
        device: Some(&device),
        record_check: None,
    };
    assert_eq!(
        committed(s.commit(&commit, now).await, "commit"),
        Committed::Done
    );
    let all = loaded(
        s.load(
            &Load::account(&other)
                .with_challenge(&challenge.id)
                .with_device(&device.id),
        )
        .await,
    );
    assert!(
        all.record.is_some()
            && all.failures == Some(first)
            && all.challenge.is_some()
            && all.device.is_some(),
        "a commit of every part must write every part"
    );
    assert_eq!(
        count_after_one_more(s, "testkit:commit:parts:b", now).await,
        2
    );
}

/// Rule: when any condition of a commit fails (a failure run that changed,
/// a challenge version that moved on or an id already taken, an account
/// record version that moved on, a device id already stored), the commit
/// is a `Conflict` and **nothing** is written, not even its hits.
pub async fn check_commit_conflict_writes_nothing(store: Arc<dyn Store>) {
    let now = base_time();
    let s = &*store;
    let account = AccountId::new("testkit:commit:conflict");
    let book = sample_contact_book(&account, now);
    assert_eq!(
        ok(
            s.commit_account(&book, None, &ClaimChanges::default())
                .await,
            "commit_account"
        ),
        AccountCommit::Committed
    );
    let stored_run = run(4, now);
    ok(
        s.replace_failures(&account, None, Some(stored_run)).await,
        "replace_failures",
    );
    let mut challenge = sample_challenge(0x78, now);
    challenge.account = Some(account.clone());
    ok(s.insert_challenge(&challenge).await, "insert_challenge");
    let device = sample_device(&account, 0x79, now);
    ok(s.insert_device(&device).await, "insert_device");

    // The parts of a commit that would all land, each to be spoiled once.
    let mut next_challenge = challenge.clone();
    next_challenge.version = 1;
    next_challenge.failed_attempts = 1;
    let mut next_book = book.clone();
    next_book.version = 2;
    next_book.epoch = 3;
    let new_device = sample_device(&account, 0x7A, now);
    let claims = changes(&[&claim_key(0x78, 1)], &[]);
    let counter = "testkit:commit:conflict:hits";
    let hits = [hit(counter, 100)];
    let good = Commit {
        hits: &hits,
        failures: Some(FailureChange {
            account: &account,
            expected: Some(stored_run),
            next: Some(run(5, now)),
        }),
        challenge: Some(ChallengeWrite::Replace {
            record: &next_challenge,
            expected_version: 0,
        }),
        record: Some(RecordWrite {
            record: &next_book,
            expected_version: Some(1),
            claims: &claims,
        }),
        device: Some(&new_device),
        record_check: None,
    };
    let stale_run = Some(run(3, now));
    let spoiled: [(&str, Commit<'_>); 7] = [
        (
            "a failure run that changed",
            Commit {
                failures: Some(FailureChange {
                    expected: stale_run,
                    ..good.failures.expect("set")
                }),
                ..good
            },
        ),
        (
            "an absent failure run expected where one is stored",
            Commit {
                failures: Some(FailureChange {
                    expected: None,
                    ..good.failures.expect("set")
                }),
                ..good
            },
        ),
        (
            "a stale challenge version",
            Commit {
                challenge: Some(ChallengeWrite::Replace {
                    record: &next_challenge,
                    expected_version: 7,
                }),
                ..good
            },
        ),
        (
            "a challenge insert over an existing id",
            Commit {
                challenge: Some(ChallengeWrite::Insert(&challenge)),
                ..good
            },
        ),
        (
            "a stale account record version",
            Commit {
                record: Some(RecordWrite {
                    expected_version: Some(9),
                    ..good.record.expect("set")
                }),
                ..good
            },
        ),
        (
            "an account record expected absent",
            Commit {
                record: Some(RecordWrite {
                    expected_version: None,
                    ..good.record.expect("set")
                }),
                ..good
            },
        ),
        (
            "a device id the account already has",
            Commit {
                device: Some(&device),
                ..good
            },
        ),
    ];
    for (what, commit) in spoiled {
        match s.commit(&commit, now).await {
            Err(e) if e.kind() == StoreErrorKind::Conflict => {}
            other => panic!(
                "a commit with {what} must be a Conflict, got {:?}",
                other.map_err(|e| describe(&e))
            ),
        }
        let after = loaded(
            s.load(
                &Load::account(&account)
                    .with_challenge(&challenge.id)
                    .with_device(&new_device.id),
            )
            .await,
        );
        assert_eq!(
            after.failures,
            Some(stored_run),
            "a commit refused for {what} must leave the failure run alone"
        );
        assert_eq!(
            after.challenge.as_ref().map(|c| c.version),
            Some(0),
            "a commit refused for {what} must leave the challenge alone"
        );
        assert_eq!(
            after.record.as_ref().map(|b| b.version),
            Some(1),
            "a commit refused for {what} must leave the account record alone"
        );
        assert!(
            after.device.is_none(),
            "a commit refused for {what} must not insert its device"
        );
        assert_eq!(
            ok(s.claim_owner(&claim_key(0x78, 1)).await, "claim_owner"),
            None,
            "a commit refused for {what} must not claim"
        );
    }
    assert_eq!(
        count_after_one_more(s, counter, now).await,
        1,
        "commits refused as conflicts must not charge their hits"
    );

    // And the unspoiled commit lands.
    assert_eq!(
        committed(s.commit(&good, now).await, "commit"),
        Committed::Done
    );
}

/// Rule: a commit that checks an account record without writing it
/// (`record_check`) lands only while that record is at the version given
/// (`None`: while the account has none); at any other version it is a
/// `Conflict` and nothing is written, not even its hits. The checked
/// record itself is never changed.
pub async fn check_commit_record_check(store: Arc<dyn Store>) {
    let now = base_time();
    let s = &*store;
    let account = AccountId::new("testkit:commit:check");
    let book = sample_contact_book(&account, now);
    assert_eq!(
        ok(
            s.commit_account(&book, None, &ClaimChanges::default())
                .await,
            "commit_account"
        ),
        AccountCommit::Committed
    );
    let mut challenge = sample_challenge(0x7D, now);
    challenge.account = Some(account.clone());
    ok(s.insert_challenge(&challenge).await, "insert_challenge");
    let mut next_challenge = challenge.clone();
    next_challenge.version = 1;
    next_challenge.failed_attempts = 1;
    let device = sample_device(&account, 0x7E, now);
    let counter = "testkit:commit:check:hits";
    let hits = [hit(counter, 100)];
    let step = |version: Option<u64>| Commit {
        hits: &hits,
        failures: Some(FailureChange {
            account: &account,
            expected: None,
            next: Some(run(1, now)),
        }),
        challenge: Some(ChallengeWrite::Replace {
            record: &next_challenge,
            expected_version: 0,
        }),
        device: Some(&device),
        record_check: Some(RecordCheck {
            account: &account,
            version,
        }),
        ..Commit::default()
    };
    for (what, version) in [
        ("a record version that moved on", Some(2)),
        ("an older record version", Some(0)),
        ("no record where one is stored", None),
    ] {
        match s.commit(&step(version), now).await {
            Err(e) if e.kind() == StoreErrorKind::Conflict => {}
            other => panic!(
                "a commit checking {what} must be a Conflict, got {:?}",
                other.map_err(|e| describe(&e))
            ),
        }
        let after = loaded(
            s.load(
                &Load::account(&account)
                    .with_challenge(&challenge.id)
                    .with_device(&device.id),
            )
            .await,
        );
        assert!(
            after.failures.is_none()
                && after.challenge.as_ref().map(|c| c.version) == Some(0)
                && after.device.is_none(),
            "a commit refused for checking {what} must write nothing"
        );
    }
    assert_eq!(
        count_after_one_more(s, counter, now).await,
        1,
        "commits refused for a changed record must not charge their hits"
    );

    // At the version stored it lands, and leaves the record as it was.
    assert_eq!(
        committed(s.commit(&step(Some(1)), now).await, "commit"),
        Committed::Done
    );
    let after = loaded(
        s.load(
            &Load::account(&account)
                .with_challenge(&challenge.id)
                .with_device(&device.id),
        )
        .await,
    );
    assert!(
        after.failures == Some(run(1, now))
            && after.challenge.as_ref().map(|c| c.version) == Some(1)
            && after.device.is_some(),
        "a commit whose checked record is unchanged must write every part"
    );
    assert_eq!(
        after.record.as_ref().map(|b| b.version),
        Some(1),
        "a checked record is not written"
    );

    // "No record" holds for an account without one.
    let nobody = AccountId::new("testkit:commit:check:nobody");
    let hits = [hit("testkit:commit:check:nobody", 100)];
    let commit = Commit {
        hits: &hits,
        record_check: Some(RecordCheck {
            account: &nobody,
            version: None,
        }),
        ..Commit::default()
    };
    assert_eq!(
        committed(s.commit(&commit, now).await, "commit"),
        Committed::Done,
        "a check that an account has no record holds while it has none"
    );
}

/// Rule: a hit that passes its `max` stops the commit with
/// `LimitReached` naming it; it and the hits before it stay charged, the
/// hits after it are not, and nothing else is written. A counter at its
/// max exactly still lets the commit through.
pub async fn check_commit_limit_reached(store: Arc<dyn Store>) {
    let now = base_time();
    let s = &*store;
    let (a, b, c) = (
        "testkit:commit:limit:a",
        "testkit:commit:limit:b",
        "testkit:commit:limit:c",
    );
    let account = AccountId::new("testkit:commit:limit");
    let mut challenge = sample_challenge(0x7B, now);
    challenge.account = Some(account.clone());
    // b allows one hit: the first commit lands, the second stops at b.
    let hits = [hit(a, 10), hit(b, 1), hit(c, 10)];
    let first = sample_challenge(0x7C, now);
    let commit = Commit {
        hits: &hits,
        challenge: Some(ChallengeWrite::Insert(&first)),
        ..Commit::default()
    };
    assert_eq!(
        committed(s.commit(&commit, now).await, "commit"),
        Committed::Done,
        "a hit that brings its counter to its max exactly is allowed"
    );
    let commit = Commit {
        hits: &hits,
        challenge: Some(ChallengeWrite::Insert(&challenge)),
        failures: Some(FailureChange {
            account: &account,
            expected: None,
            next: Some(run(1, now)),
        }),
        ..Commit::default()
    };
    match committed(s.commit(&commit, now).await, "commit") {
        Committed::LimitReached { index, count } => {
            assert_eq!(
                index, 1,
                "LimitReached must name the hit that passed its max"
            );
            assert_eq!(
                count.count, 2,
                "LimitReached must report that counter's count"
            );
            assert_eq!(
                count.resets_at,
                now + Duration::hours(1),
                "LimitReached must report when that counter's window ends"
            );
        }
        other => panic!("a hit past its max must stop the commit, got {other:?}"),
    }
    assert_eq!(
        ok(s.challenge(&challenge.id).await, "challenge").map(|c| c.id),
        None,
        "a commit stopped by a limit must not insert its challenge"
    );
    assert_eq!(
        ok(s.failures(&account).await, "failures"),
        None,
        "a commit stopped by a limit must not write its failure run"
    );
    assert_eq!(
        count_after_one_more(s, a, now).await,
        3,
        "hits before the limit stay charged"
    );
    assert_eq!(
        count_after_one_more(s, b, now).await,
        3,
        "the hit that passed stays charged"
    );
    assert_eq!(
        count_after_one_more(s, c, now).await,
        2,
        "hits after the limit are not charged"
    );
}

/// Rule: a commit whose record claims a key held by another account is
/// `Taken` with the index of that key, and writes nothing (not even its
/// other parts).
pub async fn check_commit_taken_writes_nothing(store: Arc<dyn Store>) {
    let now = base_time();
    let s = &*store;
    let (holder, taker) = (
        AccountId::new("testkit:commit:taken:holder"),
        AccountId::new("testkit:commit:taken:taker"),
    );
    let held = claim_key(0x7D, 1);
    let free = claim_key(0x7D, 2);
    assert_eq!(
        ok(
            s.commit_account(
                &sample_contact_book(&holder, now),
                None,
                &changes(&[&held], &[])
            )
            .await,
            "commit_account"
        ),
        AccountCommit::Committed
    );
    let book = sample_contact_book(&taker, now);
    let claims = changes(&[&free, &held], &[]);
    let device = sample_device(&taker, 0x7E, now);
    let commit = Commit {
        record: Some(RecordWrite {
            record: &book,
            expected_version: None,
            claims: &claims,
        }),
        failures: Some(FailureChange {
            account: &taker,
            expected: None,
            next: None,
        }),
        device: Some(&device),
        ..Commit::default()
    };
    assert_eq!(
        committed(s.commit(&commit, now).await, "commit"),
        Committed::Taken { index: 1 },
        "a claim held by another account must make the commit Taken, naming its index"
    );
    let after = loaded(s.load(&Load::account(&taker).with_device(&device.id)).await);
    assert!(
        after.record.is_none() && after.device.is_none(),
        "a Taken commit must write nothing"
    );
    assert_eq!(ok(s.claim_owner(&free).await, "claim_owner"), None);
    assert_eq!(ok(s.claim_owner(&held).await, "claim_owner"), Some(holder));
}

/// Rule: of 64 concurrent commits made on the same challenge version and
/// the same failure run (each also inserting its own device), exactly one
/// lands; every other is a `Conflict` and writes nothing.
pub async fn check_race_commit(store: Arc<dyn Store>) {
    race_commit(&[store], 0x7F).await;
}

pub(super) async fn race_commit(stores: &[Arc<dyn Store>], seed: u8) {
    let now = base_time();
    let account = AccountId::new(format!("testkit:race:commit:{seed}"));
    let mut challenge = sample_challenge(seed, now);
    challenge.account = Some(account.clone());
    ok(
        stores[0].insert_challenge(&challenge).await,
        "insert_challenge",
    );
    let before = run(2, now);
    ok(
        stores[0]
            .replace_failures(&account, None, Some(before))
            .await,
        "replace_failures",
    );
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            let account = account.clone();
            let mut next = challenge.clone();
            next.version = 1;
            next.failed_attempts = u32::try_from(i).expect("small");
            let mut device = sample_device(&account, seed, now);
            device.id = device_id(u8::try_from(i).expect("small"));
            async move {
                let commit = Commit {
                    failures: Some(FailureChange {
                        account: &account,
                        expected: Some(before),
                        next: None,
                    }),
                    challenge: Some(ChallengeWrite::Replace {
                        record: &next,
                        expected_version: 0,
                    }),
                    device: Some(&device),
                    ..Commit::default()
                };
                match store.commit(&commit, now).await {
                    Ok(Committed::Done) => Ok(()),
                    Ok(other) => panic!("a racing commit answered {other:?}"),
                    Err(e) => Err(e),
                }
            }
        })
        .collect();
    let results = race(jobs).await;
    let winner = single_winner(&results, "commit on one challenge version and failure run");
    let stored = ok(stores[0].challenge(&challenge.id).await, "challenge").expect("stored");
    assert_eq!(
        stored.failed_attempts,
        u32::try_from(winner).expect("small"),
        "the stored challenge must be the winning commit's{}",
        across(stores)
    );
    assert_eq!(
        ok(stores[0].failures(&account).await, "failures"),
        None,
        "the winning commit ended the run{}",
        across(stores)
    );
    let devices = ok(stores[0].devices(&account).await, "devices");
    assert_eq!(
        devices.len(),
        1,
        "only the winning commit may insert its device{}",
        across(stores)
    );
}
