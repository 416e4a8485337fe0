"""Fault matrix through real Envoy: Lambda and STS stand-ins misbehave on cue, and for every
fault the client gets the documented status and JSON error class, the matching outcome
counter moves in Envoy's /stats, no request hangs (each has a client-side bound), Envoy logs
no panic or Wasm VM failure, and the next request after the fault is removed succeeds on the
same Envoy (no restart).

docs/failures.md ("Faults of Lambda and STS") is this module's matrix; faults that other modules
already cover (test_end_to_end, test_assume_role, test_stats) are listed there, not repeated
here, except for the counter and recovery checks those tests do not make.

Lambda faults share one Envoy (module scope), so every case also proves that the faults
before it left the filter working. STS faults need an Envoy each: the credential state is
per Envoy process.
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import pytest
import requests

import envoy_harness as eh
import lambda_standin as ls
import log_audit
import sts_proxy as sp
from lambda_standin import Answer
from test_assume_role import plugin_config as assume_role_config

REGION = "us-east-1"
PREFIX = "wasmcustom.proxy_wasm_lambda."
OUTCOMES = (
    "invocations.success",
    "invocations.function_error",
    "invocations.throttled",
    "invocations.rejected",
    "invocations.upstream_error",
    "invocations.credentials_unavailable",
    "invocations.bad_response",
)
CLIENT_TIMEOUT = 8.0  # no request may take longer: a hang fails the test, it does not stall it
TIMEOUT_MS = 1000  # the Invoke's timeout_ms in this module
LAMBDA_LIMIT = 6_291_556  # the largest answer Lambda itself sends ("6291556 bytes" in its error)
ENVOY_ASYNC_LIMIT = 32 * 1024 * 1024  # Envoy's runtime http.async_response_buffer_limit default
# What must never appear in Envoy's log: a Rust panic in the filter, a Wasm trap, a VM that
# failed or was torn down, anything at critical level.
BAD_LOG = re.compile(r"panick|\]\[critical\]\[|uncaught|runtimeerror|unreachable|wasm vm|vm failed|"
                     r"failed to (start|load|configure)", re.IGNORECASE)


# --------------------------------------------------------------------------- helpers
def show(r: requests.Response) -> str:
    return f"HTTP {r.status_code}\nheaders: {dict(r.headers)}\nbody: {r.text[:600]!r}"


def outcome_stats(envoy: eh.Envoy) -> dict[str, int]:
    stats = envoy.stats("proxy_wasm_lambda")
    names = OUTCOMES + ("credentials.refresh_ok", "credentials.refresh_failed", "credentials.waiting")
    return {n: int(stats.get(PREFIX + n, 0)) for n in names}


def deltas(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def wait_for_outcomes(envoy: eh.Envoy, before: dict[str, int], expected: dict[str, int],
                      timeout: float = 3.0) -> dict[str, int]:
    """Outcome counter deltas once they equal `expected` (or after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        moved = {k: v for k, v in deltas(before, outcome_stats(envoy)).items() if k in OUTCOMES}
        if moved == expected or time.monotonic() > deadline:
            return moved
        time.sleep(0.05)


def timed_post(envoy: eh.Envoy, path: str = "/", payload: Any = None) -> tuple[requests.Response, float]:
    t0 = time.monotonic()
    try:
        r = requests.post(envoy.url(path), json=payload if payload is not None else {"fault": "matrix"},
                          timeout=CLIENT_TIMEOUT)
    except requests.Timeout:
        pytest.fail(f"POST {path}: no answer within {CLIENT_TIMEOUT}s (hung request)")
    return r, time.monotonic() - t0


def assert_error_body(r: requests.Response, status: int, error: str, **fields: Any) -> dict:
    assert r.status_code == status, f"expected {status} {error}, got:\n{show(r)}"
    assert r.headers.get("content-type", "").startswith("application/json"), f"error not JSON:\n{show(r)}"
    body = r.json()
    assert body.get("error") == error, f"expected error={error!r}:\n{show(r)}"
    assert body.get("request_id"), f"error body without request_id:\n{show(r)}"
    for k, v in fields.items():
        assert body.get(k) == v, f"expected {k}={v!r}:\n{show(r)}"
    return body


def assert_clean_log(envoy: eh.Envoy) -> None:
    """Stops Envoy (flushing its log) and checks it for panics and VM failures."""
    rc = envoy.stop()
    log = envoy.log()
    bad = [line for line in log.splitlines() if BAD_LOG.search(line)]
    assert not bad, "Envoy logged a panic / VM failure:\n" + "\n".join(bad[:10])
    assert rc == 0, f"Envoy exited with {rc}\n{log[-3000:]}"


def rss_kb(envoy: eh.Envoy) -> int:
    assert envoy.proc is not None
    with open(f"/proc/{envoy.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --------------------------------------------------------------------------- Lambda faults
@dataclass
class LambdaEnv:
    envoy: eh.Envoy
    standin: ls.StandIn


@pytest.fixture(scope="module")
def lambda_env(wasm_path) -> LambdaEnv:
    standin = ls.StandIn().start()
    log_audit.AUDIT.standins.append(standin)
    cfg = eh.EnvoyConfig(
        plugin_config={"function": "echo-fn", "region": REGION, "credentials": standin.credentials(),
                       "timeout_ms": TIMEOUT_MS},
        routes=[
            # A route timeout below timeout_ms: the filter's timeout still decides (the
            # route's router never sees the request).
            eh.Route("/short-route", "lambda", timeout_s=0.5),
            eh.Route("/v2", "lambda", metadata={"payload": "apigw_v2"}),
            eh.Route("/", "lambda"),
        ],
        clusters={"lambda": ("127.0.0.1", standin.port)},
        wasm_path=wasm_path,
    )
    envoy = eh.Envoy(cfg)
    log_audit.AUDIT.envoys.append(envoy)
    envoy.start()
    yield LambdaEnv(envoy, standin)
    envoy.stop()
    standin.stop()


def api_error(status: int, error_type: str | None, message: str, request_id: bool = True,
              **headers: str) -> Answer:
    """A Lambda API error as the service writes it: x-amzn-RequestId, x-amzn-ErrorType and
    a JSON body {"Type", "message"}."""
    h: dict[str, str | None] = {"content-type": "application/json"}
    h["x-amzn-RequestId"] = "5f3c0d2e-6d7b-4d6a-9a4e-2b8f0e1c9a7d" if request_id else None
    if error_type:
        h["x-amzn-ErrorType"] = f"{error_type}:http://internal.amazon.com/coral/com.amazonaws.awslambda/"
    h.update(headers)
    return Answer(status, h, {"Type": "Service" if status >= 500 else "User", "message": message})


def big(n: int) -> bytes:
    """A JSON string of exactly n bytes."""
    return b'"' + b"a" * (n - 2) + b'"'


OK_HEADERS = {"content-type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
TRUNCATED = b'{"items": [1, 2, 3], "next": "abc'


@dataclass
class LambdaFault:
    id: str
    answer: Answer
    status: int
    counter: str  # the outcome counter that moves by one
    error: str | None = None  # None: the answer is relayed (a success)
    fields: dict[str, Any] = field(default_factory=dict)
    path: str = "/"
    body: bytes | None = None  # expected relayed body
    headers: dict[str, str | None] = field(default_factory=dict)  # expected client headers (None: absent)
    min_s: float = 0.0
    max_s: float = 2.0
    # Upstream placement: fields that differ there (the route's timeout applies, and a
    # successful passthrough answer is relayed as it arrives, so a fault after its headers
    # cuts the client's response instead of turning into an error reply).
    upstream: dict[str, Any] = field(default_factory=dict)
    cut: bool = False  # the client's response starts and is cut


CUT_AFTER_HEADERS = {"cut": True, "error": None, "status": 200}
UPSTREAM = eh.default_placement() == "upstream"


LAMBDA_FAULTS = [
    # --- slower than the timeouts
    LambdaFault("slower-than-route-timeout", Answer(200, OK_HEADERS, {"late": True}, delay_s=2.0),
                504, "invocations.upstream_error", "upstream_timeout", path="/short-route",
                min_s=0.9, max_s=2.5, upstream={"min_s": 0.4, "max_s": 1.5}),
    LambdaFault("headers-then-body-stalls", Answer(200, OK_HEADERS, b'{"slow": "' + b"x" * 1000 + b'"}',
                                                   fault="truncate", truncate_at=50, stall_s=2.0),
                504, "invocations.upstream_error", "upstream_timeout", min_s=0.9, max_s=2.5,
                upstream={**CUT_AFTER_HEADERS, "min_s": 1.9, "max_s": 4.0}),
    # --- connection broken
    LambdaFault("closed-before-headers", Answer(fault="close"), 503, "invocations.upstream_error",
                "upstream_unavailable"),
    LambdaFault("rst-before-headers", Answer(fault="rst"), 503, "invocations.upstream_error",
                "upstream_unavailable"),
    LambdaFault("closed-mid-body", Answer(200, OK_HEADERS, b'{"a": "' + b"x" * 1000 + b'"}', fault="truncate",
                                          truncate_at=100), 503, "invocations.upstream_error", "upstream_unavailable",
                upstream=CUT_AFTER_HEADERS),
    LambdaFault("rst-mid-body", Answer(200, OK_HEADERS, b'{"a": "' + b"x" * 1000 + b'"}', fault="truncate_rst",
                                       truncate_at=100), 503, "invocations.upstream_error", "upstream_unavailable",
                upstream=CUT_AFTER_HEADERS),
    LambdaFault("rst-after-headers", Answer(200, OK_HEADERS, b'{"a": 1}', fault="truncate_rst", truncate_at=0),
                503, "invocations.upstream_error", "upstream_unavailable", upstream=CUT_AFTER_HEADERS),
    # --- Lambda service errors, as Lambda writes them
    LambdaFault("500-ServiceException", api_error(500, "ServiceException", "Lambda was unable to run the function"),
                502, "invocations.upstream_error", "lambda_api_error",
                {"type": "ServiceException", "lambda_status": 500,
                 "message": "Lambda was unable to run the function"}),
    LambdaFault("502-EC2ThrottledException", api_error(502, "EC2ThrottledException", "EC2 throttled the ENI"),
                502, "invocations.upstream_error", "lambda_api_error",
                {"type": "EC2ThrottledException", "lambda_status": 502}),
    LambdaFault("502-ResourceNotReadyException",
                api_error(502, "ResourceNotReadyException", "The function is inactive"),
                502, "invocations.upstream_error", "lambda_api_error",
                {"type": "ResourceNotReadyException", "lambda_status": 502}),
    LambdaFault("503-ServiceUnavailable-from-Lambda",
                api_error(503, "ServiceUnavailableException", "Service unavailable"),
                502, "invocations.upstream_error", "lambda_api_error",
                {"type": "ServiceUnavailableException", "lambda_status": 503}),
    LambdaFault("503-without-request-id", Answer(503, {"x-amzn-requestid": None, "content-type": "text/plain"},
                                                 b"upstream overloaded"),
                503, "invocations.upstream_error", "upstream_unavailable"),
    LambdaFault("502-html-without-request-id",
                Answer(502, {"x-amzn-requestid": None, "content-type": "text/html"}, b"<html>Bad Gateway</html>"),
                502, "invocations.upstream_error", "lambda_api_error",
                {"type": "UnknownError", "lambda_status": 502}),
    LambdaFault("429-TooManyRequests-Retry-After",
                api_error(429, "TooManyRequestsException", "Rate Exceeded.", **{"Retry-After": "2"}),
                429, "invocations.throttled", "throttled", {"type": "TooManyRequestsException"},
                headers={"retry-after": "2"}),
    LambdaFault("429-without-Retry-After", api_error(429, "TooManyRequestsException", "Rate Exceeded."),
                429, "invocations.throttled", "throttled", headers={"retry-after": None}),
    # --- answers that are not what the format expects
    LambdaFault("passthrough-non-JSON", Answer(200, OK_HEADERS, b"<html>not json</html>"), 200,
                "invocations.success", body=b"<html>not json</html>"),
    LambdaFault("passthrough-truncated-JSON", Answer(200, OK_HEADERS, TRUNCATED), 200, "invocations.success",
                body=TRUNCATED),
    LambdaFault("passthrough-wrong-typed", Answer(200, OK_HEADERS, {"statusCode": "abc", "body": {"x": 1}}), 200,
                "invocations.success", body=json.dumps({"statusCode": "abc", "body": {"x": 1}}).encode()),
    # API Gateway infers a response only for valid JSON: anything else is an error.
    LambdaFault("apigw_v2-non-JSON", Answer(200, OK_HEADERS, b"<html>not json</html>"), 502,
                "invocations.bad_response", "bad_response", path="/v2"),
    LambdaFault("apigw_v2-truncated-JSON", Answer(200, OK_HEADERS, TRUNCATED), 502, "invocations.bad_response",
                "bad_response", path="/v2"),
    LambdaFault("apigw_v2-statusCode-string", Answer(200, OK_HEADERS, {"statusCode": "abc", "body": "x"}), 502,
                "invocations.bad_response", "bad_response", path="/v2"),
    LambdaFault("apigw_v2-statusCode-out-of-range", Answer(200, OK_HEADERS, {"statusCode": 99, "body": "x"}), 502,
                "invocations.bad_response", "bad_response", path="/v2"),
    LambdaFault("apigw_v2-body-object", Answer(200, OK_HEADERS, {"statusCode": 200, "body": {"x": 1}}), 502,
                "invocations.bad_response", "bad_response", path="/v2"),
    LambdaFault("apigw_v2-headers-array", Answer(200, OK_HEADERS, {"statusCode": 200, "headers": ["a"]}), 502,
                "invocations.bad_response", "bad_response", path="/v2"),
    LambdaFault("apigw_v2-header-value-object",
                Answer(200, OK_HEADERS, {"statusCode": 200, "headers": {"x-a": {"b": 1}}}), 502,
                "invocations.bad_response", "bad_response", path="/v2"),
    LambdaFault("apigw_v2-cookies-string", Answer(200, OK_HEADERS, {"statusCode": 200, "cookies": "a=1"}), 502,
                "invocations.bad_response", "bad_response", path="/v2"),
    LambdaFault("apigw_v2-bad-base64",
                Answer(200, OK_HEADERS, {"statusCode": 200, "body": "%%%", "isBase64Encoded": True}), 502,
                "invocations.bad_response", "bad_response", path="/v2"),
    # --- answer size
    LambdaFault("answer-at-Lambda-limit", Answer(200, OK_HEADERS, big(LAMBDA_LIMIT)), 200, "invocations.success",
                body=big(LAMBDA_LIMIT), max_s=4.0),
    LambdaFault("answer-over-6MB", Answer(200, OK_HEADERS, big(7_000_000)), 502, "invocations.upstream_error",
                "response_too_large", {"limit": LAMBDA_LIMIT}),
    LambdaFault("answer-over-6MB-apigw_v2", Answer(200, OK_HEADERS, big(7_000_000)), 502,
                "invocations.upstream_error", "response_too_large", path="/v2"),
    LambdaFault("error-answer-over-6MB", api_error(500, "ServiceException", "x" * 7_000_000), 502,
                "invocations.upstream_error", "response_too_large"),
    LambdaFault("answer-over-Envoy-async-limit", Answer(200, OK_HEADERS, big(ENVOY_ASYNC_LIMIT + 1_000_000)), 503,
                "invocations.upstream_error", "upstream_unavailable", max_s=4.0,
                # Upstream, the answer's content-length is refused before any of it is buffered.
                upstream={"status": 502, "error": "response_too_large"}),
]


@pytest.mark.parametrize("case", LAMBDA_FAULTS, ids=lambda c: c.id)
def test_lambda_fault(lambda_env: LambdaEnv, case: LambdaFault):
    envoy, standin = lambda_env.envoy, lambda_env.standin
    assert envoy.is_running(), "the module's Envoy died in an earlier case"
    standin.reset()
    before = outcome_stats(envoy)
    standin.script(case.answer)
    if UPSTREAM and case.upstream:
        case = replace(case, **case.upstream)

    if case.cut:
        t0 = time.monotonic()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.post(envoy.url(case.path), json={"fault": "matrix"}, timeout=CLIENT_TIMEOUT).content
        r, elapsed = None, time.monotonic() - t0
    else:
        r, elapsed = timed_post(envoy, case.path)
    if r is None:
        pass
    elif case.error is None:
        assert r.status_code == case.status, show(r)
        if case.body is not None:
            assert r.content == case.body, f"relayed body differs ({len(r.content)} bytes):\n{show(r)}"
    else:
        assert_error_body(r, case.status, case.error, **case.fields)
    for name, value in case.headers.items():
        assert r.headers.get(name) == value, f"header {name}: expected {value!r}\n{show(r)}"
    if r is not None:
        assert not [h for h in r.headers if h.lower().startswith("x-amzn-")], f"Lambda headers leaked:\n{show(r)}"
    assert case.min_s <= elapsed <= case.max_s, f"answered after {elapsed:.2f}s, expected {case.min_s}-{case.max_s}s"
    moved = wait_for_outcomes(envoy, before, {case.counter: 1})
    assert moved == {case.counter: 1}, f"outcome counters moved {moved}, expected {case.counter} +1"
    reqs = standin.requests
    assert len(reqs) == 1 and reqs[0].verified, "the filter retried, or the Invoke was not validly signed"

    # Recovery: the fault is gone (the script is empty), the same Envoy answers the next request.
    recovered, _ = timed_post(envoy, case.path, {"after": case.id})
    assert recovered.status_code == 200, f"no recovery after {case.id}:\n{show(recovered)}"
    if case.path != "/v2":
        assert recovered.json() == {"after": case.id}, show(recovered)
    assert envoy.is_running()


def test_oversized_answers_do_not_balloon_memory(lambda_env: LambdaEnv):
    """Answers over Lambda's limit are refused without being copied into the Wasm VM, and
    Envoy frees its buffer of each: many of them leave Envoy's memory where it was."""
    envoy, standin = lambda_env.envoy, lambda_env.standin
    standin.reset()
    size, rounds = 24_000_000, 8
    payload = big(size)
    before = outcome_stats(envoy)
    rss_before = rss_kb(envoy)
    for _ in range(rounds):
        standin.script(Answer(200, OK_HEADERS, payload))
        r, elapsed = timed_post(envoy)
        assert_error_body(r, 502, "response_too_large", limit=LAMBDA_LIMIT, size=size)
        assert elapsed < 3.0, f"502 after {elapsed:.2f}s"
    growth_mb = (rss_kb(envoy) - rss_before) / 1024
    moved = wait_for_outcomes(envoy, before, {"invocations.upstream_error": rounds})
    assert moved == {"invocations.upstream_error": rounds}, moved
    # One answer in flight at a time: Envoy holds at most one buffer (24 MB); without the
    # filter's bound the VM's memory would grow by a multiple of that and never shrink.
    assert growth_mb < 1.5 * size / 1e6, f"Envoy RSS grew {growth_mb:.0f} MB over {rounds} answers of {size} bytes"
    print(f"Envoy RSS grew {growth_mb:.1f} MB over {rounds} refused answers of {size / 1e6:.0f} MB")
    r, _ = timed_post(envoy, "/", {"after": "oversized"})
    assert r.status_code == 200 and r.json() == {"after": "oversized"}, show(r)


def test_lambda_endpoint_down_then_back(lambda_env: LambdaEnv):
    """Connection refused while the endpoint is down (Envoy's 503), and the next request after
    it listens again succeeds (test_unreachable_lambda_endpoint_is_503 covers a port that
    never listened)."""
    envoy, standin = lambda_env.envoy, lambda_env.standin
    standin.reset()
    before = outcome_stats(envoy)
    standin.refuse_connections()
    try:
        for _ in range(2):
            r, elapsed = timed_post(envoy)
            assert_error_body(r, 503, "upstream_unavailable")
            assert elapsed < 2.0, f"connect failure answered after {elapsed:.2f}s"
    finally:
        standin.accept_connections()
    if UPSTREAM:
        # Upstream, a request that never gets a connection never reaches the filter: the
        # router answers it (the JSON comes from local_reply_config), and Envoy's cluster
        # stats count it.
        connect_fails = envoy.stats("cluster.lambda.upstream_cx_connect_fail$")
        assert connect_fails.get("cluster.lambda.upstream_cx_connect_fail", 0) >= 2, connect_fails
    else:
        moved = wait_for_outcomes(envoy, before, {"invocations.upstream_error": 2})
        assert moved == {"invocations.upstream_error": 2}, moved
    r, _ = timed_post(envoy, "/", {"back": True})
    assert r.status_code == 200 and r.json() == {"back": True}, show(r)


def test_lambda_faults_left_no_panic(lambda_env: LambdaEnv):
    """Runs last in the module: after every Lambda fault above, Envoy is still serving, and
    its log shows no panic, trap or VM failure."""
    r, _ = timed_post(lambda_env.envoy, "/", {"last": True})
    assert r.status_code == 200, show(r)
    assert_clean_log(lambda_env.envoy)


# --------------------------------------------------------------------------- STS faults
STS_TIMEOUT_MS = 500
MAX_WAIT_MS = 800


@dataclass
class StsFault:
    id: str
    inject: Callable[[sp.StsProxy], None]
    error: str
    retryable: bool  # True: requests wait max_wait_ms; False: they fail at once


def _fail(status: int, body: bytes | str) -> Callable[[sp.StsProxy], None]:
    return lambda sts: sts.set_mode("fail", fail_status=status, fail_body=body)


NO_CREDENTIALS_XML = (
    '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
    "  <AssumeRoleResult>\n    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>"
    "</AssumedRoleUser>\n  </AssumeRoleResult>\n"
    "  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>\n"
    "</AssumeRoleResponse>\n"
)

STS_FAULTS = [
    StsFault("connection-refused", lambda sts: sts.set_mode("refuse"), "sts_unavailable", True),
    StsFault("slower-than-sts-timeout", lambda sts: sts.set_mode("slow", delay_s=1.5), "sts_unavailable", True),
    StsFault("403-AccessDenied",
             _fail(403, sp.sts_error_xml("AccessDenied", "User is not authorized to perform: sts:AssumeRole")),
             "sts_access_denied", False),
    StsFault("400-ExpiredToken",
             _fail(400, sp.sts_error_xml("ExpiredToken", "The security token included in the request is expired")),
             "sts_expired_token", False),
    StsFault("200-XML-without-credentials", _fail(200, NO_CREDENTIALS_XML), "sts_bad_response", True),
    StsFault("200-credentials-already-expired", lambda sts: sts.set_rewrite_expiration(-60), "sts_bad_response",
             True),
]


def start_sts_envoy(envoy_factory, sts_proxy_factory, standin_factory, setup, **assume_role):
    lam = standin_factory(keys={"AKIDNOTTHEKEYUSED000": "unused"})
    sts = sts_proxy_factory(on_credentials=lambda c: lam.add_key(c.access_key_id, c.secret_access_key))
    return lam, sts, lambda: envoy_factory(
        assume_role_config(setup, source=setup.assumer, timeout_ms=STS_TIMEOUT_MS, max_wait_ms=MAX_WAIT_MS,
                           **assume_role),
        clusters={"lambda": lam.port, "sts": sts.port},
    )


def wait_until_200(envoy: eh.Envoy, within: float) -> tuple[list[int], float]:
    """POSTs until one succeeds; returns the statuses and the time it took."""
    t0 = time.monotonic()
    statuses: list[int] = []
    while time.monotonic() - t0 < within:
        r, _ = timed_post(envoy, "/", {"recover": len(statuses)})
        statuses.append(r.status_code)
        if r.status_code == 200:
            assert r.json() == {"recover": len(statuses) - 1}, show(r)
            break
        time.sleep(0.1)
    return statuses, time.monotonic() - t0


@pytest.mark.parametrize("case", STS_FAULTS, ids=lambda c: c.id)
def test_sts_fault(envoy_factory, sts_proxy_factory, standin_factory, assume_role_aws, case: StsFault):
    lam, sts, start = start_sts_envoy(envoy_factory, sts_proxy_factory, standin_factory, assume_role_aws)
    case.inject(sts)
    envoy = start()
    # The first tick's AssumeRole has failed before the request arrives, or fails while it waits.
    r, elapsed = timed_post(envoy)
    assert_error_body(r, 503, case.error)
    if case.retryable:
        assert MAX_WAIT_MS / 1000 - 0.1 <= elapsed <= MAX_WAIT_MS / 1000 + 1.0, f"503 after {elapsed:.2f}s"
    else:
        assert elapsed <= 1.5, f"a failure waiting cannot fix answered only after {elapsed:.2f}s"
    stats = outcome_stats(envoy)
    assert stats["invocations.credentials_unavailable"] == 1, stats
    assert stats["credentials.refresh_failed"] >= 1 and stats["credentials.refresh_ok"] == 0, (stats, sts.describe())
    assert stats["credentials.waiting"] == 0, stats
    assert not [q for q in lam.requests], "an Invoke reached Lambda without usable credentials"
    fault_calls = sts.assume_roles if case.id != "connection-refused" else sts.calls
    # Failed fetches back off (1 s, 2 s, …): no hot loop against STS.
    assert len(fault_calls) <= 3, f"{len(fault_calls)} AssumeRole calls in {elapsed:.1f}s:\n{sts.describe()}"

    # Remove the fault: the next fetch (after its backoff) succeeds and requests flow again.
    sts.set_mode("normal")
    sts.set_rewrite_expiration(None)
    statuses, took = wait_until_200(envoy, within=6.0)
    assert statuses[-1] == 200, f"no recovery within 6s: {statuses}\n{sts.describe()}"
    assert set(statuses[:-1]) <= {503}, statuses
    stats = outcome_stats(envoy)
    assert stats["credentials.refresh_ok"] == 1, stats
    assert stats["invocations.success"] == 1, stats
    assert stats["invocations.credentials_unavailable"] == len(statuses), stats
    rec = lam.requests[-1]
    assert rec.verified and rec.header("x-amz-security-token"), rec.reason
    print(f"{case.id}: 503 after {elapsed:.2f}s, recovered {took:.2f}s after the fault was removed "
          f"({len(statuses) - 1} more 503s)")
    assert_clean_log(envoy)


def load(envoy: eh.Envoy, stop: threading.Event, out: list, lock: threading.Lock, worker: int) -> None:
    """Sequential POSTs until `stop`, each bounded by the client timeout."""
    with requests.Session() as s:
        i = 0
        while not stop.is_set():
            t, t0 = time.time(), time.monotonic()
            try:
                r = s.post(envoy.url("/"), json={"w": worker, "i": i}, timeout=CLIENT_TIMEOUT)
                outcome = (t, time.monotonic() - t0, r.status_code, r.json().get("error") if r.status_code != 200 else None)
            except requests.RequestException as e:
                outcome = (t, time.monotonic() - t0, None, repr(e))
            with lock:
                out.append(outcome)
            i += 1
            time.sleep(0.02)


def test_credentials_expire_under_load_while_sts_is_down(envoy_factory, sts_proxy_factory, standin_factory,
                                                         assume_role_aws):
    """Short-lived credentials (35 s: usable for 5 s) while requests flow; STS goes down right
    after handing them out. Until they become unusable every request succeeds; then requests
    get 503 sts_unavailable after max_wait (never an Invoke signed with expiring credentials);
    when STS is back the next refresh succeeds and requests flow again, without a restart."""
    lifetime_s = 35
    lam, sts, start = start_sts_envoy(envoy_factory, sts_proxy_factory, standin_factory, assume_role_aws)
    sts.set_rewrite_expiration(lifetime_s)
    envoy = start()
    calls = sts.wait_for(lambda cs: any(c.ok and c.answered_at for c in cs), timeout=5)
    assert any(c.ok for c in calls), f"the first AssumeRole never succeeded:\n{sts.describe()}"
    sts.set_mode("refuse")
    outcomes: list = []
    lock = threading.Lock()
    stop = threading.Event()
    threads = [threading.Thread(target=load, args=(envoy, stop, outcomes, lock, w), daemon=True) for w in range(2)]
    for t in threads:
        t.start()
    # Wait for the first 503 (credentials unusable, STS down), then bring STS back.
    deadline = time.monotonic() + lifetime_s - 30 + 4
    while time.monotonic() < deadline and not any(o[2] == 503 for o in list(outcomes)):
        time.sleep(0.05)
    sts.set_mode("normal")
    back_at = time.time()
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and not any(o[0] > back_at and o[2] == 200 for o in list(outcomes)):
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=CLIENT_TIMEOUT + 2)

    first_503 = min((o[0] for o in outcomes if o[2] == 503), default=None)
    assert first_503 is not None, f"credentials never ran out: {len(outcomes)} requests, all {set(o[2] for o in outcomes)}"
    errors = {o[3] for o in outcomes if o[2] != 200}
    assert {o[2] for o in outcomes} <= {200, 503} and errors == {"sts_unavailable"}, errors
    assert all(o[2] == 200 for o in outcomes if o[0] < first_503 - MAX_WAIT_MS / 1000), "failures before expiry"
    assert any(o[2] == 200 and o[0] > back_at for o in outcomes), "no recovery after STS came back"
    assert max(o[1] for o in outcomes) < MAX_WAIT_MS / 1000 + 1.5, "a request waited longer than max_wait"
    invokes = lam.requests
    assert invokes and all(q.verified for q in invokes), [q.reason for q in invokes if not q.verified][:2]
    expiry = {c.access_key_id: c.expiration_epoch for c in sts.assume_roles if c.ok}
    left = min(expiry[q.access_key_id] - q.received_at for q in invokes)
    assert left > 28, f"an Invoke was signed {left:.1f}s before its credentials expired"
    assert len({q.access_key_id for q in invokes}) == 2, "the refreshed credentials were not used"
    stats = outcome_stats(envoy)
    failed = sum(1 for o in outcomes if o[2] == 503)
    assert stats["invocations.credentials_unavailable"] == failed, (stats, failed)
    assert stats["invocations.success"] == len(outcomes) - failed, stats
    assert stats["credentials.refresh_ok"] == 2 and stats["credentials.refresh_failed"] >= 1, stats
    print(f"expiry under load: {len(outcomes)} requests, {failed} × 503 while STS was down, "
          f"first 503 {first_503 - min(o[0] for o in outcomes):.1f}s into the load")
    assert_clean_log(envoy)


def test_rotation_at_the_edge_of_expiry_under_load(envoy_factory, sts_proxy_factory, standin_factory,
                                                   assume_role_aws):
    """Credentials of 33 s are usable for 3 s, so each refresh falls due exactly when they stop
    being usable: requests arriving during the AssumeRole wait for it and none fails
    (test_refresh_under_load_has_no_failures covers refresh well ahead of expiry)."""
    lam, sts, start = start_sts_envoy(envoy_factory, sts_proxy_factory, standin_factory, assume_role_aws)
    sts.set_rewrite_expiration(33)
    envoy = start()
    outcomes: list = []
    lock = threading.Lock()
    stop = threading.Event()
    threads = [threading.Thread(target=load, args=(envoy, stop, outcomes, lock, w), daemon=True) for w in range(2)]
    for t in threads:
        t.start()
    time.sleep(7.5)
    stop.set()
    for t in threads:
        t.join(timeout=CLIENT_TIMEOUT + 2)
    failed = [o for o in outcomes if o[2] != 200]
    assert not failed, f"{len(failed)}/{len(outcomes)} failed, e.g. {failed[:3]}"
    ars = sts.assume_roles
    assert len(ars) >= 3 and all(c.ok for c in ars), sts.describe()
    used = {q.access_key_id for q in lam.requests}
    assert len(used) >= 3, f"requests used {len(used)} credentials over {len(ars)} rotations"
    stats = outcome_stats(envoy)
    assert stats["credentials.refresh_ok"] == len(ars) and stats["credentials.refresh_failed"] == 0, stats
    assert stats["invocations.success"] == len(outcomes), stats
    print(f"edge rotation: {len(outcomes)} requests, {len(ars)} AssumeRoles, "
          f"max latency {max(o[1] for o in outcomes):.3f}s")
    assert_clean_log(envoy)
