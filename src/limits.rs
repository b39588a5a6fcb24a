//! Limits: how often codes may be sent and how fast wrong codes are slowed.
//!
//! Every limit has a default and a knob. The defaults follow Twilio Verify
//! for sends (5 per destination per 10 minutes) and NIST SP 800-63B §5.2.2
//! for failures (at most 100 consecutive failures before the account needs
//! an operator), with exponential back-off in between.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::store::WindowCount;

use crate::model::FailureRecord;

/// At most `max` events per fixed window of length `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Events allowed per window.
    pub max: u64,
    /// Window length.
    pub window: Duration,
}

impl RateLimit {
    /// `max` events per `window`.
    #[must_use]
    pub const fn new(max: u64, window: Duration) -> Self {
        Self { max, window }
    }

    /// `None` when `count` is within the limit, otherwise when to retry.
    #[must_use]
    pub fn check(&self, count: &WindowCount) -> Option<OffsetDateTime> {
        (count.count > self.max).then_some(count.resets_at)
    }
}

/// A send budget for phone numbers starting with `prefix` (for example
/// `+81`): a ceiling on SMS/voice traffic to a country, the defence against
/// SMS pumping (toll fraud through premium-rate ranges).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryBudget {
    /// E.164 prefix, `+` included; the longest matching prefix applies.
    pub prefix: String,
    /// The budget.
    pub limit: RateLimit,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitKind {
    /// Sends to one phone number or email address.
    Destination,
    /// Sends for one account.
    Account,
    /// Sends for one caller key the host supplied (an IP, a session).
    Caller,
    /// The global budget of a country prefix.
    Country,
}

/// Send limits (all configurable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendLimits {
    /// Per destination (default 5 per 10 minutes, Twilio Verify).
    pub per_destination: RateLimit,
    /// Per account (default 10 per hour).
    pub per_account: RateLimit,
    /// Per caller key, when the host passes one (default 20 per 10 minutes).
    pub per_caller: RateLimit,
    /// Per-country budgets for phone destinations (none by default).
    pub countries: Vec<CountryBudget>,
    /// Budget for phone destinations matching no entry of `countries`
    /// (none by default: no ceiling).
    pub other_countries: Option<RateLimit>,
}

impl Default for SendLimits {
    fn default() -> Self {
        Self {
            per_destination: RateLimit::new(5, Duration::minutes(10)),
            per_account: RateLimit::new(10, Duration::hours(1)),
            per_caller: RateLimit::new(20, Duration::minutes(10)),
            countries: Vec::new(),
            other_countries: None,
        }
    }
}

impl SendLimits {
    /// The country budget for an E.164 number, with the key its counter
    /// uses: the longest matching prefix, else `other_countries`.
    #[must_use]
    pub fn country_budget(&self, e164: &str) -> Option<(String, RateLimit)> {
        self.countries
            .iter()
            .filter(|b| e164.starts_with(&b.prefix))
            .max_by_key(|b| b.prefix.len())
            .map(|b| (b.prefix.clone(), b.limit))
            .or_else(|| self.other_countries.map(|l| ("other".to_owned(), l)))
    }
}

/// Consecutive-failure policy for an account, across all its challenges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailurePolicy {
    /// Failures allowed before back-off starts (default 3).
    pub free_failures: u32,
    /// The first delay; it doubles with each further failure (default 1 s).
    pub base_delay: Duration,
    /// The longest delay (default 15 minutes).
    pub max_delay: Duration,
    /// Failures after which the account is locked until the host resets it
    /// (default 100, NIST SP 800-63B).
    pub hard_stop: u32,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            hard_stop: 100,
        }
    }
}

/// Whether an account may try another code now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lockout {
    /// It may.
    Open,
    /// Not before this instant.
    Until(OffsetDateTime),
    /// Not until the host clears the account's failures.
    UntilReset,
}

