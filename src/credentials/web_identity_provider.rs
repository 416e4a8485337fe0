//! STS AssumeRoleWithWebIdentity (IRSA) as a credential provider.

use std::time::{Duration, SystemTime};

use crate::credentials::assume_role::MAX_STS_ANSWER_BYTES;
use crate::credentials::provider::CredentialFetcher;
use crate::credentials::provider::{
    CredentialProvider, FetchFailure, Progress, MAX_AMBIENT_LIFETIME,
};
use crate::credentials::state::RefreshPolicy;
use crate::credentials::web_identity::{self, WebIdentitySettings};
use crate::credentials::Credentials;
use crate::http::CallAnswer;
use crate::http::OutboundRequest;

/// The pod's IAM role through IRSA: one unsigned STS call, the token added by the cluster.
pub(crate) struct WebIdentityProvider {
    settings: WebIdentitySettings,
}

impl WebIdentityProvider {
    pub(crate) fn new(settings: WebIdentitySettings) -> Self {
        WebIdentityProvider { settings }
    }
}

impl CredentialProvider for WebIdentityProvider {
    fn kind(&self) -> CredentialFetcher {
        CredentialFetcher::WebIdentity
    }

    fn describe(&self) -> String {
        format!("AssumeRoleWithWebIdentity {}", self.settings.role_arn)
    }

    fn cluster(&self) -> &str {
        &self.settings.cluster
    }

    fn answer_limit(&self) -> usize {
        MAX_STS_ANSWER_BYTES
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
        Ok(web_identity::build_request(&self.settings))
    }

    fn on_answer(&mut self, answer: &CallAnswer, _now: SystemTime) -> Progress {
        Progress::Done(
            web_identity::parse_answer(answer.status, &answer.body).map_err(|e| {
                let mut message = e.to_string();
                if answer.status == Some(400) {
                    // Most often no token or a stale one: say where it should come from.
                    message.push_str(&format!(
                        " (the token is added by cluster '{}''s upstream filters: examples/eks)",
                        self.settings.cluster
                    ));
                }
                FetchFailure::new(e.class(), message)
            }),
        )
    }
}
