//! The texts of the messages ninsho sends, in Japanese and English, for
//! each occasion a code is sent on.
//!
//! [`Templates::default()`] holds built-in texts. Each one names the service,
//! says how long the code or link stays valid, and warns the user: never share
//! a code (the service's staff never ask for one), and never open a sign-in
//! link for a sign-in you did not start.
//!
//! # Occasions
//!
//! What an unasked-for code means depends on why it was sent, so the email
//! that carries a code says different things per [`Occasion`] (the
//! challenge's [`Purpose`], through [`Occasion::of`]):
//!
//! | occasion | if the user did not ask for the code |
//! |---|---|
//! | [`SignIn`](Occasion::SignIn), [`StepUp`](Occasion::StepUp) | someone else may know their password: change it, and enter the code nowhere |
//! | [`Recovery`](Occasion::Recovery) | someone may be trying to get into an account with their address: give the code to no one |
//! | [`SignUp`](Occasion::SignUp), [`ContactChange`](Occasion::ContactChange), [`Other`](Occasion::Other) | someone may have typed their address by mistake: ignore the email |
//!
//! The email subject names the occasion too. SMS and voice texts are the
//! same for every occasion: they only say not to share the code, and stay
//! short.
//!
//! # Overrides
//!
//! A host replaces a text for every occasion with [`Templates::set`] or
//! [`Templates::with`], or for one occasion with [`Templates::set_for`] or
//! [`Templates::with_for`]. [`Templates::get`] looks a text up in that
//! order: the override for the occasion, then the override for every
//! occasion, then the built-in text for the occasion.
//!
//! # Placeholders
//!
//! | placeholder | replaced by | used in |
//! |---|---|---|
//! | `{service}` | the host's service name | every template |
//! | `{code}` | the one-time code (spelled digit by digit for voice) | code bodies |
//! | `{minutes}` | how many minutes the code or link stays valid | every template |
//! | `{url}` | the one-time link | link bodies |
//! | `{device}` | the device trying to sign in, cleaned of control characters and shortened | link templates |
//!
//! Substitution is a single pass: text that a value brings in is never
//! scanned again, so a service name or code containing `{code}` stays
//! literal. An unknown `{name}` is left as it is. A placeholder may appear
//! several times (the voice templates read the code twice).
//!
//! Rendering refuses templates that would leak or lose the secret: a code
//! body without `{code}` or a link body without `{url}`
//! ([`TemplateError::MissingPlaceholder`]), and an email subject containing
//! `{code}` or `{url}` ([`TemplateError::SecretInSubject`]): subjects show in
//! notification previews and logs. [`Templates::validate`] checks every
//! template and every override at once, for example at start-up.
//!
//! # Channel rules
//!
//! | channel | code | one-time link | subject | origin line | varies by occasion |
//! |---|---|---|---|---|---|
//! | SMS | yes | yes | no | yes, when [`CodeParams::origin`] is set | no |
//! | voice | yes, read one character at a time, twice | no | no | no | no |
//! | email | yes | yes | yes | no | yes, for codes |
//!
//! - **SMS codes** end with the origin-bound line `@example.com #123456`
//!   when [`CodeParams::origin`] is set, so browsers (WebOTP) and iOS/Android
//!   keyboards offer to fill the code in on that domain only. It is always the
//!   last line, after a blank line.
//! - **Voice codes** are read one character at a time (`1, 2, 3`, or
//!   `1、2、3` in Japanese) so a text-to-speech engine does not say
//!   "one hundred twenty-three", and the built-in texts repeat the code.
//! - **Email** gets a subject; neither email nor voice gets the origin line.
//! - **One-time links** go by SMS or email only; asking for a voice link is
//!   [`TemplateError::UnsupportedChannel`]. A link signs the user in, so link
//!   texts are looked up for [`Occasion::SignIn`].
//!
//! ```
//! use ninsho::gateway::{CodeParams, Occasion, TemplateKind, Templates};
//! use ninsho::model::{Channel, Locale};
//!
//! let templates = Templates::default().with(
//!     Locale::En,
//!     TemplateKind::SmsCode,
//!     "{code} is your {service} code. Don't share it.",
//! );
//! let params = CodeParams {
//!     service: "Example",
//!     code: "123456",
//!     minutes: 10,
//!     origin: Some("example.com"),
//!     occasion: Occasion::SignIn,
//! };
//! let sms = templates.render_code(Locale::En, Channel::Sms, &params).unwrap();
//! assert_eq!(
//!     sms.body,
//!     "123456 is your Example code. Don't share it.\n\n@example.com #123456"
//! );
//!
//! let voice = templates.render_code(Locale::En, Channel::Voice, &params).unwrap();
//! assert!(voice.body.ends_with("1, 2, 3, 4, 5, 6. Again: 1, 2, 3, 4, 5, 6."));
//!
//! // A sign-in code by email warns about the password; a sign-up code
//! // says the address may have been typed by mistake.
//! let sign_in = templates.render_code(Locale::En, Channel::Email, &params).unwrap();
//! assert!(sign_in.body.contains("someone else may know your password"));
//! let sign_up = CodeParams { occasion: Occasion::SignUp, ..params };
//! let sign_up = templates.render_code(Locale::En, Channel::Email, &sign_up).unwrap();
//! assert!(sign_up.body.contains("typed your email address by mistake"));
//!
//! // An override for one occasion wins over one for every occasion.
//! let templates = templates
//!     .with(Locale::En, TemplateKind::EmailCodeSubject, "{service} code")
//!     .with_for(Occasion::SignIn, Locale::En, TemplateKind::EmailCodeSubject, "{service} sign-in");
//! assert_eq!(
//!     templates.get(Occasion::SignIn, Locale::En, TemplateKind::EmailCodeSubject),
//!     "{service} sign-in"
//! );
//! assert_eq!(
//!     templates.get(Occasion::SignUp, Locale::En, TemplateKind::EmailCodeSubject),
//!     "{service} code"
//! );
//! ```

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Channel, Locale, Purpose};

/// Which text of a [`Templates`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TemplateKind {
    /// SMS carrying a one-time code. Must contain `{code}`.
    SmsCode,
    /// Voice call reading a one-time code. Must contain `{code}`.
    VoiceCode,
    /// Subject of an email carrying a code. Must not contain `{code}`.
    EmailCodeSubject,
    /// Body of an email carrying a code. Must contain `{code}`.
    EmailCodeBody,
    /// SMS carrying a one-time sign-in link. Must contain `{url}`.
    SmsLink,
    /// Subject of an email carrying a sign-in link. Must not contain `{url}`.
    EmailLinkSubject,
    /// Body of an email carrying a sign-in link. Must contain `{url}`.
    EmailLinkBody,
}

impl TemplateKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 7] = [
        Self::SmsCode,
        Self::VoiceCode,
        Self::EmailCodeSubject,
        Self::EmailCodeBody,
        Self::SmsLink,
        Self::EmailLinkSubject,
        Self::EmailLinkBody,
    ];

    /// The placeholder this template must contain, if any.
    fn required_placeholder(self) -> Option<&'static str> {
        match self {
            Self::SmsCode | Self::VoiceCode | Self::EmailCodeBody => Some(CODE),
            Self::SmsLink | Self::EmailLinkBody => Some(URL),
            Self::EmailCodeSubject | Self::EmailLinkSubject => None,
        }
    }

    fn is_subject(self) -> bool {
        matches!(self, Self::EmailCodeSubject | Self::EmailLinkSubject)
    }
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SmsCode => "SMS code",
            Self::VoiceCode => "voice code",
            Self::EmailCodeSubject => "email code subject",
            Self::EmailCodeBody => "email code body",
            Self::SmsLink => "SMS link",
            Self::EmailLinkSubject => "email link subject",
            Self::EmailLinkBody => "email link body",
        })
    }
}

/// Why a message is sent, as far as its text is concerned: what it should
/// tell a user who did not ask for it. [`Occasion::of`] maps a challenge's
/// [`Purpose`] to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Occasion {
    /// The second step of signing in. An unasked-for code means someone
    /// else got past the password.
    SignIn,
    /// Verifying a contact while creating an account. An unasked-for code
    /// most likely means someone mistyped their own address.
    SignUp,
    /// Adding or changing a contact on an account; as for sign-up.
    ContactChange,
    /// Confirming it is the user before a sensitive change. An unasked-for
    /// code means someone is signed in as them or knows their password.
    StepUp,
    /// "I can't sign in": finding an account by a contact. An unasked-for
    /// code means someone tried to get into an account with this address.
    Recovery,
    /// A purpose of the host's own ([`Purpose::Other`]); the texts say the
    /// address may have been typed by mistake.
    Other,
}

