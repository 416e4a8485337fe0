//! Builds the Invoke payload from the client's request, in the event shapes Lambda functions
//! and their frameworks already understand: API Gateway HTTP API payload 2.0 (also what
//! Function URLs send), API Gateway REST API payload 1.0, ALB target groups, and the JSON of
//! Envoy's native `aws_lambda` filter. Also merges custom parameters into a passthrough body.
//!
//! The events are written straight into the payload buffer: no intermediate JSON tree.

use crate::string_map::StringMap;
use std::borrow::Cow;
use std::time::SystemTime;

use percent_encoding::percent_decode_str;

use crate::time::{civil_from_days, epoch_ms};

mod apigw;
mod json_writer;
#[cfg(test)]
mod tests;

use apigw::*;
use json_writer::*;

/// Stage name sent when none is configured (HTTP API's default stage).
pub(crate) const DEFAULT_STAGE: &str = "$default";
/// `routeKey` of payload 2.0 events when none is configured.
pub(crate) const DEFAULT_V2_ROUTE_KEY: &str = "$default";
/// Route whose path gives the `resource` of payload 1.0 events when neither `resource` nor
/// `route_key` is configured.
pub(crate) const DEFAULT_V1_ROUTE_KEY: &str = "ANY /{proxy+}";

const PROXY_SUFFIX: &str = "/{proxy+}";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventFormat {
    /// API Gateway REST API, payload format 1.0.
    ApigwV1,
    /// API Gateway HTTP API payload format 2.0; also the shape of Function URL events.
    ApigwV2,
    /// ALB target group.
    Alb,
    /// Envoy's native `aws_lambda` filter (`payload_passthrough: false`).
    Envoy,
}

impl EventFormat {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "apigw_v1" => Some(Self::ApigwV1),
            "apigw_v2" => Some(Self::ApigwV2),
            "alb" => Some(Self::Alb),
            "envoy" => Some(Self::Envoy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApigwV1 => "apigw_v1",
            Self::ApigwV2 => "apigw_v2",
            Self::Alb => "alb",
            Self::Envoy => "envoy",
        }
    }
}

/// The client's request, as the filter read it.
#[derive(Clone, Copy, Debug)]
pub struct RequestInfo<'a> {
    pub method: &'a str,
    /// The raw path, still percent-encoded, without the query.
    pub path: &'a str,
    /// The raw query, without the `?`.
    pub raw_query: &'a str,
    /// Headers as received: lower-case names, repeated names allowed, no pseudo-headers.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub source_ip: Option<&'a str>,
    /// The request's `x-request-id`.
    pub request_id: Option<&'a str>,
    /// e.g. `HTTP/1.1`.
    pub protocol: &'a str,
    /// The request's authority (`:authority`, i.e. Host), port included if the client sent one.
    pub host: Option<&'a str>,
    pub now: SystemTime,
}

impl<'a> RequestInfo<'a> {
    fn header_values(&self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn first_header(&self, name: &'a str) -> Option<&'a str> {
        self.header_values(name).next()
    }

    /// Headers grouped by name (sorted), with `host` from the authority when the request has
    /// no `host` header (Envoy turns HTTP/1 Host into `:authority`), and without `skip`.
    fn grouped_headers(&self, skip: Option<&str>) -> Grouped<'a> {
        let mut grouped = group(
            self.headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .filter(|(name, _)| Some(*name) != skip),
        );
        if let Some(host) = self.host {
            if let Err(at) = grouped.binary_search_by(|(n, _)| (*n).cmp("host")) {
                grouped.insert(at, ("host", vec![host]));
            }
        }
        grouped
    }
}

/// Per-route values of the API Gateway / ALB context that the request cannot supply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSettings {
    /// `requestContext.stage` (v1, v2). Default [`DEFAULT_STAGE`].
    pub stage: String,
    /// v2 `routeKey` (default [`DEFAULT_V2_ROUTE_KEY`]); for v1 its path is the `resource`
    /// when `resource` is not set (default [`DEFAULT_V1_ROUTE_KEY`]). A route ending in
    /// `/{proxy+}` fills `pathParameters.proxy`.
    pub route_key: Option<String>,
    /// `requestContext.apiId` (v1, v2).
    pub api_id: String,
    /// `requestContext.accountId` (v1, v2).
    pub account_id: String,
    /// v1 `resource` and `requestContext.resourcePath`.
    pub resource: Option<String>,
    /// `stageVariables` (v1, v2): where custom parameters go.
    pub stage_variables: StringMap,
    /// ALB `requestContext.elb.targetGroupArn`.
    pub target_group_arn: String,
    /// ALB: send `multiValueHeaders`/`multiValueQueryStringParameters` instead of
    /// `headers`/`queryStringParameters` (the target group's multi-value headers setting).
    pub alb_multi_value_headers: bool,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            stage: DEFAULT_STAGE.to_string(),
            route_key: None,
            api_id: String::new(),
            account_id: String::new(),
            resource: None,
            stage_variables: StringMap::new(),
            target_group_arn: String::new(),
            alb_multi_value_headers: false,
        }
    }
}

