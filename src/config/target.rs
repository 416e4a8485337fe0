//! The target keys (function, region, endpoint, payload, invoke mode, event fields) and
//! their validation into an [`InvokeTarget`].

use super::*;
/// Lambda's synchronous request payload limit (6 MB).
pub(crate) const SYNC_PAYLOAD_LIMIT: u64 = 6 * 1024 * 1024;
/// Lambda's asynchronous (Event) request payload limit (1 MB).
pub(crate) const ASYNC_PAYLOAD_LIMIT: u64 = 1024 * 1024;

pub(super) const DEFAULT_TIMEOUT_MS: u64 = 15_000;
pub(super) const MAX_TIMEOUT_MS: u64 = 900_000;
pub(super) const DEFAULT_FUNCTION_ERROR_STATUS: u16 = 502;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

impl InvocationType {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "RequestResponse" => Some(Self::RequestResponse),
            "Event" => Some(Self::Event),
            "DryRun" => Some(Self::DryRun),
            _ => None,
        }
    }

    pub fn header_value(self) -> &'static str {
        match self {
            Self::RequestResponse => "RequestResponse",
            Self::Event => "Event",
            Self::DryRun => "DryRun",
        }
    }

    /// Largest request payload Lambda accepts for this invocation type.
    pub fn payload_limit(self) -> u64 {
        match self {
            Self::Event => ASYNC_PAYLOAD_LIMIT,
            Self::RequestResponse | Self::DryRun => SYNC_PAYLOAD_LIMIT,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    /// The request body is the Invoke payload, the function's answer is the response body.
    Passthrough,
    /// The request becomes an API Gateway / ALB / Envoy-style event, and the function's answer
    /// is decoded as that format's proxy-integration response.
    Event(EventFormat),
}

impl PayloadFormat {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "passthrough" => Some(Self::Passthrough),
            other => EventFormat::parse(other).map(Self::Event),
        }
    }
}

/// The top-level field custom parameters are merged into, for JSON-object bodies in
/// passthrough mode.
pub const CUSTOM_PARAMETERS_FIELD: &str = "custom_parameters";

/// Everything needed to invoke one function, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvokeTarget {
    pub function: FunctionId,
    pub qualifier: Option<String>,
    pub region: String,
    /// The Host that is signed and sent.
    pub endpoint: String,
    pub invocation_type: InvocationType,
    pub payload: PayloadFormat,
    pub function_error_status: u16,
    pub timeout: Duration,
    /// The Envoy cluster the Invoke goes to; `None` means the route's own cluster.
    pub cluster: Option<String>,
    /// `/2015-03-31/functions/{function}/invocations[?Qualifier=…]`, computed once.
    pub invoke_path: String,
    /// Event fields (stage, route key, …; custom parameters as stage variables).
    pub event: EventSettings,
    /// Delivered to the function: stage variables in API Gateway events, a top-level
    /// `custom_parameters` field of JSON-object bodies in passthrough mode.
    pub custom_parameters: StringMap,
    /// Ask for the last 4 KB of the function's log (`X-Amz-Log-Type: Tail`).
    pub log_tail: bool,
    /// Pass Lambda's `x-amz-log-result` to the client (off by default: logs may be sensitive).
    pub expose_log_result: bool,
    /// `X-Amz-Client-Context`: the configured object as base64 JSON.
    pub client_context: Option<String>,
    /// `invoke_mode: response_stream`: the `InvokeWithResponseStream` path
    /// (`/2021-11-15/functions/{function}/response-streaming-invocations[?Qualifier=…]`),
    /// computed once. Used when the request is forwarded in place; a dispatched request
    /// falls back to the buffered Invoke (`invoke_path`).
    pub stream_path: Option<String>,
    /// The credentials that sign the Invoke; `None`: the route names no profile and the
    /// configuration has no top-level credentials (such a route is refused).
    pub credentials_profile: Option<ProfileId>,
    /// The `function` label of its metrics ([`crate::metrics::function_label`]); an `Arc`, so
    /// that targets stay `Send + Sync` (the fuzz targets keep one in a static).
    pub metric_label: std::sync::Arc<str>,
}

/// Lambda's limit on the `X-Amz-Client-Context` header (base64 text).
pub const CLIENT_CONTEXT_LIMIT: usize = 3583;

