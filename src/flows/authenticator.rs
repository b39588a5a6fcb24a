//! The authenticator app: setting one up (a sealed seed, confirmed by its
//! first code), signing in with its codes (each time step once), removing
//! it, and opening and sealing its seed.
//!
//! Seeds are stored sealed ([`Sealer`]) and base32-encoded. Every check
//! opens the seed before the guess is counted, so an outage of the key
//! service is never a wrong code, and writes with compare-and-set, so one
//! code signs in once however many requests race. The rules for what a
//! change does to the account (the epoch, the last second factor) are
//! [`factors`](crate::factors)'.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use super::account::Standing;
use super::cas::{self, AccountGuess, AccountGuessSlot, Step};
use super::{Attempt, Contacts, Ports, attempt_hash, guess, retired_key, same_attempt};
use crate::error::{AccountRefusal, CodeRefusal, Error, Refusal, SecretKind};
use crate::events::Event;
use crate::factors;
use crate::limits::FailurePolicy;
use crate::model::{AccountId, AccountRecord, AuthenticatorRecord, DeviceRecord, Factors};
#[cfg(feature = "qr")]
use crate::otp::QrError;
use crate::otp::{Rejection, Totp, TotpEnrollment};
use crate::seal::{SealErrorKind, Sealer};
use crate::secret::{SecretBytes, SecretString};
use crate::store::{ClaimChanges, Load, StoreError};

const BASE32: base32::Alphabet = base32::Alphabet::Rfc4648 { padding: false };

/// A new authenticator app to show: a QR code of `uri`, or `manual_key` to
/// type. With the `qr` feature, [`qr_svg`](Self::qr_svg) and
/// [`qr_terminal`](Self::qr_terminal) draw the QR code.
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthenticatorSetup {
    /// The `otpauth://` key URI (for the QR code).
    pub uri: SecretString,
    /// The seed in base32, for typing in.
    pub manual_key: SecretString,
}

#[cfg(feature = "qr")]
impl AuthenticatorSetup {
    /// The QR code of [`uri`](Self::uri) as a complete SVG document, for the
    /// enrolment page: black on white with the quiet zone, 4 pixels per
    /// module by default and a `viewBox`, so CSS can resize it without
    /// blurring. It references nothing outside itself; put it inline, or
    /// in an `<img>` as a `data:image/svg+xml` URL (percent- or
    /// base64-encoded).
    ///
    /// **It contains the seed**, like the URI: send it only to the user
    /// enrolling, in a response that is not cached (`Cache-Control:
    /// no-store`), and never log it. Show [`manual_key`](Self::manual_key)
    /// beside it for users who can't scan.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use ninsho::prelude::*;
    /// use ninsho::gateway::RecordingGateway;
    /// use ninsho::store::MemoryStore;
    ///
    /// let service = TwoFactor::builder(
    ///     "Example",
    ///     Arc::new(MemoryStore::new()),
    ///     Arc::new(RecordingGateway::new()),
    ///     KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32])?),
    ///     Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[8; 32])?)),
    /// )
    /// .build()?;
    /// let taro = AccountId::new("taro");
    /// let setup = service.authenticator_start(&taro, "taro@example.com", None).await?;
    ///
    /// let svg = setup.qr_svg()?;
    /// assert!(svg.expose_secret().starts_with("<svg "));
    /// // e.g. a template's {{ qr|safe }} and {{ manual_key }}
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`QrError::TooLong`] when the URI is over [`MAX_QR_URI_LEN`] bytes:
    /// an account `label` (or service name) of a thousand characters or
    /// so. The setup stands: show the manual key, or start again with a
    /// shorter label.
    ///
    /// [`MAX_QR_URI_LEN`]: crate::otp::MAX_QR_URI_LEN
    #[cfg_attr(docsrs, doc(cfg(feature = "qr")))]
    pub fn qr_svg(&self) -> Result<SecretString, QrError> {
        crate::otp::qr::svg(self.uri.expose_secret())
    }

    /// The QR code of [`uri`](Self::uri) for a terminal: Unicode half
    /// blocks (two rows of modules per line), with the quiet zone, and ANSI
    /// colours that make it black on white whatever the terminal's theme
    /// (not every app's scanner reads a code drawn light on dark). Print it
    /// as it is; a key URI of the usual length (about 130 bytes, a
    /// version-8 code) takes 57 columns and 29 lines.
    ///
    /// **It contains the seed**: show it only to the user enrolling.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::sync::Arc;
    /// # use ninsho::prelude::*;
    /// # use ninsho::gateway::RecordingGateway;
    /// # use ninsho::store::MemoryStore;
    /// # let service = TwoFactor::builder(
    /// #     "Example",
    /// #     Arc::new(MemoryStore::new()),
    /// #     Arc::new(RecordingGateway::new()),
    /// #     KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32])?),
    /// #     Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[8; 32])?)),
    /// # )
    /// # .build()?;
    /// let setup = service
    ///     .authenticator_start(&AccountId::new("taro"), "taro@example.com", None)
    ///     .await?;
    /// print!("{}", setup.qr_terminal()?.expose_secret());
    /// println!("Or type this key: {}", setup.manual_key.expose_secret());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As for [`qr_svg`](Self::qr_svg).
    #[cfg_attr(docsrs, doc(cfg(feature = "qr")))]
    pub fn qr_terminal(&self) -> Result<SecretString, QrError> {
        crate::otp::qr::terminal(self.uri.expose_secret())
    }
}

