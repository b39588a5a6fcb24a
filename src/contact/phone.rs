//! Phone numbers: folding what people type, parsing with libphonenumber
//! (the `rlibphonenumber` port, metadata included), and the policy that decides which
//! numbers may receive codes on which channel. The user-facing description
//! (folding rules, policy defaults and their reasons) is in the
//! [`contact`](crate::contact) module documentation.

use std::fmt;
use std::str::FromStr as _;

use rlibphonenumber::{
    PHONE_NUMBER_UTIL, ParseError, PhoneNumberFormat, ValidationError, enums::Region as LibRegion,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::mask;

use crate::model::{Channel, Destination, DestinationKind, PhoneType};

/// The most digits a typed number may have: `010` (Japan's international
/// prefix), a country code and a 15-digit E.164 number. Longer input is
/// [`PhoneRefusal::TooLong`] before it reaches the parser.
const MAX_TYPED_DIGITS: usize = 18;
/// E.164: at most 15 digits after the `+`.
const MAX_E164_DIGITS: usize = 15;

/// Why a phone number was refused. Carries no digits of the number, so it is
/// safe to log; [`code`](Self::code) gives a stable identifier a UI can map
/// to its own (translated) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneRefusal {
    /// Nothing was entered.
    #[error("enter a phone number")]
    Empty,
    /// Not a phone number: letters or symbols other than separators, a
    /// misplaced `+`, unbalanced parentheses, no digits.
    #[error("that is not a phone number")]
    NotANumber,
    /// Too few digits for a phone number.
    #[error("the phone number is too short")]
    TooShort,
    /// Too many digits for a phone number.
    #[error("the phone number is too long")]
    TooLong,
    /// The number is written nationally but an international number (`+`
    /// and the country code) is needed.
    #[error("enter the number with + and the country code")]
    MissingCountryCode,
    /// `+` is followed by digits that are no country calling code.
    #[error("the country code is not valid")]
    UnknownCountryCode,
    /// The digits are not a number in use in their country (a wrong prefix,
    /// a digit missing or extra).
    #[error("that phone number does not exist")]
    InvalidNumber,
    /// Numbers of this country are not accepted. `region` is the ISO
    /// 3166-1 code of the number's country, or `None` for non-geographic
    /// numbers (international freephone, satellite phones).
    #[error("phone numbers from this country or region are not accepted")]
    RegionNotAllowed {
        /// The number's region, if it has one.
        region: Option<Region>,
    },
    /// A fixed-line number was given for SMS.
    #[error("landlines cannot receive text messages; enter a mobile number")]
    LandlineCannotReceiveSms,
    /// A number that can only be dialled from inside its own country (the
    /// national-only free dial `0066…` and `0037…` ranges in Japan, some
    /// landlines of Monaco or North Korea). Gateways reach numbers through
    /// their international E.164 form, which such a number does not have.
    #[error("this number can only be called from inside its country and cannot be used")]
    DomesticOnly,
    /// An IP phone number (`050` in Japan): often unable to receive SMS and
    /// not tied to a device.
    #[error("IP phone numbers cannot be used; enter a mobile number")]
    IpPhone,
    /// A toll-free number (`0120`, `0800`).
    #[error("toll-free numbers cannot be used")]
    TollFree,
    /// A premium-rate number (`0990`).
    #[error("premium-rate numbers cannot be used")]
    PremiumRate,
    /// A pager or machine-to-machine (IoT) number (`020` in Japan).
    #[error("pager and M2M numbers cannot be used")]
    PagerOrM2m,
    /// A shared-cost or company number (`0570` Navi Dial).
    #[error("service numbers cannot be used")]
    ServiceNumber,
    /// The number's type is not allowed on this channel by the policy (for
    /// example a personal number, or a mobile number for a voice-only
    /// policy).
    #[error("this kind of phone number cannot be used here")]
    TypeNotAllowed {
        /// The number's type.
        kind: PhoneType,
    },
    /// The channel does not deliver to phone numbers (email).
    #[error("codes cannot be sent to a phone number by {channel}")]
    WrongChannel {
        /// The channel asked for.
        channel: Channel,
    },
}

