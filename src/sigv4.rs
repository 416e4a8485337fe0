//! SigV4 signing through the `aws-sigv4` crate. Time is passed in (the host clock).

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::credentials::Credentials;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningError(String);

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signing failed: {}", self.0)
    }
}

/// One request to sign: `host` is the Host header that will be sent, `path_and_query` is
/// already percent-encoded as it goes on the wire, `headers` are the other headers to sign
/// (lower-case names; never user-agent or hop-by-hop headers).
pub struct RequestToSign<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path_and_query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// Send and sign `x-amz-content-sha256`, so the payload hash is explicit rather than
    /// recomputed by the receiver (some AWS stand-ins hash an empty body wrongly).
    pub content_sha256_header: bool,
}

/// Returns the headers to add: `authorization`, `x-amz-date`, `x-amz-content-sha256` and,
/// with a session token, `x-amz-security-token` (all signed).
pub fn sign_request(
    request: &RequestToSign<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<Vec<(&'static str, String)>, SigningError> {
    let identity: Identity = AwsCredentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose().to_string(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        None,
        "proxy-wasm-lambda",
    )
    .into();
    let mut settings = SigningSettings::default();
    if request.content_sha256_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| SigningError(e.to_string()))?
        .into();
    let uri = format!("https://{}{}", request.host, request.path_and_query);
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(request.headers.len() + 1);
    headers.push(("host", request.host));
    headers.extend_from_slice(request.headers);
    let signable = SignableRequest::new(
        request.method,
        uri.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| SigningError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SigningError(e.to_string()))?
        .into_parts();
    let (signed_headers, _params) = instructions.into_parts();
    Ok(signed_headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::time::Duration;

    fn example_credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
        }
    }

    fn at(epoch_seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(epoch_seconds)
    }

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> &'a str {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    /// The AWS SigV4 test suite's `get-vanilla` case (2015-08-30T12:36:00Z, us-east-1,
    /// service "service").
    #[test]
    fn aws_test_suite_get_vanilla() {
        let headers = sign_request(
            &RequestToSign {
                method: "GET",
                host: "example.amazonaws.com",
                path_and_query: "/",
                headers: &[],
                body: b"",
                content_sha256_header: false,
            },
            &example_credentials(None),
            "us-east-1",
            "service",
            at(1_440_938_160),
        )
        .unwrap();
        assert_eq!(header(&headers, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&headers, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }
}
