//! The texts of the messages ninsho sends, in Japanese and English.
//!
//! [`Templates::default()`] holds built-in texts. Each one names the service,
//! says how long the code or link stays valid, and warns the user: never share
//! a code (the service's staff never ask for one), and never open a sign-in
//! link for a sign-in you did not start. A host replaces any text with
//! [`Templates::set`] or [`Templates::with`].
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
//! template at once, for example at start-up.
//!
//! # Channel rules
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
//!   [`TemplateError::UnsupportedChannel`].
//!
//! ```
//! use ninsho::gateway::{CodeParams, TemplateKind, Templates};
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
//! };
//! let sms = templates.render_code(Locale::En, Channel::Sms, &params).unwrap();
//! assert_eq!(
//!     sms.body,
//!     "123456 is your Example code. Don't share it.\n\n@example.com #123456"
//! );
//!
//! let voice = templates.render_code(Locale::En, Channel::Voice, &params).unwrap();
//! assert!(voice.body.ends_with("1, 2, 3, 4, 5, 6. Again: 1, 2, 3, 4, 5, 6."));
//! ```

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Channel, Locale};

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
        "the {locale} {kind} template has no {placeholder} placeholder; fix the template override"
    )]
    MissingPlaceholder {
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
        "the {locale} {kind} template puts {placeholder} in an email subject, which is shown in previews and logs; remove it"
    )]
    SecretInSubject {
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
}

impl fmt::Debug for CodeParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeParams")
            .field("service", &self.service)
            .field("code", &"[redacted]")
            .field("minutes", &self.minutes)
            .field("origin", &self.origin)
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

/// The set of message texts, per locale and kind. `Default` gives the
/// built-in texts; overrides replace single texts.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    overrides: HashMap<(Locale, TemplateKind), String>,
}

impl Templates {
    /// The built-in texts (same as `default()`).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in text for `locale` and `kind`.
    #[must_use]
    pub fn builtin(locale: Locale, kind: TemplateKind) -> &'static str {
        match locale {
            Locale::Ja => builtin_ja(kind),
            Locale::En => builtin_en(kind),
        }
    }

    /// The text in use for `locale` and `kind`: the override if one was set,
    /// otherwise the built-in text.
    #[must_use]
    pub fn get(&self, locale: Locale, kind: TemplateKind) -> &str {
        self.overrides
            .get(&(locale, kind))
            .map_or_else(|| Self::builtin(locale, kind), String::as_str)
    }

    /// Replaces the text for `locale` and `kind`. It is checked when a
    /// message is rendered (or by [`validate`](Self::validate)).
    pub fn set(
        &mut self,
        locale: Locale,
        kind: TemplateKind,
        text: impl Into<String>,
    ) -> &mut Self {
        self.overrides.insert((locale, kind), text.into());
        self
    }

    /// Builder form of [`set`](Self::set).
    #[must_use]
    pub fn with(mut self, locale: Locale, kind: TemplateKind, text: impl Into<String>) -> Self {
        self.set(locale, kind, text);
        self
    }

    /// Goes back to the built-in text for `locale` and `kind`.
    pub fn reset(&mut self, locale: Locale, kind: TemplateKind) -> &mut Self {
        self.overrides.remove(&(locale, kind));
        self
    }

    /// Checks every template of every locale: bodies contain the placeholder
    /// that carries the secret, subjects contain no secret.
    ///
    /// # Errors
    /// The first faulty template, as [`TemplateError::MissingPlaceholder`] or
    /// [`TemplateError::SecretInSubject`].
    pub fn validate(&self) -> Result<(), TemplateError> {
        for locale in [Locale::Ja, Locale::En] {
            for kind in TemplateKind::ALL {
                self.checked(locale, kind)?;
            }
        }
        Ok(())
    }

    /// Renders a one-time code message for `channel`.
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
        match channel {
            Channel::Sms => {
                let mut body = substitute(self.checked(locale, TemplateKind::SmsCode)?, values);
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
                body: substitute(self.checked(locale, TemplateKind::VoiceCode)?, values),
            }),
            Channel::Email => Ok(Rendered {
                subject: Some(substitute(
                    self.checked(locale, TemplateKind::EmailCodeSubject)?,
                    values,
                )),
                body: substitute(self.checked(locale, TemplateKind::EmailCodeBody)?, values),
            }),
        }
    }

    /// Renders a one-time sign-in link message for `channel` (SMS or email).
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
        match channel {
            Channel::Sms => Ok(Rendered {
                subject: None,
                body: substitute(self.checked(locale, TemplateKind::SmsLink)?, values),
            }),
            Channel::Email => Ok(Rendered {
                subject: Some(substitute(
                    self.checked(locale, TemplateKind::EmailLinkSubject)?,
                    values,
                )),
                body: substitute(self.checked(locale, TemplateKind::EmailLinkBody)?, values),
            }),
            Channel::Voice => Err(TemplateError::UnsupportedChannel { channel }),
        }
    }

    /// The text for `locale` and `kind`, after checking it carries the
    /// secret where it must and nowhere it must not.
    fn checked(&self, locale: Locale, kind: TemplateKind) -> Result<&str, TemplateError> {
        let text = self.get(locale, kind);
        if kind.is_subject()
            && let Some(placeholder) = [CODE, URL].into_iter().find(|p| text.contains(p))
        {
            return Err(TemplateError::SecretInSubject {
                locale,
                kind,
                placeholder,
            });
        }
        if let Some(placeholder) = kind.required_placeholder()
            && !text.contains(placeholder)
        {
            return Err(TemplateError::MissingPlaceholder {
                locale,
                kind,
                placeholder,
            });
        }
        Ok(text)
    }
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

