//! The `axum` feature through its public API: problem details (body,
//! content type, status per category, `Retry-After` under the injected
//! clock, nothing internal on infrastructure failures, byte-identical
//! anti-enumeration answers) and the trusted-device cookie, driven through
//! a real `axum::Router` with `tower::ServiceExt::oneshot`.

#[macro_use]
mod support;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ninsho::device::DevicePolicy;
use ninsho::gateway::{DeliveryError, DeliveryErrorKind, RecordingGateway};
use ninsho::limits::LimitKind;
use ninsho::model::{AccountId, Channel, Destination, Locale};
use ninsho::service::{MethodKind, Proof, TwoFactor};
use ninsho::store::{MemoryStore, StoreError};
use ninsho::web::{DeviceCookie, PROBLEM_JSON, Problem};
use ninsho::{
    AccountRefusal, Clock, CodeRefusal, ContactRefusal, Error, ManualClock, Misuse, Refusal,
    SendRefusal,
};
use serde_json::Value;
use support::{BASE, PHONE, T0, enrol, secret_to, sms_sign_in, two_factor};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T0).unwrap()
}

/// A response's status, headers and body bytes.
async fn parts(response: Response) -> (StatusCode, HeaderMap, Vec<u8>) {
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, body.to_vec())
}

/// Serves one `POST /` whose handler returns `answer`, through a Router.
async fn serve(answer: Result<&'static str, Problem>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let app = Router::new().route("/", post(move || async move { answer }));
    let request = Request::post("/").body(Body::empty()).unwrap();
    parts(app.oneshot(request).await.unwrap()).await
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

// ------------------------------------------------------------ problem body

#[tokio::test]
async fn a_refusal_is_a_problem_document_with_its_code_and_figures() {
    let error = Error::from(CodeRefusal::WrongCode {
        attempts_left: Some(2),
    });
    let (status, headers, body) = serve(Err(Problem::from_error(&error, Locale::En, t0()))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
    assert_eq!(
        headers[CACHE_CONTROL], "no-store",
        "a problem is never cached"
    );
    assert!(headers.get(RETRY_AFTER).is_none());
    assert_eq!(
        String::from_utf8(body).unwrap(),
        concat!(
            r#"{"type":"https://docs.rs/ninsho/latest/ninsho/web/index.html#wrong_code","#,
            r#""title":"Wrong code","status":401,"#,
            r#""detail":"The code is wrong. 2 attempts left.","#,
            r#""code":"wrong_code","attempts_left":2}"#
        )
    );

    // In Japanese, and a rate limit with its figures.
    let limited = Error::from(SendRefusal::RateLimited {
        limit: LimitKind::Destination,
        retry_at: t0() + Duration::seconds(90),
    });
    let p = Problem::from_error(&limited, Locale::Ja, t0());
    let body = json(&p.to_json());
    assert_eq!(body["status"], 429);
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["limit"], "destination");
    assert_eq!(body["retry_at"], "2025-11-21T00:01:30Z");
    assert!(body["detail"].as_str().unwrap().contains("2分後"), "{body}");
    // The title names the type, in English whatever the locale.
    assert_eq!(body["title"], "Too many requests");
    assert!(body.get("correlation_id").is_none());
}

#[tokio::test]
async fn a_handler_can_return_ninsho_errors_directly() {
    async fn handler() -> Result<&'static str, Error> {
        Err(ContactRefusal::InUse.into())
    }
    let app = Router::new().route("/", post(handler));
    let request = Request::post("/").body(Body::empty()).unwrap();
    let (status, headers, body) = parts(app.oneshot(request).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
    let body = json(&body);
    assert_eq!(body["code"], "contact_in_use");
    assert_eq!(body["title"], "Contact in use");
    assert_eq!(body["status"], 409);
    assert!(body["type"].as_str().unwrap().ends_with("#contact_in_use"));
}

#[test]
fn every_category_has_its_status() {
    let at = t0() + Duration::seconds(30);
    let cases: Vec<(Error, u16, &str)> = vec![
        (
            CodeRefusal::WrongRecoveryCode.into(),
            401,
            "wrong_recovery_code",
        ),
        (CodeRefusal::Expired.into(), 410, "expired"),
        (
            CodeRefusal::TooManyAttempts.into(),
            410,
            "too_many_attempts",
        ),
        (CodeRefusal::AlreadyUsed.into(), 410, "already_used"),
        (CodeRefusal::Unknown.into(), 404, "unknown"),
        (CodeRefusal::PurposeMismatch.into(), 422, "purpose_mismatch"),
        (CodeRefusal::Denied.into(), 403, "denied"),
        (
            SendRefusal::Cooldown { retry_at: at }.into(),
            429,
            "cooldown",
        ),
        (SendRefusal::SendsUsedUp.into(), 429, "sends_used_up"),
        (SendRefusal::NoMoreOptions.into(), 409, "no_more_options"),
        (
            SendRefusal::ContactNotConfirmed.into(),
            422,
            "contact_not_confirmed",
        ),
        (ContactRefusal::NotOnAccount.into(), 404, "not_a_contact"),
        (ContactRefusal::Required.into(), 409, "contact_required"),
        (
            AccountRefusal::Locked { until: Some(at) }.into(),
            429,
            "locked",
        ),
        (AccountRefusal::Locked { until: None }.into(), 403, "locked"),
        (
            AccountRefusal::StepUpRequired.into(),
            403,
            "step_up_required",
        ),
        (AccountRefusal::TwoFactorOff.into(), 409, "two_factor_off"),
        (AccountRefusal::NoSuchMethod.into(), 422, "no_such_method"),
        (AccountRefusal::NotFound.into(), 404, "not_found"),
        (Destination::phone("12").unwrap_err().into(), 422, ""),
        (Misuse::NoLinkBase.into(), 500, "internal_error"),
        (
            StoreError::unavailable("down").into(),
            503,
            "store_unavailable",
        ),
        (StoreError::conflict().into(), 503, "store_unavailable"),
        (StoreError::other("disk full").into(), 500, "internal_error"),
        (
            delivery(DeliveryErrorKind::Transient),
            503,
            "delivery_unavailable",
        ),
        (
            delivery(DeliveryErrorKind::Configuration),
            500,
            "internal_error",
        ),
        (
            delivery(DeliveryErrorKind::Refused),
            422,
            "delivery_refused",
        ),
        (
            delivery(DeliveryErrorKind::InvalidDestination),
            422,
            "undeliverable",
        ),
    ];
    for (error, status, code) in cases {
        let p = Problem::from_error(&error, Locale::En, t0());
        assert_eq!(p.status().as_u16(), status, "{error:?}");
        if code.is_empty() {
            // A contact error answers with the contact's own code.
            assert_eq!(Some(p.code()), error.contact_error().map(|e| e.code()));
        } else {
            assert_eq!(p.code(), code, "{error:?}");
        }
        let body = json(&p.to_json());
        assert_eq!(body["status"], status);
        assert_eq!(body["code"], p.code());
        // Exactly the server's failures carry a correlation id.
        assert_eq!(
            body.get("correlation_id").is_some(),
            status >= 500,
            "{body}"
        );
        assert_eq!(
            p.retry_after().is_some(),
            error.refusal().and_then(|r| r.retry_at()).is_some()
        );
    }
}

fn delivery(kind: DeliveryErrorKind) -> Error {
    Error::Delivery {
        channel: Channel::Sms,
        challenge: None,
        source: DeliveryError::new(kind),
    }
}

// ------------------------------------------------------------ Retry-After

struct World {
    service: TwoFactor,
    gateway: RecordingGateway,
    clock: ManualClock,
    taro: AccountId,
}

async fn world() -> World {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::new(t0());
    let service = two_factor("Example", Arc::new(MemoryStore::new()), &gateway, &clock, 7)
        .link_base(BASE)
        .build()
        .unwrap();
    let taro = AccountId::new("taro");
    enrol(&service, &gateway, &taro).await;
    World {
        service,
        gateway,
        clock,
        taro,
    }
}

/// The app of the tests: a recovery-code form and a resend button, each
/// answering refusals with the service's clock.
fn app(world: &World) -> Router {
    #[derive(Clone)]
    struct S {
        service: TwoFactor,
        clock: ManualClock,
        taro: AccountId,
        sent: Arc<std::sync::Mutex<Option<ninsho::model::ChallengeId>>>,
    }
    async fn recovery(State(s): State<S>, code: String) -> Result<&'static str, Problem> {
        s.service
            .sign_in_complete(&s.taro, Proof::RecoveryCode { code: &code }, None, None)
            .await
            .map_err(|e| Problem::from_error(&e, Locale::En, s.clock.now()))?;
        Ok("signed in")
    }
    /// Sends a code, then resends it.
    async fn send(State(s): State<S>) -> Result<&'static str, Problem> {
        let sent = *s.sent.lock().unwrap();
        if let Some(challenge) = sent {
            s.service
                .resend(&s.taro, &challenge, None)
                .await
                .map_err(|e| Problem::from_error(&e, Locale::En, s.clock.now()))?;
            return Ok("sent again");
        }
        let methods = s.service.methods(&s.taro).await?;
        let sms = methods.iter().find(|m| m.kind == MethodKind::Sms);
        let sms = sms.ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "no_sms", "No SMS"))?;
        let ticket = s
            .service
            .sign_in_send_code(&s.taro, sms, None, None)
            .await
            .map_err(|e| Problem::from_error(&e, Locale::En, s.clock.now()))?;
        *s.sent.lock().unwrap() = Some(ticket.challenge_id);
        Ok("sent")
    }
    Router::new()
        .route("/recovery", post(recovery))
        .route("/send", post(send))
        .with_state(S {
            service: world.service.clone(),
            clock: world.clock.clone(),
            taro: world.taro.clone(),
            sent: Arc::default(),
        })
}

