//! Request context: reads what the flow needs from the host and carries out its steps.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use log::{debug, error, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use crate::config::FilterConfig;
use crate::error::{ClientReply, RequestError};
use crate::flow::{RequestFlow, Step};
use crate::response::InvokeAnswer;
use crate::route::{decode_route_override, RouteCache, METADATA_NAMESPACE};

pub struct LambdaHttp {
    context_id: u32,
    config: Option<Rc<FilterConfig>>,
    routes: Rc<RefCell<RouteCache>>,
    flow: RequestFlow,
    request_id: Option<String>,
    body_size: usize,
}

impl LambdaHttp {
    pub fn new(
        context_id: u32,
        config: Option<Rc<FilterConfig>>,
        routes: Rc<RefCell<RouteCache>>,
    ) -> Self {
        LambdaHttp {
            context_id,
            config,
            routes,
            flow: RequestFlow::default(),
            request_id: None,
            body_size: 0,
        }
    }

    fn now(&self) -> SystemTime {
        hostcalls::get_current_time().unwrap_or_else(|_| SystemTime::now())
    }

    fn property(path: Vec<&str>) -> Option<Vec<u8>> {
        hostcalls::get_property(path).ok().flatten()
    }

    fn request_header(name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
    }

    fn read_body(&self) -> Vec<u8> {
        if self.body_size == 0 {
            return Vec::new();
        }
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, self.body_size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Carries out steps until the flow waits for the host.
    fn drive(&mut self, mut step: Step) -> Action {
        loop {
            step = match step {
                Step::Continue => return Action::Continue,
                Step::Pause => return Action::Pause,
                Step::ReadBody => {
                    let Some(config) = self.config.clone() else {
                        return Action::Continue;
                    };
                    let body = self.read_body();
                    let now = self.now();
                    self.flow.on_body_complete(body, &config.credentials, now)
                }
                Step::Dispatch(request) => {
                    let headers: Vec<(&str, &str)> = request
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    let result = hostcalls::dispatch_http_call(
                        &request.cluster,
                        headers,
                        Some(&request.body),
                        Vec::new(),
                        request.timeout,
                    )
                    .map_err(|status| {
                        warn!(
                            "#{} dispatch to cluster '{}' refused: {:?}",
                            self.context_id, request.cluster, status
                        );
                        request.cluster.clone()
                    });
                    if let Ok(token) = result {
                        debug!(
                            "#{} invoke dispatched to cluster '{}' ({} bytes), token {}",
                            self.context_id,
                            request.cluster,
                            request.body.len(),
                            token
                        );
                    }
                    let now = self.now();
                    self.flow.on_dispatched(result, now)
                }
                Step::Reply(reply) => {
                    self.send(&reply);
                    return Action::Pause;
                }
                Step::Fail(error) => {
                    self.log_failure(&error);
                    self.send(&error.to_reply(self.request_id.as_deref()));
                    return Action::Pause;
                }
            }
        }
    }

    fn log_failure(&self, error: &RequestError) {
        let request_id = self.request_id.as_deref().unwrap_or("-");
        match error {
            RequestError::RouteConfigInvalid(_)
            | RequestError::NoCluster
            | RequestError::Signing(_)
            | RequestError::DispatchFailed { .. } => {
                error!("#{} request_id={request_id} {error}", self.context_id)
            }
            _ => warn!("#{} request_id={request_id} {error}", self.context_id),
        }
    }

    fn send(&self, reply: &ClientReply) {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let body = (!reply.body.is_empty()).then_some(reply.body.as_slice());
        if let Err(status) = hostcalls::send_http_response(u32::from(reply.status), headers, body) {
            error!(
                "#{} could not send the {} response: {:?}",
                self.context_id, reply.status, status
            );
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
        let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
        let status = headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| value.parse::<u16>().ok());
        let body = if body_size == 0 {
            Vec::new()
        } else {
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        debug!(
            "#{} invoke answered: status {:?}, {} bytes",
            self.context_id,
            status,
            body.len()
        );
        let answer = InvokeAnswer {
            status,
            headers,
            body,
        };
        let now = self.now();
        match self.flow.on_invoke_answer(token_id, answer, now) {
            Some(step) => {
                self.drive(step);
            }
            None => warn!(
                "#{} answer for unknown call token {token_id} dropped",
                self.context_id
            ),
        }
    }
}

impl HttpContext for LambdaHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        self.request_id = Self::request_header("x-request-id");
        let route_cluster = Self::property(vec!["xds", "cluster_name"])
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let metadata_key = Self::property(vec![
            "xds",
            "route_metadata",
            "filter_metadata",
            METADATA_NAMESPACE,
        ])
        .unwrap_or_default();
        let route = self
            .routes
            .borrow_mut()
            .resolve(&config, &metadata_key, || {
                decode_route_override(|key| {
                    Self::property(vec![
                        "xds",
                        "route_metadata",
                        "filter_metadata",
                        METADATA_NAMESPACE,
                        key,
                    ])
                })
            });
        let content_length =
            Self::request_header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let step =
            self.flow
                .on_request_headers(route, route_cluster, content_length, end_of_stream);
        self.drive(step)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.body_size = body_size;
        let step = self.flow.on_request_body(body_size, end_of_stream);
        self.drive(step)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let step = self.flow.on_request_trailers();
        self.drive(step)
    }
}
