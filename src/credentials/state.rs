//! The AssumeRole credentials, shared by every worker VM through one proxy-wasm shared-data
//! record (a key → bytes store with compare-and-swap). This module decides; the shell does
//! the host calls. Times are epoch milliseconds from the host clock.
//!
//! The shell's loop, per request that needs credentials:
//! 1. `get_shared_data(key)` → `(bytes, cas)`; `record = SharedRecord::decode(bytes)`.
//! 2. `usable_credentials(&record, now, &policy)`: `Some` → sign with them.
//! 3. `should_fetch(&record, now, &policy, jitter)`: true → write
//!    `take_lease(&record, owner, now, &policy).encode()` with that `cas`; only if the write
//!    succeeds, dispatch `sts::build_assume_role_request` (on a CAS mismatch another VM won:
//!    re-read and start over at 2).
//! 4. No usable credentials → pause the request in [`Waiters`] until `now + max_wait`.
//! 5. On the STS answer: `record_success` / `record_failure` applied to a fresh read and
//!    CAS-written (re-read and re-apply on a mismatch), then resume or fail the waiters.
//!
//! Shared data lives in Envoy's process memory only; it is never persisted.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::credentials::failure::FailureClass;
use crate::credentials::sts::{AssumeRoleSettings, StsError, TemporaryCredentials};
use crate::credentials::Credentials;
use crate::secret::Secret;

/// Added to the STS timeout to make the fetch lease: the lease outlives the call it guards.
pub(crate) const LEASE_SLACK: Duration = Duration::from_secs(1);

pub(crate) use crate::time::{epoch_ms, ms};

/// Temporary credentials as kept in the shared record. `Debug` redacts the secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    pub expiration_ms: u64,
    /// When they were stored: refreshing never starts before half their lifetime, so a
    /// short lifetime (or a skewed clock) cannot turn into a refresh loop.
    pub obtained_at_ms: u64,
}

impl StoredCredentials {
    pub fn credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: self.session_token.clone(),
        }
    }
}

/// A VM's claim to be the one calling STS, until `until_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until_ms: u64,
}

/// The shared-data record. A missing or corrupt record is the empty (default) record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedRecord {
    pub credentials: Option<StoredCredentials>,
    pub lease: Option<Lease>,
    /// Consecutive failed fetches.
    pub failures: u32,
    /// No fetch before this time (backoff after failures).
    pub next_attempt_at_ms: u64,
    /// The class of the last failure ([`StsError::class`]); cleared by a success.
    pub last_error: Option<FailureClass>,
}

// The record is JSON, encoded and decoded through `serde_json::Value` by hand: serde derives
// would add much code to the .wasm for these few fields.

fn text(value: &str) -> Value {
    Value::String(value.to_string())
}

fn optional(value: Option<Value>) -> Value {
    value.unwrap_or(Value::Null)
}

/// A member whose absence means `default`; `None` when it has the wrong type.
fn or_default<T>(
    object: &Map<String, Value>,
    key: &str,
    default: T,
    read: impl FnOnce(&Value) -> Option<T>,
) -> Option<T> {
    object.get(key).map_or(Some(default), read)
}

/// A member that may be absent or `null`; `None` when it has the wrong type.
fn nullable<T>(
    object: &Map<String, Value>,
    key: &str,
    read: impl FnOnce(&Value) -> Option<T>,
) -> Option<Option<T>> {
    match object.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(value) => read(value).map(Some),
    }
}

fn string(value: &Value) -> Option<String> {
    value.as_str().map(str::to_string)
}

