//! Invocations per function, labelled through Envoy's tag extraction: the function and the
//! outcome class are segments of the stat name, which the `stats_tags` of every shipped Envoy
//! configuration (docs/observability.md, *Stats*) turn into the `function` and `class` labels:
//!
//! - `proxy_wasm_lambda.function.<F>.invocations.<CLASS>`: one per outcome;
//! - `proxy_wasm_lambda.function.<F>.invocations_total`: every request that reached a function;
//! - `proxy_wasm_lambda.function.<F>.latency_ms`: the Invoke's latency (histogram).
//!
//! `<F>` comes from the configuration or route metadata only (never from a client), and each
//! VM labels at most [`MAX_FUNCTION_LABELS`] functions; later ones count as [`OTHER_FUNCTIONS`].

use crate::aws::arn::FunctionId;
use crate::error::RequestError;

/// How many function labels one VM defines metrics for.
pub(crate) const MAX_FUNCTION_LABELS: usize = 100;
/// The label of functions past the cap.
pub(crate) const OTHER_FUNCTIONS: &str = "_other";

/// The class of a request's outcome (the `class` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    FunctionError,
    Throttled,
    Rejected,
    CredentialsUnavailable,
    BadResponse,
    Timeout,
    Connect,
    Lambda4xx,
    Lambda5xx,
    Signing,
    UpstreamEnded,
    StreamError,
}

impl Outcome {
    pub(crate) const COUNT: usize = 13;

    pub(crate) fn class(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::FunctionError => "function_error",
            Outcome::Throttled => "throttled",
            Outcome::Rejected => "rejected",
            Outcome::CredentialsUnavailable => "credentials_unavailable",
            Outcome::BadResponse => "bad_response",
            Outcome::Timeout => "timeout",
            Outcome::Connect => "connect",
            Outcome::Lambda4xx => "lambda_4xx",
            Outcome::Lambda5xx => "lambda_5xx",
            Outcome::Signing => "signing",
            Outcome::UpstreamEnded => "upstream_ended",
            Outcome::StreamError => "stream_error",
        }
    }

    /// The class of a failed request.
    pub(crate) fn of(error: &RequestError) -> Outcome {
        match error {
            RequestError::FunctionError { .. } => Outcome::FunctionError,
            RequestError::Throttled { .. } => Outcome::Throttled,
            RequestError::PayloadTooLarge { .. }
            | RequestError::RouteConfigInvalid(_)
            | RequestError::NoCluster
            | RequestError::BodyNotReceived => Outcome::Rejected,
            RequestError::CredentialsUnavailable { .. } => Outcome::CredentialsUnavailable,
            RequestError::BadResponse { .. } | RequestError::ResponseTooLarge { .. } => {
                Outcome::BadResponse
            }
            RequestError::UpstreamTimeout => Outcome::Timeout,
            RequestError::DispatchFailed { .. } | RequestError::UpstreamUnavailable { .. } => {
                Outcome::Connect
            }
            RequestError::LambdaPayloadTooLarge { .. } => Outcome::Lambda4xx,
            RequestError::LambdaApi { status, .. } if *status >= 500 => Outcome::Lambda5xx,
            RequestError::LambdaApi { .. } => Outcome::Lambda4xx,
            RequestError::Signing(_) => Outcome::Signing,
            RequestError::EndedByRouter | RequestError::RetryUnavailable => Outcome::UpstreamEnded,
            RequestError::StreamFailed { .. } => Outcome::StreamError,
        }
    }
}

/// The `function` label of a target: its name, and `:qualifier` when it has one, in the
/// characters a stat name segment keeps (`$LATEST` is `_LATEST`).
pub(crate) fn function_label(function: &FunctionId, qualifier: Option<&str>) -> String {
    let mut label = String::with_capacity(function.name.len() + 16);
    label.push_str(&function.name);
    if let Some(qualifier) = qualifier {
        label.push(':');
        label.push_str(qualifier);
    }
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) fn outcome_name(label: &str, outcome: Outcome) -> String {
    format!(
        "proxy_wasm_lambda.function.{label}.invocations.{}",
        outcome.class()
    )
}

pub(crate) fn total_name(label: &str) -> String {
    format!("proxy_wasm_lambda.function.{label}.invocations_total")
}

pub(crate) fn latency_name(label: &str) -> String {
    format!("proxy_wasm_lambda.function.{label}.latency_ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Outcome; Outcome::COUNT] = [
        Outcome::Success,
        Outcome::FunctionError,
        Outcome::Throttled,
        Outcome::Rejected,
        Outcome::CredentialsUnavailable,
        Outcome::BadResponse,
        Outcome::Timeout,
        Outcome::Connect,
        Outcome::Lambda4xx,
        Outcome::Lambda5xx,
        Outcome::Signing,
        Outcome::UpstreamEnded,
        Outcome::StreamError,
    ];

    #[test]
    fn classes_are_distinct_single_segments_documented_in_observability_md() {
        let doc = include_str!("../../docs/observability.md");
        let mut seen = std::collections::HashSet::new();
        for outcome in ALL {
            let class = outcome.class();
            assert!(seen.insert(class), "{class} twice");
            assert!(!class.contains('.'));
            assert!(
                doc.contains(&format!("`{class}`")),
                "{class} not in docs/observability.md"
            );
        }
    }

    #[test]
    fn labels_keep_name_and_qualifier_in_one_segment() {
        let id = |text: &str| FunctionId::parse(text).unwrap();
        assert_eq!(function_label(&id("orders"), None), "orders");
        assert_eq!(
            function_label(
                &id("arn:aws:lambda:eu-west-1:123456789012:function:orders"),
                Some("live")
            ),
            "orders:live"
        );
        assert_eq!(
            function_label(&id("orders"), Some("$LATEST")),
            "orders:_LATEST"
        );
        assert_eq!(
            outcome_name("orders:live", Outcome::Lambda5xx),
            "proxy_wasm_lambda.function.orders:live.invocations.lambda_5xx"
        );
        assert_eq!(
            total_name("orders"),
            "proxy_wasm_lambda.function.orders.invocations_total"
        );
        assert_eq!(
            latency_name("orders"),
            "proxy_wasm_lambda.function.orders.latency_ms"
        );
    }

    #[test]
    fn lambda_api_errors_split_by_status() {
        let api = |status| RequestError::LambdaApi {
            status,
            error_type: "X".into(),
            message: None,
        };
        assert_eq!(Outcome::of(&api(403)), Outcome::Lambda4xx);
        assert_eq!(Outcome::of(&api(404)), Outcome::Lambda4xx);
        assert_eq!(Outcome::of(&api(500)), Outcome::Lambda5xx);
        assert_eq!(Outcome::of(&api(503)), Outcome::Lambda5xx);
        assert_eq!(
            Outcome::of(&RequestError::UpstreamTimeout),
            Outcome::Timeout
        );
        assert_eq!(
            Outcome::of(&RequestError::UpstreamUnavailable { status: 503 }),
            Outcome::Connect
        );
    }
}
