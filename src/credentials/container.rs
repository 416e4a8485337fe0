//! The container credentials endpoint (ECS task roles, EKS Pod Identity), located as the
//! AWS SDKs do, from the VM environment:
//!
//! - `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (ECS): `http://169.254.170.2<relative URI>`;
//! - else `AWS_CONTAINER_CREDENTIALS_FULL_URI` (EKS Pod Identity:
//!   `http://169.254.170.23/v1/credentials`): over `http` only a loopback address or the ECS
//!   and EKS link-local addresses are allowed, any host over `https`;
//! - `AWS_CONTAINER_AUTHORIZATION_TOKEN`, when set, is sent as `Authorization`. The VM
//!   cannot read files, so `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` alone is refused at
//!   configure time with a pointer to docs/ambient-credentials.md.
//!
//! The request goes to the `container_cluster`; the URI's host is only the `:authority`.

use std::time::Duration;

use crate::credentials::ambient::{parse_credentials_json, AmbientError};
use crate::credentials::sts::TemporaryCredentials;
use crate::http::OutboundRequest;
use crate::secret::Secret;

pub(crate) const ENV_RELATIVE_URI: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
pub(crate) const ENV_FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
pub(crate) const ENV_AUTHORIZATION_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
pub(crate) const ENV_AUTHORIZATION_TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
/// The ECS credentials endpoint, for the relative URI.
pub(crate) const ECS_HOST: &str = "169.254.170.2";
/// Where and how to ask for the container's credentials. `Debug` redacts the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSettings {
    pub cluster: String,
    /// The URI as configured (for logs; it carries no secret).
    pub uri: String,
    /// The Host sent.
    pub authority: String,
    pub path: String,
    pub authorization: Option<Secret>,
    /// Timeout of the call.
    pub timeout: Duration,
}

/// The `GET` of the credentials.
pub(crate) fn build_request(settings: &ContainerSettings) -> OutboundRequest {
    let mut headers = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), settings.path.clone()),
        (":authority".to_string(), settings.authority.clone()),
        ("accept".to_string(), "application/json".to_string()),
    ];
    if let Some(token) = &settings.authorization {
        headers.push(("authorization".to_string(), token.expose().to_string()));
    }
    OutboundRequest {
        cluster: settings.cluster.clone(),
        headers: headers.into(),
        body: Vec::new(),
        timeout: settings.timeout,
    }
}

/// The endpoint's answer: 200 with the credentials JSON, or a failure (401/403: the
/// authorization token is wrong → `sts_invalid_credentials`/`sts_access_denied`; other 4xx
/// → `sts_rejected`; none or 5xx → `sts_unavailable`).
pub fn parse_answer(
    status: Option<u16>,
    body: &[u8],
) -> Result<TemporaryCredentials, AmbientError> {
    match status {
        Some(200) => parse_credentials_json("the container credentials endpoint", body),
        _ => Err(AmbientError::of_answer(
            "the container credentials endpoint",
            status,
            body,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn answers() {
        let ok = br#"{"AccessKeyId":"ASIACONTAINER00001","Expiration":"2026-11-23T10:00:00Z","RoleArn":"arn:aws:iam::123456789012:role/task","SecretAccessKey":"s","Token":"t"}"#;
        assert_eq!(
            parse_answer(Some(200), ok)
                .unwrap()
                .credentials
                .access_key_id,
            "ASIACONTAINER00001"
        );
        let cases = [
            (None, "sts_unavailable"),
            (Some(401), "sts_invalid_credentials"),
            (Some(403), "sts_access_denied"),
            (Some(404), "sts_rejected"),
            (Some(400), "sts_rejected"),
            (Some(429), "sts_throttled"),
            (Some(500), "sts_unavailable"),
            (Some(502), "sts_unavailable"),
            (Some(204), "sts_bad_response"),
        ];
        for (status, class) in cases {
            let e = parse_answer(status, b"").unwrap_err();
            assert_eq!(e.class(), class, "{status:?}");
        }
        let e = parse_answer(Some(200), b"{}").unwrap_err();
        assert_eq!(e.class(), "sts_bad_response");
    }
}
