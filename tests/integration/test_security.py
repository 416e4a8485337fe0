"""Security properties through real Envoy 1.40:
- nothing the client sends (x-amz-*, authorization, Host/authority, path and query tricks)
  reaches the Lambda API or changes which function is invoked;
- oversized header sets and bodies are refused (431 / 413) without reaching Lambda;
- no secret access key, ExternalId or session token in anything Envoy prints at trace level
  (beyond the two places Envoy itself prints them, see log_audit), in stats or error bodies.
"""
from __future__ import annotations

import socket

import pytest
import requests

import envoy_harness as eh
import log_audit
from lambda_standin import Answer
from test_assume_role import plugin_config as assume_role_config, post, show, start_envoy
from test_end_to_end import DEFAULT_ENDPOINT, INVOKE_PATH, start_standin_envoy

HTTP_TIMEOUT = 15
MIB = 1024 * 1024


def raw_request(port: int, head: str, timeout: float = 10.0,
                encoding: str = "utf-8") -> tuple[int, bytes]:
    """Sends `head` (request line + headers, no body) as is; returns (status, whole answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode(encoding) + b"\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        status_line = data.split(b"\r\n", 1)[0].decode(errors="replace")
        return int(status_line.split()[1]), data


# --------------------------------------------------------------------------- client tricks
TRICKS = {
    "invoke path of another function": "GET /2015-03-31/functions/other-fn/invocations HTTP/1.1\nHost: x",
    "dot-dot and encoded slashes": "GET /..%2f..%2f2015-03-31%2Ffunctions%2Fother-fn%2Finvocations?Qualifier=evil HTTP/1.1\nHost: x",
    "absolute-form target": "GET http://evil.example/2015-03-31/functions/other-fn/invocations?Qualifier=2 HTTP/1.1\nHost: evil.example",
    "double slash authority-like path": "GET //evil.example/2015-03-31/functions/other-fn/invocations HTTP/1.1\nHost: x",
    "host and forwarding headers": (
        "GET /?FunctionName=other-fn HTTP/1.1\nHost: lambda.eu-west-1.amazonaws.com\n"
        "X-Forwarded-Host: evil.example\nX-Envoy-Original-Path: /2015-03-31/functions/other-fn/invocations\n"
        "X-Amz-Date: 20200101T000000Z\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\n"
        "X-Amz-Security-Token: client-token\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDCLIENT/x"
    ),
    "function name in headers": "GET / HTTP/1.1\nHost: x\nX-Amz-Function-Name: other-fn\nX-Amz-Qualifier: 7\nX-Amz-Invocation-Type: Event",
}


@pytest.mark.parametrize("payload", ["passthrough", "apigw_v2"])
def test_client_tricks_never_change_the_invoke(envoy_factory, standin, payload):
    envoy = start_standin_envoy(envoy_factory, standin, payload=payload)
    for name, head in TRICKS.items():
        standin.reset()
        status, answer = raw_request(envoy.listener_port, head + "\nConnection: close\n")
        if status == 400:  # Envoy itself refused the request line: nothing reached the filter
            assert not standin.requests, name
            continue
        assert status == 200, f"{name}: {answer[:400]!r}"
        [rec] = standin.wait_for_requests(1, 5.0)
        assert rec.verified, f"{name}: {rec.reason}"
        assert rec.path == INVOKE_PATH.format("echo-fn"), f"{name}: {rec.to_json()}"
        assert rec.query == "", f"{name}: client query reached the Invoke: {rec.query!r}"
        assert rec.header("host") == DEFAULT_ENDPOINT, f"{name}: {rec.headers}"
        assert rec.header("x-amz-invocation-type") == "RequestResponse", f"{name}: {rec.headers}"
        for header in ("x-forwarded-host", "x-amz-function-name", "x-amz-qualifier"):
            assert header not in rec.header_names(), f"{name}: {header} reached Lambda"
        # Upstream, the filter itself sets x-envoy-original-path (the client's real path, for
        # access logs); the client's own value never goes on.
        if "X-Envoy-Original-Path:" in head:
            assert rec.header("x-envoy-original-path") != "/2015-03-31/functions/other-fn/invocations", name
        if eh.default_placement() != "upstream":
            assert "x-envoy-original-path" not in rec.header_names(), name
        assert rec.header_all("x-amz-security-token") == [], f"{name}: {rec.headers}"
        [authorization] = rec.header_all("authorization")
        assert f"Credential={standin.access_key_id}/" in authorization, f"{name}: {authorization}"
        [date] = rec.header_all("x-amz-date")
        assert date != "20200101T000000Z", name


# --------------------------------------------------------------------------- obs-text
@pytest.mark.parametrize("payload", ["passthrough", "apigw_v2"])
def test_header_values_that_are_not_utf8_never_stop_the_vm(envoy_factory, standin, payload):
    """Bytes 0x80-0xFF are valid in HTTP header values (obs-text). The proxy-wasm SDK's
    header reads panicked on them, which stops the VM for every later request on the
    worker: in the client's headers (x-request-id is read for every request) and in
    Lambda's answer headers."""
    envoy = start_standin_envoy(envoy_factory, standin, payload=payload)
    standin.script(Answer(200, {"content-type": "application/json", "x-note": "caf\xe9"},
                          {"statusCode": 200, "body": "ok"} if payload != "passthrough" else b"ok"))
    head = ("GET /obs HTTP/1.1\nHost: x\nX-Request-Id: caf\xe9-1\nX-Note: na\xefve\n"
            "Connection: close\n")
    status, answer = raw_request(envoy.listener_port, head, encoding="latin-1")
    assert status == 200, answer[:400]
    [rec] = standin.wait_for_requests(1, 5.0)
    assert rec.verified, rec.reason
    # The VM is still serving.
    for _ in range(3):
        r = requests.post(envoy.url("/after"), json={"after": 1}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, show(r)
    assert "panic" not in envoy.log(), "the filter panicked"


# --------------------------------------------------------------------------- oversized requests
def test_oversized_header_sets_are_431_and_never_reach_lambda(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin)
    big = "GET / HTTP/1.1\nHost: x\nX-Big: " + "a" * (64 * 1024) + "\nConnection: close\n"
    status, _ = raw_request(envoy.listener_port, big)
    assert status == 431
    many = "GET / HTTP/1.1\nHost: x\n" + "".join(f"X-H{i}: v\n" for i in range(150)) + "Connection: close\n"
    status, _ = raw_request(envoy.listener_port, many)
    assert status == 431
    assert not standin.requests
    r = requests.post(envoy.url("/"), json={"after": 1}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)


def test_chunked_body_over_the_limit_is_413_without_buffering_it(envoy_factory, standin):
    envoy = start_standin_envoy(envoy_factory, standin)
    sent = 0

    def body():  # no content-length: the filter must stop on the buffered size
        nonlocal sent
        for _ in range(64):
            sent += MIB
            yield b"x" * MIB

    try:
        r = requests.post(envoy.url("/"), data=body(), timeout=HTTP_TIMEOUT,
                          headers={"content-type": "application/octet-stream"})
        status = r.status_code
        # The filter's JSON 413, or Envoy's own plain 413 when its buffer limit trips first.
        is_json = r.headers.get("content-type", "").startswith("application/json")
        error = r.json().get("error") if is_json else "payload_too_large"
    except requests.ConnectionError:
        status, error = None, None  # Envoy answered early and closed while we were sending
    assert status in (413, None), status
    if status == 413:
        assert error == "payload_too_large"
    assert sent < 64 * MIB, "the whole 64 MiB was accepted"
    assert not standin.requests
    r = requests.post(envoy.url("/"), json={"after": 1}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)


# --------------------------------------------------------------------------- secrets
def test_log_audit_finds_a_leak_and_honours_only_the_documented_exceptions():
    class FakeEnvoy:
        log_path = "fake.log"

        def __init__(self, text):
            self.text = text

        def log(self):
            return self.text

    audit = log_audit.Audit()
    audit.add_secret("secret access key", "SECRETKEY/0123456789")
    audit.add_secret("session token", "TOKEN0123456789abcdef", session_token=True)
    clean = (
        "[2026-11-23 10:00:00.000][1][debug][config] [listener_manager_impl.cc:113]   config: {\n"
        '  "secret_access_key": "SECRETKEY/0123456789"\n}\n'
        "[2026-11-23 10:00:00.001][1][debug][router] [router.cc:894] [Tags: x] router decoding headers:\n"
        "'x-amz-security-token', 'TOKEN0123456789abcdef'\n"
    )
    audit.envoys.append(FakeEnvoy(clean))
    assert audit.leaks() == []
    audit.envoys.append(FakeEnvoy(
        "[2026-11-23 10:00:00.002][1][info][wasm] [context.cc:1154] wasm log: key SECRETKEY/0123456789\n"
        "[2026-11-23 10:00:00.003][1][debug][http] [conn_manager_impl.cc:1] request headers complete:\n"
        "'x-amz-security-token', 'TOKEN0123456789abcdef'\n"
    ))
    leaks = audit.leaks()
    assert len(leaks) == 2 and "secret access key" in leaks[0] and "session token" in leaks[1], leaks


def _assume_role_envoy(envoy_factory, sts_proxy_factory, moto, setup, **kw):
    secrets = {
        "AWS_ACCESS_KEY_ID": setup.assumer.access_key_id,
        "AWS_SECRET_ACCESS_KEY": setup.assumer.secret_access_key,
        "LAMBDA_EXTERNAL_ID": setup.external_id,
    }
    sts = sts_proxy_factory()
    envoy = start_envoy(
        envoy_factory, sts, moto.port,
        assume_role_config(setup, source=None, external_id_env="LAMBDA_EXTERNAL_ID"),
        routes=[("/bad-route", "lambda", None, {"timeout_ms": -1}),
                ("/", "lambda")],
        host_env_keys=list(secrets), process_env=secrets, log_level="trace", **kw,
    )
    return envoy, sts


def _exercise(envoy) -> list[str]:
    """A success and an error; returns what the client and the admin interface showed."""
    shown = []
    r, _, _ = post(envoy, {"ok": 1})
    assert r.status_code == 200, show(r)
    for path, status in (("/bad-route", 500),):
        r = requests.post(envoy.url(path), json={}, timeout=HTTP_TIMEOUT)
        assert r.status_code == status, show(r)
        shown.append(str(r.headers) + r.text)
    for page in ("/stats", "/stats/prometheus"):
        shown.append(requests.get(envoy.admin_url + page, timeout=HTTP_TIMEOUT).text)
    return shown


def test_nothing_secret_anywhere_at_trace_with_router_and_config_at_info(
        envoy_factory, sts_proxy_factory, moto, assume_role_aws):
    setup = assume_role_aws
    envoy, sts = _assume_role_envoy(
        envoy_factory, sts_proxy_factory, moto, setup,
        extra_args=["--component-log-level", "router:info,config:info"],
    )
    shown = _exercise(envoy)
    [call] = sts.calls
    envoy.stop()
    log = envoy.log()
    assert "[trace]" in log, "Envoy did not log at trace level"
    never = {
        "ExternalId": setup.external_id,
        "source secret access key": setup.assumer.secret_access_key,
        "temporary secret access key": call.secret_access_key,
        "session token": call.session_token,
    }
    for what, value in never.items():
        assert value and len(value) >= 12, what
        assert value not in log, f"{what} in Envoy's log: " + next(
            e for e in log_audit.log_entries(log) if value in e)[:300]
        for text in shown:
            assert value not in text, f"{what} in an error body or stats page"


def test_at_full_trace_only_envoys_router_header_dump_shows_the_session_token(
        envoy_factory, sts_proxy_factory, moto, assume_role_aws):
    setup = assume_role_aws
    envoy, sts = _assume_role_envoy(envoy_factory, sts_proxy_factory, moto, setup)
    _exercise(envoy)
    [call] = sts.calls
    envoy.stop()
    entries = log_audit.log_entries(envoy.log())
    assert any("[trace]" in e for e in entries), "Envoy did not log at trace level"
    with_token = [e for e in entries if call.session_token in e]
    if eh.default_placement() == "upstream":
        # Upstream, the router dumps the client's request before the filter rewrites it,
        # and nothing prints the rewritten Invoke: the token appears nowhere.
        assert not with_token, with_token[0][:300]
    else:
        assert with_token, "expected Envoy's router to print the Invoke headers at trace level"
        assert all(log_audit.is_router_header_dump(e) for e in with_token), with_token[0][:300]
    for value in (setup.external_id, setup.assumer.secret_access_key, call.secret_access_key):
        assert not [e for e in entries if value in e]
