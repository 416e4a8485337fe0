//! What Lambda's response stream means for the client: the events and decoding errors of
//! `InvokeWithResponseStream` as [`RequestError`]s.

use serde_json::Value;

use crate::answer::eventstream::{StreamError, StreamEvent};
use crate::answer::prelude::PreludeError;
use crate::error::RequestError;

/// Longest message from Lambda's stream (`ErrorDetails`) copied into an error body.
pub(crate) const MAX_STREAM_MESSAGE_CHARS: usize = 1024;

impl RequestError {
    /// The error an event of Lambda's response stream means, if any: `InvokeComplete` with
    /// an `ErrorCode` is the function's failure (as `X-Amz-Function-Error` in buffered
    /// mode, with `function_error_status`); an exception frame is a broken stream.
    pub fn from_stream_event(event: &StreamEvent, function_error_status: u16) -> Option<Self> {
        match event {
            StreamEvent::Payload(_) => None,
            StreamEvent::Complete {
                error_code: Some(kind),
                error_details,
                ..
            } => Some(RequestError::FunctionError {
                status: function_error_status,
                kind: kind.clone(),
                message: error_details.as_deref().map(stream_error_message),
            }),
            StreamEvent::Complete { .. } => None,
            StreamEvent::Exception {
                error_type,
                message,
            } => Some(RequestError::StreamFailed {
                reason: "exception".to_string(),
                message: match message {
                    Some(m) => format!("Lambda ended the stream with {error_type}: {m}"),
                    None => format!("Lambda ended the stream with {error_type}"),
                }
                .chars()
                .take(MAX_STREAM_MESSAGE_CHARS)
                .collect(),
            }),
        }
    }
}

/// `ErrorDetails` of a failed streaming invocation: the `errorMessage` when it holds the
/// runtime's error JSON (as the buffered answer's body), else its text; cut.
fn stream_error_message(details: &str) -> String {
    let message = serde_json::from_slice::<Value>(details.as_bytes())
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    message
        .as_deref()
        .unwrap_or(details)
        .chars()
        .take(MAX_STREAM_MESSAGE_CHARS)
        .collect()
}

impl From<&StreamError> for RequestError {
    fn from(error: &StreamError) -> Self {
        RequestError::StreamFailed {
            reason: error.class().to_string(),
            message: error.to_string(),
        }
    }
}

impl From<&PreludeError> for RequestError {
    fn from(error: &PreludeError) -> Self {
        RequestError::BadResponse {
            message: error.message(),
        }
    }
}
