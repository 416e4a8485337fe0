//! Where a profile's signing credentials come from, as the configuration chose it.

use std::time::Duration;

use crate::credentials::container::ContainerSettings;
use crate::credentials::imds::ImdsSettings;
use crate::credentials::sts::AssumeRoleSettings;
use crate::credentials::web_identity::WebIdentitySettings;
use crate::credentials::Credentials;

/// Where the Invoke's signing credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// Long-lived (or externally rotated) keys from the configuration or the VM environment.
    Static(Credentials),
    /// Temporary credentials from STS AssumeRole, fetched with the `source` credentials.
    AssumeRole {
        source: Credentials,
        settings: AssumeRoleSettings,
    },
    /// Temporary credentials from the instance role (IMDSv2) or the container endpoint,
    /// used as they are or as the source identity of an AssumeRole (role chaining).
    Ambient {
        provider: AmbientProvider,
        assume_role: Option<AssumeRoleSettings>,
        /// How long a request may wait for credentials (`assume_role.max_wait_ms` when
        /// chaining, else `credentials.max_wait_ms`).
        max_wait: Duration,
    },
}

/// An endpoint that hands out the deployment's own temporary credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmbientProvider {
    Imds(ImdsSettings),
    Container(ContainerSettings),
    /// IRSA: STS AssumeRoleWithWebIdentity, the token added by the cluster.
    WebIdentity(WebIdentitySettings),
}

impl AmbientProvider {
    /// The source name used in logs and metrics: `imds`, `container` or `web_identity`.
    pub fn name(&self) -> &'static str {
        match self {
            AmbientProvider::Imds(_) => "imds",
            AmbientProvider::Container(_) => "container",
            AmbientProvider::WebIdentity(_) => "web_identity",
        }
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        match self {
            AmbientProvider::Imds(s) => s.timeout,
            AmbientProvider::Container(s) => s.timeout,
            AmbientProvider::WebIdentity(s) => s.timeout,
        }
    }
}

/// A credentials profile: the top-level `credentials` ([`ProfileId::DEFAULT`], named
/// `default`) or one of `credential_profiles`, by its place in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(pub usize);

impl ProfileId {
    pub const DEFAULT: ProfileId = ProfileId(0);
}

/// The name of the top-level `credentials` as a profile.
pub(crate) const DEFAULT_PROFILE: &str = "default";
