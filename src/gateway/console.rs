//! A gateway that prints messages, for examples and local development.

use std::io::Write as _;

use super::{DeliveryError, Gateway, Message, Receipt};

/// A [`Gateway`] that prints every message to standard output instead of
/// sending it:
///
/// ```text
/// ----- SMS to +819012345678 -----
/// 【Example】認証コード：123456
/// ...
/// --------------------------------
/// ```
///
/// **It prints the codes and links in clear.** Use it in examples and on a
/// developer's machine only, never in production.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleGateway;

impl ConsoleGateway {
    /// A console gateway.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

/// The printed block for `message`.
fn render(message: &Message) -> String {
    let header = format!("----- {} to {} -----", message.channel, message.to);
    let mut out = String::with_capacity(header.len() * 2 + message.body.expose_secret().len());
    out.push_str(&header);
    out.push('\n');
    if let Some(subject) = &message.subject {
        out.push_str("Subject: ");
        out.push_str(subject);
        out.push_str("\n\n");
    }
    out.push_str(message.body.expose_secret().trim_end());
    out.push('\n');
    out.push_str(&"-".repeat(header.chars().count()));
    out.push('\n');
    out
}

#[async_trait::async_trait]
impl Gateway for ConsoleGateway {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        let block = render(message);
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(block.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(DeliveryError::transient)?;
        Ok(Receipt::new(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Channel, Locale};

    #[test]
    fn renders_a_readable_block() {
        let m = Message::new(
            Channel::Email,
            "a@example.com",
            Some("Your code".into()),
            "Code: 123456\n".to_owned(),
            Locale::En,
        );
        assert_eq!(
            render(&m),
            "----- email to a@example.com -----\n\
             Subject: Your code\n\
             \n\
             Code: 123456\n\
             ----------------------------------\n"
        );
        let m = Message::new(Channel::Sms, "+81901", None, "x".to_owned(), Locale::En);
        let lines: Vec<String> = render(&m).lines().map(str::to_owned).collect();
        assert_eq!(lines[0], "----- SMS to +81901 -----");
        assert_eq!(lines[1], "x");
        assert_eq!(lines[2], "-".repeat(lines[0].len()));
        assert_eq!(lines.len(), 3);
    }

    #[tokio::test]
    async fn sends() {
        let m = Message::new(
            Channel::Voice,
            "+81312345678",
            None,
            "1, 2".to_owned(),
            Locale::En,
        );
        let receipt = ConsoleGateway::new().send(&m).await.unwrap();
        assert_eq!(receipt.provider_id, None);
        assert_eq!(format!("{:?}", ConsoleGateway), "ConsoleGateway");
    }
}
