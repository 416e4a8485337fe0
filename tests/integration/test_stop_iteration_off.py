"""A filter installed without `allow_on_headers_stop_iteration: true` (what Istio's
WasmPlugin and Envoy Gateway's EnvoyExtensionPolicy produce): Envoy never hands it the body of
a request it paused in the headers. The filter answers such a request with a clear JSON 500
naming the setting within a few seconds (flow/body_watch.rs), logs the cause once, and still
serves requests without a body; without the filter's watch the client waited for the route's
timeout.
"""
from __future__ import annotations

import threading
import time

import pytest
import requests

import envoy_harness as eh
import lambda_standin as ls
import log_audit

REGION = "us-east-1"
ROUTE_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def flag_off_envoy(wasm_path):
    standin = ls.StandIn().start()
    log_audit.AUDIT.standins.append(standin)
    cfg = eh.EnvoyConfig(
        plugin_config={"function": "echo-fn", "region": REGION, "credentials": standin.credentials()},
        routes=[eh.Route("/", "lambda", timeout_s=ROUTE_TIMEOUT_S)],
        clusters={"lambda": ("127.0.0.1", standin.port)},
        wasm_path=wasm_path,
        concurrency=2,
        allow_on_headers_stop_iteration=False,
    )
    envoy = eh.Envoy(cfg)
    log_audit.AUDIT.envoys.append(envoy)
    envoy.start()
    yield envoy, standin
    envoy.stop()
    standin.stop()


def test_a_body_that_never_reaches_the_filter_is_a_clear_500_within_seconds(flag_off_envoy):
    envoy, standin = flag_off_envoy
    standin.reset()
    results: list[tuple[float, requests.Response]] = []

    def post(i: int) -> None:
        t0 = time.monotonic()
        r = requests.post(envoy.url(f"/post/{i}"), data=b'{"a": 1}', timeout=ROUTE_TIMEOUT_S)
        results.append((time.monotonic() - t0, r))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for elapsed, r in results:
        assert r.status_code == 500, f"{r.status_code} {r.text[:300]}"
        body = r.json()
        assert body["error"] == "body_not_received", body
        assert "allow_on_headers_stop_iteration" in body["message"], body
        # BODY_WAIT (3 s) plus the root's tick: far below the route's 30 s timeout.
        assert elapsed < 6, f"answered after {elapsed:.1f} s"
    assert standin.requests == [], "nothing may be invoked"
    # The cause is logged once per VM (2 workers), not once per request (Envoy writes its log
    # file every few seconds).
    deadline = time.monotonic() + 15
    while True:
        lines = [l for l in envoy.log().splitlines() if "proxy_wasm_lambda: within" in l]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert 1 <= len(lines) <= 2, "\n".join(lines)
    assert all("[error]" in l for l in lines), "\n".join(lines)
    stats = envoy.stats("wasmcustom.proxy_wasm_lambda.invocations.rejected")
    assert stats.get("wasmcustom.proxy_wasm_lambda.invocations.rejected") == 4, stats


def test_requests_without_a_body_still_work(flag_off_envoy):
    envoy, standin = flag_off_envoy
    standin.reset()
    r = requests.get(envoy.url("/get"), timeout=10)
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
    assert len(standin.requests) == 1
