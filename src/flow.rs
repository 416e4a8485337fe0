//! The per-request state machine. The host shell feeds it callbacks and carries out the
//! [`Step`] it returns. Every pause has exactly one way out: a dispatched Invoke always
//! ends in `on_invoke_answer` (the host reports success, failure and timeout there), a
//! request forwarded in place ends with its answer's headers (or, when the route times out
//! or the upstream resets, with the end of the stream, see `on_stream_done`), and every other
//! pause ends when the body is complete.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::answer::eventstream::{
    StreamDecoder, StreamError, StreamEvent, DEFAULT_MAX_FRAME_BYTES,
};
use crate::answer::prelude::{PreludeSplitter, Split};
use crate::answer::proxy_response::is_bodyless_status;
use crate::answer::{decode_invoke_answer, relayable_success, MAX_ANSWER_BYTES};
use crate::config::{ConfigError, InvokeTarget, PayloadFormat, ProfileId, CUSTOM_PARAMETERS_FIELD};
use crate::credentials::Credentials;
use crate::error::RequestError;
use crate::event::{build_event, merge_custom_parameters, RequestInfo};
use crate::http::CallAnswer;
use crate::http::ClientReply;
use crate::http::OutboundRequest;
use crate::invoke::{build_invoke, build_stream_invoke};
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
    /// In the HCM with the same filter also upstream (`split_placement`): takes only the
    /// requests that cannot be rewritten in place, so that the upstream twin never has to
    /// dispatch (a local reply there ends the upstream request, and Envoy closes its
    /// HTTP/1 connection).
    DownstreamSplit,
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
        /// Sent as `InvokeWithResponseStream` (`invoke_mode: response_stream`).
        streaming: bool,
    },
    /// The answer has to be read whole before the client's response can be written.
    BufferingAnswer {
        target: Rc<InvokeTarget>,
        answer: CallAnswer,
    },
    /// A successful answer is going to the client as it arrives.
    RelayingAnswer,
    /// A successful `InvokeWithResponseStream` answer: its event stream is decoded as it
    /// arrives (the decoders are in [`RequestFlow`]); until the function's status and
    /// headers are known the answer is held, then each chunk becomes the function's bytes.
    StreamingAnswer,
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
    /// A streamed answer's body: read `size` bytes of the answer's body buffer from `start`
    /// (the bytes not decoded yet) and call [`RequestFlow::on_stream_bytes`].
    ReadStream {
        start: usize,
        size: usize,
        end_of_stream: bool,
    },
    /// The streamed answer's head is known: replace the answer's headers with these
    /// (`:status` first) and its whole buffered body with `body`, and let it go. `complete`:
    /// the stream also ended well (count the success).
    StreamHead {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        complete: bool,
    },
    /// Replace this chunk of the streamed answer with these bytes; `complete` as above.
    StreamChunk { body: Vec<u8>, complete: bool },
    /// The stream failed after bytes reached the client: end it abnormally (reset), log
    /// and count the error.
    AbortStream(RequestError),
}

/// Why a `response_stream` route's request is sent as the buffered Invoke (for the shell's
/// log line, once per route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFallback {
    /// The route's streaming path (names the function and qualifier).
    pub route: String,
    pub reason: &'static str,
}

/// The decoders of a streamed answer.
#[derive(Debug)]
struct AnswerStream {
    function_error_status: u16,
    decoder: StreamDecoder,
    splitter: PreludeSplitter,
    /// While the head is held, how many bytes of Envoy's buffered body were decoded.
    fed: usize,
    head_sent: bool,
    /// The function's status carries no body (204, 304): its bytes are dropped.
    bodyless: bool,
}

impl AnswerStream {
    /// Decodes the next bytes of the answer's body: the head (once) and the function's bytes.
    fn decode(&mut self, bytes: &[u8], end_of_stream: bool) -> Result<Split, RequestError> {
        let mut out = Split::default();
        let events = self
            .decoder
            .push(bytes)
            .map_err(|e| RequestError::from(&e))?;
        for event in events {
            if let Some(error) = RequestError::from_stream_event(&event, self.function_error_status)
            {
                return Err(error);
            }
            if let StreamEvent::Payload(payload) = event {
                let split = self
                    .splitter
                    .push(payload)
                    .map_err(|e| RequestError::from(&e))?;
                merge_split(&mut out, split);
            }
        }
        if end_of_stream {
            self.decoder.finish().map_err(|e| RequestError::from(&e))?;
            let split = self.splitter.finish().map_err(|e| RequestError::from(&e))?;
            merge_split(&mut out, split);
        }
        Ok(out)
    }
}

