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
///   1 segment up to 160 units, otherwise segments of 153 units.
/// - UCS-2 otherwise, counting UTF-16 code units (an emoji is 2);
///   1 segment up to 70 units, otherwise segments of 67 units.
/// - An empty text is GSM-7, 0 units, 1 segment.
///
/// # Where a segment ends
///
/// A text longer than one segment is packed in order, and a segment never
/// ends in the middle of a character: a GSM-7 extension character (escape +
/// character, 2 septets) or a UTF-16 surrogate pair (an emoji, `𠮷`: 2
/// units) that would straddle the boundary goes whole to the next segment,
/// leaving the last unit of the segment empty. So a long text can cost one
/// segment more than `ceil(units / 153)` or `ceil(units / 67)`, and that is
/// what carriers bill.
///
/// Twilio's segment calculator goes one step further and never splits a
/// grapheme cluster of several code points either: an emoji ZWJ sequence
/// such as `👨‍👩‍👧`, a flag, a skin-tone or keycap emoji, a letter with a
/// combining mark. `sms_info` does not: that needs the Unicode segmentation
/// tables, whose rules change from one Unicode version to the next, and a
/// carrier that splits by code point does not follow them. When such a
/// cluster straddles a boundary of a text longer than one segment,
/// `sms_info` can count fewer segments than Twilio does, never more; the
/// npm package `split-sms` counts as `sms_info` does. Texts of Japanese,
/// ASCII and single-code-point emoji get the same count from all three (the
/// repository's `tests/sms_segments.rs` checks 4,144 texts against both).
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
///
/// // 306 septets would fill two segments of 153 exactly, but the `€`
/// // (2 septets) at 153 does not fit in the first one's last septet.
/// let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
/// let long = sms_info(&text);
/// assert_eq!((long.units, long.segments), (306, 3));
/// ```
#[must_use]
pub fn sms_info(text: &str) -> SmsInfo {
    let gsm7 = text.chars().all(|c| gsm7_units(c).is_some());
    if gsm7 {
        // Every character has a size here (checked just above); the 2 is
        // never used.
        let sizes = text.chars().map(|c| gsm7_units(c).unwrap_or(2));
        let (units, segments) = pack(sizes, GSM7_SINGLE, GSM7_MULTI);
        SmsInfo {
            encoding: SmsEncoding::Gsm7,
            units,
            segments,
        }
    } else {
        let sizes = text.chars().map(char::len_utf16);
        let (units, segments) = pack(sizes, UCS2_SINGLE, UCS2_MULTI);
        SmsInfo {
            encoding: SmsEncoding::Ucs2,
            units,
            segments,
        }
    }
}

/// Total units and segment count of characters of `sizes` units each: one
/// segment when the total fits in `single`, else segments of `multi` units
/// filled in order, a character that does not fit starting the next one.
fn pack(sizes: impl Iterator<Item = usize> + Clone, single: usize, multi: usize) -> (usize, usize) {
    let units = sizes.clone().sum();
    if units <= single {
        return (units, 1);
    }
    let mut segments = 1;
    let mut used = 0;
    for size in sizes {
        if used + size > multi {
            segments += 1;
            used = 0;
        }
        used += size;
    }
    (units, segments)
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
    fn an_escape_pair_is_never_split() {
        // `€` as the 153rd and 154th septets: it goes whole to segment 2.
        let at =
            |before: usize, after: usize| format!("{}€{}", "a".repeat(before), "a".repeat(after));
        assert_eq!(info(&at(152, 152)), (SmsEncoding::Gsm7, 306, 3));
        // One septet earlier it fits, and 306 septets are 2 segments.
        assert_eq!(info(&at(151, 153)), (SmsEncoding::Gsm7, 306, 2));
        // Straddling the second boundary (305/306).
        assert_eq!(info(&at(305, 152)), (SmsEncoding::Gsm7, 459, 4));
        assert_eq!(info(&at(304, 153)), (SmsEncoding::Gsm7, 459, 3));
        // Up to 160 septets there is no header and no boundary inside.
        assert_eq!(info(&at(152, 6)), (SmsEncoding::Gsm7, 160, 1));
        // The empty septet is lost in each segment: 102 pairs are 204
        // septets, but only 76 fit in a segment of 153.
        assert_eq!(info(&"€".repeat(102)), (SmsEncoding::Gsm7, 204, 2));
        assert_eq!(info(&"€".repeat(153)), (SmsEncoding::Gsm7, 306, 3));
    }

    #[test]
    fn a_surrogate_pair_is_never_split() {
        let at = |before: usize, after: usize| {
            format!("{}😀{}", "あ".repeat(before), "あ".repeat(after))
        };
        assert_eq!(info(&at(66, 66)), (SmsEncoding::Ucs2, 134, 3));
        assert_eq!(info(&at(65, 67)), (SmsEncoding::Ucs2, 134, 2));
        assert_eq!(info(&at(133, 66)), (SmsEncoding::Ucs2, 201, 4));
        assert_eq!(info(&at(66, 2)), (SmsEncoding::Ucs2, 70, 1));
        assert_eq!(info(&"😀".repeat(35)), (SmsEncoding::Ucs2, 70, 1));
        // 33 emoji a segment: 67 units leave one over.
        assert_eq!(info(&"😀".repeat(67)), (SmsEncoding::Ucs2, 134, 3));
        assert_eq!(info(&"😀".repeat(66)), (SmsEncoding::Ucs2, 132, 2));
    }

    #[test]
    fn clusters_are_split_between_code_points() {
        // A family emoji (8 units, 5 code points) across the 67-unit
        // boundary: the segment ends after a whole code point, not after
        // the whole cluster (Twilio's calculator says 3 here; see
        // `sms_info`).
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let text = format!("{}{family}{}", "あ".repeat(64), "あ".repeat(62));
        assert_eq!(info(&text), (SmsEncoding::Ucs2, 134, 2));
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
