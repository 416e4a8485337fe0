//! Baseline proxy-wasm HTTP filters for `make bench`.
//!
//! - configuration empty: no-op, every callback takes the default (continue);
//! - configuration `floor` (upstream placement): what any filter that turns the request into
//!   a SigV4-signed Invoke in place has to ask of the host, with nothing computed — the body
//!   is buffered and read into the VM (a signer must hash it), the header map is replaced by
//!   a fixed Invoke header set in one call, and the answer's `x-amz-function-error` is read.
//!   No hashing, no signing, no event: the cost floor of such a filter in this runtime.
//! - configuration `floor+<probe>x<n>`: the floor, plus one host call repeated `n` times per
//!   request where the filter makes it (`PROBES`): (probe − floor) ÷ n is what one such call
//!   costs Envoy and the VM together.
//! - configuration `mimic` (upstream placement): the host calls the filter makes on an
//!   upstream passthrough GET, in its order and with its data (`MIMIC_INVOKE_HEADERS`),
//!   nothing computed: ours − mimic is the filter's own work in the VM, mimic − floor what
//!   its host calls cost in place. `mimic+del` edits the answer's headers one by one (the
//!   fake Lambda's extras removed, content-type set) instead of replacing the map.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(BaselineRoot { mode: Mode::Noop }) });
}}

struct BaselineRoot {
    mode: Mode,
}

/// What the plugin configuration asks each request's context to do.
#[derive(Clone, Copy)]
enum Mode {
    Noop,
    /// The floor, with a probe's call `n` times per request if one is named.
    Floor(Option<(Probe, u32)>),
    Mimic(Mimic),
}

impl Mode {
    fn parse(config: &[u8]) -> Mode {
        match config {
            b"floor" => Mode::Floor(None),
            b"mimic" => Mode::Mimic(Mimic {
                answer_one_by_one: false,
            }),
            b"mimic+del" => Mode::Mimic(Mimic {
                answer_one_by_one: true,
            }),
            _ => parse_probe(config).map_or(Mode::Noop, |probe| Mode::Floor(Some(probe))),
        }
    }

    /// The metric its requests record into, if any.
    fn metric(self) -> Option<MetricType> {
        match self {
            Mode::Floor(Some((Probe::Histogram, _))) | Mode::Mimic(_) => {
                Some(MetricType::Histogram)
            }
            Mode::Floor(Some(_)) => Some(MetricType::Counter),
            Mode::Noop | Mode::Floor(None) => None,
        }
    }
}

/// A host call the filter makes per request, to be priced one at a time.
#[derive(Clone, Copy, PartialEq)]
enum Probe {
    /// The request's whole header map read (`proxy_get_header_map_pairs`).
    RequestMapGet,
    /// The request's header map replaced by the Invoke set.
    RequestMapSet,
    /// One request header read.
    RequestHeaderGet,
    /// One request header replaced.
    RequestHeaderSet,
    /// The answer's whole header map read.
    AnswerMapGet,
    /// The answer's header map replaced by a success set.
    AnswerMapSet,
    /// One answer header replaced.
    AnswerHeaderSet,
    /// One answer header removed.
    AnswerHeaderRemove,
    /// `xds.route_metadata` (the whole serialized Metadata).
    RouteMetadata,
    /// `upstream.address`.
    UpstreamAddress,
    /// `xds.cluster_name`.
    ClusterName,
    /// A filter-state value set (`wasm.<key>`, as the access log reads it).
    FilterState,
    /// The host's clock.
    Clock,
    /// A counter incremented.
    Counter,
    /// A histogram value recorded.
    Histogram,
}

const PROBES: [(&str, Probe); 15] = [
    ("reqmapget", Probe::RequestMapGet),
    ("reqmapset", Probe::RequestMapSet),
    ("reqhdrget", Probe::RequestHeaderGet),
    ("reqhdrset", Probe::RequestHeaderSet),
    ("ansmapget", Probe::AnswerMapGet),
    ("ansmapset", Probe::AnswerMapSet),
    ("anshdrset", Probe::AnswerHeaderSet),
    ("anshdrdel", Probe::AnswerHeaderRemove),
    ("routemd", Probe::RouteMetadata),
    ("upstream", Probe::UpstreamAddress),
    ("cluster", Probe::ClusterName),
    ("state", Probe::FilterState),
    ("clock", Probe::Clock),
    ("counter", Probe::Counter),
    ("histogram", Probe::Histogram),
];

/// `floor+<probe>x<n>` → the probe and its count.
fn parse_probe(config: &[u8]) -> Option<(Probe, u32)> {
    let spec = std::str::from_utf8(config).ok()?.strip_prefix("floor+")?;
    let (name, count) = spec.rsplit_once('x')?;
    let probe = PROBES.iter().find(|(n, _)| *n == name)?.1;
    Some((probe, count.parse().ok()?))
}

impl Context for BaselineRoot {}

impl RootContext for BaselineRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        self.mode = Mode::parse(&config);
        if let Some(kind) = self.mode.metric() {
            if let Ok(id) = hostcalls::define_metric(kind, "bench_probe") {
                METRIC.with(|m| m.set(id));
            }
        }
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match self.mode {
            Mode::Noop => Box::new(Noop),
            Mode::Floor(probe) => Box::new(Floor { probe }),
            Mode::Mimic(mimic) => Box::new(mimic),
        })
    }
}

struct Noop;

impl Context for Noop {}

impl HttpContext for Noop {}

struct Floor {
    probe: Option<(Probe, u32)>,
}

