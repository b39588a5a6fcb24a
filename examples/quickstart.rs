//! A narrated tour of ninsho: `cargo run --example quickstart`.
//!
//! Everything runs against a manual clock and an in-memory store, and
//! messages are printed instead of sent, so the tour is instant and
//! repeatable: time moves only when the tour says so.

use std::sync::Arc;

use async_trait::async_trait;
use ninsho::contact::Destination;
use ninsho::device::DeviceCheck;
use ninsho::flows::{Challenges, IssueRequest, Ports, RecoveryCodes, TrustedDevices};
use ninsho::gateway::{Channel, ConsoleGateway, DeliveryError, Gateway, Message, Receipt};
use ninsho::otp::{Rejection, Totp, TotpEnrollment};
use ninsho::store::{AccountId, MemoryStore, Purpose};
use ninsho::{Clock, Error, HashKey, KeyId, KeyedHasher, ManualClock, OsRandom, Refusal};
use time::Duration;

/// A console gateway behind a carrier that blocks SMS to one number, as
/// when a user's refusal settings block messages from unknown senders.
#[derive(Debug)]
struct CarrierBlocksSms {
    blocked: String,
    console: ConsoleGateway,
    /// The last code printed, standing in for "the user reads the message".
    last_code: std::sync::Mutex<Option<String>>,
}

#[async_trait]
impl Gateway for CarrierBlocksSms {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        if message.channel == Channel::Sms && message.to == self.blocked {
            println!(
                "  [carrier] SMS to {} blocked by the user's refusal settings",
                message.to
            );
            return Err(DeliveryError::refused("SMS from unknown senders refused"));
        }
        if let Some(secret) = &message.secret
            && let Ok(mut last) = self.last_code.lock()
        {
            *last = Some(secret.expose_secret().to_owned());
        }
        self.console.send(message).await
    }
}

impl CarrierBlocksSms {
    fn code(&self) -> String {
        self.last_code
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .unwrap_or_default()
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::at_unix(1_763_683_200)?; // 2025-11-21 00:00:00 UTC
    authenticator_app(&clock)?;
    codes_by_sms_and_voice(&clock).await?;
    recovery_codes_and_trusted_devices(&clock).await?;
    println!("\nDone.");
    Ok(())
}

fn authenticator_app(clock: &ManualClock) -> Result<(), Box<dyn std::error::Error>> {
    println!("== 1. Adding an authenticator app");
    let enrolment = TotpEnrollment::start(&OsRandom, "Example", "alice@example.com")?;
    let uri = enrolment.uri();
    println!(
        "Show this to Alice as a QR code:\n  {}",
        uri.expose_secret()
    );

    // Alice's phone app reads the same URI.
    let phone = Totp::from_uri(uri.expose_secret())?;
    let first = phone.code_at(clock.unix_seconds()).to_string();
    println!("Alice types the code her app shows: {first}");
    let confirmed = enrolment.confirm(&first, clock.unix_seconds())?;
    let mut last_step = confirmed.last_step;
    println!("Confirmed. Store the authenticator and last step {last_step}.");

    println!("\n== 2. Signing in with the app a minute later");
    clock.advance(Duration::minutes(1));
    let code = phone.code_at(clock.unix_seconds()).to_string();
    let accepted = confirmed
        .totp
        .verify(&code, clock.unix_seconds(), Some(last_step))?;
    last_step = accepted.step;
    println!(
        "{code}: accepted at step {} (drift {}).",
        accepted.step, accepted.drift
    );

    println!("\n== 3. Someone replays the same code");
    let replay = confirmed
        .totp
        .verify(&code, clock.unix_seconds(), Some(last_step));
    assert_eq!(replay, Err(Rejection::Replayed));
    println!("{code}: refused ({}).", Rejection::Replayed);

    println!("\n== 4. A code typed with a space, in full-width digits");
    clock.advance(Duration::seconds(30));
    let fresh = phone.code_at(clock.unix_seconds()).to_string();
    let wide: String = fresh
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let wide = char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).unwrap_or(c);
            (i == 3).then_some(' ').into_iter().chain([wide])
        })
        .collect();
    let accepted = confirmed
        .totp
        .verify(&wide, clock.unix_seconds(), Some(last_step))?;
    println!("{wide}: accepted at step {}.", accepted.step);
    Ok(())
}

