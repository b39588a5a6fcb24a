//! Review (session c) of three commits: the account record's random
//! `incarnation` (1496dbc), codes of an account settled by `guess_step`
//! with no refund (d03399f), and the Redis store without expiry indexes
//! (3634d22).
//!
//! - `finding_N_*`: a problem found, shown failing on the code as
//!   reviewed (`#[ignore]` while open).
//! - `holds_*`: an attack that held, kept where no other test covers it.
//!
//! Findings (details at each test):
//!
//! 1. `Standing::owns_challenge` takes a sign-in challenge of incarnation
//!    0 as "for no record in particular". Every record written before
//!    incarnations keeps incarnation 0 for good (nothing ever draws one for
//!    it), so every sign-in code or link issued for such an account carries
//!    0, and after the account is deleted and made again under the same id
//!    (the new record draws a real incarnation) the old record's code still
//!    signs in to the new one, and trusts a device there: what the commit
//!    says it closed, open for every account that existed at the upgrade.
//! 2. A record of incarnation 0 (written before incarnations) compares
//!    devices by incarnation only, so a device of incarnation 0 left from
//!    an earlier record of the same id, which the `created_at` rule of the
//!    version before revoked, checks out `Valid` again after the upgrade.
//! 3. A record rewritten by an instance still on the version before
//!    incarnations (a rolling upgrade: its `AccountRecord` has no such
//!    field, so its write drops it) reads back as incarnation 0, and every
//!    device trusted and every sign-in code sent by the new version since
//!    the record was created is revoked or unknown at once, though nothing
//!    about the account changed. The same for a device an old instance
//!    rewrites (its `last_used_at` touch): it reads back as 0, revoked.
//! 4. A sign-in retried by the attempt that spent its code ends the
//!    account's failure run, as a new success would: wrong guesses counted
//!    after the code was spent (at any method) are erased by replaying the
//!    retry, so within the code's lifetime one spent code buys any number
//!    of guesses at the other factors with no lockout. (The retry ended
//!    the run before these commits too; the new one-commit retry keeps it.)
//! 5. A sign-in whose commit lands but whose reply is lost, retried by the
//!    same attempt, reports no `Verified` event at all (the retry reports
//!    nothing). Not new; retries of every method do the same.
//!
//! Fixed: 1–3 by reading incarnation 0 as "not known": where the record's
//! or the device's (or proof's) is 0, the `created_at` rule of the version
//! before decides, and a sign-in challenge without one is refused by a
//! record that has one; 4 by leaving the run as it is on every method's
//! retry. Open: 5 (a retry can't tell a lost reply from a repeated request,
//! so reporting it would report some successes twice).
//!
//! Everything runs on the memory store (adapters are covered by their own
//! conformance suites); records "written before" are made by rewriting the
//! stored JSON without the new field, as the version before wrote it.

mod support;

use std::sync::Arc;

use ninsho::device::DeviceCheck;
use ninsho::gateway::RecordingGateway;
use ninsho::model::{AccountId, AccountRecord, DeviceRecord};
use ninsho::service::{MethodKind, Proof, SignInStart, SignedIn, TwoFactor};
use ninsho::store::{
    AccountCommit, AccountStore, ClaimChanges, DeviceStore, LimitStore, MemoryStore,
};
use ninsho::{AccountRefusal, CodeRefusal, ManualClock, Refusal};
use support::{
    PHONE, T0, delegate_store, enrol, no_send_limits, refusal, secret_to, sms_sign_in, two_factor,
};
use time::Duration;

fn taro() -> AccountId {
    AccountId::new("taro")
}

struct Env {
    store: Arc<MemoryStore>,
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
}

/// Taro with a phone, two-step sign-in on, and his recovery codes.
async fn env() -> (Env, Vec<String>) {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let store = Arc::new(MemoryStore::new());
    let service = two_factor("Example", store.clone(), &gateway, &clock, 11)
        .limits(no_send_limits())
        .build()
        .unwrap();
    let codes = enrol(&service, &gateway, &taro()).await;
    let env = Env {
        store,
        service,
        gateway,
        clock,
    };
    (env, codes)
}

