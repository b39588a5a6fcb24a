//! `SmtpGateway` against a real SMTP server: what arrives (headers, their
//! RFC 2047 encoding, the multipart body, the code, HTML escaping), how the
//! server's replies map to `DeliveryErrorKind`, and a contact code sent by
//! a `TwoFactor` journey and confirmed from the received email.
//!
//! The server is `NINSHO_SMTP_URL` (`smtp://127.0.0.1:PORT`, plain SMTP),
//! which stores each message it accepts as an `.eml` file in
//! `NINSHO_SMTP_MAILDIR`: `.ci/run` starts `tests/support/smtp_server.py`
//! (aiosmtpd) and sets both. That server answers some recipients with
//! errors (`unknown@` 550 5.1.1, `nobody@` bare 550, `blocked@` 554 5.7.1,
//! `busy@` 451 4.3.0). The same server also listens for SMTPS
//! (`NINSHO_SMTPS_URL`, `smtps://localhost:PORT`) and for STARTTLS
//! (`NINSHO_SMTP_STARTTLS_URL`), both requiring a login
//! (`NINSHO_SMTP_USER`, `NINSHO_SMTP_PASSWORD`) and showing a certificate
//! for localhost from a throw-away CA (`NINSHO_SMTP_CA`, a PEM file).
//! Without the variables the tests print `SKIPPED` and pass, except under
//! `CI=true`, where they fail: CI must never skip them.

#![cfg(feature = "smtp")]

mod support;

use std::error::Error as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mail_parser::{MessageParser, PartType};
use ninsho::SecretString;
use ninsho::gateway::{DeliveryErrorKind, Gateway, Message, SmtpGateway, SmtpTls};
use ninsho::model::{Channel, Locale};

const SENDER: &str = "no-reply@ninsho.test";
const SERVICE: &str = "ニンショウ・テスト";

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The test server: host, port and the directory it writes to.
struct Server {
    host: String,
    port: u16,
    maildir: PathBuf,
}

/// The server from the environment, or `None` (after saying so) when it is
/// not configured and we are not under CI.
fn server() -> Option<Server> {
    let url = std::env::var("NINSHO_SMTP_URL").unwrap_or_default();
    let maildir = std::env::var("NINSHO_SMTP_MAILDIR").unwrap_or_default();
    if url.is_empty() || maildir.is_empty() {
        if under_ci() {
            panic!(
                "an SMTP server is required under CI: set NINSHO_SMTP_URL and \
                 NINSHO_SMTP_MAILDIR (.ci/run starts one)"
            );
        }
        eprintln!(
            "SKIPPED: the SMTP tests need NINSHO_SMTP_URL and NINSHO_SMTP_MAILDIR \
             (.ci/run starts tests/support/smtp_server.py and sets them)"
        );
        return None;
    }
    let rest = url
        .strip_prefix("smtp://")
        .unwrap_or_else(|| panic!("NINSHO_SMTP_URL must be smtp://host:port, not {url}"));
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("NINSHO_SMTP_URL needs a port: {url}"));
    Some(Server {
        host: host.to_owned(),
        port: port.parse().expect("a port number"),
        maildir: PathBuf::from(maildir),
    })
}

impl Server {
    fn gateway(&self) -> SmtpGateway {
        SmtpGateway::builder(&self.host)
            .tls(SmtpTls::None)
            .port(self.port)
            .from(SENDER, SERVICE)
            .pool_size(4)
            .build()
            .unwrap()
    }

