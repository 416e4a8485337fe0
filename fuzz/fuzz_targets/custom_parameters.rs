//! `merge_custom_parameters` on arbitrary passthrough bodies. Never panics; when it merges,
//! the result is the body's JSON object with the parameters as member `field` and every
//! other member unchanged; when it does not, the body is not a JSON object.
//!
//! Input: `k=v` lines (the parameters; a line starting with `@` names the field instead of
//! `custom_parameters`), a 0xFF byte, then the body.
#![no_main]

use proxy_wasm_lambda::{merge_custom_parameters, StringMap, CUSTOM_PARAMETERS_FIELD};

use libfuzzer_sys::fuzz_target;

use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (spec, body) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let mut field = CUSTOM_PARAMETERS_FIELD.to_string();
    let mut params = StringMap::new();
    for line in String::from_utf8_lossy(spec).split('\n') {
        if let Some(name) = line.strip_prefix('@') {
            field = name.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            params.insert(k.to_string(), v.to_string());
        }
    }
    let original = serde_json::from_slice::<Value>(body).ok();
    let Some(merged) = merge_custom_parameters(body, &field, &params) else {
        assert!(
            !original.as_ref().is_some_and(Value::is_object),
            "an object was not merged"
        );
        return;
    };
    let Some(Value::Object(mut original)) = original else {
        panic!("merged a body that is not a JSON object");
    };
    let merged: Value = match serde_json::from_slice(&merged) {
        Ok(merged) => merged,
        Err(e) => panic!(
            "merged body is not JSON ({e}): {}",
            String::from_utf8_lossy(&merged)
        ),
    };
    let Value::Object(mut merged) = merged else {
        panic!("merged body is not an object");
    };
    let expected: serde_json::Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    assert_eq!(merged.remove(&field), Some(Value::Object(expected)));
    original.remove(&field);
    assert!(
        same(
            &Value::Object(merged.clone()),
            &Value::Object(original.clone())
        ),
        "{merged:?} != {original:?}"
    );
});

/// Equal values, floats within an ulp: serde_json's default float parser (no
/// `float_roundtrip`) may read the shortest text of a float back one ulp off, so a body
/// rewritten from its parsed form can re-parse here one ulp away from the original parse
/// while its text is exact.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y || (x.to_bits().abs_diff(y.to_bits()) <= 1 && x.signum() == y.signum())
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same(vx, vy))
        }
        _ => a == b,
    }
}
