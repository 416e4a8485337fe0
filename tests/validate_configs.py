#!/usr/bin/env python3
"""Every shipped Envoy config passes `envoy --mode validate` with the built filter, and the
filter accepts its plugin configuration (on_configure runs during validation).

Checked:
- the Envoy bootstraps in envoy/ and examples/*/envoy.yaml;
- the Envoy bootstraps embedded in the deploy/ manifests (a ConfigMap's envoy.yaml, an
  EnvoyProxy's bootstrap), as shipped;
- the plugin configuration of every deploy/ manifest that carries one (Istio WasmPlugin
  pluginConfig, Istio EnvoyFilter Wasm extension config, Envoy Gateway EnvoyExtensionPolicy
  wasm config): put into a minimal bootstrap with the built filter, so the filter itself
  accepts or rejects it;
- every deploy/ manifest parses as YAML, each document has apiVersion, kind and metadata.name,
  and the fields used in the Istio and Envoy Gateway resources are those of their APIs (the
  field lists below were read from istio/api extensions/v1alpha1/wasm.proto,
  networking/v1alpha3/envoy_filter.proto and service_entry.proto, and from Envoy Gateway's
  api/v1alpha1 wasm and policy types).
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WASM = os.environ.get("LAMBDA_WASM", str(ROOT / "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm"))
ENVOY = os.environ.get("ENVOY_BIN") or str(Path(sys.executable).parent / "envoy")
WASM_PATHS = (
    "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm",
    "/etc/envoy/proxy_wasm_lambda.wasm",
    "/etc/envoy/wasm/proxy_wasm_lambda.wasm",
)
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


def validate_text(text: str) -> tuple[bool, str]:
    for path in WASM_PATHS:
        text = text.replace(f"filename: {path}", f"filename: {WASM}")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDVALIDATEONLY0001", AWS_SECRET_ACCESS_KEY="validate-only",
               LAMBDA_EXTERNAL_ID="validate-only-external-id",
               # envoy/multi-account.yaml: one ExternalId per tenant
               TENANT_A_EXTERNAL_ID="validate-only-tenant-a", TENANT_B_EXTERNAL_ID="validate-only-tenant-b")
    try:
        result = subprocess.run(
            [ENVOY, "--mode", "validate", "-c", f.name, "--disable-hot-restart", "-l", "warn"],
            capture_output=True, text=True, env=env, timeout=120,
        )
    finally:
        os.unlink(f.name)
    return result.returncode == 0, result.stdout + result.stderr


def validate(config: Path) -> tuple[bool, str]:
    return validate_text(config.read_text())


# ------------------------------------------------------------------------------ deploy/
def manifests() -> list[tuple[Path, int, dict]]:
    docs = []
    for path in sorted((ROOT / "deploy").rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                docs.append((path, i, doc))
    return docs


def wasm_bootstrap(wasm_config: dict) -> str:
    """A minimal bootstrap running the filter with `wasm_config` (a Wasm PluginConfig)."""
    return yaml.safe_dump({
        "static_resources": {
            "listeners": [{
                "name": "validate",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                 "http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "validate",
                        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "route": {"cluster": "lambda"}}]}]},
                        "http_filters": [
                            {"name": "envoy.filters.http.wasm", "typed_config": {"@type": WASM_TYPE, "config": wasm_config}},
                            {"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                        ],
                    },
                }]}],
            }],
            "clusters": [{"name": "lambda", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
                "cluster_name": "lambda", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                    "socket_address": {"address": "127.0.0.1", "port_value": 5000}}}}]}]}}],
        },
    })


def plugin_wasm_config(plugin_json: str, host_env_keys: list[str]) -> dict:
    return {
        "name": "proxy_wasm_lambda",
        "root_id": "proxy_wasm_lambda",
        "allow_on_headers_stop_iteration": True,
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": plugin_json},
        "vm_config": {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": WASM}},
                      "environment_variables": {"host_env_keys": host_env_keys}},
    }


def deploy_envoy_configs(docs) -> list[tuple[str, str]]:
    """(label, bootstrap YAML) for every Envoy config shipped inside deploy/ manifests."""
    out = []
    for path, i, doc in docs:
        where = f"{path.relative_to(ROOT)}[{i}] {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        kind, spec = doc.get("kind"), doc.get("spec") or {}
        if kind == "ConfigMap":
            for key, text in (doc.get("data") or {}).items():
                if key.endswith((".yaml", ".yml")) and "static_resources" in text:
                    out.append((f"{where} {key}", text))
        elif kind == "EnvoyProxy" and (spec.get("bootstrap") or {}).get("value"):
            out.append((f"{where} bootstrap (the part merged into Envoy Gateway's)", spec["bootstrap"]["value"]))
        elif kind == "WasmPlugin":
            env = [e["name"] for e in (spec.get("vmConfig") or {}).get("env", []) if e.get("valueFrom") == "HOST"]
            out.append((f"{where} pluginConfig", wasm_bootstrap(plugin_wasm_config(json.dumps(spec["pluginConfig"]), env))))
        elif kind == "EnvoyExtensionPolicy":
            for w in spec.get("wasm", []):
                env = (w.get("env") or {}).get("hostKeys", [])
                out.append((f"{where} wasm {w.get('name')} config",
                            wasm_bootstrap(plugin_wasm_config(json.dumps(w["config"]), env))))
        elif kind == "EnvoyFilter":
            for patch in spec.get("configPatches", []):
                value = (patch.get("patch") or {}).get("value") or {}
                typed = value.get("typed_config") or {}
                if patch.get("applyTo") == "EXTENSION_CONFIG" and typed.get("@type") == WASM_TYPE:
                    config = copy.deepcopy(typed["config"])
                    # istio-agent turns the remote (OCI) code into a local file; do the same.
                    config["vm_config"]["code"] = {"local": {"filename": WASM}}
                    out.append((f"{where} extension config {value.get('name')}", wasm_bootstrap(config)))
    return out


# Field names checked against the APIs (see the module docstring). A key not listed is an error.
WASMPLUGIN_SPEC = {"selector", "targetRefs", "url", "sha256", "imagePullPolicy", "imagePullSecret",
                   "verificationKey", "pluginConfig", "pluginName", "phase", "priority", "failStrategy",
                   "vmConfig", "match", "type"}
ENUMS = {
    ("WasmPlugin", "phase"): {"UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"},
    ("WasmPlugin", "failStrategy"): {"FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"},
    ("WasmPlugin", "imagePullPolicy"): {"UNSPECIFIED_POLICY", "IfNotPresent", "Always"},
    ("WasmPlugin", "type"): {"UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"},
}
EEP_WASM = {"name", "rootID", "code", "config", "failOpen", "env"}
EEP_CODE = {"type", "http", "image", "pullPolicy", "sha256"}
EEP_IMAGE = {"url", "sha256", "pullSecretRef", "tls"}
ENVOYFILTER_SPEC = {"workloadSelector", "configPatches"}
ENVOYFILTER_APPLYTO = {"LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER", "ROUTE_CONFIGURATION",
                       "VIRTUAL_HOST", "HTTP_ROUTE", "CLUSTER", "EXTENSION_CONFIG"}
ENVOYFILTER_OPS = {"MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE"}
SERVICEENTRY_SPEC = {"hosts", "addresses", "ports", "location", "resolution", "endpoints", "workloadSelector",
                     "exportTo", "subjectAltNames"}
SERVICEENTRY_PORT = {"number", "protocol", "name", "targetPort"}
CLIENT_TLS = {"mode", "clientCertificate", "privateKey", "caCertificates", "credentialName", "subjectAltNames",
              "sni", "insecureSkipVerify", "caCrl"}
EPP_OPERATION = {"op", "path", "jsonPath", "from", "value"}
BACKEND_TLS_VALIDATION = {"caCertificateRefs", "wellKnownCACertificates", "hostname", "subjectAltNames"}


def check_fields(docs) -> list[str]:
    errors = []

    def unknown(where: str, obj: dict, allowed: set[str]) -> None:
        extra = set(obj) - allowed
        if extra:
            errors.append(f"{where}: unknown field(s) {sorted(extra)}")

    for path, i, doc in docs:
        kind = doc.get("kind")
        where = f"{path.relative_to(ROOT)}[{i}] {kind}"
        if not (doc.get("apiVersion") and kind and (doc.get("metadata") or {}).get("name")):
            errors.append(f"{where}: needs apiVersion, kind and metadata.name")
            continue
        spec = doc.get("spec") or {}
        if kind == "WasmPlugin":
            if doc["apiVersion"] != "extensions.istio.io/v1alpha1":
                errors.append(f"{where}: apiVersion {doc['apiVersion']}")
            unknown(where, spec, WASMPLUGIN_SPEC)
            for (k, field), allowed in ENUMS.items():
                if k == kind and field in spec and spec[field] not in allowed:
                    errors.append(f"{where}: {field} {spec[field]!r} not one of {sorted(allowed)}")
            if not str(spec.get("url", "")).startswith(("oci://", "file://", "http://", "https://")):
                errors.append(f"{where}: url must be oci://, file:// or http(s)://")
            for e in (spec.get("vmConfig") or {}).get("env", []):
                unknown(f"{where} vmConfig.env", e, {"name", "value", "valueFrom"})
                if e.get("valueFrom", "INLINE") not in ("INLINE", "HOST"):
                    errors.append(f"{where}: env valueFrom {e.get('valueFrom')!r}")
            unknown(f"{where} vmConfig", spec.get("vmConfig") or {}, {"env"})
            for m in spec.get("match", []):
                unknown(f"{where} match", m, {"mode", "ports"})
        elif kind == "EnvoyExtensionPolicy":
            unknown(where, spec, {"targetRef", "targetRefs", "targetSelectors", "wasm", "extProc", "lua"})
            for w in spec.get("wasm", []):
                unknown(f"{where} wasm", w, EEP_WASM)
                unknown(f"{where} wasm.code", w.get("code") or {}, EEP_CODE)
                unknown(f"{where} wasm.code.image", (w.get("code") or {}).get("image") or {}, EEP_IMAGE)
                unknown(f"{where} wasm.env", w.get("env") or {}, {"hostKeys"})
                if (w.get("code") or {}).get("type") not in ("HTTP", "Image", "ConfigMap"):
                    errors.append(f"{where}: wasm.code.type must be HTTP, Image or ConfigMap")
        elif kind == "EnvoyFilter":
            unknown(where, spec, ENVOYFILTER_SPEC)
            for p in spec.get("configPatches", []):
                unknown(f"{where} configPatch", p, {"applyTo", "match", "patch"})
                if p.get("applyTo") not in ENVOYFILTER_APPLYTO:
                    errors.append(f"{where}: applyTo {p.get('applyTo')!r}")
                unknown(f"{where} patch", p.get("patch") or {}, {"operation", "value", "filterClass"})
                if (p.get("patch") or {}).get("operation") not in ENVOYFILTER_OPS:
                    errors.append(f"{where}: operation {(p.get('patch') or {}).get('operation')!r}")
                unknown(f"{where} match", p.get("match") or {},
                        {"context", "proxy", "listener", "routeConfiguration", "cluster"})
        elif kind == "ServiceEntry":
            unknown(where, spec, SERVICEENTRY_SPEC)
            for port in spec.get("ports", []):
                unknown(f"{where} port", port, SERVICEENTRY_PORT)
        elif kind == "DestinationRule":
            unknown(where, spec, {"host", "trafficPolicy", "subsets", "exportTo", "workloadSelector"})
            for pls in (spec.get("trafficPolicy") or {}).get("portLevelSettings", []):
                unknown(f"{where} portLevelSettings.tls", pls.get("tls") or {}, CLIENT_TLS)
        elif kind == "EnvoyPatchPolicy":
            unknown(where, spec, {"targetRef", "targetRefs", "type", "jsonPatches", "priority"})
            for jp in spec.get("jsonPatches", []):
                unknown(f"{where} jsonPatch", jp, {"type", "name", "operation"})
                unknown(f"{where} jsonPatch.operation", jp.get("operation") or {}, EPP_OPERATION)
        elif kind == "BackendTLSPolicy":
            unknown(where, spec, {"targetRefs", "validation", "options"})
            unknown(f"{where} validation", spec.get("validation") or {}, BACKEND_TLS_VALIDATION)
        elif kind == "EnvoyProxy":
            bootstrap = spec.get("bootstrap") or {}
            if bootstrap and bootstrap.get("type") not in ("Merge", "Replace", "JSONPatch"):
                errors.append(f"{where}: bootstrap.type {bootstrap.get('type')!r}")
    return errors


def main() -> int:
    configs = sorted(ROOT.glob("envoy/*.yaml")) + sorted(ROOT.glob("examples/*/envoy.yaml"))
    failed = passed = 0

    def report(ok: bool, label: str, output: str) -> None:
        nonlocal failed, passed
        print(f"{'ok  ' if ok else 'FAIL'} {label}")
        if ok:
            passed += 1
        else:
            failed += 1
            print(output[-3000:])

    for config in configs:
        ok, output = validate(config)
        report(ok, str(config.relative_to(ROOT)), output)

    try:
        docs = manifests()
    except yaml.YAMLError as e:
        report(False, "deploy/ manifests parse as YAML", str(e))
        docs = []
    else:
        report(bool(docs), f"deploy/ manifests parse as YAML ({len(docs)} documents)", "no manifests found")
    errors = check_fields(docs)
    report(not errors, "deploy/ manifests use their APIs' field names", "\n".join(errors))
    for label, text in deploy_envoy_configs(docs):
        ok, output = validate_text(text)
        report(ok, label, output)

    # The check must be able to fail: a config with a bad plugin configuration is rejected.
    bad = (ROOT / "envoy/local.yaml").read_text().replace('"region": "us-east-1"', '"region": "nowhere"')
    ok, output = validate_text(bad)
    report(not ok, "a bad plugin configuration is rejected", "envoy accepted region 'nowhere'")
    bad_plugin = wasm_bootstrap(plugin_wasm_config(json.dumps({"function": "f", "region": "us-east-1", "nope": 1}), []))
    ok, output = validate_text(bad_plugin)
    report(not ok, "a bad deploy/ plugin configuration is rejected", "envoy accepted an unknown key")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
