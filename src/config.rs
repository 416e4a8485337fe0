//! Plugin configuration: parsed once at configure time into an immutable, validated
//! [`FilterConfig`]; per-route overrides (route metadata) are validated by the same code.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::arn::{is_valid_qualifier, is_valid_region, FunctionId};
use crate::credentials::{
    Credentials, ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN,
};
use crate::event::{EventFormat, EventSettings};
use crate::secret::Secret;
use crate::sts::{validate_assume_role, AssumeRoleSettings, RawAssumeRole, ASSUME_ROLE_KEYS};

/// Lambda's synchronous request payload limit (6 MB).
pub const SYNC_PAYLOAD_LIMIT: u64 = 6 * 1024 * 1024;
/// Lambda's asynchronous (Event) request payload limit (1 MB).
pub const ASYNC_PAYLOAD_LIMIT: u64 = 1024 * 1024;

const DEFAULT_TIMEOUT_MS: u64 = 15_000;
const MAX_TIMEOUT_MS: u64 = 900_000;
const DEFAULT_FUNCTION_ERROR_STATUS: u16 = 502;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field '{}': {}", self.field, self.message)
    }
}

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

/// The keys a route may override, all optional. Also the non-credential part of the
/// plugin configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetSettings {
    pub function: Option<String>,
    pub qualifier: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub invocation_type: Option<String>,
    pub payload: Option<String>,
    pub function_error_status: Option<u16>,
    pub timeout_ms: Option<u64>,
    pub cluster: Option<String>,
    pub stage: Option<String>,
    pub route_key: Option<String>,
    pub api_id: Option<String>,
    pub resource: Option<String>,
    pub target_group_arn: Option<String>,
    pub multi_value_headers: Option<bool>,
    pub custom_parameters: Option<BTreeMap<String, String>>,
    pub log_type: Option<String>,
    pub expose_log_result: Option<bool>,
    pub client_context: Option<Value>,
}

/// The keys of the plugin configuration, in the order serde listed them in errors.
const CONFIG_KEYS: &[&str] = &[
    "function",
    "qualifier",
    "region",
    "endpoint",
    "invocation_type",
    "payload",
    "function_error_status",
    "timeout_ms",
    "cluster",
    "stage",
    "route_key",
    "api_id",
    "resource",
    "target_group_arn",
    "multi_value_headers",
    "custom_parameters",
    "log_type",
    "expose_log_result",
    "client_context",
    "credentials",
];

const CREDENTIALS_KEYS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "session_token",
    "assume_role",
];

/// `credentials` as written in the plugin configuration.
struct RawCredentials {
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    session_token: Option<Secret>,
    assume_role: Option<RawAssumeRole>,
}

/// Typed reads of one JSON object's members that track the field path, in place of serde
/// derives (whose per-struct code is large in the .wasm). As with serde's
/// `deny_unknown_fields`, keys not in `known` are errors, `null` counts as absent, and of
/// several bad members the one whose key sorts first is reported.
pub(crate) struct Fields {
    /// The path of this object with a trailing `.`, or empty at the top level.
    prefix: String,
    map: Map<String, Value>,
    known: &'static [&'static str],
    /// The first error by key order: (key, error).
    error: Option<(String, ConfigError)>,
}

