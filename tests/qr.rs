//! The QR codes of the `qr` feature read back as exactly the key URI
//! (issue 14): what is checked is what was *drawn*. The SVG's path and the
//! terminal's half blocks are parsed back into modules, painted into a
//! greyscale image on a dark surround (a dark-mode page, a dark terminal
//! theme: only the drawing's own quiet zone separates the code from it),
//! and decoded with `rqrr`.
//!
//! Covered: Japanese issuer and account (percent-encoded in the URI), a
//! long account, enrolments through `TwoFactor::authenticator_start` and
//! `TotpEnrollment::start` with many seeds, and the typed error for a URI
//! no QR code holds.

#![cfg(feature = "qr")]

use std::sync::Arc;

use ninsho::gateway::RecordingGateway;
use ninsho::otp::{MAX_QR_URI_LEN, QrError, TotpEnrollment};
use ninsho::prelude::*;
use ninsho::store::MemoryStore;
use ninsho::{LockedRng, OsRandom, SecretString};

/// Pixels per module in the decoded image.
const SCALE: usize = 4;
/// The dark surround, in modules, on every side.
const SURROUND: usize = 6;

/// Modules read back from a drawing: `dark[y][x]`.
type Grid = Vec<Vec<bool>>;

/// Paints `grid` (rows may be one longer than the code: the terminal's
/// last half line) on a dark surround and decodes it; the one code found.
fn decode(grid: &Grid) -> Result<String, String> {
    let h = grid.len();
    let w = grid.first().map_or(0, Vec::len);
    let (pw, ph) = ((w + 2 * SURROUND) * SCALE, (h + 2 * SURROUND) * SCALE);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(pw, ph, |px, py| {
        let (x, y) = (
            (px / SCALE).checked_sub(SURROUND),
            (py / SCALE).checked_sub(SURROUND),
        );
        match (x, y) {
            (Some(x), Some(y)) if x < w && y < h => {
                if grid[y][x] {
                    0
                } else {
                    255
                }
            }
            _ => 20, // the surround: a dark page or terminal
        }
    });
    let grids = image.detect_grids();
    if grids.len() != 1 {
        return Err(format!("{} codes found", grids.len()));
    }
    grids[0]
        .decode()
        .map(|(_, text)| text)
        .map_err(|e| e.to_string())
}

/// The modules an SVG of `qr_svg` draws, after checking it is a
/// self-contained black-on-white document whose size follows its viewBox.
fn svg_modules(svg: &str) -> Grid {
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" "),
        "{svg:.80}"
    );
    assert!(svg.ends_with("</svg>"));
    assert!(!svg.contains("href") && !svg.contains("url(") && !svg.contains("<image"));
    let n: usize = between(svg, "viewBox=\"0 0 ", " ").parse().unwrap();
    assert!(svg.contains(&format!("viewBox=\"0 0 {n} {n}\"")));
    assert!(svg.contains(&format!("width=\"{}\" height=\"{}\"", 4 * n, 4 * n)));
    assert!(svg.contains(&format!(
        "<rect width=\"{n}\" height=\"{n}\" fill=\"#fff\"/>"
    )));
    let path = between(svg, "<path fill=\"#000\" d=\"", "\"");
    let mut grid = vec![vec![false; n]; n];
    for run in path.split('M').skip(1) {
        // M{x} {y}h{len}v1h-{len}z
        let (x, rest) = run.split_once(' ').unwrap();
        let (y, rest) = rest.split_once('h').unwrap();
        let (len, rest) = rest.split_once("v1h-").unwrap();
        assert_eq!(rest, format!("{len}z"));
        let (x, y, len): (usize, usize, usize) =
            (x.parse().unwrap(), y.parse().unwrap(), len.parse().unwrap());
        for module in &mut grid[y][x..x + len] {
            assert!(!*module, "runs overlap");
            *module = true;
        }
    }
    grid
}

/// The modules a `qr_terminal` drawing shows, after checking every line
/// sets black on white and resets after itself.
fn terminal_modules(text: &str) -> Grid {
    const BLACK_ON_WHITE: &str = "\x1b[38;5;16;48;5;231m";
    const RESET: &str = "\x1b[0m";
    assert!(text.ends_with('\n'));
    let mut grid = Vec::new();
    for line in text.lines() {
        let blocks = line
            .strip_prefix(BLACK_ON_WHITE)
            .and_then(|l| l.strip_suffix(RESET))
            .unwrap_or_else(|| panic!("a line without its colours: {line:?}"));
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in blocks.chars() {
            let (t, b) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected {other:?}"),
            };
            top.push(t);
            bottom.push(b);
        }
        grid.push(top);
        grid.push(bottom);
    }
    let w = grid[0].len();
    assert!(grid.iter().all(|row| row.len() == w), "ragged lines");
    grid
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s.find(start).unwrap() + start.len();
    let len = s[from..].find(end).unwrap();
    &s[from..from + len]
}

