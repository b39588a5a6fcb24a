//! [`TwilioGateway`]: SMS and voice calls through Twilio's REST API.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::{StatusCode, Url};

use super::{DeliveryError, DeliveryErrorKind, Gateway, Message, Receipt};
use crate::model::{Channel, Locale};
use crate::secret::SecretString;

/// Twilio's REST API, where requests go unless
/// [`base_url`](TwilioGatewayBuilder::base_url) says otherwise.
pub const TWILIO_API: &str = "https://api.twilio.com";

/// Who an SMS comes from: a `From` number (or alphanumeric sender ID), or a
/// Messaging Service, which picks a number from its pool.
///
/// Needs the `twilio` feature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TwilioSender {
    /// A Twilio phone number in E.164 (`+15017122661`) or an alphanumeric
    /// sender ID (`Ninsho`), sent as the `From` field. An E.164 number also
    /// places the voice calls, unless [`caller`](TwilioGatewayBuilder::caller)
    /// names another.
    From(String),
    /// A Messaging Service SID (`MG` and 32 hexadecimal digits), sent as
    /// `MessagingServiceSid`. A Messaging Service sends SMS only: give a
    /// [`caller`](TwilioGatewayBuilder::caller) number for voice calls.
    MessagingService(String),
}

/// Why a [`TwilioGatewayBuilder`] could not build a gateway.
///
/// Needs the `twilio` feature. Never carries the auth token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TwilioBuildError {
    /// The account SID is not `AC` followed by 32 hexadecimal digits.
    #[error("the Twilio account SID must be AC followed by 32 hexadecimal digits")]
    AccountSid,
    /// The auth token is empty or contains characters an auth token never has.
    #[error("the Twilio auth token is empty or malformed")]
    AuthToken,
    /// The Messaging Service SID is not `MG` followed by 32 hexadecimal
    /// digits, or the `From` sender is empty or contains control characters.
    #[error("the Twilio sender is malformed")]
    Sender,
    /// The voice caller is not an E.164 number (`+` and 8 to 15 digits).
    #[error("the Twilio voice caller must be an E.164 phone number")]
    Caller,
    /// The base URL does not parse, or is not `https` (plain `http` is
    /// allowed to a loopback address only, for tests).
    #[error("the Twilio base URL must be https (or http to a loopback address)")]
    BaseUrl,
    /// The status callback URL does not parse or is not `http(s)`.
    #[error("the Twilio status callback must be an http or https URL")]
    StatusCallback,
    /// A `Say` voice name contains characters a voice name never has.
    #[error("the Twilio voice name is malformed")]
    Voice,
    /// The HTTP client could not be set up (TLS initialisation).
    #[error("the HTTP client for Twilio could not be built")]
    Client(#[source] reqwest::Error),
}

/// Twilio answered with an error: the HTTP status and Twilio's error code.
///
/// The [`source`](std::error::Error::source) of the [`DeliveryError`]s
/// that [`TwilioGateway`] returns for Twilio's answers; downcast to it to
/// read the code. Twilio's own `message` is left out on purpose: some echo
/// the request, and the request holds the code.
///
/// Needs the `twilio` feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioApiError {
    status: u16,
    code: Option<u32>,
}

impl TwilioApiError {
    /// The HTTP status Twilio answered with.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Twilio's error code (`21614`), when the answer carried one. See
    /// `https://www.twilio.com/docs/errors/{code}`.
    #[must_use]
    pub fn code(&self) -> Option<u32> {
        self.code
    }
}

impl fmt::Display for TwilioApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Twilio answered HTTP {}", self.status)?;
        match self.code {
            Some(code) => write!(
                f,
                " with error {code} (https://www.twilio.com/docs/errors/{code})"
            ),
            None => Ok(()),
        }
    }
}

impl std::error::Error for TwilioApiError {}

