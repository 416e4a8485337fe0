#!/usr/bin/env python3
"""`make bench`: CPU cost per request of proxy_wasm_lambda against Envoy's native aws_lambda
filter, a no-op Wasm filter and a plain proxy hop, side by side in one Envoy.

Two Envoy 1.40 processes on 127.0.0.1:
- the *measuring* Envoy (`--concurrency 1`) holds one listener per variant under test:
    a       plain proxy hop (router only) to the fake Lambda
    b       no-op proxy-wasm filter (bench/noop-filter) in front of the router
    c-pt    native envoy.filters.http.aws_lambda, payload_passthrough: true
    c-json  native envoy.filters.http.aws_lambda, payload_passthrough: false
    d-pt    proxy_wasm_lambda in the HCM (dispatches the Invoke), "payload": "passthrough"
    d-v2    proxy_wasm_lambda in the HCM, "payload": "apigw_v2"
    b-up    the no-op filter in the router's upstream_http_filters
    e-pt    proxy_wasm_lambda upstream (rewrites the request in place), passthrough
    e-v2    proxy_wasm_lambda upstream, apigw_v2
    f-v2    proxy_wasm_lambda in both chains with "split_placement", apigw_v2
    g-floor the baseline filter's `floor` mode upstream (bench/noop-filter): the host calls and
            buffering of an in-place Invoke with nothing computed (no hash, no signature)
    p-NAME  the floor plus one host call NAME repeated BENCH_PROBE_REPS times per request
            (bench/noop-filter `PROBES`, e.g. p-ansmapset): with g-floor in the same run, the
            table prints (p-NAME − g-floor) ÷ reps, the price of one such call. Not in the
            default set; name them with --listeners.
    g-mimic the baseline filter's `mimic` mode upstream: the host calls e-pt makes on a GET, in
            its order and with its data, nothing computed. e-pt − g-mimic is ours' work in the
            VM; g-mimic − g-floor its extra host calls in place. g-mimic-del: the same with the
            answer's headers edited one by one instead of replaced. GET only (--cases get); not
            in the default set.
- the *fake Lambda* Envoy answers a fixed API-Gateway-style proxy response with
  `direct_response`, after reading the whole request body (buffer filter). Its `invoke`
  listener (used by c/d/e/f) answers 200 only to a SigV4-signed `POST /2015-03-31/functions/…/invocations`
  for Host lambda.us-east-1.amazonaws.com, and 404 to anything else, so a listener that does not
  really invoke fails the pre-check.

wrk (16 connections, 1 thread by default) loads each listener for BENCH_SECONDS; listeners are
interleaved within each case and round, for BENCH_ROUNDS rounds. The primary figure is the
measuring Envoy's CPU time (utime+stime from /proc/PID/stat) per completed request; rps and p99
latency are reported beside it. Figures are medians over rounds.

Options: --listeners a,d-v2  --cases get,post1k  --json FILE  --rss-soak N  --keep (workdir).
Environment: BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_WARMUP (1 s per listener and case),
BENCH_CONNECTIONS (16), BENCH_THREADS (1), BENCH_PROBE_REPS (20), BENCH_PIN (0: no pinning; 1: measuring Envoy alone
on the last CPU, wrk and the fake Lambda on the others — on a shared 2-CPU machine it did not
reduce the spread of CPU/req, and it lowers rps), ENVOY_BIN, LAMBDA_WASM.
Extra arguments through make: `make bench BENCH_ARGS="--listeners a,d-v2 --cases get"`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOOP_CRATE = ROOT / "bench" / "noop-filter"
NOOP_WASM = NOOP_CRATE / "target" / "wasm32-wasip1" / "release" / "noop_filter.wasm"
WRK_SCRIPT = ROOT / "bench" / "wrk.lua"

MIB = 1024 * 1024
BUFFER_LIMIT = 8 * MIB  # per_connection_buffer_limit_bytes, everywhere
FAKE_MAX_REQUEST = 16 * MIB  # fake Lambda's buffer filter: a base64'd 6 MiB event is ~8.4 MB
LAMBDA_LIMIT = 6 * MIB  # Lambda's synchronous payload limit (what our filter enforces)

REGION = "us-east-1"
LAMBDA_HOST = f"lambda.{REGION}.amazonaws.com"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:bench"
CREDENTIALS = {"access_key_id": "AKIDBENCHEXAMPLE", "secret_access_key": "bench/secret/key/EXAMPLE"}

# What the fake Lambda answers: an API Gateway proxy response, as raw Invoke payload.
LAMBDA_ANSWER = {"statusCode": 200, "headers": {"content-type": "application/json"},
                 "body": "{\"ok\":true}"}
RAW = LAMBDA_ANSWER  # plain/noop/passthrough listeners return the payload unchanged
DECODED = {"ok": True}  # event-mode listeners decode the proxy response

CASES = {"get": 0, "post1k": 1024, "post256k": 256 * 1024}
CLK_TCK = os.sysconf("SC_CLK_TCK")

T = "type.googleapis.com/envoy.extensions."
HCM_TYPE = T + "filters.network.http_connection_manager.v3.HttpConnectionManager"


@dataclass(frozen=True)
class Listener:
    key: str
    title: str
    kind: str  # plain | noop | floor | mimic | probe | native | ours
    mode: str  # payload mode for native/ours: passthrough | json | apigw_v2
    expect: dict  # decoded JSON body a GET must get
    upstream: bool = False  # the Wasm filter in the router's upstream_http_filters
    split: bool = False  # ...and in the HCM too, with split_placement on

    @property
    def vm_id(self) -> str | None:
        where = "_split" if self.split else "_up" if self.upstream else ""
        if self.kind in ("mimic", "probe"):
            return f"bench_{self.key.replace('-', '_')}"
        return {"noop": f"bench_noop{where}", "floor": f"bench_floor{where}",
                "ours": f"bench_ours_{self.mode}{where}"}.get(self.kind)

    @property
    def on_fake_lambda(self) -> bool:
        """Sends a signed-looking Invoke, so routed to the fake Lambda's invoke listener."""
        return self.kind in ("native", "ours", "floor", "mimic", "probe")


