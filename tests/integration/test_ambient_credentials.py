"""Ambient credentials end to end: Envoy 1.40 + proxy_wasm_lambda fetching the instance role
through IMDSv2 and the container credentials endpoint from local stand-ins that follow AWS's
documented behaviour (ambient_standins.py), signing Invokes that moto (IAM auth on) checks,
and chaining into moto's AssumeRole with an ExternalId.

The stand-ins hand out real temporary credentials from moto: an AssumeRole of the instance
role ``ec2-instance-role`` with the instance id as session name, as EC2 does. botocore's own
providers (InstanceMetadataProvider, ContainerProvider) read the same stand-ins, so the
stand-ins are checked against the SDK, not only against this filter.
"""
from __future__ import annotations

import json
import time

import pytest
import requests
from botocore.credentials import ContainerProvider, InstanceMetadataProvider
from botocore.exceptions import CredentialRetrievalError
from botocore.utils import InstanceMetadataFetcher

import ambient_standins as ams
import log_audit
import moto_aws

REGION = "us-east-1"
LAMBDA_ENDPOINT = f"lambda.{REGION}.amazonaws.com"
STS_ENDPOINT = f"sts.{REGION}.amazonaws.com"
INSTANCE_ROLE = "ec2-instance-role"
INSTANCE_ID = "i-0123456789abcdef0"
CHAINED_ROLE = "lambda-invoker-chained"
CHAINED_EXTERNAL_ID = "ext-id:chained/0815"
CONTAINER_TOKEN = "pod-identity-token-0123456789abcdef"
HTTP_TIMEOUT = 15


def show(r: requests.Response) -> str:
    return f"HTTP {r.status_code} {r.text[:500]!r}"


class AmbientAws:
    def __init__(self, moto):
        iam = moto.client("iam")
        acct = moto.account_id
        self.instance_role_arn = iam.create_role(
            RoleName=INSTANCE_ROLE,
            AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": moto.admin.user_arn}, "Action": "sts:AssumeRole"}],
            }),
        )["Role"]["Arn"]
        iam.put_role_policy(RoleName=INSTANCE_ROLE, PolicyName="invoke-and-assume", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["lambda:Invoke", "sts:AssumeRole"], "Resource": "*"}],
        }))
        session_arn = f"arn:aws:sts::{acct}:assumed-role/{INSTANCE_ROLE}/{INSTANCE_ID}"
        self.chained_role_arn = iam.create_role(
            RoleName=CHAINED_ROLE,
            AssumeRolePolicyDocument=json.dumps(
                moto_aws.assume_role_trust_policy([self.instance_role_arn, session_arn], CHAINED_EXTERNAL_ID)
            ),
        )["Role"]["Arn"]
        iam.put_role_policy(RoleName=CHAINED_ROLE, PolicyName="invoke",
                            PolicyDocument=json.dumps(moto_aws.INVOKER_POLICY))
        self.sts = moto.client("sts")

    def mint(self, session_name: str = INSTANCE_ID) -> ams.Minted:
        c = self.sts.assume_role(RoleArn=self.instance_role_arn, RoleSessionName=session_name,
                                 DurationSeconds=3600)["Credentials"]
        expiration = c["Expiration"].timestamp()
        return ams.Minted(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"],
                          time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiration)))


@pytest.fixture(scope="module")
def aws(moto) -> AmbientAws:
    return AmbientAws(moto)


@pytest.fixture
def imds_factory(aws):
    made = []

    def make(expires_in: float | None = None, **kw) -> ams.ImdsStandIn:
        s = ams.ImdsStandIn(aws.mint, **kw)
        s.expires_in = expires_in
        s.start()
        made.append(s)
        log_audit.AUDIT.ambient_standins.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def container_factory(aws):
    made = []

    def make(**kw) -> ams.ContainerStandIn:
        s = ams.ContainerStandIn(lambda: aws.mint(session_name="ecs-task"), **kw).start()
        made.append(s)
        log_audit.AUDIT.ambient_standins.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def plugin(credentials: dict) -> dict:
    return {"function": "echo-fn", "region": REGION, "endpoint": LAMBDA_ENDPOINT, "credentials": credentials}


