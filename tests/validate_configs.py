#!/usr/bin/env python3
"""Every shipped Envoy config passes `envoy --mode validate` with the built filter, and the
filter accepts its plugin configuration (on_configure runs during validation).

Checked:
- the Envoy bootstraps in envoy/ and examples/*/envoy*.yaml (examples/eks: the SDS files they
  name are read from examples/eks/sds, as a pod mounts them at /etc/envoy/sds, and the VM
  environment EKS sets for IRSA and Pod Identity is given);
- every examples/*/kustomization.yaml: the files it names exist, and each Deployment volume is
  a ConfigMap it generates or one its README creates; a bootstrap's file-SDS paths are files of
  the ConfigMap mounted there;
- the Envoy bootstraps embedded in the deploy/ manifests (a ConfigMap's envoy.yaml, an
  EnvoyProxy's bootstrap), as shipped;
- the plugin configuration of every deploy/ manifest that carries one (Istio WasmPlugin
  pluginConfig, Istio EnvoyFilter Wasm extension config, Envoy Gateway EnvoyExtensionPolicy
  wasm config): put into a minimal bootstrap with the built filter, so the filter itself
  accepts or rejects it;
- every deploy/ manifest parses as YAML, each document has apiVersion, kind and metadata.name,
  and the fields used in the Istio and Envoy Gateway resources are those of their APIs (the
  field lists below were read from istio/api extensions/v1alpha1/wasm.proto,
  networking/v1alpha3/envoy_filter.proto and service_entry.proto, from Envoy Gateway's
  api/v1alpha1 wasm, policy, envoyproxy and shared types, and from k8s.io/api core/v1 for
  ConfigMaps, Secrets and the pod parts an EnvoyProxy or a Deployment patch sets);
- every Gateway, GatewayClass, route, policy target and backend a deploy/ manifest names is
  shipped in deploy/, and every Istio cluster (outbound|…) a plugin configuration names reaches
  the gateway also with PILOT_FILTER_GATEWAY_CLUSTER_CONFIG on;
- every EnvoyPatchPolicy jsonPath parses as RFC 9535 JSONPath (jsonpath-rfc9535) with only the
  string escapes Envoy Gateway's parser (ohler55/ojg) also takes, resolves in a listener shaped
  like the one Envoy Gateway generates to exactly the Wasm filters of the shipped
  EnvoyExtensionPolicies, and the patched filter config passes `envoy --mode validate`;
- every cluster a deploy/ plugin configuration names exists on the proxies that run it: an Istio
  mesh cluster, or one an EnvoyFilter CLUSTER ADD gives the gateway; for Envoy Gateway a static
  cluster of the bootstrap of the EnvoyProxy behind the policy's Gateway; and (Envoy Gateway)
  every env.hostKeys variable is set by the EnvoyProxy's container env from a shipped Secret, by
  EKS for the credentials source, or is optional;
- each of these deploy/ checks rejects a broken copy of the manifests (broken_manifests);
- every shipped bootstrap (envoy/, examples/, a deploy/ ConfigMap, an EnvoyProxy's Merge, the
  Istio bootstrap override) has exactly README.md's stats_config block; the Istio gateway, as
  the shipped patches leave it, points ISTIO_BOOTSTRAP_OVERRIDE at a mounted ConfigMap holding
  it; a Deployment annotated prometheus.io/scrape reaches only an exact GET /stats/prometheus of
  an admin interface on loopback there; every query of deploy/observability/grafana-dashboard.json
  parses as PromQL (promtool); broken copies of each are rejected (broken_stats);
- access logs: README.md's access_log block (Access logs; or the docs/*.md the section moved
  to), whose format prints %FILTER_STATE(wasm.proxy_wasm_lambda:PLAIN)%, is exactly the
  access_log of every HTTP connection manager running the filter in envoy/, examples/ and the
  deploy/ ConfigMap bootstraps, and no other connection manager logs the filter state; every
  EnvoyProxy behind a Gateway the filter runs on logs that format for every route as Text to
  /dev/stdout (spec.telemetry.accessLog, field lists from Envoy Gateway's
  envoyproxy_accesslogging_types.go); for each Istio gateway the filter runs on, one Telemetry
  (deploy/istio/telemetry.yaml; istio/api telemetry/v1alpha1/telemetry.proto) selects its pods
  and names a provider of the meshConfig snippet in deploy/README.md (mesh/v1alpha1/config.proto
  ExtensionProvider) whose envoyFileAccessLog has that format; the access logs Envoy Gateway and
  istiod build from these pass `envoy --mode validate`; broken copies (the format without the
  FILTER_STATE, the metrics listener logging it, an upstream-only or missing EnvoyProxy log, the
  Telemetry naming another provider or other pods) are rejected (broken_access_logs);
- the EKS variants (EKS_VARIANTS: deploy/istio/eks, deploy/envoy-gateway/eks, applied over the
  base manifests, replacing resources of the same name): all of the above on each, plus
  - the token-carrying cluster (an EnvoyFilter CLUSTER ADD, an EnvoyProxy bootstrap cluster)
    passes `envoy --mode validate` with the SDS file it names written to a temporary directory
    from the ConfigMap the proxy pod mounts at that path (the Istio gateway Deployment as the
    shipped strategic-merge patch leaves it, the EnvoyProxy's pod volumes and container
    volumeMounts), and is refused without it;
  - that file is a key of the mounted ConfigMap, holds the secret the cluster names and equals
    the one of examples/eks/sds;
  - a resource a variant replaces differs from the base one only in credentials, environment
    keys, the added clusters, mounts and identity (drift);
  - broken copies are rejected (broken_variant_manifests): the plugin configuration naming a
    token cluster the manifests do not add, the cluster patch not on the gateway, the SDS
    file or volume missing or mounted elsewhere, the ExternalId not in the proxy's env, no IRSA
    annotation, a renamed EnvoyExtensionPolicy, a drifted timeout.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonpath_rfc9535  # RFC 9535 JSONPath (tests/requirements.txt)
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
# Where the examples' file-based SDS secrets are mounted in a pod -> the shipped files.
SDS_DIRS = {"/etc/envoy/sds": ROOT / "examples/eks/sds"}
# What EKS puts into a pod's environment (IRSA, Pod Identity); reaches the VM only where a
# config names the variable in host_env_keys.
EKS_ENV = {
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/validate-only-irsa",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE":
        "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
}


def validate_text(text: str) -> tuple[bool, str]:
    for path in WASM_PATHS:
        text = text.replace(f"filename: {path}", f"filename: {WASM}")
    for mounted, shipped in SDS_DIRS.items():
        text = text.replace(f"path: {mounted}", f"path: {shipped}")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDVALIDATEONLY0001", AWS_SECRET_ACCESS_KEY="validate-only",
               LAMBDA_EXTERNAL_ID="validate-only-external-id",
               # envoy/multi-account.yaml: one ExternalId per tenant
               TENANT_A_EXTERNAL_ID="validate-only-tenant-a", TENANT_B_EXTERNAL_ID="validate-only-tenant-b",
               **EKS_ENV)
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
def load_manifests(paths) -> list[tuple[Path, int, dict]]:
    docs = []
    for path in paths:
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                docs.append((path, i, doc))
    return docs


def is_variant_file(path: Path) -> bool:
    """A file of an EKS variant (deploy/*/eks/), applied over the base manifests: EKS_VARIANTS."""
    return "eks" in path.relative_to(ROOT / "deploy").parts[:-1]


def is_patch_file(path: Path) -> bool:
    """A strategic-merge patch (`kubectl patch --patch-file`): patches of one resource compose."""
    return path.name.endswith("-patch.yaml")


# Not Kubernetes manifests: the dashboard, the Prometheus rules and their unit tests (promtool).
OBSERVABILITY = ROOT / "deploy/observability"


def manifests() -> list[tuple[Path, int, dict]]:
    """The base manifests of deploy/ (without the EKS variants)."""
    return load_manifests(p for p in sorted((ROOT / "deploy").rglob("*.yaml"))
                          if not is_variant_file(p) and not p.is_relative_to(OBSERVABILITY))


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


# The node Istio and Envoy Gateway start their Envoy with (--service-node, --service-cluster):
# file-based SDS needs one, and only the validated copies of their pieces get it from here.
VALIDATE_NODE = {"id": "validate-only", "cluster": "validate-only"}


def deploy_envoy_configs(docs, tmp: Path | None, context=None) -> list[tuple[str, str]]:
    """(label, bootstrap YAML) for every Envoy config shipped inside the manifests `docs`. The
    Envoy pieces a mesh adds to its proxies (an EnvoyProxy's bootstrap part, an EnvoyFilter's
    CLUSTER ADD) get the mesh's node, and their file-SDS paths point into `tmp`, where the
    ConfigMaps mounted at those paths in the proxy pod (in `context`, default `docs`) are
    written as the pod sees them (tmp None: the paths stay as shipped)."""
    context = docs if context is None else context
    out = []
    for path, i, doc in docs:
        where = f"{path.relative_to(ROOT)}[{i}] {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        kind, spec = doc.get("kind"), doc.get("spec") or {}
        if kind == "ConfigMap":
            for key, text in (doc.get("data") or {}).items():
                if key.endswith((".yaml", ".yml")) and "static_resources" in text:
                    out.append((f"{where} {key}", text))
                elif key == "custom_bootstrap.json":
                    out.append((f"{where} {key} (the Istio bootstrap override)", text))
        elif kind == "EnvoyProxy" and (spec.get("bootstrap") or {}).get("value"):
            text = spec["bootstrap"]["value"]
            bootstrap = yaml.safe_load(text) or {}
            if any(True for _ in file_sds(bootstrap)):
                bootstrap = with_mounted_sds(context, doc, bootstrap, tmp)
                bootstrap.setdefault("node", VALIDATE_NODE)
                text = yaml.safe_dump(bootstrap)
            out.append((f"{where} bootstrap (the part merged into Envoy Gateway's)", text))
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
                elif patch.get("applyTo") == "CLUSTER" and (patch.get("patch") or {}).get("operation") == "ADD":
                    cluster = with_mounted_sds(context, doc, value, tmp)
                    out.append((f"{where} cluster {value.get('name')} (as istiod adds it to the proxy)", yaml.safe_dump(
                        {"node": VALIDATE_NODE, "static_resources": {"clusters": [cluster]}})))
        if kind == "EnvoyProxy" and eg_route_access_logs(doc):
            out.append((f"{where} telemetry.accessLog (the access log Envoy Gateway builds from it)",
                        access_log_bootstrap(eg_route_access_logs(doc))))
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
# EnvoyPatchPolicy: envoyproxy/gateway api/v1alpha1/envoypatchpolicy_types.go (v1.9.0). The spec
# has a single `targetRef` (LocalPolicyTargetReference: group, kind, name) and no `targetRefs`.
EPP_SPEC = {"type", "jsonPatches", "targetRef", "priority"}
EPP_TARGET_REF = {"group", "kind", "name"}
EPP_RESOURCE_TYPES = {f"type.googleapis.com/envoy.{t}" for t in (
    "config.listener.v3.Listener", "config.route.v3.RouteConfiguration", "config.cluster.v3.Cluster",
    "config.endpoint.v3.ClusterLoadAssignment", "extensions.transport_sockets.tls.v3.Secret")}
EPP_OPERATION = {"op", "path", "jsonPath", "from", "value"}
EPP_OPS = {"add", "remove", "replace", "move", "copy", "test"}
BACKEND_TLS_VALIDATION = {"caCertificateRefs", "wellKnownCACertificates", "hostname", "subjectAltNames"}
# Istio Gateway (networking.istio.io): istio/istio 1.30.3 manifests/charts/base/files/crd-all.gen.yaml.
ISTIO_GATEWAY_SPEC = {"selector", "servers"}
ISTIO_SERVER = {"port", "bind", "hosts", "tls", "name", "defaultEndpoint"}
ISTIO_SERVER_PORT = {"number", "protocol", "name", "targetPort"}
# Gateway API v1.6.1 (the CRDs Envoy Gateway v1.9.0 ships, charts/gateway-helm/charts/crds/crds/
# gatewayapi-crds.yaml, experimental channel).
GATEWAY_SPEC = {"gatewayClassName", "listeners", "addresses", "infrastructure", "tls", "allowedListeners",
                "defaultScope"}
GATEWAY_LISTENER = {"name", "hostname", "port", "protocol", "tls", "allowedRoutes"}
GATEWAYCLASS_SPEC = {"controllerName", "parametersRef", "description"}
GATEWAY_INFRASTRUCTURE = {"labels", "annotations", "parametersRef"}
ENVOYFILTER_CONTEXTS = {"ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"}
# EnvoyProxy: envoyproxy/gateway v1.9.0 api/v1alpha1/envoyproxy_types.go (EnvoyProxySpec,
# EnvoyProxyProvider, EnvoyProxyKubernetesProvider, KubernetesServiceAccountSpec, ProxyBootstrap)
# and shared_types.go (KubernetesDeploymentSpec, KubernetesPodSpec, KubernetesContainerSpec).
ENVOYPROXY_SPEC = {"provider", "logging", "telemetry", "bootstrap", "concurrency", "routingType", "extraArgs",
                   "mergeGateways", "mergeBackends", "shutdown", "filterOrder", "backendTLS", "ipFamily",
                   "preserveRouteOrder", "luaValidation", "dynamicModules", "geoIP", "mergeType"}
EP_PROVIDER = {"type", "kubernetes", "host"}
EP_KUBERNETES = {"envoyDeployment", "envoyDaemonSet", "envoyService", "envoyHpa", "useListenerPortAsContainerPort",
                 "envoyPDB", "envoyServiceAccount"}
EP_DEPLOYMENT = {"patch", "replicas", "strategy", "pod", "container", "initContainers", "name"}
EP_POD = {"annotations", "labels", "securityContext", "affinity", "tolerations", "volumes", "imagePullSecrets",
          "nodeSelector", "topologySpreadConstraints", "priorityClassName"}
EP_CONTAINER = {"env", "resources", "securityContext", "image", "imageRepository", "volumeMounts"}
EP_BOOTSTRAP = {"type", "value", "jsonPatches"}
# EnvoyProxy telemetry: envoyproxy_types.go ProxyTelemetry and envoyproxy_accesslogging_types.go
# (ProxyAccessLog, ProxyAccessLogSetting, ProxyAccessLogFormat, ProxyAccessLogSink,
# FileEnvoyProxyAccessLog) of v1.9.0; v1.6.0 has the same access-log fields (its ProxyTelemetry
# lacks requestID and healthCheckLog).
EP_TELEMETRY = {"accessLog", "tracing", "metrics", "requestID", "healthCheckLog"}
EP_ACCESS_LOG = {"disable", "settings"}
EP_ACCESS_LOG_SETTING = {"format", "matches", "sinks", "type"}
EP_ACCESS_LOG_FORMAT = {"type", "text", "json"}
EP_ACCESS_LOG_SINK = {"type", "als", "file", "openTelemetry"}
EP_ACCESS_LOG_ENUMS = {"type": {"Listener", "Route", "Upstream"}, "format.type": {"Text", "JSON"},
                       "sink.type": {"ALS", "File", "OpenTelemetry"}}
# Istio Telemetry (telemetry.istio.io): istio/api 1.30.3 telemetry/v1alpha1/telemetry.proto
# (Telemetry, AccessLogging, LogSelector, ProviderRef), type/v1beta1/selector.proto.
TELEMETRY_SPEC = {"selector", "targetRef", "targetRefs", "tracing", "metrics", "accessLogging"}
TELEMETRY_ACCESS_LOGGING = {"match", "providers", "disabled", "filter"}
TELEMETRY_WORKLOAD_MODES = {"CLIENT_AND_SERVER", "CLIENT", "SERVER"}
# MeshConfig.ExtensionProvider (name + the oneof provider) and its EnvoyFileAccessLogProvider:
# istio/api 1.30.3 mesh/v1alpha1/config.proto.
MESH_EXTENSION_PROVIDER = {"name", "envoyExtAuthzHttp", "envoyExtAuthzGrpc", "zipkin", "lightstep", "datadog",
                           "stackdriver", "opencensus", "skywalking", "opentelemetry", "prometheus",
                           "envoyFileAccessLog", "envoyHttpAls", "envoyTcpAls", "envoyOtelAls", "sds"}
MESH_FILE_ACCESS_LOG = {"path", "logFormat", "omitEmptyValues"}
MESH_LOG_FORMAT = {"text", "labels"}
# Kubernetes core/v1 and apps/v1 (k8s.io/api), the parts the manifests use.
K8S_TOP = {"ConfigMap": {"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"},
           "Secret": {"apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"}}
K8S_VOLUME_SOURCES = {"configMap", "secret", "projected", "emptyDir", "downwardAPI"}
K8S_CONFIGMAP_VOLUME = {"name", "items", "defaultMode", "optional"}
K8S_VOLUME_MOUNT = {"name", "mountPath", "readOnly", "recursiveReadOnly", "subPath", "subPathExpr", "mountPropagation"}
K8S_POD_SECURITY_CONTEXT = {"seLinuxOptions", "windowsOptions", "runAsUser", "runAsGroup", "runAsNonRoot",
                            "supplementalGroups", "supplementalGroupsPolicy", "fsGroup", "sysctls",
                            "fsGroupChangePolicy", "seccompProfile", "appArmorProfile", "seLinuxChangePolicy"}
K8S_ENV_VAR = {"name", "value", "valueFrom"}
ISTIO_GROUP, GATEWAY_API_GROUP, EG_GROUP = "networking.istio.io", "gateway.networking.k8s.io", "gateway.envoyproxy.io"
TELEMETRY_GROUP = "telemetry.istio.io"


def group_of(doc: dict) -> str:
    return doc["apiVersion"].rpartition("/")[0]


def ns_of(doc: dict) -> str:
    return (doc.get("metadata") or {}).get("namespace") or "default"


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
            unknown(where, spec, EPP_SPEC)
            for field in ("targetRef", "type"):
                if field not in spec:
                    errors.append(f"{where}: needs spec.{field}")
            unknown(f"{where} targetRef", spec.get("targetRef") or {}, EPP_TARGET_REF)
            if spec.get("type") != "JSONPatch":
                errors.append(f"{where}: type {spec.get('type')!r} (only JSONPatch)")
            for jp in spec.get("jsonPatches", []):
                unknown(f"{where} jsonPatch", jp, {"type", "name", "operation"})
                if jp.get("type") not in EPP_RESOURCE_TYPES:
                    errors.append(f"{where}: jsonPatch type {jp.get('type')!r}")
                operation = jp.get("operation") or {}
                unknown(f"{where} jsonPatch.operation", operation, EPP_OPERATION)
                if operation.get("op") not in EPP_OPS:
                    errors.append(f"{where}: op {operation.get('op')!r}")
        elif kind == "Gateway" and group_of(doc) == ISTIO_GROUP:
            unknown(where, spec, ISTIO_GATEWAY_SPEC)
            for server in spec.get("servers", []):
                unknown(f"{where} server", server, ISTIO_SERVER)
                unknown(f"{where} server.port", server.get("port") or {}, ISTIO_SERVER_PORT)
                if not {"number", "protocol", "name"} <= set(server.get("port") or {}) or not server.get("hosts"):
                    errors.append(f"{where}: a server needs port.number, port.protocol, port.name and hosts")
        elif kind == "Gateway" and group_of(doc) == GATEWAY_API_GROUP:
            unknown(where, spec, GATEWAY_SPEC)
            for listener in spec.get("listeners", []):
                unknown(f"{where} listener", listener, GATEWAY_LISTENER)
                if not {"name", "port", "protocol"} <= set(listener):
                    errors.append(f"{where}: a listener needs name, port and protocol")
        elif kind == "GatewayClass":
            unknown(where, spec, GATEWAYCLASS_SPEC)
        elif kind == "BackendTLSPolicy":
            unknown(where, spec, {"targetRefs", "validation", "options"})
            unknown(f"{where} validation", spec.get("validation") or {}, BACKEND_TLS_VALIDATION)
        elif kind == "EnvoyProxy":
            unknown(where, spec, ENVOYPROXY_SPEC)
            bootstrap = spec.get("bootstrap") or {}
            unknown(f"{where} bootstrap", bootstrap, EP_BOOTSTRAP)
            if bootstrap and bootstrap.get("type") not in ("Merge", "Replace", "JSONPatch"):
                errors.append(f"{where}: bootstrap.type {bootstrap.get('type')!r}")
            provider = spec.get("provider") or {}
            unknown(f"{where} provider", provider, EP_PROVIDER)
            kubernetes = provider.get("kubernetes") or {}
            unknown(f"{where} provider.kubernetes", kubernetes, EP_KUBERNETES)
            unknown(f"{where} envoyServiceAccount", kubernetes.get("envoyServiceAccount") or {}, {"name"})
            deployment = kubernetes.get("envoyDeployment") or {}
            unknown(f"{where} envoyDeployment", deployment, EP_DEPLOYMENT)
            pod = deployment.get("pod") or {}
            unknown(f"{where} envoyDeployment.pod", pod, EP_POD)
            container = deployment.get("container") or {}
            unknown(f"{where} envoyDeployment.container", container, EP_CONTAINER)
            check_pod_parts(f"{where} envoyDeployment", pod, [container], errors)
            telemetry = spec.get("telemetry") or {}
            unknown(f"{where} telemetry", telemetry, EP_TELEMETRY)
            access_log = telemetry.get("accessLog") or {}
            unknown(f"{where} telemetry.accessLog", access_log, EP_ACCESS_LOG)
            for s in access_log.get("settings", []):
                unknown(f"{where} accessLog.settings", s, EP_ACCESS_LOG_SETTING)
                fmt = s.get("format") or {}
                unknown(f"{where} accessLog.settings.format", fmt, EP_ACCESS_LOG_FORMAT)
                for field, value in (("type", s.get("type")), ("format.type", fmt.get("type"))):
                    if value is not None and value not in EP_ACCESS_LOG_ENUMS[field]:
                        errors.append(f"{where}: accessLog {field} {value!r} not one of {sorted(EP_ACCESS_LOG_ENUMS[field])}")
                # The CEL rules of ProxyAccessLogFormat and ProxyAccessLogSink.
                if fmt.get("type") == "Text" and ("text" not in fmt or "json" in fmt):
                    errors.append(f"{where}: accessLog format type Text needs text and no json")
                if not s.get("sinks"):
                    errors.append(f"{where}: accessLog settings need sinks (MinItems 1)")
                for sink in s.get("sinks", []):
                    unknown(f"{where} accessLog sink", sink, EP_ACCESS_LOG_SINK)
                    if sink.get("type") not in EP_ACCESS_LOG_ENUMS["sink.type"]:
                        errors.append(f"{where}: accessLog sink type {sink.get('type')!r}")
                    for sink_type, field in (("ALS", "als"), ("File", "file"), ("OpenTelemetry", "openTelemetry")):
                        if (sink.get("type") == sink_type) != (field in sink):
                            errors.append(f"{where}: an accessLog sink has {field} if and only if its type is {sink_type}")
                    unknown(f"{where} accessLog sink file", sink.get("file") or {}, {"path"})
        elif kind == "Telemetry":
            if group_of(doc) != TELEMETRY_GROUP:
                errors.append(f"{where}: apiVersion {doc['apiVersion']}")
            unknown(where, spec, TELEMETRY_SPEC)
            unknown(f"{where} selector", spec.get("selector") or {}, {"matchLabels"})
            if sum(1 for f in ("selector", "targetRef", "targetRefs") if f in spec) > 1:
                errors.append(f"{where}: only one of selector, targetRef, targetRefs")
            for a in spec.get("accessLogging", []):
                unknown(f"{where} accessLogging", a, TELEMETRY_ACCESS_LOGGING)
                unknown(f"{where} accessLogging.match", a.get("match") or {}, {"mode"})
                mode = (a.get("match") or {}).get("mode", "CLIENT_AND_SERVER")
                if mode not in TELEMETRY_WORKLOAD_MODES:
                    errors.append(f"{where}: accessLogging match.mode {mode!r}")
                unknown(f"{where} accessLogging.filter", a.get("filter") or {}, {"expression"})
                for ref in a.get("providers", []):
                    unknown(f"{where} accessLogging.providers", ref, {"name"})
                    if not ref.get("name"):
                        errors.append(f"{where}: a provider needs its name")
        elif kind in K8S_TOP:
            unknown(where, doc, K8S_TOP[kind])
        elif kind == "Deployment" and (path.name.endswith("-patch.yaml") or is_variant_file(path)):
            # A strategic-merge patch of a Deployment not shipped here (deploy/*/eks/*-patch.yaml).
            if not path.name.endswith("-patch.yaml"):
                errors.append(f"{where}: a Deployment in deploy/*/eks/ must be a patch named *-patch.yaml")
            unknown(f"{where} spec", spec, {"template"})
            template = spec.get("template") or {}
            unknown(f"{where} spec.template", template, {"metadata", "spec"})
            pod = template.get("spec") or {}
            unknown(f"{where} pod spec", pod, {"securityContext", "volumes", "containers"})
            for c in pod.get("containers", []):
                unknown(f"{where} container", c, {"name", "env", "volumeMounts"})
                if not c.get("name"):
                    errors.append(f"{where}: a patched container needs its name (the merge key)")
            check_pod_parts(f"{where} pod", pod, pod.get("containers", []), errors)
        if kind == "Gateway" and group_of(doc) == GATEWAY_API_GROUP:
            unknown(f"{where} infrastructure", spec.get("infrastructure") or {}, GATEWAY_INFRASTRUCTURE)
        if kind == "EnvoyFilter":
            for p in spec.get("configPatches", []):
                context = (p.get("match") or {}).get("context", "ANY")
                if context not in ENVOYFILTER_CONTEXTS:
                    errors.append(f"{where}: match.context {context!r} not one of {sorted(ENVOYFILTER_CONTEXTS)}")
                if p.get("applyTo") == "CLUSTER" and (p.get("patch") or {}).get("operation") == "ADD" \
                        and not ((p.get("patch") or {}).get("value") or {}).get("name"):
                    errors.append(f"{where}: a CLUSTER ADD patch needs value.name")
    return errors


def check_pod_parts(where: str, pod: dict, containers: list[dict], errors: list[str]) -> None:
    """A pod's securityContext and volumes, and its containers' env and volumeMounts (core/v1)."""
    extra = set(pod.get("securityContext") or {}) - K8S_POD_SECURITY_CONTEXT
    if extra:
        errors.append(f"{where} securityContext: unknown field(s) {sorted(extra)}")
    volumes = set()
    for v in pod.get("volumes", []):
        sources = set(v) - {"name"}
        if not v.get("name") or len(sources) != 1 or not sources <= K8S_VOLUME_SOURCES:
            errors.append(f"{where}: volume {v} needs a name and one source of {sorted(K8S_VOLUME_SOURCES)}")
        extra = set(v.get("configMap") or {}) - K8S_CONFIGMAP_VOLUME
        if extra:
            errors.append(f"{where}: volume {v.get('name')} configMap: unknown field(s) {sorted(extra)}")
        volumes.add(v.get("name"))
    for c in containers:
        for e in c.get("env", []):
            if set(e) - K8S_ENV_VAR or "name" not in e:
                errors.append(f"{where}: env {e}: fields {sorted(K8S_ENV_VAR)}, name required")
        for m in c.get("volumeMounts", []):
            if set(m) - K8S_VOLUME_MOUNT or not {"name", "mountPath"} <= set(m):
                errors.append(f"{where}: volumeMount {m}: fields {sorted(K8S_VOLUME_MOUNT)}, name and mountPath required")
            elif m["name"] not in volumes:
                errors.append(f"{where}: volumeMount {m['mountPath']} names volume {m['name']!r}, which this pod part does not add")


# ------------------------------------------------------------------ references between manifests
def find(docs, group: str, kind: str, name: str, ns: str | None = None) -> dict | None:
    """The shipped document `kind` `ns`/`name` of API group `group` (ns None: cluster-scoped)."""
    for _, _, doc in docs:
        if (doc.get("kind") == kind and doc.get("apiVersion") and group_of(doc) == group
                and doc["metadata"].get("name") == name and (ns is None or ns_of(doc) == ns)):
            return doc
    return None


def istio_workload_labels(doc: dict) -> dict:
    spec = doc.get("spec") or {}
    if doc["kind"] in ("WasmPlugin", "Telemetry"):
        return (spec.get("selector") or {}).get("matchLabels") or {}
    return (spec.get("workloadSelector") or {}).get("labels") or {}


def istio_plugin_configs(docs):
    """(where, workload labels, plugin configuration) of every Istio WasmPlugin and Wasm EnvoyFilter."""
    for path, i, doc in docs:
        where = f"{path.relative_to(ROOT)}[{i}] {doc.get('kind')}/{doc['metadata'].get('name')}"
        spec = doc.get("spec") or {}
        if doc.get("kind") == "WasmPlugin":
            yield where, istio_workload_labels(doc), spec.get("pluginConfig") or {}
        elif doc.get("kind") == "EnvoyFilter":
            for patch in spec.get("configPatches", []):
                typed = ((patch.get("patch") or {}).get("value") or {}).get("typed_config") or {}
                if patch.get("applyTo") == "EXTENSION_CONFIG" and typed.get("@type") == WASM_TYPE:
                    value = ((typed.get("config") or {}).get("configuration") or {}).get("value") or "{}"
                    yield where, istio_workload_labels(doc), json.loads(value)


def strings_in(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from strings_in(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings_in(v)


def check_references(docs) -> list[str]:
    """Every resource a manifest names is shipped in deploy/ (README: what is not, is a prerequisite)."""
    errors = []
    istio_gateways = [d for _, _, d in docs if d.get("kind") == "Gateway" and group_of(d) == ISTIO_GROUP]
    for path, i, doc in docs:
        kind, spec, ns = doc.get("kind"), doc.get("spec") or {}, ns_of(doc)
        where = f"{path.relative_to(ROOT)}[{i}] {kind}/{doc['metadata'].get('name')}"
        if kind == "VirtualService":
            for gw in spec.get("gateways", []):
                gw_ns, _, gw_name = gw.rpartition("/")
                if gw != "mesh" and not find(docs, ISTIO_GROUP, "Gateway", gw_name, gw_ns or ns):
                    errors.append(f"{where}: gateway {gw} is not shipped")
        elif kind in ("WasmPlugin", "EnvoyFilter") or (kind == "Telemetry" and (doc.get("spec") or {}).get("selector")):
            labels = istio_workload_labels(doc)
            if not any((g.get("spec") or {}).get("selector") == labels for g in istio_gateways):
                errors.append(f"{where}: selects {labels}, the pods of no shipped Istio Gateway")
        elif kind == "Gateway" and group_of(doc) == GATEWAY_API_GROUP:
            if not find(docs, GATEWAY_API_GROUP, "GatewayClass", spec.get("gatewayClassName")):
                errors.append(f"{where}: gatewayClassName {spec.get('gatewayClassName')!r} is not shipped")
        elif kind == "GatewayClass" and spec.get("parametersRef"):
            ref = spec["parametersRef"]
            if not find(docs, ref.get("group"), ref.get("kind"), ref.get("name"), ref.get("namespace")):
                errors.append(f"{where}: parametersRef {ref} is not shipped")
        elif kind == "HTTPRoute":
            for ref in spec.get("parentRefs", []):
                gw = find(docs, ref.get("group", GATEWAY_API_GROUP), ref.get("kind", "Gateway"), ref.get("name"),
                          ref.get("namespace", ns))
                listeners = [lst.get("name") for lst in ((gw or {}).get("spec") or {}).get("listeners", [])]
                if gw is None or ref.get("sectionName", listeners[0] if listeners else None) not in listeners:
                    errors.append(f"{where}: parentRef {ref} is not a shipped Gateway (listener)")
            for rule in spec.get("rules", []):
                for ref in rule.get("backendRefs", []):
                    if ref.get("group") == EG_GROUP and not find(docs, EG_GROUP, ref.get("kind"), ref.get("name"), ns):
                        errors.append(f"{where}: backendRef {ref} is not shipped")
        if group_of(doc) in (EG_GROUP, GATEWAY_API_GROUP) and kind.endswith("Policy"):
            # Policies attach to resources of their own namespace.
            for ref in spec.get("targetRefs", []) + ([spec["targetRef"]] if spec.get("targetRef") else []):
                if not find(docs, ref.get("group"), ref.get("kind"), ref.get("name"), ns):
                    errors.append(f"{where}: targetRef {ref} is not shipped")
    for where, labels, config in istio_plugin_configs(docs):
        errors += check_istio_clusters(docs, where, labels, config)
    errors += check_plugin_clusters(docs)
    return errors


def check_istio_clusters(docs, where: str, labels: dict, config: dict) -> list[str]:
    """Every Istio cluster (outbound|<port>|<subset>|<host>) a plugin configuration names exists on
    its gateway, also with PILOT_FILTER_GATEWAY_CLUSTER_CONFIG=true. Then istiod sends a gateway only
    the clusters of the hosts that the VirtualServices bound to it route to, plus the services listed
    in the annotation envoyfilter.istio.io/referenced-services of an EnvoyFilter applying to it
    (istio/istio 1.30.3 pilot/pkg/model/push_context.go GatewayServices, extraServicesForProxy;
    pilot/pkg/model/envoyfilter.go convertToEnvoyFilterWrapper; the annotation since 1.26)."""
    errors = []
    gateways = {f"{ns_of(d)}/{d['metadata']['name']}" for _, _, d in docs
                if d.get("kind") == "Gateway" and group_of(d) == ISTIO_GROUP and (d.get("spec") or {}).get("selector") == labels}
    routed, referenced = set(), set()
    for _, _, doc in docs:
        spec = doc.get("spec") or {}
        if doc.get("kind") == "VirtualService":
            if any((g if "/" in g else f"{ns_of(doc)}/{g}") in gateways for g in spec.get("gateways", [])):
                routed |= {r["destination"]["host"] for h in spec.get("http", []) for r in h.get("route", [])}
        elif doc.get("kind") == "EnvoyFilter" and istio_workload_labels(doc) == labels:
            annotation = (doc["metadata"].get("annotations") or {}).get("envoyfilter.istio.io/referenced-services", "")
            referenced |= {r.strip() for r in annotation.split(",") if r.strip()}
    for value in strings_in(config):
        if not value.startswith("outbound|"):
            continue
        _, port, _, host = value.split("|", 3)
        entries = [d for _, _, d in docs if d.get("kind") == "ServiceEntry" and host in (d.get("spec") or {}).get("hosts", [])]
        if not any(str(p.get("number")) == port for d in entries for p in d["spec"].get("ports", [])):
            errors.append(f"{where}: cluster {value}: no shipped ServiceEntry for {host} port {port}")
        elif host not in routed and host not in referenced and not any(f"{ns_of(d)}/{host}" in referenced for d in entries):
            errors.append(f"{where}: cluster {value} exists on the gateway only while PILOT_FILTER_GATEWAY_CLUSTER_CONFIG "
                          f"is off: route to {host} from a VirtualService on the gateway, or list it in the "
                          "envoyfilter.istio.io/referenced-services annotation of an EnvoyFilter for the gateway")
    return errors


# ------------------------------------------- clusters, file SDS and environment of the proxies
# The plugin configuration's keys that name an Envoy cluster (src/config).
CLUSTER_KEYS = {"sts_cluster", "web_identity_cluster", "container_cluster", "imds_cluster"}
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
# The Istio gateway Deployment (namespace, name, proxy container) whose pods carry these labels:
# the prerequisite of deploy/README.md, patched by deploy/istio/eks/gateway-deployment-patch.yaml.
ISTIO_GATEWAY_DEPLOYMENTS = {frozenset({"istio": "ingressgateway"}.items()): ("istio-system", "istio-ingressgateway",
                                                                            "istio-proxy")}
# What EKS sets in a pod for each credentials source (IRSA; Pod Identity), and variables a
# configuration may name in host_env_keys that nothing needs to set.
EKS_SETS = {"web_identity": {"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"},
            "container": {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"}}
EKS_SETS["chain"] = EKS_SETS["web_identity"] | EKS_SETS["container"]
OPTIONAL_ENV = {"AWS_SESSION_TOKEN", "AWS_ROLE_SESSION_NAME"}
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


def named_clusters(config: dict) -> set[str]:
    """The clusters a plugin configuration names (credentials, assume_role, profiles)."""
    return {node[key] for node in walk(config) for key in CLUSTER_KEYS & set(node) if isinstance(node[key], str)}


def istio_added_clusters(docs, labels: dict) -> dict[str, dict]:
    """name -> cluster of every cluster a shipped EnvoyFilter for the workloads `labels` adds to
    their gateways: CLUSTER ADD with context GATEWAY or ANY (istiod adds those to gateways
    whatever PILOT_FILTER_GATEWAY_CLUSTER_CONFIG says: pilot/pkg/networking/core/envoyfilter/
    cluster_patch.go InsertedClusters, appended in core/cluster.go)."""
    out = {}
    for _, _, doc in docs:
        if doc.get("kind") != "EnvoyFilter" or istio_workload_labels(doc) != labels:
            continue
        for patch in (doc.get("spec") or {}).get("configPatches", []):
            value = (patch.get("patch") or {}).get("value") or {}
            if (patch.get("applyTo") == "CLUSTER" and (patch.get("patch") or {}).get("operation") == "ADD"
                    and (patch.get("match") or {}).get("context", "ANY") in ("GATEWAY", "ANY")):
                out[value.get("name")] = value
    return out


def eg_proxies(docs, policy: dict) -> list[tuple[dict, dict | None]]:
    """(Gateway, its EnvoyProxy or None) for every shipped Gateway an EnvoyExtensionPolicy
    applies to: through its HTTPRoutes' parentRefs, then the Gateway's infrastructure.parametersRef
    or its GatewayClass's parametersRef (the EnvoyProxy whose bootstrap the proxies run)."""
    ns, spec = ns_of(policy), policy.get("spec") or {}
    gateways = []
    for ref in spec.get("targetRefs", []) + ([spec["targetRef"]] if spec.get("targetRef") else []):
        if ref.get("kind") == "Gateway":
            gateways.append(find(docs, GATEWAY_API_GROUP, "Gateway", ref.get("name"), ns))
            continue
        route = find(docs, GATEWAY_API_GROUP, ref.get("kind"), ref.get("name"), ns) or {}
        for p in (route.get("spec") or {}).get("parentRefs", []):
            gateways.append(find(docs, p.get("group", GATEWAY_API_GROUP), p.get("kind", "Gateway"), p.get("name"),
                                 p.get("namespace", ns)))
    out = []
    for gw in filter(None, gateways):
        ref = ((gw.get("spec") or {}).get("infrastructure") or {}).get("parametersRef") or {}
        proxy = None
        if ref.get("kind") == "EnvoyProxy":
            proxy = find(docs, EG_GROUP, "EnvoyProxy", ref.get("name"), ns_of(gw))
        else:
            cls = find(docs, GATEWAY_API_GROUP, "GatewayClass", (gw.get("spec") or {}).get("gatewayClassName")) or {}
            ref = (cls.get("spec") or {}).get("parametersRef") or {}
            if ref.get("kind") == "EnvoyProxy":
                proxy = find(docs, EG_GROUP, "EnvoyProxy", ref.get("name"), ref.get("namespace"))
        out.append((gw, proxy))
    return out


def bootstrap_clusters(proxy: dict) -> dict[str, dict]:
    """name -> cluster of the static clusters an EnvoyProxy adds to its proxies' bootstrap."""
    bootstrap = (proxy.get("spec") or {}).get("bootstrap") or {}
    clusters = (((yaml.safe_load(bootstrap.get("value") or "") or {}).get("static_resources") or {})
                .get("clusters", []))
    for op in bootstrap.get("jsonPatches", []):
        if op.get("op") == "add" and str(op.get("path", "")).startswith("/static_resources/clusters"):
            clusters = clusters + (op["value"] if isinstance(op.get("value"), list) else [op.get("value") or {}])
    return {c.get("name"): c for c in clusters}


def check_plugin_clusters(docs) -> list[str]:
    """Every cluster a plugin configuration names exists on the proxies that run it: an Istio
    mesh cluster (outbound|…, check_istio_clusters) or one a shipped EnvoyFilter adds to the
    gateway; for Envoy Gateway, a static cluster of the bootstrap of the Gateway's EnvoyProxy."""
    errors = []
    for where, labels, config in istio_plugin_configs(docs):
        added = istio_added_clusters(docs, labels)
        for name in sorted(named_clusters(config)):
            if not name.startswith("outbound|") and name not in added:
                errors.append(f"{where}: cluster {name!r} is neither a mesh cluster (outbound|…) nor added to the "
                              f"gateway by a shipped EnvoyFilter (CLUSTER ADD, context GATEWAY or ANY, the same "
                              f"workloadSelector; added: {sorted(added)})")
    for path, i, doc in docs:
        if doc.get("kind") != "EnvoyExtensionPolicy":
            continue
        where = f"{path.relative_to(ROOT)}[{i}] EnvoyExtensionPolicy/{doc['metadata'].get('name')}"
        for gw, proxy in eg_proxies(docs, doc):
            if proxy is None:
                errors.append(f"{where}: Gateway {ns_of(gw)}/{gw['metadata']['name']} has no shipped EnvoyProxy: "
                              "the clusters the filter names would not exist")
                continue
            clusters = bootstrap_clusters(proxy)
            for w in (doc.get("spec") or {}).get("wasm", []):
                for name in sorted(named_clusters(w.get("config") or {}) - set(clusters)):
                    errors.append(f"{where}: cluster {name!r} is not in the bootstrap of EnvoyProxy "
                                  f"{ns_of(proxy)}/{proxy['metadata']['name']} (clusters: {sorted(clusters)})")
    return errors


def envoy_pieces(docs):
    """(label, owner, Envoy object) for every piece of Envoy configuration a mesh manifest adds
    to its proxies: an EnvoyFilter's CLUSTER ADD value, an EnvoyProxy's bootstrap part."""
    for path, i, doc in docs:
        where = f"{path.relative_to(ROOT)}[{i}] {doc.get('kind')}/{doc['metadata'].get('name')}"
        spec = doc.get("spec") or {}
        if doc.get("kind") == "EnvoyFilter":
            for patch in spec.get("configPatches", []):
                value = (patch.get("patch") or {}).get("value") or {}
                if patch.get("applyTo") == "CLUSTER" and (patch.get("patch") or {}).get("operation") == "ADD":
                    yield f"{where} cluster {value.get('name')}", doc, value
        elif doc.get("kind") == "EnvoyProxy" and (spec.get("bootstrap") or {}).get("value"):
            yield f"{where} bootstrap", doc, yaml.safe_load(spec["bootstrap"]["value"]) or {}


def file_sds(obj):
    """(node, path_config_source) of every file-based SDS secret config in an Envoy object; the
    node's `name` is the secret's."""
    for node in walk(obj):
        sds = node.get("sds_config")
        if isinstance(sds, dict) and isinstance(sds.get("path_config_source"), dict):
            yield node, sds["path_config_source"]


def proxy_pod(docs, owner: dict) -> tuple[str, dict[str, str | None], str]:
    """(namespace, {mount path: ConfigMap name or None}, what) of the proxy container that runs
    the Envoy pieces of `owner`: for an Istio EnvoyFilter the gateway Deployment its
    workloadSelector names (ISTIO_GATEWAY_DEPLOYMENTS) as the shipped patches of it leave it; for
    an EnvoyProxy its envoyDeployment's pod and container (Envoy Gateway runs the proxies in its
    own namespace, the EnvoyProxy's here)."""
    mounts: dict[str, str | None] = {}
    if owner.get("kind") == "EnvoyFilter":
        target = ISTIO_GATEWAY_DEPLOYMENTS.get(frozenset(istio_workload_labels(owner).items()))
        if target is None:
            return "", mounts, f"no known gateway Deployment for {istio_workload_labels(owner)}"
        ns, name, container = target
        for _, _, d in docs:
            if d.get("kind") == "Deployment" and ns_of(d) == ns and d["metadata"].get("name") == name:
                pod = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
                volumes = {v.get("name"): (v.get("configMap") or {}).get("name") for v in pod.get("volumes", [])}
                for c in pod.get("containers", []):
                    if c.get("name") == container:
                        mounts.update({m["mountPath"].rstrip("/"): volumes.get(m["name"]) for m in c.get("volumeMounts", [])})
        return ns, mounts, f"the pods of Deployment {ns}/{name}, container {container} (with the shipped patches),"
    deployment = ((((owner.get("spec") or {}).get("provider") or {}).get("kubernetes") or {})
                  .get("envoyDeployment") or {})
    volumes = {v.get("name"): (v.get("configMap") or {}).get("name")
               for v in (deployment.get("pod") or {}).get("volumes", [])}
    for m in (deployment.get("container") or {}).get("volumeMounts", []):
        mounts[m["mountPath"].rstrip("/")] = volumes.get(m["name"])
    return ns_of(owner), mounts, f"the proxies of EnvoyProxy {ns_of(owner)}/{owner['metadata']['name']}"


def with_mounted_sds(docs, owner: dict, obj: dict, tmp: Path | None) -> dict:
    """A copy of the Envoy object `obj` of `owner` whose file-SDS paths point into `tmp`, where
    the ConfigMap mounted at each path's directory in the proxy pod is written, key by key, as
    the pod sees it (tmp None, or nothing mounted: the path stays)."""
    obj = copy.deepcopy(obj)
    if tmp is None:
        return obj
    ns, mounts, _ = proxy_pod(docs, owner)
    for _, source in file_sds(obj):
        directory, _, file = str(source.get("path", "")).rpartition("/")
        cm = find(docs, "", "ConfigMap", mounts.get(directory), ns) if mounts.get(directory) else None
        if cm is None:
            continue
        local = tmp / ns / cm["metadata"]["name"]
        local.mkdir(parents=True, exist_ok=True)
        for key, text in (cm.get("data") or {}).items():
            (local / key).write_text(text)
        source["path"] = str(local / file)
        if (source.get("watched_directory") or {}).get("path") == directory:
            source["watched_directory"]["path"] = str(local)
    return obj


def check_proxy_pods(docs) -> list[str]:
    """What the proxies' pods must hold for the shipped Envoy pieces and plugin configurations:
    - every file-SDS path of an Envoy piece (EnvoyFilter CLUSTER ADD, EnvoyProxy bootstrap) is a
      key of the ConfigMap the proxy container mounts at the path's directory, shipped in the
      proxies' namespace, watched there (watched_directory), holding the secret the config
      names, and equal to the file of examples/eks/sds of the same name;
    - for Envoy Gateway: every env.hostKeys entry is in the EnvoyProxy's container env (from a
      shipped Secret that has the key), set by EKS for the configuration's credentials source,
      or optional; the ExternalId variable is in both; with web identity (IRSA) the Gateway's
      infrastructure.annotations carry eks.amazonaws.com/role-arn, which Envoy Gateway puts on
      the proxies' ServiceAccount (so EKS mounts the token)."""
    errors = []
    for where, owner, obj in envoy_pieces(docs):
        sds = list(file_sds(obj))
        if not sds:
            continue
        ns, mounts, pod = proxy_pod(docs, owner)
        for node, source in sds:
            path = str(source.get("path", ""))
            directory, _, file = path.rpartition("/")
            watched = (source.get("watched_directory") or {}).get("path")
            if watched != directory:
                errors.append(f"{where}: {path}: watched_directory {watched!r} is not the file's directory (a "
                              "ConfigMap volume swaps its ..data there)")
            if mounts.get(directory) is None:
                errors.append(f"{where}: reads {path}, but {pod} mount no ConfigMap volume at {directory} "
                              f"(mount path -> ConfigMap: {mounts})")
                continue
            cm = find(docs, "", "ConfigMap", mounts[directory], ns)
            data = (cm or {}).get("data") or {}
            if file not in data:
                errors.append(f"{where}: reads {path}, but the ConfigMap {ns}/{mounts[directory]} mounted there "
                              + ("is not shipped" if cm is None else f"has only {sorted(data)}"))
                continue
            try:
                response = json.loads(data[file])
            except ValueError as e:
                errors.append(f"{where}: ConfigMap {ns}/{mounts[directory]} {file}: not JSON: {e}")
                continue
            names = [r.get("name") for r in response.get("resources", []) if r.get("@type") == SECRET_TYPE]
            if node.get("name") not in names:
                errors.append(f"{where}: {file} holds the secrets {names}, not {node.get('name')!r}")
            example = ROOT / "examples/eks/sds" / file
            if example.is_file() and json.loads(example.read_text()) != response:
                errors.append(f"{where}: ConfigMap {ns}/{mounts[directory]} {file} differs from examples/eks/sds/{file}")
    for path, i, doc in docs:
        if doc.get("kind") != "EnvoyExtensionPolicy":
            continue
        where = f"{path.relative_to(ROOT)}[{i}] EnvoyExtensionPolicy/{doc['metadata'].get('name')}"
        for gw, proxy in eg_proxies(docs, doc):
            if proxy is None:
                continue  # check_plugin_clusters
            container = ((((proxy.get("spec") or {}).get("provider") or {}).get("kubernetes") or {})
                         .get("envoyDeployment") or {}).get("container") or {}
            env = {e.get("name"): e for e in container.get("env", [])}
            for name, e in env.items():
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    secret = find(docs, "", "Secret", ref.get("name"), ns_of(proxy)) or {}
                    if ref.get("key") not in {**(secret.get("data") or {}), **(secret.get("stringData") or {})}:
                        errors.append(f"EnvoyProxy {ns_of(proxy)}/{proxy['metadata']['name']}: env {name} from "
                                      f"Secret {ref.get('name')} key {ref.get('key')}, which no shipped Secret there has")
            for w in (doc.get("spec") or {}).get("wasm", []):
                config = w.get("config") or {}
                source = (config.get("credentials") or {}).get("source")
                keys = set((w.get("env") or {}).get("hostKeys", []))
                for key in sorted(keys - set(env) - EKS_SETS.get(source, set()) - OPTIONAL_ENV):
                    errors.append(f"{where}: hostKey {key} is set by nothing shipped: not in the container env of "
                                  f"EnvoyProxy {ns_of(proxy)}/{proxy['metadata']['name']}, nor by EKS for "
                                  f"credentials.source {source!r}")
                for node in walk(config):
                    var = node.get("external_id_env")
                    if isinstance(var, str) and not (var in keys and var in env):
                        errors.append(f"{where}: external_id_env {var} must be in env.hostKeys and in the "
                                      f"container env of EnvoyProxy {ns_of(proxy)}/{proxy['metadata']['name']}")
                annotations = ((gw.get("spec") or {}).get("infrastructure") or {}).get("annotations") or {}
                if source == "web_identity" and IRSA_ANNOTATION not in annotations:
                    errors.append(f"{where}: web identity (IRSA), but Gateway {ns_of(gw)}/{gw['metadata']['name']} "
                                  f"has no infrastructure.annotations {IRSA_ANNOTATION}: EKS mounts no token")
    return errors


# -------------------------------------------------------- EnvoyPatchPolicy jsonPath (RFC 9535)
# Envoy Gateway's xDS names, as of envoyproxy/gateway v1.9.0 (the same since v1.6.0):
# - a Gateway listener's xDS listener: <namespace>/<gateway>/<listener> (internal/gatewayapi/helpers.go
#   irListenerName; internal/xds/translator/listener.go xdsListenerName: tcp-<port> only with the
#   runtime flag XDSNameSchemeV2, off by default in api/v1alpha1/envoygateway_helpers.go);
# - the HCM Wasm filter of an EnvoyExtensionPolicy's spec.wasm[i]:
#   envoy.filters.http.wasm/envoyextensionpolicy/<namespace>/<policy>/wasm/<i> (internal/xds/translator/
#   wasm.go wasmFilterName + utils.go perRouteFilterName; internal/gatewayapi/envoyextensionpolicy.go
#   irConfigNameForWasm; helpers.go irConfigName), added disabled and enabled per route;
# - the patch is applied to the resource as protojson with proto field names
#   (internal/xds/translator/jsonpatch.go jsonMarshalOpts UseProtoNames) and the JSONPath is
#   evaluated by ohler55/ojg (internal/utils/jsonpatch/jsonpathtopointer.go): each match becomes
#   a JSON Pointer, `path` is appended, no match is an error and the patch is skipped.
EG_WASM_FILTER = "envoy.filters.http.wasm/envoyextensionpolicy/{ns}/{name}/wasm/{i}"
# ojg's string escapes (jp/parse.go readEscStr) that RFC 9535 also has: anything else (`\.`, and
# RFC 9535's `\/`) fails one of the two parsers.
OJG_AND_RFC9535_ESCAPES = set("btnfr\"'\\u")
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def eg_wasm_filter(ns: str, policy: str, i: int, wasm: dict) -> dict:
    """The HCM filter Envoy Gateway generates for spec.wasm[i] (internal/xds/translator/wasm.go
    buildHCMWasmFilter, wasmConfig), as protojson with proto names."""
    config_name = f"envoyextensionpolicy/{ns}/{policy}/wasm/{i}"
    vm_config = {"vm_id": config_name, "runtime": "envoy.wasm.runtime.v8", "code": {"remote": {
        "http_uri": {"uri": f"https://envoy-gateway:18002/{i}.wasm", "cluster": "wasm_cluster", "timeout": "10s"},
        "sha256": "0" * 64, "retry_policy": {"num_retries": 10}}}}
    if (wasm.get("env") or {}).get("hostKeys"):
        vm_config["environment_variables"] = {"host_env_keys": wasm["env"]["hostKeys"]}
    config = {"name": wasm.get("name") or config_name, "vm_config": vm_config,
              "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                "value": json.dumps(wasm.get("config") or {}, separators=(",", ":"))}}
    if wasm.get("rootID"):
        config["root_id"] = wasm["rootID"]
    if wasm.get("failOpen"):
        config["fail_open"] = True
    return {"name": EG_WASM_FILTER.format(ns=ns, name=policy, i=i), "disabled": True,
            "typed_config": {"@type": WASM_TYPE, "config": config}}


def eg_listener(docs, gateway: dict, listener: str) -> tuple[dict, list[str]]:
    """An xDS listener shaped like Envoy Gateway's for `listener` of `gateway`, with the Wasm filters
    of the shipped EnvoyExtensionPolicies attached to it, and filters of other policies beside
    them; and the names of the shipped policies' filters."""
    gw_ns, gw_name = ns_of(gateway), gateway["metadata"]["name"]

    def attached(ref: dict, ns: str) -> bool:
        if ref.get("kind") == "Gateway":
            return ns == gw_ns and ref.get("name") == gw_name and ref.get("sectionName", listener) == listener
        route = find(docs, GATEWAY_API_GROUP, ref.get("kind"), ref.get("name"), ns)
        return route is not None and any(
            p.get("name") == gw_name and p.get("namespace", ns) == gw_ns and p.get("sectionName", listener) == listener
            for p in (route.get("spec") or {}).get("parentRefs", []))

    shipped = []
    for _, _, doc in docs:
        if doc.get("kind") == "EnvoyExtensionPolicy":
            ns, spec = ns_of(doc), doc.get("spec") or {}
            if any(attached(ref, ns) for ref in spec.get("targetRefs", []) + [spec.get("targetRef") or {}]):
                shipped += [eg_wasm_filter(ns, doc["metadata"]["name"], i, w) for i, w in enumerate(spec.get("wasm", []))]
    others = []
    for f in shipped:
        _, _, ns, name, _, i = f["name"].split("/")
        others.append(eg_wasm_filter(ns, "another-policy", 0, {"name": "another", "config": {}}))
        others.append(eg_wasm_filter("another-namespace", name, int(i), {"name": name, "config": {}}))
        others.append({"name": f"envoy.filters.http.ext_proc/envoyextensionpolicy/{ns}/{name}/extproc/0",
                       "disabled": True, "typed_config": {
                           "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
                           "grpc_service": {"envoy_grpc": {"cluster_name": "extproc"}}}})
    router = {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router", "suppress_envoy_headers": True}}
    name = f"{gw_ns}/{gw_name}/{listener}"
    return {
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 10080}},
        "default_filter_chain": {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM_TYPE, "stat_prefix": "http-10080",
            "rds": {"config_source": {"ads": {}, "resource_api_version": "V3"}, "route_config_name": name},
            "http_filters": others[:len(others) // 2] + shipped + others[len(others) // 2:] + [router]}}]},
        "per_connection_buffer_limit_bytes": 32768,
    }, [f["name"] for f in shipped]


def pointer(location, path: str) -> str:
    """A JSON Pointer for an RFC 9535 node location with `path` appended, as Envoy Gateway's
    ConvertPathToPointers builds it (internal/utils/jsonpatch/jsonpathtopointer.go)."""
    base = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in location)
    return f"{base.rstrip('/')}/{path.lstrip('/')}" if path else base


def resolve_json_path(json_path: str, path: str, document: dict) -> tuple[list[str] | None, str]:
    """The JSON Pointers a jsonPath (+ path) resolves to in `document`, or None and why not."""
    try:
        nodes = jsonpath_rfc9535.find(json_path, document)
    except jsonpath_rfc9535.JSONPathError as e:
        return None, f"not RFC 9535 JSONPath: {e}"
    i = 0
    while (i := json_path.find("\\", i)) >= 0:
        if json_path[i + 1:i + 2] not in OJG_AND_RFC9535_ESCAPES:
            return None, f"escape {json_path[i:i + 2]!r} at {i}: Envoy Gateway's parser (ohler55/ojg) rejects it"
        i += 2
    return [pointer(n.location, path) for n in nodes], ""


def apply_add(document: dict, ptr: str, value) -> None:
    """JSON Patch `add` of `value` at the pointer `ptr` (object members, as Envoy Gateway with
    EnsurePathExistsOnAdd: missing objects on the way are created)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in ptr.split("/")[1:]]
    target = document
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    target[parts[-1]] = value


def check_patch_policies(docs):
    """(label, ok, output) for every EnvoyPatchPolicy jsonPath: it parses as RFC 9535 JSONPath with
    escapes ojg takes too, resolves in a listener shaped like Envoy Gateway's to exactly the Wasm
    filters of the shipped EnvoyExtensionPolicies on that listener, and the patched filter config
    (with the built filter) passes `envoy --mode validate` with allow_on_headers_stop_iteration set."""
    out = []
    for path, i, doc in docs:
        if doc.get("kind") != "EnvoyPatchPolicy":
            continue
        spec = doc.get("spec") or {}
        ref = spec.get("targetRef") or {}
        gateway = find(docs, GATEWAY_API_GROUP, "Gateway", ref.get("name"), ns_of(doc)) if ref.get("kind") == "Gateway" else None
        for j, jp in enumerate(spec.get("jsonPatches", [])):
            label = f"{path.relative_to(ROOT)}[{i}] EnvoyPatchPolicy/{doc['metadata']['name']} jsonPatches[{j}]"
            operation = jp.get("operation") or {}
            if "jsonPath" not in operation:
                continue
            if jp.get("type") != "type.googleapis.com/envoy.config.listener.v3.Listener":
                ptrs, why = resolve_json_path(operation["jsonPath"], operation.get("path") or "", {})
                out.append((f"{label} jsonPath parses", ptrs is not None, why))
                continue
            listeners = [lst["name"] for lst in ((gateway or {}).get("spec") or {}).get("listeners", [])]
            names = {f"{ns_of(gateway)}/{gateway['metadata']['name']}/{lst}": lst for lst in listeners} if gateway else {}
            if jp.get("name") not in names:
                out.append((label, False, f"listener {jp.get('name')!r} is none of the target Gateway's: {sorted(names)}"))
                continue
            listener, meant = eg_listener(docs, gateway, names[jp["name"]])
            ptrs, why = resolve_json_path(operation["jsonPath"], operation.get("path") or "", listener)
            filters = listener["default_filter_chain"]["filters"][0]["typed_config"]["http_filters"]
            want = [pointer(("default_filter_chain", "filters", 0, "typed_config", "http_filters", k, "typed_config", "config"),
                            operation.get("path") or "")
                    for k, f in enumerate(filters) if f["name"] in meant]
            if ptrs is None or not meant or sorted(ptrs) != sorted(want):
                out.append((f"{label} jsonPath selects the shipped Wasm filters", False,
                            why or f"selects {ptrs}\nmeant {want} (filters {meant})"))
                continue
            out.append((f"{label} jsonPath selects the shipped Wasm filters ({len(meant)}) in {jp['name']}", True, ""))
            if operation.get("op") != "add":
                continue
            for ptr in ptrs:
                apply_add(listener, ptr, operation.get("value"))
            for f in filters:
                if f["name"] not in meant:
                    continue
                config = copy.deepcopy(f["typed_config"]["config"])
                if config.get("allow_on_headers_stop_iteration") is not True:
                    out.append((f"{label} patched {f['name']}", False, "allow_on_headers_stop_iteration not set"))
                    continue
                config["vm_config"]["code"] = {"local": {"filename": WASM}}
                ok, output = validate_text(wasm_bootstrap(config))
                out.append((f"{label} patched {f['name']} (envoy --mode validate)", ok, output))
    return out


def broken_manifests(docs):
    """(what, broken copy of docs, check) that the deploy/ checks above must reject."""
    def edit(change):
        broken = copy.deepcopy(docs)
        for _, _, doc in broken:
            change(doc)
        return broken

    def json_path(value):
        def change(doc):
            if doc.get("kind") == "EnvoyPatchPolicy":
                doc["spec"]["jsonPatches"][0]["operation"]["jsonPath"] = value
        return change

    def patches_fail(broken):
        return not all(ok for _, ok, _ in check_patch_policies(broken))

    def drop_kind(kind, group):
        def drop(d):
            if d.get("kind") == kind and group_of(d) == group:
                d["metadata"]["name"] += "-not-shipped"
        return drop

    def rename_sts_reference(d):
        annotations = d["metadata"].get("annotations") or {}
        if "envoyfilter.istio.io/referenced-services" in annotations:
            annotations["envoyfilter.istio.io/referenced-services"] = "other.example.com"

    def target_refs(d):
        if d.get("kind") == "EnvoyPatchPolicy":
            d["spec"]["targetRefs"] = [d["spec"].pop("targetRef")]

    def rename_eg_sts(d):
        if d.get("kind") == "EnvoyExtensionPolicy":
            for w in d["spec"]["wasm"]:
                w["config"]["credentials"]["assume_role"]["sts_cluster"] = "sts-not-in-the-bootstrap"

    def drop_env(name):
        def drop(d):
            if d.get("kind") == "EnvoyProxy":
                container = d["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]
                container["env"] = [e for e in container.get("env", []) if e["name"] != name]
        return drop

    def access_log_field(d):
        if d.get("kind") == "EnvoyProxy":
            d["spec"]["telemetry"]["accessLog"]["settings"][0]["format"]["textFormat"] = "%START_TIME%"

    def access_log_sink(d):
        if d.get("kind") == "EnvoyProxy":
            d["spec"]["telemetry"]["accessLog"]["settings"][0]["sinks"][0]["type"] = "ALS"

    def telemetry_field(d):
        if d.get("kind") == "Telemetry":
            d["spec"]["accessLogging"][0]["logFormat"] = {"text": "%START_TIME%"}

    def telemetry_selector(d):
        if d.get("kind") == "Telemetry":
            d["spec"]["selector"]["matchLabels"] = {"istio": "egressgateway"}

    return [
        # What shipped before: `\.` in the regex string (Envoy Gateway skipped the patch).
        ("the jsonPath shipped before", edit(json_path(
            "..http_filters[?match(@.name, 'envoy\\.filters\\.http\\.wasm/.*')].typed_config.config")), patches_fail),
        ("a jsonPath with '\\.' in a string", edit(json_path(
            "$..http_filters[?match(@.name, 'envoy\\.filters\\.http\\.wasm/.*')].typed_config.config")), patches_fail),
        ("the same with '\\\\.' (valid) but matching every Wasm filter", edit(json_path(
            "$..http_filters[?match(@.name, 'envoy\\\\.filters\\\\.http\\\\.wasm/.*')].typed_config.config")), patches_fail),
        ("a jsonPath matching nothing", edit(json_path(
            "$..http_filters[?(@.name == 'envoy.filters.http.wasm')].typed_config.config")), patches_fail),
        ("targetRefs on an EnvoyPatchPolicy", edit(target_refs), check_fields),
        ("a Gateway API Gateway not shipped", edit(drop_kind("Gateway", GATEWAY_API_GROUP)), check_references),
        ("an Istio Gateway not shipped", edit(drop_kind("Gateway", ISTIO_GROUP)), check_references),
        ("the STS host not in referenced-services", edit(rename_sts_reference), check_references),
        ("an Envoy Gateway plugin configuration naming a cluster its EnvoyProxy's bootstrap lacks",
         edit(rename_eg_sts), check_references),
        ("an EnvoyProxy without AWS_ACCESS_KEY_ID in the container env", edit(drop_env("AWS_ACCESS_KEY_ID")),
         check_proxy_pods),
        ("an EnvoyProxy access-log format with a field its API lacks (textFormat)", edit(access_log_field), check_fields),
        ("an EnvoyProxy access-log sink of type ALS with a file", edit(access_log_sink), check_fields),
        ("an Istio Telemetry with a format of its own (no such field: the format is mesh config)",
         edit(telemetry_field), check_fields),
        ("an Istio Telemetry selecting the pods of no shipped gateway", edit(telemetry_selector), check_references),
    ]


# ------------------------------------------------------------------ deploy/*/eks: the EKS variants
# Each variant is the base manifests of one mesh, without the files it does not go with, with
# its own files applied over them: a resource of the same group, kind, namespace and name
# replaces the base one, as `kubectl apply` does (deploy/README.md, EKS). Every check of the
# base manifests runs on each variant, plus the drift check (check_variant_drift).
EKS_VARIANTS = {
    "istio/eks IRSA": {
        "base": "deploy/istio", "without": ["deploy/istio/wasmplugin.yaml"],
        "files": ["deploy/istio/eks/sds.yaml", "deploy/istio/eks/gateway-deployment-patch.yaml",
                  "deploy/istio/eks/irsa.yaml"]},
    "istio/eks Pod Identity": {
        "base": "deploy/istio", "without": ["deploy/istio/wasmplugin.yaml"],
        "files": ["deploy/istio/eks/sds.yaml", "deploy/istio/eks/gateway-deployment-patch.yaml",
                  "deploy/istio/eks/pod-identity.yaml"]},
    "envoy-gateway/eks IRSA": {
        "base": "deploy/envoy-gateway",
        "files": ["deploy/envoy-gateway/eks/sds.yaml", "deploy/envoy-gateway/eks/irsa.yaml"]},
    "envoy-gateway/eks Pod Identity": {
        "base": "deploy/envoy-gateway",
        "files": ["deploy/envoy-gateway/eks/sds.yaml", "deploy/envoy-gateway/eks/pod-identity.yaml"]},
}


def identity(doc: dict) -> tuple:
    return (str(doc.get("apiVersion", "")).rpartition("/")[0], doc.get("kind"), ns_of(doc),
            (doc.get("metadata") or {}).get("name"))


def variant_manifests(base, variant: dict) -> tuple[list, list]:
    """(the variant's whole set of documents, its own documents). A base patch stays beside a
    variant's patch of the same resource: both are applied."""
    own = load_manifests(ROOT / f for f in variant["files"])
    docs = [d for d in base if d[0].is_relative_to(ROOT / variant["base"])
            and str(d[0].relative_to(ROOT)) not in variant.get("without", [])]
    keys = {identity(d) for p, _, d in own if not is_patch_file(p)}
    return [d for d in docs if identity(d[2]) not in keys] + own, own


def pruned(obj):
    """`obj` without empty mappings and lists (what Kubernetes treats as absent)."""
    if isinstance(obj, dict):
        obj = {k: pruned(v) for k, v in obj.items()}
        return {k: v for k, v in obj.items() if v not in ({}, [], None)}
    if isinstance(obj, list):
        return [pruned(v) for v in obj]
    return obj


def first_difference(a, b, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{where}.{key}: only in the {'variant' if key in b else 'base'}"
            diff = first_difference(a[key], b[key], f"{where}.{key}")
            if diff:
                return diff
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} entries in the base, {len(b)} in the variant"
        for i, (x, y) in enumerate(zip(a, b)):
            diff = first_difference(x, y, f"{where}[{i}]")
            if diff:
                return diff
        return None
    return None if a == b else f"{where}: {a!r} in the base, {b!r} in the variant"


def comparable(doc: dict) -> dict:
    """`doc` without what an EKS variant changes on purpose: the plugin configuration's
    credentials and the VM's environment keys; the clusters the variant adds (EnvoyFilter
    CLUSTER ADD; the bootstrap, compared apart); the proxy pod's volumes, mounts, securityContext,
    env and ServiceAccount (EnvoyProxy); the Gateway's infrastructure."""
    doc = copy.deepcopy(doc)
    spec = doc.get("spec") or {}
    if doc.get("kind") == "EnvoyFilter":
        spec["configPatches"] = [p for p in spec.get("configPatches", []) if p.get("applyTo") != "CLUSTER"]
        for p in spec["configPatches"]:
            typed = ((p.get("patch") or {}).get("value") or {}).get("typed_config") or {}
            if typed.get("@type") == WASM_TYPE:
                config = typed.get("config") or {}
                plugin = json.loads((config.get("configuration") or {}).get("value") or "{}")
                plugin.pop("credentials", None)
                config.setdefault("configuration", {})["value"] = plugin
                (config.get("vm_config") or {}).pop("environment_variables", None)
    elif doc.get("kind") == "EnvoyExtensionPolicy":
        for w in spec.get("wasm", []):
            (w.get("config") or {}).pop("credentials", None)
            w.pop("env", None)
    elif doc.get("kind") == "EnvoyProxy":
        spec["bootstrap"] = {k: v for k, v in (spec.get("bootstrap") or {}).items() if k == "type"}
        kubernetes = (spec.get("provider") or {}).get("kubernetes") or {}
        kubernetes.pop("envoyServiceAccount", None)
        deployment = kubernetes.get("envoyDeployment") or {}
        pod = deployment.get("pod") or {}
        for key in ("volumes", "securityContext"):
            pod.pop(key, None)
        for key in ("env", "volumeMounts"):
            (deployment.get("container") or {}).pop(key, None)
    elif doc.get("kind") == "Gateway":
        spec.pop("infrastructure", None)
    return pruned(doc)


def check_variant_drift(base, docs) -> list[str]:
    """Every document of `docs` that replaces a base one differs from it only where an EKS
    variant must (comparable), and an EnvoyProxy keeps every base bootstrap cluster as it is:
    a change to the base manifests (a flag, a timeout, an image) reaches the variants too."""
    errors = []
    for path, i, doc in docs:
        base_doc = next((d for p, _, d in base if identity(d) == identity(doc) and not is_variant_file(p)), None)
        if base_doc is None or base_doc is doc or is_patch_file(path):
            continue
        where = f"{path.relative_to(ROOT)}[{i}] {doc.get('kind')}/{doc['metadata'].get('name')}"
        diff = first_difference(comparable(base_doc), comparable(doc))
        if diff:
            errors.append(f"{where}: differs from the base manifest beyond what the EKS variant changes: {diff}")
        if doc.get("kind") == "EnvoyProxy":
            clusters = bootstrap_clusters(doc)
            for name, cluster in bootstrap_clusters(base_doc).items():
                if clusters.get(name) != cluster:
                    errors.append(f"{where}: the base bootstrap cluster {name!r} is " +
                                  ("missing" if name not in clusters else "changed"))
    return errors


def broken_variant_manifests(base, docs, own, mesh: str):
    """(what, broken copy of the variant's documents, check) that the checks must reject."""
    own_keys = {identity(d) for _, _, d in own}

    def edit(change):
        broken = copy.deepcopy(docs)
        for _, _, doc in broken:
            if identity(doc) in own_keys:
                change(doc)
        return broken

    def plugin_configs(doc):
        """(the plugin configuration, a function storing it back) of an own document."""
        for p in (doc.get("spec") or {}).get("configPatches", []):
            typed = ((p.get("patch") or {}).get("value") or {}).get("typed_config") or {}
            if typed.get("@type") == WASM_TYPE:
                config = typed["config"]["configuration"]
                yield json.loads(config["value"]), lambda plugin, c=config: c.__setitem__("value", json.dumps(plugin))
        for w in (doc.get("spec") or {}).get("wasm", []) if doc.get("kind") == "EnvoyExtensionPolicy" else []:
            yield w["config"], lambda plugin, w=w: w.__setitem__("config", plugin)

    def unshipped_cluster(doc):
        for plugin, store in plugin_configs(doc):
            for key in ("web_identity_cluster", "container_cluster"):
                if key in plugin.get("credentials", {}):
                    plugin["credentials"][key] += "_not_shipped"
            store(plugin)

    def other_timeout(doc):
        for plugin, store in plugin_configs(doc):
            plugin["timeout_ms"] = plugin.get("timeout_ms", 0) + 1
            store(plugin)

    def cluster_context(doc):
        for p in (doc.get("spec") or {}).get("configPatches", []):
            if p.get("applyTo") == "CLUSTER":
                p.setdefault("match", {})["context"] = "SIDECAR_OUTBOUND"

    def sds_files_dropped(doc):
        if doc.get("kind") == "ConfigMap":
            doc["data"] = {k: v for k, v in doc.get("data", {}).items() if not k.endswith(".json")}

    def mount_elsewhere(doc):
        if doc.get("kind") == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                for m in c.get("volumeMounts", []):
                    m["mountPath"] = "/etc/somewhere-else"

    def pod_part(doc):
        return doc["spec"]["provider"]["kubernetes"]["envoyDeployment"] if doc.get("kind") == "EnvoyProxy" else None

    def no_volumes(doc):
        if pod_part(doc):
            pod_part(doc).get("pod", {}).pop("volumes", None)

    def no_external_id(doc):
        if pod_part(doc):
            container = pod_part(doc)["container"]
            container["env"] = [e for e in container.get("env", []) if e["name"] != "LAMBDA_EXTERNAL_ID"]

    def no_irsa_annotation(doc):
        if doc.get("kind") == "Gateway":
            ((doc["spec"].get("infrastructure") or {}).get("annotations") or {}).pop(IRSA_ANNOTATION, None)

    def policy_renamed(doc):
        if doc.get("kind") == "EnvoyExtensionPolicy":
            doc["metadata"]["name"] += "-renamed"

    def drift(broken):
        return check_variant_drift(base, broken)

    def patches_fail(broken):
        return not all(ok for _, ok, _ in check_patch_policies(broken))

    out = [
        ("the plugin configuration naming a token cluster the manifests do not add", edit(unshipped_cluster),
         check_references),
        ("the SDS ConfigMap without the files the cluster reads", edit(sds_files_dropped), check_proxy_pods),
        ("a timeout_ms differing from the base manifest's", edit(other_timeout), drift),
    ]
    if mesh == "istio":
        out += [
            ("the cluster patch for SIDECAR_OUTBOUND only (never on the gateway)", edit(cluster_context),
             check_references),
            ("the gateway patch mounting the SDS ConfigMap elsewhere", edit(mount_elsewhere), check_proxy_pods),
        ]
    else:
        out += [
            ("the EnvoyProxy without the SDS volume", edit(no_volumes), check_proxy_pods),
            ("the EnvoyProxy without LAMBDA_EXTERNAL_ID in the container env", edit(no_external_id), check_proxy_pods),
            ("the EnvoyExtensionPolicy renamed (the EnvoyPatchPolicy no longer finds its filter)",
             edit(policy_renamed), patches_fail),
        ]
        if any(IRSA_ANNOTATION in (((d.get("spec") or {}).get("infrastructure") or {}).get("annotations") or {})
               for _, _, d in own):
            out.append(("the Gateway without the IRSA role annotation", edit(no_irsa_annotation), check_proxy_pods))
    return [(what, broken if broken != docs else None, check) for what, broken, check in out]


# ------------------------------------------------ stats_config, the metrics listener, dashboards
# Where istio-agent finds the bootstrap it hands Envoy with --config-yaml (pkg/envoy/proxy.go).
ISTIO_OVERRIDE_ENV = "ISTIO_BOOTSTRAP_OVERRIDE"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def doc_block(key: str) -> dict:
    """The one ```yaml block starting with `key:` in the project's documentation (README.md and
    docs/*.md, wherever the section lives), parsed."""
    found = [(path, block) for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
             for block in re.findall(rf"```yaml\n({re.escape(key)}:\n.*?)```", path.read_text(), re.S)]
    if len(found) != 1:
        raise ValueError(f"README.md, docs/*.md: {len(found)} ```yaml blocks starting with {key}: "
                         f"({', '.join(str(p.relative_to(ROOT)) for p, _ in found)}), expected 1")
    return yaml.safe_load(found[0][1])


def readme_stats_config() -> dict:
    """The stats_config block of README.md (Stats; or of the docs/*.md it moved to): the one
    source every shipped bootstrap copies."""
    return doc_block("stats_config")["stats_config"]


def shipped_bootstraps(docs) -> list[tuple[str, dict]]:
    """(label, bootstrap or bootstrap part) of every Envoy bootstrap shipped in `docs`: a
    ConfigMap's envoy.yaml, an Istio bootstrap override (a ConfigMap key a gateway's
    ISTIO_BOOTSTRAP_OVERRIDE names, or custom_bootstrap.json), an EnvoyProxy's bootstrap."""
    overrides = {Path(e["value"]).name for _, _, d in docs if d.get("kind") == "Deployment"
                 for c in (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers", [])
                 for e in c.get("env", []) if e.get("name") == ISTIO_OVERRIDE_ENV and e.get("value")}
    out = []
    for path, i, doc in docs:
        where = f"{path.relative_to(ROOT)}[{i}] {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        spec = doc.get("spec") or {}
        if doc.get("kind") == "ConfigMap":
            for key, text in (doc.get("data") or {}).items():
                if (key.endswith((".yaml", ".yml")) and "static_resources" in text) or key in overrides | {
                        "custom_bootstrap.json"}:
                    out.append((f"{where} {key}", yaml.safe_load(text) or {}))
        elif doc.get("kind") == "EnvoyProxy" and (spec.get("bootstrap") or {}).get("value"):
            out.append((f"{where} bootstrap", yaml.safe_load(spec["bootstrap"]["value"]) or {}))
    return out


def check_stats_config(docs, readme: dict) -> list[str]:
    """Every bootstrap shipped in `docs` has exactly README's stats_config; an EnvoyProxy's is
    merged (type Merge appends its stats_tags to Envoy Gateway's own; Replace would drop
    everything Envoy Gateway needs)."""
    errors = []
    for label, bootstrap in shipped_bootstraps(docs):
        if bootstrap.get("stats_config") != readme:
            errors.append(f"{label}: stats_config is {bootstrap.get('stats_config')!r}, not README's block")
    for path, i, doc in docs:
        bootstrap = (doc.get("spec") or {}).get("bootstrap") or {}
        if doc.get("kind") == "EnvoyProxy" and bootstrap.get("type") != "Merge":
            errors.append(f"{path.relative_to(ROOT)}[{i}] EnvoyProxy: bootstrap type {bootstrap.get('type')!r}, not Merge")
    return errors


def patched_pod(docs, ns: str, name: str, container: str) -> tuple[dict, dict[str, str | None]]:
    """({env name: value}, {mount path: ConfigMap name or None}) of `container` in Deployment
    ns/name as every shipped patch of it leaves it."""
    env, mounts = {}, {}
    for _, _, d in docs:
        if d.get("kind") == "Deployment" and ns_of(d) == ns and d["metadata"].get("name") == name:
            pod = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
            volumes = {v.get("name"): (v.get("configMap") or {}).get("name") for v in pod.get("volumes", [])}
            for c in pod.get("containers", []):
                if c.get("name") == container:
                    env.update({e.get("name"): e.get("value") for e in c.get("env", [])})
                    mounts.update({m["mountPath"].rstrip("/"): volumes.get(m["name"]) for m in c.get("volumeMounts", [])})
    return env, mounts


def check_istio_stats_override(docs, readme: dict) -> list[str]:
    """Each Istio gateway a shipped EnvoyFilter or WasmPlugin runs on gets README's stats_config:
    its istio-proxy container (as the shipped patches leave it) has ISTIO_BOOTSTRAP_OVERRIDE
    naming a file of the ConfigMap mounted at that directory, shipped in the gateway's
    namespace, which holds the block."""
    errors = []
    selected = {frozenset(istio_workload_labels(d).items()) for _, _, d in docs
                if d.get("kind") in ("EnvoyFilter", "WasmPlugin")}
    for labels, (ns, name, container) in ISTIO_GATEWAY_DEPLOYMENTS.items():
        if labels not in selected:
            continue
        env, mounts = patched_pod(docs, ns, name, container)
        where = f"Deployment {ns}/{name} container {container} (with the shipped patches)"
        path = env.get(ISTIO_OVERRIDE_ENV)
        if not path:
            errors.append(f"{where}: no {ISTIO_OVERRIDE_ENV}: the gateway's bootstrap has no stats_tags")
            continue
        directory, _, file = path.rpartition("/")
        cm = find(docs, "", "ConfigMap", mounts.get(directory), ns) if mounts.get(directory) else None
        if cm is None or file not in (cm.get("data") or {}):
            errors.append(f"{where}: {ISTIO_OVERRIDE_ENV}={path}, but no shipped ConfigMap in {ns} with key {file} "
                          f"is mounted at {directory} (mount path -> ConfigMap: {mounts})")
        elif (yaml.safe_load(cm["data"][file]) or {}).get("stats_config") != readme:
            errors.append(f"{where}: {path} (ConfigMap {ns}/{cm['metadata']['name']}) lacks README's stats_config")
    return errors


def socket_of(address: dict) -> tuple[str, int]:
    s = (address or {}).get("socket_address") or {}
    return str(s.get("address")), int(s.get("port_value", 0))


def check_metrics_listeners(docs) -> list[str]:
    """A Deployment that asks Prometheus to scrape it (prometheus.io/scrape) exposes only
    /stats/prometheus there: the annotated port is a container port and, in the Envoy config the
    container reads (-c, from the ConfigMap mounted there), a listener whose one route is an
    exact GET /stats/prometheus to a cluster that is the admin interface, which listens on
    loopback only."""
    errors = []
    for path, i, doc in docs:
        template = (doc.get("spec") or {}).get("template") or {}
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        if doc.get("kind") != "Deployment" or annotations.get("prometheus.io/scrape") != "true":
            continue
        where = f"{path.relative_to(ROOT)}[{i}] Deployment/{doc['metadata']['name']}"
        port = int(annotations.get("prometheus.io/port", 0))
        if annotations.get("prometheus.io/path") != "/stats/prometheus":
            errors.append(f"{where}: prometheus.io/path {annotations.get('prometheus.io/path')!r}")
        pod = template.get("spec") or {}
        volumes = {v.get("name"): (v.get("configMap") or {}).get("name") for v in pod.get("volumes", [])}
        for c in pod.get("containers", []):
            args = c.get("args", [])
            if "-c" not in args:
                continue
            if port not in [p.get("containerPort") for p in c.get("ports", [])]:
                errors.append(f"{where}: prometheus.io/port {port} is no containerPort of {c.get('name')}")
            config = args[args.index("-c") + 1]
            directory, _, file = config.rpartition("/")
            mounted = {m["mountPath"].rstrip("/"): volumes.get(m["name"]) for m in c.get("volumeMounts", [])}
            cm = find(docs, "", "ConfigMap", mounted.get(directory), ns_of(doc)) or {}
            bootstrap = yaml.safe_load((cm.get("data") or {}).get(file) or "{}") or {}
            admin = socket_of((bootstrap.get("admin") or {}).get("address"))
            if admin[0] not in LOOPBACK:
                errors.append(f"{where}: the admin interface listens on {admin[0]}, not on loopback")
            resources = bootstrap.get("static_resources") or {}
            clusters = {cl.get("name"): cl for cl in resources.get("clusters", [])}
            listeners = [li for li in resources.get("listeners", []) if socket_of(li.get("address"))[1] == port]
            if len(listeners) != 1:
                errors.append(f"{where}: {len(listeners)} listeners on the scraped port {port} in {config}")
            for li in listeners:
                hcms = [n for n in walk(li.get("filter_chains", [])) if "route_config" in n or "rds" in n]
                if not hcms or any("rds" in n for n in hcms):
                    errors.append(f"{where}: listener {li.get('name')}: its routes must be inline")
                for hcm in hcms:
                    for vh in (hcm.get("route_config") or {}).get("virtual_hosts", []):
                        routes = vh.get("routes", [])
                        match = (routes[0].get("match") or {}) if len(routes) == 1 else {}
                        methods = [h.get("string_match") for h in match.get("headers", []) if h.get("name") == ":method"]
                        if set(match) - {"headers"} != {"path"} or match.get("path") != "/stats/prometheus" \
                                or methods != [{"exact": "GET"}]:
                            errors.append(f"{where}: listener {li.get('name')} routes {routes}, not one exact "
                                          "GET /stats/prometheus")
                            continue
                        cluster = clusters.get((routes[0].get("route") or {}).get("cluster")) or {}
                        hosts = [socket_of(e.get("endpoint", {}).get("address"))
                                 for n in walk(cluster.get("load_assignment")) for e in n.get("lb_endpoints", [])]
                        if not hosts or set(hosts) != {admin}:
                            errors.append(f"{where}: listener {li.get('name')} sends /stats/prometheus to {hosts}, "
                                          f"not to the admin interface {admin}")
    return errors


def dashboard_queries(dashboard: dict) -> list[str]:
    """The PromQL of every panel target of a Grafana dashboard (rows' panels included)."""
    return [t["expr"] for node in walk(dashboard.get("panels", []))
            for t in node.get("targets", []) if isinstance(t, dict) and t.get("expr")]


def check_dashboard_promql(dashboard: dict) -> tuple[bool, str]:
    """Every dashboard query parses as PromQL (promtool check rules, Grafana's variables
    replaced: $__rate_interval and the like by 5m, $function and the like by .*)."""
    queries = dashboard_queries(dashboard)
    if not queries:
        return False, "no queries found"
    rules = [{"record": f"dashboard:query_{n}",
              "expr": re.sub(r"\$\{?\w+\}?", ".*", re.sub(r"\$__\w+", "5m", q))} for n, q in enumerate(queries)]
    promtool = shutil.which("promtool")
    if promtool is None:
        return False, "promtool not found (Debian package prometheus; make tools installs it)"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    try:
        result = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)
    return result.returncode == 0, f"{len(queries)} queries\n{result.stdout}{result.stderr}"


def broken_stats(docs, readme: dict):
    """(what, check result) of broken copies the stats checks must reject."""
    def edited(kind, change):
        broken = copy.deepcopy(docs)
        for _, _, doc in broken:
            if doc.get("kind") == kind:
                change(doc)
        return broken

    def class_regex_changed(doc):
        for key, text in (doc.get("data") or {}).items():
            doc["data"][key] = text.replace(r"invocations(\.([^.]+))$", r"invocations(\.([^.]+))")

    def replace_type(doc):
        doc["spec"]["bootstrap"]["type"] = "Replace"

    def no_override_env(doc):
        for c in doc["spec"]["template"]["spec"].get("containers", []):
            c["env"] = [e for e in c.get("env", []) if e.get("name") != ISTIO_OVERRIDE_ENV]

    def admin_everywhere(doc):
        for key, text in (doc.get("data") or {}).items():
            doc["data"][key] = text.replace("{address: 127.0.0.1, port_value: 9901}", "{address: 0.0.0.0, port_value: 9901}", 1)

    def prefix_route(doc):
        for key, text in (doc.get("data") or {}).items():
            doc["data"][key] = text.replace("path: /stats/prometheus\n", "prefix: /\n")

    def other_port(doc):
        annotations = ((doc["spec"]["template"].get("metadata") or {}).get("annotations")) or {}
        if "prometheus.io/port" in annotations:
            annotations["prometheus.io/port"] = "9901"

    stats = lambda broken: check_stats_config(broken, readme) + check_istio_stats_override(broken, readme)
    return [
        ("a ConfigMap bootstrap whose class regex is not README's", stats(edited("ConfigMap", class_regex_changed))),
        ("an EnvoyProxy bootstrap of type Replace", stats(edited("EnvoyProxy", replace_type))),
        ("the Istio gateway patch without ISTIO_BOOTSTRAP_OVERRIDE", stats(edited("Deployment", no_override_env))),
        ("the admin interface on 0.0.0.0", check_metrics_listeners(edited("ConfigMap", admin_everywhere))),
        ("the metrics listener routing the prefix /", check_metrics_listeners(edited("ConfigMap", prefix_route))),
        ("prometheus.io/port naming the admin port", check_metrics_listeners(edited("Deployment", other_port))),
    ]


# ------------------------------------------------------------------------------ access logs
# README, Access logs: the filter state the filter sets, and the operator that prints it.
FILTER_STATE_OPERATOR = "%FILTER_STATE(wasm.proxy_wasm_lambda:PLAIN)%"
FILTER_ROOT_ID = "proxy_wasm_lambda"
FILE_ACCESS_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
# Istio's built-in providers (pkg/config/mesh/mesh.go DefaultMeshConfig): a Telemetry may name them
# without the mesh config listing them.
ISTIO_BUILTIN_PROVIDERS = {"prometheus", "stackdriver", "envoy"}


def readme_access_log() -> tuple[list, str]:
    """README.md's (Access logs; or the docs/*.md it moved to) access_log block and its text
    format: the one source every shipped configuration copies. The format must print the filter
    state."""
    block = doc_block("access_log")["access_log"]
    try:
        (entry,) = block
        fmt = entry["typed_config"]["log_format"]["text_format_source"]["inline_string"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"README.md: the access_log block is not one logger with a text format: {e!r}")
    if FILTER_STATE_OPERATOR not in fmt:
        raise ValueError(f"README.md: the access-log format {fmt!r} lacks {FILTER_STATE_OPERATOR}")
    return block, fmt


def readme_mesh_config() -> dict:
    """The meshConfig snippet of deploy/README.md (Access logs): the mesh config istiod needs for
    deploy/istio/telemetry.yaml."""
    blocks = re.findall(r"```yaml\n(meshConfig:\n.*?)```", (ROOT / "deploy/README.md").read_text(), re.S)
    if len(blocks) != 1:
        raise ValueError(f"deploy/README.md: {len(blocks)} ```yaml blocks starting with meshConfig:, expected 1")
    return yaml.safe_load(blocks[0])["meshConfig"]


def carries_filter(obj) -> bool:
    """Whether an Envoy object (an HTTP connection manager) runs the filter, in its http_filters or
    in a router's upstream_http_filters."""
    for node in walk(obj):
        if node.get("@type") == WASM_TYPE:
            config = node.get("config") or {}
            local = (((config.get("vm_config") or {}).get("code") or {}).get("local") or {}).get("filename")
            if config.get("root_id") == FILTER_ROOT_ID or local in WASM_PATHS:
                return True
    return False


def connection_managers(bootstrap: dict):
    """(where, HCM config) of every HTTP connection manager of a bootstrap's static listeners."""
    for listener in ((bootstrap.get("static_resources") or {}).get("listeners") or []):
        for node in walk(listener):
            if node.get("@type") == HCM_TYPE:
                yield f"listener {listener.get('name')!r}", node


def check_access_logs(label: str, bootstrap: dict, block: list) -> tuple[list[str], int]:
    """(errors, how many HCMs run the filter): each HTTP connection manager of `bootstrap` that
    runs the filter has exactly README's access_log; one that does not logs no filter state."""
    errors, carrying = [], 0
    for where, hcm in connection_managers(bootstrap):
        if carries_filter(hcm):
            carrying += 1
            if hcm.get("access_log") != block:
                errors.append(f"{label}: {where}: access_log is {hcm.get('access_log')!r}, not README's block")
        elif FILTER_STATE_OPERATOR in json.dumps(hcm.get("access_log") or []):
            errors.append(f"{label}: {where}: does not run the filter but logs its filter state")
    return errors, carrying


def check_plain_access_logs(configs: dict[str, dict], block: list) -> list[str]:
    """check_access_logs on each of the plain-Envoy bootstraps {label: bootstrap}, each of which
    must run the filter somewhere."""
    errors = []
    for label, bootstrap in configs.items():
        found, carrying = check_access_logs(label, bootstrap, block)
        errors += found if carrying else [f"{label}: no HTTP connection manager runs the filter"]
    return errors


def check_deploy_access_logs(docs, block: list) -> tuple[list[str], int]:
    """check_access_logs on every bootstrap with listeners shipped in `docs` (a ConfigMap's envoy.yaml)."""
    errors, carrying = [], 0
    for label, bootstrap in shipped_bootstraps(docs):
        found, n = check_access_logs(label, bootstrap, block)
        errors, carrying = errors + found, carrying + n
    return errors, carrying


def file_access_log(path: str, text: str) -> dict:
    """The Envoy access log Envoy Gateway and istiod build for a Text format to a file
    (Envoy Gateway internal/xds/translator/accesslog.go buildXdsAccessLog; Istio
    pilot/pkg/model/telemetry_logging.go fileAccessLogFromTelemetry)."""
    return {"name": "envoy.access_loggers.file", "typed_config": {
        "@type": FILE_ACCESS_LOG_TYPE, "path": path, "log_format": {"text_format_source": {"inline_string": text}}}}


def access_log_bootstrap(access_log: list) -> str:
    """A minimal bootstrap whose HTTP connection manager has `access_log`."""
    return yaml.safe_dump({"static_resources": {
        "listeners": [{
            "name": "validate",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": HCM_TYPE, "stat_prefix": "validate", "access_log": access_log,
                "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
                    {"match": {"prefix": "/"}, "route": {"cluster": "lambda"}}]}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}],
        }],
        "clusters": [{"name": "lambda", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
            "cluster_name": "lambda", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": 5000}}}}]}]}}],
    }})


def eg_route_access_logs(proxy: dict) -> list[dict]:
    """The file access logs with a Text format that Envoy Gateway puts into the HTTP connection
    manager of the listeners of an EnvoyProxy's Gateways: telemetry.accessLog settings of type
    unset or Route, without CEL matches, a File sink (internal/gatewayapi/listener.go
    processAccessLog; the translator's accessLogTypeMatch). None when logging is disabled."""
    access_log = ((proxy.get("spec") or {}).get("telemetry") or {}).get("accessLog") or {}
    if access_log.get("disable"):
        return []
    out = []
    for s in access_log.get("settings", []):
        fmt = s.get("format") or {}
        if s.get("type") in (None, "Route") and not s.get("matches") and fmt.get("type") == "Text":
            out += [file_access_log((sink.get("file") or {}).get("path"), fmt.get("text"))
                    for sink in s.get("sinks", []) if sink.get("type") == "File"]
    return out


def filter_proxies(docs) -> list[dict]:
    """The EnvoyProxies whose proxies run the filter: those behind a Gateway an
    EnvoyExtensionPolicy applies to (eg_proxies)."""
    out = {}
    for _, _, doc in docs:
        if doc.get("kind") == "EnvoyExtensionPolicy":
            for _, proxy in eg_proxies(docs, doc):
                if proxy is not None:
                    out[identity(proxy)] = proxy
    return list(out.values())


def istio_file_access_log(provider: dict) -> dict | None:
    """The access log istiod builds for an envoyFileAccessLog provider with a text format (it
    appends a newline if missing: telemetry_logging.go fileAccessLogFormat), else None."""
    prov = provider.get("envoyFileAccessLog") or {}
    text = (prov.get("logFormat") or {}).get("text")
    if not text or prov.get("omitEmptyValues"):
        return None
    return file_access_log(prov.get("path") or "/dev/stdout", text if text.endswith("\n") else text + "\n")


def check_mesh_access_logs(docs, mesh: dict, fmt: str) -> list[str]:
    """The filter's fields reach the access logs of the meshes' proxies with README's format:
    - Envoy Gateway: every EnvoyProxy behind a Gateway the filter runs on logs, for every route,
      exactly the format as Text to /dev/stdout (eg_route_access_logs);
    - Istio: the mesh config snippet of deploy/README.md uses only fields of MeshConfig's
      ExtensionProvider; for the pods of every Istio gateway a plugin configuration runs on, one
      Telemetry in the gateway's namespace selects them, and one of its accessLogging entries
      (not disabled, no filter, for gateways: mode CLIENT or both) names a provider of that
      snippet (names compare case-insensitively, as istiod's fetchProvider) whose access log,
      as istiod builds it, has exactly the format and goes to /dev/stdout. Every provider a
      shipped Telemetry names is in the snippet or built in."""
    errors = []
    want = file_access_log("/dev/stdout", fmt)
    for proxy in filter_proxies(docs):
        where = f"EnvoyProxy {ns_of(proxy)}/{proxy['metadata']['name']}"
        if want not in eg_route_access_logs(proxy):
            errors.append(f"{where}: its telemetry.accessLog logs no route with README's format as Text to /dev/stdout "
                          f"(got {eg_route_access_logs(proxy)!r})")
    providers = {}
    for p in mesh.get("extensionProviders") or []:
        extra = set(p) - MESH_EXTENSION_PROVIDER
        log = p.get("envoyFileAccessLog") or {}
        extra |= set(log) - MESH_FILE_ACCESS_LOG
        extra |= set(log.get("logFormat") or {}) - MESH_LOG_FORMAT
        if extra:
            errors.append(f"deploy/README.md meshConfig: provider {p.get('name')!r}: unknown field(s) {sorted(extra)}")
        providers[str(p.get("name", "")).lower()] = p
    telemetries = [(path, i, d) for path, i, d in docs if d.get("kind") == "Telemetry"]
    for path, i, doc in telemetries:
        for a in (doc.get("spec") or {}).get("accessLogging", []):
            for ref in a.get("providers", []):
                name = str(ref.get("name", "")).lower()
                if name not in providers and name not in ISTIO_BUILTIN_PROVIDERS:
                    errors.append(f"{path.relative_to(ROOT)}[{i}] Telemetry/{doc['metadata']['name']}: provider "
                                  f"{ref.get('name')!r} is neither in deploy/README.md's meshConfig nor built in: "
                                  "istiod skips it")
    for labels in sorted({frozenset(labels.items()) for _, labels, _ in istio_plugin_configs(docs)}, key=sorted):
        target = ISTIO_GATEWAY_DEPLOYMENTS.get(labels)
        if target is None:
            errors.append(f"no known gateway Deployment for {dict(labels)}")
            continue
        ns = target[0]
        selecting = [d for _, _, d in telemetries if ns_of(d) == ns and istio_workload_labels(d)
                     and set(istio_workload_labels(d).items()) <= set(labels)]
        where = f"the Istio gateway pods {dict(labels)} in {ns}"
        if len(selecting) != 1:
            errors.append(f"{where}: {len(selecting)} Telemetry resources select them, expected 1 (Istio takes one)")
            continue
        good = False
        for a in (selecting[0].get("spec") or {}).get("accessLogging", []):
            if a.get("disabled") or a.get("filter") or (a.get("match") or {}).get("mode", "CLIENT_AND_SERVER") == "SERVER":
                continue
            for ref in a.get("providers", []):
                provider = providers.get(str(ref.get("name", "")).lower())
                if provider is not None and istio_file_access_log(provider) == want:
                    good = True
        if not good:
            errors.append(f"{where}: Telemetry/{selecting[0]['metadata']['name']} names no provider of deploy/README.md's "
                          "meshConfig that logs README's format to /dev/stdout")
    return errors


def broken_access_logs(configs: dict[str, str], docs, block: list, fmt: str, mesh: dict):
    """(what, rejected) of broken copies the access-log checks must reject."""
    def without_operator(text: str) -> str:
        return text.replace(" " + FILTER_STATE_OPERATOR, "")

    def edited(kind, change, source=None):
        broken = copy.deepcopy(source if source is not None else docs)
        for _, _, doc in broken:
            if doc.get("kind") == kind:
                change(doc)
        return broken

    def configmap_without_operator(doc):
        for key, text in (doc.get("data") or {}).items():
            doc["data"][key] = without_operator(text)

    def metrics_logs_too(doc):
        for key, text in (doc.get("data") or {}).items():
            if "static_resources" not in text:
                continue
            bootstrap = yaml.safe_load(text)
            for _, hcm in connection_managers(bootstrap):
                hcm["access_log"] = copy.deepcopy(block)
            doc["data"][key] = yaml.safe_dump(bootstrap)

    def settings(doc):
        return doc["spec"]["telemetry"]["accessLog"]["settings"]

    def eg_without_operator(doc):
        for s in settings(doc):
            s["format"]["text"] = without_operator(s["format"]["text"])

    def eg_upstream_only(doc):
        for s in settings(doc):
            s["type"] = "Upstream"

    def eg_no_telemetry(doc):
        doc["spec"].pop("telemetry", None)

    def telemetry_other_provider(doc):
        for a in doc["spec"]["accessLogging"]:
            a["providers"] = [{"name": "envoy"}]

    def telemetry_other_pods(doc):
        doc["spec"]["selector"]["matchLabels"] = {"app": "something-else"}

    mesh_broken = copy.deepcopy(mesh)
    for p in mesh_broken.get("extensionProviders") or []:
        if (p.get("envoyFileAccessLog") or {}).get("logFormat", {}).get("text"):
            p["envoyFileAccessLog"]["logFormat"]["text"] = without_operator(p["envoyFileAccessLog"]["logFormat"]["text"])

    plain_accepted = [label for label, text in configs.items()
                      if not check_plain_access_logs({label: yaml.safe_load(without_operator(text))}, block)]
    first = next(iter(configs))
    no_log = yaml.safe_load(configs[first])
    for _, hcm in connection_managers(no_log):
        hcm.pop("access_log", None)
    mesh_check = lambda broken: check_mesh_access_logs(broken, mesh, fmt)
    return [
        (f"each of the {len(configs)} envoy/, examples/ bootstraps with README's format minus the FILTER_STATE"
         + (f" (accepted: {', '.join(plain_accepted)})" if plain_accepted else ""), not plain_accepted),
        (f"{first} without its access_log", bool(check_plain_access_logs({first: no_log}, block))),
        ("a deploy/ ConfigMap bootstrap with README's format minus the FILTER_STATE",
         bool(check_deploy_access_logs(edited("ConfigMap", configmap_without_operator), block)[0])),
        ("a deploy/ ConfigMap bootstrap logging the filter state on its metrics listener too",
         bool(check_deploy_access_logs(edited("ConfigMap", metrics_logs_too), block)[0])),
        ("an EnvoyProxy with README's format minus the FILTER_STATE", bool(mesh_check(edited("EnvoyProxy", eg_without_operator)))),
        ("an EnvoyProxy logging it for upstream requests only", bool(mesh_check(edited("EnvoyProxy", eg_upstream_only)))),
        ("an EnvoyProxy without telemetry (Envoy Gateway's default log)", bool(mesh_check(edited("EnvoyProxy", eg_no_telemetry)))),
        ("deploy/README.md's meshConfig provider with README's format minus the FILTER_STATE",
         bool(check_mesh_access_logs(docs, mesh_broken, fmt))),
        ("the Istio Telemetry naming the built-in provider envoy instead",
         bool(mesh_check(edited("Telemetry", telemetry_other_provider)))),
        ("the Istio Telemetry selecting other pods", bool(mesh_check(edited("Telemetry", telemetry_other_pods)))),
    ]


# ------------------------------------------------------------------ examples/*/kustomization.yaml
def walk(obj):
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)


def files_needed(bootstrap: dict) -> set[str]:
    """The files a bootstrap reads from the pod: file-SDS sources and local Wasm code."""
    out = set()
    for node in walk(bootstrap):
        if isinstance(node.get("path_config_source"), dict):
            out.add(node["path_config_source"]["path"])
        if isinstance(node.get("local"), dict) and "filename" in node["local"]:
            out.add(node["local"]["filename"])
    return out


def check_kustomizations(roots=None) -> list[str]:
    """Each examples/*/kustomization.yaml: the files it names exist; every ConfigMap volume of
    its Deployments is generated by it or created by its README (`kubectl create configmap
    NAME --from-file=KEY=…`); every file that the example's bootstraps (envoy*.yaml) and the
    container's `-c` read from a mounted directory is a key of the ConfigMap mounted there."""
    errors = []
    for kust in roots if roots is not None else sorted(ROOT.glob("examples/*/kustomization.yaml")):
        base = kust.parent
        where = str(kust.relative_to(ROOT)) if kust.is_relative_to(ROOT) else str(kust)
        spec = yaml.safe_load(kust.read_text())
        keys: dict[str, set[str]] = {}
        for gen in spec.get("configMapGenerator", []):
            names = set()
            for entry in gen.get("files", []):
                key, _, file = entry.rpartition("=")
                if not (base / file).is_file():
                    errors.append(f"{where}: configMapGenerator {gen['name']}: no file {file}")
                names.add(key or Path(file).name)
            keys[gen["name"]] = names
        # ConfigMaps created by hand: `kubectl create configmap NAME [\] --from-file=[KEY=]FILE`.
        text = "".join((base / f).read_text() for f in ["README.md", *spec.get("resources", [])] if (base / f).is_file())
        for name, key in re.findall(r"create configmap ([\w.-]+)[\s\\#]*--from-file=(?:([\w.-]+)=)?", text):
            keys.setdefault(name, set()).add(key)
        bootstraps = {p.name: yaml.safe_load(p.read_text()) for p in sorted(base.glob("envoy*.yaml"))}
        for resource in spec.get("resources", []):
            if not (base / resource).is_file():
                errors.append(f"{where}: no resource file {resource}")
                continue
            for doc in yaml.safe_load_all((base / resource).read_text()):
                if not doc or doc.get("kind") != "Deployment":
                    continue
                pod = doc["spec"]["template"]["spec"]
                volumes = {v["name"]: (v.get("configMap") or {}).get("name") for v in pod.get("volumes", [])}
                for cm in volumes.values():
                    if cm is not None and cm not in keys:
                        errors.append(f"{where}: {resource}: ConfigMap {cm} is neither generated nor created in README.md")
                for container in pod["containers"]:
                    mounts = {m["mountPath"].rstrip("/"): volumes.get(m["name"]) for m in container.get("volumeMounts", [])}
                    args = container.get("args", [])
                    needed = {("container -c", args[args.index("-c") + 1])} if "-c" in args else set()
                    needed |= {(name, f) for name, b in bootstraps.items() for f in files_needed(b)}
                    for who, path in sorted(needed):
                        directory, _, file = path.rpartition("/")
                        if directory not in mounts:
                            errors.append(f"{where}: {who} reads {path}, which no volume of {resource} mounts")
                        elif file not in keys.get(mounts[directory], set()):
                            errors.append(f"{where}: {who} reads {path}, but ConfigMap {mounts[directory]} "
                                          f"mounted at {directory} has only {sorted(keys.get(mounts[directory], set()))}")
    return errors


def main() -> int:
    configs = sorted(ROOT.glob("envoy/*.yaml")) + sorted(ROOT.glob("examples/*/envoy*.yaml"))
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
    errors = check_kustomizations()
    report(not errors, "examples/*/kustomization.yaml: files, ConfigMaps and mounts agree", "\n".join(errors))
    for kust in sorted(ROOT.glob("examples/*/kustomization.yaml")):
        # ...and that check fails when a ConfigMap lacks a file a bootstrap reads.
        with tempfile.TemporaryDirectory() as tmp:
            copy_dir = Path(tmp) / kust.parent.name
            shutil.copytree(kust.parent, copy_dir)
            spec = yaml.safe_load(kust.read_text())
            for gen in spec.get("configMapGenerator", []):
                gen["files"] = gen["files"][:-1]
            (copy_dir / "kustomization.yaml").write_text(yaml.safe_dump(spec))
            broken = check_kustomizations([copy_dir / "kustomization.yaml"])
        report(bool(broken), f"rejected: {kust.relative_to(ROOT)} without the last file of each ConfigMap", "accepted")
    # The examples' file-based SDS is really validated: without a node id it is rejected.
    for config in sorted(ROOT.glob("examples/*/envoy*.yaml")):
        if "path_config_source" in config.read_text():
            text = config.read_text().replace("\nnode: {id: lambda-gateway, cluster: lambda-gateway}\n", "\n")
            ok, output = validate_text(text)
            report(not ok and "node 'id' and 'cluster' are required" in output,
                   f"rejected: {config.relative_to(ROOT)} without node (file SDS needs one)", output)

    try:
        docs = manifests()
    except yaml.YAMLError as e:
        report(False, "deploy/ manifests parse as YAML", str(e))
        docs = []
    else:
        report(bool(docs), f"deploy/ manifests parse as YAML ({len(docs)} documents)", "no manifests found")
    errors = check_fields(docs)
    report(not errors, "deploy/ manifests use their APIs' field names", "\n".join(errors))
    errors = check_references(docs)
    report(not errors, "deploy/ manifests name only shipped resources; the clusters plugin configurations name "
           "reach their proxies", "\n".join(errors))
    errors = check_proxy_pods(docs)
    report(not errors, "deploy/ proxies: file-SDS mounts, environment", "\n".join(errors))
    for label, ok, output in check_patch_policies(docs):
        report(ok, label, output)
    # The deploy/ checks must be able to fail.
    for what, broken, check in broken_manifests(docs):
        report(bool(check(broken)), f"rejected: {what}", "accepted")
    # stats_config (README's block, everywhere), the metrics listener, the dashboard's PromQL.
    readme = readme_stats_config()
    errors = [f"{c.relative_to(ROOT)}: stats_config is not README's" for c in configs
              if (yaml.safe_load(c.read_text()) or {}).get("stats_config") != readme]
    report(not errors, f"envoy/, examples/: README's stats_config in each of the {len(configs)} bootstraps",
           "\n".join(errors))
    errors = check_stats_config(docs, readme) + check_istio_stats_override(docs, readme)
    report(not errors, f"deploy/: README's stats_config in each of the {len(shipped_bootstraps(docs))} bootstraps "
           "and parts, the Istio gateway pointed at its override", "\n".join(errors))
    scraped = [d for _, _, d in docs if d.get("kind") == "Deployment" and "prometheus.io/scrape" in
               (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations", {})]
    errors = check_metrics_listeners(docs)
    report(bool(scraped) and not errors, f"deploy/: the {len(scraped)} scraped Deployment(s) expose only GET "
           "/stats/prometheus of an admin interface on loopback", "\n".join(errors) or "none scraped")
    for what, errors in broken_stats(docs, readme):
        report(bool(errors), f"rejected: {what}", "accepted")
    ok, output = check_dashboard_promql(json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text()))
    report(ok, "deploy/observability/grafana-dashboard.json: every query parses as PromQL (promtool)", output)
    # Access logs (README's access_log block, wherever the filter runs).
    block, fmt = readme_access_log()
    mesh = readme_mesh_config()
    plain = {str(c.relative_to(ROOT)): c.read_text() for c in configs}
    errors = check_plain_access_logs({label: yaml.safe_load(text) for label, text in plain.items()}, block)
    report(not errors, f"envoy/, examples/: README's access_log on the HTTP connection managers running the filter "
           f"(and the filter state nowhere else) in each of the {len(configs)} bootstraps", "\n".join(errors))
    errors, carrying = check_deploy_access_logs(docs, block)
    report(not errors and carrying > 0, f"deploy/: README's access_log on the {carrying} HTTP connection manager(s) "
           "running the filter in the ConfigMap bootstraps (and the filter state nowhere else)",
           "\n".join(errors) or "no HTTP connection manager runs the filter")
    proxies, gateways = filter_proxies(docs), {frozenset(labels.items()) for _, labels, _ in istio_plugin_configs(docs)}
    errors = check_mesh_access_logs(docs, mesh, fmt)
    report(not errors and proxies and gateways, f"deploy/: README's access-log format on the {len(proxies)} EnvoyProxy(ies) "
           f"and the {len(gateways)} Istio gateway(s) the filter runs on (telemetry.yaml + deploy/README.md's meshConfig)",
           "\n".join(errors) or "no EnvoyProxy or Istio gateway runs the filter")
    for provider in mesh.get("extensionProviders") or []:
        if istio_file_access_log(provider) is not None:
            ok, output = validate_text(access_log_bootstrap([istio_file_access_log(provider)]))
            report(ok, f"deploy/README.md meshConfig provider {provider.get('name')}: the access log istiod builds", output)
    for what, rejected in broken_access_logs(plain, docs, block, fmt, mesh):
        report(rejected, f"rejected: {what}", "accepted")
    tmp_dir = tempfile.TemporaryDirectory(prefix="validate-deploy-")
    tmp = Path(tmp_dir.name)
    for label, text in deploy_envoy_configs(docs, tmp):
        ok, output = validate_text(text)
        report(ok, label, output)

    # deploy/*/eks: each EKS variant, checked as the base is, plus drift from the base.
    covered = {f for variant in EKS_VARIANTS.values() for f in variant["files"]}
    stray = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "deploy").rglob("*.yaml"))
             if is_variant_file(p) and str(p.relative_to(ROOT)) not in covered]
    report(not stray, "every deploy/*/eks/ file is part of an EKS variant (EKS_VARIANTS)", "not in any: " + " ".join(stray))
    for name, variant in EKS_VARIANTS.items():
        try:
            vdocs, own = variant_manifests(docs, variant)
        except (OSError, yaml.YAMLError) as e:
            report(False, f"{name}: manifests parse as YAML", str(e))
            continue
        report(bool(own), f"{name}: {' + '.join(Path(f).name for f in variant['files'])} over {variant['base']}/ "
               f"({len(own)} documents)", "no documents")
        checks = [
            ("its manifests use their APIs' field names", check_fields(own)),
            ("names only shipped resources; the clusters its plugin configuration names reach the proxies",
             check_references(vdocs)),
            ("proxies: file-SDS paths are files of the mounted ConfigMap (= examples/eks/sds), environment",
             check_proxy_pods(vdocs)),
            ("differs from the base manifests only in credentials, clusters, mounts and identity",
             check_variant_drift(docs, vdocs)),
            ("README's stats_config in its bootstraps (Istio: the gateway still pointed at its override)",
             check_stats_config(own, readme) + check_istio_stats_override(vdocs, readme)),
            ("README's access-log format on its proxies (EnvoyProxy telemetry; Istio: telemetry.yaml + meshConfig)",
             check_mesh_access_logs(vdocs, mesh, fmt)),
        ]
        for label, errors in checks:
            report(not errors, f"{name}: {label}", "\n".join(errors))
        for label, ok, output in check_patch_policies(vdocs):
            report(ok, f"{name}: {label}", output)
        for what, broken, check in broken_variant_manifests(docs, vdocs, own, variant["base"].split("/")[1]):
            report(broken is not None and bool(check(broken)), f"{name}: rejected: {what}",
                   "the broken copy changed nothing" if broken is None else "accepted")
        for label, text in deploy_envoy_configs(own, tmp, vdocs):
            ok, output = validate_text(text)
            report(ok, f"{name}: {label}", output)
        # The SDS files are really loaded: without them (the paths as shipped) Envoy refuses.
        for label, text in deploy_envoy_configs(own, None, vdocs):
            if "path_config_source" in text:
                ok, output = validate_text(text)
                report(not ok and "must refer to an existing path" in output,
                       f"{name}: rejected: {label} without its SDS file", output)
    tmp_dir.cleanup()

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
