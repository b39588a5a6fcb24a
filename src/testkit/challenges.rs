//! Challenges: records read back, compare-and-set.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// Rule: a challenge read back after `insert_challenge` equals what was
/// inserted, field for field.
pub async fn check_insert_and_read_back(store: Arc<dyn Store>) {
    let record = sample_challenge(1, base_time());
    ok(
        store.insert_challenge(&record).await,
        "insert_challenge of a new id",
    );
    let back = read(&*store, &record.id, "challenge after insert_challenge").await;
    assert_same_record(
        "a challenge read back after insert_challenge must equal what was inserted",
        &back,
        &record,
    );
}

/// Rule: reading an id that was never inserted returns `Ok(None)`.
pub async fn check_read_absent(store: Arc<dyn Store>) {
    let present = sample_challenge(2, base_time());
    ok(store.insert_challenge(&present).await, "insert_challenge");
    let absent = sample_challenge(3, base_time()).id;
    let got = ok(store.challenge(&absent).await, "challenge of an absent id");
    assert!(
        got.is_none(),
        "ChallengeStore::challenge must return None for an id that was never inserted \
         (got {got:?})"
    );
}

/// Rule: inserting an id that exists fails with
/// [`StoreErrorKind::Conflict`] and leaves the stored record unchanged
/// (an insert is never an upsert).
pub async fn check_insert_existing_conflicts(store: Arc<dyn Store>) {
    let original = sample_challenge(4, base_time());
    ok(store.insert_challenge(&original).await, "insert_challenge");
    let mut other = sample_challenge(4, base_time() + Duration::minutes(1));
    other.version = 7;
    other.failed_attempts = 3;
    other.state = ChallengeState::Consumed;
    other.purpose = Purpose::Recovery;
    expect_conflict(
        store.insert_challenge(&other).await,
        "insert_challenge of an existing id must fail with StoreErrorKind::Conflict",
    );
    let back = read(&*store, &original.id, "challenge after a duplicate insert").await;
    assert_same_record(
        "a duplicate insert_challenge must leave the original record unchanged",
        &back,
        &original,
    );
}

/// Rule: every field of a challenge survives the round trip: each purpose
/// (a host's own `Purpose::Other` included), with and without an account,
/// email and phone destinations, several sends on different channels with
/// different key ids, a one-time link, each [`ChallengeState`], each
/// locale, and counters near their type's maximum.
pub async fn check_round_trip_every_field(store: Arc<dyn Store>) {
    let now = base_time();
    let states = [
        ChallengeState::Pending,
        ChallengeState::Approved,
        ChallengeState::Consumed,
        ChallengeState::Denied,
        ChallengeState::Exhausted,
    ];
    let purposes = [
        Purpose::SignUp,
        Purpose::SignIn,
        Purpose::ContactChange,
        Purpose::StepUp,
        Purpose::Recovery,
        Purpose::Other("x".to_owned()),
    ];
    let mut records = Vec::new();

    // Every purpose and state, alternating account and locale.
    for (i, purpose) in purposes.iter().enumerate() {
        let seed = 0x10 + u8::try_from(i).expect("few purposes");
        let mut r = sample_challenge(seed, now);
        r.purpose = purpose.clone();
        r.state = states[i % states.len()];
        r.account = (i % 2 == 0).then(|| AccountId::new(format!("acct-{i}")));
        r.locale = if i % 2 == 0 { Locale::En } else { Locale::Ja };
        records.push(r);
    }
    for (i, state) in states.iter().enumerate() {
        let seed = 0x20 + u8::try_from(i).expect("few states");
        let mut r = sample_challenge(seed, now);
        r.state = *state;
        // A consumed one remembers the sign-in attempt that consumed it.
        r.consumed_by = (*state == ChallengeState::Consumed).then_some(KeyedHash {
            key_id: KeyId(3),
            tag: Tag([seed; 32]),
        });
        records.push(r);
    }

    // The richest record: an email, a host purpose, no account, several
    // sends with different channels and keys, large counters.
    let mut rich = sample_challenge(0x30, now);
    rich.version = 1 << 40;
    rich.purpose = Purpose::Other("x".to_owned());
    rich.account = None;
    rich.destination = Destination::email("Taro.Yamada+2fa@Example.COM").expect("a valid email");
    rich.locale = Locale::En;
    rich.channels = vec![Channel::Email, Channel::Sms, Channel::Voice];
    rich.channel_index = 2;
    rich.state = ChallengeState::Exhausted;
    rich.digits = 10;
    rich.failed_attempts = u32::MAX;
    rich.max_attempts = u32::MAX - 1;
    rich.delivery_attempts = u32::MAX - 2;
    rich.sends = vec![
        SendRecord {
            channel: Channel::Email,
            sent_at: now,
            expires_at: now + Duration::minutes(10),
            code: KeyedHash {
                key_id: KeyId(1),
                tag: Tag([0xA1; 32]),
            },
            failed_transiently: false,
        },
        SendRecord {
            channel: Channel::Sms,
            sent_at: now + Duration::seconds(61),
            expires_at: now + Duration::seconds(661),
            code: KeyedHash {
                key_id: KeyId(2),
                tag: Tag(std::array::from_fn(|i| u8::try_from(i).expect("< 32"))),
            },
            failed_transiently: true,
        },
        SendRecord {
            channel: Channel::Voice,
            sent_at: now + Duration::seconds(122),
            expires_at: now + Duration::seconds(722),
            code: KeyedHash {
                key_id: KeyId(u32::MAX),
                tag: Tag([0xFF; 32]),
            },
            failed_transiently: false,
        },
    ];
    rich.created_at = now - Duration::seconds(5);
    rich.expires_at = now + Duration::seconds(722);
    records.push(rich);

    // A one-time link with a device description full of awkward characters.
    let mut link = sample_challenge(0x31, now);
    link.purpose = Purpose::SignIn;
    link.account = Some(AccountId::new("アカウント:42 'quoted' \"double\" \\ %_*"));
    link.state = ChallengeState::Approved;
    link.sends.clear();
    link.delivery_attempts = 2;
    link.link = Some(LinkRecord {
        token: KeyedHash {
            key_id: KeyId(9),
            tag: Tag([0x5C; 32]),
        },
        device: "iPhone 15 · Safari · 東京 \"quoted\" 'single' \\ \n new line".to_owned(),
    });
    records.push(link);

    for r in &records {
        ok(store.insert_challenge(r).await, "insert_challenge");
    }
    for r in &records {
        let back = read(&*store, &r.id, "challenge after insert_challenge").await;
        assert_same_record(
            "every field of a challenge must survive insert_challenge and challenge",
            &back,
            r,
        );
    }

    // The same through replace_challenge, from a large version.
    let mut next = records[records.len() - 2].clone();
    let expected = next.version;
    next.version = expected + 1;
    next.sends.truncate(1);
    next.failed_attempts = u32::MAX - 7;
    ok(
        store.replace_challenge(&next, expected).await,
        "replace_challenge with the stored (large) version",
    );
    let back = read(&*store, &next.id, "challenge after replace_challenge").await;
    assert_same_record(
        "every field of a challenge must survive replace_challenge and challenge",
        &back,
        &next,
    );
}

