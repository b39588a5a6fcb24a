//! ninsho's phone parsing against Google's libphonenumber, on the corpus in
//! `tests/reference/phone/` (12,000 inputs: every region's example numbers
//! of every type and a variation of each, written nationally, with `+`,
//! `+cc (0)`, `(+cc)`, hyphens, spaces, full-width and an international
//! prefix; near-misses; Japanese input-method forms; invisible marks around
//! and inside numbers). The verdicts in the
//! corpus come from the Python port `phonenumbers`; `generate.py` beside it
//! says how to write it again for new metadata.
//!
//! The rules checked:
//! - ninsho never reads a different number than libphonenumber, and never
//!   accepts a number libphonenumber calls invalid;
//! - the named cases that found faults before, and ninsho's folding of
//!   Japanese input, agree on every case;
//! - every other verdict (accepted or refused; E.164, type, region, and
//!   whether the number can be dialled from abroad) is the same, but for
//!   ninsho's deliberate refusals: "numbers" longer than E.164's 15 digits,
//!   and numbers libphonenumber completes with a digit that was not typed.
//!
//! The checked-in corpus was written with the metadata version the locked
//! `rlibphonenumber` embeds; after an update that brings new metadata, write
//! it again with the matching `phonenumbers` (see `generate.py`).
//! `NINSHO_PHONE_CORPUS=path` checks another corpus instead (for example one
//! written with the metadata of another version): then the well-formed
//! verdicts need only agree on 99.9 %, since numbering plans change between
//! metadata versions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ninsho::contact::{PhonePolicy, Region};

const CORPUS: &str = include_str!("reference/phone/corpus.tsv");

/// What one side read: `refused`, or `valid` with E.164, type and region.
fn ninsho(region: &str, input: &str) -> Vec<String> {
    let Some(region) = Region::new(region) else {
        return vec!["no_region".into()];
    };
    let policy = PhonePolicy::default()
        .default_region(region)
        .allow_any_region();
    match policy.parse(input) {
        Ok(number) => vec![
            "valid".into(),
            number.e164().into(),
            number.phone_type().as_str().into(),
            number
                .region()
                .map_or_else(|| "001".to_owned(), |r| r.to_string()),
            if number.is_domestic_only() {
                "domestic"
            } else {
                "intl"
            }
            .into(),
        ],
        Err(_) => vec!["refused".into()],
    }
}

/// How many digits the input has, half- or full-width.
fn typed_digits(input: &str) -> usize {
    input
        .chars()
        .filter(|c| c.is_ascii_digit() || ('\u{FF10}'..='\u{FF19}').contains(c))
        .count()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Same,
    /// Both accept, with different E.164 forms: never allowed.
    DifferentNumber,
    /// ninsho accepts what libphonenumber refuses: never allowed.
    AcceptsInvalid,
    /// Same number, another type or region.
    OtherTypeOrRegion,
    /// ninsho refuses a number libphonenumber accepts.
    RefusesValid,
}

fn compare(want: &[&str], got: &[String]) -> Outcome {
    let same = want.len() == got.len() && want.iter().zip(got).all(|(w, g)| w == g);
    match (want.first(), got.first().map(String::as_str)) {
        _ if same => Outcome::Same,
        (Some(&"valid"), Some("valid"))
            if want.get(1) != got.get(1).map(String::as_str).as_ref() =>
        {
            Outcome::DifferentNumber
        }
        (Some(&"valid"), Some("valid")) => Outcome::OtherTypeOrRegion,
        (_, Some("valid")) => Outcome::AcceptsInvalid,
        _ => Outcome::RefusesValid,
    }
}

#[test]
fn agrees_with_libphonenumber() {
    let (corpus, strict) = match std::env::var("NINSHO_PHONE_CORPUS") {
        Ok(path) => (
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
            false,
        ),
        Err(_) => (CORPUS.to_owned(), true),
    };
    let mut counts: BTreeMap<(&str, Outcome), usize> = BTreeMap::new();
    let mut faults = String::new();
    let mut others = String::new();
    let mut rows = 0;
    for line in corpus.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [group, class, region, input, want @ ..] = fields.as_slice() else {
            panic!("malformed corpus line: {line:?}");
        };
        rows += 1;
        let got = ninsho(region, input);
        let outcome = compare(want, &got);
        *counts.entry((group, outcome)).or_default() += 1;
        if outcome == Outcome::Same {
            continue;
        }
        let must_agree = matches!(*group, "named" | "folding" | "marks");
        let forbidden = matches!(outcome, Outcome::DifferentNumber | Outcome::AcceptsInvalid);
        // Refused on purpose: more than E.164's 15 digits, or a number
        // libphonenumber completes with a digit the user did not type
        // (Norfolk Island's `+672 1…` read as `+672 31…`).
        let deliberate = outcome == Outcome::RefusesValid
            && want
                .get(1)
                .is_some_and(|e164| e164.len() > 16 || e164.len() - 1 > typed_digits(input));
        let out = if must_agree || forbidden || (strict && !deliberate) {
            &mut faults
        } else {
            &mut others
        };
        let _ = writeln!(
            out,
            "{group}/{class} {region} {input:?}: libphonenumber {want:?}, ninsho {got:?}"
        );
    }
    assert!(rows > 10_000, "the corpus has only {rows} rows");

    let well_formed: usize = counts
        .iter()
        .filter(|((group, _), _)| *group == "well_formed")
        .map(|(_, n)| n)
        .sum();
    let same = counts
        .get(&("well_formed", Outcome::Same))
        .copied()
        .unwrap_or(0);
    let agreement = same as f64 / well_formed as f64;
    println!("{rows} inputs; per group and outcome: {counts:?}");
    println!(
        "well-formed agreement: {same}/{well_formed} = {:.3} %",
        agreement * 100.0
    );
    println!("other differences (allowed):\n{others}");

    assert!(
        faults.is_empty(),
        "disagreements that must not happen (if the metadata changed, write the corpus \
         again: tests/reference/phone/generate.py):\n{faults}"
    );
    assert!(
        agreement >= 0.999,
        "well-formed agreement {:.3} % is under 99.9 %",
        agreement * 100.0
    );
}
