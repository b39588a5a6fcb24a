//! Sends a real one-time code by email (SMTP) and by SMS or voice call
//! (Twilio), with the settings from environment variables:
//!
//! ```text
//! cargo run --example smtp_twilio --features smtp,twilio
//! ```
//!
//! Email, through an SMTP server (all of these, or none):
//!
//! | variable | meaning |
//! |---|---|
//! | `SMTP_HOST` | the server (`smtp.example.com`) |
//! | `SMTP_FROM` | the sender address (`no-reply@example.com`) |
//! | `SEND_TO_EMAIL` | where to send a code |
//! | `SMTP_TLS` | `implicit` (default, port 465), `starttls` (587) or `none` (25; a local relay only) |
//! | `SMTP_PORT` | another port than the usual one for `SMTP_TLS` |
//! | `SMTP_USER`, `SMTP_PASSWORD` | the login, both or neither |
//! | `SMTP_CA_FILE` | a PEM file with a private CA to trust besides the usual roots |
//!
//! SMS, with a voice call when the SMS is refused (all of the first four,
//! or none):
//!
//! | variable | meaning |
//! |---|---|
//! | `TWILIO_ACCOUNT_SID` | `AC…` |
//! | `TWILIO_AUTH_TOKEN` | the account's auth token |
//! | `TWILIO_FROM` or `TWILIO_MESSAGING_SERVICE_SID` | the SMS sender: a Twilio number (E.164) or alphanumeric ID, or a Messaging Service `MG…` |
//! | `SEND_TO_PHONE` | where to send a code (`+819012345678`, `090-1234-5678`) |
//! | `TWILIO_CALLER` | the number that places voice calls, when `TWILIO_FROM` is not one |
//! | `TWILIO_STATUS_CALLBACK` | a URL Twilio posts delivery status to |
//!
//! The service name in the messages is `SERVICE_NAME` (`Example` unless
//! set), the sender's display name too. With nothing set, this prints what
//! it needs and exits successfully; with a setting half given, it says which
//! variable is missing and exits with status 2. When standard input is a
//! terminal, it asks for the code you received and checks it.

use std::env;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use ninsho::gateway::{ByChannel, Gateway, SmtpGateway, SmtpTls, TwilioGateway, TwilioSender};
use ninsho::model::Purpose;
use ninsho::prelude::*;
use ninsho::service::IssueRequest;
use ninsho::store::MemoryStore;
use ninsho::{OsRandom, Random, SecretString};

/// A setting that is missing or wrong, named for the person running this.
#[derive(Debug)]
struct Setup(String);

fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str, because: &str) -> Result<String, Setup> {
    var(name).ok_or_else(|| Setup(format!("{name} is missing ({because} is set)")))
}

/// The SMTP gateway and the address to send to, if `SMTP_HOST` is set.
fn smtp(service: &str) -> Result<Option<(SmtpGateway, String)>, Setup> {
    let Some(host) = var("SMTP_HOST") else {
        return Ok(None);
    };
    let from = required("SMTP_FROM", "SMTP_HOST")?;
    let to = required("SEND_TO_EMAIL", "SMTP_HOST")?;
    let tls = match var("SMTP_TLS").as_deref().unwrap_or("implicit") {
        "implicit" => SmtpTls::Implicit,
        "starttls" => SmtpTls::StartTls,
        "none" => SmtpTls::None,
        other => {
            return Err(Setup(format!(
                "SMTP_TLS is {other:?}: use implicit, starttls or none"
            )));
        }
    };
    let mut builder = SmtpGateway::builder(host).tls(tls).from(from, service);
    if let Some(port) = var("SMTP_PORT") {
        let port = port
            .parse()
            .map_err(|_| Setup(format!("SMTP_PORT is {port:?}, not a port number")))?;
        builder = builder.port(port);
    }
    match (var("SMTP_USER"), var("SMTP_PASSWORD")) {
        (Some(user), Some(password)) => {
            builder = builder.credentials(user, SecretString::new(password));
        }
        (None, None) => {}
        (Some(_), None) => return Err(Setup("SMTP_PASSWORD is missing (SMTP_USER is set)".into())),
        (None, Some(_)) => return Err(Setup("SMTP_USER is missing (SMTP_PASSWORD is set)".into())),
    }
    if let Some(path) = var("SMTP_CA_FILE") {
        let pem = std::fs::read(&path)
            .map_err(|e| Setup(format!("SMTP_CA_FILE {path:?} can't be read: {e}")))?;
        builder = builder.root_certificate_pem(pem);
    }
    let gateway = builder
        .build()
        .map_err(|e| Setup(format!("the SMTP settings are refused: {e}")))?;
    Ok(Some((gateway, to)))
}

