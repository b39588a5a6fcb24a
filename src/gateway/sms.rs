//! How an SMS text is encoded and how many segments it costs.
//!
//! An SMS carries 140 bytes. Text that fits the GSM 03.38 alphabet is packed
//! in 7 bits per character (160 characters); anything else switches the
//! *whole* message to UCS-2 (70 UTF-16 code units). A longer text is split
//! into concatenated segments whose header eats a few units: 153 GSM-7 units
//! or 67 UCS-2 units per segment. Providers bill per segment, and a Japanese
//! text is always UCS-2, so hosts use [`sms_info`] to keep messages short.

use serde::{Deserialize, Serialize};

/// Units in a single-segment GSM-7 message.
const GSM7_SINGLE: usize = 160;
/// Units per segment of a concatenated GSM-7 message.
const GSM7_MULTI: usize = 153;
/// Units in a single-segment UCS-2 message.
const UCS2_SINGLE: usize = 70;
/// Units per segment of a concatenated UCS-2 message.
const UCS2_MULTI: usize = 67;

/// The encoding an SMS text needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsEncoding {
    /// The GSM 03.38 7-bit default alphabet (with its extension table).
    Gsm7,
    /// UCS-2 (UTF-16): any character outside the GSM alphabet forces it.
    Ucs2,
}

/// The encoding, size and segment count of an SMS text (see [`sms_info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SmsInfo {
    /// The encoding the whole text needs.
    pub encoding: SmsEncoding,
    /// Size in encoding units: GSM-7 septets (2 for an extension-table
    /// character) or UTF-16 code units.
    pub units: usize,
    /// Number of SMS segments the text is sent as (at least 1).
    pub segments: usize,
}

/// How many GSM-7 septets `c` takes: 1 for the basic table, 2 for the
/// extension table (escape + character), `None` when it is not in GSM 03.38.
fn gsm7_units(c: char) -> Option<usize> {
    match c {
        // Basic table, in code point order 0x00..=0x7F (0x1B is the escape).
        '@' | '£' | '$' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | '\n' | 'Ø' | 'ø' | '\r'
        | 'Å' | 'å' => Some(1),
        'Δ' | '_' | 'Φ' | 'Γ' | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' => {
            Some(1)
        }
        ' ' | '!' | '"' | '#' | '¤' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-'
        | '.' | '/' => Some(1),
        '0'..='9' | ':' | ';' | '<' | '=' | '>' | '?' => Some(1),
        '¡' | 'A'..='Z' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' => Some(1),
        '¿' | 'a'..='z' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => Some(1),
        // Extension table: escape + character.
        '\u{000C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        _ => None,
    }
}

/// The encoding, size in units and segment count of an SMS `text`.
///
/// - GSM-7 when every character is in the GSM 03.38 basic table (1 unit) or
///   its extension table (`^ { } \ [ ~ ] | €` and form feed, 2 units);
///   1 segment up to 160 units, otherwise `ceil(units / 153)`.
/// - UCS-2 otherwise, counting UTF-16 code units (an emoji is 2);
///   1 segment up to 70 units, otherwise `ceil(units / 67)`.
/// - An empty text is GSM-7, 0 units, 1 segment.
///
/// ```
/// use ninsho::gateway::{sms_info, SmsEncoding};
///
/// let en = sms_info("123456 is your Example code.");
/// assert_eq!((en.encoding, en.segments), (SmsEncoding::Gsm7, 1));
///
/// let ja = sms_info("Exampleの認証コード：123456");
/// assert_eq!(ja.encoding, SmsEncoding::Ucs2);
/// assert_eq!(ja.units, 20);
/// ```
#[must_use]
pub fn sms_info(text: &str) -> SmsInfo {
    let gsm7_units = text
        .chars()
        .try_fold(0usize, |sum, c| gsm7_units(c).map(|n| sum + n));
    let (encoding, units, single, multi) = match gsm7_units {
        Some(units) => (SmsEncoding::Gsm7, units, GSM7_SINGLE, GSM7_MULTI),
        None => (
            SmsEncoding::Ucs2,
            text.encode_utf16().count(),
            UCS2_SINGLE,
            UCS2_MULTI,
        ),
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(multi)
    };
    SmsInfo {
        encoding,
        units,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(text: &str) -> (SmsEncoding, usize, usize) {
        let i = sms_info(text);
        (i.encoding, i.units, i.segments)
    }

    #[test]
    fn empty_is_one_segment() {
        assert_eq!(info(""), (SmsEncoding::Gsm7, 0, 1));
    }

    #[test]
    fn ascii_boundaries() {
        let a = |n: usize| "a".repeat(n);
        assert_eq!(info(&a(160)), (SmsEncoding::Gsm7, 160, 1));
        assert_eq!(info(&a(161)), (SmsEncoding::Gsm7, 161, 2));
        assert_eq!(info(&a(306)), (SmsEncoding::Gsm7, 306, 2));
        assert_eq!(info(&a(307)), (SmsEncoding::Gsm7, 307, 3));
    }

    #[test]
    fn japanese_boundaries() {
        let j = |n: usize| "認".repeat(n);
        assert_eq!(info(&j(70)), (SmsEncoding::Ucs2, 70, 1));
        assert_eq!(info(&j(71)), (SmsEncoding::Ucs2, 71, 2));
        assert_eq!(info(&j(134)), (SmsEncoding::Ucs2, 134, 2));
        assert_eq!(info(&j(135)), (SmsEncoding::Ucs2, 135, 3));
    }

    #[test]
    fn one_foreign_character_switches_the_whole_text() {
        let text = format!("{}あ", "a".repeat(69));
        assert_eq!(info(&text), (SmsEncoding::Ucs2, 70, 1));
        let text = format!("{}あ", "a".repeat(70));
        assert_eq!(info(&text), (SmsEncoding::Ucs2, 71, 2));
    }

    #[test]
    fn extension_characters_count_two() {
        for c in ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{000C}'] {
            assert_eq!(info(&c.to_string()), (SmsEncoding::Gsm7, 2, 1), "{c:?}");
        }
        assert_eq!(info(&"€".repeat(80)), (SmsEncoding::Gsm7, 160, 1));
        assert_eq!(info(&"€".repeat(81)), (SmsEncoding::Gsm7, 162, 2));
        assert_eq!(info("a{b}"), (SmsEncoding::Gsm7, 6, 1));
    }

    #[test]
    fn whole_basic_table_is_gsm7() {
        let basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                     ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
        // 128 code points minus the escape (0x1B).
        assert_eq!(basic.chars().count(), 127);
        assert_eq!(info(basic), (SmsEncoding::Gsm7, 127, 1));
    }

    #[test]
    fn lookalikes_outside_the_alphabet_force_ucs2() {
        // Not in GSM 03.38: lower-case ç, á, backtick, curly quotes,
        // full-width digits, tab, the escape character itself, emoji.
        for c in [
            'ç', 'á', '`', '\u{2019}', '\u{201C}', '１', '\t', '\u{1B}', 'ê',
        ] {
            assert_eq!(info(&c.to_string()).0, SmsEncoding::Ucs2, "{c:?}");
        }
        assert_eq!(info("😀"), (SmsEncoding::Ucs2, 2, 1));
    }
}
