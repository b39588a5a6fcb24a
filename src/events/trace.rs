//! The `tracing` event sink (feature `tracing`).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Event, EventSink};
use crate::error::{CodeRefusal, KeyKind, Refusal, SecretKind};
use crate::gateway::DeliveryErrorKind;
use crate::model::{AccountId, Channel, Purpose};

/// The `tracing` target of every audit event [`TracingEvents`] emits:
/// filter on it (`RUST_LOG=ninsho::audit=info`) to keep or route the audit
/// trail apart from the crate's other output.
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub const AUDIT_TARGET: &str = "ninsho::audit";

/// Writes every audit [`Event`] as a structured `tracing` event: one
/// `tracing` event per audit event, at target [`AUDIT_TARGET`]
/// (`"ninsho::audit"`), with the message `"ninsho audit event"`.
///
/// Fields are structured, never a `Debug` blob, and carry only what the
/// [`Event`] carries: no code, link or device token, recovery code, seed
/// or full contact ever reaches them (a destination is the masked form the
/// event holds). Every event has `event`, its stable
/// [`Event::name`]; the others are present when the event has them:
///
/// | field | value |
/// | --- | --- |
/// | `event` | [`Event::name`]: `issued`, `locked`, … |
/// | `account` | the [`AccountId`] |
/// | `challenge` | the [`ChallengeId`](crate::model::ChallengeId), 32 hex digits |
/// | `purpose` | `sign_up`, `sign_in`, `contact_change`, `step_up`, `recovery`, or a host's own purpose as it is named |
/// | `destination` | the masked destination (`+81 **-****-**78`) |
/// | `channel`, `fallback` | `sms`, `voice`, `email` |
/// | `provider_id` | the gateway provider's message id |
/// | `kind` | how a delivery failed: `invalid_destination`, `refused`, `transient`, `rate_limited` |
/// | `reason` | the refusal's [`Refusal::code`] (`wrong_code`, `already_used`, …) |
/// | `consecutive` | consecutive failures of a locked account |
/// | `until` | the end of a lockout, RFC 3339 (absent: until a reset) |
/// | `approved` | a link's decision |
/// | `count`, `remaining` | recovery codes generated, left |
/// | `device` | the [`DeviceId`](crate::model::DeviceId), 32 hex digits |
/// | `epoch` | the account's new security epoch |
/// | `secret`, `key_kind`, `key_id` | a retired key: the kind of secret (`one_time_code`, `link`, `recovery_code`, `trusted_device`, `authenticator`), `hashing` or `sealing`, the key's id |
///
/// Levels: what an operator or a security team should look at is `WARN`,
/// the rest `INFO`.
///
/// | level | events |
/// | --- | --- |
/// | `WARN` | `locked`; `failed` with reason `already_used` (a spent code, link or app code presented again) or `denied` (the user denied a sign-in from a one-time link); `link_decided` with `approved = false`; `delivery_failed`; `device_trust_failed` (a store outage); `retired_key` |
/// | `INFO` | every other event |
///
/// # Journey spans
///
/// With the `tracing` feature, every public async call of
/// [`TwoFactor`](crate::service::TwoFactor) (`sign_in_begin`,
/// `sign_in_send_code`, `sign_in_complete`, `phone_send_code`,
/// `authenticator_confirm`, `recover_verify`, …) also runs in an `INFO`
/// span named `ninsho.` and the method's name (`ninsho.sign_in_complete`),
/// at the target of its module (`ninsho::service::…`), whichever sink is
/// set: the audit events of a call, and the host's own events inside it,
/// carry the journey and its account. A span records none of the call's
/// arguments but these:
///
/// | field | value |
/// | --- | --- |
/// | `account` | the [`AccountId`], when the call names one |
/// | `method` | the method kind (`sms`, `voice`, `email`, `link`, `authenticator`, `recovery_code`): the kind a sign-in method id names for `sign_in_send_code` and `sign_in_send_link`; for `sign_in_complete`, the proof's kind, or a code's channel once it is verified; `authenticator` for the `authenticator_*` calls |
/// | `challenge` | the [`ChallengeId`](crate::model::ChallengeId) the call names |
/// | `verification`, `member` | the sign-up's [`VerificationId`](crate::model::VerificationId) and the contact's index |
/// | `device` | the [`DeviceId`](crate::model::DeviceId) revoked |
///
/// Calls that take only a contact or a token (`signup_start`,
/// `recover_start`, `contact_owner`, `open_link`, `approve_link`,
/// `deny_link`) have spans without fields.
///
/// To see both, enable `ninsho=info` (for example
/// `RUST_LOG=ninsho=info` with `tracing-subscriber`'s `EnvFilter`).
///
/// ```
/// use std::sync::Arc;
/// use ninsho::events::TracingEvents;
/// use ninsho::prelude::*;
/// use ninsho::gateway::ConsoleGateway;
/// use ninsho::store::MemoryStore;
///
/// let service = TwoFactor::builder(
///     "nizima",
///     Arc::new(MemoryStore::new()),
///     Arc::new(ConsoleGateway::new()),
///     KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32]).unwrap()),
///     Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[8; 32]).unwrap())),
/// )
/// .events(Arc::new(TracingEvents::new()))
/// .build()
/// .unwrap();
/// # let _ = service;
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingEvents;