fn builtin_ja(kind: TemplateKind) -> &'static str {
    match kind {
        TemplateKind::SmsCode => {
            "【{service}】認証コード：{code}\n\
             有効期限：{minutes}分\n\
             このコードは誰にも教えないでください。{service}の担当者がコードをお聞きすることはありません。"
        }
        TemplateKind::VoiceCode => {
            "こちらは{service}です。\
             このコードは誰にも教えないでください。{service}の担当者がコードをお聞きすることはありません。\
             コードの有効期限は{minutes}分です。\
             認証コードは、{code}。繰り返します。{code}。"
        }
        TemplateKind::EmailCodeSubject => "【{service}】認証コードのお知らせ",
        TemplateKind::EmailCodeBody => {
            "{service}をご利用いただきありがとうございます。\n\
             \n\
             以下の認証コードを入力して、ご本人確認を完了してください。\n\
             \n\
             認証コード：{code}\n\
             \n\
             このコードの有効期限は{minutes}分です。\n\
             \n\
             このコードは誰にも教えないでください。{service}の担当者が電話、メール、チャットなどでコードをお聞きすることはありません。\n\
             \n\
             お心当たりのない場合は、どなたかがメールアドレスを誤って入力した可能性があります。このメールは破棄してください。\n\
             \n\
             {service}"
        }
        TemplateKind::SmsLink => {
            "【{service}】{device}からログインしようとしています。\
             ご本人の場合は{minutes}分以内に次のURLを開いて承認してください。\n\
             {url}\n\
             ログインしようとしていない場合は、このURLを開かないでください。"
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

fn builtin_en(kind: TemplateKind) -> &'static str {
    match kind {
        TemplateKind::SmsCode => {
            "{service} verification code: {code}\n\
             Valid for {minutes} min. Do not share this code with anyone. \
             {service} staff will never ask you for it."
        }
        TemplateKind::VoiceCode => {
            "Hello, this is {service}. \
             Do not share this code with anyone. {service} staff will never ask you for it. \
             The code is valid for {minutes} minutes. \
             Your verification code is: {code}. Again: {code}."
        }
        TemplateKind::EmailCodeSubject => "Your {service} verification code",
        TemplateKind::EmailCodeBody => {
            "Hello,\n\
             \n\
             Enter this code to confirm it is you:\n\
             \n\
             {code}\n\
             \n\
             The code is valid for {minutes} minutes.\n\
             \n\
             Do not share this code with anyone. {service} staff will never ask you for it, \
             by phone, email or chat.\n\
             \n\
             If you did not ask for this code, someone may have typed your email address by \
             mistake; you can ignore this email.\n\
             \n\
             {service}"
        }
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
        }
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
        for locale in LOCALES {
            for kind in TemplateKind::ALL {
                let text = Templates::builtin(locale, kind);
                assert!(text.contains(SERVICE), "{locale} {kind} names the service");
                if !kind.is_subject() {
                    assert!(text.contains(MINUTES), "{locale} {kind} gives the validity");
                }
                if matches!(kind, TemplateKind::SmsLink | TemplateKind::EmailLinkBody) {
                    assert!(text.contains(DEVICE), "{locale} {kind} names the device");
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
        assert!(r.body.contains("Example staff will never ask you for it"));
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
        assert!(r.body.contains("10分"));
        assert!(r.body.contains("誰にも教えないでください"));
        let info = sms_info(&r.body);
        assert_eq!(info.encoding, SmsEncoding::Ucs2);
        assert_eq!(info.units, r.body.encode_utf16().count());
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
        for locale in LOCALES {
            let r = t
                .render_code(locale, Channel::Email, &code_params(None))
                .unwrap();
            let subject = r.subject.unwrap();
            assert!(subject.contains("Example"));
            assert!(!subject.contains("123456"));
            assert!(r.body.contains("123456"));
            assert!(r.body.contains("10"));
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
                .contains("ログインしようとしていない場合は、このURLを開かないでください。")
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
        // Other locale and kinds are untouched.
        assert_eq!(
            t.get(Locale::Ja, TemplateKind::SmsCode),
            Templates::builtin(Locale::Ja, TemplateKind::SmsCode)
        );
        assert_eq!(
            t.get(Locale::En, TemplateKind::VoiceCode),
            Templates::builtin(Locale::En, TemplateKind::VoiceCode)
        );
        t.reset(Locale::En, TemplateKind::SmsCode);
        assert_eq!(
            t.get(Locale::En, TemplateKind::SmsCode),
            Templates::builtin(Locale::En, TemplateKind::SmsCode)
        );
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
                locale: Locale::Ja,
                kind: TemplateKind::EmailCodeSubject,
                placeholder: "{code}",
            }
        );
        assert!(err.to_string().contains("ja email code subject"));

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
