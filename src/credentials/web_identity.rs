//! STS AssumeRoleWithWebIdentity (IRSA on EKS): the settings, the request and the answer.
//!
//! The token lives in a file the kubelet rotates (`AWS_WEB_IDENTITY_TOKEN_FILE`), which the
//! Wasm VM cannot read. So the filter sends the call without it, unsigned as the AWS SDKs
//! do, as a `GET` with the parameters in the query, and the cluster's upstream filters add
//! the file's current content as `WebIdentityToken` (credential_injector from a file-watched
//! SDS secret, then header_mutation: docs/ambient-credentials.md, examples/eks).

use std::time::Duration;

use crate::credentials::sts::{parse_sts_answer, StsError, TemporaryCredentials, STS_API_VERSION};
use crate::http::OutboundRequest;

pub(crate) const ENV_ROLE_ARN: &str = "AWS_ROLE_ARN";
pub(crate) const ENV_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
pub(crate) const ENV_SESSION_NAME: &str = "AWS_ROLE_SESSION_NAME";
const ACTION: &str = "AssumeRoleWithWebIdentity";

/// Where and as whom to call AssumeRoleWithWebIdentity. No secret: the token is added by
/// the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebIdentitySettings {
    /// The cluster whose upstream filters add the token.
    pub cluster: String,
    /// The Host sent (a regional STS endpoint).
    pub endpoint: String,
    pub role_arn: String,
    pub session_name: String,
    /// Timeout of the call.
    pub timeout: Duration,
}

/// The `GET /?Action=AssumeRoleWithWebIdentity&…` without the token (encoded as the SDKs'
/// query serializer does: `:` as `%3A`, `/` as `%2F`).
pub(crate) fn build_request(settings: &WebIdentitySettings) -> OutboundRequest {
    let query = form_urlencoded::Serializer::for_suffix(String::from("/?"), 2)
        .append_pair("Action", ACTION)
        .append_pair("Version", STS_API_VERSION)
        .append_pair("RoleArn", &settings.role_arn)
        .append_pair("RoleSessionName", &settings.session_name)
        .finish();
    OutboundRequest {
        cluster: settings.cluster.clone(),
        headers: vec![
            (":method".to_string(), "GET".to_string()),
            (":path".to_string(), query),
            (":authority".to_string(), settings.endpoint.clone()),
        ]
        .into(),
        body: Vec::new(),
        timeout: settings.timeout,
    }
}

/// The answer: credentials, or the STS error (`InvalidIdentityToken` when no token or an
/// old one arrived).
pub(crate) fn parse_answer(
    status: Option<u16>,
    body: &[u8],
) -> Result<TemporaryCredentials, StsError> {
    parse_sts_answer(ACTION, status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WebIdentitySettings {
        WebIdentitySettings {
            cluster: "sts_web_identity".into(),
            endpoint: "sts.eu-west-1.amazonaws.com".into(),
            role_arn: "arn:aws:iam::123456789012:role/gateway/irsa".into(),
            session_name: "proxy-wasm-lambda".into(),
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn request_is_an_unsigned_get_without_the_token() {
        let request = build_request(&settings());
        assert_eq!(request.cluster, "sts_web_identity");
        assert_eq!(request.header(":method"), Some("GET"));
        assert_eq!(
            request.header(":authority"),
            Some("sts.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            request.header(":path"),
            Some(
                "/?Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fgateway%2Firsa&RoleSessionName=proxy-wasm-lambda"
            )
        );
        assert_eq!(request.header("authorization"), None);
        assert!(!request
            .header(":path")
            .unwrap()
            .contains("WebIdentityToken"));
        assert!(request.body.is_empty());
    }

    #[test]
    fn answers() {
        let ok = br#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:gw:envoy</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <Credentials>
      <AccessKeyId>ASIAWEBIDENTITY00001</AccessKeyId>
      <SecretAccessKey>secret</SecretAccessKey>
      <SessionToken>token</SessionToken>
      <Expiration>2026-12-07T10:00:00Z</Expiration>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;
        let credentials = parse_answer(Some(200), ok).unwrap();
        assert_eq!(
            credentials.credentials.access_key_id,
            "ASIAWEBIDENTITY00001"
        );
        // An AssumeRole answer is not the answer to this call.
        let assume_role = br#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2026-12-07T10:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>"#;
        assert_eq!(
            parse_answer(Some(200), assume_role).unwrap_err().class(),
            "sts_bad_response"
        );
        let error = |code: &str, status: u16| {
            let body = format!(
                r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>m</Message></Error></ErrorResponse>"#
            );
            parse_answer(Some(status), body.as_bytes())
                .unwrap_err()
                .class()
        };
        assert_eq!(
            error("InvalidIdentityToken", 400),
            "sts_invalid_credentials"
        );
        assert_eq!(error("ExpiredTokenException", 400), "sts_expired_token");
        assert_eq!(error("IDPRejectedClaim", 403), "sts_access_denied");
        assert_eq!(error("AccessDenied", 403), "sts_access_denied");
        assert_eq!(error("IDPCommunicationError", 400), "sts_unavailable");
        assert_eq!(error("ValidationError", 400), "sts_rejected");
        assert_eq!(
            parse_answer(None, b"").unwrap_err().class(),
            "sts_unavailable"
        );
    }
}
