#!/usr/bin/env python3
"""Writes the phone-number corpus that `tests/phone_reference.rs` checks
ninsho against: inputs written the ways people write numbers, each with what
Google's libphonenumber (through its Python port `phonenumbers`) reads.

Re-run (the metadata version must match the one the Rust crate embeds; the
test prints both):

    python3 -m venv /tmp/pn && /tmp/pn/bin/pip install phonenumbers==9.0.42
    /tmp/pn/bin/python tests/reference/phone/generate.py > tests/reference/phone/corpus.tsv

`phonenumbers` 9.0.42 carries the metadata of `rlibphonenumber` 2.2.15.

Each line: group, class, default region, input, then libphonenumber's
verdict: `valid` with E.164, type and region (`001` for non-geographic
numbers), or `refused`. Tab-separated, UTF-8. Groups: `well_formed` (a
number written one of the ways people write numbers; it may still be an
unassigned number), `malformed` (a digit too many or too few, a doubled
trunk prefix), `named` (the cases that found faults before), `folding`
(Japanese input that libphonenumber does not read, with the verdict for the
same number typed plainly) and `marks` (invisible direction and format
marks around and inside numbers). A valid verdict ends with `intl`, or
`domestic` for a number that can only be dialled inside its country. The corpus is seeded: the same package version
writes the same file.
"""

import random
import sys

import phonenumbers as pn
from phonenumbers import PhoneNumberFormat as F
from phonenumbers import PhoneNumberType as T

TYPE_NAMES = {
    T.FIXED_LINE: "fixed_line",
    T.MOBILE: "mobile",
    T.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    T.TOLL_FREE: "toll_free",
    T.PREMIUM_RATE: "premium_rate",
    T.SHARED_COST: "shared_cost",
    T.VOIP: "voip",
    T.PERSONAL_NUMBER: "personal_number",
    T.PAGER: "pager",
    T.UAN: "uan",
    T.VOICEMAIL: "voicemail",
    T.UNKNOWN: "unknown",
}
TYPES = [t for t in TYPE_NAMES if t not in (T.FIXED_LINE_OR_MOBILE, T.UNKNOWN)]

rng = random.Random(13)


def verdict(text, region):
    try:
        number = pn.parse(text, region)
    except pn.NumberParseException:
        return ["refused"]
    if number.extension or not pn.is_valid_number(number):
        return ["refused"]
    return [
        "valid",
        pn.format_number(number, F.E164),
        TYPE_NAMES[pn.number_type(number)],
        pn.region_code_for_number(number) or "001",
        "intl" if pn.can_be_internationally_dialled(number) else "domestic",
    ]


def full_width(text):
    out = []
    for c in text:
        if "!" <= c <= "~":
            out.append(chr(ord(c) + 0xFEE0))
        elif c == " ":
            out.append("\u3000")
        else:
            out.append(c)
    return "".join(out)


def vary(number):
    """The same number with its last one to four digits changed: mostly
    still valid, sometimes not."""
    nsn = pn.national_significant_number(number)
    k = min(len(nsn) - 2, rng.randint(1, 4))
    if k <= 0:
        return None
    tail = "".join(rng.choice("0123456789") for _ in range(k))
    varied = pn.PhoneNumber(
        country_code=number.country_code,
        national_number=int(nsn[:-k] + tail),
        italian_leading_zero=number.italian_leading_zero,
        number_of_leading_zeros=number.number_of_leading_zeros,
    )
    return varied


def national_prefix(region):
    meta = pn.PhoneMetadata.metadata_for_region(region)
    return (meta.national_prefix or "") if meta else ""


def international_prefix(region):
    meta = pn.PhoneMetadata.metadata_for_region(region)
    if not meta:
        return None
    # `8~10` (Russia): dial 8, wait for the tone, dial 10.
    prefix = (meta.preferred_international_prefix or "").replace("~", " ")
    if prefix:
        return prefix
    plain = meta.international_prefix
    return plain if plain and plain.isdigit() else None


def writings(number, region):
    """(class, default region, text) for the ways people write `number`."""
    cc = number.country_code
    nsn = pn.national_significant_number(number)
    intl = pn.format_number(number, F.INTERNATIONAL)
    national = pn.format_number(number, F.NATIONAL)
    spaced = intl.split(" ", 1)[1] if " " in intl else nsn
    out = [
        ("e164", region, pn.format_number(number, F.E164)),
        ("international", region, intl),
        ("international_hyphens", region, intl.replace(" ", "-", 1)),
        ("paren_plus", region, f"(+{cc}) {spaced}"),
        ("full_width_international", region, full_width(intl)),
    ]
    if region != "001" and pn.is_valid_number_for_region(number, region) or region != "001":
        out.append(("national", region, national))
        out.append(("national_digits", region, "".join(c for c in national if c.isdigit())))
        out.append(("full_width_national", region, full_width(national)))
    np = national_prefix(region)
    if np.isdigit():
        out.append(("trunk_in_parens", region, f"+{cc} ({np}){spaced}"))
        out.append(("trunk_after_code", region, f"+{cc} {np}{nsn}"))
    # Dialled from abroad with the international prefix of the caller's
    # country.
    home = rng.choice(["JP", "US", "GB", "DE", "RU", "KR", "AU", "BR"])
    idd = international_prefix(home)
    if idd and region != home:
        out.append(("idd_from_" + home.lower(), home, f"{idd} {cc} {spaced}"))
    return out


