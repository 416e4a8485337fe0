//! The route's metadata as Envoy hands it to Wasm, decoded from the protobuf wire format.
//!
//! The property `xds.route_metadata` is a serialized `envoy.config.core.v3.Metadata`, whose
//! `filter_metadata` maps each namespace to a `google.protobuf.Struct`: every value keeps
//! its type. The namespace's own property (`xds.route_metadata.filter_metadata.<ns>`) is no
//! use: Envoy 1.40 serializes it in proxy-wasm's untyped pairs encoding (where 8 bytes of
//! text and a number look alike, and a map looks like text), and refuses the whole read
//! when any value in it is null.
//!
//! Bounded: at most [`MAX_NAMESPACE_BYTES`] of `Struct` and [`MAX_DEPTH`] levels of maps
//! and lists are decoded, every length is checked against the bytes left, and nothing
//! panics. Other namespaces are skipped unread.

use serde_json::{Map, Number, Value};

/// The deepest nesting of maps and lists decoded; the namespace's own map is level 1.
pub const MAX_DEPTH: usize = 32;

/// The largest namespace decoded, in bytes of its serialized `Struct`.
pub const MAX_NAMESPACE_BYTES: usize = 16 * 1024;

/// Why bytes are not a message of the expected type: completes "route metadata is …".
pub(crate) type Malformed = &'static str;

/// Truncated, or not the protobuf encoding of the expected message: Envoy never sends
/// such bytes, so one word does for every way of being broken.
const NOT_PROTOBUF: Malformed = "not valid protobuf";

/// A field's value as the wire format carries it.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    /// Unused by these messages: skipped.
    Fixed32,
}

fn take<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8], Malformed> {
    let (head, rest) = input.split_at_checked(len).ok_or(NOT_PROTOBUF)?;
    *input = rest;
    Ok(head)
}

fn varint(input: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(NOT_PROTOBUF)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(NOT_PROTOBUF)
}

/// The next field of a message: its number and its value.
fn next_field<'a>(input: &mut &'a [u8]) -> Result<(u64, Wire<'a>), Malformed> {
    let key = varint(input)?;
    let wire = match key & 7 {
        0 => Wire::Varint(varint(input)?),
        1 => {
            let bytes = take(input, 8)?.try_into().map_err(|_| NOT_PROTOBUF)?;
            Wire::Fixed64(u64::from_le_bytes(bytes))
        }
        2 => {
            let len = usize::try_from(varint(input)?).map_err(|_| NOT_PROTOBUF)?;
            Wire::Bytes(take(input, len)?)
        }
        5 => {
            take(input, 4)?;
            Wire::Fixed32
        }
        _ => return Err(NOT_PROTOBUF),
    };
    Ok((key >> 3, wire))
}

/// The next field 1 of a message, which must be length-delimited (an entry of a map, a
/// value of a `ListValue`), skipping other fields; `None` at the end.
fn next_entry<'a>(input: &mut &'a [u8]) -> Result<Option<&'a [u8]>, Malformed> {
    while !input.is_empty() {
        match next_field(input)? {
            (1, Wire::Bytes(bytes)) => return Ok(Some(bytes)),
            (1, _) => return Err(NOT_PROTOBUF),
            _ => {}
        }
    }
    Ok(None)
}

/// A map entry's key (field 1) and value (field 2), both length-delimited; either may be
/// left out when empty.
fn map_entry(entry: &[u8]) -> Result<(&[u8], &[u8]), Malformed> {
    let (mut key, mut value): (&[u8], &[u8]) = (&[], &[]);
    let mut input = entry;
    while !input.is_empty() {
        match next_field(&mut input)? {
            (1, Wire::Bytes(bytes)) => key = bytes,
            (2, Wire::Bytes(bytes)) => value = bytes,
            (1 | 2, _) => return Err(NOT_PROTOBUF),
            _ => {}
        }
    }
    Ok((key, value))
}

/// The serialized `Struct` of the namespace `name` in a serialized `Metadata` (field 1,
/// `filter_metadata`); `None` when the route has none. As protobuf does, the last of
/// repeated entries wins.
pub fn namespace<'a>(metadata: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, Malformed> {
    let mut found = None;
    let mut input = metadata;
    while let Some(entry) = next_entry(&mut input)? {
        let (key, value) = map_entry(entry)?;
        if key == name.as_bytes() {
            found = Some(value);
        }
    }
    Ok(found)
}

/// A serialized `google.protobuf.Struct` as a JSON object: numbers that are whole become
/// integers (`2` stays `2` in the JSON a function gets, not `2.0`), and numbers JSON cannot
/// hold (NaN, infinities) become `null`.
pub fn decode_struct(bytes: &[u8]) -> Result<Map<String, Value>, Malformed> {
    if bytes.len() > MAX_NAMESPACE_BYTES {
        return Err("larger than 16384 bytes");
    }
    struct_at(bytes, 1)
}

