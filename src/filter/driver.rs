//! Carries out a request's [`Step`]s with host calls. Used by the request's own context and
//! by the root context when it wakes a request that waited for credentials (the root then
//! acts with the request as the effective context).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::SystemTime;

use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType, MapType, Status, StreamType};

use super::credentials::HostStore;
use super::host;
use super::stats::Stats;
use super::timing::{self, Phase as Timed, Timing};
use crate::answer::proxy_response::is_bodyless_status;
use crate::answer::MAX_ANSWER_BYTES;
use crate::config::FilterConfig;
use crate::credentials::profiles::CredentialProfiles;
use crate::error::RequestError;
use crate::flow::attempts::{AttemptStash, ATTEMPT_HEADER};
use crate::flow::{RequestFlow, Step, StreamFallback};
use crate::http::CallAnswer;
use crate::http::ClientReply;
use crate::http::OutboundRequest;
use crate::metrics::Metric;
use crate::route::RouteCache;

/// One HTTP request's state, shared by its context and (while it waits) the root.
pub struct Request {
    pub context_id: u32,
    pub flow: RequestFlow,
    pub request_id: Option<String>,
    pub body_size: usize,
    /// Bytes of the answer's body buffered so far (requests forwarded in place).
    pub answer_size: usize,
    /// The key under which the client's request is kept for the router's retries.
    pub attempt_key: Option<String>,
    /// When the request started waiting for credentials.
    pub parked_at: Option<SystemTime>,
}

pub type SharedRequest = Rc<RefCell<Request>>;

/// Per-VM state shared by the root context and every request context.
pub struct Vm {
    pub config: Rc<FilterConfig>,
    pub routes: RefCell<RouteCache>,
    /// Client requests kept for the router's retries of requests rewritten in place.
    pub attempts: RefCell<AttemptStash>,
    pub credentials: RefCell<CredentialProfiles>,
    /// Requests waiting for credentials, by context id.
    pub parked: RefCell<HashMap<u32, SharedRequest>>,
    /// Invokes the root dispatched for woken requests: the SDK routes their answers to the
    /// root, which hands them to the request.
    pub root_invokes: RefCell<HashMap<u32, SharedRequest>>,
    pub stats: Stats,
    /// Profiling only (feature `vm-timing`).
    pub timing: Timing,
    /// Marks a request this VM rewrote in place, so that its retry is told from a client's
    /// request (random per VM; sent only upstream, never to clients).
    pub retry_tag: String,
    /// `response_stream` routes (and reasons) whose buffered fallback was logged.
    pub stream_fallbacks_logged: RefCell<Vec<StreamFallback>>,
}

/// Bound on the remembered fallback log lines (a config with many routes logs again after).
const MAX_FALLBACKS_LOGGED: usize = 256;

pub fn now() -> SystemTime {
    hostcalls::get_current_time().unwrap_or_else(|_| SystemTime::now())
}

/// Who is carrying out the step: the request's own context, or the root on its behalf.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    RequestContext,
    Root,
}