/// `value` as the version before incarnations wrote it: its JSON without
/// the field (which reads back as 0).
fn without_incarnation<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let mut json = serde_json::to_value(value).unwrap();
    json.as_object_mut().unwrap().remove("incarnation");
    serde_json::from_value(json).unwrap()
}

/// Rewrites taro's record as the version before incarnations would (one
/// more write, the field dropped).
async fn rewrite_record_as_before(store: &MemoryStore) -> AccountRecord {
    let book = store.account_record(&taro()).await.unwrap().unwrap();
    let mut old = without_incarnation(&book);
    assert_eq!(old.incarnation, 0);
    old.version = book.version + 1;
    let committed = store
        .commit_account(&old, Some(book.version), &ClaimChanges::default())
        .await
        .unwrap();
    assert!(matches!(committed, AccountCommit::Committed));
    old
}

/// Rewrites every device of taro's as the version before wrote it.
async fn rewrite_devices_as_before(store: &MemoryStore) {
    for device in store.devices(&taro()).await.unwrap() {
        let mut old: DeviceRecord = without_incarnation(&device);
        old.version = device.version + 1;
        store.replace_device(&old, device.version).await.unwrap();
    }
}

impl Env {
    async fn sms(&self) -> ninsho::service::Method {
        self.service
            .methods(&taro())
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.kind == MethodKind::Sms)
            .expect("an SMS method")
    }

    async fn device_check(&self, signed_in: &SignedIn) -> DeviceCheck {
        let (token, _) = signed_in.device.as_ref().unwrap();
        self.service
            .check_device(&taro(), token.expose_secret())
            .await
            .unwrap()
    }
}

// ------------------------------------------------------------- finding 1

/// Finding 1 (medium). Taro's record was written before incarnations
/// (incarnation 0, as every record that existed at the upgrade). A sign-in
/// code is sent for it after the upgrade (the challenge carries the
/// record's incarnation: 0). The account is deleted and made again under
/// the same id with the same phone: the new record draws a real
/// incarnation. `owns_challenge(0)` is true for any record, so the old
/// record's code signs in to the new one and trusts a device there; the
/// same as `security_epoch::a_sign_in_code_sent_for_a_deleted_record_is_unknown_to_a_new_one`
/// shows refused for a record made after the upgrade.
#[tokio::test]
async fn finding_1_a_code_sent_for_a_record_from_before_incarnations_signs_in_to_a_new_record() {
    let (env, _) = env().await;
    rewrite_record_as_before(&env.store).await;
    let sms = env.sms().await;
    let ticket = env
        .service
        .sign_in_send_code(&taro(), &sms, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);

    env.service.delete_account(&taro()).await.unwrap();
    enrol(&env.service, &env.gateway, &taro()).await;
    let new = env.store.account_record(&taro()).await.unwrap().unwrap();
    assert_ne!(new.incarnation, 0, "the new record drew an incarnation");

    let signed = env
        .service
        .sign_in_complete(
            &taro(),
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &code,
            },
            Some("old browser"),
            None,
        )
        .await;
    if let Ok(s) = &signed {
        let (token, _) = s.device.as_ref().expect("a device");
        let begin = env
            .service
            .sign_in_begin(&taro(), Some(token.expose_secret()))
            .await
            .unwrap();
        let step_up = env.service.check_step_up(&taro(), &s.step_up).await;
        panic!(
            "the old record's code signs in to the new one: its device gives {begin:?}, \
             its step-up is {}",
            if step_up.is_ok() {
                "accepted"
            } else {
                "refused"
            }
        );
    }
    assert_eq!(refusal(signed), Refusal::Code(CodeRefusal::Unknown));
}

