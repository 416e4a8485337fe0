//! Finds, in the documents of a file, every instance of the filter with its plugin
//! configuration and VM environment, and every route with its metadata, each with where it
//! is and the HTTP connection manager (scope) it belongs to.
//!
//! Which Wasm filter is this filter: a `PluginConfig` (the `config` of an
//! `envoy.extensions.filters.http.wasm.v3.Wasm`, also inside a `TypedStruct`) whose `root_id`,
//! `name` or `vm_config.vm_id` is `proxy_wasm_lambda`, or whose code (`local.filename`,
//! `remote.http_uri.uri`) names `proxy_wasm_lambda` or `proxy-wasm-lambda`; an Istio
//! `WasmPlugin` whose `pluginName` is `proxy_wasm_lambda` or whose `url` names the filter; an
//! Envoy Gateway `EnvoyExtensionPolicy` `wasm` entry whose `rootID` or `name` is the filter's or
//! whose code URL names it.

use serde_json::{Map, Value};

use crate::load;

/// The filter's name, root id and VM id in the shipped configurations.
pub const PLUGIN: &str = "proxy_wasm_lambda";

/// The plugin configuration as the filter gets it.
pub enum Configuration {
    Bytes(Vec<u8>),
    /// Envoy would hand the filter something that is not the JSON text: why.
    Refused(String),
}

pub struct Instance {
    pub location: String,
    pub configuration: Configuration,
    /// `vm_config.environment_variables.key_values` (a mesh's inline values).
    pub key_values: Vec<(String, String)>,
    /// `vm_config.environment_variables.host_env_keys` (a mesh's host keys).
    pub host_env_keys: Vec<String>,
    pub scope: Option<usize>,
}

pub struct Route {
    pub location: String,
    pub name: Option<String>,
    /// The route's `metadata`.
    pub metadata: Option<Value>,
    pub scope: Option<usize>,
}

#[derive(Default)]
pub struct Found {
    pub instances: Vec<Instance>,
    pub routes: Vec<Route>,
    /// Wasm filters that are not this filter.
    pub other_wasm: usize,
    /// Embedded configurations that cannot be parsed: (where, why).
    pub unreadable: Vec<(String, String)>,
    scopes: usize,
}

