//! Credentials for signing, as the shell sees them: static keys, or fetched credentials
//! (STS AssumeRole, the instance role through IMDSv2, the container endpoint) shared by all
//! worker VMs through one shared-data record per fetcher (see `credential_state`, which
//! makes every decision; this module only does the host calls).
//!
//! Role chaining: an AssumeRole on top of ambient credentials has two layers, each with its
//! own record, lease and backoff. The source layer (IMDS or container) keeps the ambient
//! credentials fresh; the top layer (AssumeRole) is signed with them and signs the Invoke.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime};

use log::{debug, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

use crate::ambient::{AmbientError, Failure, MAX_AMBIENT_ANSWER_BYTES};
use crate::config::{AmbientProvider, CredentialSource};
use crate::container_credentials::{self, ContainerSettings};
use crate::credential_state::{
    epoch_ms, holds_lease, last_error, record_failure_class, record_success, should_fetch,
    take_lease, usable_credentials, waiting_failure, RefreshPolicy, SharedRecord, Waiters,
};
use crate::credentials::Credentials;
use crate::error::RequestError;
use crate::imds::{ImdsClient, ImdsProgress, MAX_CALLS_PER_FETCH, TTL_HEADER};
use crate::invoke::OutboundRequest;
use crate::metrics::CredentialFetcher;
use crate::response::InvokeAnswer;
use crate::sts::{
    build_assume_role_request, class_is_retryable, parse_assume_role_answer, AssumeRoleSettings,
    StsError, TemporaryCredentials,
};

/// Bounded retries of a compare-and-swap write lost to another VM.
const CAS_ATTEMPTS: usize = 8;

/// The largest AssumeRole answer read into the VM (real ones are a few KB); a larger one is
/// a bad response, left unread.
pub const MAX_STS_ANSWER_BYTES: usize = 64 * 1024;

/// Where this process logged its credential origin, so that only the first VM logs it.
const ORIGIN_KEY: &str = "proxy-wasm-lambda/credentials-origin/v1";

/// A random number from the host's entropy (std seeds `RandomState` from WASI `random_get`).
pub fn random_u64() -> u64 {
    RandomState::new().hash_one(0u8)
}

fn random_fraction() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Logs where the credentials come from, once per Envoy process (every VM configures).
pub fn log_origin_once(origin: &str) {
    let logged = matches!(
        hostcalls::get_shared_data(ORIGIN_KEY),
        Ok((Some(bytes), _)) if bytes == origin.as_bytes()
    );
    if !logged {
        info!("proxy_wasm_lambda: credentials: {origin}");
        let _ = hostcalls::set_shared_data(ORIGIN_KEY, Some(origin.as_bytes()), None);
    }
}

/// Where the IMDS session token and role name are kept for every VM.
fn imds_session_key(credentials_key: &str) -> String {
    format!("{credentials_key}/session")
}

/// The two layers of fetched credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// What signs the Invoke.
    Top,
    /// The ambient credentials under an AssumeRole (role chaining).
    Source,
}

pub enum CredentialShell {
    Static(Credentials),
    Fetched(Box<FetchedShell>),
}

pub struct FetchedShell {
    top: Provider,
    source: Option<Provider>,
    max_wait: Duration,
    waiters: Waiters,
}

enum Fetcher {
    AssumeRole {
        settings: AssumeRoleSettings,
        /// The static source keys; `None`: the source layer's credentials.
        keys: Option<Credentials>,
    },
    Imds(ImdsClient),
    Container(ContainerSettings),
}

/// One fetcher and its view of its shared record.
struct Provider {
    fetcher: Fetcher,
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

/// What the root must do after a tick or an answer.
#[derive(Default)]
pub struct Work {
    /// Dispatch these and report each token with `dispatched`.
    pub fetch: Vec<(Layer, OutboundRequest)>,
    /// Parked requests to resume now that credentials are usable.
    pub wake: Vec<u32>,
    /// Parked requests to fail.
    pub fail: Vec<(u32, RequestError)>,
    /// Fetches that ended: succeeded (true) or failed (false).
    pub refreshed: Vec<(CredentialFetcher, bool)>,
}

impl Provider {
    fn new(fetcher: Fetcher, policy: RefreshPolicy, key: String) -> Self {
        Provider {
            fetcher,
            policy,
            key,
            owner: format!("{:016x}", random_u64()),
            jitter: random_fraction(),
            record: SharedRecord::default(),
            cas: None,
            token: None,
        }
    }

