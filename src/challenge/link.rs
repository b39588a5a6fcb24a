//! The one-time link's state machine. Pure: the async layer finds the
//! record (checking the token), asks here, and writes what comes back.
//!
//! | state | opened / approved / denied | polled by the sign-in |
//! |---|---|---|
//! | `Pending`, valid | shown; becomes `Approved` / `Denied` | still pending |
//! | `Pending`, expired | `Expired` | `Expired` |
//! | `Approved`, valid | `AlreadyUsed` | collected: becomes `Consumed` |
//! | `Approved`, expired | `AlreadyUsed` | `Expired` |
//! | `Denied` | `Denied` | `Denied` |
//! | `Consumed` | `AlreadyUsed` | the same attempt again, while valid: collected again; else `AlreadyUsed` |

use time::OffsetDateTime;

use crate::error::CodeRefusal;
use crate::hash::KeyedHash;
use crate::model::{ChallengeRecord, ChallengeState, Purpose};

/// Whether the user may still open, approve or deny the link at `now`.
pub(crate) fn is_open(record: &ChallengeRecord, now: OffsetDateTime) -> Result<(), CodeRefusal> {
    match record.state {
        ChallengeState::Pending if now >= record.expires_at => Err(CodeRefusal::Expired),
        ChallengeState::Pending => Ok(()),
        ChallengeState::Denied => Err(CodeRefusal::Denied),
        _ => Err(CodeRefusal::AlreadyUsed),
    }
}

/// The user's answer on the phone: `approve` or deny. The link must be
/// open.
pub(crate) fn decide(
    record: &mut ChallengeRecord,
    approve: bool,
    now: OffsetDateTime,
) -> Result<(), CodeRefusal> {
    is_open(record, now)?;
    record.state = if approve {
        ChallengeState::Approved
    } else {
        ChallengeState::Denied
    };
    Ok(())
}

/// What a poll from the waiting sign-in finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Poll {
    /// Approved: collected now (the record to write is consumed).
    Collect,
    /// Collected before by this same attempt, whose reply was lost: the
    /// same approval again, nothing to write.
    Again,
    /// Not decided yet.
    Pending,
    /// Refused.
    Refuse(CodeRefusal),
}

/// A poll at `now` for `purpose`. `same_attempt` says whether the poll
/// comes from the sign-in attempt that already collected the link (asked
/// only when the link was collected and is still valid: it costs a MAC).
/// On [`Poll::Collect`], [`collect`] the record and write it.
pub(crate) fn poll(
    record: &ChallengeRecord,
    purpose: &Purpose,
    now: OffsetDateTime,
    same_attempt: impl FnOnce() -> bool,
) -> Poll {
    if record.link.is_none() {
        return Poll::Refuse(CodeRefusal::Unknown);
    }
    if &record.purpose != purpose {
        return Poll::Refuse(CodeRefusal::PurposeMismatch);
    }
    let expired = now >= record.expires_at;
    match record.state {
        ChallengeState::Consumed if !expired && same_attempt() => Poll::Again,
        // An approval must be collected while the link is valid.
        ChallengeState::Approved | ChallengeState::Pending if expired => {
            Poll::Refuse(CodeRefusal::Expired)
        }
        ChallengeState::Approved => Poll::Collect,
        ChallengeState::Pending => Poll::Pending,
        ChallengeState::Denied => Poll::Refuse(CodeRefusal::Denied),
        _ => Poll::Refuse(CodeRefusal::AlreadyUsed),
    }
}

