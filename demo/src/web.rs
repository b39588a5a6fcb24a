//! Routes and handlers. Every POST form carries the session's CSRF token,
//! checked before anything else; every ninsho refusal is shown in words
//! with its stable code, and infrastructure errors only as "try again"
//! (the cause goes to the log).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, PreEscaped, html};
use ninsho::gateway::DeliveryErrorKind;
use ninsho::grace::GraceDecision;
use ninsho::model::{ChallengeId, DeviceId, VerificationId};
use ninsho::prelude::*;
use ninsho::service::{ChannelReason, ContactView, SignInAttempt};
use ninsho::web::describe_device;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use time::Duration;
use tower_sessions::cookie::SameSite;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

use crate::pages::{Flash, csrf, frame};
use crate::setup::{AppState, DemoUser};

/// Session keys. `USER`, `PENDING` and `BLOCKED` hold ninsho's account id
/// (see [`DemoUser`]); `NAME` the username, for the pages.
const CSRF: &str = "csrf";
const USER: &str = "user";
const NAME: &str = "name";
const PENDING: &str = "pending";
const ATTEMPT: &str = "attempt";
const CHALLENGE: &str = "challenge";
const STEP_UP: &str = "step_up";
const SIGNUP: &str = "signup";
const BLOCKED: &str = "blocked";
const PHONE_CHALLENGE: &str = "phone_challenge";
const CONTACT_CHALLENGE: &str = "contact_challenge";
/// Set when a sign-in code went out on another channel than the one
/// asked for (the SMS was refused, so it is a voice call): the code page
/// says so once.
const CODE_FALLBACK: &str = "code_fallback";

pub(crate) fn router(state: AppState) -> Router {
    // Sessions live in memory (tower-sessions' MemoryStore): a restart
    // signs everyone out, which is fine for a demo. The cookie is HttpOnly
    // and SameSite=Lax; it is not `Secure` because the demo is served over
    // plain http on the loopback address (see demo/README.md).
    let sessions = SessionManagerLayer::new(MemoryStore::default())
        .with_name("ninsho_demo_session")
        .with_secure(false)
        .with_http_only(true)
        .with_same_site(SameSite::Lax);
    let mut app = Router::new()
        .route("/", get(home))
        .route("/signup", get(signup_page).post(signup_start))
        .route(
            "/signup/verify",
            get(signup_verify_page).post(signup_verify),
        )
        .route("/login", get(login_page).post(login))
        .route("/login/second", get(second_page))
        .route("/login/send", post(send))
        .route("/login/code", get(code_page).post(code))
        .route("/login/totp", post(totp))
        .route("/login/recovery", post(recovery))
        .route("/login/wait", get(wait))
        .route("/link/{token}", get(link_page))
        .route("/link/{token}/approve", post(link_approve))
        .route("/link/{token}/deny", post(link_deny))
        .route("/settings", get(settings))
        .route("/settings/2fa/enable", post(enable_2fa))
        .route("/settings/2fa/disable", post(disable_2fa))
        .route("/settings/recovery/regenerate", post(regenerate))
        .route("/settings/authenticator", post(authenticator_start))
        .route(
            "/settings/authenticator/confirm",
            post(authenticator_confirm),
        )
        .route("/settings/devices/revoke", post(revoke_device))
        .route("/settings/phone", post(phone_send))
        .route("/settings/phone/confirm", post(phone_confirm))
        .route("/blocked", get(blocked_page))
        .route("/contact/send", post(contact_send))
        .route("/contact/confirm", post(contact_confirm))
        .route("/logout", post(logout));
    if state.dev_tools {
        app = app
            .route("/dev/inbox", get(dev_inbox))
            .route("/dev/legacy", get(legacy_page).post(legacy))
            .route("/dev/clock", get(dev_clock).post(dev_clock_advance))
            .route("/dev/gateway", get(dev_gateway).post(dev_gateway_set));
    }
    app.layer(sessions).with_state(state)
}

// ---------------------------------------------------------------- plumbing

/// A failure the page can't recover from: logged, shown as a 500.
#[derive(Debug)]
pub(crate) struct Fault(String);

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        tracing::error!(cause = %self.0, "request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong; please try again.",
        )
            .into_response()
    }
}

impl From<tower_sessions::session::Error> for Fault {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self(format!("session: {e}"))
    }
}

type Page = Result<Response, Fault>;

/// A ninsho error as a flash: refusals in words with their code; anything
/// else is "try again" (its cause only in the log: never a secret there,
/// ninsho's errors don't carry any).
fn flash_of(e: &Error) -> Flash {
    match e {
        Error::Refused(r) => Flash {
            code: r.code().to_owned(),
            text: r.to_string(),
        },
        Error::Contact(c) => Flash {
            code: "invalid_contact".into(),
            text: c.to_string(),
        },
        other => {
            tracing::warn!(error = %other, "ninsho call failed");
            Flash {
                code: "unavailable".into(),
                text: "The service is not available right now; please try again.".into(),
            }
        }
    }
}

fn note(code: &str, text: &str) -> Flash {
    Flash {
        code: code.into(),
        text: text.into(),
    }
}

/// The session's CSRF token, made on first use.
async fn csrf_token(session: &Session) -> Result<String, Fault> {
    if let Some(token) = session.get::<String>(CSRF).await? {
        return Ok(token);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Fault(format!("randomness: {e}")))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    session.insert(CSRF, &token).await?;
    Ok(token)
}

/// Refuses a POST whose form token is not the session's (compared in
/// constant time).
async fn check_csrf(session: &Session, sent: &str) -> Result<bool, Fault> {
    let Some(expected) = session.get::<String>(CSRF).await? else {
        return Ok(false);
    };
    Ok(bool::from(expected.as_bytes().ct_eq(sent.as_bytes())))
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "The form was stale or forged (CSRF token mismatch). Go back, reload and try again.",
    )
        .into_response()
}

async fn render(
    state: &AppState,
    session: &Session,
    title: &str,
    flash: Option<Flash>,
    body: Markup,
) -> Page {
    let _ = session;
    Ok(frame(title, flash.as_ref(), state.dev_tools, body).into_response())
}

fn caller(addr: SocketAddr) -> String {
    addr.ip().to_string()
}

async fn signed_in_user(session: &Session) -> Result<Option<AccountId>, Fault> {
    Ok(session.get::<String>(USER).await?.map(AccountId::new))
}

