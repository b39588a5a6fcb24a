//! The gateway port: how ninsho hands outbound messages to the host.
//!
//! ninsho decides *what* to send (a code by SMS, a sign-in link by email, a
//! voice call reading a code) and renders the text from [`Templates`], in
//! the user's language and worded for why it is sent ([`Occasion`]); the
//! host decides *how*, by implementing [`Gateway`] over its SMS API, mail
//! server or voice provider. A [`Message`] carries the channel, destination,
//! rendered text, and the bare secret for gateways that fill a
//! provider-side template themselves. The gateway answers with a [`Receipt`]
//! or a [`DeliveryError`] whose [`DeliveryErrorKind`] tells ninsho whether to
//! fall back to another channel, retry later, or give up on the destination.
//!
//! For tests and examples:
//!
//! - [`RecordingGateway`] keeps every message and can be scripted to fail,
//!   so a test can read the code that was "sent" and check fallbacks;
//! - [`ConsoleGateway`] prints messages to standard output.
//!
//! For sending for real, with the feature named:
//!
//! - `SmtpGateway` (feature `smtp`) sends email through an SMTP server;
//! - `TwilioGateway` (feature `twilio`) sends SMS and voice calls through
//!   Twilio's REST API;
//! - [`ByChannel`] puts them together: each channel to its own gateway.
//!
//! [`sms_info`] tells how many SMS segments a text costs.

mod console;
mod recording;
mod route;
mod sms;
#[cfg(feature = "smtp")]
mod smtp;
mod templates;
#[cfg(feature = "twilio")]
mod twilio;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Channel, Locale};
use crate::secret::SecretString;

pub use console::ConsoleGateway;
pub use recording::{Attempt, RecordingGateway};
pub use route::ByChannel;
pub use sms::{SmsEncoding, SmsInfo, sms_info};
#[cfg(feature = "smtp")]
pub use smtp::{SmtpConfigError, SmtpGateway, SmtpGatewayBuilder, SmtpTls};
pub use templates::{
    CodeParams, LinkParams, Occasion, Rendered, TemplateError, TemplateKind, Templates,
};
#[cfg(feature = "twilio")]
pub use twilio::{
    TWILIO_API, TwilioApiError, TwilioBuildError, TwilioGateway, TwilioGatewayBuilder, TwilioSender,
};

/// One outbound message, ready for a [`Gateway`].
///
/// `body` is the full text to deliver (for voice, the text to speak); it
/// contains the code or link, so it is a [`SecretString`] and `Debug` redacts
/// it, as it does `secret`. `Debug` shows `to` masked (`+81 **-****-5678`,
/// `ta*********@example.com`): the recipient is personal data. A gateway whose provider renders its own
/// template (a pre-approved SMS template, a voice script) uses `secret`, the
/// bare code or URL, instead of `body`.
#[derive(Clone)]
#[non_exhaustive]
pub struct Message {
    /// The channel to send on.
    pub channel: Channel,
    /// The destination: an E.164 phone number (`+819012345678`) for SMS and
    /// voice, an email address for email.
    pub to: String,
    /// The subject line; email only.
    pub subject: Option<String>,
    /// The text to deliver (or speak). Contains the secret.
    pub body: SecretString,
    /// The bare code or URL that `body` contains, if the message carries one.
    pub secret: Option<SecretString>,
    /// Encoding and segment count of `body`; set for SMS only.
    pub sms: Option<SmsInfo>,
    /// The language of `body`.
    pub locale: Locale,
}

impl Message {
    /// A message with no bare [`secret`](Self::secret) (add it with
    /// [`with_secret`](Self::with_secret)). For SMS, [`sms`](Self::sms) is
    /// computed from `body`.
    ///
    /// ninsho builds the messages it sends; this constructor is public so
    /// hosts can test their own [`Gateway`] implementations.
    #[must_use]
    pub fn new(
        channel: Channel,
        to: impl Into<String>,
        subject: Option<String>,
        body: impl Into<SecretString>,
        locale: Locale,
    ) -> Self {
        let body = body.into();
        let sms = (channel == Channel::Sms).then(|| sms_info(body.expose_secret()));
        Self {
            channel,
            to: to.into(),
            subject,
            body,
            secret: None,
            sms,
            locale,
        }
    }

