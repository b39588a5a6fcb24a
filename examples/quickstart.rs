//! A narrated tour of ninsho's journeys: `cargo run --example quickstart`.
//!
//! One `TwoFactor` service plays every journey of the five services our
//! seed documents describe — EZSMS's sign-up, nizima's two-step sign-in,
//! SMSLINK's voice fallback, au ID's one-time link and device list, and
//! Microsoft's contact check with its grace period — against a manual
//! clock and an in-memory store. Messages are printed instead of sent, so
//! the tour is instant and repeatable: time moves only when it says so.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ninsho::contact::ContactError;
use ninsho::gateway::{ConsoleGateway, DeliveryError, Gateway, Message, Receipt};
use ninsho::grace::GraceDecision;
use ninsho::otp::Totp;
use ninsho::prelude::*;
use ninsho::store::MemoryStore;
use ninsho::{Clock, ManualClock, OsRandom};
use time::Duration;
use zeroize::Zeroizing;

/// A console gateway that remembers the codes it printed (standing in for
/// "the user reads the message"), behind a carrier that refuses SMS to one
/// number, as when a user's refusal settings block unknown senders.
#[derive(Debug)]
struct Phones {
    blocked_sms: String,
    console: ConsoleGateway,
    inbox: Mutex<Vec<(String, String)>>,
    quiet: Mutex<bool>,
}

#[async_trait]
impl Gateway for Phones {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        if message.channel == Channel::Sms && message.to == self.blocked_sms {
            println!(
                "  [carrier] SMS to {} refused by the user's settings",
                message.to
            );
            return Err(DeliveryError::refused("SMS from unknown senders refused"));
        }
        if let (Some(secret), Ok(mut inbox)) = (&message.secret, self.inbox.lock()) {
            inbox.push((message.to.clone(), secret.expose_secret().to_owned()));
        }
        if self.quiet.lock().map(|q| *q).unwrap_or(false) {
            println!("  [{} to {}]", message.channel, message.to);
            return Ok(Receipt::default());
        }
        self.console.send(message).await
    }
}

impl Phones {
    /// What the user reads: the last code or link sent to `to`.
    fn read(&self, to: &str) -> String {
        let inbox = self.inbox.lock().map(|inbox| {
            inbox
                .iter()
                .rev()
                .find(|(address, _)| address == to)
                .map(|(_, secret)| secret.clone())
        });
        inbox.ok().flatten().unwrap_or_default()
    }

    /// Prints only one line per message from now on.
    fn hush(&self) {
        if let Ok(mut quiet) = self.quiet.lock() {
            *quiet = true;
        }
    }
}

/// The key that seals authenticator seeds: 64 hex digits from
/// `NINSHO_SEAL_KEY` when it is set, the way a deployment reads its secret
/// manager, or else a fresh random key. A fresh key is enough here because
/// the store lives in memory and is gone with it; with a database, a lost
/// key means every authenticator app has to be set up again.
fn seal_key() -> Result<SealKey, Box<dyn std::error::Error>> {
    match std::env::var("NINSHO_SEAL_KEY") {
        Ok(hex) => {
            let hex = hex.trim();
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect();
            let bytes = Zeroizing::new(bytes.ok_or("NINSHO_SEAL_KEY must be 64 hex digits")?);
            Ok(SealKey::new(KeyId(1), &bytes)?)
        }
        Err(_) => Ok(SealKey::generate(KeyId(1), &OsRandom)?),
    }
}

const TARO_PHONE: &str = "+819012345678";
const TARO_NEW_PHONE: &str = "+818098765432";
const HANAKO_PHONE: &str = "+818011112222";

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::at_unix(1_763_683_200)?; // 2025-11-21 00:00:00 UTC
    let phones = Arc::new(Phones {
        blocked_sms: HANAKO_PHONE.into(),
        console: ConsoleGateway::new(),
        inbox: Mutex::new(Vec::new()),
        quiet: Mutex::new(false),
    });
    // In production: keys from your secret manager, your database's
    // store, SystemClock.
    let service = TwoFactor::builder(
        "Example",
        Arc::new(MemoryStore::new()),
        phones.clone(),
        KeyedHasher::new(HashKey::new(KeyId(1), &[0x5A; 32])?),
        Arc::new(AeadSealer::new(seal_key()?)),
    )
    .origin("example.com")
    .link_base("https://example.com/l/")
    .clock(Arc::new(clock.clone()))
    .build()?;
    let tour = Tour {
        service,
        phones,
        clock,
    };
    tour.sign_up().await?;
    tour.two_step_on_and_sign_in().await?;
    tour.fallback_and_link().await?;
    tour.authenticator_and_phone_change().await?;
    tour.lost_phone_and_off().await?;
    tour.grace_period_and_recovery().await?;
    println!("\nDone.");
    Ok(())
}

