"""EKS token files carried by Envoy, rotated during a run (examples/eks).

The Wasm VM cannot read files, so the token of IRSA (``AWS_WEB_IDENTITY_TOKEN_FILE``) and
of EKS Pod Identity (``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``) reaches the credential call
through the cluster's own upstream filters: a ``credential_injector`` with a generic secret
from a file-watched SDS source whose ``filename`` is the token file, laid out as the
kubelet lays out projected volumes (``token -> ..data/token``, ``..data`` swapped atomically).
For IRSA two ``header_mutation`` filters then move the injected header into the
``WebIdentityToken`` query parameter of the filter's unsigned AssumeRoleWithWebIdentity.
The cluster filters are read from examples/eks/*.yaml, so what is shipped is what is tested.

The stand-ins accept only the token that is in the file at the moment of the call (the
STS stand-in reads the file; the Pod Identity agent stand-in is switched with it), and the
credentials they hand out are moto's, so every Invoke is checked by moto (IAM auth on).
"""
from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

import ambient_standins as ams
import envoy_harness as eh
import log_audit
import moto_aws

REGION = "us-east-1"
LAMBDA_ENDPOINT = f"lambda.{REGION}.amazonaws.com"
IRSA_ROLE = "eks-irsa-gateway"
CHAINED_ROLE = "eks-tenant-invoker"
CHAINED_EXTERNAL_ID = "tenant-a:eks/4711"
HTTP_TIMEOUT = 15
# Credentials live this long (Expiration): the filter uses them while 30 s are left and
# refreshes them at half their lifetime, so ~every 31 s; a rotation falls between fetches.
LIFETIME_S = 62.0
RUN_S = 68.0
ROTATE_AT_S = (15.0, 46.0)
WORKERS = 4

placement_independent = pytest.mark.skipif(
    eh.default_placement() != "upstream",
    reason="credential fetches are calls of the root context, the same in both placements: the "
           "70 s run is made once",
)


class TokenFile:
    """A projected service-account token as the kubelet writes it: ``<dir>/token`` is a
    symlink to ``..data/token``, ``..data`` a symlink to a timestamped directory, replaced
    atomically on each rotation."""

    def __init__(self, directory: Path, token: str):
        self.dir = directory
        self.dir.mkdir(parents=True)
        self.generation = 0
        self.value = ""
        self.rotate(token)
        os.symlink("..data/token", self.dir / "token")

    @property
    def path(self) -> str:
        return str(self.dir / "token")

    def rotate(self, token: str) -> None:
        self.generation += 1
        data = self.dir / f"..2026_12_07_{self.generation:04d}"
        data.mkdir()
        (data / "token").write_text(token)
        tmp = self.dir / "..data_tmp"
        os.symlink(data.name, tmp)
        os.replace(tmp, self.dir / "..data")
        self.value = token
        log_audit.AUDIT.add_secret(f"token {self.dir.name} {self.generation}", token, session_token=True)


def new_token(kind: str) -> str:
    # JWT-shaped: base64url segments joined by dots.
    return f"eyJhbGciOiJSUzI1NiJ9.{kind}-{secrets.token_urlsafe(24)}.{secrets.token_urlsafe(32)}"


