//! proxy-wasm-lambda: an Envoy HTTP filter that serves a route with an AWS Lambda function.
//!
//! Everything but `filter` is plain Rust that takes values (time included) and runs under
//! `cargo test`; `filter` is the thin shell that talks to the proxy-wasm host.

pub mod answer;
pub mod aws;
pub mod config;
pub mod credentials;
pub mod error;
pub mod event;
pub mod flow;
pub mod http;
pub mod invoke;
pub mod metrics;
pub mod route;
pub mod secret;
pub mod string_map;
pub mod time;

// The credential providers' former paths, kept for the fuzz targets and benches.
pub use answer as response;
pub use answer::{eventstream, proxy_response};
pub use aws::{arn, sigv4};
pub use credentials::{
    ambient, container as container_credentials, imds, state as credential_state, sts,
};
pub use flow::attempts;
pub use http::header_map;

#[cfg(target_arch = "wasm32")]
mod filter;
