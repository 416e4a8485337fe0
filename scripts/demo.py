#!/usr/bin/env python3
"""`make demo`: moto as local AWS (IAM auth on), Envoy 1.40 with envoy/local.yaml and the
filter, a few real requests through it, then everything is stopped.

Ports are taken from envoy/local.yaml (listener 10000, admin 9901, Lambda 5000) unless they
are busy, in which case free ones are used."""
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import moto_aws  # noqa: E402

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


def main() -> int:
    listener, admin, lambda_port = port_or_free(10000), port_or_free(9901), port_or_free(5000)
    wasm = os.environ.get("LAMBDA_WASM", str(ROOT / "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm"))
    print(f"{DIM}starting moto (local AWS, IAM auth on) on 127.0.0.1:{lambda_port} …{RESET}")
    aws = moto_aws.start_moto(port=lambda_port)
    envoy = None
    try:
        proxy_keys = create_role_setup(aws)
        print(f"{DIM}IAM: user 'demo-proxy' may only sts:AssumeRole; role 'demo-lambda-invoker' trusts it "
              f"with ExternalId {EXTERNAL_ID!r} and may lambda:Invoke; function echo-fn returns its event{RESET}")
        config = (ROOT / "envoy/local.yaml").read_text()
        config = (
            config.replace("port_value: 10000", f"port_value: {listener}")
            .replace("port_value: 9901", f"port_value: {admin}")
            .replace("port_value: 5000", f"port_value: {lambda_port}")
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
        print(f"{BOLD}# The filter's log lines (no secret or ExternalId in them){RESET}")
        for line in (workdir / "envoy.log").read_text().splitlines():
            if "proxy_wasm_lambda:" in line and ("AssumeRole" in line or "request_id=" in line):
                print("  " + line.split("proxy_wasm_lambda: ", 1)[-1])
        print()
        return 0
    finally:
        if envoy is not None:
            envoy.terminate()
            try:
                envoy.wait(5)
            except subprocess.TimeoutExpired:
                envoy.kill()
        aws.stop()
        print(f"{DIM}stopped Envoy and moto{RESET}")


if __name__ == "__main__":
    sys.exit(main())
