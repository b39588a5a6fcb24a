//! [`Problem`]: ninsho's errors as RFC 9457 problem details.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{AccountRefusal, CodeRefusal, ContactRefusal, Error, Refusal, SendRefusal};
use crate::gateway::DeliveryErrorKind;
use crate::model::Locale;
use crate::random::{OsRandom, Random};
use crate::store::StoreErrorKind;

/// The media type of a problem body (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where the problem type URIs point: this module's documentation, whose
/// status table lists every code. A problem's `type` is this followed by
/// its code.
pub const PROBLEM_TYPE_BASE: &str = "https://docs.rs/ninsho/latest/ninsho/web/index.html#";

/// The code of every infrastructure failure that a retry cannot fix.
const INTERNAL: &str = "internal_error";

/// An RFC 9457 problem details object, ready to be an HTTP response.
///
/// Made from an [`Error`] with [`Problem::from_error`] (or `From`), or by
/// the host for its own refusals with [`Problem::new`]. Serialised, it is
///
/// ```json
/// {"type": "https://docs.rs/ninsho/latest/ninsho/web/index.html#wrong_code",
///  "title": "Wrong code", "status": 401,
///  "detail": "The code is wrong. 2 attempts left.",
///  "code": "wrong_code", "attempts_left": 2}
/// ```
///
/// `code` is ninsho's stable code ([`Refusal::code`],
/// [`ContactError::code`](crate::contact::ContactError::code), or one of
/// the infrastructure codes of the [status table](super#status-codes)); the
/// refusal's figures follow as extension members. An infrastructure failure
/// carries a `correlation_id` and nothing about its cause.
///
/// Its fields are fixed at creation, member order is fixed, and nothing in
/// it is per request except the correlation id of an infrastructure
/// failure: two equal refusals at the same instant give byte-identical
/// bodies, which the anti-enumeration answers rely on.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    status: StatusCode,
    code: String,
    title: String,
    detail: Option<String>,
    instance: Option<String>,
    retry_after: Option<u64>,
    correlation_id: Option<String>,
    extensions: BTreeMap<String, Value>,
}

/// The member names RFC 9457 and ninsho use themselves; extensions can't
/// take them.
const RESERVED: [&str; 8] = [
    "type",
    "title",
    "status",
    "detail",
    "instance",
    "code",
    "correlation_id",
    "retry_after",
];

