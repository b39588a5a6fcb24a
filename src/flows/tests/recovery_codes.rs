//! Recovery codes through the public API: `RecoveryCodes` on a real
//! `MemoryStore` (for behaviour), on a `MemoryStore` behind a wrapper that
//! fails on cue (nothing is lost when a write fails), on mockall mocks (pure
//! store failures, and proof of what is *not* called), and behind `Yielding`,
//! which suspends after every store call so 64 tasks on 4 worker threads
//! really interleave between a read and the compare-and-set that follows.
//!
//! Time comes from a `ManualClock` (nothing sleeps) and randomness from a
//! seeded `LockedRng`.

use ninsho::{AccountRefusal, CodeRefusal};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::ports;
use super::support::{
    MockDb, PHONE, T0, TASKS, Yielding, db_down, delegate_store, hasher, phone, race, refusal,
    store_error, t0, take,
};
use async_trait::async_trait;
use ninsho::events::{Event, RecordingEvents};
use ninsho::flows::recovery::Redeemed;
use ninsho::flows::{Challenges, IssueRequest, Ports, RecoveryCodes};
use ninsho::gateway::RecordingGateway;
use ninsho::limits::FailurePolicy;
use ninsho::model::{
    AccountId, AccountRecord, ChallengeId, Factors, FailureRecord, GraceState, Locale, Purpose,
    RecoverySet,
};
use ninsho::recovery::{self, ALPHABET, MIN_BITS, PlainCodes, RecoveryPolicy, RecoveryPolicyError};
use ninsho::store::{
    AccountCommit, AccountStore, ClaimChanges, Commit, Committed, LimitStore, Load, Loaded,
    MemoryStore, StepStore, Store, StoreError, StoreErrorKind, WindowCount,
};
use ninsho::{Error, HashKey, KeyId, KeyedHasher, LockedRng, ManualClock, Refusal};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use time::{Duration, OffsetDateTime};

// ------------------------------------------------------------------ set-up

fn alice() -> AccountId {
    AccountId::new("alice")
}

fn bob() -> AccountId {
    AccountId::new("bob")
}

/// No back-off at all, for tests that enter many wrong codes on purpose.
fn lenient() -> FailurePolicy {
    FailurePolicy {
        free_failures: u32::MAX - 1,
        hard_stop: u32::MAX,
        ..FailurePolicy::default()
    }
}

struct Env {
    codes: RecoveryCodes,
    store: Arc<MemoryStore>,
    clock: ManualClock,
    events: RecordingEvents,
}

fn env_with(configure: impl FnOnce(RecoveryCodes) -> RecoveryCodes) -> Env {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::at_unix(T0).unwrap();
    let events = RecordingEvents::new();
    let codes = configure(RecoveryCodes::new(ports(store.clone(), &clock, &events)));
    Env {
        codes,
        store,
        clock,
        events,
    }
}

/// Default policies.
fn env() -> Env {
    env_with(|c| c)
}

/// Default code policy, no back-off.
fn lenient_env() -> Env {
    env_with(|c| c.with_failure_policy(lenient()))
}

fn owned(plain: &PlainCodes) -> Vec<String> {
    plain
        .expose_secret()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// `ABCD-EFGH-JKMN` → `ABCDEFGHJKMN`.
fn raw(code: &str) -> String {
    code.replace('-', "")
}

impl Env {
    async fn generate(&self, account: &AccountId) -> Vec<String> {
        owned(&self.codes.generate(account).await.unwrap())
    }

    async fn redeem(&self, account: &AccountId, input: &str) -> Result<Redeemed, Error> {
        self.codes.redeem(account, input).await
    }

    async fn remaining(&self, account: &AccountId) -> Option<usize> {
        self.codes.remaining(account).await.unwrap()
    }

    async fn stored(&self, account: &AccountId) -> RecoverySet {
        stored_set(&*self.store, account).await.unwrap()
    }

    /// `(remaining, low?)` of every `RecoveryCodeUsed` / `RecoveryCodesLow`.
    fn usage_events(&self) -> Vec<(&'static str, usize)> {
        self.events
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::RecoveryCodeUsed { remaining, .. } => Some(("used", remaining)),
                Event::RecoveryCodesLow { remaining, .. } => Some(("low", remaining)),
                _ => None,
            })
            .collect()
    }
}

/// Every way a plain code could show up in `text`.
fn shows_code(text: &str, code: &str) -> bool {
    let upper = text.to_uppercase();
    upper.contains(code) || upper.contains(&raw(code))
}

// ---------------------------------------------------------------- generate

#[tokio::test]
async fn generate_makes_ten_distinct_grouped_codes_from_the_alphabet() {
    let env = env();
    let codes = env.generate(&alice()).await;
    assert_eq!(codes.len(), 10);
    for code in &codes {
        assert_eq!(code.len(), 14, "{code}");
        for (i, c) in code.bytes().enumerate() {
            if i == 4 || i == 9 {
                assert_eq!(c, b'-', "{code}");
            } else {
                assert!(ALPHABET.contains(&c), "{code}: {}", char::from(c));
            }
        }
    }
    let distinct: HashSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert_eq!(env.remaining(&alice()).await, Some(10));
    assert_eq!(env.remaining(&bob()).await, None);
    assert_eq!(
        env.events.events(),
        vec![Event::RecoveryCodesGenerated {
            account: alice(),
            count: 10,
        }]
    );
}

#[tokio::test]
async fn generated_codes_use_the_whole_alphabet_and_only_it() {
    // 40 sets of 10 codes of 12 symbols: 4 800 symbols, about 155 of each of
    // the 31. A generator drawing from a subset (or a biased one that never
    // reaches the last symbol) leaves one out.
    let mut seen = BTreeSet::new();
    for seed in 0..40 {
        let clock = ManualClock::at_unix(T0).unwrap();
        let codes = RecoveryCodes::new(
            Ports::new(Arc::new(MemoryStore::new()), hasher())
                .with_clock(Arc::new(clock))
                .with_rng(Arc::new(LockedRng::seeded(seed))),
        );
        for code in owned(&codes.generate(&alice()).await.unwrap()) {
            seen.extend(raw(&code).bytes());
        }
    }
    let alphabet: BTreeSet<u8> = ALPHABET.iter().copied().collect();
    assert_eq!(seen, alphabet);
    for confusable in b"01ILO" {
        assert!(!ALPHABET.contains(confusable));
    }
}

