//! Carries out a request's [`Step`]s with host calls. Used by the request's own context and
//! by the root context when it wakes a request that waited for credentials (the root then
//! acts with the request as the effective context).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType, MapType, StreamType};

use super::credentials::HostStore;
use super::host;
use super::host::now;
use super::io::*;
use super::request::{Request, SharedRequest};
use super::stats::Stats;
use super::timing::{self, Phase as Timed, Timing};
use crate::access_log::{access_log_value, FILTER_STATE_KEY};
use crate::answer::MAX_ANSWER_BYTES;
use crate::config::FilterConfig;
use crate::credentials::profiles::CredentialProfiles;
use crate::error::{RequestError, BODY_NOT_RECEIVED};
use crate::flow::attempts::AttemptStash;
use crate::flow::body_watch::{BodyWatch, BODY_WAIT};
use crate::flow::{PlacementLatch, Step, StreamFallback, UNREAD_ROUTE_CLUSTER};
use crate::http::ClientReply;
use crate::http::OutboundRequest;
use crate::log_limit::{summary_line, Admit, LogLimiter};
use crate::metrics::{Metric, Outcome};
use crate::route::RouteCache;
use crate::time::epoch_ms;

/// Per-VM state shared by the root context and every request context.
pub(super) struct Vm {
    pub config: Rc<FilterConfig>,
    pub routes: RefCell<RouteCache>,
    /// This plugin's placement, remembered once a request showed it upstream.
    pub placement: PlacementLatch,
    /// Client requests kept for the router's retries of requests rewritten in place.
    pub attempts: RefCell<AttemptStash>,
    pub credentials: RefCell<CredentialProfiles>,
    /// Requests paused in their headers whose body has not begun yet (`flow::body_watch`).
    pub body_watch: RefCell<BodyWatch>,
    pub awaiting_body: RefCell<Requests>,
    /// Requests waiting for credentials, by context id.
    pub parked: RefCell<Requests>,
    /// Invokes the root dispatched for woken requests: the SDK routes their answers to the
    /// root, which hands them to the request.
    pub root_invokes: RefCell<Requests>,
    pub stats: Stats,
    /// Failure lines per class and interval ([`LogLimiter`]).
    pub log_limiter: RefCell<LogLimiter>,
    /// Profiling only (feature `vm-timing`).
    pub timing: Timing,
    /// Marks a request this VM rewrote in place, so that its retry is told from a client's
    /// request (random per VM; sent only upstream, never to clients).
    pub retry_tag: String,
    /// `response_stream` routes (and reasons) whose buffered fallback was logged.
    pub stream_fallbacks_logged: RefCell<Vec<StreamFallback>>,
}

/// Requests by context id (or call token), sorted by it and searched by halves: another
/// `HashMap` instantiation costs about 3 KB of .wasm.
#[derive(Default)]
pub(super) struct Requests(Vec<(u32, SharedRequest)>);

impl Requests {
    pub(super) fn insert(&mut self, id: u32, request: SharedRequest) {
        match self.0.binary_search_by_key(&id, |(key, _)| *key) {
            Ok(at) => {
                if let Some(entry) = self.0.get_mut(at) {
                    entry.1 = request;
                }
            }
            Err(at) => self.0.insert(at, (id, request)),
        }
    }

    pub(super) fn remove(&mut self, id: u32) -> Option<SharedRequest> {
        let at = self.0.binary_search_by_key(&id, |(key, _)| *key).ok()?;
        Some(self.0.remove(at).1)
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn retain(&mut self, keep: impl FnMut(&(u32, SharedRequest)) -> bool) {
        self.0.retain(keep);
    }
}

/// Bound on the remembered fallback log lines (a config with many routes logs again after).
const MAX_FALLBACKS_LOGGED: usize = 256;

/// What carrying out one step leads to: the next step, or the action for the host.
enum Next {
    Step(Step),
    Done(Action),
}

/// Who is carrying out the step: the request's own context, or the root on its behalf.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Actor {
    RequestContext,
    Root,
}

