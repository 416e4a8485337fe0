"""AssumeRole credentials end to end: client -> Envoy 1.40 + proxy_wasm_lambda -> Lambda
(moto or the SigV4-verifying stand-in), with the filter's AssumeRole calls going through
the ``sts`` cluster to a recording STS stand-in (sts_proxy.py) that forwards to moto.

moto (IAM auth on) holds user ``assumer`` (may only call sts:AssumeRole) and role
``lambda-invoker`` (trusts the assumer when sts:ExternalId matches; may lambda:Invoke).
moto itself checks the AssumeRole signature, the trust policy and the ExternalId, and the
Invoke's signature, session token and the role's permission.

Note: moto denies a wrong ExternalId but lets an AssumeRole *without* ExternalId through
(its condition check passes on a missing key); no test relies on that.
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass

import pytest
import requests
from botocore.exceptions import ClientError

import envoy_harness as eh
import moto_aws
import sts_proxy as sp

REGION = "us-east-1"
LAMBDA_ENDPOINT = f"lambda.{REGION}.amazonaws.com"
STS_ENDPOINT = f"sts.{REGION}.amazonaws.com"
SESSION_NAME = "proxy-wasm-lambda"
HTTP_TIMEOUT = 15
_SIGNED_HEADERS_RE = re.compile(r"SignedHeaders=([^,\s]+)")
_CREDENTIAL_RE = re.compile(r"Credential=([^,\s]+)")


# --------------------------------------------------------------------------- helpers
def show(r: requests.Response) -> str:
    return f"HTTP {r.status_code}\nheaders: {dict(r.headers)}\nbody: {r.text[:600]!r}"


def assert_sts_error(r: requests.Response, error: str) -> dict:
    assert r.status_code == 503, f"expected 503 {error}, got:\n{show(r)}"
    assert r.headers.get("content-type", "").startswith("application/json"), show(r)
    body = r.json()
    assert body.get("error") == error, f"expected error={error!r}:\n{show(r)}"
    return body


def plugin_config(
    setup: moto_aws.AssumeRoleSetup,
    *,
    source: moto_aws.Credentials | None = None,
    external_id: str | None = None,
    **assume_role,
) -> dict:
    """The plugin config with credentials.assume_role. source=None: source keys from the VM
    environment. external_id defaults to the right one unless external_id_env is given."""
    ar = {
        "role_arn": setup.role_arn,
        "session_name": SESSION_NAME,
        "duration_seconds": 900,
        "sts_cluster": "sts",
        "sts_endpoint": STS_ENDPOINT,
        "timeout_ms": 2000,
        "max_wait_ms": 3000,
    }
    if "external_id_env" not in assume_role:
        ar["external_id"] = external_id if external_id is not None else setup.external_id
    ar.update(assume_role)
    creds: dict = {"assume_role": ar}
    if source is not None:
        creds.update(source.as_plugin_config())
    return {"function": "echo-fn", "region": REGION, "endpoint": LAMBDA_ENDPOINT, "credentials": creds}


def start_envoy(envoy_factory, sts: sp.StsProxy, lambda_port: int, config: dict, **kw) -> eh.Envoy:
    return envoy_factory(config, clusters={"lambda": lambda_port, "sts": sts.port}, **kw)


def post(envoy: eh.Envoy, payload, timeout: float = HTTP_TIMEOUT) -> tuple[requests.Response, float, float]:
    """POST, returning (response, start time.time(), latency s)."""
    start = time.time()
    t0 = time.monotonic()
    r = requests.post(envoy.url("/"), json=payload, timeout=timeout)
    return r, start, time.monotonic() - t0


@dataclass
class Outcome:
    started: float
    latency: float
    status: int | None
    body: str
    error: str | None = None


def burst(envoy: eh.Envoy, n: int, payload_of=lambda i: {"i": i}) -> list[Outcome]:
    """n concurrent POSTs (one thread and one connection each), released together."""
    barrier = threading.Barrier(n)
    out: list[Outcome | None] = [None] * n

    def one(i: int) -> None:
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        t = time.time()
        t0 = time.monotonic()
        try:
            with requests.Session() as s:
                r = s.post(envoy.url("/"), json=payload_of(i), timeout=HTTP_TIMEOUT)
            out[i] = Outcome(t, time.monotonic() - t0, r.status_code, r.text)
        except requests.RequestException as e:
            out[i] = Outcome(t, time.monotonic() - t0, None, "", repr(e))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HTTP_TIMEOUT + 15)
    assert all(o is not None for o in out), "some burst requests never finished"
    return out  # type: ignore[return-value]


def signed_headers(rec) -> list[str]:
    m = _SIGNED_HEADERS_RE.search(rec.header("authorization") or "")
    return m.group(1).split(";") if m else []


def credential_scope(auth: str | None) -> list[str]:
    m = _CREDENTIAL_RE.search(auth or "")
    return m.group(1).split("/") if m else []


def assert_assume_role_request(call: sp.StsCall, setup: moto_aws.AssumeRoleSetup, source_key: str,
                               external_id: str) -> None:
    """The AssumeRole as the proxy received it: form, Host, and signed by the source key for sts."""
    assert call.method == "POST" and call.path == "/", call.summary()
    assert call.header("host") == STS_ENDPOINT, call.headers
    form = call.form
    assert form.get("Action") == "AssumeRole", form.keys()
    assert form.get("Version") == "2011-06-15"
    assert form.get("RoleArn") == setup.role_arn
    assert form.get("RoleSessionName") == SESSION_NAME
    assert form.get("DurationSeconds") == "900"
    assert form.get("ExternalId") == external_id, "the AssumeRole carries another ExternalId than configured"
    scope = credential_scope(call.header("authorization"))
    assert scope[:1] == [source_key] and scope[2:4] == [REGION, "sts"], scope
    assert "x-amz-security-token" not in (call.header("authorization") or ""), "source keys have no token"


def envoy_log_tail(envoy: eh.Envoy, n: int = 4000) -> str:
    return f"\n----- envoy log tail -----\n{envoy.log()[-n:]}"


@pytest.fixture
def setup(assume_role_aws) -> moto_aws.AssumeRoleSetup:
    return assume_role_aws


# --------------------------------------------------------------------------- 1: the IAM setup itself
def test_moto_assume_role_setup_with_botocore(moto, setup):
    """The fixture's principals behave as the other tests assume (checked with botocore)."""
    sts = moto_aws.make_client(moto.endpoint, "sts", setup.assumer)
    creds = sts.assume_role(
        RoleArn=setup.role_arn, RoleSessionName=SESSION_NAME, ExternalId=setup.external_id, DurationSeconds=900
    )["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA"), creds["AccessKeyId"]

    with pytest.raises(ClientError) as denied:
        sts.assume_role(RoleArn=setup.role_arn, RoleSessionName=SESSION_NAME, ExternalId="wrong-external-id",
                        DurationSeconds=900)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    import botocore.session

    lam = botocore.session.get_session().create_client(
        "lambda", region_name=REGION, endpoint_url=moto.endpoint,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    assert lam.invoke(FunctionName="echo-fn", Payload=b'{"via":"role"}')["Payload"].read() == b'{"via":"role"}'
    # The source user itself may not invoke: a 200 through Envoy proves the temporary keys were used.
    with pytest.raises(ClientError) as e:
        moto_aws.make_client(moto.endpoint, "lambda", setup.assumer).invoke(FunctionName="echo-fn", Payload=b"{}")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# --------------------------------------------------------------------------- a: right ExternalId
def test_right_external_id_invokes_moto(envoy_factory, sts_proxy_factory, moto, setup):
    sts = sts_proxy_factory()
    envoy = start_envoy(envoy_factory, sts, moto.port, plugin_config(setup, source=setup.assumer))
    for i in range(5):
        r, _, _ = post(envoy, {"n": i, "via": "assumed-role"})
        assert r.status_code == 200, show(r) + envoy_log_tail(envoy)
        assert r.json() == {"n": i, "via": "assumed-role"}, show(r)
    calls = sts.calls
    assert len(calls) == 1, f"expected exactly one STS call:\n{sts.describe()}"
    assert calls[0].ok, calls[0].summary()
    assert_assume_role_request(calls[0], setup, setup.assumer.access_key_id, setup.external_id)
    envoy.stop()  # flushes the log
    assert any("AssumeRole" in line and "succeeded" in line for line in envoy.log().splitlines()), envoy_log_tail(envoy)


def test_invoke_is_signed_with_the_temporary_credentials(envoy_factory, sts_proxy_factory, standin_factory, setup):
    # The stand-in knows no key at first; the proxy registers the temporary key before
    # Envoy receives it. A request signed with the source key would fail verification.
    lam = standin_factory(keys={"AKIDNOTTHEKEYUSED000": "unused"})
    sts = sts_proxy_factory(on_credentials=lambda c: lam.add_key(c.access_key_id, c.secret_access_key))
    envoy = start_envoy(envoy_factory, sts, lam.port, plugin_config(setup, source=setup.assumer))
    for i in range(3):
        r, _, _ = post(envoy, {"k": i})
        assert r.status_code == 200, show(r) + envoy_log_tail(envoy)
        assert r.json() == {"k": i}
    [ar] = sts.assume_roles
    invokes = lam.requests
    assert len(invokes) == 3, [x.to_json() for x in invokes]
    for rec in invokes:
        assert rec.verified, rec.reason
        assert rec.access_key_id == ar.access_key_id != setup.assumer.access_key_id
        assert rec.header("x-amz-security-token") == ar.session_token, "Invoke lacks the session token"
        assert "x-amz-security-token" in signed_headers(rec), signed_headers(rec)
        assert rec.region == REGION
        assert rec.header("host") == LAMBDA_ENDPOINT


# --------------------------------------------------------------------------- b: wrong ExternalId
def test_wrong_external_id_is_access_denied(envoy_factory, sts_proxy_factory, standin_factory, setup):
    lam = standin_factory()
    sts = sts_proxy_factory()
    max_wait_s = 3.0
    envoy = start_envoy(
        envoy_factory, sts, lam.port,
        plugin_config(setup, source=setup.assumer, external_id="wrong-external-id", max_wait_ms=int(max_wait_s * 1000)),
    )
    for _ in range(2):
        r, _, latency = post(envoy, {"x": 1})
        assert_sts_error(r, "sts_access_denied")
        assert latency < max_wait_s + 0.5, f"503 after {latency:.2f}s, max_wait is {max_wait_s}s"
    assert "wrong-external-id" not in r.text
    denied = sts.assume_roles
    assert denied and all(c.status == 403 and c.error_code == "AccessDenied" for c in denied), sts.describe()
    assert denied[0].form.get("ExternalId") == "wrong-external-id"
    time.sleep(0.2)
    assert lam.requests == [], "an Invoke reached Lambda without credentials"


# --------------------------------------------------------------------------- c: ExternalId and keys from the environment
def test_external_id_and_keys_from_host_env_not_logged(envoy_factory, sts_proxy_factory, moto, setup):
    secrets = {
        "AWS_ACCESS_KEY_ID": setup.assumer.access_key_id,
        "AWS_SECRET_ACCESS_KEY": setup.assumer.secret_access_key,
        "LAMBDA_EXTERNAL_ID": setup.external_id,
    }
    sts = sts_proxy_factory()
    envoy = start_envoy(
        envoy_factory, sts, moto.port,
        plugin_config(setup, source=None, external_id_env="LAMBDA_EXTERNAL_ID"),
        host_env_keys=list(secrets), process_env=secrets, log_level="debug",
    )
    config_text = envoy.config_path.read_text()
    for name in ("AWS_SECRET_ACCESS_KEY", "LAMBDA_EXTERNAL_ID"):
        assert secrets[name] not in config_text, f"{name}'s value is in the Envoy config file"
    r, _, _ = post(envoy, {"env": True})
    assert r.status_code == 200, show(r) + envoy_log_tail(envoy)
    assert r.json() == {"env": True}
    [ar] = sts.calls
    assert_assume_role_request(ar, setup, setup.assumer.access_key_id, setup.external_id)
    envoy.stop()
    log = envoy.log()
    lines = log.splitlines()
    assert any("[debug]" in line for line in lines), "envoy did not log at debug level"
    assert any("AssumeRole" in line and "succeeded" in line for line in lines), "no AssumeRole success logged"
    # Names may appear (config dump); values never, anywhere.
    never = {
        "external id": setup.external_id,
        "source secret access key": setup.assumer.secret_access_key,
        "temporary secret access key": ar.secret_access_key,
    }
    for what, value in never.items():
        assert value
        leaks = [line for line in lines if value in line]
        assert not leaks, f"{what} found in the envoy log:\n" + "\n".join(leaks[:5])
    # Envoy's own router debug lines print the dispatched Invoke's headers (session token
    # included); that is Envoy's logging, not the filter's. Reported, not asserted.
    token_lines = [line for line in lines if ar.session_token in line]
    own = [line for line in token_lines if "[wasm]" in line]
    assert not own, "the filter logged the session token:\n" + "\n".join(own[:3])
    print(f"session token appears in {len(token_lines)} Envoy debug line(s), none from the filter")


# --------------------------------------------------------------------------- d: concurrency 4, one AssumeRole
def test_first_burst_on_four_workers_makes_one_assume_role(envoy_factory, sts_proxy_factory, moto, setup):
    sts = sts_proxy_factory()
    # Hold the AssumeRole a little, so the burst arrives while it is in flight and every
    # worker VM ticks (and would fetch) meanwhile.
    sts.set_mode("slow", delay_s=1.0)
    envoy = start_envoy(
        envoy_factory, sts, moto.port, plugin_config(setup, source=setup.assumer),
        concurrency=4, log_level="debug",
    )
    n = 40
    results = burst(envoy, n, lambda i: {"burst": i})
    bad = [(i, o) for i, o in enumerate(results) if o.status != 200 or json.loads(o.body or "null") != {"burst": i}]
    assert not bad, f"{len(bad)}/{n} failed, e.g. {bad[:3]}" + envoy_log_tail(envoy)
    time.sleep(1.0)  # a late second fetch would show up here
    calls = sts.calls
    assert len(calls) == 1, f"expected exactly one AssumeRole for 4 workers:\n{sts.describe()}"
    assert calls[0].ok
    # The requests were spread over several workers, and waited there for the one fetch.
    waiting_threads = {m.group(1) for m in re.finditer(r"\]\[(\d+)\]\[debug\].*waiting for credentials", envoy.log())}
    assert len(waiting_threads) >= 2, f"parked requests on worker threads {waiting_threads}" + envoy_log_tail(envoy)


# --------------------------------------------------------------------------- e: refresh under load
def test_refresh_under_load_has_no_failures(envoy_factory, sts_proxy_factory, standin_factory, setup):
    lifetime_s = 45
    load_s = 40
    lam = standin_factory(keys={"AKIDNOTTHEKEYUSED000": "unused"})
    key_expiry: dict[str, float] = {}

    def register(call: sp.StsCall) -> None:
        key_expiry[call.access_key_id] = call.expiration_epoch
        lam.add_key(call.access_key_id, call.secret_access_key)

    sts = sts_proxy_factory(on_credentials=register)
    sts.set_rewrite_expiration(lifetime_s)
    envoy = start_envoy(envoy_factory, sts, lam.port, plugin_config(setup, source=setup.assumer), concurrency=2)

    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + load_s

    def worker(w: int) -> None:
        with requests.Session() as s:
            i = 0
            while time.monotonic() < stop_at:
                t, t0 = time.time(), time.monotonic()
                try:
                    r = s.post(envoy.url("/"), json={"w": w, "i": i}, timeout=HTTP_TIMEOUT)
                    o = Outcome(t, time.monotonic() - t0, r.status_code, r.text)
                except requests.RequestException as e:
                    o = Outcome(t, time.monotonic() - t0, None, "", repr(e))
                with lock:
                    outcomes.append(o)
                i += 1
                time.sleep(0.02)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=load_s + HTTP_TIMEOUT + 5)

    failed = [o for o in outcomes if o.status != 200]
    assert len(outcomes) > 100, f"only {len(outcomes)} requests in {load_s}s"
    assert not failed, f"{len(failed)}/{len(outcomes)} requests failed, e.g. {failed[:3]}" + envoy_log_tail(envoy)

    ars = sts.assume_roles
    assert all(c.ok for c in ars), sts.describe()
    assert len(ars) >= 2, f"no refresh in {load_s}s of {lifetime_s}s credentials:\n{sts.describe()}"
    for prev, new in zip(ars, ars[1:]):
        exp = prev.expiration_epoch
        assert new.received_at >= prev.answered_at, f"two AssumeRoles in flight at once:\n{sts.describe()}"
        assert new.received_at < exp, f"refresh after expiry:\n{sts.describe()}"
        # Not a refresh loop: no earlier than half the lifetime (with some slack for clocks).
        assert new.received_at - prev.answered_at > lifetime_s / 2 - 10, f"refresh too early:\n{sts.describe()}"

    invokes = lam.requests
    assert all(rec.verified for rec in invokes), [rec.reason for rec in invokes if not rec.verified][:3]
    used = {rec.access_key_id for rec in invokes}
    assert used <= {c.access_key_id for c in ars}, "an Invoke used a key STS did not hand out"
    assert len(used) >= 2, f"the refreshed key was never used: {used}"
    # Never signed with credentials that expire within min_validity (30 s), with 2 s slack.
    left = [key_expiry[rec.access_key_id] - rec.received_at for rec in invokes]
    assert min(left) > 28, f"an Invoke was signed with credentials {min(left):.1f}s before their expiry"
    assert all(rec.header("x-amz-security-token") for rec in invokes)
    print(f"refresh under load: {len(outcomes)} requests, {len(ars)} AssumeRoles, "
          f"max latency {max(o.latency for o in outcomes):.3f}s, min validity left {min(left):.1f}s")


