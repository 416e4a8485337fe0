//! Per-route overrides from route metadata (`filter_metadata.proxy_wasm_lambda`), decoded
//! from the serialized `Metadata` the host gives in one read, and the cache of resolved
//! route targets.

pub(crate) mod metadata;

use crate::string_map::StringMap;
use std::rc::Rc;

use serde_json::Value;

use crate::config::{
    ConfigError, FilterConfig, InvokeTarget, RouteOverride, TargetField, ROUTE_KEYS,
};

/// The `filter_metadata` namespace routes use.
pub const METADATA_NAMESPACE: &str = "proxy_wasm_lambda";

/// The property of the route's whole metadata (a serialized `envoy.config.core.v3.Metadata`),
/// as the host takes its path (segments joined by NUL).
pub(crate) const ROUTE_METADATA_PROPERTY: &[u8] = b"xds\0route_metadata";

/// The property of the route's name (empty or absent when the route has none).
pub(crate) const ROUTE_NAME_PROPERTY: &[u8] = b"xds\0route_name";

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

/// Text; a whole number written where text is expected (`qualifier: 5`) is its digits.
fn string(key: &str, value: Value) -> Result<String, ConfigError> {
    match value {
        Value::String(text) => Ok(text),
        Value::Number(n) => n
            .as_u64()
            .map(|n| n.to_string())
            .ok_or_else(|| ConfigError::new(key, "must be a string")),
        _ => Err(ConfigError::new(key, "must be a string")),
    }
}

/// A number, or a string of digits (`timeout_ms: "1500"`).
fn integer(key: &str, value: Value) -> Result<u64, ConfigError> {
    match &value {
        Value::Number(n) => n.as_u64().filter(|n| *n < MAX_INTEGER),
        Value::String(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| ConfigError::new(key, "must be a non-negative integer"))
}

/// A bool, or the string `true` or `false`.
fn boolean(key: &str, value: Value) -> Result<bool, ConfigError> {
    match value {
        Value::Bool(flag) => Ok(flag),
        Value::String(text) if text == "true" => Ok(true),
        Value::String(text) if text == "false" => Ok(false),
        _ => Err(ConfigError::new(key, "must be true or false")),
    }
}

/// A map, or JSON text in a string (the only form before maps were decoded).
fn json(key: &str, value: Value) -> Result<Value, ConfigError> {
    match value {
        // from_slice as everywhere else: from_str would be a second copy of the parser.
        Value::String(text) => serde_json::from_slice(text.as_bytes()).map_err(|_| not_a_map(key)),
        other => Ok(other),
    }
}

fn string_map(key: &str, value: Value) -> Result<StringMap, ConfigError> {
    let Value::Object(map) = json(key, value)? else {
        return Err(not_a_map(key));
    };
    let mut strings = StringMap::new();
    for (name, value) in map {
        let Value::String(value) = value else {
            return Err(ConfigError::new(
                key,
                format!("'{}' must be a string", shown(&name)),
            ));
        };
        strings.insert(name, value);
    }
    Ok(strings)
}

/// Numbers from here up are refused: far beyond any timeout or status, and route metadata
/// carries numbers as f64, exact only well below 2^53.
const MAX_INTEGER: u64 = 1_000_000_000_000_000;

fn not_a_map(key: &str) -> ConfigError {
    ConfigError::new(
        key,
        "must be a map: a YAML map in route metadata, or a JSON object in a string",
    )
}

/// A key as it may be shown in an error: at most 64 bytes (route metadata is not secret,
/// but an error body is no place for a whole pasted document).
fn shown(key: &str) -> &str {
    key.get(..key.floor_char_boundary(64)).unwrap_or(key)
}

/// The number of single-byte edits (insert, delete, replace) from `a` to `known`, a route
/// key (at most [`LONGEST_KEY`] bytes: one row of the edit table fits on the stack).
fn edit_distance(a: &str, known: &str) -> usize {
    let mut row = [0usize; LONGEST_KEY + 1];
    for (j, cell) in row.iter_mut().enumerate() {
        *cell = j;
    }
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = i;
        let mut left = i + 1;
        for (cell, cb) in row.iter_mut().skip(1).zip(known.bytes()) {
            let next = (*cell + 1)
                .min(left + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = *cell;
            *cell = next;
            left = next;
        }
        row[0] = i + 1;
    }
    row.get(known.len()).copied().unwrap_or(usize::MAX)
}

/// The longest of [`ROUTE_KEYS`] (`function_error_status`).
const LONGEST_KEY: usize = 21;
const _: () = {
    // Holds LONGEST_KEY to the key table.
    let mut i = 0;
    while i < ROUTE_KEYS.len() {
        assert!(ROUTE_KEYS[i].len() <= LONGEST_KEY);
        i += 1;
    }
};

/// The route key an unknown key was most likely meant to be: within one edit in three.
fn nearest_key(unknown: &str) -> Option<&'static str> {
    let mut nearest = None;
    let mut fewest = usize::MAX;
    for &known in ROUTE_KEYS {
        // At one edit in three, lengths differ by at most half (and long keys cost time).
        if unknown.len() > 2 * known.len() {
            continue;
        }
        let distance = edit_distance(unknown, known);
        if distance * 3 <= unknown.len().max(known.len()) && distance < fewest {
            fewest = distance;
            nearest = Some(known);
        }
    }
    nearest
}

