//! Races shared by one store and two handles on one namespace.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::error::{AccountRefusal, CodeRefusal};

// ---------------------------------------------------------------------------
// Shared races (one store, or two handles on one namespace)
// ---------------------------------------------------------------------------

/// What one verification or redemption returned, in a form tasks can hand
/// back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Succeeded,
    Refused(Refusal),
    Failed(String),
}

impl<T> From<Result<T, Error>> for Outcome {
    fn from(result: Result<T, Error>) -> Self {
        match result {
            Ok(_) => Self::Succeeded,
            Err(Error::Refused(reason)) => Self::Refused(reason),
            Err(e) => Self::Failed(error_chain(&e)),
        }
    }
}

pub(super) async fn race_replace(stores: &[Arc<dyn Store>], seed: u8) {
    let record = sample_challenge(seed, base_time());
    ok(
        stores[0].insert_challenge(&record).await,
        "insert_challenge",
    );
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            let mut next = record.clone();
            next.version = record.version + 1;
            next.failed_attempts = u32::try_from(i).expect("small");
            next.state = ChallengeState::Consumed;
            let expected = record.version;
            async move { store.replace_challenge(&next, expected).await }
        })
        .collect();
    let results = race(jobs).await;
    let winner = single_winner(
        &results,
        &format!(
            "of concurrent replace_challenge calls from one version{}",
            across(stores)
        ),
    );
    for store in stores {
        let back = read(&**store, &record.id, "challenge after the race").await;
        assert_eq!(
            (back.version, back.failed_attempts),
            (record.version + 1, u32::try_from(winner).expect("small")),
            "after a compare-and-set race the stored record must be the winner's{}",
            across(stores)
        );
    }
}

pub(super) async fn race_hit(stores: &[Arc<dyn Store>], key: &'static str) {
    let window = Duration::hours(1);
    let now = base_time();
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            async move { ok(store.hit(key, window, now).await, "hit") }
        })
        .collect();
    let counts = race(jobs).await;
    let mut seen: Vec<u64> = counts.iter().map(|c| c.count).collect();
    seen.sort_unstable();
    let want: Vec<u64> = (1..=u64::try_from(TASKS).expect("small")).collect();
    assert_eq!(
        seen,
        want,
        "{TASKS} concurrent hits on one key must return each count 1..={TASKS} exactly once \
         (an atomic increment){}",
        across(stores)
    );
    assert!(
        counts.iter().all(|c| c.resets_at == now + window),
        "concurrent hits in one window must all report resets_at = now + window{}",
        across(stores)
    );
    for (i, store) in stores.iter().enumerate() {
        let next = ok(store.hit(key, window, now).await, "hit");
        assert_eq!(
            next.count,
            u64::try_from(TASKS + 1 + i).expect("small"),
            "after {TASKS} concurrent hits the counter must stand at {TASKS}{}",
            across(stores)
        );
    }
}

pub(super) async fn flows_verify_once(stores: &[Arc<dyn Store>], seed: u8) {
    let clock = ManualClock::new(base_time());
    let gateway = RecordingGateway::new();
    let services: Vec<Challenges> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| challenges(s.clone(), &clock, &gateway, seed, i))
        .collect();
    let (id, code) = issue(&services[0], &gateway).await;
    let phone = phone();

    let jobs = (0..TASKS)
        .map(|i| {
            let service = services[i % services.len()].clone();
            let code = code.clone();
            let phone = phone.clone();
            async move { Outcome::from(service.verify(&id, &code, &Purpose::SignIn, &phone).await) }
        })
        .collect();
    let outcomes = race(jobs).await;
    if let Some(Outcome::Failed(e)) = outcomes.iter().find(|o| matches!(o, Outcome::Failed(_))) {
        panic!(
            "a verification failed with an infrastructure error (the store should have \
             answered){}: {e}",
            across(stores)
        );
    }
    let verified = outcomes
        .iter()
        .filter(|o| **o == Outcome::Succeeded)
        .count();
    assert_eq!(
        verified,
        1,
        "single use: of {TASKS} concurrent verifications of one code exactly one must \
         succeed{} (replace_challenge must be a real compare-and-set)",
        across(stores)
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Succeeded | Outcome::Refused(Refusal::Code(CodeRefusal::AlreadyUsed))
        )),
        "the {} losing verifications must be refused as AlreadyUsed{}; got {outcomes:?}",
        TASKS - 1,
        across(stores)
    );
    let stored = read(&*stores[0], &id, "challenge after the race").await;
    assert_eq!(
        stored.state,
        ChallengeState::Consumed,
        "after a successful verification the stored challenge must be consumed"
    );
}

