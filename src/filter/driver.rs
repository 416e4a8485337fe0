//! Carries out a request's [`Step`]s with host calls. Used by the request's own context and
//! by the root context when it wakes a request that waited for credentials (the root then
//! acts with the request as the effective context).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::SystemTime;

use log::{debug, error, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType, MapType, Status};

use super::credentials::CredentialShell;
use super::stats::Stats;
use super::timing::{self, Phase as Timed, Timing};
use crate::config::FilterConfig;
use crate::error::{ClientReply, RequestError};
use crate::flow::{RequestFlow, Step};
use crate::invoke::OutboundRequest;
use crate::metrics::Metric;
use crate::response::{InvokeAnswer, MAX_ANSWER_BYTES};
use crate::route::RouteCache;

/// One HTTP request's state, shared by its context and (while it waits) the root.
pub struct Request {
    pub context_id: u32,
    pub flow: RequestFlow,
    pub request_id: Option<String>,
    pub body_size: usize,
    /// When the request started waiting for credentials.
    pub parked_at: Option<SystemTime>,
}

pub type SharedRequest = Rc<RefCell<Request>>;

/// Per-VM state shared by the root context and every request context.
pub struct Vm {
    pub config: Rc<FilterConfig>,
    pub routes: RefCell<RouteCache>,
    pub credentials: RefCell<CredentialShell>,
    /// Requests waiting for credentials, by context id.
    pub parked: RefCell<HashMap<u32, SharedRequest>>,
    /// Invokes the root dispatched for woken requests: the SDK routes their answers to the
    /// root, which hands them to the request.
    pub root_invokes: RefCell<HashMap<u32, SharedRequest>>,
    pub stats: Stats,
    /// Profiling only (feature `vm-timing`).
    pub timing: Timing,
}

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
                    let credentials = self.credentials.borrow_mut().usable(now);
                    let max_wait = self.credentials.borrow().max_wait();
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
                    self.credentials.borrow_mut().park(context_id, deadline);
                    return Action::Pause;
                }
                Step::Dispatch(outbound) => {
                    let started = timing::start();
                    let result = dispatch(&outbound);
                    self.timing.record(Timed::Dispatch, started);
                    let context_id = request.borrow().context_id;
                    let result = match result {
                        Ok(token) => {
                            self.stats
                                .record(Metric::InvokePayloadBytes, outbound.body.len() as u64);
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
                Step::Reply(reply) => {
                    self.stats.increment(Metric::InvokeSuccess);
                    send(request.borrow().context_id, &reply);
                    return Action::Pause;
                }
                Step::Fail(failure) => {
                    let request = request.borrow();
                    self.stats.increment(Metric::for_failure(&failure));
                    if matches!(failure, RequestError::RouteConfigInvalid(_)) {
                        self.stats.increment(Metric::RouteConfigErrors);
                    }
                    log_failure(&request, &failure);
                    send(
                        request.context_id,
                        &failure.to_reply(request.request_id.as_deref()),
                    );
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
        if log::log_enabled!(log::Level::Debug) {
            if let Some(tail) = answer.header("x-amz-log-result") {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(tail.trim())
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_else(|_| "(not base64)".to_string());
                debug!("#{context_id} function log tail:\n{decoded}");
            }
        }
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
pub fn read_call_answer(body_size: usize, max_body: usize) -> InvokeAnswer {
    let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
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
    InvokeAnswer {
        status,
        headers,
        body,
        unread_body_bytes: oversized.then_some(body_size),
    }
}

fn read_body(body_size: usize) -> Vec<u8> {
    if body_size == 0 {
        return Vec::new();
    }
    hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default()
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

fn send(context_id: u32, reply: &ClientReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let body = (!reply.body.is_empty()).then_some(reply.body.as_slice());
    if let Err(status) = hostcalls::send_http_response(u32::from(reply.status), headers, body) {
        error!(
            "#{context_id} could not send the {} response: {status:?}",
            reply.status
        );
    }
}
