//! One browser test per seed journey (DESIGN.md, /work/shared/seeds): the
//! demo runs in-process, Chromium clicks through it, codes and links come
//! from the dev inbox page, TOTP codes from the enrolment secret.
//!
//! Routes, form ids and selectors are the ones `demo/README.md` documents.
//! Failures are provoked through the dev pages (`/dev/gateway` refuses
//! SMS, `/dev/clock` jumps days, `/dev/legacy` makes an unverified
//! account), never by sleeping.

mod support;

use support::demo::{Journey, run};

const USER: &str = "hana";
const EMAIL: &str = "hana@example.com";
const PHONE: &str = "090-1234-5678";
/// How the inbox is searched for the phone: the end of `data-to`.
const PHONE_TAIL: &str = "12345678";
const PASSWORD: &str = "correct horse battery staple";

/// Seed 000: one form, then the email and the SMS code, in either order;
/// both verified lands on the settings page with both contacts verified.
async fn sign_up(j: &Journey, email_first: bool) {
    j.open("/signup").await;
    j.browser.fill("signup-form", "username", USER).await;
    j.browser.fill("signup-form", "password", PASSWORD).await;
    j.browser.fill("signup-form", "email", EMAIL).await;
    j.browser.fill("signup-form", "phone", PHONE).await;
    j.browser.submit("signup-form").await;
    j.browser.wait_for("form#verify-email").await;
    let email_code = j.code(EMAIL, "email").await;
    let sms_code = j.code(PHONE_TAIL, "sms").await;
    let order = if email_first {
        [("verify-email", email_code), ("verify-phone", sms_code)]
    } else {
        [("verify-phone", sms_code), ("verify-email", email_code)]
    };
    let [(first, first_code), (second, second_code)] = order;
    j.browser.fill(first, "code", &first_code).await;
    j.browser.submit(first).await;
    // One verified, the other still to do.
    j.browser.wait_for("#flash").await;
    assert_eq!(j.flash_code().await.as_deref(), Some("verified_one"));
    j.browser.fill(second, "code", &second_code).await;
    j.browser.submit(second).await;
    assert_eq!(j.browser.text("h1").await, "Settings");
    let verified = j.browser.all("li.contact").await;
    assert_eq!(verified.len(), 2, "email and phone listed");
    for contact in verified {
        let text = contact.text().await.unwrap_or_default();
        assert!(text.contains("(verified)"), "{text}");
    }
}

#[test]
fn seed_000_sign_up_email_then_phone() {
    run("seed-000-email-first", |j| async move {
        sign_up(&j, true).await
    });
}

#[test]
fn seed_000_sign_up_phone_then_email() {
    run("seed-000-phone-first", |j| async move {
        sign_up(&j, false).await
    });
}

/// Seed 000, refused: a sign-up whose phone is already another account's
/// fails at the end, and leaves nothing to sign in to — not even the
/// username and password it chose.
#[test]
fn seed_000_a_failed_sign_up_leaves_no_account() {
    run("seed-000-refused", |j| async move {
        sign_up(&j, true).await;
        log_out(&j).await;
        j.open("/signup").await;
        j.browser.fill("signup-form", "username", "carol").await;
        j.browser.fill("signup-form", "password", PASSWORD).await;
        j.browser
            .fill("signup-form", "email", "carol@example.com")
            .await;
        j.browser.fill("signup-form", "phone", PHONE).await;
        j.browser.submit("signup-form").await;
        j.browser.wait_for("form#verify-email").await;
        let email_code = j.code("carol@example.com", "email").await;
        j.browser.fill("verify-email", "code", &email_code).await;
        j.browser.submit("verify-email").await;
        j.browser.wait_for("#flash").await;
        let sms_code = j.code(PHONE_TAIL, "sms").await;
        j.browser.fill("verify-phone", "code", &sms_code).await;
        j.browser.submit("verify-phone").await;
        j.browser.wait_for("#flash").await;
        assert_eq!(j.flash_code().await.as_deref(), Some("contact_in_use"));
        assert_ne!(j.browser.text("h1").await, "Settings");
        log_in_as(&j, "carol").await;
        assert_eq!(j.flash_code().await.as_deref(), Some("bad_credentials"));
        // The name is free again.
        j.open("/signup").await;
        j.browser.fill("signup-form", "username", "carol").await;
        j.browser.fill("signup-form", "password", PASSWORD).await;
        j.browser
            .fill("signup-form", "email", "carol@example.com")
            .await;
        j.browser
            .fill("signup-form", "phone", "080-1111-2222")
            .await;
        j.browser.submit("signup-form").await;
        j.browser.wait_for("form#verify-email").await;
    });
}

