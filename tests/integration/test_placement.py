"""Where the filter sits: the HCM's http_filters (downstream: the Invoke is dispatched) or the
router's upstream_http_filters (upstream: the request is rewritten in place and goes through
the router). The rest of the suite runs in either placement (LAMBDA_FILTER_PLACEMENT); these
tests pin one and check what only that placement does."""
from __future__ import annotations

import json
import time

import pytest
import requests

import envoy_harness as eh
from lambda_standin import Answer
from test_end_to_end import HTTP_TIMEOUT, assert_error, json_of, only_request, plugin_config, show
from test_stats import PREFIX, wait_for_stats


def start(envoy_factory, standin, placement: str, routes=None, buffer_limit=None, **cfg_kw) -> eh.Envoy:
    return envoy_factory(
        plugin_config(standin.credentials(), **cfg_kw),
        routes=routes,
        clusters={"lambda": standin.port},
        placement=placement,
        per_connection_buffer_limit_bytes=buffer_limit,
    )


@pytest.mark.parametrize("placement", ["downstream", "upstream"])
def test_delivery_follows_the_placement(envoy_factory, standin, placement):
    envoy = start(envoy_factory, standin, placement, payload="apigw_v2")
    standin.script(Answer(200, {"content-type": "application/json"}, {"statusCode": 201, "body": "made"}))
    r = requests.post(envoy.url("/things"), json={"a": 1}, timeout=HTTP_TIMEOUT)
    assert (r.status_code, r.text) == (201, "made"), show(r)
    rec = only_request(standin)
    assert rec.path.startswith("/2015-03-31/functions/echo-fn/invocations"), rec.path
    # Envoy marks calls the filter dispatches as internal; a request rewritten in place is not.
    assert (rec.header("x-envoy-internal") is not None) == (placement == "downstream"), rec.headers
    # A body-less request with an event payload has no body to carry the event: dispatched
    # in either placement.
    standin.script(Answer(200, {"content-type": "application/json"}, {"statusCode": 200, "body": "got"}))
    r = requests.get(envoy.url("/things"), timeout=HTTP_TIMEOUT)
    assert (r.status_code, r.text) == (200, "got"), show(r)
    in_place = 1 if placement == "upstream" else 0
    expected = {"invoke.in_place": in_place, "invoke.dispatched": 2 - in_place, "invocations.success": 2}
    stats = wait_for_stats(envoy, expected)
    for name, value in expected.items():
        assert stats.get(PREFIX + name) == value, f"{name}: {stats}"


def test_upstream_route_retry_policy_retries_and_signs_each_attempt(envoy_factory, standin):
    routes = [eh.Route("/", "lambda", timeout_s=5, retry_policy={"retry_on": "5xx", "num_retries": 2})]
    envoy = start(envoy_factory, standin, "upstream", routes=routes)
    standin.script(
        Answer(500, {"content-type": "application/json", "x-amzn-errortype": "ServiceException"},
               {"Message": "try again"}),
        Answer(200, {"content-type": "application/json"}, {"second": "attempt"}),
    )
    r = requests.post(envoy.url("/"), json={"n": 1}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert json_of(r) == {"second": "attempt"}, show(r)
    attempts = standin.wait_for_requests(2)
    assert len(attempts) == 2, [a.to_json() for a in attempts]
    for attempt in attempts:
        assert attempt.verified, f"attempt not validly signed: {attempt.reason}"
        assert attempt.body == b'{"n": 1}', attempt.body


def test_upstream_passthrough_answer_streams_past_the_buffer_limit(envoy_factory, standin):
    """A successful passthrough answer is relayed as it arrives, never buffered: it passes even
    when it is larger than the cluster's buffer limit."""
    routes = [eh.Route("/", "lambda", timeout_s=10)]
    envoy = start(envoy_factory, standin, "upstream", routes=routes, buffer_limit=256 * 1024)
    big = {"data": "x" * (3 * 1024 * 1024)}
    standin.script(Answer(200, {"content-type": "application/json"}, big))
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)[:300]
    assert len(r.content) > 3 * 1024 * 1024 and json_of(r) == big


def test_upstream_route_timeout_is_json_and_counted(envoy_factory, standin):
    routes = [eh.Route("/", "lambda", timeout_s=1)]
    envoy = start(envoy_factory, standin, "upstream", routes=routes)
    standin.script(Answer(200, {"content-type": "application/json"}, {"late": True}, delay_s=3))
    t0 = time.monotonic()
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    assert time.monotonic() - t0 < 2.5
    body = assert_error(r, 504, "upstream_timeout")
    assert body.get("request_id"), body
    stats = wait_for_stats(envoy, {"invocations.upstream_error": 1})
    assert stats.get(PREFIX + "invocations.upstream_error") == 1, stats
    deadline = time.monotonic() + 15  # Envoy flushes its log file every few seconds
    while "ended_by_router" not in envoy.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "ended_by_router" in envoy.log(), "the ended Invoke is logged with its class"


