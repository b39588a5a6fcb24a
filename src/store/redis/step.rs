//! [`StepStore`] for [`RedisStore`]: `load.lua` and `commit.lua`, one
//! `EVALSHA` each.

use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use super::{MAX_TTL_MS, RedisStore, join, map_redis, split, ttl_ms, whole_ms};
use crate::model::{AccountId, AccountRecord, FailureRecord};
use crate::store::{
    ChallengeWrite, Commit, Committed, FailureChange, Load, Loaded, StepStore, StoreError,
    WindowCount,
};

static LOAD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("load.lua")));
static COMMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("commit.lua")));

/// The largest `max` a hit passes to `commit.lua`: Lua numbers are doubles,
/// exact up to here, and no count ever gets this far.
const MAX_HITS: u64 = (1 << 53) - 1;

/// What `load.lua` is asked to read for one key (see the script).
#[derive(Clone, Copy)]
enum Part {
    /// The `record` field of a hash.
    Record,
    /// The three fields of a failure run.
    Failures,
}

impl RedisStore {
    /// Runs `load.lua` on `keys` and returns its strings after the marker
    /// flag, or `NotInitialised` when the marker is gone.
    async fn load_parts(&self, keys: &[(String, Part)]) -> Result<Reply, StoreError> {
        let mut invocation = LOAD.key(self.marker_key());
        let mut parts = String::with_capacity(keys.len());
        for (key, part) in keys {
            invocation.key(key);
            parts.push(match part {
                Part::Record => 'r',
                Part::Failures => 'f',
            });
        }
        invocation.arg(parts);
        let reply: Vec<Vec<u8>> = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        let mut reply = reply.into_iter();
        match reply.next().as_deref() {
            Some(b"1") => Ok(Reply(reply)),
            Some(b"0") => Err(StoreError::not_initialised()),
            _ => Err(StoreError::other(
                "load.lua replied without its marker flag",
            )),
        }
    }

    /// The account's record, read by `load.lua` after the marker check
    /// (what [`account_record`](crate::store::AccountStore::account_record)
    /// runs).
    pub(super) async fn load_account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let mut reply = self
            .load_parts(&[(self.contacts_key(account), Part::Record)])
            .await?;
        reply.record()
    }
}

/// The strings of a `load.lua` reply after its marker flag.
struct Reply(std::vec::IntoIter<Vec<u8>>);

impl Reply {
    fn next(&mut self) -> Result<Vec<u8>, StoreError> {
        self.0
            .next()
            .ok_or_else(|| StoreError::other("load.lua replied with fewer parts than asked for"))
    }

    /// A record's JSON, `None` when it was absent (`''`).
    fn record<T: DeserializeOwned>(&mut self) -> Result<Option<T>, StoreError> {
        let json = self.next()?;
        if json.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(StoreError::other)
    }

    /// A failure run's three fields, `None` unless all three are stored.
    fn failures(&mut self) -> Result<Option<FailureRecord>, StoreError> {
        let (count, secs, nanos) = (self.next()?, self.next()?, self.next()?);
        if count.is_empty() || secs.is_empty() || nanos.is_empty() {
            return Ok(None);
        }
        Ok(Some(FailureRecord {
            consecutive: number(&count)?,
            last_failure_at: join(number(&secs)?, number(&nanos)?)?,
        }))
    }
}

/// A decimal number stored by one of the scripts.
fn number<T: std::str::FromStr>(text: &[u8]) -> Result<T, StoreError>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    std::str::from_utf8(text)
        .map_err(StoreError::other)?
        .parse()
        .map_err(StoreError::other)
}

/// `replace_failures.lua`'s fields of a run: present (`"1"`/`"0"`), count,
/// seconds, nanoseconds.
fn run_fields(run: Option<FailureRecord>) -> (&'static str, u32, i64, i64) {
    let (secs, nanos) = run.map_or((0, 0), |r| split(r.last_failure_at));
    (
        if run.is_some() { "1" } else { "0" },
        run.map_or(0, |r| r.consecutive),
        secs,
        nanos,
    )
}

/// Whether a commit has nothing to write.
fn is_empty(commit: &Commit<'_>) -> bool {
    commit.hits.is_empty()
        && commit.failures.is_none()
        && commit.challenge.is_none()
        && commit.record.is_none()
        && commit.device.is_none()
}