/// The authenticator flow, on the service's ports and sealer.
#[derive(Clone)]
pub(crate) struct Authenticators {
    ports: Ports,
    contacts: Contacts,
    sealer: Arc<dyn Sealer>,
    failures: FailurePolicy,
    /// The issuer the apps show.
    service: String,
}

impl fmt::Debug for Authenticators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticators")
            .field("sealer", &self.sealer)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// An account's record with one of its seeds opened.
struct Opened {
    book: AccountRecord,
    /// The seed as stored (sealed, base32).
    sealed: String,
    plain: SecretBytes,
    totp: Totp,
    /// The seed sealed again under the current key, when it is due.
    resealed: Option<String>,
}

/// What an authenticator code turned out to be, decided on the freshest
/// record.
enum AppCode {
    /// Accepted (or the same step again, from the attempt that made it).
    Right,
    /// Not checked: the account's failure run locks it.
    Locked(Refusal),
    /// A step at or before the last accepted one.
    Replayed,
    /// No step of the window matched.
    Wrong,
}

impl Authenticators {
    /// The flow for apps named `service`, whose seeds `sealer` seals; the
    /// account's record is written through `contacts` (which starts the
    /// grace period of an account seen for the first time).
    pub(crate) fn new(
        ports: Ports,
        contacts: Contacts,
        sealer: Arc<dyn Sealer>,
        failures: FailurePolicy,
        service: String,
    ) -> Self {
        Self {
            ports,
            contacts,
            sealer,
            failures,
            service,
        }
    }

    /// The sealer seeds are stored under.
    pub(crate) fn sealer(&self) -> &dyn Sealer {
        &*self.sealer
    }

    /// Starts a setup: a new seed for an app that lists it as `label`,
    /// stored sealed as the account's pending app. The caller has checked
    /// any step-up the account needs.
    ///
    /// # Errors
    /// [`Error::Otp`] for a label the URI can't carry; [`Error::Random`];
    /// [`Error::Store`].
    pub(crate) async fn start(
        &self,
        account: &AccountId,
        label: &str,
    ) -> Result<AuthenticatorSetup, Error> {
        let enrollment = TotpEnrollment::start(&*self.ports.rng, &self.service, label)?;
        let uri = enrollment.uri();
        let sealed = self.seal(account, uri.expose_secret().as_bytes())?;
        let now = self.ports.now();
        self.contacts
            .update(account, |book| {
                factors::start_authenticator(book, sealed.clone(), now);
                Ok(((), ClaimChanges::default(), Vec::new()))
            })
            .await?;
        Ok(AuthenticatorSetup {
            uri,
            manual_key: enrollment.manual_entry_key(),
        })
    }