impl Occasion {
    /// Every occasion, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::SignIn,
        Self::SignUp,
        Self::ContactChange,
        Self::StepUp,
        Self::Recovery,
        Self::Other,
    ];

    /// The occasion a code sent for `purpose` is written for.
    #[must_use]
    pub fn of(purpose: &Purpose) -> Self {
        match purpose {
            Purpose::SignIn => Self::SignIn,
            Purpose::SignUp => Self::SignUp,
            Purpose::ContactChange => Self::ContactChange,
            Purpose::StepUp => Self::StepUp,
            Purpose::Recovery => Self::Recovery,
            Purpose::Other(_) => Self::Other,
        }
    }
}

impl From<&Purpose> for Occasion {
    fn from(purpose: &Purpose) -> Self {
        Self::of(purpose)
    }
}

impl fmt::Display for Occasion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SignIn => "sign-in",
            Self::SignUp => "sign-up",
            Self::ContactChange => "contact change",
            Self::StepUp => "step-up",
            Self::Recovery => "recovery",
            Self::Other => "other",
        })
    }
}

/// Shows ` for sign-in` after a template's name when the faulty text is an
/// override for one occasion, nothing otherwise.
struct ForOccasion<'a>(&'a Option<Occasion>);

impl fmt::Display for ForOccasion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(occasion) => write!(f, " for {occasion}"),
            None => Ok(()),
        }
    }
}

/// A message could not be rendered. Every variant is a host configuration
/// or calling mistake: retrying the same call fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// This kind of message cannot go over this channel (a one-time link by
    /// voice call).
    #[error("a one-time link cannot be sent by {channel}; send it by SMS or email")]
    UnsupportedChannel {
        /// The channel that was asked for.
        channel: Channel,
    },
    /// A template lacks the placeholder that carries the secret, so the
    /// message would be useless.
    #[error(
        "the {locale} {kind} template{} has no {placeholder} placeholder; fix the template override",
        ForOccasion(.occasion)
    )]
    MissingPlaceholder {
        /// The occasion of the faulty override when it was set for one
        /// ([`Templates::set_for`]); `None` for one set for every occasion
        /// ([`Templates::set`]).
        occasion: Option<Occasion>,
        /// The locale of the faulty template.
        locale: Locale,
        /// Which template.
        kind: TemplateKind,
        /// The missing placeholder, braces included.
        placeholder: &'static str,
    },
    /// An email subject template would put the code or link in the subject,
    /// which shows in notification previews and logs.
    #[error(
        "the {locale} {kind} template{} puts {placeholder} in an email subject, which is shown in previews and logs; remove it",
        ForOccasion(.occasion)
    )]
    SecretInSubject {
        /// The occasion of the faulty override when it was set for one
        /// ([`Templates::set_for`]); `None` for one set for every occasion
        /// ([`Templates::set`]).
        occasion: Option<Occasion>,
        /// The locale of the faulty template.
        locale: Locale,
        /// Which template.
        kind: TemplateKind,
        /// The secret placeholder found, braces included.
        placeholder: &'static str,
    },
    /// The origin for the SMS autofill line is not a bare domain name.
    #[error(
        "the SMS origin must be a bare domain name such as `example.com` (no scheme, port or path)"
    )]
    InvalidOrigin,
}

/// What a code message needs (see [`Templates::render_code`]).
#[derive(Clone, Copy)]
pub struct CodeParams<'a> {
    /// The service name shown to the user (`{service}`).
    pub service: &'a str,
    /// The one-time code (`{code}`).
    pub code: &'a str,
    /// How many minutes the code stays valid (`{minutes}`).
    pub minutes: u32,
    /// The host's domain (`example.com`, no scheme or port). When set, SMS
    /// messages end with the origin-bound autofill line
    /// `@example.com #123456`; ignored for voice and email.
    pub origin: Option<&'a str>,
    /// Why the code is sent: it picks the texts (see [`Occasion`]).
    pub occasion: Occasion,
}

impl fmt::Debug for CodeParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeParams")
            .field("service", &self.service)
            .field("code", &"[redacted]")
            .field("minutes", &self.minutes)
            .field("origin", &self.origin)
            .field("occasion", &self.occasion)
            .finish()
    }
}

/// What a one-time link message needs (see [`Templates::render_link`]).
#[derive(Clone, Copy)]
pub struct LinkParams<'a> {
    /// The service name shown to the user (`{service}`).
    pub service: &'a str,
    /// The one-time link (`{url}`).
    pub url: &'a str,
    /// How many minutes the link stays valid (`{minutes}`).
    pub minutes: u32,
    /// The device trying to sign in, e.g. `"Chrome on Windows (Tokyo)"`
    /// (`{device}`). It usually comes from the attacker's side (a user
    /// agent), so it is cleaned: control characters and line breaks become
    /// spaces, runs of spaces collapse, and it is cut to 64 characters.
    pub device: &'a str,
}

impl fmt::Debug for LinkParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkParams")
            .field("service", &self.service)
            .field("url", &"[redacted]")
            .field("minutes", &self.minutes)
            .field("device", &self.device)
            .finish()
    }
}

/// A rendered message: an optional subject (email only) and a body.
///
/// The body contains the code or link; `Debug` redacts it. Turn it into a
/// [`Message`](super::Message) with
/// `Message::new(channel, to, rendered.subject, rendered.body, locale)`.
#[derive(Clone)]
#[non_exhaustive]
pub struct Rendered {
    /// The subject line, for email; `None` for SMS and voice.
    pub subject: Option<String>,
    /// The message text.
    pub body: String,
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field("subject", &self.subject)
            .field("body", &"[redacted]")
            .finish()
    }
}

const SERVICE: &str = "{service}";
const CODE: &str = "{code}";
const MINUTES: &str = "{minutes}";
const URL: &str = "{url}";
const DEVICE: &str = "{device}";

/// Longest `{device}` text, in characters, before it is cut.
const MAX_DEVICE_CHARS: usize = 64;

/// The set of message texts, per occasion, locale and kind. `Default` gives
/// the built-in texts; overrides replace single texts, for every occasion or
/// for one.
///
/// # What the built-in SMS texts cost
///
/// Carriers bill per segment ([`sms_info`](super::sms_info)): 70 UTF-16
/// units for a UCS-2 text such as any Japanese one, 160 septets for a GSM-7
/// one, and 67 or 153 per segment once a text needs more than one. The
/// built-in code SMS fits one segment: with a 6-digit code, a validity of
/// 10 minutes and the WebOTP line for `example.com` (`\n\n@example.com
/// #123456`), a 10-character service name gives
///
/// | text | size | segments |
/// |---|---|---|
/// | Japanese code SMS | 67 UCS-2 units (45 without the WebOTP line) | 1 |
/// | English code SMS | 149 GSM-7 septets (127 without) | 1 |
///
/// Each extra character of service name costs one unit, and so does each
/// character of the host in the WebOTP line, so a code SMS fits one segment
/// while service name and host together stay within **24 characters in
/// Japanese and 32 in English**: up to **13 characters** of service name in
/// Japanese and **21** in English with a host of 11 characters like
/// `example.com` (35 and 43 without the WebOTP line). A character outside
/// the Basic Multilingual Plane (an emoji, `𠮷`) costs two units, and so
/// does a GSM-7 extension character (`€ [ ] { } ~ | ^ \`) in English. A
/// 3-digit validity costs one more unit. Each extra digit of code costs two
/// units with the WebOTP line (the code is written twice) and one without:
/// an 8-digit code leaves 9 characters of service name in Japanese with
/// `example.com`.
///
/// A service name with any character outside the GSM 03.38 alphabet (any
/// Japanese, `ō`, curly quotes) turns the *whole* English text into UCS-2:
/// the same 149 units are then 3 segments. Give such a service an English
/// name of its own, or an English override ([`set`](Self::set)).
///
/// A one-time link does not fit one segment with any text: a link as
/// ninsho makes it is the link base plus 85 characters (107 with
/// `https://example.com/l/`). With a 25-character device name
/// (`Chrome on Windows (Tokyo)`) and a 10-character service name, the
/// Japanese link SMS is 192 units, 3 segments (201 units at most), and the
/// English one 287 septets, 2 segments (306 at most); each character of
/// link base, device or service name adds one.
///
/// ```
/// use ninsho::gateway::{sms_info, CodeParams, Occasion, SmsEncoding, Templates};
/// use ninsho::model::{Channel, Locale};
///
/// let params = CodeParams {
///     service: "株式会社ニンショウ堂",
///     code: "123456",
///     minutes: 10,
///     origin: Some("example.com"),
///     occasion: Occasion::SignIn,
/// };
/// let sms = Templates::default().render_code(Locale::Ja, Channel::Sms, &params)?;
/// assert_eq!(
///     sms.body,
///     "【株式会社ニンショウ堂】認証コード：123456（10分間有効）\n\
///      他人に教えないでください\n\n@example.com #123456"
/// );
/// let info = sms_info(&sms.body);
/// assert_eq!((info.encoding, info.units, info.segments), (SmsEncoding::Ucs2, 67, 1));
/// # Ok::<(), ninsho::gateway::TemplateError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Templates {
    /// Keyed by occasion (`None`: every occasion), locale and kind.
    overrides: HashMap<(Option<Occasion>, Locale, TemplateKind), String>,
}