/// The Invoke payload for `request` in `format`.
pub fn build_event(
    format: EventFormat,
    settings: &EventSettings,
    request: &RequestInfo,
) -> Vec<u8> {
    match format {
        EventFormat::ApigwV2 => v2_event(settings, request),
        EventFormat::ApigwV1 => v1_event(settings, request),
        EventFormat::Alb => alb_event(settings, request),
        EventFormat::Envoy => envoy_event(request),
    }
}

/// Whether a body of this content type is sent as text (when it is valid UTF-8) rather than
/// base64: `text/*`, JSON, XML, JavaScript and form bodies, unless the charset is one other
/// than UTF-8 (or its subset US-ASCII).
pub(crate) fn is_textual_content_type(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let textual = mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(
            mime.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-www-form-urlencoded"
        );
    let utf8_charset = parts.all(|param| match param.split_once('=') {
        Some((key, value)) if key.trim().eq_ignore_ascii_case("charset") => {
            let charset = value.trim().trim_matches('"');
            ["utf-8", "utf8", "us-ascii"]
                .iter()
                .any(|c| charset.eq_ignore_ascii_case(c))
        }
        _ => true,
    });
    textual && utf8_charset
}

/// The body as the event carries it.
pub(super) enum EventBody<'a> {
    /// The text, when the content type is textual and the bytes are UTF-8 (or no body).
    Text(&'a str),
    /// Any other bytes, written in base64.
    Base64(&'a [u8]),
}

impl EventBody<'_> {
    fn is_base64_encoded(&self) -> bool {
        matches!(self, EventBody::Base64(_))
    }
}

fn encode_body<'a>(request: &RequestInfo<'a>) -> EventBody<'a> {
    if request.body.is_empty() {
        return EventBody::Text("");
    }
    if request
        .first_header("content-type")
        .is_some_and(is_textual_content_type)
    {
        if let Ok(text) = std::str::from_utf8(request.body) {
            return EventBody::Text(text);
        }
    }
    EventBody::Base64(request.body)
}

fn join<'a>(values: &[&'a str], separator: &str) -> Cow<'a, str> {
    match values {
        [one] => Cow::Borrowed(one),
        _ => Cow::Owned(values.join(separator)),
    }
}

fn last<'a>(values: &[&'a str]) -> &'a str {
    values.last().copied().unwrap_or("")
}

/// Values grouped by name (names sorted, values in order), in a `Vec` sorted by name: a
/// `BTreeMap` instantiation costs 4 KB of .wasm.
type Grouped<'a> = Vec<(&'a str, Vec<&'a str>)>;

fn group<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Grouped<'a> {
    group_pairs(pairs.collect())
}

/// Sorted by name, values in order, then split into runs of one name.
fn group_pairs<'a>(mut pairs: Vec<(&'a str, &'a str)>) -> Grouped<'a> {
    sort_by_name(&mut pairs);
    let mut grouped = Grouped::new();
    for (name, value) in pairs {
        match grouped.last_mut() {
            Some((last, values)) if *last == name => values.push(value),
            _ => grouped.push((name, vec![value])),
        }
    }
    grouped
}

/// A stable merge sort by name, bottom-up: std's sorts link 5 KB of .wasm.
fn sort_by_name(pairs: &mut Vec<(&str, &str)>) {
    let len = pairs.len();
    let mut merged = pairs.clone();
    let mut width = 1;
    while width < len {
        let mut start = 0;
        while start < len {
            let middle = (start + width).min(len);
            let end = (start + 2 * width).min(len);
            let (mut left, mut right) = (start, middle);
            for slot in &mut merged[start..end] {
                let take_left = right >= end || (left < middle && pairs[left].0 <= pairs[right].0);
                if take_left {
                    *slot = pairs[left];
                    left += 1;
                } else {
                    *slot = pairs[right];
                    right += 1;
                }
            }
            start = end;
        }
        std::mem::swap(pairs, &mut merged);
        width *= 2;
    }
}

