"""The filter's metrics move in Envoy's /stats with the documented names."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests
import yaml

import envoy_harness as eh
from lambda_standin import Answer
from test_end_to_end import FUNCTION_ERROR, HTTP_TIMEOUT, plugin_config, show, start_standin_envoy

PREFIX = "wasmcustom.proxy_wasm_lambda."


def wait_for_stats(envoy, expected: dict[str, int], timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = envoy.stats("proxy_wasm_lambda")
        if all(stats.get(PREFIX + k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            return stats


@pytest.mark.parametrize("invoke_histograms", [False, True], ids=["default", "invoke_histograms"])
def test_outcome_counters_and_histograms(envoy_factory, standin, invoke_histograms):
    cfg = {"invoke_histograms": True} if invoke_histograms else {}
    envoy = start_standin_envoy(envoy_factory, standin, **cfg)
    for _ in range(3):
        r = requests.post(envoy.url("/"), json={"n": 1}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, show(r)
    standin.script(FUNCTION_ERROR)
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 502, show(r)
    r = requests.post(envoy.url("/"), data=b"x" * (6 * 1024 * 1024 + 1), timeout=HTTP_TIMEOUT)
    assert r.status_code == 413, show(r)
    expected = {
        "invocations.success": 3,
        "invocations.function_error": 1,
        "invocations.rejected": 1,
        "invocations.upstream_error": 0,
        "credentials.refresh_ok": 0,
    }
    stats = wait_for_stats(envoy, expected)
    for name, value in expected.items():
        assert stats.get(PREFIX + name) == value, f"{name}: {stats}"
    # Histograms are listed (with their quantiles) once they have samples. The per-function
    # latency is always kept; the global invoke histograms only when asked for (they repeat
    # the cluster's upstream_rq_time and cost a host call per request each).
    assert any(k.startswith(PREFIX + "function.echo-fn.latency_ms") for k in stats), stats
    for name in ("invoke.latency_ms", "invoke.payload_bytes"):
        listed = any(k.startswith(PREFIX + name) for k in stats)
        assert listed == invoke_histograms, f"{name}: {stats}"


def shipped_stats_config() -> dict:
    """The stats_config of envoy/local.yaml, as shipped (docs/observability.md, Stats)."""
    path = Path(__file__).resolve().parents[2] / "envoy" / "local.yaml"
    return yaml.safe_load(path.read_text())["stats_config"]


def prometheus(envoy) -> str:
    return requests.get(envoy.admin_url + "/stats/prometheus", timeout=HTTP_TIMEOUT).text


def sample(text: str, metric: str, **labels: str) -> float | None:
    """The value of `metric` with exactly these labels in a /stats/prometheus page."""
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        body = line[len(metric) + 1:line.index("}")]
        got = dict(re.findall(r'(\w+)="([^"]*)"', body))
        if got == labels:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_per_function_outcomes_are_labelled_by_the_shipped_stats_tags(envoy_factory, standin):
    routes = [
        eh.Route("/orders", "lambda", metadata={"function": "orders", "qualifier": "live"}),
        eh.Route("/", "lambda"),
    ]
    envoy = envoy_factory(plugin_config(standin.credentials()), routes=routes, clusters={"lambda": standin.port},
                          stats_config=shipped_stats_config())
    for _ in range(2):
        r = requests.post(envoy.url("/"), json={"n": 1}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, show(r)
    r = requests.post(envoy.url("/orders"), json={"n": 1}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    standin.script(Answer(429, {"x-amzn-errortype": "TooManyRequestsException",
                                "content-type": "application/json"}, {"message": "Rate Exceeded."}))
    r = requests.post(envoy.url("/orders"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 429, show(r)
    standin.script(Answer(500, {"x-amzn-errortype": "ServiceException", "content-type": "application/json"},
                          {"message": "boom"}))
    r = requests.post(envoy.url("/orders"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 502, show(r)
    family = "proxy_wasm_lambda_function_invocations"
    expected = [
        ({"function": "echo-fn", "class": "success"}, 2),
        ({"function": "orders:live", "class": "success"}, 1),
        ({"function": "orders:live", "class": "throttled"}, 1),
        ({"function": "orders:live", "class": "lambda_5xx"}, 1),
    ]
    deadline = time.monotonic() + 5
    while True:
        text = prometheus(envoy)
        got = [sample(text, family, **labels) for labels, _ in expected]
        if got == [v for _, v in expected] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == [v for _, v in expected], [l for l in text.splitlines() if "function" in l]
    assert sample(text, family + "_total", function="orders:live") == 3
    assert sample(text, family + "_total", function="echo-fn") == 2
    assert sample(text, family, function="echo-fn", **{"class": "throttled"}) is None
    assert any(l.startswith("proxy_wasm_lambda_function_latency_ms_bucket{function=\"orders:live\"")
               for l in text.splitlines()), "latency by function"
    # Per-profile refresh counters carry the profile as a label (0 for static keys).
    assert sample(text, "proxy_wasm_lambda_credentials_profile_refresh_ok", profile="default") == 0
    # The function's segment is gone from the name: no per-function metric family.
    assert "orders" not in "".join(re.findall(r"^# TYPE (\S+)", text, re.M))


def wasm_lines(envoy, needle: str) -> list[str]:
    return [l for l in envoy.log().splitlines() if "wasm log" in l and needle in l]


def test_a_burst_of_identical_failures_leaves_a_bounded_number_of_log_lines(envoy_factory, standin):
    envoy = envoy_factory(plugin_config(standin.credentials()), clusters={"lambda": standin.port},
                          extra_args=["--file-flush-interval-msec", "100"])
    throttle = Answer(429, {"x-amzn-errortype": "TooManyRequestsException", "content-type": "application/json"},
                      {"message": "Rate Exceeded."})
    burst = 60
    standin.script(*[throttle] * burst)
    for _ in range(burst):
        r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 429, show(r)
    # One line for the first; the rest counted into one summary when the 10 s interval ends.
    deadline = time.monotonic() + 15
    while not wasm_lines(envoy, "more throttled failures") and time.monotonic() < deadline:
        time.sleep(0.3)
    failures = wasm_lines(envoy, " throttled (")
    summaries = wasm_lines(envoy, "more throttled failures")
    assert len(failures) == 1, failures[:3]
    assert "lambda_request_id=" in failures[0]
    assert len(summaries) == 1, summaries
    assert f"{burst - 1} more throttled failures in the last 10 s" in summaries[0]
    # Each line has Envoy's prefix and no second one of the filter's own.
    assert all(l.count("proxy_wasm_lambda:") == 1 for l in failures + summaries), failures + summaries
    # The counters have them all.
    assert wait_for_stats(envoy, {"invocations.throttled": burst}).get(PREFIX + "invocations.throttled") == burst