fn merge_split(out: &mut Split, split: Split) {
    if split.head.is_some() {
        out.head = split.head;
    }
    if out.body.is_empty() {
        out.body = split.body;
    } else {
        out.body.extend_from_slice(&split.body);
    }
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
    /// Why a `response_stream` route's request cannot stream, when it cannot.
    stream_fallback: Option<&'static str>,
    /// The decoders of a streamed answer ([`Phase::StreamingAnswer`]).
    stream: Option<Box<AnswerStream>>,
    /// The client asked with HEAD: its answer carries no body. Envoy drops it for local
    /// replies and plain proxying, but not for a HEAD rewritten in place into a POST Invoke.
    head: bool,
}

impl Default for RequestFlow {
    fn default() -> Self {
        RequestFlow {
            phase: Phase::Start,
            meta: None,
            stream_fallback: None,
            stream: None,
            head: false,
        }
    }
}

impl RequestFlow {
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The client's method is HEAD (known to the shell when it rewrites the request).
    pub fn set_head_request(&mut self) {
        self.head = true;
    }

    /// Whether the answer must go without body (see [`RequestFlow::set_head_request`]).
    pub fn is_head_request(&self) -> bool {
        self.head
    }

    /// Whether the payload format needs [`RequestMeta`] (set it with `set_request_meta`).
    pub fn wants_request_meta(&self) -> bool {
        matches!(&self.phase, Phase::ReceivingBody { target, .. }
            if matches!(target.payload, PayloadFormat::Event(_)))
    }

    pub fn set_request_meta(&mut self, meta: RequestMeta) {
        self.meta = Some(meta);
    }

    /// Whether the request is to be rewritten in place (as far as its headers tell).
    pub fn forwards_in_place(&self) -> bool {
        matches!(
            self.phase,
            Phase::ReceivingBody {
                delivery: Delivery::InPlace,
                ..
            }
        )
    }

