//! `TwilioGateway` against a local stand-in for Twilio's REST API (issue 14
//! item 2).
//!
//! A `wiremock` server on loopback plays Twilio: each test checks the exact
//! request Twilio expects (method, path with the account SID, HTTP basic
//! auth, form encoding and every form field) and answers with the bodies
//! Twilio documents: a 201 with the resource's `sid`, or an error
//! `{"code", "message", "more_info", "status"}`. One test per mapped error
//! code checks the `DeliveryErrorKind`, and a journey checks that a landline
//! (21614 on SMS) gets its code by voice. No network beyond loopback.

#![cfg(feature = "twilio")]

mod support;

use std::error::Error as _;
use std::sync::Arc;

use ninsho::gateway::{
    DeliveryError, DeliveryErrorKind, Gateway, Message, TwilioApiError, TwilioGateway, TwilioSender,
};
use ninsho::model::{AccountId, Channel, Locale};
use ninsho::service::ChannelReason;
use ninsho::store::MemoryStore;
use ninsho::{LockedRng, ManualClock};
use serde_json::json;
use support::{PHONE, T0, hasher, no_send_limits, sealer};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SID: &str = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "your_auth_token_0123456789abcdef";
const FROM: &str = "+15017122661";
const MG: &str = "MG9752274e9e519418a7406176694466fa";
const MESSAGES: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";
const CALLS: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls.json";
const CALLBACK: &str = "https://example.com/twilio/status";

fn gateway(server: &MockServer, sender: TwilioSender) -> TwilioGateway {
    TwilioGateway::builder(ACCOUNT_SID, TOKEN, sender)
        .base_url(server.uri())
        .build()
        .unwrap()
}

fn sms(body: &str) -> Message {
    Message::new(Channel::Sms, PHONE, None, body.to_owned(), Locale::En)
}

/// Twilio's 201 for a new message (trimmed to the fields that matter).
fn message_created(sid: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": "redacted by the test",
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": FROM,
        "messaging_service_sid": null,
        "num_segments": "1",
        "sid": sid,
        "status": "queued",
        "to": PHONE,
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"),
    }))
}

/// Twilio's error body for `code`.
fn twilio_error(status: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

/// The one request the server received, checked for what Twilio requires
/// of every request; returns its form fields in order.
async fn the_request(server: &MockServer, expected_path: &str) -> Vec<(String, String)> {
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "exactly one request");
    form_of(&requests[0], expected_path)
}

fn form_of(request: &Request, expected_path: &str) -> Vec<(String, String)> {
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), expected_path);
    assert_eq!(request.url.query(), None);
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    // HTTP basic auth: the account SID and the auth token.
    let expected = base64(format!("{ACCOUNT_SID}:{TOKEN}").as_bytes());
    assert_eq!(header("authorization"), format!("Basic {expected}"));
    assert_eq!(header("content-type"), "application/x-www-form-urlencoded");
    form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Standard base64 with padding, for the expected `Authorization` header.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_test_base64_is_right() {
    assert_eq!(
        base64(b"Aladdin:open sesame"),
        "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    assert_eq!(base64(b"ab"), "YWI=");
}

// ---------------------------------------------------------------- success

#[tokio::test]
async fn sms_from_a_number() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(message_created("SM1234567890abcdef1234567890abcdef"))
        .expect(1)
        .mount(&server)
        .await;
    let g = gateway(&server, TwilioSender::From(FROM.into()));
    let body = "Example verification code: 482913\nValid for 10 min. & <don't share>";
    let receipt = g.send(&sms(body)).await.unwrap();
    assert_eq!(
        receipt.provider_id.as_deref(),
        Some("SM1234567890abcdef1234567890abcdef")
    );
    assert_eq!(
        the_request(&server, MESSAGES).await,
        fields(&[("To", PHONE), ("From", FROM), ("Body", body)])
    );
}

