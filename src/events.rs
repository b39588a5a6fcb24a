//! Audit events: what happened, for the host to log.
//!
//! Every flow operation reports typed events to an [`EventSink`]. No event
//! carries a code, token or full contact address (destinations are masked),
//! so every event is safe to write to logs.
//!
//! Each event has a stable name ([`Event::name`]) for logs and metrics.
//! With the `tracing` feature, `TracingEvents` writes every event as a
//! structured `tracing` event.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;

use crate::error::{Refusal, RetiredKey};
use crate::gateway::DeliveryErrorKind;
use crate::model::{AccountId, ChallengeId, Channel, DeviceId, Purpose};

#[cfg(feature = "tracing")]
mod trace;
#[cfg(feature = "tracing")]
pub use trace::{AUDIT_TARGET, TracingEvents};

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A challenge (code or link) was created.
    Issued {
        /// The challenge.
        challenge: ChallengeId,
        /// Why.
        purpose: Purpose,
        /// The account, if any.
        account: Option<AccountId>,
        /// The destination, masked as screens show it (the service's
        /// [`MaskPolicy`](crate::contact::MaskPolicy)): events feed activity
        /// pages, so they never show the digits a confirmation asks for.
        destination: String,
    },
    /// The gateway accepted a message.
    Delivered {
        /// The challenge.
        challenge: ChallengeId,
        /// The channel used.
        channel: Channel,
        /// The provider's message id, if it gave one.
        provider_id: Option<String>,
    },
    /// The gateway refused or failed a message.
    DeliveryFailed {
        /// The challenge.
        challenge: ChallengeId,
        /// The channel that failed.
        channel: Channel,
        /// How it failed.
        kind: DeliveryErrorKind,
        /// The channel tried next, if the failure was permanent and one was left.
        fallback: Option<Channel>,
    },
    /// A code or link was verified and consumed.
    Verified {
        /// The challenge.
        challenge: ChallengeId,
        /// Why it was issued.
        purpose: Purpose,
        /// The account, if any.
        account: Option<AccountId>,
    },
    /// A verification attempt or request was refused.
    Failed {
        /// The challenge, when one was named.
        challenge: Option<ChallengeId>,
        /// The account, if known.
        account: Option<AccountId>,
        /// Why.
        reason: Refusal,
    },
    /// An account reached the back-off or the hard stop.
    Locked {
        /// The account.
        account: AccountId,
        /// Consecutive failures so far.
        consecutive: u32,
        /// Until when (`None`: until the host resets it).
        until: Option<OffsetDateTime>,
    },
    /// A one-time link was opened (the device shown to the user).
    LinkOpened {
        /// The challenge.
        challenge: ChallengeId,
    },
    /// A one-time link was approved or denied.
    LinkDecided {
        /// The challenge.
        challenge: ChallengeId,
        /// `true` for approved.
        approved: bool,
    },
    /// A new recovery-code set replaced any previous one.
    RecoveryCodesGenerated {
        /// The account.
        account: AccountId,
        /// Codes in the new set.
        count: usize,
    },
    /// A recovery code was redeemed.
    RecoveryCodeUsed {
        /// The account.
        account: AccountId,
        /// Unused codes left.
        remaining: usize,
    },
    /// Few recovery codes are left: prompt the user to generate new ones.
    RecoveryCodesLow {
        /// The account.
        account: AccountId,
        /// Unused codes left.
        remaining: usize,
    },
    /// A device was trusted.
    DeviceTrusted {
        /// The account.
        account: AccountId,
        /// The device.
        device: DeviceId,
    },
    /// A sign-in succeeded and asked to trust the device, but the device
    /// could not be stored (a store outage): the sign-in stands and the
    /// device will be asked for a second factor again next time.
    DeviceTrustFailed {
        /// The account.
        account: AccountId,
    },
    /// A trusted device was revoked.
    DeviceRevoked {
        /// The account.
        account: AccountId,
        /// The device.
        device: DeviceId,
    },
    /// The account's security epoch moved on: every older device token is dead.
    EpochBumped {
        /// The account.
        account: AccountId,
        /// The new epoch.
        epoch: u64,
    },
    /// Two-step sign-in was turned on.
    TwoFactorEnabled {
        /// The account.
        account: AccountId,
    },
    /// Two-step sign-in was turned off.
    TwoFactorDisabled {
        /// The account.
        account: AccountId,
    },
    /// An authenticator app was confirmed.
    AuthenticatorAdded {
        /// The account.
        account: AccountId,
    },
    /// An authenticator app was removed.
    AuthenticatorRemoved {
        /// The account.
        account: AccountId,
    },
    /// A stored secret could not be checked: it was made with a key this
    /// deployment no longer holds. Nothing was counted against the user.
    /// For an operator: configure the key again as a previous key (see
    /// [`RetiredKey`]). Reported with every
    /// [`Error::RetiredKey`](crate::Error::RetiredKey), and for a trusted
    /// device, whose check answers
    /// [`DeviceCheck::RetiredKey`](crate::device::DeviceCheck::RetiredKey)
    /// instead of failing.
    RetiredKey {
        /// The account, if known.
        account: Option<AccountId>,
        /// The kind of secret and the missing key's id.
        retired: RetiredKey,
    },
}

