//! Files as JSON values: YAML (one or more documents) or JSON.

use serde_json::{Map, Number, Value};

/// The documents of a YAML or JSON text; empty documents are left out. The error says why
/// the text cannot be read. `json_first`: the name says JSON, but (as Envoy and istio-agent
/// do) YAML is taken too.
pub fn documents(text: &str, json_first: bool) -> Result<Vec<Value>, String> {
    let trimmed = text.trim_start();
    let mut json_error = None;
    if json_first || trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => return Ok(vec![value]),
            // A YAML flow mapping also starts with `{`.
            Err(e) => json_error = Some(e),
        }
    }
    yaml_documents(text).map_err(|yaml| match json_error {
        Some(json) if json_first => format!("neither JSON ({json}) nor YAML ({yaml})"),
        _ => format!("not YAML: {yaml}"),
    })
}

fn yaml_documents(text: &str) -> Result<Vec<Value>, serde_yaml_ng::Error> {
    let mut documents = Vec::new();
    // After an error the deserializer yields that error again: stop at the first.
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let mut value: serde_yaml_ng::Value = serde::Deserialize::deserialize(document)?;
        value.apply_merge()?;
        let value = to_json(value);
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// A YAML value as JSON: tags are dropped, keys that are not text become their text.
fn to_json(value: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Yaml;
    match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(flag) => Value::Bool(flag),
        Yaml::Number(n) => {
            if let Some(n) = n.as_u64() {
                Value::from(n)
            } else if let Some(n) = n.as_i64() {
                Value::from(n)
            } else {
                n.as_f64()
                    .and_then(Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Yaml::String(text) => Value::String(text),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, item) in mapping {
                map.insert(key_text(key), to_json(item));
            }
            Value::Object(map)
        }
        Yaml::Tagged(tagged) => to_json(tagged.value),
    }
}

fn key_text(key: serde_yaml_ng::Value) -> String {
    match to_json(key) {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_documents_become_json() {
        let text = "---\na: 1\nb: [x, true, null, 1.5]\n---\n---\n{c: {1: two}}\n";
        assert_eq!(
            documents(text, false).unwrap(),
            vec![
                json!({"a": 1, "b": ["x", true, null, 1.5]}),
                json!({"c": {"1": "two"}})
            ]
        );
    }

    #[test]
    fn json_and_merge_keys() {
        assert_eq!(
            documents(r#"{"a": [1]}"#, true).unwrap(),
            vec![json!({"a": [1]})]
        );
        let text = "base: &b {x: 1}\nmerged:\n  <<: *b\n  y: 2\n";
        assert_eq!(
            documents(text, false).unwrap()[0]["merged"],
            json!({"x": 1, "y": 2})
        );
    }

    #[test]
    fn broken_input_is_an_error_not_a_panic() {
        assert!(documents("a: [1, 2\n", false).is_err());
        assert!(documents("a: 1\n---\nb: {\n", false).is_err());
        let err = documents("{\"a\": ", true).unwrap_err();
        assert!(err.starts_with("neither JSON (EOF while parsing"), "{err}");
        // A .json name with YAML in it (istio-agent reads either).
        assert_eq!(documents("a: 1\n", true).unwrap(), vec![json!({"a": 1})]);
        assert!(documents(&"[".repeat(10_000), false).is_err());
        assert!(documents("", false).unwrap().is_empty());
    }
}