struct Tour {
    service: TwoFactor,
    phones: Arc<Phones>,
    clock: ManualClock,
}

fn taro() -> AccountId {
    AccountId::new("taro")
}

fn first_of(methods: &[Method], kind: MethodKind) -> Result<&Method, Box<dyn std::error::Error>> {
    methods
        .iter()
        .find(|m| m.kind == kind)
        .ok_or_else(|| format!("no {kind:?} method offered").into())
}

impl Tour {
    /// EZSMS: email and mobile verified together, in any order.
    async fn sign_up(&self) -> Result<(), Box<dyn std::error::Error>> {
        let s = &self.service;
        println!("== 1. Sign-up: email and mobile number together (EZSMS)");
        let typed = "０９０－１２３４－５６７８"; // as typed on a Japanese keyboard
        let ticket = s.signup_start("Taro@Example.COM", typed, None).await?;
        self.phones.hush();
        let step = s
            .signup_verify(&ticket.id, 1, &self.phones.read(TARO_PHONE))
            .await?;
        println!("Phone code first: still to verify {:?}.", step.remaining);
        let step = s
            .signup_verify(&ticket.id, 0, &self.phones.read("Taro@example.com"))
            .await?;
        println!("Then the email code: complete = {}.", step.completed);
        for contact in s.signup_complete(&ticket.id, &taro()).await? {
            println!("  Taro's contact: {}", contact.masked_destination);
        }

        println!("\n== 2. A landline can't receive the code (nizima, EZSMS)");
        match s
            .signup_start("jiro@example.com", "03-1234-5678", None)
            .await
        {
            Err(Error::Contact(ContactError::Phone(reason))) => {
                println!("03-1234-5678: {reason} [{}]", reason.code());
            }
            other => println!("03-1234-5678: {other:?}"),
        }
        // One number per account. Asking can't tell whether a number is
        // taken; only whoever receives its code learns that.
        let hanako = AccountId::new("hanako");
        let ticket = s
            .phone_send_code(&hanako, "090-1234-5678", None, None)
            .await?;
        let code = self.phones.read(TARO_PHONE);
        match s
            .phone_confirm(&hanako, &ticket.challenge_id, &code, false)
            .await
        {
            Err(Error::Refused(reason)) => {
                println!("Hanako tries Taro's number: {reason} [{}]", reason.code())
            }
            other => println!("Hanako tries Taro's number: {other:?}"),
        }
        Ok(())
    }

    /// nizima: two-step on, sign in by SMS, trust the browser.
    async fn two_step_on_and_sign_in(&self) -> Result<(), Box<dyn std::error::Error>> {
        let s = &self.service;
        println!("\n== 3. Two-step sign-in on: ten recovery codes, shown once (nizima)");
        let codes = s.enable_two_factor(&taro()).await?;
        println!("  {}", codes.expose_secret().join("  "));

        println!("\n== 4. Next sign-in: the second step");
        let SignInStart::Required { methods } = s.sign_in_begin(&taro(), None).await? else {
            return Err("two-step sign-in should be required".into());
        };
        for m in &methods {
            println!(
                "  offer: {:?} {}",
                m.kind,
                m.masked_destination.as_deref().unwrap_or("")
            );
        }
        let sms = first_of(&methods, MethodKind::Sms)?;
        let ticket = s.sign_in_send_code(&taro(), sms, None, None).await?;
        let wrong = s
            .sign_in_complete(
                &taro(),
                Proof::Code {
                    challenge: &ticket.challenge_id,
                    code: "000000",
                },
                None,
                None,
            )
            .await;
        if let Err(Error::Refused(reason)) = wrong {
            println!("000000: {reason} [{}]", reason.code());
        }
        let code = self.phones.read(TARO_PHONE);
        let signed_in = s
            .sign_in_complete(
                &taro(),
                Proof::Code {
                    challenge: &ticket.challenge_id,
                    code: &code,
                },
                Some("Firefox on macOS"),
                None,
            )
            .await?;
        println!(
            "{code}: signed in by {:?}; \"don't ask again on this browser\" ticked.",
            signed_in.method
        );
        let Some((token, _)) = signed_in.device else {
            return Err("the browser should be trusted".into());
        };
        self.clock.advance(Duration::days(3));
        let again = s
            .sign_in_begin(&taro(), Some(token.expose_secret()))
            .await?;
        println!("Three days later, same browser: {again:?}.");
        Ok(())
    }

