//! The resend rules: whether a challenge may be sent again, on which
//! channel, and the record a new send leaves behind. Pure: the async layer
//! loads the record, asks here, and writes what comes back.

use time::OffsetDateTime;

use super::CodePolicy;
use crate::error::{CodeRefusal, Refusal, SendRefusal};
use crate::hash::KeyedHash;
use crate::model::{ChallengeRecord, ChallengeState, SendRecord};

/// Whether the challenge may be sent again at `now`: the index of the
/// channel to use (the current one for "resend", the next one of the plan
/// for "another option"), or why not.
///
/// In order: a used, dead or link challenge is refused; an expired one must
/// be started again; the per-challenge send budget applies to both kinds;
/// "another option" needs a channel left in the plan and skips the
/// cooldown; "resend" waits for it.
pub(crate) fn may_send_again(
    record: &ChallengeRecord,
    policy: &CodePolicy,
    next_channel: bool,
    now: OffsetDateTime,
) -> Result<usize, Refusal> {
    match record.state {
        ChallengeState::Pending => {}
        ChallengeState::Exhausted => return Err(CodeRefusal::TooManyAttempts.into()),
        _ => return Err(CodeRefusal::AlreadyUsed.into()),
    }
    // A link is not resent; a record whose plan lost its channel (never
    // written by ninsho) can't be either.
    if record.link.is_some() || record.channel_index >= record.channels.len() {
        return Err(CodeRefusal::Unknown.into());
    }
    // Every code has expired: the challenge is over; start a new one.
    if now >= record.expires_at {
        return Err(CodeRefusal::Expired.into());
    }
    if record.delivery_attempts >= policy.max_sends {
        return Err(SendRefusal::SendsUsedUp.into());
    }
    if next_channel {
        let index = record.channel_index.saturating_add(1);
        if index >= record.channels.len() {
            return Err(SendRefusal::NoMoreOptions.into());
        }
        return Ok(index);
    }
    if let Some(ready) = cooldown_ends(record, policy)
        && now < ready
    {
        return Err(SendRefusal::Cooldown { retry_at: ready }.into());
    }
    Ok(record.channel_index)
}

/// When "resend" may be pressed: the cooldown counts from the last send
/// that did not fail transiently (a record without sends counts from its
/// creation). `None` when every send failed transiently: the user can't be
/// waiting for any of them.
pub(crate) fn cooldown_ends(
    record: &ChallengeRecord,
    policy: &CodePolicy,
) -> Option<OffsetDateTime> {
    let from = if record.sends.is_empty() {
        Some(record.created_at)
    } else {
        record
            .sends
            .iter()
            .rev()
            .find(|s| !s.failed_transiently)
            .map(|s| s.sent_at)
    };
    from.map(|t| t.saturating_add(policy.resend_cooldown))
}