// ---------------------------------------------------------------------------
// Compare-and-set
// ---------------------------------------------------------------------------

/// Rule: `replace_challenge(record, v)` succeeds when the stored version is
/// `v`, and what is read back afterwards is the new record (version
/// `v + 1`); a second replace from the new version succeeds too.
pub async fn check_replace_with_expected_version(store: Arc<dyn Store>) {
    let record = sample_challenge(5, base_time());
    ok(store.insert_challenge(&record).await, "insert_challenge");

    let mut next = record.clone();
    next.version = 1;
    next.failed_attempts = 1;
    ok(
        store.replace_challenge(&next, 0).await,
        "replace_challenge with the stored version must succeed",
    );
    let back = read(&*store, &record.id, "challenge after replace_challenge").await;
    assert_same_record(
        "after a successful replace_challenge the new record (and version) is read back",
        &back,
        &next,
    );

    let mut last = next.clone();
    last.version = 2;
    last.state = ChallengeState::Consumed;
    ok(
        store.replace_challenge(&last, 1).await,
        "a second replace_challenge from the new version must succeed",
    );
    let back = read(&*store, &record.id, "challenge after two replaces").await;
    assert_same_record(
        "after a second replace_challenge the latest record is read back",
        &back,
        &last,
    );
}

/// Rule: `replace_challenge` with a version other than the stored one (an
/// older or a newer one) fails with [`StoreErrorKind::Conflict`] and
/// changes nothing.
pub async fn check_replace_stale_version_conflicts(store: Arc<dyn Store>) {
    let record = sample_challenge(6, base_time());
    ok(store.insert_challenge(&record).await, "insert_challenge");
    let mut current = record.clone();
    current.version = 1;
    current.failed_attempts = 1;
    ok(
        store.replace_challenge(&current, 0).await,
        "replace_challenge",
    );

    // A writer that read version 0 before the replace above.
    let mut stale = record.clone();
    stale.version = 1;
    stale.state = ChallengeState::Consumed;
    expect_conflict(
        store.replace_challenge(&stale, 0).await,
        "replace_challenge with a stale expected version must fail with StoreErrorKind::Conflict",
    );
    // A writer that claims a version the store never had.
    let mut ahead = record.clone();
    ahead.version = 6;
    ahead.state = ChallengeState::Consumed;
    expect_conflict(
        store.replace_challenge(&ahead, 5).await,
        "replace_challenge with an expected version newer than the stored one must fail \
         with StoreErrorKind::Conflict",
    );
    let back = read(&*store, &record.id, "challenge after refused replaces").await;
    assert_same_record(
        "a replace_challenge that lost its compare-and-set must change nothing",
        &back,
        &current,
    );
}

/// Rule: `replace_challenge` of a challenge that does not exist fails with
/// [`StoreErrorKind::Conflict`] and does not create it (a replace is never
/// an upsert).
pub async fn check_replace_absent_conflicts(store: Arc<dyn Store>) {
    let mut record = sample_challenge(7, base_time());
    record.version = 1;
    expect_conflict(
        store.replace_challenge(&record, 0).await,
        "replace_challenge of an absent challenge must fail with StoreErrorKind::Conflict",
    );
    let got = ok(
        store.challenge(&record.id).await,
        "challenge after replacing an absent one",
    );
    assert!(
        got.is_none(),
        "replace_challenge of an absent challenge must not create it (got {got:?})"
    );
}
