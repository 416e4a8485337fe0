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
use std::time::{Duration, SystemTime};

use log::Level;

use crate::credentials::ambient::Failure;
use crate::credentials::assume_role::AssumeRoleProvider;
use crate::credentials::container_provider::ContainerProvider;
use crate::credentials::identity::{assume_role_key, container_key, imds_key, AssumeRoleSource};
use crate::credentials::imds::ImdsClient;
use crate::credentials::imds_provider::ImdsProvider;
use crate::credentials::provider::CredentialFetcher;
use crate::credentials::provider::{CredentialProvider, FetchFailure, Progress};
use crate::credentials::source::{AmbientProvider, CredentialSource, ProfileId};
use crate::credentials::state::{
    epoch_ms, holds_lease, last_error, ms, record_failure_class, record_success, should_fetch,
    take_lease, usable_credentials, waiting_failure, RefreshPolicy, SharedRecord, Waiters,
};
use crate::credentials::sts::class_is_retryable;
use crate::credentials::Credentials;
use crate::http::CallAnswer;
use crate::http::OutboundRequest;

/// Bounded retries of a compare-and-swap write lost to another VM.
const CAS_ATTEMPTS: usize = 8;

/// A key → bytes store with compare-and-swap, shared by every VM of the process
/// (proxy-wasm shared data). `cas` is the version a value was read at; writing with a
/// stale one fails with [`StoreError::CasMismatch`]; `None` writes unconditionally.
pub trait SharedStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError>;
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    CasMismatch,
    Failed(String),
}

/// Why the host refused to dispatch a credentials call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DispatchRefusal {
    /// The host's BadArgument: Envoy has no cluster by that name.
    UnknownCluster,
    Other(String),
}

/// The two layers of fetched credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// What signs the Invoke.
    Top,
    /// The ambient credentials under an AssumeRole (role chaining).
    Source,
}

/// Which layer of which profile a credentials call belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallOwner {
    pub profile: ProfileId,
    pub layer: Layer,
}

/// One ended fetch, for the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refresh {
    pub profile: ProfileId,
    pub fetcher: CredentialFetcher,
    pub ok: bool,
}

/// Why a waiting request gets no credentials: the failure class of the last fetch (the
/// error class of its 503) and a message naming the profile, never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoCredentials {
    pub class: String,
    pub message: String,
}

/// What the shell must do after a tick, a dispatch or an answer.
#[derive(Debug, Default)]
pub struct Work {
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

/// One provider and this VM's view of its shared record.
struct CachedLayer {
    /// The profile it belongs to, and `credentials profile 'NAME': ` to start its log lines.
    profile: ProfileId,
    prefix: Rc<str>,
    layer: Layer,
    provider: Box<dyn CredentialProvider>,
    policy: RefreshPolicy,
    key: String,
    /// Unique per VM: context ids repeat across VMs.
    owner: String,
    record: SharedRecord,
    cas: Option<u32>,
    /// This VM's point in the refresh jitter window, drawn once so that VMs spread out.
    jitter: f64,
    /// The call this VM has in flight.
    token: Option<u32>,
}

/// Randomness the shell hands in: the owner id and jitter of each layer.
pub trait Entropy {
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> Entropy for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

fn fraction(random: u64) -> f64 {
    (random >> 11) as f64 / (1u64 << 53) as f64
}

/// Where an IMDS session token and role name are kept for every VM.
fn session_key(layer_key: &str) -> String {
    format!("{layer_key}/session")
}

impl CachedLayer {
    fn new(
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

    fn owner(&self) -> CallOwner {
        CallOwner {
            profile: self.profile,
            layer: self.layer,
        }
    }

    fn usable(&mut self, store: &dyn SharedStore, now_ms: u64) -> Option<Credentials> {
        usable_credentials(&self.record, now_ms, &self.policy).or_else(|| {
            self.read_shared(store);
            usable_credentials(&self.record, now_ms, &self.policy)
        })
    }

    fn init_shared(&self, store: &dyn SharedStore) {
        if let Ok((None, _)) = store.get(&self.key) {
            let _ = store.set(&self.key, &SharedRecord::default().encode(), None);
        }
    }

    /// Starts a fetch when one is due and this VM wins the lease. `signer`: the source
    /// layer's credentials, for an AssumeRole on top of them.
    fn tick(
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

    fn dispatched(
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
                self.write_failure(store, Failure::Unavailable.class(), epoch_ms(now), work);
            }
        }
    }

