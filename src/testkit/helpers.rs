//! What the checks share.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A day after the wall clock, in whole seconds: see "Time" in the module
/// docs.
pub(super) fn base_time() -> OffsetDateTime {
    whole_seconds(OffsetDateTime::now_utc() + Duration::days(1))
}

pub(super) fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("zero nanoseconds is always valid")
}

pub(super) fn phone() -> Destination {
    Destination::phone(PHONE).expect("a valid phone number")
}

/// `Challenges` over `store` with a recording gateway, a manual clock, a
/// seeded rng, a fixed hashing key and send limits out of the way.
pub(super) fn challenges(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    gateway: &RecordingGateway,
    seed: u8,
    instance: usize,
) -> Challenges {
    let lots = RateLimit::new(1_000_000, Duration::minutes(10));
    let limits = SendLimits {
        per_destination: lots,
        per_account: lots,
        per_caller: lots,
        countries: Vec::new(),
        other_countries: None,
    };
    Challenges::builder()
        .service_name("ninsho testkit")
        .store(store)
        .gateway(Arc::new(gateway.clone()))
        .hasher(testkit_hasher())
        .clock(Arc::new(clock.clone()))
        .rng(Arc::new(LockedRng::seeded(rng_seed(seed, instance))))
        .limits(limits)
        .locale(Locale::En)
        .build()
        .expect("a valid Challenges configuration")
}

/// Issues a sign-in code to [`PHONE`]; returns the id and the code sent.
pub(super) async fn issue(
    service: &Challenges,
    gateway: &RecordingGateway,
) -> (ChallengeId, String) {
    let ticket = match service
        .issue(IssueRequest::new(phone(), Purpose::SignIn))
        .await
    {
        Ok(ticket) => ticket,
        Err(e) => panic!(
            "Challenges::issue failed on this store: {}",
            error_chain(&e)
        ),
    };
    let code = gateway
        .last_secret_to(PHONE)
        .expect("the recording gateway holds the code just sent")
        .expose_secret()
        .to_owned();
    (ticket.challenge_id, code)
}

/// Issues a sign-in code for `account` to [`PHONE`]; returns its id and the
/// code.
pub(super) async fn issue_for(
    service: &Challenges,
    gateway: &RecordingGateway,
    account: &AccountId,
) -> (ChallengeId, String) {
    let request = IssueRequest::new(phone(), Purpose::SignIn).account(account.clone());
    let ticket = match service.issue(request).await {
        Ok(ticket) => ticket,
        Err(e) => panic!(
            "Challenges::issue failed on this store: {}",
            error_chain(&e)
        ),
    };
    let code = gateway
        .last_secret_to(PHONE)
        .expect("the recording gateway holds the code just sent");
    (ticket.challenge_id, code.expose_secret().to_owned())
}

/// Runs the jobs as tasks released together by a barrier; returns their
/// results in order. A panic in a task is re-raised here with its message.
pub(super) async fn race<T, Fut>(jobs: Vec<Fut>) -> Vec<T>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let handles: Vec<JoinHandle<T>> = jobs
        .into_iter()
        .map(|job| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                job.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(value) => results.push(value),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a testkit task did not finish: {e}"),
        }
    }
    results
}

/// The store for task `i`: alternates between the handles.
pub(super) fn pick(stores: &[Arc<dyn Store>], i: usize) -> Arc<dyn Store> {
    stores[i % stores.len()].clone()
}

/// " across two store instances" when racing two handles.
pub(super) fn across(stores: &[Arc<dyn Store>]) -> &'static str {
    if stores.len() > 1 {
        " (across two store instances on one namespace)"
    } else {
        ""
    }
}

/// Asserts exactly one `Ok` and only conflicts otherwise; returns the
/// winner's index.
pub(super) fn single_winner(results: &[Result<(), StoreError>], what: &str) -> usize {
    if let Some(e) = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .find(|e| e.kind() != StoreErrorKind::Conflict)
    {
        panic!(
            "{what}, the losers must fail with StoreErrorKind::Conflict, not: {}",
            describe(e)
        );
    }
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{what}, exactly one must succeed and the others fail with StoreErrorKind::Conflict; \
         {} succeeded",
        winners.len()
    );
    winners[0]
}

/// The value of a store call that must succeed.
pub(super) fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("the store failed in {what}: {}", describe(&e)),
    }
}

