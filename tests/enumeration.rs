//! Anti-enumeration (OWASP's forgot-password rule, issue 7): where a caller
//! could learn whether an account or a contact exists, the journeys answer
//! the same way **and** make the same store and gateway calls either way.
//!
//! Each test builds two worlds from the same seed — one where the account or
//! contact exists, one where it does not — makes the same call in both, and
//! compares the answers, the messages and the sequence of store methods
//! called (recorded by `Counting`, a store wrapper written out by hand).

mod support;

use ninsho::{CodeRefusal, ContactRefusal};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ninsho::gateway::{Message, RecordingGateway};
use ninsho::model::{
    AccountId, AccountRecord, ChallengeId, ChallengeRecord, Channel, Destination, DeviceId,
    DeviceRecord, FailureRecord, VerificationId, VerificationRecord,
};
use ninsho::service::{ChannelReason, Ticket, VerificationTicket};
use ninsho::service::{SignInStart, Skip, TwoFactor};
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ClaimChanges, Commit, Committed, DeviceStore,
    LimitStore, Load, Loaded, MemoryStore, PurgeStore, Purged, StepStore, StoreError,
    VerificationStore, WindowCount,
};
use ninsho::{ManualClock, Refusal};
use support::{T0, refusal, secret_to, two_factor};
use time::{Duration, OffsetDateTime};

const PHONE: &str = "+819012345678";

// ------------------------------------------------------------ the wrapper

/// A `MemoryStore` that records the name of every store method called, in
/// order.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryStore,
    calls: Mutex<Vec<&'static str>>,
}

impl Counting {
    fn log(&self, name: &'static str) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name);
    }

    /// The calls so far; starts a new record.
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[async_trait]
impl ChallengeStore for Counting {
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.log("insert_challenge");
        self.inner.insert_challenge(record).await
    }
    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        self.log("challenge");
        self.inner.challenge(id).await
    }
    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.log("replace_challenge");
        self.inner.replace_challenge(record, expected_version).await
    }
}

#[async_trait]
impl LimitStore for Counting {
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        self.log("hit");
        self.inner.hit(key, window, now).await
    }
    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        self.log("replace_failures");
        self.inner.replace_failures(account, expected, next).await
    }
    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        self.log("failures");
        self.inner.failures(account).await
    }
    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        self.log("clear_failures");
        self.inner.clear_failures(account).await
    }
}

#[async_trait]
impl DeviceStore for Counting {
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        self.log("insert_device");
        self.inner.insert_device(record).await
    }
    async fn device(
        &self,
        account: &AccountId,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        self.log("device");
        self.inner.device(account, id).await
    }
    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        self.log("devices");
        self.inner.devices(account).await
    }
    async fn replace_device(
        &self,
        record: &DeviceRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.log("replace_device");
        self.inner.replace_device(record, expected_version).await
    }
    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError> {
        self.log("delete_device");
        self.inner.delete_device(account, id).await
    }
    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        self.log("delete_devices");
        self.inner.delete_devices(account).await
    }
}

#[async_trait]
impl AccountStore for Counting {
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.log("account_record");
        self.inner.account_record(account).await
    }
    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        self.log("claim_owner");
        self.inner.claim_owner(key).await
    }
    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        self.log("commit_account");
        self.inner
            .commit_account(book, expected_version, changes)
            .await
    }
    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        self.log("delete_account");
        self.inner.delete_account(account).await
    }
}

#[async_trait]
impl PurgeStore for Counting {
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError> {
        self.log("purge");
        self.inner.purge(before).await
    }
}

#[async_trait]
impl StepStore for Counting {
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        self.log("load");
        self.inner.load(load).await
    }
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        self.log("commit");
        self.inner.commit(commit, now).await
    }
}

#[async_trait]
impl VerificationStore for Counting {
    async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError> {
        self.log("insert_verification");
        self.inner.insert_verification(record).await
    }
    async fn verification(
        &self,
        id: &VerificationId,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        self.log("verification");
        self.inner.verification(id).await
    }
    async fn replace_verification(
        &self,
        record: &VerificationRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.log("replace_verification");
        self.inner
            .replace_verification(record, expected_version)
            .await
    }
}

// ------------------------------------------------------------- the worlds