    /// SMSLINK: SMS refused → voice; au ID: one-time link and device list.
    async fn fallback_and_link(&self) -> Result<(), Box<dyn std::error::Error>> {
        let s = &self.service;
        let hanako = AccountId::new("hanako");
        println!("\n== 5. SMS refused by the carrier: the code comes by voice call (SMSLINK)");
        let ticket = s
            .phone_send_code(&hanako, "080-1111-2222", None, None)
            .await?;
        println!("Delivered by {} ({:?}).", ticket.channel, ticket.reason);
        s.phone_confirm(
            &hanako,
            &ticket.challenge_id,
            &self.phones.read(HANAKO_PHONE),
            true,
        )
        .await?;
        println!("Hanako confirmed her number from the call; two-step sign-in is on.");

        println!("\n== 6. A one-time link by SMS, approved on the phone (au ID)");
        let SignInStart::Required { methods } = s.sign_in_begin(&taro(), None).await? else {
            return Err("two-step sign-in should be required".into());
        };
        let link = first_of(&methods, MethodKind::Link)?;
        let ticket = s
            .sign_in_send_link(&taro(), link, "Chrome on Windows, Osaka", None, None)
            .await?;
        let url = self.phones.read(TARO_PHONE);
        let token = url.rsplit('/').next().unwrap_or_default();
        let view = s.open_link(token).await?;
        println!("The phone shows who is asking: {:?}.", view.device);
        let pending = s
            .sign_in_poll_link(&taro(), &ticket.challenge_id, None, None)
            .await?;
        println!(
            "The PC polls: {}.",
            if pending.is_none() {
                "waiting"
            } else {
                "done?!"
            }
        );
        s.approve_link(token).await?;
        let polled = s
            .sign_in_poll_link(
                &taro(),
                &ticket.challenge_id,
                Some("Chrome on Windows"),
                None,
            )
            .await?;
        println!("Approved; the PC signs in: {:?}.", polled.map(|p| p.method));
        for device in s.devices(&taro()).await? {
            println!(
                "  authorised device: {} (last used {})",
                device.label, device.last_used_at
            );
        }
        Ok(())
    }

    /// Microsoft: authenticator app; nizima: change the phone.
    async fn authenticator_and_phone_change(&self) -> Result<(), Box<dyn std::error::Error>> {
        let s = &self.service;
        println!("\n== 7. Adding an authenticator app needs a fresh second factor (Microsoft)");
        let step_up = self.sign_in_by_sms().await?;
        let setup = s
            .authenticator_start(&taro(), "taro@example.com", Some(&step_up))
            .await?;
        // The QR code the user scans (feature `qr`, on by default), and
        // the key for those who type it in.
        #[cfg(feature = "qr")]
        print!("{}", setup.qr_terminal()?.expose_secret());
        #[cfg(not(feature = "qr"))]
        println!("QR code of: {}", setup.uri.expose_secret());
        println!("Or type the key: {}", setup.manual_key.expose_secret());
        let app = Totp::from_uri(setup.uri.expose_secret())?;
        let first = app.code_at(self.clock.unix_seconds()).to_string();
        s.authenticator_confirm(&taro(), &first).await?;
        println!("Confirmed with {first}.");
        self.clock.advance(Duration::seconds(30));
        let code = app.code_at(self.clock.unix_seconds()).to_string();
        let signed_in = s
            .sign_in_complete(&taro(), Proof::Authenticator { code: &code }, None, None)
            .await?;
        println!("Signed in with the app: {code} ({:?}).", signed_in.method);
        match s
            .sign_in_complete(&taro(), Proof::Authenticator { code: &code }, None, None)
            .await
        {
            Err(Error::Refused(reason)) => {
                println!("The same code again: {reason} [{}]", reason.code())
            }
            other => println!("The same code again: {other:?}"),
        }

        println!("\n== 8. Changing the phone number (nizima): verify the new one first");
        let ticket = s
            .phone_send_code(&taro(), "080-9876-5432", Some(&signed_in.step_up), None)
            .await?;
        let done = s
            .phone_confirm(
                &taro(),
                &ticket.challenge_id,
                &self.phones.read(TARO_NEW_PHONE),
                false,
            )
            .await?;
        println!(
            "Now {} (changed: {}); every trusted device was signed out.",
            done.contact.masked_destination, done.changed
        );
        match s.phone_remove(&taro()).await {
            Err(Error::Refused(reason)) => println!("Removing it: {reason} [{}]", reason.code()),
            other => println!("Removing it: {other:?}"),
        }
        Ok(())
    }