impl Fields {
    /// `expecting` describes the object in type errors (serde's wording, e.g.
    /// `struct RawCredentials`); `path` is its field path, empty at the top level.
    pub(crate) fn new(
        path: &str,
        value: Value,
        expecting: &str,
        known: &'static [&'static str],
    ) -> Result<Fields, ConfigError> {
        match value {
            Value::Object(map) => Ok(Fields {
                prefix: if path.is_empty() {
                    String::new()
                } else {
                    format!("{path}.")
                },
                map,
                known,
                error: None,
            }),
            other => Err(ConfigError::new(
                if path.is_empty() {
                    "configuration"
                } else {
                    path
                },
                invalid_type(&other, expecting),
            )),
        }
    }

    fn fail(&mut self, key: &str, error: ConfigError) {
        if self
            .error
            .as_ref()
            .is_none_or(|(first, _)| key < first.as_str())
        {
            self.error = Some((key.to_string(), error));
        }
    }

    fn fail_at(&mut self, key: &str, message: String) {
        let error = ConfigError::new(&format!("{}{key}", self.prefix), message);
        self.fail(key, error);
    }

    /// The member `key`, absent when missing or `null`.
    pub(crate) fn value(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&mut self, key: &str) -> Option<String> {
        match self.value(key)? {
            Value::String(s) => Some(s),
            other => {
                self.fail_at(key, invalid_type(&other, "a string"));
                None
            }
        }
    }

    pub(crate) fn secret(&mut self, key: &str) -> Option<Secret> {
        self.string(key).map(Secret::new)
    }

    pub(crate) fn bool(&mut self, key: &str) -> Option<bool> {
        match self.value(key)? {
            Value::Bool(b) => Some(b),
            other => {
                self.fail_at(key, invalid_type(&other, "a boolean"));
                None
            }
        }
    }

    /// An unsigned integer of at most `max`; `ty` names the type in errors (`u64`, `u16`).
    fn unsigned(&mut self, key: &str, max: u64, ty: &str) -> Option<u64> {
        let value = self.value(key)?;
        let message = match &value {
            Value::Number(n) => match n.as_u64() {
                Some(n) if n <= max => return Some(n),
                _ if n.is_f64() => invalid_type(&value, ty),
                _ => format!("invalid value: integer `{n}`, expected {ty}"),
            },
            _ => invalid_type(&value, ty),
        };
        self.fail_at(key, message);
        None
    }

    pub(crate) fn u64(&mut self, key: &str) -> Option<u64> {
        self.unsigned(key, u64::MAX, "u64")
    }

    pub(crate) fn u16(&mut self, key: &str) -> Option<u16> {
        self.unsigned(key, u64::from(u16::MAX), "u16")
            .and_then(|n| u16::try_from(n).ok())
    }

    /// An object of string values.
    pub(crate) fn string_map(&mut self, key: &str) -> Option<BTreeMap<String, String>> {
        match self.value(key)? {
            Value::Object(map) => {
                let mut strings = BTreeMap::new();
                for (name, value) in map {
                    match value {
                        Value::String(s) => {
                            strings.insert(name, s);
                        }
                        other => {
                            let message = invalid_type(&other, "a string");
                            let error =
                                ConfigError::new(&format!("{}{key}.{name}", self.prefix), message);
                            self.fail(key, error);
                            return None;
                        }
                    }
                }
                Some(strings)
            }
            other => {
                self.fail_at(key, invalid_type(&other, "a map"));
                None
            }
        }
    }

    /// A nested object, read by `read`; its errors count as this member's.
    pub(crate) fn object<T>(
        &mut self,
        key: &str,
        expecting: &str,
        known: &'static [&'static str],
        read: impl FnOnce(&mut Fields) -> T,
    ) -> Option<T> {
        let value = self.value(key)?;
        let path = format!("{}{key}", self.prefix);
        let result = Fields::new(&path, value, expecting, known).and_then(|mut fields| {
            let read = read(&mut fields);
            fields.finish().map(|()| read)
        });
        match result {
            Ok(read) => Some(read),
            Err(error) => {
                self.fail(key, error);
                None
            }
        }
    }

    /// The first error, including keys that are not in `known`.
    pub(crate) fn finish(mut self) -> Result<(), ConfigError> {
        let map = std::mem::take(&mut self.map);
        if let Some(key) = map.keys().find(|key| !self.known.contains(&key.as_str())) {
            let mut message = format!("unknown field `{key}`, expected one of ");
            for (i, known) in self.known.iter().enumerate() {
                if i > 0 {
                    message.push_str(", ");
                }
                message.push('`');
                message.push_str(known);
                message.push('`');
            }
            self.fail_at(key, message);
        }
        match self.error {
            Some((_, error)) => Err(error),
            None => Ok(()),
        }
    }
}

fn json_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// serde_json's wording for a value of the wrong type.
fn invalid_type(value: &Value, expected: &str) -> String {
    let unexpected = match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean `{b}`"),
        // Written as JSON (not with Display/Debug) to keep float and Unicode-escape
        // formatting code out of the .wasm.
        Value::Number(n) if n.is_f64() => format!("floating point `{}`", json_text(value)),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(_) => format!("string {}", json_text(value)),
        Value::Array(_) => "sequence".to_string(),
        Value::Object(_) => "map".to_string(),
    };
    format!("invalid type: {unexpected}, expected {expected}")
}

