//! Key rotation: replacing a hashing or sealing key without locking
//! anyone out.
//!
//! ninsho holds two sets of keys, each key with a [`KeyId`] that is stored
//! beside everything it made:
//!
//! - the **hashing keys** of the [`KeyedHasher`]: one-time codes, link
//!   tokens, recovery codes, trusted-device tokens (and the short-lived
//!   step-up proofs and sign-in attempt marks) are stored as HMACs under
//!   them ([`crate::hash`]);
//! - the **sealing keys** of the [`Sealer`]: authenticator seeds are stored
//!   encrypted under them ([`crate::seal`]).
//!
//! Each set has one *current* key, which writes, and any number of
//! *previous* keys, which only read what they wrote. Rotating a key means
//! making a new one current, waiting until nothing that matters still
//! needs the old one, and only then dropping it. This page is the
//! procedure, and what happens when a key goes too early.
//!
//! # Which records need which key, and for how long
//!
//! | record | key | lives | moves to the current key |
//! |---|---|---|---|
//! | one-time code (SMS, voice, email) | hashing | its code lifetime, 10 minutes by default ([`CodePolicy::lifetime`]) | no: it expires |
//! | one-time link | hashing | its link lifetime, 10 minutes by default ([`CodePolicy::link_lifetime`]) | no: it expires |
//! | combined verification (sign-up) | hashing, through its members' codes | 30 minutes by default ([`DEFAULT_VERIFICATION_LIFETIME`]) | no: it expires |
//! | step-up proof, sign-in attempt mark | hashing | the step-up window, 10 minutes by default ([`DEFAULT_STEP_UP_WINDOW`](crate::service::DEFAULT_STEP_UP_WINDOW)); the retry of one sign-in | no: it expires |
//! | trusted device | hashing | 30 days by default ([`DevicePolicy::lifetime`]) | **yes**, at its next check: a valid token is hashed again with the current key |
//! | recovery code | hashing | until used or regenerated: months, years | **no**: only its hash is stored, so it can't be hashed again until the user types it, and then it is spent |
//! | authenticator seed (confirmed, or a setup pending) | sealing | until the app is removed or replaced | **yes**, at its next accepted code (sign-in or confirmation), in the same write; or ahead of use with [`TwoFactor::reseal_authenticator`] |
//!
//! The short-lived records need the old key only until the longest of
//! their lifetimes has passed since the new key became current: 30 minutes
//! with the defaults. Expired records that the store has not purged yet
//! are refused as expired, except a one-time link, whose token is looked
//! up before its expiry: count the time the store keeps expired challenges
//! too (until [`PurgeStore::purge`](crate::store::PurgeStore::purge),
//! or the store's own expiry, removes them).
//!
//! The long-lived records are counted per account by
//! [`TwoFactor::key_usage`]: unused recovery codes and valid trusted
//! devices per hashing key id, authenticator seeds per sealing key id. The
//! host owns the list of its accounts, so it sums the reports itself
//! ([`KeyUsage`] adds up), over every account or over a sample to watch
//! the trend, without ninsho scanning the store.
//!
//! # Rotating a hashing key
//!
//! 1. **Generate** the new key (32 random bytes or more, from a CSPRNG)
//!    with a new id, and store it where the old one is kept, never in the
//!    database.
//! 2. **Let every instance read it first.** Deploy it as a *previous* key
//!    while the old key stays current:
//!    `KeyedHasher::new(old).with_previous(new)?`. With several instances,
//!    this step matters: once one instance writes with the new key, every
//!    other instance must be able to read what it wrote. Skip it only when
//!    a single instance runs.
//! 3. **Make it current.** Deploy the new key as current and keep the old
//!    one as previous: `KeyedHasher::new(new).with_previous(old)?`. New
//!    records are written with the new key; old ones still verify.
//! 4. **Wait out the short-lived records**: the longest code, link,
//!    verification and step-up lifetime (plus the store's retention of
//!    expired challenges).
//! 5. **Watch [`key_usage`](crate::service::TwoFactor::key_usage) fall** as users sign in:
//!    each trusted device moves at its next check. Devices nobody uses
//!    expire with their lifetime; those can be left to expire.
//! 6. **Deal with the recovery codes**, which don't move by themselves.
//!    For each account whose report still names the old key in
//!    [`recovery_codes`](crate::service::KeyUsage::recovery_codes), prompt the user to
//!    regenerate them (after a fresh second factor,
//!    [`TwoFactor::regenerate_recovery_codes`]); the new set is hashed with
//!    the current key. Or keep the old key as a previous key for as long
//!    as such sets exist: a previous key costs one HMAC per check of a
//!    record that uses it, and nothing for the others.
//! 7. **Only then retire the old key**: deploy without it. Keep a copy
//!    offline for a while in case a forgotten record turns up.
//!
//! # Rotating a sealing key
//!
//! The same steps, with [`AeadSealer`](crate::seal::AeadSealer):
//!
//! 1. Generate a new [`SealKey`](crate::seal::SealKey) (exactly 32 random
//!    bytes) with a new id.
//! 2. With several instances, deploy it as a previous key first:
//!    `AeadSealer::new(old).with_previous(new)?`.
//! 3. Make it current: `AeadSealer::new(new).with_previous(old)?`. Every
//!    seed that is used (an accepted sign-in code, or the first code of a
//!    new app) is sealed again with the new key in the same write that
//!    records the code.
//! 4. Watch [`authenticators`](crate::service::KeyUsage::authenticators) in the reports
//!    fall, and move the rest ahead of use: [`TwoFactor::reseal_authenticator`]
//!    opens and reseals one account's seeds, confirmed and pending, with
//!    one compare-and-set, and is safe to run again (a batch job over the
//!    host's accounts, say).
//! 5. Retire the old key when no report names it.
//!
//! A sealer of your own (a KMS, an HSM) takes part through two methods of
//! the [`Sealer`] trait: [`needs_reseal`](crate::seal::Sealer::needs_reseal) (say which
//! seeds are under an older key; the default, `false`, never reseals) and
//! [`sealed_key_id`](crate::seal::Sealer::sealed_key_id) (name the key, for the
//! reports; the default counts the seed as
//! [unlabelled](crate::service::KeyUsage::authenticators_unlabelled)).
//!
//! # If a key goes too early
//!
//! A record made with a key this deployment no longer holds can't be
//! checked, and ninsho says so instead of guessing:
//!
//! | secret | what the user's attempt gets |
//! |---|---|
//! | one-time code | [`Error::RetiredKey`], when no live code under a held key matched (a code sent later, under the current key, still works) |
//! | one-time link | [`Error::RetiredKey`] for a well-formed token |
//! | recovery code | [`Error::RetiredKey`], when no code under a held key matched and an unused code is under the missing key |
//! | authenticator seed | [`Error::RetiredKey`], at sign-in, at confirmation and from [`reseal_authenticator`](crate::service::TwoFactor::reseal_authenticator) |
//! | trusted device | the answer [`DeviceCheck::RetiredKey`]: the device is not trusted and sign-in asks for the second factor |
//! | step-up proof | [`AccountRefusal::StepUpRequired`](crate::AccountRefusal::StepUpRequired): pass a second factor again |
//!
//! In every case the attempt is **not counted** against the account (the
//! guess is taken back, no [`Event::Failed`](crate::events::Event::Failed)
//! is recorded, the failure run is as it was) and nothing is consumed: the
//! user is never pushed towards a lockout by the operator's mistake, and
//! the secret works again as soon as the key is back.
//! [`Error::is_infrastructure`](crate::Error::is_infrastructure) is true for
//! it, and every case is reported as
//! [`Event::RetiredKey`](crate::events::Event::RetiredKey) naming the kind
//! of secret and the key id, so an operator sees it even when the user
//! simply passed another factor.
//!
//! To recover, configure the key again as a previous key; everything made
//! with it works again. If the key is lost for good, the affected secrets
//! are too: users ask for a new code or link, pass a second factor and
//! trust their device again, set up their authenticator app again, and
//! sign in another way to regenerate their recovery codes. An account
//! whose only remaining factors were under the lost key needs the host's
//! own account recovery.
//!
//! One exception keeps guessing bounded: a challenge can hold live codes
//! under both keys (resent by an instance that already wrote with the new
//! key and lacked the old one). A wrong guess there was compared with the
//! code it could check, so, while the account's failure run still takes it
//! back, the challenge counts the attempt against its own limit
//! ([`CodePolicy::max_attempts`]).
//!
//! # Summing the reports
//!
//! ```
//! use ninsho::service::{KeyUsage, TwoFactor};
//! use ninsho::model::AccountId;
//! use ninsho::{Error, KeyId};
//!
//! /// Whether hashing key `old` can be retired: no account of the host's
//! /// still has a recovery code or a trusted device under it (the
//! /// short-lived records having expired).
//! async fn can_retire(
//!     service: &TwoFactor,
//!     accounts: &[AccountId],
//!     old: KeyId,
//! ) -> Result<bool, Error> {
//!     let mut total = KeyUsage::default();
//!     for account in accounts {
//!         total.add(&service.key_usage(account).await?);
//!     }
//!     Ok(total.hashing(old) == 0)
//! }
//! ```
//!
//! [`KeyId`]: crate::hash::KeyId
//! [`KeyedHasher`]: crate::hash::KeyedHasher
//! [`Sealer`]: crate::seal::Sealer
//! [`CodePolicy::lifetime`]: crate::challenge::CodePolicy::lifetime
//! [`CodePolicy::link_lifetime`]: crate::challenge::CodePolicy::link_lifetime
//! [`CodePolicy::max_attempts`]: crate::challenge::CodePolicy::max_attempts
//! [`DEFAULT_VERIFICATION_LIFETIME`]: crate::service::DEFAULT_VERIFICATION_LIFETIME
//! [`DevicePolicy::lifetime`]: crate::device::DevicePolicy::lifetime
//! [`TwoFactor::key_usage`]: crate::service::TwoFactor::key_usage
//! [`TwoFactor::reseal_authenticator`]: crate::service::TwoFactor::reseal_authenticator
//! [`TwoFactor::regenerate_recovery_codes`]: crate::service::TwoFactor::regenerate_recovery_codes
//! [`KeyUsage`]: crate::service::KeyUsage
//! [`Error::RetiredKey`]: crate::Error::RetiredKey
//! [`DeviceCheck::RetiredKey`]: crate::device::DeviceCheck::RetiredKey