struct World {
    service: TwoFactor,
    gateway: RecordingGateway,
    store: Arc<Counting>,
}

/// A world on a counting store; both worlds of a test use the same seed, so
/// they draw the same ids and codes.
fn world() -> World {
    let store = Arc::new(Counting::default());
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = two_factor("Example", store.clone(), &gateway, &clock, 7)
        .build()
        .unwrap();
    World {
        service,
        gateway,
        store,
    }
}

impl World {
    /// Starts the record afresh (store calls and messages).
    fn reset(&self) {
        self.store.take();
        self.gateway.clear();
    }
}

/// `taro` holds the number (a verified, claimed phone) in the first world;
/// in the second, `jiro` holds another number, so both stores hold one
/// account with one phone.
async fn claimed_and_free() -> (World, World) {
    let held = world();
    let taro = AccountId::new("taro");
    held.service
        .import_contact(&taro, &Destination::phone(PHONE).unwrap(), true)
        .await
        .unwrap();
    let free = world();
    free.service
        .import_contact(
            &AccountId::new("jiro"),
            &Destination::phone("+818011112222").unwrap(),
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        held.service
            .contact_owner(&Destination::phone(PHONE).unwrap())
            .await
            .unwrap(),
        Some(taro)
    );
    assert_eq!(
        free.service
            .contact_owner(&Destination::phone(PHONE).unwrap())
            .await
            .unwrap(),
        None
    );
    held.reset();
    free.reset();
    (held, free)
}

/// Everything a caller sees of a ticket but its random id.
fn ticket_shape(
    t: &Ticket,
) -> (
    Channel,
    ChannelReason,
    String,
    OffsetDateTime,
    OffsetDateTime,
    u32,
) {
    (
        t.channel,
        t.reason,
        t.masked_destination.clone(),
        t.expires_at,
        t.resend_available_at,
        t.sends_left,
    )
}

/// A message with its secret blanked out of the body.
fn message_shape(m: &Message) -> (Channel, String, Option<String>, String) {
    let secret = m
        .secret
        .as_ref()
        .expect("a secret")
        .expose_secret()
        .to_owned();
    let body = m.body.expose_secret().replace(&secret, "######");
    (m.channel, m.to.clone(), m.subject.clone(), body)
}

fn messages(gateway: &RecordingGateway) -> Vec<(Channel, String, Option<String>, String)> {
    gateway.messages().iter().map(message_shape).collect()
}