/// The password step; lands on /settings or on the second-step page.
async fn log_in(j: &Journey) {
    j.open("/login").await;
    j.browser.fill("login-form", "username", USER).await;
    j.browser.fill("login-form", "password", PASSWORD).await;
    j.browser.submit("login-form").await;
    j.browser.wait_for("h1").await;
}

/// Sends a code or link by `form` (`method-sms`, `method-voice`,
/// `method-link`) from the second-step page, confirming the masked number
/// with its last four digits as the page asks.
async fn send_to_phone(j: &Journey, form: &str) {
    j.browser.fill(form, "confirmation", "5678").await;
    j.browser.submit(form).await;
}

async fn log_out(j: &Journey) {
    j.open("/settings").await;
    j.browser.submit("logout-form").await;
    j.browser.wait_for("#login-link").await;
}

async fn turn_on_two_factor(j: &Journey) -> Vec<String> {
    j.open("/settings").await;
    j.browser.submit("enable-2fa").await;
    j.browser.wait_for("#recovery-codes").await;
    let mut codes = Vec::new();
    for li in j.browser.all("li.recovery-code").await {
        codes.push(li.text().await.unwrap_or_default());
    }
    assert!(codes.len() >= 5, "recovery codes shown once: {codes:?}");
    assert_eq!(
        j.browser
            .attr("#two-factor-status", "data-enabled")
            .await
            .as_deref(),
        Some("true")
    );
    codes
}

#[test]
fn seed_001_two_factor_recovery_codes_and_masked_number() {
    run("seed-001", |j| async move {
        sign_up(&j, true).await;
        let codes = turn_on_two_factor(&j).await;
        log_out(&j).await;

        // A recovery code signs in once...
        log_in(&j).await;
        assert_eq!(j.browser.text("h1").await, "Second step");
        j.browser.fill("recovery-form", "code", &codes[0]).await;
        j.browser.submit("recovery-form").await;
        assert_eq!(j.browser.text("h1").await, "Settings");
        log_out(&j).await;

        // ...and only once.
        log_in(&j).await;
        j.browser.fill("recovery-form", "code", &codes[0]).await;
        j.browser.submit("recovery-form").await;
        assert_eq!(j.browser.text("h1").await, "Second step");
        assert!(
            j.flash_code().await.is_some(),
            "a used recovery code is refused"
        );

        // The masked number must be confirmed before anything is sent.
        j.browser.fill("method-sms", "confirmation", "1111").await;
        j.browser.submit("method-sms").await;
        assert_eq!(j.browser.text("h1").await, "Second step");
        assert!(j.flash_code().await.is_some(), "a wrong number is refused");

        // Then an SMS code.
        send_to_phone(&j, "method-sms").await;
        let code = j.code(PHONE_TAIL, "sms").await;
        j.browser.fill("code-form", "code", &code).await;
        j.browser.check("code-form", "trust").await;
        j.browser.submit("code-form").await;
        assert_eq!(j.browser.text("h1").await, "Settings");
    });
}

#[test]
fn seed_001_the_same_browser_skips_the_second_step() {
    run("seed-001-remembered", |j| async move {
        sign_up(&j, true).await;
        turn_on_two_factor(&j).await;
        log_out(&j).await;
        log_in(&j).await;
        send_to_phone(&j, "method-sms").await;
        let code = j.code(PHONE_TAIL, "sms").await;
        j.browser.fill("code-form", "code", &code).await;
        j.browser.check("code-form", "trust").await;
        j.browser.submit("code-form").await;
        assert_eq!(j.browser.text("h1").await, "Settings");
        log_out(&j).await;
        log_in(&j).await;
        assert_eq!(j.browser.text("h1").await, "Settings");
    });
}