    /// Sets the bare code or URL that the body contains.
    #[must_use]
    pub fn with_secret(mut self, secret: impl Into<SecretString>) -> Self {
        self.secret = Some(secret.into());
        self
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("channel", &self.channel)
            .field("to", &crate::contact::mask_address(&self.to))
            .field("subject", &self.subject)
            .field("body", &"[redacted]")
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("sms", &self.sms)
            .field("locale", &self.locale)
            .finish()
    }
}

/// What a gateway reports for a message it accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Receipt {
    /// The provider's identifier for the message (for support and delivery
    /// reports), if it gave one.
    pub provider_id: Option<String>,
}

impl Receipt {
    /// A receipt with the provider's message identifier, if any.
    #[must_use]
    pub fn new(provider_id: Option<String>) -> Self {
        Self { provider_id }
    }
}

/// Why a message was not delivered, as far as ninsho's decisions go.
///
/// See [`Gateway`] for how to map a provider's errors to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryErrorKind {
    /// The number or address cannot receive anything (does not exist, is
    /// malformed). Permanent: ask the user for another contact. (A number
    /// that only can't take SMS, such as a landline, is
    /// [`Refused`](Self::Refused): a voice call may still reach it.)
    InvalidDestination,
    /// Blocked by the carrier, the provider or the user's own settings (SMS
    /// refusal, international-route blocking, an unsubscribed address).
    /// Permanent for this channel: ninsho falls back to the next channel.
    Refused,
    /// A temporary failure (timeout, provider outage). Retry later.
    Transient,
    /// The provider is throttling us. Retry after
    /// [`DeliveryError::retry_after`], if given.
    RateLimited,
    /// The gateway itself is misconfigured: the provider rejected its
    /// credentials, account or sender (a wrong API key, a suspended
    /// account, a sender number the account does not own). Not the user's
    /// fault and not about the destination, so ninsho neither blames the
    /// contact nor falls back to another channel (which would hide the
    /// problem); the call fails with an infrastructure
    /// [`Error::Delivery`](crate::Error::Delivery) and the operator must
    /// fix the configuration. Retrying before then cannot succeed.
    Configuration,
}

impl DeliveryErrorKind {
    /// Whether retrying the same message on the same channel cannot succeed
    /// ([`InvalidDestination`](Self::InvalidDestination) and
    /// [`Refused`](Self::Refused)).
    #[must_use]
    pub fn is_permanent(self) -> bool {
        matches!(self, Self::InvalidDestination | Self::Refused)
    }

    fn describe(self) -> &'static str {
        match self {
            Self::InvalidDestination => {
                "the destination cannot receive messages; ask the user for another phone number or email address"
            }
            Self::Refused => {
                "the message was refused by the carrier, provider or recipient's settings; use another channel"
            }
            Self::Transient => "the message could not be sent for now; retry later",
            Self::RateLimited => "the message provider is throttling sends; retry later",
            Self::Configuration => {
                "the message provider refused the gateway's configuration (credentials, account or sender); the operator must fix it"
            }
        }
    }
}

impl fmt::Display for DeliveryErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A message was not delivered.
///
/// Carries a [`DeliveryErrorKind`], an optional delay before retrying, and
/// the provider's own error in the [`source`](std::error::Error::source)
/// chain. It never carries the message, so it is safe to log.
#[derive(Debug, thiserror::Error)]
#[error("{}{}", .kind, RetryAfter(*.retry_after))]
pub struct DeliveryError {
    kind: DeliveryErrorKind,
    retry_after: Option<time::Duration>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Display helper: " (after N s)" when a delay is known.
struct RetryAfter(Option<time::Duration>);

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) if d.is_positive() => {
                let secs = d.whole_seconds() + i64::from(d.subsec_nanoseconds() > 0);
                write!(f, " (after {secs} s)")
            }
            _ => Ok(()),
        }
    }
}

