//! The sign-in journey against PostgreSQL:
//! `cargo run --features postgres --example postgres`.
//!
//! Connects to `NINSHO_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), creates ninsho's tables in
//! the `public` schema, then sends a sign-in code to a phone, tries a wrong
//! code and the right one. Messages are printed instead of sent. If the
//! database can't be reached it says so and exits with status 1.

use std::error::Error as StdError;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ninsho::flows::{Challenges, IssueRequest};
use ninsho::gateway::{ConsoleGateway, DeliveryError, Gateway, Message, Receipt};
use ninsho::model::{AccountId, Destination, Purpose};
use ninsho::store::{ChallengeStore, LimitStore, PgStore};
use ninsho::{Error, HashKey, KeyId, KeyedHasher, Refusal};
use sqlx::postgres::PgPoolOptions;
use time::{Duration, OffsetDateTime};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Prints every message like [`ConsoleGateway`] and remembers the last code,
/// standing in for "the user reads the SMS".
#[derive(Debug, Default)]
struct Phone {
    console: ConsoleGateway,
    last_code: Mutex<Option<String>>,
}

#[async_trait]
impl Gateway for Phone {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        if let (Some(secret), Ok(mut last)) = (&message.secret, self.last_code.lock()) {
            *last = Some(secret.expose_secret().to_owned());
        }
        self.console.send(message).await
    }
}

impl Phone {
    fn code(&self) -> String {
        self.last_code
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .unwrap_or_default()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn StdError>> {
    let url = std::env::var("NINSHO_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());

    println!("== 1. Start-up: connect and migrate");
    // The pool connects lazily: an unreachable server surfaces as a typed
    // `StoreErrorKind::Unavailable` from the first call, here `migrate`.
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(StdDuration::from_secs(5))
        .connect_lazy(&url)?;
    let store = Arc::new(PgStore::new(pool));
    if let Err(e) = store.migrate().await {
        eprintln!("cannot prepare PostgreSQL at {url} (is it running? set NINSHO_PG_URL)");
        return Err(e.into());
    }
    println!("Tables ready in schema {:?} at {url}.", store.schema());

    let phone_gateway = Arc::new(Phone::default());
    // In production: keys from your secret manager.
    let hasher = KeyedHasher::new(HashKey::new(KeyId(1), &[0x5A; 32])?);
    let challenges = Challenges::builder()
        .service_name("Example")
        .origin("example.com")
        .store(store.clone())
        .gateway(phone_gateway.clone())
        .hasher(hasher)
        .build()?;

    // Send limits and failure runs persist in PostgreSQL across runs (that
    // is the point), so each run of the example signs in a user of its own
    // with a phone of its own, and reruns never trip the limits.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let account = AccountId::new(format!("example-user-{run}"));
    let phone = Destination::phone(&format!(
        "+81 90-{:04}-{:04}",
        run / 10_000 % 10_000,
        run % 10_000
    ))?;

    println!("\n== 2. Sign-in: a code by SMS to {}", phone.masked());
    let ticket = challenges
        .issue(IssueRequest::new(phone.clone(), Purpose::SignIn).account(account.clone()))
        .await?;
    println!(
        "Sent by {} to {}; valid until {}; resend from {}.",
        ticket.channel, ticket.masked_destination, ticket.expires_at, ticket.resend_available_at
    );

    println!("\n== 3. A wrong code");
    match challenges
        .verify(&ticket.challenge_id, "000000", &Purpose::SignIn, &phone)
        .await
    {
        Err(Error::Refused(Refusal::WrongCode { attempts_left })) => {
            println!("000000: wrong code, {attempts_left} attempts left.");
        }
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("a wrong code was accepted".into()),
    }
    if let Some(run) = store.failures(&account).await? {
        println!(
            "Failure run for {account}: {} (stored in PostgreSQL).",
            run.consecutive
        );
    }

    println!("\n== 4. The right code");
    let code = phone_gateway.code();
    let verified = challenges
        .verify(&ticket.challenge_id, &code, &Purpose::SignIn, &phone)
        .await?;
    println!(
        "{code}: verified {} for {:?}, account {:?}.",
        verified.destination.masked(),
        verified.purpose,
        verified.account
    );

    println!("\n== 5. The same code again");
    match challenges
        .verify(&ticket.challenge_id, &code, &Purpose::SignIn, &phone)
        .await
    {
        Err(Error::Refused(refusal)) => println!("{code}: refused ({refusal})."),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("a used code was accepted twice".into()),
    }

    println!("\n== 6. Housekeeping: purge challenges that expired a day ago");
    let purged = store
        .purge_challenges(OffsetDateTime::now_utc() - Duration::days(1))
        .await?;
    println!("Purged {purged} old challenges.");

    println!("\nDone.");
    Ok(())
}
