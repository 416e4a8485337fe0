#!/usr/bin/env python3
"""`make soak`: steady load through Envoy (--concurrency 2) + proxy_wasm_lambda to moto with IAM
auth on, credentials from STS AssumeRole with an ExternalId, rotating about every minute.

moto checks every Invoke's SigV4 signature and session token and the role's permission, and
the AssumeRole's signature, trust policy and ExternalId. The STS stand-in between Envoy and moto
(tests/integration/sts_proxy.py) records the AssumeRole calls and shortens the credentials'
lifetime as the filter sees it (moto's minimum is 900 s), so the filter refreshes them about
every `lifetime / 2` seconds.

Prints requests, failures (must be 0), AssumeRole calls and Envoy's RSS at start and end;
exits non-zero on any failed request or AssumeRole, or when credentials did not rotate.

Environment: SOAK_SECONDS (600), SOAK_CREDENTIAL_LIFETIME (120: a refresh about every minute),
SOAK_CLIENTS (4 concurrent keep-alive clients), LAMBDA_WASM, ENVOY_BIN, MOTO_SERVER.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import envoy_harness as eh  # noqa: E402
import moto_aws  # noqa: E402
import sts_proxy as sp  # noqa: E402

REGION = "us-east-1"
EXTERNAL_ID = "soak-external-id/0042"
REQUEST_TIMEOUT = 15.0
REPORT_EVERY = 10.0


@dataclass
class SoakResult:
    seconds: float
    requests: int = 0
    failures: int = 0
    failure_examples: list[str] = field(default_factory=list)
    assume_roles: int = 0
    assume_role_failures: int = 0
    rss_start_kib: int = 0
    rss_end_kib: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def plugin_config(setup: moto_aws.AssumeRoleSetup) -> dict:
    return {
        "function": "echo-fn",
        "region": REGION,
        "endpoint": f"lambda.{REGION}.amazonaws.com",
        "timeout_ms": 10000,
        "credentials": {"assume_role": {
            "role_arn": setup.role_arn,
            "external_id_env": "LAMBDA_EXTERNAL_ID",
            "session_name": "proxy-wasm-lambda-soak",
            "duration_seconds": 900,
            "sts_cluster": "sts",
            "sts_endpoint": f"sts.{REGION}.amazonaws.com",
        }},
    }


def run_soak(seconds: float, credential_lifetime: float, clients: int, wasm: str,
             log=print) -> SoakResult:
    moto = moto_aws.start_moto()
    sts = envoy = None
    try:
        setup = moto_aws.create_assume_role_setup(moto, EXTERNAL_ID)
        sts = sp.StsProxy(moto.port).start()
        sts.set_rewrite_expiration(credential_lifetime)
        secrets = {
            "AWS_ACCESS_KEY_ID": setup.assumer.access_key_id,
            "AWS_SECRET_ACCESS_KEY": setup.assumer.secret_access_key,
            "LAMBDA_EXTERNAL_ID": setup.external_id,
        }
        cfg = eh.EnvoyConfig(
            plugin_config=plugin_config(setup),
            routes=[eh.Route("/", "lambda", 15)],
            clusters={"lambda": ("127.0.0.1", moto.port), "sts": ("127.0.0.1", sts.port)},
            wasm_path=wasm,
            host_env_keys=list(secrets),
            concurrency=2,
        )
        envoy = eh.Envoy(cfg, process_env=secrets).start()
        pid = envoy.proc.pid
        result = SoakResult(seconds=seconds, rss_start_kib=rss_kib(pid))
        lock = threading.Lock()
        started = time.monotonic()
        stop_at = started + seconds

        def client(c: int) -> None:
            with requests.Session() as session:
                i = 0
                while time.monotonic() < stop_at:
                    payload = {"client": c, "i": i}
                    try:
                        r = session.post(envoy.url("/"), json=payload, timeout=REQUEST_TIMEOUT)
                        ok = r.status_code == 200 and r.json() == payload
                        detail = f"HTTP {r.status_code} {r.text[:200]!r}"
                    except (requests.RequestException, ValueError) as e:
                        ok, detail = False, repr(e)
                    with lock:
                        result.requests += 1
                        if not ok:
                            result.failures += 1
                            if len(result.failure_examples) < 5:
                                result.failure_examples.append(detail)
                    i += 1

        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
        for t in threads:
            t.start()
        next_report = started + REPORT_EVERY
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            if time.monotonic() >= next_report:
                next_report += REPORT_EVERY
                with lock:
                    log(f"  {time.monotonic() - started:6.0f} s  requests {result.requests:7d}  "
                        f"failures {result.failures}  AssumeRole {len(sts.assume_roles)}  "
                        f"Envoy RSS {rss_kib(pid) / 1024:.1f} MiB")
        for t in threads:
            t.join(timeout=REQUEST_TIMEOUT + 5)
        result.seconds = time.monotonic() - started
        result.rss_end_kib = rss_kib(pid)
        calls = sts.assume_roles
        result.assume_roles = len(calls)
        result.assume_role_failures = sum(1 for c in calls if not c.ok)
        return result
    finally:
        if envoy is not None:
            envoy.stop()
        if sts is not None:
            sts.stop()
        moto.stop()


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", 600))
    lifetime = float(os.environ.get("SOAK_CREDENTIAL_LIFETIME", 120))
    clients = int(os.environ.get("SOAK_CLIENTS", 4))
    wasm = os.environ.get("LAMBDA_WASM") or str(ROOT / "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm")
    print(f"soak: {seconds:.0f} s, {clients} clients, Envoy --concurrency 2 -> moto (IAM auth on), "
          f"credentials rotating every ~{lifetime / 2:.0f} s")
    r = run_soak(seconds, lifetime, clients, wasm)
    expected_rotations = int(r.seconds // (lifetime / 2))
    print(f"\nrequests          {r.requests} ({r.rps:.0f}/s over {r.seconds:.0f} s)")
    print(f"failures          {r.failures}" + "".join(f"\n  e.g. {e}" for e in r.failure_examples))
    print(f"AssumeRole calls  {r.assume_roles} ({r.assume_role_failures} failed; ~{expected_rotations + 1} expected)")
    print(f"Envoy RSS         {r.rss_start_kib / 1024:.1f} MiB at start, {r.rss_end_kib / 1024:.1f} MiB at end")
    ok = r.failures == 0 and r.assume_role_failures == 0 and r.assume_roles >= 2 and r.requests > 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