pub(super) async fn flows_attempts_counted(stores: &[Arc<dyn Store>], seed: u8) {
    let clock = ManualClock::new(base_time());
    let gateway = RecordingGateway::new();
    let services: Vec<Challenges> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| challenges(s.clone(), &clock, &gateway, seed, i))
        .collect();
    let (id, code) = issue(&services[0], &gateway).await;
    let phone = phone();
    let max = CodePolicy::default().max_attempts;
    let right: u32 = code.parse().expect("a numeric code");

    let jobs = (0..TASKS)
        .map(|i| {
            let service = services[i % services.len()].clone();
            let phone = phone.clone();
            // Never the right code: right + 1 ..= right + 64, modulo 10⁶.
            let wrong = format!(
                "{:06}",
                (right + 1 + u32::try_from(i).expect("small")) % 1_000_000
            );
            async move {
                Outcome::from(
                    service
                        .verify(&id, &wrong, &Purpose::SignIn, &phone)
                        .await,
                )
            }
        })
        .collect();
    let outcomes = race(jobs).await;
    if let Some(Outcome::Failed(e)) = outcomes.iter().find(|o| matches!(o, Outcome::Failed(_))) {
        panic!(
            "a verification failed with an infrastructure error (the store should have \
             answered){}: {e}",
            across(stores)
        );
    }
    assert!(
        !outcomes.contains(&Outcome::Succeeded),
        "a wrong code was accepted{}",
        across(stores)
    );
    let mut left: Vec<u32> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Refused(Refusal::Code(CodeRefusal::WrongCode { attempts_left })) => {
                *attempts_left
            }
            _ => None,
        })
        .collect();
    left.sort_unstable();
    let want: Vec<u32> = (1..max).collect();
    assert_eq!(
        left,
        want,
        "each wrong attempt must be counted exactly once: the refusals must report \
         {want:?} attempts left, once each{}",
        across(stores)
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Refused(
                Refusal::Code(CodeRefusal::WrongCode { .. })
                    | Refusal::Code(CodeRefusal::TooManyAttempts)
            )
        )),
        "wrong codes must be refused as WrongCode or TooManyAttempts{}; got {outcomes:?}",
        across(stores)
    );

    let stored = read(&*stores[0], &id, "challenge after the race").await;
    assert_eq!(
        stored.failed_attempts,
        max,
        "after {TASKS} concurrent wrong codes the stored failed_attempts must be exactly \
         max_attempts ({max}): none lost, none counted past the limit{}",
        across(stores)
    );
    assert_eq!(
        stored.state,
        ChallengeState::Exhausted,
        "after max_attempts wrong codes the stored challenge must be exhausted{}",
        across(stores)
    );
    for service in &services {
        let late = Outcome::from(service.verify(&id, &code, &Purpose::SignIn, &phone).await);
        assert_eq!(
            late,
            Outcome::Refused(Refusal::Code(CodeRefusal::TooManyAttempts)),
            "after max_attempts wrong codes even the right code must be refused with \
             TooManyAttempts{}",
            across(stores)
        );
    }
}