/// Where the Invoke's signing credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// Long-lived (or externally rotated) keys from the configuration or the VM environment.
    Static(Credentials),
    /// Temporary credentials from STS AssumeRole, fetched with the `source` credentials.
    AssumeRole {
        source: Credentials,
        settings: AssumeRoleSettings,
    },
}

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
    pub custom_parameters: BTreeMap<String, String>,
    /// Ask for the last 4 KB of the function's log (`X-Amz-Log-Type: Tail`).
    pub log_tail: bool,
    /// Pass Lambda's `x-amz-log-result` to the client (off by default: logs may be sensitive).
    pub expose_log_result: bool,
    /// `X-Amz-Client-Context`: the configured object as base64 JSON.
    pub client_context: Option<String>,
}

/// Lambda's limit on the `X-Amz-Client-Context` header (base64 text).
pub const CLIENT_CONTEXT_LIMIT: usize = 3583;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterConfig {
    pub settings: TargetSettings,
    pub target: InvokeTarget,
    pub credentials: CredentialSource,
}

/// A route's overrides from its metadata, before validation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteOverride {
    pub settings: TargetSettings,
    /// `disabled: true` lets the request through untouched (a non-Lambda route).
    pub disabled: bool,
}

impl RouteOverride {
    pub fn is_empty(&self) -> bool {
        !self.disabled && self.settings == TargetSettings::default()
    }
}

impl FilterConfig {
    /// Parses and validates the plugin configuration. `env` reads the VM environment.
    pub fn load(json: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let json = if json.iter().all(u8::is_ascii_whitespace) {
            b"{}".as_slice()
        } else {
            json
        };
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
            ConfigError::new(
                "configuration",
                format!("is not JSON: {}", without_position(&e.to_string())),
            )
        })?;
        if !value.is_object() {
            return Err(ConfigError::new("configuration", "must be a JSON object"));
        }
        let mut fields = Fields::new("", value, "struct RawConfig", CONFIG_KEYS)?;
        let settings = TargetSettings {
            function: fields.string("function"),
            qualifier: fields.string("qualifier"),
            region: fields.string("region"),
            endpoint: fields.string("endpoint"),
            invocation_type: fields.string("invocation_type"),
            payload: fields.string("payload"),
            function_error_status: fields.u16("function_error_status"),
            timeout_ms: fields.u64("timeout_ms"),
            cluster: fields.string("cluster"),
            stage: fields.string("stage"),
            route_key: fields.string("route_key"),
            api_id: fields.string("api_id"),
            resource: fields.string("resource"),
            target_group_arn: fields.string("target_group_arn"),
            multi_value_headers: fields.bool("multi_value_headers"),
            custom_parameters: fields.string_map("custom_parameters"),
            log_type: fields.string("log_type"),
            expose_log_result: fields.bool("expose_log_result"),
            client_context: fields.value("client_context"),
        };
        let credentials = fields.object(
            "credentials",
            "struct RawCredentials",
            CREDENTIALS_KEYS,
            |f| RawCredentials {
                access_key_id: f.string("access_key_id"),
                secret_access_key: f.secret("secret_access_key"),
                session_token: f.secret("session_token"),
                assume_role: f.object(
                    "assume_role",
                    "struct RawAssumeRole",
                    ASSUME_ROLE_KEYS,
                    RawAssumeRole::read,
                ),
            },
        );
        fields.finish()?;
        let target = validate_target(&settings)?;
        let credentials = load_credentials(credentials, &target.region, env)?;
        Ok(FilterConfig {
            settings,
            target,
            credentials,
        })
    }

    /// The target of a route: the plugin's settings with the route's overrides applied.
    pub fn resolve_route(&self, route: &RouteOverride) -> Result<InvokeTarget, ConfigError> {
        if route.settings == TargetSettings::default() {
            return Ok(self.target.clone());
        }
        validate_target(&merge(&self.settings, &route.settings))
    }
}

