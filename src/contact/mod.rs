//! Contact destinations (phone numbers and email addresses), the policy
//! for phone numbers, and masking.
//!
//! - [`Destination`] is a normalised address codes are sent to.
//!   [`Destination::phone`] takes an international number (`+81 90-1234-5678`)
//!   of any country and type; [`Destination::email`] an email address.
//! - [`PhonePolicy`] decides which numbers a service accepts, and for which
//!   channel: by default Japanese mobile numbers for SMS, and Japanese mobile
//!   and fixed-line numbers for voice calls. It reads numbers the way people
//!   type them (national or international, full-width, with any dashes) and
//!   refuses the rest with a typed [`PhoneRefusal`]. See [Phone numbers](self#phone-numbers)
//!   below for the defaults and the reasons for them.
//! - [`EmailRefusal`] says why an email address was refused.
//! - Masked forms hide most of a contact: [`Destination::masked_for`] for
//!   screens (`+81 **-****-**78`), [`Destination::masked`] for logs
//!   (`+81 **-****-5678`). A [`MaskPolicy`] sets how much screens show and
//!   what confirming a masked contact asks for; see
//!   [Masking](self#masking-and-confirmation).
//!
//! Every refusal carries no part of the address, so it is safe to log, and
//! has a stable `code()` for translations.
//!
//! # Phone numbers
//!
//! Parsing is Google's libphonenumber, ported whole with its metadata (the
//! `rlibphonenumber` crate); no numbering tables are kept here. On the
//! 12,000-input corpus in the repository's `tests/reference/phone` (every
//! region's example numbers of every type and variations, written every way
//! people write them, near misses, invisible marks) it reads every
//! well-formed input as libphonenumber does: the same E.164 form, type and
//! region, or the same refusal. It never reads a number differently and
//! never accepts one libphonenumber calls invalid. Where it departs, it
//! refuses:
//!
//! - more than 15 digits after the country code (not E.164), or more than
//!   18 typed digits in all;
//! - letters (`1-800-FLOWERS`), extensions, `tel:` URIs, and digits of other
//!   scripts (Arabic-Indic, Devanagari);
//! - `+` followed by an international prefix (`+011 44…`);
//! - an international form from which libphonenumber would drop more than a
//!   trunk prefix of up to two digits (a carrier code: `+55 0 15 11…`) or to
//!   which it would add a digit that was not typed (Norfolk Island);
//! - at sending time ([`PhonePolicy::check_number`]), numbers that can only
//!   be dialled inside their country
//!   ([`PhoneRefusal::DomesticOnly`]: Japan's `0066`/`0037` free dial
//!   ranges, some landlines of Monaco and North Korea), which libphonenumber
//!   reads as valid but which no gateway reaches through an E.164 form.
//!
//! ## Folding
//!
//! Before parsing, input is folded the way Japanese users type it:
//! full-width digits, `＋`, `（ ）` and dashes become ASCII; every dash-like
//! character (`-`, `－`, `‐`…`―`, `−`, and the long-vowel marks `ー`/`ｰ` an
//! input method produces in kana mode), spaces of any width, the zero-width
//! space and word joiner, dots, slashes and parentheses are separators, and
//! `(+81) 90-…` reads as
//! `+81 90-…`. `+81 (0)90-…` and `+81 090-…` drop the trunk `0` the way
//! libphonenumber does (only where the country dials one: Italy's leading
//! `0` is part of the number). Direction and format marks (`U+200E`,
//! `U+202A`…`U+202E`, `U+2066`…`U+2069`, the byte order mark) that a copy
//! from a chat app or a contact card wraps around a number are dropped at
//! its ends; inside it they make it [`PhoneRefusal::NotANumber`], as in
//! libphonenumber, since an override shows the digits after it reversed
//! and the screen would show another number than the one the code goes to.
//! Letters and other symbols make the input [`PhoneRefusal::NotANumber`].
//!
//! ## Policy defaults, and why
//!
//! [`PhonePolicy::default()`] accepts Japanese numbers only, written
//! nationally (`090-1234-5678`) or internationally (`+81 90-1234-5678`):
//!
//! - **SMS: mobile numbers only** (`070`, `080`, `090`, and the newer `060`
//!   mobile range). SMS reaches mobile handsets; a landline (`03`, `06`, …)
//!   cannot receive it. `050` numbers are IP phones: many `050` services
//!   cannot receive SMS at all, and they are not tied to a SIM in the user's
//!   hand. `020` is the pager / M2M (IoT data SIM) range, which does not
//!   reach a person. Free-dial (`0120`, `0800`), Navi Dial (`0570`) and
//!   premium-rate (`0990`) numbers are service numbers that cannot receive
//!   SMS, and are the raw material of SMS-pumping fraud.
//! - **Voice: mobile and fixed-line numbers**, since a call to a landline
//!   is the usual fallback for users without SMS.
//! - **Numbers that may be either**
//!   ([`PhoneType::FixedLineOrMobile`](crate::model::PhoneType::FixedLineOrMobile),
//!   the type of every number in countries whose numbering does not tell
//!   the two apart, such as the US and Canada) may receive both: a
//!   landline's carrier refuses the SMS, and the journey then offers the
//!   voice call. Japanese numbers always say which they are. IP phones are left out of voice
//!   too: NIST SP 800-63B (rev. 3, §5.1.3.1) requires an out-of-band
//!   authenticator to prove possession of a specific device and names VoIP
//!   as a method that does not, and §5.1.3.3 asks verifiers to make sure a
//!   telephone number is tied to a physical device.
//! - **Foreign numbers are refused** ([`PhoneRefusal::RegionNotAllowed`]),
//!   also for residents of Japan (as nizima does): international SMS routes
//!   are the ones carriers block and fraudsters pump. An operator opens
//!   other countries with [`PhonePolicy::allow_region`] or
//!   [`PhonePolicy::allow_any_region`]; allowing `US` alone is enough for
//!   US numbers to receive SMS. Fixed line or mobile is also the type of
//!   many numbers of Mexico, Chile, Denmark, India, the Dominican Republic,
//!   Puerto Rico and other regions (every Danish number, Mexico City and
//!   Santiago landlines): allowing such a region sends SMS to them too,
//!   and a landline's carrier refusal leads to the voice call. A host that
//!   wants proven mobiles only sets `sms_types([PhoneType::Mobile])`.
//!
//! ```
//! use ninsho::contact::{PhonePolicy, PhoneRefusal};
//! use ninsho::model::PhoneType;
//! use ninsho::model::Channel;
//!
//! let policy = PhonePolicy::default();
//! let number = policy.check("０９０－１２３４－５６７８", Channel::Sms)?;
//! assert_eq!(number.e164(), "+819012345678");
//! assert_eq!(number.phone_type(), PhoneType::Mobile);
//! assert_eq!(number.masked_national(), "***-****-5678");
//!
//! assert_eq!(
//!     policy.check("03-1234-5678", Channel::Sms),
//!     Err(PhoneRefusal::LandlineCannotReceiveSms)
//! );
//! assert!(policy.check("03-1234-5678", Channel::Voice).is_ok());
//! assert_eq!(policy.check("050-1234-5678", Channel::Sms), Err(PhoneRefusal::IpPhone));
//! assert_eq!(
//!     policy.check("+1 415 555 2671", Channel::Sms).unwrap_err().code(),
//!     "region_not_allowed"
//! );
//! # Ok::<(), PhoneRefusal>(())
//! ```
//!
//! # Email addresses
//!
//! A conservative subset of RFC 5321: an unquoted ASCII local part of at
//! most 64 bytes, a host-name domain (punycode `xn--` form for
//! internationalised domains; no IP literals), 254 bytes in all. The input
//! is trimmed and the domain lower-cased; the local part is kept as typed.
//! Full-width input is refused with [`EmailRefusal::FullWidth`] rather than
//! folded.
//!
//! # Masking and confirmation
//!
//! Before a code is sent to a contact on file, a service may ask the user to
//! prove they know it in full (Microsoft's check, turned on with
//! [`confirm_masked_contacts`](crate::service::TwoFactorBuilder::confirm_masked_contacts)):
//! the last digits of the phone number, or the whole email address. That
//! check is worth nothing if the screen already shows the answer, so the
//! masked forms come in two families:
//!
//! | form | phone | email | where |
//! | --- | --- | --- | --- |
//! | screen, [`masked_for`](Destination::masked_for) | `+81 **-****-**78` | `ta**@example.com` | every ticket, view and sign-in method the flows return |
//! | log, [`masked`](Destination::masked) | `+81 **-****-5678` | `ta**@example.com` | events, `Debug`, support tools |
//! | confirmation asks for | `5678` | `taro@example.com` | [`IssueRequest::confirmation`](crate::service::IssueRequest::confirmation) |
//!
//! The screen forms and the question follow one [`MaskPolicy`] (set with
//! [`TwoFactorBuilder::mask_policy`](crate::service::TwoFactorBuilder::mask_policy)
//! or [`TwoFactorBuilder::mask_policy`](crate::service::TwoFactorBuilder::mask_policy)).
//! Its default is Microsoft's: show the last 2 digits, ask for the last 4;
//! show at most 2 characters of an email address's local part, ask for the
//! whole address. It refuses settings whose screen would show what the
//! question asks: a confirmation asks for at least two digits more than a
//! screen shows. Numbers with few digits show fewer still (at least four
//! digits of a national number stay hidden) and are asked for at most all
//! of their digits, so a screen never shows as many digits as the answer.
//!
//! ```
//! use ninsho::contact::MaskPolicy;
//! use ninsho::model::Destination;
//!
//! let policy = MaskPolicy::default();
//! let phone = Destination::phone("+81 90-1234-5678")?;
//! assert_eq!(phone.masked_for(&policy), "+81 **-****-**78");
//! assert_eq!(phone.masked_national_for(&policy), "***-****-**78");
//! assert_eq!(phone.confirmation_digits(&policy), Some(4)); // "5678"
//! assert_eq!(phone.masked(), "+81 **-****-5678"); // logs only
//!
//! let email = Destination::email("taro@example.com")?;
//! assert_eq!(email.masked_for(&policy), "ta**@example.com");
//! assert_eq!(email.confirmation_digits(&policy), None); // the whole address
//! # Ok::<(), ninsho::contact::ContactError>(())
//! ```