async fn post_to(app: &Router, path: &str, body: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let request = Request::post(path)
        .body(Body::from(body.to_owned()))
        .unwrap();
    parts(app.clone().oneshot(request).await.unwrap()).await
}

#[tokio::test]
async fn back_off_after_wrong_codes_says_when_to_come_back() {
    let w = world().await;
    let app = app(&w);
    let wrong = "aaaa-bbbb-cccc";
    // Wrong recovery codes until the back-off refuses; each wait is served
    // out on the manual clock so the run grows.
    let mut locked_at = None;
    for _ in 0..8 {
        let (status, headers, body) = post_to(&app, "/recovery", wrong).await;
        let body = json(&body);
        if body["code"] == "locked" {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            let until = OffsetDateTime::parse(
                body["until"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            locked_at = Some((until, headers));
            if until - w.clock.now() >= Duration::seconds(4) {
                break;
            }
            w.clock.set(until);
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        }
    }
    let (until, headers) = locked_at.expect("the back-off refused");
    let wait = until - w.clock.now();
    assert_eq!(headers[RETRY_AFTER], wait.whole_seconds().to_string());

    // A quarter second later the wait is a fraction: rounded up.
    w.clock.advance(Duration::milliseconds(250));
    let (status, headers, body) = post_to(&app, "/recovery", wrong).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{:?}", json(&body));
    assert_eq!(headers[RETRY_AFTER], wait.whole_seconds().to_string());
    assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
    // And 0.75 s before the end, one second.
    w.clock.set(until - Duration::milliseconds(750));
    let (_, headers, _) = post_to(&app, "/recovery", wrong).await;
    assert_eq!(headers[RETRY_AFTER], "1");
}

#[tokio::test]
async fn the_resend_cooldown_counts_down_in_whole_seconds() {
    let w = world().await;
    let app = app(&w);
    let (status, _, _) = post_to(&app, "/send", "").await;
    assert_eq!(status, StatusCode::OK);
    let code = secret_to(&w.gateway, PHONE);
    w.clock.advance(Duration::milliseconds(10_400));
    let (status, headers, body) = post_to(&app, "/send", "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let body_text = String::from_utf8(body).unwrap();
    let body = json(body_text.as_bytes());
    assert_eq!(body["code"], "cooldown", "{body}");
    // The default cooldown is 60 s: 49.6 s are left, rounded up.
    assert_eq!(headers[RETRY_AFTER], "50");
    assert!(!body_text.contains(&code), "the code never shows");
}

// ------------------------------------------------------------ anti-enumeration

#[tokio::test]
async fn finding_an_account_answers_byte_for_byte_alike_for_held_and_free_numbers() {
    async fn side(held: bool) -> (StatusCode, HeaderMap, Vec<u8>, String) {
        let gateway = RecordingGateway::new();
        let clock = ManualClock::new(t0());
        let service = two_factor(
            "Example",
            Arc::new(MemoryStore::new()),
            &gateway,
            &clock,
            11,
        )
        .build()
        .unwrap();
        if held {
            let phone = Destination::phone(PHONE).unwrap();
            service
                .import_contact(&AccountId::new("taro"), &phone, true)
                .await
                .unwrap();
        }
        let ticket = service
            .recover_start("090-1234-5678", Some("198.51.100.1"))
            .await
            .unwrap();
        let code = secret_to(&gateway, PHONE);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        clock.advance(Duration::seconds(5));
        let error = service
            .recover_verify(&ticket.challenge_id, wrong)
            .await
            .unwrap_err();
        let (status, headers, body) =
            serve(Err(Problem::from_error(&error, Locale::En, clock.now()))).await;
        (status, headers, body, code)
    }
    let (held_status, held_headers, held_body, held_code) = side(true).await;
    let (free_status, free_headers, free_body, free_code) = side(false).await;
    assert_eq!(held_status, StatusCode::UNAUTHORIZED);
    assert_eq!(held_status, free_status);
    assert_eq!(held_headers, free_headers);
    assert_eq!(held_body, free_body, "the same bytes");
    let text = String::from_utf8(held_body).unwrap();
    assert!(text.contains("wrong_code"), "{text}");
    assert!(!text.contains(&held_code) && !text.contains(&free_code));
}

#[tokio::test]
async fn an_unknown_link_and_a_wrong_link_secret_answer_alike() {
    let w = world().await;
    let link = w
        .service
        .methods(&w.taro)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.kind == MethodKind::Link)
        .expect("a link method");
    w.service
        .sign_in_send_link(&w.taro, &link, "Firefox on Linux", None, None)
        .await
        .unwrap();
    let url = secret_to(&w.gateway, PHONE);
    let token = url.strip_prefix(BASE).unwrap().to_owned();
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'a' { 'b' } else { 'a' });
    let mut unknown = String::from("zz");
    unknown.push_str(&token[2..]);
    let mut answers = Vec::new();
    for t in [&tampered, &unknown] {
        let error = w.service.approve_link(t).await.unwrap_err();
        answers.push(serve(Err(Problem::from_error(&error, Locale::En, w.clock.now()))).await);
    }
    assert_eq!(answers[0].0, StatusCode::NOT_FOUND);
    assert_eq!(answers[0], answers[1]);
    let text = String::from_utf8(answers[0].2.clone()).unwrap();
    assert!(!text.contains(&token), "{text}");
}

// ------------------------------------------------------------ infrastructure

#[tokio::test]
async fn infrastructure_failures_say_nothing_but_a_correlation_id() {
    let secretish = "postgres://app:hunter2@db.internal:5432/auth";
    for (error, status) in [
        (
            Error::from(StoreError::other(std::io::Error::other(secretish))),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            Error::from(StoreError::unavailable(std::io::Error::other(secretish))),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Error::from(Misuse::NoLinkBase),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    ] {
        let cause = format!("{error} {error:?}");
        let (got, headers, body) = serve(Err(Problem::from(&error))).await;
        assert_eq!(got, status);
        assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
        let text = String::from_utf8(body).unwrap();
        for leak in [
            "hunter2",
            "db.internal",
            "postgres",
            "link base",
            "retry later",
        ] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
        assert!(!text.contains(&error.to_string()), "{text} / {cause}");
        let body = json(text.as_bytes());
        let id = body["correlation_id"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        // A second failure gets another id.
        let again = Problem::from(&error);
        assert_ne!(again.correlation_id(), Some(id));
    }
    // The host's own id, when it has one.
    let error = Error::from(StoreError::other("x"));
    let p = Problem::from_error_with_id(&error, Locale::En, t0(), "req-42");
    assert_eq!(json(&p.to_json())["correlation_id"], "req-42");
}

/// A store that is down: every call fails with a cause naming the database.
#[derive(Debug, Default)]
struct Down {
    inner: MemoryStore,
}

async fn down<T>(_: Result<T, StoreError>) -> Result<T, StoreError> {
    Err(StoreError::unavailable(std::io::Error::other(
        "connect db.internal:5432 as app/hunter2: timed out",
    )))
}

delegate_store!([] Down, inner, down =>
    ChallengeStore, LimitStore, DeviceStore, AccountStore, VerificationStore, StepStore, PurgeStore);

#[tokio::test]
async fn a_journey_on_a_store_that_is_down_answers_503_without_the_cause() {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::new(t0());
    let service = two_factor("Example", Arc::new(Down::default()), &gateway, &clock, 3)
        .build()
        .unwrap();
    let app = Router::new().route(
        "/",
        post(move || {
            let service = service.clone();
            async move {
                service
                    .recover_start("090-1234-5678", None)
                    .await
                    .map(|_| "sent")
            }
        }),
    );
    let request = Request::post("/").body(Body::empty()).unwrap();
    let (status, headers, body) = parts(app.oneshot(request).await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
    let text = String::from_utf8(body).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("db.internal"),
        "{text}"
    );
    assert!(json(text.as_bytes())["correlation_id"].is_string());
}

// ------------------------------------------------------------ the cookie

#[tokio::test]
async fn the_device_cookie_is_set_with_exact_flags_and_read_back() {
    let w = world().await;
    let signed_in = sms_sign_in(&w.service, &w.gateway, &w.taro, Some("Firefox on Linux")).await;
    let (token, _) = signed_in.device.as_ref().expect("trusted");
    let policy = DevicePolicy {
        lifetime: Duration::days(30),
        ..DevicePolicy::default()
    };
    let cookie = DeviceCookie::new(&policy);
    let set = cookie.set(token).unwrap();
    assert!(set.is_sensitive());
    assert_eq!(
        set.to_str().unwrap(),
        format!(
            "__Host-ninsho-device={}; Max-Age=2592000; Path=/; Secure; HttpOnly; SameSite=Lax",
            token.expose_secret()
        )
    );
    assert_eq!(
        cookie.clear().unwrap(),
        "__Host-ninsho-device=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"
    );

    // Read back among other cookies, in one header or several.
    let value = token.expose_secret();
    let read = |cookies: &[&str]| {
        let mut headers = HeaderMap::new();
        for c in cookies {
            headers.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        cookie.read(&headers).map(|t| t.expose_secret().to_owned())
    };
    let ours = format!("__Host-ninsho-device={value}");
    assert_eq!(read(&[&ours]).as_deref(), Some(value));
    assert_eq!(
        read(&[&format!("sid=abc; theme=dark;{ours}; lang=ja")]).as_deref(),
        Some(value)
    );
    assert_eq!(read(&["sid=abc", &ours, "x=y"]).as_deref(), Some(value));
    // A malformed copy first does not hide a good one after it.
    assert_eq!(
        read(&[&format!("__Host-ninsho-device=junk; {ours}")]).as_deref(),
        Some(value)
    );
    // Malformed or absent: no token, and no panic.
    let truncated = format!("__Host-ninsho-device={}", &value[..value.len() - 3]);
    let quoted = format!("__Host-ninsho-device=\"{value}\"");
    let other_name = format!("__host-ninsho-device={value}");
    let extra = format!("{ours}.x");
    for bad in [
        "",
        ";;;",
        "=",
        "__Host-ninsho-device",
        "__Host-ninsho-device=",
        "__Host-ninsho-device=nd1..",
        "__Host-ninsho-device=nd1.zz.zz",
        truncated.as_str(),
        quoted.as_str(),
        other_name.as_str(),
        extra.as_str(),
    ] {
        assert_eq!(read(&[bad]), None, "{bad}");
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        COOKIE,
        HeaderValue::from_bytes(b"__Host-ninsho-device=\xff\xfe").unwrap(),
    );
    assert!(cookie.read(&headers).is_none());

    // The token read back skips the second step.
    let read_back = read(&[&ours]).unwrap();
    assert_eq!(
        w.service
            .sign_in_begin(&w.taro, Some(&read_back))
            .await
            .unwrap(),
        ninsho::service::SignInStart::NotNeeded(ninsho::service::Skip::TrustedDevice)
    );

    // A renamed cookie keeps the flags.
    let mine = DeviceCookie::new(&DevicePolicy::default())
        .with_name("__Host-remember")
        .unwrap();
    assert!(
        mine.clear()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("__Host-remember=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax")
    );
}

#[tokio::test]
async fn a_router_sets_and_clears_the_cookie() {
    let w = world().await;
    let signed_in = sms_sign_in(&w.service, &w.gateway, &w.taro, Some("Phone")).await;
    let (token, _) = signed_in.device.clone().expect("trusted");
    let cookie = DeviceCookie::new(&DevicePolicy::default());
    let (c1, c2) = (cookie.clone(), cookie.clone());
    let app = Router::new()
        .route(
            "/trust",
            post(move || {
                let (cookie, token) = (c1.clone(), token.clone());
                async move {
                    let set = cookie.set(&token).map_err(|_| {
                        Problem::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal_error",
                            "Internal error",
                        )
                    })?;
                    Ok::<_, Problem>(([(SET_COOKIE, set)], "trusted").into_response())
                }
            }),
        )
        .route(
            "/forget",
            post(move || async move { ([(SET_COOKIE, c2.clear().unwrap())], "forgotten") }),
        );
    let (status, headers, body) = post_to(&app, "/trust", "").await;
    assert_eq!(status, StatusCode::OK);
    let set = headers[SET_COOKIE].to_str().unwrap();
    assert!(set.contains("; Secure; HttpOnly; SameSite=Lax") && set.contains("Max-Age=2592000"));
    assert!(
        !String::from_utf8(body)
            .unwrap()
            .contains(signed_in.device.unwrap().0.expose_secret())
    );
    let (_, headers, _) = post_to(&app, "/forget", "").await;
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
}

#[test]
fn refusals_keep_their_code_in_problems() {
    // Every refusal family's code is the problem's code.
    for refusal in [
        Refusal::from(CodeRefusal::Expired),
        Refusal::from(SendRefusal::NoMoreOptions),
        Refusal::from(ContactRefusal::TooMany),
        Refusal::from(AccountRefusal::NoSecondFactor),
    ] {
        let p = Problem::from_error(&Error::Refused(refusal), Locale::En, t0());
        assert_eq!(p.code(), refusal.code());
        assert_eq!(p.detail(), Some(refusal.message(Locale::En, t0()).as_str()));
    }
}