/// Rule (through the flows): every guess is counted against the account's
/// failure run **before** it is checked, so racing guesses can't outrun
/// the limits. Under the default [`FailurePolicy`] (3 free failures, then
/// back-off, hard stop at 100):
///
/// - with 99 failures on record, 64 racing wrong codes for one account are
///   checked at most once — every other one is refused as `Locked` without
///   being compared — and the run ends at exactly 100;
/// - with none on record, 64 racing wrong codes at one instant are checked
///   exactly 3 times and the run ends at 3;
/// - the same when each code is settled as a sign-in settles it, in one
///   [`load`](crate::store::StepStore::load) and one
///   [`commit`](crate::store::StepStore::commit);
/// - the right code signs in once and ends the run;
/// - the same for recovery codes.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
pub async fn check_flows_guesses_counted_first(store: Arc<dyn Store>) {
    flows_guesses_counted_first(&[store], 0x61).await;
}

pub(super) async fn flows_guesses_counted_first(stores: &[Arc<dyn Store>], seed: u8) {
    let now = base_time();
    let clock = ManualClock::new(now);
    let gateway = RecordingGateway::new();
    let codes: Vec<Challenges> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| challenges(s.clone(), &clock, &gateway, seed, i))
        .collect();
    let ports = |i: usize| ports(stores[i].clone(), &clock, seed, i);
    let recovery: Vec<RecoveryCodes> = (0..stores.len())
        .map(|i| RecoveryCodes::new(ports(i)))
        .collect();
    let hard_stop = FailurePolicy::default().hard_stop;
    let free = FailurePolicy::default().free_failures;

    // Each guess through the separate calls (count, compare, settle), then
    // through one load and one commit, as a sign-in settles it.
    for (on_record, checked_at_most, run_after, by_step) in [
        (hard_stop - 1, 1, hard_stop, false),
        (0, free, free, false),
        (hard_stop - 1, 1, hard_stop, true),
        (0, free, free, true),
    ] {
        let how = if by_step { "step" } else { "calls" };
        let account = AccountId::new(format!("testkit:guesses:{seed:02x}:code:{how}:{on_record}"));
        put_failures(stores, &account, on_record, now).await;
        let (id, code) = issue_for(&codes[0], &gateway, &account).await;
        let right: u32 = code.parse().expect("a numeric code");
        let jobs = (0..TASKS)
            .map(|i| {
                let service = codes[i % codes.len()].clone();
                let store = pick(stores, i);
                let account = account.clone();
                let wrong = format!(
                    "{:06}",
                    (right + 1 + u32::try_from(i).expect("small")) % 1_000_000
                );
                async move {
                    if by_step {
                        Outcome::from(
                            verify_by_step(&service, &*store, &account, &id, &wrong).await,
                        )
                    } else {
                        Outcome::from(
                            service
                                .verify(&id, &wrong, &Purpose::SignIn, &phone())
                                .await,
                        )
                    }
                }
            })
            .collect();
        let outcomes = race(jobs).await;
        let checked = checked_guesses(&outcomes, "a wrong code", stores);
        assert!(
            checked <= checked_at_most,
            "with {on_record} failures on record, {TASKS} racing wrong codes must be compared \
             at most {checked_at_most} time(s): every other one is refused as Locked before it \
             is checked; {checked} were compared{}",
            across(stores)
        );
        assert_run(stores, &account, run_after, "wrong codes").await;
    }

    // The right code, after two failures: signs in once and ends the run.
    let account = AccountId::new(format!("testkit:guesses:{seed:02x}:code:right"));
    put_failures(stores, &account, free - 1, now).await;
    let (id, code) = issue_for(&codes[0], &gateway, &account).await;
    let first = Outcome::from(
        codes[0]
            .verify(&id, &code, &Purpose::SignIn, &phone())
            .await,
    );
    assert_eq!(
        first,
        Outcome::Succeeded,
        "the right code must verify with {} failures on record{}",
        free - 1,
        across(stores)
    );
    assert_run(stores, &account, 0, "the right code").await;
    let again = Outcome::from(
        codes[codes.len() - 1]
            .verify(&id, &code, &Purpose::SignIn, &phone())
            .await,
    );
    assert_eq!(
        again,
        Outcome::Refused(Refusal::Code(CodeRefusal::AlreadyUsed)),
        "a verified code must not verify again{}",
        across(stores)
    );

    for (on_record, checked_at_most, run_after) in [(hard_stop - 1, 1, hard_stop), (0, free, free)]
    {
        let account = AccountId::new(format!("testkit:guesses:{seed:02x}:recovery:{on_record}"));
        let plain = generate(&recovery[0], &account).await;
        put_failures(stores, &account, on_record, now).await;
        let jobs = (0..TASKS)
            .map(|i| {
                let service = recovery[i % recovery.len()].clone();
                let account = account.clone();
                // A well-formed code that is not in the set.
                let wrong = plain[0].chars().rev().collect::<String>();
                async move { Outcome::from(service.redeem(&account, &wrong).await) }
            })
            .collect();
        let outcomes = race(jobs).await;
        let checked = checked_guesses(&outcomes, "a wrong recovery code", stores);
        assert!(
            checked <= checked_at_most,
            "with {on_record} failures on record, {TASKS} racing wrong recovery codes must be \
             compared at most {checked_at_most} time(s); {checked} were compared{}",
            across(stores)
        );
        assert_run(stores, &account, run_after, "wrong recovery codes").await;
    }
}