// ---------------------------------------------------------------- home

async fn home(State(state): State<AppState>, session: Session) -> Page {
    let user = match session.get::<String>(USER).await? {
        Some(_) => session.get::<String>(NAME).await?,
        None => None,
    };
    let token = csrf_token(&session).await?;
    render(&state, &session, "Welcome", None, html! {
        p { "Click through ninsho's journeys: sign-up verifying email and phone together, two-step sign-in, settings." }
        @if let Some(user) = user {
            p { "Signed in as " strong { (user) } ". " a #settings-link href="/settings" { "Settings" } }
            form #logout-form method="post" action="/logout" { (csrf(&token)) button #logout type="submit" { "Sign out" } }
        } @else {
            p { a #signup-link href="/signup" { "Create an account" } " · " a #login-link href="/login" { "Sign in" } }
        }
    }).await
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn logout(session: Session, Form(form): Form<CsrfOnly>) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    session.flush().await?;
    Ok(Redirect::to("/").into_response())
}

// ---------------------------------------------------------------- sign-up

fn signup_form(token: &str) -> Markup {
    html! {
        form #signup-form method="post" action="/signup" {
            (csrf(token))
            label { "Username " input name="username" required autocomplete="username"; } br;
            label { "Password " input name="password" type="password" required autocomplete="new-password"; } br;
            label { "Email " input name="email" type="email" required; } br;
            label { "Mobile (Japan) " input name="phone" type="tel" required placeholder="090-1234-5678"; } br;
            button #signup-submit type="submit" { "Send both codes" }
        }
    }
}

async fn signup_page(State(state): State<AppState>, session: Session) -> Page {
    let token = csrf_token(&session).await?;
    render(
        &state,
        &session,
        "Create an account",
        None,
        signup_form(&token),
    )
    .await
}

#[derive(Deserialize)]
struct SignupForm {
    csrf: String,
    username: String,
    password: String,
    email: String,
    phone: String,
}

/// What the sign-up keeps in the session until both codes are in.
#[derive(serde::Serialize, Deserialize)]
struct PendingSignup {
    verification: String,
    username: String,
    password_hash: String,
}

async fn signup_start(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Form(form): Form<SignupForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let token = csrf_token(&session).await?;
    let username = form.username.trim().to_owned();
    let taken = state
        .users
        .lock()
        .map(|u| u.contains_key(&username))
        .unwrap_or(true);
    // A username is also the authenticator app's label, where `:` is the
    // separator: refused here rather than at enrolment.
    if username.is_empty() || username.contains(':') || form.password.len() < 8 || taken {
        let flash = note(
            "bad_signup",
            "Pick another username (this one is empty or taken) and a password of at least 8 characters.",
        );
        return render(
            &state,
            &session,
            "Create an account",
            Some(flash),
            signup_form(&token),
        )
        .await;
    }
    let password_hash = hash_password(form.password).await?;
    match state
        .service
        .signup_start(&form.email, &form.phone, Some(&caller(addr)))
        .await
    {
        Ok(ticket) => {
            let pending = PendingSignup {
                verification: ticket.id.to_string(),
                username,
                password_hash,
            };
            session.insert(SIGNUP, &pending).await?;
            Ok(Redirect::to("/signup/verify").into_response())
        }
        Err(e) => {
            render(
                &state,
                &session,
                "Create an account",
                Some(flash_of(&e)),
                signup_form(&token),
            )
            .await
        }
    }
}

fn verify_forms(token: &str) -> Markup {
    html! {
        p { "We sent a code to your email and one to your phone. Enter them in any order." }
        form #verify-email method="post" action="/signup/verify" {
            (csrf(token)) input type="hidden" name="member" value="0";
            label { "Email code " input name="code" inputmode="numeric" autocomplete="one-time-code"; }
            button #verify-email-submit type="submit" { "Verify email" }
        }
        form #verify-phone method="post" action="/signup/verify" {
            (csrf(token)) input type="hidden" name="member" value="1";
            label { "SMS code " input name="code" inputmode="numeric" autocomplete="one-time-code"; }
            button #verify-phone-submit type="submit" { "Verify phone" }
        }
    }
}

async fn signup_verify_page(State(state): State<AppState>, session: Session) -> Page {
    let token = csrf_token(&session).await?;
    render(
        &state,
        &session,
        "Verify your email and phone",
        None,
        verify_forms(&token),
    )
    .await
}

#[derive(Deserialize)]
struct VerifyForm {
    csrf: String,
    member: usize,
    code: String,
}

async fn signup_verify(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<VerifyForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let token = csrf_token(&session).await?;
    let title = "Verify your email and phone";
    let Some(pending) = session.get::<PendingSignup>(SIGNUP).await? else {
        return Ok(Redirect::to("/signup").into_response());
    };
    let Ok(id) = VerificationId::parse(&pending.verification) else {
        return Ok(Redirect::to("/signup").into_response());
    };
    let progress = match state
        .service
        .signup_verify(&id, form.member, &form.code)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            return render(
                &state,
                &session,
                title,
                Some(flash_of(&e)),
                verify_forms(&token),
            )
            .await;
        }
    };
    if !progress.completed {
        let flash = note("verified_one", "That one is verified; now the other code.");
        return render(&state, &session, title, Some(flash), verify_forms(&token)).await;
    }
    // The username is claimed before ninsho's account is made, so two
    // sign-ups can't both take it, and given back if that fails.
    let account_id = new_account_id()?;
    let account = AccountId::new(account_id.clone());
    let claimed = match state.users.lock() {
        Ok(mut users) if !users.contains_key(&pending.username) => {
            let user = DemoUser {
                account: account_id.clone(),
                password_hash: pending.password_hash.clone(),
            };
            users.insert(pending.username.clone(), user);
            true
        }
        Ok(_) => false,
        Err(_) => return Err(Fault("user table poisoned".into())),
    };
    if !claimed {
        let flash = note(
            "bad_signup",
            "That username was taken meanwhile; start again.",
        );
        return render(
            &state,
            &session,
            "Create an account",
            Some(flash),
            signup_form(&token),
        )
        .await;
    }
    if let Err(e) = state.service.signup_complete(&id, &account).await {
        release(&state, &pending.username);
        return render(
            &state,
            &session,
            title,
            Some(flash_of(&e)),
            verify_forms(&token),
        )
        .await;
    }
    session.remove::<PendingSignup>(SIGNUP).await?;
    session.cycle_id().await?;
    session.insert(USER, &account_id).await?;
    session.insert(NAME, &pending.username).await?;
    Ok(Redirect::to("/settings").into_response())
}

