//! One browser test per seed journey (DESIGN.md, /work/shared/seeds): the
//! demo runs in-process, Chromium clicks through it, codes and links come
//! from the dev inbox page, TOTP codes from the enrolment secret.
//!
//! The form ids and routes below follow the contract in the brief; those
//! the demo's README had not documented yet when this was written are
//! marked `// ROUTE?` and the journeys are ignored until checked against
//! the running demo (`cargo test -p ninsho-demo --test browser_journeys --
//! --ignored`).

mod support;

use support::demo::{Journey, run};

const EMAIL: &str = "hana@example.com";
const PHONE: &str = "+81 90-1234-5678";
const PHONE_E164: &str = "+819012345678";
const PASSWORD: &str = "correct horse battery staple";

/// Seed 000: sign up, the email and phone codes arrive together and can be
/// entered in either order.
async fn sign_up(j: &Journey, email_first: bool) {
    j.open("/signup").await; // ROUTE?
    j.browser.fill("signup", "email", EMAIL).await;
    j.browser.fill("signup", "phone", PHONE).await;
    j.browser.fill("signup", "password", PASSWORD).await;
    j.browser.submit("signup").await;
    let email_code = j.code(EMAIL, "email").await;
    let sms_code = j.code(PHONE_E164, "sms").await;
    let order = if email_first {
        [("verify-email", email_code), ("verify-phone", sms_code)]
    } else {
        [("verify-phone", sms_code), ("verify-email", email_code)]
    };
    for (form, code) in order {
        j.browser.fill(form, "code", &code).await;
        j.browser.submit(form).await;
    }
    let heading = j.browser.text("h1").await;
    assert!(
        heading.contains("Welcome") || heading.contains("Account"),
        "{heading}"
    );
}

#[test]
#[ignore = "form ids and routes not yet checked against demo/README.md"]
fn seed_000_sign_up_email_then_phone() {
    run("seed-000-email-first", |j| async move {
        sign_up(&j, true).await
    });
}

#[test]
#[ignore = "form ids and routes not yet checked against demo/README.md"]
fn seed_000_sign_up_phone_then_email() {
    run("seed-000-phone-first", |j| async move {
        sign_up(&j, false).await
    });
}

/// Signs in with the password; the 2FA step (if any) is left to the caller.
async fn password_step(j: &Journey) {
    j.open("/signin").await; // ROUTE?
    j.browser.fill("signin", "email", EMAIL).await;
    j.browser.fill("signin", "password", PASSWORD).await;
    j.browser.submit("signin").await;
}

async fn sign_out(j: &Journey) {
    j.browser.submit("signout").await; // ROUTE?
    j.browser.wait_for("form#signin, a[href='/signin']").await;
}

#[test]
#[ignore = "form ids and routes not yet checked against demo/README.md"]
fn seed_001_two_factor_recovery_codes_and_remembered_browser() {
    run("seed-001", |j| async move {
        sign_up(&j, true).await;
        j.open("/settings").await;
        j.browser.submit("enable-2fa").await;
        let codes = j.browser.all("li.recovery-code").await;
        assert!(codes.len() >= 8, "recovery codes shown once after enabling");
        let first = codes[0].text().await.unwrap_or_default();
        sign_out(&j).await;

        // A recovery code signs in once, and only once.
        password_step(&j).await;
        j.browser.submit("use-recovery").await;
        j.browser.fill("recovery", "code", &first).await;
        j.browser.submit("recovery").await;
        j.browser.wait_for("form#signout").await;
        sign_out(&j).await;
        password_step(&j).await;
        j.browser.submit("use-recovery").await;
        j.browser.fill("recovery", "code", &first).await;
        j.browser.submit("recovery").await;
        assert!(
            j.flash_code().await.is_some(),
            "a used recovery code is refused"
        );

        // SMS code with "don't ask again on this browser".
        j.open("/signin").await;
        password_step(&j).await;
        let code = j.code(PHONE_E164, "sms").await;
        j.browser.fill("second-factor", "code", &code).await;
        j.browser.check("second-factor", "remember").await;
        j.browser.submit("second-factor").await;
        j.browser.wait_for("form#signout").await;
        sign_out(&j).await;

        // The same browser skips the second step next time.
        password_step(&j).await;
        j.browser.wait_for("form#signout").await;
        assert!(!j.browser.has("form#second-factor").await);
    });
}

