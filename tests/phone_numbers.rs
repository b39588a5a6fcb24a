//! Phone numbers and email addresses as people type them, through the
//! public API only.
//!
//! - a table of phone inputs as Japanese users type them (hyphens, spaces,
//!   full-width forms, `+81`, `+81 (0)`, national numbers) with the E.164
//!   form or the typed refusal expected under the default policy, for SMS
//!   and for voice;
//! - the same numbers under an operator policy that opens other countries;
//! - a table of email addresses with their normal form or refusal;
//! - property tests: no input makes the parsers panic, and an accepted
//!   number's E.164 form parses back to itself.
//!
//! CI runs the properties with `PROPTEST_CASES=256`.

use ninsho::contact::{
    AllowedRegions, ContactError, EmailRefusal, PhonePolicy, PhoneRefusal, Region,
};

use ninsho::model::{Channel, Destination, PhoneType};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// The phone table
// ---------------------------------------------------------------------------

/// What the default policy answers for one input on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Accepted, with this E.164 form and type.
    Yes(&'static str, PhoneType),
    /// Refused.
    No(PhoneRefusal),
}

use PhoneType::{FixedLine, Mobile};
use Want::{No, Yes};

const MOBILE_90: Want = Yes("+819012345678", Mobile);

fn region(code: &str) -> Option<Region> {
    Some(Region::new(code).unwrap())
}

fn foreign(code: &str) -> Want {
    No(PhoneRefusal::RegionNotAllowed {
        region: region(code),
    })
}