impl DeliveryError {
    /// An error of `kind` with no source and no delay.
    #[must_use]
    pub fn new(kind: DeliveryErrorKind) -> Self {
        Self {
            kind,
            retry_after: None,
            source: None,
        }
    }

    fn with_source(
        kind: DeliveryErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            retry_after: None,
            source: Some(source.into()),
        }
    }

    /// [`DeliveryErrorKind::InvalidDestination`], keeping the provider's
    /// error (or a `&str` / `String` description) as the source.
    #[must_use]
    pub fn invalid_destination(
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::with_source(DeliveryErrorKind::InvalidDestination, source)
    }

    /// [`DeliveryErrorKind::Refused`], keeping `source`.
    #[must_use]
    pub fn refused(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::with_source(DeliveryErrorKind::Refused, source)
    }

    /// [`DeliveryErrorKind::Transient`], keeping `source`.
    #[must_use]
    pub fn transient(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::with_source(DeliveryErrorKind::Transient, source)
    }

    /// [`DeliveryErrorKind::Configuration`], keeping `source`.
    #[must_use]
    pub fn configuration(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::with_source(DeliveryErrorKind::Configuration, source)
    }

    /// [`DeliveryErrorKind::RateLimited`], with the provider's suggested
    /// delay if it gave one, keeping `source`.
    #[must_use]
    pub fn rate_limited(
        retry_after: Option<time::Duration>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            retry_after,
            ..Self::with_source(DeliveryErrorKind::RateLimited, source)
        }
    }

    /// Sets the delay before a retry may succeed (useful for
    /// [`Transient`](DeliveryErrorKind::Transient) too).
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: time::Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// What went wrong, as far as ninsho's decisions go.
    #[must_use]
    pub fn kind(&self) -> DeliveryErrorKind {
        self.kind
    }

    /// How long to wait before retrying, if the provider said.
    #[must_use]
    pub fn retry_after(&self) -> Option<time::Duration> {
        self.retry_after
    }

    /// Whether retrying on the same channel cannot succeed
    /// ([`InvalidDestination`](DeliveryErrorKind::InvalidDestination) or
    /// [`Refused`](DeliveryErrorKind::Refused)).
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        self.kind.is_permanent()
    }
}

impl From<DeliveryErrorKind> for DeliveryError {
    fn from(kind: DeliveryErrorKind) -> Self {
        Self::new(kind)
    }
}

