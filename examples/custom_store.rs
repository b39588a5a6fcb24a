//! Writing a store adapter for your own database, from scratch.
//!
//! ```text
//! cargo run --features testkit --example custom_store
//! ```
//!
//! ninsho owns the rules; the host owns persistence. To keep codes
//! single-use across racing requests and several app instances, every
//! state-changing store method is **one atomic call**: an insert that fails
//! when the row exists, a compare-and-set on the row's version, an
//! increment that returns the new value, or (for contacts) one transaction
//! over a record and its claims. Reads may be stale: every decision that
//! matters is re-checked by the compare-and-set that follows.
//!
//! This example writes such an adapter the way a host would, using only
//! ninsho's public API. The "database" is an in-process stand-in:
//! [`Database`] holds one table per record type, each a map from primary
//! key to an explicit row struct; a row keeps the few columns the adapter
//! queries on (version, expiry) beside the whole record as JSON, as a real
//! schema would. [`MyStore`] is a connection handle; several handles on one
//! `Database` are several app instances sharing one database. Each method
//! carries the SQL it stands for, in PostgreSQL syntax.
//!
//! `main` then proves the adapter the way an adapter author should:
//!
//! 1. it runs the public conformance kit, [`ninsho::testkit::run_all`]
//!    (feature `testkit`), against a fresh database per check, and the
//!    two-instance races against two handles on one database;
//! 2. it sends and checks a code with [`TwoFactor::one_time_codes`](ninsho::service::TwoFactor::one_time_codes) on the
//!    adapter: a code by SMS, verified once, refused the second time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ninsho::ManualClock;
use ninsho::gateway::RecordingGateway;
use ninsho::model::{
    AccountRecord, ChallengeId, ChallengeRecord, DeviceId, DeviceRecord, FailureRecord, Purpose,
    VerificationId, VerificationRecord,
};
use ninsho::prelude::*;
use ninsho::service::IssueRequest;
use ninsho::store::{
    AccountCommit, AccountStore, ChallengeStore, ChallengeWrite, ClaimChanges, Commit, Committed,
    DeviceStore, LimitStore, Load, Loaded, PurgeStore, Purged, StepStore, Store, StoreError,
    VerificationStore, WindowCount,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------------------
// The "database": tables of rows.
// ---------------------------------------------------------------------------

/// A row of `challenges` (and, with the same shape, of `verifications`
/// and of `devices`, whose primary key is the account and the device id).
///
/// ```sql
/// CREATE TABLE challenges (
///     id         bytea PRIMARY KEY,
///     version    bigint NOT NULL,
///     expires_at timestamptz NOT NULL,   -- indexed, for the purge
///     body       jsonb NOT NULL          -- the whole record
/// );
/// ```
#[derive(Debug, Clone)]
struct VersionedRow {
    version: u64,
    expires_at: OffsetDateTime,
    body: String,
}

/// A row of `contact_books` (primary key: the account).
#[derive(Debug, Clone)]
struct Row {
    version: u64,
    body: String,
}

/// A row of `rate_counters` (primary key: the counter's key).
#[derive(Debug, Clone, Copy)]
struct CounterRow {
    count: u64,
    resets_at: OffsetDateTime,
}

/// A row of `failure_runs` (primary key: the account).
#[derive(Debug, Clone, Copy)]
struct FailureRow {
    consecutive: u32,
    last_failure_at: OffsetDateTime,
}

/// Every table.
#[derive(Debug, Default)]
struct Tables {
    challenges: HashMap<ChallengeId, VersionedRow>,
    verifications: HashMap<VerificationId, VersionedRow>,
    rate_counters: HashMap<String, CounterRow>,
    failure_runs: HashMap<AccountId, FailureRow>,
    /// Partitioned by account, then keyed by device id: listing or deleting
    /// one account's devices touches only its partition, as an index on
    /// `(account, id)` would.
    devices: HashMap<AccountId, HashMap<DeviceId, VersionedRow>>,
    contact_books: HashMap<AccountId, Row>,
    /// `contact_claims (key text PRIMARY KEY, account text NOT NULL)`: the
    /// primary key is what makes "one number per account" hold.
    contact_claims: HashMap<String, AccountId>,
}

/// The database server: the tables, behind one lock.
///
/// Cloning it hands out another reference to the same data, as two
/// connection strings naming one server would.
#[derive(Debug, Clone, Default)]
pub struct Database {
    tables: Arc<Mutex<Tables>>,
}

impl Database {
    /// An empty database.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

// ---------------------------------------------------------------------------
// The adapter.
// ---------------------------------------------------------------------------

/// A ninsho store over [`Database`]: what a host writes for its own DB.
///
/// Cheap to create; hold it as `Arc<dyn Store>`.
pub struct MyStore {
    db: Database,
}

impl fmt::Debug for MyStore {
    // Never dump the tables: rows hold keyed hashes and contact details.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MyStore").finish_non_exhaustive()
    }
}

impl MyStore {
    /// A handle on `db` (in a real adapter: a connection pool).
    #[must_use]
    pub fn connect(db: &Database) -> Self {
        Self { db: db.clone() }
    }

    /// `BEGIN; … COMMIT;` — runs `work` with the tables to itself.
    ///
    /// The lock makes every transaction serializable. There is no rollback
    /// log, so each method below checks every condition **before** its
    /// first write: an early `Err` or `Taken` leaves nothing half-done. A
    /// real database rolls back for you.
    ///
    /// A poisoned lock (a panic mid-transaction) is reported as an
    /// unavailable backend with its cause, the way a broken connection
    /// would be, rather than trusted or unwrapped.
    fn transaction<T>(
        &self,
        work: impl FnOnce(&mut Tables) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tables = self
            .db
            .tables
            .lock()
            .map_err(|_| StoreError::unavailable("the database lock was poisoned"))?;
        work(&mut tables)
    }
}

/// Record → JSON column. A serialization failure is a backend failure that
/// keeps its cause.
fn to_json(record: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(StoreError::other)
}

/// JSON column → record.
fn from_json<T: DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(StoreError::other)
}