impl Problem {
    /// A problem of the host's own: `status`, a stable snake_case `code`
    /// and a short human `title`.
    #[must_use]
    pub fn new(status: StatusCode, code: impl Into<String>, title: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            title: title.into(),
            detail: None,
            instance: None,
            retry_after: None,
            correlation_id: None,
            extensions: BTreeMap::new(),
        }
    }

    /// The problem for `error`: its `title` in English, the same for every
    /// occurrence of its type (RFC 9457 §3.1.3), its `detail` in `locale`
    /// with waits counted from `now`, and its `Retry-After` counted from
    /// `now` too. Pass the time of the clock the service was built with, so
    /// that both agree with the refusal's own times (and tests can use a
    /// [`ManualClock`](crate::ManualClock)).
    ///
    /// A refused phone number or email address keeps its own stable code
    /// ([`ContactError::code`](crate::contact::ContactError::code)); its
    /// detail is the refusal's English text, as ninsho has no other (map
    /// the code to the host's own words for other locales).
    ///
    /// An infrastructure failure gets a fresh correlation id, and its cause
    /// is logged with `tracing::error!` under that id (target
    /// `ninsho::web`); the problem says nothing about the cause.
    #[must_use]
    pub fn from_error(error: &Error, locale: Locale, now: OffsetDateTime) -> Self {
        Self::build(error, locale, now, None)
    }

    /// As [`from_error`](Self::from_error), with the host's own
    /// correlation id (a request id from its tracing or proxy) instead of a
    /// fresh one.
    #[must_use]
    pub fn from_error_with_id(
        error: &Error,
        locale: Locale,
        now: OffsetDateTime,
        correlation_id: &str,
    ) -> Self {
        Self::build(error, locale, now, Some(correlation_id))
    }

    fn build(error: &Error, locale: Locale, now: OffsetDateTime, id: Option<&str>) -> Self {
        match error {
            Error::Refused(refusal) => Self::refusal(*refusal, locale, now),
            Error::Contact(e) => {
                let mut p = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    e.code(),
                    "Invalid contact",
                );
                // The refusal's own text names no part of the address.
                p.detail = Some(e.to_string());
                p
            }
            Error::Otp(e) => {
                let mut p = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_authenticator",
                    "Invalid authenticator parameters",
                );
                p.detail = Some(e.to_string());
                p
            }
            Error::Delivery { source, .. } => match source.kind() {
                DeliveryErrorKind::InvalidDestination => {
                    let ja = matches!(locale, Locale::Ja);
                    let mut p = Self::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "undeliverable",
                        "Cannot be delivered",
                    );
                    p.detail = Some(
                        pick(
                            ja,
                            "この連絡先にはメッセージを送れません。別の電話番号かメールアドレスを使ってください。",
                            "Messages can't reach this contact. Use another phone number or email address.",
                        )
                        .to_owned(),
                    );
                    p
                }
                DeliveryErrorKind::Refused => {
                    let ja = matches!(locale, Locale::Ja);
                    let mut p = Self::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "delivery_refused",
                        "Delivery refused",
                    );
                    p.detail = Some(
                        pick(
                            ja,
                            "メッセージが受信側で拒否されました。受信設定を確認するか、別の方法を選んでください。",
                            "The message was refused on the receiving side. Check the phone's or mailbox's settings, or choose another option.",
                        )
                        .to_owned(),
                    );
                    p
                }
                DeliveryErrorKind::Transient | DeliveryErrorKind::RateLimited => {
                    let mut p = Self::unavailable(error, locale, id, "delivery_unavailable");
                    p.retry_after = source
                        .retry_after()
                        .map(|wait| seconds_up(wait.whole_seconds(), wait.subsec_nanoseconds()));
                    p
                }
                _ => Self::internal(error, locale, id),
            },
            Error::Store(e) => match e.kind() {
                StoreErrorKind::Unavailable | StoreErrorKind::Conflict => {
                    Self::unavailable(error, locale, id, "store_unavailable")
                }
                _ => Self::internal(error, locale, id),
            },
            // Random, Key, Misuse, RetiredKey and whatever comes later:
            // nothing the user can change.
            _ => Self::internal(error, locale, id),
        }
    }

    fn refusal(refusal: Refusal, locale: Locale, now: OffsetDateTime) -> Self {
        let (status, title) = refusal_status(&refusal);
        let mut p = Self::new(status, refusal.code(), title);
        p.detail = Some(refusal.message(locale, now));
        p.retry_after = refusal.retry_at().map(|at| {
            let wait = at - now;
            seconds_up(wait.whole_seconds(), wait.subsec_nanoseconds())
        });
        // The refusal's figures (attempts left, when to retry, which
        // limit), as its own JSON has them, minus the code already given.
        if let Ok(Value::Object(fields)) = serde_json::to_value(refusal) {
            for (name, value) in fields {
                if !RESERVED.contains(&name.as_str()) {
                    p.extensions.insert(name, value);
                }
            }
        }
        p
    }

    fn internal(error: &Error, locale: Locale, id: Option<&str>) -> Self {
        let ja = matches!(locale, Locale::Ja);
        let mut p = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            INTERNAL,
            "Internal error",
        );
        p.detail = Some(
            pick(
                ja,
                "サーバー側で問題が発生しました。お問い合わせの際は correlation_id をお伝えください。",
                "Something went wrong on our side. Quote the correlation_id if you contact support.",
            )
            .to_owned(),
        );
        p.log(error, id);
        p
    }

    fn unavailable(error: &Error, locale: Locale, id: Option<&str>, code: &str) -> Self {
        let ja = matches!(locale, Locale::Ja);
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            "Temporarily unavailable",
        );
        p.detail = Some(
            pick(
                ja,
                "一時的な問題が発生しました。しばらくしてからもう一度お試しください。",
                "A temporary problem on our side. Try again in a moment.",
            )
            .to_owned(),
        );
        p.log(error, id);
        p
    }

    /// Gives the problem a correlation id and logs `error` under it.
    fn log(&mut self, error: &Error, id: Option<&str>) {
        let id = id.map_or_else(fresh_id, str::to_owned);
        // `?`: a host-supplied id (a client's X-Request-Id, say) is
        // quoted and escaped, so it can't forge log lines.
        tracing::error!(
            target: "ninsho::web",
            correlation_id = ?id,
            status = self.status.as_u16(),
            code = %self.code,
            error = %Chain(error),
            "ninsho request failed"
        );
        self.correlation_id = Some(id);
    }

    /// Sets the human explanation of this occurrence (RFC 9457 `detail`).
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the URI of this occurrence (RFC 9457 `instance`), e.g. the
    /// request path.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Sets the `Retry-After` header, in seconds.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds an extension member. Names RFC 9457 or ninsho use themselves
    /// (`type`, `title`, `status`, `detail`, `instance`, `code`,
    /// `correlation_id`, `retry_after`) are ignored, as are values that do
    /// not serialise.
    #[must_use]
    pub fn with_extension(mut self, name: &str, value: impl Serialize) -> Self {
        if !RESERVED.contains(&name)
            && let Ok(value) = serde_json::to_value(value)
        {
            self.extensions.insert(name.to_owned(), value);
        }
        self
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code (`wrong_code`, `rate_limited`, `internal_error`, …).
    #[must_use]
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The problem type URI: [`PROBLEM_TYPE_BASE`] and the code.
    #[must_use]
    pub fn type_uri(&self) -> String {
        format!("{PROBLEM_TYPE_BASE}{}", self.code)
    }

    /// The short summary, the same for every occurrence of the type.
    #[must_use]
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The explanation of this occurrence, for the user.
    #[must_use]
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The `Retry-After` the response carries, in whole seconds.
    #[must_use]
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The id an infrastructure failure was logged under.
    #[must_use]
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// The body, as `application/problem+json` bytes.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        // A map of strings and JSON values always serialises; the fallback
        // keeps the promise of a problem body without a panic path.
        serde_json::to_vec(self).unwrap_or_else(|_| {
            format!(r#"{{"title":"Internal error","status":500,"code":"{INTERNAL}"}}"#).into_bytes()
        })
    }
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", &self.type_uri())?;
        map.serialize_entry("title", &self.title)?;
        map.serialize_entry("status", &self.status.as_u16())?;
        if let Some(detail) = &self.detail {
            map.serialize_entry("detail", detail)?;
        }
        if let Some(instance) = &self.instance {
            map.serialize_entry("instance", instance)?;
        }
        map.serialize_entry("code", &self.code)?;
        if let Some(id) = &self.correlation_id {
            map.serialize_entry("correlation_id", id)?;
        }
        for (name, value) in &self.extensions {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.title)
    }
}

