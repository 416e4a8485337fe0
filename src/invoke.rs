//! Builds the signed Lambda Invoke request. Only headers we set are signed and sent, so
//! nothing the client sent reaches the Lambda API.

use std::time::SystemTime;

use crate::aws::sigv4::{RequestToSign, SigningError, SigningKeyCache};
use crate::config::{InvocationType, InvokeTarget};
use crate::credentials::Credentials;
use crate::http::{HeaderList, OutboundRequest};

thread_local! {
    /// The Invoke's SigV4 signing key, derived once per day, credentials and region rather
    /// than per request. A memo of a pure derivation: the Wasm VM is single-threaded, so one
    /// per VM.
    static INVOKE_SIGNER: SigningKeyCache = SigningKeyCache::new();
}

pub(crate) const INVOKE_CONTENT_TYPE: &str = "application/json";

/// Room for an Invoke's headers (pseudo-headers, signed headers, the trace id), so that the
/// list is allocated once; a session token (up to ~1 KB) grows the text once.
const INVOKE_HEADER_PAIRS: usize = 14;
const INVOKE_HEADER_TEXT: usize = 768;

pub fn build_invoke(
    target: &InvokeTarget,
    cluster: &str,
    credentials: &Credentials,
    payload: Vec<u8>,
    now: SystemTime,
) -> Result<OutboundRequest, SigningError> {
    build(
        target,
        &target.invoke_path,
        cluster,
        credentials,
        payload,
        now,
    )
}

/// The `InvokeWithResponseStream` request of a `response_stream` target (the buffered
/// Invoke for any other): same headers and signing, the streaming path.
pub(crate) fn build_stream_invoke(
    target: &InvokeTarget,
    cluster: &str,
    credentials: &Credentials,
    payload: Vec<u8>,
    now: SystemTime,
) -> Result<OutboundRequest, SigningError> {
    let path = target.stream_path.as_ref().unwrap_or(&target.invoke_path);
    build(target, path, cluster, credentials, payload, now)
}