    fn write_failure(
        &mut self,
        store: &dyn SharedStore,
        class: &str,
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
    fn on_answer(
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
                    Failure::BadResponse.class(),
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

/// Who a layer belongs to: its profile, and the start of its log lines.
struct LayerOwner {
    profile: ProfileId,
    prefix: Rc<str>,
}

/// One profile's credentials: static keys, or one or two fetched layers and the requests
/// waiting for them.
pub enum ProfileCredentials {
    Static(Credentials),
    Fetched(Box<FetchedLayers>),
}

pub struct FetchedLayers {
    top: CachedLayer,
    source: Option<CachedLayer>,
    max_wait: Duration,
    waiters: Waiters,
}

impl ProfileCredentials {
    fn new(owner: &LayerOwner, source: &CredentialSource, entropy: &mut dyn Entropy) -> Self {
        let (top, source, max_wait) = match source {
            CredentialSource::Static(credentials) => {
                return ProfileCredentials::Static(credentials.clone())
            }
            CredentialSource::AssumeRole { source, settings } => (
                CachedLayer::new(
                    owner,
                    Layer::Top,
                    Box::new(AssumeRoleProvider::new(
                        settings.clone(),
                        Some(source.clone()),
                    )),
                    assume_role_key(settings, AssumeRoleSource::Keys(source)),
                    entropy,
                ),
                None,
                settings.max_wait,
            ),
            CredentialSource::Ambient {
                provider,
                assume_role,
                max_wait,
            } => match assume_role {
                None => (
                    ambient_layer(owner, Layer::Top, provider, entropy),
                    None,
                    *max_wait,
                ),
                Some(settings) => {
                    let ambient = ambient_layer(owner, Layer::Source, provider, entropy);
                    (
                        CachedLayer::new(
                            owner,
                            Layer::Top,
                            Box::new(AssumeRoleProvider::new(settings.clone(), None)),
                            assume_role_key(settings, AssumeRoleSource::Layer(&ambient.key)),
                            entropy,
                        ),
                        Some(ambient),
                        *max_wait,
                    )
                }
            },
        };
        ProfileCredentials::Fetched(Box::new(FetchedLayers {
            top,
            source,
            max_wait,
            waiters: Waiters::default(),
        }))
    }

    /// The shared-data keys of its layers (top first).
    fn keys(&self) -> Vec<&str> {
        match self {
            ProfileCredentials::Static(_) => Vec::new(),
            ProfileCredentials::Fetched(layers) => std::iter::once(layers.top.key.as_str())
                .chain(layers.source.as_ref().map(|s| s.key.as_str()))
                .collect(),
        }
    }
}

fn ambient_layer(
    owner: &LayerOwner,
    layer: Layer,
    provider: &AmbientProvider,
    entropy: &mut dyn Entropy,
) -> CachedLayer {
    match provider {
        AmbientProvider::Imds(settings) => CachedLayer::new(
            owner,
            layer,
            Box::new(ImdsProvider::new(ImdsClient::new(settings.clone()))),
            imds_key(settings),
            entropy,
        ),
        AmbientProvider::Container(settings) => CachedLayer::new(
            owner,
            layer,
            Box::new(ContainerProvider::new(settings.clone())),
            container_key(settings),
            entropy,
        ),
    }
}

/// A named profile's credentials in this VM.
struct Profile {
    name: String,
    credentials: ProfileCredentials,
}

/// Every profile's credentials in this VM, by [`ProfileId`]; a profile that the
/// configuration does not have is `None`.
#[derive(Default)]
pub struct CredentialProfiles {
    profiles: Vec<Option<Profile>>,
}

impl CredentialProfiles {
    /// `sources`: each profile's name and source, by id (`None`: no such profile).
    pub fn new<'a>(
        sources: impl IntoIterator<Item = Option<(&'a str, &'a CredentialSource)>>,
        entropy: &mut dyn Entropy,
    ) -> Self {
        let mut profiles = Vec::new();
        for (id, source) in sources.into_iter().enumerate() {
            profiles.push(source.map(|(name, source)| {
                let owner = LayerOwner {
                    profile: ProfileId(id),
                    prefix: format!("credentials profile '{name}': ").into(),
                };
                Profile {
                    name: name.to_string(),
                    credentials: ProfileCredentials::new(&owner, source, entropy),
                }
            }));
        }
        CredentialProfiles { profiles }
    }

    fn credentials(&self, id: ProfileId) -> Option<&ProfileCredentials> {
        self.profiles
            .get(id.0)
            .and_then(Option::as_ref)
            .map(|p| &p.credentials)
    }

    fn fetched_mut(&mut self, id: ProfileId) -> Option<&mut FetchedLayers> {
        match self.profiles.get_mut(id.0).and_then(Option::as_mut) {
            Some(Profile {
                credentials: ProfileCredentials::Fetched(layers),
                ..
            }) => Some(layers),
            _ => None,
        }
    }

    /// Every profile that exists: id and name (for the metrics).
    pub fn names(&self) -> impl Iterator<Item = (ProfileId, &str)> {
        self.profiles
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (ProfileId(i), p.name.as_str())))
    }