/// Records a new send of the code hashed as `code` on channel `index` of
/// the plan at `now`: it lives for the policy's lifetime, counts toward the
/// send budget, becomes the current channel, and keeps the challenge alive
/// at least as long.
pub(crate) fn add_send(
    record: &mut ChallengeRecord,
    index: usize,
    code: KeyedHash,
    policy: &CodePolicy,
    now: OffsetDateTime,
) {
    let expires_at = now.saturating_add(policy.lifetime);
    record.sends.push(SendRecord {
        channel: record.channels[index],
        sent_at: now,
        expires_at,
        code,
        failed_transiently: false,
    });
    record.channel_index = index;
    record.delivery_attempts = record.delivery_attempts.saturating_add(1);
    record.expires_at = record.expires_at.max(expires_at);
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::challenge::NewChallenge;
    use crate::hash::{HashKey, KeyId, KeyedHasher};
    use crate::model::{ChallengeId, Channel, Destination, LinkRecord, Locale, Purpose};

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    fn hash() -> KeyedHash {
        let hasher = KeyedHasher::new(HashKey::new(KeyId(1), &[7; 32]).unwrap());
        hasher.hash(b"test", b"123456")
    }

    fn record(policy: &CodePolicy) -> ChallengeRecord {
        NewChallenge {
            id: ChallengeId::from_bytes([1; 16]),
            purpose: Purpose::SignIn,
            account: None,
            destination: Destination::email("taro@example.com").unwrap(),
            locale: Locale::Ja,
            channels: vec![Channel::Sms, Channel::Voice],
            epoch: None,
            incarnation: 0,
        }
        .with_code(hash(), 6, policy, T0)
    }

    #[test]
    fn the_first_send_is_a_send() {
        let policy = CodePolicy::default();
        let r = record(&policy);
        assert_eq!(r.sends.len(), 1);
        assert_eq!(r.delivery_attempts, 1);
        assert_eq!(r.sends[0].channel, Channel::Sms);
        assert_eq!(r.expires_at, T0 + policy.lifetime);
        assert_eq!(r.max_attempts, policy.max_attempts);
        assert_eq!(
            cooldown_ends(&r, &policy),
            Some(T0 + policy.resend_cooldown)
        );
    }

    #[test]
    fn resend_waits_for_the_cooldown_another_option_does_not() {
        let policy = CodePolicy::default();
        let r = record(&policy);
        let early = T0 + Duration::seconds(59);
        assert_eq!(
            may_send_again(&r, &policy, false, early),
            Err(SendRefusal::Cooldown {
                retry_at: T0 + Duration::seconds(60)
            }
            .into())
        );
        assert_eq!(may_send_again(&r, &policy, true, early), Ok(1));
        let ready = T0 + Duration::seconds(60);
        assert_eq!(may_send_again(&r, &policy, false, ready), Ok(0));
    }

    #[test]
    fn a_transient_failure_starts_no_cooldown() {
        let policy = CodePolicy::default();
        let mut r = record(&policy);
        r.sends[0].failed_transiently = true;
        assert_eq!(cooldown_ends(&r, &policy), None);
        assert_eq!(may_send_again(&r, &policy, false, T0), Ok(0));
    }

    #[test]
    fn the_plan_and_the_budget_end() {
        let policy = CodePolicy::default();
        let mut r = record(&policy);
        let later = T0 + Duration::minutes(2);
        add_send(&mut r, 1, hash(), &policy, later);
        assert_eq!((r.channel_index, r.delivery_attempts), (1, 2));
        assert_eq!(r.expires_at, later + policy.lifetime);
        assert_eq!(
            may_send_again(&r, &policy, true, later),
            Err(SendRefusal::NoMoreOptions.into())
        );
        r.delivery_attempts = policy.max_sends;
        assert_eq!(
            may_send_again(&r, &policy, false, later + Duration::minutes(1)),
            Err(SendRefusal::SendsUsedUp.into())
        );
    }

    #[test]
    fn spent_expired_and_link_challenges_are_not_resent() {
        let policy = CodePolicy::default();
        let ready = T0 + Duration::minutes(1);
        for (state, want) in [
            (ChallengeState::Exhausted, CodeRefusal::TooManyAttempts),
            (ChallengeState::Consumed, CodeRefusal::AlreadyUsed),
            (ChallengeState::Approved, CodeRefusal::AlreadyUsed),
        ] {
            let mut r = record(&policy);
            r.state = state;
            assert_eq!(may_send_again(&r, &policy, false, ready), Err(want.into()));
        }
        let r = record(&policy);
        assert_eq!(
            may_send_again(&r, &policy, true, r.expires_at),
            Err(CodeRefusal::Expired.into())
        );
        let mut r = record(&policy);
        r.link = Some(LinkRecord {
            token: hash(),
            device: String::new(),
        });
        assert_eq!(
            may_send_again(&r, &policy, false, ready),
            Err(CodeRefusal::Unknown.into())
        );
        let mut r = record(&policy);
        r.channels.clear();
        assert_eq!(
            may_send_again(&r, &policy, false, ready),
            Err(CodeRefusal::Unknown.into())
        );
    }
}