fn signup_shape(t: &VerificationTicket) -> Vec<String> {
    let mut shape = vec![t.expires_at.to_string()];
    for m in &t.members {
        shape.push(format!(
            "{} {:?} {} {:?}",
            m.index,
            m.kind,
            m.masked_destination,
            m.sent.as_ref().map(ticket_shape)
        ));
    }
    shape
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn finding_an_account_by_phone_answers_alike_for_held_and_free_numbers() {
    let (held, free) = claimed_and_free().await;

    let a = held
        .service
        .recover_start("090-1234-5678", Some("198.51.100.1"))
        .await
        .unwrap();
    let b = free
        .service
        .recover_start("090-1234-5678", Some("198.51.100.1"))
        .await
        .unwrap();
    assert_eq!(ticket_shape(&a), ticket_shape(&b));
    assert_eq!(a.masked_destination, "+81 **-****-**78");
    assert_eq!(a.channel, Channel::Sms);
    let (calls_a, calls_b) = (held.store.take(), free.store.take());
    assert!(!calls_a.is_empty());
    assert_eq!(calls_a, calls_b, "the same store calls");
    assert!(
        !calls_a.contains(&"claim_owner") && !calls_a.contains(&"account_record"),
        "nothing is looked up before the code is proven: {calls_a:?}"
    );
    let (sent_a, sent_b) = (messages(&held.gateway), messages(&free.gateway));
    assert_eq!(sent_a.len(), 1);
    assert_eq!(sent_a, sent_b, "the same message");
    assert_eq!(held.gateway.attempts(), free.gateway.attempts());

    // Wrong codes: the same refusal, the same calls.
    let code_a = secret_to(&held.gateway, PHONE);
    let code_b = secret_to(&free.gateway, PHONE);
    let wrong = if code_a == "000000" || code_b == "000000" {
        "111111"
    } else {
        "000000"
    };
    for left in [4, 3] {
        let ra = held.service.recover_verify(&a.challenge_id, wrong).await;
        let rb = free.service.recover_verify(&b.challenge_id, wrong).await;
        assert_eq!(
            refusal(ra),
            Refusal::Code(CodeRefusal::WrongCode {
                attempts_left: Some(left)
            })
        );
        assert_eq!(
            refusal(rb),
            Refusal::Code(CodeRefusal::WrongCode {
                attempts_left: Some(left)
            })
        );
        assert_eq!(held.store.take(), free.store.take());
    }

    // Only the right code tells — and only whether the number is held.
    let ra = held
        .service
        .recover_verify(&a.challenge_id, &code_a)
        .await
        .unwrap();
    let rb = free
        .service
        .recover_verify(&b.challenge_id, &code_b)
        .await
        .unwrap();
    assert_eq!(ra.account, Some(AccountId::new("taro")));
    assert_eq!(rb.account, None);
    assert_eq!(ra.destination, rb.destination);
    assert_eq!(held.store.take(), free.store.take());
}

#[tokio::test]
async fn finding_an_account_by_email_answers_alike_whoever_has_the_address() {
    let held = world();
    held.service
        .import_contact(
            &AccountId::new("taro"),
            &Destination::email("taro@example.com").unwrap(),
            true,
        )
        .await
        .unwrap();
    let free = world();
    held.reset();
    free.reset();
    let a = held
        .service
        .recover_start("taro@example.com", None)
        .await
        .unwrap();
    let b = free
        .service
        .recover_start("taro@example.com", None)
        .await
        .unwrap();
    assert_eq!(ticket_shape(&a), ticket_shape(&b));
    assert_eq!(a.channel, Channel::Email);
    assert_eq!(held.store.take(), free.store.take());
    assert_eq!(messages(&held.gateway), messages(&free.gateway));
}

#[tokio::test]
async fn signing_up_with_a_registered_number_answers_like_a_fresh_one() {
    let (held, free) = claimed_and_free().await;

    let a = held
        .service
        .signup_start("new@example.com", "090-1234-5678", Some("198.51.100.1"))
        .await
        .unwrap();
    let b = free
        .service
        .signup_start("new@example.com", "090-1234-5678", Some("198.51.100.1"))
        .await
        .unwrap();
    assert_eq!(signup_shape(&a), signup_shape(&b));
    assert!(a.members.iter().all(|m| m.sent.is_some()));
    let (calls_a, calls_b) = (held.store.take(), free.store.take());
    assert_eq!(calls_a, calls_b);
    assert!(!calls_a.contains(&"claim_owner"), "{calls_a:?}");
    let sent = messages(&held.gateway);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent, messages(&free.gateway));

    // Verifying goes alike too.
    for (w, t) in [(&held, &a), (&free, &b)] {
        let sms = secret_to(&w.gateway, PHONE);
        let mail = secret_to(&w.gateway, "new@example.com");
        w.service.signup_verify(&t.id, 1, &sms).await.unwrap();
        assert!(
            w.service
                .signup_verify(&t.id, 0, &mail)
                .await
                .unwrap()
                .completed
        );
    }
    assert_eq!(held.store.take(), free.store.take());

    // Only completing — after both codes were proven — tells them apart.
    let newcomer = AccountId::new("newcomer");
    let r = held.service.signup_complete(&a.id, &newcomer).await;
    assert_eq!(refusal(r), Refusal::Contact(ContactRefusal::InUse));
    free.service
        .signup_complete(&b.id, &newcomer)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_second_step_of_an_unknown_account_looks_like_one_with_two_step_off() {
    let w = world();
    let taro = AccountId::new("taro");
    w.service
        .import_contact(&taro, &Destination::phone(PHONE).unwrap(), true)
        .await
        .unwrap();
    assert!(!w.service.two_factor_enabled(&taro).await.unwrap());
    let ghost = AccountId::new("ghost");
    w.reset();

    for token in [None, Some("nd1.not-a-token")] {
        let known = w.service.sign_in_begin(&taro, token).await.unwrap();
        let known_calls = w.store.take();
        let unknown = w.service.sign_in_begin(&ghost, token).await.unwrap();
        let unknown_calls = w.store.take();
        assert_eq!(known, SignInStart::NotNeeded(Skip::TwoFactorOff));
        assert_eq!(unknown, known);
        assert_eq!(known_calls, vec!["load"]);
        assert_eq!(unknown_calls, known_calls);
    }
    assert!(w.gateway.attempts().is_empty());
}

#[tokio::test]
async fn registering_a_number_another_account_holds_answers_like_a_free_one_until_proven() {
    let (held, free) = claimed_and_free().await;
    let hanako = AccountId::new("hanako");

    let a = held
        .service
        .phone_send_code(&hanako, "090-1234-5678", None, None)
        .await
        .unwrap();
    let b = free
        .service
        .phone_send_code(&hanako, "090-1234-5678", None, None)
        .await
        .unwrap();
    assert_eq!(ticket_shape(&a), ticket_shape(&b));
    assert_eq!(held.store.take(), free.store.take());
    assert_eq!(messages(&held.gateway), messages(&free.gateway));

    // Refused only once she proves she receives codes at the number.
    let code = secret_to(&held.gateway, PHONE);
    let r = held
        .service
        .phone_confirm(&hanako, &a.challenge_id, &code, false)
        .await;
    assert_eq!(refusal(r), Refusal::Contact(ContactRefusal::InUse));
    let code = secret_to(&free.gateway, PHONE);
    free.service
        .phone_confirm(&hanako, &b.challenge_id, &code, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn changing_to_a_number_another_account_holds_answers_like_a_free_one_until_proven() {
    let new_number = "+818098765432";
    let mut worlds = Vec::new();
    for holder in ["hanako", "jiro"] {
        let w = world();
        let taro = AccountId::new("taro");
        // hanako holds the new number in the first world; jiro holds some
        // other number in the second.
        let held = if holder == "hanako" {
            new_number
        } else {
            "+818011112222"
        };
        w.service
            .import_contact(
                &AccountId::new(holder),
                &Destination::phone(held).unwrap(),
                true,
            )
            .await
            .unwrap();
        let ticket = w
            .service
            .phone_send_code(&taro, "090-1234-5678", None, None)
            .await
            .unwrap();
        let code = secret_to(&w.gateway, PHONE);
        w.service
            .phone_confirm(&taro, &ticket.challenge_id, &code, true)
            .await
            .unwrap();
        let sms = w.service.methods(&taro).await.unwrap()[0].clone();
        let ticket = w
            .service
            .sign_in_send_code(&taro, &sms, None, None)
            .await
            .unwrap();
        let code = secret_to(&w.gateway, PHONE);
        let signed_in = w
            .service
            .sign_in_complete(
                &taro,
                ninsho::service::Proof::Code {
                    challenge: &ticket.challenge_id,
                    code: &code,
                },
                None,
                None,
            )
            .await
            .unwrap();
        w.reset();
        worlds.push((w, taro, signed_in.step_up));
    }
    let [(held, taro, up_a), (free, _, up_b)] = <[_; 2]>::try_from(worlds).ok().unwrap();

    let a = held
        .service
        .phone_send_code(&taro, "080-9876-5432", Some(&up_a), None)
        .await
        .unwrap();
    let b = free
        .service
        .phone_send_code(&taro, "080-9876-5432", Some(&up_b), None)
        .await
        .unwrap();
    assert_eq!(ticket_shape(&a), ticket_shape(&b));
    assert_eq!(held.store.take(), free.store.take());
    assert_eq!(messages(&held.gateway), messages(&free.gateway));

    let code = secret_to(&held.gateway, new_number);
    let r = held
        .service
        .phone_confirm(&taro, &a.challenge_id, &code, false)
        .await;
    assert_eq!(refusal(r), Refusal::Contact(ContactRefusal::InUse));
    // taro keeps his number (and the refusal changed nothing).
    let contacts = held.service.contacts(&taro).await.unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].destination, Destination::phone(PHONE).unwrap());
    let code = secret_to(&free.gateway, new_number);
    let done = free
        .service
        .phone_confirm(&taro, &b.challenge_id, &code, false)
        .await
        .unwrap();
    assert!(done.changed);
}
