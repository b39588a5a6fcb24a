//! The rules as the flows keep them, on the store under test.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::error::CodeRefusal;

// ---------------------------------------------------------------------------
// Through the flows
// ---------------------------------------------------------------------------

/// Rule (single use, end to end): [`OneTimeCodes`](crate::service::OneTimeCodes) on this store issues one
/// code; 64 tasks verify the right code at once; exactly one succeeds, the
/// 63 others are refused with [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed), and the stored
/// challenge is consumed.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
///
pub async fn check_flows_verify_once(store: Arc<dyn Store>) {
    flows_verify_once(&[store], 0x60).await;
}

/// Rule (attempts counted exactly, end to end): [`OneTimeCodes`](crate::service::OneTimeCodes) on this store
/// issues one code; 64 tasks send wrong codes at once; the stored
/// `failed_attempts` ends exactly at the policy's `max_attempts` (5), the
/// refusals report each remaining count once, and the right code is then
/// refused with [`CodeRefusal::TooManyAttempts`](crate::CodeRefusal::TooManyAttempts).
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
///
pub async fn check_flows_attempts_counted(store: Arc<dyn Store>) {
    flows_attempts_counted(&[store], 0x61).await;
}

/// Rule (single use, end to end): [`TwoFactor`](crate::service::TwoFactor) on this store
/// generates a set of 10; 64 tasks redeem the same code at once; exactly
/// one succeeds (reporting 9 remaining), the 63 others are refused with
/// [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed), and `remaining` then reads 9.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
///
pub async fn check_flows_redeem_once(store: Arc<dyn Store>) {
    flows_redeem_once(&[store], 0x62).await;
}

/// Rule (each code once, end to end): [`TwoFactor`](crate::service::TwoFactor) on this store
/// generates a set of 10; 64 tasks redeem its 10 different codes at once
/// (task `i` redeems code `i % 10`, so each code by 6 or 7 tasks); each
/// code succeeds exactly once (10 successes in all), the other tasks are
/// refused with [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed), the winners report 9, 8, … 0
/// codes remaining, once each, and `remaining` then reads 0.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
///
pub async fn check_flows_redeem_each_code_once(store: Arc<dyn Store>) {
    let clock = ManualClock::new(base_time());
    let service = recovery_codes(store, &clock, 0x63, 0);
    let account = AccountId::new("testkit:flows:redeem-each");
    let plain = generate(&service, &account).await;
    let n = plain.len();

    let jobs = (0..TASKS)
        .map(|i| {
            let service = service.clone();
            let account = account.clone();
            let code = plain[i % n].clone();
            async move { service.redeem(&account, &code).await }
        })
        .collect();
    let results = race(jobs).await;
    let mut remaining: Vec<usize> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|r| r.remaining))
        .collect();
    let outcomes: Vec<Outcome> = results.into_iter().map(Outcome::from).collect();
    assert_no_failures(&outcomes, "a redemption", &[]);
    for k in 0..n {
        let wins = outcomes
            .iter()
            .enumerate()
            .filter(|(i, o)| i % n == k && **o == Outcome::Succeeded)
            .count();
        assert_eq!(
            wins,
            1,
            "each recovery code must redeem exactly once: code #{k}, redeemed by {} concurrent \
             tasks while the other codes were, succeeded {wins} times (replace_recovery_set \
             must be a real compare-and-set)",
            (k..TASKS).step_by(n).count()
        );
    }
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Succeeded | Outcome::Refused(Refusal::Code(CodeRefusal::AlreadyUsed))
        )),
        "the {} losing redemptions must be refused as AlreadyUsed; got {outcomes:?}",
        TASKS - n
    );
    remaining.sort_unstable();
    let want: Vec<usize> = (0..n).collect();
    assert_eq!(
        remaining,
        want,
        "no redemption may be lost: the {n} successful redemptions must report {} … 0 codes \
         remaining, once each (each must see every code used before it)",
        n - 1
    );
    let left = remaining_codes(&service, &account).await;
    assert_eq!(
        left,
        Some(0),
        "after every code of the set was redeemed, remaining must read 0"
    );
}

