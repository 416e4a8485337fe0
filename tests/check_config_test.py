"""`make check-config` (tools/check-config, docs/check-config.md): the filter's own configuration
code, built natively, checks plugin configurations and route metadata in Envoy bootstraps and
Kubernetes manifests.

- every shipped configuration passes (envoy/, examples/*/envoy*.yaml, deploy/), and those that
  carry the filter are found and checked;
- broken copies of shipped configurations are caught, with exit status 1 and the filter's own
  message naming the file, where the filter or route is, and the field or key: a route-metadata
  typo and a bad plugin configuration in an Envoy bootstrap, in an Istio EnvoyFilter, in a
  WasmPlugin, an EnvoyExtensionPolicy and a ConfigMap's envoy.yaml;
- the message for a bad plugin configuration is the one the filter logs in Envoy (`envoy --mode
  validate` with the built .wasm), when Envoy and the .wasm are there;
- unreadable input exits 2; --host-env reads host_env_keys from the environment.

Run: .venv/bin/python -m pytest -q tests/check_config_test.py   (part of `make validate-configs`;
builds the tool when CHECK_CONFIG does not name a binary)
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOL_DIR = ROOT / "tools" / "check-config"
TOOL = Path(os.environ.get("CHECK_CONFIG", TOOL_DIR / "target" / "release" / "check-config"))
WASM = Path(os.environ.get("LAMBDA_WASM", ROOT / "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm"))
ENVOY = os.environ.get("ENVOY_BIN") or str(Path(sys.executable).parent / "envoy")

SHIPPED = sorted(
    [*ROOT.glob("envoy/*.yaml"), *ROOT.glob("examples/*/envoy*.yaml"), *ROOT.glob("deploy/**/*.yaml")]
)
# Shipped files that carry the filter: each must be found and checked, not just "pass".
WITH_FILTER = [
    *sorted(ROOT.glob("envoy/*.yaml")),
    *sorted(ROOT.glob("examples/*/envoy*.yaml")),
    ROOT / "deploy/istio/envoyfilter.yaml",
    ROOT / "deploy/istio/wasmplugin.yaml",
    ROOT / "deploy/istio/eks/irsa.yaml",
    ROOT / "deploy/istio/eks/pod-identity.yaml",
    ROOT / "deploy/envoy-gateway/envoyextensionpolicy.yaml",
    ROOT / "deploy/envoy-gateway/eks/irsa.yaml",
    ROOT / "deploy/envoy-gateway/eks/pod-identity.yaml",
    ROOT / "deploy/kubernetes/lambda-gateway.yaml",
]

TYPO = "route override field 'fucntion': is not a key of route metadata proxy_wasm_lambda; did you mean 'function'?"


@pytest.fixture(scope="module", autouse=True)
def tool():
    if "CHECK_CONFIG" not in os.environ:
        subprocess.run(
            ["cargo", "build", "--release", "--quiet", "--manifest-path", str(TOOL_DIR / "Cargo.toml")],
            check=True, timeout=900,
        )
    assert TOOL.exists(), TOOL


def run(*args, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=120,
        env=env if env is not None else os.environ,
    )
    print(result.stdout, result.stderr)
    return result


def lines(result: subprocess.CompletedProcess) -> list[str]:
    return result.stdout.splitlines()


# A file's last line: "FILE: ok, …", "FILE: no proxy_wasm_lambda …" or "FILE: 2 errors (…)".
SUMMARY = re.compile(r"^[^:]*: (ok, |no proxy_wasm_lambda |\d+ errors? \()")


def errors(result: subprocess.CompletedProcess) -> list[str]:
    """The lines that are not notes, warnings or a file's summary."""
    return [
        line for line in lines(result)
        if ": note: " not in line and ": warning: " not in line and not SUMMARY.match(line)
    ]


def write(path: Path, docs) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False) if isinstance(docs, list) else yaml.safe_dump(docs, sort_keys=False))
    return path


def hcm(bootstrap: dict) -> dict:
    """The HTTP connection manager of the listener 'api'."""
    (listener,) = [l for l in bootstrap["static_resources"]["listeners"] if l["name"] == "api"]
    for f in listener["filter_chains"][0]["filters"]:
        if f["typed_config"]["@type"].endswith("HttpConnectionManager"):
            return f["typed_config"]
    raise AssertionError("no HCM")


