"""Credentials belong to exactly one identity (issue 15): two plugin configurations in ONE
Envoy 1.40 (4 workers), with the SAME vm_id, hence one proxy-wasm shared data, must never
sign with each other's credentials.

Each plugin configuration has its own listener (envoy_harness.Listener) and its own
``vm_config.configuration``, so it runs in VMs of its own with its own environment, while
the shared data (keyed by vm_id) is common to all of them: exactly the situation of a user
who runs several plugin configurations in one Envoy. Plugin A is the legitimate one; plugin B
differs from it only in a secret input (ExternalId, source secret access key, container
authorization token) that the shared-data key of the credential cache must not ignore:

1. AssumeRole, same source keys and role, B with a wrong ExternalId: moto (IAM auth on)
   denies B's AssumeRole, so B must be answered 503 ``sts_access_denied`` at every moment,
   even while A holds the role's credentials;
2. AssumeRole, same access key id, B with a wrong secret and its own ``sts_cluster``: B's
   AssumeRole must go to B's STS cluster (and fail: bad signature), B answered 503;
3. container credentials (EKS Pod Identity): same ``AWS_CONTAINER_CREDENTIALS_FULL_URI``,
   another ``AWS_CONTAINER_AUTHORIZATION_TOKEN``: each plugin signs with the identity its
   own token selects.

The Invokes go to the SigV4-verifying Lambda stand-in, which records the access key id and
session token of each; the request body names the plugin it was sent to. Requests come in
concurrent bursts, before and after A has its credentials.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass

import pytest
import requests

import ambient_standins as ams
import envoy_harness as eh
import log_audit
import moto_aws
import sts_proxy as sp

REGION = "us-east-1"
LAMBDA_ENDPOINT = f"lambda.{REGION}.amazonaws.com"
STS_ENDPOINT = f"sts.{REGION}.amazonaws.com"
SESSION_NAME = "proxy-wasm-lambda"
WRONG_EXTERNAL_ID = "ext-id:not-the-tenant/0666"
HTTP_TIMEOUT = 15
WORKERS = 4
PER_PLUGIN = 12  # requests per plugin and burst: 2 bursts x 2 plugins x 12 = 48 in all
CONTAINER_PATH = "/v1/credentials"
# Placeholder key of the stand-in: the keys that sign come from STS or the container stand-in.
UNUSED_KEY = {"AKIDNOTTHEKEYUSED000": "unused-secret-0000000000"}


# --------------------------------------------------------------------------- helpers
def show(r: requests.Response) -> str:
    return f"HTTP {r.status_code} {r.text[:500]!r}"


@dataclass
class Outcome:
    plugin: str
    i: int
    status: int | None
    body: str
    error: str | None = None

    def json(self) -> dict:
        try:
            return json.loads(self.body)
        except ValueError:
            return {}

    def brief(self) -> str:
        return f"{self.plugin}#{self.i}: {self.status} {self.body[:160]!r}{' ' + self.error if self.error else ''}"


def burst(envoy: eh.Envoy, plugins: dict[str, str | None], n: int, round_: int) -> list[Outcome]:
    """n concurrent POSTs to each plugin's listener (plugins: name -> listener name, None for
    the main one), interleaved, each on its own connection, released together."""
    jobs = [(name, listener, i) for i in range(n) for name, listener in plugins.items()]
    barrier = threading.Barrier(len(jobs))
    out: list[Outcome | None] = [None] * len(jobs)

    def one(k: int) -> None:
        name, listener, i = jobs[k]
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        payload = {"plugin": name, "round": round_, "i": i}
        try:
            with requests.Session() as s:
                r = s.post(envoy.url("/", listener=listener), json=payload, timeout=HTTP_TIMEOUT)
            out[k] = Outcome(name, i, r.status_code, r.text)
        except requests.RequestException as e:
            out[k] = Outcome(name, i, None, "", repr(e))

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HTTP_TIMEOUT + 15)
    assert all(o is not None for o in out), "some burst requests never finished"
    return out  # type: ignore[return-value]


def wait_for_200(envoy: eh.Envoy, listener: str | None, timeout: float = 20.0) -> requests.Response:
    """Posts to a plugin until it answers 200 (its credentials are fetched), bounded."""
    deadline = time.monotonic() + timeout
    while True:
        r = requests.post(envoy.url("/", listener=listener), json={"plugin": "warm-up"}, timeout=HTTP_TIMEOUT)
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.3)


def invokes_by_plugin(lam) -> dict[str, list]:
    """The stand-in's Invokes, by the plugin named in their body."""
    out: dict[str, list] = {}
    for rec in lam.requests:
        try:
            plugin = json.loads(rec.body).get("plugin", "?")
        except ValueError:
            plugin = "?"
        out.setdefault(plugin, []).append(rec)
    return out


