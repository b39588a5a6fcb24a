//! Defaults, and why: every limit ninsho applies unless told otherwise,
//! the standard or practice behind it, and the knob that changes it.
//!
//! Every limit has a default and a knob. Where a standard sets a number,
//! the default follows the strictest reading of it; where none does, the
//! default follows the practice of large services and the seed help pages
//! the crate was built for, and the table says so. The doc test at the end
//! of this page checks every number here against the code.
//!
//! # One-time codes and links
//!
//! [`CodePolicy`], passed to [`TwoFactorBuilder::code_policy`].
//!
//! | setting | default | why |
//! |---|---|---|
//! | digits | 6 (6–10 with [`with_digits`](crate::challenge::CodePolicy::with_digits); 4–5 only through [`dangerous_short_digits`](crate::challenge::CodePolicy::dangerous_short_digits)) | NIST SP 800-63B asks for out-of-band secrets of at least 20 bits and counts six decimal digits (19.93 bits) as about 20; every user knows the shape |
//! | lifetime of a code | 10 minutes | NIST SP 800-63B (rev. 3, §5.1.3.2): an out-of-band authentication not completed within 10 minutes is invalid |
//! | wrong attempts per challenge | 5, across resends | then the challenge is dead and even the right code is refused; the same figure as Twilio Verify's checks per verification |
//! | resend cooldown | 60 s, from the last send the gateway did not fail transiently | no standard: long enough for a slow SMS to arrive before the user asks again, short enough not to strand anyone; after a timeout or outage no message is on its way, so none is waited for |
//! | sends per challenge | 5, the first included, failed sends too | a stuck "resend" button can't flood a phone; matches the per-destination limit below. A send the gateway failed still counts (here and per destination): a provider that timed out may have delivered after all |
//! | lifetime of a one-time link | 10 minutes | a link is an out-of-band secret too: the same NIST rule |
//!
//! A resend keeps the earlier codes of the challenge valid until their own
//! expiry (the late SMS still works), so a guess is compared with up to 5
//! live codes. With the defaults one challenge gives an attacker at most 5
//! guesses against at most 5 codes in a million: a chance of at most
//! 25 in 1,000,000, before the per-account limits below even start.
//!
//! # Send limits
//!
//! [`SendLimits`], passed to [`TwoFactorBuilder::limits`]. Fixed windows,
//! counted in the store with atomic increments; every refusal says when a
//! retry can succeed ([`SendRefusal::RateLimited`](crate::SendRefusal::RateLimited)).
//!
//! | limit | default | why |
//! |---|---|---|
//! | per destination (phone number or email address) | 5 per 10 minutes | Twilio Verify's send limit per destination; bounds what one victim's phone or inbox receives |
//! | per account | 10 per hour | room for a fallback channel and a few resends, not for a script |
//! | per caller (a key the host passes: an IP address, a session) | 20 per 10 minutes | a shared office or mobile-carrier NAT stays usable; one client can't walk through many numbers |
//! | per country prefix | none | an operator sets budgets per E.164 prefix (longest prefix wins) and one for every other country, against SMS pumping |
//!
//! # Failed attempts per account
//!
//! [`FailurePolicy`], passed to [`TwoFactorBuilder::failure_policy`] (and
//! used by recovery codes). One run of consecutive failures per account,
//! across all its challenges; a success ends it.
//!
//! | setting | default | why |
//! |---|---|---|
//! | failures before back-off | 3 | typing mistakes cost nothing |
//! | back-off | 1 s after the 3rd failure, doubling with each further one (2 s, 4 s, … 512 s after the 12th) | NIST SP 800-63B §5.2.2 suggests waits that grow as an account nears its limit |
//! | longest wait | 15 minutes (from the 13th failure on) | long enough to make guessing slow, short enough for a user to come back the same day |
//! | hard stop | 100 consecutive failures, then locked until an operator clears the run ([`TwoFactor::reset_failures`](crate::service::TwoFactor::reset_failures)) | NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts on one account |
//!
//! With the defaults an attacker needs about 22 hours of waiting
//! (79,323 seconds) to make the 100 guesses the hard stop allows.
//!
//! # Authenticator apps (TOTP)
//!
//! [`Totp::builder`](crate::otp::Totp::builder).
//!
//! | setting | default | why |
//! |---|---|---|
//! | algorithm | SHA-1 | RFC 6238 allows SHA-1, SHA-256 and SHA-512; SHA-1 is the one every app supports, and HMAC-SHA-1 is not weakened by SHA-1's collisions |
//! | digits | 6 (6–10) | RFC 4226 §5.3: at least 6 digits |
//! | period | 30 s, `T0` = 0 | RFC 6238 §5.2 recommends 30 seconds; key URIs have no field for `T0` |
//! | window | one step back, one ahead (at most 10 each side) | RFC 6238 §5.2 recommends allowing at most one step of network delay; one ahead absorbs a phone clock running fast |
//! | replay | refused: a code of the last accepted step or any earlier one | RFC 6238 §5.2: the verifier must not accept the second attempt of an OTP once the first was validated |
//! | seed | 20, 32 or 64 random bytes (the hash's output size); at least 16 when imported, 10 only through the `danger_…_allow_short` imports of existing seeds | RFC 4226 §4: at least 128 bits, 160 recommended |
//!
//! # Recovery codes
//!
//! [`RecoveryPolicy`].
//!
//! | setting | default | why |
//! |---|---|---|
//! | codes per set | 10 (1–50) | nizima's figure (seed `001`); regenerating voids the old set |
//! | length | 12 characters (9–32), shown as `XXXX-XXXX-XXXX` | 31 symbols without `0`, `1`, `I`, `L`, `O`, so nothing is misread: 12 × log₂ 31 ≈ 59.4 bits per code |
//! | "running low" | 3 or fewer left | time to prompt for a new set |
//!
//! NIST SP 800-63B (rev. 3, §5.1.2) asks look-up secrets for at least 20
//! bits of entropy and, below 64 bits, for a limit on failed attempts as
//! in §5.2.2. Recovery codes are far above the floor and below 64 bits, so
//! every redemption goes through the account's failure run: the back-off
//! and hard stop above apply. The shortest length allowed, 9 characters,
//! still has 44.6 bits.
//!
//! # Trusted devices, grace period, combined verification
//!
//! | setting | default | knob | why |
//! |---|---|---|---|
//! | trusted-device lifetime | 30 days | [`DevicePolicy::lifetime`] | no standard: a month of sign-ins without the second step on one browser, ended early by revocation or a security-epoch bump |
//! | "last used" written at most | every hour | [`DevicePolicy::refresh_every`] | spares the store a write per request on busy sites |
//! | grace period for verifying a contact | 7 days from account creation, any one verified contact | [`GracePolicy`] | Microsoft's rule (seed `004`); blocked from the deadline on, never extended by adding and removing contacts |
//! | combined verification (email and phone together) | 30 minutes as a whole | [`DEFAULT_VERIFICATION_LIFETIME`](crate::service::DEFAULT_VERIFICATION_LIFETIME) | time to read an SMS and an email and type two codes; an abandoned sign-up dies in the same session |
//!
//! # Contacts and phone numbers
//!
//! [`ContactPolicy`] and [`PhonePolicy`]; the reasons for each refused kind
//! of number are in the [`contact`](crate::contact#phone-numbers) module.
//!
//! | setting | default | why |
//! |---|---|---|
//! | regions | Japan only; foreign numbers refused | international SMS routes are the ones carriers block and SMS-pumping fraud exploits; an operator opens others with [`allow_region`](crate::contact::PhonePolicy::allow_region) |
//! | SMS | mobile numbers only (`060`, `070`, `080`, `090`) | landlines, IP phones (`050`), M2M (`020`), free-dial and premium-rate numbers can't receive SMS or don't reach a person holding a SIM |
//! | voice calls | mobile and fixed-line numbers | a call to a landline is the usual fallback for users without SMS |
//! | phone numbers per account | 1 | change the number rather than add a second (nizima) |
//! | email addresses per account | 3 | |
//! | one owner per verified phone number | yes | a number can't be used to take over a second account |
//! | one owner per verified email address | no | the host's account table usually owns that rule for the sign-in address |
//! | email as a second factor | no ([`TwoFactorBuilder::email_as_second_factor`]) | NIST SP 800-63B (§5.1.3.1) rules email out for out-of-band authentication: the mailbox opens with a password, often one the account's own reset controls. Off, sign-in offers and accepts no email method, and a verified email alone can't turn two-step sign-in on |
//! | channels for a phone number | SMS, then voice ([`TwoFactorBuilder::phone_channels`]) | a refused SMS falls back to a call |
//!
//! # Masked contacts
//!
//! [`MaskPolicy`], passed to [`TwoFactorBuilder::mask_policy`] or
//! [`TwoFactorBuilder::mask_policy`]; the confirmation itself is turned on
//! with [`TwoFactorBuilder::confirm_masked_contacts`] (default off) or per
//! send with [`IssueRequest::confirmation`].
//!
//! | setting | default | why |
//! |---|---|---|
//! | phone digits shown on screen | the last 2 (`+81 **-****-**78`); fewer for short numbers, so that at least 4 of their digits stay hidden | Microsoft's figure (seed `004`): enough to tell a user's numbers apart |
//! | phone digits a confirmation asks for | the last 4 (2–8, at least 2 more than shown; never more than the number has) | Microsoft's figure (seed `004`); the two unseen digits are not on any screen, so a password alone doesn't pass |
//! | email characters shown | the first 2 of the local part (0–4), at least one always hidden | Microsoft shows the start of the address and asks the user to complete it |
//! | email confirmation | the whole address, case-insensitive | seed `004` |
//! | log form (events, `Debug`) | the last 4 digits, first 2 characters of an email address | support staff tell contacts apart; never shown on a screen |
//!
//! The confirmation is a speed bump, not a factor: two unseen digits are
//! 100 possible answers, and every wrong one counts against the account's
//! failure run above, so trying them all takes the whole run up to the
//! hard stop. Ask for more digits where that is too little.
//!
//! # Messages
//!
//! The texts are [`Templates`], passed to [`TwoFactorBuilder::templates`].
//!
//! | setting | default | knob | why |
//! |---|---|---|---|
//! | language | Japanese | [`TwoFactorBuilder::locale`] for the service; [`TwoFactor::with_locale`] per user | the seed services are Japanese; a user who reads English gets English whatever the service's default |
//! | language of a resend or "another option" | the language the code was first sent in | none | the same sign-in should not change language half way |
//! | what an email code tells a user who did not ask for it | sign-in, step-up: someone else may know the password, change it; recovery: someone may be trying to get into an account with the address; sign-up, contact change, the host's own purposes: the address may have been typed by mistake | [`Templates::set_for`] per [`Occasion`], [`Templates::set`] for all | an unasked-for sign-in code means the password is out, and "ignore this email" would be the wrong advice; an unasked-for sign-up code most often is a typo |
//! | SMS and voice texts | the same for every occasion: the code, its lifetime, never share it | [`Templates::set`] | an SMS stays short: Japanese text is UCS-2, 70 characters a segment, and the code SMS with its WebOTP line fits one segment while service name and host together stay within 24 characters in Japanese, 32 in English (13 and 21 characters of name with `example.com`; see [`Templates`]) |
//!
//! # Hashing keys
//!
//! A [`HashKey`](crate::HashKey) has at least 32 random bytes
//! ([`MIN_KEY_LEN`](crate::hash::MIN_KEY_LEN)), the output size of
//! HMAC-SHA-256; shorter keys are refused.
//!
//! # The numbers, checked
//!
//! ```
//! use ninsho::challenge::CodePolicy;
//! use ninsho::contact::{AllowedRegions, MaskPolicy, PhonePolicy, Region};
//! use ninsho::model::{Locale, PhoneType};
//! use ninsho::device::DevicePolicy;
//! use ninsho::service::{ContactPolicy, DEFAULT_VERIFICATION_LIFETIME};
//! use ninsho::grace::GracePolicy;
//! use ninsho::limits::{FailurePolicy, RateLimit, SendLimits};
//! use ninsho::otp::{Algorithm, OtpSecret, Totp, Window};
//! use ninsho::recovery::RecoveryPolicy;
//! use time::Duration;
//!
//! let codes = CodePolicy::default();
//! assert_eq!(codes.digits(), 6);
//! assert_eq!(codes.lifetime, Duration::minutes(10));
//! assert_eq!(codes.max_attempts, 5);
//! assert_eq!(codes.resend_cooldown, Duration::seconds(60));
//! assert_eq!(codes.max_sends, 5);
//! assert_eq!(codes.link_lifetime, Duration::minutes(10));
//!
//! let sends = SendLimits::default();
//! assert_eq!(sends.per_destination, RateLimit::new(5, Duration::minutes(10)));
//! assert_eq!(sends.per_account, RateLimit::new(10, Duration::hours(1)));
//! assert_eq!(sends.per_caller, RateLimit::new(20, Duration::minutes(10)));
//! assert!(sends.countries.is_empty() && sends.other_countries.is_none());
//!
//! let failures = FailurePolicy::default();
//! assert_eq!(failures.delay(2), Duration::ZERO);
//! assert_eq!(failures.delay(3), Duration::seconds(1));
//! assert_eq!(failures.delay(12), Duration::seconds(512));
//! assert_eq!(failures.delay(13), Duration::minutes(15));
//! assert_eq!(failures.hard_stop, 100);
//! let waiting: i64 = (0..failures.hard_stop).map(|n| failures.delay(n).whole_seconds()).sum();
//! assert_eq!(waiting, 79_323); // about 22 hours
//!
//! let seed = OtpSecret::from_bytes(vec![7; 20]).unwrap();
//! let totp = Totp::builder(seed).account("alice@example.com").build().unwrap();
//! assert_eq!(totp.algorithm(), Algorithm::Sha1);
//! assert_eq!((totp.digits(), totp.period()), (6, 30));
//! assert_eq!(totp.window(), Window::new(1, 1));
//!
//! let recovery = RecoveryPolicy::default();
//! assert_eq!((recovery.count(), recovery.length(), recovery.low_threshold), (10, 12, 3));
//! assert!((recovery.bits() - 59.45).abs() < 0.01);
//!
//! let devices = DevicePolicy::default();
//! assert_eq!(devices.lifetime, Duration::days(30));
//! assert_eq!(devices.refresh_every, Duration::hours(1));
//!
//! assert_eq!(GracePolicy::default().grace, Duration::days(7));
//! assert_eq!(DEFAULT_VERIFICATION_LIFETIME, Duration::minutes(30));
//!
//! let contacts = ContactPolicy::default();
//! assert_eq!((contacts.max_phones, contacts.max_emails), (1, 3));
//! assert!(contacts.unique_phones && !contacts.unique_emails);
//! assert!(!contacts.email_second_factor);
//! let phones = PhonePolicy::default();
//! assert_eq!(phones.allowed_regions, AllowedRegions::Only(vec![Region::JP]));
//! assert_eq!(phones.sms_types, [PhoneType::Mobile, PhoneType::FixedLineOrMobile]);
//!
//! let masks = MaskPolicy::default();
//! assert_eq!((masks.phone_digits_shown(), masks.phone_digits_asked()), (2, 4));
//! assert_eq!(masks.email_chars_shown(), 2);
//! assert_eq!((MaskPolicy::MIN_DIGITS_ASKED, MaskPolicy::MAX_DIGITS_ASKED), (2, 8));
//! assert_eq!(MaskPolicy::MIN_DIGITS_UNSEEN, 2);
//! assert_eq!(MaskPolicy::MAX_EMAIL_CHARS_SHOWN, 4);
//!
//! assert_eq!(Locale::default(), Locale::Ja);
//! ```
//!
//! [`CodePolicy`]: crate::challenge::CodePolicy
//! [`TwoFactorBuilder::code_policy`]: crate::service::TwoFactorBuilder::code_policy
//! [`TwoFactorBuilder::limits`]: crate::service::TwoFactorBuilder::limits
//! [`TwoFactorBuilder::failure_policy`]: crate::service::TwoFactorBuilder::failure_policy
//! [`TwoFactorBuilder::phone_channels`]: crate::service::TwoFactorBuilder::phone_channels
//! [`SendLimits`]: crate::limits::SendLimits
//! [`FailurePolicy`]: crate::limits::FailurePolicy
//! [`RecoveryPolicy`]: crate::recovery::RecoveryPolicy
//! [`DevicePolicy::lifetime`]: crate::device::DevicePolicy::lifetime
//! [`DevicePolicy::refresh_every`]: crate::device::DevicePolicy::refresh_every
//! [`GracePolicy`]: crate::grace::GracePolicy
//! [`ContactPolicy`]: crate::service::ContactPolicy
//! [`TwoFactorBuilder::email_as_second_factor`]: crate::service::TwoFactorBuilder::email_as_second_factor
//! [`PhonePolicy`]: crate::contact::PhonePolicy
//! [`MaskPolicy`]: crate::contact::MaskPolicy
//! [`TwoFactorBuilder::mask_policy`]: crate::service::TwoFactorBuilder::mask_policy
//! [`TwoFactorBuilder::confirm_masked_contacts`]: crate::service::TwoFactorBuilder::confirm_masked_contacts
//! [`IssueRequest::confirmation`]: crate::service::IssueRequest::confirmation
//! [`Templates`]: crate::gateway::Templates
//! [`Templates::set`]: crate::gateway::Templates::set
//! [`Templates::set_for`]: crate::gateway::Templates::set_for
//! [`Occasion`]: crate::gateway::Occasion
//! [`TwoFactorBuilder::templates`]: crate::service::TwoFactorBuilder::templates
//! [`TwoFactorBuilder::locale`]: crate::service::TwoFactorBuilder::locale
//! [`TwoFactor::with_locale`]: crate::service::TwoFactor::with_locale
