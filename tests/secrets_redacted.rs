//! No secret-bearing public type prints its secret under `Debug`, and no
//! error made from a URI that carries a seed prints the seed.
//!
//! "Prints the secret" is checked broadly: the base32 text (whole or any 8
//! consecutive characters), the raw bytes as text, and any 4 consecutive
//! bytes as a decimal or hex list or as contiguous hex, in `{:?}` and
//! `{:#?}`; for codes, the code's digits.
//!
//! Personal data is checked too: after a journey through the service, no
//! public value it handed out, nor the store, gateway or events behind it,
//! prints a full phone number, email address or caller IP address.

mod support;

use std::sync::Arc;

use ninsho::events::RecordingEvents;
use ninsho::gateway::{DeliveryErrorKind, RecordingGateway};
use ninsho::hash::{HashKey, KeyId, KeyedHash, KeyedHasher, Tag};
use ninsho::model::{AccountId, Destination, Purpose};
use ninsho::otp::{
    ConfirmedTotp, Hotp, HotpBuilder, OtpCode, OtpError, OtpSecret, Totp, TotpBuilder,
    TotpEnrollment, UriError,
};
use ninsho::service::IssueRequest;
use ninsho::service::{Proof, SignInStart};
use ninsho::store::{AccountStore, ChallengeStore, ClaimChanges, MemoryStore};
use ninsho::{LockedRng, ManualClock, Random, SecretBytes, SecretString};
use proptest::prelude::*;
use support::{T0, secret_to, two_factor};

/// 20 printable bytes, unlike anything a `Debug` output contains.
const SEED: &[u8; 20] = b"Zq9@wXv%K7#r!pJ^m2&Y";
/// 32 bytes for hashing keys.
const HASH_KEY: &[u8; 32] = b"hK$3vQ!x9Lm#2pRz&8TwYb^4nJc*6sDe";
const OLD_HASH_KEY: &[u8; 32] = b"oLd~7gH@kP3!qW5#zX1$rT9%mN2^vB4&";
const ISSUER: &str = "Example";
const ACCOUNT: &str = "alice@example.com";
const NOW: u64 = 1_700_000_000;

fn b32(bytes: &[u8]) -> String {
    OtpSecret::from_bytes(bytes.to_vec())
        .map(|s| s.to_base32().expose_secret().to_owned())
        .unwrap_or_else(|_| base32_any(bytes))
}

