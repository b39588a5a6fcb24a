//! Email address syntax: a deliberately conservative subset of RFC 5321.
//!
//! Accepted: `local@domain` where
//!
//! - the local part is 1 to 64 bytes of printable ASCII other than
//!   `@ " ( ) , : ; < > [ \ ]` and spaces, not starting or ending with a
//!   dot, without two dots in a row (so no quoted local parts such as
//!   `"taro yamada"@example.com`, which real sign-up forms do not need);
//! - the domain is a host name of at least two labels, each 1 to 63 ASCII
//!   letters, digits or hyphens, not starting or ending with a hyphen, 253
//!   bytes at most, with a top-level label that is not all digits (so no IP
//!   literals). Internationalised domains must be given in their punycode
//!   (`xn--`) form: ninsho does not carry IDNA tables, and the ASCII form is
//!   what mail servers are addressed by;
//! - the whole address is 254 bytes at most (the longest that fits an SMTP
//!   path).
//!
//! The input is trimmed; the domain is lower-cased (domains are
//! case-insensitive); the local part is kept exactly as typed (RFC 5321 lets
//! a mail server treat it case-sensitively; send limits compare it
//! case-insensitively through [`Destination::limit_key`]).
//!
//! Full-width forms (`ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ`, typed with a Japanese
//! input method left on) are refused with their own reason rather than
//! folded, so the user sees and fixes what will be stored.
//!
//! [`Destination::limit_key`]: super::Destination::limit_key

/// Why an email address was refused. Carries no part of the address, so it
/// is safe to log; [`code`](Self::code) gives a stable identifier for
/// translations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EmailRefusal {
    /// Nothing was entered.
    #[error("enter an email address")]
    Empty,
    /// Full-width characters (or an ideographic space) were typed; email
    /// addresses are written in half-width ASCII.
    #[error("email addresses are written in half-width characters")]
    FullWidth,
    /// Both parts are fine on their own, but together longer than 254
    /// bytes.
    #[error("the email address is too long")]
    TooLong,
    /// There is no `@`.
    #[error("an email address needs an @")]
    MissingAt,
    /// Nothing before the `@`.
    #[error("the part before the @ is missing")]
    MissingLocalPart,
    /// The part before the `@` is longer than 64 bytes.
    #[error("the part before the @ is too long")]
    LocalPartTooLong,
    /// The part before the `@` has a character or dot placement that is not
    /// allowed (spaces, a second `@`, quotes, `..`, non-ASCII, …).
    #[error("the part before the @ is not valid")]
    InvalidLocalPart,
    /// Nothing after the `@`.
    #[error("the domain after the @ is missing")]
    MissingDomain,
    /// The domain has non-ASCII characters: give its punycode (`xn--`) form.
    #[error("the domain has non-ASCII characters; use its xn-- form")]
    NonAsciiDomain,
    /// The domain is longer than 253 bytes.
    #[error("the domain is too long")]
    DomainTooLong,
    /// The domain is not a host name (`example.com`): no dot, an empty or
    /// over-long label, a bad character or hyphen, an all-numeric top label.
    #[error("the domain after the @ is not valid")]
    InvalidDomain,
}

impl EmailRefusal {
    /// A stable, snake_case identifier for this reason, for translations and
    /// API responses: `"missing_at"`, `"invalid_domain"`, …
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::FullWidth => "full_width",
            Self::TooLong => "too_long",
            Self::MissingAt => "missing_at",
            Self::MissingLocalPart => "missing_local_part",
            Self::LocalPartTooLong => "local_part_too_long",
            Self::InvalidLocalPart => "invalid_local_part",
            Self::MissingDomain => "missing_domain",
            Self::NonAsciiDomain => "non_ascii_domain",
            Self::DomainTooLong => "domain_too_long",
            Self::InvalidDomain => "invalid_domain",
        }
    }
}

/// The longest address that fits an SMTP forward path (RFC 5321 §4.5.3.1.3
/// minus the angle brackets).
const MAX_ADDRESS: usize = 254;
/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL: usize = 64;
/// RFC 1035 / RFC 5321 §4.5.3.1.2, without a trailing dot.
const MAX_DOMAIN: usize = 253;
/// RFC 1035 §2.3.4.
const MAX_LABEL: usize = 63;