/// Gives a username back after the account could not be made.
fn release(state: &AppState, username: &str) {
    if let Ok(mut users) = state.users.lock() {
        users.remove(username);
    }
}

/// A fresh, unguessable account id for ninsho: `u_` and 32 hex digits.
fn new_account_id() -> Result<String, Fault> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Fault(format!("randomness: {e}")))?;
    Ok(bytes.iter().fold(String::from("u_"), |mut id, b| {
        id.push_str(&format!("{b:02x}"));
        id
    }))
}

/// The argon2 PHC string of `password`. Argon2 takes a good part of a
/// second on purpose: it runs on the blocking pool, not on the async
/// workers that serve every other request.
async fn hash_password(password: String) -> Result<String, Fault> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| Fault(format!("randomness: {e}")))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| Fault(format!("salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Fault(format!("argon2: {e}")))
    })
    .await
    .map_err(|e| Fault(format!("argon2 task: {e}")))?
}

/// Whether `password` matches `stored`. An unknown user (`None`) is
/// checked against a fixed hash all the same, so the answer takes as long
/// whether the username exists or not.
async fn password_matches(stored: Option<String>, password: String) -> Result<bool, Fault> {
    static NOBODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let nobody = match NOBODY.get() {
        Some(hash) => hash.clone(),
        None => {
            let hash = hash_password("no user has this password".to_owned()).await?;
            NOBODY.get_or_init(|| hash).clone()
        }
    };
    let known = stored.is_some();
    let phc = stored.unwrap_or(nobody);
    tokio::task::spawn_blocking(move || {
        let matches = PasswordHash::new(&phc).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        known && matches
    })
    .await
    .map_err(|e| Fault(format!("argon2 task: {e}")))
}

// ---------------------------------------------------------------- sign-in

fn login_form(token: &str) -> Markup {
    html! {
        form #login-form method="post" action="/login" {
            (csrf(token))
            label { "Username " input name="username" required autocomplete="username"; } br;
            label { "Password " input name="password" type="password" required autocomplete="current-password"; } br;
            button #login-submit type="submit" { "Sign in" }
        }
    }
}

async fn login_page(State(state): State<AppState>, session: Session) -> Page {
    let token = csrf_token(&session).await?;
    render(&state, &session, "Sign in", None, login_form(&token)).await
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let token = csrf_token(&session).await?;
    let username = form.username.trim().to_owned();
    let stored = state
        .users
        .lock()
        .ok()
        .and_then(|u| u.get(&username).cloned());
    // The same words, and the same time, whether the user is unknown or
    // the password wrong. (A real service also throttles password
    // guesses per account and per address; the demo does not.)
    let hash = stored.as_ref().map(|u| u.password_hash.clone());
    let matches = password_matches(hash, form.password).await?;
    let user = match stored {
        Some(user) if matches => user,
        _ => {
            let flash = note("bad_credentials", "The username or password is wrong.");
            return render(&state, &session, "Sign in", Some(flash), login_form(&token)).await;
        }
    };
    let account = AccountId::new(user.account.clone());
    session.cycle_id().await?;
    session.insert(NAME, &username).await?;
    // Microsoft's contact check: past the grace period, no sign-in until
    // a contact is verified.
    match state.service.contact_check(&account).await {
        Ok(check) if check.decision.is_blocked() => {
            session.insert(BLOCKED, &user.account).await?;
            return Ok(Redirect::to("/blocked").into_response());
        }
        Ok(_) => {}
        Err(e) => {
            return render(
                &state,
                &session,
                "Sign in",
                Some(flash_of(&e)),
                login_form(&token),
            )
            .await;
        }
    }
    let device = state.device_cookie.read(&headers);
    match state
        .service
        .sign_in_begin(&account, device.as_ref().map(|t| t.expose_secret()))
        .await
    {
        Ok(SignInStart::NotNeeded(_)) => {
            session.insert(USER, &user.account).await?;
            Ok(Redirect::to("/settings").into_response())
        }
        Ok(SignInStart::Required { .. }) => {
            // The pending sign-in, kept server-side: who passed the
            // password, and the attempt that makes the second step safe to
            // retry when a reply is lost (ninsho::web's docs).
            let attempt = match state.service.new_attempt() {
                Ok(attempt) => attempt,
                Err(e) => {
                    let flash = flash_of(&e);
                    return render(&state, &session, "Sign in", Some(flash), login_form(&token))
                        .await;
                }
            };
            session.insert(PENDING, &user.account).await?;
            session.insert(ATTEMPT, &attempt).await?;
            Ok(Redirect::to("/login/second").into_response())
        }
        Ok(_) => Err(Fault(
            "an answer of sign_in_begin this demo does not know".into(),
        )),
        Err(e) => {
            render(
                &state,
                &session,
                "Sign in",
                Some(flash_of(&e)),
                login_form(&token),
            )
            .await
        }
    }
}

async fn second_page(State(state): State<AppState>, session: Session) -> Page {
    second(&state, &session, None).await
}