/// Rule (regenerating voids the old set, end to end): [`TwoFactor`](crate::service::TwoFactor) on
/// this store generates a set; then one task generates a new set while 63
/// tasks keep redeeming codes of the old one. Once `generate` has returned,
/// no redemption that starts afterwards succeeds with an old code (each is
/// refused with [`CodeRefusal::WrongRecoveryCode`](crate::CodeRefusal::WrongRecoveryCode)); no old code redeems twice;
/// and no redemption prepared against the old set lands on the new one: the
/// new set still has all its codes, and they redeem.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
///
pub async fn check_flows_regenerate_voids_old_codes(store: Arc<dyn Store>) {
    let clock = ManualClock::new(base_time());
    // Redeeming old codes after the regeneration counts failures: keep the
    // account from locking so the answers stay WrongRecoveryCode.
    let service = recovery_codes(store, &clock, 0x64, 0).with_failure_policy(FailurePolicy {
        free_failures: u32::MAX,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
        hard_stop: u32::MAX,
    });
    let account = AccountId::new("testkit:flows:regenerate");
    let old = Arc::new(generate(&service, &account).await);
    let regenerated = Arc::new(AtomicBool::new(false));

    let jobs = (0..TASKS)
        .map(|i| {
            let service = service.clone();
            let account = account.clone();
            let old = old.clone();
            let regenerated = regenerated.clone();
            async move {
                if i == 0 {
                    let new = generate(&service, &account).await;
                    regenerated.store(true, Ordering::SeqCst);
                    return (Some(new), Vec::new());
                }
                // Redeem one old code again and again, until one attempt
                // that started after the regeneration returned.
                let code = &old[i % old.len()];
                let mut attempts = Vec::new();
                for _ in 0..TASKS {
                    let after = regenerated.load(Ordering::SeqCst);
                    attempts.push((after, Outcome::from(service.redeem(&account, code).await)));
                    if after {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                (None, attempts)
            }
        })
        .collect();
    let results = race(jobs).await;
    let mut new = None;
    let mut wins = vec![0usize; old.len()];
    for (i, (generated, attempts)) in results.into_iter().enumerate() {
        if generated.is_some() {
            new = generated;
        }
        let outcomes: Vec<Outcome> = attempts.iter().map(|(_, o)| o.clone()).collect();
        assert_no_failures(&outcomes, "a redemption racing a regeneration", &[]);
        for (after, outcome) in attempts {
            if after {
                assert_eq!(
                    outcome,
                    Outcome::Refused(Refusal::Code(CodeRefusal::WrongRecoveryCode)),
                    "once RecoveryCodes::generate has returned, no code of the replaced set \
                     may redeem: a redemption of old code #{} that started afterwards must be \
                     refused as WrongRecoveryCode",
                    i % old.len()
                );
            } else {
                assert!(
                    matches!(
                        outcome,
                        Outcome::Succeeded
                            | Outcome::Refused(
                                Refusal::Code(CodeRefusal::AlreadyUsed)
                                    | Refusal::Code(CodeRefusal::WrongRecoveryCode)
                            )
                    ),
                    "a redemption of an old code racing a regeneration must succeed or be \
                     refused as AlreadyUsed or WrongRecoveryCode; got {outcome:?}"
                );
            }
            if outcome == Outcome::Succeeded {
                wins[i % old.len()] += 1;
            }
        }
    }
    assert!(
        wins.iter().all(|&w| w <= 1),
        "single use: while a regeneration raced them, an old recovery code redeemed more than \
         once (successes per old code: {wins:?})"
    );
    let new = new.expect("the regenerating task returns the new codes");

    for (k, code) in old.iter().enumerate() {
        let late = Outcome::from(service.redeem(&account, code).await);
        assert_eq!(
            late,
            Outcome::Refused(Refusal::Code(CodeRefusal::WrongRecoveryCode)),
            "after RecoveryCodes::generate returned, old code #{k} must be refused as \
             WrongRecoveryCode"
        );
    }
    let left = remaining_codes(&service, &account).await;
    assert_eq!(
        left,
        Some(new.len()),
        "no redemption prepared against the replaced set may land on the new set: after the \
         race the regenerated set must still have all {} codes unused \
         (replace_recovery_set must be an atomic compare-and-set on salt and version)",
        new.len()
    );
    let first = service.redeem(&account, &new[0]).await;
    match first {
        Ok(r) => assert_eq!(
            r.remaining,
            new.len() - 1,
            "redeeming a code of the regenerated set must leave the others"
        ),
        Err(e) => panic!(
            "a code of the regenerated set must redeem after the race; it failed: {}",
            error_chain(&e)
        ),
    }
}

/// Rule (an epoch bump revokes at once, end to end): [`TwoFactor`](crate::service::TwoFactor) on
/// this store trusts a device; then one task bumps the account's epoch
/// while 63 tasks keep checking the device's token. Once `bump_epoch` has
/// returned (epoch 1), no check that starts afterwards is
/// [`DeviceCheck::Valid`]: each is [`DeviceCheck::Revoked`]; checks that
/// started before are `Valid` or `Revoked`. Afterwards the token checks
/// `Revoked` and the account lists no device.
///
/// Needs a multi-thread runtime to race (see the [module docs](super)).
///
pub async fn check_flows_bump_epoch_revokes(store: Arc<dyn Store>) {
    let clock = ManualClock::new(base_time());
    let service = trusted_devices(store, &clock, 0x65, 0);
    let account = AccountId::new("testkit:flows:epoch");
    let token = Arc::new(trust(&service, &account, "testkit browser").await);
    let before = checked(service.check(&account, &token).await);
    assert_eq!(
        before,
        Ok(DeviceCheck::Valid { refresh: false }),
        "a device just trusted through TrustedDevices must check Valid"
    );
    let bumped = Arc::new(AtomicBool::new(false));

    let jobs = (0..TASKS)
        .map(|i| {
            let service = service.clone();
            let account = account.clone();
            let token = token.clone();
            let bumped = bumped.clone();
            async move {
                if i == 0 {
                    let epoch = service
                        .bump_epoch(&account)
                        .await
                        .map_err(|e| error_chain(&e));
                    bumped.store(true, Ordering::SeqCst);
                    return (Some(epoch), Vec::new());
                }
                // Check again and again, until one check that started
                // after the bump returned.
                let mut checks = Vec::new();
                for _ in 0..TASKS {
                    let after = bumped.load(Ordering::SeqCst);
                    checks.push((after, checked(service.check(&account, &token).await)));
                    if after {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                (None, checks)
            }
        })
        .collect();
    let results = race(jobs).await;
    for (epoch, checks) in results {
        if let Some(epoch) = epoch {
            assert_eq!(
                epoch,
                Ok(1),
                "TrustedDevices::bump_epoch of an account never bumped must return 1"
            );
        }
        for (after, result) in checks {
            let result = match result {
                Ok(check) => check,
                Err(e) => panic!(
                    "a device check failed with an infrastructure error (the store should have \
                     answered): {e}"
                ),
            };
            if after {
                assert_eq!(
                    result,
                    DeviceCheck::Revoked,
                    "once bump_epoch has returned, every device trusted before it is dead: a \
                     check that started afterwards must be Revoked (the store's epoch read \
                     must see the bump)"
                );
            } else {
                assert!(
                    matches!(
                        result,
                        DeviceCheck::Valid { refresh: false } | DeviceCheck::Revoked
                    ),
                    "a device check racing an epoch bump must be Valid or Revoked; got \
                     {result:?}"
                );
            }
        }
    }
    let late = checked(service.check(&account, &token).await);
    assert_eq!(
        late,
        Ok(DeviceCheck::Revoked),
        "after bump_epoch the device trusted before it must check Revoked"
    );
    let listed = match service.list(&account).await {
        Ok(list) => list,
        Err(e) => panic!("TrustedDevices::list failed: {}", error_chain(&e)),
    };
    assert!(
        listed.is_empty(),
        "after bump_epoch no device trusted before it may be listed (got {listed:?})"
    );
}
