//! A narrated tour of ninsho: `cargo run --example quickstart`.
//!
//! Everything runs against a manual clock and an in-memory store, and
//! messages are printed instead of sent, so the tour is instant and
//! repeatable: time moves only when the tour says so.

use std::sync::Arc;

use async_trait::async_trait;
use ninsho::contact::Destination;
use ninsho::contact::PhonePolicy;
use ninsho::device::DeviceCheck;
use ninsho::flows::{
    Challenges, Contacts, IssueRequest, Ports, RecoveryCodes, TrustedDevices, VerificationRequest,
    Verifications,
};
use ninsho::gateway::{Channel, ConsoleGateway, DeliveryError, Gateway, Message, Receipt};
use ninsho::grace::GraceDecision;
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
    /// The codes printed, by recipient, standing in for "the user reads
    /// the message".
    codes: std::sync::Mutex<Vec<(String, String)>>,
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
            && let Ok(mut codes) = self.codes.lock()
        {
            codes.push((message.to.clone(), secret.expose_secret().to_owned()));
        }
        self.console.send(message).await
    }
}

impl CarrierBlocksSms {
    fn new(blocked: &str) -> Arc<Self> {
        Arc::new(Self {
            blocked: blocked.to_owned(),
            console: ConsoleGateway::new(),
            codes: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The last code sent to anyone.
    fn code(&self) -> String {
        let codes = self.codes.lock().map(|c| c.last().cloned());
        codes
            .ok()
            .flatten()
            .map(|(_, code)| code)
            .unwrap_or_default()
    }

    /// The last code sent to `to`.
    fn code_to(&self, to: &Destination) -> String {
        let codes = self.codes.lock().map(|c| {
            c.iter()
                .rev()
                .find(|(address, _)| address == to.address())
                .cloned()
        });
        codes
            .ok()
            .flatten()
            .map(|(_, code)| code)
            .unwrap_or_default()
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::at_unix(1_763_683_200)?; // 2025-11-21 00:00:00 UTC
    authenticator_app(&clock)?;
    codes_by_sms_and_voice(&clock).await?;
    recovery_codes_and_trusted_devices(&clock).await?;
    contacts_and_grace_period(&clock).await?;
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
    let gateway = CarrierBlocksSms::new("+818011112222");
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

async fn contacts_and_grace_period(clock: &ManualClock) -> Result<(), Box<dyn std::error::Error>> {
    let gateway = CarrierBlocksSms::new("");
    let hasher = KeyedHasher::new(HashKey::new(KeyId(1), &[0x5A; 32])?);
    let challenges = Challenges::builder()
        .service_name("EZSMS")
        .origin("example.com")
        .store(Arc::new(MemoryStore::new()))
        .gateway(gateway.clone())
        .hasher(hasher)
        .clock(Arc::new(clock.clone()))
        .build()?;
    let signup = Verifications::new(challenges.clone());
    let contacts = Contacts::new(challenges);
    let policy = PhonePolicy::default();

    println!("\n== 12. Sign-up: email and mobile number verified together, in any order");
    let typed = "０９０－１２３４－５６７８"; // as typed on a Japanese keyboard
    let mobile = policy.check(typed, Channel::Sms)?.destination();
    let email = Destination::email("Taro@Example.COM")?;
    println!("{typed:?} reads as {}.", mobile.masked());
    let ticket = signup
        .start(VerificationRequest::new([email.clone(), mobile.clone()]))
        .await?;
    let step = signup
        .verify(&ticket.id, 1, &gateway.code_to(&mobile))
        .await?;
    println!("Phone first: verified; members left: {:?}.", step.remaining);
    let step = signup
        .verify(&ticket.id, 0, &gateway.code_to(&email))
        .await?;
    println!("Then email: complete = {}.", step.completed);
    let taro = AccountId::new("taro");
    contacts
        .adopt(&taro, &signup.take(&ticket.id).await?)
        .await?;
    for contact in contacts.list(&taro).await? {
        println!(
            "  Taro's contact: {} (verified)",
            contact.masked_destination
        );
    }

    println!("\n== 13. A landline is refused, with its reason");
    match policy.check("03-1234-5678", Channel::Sms) {
        Err(refusal) => println!("03-1234-5678: {refusal} [{}]", refusal.code()),
        Ok(number) => println!("03-1234-5678: accepted?! {}", number.masked()),
    }

    println!("\n== 14. One number per account");
    let hanako = AccountId::new("hanako");
    match contacts.send_code(&hanako, &mobile, None).await {
        Err(Error::Refused(reason)) => println!("Hanako tries Taro's number: {reason}."),
        other => println!("Hanako tries Taro's number: {other:?}"),
    }

    println!("\n== 15. Grace period: 7 days to verify a contact, then sign-in is blocked");
    let jiro = AccountId::new("jiro");
    let old_phone = Destination::phone("+81 80-2222-3333")?;
    contacts.create(&jiro).await?;
    contacts.import(&jiro, &old_phone, false).await?; // on file, never verified
    if let GraceDecision::Remind { deadline, .. } = contacts.grace(&jiro).await? {
        println!("Day 0: allowed, with a reminder to verify before {deadline}.");
    }
    clock.advance(Duration::days(7));
    if let GraceDecision::Blocked { paths, .. } = contacts.grace(&jiro).await? {
        println!("Day 7: blocked until a contact is verified; still open: {paths:?}");
    }
    let ticket = contacts.send_code(&jiro, &old_phone, None).await?;
    contacts
        .confirm(&jiro, &ticket.challenge_id, &gateway.code())
        .await?;
    println!(
        "Jiro verifies {}: {:?}.",
        old_phone.masked(),
        contacts.grace(&jiro).await?
    );
    Ok(())
}