#[tokio::test]
async fn sms_through_a_messaging_service_with_a_status_callback() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(message_created("SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"))
        .expect(1)
        .mount(&server)
        .await;
    let g = TwilioGateway::builder(
        ACCOUNT_SID,
        TOKEN,
        TwilioSender::MessagingService(MG.into()),
    )
    .base_url(server.uri())
    .status_callback(CALLBACK)
    .build()
    .unwrap();
    let body = "【Example】認証コード：482913（10分間有効）";
    let message = Message::new(Channel::Sms, PHONE, None, body.to_owned(), Locale::Ja);
    g.send(&message).await.unwrap();
    assert_eq!(
        the_request(&server, MESSAGES).await,
        fields(&[
            ("To", PHONE),
            ("MessagingServiceSid", MG),
            ("Body", body),
            ("StatusCallback", CALLBACK),
        ])
    );
}

#[tokio::test]
async fn voice_reads_the_spelled_code_twice_in_the_users_language() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CALLS))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "account_sid": ACCOUNT_SID,
            "from": FROM,
            "sid": "CA1234567890abcdef1234567890abcdef",
            "status": "queued",
            "to": PHONE,
        })))
        .expect(2)
        .mount(&server)
        .await;
    let g = TwilioGateway::builder(ACCOUNT_SID, TOKEN, TwilioSender::From(FROM.into()))
        .base_url(server.uri())
        .status_callback(CALLBACK)
        .build()
        .unwrap();

    let en = "This is Example & Co. Your code is: 4, 8, 2, 9, 1, 3. Again: 4, 8, 2, 9, 1, 3.";
    let message = Message::new(Channel::Voice, PHONE, None, en.to_owned(), Locale::En)
        .with_secret("482913".to_owned());
    let receipt = g.send(&message).await.unwrap();
    assert_eq!(
        receipt.provider_id.as_deref(),
        Some("CA1234567890abcdef1234567890abcdef")
    );
    let ja = "認証コードは、4、8、2、9、1、3。繰り返します。4、8、2、9、1、3。";
    let message = Message::new(Channel::Voice, PHONE, None, ja.to_owned(), Locale::Ja);
    g.send(&message).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        form_of(&requests[0], CALLS),
        fields(&[
            ("To", PHONE),
            ("From", FROM),
            (
                "Twiml",
                "<Response><Say language=\"en-US\" voice=\"Polly.Joanna\">This is Example &amp; Co. \
                 Your code is: 4, 8, 2, 9, 1, 3. Again: 4, 8, 2, 9, 1, 3.</Say></Response>"
            ),
            ("StatusCallback", CALLBACK),
        ])
    );
    assert_eq!(
        form_of(&requests[1], CALLS),
        fields(&[
            ("To", PHONE),
            ("From", FROM),
            (
                "Twiml",
                "<Response><Say language=\"ja-JP\" voice=\"Polly.Mizuki\">\
                 認証コードは、4、8、2、9、1、3。繰り返します。4、8、2、9、1、3。</Say></Response>"
            ),
            ("StatusCallback", CALLBACK),
        ])
    );
}