    /// Confirms the pending app with the first code it shows; it then
    /// replaces any previous app. The guess counts against the account.
    /// Returns the new epoch when an app was replaced.
    ///
    /// # Errors
    /// [`CodeRefusal::WrongCode`](crate::CodeRefusal::WrongCode);
    /// [`AccountRefusal::NotFound`](crate::AccountRefusal::NotFound) when no
    /// setup is pending; [`AccountRefusal::Locked`](crate::AccountRefusal::Locked);
    /// [`Error::Store`]; [`Error::RetiredKey`].
    pub(crate) async fn confirm(
        &self,
        account: &AccountId,
        code: &str,
    ) -> Result<Option<u64>, Error> {
        let p = &self.ports;
        let store = &*p.store;
        let now = p.now();
        // Opened before the guess is counted: an outage of the key service
        // is not a wrong code. Sealed again with the current key, if it is
        // under an older one, in the write that confirms it.
        let Opened {
            sealed,
            plain,
            totp,
            resealed,
            ..
        } = self
            .opened(
                account,
                |f| f.pending_authenticator.as_ref(),
                AccountRefusal::NotFound.into(),
            )
            .await?;
        let counted = match guess::count(store, &self.failures, account, now).await? {
            Ok(counted) => counted,
            Err(reason) => return Err(reason.into()),
        };
        let unix = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let Ok(confirmed) = TotpEnrollment::with_totp(totp).confirm(code, unix) else {
            counted.wrong(&self.failures, &*p.events, now);
            return Err(CodeRefusal::WrongCode {
                attempts_left: None,
            }
            .into());
        };
        let bumped = self
            .contacts
            .update(account, |book| {
                // Only the setup that was checked may become the app (sealed
                // again since, it still is).
                let stored = match &book.factors.pending_authenticator {
                    Some(p) if same_seed(&p.sealed_uri, &sealed) => {
                        resealed.clone().unwrap_or_else(|| sealed.clone())
                    }
                    Some(p) if self.same_app(account, &p.sealed_uri, &sealed, &plain) => {
                        p.sealed_uri.clone()
                    }
                    _ => return Err(AccountRefusal::NotFound.into()),
                };
                // Replacing the app changes a second factor: devices and
                // step-ups from before die in this same write.
                let bumped = factors::confirm_authenticator(book, stored, confirmed.last_step, now);
                Ok((bumped, ClaimChanges::default(), Vec::new()))
            })
            .await?;
        counted.right(store).await;
        Ok(bumped)
    }

    /// Removes the app, once `allowed` (the caller's step-up check, on the
    /// record about to change) passes. Returns the new epoch.
    ///
    /// # Errors
    /// What `allowed` returns;
    /// [`AccountRefusal::NoSecondFactor`](crate::AccountRefusal::NoSecondFactor);
    /// [`AccountRefusal::NotFound`](crate::AccountRefusal::NotFound) when
    /// there is none; [`Error::Store`].
    pub(crate) async fn remove(
        &self,
        account: &AccountId,
        email_counts: bool,
        allowed: impl Fn(&AccountRecord) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        self.contacts
            .update(account, |book| {
                allowed(book)?;
                let epoch = factors::remove_authenticator(book, email_counts)?;
                Ok((epoch, ClaimChanges::default(), Vec::new()))
            })
            .await
    }