def container_env(standin: ams.ContainerStandIn, token: str | None) -> dict[str, str]:
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{standin.port}{standin.path}"}
    if token is not None:
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = token
        log_audit.AUDIT.add_secret("container authorization token", token, session_token=True)
    return env


def start(envoy_factory, config: dict, clusters: dict, env: dict[str, str] | None = None, **kw):
    env = env or {}
    # Envoy flushes its log file every 10 s by default; the tests read it sooner.
    return envoy_factory(config, clusters=clusters, host_env_keys=list(env), process_env=env,
                         extra_args=["--file-flush-interval-msec", "100"], **kw)


def post(envoy, payload) -> requests.Response:
    return requests.post(envoy.url("/"), json=payload, timeout=HTTP_TIMEOUT)


def stat(envoy, name: str) -> int:
    return int(envoy.stats().get(f"wasmcustom.proxy_wasm_lambda.{name}", 0))


def origin_lines(envoy, timeout: float = 8.0) -> list[str]:
    """The credential-origin log lines (Envoy flushes its log file every few seconds)."""
    deadline = time.time() + timeout
    while True:
        lines = [l for l in envoy.log().splitlines() if "proxy_wasm_lambda: credentials: " in l]
        if lines or time.time() > deadline:
            return lines
        time.sleep(0.2)


# --------------------------------------------------------------------------- the stand-ins vs AWS docs and botocore
def test_imds_standin_follows_imdsv2_and_botocore_reads_it(imds_factory):
    imds = imds_factory()
    base = f"http://127.0.0.1:{imds.port}"
    # IMDSv2 required: no token, a made-up token, a bad TTL → refused.
    assert requests.get(base + ams.ROLE_PATH, timeout=5).status_code == 401
    assert requests.get(base + ams.ROLE_PATH, headers={ams.TOKEN_HEADER: "AQAEAforged"}, timeout=5).status_code == 401
    assert requests.put(base + ams.TOKEN_PATH, timeout=5).status_code == 400
    assert requests.put(base + ams.TOKEN_PATH, headers={ams.TTL_HEADER: "21601"}, timeout=5).status_code == 400
    assert requests.put(base + ams.TOKEN_PATH, headers={ams.TTL_HEADER: "60", "X-Forwarded-For": "10.0.0.1"},
                        timeout=5).status_code == 403
    # A token with a 1 s TTL works, then expires.
    r = requests.put(base + ams.TOKEN_PATH, headers={ams.TTL_HEADER: "1"}, timeout=5)
    assert r.status_code == 200 and r.headers[ams.TTL_HEADER] == "1"
    token = r.text
    assert requests.get(base + ams.ROLE_PATH, headers={ams.TOKEN_HEADER: token}, timeout=5).text == INSTANCE_ROLE
    time.sleep(1.2)
    assert requests.get(base + ams.ROLE_PATH, headers={ams.TOKEN_HEADER: token}, timeout=5).status_code == 401

    fetcher = InstanceMetadataFetcher(timeout=2, num_attempts=1, base_url=base + "/")
    creds = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
    assert creds is not None, "botocore found no instance role credentials"
    frozen = creds.get_frozen_credentials()
    assert frozen.access_key == imds.credentials().access_key_id
    assert frozen.token == imds.credentials().session_token
    # botocore took the IMDSv2 path too: PUT, then GETs carrying the token.
    methods = [(c.method, c.path, c.status) for c in imds.calls[-3:]]
    assert methods == [("PUT", ams.TOKEN_PATH, 200), ("GET", ams.ROLE_PATH, 200),
                       ("GET", ams.ROLE_PATH + INSTANCE_ROLE, 200)], methods


