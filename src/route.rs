//! Per-route overrides from route metadata (`filter_metadata.proxy_wasm_lambda`), decoded
//! from the host's property encoding, and the cache of resolved route targets.

use crate::string_map::StringMap;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use crate::config::{ConfigError, FilterConfig, InvokeTarget, RouteOverride, TargetSettings};

/// The `filter_metadata` namespace routes use.
pub const METADATA_NAMESPACE: &str = "proxy_wasm_lambda";

/// The property path of the route's filter metadata under [`METADATA_NAMESPACE`], as the host
/// takes it (segments joined by NUL).
pub const ROUTE_METADATA_PROPERTY: &[u8] =
    b"xds\0route_metadata\0filter_metadata\0proxy_wasm_lambda";

/// Keys read from route metadata.
pub const ROUTE_KEYS: [&str; 22] = [
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
    "log_type",
    "expose_log_result",
    "custom_parameters",
    "client_context",
    "invoke_mode",
    "disabled",
    "credentials",
];

/// Stands for a `credentials` value that is not text: no profile has this name.
const NOT_TEXT: &str = "\u{fffd}";

/// Routes resolved at most once each; bounded so that a config with many routes (or
/// changing metadata across xDS updates) cannot grow it without limit.
const MAX_CACHED_ROUTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// The route opted out (`disabled: true`): the request passes through untouched.
    Disabled,
    Invoke(Rc<InvokeTarget>),
}

/// Envoy serialises a `google.protobuf.Value` property as: string → its bytes, number →
/// 8-byte little-endian f64, bool → 1 byte. Values written as strings in YAML are accepted
/// for numbers and bools too.
fn decode_string(key: &str, bytes: &[u8]) -> Result<String, ConfigError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ConfigError::new(key, "must be a string"))
}

