//! Email over SMTP with lettre (feature `smtp`).

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{self, AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{DeliveryError, DeliveryErrorKind, Gateway, Message, Receipt};
use crate::model::Channel;
use crate::random::{OsRandom, Random};
use crate::secret::SecretString;

/// How [`SmtpGateway`] protects its connection to the SMTP server (feature
/// `smtp`).
///
/// Certificates are checked against the Mozilla roots (`webpki-roots`), and
/// any root added with [`SmtpGatewayBuilder::root_certificate_pem`], for
/// the host name given to [`SmtpGateway::builder`]. There is no way to
/// turn the check off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SmtpTls {
    /// TLS from the first byte ("SMTPS", RFC 8314), port 465 by default.
    /// The default, and the best choice when the server offers it.
    Implicit,
    /// A plain connection upgraded with `STARTTLS` (port 587 by default).
    /// The upgrade is required: if the server does not offer it, nothing is
    /// sent, so a downgrade attack cannot read the message or the password.
    StartTls,
    /// No encryption at all (port 25 by default). **For a relay on the same
    /// machine or network only** (a local Postfix, a test server): the codes
    /// and the password would cross the network in clear.
    None,
}

impl SmtpTls {
    fn default_port(self) -> u16 {
        match self {
            Self::Implicit => 465,
            Self::StartTls => 587,
            Self::None => 25,
        }
    }
}

/// Why [`SmtpGatewayBuilder::build`] refused the settings (feature `smtp`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpConfigError {
    /// The host name is empty.
    #[error("the SMTP host is empty")]
    EmptyHost,
    /// No sender was given: call [`SmtpGatewayBuilder::from`].
    #[error("no sender address: call `SmtpGatewayBuilder::from`")]
    MissingFrom,
    /// The sender address is not a valid email address.
    #[error("the sender address is not a valid email address")]
    InvalidFrom(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The pool size is zero.
    #[error("the SMTP connection pool needs room for at least one connection")]
    EmptyPool,
    /// The TLS settings could not be built (the host is not a valid name for
    /// certificate checks).
    #[error("the SMTP TLS settings could not be built")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A root given to [`SmtpGatewayBuilder::root_certificate_pem`] holds
    /// no PEM certificate (`-----BEGIN CERTIFICATE-----`) or one that does
    /// not parse. `index` counts the roots given, from 0.
    #[error("root certificate {index} is not a PEM certificate")]
    RootCertificate {
        /// Which root, in the order they were added, from 0.
        index: usize,
    },
    /// Roots were added but the connection is not encrypted
    /// ([`SmtpTls::None`]): they would check nothing.
    #[error("root certificates were added, but SmtpTls::None checks no certificate")]
    RootsWithoutTls,
}

/// Settings for an [`SmtpGateway`] (feature `smtp`); start with
/// [`SmtpGateway::builder`].
///
/// `Debug` shows the user name but not the password.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct SmtpGatewayBuilder {
    host: String,
    port: Option<u16>,
    tls: SmtpTls,
    credentials: Option<(String, SecretString)>,
    from: Option<(String, String)>,
    pool_size: u32,
    timeout: Duration,
    roots: Vec<Vec<u8>>,
}

impl SmtpGatewayBuilder {
    /// The server's port. Defaults to the usual port of the chosen
    /// [`SmtpTls`]: 465, 587 or 25.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How the connection is protected; [`SmtpTls::Implicit`] unless set.
    pub fn tls(mut self, tls: SmtpTls) -> Self {
        self.tls = tls;
        self
    }