impl Vm {
    /// Carries out steps until the request waits for the host. Returns the filter action
    /// for the callback in progress.
    pub(super) fn drive(&self, request: &SharedRequest, mut step: Step, actor: Actor) -> Action {
        loop {
            let next = match step {
                Step::Continue => Next::Done(Action::Continue),
                Step::Pause => Next::Done(Action::Pause),
                Step::ReadBody => Next::Step(self.read_body_and_sign(request)),
                Step::WaitForCredentials { deadline } => {
                    self.wait_for_credentials(request, deadline)
                }
                Step::Dispatch(outbound) => {
                    Next::Step(self.dispatch_invoke(request, &outbound, actor))
                }
                Step::Forward {
                    invoke,
                    replace_body,
                } => self.forward_invoke(request, &invoke, replace_body, actor),
                Step::RelayAnswer(headers) => match set_response_headers(&headers) {
                    Ok(()) => Next::Done(Action::Continue),
                    Err(status) => {
                        Next::Step(Step::RewriteAnswerWithError(unwritable("headers", status)))
                    }
                },
                Step::AnswerRelayed => {
                    self.count_success(&request.borrow());
                    Next::Done(Action::Continue)
                }
                Step::ReadAnswerBody => {
                    let size = request.borrow().answer_size;
                    let body = read_buffer(BufferType::HttpResponseBody, size);
                    Next::Step(request.borrow_mut().flow.on_answer_complete(body))
                }
                Step::RewriteAnswer(reply) => self.rewrite_answer(request, &reply),
                Step::RewriteAnswerWithError(failure) => {
                    self.rewrite_answer_with_error(request, &failure)
                }
                Step::ReplaceAnswerBody(bytes) => {
                    let request = request.borrow();
                    if let Err(status) = replace_answer_body(&request, &bytes) {
                        reset_answer(request.context_id, "the error body", status);
                    }
                    Next::Done(Action::Continue)
                }
                Step::Reply(reply) => match send(&reply) {
                    Ok(()) => {
                        self.count_success(&request.borrow());
                        Next::Done(Action::Pause)
                    }
                    Err(status) => Next::Step(Step::Fail(unwritable("answer", status))),
                },
                Step::ReadStream {
                    start,
                    size,
                    end_of_stream,
                } => {
                    let bytes = read_range(BufferType::HttpResponseBody, start, size);
                    Next::Step(
                        request
                            .borrow_mut()
                            .flow
                            .on_stream_bytes(&bytes, end_of_stream),
                    )
                }
                Step::StreamHead {
                    headers,
                    body,
                    complete,
                } => {
                    let written = set_response_headers(&headers)
                        .and_then(|()| replace_answer_body(&request.borrow(), &body));
                    self.streamed(request, written, complete)
                }
                Step::StreamChunk { body, complete } => {
                    let written = replace_answer_body(&request.borrow(), &body);
                    self.streamed(request, written, complete)
                }
                Step::AbortStream(failure) => self.abort_stream(request, &failure),
                Step::Fail(failure) => self.fail(request, &failure),
            };
            match next {
                Next::Step(following) => step = following,
                Next::Done(action) => return action,
            }
        }
    }

    /// The whole body is there: sign with the request's profile, or wait for credentials.
    fn read_body_and_sign(&self, request: &SharedRequest) -> Step {
        let started = timing::start();
        let body = read_body(request.borrow().body_size);
        let now = now();
        let profile = request.borrow().flow.credentials_profile();
        let (credentials, max_wait) = match profile {
            Some(profile) => {
                let mut profiles = self.credentials.borrow_mut();
                (
                    profiles.usable(&HostStore, profile, now),
                    profiles.max_wait(profile),
                )
            }
            None => (None, std::time::Duration::ZERO),
        };
        let step =
            request
                .borrow_mut()
                .flow
                .on_body_complete(body, credentials.as_ref(), now, max_wait);
        self.timing.record(Timed::BuildAndSign, started);
        step
    }

