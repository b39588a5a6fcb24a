//! The security epoch: every change of a second factor, "sign out
//! everywhere", a password change and a recovery-code sign-in move it on,
//! and with it die every trusted device and every step-up proof issued
//! before.

mod support;

use ninsho::AccountRefusal;
use std::sync::Arc;

use ninsho::device::DeviceCheck;
use ninsho::gateway::RecordingGateway;
use ninsho::model::AccountId;
use ninsho::otp::Totp;
use ninsho::service::{Proof, SignInStart, SignedIn, Skip, StepUp, TwoFactor};
use ninsho::store::AccountStore;
use ninsho::store::MemoryStore;
use ninsho::{Clock, ManualClock, Refusal};
use support::{T0, enrol, no_send_limits, refusal, secret_to, sms_sign_in, two_factor};
use time::Duration;

struct Env {
    store: Arc<MemoryStore>,
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
}

fn taro() -> AccountId {
    AccountId::new("taro")
}

/// Taro with a phone, two-step sign-in on, and his recovery codes.
async fn env() -> (Env, Vec<String>) {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let store = Arc::new(MemoryStore::new());
    let service = two_factor("Example", store.clone(), &gateway, &clock, 5)
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

impl Env {
    /// Signs in by SMS, trusting the browser.
    async fn sms_sign_in(&self) -> SignedIn {
        sms_sign_in(
            &self.service,
            &self.gateway,
            &taro(),
            Some("Firefox on Linux"),
        )
        .await
    }

    /// Sets up and confirms an authenticator app (a step-up first).
    async fn add_app(&self) -> Totp {
        let step_up = self.sms_sign_in().await.step_up;
        let setup = self
            .service
            .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
            .await
            .unwrap();
        let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
        let now = ninsho::clock::unix_seconds(self.clock.now());
        self.service
            .authenticator_confirm(&taro(), &app.code_at(now).to_string())
            .await
            .unwrap();
        self.clock.advance(Duration::seconds(30));
        app
    }

    async fn device_check(&self, signed_in: &SignedIn) -> DeviceCheck {
        let (token, _) = signed_in.device.as_ref().unwrap();
        self.service
            .check_device(&taro(), token.expose_secret())
            .await
            .unwrap()
    }

    async fn step_up_refused(&self, proof: &StepUp) -> bool {
        refusal(self.service.check_step_up(&taro(), proof).await)
            == Refusal::Account(AccountRefusal::StepUpRequired)
    }
}

#[tokio::test]
async fn removing_the_authenticator_revokes_devices_and_step_ups() {
    let (env, _) = env().await;
    env.add_app().await;
    let before = env.sms_sign_in().await;
    assert!(matches!(
        env.device_check(&before).await,
        DeviceCheck::Valid { .. }
    ));
    env.service
        .authenticator_remove(&taro(), &before.step_up)
        .await
        .unwrap();
    assert_eq!(env.device_check(&before).await, DeviceCheck::Revoked);
    assert!(env.step_up_refused(&before.step_up).await);
    // A new sign-in works as before.
    let after = env.sms_sign_in().await;
    assert!(matches!(
        env.device_check(&after).await,
        DeviceCheck::Valid { .. }
    ));
    env.service
        .check_step_up(&taro(), &after.step_up)
        .await
        .unwrap();
}

#[tokio::test]
async fn replacing_the_authenticator_revokes_devices_and_step_ups() {
    let (env, _) = env().await;
    env.add_app().await;
    let before = env.sms_sign_in().await;
    // A second app replaces the first.
    env.add_app().await;
    assert_eq!(env.device_check(&before).await, DeviceCheck::Revoked);
    assert!(env.step_up_refused(&before.step_up).await);
}

#[tokio::test]
async fn a_first_authenticator_adds_a_factor_and_revokes_nothing() {
    let (env, _) = env().await;
    let before = env.sms_sign_in().await;
    env.add_app().await;
    assert!(matches!(
        env.device_check(&before).await,
        DeviceCheck::Valid { .. }
    ));
}

#[tokio::test]
async fn sign_out_everywhere_and_a_password_change_refuse_earlier_step_ups() {
    let (env, _) = env().await;
    let first = env.sms_sign_in().await;
    env.service.sign_out_everywhere(&taro()).await.unwrap();
    assert!(env.step_up_refused(&first.step_up).await);
    assert_eq!(env.device_check(&first).await, DeviceCheck::Revoked);
    // Sensitive actions refuse it too, not only the check.
    assert_eq!(
        refusal(
            env.service
                .regenerate_recovery_codes(&taro(), &first.step_up)
                .await
        ),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
    assert_eq!(
        refusal(
            env.service
                .disable_two_factor(&taro(), &first.step_up)
                .await
        ),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );

    let second = env.sms_sign_in().await;
    env.service.password_changed(&taro()).await.unwrap();
    assert!(env.step_up_refused(&second.step_up).await);
    assert_eq!(
        refusal(
            env.service
                .phone_send_code(&taro(), "080-1111-2222", Some(&second.step_up), None)
                .await
        ),
        Refusal::Account(AccountRefusal::StepUpRequired)
    );
}

#[tokio::test]
async fn a_recovery_code_sign_in_refuses_earlier_step_ups_but_not_its_own() {
    let (env, codes) = env().await;
    let before = env.sms_sign_in().await;
    let recovered = env
        .service
        .sign_in_complete(&taro(), Proof::RecoveryCode { code: &codes[0] }, None, None)
        .await
        .unwrap();
    assert!(env.step_up_refused(&before.step_up).await);
    assert_eq!(env.device_check(&before).await, DeviceCheck::Revoked);
    // The recovery sign-in's own proof is at the new epoch.
    env.service
        .check_step_up(&taro(), &recovered.step_up)
        .await
        .unwrap();
    env.service
        .regenerate_recovery_codes(&taro(), &recovered.step_up)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_phone_change_refuses_earlier_step_ups() {
    let (env, _) = env().await;
    let before = env.sms_sign_in().await;
    let ticket = env
        .service
        .phone_send_code(&taro(), "080-1111-2222", Some(&before.step_up), None)
        .await
        .unwrap();
    env.service
        .phone_confirm(
            &taro(),
            &ticket.challenge_id,
            &secret_to(&env.gateway, "+818011112222"),
            false,
        )
        .await
        .unwrap();
    assert!(env.step_up_refused(&before.step_up).await);
    assert_eq!(env.device_check(&before).await, DeviceCheck::Revoked);
}

#[tokio::test]
async fn an_edited_epoch_is_a_forged_step_up() {
    let (env, _) = env().await;
    let proof = env.sms_sign_in().await.step_up;
    env.service.sign_out_everywhere(&taro()).await.unwrap();
    // Move the stale proof to the current epoch by hand: the tag refuses it.
    let mut json = serde_json::to_value(&proof).unwrap();
    json["epoch"] = serde_json::json!(proof.epoch() + 1);
    let edited: StepUp = serde_json::from_value(json).unwrap();
    assert!(env.step_up_refused(&edited).await);
}

/// A `delete_account` that fails after deleting the record (the store
/// went away before the devices were deleted) leaves the devices behind.
/// When an account of the same id is made again, its record starts again
/// at epoch 0, where those devices were trusted: they, and the step-up
/// proofs of the old record, must not vouch for the new one.
#[tokio::test]
async fn devices_and_step_ups_left_from_a_deleted_record_do_not_vouch_for_a_new_one() {
    // Whatever the clock of the instance that makes the new record says: a
    // minute on, the same instant, or a minute behind the one that trusted
    // the old device.
    for skew in [Duration::minutes(1), Duration::ZERO, Duration::minutes(-1)] {
        left_from_a_deleted_record(skew).await;
    }
}

async fn left_from_a_deleted_record(skew: Duration) {
    let (env, _) = env().await;
    let old = env.sms_sign_in().await;
    // What a delete_account cut off after its first write leaves.
    env.store.delete_account(&taro()).await.unwrap();
    env.clock.advance(skew);
    enrol(&env.service, &env.gateway, &taro()).await;

    let (token, _) = old.device.as_ref().unwrap();
    let begin = env
        .service
        .sign_in_begin(&taro(), Some(token.expose_secret()))
        .await
        .unwrap();
    assert!(
        matches!(begin, SignInStart::Required { .. }),
        "the old record's device skipped the second step: {begin:?}"
    );
    assert_eq!(env.device_check(&old).await, DeviceCheck::Revoked);
    assert!(env.service.devices(&taro()).await.unwrap().is_empty());
    assert!(env.step_up_refused(&old.step_up).await);

    // The new record's own devices and proofs work as ever.
    let new = env.sms_sign_in().await;
    assert!(matches!(
        env.device_check(&new).await,
        DeviceCheck::Valid { .. }
    ));
    let (token, _) = new.device.as_ref().unwrap();
    assert!(matches!(
        env.service
            .sign_in_begin(&taro(), Some(token.expose_secret()))
            .await
            .unwrap(),
        SignInStart::NotNeeded(Skip::TrustedDevice)
    ));
    env.service
        .check_step_up(&taro(), &new.step_up)
        .await
        .unwrap();
    assert_eq!(env.service.devices(&taro()).await.unwrap().len(), 1);
}

/// A sign-in code sent for the deleted record, with the account made again
/// under the same id and the same phone: the code reached the phone, but it
/// was issued for the old record, and the new one does not know it. Neither
/// can a sign-in link sent then, nor a retry by the attempt that spent the
/// code before the deletion.
#[tokio::test]
async fn a_sign_in_code_sent_for_a_deleted_record_is_unknown_to_a_new_one() {
    use ninsho::CodeRefusal;
    use ninsho::service::{MethodKind, SignInAttempt};
    let (env, _) = env().await;
    let sms = env
        .service
        .methods(&taro())
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.kind == MethodKind::Sms)
        .unwrap();
    // One code spent by an attempt (its reply lost), one never used.
    let spent = env
        .service
        .sign_in_send_code(&taro(), &sms, None, None)
        .await
        .unwrap();
    let spent_code = secret_to(&env.gateway, support::PHONE);
    let attempt = SignInAttempt::new("attempt-before-the-deletion");
    let proof = |id, code| Proof::Code {
        challenge: id,
        code,
    };
    env.service
        .sign_in_complete(
            &taro(),
            proof(&spent.challenge_id, &spent_code),
            None,
            Some(&attempt),
        )
        .await
        .unwrap();
    let unused = env
        .service
        .sign_in_send_code(&taro(), &sms, None, None)
        .await
        .unwrap();
    let unused_code = secret_to(&env.gateway, support::PHONE);

    env.service.delete_account(&taro()).await.unwrap();
    enrol(&env.service, &env.gateway, &taro()).await;

    let first = env
        .service
        .sign_in_complete(
            &taro(),
            proof(&unused.challenge_id, &unused_code),
            Some("laptop"),
            None,
        )
        .await;
    assert_eq!(refusal(first), Refusal::Code(CodeRefusal::Unknown));
    let retried = env
        .service
        .sign_in_complete(
            &taro(),
            proof(&spent.challenge_id, &spent_code),
            Some("laptop"),
            Some(&attempt),
        )
        .await;
    assert_eq!(refusal(retried), Refusal::Code(CodeRefusal::Unknown));
    let resend = env
        .service
        .resend(&taro(), &unused.challenge_id, None)
        .await;
    assert_eq!(refusal(resend), Refusal::Code(CodeRefusal::Unknown));
    assert!(env.service.devices(&taro()).await.unwrap().is_empty());

    // The new record's own codes work.
    let new = env.sms_sign_in().await;
    assert!(matches!(
        env.device_check(&new).await,
        DeviceCheck::Valid { .. }
    ));
}