def test_container_standin_and_botocore_agree_on_the_token(container_factory):
    c = container_factory(auth_token=CONTAINER_TOKEN, extra={"AccountId": "123456789012"})
    env = container_env(c, CONTAINER_TOKEN)
    creds = ContainerProvider(environ=env).load()
    assert creds.get_frozen_credentials().access_key == c.credentials().access_key_id
    assert c.calls[-1].header("Authorization") == CONTAINER_TOKEN
    with pytest.raises(CredentialRetrievalError):
        ContainerProvider(environ=container_env(c, "wrong-token-value-0000")).load()
    assert c.calls[-1].status == 401


# --------------------------------------------------------------------------- IMDS
def test_imds_credentials_sign_invokes_moto_checks(envoy_factory, imds_factory, moto):
    imds = imds_factory()
    envoy = start(envoy_factory, plugin({"source": "imds", "imds_cluster": "imds"}),
                  {"lambda": moto.port, "imds": imds.port}, concurrency=2)
    for i in range(4):
        r = post(envoy, {"via": "imds", "i": i})
        assert r.status_code == 200, show(r)
        assert r.json() == {"via": "imds", "i": i}
    calls = [(c.method, c.path, c.status) for c in imds.calls]
    # One fetch for the whole process (2 workers), IMDSv2 from the first call.
    assert calls == [("PUT", ams.TOKEN_PATH, 200), ("GET", ams.ROLE_PATH, 200),
                     ("GET", ams.ROLE_PATH + INSTANCE_ROLE, 200)], calls
    assert imds.calls[0].header(ams.TTL_HEADER) == "21600"
    token = next(iter(imds.tokens))
    assert all(c.header(ams.TOKEN_HEADER) == token for c in imds.calls[1:])
    assert stat(envoy, "credentials.imds.refresh_ok") == 1
    assert stat(envoy, "credentials.refresh_ok") == 1
    assert stat(envoy, "credentials.imds.refresh_failed") == 0
    lines = origin_lines(envoy)
    assert len(lines) == 1 and "imds (IMDSv2 through cluster 'imds'" in lines[0], lines


def test_imds_token_is_reused_and_renewed_after_a_401(envoy_factory, imds_factory, moto):
    # Every answer's credentials expire 40 s later: usable for 10 s, so refreshed every
    # ~10 s (half their usable life), by whichever of the VMs wins the lease.
    imds = imds_factory(expires_in=40)
    envoy = start(envoy_factory, plugin({"source": "imds", "imds_cluster": "imds", "imds_token_ttl_seconds": 3600}),
                  {"lambda": moto.port, "imds": imds.port}, concurrency=2)
    assert post(envoy, {"n": 1}).status_code == 200

    def wait_for_fetches(n: int) -> None:
        deadline = time.time() + 25
        while len(imds.credential_calls()) < n and time.time() < deadline:
            time.sleep(0.2)
        assert len(imds.credential_calls()) >= n, [(c.method, c.path, c.status) for c in imds.calls]

    wait_for_fetches(2)
    # The second fetch reused the token and role name (shared by the VMs): the credentials
    # GET alone, with the first token.
    calls = [(c.method, c.path, c.status) for c in imds.calls[:4]]
    assert calls[3:] == [("GET", ams.ROLE_PATH + INSTANCE_ROLE, 200)], calls
    assert imds.calls[3].header(ams.TOKEN_HEADER) == imds.calls[1].header(ams.TOKEN_HEADER)
    r = post(envoy, {"n": 2})
    assert r.status_code == 200, show(r)
    # The token is revoked (as when it runs out early): the next fetch gets a 401, asks for
    # a new token, and retries.
    seen = len(imds.calls)
    imds.revoke_tokens()
    deadline = time.time() + 25
    while len(imds.calls) < seen + 3 and time.time() < deadline:
        time.sleep(0.2)
    tail = [(c.method, c.path, c.status) for c in imds.calls[seen:seen + 3]]
    assert tail == [("GET", ams.ROLE_PATH + INSTANCE_ROLE, 401), ("PUT", ams.TOKEN_PATH, 200),
                    ("GET", ams.ROLE_PATH + INSTANCE_ROLE, 200)], tail
    assert imds.calls[seen + 1].header(ams.TTL_HEADER) == "3600"
    r = post(envoy, {"n": 3})
    assert r.status_code == 200, show(r)
    assert stat(envoy, "credentials.imds.refresh_ok") >= 3
    assert stat(envoy, "credentials.imds.refresh_failed") == 0