impl PhoneRefusal {
    /// A stable, snake_case identifier for this reason, for translations and
    /// API responses: `"landline_cannot_receive_sms"`, `"ip_phone"`, …
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NotANumber => "not_a_number",
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::MissingCountryCode => "missing_country_code",
            Self::UnknownCountryCode => "unknown_country_code",
            Self::InvalidNumber => "invalid_number",
            Self::RegionNotAllowed { .. } => "region_not_allowed",
            Self::DomesticOnly => "domestic_only",
            Self::LandlineCannotReceiveSms => "landline_cannot_receive_sms",
            Self::IpPhone => "ip_phone",
            Self::TollFree => "toll_free",
            Self::PremiumRate => "premium_rate",
            Self::PagerOrM2m => "pager_or_m2m",
            Self::ServiceNumber => "service_number",
            Self::TypeNotAllowed { .. } => "type_not_allowed",
            Self::WrongChannel { .. } => "wrong_channel",
        }
    }
}

/// A country or region: an ISO 3166-1 alpha-2 code that libphonenumber has
/// numbering metadata for (`JP`, `US`, `GB`, …). Serialises as the code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region([u8; 2]);

impl Region {
    /// Japan.
    pub const JP: Self = Self(*b"JP");

    /// The region with this code (case-insensitive), or `None` if it is not
    /// two letters or libphonenumber has no metadata for it.
    #[must_use]
    pub fn new(code: &str) -> Option<Self> {
        let &[a, b] = code.as_bytes() else {
            return None;
        };
        if !a.is_ascii_alphabetic() || !b.is_ascii_alphabetic() {
            return None;
        }
        let region = Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]);
        region.lib().map(|_| region)
    }

    /// The two-letter code, `"JP"`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ever built from two ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The region of a libphonenumber region (its `World`, the region of
    /// non-geographic numbers, has none).
    fn from_lib(region: LibRegion) -> Option<Self> {
        if region == LibRegion::World {
            return None;
        }
        Self::new(&region.as_region_str())
    }

    /// The libphonenumber region, when it has numbering metadata.
    fn lib(self) -> Option<LibRegion> {
        let region = LibRegion::from_str(self.as_str()).ok()?;
        (region != LibRegion::World
            && PHONE_NUMBER_UTIL
                .get_country_code_for_region(region)
                .is_some())
        .then_some(region)
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::new(&code)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown region code {code:?}")))
    }
}

impl PhoneType {
    /// A stable, snake_case name: `"mobile"`, `"fixed_line"`, …
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::FixedLine => "fixed_line",
            Self::FixedLineOrMobile => "fixed_line_or_mobile",
            Self::TollFree => "toll_free",
            Self::PremiumRate => "premium_rate",
            Self::SharedCost => "shared_cost",
            Self::Voip => "voip",
            Self::PersonalNumber => "personal_number",
            Self::Pager => "pager",
            Self::Uan => "uan",
            Self::Voicemail => "voicemail",
            Self::Unknown => "unknown",
        }
    }

    fn from_lib(kind: rlibphonenumber::PhoneNumberType) -> Self {
        use rlibphonenumber::PhoneNumberType as T;
        match kind {
            T::Mobile => Self::Mobile,
            T::FixedLine => Self::FixedLine,
            T::FixedLineOrMobile => Self::FixedLineOrMobile,
            T::TollFree => Self::TollFree,
            T::PremiumRate => Self::PremiumRate,
            T::SharedCost => Self::SharedCost,
            T::VoIP => Self::Voip,
            T::PersonalNumber => Self::PersonalNumber,
            T::Pager => Self::Pager,
            T::UAN => Self::Uan,
            T::VoiceMail => Self::Voicemail,
            T::Unknown => Self::Unknown,
        }
    }

    /// The refusal for a number of this type that the policy does not allow
    /// on `channel`.
    fn refusal(self, channel: Channel) -> PhoneRefusal {
        match self {
            Self::FixedLine if channel == Channel::Sms => PhoneRefusal::LandlineCannotReceiveSms,
            Self::Voip => PhoneRefusal::IpPhone,
            Self::TollFree => PhoneRefusal::TollFree,
            Self::PremiumRate => PhoneRefusal::PremiumRate,
            Self::Pager => PhoneRefusal::PagerOrM2m,
            Self::SharedCost | Self::Uan => PhoneRefusal::ServiceNumber,
            kind => PhoneRefusal::TypeNotAllowed { kind },
        }
    }
}