/// Route keys replace plugin keys. A route that names another function does not inherit the
/// plugin's qualifier, nor its region when the new function is an ARN that carries one.
fn merge(plugin: &TargetSettings, route: &TargetSettings) -> TargetSettings {
    let mut merged = plugin.clone();
    if let Some(function) = &route.function {
        merged.function = Some(function.clone());
        merged.qualifier = None;
        let carries_region = FunctionId::parse(function)
            .map(|f| f.region.is_some())
            .unwrap_or(false);
        if carries_region {
            merged.region = None;
        }
    }
    macro_rules! take {
        ($($field:ident),*) => {$(
            if route.$field.is_some() {
                merged.$field = route.$field.clone();
            }
        )*};
    }
    take!(
        qualifier,
        region,
        endpoint,
        invocation_type,
        payload,
        function_error_status,
        timeout_ms,
        cluster,
        stage,
        route_key,
        api_id,
        resource,
        target_group_arn,
        multi_value_headers,
        custom_parameters,
        log_type,
        expose_log_result,
        client_context
    );
    merged
}

fn without_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn validate_target(settings: &TargetSettings) -> Result<InvokeTarget, ConfigError> {
    let function_text = settings
        .function
        .as_deref()
        .ok_or_else(|| ConfigError::new("function", "is required (name, partial ARN or ARN)"))?;
    let function = FunctionId::parse(function_text)
        .map_err(|e| ConfigError::new("function", format!("'{function_text}' {e}")))?;

    let qualifier = match (&function.qualifier, &settings.qualifier) {
        (Some(in_arn), Some(configured)) if in_arn != configured => {
            return Err(ConfigError::new(
                "qualifier",
                format!("'{configured}' conflicts with the qualifier '{in_arn}' in function"),
            ))
        }
        (_, Some(configured)) => {
            if !is_valid_qualifier(configured) {
                return Err(ConfigError::new(
                    "qualifier",
                    format!("'{configured}' must be $LATEST or 1-128 characters of [A-Za-z0-9_-]"),
                ));
            }
            Some(configured.clone())
        }
        (in_arn, None) => in_arn.clone(),
    };

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

    let function_error_status = settings
        .function_error_status
        .unwrap_or(DEFAULT_FUNCTION_ERROR_STATUS);
    if !(200..=599).contains(&function_error_status) {
        return Err(ConfigError::new(
            "function_error_status",
            format!("{function_error_status} must be an HTTP status between 200 and 599"),
        ));
    }

    let timeout_ms = settings.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ConfigError::new(
            "timeout_ms",
            format!("{timeout_ms} must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }

    if let Some(cluster) = &settings.cluster {
        if cluster.is_empty() || cluster.len() > 255 || cluster.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "cluster",
                "must be a non-empty Envoy cluster name",
            ));
        }
    }

    let log_tail = match settings.log_type.as_deref() {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(ConfigError::new(
                "log_type",
                format!("'{other}' must be one of None, Tail"),
            ))
        }
    };
    let client_context = match &settings.client_context {
        None => None,
        Some(value) if value.is_object() => {
            use base64::Engine as _;
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(value.to_string().as_bytes());
            if encoded.len() > CLIENT_CONTEXT_LIMIT {
                return Err(ConfigError::new(
                    "client_context",
                    format!(
                        "is {} bytes as base64; Lambda accepts at most {CLIENT_CONTEXT_LIMIT}",
                        encoded.len()
                    ),
                ));
            }
            Some(encoded)
        }
        Some(_) => {
            return Err(ConfigError::new("client_context", "must be a JSON object"));
        }
    };
    let invoke_path = invoke_path(&function.identifier, qualifier.as_deref());
    let custom_parameters = settings.custom_parameters.clone().unwrap_or_default();
    let event = EventSettings {
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
    };
    Ok(InvokeTarget {
        function,
        qualifier,
        region,
        endpoint,
        invocation_type,
        payload,
        function_error_status,
        timeout: Duration::from_millis(timeout_ms),
        cluster: settings.cluster.clone(),
        invoke_path,
        event,
        custom_parameters,
        log_tail,
        expose_log_result: settings.expose_log_result.unwrap_or(false),
        client_context,
    })
}

/// The account id of a full or partial ARN; empty for a plain name.
fn function_account(identifier: &str) -> String {
    let parts: Vec<&str> = identifier.split(':').collect();
    match parts.as_slice() {
        ["arn", _, _, _, account, ..] => account.to_string(),
        [account, "function", ..] => account.to_string(),
        _ => String::new(),
    }
}