#[tokio::test]
async fn codes_are_shown_once_and_never_stored_or_printed() {
    let env = env();
    let plain = env.codes.generate(&alice()).await.unwrap();
    let codes = owned(&plain);
    let set = env.stored(&alice()).await;
    assert_eq!(set.codes.len(), 10);
    assert!(set.codes.iter().all(|c| c.used_at.is_none()));
    assert_eq!(set.length, 12);
    assert_eq!(set.created_at, t0());

    let json = serde_json::to_string(&set).unwrap();
    let printed = [
        json,
        format!("{set:?}"),
        format!("{set:#?}"),
        format!("{plain:?}"),
        format!("{plain:#?}"),
        format!("{:?}", env.codes),
        format!("{:?}", env.store),
        format!("{:?}", env.events.events()),
    ];
    for text in &printed {
        for code in &codes {
            assert!(!shows_code(text, code), "{code} in {text}");
        }
    }
    assert!(format!("{plain:?}").contains("redacted"));

    // Redemption events and results don't print the code either.
    let redeemed = env.redeem(&alice(), &codes[0]).await.unwrap();
    let wrong = env.redeem(&alice(), &codes[0]).await.unwrap_err();
    let after = [
        format!("{redeemed:?}"),
        format!("{wrong:?} {wrong}"),
        format!("{:?}", env.events.events()),
        serde_json::to_string(&env.stored(&alice()).await).unwrap(),
    ];
    for text in &after {
        assert!(!shows_code(text, &codes[0]), "{text}");
    }
}

// ------------------------------------------------------------------ redeem

#[tokio::test]
async fn every_code_works_once_in_reverse_order() {
    // Lenient: re-typing used codes counts as failures (see
    // `a_used_code_counts_as_a_failed_guess`).
    let env = lenient_env();
    let codes = env.generate(&alice()).await;
    for (n, code) in codes.iter().rev().enumerate() {
        let redeemed = env.redeem(&alice(), code).await.unwrap();
        assert_eq!(redeemed.remaining, 9 - n);
        assert_eq!(env.remaining(&alice()).await, Some(9 - n));
    }
    for code in &codes {
        assert_eq!(
            refusal(env.redeem(&alice(), code).await),
            Refusal::Code(CodeRefusal::AlreadyUsed)
        );
    }
    assert_eq!(env.remaining(&alice()).await, Some(0));
    let set = env.stored(&alice()).await;
    assert!(set.codes.iter().all(|c| c.used_at == Some(t0())));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any order works: each code once, `remaining` counting down.
    #[test]
    fn every_code_works_once_in_any_order(
        order in Just((0..10usize).collect::<Vec<_>>()).prop_shuffle()
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let env = env();
            let codes = env.generate(&alice()).await;
            for (n, &i) in order.iter().enumerate() {
                let redeemed = env.redeem(&alice(), &codes[i]).await.unwrap();
                prop_assert_eq!(redeemed.remaining, 9 - n);
                prop_assert_eq!(
                    refusal(env.redeem(&alice(), &codes[i]).await),
                    Refusal::Code(CodeRefusal::AlreadyUsed)
                );
            }
            prop_assert_eq!(env.remaining(&alice()).await, Some(0));
            Ok(())
        })?;
    }

    /// Whatever is typed, redemption never panics and (short of guessing a
    /// code) is refused as a wrong code.
    #[test]
    fn arbitrary_input_is_a_wrong_code(input in "\\PC{0,40}|[2-9A-Za-z -]{10,20}") {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let env = lenient_env();
            env.generate(&alice()).await;
            prop_assert_eq!(
                refusal(env.redeem(&alice(), &input).await),
                Refusal::Code(CodeRefusal::WrongRecoveryCode)
            );
            prop_assert_eq!(env.remaining(&alice()).await, Some(10));
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_used_code_is_already_used() {
    let env = lenient_env();
    let codes = env.generate(&alice()).await;
    env.redeem(&alice(), &codes[3]).await.unwrap();
    // However it is typed.
    for typed in [
        codes[3].clone(),
        codes[3].to_lowercase(),
        raw(&codes[3]),
        format!(" {} ", codes[3].replace('-', " ")),
    ] {
        assert_eq!(
            refusal(env.redeem(&alice(), &typed).await),
            Refusal::Code(CodeRefusal::AlreadyUsed),
            "{typed}"
        );
    }
    assert_eq!(env.remaining(&alice()).await, Some(9));
    assert!(env.events.events().contains(&Event::Failed {
        challenge: None,
        account: Some(alice()),
        reason: Refusal::Code(CodeRefusal::AlreadyUsed),
    }));
}

#[tokio::test]
async fn a_wrong_code_is_refused_and_consumes_nothing() {
    let env = env();
    let codes = env.generate(&alice()).await;
    let bobs = env.generate(&bob()).await;
    // Well formed, from the alphabet, but not one of alice's.
    let mut wrong = raw(&codes[0]).into_bytes();
    wrong[11] = if wrong[11] == b'2' { b'3' } else { b'2' };
    let wrong = String::from_utf8(wrong).unwrap();
    assert_eq!(
        refusal(env.redeem(&alice(), &wrong).await),
        Refusal::Code(CodeRefusal::WrongRecoveryCode)
    );
    // Bob's code is not alice's.
    assert_eq!(
        refusal(env.redeem(&alice(), &bobs[0]).await),
        Refusal::Code(CodeRefusal::WrongRecoveryCode)
    );
    assert_eq!(env.remaining(&alice()).await, Some(10));
    assert_eq!(env.remaining(&bob()).await, Some(10));
    assert!(env.events.events().contains(&Event::Failed {
        challenge: None,
        account: Some(alice()),
        reason: Refusal::Code(CodeRefusal::WrongRecoveryCode),
    }));
    assert!(
        !env.events
            .events()
            .iter()
            .any(|e| matches!(e, Event::RecoveryCodeUsed { .. }))
    );
    // Both accounts' codes still work.
    env.redeem(&alice(), &codes[0]).await.unwrap();
    env.redeem(&bob(), &bobs[0]).await.unwrap();
}

fn full_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(u32::from(c) + 0xFEE0).unwrap(),
            ' ' => '\u{3000}',
            c => c,
        })
        .collect()
}