mod email;
mod mask;
mod phone;

use std::fmt;

pub use email::EmailRefusal;
pub(crate) use mask::mask_address;
pub use mask::{MaskPolicy, MaskPolicyError};
pub use phone::{AllowedRegions, PhoneNumber, PhonePolicy, PhoneRefusal, Region};

use crate::model::{Destination, DestinationKind};

/// A phone number or email address that was refused. Carries no part of
/// the address, so it is safe to log; [`code`](Self::code) gives a stable
/// identifier for translations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// The phone number was refused.
    #[error(transparent)]
    Phone(#[from] PhoneRefusal),
    /// The email address was refused.
    #[error(transparent)]
    Email(#[from] EmailRefusal),
}

impl ContactError {
    /// Which kind of contact was refused.
    #[must_use]
    pub fn kind(&self) -> DestinationKind {
        match self {
            Self::Phone(_) => DestinationKind::Phone,
            Self::Email(_) => DestinationKind::Email,
        }
    }

    /// The refusal's stable identifier ([`PhoneRefusal::code`] or
    /// [`EmailRefusal::code`]); [`kind`](Self::kind) tells which.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Phone(r) => r.code(),
            Self::Email(r) => r.code(),
        }
    }
}

impl Destination {
    /// A phone number in international form, e.g. `+81 90-1234-5678`,
    /// normalised to E.164 (`+819012345678`).
    ///
    /// Input is folded as [`PhonePolicy`] folds it (full-width forms, any
    /// dashes and spaces, `+81 (0)90…`), and must start with `+` and a
    /// country calling code libphonenumber knows; the national number must
    /// have a length used in that country. Any country and any number type
    /// is accepted, and the number need not be assigned: this is the
    /// policy-free constructor. To accept what users type into a form
    /// (national numbers, mobile only, Japan only…), use
    /// [`PhonePolicy::check`] and [`PhoneNumber::destination`].
    ///
    /// # Errors
    /// [`ContactError::Phone`]: [`PhoneRefusal::Empty`],
    /// [`NotANumber`](PhoneRefusal::NotANumber),
    /// [`MissingCountryCode`](PhoneRefusal::MissingCountryCode),
    /// [`UnknownCountryCode`](PhoneRefusal::UnknownCountryCode),
    /// [`TooShort`](PhoneRefusal::TooShort),
    /// [`TooLong`](PhoneRefusal::TooLong),
    /// [`InvalidNumber`](PhoneRefusal::InvalidNumber) or
    /// [`DomesticOnly`](PhoneRefusal::DomesticOnly) (a number that can only
    /// be dialled inside its country has no E.164 form a gateway reaches).
    pub fn phone(input: &str) -> Result<Self, ContactError> {
        Ok(Self {
            kind: DestinationKind::Phone,
            address: phone::international(input)?,
        })
    }