fn text(bytes: &[u8]) -> Result<String, Malformed> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8 text")
}

const TOO_DEEP: Malformed = "nested deeper than 32 maps and lists";

fn struct_at(bytes: &[u8], depth: usize) -> Result<Map<String, Value>, Malformed> {
    if depth > MAX_DEPTH {
        return Err(TOO_DEEP);
    }
    let mut map = Map::new();
    let mut input = bytes;
    while let Some(entry) = next_entry(&mut input)? {
        let (key, value) = map_entry(entry)?;
        map.insert(text(key)?, value_at(value, depth)?);
    }
    Ok(map)
}

/// A `google.protobuf.Value`: a oneof, of which the last field wins. A Value with no field
/// set is taken as null.
fn value_at(bytes: &[u8], depth: usize) -> Result<Value, Malformed> {
    let mut value = Value::Null;
    let mut input = bytes;
    while !input.is_empty() {
        value = match next_field(&mut input)? {
            (1, Wire::Varint(_)) => Value::Null,
            (2, Wire::Fixed64(bits)) => number(f64::from_bits(bits)),
            (3, Wire::Bytes(bytes)) => Value::String(text(bytes)?),
            (4, Wire::Varint(flag)) => Value::Bool(flag != 0),
            (5, Wire::Bytes(bytes)) => Value::Object(struct_at(bytes, depth + 1)?),
            (6, Wire::Bytes(bytes)) => Value::Array(list_at(bytes, depth + 1)?),
            (1..=6, _) => return Err(NOT_PROTOBUF),
            _ => continue,
        };
    }
    Ok(value)
}

/// A `google.protobuf.ListValue`: its values are field 1.
fn list_at(bytes: &[u8], depth: usize) -> Result<Vec<Value>, Malformed> {
    if depth > MAX_DEPTH {
        return Err(TOO_DEEP);
    }
    let mut list = Vec::new();
    let mut input = bytes;
    while let Some(value) = next_entry(&mut input)? {
        list.push(value_at(value, depth)?);
    }
    Ok(list)
}