#[tokio::test]
async fn typed_input_is_folded() {
    let env = lenient_env();
    let codes = env.generate(&alice()).await;
    let r = |i: usize| raw(&codes[i]);
    let typed = [
        // lower case
        codes[0].to_lowercase(),
        // spaces for hyphens, and around
        format!("  {}\t", codes[1].replace('-', " ")),
        // no hyphens
        r(2),
        // full-width, hyphens and all
        full_width(&codes[3]),
        // full-width lower case, ideographic spaces
        full_width(&codes[4].to_lowercase().replace('-', " ")),
        // mixed: lower and upper case, full-width halves, Unicode dashes
        format!(
            "{}\u{2010}{}\u{2212}{}",
            r(5)[..4].to_lowercase(),
            full_width(&r(5)[4..8]),
            &r(5)[8..]
        ),
        // katakana long mark, underscores, dots, en dash, line breaks
        format!(
            "{}\u{30FC}{}_{}.\u{2013}\n",
            &r(6)[..4],
            &r(6)[4..8],
            &r(6)[8..]
        ),
        // grouped differently
        format!("{}-{}-{}", &r(7)[..3], &r(7)[3..9], &r(7)[9..]),
        // non-breaking spaces
        format!("{}\u{A0}{}\u{A0}{}", &r(8)[..4], &r(8)[4..8], &r(8)[8..]),
        // one character per group
        r(9).chars().map(|c| format!("{c} ")).collect::<String>(),
    ];
    for (n, input) in typed.iter().enumerate() {
        let redeemed = env
            .redeem(&alice(), input)
            .await
            .unwrap_or_else(|e| panic!("{input:?}: {e:?}"));
        assert_eq!(redeemed.remaining, 9 - n, "{input:?}");
    }
}

#[tokio::test]
async fn confusable_characters_are_not_folded_into_the_alphabet() {
    let env = lenient_env();
    let codes = env.generate(&alice()).await;
    let code = raw(&codes[0]);
    for confusable in ['0', 'O', 'o', '1', 'I', 'i', 'L', 'l', '|', 'Ｏ', '０'] {
        for at in [0, 5, 11] {
            let mut typed: Vec<char> = code.chars().collect();
            typed[at] = confusable;
            let typed: String = typed.into_iter().collect();
            assert_eq!(
                refusal(env.redeem(&alice(), &typed).await),
                Refusal::Code(CodeRefusal::WrongRecoveryCode),
                "{typed}"
            );
        }
    }
    // A confusable added to a right code is not skipped over.
    for confusable in "0Oo1IiLl".chars() {
        for typed in [
            format!("{}{confusable}{}", &code[..4], &code[4..]),
            format!("{code}{confusable}"),
            format!("{confusable}{}", codes[0]),
        ] {
            assert_eq!(
                refusal(env.redeem(&alice(), &typed).await),
                Refusal::Code(CodeRefusal::WrongRecoveryCode),
                "{typed}"
            );
        }
    }
    // Every code of the set with its first symbol replaced by each
    // confusable: none is taken for another code.
    for code in &codes {
        for confusable in "0O1IL".chars() {
            let typed = format!("{confusable}{}", &code[1..]);
            assert_eq!(
                refusal(env.redeem(&alice(), &typed).await),
                Refusal::Code(CodeRefusal::WrongRecoveryCode),
                "{typed}"
            );
        }
    }
    assert_eq!(env.remaining(&alice()).await, Some(10));
    env.redeem(&alice(), &codes[0]).await.unwrap();
}

#[tokio::test]
async fn malformed_input_is_a_wrong_code_without_panic() {
    let env = lenient_env();
    let codes = env.generate(&alice()).await;
    let code = &codes[0];
    let long = "A".repeat(100_000);
    let malformed = [
        String::new(),
        " ".into(),
        "-".into(),
        "----".into(),
        "\u{3000}".into(),
        "\0".into(),
        format!("{code}2"),
        format!("{code}-{code}"),
        code[..code.len() - 1].to_owned(),
        raw(code)[..8].to_owned(),
        "🔑".into(),
        format!("{code}🔑"),
        format!("🔑{}", &code[1..]),
        format!("{}\u{0301}", code),
        format!("{}\u{200B}{}", &code[..4], &code[4..]),
        format!("\u{202E}{code}"),
        long,
        "é".repeat(12),
        "ＡＢＣＤ".into(),
    ];
    for input in &malformed {
        assert_eq!(
            refusal(env.redeem(&alice(), input).await),
            Refusal::Code(CodeRefusal::WrongRecoveryCode),
            "{input:?}"
        );
    }
    assert_eq!(env.remaining(&alice()).await, Some(10));
    assert_eq!(env.redeem(&alice(), code).await.unwrap().remaining, 9);
}

// -------------------------------------------------------------- regenerate

#[tokio::test]
async fn regenerating_voids_the_whole_old_set_at_once() {
    let env = lenient_env();
    let old = env.generate(&alice()).await;
    env.redeem(&alice(), &old[0]).await.unwrap();
    env.redeem(&alice(), &old[1]).await.unwrap();
    let old_stored = env.stored(&alice()).await;
    let old_salt = old_stored.salt;

    let new = env.generate(&alice()).await;
    assert!(new.iter().all(|c| !old.contains(c)));
    let new_stored = env.stored(&alice()).await;
    assert_ne!(new_stored.salt, old_salt);
    // Versions keep rising across sets (the compare-and-set key an adapter
    // may lean on), and the new set is all unused.
    assert!(new_stored.version > old_stored.version);
    assert!(new_stored.codes.iter().all(|c| c.used_at.is_none()));
    assert_eq!(env.remaining(&alice()).await, Some(10));
    // Used and unused old codes alike are no codes of the account any more.
    for code in &old {
        assert_eq!(
            refusal(env.redeem(&alice(), code).await),
            Refusal::Code(CodeRefusal::WrongRecoveryCode),
            "{code}"
        );
    }
    assert_eq!(env.remaining(&alice()).await, Some(10));
    for (n, code) in new.iter().enumerate() {
        assert_eq!(env.redeem(&alice(), code).await.unwrap().remaining, 9 - n);
    }
    let generated = env
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::RecoveryCodesGenerated { count: 10, .. }))
        .count();
    assert_eq!(generated, 2);
}

