//! Runs one journey: the demo in-process on a free loopback port with its
//! own data directory, one browser, both stopped at the end even when the
//! journey panics.
//!
//! Everything here leans on the contract `demo/README.md` documents:
//! `/dev/inbox` lists `.message[data-to][data-channel]` with `data-code` or
//! `data-link`, `/dev/clock` has the form `#advance-clock` (field `days`),
//! `#totp-secret` holds the authenticator secret, refusals show `#flash`
//! with `data-code`, and every form has an id.

#![allow(dead_code)] // each journey uses a different part of it

use std::collections::HashSet;
use std::future::Future;

use ninsho::otp::{OtpSecret, Totp};

use super::browser::{Browser, STEP_TIMEOUT};

/// How long the demo may take to shut down.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A journey's view of the running demo and its browser.
pub struct Journey {
    /// The browser, with helpers for forms and lookups.
    pub browser: Browser,
    /// `http://127.0.0.1:<port>` of the demo.
    pub base: String,
    name: String,
    seen: std::sync::Mutex<HashSet<String>>,
}

/// Starts the demo and a browser, runs `steps`, saves a screenshot of the
/// final page as `target/browser-screenshots/<name>.png`, and stops both,
/// also when a step panics (the panic is then re-raised).
pub fn run<F, Fut>(name: &'static str, steps: F)
where
    F: FnOnce(std::sync::Arc<Journey>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("no tokio runtime: {e}"));
    runtime.block_on(async move {
        let data = tempfile::Builder::new()
            .prefix("ninsho-demo-")
            .tempdir()
            .unwrap_or_else(|e| panic!("no data directory: {e}"));
        let Some(browser) = Browser::launch(name).await else {
            return;
        };
        let running = ninsho_demo::start(ninsho_demo::Config::for_tests(data.path()))
            .await
            .unwrap_or_else(|e| panic!("the demo did not start: {e}"));
        let journey = std::sync::Arc::new(Journey {
            browser,
            base: format!("http://{}", running.addr()),
            name: name.to_owned(),
            seen: Default::default(),
        });
        // A spawned task turns a panicking step into an error here, so the
        // teardown below always runs.
        let outcome = tokio::spawn(steps(std::sync::Arc::clone(&journey))).await;
        let shot = match &outcome {
            Ok(()) => name.to_owned(),
            Err(_) => format!("{name}-failed"),
        };
        let _ = journey.browser.screenshot(&shot).await;
        // The browser first: its keep-alive connections would otherwise
        // hold up the demo's graceful shutdown.
        if let Ok(journey) = std::sync::Arc::try_unwrap(journey) {
            journey.browser.close().await;
        }
        let stopped = tokio::time::timeout(STOP_TIMEOUT, running.stop())
            .await
            .unwrap_or_else(|_| panic!("{name}: the demo did not stop within {STOP_TIMEOUT:?}"));
        if let Err(failure) = outcome {
            match failure.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("{name} did not finish: {e}"),
            }
        }
        if let Err(e) = stopped {
            panic!("{name}: the demo did not stop cleanly: {e}");
        }
    });
}

/// A message the recording gateway captured, as the dev inbox shows it.
#[derive(Debug, Clone)]
pub struct Message {
    /// The one-time code, when the message carries one.
    pub code: Option<String>,
    /// The one-time link, when the message carries one.
    pub link: Option<String>,
}

impl Journey {
    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Opens a page of the demo.
    pub async fn open(&self, path: &str) {
        self.browser.goto(&self.url(path)).await;
    }

    /// The newest message to `to` over `channel` (`email`, `sms`, `voice`)
    /// that this journey has not read yet, waiting for it to arrive. Read in
    /// a second tab, so the page under test keeps its state.
    pub async fn inbox(&self, to: &str, channel: &str) -> Message {
        let client = &self.browser.client;
        let home = client
            .window()
            .await
            .unwrap_or_else(|e| panic!("no current window: {e}"));
        let tab = client
            .new_window(true)
            .await
            .unwrap_or_else(|e| panic!("cannot open a tab: {e}"));
        client
            .switch_to_window(tab.handle)
            .await
            .unwrap_or_else(|e| panic!("cannot switch tabs: {e}"));
        // `to` is matched as the end of data-to, so a phone number's last
        // digits find it whatever its formatting.
        // The channel is compared without regard to case: the demo shows
        // ninsho's display names ("SMS", "email", "voice call").
        let css = format!(".message[data-to$=\"{to}\"][data-channel=\"{channel}\" i]");
        let deadline = std::time::Instant::now() + STEP_TIMEOUT;
        let found = loop {
            self.open("/dev/inbox").await;
            let mut fresh = None;
            for element in self.browser.all(&css).await {
                let code = element.attr("data-code").await.ok().flatten();
                let link = element.attr("data-link").await.ok().flatten();
                let key = format!("{code:?}{link:?}");
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if !seen.contains(&key) {
                    seen.insert(key);
                    fresh = Some(Message { code, link });
                    break;
                }
            }
            if let Some(message) = fresh {
                break message;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no new {channel} message to {to} in the dev inbox"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let _ = client.close_window().await;
        client
            .switch_to_window(home)
            .await
            .unwrap_or_else(|e| panic!("cannot switch back: {e}"));
        found
    }

    /// The code of [`Journey::inbox`]'s message.
    pub async fn code(&self, to: &str, channel: &str) -> String {
        self.inbox(to, channel)
            .await
            .code
            .unwrap_or_else(|| panic!("the {channel} message to {to} has no code"))
    }

    /// Moves the demo's clock `days` forward through `/dev/clock`, then
    /// comes back to `return_to`.
    pub async fn advance_days(&self, days: u32, return_to: &str) {
        self.open("/dev/clock").await;
        self.browser
            .fill("advance-clock", "days", &days.to_string())
            .await;
        self.browser.submit("advance-clock").await;
        self.browser.wait_for("#flash, h1").await;
        self.open(return_to).await;
    }

    /// The refusal code `#flash` carries on the current page.
    pub async fn flash_code(&self) -> Option<String> {
        self.browser.attr("#flash", "data-code").await
    }

    /// The TOTP code of the secret shown in `#totp-secret` at the demo's
    /// time, as an authenticator app would show it.
    pub async fn totp_code(&self, secret_base32: &str, unix_seconds: u64) -> String {
        let secret = OtpSecret::from_base32(secret_base32)
            .unwrap_or_else(|e| panic!("#totp-secret is not a base32 secret: {e}"));
        let totp = Totp::builder(secret)
            .account("browser test")
            .build()
            .unwrap_or_else(|e| panic!("no TOTP from the secret: {e}"));
        totp.code_at(unix_seconds).to_string()
    }
}

impl Journey {
    /// The demo's current time in Unix seconds: this machine's clock plus
    /// the offset `/dev/clock` shows in `#clock-offset[data-seconds]`.
    pub async fn demo_now(&self, return_to: &str) -> u64 {
        self.open("/dev/clock").await;
        let offset: i64 = self
            .browser
            .attr("#clock-offset", "data-seconds")
            .await
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("#clock-offset has no data-seconds"));
        self.open(return_to).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_else(|e| panic!("clock before 1970: {e}"));
        now.saturating_add_signed(offset)
    }
}
