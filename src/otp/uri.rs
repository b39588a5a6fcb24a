//! `otpauth://` key URIs (the format authenticator apps scan as QR codes).
//!
//! `otpauth://TYPE/[ISSUER:]ACCOUNT?secret=…&issuer=…&algorithm=…&digits=…&period=…|counter=…`
//!
//! Parameters other apps define (`image`, `color`, …) are ignored, except
//! `encoder`: it changes what the codes are, so a URI with one is refused
//! ([`UriError::UnsupportedEncoder`]).

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::{Algorithm, OtpError, OtpSecret};

/// A malformed key URI. Each variant names the part that is wrong; none
/// carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The URI does not start with `otpauth://`.
    #[error("not an otpauth:// URI")]
    Scheme,
    /// The type is neither `totp` nor `hotp`.
    #[error("the URI type must be totp or hotp")]
    UnknownType,
    /// The type is valid but not the one asked for (`Totp::from_uri` given
    /// an `hotp` URI, or the reverse).
    #[error("expected an otpauth://{expected}/ URI")]
    WrongType {
        /// The type that was expected.
        expected: &'static str,
    },
    /// The label (issuer and account) is missing or malformed.
    #[error("the label is malformed: {reason}")]
    Label {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A required parameter is absent.
    #[error("the `{0}` parameter is required")]
    MissingParameter(&'static str),
    /// A parameter appears more than once.
    #[error("the `{0}` parameter appears more than once")]
    DuplicateParameter(&'static str),
    /// A parameter's value is invalid.
    #[error("the `{name}` parameter is invalid: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `issuer` parameter and the label's issuer prefix differ.
    #[error("the `issuer` parameter does not match the label's issuer prefix")]
    IssuerMismatch,
    /// The URI has an `encoder` parameter, which asks for codes other than
    /// RFC 4226/6238 ones (`encoder=steam` asks for Steam Guard's
    /// five-character codes). ninsho makes standard codes only, so reading
    /// such a URI would give an authenticator whose codes the service never
    /// accepts; it is refused instead. The user should add that account to
    /// an app that supports the encoder.
    #[error(
        "the URI asks for {}, which is not supported: only standard RFC 4226/6238 codes are made; add this account to an app that supports it",
        encoder_phrase(.encoder.as_deref())
    )]
    UnsupportedEncoder {
        /// The encoder's name as the URI wrote it (`steam`), when it is a
        /// short word: at most [`UriError::MAX_ENCODER_NAME`] ASCII letters,
        /// digits, `-` or `_`. `None` for anything else, so the error never
        /// repeats a long or odd value from the URI; a value this short
        /// can't be a seed either (the shortest one read is 16 base32
        /// characters).
        encoder: Option<String>,
    },
}

impl UriError {
    /// The longest `encoder` value [`UriError::UnsupportedEncoder`] repeats.
    pub const MAX_ENCODER_NAME: usize = 15;

    fn unsupported_encoder(value: &str) -> Self {
        let word = (1..=Self::MAX_ENCODER_NAME).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        Self::UnsupportedEncoder {
            encoder: word.then(|| value.to_owned()),
        }
    }
}

/// A parameter a key URI carries that common authenticator apps ignore or
/// refuse, so the app would show codes the service never accepts.
///
/// The URI is still valid and ninsho verifies its codes; the warning is
/// about the user's app. Returned by [`Totp::uri_warnings`],
/// [`Hotp::uri_warnings`] and [`TotpEnrollment::uri_warnings`]: check it
/// before showing a URI as a QR code, and either keep to the defaults
/// (SHA-1, 6 digits, 30 seconds) or tell users which apps work. ninsho's
/// own enrolment uses the defaults and never has one.
///
/// Sources: Google's Key Uri Format page (archived with the Google
/// Authenticator wiki) says the app ignores `algorithm` and `period`, and
/// lists 6 and 8 as the `digits` values; pyotp's `parse_uri` refuses more
/// than 8 digits. Newer app versions may honour more; these are the
/// parameters that are not safe to count on.
///
/// [`Totp::uri_warnings`]: super::Totp::uri_warnings
/// [`Hotp::uri_warnings`]: super::Hotp::uri_warnings
/// [`TotpEnrollment::uri_warnings`]: super::TotpEnrollment::uri_warnings
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UriWarning {
    /// A hash other than SHA-1: apps that ignore `algorithm` compute
    /// HMAC-SHA-1 codes, which never match.
    Algorithm {
        /// The hash the URI names.
        algorithm: Algorithm,
    },
    /// Digits other than 6 or 8 (7, or more than 8): the key URI format
    /// defines 6 and 8, and apps refuse the URI or show codes of another
    /// length.
    Digits {
        /// The digits the URI names.
        digits: u8,
    },
    /// A TOTP period other than 30 seconds: apps that ignore `period`
    /// show a new code every 30 seconds, which matches only by chance.
    Period {
        /// The period the URI names, in seconds.
        period: u64,
    },
}

