//! Checks the browser harness itself, against a two-page site served from
//! this test: forms are filled and submitted, screenshots are PNG files,
//! and chromedriver, Chromium and the profile directory are gone after the
//! test, also when it panicked half-way.

#[path = "support/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use browser::Browser;

/// Serves `/` (a form) and `/hello` (its answer) until the test ends.
fn serve_site() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the test site");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let page = if request_line.starts_with("POST /hello") {
                let body = String::from_utf8_lossy(&body);
                let who = body.strip_prefix("who=").unwrap_or("nobody");
                format!("<h1 id=\"done\">Hello, {who}</h1>")
            } else {
                "<form id=\"greet\" method=\"post\" action=\"/hello\">\
                 <input name=\"who\"><button type=\"submit\">Go</button></form>"
                    .to_owned()
            };
            let page = format!("<!doctype html><title>harness</title>{page}");
            let mut stream = &stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    format!("http://{addr}")
}

/// Whether a live (not zombie) process is left in the process group `pgid`.
fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split
        // after its closing parenthesis.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

/// Polls until the group is gone (a killed process takes a moment to die).
fn gone_soon(pgid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !group_alive(pgid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_and_submits_a_form_and_saves_a_png() {
    let site = serve_site();
    let Some(browser) = Browser::launch("harness-form").await else {
        return;
    };
    let pgid = browser.driver_pid();
    let profile = browser.profile_dir().to_path_buf();
    assert!(group_alive(pgid), "chromedriver should be running");

    browser.goto(&format!("{site}/")).await;
    browser.fill("greet", "who", "ninsho").await;
    browser.submit("greet").await;
    assert_eq!(browser.text("h1#done").await, "Hello, ninsho");
    assert!(!browser.has("form#greet").await);

    let shot = browser.screenshot("harness-form").await;
    let png = std::fs::read(&shot).expect("the screenshot file");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {}",
        shot.display()
    );
    assert!(shot.starts_with(browser::artifact_dir()));

    browser.close().await;
    assert!(
        gone_soon(pgid),
        "chromedriver or Chromium outlived the test"
    );
    assert!(!profile.exists(), "the profile directory was left behind");
}

#[test]
fn a_panicking_test_still_stops_the_browser() {
    let site = serve_site();
    let seen: Arc<Mutex<Option<(u32, PathBuf)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let Some(browser) = Browser::launch("harness-panic").await else {
                return;
            };
            browser.goto(&format!("{site}/")).await;
            *record.lock().expect("not poisoned") =
                Some((browser.driver_pid(), browser.profile_dir().to_path_buf()));
            panic!("a journey step failed");
        })
    })
    .join();
    let Some((pgid, profile)) = seen.lock().expect("not poisoned").take() else {
        // No browser: a skip outside CI, a failure under it.
        assert!(
            !browser::in_ci(),
            "CI=true and the browser never started: {outcome:?}"
        );
        return;
    };
    assert!(outcome.is_err(), "the journey should have panicked");
    assert!(
        gone_soon(pgid),
        "chromedriver or Chromium outlived a failed test"
    );
    assert!(!profile.exists(), "the profile directory was left behind");
}