def test_imds_down_is_503_unavailable_then_recovers(envoy_factory, imds_factory, moto):
    imds = imds_factory()
    imds.fail_next(500, n=1000)
    envoy = start(envoy_factory, plugin({"source": "imds", "imds_cluster": "imds", "max_wait_ms": 800}),
                  {"lambda": moto.port, "imds": imds.port})
    t0 = time.monotonic()
    r = post(envoy, {"n": 1})
    assert r.status_code == 503, show(r)
    assert r.json()["error"] == "sts_unavailable", show(r)
    assert "IMDS" in r.json()["message"], show(r)
    assert 0.6 < time.monotonic() - t0 < 5
    assert stat(envoy, "credentials.imds.refresh_failed") >= 1
    assert stat(envoy, "invocations.credentials_unavailable") == 1
    imds.fail_next(500, n=0)
    deadline = time.time() + 15
    while time.time() < deadline:
        r = post(envoy, {"n": 2})
        if r.status_code == 200:
            break
        time.sleep(0.5)
    assert r.status_code == 200, show(r)
    assert stat(envoy, "credentials.imds.refresh_ok") == 1


# --------------------------------------------------------------------------- container
def test_container_credentials_with_authorization_token(envoy_factory, container_factory, moto):
    c = container_factory(auth_token=CONTAINER_TOKEN, extra={"AccountId": moto.account_id})
    envoy = start(envoy_factory, plugin({"source": "container", "container_cluster": "container"}),
                  {"lambda": moto.port, "container": c.port}, env=container_env(c, CONTAINER_TOKEN))
    r = post(envoy, {"via": "container"})
    assert r.status_code == 200, show(r)
    assert r.json() == {"via": "container"}
    assert [(x.method, x.path, x.status) for x in c.calls] == [("GET", "/v1/credentials", 200)]
    assert c.calls[0].header("Authorization") == CONTAINER_TOKEN
    assert c.calls[0].header("Host") == f"127.0.0.1:{c.port}"
    assert stat(envoy, "credentials.container.refresh_ok") == 1


def test_container_wrong_token_is_503_at_once(envoy_factory, container_factory, moto):
    c = container_factory(auth_token=CONTAINER_TOKEN)
    envoy = start(envoy_factory,
                  plugin({"source": "container", "container_cluster": "container", "max_wait_ms": 5000}),
                  {"lambda": moto.port, "container": c.port}, env=container_env(c, "wrong-token-value-0000"))
    time.sleep(0.5)  # the first tick's fetch has failed
    t0 = time.monotonic()
    r = post(envoy, {"n": 1})
    assert r.status_code == 503, show(r)
    assert r.json()["error"] == "sts_invalid_credentials", show(r)
    assert "container credentials" in r.json()["message"]
    assert time.monotonic() - t0 < 2, "a failure waiting cannot fix must not wait max_wait_ms"
    assert c.calls and all(x.status == 401 for x in c.calls)
    assert stat(envoy, "credentials.container.refresh_failed") >= 1
    assert stat(envoy, "credentials.container.refresh_ok") == 0


def test_token_file_without_token_is_a_config_error(envoy_factory, container_factory, moto):
    c = container_factory()
    env = container_env(c, None)
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
    envoy = start(envoy_factory, plugin({"source": "container", "container_cluster": "container"}),
                  {"lambda": moto.port, "container": c.port}, env=env, expect_failure=True)
    assert envoy.failed
    assert "invalid configuration: field 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE'" in envoy.log()