impl From<&Error> for Problem {
    /// [`Problem::from_error`] in English at the system clock's now.
    fn from(error: &Error) -> Self {
        Self::from_error(error, Locale::En, OffsetDateTime::now_utc())
    }
}

impl From<Error> for Problem {
    /// [`Problem::from_error`] in English at the system clock's now.
    fn from(error: Error) -> Self {
        Self::from(&error)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.to_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        // An answer about one attempt at one moment: never reused from a
        // cache (a 404 or 410 to a GET would otherwise be cacheable).
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl IntoResponse for Error {
    /// The [`Problem`] at the system clock's now, in English. A handler
    /// that wants another locale, or the service's clock, returns
    /// [`Problem::from_error`] instead.
    fn into_response(self) -> Response {
        Problem::from(&self).into_response()
    }
}

/// The status and title of each refusal (the table in the module docs).
/// No wildcard: a new refusal must be placed here before it compiles.
fn refusal_status(refusal: &Refusal) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match refusal {
        Refusal::Code(r) => match r {
            CodeRefusal::WrongCode { .. } => (S::UNAUTHORIZED, "Wrong code"),
            CodeRefusal::WrongRecoveryCode => (S::UNAUTHORIZED, "Wrong recovery code"),
            CodeRefusal::Expired => (S::GONE, "Code expired"),
            CodeRefusal::TooManyAttempts => (S::GONE, "Too many attempts"),
            CodeRefusal::AlreadyUsed => (S::GONE, "Already used"),
            CodeRefusal::Unknown => (S::NOT_FOUND, "Unknown code or link"),
            CodeRefusal::PurposeMismatch => (S::UNPROCESSABLE_ENTITY, "Code for another purpose"),
            CodeRefusal::DestinationMismatch => {
                (S::UNPROCESSABLE_ENTITY, "Code for another contact")
            }
            CodeRefusal::Denied => (S::FORBIDDEN, "Sign-in denied"),
        },
        Refusal::Send(r) => match r {
            SendRefusal::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "Too many requests"),
            SendRefusal::Cooldown { .. } => (S::TOO_MANY_REQUESTS, "Code just sent"),
            SendRefusal::SendsUsedUp => (S::TOO_MANY_REQUESTS, "Sends used up"),
            SendRefusal::NoMoreOptions => (S::CONFLICT, "No other option"),
            SendRefusal::ContactNotConfirmed => (S::UNPROCESSABLE_ENTITY, "Contact not confirmed"),
        },
        Refusal::Contact(r) => match r {
            ContactRefusal::InUse => (S::CONFLICT, "Contact in use"),
            ContactRefusal::AlreadyAdded => (S::CONFLICT, "Contact already added"),
            ContactRefusal::NotOnAccount => (S::NOT_FOUND, "Not a contact of the account"),
            ContactRefusal::TooMany => (S::CONFLICT, "Too many contacts"),
            ContactRefusal::Required => (S::CONFLICT, "Contact required"),
            ContactRefusal::Unverified { .. } => (S::CONFLICT, "Contacts not verified"),
        },
        Refusal::Account(r) => match r {
            AccountRefusal::Locked { until: Some(_) } => (S::TOO_MANY_REQUESTS, "Try again later"),
            AccountRefusal::Locked { until: None } => (S::FORBIDDEN, "Account locked"),
            AccountRefusal::StepUpRequired => (S::FORBIDDEN, "Second factor required"),
            AccountRefusal::TwoFactorAlreadyOn => (S::CONFLICT, "Two-step sign-in already on"),
            AccountRefusal::TwoFactorOff => (S::CONFLICT, "Two-step sign-in off"),
            AccountRefusal::NoSuchMethod => (S::UNPROCESSABLE_ENTITY, "No such method"),
            AccountRefusal::NoSecondFactor => (S::CONFLICT, "No second factor"),
            AccountRefusal::NotFound => (S::NOT_FOUND, "Not found"),
        },
    }
}

