//! The per-request state machine. The host shell feeds it callbacks and carries out the
//! [`Step`] it returns. Every pause has exactly one way out: a dispatched Invoke always
//! ends in `on_invoke_answer` (the host reports success, failure and timeout there), and
//! every other pause ends when the body is complete.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::config::{ConfigError, InvokeTarget, PayloadFormat, CUSTOM_PARAMETERS_FIELD};
use crate::credentials::Credentials;
use crate::error::{ClientReply, RequestError};
use crate::event::{build_event, merge_custom_parameters, RequestInfo};
use crate::invoke::{build_invoke, OutboundRequest};
use crate::response::{decode_invoke_answer, InvokeAnswer};
use crate::route::RouteTarget;

/// Slack for timer granularity when deciding whether an empty answer was the timeout.
const TIMEOUT_SLACK: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Start,
    ReceivingBody {
        target: Rc<InvokeTarget>,
        cluster: String,
    },
    /// The body is read; no usable credentials yet (STS fetch pending or failing).
    AwaitingCredentials {
        target: Rc<InvokeTarget>,
        cluster: String,
        body: Vec<u8>,
        deadline: SystemTime,
    },
    AwaitingInvoke {
        token: u32,
        target: Rc<InvokeTarget>,
        sent_at: SystemTime,
    },
    /// Passed through, answered, or failed: nothing more to do.
    Finished,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Let the request continue down the filter chain untouched.
    Continue,
    /// Keep the request paused (buffering, or waiting for the Invoke).
    Pause,
    /// The body is complete: read it and call [`RequestFlow::on_body_complete`].
    ReadBody,
    /// No usable credentials: park the request until [`RequestFlow::on_credentials_ready`]
    /// or, at `deadline`, [`RequestFlow::on_credentials_timeout`].
    WaitForCredentials { deadline: SystemTime },
    /// Dispatch this request and report the result with [`RequestFlow::on_dispatched`].
    Dispatch(OutboundRequest),
    /// Send this response to the client.
    Reply(ClientReply),
    /// Send the error's response to the client (and log it).
    Fail(RequestError),
}

/// What an event payload needs to know about the client's request, captured with the
/// headers (only for event formats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub headers: Vec<(String, String)>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub protocol: String,
    pub host: Option<String>,
}

#[derive(Debug)]
pub struct RequestFlow {
    phase: Phase,
    meta: Option<RequestMeta>,
}

impl Default for RequestFlow {
    fn default() -> Self {
        RequestFlow {
            phase: Phase::Start,
            meta: None,
        }
    }
}

impl RequestFlow {
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Whether the payload format needs [`RequestMeta`] (set it with `set_request_meta`).
    pub fn wants_request_meta(&self) -> bool {
        matches!(&self.phase, Phase::ReceivingBody { target, .. }
            if matches!(target.payload, PayloadFormat::Event(_)))
    }

    pub fn set_request_meta(&mut self, meta: RequestMeta) {
        self.meta = Some(meta);
    }

    /// When the Invoke in flight was dispatched.
    pub fn invoke_sent_at(&self) -> Option<SystemTime> {
        match &self.phase {
            Phase::AwaitingInvoke { sent_at, .. } => Some(*sent_at),
            _ => None,
        }
    }

    fn fail(&mut self, error: RequestError) -> Step {
        self.phase = Phase::Finished;
        Step::Fail(error)
    }

    /// Request headers arrived. `route` is the route's resolved target, `route_cluster` the
    /// cluster Envoy picked for the route (None for routes without one).
    pub fn on_request_headers(
        &mut self,
        route: Result<RouteTarget, ConfigError>,
        route_cluster: Option<String>,
        content_length: Option<u64>,
        end_of_stream: bool,
    ) -> Step {
        if self.phase != Phase::Start {
            return Step::Continue;
        }
        let target = match route {
            Err(e) => return self.fail(RequestError::RouteConfigInvalid(e)),
            Ok(RouteTarget::Disabled) => {
                self.phase = Phase::Finished;
                return Step::Continue;
            }
            Ok(RouteTarget::Invoke(target)) => target,
        };
        let Some(cluster) = target.cluster.clone().or(route_cluster) else {
            return self.fail(RequestError::NoCluster);
        };
        let limit = target.invocation_type.payload_limit();
        if content_length.is_some_and(|length| length > limit) {
            return self.fail(RequestError::PayloadTooLarge { limit });
        }
        self.phase = Phase::ReceivingBody { target, cluster };
        if end_of_stream {
            Step::ReadBody
        } else {
            Step::Pause
        }
    }