/// Asserts a [`StoreErrorKind::Conflict`].
pub(super) fn expect_conflict(result: Result<(), StoreError>, rule: &str) {
    match result {
        Err(e) if e.kind() == StoreErrorKind::Conflict => {}
        Err(e) => panic!("{rule}; it failed with another error: {}", describe(&e)),
        Ok(()) => panic!("{rule}; it succeeded"),
    }
}

/// Reads a challenge that must exist.
pub(super) async fn read(store: &dyn Store, id: &ChallengeId, what: &str) -> ChallengeRecord {
    match ok(store.challenge(id).await, what) {
        Some(record) => record,
        None => panic!("{what}: challenge {id} must exist but the store returned None"),
    }
}

pub(super) fn describe(e: &StoreError) -> String {
    format!("{:?}: {}", e.kind(), error_chain(e))
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Compares two challenges field by field, naming the first that differs.
pub(super) fn assert_same_record(rule: &str, got: &ChallengeRecord, want: &ChallengeRecord) {
    let id = want.id;
    macro_rules! same {
        ($field:ident) => {
            assert!(
                got.$field == want.$field,
                "{rule}: challenge {id}, field `{}` reads {:?}, expected {:?}",
                stringify!($field),
                got.$field,
                want.$field
            );
        };
    }
    same!(id);
    same!(version);
    same!(purpose);
    same!(account);
    same!(destination);
    same!(locale);
    same!(channels);
    same!(channel_index);
    same!(state);
    same!(digits);
    same!(failed_attempts);
    same!(max_attempts);
    same!(delivery_attempts);
    same!(created_at);
    same!(expires_at);
    // The destination's Debug is masked: compare the full address too.
    assert!(
        got.destination.address() == want.destination.address(),
        "{rule}: challenge {id}, field `destination` has another address"
    );
    assert_eq!(
        got.sends.len(),
        want.sends.len(),
        "{rule}: challenge {id}, field `sends` has {} entries, expected {}",
        got.sends.len(),
        want.sends.len()
    );
    for (i, (g, w)) in got.sends.iter().zip(&want.sends).enumerate() {
        assert!(
            g.channel == w.channel
                && g.sent_at == w.sent_at
                && g.expires_at == w.expires_at
                && same_hash(&g.code, &w.code)
                && g.failed_transiently == w.failed_transiently,
            "{rule}: challenge {id}, `sends[{i}]` reads {g:?} (key {}), expected {w:?} (key {})",
            g.code.key_id,
            w.code.key_id
        );
    }
    match (&got.link, &want.link) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!(
            same_hash(&g.token, &w.token) && g.device == w.device,
            "{rule}: challenge {id}, field `link` reads device {:?} (token key {}), expected \
             device {:?} (token key {}), or the token differs",
            g.device,
            g.token.key_id,
            w.device,
            w.token.key_id
        ),
        (g, w) => panic!(
            "{rule}: challenge {id}, field `link` is {}, expected {}",
            if g.is_some() { "Some" } else { "None" },
            if w.is_some() { "Some" } else { "None" }
        ),
    }
}

/// Two stored hashes are the same key id and tag (not a secret comparison:
/// both are test data).
pub(super) fn same_hash(a: &KeyedHash, b: &KeyedHash) -> bool {
    a.key_id == b.key_id && a.tag.0 == b.tag.0
}

/// The hashing key every flow check uses (two instances share it).
pub(super) fn testkit_hasher() -> KeyedHasher {
    KeyedHasher::new(HashKey::new(KeyId(1), &[0x42; 32]).expect("a 32-byte key"))
}

/// A distinct rng seed per check and per instance.
pub(super) fn rng_seed(seed: u8, instance: usize) -> u64 {
    u64::from(seed) << 8 | u64::try_from(instance).expect("few instances")
}

/// [`Ports`] over `store` with a manual clock, a seeded rng and the fixed
/// hashing key.
pub(super) fn ports(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    seed: u8,
    instance: usize,
) -> Ports {
    Ports::new(store, testkit_hasher())
        .with_clock(Arc::new(clock.clone()))
        .with_rng(Arc::new(LockedRng::seeded(rng_seed(seed, instance))))
}

/// `RecoveryCodes` over `store` with the default policies.
pub(super) fn recovery_codes(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    seed: u8,
    instance: usize,
) -> RecoveryCodes {
    // These checks test the store's compare-and-set, not the back-off: 64
    // racing guesses would (rightly) lock the account under the default
    // policy, since every guess is counted before it is checked.
    RecoveryCodes::new(ports(store, clock, seed, instance)).with_failure_policy(FailurePolicy {
        free_failures: u32::MAX,
        hard_stop: u32::MAX,
        ..FailurePolicy::default()
    })
}