/// The same attack on a record made after the upgrade holds: its code
/// carries its incarnation, and the new record does not know it. (The
/// control for finding 1.)
#[tokio::test]
async fn holds_a_code_sent_for_a_record_with_an_incarnation_is_unknown_to_the_next() {
    let (env, _) = env().await;
    let sms = env.sms().await;
    let ticket = env
        .service
        .sign_in_send_code(&taro(), &sms, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    env.service.delete_account(&taro()).await.unwrap();
    enrol(&env.service, &env.gateway, &taro()).await;
    let signed = env
        .service
        .sign_in_complete(
            &taro(),
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &code,
            },
            Some("old browser"),
            None,
        )
        .await;
    assert_eq!(refusal(signed), Refusal::Code(CodeRefusal::Unknown));
}

// ------------------------------------------------------------- finding 2

/// Finding 2 (low; a regression for data from before the upgrade). Before
/// the upgrade, a `delete_account` cut off after deleting the record left
/// a trusted device behind, and the account was made again a minute later.
/// The version before revoked that device (trusted before the record's
/// `created_at`). Both records are JSON without `incarnation` (0 each):
/// the new rule compares 0 with 0 and the device is `Valid` again, skips
/// the new record's second step and is listed among its devices.
#[tokio::test]
async fn finding_2_a_device_left_from_an_earlier_record_revives_on_a_record_from_before_incarnations()
 {
    let (env, _) = env().await;
    let old = sms_sign_in(&env.service, &env.gateway, &taro(), Some("old laptop")).await;
    // What a delete_account cut off after its first write leaves.
    env.store.delete_account(&taro()).await.unwrap();
    env.clock.advance(Duration::minutes(1));
    enrol(&env.service, &env.gateway, &taro()).await;
    // All of it as the version before wrote it.
    let book = rewrite_record_as_before(&env.store).await;
    rewrite_devices_as_before(&env.store).await;
    let device = &env.store.devices(&taro()).await.unwrap()[0];
    assert!(
        device.created_at < book.created_at,
        "the device predates the record: the rule before revoked it"
    );

    let check = env.device_check(&old).await;
    let (token, _) = old.device.as_ref().unwrap();
    let begin = env
        .service
        .sign_in_begin(&taro(), Some(token.expose_secret()))
        .await
        .unwrap();
    assert_eq!(
        check,
        DeviceCheck::Revoked,
        "a device of the deleted record checks out {check:?} (sign_in_begin: {begin:?})"
    );
    assert!(matches!(begin, SignInStart::Required { .. }));
}

// ------------------------------------------------------------- finding 3

/// Finding 3 (low; availability during a rolling upgrade). A record made
/// by the new version (incarnation X), a device trusted and a sign-in code
/// sent for it (both X). An instance still on the version before then
/// writes the record (any change: a contact verified, say); its struct has
/// no `incarnation`, so the JSON it writes drops it and the record reads
/// back as 0. Nothing about the account changed, yet the device is
/// revoked and the code is unknown: every user whose record an old
/// instance touches loses their trusted browsers, repeatedly for as long
/// as old and new instances share the store. The CHANGELOG says "no
/// migration" and does not warn of it.
#[tokio::test]
async fn finding_3_a_record_rewritten_by_the_version_before_revokes_its_devices_and_codes() {
    let (env, _) = env().await;
    let signed = sms_sign_in(&env.service, &env.gateway, &taro(), Some("laptop")).await;
    assert!(matches!(
        env.device_check(&signed).await,
        DeviceCheck::Valid { .. }
    ));
    let sms = env.sms().await;
    let ticket = env
        .service
        .sign_in_send_code(&taro(), &sms, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);

    // An old instance writes the record.
    rewrite_record_as_before(&env.store).await;

    let check = env.device_check(&signed).await;
    let completed = env
        .service
        .sign_in_complete(
            &taro(),
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &code,
            },
            None,
            None,
        )
        .await;
    assert!(
        matches!(check, DeviceCheck::Valid { .. }) && completed.is_ok(),
        "after an old instance's write: device {check:?}, code {:?}",
        completed.err()
    );
}

