//! Why a user's request was refused, split by what it was about.
//!
//! A [`Refusal`] is the user's side of things: a wrong or spent code, a
//! limit reached, a contact that can't be used, an account that must do
//! something first. It is never an infrastructure failure and never
//! success. It comes in four families, one enum each, in the manner of
//! rustls' error sub-enums:
//!
//! | family | about | examples |
//! |---|---|---|
//! | [`CodeRefusal`] | a code, link or recovery code the user gave | wrong, expired, already used |
//! | [`SendRefusal`] | asking for a code or link to be sent | rate limit, cooldown, no other option |
//! | [`ContactRefusal`] | a phone number or email address on the account | in use elsewhere, not verified yet |
//! | [`AccountRefusal`] | the account as a whole | locked, step-up needed, two-step off |
//!
//! Every refusal has a stable [`code`](Refusal::code) for a UI's
//! translations or an API's error body, carries the figures a UI needs
//! (attempts left, when to retry) as fields, and has a ready message in
//! Japanese and English ([`Refusal::message`]). `Display` is the English
//! message with absolute times. Serialised (for a front end), a refusal is
//! a flat object: `{"code": "wrong_code", "attempts_left": 2}`.
//!
//! ```
//! use ninsho::model::Locale;
//! use ninsho::{CodeRefusal, Refusal, SendRefusal};
//! use time::{Duration, OffsetDateTime};
//!
//! let now = OffsetDateTime::UNIX_EPOCH;
//! let wrong = Refusal::from(CodeRefusal::WrongCode { attempts_left: Some(2) });
//! assert_eq!(wrong.code(), "wrong_code");
//! assert_eq!(wrong.message(Locale::En, now), "The code is wrong. 2 attempts left.");
//! assert_eq!(wrong.message(Locale::Ja, now), "コードが正しくありません。あと2回入力できます。");
//!
//! let wait = Refusal::from(SendRefusal::Cooldown { retry_at: now + Duration::seconds(42) });
//! assert_eq!(wait.code(), "cooldown");
//! assert_eq!(
//!     wait.message(Locale::En, now),
//!     "A code was just sent. You can ask for another in 42 seconds."
//! );
//! ```

use std::fmt;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::limits::LimitKind;
use crate::model::Locale;

/// Why a request from the user was refused: the user's side of things, to
/// show in the UI. Never an infrastructure failure, and never success.
///
/// Match on the family, then on the reason:
///
/// ```
/// use ninsho::{CodeRefusal, Error, Refusal};
///
/// fn explain(e: &Error) -> &'static str {
///     match e.refusal() {
///         Some(Refusal::Code(CodeRefusal::WrongCode { .. })) => "try again",
///         Some(Refusal::Code(_)) => "ask for a new code",
///         Some(Refusal::Send(_) | Refusal::Contact(_) | Refusal::Account(_)) => "see the message",
///         Some(_) | None => "something went wrong",
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Refusal {
    /// A code, link or recovery code the user gave was not accepted.
    Code(CodeRefusal),
    /// A code or link could not be sent.
    Send(SendRefusal),
    /// A phone number or email address can't be used this way.
    Contact(ContactRefusal),
    /// The account can't do this now.
    Account(AccountRefusal),
}

/// A code, one-time link or recovery code the user gave was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CodeRefusal {
    /// The code is wrong.
    WrongCode {
        /// Tries left on this code before it dies; `None` for codes that
        /// have no limit of their own (an authenticator app's, which change
        /// every 30 seconds). The account's back-off applies either way.
        attempts_left: Option<u32>,
    },
    /// Every code of the challenge (or the link) has expired: send a new one.
    Expired,
    /// Too many wrong codes: the challenge is dead; start a new one.
    TooManyAttempts,
    /// No such challenge (or the token is wrong).
    Unknown,
    /// The code or link was already used.
    AlreadyUsed,
    /// The challenge was issued for another purpose.
    PurposeMismatch,
    /// The challenge was issued for another destination.
    DestinationMismatch,
    /// The user denied the sign-in from the one-time link.
    Denied,
    /// The recovery code is not one of the account's codes.
    WrongRecoveryCode,
}

