//! The per-VM view of fetched credentials, shared by every worker VM through one record per
//! layer in a [`SharedStore`] (proxy-wasm shared data in Envoy, a map in tests). The
//! decisions about one record (is it usable, is a fetch due, lease, back-off) are in
//! [`crate::credentials::state`]; this module runs them against the store: it takes the
//! fetch lease with a compare-and-swap, writes outcomes with CAS retries, hands the shell
//! the calls to dispatch, and wakes or fails the requests waiting for credentials.
//!
//! A profile has one or two layers. The top layer signs the Invoke. With role chaining
//! (an AssumeRole on top of IMDS or container credentials) the source layer keeps the
//! ambient credentials fresh and the top layer's AssumeRole is signed with them.
//!
//! Every layer's key is a digest of all the inputs that decide its credentials
//! ([`crate::credentials::identity`]): two configurations, or two profiles, share a record
//! only when those inputs are equal.

use std::rc::Rc;
use std::time::SystemTime;

use log::Level;

use crate::credentials::ambient::Failure;
use crate::credentials::failure::FailureClass;
use crate::credentials::provider::CredentialFetcher;
use crate::credentials::provider::{CredentialProvider, FetchFailure, Progress};
use crate::credentials::source::ProfileId;
use crate::credentials::state::{
    epoch_ms, holds_lease, last_error, record_failure_class, record_success, should_fetch,
    take_lease, usable_credentials, RefreshPolicy, SharedRecord,
};
use crate::credentials::Credentials;
use crate::http::CallAnswer;
use crate::http::OutboundRequest;

/// Bounded retries of a compare-and-swap write lost to another VM.
const CAS_ATTEMPTS: usize = 8;

/// A key → bytes store with compare-and-swap, shared by every VM of the process
/// (proxy-wasm shared data). `cas` is the version a value was read at; writing with a
/// stale one fails with [`StoreError::CasMismatch`]; `None` writes unconditionally.
pub(crate) trait SharedStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError>;
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreError {
    CasMismatch,
    Failed(String),
}

/// Why the host refused to dispatch a credentials call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DispatchRefusal {
    /// The host's BadArgument: Envoy has no cluster by that name.
    UnknownCluster,
    Other(String),
}

/// The two layers of fetched credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layer {
    /// What signs the Invoke.
    Top,
    /// The ambient credentials under an AssumeRole (role chaining).
    Source,
}

/// Which layer of which profile a credentials call belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallOwner {
    pub profile: ProfileId,
    pub layer: Layer,
}

/// One ended fetch, for the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refresh {
    pub profile: ProfileId,
    pub fetcher: CredentialFetcher,
    pub ok: bool,
}

/// Why a waiting request gets no credentials: the failure class of the last fetch (the
/// error class of its 503) and a message naming the profile, never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoCredentials {
    pub class: FailureClass,
    pub message: String,
}

/// What the shell must do after a tick, a dispatch or an answer.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// Dispatch these and report each outcome with `dispatched`.
    pub fetch: Vec<(CallOwner, OutboundRequest)>,
    /// Parked requests to resume now that their profile's credentials are usable.
    pub wake: Vec<u32>,
    /// Parked requests to fail.
    pub fail: Vec<(u32, NoCredentials)>,
    pub refreshed: Vec<Refresh>,
    /// Lines to log (never a secret).
    pub logs: Vec<(Level, String)>,
}

impl Work {
    fn log(&mut self, level: Level, message: String) {
        self.logs.push((level, message));
    }
}

/// Who a layer belongs to: its profile, and the start of its log lines.
pub(super) struct LayerOwner {
    pub(super) profile: ProfileId,
    pub(super) prefix: Rc<str>,
}

/// One provider and this VM's view of its shared record.
pub(super) struct CachedLayer {
    /// The profile it belongs to, and `credentials profile 'NAME': ` to start its log lines.
    pub(super) profile: ProfileId,
    pub(super) prefix: Rc<str>,
    pub(super) layer: Layer,
    pub(super) provider: Box<dyn CredentialProvider>,
    pub(super) policy: RefreshPolicy,
    pub(super) key: String,
    /// Unique per VM: context ids repeat across VMs.
    pub(super) owner: String,
    pub(super) record: SharedRecord,
    pub(super) cas: Option<u32>,
    /// This VM's point in the refresh jitter window, drawn once so that VMs spread out.
    pub(super) jitter: f64,
    /// The call this VM has in flight.
    pub(super) token: Option<u32>,
}