    /// Parks the request with its profile's waiters until credentials come or `deadline`.
    fn wait_for_credentials(&self, request: &SharedRequest, deadline: SystemTime) -> Next {
        let context_id = request.borrow().context_id;
        debug!("#{context_id} waiting for credentials");
        request.borrow_mut().parked_at = Some(now());
        self.stats.add(Metric::CredentialWaiting, 1);
        self.parked
            .borrow_mut()
            .insert(context_id, Rc::clone(request));
        if let Some(profile) = request.borrow().flow.credentials_profile() {
            self.credentials
                .borrow_mut()
                .park(profile, context_id, deadline);
        }
        Next::Done(Action::Pause)
    }

    /// Sends the Invoke with `dispatch_http_call`; its answer comes to `on_invoke_answer`.
    fn dispatch_invoke(
        &self,
        request: &SharedRequest,
        outbound: &OutboundRequest,
        actor: Actor,
    ) -> Step {
        let fallback = request.borrow_mut().flow.take_stream_fallback();
        if let Some(fallback) = fallback {
            self.log_stream_fallback(fallback);
        }
        let started = timing::start();
        let result = dispatch(outbound);
        self.timing.record(Timed::Dispatch, started);
        let context_id = request.borrow().context_id;
        let result = match result {
            Ok(token) => {
                self.stats
                    .record(Metric::InvokePayloadBytes, outbound.body.len() as u64);
                self.stats.increment(Metric::InvokeDispatched);
                debug!(
                    "#{context_id} invoke dispatched to cluster '{}' ({} bytes), token {token}",
                    outbound.cluster,
                    outbound.body.len()
                );
                if actor == Actor::Root {
                    self.root_invokes
                        .borrow_mut()
                        .insert(token, Rc::clone(request));
                }
                Ok(token)
            }
            Err(status) => {
                warn!(
                    "#{context_id} dispatch to cluster '{}' refused: {status:?}",
                    outbound.cluster
                );
                Err(outbound.cluster.clone())
            }
        };
        request.borrow_mut().flow.on_dispatched(result, now())
    }

    /// Rewrites the request in place into the Invoke and lets it continue to the route's
    /// cluster.
    fn forward_invoke(
        &self,
        request: &SharedRequest,
        invoke: &OutboundRequest,
        replace_body: bool,
        actor: Actor,
    ) -> Next {
        let started = timing::start();
        if request.borrow().header(":method") == Some("HEAD") {
            request.borrow_mut().flow.set_head_request();
        }
        let request = request.borrow();
        let context_id = request.context_id;
        if let Err(status) = forward(invoke, replace_body, &request, &self.retry_tag) {
            // Rewriting failed half-way: never let it continue unsigned.
            error!("#{context_id} could not rewrite the request into the Invoke: {status:?}");
            let cluster = if invoke.cluster == UNREAD_ROUTE_CLUSTER {
                host::route_cluster().unwrap_or_default()
            } else {
                invoke.cluster.clone()
            };
            let failure = RequestError::DispatchFailed { cluster };
            self.count_failure(&request, &failure);
            // Before the Invoke was sent: no Lambda request id to carry.
            if let Err(status) = send(&failure.to_reply(request.request_id.as_deref())) {
                error!("#{context_id} could not send the error reply: {status:?}");
            }
            return Next::Done(Action::Pause);
        }
        self.stats
            .record(Metric::InvokePayloadBytes, invoke.body.len() as u64);
        self.stats.increment(Metric::InvokeInPlace);
        debug!(
            "#{context_id} invoke forwarded in place ({} bytes)",
            invoke.body.len()
        );
        self.timing.record(Timed::Dispatch, started);
        if actor == Actor::Root {
            if let Err(status) = host::continue_stream(StreamType::HttpRequest) {
                warn!("#{context_id} could not resume the request: {status}");
            }
        }
        Next::Done(Action::Continue)
    }