/// Sends SMS and voice calls through Twilio's REST API.
///
/// Needs the `twilio` feature (reqwest with rustls) and a Tokio runtime.
///
/// - **SMS**: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with
///   `To`, `From` or `MessagingServiceSid`, `Body` = [`Message::body`] and,
///   if set, `StatusCallback`.
/// - **Voice**: `POST …/Calls.json` with `To`, `From` (the
///   [`caller`](TwilioGatewayBuilder::caller)), optional `StatusCallback`,
///   and `Twiml` = `<Response><Say language="ja-JP" voice="Polly.Mizuki">…</Say></Response>`
///   (`en-US` and `Polly.Joanna` for English; change the voices with
///   [`say_voice`](TwilioGatewayBuilder::say_voice)). The spoken text is
///   [`Message::body`], XML-escaped: ninsho's voice templates already read
///   the code one digit at a time, twice, and a host's own voice template
///   is spoken as the host wrote it.
/// - **Email** is refused ([`DeliveryErrorKind::Refused`], the
///   [`Gateway`] contract for a channel a gateway does not serve), so ninsho
///   moves on to the next channel of the plan. So is voice when no caller
///   number is configured.
///
/// The [`Receipt`]'s `provider_id` is Twilio's `sid` (`SM…` or `CA…`).
/// Redirects are not followed, and the auth token never appears in
/// `Debug`, errors or logs.
///
/// # How Twilio's errors map
///
/// | Twilio answers | kind | what ninsho does |
/// |---|---|---|
/// | 21211 invalid `To` number; 21217 number does not appear valid (calls) | [`InvalidDestination`](DeliveryErrorKind::InvalidDestination) | asks for another contact |
/// | 21614 not a mobile number (landline); 21407 number type does not support SMS; 21610 recipient unsubscribed (STOP); 21408 / 21612 region or route not enabled, number not reachable by SMS; 21215 calls to that region not enabled | [`Refused`](DeliveryErrorKind::Refused) | moves on to the next channel (SMS → voice) |
/// | HTTP 429 or 20429 | [`RateLimited`](DeliveryErrorKind::RateLimited), with `Retry-After` (seconds) when given | reports it; resend later |
/// | HTTP 5xx; a timeout or connection error | [`Transient`](DeliveryErrorKind::Transient) | reports it; resend later |
/// | 20003 authentication failed, HTTP 401 / 403; 20404 account or resource not found; 21212 invalid `From`; 21606 / 21660 `From` not a number of this account for this destination; 21210 `From` not verified; 21608 trial account, unverified `To` | [`Configuration`](DeliveryErrorKind::Configuration) | no fallback; the operator fixes the gateway |
/// | any other answer | [`Transient`](DeliveryErrorKind::Transient) | when in doubt, never give up on a working contact |
///
/// Every error keeps a [`TwilioApiError`] (status and Twilio code) or the
/// HTTP client's error as its source. Carrier refusals that Twilio learns
/// of after accepting a message (30003, 30007, …) arrive at the status
/// callback, not here: the send has already succeeded.
///
/// # Example
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use ninsho::gateway::{Gateway, TwilioGateway, TwilioSender};
///
/// let twilio = TwilioGateway::builder(
///     std::env::var("TWILIO_ACCOUNT_SID")?,
///     std::env::var("TWILIO_AUTH_TOKEN")?,
///     TwilioSender::MessagingService(std::env::var("TWILIO_MESSAGING_SERVICE_SID")?),
/// )
/// .caller("+15017122661") // places the voice calls
/// .status_callback("https://example.com/twilio/status")
/// .build()?;
/// let gateway: Arc<dyn Gateway> = Arc::new(twilio);
/// # let _ = gateway;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TwilioGateway {
    client: reqwest::Client,
    account_sid: String,
    auth_token: SecretString,
    sender: TwilioSender,
    caller: Option<String>,
    status_callback: Option<String>,
    messages_url: Url,
    calls_url: Url,
    voice_ja: String,
    voice_en: String,
}

impl TwilioGateway {
    /// Starts a builder with the account SID (`AC…`), its auth token, and
    /// the SMS sender.
    pub fn builder(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        sender: TwilioSender,
    ) -> TwilioGatewayBuilder {
        TwilioGatewayBuilder {
            account_sid: account_sid.into(),
            auth_token: SecretString::new(auth_token.into()),
            sender,
            caller: None,
            status_callback: None,
            base_url: TWILIO_API.to_owned(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            voice_ja: "Polly.Mizuki".to_owned(),
            voice_en: "Polly.Joanna".to_owned(),
        }
    }

    /// The TwiML that reads `text` in `locale`'s language.
    fn twiml(&self, text: &str, locale: Locale) -> String {
        let (language, voice) = match locale {
            Locale::Ja => ("ja-JP", &self.voice_ja),
            Locale::En => ("en-US", &self.voice_en),
        };
        let mut out = String::with_capacity(text.len() + 96);
        out.push_str("<Response><Say language=\"");
        out.push_str(language);
        out.push_str("\" voice=\"");
        out.push_str(voice);
        out.push_str("\">");
        escape_xml(text, &mut out);
        out.push_str("</Say></Response>");
        out
    }

    async fn post(&self, url: &Url, form: &[(&str, &str)]) -> Result<Receipt, DeliveryError> {
        let response = self
            .client
            .post(url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(form)
            .send()
            .await
            .map_err(|e| DeliveryError::transient(e.without_url()))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        // The body is read even for an error: it holds Twilio's code.
        let body = response.bytes().await;
        if status.is_success() {
            // Twilio accepted the message: a body we can't read must not
            // turn that into a failure (a retry would send it twice).
            let sid = body
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("sid")?.as_str().map(str::to_owned));
            return Ok(Receipt::new(sid));
        }
        let code = body
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("code")?.as_u64())
            .and_then(|c| u32::try_from(c).ok());
        let error = TwilioApiError {
            status: status.as_u16(),
            code,
        };
        let kind = classify(status, code);
        let mut delivery = match kind {
            DeliveryErrorKind::RateLimited => DeliveryError::rate_limited(None, error),
            DeliveryErrorKind::InvalidDestination => DeliveryError::invalid_destination(error),
            DeliveryErrorKind::Refused => DeliveryError::refused(error),
            DeliveryErrorKind::Configuration => DeliveryError::configuration(error),
            DeliveryErrorKind::Transient => DeliveryError::transient(error),
        };
        if let Some(delay) = retry_after.filter(|_| !kind.is_permanent()) {
            delivery = delivery.with_retry_after(delay);
        }
        Err(delivery)
    }
}