    /// An email address, e.g. `Taro@Example.COM` (stored as
    /// `Taro@example.com`). See the [module documentation](self#email-addresses)
    /// for what is accepted.
    ///
    /// # Errors
    /// [`ContactError::Email`] with the [`EmailRefusal`].
    pub fn email(input: &str) -> Result<Self, ContactError> {
        Ok(Self {
            kind: DestinationKind::Email,
            address: email::normalise(input)?,
        })
    }

    /// Phone or email.
    #[must_use]
    pub fn kind(&self) -> DestinationKind {
        self.kind
    }

    /// The normalised address.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The form send limits count by: the address, with an email address
    /// wholly lower-cased so `Taro@` and `taro@` share one limit.
    #[must_use]
    pub fn limit_key(&self) -> String {
        match self.kind {
            DestinationKind::Phone => self.address.clone(),
            DestinationKind::Email => self.address.to_lowercase(),
        }
    }

    /// The address with most of it hidden, **for logs and support tools**:
    /// `+81 **-****-5678` or `ta*******@example.com`. Events and `Debug`
    /// show this form.
    ///
    /// A phone number keeps its country code and last four digits (fewer
    /// when the national number is shorter than eight digits, so that four
    /// stay hidden), grouped `rest-4-4` from the right; for Japanese mobile
    /// numbers that is libphonenumber's grouping. An email address keeps the
    /// first two characters of its local part and its domain.
    ///
    /// Don't show it to users: four digits are what the masked-contact
    /// confirmation asks for by default. Screens use
    /// [`masked_for`](Self::masked_for).
    #[must_use]
    pub fn masked(&self) -> String {
        match self.kind {
            DestinationKind::Phone => mask::mask_phone(&self.address),
            DestinationKind::Email => mask::mask_email(&self.address),
        }
    }