    /// The shared-data keys of a profile's layers.
    pub fn keys(&self, id: ProfileId) -> Vec<&str> {
        self.credentials(id)
            .map(ProfileCredentials::keys)
            .unwrap_or_default()
    }

    pub fn needs_ticks(&self) -> bool {
        self.profiles
            .iter()
            .flatten()
            .any(|p| matches!(p.credentials, ProfileCredentials::Fetched(_)))
    }

    /// Credentials to sign with now for this profile, if any are usable.
    pub fn usable(
        &mut self,
        store: &dyn SharedStore,
        id: ProfileId,
        now: SystemTime,
    ) -> Option<Credentials> {
        match &mut self.profiles.get_mut(id.0)?.as_mut()?.credentials {
            ProfileCredentials::Static(credentials) => Some(credentials.clone()),
            ProfileCredentials::Fetched(layers) => layers.top.usable(store, epoch_ms(now)),
        }
    }

    /// How long a request of this profile may wait for credentials.
    pub fn max_wait(&self, id: ProfileId) -> Duration {
        match self.credentials(id) {
            Some(ProfileCredentials::Fetched(layers)) => layers.max_wait,
            _ => Duration::ZERO,
        }
    }

    pub fn park(&mut self, id: ProfileId, context_id: u32, deadline: SystemTime) {
        if let Some(layers) = self.fetched_mut(id) {
            layers.waiters.add(context_id, epoch_ms(deadline));
        }
    }

    /// Forgets a request wherever it waits.
    pub fn unpark(&mut self, context_id: u32) {
        for layers in self.all_fetched_mut() {
            layers.waiters.remove(context_id);
        }
    }

    fn all_fetched_mut(&mut self) -> impl Iterator<Item = &mut FetchedLayers> {
        self.profiles
            .iter_mut()
            .flatten()
            .filter_map(|p| match &mut p.credentials {
                ProfileCredentials::Fetched(layers) => Some(layers.as_mut()),
                ProfileCredentials::Static(_) => None,
            })
    }

    fn all_fetched(&self) -> impl Iterator<Item = &FetchedLayers> {
        self.profiles
            .iter()
            .flatten()
            .filter_map(|p| match &p.credentials {
                ProfileCredentials::Fetched(layers) => Some(layers.as_ref()),
                ProfileCredentials::Static(_) => None,
            })
    }

    /// Creates the shared records no VM has created yet (at configure time, on the main
    /// thread, before worker VMs start, so creation never races a lease).
    pub fn init_shared(&self, store: &dyn SharedStore) {
        for layers in self.all_fetched() {
            layers.top.init_shared(store);
            if let Some(source) = &layers.source {
                source.init_shared(store);
            }
        }
    }

    /// Which layer of which profile this call token is, if any.
    pub fn owner_of(&self, token: u32) -> Option<CallOwner> {
        for layers in self.all_fetched() {
            if layers.top.token == Some(token) {
                return Some(layers.top.owner());
            }
            if let Some(source) = layers.source.as_ref().filter(|s| s.token == Some(token)) {
                return Some(source.owner());
            }
        }
        None
    }

    /// How much of an answer to this call is read into the VM.
    pub fn answer_limit(&self, owner: CallOwner) -> usize {
        match self.credentials(owner.profile) {
            Some(ProfileCredentials::Fetched(layers)) => layers
                .layer(owner.layer)
                .map_or(0, |l| l.provider.answer_limit()),
            _ => 0,
        }
    }

    /// Periodic work: start fetches when due, wake or fail parked requests.
    pub fn tick(&mut self, store: &dyn SharedStore, now: SystemTime) -> Work {
        let mut work = Work::default();
        for layers in self.all_fetched_mut() {
            layers.tick(store, now, &mut work);
        }
        work
    }