/// A row count as `u64`, as `DELETE` reports it.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[async_trait]
impl ChallengeStore for MyStore {
    /// ```sql
    /// INSERT INTO challenges (id, version, expires_at, body)
    /// VALUES ($1, $2, $3, $4);            -- unique violation → Conflict
    /// ```
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        let row = VersionedRow {
            version: record.version,
            expires_at: record.expires_at,
            body: to_json(record)?,
        };
        self.transaction(|t| {
            if t.challenges.contains_key(&record.id) {
                return Err(StoreError::conflict());
            }
            t.challenges.insert(record.id, row);
            Ok(())
        })
    }

    /// `SELECT body FROM challenges WHERE id = $1`
    async fn challenge(&self, id: &ChallengeId) -> Result<Option<ChallengeRecord>, StoreError> {
        let body = self.transaction(|t| Ok(t.challenges.get(id).map(|row| row.body.clone())))?;
        body.as_deref().map(from_json).transpose()
    }

    /// ```sql
    /// UPDATE challenges SET version = $2, expires_at = $3, body = $4
    /// WHERE id = $1 AND version = $5;     -- 0 rows → Conflict
    /// ```
    async fn replace_challenge(
        &self,
        record: &ChallengeRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let row = VersionedRow {
            version: record.version,
            expires_at: record.expires_at,
            body: to_json(record)?,
        };
        self.transaction(|t| match t.challenges.get_mut(&record.id) {
            Some(stored) if stored.version == expected_version => {
                *stored = row;
                Ok(())
            }
            _ => Err(StoreError::conflict()),
        })
    }
}