# --------------------------------------------------------------------------- f: STS down, then back
@pytest.mark.parametrize("down_style", ["close", "503"])
def test_sts_down_then_recovers_without_restart(envoy_factory, sts_proxy_factory, moto, setup, down_style):
    sts = sts_proxy_factory()
    sts.set_mode("down", down_style=down_style)
    max_wait_s = 1.5
    envoy = start_envoy(
        envoy_factory, sts, moto.port, plugin_config(setup, source=setup.assumer, max_wait_ms=int(max_wait_s * 1000))
    )
    r, _, latency = post(envoy, {"down": True})
    assert_sts_error(r, "sts_unavailable")
    assert max_wait_s - 0.2 < latency < max_wait_s + 1.0, f"503 after {latency:.2f}s (max_wait {max_wait_s}s)"
    down_calls = sts.calls
    assert down_calls and all(not c.ok for c in down_calls), sts.describe()

    sts.set_mode("normal")
    switched = time.monotonic()
    deadline = switched + 10
    statuses = []
    while time.monotonic() < deadline:
        r, _, _ = post(envoy, {"back": True})
        statuses.append(r.status_code)
        if r.status_code == 200:
            break
        assert_sts_error(r, "sts_unavailable")
    assert statuses[-1] == 200, f"no recovery within 10s: {statuses}" + envoy_log_tail(envoy)
    recovered_after = time.monotonic() - switched
    assert r.json() == {"back": True}
    calls = sts.calls
    ok = [c for c in calls if c.ok]
    assert len(ok) == 1, sts.describe()
    # Backoff: the failed attempts are spaced 1 s, 2 s, 4 s ... apart, not a tight loop.
    failed = [c for c in calls if not c.ok]
    gaps = [b.received_at - a.received_at for a, b in zip(failed, failed[1:])]
    assert all(g > 0.8 for g in gaps), f"failed AssumeRoles too close together: {gaps}\n{sts.describe()}"
    print(f"down_style={down_style}: {len(failed)} failed attempts, gaps {[round(g, 2) for g in gaps]}, "
          f"recovered {recovered_after:.2f}s after STS came back")


