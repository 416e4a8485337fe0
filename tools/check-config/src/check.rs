//! Checks what `find` found with the filter's own code: each plugin configuration as the
//! filter loads it at start (`FilterConfig::load`, "invalid configuration: …"), and each
//! route's metadata as the filter resolves it on the route's first request
//! (`RouteCache::resolve_metadata`, "route override …").

use std::collections::HashMap;

use proxy_wasm_lambda::{
    decode_route_override, metadata_namespace, on_route, FilterConfig, RouteCache,
    METADATA_NAMESPACE,
};
use serde_json::{Map, Value};

use crate::find::{Configuration, Found, Instance, Route};
use crate::proto;

/// Values for `host_env_keys` when the check does not read its own environment: whatever
/// Envoy's environment holds is unknown here, so each variable is taken as set, to a value of
/// the right shape.
const PLACEHOLDERS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
    (
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("AWS_SESSION_TOKEN", "placeholder-session-token"),
    ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/placeholder"),
    ("AWS_ROLE_SESSION_NAME", "placeholder-session"),
    (
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    ),
    (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "http://169.254.170.23/v1/credentials",
    ),
    (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "/v2/credentials/placeholder",
    ),
    ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "placeholder-token"),
    (
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
    ),
];

/// Any other variable (an ExternalId, say).
const PLACEHOLDER: &str = "placeholder";

pub fn placeholder(name: &str) -> &'static str {
    PLACEHOLDERS
        .iter()
        .find(|(known, _)| *known == name)
        .map_or(PLACEHOLDER, |(_, value)| value)
}

#[derive(Clone, Copy)]
pub enum HostEnv {
    /// Each `host_env_keys` variable set to a placeholder.
    Placeholders,
    /// Read from this process's environment, as Envoy reads its own.
    Process,
}

/// What one file came to.
#[derive(Default)]
pub struct Outcome {
    pub errors: usize,
    pub instances: usize,
    pub routes: usize,
}

/// The VM environment of an instance: `host_env_keys` first, then `key_values`.
fn vm_environment(instance: &Instance, host_env: HostEnv) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for key in &instance.host_env_keys {
        let value = match host_env {
            HostEnv::Placeholders => Some(placeholder(key).to_string()),
            HostEnv::Process => std::env::var(key).ok(),
        };
        if let Some(value) = value {
            env.insert(key.clone(), value);
        }
    }
    for (key, value) in &instance.key_values {
        env.insert(key.clone(), value.clone());
    }
    env
}

fn load(instance: &Instance, host_env: HostEnv) -> Result<FilterConfig, String> {
    let env = vm_environment(instance, host_env);
    let read = |name: &str| env.get(name).cloned();
    match &instance.configuration {
        Configuration::Bytes(bytes) => {
            FilterConfig::load(bytes, &read).map_err(|e| format!("invalid configuration: {e}"))
        }
        Configuration::Refused(why) => Err(format!(
            "invalid configuration: field 'configuration': {why}"
        )),
    }
}

/// The route's `metadata.filter_metadata` as the serialized `Metadata` Envoy hands the filter,
/// and whether it has the filter's namespace. Envoy refuses a namespace that is not a map.
fn route_metadata(route: &Route) -> Result<(Vec<u8>, bool), String> {
    let empty = Map::new();
    let namespaces = match route
        .metadata
        .as_ref()
        .and_then(|metadata| metadata.get("filter_metadata"))
    {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(namespaces)) => namespaces,
        Some(_) => return Err("metadata.filter_metadata must be a map of namespaces".to_string()),
    };
    let mut structs = Vec::new();
    for (name, value) in namespaces {
        match value {
            Value::Object(map) => structs.push((name.as_str(), map)),
            _ if name == METADATA_NAMESPACE => {
                return Err(format!(
                    "metadata.filter_metadata.{METADATA_NAMESPACE} must be a map (a \
                     google.protobuf.Struct): Envoy refuses the route"
                ))
            }
            // Another filter's business.
            _ => {}
        }
    }
    let ours = namespaces.contains_key(METADATA_NAMESPACE);
    Ok((proto::metadata(structs), ours))
}