    fn ambient(provider: &AmbientProvider) -> Self {
        let (fetcher, calls) = match provider {
            AmbientProvider::Imds(settings) => (
                Fetcher::Imds(ImdsClient::new(settings.clone())),
                MAX_CALLS_PER_FETCH,
            ),
            AmbientProvider::Container(settings) => (Fetcher::Container(settings.clone()), 1),
        };
        Provider::new(
            fetcher,
            RefreshPolicy::for_calls(provider.timeout(), calls),
            provider.shared_data_key(),
        )
    }

    fn assume_role(settings: &AssumeRoleSettings, keys: Option<Credentials>, key: String) -> Self {
        Provider::new(
            Fetcher::AssumeRole {
                settings: settings.clone(),
                keys,
            },
            RefreshPolicy::for_settings(settings),
            key,
        )
    }

    fn kind(&self) -> CredentialFetcher {
        match self.fetcher {
            Fetcher::AssumeRole { .. } => CredentialFetcher::Sts,
            Fetcher::Imds(_) => CredentialFetcher::Imds,
            Fetcher::Container(_) => CredentialFetcher::Container,
        }
    }

    /// What a fetch is called in logs and error messages.
    fn what(&self) -> String {
        match &self.fetcher {
            Fetcher::AssumeRole { settings, .. } => format!("AssumeRole {}", settings.role_arn),
            Fetcher::Imds(client) => match client.role() {
                Some(role) => format!("IMDS instance role {role}"),
                None => "IMDS instance role".to_string(),
            },
            Fetcher::Container(settings) => format!("container credentials {}", settings.uri),
        }
    }

    fn answer_limit(&self) -> usize {
        match self.fetcher {
            Fetcher::AssumeRole { .. } => MAX_STS_ANSWER_BYTES,
            _ => MAX_AMBIENT_ANSWER_BYTES,
        }
    }

    fn usable(&mut self, now_ms: u64) -> Option<Credentials> {
        usable_credentials(&self.record, now_ms, &self.policy).or_else(|| {
            self.read_shared();
            usable_credentials(&self.record, now_ms, &self.policy)
        })
    }

    fn init_shared(&self) {
        if let Ok((None, _)) = hostcalls::get_shared_data(&self.key) {
            let _ = hostcalls::set_shared_data(
                &self.key,
                Some(&SharedRecord::default().encode()),
                None,
            );
        }
    }

    /// Starts a fetch when one is due and this VM wins the lease. `signer`: the source
    /// layer's credentials, for an AssumeRole on top of them.
    fn tick(&mut self, signer: Option<Credentials>, now: SystemTime) -> Option<OutboundRequest> {
        let now_ms = epoch_ms(now);
        self.read_shared();
        if self.token.is_some() || !should_fetch(&self.record, now_ms, &self.policy, self.jitter) {
            return None;
        }
        // An AssumeRole needs credentials to sign it: without them, no lease is taken (the
        // source layer is fetching them, or failing, and says why).
        let keys = match &self.fetcher {
            Fetcher::AssumeRole { keys, .. } => Some(keys.clone().or(signer)?),
            _ => None,
        };
        if !self.take_lease(now_ms) {
            return None;
        }
        match &mut self.fetcher {
            Fetcher::AssumeRole { settings, .. } => {
                let keys = keys?;
                match build_assume_role_request(settings, &keys, now) {
                    Ok(request) => Some(request),
                    Err(e) => {
                        warn!("proxy_wasm_lambda: could not sign AssumeRole: {e}");
                        None
                    }
                }
            }
            Fetcher::Imds(client) => {
                // The session token and role name another VM may have kept.
                if let Ok((Some(bytes), _)) =
                    hostcalls::get_shared_data(&imds_session_key(&self.key))
                {
                    client.import_session(&bytes);
                }
                Some(client.start(now_ms))
            }
            Fetcher::Container(settings) => Some(container_credentials::build_request(settings)),
        }
    }