/// Randomness the shell hands in: the owner id and jitter of each layer.
pub(crate) trait Entropy {
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> Entropy for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

pub(super) fn fraction(random: u64) -> f64 {
    (random >> 11) as f64 / (1u64 << 53) as f64
}

/// Where an IMDS session token and role name are kept for every VM.
fn session_key(layer_key: &str) -> String {
    format!("{layer_key}/session")
}

impl CachedLayer {
    pub(super) fn new(
        owner: &LayerOwner,
        layer: Layer,
        provider: Box<dyn CredentialProvider>,
        key: String,
        entropy: &mut dyn Entropy,
    ) -> Self {
        CachedLayer {
            profile: owner.profile,
            prefix: Rc::clone(&owner.prefix),
            layer,
            policy: provider.policy(),
            provider,
            key,
            owner: format!("{:016x}", entropy.next_u64()),
            jitter: fraction(entropy.next_u64()),
            record: SharedRecord::default(),
            cas: None,
            token: None,
        }
    }

    pub(super) fn owner(&self) -> CallOwner {
        CallOwner {
            profile: self.profile,
            layer: self.layer,
        }
    }

    pub(super) fn usable(&mut self, store: &dyn SharedStore, now_ms: u64) -> Option<Credentials> {
        usable_credentials(&self.record, now_ms, &self.policy).or_else(|| {
            self.read_shared(store);
            usable_credentials(&self.record, now_ms, &self.policy)
        })
    }

    pub(super) fn init_shared(&self, store: &dyn SharedStore) {
        if let Ok((None, _)) = store.get(&self.key) {
            let _ = store.set(&self.key, &SharedRecord::default().encode(), None);
        }
    }

    /// Starts a fetch when one is due and this VM wins the lease. `signer`: the source
    /// layer's credentials, for an AssumeRole on top of them.
    pub(super) fn tick(
        &mut self,
        store: &dyn SharedStore,
        signer: Option<&Credentials>,
        now: SystemTime,
        work: &mut Work,
    ) -> Option<OutboundRequest> {
        let prefix = Rc::clone(&self.prefix);
        let now_ms = epoch_ms(now);
        self.read_shared(store);
        if self.token.is_some() || !should_fetch(&self.record, now_ms, &self.policy, self.jitter) {
            return None;
        }
        // A fetch that must be signed by the layer below waits for its credentials without
        // taking the lease (that layer is fetching them, or failing, and says why).
        if self.provider.needs_signer() && signer.is_none() {
            return None;
        }
        if !self.take_lease(store, now_ms) {
            return None;
        }
        if let Ok((Some(bytes), _)) = store.get(&session_key(&self.key)) {
            self.provider.restore_session(&bytes);
        }
        match self.provider.start(signer, now) {
            Ok(request) => Some(request),
            Err(failure) => {
                work.log(
                    Level::Warn,
                    format!(
                        "{prefix}{} failed: {}",
                        self.provider.describe(),
                        failure.message
                    ),
                );
                self.write_failure(store, failure.class, now_ms, work);
                None
            }
        }
    }

    pub(super) fn dispatched(
        &mut self,
        store: &dyn SharedStore,
        result: Result<u32, DispatchRefusal>,
        now: SystemTime,
        work: &mut Work,
    ) {
        let prefix = Rc::clone(&self.prefix);
        match result {
            Ok(token) => {
                work.log(
                    Level::Debug,
                    format!(
                        "{prefix}{} call dispatched, token {token}",
                        self.provider.describe()
                    ),
                );
                self.token = Some(token);
            }
            Err(refusal) => {
                let cluster = self.provider.cluster();
                let why = match refusal {
                    DispatchRefusal::UnknownCluster => format!(
                        "no cluster named '{cluster}' (add it to Envoy's clusters, or correct \
                         the name in the configuration)"
                    ),
                    DispatchRefusal::Other(status) => {
                        format!("the call to cluster '{cluster}' was refused: {status}")
                    }
                };
                work.log(
                    Level::Warn,
                    format!("{prefix}{} failed: {why}", self.provider.describe()),
                );
                self.provider.abort();
                self.write_failure(store, Failure::Unavailable, epoch_ms(now), work);
            }
        }
    }

    fn write_failure(
        &mut self,
        store: &dyn SharedStore,
        class: FailureClass,
        now_ms: u64,
        work: &mut Work,
    ) {
        self.write_outcome(
            store,
            |record, now_ms, policy| record_failure_class(record, class, now_ms, policy),
            now_ms,
            work,
        );
        work.refreshed.push(Refresh {
            profile: self.profile,
            fetcher: self.provider.kind(),
            ok: false,
        });
    }

