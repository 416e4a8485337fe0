"""Per-route credential profiles (issue 15), end to end in Envoy 1.40 with moto (IAM auth on).

One plugin configuration serves several AWS identities: ``credential_profiles`` maps a
name to a ``credentials`` object (the top-level ``credentials`` is the profile ``default``),
and a route selects one by name with its metadata ``credentials`` (namespace
``proxy_wasm_lambda``). Each profile has its own cache, refresh, back-off and 503s, one
AssumeRole per profile per Envoy process whatever the number of workers, and its own stats
(``credentials.profile.<NAME>.refresh_ok`` / ``refresh_failed``).

"Three tenants": the source user ``assumer`` (may only call sts:AssumeRole) and, in moto,
* ``tenant-a-invoker``: trusts the assumer with ExternalId A, may lambda:Invoke;
* ``tenant-b-no-invoke``: trusts the assumer with ExternalId B, may NOT invoke;
* profile ``tenant-c`` asks for ``tenant-a-invoker`` with ExternalId C, which moto denies.
The top-level ``credentials`` (profile ``default``) are user ``denied``, which may not invoke
either. moto's authorization decides which identity signed: a 200 echo for tenant-a (the
only identity that may invoke), Lambda's refusal (403 → 502 ``lambda_api_error``, moto's
message naming the identity) for tenant-b and the default, and 503 ``sts_access_denied`` for
tenant-c at every moment, even while tenant-a holds the same role's credentials.

Route metadata selects by name only: an unknown name, an object, a number… is refused with
500 ``route_config_invalid`` naming the key ``credentials``, nothing is invoked, and the
default credentials are never used instead.
"""
from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass

import pytest
import requests
from botocore.exceptions import ClientError

import envoy_harness as eh
import log_audit
import moto_aws

REGION = "us-east-1"
LAMBDA_ENDPOINT = f"lambda.{REGION}.amazonaws.com"
STS_ENDPOINT = f"sts.{REGION}.amazonaws.com"
SESSION_NAME = "proxy-wasm-lambda"
HTTP_TIMEOUT = 15
WORKERS = 4
METRIC = "wasmcustom.proxy_wasm_lambda."

TENANT_A_ROLE = "tenant-a-invoker"
TENANT_B_ROLE = "tenant-b-no-invoke"
EXTERNAL_IDS = {
    "tenant-a": "ext-id:tenant-a/1001-8f3e",
    "tenant-b": "ext-id:tenant-b/2002-41c7",
    "tenant-c": "ext-id:tenant-c/3003-d09a",  # not the one tenant-a-invoker trusts
}
EXTERNAL_ID_ENV = {name: name.upper().replace("-", "_") + "_EXTERNAL_ID" for name in EXTERNAL_IDS}
# A secret given (wrongly) in route metadata: it must never come back, nor be used.
METADATA_SECRET = "metadata/Secret+Key0123456789abcdefXYZ"
STANDIN_KEYS = {
    "AKIDDEFAULTPROFILE01": "default/secret+Key0123456789abcdefXYZ",
    "AKIDTENANTXPROFILE01": "tenant-x/secret+Key0123456789abcdefXYZ",
}
INVOKE_LINE = re.compile(r"/2015-03-31/functions/[^/ ]+/invocations")


# --------------------------------------------------------------------------- moto: three tenants
@dataclass
class Tenants:
    source: moto_aws.Credentials
    role_arns: dict[str, str]  # profile -> the role it asks for


@pytest.fixture(scope="module")
def tenants(moto, assume_role_aws) -> Tenants:
    iam = moto.client("iam")
    source = assume_role_aws.assumer
    role_a = iam.create_role(
        RoleName=TENANT_A_ROLE,
        AssumeRolePolicyDocument=json.dumps(
            moto_aws.assume_role_trust_policy(source.user_arn, EXTERNAL_IDS["tenant-a"])),
    )["Role"]["Arn"]
    iam.put_role_policy(RoleName=TENANT_A_ROLE, PolicyName="invoke",
                        PolicyDocument=json.dumps(moto_aws.INVOKER_POLICY))
    role_b = iam.create_role(
        RoleName=TENANT_B_ROLE,
        AssumeRolePolicyDocument=json.dumps(
            moto_aws.assume_role_trust_policy(source.user_arn, EXTERNAL_IDS["tenant-b"])),
    )["Role"]["Arn"]
    iam.put_role_policy(RoleName=TENANT_B_ROLE, PolicyName="list-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "lambda:ListFunctions", "Resource": "*"}],
    }))
    for name, value in EXTERNAL_IDS.items():
        log_audit.AUDIT.add_secret(f"{name} ExternalId", value)
    log_audit.AUDIT.add_secret("secret in route metadata", METADATA_SECRET)
    for akid, secret in STANDIN_KEYS.items():
        log_audit.AUDIT.add_secret(f"static secret of {akid}", secret)
    return Tenants(source=source, role_arns={"tenant-a": role_a, "tenant-b": role_b, "tenant-c": role_a})


