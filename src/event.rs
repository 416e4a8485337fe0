//! Builds the Invoke payload from the client's request, in the event shapes Lambda functions
//! and their frameworks already understand: API Gateway HTTP API payload 2.0 (also what
//! Function URLs send), API Gateway REST API payload 1.0, ALB target groups, and the JSON of
//! Envoy's native `aws_lambda` filter. Also merges custom parameters into a passthrough body.
//!
//! The events are written straight into the payload buffer: no intermediate JSON tree.

use crate::string_map::StringMap;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine;
use percent_encoding::percent_decode_str;

use crate::time::{civil_from_days, epoch_ms};

/// Stage name sent when none is configured (HTTP API's default stage).
pub const DEFAULT_STAGE: &str = "$default";
/// `routeKey` of payload 2.0 events when none is configured.
pub const DEFAULT_V2_ROUTE_KEY: &str = "$default";
/// Route whose path gives the `resource` of payload 1.0 events when neither `resource` nor
/// `route_key` is configured.
pub const DEFAULT_V1_ROUTE_KEY: &str = "ANY /{proxy+}";

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
            grouped.entry("host").or_insert_with(|| vec![host]);
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
pub fn is_textual_content_type(content_type: &str) -> bool {
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

/// The body as the event carries it: the text when the content type is textual and the bytes
/// are UTF-8, else base64 (`true`).
fn encode_body<'a>(request: &RequestInfo<'a>) -> (Cow<'a, str>, bool) {
    if request.body.is_empty() {
        return (Cow::Borrowed(""), false);
    }
    if request
        .first_header("content-type")
        .is_some_and(is_textual_content_type)
    {
        if let Ok(text) = std::str::from_utf8(request.body) {
            return (Cow::Borrowed(text), false);
        }
    }
    (
        Cow::Owned(base64::engine::general_purpose::STANDARD.encode(request.body)),
        true,
    )
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

/// Values grouped by name (names sorted, values in order). Every grouping in this module
/// uses this one map type: each `BTreeMap` instantiation costs kilobytes of .wasm.
type Grouped<'a> = BTreeMap<&'a str, Vec<&'a str>>;

fn group<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Grouped<'a> {
    let mut grouped = Grouped::new();
    for (name, value) in pairs {
        grouped.entry(name).or_default().push(value);
    }
    grouped
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

/// The path of a route key (`ANY /{proxy+}` → `/{proxy+}`).
fn route_path(route_key: &str) -> &str {
    route_key
        .split_once(' ')
        .map_or(route_key, |(_, path)| path)
}

/// The `proxy` path parameter when `template` ends with `/{proxy+}` and `path` lies under
/// its prefix.
fn proxy_path_parameter(template: &str, path: &str) -> Option<String> {
    let prefix = template.strip_suffix(PROXY_SUFFIX)?;
    let rest = path.strip_prefix(prefix)?.strip_prefix('/')?;
    if rest.is_empty() {
        return None;
    }
    Some(percent_decode_str(rest).decode_utf8_lossy().into_owned())
}

/// The host without its port.
fn domain_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn domain_prefix(domain: &str) -> &str {
    domain.split('.').next().unwrap_or(domain)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// API Gateway's request time: `23/Nov/2026:10:00:00 +0000`.
fn request_time(now: SystemTime) -> String {
    let secs = epoch_ms(now) / 1000;
    let (year, month, day) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let seconds_of_day = secs % 86_400;
    let month_name = month
        .checked_sub(1)
        .and_then(|index| MONTHS.get(index as usize))
        .unwrap_or(&"Jan");
    format!(
        "{day:02}/{month_name}/{year}:{:02}:{:02}:{:02} +0000",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

// ---------------------------------------------------------------- JSON writer

/// Writes JSON straight into the payload buffer (no intermediate tree, no per-struct
/// serializer code); strings are escaped by serde_json.
struct JsonWriter {
    out: Vec<u8>,
    /// No member or element written yet in the innermost object or array.
    first: bool,
}

impl JsonWriter {
    fn with_capacity(capacity: usize) -> Self {
        JsonWriter {
            out: Vec::with_capacity(capacity),
            first: true,
        }
    }

    fn separator(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// A JSON string. Bodies make this the hot loop of event building (a 256 KiB body is
    /// 256 Ki iterations), so runs of plain bytes are copied whole and only the characters
    /// JSON requires escaping (RFC 8259: `"`, `\\`, controls) are escaped — the same output
    /// as serde_json (a unit test compares them), at a fraction of the instructions per byte
    /// in a size-optimised build.
    fn string(&mut self, value: &str) {
        self.out.reserve(value.len() + 2);
        self.out.push(b'"');
        let mut rest = value.as_bytes();
        while let Some(at) = rest.iter().position(|b| needs_escape(*b)) {
            let (plain, special) = rest.split_at(at);
            self.out.extend_from_slice(plain);
            if let Some((&byte, tail)) = special.split_first() {
                push_escaped(&mut self.out, byte);
                rest = tail;
            } else {
                rest = &[];
            }
        }
        self.out.extend_from_slice(rest);
        self.out.push(b'"');
    }

    fn key(&mut self, key: &str) {
        self.separator();
        self.string(key);
        self.out.push(b':');
    }

    fn begin_object(&mut self) {
        self.out.push(b'{');
        self.first = true;
    }

    fn end_object(&mut self) {
        self.out.push(b'}');
        self.first = false;
    }

    fn object(&mut self, key: &str) {
        self.key(key);
        self.begin_object();
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.string(value);
    }

    /// `null` when absent.
    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) => self.str(key, value),
            None => self.null(key),
        }
    }

    fn null(&mut self, key: &str) {
        self.key(key);
        self.out.extend_from_slice(b"null");
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        self.out.extend_from_slice(value.to_string().as_bytes());
    }

    fn str_array<'v>(&mut self, key: &str, values: impl IntoIterator<Item = &'v str>) {
        self.key(key);
        self.out.push(b'[');
        self.first = true;
        for value in values {
            self.separator();
            self.string(value);
        }
        self.out.push(b']');
        self.first = false;
    }

    /// `{name: value}` from (name, value) pairs.
    fn str_map<'v>(&mut self, key: &str, members: impl IntoIterator<Item = (&'v str, &'v str)>) {
        self.object(key);
        for (name, value) in members {
            self.str(name, value);
        }
        self.end_object();
    }

    /// `{name: [values]}` from (name, values) pairs.
    fn str_array_map<'v, V: AsRef<str> + 'v>(
        &mut self,
        key: &str,
        members: impl IntoIterator<Item = (&'v str, &'v [V])>,
    ) {
        self.object(key);
        for (name, values) in members {
            self.str_array(name, values.iter().map(AsRef::as_ref));
        }
        self.end_object();
    }

    fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Bytes JSON strings must escape: controls, `"` and `\\` (a table: one load per byte).
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

fn needs_escape(byte: u8) -> bool {
    NEEDS_ESCAPE[usize::from(byte)]
}

/// The JSON escape of an ASCII byte that [`needs_escape`], in serde_json's spelling.
fn push_escaped(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        0x08 => Some(b'b'),
        0x0c => Some(b'f'),
        _ => None,
    };
    out.push(b'\\');
    match short {
        Some(letter) => out.push(letter),
        None => out.extend_from_slice(&[
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
    }
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

// ---------------------------------------------------------------- payload 2.0

fn v2_event(settings: &EventSettings, request: &RequestInfo) -> Vec<u8> {
    let route_key = settings
        .route_key
        .as_deref()
        .unwrap_or(DEFAULT_V2_ROUTE_KEY);
    let (body, is_base64_encoded) = encode_body(request);
    let domain = request.host.map(domain_name).unwrap_or("");
    let mut json = JsonWriter::with_capacity(event_capacity(request));
    json.begin_object();
    json.str("version", "2.0");
    json.str("routeKey", route_key);
    json.str("rawPath", request.path);
    json.str("rawQueryString", request.raw_query);
    let mut cookies = request
        .header_values("cookie")
        .flat_map(|header| header.split(';'))
        .map(str::trim)
        .filter(|cookie| !cookie.is_empty())
        .peekable();
    if cookies.peek().is_some() {
        json.str_array("cookies", cookies);
    }
    json.object("headers");
    for (name, values) in request.grouped_headers(Some("cookie")) {
        json.str(name, &join(&values, ","));
    }
    json.end_object();
    let query_pairs = decoded_query(request.raw_query);
    let query = group(as_strs(&query_pairs));
    if !query.is_empty() {
        json.object("queryStringParameters");
        for (key, values) in &query {
            json.str(key, &values.join(","));
        }
        json.end_object();
    }
    path_parameters(&mut json, route_path(route_key), request.path, false);
    json.object("requestContext");
    json.str("accountId", &settings.account_id);
    json.str("apiId", &settings.api_id);
    json.str("domainName", domain);
    json.str("domainPrefix", domain_prefix(domain));
    json.object("http");
    json.str("method", request.method);
    json.str("path", request.path);
    json.str("protocol", request.protocol);
    json.opt_str("sourceIp", request.source_ip);
    json.opt_str("userAgent", request.first_header("user-agent"));
    json.end_object();
    json.opt_str("requestId", request.request_id);
    json.str("routeKey", route_key);
    json.str("stage", &settings.stage);
    json.str("time", &request_time(request.now));
    json.u64("timeEpoch", epoch_ms(request.now));
    json.end_object();
    if !settings.stage_variables.is_empty() {
        stage_variables(&mut json, settings);
    }
    if !request.body.is_empty() {
        json.str("body", &body);
    }
    json.bool("isBase64Encoded", is_base64_encoded);
    json.end_object();
    json.finish()
}

// ---------------------------------------------------------------- payload 1.0

/// API Gateway's caller identity fields, in order: only the source IP and user agent are
/// known here; the Cognito, IAM and API key fields are null as for an unauthenticated call.
const V1_IDENTITY_FIELDS: [&str; 15] = [
    "accessKey",
    "accountId",
    "apiKey",
    "apiKeyId",
    "caller",
    "clientCert",
    "cognitoAuthenticationProvider",
    "cognitoAuthenticationType",
    "cognitoIdentityId",
    "cognitoIdentityPoolId",
    "principalOrgId",
    "sourceIp",
    "user",
    "userAgent",
    "userArn",
];

fn v1_event(settings: &EventSettings, request: &RequestInfo) -> Vec<u8> {
    let resource = match (&settings.resource, &settings.route_key) {
        (Some(resource), _) => resource.as_str(),
        (None, Some(route_key)) => route_path(route_key),
        (None, None) => route_path(DEFAULT_V1_ROUTE_KEY),
    };
    let headers = request.grouped_headers(None);
    let query_pairs = decoded_query(request.raw_query);
    let query = group(as_strs(&query_pairs));
    let (body, is_base64_encoded) = encode_body(request);
    let domain = request.host.map(domain_name).unwrap_or("");
    let mut json = JsonWriter::with_capacity(event_capacity(request));
    json.begin_object();
    json.str("resource", resource);
    json.str("path", request.path);
    json.str("httpMethod", request.method);
    json.str_map("headers", headers.iter().map(|(n, v)| (*n, last(v))));
    json.str_array_map(
        "multiValueHeaders",
        headers.iter().map(|(n, v)| (*n, v.as_slice())),
    );
    if query.is_empty() {
        json.null("queryStringParameters");
        json.null("multiValueQueryStringParameters");
    } else {
        json.object("queryStringParameters");
        for (key, values) in &query {
            json.str(key, last(values));
        }
        json.end_object();
        json.str_array_map(
            "multiValueQueryStringParameters",
            query.iter().map(|(k, v)| (*k, v.as_slice())),
        );
    }
    path_parameters(&mut json, resource, request.path, true);
    if settings.stage_variables.is_empty() {
        json.null("stageVariables");
    } else {
        stage_variables(&mut json, settings);
    }
    json.object("requestContext");
    json.str("accountId", &settings.account_id);
    json.str("apiId", &settings.api_id);
    json.str("domainName", domain);
    json.str("domainPrefix", domain_prefix(domain));
    json.str("httpMethod", request.method);
    json.object("identity");
    let user_agent = request.first_header("user-agent");
    for field in V1_IDENTITY_FIELDS {
        let value = match field {
            "sourceIp" => request.source_ip,
            "userAgent" => user_agent,
            _ => None,
        };
        json.opt_str(field, value);
    }
    json.end_object();
    json.str("path", request.path);
    json.str("protocol", request.protocol);
    json.opt_str("requestId", request.request_id);
    json.str("requestTime", &request_time(request.now));
    json.u64("requestTimeEpoch", epoch_ms(request.now));
    json.str("resourceId", "");
    json.str("resourcePath", resource);
    json.str("stage", &settings.stage);
    json.end_object();
    json.opt_str("body", (!request.body.is_empty()).then_some(&*body));
    json.bool("isBase64Encoded", is_base64_encoded);
    json.end_object();
    json.finish()
}

// ---------------------------------------------------------------- ALB

fn alb_event(settings: &EventSettings, request: &RequestInfo) -> Vec<u8> {
    let headers = request.grouped_headers(None);
    let query = raw_query(request.raw_query);
    let (body, is_base64_encoded) = encode_body(request);
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
    json.str("body", &body);
    json.bool("isBase64Encoded", is_base64_encoded);
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
    let (body, is_base64_encoded) = encode_body(request);
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
    json.str("body", &body);
    json.bool("is_base64_encoded", is_base64_encoded);
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
            let _ = serde_json::to_writer(&mut json.out, value);
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::alb::AlbTargetGroupRequest;
    use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
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
            target_group_arn:
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/abc".into(),
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
}
