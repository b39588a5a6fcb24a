//! [`DeviceCookie`]: the trusted-device token in a cookie.

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};

use crate::device::{DevicePolicy, DeviceToken, parse_token};
use crate::secret::SecretString;

/// The cookie name used unless another is chosen.
pub const DEFAULT_COOKIE_NAME: &str = "__Host-ninsho-device";

/// A cookie name [`DeviceCookie::with_name`] refused, or a value that can't
/// go in a cookie.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// The name is empty or has a character a cookie name can't hold (RFC
    /// 6265 §4.1.1: a token, no separators, spaces or controls).
    #[error("a cookie name must be a non-empty token of visible ASCII without separators")]
    InvalidName,
    /// The name starts with `__Host-` or `__Secure-` in another case
    /// (browsers treat the prefixes case-insensitively, so the rules would
    /// apply without the name saying so), or has nothing after the prefix.
    #[error(
        "a cookie name prefix must be written exactly `__Host-` or `__Secure-`, followed by a name"
    )]
    InvalidPrefix,
    /// The token holds a character a cookie value can't (never the case
    /// for tokens ninsho made).
    #[error("the device token can't be a cookie value")]
    InvalidValue,
}

/// Sets, reads and clears the "don't ask again on this device" cookie.
///
/// The cookie is `Secure; HttpOnly; SameSite=Lax; Path=/` with no
/// `Domain`, so its default name can carry the `__Host-` prefix: the
/// browser then refuses it from plain HTTP and from sibling subdomains.
/// `Max-Age` is the [`DevicePolicy`] lifetime in whole seconds, so the
/// cookie never outlives the trust the store records.
///
/// ```
/// use ninsho::device::DevicePolicy;
/// use ninsho::web::DeviceCookie;
/// use axum::http::{HeaderMap, HeaderValue, header::COOKIE};
///
/// let cookie = DeviceCookie::new(&DevicePolicy::default());
/// assert_eq!(
///     cookie.clear().unwrap(),
///     "__Host-ninsho-device=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"
/// );
/// let mut headers = HeaderMap::new();
/// headers.insert(COOKIE, HeaderValue::from_static("theme=dark; __Host-ninsho-device=garbage"));
/// assert!(cookie.read(&headers).is_none(), "not a token ninsho made");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCookie {
    name: String,
    max_age: u64,
}

impl DeviceCookie {
    /// The cookie [`DEFAULT_COOKIE_NAME`], living as long as `policy`
    /// trusts a device.
    #[must_use]
    pub fn new(policy: &DevicePolicy) -> Self {
        Self {
            name: DEFAULT_COOKIE_NAME.to_owned(),
            max_age: u64::try_from(policy.lifetime.whole_seconds()).unwrap_or(0),
        }
    }

    /// The same cookie under another name.
    ///
    /// # Errors
    /// [`CookieError::InvalidName`] for a name that is not a cookie token;
    /// [`CookieError::InvalidPrefix`] for `__host-…`, `__SECURE-…` and the
    /// like, or a bare prefix. Names without a prefix are allowed, and lose
    /// the prefix's protection.
    pub fn with_name(mut self, name: &str) -> Result<Self, CookieError> {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(CookieError::InvalidName);
        }
        for prefix in ["__Host-", "__Secure-", "__Host-Http-", "__Http-"] {
            let head = name.get(..prefix.len());
            if head.is_some_and(|h| h.eq_ignore_ascii_case(prefix))
                && (head != Some(prefix) || name.len() == prefix.len())
            {
                return Err(CookieError::InvalidPrefix);
            }
        }
        self.name = name.to_owned();
        Ok(self)
    }

    /// The cookie's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie's `Max-Age`, in seconds.
    #[must_use]
    pub fn max_age(&self) -> u64 {
        self.max_age
    }

    /// The `Set-Cookie` value that stores `token` (from
    /// [`SignedIn::device`](crate::service::SignedIn::device)).
    ///
    /// The header value is marked sensitive, so HTTP/2 encoders and
    /// well-behaved loggers leave it alone.
    ///
    /// # Errors
    /// [`CookieError::InvalidValue`] if the token can't be a cookie value,
    /// which tokens ninsho made always can.
    pub fn set(&self, token: &DeviceToken) -> Result<HeaderValue, CookieError> {
        let value = token.expose_secret();
        if value.is_empty() || !value.bytes().all(is_cookie_octet) {
            return Err(CookieError::InvalidValue);
        }
        let mut header = self.header(value, self.max_age)?;
        header.set_sensitive(true);
        Ok(header)
    }

    /// The `Set-Cookie` value that removes the cookie: the same attributes,
    /// an empty value and `Max-Age=0`.
    ///
    /// # Errors
    /// Never for a name this type accepted; the `Result` keeps the
    /// conversion free of panics.
    pub fn clear(&self) -> Result<HeaderValue, CookieError> {
        self.header("", 0)
    }

    fn header(&self, value: &str, max_age: u64) -> Result<HeaderValue, CookieError> {
        HeaderValue::try_from(format!(
            "{}={value}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Lax",
            self.name
        ))
        .map_err(|_| CookieError::InvalidValue)
    }

    /// The device token from the request's `Cookie` headers, for
    /// [`TwoFactor::sign_in_begin`](crate::service::TwoFactor::sign_in_begin)
    /// (`token.as_ref().map(|t| t.expose_secret())`).
    ///
    /// Every `Cookie` header and every pair in it is looked at; the first
    /// pair with this cookie's name whose value is a well-formed device
    /// token wins. A value in another form (truncated, tampered, quoted,
    /// not UTF-8) counts as no cookie: the user is asked for the second
    /// step, and nothing panics.
    #[must_use]
    pub fn read(&self, headers: &HeaderMap) -> Option<SecretString> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|header| header.to_str().ok())
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == self.name)
            .map(|(_, value)| value)
            .find(|value| value.bytes().all(is_cookie_octet) && parse_token(value).is_some())
            .map(|value| SecretString::new(value.to_owned()))
    }
}

/// RFC 9110 `tchar`: what a cookie name may hold.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6265 `cookie-octet`: visible ASCII but `"`, `,`, `;` and `\`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_must_be_exact() {
        let c = DeviceCookie::new(&DevicePolicy::default());
        assert!(c.clone().with_name("device").is_ok());
        assert!(c.clone().with_name("__Host-mine").is_ok());
        assert!(c.clone().with_name("__Secure-mine").is_ok());
        for bad in ["__host-mine", "__HOST-mine", "__secure-x", "__Host-"] {
            assert_eq!(
                c.clone().with_name(bad),
                Err(CookieError::InvalidPrefix),
                "{bad}"
            );
        }
        for bad in ["", "a b", "a;b", "a=b", "ä", "a\"b", "a,b", "(x)"] {
            assert_eq!(
                c.clone().with_name(bad),
                Err(CookieError::InvalidName),
                "{bad}"
            );
        }
    }

    #[test]
    fn octets() {
        assert!(is_cookie_octet(b'a') && is_cookie_octet(b'.'));
        for b in [b' ', b'"', b',', b';', b'\\', 0x7f, 0x00] {
            assert!(!is_cookie_octet(b), "{b}");
        }
    }
}