async fn second(state: &AppState, session: &Session, flash: Option<Flash>) -> Page {
    let Some(pending) = session.get::<String>(PENDING).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let token = csrf_token(session).await?;
    let account = AccountId::new(pending);
    let methods = match state.service.methods(&account).await {
        Ok(m) => m,
        Err(e) => return render(state, session, "Second step", Some(flash_of(&e)), html! {}).await,
    };
    // The grace period is told right after the password too; the forms to
    // verify a contact wait for the signed-in settings page.
    let deadline = match state.service.contact_check(&account).await {
        Ok(check) => match check.decision {
            GraceDecision::Remind { deadline, .. } => Some(deadline),
            _ => None,
        },
        Err(_) => None,
    };
    render(state, session, "Second step", flash, html! {
        @if let Some(deadline) = deadline {
            div #grace-banner data-deadline=(deadline.unix_timestamp()) {
                p { "Please verify a contact by " (day(deadline)) " UTC (on the settings page, once signed in). After that, sign-in is blocked until you do." }
            }
        }
        p { "Choose how to prove it is you." }
        @for m in &methods {
            @match m.kind {
                MethodKind::Authenticator => {
                    form #totp-form method="post" action="/login/totp" {
                        (csrf(&token))
                        label { "Authenticator app code " input name="code" inputmode="numeric" autocomplete="one-time-code"; }
                        label { input type="checkbox" name="trust" value="1"; " Don't ask again on this device" }
                        button #totp-submit type="submit" { "Verify" }
                    }
                }
                MethodKind::RecoveryCode => {
                    form #recovery-form method="post" action="/login/recovery" {
                        (csrf(&token))
                        label { "Recovery code " input name="code" autocomplete="off"; }
                        button #recovery-submit type="submit" { "Use recovery code" }
                    }
                }
                kind => {
                    @let suffix = if kind == MethodKind::Link && m.masked_destination.as_deref().is_some_and(|d| d.contains('@')) { "-email" } else { "" };
                    form id={ "method-" (kind.as_str()) (suffix) } method="post" action="/login/send" {
                        (csrf(&token))
                        input type="hidden" name="method" value=(m.id);
                        (describe(kind)) " " (m.masked_destination.as_deref().unwrap_or(""))
                        @if m.confirmation_required {
                            br;
                            @if let Some(digits) = m.confirmation_digits {
                                label { "Type the last " (digits) " digits of the number " input name="confirmation" inputmode="numeric"; }
                            } @else {
                                label { "Type the whole address " input name="confirmation" type="email"; }
                            }
                        }
                        button id={ "send-" (kind.as_str()) (suffix) } type="submit" { "Send" }
                    }
                }
            }
        }
    }).await
}

fn describe(kind: MethodKind) -> &'static str {
    match kind {
        MethodKind::Sms => "Text a code to",
        MethodKind::Voice => "Call with a code",
        MethodKind::Email => "Email a code to",
        MethodKind::Link => "Text a sign-in link to",
        _ => "Use",
    }
}

#[derive(Deserialize)]
struct SendForm {
    csrf: String,
    method: String,
    #[serde(default)]
    confirmation: Option<String>,
}

async fn send(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SendForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(pending) = session.get::<String>(PENDING).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let account = AccountId::new(pending);
    let method = MethodId::new(form.method);
    let confirmation = form.confirmation.as_deref().filter(|c| !c.is_empty());
    let ip = caller(addr);
    let is_link = state
        .service
        .methods(&account)
        .await
        .map(|ms| {
            ms.iter()
                .any(|m| m.id.as_str() == method.as_str() && m.kind == MethodKind::Link)
        })
        .unwrap_or(false);
    if is_link {
        let now = state.clock_now();
        let device = format!(
            "{} at {now} UTC",
            describe_device(&headers, Some(addr.ip()))
        );
        match state
            .service
            .sign_in_send_link(&account, &method, &device, confirmation, Some(&ip))
            .await
        {
            Ok(ticket) => {
                session
                    .insert(CHALLENGE, ticket.challenge_id.to_string())
                    .await?;
                Ok(Redirect::to("/login/wait").into_response())
            }
            Err(e) => second(&state, &session, Some(flash_of(&e))).await,
        }
    } else {
        match state
            .service
            .sign_in_send_code(&account, &method, confirmation, Some(&ip))
            .await
        {
            Ok(ticket) => {
                session
                    .insert(CHALLENGE, ticket.challenge_id.to_string())
                    .await?;
                if let ChannelReason::Fallback { from, .. } = ticket.reason {
                    let text = format!(
                        "The {from} to {} could not be delivered, so the code comes by {} instead.",
                        ticket.masked_destination, ticket.channel
                    );
                    session.insert(CODE_FALLBACK, text).await?;
                }
                Ok(Redirect::to("/login/code").into_response())
            }
            Err(e) => second(&state, &session, Some(flash_of(&e))).await,
        }
    }
}

fn code_form(token: &str) -> Markup {
    html! {
        form #code-form method="post" action="/login/code" {
            (csrf(token))
            label { "Code " input name="code" inputmode="numeric" autocomplete="one-time-code"; }
            label { input type="checkbox" name="trust" value="1"; " Don't ask again on this device" }
            button #code-submit type="submit" { "Verify" }
        }
        p { a #another-option href="/login/second" { "Use another option" } }
    }
}

async fn code_page(State(state): State<AppState>, session: Session) -> Page {
    let token = csrf_token(&session).await?;
    let flash = session
        .remove::<String>(CODE_FALLBACK)
        .await?
        .map(|text| note("channel_fallback", &text));
    render(&state, &session, "Enter the code", flash, code_form(&token)).await
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    code: String,
    #[serde(default)]
    trust: Option<String>,
}

async fn code(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(challenge) = session
        .get::<String>(CHALLENGE)
        .await?
        .and_then(|c| ChallengeId::parse(&c).ok())
    else {
        return Ok(Redirect::to("/login/second").into_response());
    };
    let proof = Proof::Code {
        challenge: &challenge,
        code: &form.code,
    };
    finish(
        &state,
        &session,
        &headers,
        proof,
        form.trust.is_some(),
        "/login/code",
    )
    .await
}

async fn totp(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let proof = Proof::Authenticator { code: &form.code };
    finish(
        &state,
        &session,
        &headers,
        proof,
        form.trust.is_some(),
        "/login/second",
    )
    .await
}

async fn recovery(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let proof = Proof::RecoveryCode { code: &form.code };
    finish(&state, &session, &headers, proof, false, "/login/second").await
}

async fn finish(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    proof: Proof<'_>,
    trust: bool,
    retry: &str,
) -> Page {
    let Some(pending) = session.get::<String>(PENDING).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let account = AccountId::new(pending.clone());
    let attempt = session.get::<SignInAttempt>(ATTEMPT).await?;
    let device = trust.then(|| describe_device(headers, None));
    match state
        .service
        .sign_in_complete(&account, proof, device.as_deref(), attempt.as_ref())
        .await
    {
        Ok(signed) => signed_in(state, session, &pending, signed).await,
        Err(e) if retry == "/login/code" => {
            let token = csrf_token(session).await?;
            render(
                state,
                session,
                "Enter the code",
                Some(flash_of(&e)),
                code_form(&token),
            )
            .await
        }
        Err(e) => second(state, session, Some(flash_of(&e))).await,
    }
}