    /// A body chunk arrived; `buffered_size` is the size buffered so far.
    pub fn on_request_body(&mut self, buffered_size: usize, end_of_stream: bool) -> Step {
        let Phase::ReceivingBody { target, .. } = &self.phase else {
            return Step::Continue;
        };
        let limit = target.invocation_type.payload_limit();
        if buffered_size as u64 > limit {
            return self.fail(RequestError::PayloadTooLarge { limit });
        }
        if end_of_stream {
            Step::ReadBody
        } else {
            Step::Pause
        }
    }

    /// Trailers end the request like a last empty body chunk.
    pub fn on_request_trailers(&mut self) -> Step {
        match self.phase {
            Phase::ReceivingBody { .. } => Step::ReadBody,
            _ => Step::Continue,
        }
    }

    /// The whole body, read from the host: sign and build the Invoke, or wait (at most
    /// `max_wait`) when there are no usable credentials.
    pub fn on_body_complete(
        &mut self,
        body: Vec<u8>,
        credentials: Option<&Credentials>,
        now: SystemTime,
        max_wait: Duration,
    ) -> Step {
        let Phase::ReceivingBody { target, cluster } = &self.phase else {
            return Step::Continue;
        };
        let limit = target.invocation_type.payload_limit();
        if body.len() as u64 > limit {
            return self.fail(RequestError::PayloadTooLarge { limit });
        }
        match credentials {
            Some(credentials) => self.sign(body, credentials, now),
            None => {
                let deadline = now + max_wait;
                self.phase = Phase::AwaitingCredentials {
                    target: Rc::clone(target),
                    cluster: cluster.clone(),
                    body,
                    deadline,
                };
                Step::WaitForCredentials { deadline }
            }
        }
    }

    /// Credentials arrived for a request waiting on them.
    pub fn on_credentials_ready(&mut self, credentials: &Credentials, now: SystemTime) -> Step {
        let Phase::AwaitingCredentials {
            target,
            cluster,
            body,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Finished)
        else {
            return Step::Continue;
        };
        self.phase = Phase::ReceivingBody { target, cluster };
        self.sign(body, credentials, now)
    }

    /// The wait for credentials is over without any: `error` says why.
    pub fn on_credentials_timeout(&mut self, error: RequestError) -> Step {
        match self.phase {
            Phase::AwaitingCredentials { .. } => self.fail(error),
            _ => Step::Continue,
        }
    }

    fn sign(&mut self, body: Vec<u8>, credentials: &Credentials, now: SystemTime) -> Step {
        let Phase::ReceivingBody { target, cluster } = &self.phase else {
            return Step::Continue;
        };
        let payload = match target.payload {
            PayloadFormat::Passthrough if !target.custom_parameters.is_empty() => {
                merge_custom_parameters(&body, CUSTOM_PARAMETERS_FIELD, &target.custom_parameters)
                    .unwrap_or(body)
            }
            PayloadFormat::Passthrough => body,
            PayloadFormat::Event(format) => {
                let meta = self.meta.take().unwrap_or_default();
                build_event(
                    format,
                    &target.event,
                    &RequestInfo {
                        method: &meta.method,
                        path: &meta.path,
                        raw_query: &meta.raw_query,
                        headers: &meta.headers,
                        body: &body,
                        source_ip: meta.source_ip.as_deref(),
                        request_id: meta.request_id.as_deref(),
                        protocol: &meta.protocol,
                        host: meta.host.as_deref(),
                        now,
                    },
                )
            }
        };
        if payload.len() as u64 > target.invocation_type.payload_limit() {
            let limit = target.invocation_type.payload_limit();
            return self.fail(RequestError::PayloadTooLarge { limit });
        }
        match build_invoke(target, cluster, credentials, payload, now) {
            Ok(request) => Step::Dispatch(request),
            Err(e) => self.fail(RequestError::Signing(e)),
        }
    }

    /// The host's answer to the dispatch: a call token, or the name of the cluster it
    /// could not dispatch to.
    pub fn on_dispatched(&mut self, result: Result<u32, String>, now: SystemTime) -> Step {
        let Phase::ReceivingBody { target, .. } = &self.phase else {
            return Step::Continue;
        };
        match result {
            Ok(token) => {
                self.phase = Phase::AwaitingInvoke {
                    token,
                    target: Rc::clone(target),
                    sent_at: now,
                };
                Step::Pause
            }
            Err(cluster) => self.fail(RequestError::DispatchFailed { cluster }),
        }
    }

