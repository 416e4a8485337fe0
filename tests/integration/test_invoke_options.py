"""Log tail and client context: sent (and signed) on synchronous Invokes; the log result
reaches the client only when exposed, and the Envoy debug log gets the decoded tail."""
from __future__ import annotations

import base64
import json

import requests

from lambda_standin import Answer
from test_end_to_end import HTTP_TIMEOUT, only_request, show, start_standin_envoy

TAIL = base64.b64encode(b"START RequestId: 1\nhello from the function\nEND").decode()


def test_log_tail_and_client_context(envoy_factory, standin):
    envoy = start_standin_envoy(
        envoy_factory, standin, log_level="debug",
        log_type="Tail", client_context={"custom": {"app": "shop"}},
        routes=[("/exposed", "lambda", None, {"expose_log_result": True}), ("/", "lambda")],
    )
    answer = Answer(200, {"content-type": "application/json", "x-amzn-requestid": "r",
                          "x-amz-log-result": TAIL}, {"ok": True})
    standin.script(answer)
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert "x-amz-log-result" not in r.headers, r.headers
    rec = only_request(standin)
    assert rec.header("x-amz-log-type") == "Tail"
    assert json.loads(base64.b64decode(rec.header("x-amz-client-context"))) == {"custom": {"app": "shop"}}
    signed = rec.header("authorization").split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x-amz-log-type" in signed and "x-amz-client-context" in signed, signed

    standin.script(answer)
    r = requests.post(envoy.url("/exposed"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert r.headers.get("x-amz-log-result") == TAIL
    envoy.stop()
    assert "hello from the function" in envoy.log()


def test_event_invocations_send_no_log_type(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin, log_type="Tail", invocation_type="Event")
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 202, show(r)
    assert only_request(standin).header("x-amz-log-type") is None