def sds_secret(directory: Path, name: str, token_file: str) -> dict:
    """An SDS generic secret from a file (a DiscoveryResponse) whose value is the token file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"resources": [{
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "name": name,
        "generic_secret": {"secret": {"filename": token_file}},
    }]}))
    return {"name": name, "sds_config": {"path_config_source": {
        "path": str(path), "watched_directory": {"path": str(directory)}}}}


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "eks"


def shipped_filters(example: str, cluster: str, secret: dict) -> list[dict]:
    """The upstream filters of `cluster` in examples/eks/<example> as shipped (upstream_codec
    left for the harness to add), with the SDS source of their secret moved to `secret`."""
    bootstrap = yaml.safe_load((EXAMPLES / example).read_text())
    (found,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == cluster]
    options = found["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    filters = [f for f in options["http_filters"] if f["name"] != "envoy.filters.http.upstream_codec"]
    (injector,) = [f for f in filters if f["name"] == "envoy.filters.http.credential_injector"]
    injector["typed_config"]["credential"]["typed_config"]["credential"] = secret
    return filters


def irsa_filters(secret: dict) -> list[dict]:
    return shipped_filters("envoy-irsa.yaml", "sts_web_identity", secret)


def pod_identity_filters(secret: dict) -> list[dict]:
    return shipped_filters("envoy-pod-identity.yaml", "pod_identity_agent", secret)


class EksAws:
    def __init__(self, moto):
        iam = moto.client("iam")
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": moto.admin.user_arn}, "Action": "sts:AssumeRole"}]}
        self.irsa_role_arn = iam.create_role(RoleName=IRSA_ROLE, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"]["Arn"]
        iam.put_role_policy(RoleName=IRSA_ROLE, PolicyName="invoke-and-assume", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["lambda:Invoke", "sts:AssumeRole"], "Resource": "*"}],
        }))
        session_arn = f"arn:aws:sts::{moto.account_id}:assumed-role/{IRSA_ROLE}/eks-gateway"
        self.chained_role_arn = iam.create_role(
            RoleName=CHAINED_ROLE,
            AssumeRolePolicyDocument=json.dumps(
                moto_aws.assume_role_trust_policy([self.irsa_role_arn, session_arn], CHAINED_EXTERNAL_ID)),
        )["Role"]["Arn"]
        iam.put_role_policy(RoleName=CHAINED_ROLE, PolicyName="invoke",
                            PolicyDocument=json.dumps(moto_aws.INVOKER_POLICY))
        self.sts = moto.client("sts")

    def mint(self) -> ams.Minted:
        c = self.sts.assume_role(RoleArn=self.irsa_role_arn, RoleSessionName="eks-gateway",
                                 DurationSeconds=3600)["Credentials"]
        return ams.Minted(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"],
                          time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(c["Expiration"].timestamp())))


@pytest.fixture(scope="module")
def aws(moto) -> EksAws:
    return EksAws(moto)


@pytest.fixture
def standins():
    made = []

    def keep(s):
        s.start()
        made.append(s)
        log_audit.AUDIT.ambient_standins.append(s)
        return s

    yield keep
    for s in made:
        s.stop()


def plugin(credentials: dict) -> dict:
    return {"function": "echo-fn", "region": REGION, "endpoint": LAMBDA_ENDPOINT, "credentials": credentials}


def start(envoy_factory, config: dict, clusters: dict, env: dict[str, str], cluster_filters: dict, **kw):
    return envoy_factory(config, clusters=clusters, host_env_keys=list(env), process_env=env,
                         cluster_filters=cluster_filters, extra_args=["--file-flush-interval-msec", "100"], **kw)


def stat(envoy, name: str) -> int:
    return int(envoy.stats().get(f"wasmcustom.proxy_wasm_lambda.{name}", 0))


def show(r: requests.Response) -> str:
    return f"HTTP {r.status_code} {r.text[:500]!r}"


def run_rotating(envoy, rotate) -> tuple[list[tuple[float, int, str]], list[float]]:
    """Requests from WORKERS threads (a new connection each, so every worker VM serves
    some) for RUN_S seconds, calling rotate() at each of ROTATE_AT_S. Returns the answers
    (time, status, text) and the rotation times."""
    answers: list[tuple[float, int, str]] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            payload = {"client": n, "i": i}
            try:
                r = requests.post(envoy.url("/"), json=payload, timeout=HTTP_TIMEOUT,
                                  headers={"Connection": "close"})
                got = (time.monotonic() - t0, r.status_code, r.text if r.json() != payload else "")
            except Exception as e:  # noqa: BLE001 - a failure is an answer to report
                got = (time.monotonic() - t0, 0, repr(e))
            with lock:
                answers.append(got)
            time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(WORKERS)]
    for t in threads:
        t.start()
    rotated = []
    for at in ROTATE_AT_S:
        time.sleep(max(0.0, at - (time.monotonic() - t0)))
        rotate()
        rotated.append(time.monotonic() - t0)
    time.sleep(max(0.0, RUN_S - (time.monotonic() - t0)))
    stop.set()
    for t in threads:
        t.join(timeout=HTTP_TIMEOUT + 5)
    return answers, rotated


def assert_every_request_succeeded(answers) -> None:
    bad = [a for a in answers if a[1] != 200 or a[2]]
    assert len(answers) > 100, f"too few requests: {len(answers)}"
    assert not bad, f"{len(bad)} of {len(answers)} failed, first: {bad[:3]}"


def max_fetches() -> int:
    # One fetch per half lifetime per process (not per worker), plus the first.
    return int(RUN_S / (LIFETIME_S / 2)) + 2


@placement_independent
def test_irsa_token_file_rotated_during_a_run(envoy_factory, standins, aws, moto, tmp_path):
    token = TokenFile(tmp_path / "eks.amazonaws.com" / "serviceaccount", new_token("irsa"))
    sts = standins(ams.WebIdentityStsStandIn(aws.mint, token.path, aws.irsa_role_arn))
    sts.expires_in = LIFETIME_S
    secret = sds_secret(tmp_path / "sds", "web_identity_token", token.path)
    env = {"AWS_ROLE_ARN": aws.irsa_role_arn, "AWS_WEB_IDENTITY_TOKEN_FILE": token.path,
           "AWS_ROLE_SESSION_NAME": "eks-gateway"}
    envoy = start(envoy_factory, plugin({"source": "chain", "web_identity_cluster": "sts_web_identity",
                                         "imds_cluster": "imds"}),
                  {"lambda": moto.port, "sts_web_identity": sts.port, "imds": moto.port}, env,
                  {"sts_web_identity": irsa_filters(secret)}, concurrency=WORKERS)
    tokens = [token.value]

    def rotate() -> None:
        tokens.append(new_token("irsa"))
        token.rotate(tokens[-1])
        sts.rotate()

    answers, rotated = run_rotating(envoy, rotate)
    assert_every_request_succeeded(answers)
    calls = sts.credential_calls()
    assert [c.status for c in calls] == [200] * len(calls), list(zip([c.status for c in calls], sts.tokens_seen))
    assert 1 + len(ROTATE_AT_S) <= len(calls) <= max_fetches(), [(c.at, c.status) for c in calls]
    # Every token was used, in order, each after its rotation: no restart, no reload.
    used = [t for i, t in enumerate(sts.tokens_seen) if i == 0 or t != sts.tokens_seen[i - 1]]
    assert used == tokens, (len(used), len(tokens))
    # The token is not sent by the filter: only the cluster's filters add it, then drop the header.
    for c in calls:
        assert c.method == "GET"
        assert c.header("x-web-identity-token") is None
        assert c.header("Authorization") is None
        query = parse_qs(urlsplit(c.path).query)
        assert query["RoleArn"] == [aws.irsa_role_arn] and query["RoleSessionName"] == ["eks-gateway"], c.path
        assert len(query["WebIdentityToken"]) == 1, "the token is added once"
    assert stat(envoy, "credentials.web_identity.refresh_ok") == len(calls)
    assert stat(envoy, "credentials.web_identity.refresh_failed") == 0
    log = envoy.log()
    assert "chain: web_identity (AssumeRoleWithWebIdentity" in log


@placement_independent
def test_pod_identity_token_file_rotated_during_a_run(envoy_factory, standins, aws, moto, tmp_path):
    first = new_token("pod-identity")
    token = TokenFile(tmp_path / "pods.eks.amazonaws.com" / "serviceaccount", first)
    agent = standins(ams.ContainerStandIn(aws.mint, auth_token=first))
    agent.expires_in = LIFETIME_S
    secret = sds_secret(tmp_path / "sds", "pod_identity_token", token.path)
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{agent.port}/v1/credentials",
           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token.path}
    envoy = start(envoy_factory, plugin({"source": "container", "container_cluster": "pod_identity_agent",
                                         "container_token_from_cluster": True}),
                  {"lambda": moto.port, "pod_identity_agent": agent.port}, env,
                  {"pod_identity_agent": pod_identity_filters(secret)}, concurrency=WORKERS)
    tokens = [first]

    def rotate() -> None:
        tokens.append(new_token("pod-identity"))
        token.rotate(tokens[-1])
        agent.auth_token = tokens[-1]  # the agent now refuses the old token
        agent.rotate()

    answers, rotated = run_rotating(envoy, rotate)
    assert_every_request_succeeded(answers)
    calls = agent.credential_calls()
    assert [c.status for c in calls] == [200] * len(calls), [(c.at, c.status) for c in calls]
    assert 1 + len(ROTATE_AT_S) <= len(calls) <= max_fetches(), [(c.at, c.status) for c in calls]
    seen = [c.header("Authorization") for c in calls]
    used = [t for i, t in enumerate(seen) if i == 0 or t != seen[i - 1]]
    assert used == tokens, (len(used), len(tokens))
    assert stat(envoy, "credentials.container.refresh_ok") == len(calls)
    assert stat(envoy, "credentials.container.refresh_failed") == 0


def test_irsa_identity_chains_into_assume_role_with_external_id(envoy_factory, standins, sts_proxy_factory, aws,
                                                                moto, tmp_path):
    token = TokenFile(tmp_path / "eks.amazonaws.com" / "serviceaccount", new_token("irsa"))
    web = standins(ams.WebIdentityStsStandIn(aws.mint, token.path, aws.irsa_role_arn))
    sts = sts_proxy_factory()
    secret = sds_secret(tmp_path / "sds", "web_identity_token", token.path)
    env = {"AWS_ROLE_ARN": aws.irsa_role_arn, "AWS_WEB_IDENTITY_TOKEN_FILE": token.path}
    config = plugin({"source": "web_identity", "web_identity_cluster": "sts_web_identity", "assume_role": {
        "role_arn": aws.chained_role_arn, "external_id": CHAINED_EXTERNAL_ID, "sts_cluster": "sts",
        "sts_endpoint": f"sts.{REGION}.amazonaws.com", "duration_seconds": 900}})
    envoy = start(envoy_factory, config, {"lambda": moto.port, "sts_web_identity": web.port, "sts": sts.port},
                  env, {"sts_web_identity": irsa_filters(secret)})
    r = requests.post(envoy.url("/"), json={"via": "irsa+assume_role"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert r.json() == {"via": "irsa+assume_role"}
    assert [c.status for c in web.credential_calls()] == [200]
    calls = [c for c in sts.calls if c.action == "AssumeRole"]
    assert len(calls) == 1 and calls[0].ok, [c.summary() for c in sts.calls]
    irsa = web.credentials()
    assert f"Credential={irsa.access_key_id}/" in calls[0].header("authorization")
    assert calls[0].header("x-amz-security-token") == irsa.session_token
    assert calls[0].form.get("ExternalId") == CHAINED_EXTERNAL_ID
    assert stat(envoy, "credentials.web_identity.refresh_ok") == 1
    assert stat(envoy, "credentials.sts.refresh_ok") == 1


def test_irsa_without_the_token_carrying_filters_is_a_clear_503(envoy_factory, standins, aws, moto, tmp_path):
    token = TokenFile(tmp_path / "eks.amazonaws.com" / "serviceaccount", new_token("irsa"))
    web = standins(ams.WebIdentityStsStandIn(aws.mint, token.path, aws.irsa_role_arn))
    env = {"AWS_ROLE_ARN": aws.irsa_role_arn, "AWS_WEB_IDENTITY_TOKEN_FILE": token.path}
    envoy = start(envoy_factory, plugin({"source": "web_identity", "web_identity_cluster": "sts_web_identity",
                                         "max_wait_ms": 1000}),
                  {"lambda": moto.port, "sts_web_identity": web.port}, env, {})
    r = requests.post(envoy.url("/"), json={"n": 1}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 503, show(r)
    body = r.json()
    assert body["error"] == "sts_rejected", show(r)
    assert "AssumeRoleWithWebIdentity" in body["message"], show(r)
    assert web.tokens_seen and all(t is None for t in web.tokens_seen)
    # The log says what STS said and where the token should have come from.
    deadline = time.time() + 8
    while not [l for l in envoy.log().splitlines() if "ValidationError" in l] and time.time() < deadline:
        time.sleep(0.2)
    lines = [l for l in envoy.log().splitlines() if "ValidationError" in l]
    assert lines and "WebIdentityToken" in lines[0], lines[:1]
    assert "cluster 'sts_web_identity''s upstream filters: examples/eks" in lines[0], lines[:1]
    assert stat(envoy, "credentials.web_identity.refresh_failed") >= 1


def test_pod_identity_token_comes_from_the_cluster(envoy_factory, standins, aws, moto, tmp_path):
    """The short form of the rotation test (make compat runs it on every Envoy)."""
    first = new_token("pod-identity")
    token = TokenFile(tmp_path / "pods.eks.amazonaws.com" / "serviceaccount", first)
    agent = standins(ams.ContainerStandIn(aws.mint, auth_token=first))
    secret = sds_secret(tmp_path / "sds", "pod_identity_token", token.path)
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{agent.port}/v1/credentials",
           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token.path}
    envoy = start(envoy_factory, plugin({"source": "chain", "container_cluster": "pod_identity_agent",
                                         "container_token_from_cluster": True, "imds_cluster": "imds"}),
                  {"lambda": moto.port, "pod_identity_agent": agent.port, "imds": moto.port}, env,
                  {"pod_identity_agent": pod_identity_filters(secret)})
    r = requests.post(envoy.url("/"), json={"via": "pod identity"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    assert r.json() == {"via": "pod identity"}
    assert [(c.status, c.header("Authorization")) for c in agent.credential_calls()] == [(200, first)]
    assert stat(envoy, "credentials.container.refresh_ok") == 1
