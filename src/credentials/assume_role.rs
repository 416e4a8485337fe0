//! STS AssumeRole as a credential provider: signed with static keys, or with the layer
//! below (role chaining).

use std::time::{Duration, SystemTime};

use crate::credentials::ambient::Failure;
use crate::credentials::provider::CredentialFetcher;
use crate::credentials::provider::{CredentialProvider, FetchFailure, Progress};
use crate::credentials::state::RefreshPolicy;
use crate::credentials::sts::{
    build_assume_role_request, parse_assume_role_answer, AssumeRoleSettings,
};
use crate::credentials::Credentials;
use crate::http::CallAnswer;
use crate::http::OutboundRequest;

/// The largest AssumeRole answer read into the VM (real ones are a few KB); a larger one is
/// a bad response, left unread.
pub(crate) const MAX_STS_ANSWER_BYTES: usize = 64 * 1024;

/// STS AssumeRole, signed with static keys or with the layer below.
pub(crate) struct AssumeRoleProvider {
    settings: AssumeRoleSettings,
    /// `None`: signed with the layer below's credentials.
    keys: Option<Credentials>,
}

impl AssumeRoleProvider {
    pub(crate) fn new(settings: AssumeRoleSettings, keys: Option<Credentials>) -> Self {
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
                Failure::Unavailable,
                "no source credentials to sign AssumeRole with",
            )
        })?;
        build_assume_role_request(&self.settings, keys, now).map_err(|e| {
            FetchFailure::new(
                Failure::BadResponse,
                format!("could not sign AssumeRole: {e}"),
            )
        })
    }

    fn on_answer(&mut self, answer: &CallAnswer, _now: SystemTime) -> Progress {
        Progress::Done(
            parse_assume_role_answer(answer.status, &answer.body)
                .map_err(|e| FetchFailure::new(e.class(), e.to_string())),
        )
    }
}
