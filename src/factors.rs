//! Two-step sign-in and its factors: the rules for turning it on and off,
//! replacing recovery codes, and adding or removing the authenticator app,
//! as pure transitions on the account's record.
//!
//! Each function checks what the change needs, changes the record in
//! place, and says what became of it (the new security epoch, when one
//! moved). It reads no clock and no store: the service loads the record,
//! calls one of these inside its compare-and-set, and writes what comes
//! back — so every rule here holds however many requests race.
//!
//! | change | needs | also |
//! |---|---|---|
//! | [`enable`] | off; a second factor | phones become two-step contacts; a pending app setup is dropped; a new recovery set |
//! | [`disable`] | on | app, pending app and recovery codes deleted; phones removable; the epoch moves |
//! | [`replace_recovery`] | on | the old set dies at once |
//! | [`confirm_authenticator`] | — | replacing an app moves the epoch |
//! | [`remove_authenticator`] | an app; while on, another second factor | the epoch moves |

use time::OffsetDateTime;

use crate::error::{AccountRefusal, Refusal};
use crate::model::{AccountRecord, AuthenticatorRecord, DestinationKind, RecoverySet};

/// Moves the account's security epoch on: every trusted device and step-up
/// proof from before dies, and so does an authenticator app being set up
/// (it was started under the old epoch: a session that has since been
/// signed out must not finish it). Returns the new epoch.
pub(crate) fn move_epoch(book: &mut AccountRecord) -> u64 {
    book.epoch = book.epoch.saturating_add(1);
    book.factors.pending_authenticator = None;
    book.epoch
}

/// Whether the account has a second factor: the authenticator app, a
/// verified phone, or (where `email_counts`) a verified email address;
/// the contact at index `except` left out.
pub(crate) fn has_second_factor(
    book: &AccountRecord,
    email_counts: bool,
    except: Option<usize>,
) -> bool {
    book.factors.authenticator.is_some() || contact_factor(book, email_counts, except)
}

/// Whether a verified contact other than `except` is a second factor.
fn contact_factor(book: &AccountRecord, email_counts: bool, except: Option<usize>) -> bool {
    book.contacts.iter().enumerate().any(|(i, c)| {
        Some(i) != except
            && c.is_verified()
            && (c.kind() == DestinationKind::Phone
                || (email_counts && c.kind() == DestinationKind::Email))
    })
}

/// Stores a new recovery set in place of any older one (whose codes die
/// with it), one version on.
pub(crate) fn put_recovery(book: &mut AccountRecord, mut set: RecoverySet) {
    if let Some(old) = &book.factors.recovery {
        set.version = old.version.wrapping_add(1);
    }
    book.factors.recovery = Some(set);
}

/// Turns two-step sign-in on at `now` with the recovery set `set`. Every
/// verified phone becomes a two-step contact, and an app set up while it
/// was off, never vouched for by a step-up, must be set up again.
///
/// # Errors
/// [`AccountRefusal::TwoFactorAlreadyOn`]; [`AccountRefusal::NoSecondFactor`].
pub(crate) fn enable(
    book: &mut AccountRecord,
    now: OffsetDateTime,
    email_counts: bool,
    set: RecoverySet,
) -> Result<(), AccountRefusal> {
    if book.factors.two_factor_since.is_some() {
        return Err(AccountRefusal::TwoFactorAlreadyOn);
    }
    if !has_second_factor(book, email_counts, None) {
        return Err(AccountRefusal::NoSecondFactor);
    }
    book.factors.two_factor_since = Some(now);
    book.factors.pending_authenticator = None;
    for c in &mut book.contacts {
        c.two_factor = c.is_verified() && c.kind() == DestinationKind::Phone;
    }
    put_recovery(book, set);
    Ok(())
}

