//! A gateway that records messages instead of sending them, for tests.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{DeliveryError, DeliveryErrorKind, Gateway, Message, Receipt};

use crate::model::Channel;
use crate::secret::SecretString;

/// One call to [`RecordingGateway::send`](Gateway::send), delivered or not.
///
/// `Debug` shows `to` masked, as [`Message`]'s does.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The channel the message was for.
    pub channel: Channel,
    /// The destination.
    pub to: String,
    /// `Ok` if it was delivered (recorded in
    /// [`messages`](RecordingGateway::messages)), otherwise the scripted
    /// failure.
    pub result: Result<(), DeliveryErrorKind>,
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("channel", &self.channel)
            .field("to", &crate::contact::mask_address(&self.to))
            .field("result", &self.result)
            .finish()
    }
}

#[derive(Debug, Default)]
struct State {
    delivered: Vec<Message>,
    attempts: Vec<Attempt>,
    failing_channels: HashMap<Channel, DeliveryErrorKind>,
    fail_next: VecDeque<DeliveryErrorKind>,
    sent: u64,
}

/// A [`Gateway`] that keeps every message instead of sending it, and can be
/// told to fail. For ninsho's tests and the host's.
///
/// Clones share their state, so keep one clone in the test and hand another
/// (or an `Arc<dyn Gateway>` of it) to ninsho. Every call is listed by
/// [`attempts`](Self::attempts); only delivered messages are listed by
/// [`messages`](Self::messages), [`sent_to`](Self::sent_to) and
/// [`last_secret_to`](Self::last_secret_to).
///
/// Scripted failures: [`fail_next`](Self::fail_next) fails the next send
/// (whatever its channel; calling it several times queues several failures),
/// and otherwise [`fail_channel`](Self::fail_channel) fails every send on a
/// channel until [`heal`](Self::heal).
///
/// ```
/// use ninsho::gateway::{DeliveryErrorKind, Gateway, Message, RecordingGateway};
/// use ninsho::model::{Channel, Locale};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let gateway = RecordingGateway::new();
/// gateway.fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
///
/// let sms = Message::new(Channel::Sms, "+819012345678", None, "Code 123456".to_owned(), Locale::En)
///     .with_secret("123456".to_owned());
/// let err = gateway.send(&sms).await.unwrap_err();
/// assert!(err.is_permanent());
///
/// let voice = Message::new(Channel::Voice, "+819012345678", None, "1, 2, 3".to_owned(), Locale::En)
///     .with_secret("123".to_owned());
/// gateway.send(&voice).await.unwrap();
///
/// assert_eq!(gateway.attempts().len(), 2);
/// assert_eq!(gateway.messages().len(), 1);
/// let code = gateway.last_secret_to("+819012345678").unwrap();
/// assert_eq!(code.expose_secret(), "123");
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct RecordingGateway {
    state: Arc<Mutex<State>>,
}

impl RecordingGateway {
    /// An empty gateway that delivers everything.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic in another test thread:
        // every update is a single push or insert.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every delivered message, oldest first.
    #[must_use]
    pub fn messages(&self) -> Vec<Message> {
        self.state().delivered.clone()
    }

    /// The delivered messages to `to`, oldest first.
    #[must_use]
    pub fn sent_to(&self, to: &str) -> Vec<Message> {
        self.state()
            .delivered
            .iter()
            .filter(|m| m.to == to)
            .cloned()
            .collect()
    }

    /// The last message delivered to `to`.
    #[must_use]
    pub fn last_to(&self, to: &str) -> Option<Message> {
        self.state()
            .delivered
            .iter()
            .rev()
            .find(|m| m.to == to)
            .cloned()
    }

    /// The bare secret (code or URL) of the last message delivered to `to`;
    /// `None` if there is none or it carried no secret.
    #[must_use]
    pub fn last_secret_to(&self, to: &str) -> Option<SecretString> {
        self.last_to(to).and_then(|m| m.secret)
    }

    /// Every send attempt, delivered or failed, oldest first.
    #[must_use]
    pub fn attempts(&self) -> Vec<Attempt> {
        self.state().attempts.clone()
    }

    /// Forgets recorded messages and attempts; scripted failures stay (see
    /// [`heal`](Self::heal)).
    pub fn clear(&self) {
        let mut state = self.state();
        state.delivered.clear();
        state.attempts.clear();
    }

    /// Makes every send on `channel` fail with `kind`, until
    /// [`heal`](Self::heal). Failed sends appear in
    /// [`attempts`](Self::attempts) only.
    pub fn fail_channel(&self, channel: Channel, kind: DeliveryErrorKind) {
        self.state().failing_channels.insert(channel, kind);
    }

    /// Makes the next send fail with `kind`, whatever its channel. Calls
    /// queue up: two calls fail the next two sends.
    pub fn fail_next(&self, kind: DeliveryErrorKind) {
        self.state().fail_next.push_back(kind);
    }

    /// Removes every scripted failure.
    pub fn heal(&self) {
        let mut state = self.state();
        state.failing_channels.clear();
        state.fail_next.clear();
    }
}