/// The kind of a Twilio error answer: the table on [`TwilioGateway`].
fn classify(status: StatusCode, code: Option<u32>) -> DeliveryErrorKind {
    match code {
        Some(21211 | 21217) => DeliveryErrorKind::InvalidDestination,
        Some(21614 | 21407 | 21610 | 21408 | 21612 | 21215) => DeliveryErrorKind::Refused,
        Some(20429) => DeliveryErrorKind::RateLimited,
        Some(20003 | 20404 | 21212 | 21606 | 21660 | 21210 | 21608) => {
            DeliveryErrorKind::Configuration
        }
        _ if status == StatusCode::TOO_MANY_REQUESTS => DeliveryErrorKind::RateLimited,
        _ if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => {
            DeliveryErrorKind::Configuration
        }
        _ => DeliveryErrorKind::Transient,
    }
}

/// `Retry-After` in whole seconds (the form Twilio uses), if present.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<time::Duration> {
    let secs: u32 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(time::Duration::seconds(i64::from(secs)))
}

fn escape_xml(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 text.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
}

#[async_trait::async_trait]
impl Gateway for TwilioGateway {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        let to = message.to.as_str();
        let body = message.body.expose_secret();
        match message.channel {
            Channel::Sms => {
                let mut form = vec![("To", to)];
                match &self.sender {
                    TwilioSender::From(from) => form.push(("From", from)),
                    TwilioSender::MessagingService(sid) => {
                        form.push(("MessagingServiceSid", sid));
                    }
                }
                form.push(("Body", body));
                if let Some(callback) = &self.status_callback {
                    form.push(("StatusCallback", callback));
                }
                self.post(&self.messages_url, &form).await
            }
            Channel::Voice => {
                let Some(caller) = &self.caller else {
                    return Err(DeliveryError::refused(
                        "this Twilio gateway has no caller number for voice calls",
                    ));
                };
                let twiml = SecretString::new(self.twiml(body, message.locale));
                let mut form = vec![
                    ("To", to),
                    ("From", caller),
                    ("Twiml", twiml.expose_secret()),
                ];
                if let Some(callback) = &self.status_callback {
                    form.push(("StatusCallback", callback));
                }
                self.post(&self.calls_url, &form).await
            }
            Channel::Email => Err(DeliveryError::refused(
                "the Twilio gateway sends SMS and voice calls, not email",
            )),
        }
    }
}