pub(super) fn validate_target(settings: &TargetSettings) -> Result<InvokeTarget, ConfigError> {
    let function = function(settings)?;
    let qualifier = qualifier(&function, settings)?;
    let region = region(&function, settings)?;
    let endpoint = match &settings.endpoint {
        Some(endpoint) => validate_host(endpoint, "endpoint", "lambda.us-east-1.amazonaws.com")?,
        None => default_endpoint(&region),
    };
    let invocation_type = match &settings.invocation_type {
        None => InvocationType::RequestResponse,
        Some(value) => InvocationType::parse(value).ok_or_else(|| {
            ConfigError::new(
                "invocation_type",
                format!("'{value}' must be one of RequestResponse, Event, DryRun"),
            )
        })?,
    };
    let payload = match &settings.payload {
        None => PayloadFormat::Passthrough,
        Some(value) => PayloadFormat::parse(value).ok_or_else(|| {
            ConfigError::new(
                "payload",
                format!("'{value}' must be one of passthrough, apigw_v2, apigw_v1, alb, envoy"),
            )
        })?,
    };
    let (function_error_status, timeout_ms) = status_and_timeout(settings)?;
    if let Some(cluster) = &settings.cluster {
        if cluster.is_empty() || cluster.len() > 255 || cluster.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "cluster",
                "must be a non-empty Envoy cluster name",
            ));
        }
    }
    let stream_path = stream_path(settings, invocation_type, &function, qualifier.as_deref())?;
    let invoke_path = invoke_path(&function.identifier, qualifier.as_deref());
    let custom_parameters = settings.custom_parameters.clone().unwrap_or_default();
    let metric_label = crate::metrics::function_label(&function, qualifier.as_deref()).into();
    Ok(InvokeTarget {
        metric_label,
        event: event_settings(settings, &function, &custom_parameters),
        qualifier,
        region,
        endpoint,
        invocation_type,
        payload,
        function_error_status,
        timeout: Duration::from_millis(timeout_ms),
        cluster: settings.cluster.clone(),
        invoke_path,
        custom_parameters,
        log_tail: log_tail(settings)?,
        expose_log_result: settings.expose_log_result.unwrap_or(false),
        client_context: client_context(settings)?,
        stream_path,
        credentials_profile: Some(ProfileId::DEFAULT),
        function,
    })
}

fn function(settings: &TargetSettings) -> Result<FunctionId, ConfigError> {
    let text = settings
        .function
        .as_deref()
        .ok_or_else(|| ConfigError::new("function", "is required (name, partial ARN or ARN)"))?;
    FunctionId::parse(text).map_err(|e| ConfigError::new("function", format!("'{text}' {e}")))
}

/// The configured qualifier, or the one the function's ARN carries; never both, unequal.
fn qualifier(
    function: &FunctionId,
    settings: &TargetSettings,
) -> Result<Option<String>, ConfigError> {
    match (&function.qualifier, &settings.qualifier) {
        (Some(in_arn), Some(configured)) if in_arn != configured => Err(ConfigError::new(
            "qualifier",
            format!("'{configured}' conflicts with the qualifier '{in_arn}' in function"),
        )),
        (_, Some(configured)) if !is_valid_qualifier(configured) => Err(ConfigError::new(
            "qualifier",
            format!("'{configured}' must be $LATEST or 1-128 characters of [A-Za-z0-9_-]"),
        )),
        (_, Some(configured)) => Ok(Some(configured.clone())),
        (in_arn, None) => Ok(in_arn.clone()),
    }
}

/// The configured region, or the one the function's ARN carries; never both, unequal.
fn region(function: &FunctionId, settings: &TargetSettings) -> Result<String, ConfigError> {
    let region = match (&function.region, &settings.region) {
        (Some(in_arn), Some(configured)) if in_arn != configured => {
            return Err(ConfigError::new(
                "region",
                format!("'{configured}' conflicts with the region '{in_arn}' in the function ARN"),
            ))
        }
        (_, Some(configured)) => configured.clone(),
        (Some(in_arn), None) => in_arn.clone(),
        (None, None) => {
            return Err(ConfigError::new(
                "region",
                "is required unless function is a full ARN",
            ))
        }
    };
    if !is_valid_region(&region) {
        return Err(ConfigError::new(
            "region",
            format!("'{region}' is not an AWS region name (like us-east-1)"),
        ));
    }
    Ok(region)
}