#[async_trait]
impl StepStore for RedisStore {
    /// One `load.lua`: the marker, then every part asked for.
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        let mut keys = Vec::with_capacity(4);
        if let Some(account) = load.account {
            keys.push((self.contacts_key(account), Part::Record));
            keys.push((self.failures_key(account), Part::Failures));
            if let Some(device) = load.device {
                keys.push((self.device_key(account, device), Part::Record));
            }
        }
        if let Some(id) = load.challenge {
            keys.push((self.challenge_key(id), Part::Record));
        }
        let mut reply = self.load_parts(&keys).await?;
        let mut loaded = Loaded::default();
        if load.account.is_some() {
            loaded.record = reply.record()?;
            loaded.failures = reply.failures()?;
            if load.device.is_some() {
                loaded.device = reply.record()?;
            }
        }
        if load.challenge.is_some() {
            loaded.challenge = reply.record()?;
        }
        Ok(loaded)
    }

    /// One `commit.lua` with every key the commit touches in `KEYS`. An
    /// empty commit writes nothing and makes no round trip.
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        if is_empty(commit) {
            return Ok(Committed::Done);
        }
        let mut invocation = COMMIT.prepare_invoke();
        invocation.key(self.marker_key());
        let check = commit.record_check.filter(|_| commit.record.is_none());
        let (now_secs, now_nanos) = split(now);
        let (claims, releases) = commit
            .record
            .map_or((0, 0), |r| (r.claims.claim.len(), r.claims.release.len()));
        invocation
            .arg(commit.hits.len())
            .arg(if commit.failures.is_some() { "1" } else { "0" })
            .arg(match commit.challenge {
                None => "",
                Some(ChallengeWrite::Insert(_)) => "insert",
                Some(ChallengeWrite::Replace { .. }) => "replace",
            })
            .arg(if commit.device.is_some() { "1" } else { "0" })
            .arg(if check.is_some() { "1" } else { "0" })
            .arg(if commit.record.is_some() { "1" } else { "0" })
            .arg(claims)
            .arg(releases)
            .arg(now_secs)
            .arg(now_nanos);

        for hit in commit.hits {
            let resets_at = now.saturating_add(hit.window);
            let (end_secs, end_nanos) = split(resets_at);
            let ttl = ttl_ms(
                (resets_at - now).saturating_add(Duration::milliseconds(super::COUNTER_GRACE_MS)),
            );
            invocation
                .key(self.limit_key(&hit.key))
                .arg(end_secs)
                .arg(end_nanos)
                .arg(ttl)
                .arg(hit.max.min(MAX_HITS));
        }

        if let Some(FailureChange {
            account,
            expected,
            next,
        }) = commit.failures
        {
            let (had, old_n, old_s, old_ns) = run_fields(expected);
            let (has, new_n, new_s, new_ns) = run_fields(next);
            invocation
                .key(self.failures_key(account))
                .arg(had)
                .arg(old_n)
                .arg(old_s)
                .arg(old_ns)
                .arg(has)
                .arg(new_n)
                .arg(new_s)
                .arg(new_ns);
        }

        if let Some(write) = commit.challenge {
            let record = write.record();
            let json = serde_json::to_string(record).map_err(StoreError::other)?;
            let expires_at = record.expires_at;
            let (secs, nanos) = split(expires_at);
            let lifetime = (expires_at - record.created_at).max(Duration::ZERO);
            let ttl = ttl_ms(lifetime.saturating_add(self.retention));
            let expected = match write {
                ChallengeWrite::Replace {
                    expected_version, ..
                } => expected_version.to_string(),
                ChallengeWrite::Insert(_) => String::new(),
            };
            invocation
                .key(self.challenge_key(&record.id))
                .arg(expected)
                .arg(json)
                .arg(record.version)
                .arg(whole_ms(expires_at))
                .arg(secs)
                .arg(nanos)
                .arg(ttl)
                .arg(MAX_TTL_MS);
        }

        if let Some(device) = commit.device {
            let json = serde_json::to_string(device).map_err(StoreError::other)?;
            let lifetime = (device.expires_at - device.created_at).max(Duration::ZERO);
            let ttl = ttl_ms(lifetime.saturating_add(self.retention));
            invocation
                .key(self.device_key(&device.account, &device.id))
                .key(self.devices_key(&device.account))
                .arg(json)
                .arg(device.version)
                .arg(whole_ms(device.expires_at))
                .arg(ttl)
                .arg(device.id.to_string());
        }

        if let Some(check) = check {
            invocation
                .key(self.contacts_key(check.account))
                .arg(check.version.map_or_else(String::new, |v| v.to_string()));
        }

        if let Some(write) = commit.record {
            let record = write.record;
            let json = serde_json::to_string(record).map_err(StoreError::other)?;
            invocation
                .key(self.contacts_key(&record.account))
                .key(self.claims_key(&record.account))
                .arg(
                    write
                        .expected_version
                        .map_or_else(String::new, |v| v.to_string()),
                )
                .arg(json)
                .arg(record.version)
                .arg(&record.account.0);
            for key in write.claims.claim.iter().chain(&write.claims.release) {
                invocation.key(self.claim_key(key)).arg(key);
            }
        }

        let (outcome, index, count, secs, nanos): (i64, usize, u64, i64, i64) = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_redis)?;
        match outcome {
            0 => Ok(Committed::Done),
            1 => Ok(Committed::LimitReached {
                index,
                count: WindowCount {
                    count,
                    resets_at: join(secs, nanos)?,
                },
            }),
            2 => Ok(Committed::Taken { index }),
            3 => Err(StoreError::conflict()),
            4 => Err(StoreError::not_initialised()),
            other => Err(StoreError::other(format!(
                "commit.lua replied {other}, not 0, 1, 2, 3 or 4"
            ))),
        }
    }
}