/// The transport port: sends one [`Message`] through the host's providers.
///
/// Object safe and shareable: ninsho holds an `Arc<dyn Gateway>`. One
/// gateway may serve every channel or refuse some; return
/// [`DeliveryErrorKind::Refused`] for a channel you do not support, and
/// ninsho moves on to the next channel.
///
/// # Mapping a provider's errors
///
/// | the provider says | return |
/// |---|---|
/// | unknown, malformed or unreachable number; bounced / non-existent mailbox | [`DeliveryError::invalid_destination`] |
/// | landline (or other non-mobile number) for SMS — a voice call may still reach it; blocked by carrier or route, recipient opted out or refuses SMS, spam-blocked, channel not supported | [`DeliveryError::refused`] |
/// | timeout, connection error, 5xx, provider outage | [`DeliveryError::transient`] |
/// | HTTP 429, quota or throughput exceeded | [`DeliveryError::rate_limited`] with `Retry-After` if given |
/// | credentials refused (HTTP 401/403), unknown or suspended account, a sender the account does not own | [`DeliveryError::configuration`] |
///
/// When in doubt between `Transient` and a permanent kind, choose
/// `Transient`: a wrong permanent answer makes ninsho abandon a working
/// channel. Keep the provider's error as the source so it reaches your logs.
///
/// Use [`Message::body`] as the text to send (or speak), and
/// [`Message::subject`] for email. The body contains the code: do not log
/// it.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use ninsho::gateway::{DeliveryError, Gateway, Message, Receipt};
/// use ninsho::model::{Channel, Locale};
///
/// /// What an imaginary SMS provider's client returns.
/// enum ApiError {
///     UnknownNumber,
///     Blocked,
///     TooManyRequests { retry_secs: i64 },
///     Timeout,
/// }
///
/// #[derive(Debug)]
/// struct SmsApi;
///
/// impl SmsApi {
///     async fn post(&self, to: &str, _text: &str) -> Result<String, ApiError> {
///         match to {
///             "+819000000000" => Err(ApiError::UnknownNumber),
///             "+819011111111" => Err(ApiError::Blocked),
///             "+819022222222" => Err(ApiError::TooManyRequests { retry_secs: 30 }),
///             "+819033333333" => Err(ApiError::Timeout),
///             _ => Ok("msg-42".to_owned()),
///         }
///     }
/// }
///
/// #[async_trait::async_trait]
/// impl Gateway for SmsApi {
///     async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
///         if message.channel != Channel::Sms {
///             return Err(DeliveryError::refused("this gateway only sends SMS"));
///         }
///         match self.post(&message.to, message.body.expose_secret()).await {
///             Ok(id) => Ok(Receipt::new(Some(id))),
///             Err(ApiError::UnknownNumber) => {
///                 Err(DeliveryError::invalid_destination("unknown number"))
///             }
///             Err(ApiError::Blocked) => Err(DeliveryError::refused("blocked by carrier")),
///             Err(ApiError::TooManyRequests { retry_secs }) => Err(DeliveryError::rate_limited(
///                 Some(time::Duration::seconds(retry_secs)),
///                 "HTTP 429",
///             )),
///             Err(ApiError::Timeout) => Err(DeliveryError::transient("timed out")),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let gateway: Arc<dyn Gateway> = Arc::new(SmsApi);
/// let sms = |to: &str| Message::new(Channel::Sms, to, None, "Code: 123456".to_owned(), Locale::En);
///
/// let receipt = gateway.send(&sms("+819012345678")).await.unwrap();
/// assert_eq!(receipt.provider_id.as_deref(), Some("msg-42"));
///
/// let err = gateway.send(&sms("+819011111111")).await.unwrap_err();
/// assert!(err.is_permanent()); // ninsho falls back to voice or email
///
/// let err = gateway.send(&sms("+819022222222")).await.unwrap_err();
/// assert_eq!(err.retry_after(), Some(time::Duration::seconds(30)));
/// # }
/// ```
#[async_trait::async_trait]
pub trait Gateway: Send + Sync + fmt::Debug {
    /// Sends `message`, or says why it could not.
    ///
    /// Returning `Ok` means the provider accepted the message, not that the
    /// user received it.
    ///
    /// # Errors
    /// A [`DeliveryError`] whose kind follows the table above.
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError>;
}

#[async_trait::async_trait]
impl<G: Gateway + ?Sized> Gateway for std::sync::Arc<G> {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        (**self).send(message).await
    }
}

#[async_trait::async_trait]
impl<G: Gateway + ?Sized> Gateway for Box<G> {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        (**self).send(message).await
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn channel_display_and_serde() {
        assert_eq!(Channel::Sms.to_string(), "SMS");
        assert_eq!(Channel::Voice.to_string(), "voice call");
        assert_eq!(Channel::Email.to_string(), "email");
        assert_eq!(serde_json::to_string(&Channel::Voice).unwrap(), "\"voice\"");
        assert_eq!(
            serde_json::from_str::<Channel>("\"email\"").unwrap(),
            Channel::Email
        );
    }

    #[test]
    fn message_computes_sms_info_for_sms_only() {
        let m = Message::new(
            Channel::Sms,
            "+819012345678",
            None,
            "認証コード：123456".to_owned(),
            Locale::Ja,
        );
        let info = m.sms.unwrap();
        assert_eq!(info.encoding, SmsEncoding::Ucs2);
        assert_eq!(info.units, 12);
        assert_eq!(info.segments, 1);
        assert!(m.secret.is_none());

        let m = Message::new(
            Channel::Email,
            "a@example.com",
            Some("Code".into()),
            "123456".to_owned(),
            Locale::En,
        );
        assert_eq!(m.sms, None);
        assert_eq!(m.subject.as_deref(), Some("Code"));
    }

