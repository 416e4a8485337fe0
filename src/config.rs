//! Plugin configuration: parsed once at configure time into an immutable, validated
//! [`FilterConfig`]; per-route overrides (route metadata) are validated by the same code.

use crate::http::is_header_value;
use crate::string_map::StringMap;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::aws::arn::{is_valid_qualifier, is_valid_region, FunctionId};
use crate::credentials::container::{endpoint_from_env, ENV_FULL_URI, ENV_RELATIVE_URI};
use crate::credentials::imds::{
    ImdsSettings, DEFAULT_ENDPOINT as IMDS_ENDPOINT, DEFAULT_TOKEN_TTL_SECONDS,
    MAX_TOKEN_TTL_SECONDS,
};
use crate::credentials::{
    Credentials, ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN,
};
use crate::event::{EventFormat, EventSettings};
use crate::secret::Secret;

pub use crate::credentials::source::{
    AmbientProvider, CredentialSource, ProfileId, DEFAULT_PROFILE,
};
use crate::credentials::sts::{validate_assume_role, RawAssumeRole, ASSUME_ROLE_KEYS};

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
    pub custom_parameters: Option<StringMap>,
    pub log_type: Option<String>,
    pub expose_log_result: Option<bool>,
    pub client_context: Option<Value>,
    pub invoke_mode: Option<String>,
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
    "invoke_mode",
    "credentials",
    "credential_profiles",
    "split_placement",
];

const CREDENTIALS_KEYS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "session_token",
    "assume_role",
    "source",
    "imds_cluster",
    "imds_endpoint",
    "imds_token_ttl_seconds",
    "container_cluster",
    "timeout_ms",
    "max_wait_ms",
];

/// `credentials` as written in the plugin configuration.
#[derive(Default)]
struct RawCredentials {
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    session_token: Option<Secret>,
    assume_role: Option<RawAssumeRole>,
    source: Option<String>,
    imds_cluster: Option<String>,
    imds_endpoint: Option<String>,
    imds_token_ttl_seconds: Option<u64>,
    container_cluster: Option<String>,
    timeout_ms: Option<u64>,
    max_wait_ms: Option<u64>,
}

impl RawCredentials {
    fn read(f: &mut Fields) -> RawCredentials {
        RawCredentials {
            access_key_id: f.string("access_key_id"),
            secret_access_key: f.secret("secret_access_key"),
            session_token: f.secret("session_token"),
            assume_role: f.object(
                "assume_role",
                "struct RawAssumeRole",
                ASSUME_ROLE_KEYS,
                RawAssumeRole::read,
            ),
            source: f.string("source"),
            imds_cluster: f.string("imds_cluster"),
            imds_endpoint: f.string("imds_endpoint"),
            imds_token_ttl_seconds: f.u64("imds_token_ttl_seconds"),
            container_cluster: f.string("container_cluster"),
            timeout_ms: f.u64("timeout_ms"),
            max_wait_ms: f.u64("max_wait_ms"),
        }
    }
}

