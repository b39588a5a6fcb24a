//! Account records (the account's record) and one-owner claims.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------
// Account records and claims
// ---------------------------------------------------------------------------

/// Rule: an account without a record reads `None`; the first
/// `commit_account` (expected version `None`) stores the record, which reads
/// back equal, field for field (contacts, verification times, the
/// two-factor flag, the grace state); a key nobody claimed has no owner.
pub async fn check_contact_book_insert_and_read_back(store: Arc<dyn Store>) {
    let account = AccountId::new("testkit:contacts:insert");
    let absent = ok(store.account_record(&account).await, "account_record");
    assert!(
        absent.is_none(),
        "AccountStore::account_record must return None for an account without a book \
         (got {absent:?})"
    );
    let book = sample_contact_book(&account, base_time());
    committed(
        &*store,
        &book,
        None,
        &[],
        &[],
        "the first commit_account of an account without a record",
    )
    .await;
    let back = read_book(&*store, &account, "account record after its first commit").await;
    assert_same_book(
        "a account record read back after commit_account must equal what was committed",
        &back,
        &book,
    );
    let other = AccountId::new("testkit:contacts:insert:other");
    let none = ok(store.account_record(&other).await, "account_record");
    assert!(
        none.is_none(),
        "account_record must return None for an account without a book, also when another \
         account has one (got {none:?})"
    );
    let owner = ok(
        store.claim_owner("+819099999999").await,
        "claim_owner of a key never claimed",
    );
    assert!(
        owner.is_none(),
        "claim_owner must return None for a key never claimed (got {owner:?})"
    );
}

/// Rule: `commit_account` is a compare-and-set on the record's version. A
/// commit from the stored version succeeds and the new record is read back;
/// a stale or newer version, or "no record" (`None`) when one exists, is a
/// [`StoreErrorKind::Conflict`] that changes nothing, neither the record
/// nor any claim (keys it would claim stay free, keys it would release
/// stay held); an expected version for an account without a record is a
/// `Conflict` that creates nothing.
pub async fn check_contact_book_compare_and_set(store: Arc<dyn Store>) {
    let account = AccountId::new("testkit:contacts:cas");
    let now = base_time();
    let held = claim_key(0xCA, 0);
    let wanted = claim_key(0xCA, 1);
    let v1 = sample_contact_book(&account, now);
    committed(&*store, &v1, None, &[&held], &[], "the first commit").await;

    let v2 = next_book(&v1, "cas-2@example.com", now);
    committed(
        &*store,
        &v2,
        Some(1),
        &[],
        &[],
        "commit_account from the stored version",
    )
    .await;
    let back = read_book(&*store, &account, "account record after a commit").await;
    assert_same_book(
        "after commit_account from the stored version the new record must be read back",
        &back,
        &v2,
    );

    let stale = next_book(&v1, "stale@example.com", now);
    let mut newer = next_book(&v2, "newer@example.com", now);
    newer.version = 9;
    for (book, expected, what) in [
        (&stale, Some(1), "a stale version"),
        (&newer, Some(8), "a newer version"),
        (&newer, None, "no record expected while one exists"),
    ] {
        expect_commit_conflict(
            store
                .commit_account(book, expected, &changes(&[&wanted], &[&held]))
                .await,
            &format!("commit_account with {what} must fail with StoreErrorKind::Conflict"),
        );
        let back = read_book(&*store, &account, "account record after a conflict").await;
        assert_same_book(
            &format!("a commit_account with {what} must leave the record unchanged"),
            &back,
            &v2,
        );
        assert_owners(
            &*store,
            &[(&held, Some(&account)), (&wanted, None)],
            &format!(
                "a commit_account with {what} must change no claim (none claimed, none \
                 released)"
            ),
        )
        .await;
    }

    let ghost = AccountId::new("testkit:contacts:cas:ghost");
    let mut phantom = sample_contact_book(&ghost, now);
    phantom.version = 2;
    expect_commit_conflict(
        store
            .commit_account(&phantom, Some(1), &changes(&[&wanted], &[]))
            .await,
        "commit_account with an expected version for an account without a book must fail \
         with StoreErrorKind::Conflict (a compare-and-set is never an upsert)",
    );
    let none = ok(store.account_record(&ghost).await, "account_record");
    assert!(
        none.is_none(),
        "a conflicting commit_account must not create a record (got {none:?})"
    );
    assert_owners(
        &*store,
        &[(&wanted, None)],
        "a conflicting commit_account must claim nothing",
    )
    .await;
}

