use super::*;
use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;

/// 2026-11-23T10:00:00.123Z
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_428_000_123)
}

struct Req {
    method: &'static str,
    path: &'static str,
    query: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn req(method: &'static str, path: &'static str, query: &'static str) -> Req {
    Req {
        method,
        path,
        query,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl Req {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }

    fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: self.method,
            path: self.path,
            raw_query: self.query,
            headers: &self.headers,
            body: &self.body,
            source_ip: Some("203.0.113.9"),
            request_id: Some("req-1"),
            protocol: "HTTP/1.1",
            host: Some("api.example.com:8443"),
            now: now(),
        }
    }

    fn build(&self, format: EventFormat, settings: &EventSettings) -> Value {
        serde_json::from_slice(&build_event(format, settings, &self.info())).unwrap()
    }
}

fn settings() -> EventSettings {
    EventSettings {
        api_id: "api123".into(),
        account_id: "123456789012".into(),
        target_group_arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/abc"
            .into(),
        ..EventSettings::default()
    }
}

fn v2(request: &Req, settings: &EventSettings) -> (Value, ApiGatewayV2httpRequest) {
    let bytes = build_event(EventFormat::ApigwV2, settings, &request.info());
    (
        serde_json::from_slice(&bytes).unwrap(),
        serde_json::from_slice(&bytes).unwrap(),
    )
}

fn v1(request: &Req, settings: &EventSettings) -> (Value, ApiGatewayProxyRequest) {
    let bytes = build_event(EventFormat::ApigwV1, settings, &request.info());
    (
        serde_json::from_slice(&bytes).unwrap(),
        serde_json::from_slice(&bytes).unwrap(),
    )
}

fn alb(request: &Req, settings: &EventSettings) -> (Value, AlbTargetGroupRequest) {
    let bytes = build_event(EventFormat::Alb, settings, &request.info());
    (
        serde_json::from_slice(&bytes).unwrap(),
        serde_json::from_slice(&bytes).unwrap(),
    )
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\xff";

#[test]
fn formats_parse() {
    for format in [
        EventFormat::ApigwV1,
        EventFormat::ApigwV2,
        EventFormat::Alb,
        EventFormat::Envoy,
    ] {
        assert_eq!(EventFormat::parse(format.as_str()), Some(format));
    }
    assert_eq!(EventFormat::parse("passthrough"), None);
    assert_eq!(EventFormat::parse("APIGW_V2"), None);
}

#[test]
fn textual_content_types() {
    let cases = [
        ("text/plain", true),
        ("text/html; charset=utf-8", true),
        ("application/json", true),
        ("Application/JSON; charset=UTF-8", true),
        ("application/json;charset=\"utf-8\"", true),
        ("application/problem+json", true),
        ("application/atom+xml", true),
        ("application/xml", true),
        ("application/javascript", true),
        ("application/x-www-form-urlencoded", true),
        ("text/plain; charset=us-ascii", true),
        ("text/plain; charset=iso-8859-1", false),
        ("application/octet-stream", false),
        ("image/png", false),
        ("multipart/form-data; boundary=x", false),
        ("", false),
    ];
    for (content_type, expected) in cases {
        assert_eq!(
            is_textual_content_type(content_type),
            expected,
            "{content_type}"
        );
    }
}

#[test]
fn request_time_format() {
    assert_eq!(request_time(now()), "23/Nov/2026:10:00:00 +0000");
    assert_eq!(
        request_time(SystemTime::UNIX_EPOCH),
        "01/Jan/1970:00:00:00 +0000"
    );
    // A leap day and the last second of a year.
    let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_210_096);
    assert_eq!(request_time(leap), "29/Feb/2024:12:34:56 +0000");
    let eoy = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_599);
    assert_eq!(request_time(eoy), "31/Dec/2025:23:59:59 +0000");
}

