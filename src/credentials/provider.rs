//! What every fetching credential provider (STS AssumeRole, IMDSv2, the container endpoint)
//! offers the cache: a request to start a fetch, the next step for each answer, and the
//! facts the cache needs to run it (cluster, answer limit, refresh policy, lifetime bound).
//! Static and environment keys fetch nothing: they are plain [`Credentials`] values.

use std::time::{Duration, SystemTime};

use crate::credentials::ambient::{Failure, MAX_AMBIENT_ANSWER_BYTES};
use crate::credentials::container::{self, ContainerSettings};
use crate::credentials::imds::{ImdsClient, ImdsProgress, MAX_CALLS_PER_FETCH, TTL_HEADER};
use crate::credentials::state::RefreshPolicy;
use crate::credentials::sts::{
    build_assume_role_request, parse_assume_role_answer, AssumeRoleSettings, TemporaryCredentials,
};
use crate::credentials::Credentials;
use crate::invoke::OutboundRequest;
use crate::metrics::CredentialFetcher;
use crate::response::InvokeAnswer;

/// The largest AssumeRole answer read into the VM (real ones are a few KB); a larger one is
/// a bad response, left unread.
pub const MAX_STS_ANSWER_BYTES: usize = 64 * 1024;

/// Ambient credentials (IMDS, container) are trusted for at most this long, whatever their
/// `Expiration` says (the SDKs refresh instance credentials within hours).
pub const MAX_AMBIENT_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Why a fetch gave no credentials: a failure class (`sts_access_denied`, …, shared with
/// the 503 given to waiting requests) and a message without secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchFailure {
    pub class: &'static str,
    pub message: String,
}

impl FetchFailure {
    pub fn new(class: &'static str, message: impl Into<String>) -> Self {
        FetchFailure {
            class,
            message: message.into(),
        }
    }
}

/// What an answer leads to: another call of the same fetch, or its end.
#[derive(Debug)]
pub enum Progress {
    Next(OutboundRequest),
    Done(Result<TemporaryCredentials, FetchFailure>),
}

pub trait CredentialProvider {
    /// Which per-source metrics its refreshes move.
    fn kind(&self) -> CredentialFetcher;
    /// What a fetch is called in logs and errors (never a secret).
    fn describe(&self) -> String;
    /// The Envoy cluster its calls go to.
    fn cluster(&self) -> &str;
    /// The most bytes of an answer read into the VM.
    fn answer_limit(&self) -> usize;
    fn policy(&self) -> RefreshPolicy;
    /// Credentials are used for at most this long after they arrive, whatever their
    /// `Expiration` claims.
    fn max_lifetime(&self) -> Duration;
    /// Whether a fetch must be signed with another layer's credentials (role chaining).
    fn needs_signer(&self) -> bool {
        false
    }
    /// The first call of a fetch. `signer`: the layer below's credentials, when
    /// [`Self::needs_signer`].
    fn start(
        &mut self,
        signer: Option<&Credentials>,
        now: SystemTime,
    ) -> Result<OutboundRequest, FetchFailure>;
    /// The answer to the call in flight.
    fn on_answer(&mut self, answer: &InvokeAnswer, now: SystemTime) -> Progress;
    /// The call in flight was never dispatched, or its answer is not read.
    fn abort(&mut self) {}
    /// State worth handing to the next VM that fetches (the IMDS session token), if any.
    fn session(&self) -> Option<Vec<u8>> {
        None
    }
    fn restore_session(&mut self, _bytes: &[u8]) {}
}

/// STS AssumeRole, signed with static keys or with the layer below.
pub struct AssumeRoleProvider {
    settings: AssumeRoleSettings,
    /// `None`: signed with the layer below's credentials.
    keys: Option<Credentials>,
}

impl AssumeRoleProvider {
    pub fn new(settings: AssumeRoleSettings, keys: Option<Credentials>) -> Self {
        AssumeRoleProvider { settings, keys }
    }
}

impl CredentialProvider for AssumeRoleProvider {
    fn kind(&self) -> CredentialFetcher {
        CredentialFetcher::Sts
    }

    fn describe(&self) -> String {
        format!("AssumeRole {}", self.settings.role_arn)
    }

    fn cluster(&self) -> &str {
        &self.settings.sts_cluster
    }

    fn answer_limit(&self) -> usize {
        MAX_STS_ANSWER_BYTES
    }

    fn policy(&self) -> RefreshPolicy {
        RefreshPolicy::for_settings(&self.settings)
    }