fn default_endpoint(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("lambda.{region}.amazonaws.com.cn")
    } else {
        format!("lambda.{region}.amazonaws.com")
    }
}

/// A DNS name with an optional port: the Host header, not a URL. `field` names the key in
/// errors and `example` shows a good value.
pub(crate) fn validate_host(
    endpoint: &str,
    field: &str,
    example: &str,
) -> Result<String, ConfigError> {
    let bad = |why: String| ConfigError::new(field, format!("'{endpoint}' {why}"));
    let (host, port) = match endpoint.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (endpoint, None),
    };
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad(format!(
                "has a bad port; give a host name like {example}"
            )));
        }
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(bad(format!(
            "must be a host name like {example} (no scheme or path)"
        )));
    }
    Ok(endpoint.to_ascii_lowercase())
}

/// Percent-encodes the function identifier as the AWS SDKs do (`:` becomes `%3A`).
fn invoke_path(identifier: &str, qualifier: Option<&str>) -> String {
    let mut path = String::from("/2015-03-31/functions/");
    for c in identifier.chars() {
        match c {
            ':' => path.push_str("%3A"),
            c => path.push(c),
        }
    }
    path.push_str("/invocations");
    if let Some(qualifier) = qualifier {
        path.push_str("?Qualifier=");
        path.push_str(&qualifier.replace('$', "%24"));
    }
    path
}