/// The second step passed: the session moves to a new id and holds the
/// user and the step-up proof; "don't ask again" sets ninsho's device
/// cookie. A device that could not be trusted is reported, not fatal.
async fn signed_in(state: &AppState, session: &Session, account: &str, signed: SignedIn) -> Page {
    session.remove::<String>(PENDING).await?;
    session.remove::<SignInAttempt>(ATTEMPT).await?;
    session.remove::<String>(CHALLENGE).await?;
    session.cycle_id().await?;
    session.insert(USER, account).await?;
    session.insert(STEP_UP, &signed.step_up).await?;
    let mut response = Redirect::to("/settings").into_response();
    if let Some((token, _)) = &signed.device {
        match state.device_cookie.set(token) {
            Ok(cookie) => {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Err(e) => tracing::warn!(error = %e, "device cookie not set"),
        }
    }
    if signed.trust_failed {
        tracing::warn!("this device could not be remembered; the sign-in stands");
    }
    Ok(response)
}

async fn wait(State(state): State<AppState>, session: Session) -> Page {
    let Some(pending) = session.get::<String>(PENDING).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let Some(challenge) = session
        .get::<String>(CHALLENGE)
        .await?
        .and_then(|c| ChallengeId::parse(&c).ok())
    else {
        return Ok(Redirect::to("/login/second").into_response());
    };
    let attempt = session.get::<SignInAttempt>(ATTEMPT).await?;
    match state.service.sign_in_poll_link(&AccountId::new(pending.clone()), &challenge, None, attempt.as_ref()).await {
        Ok(Some(signed)) => signed_in(&state, &session, &pending, signed).await,
        Ok(None) => Ok(html! {
            (maud::DOCTYPE)
            html lang="en" { head { meta charset="utf-8"; meta http-equiv="refresh" content="2"; title { "Waiting for approval — ninsho demo" } }
            body { h1 { "Check your phone" } p #waiting { "We texted you a link. Open it on your phone and approve this sign-in; this page moves on by itself." }
            p { a #another-option href="/login/second" { "Use another option" } } } }
        }
        .into_response()),
        Err(e) => second(&state, &session, Some(flash_of(&e))).await,
    }
}

async fn link_page(
    State(state): State<AppState>,
    session: Session,
    Path(token): Path<String>,
) -> Page {
    let csrf_value = csrf_token(&session).await?;
    match state.service.open_link(&token).await {
        Ok(view) => render(&state, &session, "Is this you signing in?", None, html! {
            p #link-device { "A sign-in is waiting on: " strong { (view.device) } }
            p { "If you did not try to sign in, deny it — and do not approve a request you did not start." }
            form #approve-form method="post" action={ "/link/" (token) "/approve" } { (csrf(&csrf_value)) button #approve type="submit" { "Yes, it's me" } }
            form #deny-form method="post" action={ "/link/" (token) "/deny" } { (csrf(&csrf_value)) button #deny type="submit" { "No, deny" } }
        }).await,
        Err(e) => render(&state, &session, "Sign-in link", Some(flash_of(&e)), html! {}).await,
    }
}

async fn link_approve(
    State(state): State<AppState>,
    session: Session,
    Path(token): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let flash = match state.service.approve_link(&token).await {
        Ok(()) => note("approved", "Approved. You can go back to the other device."),
        Err(e) => flash_of(&e),
    };
    render(&state, &session, "Sign-in link", Some(flash), html! {}).await
}

async fn link_deny(
    State(state): State<AppState>,
    session: Session,
    Path(token): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let flash = match state.service.deny_link(&token).await {
        Ok(()) => note("denied", "Denied. Nobody signs in with this link."),
        Err(e) => flash_of(&e),
    };
    render(&state, &session, "Sign-in link", Some(flash), html! {}).await
}

// ---------------------------------------------------------------- settings

async fn settings(State(state): State<AppState>, session: Session) -> Page {
    settings_with(&state, &session, None, html! {}).await
}

async fn settings_with(
    state: &AppState,
    session: &Session,
    flash: Option<Flash>,
    extra: Markup,
) -> Page {
    let Some(account) = signed_in_user(session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let token = csrf_token(session).await?;
    let enabled = state
        .service
        .two_factor_enabled(&account)
        .await
        .unwrap_or(false);
    let contacts = state.service.contacts(&account).await.unwrap_or_default();
    let left = state
        .service
        .recovery_codes_left(&account)
        .await
        .ok()
        .flatten();
    let check = state.service.contact_check(&account).await.ok();
    let devices = state.service.devices(&account).await.unwrap_or_default();
    render(state, session, "Settings", flash, html! {
        @if let Some(GraceDecision::Remind { deadline, .. }) = check.as_ref().map(|c| &c.decision) {
            div #grace-banner data-deadline=(deadline.unix_timestamp()) {
                p { "Please verify a contact by " (day(*deadline)) " UTC. After that, sign-in is blocked until you do." }
                (contact_forms(check.as_ref().map(|c| c.contacts.as_slice()).unwrap_or_default(), &token))
            }
        }
        (extra)
        h2 { "Contacts" }
        ul { @for c in &contacts { li.contact { (c.masked_destination) @if c.verified { " (verified)" } } } }
        h2 { "Two-step sign-in" }
        p #two-factor-status data-enabled=(enabled) { @if enabled { "On." } @else { "Off." } }
        @if enabled {
            @if let Some(left) = left { p { (left) " recovery codes left." } }
            form #disable-2fa method="post" action="/settings/2fa/disable" { (csrf(&token)) button #disable-2fa-submit type="submit" { "Turn off" } }
            form #regenerate-codes method="post" action="/settings/recovery/regenerate" { (csrf(&token)) button #regenerate-submit type="submit" { "New recovery codes" } }
        } @else {
            form #enable-2fa method="post" action="/settings/2fa/enable" { (csrf(&token)) button #enable-2fa-submit type="submit" { "Turn on" } }
        }
        h2 { "Phone" }
        form #phone-form method="post" action="/settings/phone" {
            (csrf(&token))
            label { "New mobile number (Japan) " input name="phone" type="tel" placeholder="090-1234-5678"; }
            button #phone-submit type="submit" { "Send a code" }
        }
        h2 { "Trusted devices" }
        table #devices {
            @for (i, d) in devices.iter().enumerate() {
                tr.device data-device=(d.id) {
                    td { (d.label) } td { "last used " (day(d.last_used_at)) } td { "until " (day(d.expires_at)) }
                    td { form.revoke-device id=(format!("revoke-device-{i}")) method="post" action="/settings/devices/revoke" {
                        (csrf(&token)) input type="hidden" name="device" value=(d.id);
                        button id=(format!("revoke-device-{i}-submit")) type="submit" { "Revoke" }
                    } }
                }
            }
        }
        h2 { "Authenticator app" }
        form #authenticator-start method="post" action="/settings/authenticator" { (csrf(&token)) button #authenticator-start-submit type="submit" { "Set up an authenticator app" } }
        form #logout-form method="post" action="/logout" { (csrf(&token)) button #logout type="submit" { "Sign out" } }
    }).await
}

fn recovery_list(codes: &ninsho::recovery::PlainCodes) -> Markup {
    html! {
        p { "Your recovery codes. They are shown once: write them down now." }
        ol #recovery-codes { @for c in codes.expose_secret() { li.recovery-code { (c) } } }
    }
}

async fn enable_2fa(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<CsrfOnly>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(account) = signed_in_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    match state.service.enable_two_factor(&account).await {
        Ok(codes) => {
            settings_with(
                &state,
                &session,
                Some(note("two_factor_on", "Two-step sign-in is on.")),
                recovery_list(&codes),
            )
            .await
        }
        Err(e) => settings_with(&state, &session, Some(flash_of(&e)), html! {}).await,
    }
}

async fn step_up(session: &Session) -> Result<Option<StepUp>, Fault> {
    Ok(session.get::<StepUp>(STEP_UP).await?)
}

fn step_up_needed() -> Flash {
    note(
        "step_up_required",
        "Sign in again with your second step first (sign out, then sign in).",
    )
}

async fn disable_2fa(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<CsrfOnly>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(account) = signed_in_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let Some(proof) = step_up(&session).await? else {
        return settings_with(&state, &session, Some(step_up_needed()), html! {}).await;
    };
    let flash = match state.service.disable_two_factor(&account, &proof).await {
        Ok(()) => note("two_factor_off", "Two-step sign-in is off."),
        Err(e) => flash_of(&e),
    };
    settings_with(&state, &session, Some(flash), html! {}).await
}

async fn regenerate(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<CsrfOnly>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(account) = signed_in_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let Some(proof) = step_up(&session).await? else {
        return settings_with(&state, &session, Some(step_up_needed()), html! {}).await;
    };
    match state
        .service
        .regenerate_recovery_codes(&account, &proof)
        .await
    {
        Ok(codes) => {
            settings_with(
                &state,
                &session,
                Some(note(
                    "regenerated",
                    "New codes; the old ones no longer work.",
                )),
                recovery_list(&codes),
            )
            .await
        }
        Err(e) => settings_with(&state, &session, Some(flash_of(&e)), html! {}).await,
    }
}

async fn authenticator_start(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<CsrfOnly>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(account) = signed_in_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let proof = step_up(&session).await?;
    let token = csrf_token(&session).await?;
    // The label the app shows: the username, not ninsho's account id.
    let label = session
        .get::<String>(NAME)
        .await?
        .unwrap_or_else(|| account.0.clone());
    match state
        .service
        .authenticator_start(&account, &label, proof.as_ref())
        .await
    {
        Ok(setup) => {
            let svg = setup
                .qr_svg()
                .map(|s| s.expose_secret().to_owned())
                .unwrap_or_default();
            render(&state, &session, "Set up an authenticator app", None, html! {
                p { "Scan the QR code with your app, or type the key, then enter the code it shows." }
                div #totp-qr { (PreEscaped(svg)) }
                p { "Key: " code #totp-secret { (setup.manual_key.expose_secret()) } }
                form #authenticator-confirm method="post" action="/settings/authenticator/confirm" {
                    (csrf(&token))
                    label { "Code " input name="code" inputmode="numeric" autocomplete="one-time-code"; }
                    button #authenticator-confirm-submit type="submit" { "Confirm" }
                }
            }).await
        }
        Err(e) => settings_with(&state, &session, Some(flash_of(&e)), html! {}).await,
    }
}

#[derive(Deserialize)]
struct ConfirmForm {
    csrf: String,
    code: String,
}

async fn authenticator_confirm(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<ConfirmForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(account) = signed_in_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let flash = match state
        .service
        .authenticator_confirm(&account, &form.code)
        .await
    {
        Ok(()) => note("authenticator_added", "The authenticator app is set up."),
        Err(e) => flash_of(&e),
    };
    settings_with(&state, &session, Some(flash), html! {}).await
}

// ---------------------------------------------------------------- dev tools

async fn dev_inbox(State(state): State<AppState>, session: Session) -> Page {
    let mut messages = state.inbox.messages();
    messages.reverse();
    render(&state, &session, "Dev inbox (DEVELOPMENT ONLY)", None, html! {
        p.dev { "DEVELOPMENT ONLY. Messages the recording gateway captured instead of sending them, newest first." }
        @for m in &messages {
            @let secret = m.secret.as_ref().map(|s| s.expose_secret().to_owned());
            @let link = secret.as_deref().filter(|s| s.starts_with("http"));
            @let code = secret.as_deref().filter(|s| !s.starts_with("http"));
            div.message data-to=(m.to) data-channel=(m.channel.to_string().to_lowercase()) data-code=[code] data-link=[link] {
                p { strong { (m.channel) } " to " (m.to) @if let Some(s) = &m.subject { " — " (s) } }
                pre { (m.body.expose_secret()) }
                @if let Some(link) = link { a href=(link) { "Open the link (as the phone)" } }
            }
        }
    }).await
}

async fn dev_clock(State(state): State<AppState>, session: Session) -> Page {
    clock_page(&state, &session, None).await
}

async fn clock_page(state: &AppState, session: &Session, flash: Option<Flash>) -> Page {
    let token = csrf_token(session).await?;
    let offset = state.clock.offset();
    render(state, session, "Dev clock (DEVELOPMENT ONLY)", flash, html! {
        p.dev { "DEVELOPMENT ONLY. The demo's clock runs " span #clock-offset data-seconds=(offset.whole_seconds()) { (offset.whole_days()) " days" } " ahead of real time." }
        form #advance-clock method="post" action="/dev/clock" {
            (csrf(&token))
            label { "Jump ahead by days " input name="days" type="number" min="0" max="365" value="1"; }
            button #advance-clock-submit type="submit" { "Jump" }
        }
    }).await
}

#[derive(Deserialize)]
struct ClockForm {
    csrf: String,
    days: u16,
}

async fn dev_clock_advance(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<ClockForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    state
        .clock
        .advance(Duration::days(i64::from(form.days.min(365))));
    clock_page(
        &state,
        &session,
        Some(note("clock_moved", "The clock moved.")),
    )
    .await
}

async fn dev_gateway(State(state): State<AppState>, session: Session) -> Page {
    gateway_page(&state, &session, None).await
}

async fn gateway_page(state: &AppState, session: &Session, flash: Option<Flash>) -> Page {
    let token = csrf_token(session).await?;
    let refused = state.sms_refused.load(Ordering::SeqCst);
    render(state, session, "Dev gateway (DEVELOPMENT ONLY)", flash, html! {
        p.dev { "DEVELOPMENT ONLY. Makes the recording gateway refuse text messages, as a carrier that rejects the number would, to see ninsho fall back to a voice call. It affects only what the recording gateway handles, never a real gateway." }
        p #gateway-status data-sms=(if refused { "refused" } else { "delivered" }) {
            "SMS: " strong { (if refused { "refused" } else { "delivered" }) }
        }
        form #fail-sms method="post" action="/dev/gateway" {
            (csrf(&token)) input type="hidden" name="action" value="fail-sms";
            button #fail-sms-submit type="submit" { "Refuse SMS" }
        }
        form #heal-gateway method="post" action="/dev/gateway" {
            (csrf(&token)) input type="hidden" name="action" value="heal";
            button #heal-gateway-submit type="submit" { "Deliver everything again" }
        }
    }).await
}