fn status_and_timeout(settings: &TargetSettings) -> Result<(u16, u64), ConfigError> {
    let status = settings
        .function_error_status
        .unwrap_or(DEFAULT_FUNCTION_ERROR_STATUS);
    if !(200..=599).contains(&status) {
        return Err(ConfigError::new(
            "function_error_status",
            format!("{status} must be an HTTP status between 200 and 599"),
        ));
    }
    let timeout_ms = settings.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ConfigError::new(
            "timeout_ms",
            format!("{timeout_ms} must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    Ok((status, timeout_ms))
}

fn log_tail(settings: &TargetSettings) -> Result<bool, ConfigError> {
    match settings.log_type.as_deref() {
        None | Some("None") => Ok(false),
        Some("Tail") => Ok(true),
        Some(other) => Err(ConfigError::new(
            "log_type",
            format!("'{other}' must be one of None, Tail"),
        )),
    }
}

/// `X-Amz-Client-Context`: the object as base64 JSON, within Lambda's limit.
fn client_context(settings: &TargetSettings) -> Result<Option<String>, ConfigError> {
    match &settings.client_context {
        None => Ok(None),
        Some(value) if value.is_object() => {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(super::json_text(value));
            if encoded.len() > CLIENT_CONTEXT_LIMIT {
                return Err(ConfigError::new(
                    "client_context",
                    format!(
                        "is {} bytes as base64; Lambda accepts at most {CLIENT_CONTEXT_LIMIT}",
                        encoded.len()
                    ),
                ));
            }
            Ok(Some(encoded))
        }
        Some(_) => Err(ConfigError::new("client_context", "must be a JSON object")),
    }
}

/// `invoke_mode: response_stream`: the `InvokeWithResponseStream` path.
fn stream_path(
    settings: &TargetSettings,
    invocation_type: InvocationType,
    function: &FunctionId,
    qualifier: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    match settings.invoke_mode.as_deref() {
        None | Some("buffered") => Ok(None),
        Some("response_stream") if invocation_type != InvocationType::RequestResponse => {
            Err(ConfigError::new(
                "invoke_mode",
                format!(
                    "response_stream needs invocation_type RequestResponse, not {}",
                    invocation_type.header_value()
                ),
            ))
        }
        Some("response_stream") => Ok(Some(function_path(
            STREAM_PATH_PREFIX,
            &function.identifier,
            STREAM_PATH_SUFFIX,
            qualifier,
        ))),
        Some(other) => Err(ConfigError::new(
            "invoke_mode",
            format!("'{other}' must be one of buffered, response_stream"),
        )),
    }
}

fn event_settings(
    settings: &TargetSettings,
    function: &FunctionId,
    custom_parameters: &StringMap,
) -> EventSettings {
    EventSettings {
        stage: settings
            .stage
            .clone()
            .unwrap_or_else(|| crate::event::DEFAULT_STAGE.to_string()),
        route_key: settings.route_key.clone(),
        api_id: settings.api_id.clone().unwrap_or_default(),
        account_id: function_account(&function.identifier),
        resource: settings.resource.clone(),
        stage_variables: custom_parameters.clone(),
        target_group_arn: settings.target_group_arn.clone().unwrap_or_default(),
        alb_multi_value_headers: settings.multi_value_headers.unwrap_or(false),
    }
}

/// The account id of a full or partial ARN; empty for a plain name.
pub(super) fn function_account(identifier: &str) -> String {
    let parts: Vec<&str> = identifier.split(':').collect();
    match parts.as_slice() {
        ["arn", _, _, _, account, ..] => account.to_string(),
        [account, "function", ..] => account.to_string(),
        _ => String::new(),
    }
}

pub(super) fn default_endpoint(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("lambda.{region}.amazonaws.com.cn")
    } else {
        format!("lambda.{region}.amazonaws.com")
    }
}

pub(super) const STREAM_PATH_PREFIX: &str = "/2021-11-15/functions/";
pub(super) const STREAM_PATH_SUFFIX: &str = "/response-streaming-invocations";

pub(super) fn invoke_path(identifier: &str, qualifier: Option<&str>) -> String {
    function_path(
        "/2015-03-31/functions/",
        identifier,
        "/invocations",
        qualifier,
    )
}

/// Percent-encodes the function identifier as the AWS SDKs do (`:` becomes `%3A`).
pub(super) fn function_path(
    prefix: &str,
    identifier: &str,
    suffix: &str,
    qualifier: Option<&str>,
) -> String {
    let mut path = String::from(prefix);
    for c in identifier.chars() {
        match c {
            ':' => path.push_str("%3A"),
            c => path.push(c),
        }
    }
    path.push_str(suffix);
    if let Some(qualifier) = qualifier {
        path.push_str("?Qualifier=");
        path.push_str(&qualifier.replace('$', "%24"));
    }
    path
}
