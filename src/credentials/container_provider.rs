//! The container credentials endpoint (ECS, EKS Pod Identity) as a credential provider.

use std::time::{Duration, SystemTime};

use crate::credentials::ambient::MAX_AMBIENT_ANSWER_BYTES;
use crate::credentials::container::{self, ContainerSettings};
use crate::credentials::provider::CredentialFetcher;
use crate::credentials::provider::{
    CredentialProvider, FetchFailure, Progress, MAX_AMBIENT_LIFETIME,
};
use crate::credentials::state::RefreshPolicy;
use crate::credentials::Credentials;
use crate::http::CallAnswer;
use crate::http::OutboundRequest;

/// The container credentials endpoint (ECS task role, EKS Pod Identity).
pub(crate) struct ContainerProvider {
    settings: ContainerSettings,
}

impl ContainerProvider {
    pub(crate) fn new(settings: ContainerSettings) -> Self {
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

    fn on_answer(&mut self, answer: &CallAnswer, _now: SystemTime) -> Progress {
        Progress::Done(
            container::parse_answer(answer.status, &answer.body)
                .map_err(|e| FetchFailure::new(e.class(), e.to_string())),
        )
    }
}
