//! AWS credentials: the keys that sign, and the providers that fetch temporary ones
//! (STS AssumeRole, IMDSv2, the container endpoint) with the cache every worker VM shares.

pub mod ambient;
pub mod assume_role;
pub mod cache;
pub mod container;
pub mod container_provider;
pub mod identity;
pub mod imds;
pub mod imds_provider;
pub mod provider;
pub mod source;
pub mod state;
pub mod sts;

use crate::secret::Secret;

/// Static credentials: from the plugin configuration or the VM environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secret_and_token() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("very-secret-key"),
            session_token: Some(Secret::new("very-secret-token")),
        };
        let printed = format!("{creds:?}");
        assert!(printed.contains("AKIDEXAMPLE"));
        assert!(!printed.contains("very-secret"));
    }
}