fn load_credentials(
    raw: Option<RawCredentials>,
    region: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CredentialSource, ConfigError> {
    let (keys, assume_role) = match raw {
        Some(raw) => {
            let inline = raw.access_key_id.is_some()
                || raw.secret_access_key.is_some()
                || raw.session_token.is_some();
            let keys =
                inline.then_some((raw.access_key_id, raw.secret_access_key, raw.session_token));
            (keys, raw.assume_role)
        }
        None => (None, None),
    };
    let credentials = static_credentials(keys, env)?;
    match assume_role {
        None => Ok(CredentialSource::Static(credentials)),
        Some(raw) => Ok(CredentialSource::AssumeRole {
            settings: validate_assume_role(raw, region, env)?,
            source: credentials,
        }),
    }
}

/// Whether `value` can be sent (and signed) as an HTTP header value: no control characters
/// but tab.
pub(crate) fn is_header_value(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

type InlineKeys = (Option<String>, Option<Secret>, Option<Secret>);

/// Inline keys when given, else the VM environment.
fn static_credentials(
    inline: Option<InlineKeys>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let from_config = inline.is_some();
    let (access_key_id, secret_access_key, session_token) = match inline {
        Some(keys) => keys,
        None => (
            non_empty(env(ENV_ACCESS_KEY_ID)),
            non_empty(env(ENV_SECRET_ACCESS_KEY)).map(Secret::new),
            non_empty(env(ENV_SESSION_TOKEN)).map(Secret::new),
        ),
    };
    let missing = || {
        ConfigError::new(
            "credentials",
            "no credentials: set credentials.access_key_id and credentials.secret_access_key, or \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in vm_config.environment_variables",
        )
    };
    let access_key_id = access_key_id.ok_or_else(missing)?;
    let secret_access_key = secret_access_key.ok_or_else(missing)?;
    let key_id_ok = (16..=128).contains(&access_key_id.len())
        && access_key_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !key_id_ok {
        // The key id is not secret; printing it helps find the wrong one.
        return Err(ConfigError::new(
            if from_config {
                "credentials.access_key_id"
            } else {
                ENV_ACCESS_KEY_ID
            },
            format!("'{access_key_id}' is not an AWS access key id (16-128 letters and digits)"),
        ));
    }
    if secret_access_key.is_empty() {
        return Err(ConfigError::new(
            "credentials.secret_access_key",
            "is empty",
        ));
    }
    if session_token
        .as_ref()
        .is_some_and(|t| !is_header_value(t.expose()))
    {
        // The token is secret: the message names the problem, not the value.
        return Err(ConfigError::new(
            if from_config {
                "credentials.session_token"
            } else {
                ENV_SESSION_TOKEN
            },
            "has control characters (it is sent as the x-amz-security-token header)",
        ));
    }
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token: session_token.filter(|t| !t.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two key lists are kept apart (different orders and extras: `credentials` only in
    /// the plugin config, `disabled` only per route); every target key must be in both.
    #[test]
    fn every_plugin_target_key_can_be_overridden_per_route() {
        for key in CONFIG_KEYS.iter().filter(|k| **k != "credentials") {
            assert!(
                crate::route::ROUTE_KEYS.contains(key),
                "{key} missing from ROUTE_KEYS"
            );
        }
        for key in crate::route::ROUTE_KEYS
            .iter()
            .filter(|k| **k != "disabled")
        {
            assert!(CONFIG_KEYS.contains(key), "{key} missing from CONFIG_KEYS");
        }
    }

    const CREDS: &str =
        r#""credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"s3cr3t"}"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(json: &str) -> Result<FilterConfig, ConfigError> {
        FilterConfig::load(json.as_bytes(), &no_env)
    }

    fn load_with_creds(fields: &str) -> Result<FilterConfig, ConfigError> {
        load(&format!("{{{fields},{CREDS}}}"))
    }

    fn field_of(json: &str) -> String {
        load_with_creds(json).unwrap_err().field
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = load_with_creds(r#""function":"my-fn","region":"us-east-1""#).unwrap();
        let t = &config.target;
        assert_eq!(t.endpoint, "lambda.us-east-1.amazonaws.com");
        assert_eq!(t.invocation_type, InvocationType::RequestResponse);
        assert_eq!(t.payload, PayloadFormat::Passthrough);
        assert_eq!(t.function_error_status, 502);
        assert_eq!(t.timeout, Duration::from_millis(15_000));
        assert_eq!(t.invoke_path, "/2015-03-31/functions/my-fn/invocations");
        assert_eq!(t.cluster, None);
    }

    #[test]
    fn arn_gives_region_and_qualifier() {
        let config = load_with_creds(
            r#""function":"arn:aws:lambda:eu-west-1:123456789012:function:f:live""#,
        )
        .unwrap();
        assert_eq!(config.target.region, "eu-west-1");
        assert_eq!(config.target.endpoint, "lambda.eu-west-1.amazonaws.com");
        assert_eq!(
            config.target.invoke_path,
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Af/invocations?Qualifier=live"
        );
    }

    #[test]
    fn latest_qualifier_is_encoded() {
        let config =
            load_with_creds(r#""function":"f","qualifier":"$LATEST","region":"us-east-1""#)
                .unwrap();
        assert!(config.target.invoke_path.ends_with("?Qualifier=%24LATEST"));
    }

    #[test]
    fn china_region_default_endpoint() {
        let config = load_with_creds(r#""function":"f","region":"cn-north-1""#).unwrap();
        assert_eq!(config.target.endpoint, "lambda.cn-north-1.amazonaws.com.cn");
    }

    #[test]
    fn vpc_endpoint_is_accepted() {
        let config = load_with_creds(
            r#""function":"f","region":"us-east-1","endpoint":"vpce-0a1b2c3d4e5f-abcdefgh.lambda.us-east-1.vpce.amazonaws.com""#,
        )
        .unwrap();
        assert_eq!(
            config.target.endpoint,
            "vpce-0a1b2c3d4e5f-abcdefgh.lambda.us-east-1.vpce.amazonaws.com"
        );
    }

    #[test]
    fn each_error_names_its_field() {
        let cases = [
            (
                r#""function":"f","region":"us-east-1","colour":"red""#,
                "colour",
            ),
            (r#""region":"us-east-1""#, "function"),
            (r#""function":"arn:aws:lambda:bad""#, "function"),
            (r#""function":"f""#, "region"),
            (r#""function":"f","region":"moon""#, "region"),
            (
                r#""function":"arn:aws:lambda:eu-west-1:123456789012:function:f","region":"us-east-1""#,
                "region",
            ),
            (
                r#""function":"arn:aws:lambda:eu-west-1:123456789012:function:f:v1","qualifier":"v2""#,
                "qualifier",
            ),
            (
                r#""function":"f","region":"us-east-1","qualifier":"a/b""#,
                "qualifier",
            ),
            (
                r#""function":"f","region":"us-east-1","invocation_type":"Sync""#,
                "invocation_type",
            ),
            (
                r#""function":"f","region":"us-east-1","payload":"xml""#,
                "payload",
            ),
            (
                r#""function":"f","region":"us-east-1","function_error_status":99"#,
                "function_error_status",
            ),
            (
                r#""function":"f","region":"us-east-1","function_error_status":"x""#,
                "function_error_status",
            ),
            (
                r#""function":"f","region":"us-east-1","timeout_ms":0"#,
                "timeout_ms",
            ),
            (
                r#""function":"f","region":"us-east-1","timeout_ms":-5"#,
                "timeout_ms",
            ),
            (
                r#""function":"f","region":"us-east-1","timeout_ms":900001"#,
                "timeout_ms",
            ),
            (
                r#""function":"f","region":"us-east-1","endpoint":"https://x.com/""#,
                "endpoint",
            ),
            (
                r#""function":"f","region":"us-east-1","endpoint":"host:0""#,
                "endpoint",
            ),
            (
                r#""function":"f","region":"us-east-1","cluster":"""#,
                "cluster",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(field_of(json), field, "{json}");
        }
    }

    #[test]
    fn credentials_errors_name_their_field() {
        let err = load(r#"{"function":"f","region":"us-east-1"}"#).unwrap_err();
        assert_eq!(err.field, "credentials");
        let err = load(
            r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret":"x"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "credentials.secret");
        let err = load(
            r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"short","secret_access_key":"x"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "credentials.access_key_id");
        let err = load(
            r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":""}}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "credentials.secret_access_key");
    }

    #[test]
    fn errors_never_print_the_secret() {
        let err = load(
            r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"bad","secret_access_key":"TOPSECRETVALUE"}}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("TOPSECRETVALUE"));
        let err = load(
            r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":5}}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "credentials.secret_access_key");
    }

    #[test]
    fn not_json_is_rejected() {
        assert_eq!(load("function=f").unwrap_err().field, "configuration");
        assert_eq!(load("[1]").unwrap_err().field, "configuration");
    }

    #[test]
    fn credentials_from_environment() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDFROMENVIRON1".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
            "AWS_SESSION_TOKEN" => Some("envtoken".to_string()),
            _ => None,
        };
        let config = FilterConfig::load(br#"{"function":"f","region":"us-east-1"}"#, &env).unwrap();
        let CredentialSource::Static(credentials) = config.credentials else {
            panic!("expected static credentials");
        };
        assert_eq!(credentials.access_key_id, "AKIDFROMENVIRON1");
        assert_eq!(credentials.secret_access_key.expose(), "envsecret");
        assert_eq!(
            credentials.session_token.as_ref().map(|t| t.expose()),
            Some("envtoken")
        );
    }

    #[test]
    fn assume_role_with_source_keys_from_the_environment() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDFROMENVIRON1".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
            "LAMBDA_EXTERNAL_ID" => Some("ext-id-from-env".to_string()),
            _ => None,
        };
        let config = FilterConfig::load(
            br#"{"function":"f","region":"eu-west-1","credentials":{"assume_role":{
                "role_arn":"arn:aws:iam::123456789012:role/invoker",
                "external_id_env":"LAMBDA_EXTERNAL_ID","sts_cluster":"sts"}}}"#,
            &env,
        )
        .unwrap();
        let CredentialSource::AssumeRole { source, settings } = &config.credentials else {
            panic!("expected assume_role");
        };
        assert_eq!(source.access_key_id, "AKIDFROMENVIRON1");
        assert_eq!(settings.sts_endpoint, "sts.eu-west-1.amazonaws.com");
        assert_eq!(
            settings.external_id.as_ref().map(|e| e.expose()),
            Some("ext-id-from-env")
        );
        assert!(!format!("{config:?}").contains("ext-id-from-env"));
        assert!(!format!("{config:?}").contains("envsecret"));
    }

    #[test]
    fn assume_role_errors_name_their_field() {
        let err = load(
            r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x","assume_role":{"role_arn":"arn:aws:iam::123456789012:role/r"}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "credentials.assume_role.sts_cluster");
        let err = load(
            r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x","assume_role":{"role_arn":"arn:aws:iam::123456789012:role/r","sts_cluster":"sts","duration":5}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "credentials.assume_role.duration");
    }

    fn route(settings: TargetSettings) -> RouteOverride {
        RouteOverride {
            settings,
            disabled: false,
        }
    }

    #[test]
    fn route_override_replaces_function_and_drops_plugin_qualifier() {
        let config =
            load_with_creds(r#""function":"f","qualifier":"live","region":"us-east-1""#).unwrap();
        let target = config
            .resolve_route(&route(TargetSettings {
                function: Some("other".into()),
                ..Default::default()
            }))
            .unwrap();
        assert_eq!(
            target.invoke_path,
            "/2015-03-31/functions/other/invocations"
        );
        assert_eq!(target.region, "us-east-1");
    }

    #[test]
    fn route_arn_in_another_region_replaces_plugin_region() {
        let config = load_with_creds(r#""function":"f","region":"us-east-1""#).unwrap();
        let target = config
            .resolve_route(&route(TargetSettings {
                function: Some("arn:aws:lambda:eu-west-1:123456789012:function:g".into()),
                timeout_ms: Some(1000),
                invocation_type: Some("Event".into()),
                ..Default::default()
            }))
            .unwrap();
        assert_eq!(target.region, "eu-west-1");
        assert_eq!(target.timeout, Duration::from_millis(1000));
        assert_eq!(target.invocation_type, InvocationType::Event);
    }

    #[test]
    fn invalid_route_override_names_the_field() {
        let config = load_with_creds(r#""function":"f","region":"us-east-1""#).unwrap();
        let err = config
            .resolve_route(&route(TargetSettings {
                invocation_type: Some("Bogus".into()),
                ..Default::default()
            }))
            .unwrap_err();
        assert_eq!(err.field, "invocation_type");
    }

    #[test]
    fn empty_route_override_is_the_plugin_target() {
        let config = load_with_creds(r#""function":"f","region":"us-east-1""#).unwrap();
        assert_eq!(
            config.resolve_route(&RouteOverride::default()).unwrap(),
            config.target
        );
    }

    #[test]
    fn client_context_is_base64_json_and_size_checked() {
        let config = load_with_creds(
            r#""function":"f","region":"us-east-1","log_type":"Tail","client_context":{"custom":{"app":"shop"}}"#,
        )
        .unwrap();
        assert!(config.target.log_tail);
        assert_eq!(
            config.target.client_context.as_deref(),
            Some("eyJjdXN0b20iOnsiYXBwIjoic2hvcCJ9fQ==")
        );
        let big = format!(
            r#""function":"f","region":"us-east-1","client_context":{{"custom":{{"k":"{}"}}}}"#,
            "x".repeat(3000)
        );
        assert_eq!(load_with_creds(&big).unwrap_err().field, "client_context");
    }

    #[test]
    fn fuzz_regression_session_token_with_control_characters() {
        // Accepted, then every request failed to sign ("failed to create canonical request").
        let err = load(
            "{\"function\":\"1\",\"region\":\"c-r-1\",\"credentials\":{\"access_key_id\":\"AKIDEXAMPLE12344\",\"secret_access_key\":\"3\",\"session_token\":\"\u{7f}\"}}",
        )
        .unwrap_err();
        assert_eq!(err.field, "credentials.session_token");
        assert!(
            load_with_creds_token("tokUUU\r\nx").is_err_and(|e| !e.to_string().contains("tokUUU"))
        );
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDFROMENVIRON1".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
            "AWS_SESSION_TOKEN" => Some("envtoken\n".to_string()),
            _ => None,
        };
        let err =
            FilterConfig::load(br#"{"function":"f","region":"us-east-1"}"#, &env).unwrap_err();
        assert_eq!(err.field, "AWS_SESSION_TOKEN");
        // Tabs and non-ASCII text sign.
        assert!(load_with_creds_token("a\tb\u{e9}").is_ok());
    }

    fn load_with_creds_token(token: &str) -> Result<FilterConfig, ConfigError> {
        let json = serde_json::json!({
            "function": "f",
            "region": "us-east-1",
            "credentials": {
                "access_key_id": "AKIDEXAMPLE12345",
                "secret_access_key": "s",
                "session_token": token
            }
        });
        load(&json.to_string())
    }
}
