//! Key URIs read and written the way authenticator apps do (issue 13),
//! through the public API only:
//!
//! - an `encoder` parameter (Steam's) is refused by name instead of giving
//!   codes the other side never takes;
//! - a blank `issuer=` counts as absent;
//! - 80-bit seeds (Google's `JBSWY3DPEHPK3PXP`, 16-character setup keys)
//!   are refused unless imported through a `danger_` function, then give
//!   the same codes as pyotp, can be stored and read back; nothing ninsho
//!   generates is short, and under 80 bits is refused everywhere;
//! - `uri_warnings` names the parameters common apps get wrong, and
//!   ninsho's own enrolment has none.

mod support;

use std::sync::Arc;

use ninsho::gateway::RecordingGateway;
use ninsho::model::AccountId;
use ninsho::otp::{
    Algorithm, DANGER_MIN_SECRET_LEN, Hotp, OtpError, OtpSecret, Totp, TotpEnrollment, UriError,
    UriWarning,
};
use ninsho::store::MemoryStore;
use ninsho::{LockedRng, ManualClock};

const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn steam(encoder: &str) -> OtpError {
    OtpError::Uri(UriError::UnsupportedEncoder {
        encoder: Some(encoder.to_owned()),
    })
}

// ---------------------------------------------------------------------------
// encoder
// ---------------------------------------------------------------------------

#[test]
fn a_steam_uri_is_refused_naming_the_encoder() {
    // pyotp reads this form as a Steam Guard entry (its `parse_uri`).
    let uri = format!("otpauth://totp/Steam:gaben?secret={SEED}&issuer=Steam&encoder=steam");
    let err = Totp::from_uri(&uri).unwrap_err();
    assert_eq!(err, steam("steam"));
    assert!(err.to_string().contains("`steam` encoder"), "{err}");
    assert_eq!(TotpEnrollment::from_uri(&uri).unwrap_err(), steam("steam"));
    // The opt-in for short seeds does not open this door.
    assert_eq!(
        Totp::danger_from_uri_allow_short_secret(&uri).unwrap_err(),
        steam("steam")
    );
    // Name matched in any case, value repeated as written; HOTP too.
    assert_eq!(
        Hotp::from_uri(&format!(
            "otpauth://hotp/a?secret={SEED}&counter=0&Encoder=STEAM"
        ))
        .unwrap_err(),
        steam("STEAM")
    );
    // A value that is not a short word is refused without being repeated.
    assert_eq!(
        Totp::from_uri(&format!("otpauth://totp/a?secret={SEED}&encoder={SEED}")).unwrap_err(),
        OtpError::Uri(UriError::UnsupportedEncoder { encoder: None })
    );
    // Through the service's error type, the same variant.
    let wrapped = ninsho::Error::from(err);
    assert!(matches!(
        wrapped,
        ninsho::Error::Otp(OtpError::Uri(UriError::UnsupportedEncoder { .. }))
    ));
}

// ---------------------------------------------------------------------------
// issuer
// ---------------------------------------------------------------------------

#[test]
fn an_empty_issuer_is_absent_with_or_without_a_label_prefix() {
    let with_prefix = Totp::from_uri(&format!(
        "otpauth://totp/Example:alice@example.com?secret={SEED}&issuer="
    ))
    .unwrap();
    assert_eq!(with_prefix.issuer(), Some("Example"));
    assert_eq!(with_prefix.account(), "alice@example.com");

    let without = Totp::from_uri(&format!(
        "otpauth://totp/alice@example.com?secret={SEED}&issuer="
    ))
    .unwrap();
    assert_eq!(without.issuer(), None);
    assert_eq!(without.account(), "alice@example.com");

    // Blank is empty too.
    let blank = Hotp::from_uri(&format!(
        "otpauth://hotp/Example:alice?secret={SEED}&counter=0&issuer=%20%20"
    ))
    .unwrap();
    assert_eq!(blank.issuer(), Some("Example"));

    // A real mismatch is still one.
    assert_eq!(
        Totp::from_uri(&format!(
            "otpauth://totp/Example:alice?secret={SEED}&issuer=Other"
        ))
        .unwrap_err(),
        OtpError::Uri(UriError::IssuerMismatch)
    );
}

// ---------------------------------------------------------------------------
// 80-bit seeds
// ---------------------------------------------------------------------------