#[tokio::test]
async fn email_and_voice_without_a_caller_are_refused_without_a_request() {
    let server = MockServer::start().await;
    let g = gateway(&server, TwilioSender::MessagingService(MG.into()));
    let email = Message::new(
        Channel::Email,
        "taro@example.com",
        Some("Code".into()),
        "123456".to_owned(),
        Locale::En,
    );
    assert_eq!(
        g.send(&email).await.unwrap_err().kind(),
        DeliveryErrorKind::Refused
    );
    let voice = Message::new(Channel::Voice, PHONE, None, "1, 2".to_owned(), Locale::En);
    assert_eq!(
        g.send(&voice).await.unwrap_err().kind(),
        DeliveryErrorKind::Refused
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ----------------------------------------------------------------- errors

/// Sends one SMS to a server that answers `response`; the error.
async fn sms_error(response: ResponseTemplate) -> DeliveryError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let g = gateway(&server, TwilioSender::From(FROM.into()));
    let err = g
        .send(&sms("Example verification code: 482913"))
        .await
        .unwrap_err();
    // Safe to log: neither the code nor the token reaches the error.
    let shown = format!("{err} {err:?} {}", chain(&err));
    assert!(!shown.contains("482913"), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
    err
}

fn chain(err: &DeliveryError) -> String {
    let mut out = String::new();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(&format!(" / {s} {s:?}"));
        source = s.source();
    }
    out
}

/// The Twilio code the error keeps.
fn code(err: &DeliveryError) -> Option<u32> {
    err.source()?.downcast_ref::<TwilioApiError>()?.code()
}

async fn maps(status: u16, twilio_code: u32, message: &str, kind: DeliveryErrorKind) {
    let err = sms_error(twilio_error(status, twilio_code, message)).await;
    assert_eq!(err.kind(), kind, "{twilio_code}: {err}");
    assert_eq!(code(&err), Some(twilio_code));
    assert!(
        err.source()
            .unwrap()
            .to_string()
            .contains(&twilio_code.to_string()),
        "{err:?}"
    );
}

#[tokio::test]
async fn e21211_invalid_to_is_an_invalid_destination() {
    maps(
        400,
        21211,
        "The 'To' number +819012345678 is not a valid phone number.",
        DeliveryErrorKind::InvalidDestination,
    )
    .await;
}

#[tokio::test]
async fn e21614_not_a_mobile_number_is_refused_so_voice_is_tried() {
    maps(
        400,
        21614,
        "'To' number is not a valid mobile number",
        DeliveryErrorKind::Refused,
    )
    .await;
}

#[tokio::test]
async fn e21610_unsubscribed_recipient_is_refused() {
    maps(
        400,
        21610,
        "Attempt to send to unsubscribed recipient",
        DeliveryErrorKind::Refused,
    )
    .await;
}

#[tokio::test]
async fn e21408_region_not_enabled_is_refused() {
    maps(
        400,
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +819012345678.",
        DeliveryErrorKind::Refused,
    )
    .await;
}

#[tokio::test]
async fn e21612_not_reachable_by_sms_is_refused() {
    maps(
        400,
        21612,
        "The 'To' phone number is not currently reachable using the 'From' phone number via SMS.",
        DeliveryErrorKind::Refused,
    )
    .await;
}

#[tokio::test]
async fn e20003_authentication_is_a_configuration_problem() {
    maps(401, 20003, "Authenticate", DeliveryErrorKind::Configuration).await;
}

#[tokio::test]
async fn e20404_unknown_account_is_a_configuration_problem() {
    maps(
        404,
        20404,
        "The requested resource /2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json was not found",
        DeliveryErrorKind::Configuration,
    )
    .await;
}

#[tokio::test]
async fn e21606_from_not_ours_is_a_configuration_problem() {
    maps(
        400,
        21606,
        "The From phone number +15017122661 is not a valid, SMS-capable inbound phone number or short code for your account.",
        DeliveryErrorKind::Configuration,
    )
    .await;
}

#[tokio::test]
async fn e20429_too_many_requests_is_rate_limited_with_retry_after() {
    let err =
        sms_error(twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "30"))
            .await;
    assert_eq!(err.kind(), DeliveryErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(time::Duration::seconds(30)));
    assert_eq!(code(&err), Some(20429));

    let err = sms_error(twilio_error(429, 20429, "Too Many Requests")).await;
    assert_eq!(err.kind(), DeliveryErrorKind::RateLimited);
    assert_eq!(err.retry_after(), None);
}

#[tokio::test]
async fn server_errors_are_transient() {
    let err = sms_error(twilio_error(500, 20500, "Internal Server Error")).await;
    assert_eq!(err.kind(), DeliveryErrorKind::Transient);
    assert_eq!(code(&err), Some(20500));
    // A proxy's 503 with no Twilio body.
    let err = sms_error(ResponseTemplate::new(503).set_body_string("<html>down</html>")).await;
    assert_eq!(err.kind(), DeliveryErrorKind::Transient);
    assert_eq!(code(&err), None);
    // An error code this gateway does not know: when in doubt, transient.
    let err = sms_error(twilio_error(400, 21999, "Something new")).await;
    assert_eq!(err.kind(), DeliveryErrorKind::Transient);
}