LISTENERS = [
    Listener("a", "plain hop (router only)", "plain", "", RAW),
    Listener("b", "no-op proxy-wasm filter", "noop", "", RAW),
    Listener("c-pt", "native aws_lambda, passthrough", "native", "passthrough", RAW),
    Listener("c-json", "native aws_lambda, JSON mode", "native", "json", DECODED),
    Listener("d-pt", "ours, passthrough", "ours", "passthrough", RAW),
    Listener("d-v2", "ours, apigw_v2", "ours", "apigw_v2", DECODED),
    Listener("b-up", "no-op proxy-wasm filter, upstream", "noop", "", RAW, upstream=True),
    Listener("e-pt", "ours upstream, passthrough", "ours", "passthrough", RAW, upstream=True),
    Listener("e-v2", "ours upstream, apigw_v2", "ours", "apigw_v2", DECODED, upstream=True),
    Listener("f-v2", "ours split (both chains), apigw_v2", "ours", "apigw_v2", DECODED,
             upstream=True, split=True),
    Listener("g-floor", "floor of an in-place Invoke (nothing computed), upstream", "floor",
             "passthrough", RAW, upstream=True),
]
# Ours' host calls on an upstream passthrough GET, nothing computed (bench/noop-filter `mimic`).
# Not in the default set: with e-pt and g-floor it splits ours − floor into host calls and VM.
# Listener -> the baseline filter's configuration.
MIMIC_MODES = {"g-mimic": "mimic", "g-mimic-del": "mimic+del"}
MIMIC = [Listener("g-mimic", "ours' host calls, nothing computed, upstream", "mimic",
                  "passthrough", RAW, upstream=True),
         Listener("g-mimic-del", "g-mimic, answer headers edited one by one", "mimic",
                  "passthrough", RAW, upstream=True)]
# The host calls bench/noop-filter can price (its `PROBES`), each a listener of its own.
PROBES = ["reqmapget", "reqmapset", "reqhdrget", "reqhdrset", "ansmapget", "ansmapset",
          "anshdrset", "anshdrdel", "routemd", "upstream", "cluster", "state", "clock",
          "counter", "histogram"]
PROBE_REPS = int(os.environ.get("BENCH_PROBE_REPS", 20))
DEFAULT_KEYS = [lst.key for lst in LISTENERS]
LISTENERS += MIMIC
LISTENERS += [Listener(f"p-{name}", f"floor + {name} × {PROBE_REPS}", "probe", "passthrough",
                       RAW, upstream=True) for name in PROBES]
BY_KEY = {lst.key: lst for lst in LISTENERS}
# Native listener -> ours in the same payload mode, for the "native ÷ ours" CPU ratio.
PAIRS = {"d-pt": "c-pt", "d-v2": "c-json", "e-pt": "c-pt", "e-v2": "c-json", "f-v2": "c-json",
         "g-floor": "c-pt", "g-mimic": "c-pt", "g-mimic-del": "c-pt"}


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------- Envoy configs

