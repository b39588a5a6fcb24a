//! A headless Chromium for one test: chromedriver on its own loopback port,
//! a fresh profile directory, and everything torn down when the test ends,
//! whether it passed or panicked.
//!
//! Knows nothing about the demo; `browser_harness.rs` checks it against a
//! page served from the test itself.

#![allow(dead_code)] // each test binary uses a different part of it

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long one page may take to show what a step waits for.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Flags that keep Chromium quiet and local: this machine refuses outside
/// connections, and without these Chromium keeps trying (updates, sync,
/// QUIC probes, first-run pages).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--window-size=1024,900",
];

/// The Chromium and chromedriver binaries, or why the browser tests cannot
/// run here. `NINSHO_CHROMIUM` and `NINSHO_CHROMEDRIVER` override Debian's
/// paths.
pub fn tools() -> Result<(PathBuf, PathBuf), String> {
    let chromium = tool_path("NINSHO_CHROMIUM", "/usr/bin/chromium");
    let driver = tool_path("NINSHO_CHROMEDRIVER", "/usr/bin/chromedriver");
    let missing: Vec<String> = [&chromium, &driver]
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok((chromium, driver))
    } else {
        Err(format!(
            "{} not found (apt-get install chromium chromium-driver, or set NINSHO_CHROMIUM / NINSHO_CHROMEDRIVER)",
            missing.join(" and ")
        ))
    }
}

fn tool_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// True under CI, where a missing browser is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The tools, or `None` after printing why the test skips. Under CI it
/// panics instead: CI installs the browser, so its absence is a defect.
pub fn tools_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    match tools() {
        Ok(found) => Some(found),
        Err(why) if in_ci() => panic!("{test}: CI=true and the browser is missing: {why}"),
        Err(why) => {
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

/// `target/browser-screenshots`, next to cargo's per-crate test tmp dir.
pub fn artifact_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-screenshots")
}

/// A chromedriver process in its own process group. Dropping it kills the
/// whole group, so the Chromium it started goes too.
pub struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    /// Starts chromedriver on a free loopback port and waits until it
    /// accepts connections.
    pub fn start(binary: &Path, log: &Path) -> Chromedriver {
        use std::os::unix::process::CommandExt;
        let mut last_error = String::new();
        // The port is free when we look and could be taken before
        // chromedriver binds it: try a few.
        for _ in 0..3 {
            let port = claim_port();
            let child = Command::new(binary)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn();
            let child = match child {
                Ok(child) => child,
                Err(e) => panic!("cannot run {}: {e}", binary.display()),
            };
            let mut driver = Chromedriver { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = driver.child.try_wait() {
                    last_error = format!("chromedriver exited with {status}");
                    break;
                }
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return driver;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if last_error.is_empty() {
                last_error = "chromedriver did not listen within 10 s".into();
            }
            drop(driver);
        }
        panic!("{last_error}; see {}", log.display());
    }

    /// The WebDriver endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id, also the id of its process group.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // Only the group this test started: chromedriver and its Chromium.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        release_port(self.port);
    }
}

/// The ports this test binary's chromedrivers were started on, until they
/// stop. A port the kernel calls free stays free only until a chromedriver
/// binds it; two tests starting at once could otherwise both pick it, one
/// chromedriver then listening on `::1` alone and the other test talking
/// to the wrong one (seen in CI: "webdriver server did not respond" once
/// the other test ended).
static CLAIMED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A free loopback port that no other chromedriver of this process has.
fn claim_port() -> u16 {
    loop {
        let port = free_port();
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.insert(port) {
            return port;
        }
    }
}

fn release_port(port: u16) {
    CLAIMED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&port);
}

