#![allow(clippy::expect_used)] // a benchmark may stop on a broken fixture

//! The filter's per-request work outside the host: build the event, sign the Invoke, decode
//! the answer. `cargo bench --bench hot_path` (native; the V8 figures are in BENCHMARKS.md).

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use proxy_wasm_lambda::config::{FilterConfig, InvokeTarget, PayloadFormat, RouteOverride};
use proxy_wasm_lambda::credentials::Credentials;
use proxy_wasm_lambda::event::{build_event, RequestInfo};
use proxy_wasm_lambda::invoke::build_invoke;
use proxy_wasm_lambda::response::{decode_invoke_answer, InvokeAnswer};
use proxy_wasm_lambda::secret::Secret;

const ANSWER: &[u8] =
    br#"{"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\"ok\":true}"}"#;

fn target(payload: &str) -> InvokeTarget {
    let json = format!(
        r#"{{"function":"bench","region":"us-east-1","payload":"{payload}",
            "credentials":{{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"secret"}}}}"#
    );
    let config = FilterConfig::load(json.as_bytes(), &|_| None).expect("bench config loads");
    config
        .resolve_route(&RouteOverride::default())
        .expect("bench route resolves")
}

fn credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE12345".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: Some(Secret::new("session-token-of-a-typical-length-".repeat(20))),
    }
}

fn headers() -> Vec<(String, String)> {
    [
        ("accept", "*/*"),
        ("user-agent", "wrk"),
        ("content-type", "application/json"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "2b7c1f7e-3c5a-4e0e-9b0e-1f2a3b4c5d6e"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

/// One request through: payload, signed Invoke, decoded answer.
fn one_request(
    target: &InvokeTarget,
    credentials: &Credentials,
    headers: &[(String, String)],
    body: &[u8],
) -> u16 {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let payload = match target.payload {
        PayloadFormat::Passthrough => body.to_vec(),
        PayloadFormat::Event(format) => build_event(
            format,
            &target.event,
            &RequestInfo {
                method: if body.is_empty() { "GET" } else { "POST" },
                path: "/items/42",
                raw_query: "page=2&sort=name",
                headers,
                body,
                source_ip: Some("127.0.0.1"),
                request_id: Some("2b7c1f7e-3c5a-4e0e-9b0e-1f2a3b4c5d6e"),
                protocol: "HTTP/1.1",
                host: Some("api.example.com"),
                now,
            },
        ),
    };
    let invoke = build_invoke(target, "lambda", credentials, payload, now).expect("signs");
    black_box(&invoke);
    let answer = InvokeAnswer {
        status: Some(200),
        headers: vec![
            (
                "x-amzn-requestid".into(),
                "7f1c0e9a-0000-4000-8000-000000000000".into(),
            ),
            ("content-type".into(), "application/json".into()),
        ],
        body: ANSWER.to_vec(),
        unread_body_bytes: None,
    };
    decode_invoke_answer(target, answer, false)
        .map(|reply| reply.status)
        .unwrap_or(0)
}

fn hot_path(c: &mut Criterion) {
    let credentials = credentials();
    let headers = headers();
    let mut group = c.benchmark_group("request");
    for payload in ["passthrough", "apigw_v2"] {
        let target = target(payload);
        for size in [0usize, 1024, 256 * 1024] {
            let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new(payload, size), &body, |b, body| {
                b.iter(|| one_request(&target, &credentials, &headers, black_box(body)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