# --------------------------------------------------------------------------- helpers
def show(r: requests.Response) -> str:
    return f"HTTP {r.status_code} {r.text[:600]!r}"


def profile(tenants: Tenants, name: str, **assume_role) -> dict:
    return {
        **tenants.source.as_plugin_config(),
        "assume_role": {
            "role_arn": tenants.role_arns[name],
            "external_id_env": EXTERNAL_ID_ENV[name],
            "session_name": SESSION_NAME,
            "duration_seconds": 900,
            "sts_cluster": "sts",
            "sts_endpoint": STS_ENDPOINT,
            "timeout_ms": 2000,
            "max_wait_ms": 3000,
            **assume_role,
        },
    }


def route(prefix: str, metadata: dict | None = None) -> eh.Route:
    return eh.Route(prefix, "lambda", None, metadata)


def moto_invokes(moto) -> int:
    """How many Invokes moto has been asked for (its request log)."""
    return len(INVOKE_LINE.findall(moto.log_text()))


def stat(envoy: eh.Envoy, name: str) -> int:
    return int(envoy.stats().get(METRIC + name, 0))


def assert_route_refused(r: requests.Response, *never: str) -> dict:
    assert r.status_code == 500, f"expected 500 route_config_invalid:\n{show(r)}"
    assert r.headers.get("content-type", "").startswith("application/json"), show(r)
    body = r.json()
    assert body.get("error") == "route_config_invalid", show(r)
    assert "credentials" in body.get("message", ""), f"the message should name the key 'credentials':\n{show(r)}"
    for value in never:
        assert value not in r.text, f"{value!r} echoed in the error body:\n{show(r)}"
    return body


def lambda_refused(body: dict, identity: str) -> bool:
    """The filter's answer to moto's 403 for an identity that may not invoke (moto's message
    names the identity that signed, e.g. "User: arn:aws:iam::…:user/denied is not authorized")."""
    return (body.get("error") == "lambda_api_error" and body.get("type") == "AccessDenied"
            and body.get("lambda_status") == 403 and identity in body.get("message", ""))


@dataclass
class Outcome:
    path: str
    i: int
    status: int | None
    body: str
    started: float
    error: str | None = None

    def json(self) -> dict:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def brief(self) -> str:
        return f"{self.path}#{self.i}: {self.status} {self.body[:200]!r}{' ' + self.error if self.error else ''}"


def burst(envoy: eh.Envoy, paths: list[str], n: int, round_: int) -> list[Outcome]:
    """n concurrent POSTs to each path, interleaved, one connection each, released together."""
    jobs = [(path, i) for i in range(n) for path in paths]
    barrier = threading.Barrier(len(jobs))
    out: list[Outcome | None] = [None] * len(jobs)

    def one(k: int) -> None:
        path, i = jobs[k]
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        started = time.time()
        try:
            with requests.Session() as s:
                r = s.post(envoy.url(path), json={"path": path, "round": round_, "i": i}, timeout=HTTP_TIMEOUT)
            out[k] = Outcome(path, i, r.status_code, r.text, started)
        except requests.RequestException as e:
            out[k] = Outcome(path, i, None, "", started, repr(e))

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HTTP_TIMEOUT + 15)
    assert all(o is not None for o in out), "some burst requests never finished"
    return out  # type: ignore[return-value]


def expect_all(outcomes: list[Outcome], path: str, what: str, ok) -> None:
    mine = [o for o in outcomes if o.path == path]
    bad = [o for o in mine if not ok(o)]
    assert mine and not bad, f"{path} ({what}): {len(bad)}/{len(mine)} requests answered otherwise, e.g.\n" + \
        "\n".join(o.brief() for o in bad[:4])


