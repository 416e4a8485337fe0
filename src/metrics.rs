//! Metric names, defined once. Envoy shows them under `/stats` with its `wasmcustom.` prefix
//! (e.g. `wasmcustom.proxy_wasm_lambda.invocations.success`); docs/observability.md (Stats)
//! lists them all.

use crate::credentials::provider::CredentialFetcher;
use crate::error::RequestError;

mod buffer;
mod function;
#[cfg_attr(not(target_arch = "wasm32"), allow(unused_imports))] // used by the shell only
pub(crate) use buffer::*;
pub(crate) use function::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Metric {
    InvokeSuccess,
    InvokeFunctionError,
    InvokeThrottled,
    InvokeRejected,
    InvokeUpstreamError,
    InvokeCredentialsUnavailable,
    InvokeBadResponse,
    InvokeLatencyMs,
    InvokePayloadBytes,
    InvokeInPlace,
    InvokeDispatched,
    CredentialRefreshOk,
    CredentialRefreshFailed,
    CredentialWaiting,
    CredentialWaitMs,
    RouteConfigErrors,
    CredentialStsRefreshOk,
    CredentialStsRefreshFailed,
    CredentialWebIdentityRefreshOk,
    CredentialWebIdentityRefreshFailed,
    CredentialImdsRefreshOk,
    CredentialImdsRefreshFailed,
    CredentialContainerRefreshOk,
    CredentialContainerRefreshFailed,
}

/// The per-profile refresh counters: `proxy_wasm_lambda.credentials.profile.<NAME>.refresh_ok`
/// and `.refresh_failed` (the top-level `credentials` are the profile `default`). Profile
/// names have no dots, so the name is one segment.
pub(crate) fn profile_refresh_name(profile: &str, ok: bool) -> String {
    format!(
        "proxy_wasm_lambda.credentials.profile.{profile}.{}",
        if ok { "refresh_ok" } else { "refresh_failed" }
    )
}

impl Metric {
    pub(crate) const ALL: [Metric; 24] = [
        Metric::InvokeSuccess,
        Metric::InvokeFunctionError,
        Metric::InvokeThrottled,
        Metric::InvokeRejected,
        Metric::InvokeUpstreamError,
        Metric::InvokeCredentialsUnavailable,
        Metric::InvokeBadResponse,
        Metric::InvokeLatencyMs,
        Metric::InvokePayloadBytes,
        Metric::InvokeInPlace,
        Metric::InvokeDispatched,
        Metric::CredentialRefreshOk,
        Metric::CredentialRefreshFailed,
        Metric::CredentialWaiting,
        Metric::CredentialWaitMs,
        Metric::RouteConfigErrors,
        Metric::CredentialStsRefreshOk,
        Metric::CredentialStsRefreshFailed,
        Metric::CredentialWebIdentityRefreshOk,
        Metric::CredentialWebIdentityRefreshFailed,
        Metric::CredentialImdsRefreshOk,
        Metric::CredentialImdsRefreshFailed,
        Metric::CredentialContainerRefreshOk,
        Metric::CredentialContainerRefreshFailed,
    ];