    #[test]
    fn message_debug_redacts_body_and_secret_and_masks_the_recipient() {
        let m = Message::new(
            Channel::Sms,
            "+819012345678",
            None,
            "Your code is 482913".to_owned(),
            Locale::En,
        )
        .with_secret("482913".to_owned());
        let debug = format!("{m:?}");
        assert!(!debug.contains("482913"), "{debug}");
        assert!(!debug.contains("+819012345678"), "{debug}");
        assert!(debug.contains(r#"to: "+81 **-****-5678""#), "{debug}");
        assert!(debug.contains("secret: Some(\"[redacted]\")"));
        assert_eq!(m.clone().secret.unwrap().expose_secret(), "482913");
    }

    #[test]
    fn delivery_error_constructors_and_accessors() {
        let e = DeliveryError::invalid_destination("no such number");
        assert_eq!(e.kind(), DeliveryErrorKind::InvalidDestination);
        assert!(e.is_permanent());
        assert_eq!(e.source().unwrap().to_string(), "no such number");

        let e = DeliveryError::refused(std::io::Error::other("carrier block"));
        assert_eq!(e.kind(), DeliveryErrorKind::Refused);
        assert!(e.is_permanent());
        assert!(e.to_string().contains("another channel"));
        assert_eq!(e.source().unwrap().to_string(), "carrier block");

        let e = DeliveryError::transient("timeout");
        assert!(!e.is_permanent());
        assert!(e.to_string().contains("retry later"));
        assert_eq!(e.retry_after(), None);

        let e = DeliveryError::rate_limited(Some(time::Duration::seconds(30)), "429");
        assert_eq!(e.kind(), DeliveryErrorKind::RateLimited);
        assert!(!e.is_permanent());
        assert_eq!(e.retry_after(), Some(time::Duration::seconds(30)));
        assert!(e.to_string().ends_with("(after 30 s)"), "{e}");

        let e = DeliveryError::new(DeliveryErrorKind::Transient)
            .with_retry_after(time::Duration::milliseconds(1500));
        assert!(e.source().is_none());
        assert!(e.to_string().ends_with("(after 2 s)"), "{e}");

        let e = DeliveryError::configuration("HTTP 401");
        assert_eq!(e.kind(), DeliveryErrorKind::Configuration);
        assert!(!e.is_permanent());
        assert!(e.to_string().contains("operator must fix"), "{e}");
        assert!(!e.to_string().contains("retry"), "{e}");
        assert_eq!(
            serde_json::to_string(&DeliveryErrorKind::Configuration).unwrap(),
            "\"configuration\""
        );

        let e = DeliveryError::from(DeliveryErrorKind::InvalidDestination);
        assert!(
            e.to_string()
                .contains("another phone number or email address")
        );
    }

    #[derive(Debug)]
    struct Echo;

    #[async_trait::async_trait]
    impl Gateway for Echo {
        async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
            Ok(Receipt::new(Some(message.to.clone())))
        }
    }

    #[tokio::test]
    async fn gateway_is_object_safe_and_forwards_through_smart_pointers() {
        let m = Message::new(
            Channel::Voice,
            "+81312345678",
            None,
            "x".to_owned(),
            Locale::Ja,
        );
        let dynamic: Arc<dyn Gateway> = Arc::new(Echo);
        assert_eq!(
            dynamic.send(&m).await.unwrap().provider_id.as_deref(),
            Some("+81312345678")
        );
        let boxed: Box<dyn Gateway> = Box::new(Echo);
        assert!(boxed.send(&m).await.is_ok());
        let nested: Arc<Box<dyn Gateway>> = Arc::new(boxed);
        assert!(Gateway::send(&nested, &m).await.is_ok());
        assert_eq!(Receipt::default(), Receipt::new(None));
    }
}