#[tokio::test]
async fn regenerating_twice_in_a_row_works() {
    let env = lenient_env();
    let first = env.generate(&alice()).await;
    let second = env.generate(&alice()).await;
    let third = env.generate(&alice()).await;
    assert_eq!(env.remaining(&alice()).await, Some(10));
    for code in first.iter().chain(&second) {
        assert_eq!(
            refusal(env.redeem(&alice(), code).await),
            Refusal::Code(CodeRefusal::WrongRecoveryCode)
        );
    }
    for code in &third {
        env.redeem(&alice(), code).await.unwrap();
    }
    // And again after the third set is used up.
    let fourth = env.generate(&alice()).await;
    assert_eq!(env.remaining(&alice()).await, Some(10));
    env.redeem(&alice(), &fourth[9]).await.unwrap();
    assert_eq!(
        refusal(env.redeem(&alice(), &third[9]).await),
        Refusal::Code(CodeRefusal::WrongRecoveryCode)
    );
}

#[tokio::test]
async fn regenerating_one_account_leaves_the_others_alone() {
    let env = env();
    let bobs = env.generate(&bob()).await;
    env.generate(&alice()).await;
    env.generate(&alice()).await;
    assert_eq!(env.redeem(&bob(), &bobs[0]).await.unwrap().remaining, 9);
}

// -------------------------------------------------------------- running low

#[tokio::test]
async fn running_low_from_three_left_with_an_event_each_time() {
    let env = env();
    let codes = env.generate(&alice()).await;
    let mut expected_events = Vec::new();
    for (n, code) in codes.iter().enumerate() {
        let redeemed = env.redeem(&alice(), code).await.unwrap();
        let remaining = 9 - n;
        assert_eq!(redeemed.remaining, remaining);
        assert_eq!(redeemed.running_low, remaining <= 3, "at {remaining}");
        expected_events.push(("used", remaining));
        if remaining <= 3 {
            expected_events.push(("low", remaining));
        }
        assert_eq!(env.usage_events(), expected_events, "at {remaining}");
    }
    // Spelled out: false at 4, true at 3.
    assert!(expected_events.contains(&("used", 4)) && !expected_events.contains(&("low", 4)));
    assert!(expected_events.contains(&("low", 3)));
    assert!(env.events.events().contains(&Event::RecoveryCodesLow {
        account: alice(),
        remaining: 3,
    }));
}

#[tokio::test]
async fn the_low_threshold_is_configurable() {
    for threshold in [0u8, 1, 5, 9, 10] {
        let mut policy = RecoveryPolicy::default();
        policy.low_threshold = threshold;
        let env = env_with(|c| c.with_policy(policy));
        let codes = env.generate(&alice()).await;
        for code in &codes {
            let r = env.redeem(&alice(), code).await.unwrap();
            assert_eq!(
                r.running_low,
                r.remaining <= usize::from(threshold),
                "threshold {threshold}, {} left",
                r.remaining
            );
        }
        let lows: Vec<usize> = env
            .usage_events()
            .into_iter()
            .filter(|(kind, _)| *kind == "low")
            .map(|(_, n)| n)
            .collect();
        let expected: Vec<usize> = (0..=usize::from(threshold).min(9)).rev().collect();
        assert_eq!(lows, expected, "threshold {threshold}");
    }
}

// ------------------------------------------------------------------ policy

#[tokio::test]
async fn count_and_length_are_configurable() {
    let policy = RecoveryPolicy::default()
        .with_count(5)
        .unwrap()
        .with_length(16)
        .unwrap();
    assert_eq!((policy.count(), policy.length()), (5, 16));
    let env = env_with(|c| c.with_policy(policy));
    let codes = env.generate(&alice()).await;
    assert_eq!(codes.len(), 5);
    for code in &codes {
        assert_eq!(code.len(), 19, "{code}");
        let groups: Vec<&str> = code.split('-').collect();
        assert_eq!(groups.len(), 4, "{code}");
        assert!(groups.iter().all(|g| g.len() == 4), "{code}");
        assert!(raw(code).bytes().all(|b| ALPHABET.contains(&b)));
    }
    assert_eq!(env.stored(&alice()).await.length, 16);
    assert_eq!(env.redeem(&alice(), &codes[4]).await.unwrap().remaining, 4);
    // 12 of the 16 characters is no code.
    assert_eq!(
        refusal(env.redeem(&alice(), &raw(&codes[3])[..12]).await),
        Refusal::Code(CodeRefusal::WrongRecoveryCode)
    );

    let short = RecoveryPolicy::default().with_length(9).unwrap();
    let env = env_with(|c| c.with_policy(short));
    let codes = env.generate(&alice()).await;
    assert_eq!(codes.len(), 10);
    assert!(
        codes
            .iter()
            .all(|c| c.len() == 11 && c.matches('-').count() == 2)
    );
    env.redeem(&alice(), &codes[0]).await.unwrap();

    let many = RecoveryPolicy::default().with_count(50).unwrap();
    let env = env_with(|c| c.with_policy(many));
    let codes = env.generate(&alice()).await;
    assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 50);
    assert_eq!(
        env.redeem(&alice(), &codes[49]).await.unwrap().remaining,
        49
    );
}

#[test]
fn policy_enforces_at_least_40_bits() {
    let p = RecoveryPolicy::default();
    assert_eq!((p.count(), p.length(), p.low_threshold), (10, 12, 3));
    assert!(p.bits() >= 59.0 && p.bits() < 60.0);
    assert_eq!(
        p.with_length(8).unwrap_err(),
        RecoveryPolicyError::Length(8)
    );
    for length in 0..=u8::MAX {
        let bits = f64::from(length) * 31f64.log2();
        match p.with_length(length) {
            Ok(q) => {
                assert!((9..=32).contains(&length), "{length}");
                assert!(q.bits() >= MIN_BITS, "{length}: {} bits", q.bits());
                assert_eq!(q.length(), length);
            }
            Err(e) => {
                assert_eq!(e, RecoveryPolicyError::Length(length));
                assert!(bits < MIN_BITS || length > 32, "{length} refused");
            }
        }
    }
    for count in 0..=u8::MAX {
        match p.with_count(count) {
            Ok(q) => {
                assert!((1..=50).contains(&count));
                assert_eq!(q.count(), count);
            }
            Err(e) => {
                assert!(!(1..=50).contains(&count));
                assert_eq!(e, RecoveryPolicyError::Count(count));
            }
        }
    }
}

#[tokio::test]
async fn a_set_keeps_its_length_when_the_policy_changes() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::at_unix(T0).unwrap();
    let events = RecordingEvents::new();
    let long = RecoveryPolicy::default().with_length(16).unwrap();
    let before = RecoveryCodes::new(ports(store.clone(), &clock, &events)).with_policy(long);
    let codes = owned(&before.generate(&alice()).await.unwrap());
    let after = RecoveryCodes::new(ports(store, &clock, &events));
    assert_eq!(
        after.redeem(&alice(), &codes[0]).await.unwrap().remaining,
        9
    );
}