    fn dispatched(&mut self, result: Result<u32, Status>, now: SystemTime, work: &mut Work) {
        match result {
            Ok(token) => {
                debug!(
                    "proxy_wasm_lambda: {} call dispatched, token {token}",
                    self.what()
                );
                self.token = Some(token);
            }
            Err(status) => {
                let cluster = match &self.fetcher {
                    Fetcher::AssumeRole { settings, .. } => settings.sts_cluster.clone(),
                    Fetcher::Imds(client) => client.settings().cluster.clone(),
                    Fetcher::Container(settings) => settings.cluster.clone(),
                };
                warn!(
                    "proxy_wasm_lambda: {} call to cluster '{cluster}' refused: {status:?}",
                    self.what()
                );
                if let Fetcher::Imds(client) = &mut self.fetcher {
                    client.abort();
                }
                let class = Failure::Unavailable.class();
                self.write_outcome(
                    |record, now_ms, policy| record_failure_class(record, class, now_ms, policy),
                    epoch_ms(now),
                );
                work.refreshed.push((self.kind(), false));
            }
        }
    }

    /// An answer to this provider's call: the next call, or the outcome stored for every VM.
    fn on_answer(&mut self, layer: Layer, answer: InvokeAnswer, now: SystemTime, work: &mut Work) {
        self.token = None;
        let now_ms = epoch_ms(now);
        let what = self.what();
        let oversized = answer.unread_body_bytes.map(|size| {
            format!(
                "the {what} answer of {size} bytes is larger than {}",
                self.answer_limit()
            )
        });
        let outcome: Result<TemporaryCredentials, (&'static str, String)> = match &mut self.fetcher
        {
            Fetcher::AssumeRole { .. } => match oversized {
                Some(reason) => Err(StsError::BadResponse { reason }),
                None => parse_assume_role_answer(answer.status, &answer.body),
            }
            .map_err(|e| (e.class(), e.to_string())),
            Fetcher::Imds(client) => {
                let progress = match oversized {
                    Some(reason) => {
                        client.abort();
                        ImdsProgress::Done(Err(AmbientError::new(Failure::BadResponse, reason)))
                    }
                    None => client.on_answer(
                        answer.status,
                        answer.header(TTL_HEADER),
                        &answer.body,
                        now_ms,
                    ),
                };
                // Only the lease holder writes it.
                let session = client.export_session();
                let _ =
                    hostcalls::set_shared_data(&imds_session_key(&self.key), Some(&session), None);
                match progress {
                    ImdsProgress::Next(request) => {
                        work.fetch.push((layer, request));
                        return;
                    }
                    ImdsProgress::Done(outcome) => outcome.map_err(|e| (e.class(), e.to_string())),
                }
            }
            Fetcher::Container(_) => match oversized {
                Some(reason) => Err(AmbientError::new(Failure::BadResponse, reason)),
                None => container_credentials::parse_answer(answer.status, &answer.body),
            }
            .map_err(|e| (e.class(), e.to_string())),
        };
        let what = self.what();
        match outcome {
            Ok(fetched) => {
                let valid_for = fetched
                    .expiration
                    .duration_since(now)
                    .unwrap_or_default()
                    .as_secs();
                self.write_outcome(
                    |record, now_ms, policy| {
                        record_success(record, fetched.clone(), now_ms, policy)
                    },
                    now_ms,
                );
                // record_success refuses credentials too close to expiry (a failure with
                // backoff): count and log what the record says, not the HTTP outcome.
                let accepted = self.record.failures == 0;
                work.refreshed.push((self.kind(), accepted));
                if accepted {
                    info!(
                        "proxy_wasm_lambda: {what} succeeded; credentials valid for {valid_for} s"
                    );
                } else {
                    warn!(
                        "proxy_wasm_lambda: {what} failed: {} (its credentials expire in \
                         {valid_for} s, too soon to use them)",
                        last_error(&self.record).unwrap_or_default()
                    );
                }
            }
            Err((class, message)) => {
                work.refreshed.push((self.kind(), false));
                warn!("proxy_wasm_lambda: {what} failed: {message}");
                self.write_outcome(
                    |record, now_ms, policy| record_failure_class(record, class, now_ms, policy),
                    now_ms,
                );
            }
        }
    }

    /// Refreshes the local copy of the shared record when another VM changed it.
    fn read_shared(&mut self) {
        match hostcalls::get_shared_data(&self.key) {
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
            Err(status) => warn!("proxy_wasm_lambda: shared credentials unreadable: {status:?}"),
        }
    }

    /// Takes the fetch lease with a compare-and-swap; false when another VM won it.
    fn take_lease(&mut self, now_ms: u64) -> bool {
        let leased = take_lease(&self.record, &self.owner, now_ms, &self.policy);
        match hostcalls::set_shared_data(&self.key, Some(&leased.encode()), self.cas) {
            Ok(()) => {
                self.read_shared();
                holds_lease(&self.record, &self.owner, now_ms)
            }
            Err(_) => {
                self.read_shared();
                false
            }
        }
    }

    /// Applies `update` to the freshest record and writes it, retrying lost races.
    fn write_outcome(
        &mut self,
        update: impl Fn(&SharedRecord, u64, &RefreshPolicy) -> SharedRecord,
        now_ms: u64,
    ) {
        for _ in 0..CAS_ATTEMPTS {
            self.read_shared();
            let updated = update(&self.record, now_ms, &self.policy);
            match hostcalls::set_shared_data(&self.key, Some(&updated.encode()), self.cas) {
                Ok(()) => {
                    self.read_shared();
                    return;
                }
                Err(Status::CasMismatch) => continue,
                Err(status) => {
                    warn!("proxy_wasm_lambda: shared credentials not written: {status:?}");
                    return;
                }
            }
        }
        warn!("proxy_wasm_lambda: shared credentials not written: too many concurrent writers");
    }
}

impl CredentialShell {
    pub fn new(source: &CredentialSource) -> Self {
        let (top, source, max_wait) = match source {
            CredentialSource::Static(credentials) => {
                return CredentialShell::Static(credentials.clone())
            }
            CredentialSource::AssumeRole { source, settings } => (
                Provider::assume_role(
                    settings,
                    Some(source.clone()),
                    settings.shared_data_key(source),
                ),
                None,
                settings.max_wait,
            ),
            CredentialSource::Ambient {
                provider,
                assume_role: None,
                max_wait,
            } => (Provider::ambient(provider), None, *max_wait),
            CredentialSource::Ambient {
                provider,
                assume_role: Some(settings),
                max_wait,
            } => (
                Provider::assume_role(
                    settings,
                    None,
                    settings.shared_data_key_for(&provider.shared_data_key()),
                ),
                Some(Provider::ambient(provider)),
                *max_wait,
            ),
        };
        CredentialShell::Fetched(Box::new(FetchedShell {
            top,
            source,
            max_wait,
            waiters: Waiters::default(),
        }))
    }

