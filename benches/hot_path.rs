#![allow(clippy::expect_used)] // a benchmark may stop on a broken fixture

//! The filter's per-request work outside the host: build the event, sign the Invoke, decode
//! the answer. `cargo bench --bench hot_path` (native; the V8 figures are in BENCHMARKS.md).
//!
//! `request/*` goes through `build_invoke` as the filter does; `request_cached/*` is the same
//! request signed by a `SigningKeyCache` kept across requests (as a per-VM cache is);
//! `sign/*` is the Invoke's signature alone: the cached signer, the same without a cache hit
//! (fresh cache: four more HMACs) and aws-sigv4's full signer (the reference).

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use proxy_wasm_lambda::{
    build_event, build_invoke, decode_invoke_answer, sign_request, CallAnswer, Credentials,
    FilterConfig, HeaderList, InvokeTarget, PayloadFormat, RequestInfo, RequestToSign,
    RouteOverride, Secret, SigningKeyCache,
};

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

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn payload(target: &InvokeTarget, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let now = now();
    match target.payload {
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
    }
}

/// One request through: payload, signed Invoke, decoded answer.
fn one_request(
    target: &InvokeTarget,
    credentials: &Credentials,
    headers: &[(String, String)],
    body: &[u8],
) -> u16 {
    let payload = payload(target, headers, body);
    let invoke = build_invoke(target, "lambda", credentials, payload, now()).expect("signs");
    black_box(&invoke);
    decode(target)
}

/// The Invoke's signed headers, as `build_invoke` signs them.
const INVOKE_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("x-amz-invocation-type", "RequestResponse"),
];

fn invoke_to_sign<'a>(target: &'a InvokeTarget, payload: &'a [u8]) -> RequestToSign<'a> {
    RequestToSign {
        method: "POST",
        host: &target.endpoint,
        path_and_query: &target.invoke_path,
        headers: &INVOKE_HEADERS,
        body: payload,
        content_sha256_header: true,
    }
}

/// As `one_request`, the Invoke signed through a cache kept across requests.
fn one_request_cached(
    cache: &SigningKeyCache,
    target: &InvokeTarget,
    credentials: &Credentials,
    headers: &[(String, String)],
    body: &[u8],
) -> u16 {
    let payload = payload(target, headers, body);
    let signature = cache
        .sign(
            &invoke_to_sign(target, &payload),
            credentials,
            &target.region,
            "lambda",
            now(),
        )
        .expect("signs");
    // The outbound headers, as `build_invoke` lays them out.
    let mut outbound = Vec::with_capacity(6 + INVOKE_HEADERS.len() + signature.len());
    outbound.push((":method".to_string(), "POST".to_string()));
    outbound.push((":path".to_string(), target.invoke_path.clone()));
    outbound.push((":authority".to_string(), target.endpoint.clone()));
    for (name, value) in INVOKE_HEADERS {
        outbound.push((name.to_string(), value.to_string()));
    }
    outbound.push(("content-length".to_string(), payload.len().to_string()));
    for (name, value) in signature {
        outbound.push((name.to_string(), value));
    }
    black_box((&outbound, &payload));
    decode(target)
}

fn decode(target: &InvokeTarget) -> u16 {
    let answer = CallAnswer {
        status: Some(200),
        headers: HeaderList::from(vec![
            ("x-amzn-requestid", "7f1c0e9a-0000-4000-8000-000000000000"),
            ("content-type", "application/json"),
        ]),
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

    let cache = SigningKeyCache::new();
    let mut group = c.benchmark_group("request_cached");
    for payload in ["passthrough", "apigw_v2"] {
        let target = target(payload);
        for size in [0usize, 1024] {
            let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new(payload, size), &body, |b, body| {
                b.iter(|| {
                    one_request_cached(&cache, &target, &credentials, &headers, black_box(body))
                })
            });
        }
    }
    group.finish();
}

/// The Invoke's signature alone (passthrough of a GET: empty payload; and 1 KiB).
fn signing(c: &mut Criterion) {
    let credentials = credentials();
    let target = target("passthrough");
    let mut group = c.benchmark_group("sign");
    for size in [0usize, 1024] {
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let request = invoke_to_sign(&target, &body);
        let cache = SigningKeyCache::new();
        group.bench_function(BenchmarkId::new("cached", size), |b| {
            b.iter(|| {
                cache
                    .sign(
                        black_box(&request),
                        &credentials,
                        &target.region,
                        "lambda",
                        now(),
                    )
                    .expect("signs")
            })
        });
        group.bench_function(BenchmarkId::new("fresh_cache", size), |b| {
            b.iter(|| {
                SigningKeyCache::new()
                    .sign(
                        black_box(&request),
                        &credentials,
                        &target.region,
                        "lambda",
                        now(),
                    )
                    .expect("signs")
            })
        });
        group.bench_function(BenchmarkId::new("aws_sigv4_reference", size), |b| {
            b.iter(|| {
                sign_request(
                    black_box(&request),
                    &credentials,
                    &target.region,
                    "lambda",
                    now(),
                )
                .expect("signs")
            })
        });
    }
    group.finish();
}

/// `SIGN_ONLY=N cargo bench --bench hot_path`: signs the Invoke N times through a warm
/// cache (empty payload, or `SIGN_PAYLOAD` bytes) and exits, for instruction counts under
/// callgrind; the difference between two values of N is the cost of that many signatures.
fn sign_only(iterations: usize) {
    let size = std::env::var("SIGN_PAYLOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0usize);
    let credentials = credentials();
    let target = target("passthrough");
    let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let request = invoke_to_sign(&target, &body);
    let cache = SigningKeyCache::new();
    for _ in 0..iterations {
        let signature = cache
            .sign(
                black_box(&request),
                &credentials,
                &target.region,
                "lambda",
                now(),
            )
            .expect("signs");
        black_box(signature);
    }
}

criterion_group!(benches, hot_path, signing);

fn main() {
    if let Some(iterations) = std::env::var("SIGN_ONLY").ok().and_then(|v| v.parse().ok()) {
        sign_only(iterations);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