/// Rule: `commit_account` claims keys for the record's account, and
/// `claim_owner` names it; claiming a key the account already holds again
/// (in the next commit, or twice in one list) is fine and keeps it; keys
/// never claimed have no owner.
pub async fn check_contact_claims(store: Arc<dyn Store>) {
    let account = AccountId::new("testkit:contacts:claims");
    let now = base_time();
    let (k0, k1, k2) = (claim_key(0xC1, 0), claim_key(0xC1, 1), claim_key(0xC1, 2));
    let v1 = sample_contact_book(&account, now);
    committed(
        &*store,
        &v1,
        None,
        &[&k0],
        &[],
        "a first commit claiming one key",
    )
    .await;
    assert_owners(
        &*store,
        &[(&k0, Some(&account)), (&k1, None), (&k2, None)],
        "after a commit claiming a key, claim_owner must name the account (and only that key \
         is claimed)",
    )
    .await;

    let v2 = next_book(&v1, "claims-2@example.com", now);
    committed(
        &*store,
        &v2,
        Some(1),
        &[&k0, &k1, &k1],
        &[],
        "a commit claiming a held key again plus a new key (listed twice)",
    )
    .await;
    assert_owners(
        &*store,
        &[(&k0, Some(&account)), (&k1, Some(&account)), (&k2, None)],
        "claiming a key the account already holds must keep it, and a new key must be claimed",
    )
    .await;
    let back = read_book(&*store, &account, "account record after claims").await;
    assert_same_book(
        "a commit that claims keys must also store the record",
        &back,
        &v2,
    );
}

/// Rule: a commit claiming a key held by **another** account returns
/// [`AccountCommit::Taken`] with the index of the first such key in the
/// claim list, and writes nothing: the record stays as it was (or absent),
/// no other key in the list is claimed, and no key in the release list is
/// released.
pub async fn check_contact_claim_taken_writes_nothing(store: Arc<dyn Store>) {
    let now = base_time();
    let alice = AccountId::new("testkit:contacts:taken:alice");
    let bob = AccountId::new("testkit:contacts:taken:bob");
    let (a0, a1) = (claim_key(0x7A, 0), claim_key(0x7A, 1));
    let (b0, free) = (claim_key(0x7A, 2), claim_key(0x7A, 3));
    let alice_book = sample_contact_book(&alice, now);
    committed(
        &*store,
        &alice_book,
        None,
        &[&a0, &a1],
        &[],
        "alice's first commit",
    )
    .await;

    // Bob has no record yet: his first commit hits alice's key at index 1.
    let bob_first = sample_contact_book(&bob, now);
    let got = commit(
        &*store,
        &bob_first,
        None,
        &[&free, &a1, &a0],
        &[],
        "a commit claiming another account's key",
    )
    .await;
    assert_eq!(
        got,
        AccountCommit::Taken { index: 1 },
        "commit_account claiming [free, held by another, held by another] must return Taken \
         with the index of the first key held by another account"
    );
    let none = ok(store.account_record(&bob).await, "account_record");
    assert!(
        none.is_none(),
        "a Taken commit must not store the record (got {none:?})"
    );
    assert_owners(
        &*store,
        &[(&free, None), (&a0, Some(&alice)), (&a1, Some(&alice))],
        "a Taken commit must claim nothing, not even the free keys before the taken one, and \
         must leave the other account's claims alone",
    )
    .await;

    // Bob with a record and a claim of his own: a Taken commit releases nothing.
    committed(&*store, &bob_first, None, &[&b0], &[], "bob's first commit").await;
    let bob_next = next_book(&bob_first, "bob-2@example.com", now);
    let got = commit(
        &*store,
        &bob_next,
        Some(1),
        &[&a0],
        &[&b0],
        "a swap onto another account's key",
    )
    .await;
    assert_eq!(
        got,
        AccountCommit::Taken { index: 0 },
        "commit_account claiming a key held by another account must return Taken"
    );
    let back = read_book(&*store, &bob, "bob's record after a Taken commit").await;
    assert_same_book(
        "a Taken commit must leave the account's record unchanged",
        &back,
        &bob_first,
    );
    assert_owners(
        &*store,
        &[(&b0, Some(&bob)), (&a0, Some(&alice))],
        "a Taken commit must release nothing (the account keeps its key)",
    )
    .await;
    // The commit can be retried from the same version once it claims no
    // taken key.
    committed(
        &*store,
        &bob_next,
        Some(1),
        &[&free],
        &[],
        "the same commit without the taken key",
    )
    .await;
}