#[tokio::test]
async fn codes_survive_a_hashing_key_rotation_and_are_not_wrong_without_the_key() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::at_unix(T0).unwrap();
    let events = RecordingEvents::new();
    let codes = owned(
        &RecoveryCodes::new(ports(store.clone(), &clock, &events))
            .generate(&alice())
            .await
            .unwrap(),
    );
    let new_key = || HashKey::new(KeyId(2), &[8; 32]).unwrap();
    let rotated = KeyedHasher::new(new_key())
        .with_previous(HashKey::new(KeyId(1), &[7; 32]).unwrap())
        .unwrap();
    let with = |h: KeyedHasher| {
        RecoveryCodes::new(Ports::new(store.clone(), h).with_clock(Arc::new(clock.clone())))
            .with_failure_policy(lenient())
    };
    assert_eq!(
        with(rotated)
            .redeem(&alice(), &codes[0])
            .await
            .unwrap()
            .remaining,
        9
    );
    // The old key dropped: the codes hashed under it can't be checked,
    // which is the deployment's problem, not a wrong guess.
    let without = with(KeyedHasher::new(new_key()));
    for code in [&codes[1], &codes[0]] {
        assert!(matches!(
            without.redeem(&alice(), code).await,
            Err(ninsho::Error::RetiredKey(r)) if r.key_id == KeyId(1)
        ));
    }
    assert_eq!(
        RecoveryCodes::new(ports(store.clone(), &clock, &events))
            .remaining(&alice())
            .await
            .unwrap(),
        Some(9)
    );
}

// ---------------------------------------------------------------- back-off

#[tokio::test]
async fn three_wrong_codes_back_off_for_a_second() {
    let env = env();
    let codes = env.generate(&alice()).await;
    let wrong = env.generate(&bob()).await;
    for w in &wrong[..3] {
        assert_eq!(
            refusal(env.redeem(&alice(), w).await),
            Refusal::Code(CodeRefusal::WrongRecoveryCode)
        );
    }
    let until = t0() + Duration::seconds(1);
    assert!(env.events.events().contains(&Event::Locked {
        account: alice(),
        consecutive: 3,
        until: Some(until),
    }));
    // Even the right code waits, and is not consumed.
    assert_eq!(
        refusal(env.redeem(&alice(), &codes[0]).await),
        Refusal::Account(AccountRefusal::Locked { until: Some(until) })
    );
    env.clock.advance(Duration::milliseconds(999));
    assert_eq!(
        refusal(env.redeem(&alice(), &codes[0]).await),
        Refusal::Account(AccountRefusal::Locked { until: Some(until) })
    );
    // Waiting attempts are not failures: the lock has not grown.
    assert_eq!(env.remaining(&alice()).await, Some(10));
    env.clock.advance(Duration::milliseconds(1));
    assert_eq!(env.redeem(&alice(), &codes[0]).await.unwrap().remaining, 9);
    // Other accounts were never locked.
    env.clock.set(t0());
    let bobs = wrong;
    assert_eq!(env.redeem(&bob(), &bobs[0]).await.unwrap().remaining, 9);
}

#[tokio::test]
async fn a_fourth_wrong_code_doubles_the_wait() {
    let env = env();
    let codes = env.generate(&alice()).await;
    let wrong = env.generate(&bob()).await;
    for w in &wrong[..3] {
        env.redeem(&alice(), w).await.unwrap_err();
    }
    env.clock.advance(Duration::seconds(1));
    assert_eq!(
        refusal(env.redeem(&alice(), &wrong[3]).await),
        Refusal::Code(CodeRefusal::WrongRecoveryCode)
    );
    let until = t0() + Duration::seconds(3);
    assert_eq!(
        refusal(env.redeem(&alice(), &codes[0]).await),
        Refusal::Account(AccountRefusal::Locked { until: Some(until) })
    );
    env.clock.set(until);
    env.redeem(&alice(), &codes[0]).await.unwrap();
}

#[tokio::test]
async fn a_success_resets_the_failure_run() {
    let env = env();
    let codes = env.generate(&alice()).await;
    let wrong = env.generate(&bob()).await;
    for w in &wrong[..3] {
        env.redeem(&alice(), w).await.unwrap_err();
    }
    env.clock.advance(Duration::seconds(1));
    env.redeem(&alice(), &codes[0]).await.unwrap();
    assert_eq!(env.store.failures(&alice()).await.unwrap(), None);
    // Two more wrong codes are within the free failures again (without the
    // reset they would be the 4th and 5th and lock for 4 s).
    for w in &wrong[3..5] {
        assert_eq!(
            refusal(env.redeem(&alice(), w).await),
            Refusal::Code(CodeRefusal::WrongRecoveryCode)
        );
    }
    assert_eq!(env.redeem(&alice(), &codes[1]).await.unwrap().remaining, 8);
}

#[tokio::test]
async fn the_failure_policy_is_configurable() {
    let env = env_with(|c| {
        c.with_failure_policy(FailurePolicy {
            free_failures: 1,
            base_delay: Duration::seconds(10),
            ..FailurePolicy::default()
        })
    });
    let codes = env.generate(&alice()).await;
    env.redeem(&alice(), "2222-2222-2222").await.unwrap_err();
    assert_eq!(
        refusal(env.redeem(&alice(), &codes[0]).await),
        Refusal::Account(AccountRefusal::Locked {
            until: Some(t0() + Duration::seconds(10))
        })
    );
}

#[tokio::test]
async fn the_hard_stop_holds_until_reset() {
    let env = env_with(|c| {
        c.with_failure_policy(FailurePolicy {
            free_failures: 100,
            hard_stop: 4,
            ..FailurePolicy::default()
        })
    });
    let codes = env.generate(&alice()).await;
    for _ in 0..4 {
        env.redeem(&alice(), "2222-2222-2222").await.unwrap_err();
    }
    env.clock.advance(Duration::days(365));
    assert_eq!(
        refusal(env.redeem(&alice(), &codes[0]).await),
        Refusal::Account(AccountRefusal::Locked { until: None })
    );
    env.store.clear_failures(&alice()).await.unwrap();
    env.redeem(&alice(), &codes[0]).await.unwrap();
}

struct Otp {
    challenges: Challenges,
    gateway: RecordingGateway,
}

