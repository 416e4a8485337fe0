//! The route metadata decoder on arbitrary bytes, as the serialized `Metadata` Envoy hands
//! to Wasm and as the namespace's `google.protobuf.Struct`. Never panics, stays within its
//! depth and size limits, and what it decodes encodes and decodes back to the same value;
//! the route's overrides and the route cache take the same bytes without panicking.
#![no_main]

mod protobuf_struct;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{
    decode_metadata_struct as decode_struct, decode_route_override,
    metadata_namespace as namespace, FilterConfig, RouteCache, MAX_METADATA_DEPTH as MAX_DEPTH,
    MAX_METADATA_NAMESPACE_BYTES as MAX_NAMESPACE_BYTES, METADATA_NAMESPACE, ROUTE_KEYS,
};

use serde_json::Value;

fn config() -> &'static FilterConfig {
    static CONFIG: OnceLock<FilterConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let json = r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}"#;
        FilterConfig::load(json.as_bytes(), &|_| None).unwrap()
    })
}

/// Levels of maps and lists: a map of text is 1.
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(list) => 1 + list.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_struct(bytes: &[u8]) {
    let Ok(map) = decode_struct(bytes) else {
        return;
    };
    assert!(bytes.len() <= MAX_NAMESPACE_BYTES);
    let value = Value::Object(map);
    assert!(depth(&value) <= MAX_DEPTH, "{value}");
    let Value::Object(map) = &value else {
        unreachable!()
    };
    let encoded = protobuf_struct::encode_struct(map);
    // Re-encoded, nulls and numbers may take more bytes than they came in.
    if encoded.len() <= MAX_NAMESPACE_BYTES {
        assert_eq!(
            decode_struct(&encoded).map(Value::Object).as_ref(),
            Ok(&value)
        );
    }
    let unknown = |k: &String| !ROUTE_KEYS.contains(&k.as_str());
    match decode_route_override(bytes) {
        Ok(_) => assert!(!map.keys().any(unknown)),
        // A route key with a bad value, or an unknown key (shown shortened).
        Err(e) => assert!(
            ROUTE_KEYS.contains(&e.field.as_str())
                || map
                    .keys()
                    .any(|k| unknown(k) && k.starts_with(e.field.as_str())),
            "{e:?}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    check_struct(data);
    let wrapped = protobuf_struct::encode_metadata(METADATA_NAMESPACE, data);
    assert_eq!(namespace(&wrapped, METADATA_NAMESPACE), Ok(Some(data)));
    if let Ok(Some(ours)) = namespace(data, METADATA_NAMESPACE) {
        check_struct(ours);
    }
    let mut cache = RouteCache::default();
    let first = cache.resolve_metadata(config(), data);
    assert_eq!(cache.resolve_metadata(config(), data), first);
});