/// A profile name: it appears in route metadata, logs and metric names (so no dots).
pub fn is_profile_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `credential_profiles`: each member validated as `credentials` is, in name order.
fn read_profiles(
    value: Value,
    region: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(CredentialProfile, Option<String>)>, ConfigError> {
    const FIELD: &str = "credential_profiles";
    let Value::Object(members) = value else {
        return Err(ConfigError::new(
            FIELD,
            format!(
                "{}: a map of profile name to credentials object",
                invalid_type(&value, "a map")
            ),
        ));
    };
    if members.len() > MAX_CREDENTIAL_PROFILES {
        return Err(ConfigError::new(
            FIELD,
            format!(
                "has {} profiles, more than {MAX_CREDENTIAL_PROFILES}",
                members.len()
            ),
        ));
    }
    let mut profiles = Vec::with_capacity(members.len());
    for (name, value) in members {
        if !is_profile_name(&name) {
            let shown = if name.len() <= 64 && !name.chars().any(char::is_control) {
                format!("'{name}'")
            } else {
                "a name".to_string()
            };
            return Err(ConfigError::new(
                FIELD,
                format!("{shown} is not a profile name (1-64 characters of [A-Za-z0-9_-])"),
            ));
        }
        if name == DEFAULT_PROFILE {
            return Err(ConfigError::new(
                &format!("{FIELD}.{name}"),
                "'default' is the name of the top-level credentials: give them as \
                 credentials, or choose another name",
            ));
        }
        let path = format!("{FIELD}.{name}");
        let mut fields = Fields::new(&path, value, "struct RawCredentials", CREDENTIALS_KEYS)?;
        let raw = RawCredentials::read(&mut fields);
        fields.finish()?;
        // Validated as `credentials` is; the errors then name the profile's fields.
        let loaded = load_credentials(Some(raw), region, env).map_err(|e| within(e, &path))?;
        profiles.push((
            CredentialProfile {
                name,
                source: loaded.source,
                origin: loaded.origin,
            },
            loaded.warning.map(|w| within_text(&w, &path)),
        ));
    }
    Ok(profiles)
}

/// An error of `credentials` as the same error of the profile at `path`.
fn within(error: ConfigError, path: &str) -> ConfigError {
    let field = if error.field == "credentials" {
        path.to_string()
    } else {
        within_text(&error.field, path)
    };
    ConfigError {
        field,
        message: within_text(&error.message, path),
    }
}

fn within_text(text: &str, path: &str) -> String {
    text.replace("credentials.", &format!("{path}."))
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
        self.map
            .get_mut(key)
            .map(Value::take)
            .filter(|v| !v.is_null())
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
    pub(crate) fn string_map(&mut self, key: &str) -> Option<StringMap> {
        match self.value(key)? {
            Value::Object(map) => {
                let mut strings = StringMap::new();
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

pub(crate) fn json_text(value: &Value) -> String {
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
}

/// Lambda's limit on the `X-Amz-Client-Context` header (base64 text).
pub const CLIENT_CONTEXT_LIMIT: usize = 3583;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterConfig {
    pub settings: TargetSettings,
    pub target: InvokeTarget,
    /// Credential profiles by [`ProfileId`]: first the top-level `credentials` (`None` when
    /// only `credential_profiles` are given and the VM environment has no keys), then
    /// `credential_profiles` in name order.
    pub profiles: Vec<Option<CredentialProfile>>,
    /// Said once in the log at start (e.g. a key id that does not look like AWS's).
    pub warnings: Vec<String>,
    /// The filter is in both chains: in the HCM it takes only the requests that cannot be
    /// rewritten in place, and leaves the rest to its twin in the router's upstream filters.
    pub split_placement: bool,
}

/// One validated credentials profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialProfile {
    /// `default` for the top-level `credentials`.
    pub name: String,
    pub source: CredentialSource,
    /// Where the credentials come from, for the one log line at start (no secret):
    /// e.g. `chain: container (AWS_CONTAINER_CREDENTIALS_FULL_URI http://…)`.
    pub origin: String,
}

/// The most `credential_profiles` one configuration may have.
pub const MAX_CREDENTIAL_PROFILES: usize = 256;

/// A route's overrides from its metadata, before validation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteOverride {
    pub settings: TargetSettings,
    /// The credentials profile the route names (`credentials: NAME`).
    pub credentials: Option<String>,
    /// `disabled: true` lets the request through untouched (a non-Lambda route).
    pub disabled: bool,
}

impl RouteOverride {
    pub fn is_empty(&self) -> bool {
        !self.disabled && self.settings == TargetSettings::default() && self.credentials.is_none()
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
            invoke_mode: fields.string("invoke_mode"),
        };
        let credentials = fields.object(
            "credentials",
            "struct RawCredentials",
            CREDENTIALS_KEYS,
            RawCredentials::read,
        );
        let named_profiles = fields.value("credential_profiles");
        let split_placement = fields.bool("split_placement").unwrap_or(false);
        fields.finish()?;
        let mut target = validate_target(&settings)?;
        let named = named_profiles
            .map(|value| read_profiles(value, &target.region, env))
            .transpose()?
            .unwrap_or_default();
        let mut warnings = Vec::new();
        let no_default = credentials.is_none()
            && !named.is_empty()
            && [ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY]
                .iter()
                .all(|name| env(name).is_none_or(|v| v.is_empty()));
        let default = if no_default {
            target.credentials_profile = None;
            None
        } else {
            let loaded = load_credentials(credentials, &target.region, env)?;
            warnings.extend(loaded.warning);
            Some(CredentialProfile {
                name: DEFAULT_PROFILE.to_string(),
                source: loaded.source,
                origin: loaded.origin,
            })
        };
        let mut profiles = vec![default];
        for (profile, warning) in named {
            warnings.extend(warning);
            profiles.push(Some(profile));
        }
        Ok(FilterConfig {
            settings,
            target,
            profiles,
            warnings,
            split_placement,
        })
    }

    /// The profile a route names: `default` is the top-level `credentials`.
    pub fn profile_id(&self, name: &str) -> Option<ProfileId> {
        self.profiles
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.name == name))
            .map(ProfileId)
    }

    pub fn profile(&self, id: ProfileId) -> Option<&CredentialProfile> {
        self.profiles.get(id.0).and_then(Option::as_ref)
    }

    /// The names of the profiles routes may name, for error messages.
    fn profile_names(&self) -> String {
        let names: Vec<&str> = self
            .profiles
            .iter()
            .flatten()
            .map(|p| p.name.as_str())
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    }

    /// The profile of a route: the one it names, else the top-level credentials.
    fn route_profile(&self, route: &RouteOverride) -> Result<ProfileId, ConfigError> {
        match &route.credentials {
            Some(name) => self.profile_id(name).ok_or_else(|| {
                let shown = if is_profile_name(name) {
                    format!("names the credentials profile '{name}', which")
                } else {
                    // Not a name: it may be a secret someone put in route metadata.
                    "is not a credentials profile name (route metadata selects a profile by                      name; keys belong in the plugin configuration's credential_profiles), and                      it"
                        .to_string()
                };
                ConfigError::new(
                    "credentials",
                    format!(
                        "{shown} the plugin configuration does not have (profiles: {})",
                        self.profile_names()
                    ),
                )
            }),
            None => self.target.credentials_profile.ok_or_else(|| {
                ConfigError::new(
                    "credentials",
                    format!(
                        "is required on this route: the plugin configuration has no top-level                          credentials, so each route names one of its credential_profiles ({})",
                        self.profile_names()
                    ),
                )
            }),
        }
    }

    /// The target of a route: the plugin's settings with the route's overrides applied.
    pub fn resolve_route(&self, route: &RouteOverride) -> Result<InvokeTarget, ConfigError> {
        let profile = self.route_profile(route)?;
        let mut target = if route.settings == TargetSettings::default() {
            self.target.clone()
        } else {
            validate_target(&merge(&self.settings, &route.settings))?
        };
        target.credentials_profile = Some(profile);
        Ok(target)
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
        client_context,
        invoke_mode
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
    let stream_path = match settings.invoke_mode.as_deref() {
        None | Some("buffered") => None,
        Some("response_stream") => {
            if invocation_type != InvocationType::RequestResponse {
                return Err(ConfigError::new(
                    "invoke_mode",
                    format!(
                        "response_stream needs invocation_type RequestResponse, not {}",
                        invocation_type.header_value()
                    ),
                ));
            }
            Some(function_path(
                STREAM_PATH_PREFIX,
                &function.identifier,
                STREAM_PATH_SUFFIX,
                qualifier.as_deref(),
            ))
        }
        Some(other) => {
            return Err(ConfigError::new(
                "invoke_mode",
                format!("'{other}' must be one of buffered, response_stream"),
            ))
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
        stream_path,
        credentials_profile: Some(ProfileId::DEFAULT),
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

const STREAM_PATH_PREFIX: &str = "/2021-11-15/functions/";
const STREAM_PATH_SUFFIX: &str = "/response-streaming-invocations";

fn invoke_path(identifier: &str, qualifier: Option<&str>) -> String {
    function_path(
        "/2015-03-31/functions/",
        identifier,
        "/invocations",
        qualifier,
    )
}

/// Percent-encodes the function identifier as the AWS SDKs do (`:` becomes `%3A`).
fn function_path(prefix: &str, identifier: &str, suffix: &str, qualifier: Option<&str>) -> String {
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

/// The source names `credentials.source` accepts.
const SOURCES: &str = "imds, container, chain";
const DEFAULT_AMBIENT_TIMEOUT_MS: u64 = 1000;
const DEFAULT_AMBIENT_MAX_WAIT_MS: u64 = 3000;
const MAX_AMBIENT_MS: u64 = 60_000;

/// The base credentials `credentials.source` (or its absence) chose, before `assume_role`.
enum Base {
    Static(Credentials),
    Ambient(AmbientProvider),
}

/// Validated credentials, where they come from, and what to warn about once.
struct LoadedCredentials {
    source: CredentialSource,
    origin: String,
    warning: Option<String>,
}

fn load_credentials(
    raw: Option<RawCredentials>,
    region: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedCredentials, ConfigError> {
    let mut raw = raw.unwrap_or_default();
    let inline = raw.access_key_id.is_some()
        || raw.secret_access_key.is_some()
        || raw.session_token.is_some();
    let keys = || {
        inline.then(|| {
            (
                raw.access_key_id.clone(),
                raw.secret_access_key.clone(),
                raw.session_token.clone(),
            )
        })
    };
    let source = raw.source.take();
    // Keys that only some sources use are errors elsewhere.
    let uses_imds = matches!(source.as_deref(), Some("imds" | "chain"));
    let uses_container = matches!(source.as_deref(), Some("container" | "chain"));
    let ambient = matches!(source.as_deref(), Some("imds" | "container" | "chain"));
    let unused = [
        ("imds_cluster", raw.imds_cluster.is_some() && !uses_imds),
        ("imds_endpoint", raw.imds_endpoint.is_some() && !uses_imds),
        (
            "imds_token_ttl_seconds",
            raw.imds_token_ttl_seconds.is_some() && !uses_imds,
        ),
        (
            "container_cluster",
            raw.container_cluster.is_some() && !uses_container,
        ),
        ("timeout_ms", raw.timeout_ms.is_some() && !ambient),
        ("max_wait_ms", raw.max_wait_ms.is_some() && !ambient),
    ];
    if let Some((key, _)) = unused.iter().find(|(_, unused)| *unused) {
        return Err(ConfigError::new(
            &format!("credentials.{key}"),
            match source.as_deref() {
                None => {
                    "applies only with credentials.source (imds, container or chain)".to_string()
                }
                Some(source) => format!("does not apply to credentials.source '{source}'"),
            },
        ));
    }
    let timeout = Duration::from_millis(ambient_ms(
        raw.timeout_ms,
        DEFAULT_AMBIENT_TIMEOUT_MS,
        "timeout_ms",
    )?);
    let max_wait = Duration::from_millis(ambient_ms(
        raw.max_wait_ms,
        DEFAULT_AMBIENT_MAX_WAIT_MS,
        "max_wait_ms",
    )?);
    let (base, origin) = match source.as_deref() {
        None => {
            let from_config = inline;
            let credentials = static_credentials(keys(), env)?;
            let origin = static_origin(from_config, &credentials);
            (Base::Static(credentials), origin)
        }
        Some(named @ ("imds" | "container")) => {
            if inline {
                return Err(ConfigError::new(
                    "credentials.access_key_id",
                    format!(
                        "inline keys conflict with credentials.source '{named}': remove one or \
                         the other"
                    ),
                ));
            }
            let provider = if named == "imds" {
                AmbientProvider::Imds(imds_settings(&raw, timeout)?)
            } else {
                container_provider(&raw, timeout, env, "'container'")?
            };
            let origin = ambient_origin(&provider);
            (Base::Ambient(provider), origin)
        }
        Some("chain") => chain(&raw, inline, keys(), timeout, env)?,
        Some(other) => {
            return Err(ConfigError::new(
                "credentials.source",
                format!("'{other}' must be one of {SOURCES}"),
            ))
        }
    };
    let assume_role = raw
        .assume_role
        .take()
        .map(|raw| validate_assume_role(raw, region, env))
        .transpose()?;
    let origin = match &assume_role {
        Some(settings) => format!("{origin}, then AssumeRole {}", settings.role_arn),
        None => origin,
    };
    let source = match (base, assume_role) {
        (Base::Static(credentials), None) => CredentialSource::Static(credentials),
        (Base::Static(source), Some(settings)) => CredentialSource::AssumeRole { source, settings },
        (Base::Ambient(provider), assume_role) => CredentialSource::Ambient {
            max_wait: assume_role.as_ref().map_or(max_wait, |s| s.max_wait),
            provider,
            assume_role,
        },
    };
    let warning = match &source {
        CredentialSource::Static(keys) | CredentialSource::AssumeRole { source: keys, .. } => {
            unusual_key_id(keys, inline)
        }
        CredentialSource::Ambient { .. } => None,
    };
    Ok(LoadedCredentials {
        source,
        origin,
        warning,
    })
}

/// A warning for a key id that AWS would not have issued (fine for a local stand-in such
/// as LocalStack, whose default keys are `test`/`test`).
fn unusual_key_id(keys: &Credentials, inline: bool) -> Option<String> {
    let id = &keys.access_key_id;
    let aws_like = (16..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    (!aws_like).then(|| {
        format!(
            "{} '{id}' does not look like an AWS access key id (16-128 upper-case letters and \
             digits); it is used as given (fine for a local stand-in such as LocalStack)",
            if inline {
                "credentials.access_key_id"
            } else {
                ENV_ACCESS_KEY_ID
            }
        )
    })
}

fn ambient_ms(value: Option<u64>, default: u64, name: &str) -> Result<u64, ConfigError> {
    let ms = value.unwrap_or(default);
    if (1..=MAX_AMBIENT_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(ConfigError::new(
            &format!("credentials.{name}"),
            format!("{ms} must be between 1 and {MAX_AMBIENT_MS}"),
        ))
    }
}

fn static_origin(from_config: bool, credentials: &Credentials) -> String {
    if from_config {
        format!("inline keys {}", credentials.access_key_id)
    } else {
        format!(
            "environment {ENV_ACCESS_KEY_ID} {}",
            credentials.access_key_id
        )
    }
}

fn ambient_origin(provider: &AmbientProvider) -> String {
    match provider {
        AmbientProvider::Imds(s) => format!(
            "imds (IMDSv2 through cluster '{}', Host {})",
            s.cluster, s.endpoint
        ),
        AmbientProvider::Container(s) => {
            format!("container ({} through cluster '{}')", s.uri, s.cluster)
        }
    }
}

/// The AWS SDKs' order: inline keys, the environment's keys, the container endpoint (when
/// the environment names one), the instance role.
fn chain(
    raw: &RawCredentials,
    inline: bool,
    keys: Option<InlineKeys>,
    timeout: Duration,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Base, String), ConfigError> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    let chosen = |base: Base, origin: String| Ok((base, format!("chain: {origin}")));
    if inline || set(ENV_ACCESS_KEY_ID) || set(ENV_SECRET_ACCESS_KEY) {
        let credentials = static_credentials(keys, env)?;
        let origin = static_origin(inline, &credentials);
        return chosen(Base::Static(credentials), origin);
    }
    if set(ENV_RELATIVE_URI) || set(ENV_FULL_URI) {
        let provider = container_provider(raw, timeout, env, "'chain' (it chose container)")?;
        let origin = ambient_origin(&provider);
        return chosen(Base::Ambient(provider), origin);
    }
    let provider = AmbientProvider::Imds(imds_settings(raw, timeout).map_err(|e| {
        if e.field == "credentials.imds_cluster" && raw.imds_cluster.is_none() {
            ConfigError::new(
                "credentials.imds_cluster",
                "is required: credentials.source 'chain' found no keys and no container \
                 endpoint in the environment, so it uses the instance role (IMDS)",
            )
        } else {
            e
        }
    })?);
    let origin = ambient_origin(&provider);
    chosen(Base::Ambient(provider), origin)
}

fn cluster_name(value: Option<&String>, field: &str, what: &str) -> Result<String, ConfigError> {
    let cluster = value.ok_or_else(|| {
        ConfigError::new(
            field,
            format!("is required: the Envoy cluster that reaches {what}"),
        )
    })?;
    if cluster.is_empty() || cluster.len() > 255 || cluster.chars().any(char::is_control) {
        return Err(ConfigError::new(
            field,
            "must be a non-empty Envoy cluster name",
        ));
    }
    Ok(cluster.clone())
}

fn imds_settings(raw: &RawCredentials, timeout: Duration) -> Result<ImdsSettings, ConfigError> {
    let cluster = cluster_name(
        raw.imds_cluster.as_ref(),
        "credentials.imds_cluster",
        "the instance metadata service (169.254.169.254:80)",
    )?;
    let endpoint = match &raw.imds_endpoint {
        Some(endpoint) => validate_host(endpoint, "credentials.imds_endpoint", IMDS_ENDPOINT)?,
        None => IMDS_ENDPOINT.to_string(),
    };
    let ttl = raw
        .imds_token_ttl_seconds
        .unwrap_or(u64::from(DEFAULT_TOKEN_TTL_SECONDS));
    let token_ttl_seconds = u32::try_from(ttl)
        .ok()
        .filter(|t| (1..=MAX_TOKEN_TTL_SECONDS).contains(t))
        .ok_or_else(|| {
            ConfigError::new(
                "credentials.imds_token_ttl_seconds",
                format!("{ttl} must be between 1 and {MAX_TOKEN_TTL_SECONDS}"),
            )
        })?;
    Ok(ImdsSettings {
        cluster,
        endpoint,
        token_ttl_seconds,
        timeout,
    })
}

fn container_provider(
    raw: &RawCredentials,
    timeout: Duration,
    env: &dyn Fn(&str) -> Option<String>,
    source: &str,
) -> Result<AmbientProvider, ConfigError> {
    let endpoint = endpoint_from_env(env)?.ok_or_else(|| {
        ConfigError::new(
            "credentials.source",
            format!(
                "{source} needs {ENV_RELATIVE_URI} or {ENV_FULL_URI} in \
                 vm_config.environment_variables, and neither is set"
            ),
        )
    })?;
    let cluster = cluster_name(
        raw.container_cluster.as_ref(),
        "credentials.container_cluster",
        &format!("the container credentials endpoint ({})", endpoint.uri),
    )?;
    Ok(AmbientProvider::Container(endpoint.with(cluster, timeout)))
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
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in vm_config.environment_variables, or \
             choose credentials.source (imds, container, chain)",
        )
    };
    let access_key_id = access_key_id.ok_or_else(missing)?;
    let secret_access_key = secret_access_key.ok_or_else(missing)?;
    // Any key id the signature can carry: the AWS SDKs accept any string, and local
    // stand-ins use their own (LocalStack: `test`). It goes into the Authorization header's
    // `Credential=<id>/<date>/…`, so no `/`, `,`, space or control character.
    let key_id_ok = (1..=128).contains(&access_key_id.len())
        && access_key_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b',');
    if !key_id_ok {
        let shown = if access_key_id.len() <= 128 && is_header_value(&access_key_id) {
            format!("'{access_key_id}'")
        } else {
            "the value".to_string()
        };
        // The key id is not secret; printing it helps find the wrong one.
        return Err(ConfigError::new(
            if from_config {
                "credentials.access_key_id"
            } else {
                ENV_ACCESS_KEY_ID
            },
            format!(
                "{shown} is not an access key id (1-128 printable ASCII characters, no '/', ',' \
                 or space)"
            ),
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
impl FilterConfig {
    /// The top-level credentials (tests only).
    pub fn default_source(&self) -> &CredentialSource {
        &self.profiles[0].as_ref().unwrap().source
    }

    pub fn default_origin(&self) -> &str {
        &self.profiles[0].as_ref().unwrap().origin
    }
}

#[cfg(test)]
#[path = "config/profile_tests.rs"]
mod profile_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// The two key lists are kept apart (different orders and extras: `credentials` and
    /// `split_placement` only in the plugin config, `disabled` only per route); every target
    /// key must be in both.
    #[test]
    fn every_plugin_target_key_can_be_overridden_per_route() {
        for key in CONFIG_KEYS
            .iter()
            .filter(|k| !["credentials", "credential_profiles", "split_placement"].contains(*k))
        {
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
    fn response_stream_precomputes_the_streaming_path() {
        let buffered = load_with_creds(r#""function":"f","region":"us-east-1""#).unwrap();
        assert_eq!(buffered.target.stream_path, None);
        let explicit =
            load_with_creds(r#""function":"f","region":"us-east-1","invoke_mode":"buffered""#)
                .unwrap();
        assert_eq!(explicit.target.stream_path, None);
        let streaming = load_with_creds(
            r#""function":"arn:aws:lambda:us-east-1:123456789012:function:f:live","invoke_mode":"response_stream","log_type":"Tail""#,
        )
        .unwrap();
        assert_eq!(
            streaming.target.stream_path.as_deref(),
            Some("/2021-11-15/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/response-streaming-invocations?Qualifier=live")
        );
        assert_eq!(
            streaming.target.invoke_path,
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations?Qualifier=live"
        );
        // Per route, like every other key.
        let target = buffered
            .resolve_route(&route(TargetSettings {
                invoke_mode: Some("response_stream".into()),
                ..TargetSettings::default()
            }))
            .unwrap();
        assert_eq!(
            target.stream_path.as_deref(),
            Some("/2021-11-15/functions/f/response-streaming-invocations")
        );
        let err = buffered
            .resolve_route(&route(TargetSettings {
                invoke_mode: Some("chunked".into()),
                ..TargetSettings::default()
            }))
            .unwrap_err();
        assert_eq!(err.field, "invoke_mode");
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
                r#""function":"f","region":"us-east-1","invoke_mode":"streaming""#,
                "invoke_mode",
            ),
            (
                r#""function":"f","region":"us-east-1","invoke_mode":"response_stream","invocation_type":"Event""#,
                "invoke_mode",
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
            r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKID/short","secret_access_key":"x"}}"#,
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
            r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"bad key","secret_access_key":"TOPSECRETVALUE"}}"#,
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
        let CredentialSource::Static(credentials) = config.default_source().clone() else {
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
        let CredentialSource::AssumeRole { source, settings } = config.default_source() else {
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
            credentials: None,
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

    fn env_from(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn load_env(
        credentials: &str,
        vars: &'static [(&'static str, &'static str)],
    ) -> Result<FilterConfig, ConfigError> {
        let json =
            format!(r#"{{"function":"f","region":"us-east-1","credentials":{credentials}}}"#);
        FilterConfig::load(json.as_bytes(), &env_from(vars))
    }

    const POD_IDENTITY: &[(&str, &str)] = &[
        (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "pod-identity-token-value",
        ),
    ];

    #[test]
    fn imds_source_with_defaults_and_limits() {
        let config = load_env(r#"{"source":"imds","imds_cluster":"imds"}"#, &[]).unwrap();
        let CredentialSource::Ambient {
            provider: AmbientProvider::Imds(imds),
            assume_role: None,
            max_wait,
        } = config.default_source()
        else {
            panic!("expected imds: {:?}", config.default_source());
        };
        assert_eq!(imds.cluster, "imds");
        assert_eq!(imds.endpoint, "169.254.169.254");
        assert_eq!(imds.token_ttl_seconds, 21_600);
        assert_eq!(imds.timeout, Duration::from_millis(1000));
        assert_eq!(*max_wait, Duration::from_millis(3000));
        assert!(
            config.default_origin().starts_with("imds"),
            "{}",
            config.default_origin()
        );
        let cases = [
            (r#"{"source":"imds"}"#, "credentials.imds_cluster"),
            (
                r#"{"source":"imds","imds_cluster":""}"#,
                "credentials.imds_cluster",
            ),
            (
                r#"{"source":"imds","imds_cluster":"i","imds_token_ttl_seconds":21601}"#,
                "credentials.imds_token_ttl_seconds",
            ),
            (
                r#"{"source":"imds","imds_cluster":"i","imds_token_ttl_seconds":0}"#,
                "credentials.imds_token_ttl_seconds",
            ),
            (
                r#"{"source":"imds","imds_cluster":"i","imds_endpoint":"http://x/"}"#,
                "credentials.imds_endpoint",
            ),
            (
                r#"{"source":"imds","imds_cluster":"i","timeout_ms":0}"#,
                "credentials.timeout_ms",
            ),
            (
                r#"{"source":"imds","imds_cluster":"i","max_wait_ms":60001}"#,
                "credentials.max_wait_ms",
            ),
            (
                r#"{"source":"imds","imds_cluster":"i","container_cluster":"c"}"#,
                "credentials.container_cluster",
            ),
            (
                r#"{"source":"imds","imds_cluster":"i","access_key_id":"AKIDEXAMPLE12345","secret_access_key":"s"}"#,
                "credentials.access_key_id",
            ),
            (r#"{"source":"ec2"}"#, "credentials.source"),
            (r#"{"source":5}"#, "credentials.source"),
            (
                r#"{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"s","imds_cluster":"i"}"#,
                "credentials.imds_cluster",
            ),
            (
                r#"{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"s","timeout_ms":5}"#,
                "credentials.timeout_ms",
            ),
        ];
        for (credentials, field) in cases {
            assert_eq!(
                load_env(credentials, &[]).unwrap_err().field,
                field,
                "{credentials}"
            );
        }
    }

    #[test]
    fn container_source_from_the_environment() {
        let config = load_env(
            r#"{"source":"container","container_cluster":"pod_identity","timeout_ms":500}"#,
            POD_IDENTITY,
        )
        .unwrap();
        let CredentialSource::Ambient {
            provider: AmbientProvider::Container(container),
            ..
        } = config.default_source()
        else {
            panic!("expected container");
        };
        assert_eq!(container.cluster, "pod_identity");
        assert_eq!(container.authority, "169.254.170.23");
        assert_eq!(container.timeout, Duration::from_millis(500));
        assert!(!format!("{config:?}").contains("pod-identity-token-value"));
        assert!(!config.default_origin().contains("pod-identity-token-value"));
        let err = load_env(r#"{"source":"container","container_cluster":"c"}"#, &[]).unwrap_err();
        assert_eq!(err.field, "credentials.source");
        assert!(err.message.contains(ENV_FULL_URI), "{err}");
        let err = load_env(r#"{"source":"container"}"#, POD_IDENTITY).unwrap_err();
        assert_eq!(err.field, "credentials.container_cluster");
        let err = load_env(
            r#"{"source":"container","container_cluster":"c","imds_cluster":"i"}"#,
            POD_IDENTITY,
        )
        .unwrap_err();
        assert_eq!(err.field, "credentials.imds_cluster");
    }

    #[test]
    fn chain_takes_the_first_source_that_is_there() {
        let both = r#"{"source":"chain","imds_cluster":"imds","container_cluster":"container"}"#;
        // Inline keys first.
        let config = load_env(
            r#"{"source":"chain","access_key_id":"AKIDINLINE000001","secret_access_key":"s","imds_cluster":"imds"}"#,
            &[("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON1"), ("AWS_SECRET_ACCESS_KEY", "e")],
        )
        .unwrap();
        assert!(
            matches!(config.default_source(), CredentialSource::Static(c) if c.access_key_id == "AKIDINLINE000001")
        );
        assert_eq!(
            config.default_origin(),
            "chain: inline keys AKIDINLINE000001"
        );
        // Then the environment's keys, before a container endpoint.
        const ENV_AND_CONTAINER: &[(&str, &str)] = &[
            ("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON1"),
            ("AWS_SECRET_ACCESS_KEY", "e"),
            (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
        ];
        let config = load_env(both, ENV_AND_CONTAINER).unwrap();
        assert!(
            matches!(config.default_source(), CredentialSource::Static(c) if c.access_key_id == "AKIDFROMENVIRON1")
        );
        assert_eq!(
            config.default_origin(),
            "chain: environment AWS_ACCESS_KEY_ID AKIDFROMENVIRON1"
        );
        // Half the environment's keys is an error, as in the SDKs.
        let err = load_env(both, &[("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON1")]).unwrap_err();
        assert_eq!(err.field, "credentials");
        // Then the container endpoint.
        let config = load_env(both, POD_IDENTITY).unwrap();
        assert!(matches!(
            config.default_source(),
            CredentialSource::Ambient {
                provider: AmbientProvider::Container(_),
                ..
            }
        ));
        assert!(
            config
                .default_origin()
                .starts_with("chain: container (http://169.254.170.23/v1/credentials"),
            "{}",
            config.default_origin()
        );
        // Then the instance role.
        let config = load_env(both, &[]).unwrap();
        assert!(matches!(
            config.default_source(),
            CredentialSource::Ambient {
                provider: AmbientProvider::Imds(_),
                ..
            }
        ));
        assert!(config.default_origin().starts_with("chain: imds"));
        // A source the chain chose must have its cluster.
        let err =
            load_env(r#"{"source":"chain","imds_cluster":"imds"}"#, POD_IDENTITY).unwrap_err();
        assert_eq!(err.field, "credentials.container_cluster");
        let err = load_env(r#"{"source":"chain","container_cluster":"c"}"#, &[]).unwrap_err();
        assert_eq!(err.field, "credentials.imds_cluster");
        assert!(err.message.contains("chain"), "{err}");
    }

    #[test]
    fn any_source_can_chain_into_assume_role() {
        let config = load_env(
            r#"{"source":"imds","imds_cluster":"imds","max_wait_ms":100,"assume_role":{
                "role_arn":"arn:aws:iam::444455556666:role/invoker","external_id":"ext-id-4711",
                "sts_cluster":"sts","max_wait_ms":2500}}"#,
            &[],
        )
        .unwrap();
        let CredentialSource::Ambient {
            provider: AmbientProvider::Imds(_),
            assume_role: Some(settings),
            max_wait,
        } = config.default_source()
        else {
            panic!("expected imds + assume_role");
        };
        assert_eq!(settings.role_arn, "arn:aws:iam::444455556666:role/invoker");
        assert_eq!(*max_wait, Duration::from_millis(2500));
        assert!(config
            .default_origin()
            .ends_with("then AssumeRole arn:aws:iam::444455556666:role/invoker"));
        assert!(!format!("{config:?}").contains("ext-id-4711"));
        let config = load_env(
            r#"{"source":"container","container_cluster":"c","assume_role":{
                "role_arn":"arn:aws:iam::444455556666:role/invoker","sts_cluster":"sts"}}"#,
            POD_IDENTITY,
        )
        .unwrap();
        assert!(matches!(
            config.default_source(),
            CredentialSource::Ambient {
                provider: AmbientProvider::Container(_),
                assume_role: Some(_),
                ..
            }
        ));
        let err = load_env(
            r#"{"source":"container","container_cluster":"c","assume_role":{"role_arn":"x","sts_cluster":"sts"}}"#,
            POD_IDENTITY,
        )
        .unwrap_err();
        assert_eq!(err.field, "credentials.assume_role.role_arn");
    }

    #[test]
    fn ambient_shared_data_keys_locate_the_endpoint_without_secrets() {
        let config = load_env(
            r#"{"source":"container","container_cluster":"c"}"#,
            POD_IDENTITY,
        )
        .unwrap();
        let CredentialSource::Ambient { provider, .. } = config.default_source() else {
            panic!("expected container");
        };
        let AmbientProvider::Container(settings) = provider else {
            panic!("expected container");
        };
        let key = crate::credentials::identity::container_key(settings);
        assert!(key.starts_with("proxy-wasm-lambda/credentials/v2/container/"));
        assert!(!key.contains("169.254.170.23"));
        assert_eq!(provider.name(), "container");
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