async fn codes_by_sms_and_voice(clock: &ManualClock) -> Result<(), Box<dyn std::error::Error>> {
    let gateway = Arc::new(CarrierBlocksSms {
        blocked: "+818011112222".into(),
        console: ConsoleGateway::new(),
        last_code: std::sync::Mutex::new(None),
    });
    // In production: keys from your secret manager, and SystemClock.
    let hasher = KeyedHasher::new(HashKey::new(KeyId(1), &[0x5A; 32])?);
    let challenges = Challenges::builder()
        .service_name("Example")
        .origin("example.com")
        .store(Arc::new(MemoryStore::new()))
        .gateway(gateway.clone())
        .hasher(hasher)
        .clock(Arc::new(clock.clone()))
        .build()?;

    println!("\n== 5. A code by SMS");
    let phone = Destination::phone("+81 90-1234-5678")?;
    let ticket = challenges
        .issue(IssueRequest::new(phone.clone(), Purpose::SignIn))
        .await?;
    println!(
        "Sent by {} to {}; valid until {}, resend from {}.",
        ticket.channel, ticket.masked_destination, ticket.expires_at, ticket.resend_available_at
    );

    println!("\n== 6. A wrong code, then the right one");
    match challenges
        .verify(&ticket.challenge_id, "000000", &Purpose::SignIn, &phone)
        .await
    {
        Err(Error::Refused(Refusal::WrongCode { attempts_left })) => {
            println!("000000: wrong code, {attempts_left} attempts left.");
        }
        other => println!("000000: {other:?}"),
    }
    let code = gateway.code();
    let verified = challenges
        .verify(&ticket.challenge_id, &code, &Purpose::SignIn, &phone)
        .await?;
    println!(
        "{code}: verified {} for {:?}.",
        verified.destination.masked(),
        verified.purpose
    );

    println!("\n== 7. SMS refused by the carrier: the plan falls back to a voice call");
    let blocked = Destination::phone("+81 80-1111-2222")?;
    let ticket = challenges
        .issue(IssueRequest::new(blocked.clone(), Purpose::SignUp))
        .await?;
    println!("Delivered by {} ({:?}).", ticket.channel, ticket.reason);
    let code = gateway.code();
    challenges
        .verify(&ticket.challenge_id, &code, &Purpose::SignUp, &blocked)
        .await?;
    println!("{code}: verified from the voice call.");
    Ok(())
}

async fn recovery_codes_and_trusted_devices(
    clock: &ManualClock,
) -> Result<(), Box<dyn std::error::Error>> {
    let hasher = KeyedHasher::new(HashKey::new(KeyId(1), &[0x5A; 32])?);
    let ports =
        Ports::new(Arc::new(MemoryStore::new()), hasher).with_clock(Arc::new(clock.clone()));
    let recovery = RecoveryCodes::new(ports.clone());
    let devices = TrustedDevices::new(ports);
    let alice = AccountId::new("alice");

    println!("\n== 8. Recovery codes, shown once");
    let codes = recovery.generate(&alice).await?;
    for code in codes.expose_secret() {
        println!("  {code}");
    }
    println!("Only their keyed hashes are stored.");

    println!("\n== 9. Phone lost: Alice signs in with a recovery code");
    let typed = codes.expose_secret()[4].to_lowercase().replace('-', " ");
    let redeemed = recovery.redeem(&alice, &typed).await?;
    println!("{typed:?}: accepted; {} codes left.", redeemed.remaining);
    match recovery.redeem(&alice, &typed).await {
        Err(Error::Refused(reason)) => println!("The same code again: refused ({reason})."),
        other => println!("The same code again: {other:?}"),
    }
    // Using a recovery code is a security event: trusted devices die.
    devices.bump_epoch(&alice).await?;

    println!("\n== 10. Regenerating voids every old code at once");
    let fresh = recovery.generate(&alice).await?;
    let old = codes.expose_secret()[0];
    let refused = recovery.redeem(&alice, old).await.is_err();
    println!(
        "Old code {old}: {}.",
        if refused { "refused" } else { "accepted?!" }
    );
    println!("New set: {} codes.", fresh.len());
    clock.advance(Duration::seconds(2)); // let the failure back-off pass

    println!("\n== 11. \"Don't ask again on this browser\"");
    let (token, info) = devices.trust(&alice, "Chrome on Windows").await?;
    println!(
        "Trusted {} until {}; the cookie holds an opaque token.",
        info.label, info.expires_at
    );
    clock.advance(Duration::days(3));
    let check = devices.check(&alice, token.expose_secret()).await?;
    println!("Three days later, same browser: {check:?} -> skip the second step.");
    for device in devices.list(&alice).await? {
        println!(
            "  Your devices: {} (last used {})",
            device.label, device.last_used_at
        );
    }
    devices.revoke(&alice, &info.id).await?;
    let check = devices.check(&alice, token.expose_secret()).await?;
    assert_eq!(check, DeviceCheck::Revoked);
    println!("After Alice revokes it: {check:?} -> ask for the second factor again.");
    Ok(())
}