    /// Also trusts the root certificate(s) in `pem` (PEM text, one or more
    /// `-----BEGIN CERTIFICATE-----` blocks) for the server's certificate:
    /// for a relay whose certificate comes from a private CA. The Mozilla
    /// roots stay trusted, and the host name is still checked. May be
    /// called again to add more roots.
    ///
    /// [`build`](Self::build) refuses a `pem` without a certificate
    /// ([`SmtpConfigError::RootCertificate`]), and roots with
    /// [`SmtpTls::None`] ([`SmtpConfigError::RootsWithoutTls`]).
    pub fn root_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.roots.push(pem.as_ref().to_vec());
        self
    }

    /// Logs in with `user` and `password` (`AUTH PLAIN` or `LOGIN`, as the
    /// server offers).
    pub fn credentials(mut self, user: impl Into<String>, password: SecretString) -> Self {
        self.credentials = Some((user.into(), password));
        self
    }

    /// The sender: `address` (`no-reply@example.com`) and the name mail
    /// programs show for it, normally the service's name. A name outside
    /// ASCII (`例のサービス`) is sent encoded as RFC 2047 requires.
    /// Required.
    pub fn from(mut self, address: impl Into<String>, display_name: impl Into<String>) -> Self {
        self.from = Some((address.into(), display_name.into()));
        self
    }

    /// At most this many connections are kept open and reused; 10 unless
    /// set.
    pub fn pool_size(mut self, connections: u32) -> Self {
        self.pool_size = connections;
        self
    }

    /// How long to wait for the server at each step (connecting, each SMTP
    /// command) before the send fails as
    /// [`Transient`](DeliveryErrorKind::Transient); 30 seconds unless set.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and makes the gateway. Connects to nothing yet:
    /// the first send opens the first connection.
    ///
    /// # Errors
    /// An [`SmtpConfigError`] saying which setting is wrong.
    pub fn build(self) -> Result<SmtpGateway, SmtpConfigError> {
        if self.host.trim().is_empty() {
            return Err(SmtpConfigError::EmptyHost);
        }
        if self.pool_size == 0 {
            return Err(SmtpConfigError::EmptyPool);
        }
        let (address, name) = self.from.ok_or(SmtpConfigError::MissingFrom)?;
        let address: Address = address
            .parse()
            .map_err(|e| SmtpConfigError::InvalidFrom(Box::new(e)))?;
        let from = Mailbox::new(Some(name), address);

        let tls = match self.tls {
            SmtpTls::None if !self.roots.is_empty() => {
                return Err(SmtpConfigError::RootsWithoutTls);
            }
            SmtpTls::None => Tls::None,
            SmtpTls::Implicit | SmtpTls::StartTls => {
                let mut parameters = TlsParameters::builder(self.host.clone());
                for (index, pem) in self.roots.iter().enumerate() {
                    parameters = parameters.add_root_certificate(root_certificate(pem, index)?);
                }
                let parameters = parameters
                    .build()
                    .map_err(|e| SmtpConfigError::Tls(Box::new(e)))?;
                if self.tls == SmtpTls::Implicit {
                    Tls::Wrapper(parameters)
                } else {
                    Tls::Required(parameters)
                }
            }
        };
        let port = self.port.unwrap_or_else(|| self.tls.default_port());
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .pool_config(PoolConfig::new().max_size(self.pool_size));
        let user = match self.credentials {
            Some((user, password)) => {
                transport = transport.credentials(Credentials::new(
                    user.clone(),
                    password.expose_secret().to_owned(),
                ));
                Some(user)
            }
            None => None,
        };
        Ok(SmtpGateway {
            settings: transport,
            transport: OnceLock::new(),
            from,
            host: self.host,
            port,
            tls: self.tls,
            user,
            pool_size: self.pool_size,
        })
    }
}