/// A sign-in code verified the way `TwoFactor::sign_in_complete` does: one
/// [`load`](crate::store::StepStore::load) of the challenge with the
/// account's failure run, one commit that settles the guess on both.
async fn verify_by_step(
    codes: &Challenges,
    store: &dyn Store,
    account: &AccountId,
    id: &ChallengeId,
    input: &str,
) -> Result<(), Error> {
    let loaded = store
        .load(&crate::store::Load::account(account).with_challenge(id))
        .await?;
    let record = loaded
        .challenge
        .ok_or(Error::Refused(Refusal::Code(CodeRefusal::Unknown)))?;
    let to = phone();
    let code = crate::flows::Code {
        input,
        purpose: &Purpose::SignIn,
        destination: &to,
        attempt: None,
    };
    codes
        .verify_step(account, (record, loaded.failures), code, None, None)
        .await
        .map(|_| ())
}

/// Puts a run of `consecutive` failures on record for `account`, the last
/// one long enough ago that no back-off is running.
pub(super) async fn put_failures(
    stores: &[Arc<dyn Store>],
    account: &AccountId,
    consecutive: u32,
    now: OffsetDateTime,
) {
    if consecutive == 0 {
        return;
    }
    let run = FailureRecord {
        consecutive,
        last_failure_at: now - Duration::hours(1),
    };
    ok(
        stores[0].replace_failures(account, None, Some(run)).await,
        "replace_failures",
    );
}

/// How many of the outcomes were compared (refused as wrong rather than
/// as locked); panics on successes and infrastructure errors.
pub(super) fn checked_guesses(outcomes: &[Outcome], what: &str, stores: &[Arc<dyn Store>]) -> u32 {
    assert_no_failures(outcomes, what, stores);
    let mut checked = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Refused(
                Refusal::Code(CodeRefusal::WrongCode { .. })
                | Refusal::Code(CodeRefusal::TooManyAttempts)
                | Refusal::Code(CodeRefusal::WrongRecoveryCode),
            ) => checked += 1,
            Outcome::Refused(Refusal::Account(AccountRefusal::Locked { .. })) => {}
            other => panic!(
                "{what} must be refused as wrong or as Locked{}; got {other:?}",
                across(stores)
            ),
        }
    }
    checked
}

/// Panics unless every handle reads a run of `want` (0: no run).
pub(super) async fn assert_run(
    stores: &[Arc<dyn Store>],
    account: &AccountId,
    want: u32,
    after: &str,
) {
    for store in stores {
        let run = ok(store.failures(account).await, "failures");
        assert_eq!(
            run.map_or(0, |r| r.consecutive),
            want,
            "after {after} the account's failure run must be {want}{}",
            across(stores)
        );
    }
}