def address(port: int) -> dict:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def typed(type_suffix: str, **fields) -> dict:
    return {"@type": T + type_suffix, **fields}


ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": typed("filters.http.router.v3.Router")}


UPSTREAM_CODEC = {"name": "envoy.filters.http.upstream_codec",
                  "typed_config": typed("filters.http.upstream_codec.v3.UpstreamCodec")}


def listener(name: str, port: int, routes: list, http_filters: list,
             upstream_filters: list | None = None) -> dict:
    """One listener with an HTTP connection manager; `routes` on a catch-all virtual host;
    `upstream_filters` go in the router's upstream_http_filters (before the codec)."""
    router = ROUTER
    if upstream_filters:
        router = {"name": ROUTER["name"], "typed_config": typed(
            "filters.http.router.v3.Router",
            upstream_http_filters=upstream_filters + [UPSTREAM_CODEC])}
    return {
        "name": name,
        "address": address(port),
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM_TYPE,
                "stat_prefix": name,
                "route_config": {"virtual_hosts": [
                    {"name": name, "domains": ["*"], "routes": routes}]},
                "http_filters": http_filters + [router],
            },
        }]}],
    }


def cluster(name: str, port: int, metadata: dict | None = None) -> dict:
    c = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
        "load_assignment": {"cluster_name": name, "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": address(port)}}]}]},
    }
    if metadata:
        c["metadata"] = {"filter_metadata": metadata}
    return c


def bootstrap(admin_port: int, listeners: list, clusters: list) -> dict:
    return {"admin": {"address": address(admin_port)},
            "static_resources": {"listeners": listeners, "clusters": clusters}}