#[test]
#[ignore = "needs a dev switch that makes SMS fail; not in the demo contract yet"]
fn seed_002_sms_fails_then_voice_call() {
    run("seed-002", |j| async move {
        sign_up(&j, true).await;
        j.open("/settings").await;
        j.browser.submit("enable-2fa").await;
        sign_out(&j).await;
        j.open("/dev/gateway").await; // ROUTE? the SMS failure switch
        j.browser.submit("fail-sms").await;
        password_step(&j).await;
        let refusal = j.flash_code().await;
        assert!(refusal.is_some(), "the failed SMS is reported to the user");
        j.browser.submit("send-voice").await;
        let code = j.code(PHONE_E164, "voice").await;
        j.browser.fill("second-factor", "code", &code).await;
        j.browser.submit("second-factor").await;
        j.browser.wait_for("form#signout").await;
    });
}

/// Seed 003: the one-time link opened in a second window (the "phone")
/// shows the device asking; approving signs the first window in.
async fn one_time_link(j: &Journey, approve: bool) {
    sign_up(j, true).await;
    j.open("/settings").await;
    j.browser.submit("enable-2fa").await;
    sign_out(j).await;
    password_step(j).await;
    j.browser.submit("send-link").await;
    let link = j
        .inbox(PHONE_E164, "sms")
        .await
        .link
        .unwrap_or_else(|| panic!("the SMS carries no link"));
    let client = &j.browser.client;
    let desktop = client.window().await.unwrap_or_else(|e| panic!("{e}"));
    let phone = client
        .new_window(false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .switch_to_window(phone.handle.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    j.browser.goto(&link).await;
    let device = j.browser.text(".device").await;
    assert!(
        !device.trim().is_empty(),
        "the phone page names the device asking"
    );
    j.browser
        .submit(if approve { "approve" } else { "deny" })
        .await;
    j.browser.wait_for("#flash, h1").await;
    let _ = client.close_window().await;
    client
        .switch_to_window(desktop)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    j.browser
        .client
        .refresh()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    if approve {
        j.browser.wait_for("form#signout").await;
    } else {
        assert!(
            !j.browser.has("form#signout").await,
            "a denied link signs nobody in"
        );
    }
}

#[test]
#[ignore = "form ids and routes not yet checked against demo/README.md"]
fn seed_003_one_time_link_approved_then_device_revoked() {
    run("seed-003-approve", |j| async move {
        one_time_link(&j, true).await;
        j.open("/settings").await;
        let rows = j.browser.all(".device").await;
        assert!(!rows.is_empty(), "the approving browser is listed");
        j.browser.submit("revoke-device-0").await; // ROUTE?
        assert_eq!(j.browser.all(".device").await.len(), rows.len() - 1);
    });
}

#[test]
#[ignore = "form ids and routes not yet checked against demo/README.md"]
fn seed_003_one_time_link_denied() {
    run("seed-003-deny", |j| async move {
        one_time_link(&j, false).await
    });
}

#[test]
#[ignore = "form ids and routes not yet checked against demo/README.md"]
fn seed_004_grace_banner_then_block_after_seven_days() {
    run("seed-004-grace", |j| async move {
        sign_up(&j, true).await;
        j.open("/dev/contact-check").await; // ROUTE? ask the account to re-confirm
        j.browser.submit("require-check").await;
        j.open("/").await;
        j.browser.wait_for("#grace-banner").await;
        j.advance_days(6, "/").await;
        j.browser.wait_for("#grace-banner").await;
        j.advance_days(2, "/").await;
        j.browser.wait_for("#blocked").await;
        // Confirming the masked contact by a voice call lifts the block.
        j.browser.submit("confirm-by-voice").await;
        let code = j.code(PHONE_E164, "voice").await;
        j.browser.fill("confirm-contact", "code", &code).await;
        j.browser.submit("confirm-contact").await;
        assert!(!j.browser.has("#blocked").await);
    });
}

#[test]
#[ignore = "form ids and routes not yet checked against demo/README.md"]
fn seed_004_authenticator_enrolment_and_sign_in() {
    run("seed-004-authenticator", |j| async move {
        sign_up(&j, true).await;
        j.open("/settings/authenticator").await; // ROUTE?
        let secret = j.browser.text("#totp-secret").await;
        let now = j.demo_now("/settings/authenticator").await;
        let code = j.totp_code(&secret, now).await;
        j.browser.fill("enrol-authenticator", "code", &code).await;
        j.browser.submit("enrol-authenticator").await;
        j.browser.wait_for("form#signout").await;
        sign_out(&j).await;
        // A later time step, so the code is not the one used at enrolment;
        // the demo's clock stands still until told to move.
        j.advance_days(1, "/signin").await;
        let now = j.demo_now("/signin").await;
        let code = j.totp_code(&secret, now).await;
        password_step(&j).await;
        j.browser.submit("use-another-option").await;
        j.browser.submit("choose-authenticator").await;
        j.browser.fill("second-factor", "code", &code).await;
        j.browser.submit("second-factor").await;
        j.browser.wait_for("form#signout").await;
    });
}
