#!/usr/bin/env python3
"""`make demo`: moto as local AWS (IAM auth on), Envoy 1.40 with envoy/local.yaml and the
filter, a few real requests through it, then everything is stopped.

Besides moto, a second backend: the Lambda stand-in of the tests
(tests/integration/lambda_standin.py), which verifies each Invoke's signature with the keys of
local.yaml's credentials profile "standin", and is scripted to answer with a function error
(moto without Docker cannot raise one). At the end, the filter's stats from Envoy's admin
interface.

Ports are taken from envoy/local.yaml (listener 10000, admin 9901, Lambda 5000, stand-in 5001)
unless they are busy, in which case free ones are used."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import moto_aws  # noqa: E402
from lambda_standin import Answer, StandIn  # noqa: E402

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def port_or_free(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def envoy_binary() -> str:
    return os.environ.get("ENVOY_BIN") or str(Path(sys.executable).parent / "envoy")


def show(method: str, url: str, **kwargs) -> None:
    body = kwargs.get("data") or (json.dumps(kwargs["json"]) if "json" in kwargs else "")
    if len(body) > 120:
        body = f"<{len(body)} bytes>"
    print(f"{BOLD}> {method} {url}{RESET}" + (f"  {body}" if body else ""))
    r = requests.request(method, url, timeout=15, **kwargs)
    print(f"< {r.status_code} {r.reason}")
    for name in ("content-type", "retry-after"):
        if name in r.headers:
            print(f"< {name}: {r.headers[name]}")
    if r.content:
        print(f"< {r.text}")
    print()


EXTERNAL_ID = "demo-external-id-7f3a"
ROLE = "demo-lambda-invoker"


def create_role_setup(aws) -> dict:
    """A proxy user that may only assume the role; the role requires the ExternalId and may invoke."""
    iam = aws.client("iam")
    iam.create_user(UserName="demo-proxy")
    iam.put_user_policy(UserName="demo-proxy", PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    keys = iam.create_access_key(UserName="demo-proxy")["AccessKey"]
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow",
                       "Principal": {"AWS": f"arn:aws:iam::{aws.account_id}:user/demo-proxy"},
                       "Action": "sts:AssumeRole",
                       "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]}))
    iam.put_role_policy(RoleName=ROLE, PolicyName="invoke", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["lambda:Invoke", "lambda:InvokeFunction"],
                       "Resource": "*"}]}))
    return keys


def plugin_configuration(config: str) -> dict:
    """The filter's plugin configuration in an Envoy bootstrap (the one wasm filter's)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("name") == "proxy_wasm_lambda" and "configuration" in node:
                found.append(json.loads(node["configuration"]["value"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load(config))
    (plugin,) = found
    return plugin


# What Lambda answers when the function raised (X-Amz-Function-Error), as the stand-in plays it.
FUNCTION_ERROR = Answer(
    200,
    {"content-type": "application/json", "X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"},
    {"errorMessage": "flaky-fn gave up", "errorType": "RuntimeError"},
)


def show_event(url: str, **kwargs) -> None:
    """A request whose route sends it as an apigw_v2 event to echo-fn, which returns its event:
    the event, briefly."""
    print(f"{BOLD}> POST {url}{RESET}  {json.dumps(kwargs.get('json'))}")
    r = requests.post(url, timeout=15, **kwargs)
    print(f"< {r.status_code} {r.reason}")
    try:
        event = r.json()
    except ValueError:
        print(f"< {r.text}\n")
        return
    brief = {k: event.get(k) for k in ("version", "routeKey", "rawPath", "rawQueryString", "queryStringParameters",
                                       "cookies", "body", "isBase64Encoded") if k in event}
    http = (event.get("requestContext") or {}).get("http") or {}
    brief["requestContext.http"] = {k: http.get(k) for k in ("method", "path", "sourceIp") if k in http}
    brief["headers"] = f"{len(event.get('headers') or {})} ({', '.join(sorted(event.get('headers') or {})[:6])}, …)"
    print("< the event echo-fn received (some of its fields):")
    for k, v in brief.items():
        print(f"    {k}: {json.dumps(v) if not isinstance(v, str) or k == 'body' else v}")
    print()


def show_stats(admin_url: str) -> None:
    r = requests.get(f"{admin_url}/stats", params={"filter": "proxy_wasm_lambda"}, timeout=5)
    counters = []
    for line in r.text.splitlines():
        name, sep, value = line.partition(": ")
        if sep and value.strip().isdigit() and int(value) != 0:
            counters.append((name, int(value)))
    print(f"{BOLD}> GET {admin_url}/stats?filter=proxy_wasm_lambda{RESET}  (non-zero only)")
    for name, value in counters:
        print(f"  {name}: {value}")
    prom = requests.get(f"{admin_url}/stats/prometheus", timeout=5).text.splitlines()
    labelled = [line for line in prom if line.startswith("proxy_wasm_lambda_") and 'function="' in line]
    print(f"{BOLD}> GET {admin_url}/stats/prometheus{RESET}  (one of its {len(labelled)} samples with a function label)")
    if labelled:
        print("  " + next((x for x in labelled if 'class="function_error"' in x), labelled[0]))
    print()


def main() -> int:
    listener, admin, lambda_port = port_or_free(10000), port_or_free(9901), port_or_free(5000)
    standin_port = port_or_free(5001)
    wasm = os.environ.get("LAMBDA_WASM", str(ROOT / "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm"))
    print(f"{DIM}starting moto (local AWS, IAM auth on) on 127.0.0.1:{lambda_port} …{RESET}")
    aws = moto_aws.start_moto(port=lambda_port)
    envoy = standin = None
    try:
        proxy_keys = create_role_setup(aws)
        print(f"{DIM}IAM: user 'demo-proxy' may only sts:AssumeRole; role 'demo-lambda-invoker' trusts it "
              f"with ExternalId {EXTERNAL_ID!r} and may lambda:Invoke; function echo-fn returns its event{RESET}")
        config = (ROOT / "envoy/local.yaml").read_text()
        # The stand-in knows the keys of the credentials profile the route /flaky names.
        profile = plugin_configuration(config)["credential_profiles"]["standin"]
        standin = StandIn(port=standin_port, keys={profile["access_key_id"]: profile["secret_access_key"]}).start()
        print(f"{DIM}starting the Lambda stand-in (signature-checking, credentials profile 'standin') on "
              f"127.0.0.1:{standin.port} …{RESET}")
        config = (
            config.replace("port_value: 10000", f"port_value: {listener}")
            .replace("port_value: 9901", f"port_value: {admin}")
            .replace("port_value: 5000", f"port_value: {lambda_port}")
            .replace("port_value: 5001", f"port_value: {standin.port}")
            .replace("role/demo-lambda-invoker", f"role/{ROLE}").replace("123456789012", aws.account_id)
            .replace("target/wasm32-wasip1/release/proxy_wasm_lambda.wasm", wasm)
        )
        workdir = Path(tempfile.mkdtemp(prefix="pwl-demo-"))
        (workdir / "envoy.yaml").write_text(config)
        log = open(workdir / "envoy.log", "w")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=proxy_keys["AccessKeyId"],
                   AWS_SECRET_ACCESS_KEY=proxy_keys["SecretAccessKey"], LAMBDA_EXTERNAL_ID=EXTERNAL_ID)
        print(f"{DIM}starting Envoy 1.40 with envoy/local.yaml on 127.0.0.1:{listener} …{RESET}\n")
        envoy = subprocess.Popen(
            [envoy_binary(), "-c", str(workdir / "envoy.yaml"), "--disable-hot-restart",
             "--concurrency", "1", "-l", "info", "--component-log-level", "config:info"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{admin}/ready", timeout=1).text.strip() == "LIVE":
                    break
            except requests.RequestException:
                pass
            if envoy.poll() is not None:
                print((workdir / "envoy.log").read_text()[-3000:])
                return 1
            time.sleep(0.2)
        base = f"http://127.0.0.1:{listener}"
        print(f"{BOLD}# RequestResponse: the body is the event, echo-fn's answer is the response{RESET}")
        show("POST", f"{base}/orders", json={"order": 42, "items": ["tea", "cake"]})
        print(f"{BOLD}# Event (route metadata invocation_type: Event): fire and forget{RESET}")
        show("POST", f"{base}/event", json={"audit": "login"})
        print(f"{BOLD}# DryRun (route metadata): checks permission and parameters only{RESET}")
        show("POST", f"{base}/dry-run", json={})
        print(f"{BOLD}# Over Lambda's 6 MB limit: refused before any Invoke{RESET}")
        show("POST", f"{base}/orders", data=b"x" * (6 * 1024 * 1024 + 1),
             headers={"content-type": "application/json"})
        print(f"{BOLD}# Client credentials and x-amz-* headers never reach Lambda; the filter signs its own{RESET}")
        show("POST", f"{base}/orders", json={"order": 43},
             headers={"authorization": "Bearer client-token", "x-amz-invocation-type": "Event"})
        print(f"{BOLD}# Event format (route metadata payload: apigw_v2): the request becomes an API Gateway "
              f"HTTP API event; echo-fn returns it, an answer without statusCode, so it is the 200 body{RESET}")
        show_event(f"{base}/api/orders?page=2&sort=desc", json={"order": 44},
                   headers={"cookie": "session=abc; theme=dark"})
        print(f"{BOLD}# Another backend and credentials profile (route /flaky: function flaky-fn, cluster standin, "
              f"credentials standin); the function raises: X-Amz-Function-Error becomes a 502{RESET}")
        standin.script(FUNCTION_ERROR)
        show("POST", f"{base}/flaky", json={"attempt": 1})
        for rec in standin.requests:
            print(f"{DIM}  the stand-in got {rec.method} {rec.path}, signed by {rec.access_key_id} "
                  f"({'signature verified' if rec.verified else 'BAD SIGNATURE: ' + rec.reason}){RESET}")
        print()
        print(f"{BOLD}# The filter's log lines (no secret or ExternalId in them){RESET}")
        for line in (workdir / "envoy.log").read_text().splitlines():
            if "proxy_wasm_lambda:" in line and ("AssumeRole" in line or "request_id=" in line):
                print("  " + line.split("proxy_wasm_lambda: ", 1)[-1])
        print()
        print(f"{BOLD}# The filter's stats (function, class and credentials profile in the names; labels in "
              f"Prometheus){RESET}")
        show_stats(f"http://127.0.0.1:{admin}")
        if not all(rec.verified for rec in standin.requests):
            print("the stand-in refused a signature")
            return 1
        return 0
    finally:
        if envoy is not None:
            envoy.terminate()
            try:
                envoy.wait(5)
            except subprocess.TimeoutExpired:
                envoy.kill()
        aws.stop()
        if standin is not None:
            standin.stop()
        print(f"{DIM}stopped Envoy, moto and the stand-in{RESET}")


if __name__ == "__main__":
    sys.exit(main())
