//! Turns the function's answer to an API Gateway / ALB / Envoy-shaped event into the client's
//! response: status, headers (validated) and body.
//!
//! Headers rule: names are lower-cased; a name present in `multiValueHeaders` takes its values
//! from there and its `headers` value is ignored (as API Gateway merges them); `cookies[]`
//! entries are appended as `set-cookie` headers; a `set-cookie` value that is already present
//! is not repeated. Pseudo-headers, hop-by-hop headers, `content-length` and `x-envoy-*`
//! (the proxy's own) are dropped; a header name that is not a token, or a value with CR, LF,
//! NUL or another control character, makes the whole answer invalid, as do more header
//! lines or bytes than a response may carry. 204 and 304 carry no body.

use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::{Map, Value};

use crate::event::EventFormat;
use crate::http::ClientReply;

/// Longest piece of the function's answer quoted in an error message.
const MAX_QUOTE_CHARS: usize = 64;

/// The most header lines an answer may give (headers, multiValueHeaders values and cookies,
/// after merging): Envoy's own default bound on a header map (`max_headers_count`, 100).
/// More would fail to be written whole; the answer is refused instead.
pub const MAX_RESPONSE_HEADERS: usize = 100;
/// The most bytes of header names and values an answer may give: Envoy's default
/// `max_response_headers_kb` (60 KiB).
pub const MAX_RESPONSE_HEADER_BYTES: usize = 60 * 1024;

/// Whether a response with this status carries no body (RFC 9110: 204, 304; 1xx are never
/// accepted as the function's status). Its body and content-length are never sent, so that
/// the next response on the connection starts where the client expects it.
pub fn is_bodyless_status(status: u16) -> bool {
    status == 204 || status == 304
}

/// Standard alphabet; padding optional (some encoders strip it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const DROPPED_HEADERS: [&str; 8] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
    "content-length",
];

/// The function answered something that cannot be turned into an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyResponseError {
    /// Not JSON (v1, ALB and Envoy formats require a JSON object).
    NotJson,
    /// JSON, but not an object.
    NotAnObject,
    /// No `statusCode` (v1, ALB).
    MissingStatusCode,
    /// `statusCode` is not a number or numeric string in 200–599; holds the value as sent.
    InvalidStatusCode(String),
    /// A member has the wrong JSON type.
    InvalidField {
        field: String,
        expected: &'static str,
    },
    /// `isBase64Encoded` is true and the body is not base64.
    InvalidBase64,
    /// A header name is not an HTTP token.
    InvalidHeaderName(String),
    /// A header value holds CR, LF, NUL or another control character.
    InvalidHeaderValue { name: String },
    /// More header lines than [`MAX_RESPONSE_HEADERS`].
    TooManyHeaders { count: usize },
    /// More header bytes than [`MAX_RESPONSE_HEADER_BYTES`].
    HeadersTooLarge { bytes: usize },
}

impl ProxyResponseError {
    /// The error class, for the JSON body and the log.
    pub fn class(&self) -> &'static str {
        "bad_response"
    }

    /// A description for the client's error body: names fields and headers, never quotes
    /// header values.
    pub fn message(&self) -> String {
        match self {
            Self::NotJson => "the function's answer is not JSON".to_string(),
            Self::NotAnObject => "the function's answer is not a JSON object".to_string(),
            Self::MissingStatusCode => "the function's answer has no statusCode".to_string(),
            Self::InvalidStatusCode(value) => {
                format!("the function's statusCode {value} is not an HTTP status (200-599)")
            }
            Self::InvalidField { field, expected } => {
                format!("the function's '{field}' is not {expected}")
            }
            Self::InvalidBase64 => {
                "the function's body is marked isBase64Encoded but is not base64".to_string()
            }
            Self::InvalidHeaderName(name) => {
                format!("the function's header name {name} is not a valid HTTP header name")
            }
            Self::InvalidHeaderValue { name } => format!(
                "the function's header '{name}' has a value with CR, LF or control characters"
            ),
            Self::TooManyHeaders { count } => format!(
                "the function's answer has {count} header lines (headers, multiValueHeaders \
                 and cookies), more than the {MAX_RESPONSE_HEADERS} a response may carry"
            ),
            Self::HeadersTooLarge { bytes } => format!(
                "the function's answer has {bytes} bytes of headers, more than the \
                 {MAX_RESPONSE_HEADER_BYTES} a response may carry"
            ),
        }
    }
}

impl fmt::Display for ProxyResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class(), self.message())
    }
}

/// Member names of one response format.
struct Fields {
    status: &'static str,
    headers: &'static str,
    multi_value_headers: Option<&'static str>,
    cookies: &'static str,
    body: &'static str,
    base64: &'static str,
    /// Whether a missing status code means 200 (else an error).
    status_optional: bool,
    /// `content-type` sent when the function gives none and the body is not empty.
    default_content_type: Option<&'static str>,
}

