//! The per-request state machine. The host shell feeds it callbacks and carries out the
//! [`Step`] it returns. Every pause has exactly one way out: a dispatched Invoke always
//! ends in `on_invoke_answer` (the host reports success, failure and timeout there), a
//! request forwarded in place ends with its answer's headers (or, when the route times out
//! or the upstream resets, with the end of the stream, see `on_stream_done`), and every other
//! pause ends when the body is complete.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::config::{ConfigError, InvokeTarget, PayloadFormat, CUSTOM_PARAMETERS_FIELD};
use crate::credentials::Credentials;
use crate::error::{ClientReply, RequestError};
use crate::event::{build_event, merge_custom_parameters, RequestInfo};
use crate::invoke::{build_invoke, OutboundRequest};
use crate::response::{decode_invoke_answer, relayable_success, InvokeAnswer, MAX_ANSWER_BYTES};
use crate::route::RouteTarget;

/// Slack for timer granularity when deciding whether an empty answer was the timeout.
const TIMEOUT_SLACK: Duration = Duration::from_millis(20);

/// Where the filter sits in Envoy's filter chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In the HTTP connection manager's `http_filters`: the Invoke is a call the filter
    /// dispatches, and the client gets a local reply.
    Downstream,
    /// In the router's `upstream_http_filters`: the request itself is rewritten into the
    /// Invoke and the answer comes back through the router, so the route's timeout, retry
    /// policy and connection pool apply and no second stream is opened.
    Upstream,
}