/// A code or link could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SendRefusal {
    /// A send budget (per destination, account, caller or country) is
    /// spent until `retry_at`.
    RateLimited {
        /// The limit that refused.
        limit: LimitKind,
        /// When a retry can succeed.
        #[serde(with = "time::serde::rfc3339")]
        retry_at: OffsetDateTime,
    },
    /// The code was sent as many times as a challenge may be (its resends
    /// and other options included): no retry time helps, a new code
    /// (a new challenge) does.
    SendsUsedUp,
    /// A code was sent a moment ago: another can be asked for at
    /// `retry_at` (the resend cooldown).
    Cooldown {
        /// When a resend can succeed.
        #[serde(with = "time::serde::rfc3339")]
        retry_at: OffsetDateTime,
    },
    /// No further delivery channel is left for "use another option".
    NoMoreOptions,
    /// The user's confirmation of the masked contact (the last digits the
    /// [`MaskPolicy`](crate::contact::MaskPolicy) asks for, or the whole
    /// email address) does not match: nothing was sent.
    ContactNotConfirmed,
}

/// A phone number or email address can't be used this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContactRefusal {
    /// The contact is verified on another account; a phone number belongs
    /// to at most one account.
    #[serde(rename = "contact_in_use")]
    InUse,
    /// The contact is already on this account (and verified).
    #[serde(rename = "contact_already_added")]
    AlreadyAdded,
    /// The contact is not on this account.
    #[serde(rename = "not_a_contact")]
    NotOnAccount,
    /// The account has as many contacts of this kind as the policy allows:
    /// change one instead.
    #[serde(rename = "too_many_contacts")]
    TooMany,
    /// Two-step sign-in sends codes to this contact: it can be changed to a
    /// newly verified one, but not removed while two-step sign-in is on.
    #[serde(rename = "contact_required")]
    Required,
    /// A sign-up was completed before every contact was verified: the
    /// flags name the ones still waiting for their code.
    #[serde(rename = "contacts_unverified")]
    Unverified {
        /// The email address is not verified yet.
        email: bool,
        /// The phone number is not verified yet.
        phone: bool,
    },
}

/// The account can't do this now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AccountRefusal {
    /// The account failed too often: wait until `until`, or (when `None`)
    /// until an operator clears the account's failures.
    Locked {
        /// When trying is allowed again; `None` means only after a reset.
        #[serde(with = "time::serde::rfc3339::option")]
        until: Option<OffsetDateTime>,
    },
    /// A sensitive action needs a fresh second factor: pass the second step
    /// again and retry with its proof.
    StepUpRequired,
    /// Two-step sign-in is already on.
    TwoFactorAlreadyOn,
    /// Two-step sign-in is off, and the action needs it on.
    TwoFactorOff,
    /// The sign-in method picked is not one the account can use now (its
    /// id names another account's method, or a contact since removed):
    /// list the methods again and pick one.
    NoSuchMethod,
    /// No second factor to use (a verified phone, an authenticator app,
    /// or an email address where email counts): add one first, or keep the
    /// last one.
    NoSecondFactor,
    /// What the request names is not (or no longer) on the account: a
    /// trusted device already revoked, an authenticator app already
    /// removed, an app setup already finished or dropped. Reload and look
    /// again.
    NotFound,
}

macro_rules! family {
    ($family:ident, $variant:ident) => {
        impl From<$family> for Refusal {
            fn from(r: $family) -> Self {
                Self::$variant(r)
            }
        }

        impl From<$family> for crate::Error {
            fn from(r: $family) -> Self {
                Self::Refused(Refusal::$variant(r))
            }
        }

        impl fmt::Display for $family {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                Refusal::from(*self).fmt(f)
            }
        }

        impl std::error::Error for $family {}
    };
}