/// A [`Gateway`] that sends email through an SMTP server (feature `smtp`).
///
/// Each [`Message`] on [`Channel::Email`] becomes one email:
///
/// - `From`: the sender given to [`SmtpGatewayBuilder::from`], its display
///   name RFC 2047-encoded when it is not ASCII; `To`: the message's
///   address; `Subject`: the message's subject (encoded likewise);
/// - `Date`: now; `Message-ID`: random, at the sender's domain;
/// - `multipart/alternative` of `text/plain` (the body as ninsho rendered
///   it) and `text/html` (the same text, HTML-escaped, blank lines making
///   paragraphs and `http(s)://` links clickable), both UTF-8 with the
///   transfer encoding lettre picks (7bit, quoted-printable or base64).
///
/// The [`Receipt`]'s `provider_id` is the `Message-ID`, angle brackets
/// included (`<…@example.com>`): the server's logs and bounces name it.
///
/// Connections are pooled and reused. The pool is made on the first send
/// and lives in that send's Tokio runtime: use one gateway within one
/// runtime. A send outside any Tokio runtime fails as
/// [`Transient`](DeliveryErrorKind::Transient).
///
/// # Errors, by SMTP reply
///
/// | the server or the connection says | [`DeliveryErrorKind`] |
/// |---|---|
/// | 5xx with enhanced status 5.1.1, 5.1.2, 5.1.3, 5.1.6 or 5.1.10 (no such mailbox or domain, bad address syntax, mailbox moved, null MX) | [`InvalidDestination`](DeliveryErrorKind::InvalidDestination) |
/// | 530, 534, 535, 538 (authentication required or refused) | [`Configuration`](DeliveryErrorKind::Configuration): the host's SMTP settings are wrong, not the user's address; fix them and sends work again |
/// | any other 5xx (policy or spam refusal 5.7.x, mailbox full or disabled 5.2.x, a sender address the server refuses 5.1.0/5.1.7/5.1.8, a bare 550 without enhanced status) | [`Refused`](DeliveryErrorKind::Refused): ninsho falls back to another channel |
/// | 4xx (421, 450, 451, 452, greylisting, throttling) | [`Transient`](DeliveryErrorKind::Transient) |
/// | a TLS handshake that fails on its content (a certificate no trusted root signed, expired, or for another host; a server that does not speak TLS on that port) | [`Configuration`](DeliveryErrorKind::Configuration): check the host, port and [`SmtpTls`], or add the relay's CA with [`root_certificate_pem`](SmtpGatewayBuilder::root_certificate_pem) |
/// | [`SmtpTls::StartTls`] to a server that does not offer `STARTTLS` (nothing is sent in clear), no login mechanism in common | [`Configuration`](DeliveryErrorKind::Configuration) |
/// | a recipient outside ASCII and a server without `SMTPUTF8` | [`Refused`](DeliveryErrorKind::Refused) |
/// | connection refused or lost, timeout, an unreadable reply | [`Transient`](DeliveryErrorKind::Transient) |
/// | a message on another channel than email | [`Refused`](DeliveryErrorKind::Refused), without contacting the server |
/// | a recipient that is not an email address | [`InvalidDestination`](DeliveryErrorKind::InvalidDestination), without contacting the server |
///
/// A bare 550 (no enhanced status) is also what servers answer for spam
/// and policy refusals, so it does not prove that the mailbox is missing:
/// it maps to `Refused`, the milder permanent kind. lettre's error stays in
/// the [`source`](std::error::Error::source) chain; it holds the server's
/// reply text (which may name the recipient's address) but never the
/// message or the password.
///
/// `Debug` shows the server, the sender and the user name, not the
/// password.
///
/// # Example
///
/// ```no_run
/// use std::sync::Arc;
/// use ninsho::gateway::{Gateway, SmtpGateway, SmtpTls};
/// use ninsho::SecretString;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let password = SecretString::new(std::env::var("SMTP_PASSWORD")?);
/// let gateway = SmtpGateway::builder("smtp.example.com")
///     .tls(SmtpTls::StartTls) // port 587
///     .credentials("no-reply@example.com", password)
///     .from("no-reply@example.com", "例のサービス")
///     .build()?;
/// let gateway: Arc<dyn Gateway> = Arc::new(gateway);
/// // Give `gateway` to `TwoFactor::builder`; email codes and links now go
/// // out through smtp.example.com.
/// # Ok(())
/// # }
/// ```
pub struct SmtpGateway {
    /// What `transport` is built from, on the first send: lettre's pool
    /// spawns a task when it is made, which needs a Tokio runtime.
    settings: AsyncSmtpTransportBuilder,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    host: String,
    port: u16,
    tls: SmtpTls,
    user: Option<String>,
    pool_size: u32,
}