fn malformed(why: metadata::Malformed) -> ConfigError {
    ConfigError::new(METADATA_NAMESPACE, format!("route metadata is {why}"))
}

fn unknown_key(key: &str) -> ConfigError {
    let mut message = format!("is not a key of route metadata {METADATA_NAMESPACE}; ");
    match nearest_key(key) {
        Some(known) => {
            message.push_str("did you mean '");
            message.push_str(known);
            message.push_str("'?");
        }
        None => {
            message.push_str("the keys are ");
            message.push_str(&ROUTE_KEYS.join(", "));
        }
    }
    ConfigError::new(shown(key), message)
}

/// Builds a route's overrides from its namespace in route metadata: the serialized
/// `google.protobuf.Struct` of `filter_metadata.proxy_wasm_lambda`. Every key must be one
/// of [`ROUTE_KEYS`]: a typo is refused, never read as "no override". Of several bad keys,
/// the one that sorts first is reported.
pub fn decode_route_override(namespace: &[u8]) -> Result<RouteOverride, ConfigError> {
    let mut route = RouteOverride::default();
    for (key, value) in metadata::decode_struct(namespace).map_err(malformed)? {
        set_key(&mut route, &key, value)?;
    }
    Ok(route)
}

fn set_key(route: &mut RouteOverride, key: &str, value: Value) -> Result<(), ConfigError> {
    // A target key: decoded by its field's type (the key table in config/keys.rs).
    if let Some(field) = route.settings.field(key) {
        match field {
            TargetField::Text(field) => *field = Some(string(key, value)?),
            TargetField::Status(field) => {
                let status = u16::try_from(integer(key, value)?)
                    .map_err(|_| ConfigError::new(key, "must be an HTTP status"))?;
                *field = Some(status);
            }
            TargetField::Integer(field) => *field = Some(integer(key, value)?),
            TargetField::Flag(field) => *field = Some(boolean(key, value)?),
            TargetField::Strings(field) => *field = Some(string_map(key, value)?),
            TargetField::Json(field) => *field = Some(json(key, value)?),
        }
        return Ok(());
    }
    match key {
        // A profile's name only: route metadata is printed in config dumps, so it is no
        // place for keys. Anything else (a map of keys, a number) is kept as a name no
        // profile has, and refused, unshown, when the route is resolved.
        "credentials" => {
            route.credentials = Some(match value {
                Value::String(name) => name,
                _ => NOT_TEXT.to_string(),
            })
        }
        "disabled" => route.disabled = boolean(key, value)?,
        _ => return Err(unknown_key(key)),
    }
    Ok(())
}

/// Names the route in an error about its metadata (Envoy's route name, when it has one), as
/// the filter words it at request time (public for tools/check-config).
pub fn on_route(mut error: ConfigError, route_name: Option<Vec<u8>>) -> ConfigError {
    // Envoy's route names are protobuf strings: UTF-8.
    if let Some(name) = route_name.and_then(|name| String::from_utf8(name).ok()) {
        if !name.is_empty() {
            error.message.push_str(" (route '");
            error.message.push_str(shown(&name));
            error.message.push_str("')");
        }
    }
    error
}

/// Resolved targets keyed by the bytes of the route's namespace, so that every route with
/// the same overrides shares one validated target and no request validates config again:
/// a route's metadata is checked on its first request (the host shows route configuration
/// to Wasm only through a request's properties), once.
///
/// A `Vec` sorted by key, searched by halves: another `HashMap` instantiation costs a
/// kilobyte or more of .wasm.
#[derive(Default)]
pub struct RouteCache {
    entries: Vec<(Vec<u8>, Result<RouteTarget, ConfigError>)>,
}