impl fmt::Display for UriWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Algorithm { algorithm } => write!(
                f,
                "algorithm {}: some authenticator apps ignore it and use SHA1; use SHA1 for codes every app gets right",
                algorithm.uri_name()
            ),
            Self::Digits { digits } => write!(
                f,
                "{digits} digits: authenticator apps show 6 or 8; use 6 or 8 for codes every app gets right"
            ),
            Self::Period { period } => write!(
                f,
                "a period of {period} seconds: some authenticator apps ignore it and use 30; use 30 for codes every app gets right"
            ),
        }
    }
}

/// What common apps would get wrong in a URI with these parameters.
pub(crate) fn warnings(kind: UriKind, algorithm: Algorithm, digits: u8) -> Vec<UriWarning> {
    let mut out = Vec::new();
    if algorithm != Algorithm::Sha1 {
        out.push(UriWarning::Algorithm { algorithm });
    }
    if digits != 6 && digits != 8 {
        out.push(UriWarning::Digits { digits });
    }
    if let UriKind::Totp { period } = kind
        && period != super::Totp::DEFAULT_PERIOD
    {
        out.push(UriWarning::Period { period });
    }
    out
}

/// "the `steam` encoder", or "an encoder" when the name is not shown.
fn encoder_phrase(name: Option<&str>) -> String {
    name.map_or_else(|| "an encoder".to_owned(), |n| format!("the `{n}` encoder"))
}

/// Bytes percent-encoded in labels and values: everything but RFC 3986
/// unreserved characters.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The shortest seed a parse accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretFloor {
    /// 128 bits (RFC 4226 §4): every import unless the caller says otherwise.
    Rfc4226,
    /// 80 bits, for the `danger_…_allow_short_secret` imports.
    DangerShort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UriKind {
    Totp { period: u64 },
    Hotp { counter: u64 },
}

#[derive(Debug)]
pub(crate) struct OtpAuthUri {
    pub(crate) kind: UriKind,
    pub(crate) issuer: Option<String>,
    pub(crate) account: String,
    pub(crate) secret: OtpSecret,
    pub(crate) algorithm: Algorithm,
    pub(crate) digits: u8,
}

const KNOWN: [&str; 7] = [
    "secret",
    "issuer",
    "algorithm",
    "digits",
    "period",
    "counter",
    "encoder",
];

impl OtpAuthUri {
    pub(crate) fn write(
        kind: UriKind,
        issuer: Option<&str>,
        account: &str,
        secret: &OtpSecret,
        algorithm: Algorithm,
        digits: u8,
    ) -> String {
        let enc = |s: &str| utf8_percent_encode(s, ENCODE).to_string();
        let (kind_name, extra) = match kind {
            UriKind::Totp { period } => ("totp", format!("period={period}")),
            UriKind::Hotp { counter } => ("hotp", format!("counter={counter}")),
        };
        let label = match issuer {
            Some(i) => format!("{}:{}", enc(i), enc(account)),
            None => enc(account),
        };
        let issuer_param = issuer
            .map(|i| format!("&issuer={}", enc(i)))
            .unwrap_or_default();
        format!(
            "otpauth://{kind_name}/{label}?secret={}{issuer_param}&algorithm={}&digits={digits}&{extra}",
            secret.to_base32().expose_secret(),
            algorithm.uri_name(),
        )
    }