/// Turns two-step sign-in off: the app (set up or pending) and the recovery
/// codes go, no contact is a two-step contact any more, and the epoch
/// moves on. Returns the new epoch.
///
/// # Errors
/// [`AccountRefusal::TwoFactorOff`] when it is off already.
pub(crate) fn disable(book: &mut AccountRecord) -> Result<u64, AccountRefusal> {
    if book.factors.two_factor_since.is_none() {
        return Err(AccountRefusal::TwoFactorOff);
    }
    book.factors.two_factor_since = None;
    book.factors.authenticator = None;
    book.factors.recovery = None;
    for c in &mut book.contacts {
        c.two_factor = false;
    }
    Ok(move_epoch(book))
}

/// A new recovery set for an account whose two-step sign-in is on.
///
/// # Errors
/// [`AccountRefusal::TwoFactorOff`].
pub(crate) fn replace_recovery(
    book: &mut AccountRecord,
    set: RecoverySet,
) -> Result<(), AccountRefusal> {
    if book.factors.two_factor_since.is_none() {
        return Err(AccountRefusal::TwoFactorOff);
    }
    put_recovery(book, set);
    Ok(())
}

/// An app setup begins with the sealed seed `sealed`, replacing any setup
/// not yet confirmed. The app in use, if any, stays until this one is
/// confirmed.
pub(crate) fn start_authenticator(book: &mut AccountRecord, sealed: String, now: OffsetDateTime) {
    book.factors.pending_authenticator = Some(AuthenticatorRecord::new(sealed, None, now));
}

/// The pending app, checked with its first code (time step `last_step`),
/// becomes the account's app under the sealed seed `sealed`. Replacing an
/// app changes a second factor, so the epoch moves: the new epoch then.
pub(crate) fn confirm_authenticator(
    book: &mut AccountRecord,
    sealed: String,
    last_step: u64,
    now: OffsetDateTime,
) -> Option<u64> {
    book.factors.pending_authenticator = None;
    let replaced = book.factors.authenticator.is_some();
    book.factors.authenticator = Some(AuthenticatorRecord::new(sealed, Some(last_step), now));
    replaced.then(|| move_epoch(book))
}