/// Seed 002: the SMS cannot be delivered (the dev gateway refuses it), so
/// ninsho calls instead: the code page says so, the code arrives by voice
/// call and signs in. No SMS reaches the inbox meanwhile.
#[test]
fn seed_002_sms_fails_then_voice_call() {
    run("seed-002", |j| async move {
        sign_up(&j, true).await;
        turn_on_two_factor(&j).await;
        log_out(&j).await;
        j.open("/dev/gateway").await;
        j.browser.submit("fail-sms").await;
        assert_eq!(j.flash_code().await.as_deref(), Some("sms_refused"));
        assert_eq!(
            j.browser
                .attr("#gateway-status", "data-sms")
                .await
                .as_deref(),
            Some("refused")
        );
        log_in(&j).await;
        assert_eq!(j.browser.text("h1").await, "Second step");
        send_to_phone(&j, "method-sms").await;
        assert_eq!(j.browser.text("h1").await, "Enter the code");
        assert_eq!(j.flash_code().await.as_deref(), Some("channel_fallback"));
        let told = j.browser.text("#flash").await;
        assert!(
            told.contains("voice call"),
            "the page says it calls: {told}"
        );
        let code = j.code(PHONE_TAIL, "voice call").await;
        // The sign-up's SMS was the last one that got through.
        j.open("/dev/inbox").await;
        let texts = j
            .browser
            .all(&format!(
                ".message[data-to$=\"{PHONE_TAIL}\"][data-channel=\"sms\"]"
            ))
            .await;
        assert_eq!(texts.len(), 1, "only the sign-up's SMS was delivered");
        j.open("/login/code").await;
        j.browser.fill("code-form", "code", &code).await;
        j.browser.submit("code-form").await;
        assert_eq!(j.browser.text("h1").await, "Settings");
    });
}

