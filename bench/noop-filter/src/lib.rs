//! Baseline proxy-wasm HTTP filters for `make bench`.
//!
//! - configuration empty: no-op, every callback takes the default (continue);
//! - configuration `floor` (upstream placement): what any filter that turns the request into
//!   a SigV4-signed Invoke in place has to ask of the host, with nothing computed — the body
//!   is buffered and read into the VM (a signer must hash it), the header map is replaced by
//!   a fixed Invoke header set in one call, and the answer's `x-amz-function-error` is read.
//!   No hashing, no signing, no event: the cost floor of such a filter in this runtime.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(BaselineRoot { floor: false }) });
}}

struct BaselineRoot {
    floor: bool,
}

impl Context for BaselineRoot {}

impl RootContext for BaselineRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.floor = self.get_plugin_configuration().as_deref() == Some(b"floor".as_slice());
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.floor {
            Some(Box::new(Floor))
        } else {
            Some(Box::new(Noop))
        }
    }
}

struct Noop;

impl Context for Noop {}

impl HttpContext for Noop {}

struct Floor;

/// The header set of a signed Invoke with static credentials, at realistic sizes.
const INVOKE_HEADERS: [(&str, &str); 7] = [
    (":method", "POST"),
    (":path", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Abench/invocations"),
    (":authority", "lambda.us-east-1.amazonaws.com"),
    (":scheme", "http"),
    ("x-amz-date", "20261130T080000Z"),
    ("x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDBENCHEXAMPLE/20261130/us-east-1/lambda/aws4_request, SignedHeaders=content-length;host;x-amz-content-sha256;x-amz-date, Signature=0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a09080706050403020100f"),
];

impl Floor {
    fn rewrite(&self, content_length: usize) {
        let length = content_length.to_string();
        let mut headers = INVOKE_HEADERS.to_vec();
        headers.push(("content-length", &length));
        let _ = hostcalls::set_map(MapType::HttpRequestHeaders, headers);
    }
}

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            self.rewrite(0);
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.rewrite(body.len());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let _ = hostcalls::get_map_value(MapType::HttpResponseHeaders, "x-amz-function-error");
        Action::Continue
    }
}