def malformed(number, region):
    """Near-misses: a digit more, a digit fewer, a doubled trunk prefix."""
    cc = number.country_code
    nsn = pn.national_significant_number(number)
    out = [
        ("extra_digit", region, f"+{cc}{nsn}{rng.choice('0123456789')}"),
        ("missing_digit", region, f"+{cc}{nsn[:-1]}"),
    ]
    np = national_prefix(region)
    if np and region != "001":
        out.append(("extra_digit_national", region, f"{np}{nsn}{rng.choice('0123456789')}"))
        out.append(("doubled_trunk", region, f"{np}{np}{nsn}"))
    return out


def seeds():
    for region in sorted(pn.SUPPORTED_REGIONS):
        for kind in TYPES:
            example = pn.example_number_for_type(region, kind)
            if example is not None:
                yield example, region
    for cc in sorted(pn.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = pn.example_number_for_non_geo_entity(cc)
        if example is not None:
            yield example, "001"


def folding(number, region):
    """A Japanese number typed with an input method: full-width digits with
    long-vowel marks for dashes, or half-width katakana marks."""
    national = pn.format_number(number, F.NATIONAL)
    return [
        ("long_vowel_marks", region, full_width(national).replace("\uff0d", "\u30fc"), national),
        ("half_width_marks", region, national.replace("-", "\uff70"), national),
    ]


def marks(number, region):
    """Invisible marks around and inside a number, as a copy from a chat
    app or a contact card brings them; libphonenumber allows most of them
    only at the ends, and an override inside reverses what a screen
    shows."""
    national = pn.format_number(number, F.NATIONAL)
    intl = pn.format_number(number, F.INTERNATIONAL)
    head, _, tail = national.partition("-") if "-" in national else (national[:3], "", national[3:])
    return [
        ("marks_around", region, f"\u202a{intl}\u202c"),
        ("marks_around", region, f"\u200e{national}\u200e"),
        ("marks_around", region, f"\ufeff{national}"),
        ("zero_width_space_inside", region, f"{head}\u200b{tail}"),
        ("override_inside", region, f"{head}\u202e{tail[::-1]}"),
        ("mark_inside", region, f"{head}\u200f{tail}"),
        ("isolate_inside", region, f"{head}\u2066{tail}\u2069"),
    ]


def main():
    rows = []
    for example, region in seeds():
        numbers = [example, vary(example)]
        for number in filter(None, numbers):
            ways = writings(number, region)
            # Every way for Japanese numbers, four of them for the others.
            if region != "JP":
                ways = rng.sample(ways, min(4, len(ways)))
            for cls, default, text in ways:
                rows.append(("well_formed", cls, default, text, text))
            if region == "JP":
                for cls, default, text, plain in folding(number, region):
                    rows.append(("folding", cls, default, text, plain))
            if region in ("JP", "US", "GB", "DE", "FR", "KR", "CN", "IT"):
                for cls, default, text in marks(number, region):
                    rows.append(("marks", cls, default, text, text))
        ways = malformed(example, region)
        for cls, default, text in rng.sample(ways, min(2, len(ways))):
            rows.append(("malformed", cls, default, text, text))
    # Cases named in the issue that found ninsho's faults.
    for region, text in [
        ("JP", "0090-1234-5678"),
        ("JP", "0066-3894-969"),
        ("JP", "012012628471"),
        ("JP", "(+81) 90 1234 5678"),
        ("RU", "8 800 555 35 35"),
        ("IT", "06 6982 0000"),
        ("IT", "+39 06 6982 0000"),
    ]:
        rows.append(("named", "named", region, text, text))
    seen = set()
    out = sys.stdout
    out.write(f"# phonenumbers {pn.__version__}\n")
    for group, cls, default, text, plain in rows:
        default = default if default != "001" else "US"
        key = (default, text)
        if key in seen:
            continue
        seen.add(key)
        fields = [group, cls, default, text] + verdict(plain, default)
        out.write("\t".join(fields) + "\n")


if __name__ == "__main__":
    main()