    /// As [`masked`](Self::masked), but a phone number in national form,
    /// with its trunk prefix: `***-****-5678` for `090-1234-5678`. An email
    /// address is masked as by [`masked`](Self::masked). For logs too;
    /// screens use [`masked_national_for`](Self::masked_national_for).
    #[must_use]
    pub fn masked_national(&self) -> String {
        match self.kind {
            DestinationKind::Phone => mask::mask_phone_national(&self.address),
            DestinationKind::Email => mask::mask_email(&self.address),
        }
    }

    /// The address masked **for a screen**, as `policy` says:
    /// `+81 **-****-**78` or `ta**@example.com` with the default policy.
    /// This is what every view, ticket and sign-in method of the flows
    /// shows.
    ///
    /// A phone number shows its last
    /// [`phone_digits_shown`](MaskPolicy::phone_digits_shown) digits, and
    /// fewer when the national number is short, so that at least four
    /// digits stay hidden and it always shows fewer than
    /// [`confirmation_digits`](Self::confirmation_digits). An email address
    /// shows the first
    /// [`email_chars_shown`](MaskPolicy::email_chars_shown) characters of
    /// its local part, and always hides at least one.
    #[must_use]
    pub fn masked_for(&self, policy: &MaskPolicy) -> String {
        match self.kind {
            DestinationKind::Phone => mask::mask_phone_for(&self.address, policy),
            DestinationKind::Email => mask::mask_email_for(&self.address, policy),
        }
    }