/// How one request's Invoke is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// `dispatch_http_call`, answered with a local reply.
    Dispatch,
    /// The request is rewritten in place and continues to the route's cluster; the answer
    /// is rewritten on its way back. Only as an upstream filter, and only when the request
    /// can carry the payload (Envoy cannot give a body to a request that ended with its
    /// headers, so body-less requests with event payloads are dispatched).
    InPlace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Start,
    ReceivingBody {
        target: Rc<InvokeTarget>,
        cluster: String,
        delivery: Delivery,
    },
    /// The body is read; no usable credentials yet (STS fetch pending or failing).
    AwaitingCredentials {
        target: Rc<InvokeTarget>,
        cluster: String,
        delivery: Delivery,
        body: Vec<u8>,
        deadline: SystemTime,
    },
    AwaitingInvoke {
        token: u32,
        target: Rc<InvokeTarget>,
        sent_at: SystemTime,
    },
    /// Rewritten in place and sent on: waiting for the answer's headers.
    Forwarded {
        target: Rc<InvokeTarget>,
        sent_at: SystemTime,
    },
    /// The answer has to be read whole before the client's response can be written.
    BufferingAnswer {
        target: Rc<InvokeTarget>,
        answer: InvokeAnswer,
    },
    /// A successful answer is going to the client as it arrives.
    RelayingAnswer,
    /// The answer was replaced by an error: its body is dropped (the first chunk carries the
    /// error's body when the error was decided at the headers).
    DroppingAnswer {
        error_body: Option<Vec<u8>>,
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
    /// Rewrite the request in place into this Invoke and let it continue: replace the
    /// request's headers with these (keeping `:scheme`) and, when `replace_body`, its body.
    Forward {
        invoke: OutboundRequest,
        replace_body: bool,
    },
    /// The answer can go to the client as it streams: replace its headers with these
    /// (`:status` first) and let the body through.
    RelayAnswer(Vec<(String, String)>),
    /// The relayed answer is complete: count the success.
    AnswerRelayed,
    /// The answer's body is complete: read it and call [`RequestFlow::on_answer_body`].
    ReadAnswerBody,
    /// Replace the answer (status, headers and the body read so far) with this response.
    RewriteAnswer(ClientReply),
    /// Replace the answer with the error's response (and log it).
    RewriteAnswerWithError(RequestError),
    /// Replace this chunk of the answer's body with these bytes (empty: drop it).
    ReplaceAnswerBody(Vec<u8>),
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

    /// When the Invoke in flight was sent.
    pub fn invoke_sent_at(&self) -> Option<SystemTime> {
        match &self.phase {
            Phase::AwaitingInvoke { sent_at, .. } | Phase::Forwarded { sent_at, .. } => {
                Some(*sent_at)
            }
            _ => None,
        }
    }

    /// Whether the request was forwarded in place and its answer not yet handled.
    pub fn awaits_answer_in_place(&self) -> bool {
        matches!(
            self.phase,
            Phase::Forwarded { .. }
                | Phase::BufferingAnswer { .. }
                | Phase::RelayingAnswer
                | Phase::DroppingAnswer { .. }
        )
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
        placement: Placement,
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
        // In place only to the cluster the router already picked, and only with somewhere to
        // put the payload: a passthrough body, or an event that replaces the request's body.
        let in_place = placement == Placement::Upstream
            && (target.cluster.is_none() || target.cluster == route_cluster)
            && (!end_of_stream || target.payload == PayloadFormat::Passthrough);
        let delivery = if in_place {
            Delivery::InPlace
        } else {
            Delivery::Dispatch
        };
        let Some(cluster) = target.cluster.clone().or(route_cluster) else {
            return self.fail(RequestError::NoCluster);
        };
        let limit = target.invocation_type.payload_limit();
        if content_length.is_some_and(|length| length > limit) {
            return self.fail(RequestError::PayloadTooLarge { limit });
        }
        self.phase = Phase::ReceivingBody {
            target,
            cluster,
            delivery,
        };
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

    /// Trailers end the request like a last empty body chunk. The Invoke carries none, and
    /// a request forwarded in place would take them along, so such a request is dispatched.
    pub fn on_request_trailers(&mut self) -> Step {
        match &mut self.phase {
            Phase::ReceivingBody { delivery, .. } => {
                *delivery = Delivery::Dispatch;
                Step::ReadBody
            }
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
        let Phase::ReceivingBody {
            target,
            cluster,
            delivery,
        } = &self.phase
        else {
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
                    delivery: *delivery,
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
            delivery,
            body,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Finished)
        else {
            return Step::Continue;
        };
        self.phase = Phase::ReceivingBody {
            target,
            cluster,
            delivery,
        };
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
        let Phase::ReceivingBody {
            target,
            cluster,
            delivery,
        } = &self.phase
        else {
            return Step::Continue;
        };
        let passthrough_unchanged =
            target.payload == PayloadFormat::Passthrough && target.custom_parameters.is_empty();
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
        let invoke = match build_invoke(target, cluster, credentials, payload, now) {
            Ok(invoke) => invoke,
            Err(e) => return self.fail(RequestError::Signing(e)),
        };
        match delivery {
            Delivery::Dispatch => Step::Dispatch(invoke),
            Delivery::InPlace => {
                let replace_body = !passthrough_unchanged;
                self.phase = Phase::Forwarded {
                    target: Rc::clone(target),
                    sent_at: now,
                };
                Step::Forward {
                    invoke,
                    replace_body,
                }
            }
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

    /// The answer's headers, for a request forwarded in place. Successful passthrough
    /// answers stream through with their headers rewritten; everything else is read whole
    /// and decoded like a dispatched Invoke's answer.
    pub fn on_answer_headers(
        &mut self,
        headers: Vec<(String, String)>,
        end_of_stream: bool,
    ) -> Step {
        let Phase::Forwarded { target, .. } = &self.phase else {
            return Step::Continue;
        };
        let target = Rc::clone(target);
        let status = headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| value.parse::<u16>().ok());
        let answer = InvokeAnswer {
            status,
            headers,
            body: Vec::new(),
            unread_body_bytes: None,
        };
        if end_of_stream {
            self.phase = Phase::Finished;
            return match decode_invoke_answer(&target, answer, false) {
                Ok(reply) => Step::RewriteAnswer(reply),
                Err(error) => Step::RewriteAnswerWithError(error),
            };
        }
        if let Some(headers) = relayable_success(&target, &answer) {
            self.phase = Phase::RelayingAnswer;
            return Step::RelayAnswer(headers);
        }
        // Known to be over Lambda's limit: refuse it now, before Envoy buffers any of it.
        if let Some(size) = answer
            .header("content-length")
            .and_then(|length| length.trim().parse::<usize>().ok())
            .filter(|size| *size > MAX_ANSWER_BYTES)
        {
            let error = RequestError::ResponseTooLarge {
                size,
                limit: MAX_ANSWER_BYTES,
            };
            self.phase = Phase::DroppingAnswer {
                error_body: Some(Vec::new()),
            };
            return Step::RewriteAnswerWithError(error);
        }
        self.phase = Phase::BufferingAnswer { target, answer };
        Step::Pause
    }

    /// The error reply's body to send in place of the answer's first body chunk, when the
    /// answer was refused at its headers (set by the shell, which renders the reply).
    pub fn set_refusal_body(&mut self, body: Vec<u8>) {
        if let Phase::DroppingAnswer { error_body } = &mut self.phase {
            *error_body = Some(body);
        }
    }

    /// A chunk of the answer's body arrived; `buffered_size` is the size buffered so far
    /// (the chunk's size once the answer flows).
    pub fn on_answer_body(&mut self, buffered_size: usize, end_of_stream: bool) -> Step {
        match &mut self.phase {
            Phase::BufferingAnswer { .. } if buffered_size > MAX_ANSWER_BYTES => {
                self.phase = if end_of_stream {
                    Phase::Finished
                } else {
                    Phase::DroppingAnswer { error_body: None }
                };
                Step::RewriteAnswerWithError(RequestError::ResponseTooLarge {
                    size: buffered_size,
                    limit: MAX_ANSWER_BYTES,
                })
            }
            Phase::BufferingAnswer { .. } if end_of_stream => Step::ReadAnswerBody,
            Phase::BufferingAnswer { .. } => Step::Pause,
            Phase::RelayingAnswer if end_of_stream => {
                self.phase = Phase::Finished;
                Step::AnswerRelayed
            }
            Phase::DroppingAnswer { error_body } => {
                let replacement = error_body.take().unwrap_or_default();
                if end_of_stream {
                    self.phase = Phase::Finished;
                }
                Step::ReplaceAnswerBody(replacement)
            }
            _ => Step::Continue,
        }
    }

    /// The answer's whole body, read from the host.
    pub fn on_answer_complete(&mut self, body: Vec<u8>) -> Step {
        let Phase::BufferingAnswer { target, mut answer } =
            std::mem::replace(&mut self.phase, Phase::Finished)
        else {
            return Step::Continue;
        };
        answer.body = body;
        match decode_invoke_answer(&target, answer, false) {
            Ok(reply) => Step::RewriteAnswer(reply),
            Err(error) => Step::RewriteAnswerWithError(error),
        }
    }

    /// The stream ended (Envoy is done with the request). A request forwarded in place whose
    /// answer never came, or never came whole, was ended by Envoy (route timeout, upstream
    /// reset or connect failure), which answered or cut the client's response itself:
    /// returns the error to count and log.
    pub fn on_stream_done(&mut self) -> Option<RequestError> {
        let unanswered = matches!(
            self.phase,
            Phase::Forwarded { .. } | Phase::BufferingAnswer { .. } | Phase::RelayingAnswer
        );
        self.phase = Phase::Finished;
        unanswered.then_some(RequestError::EndedByRouter)
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
            flow.on_request_headers(
                route(config),
                Some("lambda".into()),
                Some(2),
                false,
                Placement::Downstream
            ),
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
            flow.on_request_headers(
                route(&config),
                Some("lambda".into()),
                None,
                true,
                Placement::Downstream
            ),
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
        let step = flow.on_request_headers(
            route(&sync),
            Some("c".into()),
            Some(7_000_000),
            false,
            Placement::Downstream,
        );
        assert_eq!(
            step,
            Step::Fail(RequestError::PayloadTooLarge { limit: 6_291_456 })
        );
        let event = config(r#","invocation_type":"Event""#);
        let mut flow = RequestFlow::default();
        let step = flow.on_request_headers(
            route(&event),
            Some("c".into()),
            Some(1_100_000),
            false,
            Placement::Downstream,
        );
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
            flow.on_request_headers(
                route(&config),
                Some("c".into()),
                None,
                false,
                Placement::Downstream
            ),
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
            flow.on_request_headers(
                Ok(RouteTarget::Disabled),
                None,
                None,
                true,
                Placement::Downstream
            ),
            Step::Continue
        );
        let mut flow = RequestFlow::default();
        let step = flow.on_request_headers(
            Err(ConfigError::new("invocation_type", "bad")),
            Some("c".into()),
            None,
            true,
            Placement::Downstream,
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
            flow.on_request_headers(route(&plain), None, None, true, Placement::Downstream),
            Step::Fail(RequestError::NoCluster)
        );
        let with_cluster = config(r#","cluster":"lambda_api""#);
        let mut flow = RequestFlow::default();
        assert_eq!(
            flow.on_request_headers(
                route(&with_cluster),
                None,
                None,
                true,
                Placement::Downstream
            ),
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
        flow.on_request_headers(
            route(&config),
            Some("c".into()),
            None,
            false,
            Placement::Downstream,
        );
        assert_eq!(flow.on_request_body(3, false), Step::Pause);
        assert_eq!(flow.on_request_trailers(), Step::ReadBody);
    }

    fn waiting(config: &FilterConfig) -> RequestFlow {
        let mut flow = RequestFlow::default();
        flow.on_request_headers(
            route(config),
            Some("lambda".into()),
            Some(2),
            false,
            Placement::Downstream,
        );
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

    // ---- In place (upstream filter) ----

    fn forwarded(
        config: &FilterConfig,
        end_of_stream: bool,
    ) -> (RequestFlow, OutboundRequest, bool) {
        let mut flow = RequestFlow::default();
        let first = flow.on_request_headers(
            route(config),
            Some("lambda".into()),
            None,
            end_of_stream,
            Placement::Upstream,
        );
        let body = if end_of_stream {
            assert_eq!(first, Step::ReadBody);
            Vec::new()
        } else {
            assert_eq!(first, Step::Pause);
            assert_eq!(flow.on_request_body(7, true), Step::ReadBody);
            br#"{"a":1}"#.to_vec()
        };
        match flow.on_body_complete(body, Some(&creds()), t(0), WAIT) {
            Step::Forward {
                invoke,
                replace_body,
            } => {
                assert!(matches!(flow.phase(), Phase::Forwarded { .. }));
                assert!(flow.awaits_answer_in_place());
                assert_eq!(flow.invoke_sent_at(), Some(t(0)));
                (flow, invoke, replace_body)
            }
            other => panic!("expected forward, got {other:?}"),
        }
    }

    fn answer_headers(status: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut headers = vec![(":status".to_string(), status.to_string())];
        headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        headers
    }

    #[test]
    fn in_place_passthrough_keeps_the_body_and_relays_the_answer() {
        let config = config("");
        let (mut flow, invoke, replace_body) = forwarded(&config, false);
        assert!(!replace_body);
        assert_eq!(invoke.body, br#"{"a":1}"#);
        assert_eq!(invoke.header(":method"), Some("POST"));
        assert!(invoke.header("authorization").is_some());
        let step = flow.on_answer_headers(
            answer_headers(
                "200",
                &[
                    ("content-length", "3"),
                    ("x-amzn-requestid", "r"),
                    ("content-type", "text/plain"),
                ],
            ),
            false,
        );
        assert_eq!(
            step,
            Step::RelayAnswer(vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "application/json".into()),
                ("content-length".into(), "3".into()),
            ])
        );
        assert!(flow.awaits_answer_in_place());
        assert_eq!(flow.on_answer_body(3, true), Step::AnswerRelayed);
        assert_eq!(flow.on_stream_done(), None);
    }

    #[test]
    fn in_place_get_without_body_is_forwarded_with_an_empty_payload() {
        let config = config("");
        let (_, invoke, replace_body) = forwarded(&config, true);
        assert!(!replace_body);
        assert!(invoke.body.is_empty());
        assert_eq!(invoke.header("content-length"), Some("0"));
    }

    #[test]
    fn event_without_body_is_dispatched_even_upstream() {
        let config = config(r#","payload":"apigw_v2""#);
        let mut flow = RequestFlow::default();
        assert_eq!(
            flow.on_request_headers(
                route(&config),
                Some("lambda".into()),
                None,
                true,
                Placement::Upstream
            ),
            Step::ReadBody
        );
        assert!(matches!(
            flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT),
            Step::Dispatch(_)
        ));
    }

    #[test]
    fn a_configured_cluster_other_than_the_routes_is_dispatched() {
        let config = config(r#","cluster":"elsewhere""#);
        let mut flow = RequestFlow::default();
        flow.on_request_headers(
            route(&config),
            Some("lambda".into()),
            None,
            true,
            Placement::Upstream,
        );
        match flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT) {
            Step::Dispatch(invoke) => assert_eq!(invoke.cluster, "elsewhere"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trailers_switch_an_in_place_request_to_dispatch() {
        let config = config("");
        let mut flow = RequestFlow::default();
        flow.on_request_headers(
            route(&config),
            Some("lambda".into()),
            None,
            false,
            Placement::Upstream,
        );
        assert_eq!(flow.on_request_trailers(), Step::ReadBody);
        assert!(matches!(
            flow.on_body_complete(b"{}".to_vec(), Some(&creds()), t(0), WAIT),
            Step::Dispatch(_)
        ));
    }

    #[test]
    fn in_place_event_replaces_the_body_and_decodes_the_whole_answer() {
        let config = config(r#","payload":"apigw_v2""#);
        let (mut flow, invoke, replace_body) = forwarded(&config, false);
        assert!(replace_body);
        let event: serde_json::Value = serde_json::from_slice(&invoke.body).unwrap();
        assert_eq!(event["version"], "2.0");
        assert_eq!(
            flow.on_answer_headers(answer_headers("200", &[("x-amzn-requestid", "r")]), false),
            Step::Pause
        );
        assert_eq!(flow.on_answer_body(10, false), Step::Pause);
        assert_eq!(flow.on_answer_body(60, true), Step::ReadAnswerBody);
        let step = flow.on_answer_complete(
            br#"{"statusCode":201,"headers":{"x-app":"1"},"body":"made"}"#.to_vec(),
        );
        match step {
            Step::RewriteAnswer(reply) => {
                assert_eq!(reply.status, 201);
                assert_eq!(reply.header("x-app"), Some("1"));
                assert_eq!(reply.body, b"made");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(flow.phase(), &Phase::Finished);
        assert_eq!(flow.on_stream_done(), None);
    }

    #[test]
    fn in_place_function_error_is_rewritten_to_the_error_reply() {
        let config = config("");
        let (mut flow, _, _) = forwarded(&config, false);
        let headers = answer_headers(
            "200",
            &[
                ("x-amz-function-error", "Unhandled"),
                ("x-amzn-requestid", "r"),
            ],
        );
        assert_eq!(flow.on_answer_headers(headers, false), Step::Pause);
        assert_eq!(flow.on_answer_body(40, true), Step::ReadAnswerBody);
        match flow.on_answer_complete(br#"{"errorMessage":"boom"}"#.to_vec()) {
            Step::RewriteAnswerWithError(RequestError::FunctionError {
                status, message, ..
            }) => {
                assert_eq!(status, 502);
                assert_eq!(message.as_deref(), Some("boom"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn in_place_api_error_without_body_is_rewritten_at_the_headers() {
        let config = config("");
        let (mut flow, _, _) = forwarded(&config, false);
        let headers = answer_headers(
            "429",
            &[
                ("x-amzn-errortype", "TooManyRequestsException"),
                ("retry-after", "3"),
            ],
        );
        match flow.on_answer_headers(headers, true) {
            Step::RewriteAnswerWithError(RequestError::Throttled { retry_after, .. }) => {
                assert_eq!(retry_after.as_deref(), Some("3"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(flow.phase(), &Phase::Finished);
    }

    #[test]
    fn in_place_answer_over_the_limit_while_buffering_is_replaced_and_the_rest_dropped() {
        let config = config("");
        let (mut flow, _, _) = forwarded(&config, false);
        let headers = answer_headers("200", &[("x-amz-function-error", "Unhandled")]);
        assert_eq!(flow.on_answer_headers(headers, false), Step::Pause);
        assert_eq!(flow.on_answer_body(MAX_ANSWER_BYTES, false), Step::Pause);
        assert_eq!(
            flow.on_answer_body(MAX_ANSWER_BYTES + 1, false),
            Step::RewriteAnswerWithError(RequestError::ResponseTooLarge {
                size: MAX_ANSWER_BYTES + 1,
                limit: MAX_ANSWER_BYTES
            })
        );
        assert!(flow.awaits_answer_in_place());
        assert_eq!(
            flow.on_answer_body(100, false),
            Step::ReplaceAnswerBody(Vec::new())
        );
        assert_eq!(
            flow.on_answer_body(100, true),
            Step::ReplaceAnswerBody(Vec::new())
        );
        assert_eq!(flow.phase(), &Phase::Finished);
        assert_eq!(flow.on_answer_body(100, true), Step::Continue);
    }

    #[test]
    fn in_place_answer_announced_over_the_limit_is_refused_at_its_headers() {
        let config = config("");
        let (mut flow, _, _) = forwarded(&config, false);
        let headers = answer_headers("200", &[("content-length", "99999999")]);
        assert_eq!(
            flow.on_answer_headers(headers, false),
            Step::RewriteAnswerWithError(RequestError::ResponseTooLarge {
                size: 99_999_999,
                limit: MAX_ANSWER_BYTES
            })
        );
        flow.set_refusal_body(b"{\"error\"}".to_vec());
        assert_eq!(
            flow.on_answer_body(65536, false),
            Step::ReplaceAnswerBody(b"{\"error\"}".to_vec())
        );
        assert_eq!(
            flow.on_answer_body(65536, false),
            Step::ReplaceAnswerBody(Vec::new())
        );
        assert_eq!(
            flow.on_answer_body(10, true),
            Step::ReplaceAnswerBody(Vec::new())
        );
        assert_eq!(flow.on_stream_done(), None);
    }

    #[test]
    fn in_place_relayed_answer_counts_when_complete_and_a_cut_one_is_an_error() {
        let config = config("");
        let (mut flow, _, _) = forwarded(&config, false);
        assert!(matches!(
            flow.on_answer_headers(answer_headers("200", &[]), false),
            Step::RelayAnswer(_)
        ));
        assert_eq!(flow.on_answer_body(10, false), Step::Continue);
        assert_eq!(flow.on_answer_body(10, true), Step::AnswerRelayed);
        assert_eq!(flow.on_stream_done(), None);

        let (mut cut, _, _) = forwarded(&config, false);
        assert!(matches!(
            cut.on_answer_headers(answer_headers("200", &[]), false),
            Step::RelayAnswer(_)
        ));
        assert_eq!(cut.on_answer_body(10, false), Step::Continue);
        assert_eq!(cut.on_stream_done(), Some(RequestError::EndedByRouter));
    }

    #[test]
    fn in_place_timeout_or_reset_way_out_is_the_end_of_the_stream() {
        let config = config("");
        let (mut flow, _, _) = forwarded(&config, false);
        assert_eq!(flow.on_stream_done(), Some(RequestError::EndedByRouter));
        assert_eq!(flow.on_stream_done(), None);
        assert_eq!(
            flow.on_answer_headers(answer_headers("200", &[]), false),
            Step::Continue
        );
    }

    #[test]
    fn in_place_request_waits_for_credentials_then_is_forwarded() {
        let config = config("");
        let mut flow = RequestFlow::default();
        flow.on_request_headers(
            route(&config),
            Some("lambda".into()),
            Some(2),
            false,
            Placement::Upstream,
        );
        flow.on_request_body(2, true);
        assert_eq!(
            flow.on_body_complete(b"{}".to_vec(), None, t(0), WAIT),
            Step::WaitForCredentials { deadline: t(3000) }
        );
        assert!(matches!(
            flow.on_credentials_ready(&creds(), t(100)),
            Step::Forward { .. }
        ));
        assert_eq!(flow.invoke_sent_at(), Some(t(100)));
    }
}
