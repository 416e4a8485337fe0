//! Every way a request can fail, and the one place that maps each to a client status and
//! JSON body. Bodies never carry secrets.

use std::fmt;

use serde_json::{json, Map, Value};

use crate::aws::sigv4::SigningError;
use crate::config::{json_text, ConfigError};
use crate::credentials::cache::NoCredentials;
use crate::credentials::failure::FailureClass;
use crate::http::ClientReply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The request body is over Lambda's limit for the invocation type.
    PayloadTooLarge {
        limit: u64,
    },
    /// The route's metadata override does not validate.
    RouteConfigInvalid(ConfigError),
    /// The route has no cluster and the configuration names none.
    NoCluster,
    Signing(SigningError),
    /// The host refused to dispatch the Invoke (e.g. unknown cluster).
    DispatchFailed {
        cluster: String,
    },
    /// Lambda ran the function and it failed (`X-Amz-Function-Error`).
    FunctionError {
        status: u16,
        kind: String,
        message: Option<String>,
    },
    /// Lambda answered 429.
    Throttled {
        retry_after: Option<String>,
        error_type: Option<String>,
        reason: Option<String>,
        message: Option<String>,
    },
    /// Lambda answered 413.
    LambdaPayloadTooLarge {
        error_type: Option<String>,
        message: Option<String>,
    },
    /// Any other Lambda API error (4xx/5xx from the Lambda service).
    LambdaApi {
        status: u16,
        error_type: String,
        message: Option<String>,
    },
    /// No usable credentials within the wait bound; `class` names the last credential
    /// failure (`sts_unavailable`, `sts_access_denied`, …).
    CredentialsUnavailable {
        class: FailureClass,
        message: String,
    },
    /// The function's answer is not a valid proxy-integration response for the format.
    BadResponse {
        message: String,
    },
    /// Lambda's answer is larger than Lambda ever sends (`size` bytes, over `limit`): an
    /// upstream fault; the body was not read.
    ResponseTooLarge {
        size: usize,
        limit: usize,
    },
    /// No answer within the Invoke's timeout.
    UpstreamTimeout,
    /// Envoy could not reach the Lambda endpoint (connect failure, reset, overflow).
    UpstreamUnavailable {
        status: u16,
    },
    /// A request forwarded in place ended before Lambda's whole answer came (the route's
    /// timeout, an upstream reset or connect failure): Envoy's router answered the client,
    /// or cut the response it had started.
    EndedByRouter,
    /// The router retried a request rewritten in place, and the client's request the event
    /// is built from is no longer kept (or the attempt key is not one the filter made).
    RetryUnavailable,
    /// The request's body never reached the filter: Envoy's Wasm configuration lacks
    /// `allow_on_headers_stop_iteration: true` (see `flow::body_watch`).
    BodyNotReceived,
    /// `InvokeWithResponseStream`: Lambda's event stream broke (corrupt, oversized or
    /// truncated frame, exception frame) before the first byte reached the client. After
    /// that the stream is reset instead.
    StreamFailed {
        /// `StreamError::class()` or `exception`.
        reason: String,
        message: String,
    },
}

/// Why a request's body never came, for the client and (once per worker) the log.
pub(crate) const BODY_NOT_RECEIVED: &str = "the request's body never reached the filter: its \
     Envoy Wasm configuration needs allow_on_headers_stop_iteration: true (Istio WasmPlugin and \
     Envoy Gateway EnvoyExtensionPolicy cannot set it: deploy/README.md)";

impl From<NoCredentials> for RequestError {
    fn from(failure: NoCredentials) -> Self {
        RequestError::CredentialsUnavailable {
            class: failure.class,
            message: failure.message,
        }
    }
}

impl RequestError {
    /// The error class: the `error` field of the JSON body and the log word.
    pub fn class(&self) -> &str {
        match self {
            RequestError::PayloadTooLarge { .. } | RequestError::LambdaPayloadTooLarge { .. } => {
                "payload_too_large"
            }
            RequestError::RouteConfigInvalid(_) => "route_config_invalid",
            RequestError::NoCluster => "no_cluster",
            RequestError::Signing(_) => "signing_failed",
            RequestError::DispatchFailed { .. } => "dispatch_failed",
            RequestError::FunctionError { .. } => "function_error",
            RequestError::Throttled { .. } => "throttled",
            RequestError::LambdaApi { .. } => "lambda_api_error",
            RequestError::CredentialsUnavailable { class, .. } => class.as_str(),
            RequestError::BadResponse { .. } => "bad_response",
            RequestError::ResponseTooLarge { .. } => "response_too_large",
            RequestError::UpstreamTimeout => "upstream_timeout",
            RequestError::UpstreamUnavailable { .. } => "upstream_unavailable",
            RequestError::EndedByRouter => "ended_by_router",
            RequestError::RetryUnavailable => "retry_unavailable",
            RequestError::BodyNotReceived => "body_not_received",
            RequestError::StreamFailed { .. } => "bad_stream",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            RequestError::PayloadTooLarge { .. } | RequestError::LambdaPayloadTooLarge { .. } => {
                413
            }
            RequestError::RouteConfigInvalid(_)
            | RequestError::NoCluster
            | RequestError::Signing(_)
            | RequestError::DispatchFailed { .. } => 500,
            RequestError::FunctionError { status, .. } => *status,
            RequestError::Throttled { .. } => 429,
            RequestError::LambdaApi { .. } => 502,
            RequestError::CredentialsUnavailable { .. } => 503,
            RequestError::BadResponse { .. }
            | RequestError::ResponseTooLarge { .. }
            | RequestError::StreamFailed { .. } => 502,
            RequestError::UpstreamTimeout => 504,
            RequestError::UpstreamUnavailable { status } => *status,
            // Never sent: the router has answered (504 or 503) by the time this is known.
            RequestError::EndedByRouter => 503,
            RequestError::RetryUnavailable => 502,
            RequestError::BodyNotReceived => 500,
        }
    }