#[async_trait]
impl LimitStore for MyStore {
    /// One statement, so no increment is ever lost:
    ///
    /// ```sql
    /// INSERT INTO rate_counters (key, count, resets_at) VALUES ($1, 1, $now + $window)
    /// ON CONFLICT (key) DO UPDATE SET
    ///   count     = CASE WHEN rate_counters.resets_at <= $now THEN 1
    ///                    ELSE rate_counters.count + 1 END,
    ///   resets_at = CASE WHEN rate_counters.resets_at <= $now THEN $now + $window
    ///                    ELSE rate_counters.resets_at END
    /// RETURNING count, resets_at;
    /// ```
    async fn hit(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<WindowCount, StoreError> {
        self.transaction(|t| {
            let fresh = CounterRow {
                count: 1,
                resets_at: now.saturating_add(window),
            };
            let row = match t.rate_counters.get(key) {
                Some(row) if row.resets_at > now => CounterRow {
                    count: row.count.saturating_add(1),
                    resets_at: row.resets_at,
                },
                _ => fresh,
            };
            t.rate_counters.insert(key.to_owned(), row);
            Ok(WindowCount {
                count: row.count,
                resets_at: row.resets_at,
            })
        })
    }

    /// A compare-and-set on the whole run, one statement per case:
    ///
    /// ```sql
    /// -- no run expected:
    /// INSERT INTO failure_runs (account, consecutive, last_failure_at) VALUES ($1, $2, $3)
    /// ON CONFLICT (account) DO NOTHING;
    /// -- the stored run expected (DELETE … with the same WHERE to end it):
    /// UPDATE failure_runs SET consecutive = $4, last_failure_at = $5
    /// WHERE account = $1 AND consecutive = $2 AND last_failure_at = $3;
    /// ```
    ///
    /// No row touched is a conflict.
    async fn replace_failures(
        &self,
        account: &AccountId,
        expected: Option<FailureRecord>,
        next: Option<FailureRecord>,
    ) -> Result<(), StoreError> {
        self.transaction(|t| {
            let stored = t.failure_runs.get(account).map(|row| FailureRecord {
                consecutive: row.consecutive,
                last_failure_at: row.last_failure_at,
            });
            if stored != expected {
                return Err(StoreError::conflict());
            }
            match next {
                Some(run) => {
                    t.failure_runs.insert(
                        account.clone(),
                        FailureRow {
                            consecutive: run.consecutive,
                            last_failure_at: run.last_failure_at,
                        },
                    );
                }
                None => {
                    t.failure_runs.remove(account);
                }
            }
            Ok(())
        })
    }

    /// `SELECT consecutive, last_failure_at FROM failure_runs WHERE account = $1`
    async fn failures(&self, account: &AccountId) -> Result<Option<FailureRecord>, StoreError> {
        self.transaction(|t| {
            Ok(t.failure_runs.get(account).map(|row| FailureRecord {
                consecutive: row.consecutive,
                last_failure_at: row.last_failure_at,
            }))
        })
    }

    /// `DELETE FROM failure_runs WHERE account = $1`
    async fn clear_failures(&self, account: &AccountId) -> Result<(), StoreError> {
        self.transaction(|t| {
            t.failure_runs.remove(account);
            Ok(())
        })
    }
}

#[async_trait]
impl DeviceStore for MyStore {
    /// ```sql
    /// INSERT INTO devices (account, id, version, expires_at, body)
    /// VALUES ($1, $2, $3, $4, $5);        -- unique violation → Conflict
    /// ```
    async fn insert_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        let row = VersionedRow {
            version: record.version,
            expires_at: record.expires_at,
            body: to_json(record)?,
        };
        self.transaction(|t| {
            let partition = t.devices.entry(record.account.clone()).or_default();
            if partition.contains_key(&record.id) {
                return Err(StoreError::conflict());
            }
            partition.insert(record.id, row);
            Ok(())
        })
    }

    /// `SELECT body FROM devices WHERE account = $1 AND id = $2`
    async fn device(
        &self,
        account: &AccountId,
        id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let body = self.transaction(|t| {
            Ok(t.devices
                .get(account)
                .and_then(|partition| partition.get(id))
                .map(|row| row.body.clone()))
        })?;
        body.as_deref().map(from_json).transpose()
    }

    /// `SELECT body FROM devices WHERE account = $1`
    async fn devices(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
        let bodies = self.transaction(|t| {
            Ok(t.devices.get(account).map_or_else(Vec::new, |partition| {
                partition.values().map(|row| row.body.clone()).collect()
            }))
        })?;
        bodies.iter().map(|body| from_json(body)).collect()
    }

    /// ```sql
    /// UPDATE devices SET version = $3, expires_at = $4, body = $5
    /// WHERE account = $1 AND id = $2 AND version = $6;   -- 0 rows → Conflict
    /// ```
    async fn replace_device(
        &self,
        record: &DeviceRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let row = VersionedRow {
            version: record.version,
            expires_at: record.expires_at,
            body: to_json(record)?,
        };
        self.transaction(|t| {
            let stored = t
                .devices
                .get_mut(&record.account)
                .and_then(|partition| partition.get_mut(&record.id));
            match stored {
                Some(stored) if stored.version == expected_version => {
                    *stored = row;
                    Ok(())
                }
                _ => Err(StoreError::conflict()),
            }
        })
    }

