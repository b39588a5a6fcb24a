//! Contact destinations (phone numbers and email addresses) and masking.
//!
//! This module checks the *shape* of a destination: a phone number in E.164
//! form (`+` and 8 to 15 digits) or a plausible email address. Country and
//! number-type policy (mobile only, Japan only, …) builds on it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of address a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// A phone number (SMS or voice).
    Phone,
    /// An email address.
    Email,
}

/// A destination that failed the shape check. Carries no address, so it is
/// safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// Not a phone number in international form: `+`, a country code and
    /// the number, 8 to 15 digits in all.
    #[error("not an international phone number (+ then 8 to 15 digits)")]
    InvalidPhone,
    /// Not an email address.
    #[error("not a valid email address")]
    InvalidEmail,
}

/// A normalised phone number or email address that codes can be sent to.
///
/// Phone numbers keep only `+` and digits (spaces, hyphens and parentheses
/// are dropped; full-width forms are folded). Email addresses are trimmed
/// and their domain lower-cased; the local part is kept as typed.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Destination {
    kind: DestinationKind,
    address: String,
}

impl Destination {
    /// A phone number in international (E.164) form, e.g. `+81 90-1234-5678`.
    ///
    /// # Errors
    /// [`ContactError::InvalidPhone`].
    pub fn phone(input: &str) -> Result<Self, ContactError> {
        let mut address = String::with_capacity(16);
        for c in input.trim().chars() {
            let c = fold_width(c);
            match c {
                '+' if address.is_empty() => address.push('+'),
                '0'..='9' if !address.is_empty() => address.push(c),
                ' ' | '-' | '(' | ')' | '.' | '\u{2010}'..='\u{2015}' | '\u{30FC}' | '\u{3000}' => {
                }
                _ => return Err(ContactError::InvalidPhone),
            }
        }
        let digits = address.len().saturating_sub(1);
        if !(8..=15).contains(&digits) || address.as_bytes().get(1) == Some(&b'0') {
            return Err(ContactError::InvalidPhone);
        }
        Ok(Self {
            kind: DestinationKind::Phone,
            address,
        })
    }

    /// An email address, e.g. `Taro@Example.COM` (stored as `Taro@example.com`).
    ///
    /// # Errors
    /// [`ContactError::InvalidEmail`].
    pub fn email(input: &str) -> Result<Self, ContactError> {
        let input = input.trim();
        let (local, domain) = input.rsplit_once('@').ok_or(ContactError::InvalidEmail)?;
        let valid_local = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_graphic() && !"@\"(),:;<>[\\]".contains(c));
        let valid_domain = domain.len() <= 253
            && domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid_local || !valid_domain {
            return Err(ContactError::InvalidEmail);
        }
        Ok(Self {
            kind: DestinationKind::Email,
            address: format!("{local}@{}", domain.to_ascii_lowercase()),
        })
    }

    /// Phone or email.
    #[must_use]
    pub fn kind(&self) -> DestinationKind {
        self.kind
    }

    /// The normalised address.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The form send limits count by: the address, with an email address
    /// wholly lower-cased so `Taro@` and `taro@` share one limit.
    #[must_use]
    pub fn limit_key(&self) -> String {
        match self.kind {
            DestinationKind::Phone => self.address.clone(),
            DestinationKind::Email => self.address.to_lowercase(),
        }
    }

    /// The address with most of it hidden, to show on screen:
    /// `+81 ******-5678` or `ta*******@example.com`.
    #[must_use]
    pub fn masked(&self) -> String {
        match self.kind {
            DestinationKind::Phone => mask_phone(&self.address),
            DestinationKind::Email => mask_email(&self.address),
        }
    }

    /// What a user types to prove they know the full contact before a code
    /// is sent to it (Microsoft's check): the last four digits of a phone,
    /// the whole email address (case-insensitive domain).
    pub(crate) fn confirmation_form(&self, typed: &str) -> Option<(String, String)> {
        match self.kind {
            DestinationKind::Phone => {
                let digits: String = typed
                    .chars()
                    .map(fold_width)
                    .filter(char::is_ascii_digit)
                    .collect();
                let last4 = self.address.get(self.address.len().saturating_sub(4)..)?;
                Some((digits, last4.to_owned()))
            }
            DestinationKind::Email => {
                let typed = Self::email(typed).ok()?;
                Some((typed.address.to_lowercase(), self.address.to_lowercase()))
            }
        }
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Contact details are personal data: logs get the masked form.
        f.debug_struct("Destination")
            .field("kind", &self.kind)
            .field("address", &self.masked())
            .finish()
    }
}

/// Folds full-width ASCII forms (`０`–`９`, `＋`, `－`, `（`, `）`) to ASCII.
fn fold_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// `+819012345678` → `+81 ******-5678`: the country code for context and
/// the last four digits the user recognises.
fn mask_phone(e164: &str) -> String {
    let digits = e164.trim_start_matches('+');
    // Country codes are one to three digits; show only the first two at
    // most, which never reveals subscriber digits of an 8-digit minimum.
    let cc_len = if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else {
        2
    };
    let (cc, rest) = digits.split_at(cc_len.min(digits.len()));
    let (hidden, last) = rest.split_at(rest.len().saturating_sub(4));
    format!("+{cc} {}-{last}", "*".repeat(hidden.len()))
}

/// `taro.yamada@example.com` → `ta*********@example.com`.
fn mask_email(address: &str) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let shown = if local.chars().count() > 2 { 2 } else { 1 };
    let head: String = local.chars().take(shown).collect();
    let hidden = local.chars().count().saturating_sub(shown).max(1);
    format!("{head}{}@{domain}", "*".repeat(hidden))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        let p = Destination::phone("＋８１ 90-1234-5678").unwrap();
        assert_eq!(p.address(), "+819012345678");
        assert_eq!(p.masked(), "+81 ******-5678");
        assert_eq!(
            Destination::phone("+1 (415) 555-2671").unwrap().masked(),
            "+1 ******-2671"
        );
        for bad in [
            "09012345678",
            "+81",
            "+8190a",
            "+0123456789",
            "+1234567890123456",
            "",
            "++8190",
        ] {
            assert_eq!(
                Destination::phone(bad).unwrap_err(),
                ContactError::InvalidPhone,
                "{bad}"
            );
        }
    }

    #[test]
    fn emails() {
        let e = Destination::email(" Taro.Yamada@Example.COM ").unwrap();
        assert_eq!(e.address(), "Taro.Yamada@example.com");
        assert_eq!(e.masked(), "Ta*********@example.com");
        assert_eq!(Destination::email("a@b.jp").unwrap().masked(), "a*@b.jp");
        for bad in [
            "",
            "a",
            "a@",
            "@b.jp",
            "a@b",
            "a b@c.jp",
            "a@-b.jp",
            "a..b@c.jp",
            "a@b..jp",
        ] {
            assert_eq!(
                Destination::email(bad).unwrap_err(),
                ContactError::InvalidEmail,
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_is_masked() {
        let p = Destination::phone("+819012345678").unwrap();
        assert!(!format!("{p:?}").contains("9012345678"));
    }

    #[test]
    fn confirmation_forms() {
        let p = Destination::phone("+819012345678").unwrap();
        assert_eq!(
            p.confirmation_form("５６７８"),
            Some(("5678".into(), "5678".into()))
        );
        let e = Destination::email("taro@example.com").unwrap();
        assert_eq!(
            e.confirmation_form("Taro@EXAMPLE.com"),
            Some(("taro@example.com".into(), "taro@example.com".into()))
        );
        assert_eq!(e.confirmation_form("nope"), None);
    }
}