def signed_with(lam, plugin: str, a_keys: set[str]) -> str:
    """Whose keys signed the Invokes sent for `plugin` (for failure messages)."""
    recs = invokes_by_plugin(lam).get(plugin, [])
    signed = {rec.access_key_id for rec in recs}
    if signed & a_keys:
        return f"{len(recs)} Invokes signed with A's credentials ({', '.join(sorted(signed & a_keys))})"
    return f"{len(recs)} Invokes signed with keys {sorted(signed)}"


def assert_refused(outcomes: list[Outcome], plugin: str, error: str, why: str, lam, a_keys: set[str]) -> None:
    """Every request to `plugin` was answered 503 `error`; on failure, say whose key signed."""
    mine = [o for o in outcomes if o.plugin == plugin]
    wrong = [o for o in mine if o.status != 503 or o.json().get("error") != error]
    if wrong:
        pytest.fail(
            f"plugin {plugin} ({why}) must be answered 503 {error} at every moment; "
            f"{len(wrong)}/{len(mine)} were not; for plugin {plugin}: {signed_with(lam, plugin, a_keys)}; e.g.\n"
            + "\n".join(o.brief() for o in wrong[:4]),
            pytrace=False,
        )


def assert_served(outcomes: list[Outcome], plugin: str) -> None:
    mine = [o for o in outcomes if o.plugin == plugin]
    bad = [o for o in mine if o.status != 200 or o.json().get("plugin") != plugin]
    assert not bad, f"plugin {plugin}: {len(bad)}/{len(mine)} requests failed, e.g.\n" + "\n".join(
        o.brief() for o in bad[:4])


def assume_role_config(setup: moto_aws.AssumeRoleSetup, source: moto_aws.Credentials, external_id: str,
                       sts_cluster: str = "sts") -> dict:
    return {
        "function": "echo-fn",
        "region": REGION,
        "endpoint": LAMBDA_ENDPOINT,
        "credentials": {
            **source.as_plugin_config(),
            "assume_role": {
                "role_arn": setup.role_arn,
                "external_id": external_id,
                "session_name": SESSION_NAME,
                "duration_seconds": 900,
                "sts_cluster": sts_cluster,
                "sts_endpoint": STS_ENDPOINT,
                "timeout_ms": 2000,
                "max_wait_ms": 3000,
            },
        },
    }


def start_two_plugins(envoy_factory, config_a: dict, config_b: dict, clusters: dict,
                      env_a: dict | None = None, env_b: dict | None = None) -> eh.Envoy:
    """Plugin A on the main listener, B on listener "b": same vm_id, VMs of their own."""
    return envoy_factory(
        config_a, clusters=clusters, env_vars=env_a, concurrency=WORKERS, vm_configuration="plugin-a",
        listeners=[eh.Listener("b", config_b, env_vars=dict(env_b or {}), vm_configuration="plugin-b")],
        extra_args=["--file-flush-interval-msec", "100"],
    )


def mint_into(lam, who: str):
    """A mint function for the container stand-in: fresh temporary credentials that the
    Lambda stand-in knows (the identity `who`)."""
    def mint() -> ams.Minted:
        m = ams.Minted(
            access_key_id="ASIA" + secrets.token_hex(8).upper(),
            secret_access_key=f"{who}/" + secrets.token_urlsafe(30),
            session_token=f"{who}-session-" + secrets.token_urlsafe(40),
            expiration=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
        )
        lam.add_key(m.access_key_id, m.secret_access_key)
        return m
    return mint