/// RFC 4648 base32 without padding, for byte strings of any length.
fn base32_any(bytes: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(A[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(A[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn without_whitespace(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Every way `secret` could show up in `text`; empty when none does.
fn leaks(text: &str, secret: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let squeezed = without_whitespace(text);
    let lower = text.to_lowercase();
    let squeezed_lower = squeezed.to_lowercase();

    // Base32: the whole text and any 8 characters (5 bytes) of it, in
    // either case.
    let encoded = b32(secret);
    if lower.contains(&encoded.to_lowercase()) {
        found.push(format!("base32 {encoded}"));
    }
    let chars: Vec<char> = encoded.chars().collect();
    for w in chars.windows(8) {
        let w: String = w.iter().collect::<String>().to_lowercase();
        if lower.contains(&w) {
            found.push(format!("base32 fragment {w}"));
        }
    }

    for w in secret.windows(4) {
        // As raw text.
        if let Ok(s) = std::str::from_utf8(w)
            && text.contains(s)
        {
            found.push(format!("raw bytes {s:?}"));
        }
        let dec = w.iter().map(u8::to_string).collect::<Vec<_>>();
        let hex2 = w.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>();
        let hex = w.iter().map(|b| format!("{b:x}")).collect::<Vec<_>>();
        let hex0x = w.iter().map(|b| format!("0x{b:02x}")).collect::<Vec<_>>();
        for needle in [
            // [49, 50, 51, 52] in {:?} and {:#?}.
            dec.join(","),
            // {:x?} and {:02x?}.
            hex.join(","),
            hex2.join(","),
            hex0x.join(","),
            // Contiguous hex, as hex::encode prints it.
            hex2.concat(),
        ] {
            if squeezed_lower.contains(&needle) {
                found.push(format!("bytes as {needle}"));
            }
        }
    }
    found
}

/// Asserts neither `{:?}` nor `{:#?}` of `value` shows `secret`.
#[track_caller]
fn assert_debug_redacted<T: std::fmt::Debug>(what: &str, value: &T, secret: &[u8]) {
    for text in [format!("{value:?}"), format!("{value:#?}")] {
        let found = leaks(&text, secret);
        assert!(found.is_empty(), "{what} leaks {found:?} in {text}");
    }
}

/// Asserts `{:?}` of `value` does not show the digits of `code`.
#[track_caller]
fn assert_no_code<T: std::fmt::Debug>(what: &str, value: &T, code: &str) {
    for text in [format!("{value:?}"), format!("{value:#?}")] {
        assert!(
            !without_whitespace(&text).contains(code),
            "{what} shows the code {code} in {text}"
        );
    }
}

fn seed() -> OtpSecret {
    OtpSecret::from_bytes(SEED.to_vec()).unwrap()
}

fn totp_builder() -> TotpBuilder {
    Totp::builder(seed()).issuer(ISSUER).account(ACCOUNT)
}

fn hotp_builder() -> HotpBuilder {
    Hotp::builder(seed()).issuer(ISSUER).account(ACCOUNT)
}

#[test]
fn the_checker_finds_leaks() {
    // The detector itself must see every form it claims to.
    let s = SEED.as_slice();
    assert!(!leaks(&format!("{s:?}"), s).is_empty());
    assert!(!leaks(&format!("{s:#?}"), s).is_empty());
    assert!(!leaks(&format!("{s:x?}"), s).is_empty());
    assert!(!leaks(&format!("{s:02X?}"), s).is_empty());
    assert!(!leaks(&String::from_utf8_lossy(s), s).is_empty());
    assert!(!leaks(&b32(s), s).is_empty());
    assert!(!leaks(&b32(s).to_lowercase(), s).is_empty());
    assert!(!leaks(&b32(s)[8..16], s).is_empty());
    let hex: String = s[3..7].iter().map(|b| format!("{b:02X}")).collect();
    assert!(!leaks(&hex, s).is_empty());
    assert_eq!(
        base32_any(b"12345678901234567890"),
        b32(b"12345678901234567890")
    );
    assert_eq!(base32_any(b"f"), "MY");
    assert_eq!(base32_any(b"foobar"), "MZXW6YTBOI");
    // And stays quiet on an honest Debug.
    assert!(leaks("OtpSecret([redacted])", s).is_empty());
}

#[test]
fn secret_bytes_and_string() {
    let bytes = SecretBytes::new(SEED.to_vec());
    assert_debug_redacted("SecretBytes", &bytes, SEED);
    let text = SecretString::new(String::from_utf8(SEED.to_vec()).unwrap());
    assert_debug_redacted("SecretString", &text, SEED);
    // A SecretString holding base32 or a URI.
    let uri = totp_builder().build().unwrap().to_uri();
    assert!(uri.contains(&b32(SEED)), "the URI does carry the seed");
    let uri = SecretString::from(uri);
    assert_debug_redacted("SecretString(uri)", &uri, SEED);
    assert_debug_redacted("SecretString(base32)", &seed().to_base32(), SEED);
}

#[test]
fn otp_secret() {
    assert_debug_redacted("OtpSecret", &seed(), SEED);
    let parsed = OtpSecret::from_base32(&b32(SEED)).unwrap();
    assert_debug_redacted("OtpSecret::from_base32", &parsed, SEED);
    let generated =
        OtpSecret::generate(ninsho::otp::Algorithm::Sha512, &LockedRng::seeded(5)).unwrap();
    let bytes = generated.expose_secret().to_vec();
    assert_debug_redacted("OtpSecret::generate", &generated, &bytes);
}

#[test]
fn totp_and_its_builder() {
    let builder = totp_builder().digits(8);
    assert_debug_redacted("TotpBuilder", &builder, SEED);
    let totp = builder.build().unwrap();
    assert_debug_redacted("Totp", &totp, SEED);
    assert_no_code("Totp", &totp, &totp.code_at(NOW).to_string());
    let parsed = Totp::from_uri(&totp.to_uri()).unwrap();
    assert_debug_redacted("Totp::from_uri", &parsed, SEED);
}

#[test]
fn hotp_and_its_builder() {
    let builder = hotp_builder().counter(42);
    assert_debug_redacted("HotpBuilder", &builder, SEED);
    let hotp = builder.build().unwrap();
    assert_debug_redacted("Hotp", &hotp, SEED);
    assert_no_code("Hotp", &hotp, &hotp.code(42).to_string());
    let parsed = Hotp::from_uri(&hotp.to_uri()).unwrap();
    assert_debug_redacted("Hotp::from_uri", &parsed, SEED);
}

#[test]
fn enrollment_and_confirmation() {
    let totp = totp_builder().build().unwrap();
    let enrolment = TotpEnrollment::with_totp(totp);
    assert_debug_redacted("TotpEnrollment", &enrolment, SEED);
    let code = enrolment.totp().code_at(NOW).to_string();
    assert_no_code("TotpEnrollment", &enrolment, &code);
    let confirmed: ConfirmedTotp = enrolment.confirm(&code, NOW).unwrap();
    assert_debug_redacted("ConfirmedTotp", &confirmed, SEED);
    assert_no_code("ConfirmedTotp", &confirmed, &code);

    // A freshly generated seed.
    let fresh = TotpEnrollment::start(&LockedRng::seeded(9), ISSUER, ACCOUNT).unwrap();
    let bytes = fresh.totp().secret().expose_secret().to_vec();
    assert_debug_redacted("TotpEnrollment::start", &fresh, &bytes);
    assert_debug_redacted("manual_entry_key", &fresh.manual_entry_key(), &bytes);
    assert_debug_redacted("uri", &fresh.uri(), &bytes);
    let resumed = TotpEnrollment::from_uri(fresh.uri().expose_secret()).unwrap();
    assert_debug_redacted("TotpEnrollment::from_uri", &resumed, &bytes);
}

#[test]
fn otp_code() {
    let totp = totp_builder().digits(10).build().unwrap();
    for t in [0, 59, NOW, u64::MAX] {
        let code: OtpCode = totp.code_at(t);
        let digits = code.to_string();
        assert_no_code("OtpCode", &code, &digits);
        // Nor the value without its leading zeros.
        let value = digits.trim_start_matches('0');
        if value.len() >= 4 {
            assert_no_code("OtpCode", &code, value);
        }
    }
    let hotp = hotp_builder().build().unwrap();
    for c in 0..20 {
        let code = hotp.code(c);
        assert_no_code("OtpCode", &code, &code.to_string());
    }
}

#[test]
fn hashing_keys_hashers_hashes_and_tags() {
    let key = HashKey::new(KeyId(7), HASH_KEY).unwrap();
    assert_debug_redacted("HashKey", &key, HASH_KEY);
    let old = HashKey::new(KeyId(6), OLD_HASH_KEY).unwrap();
    let hasher = KeyedHasher::new(key).with_previous(old).unwrap();
    assert_debug_redacted("KeyedHasher (current)", &hasher, HASH_KEY);
    assert_debug_redacted("KeyedHasher (previous)", &hasher, OLD_HASH_KEY);

    let code = b"Zq9@wXv%K7#r";
    let hash: KeyedHash = hasher.hash(b"signin", code);
    let tag: Tag = hash.tag;
    assert_debug_redacted("KeyedHash (tag)", &hash, &tag.0);
    assert_debug_redacted("KeyedHash (key)", &hash, HASH_KEY);
    assert_debug_redacted("KeyedHash (hashed secret)", &hash, code);
    assert_debug_redacted("Tag", &tag, &tag.0);
    assert_debug_redacted("Tag", &Tag(*HASH_KEY), HASH_KEY);
    assert!(hasher.verify(b"signin", code, &hash).unwrap());
}

#[test]
fn locked_rng() {
    // Two generators from one seed: what the first produces is what the
    // second holds in its state and will produce next.
    for seed in [0, 7, 0xDEAD_BEEF_u64, u64::MAX] {
        let peek = LockedRng::seeded(seed);
        let shown = LockedRng::seeded(seed);
        let mut next = [0u8; 64];
        peek.fill(&mut next).unwrap();
        assert_debug_redacted("LockedRng::seeded", &shown, &next);
        assert_debug_redacted("LockedRng::seeded", &shown, &seed.to_le_bytes());
        assert_debug_redacted("LockedRng::seeded", &shown, &seed.to_be_bytes());
        assert_no_code("LockedRng::seeded", &shown, &seed.to_string());
    }
    // Any rand_core generator wrapped directly.
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    let key = *HASH_KEY;
    let peek = LockedRng::new(ChaCha20Rng::from_seed(key));
    let shown = LockedRng::new(ChaCha20Rng::from_seed(key));
    let mut next = [0u8; 64];
    peek.fill(&mut next).unwrap();
    assert_debug_redacted("LockedRng::new", &shown, &key);
    assert_debug_redacted("LockedRng::new", &shown, &next);
}

/// Malformed key URIs that still carry the seed, each hitting a different
/// error.
fn bad_uris(s: &str) -> Vec<String> {
    vec![
        format!("http://totp/a?secret={s}"),
        format!("otpauth://motp/a?secret={s}"),
        format!("otpauth://hotp/a?secret={s}&counter=1"),
        format!("otpauth://totp/a?secret={s}&counter=x#frag"),
        format!("otpauth://totp/?secret={s}"),
        format!("otpauth://totp/a:b:c?secret={s}"),
        format!("otpauth://totp/{s}:{s}:{s}?secret={s}"),
        format!("otpauth://totp/%20:a?secret={s}"),
        format!("otpauth://totp/a%FF{s}?secret={s}"),
        format!("otpauth://totp/a?secret={s}&secret={s}"),
        format!("otpauth://totp/a?secret={s}1"),
        format!("otpauth://totp/a?secret={s}%FF"),
        format!("otpauth://totp/a?secret={s}0{s}"),
        format!("otpauth://totp/a?secret={}", &s[..16]),
        format!("otpauth://totp/a?secret={s}&digits=5"),
        format!("otpauth://totp/a?secret={s}&digits={s}"),
        format!("otpauth://totp/a?secret={s}&period=0"),
        format!("otpauth://totp/a?secret={s}&period={s}"),
        format!("otpauth://totp/a?secret={s}&algorithm={s}"),
        format!("otpauth://totp/X:a?secret={s}&issuer={s}"),
        format!("otpauth://totp/a?secret={s}&issuer=%20&issuer={s}"),
        format!("otpauth://totp/a?secret={s}&issuer=a%3A{s}"),
        format!("otpauth://totp/a?secret={s}&encoder={s}"),
        format!("otpauth://totp/a?secret={s}&encoder=steam"),
        format!("otpauth://hotp/a?secret={s}"),
        format!("otpauth://hotp/a?secret={s}&counter={s}"),
        format!("otpauth://hotp/a?secret={s}&counter=-1"),
    ]
}

#[track_caller]
fn assert_error_redacted(uri: &str, secret: &[u8], err: &OtpError) {
    let mut texts = vec![format!("{err:?}"), format!("{err:#?}"), err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        texts.push(format!("{e:?}"));
        texts.push(e.to_string());
        source = e.source();
    }
    let wrapped = ninsho::Error::from(err.clone());
    texts.push(format!("{wrapped:?}"));
    texts.push(wrapped.to_string());
    for text in texts {
        let found = leaks(&text, secret);
        assert!(found.is_empty(), "{uri}: error leaks {found:?} in {text}");
    }
}

#[test]
fn uri_errors_do_not_carry_the_seed() {
    let s = b32(SEED);
    let mut checked = 0;
    for uri in bad_uris(&s) {
        let results = [
            Totp::from_uri(&uri).err(),
            Hotp::from_uri(&uri).err(),
            TotpEnrollment::from_uri(&uri).err(),
        ];
        assert!(results.iter().any(Option::is_some), "{uri} was accepted");
        for err in results.into_iter().flatten() {
            assert_error_redacted(&uri, SEED, &err);
            // The short-secret case: check the bytes it did carry.
            assert_error_redacted(&uri, &SEED[..10], &err);
            if let OtpError::Uri(u) = &err {
                let u: &UriError = u;
                for text in [format!("{u:?}"), u.to_string()] {
                    assert!(leaks(&text, SEED).is_empty(), "{uri}: {text}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} errors were checked");
}

#[test]
fn base32_errors_do_not_carry_the_seed() {
    let s = b32(SEED);
    for text in [
        format!("{s}1"),
        format!("{s}!"),
        format!("{s}A"),
        s[..16].to_owned(),
        format!("{s}\u{FF21}"),
    ] {
        let err = OtpSecret::from_base32(&text).unwrap_err();
        assert_error_redacted(&text, SEED, &err);
        assert_error_redacted(&text, &SEED[..10], &err);
    }
    let err = OtpSecret::from_bytes(SEED[..15].to_vec()).unwrap_err();
    assert_error_redacted("from_bytes", &SEED[..15], &err);
}

proptest! {
    /// Random seeds, not only the printable one above.
    #[test]
    fn random_seeds_never_print(
        bytes in prop::collection::vec(any::<u8>(), 16..=64),
        t in any::<u64>(),
    ) {
        let secret = OtpSecret::from_bytes(bytes.clone()).unwrap();
        let plain = format!("{:?}", bytes.as_slice());
        prop_assert!(leaks(&plain, &bytes).len() > 1);
        let totp = Totp::builder(secret.clone()).issuer("I").account("a").build().unwrap();
        let hotp = Hotp::builder(secret.clone()).account("a").counter(t).build().unwrap();
        let texts = [
            format!("{secret:?}"),
            format!("{:?}", SecretBytes::new(bytes.clone())),
            format!("{:?}", secret.to_base32()),
            format!("{:?}", SecretString::new(totp.to_uri())),
            format!("{:#?}", Totp::builder(secret.clone()).account("a")),
            format!("{totp:#?}"),
            format!("{:#?}", Hotp::builder(secret.clone()).account("a")),
            format!("{hotp:#?}"),
            format!("{:#?}", TotpEnrollment::with_totp(totp.clone())),
        ];
        for text in &texts {
            let found = leaks(text, &bytes);
            prop_assert!(found.is_empty(), "leaks {:?} in {}", found, text);
        }
        let code = totp.code_at(t);
        let digits = code.to_string();
        let shown = format!("{code:?}");
        prop_assert!(!shown.contains(&digits));
        if bytes.len() >= 32 {
            let key = HashKey::new(KeyId(1), &bytes).unwrap();
            let hasher = KeyedHasher::new(key.clone());
            let hash = hasher.hash(b"c", digits.as_bytes());
            for text in [format!("{key:?}"), format!("{hasher:#?}"), format!("{hash:#?}")] {
                let found = leaks(&text, &bytes);
                prop_assert!(found.is_empty(), "leaks {:?} in {}", found, text);
                let found = leaks(&text, &hash.tag.0);
                prop_assert!(found.is_empty(), "tag leaks {:?} in {}", found, text);
            }
        }
    }

    /// Errors from malformed URIs around a random seed never print it.
    #[test]
    fn random_seed_uri_errors_never_print(
        bytes in prop::collection::vec(any::<u8>(), 16..=64),
    ) {
        let s = b32(&bytes);
        for uri in bad_uris(&s) {
            for err in [Totp::from_uri(&uri).err(), Hotp::from_uri(&uri).err()]
                .into_iter()
                .flatten()
            {
                for text in [format!("{err:?}"), err.to_string()] {
                    let found = leaks(&text, &bytes);
                    prop_assert!(found.is_empty(), "{}: leaks {:?} in {}", uri, found, text);
                }
            }
        }
    }
}

// ------------------------------------------------------------ personal data

const MOBILE: &str = "+819012345678";
const EMAIL: &str = "taro.yamada@example.com";
const CALLER: &str = "203.0.113.7";

/// Collects every value whose `{:?}` or `{:#?}` shows the mobile number
/// (international, national or bare), the email address or the caller's
/// IP address, so one run names every leak.
#[derive(Default)]
struct Leaks(Vec<String>);

impl Leaks {
    fn check<T: std::fmt::Debug>(&mut self, what: &str, value: &T) {
        for text in [format!("{value:?}"), format!("{value:#?}")] {
            let squeezed = without_whitespace(&text).to_lowercase();
            for needle in [MOBILE, "09012345678", "9012345678", EMAIL, CALLER] {
                if squeezed.contains(needle) {
                    self.0.push(format!("{what} shows {needle} in {text}"));
                }
            }
        }
    }

    #[track_caller]
    fn assert_none(&self) {
        assert!(self.0.is_empty(), "{}", self.0.join("\n"));
    }
}

#[tokio::test]
async fn no_phone_number_email_address_or_caller_in_debug_after_a_journey() {
    let store = Arc::new(MemoryStore::new());
    let gateway = RecordingGateway::new();
    let events = RecordingEvents::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = two_factor("Example", store.clone(), &gateway, &clock, 11)
        .events(Arc::new(events.clone()))
        .email_as_second_factor(true)
        .build()
        .unwrap();
    let taro = AccountId::new("taro");
    let phone = Destination::phone(MOBILE).unwrap();
    let email = Destination::email(EMAIL).unwrap();

    let mut leaks = Leaks::default();

    // Sign-up with both contacts, the email's first send failing.
    gateway.fail_next(DeliveryErrorKind::Transient);
    let ticket = service
        .signup_start(EMAIL, "090-1234-5678", Some(CALLER))
        .await
        .unwrap();
    assert!(ticket.members[0].sent.is_none());
    leaks.check("VerificationTicket", &ticket);
    clock.advance(time::Duration::seconds(60));
    let resent = service.signup_resend(&ticket.id, 0, Some(CALLER)).await;
    leaks.check("Ticket (resent)", &resent);
    resent.unwrap();
    let progress = service
        .signup_verify(&ticket.id, 1, &secret_to(&gateway, MOBILE))
        .await
        .unwrap();
    leaks.check("Progress", &progress);
    service
        .signup_verify(&ticket.id, 0, &secret_to(&gateway, EMAIL))
        .await
        .unwrap();
    leaks.check("signup_status", &service.signup_status(&ticket.id).await);
    let views = service.signup_complete(&ticket.id, &taro).await.unwrap();
    leaks.check("ContactView", &views);

    // Two-step sign-in on, then a sign-in by SMS from the caller's address.
    let codes = service.enable_two_factor(&taro).await.unwrap();
    leaks.check("PlainCodes", &codes);
    let start = service.sign_in_begin(&taro, None).await.unwrap();
    leaks.check("SignInStart", &start);
    let SignInStart::Required { methods } = start else {
        panic!("two-step sign-in is on");
    };
    let ticket = service
        .sign_in_send_code(&taro, &methods[0], None, Some(CALLER))
        .await
        .unwrap();
    leaks.check("Ticket", &ticket);
    let code = secret_to(&gateway, MOBILE);
    let signed_in = service
        .sign_in_complete(
            &taro,
            Proof::Code {
                challenge: &ticket.challenge_id,
                code: &code,
            },
            Some("Firefox on Linux"),
            None,
        )
        .await
        .unwrap();
    leaks.check("SignedIn", &signed_in);
    leaks.check("ContactCheck", &service.contact_check(&taro).await);
    leaks.check("Contacts::list", &service.contacts(&taro).await.unwrap());

    // "I can't sign in": find the account by its number.
    let ticket = service
        .recover_start("090-1234-5678", Some(CALLER))
        .await
        .unwrap();
    let recovered = service
        .recover_verify(&ticket.challenge_id, &secret_to(&gateway, MOBILE))
        .await
        .unwrap();
    leaks.check("Recovered", &recovered);

    // A request with a caller key and a confirmation (for an email, the
    // whole address), as a host might log it before sending.
    let request = IssueRequest::new(email.clone(), Purpose::StepUp)
        .account(taro.clone())
        .caller(CALLER)
        .confirmation(EMAIL);
    leaks.check("IssueRequest", &request);
    let ticket = service.one_time_codes().send(request).await.unwrap();
    let verified = service
        .one_time_codes()
        .verify(
            &ticket.challenge_id,
            &secret_to(&gateway, EMAIL),
            &Purpose::StepUp,
            &email,
        )
        .await
        .unwrap();
    leaks.check("Verified", &verified);

    // The claims a contact change would write.
    let changes = ClaimChanges {
        claim: vec![phone.limit_key(), email.limit_key()],
        release: vec![phone.limit_key()],
    };
    leaks.check("ClaimChanges", &changes);

    // What the journey left behind: messages, attempts (one failed),
    // records, counters (keyed by destination and caller), claims, events.
    let messages = gateway.messages();
    assert!(messages.len() >= 5, "{}", messages.len());
    leaks.check("Message", &messages);
    let attempts = gateway.attempts();
    assert!(attempts.iter().any(|a| a.result.is_err()));
    leaks.check("Attempt", &attempts);
    leaks.check("RecordingGateway", &gateway);
    let record = store.challenge(&ticket.challenge_id).await.unwrap();
    leaks.check("ChallengeRecord", &record);
    let book = store.account_record(&taro).await.unwrap();
    leaks.check("AccountRecord", &book);
    leaks.check("MemoryStore", &store);
    leaks.check("TwoFactor", &service);
    leaks.check("Event", &events.events());

    leaks.assert_none();

    // Masked, not dropped: what is shown is still useful.
    let shown = format!("{:?}", messages[messages.len() - 1]);
    assert!(shown.contains("ta*********@example.com"), "{shown}");
    let shown = format!("{attempts:?}");
    assert!(shown.contains("+81 **-****-5678"), "{shown}");
    let shown = format!("{changes:?}");
    assert!(shown.contains("+81 **-****-5678"), "{shown}");
    let shown = format!("{store:?}");
    assert!(shown.contains("claims: 1"), "{shown}");
}

#[test]
fn a_proof_never_prints_what_the_user_typed() {
    let challenge = ninsho::model::ChallengeId::from_bytes([7; 16]);
    for proof in [
        Proof::Code {
            challenge: &challenge,
            code: "493817",
        },
        Proof::Authenticator { code: "493817" },
        Proof::RecoveryCode {
            code: "4938-17ab-cdef",
        },
    ] {
        for shown in [format!("{proof:?}"), format!("{proof:#?}")] {
            assert!(!shown.contains("4938"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
    }
}