    /// Checks a sign-in code in one read and one write: the account's
    /// record and failure run read together ([`load`](crate::store::StepStore::load)),
    /// then the guess counted against the run, or the run ended and the
    /// accepted step written, in one compare-and-set of both
    /// ([`AccountGuessSlot`]), so racing guesses can't slip past the limits
    /// and one code signs in once. A replayed code counts as a wrong one.
    /// The attempt that made the last accepted step may present that
    /// step's code again (its reply was lost). With `device`, the accepted
    /// step (or its retry) also trusts it, in the same write, which lands
    /// only while the record it was decided on stands. Returns the
    /// account's security epoch, and whether the device was written.
    ///
    /// # Errors
    /// As for [`confirm`](Self::confirm), plus
    /// [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed) for a
    /// replayed code.
    pub(crate) async fn check(
        &self,
        account: &AccountId,
        code: &str,
        attempt: Option<&str>,
        device: Option<&DeviceRecord>,
    ) -> Result<(Standing, bool), Error> {
        let p = &self.ports;
        let store = &*p.store;
        let now = p.now();
        // Read and opened before the guess is counted: an outage of the
        // store or the key service is not a wrong code. Sealed again with
        // the current key, if it is under an older one: written with the
        // accepted step, in the same compare-and-set.
        let loaded = store.load(&Load::account(account)).await?;
        let Opened {
            book,
            sealed,
            plain,
            totp,
            resealed,
        } = self.open(
            account,
            loaded.record,
            |f| f.authenticator.as_ref(),
            CodeRefusal::Unknown.into(),
        )?;
        let unix = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let scope = scope(account);
        let slot = AccountGuessSlot {
            store,
            account,
            device,
        };
        let hasher = &p.hasher;
        let first = AccountGuess::new(book, loaded.failures);
        let landed = cas::change(&slot, first, |guess| {
            guess.changed = false;
            guess.trust = false;
            if let Some(reason) = self.failures.lockout(guess.run.as_ref(), now).refusal() {
                return Ok(Step::Keep(AppCode::Locked(reason)));
            }
            let counted = guess.one_more(now);
            let epoch = guess.record.epoch;
            let at = attempt.map(|id| Attempt { id, epoch });
            // The same app as the seed opened above, or the check is void.
            // A racing sign-in may have sealed it again: then it stays so.
            let (last_step, retry, reseal_to) = match &guess.record.factors.authenticator {
                Some(app) if same_seed(&app.sealed_uri, &sealed) => (
                    app.last_step,
                    same_attempt(hasher, &scope, at, app.last_attempt.as_ref()),
                    resealed.clone(),
                ),
                Some(app) if self.same_app(account, &app.sealed_uri, &sealed, &plain) => (
                    app.last_step,
                    same_attempt(hasher, &scope, at, app.last_attempt.as_ref()),
                    None,
                ),
                _ => return Err(CodeRefusal::Unknown.into()),
            };
            let floor = if retry {
                last_step.and_then(|s| s.checked_sub(1))
            } else {
                last_step
            };
            let step = match totp.verify(code, unix, floor) {
                Ok(accepted) => accepted.step,
                Err(Rejection::Replayed) => {
                    guess.run = counted;
                    return Ok(Step::Write(AppCode::Replayed));
                }
                Err(_) => {
                    guess.run = counted;
                    return Ok(Step::Write(AppCode::Wrong));
                }
            };
            // The device goes in with the success, retried or not: the
            // commit checks the record it was decided on.
            guess.trust = true;
            if retry && Some(step) == last_step {
                // The attempt that made this step, retrying after a lost
                // reply: the same success, the record and the run left as
                // they are (wrong guesses counted since the success are not
                // a retry's to erase).
                return Ok(Step::Write(AppCode::Right));
            }
            guess.run = None;
            if let Some(app) = &mut guess.record.factors.authenticator {
                app.last_step = Some(step);
                app.last_attempt = at.map(|a| attempt_hash(hasher, &scope, a));
                if let Some(resealed) = reseal_to {
                    app.sealed_uri = resealed;
                }
            }
            guess.changed = true;
            Ok(Step::Write(AppCode::Right))
        })
        .await?;
        match landed.answer {
            AppCode::Right => Ok((
                Standing::of(Some(&landed.record.record)),
                landed.record.trust,
            )),
            AppCode::Locked(reason) => Err(reason.into()),
            AppCode::Replayed => Err(self.refuse(account, CodeRefusal::AlreadyUsed)),
            AppCode::Wrong => {
                if let Some(run) = &landed.record.run {
                    guess::report_lock(&self.failures, &*p.events, account, run, now);
                }
                Err(self.refuse(
                    account,
                    CodeRefusal::WrongCode {
                        attempts_left: None,
                    },
                ))
            }
        }
    }

    /// Records a refused sign-in code in the audit trail, as recovery codes
    /// do, and returns the error to hand back: a replayed code is someone
    /// holding a code that was already used, worth seeing on an activity page.
    fn refuse(&self, account: &AccountId, reason: CodeRefusal) -> Error {
        let reason = Refusal::Code(reason);
        self.ports.emit(Event::Failed {
            challenge: None,
            account: Some(account.clone()),
            reason,
        });
        Error::Refused(reason)
    }

    /// Reads the account's record and opens the seed `pick` chooses from
    /// its factors (`missing` when there is none), with the seed sealed
    /// again under the current key when the sealer asks for it.
    async fn opened(
        &self,
        account: &AccountId,
        pick: impl Fn(&Factors) -> Option<&AuthenticatorRecord>,
        missing: Refusal,
    ) -> Result<Opened, Error> {
        let book = self.ports.store.account_record(account).await?;
        self.open(account, book, pick, missing)
    }

