//! Lambda's answer into the client's reply: the Invoke's answer decoded ([`decode_invoke_answer`]),
//! the function's proxy-integration response ([`proxy_response`]), and the streamed answer of
//! `InvokeWithResponseStream` ([`eventstream`] frames, the [`prelude`] that splits head from
//! body).

pub(crate) mod eventstream;
pub(crate) mod prelude;
pub(crate) mod proxy_response;
pub(crate) mod stream_error;

use serde_json::Value;

use crate::answer::proxy_response::decode_proxy_response;
use crate::config::{InvocationType, InvokeTarget, PayloadFormat};
use crate::error::RequestError;
use crate::http::CallAnswer;
use crate::http::ClientReply;

/// Longest function error message copied into the client's error body.
const MAX_MESSAGE_CHARS: usize = 1024;

/// The largest Invoke answer the filter reads: Lambda's own limit for a synchronous answer
/// (6 MB; Lambda's error names it as 6291556 bytes). Lambda never sends more, so a larger
/// answer is an upstream fault, refused without copying it into the VM.
pub(crate) const MAX_ANSWER_BYTES: usize = 6_291_556;

/// `timed_out` tells whether the Invoke's timeout had passed when the answer came.
pub fn decode_invoke_answer(
    target: &InvokeTarget,
    answer: CallAnswer,
    timed_out: bool,
) -> Result<ClientReply, RequestError> {
    let Some(status) = answer.status else {
        return Err(if timed_out {
            RequestError::UpstreamTimeout
        } else {
            RequestError::UpstreamUnavailable { status: 503 }
        });
    };
    // Envoy's own local replies (connect failure, timeout, overflow) carry no Lambda request id.
    let from_lambda =
        answer.header("x-amzn-requestid").is_some() || answer.header("x-amzn-errortype").is_some();
    if !from_lambda && (status == 503 || status == 504) {
        return Err(if status == 504 || timed_out {
            RequestError::UpstreamTimeout
        } else {
            RequestError::UpstreamUnavailable { status }
        });
    }
    if let Some(size) = answer.unread_body_bytes {
        return Err(RequestError::ResponseTooLarge {
            size,
            limit: MAX_ANSWER_BYTES,
        });
    }
    if let Some(kind) = answer.header("x-amz-function-error") {
        let message = json_string(&answer.body, &["errorMessage"]);
        return Err(RequestError::FunctionError {
            status: target.function_error_status,
            kind: kind.to_string(),
            message,
        });
    }
    match status {
        200..=299 => {
            let log_result = answer
                .header("x-amz-log-result")
                .filter(|_| target.expose_log_result)
                .map(str::to_string);
            let mut reply = match (target.invocation_type, target.payload) {
                (InvocationType::RequestResponse, PayloadFormat::Event(format)) => {
                    decode_proxy_response(format, &answer.body).map_err(|e| {
                        RequestError::BadResponse {
                            message: e.message(),
                        }
                    })
                }
                (invocation_type, _) => Ok(success(invocation_type, answer.body)),
            }?;
            if let Some(log_result) = log_result {
                reply.headers.push(("x-amz-log-result".into(), log_result));
            }
            Ok(reply)
        }
        429 => Err(RequestError::Throttled {
            retry_after: answer.header("retry-after").map(str::to_string),
            error_type: error_type(&answer),
            reason: json_string(&answer.body, &["Reason", "reason"]),
            message: json_string(&answer.body, &["message", "Message"]),
        }),
        413 => Err(RequestError::LambdaPayloadTooLarge {
            error_type: error_type(&answer),
            message: json_string(&answer.body, &["message", "Message"]),
        }),
        _ => Err(RequestError::LambdaApi {
            status,
            error_type: error_type(&answer).unwrap_or_else(|| "UnknownError".to_string()),
            message: json_string(&answer.body, &["message", "Message"])
                .or_else(|| xml_element_text(&answer.body, "Message")),
        }),
    }
}

/// For an answer whose body can go to the client as it arrives, the client's response
/// headers (`:status` first): a successful synchronous passthrough Invoke with a
/// content-length within the bound, whose payload is the response body unchanged. Every
/// other answer must be read whole and decoded.
pub(crate) fn relayable_success(
    target: &InvokeTarget,
    answer: &CallAnswer,
) -> Option<Vec<(String, String)>> {
    if answer.status != Some(200)
        || target.invocation_type != InvocationType::RequestResponse
        || target.payload != PayloadFormat::Passthrough
        || answer.header("x-amz-function-error").is_some()
    {
        return None;
    }
    // Only an answer that announces its length within the bound goes out as it arrives:
    // one without (Lambda always sends it; a stand-in may not) is read whole, so that the
    // bound is applied before anything is sent, as when the Invoke is dispatched.
    let content_length = match answer.header("content-length")?.trim().parse::<usize>() {
        Ok(length) if length <= MAX_ANSWER_BYTES => Some(length),
        _ => return None,
    };
    let reply = success(InvocationType::RequestResponse, Vec::new());
    let mut headers = Vec::with_capacity(reply.headers.len() + 3);
    headers.push((":status".to_string(), reply.status.to_string()));
    headers.extend(reply.headers);
    if let Some(length) = content_length {
        headers.push(("content-length".to_string(), length.to_string()));
    }
    if let Some(log_result) = answer
        .header("x-amz-log-result")
        .filter(|_| target.expose_log_result)
    {
        headers.push(("x-amz-log-result".to_string(), log_result.to_string()));
    }
    Some(headers)
}