/// The four light modules the standard asks for around the code.
fn assert_quiet_zone(grid: &Grid) {
    let (h, w) = (grid.len(), grid[0].len());
    for (y, row) in grid.iter().enumerate() {
        for (x, &dark) in row.iter().enumerate() {
            let edge = x < 4 || y < 4 || x >= w - 4 || y >= h - 4;
            assert!(
                !(edge && dark),
                "dark module at ({x}, {y}) in the quiet zone"
            );
        }
    }
    // Inside it, the finder pattern's corner.
    assert!(grid[4][4] && grid[4][w - 5]);
}

/// Both drawings of `uri` decode to exactly `uri`.
fn assert_both_read_back(uri: &str, svg: &SecretString, terminal: &SecretString) {
    let svg = svg_modules(svg.expose_secret());
    assert_quiet_zone(&svg);
    assert_eq!(decode(&svg).as_deref(), Ok(uri), "the SVG");
    let term = terminal_modules(terminal.expose_secret());
    // The terminal's last line draws a light half below the code.
    assert_eq!(term.len(), svg.len() + 1);
    assert_eq!(&term[..svg.len()], &svg[..], "the same modules as the SVG");
    assert_eq!(decode(&term).as_deref(), Ok(uri), "the terminal drawing");
}

fn enrolment_reads_back(e: &TotpEnrollment) {
    let uri = e.uri();
    assert_both_read_back(
        uri.expose_secret(),
        &e.qr_svg().unwrap(),
        &e.qr_terminal().unwrap(),
    );
}

fn service(seed: u64) -> TwoFactor {
    TwoFactor::builder(
        "Example",
        Arc::new(MemoryStore::new()),
        Arc::new(RecordingGateway::new()),
        KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32]).unwrap()),
        Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[8; 32]).unwrap())),
    )
    .rng(Arc::new(LockedRng::seeded(seed)))
    .build()
    .unwrap()
}

#[tokio::test]
async fn setups_from_the_service_read_back_as_their_uri() {
    for seed in 0..8 {
        let setup = service(seed)
            .authenticator_start(&AccountId::new("taro"), "taro@example.com", None)
            .await
            .unwrap();
        let uri = setup.uri.expose_secret();
        assert!(uri.starts_with("otpauth://totp/Example:taro%40example.com?secret="));
        assert_both_read_back(uri, &setup.qr_svg().unwrap(), &setup.qr_terminal().unwrap());
    }
}

#[test]
fn fresh_random_enrolments_read_back() {
    for _ in 0..16 {
        enrolment_reads_back(&TotpEnrollment::start(&OsRandom, "Example", "alice").unwrap());
    }
}

#[test]
fn japanese_names_read_back_percent_encoded() {
    let e =
        TotpEnrollment::start(&LockedRng::seeded(3), "認証サービス", "山田太郎@例え.jp").unwrap();
    let uri = e.uri();
    assert!(
        uri.expose_secret()
            .starts_with("otpauth://totp/%E8%AA%8D%E8%A8%BC"),
        "{}",
        uri.expose_secret()
    );
    enrolment_reads_back(&e);
}

#[test]
fn long_accounts_read_back_in_larger_codes() {
    for len in [64, 300, 2_000] {
        let account = format!("{}@example.com", "a".repeat(len));
        let e = TotpEnrollment::start(&LockedRng::seeded(len as u64), "Example", &account).unwrap();
        enrolment_reads_back(&e);
    }
}

#[test]
fn a_uri_no_qr_code_holds_is_a_typed_error() {
    // 2,000 characters of Japanese are 18,000 bytes percent-encoded.
    let account = "太".repeat(2_000);
    let e = TotpEnrollment::start(&LockedRng::seeded(1), "Example", &account).unwrap();
    let len = e.uri().expose_secret().len();
    let too_long = QrError::TooLong {
        len,
        max: MAX_QR_URI_LEN,
    };
    assert_eq!(e.qr_svg().err(), Some(too_long));
    assert_eq!(e.qr_terminal().err(), Some(too_long));
    // The error says how long, not what: no seed in it.
    let said = too_long.to_string();
    assert!(
        !said.contains("otpauth") && !said.contains("secret"),
        "{said}"
    );
    // The manual key still works for that user.
    assert!(!e.manual_entry_key().expose_secret().is_empty());
}

#[tokio::test]
async fn the_service_reports_too_long_too() {
    let setup = service(1)
        .authenticator_start(&AccountId::new("taro"), &"太".repeat(2_000), None)
        .await
        .unwrap();
    assert!(matches!(setup.qr_svg(), Err(QrError::TooLong { .. })));
    assert!(matches!(setup.qr_terminal(), Err(QrError::TooLong { .. })));
}

#[test]
fn drawings_are_redacted_in_debug() {
    let e = TotpEnrollment::start(&LockedRng::seeded(5), "Example", "alice").unwrap();
    assert_eq!(
        format!("{:?}", e.qr_svg().unwrap()),
        "SecretString([redacted])"
    );
    assert_eq!(
        format!("{:?}", e.qr_terminal().unwrap()),
        "SecretString([redacted])"
    );
}