    /// The decoded answer replaces the function's (a 502 when it cannot be written whole).
    fn rewrite_answer(&self, request: &SharedRequest, reply: &ClientReply) -> Next {
        let written = {
            let request = request.borrow();
            rewrite_answer(reply, request.answer_size, request.flow.is_head_request())
        };
        match written {
            Ok(()) => {
                self.count_success(&request.borrow());
                Next::Done(Action::Continue)
            }
            Err(status) => Next::Step(Step::RewriteAnswerWithError(unwritable("answer", status))),
        }
    }

    /// The error's reply replaces the answer; a reset when not even it can be written.
    fn rewrite_answer_with_error(&self, request: &SharedRequest, failure: &RequestError) -> Next {
        let reply = {
            let request = request.borrow();
            self.count_failure(&request, failure);
            self.log_failure(&request, failure);
            failure.to_reply_after(
                request.request_id.as_deref(),
                request.flow.lambda_request_id(),
            )
        };
        let mut request = request.borrow_mut();
        let written = if request.answer_size == 0 && request.flow.awaits_answer_in_place() {
            // Refused while its body is still to come: the error's body goes out in place of
            // the first chunk, and the rest is dropped.
            let written = rewrite_answer_headers(&reply);
            if !request.flow.is_head_request() {
                request.flow.set_refusal_body(reply.body);
            }
            written
        } else {
            let head = request.flow.is_head_request();
            rewrite_answer(&reply, request.answer_size, head)
        };
        if let Err(status) = written {
            // Not even the error could be written: reset rather than let the function's
            // answer go out half rewritten.
            reset_answer(request.context_id, "the error reply", status);
        }
        Next::Done(Action::Continue)
    }

    /// A streamed head or chunk was written (or not: the stream is aborted).
    fn streamed(&self, request: &SharedRequest, written: Result<(), u32>, complete: bool) -> Next {
        match written {
            Ok(()) => {
                if complete {
                    self.count_success(&request.borrow());
                }
                Next::Done(Action::Continue)
            }
            Err(status) => Next::Step(Step::AbortStream(unwritable("stream", status))),
        }
    }

    /// A stream broken after its first bytes left: counted, logged and reset.
    fn abort_stream(&self, request: &SharedRequest, failure: &RequestError) -> Next {
        let request = request.borrow();
        self.count_failure(&request, failure);
        let request_id = request.request_id.as_deref().unwrap_or("-");
        warn!(
            "#{} request_id={request_id} response stream ended abnormally after its first bytes: {failure}",
            request.context_id
        );
        let _ = replace_answer_body(&request, &[]);
        if let Err(status) = host::close_stream(StreamType::HttpResponse) {
            error!(
                "#{} could not reset the response stream: {status}",
                request.context_id
            );
        }
        Next::Done(Action::Pause)
    }

    /// Answers the request with its error, counted and logged.
    fn fail(&self, request: &SharedRequest, failure: &RequestError) -> Next {
        let request = request.borrow();
        self.count_failure(&request, failure);
        if matches!(failure, RequestError::RouteConfigInvalid(_)) {
            self.stats.increment(Metric::RouteConfigErrors);
        }
        self.log_failure(&request, failure);
        if let Err(status) = send(&failure.to_reply_after(
            request.request_id.as_deref(),
            request.flow.lambda_request_id(),
        )) {
            // The one way out left: a bare 502, else a reset.
            error!(
                "#{} could not send the error reply: {status:?}",
                request.context_id
            );
            if hostcalls::send_http_response(502, Vec::new(), None).is_err() {
                reset_answer(request.context_id, "a bare 502", 0);
            }
        }
        Next::Done(Action::Pause)
    }