/// `(input, SMS, voice)` under `PhonePolicy::default()`.
fn table() -> Vec<(&'static str, Want, Want)> {
    use PhoneRefusal as R;
    let same = |w: Want| (w, w);
    let rows: Vec<(&'static str, (Want, Want))> = vec![
        // --- Mobile numbers, national form, every way of typing them ---
        ("090-1234-5678", same(MOBILE_90)),
        ("09012345678", same(MOBILE_90)),
        ("090 1234 5678", same(MOBILE_90)),
        ("  090-1234-5678  ", same(MOBILE_90)),
        ("０９０－１２３４－５６７８", same(MOBILE_90)),
        ("０９０１２３４５６７８", same(MOBILE_90)),
        ("０９０ー１２３４ー５６７８", same(MOBILE_90)), // kana-mode long vowel mark
        ("090ｰ1234ｰ5678", same(MOBILE_90)),              // half-width long vowel mark
        ("090‐1234‐5678", same(MOBILE_90)),              // U+2010 hyphen
        ("090–1234–5678", same(MOBILE_90)),              // U+2013 en dash
        ("090―1234―5678", same(MOBILE_90)),              // U+2015 horizontal bar
        ("090−1234−5678", same(MOBILE_90)),              // U+2212 minus sign
        ("090\u{3000}1234\u{3000}5678", same(MOBILE_90)),
        ("090\u{00A0}1234\u{00A0}5678", same(MOBILE_90)),
        ("(090) 1234-5678", same(MOBILE_90)),
        ("（０９０）１２３４－５６７８", same(MOBILE_90)),
        ("090.1234.5678", same(MOBILE_90)),
        ("\u{FEFF}090-1234-5678\u{200B}", same(MOBILE_90)),
        ("9012345678", same(MOBILE_90)), // the trunk 0 forgotten
        ("080-1111-2222", same(Yes("+818011112222", Mobile))),
        ("070-1234-5678", same(Yes("+817012345678", Mobile))),
        (
            "０７０ ９８７６ ５４３２",
            same(Yes("+817098765432", Mobile)),
        ),
        ("060-1234-5678", same(Yes("+816012345678", Mobile))), // the new 060 mobile range
        // --- Mobile numbers, international form ---
        ("+81 90-1234-5678", same(MOBILE_90)),
        ("+819012345678", same(MOBILE_90)),
        ("+81-90-1234-5678", same(MOBILE_90)),
        ("＋８１ ９０ １２３４ ５６７８", same(MOBILE_90)),
        ("＋８１－９０－１２３４－５６７８", same(MOBILE_90)),
        ("+81 (0)90-1234-5678", same(MOBILE_90)),
        ("+81(0)9012345678", same(MOBILE_90)),
        ("+81（０）90-1234-5678", same(MOBILE_90)),
        ("+81 090-1234-5678", same(MOBILE_90)), // trunk 0 kept by mistake
        ("+81 80 1111 2222", same(Yes("+818011112222", Mobile))),
        ("010-81-90-1234-5678", same(MOBILE_90)), // dialled from Japan with 010
        ("81-90-1234-5678", same(MOBILE_90)),     // the + forgotten
        // --- Landlines: voice yes, SMS no ---
        (
            "03-1234-5678",
            (
                No(R::LandlineCannotReceiveSms),
                Yes("+81312345678", FixedLine),
            ),
        ),
        (
            "０３－１２３４－５６７８",
            (
                No(R::LandlineCannotReceiveSms),
                Yes("+81312345678", FixedLine),
            ),
        ),
        (
            "(03) 1234-5678",
            (
                No(R::LandlineCannotReceiveSms),
                Yes("+81312345678", FixedLine),
            ),
        ),
        (
            "+81 3-1234-5678",
            (
                No(R::LandlineCannotReceiveSms),
                Yes("+81312345678", FixedLine),
            ),
        ),
        (
            "+81 (0)3-1234-5678",
            (
                No(R::LandlineCannotReceiveSms),
                Yes("+81312345678", FixedLine),
            ),
        ),
        (
            "06-6123-4567",
            (
                No(R::LandlineCannotReceiveSms),
                Yes("+81661234567", FixedLine),
            ),
        ),
        (
            "052-123-4567",
            (
                No(R::LandlineCannotReceiveSms),
                Yes("+81521234567", FixedLine),
            ),
        ),
        (
            "0465-12-3456",
            (
                No(R::LandlineCannotReceiveSms),
                Yes("+81465123456", FixedLine),
            ),
        ),
        // --- IP phones (050) ---
        ("050-1234-5678", same(No(R::IpPhone))),
        ("０５０－１２３４－５６７８", same(No(R::IpPhone))),
        ("+81 50-1234-5678", same(No(R::IpPhone))),
        // --- Pager / M2M (020) ---
        ("020-1234-5678", same(No(R::PagerOrM2m))),
        ("+81 20 1234 5678", same(No(R::PagerOrM2m))),
        // --- Toll-free (0120, 0800) ---
        ("0120-123-456", same(No(R::TollFree))),
        ("０１２０－４４４－４４４", same(No(R::TollFree))),
        ("+81 120 123 456", same(No(R::TollFree))),
        ("0800-123-4567", same(No(R::TollFree))),
        ("0800-123-456", same(No(R::InvalidNumber))), // one digit short
        // --- Navi Dial (0570), premium rate (0990), personal numbers ---
        ("0570-123-456", same(No(R::ServiceNumber))),
        ("0570-064-555", same(No(R::ServiceNumber))),
        ("0990-123-456", same(No(R::PremiumRate))),
        (
            "060-012-3456",
            same(No(R::TypeNotAllowed {
                kind: PhoneType::PersonalNumber,
            })),
        ),
        // --- Numbers that do not exist ---
        ("090-1234-567", same(No(R::InvalidNumber))),
        ("090-1234-56789", same(No(R::InvalidNumber))),
        ("090-0123-4567", same(No(R::InvalidNumber))),
        ("0180-12-3456", same(No(R::InvalidNumber))),
        ("0081-90-1234-5678", same(No(R::InvalidNumber))), // 00 is not Japan's prefix
        // --- Not numbers, too short, too long ---
        ("", same(No(R::Empty))),
        ("   ", same(No(R::Empty))),
        ("\u{3000}", same(No(R::Empty))),
        ("abc", same(No(R::NotANumber))),
        ("090-abcd-5678", same(No(R::NotANumber))),
        ("090-1234-567８a", same(No(R::NotANumber))),
        ("090-1234-5678 ext. 12", same(No(R::NotANumber))),
        ("090#1234", same(No(R::NotANumber))),
        ("tel:+81-90-1234-5678", same(No(R::NotANumber))),
        ("++81 90 1234 5678", same(No(R::NotANumber))),
        ("81+90 1234 5678", same(No(R::NotANumber))),
        ("(090 1234 5678", same(No(R::NotANumber))),
        ("---", same(No(R::NotANumber))),
        ("0", same(No(R::TooShort))),
        ("+81", same(No(R::TooShort))),
        ("1234567890123456789", same(No(R::TooLong))),
        ("+81 90 1234 5678 9012 3456", same(No(R::TooLong))),
        ("+999 1234 5678", same(No(R::UnknownCountryCode))),
        // --- Foreign numbers: refused, even when valid mobiles ---
        ("+1 415 555 2671", same(foreign("US"))),
        ("+1 (202) 555-0123", same(foreign("US"))),
        ("+1 604 555 1234", same(foreign("CA"))),
        ("+1 555 555 5555", same(foreign("US"))), // refused for its country first
        ("+44 7400 123456", same(foreign("GB"))),
        ("+44 (0)20 7946 0958", same(foreign("GB"))),
        ("+82 10-1234-5678", same(foreign("KR"))),
        ("+86 138 0013 8000", same(foreign("CN"))),
        ("＋８６ １３８ ００１３ ８０００", same(foreign("CN"))),
        (
            "+800 1234 5678",
            same(No(R::RegionNotAllowed { region: None })),
        ),
    ];
    rows.into_iter().map(|(i, (s, v))| (i, s, v)).collect()
}