    /// The per-source counter of one refresh (the totals `credentials.refresh_ok` and
    /// `refresh_failed` move as well).
    pub(crate) fn for_refresh(fetcher: CredentialFetcher, ok: bool) -> Metric {
        match (fetcher, ok) {
            (CredentialFetcher::Sts, true) => Metric::CredentialStsRefreshOk,
            (CredentialFetcher::Sts, false) => Metric::CredentialStsRefreshFailed,
            (CredentialFetcher::WebIdentity, true) => Metric::CredentialWebIdentityRefreshOk,
            (CredentialFetcher::WebIdentity, false) => Metric::CredentialWebIdentityRefreshFailed,
            (CredentialFetcher::Imds, true) => Metric::CredentialImdsRefreshOk,
            (CredentialFetcher::Imds, false) => Metric::CredentialImdsRefreshFailed,
            (CredentialFetcher::Container, true) => Metric::CredentialContainerRefreshOk,
            (CredentialFetcher::Container, false) => Metric::CredentialContainerRefreshFailed,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Metric::InvokeSuccess => "proxy_wasm_lambda.invocations.success",
            Metric::InvokeFunctionError => "proxy_wasm_lambda.invocations.function_error",
            Metric::InvokeThrottled => "proxy_wasm_lambda.invocations.throttled",
            Metric::InvokeRejected => "proxy_wasm_lambda.invocations.rejected",
            Metric::InvokeUpstreamError => "proxy_wasm_lambda.invocations.upstream_error",
            Metric::InvokeCredentialsUnavailable => {
                "proxy_wasm_lambda.invocations.credentials_unavailable"
            }
            Metric::InvokeBadResponse => "proxy_wasm_lambda.invocations.bad_response",
            Metric::InvokeLatencyMs => "proxy_wasm_lambda.invoke.latency_ms",
            Metric::InvokePayloadBytes => "proxy_wasm_lambda.invoke.payload_bytes",
            Metric::InvokeInPlace => "proxy_wasm_lambda.invoke.in_place",
            Metric::InvokeDispatched => "proxy_wasm_lambda.invoke.dispatched",
            Metric::CredentialRefreshOk => "proxy_wasm_lambda.credentials.refresh_ok",
            Metric::CredentialRefreshFailed => "proxy_wasm_lambda.credentials.refresh_failed",
            Metric::CredentialWaiting => "proxy_wasm_lambda.credentials.waiting",
            Metric::CredentialWaitMs => "proxy_wasm_lambda.credentials.wait_ms",
            Metric::RouteConfigErrors => "proxy_wasm_lambda.route_config_errors",
            Metric::CredentialStsRefreshOk => "proxy_wasm_lambda.credentials.sts.refresh_ok",
            Metric::CredentialStsRefreshFailed => {
                "proxy_wasm_lambda.credentials.sts.refresh_failed"
            }
            Metric::CredentialWebIdentityRefreshOk => {
                "proxy_wasm_lambda.credentials.web_identity.refresh_ok"
            }
            Metric::CredentialWebIdentityRefreshFailed => {
                "proxy_wasm_lambda.credentials.web_identity.refresh_failed"
            }
            Metric::CredentialImdsRefreshOk => "proxy_wasm_lambda.credentials.imds.refresh_ok",
            Metric::CredentialImdsRefreshFailed => {
                "proxy_wasm_lambda.credentials.imds.refresh_failed"
            }
            Metric::CredentialContainerRefreshOk => {
                "proxy_wasm_lambda.credentials.container.refresh_ok"
            }
            Metric::CredentialContainerRefreshFailed => {
                "proxy_wasm_lambda.credentials.container.refresh_failed"
            }
        }
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Metric::InvokeLatencyMs | Metric::InvokePayloadBytes | Metric::CredentialWaitMs => {
                Kind::Histogram
            }
            Metric::CredentialWaiting => Kind::Gauge,
            _ => Kind::Counter,
        }
    }

    /// The histograms kept only with `invoke_histograms`: they repeat the Lambda cluster's
    /// own `upstream_rq_time` and request size histograms.
    pub(crate) fn is_opt_in_histogram(self) -> bool {
        matches!(self, Metric::InvokeLatencyMs | Metric::InvokePayloadBytes)
    }

    /// The outcome counter a failed request moves.
    pub(crate) fn for_failure(error: &RequestError) -> Metric {
        match error {
            RequestError::FunctionError { .. } => Metric::InvokeFunctionError,
            RequestError::Throttled { .. } => Metric::InvokeThrottled,
            RequestError::PayloadTooLarge { .. }
            | RequestError::RouteConfigInvalid(_)
            | RequestError::NoCluster
            | RequestError::BodyNotReceived => Metric::InvokeRejected,
            RequestError::CredentialsUnavailable { .. } => Metric::InvokeCredentialsUnavailable,
            RequestError::BadResponse { .. } => Metric::InvokeBadResponse,
            RequestError::Signing(_)
            | RequestError::DispatchFailed { .. }
            | RequestError::LambdaPayloadTooLarge { .. }
            | RequestError::LambdaApi { .. }
            | RequestError::ResponseTooLarge { .. }
            | RequestError::UpstreamTimeout
            | RequestError::UpstreamUnavailable { .. }
            | RequestError::EndedByRouter
            | RequestError::RetryUnavailable
            | RequestError::StreamFailed { .. } => Metric::InvokeUpstreamError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The shell stores metric ids in an array indexed by `metric as usize`.
    #[test]
    fn all_lists_every_metric_at_its_discriminant() {
        for (index, metric) in Metric::ALL.iter().enumerate() {
            assert_eq!(*metric as usize, index, "{metric:?}");
        }
    }

    #[test]
    fn names_are_unique_and_prefixed() {
        let names: HashSet<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Metric::ALL.len());
        assert!(names.iter().all(|n| n.starts_with("proxy_wasm_lambda.")));
    }

    #[test]
    fn every_metric_is_documented_in_observability_md() {
        let doc = include_str!("../docs/observability.md");
        for metric in Metric::ALL {
            assert!(
                doc.contains(metric.name()),
                "{} missing from docs/observability.md",
                metric.name()
            );
        }
    }

    #[test]
    fn refreshes_map_to_their_source() {
        let names: HashSet<&str> = [
            CredentialFetcher::Sts,
            CredentialFetcher::WebIdentity,
            CredentialFetcher::Imds,
            CredentialFetcher::Container,
        ]
        .iter()
        .flat_map(|f| {
            [
                Metric::for_refresh(*f, true),
                Metric::for_refresh(*f, false),
            ]
        })
        .map(Metric::name)
        .collect();
        assert_eq!(names.len(), 8);
        assert_eq!(
            Metric::for_refresh(CredentialFetcher::Imds, false).name(),
            "proxy_wasm_lambda.credentials.imds.refresh_failed"
        );
        assert_eq!(
            Metric::for_refresh(CredentialFetcher::Container, true).kind(),
            Kind::Counter
        );
    }

    #[test]
    fn failures_map_to_outcomes() {
        assert_eq!(
            Metric::for_failure(&RequestError::UpstreamTimeout),
            Metric::InvokeUpstreamError
        );
        assert_eq!(
            Metric::for_failure(&RequestError::PayloadTooLarge { limit: 1 }),
            Metric::InvokeRejected
        );
        assert_eq!(
            Metric::for_failure(&RequestError::CredentialsUnavailable {
                class: crate::credentials::failure::FailureClass::parse("sts_unavailable").unwrap(),
                message: String::new()
            }),
            Metric::InvokeCredentialsUnavailable
        );
    }
}