    /// nizima: lost phone → recovery code; regenerate; turn two-step off.
    async fn lost_phone_and_off(&self) -> Result<(), Box<dyn std::error::Error>> {
        let s = &self.service;
        println!("\n== 9. Phone lost: a recovery code signs in (nizima)");
        self.clock.advance(Duration::minutes(1));
        let step_up = self.sign_in_by_sms().await?;
        let codes = s.regenerate_recovery_codes(&taro(), &step_up).await?;
        let typed = codes.expose_secret()[3].to_lowercase().replace('-', " ");
        let signed_in = s
            .sign_in_complete(&taro(), Proof::RecoveryCode { code: &typed }, None, None)
            .await?;
        println!(
            "{typed:?}: signed in; {} codes left; trusted devices revoked.",
            signed_in.recovery_codes_left.unwrap_or_default()
        );
        match s
            .sign_in_complete(&taro(), Proof::RecoveryCode { code: &typed }, None, None)
            .await
        {
            Err(Error::Refused(reason)) => {
                println!("The same code again: {reason} [{}]", reason.code())
            }
            other => println!("The same code again: {other:?}"),
        }

        println!("\n== 10. Turning two-step sign-in off needs a fresh second factor");
        self.clock.advance(Duration::minutes(11));
        match s.disable_two_factor(&taro(), &signed_in.step_up).await {
            Err(Error::Refused(reason)) => println!("With an 11-minute-old proof: {reason}."),
            other => println!("With an 11-minute-old proof: {other:?}"),
        }
        let step_up = self.sign_in_by_sms().await?;
        s.disable_two_factor(&taro(), &step_up).await?;
        println!("Off: {:?}.", s.sign_in_begin(&taro(), None).await?);
        let codes = s.enable_two_factor(&taro()).await?;
        println!("On again: a new set of {} codes.", codes.len());
        Ok(())
    }

    /// Microsoft: the grace period; OWASP: find an account by a contact.
    async fn grace_period_and_recovery(&self) -> Result<(), Box<dyn std::error::Error>> {
        let s = &self.service;
        println!("\n== 11. Contacts must be verified within 7 days (Microsoft)");
        let jiro = AccountId::new("jiro");
        let old_phone = Destination::phone("+81 70-2222-3333")?;
        s.account_created(&jiro).await?;
        s.import_contact(&jiro, &old_phone, false).await?; // on file, never verified
        if let GraceDecision::Remind { deadline, .. } = s.contact_check(&jiro).await?.decision {
            println!("Day 0: allowed, with a reminder to verify before {deadline}.");
        }
        self.clock.advance(Duration::days(7));
        if let GraceDecision::Blocked { paths, .. } = s.contact_check(&jiro).await?.decision {
            println!(
                "Day 7: blocked until a contact is verified; open paths: {}.",
                paths.len()
            );
        }
        // "I can't reach any of these": Jiro adds his new email and verifies it.
        let email = Destination::email("jiro@example.com")?;
        let ticket = s.contact_send_code(&jiro, &email, None, None).await?;
        s.contact_confirm(
            &jiro,
            &ticket.challenge_id,
            &self.phones.read(email.address()),
        )
        .await?;
        println!(
            "Jiro verifies a new email: {:?}.",
            s.contact_check(&jiro).await?.decision
        );

        println!("\n== 12. \"I can't sign in\": find the account by its phone number");
        let ticket = s.recover_start("080-9876-5432", None).await?;
        let found = s
            .recover_verify(&ticket.challenge_id, &self.phones.read(TARO_NEW_PHONE))
            .await?;
        println!("Code confirmed; the number belongs to {:?}.", found.account);
        let ticket = s.recover_start("090-8765-4321", None).await?;
        println!(
            "An unregistered number gets the same answer ({}) until its code is typed.",
            ticket.masked_destination
        );
        Ok(())
    }

    /// Passes the second step by SMS; returns the step-up proof.
    async fn sign_in_by_sms(&self) -> Result<ninsho::service::StepUp, Box<dyn std::error::Error>> {
        let s = &self.service;
        let methods = s.methods(&taro()).await?;
        let sms = first_of(&methods, MethodKind::Sms)?;
        let ticket = s.sign_in_send_code(&taro(), sms, None, None).await?;
        let to = sms_address(sms);
        let code = self.phones.read(&to);
        let signed_in = s
            .sign_in_complete(
                &taro(),
                Proof::Code {
                    challenge: &ticket.challenge_id,
                    code: &code,
                },
                None,
                None,
            )
            .await?;
        Ok(signed_in.step_up)
    }
}

/// Which of Taro's numbers a method's masked form stands for.
fn sms_address(method: &Method) -> String {
    match method.masked_destination.as_deref() {
        Some(masked) if masked.ends_with("32") => TARO_NEW_PHONE.into(),
        _ => TARO_PHONE.into(),
    }
}
