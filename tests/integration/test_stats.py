"""The filter's metrics move in Envoy's /stats with the documented names."""
from __future__ import annotations

import time

import requests

from test_end_to_end import FUNCTION_ERROR, HTTP_TIMEOUT, show, start_standin_envoy

PREFIX = "wasmcustom.proxy_wasm_lambda."


def wait_for_stats(envoy, expected: dict[str, int], timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = envoy.stats("proxy_wasm_lambda")
        if all(stats.get(PREFIX + k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            return stats


def test_outcome_counters_and_histograms(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin)
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
    # Histograms are listed (with their quantiles) once they have samples.
    assert any(k.startswith(PREFIX + "invoke.latency_ms") for k in stats), stats
    assert any(k.startswith(PREFIX + "invoke.payload_bytes") for k in stats), stats