def plugin(credentials: dict) -> dict:
    return {"function": "echo-fn", "region": REGION, "endpoint": LAMBDA_ENDPOINT, "credentials": credentials}


def container_env(port: int, token: str) -> dict[str, str]:
    return {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{port}{CONTAINER_PATH}",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
    }


PLUGINS = {"A": None, "B": "b"}


@pytest.fixture
def setup(assume_role_aws) -> moto_aws.AssumeRoleSetup:
    log_audit.AUDIT.add_secret("wrong ExternalId", WRONG_EXTERNAL_ID)
    return assume_role_aws


# --------------------------------------------------------------------------- the harness itself
def active_vms(envoy: eh.Envoy) -> int:
    return int(envoy.stats("wasm.envoy.wasm.runtime").get("wasm.envoy.wasm.runtime.v8.active", 0))


def test_each_plugin_runs_in_its_own_vms_with_its_own_environment(envoy_factory, standin_factory):
    """What the cases below rely on. Two plugin configurations with the same vm_id run in
    VMs of their own when their vm_config.configuration differs (the harness's default) and
    each reads its own environment: here a container endpoint and token each (distinct
    credential caches even before the fix). Envoy 1.40 keys VMs by the environment too: with
    an equal VM configuration and different environments they are still apart; only when
    both are equal do they share one VM per thread."""
    lam = standin_factory(keys=dict(UNUSED_KEY))
    tokens = {"A": "pod-token-harness-a-" + secrets.token_hex(8), "B": "pod-token-harness-b-" + secrets.token_hex(8)}
    stands = {}
    for name, token in tokens.items():
        log_audit.AUDIT.add_secret(f"container token {name}", token, session_token=True)
        s = ams.ContainerStandIn(None, identities={token: mint_into(lam, f"harness-{name}")}).start()
        log_audit.AUDIT.ambient_standins.append(s)
        stands[name] = s
    try:
        clusters = {"lambda": lam.port, "container": stands["A"].port, "container_b": stands["B"].port}
        config_a = plugin({"source": "container", "container_cluster": "container"})
        config_b = plugin({"source": "container", "container_cluster": "container_b"})
        env = {name: container_env(stands[name].port, tokens[name]) for name in tokens}
        vms = {}
        for case, vm_a, vm_b, env_b in (
            ("distinct VM configurations", "plugin-a", None, env["B"]),
            ("one VM configuration, two environments", "same", "same", env["B"]),
            ("one VM configuration, one environment", "same", "same", env["A"]),
        ):
            for s in stands.values():
                s.calls.clear()
            envoy = envoy_factory(
                config_a, clusters=clusters, env_vars=env["A"], concurrency=2, vm_configuration=vm_a,
                listeners=[eh.Listener("b", config_b, env_vars=env_b, vm_configuration=vm_b)],
            )
            vms[case] = active_vms(envoy)
            for listener in (None, "b"):
                requests.post(envoy.url("/", listener=listener), json={"plugin": "x"}, timeout=HTTP_TIMEOUT)
            envoy.stop()
            if env_b is env["B"]:
                seen = {name: {c.header("Authorization") for c in s.calls} for name, s in stands.items()}
                named = {name: sorted(n for n, t in tokens.items() if t in got) for name, got in seen.items()}
                assert named == {"A": ["A"], "B": ["B"]}, f"{case}: each plugin should read its own environment: {named}"
        one = vms["one VM configuration, one environment"]
        assert one > 0, vms
        assert vms["distinct VM configurations"] == vms["one VM configuration, two environments"] == 2 * one, vms
    finally:
        for s in stands.values():
            s.stop()


