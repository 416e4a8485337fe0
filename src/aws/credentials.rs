//! AWS credentials: the keys that sign. `Debug` redacts the secret parts.

use crate::secret::Secret;

/// Static credentials: from the plugin configuration or the VM environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

pub(crate) const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub(crate) const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub(crate) const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

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
