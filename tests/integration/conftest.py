"""Fixtures for the proxy_wasm_lambda end-to-end tests.

Session scope: ``moto`` (moto_server with IAM auth, bootstrapped users/functions),
``standin_session`` (SigV4-verifying Lambda stand-in) and ``wasm_path`` (the built
filter; the session FAILS if it is missing: run ``make wasm`` first).
``assume_role_aws`` adds, once per session, the AssumeRole principals to moto (user
``assumer`` and role ``lambda-invoker``, trusted with ExternalId ``ASSUME_ROLE_EXTERNAL_ID``).
Function scope: ``standin`` (the session stand-in, reset), ``standin_factory`` (extra
stand-ins), ``envoy_factory`` (starts Envoy instances, stops them on teardown and
prints their log tail when the test failed) and ``sts_proxy_factory`` (recording STS
stand-ins forwarding to moto, whose calls are printed when the test failed).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import envoy_harness as eh  # noqa: E402
import lambda_standin as ls  # noqa: E402
import moto_aws  # noqa: E402
import sts_proxy as sp  # noqa: E402

import log_audit  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WASM = REPO_ROOT / "target" / "wasm32-wasip1" / "release" / "proxy_wasm_lambda.wasm"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def wasm_path() -> str:
    path = Path(os.environ.get("LAMBDA_WASM") or DEFAULT_WASM)
    if not path.is_file():
        pytest.fail(
            f"filter wasm not found at {path}: run `make wasm` first (or set LAMBDA_WASM)",
            pytrace=False,
        )
    return str(path)


@pytest.fixture(scope="session")
def moto():
    m = moto_aws.start_moto()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def standin_session():
    s = ls.StandIn().start()
    log_audit.AUDIT.standins.append(s)
    yield s
    s.stop()


@pytest.fixture
def standin(standin_session):
    standin_session.reset()
    yield standin_session
    standin_session.reset()


@pytest.fixture
def standin_factory():
    made: list[ls.StandIn] = []

    def make(**kw: Any) -> ls.StandIn:
        s = ls.StandIn(**kw).start()
        made.append(s)
        log_audit.AUDIT.standins.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def envoy_factory(request, wasm_path) -> Callable[..., eh.Envoy]:
    """envoy_factory(plugin_config, routes=..., clusters=..., env_vars=..., log_level=..., expect_failure=...,
    host_env_keys=..., process_env=..., concurrency=..., placement=..., per_connection_buffer_limit_bytes=...,
    vm_configuration=..., listeners=..., cluster_filters=...)

    routes: list of eh.Route or (prefix, cluster[, timeout_s[, metadata]]) tuples
            (default: [("/", "lambda")]).
    clusters: {name: (host, port)} or {name: port} (host 127.0.0.1).
    cluster_filters: {cluster name: [upstream HTTP filter, ...]} (upstream_codec added last).
    stats_config: the bootstrap's stats_config (e.g. envoy/local.yaml's stats_tags).
    listeners: extra eh.Listener (each its own plugin config, same vm_id; their routes may
               be tuples too); envoy.url(path, listener=NAME) reaches one.
    Returns a started eh.Envoy (with .failed set when expect_failure=True).
    """
    started: list[eh.Envoy] = []

    def make(
        plugin_config: dict | str | None,
        *,
        routes: list | None = None,
        clusters: dict[str, Any],
        env_vars: dict[str, str] | None = None,
        log_level: str = "info",
        expect_failure: bool = False,
        cluster_type: str = "STATIC",
        timeout: float = 20.0,
        host_env_keys: list[str] | None = None,
        process_env: dict[str, str] | None = None,
        concurrency: int = 1,
        extra_args: list[str] | None = None,
        placement: str | None = None,
        per_connection_buffer_limit_bytes: int | None = None,
        vm_configuration: str | None = None,
        listeners: list[eh.Listener] | None = None,
        cluster_filters: dict[str, list[dict]] | None = None,
        stats_config: dict | None = None,
        access_log: list[dict] | None = None,
    ) -> eh.Envoy:
        def as_routes(given: list | None) -> list[eh.Route]:
            return [r if isinstance(r, eh.Route) else eh.Route(*r) for r in given or [("/", "lambda")]]

        rs = as_routes(routes)
        extra = [
            dataclasses.replace(x, routes=as_routes(x.routes), env_vars=dict(x.env_vars),
                                host_env_keys=list(x.host_env_keys))
            for x in listeners or []
        ]
        cl = {k: (v if isinstance(v, tuple) else ("127.0.0.1", int(v))) for k, v in clusters.items()}
        cfg = eh.EnvoyConfig(
            plugin_config=plugin_config,
            routes=rs,
            clusters=cl,
            wasm_path=wasm_path,
            env_vars=env_vars or {},
            cluster_type=cluster_type,
            host_env_keys=list(host_env_keys or []),
            concurrency=concurrency,
            vm_configuration=vm_configuration,
            listeners=extra,
            cluster_filters=dict(cluster_filters or {}),
            stats_config=stats_config,
            access_log=access_log,
        )
        if placement is not None:
            cfg.placement = placement
        if per_connection_buffer_limit_bytes is not None:
            cfg.per_connection_buffer_limit_bytes = per_connection_buffer_limit_bytes
        e = eh.Envoy(cfg, log_level=log_level, process_env=process_env, extra_args=extra_args)
        started.append(e)
        log_audit.AUDIT.envoys.append(e)
        return e.start(timeout=timeout, expect_failure=expect_failure)

    yield make

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for e in started:
        e.stop()
        if failed:
            sys.stderr.write(
                f"\n===== envoy log ({e.log_path}) tail =====\n{e.log()[-6000:]}\n===== end envoy log =====\n"
            )


@pytest.fixture
def moto_clean(moto):
    """The session moto, with any canned lambda-simple results left by this test drained."""
    yield moto
    lam = moto.client("lambda")
    for _ in range(20):
        sentinel = f'{{"drain":"{uuid.uuid4()}"}}'
        got = lam.invoke(FunctionName="echo-fn", Payload=sentinel.encode())["Payload"].read().decode()
        if got == sentinel:
            break


ASSUME_ROLE_EXTERNAL_ID = "ext-id:proxy-wasm-lambda/4711"


@pytest.fixture(scope="session")
def assume_role_aws(moto) -> moto_aws.AssumeRoleSetup:
    setup = moto_aws.create_assume_role_setup(moto, ASSUME_ROLE_EXTERNAL_ID)
    log_audit.AUDIT.add_secret("ExternalId", setup.external_id)
    log_audit.AUDIT.add_secret("AssumeRole source secret access key", setup.assumer.secret_access_key)
    return setup


@pytest.fixture(scope="session", autouse=True)
def secrets_never_in_envoy_output():
    """After the whole suite: no secret any test used appears in anything any Envoy printed
    (see log_audit for the two places Envoy itself prints them, and how to turn those off)."""
    yield
    leaks = log_audit.AUDIT.leaks()
    assert not leaks, "secrets found in Envoy output:\n" + "\n".join(leaks[:10])


@pytest.fixture
def sts_proxy_factory(request, moto) -> Callable[..., sp.StsProxy]:
    """sts_proxy_factory(on_credentials=None) -> a started StsProxy forwarding to the session moto."""
    made: list[sp.StsProxy] = []

    def make(**kw: Any) -> sp.StsProxy:
        p = sp.StsProxy(moto.port, **kw).start()
        made.append(p)
        log_audit.AUDIT.sts_proxies.append(p)
        return p

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for p in made:
        if failed:
            sys.stderr.write(f"\n===== STS proxy calls (port {p.port}) =====\n{p.describe()}\n=====\n")
        p.stop()