impl Event {
    /// A stable, snake_case name for the kind of event (`"issued"`,
    /// `"locked"`, `"recovery_code_used"`, …): the variant's name. For logs,
    /// metrics and alert rules; it never changes between releases, and no
    /// two kinds share one.
    ///
    /// ```
    /// use ninsho::events::Event;
    /// use ninsho::model::AccountId;
    ///
    /// let event = Event::TwoFactorEnabled { account: AccountId::new("taro") };
    /// assert_eq!(event.name(), "two_factor_enabled");
    /// ```
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Issued { .. } => "issued",
            Self::Delivered { .. } => "delivered",
            Self::DeliveryFailed { .. } => "delivery_failed",
            Self::Verified { .. } => "verified",
            Self::Failed { .. } => "failed",
            Self::Locked { .. } => "locked",
            Self::LinkOpened { .. } => "link_opened",
            Self::LinkDecided { .. } => "link_decided",
            Self::RecoveryCodesGenerated { .. } => "recovery_codes_generated",
            Self::RecoveryCodeUsed { .. } => "recovery_code_used",
            Self::RecoveryCodesLow { .. } => "recovery_codes_low",
            Self::DeviceTrusted { .. } => "device_trusted",
            Self::DeviceTrustFailed { .. } => "device_trust_failed",
            Self::DeviceRevoked { .. } => "device_revoked",
            Self::EpochBumped { .. } => "epoch_bumped",
            Self::TwoFactorEnabled { .. } => "two_factor_enabled",
            Self::TwoFactorDisabled { .. } => "two_factor_disabled",
            Self::AuthenticatorAdded { .. } => "authenticator_added",
            Self::AuthenticatorRemoved { .. } => "authenticator_removed",
            Self::RetiredKey { .. } => "retired_key",
        }
    }
}

/// Receives events. Called synchronously inside flows: keep it fast (push to
/// a channel or a logger), and never fail.
pub trait EventSink: Send + Sync + fmt::Debug {
    /// Records one event.
    fn record(&self, event: &Event);
}

/// Discards every event (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn record(&self, _: &Event) {}
}

/// Keeps events in memory; clones share them. For tests.
#[derive(Debug, Clone, Default)]
pub struct RecordingEvents {
    events: Arc<Mutex<Vec<Event>>>,
}

impl RecordingEvents {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything recorded so far, oldest first.
    #[must_use]
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl EventSink for RecordingEvents {
    fn record(&self, event: &Event) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::error::{CodeRefusal, SecretKind};
    use crate::hash::KeyId;

    /// One event of every kind (a new variant without a name does not
    /// compile: `name` matches every variant).
    pub(crate) fn one_of_each() -> Vec<Event> {
        let challenge = ChallengeId::from_bytes([1; 16]);
        let account = AccountId::new("taro");
        let device = DeviceId([2; 16]);
        vec![
            Event::Issued {
                challenge,
                purpose: Purpose::SignIn,
                account: Some(account.clone()),
                destination: "+81 **-****-**78".into(),
            },
            Event::Delivered {
                challenge,
                channel: Channel::Sms,
                provider_id: Some("SM123".into()),
            },
            Event::DeliveryFailed {
                challenge,
                channel: Channel::Sms,
                kind: DeliveryErrorKind::Refused,
                fallback: Some(Channel::Voice),
            },
            Event::Verified {
                challenge,
                purpose: Purpose::SignIn,
                account: Some(account.clone()),
            },
            Event::Failed {
                challenge: Some(challenge),
                account: Some(account.clone()),
                reason: Refusal::Code(CodeRefusal::AlreadyUsed),
            },
            Event::Locked {
                account: account.clone(),
                consecutive: 4,
                until: None,
            },
            Event::LinkOpened { challenge },
            Event::LinkDecided {
                challenge,
                approved: false,
            },
            Event::RecoveryCodesGenerated {
                account: account.clone(),
                count: 10,
            },
            Event::RecoveryCodeUsed {
                account: account.clone(),
                remaining: 9,
            },
            Event::RecoveryCodesLow {
                account: account.clone(),
                remaining: 2,
            },
            Event::DeviceTrusted {
                account: account.clone(),
                device,
            },
            Event::DeviceTrustFailed {
                account: account.clone(),
            },
            Event::DeviceRevoked {
                account: account.clone(),
                device,
            },
            Event::EpochBumped {
                account: account.clone(),
                epoch: 3,
            },
            Event::TwoFactorEnabled {
                account: account.clone(),
            },
            Event::TwoFactorDisabled {
                account: account.clone(),
            },
            Event::AuthenticatorAdded {
                account: account.clone(),
            },
            Event::AuthenticatorRemoved {
                account: account.clone(),
            },
            Event::RetiredKey {
                account: Some(account),
                retired: RetiredKey::new(SecretKind::Authenticator, KeyId(1)),
            },
        ]
    }

    #[test]
    fn every_kind_has_its_own_snake_case_name() {
        let events = one_of_each();
        let names: HashSet<_> = events.iter().map(Event::name).collect();
        assert_eq!(names.len(), events.len(), "two kinds share a name");
        for name in names {
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name:?} is not snake_case"
            );
        }
    }
}