const API_GATEWAY: Fields = Fields {
    status: "statusCode",
    headers: "headers",
    multi_value_headers: Some("multiValueHeaders"),
    cookies: "cookies",
    body: "body",
    base64: "isBase64Encoded",
    status_optional: false,
    default_content_type: Some("application/json"),
};

const ALB: Fields = Fields {
    default_content_type: None,
    ..API_GATEWAY
};

const ENVOY: Fields = Fields {
    status: "status_code",
    headers: "headers",
    multi_value_headers: None,
    cookies: "cookies",
    body: "body",
    base64: "is_base64_encoded",
    status_optional: true,
    default_content_type: Some("application/json"),
};

/// A response-streaming function's HTTP prelude (the Function URL format: `statusCode`,
/// `headers`, `cookies`; no body). A missing status means 200.
const STREAM_PRELUDE: Fields = Fields {
    status: "statusCode",
    headers: "headers",
    multi_value_headers: None,
    cookies: "cookies",
    body: "body",
    base64: "isBase64Encoded",
    status_optional: true,
    default_content_type: None,
};

/// Status and headers of a response-streaming function's HTTP prelude (`json`: the JSON
/// text before the NUL delimiter), under the same header rules as a buffered answer.
pub(crate) fn stream_prelude(
    json: &[u8],
) -> Result<(u16, Vec<(String, String)>), ProxyResponseError> {
    let object = match serde_json::from_slice(json) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(ProxyResponseError::NotAnObject),
        Err(_) => return Err(ProxyResponseError::NotJson),
    };
    let status = match object.get(STREAM_PRELUDE.status) {
        None | Some(Value::Null) => 200,
        Some(value) => status_code(value)?,
    };
    Ok((status, collect_headers(&object, &STREAM_PRELUDE)?))
}

/// The client's response for the function's `payload` (a successful `RequestResponse`
/// Invoke's body) in `format`.
pub fn decode_proxy_response(
    format: EventFormat,
    payload: &[u8],
) -> Result<ClientReply, ProxyResponseError> {
    let parsed: Result<Value, _> = serde_json::from_slice(payload);
    let fields = match format {
        EventFormat::ApigwV2 => {
            return match parsed {
                Ok(Value::Object(object)) if object.contains_key(API_GATEWAY.status) => {
                    structured(object, &API_GATEWAY)
                }
                Ok(Value::String(text)) => Ok(inferred(text.into_bytes())),
                // API Gateway infers a response only for valid JSON.
                Ok(_) => Ok(inferred(payload.to_vec())),
                Err(_) => Err(ProxyResponseError::NotJson),
            };
        }
        EventFormat::ApigwV1 => &API_GATEWAY,
        EventFormat::Alb => &ALB,
        EventFormat::Envoy => &ENVOY,
    };
    match parsed {
        Ok(Value::Object(object)) => structured(object, fields),
        Ok(_) => Err(ProxyResponseError::NotAnObject),
        Err(_) => Err(ProxyResponseError::NotJson),
    }
}

/// Payload 2.0's answer without `statusCode` (valid JSON): 200, JSON, the payload as the
/// body (a JSON string is sent as its text).
fn inferred(body: Vec<u8>) -> ClientReply {
    ClientReply {
        status: 200,
        headers: vec![("content-type".to_string(), "application/json".to_string())],
        body,
    }
}

fn structured(
    object: Map<String, Value>,
    fields: &Fields,
) -> Result<ClientReply, ProxyResponseError> {
    let status = match object.get(fields.status) {
        None | Some(Value::Null) if fields.status_optional => 200,
        None | Some(Value::Null) => return Err(ProxyResponseError::MissingStatusCode),
        // Envoy's filter keeps 200 for a status_code of 0.
        Some(Value::Number(n)) if fields.status_optional && n.as_u64() == Some(0) => 200,
        Some(value) => status_code(value)?,
    };
    let mut headers = collect_headers(&object, fields)?;
    let mut body = body(&object, fields)?;
    if is_bodyless_status(status) {
        body.clear();
    }
    if let Some(default) = fields.default_content_type {
        if !body.is_empty() && !headers.iter().any(|(name, _)| name == "content-type") {
            headers.push(("content-type".to_string(), default.to_string()));
        }
    }
    Ok(ClientReply {
        status,
        headers,
        body,
    })
}

fn status_code(value: &Value) -> Result<u16, ProxyResponseError> {
    let code = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match code {
        Some(code @ 200..=599) => u16::try_from(code).map_err(|_| invalid_status(value)),
        _ => Err(invalid_status(value)),
    }
}

fn invalid_status(value: &Value) -> ProxyResponseError {
    ProxyResponseError::InvalidStatusCode(quote(&crate::config::json_text(value)))
}