def wasm_configs(node):
    """Every Wasm PluginConfig under node."""
    if isinstance(node, dict):
        if str(node.get("@type", "")).endswith("filters.http.wasm.v3.Wasm"):
            yield node["config"]
        for value in node.values():
            yield from wasm_configs(value)
    elif isinstance(node, list):
        for value in node:
            yield from wasm_configs(value)


def set_plugin_json(plugin: dict, **changes) -> None:
    value = json.loads(plugin["configuration"]["value"])
    value.update(changes)
    plugin["configuration"]["value"] = json.dumps(value, indent=2)


def typo_route(name: str = "orders") -> dict:
    return {
        "name": name,
        "match": {"prefix": f"/{name}"},
        "route": {"cluster": "lambda"},
        "metadata": {"filter_metadata": {"proxy_wasm_lambda": {"fucntion": f"{name}-fn"}}},
    }


# ------------------------------------------------------------------------- shipped configs
def test_every_shipped_config_passes():
    result = run(*SHIPPED)
    assert result.returncode == 0, result.stdout
    summaries = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines(result)
                 if line.split(": ", 1)[1].startswith(("ok, ", "no proxy_wasm_lambda"))}
    assert set(summaries) == {str(p) for p in SHIPPED}
    for path in WITH_FILTER:
        assert summaries[str(path)].startswith("ok, 1 plugin configuration"), (path, summaries[str(path)])
    assert not [line for line in lines(result) if "invalid configuration" in line or "route override" in line]