fn pick(ja: bool, ja_text: &'static str, en_text: &'static str) -> &'static str {
    if ja { ja_text } else { en_text }
}

/// A wait in whole seconds, rounded up, never negative.
fn seconds_up(whole: i64, nanos: i32) -> u64 {
    let up = whole.saturating_add(i64::from(nanos > 0));
    u64::try_from(up).unwrap_or(0)
}

/// A correlation id: 128 random bits in hex, or, should the random source
/// fail, the time and a process-wide counter (unique, not secret).
fn fresh_id() -> String {
    let mut bytes = [0u8; 16];
    if OsRandom.fill(&mut bytes).is_ok() {
        let mut id = String::with_capacity(32);
        for b in bytes {
            let _ = write!(id, "{b:02x}");
        }
        return id;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "t{:x}-{n:x}",
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    )
}

/// An error and its sources, one `: ` apart. ninsho's errors carry no
/// secret (its secret types redact), so this is safe to log.
struct Chain<'a>(&'a Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_and_never_go_negative() {
        assert_eq!(seconds_up(41, 1), 42);
        assert_eq!(seconds_up(42, 0), 42);
        assert_eq!(seconds_up(-3, 0), 0);
        assert_eq!(seconds_up(0, 0), 0);
    }

    #[test]
    fn correlation_ids_are_fresh() {
        let (a, b) = (fresh_id(), fresh_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn extensions_cannot_take_reserved_names() {
        let p = Problem::new(StatusCode::BAD_REQUEST, "mine", "Mine")
            .with_extension("status", 200)
            .with_extension("code", "other")
            .with_extension("hint", "try later");
        let json: Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(json["status"], 400);
        assert_eq!(json["code"], "mine");
        assert_eq!(json["hint"], "try later");
    }

    /// Collects the fields of every event, as `name=value` lines.
    #[derive(Default, Clone)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    struct Fields(String);

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            let _ = write!(self.0, "{}={value} ", field.name());
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut fields = Fields(format!("target={} ", event.metadata().target()));
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn the_cause_is_logged_under_the_id_the_body_shows() {
        use crate::store::StoreError;
        let capture = Capture::default();
        let error = Error::from(StoreError::other(std::io::Error::other(
            "disk full on db-7",
        )));
        let problem = tracing::subscriber::with_default(capture.clone(), || {
            Problem::from_error(&error, Locale::En, OffsetDateTime::UNIX_EPOCH)
        });
        let id = problem.correlation_id().unwrap().to_owned();
        let body = String::from_utf8(problem.to_json()).unwrap();
        assert!(body.contains(&id) && !body.contains("disk full"), "{body}");
        let logged = capture.0.lock().unwrap().clone();
        assert_eq!(logged.len(), 1, "{logged:?}");
        let line = &logged[0];
        assert!(line.contains("target=ninsho::web "), "{line}");
        assert!(
            line.contains(&format!("correlation_id=\"{id}\" ")),
            "{line}"
        );
        assert!(
            line.contains("the store failed: disk full on db-7"),
            "{line}"
        );
        assert!(line.contains("status=500"), "{line}");

        // A host's id (perhaps a client's request id) can't forge a line.
        let _ = tracing::subscriber::with_default(capture.clone(), || {
            Problem::from_error_with_id(
                &error,
                Locale::En,
                OffsetDateTime::UNIX_EPOCH,
                "r1\nERROR forged entry",
            )
        });
        let logged = capture.0.lock().unwrap().clone();
        assert_eq!(logged.len(), 2, "{logged:?}");
        assert!(
            logged[1].contains(r#"correlation_id="r1\nERROR forged entry""#),
            "{}",
            logged[1]
        );
        capture.0.lock().unwrap().pop();

        // Refusals are the user's side: nothing is logged, no id is given.
        let refused = tracing::subscriber::with_default(capture.clone(), || {
            Problem::from_error(
                &Error::from(CodeRefusal::Expired),
                Locale::En,
                OffsetDateTime::UNIX_EPOCH,
            )
        });
        assert_eq!(refused.correlation_id(), None);
        assert_eq!(capture.0.lock().unwrap().len(), 1);
    }
}
