//! Writing a gateway adapter for your SMS / voice / email provider.
//!
//! ```text
//! cargo run --example custom_gateway
//! ```
//!
//! ninsho decides *what* to send and renders the text; the host decides
//! *how*, by implementing [`Gateway`] over its provider's API. The part that
//! matters is the error mapping: the [`DeliveryErrorKind`] a gateway returns
//! drives what ninsho does next.
//!
//! | kind | ninsho's reaction |
//! |---|---|
//! | [`Refused`](DeliveryErrorKind::Refused) | permanent for this channel: the fallback plan moves on (SMS → voice call) |
//! | [`InvalidDestination`](DeliveryErrorKind::InvalidDestination) | permanent for the number: no fallback, ask the user for another contact |
//! | [`Transient`](DeliveryErrorKind::Transient) | retry later: no fallback is spent, the user can resend |
//! | [`RateLimited`](DeliveryErrorKind::RateLimited) | retry after the provider's `Retry-After` |
//!
//! The provider here is simulated in-process (no network): [`FakeProvider`]
//! answers like a typical messaging HTTP API, with status codes, provider
//! error codes and `Retry-After`. [`ProviderGateway`] is the adapter: it
//! builds the provider's request from a [`Message`], sends it, and maps
//! every outcome to a [`Receipt`] or a [`DeliveryError`] that keeps the
//! provider's error as its source. The code never appears in its logs: it
//! travels inside [`SecretString`]s, whose `Debug` is redacted.
//!
//! `main` builds a [`TwoFactor`] on this gateway and, with its one-time
//! codes, and shows (a) a normal SMS,
//! (b) a carrier refusal falling back to a voice call, (c) a number that
//! does not exist, (d) a provider outage the user recovers from with
//! "resend", and (e) provider throttling.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ninsho::gateway::{DeliveryError, DeliveryErrorKind, Gateway, Message, Receipt};
use ninsho::model::Purpose;
use ninsho::prelude::*;
use ninsho::service::IssueRequest;
use ninsho::store::MemoryStore;
use ninsho::{ManualClock, SecretString};
use serde::Deserialize;
use time::Duration;

// ---------------------------------------------------------------------------
// The provider's wire format.
// ---------------------------------------------------------------------------

/// The body of `POST /v1/messages`. `Debug` is safe to log: the content is
/// a [`SecretString`].
#[derive(Debug)]
pub struct ProviderRequest {
    /// `"sms"`, `"voice"` or `"email"`.
    pub channel: &'static str,
    /// E.164 number or email address.
    pub to: String,
    /// Email only.
    pub subject: Option<String>,
    /// What to deliver.
    pub content: Content,
}

/// Either our own text, or one of the provider's pre-approved templates
/// filled with the code.
#[derive(Debug)]
pub enum Content {
    /// The text ninsho rendered ([`Message::body`]).
    Text(SecretString),
    /// A provider-side template (here: the text-to-speech script of a voice
    /// call), filled with the bare code ([`Message::secret`]).
    Template {
        /// The template's name at the provider.
        name: &'static str,
        /// Its language.
        language: &'static str,
        /// The code to read out.
        code: SecretString,
    },
}

/// An HTTP response from the provider.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Retry-After` header, in seconds.
    pub retry_after: Option<i64>,
    /// The JSON body.
    pub body: String,
}

/// The request never got a response.
#[derive(Debug, Clone, Copy)]
pub enum HttpError {
    /// No response within the client's timeout.
    Timeout,
    /// The connection failed (DNS, TLS, refused).
    Connect,
}

/// `{"message_id": "..."}`
#[derive(Deserialize)]
struct Accepted {
    message_id: String,
}

/// `{"error": {"code": 30007, "message": "..."}}`
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: u32,
    message: String,
}

// Provider error codes (modelled on the big SMS APIs).
/// The number is not a valid, existing phone number.
const INVALID_NUMBER: u32 = 21211;
/// The recipient replied STOP: they opted out of messages from us.
const OPTED_OUT: u32 = 21610;
/// The number is a landline: it cannot receive SMS.
const NOT_MOBILE: u32 = 21614;
/// The carrier filtered the message (spam filter, refusal settings,
/// blocked international route).
const CARRIER_FILTERED: u32 = 30007;
/// The mailbox does not exist (hard bounce).
const NO_MAILBOX: u32 = 60200;
/// The address is on the suppression list (earlier bounce, complaint,
/// unsubscribe).
const SUPPRESSED: u32 = 60201;

