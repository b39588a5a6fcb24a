//! No secret-bearing public type prints its secret under `Debug`, and no
//! error made from a URI that carries a seed prints the seed.
//!
//! "Prints the secret" is checked broadly: the base32 text (whole or any 8
//! consecutive characters), the raw bytes as text, and any 4 consecutive
//! bytes as a decimal or hex list or as contiguous hex, in `{:?}` and
//! `{:#?}`; for codes, the code's digits.

use ninsho::hash::{HashKey, KeyId, KeyedHash, KeyedHasher, Tag};
use ninsho::otp::{
    ConfirmedTotp, Hotp, HotpBuilder, OtpCode, OtpError, OtpSecret, Totp, TotpBuilder,
    TotpEnrollment, UriError,
};
use ninsho::{LockedRng, Random, SecretBytes, SecretString};
use proptest::prelude::*;

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
        format!("otpauth://totp/a?secret={s}&issuer=%20"),
        format!("otpauth://totp/a?secret={s}&issuer=a%3A{s}"),
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