# --------------------------------------------------------------------------- moto decides as assumed
def test_tenant_roles_with_botocore(moto, tenants):
    """What the three-tenant test relies on, checked with botocore against moto."""
    sts = moto_aws.make_client(moto.endpoint, "sts", tenants.source)
    creds = {}
    for name in ("tenant-a", "tenant-b"):
        creds[name] = sts.assume_role(RoleArn=tenants.role_arns[name], RoleSessionName=SESSION_NAME,
                                      ExternalId=EXTERNAL_IDS[name], DurationSeconds=900)["Credentials"]
    with pytest.raises(ClientError) as denied:
        sts.assume_role(RoleArn=tenants.role_arns["tenant-c"], RoleSessionName=SESSION_NAME,
                        ExternalId=EXTERNAL_IDS["tenant-c"], DurationSeconds=900)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"

    import botocore.session

    def lam(c):
        return botocore.session.get_session().create_client(
            "lambda", region_name=REGION, endpoint_url=moto.endpoint, aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])

    assert lam(creds["tenant-a"]).invoke(FunctionName="echo-fn", Payload=b'{"a":1}')["Payload"].read() == b'{"a":1}'
    with pytest.raises(ClientError) as e:
        lam(creds["tenant-b"]).invoke(FunctionName="echo-fn", Payload=b"{}")
    # moto answers an XML error that botocore's rest-json parser leaves as the message.
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    raw = e.value.response["Error"]["Message"]
    assert "<Code>AccessDenied</Code>" in raw and f"assumed-role/{TENANT_B_ROLE}/" in raw, raw