impl SmtpGateway {
    /// Settings for a gateway through the SMTP server `host` (a name, or an
    /// IP address). Defaults: [`SmtpTls::Implicit`] on port 465, no login,
    /// a pool of 10 connections, a 30-second timeout. The sender
    /// ([`from`](SmtpGatewayBuilder::from)) is required.
    pub fn builder(host: impl Into<String>) -> SmtpGatewayBuilder {
        SmtpGatewayBuilder {
            host: host.into(),
            port: None,
            tls: SmtpTls::Implicit,
            credentials: None,
            from: None,
            pool_size: 10,
            timeout: Duration::from_secs(30),
            roots: Vec::new(),
        }
    }

    /// The email for `message` (already checked to be on the email channel)
    /// and its `Message-ID`.
    fn compose(&self, message: &Message) -> Result<(lettre::Message, String), DeliveryError> {
        let to: Address = message
            .to
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                DeliveryError::invalid_destination(format!("not an email address: {e}"))
            })?;
        let message_id = new_message_id(self.from.email.domain())?;
        let text = message.body.expose_secret();
        let subject = message.subject.as_deref().unwrap_or_default();
        let mut email = lettre::Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .date_now()
            .message_id(Some(message_id.clone()));
        if !subject.is_empty() {
            email = email.subject(subject);
        }
        let email = email
            .multipart(MultiPart::alternative_plain_html(
                text.to_owned(),
                html_document(text, subject, message.locale.tag()),
            ))
            .map_err(DeliveryError::transient)?;
        Ok((email, message_id))
    }
}

impl fmt::Debug for SmtpGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpGateway")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.user.as_ref().map(|_| "[redacted]"))
            .field("from", &self.from.to_string())
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl Drop for SmtpGateway {
    fn drop(&mut self) {
        // lettre's pool spawns a task to close its connections when it is
        // dropped, which panics outside a Tokio runtime (a gateway dropped
        // after its runtime ended). There the connections are left to the
        // operating system instead.
        if tokio::runtime::Handle::try_current().is_err()
            && let Some(transport) = self.transport.take()
        {
            std::mem::forget(transport);
        }
    }
}

#[async_trait::async_trait]
impl Gateway for SmtpGateway {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        if message.channel != Channel::Email {
            return Err(DeliveryError::refused(format!(
                "the SMTP gateway sends email only, not {}",
                message.channel
            )));
        }
        let (email, message_id) = self.compose(message)?;
        let ascii_recipient = message.to.is_ascii();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(DeliveryError::transient(
                "the SMTP gateway sends from within a Tokio runtime only",
            ));
        }
        let transport = self.transport.get_or_init(|| self.settings.clone().build());
        match transport.send(email).await {
            Ok(_) => Ok(Receipt::new(Some(message_id))),
            Err(e) => Err(delivery_error(e, ascii_recipient)),
        }
    }
}

/// `<32 random hex digits@domain>`.
fn new_message_id(domain: &str) -> Result<String, DeliveryError> {
    let mut bytes = [0u8; 16];
    OsRandom
        .fill(&mut bytes)
        .map_err(DeliveryError::transient)?;
    let mut id = String::with_capacity(34 + domain.len());
    id.push('<');
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id.push('@');
    id.push_str(domain);
    id.push('>');
    Ok(id)
}

/// A PEM root for the TLS settings: at least one certificate, all parsed.
fn root_certificate(pem: &[u8], index: usize) -> Result<Certificate, SmtpConfigError> {
    let marked = pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----");
    match Certificate::from_pem(pem) {
        Ok(certificate) if marked => Ok(certificate),
        _ => Err(SmtpConfigError::RootCertificate { index }),
    }
}

