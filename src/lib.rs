//! proxy-wasm-lambda: an Envoy HTTP filter that serves a route with an AWS Lambda function.
//!
//! Everything but `filter` is plain Rust that takes values (time included) and runs under
//! `cargo test`; `filter` is the thin shell that talks to the proxy-wasm host. The modules
//! follow the request (docs/architecture.md) and are private: the crate's public surface is
//! the list below, what the fuzz targets and benches exercise.
#![warn(unreachable_pub)]
// The shell in `filter` (built for wasm32 only) is the one user of much of the core; a native
// build (tests, fuzz targets, benches) would call that code dead. The wasm32 build, which
// clippy also checks, still reports dead code.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod access_log;
mod answer;
mod aws;
mod config;
mod credentials;
mod error;
mod event;
mod flow;
mod hex;
mod http;
mod invoke;
mod log_limit;
mod metrics;
mod route;
mod secret;
mod string_map;
#[cfg(test)]
mod test_support;
mod time;
mod trace;

#[cfg(target_arch = "wasm32")]
mod filter;

// The parsers, builders and decisions the fuzz targets and benches exercise.
pub use answer::decode_invoke_answer;
pub use answer::eventstream::{StreamDecoder, StreamError, StreamEvent};
pub use answer::prelude::{PreludeMode, PreludeSplitter, Split};
pub use answer::proxy_response::{
    decode_proxy_response, is_bodyless_status, MAX_RESPONSE_HEADERS, MAX_RESPONSE_HEADER_BYTES,
};
pub use aws::arn::{is_valid_function_name, is_valid_qualifier, is_valid_region, FunctionId};
pub use aws::credentials::Credentials;
pub use aws::sigv4::{sign_request, RequestToSign, SigningKeyCache};
pub use config::{
    FilterConfig, InvocationType, InvokeTarget, PayloadFormat, RouteOverride, CLIENT_CONTEXT_LIMIT,
    CUSTOM_PARAMETERS_FIELD, ROUTE_KEYS,
};
pub use credentials::ambient::AmbientError;
pub use credentials::container::parse_answer as parse_container_answer;
pub use credentials::imds::{
    ImdsClient, ImdsProgress, ImdsSettings, MAX_CALLS_PER_FETCH, ROLE_PATH, TOKEN_HEADER,
    TOKEN_PATH,
};
pub use credentials::source::CredentialSource;
pub use credentials::state::{
    holds_lease, lease_is_live, record_failure, record_success, refresh_at_ms, should_fetch,
    take_lease, usable_credentials, RefreshPolicy, SharedRecord,
};
pub use credentials::sts::{
    build_assume_role_request, parse_assume_role_answer, StsError, TemporaryCredentials,
};
pub use error::RequestError;
pub use event::{build_event, merge_custom_parameters, EventFormat, EventSettings, RequestInfo};
pub use http::header_map::{
    deserialize as deserialize_header_map, serialize as serialize_header_map,
};
pub use http::{CallAnswer, ClientReply, HeaderList, OutboundRequest};
pub use invoke::build_invoke;
pub use route::metadata::{
    decode_struct as decode_metadata_struct, namespace as metadata_namespace,
    MAX_DEPTH as MAX_METADATA_DEPTH, MAX_NAMESPACE_BYTES as MAX_METADATA_NAMESPACE_BYTES,
};
pub use route::{decode_route_override, RouteCache, RouteTarget, METADATA_NAMESPACE};
// A route's metadata error as the filter words it (tools/check-config).
pub use route::on_route;
pub use secret::Secret;
pub use string_map::StringMap;
pub use time::epoch_ms;
pub use trace::invoke_trace_id;