#[async_trait::async_trait]
impl Gateway for RecordingGateway {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        let mut state = self.state();
        let failure = match state.fail_next.pop_front() {
            Some(kind) => Some(kind),
            None => state.failing_channels.get(&message.channel).copied(),
        };
        state.attempts.push(Attempt {
            channel: message.channel,
            to: message.to.clone(),
            result: failure.map_or(Ok(()), Err),
        });
        if let Some(kind) = failure {
            return Err(DeliveryError::new(kind));
        }
        state.sent += 1;
        let id = format!("recorded-{}", state.sent);
        state.delivered.push(message.clone());
        Ok(Receipt::new(Some(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Locale;

    fn msg(channel: Channel, to: &str, secret: &str) -> Message {
        Message::new(channel, to, None, format!("code {secret}"), Locale::En)
            .with_secret(secret.to_owned())
    }

    const A: &str = "+819011112222";
    const B: &str = "b@example.com";

    #[tokio::test]
    async fn records_and_finds_messages() {
        let g = RecordingGateway::new();
        let r1 = g.send(&msg(Channel::Sms, A, "111111")).await.unwrap();
        g.send(&msg(Channel::Email, B, "222222")).await.unwrap();
        let r3 = g.send(&msg(Channel::Sms, A, "333333")).await.unwrap();
        assert_eq!(r1.provider_id.as_deref(), Some("recorded-1"));
        assert_eq!(r3.provider_id.as_deref(), Some("recorded-3"));

        assert_eq!(g.messages().len(), 3);
        assert_eq!(g.sent_to(A).len(), 2);
        assert_eq!(g.sent_to(B).len(), 1);
        assert!(g.sent_to("nobody").is_empty());
        assert_eq!(g.last_secret_to(A).unwrap().expose_secret(), "333333");
        assert_eq!(g.last_secret_to(B).unwrap().expose_secret(), "222222");
        assert!(g.last_secret_to("nobody").is_none());
        assert_eq!(g.last_to(B).unwrap().channel, Channel::Email);
        assert!(g.attempts().iter().all(|a| a.result.is_ok()));

        g.clear();
        assert!(g.messages().is_empty());
        assert!(g.attempts().is_empty());
    }

    #[tokio::test]
    async fn message_without_secret() {
        let g = RecordingGateway::new();
        let m = Message::new(Channel::Sms, A, None, "hello".to_owned(), Locale::Ja);
        g.send(&m).await.unwrap();
        assert!(g.last_secret_to(A).is_none());
    }

    #[tokio::test]
    async fn clones_share_state() {
        let g = RecordingGateway::new();
        let handed_out: Arc<dyn Gateway> = Arc::new(g.clone());
        handed_out.send(&msg(Channel::Voice, A, "1")).await.unwrap();
        assert_eq!(g.messages().len(), 1);
        g.fail_channel(Channel::Voice, DeliveryErrorKind::Transient);
        assert!(handed_out.send(&msg(Channel::Voice, A, "2")).await.is_err());
    }

    #[tokio::test]
    async fn failing_channel_is_attempted_but_not_delivered() {
        let g = RecordingGateway::new();
        g.fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
        let err = g.send(&msg(Channel::Sms, A, "111111")).await.unwrap_err();
        assert_eq!(err.kind(), DeliveryErrorKind::Refused);
        assert!(err.is_permanent());
        g.send(&msg(Channel::Voice, A, "222222")).await.unwrap();

        assert_eq!(
            g.attempts(),
            vec![
                Attempt {
                    channel: Channel::Sms,
                    to: A.to_owned(),
                    result: Err(DeliveryErrorKind::Refused),
                },
                Attempt {
                    channel: Channel::Voice,
                    to: A.to_owned(),
                    result: Ok(()),
                },
            ]
        );
        let delivered = g.messages();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].channel, Channel::Voice);
        assert_eq!(g.last_secret_to(A).unwrap().expose_secret(), "222222");

        // Still failing until healed.
        assert!(g.send(&msg(Channel::Sms, A, "3")).await.is_err());
        g.heal();
        assert!(g.send(&msg(Channel::Sms, A, "4")).await.is_ok());
    }

    #[tokio::test]
    async fn fail_next_fails_once_per_call() {
        let g = RecordingGateway::new();
        g.fail_next(DeliveryErrorKind::RateLimited);
        g.fail_next(DeliveryErrorKind::Transient);
        let e1 = g.send(&msg(Channel::Email, B, "1")).await.unwrap_err();
        let e2 = g.send(&msg(Channel::Sms, A, "2")).await.unwrap_err();
        assert_eq!(e1.kind(), DeliveryErrorKind::RateLimited);
        assert_eq!(e2.kind(), DeliveryErrorKind::Transient);
        assert!(g.send(&msg(Channel::Email, B, "3")).await.is_ok());
        assert_eq!(g.attempts().len(), 3);
        assert_eq!(g.messages().len(), 1);

        g.fail_next(DeliveryErrorKind::InvalidDestination);
        g.heal();
        assert!(g.send(&msg(Channel::Email, B, "4")).await.is_ok());
    }

    #[tokio::test]
    async fn fail_next_takes_precedence_over_channel_failure() {
        let g = RecordingGateway::new();
        g.fail_channel(Channel::Sms, DeliveryErrorKind::Refused);
        g.fail_next(DeliveryErrorKind::InvalidDestination);
        let e = g.send(&msg(Channel::Sms, A, "1")).await.unwrap_err();
        assert_eq!(e.kind(), DeliveryErrorKind::InvalidDestination);
        let e = g.send(&msg(Channel::Sms, A, "2")).await.unwrap_err();
        assert_eq!(e.kind(), DeliveryErrorKind::Refused);
    }

    #[tokio::test]
    async fn poisoned_lock_is_recovered() {
        let g = RecordingGateway::new();
        let g2 = g.clone();
        let _ = std::thread::spawn(move || {
            let _guard = g2.state.lock();
            panic!("poison the lock");
        })
        .join();
        assert!(g.state.is_poisoned());
        g.send(&msg(Channel::Sms, A, "1")).await.unwrap();
        assert_eq!(g.messages().len(), 1);
    }

    #[test]
    fn debug_does_not_leak_secrets() {
        let g = RecordingGateway::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(g.send(&msg(Channel::Sms, A, "987654")))
            .unwrap();
        assert!(!format!("{g:?}").contains("987654"));
    }
}
