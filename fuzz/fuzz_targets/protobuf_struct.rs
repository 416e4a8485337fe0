//! A JSON value as the protobuf Envoy hands to Wasm for route metadata: a
//! `google.protobuf.Struct`, and the `envoy.config.core.v3.Metadata` around it. Shared by
//! the `route_override` and `route_metadata` targets.

use serde_json::{Map, Value};

/// A length-delimited field.
pub fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2];
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
    out
}

/// A serialized `google.protobuf.Value`.
pub fn encode_value(value: &Value) -> Vec<u8> {
    match value {
        Value::Null => vec![0x08, 0],
        Value::Bool(flag) => vec![0x20, u8::from(*flag)],
        Value::Number(n) => {
            let mut out = vec![0x11];
            out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            out
        }
        Value::String(text) => field(3, text.as_bytes()),
        Value::Array(list) => {
            let items: Vec<u8> = list
                .iter()
                .flat_map(|v| field(1, &encode_value(v)))
                .collect();
            field(6, &items)
        }
        Value::Object(map) => field(5, &encode_struct(map)),
    }
}

/// A serialized `google.protobuf.Struct`.
pub fn encode_struct(map: &Map<String, Value>) -> Vec<u8> {
    map.iter()
        .flat_map(|(key, value)| {
            field(
                1,
                &[field(1, key.as_bytes()), field(2, &encode_value(value))].concat(),
            )
        })
        .collect()
}

/// A serialized `Metadata` whose `filter_metadata` has the namespace `name`.
pub fn encode_metadata(name: &str, namespace: &[u8]) -> Vec<u8> {
    field(
        1,
        &[field(1, name.as_bytes()), field(2, namespace)].concat(),
    )
}