family!(CodeRefusal, Code);
family!(SendRefusal, Send);
family!(ContactRefusal, Contact);
family!(AccountRefusal, Account);

impl std::error::Error for Refusal {}

impl fmt::Display for Refusal {
    /// The English message, with times as RFC 3339 instants.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Locale::En, None))
    }
}

impl Refusal {
    /// A stable identifier for the refusal, in `snake_case`: for a UI's
    /// translations, an API's error body, metrics. Unlike the message, it
    /// never changes between releases, and no two refusals share one. It
    /// is also the `code` field of the refusal's JSON.
    ///
    /// ```
    /// use ninsho::{AccountRefusal, CodeRefusal, Refusal};
    /// let wrong = Refusal::from(CodeRefusal::WrongCode { attempts_left: Some(2) });
    /// assert_eq!(wrong.code(), "wrong_code");
    /// assert_eq!(Refusal::from(AccountRefusal::StepUpRequired).code(), "step_up_required");
    /// ```
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Code(r) => match r {
                CodeRefusal::WrongCode { .. } => "wrong_code",
                CodeRefusal::Expired => "expired",
                CodeRefusal::TooManyAttempts => "too_many_attempts",
                CodeRefusal::Unknown => "unknown",
                CodeRefusal::AlreadyUsed => "already_used",
                CodeRefusal::PurposeMismatch => "purpose_mismatch",
                CodeRefusal::DestinationMismatch => "destination_mismatch",
                CodeRefusal::Denied => "denied",
                CodeRefusal::WrongRecoveryCode => "wrong_recovery_code",
            },
            Self::Send(r) => match r {
                SendRefusal::RateLimited { .. } => "rate_limited",
                SendRefusal::Cooldown { .. } => "cooldown",
                SendRefusal::SendsUsedUp => "sends_used_up",
                SendRefusal::NoMoreOptions => "no_more_options",
                SendRefusal::ContactNotConfirmed => "contact_not_confirmed",
            },
            Self::Contact(r) => match r {
                ContactRefusal::InUse => "contact_in_use",
                ContactRefusal::AlreadyAdded => "contact_already_added",
                ContactRefusal::NotOnAccount => "not_a_contact",
                ContactRefusal::TooMany => "too_many_contacts",
                ContactRefusal::Required => "contact_required",
                ContactRefusal::Unverified { .. } => "contacts_unverified",
            },
            Self::Account(r) => match r {
                AccountRefusal::Locked { .. } => "locked",
                AccountRefusal::StepUpRequired => "step_up_required",
                AccountRefusal::TwoFactorAlreadyOn => "two_factor_already_on",
                AccountRefusal::TwoFactorOff => "two_factor_off",
                AccountRefusal::NoSuchMethod => "no_such_method",
                AccountRefusal::NoSecondFactor => "no_second_factor",
                AccountRefusal::NotFound => "not_found",
            },
        }
    }

    /// When a retry can succeed, for refusals that end by themselves (a
    /// rate limit, a cooldown, a back-off): what a `Retry-After` header
    /// says. `None` for the rest, including a lock only an operator can
    /// lift.
    #[must_use]
    pub fn retry_at(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Send(
                SendRefusal::RateLimited { retry_at, .. } | SendRefusal::Cooldown { retry_at },
            ) => Some(*retry_at),
            Self::Account(AccountRefusal::Locked { until }) => *until,
            _ => None,
        }
    }

    /// The message to show the user, in `locale`, with waits counted from
    /// `now` ("try again in 3 minutes"). Each message is one or two short
    /// sentences that say what happened and what the user can do; the
    /// figures (attempts left, the wait) are in it.
    #[must_use]
    pub fn message(&self, locale: Locale, now: OffsetDateTime) -> String {
        self.render(locale, Some(now))
    }

    fn render(&self, locale: Locale, now: Option<OffsetDateTime>) -> String {
        let wait = |at: OffsetDateTime| Wait { at, now, locale };
        let ja = matches!(locale, Locale::Ja);
        let pick = |ja_text: &str, en_text: &str| if ja { ja_text } else { en_text }.to_owned();
        match self {
            Self::Code(r) => match r {
                CodeRefusal::WrongCode {
                    attempts_left: Some(n),
                } => {
                    if ja {
                        format!("コードが正しくありません。あと{n}回入力できます。")
                    } else if *n == 1 {
                        "The code is wrong. 1 attempt left.".to_owned()
                    } else {
                        format!("The code is wrong. {n} attempts left.")
                    }
                }
                CodeRefusal::WrongCode {
                    attempts_left: None,
                } => pick(
                    "コードが正しくありません。",
                    "The code is wrong. Check it and try again.",
                ),
                CodeRefusal::Expired => pick(
                    "コードまたはURLの有効期限が切れています。新しいものを送信してください。",
                    "The code or link has expired. Ask for a new one.",
                ),
                CodeRefusal::TooManyAttempts => pick(
                    "入力の回数が上限に達しました。新しいコードを送信してください。",
                    "Too many wrong codes. Ask for a new one.",
                ),
                CodeRefusal::Unknown => pick(
                    "このコードまたはURLは無効です。新しいコードを送信してください。",
                    "This code or link is not valid. Ask for a new one.",
                ),
                CodeRefusal::AlreadyUsed => pick(
                    "このコードまたはURLはすでに使用されています。",
                    "This code or link was already used.",
                ),
                CodeRefusal::PurposeMismatch => pick(
                    "このコードは別の手続きのために発行されたものです。",
                    "This code was issued for something else.",
                ),
                CodeRefusal::DestinationMismatch => pick(
                    "このコードは別の宛先に送信されたものです。",
                    "This code was sent to another address or number.",
                ),
                CodeRefusal::Denied => {
                    pick("このログインは拒否されました。", "This sign-in was denied.")
                }
                CodeRefusal::WrongRecoveryCode => pick(
                    "リカバリーコードが正しくありません。",
                    "That is not one of your recovery codes.",
                ),
            },
            Self::Send(r) => match r {
                SendRefusal::RateLimited { retry_at, .. } => {
                    if ja {
                        format!(
                            "コードの送信回数が上限に達しました。{}にもう一度お試しください。",
                            wait(*retry_at)
                        )
                    } else {
                        format!(
                            "Too many codes were requested. Try again {}.",
                            wait(*retry_at)
                        )
                    }
                }
                SendRefusal::Cooldown { retry_at } => {
                    if ja {
                        format!(
                            "コードを送信したばかりです。{}に再送できます。",
                            wait(*retry_at)
                        )
                    } else {
                        format!(
                            "A code was just sent. You can ask for another {}.",
                            wait(*retry_at)
                        )
                    }
                }
                SendRefusal::SendsUsedUp => pick(
                    "このコードは送信できる回数の上限に達しました。新しいコードを発行してください。",
                    "This code was sent as many times as allowed. Ask for a new one.",
                ),
                SendRefusal::NoMoreOptions => pick(
                    "ほかに利用できる送信方法はありません。",
                    "No other way to send the code is available.",
                ),
                SendRefusal::ContactNotConfirmed => pick(
                    "登録されている連絡先と一致しません。",
                    "That does not match the contact on file.",
                ),
            },
            Self::Contact(r) => match r {
                ContactRefusal::InUse => pick(
                    "この連絡先はほかのアカウントで登録されています。",
                    "That contact is already registered to another account.",
                ),
                ContactRefusal::AlreadyAdded => pick(
                    "この連絡先はすでにこのアカウントに登録されています。",
                    "That contact is already registered to this account.",
                ),
                ContactRefusal::NotOnAccount => pick(
                    "この連絡先はこのアカウントに登録されていません。",
                    "That contact is not registered to this account.",
                ),
                ContactRefusal::TooMany => pick(
                    "この種類の連絡先はこれ以上追加できません。登録済みの連絡先を変更してください。",
                    "No more contacts of this kind can be added. Change one instead.",
                ),
                ContactRefusal::Required => pick(
                    "この連絡先は2段階認証に使われているため削除できません。新しい連絡先に変更してください。",
                    "This contact is used for two-step sign-in. Change it instead of removing it.",
                ),
                ContactRefusal::Unverified { email, phone } => match (email, phone, ja) {
                    (true, true, true) => "メールアドレスと電話番号の確認を完了してください。",
                    (true, false, true) => "メールアドレスの確認を完了してください。",
                    (false, true, true) => "電話番号の確認を完了してください。",
                    (false, false, true) => "連絡先の確認を完了してください。",
                    (true, true, false) => "Verify your email address and phone number first.",
                    (true, false, false) => "Verify your email address first.",
                    (false, true, false) => "Verify your phone number first.",
                    (false, false, false) => "Verify your contacts first.",
                }
                .to_owned(),
            },
            Self::Account(r) => match r {
                AccountRefusal::Locked { until: Some(until) } => {
                    if ja {
                        format!(
                            "失敗が続いたため、一時的に入力できません。{}にもう一度お試しください。",
                            wait(*until)
                        )
                    } else {
                        format!("Too many failed attempts. Try again {}.", wait(*until))
                    }
                }
                AccountRefusal::Locked { until: None } => pick(
                    "失敗が続いたため、アカウントがロックされています。サポートにお問い合わせください。",
                    "Too many failed attempts: the account is locked. Contact support.",
                ),
                AccountRefusal::StepUpRequired => pick(
                    "続けるには、もう一度本人確認を行ってください。",
                    "Confirm it's you with a second factor first.",
                ),
                AccountRefusal::TwoFactorAlreadyOn => pick(
                    "2段階認証はすでに有効です。",
                    "Two-step sign-in is already on.",
                ),
                AccountRefusal::TwoFactorOff => pick(
                    "2段階認証が有効になっていません。",
                    "Two-step sign-in is off.",
                ),
                AccountRefusal::NoSuchMethod => pick(
                    "この認証方法は利用できません。別の方法を選んでください。",
                    "That sign-in method is not available. Choose another.",
                ),
                AccountRefusal::NoSecondFactor => pick(
                    "先に確認済みの電話番号か認証アプリなど、2段階認証の手段を追加してください。",
                    "Add a second factor, such as a verified phone number or an authenticator app, first.",
                ),
                AccountRefusal::NotFound => pick(
                    "対象が見つかりません。ページを再読み込みして、もう一度お試しください。",
                    "That is no longer there. Reload the page and try again.",
                ),
            },
        }
    }
}

