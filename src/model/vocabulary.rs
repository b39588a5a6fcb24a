//! The words every part shares: why a code is sent, how it travels, in
//! which language, and to what kind of address.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a code is being sent. A code issued for one purpose never verifies
/// another (a sign-up code can't approve a phone change).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Purpose {
    /// Verifying a contact while creating an account.
    SignUp,
    /// The second step of signing in.
    SignIn,
    /// Adding or changing a phone number or email address.
    ContactChange,
    /// Re-verifying before a sensitive action.
    StepUp,
    /// Regaining access to an account.
    Recovery,
    /// A purpose of the host's own.
    Other(String),
}

/// How a message reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Channel {
    /// A text message to a mobile number.
    Sms,
    /// A phone call where a voice reads the code (landlines too).
    Voice,
    /// An email.
    Email,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sms => "SMS",
            Self::Voice => "voice call",
            Self::Email => "email",
        })
    }
}

/// The language of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Locale {
    /// Japanese, the default.
    #[default]
    Ja,
    /// English.
    En,
}

impl Locale {
    /// The BCP 47 language tag: `"ja"` or `"en"`.
    #[must_use]
    pub fn tag(self) -> &'static str {
        match self {
            Self::Ja => "ja",
            Self::En => "en",
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// What kind of address a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// A phone number (SMS or voice).
    Phone,
    /// An email address.
    Email,
}

/// A normalised phone number or email address that codes can be sent to.
///
/// Phone numbers are stored in E.164 form (`+819012345678`); email
/// addresses trimmed, with the domain lower-cased and the local part as
/// typed. `Debug` shows the masked form only: contact details are personal
/// data.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Destination {
    pub(crate) kind: DestinationKind,
    pub(crate) address: String,
}

/// What kind of line a number belongs to, from libphonenumber's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PhoneType {
    /// A mobile number (`070`/`080`/`090`/`060` in Japan).
    Mobile,
    /// A fixed-line (landline) number (`03`, `06`, …).
    FixedLine,
    /// Fixed-line or mobile: the numbering does not tell (the US, Canada).
    FixedLineOrMobile,
    /// A toll-free number (`0120`, `0800`).
    TollFree,
    /// A premium-rate number (`0990`).
    PremiumRate,
    /// A shared-cost number.
    SharedCost,
    /// A voice-over-IP number (`050`).
    Voip,
    /// A personal number that forwards elsewhere (`060` with 10 digits).
    PersonalNumber,
    /// A pager or machine-to-machine number (`020`).
    Pager,
    /// A company number routed to offices ("universal access number",
    /// `0570` Navi Dial).
    Uan,
    /// A voicemail access number.
    Voicemail,
    /// None of the above, or not known.
    Unknown,
}