/// Removes the app; the epoch moves on. Returns the new epoch.
///
/// # Errors
/// [`AccountRefusal::NotFound`] when there is no app;
/// [`AccountRefusal::NoSecondFactor`] when it is the last second factor of
/// an account whose two-step sign-in is on.
pub(crate) fn remove_authenticator(
    book: &mut AccountRecord,
    email_counts: bool,
) -> Result<u64, Refusal> {
    if book.factors.authenticator.is_none() {
        return Err(AccountRefusal::NotFound.into());
    }
    if book.factors.two_factor_since.is_some() && !contact_factor(book, email_counts, None) {
        return Err(AccountRefusal::NoSecondFactor.into());
    }
    book.factors.authenticator = None;
    Ok(move_epoch(book))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, ContactEntry, Destination};

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    fn set(salt: u8) -> RecoverySet {
        RecoverySet {
            salt: [salt; 16],
            version: 0,
            created_at: T0,
            length: 10,
            codes: Vec::new(),
        }
    }

    fn contact(destination: Destination, verified: bool) -> ContactEntry {
        ContactEntry {
            destination,
            added_at: T0,
            verified_at: verified.then_some(T0),
            two_factor: false,
            phone_type: None,
        }
    }

    fn account(phone: bool, email: bool) -> AccountRecord {
        let mut book = AccountRecord::fresh(&AccountId::new("taro"), T0, 1);
        book.contacts
            .push(contact(Destination::phone("+819012345678").unwrap(), phone));
        book.contacts.push(contact(
            Destination::email("taro@example.com").unwrap(),
            email,
        ));
        book
    }

    #[test]
    fn enabling_needs_a_second_factor_and_makes_phones_two_step() {
        let mut none = account(false, true);
        assert_eq!(
            enable(&mut none, T0, false, set(1)),
            Err(AccountRefusal::NoSecondFactor)
        );
        assert_eq!(none, account(false, true), "a refusal changes nothing");
        // Where email counts, a verified address is enough.
        enable(&mut none, T0, true, set(1)).unwrap();

        let mut book = account(true, true);
        start_authenticator(&mut book, "pending".into(), T0);
        enable(&mut book, T0, false, set(1)).unwrap();
        assert_eq!(book.factors.two_factor_since, Some(T0));
        assert!(book.contacts[0].two_factor && !book.contacts[1].two_factor);
        assert!(book.factors.pending_authenticator.is_none());
        assert_eq!(book.factors.recovery.as_ref().unwrap().salt, [1; 16]);
        assert_eq!(
            enable(&mut book, T0, false, set(2)),
            Err(AccountRefusal::TwoFactorAlreadyOn)
        );
    }

    #[test]
    fn recovery_sets_replace_each_other_only_while_on() {
        let mut book = account(true, false);
        assert_eq!(
            replace_recovery(&mut book, set(1)),
            Err(AccountRefusal::TwoFactorOff)
        );
        enable(&mut book, T0, false, set(1)).unwrap();
        replace_recovery(&mut book, set(2)).unwrap();
        let stored = book.factors.recovery.as_ref().unwrap();
        assert_eq!((stored.salt, stored.version), ([2; 16], 1));
    }

    #[test]
    fn disabling_clears_the_factors_and_moves_the_epoch() {
        let mut book = account(true, false);
        assert_eq!(disable(&mut book), Err(AccountRefusal::TwoFactorOff));
        enable(&mut book, T0, false, set(1)).unwrap();
        confirm_authenticator(&mut book, "app".into(), 7, T0);
        start_authenticator(&mut book, "another".into(), T0);
        assert_eq!(disable(&mut book), Ok(1));
        assert_eq!(book.epoch, 1);
        let f = &book.factors;
        assert!(f.two_factor_since.is_none() && f.recovery.is_none());
        assert!(f.authenticator.is_none() && f.pending_authenticator.is_none());
        assert!(book.contacts.iter().all(|c| !c.two_factor));
    }

    #[test]
    fn replacing_or_removing_the_app_moves_the_epoch() {
        let mut book = account(false, false);
        start_authenticator(&mut book, "first".into(), T0);
        assert_eq!(
            confirm_authenticator(&mut book, "first".into(), 1, T0),
            None
        );
        assert_eq!(book.epoch, 0, "a first app replaces nothing");
        start_authenticator(&mut book, "second".into(), T0);
        assert_eq!(
            book.factors.authenticator.as_ref().unwrap().sealed_uri,
            "first",
            "the app in use stays until the new one is confirmed"
        );
        assert_eq!(
            confirm_authenticator(&mut book, "second".into(), 2, T0),
            Some(1)
        );
        let app = book.factors.authenticator.as_ref().unwrap();
        assert_eq!(
            (app.sealed_uri.as_str(), app.last_step),
            ("second", Some(2))
        );
        assert!(book.factors.pending_authenticator.is_none());

        // Two-step on with the app as its only factor: it can't go.
        enable(&mut book, T0, false, set(1)).unwrap();
        assert_eq!(
            remove_authenticator(&mut book, false),
            Err(AccountRefusal::NoSecondFactor.into())
        );
        // A verified phone as well: it can.
        book.contacts[0].verified_at = Some(T0);
        assert_eq!(remove_authenticator(&mut book, false), Ok(2));
        assert_eq!(
            remove_authenticator(&mut book, false),
            Err(AccountRefusal::NotFound.into())
        );
    }

    #[test]
    fn has_second_factor_leaves_out_the_contact_asked() {
        let book = account(true, true);
        assert!(has_second_factor(&book, false, None));
        assert!(!has_second_factor(&book, false, Some(0)));
        assert!(has_second_factor(&book, true, Some(0)));
        assert!(!has_second_factor(&account(false, false), true, None));
    }

    #[test]
    fn moving_the_epoch_drops_a_pending_app() {
        let mut book = account(true, false);
        start_authenticator(&mut book, "pending".into(), T0);
        assert_eq!(move_epoch(&mut book), 1);
        assert!(book.factors.pending_authenticator.is_none());
    }
}
