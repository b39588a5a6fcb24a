//! One gateway per channel: email through one provider, SMS and voice
//! through another.

use std::fmt;
use std::sync::Arc;

use super::{DeliveryError, Gateway, Message, Receipt};
use crate::model::Channel;

/// A [`Gateway`] that hands each message to the gateway chosen for its
/// channel: email through `SmtpGateway` (feature `smtp`), SMS and voice
/// through `TwilioGateway` (feature `twilio`), or any mix of your own.
///
/// A message on a channel with no gateway fails as
/// [`Configuration`](super::DeliveryErrorKind::Configuration) without
/// contacting anything: the service's channels (its
/// [`phone_channels`](crate::service::TwoFactorBuilder::phone_channels),
/// email) and the routes disagree, which only the host can fix.
///
/// ```
/// use std::sync::Arc;
/// use ninsho::gateway::{ByChannel, ConsoleGateway, Gateway, RecordingGateway};
/// use ninsho::model::Channel;
///
/// let phones = Arc::new(RecordingGateway::new()); // TwilioGateway in production
/// let gateway: Arc<dyn Gateway> = Arc::new(
///     ByChannel::new()
///         .email(Arc::new(ConsoleGateway::new())) // SmtpGateway in production
///         .sms(phones.clone())
///         .voice(phones),
/// );
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct ByChannel {
    sms: Option<Arc<dyn Gateway>>,
    voice: Option<Arc<dyn Gateway>>,
    email: Option<Arc<dyn Gateway>>,
}

impl ByChannel {
    /// No routes yet: every message fails until a channel is given one.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends messages on `channel` through `gateway`, replacing the route
    /// it had.
    pub fn route(mut self, channel: Channel, gateway: Arc<dyn Gateway>) -> Self {
        *self.slot(channel) = Some(gateway);
        self
    }

    /// Sends SMS through `gateway`.
    pub fn sms(self, gateway: Arc<dyn Gateway>) -> Self {
        self.route(Channel::Sms, gateway)
    }

    /// Places voice calls through `gateway`.
    pub fn voice(self, gateway: Arc<dyn Gateway>) -> Self {
        self.route(Channel::Voice, gateway)
    }

    /// Sends email through `gateway`.
    pub fn email(self, gateway: Arc<dyn Gateway>) -> Self {
        self.route(Channel::Email, gateway)
    }

    /// Whether `channel` has a gateway.
    #[must_use]
    pub fn routes(&self, channel: Channel) -> bool {
        self.get(channel).is_some()
    }

    fn slot(&mut self, channel: Channel) -> &mut Option<Arc<dyn Gateway>> {
        match channel {
            Channel::Sms => &mut self.sms,
            Channel::Voice => &mut self.voice,
            Channel::Email => &mut self.email,
        }
    }

    fn get(&self, channel: Channel) -> Option<&Arc<dyn Gateway>> {
        match channel {
            Channel::Sms => self.sms.as_ref(),
            Channel::Voice => self.voice.as_ref(),
            Channel::Email => self.email.as_ref(),
        }
    }
}

impl fmt::Debug for ByChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByChannel")
            .field("sms", &self.sms)
            .field("voice", &self.voice)
            .field("email", &self.email)
            .finish()
    }
}

#[async_trait::async_trait]
impl Gateway for ByChannel {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        match self.get(message.channel) {
            Some(gateway) => gateway.send(message).await,
            None => Err(DeliveryError::configuration(format!(
                "no gateway sends {}: give ByChannel one for it, or leave it out of the \
                 service's channels",
                message.channel
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{DeliveryErrorKind, RecordingGateway};
    use crate::model::Locale;

    fn message(channel: Channel, to: &str) -> Message {
        Message::new(channel, to, None, "code 123456".to_owned(), Locale::En)
    }

    #[tokio::test]
    async fn each_channel_goes_to_its_gateway_and_a_missing_one_is_configuration() {
        let mail = RecordingGateway::new();
        let phones = RecordingGateway::new();
        let router = ByChannel::new()
            .email(Arc::new(mail.clone()))
            .sms(Arc::new(phones.clone()));
        assert!(router.routes(Channel::Sms) && !router.routes(Channel::Voice));

        router
            .send(&message(Channel::Email, "a@example.com"))
            .await
            .unwrap();
        router
            .send(&message(Channel::Sms, "+819012345678"))
            .await
            .unwrap();
        assert_eq!(mail.messages().len(), 1);
        assert_eq!(mail.messages()[0].channel, Channel::Email);
        assert_eq!(phones.messages().len(), 1);
        assert_eq!(phones.messages()[0].channel, Channel::Sms);

        let err = router
            .send(&message(Channel::Voice, "+819012345678"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), DeliveryErrorKind::Configuration);
        let why = std::error::Error::source(&err).unwrap().to_string();
        assert!(why.contains("voice call"), "{why}");
        assert_eq!(phones.messages().len(), 1, "nothing else was sent");

        // A gateway's own failure comes back as it was.
        phones.fail_next(DeliveryErrorKind::Refused);
        let err = router
            .send(&message(Channel::Sms, "+819012345678"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), DeliveryErrorKind::Refused);

        // A later route replaces an earlier one.
        let other = RecordingGateway::new();
        let router = router.route(Channel::Email, Arc::new(other.clone()));
        router
            .send(&message(Channel::Email, "b@example.com"))
            .await
            .unwrap();
        assert_eq!((mail.messages().len(), other.messages().len()), (1, 1));
    }
}