/// Seed 003: the one-time link, opened in a second window (the "phone"),
/// shows the device asking; approving signs the first window in, denying
/// does not.
async fn one_time_link(j: &Journey, approve: bool) {
    sign_up(j, true).await;
    turn_on_two_factor(j).await;
    log_out(j).await;
    log_in(j).await;
    send_to_phone(j, "method-link").await;
    j.browser.wait_for("#waiting").await;
    let link = j
        .inbox(PHONE_TAIL, "sms")
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
        .switch_to_window(phone.handle)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    j.browser.goto(&link).await;
    let device = j.browser.text("#link-device").await;
    assert!(
        device.contains("Chrome"),
        "the phone page names the browser asking: {device}"
    );
    let (form, outcome) = if approve {
        ("approve-form", "approved")
    } else {
        ("deny-form", "denied")
    };
    j.browser.submit(form).await;
    j.browser.wait_for("#flash").await;
    assert_eq!(j.flash_code().await.as_deref(), Some(outcome));
    let _ = client.close_window().await;
    client
        .switch_to_window(desktop)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The waiting page refreshes itself every 2 s.
    if approve {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while j.browser.text("h1").await != "Settings" {
            assert!(
                std::time::Instant::now() < deadline,
                "the approval never signed in"
            );
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    } else {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert_ne!(
            j.browser.text("h1").await,
            "Settings",
            "a denied link signed in"
        );
    }
}

#[test]
fn seed_003_one_time_link_approved() {
    run("seed-003-approve", |j| async move {
        one_time_link(&j, true).await
    });
}

#[test]
fn seed_003_one_time_link_denied() {
    run("seed-003-deny", |j| async move {
        one_time_link(&j, false).await
    });
}

/// Seed 003: "don't ask again" lists this browser among the trusted
/// devices; while it is listed the password alone signs in, and once it is
/// revoked the next sign-in asks for the second step again.
#[test]
fn seed_003_trusted_device_list_and_revoke() {
    run("seed-003-devices", |j| async move {
        sign_up(&j, true).await;
        turn_on_two_factor(&j).await;
        j.open("/settings").await;
        assert!(
            j.browser.all("tr.device").await.is_empty(),
            "nothing trusted yet"
        );
        log_out(&j).await;
        log_in(&j).await;
        send_to_phone(&j, "method-sms").await;
        let code = j.code(PHONE_TAIL, "sms").await;
        j.browser.fill("code-form", "code", &code).await;
        j.browser.check("code-form", "trust").await;
        j.browser.submit("code-form").await;
        assert_eq!(j.browser.text("h1").await, "Settings");
        let rows = j.browser.all("table#devices tr.device").await;
        assert_eq!(rows.len(), 1, "this browser is listed once");
        let label = rows[0].text().await.unwrap_or_default();
        assert!(
            label.contains("Chrome"),
            "the row names the browser: {label}"
        );

        // Trusted: the password alone signs in.
        log_out(&j).await;
        log_in(&j).await;
        assert_eq!(j.browser.text("h1").await, "Settings");

        j.browser.submit("revoke-device-0").await;
        assert_eq!(j.flash_code().await.as_deref(), Some("device_revoked"));
        assert!(
            j.browser.all("tr.device").await.is_empty(),
            "the row is gone"
        );

        // The browser still sends its cookie, but it no longer counts.
        log_out(&j).await;
        log_in(&j).await;
        assert_eq!(j.browser.text("h1").await, "Second step");
    });
}

const LEGACY_USER: &str = "kenji";
const LEGACY_EMAIL: &str = "kenji@example.com";

/// The password step for `user`.
async fn log_in_as(j: &Journey, user: &str) {
    j.open("/login").await;
    j.browser.fill("login-form", "username", user).await;
    j.browser.fill("login-form", "password", PASSWORD).await;
    j.browser.submit("login-form").await;
    j.browser.wait_for("h1").await;
}

/// Seed 004: an account from before verification (its email on file, not
/// verified) is reminded for 7 days, right after the password too; on day 8
/// the password alone leads to `#blocked` and nowhere else, and verifying
/// the email there lets the user in again, without a banner.
#[test]
fn seed_004_grace_banner_then_block_after_seven_days() {
    run("seed-004-grace", |j| async move {
        j.open("/dev/legacy").await;
        j.browser.fill("legacy-form", "username", LEGACY_USER).await;
        j.browser.fill("legacy-form", "password", PASSWORD).await;
        j.browser.fill("legacy-form", "email", LEGACY_EMAIL).await;
        j.browser.submit("legacy-form").await;
        assert_eq!(j.browser.text("h1").await, "Settings");
        let deadline: u64 = j
            .browser
            .attr("#grace-banner", "data-deadline")
            .await
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("#grace-banner has no data-deadline"));
        let now = j.demo_now("/settings").await;
        let week = 7 * 24 * 3600;
        assert!(
            deadline > now + week - 3600 && deadline <= now + week + 60,
            "the grace period is 7 days: deadline {deadline}, now {now}"
        );
        log_out(&j).await;

        // Day 6: still reminded, right after the password.
        j.advance_days(6, "/login").await;
        log_in_as(&j, LEGACY_USER).await;
        assert_eq!(j.browser.text("h1").await, "Settings");
        j.browser.wait_for("#grace-banner").await;
        log_out(&j).await;

        // Day 8: the password leads to the block, and only there.
        j.advance_days(2, "/login").await;
        log_in_as(&j, LEGACY_USER).await;
        assert_eq!(j.browser.text("h1").await, "Sign-in blocked");
        j.browser.wait_for("#blocked").await;
        j.open("/settings").await;
        assert_eq!(
            j.browser.text("h1").await,
            "Sign in",
            "blocked means no settings"
        );
        j.open("/blocked").await;

        // Verifying the email from the blocked page lets the user in.
        j.browser.submit("contact-send-0").await;
        assert_eq!(j.flash_code().await.as_deref(), Some("code_sent"));
        let code = j.code(LEGACY_EMAIL, "email").await;
        j.browser.fill("contact-confirm", "code", &code).await;
        j.browser.submit("contact-confirm").await;
        assert_eq!(j.flash_code().await.as_deref(), Some("contact_verified"));
        j.browser.wait_for("form#login-form").await;
        log_in_as(&j, LEGACY_USER).await;
        assert_eq!(j.browser.text("h1").await, "Settings");
        assert!(
            !j.browser.has("#grace-banner").await,
            "no banner once verified"
        );
        let contact = j.browser.text("li.contact").await;
        assert!(contact.contains("(verified)"), "{contact}");
    });
}

