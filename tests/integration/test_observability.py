"""The metrics of deploy/observability exist in a real Envoy, with the labels their queries use.

The metric names, label matchers and `by (...)` labels are parsed out of the shipped Grafana
dashboard's queries (and its `label_values` variables) and the Prometheus rules' expressions;
nothing here lists them again. Envoy runs the filter with the shipped stats_config
(envoy/local.yaml) and traffic that makes every family appear: AssumeRole credentials through
moto (a profile whose ExternalId is wrong fails to refresh), successes of two functions, a
throttle, a function error, a Lambda 5xx, a payload too large and a 503 for lack of credentials.
Then every referenced name must be in /stats/prometheus, every label it is matched or grouped on
must be on its samples, and every literal label value a query names (class="throttled",
class!~"success|throttled|rejected") must be one Envoy printed.

Also: the metrics listener of deploy/kubernetes/lambda-gateway.yaml, run as shipped, serves
/stats/prometheus (with the labels) and nothing else of the admin interface; and the block,
merged over Istio's and Envoy Gateway's own stats_config as each mesh merges it, still labels.
"""
from __future__ import annotations

import http.client
import json
import re
import time
from pathlib import Path

import pytest
import requests
import yaml

import envoy_harness as eh
import log_audit
from lambda_standin import Answer
from test_assume_role import plugin_config as assume_role_config
from test_end_to_end import FUNCTION_ERROR, show
from test_stats import shipped_stats_config

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/observability/grafana-dashboard.json"
RULES = ROOT / "deploy/observability/prometheus-rules.yaml"
HTTP_TIMEOUT = 15
PREFIX = "proxy_wasm_lambda_"
# PromQL words that are not metric names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
LITERAL_VALUES = re.compile(r"[\w:.-]+(\|[\w:.-]+)*")


# --------------------------------------------------------------------------- the queries
def queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard panel target and alerting rule."""
    out = []
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        out += [(f"dashboard panel {panel['title']!r}", t["expr"]) for t in panel.get("targets", [])]
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        out += [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for r in group["rules"]]
    return out


def variables() -> list[tuple[str, str, str]]:
    """(where, metric, label) of the dashboard's label_values(metric, label) variables."""
    out = []
    for var in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        for metric, label in re.findall(r"label_values\(\s*(\w+)\s*,\s*(\w+)\s*\)", text):
            out.append((f"dashboard variable {var['name']}", metric, label))
    return out