impl Templates {
    /// The built-in texts (same as `default()`).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in text for `occasion`, `locale` and `kind`. Only the
    /// email code subject and body differ between occasions.
    #[must_use]
    pub fn builtin(occasion: Occasion, locale: Locale, kind: TemplateKind) -> &'static str {
        match locale {
            Locale::Ja => builtin_ja(occasion, kind),
            Locale::En => builtin_en(occasion, kind),
        }
    }

    /// The text in use for `occasion`, `locale` and `kind`: the override
    /// for this occasion if one was set ([`set_for`](Self::set_for)), else
    /// the override for every occasion ([`set`](Self::set)), else the
    /// built-in text.
    #[must_use]
    pub fn get(&self, occasion: Occasion, locale: Locale, kind: TemplateKind) -> &str {
        self.lookup(occasion, locale, kind).1
    }

    /// [`get`](Self::get), and which override the text comes from: `Some`
    /// for one set for this occasion, `None` for one set for every
    /// occasion or the built-in text.
    fn lookup(
        &self,
        occasion: Occasion,
        locale: Locale,
        kind: TemplateKind,
    ) -> (Option<Occasion>, &str) {
        if let Some(text) = self.overrides.get(&(Some(occasion), locale, kind)) {
            return (Some(occasion), text);
        }
        let text = self
            .overrides
            .get(&(None, locale, kind))
            .map_or_else(|| Self::builtin(occasion, locale, kind), String::as_str);
        (None, text)
    }

    /// Replaces the text for `locale` and `kind` on every occasion (an
    /// override for one occasion, from [`set_for`](Self::set_for), still
    /// wins on its own). It is checked when a message is rendered (or by
    /// [`validate`](Self::validate)).
    pub fn set(
        &mut self,
        locale: Locale,
        kind: TemplateKind,
        text: impl Into<String>,
    ) -> &mut Self {
        self.overrides.insert((None, locale, kind), text.into());
        self
    }

    /// Builder form of [`set`](Self::set).
    #[must_use]
    pub fn with(mut self, locale: Locale, kind: TemplateKind, text: impl Into<String>) -> Self {
        self.set(locale, kind, text);
        self
    }

    /// Drops the override [`set`](Self::set) made for `locale` and `kind`,
    /// going back to the built-in texts. Overrides for one occasion stay
    /// (see [`reset_for`](Self::reset_for)).
    pub fn reset(&mut self, locale: Locale, kind: TemplateKind) -> &mut Self {
        self.overrides.remove(&(None, locale, kind));
        self
    }

    /// Replaces the text for `locale` and `kind` on `occasion` only; it wins
    /// over an override for every occasion. A sign-in email, say, can then
    /// tell the user to change their password while the sign-up email
    /// keeps the general text. Checked as [`set`](Self::set)'s texts are.
    pub fn set_for(
        &mut self,
        occasion: Occasion,
        locale: Locale,
        kind: TemplateKind,
        text: impl Into<String>,
    ) -> &mut Self {
        self.overrides
            .insert((Some(occasion), locale, kind), text.into());
        self
    }

    /// Builder form of [`set_for`](Self::set_for).
    #[must_use]
    pub fn with_for(
        mut self,
        occasion: Occasion,
        locale: Locale,
        kind: TemplateKind,
        text: impl Into<String>,
    ) -> Self {
        self.set_for(occasion, locale, kind, text);
        self
    }

    /// Drops the override [`set_for`](Self::set_for) made for `occasion`,
    /// `locale` and `kind`: that occasion goes back to the override for
    /// every occasion, if any, else to the built-in text.
    pub fn reset_for(
        &mut self,
        occasion: Occasion,
        locale: Locale,
        kind: TemplateKind,
    ) -> &mut Self {
        self.overrides.remove(&(Some(occasion), locale, kind));
        self
    }

    /// Checks every template of every occasion and locale, and every
    /// override (one hidden on every occasion by overrides for each still
    /// counts): bodies contain the placeholder that carries the secret,
    /// subjects contain no secret.
    ///
    /// # Errors
    /// A faulty template, as [`TemplateError::MissingPlaceholder`] or
    /// [`TemplateError::SecretInSubject`]: the first in use, in the order
    /// of [`Occasion::ALL`], the locales and [`TemplateKind::ALL`], else an
    /// override no occasion uses.
    pub fn validate(&self) -> Result<(), TemplateError> {
        for occasion in Occasion::ALL {
            for locale in [Locale::Ja, Locale::En] {
                for kind in TemplateKind::ALL {
                    self.checked(occasion, locale, kind)?;
                }
            }
        }
        for (&(occasion, locale, kind), text) in &self.overrides {
            check(text, occasion, locale, kind)?;
        }
        Ok(())
    }

    /// Renders a one-time code message for `channel`, in the texts for
    /// [`CodeParams::occasion`].
    ///
    /// SMS: the [`SmsCode`](TemplateKind::SmsCode) text, plus the
    /// origin-bound line `\n\n@{origin} #{code}` as the last line when
    /// [`CodeParams::origin`] is set. Voice: the
    /// [`VoiceCode`](TemplateKind::VoiceCode) text with the code spelled one
    /// character at a time. Email: subject and body.
    ///
    /// # Errors
    /// [`TemplateError::InvalidOrigin`] for an origin that is not a bare
    /// domain name (SMS only); [`TemplateError::MissingPlaceholder`] or
    /// [`TemplateError::SecretInSubject`] for a faulty override.
    pub fn render_code(
        &self,
        locale: Locale,
        channel: Channel,
        params: &CodeParams<'_>,
    ) -> Result<Rendered, TemplateError> {
        let minutes = params.minutes.to_string();
        let spelled;
        let code = match channel {
            Channel::Voice => {
                spelled = spell_out(params.code, locale);
                spelled.as_str()
            }
            Channel::Sms | Channel::Email => params.code,
        };
        let values = |name: &str| match name {
            SERVICE => Some(params.service),
            CODE => Some(code),
            MINUTES => Some(minutes.as_str()),
            _ => None,
        };
        let text = |kind| self.checked(params.occasion, locale, kind);
        match channel {
            Channel::Sms => {
                let mut body = substitute(text(TemplateKind::SmsCode)?, values);
                if let Some(origin) = params.origin {
                    if !is_bare_domain(origin) {
                        return Err(TemplateError::InvalidOrigin);
                    }
                    body.truncate(body.trim_end().len());
                    body.push_str("\n\n@");
                    body.push_str(origin);
                    body.push_str(" #");
                    body.push_str(params.code);
                }
                Ok(Rendered {
                    subject: None,
                    body,
                })
            }
            Channel::Voice => Ok(Rendered {
                subject: None,
                body: substitute(text(TemplateKind::VoiceCode)?, values),
            }),
            Channel::Email => Ok(Rendered {
                subject: Some(substitute(text(TemplateKind::EmailCodeSubject)?, values)),
                body: substitute(text(TemplateKind::EmailCodeBody)?, values),
            }),
        }
    }

    /// Renders a one-time sign-in link message for `channel` (SMS or email).
    /// A link signs the user in, so its texts are those for
    /// [`Occasion::SignIn`] (an override set with
    /// [`set_for`](Self::set_for) for that occasion applies).
    ///
    /// # Errors
    /// [`TemplateError::UnsupportedChannel`] for voice;
    /// [`TemplateError::MissingPlaceholder`] or
    /// [`TemplateError::SecretInSubject`] for a faulty override.
    pub fn render_link(
        &self,
        locale: Locale,
        channel: Channel,
        params: &LinkParams<'_>,
    ) -> Result<Rendered, TemplateError> {
        let minutes = params.minutes.to_string();
        let device = clean_device(params.device, locale);
        let values = |name: &str| match name {
            SERVICE => Some(params.service),
            URL => Some(params.url),
            MINUTES => Some(minutes.as_str()),
            DEVICE => Some(device.as_str()),
            _ => None,
        };
        let text = |kind| self.checked(Occasion::SignIn, locale, kind);
        match channel {
            Channel::Sms => Ok(Rendered {
                subject: None,
                body: substitute(text(TemplateKind::SmsLink)?, values),
            }),
            Channel::Email => Ok(Rendered {
                subject: Some(substitute(text(TemplateKind::EmailLinkSubject)?, values)),
                body: substitute(text(TemplateKind::EmailLinkBody)?, values),
            }),
            Channel::Voice => Err(TemplateError::UnsupportedChannel { channel }),
        }
    }

    /// The text for `occasion`, `locale` and `kind`, after checking it
    /// carries the secret where it must and nowhere it must not.
    fn checked(
        &self,
        occasion: Occasion,
        locale: Locale,
        kind: TemplateKind,
    ) -> Result<&str, TemplateError> {
        let (source, text) = self.lookup(occasion, locale, kind);
        check(text, source, locale, kind)?;
        Ok(text)
    }
}