    /// An answer to this layer's call: the next call, or the outcome stored for every VM.
    pub(super) fn on_answer(
        &mut self,
        store: &dyn SharedStore,
        answer: &CallAnswer,
        now: SystemTime,
        work: &mut Work,
    ) {
        let prefix = Rc::clone(&self.prefix);
        let owner = self.owner();
        self.token = None;
        let now_ms = epoch_ms(now);
        let progress = match answer.unread_body_bytes {
            Some(size) => {
                self.provider.abort();
                Progress::Done(Err(FetchFailure::new(
                    Failure::BadResponse,
                    format!(
                        "the {} answer of {size} bytes is larger than {}",
                        self.provider.describe(),
                        self.provider.answer_limit()
                    ),
                )))
            }
            None => self.provider.on_answer(answer, now),
        };
        if let Some(session) = self.provider.session() {
            // Only the lease holder fetches, so only it writes the session: no CAS needed.
            let _ = store.set(&session_key(&self.key), &session, None);
        }
        let what = self.provider.describe();
        match progress {
            Progress::Next(request) => work.fetch.push((owner, request)),
            Progress::Done(Ok(mut fetched)) => {
                // An Expiration further ahead than the provider hands out (year 9999) must
                // not pin the credentials: they are used for at most their lifetime.
                let bound = now + self.provider.max_lifetime();
                if fetched.expiration > bound {
                    fetched.expiration = bound;
                }
                let valid_for = fetched
                    .expiration
                    .duration_since(now)
                    .unwrap_or_default()
                    .as_secs();
                self.write_outcome(
                    store,
                    |record, now_ms, policy| {
                        record_success(record, fetched.clone(), now_ms, policy)
                    },
                    now_ms,
                    work,
                );
                // record_success refuses credentials too close to expiry (a failure with
                // backoff): count and log what the record says, not the HTTP outcome.
                let accepted = self.record.failures == 0;
                work.refreshed.push(Refresh {
                    profile: owner.profile,
                    fetcher: self.provider.kind(),
                    ok: accepted,
                });
                if accepted {
                    work.log(
                        Level::Info,
                        format!("{prefix}{what} succeeded; credentials valid for {valid_for} s"),
                    );
                } else {
                    work.log(
                        Level::Warn,
                        format!(
                            "{prefix}{what} failed: {} (its credentials expire in {valid_for} s, \
                             too soon to use them)",
                            last_error(&self.record).unwrap_or_default()
                        ),
                    );
                }
            }
            Progress::Done(Err(failure)) => {
                work.log(
                    Level::Warn,
                    format!("{prefix}{what} failed: {}", failure.message),
                );
                self.write_failure(store, failure.class, now_ms, work);
            }
        }
    }

    /// Refreshes the local copy of the shared record when another VM changed it.
    fn read_shared(&mut self, store: &dyn SharedStore) {
        match store.get(&self.key) {
            Ok((Some(bytes), cas)) => {
                if cas != self.cas || cas.is_none() {
                    self.record = SharedRecord::decode(&bytes);
                    self.cas = cas;
                }
            }
            Ok((None, _)) => {
                self.record = SharedRecord::default();
                self.cas = None;
            }
            // Keep the local copy: a store that cannot be read is the host's trouble, and
            // the next read tries again.
            Err(_) => {}
        }
    }

    /// Takes the fetch lease with a compare-and-swap; false when another VM won it.
    fn take_lease(&mut self, store: &dyn SharedStore, now_ms: u64) -> bool {
        let leased = take_lease(&self.record, &self.owner, now_ms, &self.policy);
        let written = store.set(&self.key, &leased.encode(), self.cas).is_ok();
        self.read_shared(store);
        written && holds_lease(&self.record, &self.owner, now_ms)
    }

    /// Applies `update` to the freshest record and writes it, retrying lost races.
    fn write_outcome(
        &mut self,
        store: &dyn SharedStore,
        update: impl Fn(&SharedRecord, u64, &RefreshPolicy) -> SharedRecord,
        now_ms: u64,
        work: &mut Work,
    ) {
        for _ in 0..CAS_ATTEMPTS {
            self.read_shared(store);
            let updated = update(&self.record, now_ms, &self.policy);
            match store.set(&self.key, &updated.encode(), self.cas) {
                Ok(()) => {
                    self.read_shared(store);
                    return;
                }
                Err(StoreError::CasMismatch) => continue,
                Err(StoreError::Failed(status)) => {
                    work.log(
                        Level::Warn,
                        format!("shared credentials not written: {status}"),
                    );
                    return;
                }
            }
        }
        work.log(
            Level::Warn,
            "shared credentials not written: too many concurrent writers".to_string(),
        );
    }
}