#[tokio::test]
async fn a_timeout_and_a_refused_connection_are_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(message_created("SMx").set_delay(std::time::Duration::from_secs(5)))
        .mount(&server)
        .await;
    let g = TwilioGateway::builder(ACCOUNT_SID, TOKEN, TwilioSender::From(FROM.into()))
        .base_url(server.uri())
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap();
    let err = g.send(&sms("code 482913")).await.unwrap_err();
    assert_eq!(err.kind(), DeliveryErrorKind::Transient);

    // A port nothing listens on any more (wiremock keeps its servers
    // pooled, so take a port of our own and let it go).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let g = TwilioGateway::builder(ACCOUNT_SID, TOKEN, TwilioSender::From(FROM.into()))
        .base_url(uri)
        .build()
        .unwrap();
    let err = g.send(&sms("code 482913")).await.unwrap_err();
    assert_eq!(err.kind(), DeliveryErrorKind::Transient);
}

#[tokio::test]
async fn a_201_with_an_unreadable_body_still_succeeds() {
    // Twilio accepted the message; failing would make the user resend it.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_string("not json"))
        .mount(&server)
        .await;
    let g = gateway(&server, TwilioSender::From(FROM.into()));
    assert_eq!(g.send(&sms("x")).await.unwrap().provider_id, None);
}

#[test]
fn placeholder_sid_is_rejected() {
    // Twilio's documentation writes ACXXXX…; the builder wants real hex.
    let err = TwilioGateway::builder(SID, TOKEN, TwilioSender::From(FROM.into()))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("account SID"));
}

// ---------------------------------------------------------------- journey

#[tokio::test]
async fn a_landline_gets_its_code_by_voice() {
    // Confirming a phone number: SMS answers 21614 (a landline), ninsho
    // moves on to voice, the call reads the code, and the code confirms.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(twilio_error(
            400,
            21614,
            "'To' number is not a valid mobile number",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CALLS))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": "CAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "status": "queued",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let gateway = Arc::new(gateway(&server, TwilioSender::From(FROM.into())));
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = ninsho::service::TwoFactor::builder(
        "Example",
        Arc::new(MemoryStore::new()),
        gateway,
        hasher(),
        sealer(),
    )
    .clock(Arc::new(clock))
    .rng(Arc::new(LockedRng::seeded(14)))
    .locale(Locale::En)
    .limits(no_send_limits())
    .build()
    .unwrap();

    let taro = AccountId::new("taro");
    let ticket = service
        .phone_send_code(&taro, "090-1234-5678", None, None)
        .await
        .unwrap();
    assert_eq!(ticket.channel, Channel::Voice);
    assert_eq!(
        ticket.reason,
        ChannelReason::Fallback {
            from: Channel::Sms,
            kind: DeliveryErrorKind::Refused
        }
    );

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let sms = form_of(&requests[0], MESSAGES);
    assert_eq!(sms[0], ("To".to_owned(), PHONE.to_owned()));
    let call = form_of(&requests[1], CALLS);
    assert_eq!(call[0], ("To".to_owned(), PHONE.to_owned()));
    assert_eq!(call[1], ("From".to_owned(), FROM.to_owned()));
    let twiml = &call[2].1;
    assert!(
        twiml.starts_with("<Response><Say language=\"en-US\""),
        "{twiml}"
    );

    // The code, spelled "d, d, d, …" and read twice.
    let spelled = twiml
        .split("code is: ")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .unwrap_or_else(|| panic!("no spelled code in {twiml}"));
    assert_eq!(twiml.matches(spelled).count(), 2, "{twiml}");
    let code: String = spelled.split(", ").collect();
    assert_eq!(code.len(), 6, "{spelled}");
    assert!(code.chars().all(|c| c.is_ascii_digit()));

    service
        .phone_confirm(&taro, &ticket.challenge_id, &code, false)
        .await
        .unwrap();
}
