//! Trusted devices.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

/// Rule: a device read back after `insert_device` equals what was inserted,
/// field for field: account, id, a large version, token key id and tag,
/// a label full of awkward characters, the three instants, a large epoch,
/// and `revoked_at` both `None` and `Some`. An absent id reads `None`.
pub async fn check_device_insert_and_read_back(store: Arc<dyn Store>) {
    let now = base_time();
    let account = AccountId::new("testkit:device:アカウント 'quoted' %_");
    let plain = sample_device(&account, 1, now);

    let mut rich = sample_device(&account, 2, now);
    rich.version = 1 << 40;
    rich.token = KeyedHash {
        key_id: KeyId(u32::MAX),
        tag: Tag(std::array::from_fn(|i| u8::try_from(i * 8).expect("< 256"))),
    };
    rich.label = "Chrome on Windows · 東京 \"quoted\" 'single' \\ %_* \n new line 🚀".to_owned();
    rich.created_at = now + Duration::seconds(1);
    rich.last_used_at = now + Duration::seconds(61);
    rich.expires_at = now + Duration::days(27);
    rich.epoch = 1 << 40;
    rich.revoked_at = Some(now + Duration::seconds(122));

    let mut empty_label = sample_device(&account, 3, now);
    empty_label.label = String::new();
    empty_label.token.key_id = KeyId(0);

    let devices = [plain, rich, empty_label];
    for d in &devices {
        ok(
            store.insert_device(d).await,
            "insert_device of a new account and id",
        );
    }
    for d in &devices {
        let back = read_device(&*store, &d.account, &d.id, "device after insert_device").await;
        assert_same_device(
            "a device read back after insert_device must equal what was inserted",
            &back,
            d,
        );
    }

    let absent = ok(
        store.device(&account, &device_id(4)).await,
        "device of an absent id",
    );
    assert!(
        absent.is_none(),
        "DeviceStore::device must return None for an id never inserted (got {absent:?})"
    );
}

/// Rule: inserting a device whose account and id exist fails with
/// [`StoreErrorKind::Conflict`] and leaves the stored device unchanged (an
/// insert is never an upsert).
pub async fn check_device_insert_existing_conflicts(store: Arc<dyn Store>) {
    let account = AccountId::new("testkit:device:insert-twice");
    let original = sample_device(&account, 5, base_time());
    ok(store.insert_device(&original).await, "insert_device");
    let mut other = sample_device(&account, 5, base_time() + Duration::minutes(1));
    other.version = 7;
    other.label = "another device with the same id".to_owned();
    other.epoch = 3;
    other.revoked_at = Some(base_time());
    expect_conflict(
        store.insert_device(&other).await,
        "insert_device of an id the account already has must fail with \
         StoreErrorKind::Conflict",
    );
    let back = read_device(
        &*store,
        &account,
        &original.id,
        "device after a duplicate insert",
    )
    .await;
    assert_same_device(
        "a duplicate insert_device must leave the original device unchanged",
        &back,
        &original,
    );
}

/// Rule: a device is keyed by account **and** id. The same device id under
/// two accounts (here differing only in case) is two independent devices:
/// both inserts succeed, each reads back its own record, and replacing or
/// deleting one leaves the other alone.
pub async fn check_device_ids_per_account(store: Arc<dyn Store>) {
    let now = base_time();
    let alice = AccountId::new("testkit:device:alice");
    let upper = AccountId::new("testkit:device:ALICE");
    let mut a = sample_device(&alice, 6, now);
    a.label = "alice's".to_owned();
    let mut b = sample_device(&upper, 6, now + Duration::seconds(1));
    b.label = "ALICE's".to_owned();
    b.epoch = 2;
    assert_eq!(a.id, b.id);
    ok(store.insert_device(&a).await, "insert_device");
    ok(
        store.insert_device(&b).await,
        "insert_device of a device id another account already has must succeed (devices are \
         keyed by account and id)",
    );
    for d in [&a, &b] {
        let back = read_device(&*store, &d.account, &d.id, "device after insert_device").await;
        assert_same_device(
            "the same device id under two accounts must be two independent devices",
            &back,
            d,
        );
    }

    let mut a2 = a.clone();
    a2.version = 1;
    a2.revoked_at = Some(now + Duration::seconds(2));
    ok(store.replace_device(&a2, 0).await, "replace_device");
    let back = read_device(&*store, &upper, &b.id, "device after another's replace").await;
    assert_same_device(
        "replace_device must touch only the device of its own account (same id, other \
         account)",
        &back,
        &b,
    );
    let existed = ok(store.delete_device(&alice, &a.id).await, "delete_device");
    assert!(
        existed,
        "delete_device of an existing device must return true"
    );
    let back = read_device(&*store, &upper, &b.id, "device after another's delete").await;
    assert_same_device(
        "delete_device must delete only the device of its own account (same id, other \
         account)",
        &back,
        &b,
    );
}

