//! The sign-in journey against PostgreSQL:
//! `cargo run --features postgres --example postgres`.
//!
//! Connects to `NINSHO_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), creates ninsho's tables in
//! the `public` schema, then registers a phone with two-step sign-in on and
//! signs in with a code by SMS: a wrong code, the right one, the right one
//! again. Messages are printed instead of sent. If the
//! database can't be reached it says so and exits with status 1.

use std::error::Error as StdError;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ninsho::gateway::{ConsoleGateway, DeliveryError, Gateway, Message, Receipt};
use ninsho::prelude::*;
use ninsho::store::{LimitStore, PgStore, PurgeStore};
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
    let sealer = AeadSealer::new(SealKey::new(KeyId(1), &[0x5B; 32])?);
    let service = TwoFactor::builder(
        "Example",
        store.clone(),
        phone_gateway.clone(),
        hasher,
        Arc::new(sealer),
    )
    .origin("example.com")
    .build()?;

    // Send limits, failure runs and number claims persist in PostgreSQL
    // across runs (that is the point), so each run of the example signs in
    // a user of its own with a phone of its own, and reruns never trip the
    // limits.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let account = AccountId::new(format!("example-user-{run}"));
    // Japanese mobile numbers never continue `090-0`: the block starts at 1.
    let typed = format!("090-{}-{:04}", 1_000 + run / 10_000 % 9_000, run % 10_000);

    println!("\n== 2. Register the phone {typed} and turn two-step sign-in on");
    let ticket = service
        .phone_send_code(&account, &typed, None, None)
        .await?;
    let done = service
        .phone_confirm(&account, &ticket.challenge_id, &phone_gateway.code(), true)
        .await?;
    let codes = done.recovery_codes.map_or(0, |c| c.len());
    println!("Registered; {codes} recovery codes to show once.");

    println!("\n== 3. Sign in: the second step by SMS, and a wrong code first");
    let SignInStart::Required { methods } = service.sign_in_begin(&account, None).await? else {
        return Err("two-step sign-in is on: a second step is required".into());
    };
    let ticket = service
        .sign_in_send_code(&account, &methods[0], None, None)
        .await?;
    println!(
        "Sent by {} to {}; valid until {}; resend from {}.",
        ticket.channel, ticket.masked_destination, ticket.expires_at, ticket.resend_available_at
    );
    let wrong = Proof::Code {
        challenge: &ticket.challenge_id,
        code: "000000",
    };
    match service.sign_in_complete(&account, wrong, None, None).await {
        Err(Error::Refused(refusal @ Refusal::Code(CodeRefusal::WrongCode { .. }))) => {
            let now = OffsetDateTime::now_utc();
            println!(
                "000000 refused ({}): {} / {}",
                refusal.code(),
                refusal.message(Locale::En, now),
                refusal.message(Locale::Ja, now)
            );
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
    let right = Proof::Code {
        challenge: &ticket.challenge_id,
        code: &code,
    };
    let signed_in = service
        .sign_in_complete(&account, right, None, None)
        .await?;
    println!("{code}: signed in by {:?}.", signed_in.method);

    println!("\n== 5. The same code again");
    let again = Proof::Code {
        challenge: &ticket.challenge_id,
        code: &code,
    };
    match service.sign_in_complete(&account, again, None, None).await {
        Err(Error::Refused(refusal)) => println!("{code}: refused ({refusal})."),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("a used code was accepted twice".into()),
    }

    println!("\n== 6. Housekeeping: purge what expired over a day ago");
    let purged = store
        .purge(OffsetDateTime::now_utc() - Duration::days(1))
        .await?;
    println!(
        "Purged {} records ({} challenges, {} counters, {} devices).",
        purged.total(),
        purged.challenges,
        purged.counters,
        purged.devices
    );

    println!("\nDone.");
    Ok(())
}
