//! A route's `metadata` as Envoy hands it to the filter: the serialized
//! `envoy.config.core.v3.Metadata`, whose `filter_metadata` maps each namespace to a
//! `google.protobuf.Struct` (property `xds.route_metadata`). Envoy turns the YAML or JSON of
//! the route into that message; this does the same from the parsed value, so that the
//! filter's own decoder (`RouteCache::resolve_metadata`) reads exactly what it reads in Envoy.

use serde_json::{Map, Value};

/// A length-delimited field.
fn field(number: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push((number << 3) | 2);
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
}

/// A serialized `google.protobuf.Value`. Every number is a double (`number_value`), as in
/// Envoy.
fn value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Null => out.extend_from_slice(&[0x08, 0]),
        Value::Bool(flag) => out.extend_from_slice(&[0x20, u8::from(*flag)]),
        Value::Number(n) => {
            out.push(0x11);
            out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
        }
        Value::String(text) => field(3, text.as_bytes(), &mut out),
        Value::Array(list) => {
            let mut items = Vec::new();
            for item in list {
                field(1, &self::value(item), &mut items);
            }
            field(6, &items, &mut out);
        }
        Value::Object(map) => field(5, &structure(map), &mut out),
    }
    out
}

/// A serialized `google.protobuf.Struct`.
pub fn structure(map: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, item) in map {
        let mut entry = Vec::new();
        field(1, key.as_bytes(), &mut entry);
        field(2, &value(item), &mut entry);
        field(1, &entry, &mut out);
    }
    out
}

/// A serialized `Metadata` with these `filter_metadata` namespaces.
pub fn metadata<'a>(
    namespaces: impl IntoIterator<Item = (&'a str, &'a Map<String, Value>)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, map) in namespaces {
        let mut entry = Vec::new();
        field(1, name.as_bytes(), &mut entry);
        field(2, &structure(map), &mut entry);
        field(1, &entry, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_wasm_lambda::{decode_metadata_struct, metadata_namespace};
    use serde_json::json;

    #[test]
    fn the_filter_decodes_what_is_encoded() {
        let ours = json!({
            "function": "f", "timeout_ms": 1500, "fraction": 0.5, "flag": true, "nothing": null,
            "custom_parameters": {"a": "b"}, "list": [1, "x", [true], {"k": "v"}],
            "long": "x".repeat(300),
        });
        let other = json!({"n": 1});
        let (Value::Object(ours), Value::Object(other)) = (ours, other) else {
            unreachable!()
        };
        let bytes = metadata([("envoy.lb", &other), ("proxy_wasm_lambda", &ours)]);
        let namespace = metadata_namespace(&bytes, "proxy_wasm_lambda")
            .unwrap()
            .unwrap();
        assert_eq!(decode_metadata_struct(namespace).unwrap(), ours);
        assert_eq!(metadata_namespace(&bytes, "absent").unwrap(), None);
    }
}
