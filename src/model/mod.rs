//! The model: ids, the shared vocabulary, and every record ninsho stores.
//!
//! Plain data with no behaviour of consequence: the engines ([`contact`],
//! [`challenge`], [`grace`], [`recovery`], [`device`], …) decide what a
//! record becomes, the [`store`] port keeps it, and the
//! [`TwoFactor`](crate::service::TwoFactor) service loads, decides and
//! writes. A host meets the ids ([`AccountId`], [`ChallengeId`], …) and the
//! vocabulary ([`Purpose`], [`Channel`], [`Locale`], [`Destination`]); the
//! records matter to those who write a store adapter.
//!
//! | kind | items |
//! | --- | --- |
//! | ids | [`AccountId`], [`ChallengeId`], [`VerificationId`], [`DeviceId`] |
//! | vocabulary | [`Purpose`], [`Channel`], [`Locale`], [`Destination`], [`DestinationKind`], [`PhoneType`] |
//! | the account | [`AccountRecord`] with its [`ContactEntry`]s, [`Factors`] ([`AuthenticatorRecord`], [`RecoverySet`]) and [`GraceState`]; its [`FailureRecord`] |
//! | sent secrets | [`ChallengeRecord`] ([`SendRecord`], [`LinkRecord`], [`ChallengeState`]) and [`VerificationRecord`] ([`MemberRecord`]) |
//! | trusted devices | [`DeviceRecord`] |
//!
//! Records are serde types: an adapter may keep each as JSON beside the
//! few fields it indexes (id, version, expiry). Fields added later carry
//! `#[serde(default)]`, so records written by an earlier version still read.
//!
//! [`contact`]: crate::contact
//! [`challenge`]: crate::challenge
//! [`grace`]: crate::grace
//! [`recovery`]: crate::recovery
//! [`device`]: crate::device
//! [`store`]: crate::store

mod account;
mod challenge;
mod device;
mod grace;
mod ids;
mod verification;
mod vocabulary;

pub(crate) use account::draw_incarnation;
pub use account::{
    AccountRecord, AuthenticatorRecord, ContactEntry, Factors, FailureRecord, RecoverySet,
    StoredRecoveryCode,
};
pub use challenge::{ChallengeRecord, ChallengeState, LinkRecord, SendRecord};
pub use device::DeviceRecord;
pub use grace::{ContactKey, GraceContact, GraceState, Phase};
pub use ids::{AccountId, ChallengeId, DeviceId, InvalidDeviceId, InvalidId, VerificationId};
pub use verification::{MemberRecord, VerificationRecord};
pub use vocabulary::{Channel, Destination, DestinationKind, Locale, PhoneType, Purpose};