#[derive(Deserialize)]
struct GatewayForm {
    csrf: String,
    action: String,
}

async fn dev_gateway_set(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<GatewayForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let flash = match form.action.as_str() {
        "fail-sms" => {
            state
                .inbox
                .fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
            state.sms_refused.store(true, Ordering::SeqCst);
            note("sms_refused", "SMS is now refused.")
        }
        "heal" => {
            state.inbox.heal();
            state.sms_refused.store(false, Ordering::SeqCst);
            note("gateway_healed", "Every channel delivers again.")
        }
        _ => note("unknown_action", "No such action."),
    };
    gateway_page(&state, &session, Some(flash)).await
}

// ---------------------------------------------------------------- devices, phone

#[derive(Deserialize)]
struct RevokeForm {
    csrf: String,
    device: String,
}

async fn revoke_device(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<RevokeForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(account) = signed_in_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let flash = match DeviceId::parse(&form.device) {
        Ok(id) => match state.service.revoke_device(&account, &id).await {
            Ok(()) => note(
                "device_revoked",
                "That device will be asked for the second step again.",
            ),
            Err(e) => flash_of(&e),
        },
        Err(_) => note("unknown_device", "No such device."),
    };
    settings_with(&state, &session, Some(flash), html! {}).await
}

#[derive(Deserialize)]
struct PhoneForm {
    csrf: String,
    phone: String,
}