    /// The Invoke's outcome (the host reports timeouts and resets here too, without a
    /// status). Returns `None` for a token this request is not waiting on.
    pub fn on_invoke_answer(
        &mut self,
        token: u32,
        answer: InvokeAnswer,
        now: SystemTime,
    ) -> Option<Step> {
        let Phase::AwaitingInvoke {
            token: expected,
            target,
            sent_at,
        } = &self.phase
        else {
            return None;
        };
        if *expected != token {
            return None;
        }
        let elapsed = now.duration_since(*sent_at).unwrap_or_default();
        let timed_out = elapsed + TIMEOUT_SLACK >= target.timeout;
        let step = match decode_invoke_answer(target, answer, timed_out) {
            Ok(reply) => Step::Reply(reply),
            Err(error) => Step::Fail(error),
        };
        self.phase = Phase::Finished;
        Some(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FilterConfig;
    use crate::secret::Secret;

    fn config(extra: &str) -> FilterConfig {
        let json = format!(
            r#"{{"function":"f","region":"us-east-1","timeout_ms":1000{extra},"credentials":{{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}}}"#
        );
        FilterConfig::load(json.as_bytes(), &|_| None).unwrap()
    }

    fn route(config: &FilterConfig) -> Result<RouteTarget, ConfigError> {
        Ok(RouteTarget::Invoke(Rc::new(config.target.clone())))
    }

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("secret"),
            session_token: None,
        }
    }

    const WAIT: Duration = Duration::from_millis(3000);