fn delivery_error(error: smtp::Error, ascii_recipient: bool) -> DeliveryError {
    let kind = if error.is_client() {
        // lettre refused before the server could: no STARTTLS offered
        // where it is required, no login mechanism in common, or an
        // address outside ASCII that the server can't take (SMTPUTF8).
        if ascii_recipient {
            DeliveryErrorKind::Configuration
        } else {
            DeliveryErrorKind::Refused
        }
    } else if error.status().is_none() && tls_refused(&error) {
        DeliveryErrorKind::Configuration
    } else {
        let reply = error.status().map(u16::from);
        let text = std::error::Error::source(&error)
            .map(ToString::to_string)
            .unwrap_or_default();
        kind_for(reply, &text)
    };
    match kind {
        DeliveryErrorKind::InvalidDestination => DeliveryError::invalid_destination(error),
        DeliveryErrorKind::Refused => DeliveryError::refused(error),
        DeliveryErrorKind::Configuration => DeliveryError::configuration(error),
        _ => DeliveryError::transient(error),
    }
}

/// Whether the TLS handshake failed on its content (rustls reports an
/// untrusted or expired certificate, a host name it does not cover, or a
/// peer that does not speak TLS as invalid data): the settings or the
/// server's certificate are wrong, and retrying cannot help. A connection
/// that was refused, reset or timed out is not this.
fn tls_refused(error: &smtp::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::InvalidData;
        }
        source = e.source();
    }
    false
}

/// The kind for an SMTP reply code (none: the connection failed) and the
/// reply's text, which may start with an enhanced status code (RFC 3463).
/// The table is in [`SmtpGateway`]'s docs.
fn kind_for(reply: Option<u16>, text: &str) -> DeliveryErrorKind {
    let Some(reply) = reply else {
        return DeliveryErrorKind::Transient;
    };
    match reply {
        530 | 534 | 535 | 538 => DeliveryErrorKind::Configuration,
        500..=599 => match enhanced_status(text) {
            Some((5, 1, 1 | 2 | 3 | 6 | 10)) => DeliveryErrorKind::InvalidDestination,
            _ => DeliveryErrorKind::Refused,
        },
        _ => DeliveryErrorKind::Transient,
    }
}

/// The enhanced status code (`5.1.1`) that starts an SMTP reply text.
fn enhanced_status(text: &str) -> Option<(u8, u16, u16)> {
    let token = text.split_whitespace().next()?;
    let mut parts = token.split('.');
    let class = parts.next()?.parse().ok()?;
    let subject = parts.next()?.parse().ok()?;
    let detail = parts.next()?.parse().ok()?;
    (parts.next().is_none() && matches!(class, 2 | 4 | 5)).then_some((class, subject, detail))
}

