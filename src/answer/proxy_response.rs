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
mod tests;