    fn details(&self, body: &mut Map<String, Value>) {
        let mut put = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                body.insert(key.to_string(), Value::String(value.to_string()));
            }
        };
        match self {
            RequestError::PayloadTooLarge { limit } => {
                put(
                    "message",
                    Some(&format!(
                        "request body is larger than Lambda's limit of {limit} bytes"
                    )),
                );
            }
            RequestError::RouteConfigInvalid(e) => {
                put("message", Some(&format!("route override {e}")));
            }
            RequestError::NoCluster => put(
                "message",
                Some("the route has no cluster to send the Invoke to"),
            ),
            RequestError::Signing(e) => put("message", Some(&e.to_string())),
            RequestError::DispatchFailed { cluster } => put(
                "message",
                Some(&format!(
                    "could not dispatch the Invoke to cluster '{cluster}'"
                )),
            ),
            RequestError::FunctionError { kind, message, .. } => {
                put("type", Some(kind));
                put("message", message.as_deref());
            }
            RequestError::Throttled {
                error_type,
                reason,
                message,
                ..
            } => {
                put("type", error_type.as_deref());
                put("reason", reason.as_deref());
                put("message", message.as_deref());
            }
            RequestError::LambdaPayloadTooLarge {
                error_type,
                message,
            } => {
                put("type", error_type.as_deref());
                put("message", message.as_deref());
            }
            RequestError::LambdaApi {
                status,
                error_type,
                message,
            } => {
                put("type", Some(error_type));
                put("message", message.as_deref());
                body.insert("lambda_status".into(), json!(status));
            }
            RequestError::CredentialsUnavailable { message, .. } => put("message", Some(message)),
            RequestError::BadResponse { message } => put("message", Some(message)),
            RequestError::ResponseTooLarge { size, limit } => {
                put(
                    "message",
                    Some(&format!(
                        "the Lambda answer is larger than Lambda's limit of {limit} bytes"
                    )),
                );
                body.insert("size".into(), json!(size));
                body.insert("limit".into(), json!(limit));
            }
            RequestError::UpstreamTimeout => put(
                "message",
                Some("the Lambda Invoke did not answer within the timeout"),
            ),
            RequestError::UpstreamUnavailable { .. } => {
                put("message", Some("the Lambda endpoint could not be reached"))
            }
            RequestError::BodyNotReceived => put("message", Some(BODY_NOT_RECEIVED)),
            RequestError::RetryUnavailable => put(
                "message",
                Some("the router retried the Invoke, and the client's request it is built from is no longer known"),
            ),
            RequestError::EndedByRouter => put(
                "message",
                Some("the router ended the Invoke before Lambda's whole answer came (route timeout, reset or connect failure)"),
            ),
            RequestError::StreamFailed { reason, message } => {
                put("reason", Some(reason));
                put("message", Some(message));
            }
        }
    }

    /// The client reply for this error. `request_id` is the request's x-request-id.
    pub fn to_reply(&self, request_id: Option<&str>) -> ClientReply {
        self.to_reply_after(request_id, None)
    }

    /// The client reply for an error after Lambda answered: with Lambda's request id.
    pub(crate) fn to_reply_after(
        &self,
        request_id: Option<&str>,
        lambda_request_id: Option<&str>,
    ) -> ClientReply {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.class().into()));
        self.details(&mut body);
        if let Some(id) = lambda_request_id {
            body.insert("lambda_request_id".into(), Value::String(id.to_string()));
        }
        if let Some(id) = request_id {
            body.insert("request_id".into(), Value::String(id.to_string()));
        }
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let RequestError::Throttled {
            retry_after: Some(retry_after),
            ..
        } = self
        {
            headers.push(("retry-after".to_string(), retry_after.clone()));
        }
        ClientReply {
            status: self.status(),
            headers,
            // Not `Value`'s `Display`, which links two more serializers (compact and pretty).
            body: json_text(&Value::Object(body)).into_bytes(),
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut details = Map::new();
        self.details(&mut details);
        let details = json_text(&Value::Object(details));
        write!(f, "{} ({details})", self.class())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::eventstream::{StreamError, StreamEvent};
    use crate::answer::prelude::PreludeError;
    use crate::answer::stream_error::MAX_STREAM_MESSAGE_CHARS;

    fn body(reply: &ClientReply) -> Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn function_error_body() {
        let reply = RequestError::FunctionError {
            status: 502,
            kind: "Unhandled".into(),
            message: Some("boom".into()),
        }
        .to_reply(Some("req-1"));
        assert_eq!(reply.status, 502);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(
            body(&reply),
            json!({"error":"function_error","type":"Unhandled","message":"boom","request_id":"req-1"})
        );
    }

    #[test]
    fn throttled_keeps_retry_after() {
        let reply = RequestError::Throttled {
            retry_after: Some("7".into()),
            error_type: Some("TooManyRequestsException".into()),
            reason: Some("ConcurrentInvocationLimitExceeded".into()),
            message: None,
        }
        .to_reply(None);
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("7"));
        assert_eq!(body(&reply)["error"], "throttled");
        assert_eq!(body(&reply)["reason"], "ConcurrentInvocationLimitExceeded");
    }

    #[test]
    fn statuses_by_class() {
        let cases: Vec<(RequestError, u16, &str)> = vec![
            (
                RequestError::PayloadTooLarge { limit: 10 },
                413,
                "payload_too_large",
            ),
            (
                RequestError::RouteConfigInvalid(ConfigError::new("payload", "bad")),
                500,
                "route_config_invalid",
            ),
            (RequestError::NoCluster, 500, "no_cluster"),
            (
                RequestError::DispatchFailed {
                    cluster: "x".into(),
                },
                500,
                "dispatch_failed",
            ),
            (
                RequestError::LambdaApi {
                    status: 403,
                    error_type: "AccessDeniedException".into(),
                    message: None,
                },
                502,
                "lambda_api_error",
            ),
            (RequestError::UpstreamTimeout, 504, "upstream_timeout"),
            (
                RequestError::ResponseTooLarge {
                    size: 7_000_000,
                    limit: 6_291_556,
                },
                502,
                "response_too_large",
            ),
            (
                RequestError::CredentialsUnavailable {
                    class: crate::credentials::failure::FailureClass::parse("sts_unavailable")
                        .unwrap(),
                    message: "no answer from STS".into(),
                },
                503,
                "sts_unavailable",
            ),
            (
                RequestError::UpstreamUnavailable { status: 503 },
                503,
                "upstream_unavailable",
            ),
            (
                RequestError::from(&StreamError::MessageCrcMismatch),
                502,
                "bad_stream",
            ),
            (
                RequestError::from(&PreludeError::Missing),
                502,
                "bad_response",
            ),
        ];
        for (error, status, class) in cases {
            let reply = error.to_reply(None);
            assert_eq!(reply.status, status, "{error}");
            assert_eq!(body(&reply)["error"], class);
        }
    }

    #[test]
    fn stream_events_map_to_errors() {
        let complete = |code: Option<&str>, details: Option<&str>| StreamEvent::Complete {
            error_code: code.map(str::to_string),
            error_details: details.map(str::to_string),
            log_result: None,
        };
        assert_eq!(
            RequestError::from_stream_event(&complete(None, None), 502),
            None
        );
        assert_eq!(
            RequestError::from_stream_event(&StreamEvent::Payload(b"x".to_vec()), 502),
            None
        );
        let reply = RequestError::from_stream_event(
            &complete(
                Some("Unhandled"),
                Some(r#"{"errorType":"Error","errorMessage":"boom","trace":[]}"#),
            ),
            500,
        )
        .unwrap()
        .to_reply(Some("r1"));
        assert_eq!(reply.status, 500);
        assert_eq!(
            body(&reply),
            json!({"error":"function_error","type":"Unhandled","message":"boom","request_id":"r1"})
        );
        let plain = RequestError::from_stream_event(
            &complete(
                Some("Function.ResponseSizeTooLarge"),
                Some(&"x".repeat(5000)),
            ),
            502,
        )
        .unwrap();
        let RequestError::FunctionError { message, .. } = &plain else {
            panic!("{plain:?}");
        };
        assert_eq!(
            message.as_deref().map(str::len),
            Some(MAX_STREAM_MESSAGE_CHARS)
        );
        let reply = RequestError::from_stream_event(
            &StreamEvent::Exception {
                error_type: "ServiceException".into(),
                message: Some("internal".into()),
            },
            502,
        )
        .unwrap()
        .to_reply(None);
        assert_eq!(reply.status, 502);
        assert_eq!(
            body(&reply),
            json!({"error":"bad_stream","reason":"exception","message":"Lambda ended the stream with ServiceException: internal"})
        );
        let crc = RequestError::from(&StreamError::PreludeCrcMismatch).to_reply(None);
        assert_eq!(body(&crc)["reason"], "crc_mismatch");
    }
}