fn route_error(error: impl std::fmt::Display) -> String {
    format!("route override {error}")
}

/// The route's errors: resolved against each configuration (instance index, config), or, with
/// none, its overrides decoded only.
fn route_errors(
    route: &Route,
    metadata: &[u8],
    configs: &[(usize, &FilterConfig)],
) -> Vec<(Option<usize>, String)> {
    let name = || route.name.clone().map(String::into_bytes);
    if configs.is_empty() {
        let namespace = match metadata_namespace(metadata, METADATA_NAMESPACE) {
            Ok(namespace) => namespace.unwrap_or_default(),
            Err(why) => return vec![(None, format!("route metadata is {why}"))],
        };
        return match decode_route_override(namespace) {
            Ok(_) => Vec::new(),
            Err(e) => vec![(None, route_error(on_route(e, name())))],
        };
    }
    let mut errors = Vec::new();
    for (index, config) in configs {
        if let Err(e) = RouteCache::default().resolve_metadata(config, metadata) {
            errors.push((Some(*index), route_error(on_route(e, name()))));
        }
    }
    errors
}

/// Checks one file's findings, printing each problem as `FILE: WHERE: MESSAGE`.
pub fn check(file: &str, found: &Found, host_env: HostEnv) -> Outcome {
    let mut outcome = Outcome::default();
    let error = |location: &str, message: &str| {
        println!("{file}: {location}: {message}");
    };
    let mut loaded = Vec::new();
    for instance in &found.instances {
        outcome.instances += 1;
        if matches!(host_env, HostEnv::Placeholders) && !instance.host_env_keys.is_empty() {
            println!(
                "{file}: {}: note: host_env_keys taken as set, to placeholder values: {}",
                instance.location,
                instance.host_env_keys.join(", ")
            );
        }
        match load(instance, host_env) {
            Ok(config) => {
                for warning in &config.warnings {
                    println!("{file}: {}: warning: {warning}", instance.location);
                }
                loaded.push(Some(config));
            }
            Err(message) => {
                error(&instance.location, &message);
                outcome.errors += 1;
                loaded.push(None);
            }
        }
    }
    for route in &found.routes {
        let (metadata, ours) = match route_metadata(route) {
            Ok(metadata) => metadata,
            Err(message) => {
                error(&route.location, &message);
                outcome.errors += 1;
                outcome.routes += 1;
                continue;
            }
        };
        // The instances of the route's own HTTP connection manager; else, for a route that has
        // the filter's metadata, every instance in the file (routes from RDS, patches).
        let in_scope: Vec<usize> = (0..found.instances.len())
            .filter(|&i| route.scope.is_some() && found.instances[i].scope == route.scope)
            .collect();
        let candidates: Vec<usize> = if !in_scope.is_empty() {
            in_scope
        } else if ours {
            (0..found.instances.len()).collect()
        } else {
            continue;
        };
        outcome.routes += 1;
        let configs: Vec<(usize, &FilterConfig)> = candidates
            .iter()
            .filter_map(|&i| loaded[i].as_ref().map(|config| (i, config)))
            .collect();
        let errors = route_errors(route, &metadata, &configs);
        let mut distinct: Vec<&str> = errors.iter().map(|(_, m)| m.as_str()).collect();
        distinct.dedup();
        // One message for every configuration: said once; else each with its configuration.
        if distinct.len() == 1 && errors.len() == configs.len().max(1) {
            error(&route.location, distinct[0]);
        } else {
            for (index, message) in &errors {
                let against = index
                    .map(|i| {
                        format!(
                            " [with the plugin configuration at {}]",
                            found.instances[i].location
                        )
                    })
                    .unwrap_or_default();
                error(&route.location, &format!("{message}{against}"));
            }
        }
        if !errors.is_empty() {
            outcome.errors += 1;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::find::find;
    use serde_json::json;

    #[test]
    fn placeholders_pass_the_filter_checks_of_their_variables() {
        for (name, _) in PLACEHOLDERS {
            assert_ne!(placeholder(name), PLACEHOLDER);
        }
        assert_eq!(placeholder("LAMBDA_EXTERNAL_ID"), PLACEHOLDER);
        let instance = |configuration: &str, keys: &[&str]| Instance {
            location: String::new(),
            configuration: Configuration::Bytes(configuration.as_bytes().to_vec()),
            key_values: Vec::new(),
            host_env_keys: keys.iter().map(|k| k.to_string()).collect(),
            scope: None,
        };
        let cases = [
            (
                r#"{"function": "f", "region": "us-east-1"}"#,
                &[
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_SESSION_TOKEN",
                ][..],
            ),
            (
                r#"{"function": "f", "region": "us-east-1", "credentials": {"source": "container", "container_cluster": "c", "container_token_from_cluster": true}}"#,
                &[
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                ][..],
            ),
            (
                r#"{"function": "f", "region": "us-east-1", "credentials": {"source": "web_identity", "web_identity_cluster": "sts"}}"#,
                &[
                    "AWS_ROLE_ARN",
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "AWS_ROLE_SESSION_NAME",
                ][..],
            ),
        ];
        for (configuration, keys) in cases {
            let config = load(&instance(configuration, keys), HostEnv::Placeholders);
            assert!(config.is_ok(), "{configuration}: {:?}", config.err());
        }
        let without = load(&instance(cases[0].0, &[]), HostEnv::Placeholders);
        assert!(without.is_err());
    }

    #[test]
    fn a_route_typo_is_reported_as_the_filter_reports_it() {
        let route = |metadata: Value| {
            json!({"name": "orders", "match": {"prefix": "/"},
            "metadata": {"filter_metadata": {"proxy_wasm_lambda": metadata}}})
        };
        let bootstrap = json!({"static_resources": {"listeners": [{"name": "api", "filter_chains": [{"filters": [{"typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "route_config": {"virtual_hosts": [{"name": "vh", "routes": [route(json!({"fucntion": "g"})), route(json!({"function": "g"}))]}]},
            "http_filters": [{"typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {"root_id": "proxy_wasm_lambda", "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": "{\"function\": \"f\", \"region\": \"us-east-1\", \"credentials\": {\"access_key_id\": \"AKIAIOSFODNN7EXAMPLE\", \"secret_access_key\": \"x\"}}"}}}}]
        }}]}]}]}});
        let found = find(&[bootstrap]);
        let loaded = load(&found.instances[0], HostEnv::Placeholders).unwrap();
        let (metadata, ours) = route_metadata(&found.routes[0]).unwrap();
        assert!(ours);
        let errors = route_errors(&found.routes[0], &metadata, &[(0, &loaded)]);
        assert_eq!(
            errors,
            [(
                Some(0),
                "route override field 'fucntion': is not a key of route metadata \
                 proxy_wasm_lambda; did you mean 'function'? (route 'orders')"
                    .to_string()
            )]
        );
        let (metadata, _) = route_metadata(&found.routes[1]).unwrap();
        assert!(route_errors(&found.routes[1], &metadata, &[(0, &loaded)]).is_empty());
        // Without a configuration, the keys are still decoded.
        let (metadata, _) = route_metadata(&found.routes[0]).unwrap();
        assert_eq!(route_errors(&found.routes[0], &metadata, &[]).len(), 1);
        let outcome = check("f.yaml", &found, HostEnv::Placeholders);
        assert_eq!(
            (outcome.errors, outcome.instances, outcome.routes),
            (1, 1, 2)
        );
    }
}