impl StoredCredentials {
    fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("access_key_id".into(), text(&self.access_key_id));
        object.insert(
            "secret_access_key".into(),
            text(self.secret_access_key.expose()),
        );
        object.insert(
            "session_token".into(),
            optional(self.session_token.as_ref().map(|t| text(t.expose()))),
        );
        object.insert("expiration_ms".into(), self.expiration_ms.into());
        object.insert("obtained_at_ms".into(), self.obtained_at_ms.into());
        Value::Object(object)
    }

    fn from_value(value: &Value) -> Option<StoredCredentials> {
        let object = value.as_object()?;
        Some(StoredCredentials {
            access_key_id: string(object.get("access_key_id")?)?,
            secret_access_key: Secret::new(string(object.get("secret_access_key")?)?),
            session_token: nullable(object, "session_token", string)?.map(Secret::new),
            expiration_ms: object.get("expiration_ms")?.as_u64()?,
            obtained_at_ms: object.get("obtained_at_ms")?.as_u64()?,
        })
    }
}

impl Lease {
    fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("owner".into(), text(&self.owner));
        object.insert("until_ms".into(), self.until_ms.into());
        Value::Object(object)
    }

    fn from_value(value: &Value) -> Option<Lease> {
        let object = value.as_object()?;
        Some(Lease {
            owner: string(object.get("owner")?)?,
            until_ms: object.get("until_ms")?.as_u64()?,
        })
    }
}