impl fmt::Debug for TwilioGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioGateway")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .field("sender", &self.sender)
            .field("caller", &self.caller)
            .field("status_callback", &self.status_callback)
            .field("messages_url", &self.messages_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Configures a [`TwilioGateway`]; start with [`TwilioGateway::builder`].
///
/// Needs the `twilio` feature.
#[must_use]
pub struct TwilioGatewayBuilder {
    account_sid: String,
    auth_token: SecretString,
    sender: TwilioSender,
    caller: Option<String>,
    status_callback: Option<String>,
    base_url: String,
    timeout: Duration,
    connect_timeout: Duration,
    voice_ja: String,
    voice_en: String,
}

impl TwilioGatewayBuilder {
    /// The Twilio number (E.164) that places voice calls. Defaults to the
    /// [`TwilioSender::From`] number when that is an E.164 number; without
    /// one, voice messages are refused and ninsho moves on.
    pub fn caller(mut self, number: impl Into<String>) -> Self {
        self.caller = Some(number.into());
        self
    }

    /// The URL Twilio posts delivery status to (`StatusCallback`), for
    /// every SMS and call. None by default.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        self
    }

    /// Where the API lives, [`TWILIO_API`] by default: for a regional edge
    /// (`https://api.dublin.ie1.twilio.com`) or a local test server. Must be
    /// `https`, except `http` to a loopback address (`127.0.0.1`, `[::1]`,
    /// `localhost`), which tests use.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The whole request's time limit (10 s by default). A request that
    /// runs out fails as [`Transient`](DeliveryErrorKind::Transient).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connection's time limit (5 s by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The `<Say>` voice for `locale` (`Polly.Mizuki` for Japanese and
    /// `Polly.Joanna` for English by default); any voice Twilio offers for
    /// `ja-JP` or `en-US`.
    pub fn say_voice(mut self, locale: Locale, voice: impl Into<String>) -> Self {
        let voice = voice.into();
        match locale {
            Locale::Ja => self.voice_ja = voice,
            Locale::En => self.voice_en = voice,
        }
        self
    }

    /// Checks the settings and builds the gateway and its HTTP client (one
    /// connection pool, shared by clones).
    ///
    /// # Errors
    /// A [`TwilioBuildError`] naming the setting that is wrong.
    pub fn build(self) -> Result<TwilioGateway, TwilioBuildError> {
        if !is_sid(&self.account_sid, "AC") {
            return Err(TwilioBuildError::AccountSid);
        }
        let token = self.auth_token.expose_secret();
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(TwilioBuildError::AuthToken);
        }
        let caller = match (&self.sender, self.caller) {
            (TwilioSender::MessagingService(sid), caller) => {
                if !is_sid(sid, "MG") {
                    return Err(TwilioBuildError::Sender);
                }
                caller
            }
            (TwilioSender::From(from), caller) => {
                if from.trim().is_empty() || from.chars().any(char::is_control) {
                    return Err(TwilioBuildError::Sender);
                }
                caller.or_else(|| is_e164(from).then(|| from.clone()))
            }
        };
        if caller.as_deref().is_some_and(|c| !is_e164(c)) {
            return Err(TwilioBuildError::Caller);
        }
        if let Some(callback) = &self.status_callback {
            let ok = Url::parse(callback).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(TwilioBuildError::StatusCallback);
            }
        }
        for voice in [&self.voice_ja, &self.voice_en] {
            let ok = !voice.is_empty()
                && voice
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !ok {
                return Err(TwilioBuildError::Voice);
            }
        }
        let base = Url::parse(&self.base_url).map_err(|_| TwilioBuildError::BaseUrl)?;
        let https = base.scheme() == "https";
        if !(https || base.scheme() == "http" && is_loopback(&base)) {
            return Err(TwilioBuildError::BaseUrl);
        }
        let endpoint = |resource: &str| {
            base.join(&format!(
                "/2010-04-01/Accounts/{}/{resource}.json",
                self.account_sid
            ))
            .map_err(|_| TwilioBuildError::BaseUrl)
        };
        let messages_url = endpoint("Messages")?;
        let calls_url = endpoint("Calls")?;
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(https)
            .build()
            .map_err(TwilioBuildError::Client)?;
        Ok(TwilioGateway {
            client,
            account_sid: self.account_sid,
            auth_token: self.auth_token,
            sender: self.sender,
            caller,
            status_callback: self.status_callback,
            messages_url,
            calls_url,
            voice_ja: self.voice_ja,
            voice_en: self.voice_en,
        })
    }
}

impl fmt::Debug for TwilioGatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioGatewayBuilder")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .field("sender", &self.sender)
            .field("caller", &self.caller)
            .field("status_callback", &self.status_callback)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// `prefix` and 32 hexadecimal digits, as Twilio's SIDs are.
fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `+` and 8 to 15 digits, the first not 0.
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const MG: &str = "MG0123456789abcdef0123456789abcdef";

    fn builder() -> TwilioGatewayBuilder {
        TwilioGateway::builder(SID, "tok3n", TwilioSender::From("+15017122661".into()))
    }

    #[test]
    fn classify_follows_the_table() {
        let bad = StatusCode::BAD_REQUEST;
        use DeliveryErrorKind as K;
        for (status, code, kind) in [
            (bad, Some(21211), K::InvalidDestination),
            (bad, Some(21217), K::InvalidDestination),
            (bad, Some(21614), K::Refused),
            (bad, Some(21610), K::Refused),
            (bad, Some(21408), K::Refused),
            (bad, Some(21612), K::Refused),
            (bad, Some(21407), K::Refused),
            (bad, Some(21215), K::Refused),
            (StatusCode::TOO_MANY_REQUESTS, Some(20429), K::RateLimited),
            (StatusCode::TOO_MANY_REQUESTS, None, K::RateLimited),
            (StatusCode::UNAUTHORIZED, Some(20003), K::Configuration),
            (StatusCode::FORBIDDEN, None, K::Configuration),
            (StatusCode::NOT_FOUND, Some(20404), K::Configuration),
            (bad, Some(21606), K::Configuration),
            (bad, Some(21212), K::Configuration),
            (bad, Some(21608), K::Configuration),
            (StatusCode::INTERNAL_SERVER_ERROR, Some(20500), K::Transient),
            (StatusCode::SERVICE_UNAVAILABLE, None, K::Transient),
            (bad, Some(99999), K::Transient),
            (bad, None, K::Transient),
        ] {
            assert_eq!(classify(status, code), kind, "{status} {code:?}");
        }
    }

    #[test]
    fn twiml_escapes_the_text() {
        let g = builder().build().unwrap();
        assert_eq!(
            g.twiml("A & B <1, 2> \"x\" 'y'\u{7}", Locale::En),
            "<Response><Say language=\"en-US\" voice=\"Polly.Joanna\">\
             A &amp; B &lt;1, 2&gt; &quot;x&quot; &apos;y&apos; </Say></Response>"
        );
        assert!(
            g.twiml("1、2", Locale::Ja)
                .starts_with("<Response><Say language=\"ja-JP\" voice=\"Polly.Mizuki\">1、2<")
        );
    }

    #[test]
    fn build_checks_every_setting() {
        let err = |b: TwilioGatewayBuilder| b.build().unwrap_err().to_string();
        assert!(
            err(TwilioGateway::builder(
                "AC12",
                "t",
                TwilioSender::From("+15017122661".into())
            ))
            .contains("account SID")
        );
        assert!(
            err(TwilioGateway::builder(
                SID,
                "",
                TwilioSender::From("+15017122661".into())
            ))
            .contains("auth token")
        );
        assert!(
            err(TwilioGateway::builder(
                SID,
                "t",
                TwilioSender::MessagingService("MG1".into())
            ))
            .contains("sender")
        );
        assert!(
            err(TwilioGateway::builder(
                SID,
                "t",
                TwilioSender::From(" ".into())
            ))
            .contains("sender")
        );
        assert!(err(builder().caller("0312345678")).contains("caller"));
        assert!(err(builder().base_url("http://api.twilio.com")).contains("base URL"));
        assert!(err(builder().base_url("http://10.0.0.1:8080")).contains("base URL"));
        assert!(err(builder().base_url("ftp://127.0.0.1")).contains("base URL"));
        assert!(err(builder().status_callback("not a url")).contains("status callback"));
        assert!(err(builder().say_voice(Locale::Ja, "x\"><Play>")).contains("voice name"));
        builder().base_url("http://127.0.0.1:1234").build().unwrap();
        builder().base_url("http://[::1]:1234/").build().unwrap();
        builder().base_url("http://localhost").build().unwrap();
        builder()
            .base_url("https://api.dublin.ie1.twilio.com")
            .build()
            .unwrap();

        // A From number places the calls; a Messaging Service or a sender ID needs a caller.
        assert_eq!(
            builder().build().unwrap().caller.as_deref(),
            Some("+15017122661")
        );
        let mg = TwilioGateway::builder(SID, "t", TwilioSender::MessagingService(MG.into()));
        assert_eq!(mg.build().unwrap().caller, None);
        let alpha = TwilioGateway::builder(SID, "t", TwilioSender::From("Ninsho".into()));
        assert_eq!(alpha.build().unwrap().caller, None);
    }

    #[test]
    fn debug_redacts_the_auth_token() {
        let b = TwilioGateway::builder(
            SID,
            "s3cr3t-token",
            TwilioSender::MessagingService(MG.into()),
        );
        assert!(!format!("{b:?}").contains("s3cr3t-token"));
        let g = b.build().unwrap();
        let debug = format!("{g:?}");
        assert!(!debug.contains("s3cr3t-token"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
    }

    #[test]
    fn api_error_display_keeps_status_and_code() {
        let e = TwilioApiError {
            status: 400,
            code: Some(21614),
        };
        assert_eq!(
            e.to_string(),
            "Twilio answered HTTP 400 with error 21614 (https://www.twilio.com/docs/errors/21614)"
        );
        let e = TwilioApiError {
            status: 503,
            code: None,
        };
        assert_eq!(e.to_string(), "Twilio answered HTTP 503");
    }
}