    fn max_lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.settings.duration_seconds))
    }

    fn needs_signer(&self) -> bool {
        self.keys.is_none()
    }

    fn start(
        &mut self,
        signer: Option<&Credentials>,
        now: SystemTime,
    ) -> Result<OutboundRequest, FetchFailure> {
        let keys = self.keys.as_ref().or(signer).ok_or_else(|| {
            FetchFailure::new(
                Failure::Unavailable.class(),
                "no source credentials to sign AssumeRole with",
            )
        })?;
        build_assume_role_request(&self.settings, keys, now).map_err(|e| {
            FetchFailure::new(
                Failure::BadResponse.class(),
                format!("could not sign AssumeRole: {e}"),
            )
        })
    }

    fn on_answer(&mut self, answer: &InvokeAnswer, _now: SystemTime) -> Progress {
        Progress::Done(
            parse_assume_role_answer(answer.status, &answer.body)
                .map_err(|e| FetchFailure::new(e.class(), e.to_string())),
        )
    }
}

/// The EC2 instance role through IMDSv2 (token, role name, credentials: up to five calls).
pub struct ImdsProvider {
    client: ImdsClient,
}

impl ImdsProvider {
    pub fn new(client: ImdsClient) -> Self {
        ImdsProvider { client }
    }
}

impl CredentialProvider for ImdsProvider {
    fn kind(&self) -> CredentialFetcher {
        CredentialFetcher::Imds
    }

    fn describe(&self) -> String {
        match self.client.role() {
            Some(role) => format!("IMDS instance role {role}"),
            None => "IMDS instance role".to_string(),
        }
    }

    fn cluster(&self) -> &str {
        &self.client.settings().cluster
    }

    fn answer_limit(&self) -> usize {
        MAX_AMBIENT_ANSWER_BYTES
    }

    fn policy(&self) -> RefreshPolicy {
        RefreshPolicy::for_calls(self.client.settings().timeout, MAX_CALLS_PER_FETCH)
    }

    fn max_lifetime(&self) -> Duration {
        MAX_AMBIENT_LIFETIME
    }

    fn start(
        &mut self,
        _signer: Option<&Credentials>,
        now: SystemTime,
    ) -> Result<OutboundRequest, FetchFailure> {
        Ok(self.client.start(crate::credentials::state::epoch_ms(now)))
    }

    fn on_answer(&mut self, answer: &InvokeAnswer, now: SystemTime) -> Progress {
        let now_ms = crate::credentials::state::epoch_ms(now);
        match self.client.on_answer(
            answer.status,
            answer.header(TTL_HEADER),
            &answer.body,
            now_ms,
        ) {
            ImdsProgress::Next(request) => Progress::Next(request),
            ImdsProgress::Done(outcome) => {
                Progress::Done(outcome.map_err(|e| FetchFailure::new(e.class(), e.to_string())))
            }
        }
    }

    fn abort(&mut self) {
        self.client.abort();
    }

    fn session(&self) -> Option<Vec<u8>> {
        Some(self.client.export_session())
    }

    fn restore_session(&mut self, bytes: &[u8]) {
        self.client.import_session(bytes);
    }
}

/// The container credentials endpoint (ECS task role, EKS Pod Identity).
pub struct ContainerProvider {
    settings: ContainerSettings,
}

impl ContainerProvider {
    pub fn new(settings: ContainerSettings) -> Self {
        ContainerProvider { settings }
    }
}

impl CredentialProvider for ContainerProvider {
    fn kind(&self) -> CredentialFetcher {
        CredentialFetcher::Container
    }

    fn describe(&self) -> String {
        format!("container credentials {}", self.settings.uri)
    }

    fn cluster(&self) -> &str {
        &self.settings.cluster
    }

    fn answer_limit(&self) -> usize {
        MAX_AMBIENT_ANSWER_BYTES
    }

    fn policy(&self) -> RefreshPolicy {
        RefreshPolicy::for_calls(self.settings.timeout, 1)
    }

    fn max_lifetime(&self) -> Duration {
        MAX_AMBIENT_LIFETIME
    }

    fn start(
        &mut self,
        _signer: Option<&Credentials>,
        _now: SystemTime,
    ) -> Result<OutboundRequest, FetchFailure> {
        Ok(container::build_request(&self.settings))
    }

    fn on_answer(&mut self, answer: &InvokeAnswer, _now: SystemTime) -> Progress {
        Progress::Done(
            container::parse_answer(answer.status, &answer.body)
                .map_err(|e| FetchFailure::new(e.class(), e.to_string())),
        )
    }
}