    pub fn needs_ticks(&self) -> bool {
        matches!(self, CredentialShell::Fetched(_))
    }

    /// Credentials to sign with now, if any are usable.
    pub fn usable(&mut self, now: SystemTime) -> Option<Credentials> {
        match self {
            CredentialShell::Static(credentials) => Some(credentials.clone()),
            CredentialShell::Fetched(shell) => shell.top.usable(epoch_ms(now)),
        }
    }

    pub fn max_wait(&self) -> Duration {
        match self {
            CredentialShell::Static(_) => Duration::ZERO,
            CredentialShell::Fetched(shell) => shell.max_wait,
        }
    }

    pub fn park(&mut self, context_id: u32, deadline: SystemTime) {
        if let CredentialShell::Fetched(shell) = self {
            shell.waiters.add(context_id, epoch_ms(deadline));
        }
    }

    pub fn unpark(&mut self, context_id: u32) {
        if let CredentialShell::Fetched(shell) = self {
            shell.waiters.remove(context_id);
        }
    }

    /// Creates the shared records if no VM has yet (done at configure time, on the main
    /// thread, before worker VMs start, so creation never races a lease).
    pub fn init_shared(&mut self) {
        if let CredentialShell::Fetched(shell) = self {
            shell.top.init_shared();
            if let Some(source) = &shell.source {
                source.init_shared();
            }
        }
    }

    /// The layer whose call this token is, if any.
    pub fn layer_of(&self, token: u32) -> Option<Layer> {
        let CredentialShell::Fetched(shell) = self else {
            return None;
        };
        if shell.top.token == Some(token) {
            Some(Layer::Top)
        } else if shell
            .source
            .as_ref()
            .is_some_and(|s| s.token == Some(token))
        {
            Some(Layer::Source)
        } else {
            None
        }
    }

    /// How much of an answer to `layer`'s call is read into the VM.
    pub fn answer_limit(&self, layer: Layer) -> usize {
        match self {
            CredentialShell::Fetched(shell) => shell
                .provider(layer)
                .map_or(MAX_STS_ANSWER_BYTES, |p| p.answer_limit()),
            CredentialShell::Static(_) => MAX_STS_ANSWER_BYTES,
        }
    }