fn build(
    target: &InvokeTarget,
    path: &str,
    cluster: &str,
    credentials: &Credentials,
    payload: Vec<u8>,
    now: SystemTime,
) -> Result<OutboundRequest, SigningError> {
    let invocation_type = target.invocation_type.header_value();
    let mut to_sign = vec![
        ("content-type", INVOKE_CONTENT_TYPE),
        ("x-amz-invocation-type", invocation_type),
    ];
    // Lambda takes log tail and client context for synchronous invocations only.
    if target.invocation_type == InvocationType::RequestResponse {
        if let Some(context) = &target.client_context {
            to_sign.push(("x-amz-client-context", context));
        }
        if target.log_tail {
            to_sign.push(("x-amz-log-type", "Tail"));
        }
    }
    let request = RequestToSign {
        method: "POST",
        host: &target.endpoint,
        path_and_query: path,
        headers: &to_sign,
        body: &payload,
        content_sha256_header: true,
    };
    let signature_headers = INVOKE_SIGNER
        .with(|signer| signer.sign(&request, credentials, &target.region, "lambda", now))?;
    let mut headers = HeaderList::with_capacity(INVOKE_HEADER_PAIRS, INVOKE_HEADER_TEXT);
    headers.push(":method", "POST");
    headers.push(":path", path);
    headers.push(":authority", &target.endpoint);
    for (name, value) in &to_sign {
        headers.push(name, value);
    }
    headers.push("content-length", &payload.len().to_string());
    for (name, value) in &signature_headers {
        headers.push(name, value);
    }
    Ok(OutboundRequest {
        cluster: cluster.to_string(),
        headers,
        body: payload,
        timeout: target.timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FilterConfig;
    use std::time::Duration;

    fn target(extra: &str) -> InvokeTarget {
        let json = format!(
            r#"{{"function":"my-fn","region":"us-east-1"{extra},"credentials":{{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}}}"#
        );
        FilterConfig::load(json.as_bytes(), &|_| None)
            .unwrap()
            .target
    }

    use crate::test_support::{example_credentials as credentials, fixed_time};

    #[test]
    fn invoke_request_shape() {
        let request = build_invoke(
            &target(r#","qualifier":"live","timeout_ms":2500"#),
            "lambda_cluster",
            &credentials(None),
            br#"{"a":1}"#.to_vec(),
            fixed_time(),
        )
        .unwrap();
        assert_eq!(request.cluster, "lambda_cluster");
        assert_eq!(request.timeout, Duration::from_millis(2500));
        assert_eq!(request.header(":method"), Some("POST"));
        assert_eq!(
            request.header(":path"),
            Some("/2015-03-31/functions/my-fn/invocations?Qualifier=live")
        );
        assert_eq!(
            request.header(":authority"),
            Some("lambda.us-east-1.amazonaws.com")
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            request.header("x-amz-invocation-type"),
            Some("RequestResponse")
        );
        assert_eq!(request.header("content-length"), Some("7"));
        assert_eq!(request.header("x-amz-date"), Some("20261123T100000Z"));
        assert_eq!(request.header("x-amz-security-token"), None);
        assert_eq!(request.body, br#"{"a":1}"#);
    }

    /// Pinned signature at a fixed time. Cross-checked with botocore's SigV4Auth over the
    /// same request (tests/integration verifies every live Invoke with botocore too).
    #[test]
    fn golden_signature() {
        let request = build_invoke(
            &target(""),
            "lambda",
            &credentials(Some("session-token-value")),
            br#"{"hello":"world"}"#.to_vec(),
            fixed_time(),
        )
        .unwrap();
        assert_eq!(
            request.header("x-amz-security-token"),
            Some("session-token-value")
        );
        assert_eq!(
            request.header("authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/lambda/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-invocation-type;x-amz-security-token, \
                 Signature=60934ee0f955c8b07589a6efd94ba147c3c7a70fe9bfcc09180d954021b351ca"
            )
        );
    }

    #[test]
    fn log_tail_and_client_context_are_sent_and_signed_for_sync_invokes() {
        let sync = build_invoke(
            &target(r#","log_type":"Tail","client_context":{"a":1}"#),
            "c",
            &credentials(None),
            Vec::new(),
            fixed_time(),
        )
        .unwrap();
        assert_eq!(sync.header("x-amz-log-type"), Some("Tail"));
        assert_eq!(sync.header("x-amz-client-context"), Some("eyJhIjoxfQ=="));
        let authorization = sync.header("authorization").unwrap();
        let signed: Vec<&str> = authorization
            .split("SignedHeaders=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap()
            .split(';')
            .collect();
        assert!(signed.contains(&"x-amz-client-context"), "{authorization}");
        assert!(signed.contains(&"x-amz-log-type"), "{authorization}");
        let event = build_invoke(
            &target(r#","log_type":"Tail","invocation_type":"Event""#),
            "c",
            &credentials(None),
            Vec::new(),
            fixed_time(),
        )
        .unwrap();
        assert_eq!(event.header("x-amz-log-type"), None);
    }

    #[test]
    fn stream_invoke_goes_to_the_streaming_path_signed_alike() {
        let target = target(r#","invoke_mode":"response_stream","log_type":"Tail""#);
        let stream = build_stream_invoke(
            &target,
            "c",
            &credentials(None),
            b"{}".to_vec(),
            fixed_time(),
        )
        .unwrap();
        assert_eq!(
            stream.header(":path"),
            Some("/2021-11-15/functions/my-fn/response-streaming-invocations")
        );
        assert_eq!(
            stream.header("x-amz-invocation-type"),
            Some("RequestResponse")
        );
        assert_eq!(stream.header("x-amz-log-type"), Some("Tail"));
        let buffered = build_invoke(
            &target,
            "c",
            &credentials(None),
            b"{}".to_vec(),
            fixed_time(),
        )
        .unwrap();
        assert_eq!(
            buffered.header(":path"),
            Some("/2015-03-31/functions/my-fn/invocations")
        );
        // The path is signed: the signatures differ.
        assert_ne!(
            stream.header("authorization"),
            buffered.header("authorization")
        );
    }
}