impl Lockout {
    /// The refusal to answer with, `None` when open.
    #[must_use]
    pub fn refusal(self) -> Option<crate::Refusal> {
        match self {
            Self::Open => None,
            Self::Until(t) => Some(crate::Refusal::Account(crate::AccountRefusal::Locked {
                until: Some(t),
            })),
            Self::UntilReset => Some(crate::Refusal::Account(crate::AccountRefusal::Locked {
                until: None,
            })),
        }
    }
}

impl FailurePolicy {
    /// The delay imposed after `consecutive` failures (zero while within the
    /// free failures).
    #[must_use]
    pub fn delay(&self, consecutive: u32) -> Duration {
        let Some(excess) = consecutive.checked_sub(self.free_failures) else {
            return Duration::ZERO;
        };
        // base · 2^excess; past 2^30 (or on overflow) the cap applies.
        if excess > 30 {
            return self.max_delay;
        }
        self.base_delay
            .checked_mul(1i32 << excess)
            .filter(|d| *d <= self.max_delay)
            .unwrap_or(self.max_delay)
    }

    /// Where an account with this failure run stands at `now`.
    #[must_use]
    pub fn lockout(&self, run: Option<&FailureRecord>, now: OffsetDateTime) -> Lockout {
        let Some(run) = run else {
            return Lockout::Open;
        };
        if run.consecutive >= self.hard_stop {
            return Lockout::UntilReset;
        }
        let until = run
            .last_failure_at
            .saturating_add(self.delay(run.consecutive));
        if until > now {
            Lockout::Until(until)
        } else {
            Lockout::Open
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_and_caps() {
        let p = FailurePolicy::default();
        assert_eq!(p.delay(0), Duration::ZERO);
        assert_eq!(p.delay(2), Duration::ZERO);
        assert_eq!(p.delay(3), Duration::seconds(1));
        assert_eq!(p.delay(4), Duration::seconds(2));
        assert_eq!(p.delay(12), Duration::seconds(512));
        assert_eq!(p.delay(13), Duration::minutes(15));
        assert_eq!(p.delay(99), Duration::minutes(15));
        assert_eq!(p.delay(u32::MAX), Duration::minutes(15));
    }

    #[test]
    fn lockout_states() {
        let p = FailurePolicy::default();
        let t = OffsetDateTime::UNIX_EPOCH;
        let run = |n| FailureRecord {
            consecutive: n,
            last_failure_at: t,
        };
        assert_eq!(p.lockout(None, t), Lockout::Open);
        assert_eq!(p.lockout(Some(&run(2)), t), Lockout::Open);
        assert_eq!(
            p.lockout(Some(&run(3)), t),
            Lockout::Until(t + Duration::seconds(1))
        );
        assert_eq!(
            p.lockout(Some(&run(3)), t + Duration::seconds(1)),
            Lockout::Open
        );
        assert_eq!(
            p.lockout(Some(&run(100)), t + Duration::days(9)),
            Lockout::UntilReset
        );
    }

    #[test]
    fn country_budget_longest_prefix() {
        let mut l = SendLimits::default();
        assert_eq!(l.country_budget("+819012345678"), None);
        l.countries.push(CountryBudget {
            prefix: "+8".into(),
            limit: RateLimit::new(1, Duration::HOUR),
        });
        l.countries.push(CountryBudget {
            prefix: "+81".into(),
            limit: RateLimit::new(2, Duration::HOUR),
        });
        l.other_countries = Some(RateLimit::new(3, Duration::HOUR));
        assert_eq!(l.country_budget("+819012345678").unwrap().0, "+81");
        assert_eq!(l.country_budget("+861234567890").unwrap().0, "+8");
        assert_eq!(l.country_budget("+14155552671").unwrap().0, "other");
    }

    #[test]
    fn rate_limit_check() {
        let l = RateLimit::new(5, Duration::minutes(10));
        let at = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            l.check(&WindowCount {
                count: 5,
                resets_at: at
            }),
            None
        );
        assert_eq!(
            l.check(&WindowCount {
                count: 6,
                resets_at: at
            }),
            Some(at)
        );
    }
}
