//! Typed reads of the configuration's JSON members that track the field path, the
//! configuration error, and the small validators every part shares.

use super::*;
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field '{}': {}", self.field, self.message)
    }
}

/// Typed reads of one JSON object's members that track the field path, in place of serde
/// derives (whose per-struct code is large in the .wasm). As with serde's
/// `deny_unknown_fields`, keys not in `known` are errors, `null` counts as absent, and of
/// several bad members the one whose key sorts first is reported.
pub(crate) struct Fields {
    /// The path of this object with a trailing `.`, or empty at the top level.
    prefix: String,
    map: Map<String, Value>,
    known: &'static [&'static str],
    /// The first error by key order: (key, error).
    error: Option<(String, ConfigError)>,
}

impl Fields {
    /// `expecting` describes the object in type errors (serde's wording, e.g.
    /// `struct RawCredentials`); `path` is its field path, empty at the top level.
    pub(crate) fn new(
        path: &str,
        value: Value,
        expecting: &str,
        known: &'static [&'static str],
    ) -> Result<Fields, ConfigError> {
        match value {
            Value::Object(map) => Ok(Fields {
                prefix: if path.is_empty() {
                    String::new()
                } else {
                    format!("{path}.")
                },
                map,
                known,
                error: None,
            }),
            other => Err(ConfigError::new(
                if path.is_empty() {
                    "configuration"
                } else {
                    path
                },
                invalid_type(&other, expecting),
            )),
        }
    }

    fn fail(&mut self, key: &str, error: ConfigError) {
        if self
            .error
            .as_ref()
            .is_none_or(|(first, _)| key < first.as_str())
        {
            self.error = Some((key.to_string(), error));
        }
    }

    fn fail_at(&mut self, key: &str, message: String) {
        let error = ConfigError::new(&format!("{}{key}", self.prefix), message);
        self.fail(key, error);
    }

    /// The member `key`, absent when missing or `null`.
    pub(crate) fn value(&mut self, key: &str) -> Option<Value> {
        self.map
            .get_mut(key)
            .map(Value::take)
            .filter(|v| !v.is_null())
    }

    pub(crate) fn string(&mut self, key: &str) -> Option<String> {
        match self.value(key)? {
            Value::String(s) => Some(s),
            other => {
                self.fail_at(key, invalid_type(&other, "a string"));
                None
            }
        }
    }

    pub(crate) fn secret(&mut self, key: &str) -> Option<Secret> {
        self.string(key).map(Secret::new)
    }

    pub(crate) fn bool(&mut self, key: &str) -> Option<bool> {
        match self.value(key)? {
            Value::Bool(b) => Some(b),
            other => {
                self.fail_at(key, invalid_type(&other, "a boolean"));
                None
            }
        }
    }

    /// An unsigned integer of at most `max`; `ty` names the type in errors (`u64`, `u16`).
    fn unsigned(&mut self, key: &str, max: u64, ty: &str) -> Option<u64> {
        let value = self.value(key)?;
        let message = match &value {
            Value::Number(n) => match n.as_u64() {
                Some(n) if n <= max => return Some(n),
                _ if n.is_f64() => invalid_type(&value, ty),
                _ => format!("invalid value: integer `{n}`, expected {ty}"),
            },
            _ => invalid_type(&value, ty),
        };
        self.fail_at(key, message);
        None
    }

    pub(crate) fn u64(&mut self, key: &str) -> Option<u64> {
        self.unsigned(key, u64::MAX, "u64")
    }

    pub(crate) fn u16(&mut self, key: &str) -> Option<u16> {
        self.unsigned(key, u64::from(u16::MAX), "u16")
            .and_then(|n| u16::try_from(n).ok())
    }

    /// An object of string values.
    pub(crate) fn string_map(&mut self, key: &str) -> Option<StringMap> {
        match self.value(key)? {
            Value::Object(map) => {
                let mut strings = StringMap::new();
                for (name, value) in map {
                    match value {
                        Value::String(s) => {
                            strings.insert(name, s);
                        }
                        other => {
                            let message = invalid_type(&other, "a string");
                            let error =
                                ConfigError::new(&format!("{}{key}.{name}", self.prefix), message);
                            self.fail(key, error);
                            return None;
                        }
                    }
                }
                Some(strings)
            }
            other => {
                self.fail_at(key, invalid_type(&other, "a map"));
                None
            }
        }
    }

    /// A nested object, read by `read`; its errors count as this member's.
    pub(crate) fn object<T>(
        &mut self,
        key: &str,
        expecting: &str,
        known: &'static [&'static str],
        read: impl FnOnce(&mut Fields) -> T,
    ) -> Option<T> {
        let value = self.value(key)?;
        let path = format!("{}{key}", self.prefix);
        let result = Fields::new(&path, value, expecting, known).and_then(|mut fields| {
            let read = read(&mut fields);
            fields.finish().map(|()| read)
        });
        match result {
            Ok(read) => Some(read),
            Err(error) => {
                self.fail(key, error);
                None
            }
        }
    }

    /// The first error, including keys that are not in `known`.
    pub(crate) fn finish(mut self) -> Result<(), ConfigError> {
        let map = std::mem::take(&mut self.map);
        if let Some(key) = map.keys().find(|key| !self.known.contains(&key.as_str())) {
            let mut message = format!("unknown field `{key}`, expected one of ");
            for (i, known) in self.known.iter().enumerate() {
                if i > 0 {
                    message.push_str(", ");
                }
                message.push('`');
                message.push_str(known);
                message.push('`');
            }
            self.fail_at(key, message);
        }
        match self.error {
            Some((_, error)) => Err(error),
            None => Ok(()),
        }
    }
}