/// Rule: `devices(account)` lists exactly the account's devices, each once
/// and field for field: none of an account that differs only in case, or
/// whose id is a prefix (or an extension) of this one, and an empty list
/// for an account without devices.
pub async fn check_devices_lists_one_account(store: Arc<dyn Store>) {
    let now = base_time();
    let accounts = awkward_accounts("testkit:devices");
    // Account i gets i + 1 devices; device seed 0 is under every account.
    let mut expected: Vec<Vec<DeviceRecord>> = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        let mut mine = Vec::new();
        for n in 0..=i {
            let seed = if n == 0 {
                0
            } else {
                u8::try_from(16 * i + n).expect("few devices")
            };
            let mut d = sample_device(account, seed, now);
            d.label = format!("device {n} of {account}");
            d.revoked_at = (n % 2 == 1).then_some(now);
            ok(store.insert_device(&d).await, "insert_device");
            mine.push(d);
        }
        expected.push(mine);
    }
    for (account, want) in accounts.iter().zip(&expected) {
        let mut got = ok(store.devices(account).await, "devices");
        got.sort_by_key(|d| d.id);
        let mut want = want.clone();
        want.sort_by_key(|d| d.id);
        let ids = |list: &[DeviceRecord]| list.iter().map(|d| d.id).collect::<Vec<_>>();
        assert_eq!(
            ids(&got),
            ids(&want),
            "devices({account:?}) must list exactly that account's devices, each once (none of \
             an account differing in case, or a prefix or extension of it)"
        );
        assert!(
            got.iter().all(|d| d.account == *account),
            "devices({account:?}) returned a device of another account"
        );
        for (g, w) in got.iter().zip(&want) {
            assert_same_device("devices must return every field of each device", g, w);
        }
    }
    let none = ok(
        store
            .devices(&AccountId::new("testkit:devices:nobody"))
            .await,
        "devices of an account without devices",
    );
    assert!(
        none.is_empty(),
        "devices must return an empty list for an account without devices (got {none:?})"
    );
}

/// Rule: `replace_device(record, v)` succeeds when the stored device has
/// version `v` and the new record is read back; a stale or newer version,
/// an absent id, or the same id under another account is a
/// [`StoreErrorKind::Conflict`] that changes (or creates) nothing.
pub async fn check_device_replace(store: Arc<dyn Store>) {
    let now = base_time();
    let account = AccountId::new("testkit:device:replace");
    let original = sample_device(&account, 7, now);
    ok(store.insert_device(&original).await, "insert_device");

    // "Last used" refreshed.
    let mut refreshed = original.clone();
    refreshed.version = 1;
    refreshed.last_used_at = now + Duration::hours(1);
    ok(
        store.replace_device(&refreshed, 0).await,
        "replace_device with the stored version must succeed",
    );
    let back = read_device(&*store, &account, &original.id, "device after replace").await;
    assert_same_device(
        "after a successful replace_device the new record (and version) is read back",
        &back,
        &refreshed,
    );
    // Revoked, from the new version.
    let mut revoked = refreshed.clone();
    revoked.version = 2;
    revoked.revoked_at = Some(now + Duration::hours(2));
    ok(
        store.replace_device(&revoked, 1).await,
        "a second replace_device from the new version must succeed",
    );
    let back = read_device(&*store, &account, &original.id, "device after two replaces").await;
    assert_same_device(
        "after a second replace_device the latest record is read back",
        &back,
        &revoked,
    );

    // A refresh prepared against version 1, and one claiming version 5.
    let mut stale = refreshed.clone();
    stale.version = 2;
    stale.last_used_at = now + Duration::hours(3);
    expect_conflict(
        store.replace_device(&stale, 1).await,
        "replace_device with a stale expected version must fail with StoreErrorKind::Conflict \
         (a late refresh must not undo a revocation)",
    );
    let mut ahead = revoked.clone();
    ahead.version = 6;
    ahead.revoked_at = None;
    expect_conflict(
        store.replace_device(&ahead, 5).await,
        "replace_device with an expected version newer than the stored one must fail with \
         StoreErrorKind::Conflict",
    );
    let back = read_device(
        &*store,
        &account,
        &original.id,
        "device after refused replaces",
    )
    .await;
    assert_same_device(
        "a replace_device that lost its compare-and-set must change nothing",
        &back,
        &revoked,
    );

    // Absent: another id, or this id under another account.
    let mut absent = sample_device(&account, 8, now);
    absent.version = 1;
    let mut elsewhere = original.clone();
    elsewhere.account = AccountId::new("testkit:device:replace:other");
    elsewhere.version = 1;
    for d in [&absent, &elsewhere] {
        expect_conflict(
            store.replace_device(d, 0).await,
            "replace_device of an absent device (unknown id, or a known id under another \
             account) must fail with StoreErrorKind::Conflict",
        );
        let got = ok(
            store.device(&d.account, &d.id).await,
            "device after replacing an absent one",
        );
        assert!(
            got.is_none(),
            "replace_device of an absent device must not create it (got {got:?})"
        );
    }
}