fn quote(text: &str) -> String {
    let mut quoted: String = text.chars().take(MAX_QUOTE_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    quoted
}

/// `field` may hold a header name of any length: it is quoted (cut) like other pieces of
/// the answer.
fn invalid_field(field: String, expected: &'static str) -> ProxyResponseError {
    ProxyResponseError::InvalidField {
        field: quote(&field),
        expected,
    }
}

/// A header value: strings as sent; numbers and booleans as their JSON text (what API Gateway
/// does with `{"x-count": 3}`).
fn header_value(value: &Value, field: impl Fn() -> String) -> Result<String, ProxyResponseError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(invalid_field(field(), "a string")),
    }
}

/// An optional member that must be an object (`null` counts as absent).
fn object_member<'a>(
    object: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, ProxyResponseError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(invalid_field(name.to_string(), "an object")),
    }
}

fn collect_headers(
    object: &Map<String, Value>,
    fields: &Fields,
) -> Result<Vec<(String, String)>, ProxyResponseError> {
    // (lower-case name, value), single-valued headers: the last of case variants wins.
    let mut single: Vec<(String, String)> = Vec::new();
    if let Some(map) = object_member(object, fields.headers)? {
        for (name, value) in map {
            let value = header_value(value, || format!("{}.{name}", fields.headers))?;
            let name = name.to_ascii_lowercase();
            match single.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = value,
                None => single.push((name, value)),
            }
        }
    }
    let mut multi: Vec<(String, String)> = Vec::new();
    if let Some(member) = fields.multi_value_headers {
        if let Some(map) = object_member(object, member)? {
            for (name, values) in map {
                let field = || format!("{member}.{name}");
                let name = name.to_ascii_lowercase();
                match values {
                    Value::Null => {}
                    Value::Array(values) => {
                        for value in values {
                            multi.push((name.clone(), header_value(value, field)?));
                        }
                    }
                    other => multi.push((name, header_value(other, field)?)),
                }
            }
        }
    }
    let mut cookies: Vec<String> = Vec::new();
    match object.get(fields.cookies) {
        None | Some(Value::Null) => {}
        Some(Value::Array(values)) => {
            for value in values {
                match value {
                    Value::String(cookie) => cookies.push(cookie.clone()),
                    _ => {
                        return Err(invalid_field(
                            fields.cookies.to_string(),
                            "an array of strings",
                        ))
                    }
                }
            }
        }
        Some(_) => {
            return Err(invalid_field(
                fields.cookies.to_string(),
                "an array of strings",
            ))
        }
    }

    let mut headers: Vec<(String, String)> = Vec::new();
    let replaced = |name: &str| multi.iter().any(|(n, _)| n == name);
    let merged = single
        .iter()
        .filter(|(name, _)| !replaced(name))
        .chain(multi.iter())
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain(cookies.iter().map(|cookie| ("set-cookie", cookie.as_str())));
    for (name, value) in merged {
        if name.starts_with(':') {
            continue;
        }
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(ProxyResponseError::InvalidHeaderName(quote(&format!(
                "{name:?}"
            ))));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(ProxyResponseError::InvalidHeaderValue { name: quote(name) });
        }
        // Headers of the transport and of the proxy are not the function's to set.
        if DROPPED_HEADERS.contains(&name) || name.starts_with("x-envoy-") {
            continue;
        }
        if name == "set-cookie" && headers.iter().any(|(n, v)| n == name && v == value) {
            continue;
        }
        headers.push((name.to_string(), value.to_string()));
        if headers.len() > MAX_RESPONSE_HEADERS {
            // Stop here: what follows cannot be delivered anyway.
            return Err(ProxyResponseError::TooManyHeaders {
                count: single.len() + multi.len() + cookies.len(),
            });
        }
    }
    check_header_limits(&headers)?;
    Ok(headers)
}

/// The answer's headers fit what a response can carry.
pub(crate) fn check_header_limits(headers: &[(String, String)]) -> Result<(), ProxyResponseError> {
    if headers.len() > MAX_RESPONSE_HEADERS {
        return Err(ProxyResponseError::TooManyHeaders {
            count: headers.len(),
        });
    }
    let bytes = headers
        .iter()
        .map(|(n, v)| n.len() + v.len())
        .sum::<usize>();
    if bytes > MAX_RESPONSE_HEADER_BYTES {
        return Err(ProxyResponseError::HeadersTooLarge { bytes });
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn body(object: &Map<String, Value>, fields: &Fields) -> Result<Vec<u8>, ProxyResponseError> {
    let is_base64 = match object.get(fields.base64) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid_field(fields.base64.to_string(), "a boolean")),
    };
    let text = match object.get(fields.body) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => text,
        Some(_) => return Err(invalid_field(fields.body.to_string(), "a string")),
    };
    if !is_base64 {
        return Ok(text.as_bytes().to_vec());
    }
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    BASE64
        .decode(compact)
        .map_err(|_| ProxyResponseError::InvalidBase64)
}

#[cfg(test)]
mod tests {
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
}