/// A wait in a message: "in 3 minutes" counted from `now`, or "after
/// <instant>" when no `now` is known.
struct Wait {
    at: OffsetDateTime,
    now: Option<OffsetDateTime>,
    locale: Locale,
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ja = matches!(self.locale, Locale::Ja);
        let Some(now) = self.now else {
            let at = self
                .at
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(|_| fmt::Error)?;
            return if ja {
                write!(f, "{at} 以降")
            } else {
                write!(f, "after {at}")
            };
        };
        let (big, small) = rounded_up(self.at - now);
        let unit = |(n, unit): (i64, Unit)| {
            if ja {
                let word = match unit {
                    Unit::Seconds => "秒",
                    Unit::Minutes => "分",
                    Unit::Hours => "時間",
                    Unit::Days => "日",
                };
                format!("{n}{word}")
            } else {
                let word = match unit {
                    Unit::Seconds => "second",
                    Unit::Minutes => "minute",
                    Unit::Hours => "hour",
                    Unit::Days => "day",
                };
                let plural = if n == 1 { "" } else { "s" };
                format!("{n} {word}{plural}")
            }
        };
        let mut text = unit(big);
        if let Some(small) = small.filter(|(n, _)| *n > 0) {
            text.push_str(if ja { "" } else { " " });
            text.push_str(&unit(small));
        }
        if ja {
            write!(f, "{text}後")
        } else {
            write!(f, "in {text}")
        }
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
}