    /// `DELETE FROM devices WHERE account = $1 AND id = $2` (rows affected > 0)
    async fn delete_device(&self, account: &AccountId, id: &DeviceId) -> Result<bool, StoreError> {
        self.transaction(|t| {
            let partition = t.devices.get_mut(account);
            Ok(partition.is_some_and(|p| p.remove(id).is_some()))
        })
    }

    /// `DELETE FROM devices WHERE account = $1` (rows affected)
    async fn delete_devices(&self, account: &AccountId) -> Result<u64, StoreError> {
        self.transaction(|t| Ok(count(t.devices.remove(account).map_or(0, |p| p.len()))))
    }
}

#[async_trait]
impl AccountStore for MyStore {
    /// `SELECT body FROM contact_books WHERE account = $1`
    async fn account_record(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let body =
            self.transaction(|t| Ok(t.contact_books.get(account).map(|row| row.body.clone())))?;
        body.as_deref().map(from_json).transpose()
    }

    /// `SELECT account FROM contact_claims WHERE key = $1`
    async fn claim_owner(&self, key: &str) -> Result<Option<AccountId>, StoreError> {
        self.transaction(|t| Ok(t.contact_claims.get(key).cloned()))
    }

    /// One transaction over the record and the claims:
    ///
    /// ```sql
    /// BEGIN;
    /// SELECT version FROM contact_books WHERE account = $1 FOR UPDATE;
    ///   -- must be $expected (or no row when $expected is NULL) → else ROLLBACK, Conflict
    /// SELECT key, account FROM contact_claims WHERE key = ANY($claim) FOR UPDATE;
    ///   -- a key held by another account → ROLLBACK, Taken { index }
    /// DELETE FROM contact_claims WHERE key = ANY($release) AND account = $1;
    /// INSERT INTO contact_claims (key, account) SELECT unnest($claim), $1
    ///   ON CONFLICT (key) DO NOTHING;     -- keys the account already holds
    /// INSERT INTO contact_books (account, version, body) VALUES ($1, $2, $3)
    ///   ON CONFLICT (account) DO UPDATE SET version = $2, body = $3;
    /// COMMIT;
    /// ```
    ///
    /// Every check happens before the first write, so `Conflict` and
    /// `Taken` leave both tables untouched.
    async fn commit_account(
        &self,
        book: &AccountRecord,
        expected_version: Option<u64>,
        changes: &ClaimChanges,
    ) -> Result<AccountCommit, StoreError> {
        let row = Row {
            version: book.version,
            body: to_json(book)?,
        };
        let account = &book.account;
        self.transaction(|t| {
            let stored_version = t.contact_books.get(account).map(|row| row.version);
            if stored_version != expected_version {
                return Err(StoreError::conflict());
            }
            let held_by_other = |key: &String| {
                t.contact_claims
                    .get(key)
                    .is_some_and(|owner| owner != account)
            };
            if let Some(index) = changes.claim.iter().position(held_by_other) {
                return Ok(AccountCommit::Taken { index });
            }
            // Checks done; now the writes.
            for key in &changes.release {
                if t.contact_claims.get(key) == Some(account) {
                    t.contact_claims.remove(key);
                }
            }
            for key in &changes.claim {
                t.contact_claims.insert(key.clone(), account.clone());
            }
            t.contact_books.insert(account.clone(), row);
            Ok(AccountCommit::Committed)
        })
    }

    /// ```sql
    /// BEGIN;
    /// DELETE FROM contact_books  WHERE account = $1;
    /// DELETE FROM contact_claims WHERE account = $1;
    /// COMMIT;
    /// ```
    async fn delete_account(&self, account: &AccountId) -> Result<(), StoreError> {
        self.transaction(|t| {
            t.contact_books.remove(account);
            t.contact_claims.retain(|_, owner| owner != account);
            Ok(())
        })
    }
}