impl SharedRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut object = Map::new();
        object.insert(
            "credentials".into(),
            optional(self.credentials.as_ref().map(StoredCredentials::to_value)),
        );
        object.insert(
            "lease".into(),
            optional(self.lease.as_ref().map(Lease::to_value)),
        );
        object.insert("failures".into(), self.failures.into());
        object.insert("next_attempt_at_ms".into(), self.next_attempt_at_ms.into());
        object.insert(
            "last_error".into(),
            optional(self.last_error.map(|c| text(c.as_str()))),
        );
        serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
    }

    /// Never fails: empty, corrupt or foreign bytes give the empty record. Unknown keys
    /// (a newer writer) are ignored; a known key with the wrong type voids the record.
    pub fn decode(bytes: &[u8]) -> SharedRecord {
        serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|value| SharedRecord::from_value(&value))
            .unwrap_or_default()
    }

    fn from_value(value: &Value) -> Option<SharedRecord> {
        let object = value.as_object()?;
        Some(SharedRecord {
            credentials: nullable(object, "credentials", StoredCredentials::from_value)?,
            lease: nullable(object, "lease", Lease::from_value)?,
            failures: or_default(object, "failures", 0, |v| {
                v.as_u64().and_then(|n| u32::try_from(n).ok())
            })?,
            next_attempt_at_ms: or_default(object, "next_attempt_at_ms", 0, Value::as_u64)?,
            // A class this version does not know (a newer writer) counts as unavailable.
            last_error: nullable(object, "last_error", |v| {
                v.as_str()
                    .map(|name| FailureClass::parse(name).unwrap_or(FailureClass::Unavailable))
            })?,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Refresh this long before the credentials expire …
    pub refresh_before: Duration,
    /// … plus up to this much more (times the caller's jitter fraction).
    pub jitter: Duration,
    /// Credentials with less than this left are never used.
    pub min_validity: Duration,
    /// How long a fetch lease is held: the STS timeout plus slack.
    pub lease: Duration,
    /// The wait after the first failure; doubled after each further one …
    pub backoff_base: Duration,
    /// … up to this.
    pub backoff_max: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            refresh_before: Duration::from_secs(5 * 60),
            jitter: Duration::from_secs(60),
            min_validity: Duration::from_secs(30),
            lease: Duration::from_millis(2000) + LEASE_SLACK,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl RefreshPolicy {
    /// The default policy with the lease covering `calls` calls of `timeout` each (an IMDS
    /// fetch makes several).
    pub fn for_calls(timeout: Duration, calls: u32) -> Self {
        RefreshPolicy {
            lease: timeout.saturating_mul(calls) + LEASE_SLACK,
            ..Default::default()
        }
    }

    /// The default policy with the lease fitted to the settings' STS timeout.
    pub fn for_settings(settings: &AssumeRoleSettings) -> Self {
        RefreshPolicy {
            lease: settings.timeout + LEASE_SLACK,
            ..Default::default()
        }
    }
}

/// The credentials to sign with now: present and valid for at least `min_validity` more.
pub fn usable_credentials(
    record: &SharedRecord,
    now_ms: u64,
    policy: &RefreshPolicy,
) -> Option<Credentials> {
    record
        .credentials
        .as_ref()
        .filter(|c| c.expiration_ms.saturating_sub(now_ms) >= ms(policy.min_validity))
        .map(StoredCredentials::credentials)
}

/// When a refresh of `credentials` is due: `expiration − refresh_before − jitter·policy.jitter`,
/// but not before half their lifetime and never later than `expiration − min_validity`.
pub fn refresh_at_ms(credentials: &StoredCredentials, policy: &RefreshPolicy, jitter: f64) -> u64 {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let early = ms(policy.refresh_before).saturating_add(ms(policy.jitter.mul_f64(jitter)));
    let by_policy = credentials.expiration_ms.saturating_sub(early);
    let lifetime = credentials
        .expiration_ms
        .saturating_sub(credentials.obtained_at_ms);
    let half_life = credentials.obtained_at_ms.saturating_add(lifetime / 2);
    let latest = credentials
        .expiration_ms
        .saturating_sub(ms(policy.min_validity));
    by_policy.max(half_life).min(latest)
}

/// Whether someone holds a fetch lease that has not run out.
pub fn lease_is_live(record: &SharedRecord, now_ms: u64) -> bool {
    record.lease.as_ref().is_some_and(|l| l.until_ms > now_ms)
}

/// Whether `owner` holds a live lease.
pub fn holds_lease(record: &SharedRecord, owner: &str, now_ms: u64) -> bool {
    lease_is_live(record, now_ms) && record.lease.as_ref().is_some_and(|l| l.owner == owner)
}

/// Whether this VM should try to take the lease and call STS: the credentials are missing,
/// about to expire or in their refresh window, nobody holds a live lease, and the backoff
/// has passed. `jitter` is a fraction in [0, 1) (random per VM or per call).
pub fn should_fetch(
    record: &SharedRecord,
    now_ms: u64,
    policy: &RefreshPolicy,
    jitter: f64,
) -> bool {
    if now_ms < record.next_attempt_at_ms || lease_is_live(record, now_ms) {
        return false;
    }
    match &record.credentials {
        None => true,
        Some(credentials) => now_ms >= refresh_at_ms(credentials, policy, jitter),
    }
}

/// The record to CAS-write before dispatching AssumeRole.
pub fn take_lease(
    record: &SharedRecord,
    owner: &str,
    now_ms: u64,
    policy: &RefreshPolicy,
) -> SharedRecord {
    SharedRecord {
        lease: Some(Lease {
            owner: owner.to_string(),
            until_ms: now_ms.saturating_add(ms(policy.lease)),
        }),
        ..record.clone()
    }
}

/// The record after a successful fetch: the new credentials (or the stored ones, should they
/// outlive them), no lease, no failures. Credentials that arrive with less than
/// `min_validity` left cannot be used: that counts as a failed fetch (with its backoff), not
/// as a reason to ask again at once.
pub fn record_success(
    record: &SharedRecord,
    fetched: TemporaryCredentials,
    now_ms: u64,
    policy: &RefreshPolicy,
) -> SharedRecord {
    let remaining_ms = epoch_ms(fetched.expiration).saturating_sub(now_ms);
    if remaining_ms < ms(policy.min_validity) {
        let error = StsError::BadResponse {
            reason: format!(
                "the credentials expire in {} s, less than the {} s needed to use them",
                remaining_ms / 1000,
                policy.min_validity.as_secs()
            ),
        };
        return record_failure(record, &error, now_ms, policy);
    }
    let new = StoredCredentials {
        access_key_id: fetched.credentials.access_key_id,
        secret_access_key: fetched.credentials.secret_access_key,
        session_token: fetched.credentials.session_token,
        expiration_ms: epoch_ms(fetched.expiration),
        obtained_at_ms: now_ms,
    };
    let credentials = match &record.credentials {
        Some(stored) if stored.expiration_ms > new.expiration_ms => stored.clone(),
        _ => new,
    };
    SharedRecord {
        credentials: Some(credentials),
        ..SharedRecord::default()
    }
}

/// The wait before the next fetch after `failures` consecutive failures (≥ 1):
/// `min(backoff_base · 2^(failures−1), backoff_max)`.
pub(crate) fn backoff(failures: u32, policy: &RefreshPolicy) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    policy
        .backoff_base
        .saturating_mul(1u32 << doublings)
        .min(policy.backoff_max)
}

/// The record after a failed fetch: no lease, one more failure, the next attempt after the
/// backoff, and the credentials kept while they have not expired.
pub fn record_failure(
    record: &SharedRecord,
    error: &StsError,
    now_ms: u64,
    policy: &RefreshPolicy,
) -> SharedRecord {
    record_failure_class(record, error.class(), now_ms, policy)
}

/// [`record_failure`] for any fetcher: `class` is one of the STS classes (ambient fetches
/// use them too, see [`crate::credentials::ambient::Failure`]).
pub(crate) fn record_failure_class(
    record: &SharedRecord,
    class: FailureClass,
    now_ms: u64,
    policy: &RefreshPolicy,
) -> SharedRecord {
    let failures = record.failures.saturating_add(1);
    SharedRecord {
        credentials: record
            .credentials
            .clone()
            .filter(|c| c.expiration_ms > now_ms),
        lease: None,
        failures,
        next_attempt_at_ms: now_ms.saturating_add(ms(backoff(failures, policy))),
        last_error: Some(class),
    }
}

/// Why requests waiting on `top` have no credentials: its last failure, or, when its
/// credentials come from `source` (role chaining) and it has not failed itself, the
/// source's last failure (the AssumeRole cannot even be signed). `None` while nothing
/// failed.
pub(crate) fn waiting_failure(
    top: &SharedRecord,
    source: Option<&SharedRecord>,
) -> Option<FailureClass> {
    if top.failures > 0 {
        return top.last_error;
    }
    source.filter(|s| s.failures > 0).and_then(|s| s.last_error)
}

/// The name of the last failure's class, for logs.
pub(crate) fn last_error(record: &SharedRecord) -> Option<&'static str> {
    record.last_error.map(FailureClass::as_str)
}

/// This VM's requests paused until credentials arrive, with their deadlines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Waiters {
    waiting: Vec<(u32, u64)>,
}