type Answer = Result<(String, PhoneType), PhoneRefusal>;

fn answer(policy: &PhonePolicy, input: &str, channel: Channel) -> Answer {
    policy
        .check(input, channel)
        .map(|n| (n.e164().to_owned(), n.phone_type()))
}

fn expected(want: Want) -> Answer {
    match want {
        Yes(e164, kind) => Ok((e164.to_owned(), kind)),
        No(refusal) => Err(refusal),
    }
}

#[test]
fn the_table_is_big_enough() {
    assert!(table().len() >= 60, "{} rows", table().len());
}

#[test]
fn default_policy_sms_and_voice() {
    let policy = PhonePolicy::default();
    let mut failures = Vec::new();
    for (input, sms, voice) in table() {
        for (channel, want) in [(Channel::Sms, sms), (Channel::Voice, voice)] {
            let (got, want) = (answer(&policy, input, channel), expected(want));
            if got != want {
                failures.push(format!(
                    "{input:?} by {channel}: got {got:?}, want {want:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn parse_accepts_every_type_of_an_allowed_region() {
    // `parse` checks the number and its region, not its type.
    let policy = PhonePolicy::default();
    for (input, e164, kind) in [
        ("03-1234-5678", "+81312345678", PhoneType::FixedLine),
        ("050-1234-5678", "+815012345678", PhoneType::Voip),
        ("020-1234-5678", "+812012345678", PhoneType::Pager),
        ("0120-123-456", "+81120123456", PhoneType::TollFree),
        ("0570-123-456", "+81570123456", PhoneType::Uan),
        ("0990-123-456", "+81990123456", PhoneType::PremiumRate),
    ] {
        let n = policy.parse(input).unwrap();
        assert_eq!((n.e164(), n.phone_type()), (e164, kind), "{input}");
        assert_eq!(n.region(), Some(Region::JP));
        assert_eq!(n.country_code(), 81);
    }
}

#[test]
fn email_channel_is_not_for_phones() {
    let policy = PhonePolicy::default();
    assert_eq!(
        policy.check("090-1234-5678", Channel::Email),
        Err(PhoneRefusal::WrongChannel {
            channel: Channel::Email
        })
    );
    let n = policy.parse("090-1234-5678").unwrap();
    assert!(policy.check_number(&n, Channel::Email).is_err());
}

#[test]
fn operator_opens_other_countries() {
    let us = Region::new("US").unwrap();
    let gb = Region::new("gb").unwrap();
    // Allowing the regions is enough: US numbers, which do not say whether
    // they are mobile, reach SMS with the default types.
    let policy = PhonePolicy::default().allow_region(us).allow_region(gb);
    let ok = |input: &str| {
        policy
            .check(input, Channel::Sms)
            .map(|n| n.e164().to_owned())
    };
    assert_eq!(ok("+1 415 555 2671").unwrap(), "+14155552671");
    assert_eq!(ok("+44 7400 123456").unwrap(), "+447400123456");
    assert_eq!(ok("090-1234-5678").unwrap(), "+819012345678");
    assert_eq!(
        ok("+44 (0)20 7946 0958"),
        Err(PhoneRefusal::LandlineCannotReceiveSms)
    );
    // Canada shares +1 with the US but is not allowed.
    assert_eq!(
        ok("+1 604 555 1234"),
        Err(PhoneRefusal::RegionNotAllowed {
            region: region("CA")
        })
    );
    // An invalid +1 number is now judged as a number.
    assert_eq!(ok("+1 555 555 5555"), Err(PhoneRefusal::InvalidNumber));
    assert_eq!(
        ok("+82 10-1234-5678").unwrap_err().code(),
        "region_not_allowed"
    );
}

/// The inputs the comparison with libphonenumber found misread before
/// (issue 13): each is read as libphonenumber reads it, and none reaches a
/// stranger's phone.
#[test]
fn misreadings_found_against_libphonenumber() {
    let jp = PhonePolicy::default();
    // A doubled trunk `0` is not a mobile number with the extra `0` dropped.
    assert_eq!(
        jp.check("0090-1234-5678", Channel::Sms).unwrap_err().code(),
        "invalid_number"
    );
    // The national-only free dial number stays itself, not an Osaka
    // landline (+81 6-6389-4969) the voice fallback would call.
    let any = PhonePolicy::default().allow_any_region();
    // It can only be dialled inside Japan, so no gateway can reach it:
    // refused whatever types a policy allows.
    let free = any.parse("0066-3894-969").unwrap();
    assert_eq!(
        (free.e164(), free.phone_type(), free.is_domestic_only()),
        ("+8100663894969", PhoneType::TollFree, true)
    );
    let all_types = any.clone().voice_types([PhoneType::TollFree]);
    assert_eq!(
        all_types.check("0066-3894-969", Channel::Voice),
        Err(PhoneRefusal::DomesticOnly)
    );
    assert_eq!(
        Destination::phone("+81 0066 3894 969").unwrap_err().code(),
        "domestic_only"
    );
    // A direction override inside a number would show it reversed: the
    // screen would show one number and the code go to another.
    assert_eq!(
        jp.parse("+81 90 \u{202E}8765 4321"),
        Err(PhoneRefusal::NotANumber)
    );
    // Marks a copy from a chat app wraps a number in are dropped.
    assert_eq!(
        jp.parse("\u{202A}+81 90-1234-5678\u{202C}").unwrap().e164(),
        "+819012345678"
    );
    // A digit more than free dial numbers have.
    assert!(jp.parse("012012628471").is_err());
    assert!(jp.parse("0120-126-284").is_ok());
    // `(+81)` as some people write it.
    assert_eq!(
        jp.check("(+81) 90 1234 5678", Channel::Sms).unwrap().e164(),
        "+819012345678"
    );
    // Italian numbers have a region, and their leading `0` stays.
    let it = any.parse("+39 02 1234 5678").unwrap();
    assert_eq!((it.e164(), it.region()), ("+390212345678", region("IT")));
    assert_eq!(
        any.parse("+39 (0)2 1234 5678").unwrap().e164(),
        "+390212345678"
    );
    // Russian 8 800 numbers are free phone numbers, written nationally.
    let ru = PhonePolicy::default()
        .default_region(Region::new("RU").unwrap())
        .allow_any_region();
    let free = ru.parse("8 800 555 35 35").unwrap();
    assert_eq!(
        (free.e164(), free.phone_type()),
        ("+78005553535", PhoneType::TollFree)
    );
}

#[test]
fn any_region_with_the_default_types() {
    let policy = PhonePolicy::default().allow_any_region();
    assert_eq!(policy.allowed_regions, AllowedRegions::Any);
    let n = policy.check("+82 10-1234-5678", Channel::Sms).unwrap();
    assert_eq!(n.e164(), "+821012345678");
    assert_eq!(n.region(), region("KR"));
    assert_eq!(n.masked(), "+82 **-****-5678");
    // US numbers do not say whether they are mobile; the default types
    // let them try SMS.
    assert_eq!(
        policy
            .check("+1 415 555 2671", Channel::Sms)
            .map(|n| n.phone_type()),
        Ok(PhoneType::FixedLineOrMobile)
    );
    // A policy that wants proven mobiles only says so.
    assert_eq!(
        policy
            .clone()
            .sms_types([PhoneType::Mobile])
            .check("+1 415 555 2671", Channel::Sms),
        Err(PhoneRefusal::TypeNotAllowed {
            kind: PhoneType::FixedLineOrMobile
        })
    );
    assert!(policy.check("+1 415 555 2671", Channel::Voice).is_ok());
    assert_eq!(
        policy.check("+800 1234 5678", Channel::Voice),
        Err(PhoneRefusal::TollFree)
    );
    // National numbers still read as Japanese.
    assert_eq!(
        policy.check("090-1234-5678", Channel::Sms).unwrap().e164(),
        "+819012345678"
    );
}

#[test]
fn default_region_can_change() {
    let kr = Region::new("KR").unwrap();
    let policy = PhonePolicy::default().default_region(kr).only_regions([kr]);
    let n = policy.check("010-1234-5678", Channel::Sms).unwrap();
    assert_eq!(n.e164(), "+821012345678");
    assert_eq!(n.masked_national(), "***-****-5678");
    assert_eq!(
        policy.check("090-1234-5678", Channel::Sms),
        Err(PhoneRefusal::InvalidNumber)
    );
}

#[test]
fn voice_only_mobile_policy() {
    let policy = PhonePolicy::default().voice_types([PhoneType::Mobile]);
    assert_eq!(
        policy.check("03-1234-5678", Channel::Voice),
        Err(PhoneRefusal::TypeNotAllowed {
            kind: PhoneType::FixedLine
        })
    );
}

#[test]
fn stored_destinations_are_rechecked() {
    let policy = PhonePolicy::default();
    let landline = Destination::phone("+81 3-1234-5678").unwrap();
    assert_eq!(
        policy.check_destination(&landline, Channel::Sms),
        Err(PhoneRefusal::LandlineCannotReceiveSms)
    );
    assert!(policy.check_destination(&landline, Channel::Voice).is_ok());
    let email = Destination::email("taro@example.com").unwrap();
    assert_eq!(
        policy.check_destination(&email, Channel::Sms),
        Err(PhoneRefusal::NotANumber)
    );
}

#[test]
fn parsed_numbers_mask_and_convert() {
    let n = PhonePolicy::default()
        .check("０９０－１２３４－５６７８", Channel::Sms)
        .unwrap();
    assert_eq!(n.masked(), "+81 **-****-5678");
    assert_eq!(n.masked_national(), "***-****-5678");
    assert_eq!(n.international(), "+81 90-1234-5678");
    assert_eq!(n.national(), "090-1234-5678");
    let debug = format!("{n:?}");
    assert!(!debug.contains("1234"), "{debug}");
    let d = n.destination();
    assert_eq!(d, Destination::phone("+81 90-1234-5678").unwrap());
    assert_eq!(d.masked(), n.masked());
    assert_eq!(d.masked_national(), n.masked_national());
    assert_eq!(Destination::from(n), d);
}

#[test]
fn refusals_are_contact_errors_with_codes() {
    let refusal = PhonePolicy::default()
        .check("03-1234-5678", Channel::Sms)
        .unwrap_err();
    assert_eq!(refusal.code(), "landline_cannot_receive_sms");
    let contact = ContactError::from(refusal);
    assert_eq!(contact, ContactError::Phone(refusal));
    assert_eq!(contact.code(), "landline_cannot_receive_sms");
    let error = ninsho::Error::from(contact);
    assert!(matches!(
        error,
        ninsho::Error::Contact(ContactError::Phone(_))
    ));
    // Refusals carry no digits.
    assert!(!format!("{refusal:?} {refusal}").contains("1234"));
}

#[test]
fn destination_phone_is_policy_free() {
    for (input, e164) in [
        ("+81 3-1234-5678", "+81312345678"),
        ("+81 50-1234-5678", "+815012345678"),
        ("+81 20-1234-5678", "+812012345678"),
        ("+81 (0)90-1234-5678", "+819012345678"),
        ("＋８１ ９０－１２３４－５６７８", "+819012345678"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("+44 7400 123456", "+447400123456"),
        ("+800 1234 5678", "+80012345678"),
    ] {
        assert_eq!(
            Destination::phone(input).unwrap().address(),
            e164,
            "{input}"
        );
    }
    for (input, refusal) in [
        ("090-1234-5678", PhoneRefusal::MissingCountryCode),
        ("+999 1234 5678", PhoneRefusal::UnknownCountryCode),
        ("+81 90-abcd-5678", PhoneRefusal::NotANumber),
        ("", PhoneRefusal::Empty),
    ] {
        assert_eq!(
            Destination::phone(input),
            Err(ContactError::Phone(refusal)),
            "{input}"
        );
    }
}

#[test]
fn policy_serialises_declaratively() {
    let json = r#"{
        "allowed_regions": {"only": ["JP", "US"]},
        "sms_types": ["mobile", "fixed_line_or_mobile"]
    }"#;
    let policy: PhonePolicy = serde_json::from_str(json).unwrap();
    assert_eq!(policy.default_region, Region::JP);
    assert!(policy.check("+1 415 555 2671", Channel::Sms).is_ok());
    assert!(serde_json::from_str::<PhonePolicy>(r#"{"default_region":"XX"}"#).is_err());
    let back: PhonePolicy = serde_json::from_str(&serde_json::to_string(&policy).unwrap()).unwrap();
    assert_eq!(back, policy);
}

// ---------------------------------------------------------------------------
// Email addresses
// ---------------------------------------------------------------------------

#[test]
fn email_table() {
    let ok: &[(&str, &str)] = &[
        ("taro@example.com", "taro@example.com"),
        (" Taro.Yamada@Example.COM ", "Taro.Yamada@example.com"),
        ("\u{3000}taro@example.jp\u{3000}", "taro@example.jp"),
        ("taro+2fa@mail.example.co.jp", "taro+2fa@mail.example.co.jp"),
        ("t_a-r.o@sub-domain.example", "t_a-r.o@sub-domain.example"),
        ("TARO@XN--WGV71A119E.JP", "TARO@xn--wgv71a119e.jp"),
        ("a@b.jp", "a@b.jp"),
        ("o'brien@example.ie", "o'brien@example.ie"),
    ];
    for (input, address) in ok {
        let d = Destination::email(input).unwrap();
        assert_eq!(d.address(), *address, "{input}");
    }
    let long_local = format!("{}@example.com", "a".repeat(65));
    let long_domain = format!("a@{}.jp", vec!["abcdefghi"; 26].join("."));
    let long_address = format!(
        "{}@{}.jp",
        "a".repeat(64),
        vec!["b".repeat(60); 4].join(".")
    );
    let refused: &[(&str, EmailRefusal)] = &[
        ("", EmailRefusal::Empty),
        ("   ", EmailRefusal::Empty),
        ("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ", EmailRefusal::FullWidth),
        ("taro＠example.com", EmailRefusal::FullWidth),
        ("taro example.com", EmailRefusal::MissingAt),
        ("taro.example.com", EmailRefusal::MissingAt),
        ("@example.com", EmailRefusal::MissingLocalPart),
        (&long_local, EmailRefusal::LocalPartTooLong),
        ("ta ro@example.com", EmailRefusal::InvalidLocalPart),
        ("a@b@example.com", EmailRefusal::InvalidLocalPart),
        (".taro@example.com", EmailRefusal::InvalidLocalPart),
        ("taro.@example.com", EmailRefusal::InvalidLocalPart),
        ("ta..ro@example.com", EmailRefusal::InvalidLocalPart),
        ("\"taro\"@example.com", EmailRefusal::InvalidLocalPart),
        ("たろう@example.com", EmailRefusal::InvalidLocalPart),
        ("taro@", EmailRefusal::MissingDomain),
        ("taro@例え.jp", EmailRefusal::NonAsciiDomain),
        (&long_domain, EmailRefusal::DomainTooLong),
        (&long_address, EmailRefusal::TooLong),
        ("taro@localhost", EmailRefusal::InvalidDomain),
        ("taro@-example.com", EmailRefusal::InvalidDomain),
        ("taro@example-.com", EmailRefusal::InvalidDomain),
        ("taro@example..com", EmailRefusal::InvalidDomain),
        ("taro@example.com.", EmailRefusal::InvalidDomain),
        ("taro@exa_mple.com", EmailRefusal::InvalidDomain),
        ("taro@[192.0.2.1]", EmailRefusal::InvalidDomain),
        ("taro@192.0.2.1", EmailRefusal::InvalidDomain),
    ];
    for (input, refusal) in refused {
        assert_eq!(
            Destination::email(input),
            Err(ContactError::Email(*refusal)),
            "{input}"
        );
        assert!(!refusal.code().is_empty());
    }
}

#[test]
fn email_masks() {
    let d = Destination::email("taro.yamada@example.com").unwrap();
    assert_eq!(d.masked(), "ta*********@example.com");
    assert_eq!(
        Destination::email("tanaka@example.com").unwrap().masked(),
        "ta****@example.com"
    );
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// Strings made of what appears in typed phone numbers, plus some noise.
fn phone_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::char::range('0', '9').prop_map(String::from),
        2 => proptest::char::range('０', '９').prop_map(String::from),
        2 => prop::sample::select(vec![
            "+", "＋", "-", "－", "ー", "ｰ", "‐", "―", "−", " ", "\u{3000}", "\u{00A0}",
            "(", ")", "（", "）", ".", "/", "(0)", "+81", "+81 (0)", "010", "00", "81",
            "\u{200B}", "\u{FEFF}", "#", "*", "x", "ext", "tel:", "あ", "é",
        ])
        .prop_map(String::from),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// `+` and digits, the shape that reaches libphonenumber.
fn plus_digits() -> impl Strategy<Value = String> {
    (any::<bool>(), "[0-9]{0,19}").prop_map(|(plus, d)| if plus { format!("+{d}") } else { d })
}

fn policies() -> Vec<PhonePolicy> {
    vec![
        PhonePolicy::default(),
        PhonePolicy::default()
            .allow_any_region()
            .sms_types([PhoneType::Mobile, PhoneType::FixedLineOrMobile]),
    ]
}

/// Runs every parser on `s`; checks that accepted numbers are fixed points.
fn exercise(s: &str) -> Result<(), TestCaseError> {
    for policy in policies() {
        for channel in [Channel::Sms, Channel::Voice, Channel::Email] {
            let _ = policy.check(s, channel);
        }
        if let Ok(n) = policy.parse(s) {
            let again = policy.parse(n.e164());
            prop_assert_eq!(
                again.as_ref().map(|m| m.e164()),
                Ok(n.e164()),
                "{:?} → {}",
                s,
                n.e164()
            );
            prop_assert_eq!(again.map(|m| m.phone_type()), Ok(n.phone_type()));
            // A number dialable only from inside its country is parsed (as
            // libphonenumber does) but is no destination to send to.
            let d = Destination::phone(n.e164());
            if n.is_domestic_only() {
                prop_assert!(
                    matches!(d, Err(ContactError::Phone(PhoneRefusal::DomesticOnly))),
                    "{:?}: domestic-only {} became a destination",
                    s,
                    n.e164()
                );
            } else {
                prop_assert_eq!(d.as_ref().map(Destination::address), Ok(n.e164()));
            }
            let masked = n.masked();
            prop_assert!(masked.starts_with('+'));
            let last4 = &n.e164()[n.e164().len() - 4..];
            prop_assert!(masked.ends_with(last4) || masked.matches('*').count() >= 4);
            let _ = n.masked_national();
        }
    }
    if let Ok(d) = Destination::phone(s) {
        let again = Destination::phone(d.address());
        prop_assert_eq!(again.as_ref().map(Destination::address), Ok(d.address()));
        let _ = (d.masked(), d.masked_national(), format!("{d:?}"));
    }
    if let Ok(d) = Destination::email(s) {
        let again = Destination::email(d.address());
        prop_assert_eq!(again.as_ref().map(Destination::address), Ok(d.address()));
        let _ = d.masked();
    }
    Ok(())
}

proptest! {
    #[test]
    fn no_string_panics(s in any::<String>()) {
        exercise(&s)?;
    }

    #[test]
    fn no_phone_like_string_panics(s in phone_like()) {
        exercise(&s)?;
    }

    #[test]
    fn no_digit_string_panics(s in plus_digits()) {
        exercise(&s)?;
    }

    #[test]
    fn japanese_mobiles_in_any_typing(
        prefix in prop::sample::select(vec!["70", "80", "90"]),
        first in 1u32..=9,
        rest in 0u32..10_000_000,
        style in 0usize..5,
    ) {
        let national = format!("0{prefix}{first}{rest:07}");
        let e164 = format!("+81{}", &national[1..]);
        let (a, b, c) = (&national[..3], &national[3..7], &national[7..]);
        let typed = match style {
            0 => format!("{a}-{b}-{c}"),
            1 => format!("{a}ー{b}ー{c}")
                .chars()
                .map(|ch| ch.to_digit(10).and_then(|d| char::from_u32(0xFF10 + d)).unwrap_or(ch))
                .collect(),
            2 => format!("+81 {}-{b}-{c}", &a[1..]),
            3 => format!("+81 (0){}-{b}-{c}", &a[1..]),
            _ => format!("({a}) {b} {c}"),
        };
        let n = PhonePolicy::default().check(&typed, Channel::Sms);
        prop_assert_eq!(n.as_ref().map(|n| n.e164()), Ok(e164.as_str()), "{}", typed);
        prop_assert_eq!(n.map(|n| n.masked_national()), Ok(format!("***-****-{c}")));
    }
}
