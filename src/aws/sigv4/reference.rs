//! `aws-sigv4`'s full signer with its default settings: the reference the tests hold
//! [`super::SigningKeyCache`] to, byte for byte.

use std::time::SystemTime;

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::aws::credentials::Credentials;

use super::request::*;

/// The reference signer: `aws-sigv4`'s full signer with its default settings (the path
/// encoded again, normalized). Returns the headers to add: `authorization`, `x-amz-date`,
/// `x-amz-content-sha256` and, with a session token, `x-amz-security-token` (all signed).
pub fn sign_request(
    request: &RequestToSign<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<Vec<(&'static str, String)>, SigningError> {
    reference_sign(
        request,
        SignableBody::Bytes(request.body),
        credentials,
        region,
        service,
        now,
    )
}

pub(super) fn reference_sign(
    request: &RequestToSign<'_>,
    body: SignableBody<'_>,
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
    let signable = SignableRequest::new(request.method, uri.as_str(), headers.into_iter(), body)
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