/// The HTML alternative of `text`: a small document whose paragraphs are
/// the blank-line-separated blocks of `text`, escaped, line breaks kept,
/// `http(s)://` links made clickable.
fn html_document(text: &str, subject: &str, lang: &str) -> String {
    let mut html = String::with_capacity(text.len() * 2 + 200);
    html.push_str("<!DOCTYPE html>\n<html lang=\"");
    escape_into(&mut html, lang);
    html.push_str("\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    escape_into(&mut html, subject);
    html.push_str("</title>\n</head>\n<body>\n");
    let text = text.replace("\r\n", "\n");
    for paragraph in text.split("\n\n") {
        let paragraph = paragraph.trim_matches('\n');
        if paragraph.trim().is_empty() {
            continue;
        }
        html.push_str("<p>");
        for (i, line) in paragraph.lines().enumerate() {
            if i > 0 {
                html.push_str("<br>\n");
            }
            linkify_into(&mut html, line);
        }
        html.push_str("</p>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// Appends `line` escaped, with each `http://` or `https://` URL (ASCII,
/// up to a space, a quote or an angle bracket, trailing punctuation left
/// out) wrapped in a link whose `href` is escaped too.
fn linkify_into(out: &mut String, line: &str) {
    let mut rest = line;
    while let Some(start) = find_url(rest) {
        escape_into(out, &rest[..start]);
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| !c.is_ascii_graphic() || matches!(c, '<' | '>' | '"' | '\''))
            .unwrap_or(candidate.len());
        let url = candidate[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
        let url = if url.ends_with("://") { "" } else { url };
        if url.is_empty() {
            // A bare scheme: keep it as text and go on after it.
            let scheme_end = candidate.find("://").map_or(candidate.len(), |i| i + 3);
            escape_into(out, &candidate[..scheme_end]);
            rest = &candidate[scheme_end..];
            continue;
        }
        out.push_str("<a href=\"");
        escape_into(out, url);
        out.push_str("\">");
        escape_into(out, url);
        out.push_str("</a>");
        rest = &candidate[url.len()..];
    }
    escape_into(out, rest);
}

/// Where the next `http://` or `https://` starts in `s`.
fn find_url(s: &str) -> Option<usize> {
    match (s.find("https://"), s.find("http://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Locale;

    #[test]
    fn maps_replies_to_kinds() {
        use DeliveryErrorKind::*;
        let cases: &[(Option<u16>, &str, DeliveryErrorKind)] = &[
            (None, "", Transient),
            (
                Some(550),
                "5.1.1 <x@example.com>: Recipient address rejected",
                InvalidDestination,
            ),
            (Some(550), "5.1.10 null MX", InvalidDestination),
            (Some(553), "5.1.3 bad address syntax", InvalidDestination),
            (Some(551), "5.1.6 mailbox has moved", InvalidDestination),
            (Some(550), "5.1.0 Sender address rejected", Refused),
            (Some(553), "5.1.8 sender domain not found", Refused),
            (Some(550), "mailbox unavailable", Refused),
            (Some(554), "5.7.1 spam", Refused),
            (Some(552), "5.2.2 mailbox full", Refused),
            (
                Some(535),
                "5.7.8 Authentication credentials invalid",
                Configuration,
            ),
            (Some(530), "5.7.0 Authentication required", Configuration),
            (Some(421), "4.7.0 try later", Transient),
            (Some(450), "4.2.0 greylisted", Transient),
            (Some(451), "4.3.0 local error", Transient),
            (Some(452), "4.5.3 too many recipients", Transient),
        ];
        for &(reply, text, kind) in cases {
            assert_eq!(kind_for(reply, text), kind, "{reply:?} {text}");
        }
        assert_eq!(enhanced_status("5.1.1 x"), Some((5, 1, 1)));
        assert_eq!(enhanced_status("5.1 x"), None);
        assert_eq!(enhanced_status("1.2.3 x"), None);
        assert_eq!(enhanced_status("5.1.1.1 x"), None);
        assert_eq!(enhanced_status(""), None);
    }

    #[test]
    fn html_escapes_and_links() {
        let html = html_document(
            "New sign-in from <script>alert('x')</script> & co.\nSecond line\n\n\
             Open https://example.com/l?a=1&b=\"2\". Or http:// alone.\n\n\n",
            "Code <1>",
            "en",
        );
        assert!(html.contains("<title>Code &lt;1&gt;</title>"), "{html}");
        assert!(html.contains(
            "<p>New sign-in from &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co.<br>\nSecond line</p>"
        ), "{html}");
        assert!(html.contains(
            "<p>Open <a href=\"https://example.com/l?a=1&amp;b=\">https://example.com/l?a=1&amp;b=</a>&quot;2&quot;. Or http:// alone.</p>"
        ), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert_eq!(html.matches("<p>").count(), 2);
        let html = html_document("リンク：https://example.com/x。以上", "", "ja");
        assert!(html.contains("<html lang=\"ja\">"));
        assert!(
            html.contains(
                "リンク：<a href=\"https://example.com/x\">https://example.com/x</a>。以上"
            ),
            "{html}"
        );
    }

    #[test]
    fn builder_checks_settings_and_debug_hides_the_password() {
        let ok = || SmtpGateway::builder("smtp.example.com").from("no-reply@example.com", "例");
        assert!(matches!(
            SmtpGateway::builder(" ").from("a@example.com", "x").build(),
            Err(SmtpConfigError::EmptyHost)
        ));
        assert!(matches!(
            SmtpGateway::builder("smtp.example.com").build(),
            Err(SmtpConfigError::MissingFrom)
        ));
        assert!(matches!(
            SmtpGateway::builder("smtp.example.com")
                .from("not an address", "x")
                .build(),
            Err(SmtpConfigError::InvalidFrom(_))
        ));
        assert!(matches!(
            ok().pool_size(0).build(),
            Err(SmtpConfigError::EmptyPool)
        ));

        let gateway = ok()
            .credentials("user@example.com", SecretString::new("hunter2".into()))
            .build()
            .unwrap();
        assert_eq!(gateway.port, 465);
        let debug = format!("{gateway:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("user@example.com"), "{debug}");
        let builder = ok().credentials("u", SecretString::new("hunter2".into()));
        assert!(!format!("{builder:?}").contains("hunter2"));

        assert_eq!(ok().tls(SmtpTls::StartTls).build().unwrap().port, 587);
        assert_eq!(ok().tls(SmtpTls::None).build().unwrap().port, 25);
        assert_eq!(
            ok().tls(SmtpTls::None).port(2525).build().unwrap().port,
            2525
        );
        assert!(ok().tls(SmtpTls::Implicit).build().is_ok());
        let ip = SmtpGateway::builder("127.0.0.1").from("a@example.com", "x");
        assert!(ip.tls(SmtpTls::StartTls).build().is_ok());
    }

    #[tokio::test]
    async fn refuses_other_channels_and_bad_addresses_without_connecting() {
        // Port 9 (discard) on a TEST-NET address: never reached.
        let gateway = SmtpGateway::builder("192.0.2.1")
            .tls(SmtpTls::None)
            .port(9)
            .from("no-reply@example.com", "x")
            .build()
            .unwrap();
        let sms = Message::new(
            Channel::Sms,
            "+819012345678",
            None,
            "1".to_owned(),
            Locale::En,
        );
        let err = gateway.send(&sms).await.unwrap_err();
        assert_eq!(err.kind(), DeliveryErrorKind::Refused);
        let bad = Message::new(
            Channel::Email,
            "no at sign",
            None,
            "1".to_owned(),
            Locale::En,
        );
        let err = gateway.send(&bad).await.unwrap_err();
        assert_eq!(err.kind(), DeliveryErrorKind::InvalidDestination);
    }

    #[test]
    fn outside_a_runtime_sends_fail_and_drops_do_not_panic() {
        // Nothing listens on port 1 of the loopback address.
        let gateway = SmtpGateway::builder("127.0.0.1")
            .tls(SmtpTls::None)
            .port(1)
            .from("no-reply@example.com", "x")
            .build()
            .unwrap();
        let email = Message::new(
            Channel::Email,
            "a@example.com",
            None,
            "1".to_owned(),
            Locale::En,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime.block_on(gateway.send(&email)).unwrap_err();
        assert_eq!(err.kind(), DeliveryErrorKind::Transient);
        assert!(gateway.transport.get().is_some(), "the pool was made");
        drop(runtime);
        // Polled by another executor than Tokio: an error, not a panic.
        let err = block_on_here(gateway.send(&email)).unwrap_err();
        assert_eq!(err.kind(), DeliveryErrorKind::Transient);
        drop(gateway); // lettre's pool would spawn here and panic
    }

    /// Polls `future` to completion on this thread, outside any runtime.
    fn block_on_here<F: std::future::Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn message_ids_are_unique_at_the_sender_domain() {
        let a = new_message_id("example.com").unwrap();
        let b = new_message_id("example.com").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with('<') && a.ends_with("@example.com>"), "{a}");
        assert_eq!(a.len(), 1 + 32 + "@example.com>".len());
    }
}
