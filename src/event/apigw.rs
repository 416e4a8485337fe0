//! The API Gateway events: REST API (payload 1.0) and HTTP API (payload 2.0).

use super::*;

/// The path of a route key (`ANY /{proxy+}` → `/{proxy+}`).
pub(super) fn route_path(route_key: &str) -> &str {
    route_key
        .split_once(' ')
        .map_or(route_key, |(_, path)| path)
}

/// The `proxy` path parameter when `template` ends with `/{proxy+}` and `path` lies under
/// its prefix.
pub(super) fn proxy_path_parameter(template: &str, path: &str) -> Option<String> {
    let prefix = template.strip_suffix(PROXY_SUFFIX)?;
    let rest = path.strip_prefix(prefix)?.strip_prefix('/')?;
    if rest.is_empty() {
        return None;
    }
    Some(percent_decode_str(rest).decode_utf8_lossy().into_owned())
}

/// The host without its port.
pub(super) fn domain_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

pub(super) fn domain_prefix(domain: &str) -> &str {
    domain.split('.').next().unwrap_or(domain)
}

pub(super) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// API Gateway's request time: `23/Nov/2026:10:00:00 +0000`.
pub(super) fn request_time(now: SystemTime) -> String {
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

// ---------------------------------------------------------------- payload 2.0

pub(super) fn v2_event(settings: &EventSettings, request: &RequestInfo) -> Vec<u8> {
    let route_key = settings
        .route_key
        .as_deref()
        .unwrap_or(DEFAULT_V2_ROUTE_KEY);
    let body = encode_body(request);
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
        json.body("body", &body);
    }
    json.bool("isBase64Encoded", body.is_base64_encoded());
    json.end_object();
    json.finish()
}

// ---------------------------------------------------------------- payload 1.0

/// API Gateway's caller identity fields, in order: only the source IP and user agent are
/// known here; the Cognito, IAM and API key fields are null as for an unauthenticated call.
pub(super) const V1_IDENTITY_FIELDS: [&str; 15] = [
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

pub(super) fn v1_event(settings: &EventSettings, request: &RequestInfo) -> Vec<u8> {
    let resource = match (&settings.resource, &settings.route_key) {
        (Some(resource), _) => resource.as_str(),
        (None, Some(route_key)) => route_path(route_key),
        (None, None) => route_path(DEFAULT_V1_ROUTE_KEY),
    };
    let headers = request.grouped_headers(None);
    let query_pairs = decoded_query(request.raw_query);
    let query = group(as_strs(&query_pairs));
    let body = encode_body(request);
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
    if request.body.is_empty() {
        json.null("body");
    } else {
        json.body("body", &body);
    }
    json.bool("isBase64Encoded", body.is_base64_encoded());
    json.end_object();
    json.finish()
}
