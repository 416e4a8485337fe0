"""Unmodified Powertools for AWS Lambda web apps behind Envoy + the filter.

client -> Envoy 1.40 + proxy_wasm_lambda (payload apigw_v2 | apigw_v1 | alb) -> lambda_runtime
(SigV4-verifying Invoke endpoint) -> powertools_app.handler_* (APIGatewayHttpResolver,
APIGatewayRestResolver, ALBResolver).  Each test runs once per event format; ALB runs with
multi_value_headers false (ALB's default) and true.  On a failure the assertion message carries
the client's response and the event JSON the filter sent.
"""
from __future__ import annotations

import http.client
import json

import pytest
import requests

import envoy_harness as eh
from lambda_runtime import LambdaRuntime
from powertools_app import PNG_1X1
from test_end_to_end import HTTP_TIMEOUT, assert_error, assert_no_lambda_headers, plugin_config, show

TARGET_GROUP_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/todos/0123456789abcdef"

# id -> (plugin config keys, the app's "format" label)
FORMATS: dict[str, tuple[dict, str]] = {
    "apigw_v2": ({"function": "app-v2", "payload": "apigw_v2"}, "v2"),
    "apigw_v1": ({"function": "app-v1", "payload": "apigw_v1"}, "v1"),
    "alb": ({"function": "app-alb", "payload": "alb", "target_group_arn": TARGET_GROUP_ARN,
             "multi_value_headers": False}, "alb"),
    "alb_multi_value": ({"function": "app-alb", "payload": "alb", "target_group_arn": TARGET_GROUP_ARN,
                         "multi_value_headers": True}, "alb"),
}
SESSION_COOKIE = "session=s3cr3t-id; Path=/; HttpOnly; Secure; SameSite=Lax"
THEME_COOKIE = "theme=dark; Path=/"


@pytest.fixture(scope="module")
def runtime():
    rt = LambdaRuntime().start()
    yield rt
    rt.stop()


class App:
    def __init__(self, fmt: str, label: str, envoy: eh.Envoy, runtime: LambdaRuntime):
        self.fmt, self.label, self.envoy, self.runtime = fmt, label, envoy, runtime

    def url(self, path: str) -> str:
        return self.envoy.url(path)

    @property
    def alb_single(self) -> bool:
        return self.fmt == "alb"

    def event(self) -> dict:
        """The one event the filter sent for this test's request (signature verified)."""
        reqs = self.runtime.wait_for_requests(1)
        assert len(reqs) == 1, f"expected exactly 1 Invoke, saw {len(reqs)}"
        assert reqs[0].verified, f"runtime rejected the SigV4 signature: {reqs[0].reason}"
        return json.loads(reqs[0].body)

    def show(self, r: requests.Response) -> str:
        reqs = self.runtime.requests
        sent = json.dumps(json.loads(reqs[-1].body), indent=1) if reqs else "(no Invoke)"
        return f"{show(r)}\n--- event the filter sent ({self.fmt}):\n{sent}"


@pytest.fixture(scope="module", params=list(FORMATS))
def app_envoy(request, wasm_path, runtime):
    cfg_kw, label = FORMATS[request.param]
    cfg = eh.EnvoyConfig(
        plugin_config=plugin_config(runtime.credentials(), **cfg_kw),
        routes=[eh.Route("/", "lambda")],
        clusters={"lambda": ("127.0.0.1", runtime.port)},
        wasm_path=wasm_path,
    )
    envoy = eh.Envoy(cfg).start()
    yield App(request.param, label, envoy, runtime)
    envoy.stop()


@pytest.fixture
def app(app_envoy):
    app_envoy.runtime.reset()
    yield app_envoy
    unverified = [r.reason for r in app_envoy.runtime.requests if not r.verified]
    assert not unverified, f"Invokes with a bad signature: {unverified}"