def test_sts_timeout_is_unavailable(envoy_factory, sts_proxy_factory, standin_factory, setup):
    """An AssumeRole slower than timeout_ms is abandoned (sts_unavailable), and retried with
    backoff, one call at a time."""
    lam = standin_factory()
    sts = sts_proxy_factory()
    sts.set_mode("slow", delay_s=2.0)
    envoy = start_envoy(
        envoy_factory, sts, lam.port,
        plugin_config(setup, source=setup.assumer, timeout_ms=500, max_wait_ms=1500),
    )
    r, _, latency = post(envoy, {"x": 1})
    assert_sts_error(r, "sts_unavailable")
    assert 1.3 < latency < 2.5, f"503 after {latency:.2f}s (max_wait 1.5s)"
    calls = sts.calls
    assert 1 <= len(calls) <= 2, sts.describe()
    assert lam.requests == []


# --------------------------------------------------------------------------- g: STS slow
def test_slow_sts_requests_wait_and_resume(envoy_factory, sts_proxy_factory, moto, setup):
    delay_s = 1.5
    sts = sts_proxy_factory()
    sts.set_mode("slow", delay_s=delay_s)
    envoy = start_envoy(
        envoy_factory, sts, moto.port, plugin_config(setup, source=setup.assumer, max_wait_ms=3000, timeout_ms=2000)
    )
    results = burst(envoy, 4, lambda i: {"slow": i})
    [ar] = sts.calls
    assert ar.ok, ar.summary()
    for i, o in enumerate(results):
        assert o.status == 200, f"request {i}: {o}" + envoy_log_tail(envoy)
        assert json.loads(o.body) == {"slow": i}
        # Sent before the credentials existed, answered only after they arrived.
        assert o.started < ar.answered_at, (o, ar.summary())
        assert o.started + o.latency >= ar.answered_at - 0.05, (o, ar.summary())
    waited = min(o.latency for o in results)
    assert waited >= 0.6, f"requests did not wait for the slow AssumeRole: min latency {waited:.2f}s"
    print(f"slow STS: waits {[round(o.latency, 2) for o in results]}s; AssumeRole answered "
          f"{ar.answered_at - ar.received_at:.2f}s after it was sent")