/// Finding 3, the device side: an instance on the version before rewrites a
/// device (its hourly `last_used_at` touch when the device skips a second
/// step there, say); the JSON it writes has no `incarnation`, so the device
/// reads back as 0 against the record's X and is revoked.
#[tokio::test]
async fn finding_3_a_device_rewritten_by_the_version_before_is_revoked() {
    let (env, _) = env().await;
    let signed = sms_sign_in(&env.service, &env.gateway, &taro(), Some("laptop")).await;
    rewrite_devices_as_before(&env.store).await;
    let check = env.device_check(&signed).await;
    assert!(
        matches!(check, DeviceCheck::Valid { .. }),
        "after an old instance touched it, the device checks out {check:?}"
    );
}

// ------------------------------------------------------------- finding 4

/// Finding 4 (low). Attempt A signs in by SMS (the code is spent, A
/// recorded). Then wrong recovery codes are guessed: two at one instant,
/// one short of the default lockout. A presents its spent code again (a
/// "retry"): the retry commit writes `run = None`, erasing the two wrong
/// guesses counted after the success it repeats. Repeated, the party
/// holding one spent code (and its attempt id) compares any number of
/// recovery codes (or authenticator codes) without ever being locked, for
/// as long as the code lives. Every wrong guess must stay counted: a retry
/// proves nothing new, so it should leave the run as it is (the run that
/// the first success ended is already gone).
#[tokio::test]
async fn finding_4_a_retry_of_a_spent_code_erases_the_failure_run() {
    let (env, _) = env().await;
    let sms = env.sms().await;
    let ticket = env
        .service
        .sign_in_send_code(&taro(), &sms, None, None)
        .await
        .unwrap();
    let code = secret_to(&env.gateway, PHONE);
    let attempt = env.service.new_attempt().unwrap();
    let proof = || Proof::Code {
        challenge: &ticket.challenge_id,
        code: &code,
    };
    env.service
        .sign_in_complete(&taro(), proof(), None, Some(&attempt))
        .await
        .unwrap();

    let mut compared = 0;
    let mut locked = 0;
    for _ in 0..5 {
        for _ in 0..2 {
            let guess = env
                .service
                .sign_in_complete(
                    &taro(),
                    Proof::RecoveryCode {
                        code: "zzzz-zzzz-zzzz",
                    },
                    None,
                    None,
                )
                .await;
            match refusal(guess) {
                Refusal::Account(AccountRefusal::Locked { .. }) => locked += 1,
                Refusal::Code(CodeRefusal::WrongRecoveryCode) => compared += 1,
                other => panic!("a wrong recovery code refused as {other:?}"),
            }
        }
        // The retry: it may be refused, but must not end the run.
        let _ = env
            .service
            .sign_in_complete(&taro(), proof(), None, Some(&attempt))
            .await;
    }
    let run = env.store.failures(&taro()).await.unwrap();
    assert!(
        compared <= 3,
        "{compared} wrong recovery codes compared at one instant ({locked} refused as \
         locked; the default policy locks after 3); the run now: {run:?}"
    );
}

/// The control for finding 4: without the retries in between, the fourth
/// wrong recovery code at one instant is refused as locked.
#[tokio::test]
async fn holds_wrong_recovery_codes_lock_after_three_without_a_retry() {
    let (env, _) = env().await;
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let guess = env
            .service
            .sign_in_complete(
                &taro(),
                Proof::RecoveryCode {
                    code: "zzzz-zzzz-zzzz",
                },
                None,
                None,
            )
            .await;
        outcomes.push(refusal(guess));
    }
    assert!(
        matches!(outcomes[3], Refusal::Account(AccountRefusal::Locked { .. })),
        "{outcomes:?}"
    );
}

// ------------------------------------------------------------------ Redis