/// What is in the documents of one file.
pub fn find(documents: &[Value]) -> Found {
    let mut walk = Walk {
        found: Found::default(),
        labels: Vec::new(),
        scope: None,
        embedded: 0,
    };
    let many = documents.len() > 1;
    for (i, document) in documents.iter().enumerate() {
        let label = document_label(document, many.then_some(i + 1));
        walk.document(document, label);
    }
    walk.found
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Names the filter's code or image.
fn names_filter(location: &str) -> bool {
    location.contains(PLUGIN) || location.contains("proxy-wasm-lambda")
}

/// `document 2 (EnvoyFilter istio-system/proxy-wasm-lambda)`, `document 2`, or none.
fn document_label(document: &Value, number: Option<usize>) -> Option<String> {
    let kind = text(document, "/kind").filter(|_| document.get("apiVersion").is_some());
    let resource = kind.map(|kind| {
        match (
            text(document, "/metadata/namespace"),
            text(document, "/metadata/name"),
        ) {
            (Some(namespace), Some(name)) => format!("{kind} {namespace}/{name}"),
            (None, Some(name)) => format!("{kind} {name}"),
            (_, None) => kind.to_string(),
        }
    });
    match (number, resource) {
        (Some(n), Some(resource)) => Some(format!("document {n} ({resource})")),
        (Some(n), None) => Some(format!("document {n}")),
        (None, resource) => resource,
    }
}

fn quoted(kind: &str, name: Option<&str>, key: &str, index: usize) -> String {
    match name {
        Some(name) => format!("{kind} '{name}'"),
        None => format!("{key}[{index}]"),
    }
}

/// What an element of the array `key` is called in a location; `None` for an only element
/// of an array that needs no index.
fn element_label(key: &str, index: usize, item: &Value, count: usize) -> Option<String> {
    let name = item.get("name").and_then(Value::as_str);
    let type_url = item.get("@type").and_then(Value::as_str).unwrap_or("");
    Some(match key {
        "listeners" => quoted("listener", name, key, index),
        "clusters" => quoted("cluster", name, key, index),
        "virtual_hosts" => quoted("virtual host", name, key, index),
        "http_filters" | "upstream_http_filters" => format!("{key}[{index}]"),
        "resources" if type_url.ends_with(".Listener") => quoted("listener", name, key, index),
        "resources" if type_url.ends_with(".Cluster") => quoted("cluster", name, key, index),
        "resources" if type_url.ends_with(".RouteConfiguration") => {
            quoted("route configuration", name, key, index)
        }
        _ if count > 1 => format!("{key}[{index}]"),
        _ => return None,
    })
}

/// A route in a location: its name, or its index and match.
fn route_label(route: &Value, index: Option<usize>) -> String {
    if let Some(name) = route.get("name").and_then(Value::as_str) {
        if !name.is_empty() {
            return format!("route '{name}'");
        }
    }
    let matched = route.get("match").and_then(|m| {
        ["prefix", "path", "path_separated_prefix"]
            .iter()
            .find_map(|key| Some(format!("{key} '{}'", m.get(*key)?.as_str()?)))
            .or_else(|| Some(format!("regex '{}'", text(m, "/safe_regex/regex")?)))
    });
    let place = index.map_or("route".to_string(), |i| format!("routes[{i}]"));
    match matched {
        Some(matched) => format!("{place} ({matched})"),
        None => place,
    }
}

/// Configurations embedded in embedded configurations are read this deep, no deeper.
const MAX_EMBEDDED: usize = 8;

struct Walk {
    found: Found,
    labels: Vec<String>,
    scope: Option<usize>,
    /// How many embedded configurations the walk is inside.
    embedded: usize,
}

impl Walk {
    fn location(&self, last: Option<String>) -> String {
        let mut labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        if let Some(last) = &last {
            labels.push(last);
        }
        if labels.is_empty() {
            "top level".to_string()
        } else {
            labels.join(", ")
        }
    }

    fn within(&mut self, label: Option<String>, then: impl FnOnce(&mut Self)) {
        let pushed = label.is_some();
        self.labels.extend(label);
        then(self);
        if pushed {
            self.labels.pop();
        }
    }

    fn document(&mut self, document: &Value, label: Option<String>) {
        let kind = text(document, "/kind").filter(|_| document.get("apiVersion").is_some());
        self.within(label, |walk| match kind {
            Some("List") => {
                let items = document.get("items").and_then(Value::as_array);
                let count = items.map_or(0, Vec::len);
                for (i, item) in items.into_iter().flatten().enumerate() {
                    let label = document_label(item, None)
                        .map(|resource| format!("items[{i}] ({resource})"));
                    walk.document(
                        item,
                        label.or_else(|| (count > 1).then(|| format!("items[{i}]"))),
                    );
                }
            }
            Some("WasmPlugin") => walk.wasm_plugin(document),
            Some("EnvoyExtensionPolicy") => walk.extension_policy(document),
            Some("ConfigMap") => walk.config_map(document),
            Some("EnvoyProxy") => {
                if let Some(bootstrap) = document.pointer("/spec/bootstrap/value") {
                    walk.embedded(bootstrap, "spec.bootstrap.value".to_string(), false);
                }
            }
            _ => walk.value(document),
        });
    }

    /// A configuration embedded as text (a ConfigMap's file, an EnvoyProxy's bootstrap).
    fn embedded(&mut self, value: &Value, label: String, json: bool) {
        if self.embedded >= MAX_EMBEDDED {
            let location = self.location(Some(label));
            let why = format!("embedded more than {MAX_EMBEDDED} levels deep");
            self.found.unreadable.push((location, why));
            return;
        }
        self.embedded += 1;
        self.embedded_at(value, label, json);
        self.embedded -= 1;
    }

    fn embedded_at(&mut self, value: &Value, label: String, json: bool) {
        match value {
            Value::String(text) => match load::documents(text, json) {
                Ok(documents) => {
                    let many = documents.len() > 1;
                    self.within(Some(label), |walk| {
                        for (i, document) in documents.iter().enumerate() {
                            let label = document_label(document, many.then_some(i + 1));
                            walk.document(document, label);
                        }
                    });
                }
                Err(why) => {
                    let location = self.location(Some(label));
                    self.found.unreadable.push((location, why));
                }
            },
            // Already structured (an EnvoyProxy JSONPatch list, say).
            other => self.within(Some(label), |walk| walk.value(other)),
        }
    }

    fn config_map(&mut self, document: &Value) {
        let Some(data) = document.get("data").and_then(Value::as_object) else {
            return;
        };
        for (key, value) in data {
            let json = key.ends_with(".json");
            if json || key.ends_with(".yaml") || key.ends_with(".yml") {
                self.embedded(value, format!("data['{key}']"), json);
            }
        }
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Object(map) => self.object(map),
            Value::Array(items) => {
                for item in items {
                    self.value(item);
                }
            }
            _ => {}
        }
    }

    fn object(&mut self, map: &Map<String, Value>) {
        let type_url = map.get("@type").and_then(Value::as_str).unwrap_or("");
        if type_url.ends_with("envoy.extensions.filters.http.wasm.v3.Wasm") {
            if let Some(Value::Object(config)) = map.get("config") {
                self.plugin(config);
            }
            return;
        }
        if type_url.ends_with("envoy.extensions.wasm.v3.PluginConfig") {
            self.plugin(map);
            return;
        }
        if type_url.ends_with("type.v1.TypedStruct") || type_url.ends_with("type.v3.TypedStruct") {
            let inner = map.get("type_url").and_then(Value::as_str).unwrap_or("");
            if inner.ends_with("envoy.extensions.filters.http.wasm.v3.Wasm") {
                if let Some(Value::Object(config)) = map.get("value").and_then(|v| v.get("config"))
                {
                    self.plugin(config);
                }
                return;
            }
        }
        let outer = self.scope;
        if type_url.ends_with(".HttpConnectionManager") {
            self.scope = Some(self.found.scopes);
            self.found.scopes += 1;
        }
        for (key, child) in map {
            match child {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let label = if key == "configPatches" {
                            let apply_to = text(item, "/applyTo").unwrap_or("?");
                            Some(format!("configPatches[{i}] ({apply_to})"))
                        } else {
                            element_label(key, i, item, items.len())
                        };
                        self.within(label, |walk| {
                            if key == "virtual_hosts" {
                                walk.virtual_host(item);
                            } else if key == "configPatches" {
                                walk.config_patch(item);
                            }
                            walk.value(item);
                        });
                    }
                }
                Value::Object(_) => {
                    let name = child.get("name").and_then(Value::as_str);
                    let label = match (key.as_str(), name) {
                        ("listener", Some(name)) => Some(format!("listener '{name}'")),
                        ("route_config", Some(name)) if !name.is_empty() => {
                            Some(format!("route configuration '{name}'"))
                        }
                        _ => None,
                    };
                    self.within(label, |walk| walk.value(child));
                }
                _ => {}
            }
        }
        self.scope = outer;
    }

    fn virtual_host(&mut self, host: &Value) {
        let Some(routes) = host.get("routes").and_then(Value::as_array) else {
            return;
        };
        for (i, route) in routes.iter().enumerate() {
            self.route(route, route_label(route, Some(i)));
        }
    }

    fn route(&mut self, route: &Value, label: String) {
        let location = self.location(Some(label));
        self.found.routes.push(Route {
            location,
            name: route
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string),
            metadata: route.get("metadata").cloned(),
            scope: self.scope,
        });
    }

    /// An Istio EnvoyFilter patch that adds or merges a route or a virtual host.
    fn config_patch(&mut self, patch: &Value) {
        let Some(value) = patch.pointer("/patch/value") else {
            return;
        };
        match text(patch, "/applyTo") {
            Some("HTTP_ROUTE") => {
                let mut route = value.clone();
                // A MERGE into a named route: the route's name is in the match.
                if route.get("name").is_none() {
                    if let (Some(name), Value::Object(map)) = (
                        patch.pointer("/match/routeConfiguration/vhost/route/name"),
                        &mut route,
                    ) {
                        map.insert("name".to_string(), name.clone());
                    }
                }
                self.route(&route, route_label(&route, None));
            }
            Some("VIRTUAL_HOST") => self.virtual_host(value),
            _ => {}
        }
    }

    fn plugin(&mut self, config: &Map<String, Value>) {
        let config_text = |key: &str| config.get(key).and_then(Value::as_str);
        let vm = config.get("vm_config").cloned().unwrap_or(Value::Null);
        let ours = config_text("root_id") == Some(PLUGIN)
            || config_text("name") == Some(PLUGIN)
            || text(&vm, "/vm_id") == Some(PLUGIN)
            || ["/code/local/filename", "/code/remote/http_uri/uri"]
                .iter()
                .any(|pointer| text(&vm, pointer).is_some_and(names_filter));
        if !ours {
            self.found.other_wasm += 1;
            return;
        }
        let name = config_text("name")
            .or(config_text("root_id"))
            .filter(|name| !name.is_empty())
            .unwrap_or(PLUGIN);
        let configuration = any_configuration(config.get("configuration"));
        let env = vm.get("environment_variables");
        let key_values = env
            .and_then(|env| env.get("key_values"))
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .map(|(key, value)| (key.clone(), scalar_text(value)))
                    .collect()
            })
            .unwrap_or_default();
        let host_env_keys = strings(env.and_then(|env| env.get("host_env_keys")));
        self.instance(
            format!("plugin '{name}'"),
            configuration,
            key_values,
            host_env_keys,
        );
    }

    fn instance(
        &mut self,
        label: String,
        configuration: Configuration,
        key_values: Vec<(String, String)>,
        host_env_keys: Vec<String>,
    ) {
        let location = self.location(Some(label));
        self.found.instances.push(Instance {
            location,
            configuration,
            key_values,
            host_env_keys,
            scope: self.scope,
        });
    }

    /// Istio's WasmPlugin: istiod hands `pluginConfig` to the filter as JSON text.
    fn wasm_plugin(&mut self, document: &Value) {
        let Some(spec) = document.get("spec") else {
            return;
        };
        let ours = text(spec, "/pluginName") == Some(PLUGIN)
            || text(spec, "/url").is_some_and(names_filter);
        if !ours {
            self.found.other_wasm += 1;
            return;
        }
        let mut key_values = Vec::new();
        let mut host_env_keys = Vec::new();
        for variable in spec
            .pointer("/vmConfig/env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = text(variable, "/name") else {
                continue;
            };
            if text(variable, "/valueFrom") == Some("HOST") {
                host_env_keys.push(name.to_string());
            } else {
                let value = variable.get("value").map(scalar_text).unwrap_or_default();
                key_values.push((name.to_string(), value));
            }
        }
        let configuration = json_configuration(spec.get("pluginConfig"));
        self.instance(
            "spec.pluginConfig".to_string(),
            configuration,
            key_values,
            host_env_keys,
        );
    }

    /// Envoy Gateway's EnvoyExtensionPolicy: each `wasm` entry's `config` reaches the filter
    /// as JSON text.
    fn extension_policy(&mut self, document: &Value) {
        let entries = document.pointer("/spec/wasm").and_then(Value::as_array);
        for (i, entry) in entries.into_iter().flatten().enumerate() {
            let ours = text(entry, "/rootID") == Some(PLUGIN)
                || text(entry, "/name")
                    .is_some_and(|name| name == PLUGIN || name == "proxy-wasm-lambda")
                || ["/code/image/url", "/code/http/url"]
                    .iter()
                    .any(|pointer| text(entry, pointer).is_some_and(names_filter));
            if !ours {
                self.found.other_wasm += 1;
                continue;
            }
            let label = match text(entry, "/name") {
                Some(name) => format!("spec.wasm[{i}] '{name}'"),
                None => format!("spec.wasm[{i}]"),
            };
            let host_env_keys = strings(entry.pointer("/env/hostKeys"));
            let configuration = json_configuration(entry.get("config"));
            self.instance(label, configuration, Vec::new(), host_env_keys);
        }
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(scalar_text)
        .collect()
}

