//! The flows' own tests: each flow driven directly, with stores that fail,
//! race or yield on cue, and gateways that fail on cue. The journeys built
//! on them are tested through the public API under `tests/`, which shares
//! its support module with these.

use std::sync::Arc;

use ninsho::events::RecordingEvents;
use ninsho::gateway::Gateway;
use ninsho::model::Locale;
use ninsho::store::Store;
use ninsho::{LockedRng, ManualClock};

use super::{Challenges, ChallengesBuilder, Ports};

#[path = "../../../tests/support/mod.rs"]
mod support;

mod challenges;
mod challenges_failures;
mod challenges_race;
mod contacts;
mod recovery_codes;
mod trusted_devices;
mod verifications;

use support::{BASE, hasher};

/// Ports for `RecoveryCodes` and `TrustedDevices`.
pub fn ports(store: Arc<dyn Store>, clock: &ManualClock, events: &RecordingEvents) -> Ports {
    Ports::new(store, hasher())
        .with_clock(Arc::new(clock.clone()))
        .with_rng(Arc::new(LockedRng::seeded(42)))
        .with_events(Arc::new(events.clone()))
}

/// A `Challenges` builder with everything set, randomness seeded with `seed`.
pub fn challenges_builder(
    store: Arc<dyn Store>,
    gateway: Arc<dyn Gateway>,
    clock: &ManualClock,
    events: &RecordingEvents,
    seed: u64,
) -> ChallengesBuilder {
    Challenges::builder()
        .service_name("Example")
        .store(store)
        .gateway(gateway)
        .hasher(hasher())
        .clock(Arc::new(clock.clone()))
        .rng(Arc::new(LockedRng::seeded(seed)))
        .locale(Locale::En)
        .link_base(BASE)
        .events(Arc::new(events.clone()))
}

// Conveniences the tests below use and the service does not.

impl Challenges {
    async fn poll_link(
        &self,
        id: &ninsho::model::ChallengeId,
        purpose: &ninsho::model::Purpose,
    ) -> Result<super::LinkStatus, ninsho::Error> {
        self.poll_link_from(id, purpose, None).await
    }
}

impl super::Contacts {
    /// The account holding the claim on `destination`, if any.
    async fn owner(
        &self,
        destination: &ninsho::model::Destination,
    ) -> Result<Option<ninsho::model::AccountId>, ninsho::Error> {
        Ok(self
            .challenges
            .inner
            .store
            .claim_owner(&destination.limit_key())
            .await?)
    }

    /// The grace decision for the account now.
    async fn grace(
        &self,
        account: &ninsho::model::AccountId,
    ) -> Result<ninsho::grace::GraceDecision, ninsho::Error> {
        let record = self.book(account).await?;
        Ok(self.decide_grace(&record))
    }
}

impl super::RecoveryCodes {
    /// Drops the account's set.
    async fn delete(&self, account: &ninsho::model::AccountId) -> Result<(), ninsho::Error> {
        let p = &self.ports;
        super::account::update(&*p.store, &*p.rng, account, p.now(), |record| {
            record.factors.recovery = None;
            Ok(((), ninsho::store::ClaimChanges::default()))
        })
        .await
    }
}

impl super::TrustedDevices {
    async fn revoke_all(&self, account: &ninsho::model::AccountId) -> Result<(), ninsho::Error> {
        self.bump_epoch(account).await.map(drop)
    }
}

impl super::VerificationRequest {
    fn account(mut self, account: ninsho::model::AccountId) -> Self {
        self.account = Some(account);
        self
    }
}

impl super::Verifications {
    async fn take(
        &self,
        id: &ninsho::model::VerificationId,
    ) -> Result<super::verifications::Completed, ninsho::Error> {
        self.take_as(id, None).await
    }
}

/// The internal requests that carry a caller key or contacts print neither.
#[test]
fn internal_requests_print_no_caller_key_or_contact() {
    let phone = ninsho::model::Destination::phone("+819012345678").unwrap();
    let email = ninsho::model::Destination::email("taro@example.com").unwrap();
    let caller = "203.0.113.7";
    let link = super::LinkRequest::new(
        phone.clone(),
        ninsho::model::Purpose::SignIn,
        "Firefox on Linux",
    )
    .account(ninsho::model::AccountId::new("taro"))
    .caller(caller);
    let verification = super::VerificationRequest::new([email, phone]).caller(caller);
    for shown in [format!("{link:?}"), format!("{verification:?}")] {
        for secret in [caller, "+819012345678", "9012345678", "taro@example.com"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