/// Seed 004, with two-step sign-in on: the grace banner is already on the
/// second-step page, right after the password.
#[test]
fn seed_004_grace_banner_right_after_the_password() {
    run("seed-004-grace-second-step", |j| async move {
        j.open("/dev/legacy").await;
        j.browser.fill("legacy-form", "username", LEGACY_USER).await;
        j.browser.fill("legacy-form", "password", PASSWORD).await;
        j.browser.fill("legacy-form", "email", LEGACY_EMAIL).await;
        j.browser.submit("legacy-form").await;
        let secret = enrol_authenticator(&j).await;
        turn_on_two_factor(&j).await;
        log_out(&j).await;
        j.advance_days(3, "/login").await;
        log_in_as(&j, LEGACY_USER).await;
        assert_eq!(j.browser.text("h1").await, "Second step");
        j.browser.wait_for("#grace-banner[data-deadline]").await;
        let now = j.demo_now("/login/second").await;
        let code = j.totp_code(&secret, now).await;
        j.browser.fill("totp-form", "code", &code).await;
        j.browser.submit("totp-form").await;
        assert_eq!(j.browser.text("h1").await, "Settings");
        j.browser.wait_for("#grace-banner").await;
    });
}

/// Sets up an authenticator app from `/settings` (two-step sign-in still
/// off) and returns its base32 secret.
async fn enrol_authenticator(j: &Journey) -> String {
    j.open("/settings").await;
    j.browser.submit("authenticator-start").await;
    let secret = j.browser.text("#totp-secret").await;
    assert!(j.browser.has("#totp-qr").await, "the QR code is shown");
    // Read the clock in a second tab would lose nothing, but the
    // enrolment page is a POST result: compute first, then confirm.
    let client = &j.browser.client;
    let here = client.window().await.unwrap_or_else(|e| panic!("{e}"));
    let tab = client
        .new_window(true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .switch_to_window(tab.handle)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = j.demo_now("/dev/inbox").await;
    let _ = client.close_window().await;
    client
        .switch_to_window(here)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let code = j.totp_code(&secret, now).await;
    j.browser.fill("authenticator-confirm", "code", &code).await;
    j.browser.submit("authenticator-confirm").await;
    j.browser.wait_for("#flash").await;
    assert_eq!(j.flash_code().await.as_deref(), Some("authenticator_added"));
    secret
}

#[test]
fn seed_004_authenticator_enrolment_and_sign_in() {
    run("seed-004-authenticator", |j| async move {
        // Enrolled before two-step sign-in is on: once it is, changing
        // factors asks for a second factor first.
        sign_up(&j, true).await;
        let secret = enrol_authenticator(&j).await;
        turn_on_two_factor(&j).await;
        log_out(&j).await;

        // A day later (the dev clock), a fresh code signs in.
        j.advance_days(1, "/login").await;
        let now = j.demo_now("/login").await;
        let code = j.totp_code(&secret, now).await;
        log_in(&j).await;
        assert_eq!(j.browser.text("h1").await, "Second step");
        j.browser.fill("totp-form", "code", &code).await;
        j.browser.submit("totp-form").await;
        assert_eq!(j.browser.text("h1").await, "Settings");
        j.browser.wait_for("#authenticator-start").await;
    });
}
