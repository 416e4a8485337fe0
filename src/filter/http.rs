//! Request context: reads what the flow needs from the host and hands steps to the driver.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use super::driver::{Actor, Vm};
use super::host;
use super::request::{header_in, Request, SharedRequest};
use super::timing::{self, Phase as Timed};
use crate::flow::attempts::ATTEMPT_HEADER;
use crate::flow::{RequestFlow, RequestMeta, Step};
use crate::http::HeaderList;
use crate::route::{on_route, ROUTE_METADATA_PROPERTY, ROUTE_NAME_PROPERTY};

pub(super) struct LambdaHttp {
    vm: Option<Rc<Vm>>,
    request: SharedRequest,
}

impl LambdaHttp {
    pub(super) fn new(context_id: u32, vm: Option<Rc<Vm>>) -> Self {
        LambdaHttp {
            vm,
            request: Rc::new(RefCell::new(Request {
                context_id,
                flow: RequestFlow::default(),
                request_id: None,
                body_size: 0,
                answer_size: 0,
                attempt_key: None,
                parked_at: None,
                headers: HeaderList::default(),
            })),
        }
    }
}

/// The client's request as an event needs it, from its header map.
fn request_meta(request_id: Option<String>, headers: &HeaderList) -> RequestMeta {
    let mut meta = RequestMeta {
        request_id,
        protocol: host::property(b"request\0protocol")
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| "HTTP/1.1".to_string()),
        source_ip: host::property(b"source\0address")
            .and_then(|b| String::from_utf8(b).ok())
            .map(|address| strip_port(&address)),
        ..RequestMeta::default()
    };
    for (name, value) in headers.iter() {
        match name {
            ":method" => meta.method = value.to_string(),
            ":path" => match value.split_once('?') {
                Some((path, query)) => {
                    meta.path = path.to_string();
                    meta.raw_query = query.to_string();
                }
                None => meta.path = value.to_string(),
            },
            ":authority" => meta.host = Some(value.to_string()),
            _ if name.starts_with(':') => {}
            _ => meta
                .headers
                .push((name.to_ascii_lowercase(), value.to_string())),
        }
    }
    meta
}

/// `1.2.3.4:5678` → `1.2.3.4`, `[::1]:5678` → `::1`.
fn strip_port(address: &str) -> String {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host.to_string()
        }
        _ => address.to_string(),
    }
}

impl LambdaHttp {
    /// Captures the client's request for an event payload (from the map read once). A request
    /// rewritten in place is kept for the router's retries, which see the rewritten map: a
    /// retry finds the client's request by the key the first attempt sent along.
    fn capture_request(&self, vm: &Vm, step: Step) -> Step {
        let in_place = self.request.borrow().flow.forwards_in_place();
        let attempt = self
            .request
            .borrow()
            .header(ATTEMPT_HEADER)
            .map(str::to_string);
        let mut request = self.request.borrow_mut();
        match attempt.filter(|_| in_place) {
            Some(key) => match vm.attempts.borrow().get(&key) {
                Some(meta) => {
                    request.flow.set_request_meta(meta);
                    request.attempt_key = Some(key);
                    step
                }
                None => request.flow.on_unknown_retry(),
            },
            None => {
                let meta = Rc::new(request_meta(request.request_id.clone(), &request.headers));
                if in_place {
                    request.attempt_key = Some(vm.attempts.borrow_mut().keep(Rc::clone(&meta)));
                }
                request.flow.set_request_meta(meta);
                step
            }
        }
    }
}

impl Context for LambdaHttp {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let Some(vm) = &self.vm {
            vm.on_invoke_answer(&self.request, token_id, body_size);
        }
    }

    fn on_done(&mut self) -> bool {
        if let Some(vm) = &self.vm {
            vm.forget(self.request.borrow().context_id);
            vm.on_stream_done(&self.request);
        }
        true
    }
}

impl HttpContext for LambdaHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(vm) = self.vm.clone() else {
            return Action::Continue;
        };
        let started = timing::start();
        // The route's whole metadata in one read; its name only to name it in an error.
        let route_metadata = host::property(ROUTE_METADATA_PROPERTY).unwrap_or_default();
        let route = vm
            .routes
            .borrow_mut()
            .resolve_metadata(&vm.config, &route_metadata)
            .map_err(|error| on_route(error, host::property(ROUTE_NAME_PROPERTY)));
        // The header map is read once, and only for a request the filter takes (not for one
        // on a disabled route, nor in the HCM twin of `split_placement` going in place).
        let mut headers = None;
        let read_length = || {
            let map = host::map(MapType::HttpRequestHeaders);
            let length = header_in(&map, "content-length")
                .filter(|_| !end_of_stream)
                .and_then(|v| v.trim().parse::<u64>().ok());
            headers = Some(map);
            length
        };
        let placement = || {
            vm.placement.placement(
                || host::property(b"upstream\0address").is_some(),
                vm.config.split_placement,
            )
        };
        let step = self.request.borrow_mut().flow.on_request_headers(
            route,
            host::route_cluster,
            read_length,
            end_of_stream,
            placement,
        );
        if step == Step::Continue {
            vm.timing.record(Timed::Headers, started);
            return Action::Continue;
        }
        {
            let mut request = self.request.borrow_mut();
            request.headers = headers.unwrap_or_else(|| host::map(MapType::HttpRequestHeaders));
            request.request_id = request.header("x-request-id").map(str::to_string);
        }
        let step = if self.request.borrow().flow.wants_request_meta() {
            self.capture_request(&vm, step)
        } else {
            step
        };
        {
            let Request { headers, flow, .. } = &mut *self.request.borrow_mut();
            if flow.wants_trace_context() {
                flow.set_trace_context(
                    header_in(headers, "x-amzn-trace-id"),
                    header_in(headers, "traceparent"),
                );
            }
        }
        vm.timing.record(Timed::Headers, started);
        let action = vm.drive(&self.request, step, Actor::RequestContext);
        if action == Action::Pause && !end_of_stream && self.request.borrow().flow.awaits_body() {
            vm.watch_body(&self.request);
        }
        action
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(vm) = self.vm.clone() else {
            return Action::Continue;
        };
        vm.body_arrived();
        let step = {
            let mut request = self.request.borrow_mut();
            request.body_size = body_size;
            request.flow.on_request_body(body_size, end_of_stream)
        };
        vm.drive(&self.request, step, Actor::RequestContext)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let Some(vm) = self.vm.clone() else {
            return Action::Continue;
        };
        let step = self.request.borrow_mut().flow.on_request_trailers();
        vm.drive(&self.request, step, Actor::RequestContext)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(vm) = self.vm.clone() else {
            return Action::Continue;
        };
        if !self.request.borrow().flow.awaits_answer_in_place() {
            return Action::Continue;
        }
        vm.on_answer_headers(&self.request, end_of_stream)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(vm) = self.vm.clone() else {
            return Action::Continue;
        };
        if !self.request.borrow().flow.awaits_answer_in_place() {
            return Action::Continue;
        }
        let step = {
            let mut request = self.request.borrow_mut();
            request.answer_size = body_size;
            request.flow.on_answer_body(body_size, end_of_stream)
        };
        vm.drive(&self.request, step, Actor::RequestContext)
    }
}