fn success(invocation_type: InvocationType, payload: Vec<u8>) -> ClientReply {
    match invocation_type {
        InvocationType::RequestResponse => ClientReply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: payload,
        },
        InvocationType::Event => ClientReply {
            status: 202,
            headers: Vec::new(),
            body: Vec::new(),
        },
        InvocationType::DryRun => ClientReply {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        },
    }
}

/// The AWS error type: `x-amzn-errortype` (without its `:namespace` suffix), else the JSON
/// `__type` (without its `namespace#` prefix) or `code`, else the `<Code>` of an XML error
/// document (what AWS query-protocol front ends and some stand-ins answer).
fn error_type(answer: &CallAnswer) -> Option<String> {
    if let Some(header) = answer.header("x-amzn-errortype") {
        let name = header.split(':').next().unwrap_or(header).trim();
        if !name.is_empty() {
            return Some(name.to_string());
        }
    }
    let from_body = json_string(&answer.body, &["__type", "code", "Code"])
        .or_else(|| xml_element_text(&answer.body, "Code"))?;
    let name = from_body.rsplit('#').next().unwrap_or(&from_body).trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn xml_element_text(body: &[u8], element: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let document = crate::aws::xml::XmlElements::parse(text, "")?;
    let found = document.first_text(element)?;
    Some(found.chars().take(MAX_MESSAGE_CHARS).collect())
}

fn json_string(body: &[u8], keys: &[&str]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    keys.iter().find_map(|key| {
        object
            .get(*key)
            .and_then(Value::as_str)
            .map(|s| s.chars().take(MAX_MESSAGE_CHARS).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FilterConfig;

    fn target(extra: &str) -> InvokeTarget {
        let json = format!(
            r#"{{"function":"f","region":"us-east-1"{extra},"credentials":{{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}}}"#
        );
        FilterConfig::load(json.as_bytes(), &|_| None)
            .unwrap()
            .target
    }

    use crate::test_support::call_answer as answer;

    const LAMBDA_HEADERS: [(&str, &str); 4] = [
        ("content-type", "application/json"),
        ("x-amzn-requestid", "abc"),
        ("x-amz-executed-version", "$LATEST"),
        ("x-amzn-trace-id", "root=1"),
    ];

    #[test]
    fn success_returns_payload_and_drops_lambda_headers() {
        let reply = decode_invoke_answer(
            &target(""),
            answer(200, &LAMBDA_HEADERS, r#"{"ok":1}"#),
            false,
        )
        .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, br#"{"ok":1}"#);
        assert_eq!(
            reply.headers,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
    }

    #[test]
    fn event_is_202_and_dry_run_is_204_with_empty_bodies() {
        let event = decode_invoke_answer(
            &target(r#","invocation_type":"Event""#),
            answer(202, &LAMBDA_HEADERS, ""),
            false,
        )
        .unwrap();
        assert_eq!((event.status, event.body.len()), (202, 0));
        let dry = decode_invoke_answer(
            &target(r#","invocation_type":"DryRun""#),
            answer(204, &LAMBDA_HEADERS, ""),
            false,
        )
        .unwrap();
        assert_eq!((dry.status, dry.body.len()), (204, 0));
    }

    #[test]
    fn function_error_uses_configured_status_and_error_message() {
        let err = decode_invoke_answer(
            &target(r#","function_error_status":500"#),
            answer(
                200,
                &[
                    ("X-Amz-Function-Error", "Handled"),
                    ("x-amzn-requestid", "r"),
                ],
                r#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}"#,
            ),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err,
            RequestError::FunctionError {
                status: 500,
                kind: "Handled".into(),
                message: Some("boom".into())
            }
        );
    }

    #[test]
    fn function_error_with_non_json_payload_has_no_message() {
        let err = decode_invoke_answer(
            &target(""),
            answer(200, &[("x-amz-function-error", "Unhandled")], "not json"),
            false,
        )
        .unwrap_err();
        assert_eq!(err.status(), 502);
        assert!(matches!(
            err,
            RequestError::FunctionError { message: None, .. }
        ));
    }

    #[test]
    fn throttling_keeps_retry_after_and_reason() {
        let err = decode_invoke_answer(
            &target(""),
            answer(
                429,
                &[
                    ("x-amzn-requestid", "r"),
                    ("x-amzn-errortype", "TooManyRequestsException:http://internal.amazon.com/"),
                    ("Retry-After", "7"),
                ],
                r#"{"Type":"User","message":"Rate exceeded","Reason":"ConcurrentInvocationLimitExceeded"}"#,
            ),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err,
            RequestError::Throttled {
                retry_after: Some("7".into()),
                error_type: Some("TooManyRequestsException".into()),
                reason: Some("ConcurrentInvocationLimitExceeded".into()),
                message: Some("Rate exceeded".into()),
            }
        );
    }

    #[test]
    fn lambda_413_is_413() {
        let err = decode_invoke_answer(
            &target(""),
            answer(
                413,
                &[("x-amzn-errortype", "RequestTooLargeException")],
                "{}",
            ),
            false,
        )
        .unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn api_errors_are_502_with_the_aws_type() {
        let cases = [
            (
                answer(404, &[("x-amzn-errortype", "ResourceNotFoundException")], r#"{"Type":"User","message":"Function not found"}"#),
                "ResourceNotFoundException",
            ),
            (
                answer(403, &[("x-amzn-requestid", "r")], r#"{"__type":"com.amazon.coral.service#InvalidSignatureException","message":"sig"}"#),
                "InvalidSignatureException",
            ),
            (
                answer(403, &[("x-amzn-requestid", "r")], r#"{"code":"AccessDeniedException"}"#),
                "AccessDeniedException",
            ),
            (answer(500, &[("x-amzn-requestid", "r")], "<html>"), "UnknownError"),
            (
                answer(403, &[], "<?xml version=\"1.0\"?><ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error></Errors></ErrorResponse>"),
                "SignatureDoesNotMatch",
            ),
            (answer(503, &[("x-amzn-errortype", "ServiceException")], "{}"), "ServiceException"),
        ];
        for (answer, expected) in cases {
            let err = decode_invoke_answer(&target(""), answer.clone(), false).unwrap_err();
            assert_eq!(err.status(), 502, "{answer:?}");
            match err {
                RequestError::LambdaApi { error_type, .. } => assert_eq!(error_type, expected),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn envoy_local_replies_keep_their_status() {
        let timeout = decode_invoke_answer(
            &target(""),
            answer(
                504,
                &[("content-type", "text/plain")],
                "upstream request timeout",
            ),
            true,
        )
        .unwrap_err();
        assert_eq!(timeout, RequestError::UpstreamTimeout);
        assert_eq!(timeout.status(), 504);
        let unavailable = decode_invoke_answer(
            &target(""),
            answer(
                503,
                &[],
                "upstream connect error or disconnect/reset before headers",
            ),
            false,
        )
        .unwrap_err();
        assert_eq!(
            unavailable,
            RequestError::UpstreamUnavailable { status: 503 }
        );
    }

    #[test]
    fn no_answer_is_timeout_or_unavailable() {
        let none = CallAnswer::default();
        assert_eq!(
            decode_invoke_answer(&target(""), none.clone(), true).unwrap_err(),
            RequestError::UpstreamTimeout
        );
        assert_eq!(
            decode_invoke_answer(&target(""), none, false).unwrap_err(),
            RequestError::UpstreamUnavailable { status: 503 }
        );
    }

    #[test]
    fn answers_over_lambdas_limit_are_refused_whatever_they_say() {
        let oversized = |status, headers: &[(&str, &str)]| CallAnswer {
            unread_body_bytes: Some(MAX_ANSWER_BYTES + 1),
            ..answer(status, headers, "")
        };
        for (format, answer) in [
            ("", oversized(200, &LAMBDA_HEADERS)),
            (r#","payload":"apigw_v2""#, oversized(200, &LAMBDA_HEADERS)),
            ("", oversized(200, &[("x-amz-function-error", "Unhandled")])),
            (
                "",
                oversized(500, &[("x-amzn-errortype", "ServiceException")]),
            ),
        ] {
            let err = decode_invoke_answer(&target(format), answer, false).unwrap_err();
            assert_eq!(
                err,
                RequestError::ResponseTooLarge {
                    size: MAX_ANSWER_BYTES + 1,
                    limit: MAX_ANSWER_BYTES
                }
            );
            assert_eq!(err.status(), 502);
            assert_eq!(err.class(), "response_too_large");
        }
        // No answer at all stays a timeout or an unreachable endpoint.
        let reset = CallAnswer {
            unread_body_bytes: Some(MAX_ANSWER_BYTES + 1),
            ..CallAnswer::default()
        };
        assert_eq!(
            decode_invoke_answer(&target(""), reset, false).unwrap_err(),
            RequestError::UpstreamUnavailable { status: 503 }
        );
    }

    #[test]
    fn log_result_reaches_the_client_only_when_exposed() {
        let headers = [("x-amzn-requestid", "r"), ("x-amz-log-result", "U1RBUlQ=")];
        let hidden = decode_invoke_answer(
            &target(r#","log_type":"Tail""#),
            answer(200, &headers, "{}"),
            false,
        )
        .unwrap();
        assert_eq!(hidden.header("x-amz-log-result"), None);
        let shown = decode_invoke_answer(
            &target(r#","log_type":"Tail","expose_log_result":true"#),
            answer(200, &headers, "{}"),
            false,
        )
        .unwrap();
        assert_eq!(shown.header("x-amz-log-result"), Some("U1RBUlQ="));
    }
}