/// TOTP codes (SHA-1, 6 digits, 30 s) at Unix times, and HOTP codes for
/// counters 0 to 3, of two 80-bit seeds. Computed with pyotp 2.12.1
/// (`TOTP(s).at(t)`, `HOTP(s).at(c)`, with `min_secret_length_bits`
/// lowered to 80 since pyotp refuses such seeds by default) and checked
/// against a direct HMAC-SHA-1 with Python's `hmac` module.
struct Vectors {
    base32: &'static str,
    totp: [(u64, &'static str); 6],
    hotp: [&'static str; 4],
}

const GOOGLE_EXAMPLE: Vectors = Vectors {
    // The Key Uri Format page's example, "Hello!" 0xDEADBEEF.
    base32: "JBSWY3DPEHPK3PXP",
    totp: [
        (59, "996554"),
        (1_111_111_109, "071271"),
        (1_234_567_890, "742275"),
        (1_700_000_000, "324550"),
        (2_000_000_000, "890699"),
        (20_000_000_000, "752434"),
    ],
    hotp: ["282760", "996554", "602287", "143627"],
};

const SIXTEEN_CHARACTERS: Vectors = Vectors {
    // 16 characters, as some services print setup keys (the first 16 of
    // the Key Uri Format page's second example).
    base32: "HXDMVJECJJWSRB3H",
    totp: [
        (59, "148434"),
        (1_111_111_109, "118279"),
        (1_234_567_890, "941793"),
        (1_700_000_000, "646635"),
        (2_000_000_000, "574984"),
        (20_000_000_000, "068585"),
    ],
    hotp: ["575371", "148434", "117349", "979407"],
};

#[test]
fn eighty_bit_seeds_are_refused_by_default() {
    for v in [&GOOGLE_EXAMPLE, &SIXTEEN_CHARACTERS] {
        let short = OtpError::SecretTooShort { len: 10 };
        assert_eq!(OtpSecret::from_base32(v.base32).unwrap_err(), short);
        let totp = format!(
            "otpauth://totp/Example:alice?secret={}&issuer=Example",
            v.base32
        );
        assert_eq!(Totp::from_uri(&totp).unwrap_err(), short);
        assert_eq!(TotpEnrollment::from_uri(&totp).unwrap_err(), short);
        let hotp = format!("otpauth://hotp/alice?secret={}&counter=0", v.base32);
        assert_eq!(Hotp::from_uri(&hotp).unwrap_err(), short);
    }
}

#[test]
fn eighty_bit_seeds_imported_on_purpose_give_pyotps_codes() {
    for v in [&GOOGLE_EXAMPLE, &SIXTEEN_CHARACTERS] {
        let uri = format!(
            "otpauth://totp/Example:alice?secret={}&issuer=Example",
            v.base32
        );
        let totp = Totp::danger_from_uri_allow_short_secret(&uri).unwrap();
        assert_eq!(totp.secret().len(), DANGER_MIN_SECRET_LEN);
        for (t, code) in v.totp {
            assert_eq!(totp.code_at(t).to_string(), code, "{} at {t}", v.base32);
            let m = totp.verify(code, t, None).unwrap();
            assert_eq!(m.step, t / 30);
        }

        let hotp = Hotp::danger_from_uri_allow_short_secret(&format!(
            "otpauth://hotp/alice?secret={}&counter=0",
            v.base32
        ))
        .unwrap();
        for (counter, code) in v.hotp.iter().enumerate() {
            let counter = counter as u64;
            assert_eq!(
                hotp.code(counter).to_string(),
                *code,
                "{} #{counter}",
                v.base32
            );
        }

        // The seed as a user would type it from a setup page: lower case,
        // in groups.
        let typed: String = v
            .base32
            .to_lowercase()
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        let secret = OtpSecret::danger_from_base32_allow_short(&typed).unwrap();
        let built = Totp::builder(secret).account("alice").build().unwrap();
        assert_eq!(built.code_at(v.totp[3].0).to_string(), v.totp[3].1);
    }
}

#[test]
fn an_imported_short_seed_can_be_stored_and_read_back() {
    let uri = "otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXP&issuer=Example";
    let app = Totp::danger_from_uri_allow_short_secret(uri).unwrap();
    let (t, code) = GOOGLE_EXAMPLE.totp[3];
    let accepted = app.verify(code, t, None).unwrap();

    // Stored as its URI.
    let stored = app.to_uri();
    let again = Totp::danger_from_uri_allow_short_secret(&stored).unwrap();
    assert_eq!(again.to_uri(), stored);
    // The replay rule holds across the round trip.
    assert!(again.verify(code, t, Some(accepted.step)).is_err());
    let next = again.code_at(t + 30).to_string();
    let m = again.verify(&next, t + 30, Some(accepted.step)).unwrap();
    assert_eq!(m.step, accepted.step + 1);

    // Stored as raw bytes.
    let bytes = app.secret().expose_secret().to_vec();
    assert!(OtpSecret::from_bytes(bytes.clone()).is_err());
    let secret = OtpSecret::danger_from_bytes_allow_short(bytes).unwrap();
    let rebuilt = Totp::builder(secret).account("alice").build().unwrap();
    assert_eq!(rebuilt.code_at(t).to_string(), code);

    // Nothing in the seed leaks through Debug.
    assert!(!format!("{again:?}").contains("JBSWY3DP"));
}

#[test]
fn under_eighty_bits_is_refused_even_on_purpose() {
    // 9 bytes: "123456789" (15 base32 characters).
    let nine = "GEZDGNBVGY3TQOI";
    let short = OtpError::SecretTooShort { len: 9 };
    assert_eq!(
        OtpSecret::danger_from_base32_allow_short(nine).unwrap_err(),
        short
    );
    assert_eq!(
        OtpSecret::danger_from_bytes_allow_short(b"123456789".to_vec()).unwrap_err(),
        short
    );
    assert_eq!(
        Totp::danger_from_uri_allow_short_secret(&format!("otpauth://totp/a?secret={nine}"))
            .unwrap_err(),
        short
    );
    assert_eq!(
        Hotp::danger_from_uri_allow_short_secret(&format!(
            "otpauth://hotp/a?secret={nine}&counter=0"
        ))
        .unwrap_err(),
        short
    );
}

#[test]
fn nothing_ninsho_generates_is_short() {
    let rng = LockedRng::seeded(13);
    for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        let secret = OtpSecret::generate(algorithm, &rng).unwrap();
        assert!(secret.len() >= 20, "{algorithm:?}");
        // Which the strict readers take back.
        assert!(OtpSecret::from_base32(secret.to_base32().expose_secret()).is_ok());
    }
    let enrolment = TotpEnrollment::start(&rng, "Example", "alice").unwrap();
    assert_eq!(enrolment.totp().secret().len(), 20);
    assert!(Totp::from_uri(enrolment.uri().expose_secret()).is_ok());
}

// ---------------------------------------------------------------------------
// Warnings
// ---------------------------------------------------------------------------

fn app(configure: impl FnOnce(ninsho::otp::TotpBuilder) -> ninsho::otp::TotpBuilder) -> Totp {
    let secret = OtpSecret::from_base32(SEED).unwrap();
    configure(Totp::builder(secret).issuer("Example").account("alice"))
        .build()
        .unwrap()
}

#[test]
fn parameters_common_apps_get_wrong_are_named() {
    assert!(app(|b| b).uri_warnings().is_empty());
    assert_eq!(
        app(|b| b.period(60)).uri_warnings(),
        [UriWarning::Period { period: 60 }]
    );
    assert_eq!(
        app(|b| b.digits(10)).uri_warnings(),
        [UriWarning::Digits { digits: 10 }]
    );
    assert_eq!(
        app(|b| b.algorithm(Algorithm::Sha256)).uri_warnings(),
        [UriWarning::Algorithm {
            algorithm: Algorithm::Sha256
        }]
    );
    // Written anyway: the warning does not change the URI.
    let slow = app(|b| b.period(60));
    assert!(slow.to_uri().ends_with("&period=60"));
    // A custom enrolment carries its authenticator's warnings.
    let enrolment = TotpEnrollment::with_totp(app(|b| b.digits(10)));
    assert_eq!(
        enrolment.uri_warnings(),
        [UriWarning::Digits { digits: 10 }]
    );
}

#[tokio::test]
async fn ninshos_own_enrolment_uris_have_no_warnings() {
    let rng = LockedRng::seeded(5);
    let enrolment = TotpEnrollment::start(&rng, "Example", "alice").unwrap();
    assert!(enrolment.uri_warnings().is_empty());

    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(1_700_000_000).unwrap();
    let service = support::two_factor("Example", Arc::new(MemoryStore::new()), &gateway, &clock, 9)
        .build()
        .unwrap();
    let setup = service
        .authenticator_start(&AccountId::new("alice"), "alice@example.com", None)
        .await
        .unwrap();
    let app = Totp::from_uri(setup.uri.expose_secret()).unwrap();
    assert!(app.uri_warnings().is_empty(), "{:?}", app.uri_warnings());
    assert_eq!(app.secret().len(), 20);
}