    /// Every message received so far, raw.
    fn received(&self) -> Vec<Vec<u8>> {
        std::fs::read_dir(&self.maildir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "eml"))
            .map(|path| std::fs::read(path).unwrap())
            .collect()
    }

    /// The one message received whose `header` (decoded) is `value`.
    #[track_caller]
    fn received_with(&self, header: &str, value: &str) -> Vec<u8> {
        let mut found: Vec<Vec<u8>> = self
            .received()
            .into_iter()
            .filter(|raw| {
                let parsed = MessageParser::default().parse(raw).unwrap();
                match header {
                    "Message-ID" => parsed.message_id() == Some(value.trim_matches(['<', '>'])),
                    "To" => {
                        parsed
                            .to()
                            .and_then(|to| to.first())
                            .and_then(|a| a.address())
                            == Some(value)
                    }
                    _ => unreachable!("{header}"),
                }
            })
            .collect();
        assert_eq!(found.len(), 1, "messages with {header}: {value}");
        found.pop().unwrap()
    }

    /// Whether no message arrived for `address`.
    fn nothing_to(&self, address: &str) -> bool {
        !self.received().iter().any(|raw| {
            MessageParser::default()
                .parse(raw)
                .and_then(|p| p.to()?.first()?.address().map(|a| a == address))
                .unwrap_or(false)
        })
    }
}

/// A recipient address no other test (or earlier run) used.
fn fresh_address(local: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{local}.{nanos}@example.jp")
}

/// The raw, still folded and encoded, value of `name` in the top-level
/// header of `raw`.
fn raw_header(raw: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        match &mut value {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
            Some(_) => break,
            None => {
                if let Some((n, v)) = line.split_once(':')
                    && n.eq_ignore_ascii_case(name)
                {
                    value = Some(v.trim().to_owned());
                }
            }
        }
    }
    value.unwrap_or_else(|| panic!("no {name} header in:\n{head}"))
}