def parse(expr: str) -> tuple[list[tuple[str, list[tuple[str, str, str]]]], set[str]]:
    """([(metric, [(label, op, value)])], grouping labels) of a PromQL expression written as the
    shipped ones are: selectors `name{label op "value", ...}`, aggregations `by (labels)`."""
    assert not re.search(r"\b(without|on|ignoring|group_left|group_right)\s*\(", expr), \
        f"only `by (...)` grouping is checked here: {expr}"
    grouping = {label.strip() for g in re.findall(r"\bby\s*\(([^)]*)\)", expr) for label in g.split(",") if label.strip()}
    selectors = []
    for m in re.finditer(r"\b([A-Za-z_:][\w:]*)\s*(\{([^}]*)\})", expr):
        selectors.append((m.group(1), re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', m.group(3))))
    # Every name left once strings, selectors' braces, ranges, groupings and calls are gone.
    rest = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\bby\s*\([^)]*\)', " ", expr)
    names = {n for n in re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(?!\s*\()", rest) if n not in KEYWORDS}
    selectors += [(n, []) for n in sorted(names) if n not in {s for s, _ in selectors}]
    return selectors, grouping


def test_the_queries_parse_into_metric_names():
    """The parser finds the shipped names (guards the main test against checking nothing)."""
    found = {m for _, q in queries() for m, _ in parse(q)[0]}
    assert len(queries()) >= 10 and len(found) >= 10, found
    assert all(m.startswith(PREFIX) for m in found), f"not a metric of the filter: {sorted(found)}"
    selectors, grouping = parse('sum by (function, le) (rate(proxy_wasm_lambda_x_bucket{class!~"a|b", f="$v"}[5m]))'
                                " / sum(proxy_wasm_lambda_y)")
    assert selectors == [("proxy_wasm_lambda_x_bucket", [("class", "!~", "a|b"), ("f", "=", "$v")]),
                         ("proxy_wasm_lambda_y", [])]
    assert grouping == {"function", "le"}


# --------------------------------------------------------------------------- /stats/prometheus
def samples(text: str) -> dict[str, list[dict[str, str]]]:
    """metric name -> the label sets of its samples in a /stats/prometheus page."""
    out: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        m = re.match(r"([A-Za-z_:][\w:]*)(\{([^}]*)\})?\s", line)
        if m and not line.startswith("#"):
            out.setdefault(m.group(1), []).append(dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or "")))
    return out


def missing(page: dict[str, list[dict[str, str]]]) -> list[str]:
    """What the shipped queries use that the page lacks."""
    problems = []
    for where, expr in queries():
        selectors, grouping = parse(expr)
        for metric, matchers in selectors:
            label_sets = page.get(metric)
            if not label_sets:
                problems.append(f"{where}: no metric {metric}")
                continue
            wanted = {label for label, _, _ in matchers} | (grouping - ({"le"} if not metric.endswith("_bucket") else set()))
            for label in sorted(wanted - {"__name__"}):
                values = {s[label] for s in label_sets if label in s}
                if not values:
                    problems.append(f"{where}: {metric} has no label {label} (labels: {sorted(set().union(*label_sets))})")
            for label, op, value in matchers:
                values = {s.get(label) for s in label_sets}
                if "$" in value or not LITERAL_VALUES.fullmatch(value):
                    continue  # a dashboard variable, or a real regex
                for v in value.split("|") if op in ("=~", "!~") else [value]:
                    if v not in values:
                        problems.append(f"{where}: {metric}{{{label}{op}{value!r}}}: Envoy printed no "
                                        f"{label}={v!r} (values: {sorted(x for x in values if x)})")
    for where, metric, label in variables():
        if not any(label in s for s in page.get(metric, [])):
            problems.append(f"{where}: label_values({metric}, {label}): no such samples")
    return problems


def throttle() -> Answer:
    return Answer(429, {"x-amzn-errortype": "TooManyRequestsException", "content-type": "application/json"},
                  {"message": "Rate Exceeded."})


def lambda_5xx() -> Answer:
    return Answer(500, {"x-amzn-errortype": "ServiceException", "content-type": "application/json"},
                  {"message": "boom"})


def test_every_metric_the_dashboard_and_alerts_use_exists_with_its_labels(
        envoy_factory, sts_proxy_factory, standin_factory, assume_role_aws):
    setup = assume_role_aws
    lam = standin_factory(keys={"AKIDNOTTHEKEYUSED000": "unused"})
    sts = sts_proxy_factory(on_credentials=lambda c: lam.add_key(c.access_key_id, c.secret_access_key))
    config = assume_role_config(setup, source=setup.assumer)
    # A second profile whose ExternalId the role does not trust: its AssumeRole fails.
    config["credential_profiles"] = {
        "tenant-x": assume_role_config(setup, source=setup.assumer, external_id="not-trusted", max_wait_ms=500)[
            "credentials"]}
    routes = [eh.Route("/orders", "lambda", metadata={"function": "orders", "qualifier": "live"}),
              eh.Route("/tenant-x", "lambda", metadata={"credentials": "tenant-x"}),
              eh.Route("/", "lambda")]
    envoy = envoy_factory(config, routes=routes, clusters={"lambda": lam.port, "sts": sts.port},
                          stats_config=shipped_stats_config())

    def post(path: str, expected: int, **kw) -> None:
        r = requests.post(envoy.url(path), timeout=HTTP_TIMEOUT, **({"json": {"n": 1}} | kw))
        assert r.status_code == expected, f"{path}: " + show(r)

    post("/", 200)
    post("/orders", 200)
    for answer, status in ((throttle(), 429), (FUNCTION_ERROR, 502), (lambda_5xx(), 502)):
        lam.script(answer)
        post("/orders", status)
    post("/orders", 413, data=b"x" * (6 * 1024 * 1024 + 1))
    post("/tenant-x", 503)

    deadline = time.monotonic() + 10
    while True:
        text = requests.get(envoy.admin_url + "/stats/prometheus", timeout=HTTP_TIMEOUT).text
        problems = missing(samples(text))
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert not problems, "\n".join(problems) + "\n\n" + "\n".join(l for l in text.splitlines() if PREFIX in l)


# --------------------------------------------------------------------------- the Kubernetes metrics listener
def kubernetes_bootstrap() -> dict:
    for doc in yaml.safe_load_all((ROOT / "deploy/kubernetes/lambda-gateway.yaml").read_text()):
        if doc and doc.get("kind") == "ConfigMap" and "envoy.yaml" in doc.get("data", {}):
            return yaml.safe_load(doc["data"]["envoy.yaml"])
    raise AssertionError("no ConfigMap with envoy.yaml in deploy/kubernetes/lambda-gateway.yaml")


def get(port: int, method: str, path: str) -> tuple[int, str]:
    """The raw request (no client-side path normalization)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/stats", "/config_dump", "/", "/stats/prometheus/", "/stats/prometheus/../config_dump",
                                  "//stats/prometheus/..//quitquitquit", "/STATS/PROMETHEUS"])
def test_kubernetes_metrics_listener_serves_only_prometheus(path, shipped_kubernetes_envoy):
    envoy = shipped_kubernetes_envoy
    metrics = envoy.listener_port
    status, body = get(metrics, "GET", "/stats/prometheus")
    assert status == 200 and 'proxy_wasm_lambda_credentials_profile_refresh_ok{profile="default"}' in body, body[:500]
    assert get(metrics, "GET", path)[0] == 404
    assert get(metrics, "POST", "/stats/prometheus")[0] == 404
    assert get(metrics, "POST", "/quitquitquit")[0] == 404
    assert envoy.proc.poll() is None


@pytest.fixture(scope="module")
def shipped_kubernetes_envoy(wasm_path):
    """deploy/kubernetes/lambda-gateway.yaml's Envoy as shipped, on free loopback ports."""
    envoy = eh.Envoy(eh.EnvoyConfig(plugin_config=None, routes=[], clusters={}), log_level="warn",
                     process_env={"AWS_ACCESS_KEY_ID": "AKIDOBSERVABILITY001", "AWS_SECRET_ACCESS_KEY": "unused",
                                  "LAMBDA_EXTERNAL_ID": "unused"})
    bootstrap = kubernetes_bootstrap()
    ports = {"api": eh.free_port(), "metrics": envoy.listener_port}
    for listener in bootstrap["static_resources"]["listeners"]:
        listener["address"]["socket_address"].update(address="127.0.0.1", port_value=ports[listener["name"]])
    admin = bootstrap["admin"]["address"]["socket_address"]
    assert admin["address"] == "127.0.0.1"
    for cluster in bootstrap["static_resources"]["clusters"]:
        for ep in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]:
            sock = ep["endpoint"]["address"]["socket_address"]
            if (sock["address"], sock["port_value"]) == (admin["address"], admin["port_value"]):
                sock["port_value"] = envoy.admin_port
    admin["port_value"] = envoy.admin_port
    text = json.dumps(bootstrap).replace("/etc/envoy/wasm/proxy_wasm_lambda.wasm", wasm_path)
    envoy.bootstrap = json.loads(text)
    log_audit.AUDIT.envoys.append(envoy)
    envoy.start()
    yield envoy
    envoy.stop()


