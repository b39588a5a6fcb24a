//! axum integration: errors as problem details, the trusted-device cookie,
//! and a device description for the one-time link.
//!
//! Enabled by the `axum` feature (axum 0.8). Three pieces, each replacing
//! glue every host otherwise writes, and gets subtly wrong:
//!
//! - [`Problem`]: an [`Error`](crate::Error) as an RFC 9457 problem
//!   details response (`application/problem+json`), with ninsho's stable
//!   code, the refusal's figures, `Retry-After` on waits, and nothing
//!   internal on infrastructure failures. `Error` itself implements
//!   [`IntoResponse`](axum::response::IntoResponse), so a handler can
//!   return `Result<_, ninsho::Error>`.
//! - [`DeviceCookie`]: sets, reads and clears the "don't ask again on this
//!   device" token with `Secure; HttpOnly; SameSite=Lax; Path=/`, the
//!   [`DevicePolicy`](crate::device::DevicePolicy) lifetime as `Max-Age`,
//!   and the `__Host-` prefix.
//! - [`describe_device`]: the browser, system and address of the request
//!   in a few safe words, for the link approval page and the trusted
//!   device list.
//!
//! # Status codes
//!
//! Each error has one status and one stable `code` (the problem's `code`
//! member; its `type` is [`PROBLEM_TYPE_BASE`] followed by the code).
//! Refusals are the user's side of things (4xx); infrastructure failures
//! are ours (5xx).
//!
//! | status | code | when |
//! |---|---|---|
//! | 401 | `wrong_code`, `wrong_recovery_code` | the code is wrong (`attempts_left` when the code has a limit) |
//! | 403 | `denied` | the one-time link was denied on the phone |
//! | 403 | `locked` (without `retry_at`) | locked until an operator resets it |
//! | 403 | `step_up_required` | a sensitive action needs a fresh second factor |
//! | 404 | `unknown` | no such code or link, or the wrong secret for it |
//! | 404 | `not_a_contact`, `not_found` | what the request names is not (or no longer) on the account |
//! | 409 | `contact_in_use`, `contact_already_added`, `too_many_contacts`, `contact_required`, `contacts_unverified` | the account's contacts don't allow it now |
//! | 409 | `two_factor_already_on`, `two_factor_off`, `no_second_factor`, `no_more_options` | the account's state doesn't allow it now |
//! | 410 | `expired`, `too_many_attempts`, `already_used` | the code or link is spent: ask for a new one |
//! | 422 | `purpose_mismatch`, `destination_mismatch`, `contact_not_confirmed`, `no_such_method` | the request doesn't fit the challenge or the account |
//! | 422 | a [`ContactError`](crate::contact::ContactError) code (`phone_…`, `email_…`) | the phone number or email address is refused |
//! | 422 | `undeliverable`, `delivery_refused` | the contact can't receive messages (every fallback tried) |
//! | 422 | `invalid_authenticator` | an authenticator's parameters or key URI are invalid |
//! | 429 | `rate_limited`, `cooldown` | a send limit or the resend cooldown; **`Retry-After`** |
//! | 429 | `locked` (with `retry_at`) | back-off after wrong codes; **`Retry-After`** |
//! | 429 | `sends_used_up` | the code was sent as often as allowed: start a new one (no `Retry-After`, waiting won't help) |
//! | 503 | `store_unavailable` | the store is unreachable, or kept losing to concurrent writes; retry |
//! | 503 | `delivery_unavailable` | the gateway failed for now or is throttled; `Retry-After` when the provider said |
//! | 500 | `internal_error` | anything else: store failure, random source, keys (a retired key too), gateway configuration, misuse |
//!
//! Every problem response is `Cache-Control: no-store`: it answers one
//! attempt at one moment.
//!
//! `Retry-After` is in whole seconds, rounded up from the refusal's
//! `retry_at` (or `until`) and the `now` given to
//! [`Problem::from_error`], so a client that waits exactly that long is not
//! refused again. `401` carries no `WWW-Authenticate`: the second step is
//! the host's form, not an HTTP authentication scheme.
//!
//! **Infrastructure failures** (500 and 503) carry a `correlation_id` and
//! a generic title and detail, never the cause: the cause (the error and
//! its sources; ninsho's errors hold no secrets) goes to
//! `tracing::error!` (target `ninsho::web`) with the same id, so support
//! can find it from what the user quotes.
//!
//! **Anti-enumeration.** The journeys that must not tell whether an
//! account or contact exists already answer alike (see the
//! [threat model](crate::guide::threat_model#enumeration)): `recover_start`
//! and `signup_start` succeed either way, wrong codes give the same
//! `wrong_code` with the same `attempts_left`, and an unknown link and a
//! wrong link secret both give `unknown`. The problem body is a function of
//! the refusal, the locale and `now` only — no per-request id, no
//! timestamp of its own, members in a fixed order — so those answers stay
//! byte-identical over HTTP, with the same status and headers.
//!
//! # An example handler
//!
//! The second step of sign-in, as JSON. The host's session (here reduced
//! to two arguments) holds who passed the password and the attempt id.
//!
//! ```
//! use std::sync::Arc;
//!
//! use axum::http::{HeaderMap, StatusCode, header::SET_COOKIE};
//! use axum::response::{IntoResponse, Response};
//! use ninsho::device::DevicePolicy;
//! use ninsho::prelude::*;
//! use ninsho::web::{DeviceCookie, Problem, describe_device};
//! use ninsho::Clock;
//!
//! struct App {
//!     two_factor: TwoFactor,
//!     clock: Arc<dyn Clock>,
//!     cookie: DeviceCookie,
//! }
//!
//! impl App {
//!     fn new(two_factor: TwoFactor, clock: Arc<dyn Clock>, policy: &DevicePolicy) -> Self {
//!         Self { two_factor, clock, cookie: DeviceCookie::new(policy) }
//!     }
//! }
//!
//! /// POST /sign-in/authenticator
//! async fn second_step(
//!     app: &App,
//!     account: &AccountId,          // from the host's session
//!     attempt: &SignInAttempt,      // from the host's session
//!     headers: &HeaderMap,
//!     code: &str,
//!     trust: bool,
//! ) -> Result<Response, Problem> {
//!     let label = describe_device(headers, None);
//!     let signed_in = app
//!         .two_factor
//!         .sign_in_complete(
//!             account,
//!             Proof::Authenticator { code },
//!             trust.then_some(label.as_str()),
//!             Some(attempt),
//!         )
//!         // The service's clock, for the detail and Retry-After.
//!         .await
//!         .map_err(|e| Problem::from_error(&e, Locale::En, app.clock.now()))?;
//!     let mut response = StatusCode::NO_CONTENT.into_response();
//!     if let Some((token, _entry)) = &signed_in.device {
//!         let cookie = app.cookie.set(token).map_err(|_| {
//!             Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal error")
//!         })?;
//!         response.headers_mut().append(SET_COOKIE, cookie);
//!     }
//!     Ok(response)
//! }
//!
//! /// The first step, after the password: skip the second on a trusted device.
//! async fn after_password(app: &App, account: &AccountId, headers: &HeaderMap)
//!     -> Result<SignInStart, ninsho::Error>
//! {
//!     let token = app.cookie.read(headers);
//!     app.two_factor
//!         .sign_in_begin(account, token.as_ref().map(|t| t.expose_secret()))
//!         .await
//! }
//! # let _ = (App::new, second_step, after_password);
//! ```
//!
//! A handler returning `Result<_, ninsho::Error>` works too: the error
//! answers with [`Problem::from`], in English at the system clock's time.
//!
//! # Beside the host's sessions and CSRF protection
//!
//! ninsho keeps no web session and sets no cookie but the device cookie.
//! The host's session layer (tower-sessions, axum-login, its own) stays in
//! charge, and ninsho expects of it:
//!
//! - **The pending sign-in lives in the host's session**: the account that
//!   passed the password, the [`SignInAttempt`](crate::service::SignInAttempt)
//!   (made with `TwoFactor::new_attempt` at that moment), and the ticket of
//!   the code or link sent. Never take the account from the form. Rotate
//!   the session id when the sign-in completes, as after any privilege
//!   change.
//! - **The device cookie is separate** from the session cookie: it outlives
//!   sign-outs on purpose, and its lifetime is the device policy's, not the
//!   session's. Clear it ([`DeviceCookie::clear`]) when the user revokes
//!   this device or signs out everywhere; the store's revocation is what
//!   counts, the cookie only follows.
//! - **CSRF is the host's job** on every state-changing form: the code and
//!   recovery-code forms, "trust this device", the link approve/deny page,
//!   settings. `SameSite=Lax` on the device cookie does not protect the
//!   host's forms; use the host's CSRF tokens or an origin check.
//! - **The link approval page** is opened on the phone, in another browser
//!   with no session: it is authorised by the link's token alone. Show the
//!   device description and make approve and deny `POST`s (a link
//!   prefetcher must not approve by `GET`).

mod cookie;
mod describe;
mod problem;

pub use cookie::{CookieError, DEFAULT_COOKIE_NAME, DeviceCookie};
pub use describe::{MAX_DESCRIPTION, describe_device};
pub use problem::{PROBLEM_JSON, PROBLEM_TYPE_BASE, Problem};