fn text_and_html(raw: &[u8]) -> (String, String) {
    let parsed = MessageParser::default().parse(raw).unwrap();
    let texts: Vec<String> = parsed
        .parts
        .iter()
        .filter_map(|p| match &p.body {
            PartType::Text(t) => Some(t.to_string()),
            _ => None,
        })
        .collect();
    let htmls: Vec<String> = parsed
        .parts
        .iter()
        .filter_map(|p| match &p.body {
            PartType::Html(h) => Some(h.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        (texts.len(), htmls.len()),
        (1, 1),
        "one text and one HTML part"
    );
    (texts[0].clone(), htmls[0].clone())
}

#[tokio::test]
async fn a_japanese_code_email_arrives_with_encoded_headers_and_both_parts() {
    let Some(server) = server() else { return };
    let gateway = server.gateway();
    let to = fresh_address("taro");
    let body = "【ニンショウ・テスト】認証コード：482913\n\
                有効期限は10分です。\n\
                \n\
                端末「<script>alert('x')</script> & Co」からのサインインです。\n\
                心当たりがなければ https://example.com/help?a=1&b=2 をご覧ください。\n";
    let message = Message::new(
        Channel::Email,
        &to,
        Some("【ニンショウ・テスト】認証コード".to_owned()),
        body.to_owned(),
        Locale::Ja,
    )
    .with_secret("482913".to_owned());

    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let receipt = gateway.send(&message).await.unwrap();
    let id = receipt.provider_id.expect("the Message-ID");
    assert!(id.starts_with('<') && id.ends_with("@ninsho.test>"), "{id}");
    let raw = server.received_with("Message-ID", &id);

    // Only ASCII on the wire: headers RFC 2047, bodies base64 or QP.
    assert!(raw.is_ascii(), "8-bit bytes in the message");

    // From: the service's name, RFC 2047 UTF-8, and it decodes back.
    let from = raw_header(&raw, "From");
    assert!(from.to_ascii_lowercase().contains("=?utf-8?b?"), "{from}");
    assert!(from.ends_with("<no-reply@ninsho.test>"), "{from}");
    let subject = raw_header(&raw, "Subject");
    assert!(
        subject.to_ascii_lowercase().starts_with("=?utf-8?"),
        "{subject}"
    );
    assert_eq!(raw_header(&raw, "Message-ID"), id);

    let parsed = MessageParser::default().parse(&raw).unwrap();
    let sender = parsed.from().and_then(|f| f.first()).unwrap();
    assert_eq!(sender.name(), Some(SERVICE));
    assert_eq!(sender.address(), Some(SENDER));
    assert_eq!(
        parsed
            .to()
            .and_then(|t| t.first())
            .and_then(|a| a.address()),
        Some(to.as_str())
    );
    assert_eq!(parsed.subject(), Some("【ニンショウ・テスト】認証コード"));
    let date = parsed.date().expect("a Date header").to_timestamp();
    let before = i64::try_from(before).unwrap();
    assert!(
        (before - 1..=before + 60).contains(&date),
        "{date} vs {before}"
    );

    // multipart/alternative: the text as rendered, and escaped HTML.
    let content_type = raw_header(&raw, "Content-Type");
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    let (text, html) = text_and_html(&raw);
    assert_eq!(text.replace("\r\n", "\n"), body);
    assert!(text.contains("482913"));
    assert!(html.contains("482913"), "{html}");
    assert!(html.contains("<html lang=\"ja\">"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains("端末「&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co」"),
        "{html}"
    );
    assert!(
        html.contains(
            "<a href=\"https://example.com/help?a=1&amp;b=2\">https://example.com/help?a=1&amp;b=2</a>"
        ),
        "{html}"
    );
    assert_eq!(html.matches("<p>").count(), 2, "{html}");
}

#[tokio::test]
async fn each_message_gets_its_own_message_id_through_the_pool() {
    let Some(server) = server() else { return };
    let gateway = Arc::new(server.gateway());
    let sends = (0..6).map(|i| {
        let gateway = Arc::clone(&gateway);
        tokio::spawn(async move {
            let to = fresh_address(&format!("hanako{i}"));
            let message = Message::new(
                Channel::Email,
                &to,
                Some("Your code".to_owned()),
                format!("Your code is 10000{i}."),
                Locale::En,
            );
            let id = gateway.send(&message).await.unwrap().provider_id.unwrap();
            (to, id)
        })
    });
    let mut ids = Vec::new();
    for send in sends {
        let (to, id) = send.await.unwrap();
        let raw = server.received_with("Message-ID", &id);
        let parsed = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            parsed
                .to()
                .and_then(|t| t.first())
                .and_then(|a| a.address()),
            Some(to.as_str())
        );
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
}

#[tokio::test]
async fn the_servers_replies_map_to_delivery_error_kinds() {
    let Some(server) = server() else { return };
    let gateway = server.gateway();
    let cases = [
        ("unknown", DeliveryErrorKind::InvalidDestination, "550"),
        ("nobody", DeliveryErrorKind::Refused, "550"),
        ("blocked", DeliveryErrorKind::Refused, "554"),
        ("busy", DeliveryErrorKind::Transient, "451"),
    ];
    for (local, kind, code) in cases {
        let to = format!("{local}@example.jp");
        let message = Message::new(
            Channel::Email,
            &to,
            Some("Code".to_owned()),
            "Your code is 482913".to_owned(),
            Locale::En,
        );
        let err = gateway.send(&message).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{to}: {err}");
        let source = err.source().expect("lettre's error").to_string();
        assert!(source.contains(code), "{to}: {source}");
        assert!(!format!("{err} {source} {err:?}").contains("482913"));
    }
    // The refusals are per recipient: the next message goes through.
    let to = fresh_address("after");
    let ok = Message::new(Channel::Email, &to, None, "1".to_owned(), Locale::En);
    gateway.send(&ok).await.unwrap();
    server.received_with("To", &to);
}

#[tokio::test]
async fn a_server_that_is_down_is_transient() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = SmtpGateway::builder("127.0.0.1")
        .tls(SmtpTls::None)
        .port(port)
        .from(SENDER, SERVICE)
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let message = Message::new(
        Channel::Email,
        "taro@example.jp",
        None,
        "1".to_owned(),
        Locale::En,
    );
    let err = gateway.send(&message).await.unwrap_err();
    assert_eq!(err.kind(), DeliveryErrorKind::Transient, "{err}");
}

/// The SMTPS and STARTTLS listeners of the test server, which require a
/// login and show a certificate from the test CA.
struct Secured {
    maildir: Server,
    implicit: (String, u16),
    starttls: (String, u16),
    ca: Vec<u8>,
    user: String,
    password: String,
}

/// `host:port` of an `smtp://` or `smtps://` URL.
fn host_port(url: &str) -> (String, u16) {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("not a URL: {url}"));
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {url}"));
    (host.to_owned(), port.parse().expect("a port number"))
}

fn secured() -> Option<Secured> {
    let maildir = server()?;
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let names = [
        "NINSHO_SMTPS_URL",
        "NINSHO_SMTP_STARTTLS_URL",
        "NINSHO_SMTP_CA",
        "NINSHO_SMTP_USER",
        "NINSHO_SMTP_PASSWORD",
    ];
    if let Some(missing) = names.iter().find(|n| var(n).is_empty()) {
        if under_ci() {
            panic!("{missing} is required under CI (.ci/run sets it)");
        }
        eprintln!("SKIPPED: the SMTP TLS tests need {missing} (.ci/run sets it)");
        return None;
    }
    Some(Secured {
        maildir,
        implicit: host_port(&var("NINSHO_SMTPS_URL")),
        starttls: host_port(&var("NINSHO_SMTP_STARTTLS_URL")),
        ca: std::fs::read(var("NINSHO_SMTP_CA")).expect("the test CA's PEM file"),
        user: var("NINSHO_SMTP_USER"),
        password: var("NINSHO_SMTP_PASSWORD"),
    })
}

impl Secured {
    /// A gateway to the listener of `tls`, trusting the test CA when
    /// `trust`, logging in with `password` when given.
    fn gateway(&self, tls: SmtpTls, trust: bool, password: Option<&str>) -> SmtpGateway {
        let (host, port) = match tls {
            SmtpTls::Implicit => &self.implicit,
            _ => &self.starttls,
        };
        let mut builder = SmtpGateway::builder(host)
            .tls(tls)
            .port(*port)
            .from(SENDER, SERVICE)
            .timeout(std::time::Duration::from_secs(10));
        if trust {
            builder = builder.root_certificate_pem(&self.ca);
        }
        if let Some(password) = password {
            builder = builder.credentials(&self.user, SecretString::new(password.to_owned()));
        }
        builder.build().unwrap()
    }
}

fn code_email(to: &str) -> Message {
    Message::new(
        Channel::Email,
        to,
        Some("【ニンショウ・テスト】認証コード".to_owned()),
        "認証コード：739104\n有効期限は10分です。\n".to_owned(),
        Locale::Ja,
    )
    .with_secret("739104".to_owned())
}

#[tokio::test]
async fn smtps_and_starttls_with_a_login_deliver_the_code() {
    let Some(server) = secured() else { return };
    for tls in [SmtpTls::Implicit, SmtpTls::StartTls] {
        let gateway = server.gateway(tls, true, Some(&server.password));
        let to = fresh_address(&format!("{tls:?}").to_lowercase());
        let receipt = gateway.send(&code_email(&to)).await.unwrap();
        let raw = server.maildir.received_with("To", &to);
        let parsed = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            parsed.message_id().map(|id| format!("<{id}>")),
            receipt.provider_id,
            "{tls:?}"
        );
        let from = parsed.from().and_then(|f| f.first()).unwrap();
        assert_eq!(from.name(), Some(SERVICE), "{tls:?}");
        assert!(raw_header(&raw, "From").starts_with("=?utf-8?"), "{tls:?}");
        let (text, _) = text_and_html(&raw);
        assert!(text.contains("認証コード：739104"), "{tls:?}: {text}");
        // The pooled connection is reused for a second message.
        let again = fresh_address("again");
        gateway.send(&code_email(&again)).await.unwrap();
        server.maildir.received_with("To", &again);
    }
}