impl TracingEvents {
    /// The sink.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

/// Emits one event at `WARN` when `$warn`, else at `INFO` (a `tracing`
/// level must be known where the event is written).
macro_rules! audit {
    ($warn:expr, $($fields:tt)+) => {
        if $warn {
            tracing::warn!(target: AUDIT_TARGET, message = "ninsho audit event", $($fields)+);
        } else {
            tracing::info!(target: AUDIT_TARGET, message = "ninsho audit event", $($fields)+);
        }
    };
}

impl EventSink for TracingEvents {
    fn record(&self, event: &Event) {
        let name = event.name();
        let warn = is_warning(event);
        match event {
            Event::Issued {
                challenge,
                purpose,
                account,
                destination,
            } => audit!(
                warn,
                event = name,
                challenge = %challenge,
                purpose = purpose_name(purpose),
                account = account_name(account.as_ref()),
                destination = destination.as_str(),
            ),
            Event::Delivered {
                challenge,
                channel,
                provider_id,
            } => audit!(
                warn,
                event = name,
                challenge = %challenge,
                channel = channel_name(*channel),
                provider_id = provider_id.as_deref(),
            ),
            Event::DeliveryFailed {
                challenge,
                channel,
                kind,
                fallback,
            } => audit!(
                warn,
                event = name,
                challenge = %challenge,
                channel = channel_name(*channel),
                kind = delivery_name(*kind),
                fallback = fallback.map(channel_name),
            ),
            Event::Verified {
                challenge,
                purpose,
                account,
            } => audit!(
                warn,
                event = name,
                challenge = %challenge,
                purpose = purpose_name(purpose),
                account = account_name(account.as_ref()),
            ),
            Event::Failed {
                challenge,
                account,
                reason,
            } => audit!(
                warn,
                event = name,
                challenge = challenge.map(tracing::field::display),
                account = account_name(account.as_ref()),
                reason = reason.code(),
            ),
            Event::Locked {
                account,
                consecutive,
                until,
            } => audit!(
                warn,
                event = name,
                account = account.0.as_str(),
                consecutive = *consecutive,
                until = until.and_then(rfc3339).as_deref(),
            ),
            Event::LinkOpened { challenge } => {
                audit!(warn, event = name, challenge = %challenge)
            }
            Event::LinkDecided {
                challenge,
                approved,
            } => audit!(
                warn,
                event = name,
                challenge = %challenge,
                approved = *approved,
            ),
            Event::RecoveryCodesGenerated { account, count } => audit!(
                warn,
                event = name,
                account = account.0.as_str(),
                count = *count,
            ),
            Event::RecoveryCodeUsed { account, remaining }
            | Event::RecoveryCodesLow { account, remaining } => audit!(
                warn,
                event = name,
                account = account.0.as_str(),
                remaining = *remaining,
            ),
            Event::DeviceTrusted { account, device } | Event::DeviceRevoked { account, device } => {
                audit!(
                    warn,
                    event = name,
                    account = account.0.as_str(),
                    device = %device,
                )
            }
            Event::EpochBumped { account, epoch } => audit!(
                warn,
                event = name,
                account = account.0.as_str(),
                epoch = *epoch,
            ),
            Event::DeviceTrustFailed { account }
            | Event::TwoFactorEnabled { account }
            | Event::TwoFactorDisabled { account }
            | Event::AuthenticatorAdded { account }
            | Event::AuthenticatorRemoved { account } => {
                audit!(warn, event = name, account = account.0.as_str())
            }
            Event::RetiredKey { account, retired } => audit!(
                warn,
                event = name,
                account = account_name(account.as_ref()),
                secret = secret_name(retired.secret),
                key_kind = key_kind_name(retired.key_kind()),
                key_id = retired.key_id.0,
            ),
        }
    }
}

/// Whether `event` is emitted at `WARN` (see the table on [`TracingEvents`]).
fn is_warning(event: &Event) -> bool {
    match event {
        Event::Locked { .. }
        | Event::DeliveryFailed { .. }
        | Event::DeviceTrustFailed { .. }
        | Event::RetiredKey { .. } => true,
        Event::Failed { reason, .. } => matches!(
            reason,
            Refusal::Code(CodeRefusal::AlreadyUsed | CodeRefusal::Denied)
        ),
        Event::LinkDecided { approved, .. } => !approved,
        Event::Issued { .. }
        | Event::Delivered { .. }
        | Event::Verified { .. }
        | Event::LinkOpened { .. }
        | Event::RecoveryCodesGenerated { .. }
        | Event::RecoveryCodeUsed { .. }
        | Event::RecoveryCodesLow { .. }
        | Event::DeviceTrusted { .. }
        | Event::DeviceRevoked { .. }
        | Event::EpochBumped { .. }
        | Event::TwoFactorEnabled { .. }
        | Event::TwoFactorDisabled { .. }
        | Event::AuthenticatorAdded { .. }
        | Event::AuthenticatorRemoved { .. } => false,
    }
}

fn account_name(account: Option<&AccountId>) -> Option<&str> {
    account.map(|a| a.0.as_str())
}

fn rfc3339(at: OffsetDateTime) -> Option<String> {
    at.format(&Rfc3339).ok()
}

fn purpose_name(purpose: &Purpose) -> &str {
    match purpose {
        Purpose::SignUp => "sign_up",
        Purpose::SignIn => "sign_in",
        Purpose::ContactChange => "contact_change",
        Purpose::StepUp => "step_up",
        Purpose::Recovery => "recovery",
        Purpose::Other(name) => name,
    }
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms => "sms",
        Channel::Voice => "voice",
        Channel::Email => "email",
    }
}

fn delivery_name(kind: DeliveryErrorKind) -> &'static str {
    match kind {
        DeliveryErrorKind::InvalidDestination => "invalid_destination",
        DeliveryErrorKind::Refused => "refused",
        DeliveryErrorKind::Transient => "transient",
        DeliveryErrorKind::RateLimited => "rate_limited",
        DeliveryErrorKind::Configuration => "configuration",
    }
}

fn secret_name(secret: SecretKind) -> &'static str {
    match secret {
        SecretKind::OneTimeCode => "one_time_code",
        SecretKind::Link => "link",
        SecretKind::RecoveryCode => "recovery_code",
        SecretKind::TrustedDevice => "trusted_device",
        SecretKind::Authenticator => "authenticator",
    }
}

fn key_kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Hashing => "hashing",
        KeyKind::Sealing => "sealing",
    }
}
