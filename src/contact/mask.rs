//! Masking: the forms of a contact that are safe to show on screen and to
//! write to logs.
//!
//! Phone numbers keep the country code and the last four digits, grouped
//! `rest-4-4` from the right: `+81 **-****-5678` (international) or
//! `***-****-5678` (national, with the trunk prefix). For Japanese mobile
//! and Tokyo/Osaka numbers this is exactly libphonenumber's grouping with
//! the digits hidden; for other numbers the grouping is generic. The exact
//! libphonenumber formatting costs several microseconds per call (it walks
//! the country's format patterns through a shared regex cache), while this
//! path needs one hash lookup for the country code, and masked forms are
//! made on every code issued.
//!
//! Email addresses keep the first two characters of the local part (one if
//! it is that short) and the whole domain: `ta*********@example.com`.

use phonenumber::metadata::{DATABASE, Metadata};

/// National significant numbers at least this long show their last four
/// digits; shorter ones show fewer, so at least four digits stay hidden.
const FULL_TAIL_FROM: usize = 8;

/// `+819012345678` → `("81", "9012345678")`: splits an E.164 string into
/// its country calling code and national significant number, using the
/// codes libphonenumber knows (they are prefix-free, so the first hit is the
/// only one). `None` if the string is not `+` and digits with a known code.
pub(crate) fn split_e164(e164: &str) -> Option<(&str, &str)> {
    let digits = e164.strip_prefix('+')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    (1..=3.min(digits.len().saturating_sub(1))).find_map(|len| {
        let (cc, nsn) = digits.split_at(len);
        let code: u16 = cc.parse().ok()?;
        metadata_for(code).map(|_| (cc, nsn))
    })
}

/// The main metadata for a country calling code.
fn metadata_for(code: u16) -> Option<&'static Metadata> {
    let all = DATABASE.by_code(&code)?;
    all.iter()
        .find(|m| m.is_main_country_for_code())
        .or_else(|| all.first())
        .copied()
}

/// How many trailing digits of a national number of `len` digits are shown.
fn visible_tail(len: usize) -> usize {
    if len >= FULL_TAIL_FROM {
        4
    } else {
        len.saturating_sub(4)
    }
}

/// `+819012345678` → `+81 **-****-5678`.
pub(crate) fn mask_phone(e164: &str) -> String {
    match split_e164(e164) {
        Some((cc, nsn)) => {
            let masked = mask_digits(nsn, visible_tail(nsn.len()));
            format!("+{cc} {}", group(&masked))
        }
        None => mask_opaque(e164),
    }
}

/// `+819012345678` → `***-****-5678`: the national form (trunk prefix, if
/// the country has one, then the national number).
pub(crate) fn mask_phone_national(e164: &str) -> String {
    let Some((cc, nsn)) = split_e164(e164) else {
        return mask_opaque(e164);
    };
    let prefix = cc
        .parse::<u16>()
        .ok()
        .and_then(metadata_for)
        .and_then(Metadata::national_prefix)
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("");
    let national = format!("{prefix}{nsn}");
    group(&mask_digits(&national, visible_tail(nsn.len())))
}

/// Every character but the last `visible` replaced by `*`.
fn mask_digits(digits: &str, visible: usize) -> String {
    let count = digits.chars().count();
    let hidden = count.saturating_sub(visible);
    digits
        .chars()
        .enumerate()
        .map(|(i, c)| if i < hidden { '*' } else { c })
        .collect()
}

/// Groups `rest-4-4` from the right: `**********` → `**-****-****`.
fn group(masked: &str) -> String {
    let chars: Vec<char> = masked.chars().collect();
    let tail_start = chars.len().saturating_sub(4);
    let mid_start = tail_start.saturating_sub(4);
    let mut out = String::with_capacity(chars.len() + 2);
    for part in [
        &chars[..mid_start],
        &chars[mid_start..tail_start],
        &chars[tail_start..],
    ] {
        if part.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.extend(part.iter());
    }
    out
}

/// A stored address that is not a well-formed E.164 number (only possible
/// through deserialisation of foreign data): hide all but a short tail.
fn mask_opaque(address: &str) -> String {
    let count = address.chars().count();
    mask_digits(address, visible_tail(count))
}

/// `taro.yamada@example.com` → `ta*********@example.com`.
pub(crate) fn mask_email(address: &str) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let shown = if local.chars().count() > 2 { 2 } else { 1 };
    let head: String = local.chars().take(shown).collect();
    let hidden = local.chars().count().saturating_sub(shown).max(1);
    format!("{head}{}@{domain}", "*".repeat(hidden))
}

/// An address whose kind is not known (a gateway message's recipient, a
/// claim key), masked by its shape: with an `@` as an email address,
/// otherwise as a phone number (anything not E.164 keeps only a short tail).
pub(crate) fn mask_address(address: &str) -> String {
    if address.contains('@') {
        mask_email(address)
    } else {
        mask_phone(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_country_codes() {
        assert_eq!(split_e164("+819012345678"), Some(("81", "9012345678")));
        assert_eq!(split_e164("+14155552671"), Some(("1", "4155552671")));
        assert_eq!(split_e164("+8613800138000"), Some(("86", "13800138000")));
        assert_eq!(split_e164("+88161234567"), Some(("881", "61234567")));
        for bad in [
            "",
            "+",
            "+8",
            "819012345678",
            "+81 90",
            "+999123456",
            "+８１",
        ] {
            assert_eq!(split_e164(bad), None, "{bad}");
        }
    }

    #[test]
    fn phone_masks() {
        let cases = [
            ("+819012345678", "+81 **-****-5678", "***-****-5678"),
            ("+81312345678", "+81 *-****-5678", "**-****-5678"),
            ("+81120123456", "+81 *-****-3456", "**-****-3456"),
            ("+14155552671", "+1 **-****-2671", "***-****-2671"),
            ("+8613800138000", "+86 ***-****-8000", "****-****-8000"),
            ("+447911123456", "+44 **-****-3456", "***-****-3456"),
            // Short national numbers keep at least four digits hidden.
            ("+3545512345", "+354 ***-*345", "***-*345"),
            ("+6834002", "+683 ****", "****"),
        ];
        for (e164, intl, national) in cases {
            assert_eq!(mask_phone(e164), intl, "{e164}");
            assert_eq!(mask_phone_national(e164), national, "{e164}");
        }
    }

    #[test]
    fn opaque_addresses_never_panic_and_stay_hidden() {
        assert_eq!(mask_phone("+éé9012345678"), "*********5678");
        assert_eq!(mask_phone(""), "");
        assert_eq!(mask_phone_national("é"), "*");
        assert!(!mask_phone("nonsense-9012345678").contains("901234"));
    }

    #[test]
    fn addresses_are_masked_by_shape() {
        assert_eq!(mask_address("+819012345678"), "+81 **-****-5678");
        assert_eq!(
            mask_address("taro.yamada@example.com"),
            "ta*********@example.com"
        );
        // Not E.164: only a short tail shows.
        assert_eq!(mask_address("09012345678"), "*******5678");
        assert_eq!(mask_address(""), "");
    }

    #[test]
    fn email_masks() {
        assert_eq!(
            mask_email("taro.yamada@example.com"),
            "ta*********@example.com"
        );
        assert_eq!(mask_email("ab@b.jp"), "a*@b.jp");
        assert_eq!(mask_email("a@b.jp"), "a*@b.jp");
    }
}