# --------------------------------------------------------------------------- chain
def test_chain_prefers_the_container_endpoint_over_imds(envoy_factory, container_factory, imds_factory, moto):
    c = container_factory(auth_token=CONTAINER_TOKEN)
    imds = imds_factory()
    config = plugin({"source": "chain", "container_cluster": "container", "imds_cluster": "imds"})
    clusters = {"lambda": moto.port, "container": c.port, "imds": imds.port}
    envoy = start(envoy_factory, config, clusters, env=container_env(c, CONTAINER_TOKEN), concurrency=2)
    assert post(envoy, {"n": 1}).status_code == 200
    assert len(c.calls) == 1 and imds.calls == []
    lines = origin_lines(envoy)
    assert len(lines) == 1 and "chain: container (http://127.0.0.1:" in lines[0], lines
    assert CONTAINER_TOKEN not in envoy.log()
    envoy.stop()

    # Without a container endpoint in the environment, the instance role.
    envoy = start(envoy_factory, config, clusters)
    r = post(envoy, {"n": 2})
    assert r.status_code == 200, show(r)
    assert len(imds.credential_calls()) == 1
    assert "chain: imds" in origin_lines(envoy)[0]


# --------------------------------------------------------------------------- role chaining
def chained_config(role_arn: str, external_id: str, **source) -> dict:
    return plugin({
        **source,
        "assume_role": {
            "role_arn": role_arn,
            "external_id": external_id,
            "sts_cluster": "sts",
            "sts_endpoint": STS_ENDPOINT,
            "duration_seconds": 900,
            "max_wait_ms": 3000,
        },
    })


def test_imds_identity_chains_into_assume_role_with_external_id(envoy_factory, imds_factory, sts_proxy_factory,
                                                                 moto, aws):
    imds = imds_factory()
    sts = sts_proxy_factory()
    config = chained_config(aws.chained_role_arn, CHAINED_EXTERNAL_ID, source="imds", imds_cluster="imds")
    envoy = start(envoy_factory, config, {"lambda": moto.port, "imds": imds.port, "sts": sts.port})
    r = post(envoy, {"via": "chained"})
    assert r.status_code == 200, show(r)
    assert len(imds.credential_calls()) == 1
    calls = [c for c in sts.calls if c.action == "AssumeRole"]
    assert len(calls) == 1 and calls[0].ok, [c.summary() for c in sts.calls]
    call = calls[0]
    # Signed by the instance role's temporary credentials, token included.
    instance = imds.credentials()
    assert f"Credential={instance.access_key_id}/" in call.header("authorization")
    assert call.header("x-amz-security-token") == instance.session_token
    assert call.form.get("ExternalId") == CHAINED_EXTERNAL_ID
    assert call.form.get("RoleArn") == aws.chained_role_arn
    assert stat(envoy, "credentials.imds.refresh_ok") == 1
    assert stat(envoy, "credentials.sts.refresh_ok") == 1
    assert stat(envoy, "credentials.refresh_ok") == 2
    assert origin_lines(envoy)[0].endswith(f"then AssumeRole {aws.chained_role_arn}")


def test_chained_wrong_external_id_is_access_denied(envoy_factory, container_factory, sts_proxy_factory, moto, aws):
    c = container_factory(auth_token=CONTAINER_TOKEN)
    sts = sts_proxy_factory()
    config = chained_config(aws.chained_role_arn, "ext-id:wrong/0000", source="container",
                            container_cluster="container")
    envoy = start(envoy_factory, config, {"lambda": moto.port, "container": c.port, "sts": sts.port},
                  env=container_env(c, CONTAINER_TOKEN))
    r = post(envoy, {"n": 1})
    assert r.status_code == 503, show(r)
    assert r.json()["error"] == "sts_access_denied", show(r)
    assert stat(envoy, "credentials.container.refresh_ok") == 1
    assert stat(envoy, "credentials.sts.refresh_failed") >= 1