fn phone_confirm_form(token: &str, masked: &str) -> Markup {
    html! {
        form #phone-confirm method="post" action="/settings/phone/confirm" {
            (csrf(token))
            label { "Code sent to " (masked) " " input name="code" inputmode="numeric" autocomplete="one-time-code"; }
            button #phone-confirm-submit type="submit" { "Confirm" }
        }
    }
}

async fn phone_send(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Form(form): Form<PhoneForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(account) = signed_in_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let proof = step_up(&session).await?;
    let token = csrf_token(&session).await?;
    match state
        .service
        .phone_send_code(&account, &form.phone, proof.as_ref(), Some(&caller(addr)))
        .await
    {
        Ok(ticket) => {
            session
                .insert(PHONE_CHALLENGE, ticket.challenge_id.to_string())
                .await?;
            render(
                &state,
                &session,
                "Confirm your phone",
                None,
                phone_confirm_form(&token, &ticket.masked_destination),
            )
            .await
        }
        Err(e) => settings_with(&state, &session, Some(flash_of(&e)), html! {}).await,
    }
}

async fn phone_confirm(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<ConfirmForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(account) = signed_in_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let Some(challenge) = session
        .get::<String>(PHONE_CHALLENGE)
        .await?
        .and_then(|c| ChallengeId::parse(&c).ok())
    else {
        return settings_with(&state, &session, None, html! {}).await;
    };
    match state
        .service
        .phone_confirm(&account, &challenge, &form.code, false)
        .await
    {
        Ok(done) => {
            session.remove::<String>(PHONE_CHALLENGE).await?;
            let text = if done.changed {
                "Your phone number is changed; trusted devices were signed out."
            } else {
                "Your phone number is registered."
            };
            settings_with(
                &state,
                &session,
                Some(note("phone_confirmed", text)),
                html! {},
            )
            .await
        }
        Err(e) => {
            let token = csrf_token(&session).await?;
            render(
                &state,
                &session,
                "Confirm your phone",
                Some(flash_of(&e)),
                phone_confirm_form(&token, "your phone"),
            )
            .await
        }
    }
}

// ---------------------------------------------------------------- contact check

fn day(at: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// One "send a code" form per unverified contact, and the code form.
fn contact_forms(contacts: &[ContactView], token: &str) -> Markup {
    html! {
        @for (i, c) in contacts.iter().enumerate().filter(|(_, c)| !c.verified) {
            form.contact-send id={ "contact-send-" (i) } method="post" action="/contact/send" {
                (csrf(token)) input type="hidden" name="contact" value=(i);
                "Verify " (c.masked_destination) " "
                button type="submit" { "Send a code" }
            }
        }
        form #contact-confirm method="post" action="/contact/confirm" {
            (csrf(token))
            label { "Code " input name="code" inputmode="numeric" autocomplete="one-time-code"; }
            button #contact-confirm-submit type="submit" { "Verify" }
        }
    }
}