impl fmt::Display for PhoneType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phone number that parsed and is valid for its region: its E.164 form,
/// region and type.
///
/// Two numbers are equal when their E.164 forms are. `Debug` shows the
/// masked form only (phone numbers are personal data).
#[derive(Clone)]
pub struct PhoneNumber {
    e164: String,
    region: Option<Region>,
    kind: PhoneType,
    domestic_only: bool,
    parsed: rlibphonenumber::PhoneNumber,
}

impl PhoneNumber {
    /// The E.164 form: `+819012345678`.
    #[must_use]
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The number's region (`JP`); `None` for non-geographic numbers.
    #[must_use]
    pub fn region(&self) -> Option<Region> {
        self.region
    }

    /// The country calling code: `81`.
    #[must_use]
    pub fn country_code(&self) -> u16 {
        // E.164 country codes have at most three digits.
        u16::try_from(self.parsed.country_code).unwrap_or(0)
    }

    /// The number's type.
    #[must_use]
    pub fn phone_type(&self) -> PhoneType {
        self.kind
    }

    /// Whether the number can only be dialled from inside its country
    /// (Japan's `0066…` and `0037…` free dial ranges, some landlines of
    /// Monaco or North Korea). Such a number has an E.164 form in
    /// libphonenumber's reading, but no gateway can reach it through it:
    /// [`PhonePolicy::check_number`] refuses it on every channel with
    /// [`PhoneRefusal::DomesticOnly`].
    #[must_use]
    pub fn is_domestic_only(&self) -> bool {
        self.domestic_only
    }

    /// The destination to send codes to.
    #[must_use]
    pub fn destination(&self) -> Destination {
        Destination {
            kind: DestinationKind::Phone,
            address: self.e164.clone(),
        }
    }

    /// `+81 **-****-5678`, as [`Destination::masked`].
    #[must_use]
    pub fn masked(&self) -> String {
        mask::mask_phone(&self.e164)
    }

    /// `***-****-5678`, as [`Destination::masked_national`].
    #[must_use]
    pub fn masked_national(&self) -> String {
        mask::mask_phone_national(&self.e164)
    }

    /// The whole number in international format, `+81 90-1234-5678` (this
    /// shows every digit: for the user's own screen, not for logs).
    #[must_use]
    pub fn international(&self) -> String {
        self.parsed
            .format_as(PhoneNumberFormat::International)
            .into_owned()
    }

    /// The whole number in national format, `090-1234-5678` (this shows
    /// every digit: for the user's own screen, not for logs).
    #[must_use]
    pub fn national(&self) -> String {
        self.parsed
            .format_as(PhoneNumberFormat::National)
            .into_owned()
    }
}

impl PartialEq for PhoneNumber {
    fn eq(&self, other: &Self) -> bool {
        self.e164 == other.e164
    }
}

impl Eq for PhoneNumber {}

impl std::hash::Hash for PhoneNumber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.e164.hash(state);
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneNumber")
            .field("number", &self.masked())
            .field("region", &self.region)
            .field("type", &self.kind)
            .finish()
    }
}

impl From<PhoneNumber> for Destination {
    fn from(number: PhoneNumber) -> Self {
        Self {
            kind: DestinationKind::Phone,
            address: number.e164,
        }
    }
}

/// Which regions a [`PhonePolicy`] accepts numbers from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllowedRegions {
    /// Every region, and non-geographic numbers.
    Any,
    /// Only these regions.
    Only(Vec<Region>),
}

impl AllowedRegions {
    /// Whether a number of `region` (`None`: non-geographic) is accepted.
    #[must_use]
    pub fn allows(&self, region: Option<Region>) -> bool {
        match self {
            Self::Any => true,
            Self::Only(list) => region.is_some_and(|r| list.contains(&r)),
        }
    }

    /// Whether some accepted region uses `country_code`.
    fn allows_code(&self, country_code: i32) -> bool {
        match self {
            Self::Any => true,
            Self::Only(list) => PHONE_NUMBER_UTIL
                .get_regions_for_country_calling_code(country_code)
                .is_some_and(|mut regions| {
                    regions.any(|r| Region::from_lib(r).is_some_and(|r| list.contains(&r)))
                }),
        }
    }
}