def test_path_params_query_and_headers(app):
    r = requests.get(app.url("/todos/42?q=hello%20world&tag=a&tag=b"), headers={"x-echo": "yes"},
                     timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, app.show(r)
    assert r.headers["content-type"] == "application/json", app.show(r)
    assert_no_lambda_headers(r)
    got = r.json()
    assert (got["format"], got["id"], got["path"], got["method"], got["echo"]) == (
        app.label, "42", "/todos/42", "GET", "yes"), app.show(r)
    assert got["q"] == "hello world", app.show(r)
    event = app.event()
    if app.label == "alb":
        # ALB passes query values as received (percent-encoded); ALBResolver decodes them
        # (decode_query_parameters=True).
        query = event.get("multiValueQueryStringParameters") or event.get("queryStringParameters")
        assert query["q"] in ("hello%20world", ["hello%20world"]), event
        # Never both shapes, as ALB sends them.
        shapes = {"queryStringParameters", "multiValueQueryStringParameters", "headers", "multiValueHeaders"}
        expected = {"queryStringParameters", "headers"} if app.alb_single else {
            "multiValueQueryStringParameters", "multiValueHeaders"}
        assert shapes & event.keys() == expected, event
    if app.alb_single:
        # Single-value ALB events carry one value per key (the last, as ALB does); there is
        # no multiValueQueryStringParameters.
        assert (got["tags"], got["tags_multi"]) == (["b"], []), app.show(r)
    elif app.label == "v2":
        # Payload 2.0 joins repeated keys with ","; Powertools splits them again.
        assert (got["tags"], got["tags_multi"]) == (["a", "b"], []), app.show(r)
    else:
        assert (got["tags"], got["tags_multi"]) == (["a", "b"], ["a", "b"]), app.show(r)


def test_repeated_request_header(app):
    conn = http.client.HTTPConnection("127.0.0.1", app.envoy.listener_port, timeout=HTTP_TIMEOUT)
    try:
        conn.putrequest("GET", "/todos/7")
        conn.putheader("X-Repeated", "one")
        conn.putheader("X-Repeated", "two")
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, body
    expected = "two" if app.alb_single else "one,two"
    assert json.loads(body)["repeated"] == expected, f"{body!r}\nevent: {app.event()}"


def test_request_cookies_reach_the_app(app):
    r = requests.get(app.url("/whoami"), headers={"cookie": "sid=abc123; theme=dark"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, app.show(r)
    got = r.json()
    assert got["cookies"] == {"sid": "abc123", "theme": "dark"}, app.show(r)
    event = app.event()
    if app.label == "v2":
        assert got["raw"] == ["sid=abc123", "theme=dark"], app.show(r)
        assert "cookie" not in event["headers"], event
    else:
        assert got["raw"] == "sid=abc123; theme=dark", app.show(r)


def test_post_json_creates(app):
    todo = {"title": "buy milk", "done": False, "tags": ["home"], "note": "grüße"}
    r = requests.post(app.url("/todos"), json=todo, timeout=HTTP_TIMEOUT)
    assert r.status_code == 201, app.show(r)
    assert r.headers["content-type"] == "application/json", app.show(r)
    assert r.json() == {"format": app.label, "created": todo, "id": 101}, app.show(r)
    event = app.event()
    assert event["isBase64Encoded"] is False and json.loads(event["body"]) == todo, event


@pytest.mark.filterwarnings("ignore:Can.t encode more than one cookie")  # ALB single-value, expected
def test_redirect_with_two_cookies(app):
    r = requests.get(app.url("/login"), allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert r.status_code == 302, app.show(r)
    assert r.headers["location"] == "/todos/1", app.show(r)
    set_cookies = r.raw.headers.getlist("set-cookie")
    if app.alb_single:
        # A single-value ALB response has room for one Set-Cookie: Powertools sends the last
        # cookie only (and warns "Did you enable multiValueHeaders on the ALB Target Group?").
        assert set_cookies == [THEME_COOKIE], app.show(r)
    else:
        assert set_cookies == [SESSION_COOKIE, THEME_COOKIE], app.show(r)
        assert r.cookies.get("session") == "s3cr3t-id" and r.cookies.get("theme") == "dark"


def test_binary_response(app):
    r = requests.get(app.url("/image"), headers={"accept-encoding": "gzip"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, app.show(r)
    assert r.headers["content-type"] == "image/png", app.show(r)
    assert "content-encoding" not in r.headers, app.show(r)
    assert r.content == PNG_1X1, app.show(r)
    assert r.headers["content-length"] == str(len(PNG_1X1))


def test_unknown_route_is_resolver_404(app):
    r = requests.get(app.url("/nope/nothing"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, app.show(r)
    assert r.json() == {"statusCode": 404, "message": "Not found"}, app.show(r)
    r = requests.delete(app.url("/todos/1"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, app.show(r)


def test_exception_is_function_error(app):
    r = requests.get(app.url("/boom"), timeout=HTTP_TIMEOUT)
    assert_error(r, 502, "function_error", type="Unhandled", message=f"kaboom from {app.label}")
    assert_no_lambda_headers(r)


def test_route_metadata_selects_function_and_format(envoy_factory, runtime):
    """One listener, two apps: /todos goes to the REST (v1) app through route metadata, the
    rest to the plugin's HTTP API (v2) app."""
    runtime.reset()
    envoy = envoy_factory(
        plugin_config(runtime.credentials(), function="app-v2", payload="apigw_v2"),
        routes=[("/todos", "lambda", None, {"function": "app-v1", "payload": "apigw_v1"}), ("/", "lambda")],
        clusters={"lambda": runtime.port},
    )
    r = requests.get(envoy.url("/todos/5?tag=x&tag=y"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert (r.json()["format"], r.json()["id"], r.json()["tags_multi"]) == ("v1", "5", ["x", "y"]), show(r)
    r = requests.get(envoy.url("/whoami"), headers={"cookie": "a=1"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert r.json() == {"format": "v2", "raw": ["a=1"], "cookies": {"a": "1"}}, show(r)
    fns = [rec.function for rec in runtime.wait_for_requests(2)]
    assert fns == ["app-v1", "app-v2"], fns
    assert all(rec.verified for rec in runtime.requests)