def direct_response(status: int, body: str) -> dict:
    return {"direct_response": {"status": status, "body": {"inline_string": body}},
            "response_headers_to_add": [
                {"header": {"key": "content-type", "value": "application/json"},
                 "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
                {"header": {"key": "x-amzn-requestid", "value": "00000000-bench"}},
                {"header": {"key": "x-amz-executed-version", "value": "$LATEST"}}]}


def fake_lambda_config(admin_port: int, any_port: int, invoke_port: int) -> dict:
    """The fake Lambda: reads the whole body (buffer filter), then answers LAMBDA_ANSWER.

    `any` answers every request; `invoke` only signed Invokes for LAMBDA_HOST (else 404)."""
    answer = json.dumps(LAMBDA_ANSWER, separators=(",", ":"))
    buffer = {"name": "envoy.filters.http.buffer",
              "typed_config": typed("filters.http.buffer.v3.Buffer",
                                    max_request_bytes=FAKE_MAX_REQUEST)}
    invoke_match = {
        "safe_regex": {"regex": r"/2015-03-31/functions/[^/]+/invocations"},
        "headers": [
            {"name": ":method", "string_match": {"exact": "POST"}},
            {"name": ":authority", "string_match": {"exact": LAMBDA_HOST}},
            {"name": "authorization", "string_match": {"prefix": "AWS4-HMAC-SHA256 Credential="}},
            {"name": "x-amz-date", "present_match": True},
        ],
    }
    not_invoke = json.dumps({"Message": "fake lambda: not a signed Invoke"})
    return bootstrap(admin_port, [
        listener("fake_any", any_port, [{"match": {"prefix": "/"}, **direct_response(200, answer)}],
                 [buffer]),
        listener("fake_invoke", invoke_port, [
            {"match": invoke_match, **direct_response(200, answer)},
            {"match": {"prefix": "/"}, **direct_response(404, not_invoke)},
        ], [buffer]),
    ], [])


def wasm_filter(vm_id: str, code: Path, configuration: str | None = None,
                root_id: str = "") -> dict:
    config = {
        "name": vm_id,
        "root_id": root_id,
        "allow_on_headers_stop_iteration": True,
        "vm_config": {"vm_id": vm_id, "runtime": "envoy.wasm.runtime.v8",
                      "code": {"local": {"filename": str(code)}}},
    }
    if configuration is not None:
        config["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                   "value": configuration}
    return {"name": "envoy.filters.http.wasm",
            "typed_config": typed("filters.http.wasm.v3.Wasm", config=config)}


def filters_for(lst: Listener, ours_wasm: Path) -> list:
    """The HTTP filters (before the router) that make up listener `lst`."""
    if lst.kind == "plain":
        return []
    if lst.kind == "noop":
        return [wasm_filter(lst.vm_id, NOOP_WASM)]
    if lst.kind == "floor":
        return [wasm_filter(lst.vm_id, NOOP_WASM, "floor")]
    if lst.kind == "mimic":
        return [wasm_filter(lst.vm_id, NOOP_WASM, MIMIC_MODES[lst.key])]
    if lst.kind == "probe":
        return [wasm_filter(lst.vm_id, NOOP_WASM, f"floor+{lst.key[2:]}x{PROBE_REPS}")]
    if lst.kind == "native":
        return [{"name": "envoy.filters.http.aws_lambda",
                 "typed_config": typed(
                     "filters.http.aws_lambda.v3.Config",
                     arn=FUNCTION_ARN,
                     payload_passthrough=lst.mode == "passthrough",
                     host_rewrite=LAMBDA_HOST,
                     credentials=CREDENTIALS)}]
    config = {"function": FUNCTION_ARN, "region": REGION, "endpoint": LAMBDA_HOST,
              "payload": lst.mode, "timeout_ms": 10000, "credentials": CREDENTIALS}
    if lst.split:
        config["split_placement"] = True
    return [wasm_filter(lst.vm_id, ours_wasm, json.dumps(config), root_id="proxy_wasm_lambda")]


def measuring_config(admin_port: int, ports: dict[str, int], ours_wasm: Path,
                     fake_any: int, fake_invoke: int) -> dict:
    listeners = []
    for key, port in ports.items():
        lst = BY_KEY[key]
        target = "fake_lambda" if lst.on_fake_lambda else "fake_any"
        route = [{"match": {"prefix": "/"}, "route": {"cluster": target, "timeout": "15s"}}]
        filters = filters_for(lst, ours_wasm)
        listeners.append(listener(f"l_{key.replace('-', '_')}", port, route,
                                  filters if lst.split or not lst.upstream else [],
                                  filters if lst.upstream else None))
    return bootstrap(admin_port, listeners, [
        cluster("fake_any", fake_any),
        # The native filter only acts on clusters marked as Lambda egress.
        cluster("fake_lambda", fake_invoke, {"com.amazonaws.lambda": {"egress_gateway": True}}),
    ])


# --------------------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpus: set[int] | None):
    """preexec_fn pinning the child to `cpus` (None: no pinning)."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class Envoy:
    def __init__(self, name: str, config: dict, workdir: Path, cpus: set[int] | None):
        self.name, self.workdir, self.cpus = name, workdir, cpus
        self.admin_port = config["admin"]["address"]["socket_address"]["port_value"]
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.proc: subprocess.Popen | None = None

    def start(self, envoy_bin: str, timeout: float = 60) -> None:
        cmd = [envoy_bin, "-c", str(self.config_path), "--disable-hot-restart",
               "--concurrency", "1", "-l", "warn", "--log-path", str(self.log_path)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, preexec_fn=pinned(self.cpus))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} Envoy exited ({self.proc.returncode}):\n"
                                 + self.log_tail())
            try:
                if requests.get(self.admin("/ready"), timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise BenchError(f"{self.name} Envoy not ready after {timeout}s:\n" + self.log_tail())

    def admin(self, path: str) -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu_ticks(self) -> int:
        """utime + stime of the whole process (all threads), in clock ticks."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()  # fields from #3 (state) on
        return int(fields[11]) + int(fields[12])  # #14 utime, #15 stime

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError("no VmRSS")

    def counter(self, name: str) -> int:
        text = requests.get(self.admin("/stats"), params={"filter": f"^{re.escape(name)}$"},
                            timeout=5).text
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- load

def json_body(size: int) -> bytes:
    """A JSON body of exactly `size` bytes (same shape as bench/wrk.lua sends)."""
    head, tail = b'{"data":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def run_wrk(url: str, body_bytes: int, seconds: int, opts: argparse.Namespace) -> dict:
    cmd = ["wrk", "-t", str(opts.threads), "-c", str(opts.connections), "-d", f"{seconds}s",
           "--timeout", "10s", "--latency", "-s", str(WRK_SCRIPT), url]
    env = {**os.environ, "BENCH_BODY_BYTES": str(body_bytes)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         preexec_fn=pinned(opts.client_cpus), timeout=seconds + 60)
    match = re.search(r"^BENCH_RESULT (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or not match:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    result = json.loads(match.group(1))
    result["output"] = out.stdout
    return result


def measure(envoy: Envoy, fake: Envoy, url: str, body_bytes: int, seconds: int,
            opts: argparse.Namespace) -> dict:
    cpu0, fake0 = envoy.cpu_ticks(), fake.cpu_ticks()
    w = run_wrk(url, body_bytes, seconds, opts)
    cpu1, fake1 = envoy.cpu_ticks(), fake.cpu_ticks()
    n = max(w["requests"], 1)
    cpu_us = (cpu1 - cpu0) * 1e6 / CLK_TCK
    return {
        "requests": w["requests"],
        "duration_s": w["duration_us"] / 1e6,
        "rps": w["requests"] / (w["duration_us"] / 1e6),
        "cpu_ticks": cpu1 - cpu0,
        "cpu_us_per_req": cpu_us / n,
        "fake_cpu_us_per_req": (fake1 - fake0) * 1e6 / CLK_TCK / n,
        "latency_us": w["latency_us"],
        "p99_ms": w["latency_us"]["p99"] / 1000,
        "errors": {k: v for k, v in w["errors"].items() if v},
        "wrk_output": w["output"],
    }


# --------------------------------------------------------------------------- checks

def check_answer(lst: Listener, url: str, body_bytes: int) -> str | None:
    """None if `lst` answers 200 with the expected body, else what went wrong."""
    try:
        if body_bytes:
            r = requests.post(url, data=json_body(body_bytes), timeout=15,
                              headers={"content-type": "application/json"})
        else:
            r = requests.get(url, timeout=15)
    except requests.RequestException as e:
        return f"request failed: {e}"
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code != 200 or body != lst.expect:
        return f"got {r.status_code} {r.text[:300]!r}, expected 200 {json.dumps(lst.expect)}"
    return None


def precheck(urls: dict[str, str], cases: list[str]) -> None:
    problems = []
    for key, url in urls.items():
        for case in ["get"] + [c for c in cases if c != "get"]:
            problem = check_answer(BY_KEY[key], url, CASES[case])
            if problem:
                problems.append(f"  {key:7} {case:9} {problem}")
    if problems:
        raise BenchError("listeners do not answer as expected, not measuring:\n"
                         + "\n".join(problems))
    print(f"pre-check: {len(urls)} listener(s) answer 200 with the expected body "
          f"({', '.join(['get'] + [c for c in cases if c != 'get'])})")


def large_body_checks(urls: dict[str, str], fake: Envoy) -> list[dict]:
    """A 6 MiB POST once per listener (must be 200 and reach the fake Lambda whole).

    d-v2 is the exception: the apigw_v2 event around a 6 MiB body exceeds Lambda's 6 MiB
    payload limit, so our filter must answer 413 without invoking; a body that leaves room
    for the event (6 MiB - 16 KiB) must then be 200."""
    probes = []
    for key in urls:
        if BY_KEY[key].kind == "ours" and BY_KEY[key].mode == "apigw_v2":
            probes.append((key, LAMBDA_LIMIT, 413))
            probes.append((key, LAMBDA_LIMIT - 16 * 1024, 200))
        else:
            probes.append((key, LAMBDA_LIMIT, 200))
    results = []
    for key, size, expected in probes:
        stat = "http.fake_{}.downstream_cx_rx_bytes_total".format(
            "invoke" if BY_KEY[key].on_fake_lambda else "any")
        rx0 = fake.counter(stat)
        t0 = time.monotonic()
        try:
            r = requests.post(urls[key], data=json_body(size), timeout=60,
                              headers={"content-type": "application/json"})
            status, text = r.status_code, r.text
        except requests.RequestException as e:
            status, text = None, str(e)
        elapsed = time.monotonic() - t0
        time.sleep(0.05)
        received = fake.counter(stat) - rx0
        ok = status == expected and (received >= size if expected == 200 else received == 0)
        if expected == 200 and status == 200:
            try:
                ok = ok and r.json() == BY_KEY[key].expect
            except ValueError:
                ok = False
        if expected == 413:
            ok = ok and "payload_too_large" in text
        results.append({"listener": key, "body_bytes": size, "expected": expected,
                        "status": status, "fake_rx_bytes": received, "seconds": elapsed,
                        "pass": ok, "answer": text[:200]})
    return results


# --------------------------------------------------------------------------- reports

def fmt_num(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def summarize(runs: list[dict], keys: list[str], cases: list[str]) -> dict:
    """Median over rounds of each (case, listener)."""
    summary = {}
    for case in cases:
        summary[case] = {}
        for key in keys:
            rows = [r for r in runs if r["case"] == case and r["listener"] == key]
            if rows:
                summary[case][key] = {
                    metric: statistics.median(r[metric] for r in rows)
                    for metric in ("cpu_us_per_req", "rps", "p99_ms", "fake_cpu_us_per_req")}
    return summary


def ratio(summary_case: dict, key: str) -> float | None:
    """For one of ours: native CPU/req ÷ its CPU/req in the same payload mode (≥ 1: ours
    is cheaper)."""
    native = PAIRS.get(key)
    if native is None or native not in summary_case or key not in summary_case:
        return None
    return summary_case[native]["cpu_us_per_req"] / summary_case[key]["cpu_us_per_req"]


def print_tables(summary: dict, rounds: int, seconds: float) -> None:
    for case, rows in summary.items():
        print(f"\n{case} ({CASES[case]} B body) — median of {rounds} round(s) × {seconds:g} s")
        print(f"  {'listener':40} {'µs CPU/req':>10} {'Δ vs a':>8} {'rps':>9} {'p99 ms':>8}"
              f"  native÷ours CPU")
        base = rows.get("a", {}).get("cpu_us_per_req")
        floor = rows.get("g-floor", {}).get("cpu_us_per_req")
        for key, m in rows.items():
            lst = BY_KEY[key]
            delta = m["cpu_us_per_req"] - base if base is not None and key != "a" else None
            r = ratio(rows, key)
            if lst.kind == "probe" and floor is not None:
                per_call = (m["cpu_us_per_req"] - floor) / PROBE_REPS
                last = f"  {per_call:+.2f} µs per call"
            else:
                last = f"  {fmt_num(r, '.2f') if r else ''}"
            print(f"  {key + '  ' + lst.title:40} {m['cpu_us_per_req']:10.1f} "
                  f"{fmt_num(delta, '+8.1f'):>8} {m['rps']:9.0f} {m['p99_ms']:8.2f}{last}")
    print("\n  native÷ours CPU: CPU/req of c-pt ÷ ours in passthrough (d-pt, e-pt) and of "
          "c-json ÷ ours in apigw_v2 (d-v2, e-v2); ≥ 1 means ours is cheaper. Δ vs a: CPU/req "
          "above the plain hop. d-*: filter in the HCM (dispatches the Invoke); e-*, b-up: "
          "filter in the router's upstream_http_filters (rewrites the request in place); f-v2: in "
          "both chains with split_placement; g-floor: c-pt ÷ the floor of any in-place Invoke "
          "filter without hashing or signing; p-NAME: (p-NAME − g-floor) ÷ "
          f"{PROBE_REPS}, the price of one such host call.")


def print_large(results: list[dict]) -> None:
    print("\nlarge bodies (one POST each; fake rx = bytes the fake Lambda read):")
    for r in results:
        print(f"  {'PASS' if r['pass'] else 'FAIL'}  {r['listener']:7} {r['body_bytes']:>8} B  "
              f"→ {r['status']} (expected {r['expected']})  fake rx {r['fake_rx_bytes']:>8} B  "
              f"{r['seconds']:.2f} s" + ("" if r["pass"] else f"  {r['answer']!r}"))


# --------------------------------------------------------------------------- main steps

def build_noop_filter() -> None:
    subprocess.run(["cargo", "build", "--quiet", "--release", "--target", "wasm32-wasip1"],
                   cwd=NOOP_CRATE, check=True)


def rss_soak(envoy: Envoy, url: str, key: str, total: int, opts: argparse.Namespace) -> dict:
    """GETs through `url` in wrk chunks until `total` requests, sampling RSS between chunks."""
    samples = [{"requests": 0, "rss_kib": envoy.rss_kib()}]
    print(f"\nRSS soak: {total:,} GETs through {key}; RSS {samples[0]['rss_kib'] / 1024:.1f} MiB "
          "before")
    done, rps, errors = 0, None, {}
    while done < total:
        seconds = 10 if rps is None else max(1, min(10, round((total - done) / rps + 0.5)))
        w = run_wrk(url, 0, seconds, opts)
        done += w["requests"]
        rps = w["requests"] / (w["duration_us"] / 1e6)
        for k, v in w["errors"].items():
            errors[k] = errors.get(k, 0) + v
        samples.append({"requests": done, "rss_kib": envoy.rss_kib()})
        print(f"  {done:>10,} requests  RSS {samples[-1]['rss_kib'] / 1024:7.1f} MiB  "
              f"({rps:,.0f} rps)")
    growth = samples[-1]["rss_kib"] - samples[1]["rss_kib"]
    print(f"RSS after first chunk → end: {growth / 1024:+.1f} MiB over "
          f"{done - samples[1]['requests']:,} requests")
    return {"samples": samples, "errors": {k: v for k, v in errors.items() if v}}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listeners", default=None,
                   help=f"comma-separated subset of {','.join(BY_KEY)}")
    p.add_argument("--cases", default=",".join(CASES),
                   help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 5)))
    p.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 3)))
    p.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 1)))
    p.add_argument("--json", metavar="FILE", help="write all raw numbers to FILE")
    p.add_argument("--rss-soak", type=int, metavar="N",
                   help="instead of the comparison: N GETs through one listener (the first of "
                        "--listeners, else d-v2), RSS before/after")
    p.add_argument("--no-large", action="store_true", help="skip the 6 MiB POST checks")
    p.add_argument("--keep", action="store_true", help="keep the workdir (configs, logs)")
    opts = p.parse_args()
    opts.connections = int(os.environ.get("BENCH_CONNECTIONS", 16))
    opts.threads = int(os.environ.get("BENCH_THREADS", 1))
    opts.listener_keys = [k for k in (opts.listeners or ",".join(DEFAULT_KEYS)).split(",") if k]
    opts.case_names = [c for c in opts.cases.split(",") if c]
    if opts.rss_soak:
        opts.listener_keys = opts.listener_keys[:1] if opts.listeners else ["d-v2"]
    for k in opts.listener_keys:
        if k not in BY_KEY:
            p.error(f"unknown listener {k!r} (known: {', '.join(BY_KEY)})")
    for c in opts.case_names:
        if c not in CASES:
            p.error(f"unknown case {c!r} (known: {', '.join(CASES)})")
    # The mimic sets the GET's Invoke headers (content-length 0) whatever the request carries.
    mimics = [k for k in opts.listener_keys if BY_KEY[k].kind == "mimic"]
    if mimics and opts.case_names != ["get"]:
        p.error(f"{', '.join(mimics)}: each replays a GET's host calls; measure with --cases get")
    # Pinning: the measuring Envoy alone on the last CPU; wrk and the fake Lambda on the rest.
    cpus = sorted(os.sched_getaffinity(0))
    if os.environ.get("BENCH_PIN", "0") == "1" and len(cpus) >= 2:
        opts.envoy_cpus, opts.client_cpus = {cpus[-1]}, set(cpus[:-1])
    else:
        opts.envoy_cpus = opts.client_cpus = None
    return opts