pub(super) async fn race_bump_epoch(stores: &[Arc<dyn Store>], account: &str) {
    let account = AccountId::new(account);
    let clock = ManualClock::new(base_time());
    let flows: Vec<TrustedDevices> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| trusted_devices(s.clone(), &clock, 0x5E, i))
        .collect();
    let jobs = (0..TASKS)
        .map(|i| {
            let flow = flows[i % flows.len()].clone();
            let account = account.clone();
            async move {
                match flow.bump_epoch(&account).await {
                    Ok(epoch) => epoch,
                    Err(e) => panic!("bump_epoch failed on this store: {}", error_chain(&e)),
                }
            }
        })
        .collect();
    let mut seen = race(jobs).await;
    seen.sort_unstable();
    let want: Vec<u64> = (1..=u64::try_from(TASKS).expect("small")).collect();
    assert_eq!(
        seen,
        want,
        "{TASKS} concurrent epoch bumps (each a compare-and-set of the account's contact book) \
         must return each epoch 1..={TASKS} exactly once{}",
        across(stores)
    );
    for store in stores {
        let book = ok(store.account_record(&account).await, "account_record");
        assert_eq!(
            book.map(|b| b.epoch),
            Some(u64::try_from(TASKS).expect("small")),
            "after {TASKS} concurrent epoch bumps the record's epoch must read {TASKS}{}",
            across(stores)
        );
    }
}

pub(super) async fn flows_redeem_once(stores: &[Arc<dyn Store>], seed: u8) {
    let clock = ManualClock::new(base_time());
    let services: Vec<RecoveryCodes> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| recovery_codes(s.clone(), &clock, seed, i))
        .collect();
    let account = AccountId::new(format!("testkit:flows:redeem-once:{seed:02x}"));
    let plain = generate(&services[0], &account).await;
    let n = plain.len();
    let code = Arc::new(plain[3].clone());

    let jobs = (0..TASKS)
        .map(|i| {
            let service = services[i % services.len()].clone();
            let account = account.clone();
            let code = code.clone();
            async move { service.redeem(&account, &code).await }
        })
        .collect();
    let results = race(jobs).await;
    let remaining: Vec<usize> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|r| r.remaining))
        .collect();
    let outcomes: Vec<Outcome> = results.into_iter().map(Outcome::from).collect();
    assert_no_failures(&outcomes, "a redemption", stores);
    assert_eq!(
        remaining.len(),
        1,
        "single use: of {TASKS} concurrent redemptions of one recovery code exactly one must \
         succeed{} (replace_recovery_set must be a real compare-and-set)",
        across(stores)
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Succeeded | Outcome::Refused(Refusal::Code(CodeRefusal::AlreadyUsed))
        )),
        "the {} losing redemptions must be refused as AlreadyUsed{}; got {outcomes:?}",
        TASKS - 1,
        across(stores)
    );
    assert_eq!(
        remaining[0],
        n - 1,
        "the successful redemption must report {} codes remaining{}",
        n - 1,
        across(stores)
    );
    for service in &services {
        let left = remaining_codes(service, &account).await;
        assert_eq!(
            left,
            Some(n - 1),
            "after one code of {n} was redeemed, remaining must read {}{}",
            n - 1,
            across(stores)
        );
        let again = Outcome::from(service.redeem(&account, &code).await);
        assert_eq!(
            again,
            Outcome::Refused(Refusal::Code(CodeRefusal::AlreadyUsed)),
            "a recovery code redeemed once must be refused as AlreadyUsed afterwards{}",
            across(stores)
        );
    }
}