/// Redis purge without expiry indexes, on one server and on a cluster: a
/// prefix full of glob characters next to a store whose prefix the
/// unescaped glob would match; challenges and verifications cut to the
/// nanosecond (a record expiring exactly at the cut-off stays, one
/// nanosecond before goes); the sorted indexes of the version before are
/// unlinked; a compare-and-set that leaves `expires_at` alone leaves the
/// key's lifetime alone, and one that moves it moves the lifetime.
#[cfg(feature = "redis")]
mod redis_purge {
    use ninsho::model::{ChallengeRecord, VerificationRecord};
    use ninsho::store::{ChallengeStore, PurgeStore, RedisStore, VerificationStore};
    use ninsho::testkit::{sample_challenge, sample_verification};
    use redis::aio::ConnectionLike;
    use time::{Duration, OffsetDateTime};

    fn under_ci() -> bool {
        std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
    }

    fn stamp() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}:{nanos}", std::process::id())
    }

    async fn pttl<C: ConnectionLike>(conn: &mut C, key: &str) -> i64 {
        redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
    }

    fn challenge(seed: u8, now: OffsetDateTime, expires_at: OffsetDateTime) -> ChallengeRecord {
        let mut c = sample_challenge(seed, now);
        c.expires_at = expires_at;
        for send in &mut c.sends {
            send.expires_at = expires_at;
        }
        c
    }

    fn verification(
        seed: u8,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> VerificationRecord {
        let mut v = sample_verification(seed, now);
        v.expires_at = expires_at;
        v
    }

    /// `ours` on key base `base`, `neighbour` on a prefix our unescaped
    /// glob would match; `conn` reaches both.
    async fn purge_semantics<C: ConnectionLike + Send>(
        ours: &RedisStore,
        neighbour: &RedisStore,
        base: &str,
        conn: &mut C,
    ) {
        let now = OffsetDateTime::from_unix_timestamp(1_763_683_200).unwrap();
        let cut = now + Duration::hours(1) + Duration::nanoseconds(123_456_789);
        let offsets = [-1i64, 0, 1];
        let mut challenges = Vec::new();
        let mut verifications = Vec::new();
        for (i, offset) in (0u8..).zip(offsets) {
            let at = cut + Duration::nanoseconds(offset);
            let c = challenge(0x10 + i, now, at);
            ours.insert_challenge(&c).await.unwrap();
            challenges.push((offset, c));
            let v = verification(0x20 + i, now, at);
            ours.insert_verification(&v).await.unwrap();
            verifications.push((offset, v));
        }
        // The neighbour's records all expired long before the cut-off.
        let theirs = challenge(0x30, now, now + Duration::seconds(1));
        neighbour.insert_challenge(&theirs).await.unwrap();
        let theirs_v = verification(0x31, now, now + Duration::seconds(1));
        neighbour.insert_verification(&theirs_v).await.unwrap();
        // The index the version before kept.
        let legacy = format!("{base}:challenges:by_expiry");
        let _: i64 = redis::cmd("ZADD")
            .arg(&legacy)
            .arg(1)
            .arg("x")
            .query_async(conn)
            .await
            .unwrap();

        // A guess (expires_at unchanged) leaves the lifetime; a resend
        // that moves expires_at an hour on moves it about an hour.
        let key = format!("{base}:challenge:{}", challenges[2].1.id);
        let before = pttl(conn, &key).await;
        let mut guessed = challenges[2].1.clone();
        guessed.version += 1;
        guessed.failed_attempts += 1;
        ours.replace_challenge(&guessed, 0).await.unwrap();
        let after_guess = pttl(conn, &key).await;
        assert!(
            after_guess <= before && before - after_guess < 5_000,
            "a guess moved the key's lifetime: {before} ms, then {after_guess} ms"
        );
        let mut moved = guessed.clone();
        moved.version += 1;
        moved.expires_at += Duration::hours(1);
        ours.replace_challenge(&moved, guessed.version)
            .await
            .unwrap();
        let after_move = pttl(conn, &key).await;
        let gained = after_move - after_guess;
        assert!(
            (3_590_000..=3_600_000).contains(&gained),
            "moving expires_at an hour on moved the lifetime {gained} ms"
        );
        // Back to the cut-off + 1 ns, for the purge below.
        let mut back = moved.clone();
        back.version += 1;
        back.expires_at = challenges[2].1.expires_at;
        ours.replace_challenge(&back, moved.version).await.unwrap();

        let purged = ours.purge(cut).await.unwrap();
        assert_eq!(
            (
                purged.challenges,
                purged.verifications,
                purged.counters,
                purged.devices
            ),
            (1, 1, 0, 0),
            "purge(cut) must take exactly what expired before it, to the nanosecond"
        );
        for (offset, c) in &challenges {
            let kept = ours.challenge(&c.id).await.unwrap().is_some();
            assert_eq!(kept, *offset >= 0, "challenge at cut {offset:+} ns");
        }
        for (offset, v) in &verifications {
            let kept = ours.verification(&v.id).await.unwrap().is_some();
            assert_eq!(kept, *offset >= 0, "verification at cut {offset:+} ns");
        }
        assert!(
            neighbour.challenge(&theirs.id).await.unwrap().is_some()
                && neighbour
                    .verification(&theirs_v.id)
                    .await
                    .unwrap()
                    .is_some(),
            "our purge reached the neighbour's records"
        );
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&legacy)
            .query_async(conn)
            .await
            .unwrap();
        assert_eq!(exists, 0, "the old expiry index stays");
        // A second purge at the same cut-off takes nothing.
        let again = ours.purge(cut).await.unwrap();
        assert_eq!((again.challenges, again.verifications), (0, 0));

        // Clean up: everything expires by the far future.
        let far = now + Duration::days(3650);
        ours.purge(far).await.unwrap();
        neighbour.purge(far).await.unwrap();
    }

    #[tokio::test]
    async fn holds_redis_purge_is_exact_on_a_glob_prefix_on_one_server() {
        let url = match std::env::var("NINSHO_REDIS_URL") {
            Ok(u) if !u.is_empty() => u,
            _ if under_ci() => panic!("Redis required under CI"),
            _ => {
                eprintln!("SKIPPED: no NINSHO_REDIS_URL");
                return;
            }
        };
        let stamp = stamp();
        let ours_prefix = format!("review-c:{stamp}:a*[b]?\\");
        // What `a*[b]?\` matches as a glob (the backslash escapes nothing
        // after it, so drop it).
        let theirs_prefix = format!("review-c:{stamp}:aXXbZ");
        let build = |prefix: String| {
            let url = url.clone();
            async move {
                let store = RedisStore::builder(prefix)
                    .dangerously_allow_volatile_server()
                    .dangerously_allow_evicting_server()
                    .connect(&url)
                    .await
                    .unwrap();
                store.initialise().await.unwrap();
                store
            }
        };
        let ours = build(ours_prefix.clone()).await;
        let neighbour = build(theirs_prefix.clone()).await;
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        purge_semantics(&ours, &neighbour, &ours_prefix, &mut conn).await;
        for prefix in [&ours_prefix, &theirs_prefix] {
            let _: i64 = redis::cmd("DEL")
                .arg(format!("{prefix}:meta:initialised"))
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn holds_redis_purge_is_exact_on_a_glob_prefix_on_a_cluster() {
        let nodes: Vec<String> = match std::env::var("NINSHO_REDIS_CLUSTER_URL") {
            Ok(u) if !u.trim().is_empty() => u.split(',').map(|s| s.trim().to_owned()).collect(),
            _ if under_ci() => panic!("a Redis Cluster is required under CI"),
            _ => {
                eprintln!("SKIPPED: no NINSHO_REDIS_CLUSTER_URL");
                return;
            }
        };
        let stamp = stamp();
        let ours_prefix = format!("review-c:{stamp}:a*[b]?");
        let theirs_prefix = format!("review-c:{stamp}:aXXb?");
        let client = redis::cluster::ClusterClient::new(nodes.clone()).unwrap();
        let build = |prefix: String| {
            let client = client.clone();
            async move {
                let store = RedisStore::builder(prefix)
                    .dangerously_allow_volatile_server()
                    .dangerously_allow_evicting_server()
                    .build_cluster(client.get_async_connection().await.unwrap())
                    .await
                    .unwrap();
                store.initialise().await.unwrap();
                store
            }
        };
        let ours = build(ours_prefix.clone()).await;
        let neighbour = build(theirs_prefix.clone()).await;
        let mut conn = client.get_async_connection().await.unwrap();
        let base = format!("{{{ours_prefix}}}");
        purge_semantics(&ours, &neighbour, &base, &mut conn).await;
        for prefix in [&ours_prefix, &theirs_prefix] {
            let _: i64 = redis::cmd("DEL")
                .arg(format!("{{{prefix}}}:meta:initialised"))
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

// ------------------------------------------------------------- finding 5

/// A memory store whose armed commit lands and then loses its reply.
#[derive(Debug)]
struct LosesReply {
    inner: Arc<MemoryStore>,
    armed: std::sync::atomic::AtomicBool,
}

delegate_store!([] LosesReply, inner, support::directly =>
    ChallengeStore, LimitStore, DeviceStore, AccountStore, VerificationStore, PurgeStore);

#[async_trait::async_trait]
impl ninsho::store::StepStore for LosesReply {
    async fn load(
        &self,
        load: &ninsho::store::Load<'_>,
    ) -> Result<ninsho::store::Loaded, ninsho::store::StoreError> {
        self.inner.load(load).await
    }

    async fn commit(
        &self,
        commit: &ninsho::store::Commit<'_>,
        now: time::OffsetDateTime,
    ) -> Result<ninsho::store::Committed, ninsho::store::StoreError> {
        let committed = self.inner.commit(commit, now).await?;
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(support::db_down());
        }
        Ok(committed)
    }
}

/// Finding 5 (low; audit). An SMS sign-in whose commit lands but whose
/// reply is lost, retried by the same attempt, signs in; no `Verified`
/// event is ever reported for it: the first call failed after the write
/// (no event), and the retry (`Stepped::Again`) reports nothing. The audit
/// log shows a second factor passed zero times for a session that passed
/// it. Not new to these commits (the retry answered without an event
/// before too, and authenticator and recovery-code retries do the same),
/// but the brief's "events exactly once" does not hold.
#[tokio::test]
#[ignore = "finding 5: a sign-in whose reply was lost and was retried reports no Verified event"]
async fn finding_5_a_retried_sign_in_whose_reply_was_lost_reports_no_verified_event() {
    use ninsho::events::{Event, RecordingEvents};
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let store = Arc::new(LosesReply {
        inner: Arc::new(MemoryStore::new()),
        armed: std::sync::atomic::AtomicBool::new(false),
    });
    let events = RecordingEvents::new();
    let service = two_factor("Example", store.clone(), &gateway, &clock, 13)
        .limits(no_send_limits())
        .events(Arc::new(events.clone()))
        .build()
        .unwrap();
    enrol(&service, &gateway, &taro()).await;
    let sms = service
        .methods(&taro())
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.kind == MethodKind::Sms)
        .unwrap();
    let ticket = service
        .sign_in_send_code(&taro(), &sms, None, None)
        .await
        .unwrap();
    let code = secret_to(&gateway, PHONE);
    let attempt = service.new_attempt().unwrap();
    let proof = || Proof::Code {
        challenge: &ticket.challenge_id,
        code: &code,
    };
    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let first = service
        .sign_in_complete(&taro(), proof(), Some("laptop"), Some(&attempt))
        .await;
    assert!(first.is_err(), "the reply was lost: {first:?}");
    service
        .sign_in_complete(&taro(), proof(), Some("laptop"), Some(&attempt))
        .await
        .expect("the retry signs in");
    let verified = events
        .events()
        .iter()
        .filter(
            |e| matches!(e, Event::Verified { challenge, .. } if *challenge == ticket.challenge_id),
        )
        .count();
    assert_eq!(verified, 1, "Verified events for the sign-in's code");
}