    /// [`opened`](Self::opened) on a record the caller read.
    fn open(
        &self,
        account: &AccountId,
        book: Option<AccountRecord>,
        pick: impl Fn(&Factors) -> Option<&AuthenticatorRecord>,
        missing: Refusal,
    ) -> Result<Opened, Error> {
        let Some(sealed) = book
            .as_ref()
            .and_then(|b| pick(&b.factors))
            .map(|app| app.sealed_uri.clone())
        else {
            return Err(missing.into());
        };
        let plain = self.open_seed(account, &sealed)?;
        let totp = totp_of(&plain)?;
        let resealed = self.reseal(account, &sealed, &plain);
        Ok(Opened {
            book: book.ok_or(Error::from(missing))?,
            sealed,
            plain,
            totp,
            resealed,
        })
    }

    /// Seals a key URI for storage (base32).
    ///
    /// # Errors
    /// [`Error::Store`] when the sealer fails.
    pub(crate) fn seal(&self, account: &AccountId, uri: &[u8]) -> Result<String, Error> {
        let sealed = self
            .sealer
            .seal(&account.0, uri)
            .map_err(StoreError::other)?;
        Ok(base32::encode(BASE32, &sealed))
    }

    /// Opens a stored (sealed, base32) seed to its key URI. A seed sealed
    /// with a key the sealer no longer holds is [`Error::RetiredKey`]; any
    /// other failure to open is the store's (a damaged record) or the key
    /// service's.
    pub(crate) fn open_seed(
        &self,
        account: &AccountId,
        sealed: &str,
    ) -> Result<SecretBytes, Error> {
        let bytes = base32::decode(BASE32, sealed)
            .ok_or_else(|| StoreError::other("an authenticator record is not base32"))?;
        self.sealer
            .open(&account.0, &bytes)
            .map_err(|e| match e.kind() {
                SealErrorKind::UnknownKey(key_id) => retired_key(
                    &*self.ports.events,
                    Some(account.clone()),
                    SecretKind::Authenticator,
                    key_id,
                ),
                _ => StoreError::other(e).into(),
            })
    }

    /// Whether the sealer says the stored (base32) seed should be sealed
    /// again with its current key.
    pub(crate) fn needs_reseal(&self, sealed: &str) -> bool {
        base32::decode(BASE32, sealed).is_some_and(|bytes| self.sealer.needs_reseal(&bytes))
    }

    /// The seed `sealed` (opened to `plain`) sealed again with the sealer's
    /// current key, when the sealer says it should be; `None` when not, or
    /// when sealing fails (best effort: the seed still opens as it is).
    fn reseal(&self, account: &AccountId, sealed: &str, plain: &SecretBytes) -> Option<String> {
        if !self.needs_reseal(sealed) {
            return None;
        }
        self.seal(account, plain.expose_secret()).ok()
    }

    /// Whether the stored seed `stored` is the app whose seed was read as
    /// `sealed` and opened to `plain`: the same bytes, or the same seed
    /// sealed again since (by a racing sign-in on a rotated key). In
    /// constant time.
    fn same_app(
        &self,
        account: &AccountId,
        stored: &str,
        sealed: &str,
        plain: &SecretBytes,
    ) -> bool {
        if same_seed(stored, sealed) {
            return true;
        }
        base32::decode(BASE32, stored)
            .and_then(|bytes| self.sealer.open(&account.0, &bytes).ok())
            .is_some_and(|other| bool::from(other.ct_eq(plain)))
    }
}

/// Whether two stored (sealed) seeds are the same bytes, in constant time
/// (with [`DangerousUnsealed`](crate::seal::DangerousUnsealed) they are the
/// seeds themselves).
pub(crate) fn same_seed(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The authenticator an opened seed describes.
fn totp_of(plain: &SecretBytes) -> Result<Totp, Error> {
    let uri = std::str::from_utf8(plain.expose_secret())
        .map_err(|_| StoreError::other("an opened authenticator seed is not a key URI"))?;
    Ok(Totp::from_uri(uri)?)
}

/// What an authenticator's attempt hash is bound to: the account.
fn scope(account: &AccountId) -> Vec<u8> {
    let mut scope = b"authenticator:".to_vec();
    scope.extend_from_slice(account.0.as_bytes());
    scope
}
