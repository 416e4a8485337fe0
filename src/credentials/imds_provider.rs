//! The EC2 instance role (IMDSv2) as a credential provider.

use std::time::{Duration, SystemTime};

use crate::credentials::ambient::MAX_AMBIENT_ANSWER_BYTES;
use crate::credentials::imds::{ImdsClient, ImdsProgress, MAX_CALLS_PER_FETCH, TTL_HEADER};
use crate::credentials::provider::CredentialFetcher;
use crate::credentials::provider::{
    CredentialProvider, FetchFailure, Progress, MAX_AMBIENT_LIFETIME,
};
use crate::credentials::state::{epoch_ms, RefreshPolicy};
use crate::credentials::Credentials;
use crate::http::CallAnswer;
use crate::http::OutboundRequest;

/// The EC2 instance role through IMDSv2 (token, role name, credentials: up to five calls).
pub(crate) struct ImdsProvider {
    client: ImdsClient,
}

impl ImdsProvider {
    pub(crate) fn new(client: ImdsClient) -> Self {
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
        Ok(self.client.start(epoch_ms(now)))
    }

    fn on_answer(&mut self, answer: &CallAnswer, now: SystemTime) -> Progress {
        let now_ms = epoch_ms(now);
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