# --------------------------------------------------------------------------- three tenants
def test_three_tenants_each_route_signs_with_its_own_profile(envoy_factory, sts_proxy_factory, moto, tenants):
    sts = sts_proxy_factory()
    sts.set_mode("slow", delay_s=1.0)  # the first burst comes while the AssumeRoles are in flight
    config = {
        "function": "echo-fn",
        "region": REGION,
        "endpoint": LAMBDA_ENDPOINT,
        # The default profile: user "denied", which may not invoke. Only tenant-a's role may, so
        # moto's answer tells which identity signed each route's Invoke.
        "credentials": moto.denied.as_plugin_config(),
        "credential_profiles": {name: profile(tenants, name) for name in EXTERNAL_IDS},
    }
    env = {EXTERNAL_ID_ENV[name]: value for name, value in EXTERNAL_IDS.items()}
    routes = [
        route("/a", {"credentials": "tenant-a"}),
        route("/b", {"credentials": "tenant-b"}),
        route("/c", {"credentials": "tenant-c"}),
        route("/named-default", {"credentials": "default"}),
        route("/unknown", {"credentials": "tenant-z"}),
        route("/object", {"credentials": {"access_key_id": moto.invoker.access_key_id,
                                          "secret_access_key": METADATA_SECRET}}),
        route("/number", {"credentials": 7}),
        route("/", None),
    ]
    started = time.time()
    envoy = envoy_factory(config, routes=routes, clusters={"lambda": moto.port, "sts": sts.port},
                          host_env_keys=list(env), process_env=env, concurrency=WORKERS,
                          extra_args=["--file-flush-interval-msec", "100"])
    config_text = envoy.config_path.read_text()
    for name, value in EXTERNAL_IDS.items():
        assert value not in config_text, f"{name}'s ExternalId is in the Envoy config file"

    paths = ["/a", "/b", "/c", "/"]
    first = burst(envoy, paths, 6, 1)
    sts.set_mode("normal")
    deadline = time.monotonic() + 15
    while True:  # tenant-a holds the role's credentials from here on
        r = requests.post(envoy.url("/a"), json={"warm": "up"}, timeout=HTTP_TIMEOUT)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.status_code == 200, f"tenant-a never got its credentials: {show(r)}"
    second = burst(envoy, paths, 6, 2)
    outcomes = first + second

    # tenant-c: the wrong ExternalId, refused by STS at every moment (even while tenant-a holds
    # the same role's credentials), naming its profile.
    expect_all(outcomes, "/c", "wrong ExternalId: 503 sts_access_denied", lambda o: o.status == 503
               and o.json().get("error") == "sts_access_denied" and "tenant-c" in o.json().get("message", ""))
    # tenant-b: its own role, which may not invoke: moto refuses the Invoke (403), which the
    # filter answers as a Lambda API error; moto's message names the identity that signed.
    expect_all(outcomes, "/b", "tenant-b's role may not invoke: 502 lambda_api_error AccessDenied",
               lambda o: o.status == 502 and lambda_refused(o.json(), f"assumed-role/{TENANT_B_ROLE}/"))
    # The default profile (no credentials key, or "default"): user "denied".
    expect_all(outcomes, "/", "the default profile may not invoke: 502 lambda_api_error AccessDenied",
               lambda o: o.status == 502 and lambda_refused(o.json(), f":user/{moto.denied.user_name} "))
    r = requests.post(envoy.url("/named-default"), json={"named": "default"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 502 and lambda_refused(r.json(), f":user/{moto.denied.user_name} "), show(r)
    # tenant-a: the only identity here that may invoke; moto echoes.
    expect_all(outcomes, "/a", "200 echo", lambda o: o.status == 200 and o.json().get("path") == "/a")

    # Route metadata selects by name only; nothing is invoked for a refused route.
    before = moto_invokes(moto)
    assert_route_refused(requests.post(envoy.url("/unknown"), json={"x": 1}, timeout=HTTP_TIMEOUT))
    assert_route_refused(requests.post(envoy.url("/object"), json={"x": 2}, timeout=HTTP_TIMEOUT),
                         METADATA_SECRET, moto.invoker.access_key_id)
    assert_route_refused(requests.post(envoy.url("/number"), json={"x": 3}, timeout=HTTP_TIMEOUT))
    time.sleep(0.3)
    assert moto_invokes(moto) == before, "a refused route was invoked"

    # One AssumeRole per profile for the whole process (4 workers); tenant-c retried with back-off.
    time.sleep(0.5)
    elapsed = time.time() - started
    calls = sts.calls
    assert all(c.action == "AssumeRole" for c in calls), sts.describe()
    by_pair: dict[tuple[str | None, str | None], list] = {}
    for c in calls:
        by_pair.setdefault((c.form.get("RoleArn"), c.form.get("ExternalId")), []).append(c)
    pair = {name: (tenants.role_arns[name], EXTERNAL_IDS[name]) for name in EXTERNAL_IDS}
    assert set(by_pair) == set(pair.values()), f"AssumeRoles for other pairs:\n{sts.describe()}"
    for name in ("tenant-a", "tenant-b"):
        got = by_pair[pair[name]]
        assert len(got) == 1 and got[0].ok, f"{name}: expected one successful AssumeRole:\n{sts.describe()}"
    denied = by_pair[pair["tenant-c"]]
    assert all(c.status == 403 and c.error_code == "AccessDenied" for c in denied), sts.describe()
    bound = 2 + math.ceil(math.log2(elapsed + 1))  # back-off 1 s, 2 s, 4 s, ...
    assert len(denied) <= bound, f"{len(denied)} AssumeRoles for tenant-c in {elapsed:.1f}s:\n{sts.describe()}"
    gaps = [b.received_at - a.received_at for a, b in zip(denied, denied[1:])]
    assert all(g > 0.8 for g in gaps), f"tenant-c's AssumeRoles too close together: {gaps}"
    for c in calls:
        assert f"Credential={tenants.source.access_key_id}/" in (c.header("authorization") or ""), c.summary()

    # Stats per profile.
    assert stat(envoy, "credentials.profile.tenant-a.refresh_ok") == 1
    assert stat(envoy, "credentials.profile.tenant-a.refresh_failed") == 0
    assert stat(envoy, "credentials.profile.tenant-b.refresh_ok") == 1
    assert stat(envoy, "credentials.profile.tenant-b.refresh_failed") == 0
    assert stat(envoy, "credentials.profile.tenant-c.refresh_ok") == 0
    # tenant-c's back-off goes on: count its AssumeRoles again after the counter was read.
    failed = stat(envoy, "credentials.profile.tenant-c.refresh_failed")
    denied_by_now = [c for c in sts.calls if (c.form.get("RoleArn"), c.form.get("ExternalId")) == pair["tenant-c"]]
    assert 1 <= failed <= len(denied_by_now)

    envoy.stop()
    wasm_lines = [line for line in envoy.log().splitlines() if "[wasm]" in line]
    assert any("tenant-c" in line for line in wasm_lines), "no log line names the profile tenant-c"


# --------------------------------------------------------------------------- route metadata refusals
def test_route_metadata_selects_profiles_by_name_only(envoy_factory, standin_factory):
    """Route metadata `credentials` other than a known name: 500 route_config_invalid, nothing
    invoked, never the default credentials instead; the value is not echoed unless it is a name."""
    lam = standin_factory(keys=dict(STANDIN_KEYS))
    default_key, tenant_key = list(STANDIN_KEYS)
    config = {
        "function": "echo-fn",
        "region": REGION,
        "credentials": {"access_key_id": default_key, "secret_access_key": STANDIN_KEYS[default_key]},
        "credential_profiles": {
            "tenant-x": {"access_key_id": tenant_key, "secret_access_key": STANDIN_KEYS[tenant_key]},
        },
    }
    refused = {
        "/unknown": "tenant-z",
        "/object": {"access_key_id": tenant_key, "secret_access_key": METADATA_SECRET},
        "/number": 7,
        "/bool": True,
        "/list": ["tenant-x"],
        # (An empty string is not tested: Envoy hands an empty property value to the VM as
        # no value at all, the same as a route without the key.)
        "/not-a-name": "tenant x; drop",
    }
    routes = [route("/x", {"credentials": "tenant-x"}), route("/named-default", {"credentials": "default"})]
    routes += [route(path, {"credentials": value}) for path, value in refused.items()]
    routes.append(route("/", None))
    envoy = envoy_factory(config, routes=routes, clusters={"lambda": lam.port}, concurrency=2)

    for path, key in (("/x", tenant_key), ("/named-default", default_key), ("/", default_key)):
        r = requests.post(envoy.url(path), json={"path": path}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200 and r.json() == {"path": path}, f"{path}: {show(r)}"
        rec = lam.requests[-1]
        assert rec.verified and rec.access_key_id == key, (path, rec.access_key_id, rec.reason)
    lam.reset()
    for path, value in refused.items():
        r = requests.post(envoy.url(path), json={"path": path}, timeout=HTTP_TIMEOUT)
        never = [METADATA_SECRET, tenant_key] if path == "/object" else []
        if path == "/not-a-name":
            never.append(value)
        assert_route_refused(r, *never)
    time.sleep(0.3)
    assert lam.requests == [], f"refused routes were invoked: {[x.path for x in lam.requests]}"


def test_profiles_without_default_refuse_a_route_that_names_none(envoy_factory, standin_factory):
    lam = standin_factory(keys=dict(STANDIN_KEYS))
    tenant_key = list(STANDIN_KEYS)[1]
    config = {
        "function": "echo-fn",
        "region": REGION,
        "credential_profiles": {
            "tenant-x": {"access_key_id": tenant_key, "secret_access_key": STANDIN_KEYS[tenant_key]},
        },
    }
    envoy = envoy_factory(config, routes=[route("/x", {"credentials": "tenant-x"}), route("/", None)],
                          clusters={"lambda": lam.port})
    r = requests.post(envoy.url("/x"), json={"n": 1}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.json() == {"n": 1}, show(r)
    assert lam.requests[-1].access_key_id == tenant_key
    lam.reset()
    r = requests.post(envoy.url("/"), json={"n": 2}, timeout=HTTP_TIMEOUT)
    assert_route_refused(r)
    time.sleep(0.3)
    assert lam.requests == [], "a route without credentials was invoked"


# --------------------------------------------------------------------------- in the same area
def test_localstack_style_keys_are_accepted(envoy_factory, standin_factory):
    """LocalStack's default keys `test`/`test`: accepted at load, used to sign; one warning
    that the key id does not look like an AWS one."""
    lam = standin_factory(keys={"test": "test"})
    envoy = envoy_factory(
        {"function": "echo-fn", "region": REGION, "credentials": {"access_key_id": "test", "secret_access_key": "test"}},
        clusters={"lambda": lam.port}, concurrency=2,
    )
    for i in range(2):
        r = requests.post(envoy.url("/"), json={"localstack": i}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200 and r.json() == {"localstack": i}, show(r)
    assert [(rec.verified, rec.access_key_id) for rec in lam.requests] == [(True, "test"), (True, "test")]
    envoy.stop()
    warnings = [line for line in envoy.log().splitlines()
                if "[wasm]" in line and "[warning]" in line and "access key id" in line.lower()]
    assert len(warnings) == 1, "expected one warning about the access key id:\n" + "\n".join(warnings)


def test_missing_credentials_cluster_is_named_in_the_log(envoy_factory, standin_factory, assume_role_aws):
    lam = standin_factory()
    config = {
        "function": "echo-fn",
        "region": REGION,
        "credentials": {
            **assume_role_aws.assumer.as_plugin_config(),
            "assume_role": {"role_arn": assume_role_aws.role_arn, "external_id": assume_role_aws.external_id,
                            "sts_cluster": "nope", "sts_endpoint": STS_ENDPOINT, "max_wait_ms": 500},
        },
    }
    envoy = envoy_factory(config, clusters={"lambda": lam.port}, extra_args=["--file-flush-interval-msec", "100"])
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 503, show(r)
    envoy.stop()
    assert "no cluster named 'nope'" in envoy.log(), "the log should say that there is no cluster named 'nope'"
    assert lam.requests == []