impl Vm {
    /// Carries out steps until the request waits for the host. Returns the filter action
    /// for the callback in progress.
    pub fn drive(&self, request: &SharedRequest, mut step: Step, actor: Actor) -> Action {
        loop {
            step = match step {
                Step::Continue => return Action::Continue,
                Step::Pause => return Action::Pause,
                Step::ReadBody => {
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
                    let step = request.borrow_mut().flow.on_body_complete(
                        body,
                        credentials.as_ref(),
                        now,
                        max_wait,
                    );
                    self.timing.record(Timed::BuildAndSign, started);
                    step
                }
                Step::WaitForCredentials { deadline } => {
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
                    return Action::Pause;
                }
                Step::Dispatch(outbound) => {
                    let fallback = request.borrow_mut().flow.take_stream_fallback();
                    if let Some(fallback) = fallback {
                        self.log_stream_fallback(fallback);
                    }
                    let started = timing::start();
                    let result = dispatch(&outbound);
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
                Step::Forward {
                    invoke,
                    replace_body,
                } => {
                    let started = timing::start();
                    if host::map_value(MapType::HttpRequestHeaders, ":method").as_deref()
                        == Some("HEAD")
                    {
                        request.borrow_mut().flow.set_head_request();
                    }
                    let request = request.borrow();
                    let context_id = request.context_id;
                    if let Err(status) = forward(&invoke, replace_body, &request, &self.retry_tag) {
                        // Rewriting failed half-way: never let it continue unsigned.
                        error!("#{context_id} could not rewrite the request into the Invoke: {status:?}");
                        let failure = RequestError::DispatchFailed {
                            cluster: invoke.cluster.clone(),
                        };
                        self.stats.increment(Metric::for_failure(&failure));
                        if let Err(status) = send(&failure.to_reply(request.request_id.as_deref()))
                        {
                            error!("#{context_id} could not send the error reply: {status:?}");
                        }
                        return Action::Pause;
                    }
                    self.stats
                        .record(Metric::InvokePayloadBytes, invoke.body.len() as u64);
                    self.stats.increment(Metric::InvokeInPlace);
                    debug!(
                        "#{context_id} invoke forwarded in place to cluster '{}' ({} bytes)",
                        invoke.cluster,
                        invoke.body.len()
                    );
                    self.timing.record(Timed::Dispatch, started);
                    if actor == Actor::Root {
                        if let Err(status) = host::continue_stream(StreamType::HttpRequest) {
                            warn!("#{context_id} could not resume the request: {status}");
                        }
                    }
                    return Action::Continue;
                }
                Step::RelayAnswer(headers) => match set_response_headers(&headers) {
                    Ok(()) => return Action::Continue,
                    Err(status) => Step::RewriteAnswerWithError(unwritable("headers", status)),
                },
                Step::AnswerRelayed => {
                    self.stats.increment(Metric::InvokeSuccess);
                    return Action::Continue;
                }
                Step::ReadAnswerBody => {
                    let size = request.borrow().answer_size;
                    let body = read_buffer(BufferType::HttpResponseBody, size);
                    request.borrow_mut().flow.on_answer_complete(body)
                }
                Step::RewriteAnswer(reply) => {
                    let written = {
                        let request = request.borrow();
                        rewrite_answer(&reply, request.answer_size, request.flow.is_head_request())
                    };
                    match written {
                        Ok(()) => {
                            self.stats.increment(Metric::InvokeSuccess);
                            return Action::Continue;
                        }
                        Err(status) => Step::RewriteAnswerWithError(unwritable("answer", status)),
                    }
                }
                Step::RewriteAnswerWithError(failure) => {
                    self.stats.increment(Metric::for_failure(&failure));
                    let reply = {
                        let request = request.borrow();
                        log_failure(&request, &failure);
                        failure.to_reply(request.request_id.as_deref())
                    };
                    let mut request = request.borrow_mut();
                    let written =
                        if request.answer_size == 0 && request.flow.awaits_answer_in_place() {
                            // Refused while its body is still to come: the error's body goes out
                            // in place of the first chunk, and the rest is dropped.
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
                        // Not even the error could be written: reset rather than let the
                        // function's answer go out half rewritten.
                        reset_answer(request.context_id, "the error reply", status);
                    }
                    return Action::Continue;
                }
                Step::ReplaceAnswerBody(bytes) => {
                    let request = request.borrow();
                    if let Err(status) = replace_answer_body(&request, &bytes) {
                        reset_answer(request.context_id, "the error body", status);
                    }
                    return Action::Continue;
                }
                Step::Reply(reply) => match send(&reply) {
                    Ok(()) => {
                        self.stats.increment(Metric::InvokeSuccess);
                        return Action::Pause;
                    }
                    Err(status) => Step::Fail(unwritable("answer", status)),
                },
                Step::ReadStream {
                    start,
                    size,
                    end_of_stream,
                } => {
                    let bytes = read_range(BufferType::HttpResponseBody, start, size);
                    request
                        .borrow_mut()
                        .flow
                        .on_stream_bytes(&bytes, end_of_stream)
                }
                Step::StreamHead {
                    headers,
                    body,
                    complete,
                } => {
                    let written = {
                        let request = request.borrow();
                        set_response_headers(&headers)
                            .and_then(|()| replace_answer_body(&request, &body))
                    };
                    match written {
                        Ok(()) => {
                            if complete {
                                self.stats.increment(Metric::InvokeSuccess);
                            }
                            return Action::Continue;
                        }
                        Err(status) => Step::AbortStream(unwritable("stream", status)),
                    }
                }
                Step::StreamChunk { body, complete } => {
                    let written = replace_answer_body(&request.borrow(), &body);
                    match written {
                        Ok(()) => {
                            if complete {
                                self.stats.increment(Metric::InvokeSuccess);
                            }
                            return Action::Continue;
                        }
                        Err(status) => Step::AbortStream(unwritable("stream", status)),
                    }
                }
                Step::AbortStream(failure) => {
                    let request = request.borrow();
                    self.stats.increment(Metric::for_failure(&failure));
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
                    return Action::Pause;
                }
                Step::Fail(failure) => {
                    let request = request.borrow();
                    self.stats.increment(Metric::for_failure(&failure));
                    if matches!(failure, RequestError::RouteConfigInvalid(_)) {
                        self.stats.increment(Metric::RouteConfigErrors);
                    }
                    log_failure(&request, &failure);
                    if let Err(status) = send(&failure.to_reply(request.request_id.as_deref())) {
                        // The one way out left: a bare 502, else a reset.
                        error!(
                            "#{} could not send the error reply: {status:?}",
                            request.context_id
                        );
                        if hostcalls::send_http_response(502, Vec::new(), None).is_err() {
                            reset_answer(request.context_id, "a bare 502", 0);
                        }
                    }
                    return Action::Pause;
                }
            }
        }
    }

    /// The Invoke's answer, read from the host (the request must be the effective context).
    pub fn on_invoke_answer(&self, request: &SharedRequest, token: u32, body_size: usize) {
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
        if let Some(sent_at) = request.borrow().flow.invoke_sent_at() {
            let latency = now.duration_since(sent_at).unwrap_or_default();
            self.stats
                .record(Metric::InvokeLatencyMs, latency.as_millis() as u64);
        }
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
    pub fn unparked(&self, request: &SharedRequest) {
        self.stats.add(Metric::CredentialWaiting, -1);
        if let Some(parked_at) = request.borrow_mut().parked_at.take() {
            let waited = now().duration_since(parked_at).unwrap_or_default();
            self.stats
                .record(Metric::CredentialWaitMs, waited.as_millis() as u64);
        }
    }

    /// The answer's headers arrived for a request forwarded in place.
    pub fn on_answer_headers(&self, request: &SharedRequest, end_of_stream: bool) -> Action {
        let started = timing::start();
        let headers = host::map(MapType::HttpResponseHeaders);
        let tail = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-log-result"));
        log_function_tail(request.borrow().context_id, tail.map(|(_, v)| v.as_str()));
        if let Some(sent_at) = request.borrow().flow.invoke_sent_at() {
            let latency = now().duration_since(sent_at).unwrap_or_default();
            self.stats
                .record(Metric::InvokeLatencyMs, latency.as_millis() as u64);
        }
        let step = request
            .borrow_mut()
            .flow
            .on_answer_headers(headers, end_of_stream);
        let action = self.drive(request, step, Actor::RequestContext);
        self.timing.record(Timed::Answer, started);
        action
    }

    /// The stream is over: count and log a forwarded Invoke that the router ended.
    pub fn on_stream_done(&self, request: &SharedRequest) {
        let failure = request.borrow_mut().flow.on_stream_done();
        if let Some(failure) = failure {
            self.stats.increment(Metric::for_failure(&failure));
            log_failure(&request.borrow(), &failure);
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

    /// The request's context is going away: forget it wherever it waits.
    pub fn forget(&self, context_id: u32) {
        if let Some(request) = self.parked.borrow_mut().remove(&context_id) {
            self.unparked(&request);
        }
        self.credentials.borrow_mut().unpark(context_id);
        self.root_invokes
            .borrow_mut()
            .retain(|_, request| request.borrow().context_id != context_id);
    }
}

/// Sends a built request to its cluster; the answer comes to `on_http_call_response`.
pub fn dispatch(outbound: &OutboundRequest) -> Result<u32, Status> {
    let headers: Vec<(&str, &str)> = outbound
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    hostcalls::dispatch_http_call(
        &outbound.cluster,
        headers,
        Some(&outbound.body),
        Vec::new(),
        outbound.timeout,
    )
}

/// The answer to a dispatched call: `:status`, headers and body. A body over `max_body`
/// bytes is left in the host (Envoy frees it with the call) and only its size reported, so
/// an oversized answer never grows the VM's memory.
pub fn read_call_answer(body_size: usize, max_body: usize) -> CallAnswer {
    let headers = host::map(MapType::HttpCallResponseHeaders);
    let status = headers
        .iter()
        .find(|(name, _)| name == ":status")
        .and_then(|(_, value)| value.parse::<u16>().ok());
    let oversized = body_size > max_body;
    let body = if body_size == 0 || oversized {
        Vec::new()
    } else {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    CallAnswer {
        status,
        headers,
        body,
        unread_body_bytes: oversized.then_some(body_size),
    }
}

fn read_body(body_size: usize) -> Vec<u8> {
    read_buffer(BufferType::HttpRequestBody, body_size)
}

fn read_buffer(buffer: BufferType, size: usize) -> Vec<u8> {
    read_range(buffer, 0, size)
}

fn read_range(buffer: BufferType, start: usize, size: usize) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    hostcalls::get_buffer(buffer, start, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Replaces the answer's body buffered in this callback (`answer_size` bytes) with `body`
/// (with nothing, for a HEAD).
fn replace_answer_body(request: &Request, body: &[u8]) -> Result<(), u32> {
    let body = if request.flow.is_head_request() {
        &[]
    } else {
        body
    };
    if request.answer_size == 0 && body.is_empty() {
        return Ok(());
    }
    host::set_buffer(BufferType::HttpResponseBody, 0, request.answer_size, body)
}

/// The function's answer could not be written whole: a 502 `bad_response` instead (never a
/// response missing part of what the function meant).
fn unwritable(what: &str, status: impl std::fmt::Debug) -> RequestError {
    RequestError::BadResponse {
        message: format!(
            "the function's {what} could not be written to the response (host status \
             {status:?}): see the documented response limits"
        ),
    }
}

/// Resets the response: the last way out when not even an error reply can be written.
fn reset_answer(context_id: u32, what: &str, status: impl std::fmt::Debug) {
    error!("#{context_id} could not write {what} ({status:?}): resetting the stream");
    if let Err(status) = host::close_stream(StreamType::HttpResponse) {
        error!("#{context_id} could not reset the response stream: {status}");
    }
}

/// Rewrites the request into the Invoke: one call replaces the whole header map (so nothing
/// the client sent goes on), one more replaces the body when the payload is not the client's
/// body. The router's header map is the request's own, which access logs and the router's
/// local replies read after the rewrite, so a few headers are set for them (unsigned; Lambda
/// ignores them): `:scheme`, set by the router for the upstream; `x-request-id`;
/// `x-envoy-original-path`, the client's path, as Envoy's own path rewrites keep it (Envoy's
/// default access log format prints it); and the attempt header that marks the rewrite as
/// ours: the request's attempt key (event payloads) or the VM's `retry_tag`, neither known
/// to clients.
fn forward(
    invoke: &OutboundRequest,
    replace_body: bool,
    request: &Request,
    retry_tag: &str,
) -> Result<(), u32> {
    let current = |name: &str| host::map_value(MapType::HttpRequestHeaders, name);
    let scheme = current(":scheme");
    let attempt = request.attempt_key.as_deref().unwrap_or(retry_tag);
    // A retry sees the map the first attempt rewrote: its original path is the client's.
    // Only a map this filter rewrote (it carries the attempt header's secret value) is a
    // retry; a client that sends the Invoke's path never chooses the logged path.
    let client_path = match current(":path") {
        Some(path)
            if Some(path.as_str()) == invoke.header(":path")
                && current(ATTEMPT_HEADER).as_deref() == Some(attempt) =>
        {
            current(ORIGINAL_PATH_HEADER)
        }
        path => path,
    };
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(invoke.headers.len() + 4);
    headers.extend(invoke.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    if let Some(scheme) = &scheme {
        headers.push((":scheme", scheme));
    }
    if let Some(request_id) = &request.request_id {
        headers.push(("x-request-id", request_id));
    }
    if let Some(path) = &client_path {
        headers.push((ORIGINAL_PATH_HEADER, path));
    }
    headers.push((ATTEMPT_HEADER, attempt));
    host::set_map(MapType::HttpRequestHeaders, &headers)?;
    if replace_body {
        host::set_buffer(
            BufferType::HttpRequestBody,
            0,
            request.body_size,
            &invoke.body,
        )?;
    }
    Ok(())
}

const ORIGINAL_PATH_HEADER: &str = "x-envoy-original-path";

/// The answer's status and headers become the reply's (with its body's length, except for
/// the statuses that carry no body, which carry no content-length either).
fn rewrite_answer_headers(reply: &ClientReply) -> Result<(), u32> {
    let mut headers = Vec::with_capacity(reply.headers.len() + 2);
    headers.push((":status".to_string(), reply.status.to_string()));
    headers.extend(reply.headers.iter().cloned());
    if !is_bodyless_status(reply.status) {
        headers.push(("content-length".to_string(), reply.body.len().to_string()));
    }
    set_response_headers(&headers)
}

fn set_response_headers(headers: &[(String, String)]) -> Result<(), u32> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    host::set_map(MapType::HttpResponseHeaders, &headers)
}

/// Replaces the answer with `reply`: status and headers, and the body read so far
/// (`answer_size` bytes; for a HEAD, nothing, under the content-length a GET would get). An
/// answer that ended with its headers has no body to replace, so its replacement goes out
/// as a local reply (whose body Envoy drops for a HEAD itself).
fn rewrite_answer(reply: &ClientReply, answer_size: usize, head: bool) -> Result<(), u32> {
    if answer_size == 0 && !reply.body.is_empty() {
        return send(reply).map_err(|status| status as u32);
    }
    rewrite_answer_headers(reply)?;
    let body: &[u8] = if head { &[] } else { &reply.body };
    if answer_size == 0 && body.is_empty() {
        return Ok(());
    }
    host::set_buffer(BufferType::HttpResponseBody, 0, answer_size, body)
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

fn log_failure(request: &Request, failure: &RequestError) {
    let request_id = request.request_id.as_deref().unwrap_or("-");
    let context_id = request.context_id;
    match failure {
        RequestError::RouteConfigInvalid(_)
        | RequestError::NoCluster
        | RequestError::Signing(_)
        | RequestError::DispatchFailed { .. } => {
            error!("#{context_id} request_id={request_id} {failure}")
        }
        _ => warn!("#{context_id} request_id={request_id} {failure}"),
    }
}

/// Answers the client with `reply` as a local reply (a body-less status goes without body).
fn send(reply: &ClientReply) -> Result<(), Status> {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let body = (!reply.body.is_empty() && !is_bodyless_status(reply.status))
        .then_some(reply.body.as_slice());
    hostcalls::send_http_response(u32::from(reply.status), headers, body)
}