# --------------------------------------------------------------------------- h: scripted STS errors
NON_RETRYABLE = [
    pytest.param(403, sp.sts_error_xml("AccessDenied", "User is not authorized to perform: sts:AssumeRole"),
                 "sts_access_denied", id="403-AccessDenied"),
    pytest.param(403, sp.sts_error_xml("InvalidClientTokenId", "The security token included in the request is invalid"),
                 "sts_invalid_credentials", id="403-InvalidClientTokenId"),
    pytest.param(400, sp.sts_error_xml("ValidationError", "1 validation error detected"),
                 "sts_rejected", id="400-ValidationError"),
]


@pytest.mark.parametrize("status,body,error", NON_RETRYABLE)
def test_non_retryable_sts_error_fails_quickly(envoy_factory, sts_proxy_factory, standin_factory, setup,
                                               status, body, error):
    lam = standin_factory()
    sts = sts_proxy_factory()
    sts.set_mode("fail", fail_status=status, fail_body=body)
    max_wait_s = 10.0
    envoy = start_envoy(
        envoy_factory, sts, lam.port,
        plugin_config(setup, source=setup.assumer, max_wait_ms=int(max_wait_s * 1000)),
    )
    r, _, latency = post(envoy, {"x": 1})
    assert_sts_error(r, error)
    # The first attempt failed before the request came; it waits at most for the next
    # attempt (1 s backoff), whose non-retryable failure fails it at once.
    assert latency < 2.5, f"503 {error} only after {latency:.2f}s (max_wait {max_wait_s}s)" + envoy_log_tail(envoy)
    assert lam.requests == []
    assert sts.calls and all(c.status == status for c in sts.calls)