/// Checks that `text`, the `locale` `kind` template (from an override for
/// `occasion`, when `Some`), carries the secret where it must and nowhere it
/// must not.
fn check(
    text: &str,
    occasion: Option<Occasion>,
    locale: Locale,
    kind: TemplateKind,
) -> Result<(), TemplateError> {
    if kind.is_subject()
        && let Some(placeholder) = [CODE, URL].into_iter().find(|p| text.contains(p))
    {
        return Err(TemplateError::SecretInSubject {
            occasion,
            locale,
            kind,
            placeholder,
        });
    }
    if let Some(placeholder) = kind.required_placeholder()
        && !text.contains(placeholder)
    {
        return Err(TemplateError::MissingPlaceholder {
            occasion,
            locale,
            kind,
            placeholder,
        });
    }
    Ok(())
}

/// Replaces every `{name}` for which `value` has a value, in one pass:
/// substituted text is never scanned again. Unknown names stay as they are.
fn substitute<'v>(template: &str, value: impl Fn(&str) -> Option<&'v str>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        let known = tail
            .find('}')
            .and_then(|close| value(&tail[..=close]).map(|v| (v, close)));
        match known {
            Some((v, close)) => {
                out.push_str(v);
                rest = &tail[close + 1..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The code one character at a time, for text-to-speech.
fn spell_out(code: &str, locale: Locale) -> String {
    let separator = match locale {
        Locale::Ja => "、",
        Locale::En => ", ",
    };
    let mut out = String::with_capacity(code.len() * 3);
    for c in code.chars().filter(|c| !c.is_whitespace()) {
        if !out.is_empty() {
            out.push_str(separator);
        }
        out.push(c);
    }
    out
}

/// The device description made safe to show: one line, no control
/// characters, at most [`MAX_DEVICE_CHARS`] characters.
fn clean_device(device: &str, locale: Locale) -> String {
    let mut out = String::with_capacity(device.len().min(MAX_DEVICE_CHARS * 4));
    let mut count = 0;
    let mut pending_space = false;
    for c in device.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        if count + usize::from(pending_space) >= MAX_DEVICE_CHARS {
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
    }
    if out.is_empty() {
        return match locale {
            Locale::Ja => "不明な端末",
            Locale::En => "an unknown device",
        }
        .to_owned();
    }
    out
}

/// Whether `origin` is a bare DNS name (letters, digits, `-` and `.`), as the
/// origin-bound one-time code format requires.
fn is_bare_domain(origin: &str) -> bool {
    !origin.is_empty()
        && origin.len() <= 253
        && origin.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A Japanese email code body: `$intro`, the code and its lifetime, the
/// "never share it" line, then `$warning` for a user who did not ask.
macro_rules! ja_email_code_body {
    ($intro:literal, $warning:literal) => {
        concat!(
            $intro,
            "\n\n認証コード：{code}\n\n\
             このコードの有効期限は{minutes}分です。\n\n\
             このコードは誰にも教えないでください。{service}の担当者が電話、メール、チャットなどでコードをお聞きすることはありません。\n\n",
            $warning,
            "\n\n{service}"
        )
    };
}

/// The English form of [`ja_email_code_body`].
macro_rules! en_email_code_body {
    ($intro:literal, $warning:literal) => {
        concat!(
            "Hello,\n\n",
            $intro,
            "\n\n{code}\n\n\
             The code is valid for {minutes} minutes.\n\n\
             Do not share this code with anyone. {service} staff will never ask you for it, \
             by phone, email or chat.\n\n",
            $warning,
            "\n\n{service}"
        )
    };
}

fn builtin_ja(occasion: Occasion, kind: TemplateKind) -> &'static str {
    match kind {
        // One UCS-2 segment with the WebOTP line: see `Templates`.
        TemplateKind::SmsCode => {
            "【{service}】認証コード：{code}（{minutes}分間有効）\n\
             他人に教えないでください"
        }
        TemplateKind::VoiceCode => {
            "こちらは{service}です。\
             このコードは誰にも教えないでください。{service}の担当者がコードをお聞きすることはありません。\
             コードの有効期限は{minutes}分です。\
             認証コードは、{code}。繰り返します。{code}。"
        }
        TemplateKind::EmailCodeSubject => match occasion {
            Occasion::SignIn => "【{service}】ログイン用の認証コード",
            Occasion::StepUp => "【{service}】本人確認の認証コード",
            Occasion::Recovery => "【{service}】アカウント復旧の認証コード",
            Occasion::SignUp | Occasion::ContactChange => {
                "【{service}】メールアドレス確認の認証コード"
            }
            Occasion::Other => "【{service}】認証コードのお知らせ",
        },
        TemplateKind::EmailCodeBody => match occasion {
            Occasion::SignIn => ja_email_code_body!(
                "{service}へのログインを続けるには、以下の認証コードを入力してください。",
                "ログインしようとしていない場合は、第三者があなたのパスワードを知っている可能性があります。\
                 このコードはどこにも入力せず、すぐにパスワードを変更してください。"
            ),
            Occasion::StepUp => ja_email_code_body!(
                "{service}でご本人確認を行うため、以下の認証コードを入力してください。",
                "お心当たりのない場合は、第三者があなたのアカウントにログインしているか、パスワードを知っている可能性があります。\
                 このコードはどこにも入力せず、すぐにパスワードを変更してください。"
            ),
            Occasion::Recovery => ja_email_code_body!(
                "{service}のアカウントを復旧するには、以下の認証コードを入力してください。",
                "お心当たりのない場合は、第三者があなたのメールアドレスを使ってアカウントに入ろうとしている可能性があります。\
                 このコードは誰にも教えず、このメールは破棄してください。"
            ),
            Occasion::SignUp => ja_email_code_body!(
                "{service}へのご登録ありがとうございます。\n\n\
                 メールアドレスを確認するため、以下の認証コードを入力してください。",
                "お心当たりのない場合は、どなたかがメールアドレスを誤って入力した可能性があります。\
                 このメールは破棄してください。"
            ),
            Occasion::ContactChange => ja_email_code_body!(
                "{service}のアカウントにこのメールアドレスを登録するため、以下の認証コードを入力してください。",
                "お心当たりのない場合は、どなたかがメールアドレスを誤って入力した可能性があります。\
                 このメールは破棄してください。"
            ),
            Occasion::Other => ja_email_code_body!(
                "{service}をご利用いただきありがとうございます。\n\n\
                 以下の認証コードを入力して、ご本人確認を完了してください。",
                "お心当たりのない場合は、どなたかがメールアドレスを誤って入力した可能性があります。\
                 このメールは破棄してください。"
            ),
        },
        TemplateKind::SmsLink => {
            "【{service}】{device}からのログインを承認するには{minutes}分以内に開いてください\n\
             {url}\n\
             お心当たりがなければ開かないでください"
        }
        TemplateKind::EmailLinkSubject => "【{service}】ログインの確認",
        TemplateKind::EmailLinkBody => {
            "{service}のアカウントへのログインが試みられています。\n\
             \n\
             端末：{device}\n\
             \n\
             ご本人の場合は、{minutes}分以内に以下のURLを開いてログインを承認してください。\n\
             \n\
             {url}\n\
             \n\
             ログインしようとしていない場合は、このURLを開かないでください。第三者があなたのパスワードを知っている可能性があります。パスワードの変更をおすすめします。\n\
             \n\
             このURLは一度だけ使えます。誰にも転送しないでください。\n\
             \n\
             {service}"
        }
    }
}

fn builtin_en(occasion: Occasion, kind: TemplateKind) -> &'static str {
    match kind {
        // One GSM-7 segment with the WebOTP line: see `Templates`.
        TemplateKind::SmsCode => {
            "{service} verification code: {code}\n\
             Valid for {minutes} min. Do not share this code with anyone. \
             Our staff will never ask you for it."
        }
        TemplateKind::VoiceCode => {
            "Hello, this is {service}. \
             Do not share this code with anyone. {service} staff will never ask you for it. \
             The code is valid for {minutes} minutes. \
             Your verification code is: {code}. Again: {code}."
        }
        TemplateKind::EmailCodeSubject => match occasion {
            Occasion::SignIn => "Your {service} sign-in code",
            Occasion::Recovery => "Your {service} account recovery code",
            Occasion::SignUp | Occasion::ContactChange => {
                "Confirm your email address for {service}"
            }
            Occasion::StepUp | Occasion::Other => "Your {service} verification code",
        },
        TemplateKind::EmailCodeBody => match occasion {
            Occasion::SignIn => en_email_code_body!(
                "Enter this code to finish signing in to {service}:",
                "If you did not try to sign in, someone else may know your password. \
                 Do not enter this code anywhere, and change your password now."
            ),
            Occasion::StepUp => en_email_code_body!(
                "Enter this code to confirm it is you:",
                "If you did not ask for this code, someone else may be signed in to your \
                 account or know your password. Do not enter this code anywhere, and change \
                 your password now."
            ),
            Occasion::Recovery => en_email_code_body!(
                "Enter this code to recover your {service} account:",
                "If you did not ask for this code, someone may be trying to get into an \
                 account with your email address. Do not give this code to anyone; you can \
                 ignore this email."
            ),
            Occasion::SignUp => en_email_code_body!(
                "Enter this code to confirm your email address and finish signing up for \
                 {service}:",
                "If you did not ask for this code, someone may have typed your email address \
                 by mistake; you can ignore this email."
            ),
            Occasion::ContactChange => en_email_code_body!(
                "Enter this code to add this email address to your {service} account:",
                "If you did not ask for this code, someone may have typed your email address \
                 by mistake; you can ignore this email."
            ),
            Occasion::Other => en_email_code_body!(
                "Enter this code to confirm it is you:",
                "If you did not ask for this code, someone may have typed your email address \
                 by mistake; you can ignore this email."
            ),
        },
        TemplateKind::SmsLink => {
            "{service}: someone is trying to sign in on {device}. \
             If it is you, open this link within {minutes} min to approve:\n\
             {url}\n\
             If you did not try to sign in, do not open this link."
        }
        TemplateKind::EmailLinkSubject => "{service} sign-in request",
        TemplateKind::EmailLinkBody => {
            "Someone is trying to sign in to your {service} account.\n\
             \n\
             Device: {device}\n\
             \n\
             If it is you, open this link within {minutes} minutes to approve the sign-in:\n\
             \n\
             {url}\n\
             \n\
             If you did not try to sign in, do not open this link. Someone else may know your \
             password; we recommend changing it.\n\
             \n\
             The link works only once. Do not forward it to anyone.\n\
             \n\
             {service}"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{SmsEncoding, sms_info};

    fn code_params(origin: Option<&'static str>) -> CodeParams<'static> {
        CodeParams {
            service: "Example",
            code: "123456",
            minutes: 10,
            origin,
            occasion: Occasion::SignIn,
        }
    }

    fn email_code(t: &Templates, occasion: Occasion, locale: Locale) -> Rendered {
        let params = CodeParams {
            occasion,
            ..code_params(None)
        };
        t.render_code(locale, Channel::Email, &params).unwrap()
    }

    fn link_params() -> LinkParams<'static> {
        LinkParams {
            service: "Example",
            url: "https://example.com/a/XyZ123",
            minutes: 15,
            device: "Chrome on Windows (Tokyo)",
        }
    }

    const LOCALES: [Locale; 2] = [Locale::Ja, Locale::En];

    #[test]
    fn builtins_are_valid_and_say_what_they_must() {
        let t = Templates::default();
        t.validate().unwrap();
        for occasion in Occasion::ALL {
            for locale in LOCALES {
                for kind in TemplateKind::ALL {
                    let text = Templates::builtin(occasion, locale, kind);
                    let name = format!("{occasion} {locale} {kind}");
                    assert!(text.contains(SERVICE), "{name} names the service");
                    if !kind.is_subject() {
                        assert!(text.contains(MINUTES), "{name} gives the validity");
                    }
                    if matches!(kind, TemplateKind::SmsLink | TemplateKind::EmailLinkBody) {
                        assert!(text.contains(DEVICE), "{name} names the device");
                    }
                    assert_eq!(t.get(occasion, locale, kind), text, "{name}");
                }
            }
        }
    }

    #[test]
    fn sms_code_english() {
        let t = Templates::default();
        let r = t
            .render_code(Locale::En, Channel::Sms, &code_params(None))
            .unwrap();
        assert_eq!(r.subject, None);
        assert!(r.body.contains("123456"));
        assert!(r.body.contains("Example"));
        assert!(r.body.contains("10 min"));
        assert!(r.body.contains("Do not share this code"));
        assert!(r.body.contains("Our staff will never ask you for it."));
        assert!(!r.body.contains('@'));
        assert!(!r.body.contains('{'));
        assert_eq!(sms_info(&r.body).encoding, SmsEncoding::Gsm7);
    }

    #[test]
    fn sms_code_japanese_is_ucs2() {
        let t = Templates::default();
        let r = t
            .render_code(Locale::Ja, Channel::Sms, &code_params(None))
            .unwrap();
        assert!(r.body.contains("認証コード：123456"));
        assert!(r.body.contains("（10分間有効）"));
        assert!(r.body.contains("他人に教えないでください"));
        let info = sms_info(&r.body);
        assert_eq!(info.encoding, SmsEncoding::Ucs2);
        assert_eq!(info.units, r.body.encode_utf16().count());
    }

    /// What the SMS budget in the `Templates` docs assumes: a 6-digit code,
    /// 10 minutes, the WebOTP line for `example.com` (11 characters), a
    /// one-time link as ninsho makes them under `https://example.com/l/`
    /// (the base, a 32-digit challenge id, a dot and 52 base32 characters of
    /// secret: 107 characters) and a device name of 25 characters.
    const HOST: &str = "example.com";
    const LINK: &str = "https://example.com/l/0123456789abcdef0123456789abcdef.\
                        abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst";
    const DEVICE_NAME: &str = "Chrome on Windows (Tokyo)";

    /// Service names of 10 characters, in ASCII and in Japanese.
    const SERVICE_ASCII: &str = "ABCDEFGHIJ";
    const SERVICE_JA: &str = "株式会社ニンショウ堂";

    /// The default SMS for `kind` on `occasion`, rendered as the journeys
    /// render it, and its encoding, size and segments.
    fn default_sms(
        occasion: Occasion,
        locale: Locale,
        kind: TemplateKind,
        service: &str,
        origin: Option<&str>,
    ) -> (SmsEncoding, usize, usize) {
        let t = Templates::default();
        let body = match kind {
            TemplateKind::SmsCode => {
                let params = CodeParams {
                    service,
                    code: "123456",
                    minutes: 10,
                    origin,
                    occasion,
                };
                t.render_code(locale, Channel::Sms, &params).unwrap().body
            }
            TemplateKind::SmsLink => {
                // Links are rendered with the sign-in texts; render this
                // occasion's built-in text through the same path.
                let t = t.with(locale, kind, Templates::builtin(occasion, locale, kind));
                let params = LinkParams {
                    service,
                    url: LINK,
                    minutes: 10,
                    device: DEVICE_NAME,
                };
                t.render_link(locale, Channel::Sms, &params).unwrap().body
            }
            _ => unreachable!("not an SMS template"),
        };
        let info = sms_info(&body);
        (info.encoding, info.units, info.segments)
    }

    #[test]
    fn default_sms_segments() {
        use SmsEncoding::{Gsm7, Ucs2};
        use TemplateKind::{SmsCode, SmsLink};
        assert_eq!(LINK.len(), 107);
        assert_eq!(SERVICE_JA.chars().count(), 10);
        // (locale, kind, service, origin) -> (encoding, units, segments)
        let cases = [
            (Locale::Ja, SmsCode, SERVICE_ASCII, None, (Ucs2, 45, 1)),
            (
                Locale::Ja,
                SmsCode,
                SERVICE_ASCII,
                Some(HOST),
                (Ucs2, 67, 1),
            ),
            (Locale::Ja, SmsCode, SERVICE_JA, None, (Ucs2, 45, 1)),
            (Locale::Ja, SmsCode, SERVICE_JA, Some(HOST), (Ucs2, 67, 1)),
            (Locale::En, SmsCode, SERVICE_ASCII, None, (Gsm7, 127, 1)),
            (
                Locale::En,
                SmsCode,
                SERVICE_ASCII,
                Some(HOST),
                (Gsm7, 149, 1),
            ),
            // A Japanese name makes the English text UCS-2: 3 segments.
            (Locale::En, SmsCode, SERVICE_JA, None, (Ucs2, 127, 2)),
            (Locale::En, SmsCode, SERVICE_JA, Some(HOST), (Ucs2, 149, 3)),
            // No single segment holds a 107-character link with its text.
            (Locale::Ja, SmsLink, SERVICE_ASCII, None, (Ucs2, 192, 3)),
            (Locale::Ja, SmsLink, SERVICE_JA, None, (Ucs2, 192, 3)),
            (Locale::En, SmsLink, SERVICE_ASCII, None, (Gsm7, 287, 2)),
            (Locale::En, SmsLink, SERVICE_JA, None, (Ucs2, 287, 5)),
        ];
        for occasion in Occasion::ALL {
            for (locale, kind, service, origin, expected) in cases {
                assert_eq!(
                    default_sms(occasion, locale, kind, service, origin),
                    expected,
                    "{occasion} {locale} {kind} {service} {origin:?}"
                );
            }
        }
        // Every SMS template of every locale is in the table.
        for locale in LOCALES {
            for kind in [SmsCode, SmsLink] {
                assert!(cases.iter().any(|c| (c.0, c.1) == (locale, kind)));
            }
        }
    }

    /// The longest service name (of `unit`, a 1-unit character) whose
    /// default SMS code fits one segment.
    fn longest_service(locale: Locale, unit: char, origin: Option<&str>) -> usize {
        let fits = |n: usize| {
            let service = unit.to_string().repeat(n);
            Occasion::ALL.into_iter().all(|occasion| {
                default_sms(occasion, locale, TemplateKind::SmsCode, &service, origin).2 == 1
            })
        };
        let longest = (0..200).take_while(|&n| fits(n)).last().unwrap();
        assert!(!fits(longest + 1));
        longest
    }

    #[test]
    fn longest_service_name_in_one_segment() {
        // With the WebOTP line for `example.com` (11 characters), as the
        // `Templates` docs say.
        assert_eq!(longest_service(Locale::Ja, 'A', Some(HOST)), 13);
        assert_eq!(longest_service(Locale::Ja, 'あ', Some(HOST)), 13);
        assert_eq!(longest_service(Locale::En, 'A', Some(HOST)), 21);
        // Without the WebOTP line.
        assert_eq!(longest_service(Locale::Ja, 'あ', None), 35);
        assert_eq!(longest_service(Locale::En, 'A', None), 43);
        // A character of host costs what a character of service name does:
        // service + host is at most 24 (Japanese) or 32 (English).
        for host in ["a.jp", HOST, "login.example.co.jp"] {
            assert_eq!(
                longest_service(Locale::Ja, 'あ', Some(host)) + host.len(),
                24
            );
            assert_eq!(
                longest_service(Locale::En, 'A', Some(host)) + host.len(),
                32
            );
        }
    }

    #[test]
    fn origin_line_is_last_in_every_locale() {
        let t = Templates::default();
        for locale in LOCALES {
            let r = t
                .render_code(locale, Channel::Sms, &code_params(Some("example.com")))
                .unwrap();
            assert!(r.body.ends_with("\n\n@example.com #123456"), "{}", r.body);
            assert_eq!(r.body.lines().last(), Some("@example.com #123456"));
            assert_eq!(r.body.matches("@example.com").count(), 1);
        }
    }

    #[test]
    fn origin_line_follows_trimmed_override() {
        let t = Templates::default().with(Locale::En, TemplateKind::SmsCode, "Code {code}\n\n  \n");
        let r = t
            .render_code(
                Locale::En,
                Channel::Sms,
                &code_params(Some("login.example.co.jp")),
            )
            .unwrap();
        assert_eq!(r.body, "Code 123456\n\n@login.example.co.jp #123456");
    }

    #[test]
    fn bad_origins_are_refused() {
        let t = Templates::default();
        for origin in [
            "",
            "https://example.com",
            "example.com/path",
            "example.com:443",
            "exa mple.com",
            "example..com",
            ".example.com",
            "example.com.",
            "-example.com",
            "ex#ample.com",
            "example.com\n#999999",
        ] {
            assert_eq!(
                t.render_code(Locale::En, Channel::Sms, &code_params(Some(origin)))
                    .unwrap_err(),
                TemplateError::InvalidOrigin,
                "{origin:?}"
            );
        }
        // Voice and email never use the origin, so a bad one doesn't matter.
        let voice = t.render_code(Locale::En, Channel::Voice, &code_params(Some("https://x")));
        assert!(voice.is_ok());
    }

    #[test]
    fn voice_and_email_never_get_the_origin_line() {
        let t = Templates::default();
        for locale in LOCALES {
            for channel in [Channel::Voice, Channel::Email] {
                let r = t
                    .render_code(locale, channel, &code_params(Some("example.com")))
                    .unwrap();
                assert!(!r.body.contains("@example.com"), "{locale} {channel}");
                assert!(!r.body.contains('#'), "{locale} {channel}");
            }
        }
    }

    #[test]
    fn voice_spells_and_repeats_the_code() {
        let t = Templates::default();
        let en = t
            .render_code(Locale::En, Channel::Voice, &code_params(None))
            .unwrap();
        assert_eq!(en.subject, None);
        assert!(
            en.body
                .ends_with("Your verification code is: 1, 2, 3, 4, 5, 6. Again: 1, 2, 3, 4, 5, 6."),
            "{}",
            en.body
        );
        assert!(!en.body.contains("123456"));
        assert_eq!(en.body.matches("1, 2, 3, 4, 5, 6").count(), 2);

        let ja = t
            .render_code(Locale::Ja, Channel::Voice, &code_params(None))
            .unwrap();
        assert!(
            ja.body
                .ends_with("認証コードは、1、2、3、4、5、6。繰り返します。1、2、3、4、5、6。"),
            "{}",
            ja.body
        );
        assert!(!ja.body.contains("123456"));
    }

    #[test]
    fn voice_spelling_skips_whitespace() {
        assert_eq!(spell_out("12 34", Locale::En), "1, 2, 3, 4");
        assert_eq!(spell_out("A1", Locale::Ja), "A、1");
        assert_eq!(spell_out("", Locale::En), "");
    }

    #[test]
    fn email_code_has_subject_without_the_code() {
        let t = Templates::default();
        for occasion in Occasion::ALL {
            for locale in LOCALES {
                let r = email_code(&t, occasion, locale);
                let subject = r.subject.unwrap();
                assert!(subject.contains("Example"));
                assert!(!subject.contains("123456"));
                assert!(r.body.contains("123456"));
                assert!(r.body.contains("10"));
                assert!(!r.body.contains('{'), "{occasion} {locale}: {}", r.body);
            }
        }
    }

    #[test]
    fn links_by_sms_and_email() {
        let t = Templates::default();
        for locale in LOCALES {
            let sms = t.render_link(locale, Channel::Sms, &link_params()).unwrap();
            assert_eq!(sms.subject, None);
            assert!(sms.body.contains("https://example.com/a/XyZ123"));
            assert!(sms.body.contains("Chrome on Windows (Tokyo)"));
            assert!(sms.body.contains("15"));
            let email = t
                .render_link(locale, Channel::Email, &link_params())
                .unwrap();
            let subject = email.subject.unwrap();
            assert!(subject.contains("Example"));
            assert!(!subject.contains("https://"));
            assert!(email.body.contains("https://example.com/a/XyZ123"));
            assert!(email.body.contains("Chrome on Windows (Tokyo)"));
        }
        let en = t
            .render_link(Locale::En, Channel::Sms, &link_params())
            .unwrap();
        assert!(
            en.body
                .contains("If you did not try to sign in, do not open this link.")
        );
        let ja = t
            .render_link(Locale::Ja, Channel::Sms, &link_params())
            .unwrap();
        assert!(
            ja.body
                .contains("ログインを承認するには15分以内に開いてください")
        );
        assert!(ja.body.ends_with("お心当たりがなければ開かないでください"));
        assert!(
            ja.body
                .contains("【Example】Chrome on Windows (Tokyo)からのログイン")
        );
    }

    #[test]
    fn links_by_voice_are_refused() {
        let t = Templates::default();
        let err = t
            .render_link(Locale::Ja, Channel::Voice, &link_params())
            .unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnsupportedChannel {
                channel: Channel::Voice
            }
        );
        assert!(err.to_string().contains("voice call"));
    }

    #[test]
    fn device_is_cleaned() {
        assert_eq!(
            clean_device("  Evil\r\n\nOPEN THIS\tlink \u{7}now  ", Locale::En),
            "Evil OPEN THIS link now"
        );
        let long = "x".repeat(200);
        let cleaned = clean_device(&long, Locale::En);
        assert_eq!(cleaned.chars().count(), MAX_DEVICE_CHARS + 1);
        assert!(cleaned.ends_with('…'));
        assert_eq!(clean_device(&"x".repeat(64), Locale::En), "x".repeat(64));
        assert_eq!(clean_device(" \n ", Locale::Ja), "不明な端末");
        assert_eq!(clean_device("", Locale::En), "an unknown device");

        let t = Templates::default();
        let params = LinkParams {
            device: "Phone\n\nhttps://evil.example",
            ..link_params()
        };
        let r = t.render_link(Locale::En, Channel::Sms, &params).unwrap();
        assert!(r.body.contains("on Phone https://evil.example."));
    }

    #[test]
    fn overrides_replace_one_text_only() {
        let mut t = Templates::default();
        t.set(
            Locale::En,
            TemplateKind::SmsCode,
            "{service}: {code} ({minutes})",
        );
        let r = t
            .render_code(Locale::En, Channel::Sms, &code_params(None))
            .unwrap();
        assert_eq!(r.body, "Example: 123456 (10)");
        let builtin = Templates::builtin;
        for occasion in Occasion::ALL {
            // Every occasion takes the override...
            assert_eq!(
                t.get(occasion, Locale::En, TemplateKind::SmsCode),
                "{service}: {code} ({minutes})"
            );
            // ...and other locales and kinds are untouched.
            assert_eq!(
                t.get(occasion, Locale::Ja, TemplateKind::SmsCode),
                builtin(occasion, Locale::Ja, TemplateKind::SmsCode)
            );
            assert_eq!(
                t.get(occasion, Locale::En, TemplateKind::VoiceCode),
                builtin(occasion, Locale::En, TemplateKind::VoiceCode)
            );
        }
        t.reset(Locale::En, TemplateKind::SmsCode);
        assert_eq!(
            t.get(Occasion::SignIn, Locale::En, TemplateKind::SmsCode),
            builtin(Occasion::SignIn, Locale::En, TemplateKind::SmsCode)
        );
    }

    #[test]
    fn lookup_order_is_occasion_then_general_then_builtin() {
        const KIND: TemplateKind = TemplateKind::EmailCodeSubject;
        let builtin = |occasion| Templates::builtin(occasion, Locale::En, KIND);
        let mut t = Templates::default();
        for occasion in Occasion::ALL {
            assert_eq!(t.get(occasion, Locale::En, KIND), builtin(occasion));
        }

        // One occasion's override alone: the others keep their built-in text.
        t.set_for(Occasion::SignIn, Locale::En, KIND, "sign-in {service}");
        assert_eq!(
            t.get(Occasion::SignIn, Locale::En, KIND),
            "sign-in {service}"
        );
        assert_eq!(
            t.get(Occasion::SignUp, Locale::En, KIND),
            builtin(Occasion::SignUp)
        );

        // A general override covers every other occasion, not that one.
        t.set(Locale::En, KIND, "general {service}");
        for occasion in Occasion::ALL {
            let expected = match occasion {
                Occasion::SignIn => "sign-in {service}",
                _ => "general {service}",
            };
            assert_eq!(t.get(occasion, Locale::En, KIND), expected, "{occasion}");
        }
        // Neither reaches the other locale.
        assert_eq!(
            t.get(Occasion::SignIn, Locale::Ja, KIND),
            Templates::builtin(Occasion::SignIn, Locale::Ja, KIND)
        );

        // Dropping the occasion's override falls back to the general one...
        t.reset_for(Occasion::SignIn, Locale::En, KIND);
        assert_eq!(
            t.get(Occasion::SignIn, Locale::En, KIND),
            "general {service}"
        );
        // ...and dropping the general one reaches the built-in text.
        t.set_for(Occasion::Recovery, Locale::En, KIND, "recovery {service}");
        t.reset(Locale::En, KIND);
        assert_eq!(
            t.get(Occasion::SignIn, Locale::En, KIND),
            builtin(Occasion::SignIn)
        );
        // `reset` leaves overrides for one occasion alone.
        assert_eq!(
            t.get(Occasion::Recovery, Locale::En, KIND),
            "recovery {service}"
        );

        // The builder forms do the same, and rendering follows the lookup.
        let t = Templates::new()
            .with(Locale::En, KIND, "general {service}")
            .with_for(Occasion::StepUp, Locale::En, KIND, "step-up {service}");
        assert_eq!(
            email_code(&t, Occasion::StepUp, Locale::En)
                .subject
                .as_deref(),
            Some("step-up Example")
        );
        assert_eq!(
            email_code(&t, Occasion::SignUp, Locale::En)
                .subject
                .as_deref(),
            Some("general Example")
        );
    }

    #[test]
    fn email_code_warning_follows_the_occasion() {
        let t = Templates::default();
        // What a user who did not ask for the code reads, per locale.
        let password = [
            (Locale::Ja, "パスワードを変更"),
            (Locale::En, "change your password"),
        ];
        let mistake = [(Locale::Ja, "誤って入力"), (Locale::En, "by mistake")];
        for ((locale, password), (_, mistake)) in password.into_iter().zip(mistake) {
            for occasion in Occasion::ALL {
                let body = email_code(&t, occasion, locale).body;
                let warns_of_password = matches!(occasion, Occasion::SignIn | Occasion::StepUp);
                let says_mistake = matches!(
                    occasion,
                    Occasion::SignUp | Occasion::ContactChange | Occasion::Other
                );
                assert_eq!(
                    body.contains(password),
                    warns_of_password,
                    "{occasion} {locale}"
                );
                assert_eq!(body.contains(mistake), says_mistake, "{occasion} {locale}");
            }
        }
        let en = email_code(&t, Occasion::SignIn, Locale::En).body;
        assert!(en.contains("If you did not try to sign in, someone else may know your password."));
        assert!(en.contains("Do not share this code with anyone."));
        let ja = email_code(&t, Occasion::SignIn, Locale::Ja).body;
        assert!(ja.contains("第三者があなたのパスワードを知っている可能性があります"));
        assert!(ja.contains("このコードは誰にも教えないでください"));
        let recovery = email_code(&t, Occasion::Recovery, Locale::En).body;
        assert!(recovery.contains("someone may be trying to get into an account"));
        assert!(recovery.contains("Do not give this code to anyone"));

        // The subject says what the code is for.
        assert_eq!(
            email_code(&t, Occasion::SignIn, Locale::En)
                .subject
                .as_deref(),
            Some("Your Example sign-in code")
        );
        assert_eq!(
            email_code(&t, Occasion::SignUp, Locale::Ja)
                .subject
                .as_deref(),
            Some("【Example】メールアドレス確認の認証コード")
        );
    }

    #[test]
    fn only_email_code_texts_vary_by_occasion() {
        for locale in LOCALES {
            for kind in TemplateKind::ALL {
                let sign_in = Templates::builtin(Occasion::SignIn, locale, kind);
                let varies = Occasion::ALL
                    .into_iter()
                    .any(|o| Templates::builtin(o, locale, kind) != sign_in);
                let email_code = matches!(
                    kind,
                    TemplateKind::EmailCodeSubject | TemplateKind::EmailCodeBody
                );
                assert_eq!(varies, email_code, "{locale} {kind}");
            }
        }
    }

    #[test]
    fn links_use_the_sign_in_overrides() {
        let t = Templates::default()
            .with(Locale::En, TemplateKind::SmsLink, "general {url}")
            .with_for(
                Occasion::SignIn,
                Locale::En,
                TemplateKind::SmsLink,
                "sign-in {url}",
            )
            .with_for(
                Occasion::SignUp,
                Locale::En,
                TemplateKind::SmsLink,
                "sign-up {url}",
            );
        let r = t
            .render_link(Locale::En, Channel::Sms, &link_params())
            .unwrap();
        assert_eq!(r.body, "sign-in https://example.com/a/XyZ123");
    }

    #[test]
    fn occasions_from_purposes() {
        let cases = [
            (Purpose::SignIn, Occasion::SignIn),
            (Purpose::SignUp, Occasion::SignUp),
            (Purpose::ContactChange, Occasion::ContactChange),
            (Purpose::StepUp, Occasion::StepUp),
            (Purpose::Recovery, Occasion::Recovery),
            (Purpose::Other("newsletter".into()), Occasion::Other),
        ];
        for (purpose, occasion) in cases {
            assert_eq!(Occasion::of(&purpose), occasion);
            assert_eq!(Occasion::from(&purpose), occasion);
        }
        assert_eq!(
            serde_json::to_string(&Occasion::ContactChange).unwrap(),
            "\"contact_change\""
        );
        assert_eq!(
            serde_json::from_str::<Occasion>("\"sign_in\"").unwrap(),
            Occasion::SignIn
        );
        assert_eq!(Occasion::StepUp.to_string(), "step-up");
    }

    #[test]
    fn builder_overrides_for_link_and_subject() {
        let t = Templates::new()
            .with(
                Locale::Ja,
                TemplateKind::EmailLinkSubject,
                "{service} ログイン",
            )
            .with(Locale::Ja, TemplateKind::EmailLinkBody, "{device}: {url}");
        let r = t
            .render_link(Locale::Ja, Channel::Email, &link_params())
            .unwrap();
        assert_eq!(r.subject.as_deref(), Some("Example ログイン"));
        assert_eq!(
            r.body,
            "Chrome on Windows (Tokyo): https://example.com/a/XyZ123"
        );
    }

    #[test]
    fn substitution_is_single_pass() {
        let t = Templates::default().with(Locale::En, TemplateKind::SmsCode, "{service}|{code}");
        let params = CodeParams {
            service: "{code}{minutes}",
            code: "{service}",
            minutes: 5,
            origin: None,
            occasion: Occasion::Other,
        };
        let r = t.render_code(Locale::En, Channel::Sms, &params).unwrap();
        assert_eq!(r.body, "{code}{minutes}|{service}");

        let link = LinkParams {
            service: "{url}",
            url: "https://x.example/{device}",
            minutes: 1,
            device: "{url}",
        };
        let t = Templates::default().with(
            Locale::En,
            TemplateKind::SmsLink,
            "{service} {device} {url}",
        );
        let r = t.render_link(Locale::En, Channel::Sms, &link).unwrap();
        assert_eq!(r.body, "{url} {url} https://x.example/{device}");
    }

    #[test]
    fn substitute_leaves_unknown_and_broken_braces() {
        let v = |name: &str| (name == "{a}").then_some("A");
        assert_eq!(substitute("{a}{b}{a", v), "A{b}{a");
        assert_eq!(substitute("{{a}}", v), "{A}");
        assert_eq!(substitute("x{ {a} }", v), "x{ A }");
        assert_eq!(substitute("", v), "");
        assert_eq!(substitute("}{", v), "}{");
        assert_eq!(substitute("日本{a}語", v), "日本A語");
    }

    #[test]
    fn faulty_overrides_are_refused() {
        let t = Templates::default().with(Locale::En, TemplateKind::SmsCode, "Hello {service}");
        assert_eq!(
            t.render_code(Locale::En, Channel::Sms, &code_params(None))
                .unwrap_err(),
            TemplateError::MissingPlaceholder {
                occasion: None,
                locale: Locale::En,
                kind: TemplateKind::SmsCode,
                placeholder: "{code}",
            }
        );
        assert!(t.validate().is_err());
        // The Japanese text still works.
        assert!(
            t.render_code(Locale::Ja, Channel::Sms, &code_params(None))
                .is_ok()
        );

        let t = Templates::default().with(
            Locale::Ja,
            TemplateKind::EmailCodeSubject,
            "認証コード {code}",
        );
        let err = t
            .render_code(Locale::Ja, Channel::Email, &code_params(None))
            .unwrap_err();
        assert_eq!(
            err,
            TemplateError::SecretInSubject {
                occasion: None,
                locale: Locale::Ja,
                kind: TemplateKind::EmailCodeSubject,
                placeholder: "{code}",
            }
        );
        assert!(
            err.to_string()
                .contains("the ja email code subject template puts {code}")
        );

        let t = Templates::default().with(Locale::En, TemplateKind::EmailLinkBody, "no link here");
        assert!(matches!(
            t.render_link(Locale::En, Channel::Email, &link_params()),
            Err(TemplateError::MissingPlaceholder {
                placeholder: "{url}",
                ..
            })
        ));
    }

    #[test]
    fn faulty_override_for_one_occasion_is_refused_there_only() {
        let t = Templates::default().with_for(
            Occasion::SignIn,
            Locale::En,
            TemplateKind::EmailCodeBody,
            "Sign in to {service}",
        );
        let missing = TemplateError::MissingPlaceholder {
            occasion: Some(Occasion::SignIn),
            locale: Locale::En,
            kind: TemplateKind::EmailCodeBody,
            placeholder: "{code}",
        };
        assert_eq!(t.validate().unwrap_err(), missing);
        assert_eq!(
            t.render_code(Locale::En, Channel::Email, &code_params(None))
                .unwrap_err(),
            missing
        );
        assert!(
            missing
                .to_string()
                .contains("the en email code body template for sign-in has no {code}")
        );
        // Other occasions and the other locale still render.
        for occasion in Occasion::ALL.into_iter().filter(|o| *o != Occasion::SignIn) {
            email_code(&t, occasion, Locale::En);
        }
        email_code(&t, Occasion::SignIn, Locale::Ja);

        let t = Templates::default().with_for(
            Occasion::Recovery,
            Locale::Ja,
            TemplateKind::EmailCodeSubject,
            "復旧コード {code}",
        );
        assert_eq!(
            t.validate().unwrap_err(),
            TemplateError::SecretInSubject {
                occasion: Some(Occasion::Recovery),
                locale: Locale::Ja,
                kind: TemplateKind::EmailCodeSubject,
                placeholder: "{code}",
            }
        );
    }

    #[test]
    fn validate_checks_overrides_no_occasion_uses() {
        // A faulty general text, hidden on every occasion by good ones.
        let mut t = Templates::default().with(Locale::En, TemplateKind::SmsCode, "no code");
        for occasion in Occasion::ALL {
            t.set_for(occasion, Locale::En, TemplateKind::SmsCode, "{code}");
        }
        for occasion in Occasion::ALL {
            assert_eq!(t.get(occasion, Locale::En, TemplateKind::SmsCode), "{code}");
        }
        assert_eq!(
            t.validate().unwrap_err(),
            TemplateError::MissingPlaceholder {
                occasion: None,
                locale: Locale::En,
                kind: TemplateKind::SmsCode,
                placeholder: "{code}",
            }
        );
        t.reset(Locale::En, TemplateKind::SmsCode);
        t.validate().unwrap();
    }

    #[test]
    fn debug_redacts_secrets() {
        let p = code_params(Some("example.com"));
        assert!(!format!("{p:?}").contains("123456"));
        let l = link_params();
        assert!(!format!("{l:?}").contains("XyZ123"));
        let r = Templates::default()
            .render_code(Locale::En, Channel::Sms, &p)
            .unwrap();
        assert!(!format!("{r:?}").contains("123456"));
    }

    #[test]
    fn locale_serde_and_default() {
        assert_eq!(Locale::default(), Locale::Ja);
        assert_eq!(serde_json::to_string(&Locale::En).unwrap(), "\"en\"");
        assert_eq!(
            serde_json::from_str::<Locale>("\"ja\"").unwrap(),
            Locale::Ja
        );
        assert_eq!(Locale::Ja.to_string(), "ja");
        assert_eq!(
            serde_json::to_string(&TemplateKind::EmailCodeBody).unwrap(),
            "\"email_code_body\""
        );
    }
}