/// The approval is collected by the attempt hashed as `by`: the link is
/// spent.
pub(crate) fn collect(record: &mut ChallengeRecord, by: Option<KeyedHash>) {
    record.state = ChallengeState::Consumed;
    record.consumed_by = by;
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::challenge::{CodePolicy, NewChallenge};
    use crate::hash::{HashKey, KeyId, KeyedHasher};
    use crate::model::{ChallengeId, Channel, Destination, LinkRecord, Locale};

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    fn hash() -> KeyedHash {
        let hasher = KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32]).unwrap());
        hasher.hash(b"test", b"token")
    }

    fn link() -> ChallengeRecord {
        NewChallenge {
            id: ChallengeId::from_bytes([2; 16]),
            purpose: Purpose::SignIn,
            account: None,
            destination: Destination::email("taro@example.com").unwrap(),
            locale: Locale::En,
            channels: vec![Channel::Email],
            epoch: Some(3),
            incarnation: 0,
        }
        .with_link(
            LinkRecord {
                token: hash(),
                device: "Chrome".into(),
            },
            &CodePolicy::default(),
            T0,
        )
    }

    #[test]
    fn a_new_link() {
        let r = link();
        assert_eq!(r.state, ChallengeState::Pending);
        assert_eq!(r.expires_at, T0 + CodePolicy::default().link_lifetime);
        assert_eq!((r.delivery_attempts, r.epoch), (1, None));
        assert!(r.sends.is_empty());
    }

    /// The table in the module docs, row by row.
    #[test]
    fn the_state_table() {
        let valid = T0 + Duration::minutes(1);
        let expired = T0 + Duration::minutes(10);
        let p = Purpose::SignIn;
        let poll_of = |r: &ChallengeRecord, at, same| poll(r, &p, at, || same);

        let mut r = link();
        assert_eq!(is_open(&r, valid), Ok(()));
        assert_eq!(is_open(&r, expired), Err(CodeRefusal::Expired));
        assert_eq!(poll_of(&r, valid, false), Poll::Pending);
        assert_eq!(
            poll_of(&r, expired, false),
            Poll::Refuse(CodeRefusal::Expired)
        );
        assert_eq!(
            decide(&mut r.clone(), true, expired),
            Err(CodeRefusal::Expired)
        );

        decide(&mut r, true, valid).unwrap();
        assert_eq!(r.state, ChallengeState::Approved);
        assert_eq!(is_open(&r, valid), Err(CodeRefusal::AlreadyUsed));
        assert_eq!(
            decide(&mut r.clone(), false, valid),
            Err(CodeRefusal::AlreadyUsed)
        );
        assert_eq!(
            poll_of(&r, expired, false),
            Poll::Refuse(CodeRefusal::Expired)
        );
        assert_eq!(poll_of(&r, valid, false), Poll::Collect);

        collect(&mut r, Some(hash()));
        assert_eq!(r.state, ChallengeState::Consumed);
        assert_eq!(r.consumed_by, Some(hash()));
        assert_eq!(poll_of(&r, valid, true), Poll::Again);
        assert_eq!(
            poll_of(&r, valid, false),
            Poll::Refuse(CodeRefusal::AlreadyUsed)
        );
        assert_eq!(
            poll_of(&r, expired, true),
            Poll::Refuse(CodeRefusal::AlreadyUsed)
        );
        assert_eq!(is_open(&r, valid), Err(CodeRefusal::AlreadyUsed));

        let mut denied = link();
        decide(&mut denied, false, valid).unwrap();
        assert_eq!(denied.state, ChallengeState::Denied);
        assert_eq!(is_open(&denied, valid), Err(CodeRefusal::Denied));
        assert_eq!(
            poll_of(&denied, valid, false),
            Poll::Refuse(CodeRefusal::Denied)
        );
    }

    #[test]
    fn the_same_attempt_is_asked_only_when_it_matters() {
        let r = link();
        let found = poll(&r, &Purpose::SignIn, T0, || {
            panic!("no MAC for a pending link")
        });
        assert_eq!(found, Poll::Pending);
    }

    #[test]
    fn codes_and_other_purposes_are_not_links() {
        let r = link();
        assert_eq!(
            poll(&r, &Purpose::StepUp, T0, || false),
            Poll::Refuse(CodeRefusal::PurposeMismatch)
        );
        let mut code = r.clone();
        code.link = None;
        assert_eq!(
            poll(&code, &Purpose::SignIn, T0, || false),
            Poll::Refuse(CodeRefusal::Unknown)
        );
    }
}
