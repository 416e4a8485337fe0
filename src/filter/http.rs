//! Request context: reads what the flow needs from the host and hands steps to the driver.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use super::driver::{Actor, Request, SharedRequest, Vm};
use crate::flow::RequestFlow;
use crate::route::{decode_route_override, METADATA_NAMESPACE};

pub struct LambdaHttp {
    vm: Option<Rc<Vm>>,
    request: SharedRequest,
}

impl LambdaHttp {
    pub fn new(context_id: u32, vm: Option<Rc<Vm>>) -> Self {
        LambdaHttp {
            vm,
            request: Rc::new(RefCell::new(Request {
                context_id,
                flow: RequestFlow::default(),
                request_id: None,
                body_size: 0,
                parked_at: None,
            })),
        }
    }
}

fn property(path: Vec<&str>) -> Option<Vec<u8>> {
    hostcalls::get_property(path).ok().flatten()
}

fn request_header(name: &str) -> Option<String> {
    hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
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
        }
        true
    }
}

impl HttpContext for LambdaHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(vm) = self.vm.clone() else {
            return Action::Continue;
        };
        self.request.borrow_mut().request_id = request_header("x-request-id");
        let route_cluster =
            property(vec!["xds", "cluster_name"]).and_then(|bytes| String::from_utf8(bytes).ok());
        let metadata_key = property(vec![
            "xds",
            "route_metadata",
            "filter_metadata",
            METADATA_NAMESPACE,
        ])
        .unwrap_or_default();
        let route = vm
            .routes
            .borrow_mut()
            .resolve(&vm.config, &metadata_key, || {
                decode_route_override(|key| {
                    property(vec![
                        "xds",
                        "route_metadata",
                        "filter_metadata",
                        METADATA_NAMESPACE,
                        key,
                    ])
                })
            });
        let content_length =
            request_header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let step = self.request.borrow_mut().flow.on_request_headers(
            route,
            route_cluster,
            content_length,
            end_of_stream,
        );
        vm.drive(&self.request, step, Actor::RequestContext)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(vm) = self.vm.clone() else {
            return Action::Continue;
        };
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
}