fn decode_integer(key: &str, bytes: &[u8]) -> Result<u64, ConfigError> {
    if bytes.len() == 8 {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        let number = f64::from_le_bytes(raw);
        if number.is_finite() && number >= 0.0 && number.fract() == 0.0 && number < 1e15 {
            return Ok(number as u64);
        }
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .ok_or_else(|| ConfigError::new(key, "must be a non-negative integer"))
}

fn not_json_object(key: &str) -> ConfigError {
    ConfigError::new(
        key,
        "must be given as a JSON object in a string in route metadata, \
         e.g. '{\"action\": \"grant-access\"}'",
    )
}

/// Parsed as a `Value` only: other Deserialize impls cost code size.
fn decode_json(key: &str, bytes: &[u8]) -> Result<Value, ConfigError> {
    serde_json::from_slice(bytes).map_err(|_| not_json_object(key))
}

fn decode_string_map(key: &str, bytes: &[u8]) -> Result<StringMap, ConfigError> {
    let Value::Object(map) = decode_json(key, bytes)? else {
        return Err(not_json_object(key));
    };
    let mut strings = StringMap::new();
    for (name, value) in map {
        let Value::String(value) = value else {
            return Err(not_json_object(key));
        };
        strings.insert(name, value);
    }
    Ok(strings)
}

fn decode_bool(key: &str, bytes: &[u8]) -> Result<bool, ConfigError> {
    match bytes {
        [0] | b"false" => Ok(false),
        [1] | b"true" => Ok(true),
        _ => Err(ConfigError::new(key, "must be true or false")),
    }
}

/// Builds a route's overrides from `lookup(key)`, which returns the raw property bytes of
/// `filter_metadata.proxy_wasm_lambda.<key>` when the route has it.
pub fn decode_route_override(
    lookup: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<RouteOverride, ConfigError> {
    let string = |key: &str| lookup(key).map(|b| decode_string(key, &b)).transpose();
    let integer = |key: &str| lookup(key).map(|b| decode_integer(key, &b)).transpose();
    let status = integer("function_error_status")?
        .map(|s| {
            u16::try_from(s)
                .map_err(|_| ConfigError::new("function_error_status", "must be an HTTP status"))
        })
        .transpose()?;
    Ok(RouteOverride {
        settings: TargetSettings {
            function: string("function")?,
            qualifier: string("qualifier")?,
            region: string("region")?,
            endpoint: string("endpoint")?,
            invocation_type: string("invocation_type")?,
            payload: string("payload")?,
            function_error_status: status,
            timeout_ms: integer("timeout_ms")?,
            cluster: string("cluster")?,
            stage: string("stage")?,
            route_key: string("route_key")?,
            api_id: string("api_id")?,
            resource: string("resource")?,
            target_group_arn: string("target_group_arn")?,
            multi_value_headers: lookup("multi_value_headers")
                .map(|b| decode_bool("multi_value_headers", &b))
                .transpose()?,
            log_type: string("log_type")?,
            expose_log_result: lookup("expose_log_result")
                .map(|b| decode_bool("expose_log_result", &b))
                .transpose()?,
            // Envoy's property ABI returns strings as text but objects as serialized protobuf,
            // so objects come as JSON text in route metadata.
            custom_parameters: lookup("custom_parameters")
                .map(|b| decode_string_map("custom_parameters", &b))
                .transpose()?,
            client_context: lookup("client_context")
                .map(|b| decode_json("client_context", &b))
                .transpose()?,
            invoke_mode: string("invoke_mode")?,
        },
        // A profile's name only: route metadata is printed in config dumps, so it is no
        // place for keys (an object arrives as protobuf bytes, never a profile's name).
        credentials: lookup("credentials")
            .map(|b| String::from_utf8(b).unwrap_or_else(|_| NOT_TEXT.to_string())),
        disabled: lookup("disabled")
            .map(|b| decode_bool("disabled", &b))
            .transpose()?
            .unwrap_or(false),
    })
}

/// Resolved targets keyed by the route's raw metadata bytes, so that every route with the
/// same overrides shares one validated target and no request validates config again.
#[derive(Default)]
pub struct RouteCache {
    entries: HashMap<Vec<u8>, Result<RouteTarget, ConfigError>>,
}

impl RouteCache {
    pub fn resolve(
        &mut self,
        config: &FilterConfig,
        metadata_key: &[u8],
        read_override: impl FnOnce() -> Result<RouteOverride, ConfigError>,
    ) -> Result<RouteTarget, ConfigError> {
        if let Some(found) = self.entries.get(metadata_key) {
            return found.clone();
        }
        let resolved = read_override().and_then(|route| {
            if route.disabled {
                Ok(RouteTarget::Disabled)
            } else {
                config
                    .resolve_route(&route)
                    .map(|target| RouteTarget::Invoke(Rc::new(target)))
            }
        });
        if self.entries.len() >= MAX_CACHED_ROUTES {
            self.entries.clear();
        }
        self.entries.insert(metadata_key.to_vec(), resolved.clone());
        resolved
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn route_metadata_property_is_the_namespace() {
        let path = [
            "xds",
            "route_metadata",
            "filter_metadata",
            METADATA_NAMESPACE,
        ]
        .join("\0");
        assert_eq!(ROUTE_METADATA_PROPERTY, path.as_bytes());
    }

    fn lookup_from(pairs: &[(&str, Vec<u8>)]) -> impl Fn(&str) -> Option<Vec<u8>> {
        let pairs: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn credentials_is_a_profile_name() {
        let route =
            decode_route_override(lookup_from(&[("credentials", b"tenant-a".to_vec())])).unwrap();
        assert_eq!(route.credentials.as_deref(), Some("tenant-a"));
        assert!(!route.is_empty());
        // Not text (a number, an object's protobuf bytes): kept as it came, and refused
        // when the route is resolved, as no profile has such a name.
        let route =
            decode_route_override(lookup_from(&[("credentials", 1f64.to_le_bytes().to_vec())]))
                .unwrap();
        assert!(route.credentials.is_some());
    }

    #[test]
    fn decodes_strings_numbers_and_bools() {
        let route = decode_route_override(lookup_from(&[
            ("function", b"other-fn".to_vec()),
            ("timeout_ms", 1000f64.to_le_bytes().to_vec()),
            ("function_error_status", b"500".to_vec()),
            ("disabled", vec![0]),
        ]))
        .unwrap();
        assert_eq!(route.settings.function.as_deref(), Some("other-fn"));
        assert_eq!(route.settings.timeout_ms, Some(1000));
        assert_eq!(route.settings.function_error_status, Some(500));
        assert!(!route.disabled);
    }

    #[test]
    fn eight_character_strings_are_not_mistaken_for_numbers() {
        let route =
            decode_route_override(lookup_from(&[("timeout_ms", b"00001500".to_vec())])).unwrap();
        assert_eq!(route.settings.timeout_ms, Some(1500));
    }

    #[test]
    fn bad_values_name_the_key() {
        let err =
            decode_route_override(lookup_from(&[("timeout_ms", b"soon".to_vec())])).unwrap_err();
        assert_eq!(err.field, "timeout_ms");
        let err = decode_route_override(lookup_from(&[(
            "timeout_ms",
            (-5f64).to_le_bytes().to_vec(),
        )]))
        .unwrap_err();
        assert_eq!(err.field, "timeout_ms");
        let err =
            decode_route_override(lookup_from(&[("disabled", b"maybe".to_vec())])).unwrap_err();
        assert_eq!(err.field, "disabled");
        let err =
            decode_route_override(lookup_from(&[("function", vec![0xff, 0xfe])])).unwrap_err();
        assert_eq!(err.field, "function");
        let err = decode_route_override(lookup_from(&[(
            "function_error_status",
            70000f64.to_le_bytes().to_vec(),
        )]))
        .unwrap_err();
        assert_eq!(err.field, "function_error_status");
    }

    fn config() -> FilterConfig {
        FilterConfig::load(
            br#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}"#,
            &|_| None,
        )
        .unwrap()
    }

    #[test]
    fn cache_resolves_each_route_once() {
        let config = config();
        let mut cache = RouteCache::default();
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            Ok(RouteOverride {
                settings: TargetSettings {
                    function: Some("g".into()),
                    ..Default::default()
                },
                disabled: false,
                credentials: None,
            })
        };
        let first = cache.resolve(&config, b"route-a", read).unwrap();
        let second = cache.resolve(&config, b"route-a", read).unwrap();
        assert_eq!(reads.get(), 1);
        assert_eq!(first, second);
        match first {
            RouteTarget::Invoke(t) => {
                assert_eq!(t.invoke_path, "/2015-03-31/functions/g/invocations")
            }
            RouteTarget::Disabled => panic!("expected a target"),
        }
    }

    #[test]
    fn cache_keeps_invalid_routes_invalid_and_disabled_routes_disabled() {
        let config = config();
        let mut cache = RouteCache::default();
        let bad = cache.resolve(&config, b"bad", || {
            Ok(RouteOverride {
                settings: TargetSettings {
                    invocation_type: Some("Bogus".into()),
                    ..Default::default()
                },
                disabled: false,
                credentials: None,
            })
        });
        assert_eq!(bad.unwrap_err().field, "invocation_type");
        let off = cache.resolve(&config, b"off", || {
            Ok(RouteOverride {
                disabled: true,
                credentials: None,
                ..Default::default()
            })
        });
        assert_eq!(off.unwrap(), RouteTarget::Disabled);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn objects_come_as_json_text() {
        let route = decode_route_override(lookup_from(&[(
            "custom_parameters",
            br#"{"action":"grant-access"}"#.to_vec(),
        )]))
        .unwrap();
        assert_eq!(
            route.settings.custom_parameters.unwrap().get("action"),
            Some("grant-access")
        );
        // A protobuf-serialized Struct (what Envoy gives for a YAML map) is refused clearly.
        let err = decode_route_override(lookup_from(&[(
            "custom_parameters",
            vec![0x0a, 0x10, 0x0a, 0x06],
        )]))
        .unwrap_err();
        assert_eq!(err.field, "custom_parameters");
    }
}