#[async_trait]
impl VerificationStore for MyStore {
    /// ```sql
    /// INSERT INTO verifications (id, version, expires_at, body)
    /// VALUES ($1, $2, $3, $4);            -- unique violation → Conflict
    /// ```
    async fn insert_verification(&self, record: &VerificationRecord) -> Result<(), StoreError> {
        let row = VersionedRow {
            version: record.version,
            expires_at: record.expires_at,
            body: to_json(record)?,
        };
        self.transaction(|t| {
            if t.verifications.contains_key(&record.id) {
                return Err(StoreError::conflict());
            }
            t.verifications.insert(record.id, row);
            Ok(())
        })
    }

    /// `SELECT body FROM verifications WHERE id = $1`
    async fn verification(
        &self,
        id: &VerificationId,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        let body = self.transaction(|t| Ok(t.verifications.get(id).map(|row| row.body.clone())))?;
        body.as_deref().map(from_json).transpose()
    }

    /// ```sql
    /// UPDATE verifications SET version = $2, expires_at = $3, body = $4
    /// WHERE id = $1 AND version = $5;     -- 0 rows → Conflict
    /// ```
    async fn replace_verification(
        &self,
        record: &VerificationRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let row = VersionedRow {
            version: record.version,
            expires_at: record.expires_at,
            body: to_json(record)?,
        };
        self.transaction(|t| match t.verifications.get_mut(&record.id) {
            Some(stored) if stored.version == expected_version => {
                *stored = row;
                Ok(())
            }
            _ => Err(StoreError::conflict()),
        })
    }
}

/// The two calls a journey step is built from (`ninsho::store::StepStore`):
/// one read of everything the step decides on, and one transaction that
/// checks every condition the step was decided under before it writes
/// anything. A real adapter makes each one round trip: one `SELECT` with
/// joins, and one transaction (or one stored procedure).
#[async_trait]
impl PurgeStore for MyStore {
    /// ```sql
    /// DELETE FROM challenges    WHERE expires_at < $1;  -- each count returned
    /// DELETE FROM verifications WHERE expires_at < $1;
    /// DELETE FROM rate_counters WHERE resets_at <= $1;
    /// DELETE FROM devices       WHERE expires_at < $1;
    /// ```
    ///
    /// Accounts, claims and failure runs are never purged (see
    /// `PurgeStore`'s docs for why).
    async fn purge(&self, before: OffsetDateTime) -> Result<Purged, StoreError> {
        self.transaction(|t| {
            let mut purged = Purged::default();
            let was = t.challenges.len();
            t.challenges.retain(|_, row| row.expires_at >= before);
            purged.challenges = count(was - t.challenges.len());
            let was = t.verifications.len();
            t.verifications.retain(|_, row| row.expires_at >= before);
            purged.verifications = count(was - t.verifications.len());
            let was = t.rate_counters.len();
            t.rate_counters.retain(|_, row| row.resets_at > before);
            purged.counters = count(was - t.rate_counters.len());
            for partition in t.devices.values_mut() {
                let was = partition.len();
                partition.retain(|_, row| row.expires_at >= before);
                purged.devices += count(was - partition.len());
            }
            t.devices.retain(|_, partition| !partition.is_empty());
            Ok(purged)
        })
    }
}

#[async_trait]
impl StepStore for MyStore {
    /// ```sql
    /// SELECT b.body, f.consecutive, f.last_failure_at, c.body, d.body
    /// FROM (SELECT 1) AS one
    /// LEFT JOIN contact_books b ON b.account = $1
    /// LEFT JOIN failure_runs f ON f.account = $1
    /// LEFT JOIN challenges c ON c.id = $2
    /// LEFT JOIN devices d ON d.account = $1 AND d.id = $3;
    /// ```
    async fn load(&self, load: &Load<'_>) -> Result<Loaded, StoreError> {
        let (record, failures, challenge, device) = self.transaction(|t| {
            let account = load.account;
            let record = account.and_then(|a| t.contact_books.get(a).map(|r| r.body.clone()));
            let failures = account.and_then(|a| {
                t.failure_runs.get(a).map(|row| FailureRecord {
                    consecutive: row.consecutive,
                    last_failure_at: row.last_failure_at,
                })
            });
            let challenge = load
                .challenge
                .and_then(|id| t.challenges.get(id).map(|r| r.body.clone()));
            let device = account.zip(load.device).and_then(|(a, id)| {
                t.devices
                    .get(a)
                    .and_then(|rows| rows.get(id))
                    .map(|r| r.body.clone())
            });
            Ok((record, failures, challenge, device))
        })?;
        let mut loaded = Loaded::default();
        loaded.record = record.as_deref().map(from_json).transpose()?;
        loaded.failures = failures;
        loaded.challenge = challenge.as_deref().map(from_json).transpose()?;
        loaded.device = device.as_deref().map(from_json).transpose()?;
        Ok(loaded)
    }