# --------------------------------------------------------------------------- merged into a mesh's bootstrap
# The stats_config each mesh starts its Envoy with (copied, abridged to the tags and the matcher):
# Istio 1.28-1.30 tools/packaging/common/envoy_bootstrap.json with pkg/bootstrap/config.go's
# required inclusion prefixes; Envoy Gateway 1.7-1.9 internal/xds/bootstrap/bootstrap.yaml.tpl (1.6
# has no stats_tags of its own).
ISTIO_STATS_CONFIG = {
    "use_all_default_tags": False,
    "stats_tags": [{"tag_name": n, "regex": r} for n, r in [
        ("cluster_name", r"^cluster(\.(.+);)"),
        ("http_conn_manager_prefix", r"^http\.(((?:[_.[:digit:]\w]*|[_\[\]aAbBcCdDeEfF[:digit:]\w\:]*));\.)"),
        ("thread_name", r"^server(\.(.+))\.watchdog"),
        ("tcp_prefix", r"^tcp\.((.*?)\.)\w+?$"),
        ("response_code", r"_rq(_(\d{3}))$"),
        ("response_code_class", r"_rq(_(\dxx))$"),
        ("http_conn_manager_listener_prefix",
         r"^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"),
        ("listener_address", r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"),
        ("mongo_prefix", r"^mongo\.(.+?)\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$"),
        ("cache", r"(cache\.(.+?)\.)"),
        ("component", r"(component\.(.+?)\.)"),
        ("tag", r"(tag\.(.+?);\.)"),
        ("wasm_filter", r"(wasm_filter\.(.+?)\.)"),
        ("authz_enforce_result", r"rbac(\.(allowed|denied))"),
        ("authz_dry_run_action", r"(\.istio_dry_run_(allow|deny)_)"),
        ("authz_dry_run_result", r"(\.shadow_(allowed|denied))"),
    ]],
    "stats_matcher": {"inclusion_list": {"patterns": [{"prefix": p} for p in (
        "reporter=", "cluster_manager", "listener_manager", "server", "cluster.xds-grpc", "wasm", "component", "istio")]}},
}
ENVOY_GATEWAY_STATS_CONFIG = {
    "use_all_default_tags": True,
    "stats_tags": [{"tag_name": n, "regex": r} for n, r in [
        ("from_zone", r"\.zone(\.(([^\.]+)\.))"),
        ("to_zone", r"\.zone\.[^\.]+\.(([^\.]+)\.)"),
        ("socket_match_name", r"^cluster(\..+\.(.+))\.total_match_count$"),
        ("priority", r"circuit_breakers\.((.+?)\.).+"),
    ]],
}
FUNCTIONS = ["orders", "user-cache", "payment-component", "zone"]
# The function names a mesh's own unanchored tag regexes also match: their class counter loses
# its name (proxy_wasm_lambda_function{cache="invocations",…}); _total and latency keep theirs.
MANGLED = {"istio": {"user-cache", "payment-component"}, "envoy-gateway": {"zone"}}


@pytest.mark.parametrize("mesh", ["istio", "envoy-gateway"])
def test_the_labels_survive_the_mesh_s_own_stats_tags(mesh, envoy_factory, standin):
    """docs/observability.md's block given as Istio gives its override (--config-yaml, merged by Envoy: the
    stats_tags are appended) over the mesh's stats_config (Envoy Gateway's Merge appends too)."""
    routes = [eh.Route(f"/{f}", "lambda", metadata={"function": f}) for f in FUNCTIONS]
    envoy = envoy_factory(
        {"function": "echo-fn", "region": "us-east-1", "credentials": standin.credentials()},
        routes=routes, clusters={"lambda": standin.port},
        stats_config=ISTIO_STATS_CONFIG if mesh == "istio" else ENVOY_GATEWAY_STATS_CONFIG,
        extra_args=["--config-yaml", json.dumps({"stats_config": shipped_stats_config()})])
    for f in FUNCTIONS:
        r = requests.post(envoy.url(f"/{f}"), json={}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, show(r)
    deadline = time.monotonic() + 5
    while True:
        page = samples(requests.get(envoy.admin_url + "/stats/prometheus", timeout=HTTP_TIMEOUT).text)
        labelled = {s["function"] for s in page.get("proxy_wasm_lambda_function_invocations", [])
                    if s.get("class") == "success"}
        totals = {s.get("function") for s in page.get("proxy_wasm_lambda_function_invocations_total", [])}
        if labelled == set(FUNCTIONS) - MANGLED[mesh] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert labelled == set(FUNCTIONS) - MANGLED[mesh], page.get("proxy_wasm_lambda_function_invocations")
    assert totals == set(FUNCTIONS), totals
    assert "profile" in page["proxy_wasm_lambda_credentials_profile_refresh_ok"][0]
    assert len(page.get("proxy_wasm_lambda_function", [])) == len(MANGLED[mesh]), page.get("proxy_wasm_lambda_function")