impl Otp {
    fn on(env: &Env) -> Self {
        let gateway = RecordingGateway::new();
        let challenges = Challenges::builder()
            .service_name("Example")
            .store(env.store.clone())
            .gateway(Arc::new(gateway.clone()))
            .hasher(hasher())
            .clock(Arc::new(env.clock.clone()))
            .rng(Arc::new(LockedRng::seeded(5)))
            .locale(Locale::En)
            .build()
            .unwrap();
        Self {
            challenges,
            gateway,
        }
    }

    async fn issue(&self, account: &AccountId) -> (ChallengeId, String) {
        let ticket = self
            .challenges
            .issue(IssueRequest::new(phone(), Purpose::SignIn).account(account.clone()))
            .await
            .unwrap();
        let code = self
            .gateway
            .last_secret_to(PHONE)
            .unwrap()
            .expose_secret()
            .to_owned();
        (ticket.challenge_id, code)
    }

    async fn verify(&self, id: &ChallengeId, code: &str) -> Result<(), Error> {
        self.challenges
            .verify(id, code, &Purpose::SignIn, &phone())
            .await
            .map(drop)
    }
}

fn other_otp(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!(
        "{:0width$}",
        (n + 1) % 10u32.pow(code.len() as u32),
        width = code.len()
    )
}

#[tokio::test]
async fn the_back_off_is_shared_with_one_time_codes() {
    // Two wrong one-time codes and one wrong recovery code make three.
    let env = env();
    let otp = Otp::on(&env);
    let codes = env.generate(&alice()).await;
    let (id, code) = otp.issue(&alice()).await;
    for _ in 0..2 {
        otp.verify(&id, &other_otp(&code)).await.unwrap_err();
    }
    assert_eq!(
        refusal(env.redeem(&alice(), "2222-2222-2222").await),
        Refusal::Code(CodeRefusal::WrongRecoveryCode)
    );
    let locked = Refusal::Account(AccountRefusal::Locked {
        until: Some(t0() + Duration::seconds(1)),
    });
    assert_eq!(refusal(env.redeem(&alice(), &codes[0]).await), locked);
    assert_eq!(refusal(otp.verify(&id, &code).await), locked);

    // The other way round: three wrong recovery codes lock one-time codes.
    let env = self::env();
    let otp = Otp::on(&env);
    env.generate(&alice()).await;
    let (id, code) = otp.issue(&alice()).await;
    for _ in 0..3 {
        env.redeem(&alice(), "2222-2222-2222").await.unwrap_err();
    }
    assert_eq!(refusal(otp.verify(&id, &code).await), locked);
    env.clock.advance(Duration::seconds(1));
    otp.verify(&id, &code).await.unwrap();
    // And the one-time code's success ended the shared run.
    assert_eq!(env.store.failures(&alice()).await.unwrap(), None);
}

// --------------------------------------------------------- no set / delete

#[tokio::test]
async fn no_set_is_unknown_and_delete_removes_the_set() {
    let env = env();
    assert_eq!(
        refusal(env.redeem(&alice(), "2222-2222-2222").await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    assert_eq!(env.remaining(&alice()).await, None);
    let codes = env.generate(&alice()).await;
    env.generate(&bob()).await;
    env.codes.delete(&alice()).await.unwrap();
    assert_eq!(env.remaining(&alice()).await, None);
    assert!(stored_set(&*env.store, &alice()).await.is_none());
    assert_eq!(
        refusal(env.redeem(&alice(), &codes[0]).await),
        Refusal::Code(CodeRefusal::Unknown)
    );
    // Deleting again is fine; bob keeps his codes.
    env.codes.delete(&alice()).await.unwrap();
    assert_eq!(env.remaining(&bob()).await, Some(10));
    // A new set after deletion works, the deleted one doesn't come back.
    let fresh = env.generate(&alice()).await;
    assert_eq!(
        refusal(env.redeem(&alice(), &codes[0]).await),
        Refusal::Code(CodeRefusal::WrongRecoveryCode)
    );
    env.redeem(&alice(), &fresh[0]).await.unwrap();
}

// ----------------------------------------------------------- store failures

/// A real set (as the engine makes it) and its plain codes.
fn real_set() -> (RecoverySet, Vec<String>) {
    let (plain, set) = recovery::generate(
        &RecoveryPolicy::default(),
        &hasher(),
        &LockedRng::seeded(9),
        t0(),
    )
    .unwrap();
    (set, owned(&plain))
}

/// The recovery set kept in the account's record, if any.
async fn stored_set(store: &dyn Store, account: &AccountId) -> Option<RecoverySet> {
    store
        .account_record(account)
        .await
        .unwrap()
        .and_then(|b| b.factors.recovery)
}

/// An account record holding `set`.
fn book_with(set: RecoverySet) -> AccountRecord {
    let factors = Factors {
        recovery: Some(set),
        ..Factors::default()
    };
    AccountRecord {
        account: alice(),
        version: 1,
        contacts: Vec::new(),
        grace: GraceState::new(),
        created_at: t0(),
        factors,
        epoch: 0,
        last_change: None,
        incarnation: 1,
    }
}

fn on_mock(db: MockDb, events: &RecordingEvents) -> RecoveryCodes {
    RecoveryCodes::new(ports(
        Arc::new(db),
        &ManualClock::at_unix(T0).unwrap(),
        events,
    ))
}

#[tokio::test]
async fn a_failed_write_during_redeem_is_a_store_error_never_success() {
    let (set, codes) = real_set();
    let mut db = MockDb::new();
    db.expect_failures().returning(|_| Ok(None));
    db.expect_account_record()
        .times(1)
        .returning(move |_| Ok(Some(book_with(set.clone()))));
    db.expect_commit_account()
        .times(1)
        .returning(|_, _, _| Err(db_down()));
    // The guess is counted before it is checked; nothing clears it.
    db.expect_replace_failures()
        .times(1)
        .returning(|_, _, _| Ok(()));
    db.expect_clear_failures().times(0);
    let events = RecordingEvents::new();
    let codes_flow = on_mock(db, &events);
    assert_eq!(
        store_error(codes_flow.redeem(&alice(), &codes[0]).await),
        StoreErrorKind::Unavailable
    );
    assert!(!events.events().iter().any(|e| matches!(
        e,
        Event::RecoveryCodeUsed { .. } | Event::RecoveryCodesLow { .. }
    )));
}

#[tokio::test]
async fn a_failed_read_of_the_set_is_a_store_error() {
    let mut db = MockDb::new();
    db.expect_failures().returning(|_| Ok(None));
    db.expect_account_record().returning(|_| Err(db_down()));
    db.expect_commit_account().times(0);
    db.expect_replace_failures().times(0);
    db.expect_clear_failures().times(0);
    let codes = on_mock(db, &RecordingEvents::new());
    assert_eq!(
        store_error(codes.redeem(&alice(), "2222-2222-2222").await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        store_error(codes.remaining(&alice()).await),
        StoreErrorKind::Unavailable
    );
    // Generating over an unreadable set writes nothing.
    assert_eq!(
        store_error(codes.generate(&alice()).await),
        StoreErrorKind::Unavailable
    );
}

#[tokio::test]
async fn a_failed_read_of_the_failure_run_is_a_store_error() {
    let (set, codes) = real_set();
    let mut db = MockDb::new();
    db.expect_failures().returning(|_| Err(db_down()));
    db.expect_account_record()
        .returning(move |_| Ok(Some(book_with(set.clone()))));
    db.expect_replace_failures().times(0);
    db.expect_commit_account().times(0);
    let flow = on_mock(db, &RecordingEvents::new());
    assert_eq!(
        store_error(flow.redeem(&alice(), &codes[0]).await),
        StoreErrorKind::Unavailable
    );
}

#[tokio::test]
async fn a_wrong_code_that_cannot_be_counted_is_a_store_error() {
    let (set, _) = real_set();
    let mut db = MockDb::new();
    db.expect_failures().returning(|_| Ok(None));
    db.expect_account_record()
        .returning(move |_| Ok(Some(book_with(set.clone()))));
    db.expect_replace_failures()
        .times(1)
        .returning(|_, _, _| Err(db_down()));
    db.expect_commit_account().times(0);
    let flow = on_mock(db, &RecordingEvents::new());
    assert_eq!(
        store_error(flow.redeem(&alice(), "2222-2222-2222").await),
        StoreErrorKind::Unavailable
    );
}

/// A real `MemoryStore` that fails on cue.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    fail_commit: AtomicU32,
}

delegate_store!([] Flaky, inner, super::support::directly =>
    ChallengeStore, DeviceStore, VerificationStore, PurgeStore);

#[async_trait]
impl StepStore for Flaky {
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        self.inner.load(load).await
    }
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        // A commit that writes the record fails as `commit_account` does.
        if commit.record.is_some() && take(&self.fail_commit) {
            return Err(db_down());
        }
        self.inner.commit(commit, now).await
    }
}