impl RouteCache {
    pub fn resolve(
        &mut self,
        config: &FilterConfig,
        metadata_key: &[u8],
        read_override: impl FnOnce() -> Result<RouteOverride, ConfigError>,
    ) -> Result<RouteTarget, ConfigError> {
        let search = self
            .entries
            .binary_search_by(|(key, _)| key.as_slice().cmp(metadata_key));
        if let Some((_, target)) = search.ok().and_then(|found| self.entries.get(found)) {
            return target.clone();
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
        let at = search.unwrap_or_else(|at| at).min(self.entries.len());
        self.entries
            .insert(at, (metadata_key.to_vec(), resolved.clone()));
        resolved
    }

    /// The target of a route from its serialized metadata (`ROUTE_METADATA_PROPERTY`; empty
    /// when the route has none), keyed by its namespace's bytes: other filters' namespaces
    /// do not split the cache.
    pub fn resolve_metadata(
        &mut self,
        config: &FilterConfig,
        route_metadata: &[u8],
    ) -> Result<RouteTarget, ConfigError> {
        let namespace = metadata::namespace(route_metadata, METADATA_NAMESPACE)
            .map_err(malformed)?
            .unwrap_or_default();
        self.resolve(config, namespace, || decode_route_override(namespace))
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
    use super::metadata::tests::{encode_metadata, encode_struct};
    use super::*;
    use crate::config::TargetSettings;
    use serde_json::json;
    use std::cell::Cell;

    #[test]
    fn properties_are_the_route_metadata_and_name() {
        assert_eq!(ROUTE_METADATA_PROPERTY, b"xds\0route_metadata");
        assert_eq!(ROUTE_NAME_PROPERTY, b"xds\0route_name");
    }

    /// The namespace's bytes as Envoy gives them, for a route with this metadata.
    fn decode(metadata: Value) -> Result<RouteOverride, ConfigError> {
        decode_route_override(&encode_struct(metadata.as_object().unwrap()))
    }

    #[test]
    fn no_metadata_is_no_override() {
        assert!(decode_route_override(&[]).unwrap().is_empty());
        assert!(decode(json!({})).unwrap().is_empty());
    }

    #[test]
    fn credentials_is_a_profile_name() {
        let route = decode(json!({"credentials": "tenant-a"})).unwrap();
        assert_eq!(route.credentials.as_deref(), Some("tenant-a"));
        assert!(!route.is_empty());
        // Anything else (keys pasted into route metadata, a number) is kept as no profile's
        // name, and refused when the route is resolved, without showing what it was.
        let config = config();
        for value in [
            json!({"access_key_id": "AKIDPASTED1234567", "secret_access_key": "pasted-secret"}),
            json!(1),
            json!(null),
        ] {
            let route = decode(json!({ "credentials": value })).unwrap();
            assert_eq!(route.credentials.as_deref(), Some(NOT_TEXT));
            let err = config.resolve_route(&route).unwrap_err();
            assert_eq!(err.field, "credentials");
            assert!(!err.message.contains("pasted"), "{err}");
        }
    }

    #[test]
    fn decodes_strings_numbers_and_bools() {
        let route = decode(json!({
            "function": "other-fn",
            "qualifier": 5,
            "timeout_ms": 1000,
            "function_error_status": "500",
            "multi_value_headers": "true",
            "expose_log_result": true,
            "disabled": false,
        }))
        .unwrap();
        assert_eq!(route.settings.function.as_deref(), Some("other-fn"));
        assert_eq!(route.settings.qualifier.as_deref(), Some("5"));
        assert_eq!(route.settings.timeout_ms, Some(1000));
        assert_eq!(route.settings.function_error_status, Some(500));
        assert_eq!(route.settings.multi_value_headers, Some(true));
        assert_eq!(route.settings.expose_log_result, Some(true));
        assert!(!route.disabled);
        assert!(decode(json!({"disabled": "true"})).unwrap().disabled);
    }

    /// Every key lands in the field of its name, read from the Debug text of the decoded
    /// override.
    #[test]
    fn every_route_key_sets_its_own_field() {
        for key in ROUTE_KEYS {
            let (value, shown) = match *key {
                "function_error_status" | "timeout_ms" => (json!(503), "Some(503)"),
                "multi_value_headers" | "expose_log_result" => (json!(true), "Some(true)"),
                "disabled" => (json!(true), "true"),
                "custom_parameters" => (json!({"k": "v"}), r#"Some(StringMap([("k", "v")]))"#),
                "client_context" => (json!({"k": "v"}), r#"Some(Object {"k": String("v")})"#),
                _ => (json!("v"), r#"Some("v")"#),
            };
            let route = format!("{:?}", decode(json!({ *key: value })).unwrap());
            assert!(route.contains(&format!("{key}: {shown}")), "{route}");
            // Nothing else is set.
            let set = route.matches("Some(").count() + usize::from(*key == "disabled");
            assert_eq!(set, 1, "{route}");
        }
    }

    #[test]
    fn eight_character_strings_are_not_mistaken_for_numbers() {
        let route = decode(json!({"timeout_ms": "00001500"})).unwrap();
        assert_eq!(route.settings.timeout_ms, Some(1500));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (key, value) in [
            ("timeout_ms", json!("soon")),
            ("timeout_ms", json!(-5)),
            ("timeout_ms", json!(1.5)),
            ("timeout_ms", json!(1e15)),
            ("timeout_ms", json!(true)),
            ("disabled", json!("maybe")),
            ("disabled", json!(1)),
            ("function", json!(true)),
            ("function", json!(null)),
            ("function", json!(["a"])),
            ("qualifier", json!(1.5)),
            ("function_error_status", json!(70000)),
            ("custom_parameters", json!(["a"])),
            ("custom_parameters", json!("not json")),
            ("custom_parameters", json!({"n": 2})),
            ("client_context", json!("{not json")),
        ] {
            let err = decode(json!({ key: value })).unwrap_err();
            assert_eq!(err.field, key, "{value}: {err}");
        }
        let err = decode(json!({"custom_parameters": {"n": 2}})).unwrap_err();
        assert_eq!(err.message, "'n' must be a string");
    }

    #[test]
    fn unknown_keys_are_refused_with_the_nearest_key() {
        for (typo, meant) in [
            ("functon", "function"),
            ("Function", "function"),
            ("timeout", "timeout_ms"),
            ("qualifer", "qualifier"),
            ("custom_params", "custom_parameters"),
            ("credential", "credentials"),
        ] {
            let err = decode(json!({"function": "other-fn", typo: "x"})).unwrap_err();
            assert_eq!(err.field, typo);
            assert_eq!(
                err.message,
                format!(
                    "is not a key of route metadata proxy_wasm_lambda; did you mean '{meant}'?"
                )
            );
        }
        // Nothing near: the keys are listed.
        let err = decode(json!({"lambda": "x"})).unwrap_err();
        assert_eq!(err.field, "lambda");
        assert!(
            err.message.contains("the keys are function, qualifier, "),
            "{err}"
        );
        // Whatever its value (a typo of disabled does not let the request through).
        let err = decode(json!({"disable": true})).unwrap_err();
        assert!(err.message.ends_with("did you mean 'disabled'?"), "{err}");
        // A long key is shown shortened.
        let long = "k".repeat(500);
        let err = decode(json!({ long.as_str(): 1 })).unwrap_err();
        assert_eq!(err.field, "k".repeat(64));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("functon", "function"), 1);
        assert_eq!(edit_distance("flaw", "lawn"), 2);
        assert_eq!(nearest_key("api"), None);
        assert_eq!(nearest_key("stage"), Some("stage"));
    }

    #[test]
    fn maps_come_as_yaml_maps_or_as_json_text() {
        for custom_parameters in [
            json!({"action": "grant-access"}),
            json!(r#"{"action": "grant-access"}"#),
        ] {
            let route = decode(json!({ "custom_parameters": custom_parameters })).unwrap();
            assert_eq!(
                route.settings.custom_parameters.unwrap().get("action"),
                Some("grant-access")
            );
        }
        for client_context in [
            json!({"custom": {"app": "shop", "n": 2, "tags": ["a", true, null]}}),
            json!(r#"{"custom": {"app": "shop", "n": 2, "tags": ["a", true, null]}}"#),
        ] {
            let route = decode(json!({ "client_context": client_context })).unwrap();
            let context = route.settings.client_context.unwrap();
            assert_eq!(
                context.to_string(),
                r#"{"custom":{"app":"shop","n":2,"tags":["a",true,null]}}"#
            );
        }
        // Resolved like the plugin's own client_context (a JSON object, within Lambda's limit).
        let route = decode(json!({"client_context": {"custom": {"app": "shop"}}})).unwrap();
        let target = config().resolve_route(&route).unwrap();
        assert!(target.client_context.is_some());
        let route = decode(json!({"client_context": ["not", "a", "map"]})).unwrap();
        assert_eq!(
            config().resolve_route(&route).unwrap_err().field,
            "client_context"
        );
    }

    #[test]
    fn malformed_or_oversized_metadata_is_refused() {
        let err = decode_route_override(&[0x0a, 0x7f]).unwrap_err();
        assert_eq!(err.field, METADATA_NAMESPACE);
        assert_eq!(err.message, "route metadata is not valid protobuf");
        let big = "x".repeat(metadata::MAX_NAMESPACE_BYTES);
        let err = decode(json!({ "function": big })).unwrap_err();
        assert_eq!(err.message, "route metadata is larger than 16384 bytes");
    }

    #[test]
    fn errors_name_the_route_when_it_has_a_name() {
        let err = decode(json!({"functon": "x"})).unwrap_err();
        let named = on_route(err.clone(), Some(b"orders-api".to_vec()));
        assert_eq!(named.field, "functon");
        assert!(
            named
                .message
                .ends_with("did you mean 'function'? (route 'orders-api')"),
            "{named}"
        );
        assert_eq!(on_route(err.clone(), Some(Vec::new())), err);
        assert_eq!(on_route(err.clone(), None), err);
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
    fn cache_finds_each_of_many_routes_and_stays_bounded() {
        let config = config();
        let mut cache = RouteCache::default();
        let keys: Vec<Vec<u8>> = (0..300u32)
            .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes().to_vec())
            .collect();
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            Ok(RouteOverride::default())
        };
        for _ in 0..2 {
            for key in &keys {
                cache.resolve(&config, key, read).unwrap();
            }
        }
        assert_eq!(reads.get(), keys.len());
        assert_eq!(cache.len(), keys.len());
        for i in 0..=MAX_CACHED_ROUTES {
            let key = format!("route-{i}");
            cache.resolve(&config, key.as_bytes(), read).unwrap();
            assert!(cache.len() <= MAX_CACHED_ROUTES);
        }
        // Started over when full: the last route is still found.
        let before = reads.get();
        let last = format!("route-{MAX_CACHED_ROUTES}");
        cache.resolve(&config, last.as_bytes(), read).unwrap();
        assert_eq!(reads.get(), before);
    }

    #[test]
    fn routes_resolve_from_their_whole_metadata() {
        let config = config();
        let mut cache = RouteCache::default();
        // No metadata, or only other filters': the plugin's own target.
        let other = json!({"x": 1});
        for metadata in [Vec::new(), encode_metadata(&[("envoy.lb", &other)])] {
            match cache.resolve_metadata(&config, &metadata).unwrap() {
                RouteTarget::Invoke(target) => assert_eq!(*target, config.target),
                RouteTarget::Disabled => panic!("expected a target"),
            }
        }
        assert_eq!(cache.len(), 1);
        // Other namespaces do not split the cache.
        let ours = json!({"function": "g", "custom_parameters": {"a": "b"}});
        let alone = encode_metadata(&[(METADATA_NAMESPACE, &ours)]);
        let with_other = encode_metadata(&[("envoy.lb", &other), (METADATA_NAMESPACE, &ours)]);
        let first = cache.resolve_metadata(&config, &alone).unwrap();
        assert_eq!(cache.resolve_metadata(&config, &with_other).unwrap(), first);
        assert_eq!(cache.len(), 2);
        // A typo is refused, and the refusal is cached with the route.
        let typo = json!({"functon": "g"});
        let typo = encode_metadata(&[(METADATA_NAMESPACE, &typo)]);
        let err = cache.resolve_metadata(&config, &typo).unwrap_err();
        assert_eq!(err.field, "functon");
        assert_eq!(cache.resolve_metadata(&config, &typo).unwrap_err(), err);
        assert_eq!(cache.len(), 3);
        // Bytes that are not a Metadata message.
        let err = cache.resolve_metadata(&config, &[0x0a, 0x05]).unwrap_err();
        assert_eq!(err.field, METADATA_NAMESPACE);
    }
}
