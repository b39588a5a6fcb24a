//! A combined verification (several contacts verified together): its
//! stored record.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AccountId, ChallengeId, Destination, Locale, Purpose, VerificationId};

/// A combined verification (EZSMS's sign-up: email **and** phone): every
/// member must be verified, in any order, before it completes, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRecord {
    /// Its id.
    pub id: VerificationId,
    /// Bumped by every write; the compare-and-set key.
    pub version: u64,
    /// What the members' codes were issued for.
    pub purpose: Purpose,
    /// The account, if it exists yet (none during sign-up).
    pub account: Option<AccountId>,
    /// The contacts to verify, in the order given.
    pub members: Vec<MemberRecord>,
    /// The language of its messages.
    pub locale: Locale,
    /// When it started.
    pub created_at: OffsetDateTime,
    /// When it stops, as a whole, whatever its members' codes say.
    pub expires_at: OffsetDateTime,
    /// When its last member was verified.
    pub completed_at: Option<OffsetDateTime>,
    /// When the host took the result ([`TwoFactor::signup_complete`]); a
    /// verification is taken at most once.
    ///
    /// [`TwoFactor::signup_complete`]: crate::service::TwoFactor::signup_complete
    pub taken_at: Option<OffsetDateTime>,
    /// The account it was taken for, when taken with
    /// [`TwoFactor::signup_complete`](crate::service::TwoFactor::signup_complete):
    /// that account may take it again (a retry after a failure).
    #[serde(default)]
    pub taken_by: Option<AccountId>,
}

/// One member of a combined verification: a contact verified by its own
/// one-time-code challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The contact being verified.
    pub destination: Destination,
    /// The challenge carrying its code (replaced when a dead challenge is
    /// restarted by a resend).
    pub challenge: ChallengeId,
    /// When its code was verified.
    pub verified_at: Option<OffsetDateTime>,
}