    /// The router retried this request and the client's request it was built from is not
    /// known (see `attempts`).
    pub fn on_unknown_retry(&mut self) -> Step {
        self.fail(RequestError::RetryUnavailable)
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
                | Phase::StreamingAnswer
                | Phase::DroppingAnswer { .. }
        )
    }

    /// Why this `response_stream` request is sent as the buffered Invoke, once it is
    /// dispatched (None for any other request, and after the first call).
    pub fn take_stream_fallback(&mut self) -> Option<StreamFallback> {
        let Phase::ReceivingBody {
            target, delivery, ..
        } = &self.phase
        else {
            return None;
        };
        if *delivery != Delivery::Dispatch {
            return None;
        }
        let route = target.stream_path.clone()?;
        let reason = self.stream_fallback.take()?;
        Some(StreamFallback { route, reason })
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
        if target.credentials_profile.is_none() {
            // Never signed with some other credentials: refused, as route resolution does.
            return self.fail(RequestError::RouteConfigInvalid(ConfigError::new(
                "credentials",
                "names no credentials profile, and the configuration has no top-level \
                 credentials",
            )));
        }
        // In place only to the cluster the router already picked, and only with somewhere to
        // put the payload: a passthrough body, or an event that replaces the request's body.
        let can_go_in_place = (target.cluster.is_none() || target.cluster == route_cluster)
            && (!end_of_stream || target.payload == PayloadFormat::Passthrough);
        if placement == Placement::DownstreamSplit && can_go_in_place {
            self.phase = Phase::Finished;
            return Step::Continue;
        }
        let in_place = placement == Placement::Upstream && can_go_in_place;
        let delivery = if in_place {
            Delivery::InPlace
        } else {
            Delivery::Dispatch
        };
        if !in_place && target.stream_path.is_some() {
            self.stream_fallback = Some(if can_go_in_place {
                "the filter is not in the router's upstream_http_filters"
            } else if target.cluster.is_some() && target.cluster != route_cluster {
                "the Invoke goes to another cluster than the route's"
            } else {
                "a request without a body cannot carry the event payload"
            });
        }
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
            Phase::ReceivingBody {
                delivery, target, ..
            } => {
                if *delivery == Delivery::InPlace && target.stream_path.is_some() {
                    self.stream_fallback = Some("the request has trailers");
                }
                *delivery = Delivery::Dispatch;
                Step::ReadBody
            }
            _ => Step::Continue,
        }
    }

    /// The credentials profile that signs this request's Invoke, while it is to be signed.
    pub fn credentials_profile(&self) -> Option<ProfileId> {
        match &self.phase {
            Phase::ReceivingBody { target, .. } | Phase::AwaitingCredentials { target, .. } => {
                target.credentials_profile
            }
            _ => None,
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
        // Only a request forwarded in place can stream (its answer flows through the router).
        let streaming = *delivery == Delivery::InPlace && target.stream_path.is_some();
        let built = if streaming {
            build_stream_invoke(target, cluster, credentials, payload, now)
        } else {
            build_invoke(target, cluster, credentials, payload, now)
        };
        let invoke = match built {
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
                    streaming,
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
        answer: CallAnswer,
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
        let Phase::Forwarded {
            target, streaming, ..
        } = &self.phase
        else {
            return Step::Continue;
        };
        let target = Rc::clone(target);
        let streaming = *streaming;
        let status = headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| value.parse::<u16>().ok());
        let answer = CallAnswer {
            status,
            headers,
            body: Vec::new(),
            unread_body_bytes: None,
        };
        // A streamed answer that Lambda accepted: decode its event stream. Anything else
        // (an API error, X-Amz-Function-Error) is a plain answer, decoded as in buffered mode.
        if streaming && status == Some(200) && answer.header("x-amz-function-error").is_none() {
            if end_of_stream {
                self.phase = Phase::Finished;
                return Step::RewriteAnswerWithError(RequestError::from(
                    &StreamError::MissingComplete,
                ));
            }
            // The answer's content type is the function's stream content type.
            self.stream = Some(Box::new(AnswerStream {
                function_error_status: target.function_error_status,
                decoder: StreamDecoder::new(DEFAULT_MAX_FRAME_BYTES),
                splitter: PreludeSplitter::new(answer.header("content-type")),
                fed: 0,
                head_sent: false,
                bodyless: false,
            }));
            self.phase = Phase::StreamingAnswer;
            return Step::Pause;
        }
        if end_of_stream {
            self.phase = Phase::Finished;
            return match decode_invoke_answer(&target, answer, false) {
                Ok(reply) => Step::RewriteAnswer(reply),
                Err(error) => Step::RewriteAnswerWithError(error),
            };
        }
        // A HEAD's answer is read whole, so that its body can be dropped in one place.
        if let Some(headers) = relayable_success(&target, &answer).filter(|_| !self.head) {
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
        if self.phase == Phase::StreamingAnswer {
            return self.on_stream_body(buffered_size, end_of_stream);
        }
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

    /// A chunk of a streamed answer: while the head is held, Envoy buffers the body and
    /// `buffered_size` counts it all (only the bytes not yet decoded are read); afterwards
    /// it is the chunk's size.
    fn on_stream_body(&mut self, buffered_size: usize, end_of_stream: bool) -> Step {
        let Some(stream) = self.stream.as_mut() else {
            return Step::Continue;
        };
        let (start, size) = if stream.head_sent {
            (0, buffered_size)
        } else {
            let start = stream.fed.min(buffered_size);
            stream.fed = buffered_size;
            (start, buffered_size - start)
        };
        Step::ReadStream {
            start,
            size,
            end_of_stream,
        }
    }

    /// The bytes asked for with [`Step::ReadStream`].
    pub fn on_stream_bytes(&mut self, bytes: &[u8], end_of_stream: bool) -> Step {
        if self.phase != Phase::StreamingAnswer {
            return Step::Continue;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Step::Continue;
        };
        let head_sent = stream.head_sent;
        let bodyless = stream.bodyless;
        let decoded = stream.decode(bytes, end_of_stream);
        let done = end_of_stream || decoded.is_err();
        if done {
            self.stream = None;
            self.phase = Phase::Finished;
        }
        match decoded {
            Err(error) if head_sent => Step::AbortStream(error),
            Err(error) => {
                // Nothing reached the client yet: the error replaces the answer, the rest
                // of its body is dropped.
                if !end_of_stream {
                    self.phase = Phase::DroppingAnswer { error_body: None };
                }
                Step::RewriteAnswerWithError(error)
            }
            Ok(Split {
                head: Some(head),
                mut body,
            }) => {
                let bodyless = is_bodyless_status(head.status);
                if let Some(stream) = self.stream.as_mut() {
                    stream.head_sent = true;
                    stream.bodyless = bodyless;
                }
                if bodyless {
                    body.clear();
                }
                let mut headers = Vec::with_capacity(head.headers.len() + 1);
                headers.push((":status".to_string(), head.status.to_string()));
                headers.extend(
                    head.headers
                        .into_iter()
                        .filter(|(name, _)| name != "content-length"),
                );
                Step::StreamHead {
                    headers,
                    body,
                    complete: end_of_stream,
                }
            }
            Ok(Split {
                head: None,
                mut body,
            }) if head_sent => {
                if bodyless {
                    body.clear();
                }
                Step::StreamChunk {
                    body,
                    complete: end_of_stream,
                }
            }
            // The head is still undecided: Envoy keeps buffering.
            Ok(Split { head: None, .. }) => Step::Pause,
        }
    }

    /// The stream ended (Envoy is done with the request). A request forwarded in place whose
    /// answer never came, or never came whole, was ended by Envoy (route timeout, upstream
    /// reset or connect failure), which answered or cut the client's response itself:
    /// returns the error to count and log.
    pub fn on_stream_done(&mut self) -> Option<RequestError> {
        let unanswered = matches!(
            self.phase,
            Phase::Forwarded { .. }
                | Phase::BufferingAnswer { .. }
                | Phase::RelayingAnswer
                | Phase::StreamingAnswer
        );
        self.phase = Phase::Finished;
        self.stream = None;
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

    fn lambda_answer(status: u16, headers: &[(&str, &str)], body: &str) -> CallAnswer {
        CallAnswer {
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
            .on_invoke_answer(7, CallAnswer::default(), t(1000))
            .unwrap();
        assert_eq!(step, Step::Fail(RequestError::UpstreamTimeout));
        assert_eq!(flow.phase(), &Phase::Finished);
    }

    #[test]
    fn reset_before_timeout_is_unavailable() {
        let config = config("");
        let mut flow = dispatched(&config);
        let step = flow
            .on_invoke_answer(7, CallAnswer::default(), t(100))
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
        assert_eq!(flow.on_invoke_answer(8, CallAnswer::default(), t(5)), None);
        assert!(flow
            .on_invoke_answer(7, lambda_answer(200, &[], "{}"), t(5))
            .is_some());
        assert_eq!(flow.on_invoke_answer(7, CallAnswer::default(), t(6)), None);
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
            flow.on_answer_headers(answer_headers("200", &[("content-length", "20")]), false),
            Step::RelayAnswer(_)
        ));
        assert_eq!(flow.on_answer_body(10, false), Step::Continue);
        assert_eq!(flow.on_answer_body(10, true), Step::AnswerRelayed);
        assert_eq!(flow.on_stream_done(), None);

        let (mut cut, _, _) = forwarded(&config, false);
        assert!(matches!(
            cut.on_answer_headers(answer_headers("200", &[("content-length", "20")]), false),
            Step::RelayAnswer(_)
        ));
        assert_eq!(cut.on_answer_body(10, false), Step::Continue);
        assert_eq!(cut.on_stream_done(), Some(RequestError::EndedByRouter));

        // Without a content-length the answer is read whole, so the bound applies first.
        let (mut unannounced, _, _) = forwarded(&config, false);
        assert_eq!(
            unannounced.on_answer_headers(answer_headers("200", &[]), false),
            Step::Pause
        );
    }

    #[test]
    fn a_head_answer_is_read_whole_not_relayed() {
        let config = config("");
        let (mut flow, _, _) = forwarded(&config, false);
        flow.set_head_request();
        assert!(flow.is_head_request());
        assert_eq!(
            flow.on_answer_headers(answer_headers("200", &[("content-length", "20")]), false),
            Step::Pause
        );
        assert_eq!(flow.on_answer_body(20, true), Step::ReadAnswerBody);
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

    // ---- Response streaming (invoke_mode: response_stream) ----

    mod streaming {
        use super::*;
        use aws_smithy_eventstream::frame::write_message_to;
        use aws_smithy_types::event_stream::{Header, HeaderValue, Message};

        fn frame(event_type: &'static str, payload: &[u8]) -> Vec<u8> {
            let message = Message::new_from_parts(
                vec![
                    Header::new(":event-type", HeaderValue::String(event_type.into())),
                    Header::new(
                        ":content-type",
                        HeaderValue::String("application/octet-stream".into()),
                    ),
                    Header::new(":message-type", HeaderValue::String("event".into())),
                ],
                payload.to_vec(),
            );
            let mut out = Vec::new();
            write_message_to(&message, &mut out).unwrap();
            out
        }

        fn chunk(payload: &[u8]) -> Vec<u8> {
            frame("PayloadChunk", payload)
        }

        fn complete(json: &str) -> Vec<u8> {
            frame("InvokeComplete", json.as_bytes())
        }

        const PRELUDE_TYPE: &str = "application/vnd.awslambda.http-integration-response";

        fn stream_config(extra: &str) -> FilterConfig {
            config(&format!(r#","invoke_mode":"response_stream"{extra}"#))
        }

        /// Forwarded in place as InvokeWithResponseStream, the answer's 200 headers seen.
        fn streaming(config: &FilterConfig, function_content_type: &str) -> RequestFlow {
            let (mut flow, invoke, _) = forwarded(config, false);
            assert_eq!(
                invoke.header(":path"),
                Some("/2021-11-15/functions/f/response-streaming-invocations")
            );
            assert_eq!(flow.take_stream_fallback(), None);
            let headers = answer_headers(
                "200",
                &[
                    ("content-type", function_content_type),
                    ("x-amzn-requestid", "r"),
                    ("transfer-encoding", "chunked"),
                ],
            );
            assert_eq!(flow.on_answer_headers(headers, false), Step::Pause);
            assert_eq!(flow.phase(), &Phase::StreamingAnswer);
            assert!(flow.awaits_answer_in_place());
            flow
        }

        /// Envoy's side: buffers the body while the filter pauses, hands over each chunk
        /// once it continues, and collects what the client gets.
        #[derive(Default)]
        struct Envoy {
            buffered: Vec<u8>,
            holding: bool,
            head: Option<Vec<(String, String)>>,
            client: Vec<u8>,
        }

        impl Envoy {
            fn new() -> Self {
                Envoy {
                    holding: true,
                    ..Envoy::default()
                }
            }

            /// One body chunk through the filter: the step it ended with.
            fn chunk(&mut self, flow: &mut RequestFlow, bytes: &[u8], end: bool) -> Step {
                if !self.holding {
                    self.buffered.clear();
                }
                self.buffered.extend_from_slice(bytes);
                let mut step = flow.on_answer_body(self.buffered.len(), end);
                if let Step::ReadStream {
                    start,
                    size,
                    end_of_stream,
                } = step
                {
                    assert_eq!(end_of_stream, end);
                    assert!(
                        start + size <= self.buffered.len(),
                        "{start}+{size} of {}",
                        self.buffered.len()
                    );
                    let range = self.buffered[start..start + size].to_vec();
                    step = flow.on_stream_bytes(&range, end);
                }
                match &step {
                    Step::Pause => {
                        assert!(self.holding, "only the head is held");
                    }
                    Step::StreamHead { headers, body, .. } => {
                        assert!(self.holding && self.head.is_none());
                        self.head = Some(headers.clone());
                        self.client.extend_from_slice(body);
                        self.holding = false;
                    }
                    Step::StreamChunk { body, .. } => {
                        assert!(!self.holding);
                        self.client.extend_from_slice(body);
                    }
                    _ => {}
                }
                step
            }

            fn header(&self, name: &str) -> Vec<&str> {
                self.head
                    .iter()
                    .flatten()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
                    .collect()
            }
        }

        #[test]
        fn prelude_split_across_frames_and_chunks_sets_the_head_then_bytes_flow() {
            let config = stream_config("");
            let mut flow = streaming(&config, PRELUDE_TYPE);
            let prelude = br#"{"statusCode":201,"headers":{"content-type":"text/event-stream","x-app":"1","content-length":"99"},"cookies":["a=1","b=2; Path=/"]}"#;
            let mut first = prelude.to_vec();
            first.extend_from_slice(&[0; 8]);
            let (p1, p2) = first.split_at(40);
            let mut stream = chunk(p1);
            stream.extend(chunk(p2));
            stream.extend(chunk(b"data: one\n\n"));
            let mut envoy = Envoy::new();
            // The first frame arrives in two pieces: nothing decided yet.
            let (a, rest) = stream.split_at(10);
            assert_eq!(envoy.chunk(&mut flow, a, false), Step::Pause);
            assert!(matches!(
                envoy.chunk(&mut flow, rest, false),
                Step::StreamHead {
                    complete: false,
                    ..
                }
            ));
            let head = envoy.head.clone().unwrap();
            assert_eq!(head[0], (":status".to_string(), "201".to_string()));
            assert_eq!(envoy.header("content-type"), vec!["text/event-stream"]);
            assert_eq!(envoy.header("x-app"), vec!["1"]);
            assert_eq!(envoy.header("set-cookie"), vec!["a=1", "b=2; Path=/"]);
            assert!(envoy.header("content-length").is_empty());
            assert!(envoy.header("x-amzn-requestid").is_empty());
            assert_eq!(envoy.client, b"data: one\n\n");
            // Afterwards each chunk becomes its payload bytes, a frame split across chunks
            // included.
            let two = chunk(b"data: two\n\n");
            let (x, y) = two.split_at(5);
            assert_eq!(
                envoy.chunk(&mut flow, x, false),
                Step::StreamChunk {
                    body: Vec::new(),
                    complete: false
                }
            );
            assert_eq!(
                envoy.chunk(&mut flow, y, false),
                Step::StreamChunk {
                    body: b"data: two\n\n".to_vec(),
                    complete: false
                }
            );
            assert_eq!(
                envoy.chunk(&mut flow, &complete("{}"), true),
                Step::StreamChunk {
                    body: Vec::new(),
                    complete: true
                }
            );
            assert_eq!(envoy.client, b"data: one\n\ndata: two\n\n");
            assert_eq!(flow.phase(), &Phase::Finished);
            assert_eq!(flow.on_stream_done(), None);
        }

        #[test]
        fn bodyless_status_drops_the_streamed_bytes() {
            for status in [204, 304] {
                let config = stream_config("");
                let mut flow = streaming(&config, PRELUDE_TYPE);
                let prelude = format!(r#"{{"statusCode":{status}}}"#);
                let mut first = prelude.into_bytes();
                first.extend_from_slice(&[0; 8]);
                first.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsmugl!");
                let mut envoy = Envoy::new();
                assert!(matches!(
                    envoy.chunk(&mut flow, &chunk(&first), false),
                    Step::StreamHead { .. }
                ));
                assert_eq!(envoy.head.as_ref().unwrap()[0].1, status.to_string());
                let mut end = chunk(b"more");
                end.extend(complete("{}"));
                assert!(matches!(
                    envoy.chunk(&mut flow, &end, true),
                    Step::StreamChunk { complete: true, .. }
                ));
                assert!(envoy.client.is_empty(), "{status}: {:?}", envoy.client);
            }
        }

        #[test]
        fn stream_without_prelude_is_200_with_the_functions_content_type() {
            let config = stream_config("");
            let mut flow = streaming(&config, "text/plain");
            let mut envoy = Envoy::new();
            assert!(matches!(
                envoy.chunk(&mut flow, &chunk(b"hello "), false),
                Step::StreamHead { .. }
            ));
            assert_eq!(envoy.head.as_ref().unwrap()[0].1, "200");
            assert_eq!(envoy.header("content-type"), vec!["text/plain"]);
            let mut end = chunk(b"world");
            end.extend(complete(r#"{"ErrorCode":"","LogResult":"bG9n"}"#));
            assert!(matches!(
                envoy.chunk(&mut flow, &end, true),
                Step::StreamChunk { complete: true, .. }
            ));
            assert_eq!(envoy.client, b"hello world");
        }

        #[test]
        fn whole_stream_in_one_chunk_is_head_body_and_success() {
            let config = stream_config("");
            let mut flow = streaming(&config, "application/octet-stream");
            let mut all = chunk(b"ab");
            all.extend(chunk(b"cd"));
            all.extend(complete("{}"));
            let mut envoy = Envoy::new();
            assert!(matches!(
                envoy.chunk(&mut flow, &all, true),
                Step::StreamHead { complete: true, .. }
            ));
            assert_eq!(envoy.client, b"abcd");
        }

        #[test]
        fn function_error_before_the_first_byte_is_the_json_error() {
            let config = stream_config(r#","function_error_status":500"#);
            let mut flow = streaming(&config, PRELUDE_TYPE);
            let mut envoy = Envoy::new();
            // Part of the prelude, held.
            assert_eq!(
                envoy.chunk(&mut flow, &chunk(br#"{"statusCode":20"#), false),
                Step::Pause
            );
            let step = envoy.chunk(
                &mut flow,
                &complete(
                    r#"{"ErrorCode":"Unhandled","ErrorDetails":"{\"errorMessage\":\"boom\"}"}"#,
                ),
                false,
            );
            match step {
                Step::RewriteAnswerWithError(RequestError::FunctionError {
                    status,
                    kind,
                    message,
                }) => {
                    assert_eq!((status, kind.as_str()), (500, "Unhandled"));
                    assert_eq!(message.as_deref(), Some("boom"));
                }
                other => panic!("{other:?}"),
            }
            // The rest of the answer is dropped.
            assert_eq!(
                flow.on_answer_body(10, true),
                Step::ReplaceAnswerBody(Vec::new())
            );
            assert_eq!(flow.phase(), &Phase::Finished);
            assert_eq!(flow.on_stream_done(), None);
        }

        #[test]
        fn function_error_after_the_first_byte_aborts_the_stream() {
            let config = stream_config("");
            let mut flow = streaming(&config, "text/plain");
            let mut envoy = Envoy::new();
            envoy.chunk(&mut flow, &chunk(b"partial"), false);
            assert!(envoy.head.is_some());
            let step = envoy.chunk(
                &mut flow,
                &complete(r#"{"ErrorCode":"Unhandled","ErrorDetails":"late"}"#),
                false,
            );
            assert!(
                matches!(step, Step::AbortStream(RequestError::FunctionError { .. })),
                "{step:?}"
            );
            assert_eq!(flow.phase(), &Phase::Finished);
            assert_eq!(flow.on_answer_body(5, true), Step::Continue);
            assert_eq!(flow.on_stream_done(), None, "counted once, at the abort");
        }

        #[test]
        fn corrupt_frame_before_and_after_the_first_byte() {
            let config = stream_config("");
            let mut corrupt = chunk(b"x");
            let last = corrupt.len() - 1;
            corrupt[last] ^= 0xff;

            let mut flow = streaming(&config, "text/plain");
            let mut envoy = Envoy::new();
            match envoy.chunk(&mut flow, &corrupt, false) {
                Step::RewriteAnswerWithError(RequestError::StreamFailed { reason, .. }) => {
                    assert_eq!(reason, "crc_mismatch")
                }
                other => panic!("{other:?}"),
            }

            let mut flow = streaming(&config, "text/plain");
            let mut envoy = Envoy::new();
            envoy.chunk(&mut flow, &chunk(b"ok"), false);
            match envoy.chunk(&mut flow, &corrupt, false) {
                Step::AbortStream(RequestError::StreamFailed { reason, .. }) => {
                    assert_eq!(reason, "crc_mismatch")
                }
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn exception_frame_after_the_first_byte_aborts() {
            let config = stream_config("");
            let mut flow = streaming(&config, "text/plain");
            let mut envoy = Envoy::new();
            envoy.chunk(&mut flow, &chunk(b"ok"), false);
            let message = Message::new_from_parts(
                vec![
                    Header::new(
                        ":exception-type",
                        HeaderValue::String("ServiceException".into()),
                    ),
                    Header::new(":message-type", HeaderValue::String("exception".into())),
                ],
                br#"{"message":"gone"}"#.to_vec(),
            );
            let mut bytes = Vec::new();
            write_message_to(&message, &mut bytes).unwrap();
            match envoy.chunk(&mut flow, &bytes, false) {
                Step::AbortStream(RequestError::StreamFailed { reason, message }) => {
                    assert_eq!(reason, "exception");
                    assert!(message.contains("ServiceException"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn end_without_invoke_complete_is_a_truncated_stream() {
            let config = stream_config("");
            // After bytes were sent: aborted.
            let mut flow = streaming(&config, "text/plain");
            let mut envoy = Envoy::new();
            envoy.chunk(&mut flow, &chunk(b"ok"), false);
            match envoy.chunk(&mut flow, &[], true) {
                Step::AbortStream(RequestError::StreamFailed { reason, .. }) => {
                    assert_eq!(reason, "truncated")
                }
                other => panic!("{other:?}"),
            }
            // Cut inside a frame before any byte: the JSON error.
            let mut flow = streaming(&config, "text/plain");
            let mut envoy = Envoy::new();
            let frame = chunk(b"never whole");
            match envoy.chunk(&mut flow, &frame[..7], true) {
                Step::RewriteAnswerWithError(RequestError::StreamFailed { reason, .. }) => {
                    assert_eq!(reason, "truncated")
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(flow.phase(), &Phase::Finished);
            // A 200 with no body at all.
            let (mut flow, _, _) = forwarded(&config, false);
            assert!(matches!(
                flow.on_answer_headers(answer_headers("200", &[]), true),
                Step::RewriteAnswerWithError(RequestError::StreamFailed { .. })
            ));
        }

        #[test]
        fn bad_prelude_before_the_first_byte_is_a_bad_response() {
            let config = stream_config("");
            let mut flow = streaming(&config, PRELUDE_TYPE);
            let mut envoy = Envoy::new();
            assert!(matches!(
                envoy.chunk(&mut flow, &chunk(b"no prelude here"), false),
                Step::RewriteAnswerWithError(RequestError::BadResponse { .. })
            ));
        }

        #[test]
        fn route_timeout_while_streaming_is_the_end_of_the_stream() {
            let config = stream_config("");
            let mut flow = streaming(&config, "text/plain");
            assert_eq!(flow.on_stream_done(), Some(RequestError::EndedByRouter));
            let mut flow = streaming(&config, "text/plain");
            let mut envoy = Envoy::new();
            envoy.chunk(&mut flow, &chunk(b"ok"), false);
            assert_eq!(flow.on_stream_done(), Some(RequestError::EndedByRouter));
            assert_eq!(flow.on_stream_done(), None);
        }

        #[test]
        fn api_errors_and_function_errors_are_decoded_as_in_buffered_mode() {
            let config = stream_config("");
            let (mut flow, _, _) = forwarded(&config, false);
            let headers = answer_headers(
                "429",
                &[
                    ("x-amzn-errortype", "TooManyRequestsException"),
                    ("content-type", "application/json"),
                ],
            );
            assert_eq!(flow.on_answer_headers(headers, false), Step::Pause);
            assert_eq!(flow.on_answer_body(20, true), Step::ReadAnswerBody);
            assert!(matches!(
                flow.on_answer_complete(br#"{"message":"slow down"}"#.to_vec()),
                Step::RewriteAnswerWithError(RequestError::Throttled { .. })
            ));

            let (mut flow, _, _) = forwarded(&config, false);
            let headers = answer_headers("200", &[("x-amz-function-error", "Unhandled")]);
            assert_eq!(flow.on_answer_headers(headers, false), Step::Pause);
            assert!(matches!(flow.phase(), Phase::BufferingAnswer { .. }));
        }

        #[test]
        fn requests_that_cannot_stream_fall_back_to_the_buffered_invoke_with_a_reason() {
            let config = stream_config("");
            // Downstream placement.
            let mut flow = RequestFlow::default();
            flow.on_request_headers(
                route(&config),
                Some("lambda".into()),
                None,
                true,
                Placement::Downstream,
            );
            match flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT) {
                Step::Dispatch(invoke) => assert_eq!(
                    invoke.header(":path"),
                    Some("/2015-03-31/functions/f/invocations")
                ),
                other => panic!("{other:?}"),
            }
            let fallback = flow.take_stream_fallback().unwrap();
            assert_eq!(
                fallback.route,
                "/2021-11-15/functions/f/response-streaming-invocations"
            );
            assert!(fallback.reason.contains("upstream_http_filters"));
            assert_eq!(flow.take_stream_fallback(), None);

            // Upstream, a body-less request with an event payload.
            let event = stream_config(r#","payload":"apigw_v2""#);
            let mut flow = RequestFlow::default();
            flow.on_request_headers(
                route(&event),
                Some("lambda".into()),
                None,
                true,
                Placement::Upstream,
            );
            assert!(matches!(
                flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT),
                Step::Dispatch(_)
            ));
            assert!(flow
                .take_stream_fallback()
                .unwrap()
                .reason
                .contains("without a body"));

            // Upstream, trailers.
            let mut flow = RequestFlow::default();
            flow.on_request_headers(
                route(&config),
                Some("lambda".into()),
                None,
                false,
                Placement::Upstream,
            );
            flow.on_request_trailers();
            assert!(matches!(
                flow.on_body_complete(b"{}".to_vec(), Some(&creds()), t(0), WAIT),
                Step::Dispatch(_)
            ));
            assert_eq!(
                flow.take_stream_fallback().unwrap().reason,
                "the request has trailers"
            );

            // A buffered route never reports a fallback.
            let buffered = super::config("");
            let mut flow = RequestFlow::default();
            flow.on_request_headers(
                route(&buffered),
                Some("lambda".into()),
                None,
                true,
                Placement::Downstream,
            );
            flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT);
            assert_eq!(flow.take_stream_fallback(), None);
        }

        #[test]
        fn memory_stays_bounded_over_a_long_stream() {
            let config = stream_config("");
            let mut flow = streaming(&config, "application/octet-stream");
            let mut envoy = Envoy::new();
            let piece = vec![7u8; 65536];
            let frame = chunk(&piece);
            let mut total = 0usize;
            for i in 0..200 {
                // Frames cut at shifting offsets across chunks.
                let cut = (i * 977) % frame.len();
                envoy.chunk(&mut flow, &frame[..cut], false);
                envoy.chunk(&mut flow, &frame[cut..], false);
                total += piece.len();
                let held = flow
                    .stream
                    .as_ref()
                    .map_or(0, |s| s.decoder.buffered() + s.splitter.buffered());
                assert!(held <= frame.len(), "holds {held} bytes");
                assert_eq!(envoy.client.len(), total);
                envoy.client.clear();
                total = 0;
            }
            assert!(matches!(
                envoy.chunk(&mut flow, &complete("{}"), true),
                Step::StreamChunk { complete: true, .. }
            ));
        }
    }

    #[test]
    fn split_placement_downstream_takes_only_what_cannot_go_in_place() {
        let v2 = config(r#","payload":"apigw_v2""#);
        let mut get = RequestFlow::default();
        let step = get.on_request_headers(
            route(&v2),
            Some("lambda".into()),
            None,
            true,
            Placement::DownstreamSplit,
        );
        assert_eq!(step, Step::ReadBody);
        assert!(matches!(
            get.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT),
            Step::Dispatch(_)
        ));
        let mut post = RequestFlow::default();
        let step = post.on_request_headers(
            route(&v2),
            Some("lambda".into()),
            Some(2),
            false,
            Placement::DownstreamSplit,
        );
        assert_eq!(step, Step::Continue);
        assert_eq!(post.phase(), &Phase::Finished);
        let passthrough = config("");
        let mut get = RequestFlow::default();
        let step = get.on_request_headers(
            route(&passthrough),
            Some("lambda".into()),
            None,
            true,
            Placement::DownstreamSplit,
        );
        assert_eq!(step, Step::Continue);
        let elsewhere = config(r#","cluster":"other""#);
        let mut post = RequestFlow::default();
        let step = post.on_request_headers(
            route(&elsewhere),
            Some("lambda".into()),
            Some(2),
            false,
            Placement::DownstreamSplit,
        );
        assert_eq!(step, Step::Pause);
    }
}