/// A free loopback port, as the kernel hands them out.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// One browser session: the WebDriver client, its chromedriver and its
/// profile directory. Close it with [`Browser::close`]; if a test panics
/// first, dropping it still kills chromedriver and Chromium and removes
/// the profile.
pub struct Browser {
    /// The WebDriver client (cheap to clone).
    pub client: Client,
    name: String,
    // Field order is drop order: the driver dies before its profile goes.
    driver: Chromedriver,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Launches Chromium for the test `name`, or returns `None` (outside CI)
    /// when the browser is not installed.
    pub async fn launch(name: &str) -> Option<Browser> {
        let (chromium, chromedriver) = tools_or_skip(name)?;
        let artifacts = artifact_dir();
        std::fs::create_dir_all(&artifacts)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", artifacts.display()));
        let profile = tempfile::Builder::new()
            .prefix("ninsho-chromium-")
            .tempdir()
            .unwrap_or_else(|e| panic!("no temporary profile directory: {e}"));
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        // A session request that can't reach a chromedriver which was just
        // seen listening (seen once in CI on a loaded machine: the request
        // found no listener, and the driver's log shows none arriving) is
        // retried on a fresh driver; a driver that answers with an error
        // fails at once.
        let mut last_error = String::new();
        for attempt in 1..=3 {
            let log = artifacts.join(format!("{name}.chromedriver.{attempt}.log"));
            let driver = Chromedriver::start(&chromedriver, &log);
            let session =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&driver.url())
                    .await;
            match session {
                Ok(client) => {
                    return Some(Browser {
                        client,
                        name: name.to_owned(),
                        driver,
                        profile,
                    });
                }
                Err(
                    e @ (fantoccini::error::NewSessionError::Failed(_)
                    | fantoccini::error::NewSessionError::FailedC(_)
                    | fantoccini::error::NewSessionError::Lost(_)),
                ) => {
                    last_error = format!("{e} (attempt {attempt}, log {})", log.display());
                    drop(driver);
                }
                Err(e) => panic!("{name}: no WebDriver session: {e}; see {}", log.display()),
            }
        }
        panic!("{name}: no WebDriver session: {last_error}")
    }

    /// The chromedriver's process id (its process group holds Chromium).
    pub fn driver_pid(&self) -> u32 {
        self.driver.pid()
    }

    /// The profile directory given to Chromium.
    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }

    /// Opens `url` in the current window.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The first element matching `css`, waiting up to [`STEP_TIMEOUT`].
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(STEP_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let url = self.current_url().await;
                let _ = self.screenshot(&format!("{}-failed", self.name)).await;
                panic!("{css} did not appear on {url}: {e}")
            }
        }
    }

    /// Whether an element matching `css` is on the page now.
    pub async fn has(&self, css: &str) -> bool {
        self.client
            .find_all(Locator::Css(css))
            .await
            .is_ok_and(|found| !found.is_empty())
    }

    /// All elements matching `css` now.
    pub async fn all(&self, css: &str) -> Vec<fantoccini::elements::Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("cannot search for {css}: {e}"))
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("no text for {css}: {e}"))
    }

    /// An attribute of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.wait_for(css)
            .await
            .attr(name)
            .await
            .unwrap_or_else(|e| panic!("no attribute {name} on {css}: {e}"))
    }

    /// Types `value` into the field `name` of the form `#form_id`.
    pub async fn fill(&self, form_id: &str, name: &str, value: &str) {
        let field = self
            .wait_for(&format!("form#{form_id} [name=\"{name}\"]"))
            .await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("cannot clear {form_id}.{name}: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("cannot type into {form_id}.{name}: {e}"));
    }

    /// Ticks (or leaves ticked) the checkbox `name` of the form `#form_id`.
    pub async fn check(&self, form_id: &str, name: &str) {
        let boxed = self
            .wait_for(&format!("form#{form_id} input[name=\"{name}\"]"))
            .await;
        if !boxed.is_selected().await.unwrap_or(false) {
            boxed
                .click()
                .await
                .unwrap_or_else(|e| panic!("cannot tick {form_id}.{name}: {e}"));
        }
    }

    /// Submits `#form_id` with its (first) submit button, as a user clicks
    /// it, and waits for the next page to load.
    pub async fn submit(&self, form_id: &str) {
        let button = self
            .wait_for(&format!(
                "form#{form_id} button[type=\"submit\"], form#{form_id} button:not([type]), form#{form_id} input[type=\"submit\"]"
            ))
            .await;
        let before = self.current_url().await;
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot submit {form_id} on {before}: {e}"));
        // The click returns before the next page is there: wait until the
        // button's document is gone, so later lookups see the new page.
        let deadline = Instant::now() + STEP_TIMEOUT;
        while button.tag_name().await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "submitting {form_id} on {before} did not leave the page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's address now.
    pub async fn current_url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|_| "(unknown page)".into())
    }

    /// Saves the visible page as `target/browser-screenshots/<file>.png`
    /// and returns the path.
    pub async fn screenshot(&self, file: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("no screenshot: {e}"));
        let path = artifact_dir().join(format!("{file}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Ends the WebDriver session, then stops chromedriver and removes the
    /// profile.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        drop(self);
    }
}