/// The Twilio gateway and the number to send to, if `TWILIO_ACCOUNT_SID`
/// is set.
fn twilio() -> Result<Option<(TwilioGateway, String)>, Setup> {
    let Some(sid) = var("TWILIO_ACCOUNT_SID") else {
        return Ok(None);
    };
    let token = required("TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID")?;
    let to = required("SEND_TO_PHONE", "TWILIO_ACCOUNT_SID")?;
    let sender = match (var("TWILIO_FROM"), var("TWILIO_MESSAGING_SERVICE_SID")) {
        (Some(from), None) => TwilioSender::From(from),
        (None, Some(service)) => TwilioSender::MessagingService(service),
        (None, None) => {
            return Err(Setup(
                "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID is missing \
                 (TWILIO_ACCOUNT_SID is set)"
                    .into(),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Setup(
                "set TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID, not both".into(),
            ));
        }
    };
    let mut builder = TwilioGateway::builder(sid, token, sender);
    if let Some(caller) = var("TWILIO_CALLER") {
        builder = builder.caller(caller);
    }
    if let Some(url) = var("TWILIO_STATUS_CALLBACK") {
        builder = builder.status_callback(url);
    }
    let gateway = builder
        .build()
        .map_err(|e| Setup(format!("the Twilio settings are refused: {e}")))?;
    Ok(Some((gateway, to)))
}

/// Keys for this run only: a real service loads them from its secret
/// manager, and keeps them.
fn keys() -> Result<(KeyedHasher, AeadSealer), Box<dyn std::error::Error>> {
    let mut hashing = [0u8; 32];
    let mut sealing = [0u8; 32];
    OsRandom.fill(&mut hashing)?;
    OsRandom.fill(&mut sealing)?;
    Ok((
        KeyedHasher::new(HashKey::new(KeyId(1), &hashing)?),
        AeadSealer::new(SealKey::new(KeyId(1), &sealing)?),
    ))
}

/// Asks for the code that arrived at `destination` and checks it, when a
/// person is at the terminal.
async fn confirm(
    service: &TwoFactor,
    ticket: &ninsho::service::Ticket,
    destination: &Destination,
) -> Result<(), Box<dyn std::error::Error>> {
    if !std::io::stdin().is_terminal() {
        return Ok(());
    }
    let codes = service.one_time_codes();
    loop {
        print!("  the code you received (empty to skip): ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let typed = line.trim();
        if typed.is_empty() {
            return Ok(());
        }
        match codes
            .verify(&ticket.challenge_id, typed, &Purpose::SignUp, destination)
            .await
        {
            Ok(_) => {
                println!("  confirmed.");
                return Ok(());
            }
            Err(e) => match e.refusal() {
                Some(refusal) => {
                    println!(
                        "  {}",
                        refusal.message(Locale::En, time::OffsetDateTime::now_utc())
                    );
                    if !matches!(refusal, Refusal::Code(CodeRefusal::WrongCode { .. })) {
                        return Ok(());
                    }
                }
                None => return Err(e.into()),
            },
        }
    }
}

async fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let service_name = var("SERVICE_NAME").unwrap_or_else(|| "Example".to_owned());
    let (email, phone) = match (smtp(&service_name), twilio()) {
        (Ok(email), Ok(phone)) => (email, phone),
        (Err(Setup(why)), _) | (_, Err(Setup(why))) => {
            eprintln!("smtp_twilio: {why}");
            return Ok(ExitCode::from(2));
        }
    };
    if email.is_none() && phone.is_none() {
        println!(
            "Nothing to send: set SMTP_HOST, SMTP_FROM and SEND_TO_EMAIL for email, and/or \
             TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM (or \
             TWILIO_MESSAGING_SERVICE_SID) and SEND_TO_PHONE for SMS and voice. \
             The top of examples/smtp_twilio.rs lists every variable."
        );
        return Ok(ExitCode::SUCCESS);
    }

    let mut router = ByChannel::new();
    let mut sends = Vec::new();
    if let Some((gateway, to)) = email {
        router = router.email(Arc::new(gateway));
        sends.push(Destination::email(&to)?);
    }
    if let Some((gateway, to)) = phone {
        let gateway: Arc<dyn Gateway> = Arc::new(gateway);
        router = router.sms(gateway.clone()).voice(gateway);
        sends.push(Destination::phone(&to)?);
    }
    let (hasher, sealer) = keys()?;
    let service = TwoFactor::builder(
        &service_name,
        Arc::new(MemoryStore::new()),
        Arc::new(router),
        hasher,
        Arc::new(sealer),
    )
    .locale(Locale::Ja)
    .build()?;

    let mut failed = false;
    for destination in sends {
        let request = IssueRequest::new(destination.clone(), Purpose::SignUp);
        match service.one_time_codes().send(request).await {
            Ok(ticket) => {
                let valid = ticket.expires_at - time::OffsetDateTime::now_utc();
                println!(
                    "sent a code by {} to {}, valid for {} minutes",
                    ticket.channel,
                    ticket.masked_destination,
                    (valid.whole_seconds() + 59) / 60
                );
                confirm(&service, &ticket, &destination).await?;
            }
            Err(e) => {
                // What went wrong, never the code: ninsho's errors don't
                // carry it.
                eprintln!("could not send to {}: {e}", destination.address());
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    eprintln!("  because: {cause}");
                    source = cause.source();
                }
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("smtp_twilio: {e}");
            ExitCode::FAILURE
        }
    }
}