// ---------------------------------------------------------------------------
// The simulated provider.
// ---------------------------------------------------------------------------

/// A number whose carrier filters SMS (but takes voice calls).
const SMS_BLOCKED: &str = "+818011112222";
/// A well-formed number that belongs to nobody.
const NO_SUCH_NUMBER: &str = "+819099990000";

/// A stand-in for the provider's HTTP API, with a "handset" per number so
/// the demo user can hear the code a voice call reads out.
#[derive(Debug, Default)]
pub struct FakeProvider {
    state: Mutex<ProviderState>,
}

#[derive(Debug, Default)]
struct ProviderState {
    /// The next this-many requests hit an outage (HTTP 503).
    outage: u32,
    /// The next request is throttled with this `Retry-After`.
    throttle: Option<i64>,
    sent: u64,
    /// The last code read out on a call, per number.
    calls: HashMap<String, SecretString>,
}

impl FakeProvider {
    fn state(&self) -> std::sync::MutexGuard<'_, ProviderState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `requests` requests fail with HTTP 503.
    pub fn outage(&self, requests: u32) {
        self.state().outage = requests;
    }

    /// The next request is throttled: HTTP 429 with `Retry-After`.
    pub fn throttle(&self, retry_after_seconds: i64) {
        self.state().throttle = Some(retry_after_seconds);
    }

    /// What the user hears when they pick up the call to `to`.
    pub fn code_read_out(&self, to: &str) -> Option<SecretString> {
        self.state().calls.get(to).cloned()
    }