    /// ```sql
    /// BEGIN;
    /// -- the statements of hit, replace_failures, insert/replace_challenge,
    /// -- insert_device, a read of the checked record's version and
    /// -- commit_account, in that order; a hit over its
    /// -- max → COMMIT (the hits stay) and answer LimitReached; any
    /// -- condition that fails → ROLLBACK
    /// COMMIT;
    /// ```
    async fn commit(
        &self,
        commit: &Commit<'_>,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        let challenge = commit
            .challenge
            .map(|write| {
                let record = write.record();
                Ok::<_, StoreError>(VersionedRow {
                    version: record.version,
                    expires_at: record.expires_at,
                    body: to_json(record)?,
                })
            })
            .transpose()?;
        let book = commit
            .record
            .map(|write| {
                Ok::<_, StoreError>(Row {
                    version: write.record.version,
                    body: to_json(write.record)?,
                })
            })
            .transpose()?;
        let device = commit
            .device
            .map(|d| {
                Ok::<_, StoreError>(VersionedRow {
                    version: d.version,
                    expires_at: d.expires_at,
                    body: to_json(d)?,
                })
            })
            .transpose()?;
        self.transaction(|t| {
            // 1. The counters (no rollback log here: worked out first).
            let mut counts: Vec<CounterRow> = Vec::with_capacity(commit.hits.len());
            for (index, hit) in commit.hits.iter().enumerate() {
                let earlier = commit.hits[..index]
                    .iter()
                    .zip(&counts)
                    .rev()
                    .find(|(h, _)| h.key == hit.key)
                    .map(|(_, row)| *row);
                let row = match earlier.or_else(|| t.rate_counters.get(&hit.key).copied()) {
                    Some(row) if row.resets_at > now => CounterRow {
                        count: row.count.saturating_add(1),
                        resets_at: row.resets_at,
                    },
                    _ => CounterRow {
                        count: 1,
                        resets_at: now.saturating_add(hit.window),
                    },
                };
                counts.push(row);
                if row.count > hit.max {
                    for (hit, row) in commit.hits.iter().zip(&counts) {
                        t.rate_counters.insert(hit.key.clone(), *row);
                    }
                    let count = WindowCount {
                        count: row.count,
                        resets_at: row.resets_at,
                    };
                    return Ok(Committed::LimitReached { index, count });
                }
            }
            // 2. Every condition, before the first write.
            if let Some(change) = commit.failures {
                let stored = t.failure_runs.get(change.account).map(|row| FailureRecord {
                    consecutive: row.consecutive,
                    last_failure_at: row.last_failure_at,
                });
                if stored != change.expected {
                    return Err(StoreError::conflict());
                }
            }
            if let Some(write) = commit.challenge {
                let stored = t.challenges.get(&write.record().id).map(|r| r.version);
                let fits = match write {
                    ChallengeWrite::Insert(_) => stored.is_none(),
                    ChallengeWrite::Replace {
                        expected_version, ..
                    } => stored == Some(expected_version),
                    _ => false,
                };
                if !fits {
                    return Err(StoreError::conflict());
                }
            }
            if let Some(d) = commit.device
                && t.devices
                    .get(&d.account)
                    .is_some_and(|rows| rows.contains_key(&d.id))
            {
                return Err(StoreError::conflict());
            }
            // The record the step was decided on, checked and not written.
            if let Some(check) = commit.record_check
                && t.contact_books.get(check.account).map(|row| row.version) != check.version
            {
                return Err(StoreError::conflict());
            }
            if let Some(write) = commit.record {
                let account = &write.record.account;
                let stored = t.contact_books.get(account).map(|row| row.version);
                if stored != write.expected_version {
                    return Err(StoreError::conflict());
                }
                let held_by_other = |key: &String| {
                    t.contact_claims
                        .get(key)
                        .is_some_and(|owner| owner != account)
                };
                if let Some(index) = write.claims.claim.iter().position(held_by_other) {
                    return Ok(Committed::Taken { index });
                }
            }
            // 3. The writes.
            for (hit, row) in commit.hits.iter().zip(&counts) {
                t.rate_counters.insert(hit.key.clone(), *row);
            }
            if let Some(change) = commit.failures {
                match change.next {
                    Some(run) => {
                        t.failure_runs.insert(
                            change.account.clone(),
                            FailureRow {
                                consecutive: run.consecutive,
                                last_failure_at: run.last_failure_at,
                            },
                        );
                    }
                    None => {
                        t.failure_runs.remove(change.account);
                    }
                }
            }
            if let (Some(write), Some(row)) = (commit.challenge, challenge) {
                t.challenges.insert(write.record().id, row);
            }
            if let (Some(d), Some(row)) = (commit.device, device) {
                t.devices
                    .entry(d.account.clone())
                    .or_default()
                    .insert(d.id, row);
            }
            if let (Some(write), Some(row)) = (commit.record, book) {
                let account = &write.record.account;
                for key in &write.claims.release {
                    if t.contact_claims.get(key) == Some(account) {
                        t.contact_claims.remove(key);
                    }
                }
                for key in &write.claims.claim {
                    t.contact_claims.insert(key.clone(), account.clone());
                }
                t.contact_books.insert(account.clone(), row);
            }
            Ok(Committed::Done)
        })
    }
}