    pub(crate) fn parse(uri: &str, floor: SecretFloor) -> Result<Self, OtpError> {
        let rest = strip_prefix_ignore_case(uri, "otpauth://").ok_or(UriError::Scheme)?;
        if rest.contains('#') {
            return Err(UriError::Label {
                reason: "a fragment (#) is not allowed",
            }
            .into());
        }
        let (kind_name, rest) = rest
            .split_once('/')
            .ok_or(UriError::Label { reason: "missing" })?;
        let is_totp = if kind_name.eq_ignore_ascii_case("totp") {
            true
        } else if kind_name.eq_ignore_ascii_case("hotp") {
            false
        } else {
            return Err(UriError::UnknownType.into());
        };
        let (raw_label, query) = rest.split_once('?').unwrap_or((rest, ""));
        let label = decode(raw_label, false).ok_or(UriError::Label {
            reason: "not valid percent-encoded UTF-8",
        })?;
        let (label_issuer, account) = match label.split_once(':') {
            Some((i, a)) => (Some(i.trim().to_owned()), a.trim().to_owned()),
            None => (None, label.trim().to_owned()),
        };
        if account.is_empty() {
            return Err(UriError::Label {
                reason: "the account name is missing",
            }
            .into());
        }
        if account.contains(':') {
            return Err(UriError::Label {
                reason: "more than one colon",
            }
            .into());
        }
        if label_issuer.as_deref() == Some("") {
            return Err(UriError::Label {
                reason: "the issuer prefix is empty",
            }
            .into());
        }

        let mut values: [Option<String>; KNOWN.len()] = Default::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            // Parameters other apps define (image, color, …) are ignored.
            let Some(idx) = KNOWN.iter().position(|k| k.eq_ignore_ascii_case(name)) else {
                continue;
            };
            let name = KNOWN[idx];
            if values[idx].is_some() {
                return Err(UriError::DuplicateParameter(name).into());
            }
            let value = decode(raw, true).ok_or(UriError::InvalidParameter {
                name,
                reason: "not valid percent-encoded UTF-8",
            })?;
            values[idx] = Some(value);
        }
        let [secret, issuer, algorithm, digits, period, counter, encoder] = values;

        // Checked first: whatever else the URI says describes codes of
        // another kind.
        if let Some(encoder) = encoder {
            return Err(UriError::unsupported_encoder(&encoder).into());
        }
        let secret = secret.ok_or(UriError::MissingParameter("secret"))?;
        let secret = match floor {
            SecretFloor::Rfc4226 => OtpSecret::from_base32(&secret),
            SecretFloor::DangerShort => OtpSecret::danger_from_base32_allow_short(&secret),
        };
        let secret = secret.map_err(|e| match e {
            OtpError::InvalidBase32 => OtpError::Uri(UriError::InvalidParameter {
                name: "secret",
                reason: "not base32",
            }),
            other => other,
        })?;
        // An empty `issuer=` says nothing: apps (and pyotp, which drops
        // blank parameters) read it as absent, so the label's prefix, if
        // any, stays the issuer.
        let issuer = issuer
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty());
        let issuer = match (label_issuer, issuer) {
            (Some(l), Some(p)) if l != p => return Err(UriError::IssuerMismatch.into()),
            (_, Some(p)) if p.contains(':') => {
                return Err(UriError::InvalidParameter {
                    name: "issuer",
                    reason: "contains a colon",
                }
                .into());
            }
            (l, p) => p.or(l),
        };
        let algorithm = match algorithm {
            None => Algorithm::Sha1,
            Some(a) => Algorithm::from_uri_name(&a).ok_or(UriError::InvalidParameter {
                name: "algorithm",
                reason: "must be SHA1, SHA256 or SHA512",
            })?,
        };
        let digits = match digits {
            None => 6,
            Some(d) => number(&d)
                .and_then(|d| u8::try_from(d).ok())
                .filter(|d| (super::MIN_DIGITS..=super::MAX_DIGITS).contains(d))
                .ok_or(UriError::InvalidParameter {
                    name: "digits",
                    reason: "must be 6 to 10",
                })?,
        };
        let kind = if is_totp {
            let period = match period {
                None => super::Totp::DEFAULT_PERIOD,
                Some(p) => number(&p)
                    .filter(|&p| p > 0)
                    .ok_or(UriError::InvalidParameter {
                        name: "period",
                        reason: "must be a whole number of seconds, at least 1",
                    })?,
            };
            UriKind::Totp { period }
        } else {
            let counter = counter.ok_or(UriError::MissingParameter("counter"))?;
            let counter = number(&counter).ok_or(UriError::InvalidParameter {
                name: "counter",
                reason: "must be a whole number",
            })?;
            UriKind::Hotp { counter }
        };
        Ok(Self {
            kind,
            issuer,
            account,
            secret,
            algorithm,
            digits,
        })
    }
}

