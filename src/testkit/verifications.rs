//! Combined verifications.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------
// Combined verifications
// ---------------------------------------------------------------------------

/// Rule: a verification read back after `insert_verification` equals what
/// was inserted, field for field (members, verification times, purpose,
/// account, times); an id never inserted reads `None`.
pub async fn check_verification_insert_and_read_back(store: Arc<dyn Store>) {
    let now = base_time();
    let record = sample_verification(1, now);
    ok(
        store.insert_verification(&record).await,
        "insert_verification of a new id",
    );
    let back = read_verification(&*store, &record.id, "verification after insert").await;
    assert_eq!(
        back, record,
        "a verification read back after insert_verification must equal what was inserted"
    );

    // Every optional field set, another purpose and a large version.
    let mut full = sample_verification(2, now);
    full.version = u64::MAX - 1;
    full.purpose = Purpose::Other("testkit:custom purpose".to_owned());
    full.account = Some(AccountId::new("testkit:verification:アカウント"));
    full.locale = Locale::En;
    full.members[0].verified_at = Some(now + Duration::seconds(10));
    full.members[1].verified_at = Some(now + Duration::seconds(20));
    full.completed_at = Some(now + Duration::seconds(20));
    full.taken_at = Some(now + Duration::seconds(21));
    ok(
        store.insert_verification(&full).await,
        "insert_verification",
    );
    let back = read_verification(&*store, &full.id, "verification after insert").await;
    assert_eq!(
        back, full,
        "every field of a verification must survive the round trip"
    );

    let absent = sample_verification(3, now).id;
    let got = ok(
        store.verification(&absent).await,
        "verification of an absent id",
    );
    assert!(
        got.is_none(),
        "VerificationStore::verification must return None for an id never inserted (got \
         {got:?})"
    );
}

/// Rule: inserting a verification whose id exists fails with
/// [`StoreErrorKind::Conflict`] and leaves the stored record unchanged.
pub async fn check_verification_insert_existing_conflicts(store: Arc<dyn Store>) {
    let now = base_time();
    let original = sample_verification(4, now);
    ok(
        store.insert_verification(&original).await,
        "insert_verification",
    );
    let mut other = sample_verification(4, now + Duration::minutes(1));
    other.version = 7;
    other.purpose = Purpose::ContactChange;
    expect_conflict(
        store.insert_verification(&other).await,
        "insert_verification of an existing id must fail with StoreErrorKind::Conflict",
    );
    let back = read_verification(&*store, &original.id, "verification after a duplicate").await;
    assert_eq!(
        back, original,
        "a duplicate insert_verification must leave the original record unchanged"
    );
}

/// Rule: `replace_verification(record, v)` succeeds when the stored version
/// is `v`, and the new record is read back (twice in a row); a stale or
/// newer version, or an absent id, is a [`StoreErrorKind::Conflict`] that
/// changes (or creates) nothing.
pub async fn check_verification_replace(store: Arc<dyn Store>) {
    let now = base_time();
    let record = sample_verification(5, now);
    ok(
        store.insert_verification(&record).await,
        "insert_verification",
    );
    let mut v1 = record.clone();
    v1.version = 1;
    v1.members[1].verified_at = Some(now + Duration::seconds(5));
    ok(
        store.replace_verification(&v1, 0).await,
        "replace_verification from the stored version",
    );
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.members[0].verified_at = Some(now + Duration::seconds(9));
    v2.completed_at = Some(now + Duration::seconds(9));
    v2.expires_at = now + Duration::hours(1);
    ok(
        store.replace_verification(&v2, 1).await,
        "replace_verification from the new version",
    );
    let back = read_verification(&*store, &record.id, "verification after replaces").await;
    assert_eq!(
        back, v2,
        "after replace_verification from the stored version the new record must be read back"
    );

    let mut stale = v1.clone();
    stale.version = 2;
    stale.taken_at = Some(now);
    for expected in [0, 1, 3] {
        expect_conflict(
            store.replace_verification(&stale, expected).await,
            &format!(
                "replace_verification with version {expected} while 2 is stored must fail \
                 with StoreErrorKind::Conflict"
            ),
        );
    }
    let back = read_verification(&*store, &record.id, "verification after conflicts").await;
    assert_eq!(
        back, v2,
        "a conflicting replace_verification must change nothing"
    );

    let mut ghost = sample_verification(6, now);
    ghost.version = 1;
    expect_conflict(
        store.replace_verification(&ghost, 0).await,
        "replace_verification of an absent id must fail with StoreErrorKind::Conflict",
    );
    let got = ok(store.verification(&ghost.id).await, "verification");
    assert!(
        got.is_none(),
        "replace_verification of an absent id must not create it (got {got:?})"
    );
}
