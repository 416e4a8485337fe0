//! The one table of target keys: every key a plugin configuration and a route's metadata
//! share. From it follow [`TargetSettings`], the key lists of both places, the reader of the
//! plugin configuration, the merge of a route's overrides, and the field a route key sets.
//! Adding a key means a line here, the code that uses it, and the docs.

use super::*;

/// A target key's field, for the route-metadata decoder: the field's type tells how the
/// value is decoded.
pub enum TargetField<'a> {
    Text(&'a mut Option<String>),
    Status(&'a mut Option<u16>),
    Integer(&'a mut Option<u64>),
    Flag(&'a mut Option<bool>),
    Strings(&'a mut Option<StringMap>),
    Json(&'a mut Option<Value>),
}

macro_rules! target_keys {
    ($($key:ident: $kind:ident),* $(,)?) => {
        /// The keys a route may override, all optional. Also the non-credential part of
        /// the plugin configuration.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct TargetSettings {
            $(pub $key: Option<target_keys!(@type $kind)>,)*
        }

        /// The target keys, in the order of the table.
        #[cfg(test)]
        pub(crate) const TARGET_KEYS: &[&str] = &[$(stringify!($key)),*];

        /// The keys of the plugin configuration: the target keys, then the plugin's own.
        pub(super) const CONFIG_KEYS: &[&str] =
            &[$(stringify!($key),)* "credentials", "credential_profiles", "split_placement",
              "invoke_histograms"];

        /// The keys of a route's metadata: the target keys, then the route's own.
        pub const ROUTE_KEYS: &[&str] = &[$(stringify!($key),)* "credentials", "disabled"];

        impl TargetSettings {
            /// Reads the target keys of the plugin configuration.
            pub(super) fn read(fields: &mut Fields) -> TargetSettings {
                TargetSettings {
                    $($key: target_keys!(@read fields, $kind, stringify!($key)),)*
                }
            }

            /// Every key the route sets replaces the plugin's.
            pub(super) fn take_set(&mut self, route: &TargetSettings) {
                $(if route.$key.is_some() {
                    self.$key = route.$key.clone();
                })*
            }

            /// The field of a target key; `None` for any other key.
            pub fn field(&mut self, key: &str) -> Option<TargetField<'_>> {
                Some(match key {
                    $(stringify!($key) => target_keys!(@field self.$key, $kind),)*
                    _ => return None,
                })
            }
        }
    };
    (@type text) => { String };
    (@type status) => { u16 };
    (@type integer) => { u64 };
    (@type flag) => { bool };
    (@type strings) => { StringMap };
    (@type json) => { Value };
    (@read $fields:ident, text, $key:expr) => { $fields.string($key) };
    (@read $fields:ident, status, $key:expr) => { $fields.u16($key) };
    (@read $fields:ident, integer, $key:expr) => { $fields.u64($key) };
    (@read $fields:ident, flag, $key:expr) => { $fields.bool($key) };
    (@read $fields:ident, strings, $key:expr) => { $fields.string_map($key) };
    (@read $fields:ident, json, $key:expr) => { $fields.value($key) };
    (@field $place:expr, text) => { TargetField::Text(&mut $place) };
    (@field $place:expr, status) => { TargetField::Status(&mut $place) };
    (@field $place:expr, integer) => { TargetField::Integer(&mut $place) };
    (@field $place:expr, flag) => { TargetField::Flag(&mut $place) };
    (@field $place:expr, strings) => { TargetField::Strings(&mut $place) };
    (@field $place:expr, json) => { TargetField::Json(&mut $place) };
}

target_keys! {
    function: text,
    qualifier: text,
    region: text,
    endpoint: text,
    invocation_type: text,
    payload: text,
    function_error_status: status,
    timeout_ms: integer,
    cluster: text,
    stage: text,
    route_key: text,
    api_id: text,
    resource: text,
    target_group_arn: text,
    multi_value_headers: flag,
    custom_parameters: strings,
    log_type: text,
    expose_log_result: flag,
    client_context: json,
    invoke_mode: text,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_key_is_in_both_key_lists_and_has_its_field() {
        for key in TARGET_KEYS {
            assert!(CONFIG_KEYS.contains(key), "{key}");
            assert!(ROUTE_KEYS.contains(key), "{key}");
            assert!(TargetSettings::default().field(key).is_some(), "{key}");
        }
        assert_eq!(CONFIG_KEYS.len(), TARGET_KEYS.len() + 4);
        assert_eq!(ROUTE_KEYS.len(), TARGET_KEYS.len() + 2);
        assert!(TargetSettings::default().field("credentials").is_none());
    }

    #[test]
    fn a_route_key_sets_the_field_of_its_name() {
        let mut settings = TargetSettings::default();
        for key in TARGET_KEYS {
            match settings.field(key) {
                Some(TargetField::Text(field)) => *field = Some(key.to_string()),
                Some(TargetField::Status(field)) => *field = Some(503),
                Some(TargetField::Integer(field)) => *field = Some(7),
                Some(TargetField::Flag(field)) => *field = Some(true),
                Some(TargetField::Strings(field)) => *field = Some(StringMap::new()),
                Some(TargetField::Json(field)) => *field = Some(Value::Null),
                None => panic!("{key}"),
            }
        }
        assert_eq!(settings.function.as_deref(), Some("function"));
        assert_eq!(settings.invoke_mode.as_deref(), Some("invoke_mode"));
        assert_eq!(settings.function_error_status, Some(503));
        assert_eq!(settings.timeout_ms, Some(7));
        assert_eq!(settings.expose_log_result, Some(true));
        let mut merged = TargetSettings::default();
        merged.take_set(&settings);
        assert_eq!(merged, settings);
    }
}