pub(super) async fn race_claim(stores: &[Arc<dyn Store>], name: &str) {
    let now = base_time();
    let key = format!("{name}:+819012345678");
    let account = |i: usize| AccountId::new(format!("{name}:{i}"));
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            let book = sample_contact_book(&account(i), now);
            let key = key.clone();
            async move {
                store
                    .commit_account(&book, None, &changes(&[&key], &[]))
                    .await
                    .map_err(|e| describe(&e))
            }
        })
        .collect();
    let results = race(jobs).await;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        panic!(
            "of {TASKS} accounts claiming one key at once{}, each commit must end Committed or \
             Taken, never an error (a unique-key clash must read as Taken): {e}",
            across(stores)
        );
    }
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Ok(AccountCommit::Committed)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "of {TASKS} accounts claiming one key at once{}, exactly one must commit; {} did",
        across(stores),
        winners.len()
    );
    let winner = winners[0];
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(i, r)| i == winner || matches!(r, Ok(AccountCommit::Taken { index: 0 }))),
        "the {} losing claims must return Taken {{ index: 0 }}{}; got {results:?}",
        TASKS - 1,
        across(stores)
    );
    for store in stores {
        let owner = ok(store.claim_owner(&key).await, "claim_owner");
        assert_eq!(
            owner,
            Some(account(winner)),
            "after a claim race claim_owner must name the winner{}",
            across(stores)
        );
        for i in 0..TASKS {
            let book = ok(store.account_record(&account(i)).await, "account_record");
            assert_eq!(
                book.is_some(),
                i == winner,
                "after a claim race only the winner may have a record (task {i}){}",
                across(stores)
            );
        }
    }
}

pub(super) async fn race_contact_book(stores: &[Arc<dyn Store>], name: &str) {
    let now = base_time();
    let account = AccountId::new(name);
    let first = sample_contact_book(&account, now);
    committed(&*stores[0], &first, None, &[], &[], "the first commit").await;
    let email = |i: usize| format!("race-{i}@example.com");
    let key = |i: usize| format!("{name}:key:{i}");
    let jobs = (0..TASKS)
        .map(|i| {
            let store = pick(stores, i);
            let account = account.clone();
            let (address, claim) = (email(i), key(i));
            async move {
                // Each lost round means another task won one; reads may be
                // stale, so allow far more rounds than that bound.
                for _ in 0..TASKS * TASKS {
                    let current =
                        read_book(&*store, &account, "account record in a retry loop").await;
                    let next = next_book(&current, &address, now);
                    match store
                        .commit_account(&next, Some(current.version), &changes(&[&claim], &[]))
                        .await
                    {
                        Ok(AccountCommit::Committed) => return,
                        Ok(other) => panic!(
                            "commit_account claiming a free key returned {other:?} in a \
                             read-modify-write loop"
                        ),
                        Err(e) if e.is_conflict() => tokio::task::yield_now().await,
                        Err(e) => panic!(
                            "commit_account failed in a read-modify-write loop: {}",
                            describe(&e)
                        ),
                    }
                }
                panic!(
                    "commit_account kept reporting Conflict in a read-modify-write loop \
                     although every other writer had finished"
                );
            }
        })
        .collect();
    race(jobs).await;
    for store in stores {
        let back = read_book(&**store, &account, "account record after the race").await;
        assert_eq!(
            back.version,
            first.version + u64::try_from(TASKS).expect("small"),
            "{TASKS} successful commit_account calls must move the version by {TASKS}{}",
            across(stores)
        );
        assert_eq!(
            back.contacts.len(),
            first.contacts.len() + TASKS,
            "lost update: {TASKS} read-modify-commit loops must add exactly {TASKS} contacts \
             (commit_account must compare and set atomically){}",
            across(stores)
        );
        for i in 0..TASKS {
            let address = email(i);
            let n = back
                .contacts
                .iter()
                .filter(|c| c.destination.address() == address)
                .count();
            assert_eq!(
                n,
                1,
                "each task's contact must be in the record exactly once (task {i}: {n} times){}",
                across(stores)
            );
            let owner = ok(store.claim_owner(&key(i)).await, "claim_owner");
            assert_eq!(
                owner.as_ref(),
                Some(&account),
                "each task's claim must be held after the race (task {i}){}",
                across(stores)
            );
        }
    }
}