/// Below 2^53 every whole f64 is exactly an integer.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < EXACT_INTEGERS {
        Value::from(n as i64)
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A length-delimited field.
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
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

    /// A JSON value as a serialized `google.protobuf.Value`.
    pub(crate) fn encode_value(value: &Value) -> Vec<u8> {
        match value {
            Value::Null => vec![0x08, 0],
            Value::Bool(flag) => vec![0x20, u8::from(*flag)],
            Value::Number(n) => {
                let mut out = vec![0x11];
                out.extend_from_slice(&n.as_f64().unwrap().to_le_bytes());
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

    /// A JSON object as a serialized `google.protobuf.Struct`.
    pub(crate) fn encode_struct(map: &Map<String, Value>) -> Vec<u8> {
        map.iter()
            .flat_map(|(key, value)| {
                field(
                    1,
                    &[field(1, key.as_bytes()), field(2, &encode_value(value))].concat(),
                )
            })
            .collect()
    }

    /// A serialized `Metadata` with these namespaces.
    pub(crate) fn encode_metadata(namespaces: &[(&str, &Value)]) -> Vec<u8> {
        namespaces
            .iter()
            .flat_map(|(name, value)| {
                let Value::Object(map) = value else {
                    panic!("a namespace is a map")
                };
                field(
                    1,
                    &[field(1, name.as_bytes()), field(2, &encode_struct(map))].concat(),
                )
            })
            .collect()
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// `xds.route_metadata` as Envoy 1.40 returned it for
    /// `{s8: abcdefgh, timeout_ms: 1000, custom_parameters: {action: x, n: 2},
    ///   function: other-fn, disabled: false, nul: null, lst: [a, 1, true, null, {k: v}]}`.
    const FROM_ENVOY: &str = "0add010a1170726f78795f7761736d5f6c616d62646112c7010a100a02733812\
        0a1a0861626364656667680a170a0a74696d656f75745f6d731209110000000000408f400a360a11637573\
        746f6d5f706172616d657465727312212a1f0a0e0a016e12091100000000000000400a0d0a06616374696f\
        6e12031a01780a160a0866756e6374696f6e120a1a086f746865722d666e0a0e0a0864697361626c656412\
        0220000a090a036e756c120208000a2f0a036c7374122832260a031a01610a0911000000000000f03f0a02\
        20010a0208000a0c2a0a0a080a016b12031a0176";

    #[test]
    fn decodes_what_envoy_sends() {
        let metadata = hex(FROM_ENVOY);
        let ours = namespace(&metadata, "proxy_wasm_lambda").unwrap().unwrap();
        assert_eq!(
            Value::Object(decode_struct(ours).unwrap()),
            json!({
                "s8": "abcdefgh",
                "timeout_ms": 1000,
                "custom_parameters": {"action": "x", "n": 2},
                "function": "other-fn",
                "disabled": false,
                "nul": null,
                "lst": ["a", 1, true, null, {"k": "v"}],
            })
        );
        assert_eq!(namespace(&metadata, "other").unwrap(), None);
        assert_eq!(namespace(&[], "proxy_wasm_lambda").unwrap(), None);
    }

    #[test]
    fn other_namespaces_are_skipped_and_the_last_entry_wins() {
        let first = json!({"function": "a"});
        let other = json!({"x": [1, 2]});
        let last = json!({"function": "b", "n": 1.5});
        let metadata = encode_metadata(&[
            ("proxy_wasm_lambda", &first),
            ("envoy.lb", &other),
            ("proxy_wasm_lambda", &last),
        ]);
        let ours = namespace(&metadata, "proxy_wasm_lambda").unwrap().unwrap();
        assert_eq!(Value::Object(decode_struct(ours).unwrap()), last);
    }

    #[test]
    fn round_trips_every_kind_of_value() {
        let value = json!({
            "text": "ünïcode", "empty": "", "zero": 0, "negative": -3, "fraction": 0.25,
            "big": 1e300, "yes": true, "no": false, "nothing": null,
            "list": [[], {}, [1, [2, {"deep": "x"}]]], "map": {"a": {"b": {"c": "d"}}},
        });
        let Value::Object(map) = &value else {
            unreachable!()
        };
        assert_eq!(
            Value::Object(decode_struct(&encode_struct(map)).unwrap()),
            value
        );
    }

    #[test]
    fn numbers_json_cannot_hold_are_null_and_whole_ones_are_integers() {
        for (bits, expected) in [
            (f64::NAN, Value::Null),
            (f64::INFINITY, Value::Null),
            (-0.0, json!(0)),
            (2.0, json!(2)),
            (EXACT_INTEGERS, json!(EXACT_INTEGERS)),
        ] {
            let mut value = vec![0x11];
            value.extend_from_slice(&bits.to_le_bytes());
            let entry = [field(1, b"n"), field(2, &value)].concat();
            assert_eq!(decode_struct(&field(1, &entry)).unwrap()["n"], expected);
        }
    }

    #[test]
    fn depth_is_bounded() {
        let mut value = json!("leaf");
        for _ in 0..MAX_DEPTH - 1 {
            value = json!([value]);
        }
        let at_limit = encode_struct(json!({"k": value}).as_object().unwrap());
        assert!(decode_struct(&at_limit).is_ok());
        let too_deep = encode_struct(json!({"k": [value]}).as_object().unwrap());
        assert_eq!(
            decode_struct(&too_deep),
            Err("nested deeper than 32 maps and lists")
        );
    }

    #[test]
    fn size_is_bounded() {
        let big = "x".repeat(MAX_NAMESPACE_BYTES);
        let map = json!({"k": big});
        assert_eq!(
            decode_struct(&encode_struct(map.as_object().unwrap())),
            Err("larger than 16384 bytes")
        );
    }

    #[test]
    fn malformed_bytes_are_errors() {
        let good = encode_struct(json!({"function": "f"}).as_object().unwrap());
        for cut in 1..good.len() {
            assert!(decode_struct(&good[..cut]).is_err(), "cut at {cut}");
        }
        // A varint that never ends, a wire type protobuf does not have, a length past the end.
        assert!(
            decode_struct(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .is_err()
        );
        assert!(decode_struct(&[0x0f]).is_err());
        assert!(decode_struct(&[0x0a, 0x7f, 0x00]).is_err());
        // The entries of a Struct must be length-delimited; text must be UTF-8.
        assert_eq!(decode_struct(&[0x08, 0x01]), Err(NOT_PROTOBUF));
        let entry = [field(1, &[0xff, 0xfe]), field(2, &[0x08, 0])].concat();
        assert_eq!(decode_struct(&field(1, &entry)), Err("not UTF-8 text"));
        assert!(namespace(&[0x08, 0x01], "proxy_wasm_lambda").is_err());
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // A fixed32, a varint and a fixed64 of field numbers no message here has.
        let mut bytes = vec![0x3d, 1, 2, 3, 4, 0x38, 0x05, 0x39];
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend(encode_struct(json!({"k": "v"}).as_object().unwrap()));
        assert_eq!(
            Value::Object(decode_struct(&bytes).unwrap()),
            json!({"k": "v"})
        );
    }
}
