//! What every fetching credential provider (STS AssumeRole, IMDSv2, the container endpoint)
//! offers the cache: a request to start a fetch, the next step for each answer, and the
//! facts the cache needs to run it (cluster, answer limit, refresh policy, lifetime bound).
//! Static and environment keys fetch nothing: they are plain [`Credentials`] values, and
//! the `chain` source is decided once, at configure time. One provider per file:
//! [`crate::credentials::assume_role`], [`crate::credentials::imds_provider`],
//! [`crate::credentials::container_provider`].

use std::time::{Duration, SystemTime};

use crate::credentials::failure::FailureClass;
use crate::credentials::state::RefreshPolicy;
use crate::credentials::sts::TemporaryCredentials;
use crate::credentials::Credentials;
use crate::http::CallAnswer;
use crate::http::OutboundRequest;

/// Ambient credentials (IMDS, container) are trusted for at most this long, whatever their
/// `Expiration` says (the SDKs refresh instance credentials within hours).
pub(crate) const MAX_AMBIENT_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Which fetcher a credential refresh came from (the per-source metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CredentialFetcher {
    Sts,
    WebIdentity,
    Imds,
    Container,
}

/// Why a fetch gave no credentials: a failure class (`sts_access_denied`, …, shared with
/// the 503 given to waiting requests) and a message without secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FetchFailure {
    pub class: FailureClass,
    pub message: String,
}

impl FetchFailure {
    pub(crate) fn new(class: FailureClass, message: impl Into<String>) -> Self {
        FetchFailure {
            class,
            message: message.into(),
        }
    }
}

/// What an answer leads to: another call of the same fetch, or its end.
#[derive(Debug)]
pub(crate) enum Progress {
    Next(OutboundRequest),
    Done(Result<TemporaryCredentials, FetchFailure>),
}

pub(crate) trait CredentialProvider {
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
    fn on_answer(&mut self, answer: &CallAnswer, now: SystemTime) -> Progress;
    /// The call in flight was never dispatched, or its answer is not read.
    fn abort(&mut self) {}
    /// State worth handing to the next VM that fetches (the IMDS session token), if any.
    fn session(&self) -> Option<Vec<u8>> {
        None
    }
    fn restore_session(&mut self, _bytes: &[u8]) {}
}