/// The user the contact check is about: signed in, or stopped at /blocked.
async fn checked_user(session: &Session) -> Result<Option<AccountId>, Fault> {
    if let Some(user) = signed_in_user(session).await? {
        return Ok(Some(user));
    }
    Ok(session.get::<String>(BLOCKED).await?.map(AccountId::new))
}

async fn blocked_page(State(state): State<AppState>, session: Session) -> Page {
    blocked(&state, &session, None).await
}

async fn blocked(state: &AppState, session: &Session, flash: Option<Flash>) -> Page {
    let Some(account) = session.get::<String>(BLOCKED).await?.map(AccountId::new) else {
        return Ok(Redirect::to("/login").into_response());
    };
    let token = csrf_token(session).await?;
    let contacts = match state.service.contact_check(&account).await {
        Ok(check) => check.contacts,
        Err(e) => {
            return render(
                state,
                session,
                "Sign-in blocked",
                Some(flash_of(&e)),
                html! {},
            )
            .await;
        }
    };
    render(
        state,
        session,
        "Sign-in blocked",
        flash,
        html! {
            div #blocked {
                p { "The time to verify a contact is over. Verify one now to sign in." }
                (contact_forms(&contacts, &token))
            }
        },
    )
    .await
}

#[derive(Deserialize)]
struct ContactForm {
    csrf: String,
    contact: usize,
}

async fn contact_send(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Form(form): Form<ContactForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(account) = checked_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let contacts = state.service.contacts(&account).await.unwrap_or_default();
    let Some(contact) = contacts.get(form.contact) else {
        return back_to_check(
            &state,
            &session,
            note("unknown_contact", "No such contact."),
        )
        .await;
    };
    let proof = step_up(&session).await?;
    let flash = match state
        .service
        .contact_send_code(
            &account,
            &contact.destination,
            proof.as_ref(),
            Some(&caller(addr)),
        )
        .await
    {
        Ok(ticket) => {
            session
                .insert(CONTACT_CHALLENGE, ticket.challenge_id.to_string())
                .await?;
            note(
                "code_sent",
                &format!("We sent a code to {}.", ticket.masked_destination),
            )
        }
        Err(e) => flash_of(&e),
    };
    back_to_check(&state, &session, flash).await
}

async fn back_to_check(state: &AppState, session: &Session, flash: Flash) -> Page {
    if signed_in_user(session).await?.is_some() {
        settings_with(state, session, Some(flash), html! {}).await
    } else {
        blocked(state, session, Some(flash)).await
    }
}

async fn contact_confirm(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<ConfirmForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let Some(account) = checked_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let Some(challenge) = session
        .get::<String>(CONTACT_CHALLENGE)
        .await?
        .and_then(|c| ChallengeId::parse(&c).ok())
    else {
        return back_to_check(&state, &session, note("no_code_sent", "Send a code first.")).await;
    };
    match state
        .service
        .contact_confirm(&account, &challenge, &form.code)
        .await
    {
        Ok(_) => {
            session.remove::<String>(CONTACT_CHALLENGE).await?;
            if session.remove::<String>(BLOCKED).await?.is_some() {
                let token = csrf_token(&session).await?;
                return render(
                    &state,
                    &session,
                    "Sign in",
                    Some(note("contact_verified", "Verified. Sign in again.")),
                    login_form(&token),
                )
                .await;
            }
            settings_with(
                &state,
                &session,
                Some(note("contact_verified", "Verified. Thank you.")),
                html! {},
            )
            .await
        }
        Err(e) => back_to_check(&state, &session, flash_of(&e)).await,
    }
}

// ---------------------------------------------------------------- legacy accounts (dev)

fn legacy_form(token: &str) -> Markup {
    html! {
        p.dev { "DEVELOPMENT ONLY. Creates an account the way it existed before verification: its email is on file but not verified, so the contact check's grace period starts now." }
        form #legacy-form method="post" action="/dev/legacy" {
            (csrf(token))
            label { "Username " input name="username" required; } br;
            label { "Password " input name="password" type="password" required; } br;
            label { "Email " input name="email" type="email" required; } br;
            button #legacy-submit type="submit" { "Create" }
        }
    }
}

async fn legacy_page(State(state): State<AppState>, session: Session) -> Page {
    let token = csrf_token(&session).await?;
    render(
        &state,
        &session,
        "Legacy account (DEVELOPMENT ONLY)",
        None,
        legacy_form(&token),
    )
    .await
}

#[derive(Deserialize)]
struct LegacyForm {
    csrf: String,
    username: String,
    password: String,
    email: String,
}

async fn legacy(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<LegacyForm>,
) -> Page {
    if !check_csrf(&session, &form.csrf).await? {
        return Ok(forbidden());
    }
    let token = csrf_token(&session).await?;
    let title = "Legacy account (DEVELOPMENT ONLY)";
    let username = form.username.trim().to_owned();
    let email = match Destination::email(&form.email) {
        Ok(email) => email,
        Err(e) => {
            return render(
                &state,
                &session,
                title,
                Some(flash_of(&e.into())),
                legacy_form(&token),
            )
            .await;
        }
    };
    let password_hash = hash_password(form.password.clone()).await?;
    let account_id = new_account_id()?;
    let claimed = match state.users.lock() {
        Ok(mut users)
            if !username.is_empty()
                && !username.contains(':')
                && form.password.len() >= 8
                && !users.contains_key(&username) =>
        {
            let user = DemoUser {
                account: account_id.clone(),
                password_hash,
            };
            users.insert(username.clone(), user);
            true
        }
        Ok(_) => false,
        Err(_) => return Err(Fault("user table poisoned".into())),
    };
    if !claimed {
        let flash = note(
            "bad_signup",
            "Pick another username (this one is empty or taken) and a password of at least 8 characters.",
        );
        return render(&state, &session, title, Some(flash), legacy_form(&token)).await;
    }
    let account = AccountId::new(account_id.clone());
    let made = async {
        state.service.account_created(&account).await?;
        state.service.import_contact(&account, &email, false).await
    };
    if let Err(e) = made.await {
        // Records half made under this fresh id stay unreachable.
        release(&state, &username);
        return render(
            &state,
            &session,
            title,
            Some(flash_of(&e)),
            legacy_form(&token),
        )
        .await;
    }
    session.cycle_id().await?;
    session.insert(USER, &account_id).await?;
    session.insert(NAME, &username).await?;
    Ok(Redirect::to("/settings").into_response())
}