@pytest.mark.parametrize("status,body,error", NON_RETRYABLE[:1])
def test_non_retryable_failure_wakes_waiting_requests_at_once(envoy_factory, sts_proxy_factory, standin_factory,
                                                              setup, status, body, error):
    """Requests parked while the AssumeRole is in flight are failed when its answer arrives."""
    lam = standin_factory()
    sts = sts_proxy_factory()
    sts.set_mode("fail", fail_status=status, fail_body=body, delay_s=1.5)
    envoy = start_envoy(
        envoy_factory, sts, lam.port, plugin_config(setup, source=setup.assumer, max_wait_ms=10000)
    )
    results = burst(envoy, 3)
    [first] = sts.calls[:1]
    assert any(o.started < first.answered_at for o in results), "no request was parked during the AssumeRole"
    for o in results:
        assert o.status == 503 and json.loads(o.body).get("error") == error, o
        done = o.started + o.latency
        if o.started < first.answered_at:
            assert done - first.answered_at < 0.5, (
                f"parked request failed {done - first.answered_at:.2f}s after the STS failure", o, first.summary())
    assert lam.requests == []


RETRYABLE = [
    pytest.param(400, b"<html>not sts</html>", "sts_bad_response", id="400-garbage"),
    pytest.param(200, b"definitely not xml", "sts_bad_response", id="200-garbage"),
    pytest.param(400, sp.sts_error_xml("Throttling", "Rate exceeded"), "sts_throttled", id="400-Throttling"),
    pytest.param(500, sp.sts_error_xml("InternalFailure", "oops", kind="Receiver"), "sts_unavailable", id="500"),
]


@pytest.mark.parametrize("status,body,error", RETRYABLE)
def test_retryable_sts_error_waits_max_wait(envoy_factory, sts_proxy_factory, standin_factory, setup,
                                            status, body, error):
    lam = standin_factory()
    sts = sts_proxy_factory()
    sts.set_mode("fail", fail_status=status, fail_body=body)
    max_wait_s = 1.2
    envoy = start_envoy(
        envoy_factory, sts, lam.port,
        plugin_config(setup, source=setup.assumer, max_wait_ms=int(max_wait_s * 1000)),
    )
    r, _, latency = post(envoy, {"x": 1})
    assert_sts_error(r, error)
    assert max_wait_s - 0.2 < latency < max_wait_s + 1.0, f"503 after {latency:.2f}s (max_wait {max_wait_s}s)"
    assert lam.requests == []
