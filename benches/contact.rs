//! Reading phone numbers as people type them.
//!
//! - `lib_parse_*`: the floor, libphonenumber alone (`rlibphonenumber`):
//!   parse plain digits, validate, write E.164 and read the type;
//! - `policy_check_*`: `PhonePolicy::check` for SMS on the same number as a
//!   national form with hyphens, as full-width input with long-vowel marks,
//!   and as an international US number (fold, parse, validate, the E.164
//!   fixed-point guard, region and type checks);
//! - `destination_phone`: `Destination::phone`, the policy-free E.164 form.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ninsho::contact::{PhonePolicy, Region};
use ninsho::model::{Channel, Destination};
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, enums::Region as LibRegion};

fn lib_parse(
    text: &str,
    region: Option<LibRegion>,
) -> Option<(String, rlibphonenumber::PhoneNumberType)> {
    let number = PHONE_NUMBER_UTIL.parse(text, region).ok()?;
    number.is_valid().then(|| {
        (
            number.format_as(PhoneNumberFormat::E164).into_owned(),
            number.get_type(),
        )
    })
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("contact");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    g.bench_function("lib_parse_national", |b| {
        b.iter(|| lib_parse(black_box("09012345678"), Some(LibRegion::JP)))
    });
    g.bench_function("lib_parse_international", |b| {
        b.iter(|| lib_parse(black_box("+14155552671"), None))
    });

    let jp = PhonePolicy::default();
    let us = PhonePolicy::default().allow_region(Region::new("US").expect("US has metadata"));
    g.bench_function("policy_check_national", |b| {
        b.iter(|| jp.check(black_box("090-1234-5678"), Channel::Sms))
    });
    g.bench_function("policy_check_full_width", |b| {
        b.iter(|| jp.check(black_box("０９０ー１２３４ー５６７８"), Channel::Sms))
    });
    g.bench_function("policy_check_international", |b| {
        b.iter(|| us.check(black_box("+1 (415) 555-2671"), Channel::Sms))
    });
    g.bench_function("destination_phone", |b| {
        b.iter(|| Destination::phone(black_box("+81 90-1234-5678")))
    });
    g.finish();
}

criterion_group!(contact, benches);
criterion_main!(contact);