/// Checks and normalises an email address: `" Taro@Example.COM "` →
/// `"Taro@example.com"`.
pub(crate) fn normalise(input: &str) -> Result<String, EmailRefusal> {
    let input = input.trim();
    if input.is_empty() {
        return Err(EmailRefusal::Empty);
    }
    if input.chars().any(is_full_width) {
        return Err(EmailRefusal::FullWidth);
    }
    let (local, domain) = input.rsplit_once('@').ok_or(EmailRefusal::MissingAt)?;
    check_local(local)?;
    check_domain(domain)?;
    if input.len() > MAX_ADDRESS {
        return Err(EmailRefusal::TooLong);
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

fn is_full_width(c: char) -> bool {
    matches!(c, '\u{FF01}'..='\u{FF5E}' | '\u{3000}')
}

fn check_local(local: &str) -> Result<(), EmailRefusal> {
    if local.is_empty() {
        return Err(EmailRefusal::MissingLocalPart);
    }
    if local.len() > MAX_LOCAL {
        return Err(EmailRefusal::LocalPartTooLong);
    }
    let valid = !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() && !"@\"(),:;<>[\\]".contains(c));
    if valid {
        Ok(())
    } else {
        Err(EmailRefusal::InvalidLocalPart)
    }
}

fn check_domain(domain: &str) -> Result<(), EmailRefusal> {
    if domain.is_empty() {
        return Err(EmailRefusal::MissingDomain);
    }
    if !domain.is_ascii() {
        return Err(EmailRefusal::NonAsciiDomain);
    }
    if domain.len() > MAX_DOMAIN {
        return Err(EmailRefusal::DomainTooLong);
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let top_ok = labels
        .last()
        .is_some_and(|top| !top.bytes().all(|b| b.is_ascii_digit()));
    if labels_ok && top_ok {
        Ok(())
    } else {
        Err(EmailRefusal::InvalidDomain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(
            normalise(" Taro.Yamada@Example.COM\u{3000}").unwrap(),
            "Taro.Yamada@example.com"
        );
        assert_eq!(
            normalise("user+tag@xn--wgv71a119e.jp").unwrap(),
            "user+tag@xn--wgv71a119e.jp"
        );
    }

    #[test]
    fn refusals() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_label = format!("a@{}.com", "b".repeat(64));
        let long_domain = format!("a@{}.jp", ["abcdefghi"; 26].join("."));
        let long_address = format!(
            "{}@{}.jp",
            "a".repeat(64),
            vec!["b".repeat(60); 4].join(".")
        );
        let cases: &[(&str, EmailRefusal)] = &[
            ("", EmailRefusal::Empty),
            ("  \u{3000} ", EmailRefusal::Empty),
            ("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ", EmailRefusal::FullWidth),
            ("taro＠example.com", EmailRefusal::FullWidth),
            ("taro.example.com", EmailRefusal::MissingAt),
            ("@example.com", EmailRefusal::MissingLocalPart),
            (&long_local, EmailRefusal::LocalPartTooLong),
            ("a b@example.com", EmailRefusal::InvalidLocalPart),
            ("a@b@example.com", EmailRefusal::InvalidLocalPart),
            (".a@example.com", EmailRefusal::InvalidLocalPart),
            ("a.@example.com", EmailRefusal::InvalidLocalPart),
            ("a..b@example.com", EmailRefusal::InvalidLocalPart),
            ("\"a\"@example.com", EmailRefusal::InvalidLocalPart),
            ("tarō@example.com", EmailRefusal::InvalidLocalPart),
            ("a@", EmailRefusal::MissingDomain),
            ("a@例え.jp", EmailRefusal::NonAsciiDomain),
            (&long_domain, EmailRefusal::DomainTooLong),
            (&long_address, EmailRefusal::TooLong),
            ("a@b", EmailRefusal::InvalidDomain),
            ("a@-b.jp", EmailRefusal::InvalidDomain),
            ("a@b-.jp", EmailRefusal::InvalidDomain),
            ("a@b..jp", EmailRefusal::InvalidDomain),
            ("a@.b.jp", EmailRefusal::InvalidDomain),
            ("a@b.jp.", EmailRefusal::InvalidDomain),
            ("a@b_c.jp", EmailRefusal::InvalidDomain),
            ("a@[192.168.0.1]", EmailRefusal::InvalidDomain),
            ("a@192.168.0.1", EmailRefusal::InvalidDomain),
            (&long_label, EmailRefusal::InvalidDomain),
        ];
        for (input, refusal) in cases {
            assert_eq!(normalise(input), Err(*refusal), "{input}");
        }
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            EmailRefusal::Empty,
            EmailRefusal::FullWidth,
            EmailRefusal::TooLong,
            EmailRefusal::MissingAt,
            EmailRefusal::MissingLocalPart,
            EmailRefusal::LocalPartTooLong,
            EmailRefusal::InvalidLocalPart,
            EmailRefusal::MissingDomain,
            EmailRefusal::NonAsciiDomain,
            EmailRefusal::DomainTooLong,
            EmailRefusal::InvalidDomain,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(EmailRefusal::code).collect();
        assert_eq!(codes.len(), all.len());
    }
}
