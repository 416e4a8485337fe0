"""Event payload formats through real Envoy: the Invoke carries an API Gateway / ALB event built
from the client's request, and the function's proxy-integration answer becomes the response."""
from __future__ import annotations

import base64
import json

import requests

from lambda_standin import Answer
from test_end_to_end import HTTP_TIMEOUT, assert_error, only_request, show, start_standin_envoy

LAMBDA_HEADERS = {"content-type": "application/json", "x-amzn-requestid": "r-1"}


def test_apigw_v2_event_and_inferred_response(envoy_factory, standin):
    envoy = start_standin_envoy(
        envoy_factory, standin, payload="apigw_v2", custom_parameters={"tenant": "blue"}
    )
    r = requests.get(
        envoy.url("/items/42?a=1&a=2&b=x%20y"),
        headers={"cookie": "s=1; t=2", "x-custom": "yes", "user-agent": "ua/1"},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 200, show(r)
    rec = only_request(standin)
    event = json.loads(rec.body)
    # The echo stand-in returns the event; without statusCode v2 infers 200 + JSON body.
    assert r.json() == event
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/items/42"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-custom"] == "yes"
    assert event["stageVariables"] == {"tenant": "blue"}
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["sourceIp"], http["userAgent"]) == (
        "GET", "/items/42", "127.0.0.1", "ua/1"), http
    assert event["requestContext"]["requestId"] == r.json()["requestContext"]["requestId"]
    assert "body" not in event or not event.get("body")


def test_apigw_v2_response_with_redirect_and_cookies(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin, payload="apigw_v2")
    standin.script(Answer(200, LAMBDA_HEADERS, {
        "statusCode": 302,
        "headers": {"Location": "/login", "x-app": "1"},
        "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
        "body": "",
    }))
    r = requests.get(envoy.url("/old"), allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert r.status_code == 302, show(r)
    assert r.headers["location"] == "/login"
    assert r.headers["x-app"] == "1"
    cookies = r.raw.headers.getlist("set-cookie")
    assert cookies == ["a=1; Path=/", "b=2; HttpOnly"], cookies


def test_apigw_v1_binary_request_and_response(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin, payload="apigw_v1")
    png = bytes(range(256))
    standin.script(Answer(200, LAMBDA_HEADERS, {
        "statusCode": 201,
        "headers": {"content-type": "image/png"},
        "multiValueHeaders": {"set-cookie": ["x=1", "y=2"]},
        "isBase64Encoded": True,
        "body": base64.b64encode(png[::-1]).decode(),
    }))
    r = requests.post(envoy.url("/upload?tag=a&tag=b"), data=png,
                      headers={"content-type": "image/png"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 201, show(r)
    assert r.content == png[::-1]
    assert r.headers["content-type"] == "image/png"
    assert r.raw.headers.getlist("set-cookie") == ["x=1", "y=2"]
    event = json.loads(only_request(standin).body)
    assert event["httpMethod"] == "POST" and event["path"] == "/upload"
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == png
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"]}
    assert event["queryStringParameters"] == {"tag": "b"}


def test_alb_event_and_response(envoy_factory, standin):
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/0123456789abcdef"
    envoy = start_standin_envoy(envoy_factory, standin, payload="alb", target_group_arn=arn)
    standin.script(Answer(200, LAMBDA_HEADERS, {
        "statusCode": 200, "statusDescription": "200 OK",
        "headers": {"content-type": "text/plain"}, "body": "hello", "isBase64Encoded": False,
    }))
    r = requests.post(envoy.url("/hi?q=1"), json={"k": "v"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert r.text == "hello"
    event = json.loads(only_request(standin).body)
    assert event["requestContext"]["elb"]["targetGroupArn"] == arn
    assert json.loads(event["body"]) == {"k": "v"} and event["isBase64Encoded"] is False


def test_malformed_proxy_response_is_502_bad_response(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin, payload="apigw_v1")
    standin.script(Answer(200, LAMBDA_HEADERS, {"statusCode": "not-a-status", "body": "x"}))
    r = requests.get(envoy.url("/"), timeout=HTTP_TIMEOUT)
    assert_error(r, 502, "bad_response")
    standin.script(Answer(200, LAMBDA_HEADERS, {"statusCode": 200, "headers": {"x-bad": "a\r\nb"}}))
    r = requests.get(envoy.url("/"), timeout=HTTP_TIMEOUT)
    assert_error(r, 502, "bad_response")


def test_passthrough_custom_parameters_merged_into_json_objects(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin, custom_parameters={"action": "grant-access"})
    r = requests.post(envoy.url("/"), json={"user": "ana"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert json.loads(only_request(standin).body) == {
        "user": "ana", "custom_parameters": {"action": "grant-access"}}


def test_route_custom_parameters_as_json_text(envoy_factory, standin):
    envoy = start_standin_envoy(
        envoy_factory, standin,
        routes=[
            ("/grant", "lambda", None, {"custom_parameters": '{"action": "grant-access"}'}),
            ("/struct", "lambda", None, {"custom_parameters": {"action": "revoke-access"}}),
            ("/", "lambda"),
        ],
    )
    r = requests.post(envoy.url("/grant"), json={"user": "ana"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert json.loads(only_request(standin).body)["custom_parameters"] == {"action": "grant-access"}
    # A YAML map works as well (tests/integration/test_route_metadata.py).
    standin.reset()
    r = requests.post(envoy.url("/struct"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert json.loads(only_request(standin).body)["custom_parameters"] == {"action": "revoke-access"}
