"""The examples answer what their READMEs say: each example's own envoy.yaml (ports and the
.wasm path swapped for free ones), real Envoy 1.40 and the built filter, against the local
Lambda its README uses.

- examples/dispatcher: handler.py run by the local runtime (examples/dispatcher/local_lambda.py's
  default), signatures checked with botocore;
- examples/fire-and-forget: moto with IAM auth on (tests/integration/moto_aws.py).

Run: .venv/bin/python -m pytest -q tests/test_examples.py   (part of `make validate-configs`)
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "examples" / "dispatcher"))

WASM = Path(os.environ.get("LAMBDA_WASM", ROOT / "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm"))
ENVOY = os.environ.get("ENVOY_BIN") or str(Path(sys.executable).parent / "envoy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ExampleEnvoy:
    def __init__(self, example: str, lambda_port: int, env: dict[str, str]):
        self.listener, self.admin = free_port(), free_port()
        text = (ROOT / "examples" / example / "envoy.yaml").read_text()
        text = (text.replace("port_value: 10000", f"port_value: {self.listener}")
                .replace("port_value: 9901", f"port_value: {self.admin}")
                .replace("port_value: 5000", f"port_value: {lambda_port}")
                .replace("filename: target/wasm32-wasip1/release/proxy_wasm_lambda.wasm", f"filename: {WASM}"))
        self.dir = Path(tempfile.mkdtemp(prefix=f"example-{example}-"))
        (self.dir / "envoy.yaml").write_text(text)
        self.log = open(self.dir / "envoy.log", "w")
        self.proc = subprocess.Popen(
            [ENVOY, "-c", str(self.dir / "envoy.yaml"), "--disable-hot-restart", "--concurrency", "1",
             "--base-id", str(os.getpid() % 10000 + 7000), "-l", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, **env), cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.dir / "envoy.log").read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{self.admin}/ready", timeout=1).text.strip() == "LIVE":
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("Envoy did not become ready")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.listener}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(autouse=True)
def built():
    if not WASM.exists():
        pytest.skip(f"{WASM} not built (make wasm)")


def test_dispatcher_with_handler():
    import handler
    import lambda_runtime

    runtime = lambda_runtime.LambdaRuntime(0, functions={"dispatcher": handler.lambda_handler}).start()
    envoy = ExampleEnvoy("dispatcher", runtime.port, {"AWS_ACCESS_KEY_ID": runtime.access_key_id,
                                                      "AWS_SECRET_ACCESS_KEY": runtime.secret_access_key})
    try:
        r = requests.get(envoy.url("/resources"), timeout=10)
        assert r.status_code == 200 and r.json() == {
            "action": "list-resources", "tenant": "acme", "resources": [
                {"name": "builds", "owner": "platform", "users": []},
                {"name": "reports", "owner": "finance", "users": ["alice"]}]}
        r = requests.post(envoy.url("/access"), json={"user": "bob", "resource": "builds"}, timeout=10)
        assert r.status_code == 200
        assert r.json() == {"action": "grant-access", "tenant": "acme", "granted": {"user": "bob", "resource": "builds"}}
        r = requests.delete(envoy.url("/access?user=alice&resource=reports"), timeout=10)
        assert r.status_code == 200 and r.json()["revoked"] == {"user": "alice", "resource": "reports"}
        r = requests.delete(envoy.url("/access?user=alice&resource=reports"), timeout=10)
        assert r.status_code == 404 and r.json()["error"] == "alice has no access to reports"
        r = requests.post(envoy.url("/access"), json={"user": "bob", "resource": "nope"}, timeout=10)
        assert r.status_code == 502
        assert r.json()["error"] == "function_error" and r.json()["message"] == "need 'user' and a known 'resource'"
        # The client cannot choose the action: the route's custom_parameters replace its own.
        r = requests.post(envoy.url("/access"), timeout=10,
                          json={"user": "bob", "resource": "builds", "custom_parameters": {"action": "revoke-access"}})
        assert r.status_code == 200 and r.json()["action"] == "grant-access"
        r = requests.put(envoy.url("/access"), timeout=10)
        assert r.status_code == 404 and r.json() == {"error": "no such operation"}
        # What the function received: stage variables (apigw_v2) and the merged body (passthrough).
        events = [rec.body for rec in runtime.requests]
        assert all(rec.verified for rec in runtime.requests)
        assert b'"stageVariables":{"action":"list-resources","tenant":"acme"}' in events[0]
        assert json.loads(events[1]) == {"user": "bob", "resource": "builds",
                                         "custom_parameters": {"action": "grant-access", "tenant": "acme"}}
        assert len(events) == 6  # the PUT never reached Lambda
    finally:
        envoy.stop()
        runtime.stop()


def test_fire_and_forget_with_moto():
    import moto_aws

    aws = moto_aws.start_moto()
    envoy = None
    try:
        envoy = ExampleEnvoy("fire-and-forget", aws.port, {"AWS_ACCESS_KEY_ID": aws.invoker.access_key_id,
                                                           "AWS_SECRET_ACCESS_KEY": aws.invoker.secret_access_key})
        r = requests.post(envoy.url("/events"), json={"event": "user.signed_up", "user": "bob"}, timeout=10)
        assert (r.status_code, r.content) == (202, b"")
        r = requests.post(envoy.url("/events/check"), data="{}", timeout=10)
        assert (r.status_code, r.content) == (204, b"")
        r = requests.post(envoy.url("/sync"), json={"event": "user.signed_up", "user": "bob"}, timeout=10)
        assert r.status_code == 200 and r.json() == {"event": "user.signed_up", "user": "bob"}
        r = requests.post(envoy.url("/events"), data=b"x" * 1048577, timeout=10,
                          headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
        assert "1048576" in r.json()["message"]
        log = aws.log_text()
        assert '/2015-03-31/functions/echo-fn/invocations HTTP/1.1' in log
        statuses = [line.rsplit('"', 1)[-1].split()[0] for line in log.splitlines() if "functions/echo-fn/invocations" in line]
        assert statuses == ["202", "204", "200"], statuses  # the 1 MB body never reached Lambda
    finally:
        if envoy is not None:
            envoy.stop()
        aws.stop()


def test_streaming_with_the_streaming_standin():
    import streaming_standin

    standin = streaming_standin.StreamingStandIn()
    standin.echo_line_delay_s = 0.5
    standin.start()
    envoy = ExampleEnvoy("streaming", standin.port, {"AWS_ACCESS_KEY_ID": standin.access_key_id,
                                                     "AWS_SECRET_ACCESS_KEY": standin.secret_access_key})
    try:
        # As `curl -N`: each line arrives when the function writes it, not all at the end.
        t0 = time.monotonic()
        with requests.post(envoy.url("/tokens"), data=b"one\ntwo\nthree\n", stream=True, timeout=10) as r:
            assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
            arrivals = [(time.monotonic() - t0, piece) for piece in r.iter_content(chunk_size=None)]
        assert b"".join(p for _, p in arrivals) == b"one\ntwo\nthree\n"
        assert arrivals[0][1].startswith(b"one") and arrivals[-1][0] - arrivals[0][0] >= 0.8, arrivals
        r = requests.post(envoy.url("/buffered"), data=b"one\ntwo\n", timeout=10)
        assert (r.status_code, r.content) == (200, b"one\ntwo\n")
        paths = [rec.path for rec in standin.requests]
        assert paths == ["/2021-11-15/functions/streamer/response-streaming-invocations",
                         "/2015-03-31/functions/streamer/invocations"], paths
        assert all(rec.verified for rec in standin.requests)
    finally:
        envoy.stop()
        standin.stop()