/// Rule: a commit releases only keys the record's account holds: keys held
/// by another account and keys nobody holds are left as they are.
pub async fn check_contact_release_only_own(store: Arc<dyn Store>) {
    let now = base_time();
    let alice = AccountId::new("testkit:contacts:release:alice");
    let bob = AccountId::new("testkit:contacts:release:bob");
    let (a0, a1, b0, free) = (
        claim_key(0x2E, 0),
        claim_key(0x2E, 1),
        claim_key(0x2E, 2),
        claim_key(0x2E, 3),
    );
    let alice_book = sample_contact_book(&alice, now);
    committed(
        &*store,
        &alice_book,
        None,
        &[&a0, &a1],
        &[],
        "alice's first commit",
    )
    .await;
    committed(
        &*store,
        &sample_contact_book(&bob, now),
        None,
        &[&b0],
        &[],
        "bob's first commit",
    )
    .await;
    let next = next_book(&alice_book, "release@example.com", now);
    committed(
        &*store,
        &next,
        Some(1),
        &[],
        &[&a0, &b0, &free],
        "a commit releasing its own key, another account's key and a free key",
    )
    .await;
    assert_owners(
        &*store,
        &[
            (&a0, None),
            (&a1, Some(&alice)),
            (&b0, Some(&bob)),
            (&free, None),
        ],
        "commit_account must release only the keys the book's account holds (another \
         account's key stays its own, a free key stays free, keys not listed stay held)",
    )
    .await;
    // The released key is free for anyone.
    let bob_book = read_book(&*store, &bob, "bob's record").await;
    committed(
        &*store,
        &next_book(&bob_book, "bob-2@example.com", now),
        Some(1),
        &[&a0],
        &[],
        "claiming a released key",
    )
    .await;
    assert_owners(
        &*store,
        &[(&a0, Some(&bob))],
        "a released key must be claimable by another account",
    )
    .await;
}

/// Rule: a number changes hands in one commit: claiming the new key and
/// releasing the old one together leaves the account holding the new key
/// only, and the old key free for another account. A key released and
/// claimed in the same commit stays claimed. A swap onto a key held by
/// another account is `Taken`, and the old key stays held.
pub async fn check_contact_swap(store: Arc<dyn Store>) {
    let now = base_time();
    let alice = AccountId::new("testkit:contacts:swap:alice");
    let bob = AccountId::new("testkit:contacts:swap:bob");
    let (old, new, bobs, both) = (
        claim_key(0x5A, 0),
        claim_key(0x5A, 1),
        claim_key(0x5A, 2),
        claim_key(0x5A, 3),
    );
    let v1 = sample_contact_book(&alice, now);
    committed(
        &*store,
        &v1,
        None,
        &[&old, &both],
        &[],
        "alice's first commit",
    )
    .await;
    committed(
        &*store,
        &sample_contact_book(&bob, now),
        None,
        &[&bobs],
        &[],
        "bob's first commit",
    )
    .await;

    let refused = next_book(&v1, "swap-refused@example.com", now);
    let got = commit(
        &*store,
        &refused,
        Some(1),
        &[&bobs],
        &[&old],
        "a swap onto another account's key",
    )
    .await;
    assert_eq!(
        got,
        AccountCommit::Taken { index: 0 },
        "a swap onto a key held by another account must return Taken"
    );
    assert_owners(
        &*store,
        &[(&old, Some(&alice)), (&bobs, Some(&bob))],
        "a Taken swap must keep the old key held and the other account's key its own",
    )
    .await;

    let v2 = next_book(&v1, "swap@example.com", now);
    committed(
        &*store,
        &v2,
        Some(1),
        &[&new, &both],
        &[&old, &both],
        "a swap (claim the new key, release the old one)",
    )
    .await;
    assert_owners(
        &*store,
        &[
            (&new, Some(&alice)),
            (&old, None),
            (&both, Some(&alice)),
            (&bobs, Some(&bob)),
        ],
        "after a swap the account must hold the new key and not the old one, and a key both \
         released and claimed in one commit must stay claimed",
    )
    .await;
    let back = read_book(&*store, &alice, "account record after a swap").await;
    assert_same_book("a swap must store the new record", &back, &v2);

    let bob_book = read_book(&*store, &bob, "bob's record").await;
    committed(
        &*store,
        &next_book(&bob_book, "bob-2@example.com", now),
        Some(1),
        &[&old],
        &[],
        "claiming the key released by a swap",
    )
    .await;
    assert_owners(
        &*store,
        &[(&old, Some(&bob))],
        "the key released by a swap must be claimable by another account",
    )
    .await;
}