/// A wait in whole units, rounded up so the user never comes back too
/// early, and never more than the smaller unit late: seconds under a
/// minute, minutes under two hours, hours and minutes under two days, then
/// days and hours. A wait already over reads as one second.
fn rounded_up(wait: Duration) -> ((i64, Unit), Option<(i64, Unit)>) {
    let seconds = (wait.whole_seconds() + i64::from(wait.subsec_nanoseconds() > 0)).max(1);
    let up = |per: i64| (seconds + per - 1) / per;
    if seconds < 60 {
        ((seconds, Unit::Seconds), None)
    } else if seconds < 2 * 60 * 60 {
        ((up(60), Unit::Minutes), None)
    } else if seconds < 48 * 60 * 60 {
        let minutes = up(60);
        (
            (minutes / 60, Unit::Hours),
            Some((minutes % 60, Unit::Minutes)),
        )
    } else {
        let hours = up(60 * 60);
        ((hours / 24, Unit::Days), Some((hours % 24, Unit::Hours)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal, one of each variant. The matches in `code` and
    /// `render` keep it honest: a new variant without a code or message
    /// does not compile, and the count below catches one left out here.
    pub(crate) fn every_refusal() -> Vec<Refusal> {
        let at = OffsetDateTime::UNIX_EPOCH;
        let mut all: Vec<Refusal> = vec![
            CodeRefusal::WrongCode {
                attempts_left: Some(1),
            }
            .into(),
            CodeRefusal::WrongCode {
                attempts_left: None,
            }
            .into(),
            CodeRefusal::Expired.into(),
            CodeRefusal::TooManyAttempts.into(),
            CodeRefusal::Unknown.into(),
            CodeRefusal::AlreadyUsed.into(),
            CodeRefusal::PurposeMismatch.into(),
            CodeRefusal::DestinationMismatch.into(),
            CodeRefusal::Denied.into(),
            CodeRefusal::WrongRecoveryCode.into(),
            SendRefusal::RateLimited {
                limit: LimitKind::Destination,
                retry_at: at,
            }
            .into(),
            SendRefusal::Cooldown { retry_at: at }.into(),
            SendRefusal::SendsUsedUp.into(),
            SendRefusal::NoMoreOptions.into(),
            SendRefusal::ContactNotConfirmed.into(),
            ContactRefusal::InUse.into(),
            ContactRefusal::AlreadyAdded.into(),
            ContactRefusal::NotOnAccount.into(),
            ContactRefusal::TooMany.into(),
            ContactRefusal::Required.into(),
            AccountRefusal::Locked { until: Some(at) }.into(),
            AccountRefusal::Locked { until: None }.into(),
            AccountRefusal::StepUpRequired.into(),
            AccountRefusal::TwoFactorAlreadyOn.into(),
            AccountRefusal::TwoFactorOff.into(),
            AccountRefusal::NoSuchMethod.into(),
            AccountRefusal::NoSecondFactor.into(),
            AccountRefusal::NotFound.into(),
        ];
        for (email, phone) in [(true, true), (true, false), (false, true), (false, false)] {
            all.push(ContactRefusal::Unverified { email, phone }.into());
        }
        all
    }

    #[test]
    fn every_refusal_has_its_own_stable_snake_case_code() {
        let all = every_refusal();
        let mut codes: Vec<&str> = all.iter().map(Refusal::code).collect();
        for code in &codes {
            assert!(
                !code.is_empty()
                    && code.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    && !code.starts_with('_')
                    && !code.ends_with('_'),
                "{code}"
            );
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 27, "a refusal is missing, or two share a code");
    }

    #[test]
    fn the_json_code_is_the_code() {
        for refusal in every_refusal() {
            let json = serde_json::to_value(refusal).unwrap();
            assert_eq!(json["code"], refusal.code(), "{json}");
        }
        let wrong = Refusal::from(CodeRefusal::WrongCode {
            attempts_left: Some(3),
        });
        assert_eq!(
            serde_json::to_string(&wrong).unwrap(),
            r#"{"code":"wrong_code","attempts_left":3}"#
        );
        let limited = Refusal::from(SendRefusal::RateLimited {
            limit: LimitKind::Account,
            retry_at: OffsetDateTime::UNIX_EPOCH,
        });
        assert_eq!(
            serde_json::to_string(&limited).unwrap(),
            r#"{"code":"rate_limited","limit":"account","retry_at":"1970-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn every_refusal_has_a_message_in_both_languages() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut seen = std::collections::HashSet::new();
        for refusal in every_refusal() {
            let ja = refusal.message(Locale::Ja, now);
            let en = refusal.message(Locale::En, now);
            assert!(!ja.is_ascii(), "{ja}");
            assert!(en.is_ascii() && en.ends_with('.'), "{en}");
            assert!(seen.insert(en.clone()), "two refusals read the same: {en}");
            assert!(!refusal.to_string().is_empty());
        }
    }

    #[test]
    fn figures_are_in_the_message() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let en = |r: Refusal| r.message(Locale::En, now);
        let ja = |r: Refusal| r.message(Locale::Ja, now);
        let one = CodeRefusal::WrongCode {
            attempts_left: Some(1),
        };
        assert_eq!(en(one.into()), "The code is wrong. 1 attempt left.");
        let cooldown = |s: i64| SendRefusal::Cooldown {
            retry_at: now + Duration::seconds(s),
        };
        assert!(en(cooldown(1).into()).contains("in 1 second."));
        assert!(en(cooldown(60).into()).contains("in 1 minute."));
        assert!(en(cooldown(61).into()).contains("in 2 minutes."));
        assert!(ja(cooldown(61).into()).contains("2分後"));
        assert!(en(cooldown(-5).into()).contains("in 1 second."));
        let locked = AccountRefusal::Locked {
            until: Some(now + Duration::hours(3)),
        };
        assert!(en(locked.into()).contains("in 3 hours."));
        assert!(ja(locked.into()).contains("3時間後"));
        let wait = |s: i64| {
            en(SendRefusal::Cooldown {
                retry_at: now + Duration::seconds(s),
            }
            .into())
        };
        assert!(wait(2 * 3600 - 1).contains("in 120 minutes."));
        assert!(wait(2 * 3600 + 1).contains("in 2 hours 1 minute."));
        assert!(wait(5 * 3600 + 30 * 60).contains("in 5 hours 30 minutes."));
        assert!(wait(3 * 86_400).contains("in 3 days."));
        assert!(wait(2 * 86_400 + 1).contains("in 2 days 1 hour."));
        let long = SendRefusal::Cooldown {
            retry_at: now + Duration::seconds(2 * 86_400 + 5 * 3600),
        };
        assert!(ja(long.into()).contains("2日5時間後"));
        let limited = SendRefusal::RateLimited {
            limit: LimitKind::Destination,
            retry_at: now + Duration::milliseconds(90_500),
        };
        assert!(en(limited.into()).contains("in 2 minutes."));
        // Without a `now`, the instant itself.
        assert_eq!(
            Refusal::from(locked).to_string(),
            "Too many failed attempts. Try again after 1970-01-02T03:00:00Z."
        );
        assert_eq!(
            Refusal::from(locked).retry_at(),
            Some(now + Duration::hours(3))
        );
        assert_eq!(Refusal::from(CodeRefusal::Expired).retry_at(), None);
        let pending = ContactRefusal::Unverified {
            email: false,
            phone: true,
        };
        assert_eq!(en(pending.into()), "Verify your phone number first.");
    }
}
