//! Route metadata: `decode_route_override` on the namespace's `google.protobuf.Struct`
//! built from records of route keys (or typos of them, or any text) and values of every
//! kind, then `resolve_route` against a plugin configuration. Never panics; a key that is
//! not a route key is always refused; errors name a key; resolved targets are within
//! bounds; the route cache agrees.
//!
//! Input: a configuration selector, then records of `[key][kind][length][payload]`. The
//! key selects one of `ROUTE_KEYS` (0-21), a typo of one (22-43: its second character
//! dropped) or the payload as the key (44 and up, valued "x"). The kind makes the value
//! from the payload: text, number, bool, null, map of text, list, map with a number, or
//! nested maps.
#![no_main]

mod protobuf_struct;

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{
    decode_route_override, FilterConfig, RouteCache, RouteTarget, METADATA_NAMESPACE, ROUTE_KEYS,
};

use serde_json::{json, Map, Value};

fn configs() -> &'static [FilterConfig; 3] {
    static CONFIGS: OnceLock<[FilterConfig; 3]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let load = |json: &str| FilterConfig::load(json.as_bytes(), &|_| None).unwrap();
        [
            load(
                r#"{"function":"f","qualifier":"live","region":"us-east-1","payload":"apigw_v2","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}"#,
            ),
            load(
                r#"{"function":"arn:aws:lambda:eu-west-1:123456789012:function:g:7","cluster":"lambda","custom_parameters":{"a":"b"},"credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}"#,
            ),
            // Profiles only: a route must name one.
            load(
                r#"{"function":"f","region":"us-east-1","credential_profiles":{"a":{"access_key_id":"test","secret_access_key":"test"},"b-2":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}}"#,
            ),
        ]
    })
}

fn key(selector: u8, payload: &[u8]) -> String {
    let selector = usize::from(selector);
    match ROUTE_KEYS.get(selector % 64) {
        Some(key) => key.to_string(),
        None => match ROUTE_KEYS.get(selector % 64 - ROUTE_KEYS.len()) {
            Some(key) => {
                let mut typo = key.to_string();
                typo.remove(1);
                typo
            }
            None => String::from_utf8_lossy(payload).into_owned(),
        },
    }
}

fn value(kind: u8, payload: &[u8]) -> Value {
    let text = || Value::String(String::from_utf8_lossy(payload).into_owned());
    match kind % 8 {
        0 => text(),
        1 => match payload.get(..8) {
            Some(bits) => {
                let n = f64::from_le_bytes(bits.try_into().unwrap());
                serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
            }
            None => json!(payload.iter().fold(0u64, |n, b| n << 8 | u64::from(*b))),
        },
        2 => json!(payload.first().is_some_and(|b| b & 1 == 1)),
        3 => Value::Null,
        4 => json!({"p": text(), "q": text()}),
        5 => json!([text()]),
        6 => json!({"n": payload.len()}),
        _ => json!({"a": {"b": text()}}),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, mut rest)) = data.split_first() else {
        return;
    };
    let mut map = Map::new();
    while let [selector, kind, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        let key = key(*selector, payload);
        let value = if usize::from(*selector) % 64 >= 2 * ROUTE_KEYS.len() {
            json!("x")
        } else {
            value(*kind, payload)
        };
        map.insert(key, value);
        rest = next;
    }
    let unknown: Vec<&String> = map
        .keys()
        .filter(|k| !ROUTE_KEYS.contains(&k.as_str()))
        .collect();
    let namespace = protobuf_struct::encode_struct(&map);
    let route = match decode_route_override(&namespace) {
        Ok(route) => {
            assert!(unknown.is_empty(), "unknown keys {unknown:?} accepted");
            route
        }
        Err(e) => {
            let named = ROUTE_KEYS.contains(&e.field.as_str())
                || e.field == METADATA_NAMESPACE
                || unknown.iter().any(|k| k.starts_with(e.field.as_str()));
            assert!(named, "{e:?}");
            return;
        }
    };
    let config = &configs()[usize::from(which % 3)];
    match config.resolve_route(&route) {
        Ok(target) => {
            // Signed with the profile the route names, else the top-level credentials:
            // never another.
            let expected = match &route.credentials {
                Some(name) => config.profile_id(name),
                None => config.target.credentials_profile,
            };
            assert!(expected.is_some());
            assert_eq!(target.credentials_profile, expected);
            if route.is_empty() {
                assert_eq!(&target, &config.target);
            }
            assert!((200..=599).contains(&target.function_error_status));
            assert!(target.timeout >= Duration::from_millis(1));
            assert!(target.timeout <= Duration::from_secs(900));
            assert!(target.invoke_path.bytes().all(|b| b.is_ascii_graphic()));
        }
        Err(e) => assert!(ROUTE_KEYS.contains(&e.field.as_str()), "{e:?}"),
    }
    // The cache gives the same answer as resolving directly, twice.
    let mut cache = RouteCache::default();
    let first = cache.resolve(config, data, || Ok(route.clone()));
    let second = cache.resolve(config, data, || unreachable!("resolved twice"));
    assert_eq!(first, second);
    if route.disabled {
        assert_eq!(first, Ok(RouteTarget::Disabled));
    }
    // And so does the whole path from the route's metadata.
    let metadata = protobuf_struct::encode_metadata(METADATA_NAMESPACE, &namespace);
    let mut cache = RouteCache::default();
    assert_eq!(cache.resolve_metadata(config, &metadata), first);
});