/// Which phone numbers are accepted, and for which channel. Declarative
/// (serialisable, with defaults for every field); see the
/// [module documentation](crate::contact) for the defaults and the reasons for them.
///
/// ```
/// use ninsho::contact::{PhonePolicy, Region};
/// use ninsho::model::PhoneType;
/// use ninsho::model::Channel;
///
/// // EZSMS: Japanese mobiles by default, the US too when the operator
/// // opens it. US numbers do not say whether they are mobile; allowing
/// // the region is enough (a landline's carrier refuses the SMS, and the
/// // voice call is offered instead).
/// let us = Region::new("US").unwrap();
/// let policy = PhonePolicy::default().allow_region(us);
/// let number = policy.check("+1 (415) 555-2671", Channel::Sms).unwrap();
/// assert_eq!(number.region(), Some(us));
/// assert_eq!(number.phone_type(), PhoneType::FixedLineOrMobile);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PhonePolicy {
    /// The region of numbers written nationally, without `+` (default `JP`).
    pub default_region: Region,
    /// Regions numbers are accepted from (default: `JP` only).
    pub allowed_regions: AllowedRegions,
    /// Types that may receive SMS (default: mobile, and fixed line or
    /// mobile: the type of every number of a country whose numbering cannot
    /// tell the two apart, such as the US and Canada).
    pub sms_types: Vec<PhoneType>,
    /// Types that may receive voice calls (default: mobile, fixed line, and
    /// fixed line or mobile).
    pub voice_types: Vec<PhoneType>,
}

impl Default for PhonePolicy {
    fn default() -> Self {
        Self {
            default_region: Region::JP,
            allowed_regions: AllowedRegions::Only(vec![Region::JP]),
            sms_types: vec![PhoneType::Mobile, PhoneType::FixedLineOrMobile],
            voice_types: vec![
                PhoneType::Mobile,
                PhoneType::FixedLine,
                PhoneType::FixedLineOrMobile,
            ],
        }
    }
}

impl PhonePolicy {
    /// The default policy (Japanese numbers; mobiles for SMS; mobiles and
    /// landlines for voice; numbers that may be either for both).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads numbers written without `+` as numbers of `region`.
    #[must_use]
    pub fn default_region(mut self, region: Region) -> Self {
        self.default_region = region;
        self
    }

    /// Also accepts numbers from `region` (no change if every region is
    /// already accepted).
    #[must_use]
    pub fn allow_region(mut self, region: Region) -> Self {
        if let AllowedRegions::Only(list) = &mut self.allowed_regions
            && !list.contains(&region)
        {
            list.push(region);
        }
        self
    }

    /// Accepts numbers from exactly these regions.
    #[must_use]
    pub fn only_regions(mut self, regions: impl IntoIterator<Item = Region>) -> Self {
        let mut list: Vec<Region> = regions.into_iter().collect();
        list.sort_unstable();
        list.dedup();
        self.allowed_regions = AllowedRegions::Only(list);
        self
    }

    /// Accepts numbers from every region, non-geographic ones included.
    #[must_use]
    pub fn allow_any_region(mut self) -> Self {
        self.allowed_regions = AllowedRegions::Any;
        self
    }

    /// The types that may receive SMS.
    #[must_use]
    pub fn sms_types(mut self, types: impl IntoIterator<Item = PhoneType>) -> Self {
        self.sms_types = dedup(types);
        self
    }

    /// The types that may receive voice calls.
    #[must_use]
    pub fn voice_types(mut self, types: impl IntoIterator<Item = PhoneType>) -> Self {
        self.voice_types = dedup(types);
        self
    }

    /// The types allowed on `channel` (none for email).
    #[must_use]
    pub fn types_for(&self, channel: Channel) -> &[PhoneType] {
        match channel {
            Channel::Sms => &self.sms_types,
            Channel::Voice => &self.voice_types,
            _ => &[],
        }
    }

    /// Parses `input` as people type it (see the
    /// [module documentation](crate::contact) for the folding) and checks it is a
    /// valid number of an allowed region. The type, and whether a gateway
    /// can reach the number, are not checked: see [`check`](Self::check).
    ///
    /// # Errors
    /// The [`PhoneRefusal`] saying why.
    pub fn parse(&self, input: &str) -> Result<PhoneNumber, PhoneRefusal> {
        let folded = fold(input)?;
        let region = if folded.plus {
            None
        } else {
            Some(
                self.default_region
                    .lib()
                    .ok_or(PhoneRefusal::MissingCountryCode)?,
            )
        };
        let parsed = parse_folded(&folded, region)?;
        let code = parsed.country_code;
        let valid = parsed.is_valid();
        let region = if valid {
            parsed.get_region_code().and_then(Region::from_lib)
        } else {
            main_region(code)
        };
        // A country that is not allowed is refused as such, valid or not:
        // "not accepted" is the useful answer for `+1 555 555 5555`.
        if !self.allowed_regions.allows_code(code) {
            return Err(PhoneRefusal::RegionNotAllowed { region });
        }
        if !valid {
            length_verdict(&parsed)?;
            return Err(PhoneRefusal::InvalidNumber);
        }
        if !self.allowed_regions.allows(region) {
            return Err(PhoneRefusal::RegionNotAllowed { region });
        }
        let e164 = e164_of(&folded, &parsed)?;
        let kind = PhoneType::from_lib(parsed.get_type());
        let domestic_only = !parsed.can_be_internationally_dialled();
        Ok(PhoneNumber {
            e164,
            region,
            kind,
            domestic_only,
            parsed,
        })
    }