def test_placeholders_are_named():
    result = run(ROOT / "envoy/local.yaml")
    assert result.returncode == 0
    assert (f"{ROOT / 'envoy/local.yaml'}: listener 'api', http_filters[0], upstream_http_filters[0], "
            "plugin 'proxy_wasm_lambda': note: host_env_keys taken as set, to placeholder values: "
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, LAMBDA_EXTERNAL_ID") in lines(result)


# ------------------------------------------------------------------------- Envoy bootstraps
def test_route_metadata_typo_in_an_envoy_bootstrap(tmp_path):
    bootstrap = yaml.safe_load((ROOT / "envoy/local.yaml").read_text())
    host = hcm(bootstrap)["route_config"]["virtual_hosts"][0]
    host["routes"].insert(0, typo_route())
    path = write(tmp_path / "envoy.yaml", bootstrap)
    result = run(path)
    assert result.returncode == 1
    assert errors(result) == [
        f"{path}: listener 'api', virtual host '{host['name']}', route 'orders': {TYPO} (route 'orders')"
    ]
    routes = len(host["routes"])
    assert lines(result)[-1] == f"{path}: 1 error (1 plugin configuration and {routes} routes checked)"


def test_unnamed_route_is_named_by_its_match(tmp_path):
    bootstrap = yaml.safe_load((ROOT / "examples/echo/envoy.yaml").read_text())
    route = hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"][0]
    route["metadata"] = {"filter_metadata": {"proxy_wasm_lambda": {"fucntion": "f"}}}
    path = write(tmp_path / "envoy.yaml", bootstrap)
    result = run(path)
    assert result.returncode == 1
    assert errors(result) == [f"{path}: listener 'api', virtual host 'api', routes[0] (prefix '/'): {TYPO}"]


def test_bad_plugin_configuration_in_an_envoy_bootstrap(tmp_path):
    bootstrap = yaml.safe_load((ROOT / "examples/echo/envoy.yaml").read_text())
    (plugin,) = wasm_configs(bootstrap)
    set_plugin_json(plugin, region="us-east")
    path = write(tmp_path / "envoy.yaml", bootstrap)
    result = run(path)
    assert result.returncode == 1
    (error,) = errors(result)
    assert error.startswith(f"{path}: listener 'api', http_filters[0], plugin 'proxy_wasm_lambda': "
                            "invalid configuration: field 'region': 'us-east' "), error


@pytest.mark.skipif(not (WASM.exists() and Path(ENVOY).exists()), reason="needs make wasm and the venv's Envoy")
def test_the_message_is_the_one_the_filter_logs_in_envoy(tmp_path):
    """The same broken configuration through `envoy --mode validate` with the built filter: the
    filter's log line carries the message check-config printed."""
    bootstrap = yaml.safe_load((ROOT / "examples/echo/envoy.yaml").read_text())
    (plugin,) = wasm_configs(bootstrap)
    set_plugin_json(plugin, region="us-east")
    plugin["vm_config"]["code"]["local"]["filename"] = str(WASM)
    path = write(tmp_path / "envoy.yaml", bootstrap)
    (error,) = errors(run(path))
    message = error.split(": ", 2)[2]
    assert message.startswith("invalid configuration: ")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDVALIDATEONLY0001", AWS_SECRET_ACCESS_KEY="validate-only")
    envoy = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "warn"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert envoy.returncode != 0
    assert message in envoy.stdout + envoy.stderr, envoy.stderr[-3000:]


def test_configuration_that_is_not_a_string_value(tmp_path):
    bootstrap = yaml.safe_load((ROOT / "examples/echo/envoy.yaml").read_text())
    (plugin,) = wasm_configs(bootstrap)
    plugin["configuration"] = {"@type": "type.googleapis.com/google.protobuf.Struct",
                               "value": json.loads(plugin["configuration"]["value"])}
    path = write(tmp_path / "envoy.yaml", bootstrap)
    result = run(path)
    assert result.returncode == 1
    (error,) = errors(result)
    assert "invalid configuration: field 'configuration': is a google.protobuf.Struct" in error


def test_routes_are_resolved_as_on_a_request(tmp_path):
    """A plugin configuration with credential_profiles only: a route that names none, or one it
    does not have, is refused, as the filter refuses the route's requests; every route of the
    listener is checked, with metadata or without."""
    bootstrap = yaml.safe_load((ROOT / "examples/echo/envoy.yaml").read_text())
    (plugin,) = wasm_configs(bootstrap)
    value = json.loads(plugin["configuration"]["value"])
    value["credential_profiles"] = {"tenant-a": {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "x"}}
    plugin["configuration"]["value"] = json.dumps(value)
    del plugin["vm_config"]["environment_variables"]
    routes = hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"]
    routes[0]["name"] = "anonymous"
    for name in ("tenant-a", "tenant-b"):
        routes.insert(0, {"name": name, "match": {"prefix": f"/{name}"}, "route": {"cluster": "lambda"},
                          "metadata": {"filter_metadata": {"proxy_wasm_lambda": {"credentials": name}}}})
    path = write(tmp_path / "envoy.yaml", bootstrap)
    result = run(path)
    assert result.returncode == 1
    tenant_b, anonymous = errors(result)
    where = f"{path}: listener 'api', virtual host 'api'"
    assert tenant_b.startswith(f"{where}, route 'tenant-b': route override field 'credentials': names the "
                               "credentials profile 'tenant-b', which the plugin configuration does not have"), tenant_b
    assert anonymous.startswith(f"{where}, route 'anonymous': route override field 'credentials': "
                                "is required on this route"), anonymous
    assert anonymous.endswith("(route 'anonymous')")
    assert lines(result)[-1] == f"{path}: 2 errors (1 plugin configuration and 3 routes checked)"


def test_host_env_reads_the_environment(tmp_path):
    path = ROOT / "examples/echo/envoy.yaml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = run("--host-env", path, env=env)
    assert result.returncode == 1
    (error,) = errors(result)
    assert "invalid configuration: field 'credentials': no credentials" in error
    assert ": note: " not in result.stdout
    env.update(AWS_ACCESS_KEY_ID="AKIDCHECKCONFIG0001", AWS_SECRET_ACCESS_KEY="x")
    assert run("--host-env", path, env=env).returncode == 0


# ------------------------------------------------------------------------- Kubernetes manifests
def test_istio_envoyfilter(tmp_path):
    docs = list(yaml.safe_load_all((ROOT / "deploy/istio/envoyfilter.yaml").read_text()))
    (envoy_filter,) = [d for d in docs if d["kind"] == "EnvoyFilter"]
    (plugin,) = wasm_configs(envoy_filter)
    set_plugin_json(plugin, function="api", region="us-east")
    envoy_filter["spec"]["configPatches"].append({
        "applyTo": "HTTP_ROUTE",
        "match": {"context": "GATEWAY", "routeConfiguration": {"vhost": {"route": {"name": "orders"}}}},
        "patch": {"operation": "MERGE", "value": {"metadata": {"filter_metadata": {
            "proxy_wasm_lambda": {"fucntion": "orders-fn"}}}}},
    })
    path = write(tmp_path / "envoyfilter.yaml", docs)
    result = run(path)
    assert result.returncode == 1
    plugin_error, route_error = errors(result)
    where = f"{path}: EnvoyFilter istio-system/proxy-wasm-lambda"
    assert plugin_error.startswith(f"{where}, configPatches[0] (EXTENSION_CONFIG), plugin 'proxy_wasm_lambda': "
                                   "invalid configuration: field 'region': 'us-east' "), plugin_error
    n = len(envoy_filter["spec"]["configPatches"]) - 1
    # The plugin configuration does not load: the route's keys are still checked.
    assert route_error == f"{where}, configPatches[{n}] (HTTP_ROUTE), route 'orders': {TYPO} (route 'orders')"


def test_istio_envoyfilter_route_typo_alone(tmp_path):
    docs = list(yaml.safe_load_all((ROOT / "deploy/istio/envoyfilter.yaml").read_text()))
    docs[0]["spec"]["configPatches"].append({
        "applyTo": "HTTP_ROUTE",
        "patch": {"operation": "ADD", "value": typo_route("refunds")},
    })
    path = write(tmp_path / "envoyfilter.yaml", docs)
    result = run(path)
    assert result.returncode == 1
    (error,) = errors(result)
    assert error.endswith(f", route 'refunds': {TYPO} (route 'refunds')"), error


def test_istio_wasmplugin_and_envoy_gateway_policy(tmp_path):
    docs = list(yaml.safe_load_all((ROOT / "deploy/istio/wasmplugin.yaml").read_text()))
    docs[0]["spec"]["pluginConfig"]["timeout_ms"] = "soon"
    wasm_plugin = write(tmp_path / "wasmplugin.yaml", docs)
    docs = list(yaml.safe_load_all((ROOT / "deploy/envoy-gateway/envoyextensionpolicy.yaml").read_text()))
    docs[0]["spec"]["wasm"][0]["config"]["credentials"]["assume_role"]["role_arn"] = "lambda-invoker"
    policy = write(tmp_path / "policy.yaml", docs)
    result = run(wasm_plugin, policy)
    assert result.returncode == 1
    first, second = errors(result)
    assert first.startswith(f"{wasm_plugin}: WasmPlugin istio-system/proxy-wasm-lambda, spec.pluginConfig: "
                            "invalid configuration: field 'timeout_ms': "), first
    assert second.startswith(f"{policy}: EnvoyExtensionPolicy default/proxy-wasm-lambda, "
                             "spec.wasm[0] 'proxy-wasm-lambda': invalid configuration: "
                             "field 'credentials.assume_role.role_arn': "), second


def test_bootstrap_in_a_configmap(tmp_path):
    docs = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/lambda-gateway.yaml").read_text()))
    (config_map,) = [d for d in docs if d and d["kind"] == "ConfigMap" and "envoy.yaml" in d.get("data", {})]
    bootstrap = yaml.safe_load(config_map["data"]["envoy.yaml"])
    hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"].insert(0, typo_route())
    config_map["data"]["envoy.yaml"] = yaml.safe_dump(bootstrap, sort_keys=False)
    path = write(tmp_path / "lambda-gateway.yaml", docs)
    result = run(path)
    assert result.returncode == 1
    (error,) = errors(result)
    number = docs.index(config_map) + 1
    name = config_map["metadata"]["name"]
    assert error.startswith(f"{path}: document {number} (ConfigMap {name}), data['envoy.yaml'], listener 'api', "), error
    assert error.endswith(f"route 'orders': {TYPO} (route 'orders')"), error


# ------------------------------------------------------------------------- unreadable input
def test_unreadable_input_exits_2(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("static_resources: [1, 2\n")
    bootstrap = yaml.safe_load((ROOT / "examples/echo/envoy.yaml").read_text())
    hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"].insert(0, typo_route())
    bad = write(tmp_path / "bad.yaml", bootstrap)
    for args in ([tmp_path / "missing.yaml"], [broken], [bad, broken]):
        result = run(*args)
        assert result.returncode == 2, args
    assert f"{broken}: cannot read: not YAML: " in result.stdout
    embedded = write(tmp_path / "configmap.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                                    "data": {"envoy.yaml": "static_resources: {"}})
    result = run(embedded)
    assert result.returncode == 2
    assert f"{embedded}: ConfigMap c, data['envoy.yaml']: cannot read: " in result.stdout
    assert run().returncode == 2