#[async_trait]
impl LimitStore for Flaky {
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        self.inner.hit(key, window, now).await
    }
    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        self.inner.replace_failures(account, expected, next).await
    }
    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        self.inner.failures(account).await
    }
    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        self.inner.clear_failures(account).await
    }
}

#[async_trait]
impl AccountStore for Flaky {
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.inner.account_record(account).await
    }
    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        self.inner.claim_owner(key).await
    }
    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        if take(&self.fail_commit) {
            return Err(db_down());
        }
        self.inner
            .commit_account(book, expected_version, changes)
            .await
    }
    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        self.inner.delete_account(account).await
    }
}

fn on_flaky() -> (RecoveryCodes, Arc<Flaky>, RecordingEvents) {
    let flaky = Arc::new(Flaky::default());
    let events = RecordingEvents::new();
    let codes = RecoveryCodes::new(ports(
        flaky.clone(),
        &ManualClock::at_unix(T0).unwrap(),
        &events,
    ));
    (codes, flaky, events)
}

#[tokio::test]
async fn a_failed_write_consumes_nothing_and_the_retry_succeeds() {
    let (flow, flaky, events) = on_flaky();
    let codes = owned(&flow.generate(&alice()).await.unwrap());
    flaky.fail_commit.store(1, Ordering::SeqCst);
    assert_eq!(
        store_error(flow.redeem(&alice(), &codes[0]).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(flow.remaining(&alice()).await.unwrap(), Some(10));
    // The guess and its outcome are one write: when it fails, nothing of
    // it landed, the count included.
    assert_eq!(flaky.inner.failures(&alice()).await.unwrap(), None);
    assert!(
        !events
            .events()
            .iter()
            .any(|e| matches!(e, Event::RecoveryCodeUsed { .. }))
    );
    // The same code again: it was never consumed.
    assert_eq!(flow.redeem(&alice(), &codes[0]).await.unwrap().remaining, 9);
    assert_eq!(
        refusal(flow.redeem(&alice(), &codes[0]).await),
        Refusal::Code(CodeRefusal::AlreadyUsed)
    );
}

#[tokio::test]
async fn a_failed_regeneration_keeps_the_old_set() {
    let (flow, flaky, _) = on_flaky();
    flaky.fail_commit.store(1, Ordering::SeqCst);
    assert_eq!(
        store_error(flow.generate(&alice()).await),
        StoreErrorKind::Unavailable
    );
    assert_eq!(flow.remaining(&alice()).await.unwrap(), None);
    let old = owned(&flow.generate(&alice()).await.unwrap());
    flaky.fail_commit.store(1, Ordering::SeqCst);
    assert_eq!(
        store_error(flow.generate(&alice()).await),
        StoreErrorKind::Unavailable
    );
    for (n, code) in old.iter().enumerate() {
        assert_eq!(flow.redeem(&alice(), code).await.unwrap().remaining, 9 - n);
    }
}

// ------------------------------------------------------------- concurrency

/// `RecoveryCodes` on a `Yielding` store (no back-off, so racing wrong
/// codes never turn into lockouts), and the `MemoryStore` under it.
fn yielding_env(events: &RecordingEvents) -> (RecoveryCodes, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let codes = RecoveryCodes::new(ports(
        Arc::new(Yielding(store.clone())),
        &ManualClock::at_unix(T0).unwrap(),
        events,
    ))
    .with_failure_policy(lenient());
    (codes, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_redemptions_of_one_code_succeed_once() {
    for round in 0..10 {
        let events = RecordingEvents::new();
        let (flow, _) = yielding_env(&events);
        let codes = owned(&flow.generate(&alice()).await.unwrap());
        let code = codes[round % 10].clone();
        let results = race(|_| {
            let flow = flow.clone();
            let code = code.clone();
            async move { flow.redeem(&alice(), &code).await }
        })
        .await;
        let ok: Vec<&Redeemed> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(ok.len(), 1, "round {round}: {results:?}");
        assert_eq!(ok[0].remaining, 9);
        for r in results.iter().filter(|r| r.is_err()) {
            assert!(
                matches!(
                    r,
                    Err(Error::Refused(Refusal::Code(CodeRefusal::AlreadyUsed)))
                ),
                "round {round}: {r:?}"
            );
        }
        assert_eq!(flow.remaining(&alice()).await.unwrap(), Some(9));
        let used = events
            .events()
            .iter()
            .filter(|e| matches!(e, Event::RecoveryCodeUsed { .. }))
            .count();
        assert_eq!(used, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_redemptions_of_ten_codes_each_succeed_once() {
    for round in 0..10 {
        let events = RecordingEvents::new();
        let (flow, store) = yielding_env(&events);
        let codes = owned(&flow.generate(&alice()).await.unwrap());
        let results = race(|i| {
            let flow = flow.clone();
            let code = codes[i % 10].clone();
            async move { (i % 10, flow.redeem(&alice(), &code).await) }
        })
        .await;
        let mut won = Vec::new();
        let mut left = BTreeSet::new();
        for (code, result) in &results {
            match result {
                Ok(r) => {
                    won.push(*code);
                    left.insert(r.remaining);
                }
                Err(Error::Refused(Refusal::Code(CodeRefusal::AlreadyUsed))) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        won.sort_unstable();
        assert_eq!(won, (0..10).collect::<Vec<_>>(), "round {round}");
        // Every success saw its own decrement: 9, 8, …, 0.
        assert_eq!(left, (0..10).collect::<BTreeSet<_>>(), "round {round}");
        let set = stored_set(&*store, &alice()).await.unwrap();
        assert_eq!(set.remaining(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regenerating_while_codes_are_redeemed_voids_every_old_code() {
    for round in 0..10 {
        let events = RecordingEvents::new();
        let (flow, _) = yielding_env(&events);
        let old = owned(&flow.generate(&alice()).await.unwrap());
        let regenerator = round % TASKS;
        let results = race(|i| {
            let flow = flow.clone();
            let code = old[i % 10].clone();
            async move {
                if i == regenerator {
                    Err(owned(&flow.generate(&alice()).await.unwrap()))
                } else {
                    Ok(flow.redeem(&alice(), &code).await)
                }
            }
        })
        .await;
        let mut new = None;
        for result in results {
            match result {
                Err(codes) => new = Some(codes),
                Ok(Ok(_))
                | Ok(Err(Error::Refused(
                    Refusal::Code(CodeRefusal::AlreadyUsed)
                    | Refusal::Code(CodeRefusal::WrongRecoveryCode),
                ))) => {}
                Ok(other) => panic!("round {round}: {other:?}"),
            }
        }
        let new = new.unwrap();
        // No redemption prepared against the old set landed on the new one.
        assert_eq!(flow.remaining(&alice()).await.unwrap(), Some(10));
        for code in &old {
            assert_eq!(
                refusal(flow.redeem(&alice(), code).await),
                Refusal::Code(CodeRefusal::WrongRecoveryCode),
                "round {round}"
            );
        }
        assert_eq!(flow.remaining(&alice()).await.unwrap(), Some(10));
        for (n, code) in new.iter().enumerate() {
            assert_eq!(
                flow.redeem(&alice(), code).await.unwrap().remaining,
                9 - n,
                "round {round}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_first_generations_leave_exactly_one_set() {
    for round in 0..5 {
        let events = RecordingEvents::new();
        let (flow, _) = yielding_env(&events);
        let sets = race(|_| {
            let flow = flow.clone();
            async move { owned(&flow.generate(&alice()).await.unwrap()) }
        })
        .await;
        assert_eq!(flow.remaining(&alice()).await.unwrap(), Some(10));
        let mut working = 0;
        for set in &sets {
            if flow.redeem(&alice(), &set[0]).await.is_ok() {
                working += 1;
            }
        }
        assert_eq!(working, 1, "round {round}");
    }
}

/// The failure back-off and the hard stop must hold under concurrency too:
/// with `hard_stop: 3`, 64 wrong codes sent at once may have at most 3 of
/// them checked against the set; the rest must be refused as locked.
///
/// `redeem` reads the failure run (`check_lockout`), then checks the code,
/// then records the failure (`count_failure`): every request that reads the
/// run before the others record their failures gets its guess checked. With
/// a store that answers over the network, all 64 are checked (and so would
/// 1 000 be, past NIST SP 800-63B's 100-attempt ceiling).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_wrong_codes_never_get_past_the_hard_stop() {
    let store = Arc::new(MemoryStore::new());
    let flow = RecoveryCodes::new(ports(
        Arc::new(Yielding(store.clone())),
        &ManualClock::at_unix(T0).unwrap(),
        &RecordingEvents::new(),
    ))
    .with_failure_policy(FailurePolicy {
        free_failures: 3,
        hard_stop: 3,
        ..FailurePolicy::default()
    });
    flow.generate(&alice()).await.unwrap();
    let results = race(|i| {
        let flow = flow.clone();
        async move {
            // Well-formed guesses from the alphabet, all different.
            let guess: String = format!("{i:012}")
                .bytes()
                .map(|d| char::from(ALPHABET[usize::from(d - b'0')]))
                .collect();
            flow.redeem(&alice(), &guess).await
        }
    })
    .await;
    let mut checked = 0;
    for result in &results {
        match result {
            Err(Error::Refused(Refusal::Code(CodeRefusal::WrongRecoveryCode))) => checked += 1,
            Err(Error::Refused(Refusal::Account(AccountRefusal::Locked { until: None }))) => {}
            other => panic!("{other:?}"),
        }
    }
    let run = store.failures(&alice()).await.unwrap().unwrap();
    assert!(
        checked <= 3,
        "{checked} of {TASKS} racing guesses were checked (failure run {})",
        run.consecutive
    );
}

/// Every evaluated guess is counted before it is checked, so a used code
/// typed again counts like a wrong one: three of them start the back-off.
#[tokio::test]
async fn a_used_code_counts_as_a_failed_guess() {
    let env = env();
    let codes = env.generate(&alice()).await;
    env.redeem(&alice(), &codes[0]).await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            refusal(env.redeem(&alice(), &codes[0]).await),
            Refusal::Code(CodeRefusal::AlreadyUsed)
        );
    }
    assert!(matches!(
        refusal(env.redeem(&alice(), &codes[1]).await),
        Refusal::Account(AccountRefusal::Locked { until: Some(_) })
    ));
    env.clock.advance(Duration::seconds(1));
    env.redeem(&alice(), &codes[1]).await.unwrap();
}