    /// The Invoke's answer, read from the host (the request must be the effective context).
    pub(super) fn on_invoke_answer(&self, request: &SharedRequest, token: u32, body_size: usize) {
        let started = timing::start();
        let answer = read_call_answer(body_size, MAX_ANSWER_BYTES);
        let context_id = request.borrow().context_id;
        debug!(
            "#{context_id} invoke answered: status {:?}, {} bytes{}",
            answer.status,
            body_size,
            if answer.unread_body_bytes.is_some() {
                " (over the limit, not read)"
            } else {
                ""
            }
        );
        log_function_tail(context_id, answer.header("x-amz-log-result"));
        let now = now();
        self.record_latency(&request.borrow(), now);
        let step = request
            .borrow_mut()
            .flow
            .on_invoke_answer(token, answer, now);
        match step {
            Some(step) => {
                self.drive(request, step, Actor::RequestContext);
                self.timing.record(Timed::Answer, started);
            }
            None => warn!("#{context_id} answer for unknown call token {token} dropped"),
        }
    }

    /// Bookkeeping when a request stops waiting for credentials.
    pub(super) fn unparked(&self, request: &SharedRequest) {
        self.stats.add(Metric::CredentialWaiting, -1);
        if let Some(parked_at) = request.borrow_mut().parked_at.take() {
            let waited = now().duration_since(parked_at).unwrap_or_default();
            self.stats
                .record(Metric::CredentialWaitMs, waited.as_millis() as u64);
        }
    }

    /// One line per failed request, but per class at most one per interval and worker; the
    /// rest are counted into the summary the root's tick writes ([`LogLimiter`]).
    fn log_failure(&self, request: &Request, failure: &RequestError) {
        let admit = self
            .log_limiter
            .borrow_mut()
            .admit(failure.class(), epoch_ms(now()));
        if admit == Admit::Counted {
            return;
        }
        let request_id = request.request_id.as_deref().unwrap_or("-");
        let context_id = request.context_id;
        // Lambda's request id, when Lambda answered: what finds the call in CloudWatch.
        let lambda = request
            .flow
            .lambda_request_id()
            .map(|id| format!(" lambda_request_id={id}"))
            .unwrap_or_default();
        match failure {
            RequestError::RouteConfigInvalid(_)
            | RequestError::NoCluster
            | RequestError::Signing(_)
            | RequestError::DispatchFailed { .. } => {
                error!("#{context_id} request_id={request_id}{lambda} {failure}")
            }
            _ => warn!("#{context_id} request_id={request_id}{lambda} {failure}"),
        }
    }

    /// The summaries of failure lines that were only counted (called on the root's tick).
    pub(super) fn log_summaries(&self) {
        for (class, count) in self.log_limiter.borrow_mut().due(epoch_ms(now())) {
            warn!("{}", summary_line(&class, count));
        }
    }

    fn record_latency(&self, request: &Request, now: SystemTime) {
        if let Some(sent_at) = request.flow.invoke_sent_at() {
            let latency = now.duration_since(sent_at).unwrap_or_default();
            self.stats
                .latency(request.flow.metric_label(), latency.as_millis() as u64);
        }
    }

    fn count_success(&self, request: &Request) {
        self.stats.outcome(
            request.flow.metric_label(),
            Metric::InvokeSuccess,
            Outcome::Success,
        );
        self.tell_access_log(request, "success");
    }

    fn count_failure(&self, request: &Request, failure: &RequestError) {
        self.stats.outcome(
            request.flow.metric_label(),
            Metric::for_failure(failure),
            Outcome::of(failure),
        );
        self.tell_access_log(request, failure.class());
    }

    /// The request's function, outcome, profile and Lambda request id, as filter state for
    /// Envoy's access logs ([`crate::access_log`]).
    fn tell_access_log(&self, request: &Request, class: &str) {
        let flow = &request.flow;
        let profile = flow
            .profile()
            .and_then(|id| self.config.profile(id))
            .map(|p| p.name.as_str());
        let value = access_log_value(
            flow.metric_label().map(|l| &**l),
            class,
            profile,
            flow.lambda_request_id(),
        );
        if let Err(status) = host::set_filter_state(FILTER_STATE_KEY, value.as_bytes()) {
            debug!(
                "#{} access log filter state not set: {status:?}",
                request.context_id
            );
        }
    }