/// A value Envoy reads as a string (a YAML number or bool written unquoted becomes its text).
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A mesh's structured configuration: the filter gets it as JSON text, none when absent.
fn json_configuration(config: Option<&Value>) -> Configuration {
    match config {
        None | Some(Value::Null) => Configuration::Bytes(Vec::new()),
        Some(value) => Configuration::Bytes(value.to_string().into_bytes()),
    }
}

/// A PluginConfig's `configuration` (a `google.protobuf.Any`) as Envoy hands it to the
/// filter: a StringValue's text, a BytesValue's bytes, and of any other message its
/// serialized protobuf, which is not the JSON the filter reads.
fn any_configuration(configuration: Option<&Value>) -> Configuration {
    use base64::Engine;
    let Some(configuration) = configuration.filter(|c| !c.is_null()) else {
        return Configuration::Bytes(Vec::new());
    };
    let type_url = configuration
        .get("@type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = configuration.get("value");
    if type_url.ends_with("/google.protobuf.StringValue") {
        return match value {
            None | Some(Value::Null) => Configuration::Bytes(Vec::new()),
            Some(Value::String(text)) => Configuration::Bytes(text.clone().into_bytes()),
            Some(_) => Configuration::Refused(
                "is a google.protobuf.StringValue whose value is not a string: Envoy refuses it"
                    .to_string(),
            ),
        };
    }
    if type_url.ends_with("/google.protobuf.BytesValue") {
        let encoded = value.and_then(Value::as_str).unwrap_or("");
        return match base64::engine::general_purpose::STANDARD.decode(encoded) {
            Ok(bytes) => Configuration::Bytes(bytes),
            Err(_) => Configuration::Refused(
                "is a google.protobuf.BytesValue whose value is not base64: Envoy refuses it"
                    .to_string(),
            ),
        };
    }
    let shown = if type_url.is_empty() {
        "has no @type".to_string()
    } else {
        format!("is a {}", type_url.rsplit('/').next().unwrap_or(type_url))
    };
    Configuration::Refused(format!(
        "{shown}: Envoy hands the filter only a google.protobuf.StringValue's text (or a \
         BytesValue's bytes) as they are, and of any other message its protobuf bytes, which \
         are not JSON: give the JSON as {{\"@type\": \
         \"type.googleapis.com/google.protobuf.StringValue\", value: '{{...}}'}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bootstrap() -> Value {
        json!({"static_resources": {"listeners": [{
            "name": "api",
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "route_config": {"virtual_hosts": [{"name": "vh", "routes": [
                        {"name": "one", "match": {"prefix": "/"}},
                        {"match": {"path": "/two"}, "metadata": {"filter_metadata": {"proxy_wasm_lambda": {"function": "g"}}}}
                    ]}]},
                    "http_filters": [
                        {"name": "envoy.filters.http.wasm", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                            "config": {"root_id": "other", "vm_config": {"code": {"local": {"filename": "other.wasm"}}}}}},
                        {"name": "envoy.filters.http.wasm", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                            "config": {
                                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "{\"function\": \"f\"}"},
                                "vm_config": {
                                    "code": {"local": {"filename": "/etc/envoy/proxy_wasm_lambda.wasm"}},
                                    "environment_variables": {"host_env_keys": ["A"], "key_values": {"B": "b", "C": 5}}
                                }
                            }}}
                    ]
                }
            }]}]
        }]}})
    }

    #[test]
    fn finds_the_filter_and_routes_of_a_listener() {
        let found = find(&[bootstrap()]);
        assert_eq!(found.other_wasm, 1);
        let [instance] = found.instances.as_slice() else {
            panic!("one instance")
        };
        assert_eq!(
            instance.location,
            "listener 'api', http_filters[1], plugin 'proxy_wasm_lambda'"
        );
        assert!(
            matches!(&instance.configuration, Configuration::Bytes(b) if b == br#"{"function": "f"}"#)
        );
        assert_eq!(instance.host_env_keys, ["A"]);
        assert_eq!(
            instance.key_values,
            [
                ("B".to_string(), "b".to_string()),
                ("C".to_string(), "5".to_string())
            ]
        );
        let locations: Vec<&str> = found.routes.iter().map(|r| r.location.as_str()).collect();
        assert_eq!(
            locations,
            [
                "listener 'api', virtual host 'vh', route 'one'",
                "listener 'api', virtual host 'vh', routes[1] (path '/two')"
            ]
        );
        assert!(found
            .routes
            .iter()
            .all(|r| r.scope == instance.scope && r.scope.is_some()));
    }

    #[test]
    fn kubernetes_documents() {
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "envoy", "namespace": "ns"},
            "data": {"envoy.yaml": serde_json::to_string(&bootstrap()).unwrap(), "other.txt": "{"}});
        let plugin = json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "p"},
            "spec": {"pluginName": "proxy_wasm_lambda", "pluginConfig": {"function": "f"},
                     "vmConfig": {"env": [{"name": "H", "valueFrom": "HOST"}, {"name": "I", "value": "v"}]}}});
        let policy = json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyExtensionPolicy",
            "metadata": {"name": "e"},
            "spec": {"wasm": [{"name": "x", "code": {"image": {"url": "r/proxy-wasm-lambda:1"}},
                               "config": {"function": "g"}, "env": {"hostKeys": ["K"]}}]}});
        let filter = json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
        "metadata": {"name": "f"},
        "spec": {"configPatches": [
            {"applyTo": "EXTENSION_CONFIG", "patch": {"value": {"typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {"root_id": "proxy_wasm_lambda",
                           "configuration": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}}}}}},
            {"applyTo": "HTTP_ROUTE",
             "match": {"routeConfiguration": {"vhost": {"route": {"name": "r"}}}},
             "patch": {"operation": "MERGE", "value": {"metadata": {"filter_metadata": {"proxy_wasm_lambda": {"function": "h"}}}}}}
        ]}});
        let found = find(&[config_map, plugin, policy, filter]);
        let locations: Vec<&str> = found
            .instances
            .iter()
            .map(|i| i.location.as_str())
            .collect();
        assert_eq!(
            locations,
            [
                "document 1 (ConfigMap ns/envoy), data['envoy.yaml'], listener 'api', http_filters[1], plugin 'proxy_wasm_lambda'",
                "document 2 (WasmPlugin p), spec.pluginConfig",
                "document 3 (EnvoyExtensionPolicy e), spec.wasm[0] 'x'",
                "document 4 (EnvoyFilter f), configPatches[0] (EXTENSION_CONFIG), plugin 'proxy_wasm_lambda'",
            ]
        );
        assert!(
            matches!(&found.instances[1].configuration, Configuration::Bytes(b) if b == br#"{"function":"f"}"#)
        );
        assert_eq!(found.instances[1].host_env_keys, ["H"]);
        assert_eq!(
            found.instances[1].key_values,
            [("I".to_string(), "v".to_string())]
        );
        assert_eq!(found.instances[2].host_env_keys, ["K"]);
        assert!(
            matches!(&found.instances[3].configuration, Configuration::Refused(why) if why.starts_with("is a google.protobuf.Struct"))
        );
        let route = found.routes.last().unwrap();
        assert_eq!(
            route.location,
            "document 4 (EnvoyFilter f), configPatches[1] (HTTP_ROUTE), route 'r'"
        );
        assert_eq!(route.scope, None);
        assert!(found.unreadable.is_empty());
    }

    #[test]
    fn embedding_is_bounded() {
        let mut document = bootstrap();
        for _ in 0..=MAX_EMBEDDED {
            document = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"envoy.json": document.to_string()}});
        }
        let found = find(&[document]);
        assert!(found.instances.is_empty());
        assert_eq!(found.unreadable.len(), 1);
        assert!(found.unreadable[0].1.contains("levels deep"));
    }

    #[test]
    fn an_embedded_bootstrap_that_does_not_parse_is_unreadable() {
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"envoy.yaml": "a: [1"}});
        let found = find(&[config_map]);
        assert_eq!(found.unreadable.len(), 1);
        assert_eq!(found.unreadable[0].0, "ConfigMap c, data['envoy.yaml']");
    }
}