    /// [`parse`](Self::parse), then checks the number's type may receive
    /// codes on `channel`.
    ///
    /// # Errors
    /// The [`PhoneRefusal`] saying why; [`PhoneRefusal::WrongChannel`] for
    /// email.
    pub fn check(&self, input: &str, channel: Channel) -> Result<PhoneNumber, PhoneRefusal> {
        let number = self.parse(input)?;
        self.check_number(&number, channel)?;
        Ok(number)
    }

    /// Checks an already parsed number against this policy's regions and
    /// the types allowed on `channel`, and that a gateway can reach it
    /// (not [domestic only](PhoneNumber::is_domestic_only)).
    ///
    /// # Errors
    /// The [`PhoneRefusal`] saying why.
    pub fn check_number(&self, number: &PhoneNumber, channel: Channel) -> Result<(), PhoneRefusal> {
        if !matches!(channel, Channel::Sms | Channel::Voice) {
            return Err(PhoneRefusal::WrongChannel { channel });
        }
        if !self.allowed_regions.allows(number.region) {
            return Err(PhoneRefusal::RegionNotAllowed {
                region: number.region,
            });
        }
        if number.domestic_only {
            return Err(PhoneRefusal::DomesticOnly);
        }
        if self.types_for(channel).contains(&number.kind) {
            Ok(())
        } else {
            Err(number.kind.refusal(channel))
        }
    }

    /// [`check`](Self::check) for a stored destination (for example before
    /// sending to it, after the policy changed).
    ///
    /// # Errors
    /// The [`PhoneRefusal`] saying why; [`PhoneRefusal::NotANumber`] for an
    /// email destination.
    pub fn check_destination(
        &self,
        destination: &Destination,
        channel: Channel,
    ) -> Result<PhoneNumber, PhoneRefusal> {
        if destination.kind() != DestinationKind::Phone {
            return Err(PhoneRefusal::NotANumber);
        }
        self.check(destination.address(), channel)
    }
}

fn dedup(types: impl IntoIterator<Item = PhoneType>) -> Vec<PhoneType> {
    let mut out: Vec<PhoneType> = Vec::new();
    for kind in types {
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    out
}

/// The main region of a country calling code (`1` → `US`), `None` for
/// non-geographic codes.
fn main_region(code: i32) -> Option<Region> {
    PHONE_NUMBER_UTIL
        .get_region_for_country_code(code)
        .and_then(Region::from_lib)
}

/// Input folded to `+` (or not) and ASCII digits.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Folded {
    plus: bool,
    digits: String,
}

impl Folded {
    fn text(&self) -> String {
        if self.plus {
            format!("+{}", self.digits)
        } else {
            self.digits.clone()
        }
    }
}

/// Folds one character: full-width ASCII to ASCII, dash-likes to `-`,
/// spaces and the two invisible marks libphonenumber allows anywhere (zero
/// width space, word joiner) to a space.
pub(crate) fn fold_char(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        '\u{2010}'..='\u{2015}'
        | '\u{2043}'
        | '\u{2212}'
        | '\u{30FC}'
        | '\u{FE58}'
        | '\u{FE63}'
        | '\u{FF70}' => '-',
        '\u{200B}' | '\u{2060}' => ' ',
        c if c.is_whitespace() => ' ',
        c => c,
    }
}