/// Rule: `delete_device` returns `true` when it removed the device and
/// `false` when there was none (already deleted, never inserted, or only
/// under another account); it removes only that device.
pub async fn check_delete_device(store: Arc<dyn Store>) {
    let now = base_time();
    let account = AccountId::new("testkit:device:delete");
    let neighbour = AccountId::new("testkit:device:delete:2");
    let gone = sample_device(&account, 9, now);
    let kept = sample_device(&account, 10, now);
    let other = sample_device(&neighbour, 11, now);
    for d in [&gone, &kept, &other] {
        ok(store.insert_device(d).await, "insert_device");
    }

    let first = ok(
        store.delete_device(&account, &gone.id).await,
        "delete_device",
    );
    assert!(
        first,
        "delete_device of an existing device must return true"
    );
    let got = ok(
        store.device(&account, &gone.id).await,
        "device after delete_device",
    );
    assert!(
        got.is_none(),
        "after delete_device the device must read None (got {got:?})"
    );
    let second = ok(
        store.delete_device(&account, &gone.id).await,
        "delete_device",
    );
    assert!(
        !second,
        "delete_device of an already deleted device must return false"
    );
    let never = ok(
        store.delete_device(&account, &device_id(12)).await,
        "delete_device",
    );
    assert!(
        !never,
        "delete_device of a device never inserted must return false"
    );
    let wrong_account = ok(
        store.delete_device(&account, &other.id).await,
        "delete_device",
    );
    assert!(
        !wrong_account,
        "delete_device of another account's device id must return false (and delete nothing)"
    );

    for d in [&kept, &other] {
        let back = read_device(&*store, &d.account, &d.id, "device after delete_device").await;
        assert_same_device(
            "delete_device must remove only the device it names",
            &back,
            d,
        );
    }
}

/// Rule: `delete_devices(account)` removes every device of the account
/// (revoked or not) and returns exactly how many there were; devices of
/// other accounts (differing in case, sharing a prefix) stay. Afterwards
/// `devices` is empty, and a second call, or one for an account without
/// devices, returns 0.
pub async fn check_delete_devices(store: Arc<dyn Store>) {
    let now = base_time();
    let accounts = awkward_accounts("testkit:delete-devices");
    let mut all = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        for n in 0..3u8 {
            let mut d = sample_device(account, n, now);
            d.revoked_at = (n == 1).then_some(now);
            d.epoch = u64::try_from(i).expect("few");
            ok(store.insert_device(&d).await, "insert_device");
            all.push(d);
        }
    }
    let target = &accounts[0];
    let deleted = ok(store.delete_devices(target).await, "delete_devices");
    assert_eq!(
        deleted, 3,
        "delete_devices must return exactly how many devices the account had (3)"
    );
    let left = ok(store.devices(target).await, "devices after delete_devices");
    assert!(
        left.is_empty(),
        "after delete_devices the account must have no devices (got {left:?})"
    );
    for d in all.iter().filter(|d| d.account != *target) {
        let back = read_device(&*store, &d.account, &d.id, "device after delete_devices").await;
        assert_same_device(
            "delete_devices must leave every other account's devices alone (accounts differing \
             in case, or sharing a prefix, included)",
            &back,
            d,
        );
    }
    let again = ok(
        store.delete_devices(target).await,
        "a second delete_devices",
    );
    assert_eq!(
        again, 0,
        "a second delete_devices must find nothing to delete and return 0"
    );
    let nobody = ok(
        store
            .delete_devices(&AccountId::new("testkit:delete-devices:nobody"))
            .await,
        "delete_devices of an account without devices",
    );
    assert_eq!(
        nobody, 0,
        "delete_devices of an account without devices must return 0"
    );
}