    fn t(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_428_000) + Duration::from_millis(ms)
    }

    /// Drives a POST with a body up to the dispatched Invoke (token 7 at t=0).
    fn dispatched(config: &FilterConfig) -> RequestFlow {
        let mut flow = RequestFlow::default();
        assert_eq!(
            flow.on_request_headers(route(config), Some("lambda".into()), Some(2), false),
            Step::Pause
        );
        assert_eq!(flow.on_request_body(2, true), Step::ReadBody);
        match flow.on_body_complete(b"{}".to_vec(), Some(&creds()), t(0), WAIT) {
            Step::Dispatch(request) => {
                assert_eq!(request.cluster, "lambda");
                assert_eq!(request.body, b"{}");
            }
            other => panic!("expected dispatch, got {other:?}"),
        }
        assert_eq!(flow.on_dispatched(Ok(7), t(0)), Step::Pause);
        flow
    }

    fn lambda_answer(status: u16, headers: &[(&str, &str)], body: &str) -> InvokeAnswer {
        InvokeAnswer {
            status: Some(status),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            unread_body_bytes: None,
        }
    }

    #[test]
    fn success_way_out() {
        let config = config("");
        let mut flow = dispatched(&config);
        let step = flow
            .on_invoke_answer(
                7,
                lambda_answer(200, &[("x-amzn-requestid", "r")], "[1]"),
                t(30),
            )
            .unwrap();
        match step {
            Step::Reply(reply) => assert_eq!((reply.status, reply.body), (200, b"[1]".to_vec())),
            other => panic!("{other:?}"),
        }
        assert_eq!(flow.phase(), &Phase::Finished);
    }

    #[test]
    fn error_way_out() {
        let config = config("");
        let mut flow = dispatched(&config);
        let step = flow
            .on_invoke_answer(
                7,
                lambda_answer(403, &[("x-amzn-errortype", "AccessDeniedException")], "{}"),
                t(30),
            )
            .unwrap();
        assert!(matches!(
            step,
            Step::Fail(RequestError::LambdaApi { status: 403, .. })
        ));
        assert_eq!(flow.phase(), &Phase::Finished);
    }

    #[test]
    fn timeout_way_out() {
        let config = config("");
        let mut flow = dispatched(&config);
        let step = flow
            .on_invoke_answer(7, InvokeAnswer::default(), t(1000))
            .unwrap();
        assert_eq!(step, Step::Fail(RequestError::UpstreamTimeout));
        assert_eq!(flow.phase(), &Phase::Finished);
    }

    #[test]
    fn reset_before_timeout_is_unavailable() {
        let config = config("");
        let mut flow = dispatched(&config);
        let step = flow
            .on_invoke_answer(7, InvokeAnswer::default(), t(100))
            .unwrap();
        assert_eq!(
            step,
            Step::Fail(RequestError::UpstreamUnavailable { status: 503 })
        );
    }

    #[test]
    fn dispatch_failure_way_out() {
        let config = config("");
        let mut flow = RequestFlow::default();
        assert_eq!(
            flow.on_request_headers(route(&config), Some("lambda".into()), None, true),
            Step::ReadBody
        );
        assert!(matches!(
            flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT),
            Step::Dispatch(_)
        ));
        assert_eq!(
            flow.on_dispatched(Err("lambda".into()), t(0)),
            Step::Fail(RequestError::DispatchFailed {
                cluster: "lambda".into()
            })
        );
        assert_eq!(flow.phase(), &Phase::Finished);
    }

    #[test]
    fn unknown_or_late_tokens_are_ignored() {
        let config = config("");
        let mut flow = dispatched(&config);
        assert_eq!(
            flow.on_invoke_answer(8, InvokeAnswer::default(), t(5)),
            None
        );
        assert!(flow
            .on_invoke_answer(7, lambda_answer(200, &[], "{}"), t(5))
            .is_some());
        assert_eq!(
            flow.on_invoke_answer(7, InvokeAnswer::default(), t(6)),
            None
        );
    }

    #[test]
    fn content_length_over_the_limit_fails_before_buffering() {
        let sync = config("");
        let mut flow = RequestFlow::default();
        let step = flow.on_request_headers(route(&sync), Some("c".into()), Some(7_000_000), false);
        assert_eq!(
            step,
            Step::Fail(RequestError::PayloadTooLarge { limit: 6_291_456 })
        );
        let event = config(r#","invocation_type":"Event""#);
        let mut flow = RequestFlow::default();
        let step = flow.on_request_headers(route(&event), Some("c".into()), Some(1_100_000), false);
        assert_eq!(
            step,
            Step::Fail(RequestError::PayloadTooLarge { limit: 1_048_576 })
        );
    }

    #[test]
    fn chunked_body_over_the_limit_fails_while_buffering() {
        let config = config(r#","invocation_type":"Event""#);
        let mut flow = RequestFlow::default();
        assert_eq!(
            flow.on_request_headers(route(&config), Some("c".into()), None, false),
            Step::Pause
        );
        assert_eq!(flow.on_request_body(1_000_000, false), Step::Pause);
        assert_eq!(
            flow.on_request_body(1_048_577, false),
            Step::Fail(RequestError::PayloadTooLarge { limit: 1_048_576 })
        );
        assert_eq!(flow.on_request_body(2_000_000, true), Step::Continue);
    }

    #[test]
    fn disabled_route_and_invalid_route() {
        let mut flow = RequestFlow::default();
        assert_eq!(
            flow.on_request_headers(Ok(RouteTarget::Disabled), None, None, true),
            Step::Continue
        );
        let mut flow = RequestFlow::default();
        let step = flow.on_request_headers(
            Err(ConfigError::new("invocation_type", "bad")),
            Some("c".into()),
            None,
            true,
        );
        assert!(matches!(
            step,
            Step::Fail(RequestError::RouteConfigInvalid(_))
        ));
    }

    #[test]
    fn no_cluster_fails_unless_configured() {
        let plain = config("");
        let mut flow = RequestFlow::default();
        assert_eq!(
            flow.on_request_headers(route(&plain), None, None, true),
            Step::Fail(RequestError::NoCluster)
        );
        let with_cluster = config(r#","cluster":"lambda_api""#);
        let mut flow = RequestFlow::default();
        assert_eq!(
            flow.on_request_headers(route(&with_cluster), None, None, true),
            Step::ReadBody
        );
        match flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT) {
            Step::Dispatch(request) => assert_eq!(request.cluster, "lambda_api"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trailers_complete_the_body() {
        let config = config("");
        let mut flow = RequestFlow::default();
        flow.on_request_headers(route(&config), Some("c".into()), None, false);
        assert_eq!(flow.on_request_body(3, false), Step::Pause);
        assert_eq!(flow.on_request_trailers(), Step::ReadBody);
    }

    fn waiting(config: &FilterConfig) -> RequestFlow {
        let mut flow = RequestFlow::default();
        flow.on_request_headers(route(config), Some("lambda".into()), Some(2), false);
        flow.on_request_body(2, true);
        assert_eq!(
            flow.on_body_complete(b"{}".to_vec(), None, t(0), WAIT),
            Step::WaitForCredentials { deadline: t(3000) }
        );
        flow
    }

    #[test]
    fn waiting_for_credentials_then_they_arrive() {
        let config = config("");
        let mut flow = waiting(&config);
        match flow.on_credentials_ready(&creds(), t(150)) {
            Step::Dispatch(request) => {
                assert_eq!(request.body, b"{}");
                assert!(request.header("authorization").is_some());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(flow.on_dispatched(Ok(3), t(150)), Step::Pause);
        assert!(flow
            .on_invoke_answer(3, lambda_answer(200, &[], "{}"), t(200))
            .is_some());
    }

    #[test]
    fn waiting_for_credentials_times_out() {
        let config = config("");
        let mut flow = waiting(&config);
        let error = RequestError::CredentialsUnavailable {
            class: "sts_access_denied".into(),
            message: "AssumeRole was denied".into(),
        };
        assert_eq!(
            flow.on_credentials_timeout(error.clone()),
            Step::Fail(error.clone())
        );
        assert_eq!(flow.phase(), &Phase::Finished);
        // A late wake-up finds nothing to do.
        assert_eq!(flow.on_credentials_ready(&creds(), t(5000)), Step::Continue);
        assert_eq!(flow.on_credentials_timeout(error), Step::Continue);
    }
}
