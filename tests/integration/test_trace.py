"""Trace continuation into Lambda (docs/observability.md, Tracing): the Invoke carries
X-Amzn-Trace-Id mapped from the request's W3C traceparent, or the client's own valid
X-Amzn-Trace-Id as it is; the header is not signed, so the Invoke still verifies (botocore in
the stand-in, moto with IAM auth on). In event payloads traceparent and tracestate stay in the
event's headers."""
from __future__ import annotations

import json

import requests

from test_end_to_end import HTTP_TIMEOUT, only_request, show, start_moto_envoy, start_standin_envoy

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
MAPPED = "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"
CLIENT_AMZN = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def signed_headers(rec) -> list[str]:
    return rec.header("authorization").split("SignedHeaders=")[1].split(",")[0].split(";")


def test_traceparent_becomes_the_invokes_amzn_trace_id(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin)
    r = requests.post(envoy.url("/"), json={"n": 1}, headers={"traceparent": TRACEPARENT}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    rec = only_request(standin)  # asserts the signature verified
    assert rec.header("x-amzn-trace-id") == MAPPED
    assert "x-amzn-trace-id" not in signed_headers(rec)
    assert rec.header("traceparent") is None, "the Invoke carries only the headers the filter sets"


def test_a_valid_client_amzn_trace_id_is_kept_and_an_invalid_one_dropped(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin)
    cases = [
        ({"x-amzn-trace-id": CLIENT_AMZN, "traceparent": TRACEPARENT}, CLIENT_AMZN),
        ({"x-amzn-trace-id": "Root=1-nothex-x"}, None),
        ({"x-amzn-trace-id": "Root=1-nothex-x", "traceparent": TRACEPARENT}, MAPPED),
        ({}, None),
    ]
    for n, (headers, _) in enumerate(cases):
        r = requests.post(envoy.url("/"), json={"n": n}, headers=headers, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, show(r)
    recs = standin.wait_for_requests(len(cases), 5)
    assert all(rec.verified for rec in recs), [rec.reason for rec in recs]
    got = {json.loads(rec.body)["n"]: rec.header("x-amzn-trace-id") for rec in recs}
    assert got == {n: expected for n, (_, expected) in enumerate(cases)}


def test_event_keeps_traceparent_and_tracestate_in_its_headers(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin, payload="apigw_v2")
    r = requests.post(envoy.url("/items"), json={"n": 1},
                      headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    rec = only_request(standin)
    assert rec.header("x-amzn-trace-id") == MAPPED
    event = json.loads(rec.body)
    assert event["headers"]["traceparent"] == TRACEPARENT
    assert event["headers"]["tracestate"] == "vendor=abc"


def test_moto_verifies_an_invoke_with_a_trace(envoy_factory, moto):
    envoy = start_moto_envoy(envoy_factory, moto)
    r = requests.post(envoy.url("/"), json={"traced": True}, headers={"traceparent": TRACEPARENT},
                      timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert r.json() == {"traced": True}