// ---------------------------------------------------------------------------
// The proof.
// ---------------------------------------------------------------------------

// The races in the conformance kit only race on a multi-threaded runtime.
#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("== 1. The conformance kit against MyStore");
    // Every check gets a fresh, empty database: the checks count rows.
    ninsho::testkit::run_all(|| async {
        Arc::new(MyStore::connect(&Database::new())) as Arc<dyn Store>
    })
    .await;
    // Two app instances: two handles on one database.
    let shared = Database::new();
    ninsho::testkit::race_two_instances(
        Arc::new(MyStore::connect(&shared)),
        Arc::new(MyStore::connect(&shared)),
    )
    .await;
    println!("Every check passed, the two-instance races included.");

    println!("\n== 2. A code sent and checked on MyStore");
    let db = Database::new();
    let store = Arc::new(MyStore::connect(&db));
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(1_763_683_200)?; // 2025-11-21 00:00:00 UTC
    // In production: the key from your secret manager.
    let hasher = KeyedHasher::new(HashKey::new(KeyId(1), &[0x5A; 32])?);
    let sealer = AeadSealer::new(SealKey::new(KeyId(1), &[0x5B; 32])?);
    let codes = TwoFactor::builder(
        "Example",
        store.clone(),
        Arc::new(gateway.clone()),
        hasher,
        Arc::new(sealer),
    )
    .clock(Arc::new(clock))
    .locale(Locale::En)
    .build()?
    .one_time_codes();

    let alice = AccountId::new("alice");
    let phone = Destination::phone("+81 90-1234-5678")?;
    let ticket = codes
        .send(IssueRequest::new(phone.clone(), Purpose::StepUp).account(alice))
        .await?;
    println!(
        "Code sent by {} to {}.",
        ticket.channel, ticket.masked_destination
    );

    // The user reads the SMS (here: the recording gateway) and types it.
    let code = gateway
        .last_secret_to(phone.address())
        .ok_or("the gateway recorded no SMS")?;
    let id = ticket.challenge_id;
    codes
        .verify(&id, code.expose_secret(), &Purpose::StepUp, &phone)
        .await?;
    println!("The code verifies.");

    match codes
        .verify(&id, code.expose_secret(), &Purpose::StepUp, &phone)
        .await
    {
        Err(Error::Refused(reason @ Refusal::Code(CodeRefusal::AlreadyUsed))) => {
            println!("The same code again: refused ({reason}).");
        }
        other => return Err(format!("a used code must be refused, got {other:?}").into()),
    }

    let row = store
        .challenge(&id)
        .await?
        .ok_or("the challenge row is missing")?;
    println!(
        "Its row: version {}, state {:?}, {} stored code hash(es).",
        row.version,
        row.state,
        row.sends.len()
    );
    Ok(())
}