# --------------------------------------------------------------------------- 1: wrong ExternalId
def test_assume_role_with_wrong_external_id_never_gets_the_other_plugins_credentials(
        envoy_factory, sts_proxy_factory, standin_factory, setup):
    lam = standin_factory(keys=dict(UNUSED_KEY))
    sts = sts_proxy_factory(on_credentials=lambda c: lam.add_key(c.access_key_id, c.secret_access_key))
    sts.set_mode("slow", delay_s=1.0)  # the first burst comes while the AssumeRoles are in flight
    config_a = assume_role_config(setup, setup.assumer, setup.external_id)
    config_b = assume_role_config(setup, setup.assumer, WRONG_EXTERNAL_ID)
    envoy = start_two_plugins(envoy_factory, config_a, config_b, {"lambda": lam.port, "sts": sts.port})

    first = burst(envoy, PLUGINS, PER_PLUGIN, 1)
    sts.set_mode("normal")
    warm = wait_for_200(envoy, None)
    assert warm.status_code == 200, f"plugin A never got its credentials: {show(warm)}"
    second = burst(envoy, PLUGINS, PER_PLUGIN, 2)  # A holds the role's credentials
    outcomes = first + second

    right = [c for c in sts.assume_roles if c.form.get("ExternalId") == setup.external_id]
    a_keys = {c.access_key_id for c in right if c.ok}
    assert_refused(outcomes, "B", "sts_access_denied", "same role and source keys, wrong ExternalId", lam, a_keys)
    assert_served(outcomes, "A")

    # B's own AssumeRole calls, all denied by moto; A's: exactly one, for the whole process.
    wrong = sts.wait_for(lambda calls: any(c.form.get("ExternalId") == WRONG_EXTERNAL_ID for c in calls), 5)
    wrong = [c for c in wrong if c.action == "AssumeRole" and c.form.get("ExternalId") == WRONG_EXTERNAL_ID]
    assert wrong, f"plugin B never asked STS for its own credentials:\n{sts.describe()}"
    assert all(c.status == 403 and c.error_code == "AccessDenied" for c in wrong), sts.describe()
    assert len(right) == 1 and right[0].ok, f"expected one AssumeRole for plugin A:\n{sts.describe()}"
    others = [c for c in sts.calls if c.form.get("ExternalId") not in (setup.external_id, WRONG_EXTERNAL_ID)]
    assert not others, sts.describe()

    by_plugin = invokes_by_plugin(lam)
    assert "B" not in by_plugin, f"{len(by_plugin['B'])} Invokes were sent for plugin B"
    assert by_plugin.get("A") and all(rec.verified and rec.access_key_id in a_keys for rec in by_plugin["A"])
    assert all(rec.header("x-amz-security-token") == right[0].session_token for rec in by_plugin["A"])


# --------------------------------------------------------------------------- 2: wrong secret, own STS cluster
def test_assume_role_with_wrong_secret_asks_its_own_sts_cluster(envoy_factory, sts_proxy_factory,
                                                                 standin_factory, setup):
    lam = standin_factory(keys=dict(UNUSED_KEY))
    sts_a = sts_proxy_factory(on_credentials=lambda c: lam.add_key(c.access_key_id, c.secret_access_key))
    sts_b = sts_proxy_factory(on_credentials=lambda c: lam.add_key(c.access_key_id, c.secret_access_key))
    for proxy in (sts_a, sts_b):  # the first burst comes while the AssumeRoles are in flight
        proxy.set_mode("slow", delay_s=1.0)
    wrong_secret = setup.assumer.secret_access_key[::-1] + "X"
    log_audit.AUDIT.add_secret("wrong source secret access key", wrong_secret)
    impostor = moto_aws.Credentials(setup.assumer.access_key_id, wrong_secret)
    config_a = assume_role_config(setup, setup.assumer, setup.external_id, sts_cluster="sts_a")
    config_b = assume_role_config(setup, impostor, setup.external_id, sts_cluster="sts_b")
    envoy = start_two_plugins(envoy_factory, config_a, config_b,
                              {"lambda": lam.port, "sts_a": sts_a.port, "sts_b": sts_b.port})

    first = burst(envoy, PLUGINS, PER_PLUGIN, 1)
    for proxy in (sts_a, sts_b):
        proxy.set_mode("normal")
    warm = wait_for_200(envoy, None)
    assert warm.status_code == 200, f"plugin A never got its credentials: {show(warm)}"
    second = burst(envoy, PLUGINS, PER_PLUGIN, 2)
    outcomes = first + second

    a_calls = sts_a.assume_roles
    a_keys = {c.access_key_id for c in a_calls if c.ok}
    b_calls = sts_b.wait_for(lambda calls: bool(calls), 5)
    if not b_calls:
        statuses = sorted({o.status for o in outcomes if o.plugin == "B"}, key=str)
        pytest.fail(f"plugin B's STS cluster never saw a request (B's answers: {statuses}; "
                    f"{signed_with(lam, 'B', a_keys)})", pytrace=False)
    assert_refused(outcomes, "B", "sts_invalid_credentials", "same access key id, wrong secret", lam, a_keys)
    assert_served(outcomes, "A")

    b_calls = [c for c in sts_b.calls if c.action == "AssumeRole"]
    assert b_calls and all(c.status == 403 and c.error_code == "SignatureDoesNotMatch" for c in b_calls), \
        sts_b.describe()
    assert all(f"Credential={setup.assumer.access_key_id}/" in (c.header("authorization") or "") for c in b_calls)
    assert len(a_calls) == 1 and a_calls[0].ok, f"expected one AssumeRole for plugin A:\n{sts_a.describe()}"
    by_plugin = invokes_by_plugin(lam)
    assert "B" not in by_plugin, f"{len(by_plugin['B'])} Invokes were sent for plugin B"
    assert by_plugin.get("A") and all(rec.verified and rec.access_key_id in a_keys for rec in by_plugin["A"])