def run(opts: argparse.Namespace, workdir: Path) -> int:
    envoy_bin = os.environ.get("ENVOY_BIN") or str(ROOT / ".venv" / "bin" / "envoy")
    ours_wasm = Path(os.environ.get("LAMBDA_WASM")
                     or ROOT / "target" / "wasm32-wasip1" / "release" / "proxy_wasm_lambda.wasm")
    for tool in ("wrk",):
        if not shutil.which(tool):
            raise BenchError(f"{tool} not found (apt-get install -y wrk)")
    if not ours_wasm.exists():
        raise BenchError(f"{ours_wasm} missing: run `make wasm`")
    if any(BY_KEY[k].kind in ("noop", "floor", "mimic", "probe") for k in opts.listener_keys):
        build_noop_filter()

    fake_ports = {"admin": free_port(), "any": free_port(), "invoke": free_port()}
    fake = Envoy("fake-lambda", fake_lambda_config(fake_ports["admin"], fake_ports["any"],
                                                   fake_ports["invoke"]),
                 workdir, opts.client_cpus)
    ports = {k: free_port() for k in opts.listener_keys}
    envoy = Envoy("measuring", measuring_config(free_port(), ports, ours_wasm, fake_ports["any"],
                                                fake_ports["invoke"]),
                  workdir, opts.envoy_cpus)
    urls = {k: f"http://127.0.0.1:{p}/bench/path?q=1" for k, p in ports.items()}
    envoy_version = subprocess.run([envoy_bin, "--version"], capture_output=True,
                                   text=True).stdout.strip().split("version:")[-1].strip()
    report: dict = {
        "envoy": envoy_version,
        "seconds": opts.seconds, "rounds": opts.rounds, "warmup_s": opts.warmup,
        "wrk": {"connections": opts.connections, "threads": opts.threads},
        "pinning": {"measuring_envoy": sorted(opts.envoy_cpus or []),
                    "wrk_and_fake_lambda": sorted(opts.client_cpus or [])},
        "wasm_bytes": {"proxy_wasm_lambda": ours_wasm.stat().st_size,
                       **({"noop": NOOP_WASM.stat().st_size} if NOOP_WASM.exists() else {})},
        "vm_ids": {k: BY_KEY[k].vm_id for k in opts.listener_keys if BY_KEY[k].vm_id},
        "clk_tck": CLK_TCK,
    }
    try:
        fake.start(envoy_bin)
        envoy.start(envoy_bin)
        print(f"Envoy {envoy_version}; measuring Envoy pid {envoy.proc.pid} (--concurrency 1), "
              f"fake Lambda pid {fake.proc.pid}; workdir {workdir}")
        print("pinning: " + (f"measuring Envoy on CPU {sorted(opts.envoy_cpus)}, wrk + fake "
                             f"Lambda on CPU {sorted(opts.client_cpus)}"
                             if opts.envoy_cpus else "none"))
        print(f"wasm: proxy_wasm_lambda {report['wasm_bytes']['proxy_wasm_lambda']:,} B"
              + (f", noop {report['wasm_bytes']['noop']:,} B" if "noop" in report["wasm_bytes"]
                 else "")
              + f"; vm_id per listener (one VM each): {report['vm_ids']}")
        print(f"wrk: {opts.connections} connections, {opts.threads} thread(s), keep-alive, "
              f"HTTP/1.1 on loopback")
        precheck(urls, opts.case_names)
        report["rss_kib_start"] = envoy.rss_kib()
        print(f"measuring Envoy RSS at start: {report['rss_kib_start'] / 1024:.1f} MiB")

        if opts.rss_soak:
            key = opts.listener_keys[0]
            report["rss_soak"] = rss_soak(envoy, urls[key], key, opts.rss_soak, opts)
            failures = report["rss_soak"]["errors"]
            if failures:
                print(f"\nFAIL: wrk errors during the soak: {failures}")
            return write_json(opts, report, 1 if failures else 0)

        if opts.warmup > 0:
            for case in opts.case_names:
                for key in opts.listener_keys:
                    run_wrk(urls[key], CASES[case], opts.warmup, opts)
        runs, failures = [], []
        for rnd in range(1, opts.rounds + 1):
            for case in opts.case_names:
                for key in opts.listener_keys:
                    m = measure(envoy, fake, urls[key], CASES[case], opts.seconds, opts)
                    m.update(round=rnd, case=case, listener=key)
                    runs.append(m)
                    flag = ""
                    if m["errors"]:
                        failures.append(m)
                        flag = f"  ERRORS {m['errors']}"
                    print(f"round {rnd}/{opts.rounds} {case:9} {key:7} "
                          f"{m['cpu_us_per_req']:7.1f} µs CPU/req {m['rps']:8.0f} rps "
                          f"p99 {m['p99_ms']:6.2f} ms{flag}", flush=True)
        report["runs"] = runs
        report["summary"] = summarize(runs, opts.listener_keys, opts.case_names)
        print_tables(report["summary"], opts.rounds, opts.seconds)

        if not opts.no_large:
            report["large"] = large_body_checks(urls, fake)
            print_large(report["large"])
        report["rss_kib_end"] = envoy.rss_kib()
        print(f"\nmeasuring Envoy RSS: {report['rss_kib_start'] / 1024:.1f} MiB at start, "
              f"{report['rss_kib_end'] / 1024:.1f} MiB at end")

        status = 0
        for m in failures:
            print(f"\nFAIL: wrk reported errors (round {m['round']}, {m['case']}, "
                  f"{m['listener']}): {m['errors']}\n{m['wrk_output']}")
            status = 1
        if any(not r["pass"] for r in report.get("large", [])):
            print("\nFAIL: large-body check(s) failed (see above)")
            status = 1
        return write_json(opts, report, status)
    except BenchError:
        for proc in (envoy, fake):
            print(f"\n{proc.name} Envoy log tail:\n{proc.log_tail(15)}", file=sys.stderr)
        raise
    finally:
        envoy.stop()
        fake.stop()


def write_json(opts: argparse.Namespace, report: dict, status: int) -> int:
    if opts.json:
        for m in report.get("runs", []):
            m.pop("wrk_output", None)
        Path(opts.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"raw numbers written to {opts.json}")
    return status


def main() -> int:
    opts = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    status = 1
    try:
        status = run(opts, workdir)
    except BenchError as e:
        print(f"\nbench: {e}", file=sys.stderr)
    finally:
        if opts.keep or status != 0:
            print(f"workdir kept: {workdir} (Envoy configs and logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
