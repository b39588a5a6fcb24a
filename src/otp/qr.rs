//! QR codes of key URIs, for enrolling an authenticator app (feature `qr`).
//!
//! The `qrcode` crate encodes; ninsho draws the two forms itself, so the
//! encoder needs none of its image support: an SVG for web pages and
//! Unicode half blocks for a terminal. Both contain the seed, so both are
//! [`SecretString`]s.

use std::fmt::Write as _;

use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// The light margin around the code, in modules: the 4 the QR standard
/// asks for, which scanners need to find the code's edge.
const QUIET_ZONE: usize = 4;

/// Pixels per module in the SVG's default size (a version-8 code, the
/// usual size of a key URI, is then 228 pixels wide).
const SVG_MODULE_PX: usize = 4;

/// Why a key URI can't be drawn as a QR code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The URI is longer than the largest QR code holds at error
    /// correction level M ([`MAX_QR_URI_LEN`] bytes). A key URI of
    /// ninsho's own is a few hundred bytes at most unless the issuer or
    /// account name is very long; show a shorter label, or the manual key.
    #[error("the key URI is {len} bytes; a QR code holds at most {max}")]
    TooLong {
        /// The URI's length in bytes.
        len: usize,
        /// The most a QR code holds ([`MAX_QR_URI_LEN`]).
        max: usize,
    },
}

/// The longest key URI, in bytes, that fits a QR code: the byte-mode
/// capacity of the largest code (version 40) at error correction level M,
/// which ninsho uses (it survives 15% damage: glare on a screen, a smudge
/// on a printout).
pub const MAX_QR_URI_LEN: usize = 2331;

/// The modules of a URI's QR code, quiet zone included: `true` is dark.
/// Wiped on drop, since they spell out the seed.
struct Modules {
    /// Modules per side, quiet zone included.
    side: usize,
    dark: Zeroizing<Vec<bool>>,
}

impl Modules {
    /// Encodes `uri` at error correction level M.
    fn of(uri: &str) -> Result<Self, QrError> {
        let too_long = QrError::TooLong {
            len: uri.len(),
            max: MAX_QR_URI_LEN,
        };
        // Up to MAX_QR_URI_LEN bytes always fit (byte mode is the encoder's
        // worst case), so the encoder's only possible failure beyond it is
        // "data too long" too.
        if uri.len() > MAX_QR_URI_LEN {
            return Err(too_long);
        }
        let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
            .map_err(|_| too_long)?;
        let width = code.width();
        let colors = code.to_colors();
        let side = width + 2 * QUIET_ZONE;
        let mut dark = Zeroizing::new(vec![false; side * side]);
        for (i, color) in colors.iter().enumerate() {
            let (x, y) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            if let Some(module) = dark.get_mut(y * side + x) {
                *module = *color == Color::Dark;
            }
        }
        Ok(Self { side, dark })
    }

    /// Whether the module at column `x`, row `y` is dark; outside the code
    /// everything is light.
    fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.side && self.dark.get(y * self.side + x).copied().unwrap_or(false)
    }
}

/// `uri` as a complete SVG document: black modules on a white square,
/// with the quiet zone, one unit of the `viewBox` per module.
pub(crate) fn svg(uri: &str) -> Result<SecretString, QrError> {
    let m = Modules::of(uri)?;
    let n = m.side;
    let px = n * SVG_MODULE_PX;
    // Room for the most runs a row can have, so the buffer never grows (a
    // grown buffer would leave an unwiped copy behind).
    let mut out = Zeroizing::new(String::with_capacity(n * (n / 2 + 1) * 24 + 256));
    // Writing to a String can't fail.
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {n} {n}\" \
         width=\"{px}\" height=\"{px}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{n}\" height=\"{n}\" fill=\"#fff\"/><path fill=\"#000\" d=\""
    );
    for y in 0..n {
        let mut x = 0;
        while x < n {
            if !m.is_dark(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < n && m.is_dark(x, y) {
                x += 1;
            }
            let run = x - start;
            let _ = write!(out, "M{start} {y}h{run}v1h-{run}z");
        }
    }
    out.push_str("\"/></svg>");
    Ok(SecretString::new(std::mem::take(&mut *out)))
}

/// Sets black on white (colours 16 and 231 of the 256-colour palette,
/// which terminal themes leave alone).
const BLACK_ON_WHITE: &str = "\x1b[38;5;16;48;5;231m";
/// Back to the terminal's own colours.
const RESET: &str = "\x1b[0m";

/// `uri` drawn in Unicode half blocks, two rows of modules per line, black
/// on white whatever the terminal's theme, with the quiet zone.
pub(crate) fn terminal(uri: &str) -> Result<SecretString, QrError> {
    let m = Modules::of(uri)?;
    let n = m.side;
    // Three bytes per half block, plus the colours: the buffer never grows.
    let mut out = Zeroizing::new(String::with_capacity((n * 3 + 32) * n.div_ceil(2)));
    for y in (0..n).step_by(2) {
        out.push_str(BLACK_ON_WHITE);
        for x in 0..n {
            out.push(match (m.is_dark(x, y), m.is_dark(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push_str(RESET);
        out.push('\n');
    }
    Ok(SecretString::new(std::mem::take(&mut *out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_uri_fits_and_one_byte_more_does_not() {
        let longest = format!("otpauth://totp/{}", "a".repeat(MAX_QR_URI_LEN - 15));
        assert_eq!(longest.len(), MAX_QR_URI_LEN);
        // Lowercase letters force byte mode, the encoder's worst case.
        assert!(Modules::of(&longest).is_ok());
        let over = format!("{longest}a");
        assert_eq!(
            Modules::of(&over).err(),
            Some(QrError::TooLong {
                len: MAX_QR_URI_LEN + 1,
                max: MAX_QR_URI_LEN
            })
        );
    }
}