/// Direction marks, embeddings, overrides and isolates, joiners and the
/// byte order mark: what a copy from a chat app or a contact card wraps a
/// number in. At the ends of the input they are dropped; inside it they
/// make it [`PhoneRefusal::NotANumber`], as libphonenumber does, because an
/// override (`U+202E`) shows the digits after it reversed: the screen would
/// show one number and the code would go to another.
fn is_format_mark(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// Folds what people type to `+` and digits (see the module docs).
pub(crate) fn fold(input: &str) -> Result<Folded, PhoneRefusal> {
    let mut plus = false;
    let mut digits = String::with_capacity(16);
    let mut open: Option<usize> = None;
    let mut any = false;
    let input = input.trim_matches(|c: char| c.is_whitespace() || is_format_mark(c));
    for c in input.chars().map(fold_char) {
        if c != ' ' {
            any = true;
        }
        match c {
            '0'..='9' if digits.len() == MAX_TYPED_DIGITS => return Err(PhoneRefusal::TooLong),
            '0'..='9' => digits.push(c),
            // `+81 …`, and `(+81) …` as some people write it.
            '+' if !plus && digits.is_empty() => plus = true,
            '(' if open.is_none() => open = Some(digits.len()),
            ')' => {
                // `+81 (0)90…` keeps the trunk `0`: libphonenumber drops
                // it where the country has one and keeps it where it is
                // part of the number (Italy).
                open.take().ok_or(PhoneRefusal::NotANumber)?;
            }
            ' ' | '-' | '.' | '/' => {}
            _ => return Err(PhoneRefusal::NotANumber),
        }
    }
    if !any {
        return Err(PhoneRefusal::Empty);
    }
    if open.is_some() || digits.is_empty() {
        return Err(PhoneRefusal::NotANumber);
    }
    Ok(Folded { plus, digits })
}

/// Parses folded input with libphonenumber.
fn parse_folded(
    folded: &Folded,
    region: Option<LibRegion>,
) -> Result<rlibphonenumber::PhoneNumber, PhoneRefusal> {
    // An international form has at most 15 digits, and a trunk `0`.
    if folded.plus && folded.digits.len() > MAX_E164_DIGITS + 1 {
        return Err(PhoneRefusal::TooLong);
    }
    // Folded input is `+` and digits, so the parser finds no extension,
    // letters or phone context: it can only refuse on length and country.
    PHONE_NUMBER_UTIL
        .parse(folded.text(), region)
        .map_err(|e| match e {
            ParseError::InvalidCountryCode if folded.plus => PhoneRefusal::UnknownCountryCode,
            ParseError::InvalidCountryCode => PhoneRefusal::MissingCountryCode,
            ParseError::NotANumber(_) | ParseError::TooShortAfterIdd | ParseError::TooShortNsn => {
                PhoneRefusal::TooShort
            }
            ParseError::TooLongNsn => PhoneRefusal::TooLong,
        })
}

/// The E.164 form of a parsed number, refused when it is not one a gateway
/// can be given or when the parser's rewriting went further than it may.
///
/// libphonenumber drops a trunk prefix (`+81 090…`, `+36 06 20…`), an
/// international prefix (`010 1 415…`) or a carrier code. From an
/// international form only a trunk prefix may go: the typed digits must be
/// the country code, at most [`MAX_TRUNK_DIGITS`] more, then the national
/// number. Whatever the parser produced must read back as itself. A number
/// failing either is refused rather than sent to: the rule is never to
/// reach a different number than the one typed.
fn e164_of(folded: &Folded, parsed: &rlibphonenumber::PhoneNumber) -> Result<String, PhoneRefusal> {
    let e164 = parsed.format_as(PhoneNumberFormat::E164).into_owned();
    let digits = e164
        .strip_prefix('+')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(PhoneRefusal::InvalidNumber)?;
    if digits.len() > MAX_E164_DIGITS {
        return Err(PhoneRefusal::TooLong);
    }
    if digits != folded.digits {
        if folded.plus && !only_trunk_dropped(&folded.digits, parsed) {
            return Err(PhoneRefusal::InvalidNumber);
        }
        let again = PHONE_NUMBER_UTIL
            .parse(&e164, None)
            .map(|n| n.format_as(PhoneNumberFormat::E164).into_owned());
        if again.as_deref() != Ok(e164.as_str()) {
            return Err(PhoneRefusal::InvalidNumber);
        }
    }
    Ok(e164)
}

/// The longest trunk prefix dialled after a country code (Hungary's `06`).
const MAX_TRUNK_DIGITS: usize = 2;

/// Whether `typed` (the digits after `+`) is the parsed number's country
/// code, a trunk prefix of at most [`MAX_TRUNK_DIGITS`], and its national
/// number.
fn only_trunk_dropped(typed: &str, parsed: &rlibphonenumber::PhoneNumber) -> bool {
    let code = parsed.country_code.to_string();
    let national = parsed.get_national_significant_number();
    typed.len() <= code.len() + MAX_TRUNK_DIGITS + national.len()
        && typed.starts_with(&code)
        && typed.ends_with(&national)
}

/// Why a number that is not valid is refused: its length against the
/// lengths its country uses (`TooShort`/`TooLong` outside the range,
/// `InvalidNumber` for a length in a gap or a length that fits).
fn length_verdict(number: &rlibphonenumber::PhoneNumber) -> Result<(), PhoneRefusal> {
    match number.is_possible_with_reason() {
        Ok(_) => Ok(()),
        Err(ValidationError::TooShort) => Err(PhoneRefusal::TooShort),
        Err(ValidationError::TooLong) => Err(PhoneRefusal::TooLong),
        Err(ValidationError::InvalidLength) => Err(PhoneRefusal::InvalidNumber),
        Err(ValidationError::InvalidCountryCode) => Err(PhoneRefusal::UnknownCountryCode),
    }
}

/// The policy-free international form behind [`Destination::phone`]: `+`,
/// a known country code and a possible length, normalised to E.164.
pub(crate) fn international(input: &str) -> Result<String, PhoneRefusal> {
    let folded = fold(input)?;
    if !folded.plus {
        return Err(PhoneRefusal::MissingCountryCode);
    }
    let parsed = parse_folded(&folded, None)?;
    length_verdict(&parsed)?;
    let e164 = e164_of(&folded, &parsed)?;
    if !parsed.can_be_internationally_dialled() {
        return Err(PhoneRefusal::DomesticOnly);
    }
    Ok(e164)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(input: &str) -> Result<(bool, String), PhoneRefusal> {
        fold(input).map(|f| (f.plus, f.digits))
    }

    #[test]
    fn folds_what_people_type() {
        let cases = [
            ("090-1234-5678", false, "09012345678"),
            ("０９０－１２３４－５６７８", false, "09012345678"),
            ("０９０ー１２３４ー５６７８", false, "09012345678"),
            ("090ｰ1234ｰ5678", false, "09012345678"),
            ("090‐1234―5678", false, "09012345678"),
            ("090−1234−5678", false, "09012345678"),
            ("090\u{3000}1234\u{00A0}5678", false, "09012345678"),
            ("(090) 1234.5678", false, "09012345678"),
            ("（０９０）１２３４－５６７８", false, "09012345678"),
            (
                "\u{200B}\u{FEFF}090 1234 5678\u{200E}",
                false,
                "09012345678",
            ),
            ("＋８１ ９０ １２３４ ５６７８", true, "819012345678"),
            // The trunk `0` stays for the parser, which knows whether the
            // country drops it.
            ("+81 (0)90-1234-5678", true, "8109012345678"),
            ("+81（０）90-1234-5678", true, "8109012345678"),
            ("(+81) 90 1234 5678", true, "819012345678"),
            ("+81 090-1234-5678", true, "8109012345678"),
            ("+1 (415) 555-2671", true, "14155552671"),
            ("  +44 (0)20 7946 0958 ", true, "4402079460958"),
        ];
        for (input, plus, digits) in cases {
            assert_eq!(folded(input), Ok((plus, digits.to_owned())), "{input}");
        }
    }

    #[test]
    fn fold_refusals() {
        let cases = [
            ("", PhoneRefusal::Empty),
            (" \u{3000} ", PhoneRefusal::Empty),
            ("---", PhoneRefusal::NotANumber),
            ("abc", PhoneRefusal::NotANumber),
            ("090-1234-567８a", PhoneRefusal::NotANumber),
            ("81+90", PhoneRefusal::NotANumber),
            ("++81", PhoneRefusal::NotANumber),
            ("(090 1234 5678", PhoneRefusal::NotANumber),
            ("090) 1234 5678", PhoneRefusal::NotANumber),
            ("((090))", PhoneRefusal::NotANumber),
            ("090#1234", PhoneRefusal::NotANumber),
            ("tel:+819012345678", PhoneRefusal::NotANumber),
            ("+", PhoneRefusal::NotANumber),
            ("1234567890123456789", PhoneRefusal::TooLong),
        ];
        for (input, refusal) in cases {
            assert_eq!(folded(input), Err(refusal), "{input}");
        }
    }

    #[test]
    fn international_form() {
        assert_eq!(international("+81 90-1234-5678").unwrap(), "+819012345678");
        assert_eq!(
            international("+81 (0)90-1234-5678").unwrap(),
            "+819012345678"
        );
        assert_eq!(international("+81 090-1234-5678").unwrap(), "+819012345678");
        // Possible but unassigned numbers pass: no policy here.
        assert_eq!(international("+819000000000").unwrap(), "+819000000000");
        // Short numbering plans (Niue) are international numbers too.
        assert_eq!(international("+683 4002").unwrap(), "+6834002");
        assert_eq!(
            international("090-1234-5678"),
            Err(PhoneRefusal::MissingCountryCode)
        );
        assert_eq!(
            international("+999 1234 5678"),
            Err(PhoneRefusal::UnknownCountryCode)
        );
        assert_eq!(international("+81"), Err(PhoneRefusal::TooShort));
        assert_eq!(
            international("+86 1234 5678 9012 3456"),
            Err(PhoneRefusal::TooLong)
        );
    }

    #[test]
    fn regions() {
        assert_eq!(Region::new("jp"), Some(Region::JP));
        assert_eq!(Region::new("US").map(|r| r.to_string()), Some("US".into()));
        for bad in ["", "J", "JPN", "ZZ", "00", "日本", "ｊｐ"] {
            assert_eq!(Region::new(bad), None, "{bad}");
        }
        assert_eq!(format!("{:?}", Region::JP), "Region(JP)");
        assert_eq!(serde_json::to_string(&Region::JP).unwrap(), "\"JP\"");
        assert!(serde_json::from_str::<Region>("\"XX\"").is_err());
    }

    #[test]
    fn policy_serde_round_trip_and_defaults() {
        let policy = PhonePolicy::default();
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(
            json,
            r#"{"default_region":"JP","allowed_regions":{"only":["JP"]},"sms_types":["mobile","fixed_line_or_mobile"],"voice_types":["mobile","fixed_line","fixed_line_or_mobile"]}"#
        );
        assert_eq!(serde_json::from_str::<PhonePolicy>(&json).unwrap(), policy);
        let partial: PhonePolicy = serde_json::from_str(r#"{"allowed_regions":"any"}"#).unwrap();
        assert_eq!(partial, PhonePolicy::default().allow_any_region());
    }

    #[test]
    fn builders() {
        let us = Region::new("US").unwrap();
        let p = PhonePolicy::new().allow_region(us).allow_region(us);
        assert_eq!(
            p.allowed_regions,
            AllowedRegions::Only(vec![Region::JP, us])
        );
        let p = p.only_regions([us, us]);
        assert_eq!(p.allowed_regions, AllowedRegions::Only(vec![us]));
        let p = p.allow_any_region().allow_region(Region::JP);
        assert_eq!(p.allowed_regions, AllowedRegions::Any);
        let p = p.sms_types([PhoneType::Mobile, PhoneType::Mobile, PhoneType::Voip]);
        assert_eq!(
            p.types_for(Channel::Sms),
            [PhoneType::Mobile, PhoneType::Voip]
        );
        assert!(p.types_for(Channel::Email).is_empty());
    }

    #[test]
    fn debug_is_masked() {
        let n = PhonePolicy::default()
            .check("090-1234-5678", Channel::Sms)
            .unwrap();
        let debug = format!("{n:?}");
        assert!(!debug.contains("9012345678"), "{debug}");
        assert!(debug.contains("+81 **-****-5678"), "{debug}");
        assert_eq!(n.international(), "+81 90-1234-5678");
        assert_eq!(n.national(), "090-1234-5678");
        assert_eq!(n.country_code(), 81);
    }

    #[test]
    fn unknown_default_region_needs_a_country_code() {
        // A policy deserialised with a region whose metadata is missing
        // cannot be built through `Region::new`; the parser path still
        // refuses national numbers cleanly rather than panicking.
        let policy = PhonePolicy {
            default_region: Region(*b"ZZ"),
            ..PhonePolicy::default()
        };
        assert_eq!(
            policy.parse("090-1234-5678"),
            Err(PhoneRefusal::MissingCountryCode)
        );
        assert!(policy.parse("+81 90-1234-5678").is_ok());
    }
}