# --------------------------------------------------------------------------- 3: container token
def test_container_credentials_follow_the_authorization_token(envoy_factory, standin_factory):
    lam = standin_factory(keys=dict(UNUSED_KEY))
    tokens = {"A": "pod-identity-token-a-" + secrets.token_hex(12),
              "B": "pod-identity-token-b-" + secrets.token_hex(12)}
    for name, token in tokens.items():
        log_audit.AUDIT.add_secret(f"container authorization token {name}", token, session_token=True)
    pod_identity = ams.ContainerStandIn(
        None, path=CONTAINER_PATH,
        identities={tokens["A"]: mint_into(lam, "identity-a"), tokens["B"]: mint_into(lam, "identity-b")},
    ).start()
    log_audit.AUDIT.ambient_standins.append(pod_identity)
    try:
        config = plugin({"source": "container", "container_cluster": "container", "max_wait_ms": 3000})
        envoy = start_two_plugins(
            envoy_factory, config, config, {"lambda": lam.port, "container": pod_identity.port},
            env_a=container_env(pod_identity.port, tokens["A"]), env_b=container_env(pod_identity.port, tokens["B"]),
        )
        first = burst(envoy, PLUGINS, PER_PLUGIN, 1)
        second = burst(envoy, PLUGINS, PER_PLUGIN, 2)
        outcomes = first + second

        identity = {name: pod_identity.credentials_for(token) for name, token in tokens.items()
                    if any(c.header("Authorization") == token for c in pod_identity.calls)}
        by_plugin = invokes_by_plugin(lam)
        for name in ("B", "A"):
            recs = by_plugin.get(name, [])
            wrong = [rec for rec in recs if name not in identity
                     or rec.access_key_id != identity[name].access_key_id]
            if wrong:
                whose = [o for o in identity if identity[o].access_key_id == wrong[0].access_key_id]
                whose_text = f"{whose[0]}'s identity" if whose else "an unknown identity"
                pytest.fail(
                    f"plugin {name}'s Invokes must be signed with the identity its own token selects; "
                    f"{len(wrong)}/{len(recs)} were signed with {whose_text} (the container endpoint "
                    f"was asked with the tokens of: {', '.join(sorted(identity))})",
                    pytrace=False,
                )
        for name in tokens:
            assert_served(outcomes, name)
            recs = by_plugin[name]
            assert len(recs) == 2 * PER_PLUGIN
            assert all(rec.verified for rec in recs), [rec.reason for rec in recs if not rec.verified][:3]
            assert all(rec.header("x-amz-security-token") == identity[name].session_token for rec in recs)
        # One fetch per identity for the whole process (2 plugins x 5 VMs each).
        fetched = sorted(c.header("Authorization") for c in pod_identity.credential_calls())
        assert fetched == sorted(tokens.values()), f"{len(fetched)} credential fetches"
    finally:
        pod_identity.stop()