/// Query parameters percent-decoded (`+` is a space), in order; group them with
/// [`group`].
fn decoded_query(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

fn as_strs(pairs: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Query parameters exactly as sent (still percent-encoded), grouped by name in order.
fn raw_query(raw: &str) -> Grouped<'_> {
    group(
        raw.split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, ""))),
    )
}

/// Room for the event around the body (base64 grows it by a third).
fn event_capacity(request: &RequestInfo) -> usize {
    1024 + request.body.len() * 4 / 3
        + request
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 8)
            .sum::<usize>()
}

fn stage_variables(json: &mut JsonWriter, settings: &EventSettings) {
    json.str_map("stageVariables", settings.stage_variables.iter());
}

/// `{"proxy": …}` when the route template ends with `/{proxy+}`; `null` or nothing otherwise.
fn path_parameters(json: &mut JsonWriter, template: &str, path: &str, null_when_absent: bool) {
    match proxy_path_parameter(template, path) {
        Some(proxy) => json.str_map("pathParameters", [("proxy", proxy.as_str())]),
        None if null_when_absent => json.null("pathParameters"),
        None => {}
    }
}

// ---------------------------------------------------------------- ALB

fn alb_event(settings: &EventSettings, request: &RequestInfo) -> Vec<u8> {
    let headers = request.grouped_headers(None);
    let query = raw_query(request.raw_query);
    let body = encode_body(request);
    let mut json = JsonWriter::with_capacity(event_capacity(request));
    json.begin_object();
    json.object("requestContext");
    json.object("elb");
    json.str("targetGroupArn", &settings.target_group_arn);
    json.end_object();
    json.end_object();
    json.str("httpMethod", request.method);
    json.str("path", request.path);
    if settings.alb_multi_value_headers {
        json.str_array_map(
            "multiValueQueryStringParameters",
            query.iter().map(|(k, v)| (*k, v.as_slice())),
        );
        json.str_array_map(
            "multiValueHeaders",
            headers.iter().map(|(n, v)| (*n, v.as_slice())),
        );
    } else {
        json.str_map(
            "queryStringParameters",
            query.iter().map(|(k, v)| (*k, last(v))),
        );
        json.str_map("headers", headers.iter().map(|(n, v)| (*n, last(v))));
    }
    json.body("body", &body);
    json.bool("isBase64Encoded", body.is_base64_encoded());
    json.end_object();
    json.finish()
}

// ---------------------------------------------------------------- Envoy

fn envoy_event(request: &RequestInfo) -> Vec<u8> {
    let grouped = group(
        request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    let body = encode_body(request);
    let mut json = JsonWriter::with_capacity(event_capacity(request));
    json.begin_object();
    if request.raw_query.is_empty() {
        json.str("raw_path", request.path);
    } else {
        json.str(
            "raw_path",
            &format!("{}?{}", request.path, request.raw_query),
        );
    }
    json.str("method", request.method);
    json.object("headers");
    for (name, values) in &grouped {
        json.str(name, &join(values, ","));
    }
    json.end_object();
    json.str_map(
        "query_string_parameters",
        raw_query(request.raw_query)
            .iter()
            .map(|(k, v)| (*k, last(v))),
    );
    json.body("body", &body);
    json.bool("is_base64_encoded", body.is_base64_encoded());
    json.end_object();
    json.finish()
}

// ---------------------------------------------------------------- passthrough

/// For passthrough payloads: when `body` is a JSON object, the object with `params` as its
/// top-level member `field`. `None` when the body is not a JSON object: it is sent unchanged.
/// The body's own bytes are kept (member order, number spelling) by appending the member
/// before the closing brace; only a body that already has a member `field` is rewritten
/// from its parsed form (members then in sorted order) to replace it.
pub fn merge_custom_parameters(body: &[u8], field: &str, params: &StringMap) -> Option<Vec<u8>> {
    let serde_json::Value::Object(members) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    let mut json = JsonWriter::with_capacity(body.len() + field.len() + 64);
    if members.contains_key(field) {
        json.begin_object();
        for (key, value) in members.iter().filter(|(key, _)| key.as_str() != field) {
            json.key(key);
            json.out
                .extend_from_slice(&serde_json::to_vec(value).unwrap_or_default());
        }
    } else {
        // A valid object: its last non-space byte is the closing brace.
        let end = body.iter().rposition(|b| *b == b'}')?;
        let start = body.iter().position(|b| *b == b'{')?;
        json.out.extend_from_slice(body.get(start..end)?);
        json.first = members.is_empty();
    }
    json.str_map(field, params.iter());
    json.end_object();
    Some(json.finish())
}