/// `TrustedDevices` over `store` with the default policy.
pub(super) fn trusted_devices(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    seed: u8,
    instance: usize,
) -> TrustedDevices {
    TrustedDevices::new(ports(store, clock, seed, instance))
}

/// Generates a recovery set for `account`; returns the plain codes.
pub(super) async fn generate(service: &RecoveryCodes, account: &AccountId) -> Vec<String> {
    match service.generate(account).await {
        Ok(plain) => plain
            .expose_secret()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        Err(e) => panic!(
            "RecoveryCodes::generate failed on this store: {}",
            error_chain(&e)
        ),
    }
}

/// The account's unused recovery codes, through the flow.
pub(super) async fn remaining_codes(service: &RecoveryCodes, account: &AccountId) -> Option<usize> {
    match service.remaining(account).await {
        Ok(left) => left,
        Err(e) => panic!(
            "RecoveryCodes::remaining failed on this store: {}",
            error_chain(&e)
        ),
    }
}

/// Trusts a device for `account`; returns its token.
pub(super) async fn trust(service: &TrustedDevices, account: &AccountId, label: &str) -> String {
    match service.trust(account, label).await {
        Ok((token, _)) => token.expose_secret().to_owned(),
        Err(e) => panic!(
            "TrustedDevices::trust failed on this store: {}",
            error_chain(&e)
        ),
    }
}

/// A device check with the error as text (tasks hand it back).
pub(super) fn checked(result: Result<DeviceCheck, Error>) -> Result<DeviceCheck, String> {
    result.map_err(|e| error_chain(&e))
}

/// Panics on the first infrastructure error among the outcomes.
pub(super) fn assert_no_failures(outcomes: &[Outcome], what: &str, stores: &[Arc<dyn Store>]) {
    if let Some(Outcome::Failed(e)) = outcomes.iter().find(|o| matches!(o, Outcome::Failed(_))) {
        panic!(
            "{what} failed with an infrastructure error (the store should have answered){}: {e}",
            across(stores)
        );
    }
}

/// The device id derived from `seed`.
pub(super) fn device_id(seed: u8) -> DeviceId {
    let mut bytes = [seed; 16];
    bytes[0] = 0x44;
    bytes[1] = 0x56;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    DeviceId::parse(&hex).expect("32 lower-case hex digits")
}

/// Accounts a store must keep apart: the first, one differing only in case
/// (twice), prefixes and extensions of it, separators, spaces, quotes,
/// wildcards and non-ASCII text. At most 15.
pub(super) fn awkward_accounts(prefix: &str) -> Vec<AccountId> {
    let mut accounts: Vec<AccountId> = [
        "alice",
        "Alice",
        "ALICE",
        "alic",
        "alice:2",
        "alice 2",
        "alice ",
        "alice:",
        "'quoted' \"double\" \\ %_*?[a-z]{}",
        "アカウント:42",
        "アカウント:4",
    ]
    .iter()
    .map(|s| AccountId::new(format!("{prefix}:{s}")))
    .collect();
    accounts.push(AccountId::new(prefix));
    accounts
}

/// Reads a device that must exist.
pub(super) async fn read_device(
    store: &dyn Store,
    account: &AccountId,
    id: &DeviceId,
    what: &str,
) -> DeviceRecord {
    match ok(store.device(account, id).await, what) {
        Some(record) => record,
        None => panic!(
            "{what}: device {id} of account {account:?} must exist but the store returned None"
        ),
    }
}

/// Compares two devices field by field, naming the first that differs.
pub(super) fn assert_same_device(rule: &str, got: &DeviceRecord, want: &DeviceRecord) {
    let (account, id) = (&want.account, want.id);
    macro_rules! same {
        ($field:ident) => {
            assert!(
                got.$field == want.$field,
                "{rule}: device {id} of {account:?}, field `{}` reads {:?}, expected {:?}",
                stringify!($field),
                got.$field,
                want.$field
            );
        };
    }
    same!(account);
    same!(id);
    same!(version);
    same!(label);
    same!(created_at);
    same!(last_used_at);
    same!(expires_at);
    same!(epoch);
    same!(revoked_at);
    assert!(
        same_hash(&got.token, &want.token),
        "{rule}: device {id} of {account:?}, field `token` reads {:?} (key {}), expected {:?} \
         (key {})",
        got.token,
        got.token.key_id,
        want.token,
        want.token.key_id
    );
}

