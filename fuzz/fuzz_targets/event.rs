//! `build_event` for every event format from arbitrary requests (methods, paths, query
//! strings, header sets, bodies, content types, hosts, source IPs, settings). Never panics;
//! the event is a JSON object that carries the request's method, path and body intact.
#![no_main]

use proxy_wasm_lambda::{build_event, EventFormat, EventSettings, RequestInfo, StringMap};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

use serde_json::Value;

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Head,
    Options,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Path {
    Root,
    /// `/` + segments joined by `/`.
    Segments(Vec<String>),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Query {
    None,
    /// `k=v` pairs joined by `&` (either side may be empty).
    Pairs(Vec<(String, Option<String>)>),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum HeaderName {
    ContentType,
    Cookie,
    UserAgent,
    Host,
    XForwardedFor,
    Accept,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum ContentType {
    Json,
    TextPlain,
    TextLatin1,
    Form,
    OctetStream,
    ProblemJson,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Template {
    Proxy,
    Prefixed(String),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Format {
    ApigwV2,
    ApigwV1,
    Alb,
    Envoy,
}

#[derive(Arbitrary, Debug)]
struct Input {
    format: Format,
    method: Method,
    path: Path,
    query: Query,
    content_type: Option<ContentType>,
    headers: Vec<(HeaderName, String)>,
    body: Vec<u8>,
    host: Option<String>,
    source_ip: Option<String>,
    request_id: Option<String>,
    http2: bool,
    now_ms: i64,
    stage: Option<String>,
    route_key: Option<Template>,
    resource: Option<Template>,
    api_id: String,
    account_id: String,
    stage_variables: BTreeMap<String, String>,
    target_group_arn: String,
    alb_multi_value_headers: bool,
}

fn template(t: &Template, route_key: bool) -> String {
    let (method, path) = match t {
        Template::Proxy => ("ANY ", "/{proxy+}".to_string()),
        Template::Prefixed(prefix) => ("GET ", format!("/{prefix}/{{proxy+}}")),
        Template::Other(other) => return other.clone(),
    };
    if route_key {
        format!("{method}{path}")
    } else {
        path
    }
}

/// The event's body: the text, or base64 decoded.
fn event_body(event: &Value, body: &str, base64: &str) -> Vec<u8> {
    let encoded = event[base64].as_bool().expect("base64 flag");
    match &event[body] {
        Value::Null => Vec::new(),
        Value::String(text) if encoded => base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("valid base64"),
        Value::String(text) => text.clone().into_bytes(),
        other => panic!("body is {other}"),
    }
}

fuzz_target!(|input: Input| {
    let method = match &input.method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
        Method::Head => "HEAD",
        Method::Options => "OPTIONS",
        Method::Other(m) => m.as_str(),
    };
    let path = match &input.path {
        Path::Root => "/".to_string(),
        Path::Segments(segments) => format!("/{}", segments.join("/")),
        Path::Raw(raw) => raw.clone(),
    };
    let query = match &input.query {
        Query::None => String::new(),
        Query::Pairs(pairs) => pairs
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect::<Vec<_>>()
            .join("&"),
        Query::Raw(raw) => raw.clone(),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(content_type) = &input.content_type {
        let value = match content_type {
            ContentType::Json => "application/json",
            ContentType::TextPlain => "text/plain; charset=utf-8",
            ContentType::TextLatin1 => "text/plain; charset=iso-8859-1",
            ContentType::Form => "application/x-www-form-urlencoded",
            ContentType::OctetStream => "application/octet-stream",
            ContentType::ProblemJson => "application/problem+json",
            ContentType::Other(other) => other.as_str(),
        };
        headers.push(("content-type".to_string(), value.to_string()));
    }
    for (name, value) in &input.headers {
        let name = match name {
            HeaderName::ContentType => "content-type",
            HeaderName::Cookie => "cookie",
            HeaderName::UserAgent => "user-agent",
            HeaderName::Host => "host",
            HeaderName::XForwardedFor => "x-forwarded-for",
            HeaderName::Accept => "accept",
            HeaderName::Other(other) => other.as_str(),
        };
        headers.push((name.to_string(), value.clone()));
    }
    let now = if input.now_ms >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(input.now_ms.unsigned_abs()))
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::from_millis(input.now_ms.unsigned_abs()))
    };
    let Some(now) = now else {
        return;
    };
    let request = RequestInfo {
        method,
        path: &path,
        raw_query: &query,
        headers: &headers,
        body: &input.body,
        source_ip: input.source_ip.as_deref(),
        request_id: input.request_id.as_deref(),
        protocol: if input.http2 { "HTTP/2" } else { "HTTP/1.1" },
        host: input.host.as_deref(),
        now,
    };
    let settings = EventSettings {
        stage: input
            .stage
            .clone()
            .unwrap_or_else(|| "$default".to_string()),
        route_key: input.route_key.as_ref().map(|t| template(t, true)),
        api_id: input.api_id.clone(),
        account_id: input.account_id.clone(),
        resource: input.resource.as_ref().map(|t| template(t, false)),
        stage_variables: {
            let mut variables = StringMap::new();
            for (name, value) in &input.stage_variables {
                variables.insert(name.clone(), value.clone());
            }
            variables
        },
        target_group_arn: input.target_group_arn.clone(),
        alb_multi_value_headers: input.alb_multi_value_headers,
    };

    // One format per input: building and re-parsing all four made each run 4x slower.
    let format = match input.format {
        Format::ApigwV2 => EventFormat::ApigwV2,
        Format::ApigwV1 => EventFormat::ApigwV1,
        Format::Alb => EventFormat::Alb,
        Format::Envoy => EventFormat::Envoy,
    };
    {
        let bytes = build_event(format, &settings, &request);
        let event: Value = match serde_json::from_slice(&bytes) {
            Ok(event) => event,
            Err(e) => panic!(
                "{format:?} event is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            ),
        };
        assert!(event.is_object(), "{format:?}");
        match format {
            EventFormat::ApigwV2 => {
                assert_eq!(event["rawPath"], path.as_str());
                assert_eq!(event["rawQueryString"], query.as_str());
                assert_eq!(event["requestContext"]["http"]["method"], method);
                assert!(event["headers"].is_object());
                assert_eq!(event_body(&event, "body", "isBase64Encoded"), input.body);
            }
            EventFormat::ApigwV1 => {
                assert_eq!(event["path"], path.as_str());
                assert_eq!(event["httpMethod"], method);
                assert!(event["headers"].is_object() && event["multiValueHeaders"].is_object());
                assert_eq!(event_body(&event, "body", "isBase64Encoded"), input.body);
            }
            EventFormat::Alb => {
                assert_eq!(event["path"], path.as_str());
                assert_eq!(event["httpMethod"], method);
                assert_eq!(event_body(&event, "body", "isBase64Encoded"), input.body);
            }
            EventFormat::Envoy => {
                let raw_path = if query.is_empty() {
                    path.clone()
                } else {
                    format!("{path}?{query}")
                };
                assert_eq!(event["raw_path"], raw_path.as_str());
                assert_eq!(event["method"], method);
                assert_eq!(event_body(&event, "body", "is_base64_encoded"), input.body);
            }
        }
    }
});