#[test]
fn domain_names() {
    for (host, name, prefix) in [
        ("api.example.com:8443", "api.example.com", "api"),
        ("api.example.com", "api.example.com", "api"),
        ("localhost", "localhost", "localhost"),
        ("[::1]:10000", "[::1]", "[::1]"),
        ("10.0.0.1:80", "10.0.0.1", "10"),
    ] {
        assert_eq!(domain_name(host), name);
        assert_eq!(domain_prefix(domain_name(host)), prefix);
    }
}

// ------------------------------------------------------------ v2

#[test]
fn v2_get_with_query_cookies_and_repeated_headers() {
    let request = req(
        "GET",
        "/items/a%20b",
        "tag=x&tag=y&q=a%2Bb+c&flag&e=%E2%82%AC",
    )
    .header("accept", "text/html")
    .header("accept", "application/json")
    .header("cookie", "a=1; b=2")
    .header("cookie", "c=3")
    .header("user-agent", "curl/8")
    .header("x-forwarded-for", "203.0.113.9");
    let (json, event) = v2(&request, &settings());
    assert_eq!(event.version.as_deref(), Some("2.0"));
    assert_eq!(event.route_key.as_deref(), Some("$default"));
    assert_eq!(event.raw_path.as_deref(), Some("/items/a%20b"));
    assert_eq!(
        event.raw_query_string.as_deref(),
        Some("tag=x&tag=y&q=a%2Bb+c&flag&e=%E2%82%AC")
    );
    assert_eq!(
        event.cookies,
        Some(vec!["a=1".into(), "b=2".into(), "c=3".into()])
    );
    assert!(event.headers.get("cookie").is_none());
    assert_eq!(json["headers"]["accept"], "text/html,application/json");
    assert_eq!(json["headers"]["host"], "api.example.com:8443");
    assert_eq!(event.headers["user-agent"], "curl/8");
    // Repeated keys are comma-joined; aws_lambda_events splits them again.
    assert_eq!(json["queryStringParameters"]["tag"], "x,y");
    assert_eq!(
        event.query_string_parameters.all("tag"),
        Some(vec!["x", "y"])
    );
    assert_eq!(event.query_string_parameters.first("q"), Some("a+b c"));
    assert_eq!(event.query_string_parameters.first("flag"), Some(""));
    assert_eq!(event.query_string_parameters.first("e"), Some("€"));
    assert!(json.get("body").is_none());
    assert!(!event.is_base64_encoded);
    assert!(json.get("pathParameters").is_none());
    assert!(json.get("stageVariables").is_none());

    let context = &event.request_context;
    assert_eq!(context.account_id.as_deref(), Some("123456789012"));
    assert_eq!(context.apiid.as_deref(), Some("api123"));
    assert_eq!(context.domain_name.as_deref(), Some("api.example.com"));
    assert_eq!(context.domain_prefix.as_deref(), Some("api"));
    assert_eq!(context.request_id.as_deref(), Some("req-1"));
    assert_eq!(context.route_key.as_deref(), Some("$default"));
    assert_eq!(context.stage.as_deref(), Some("$default"));
    assert_eq!(context.time.as_deref(), Some("23/Nov/2026:10:00:00 +0000"));
    assert_eq!(context.time_epoch, 1_795_428_000_123);
    assert_eq!(context.http.method, "GET");
    assert_eq!(context.http.path.as_deref(), Some("/items/a%20b"));
    assert_eq!(context.http.protocol.as_deref(), Some("HTTP/1.1"));
    assert_eq!(context.http.source_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(context.http.user_agent.as_deref(), Some("curl/8"));
}

#[test]
fn v2_bodies() {
    let cases: Vec<(Req, Option<&str>, bool)> = vec![
        (
            req("POST", "/", "")
                .header("content-type", "application/json; charset=utf-8")
                .body(r#"{"a":"\u00e9 é"}"#.as_bytes()),
            Some(r#"{"a":"\u00e9 é"}"#),
            false,
        ),
        (
            req("POST", "/", "")
                .header("content-type", "text/plain")
                .body("héllo".as_bytes()),
            Some("héllo"),
            false,
        ),
        (
            req("POST", "/", "")
                .header("content-type", "image/png")
                .body(PNG),
            Some("iVBORw0KGgoA/w=="),
            true,
        ),
        // Textual type but not UTF-8: base64.
        (
            req("POST", "/", "")
                .header("content-type", "text/plain")
                .body(b"caf\xe9"),
            Some("Y2Fm6Q=="),
            true,
        ),
        // No content type: base64.
        (req("PUT", "/", "").body(b"abc"), Some("YWJj"), true),
        (
            req("POST", "/", "")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(b"a=1&b=%20"),
            Some("a=1&b=%20"),
            false,
        ),
        (
            req("POST", "/", "").header("content-type", "application/json"),
            None,
            false,
        ),
    ];
    for (request, body, base64) in cases {
        let (_, event) = v2(&request, &settings());
        assert_eq!(event.body.as_deref(), body, "{:?}", request.headers);
        assert_eq!(event.is_base64_encoded, base64, "{:?}", request.headers);
    }
}

#[test]
fn v2_binary_body_round_trips() {
    let request = req("POST", "/upload", "")
        .header("content-type", "application/octet-stream")
        .body(PNG);
    let (_, event) = v2(&request, &settings());
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(event.body.unwrap())
        .unwrap();
    assert_eq!(decoded, PNG);
}

/// Binary bodies of every length modulo 3 (each padding case) come out of every format as
/// the standard base64 of the bytes, in a payload that parses as JSON.
#[test]
fn binary_bodies_are_standard_base64_in_every_format() {
    let engine = base64::engine::general_purpose::STANDARD;
    for length in 1..=7usize {
        let bytes: Vec<u8> = (0..length).map(|i| (i * 97 + 200) as u8).collect();
        let request = req("POST", "/b", "").body(&bytes);
        for (format, body_key, flag_key) in [
            (EventFormat::ApigwV1, "body", "isBase64Encoded"),
            (EventFormat::ApigwV2, "body", "isBase64Encoded"),
            (EventFormat::Alb, "body", "isBase64Encoded"),
            (EventFormat::Envoy, "body", "is_base64_encoded"),
        ] {
            let event = request.build(format, &settings());
            assert_eq!(
                event[body_key],
                Value::from(engine.encode(&bytes)),
                "{format:?}"
            );
            assert_eq!(event[flag_key], Value::from(true), "{format:?}");
        }
    }
}

#[test]
fn v2_route_key_stage_and_stage_variables() {
    let mut settings = settings();
    settings.route_key = Some("ANY /api/{proxy+}".into());
    settings.stage = "live".into();
    settings
        .stage_variables
        .insert("tenant".into(), "acme".into());
    let request = req("DELETE", "/api/users/a%2Fb", "");
    let (json, event) = v2(&request, &settings);
    assert_eq!(event.route_key.as_deref(), Some("ANY /api/{proxy+}"));
    assert_eq!(event.request_context.stage.as_deref(), Some("live"));
    assert_eq!(event.stage_variables["tenant"], "acme");
    assert_eq!(event.path_parameters["proxy"], "users/a/b");
    assert!(json.get("cookies").is_none());
    assert!(json.get("queryStringParameters").is_none());
    assert_eq!(event.raw_query_string.as_deref(), Some(""));
}

#[test]
fn v2_without_host_source_or_request_id() {
    let owned = req("GET", "/", "");
    let mut info = owned.info();
    info.host = None;
    info.source_ip = None;
    info.request_id = None;
    let bytes = build_event(EventFormat::ApigwV2, &EventSettings::default(), &info);
    let event: ApiGatewayV2httpRequest = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(event.request_context.domain_name.as_deref(), Some(""));
    assert_eq!(event.request_context.http.source_ip, None);
    assert_eq!(event.request_context.request_id, None);
    assert!(event.headers.is_empty());
}

// ------------------------------------------------------------ v1

#[test]
fn v1_get_with_repeated_query_and_headers() {
    let request = req("GET", "/users/42", "id=1&id=2&name=J%C3%B6rg+K")
        .header("accept", "a")
        .header("accept", "b")
        .header("cookie", "a=1; b=2")
        .header("user-agent", "curl/8");
    let (json, event) = v1(&request, &settings());
    assert_eq!(event.resource.as_deref(), Some("/{proxy+}"));
    assert_eq!(event.path.as_deref(), Some("/users/42"));
    assert_eq!(event.http_method, "GET");
    assert_eq!(event.headers["accept"], "b");
    assert_eq!(
        event
            .multi_value_headers
            .get_all("accept")
            .iter()
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(event.headers["cookie"], "a=1; b=2");
    assert_eq!(json["headers"]["host"], "api.example.com:8443");
    assert_eq!(
        json["queryStringParameters"],
        json!({"id":"2","name":"Jörg K"})
    );
    assert_eq!(
        event.multi_value_query_string_parameters.all("id"),
        Some(vec!["1", "2"])
    );
    assert_eq!(event.query_string_parameters.first("id"), Some("2"));
    assert_eq!(event.path_parameters["proxy"], "users/42");
    assert_eq!(json["stageVariables"], Value::Null);
    assert_eq!(json["body"], Value::Null);
    assert!(!event.is_base64_encoded);

    let context = &event.request_context;
    assert_eq!(context.account_id.as_deref(), Some("123456789012"));
    assert_eq!(context.apiid.as_deref(), Some("api123"));
    assert_eq!(context.domain_name.as_deref(), Some("api.example.com"));
    assert_eq!(context.http_method, "GET");
    assert_eq!(context.path.as_deref(), Some("/users/42"));
    assert_eq!(context.protocol.as_deref(), Some("HTTP/1.1"));
    assert_eq!(context.request_id.as_deref(), Some("req-1"));
    assert_eq!(
        context.request_time.as_deref(),
        Some("23/Nov/2026:10:00:00 +0000")
    );
    assert_eq!(context.request_time_epoch, 1_795_428_000_123);
    assert_eq!(context.resource_path.as_deref(), Some("/{proxy+}"));
    assert_eq!(context.stage.as_deref(), Some("$default"));
    assert_eq!(context.identity.source_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(context.identity.user_agent.as_deref(), Some("curl/8"));
    assert_eq!(context.identity.user_arn, None);
    assert_eq!(
        json["requestContext"]["identity"]["cognitoIdentityId"],
        Value::Null
    );
}

#[test]
fn v1_nulls_when_nothing_to_send() {
    let request = req("GET", "/", "");
    let (json, event) = v1(&request, &settings());
    for field in [
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "body",
    ] {
        assert_eq!(json[field], Value::Null, "{field}");
        assert!(json.as_object().unwrap().contains_key(field), "{field}");
    }
    assert!(event.query_string_parameters.is_empty());
    assert!(event.path_parameters.is_empty());
    assert_eq!(json["isBase64Encoded"], false);
}

#[test]
fn v1_bodies_and_resources() {
    let mut custom = settings();
    custom.resource = Some("/orders/{id}".into());
    let mut routed = settings();
    routed.route_key = Some("POST /api/{proxy+}".into());
    routed.stage_variables.insert("env".into(), "prod".into());
    // (settings, request, resource, body, isBase64Encoded, pathParameters.proxy)
    type Case<'a> = (
        &'a EventSettings,
        Req,
        &'a str,
        Option<&'a str>,
        bool,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            &custom,
            req("POST", "/orders/7", "")
                .header("content-type", "application/json")
                .body(b"{\"n\":1}"),
            "/orders/{id}",
            Some("{\"n\":1}"),
            false,
            None,
        ),
        (
            &routed,
            req("POST", "/api/v1/x", "")
                .header("content-type", "application/pdf")
                .body(PNG),
            "/api/{proxy+}",
            Some("iVBORw0KGgoA/w=="),
            true,
            Some("v1/x"),
        ),
        (
            &routed,
            req("POST", "/other", "")
                .header("content-type", "text/plain")
                .body(b"hi"),
            "/api/{proxy+}",
            Some("hi"),
            false,
            None,
        ),
    ];
    for (settings, request, resource, body, base64, proxy) in cases {
        let (_, event) = v1(&request, settings);
        assert_eq!(event.resource.as_deref(), Some(resource));
        assert_eq!(
            event.request_context.resource_path.as_deref(),
            Some(resource)
        );
        assert_eq!(event.body.as_deref(), body);
        assert_eq!(event.is_base64_encoded, base64);
        assert_eq!(
            event.path_parameters.get("proxy").map(String::as_str),
            proxy
        );
    }
    let (_, event) = v1(&req("GET", "/api/a", ""), &routed);
    assert_eq!(event.stage_variables["env"], "prod");
}

// ------------------------------------------------------------ ALB

#[test]
fn alb_single_value() {
    let request = req("GET", "/lambda", "query=1234ABCD&a=%20x&a=y&plus=a+b")
        .header("accept", "a")
        .header("accept", "b")
        .header("cookie", "s=1");
    let (json, event) = alb(&request, &settings());
    assert_eq!(
        event.request_context.elb.target_group_arn.as_deref(),
        Some("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/abc")
    );
    assert_eq!(event.http_method, "GET");
    assert_eq!(event.path.as_deref(), Some("/lambda"));
    // ALB leaves the query percent-encoded and keeps the last of repeated values.
    assert_eq!(
        json["queryStringParameters"],
        json!({"query":"1234ABCD","a":"y","plus":"a+b"})
    );
    assert_eq!(event.query_string_parameters.first("a"), Some("y"));
    assert_eq!(event.headers["accept"], "b");
    assert_eq!(event.headers["cookie"], "s=1");
    assert_eq!(event.headers["host"], "api.example.com:8443");
    assert!(json.get("multiValueHeaders").is_none());
    assert!(json.get("multiValueQueryStringParameters").is_none());
    assert_eq!(event.body.as_deref(), Some(""));
    assert!(!event.is_base64_encoded);
}

#[test]
fn alb_multi_value() {
    let mut settings = settings();
    settings.alb_multi_value_headers = true;
    let request = req("POST", "/lambda", "a=%20x&a=y")
        .header("x-h", "1")
        .header("x-h", "2")
        .header("content-type", "application/octet-stream")
        .body(PNG);
    let (json, event) = alb(&request, &settings);
    assert_eq!(
        json["multiValueQueryStringParameters"],
        json!({"a":["%20x","y"]})
    );
    assert_eq!(
        event.multi_value_query_string_parameters.all("a"),
        Some(vec!["%20x", "y"])
    );
    assert_eq!(json["multiValueHeaders"]["x-h"], json!(["1", "2"]));
    assert!(json.get("headers").is_none());
    assert!(json.get("queryStringParameters").is_none());
    assert_eq!(event.body.as_deref(), Some("iVBORw0KGgoA/w=="));
    assert!(event.is_base64_encoded);
}

#[test]
fn alb_without_query_sends_empty_map() {
    for multi in [false, true] {
        let mut settings = settings();
        settings.alb_multi_value_headers = multi;
        let (json, _) = alb(&req("GET", "/", ""), &settings);
        let key = if multi {
            "multiValueQueryStringParameters"
        } else {
            "queryStringParameters"
        };
        assert_eq!(json[key], json!({}));
    }
}

// ------------------------------------------------------------ Envoy

#[test]
fn envoy_native_shape() {
    let request = req("POST", "/p/a%20b", "x=1&x=2&y=%41")
        .header("a", "1")
        .header("a", "2")
        .header("cookie", "c=1")
        .header("content-type", "text/plain")
        .body(b"hello");
    let json = request.build(EventFormat::Envoy, &settings());
    assert_eq!(
        json,
        json!({
            "raw_path": "/p/a%20b?x=1&x=2&y=%41",
            "method": "POST",
            "headers": {"a": "1,2", "cookie": "c=1", "content-type": "text/plain"},
            "query_string_parameters": {"x": "2", "y": "%41"},
            "body": "hello",
            "is_base64_encoded": false
        })
    );
    let empty = req("GET", "/", "").build(EventFormat::Envoy, &settings());
    assert_eq!(
        empty,
        json!({"raw_path": "/", "method": "GET", "headers": {},
               "query_string_parameters": {}, "body": "", "is_base64_encoded": false})
    );
    let binary = req("PUT", "/", "")
        .header("content-type", "image/png")
        .body(PNG)
        .build(EventFormat::Envoy, &settings());
    assert_eq!(binary["body"], "iVBORw0KGgoA/w==");
    assert_eq!(binary["is_base64_encoded"], true);
}

#[test]
fn strings_are_escaped_exactly_as_serde_json_does() {
    let mut samples: Vec<String> = (0u8..0x80).map(|b| format!("a{}b", b as char)).collect();
    samples.extend(
        [
            "",
            "plain",
            "quote \" backslash \\ slash / tab \t nl \n cr \r",
            "\u{7f}\u{80}é€😀 \u{2028}\u{2029}",
            "\"\"\\\\",
            "ends with escape\n",
        ]
        .map(String::from),
    );
    for sample in &samples {
        let mut json = JsonWriter::with_capacity(0);
        json.string(sample);
        assert_eq!(
            String::from_utf8(json.finish()).unwrap(),
            serde_json::to_string(sample).unwrap(),
            "{sample:?}"
        );
    }
}

// ------------------------------------------------------------ passthrough

#[test]
fn merge_custom_parameters_cases() {
    let params = StringMap::from([("tenant", "acme"), ("quote", "a\"b")]);
    let merged = |body: &str| {
        merge_custom_parameters(body.as_bytes(), "custom_parameters", &params)
            .map(|out| String::from_utf8(out).unwrap())
    };
    let expected_params = r#""custom_parameters":{"quote":"a\"b","tenant":"acme"}"#;
    assert_eq!(
        merged(r#" {"b": [1, 2], "a": {"x": 1.50}} "#),
        Some(format!(
            r#"{{"b": [1, 2], "a": {{"x": 1.50}},{expected_params}}}"#
        ))
    );
    assert_eq!(merged("{}"), Some(format!("{{{expected_params}}}")));
    assert_eq!(merged(" { } "), Some(format!("{{ {expected_params}}}")));
    assert_eq!(
        merged(r#"{"custom_parameters": "client", "k\n": "v"}"#),
        Some(format!(r#"{{"k\n":"v",{expected_params}}}"#))
    );
    for not_object in ["[1]", "\"s\"", "12", "null", "", "{", "not json", "{} {}"] {
        assert_eq!(merged(not_object), None, "{not_object}");
    }
    let parsed: Value = serde_json::from_str(&merged(r#"{"z":1}"#).unwrap()).unwrap();
    assert_eq!(parsed["custom_parameters"]["tenant"], "acme");
    assert_eq!(parsed["z"], 1);
}

#[test]
fn grouping_sorts_names_and_keeps_value_order() {
    // As a BTreeMap groups, for lengths around the merge widths and names in every order.
    let names = [
        "b", "a", "c", "a", "", "b", "d", "a", "é", "B", "c", "a", "x", "x", "a",
    ];
    let values: Vec<String> = (0..names.len()).map(|i| i.to_string()).collect();
    for len in 0..=names.len() {
        for shift in 0..names.len() {
            let pairs: Vec<(&str, &str)> = (0..len)
                .map(|i| (names[(i + shift) % names.len()], values[i].as_str()))
                .collect();
            let mut expected = std::collections::BTreeMap::<&str, Vec<&str>>::new();
            for (name, value) in &pairs {
                expected.entry(name).or_default().push(value);
            }
            let expected: Grouped = expected.into_iter().collect();
            assert_eq!(group(pairs.iter().copied()), expected, "{pairs:?}");
        }
    }
}