pub(crate) fn json_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// serde_json's wording for a value of the wrong type.
pub(super) fn invalid_type(value: &Value, expected: &str) -> String {
    let unexpected = match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean `{b}`"),
        // Written as JSON (not with Display/Debug) to keep float and Unicode-escape
        // formatting code out of the .wasm.
        Value::Number(n) if n.is_f64() => format!("floating point `{}`", json_text(value)),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(_) => format!("string {}", json_text(value)),
        Value::Array(_) => "sequence".to_string(),
        Value::Object(_) => "map".to_string(),
    };
    format!("invalid type: {unexpected}, expected {expected}")
}

pub(super) fn without_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// A TCP port as a URL or Host header writes it: 1 to 65535, in digits only (`str::parse`
/// alone would take `+443`).
pub(crate) fn is_port(port: &str) -> bool {
    !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// A DNS name with an optional port: the Host header, not a URL. `field` names the key in
/// errors and `example` shows a good value.
pub(crate) fn validate_host(
    endpoint: &str,
    field: &str,
    example: &str,
) -> Result<String, ConfigError> {
    let bad = |why: String| ConfigError::new(field, format!("'{endpoint}' {why}"));
    let (host, port) = match endpoint.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (endpoint, None),
    };
    if let Some(port) = port {
        if !is_port(port) {
            return Err(bad(format!(
                "has a bad port; give a host name like {example}"
            )));
        }
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(bad(format!(
            "must be a host name like {example} (no scheme or path)"
        )));
    }
    Ok(endpoint.to_ascii_lowercase())
}

pub(super) fn cluster_name(
    value: Option<&String>,
    field: &str,
    what: &str,
) -> Result<String, ConfigError> {
    let cluster = value.ok_or_else(|| {
        ConfigError::new(
            field,
            format!("is required: the Envoy cluster that reaches {what}"),
        )
    })?;
    if cluster.is_empty() || cluster.len() > 255 || cluster.chars().any(char::is_control) {
        return Err(ConfigError::new(
            field,
            "must be a non-empty Envoy cluster name",
        ));
    }
    Ok(cluster.clone())
}
