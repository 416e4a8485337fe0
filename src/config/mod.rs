//! Plugin configuration: parsed once at configure time into an immutable, validated
//! [`FilterConfig`]; per-route overrides (route metadata) are validated by the same code.

use crate::http::is_header_value;
use crate::string_map::StringMap;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::aws::arn::{is_valid_qualifier, is_valid_region, FunctionId};
use crate::credentials::container::{ENV_FULL_URI, ENV_RELATIVE_URI};
use crate::credentials::imds::{
    ImdsSettings, DEFAULT_ENDPOINT as IMDS_ENDPOINT, DEFAULT_TOKEN_TTL_SECONDS,
    MAX_TOKEN_TTL_SECONDS,
};
use crate::credentials::{
    Credentials, ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN,
};
use crate::event::{EventFormat, EventSettings};
use crate::secret::Secret;

mod assume_role;
mod container;
mod credentials;
mod fields;
mod keys;
mod target;
mod web_identity;

pub(crate) use assume_role::*;
pub(crate) use container::*;
pub(crate) use credentials::*;
pub(crate) use fields::*;
pub use keys::*;
pub use target::*;
use web_identity::*;

pub(crate) use crate::credentials::source::{
    AmbientProvider, CredentialSource, ProfileId, DEFAULT_PROFILE,
};

/// The keys of the plugin configuration, in the order serde listed them in errors.

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
    /// `invoke_histograms`: also record `invoke.latency_ms` and `invoke.payload_bytes`, which
    /// repeat the Lambda cluster's own `upstream_rq_time` and request size histograms and
    /// cost a host call per request each (off by default; per-function latency stays on).
    pub invoke_histograms: bool,
}

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
        let settings = TargetSettings::read(&mut fields);
        let credentials = fields.object(
            "credentials",
            "struct RawCredentials",
            CREDENTIALS_KEYS,
            RawCredentials::read,
        );
        let named_profiles = fields.value("credential_profiles");
        let split_placement = fields.bool("split_placement").unwrap_or(false);
        let invoke_histograms = fields.bool("invoke_histograms").unwrap_or(false);
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
            invoke_histograms,
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
                let message = if is_profile_name(name) {
                    format!(
                        "names the credentials profile '{name}', which the plugin configuration \
                         does not have (profiles: {})",
                        self.profile_names()
                    )
                } else {
                    // Not a name: it may be a secret someone put in route metadata, so it is
                    // never shown.
                    format!(
                        "is not a credentials profile name: a route names one of the plugin \
                         configuration's credential_profiles ({}); keys belong there, never in \
                         route metadata",
                        self.profile_names()
                    )
                };
                ConfigError::new("credentials", message)
            }),
            None => self.target.credentials_profile.ok_or_else(|| {
                ConfigError::new(
                    "credentials",
                    format!(
                        "is required on this route: the plugin configuration has no top-level \
                         credentials, so each route names one of its credential_profiles ({})",
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
    merged.take_set(route);
    merged
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
mod profile_tests;
#[cfg(test)]
mod tests;