thread_local! {
    static METRIC: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The answer's headers of a successful passthrough Invoke, as a filter would set them.
const ANSWER_HEADERS: [(&str, &str); 3] = [
    (":status", "200"),
    ("content-type", "application/json"),
    ("content-length", "87"), // the bench fake Lambda's answer
];

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
    /// The probe's call, `n` times, if it belongs at this point of the request.
    fn probe(&self, at_request: bool) {
        let Some((probe, n)) = self.probe else { return };
        let answer_side = matches!(
            probe,
            Probe::AnswerMapGet
                | Probe::AnswerMapSet
                | Probe::AnswerHeaderSet
                | Probe::AnswerHeaderRemove
        );
        if answer_side == at_request {
            return;
        }
        let metric = METRIC.with(|m| m.get());
        for _ in 0..n {
            let _ = match probe {
                Probe::RequestMapGet => {
                    hostcalls::get_map_bytes(MapType::HttpRequestHeaders).map(drop)
                }
                Probe::RequestMapSet => {
                    self.rewrite(0);
                    Ok(())
                }
                Probe::RequestHeaderGet => {
                    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "x-request-id")
                        .map(drop)
                }
                Probe::RequestHeaderSet => hostcalls::set_map_value(
                    MapType::HttpRequestHeaders,
                    "x-amz-date",
                    Some("20261130T080000Z"),
                ),
                Probe::AnswerMapGet => {
                    hostcalls::get_map_bytes(MapType::HttpResponseHeaders).map(drop)
                }
                Probe::AnswerMapSet => {
                    hostcalls::set_map(MapType::HttpResponseHeaders, ANSWER_HEADERS.to_vec())
                }
                Probe::AnswerHeaderSet => hostcalls::set_map_value(
                    MapType::HttpResponseHeaders,
                    "content-type",
                    Some("application/json"),
                ),
                Probe::AnswerHeaderRemove => {
                    hostcalls::set_map_value(MapType::HttpResponseHeaders, "x-amzn-requestid", None)
                }
                Probe::RouteMetadata => {
                    hostcalls::get_property(vec!["xds", "route_metadata"]).map(drop)
                }
                Probe::UpstreamAddress => {
                    hostcalls::get_property(vec!["upstream", "address"]).map(drop)
                }
                Probe::ClusterName => {
                    hostcalls::get_property(vec!["xds", "cluster_name"]).map(drop)
                }
                Probe::FilterState => hostcalls::set_property(
                    vec!["bench_probe"],
                    Some(b"function=bench outcome=success"),
                ),
                Probe::Clock => hostcalls::get_current_time().map(drop),
                Probe::Counter => hostcalls::increment_metric(metric, 1),
                Probe::Histogram => hostcalls::record_metric(metric, 7),
            };
        }
    }

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
        self.probe(true);
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
        self.probe(false);
        Action::Continue
    }
}

/// The host calls of the filter on an upstream passthrough GET (bench/v8-harness `--count`:
/// route metadata, the request's map read and replaced, two clock reads, the answer's map
/// read and replaced, the access log's filter state, one histogram value), nothing computed.
#[derive(Clone, Copy)]
struct Mimic {
    answer_one_by_one: bool,
}

/// What the bench's fake Lambda answers beside the headers a success keeps.
const FAKE_LAMBDA_EXTRA_HEADERS: [&str; 4] = [
    "x-amzn-requestid",
    "x-amz-executed-version",
    "date",
    "server",
];

/// The Invoke the filter makes of the bench's GET (bench/v8-harness prints it).
const MIMIC_INVOKE_HEADERS: [(&str, &str); 13] = [
    (":method", "POST"),
    (":path", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Abench/invocations"),
    (":authority", "lambda.us-east-1.amazonaws.com"),
    ("content-type", "application/json"),
    ("x-amz-invocation-type", "RequestResponse"),
    ("content-length", "0"),
    ("x-amz-date", "20261207T110106Z"),
    ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDBENCHEXAMPLE/20261207/us-east-1/lambda/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-invocation-type, Signature=ed2f9f7bbcfc6de674ab996ae1e3b5df0c782cab4eb63c3ef0d71712d148b050"),
    ("x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (":scheme", "http"),
    ("x-request-id", "4b1c3e0a-8f2d-4c55-9d0e-6a7b8c9d0e1f"),
    ("x-envoy-original-path", "/"),
    ("x-proxy-wasm-lambda-attempt", "83d22592c8e52776891e6a8f09b34c2b"),
];

impl Context for Mimic {}

impl HttpContext for Mimic {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let _ = hostcalls::get_property(vec!["xds", "route_metadata"]);
        let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
        let _ = hostcalls::get_current_time();
        let _ = hostcalls::set_map(MapType::HttpRequestHeaders, MIMIC_INVOKE_HEADERS.to_vec());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let _ = hostcalls::get_map_bytes(MapType::HttpResponseHeaders);
        let _ = hostcalls::get_current_time();
        if self.answer_one_by_one {
            for name in FAKE_LAMBDA_EXTRA_HEADERS {
                let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, None);
            }
            let _ = hostcalls::set_map_value(
                MapType::HttpResponseHeaders,
                "content-type",
                Some("application/json"),
            );
        } else {
            let _ = hostcalls::set_map(MapType::HttpResponseHeaders, ANSWER_HEADERS.to_vec());
        }
        let _ = hostcalls::set_property(
            vec!["proxy_wasm_lambda"],
            Some(b"function=bench class=success lambda_request_id=00000000-bench"),
        );
        let _ = hostcalls::record_metric(METRIC.with(|m| m.get()), 7);
        Action::Continue
    }
}
