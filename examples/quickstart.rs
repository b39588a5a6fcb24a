//! A narrated tour of ninsho: `cargo run --example quickstart`.
//!
//! Everything runs against a manual clock, so the tour is instant and
//! repeatable: time moves only when the tour says so.

use ninsho::otp::{Rejection, Totp, TotpEnrollment};
use ninsho::{Clock, ManualClock, OsRandom};
use time::Duration;

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::at_unix(1_763_683_200)?; // 2025-11-21 00:00:00 UTC
    let rng = OsRandom;

    println!("== Adding an authenticator app");
    let enrolment = TotpEnrollment::start(&rng, "Example", "alice@example.com")?;
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

    println!("\n== Signing in a minute later");
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

    println!("\n== Someone replays the same code");
    let replay = confirmed
        .totp
        .verify(&code, clock.unix_seconds(), Some(last_step));
    assert_eq!(replay, Err(Rejection::Replayed));
    println!("{code}: refused ({}).", Rejection::Replayed);

    println!("\n== A code typed with spaces, in full-width digits");
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

    println!("\n== A code from five minutes ago");
    let stale = phone.code_at(clock.unix_seconds() - 300).to_string();
    let result = confirmed
        .totp
        .verify(&stale, clock.unix_seconds(), Some(accepted.step));
    assert!(result.is_err());
    println!("{stale}: refused (outside the ±1 step window).");

    println!("\nDone.");
    Ok(())
}