def cluster_stats(envoy) -> dict:
    return envoy.stats("cluster.lambda.upstream_(cx_total|rq_total)$")


@pytest.mark.parametrize("placement", ["upstream", "split"])
def test_body_less_event_requests_and_the_upstream_connection(envoy_factory, standin, placement):
    """Upstream alone, a body-less request with an event payload is dispatched and the local
    reply ends its upstream request: Envoy closes that HTTP/1 connection each time. With the
    filter in both chains (split_placement), the HCM instance takes such requests before any
    upstream request exists, and the connection to Lambda is reused."""
    envoy = start(envoy_factory, standin, placement, payload="apigw_v2")
    session = requests.Session()
    rounds = 10
    for n in range(rounds):
        standin.script(Answer(200, {"content-type": "application/json"}, {"statusCode": 200, "body": f"get {n}"}))
        r = session.get(envoy.url(f"/items/{n}"), timeout=HTTP_TIMEOUT)
        assert (r.status_code, r.text) == (200, f"get {n}"), show(r)
        standin.script(Answer(200, {"content-type": "application/json"}, {"statusCode": 201, "body": f"post {n}"}))
        r = session.post(envoy.url("/items"), json={"n": n}, timeout=HTTP_TIMEOUT)
        assert (r.status_code, r.text) == (201, f"post {n}"), show(r)
    for rec in standin.wait_for_requests(2 * rounds):
        assert rec.verified, rec.reason
    expected = {"invoke.in_place": rounds, "invoke.dispatched": rounds, "invocations.success": 2 * rounds}
    stats = wait_for_stats(envoy, expected)
    for name, value in expected.items():
        assert stats.get(PREFIX + name) == value, f"{name}: {stats}"
    connections = cluster_stats(envoy).get("cluster.lambda.upstream_cx_total")
    if placement == "split":
        assert connections == 1, f"split placement opened {connections} connections for {2 * rounds} requests"
    else:
        assert connections >= rounds, f"expected a new connection per dispatched request, saw {connections}"


def test_upstream_retry_of_an_event_request_rebuilds_the_clients_event(envoy_factory, standin):
    """The router's retry hands the upstream filter the header map the first attempt rewrote:
    the retry's event is still built from the client's request, never from the Invoke's
    headers (which carry the signature and the session token)."""
    token = "retry-test-session-token-0123456789"
    routes = [eh.Route("/", "lambda", timeout_s=5, retry_policy={"retry_on": "5xx", "num_retries": 1})]
    envoy = envoy_factory(
        plugin_config(dict(standin.credentials(), session_token=token), payload="apigw_v2"),
        routes=routes,
        clusters={"lambda": standin.port},
        placement="upstream",
    )
    standin.script(
        Answer(500, {"content-type": "application/json", "x-amzn-errortype": "ServiceException"},
               {"Message": "try again"}),
        Answer(200, {"content-type": "application/json"}, {"statusCode": 200, "body": "second"}),
    )
    r = requests.post(envoy.url("/orders/7?x=1"), json={"n": 7}, headers={"x-client": "c"},
                      timeout=HTTP_TIMEOUT)
    assert (r.status_code, r.text) == (200, "second"), show(r)
    first, second = standin.wait_for_requests(2)
    events = []
    for attempt in (first, second):
        assert attempt.verified, attempt.reason
        event = json.loads(attempt.body)
        events.append(event)
        assert event["rawPath"] == "/orders/7" and event["rawQueryString"] == "x=1", event
        # For access logs (the router's header map is the request's own): the client's path.
        assert attempt.header("x-envoy-original-path") == "/orders/7?x=1", attempt.headers
        assert event["headers"].get("x-client") == "c", event["headers"]
        assert token not in attempt.body.decode(), "the session token reached the function's event"
        assert "authorization" not in event["headers"], event["headers"]
        assert not any(name.startswith("x-amz-") for name in event["headers"]), event["headers"]
    assert events[0]["body"] == events[1]["body"] and events[0]["headers"] == events[1]["headers"]


def test_upstream_attempt_key_from_a_client_is_refused(envoy_factory, standin):
    """A client cannot make the filter rebuild another request's event: a forged attempt key
    is unknown, and the request is refused without invoking."""
    envoy = start(envoy_factory, standin, "upstream", payload="apigw_v2")
    r = requests.post(envoy.url("/x"), json={}, headers={"x-proxy-wasm-lambda-attempt": "0" * 32},
                      timeout=HTTP_TIMEOUT)
    assert_error(r, 502, "retry_unavailable")
    assert standin.requests == []