    /// Periodic work: start fetches when due, wake or fail parked requests.
    pub fn tick(&mut self, now: SystemTime) -> Work {
        let CredentialShell::Fetched(shell) = self else {
            return Work::default();
        };
        let now_ms = epoch_ms(now);
        let mut work = Work::default();
        let signer = match &mut shell.source {
            Some(source) => {
                if let Some(request) = source.tick(None, now) {
                    work.fetch.push((Layer::Source, request));
                }
                source.usable(now_ms)
            }
            None => None,
        };
        if let Some(request) = shell.top.tick(signer, now) {
            work.fetch.push((Layer::Top, request));
        }
        shell.settle_waiters(now_ms, &mut work);
        work
    }

    pub fn dispatched(
        &mut self,
        layer: Layer,
        result: Result<u32, Status>,
        now: SystemTime,
    ) -> Work {
        let mut work = Work::default();
        let CredentialShell::Fetched(shell) = self else {
            return work;
        };
        if let Some(provider) = shell.provider_mut(layer) {
            provider.dispatched(result, now, &mut work);
        }
        if !work.refreshed.is_empty() {
            shell.settle_waiters(epoch_ms(now), &mut work);
        }
        work
    }

    /// The answer to a credentials call: store the credentials (or the failure) for every
    /// VM, or go on with the next call of the fetch.
    pub fn on_answer(&mut self, layer: Layer, answer: InvokeAnswer, now: SystemTime) -> Work {
        let mut work = Work::default();
        let CredentialShell::Fetched(shell) = self else {
            return work;
        };
        if let Some(provider) = shell.provider_mut(layer) {
            provider.on_answer(layer, answer, now, &mut work);
        }
        // Fresh source credentials: the AssumeRole on top may start now rather than at the
        // next tick.
        if layer == Layer::Source && work.refreshed.iter().any(|(_, ok)| *ok) {
            let signer = shell.source.as_mut().and_then(|s| s.usable(epoch_ms(now)));
            if let Some(request) = shell.top.tick(signer, now) {
                work.fetch.push((Layer::Top, request));
            }
        }
        shell.settle_waiters(epoch_ms(now), &mut work);
        work
    }
}

impl FetchedShell {
    fn provider(&self, layer: Layer) -> Option<&Provider> {
        match layer {
            Layer::Top => Some(&self.top),
            Layer::Source => self.source.as_ref(),
        }
    }

    fn provider_mut(&mut self, layer: Layer) -> Option<&mut Provider> {
        match layer {
            Layer::Top => Some(&mut self.top),
            Layer::Source => self.source.as_mut(),
        }
    }

    /// Wakes parked requests when credentials are usable; fails those past their deadline.
    fn settle_waiters(&mut self, now_ms: u64, work: &mut Work) {
        if self.waiters.is_empty() {
            return;
        }
        if usable_credentials(&self.top.record, now_ms, &self.top.policy).is_some() {
            work.wake.extend(self.waiters.take_all());
            return;
        }
        let source_record = self.source.as_ref().map(|s| &s.record);
        let last = waiting_failure(&self.top.record, source_record);
        let failed = match &self.source {
            Some(source) if self.top.record.failures == 0 && last.is_some() => source.what(),
            _ => self.top.what(),
        };
        if let Some(class) = last.as_ref().filter(|c| !class_is_retryable(c)) {
            // Any VM's failure that waiting cannot fix (access denied, bad source keys):
            // answer now rather than at the deadline.
            let message = format!(
                "no AWS credentials: the last {failed} failed with {class}, which needs a \
                 change in IAM or the configuration"
            );
            for context_id in self.waiters.take_all() {
                work.fail.push((
                    context_id,
                    RequestError::CredentialsUnavailable {
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
        let class = last.unwrap_or_else(|| "sts_unavailable".to_string());
        let message = format!(
            "no AWS credentials within {} ms (last {failed} failure: {class})",
            crate::credential_state::ms(self.max_wait)
        );
        for context_id in expired {
            work.fail.push((
                context_id,
                RequestError::CredentialsUnavailable {
                    class: class.clone(),
                    message: message.clone(),
                },
            ));
        }
    }
}