    pub fn dispatched(
        &mut self,
        store: &dyn SharedStore,
        owner: CallOwner,
        result: Result<u32, DispatchRefusal>,
        now: SystemTime,
    ) -> Work {
        let mut work = Work::default();
        let Some(layers) = self.fetched_mut(owner.profile) else {
            return work;
        };
        if let Some(layer) = layers.layer_mut(owner.layer) {
            layer.dispatched(store, result, now, &mut work);
        }
        if !work.refreshed.is_empty() {
            layers.settle_waiters(epoch_ms(now), &mut work);
        }
        work
    }

    /// The answer to a credentials call: store the credentials (or the failure) for every
    /// VM, or go on with the next call of the fetch.
    pub fn on_answer(
        &mut self,
        store: &dyn SharedStore,
        owner: CallOwner,
        answer: &CallAnswer,
        now: SystemTime,
    ) -> Work {
        let mut work = Work::default();
        let Some(layers) = self.fetched_mut(owner.profile) else {
            return work;
        };
        if let Some(layer) = layers.layer_mut(owner.layer) {
            layer.on_answer(store, answer, now, &mut work);
        }
        // Fresh source credentials: the AssumeRole on top may start now rather than at the
        // next tick.
        if owner.layer == Layer::Source && work.refreshed.iter().any(|r| r.ok) {
            layers.tick_top(store, now, &mut work);
        }
        layers.settle_waiters(epoch_ms(now), &mut work);
        work
    }
}

impl FetchedLayers {
    fn layer(&self, layer: Layer) -> Option<&CachedLayer> {
        match layer {
            Layer::Top => Some(&self.top),
            Layer::Source => self.source.as_ref(),
        }
    }

    fn layer_mut(&mut self, layer: Layer) -> Option<&mut CachedLayer> {
        match layer {
            Layer::Top => Some(&mut self.top),
            Layer::Source => self.source.as_mut(),
        }
    }

    fn tick(&mut self, store: &dyn SharedStore, now: SystemTime, work: &mut Work) {
        if let Some(source) = &mut self.source {
            if let Some(request) = source.tick(store, None, now, work) {
                work.fetch.push((source.owner(), request));
            }
        }
        self.tick_top(store, now, work);
        self.settle_waiters(epoch_ms(now), work);
    }

    /// Starts the top layer's fetch when due, signed by the source layer when there is one.
    fn tick_top(&mut self, store: &dyn SharedStore, now: SystemTime, work: &mut Work) {
        let signer = match &mut self.source {
            Some(source) => match source.usable(store, epoch_ms(now)) {
                Some(signer) => Some(signer),
                // Nothing to sign the AssumeRole with yet.
                None => return,
            },
            None => None,
        };
        if let Some(request) = self.top.tick(store, signer.as_ref(), now, work) {
            work.fetch.push((self.top.owner(), request));
        }
    }
    /// Wakes parked requests when credentials are usable; fails those past their deadline.
    fn settle_waiters(&mut self, now_ms: u64, work: &mut Work) {
        if self.waiters.is_empty() {
            return;
        }
        let prefix = &self.top.prefix;
        if usable_credentials(&self.top.record, now_ms, &self.top.policy).is_some() {
            work.wake.extend(self.waiters.take_all());
            return;
        }
        let source_record = self.source.as_ref().map(|s| &s.record);
        let last = waiting_failure(&self.top.record, source_record);
        let failed = match &self.source {
            Some(source) if self.top.record.failures == 0 && last.is_some() => {
                source.provider.describe()
            }
            _ => self.top.provider.describe(),
        };
        if let Some(class) = last.as_ref().filter(|c| !class_is_retryable(c)) {
            // Any VM's failure that waiting cannot fix (access denied, bad source keys):
            // answer now rather than at the deadline.
            let message = format!(
                "no AWS credentials ({prefix}the last {failed} failed with {class}, which needs \
                 a change in IAM or the configuration)"
            );
            for context_id in self.waiters.take_all() {
                work.fail.push((
                    context_id,
                    NoCredentials {
                        class: class.clone(),
                        message: message.clone(),
                    },
                ));
            }
            return;
        }
        let expired = self.waiters.take_expired(now_ms);
        if expired.is_empty() {
            return;
        }
        let class = last.unwrap_or_else(|| Failure::Unavailable.class().to_string());
        let message = format!(
            "no AWS credentials within {} ms ({prefix}last {failed} failure: {class})",
            ms(self.max_wait)
        );
        for context_id in expired {
            work.fail.push((
                context_id,
                NoCredentials {
                    class: class.clone(),
                    message: message.clone(),
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests;