/// A claim key derived from `seed` and `n`: a Japanese-mobile-looking
/// E.164 number (distinct pairs give distinct keys).
pub(super) fn claim_key(seed: u8, n: u8) -> String {
    format!("+8180{seed:03}{n:05}")
}

/// Claim changes from string slices.
pub(super) fn changes(claim: &[&str], release: &[&str]) -> ClaimChanges {
    ClaimChanges {
        claim: claim.iter().map(|k| (*k).to_owned()).collect(),
        release: release.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// The record's successor: version + 1, with an email contact `address`
/// added at `now`.
pub(super) fn next_book(book: &AccountRecord, address: &str, now: OffsetDateTime) -> AccountRecord {
    let mut next = book.clone();
    next.version = book.version + 1;
    next.contacts.push(ContactEntry {
        destination: Destination::email(address).expect("a valid email"),
        added_at: whole_seconds(now),
        verified_at: None,
        two_factor: false,
        phone_type: None,
    });
    next
}

/// A `commit_account` that must not fail.
pub(super) async fn commit(
    store: &dyn Store,
    book: &AccountRecord,
    expected: Option<u64>,
    claim: &[&str],
    release: &[&str],
    what: &str,
) -> AccountCommit {
    ok(
        store
            .commit_account(book, expected, &changes(claim, release))
            .await,
        what,
    )
}

/// A `commit_account` that must commit.
pub(super) async fn committed(
    store: &dyn Store,
    book: &AccountRecord,
    expected: Option<u64>,
    claim: &[&str],
    release: &[&str],
    what: &str,
) {
    let got = commit(store, book, expected, claim, release, what).await;
    assert_eq!(
        got,
        AccountCommit::Committed,
        "{what}: commit_account must return Committed (no key it claims is held by another \
         account)"
    );
}

/// Asserts a [`StoreErrorKind::Conflict`] from `commit_account`.
pub(super) fn expect_commit_conflict(result: Result<AccountCommit, StoreError>, rule: &str) {
    match result {
        Err(e) if e.kind() == StoreErrorKind::Conflict => {}
        Err(e) => panic!("{rule}; it failed with another error: {}", describe(&e)),
        Ok(outcome) => panic!("{rule}; it returned {outcome:?}"),
    }
}

/// Reads a account record that must exist.
pub(super) async fn read_book(store: &dyn Store, account: &AccountId, what: &str) -> AccountRecord {
    match ok(store.account_record(account).await, what) {
        Some(book) => book,
        None => panic!(
            "{what}: account {account:?} must have a account record but the store returned None"
        ),
    }
}

/// Asserts each key's owner.
pub(super) async fn assert_owners(
    store: &dyn Store,
    owners: &[(&str, Option<&AccountId>)],
    rule: &str,
) {
    for (key, want) in owners {
        let got = ok(store.claim_owner(key).await, "claim_owner");
        assert!(
            got.as_ref() == *want,
            "{rule}: claim key {key:?} is held by {got:?}, expected {want:?}"
        );
    }
}

/// Compares two account records, naming the first field that differs (the
/// destinations' `Debug` is masked: their addresses are compared too).
pub(super) fn assert_same_book(rule: &str, got: &AccountRecord, want: &AccountRecord) {
    let account = &want.account;
    assert_eq!(
        got.account, want.account,
        "{rule}: account record of {account:?}, field `account` differs"
    );
    assert_eq!(
        got.version, want.version,
        "{rule}: account record of {account:?}, field `version` differs"
    );
    assert_eq!(
        got.created_at, want.created_at,
        "{rule}: account record of {account:?}, field `created_at` differs"
    );
    assert_eq!(
        got.contacts.len(),
        want.contacts.len(),
        "{rule}: account record of {account:?}, field `contacts` has {} entries, expected {}",
        got.contacts.len(),
        want.contacts.len()
    );
    for (i, (g, w)) in got.contacts.iter().zip(&want.contacts).enumerate() {
        assert!(
            g == w && g.destination.address() == w.destination.address(),
            "{rule}: contact book of {account:?}, `contacts[{i}]` reads {g:?} ({}), expected \
             {w:?} ({})",
            g.destination.address(),
            w.destination.address()
        );
    }
    assert_eq!(
        got.grace, want.grace,
        "{rule}: account record of {account:?}, field `grace` differs"
    );
}

/// Reads a verification that must exist.
pub(super) async fn read_verification(
    store: &dyn Store,
    id: &VerificationId,
    what: &str,
) -> VerificationRecord {
    match ok(store.verification(id).await, what) {
        Some(record) => record,
        None => panic!("{what}: verification {id} must exist but the store returned None"),
    }
}