    /// The answer's headers arrived for a request forwarded in place.
    pub(super) fn on_answer_headers(&self, request: &SharedRequest, end_of_stream: bool) -> Action {
        let started = timing::start();
        let headers = host::map(MapType::HttpResponseHeaders);
        let tail = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-log-result"));
        log_function_tail(request.borrow().context_id, tail.map(|(_, v)| v));
        self.record_latency(&request.borrow(), now());
        let step = request
            .borrow_mut()
            .flow
            .on_answer_headers(headers, end_of_stream);
        let action = self.drive(request, step, Actor::RequestContext);
        self.timing.record(Timed::Answer, started);
        action
    }

    /// The stream is over: count and log a forwarded Invoke that the router ended.
    pub(super) fn on_stream_done(&self, request: &SharedRequest) {
        let failure = request.borrow_mut().flow.on_stream_done();
        if let Some(failure) = failure {
            let request = request.borrow();
            self.count_failure(&request, &failure);
            self.log_failure(&request, &failure);
        }
    }

    /// One info line per `response_stream` route and reason that falls back to the buffered
    /// Invoke (not one per request).
    fn log_stream_fallback(&self, fallback: StreamFallback) {
        let mut logged = self.stream_fallbacks_logged.borrow_mut();
        if logged.contains(&fallback) {
            return;
        }
        info!(
            "invoke_mode response_stream for {}: sent as the buffered Invoke ({})",
            fallback.route, fallback.reason
        );
        if logged.len() >= MAX_FALLBACKS_LOGGED {
            logged.clear();
        }
        logged.push(fallback);
    }

    /// Watches a request paused in its headers until its body begins.
    pub(super) fn watch_body(&self, request: &SharedRequest) {
        let context_id = request.borrow().context_id;
        let mut watch = self.body_watch.borrow_mut();
        watch.paused(context_id, || epoch_ms(now()));
        if !watch.is_idle() {
            self.awaiting_body
                .borrow_mut()
                .insert(context_id, Rc::clone(request));
        }
    }

    /// A body began: Envoy hands this filter request bodies, nothing more to watch.
    pub(super) fn body_arrived(&self) {
        let mut watch = self.body_watch.borrow_mut();
        if !watch.is_idle() {
            self.awaiting_body.borrow_mut().clear();
        }
        watch.body_arrived();
    }

    /// Answers the requests whose body is overdue (called by the root, on its tick).
    pub(super) fn answer_overdue_bodies(&self, root_context: u32) {
        let (overdue, first) = {
            let mut watch = self.body_watch.borrow_mut();
            if watch.is_idle() {
                return;
            }
            watch.overdue(epoch_ms(now()))
        };
        if first {
            error!("within {} s, {BODY_NOT_RECEIVED}", BODY_WAIT.as_secs());
        }
        for context_id in overdue {
            let Some(request) = self.awaiting_body.borrow_mut().remove(context_id) else {
                continue;
            };
            if hostcalls::set_effective_context(context_id).is_ok() {
                let step = request.borrow_mut().flow.on_body_overdue();
                self.drive(&request, step, Actor::Root);
            }
        }
        let _ = hostcalls::set_effective_context(root_context);
    }

    /// The request's context is going away: forget it wherever it waits.
    pub(super) fn forget(&self, context_id: u32) {
        self.body_watch.borrow_mut().forget(context_id);
        self.awaiting_body.borrow_mut().remove(context_id);
        // Only a parked request waits with a profile's waiters.
        if let Some(request) = self.parked.borrow_mut().remove(context_id) {
            self.unparked(&request);
            self.credentials.borrow_mut().unpark(context_id);
        }
        self.root_invokes
            .borrow_mut()
            .retain(|(_, request)| request.borrow().context_id != context_id);
    }
}

/// The function's log tail (`X-Amz-Log-Type: Tail`), decoded, at debug.
fn log_function_tail(context_id: u32, tail: Option<&str>) {
    let Some(tail) = tail.filter(|_| log::log_enabled!(log::Level::Debug)) else {
        return;
    };
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(tail.trim())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|_| "(not base64)".to_string());
    debug!("#{context_id} function log tail:\n{decoded}");
}