#[tokio::test]
async fn a_wrong_password_or_none_is_a_configuration_error() {
    let Some(server) = secured() else { return };
    for tls in [SmtpTls::Implicit, SmtpTls::StartTls] {
        for password in [Some("not the password"), None] {
            let gateway = server.gateway(tls, true, password);
            let to = fresh_address("refused");
            let err = gateway.send(&code_email(&to)).await.unwrap_err();
            assert_eq!(
                err.kind(),
                DeliveryErrorKind::Configuration,
                "{tls:?}, password {password:?}: {err:?}"
            );
            let shown = format!("{err} {err:?} {}", err.source().unwrap());
            assert!(!shown.contains("739104"), "{shown}");
            assert!(!shown.contains("not the password"), "{shown}");
            assert!(server.maildir.nothing_to(&to));
        }
    }
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_a_configuration_error() {
    let Some(server) = secured() else { return };
    for tls in [SmtpTls::Implicit, SmtpTls::StartTls] {
        // The test CA is not among the Mozilla roots: without it, the
        // server's certificate is refused before the password is sent.
        let gateway = server.gateway(tls, false, Some(&server.password));
        let to = fresh_address("untrusted");
        let err = gateway.send(&code_email(&to)).await.unwrap_err();
        assert_eq!(
            err.kind(),
            DeliveryErrorKind::Configuration,
            "{tls:?}: {err:?}"
        );
        assert!(server.maildir.nothing_to(&to));
    }
}

#[tokio::test]
async fn tls_is_never_dropped_for_a_plain_connection() {
    let Some(server) = secured() else { return };
    // STARTTLS required by the gateway, not offered by the plain listener:
    // nothing is sent in clear.
    for tls in [SmtpTls::StartTls, SmtpTls::Implicit] {
        let gateway = SmtpGateway::builder(&server.maildir.host)
            .tls(tls)
            .port(server.maildir.port)
            .root_certificate_pem(&server.ca)
            .credentials(&server.user, SecretString::new(server.password.clone()))
            .from(SENDER, SERVICE)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let to = fresh_address("downgrade");
        let err = gateway.send(&code_email(&to)).await.unwrap_err();
        assert_eq!(
            err.kind(),
            DeliveryErrorKind::Configuration,
            "{tls:?}: {err:?}"
        );
        assert!(server.maildir.nothing_to(&to), "{tls:?}");
    }
}

#[test]
fn roots_are_checked_when_the_gateway_is_built() {
    use ninsho::gateway::SmtpConfigError;
    let builder = || SmtpGateway::builder("smtp.example.com").from(SENDER, SERVICE);
    for pem in [
        &b""[..],
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    ] {
        let err = builder().root_certificate_pem(pem).build().unwrap_err();
        assert!(
            matches!(err, SmtpConfigError::RootCertificate { index: 0 }),
            "{err:?}"
        );
    }
    let err = builder()
        .tls(SmtpTls::None)
        .root_certificate_pem(b"-----BEGIN CERTIFICATE-----")
        .build()
        .unwrap_err();
    assert!(matches!(err, SmtpConfigError::RootsWithoutTls), "{err:?}");
}

/// A contact code sent by a journey, read from the received email, and
/// confirmed.
#[cfg(feature = "memory")]
#[tokio::test]
async fn a_contact_code_sent_by_email_confirms_the_address() {
    use ninsho::model::{AccountId, Destination};
    use ninsho::service::TwoFactor;
    use ninsho::store::MemoryStore;

    let Some(server) = server() else { return };
    let service = TwoFactor::builder(
        SERVICE,
        Arc::new(MemoryStore::new()),
        Arc::new(server.gateway()),
        support::hasher(),
        support::sealer(),
    )
    .locale(Locale::Ja)
    .limits(support::no_send_limits())
    .build()
    .unwrap();
    let taro = AccountId::new("taro");
    let to = fresh_address("taro");
    let email = Destination::email(&to).unwrap();
    let ticket = service
        .contact_send_code(&taro, &email, None, None)
        .await
        .unwrap();

    let raw = server.received_with("To", &to);
    let parsed = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        parsed.from().and_then(|f| f.first()).and_then(|a| a.name()),
        Some(SERVICE)
    );
    let (text, html) = text_and_html(&raw);
    let code: String = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() >= 6)
        .unwrap_or_else(|| panic!("a code in {text}"))
        .to_owned();
    assert!(html.contains(&code), "{html}");

    service
        .contact_confirm(&taro, &ticket.challenge_id, &code)
        .await
        .expect("the emailed code confirms the address");
}
