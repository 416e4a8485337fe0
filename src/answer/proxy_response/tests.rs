use super::*;
use EventFormat::{Alb, ApigwV1, ApigwV2, Envoy};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\xff";

fn decode(format: EventFormat, payload: &str) -> Result<ClientReply, ProxyResponseError> {
    decode_proxy_response(format, payload.as_bytes())
}

fn headers(reply: &ClientReply) -> Vec<(&str, &str)> {
    reply
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

#[test]
fn v2_inferred_responses() {
    let cases: [(&[u8], &[u8]); 6] = [
        (br#"{"message":"hi"}"#, br#"{"message":"hi"}"#),
        (br#""Hello from Lambda!""#, b"Hello from Lambda!"),
        (b"[1,2]", b"[1,2]"),
        (b"42", b"42"),
        (b"null", b"null"),
        (
            br#"{"status":404,"body":"x"}"#,
            br#"{"status":404,"body":"x"}"#,
        ),
    ];
    for (payload, body) in cases {
        let reply = decode_proxy_response(ApigwV2, payload).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(headers(&reply), [("content-type", "application/json")]);
        assert_eq!(reply.body, body, "{}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn v2_answers_that_are_not_json_are_bad_responses() {
    for payload in [
        &b"not json at all"[..],
        b"",
        b"{\"statusCode\":",
        b"\xff\xfe",
    ] {
        assert_eq!(
            decode_proxy_response(ApigwV2, payload),
            Err(ProxyResponseError::NotJson),
            "{}",
            String::from_utf8_lossy(payload)
        );
    }
}

#[test]
fn bodyless_statuses_never_carry_a_body() {
    let splitting = r#"HTTP/1.1 200 OK\r\nX-Injected: yes\r\nContent-Length: 6\r\n\r\nsmugl!"#;
    for format in [ApigwV2, ApigwV1, Alb] {
        for status in [204, 304] {
            let payload = format!(r#"{{"statusCode":{status},"body":"{splitting}"}}"#);
            let reply = decode(format, &payload).unwrap();
            assert_eq!(reply.status, status);
            assert!(reply.body.is_empty(), "{format:?} {status}");
            assert!(
                headers(&reply).is_empty(),
                "{format:?} {status}: no content-type"
            );
        }
    }
    let reply = decode(Envoy, r#"{"status_code":204,"body":"x"}"#).unwrap();
    assert!(reply.body.is_empty());
    // Statuses that are not 200-599 are refused, 1xx included.
    for status in ["100", "101", "199", "600", "0", "-1", "\"abc\"", "204.5"] {
        let payload = format!(r#"{{"statusCode":{status},"body":"x"}}"#);
        assert!(
            matches!(
                decode(ApigwV2, &payload),
                Err(ProxyResponseError::InvalidStatusCode(_))
            ),
            "{status}"
        );
    }
}

fn cookies(n: usize, size: usize) -> String {
    let cookies: Vec<String> = (0..n)
        .map(|i| format!("\"c{i}={}\"", "v".repeat(size)))
        .collect();
    format!(r#"{{"statusCode":200,"cookies":[{}]}}"#, cookies.join(","))
}

#[test]
fn transport_and_proxy_headers_are_not_the_functions() {
    let payload = r#"{"statusCode":200,"headers":{"Content-Length":"5","Transfer-Encoding":"chunked","Connection":"close","X-Envoy-Upstream-Service-Time":"1","x-envoy-original-path":"/x","X-App":"1"},"body":"hello"}"#;
    let reply = decode(ApigwV2, payload).unwrap();
    assert_eq!(
        headers(&reply),
        [("x-app", "1"), ("content-type", "application/json")]
    );
}

#[test]
fn header_lines_are_bounded() {
    let reply = decode(ApigwV2, &cookies(MAX_RESPONSE_HEADERS, 8)).unwrap();
    assert_eq!(reply.headers.len(), MAX_RESPONSE_HEADERS);
    for n in [MAX_RESPONSE_HEADERS + 1, 1000, 100_000] {
        let err = decode(ApigwV2, &cookies(n, 8)).unwrap_err();
        assert_eq!(err, ProxyResponseError::TooManyHeaders { count: n });
        assert!(err.message().contains("more than the 100"), "{err}");
    }
    // Headers and multiValueHeaders count together; repeated cookies only once.
    let mut headers: Vec<String> = (0..60).map(|i| format!("\"h{i}\":\"v\"")).collect();
    let multi: Vec<String> = (0..41).map(|i| format!("\"m{i}\":[\"v\"]")).collect();
    let payload = format!(
        r#"{{"statusCode":200,"headers":{{{}}},"multiValueHeaders":{{{}}}}}"#,
        headers.join(","),
        multi.join(",")
    );
    assert!(matches!(
        decode(ApigwV1, &payload),
        Err(ProxyResponseError::TooManyHeaders { count: 101 })
    ));
    headers.truncate(59);
    let payload = format!(
        r#"{{"statusCode":200,"headers":{{{}}},"multiValueHeaders":{{{}}}}}"#,
        headers.join(","),
        multi.join(",")
    );
    assert_eq!(decode(ApigwV1, &payload).unwrap().headers.len(), 100);
    let same: Vec<&str> = vec!["\"a=1\""; 500];
    let payload = format!(r#"{{"statusCode":200,"cookies":[{}]}}"#, same.join(","));
    assert_eq!(decode(ApigwV2, &payload).unwrap().headers.len(), 1);
}

#[test]
fn header_bytes_are_bounded() {
    // 10 cookies of `set-cookie` (10) + `cN=` (3) + value bytes.
    let per_cookie = MAX_RESPONSE_HEADER_BYTES / 10 - 13;
    let at_limit = decode(ApigwV2, &cookies(10, per_cookie)).unwrap();
    let bytes: usize = at_limit
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len())
        .sum();
    assert!(bytes <= MAX_RESPONSE_HEADER_BYTES);
    assert!(bytes > MAX_RESPONSE_HEADER_BYTES - 20);
    let err = decode(ApigwV2, &cookies(10, per_cookie + 5)).unwrap_err();
    assert!(
        matches!(err, ProxyResponseError::HeadersTooLarge { .. }),
        "{err}"
    );
    assert!(err
        .message()
        .contains(&MAX_RESPONSE_HEADER_BYTES.to_string()));
    let huge = format!(
        r#"{{"statusCode":200,"headers":{{"x":"{}"}}}}"#,
        "v".repeat(MAX_RESPONSE_HEADER_BYTES)
    );
    assert!(matches!(
        decode(ApigwV2, &huge),
        Err(ProxyResponseError::HeadersTooLarge { .. })
    ));
}

#[test]
fn structured_responses_in_every_format() {
    let cases = [
        (
            ApigwV2,
            r#"{"statusCode":201,"headers":{"Content-Type":"text/plain","X-A":"1"},"body":"made"}"#,
        ),
        (
            ApigwV1,
            r#"{"statusCode":201,"headers":{"Content-Type":"text/plain","X-A":"1"},"multiValueHeaders":{},"body":"made","isBase64Encoded":false}"#,
        ),
        (
            Alb,
            r#"{"statusCode":201,"statusDescription":"418 I'm a teapot","headers":{"Content-Type":"text/plain","X-A":"1"},"body":"made","isBase64Encoded":false}"#,
        ),
        (
            Envoy,
            r#"{"status_code":201,"headers":{"Content-Type":"text/plain","X-A":"1"},"body":"made","is_base64_encoded":false}"#,
        ),
    ];
    for (format, payload) in cases {
        let reply = decode(format, payload).unwrap();
        assert_eq!(reply.status, 201, "{format:?}");
        assert_eq!(
            headers(&reply),
            [("content-type", "text/plain"), ("x-a", "1")],
            "{format:?}"
        );
        assert_eq!(reply.body, b"made", "{format:?}");
    }
}

#[test]
fn status_codes() {
    let cases: [(EventFormat, &str, Result<u16, &str>); 12] = [
        (ApigwV1, r#"{"statusCode":"404"}"#, Ok(404)),
        (ApigwV1, r#"{"statusCode":" 503 "}"#, Ok(503)),
        (Alb, r#"{"statusCode":599}"#, Ok(599)),
        (ApigwV2, r#"{"statusCode":"200"}"#, Ok(200)),
        (Envoy, r#"{"body":"x"}"#, Ok(200)),
        (Envoy, r#"{"status_code":0}"#, Ok(200)),
        (ApigwV1, r#"{"statusCode":600}"#, Err("600")),
        (ApigwV1, r#"{"statusCode":100}"#, Err("100")),
        (ApigwV2, r#"{"statusCode":-1}"#, Err("-1")),
        (Alb, r#"{"statusCode":"abc"}"#, Err("\"abc\"")),
        (ApigwV1, r#"{"statusCode":200.5}"#, Err("200.5")),
        (ApigwV2, r#"{"statusCode":null}"#, Err("null")),
    ];
    for (format, payload, expected) in cases {
        let result = decode(format, payload).map(|reply| reply.status);
        match expected {
            Ok(status) => assert_eq!(result, Ok(status), "{payload}"),
            Err(_) if payload.contains("null") => assert!(result.is_err(), "{payload}"),
            Err(quoted) => assert_eq!(
                result,
                Err(ProxyResponseError::InvalidStatusCode(quoted.to_string())),
                "{payload}"
            ),
        }
    }
}

#[test]
fn missing_status_code_is_an_error_for_v1_and_alb() {
    for format in [ApigwV1, Alb] {
        assert_eq!(
            decode(format, r#"{"body":"x"}"#),
            Err(ProxyResponseError::MissingStatusCode)
        );
    }
}

#[test]
fn binary_bodies() {
    let cases = [
        (
            ApigwV2,
            r#"{"statusCode":200,"headers":{"content-type":"image/png"},"body":"iVBORw0KGgoA/w==","isBase64Encoded":true}"#,
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"headers":{"content-type":"image/png"},"body":"iVBORw0K\nGgoA/w==","isBase64Encoded":true}"#,
        ),
        (
            Alb,
            r#"{"statusCode":200,"headers":{"content-type":"image/png"},"body":"iVBORw0KGgoA/w","isBase64Encoded":true}"#,
        ),
        (
            Envoy,
            r#"{"status_code":200,"headers":{"content-type":"image/png"},"body":"iVBORw0KGgoA/w==","is_base64_encoded":true}"#,
        ),
    ];
    for (format, payload) in cases {
        let reply = decode(format, payload).unwrap();
        assert_eq!(reply.body, PNG, "{format:?}");
        assert_eq!(reply.header("content-type"), Some("image/png"));
    }
}

#[test]
fn empty_bodies_and_default_content_type() {
    let cases = [
        (ApigwV1, r#"{"statusCode":204}"#, None, &b""[..]),
        (ApigwV1, r#"{"statusCode":200,"body":null}"#, None, b""),
        (
            ApigwV1,
            r#"{"statusCode":200,"body":"{}"}"#,
            Some("application/json"),
            b"{}",
        ),
        (ApigwV2, r#"{"statusCode":200,"body":""}"#, None, b""),
        (Alb, r#"{"statusCode":200,"body":"x"}"#, None, b"x"),
        (Envoy, r#"{"body":"x"}"#, Some("application/json"), b"x"),
        (
            ApigwV2,
            r#"{"statusCode":200,"body":"","isBase64Encoded":true}"#,
            None,
            b"",
        ),
    ];
    for (format, payload, content_type, body) in cases {
        let reply = decode(format, payload).unwrap();
        assert_eq!(reply.header("content-type"), content_type, "{payload}");
        assert_eq!(reply.body, body, "{payload}");
    }
}

#[test]
fn redirect() {
    for format in [ApigwV1, ApigwV2, Alb] {
        let reply = decode(
            format,
            r#"{"statusCode":302,"headers":{"Location":"https://example.com/next?a=1"}}"#,
        )
        .unwrap();
        assert_eq!(reply.status, 302);
        assert_eq!(
            headers(&reply),
            [("location", "https://example.com/next?a=1")]
        );
        assert!(reply.body.is_empty());
    }
    let reply = decode(
        Envoy,
        r#"{"status_code":301,"headers":{"location":"/new"}}"#,
    )
    .unwrap();
    assert_eq!(
        (reply.status, reply.header("location")),
        (301, Some("/new"))
    );
}

#[test]
fn cookies_in_every_shape() {
    let set_cookies = |format: EventFormat, payload: &str| -> Vec<String> {
        decode(format, payload)
            .unwrap()
            .headers
            .into_iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| v)
            .collect()
    };
    let cases: [(EventFormat, &str, &[&str]); 9] = [
        (
            ApigwV2,
            r#"{"statusCode":200,"cookies":["a=1; Path=/","b=2; HttpOnly"]}"#,
            &["a=1; Path=/", "b=2; HttpOnly"],
        ),
        (
            Envoy,
            r#"{"status_code":200,"cookies":["a=1","b=2"]}"#,
            &["a=1", "b=2"],
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"headers":{"Set-Cookie":"a=1"}}"#,
            &["a=1"],
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"multiValueHeaders":{"Set-Cookie":["a=1","b=2"]}}"#,
            &["a=1", "b=2"],
        ),
        (
            Alb,
            r#"{"statusCode":200,"multiValueHeaders":{"set-cookie":["a=1","b=2"]}}"#,
            &["a=1", "b=2"],
        ),
        // multiValueHeaders replaces headers of the same name: no duplicate, none lost.
        (
            ApigwV1,
            r#"{"statusCode":200,"headers":{"SET-COOKIE":"a=1"},"multiValueHeaders":{"Set-Cookie":["a=1","b=2"]}}"#,
            &["a=1", "b=2"],
        ),
        // cookies[] are appended; one already present is not repeated.
        (
            ApigwV2,
            r#"{"statusCode":200,"headers":{"set-cookie":"a=1"},"cookies":["a=1","c=3"]}"#,
            &["a=1", "c=3"],
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"multiValueHeaders":{"set-cookie":["a=1"]},"cookies":["b=2"]}"#,
            &["a=1", "b=2"],
        ),
        // Case variants in headers: the last one wins.
        (
            ApigwV2,
            r#"{"statusCode":200,"headers":{"Set-Cookie":"a=1","set-cookie":"b=2"}}"#,
            &["b=2"],
        ),
    ];
    for (format, payload, expected) in cases {
        assert_eq!(set_cookies(format, payload), expected, "{payload}");
    }
}

#[test]
fn multi_value_headers_merge() {
    let reply = decode(
        ApigwV1,
        r#"{"statusCode":200,"headers":{"X-A":"single","X-B":"b"},"multiValueHeaders":{"x-a":["m1","m2"],"X-C":"c"},"body":"ok"}"#,
    )
    .unwrap();
    assert_eq!(
        headers(&reply),
        [
            ("x-b", "b"),
            ("x-c", "c"),
            ("x-a", "m1"),
            ("x-a", "m2"),
            ("content-type", "application/json")
        ]
    );
}

#[test]
fn unwanted_headers_are_dropped() {
    let reply = decode(
        ApigwV2,
        r#"{"statusCode":200,"headers":{":status":"500","Connection":"close","Keep-Alive":"x","Transfer-Encoding":"chunked","Upgrade":"h2c","Proxy-Connection":"x","TE":"trailers","Trailer":"x","Content-Length":"999","X-Kept":"yes","X-Count":3,"X-Flag":true},"body":"ok"}"#,
    )
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        headers(&reply),
        [
            ("x-count", "3"),
            ("x-flag", "true"),
            ("x-kept", "yes"),
            ("content-type", "application/json")
        ]
    );
}

#[test]
fn malformed_answers() {
    use ProxyResponseError::*;
    let field = |field: &str, expected: &'static str| InvalidField {
        field: field.into(),
        expected,
    };
    let cases: Vec<(EventFormat, &str, ProxyResponseError)> = vec![
        (ApigwV1, "not json", NotJson),
        (Alb, "", NotJson),
        (Envoy, "<html>", NotJson),
        (ApigwV1, "[1]", NotAnObject),
        (Alb, r#""ok""#, NotAnObject),
        (
            ApigwV2,
            r#"{"statusCode":200,"body":"!!","isBase64Encoded":true}"#,
            InvalidBase64,
        ),
        (
            Envoy,
            r#"{"body":"%%%","is_base64_encoded":true}"#,
            InvalidBase64,
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"isBase64Encoded":"true","body":"x"}"#,
            field("isBase64Encoded", "a boolean"),
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"body":{"a":1}}"#,
            field("body", "a string"),
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"headers":{"x-a":{"b":1}}}"#,
            field("headers.x-a", "a string"),
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"headers":{"x-a":null}}"#,
            field("headers.x-a", "a string"),
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"headers":["x"]}"#,
            field("headers", "an object"),
        ),
        (
            Alb,
            r#"{"statusCode":200,"multiValueHeaders":{"x-a":[["b"]]}}"#,
            field("multiValueHeaders.x-a", "a string"),
        ),
        (
            ApigwV2,
            r#"{"statusCode":200,"cookies":"a=1"}"#,
            field("cookies", "an array of strings"),
        ),
        (
            ApigwV2,
            r#"{"statusCode":200,"cookies":[1]}"#,
            field("cookies", "an array of strings"),
        ),
        (
            ApigwV2,
            r#"{"statusCode":200,"headers":{"x-a":"v\r\nset-cookie: evil=1"}}"#,
            InvalidHeaderValue { name: "x-a".into() },
        ),
        (
            ApigwV2,
            r#"{"statusCode":200,"headers":{"x-a":"v\nx"}}"#,
            InvalidHeaderValue { name: "x-a".into() },
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"multiValueHeaders":{"x-a":["ok","a\u0000b"]}}"#,
            InvalidHeaderValue { name: "x-a".into() },
        ),
        (
            ApigwV2,
            r#"{"statusCode":200,"cookies":["a=1\r\nx: y"]}"#,
            InvalidHeaderValue {
                name: "set-cookie".into(),
            },
        ),
        (
            Envoy,
            r#"{"headers":{"x-a":"\u0007"}}"#,
            InvalidHeaderValue { name: "x-a".into() },
        ),
        (
            ApigwV2,
            r#"{"statusCode":200,"headers":{"bad name":"v"}}"#,
            InvalidHeaderName("\"bad name\"".into()),
        ),
        (
            ApigwV2,
            r#"{"statusCode":200,"headers":{"x-a\r\nx-b":"v"}}"#,
            InvalidHeaderName("\"x-a\\r\\nx-b\"".into()),
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"headers":{"":"v"}}"#,
            InvalidHeaderName("\"\"".into()),
        ),
        (
            ApigwV1,
            r#"{"statusCode":200,"headers":{"x-é":"v"}}"#,
            InvalidHeaderName("\"x-é\"".into()),
        ),
    ];
    for (format, payload, expected) in cases {
        let error = decode(format, payload).unwrap_err();
        assert_eq!(error, expected, "{payload}");
        assert_eq!(error.class(), "bad_response");
        assert!(!error.message().is_empty());
    }
}

#[test]
fn tabs_and_non_ascii_values_are_allowed() {
    let reply = decode(
        ApigwV2,
        r#"{"statusCode":200,"headers":{"x-a":"a\tb","x-b":"café"}}"#,
    )
    .unwrap();
    assert_eq!(headers(&reply), [("x-a", "a\tb"), ("x-b", "café")]);
}

#[test]
fn messages_name_the_problem_without_values() {
    let error = decode(
        ApigwV2,
        r#"{"statusCode":200,"headers":{"authorization":"secret\r\n"}}"#,
    )
    .unwrap_err();
    assert!(error.message().contains("authorization"));
    assert!(!error.message().contains("secret"));
    assert_eq!(
        error.to_string(),
        format!("bad_response: {}", error.message())
    );
    let long = format!(r#"{{"statusCode":"{}"}}"#, "9".repeat(500));
    match decode(ApigwV1, &long).unwrap_err() {
        ProxyResponseError::InvalidStatusCode(quoted) => {
            assert!(quoted.chars().count() <= MAX_QUOTE_CHARS + 1)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn fuzz_regression_long_header_name_in_invalid_field() {
    // A header name of any length was copied whole into the error message (the client's
    // error body); it is now cut like every other quoted piece of the answer.
    let name = format!("SET-COOK{}etie", "2222222222,".repeat(40));
    for (format, payload) in [
        (
            ApigwV1,
            format!(r#"{{"statusCode":"404","headers":{{"{name}":["a=2"]}},"bod":true}}"#),
        ),
        (
            Alb,
            format!(r#"{{"statusCode":200,"multiValueHeaders":{{"{name}":[["x"]]}}}}"#),
        ),
    ] {
        let error = decode(format, &payload).unwrap_err();
        let ProxyResponseError::InvalidField { field, .. } = &error else {
            panic!("unexpected {error:?}");
        };
        assert!(field.chars().count() <= MAX_QUOTE_CHARS + 1, "{field}");
        assert!(field.ends_with('…'));
        assert!(error.message().chars().count() < 200);
    }
}