/// Rule: `delete_account` removes the account's record and releases every
/// key it holds, and nothing of any other account (accounts differing
/// only in case or sharing a prefix included); deleting again, or an
/// account that never had a record, is `Ok`; afterwards the account may
/// start a new record (expected version `None`) and claim its keys again.
pub async fn check_delete_account(store: Arc<dyn Store>) {
    let now = base_time();
    let accounts = awkward_accounts("testkit:contacts:delete");
    let mut books = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        let seed = u8::try_from(i).expect("few accounts");
        let book = sample_contact_book(account, now);
        committed(
            &*store,
            &book,
            None,
            &[&claim_key(0xD0, 2 * seed), &claim_key(0xD0, 2 * seed + 1)],
            &[],
            "a first commit",
        )
        .await;
        books.push(book);
    }
    let gone = &accounts[0];
    ok(store.delete_account(gone).await, "delete_account");
    let none = ok(store.account_record(gone).await, "account_record");
    assert!(
        none.is_none(),
        "after delete_account the account must have no record (got {none:?})"
    );
    assert_owners(
        &*store,
        &[(&claim_key(0xD0, 0), None), (&claim_key(0xD0, 1), None)],
        "delete_account must release every key the account held",
    )
    .await;
    for (i, (account, book)) in accounts.iter().zip(&books).enumerate().skip(1) {
        let seed = u8::try_from(i).expect("few accounts");
        let back = read_book(&*store, account, "another account's record").await;
        assert_same_book(
            &format!("delete_account of {gone:?} must leave the record of {account:?} alone"),
            &back,
            book,
        );
        assert_owners(
            &*store,
            &[
                (&claim_key(0xD0, 2 * seed), Some(account)),
                (&claim_key(0xD0, 2 * seed + 1), Some(account)),
            ],
            &format!("delete_account of {gone:?} must leave the claims of {account:?} alone"),
        )
        .await;
    }
    ok(store.delete_account(gone).await, "delete_account again");
    ok(
        store
            .delete_account(&AccountId::new("testkit:contacts:delete:never"))
            .await,
        "delete_account of an account without a record",
    );
    committed(
        &*store,
        &sample_contact_book(gone, now),
        None,
        &[&claim_key(0xD0, 1)],
        &[],
        "a first commit after delete_account",
    )
    .await;
    assert_owners(
        &*store,
        &[
            (&claim_key(0xD0, 1), Some(gone)),
            (&claim_key(0xD0, 0), None),
        ],
        "after delete_account the account must be able to start again",
    )
    .await;
}

/// Rule: any string is a claim key, and keys are exact: numbers that are
/// prefixes of one another, email addresses differing only in case,
/// separators, spaces, quotes, SQL and glob wildcards and non-ASCII text
/// are all distinct keys, each with its own owner.
pub async fn check_contact_claim_keys_independent(store: Arc<dyn Store>) {
    let now = base_time();
    let keys = [
        "+819012345678",
        "+81901234567",
        "+8190123456789",
        "taro@example.com",
        "Taro@example.com",
        "taro@example.co",
        "a:b",
        "a",
        "a b",
        "'quoted' \"double\" \\ %_*?[a-z]{}",
        "東京@例え.jp",
    ];
    // Account i claims key i.
    let accounts: Vec<AccountId> = (0..keys.len())
        .map(|i| AccountId::new(format!("testkit:contacts:keys:{i}")))
        .collect();
    for (account, key) in accounts.iter().zip(keys) {
        committed(
            &*store,
            &sample_contact_book(account, now),
            None,
            &[key],
            &[],
            "a first commit claiming an awkward key",
        )
        .await;
    }
    for (account, key) in accounts.iter().zip(keys) {
        assert_owners(
            &*store,
            &[(key, Some(account))],
            "claim keys must be exact: a key that is a prefix of another, differs only in \
             case or holds separators, wildcards or non-ASCII text is a key of its own",
        )
        .await;
    }
    // Releasing one key leaves its look-alikes held.
    let book = read_book(&*store, &accounts[0], "account record").await;
    committed(
        &*store,
        &next_book(&book, "keys@example.com", now),
        Some(1),
        &[],
        &[keys[0]],
        "releasing one key",
    )
    .await;
    assert_owners(
        &*store,
        &[
            (keys[0], None),
            (keys[1], Some(&accounts[1])),
            (keys[2], Some(&accounts[2])),
        ],
        "releasing a key must not release keys that merely look like it",
    )
    .await;
}