impl Waiters {
    /// Adds a paused request (or moves its deadline if it is already waiting).
    pub(crate) fn add(&mut self, context_id: u32, deadline_ms: u64) {
        match self.waiting.iter_mut().find(|(id, _)| *id == context_id) {
            Some(entry) => entry.1 = deadline_ms,
            None => self.waiting.push((context_id, deadline_ms)),
        }
    }

    /// Every waiting request, oldest first; the list is left empty.
    pub(crate) fn take_all(&mut self) -> Vec<u32> {
        self.waiting.drain(..).map(|(id, _)| id).collect()
    }

    /// The requests whose deadline is at or before `now_ms`, oldest first.
    pub(crate) fn take_expired(&mut self, now_ms: u64) -> Vec<u32> {
        let (expired, waiting) = self
            .waiting
            .drain(..)
            .partition(|(_, deadline)| *deadline <= now_ms);
        self.waiting = waiting;
        expired.into_iter().map(|(id, _): (u32, u64)| id).collect()
    }

    /// Forgets a request (e.g. the client went away). True if it was waiting.
    pub(crate) fn remove(&mut self, context_id: u32) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|(id, _)| *id != context_id);
        self.waiting.len() != before
    }

    /// The earliest deadline, to time the next check.
    #[cfg(test)]
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.waiting.iter().map(|(_, deadline)| *deadline).min()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests;