    /// As [`masked_for`](Self::masked_for), but a phone number in national
    /// form: `***-****-**78` for `090-1234-5678` with the default policy.
    #[must_use]
    pub fn masked_national_for(&self, policy: &MaskPolicy) -> String {
        match self.kind {
            DestinationKind::Phone => mask::mask_phone_national_for(&self.address, policy),
            DestinationKind::Email => mask::mask_email_for(&self.address, policy),
        }
    }

    /// For a phone number: how many of its last digits the masked-contact
    /// confirmation asks for under `policy` — the policy's
    /// [`phone_digits_asked`](MaskPolicy::phone_digits_asked), or every
    /// digit of a shorter national number. Use it in the prompt ("type the
    /// last 4 digits"). `None` for an email address (the whole address is
    /// asked for), and for a stored number that is not valid E.164, which
    /// can't be confirmed.
    #[must_use]
    pub fn confirmation_digits(&self, policy: &MaskPolicy) -> Option<u8> {
        match self.kind {
            DestinationKind::Phone => mask::phone_answer(&self.address, policy)
                .and_then(|answer| u8::try_from(answer.len()).ok()),
            DestinationKind::Email => None,
        }
    }

    /// What a user types to prove they know the full contact before a code
    /// is sent to it (Microsoft's check), and what it must equal: the last
    /// [`confirmation_digits`](Self::confirmation_digits) digits of a phone
    /// (typed in any width, with any separators), or the whole email
    /// address (case-insensitive). `None` when `typed` can't be an answer
    /// or the contact can't be confirmed.
    pub(crate) fn confirmation_form(
        &self,
        typed: &str,
        policy: &MaskPolicy,
    ) -> Option<(String, String)> {
        match self.kind {
            DestinationKind::Phone => {
                let digits: String = typed
                    .chars()
                    .map(phone::fold_char)
                    .filter(char::is_ascii_digit)
                    .collect();
                let answer = mask::phone_answer(&self.address, policy)?;
                Some((digits, answer.to_owned()))
            }
            DestinationKind::Email => {
                let typed = Self::email(typed).ok()?;
                Some((typed.address.to_lowercase(), self.address.to_lowercase()))
            }
        }
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Contact details are personal data: logs get the masked form.
        f.debug_struct("Destination")
            .field("kind", &self.kind)
            .field("address", &self.masked())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        let p = Destination::phone("＋８１ 90-1234-5678").unwrap();
        assert_eq!(p.address(), "+819012345678");
        assert_eq!(p.masked(), "+81 **-****-5678");
        assert_eq!(p.masked_national(), "***-****-5678");
        let us = Destination::phone("+1 (415) 555-2671").unwrap();
        assert_eq!(us.address(), "+14155552671");
        assert_eq!(us.masked(), "+1 **-****-2671");
        for (bad, refusal) in [
            ("09012345678", PhoneRefusal::MissingCountryCode),
            ("+81", PhoneRefusal::TooShort),
            ("+8190a", PhoneRefusal::NotANumber),
            ("+0123456789", PhoneRefusal::UnknownCountryCode),
            ("+1234567890123456", PhoneRefusal::TooLong),
            ("", PhoneRefusal::Empty),
            ("++8190", PhoneRefusal::NotANumber),
        ] {
            assert_eq!(
                Destination::phone(bad).unwrap_err(),
                ContactError::Phone(refusal),
                "{bad}"
            );
        }
    }