/// A plain decimal `u64` (no sign, no spaces).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Percent-decodes `s`; in query values `+` also means a space, as HTML
/// forms and `URLSearchParams` write it.
fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes: Vec<u8> = if plus_is_space && s.contains('+') {
        percent_decode_str(&s.replace('+', " ")).collect()
    } else {
        percent_decode_str(s).collect()
    };
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::super::{Hotp, Totp};
    use super::*;

    const S: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn err(uri: &str) -> OtpError {
        Totp::from_uri(uri).unwrap_err()
    }

    #[test]
    fn canonical_round_trip() {
        let uri = format!(
            "otpauth://totp/ACME%20Co:john.doe%40email.com?secret={S}&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(Totp::from_uri(&uri).unwrap().to_uri(), uri);
        let uri = format!("otpauth://hotp/alice?secret={S}&algorithm=SHA512&digits=8&counter=42");
        assert_eq!(Hotp::from_uri(&uri).unwrap().to_uri(), uri);
    }

    #[test]
    fn lenient_forms() {
        let t = Totp::from_uri(&format!(
            "OTPAUTH://TOTP/Big%20Corp:%20alice?secret={}&issuer=Big+Corp",
            S.to_lowercase()
        ))
        .unwrap();
        assert_eq!(t.issuer(), Some("Big Corp"));
        assert_eq!(t.account(), "alice");
        let t = Totp::from_uri(&format!(
            "otpauth://totp/Example%3Aalice?secret={S}&image=https%3A%2F%2Fx"
        ))
        .unwrap();
        assert_eq!(t.issuer(), Some("Example"));
        let t = Totp::from_uri(&format!("otpauth://totp/alice?secret={S}&issuer=Example")).unwrap();
        assert_eq!((t.issuer(), t.account()), (Some("Example"), "alice"));
        assert_eq!((t.digits(), t.period()), (6, 30));
    }

    #[test]
    fn each_malformation_is_named() {
        assert_eq!(
            err("http://totp/a?secret=x"),
            OtpError::Uri(UriError::Scheme)
        );
        assert_eq!(
            err(&format!("otpauth://motp/a?secret={S}")),
            OtpError::Uri(UriError::UnknownType)
        );
        assert_eq!(
            err(&format!("otpauth://hotp/a?secret={S}&counter=1")),
            OtpError::Uri(UriError::WrongType { expected: "totp" })
        );
        assert_eq!(
            err("otpauth://totp/a"),
            OtpError::Uri(UriError::MissingParameter("secret"))
        );
        assert_eq!(
            err(&format!("otpauth://totp/?secret={S}")),
            OtpError::Uri(UriError::Label {
                reason: "the account name is missing"
            })
        );
        assert_eq!(
            err(&format!("otpauth://totp/a:b:c?secret={S}")),
            OtpError::Uri(UriError::Label {
                reason: "more than one colon"
            })
        );
        assert_eq!(
            err(&format!("otpauth://totp/a?secret={S}&secret={S}")),
            OtpError::Uri(UriError::DuplicateParameter("secret"))
        );
        assert_eq!(
            err("otpauth://totp/a?secret=0000"),
            OtpError::Uri(UriError::InvalidParameter {
                name: "secret",
                reason: "not base32"
            })
        );
        assert_eq!(
            err("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP"),
            OtpError::SecretTooShort { len: 10 }
        );
        assert!(matches!(
            err(&format!("otpauth://totp/a?secret={S}&digits=5")),
            OtpError::Uri(UriError::InvalidParameter { name: "digits", .. })
        ));
        assert!(matches!(
            err(&format!("otpauth://totp/a?secret={S}&digits=x")),
            OtpError::Uri(UriError::InvalidParameter { name: "digits", .. })
        ));
        assert!(matches!(
            err(&format!("otpauth://totp/a?secret={S}&period=0")),
            OtpError::Uri(UriError::InvalidParameter { name: "period", .. })
        ));
        assert!(matches!(
            err(&format!("otpauth://totp/a?secret={S}&period=-30")),
            OtpError::Uri(UriError::InvalidParameter { name: "period", .. })
        ));
        assert!(matches!(
            err(&format!("otpauth://totp/a?secret={S}&algorithm=MD5")),
            OtpError::Uri(UriError::InvalidParameter {
                name: "algorithm",
                ..
            })
        ));
        assert_eq!(
            err(&format!("otpauth://totp/X:a?secret={S}&issuer=Y")),
            OtpError::Uri(UriError::IssuerMismatch)
        );
        assert!(matches!(
            err(&format!("otpauth://totp/a%FF?secret={S}")),
            OtpError::Uri(UriError::Label { .. })
        ));
        assert_eq!(
            Hotp::from_uri(&format!("otpauth://hotp/a?secret={S}")).unwrap_err(),
            OtpError::Uri(UriError::MissingParameter("counter"))
        );
        assert!(matches!(
            Hotp::from_uri(&format!("otpauth://hotp/a?secret={S}&counter=1x")).unwrap_err(),
            OtpError::Uri(UriError::InvalidParameter {
                name: "counter",
                ..
            })
        ));
    }

    #[test]
    fn short_seeds_only_through_the_danger_import() {
        // Google's own example: 80 bits.
        let uri = "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example";
        assert_eq!(err(uri), OtpError::SecretTooShort { len: 10 });
        let t = Totp::danger_from_uri_allow_short_secret(uri).unwrap();
        assert_eq!(t.secret().expose_secret(), b"Hello!\xDE\xAD\xBE\xEF");
        assert_eq!(
            (t.issuer(), t.account()),
            (Some("Example"), "alice@google.com")
        );
        // What the host stores reads back through the same door only.
        let stored = t.to_uri();
        assert_eq!(
            Totp::danger_from_uri_allow_short_secret(&stored)
                .unwrap()
                .to_uri(),
            stored
        );
        assert_eq!(err(&stored), OtpError::SecretTooShort { len: 10 });
        // Resuming an enrolment never accepts one.
        assert_eq!(
            super::super::TotpEnrollment::from_uri(&stored).unwrap_err(),
            OtpError::SecretTooShort { len: 10 }
        );
        // HOTP the same.
        let h = "otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP&counter=3";
        assert_eq!(
            Hotp::from_uri(h).unwrap_err(),
            OtpError::SecretTooShort { len: 10 }
        );
        assert_eq!(
            Hotp::danger_from_uri_allow_short_secret(h)
                .unwrap()
                .counter(),
            3
        );
        // 72 bits: refused even on purpose; the other checks still apply.
        assert_eq!(
            Totp::danger_from_uri_allow_short_secret("otpauth://totp/a?secret=GEZDGNBVGY3TQOI")
                .unwrap_err(),
            OtpError::SecretTooShort { len: 9 }
        );
        assert_eq!(
            Totp::danger_from_uri_allow_short_secret(
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&encoder=steam"
            )
            .unwrap_err(),
            OtpError::Uri(UriError::UnsupportedEncoder {
                encoder: Some("steam".to_owned())
            })
        );
        assert_eq!(
            Totp::danger_from_uri_allow_short_secret(h).unwrap_err(),
            OtpError::Uri(UriError::WrongType { expected: "totp" })
        );
    }

    #[test]
    fn an_empty_issuer_parameter_is_absent() {
        for empty in ["", "%20", "+", "%20%20", "%09"] {
            let t = Totp::from_uri(&format!(
                "otpauth://totp/Example:alice?secret={S}&issuer={empty}"
            ))
            .unwrap();
            assert_eq!((t.issuer(), t.account()), (Some("Example"), "alice"));
            let t =
                Totp::from_uri(&format!("otpauth://totp/alice?secret={S}&issuer={empty}")).unwrap();
            assert_eq!((t.issuer(), t.account()), (None, "alice"));
            // Written back without it.
            assert!(!t.to_uri().contains("issuer"), "{}", t.to_uri());
        }
        // An empty label prefix is still malformed (it is not a blank
        // parameter but a label that says `:` and nothing before it).
        assert_eq!(
            err(&format!("otpauth://totp/:alice?secret={S}&issuer=")),
            OtpError::Uri(UriError::Label {
                reason: "the issuer prefix is empty"
            })
        );
        // `issuer=&issuer=X` is still two issuers.
        assert_eq!(
            err(&format!("otpauth://totp/alice?secret={S}&issuer=&issuer=X")),
            OtpError::Uri(UriError::DuplicateParameter("issuer"))
        );
    }

    #[test]
    fn any_encoder_is_refused_by_name() {
        let steam = |name: &str, value: &str| {
            err(&format!("otpauth://totp/Steam:a?secret={S}&{name}={value}"))
        };
        let named = |n: &str| {
            OtpError::Uri(UriError::UnsupportedEncoder {
                encoder: Some(n.to_owned()),
            })
        };
        assert_eq!(steam("encoder", "steam"), named("steam"));
        // The name is matched as the other parameters are; the value is
        // repeated as written.
        assert_eq!(steam("ENCODER", "Steam"), named("Steam"));
        assert_eq!(steam("encoder", "yandex"), named("yandex"));
        // Empty, long or odd values are refused without being repeated.
        let unnamed = OtpError::Uri(UriError::UnsupportedEncoder { encoder: None });
        assert_eq!(steam("encoder", ""), unnamed);
        assert_eq!(steam("encoder", &"x".repeat(16)), unnamed);
        assert_eq!(steam("encoder", &"x".repeat(100_000)), unnamed);
        assert_eq!(steam("encoder", "a%0Ab"), unnamed);
        assert_eq!(steam("encoder", S), unnamed);
        assert_eq!(
            steam("encoder", "x".repeat(15).as_str()),
            named(&"x".repeat(15))
        );
        // Refused before anything else is looked at, HOTP too.
        assert_eq!(
            err("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&encoder=steam"),
            named("steam")
        );
        assert_eq!(
            Hotp::from_uri(&format!(
                "otpauth://hotp/a?secret={S}&counter=1&encoder=steam"
            ))
            .unwrap_err(),
            named("steam")
        );
        // Twice is a duplicate, like any other parameter.
        assert_eq!(
            steam("encoder", "steam&encoder=steam"),
            OtpError::Uri(UriError::DuplicateParameter("encoder"))
        );
        let text = steam("encoder", "steam").to_string();
        assert!(text.contains("`steam` encoder"), "{text}");
        assert!(!steam("encoder", "").to_string().contains("``"));
    }

    #[test]
    fn warnings_name_what_apps_get_wrong() {
        let secret = || OtpSecret::from_bytes(vec![3; 20]).unwrap();
        let totp = |b: super::super::TotpBuilder| b.account("a").build().unwrap();
        assert!(totp(Totp::builder(secret())).uri_warnings().is_empty());
        // 8 digits is one of the two values the format defines.
        assert!(
            totp(Totp::builder(secret()).digits(8))
                .uri_warnings()
                .is_empty()
        );
        assert_eq!(
            totp(Totp::builder(secret()).period(60)).uri_warnings(),
            [UriWarning::Period { period: 60 }]
        );
        assert_eq!(
            totp(Totp::builder(secret()).digits(10)).uri_warnings(),
            [UriWarning::Digits { digits: 10 }]
        );
        assert_eq!(
            totp(Totp::builder(secret()).digits(7)).uri_warnings(),
            [UriWarning::Digits { digits: 7 }]
        );
        assert!(
            totp(Totp::builder(secret()).digits(8))
                .uri_warnings()
                .is_empty()
        );
        assert_eq!(
            totp(
                Totp::builder(secret())
                    .algorithm(Algorithm::Sha512)
                    .digits(9)
                    .period(15)
            )
            .uri_warnings(),
            [
                UriWarning::Algorithm {
                    algorithm: Algorithm::Sha512
                },
                UriWarning::Digits { digits: 9 },
                UriWarning::Period { period: 15 },
            ]
        );
        // HOTP has no period; the rest is the same.
        let hotp = Hotp::builder(secret())
            .account("a")
            .digits(10)
            .build()
            .unwrap();
        assert_eq!(hotp.uri_warnings(), [UriWarning::Digits { digits: 10 }]);
        // A URI read with such parameters says so too, and still round-trips.
        let t = Totp::from_uri(&format!("otpauth://totp/a?secret={S}&period=60")).unwrap();
        assert_eq!(t.uri_warnings(), [UriWarning::Period { period: 60 }]);
        assert_eq!(
            UriWarning::Period { period: 60 }.to_string(),
            "a period of 60 seconds: some authenticator apps ignore it and use 30; use 30 for codes every app gets right"
        );
    }

    #[test]
    fn errors_never_contain_the_secret() {
        let e = err("otpauth://totp/a?secret=GEZDGNBVGY3TQOJ1");
        assert!(!format!("{e:?} {e}").contains("GEZDGNBV"));
    }
}
