//! [`describe_device`]: a short, safe description of the requesting device.

use std::net::IpAddr;

use axum::http::HeaderMap;
use axum::http::header::USER_AGENT;

/// The longest description [`describe_device`] returns, in characters.
pub const MAX_DESCRIPTION: usize = 80;

/// A short description of the device making the request, such as
/// `Firefox on Linux (198.51.100.7)`: the `device` of
/// [`TwoFactor::sign_in_send_link`](crate::service::TwoFactor::sign_in_send_link)
/// (shown on the phone before the user approves) and the label of
/// "trust this device".
///
/// The browser and system are read from the `User-Agent` header for the
/// common ones; anything else is "Unknown browser" or "unknown system",
/// never the raw header, which an attacker writes. `ip` is the client's
/// address as the host knows it (from `ConnectInfo`, or a proxy header it
/// trusts). The result is plain ASCII of at most [`MAX_DESCRIPTION`]
/// characters; escape it in HTML as any text.
///
/// ```
/// use axum::http::{HeaderMap, HeaderValue, header::USER_AGENT};
/// use ninsho::web::describe_device;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(
///     USER_AGENT,
///     HeaderValue::from_static(
///         "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
///     ),
/// );
/// let ip = "198.51.100.7".parse().ok();
/// assert_eq!(describe_device(&headers, ip), "Firefox on Linux (198.51.100.7)");
/// assert_eq!(describe_device(&HeaderMap::new(), None), "Unknown browser on unknown system");
/// ```
#[must_use]
pub fn describe_device(headers: &HeaderMap, ip: Option<IpAddr>) -> String {
    let agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut text = format!("{} on {}", browser(agent), system(agent));
    if let Some(ip) = ip {
        text.push_str(&format!(" ({ip})"));
    }
    text.truncate(MAX_DESCRIPTION);
    text
}

/// The browser, most specific first: Edge and Opera say "Chrome" too,
/// Chrome says "Safari" too.
fn browser(agent: &str) -> &'static str {
    const BROWSERS: [(&str, &str); 8] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ];
    BROWSERS
        .iter()
        .find(|(mark, _)| agent.contains(mark))
        .map_or("Unknown browser", |(_, name)| name)
}

/// The operating system; phones first, as their agents also name the
/// desktop systems they descend from.
fn system(agent: &str) -> &'static str {
    const SYSTEMS: [(&str, &str); 8] = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    SYSTEMS
        .iter()
        .find(|(mark, _)| agent.contains(mark))
        .map_or("unknown system", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn of(agent: &'static str) -> String {
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static(agent));
        describe_device(&headers, None)
    }

    #[test]
    fn common_agents() {
        assert_eq!(
            of(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
            ),
            "Safari on iPhone"
        );
        assert_eq!(
            of(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0"
            ),
            "Edge on Windows"
        );
        assert_eq!(
            of(
                "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"
            ),
            "Chrome on Android"
        );
        assert_eq!(
            of("<script>alert(1)</script>"),
            "Unknown browser on unknown system"
        );
    }

    #[test]
    fn bounded() {
        let ip: IpAddr = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let text = describe_device(&HeaderMap::new(), Some(ip));
        assert!(text.len() <= MAX_DESCRIPTION && text.is_ascii());
    }
}
