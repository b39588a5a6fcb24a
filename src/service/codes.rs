//! One-time codes on their own, from the same parts as the journeys.

use std::fmt;

use super::TwoFactor;
use crate::error::{CodeRefusal, Error, Misuse, Refusal};
use crate::flows::{Challenges, IssueRequest, Ticket, Verified};
use crate::model::{ChallengeId, Destination, Locale, Purpose};

/// One-time codes on their own, for a host that only needs to prove that a
/// user receives messages at an address (an email address checked in its
/// own sign-up, a phone number confirmed before a payout) without ninsho's
/// accounts. Get one with [`TwoFactor::one_time_codes`].
///
/// It is the engine the journeys send their codes with, built from the same
/// parts: the service's store, gateway, keys, templates, send limits,
/// back-off and events. So every rule holds here too: codes are stored as
/// keyed hashes and used once, every guess at a code bound to an account is
/// counted against that account's back-off before it is compared, and
/// codes sent here count toward the same per-destination and per-caller
/// limits as the journeys' own.
///
/// It does not issue or check codes for the purposes the journeys prove
/// something with ([`Purpose::SignIn`], [`Purpose::ContactChange`],
/// [`Purpose::Recovery`]): those are [`Misuse::ReservedPurpose`]. A code
/// that passes here proves possession of the destination and nothing else.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # use std::sync::Arc;
/// # use ninsho::gateway::RecordingGateway;
/// # use ninsho::store::MemoryStore;
/// # use ninsho::{AeadSealer, HashKey, KeyId, KeyedHasher, SealKey};
/// use ninsho::model::{Destination, Purpose};
/// use ninsho::service::{IssueRequest, TwoFactor};
///
/// # let gateway = RecordingGateway::new();
/// # let service = TwoFactor::builder(
/// #     "Example",
/// #     Arc::new(MemoryStore::new()),
/// #     Arc::new(gateway.clone()),
/// #     KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32]).unwrap()),
/// #     Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &[8; 32]).unwrap())),
/// # )
/// #     .build()
/// #     .unwrap();
/// let codes = service.one_time_codes();
/// let email = Destination::email("taro@example.com").unwrap();
/// let purpose = Purpose::Other("newsletter".into());
/// let ticket = codes.send(IssueRequest::new(email.clone(), purpose.clone())).await.unwrap();
///
/// // The user types the code from the email.
/// let code = gateway.last_secret_to("taro@example.com").unwrap();
/// let verified = codes
///     .verify(&ticket.challenge_id, code.expose_secret(), &purpose, &email)
///     .await
///     .unwrap();
/// assert_eq!(verified.destination, email);
/// # });
/// ```
#[derive(Clone)]
pub struct OneTimeCodes {
    challenges: Challenges,
    /// The language of the [`TwoFactor`] handle it came from, for requests
    /// that name none; `None`: the service's.
    locale: Option<Locale>,
}

impl fmt::Debug for OneTimeCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeCodes")
            .field("challenges", &self.challenges)
            .field("locale", &self.locale)
            .finish()
    }
}

impl TwoFactor {
    /// One-time codes on their own (see [`OneTimeCodes`]), sharing this
    /// service's parts and rules. Cheap: clone it or call this again.
    ///
    /// A request that names no [`locale`](IssueRequest::locale) is sent in
    /// this handle's language ([`with_locale`](Self::with_locale)), else in
    /// the service's.
    #[must_use]
    pub fn one_time_codes(&self) -> OneTimeCodes {
        OneTimeCodes {
            challenges: self.inner.challenges.clone(),
            locale: self.locale,
        }
    }
}

/// Refuses the purposes only the journeys may use.
fn own_purpose(purpose: &Purpose) -> Result<(), Error> {
    match purpose {
        Purpose::SignIn | Purpose::ContactChange | Purpose::Recovery => {
            Err(Misuse::ReservedPurpose(purpose.clone()).into())
        }
        _ => Ok(()),
    }
}

impl OneTimeCodes {
    /// Sends a code to the request's destination, with the fallback plan
    /// for it (SMS then voice for a mobile number), and answers with the
    /// ticket to verify it by. The message is in the request's locale, else
    /// in the language of the handle this came from
    /// ([`TwoFactor::with_locale`]), else in the service's.
    ///
    /// # Errors
    /// [`Misuse::ReservedPurpose`]; [`SendRefusal::ContactNotConfirmed`](crate::SendRefusal::ContactNotConfirmed) when a
    /// masked-contact confirmation was given and does not match;
    /// [`SendRefusal::RateLimited`](crate::SendRefusal::RateLimited) with when to retry; [`AccountRefusal::Locked`](crate::AccountRefusal::Locked)
    /// when the request's account is backing off; [`Error::Delivery`] when
    /// every channel failed (the ticket's challenge exists: resend later);
    /// [`Error::Store`], [`Error::Random`].
    pub async fn send(&self, mut request: IssueRequest) -> Result<Ticket, Error> {
        own_purpose(&request.purpose)?;
        if request.locale.is_none() {
            request.locale = self.locale;
        }
        self.challenges.issue(request).await
    }

    /// Sends a new code for the same challenge after the resend cooldown;
    /// earlier codes keep working until their own expiry. It goes out in
    /// the language of the first, whatever this handle's.
    ///
    /// # Errors
    /// As for [`send`](Self::send), and [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown),
    /// [`CodeRefusal::Expired`](crate::CodeRefusal::Expired) or [`CodeRefusal::AlreadyUsed`](crate::CodeRefusal::AlreadyUsed) for a challenge
    /// that can't be resent. A challenge one of the journeys issued (a
    /// sign-in code, say) is [`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown) here: its journey resends
    /// it, and checks whose it is.
    pub async fn resend(&self, id: &ChallengeId, caller: Option<&str>) -> Result<Ticket, Error> {
        self.own_challenge(id).await?;
        self.challenges.resend(id, caller).await
    }

    /// Refuses, as unknown, a challenge the journeys issued: resending a
    /// sign-in or contact-change code goes through the journey, which
    /// checks whose challenge it is.
    async fn own_challenge(&self, id: &ChallengeId) -> Result<(), Error> {
        let record = self.challenges.load(id).await?;
        if own_purpose(&record.purpose).is_err() {
            return Err(Refusal::Code(CodeRefusal::Unknown).into());
        }
        Ok(())
    }

    /// "Use another option": sends a new code on the next channel of the
    /// plan (a voice call after SMS), in the language of the first.
    ///
    /// # Errors
    /// As for [`resend`](Self::resend), and [`SendRefusal::NoMoreOptions`](crate::SendRefusal::NoMoreOptions)
    /// when the plan has no channel left.
    pub async fn another_option(
        &self,
        id: &ChallengeId,
        caller: Option<&str>,
    ) -> Result<Ticket, Error> {
        self.own_challenge(id).await?;
        self.challenges.another_option(id, caller).await
    }

    /// Checks a code, once: the first right answer spends it. The purpose
    /// and destination must be the ones it was sent for.
    ///
    /// # Errors
    /// [`Misuse::ReservedPurpose`]; a [`Refusal`](crate::error::Refusal)
    /// for a wrong, expired, used or mismatched code (a wrong code says how
    /// many attempts are left); [`Error::Store`].
    pub async fn verify(
        &self,
        id: &ChallengeId,
        code: &str,
        purpose: &Purpose,
        destination: &Destination,
    ) -> Result<Verified, Error> {
        own_purpose(purpose)?;
        self.challenges.verify(id, code, purpose, destination).await
    }
}