    #[test]
    fn phone_accepts_every_country_and_type() {
        for (input, e164) in [
            ("+81 3-1234-5678", "+81312345678"),
            ("+81 50-1234-5678", "+815012345678"),
            ("+81 120-123-456", "+81120123456"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+86 138 0013 8000", "+8613800138000"),
            ("+82 10-1234-5678", "+821012345678"),
            ("+800 1234 5678", "+80012345678"),
            ("+39 06 698 12345", "+390669812345"),
        ] {
            assert_eq!(
                Destination::phone(input).unwrap().address(),
                e164,
                "{input}"
            );
        }
    }

    #[test]
    fn emails() {
        let e = Destination::email(" Taro.Yamada@Example.COM ").unwrap();
        assert_eq!(e.address(), "Taro.Yamada@example.com");
        assert_eq!(e.masked(), "Ta*********@example.com");
        assert_eq!(e.masked_national(), e.masked());
        assert_eq!(Destination::email("a@b.jp").unwrap().masked(), "a*@b.jp");
        for (bad, refusal) in [
            ("", EmailRefusal::Empty),
            ("a", EmailRefusal::MissingAt),
            ("a@", EmailRefusal::MissingDomain),
            ("@b.jp", EmailRefusal::MissingLocalPart),
            ("a@b", EmailRefusal::InvalidDomain),
            ("a b@c.jp", EmailRefusal::InvalidLocalPart),
            ("a@-b.jp", EmailRefusal::InvalidDomain),
            ("a..b@c.jp", EmailRefusal::InvalidLocalPart),
            ("a@b..jp", EmailRefusal::InvalidDomain),
        ] {
            assert_eq!(
                Destination::email(bad).unwrap_err(),
                ContactError::Email(refusal),
                "{bad}"
            );
        }
    }

    #[test]
    fn contact_error_codes() {
        let e = ContactError::from(PhoneRefusal::LandlineCannotReceiveSms);
        assert_eq!(e.code(), "landline_cannot_receive_sms");
        assert_eq!(e.kind(), DestinationKind::Phone);
        assert_eq!(
            e.to_string(),
            PhoneRefusal::LandlineCannotReceiveSms.to_string()
        );
        let e = ContactError::from(EmailRefusal::MissingAt);
        assert_eq!((e.kind(), e.code()), (DestinationKind::Email, "missing_at"));
        let e = crate::Error::from(e);
        assert!(!e.is_infrastructure());
    }

    #[test]
    fn debug_is_masked() {
        let p = Destination::phone("+819012345678").unwrap();
        assert!(!format!("{p:?}").contains("9012345678"));
        let n = PhonePolicy::default().parse("090-1234-5678").unwrap();
        assert_eq!(n.destination(), p);
        assert_eq!(Destination::from(n), p);
    }

    #[test]
    fn masking_garbage_addresses_does_not_panic() {
        // Destinations deserialised from a store are not re-validated.
        let weird: Destination =
            serde_json::from_str(r#"{"kind":"phone","address":"+é1234567890"}"#).unwrap();
        assert!(weird.masked().ends_with("7890"));
        assert!(!weird.masked_national().contains("123456"));
    }

    #[test]
    fn confirmation_forms() {
        let policy = MaskPolicy::default();
        let p = Destination::phone("+819012345678").unwrap();
        assert_eq!(
            p.confirmation_form("５６７８", &policy),
            Some(("5678".into(), "5678".into()))
        );
        assert_eq!(
            p.confirmation_form("－1234－5678", &MaskPolicy::new(1, 6).unwrap()),
            Some(("12345678".into(), "345678".into()))
        );
        assert_eq!(p.confirmation_digits(&policy), Some(4));
        let e = Destination::email("taro@example.com").unwrap();
        assert_eq!(
            e.confirmation_form("Taro@EXAMPLE.com", &policy),
            Some(("taro@example.com".into(), "taro@example.com".into()))
        );
        assert_eq!(e.confirmation_form("nope", &policy), None);
        assert_eq!(e.confirmation_digits(&policy), None);
    }

    #[test]
    fn garbage_phone_numbers_cannot_be_confirmed() {
        for address in ["", "+", "+é1234567890"] {
            let weird: Destination =
                serde_json::from_str(&format!(r#"{{"kind":"phone","address":"{address}"}}"#))
                    .unwrap();
            let policy = MaskPolicy::default();
            assert_eq!(weird.confirmation_form("", &policy), None, "{address}");
            assert_eq!(weird.confirmation_form("7890", &policy), None, "{address}");
            assert_eq!(weird.confirmation_digits(&policy), None, "{address}");
        }
    }

    #[test]
    fn screen_forms() {
        let policy = MaskPolicy::default();
        let p = Destination::phone("+819012345678").unwrap();
        assert_eq!(p.masked_for(&policy), "+81 **-****-**78");
        assert_eq!(p.masked_national_for(&policy), "***-****-**78");
        let e = Destination::email("Taro.Yamada@Example.COM").unwrap();
        assert_eq!(e.masked_for(&policy), "Ta*********@example.com");
        assert_eq!(e.masked_national_for(&policy), e.masked_for(&policy));
    }
}