    /// `POST /v1/messages` with a bearer token.
    ///
    /// # Errors
    /// [`HttpError`] when no response comes back.
    pub async fn post(
        &self,
        api_key: &SecretString,
        request: &ProviderRequest,
    ) -> Result<HttpResponse, HttpError> {
        let reply = |status, body: serde_json::Value| {
            Ok(HttpResponse {
                status,
                retry_after: None,
                body: body.to_string(),
            })
        };
        let error = |status, code: u32, message: &str| {
            reply(
                status,
                serde_json::json!({ "error": { "code": code, "message": message } }),
            )
        };
        let mut state = self.state();
        if api_key.expose_secret().is_empty() {
            return error(401, 20003, "Authentication failed");
        }
        if state.outage > 0 {
            state.outage -= 1;
            return error(503, 20503, "Service temporarily unavailable");
        }
        if let Some(seconds) = state.throttle.take() {
            return Ok(HttpResponse {
                status: 429,
                retry_after: Some(seconds),
                body: r#"{"error":{"code":20429,"message":"Too many requests"}}"#.to_owned(),
            });
        }
        match (request.channel, request.to.as_str()) {
            (_, NO_SUCH_NUMBER) => error(400, INVALID_NUMBER, "The 'To' number is not valid"),
            ("sms", SMS_BLOCKED) => error(403, CARRIER_FILTERED, "Message filtered by carrier"),
            ("sms", "+81312345678") => {
                error(400, NOT_MOBILE, "The 'To' number is not a mobile number")
            }
            ("email", "bounced@example.com") => error(422, NO_MAILBOX, "Mailbox does not exist"),
            ("email", "unsubscribed@example.com") => {
                error(422, SUPPRESSED, "Address is on the suppression list")
            }
            (_, _) => {
                if let Content::Template { code, .. } = &request.content {
                    state.calls.insert(request.to.clone(), code.clone());
                }
                state.sent += 1;
                let id = format!("msg-{:04}", state.sent);
                reply(200, serde_json::json!({ "message_id": id }))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The adapter.
// ---------------------------------------------------------------------------

/// The provider's error, kept as the [`DeliveryError`]'s source so it
/// reaches the host's logs. It holds status and provider code only: never
/// the message or the code.
#[derive(Debug)]
pub struct ProviderError {
    status: Option<u16>,
    code: Option<u32>,
    message: String,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, self.code) {
            (Some(status), Some(code)) => {
                write!(f, "HTTP {status}, error {code}: {}", self.message)
            }
            (Some(status), None) => write!(f, "HTTP {status}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ProviderError {}

/// A [`Gateway`] over the provider's API: SMS, voice and email through one
/// account.
pub struct ProviderGateway {
    api: Arc<FakeProvider>,
    /// In a real adapter: an HTTP client with a short timeout (5 s), and
    /// the key from the secret manager.
    api_key: SecretString,
}

impl fmt::Debug for ProviderGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderGateway")
            .field("api_key", &self.api_key) // prints SecretString([redacted])
            .finish_non_exhaustive()
    }
}

impl ProviderGateway {
    /// A gateway using `api` with `api_key`.
    #[must_use]
    pub fn new(api: Arc<FakeProvider>, api_key: SecretString) -> Self {
        Self { api, api_key }
    }

    /// The provider's request for `message`.
    ///
    /// SMS and email send the text ninsho rendered (it carries the
    /// origin-bound `@example.com #123456` line for SMS autofill). The voice
    /// call uses the provider's own speech template, which needs the bare
    /// code: the one place `message.secret` is read, and it goes straight
    /// into the payload.
    fn request(message: &Message) -> Result<ProviderRequest, DeliveryError> {
        let (channel, content) = match message.channel {
            Channel::Sms => ("sms", Content::Text(message.body.clone())),
            Channel::Email => ("email", Content::Text(message.body.clone())),
            Channel::Voice => {
                // Codes always carry their secret; a message without one
                // (a one-time link) can't be read out, so this channel
                // refuses it and ninsho tries the next.
                let code = message
                    .secret
                    .clone()
                    .ok_or_else(|| DeliveryError::refused("a voice call needs a code to read"))?;
                let template = Content::Template {
                    name: "otp_call_v2",
                    language: message.locale.tag(),
                    code,
                };
                ("voice", template)
            }
            // A channel added to ninsho later, that this adapter does not
            // know: refusing it lets the plan move on.
            _ => return Err(DeliveryError::refused("channel not supported")),
        };
        Ok(ProviderRequest {
            channel,
            to: message.to.clone(),
            subject: message.subject.clone(),
            content,
        })
    }
}

/// Maps the provider's answer to ninsho's terms.
///
/// The rule of thumb: a *permanent* kind only when the provider is sure
/// this destination (or this channel to it) will never work; when in doubt,
/// `Transient`, because a wrong permanent answer makes ninsho give up on a
/// channel that works.
fn map_outcome(outcome: Result<HttpResponse, HttpError>) -> Result<Receipt, DeliveryError> {
    let response = match outcome {
        Ok(response) => response,
        // No answer: the message may or may not have gone out. Transient,
        // so the user can resend; it doesn't spend the fallback.
        Err(e) => {
            return Err(DeliveryError::transient(ProviderError {
                status: None,
                code: None,
                message: format!("no response from the provider ({e:?})"),
            }));
        }
    };
    if (200..300).contains(&response.status) {
        // Accepted. An unreadable body still means "sent": reporting a
        // failure would make the user resend and get two codes.
        let id = serde_json::from_str::<Accepted>(&response.body)
            .ok()
            .map(|a| a.message_id);
        return Ok(Receipt::new(id));
    }
    let detail = serde_json::from_str::<ErrorBody>(&response.body).ok();
    let source = ProviderError {
        status: Some(response.status),
        code: detail.as_ref().map(|d| d.error.code),
        message: detail.map_or_else(|| "unreadable error body".to_owned(), |d| d.error.message),
    };
    match (response.status, source.code) {
        // Throttled: retry after the provider's delay.
        (429, _) => Err(DeliveryError::rate_limited(
            response.retry_after.map(Duration::seconds),
            source,
        )),
        // Outage or timeout on their side: retry later.
        (500..=599, _) => Err(DeliveryError::transient(source)),
        // The number or mailbox does not exist: no channel will reach it,
        // so no fallback; the user must give another contact.
        (_, Some(INVALID_NUMBER | NO_MAILBOX)) => Err(DeliveryError::invalid_destination(source)),
        // Blocked for this channel only (carrier filter, STOP, suppression
        // list, a landline that can't take SMS): permanent, so ninsho falls
        // back to the next channel, e.g. a voice call to the same number.
        (_, Some(CARRIER_FILTERED | OPTED_OUT | NOT_MOBILE | SUPPRESSED)) => {
            Err(DeliveryError::refused(source))
        }
        // 401/403 without a destination code: our API key or account is
        // wrong. Not the user's fault and not permanent for the number:
        // transient (and page the on-call).
        // Anything else unknown: transient too, when in doubt.
        _ => Err(DeliveryError::transient(source)),
    }
}

#[async_trait]
impl Gateway for ProviderGateway {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        let request = Self::request(message)?;
        let outcome = map_outcome(self.api.post(&self.api_key, &request).await);
        // Log what support needs: channel, masked destination, outcome. The
        // content prints redacted; never log `expose_secret()`.
        let result = match &outcome {
            Ok(receipt) => format!("sent, id {}", receipt.provider_id.as_deref().unwrap_or("?")),
            Err(e) => format!(
                "{:?} ({})",
                e.kind(),
                std::error::Error::source(e).map_or_else(String::new, ToString::to_string)
            ),
        };
        println!(
            "  [gateway] {} to {}: {:?} -> {result}",
            request.channel,
            masked(&message.to),
            request.content
        );
        outcome
    }
}

/// `+81 **-****-2222` for logs.
fn masked(to: &str) -> String {
    Destination::phone(to)
        .or_else(|_| Destination::email(to))
        .map_or_else(|_| "(unparsable)".to_owned(), |d| d.masked())
}

// ---------------------------------------------------------------------------
// The demo.
// ---------------------------------------------------------------------------

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = Arc::new(FakeProvider::default());
    let gateway = ProviderGateway::new(provider.clone(), SecretString::new("sk_test_4eC3".into()));
    println!("{gateway:?}");
    let clock = ManualClock::at_unix(1_763_683_200)?; // 2025-11-21 00:00:00 UTC
    // In production: the keys from your secret manager.
    let codes = TwoFactor::builder(
        "Example",
        Arc::new(MemoryStore::new()),
        Arc::new(gateway),
        KeyedHasher::new(HashKey::new(KeyId(1), &[0x5A; 32])?),
        Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[0x5B; 32])?)),
    )
    .origin("example.com")
    .locale(Locale::En)
    .clock(Arc::new(clock.clone()))
    .build()?
    .one_time_codes();
    let sign_in = |to: &Destination| IssueRequest::new(to.clone(), Purpose::SignUp);

    println!("\n== (a) A code by SMS");
    let phone = Destination::phone("+81 90-1234-5678")?;
    let ticket = codes.send(sign_in(&phone)).await?;
    println!("Sent by {} ({:?}).", ticket.channel, ticket.reason);

    println!("\n== (b) The carrier filters SMS: fall back to a voice call");
    let blocked = Destination::phone(SMS_BLOCKED)?;
    let ticket = codes.send(sign_in(&blocked)).await?;
    println!("Sent by {} ({:?}).", ticket.channel, ticket.reason);
    let heard = provider
        .code_read_out(blocked.address())
        .ok_or("the voice call read no code")?;
    codes
        .verify(
            &ticket.challenge_id,
            heard.expose_secret(),
            &Purpose::SignUp,
            &blocked,
        )
        .await?;
    println!("The code read out on the call verifies.");

    println!("\n== (c) A number that belongs to nobody");
    let nobody = Destination::phone(NO_SUCH_NUMBER)?;
    match codes.send(sign_in(&nobody)).await {
        Err(Error::Delivery {
            channel, source, ..
        }) if source.kind() == DeliveryErrorKind::InvalidDestination => {
            println!("{channel}: {source}.");
        }
        other => return Err(format!("expected an invalid destination, got {other:?}").into()),
    }

    println!("\n== (d) The provider is down: the user presses \"resend\" later");
    provider.outage(1);
    let id = match codes.send(sign_in(&phone)).await {
        // No fallback was spent on an outage; the challenge exists.
        Err(Error::Delivery {
            channel,
            challenge: Some(id),
            source,
        }) if source.kind() == DeliveryErrorKind::Transient => {
            println!("{channel}: {source}. Challenge {id} kept for a resend.");
            id
        }
        other => return Err(format!("expected a transient delivery error, got {other:?}").into()),
    };
    clock.advance(Duration::seconds(60)); // the resend cooldown
    let ticket = codes.resend(&id, None).await?;
    println!(
        "Resent by {}; {} sends left.",
        ticket.channel, ticket.sends_left
    );

    println!("\n== (e) The provider throttles us");
    provider.throttle(30);
    match codes.send(sign_in(&phone)).await {
        Err(Error::Delivery { source, .. }) if source.kind() == DeliveryErrorKind::RateLimited => {
            println!("{source}.");
        }
        other => return Err(format!("expected rate limiting, got {other:?}").into()),
    }
    Ok(())
}
