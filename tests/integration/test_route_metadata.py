"""Strict route metadata in real Envoy (issue 16, item 3): the filter reads the route's whole
metadata in one property read (Envoy hands it over as a serialized protobuf ``Metadata``),
so a key it does not know is refused instead of silently falling back to the plugin's
function, and maps written as YAML maps in ``filter_metadata.proxy_wasm_lambda`` reach the
function as they are written.

Runs in the suite's placement (LAMBDA_FILTER_PLACEMENT: upstream or downstream)."""
from __future__ import annotations

import base64
import dataclasses
import json
import time

import pytest
import requests

import envoy_harness as eh
from test_end_to_end import HTTP_TIMEOUT, assert_error, only_request, show, start_standin_envoy


@dataclasses.dataclass
class NamedRoute(eh.Route):
    """A route with Envoy's ``name``, which errors about its metadata quote."""

    name: str | None = None


@pytest.fixture(autouse=True)
def route_names(monkeypatch):
    """Writes NamedRoute's name into the route entry the harness builds."""
    build_entry = eh._route_entry

    def entry_with_name(route: eh.Route) -> dict:
        entry = build_entry(route)
        if getattr(route, "name", None):
            entry["name"] = route.name
        return entry

    monkeypatch.setattr(eh, "_route_entry", entry_with_name)


def assert_nothing_invoked(standin, wait_s: float = 0.5) -> None:
    time.sleep(wait_s)
    assert standin.requests == [], [r.to_json() for r in standin.requests]


def test_unknown_key_is_refused_naming_route_and_key(envoy_factory, standin):
    envoy = start_standin_envoy(
        envoy_factory, standin,
        routes=[
            NamedRoute("/typo", "lambda", None, {"functon": "other-fn"}, name="orders-typo"),
            ("/", "lambda"),
        ],
    )
    for _ in range(2):  # checked once, then answered from the route cache
        r = requests.post(envoy.url("/typo"), json={}, timeout=HTTP_TIMEOUT)
        body = assert_error(r, 500, "route_config_invalid")
        message = body["message"]
        assert "'functon'" in message and "did you mean 'function'?" in message, body
        assert "route 'orders-typo'" in message, body
        assert "other-fn" not in message, body
    assert_nothing_invoked(standin)
    # Other routes keep working, with the plugin's function.
    r = requests.post(envoy.url("/"), json={"ok": 1}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert only_request(standin).function == "echo-fn"
    envoy.stop()
    logged = [line for line in envoy.log().splitlines() if "route_config_invalid" in line]
    assert any("functon" in line and "orders-typo" in line for line in logged), logged


def test_key_without_a_value_is_refused(envoy_factory, standin):
    # YAML `qualifier:` is null: refused, not read as "no qualifier".
    envoy = start_standin_envoy(
        envoy_factory, standin,
        routes=[("/", "lambda", None, {"function": "other-fn", "qualifier": None})],
    )
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    body = assert_error(r, 500, "route_config_invalid")
    assert "'qualifier'" in body["message"], body
    assert_nothing_invoked(standin)


def test_custom_parameters_as_a_yaml_map_reach_the_function(envoy_factory, standin):
    envoy = start_standin_envoy(
        envoy_factory, standin,
        routes=[
            ("/map", "lambda", None, {"custom_parameters": {"action": "grant-access", "tier": "gold"}}),
            ("/text", "lambda", None, {"custom_parameters": '{"action": "revoke-access"}'}),
            ("/v2", "lambda", None, {"payload": "apigw_v2", "custom_parameters": {"tenant": "blue"}}),
        ],
    )
    r = requests.post(envoy.url("/map"), json={"user": "ana"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert json.loads(only_request(standin).body) == {
        "user": "ana", "custom_parameters": {"action": "grant-access", "tier": "gold"}}
    # The JSON text form still works.
    standin.reset()
    r = requests.post(envoy.url("/text"), json={"user": "ana"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert json.loads(only_request(standin).body)["custom_parameters"] == {"action": "revoke-access"}
    # As API Gateway's stage variables.
    standin.reset()
    r = requests.get(envoy.url("/v2/items"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert json.loads(only_request(standin).body)["stageVariables"] == {"tenant": "blue"}


def test_custom_parameters_values_must_be_text(envoy_factory, standin):
    envoy = start_standin_envoy(
        envoy_factory, standin,
        routes=[("/", "lambda", None, {"custom_parameters": {"count": 2}})],
    )
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    body = assert_error(r, 500, "route_config_invalid")
    assert "custom_parameters" in body["message"] and "'count' must be a string" in body["message"], body
    assert_nothing_invoked(standin)


def test_client_context_as_a_yaml_map_reaches_the_function(envoy_factory, standin):
    context = {"custom": {"app": "shop", "build": 42, "beta": True, "tags": ["a", "b"]}, "env": {"locale": "de"}}
    envoy = start_standin_envoy(
        envoy_factory, standin,
        routes=[
            ("/map", "lambda", None, {"client_context": context}),
            ("/text", "lambda", None, {"client_context": json.dumps({"custom": {"app": "text"}})}),
        ],
    )
    r = requests.post(envoy.url("/map"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    sent = only_request(standin).header("x-amz-client-context")
    assert json.loads(base64.b64decode(sent)) == context
    # Whole numbers stay integers (`42`, not `42.0`) in the JSON the function gets.
    assert b'"build":42' in base64.b64decode(sent), base64.b64decode(sent)
    standin.reset()
    r = requests.post(envoy.url("/text"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    sent = only_request(standin).header("x-amz-client-context")
    assert json.loads(base64.b64decode(sent)) == {"custom": {"app": "text"}}


def test_credentials_map_is_refused_without_showing_it(envoy_factory, standin):
    pasted = {"access_key_id": "AKIDPASTEDINROUTE01", "secret_access_key": "pasted-route-secret"}
    envoy = start_standin_envoy(
        envoy_factory, standin,
        routes=[NamedRoute("/", "lambda", None, {"credentials": pasted}, name="pasted-keys")],
    )
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    body = assert_error(r, 500, "route_config_invalid")
    assert "credentials" in body["message"] and "route 'pasted-keys'" in body["message"], body
    assert_nothing_invoked(standin)
    envoy.stop()
    for secret in pasted.values():
        assert secret not in r.text
        assert secret not in envoy.log()
