//! The per-request state machine. The host shell feeds it callbacks and carries out the
//! [`Step`] it returns. Every pause has exactly one way out: a dispatched Invoke always
//! ends in `on_invoke_answer` (the host reports success, failure and timeout there), a
//! request forwarded in place ends with its answer's headers (or, when the route times out
//! or the upstream resets, with the end of the stream, see `on_stream_done`), and every other
//! pause ends when the body is complete.

use std::rc::Rc;
use std::sync::Arc;
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
use crate::http::{HeaderList, OutboundRequest};
use crate::invoke::{build_invoke, build_stream_invoke};
use crate::route::RouteTarget;
use crate::trace::invoke_trace_id;

mod answer;
pub(crate) mod attempts;
pub(crate) mod body_watch;
mod placement;
mod request;
#[cfg(test)]
mod tests;

use answer::AnswerStream;
pub(crate) use placement::Placement;
#[cfg_attr(not(target_arch = "wasm32"), allow(unused_imports))] // used by the shell only
pub(crate) use placement::PlacementLatch;

/// Slack for timer granularity when deciding whether an empty answer was the timeout.
const TIMEOUT_SLACK: Duration = Duration::from_millis(20);

/// How one request's Invoke is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// `dispatch_http_call`, answered with a local reply.
    Dispatch,
    /// The request is rewritten in place and continues to the route's cluster; the answer
    /// is rewritten on its way back. Only as an upstream filter, and only when the request
    /// can carry the payload (Envoy cannot give a body to a request that ended with its
    /// headers, so body-less requests with event payloads are dispatched).
    InPlace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
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
pub(crate) enum Step {
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
pub(crate) struct StreamFallback {
    /// The route's streaming path (names the function and qualifier).
    pub route: String,
    pub reason: &'static str,
}

/// What an event payload needs to know about the client's request, captured with the
/// headers (only for event formats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestMeta {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub headers: Vec<(String, String)>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub protocol: String,
    pub host: Option<String>,
}

/// The cluster of an Invoke forwarded in place to the route's own cluster: the flow does not
/// read its name (a host call on every such request); the shell reads it only to report a
/// failed rewrite.
pub(crate) const UNREAD_ROUTE_CLUSTER: &str = "";

#[derive(Debug)]
pub(crate) struct RequestFlow {
    phase: Phase,
    /// Shared with the VM's [`attempts::AttemptStash`] when kept for retries (no copy).
    meta: Option<Rc<RequestMeta>>,
    /// Why a `response_stream` route's request cannot stream, when it cannot.
    stream_fallback: Option<&'static str>,
    /// The decoders of a streamed answer ([`Phase::StreamingAnswer`]).
    stream: Option<Box<AnswerStream>>,
    /// Lambda's request id (`x-amzn-RequestId`) once Lambda answered: what finds the call in
    /// CloudWatch, carried by the error body and log line of a failure after it.
    lambda_request_id: Option<String>,
    /// The client asked with HEAD: its answer carries no body. Envoy drops it for local
    /// replies and plain proxying, but not for a HEAD rewritten in place into a POST Invoke.
    head: bool,
    /// The `function` label of the route's target, once resolved (its outcome metrics).
    metric_label: Option<Arc<str>>,
    /// The Invoke's `X-Amzn-Trace-Id` ([`crate::trace`]), from the client's headers.
    trace_id: Option<String>,
    /// The credentials profile of the route's target, once resolved (for access logs).
    profile: Option<ProfileId>,
}

impl Default for RequestFlow {
    fn default() -> Self {
        RequestFlow {
            phase: Phase::Start,
            meta: None,
            stream_fallback: None,
            stream: None,
            lambda_request_id: None,
            head: false,
            metric_label: None,
            trace_id: None,
            profile: None,
        }
    }
}

impl RequestFlow {
    #[cfg(test)]
    pub(crate) fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The credentials profile of the request's route (none before the route resolved).
    pub(crate) fn profile(&self) -> Option<ProfileId> {
        self.profile
    }

    /// The `function` label of the request's metrics (none before the route resolved).
    pub(crate) fn metric_label(&self) -> Option<&Arc<str>> {
        self.metric_label.as_ref()
    }

    /// Lambda's request id, once Lambda answered.
    pub(crate) fn lambda_request_id(&self) -> Option<&str> {
        self.lambda_request_id.as_deref()
    }

    fn note_lambda_request_id(&mut self, answer: &CallAnswer) {
        self.lambda_request_id = answer
            .header("x-amzn-requestid")
            .filter(|id| id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_string);
    }

    /// The client's method is HEAD (known to the shell when it rewrites the request).
    pub(crate) fn set_head_request(&mut self) {
        self.head = true;
    }

    /// Whether the answer must go without body (see [`RequestFlow::set_head_request`]).
    pub(crate) fn is_head_request(&self) -> bool {
        self.head
    }

    /// Whether the payload format needs [`RequestMeta`] (set it with `set_request_meta`).
    pub(crate) fn wants_request_meta(&self) -> bool {
        matches!(&self.phase, Phase::ReceivingBody { target, .. }
            if matches!(target.payload, PayloadFormat::Event(_)))
    }

    pub(crate) fn set_request_meta(&mut self, meta: Rc<RequestMeta>) {
        self.meta = Some(meta);
    }

    /// Whether the shell should give the trace headers for the Invoke: it will invoke.
    pub(crate) fn wants_trace_context(&self) -> bool {
        matches!(self.phase, Phase::ReceivingBody { .. })
    }

    /// The client's `x-amzn-trace-id` and `traceparent` headers.
    pub(crate) fn set_trace_context(&mut self, amzn: Option<&str>, traceparent: Option<&str>) {
        self.trace_id = invoke_trace_id(amzn, traceparent);
    }

    /// Whether the request is to be rewritten in place (as far as its headers tell).
    pub(crate) fn forwards_in_place(&self) -> bool {
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
    pub(crate) fn on_unknown_retry(&mut self) -> Step {
        self.fail(RequestError::RetryUnavailable)
    }

    /// When the Invoke in flight was sent.
    pub(crate) fn invoke_sent_at(&self) -> Option<SystemTime> {
        match &self.phase {
            Phase::AwaitingInvoke { sent_at, .. } | Phase::Forwarded { sent_at, .. } => {
                Some(*sent_at)
            }
            _ => None,
        }
    }

    /// Whether the request was forwarded in place and its answer not yet handled.
    pub(crate) fn awaits_answer_in_place(&self) -> bool {
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
    pub(crate) fn take_stream_fallback(&mut self) -> Option<StreamFallback> {
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
}
