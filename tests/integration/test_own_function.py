"""README's "Your own function in five minutes", run as written.

The two ```sh blocks of that README section are read from README.md and their commands run
for real: the Envoy command line (with the environment it sets or exports) and the curl. What
the machine cannot have is replaced, and only that:

- the Lambda endpoint: a SigV4-verifying stand-in (lambda_standin.StandIn) that echoes the
  payload, as a function returning its event does. For the LocalStack block, a copy of
  envoy/localstack.yaml with its ports (listener 10000, admin 9901, LocalStack 4566) moved to
  free ones, the stand-in knowing LocalStack's keys test/test. For the AWS block, a copy of
  envoy/aws.yaml whose cluster `lambda` (TLS to lambda.us-east-1.amazonaws.com:443) points at
  the stand-in over plain HTTP, everything else as shipped, and keys that look like AWS's in
  the `export` line's variables;
- the file names: `-c` names the copy, `.venv/bin/envoy` is ENVOY_BIN (or the venv's Envoy:
  envoy_harness.find_envoy), the .wasm is LAMBDA_WASM (or the built one), and `--base-id` /
  `--concurrency 1` / `--log-path` are added as the harness adds them; `make wasm` is the
  session's wasm_path fixture (which fails when it was not run).

Each Invoke must name my-function (the configurations' "function"), be signed for us-east-1
with the keys of the environment (the stand-in checks the signature), carry the real Lambda
Host, and curl must print the stand-in's echo of `{"hello": "world"}`. The access_log of the
shipped files prints the filter state (function=my-function class=success).

The files fix the placement (upstream), so the test runs once, under
LAMBDA_FILTER_PLACEMENT=upstream.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

import envoy_harness as eh
import log_audit
from lambda_standin import DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, StandIn

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHIPPED_WASM = "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm"
FUNCTION = "my-function"
LAMBDA_HOST = "lambda.us-east-1.amazonaws.com"
BODY = {"hello": "world"}

placement_independent = pytest.mark.skipif(
    eh.default_placement() != "upstream",
    reason="envoy/aws.yaml and envoy/localstack.yaml fix the placement (upstream): run once",
)
pytestmark = [placement_independent, pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")]


# ------------------------------------------------------------------------------ README
def own_function_blocks() -> list[str]:
    """The ```sh blocks of README's section whose heading contains "Your own function"."""
    section: list[str] | None = None
    level = 0
    fenced = False
    for line in README.read_text().splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"(#+) ", line)
        if heading and section is None and "Your own function" in line:
            section, level = [], len(heading.group(1))
        elif heading and section is not None and len(heading.group(1)) <= level:
            break
        elif section is not None:
            section.append(line)
    assert section is not None, "README.md has no section whose heading contains 'Your own function'"
    return re.findall(r"^```sh\n(.*?)^```", "".join(section), re.M | re.S)


def block(name: str) -> str:
    """The block that runs envoy/<name>."""
    found = [b for b in own_function_blocks() if re.search(rf"-c envoy/{re.escape(name)}\b", b)]
    assert len(found) == 1, f"expected one sh block running envoy/{name} in README's section, found {len(found)}"
    return found[0]


def commands(text: str) -> list[list[str]]:
    """Each command line of a block as words (comments and blank lines dropped)."""
    out = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def split_env(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """`A=1 B=2 cmd args` -> ({A: 1, B: 2}, [cmd, args])."""
    env = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        name, _, value = words[0].partition("=")
        env[name] = value
        words = words[1:]
    return env, words


class Steps:
    """A README block, taken apart: the variables it exports or sets on the Envoy command, the
    Envoy command line, the curl command line."""

    def __init__(self, text: str):
        self.exported: dict[str, str] = {}
        self.envoy: list[str] | None = None
        self.envoy_env: dict[str, str] = {}
        self.curl: list[str] | None = None
        self.other: list[list[str]] = []
        for words in commands(text):
            if words[0] == "export":
                for assignment in words[1:]:
                    name, _, value = assignment.partition("=")
                    self.exported[name] = value
                continue
            env, argv = split_env(words)
            if argv and argv[0].endswith("/envoy") or argv[:1] == ["envoy"]:
                assert self.envoy is None, f"two envoy commands in the block:\n{text}"
                self.envoy, self.envoy_env = argv, env
            elif argv[:1] == ["curl"]:
                assert self.curl is None, f"two curl commands in the block:\n{text}"
                self.curl = argv
            else:
                self.other.append(words)
        assert self.envoy and self.curl, f"the block lacks an envoy or a curl command:\n{text}"

    def config(self) -> str:
        return self.envoy[self.envoy.index("-c") + 1]


# ------------------------------------------------------------------------------ running it
class ReadmeEnvoy:
    """Envoy run with a README command line (rewritten as the module docstring says)."""

    def __init__(self, argv: list[str], config: Path, env: dict[str, str], workdir: Path):
        self.workdir = workdir
        self.log_path = workdir / "envoy.log"
        self.stdio_path = workdir / "envoy.stdio"
        argv = list(argv)
        argv[0] = eh.find_envoy()
        argv[argv.index("-c") + 1] = str(config)
        base_id = (os.getpid() % 100000) * 100 + 90 + next(_runs) % 10
        self.argv = argv + ["--base-id", str(base_id), "--concurrency", "1", "--log-path", str(self.log_path)]
        self.env = env
        self.proc: subprocess.Popen | None = None
        log_audit.AUDIT.envoys.append(self)

    def start(self, admin_port: int, listener_port: int, timeout: float = 20.0) -> "ReadmeEnvoy":
        self._stdio = open(self.stdio_path, "wb")
        # From the repo root, as README runs it.
        self.proc = subprocess.Popen(self.argv, stdout=self._stdio, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=ROOT, env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"envoy exited with {self.proc.returncode}:\n{self.log()[-6000:]}")
            try:
                ready = requests.get(f"http://127.0.0.1:{admin_port}/ready", timeout=0.5).text.strip() == "LIVE"
            except requests.RequestException:
                ready = False
            if ready and eh._port_accepts(listener_port):
                return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"envoy not ready within {timeout}s:\n{self.log()[-6000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if getattr(self, "_stdio", None) is not None:
            self._stdio.close()
            self._stdio = None

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in (self.log_path, self.stdio_path) if p.exists())

    def stdout(self) -> str:
        return self.stdio_path.read_text(errors="replace") if self.stdio_path.exists() else ""


_runs = iter(range(10**6))


def run_curl(argv: list[str], listener_port: int) -> str:
    """The README's curl, to the listener's port (localhost:10000 -> 127.0.0.1:<port>)."""
    argv = [re.sub(r"^(https?://)?localhost:10000\b", rf"\g<1>127.0.0.1:{listener_port}", w) for w in argv]
    assert any(f"127.0.0.1:{listener_port}" in w for w in argv), f"curl does not reach localhost:10000: {argv}"
    done = subprocess.run([*argv, "--max-time", "15"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stderr}"
    return done.stdout


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


@pytest.fixture
def started(request, tmp_path):
    """started(argv, config, env, admin, listener) -> a running ReadmeEnvoy, stopped after the
    test (its log printed when the test failed)."""
    made: list[ReadmeEnvoy] = []

    def start(argv, config, env, admin, listener) -> ReadmeEnvoy:
        e = ReadmeEnvoy(argv, config, env, tmp_path / f"envoy-{len(made)}")
        e.workdir.mkdir()
        made.append(e)
        return e.start(admin, listener)

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for e in made:
        e.stop()
        if failed:
            print(f"\n===== envoy log ({e.log_path}) =====\n{e.log()[-6000:]}")


@pytest.fixture
def lambda_standin():
    made: list[StandIn] = []

    def make(keys: dict[str, str]) -> StandIn:
        s = StandIn(keys=keys).start()
        made.append(s)
        log_audit.AUDIT.standins.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def check_invoke(standin: StandIn, access_key_id: str, session_token: str | None = None) -> None:
    (rec,) = standin.wait_for_requests(1)
    assert rec.verified, rec.reason
    assert rec.method == "POST" and rec.function == FUNCTION, (rec.method, rec.path)
    assert rec.path == f"/2015-03-31/functions/{FUNCTION}/invocations"
    assert (rec.access_key_id, rec.region) == (access_key_id, "us-east-1")
    assert rec.header("host") == LAMBDA_HOST
    assert json.loads(rec.body) == BODY
    assert rec.header("x-amz-security-token") == session_token


def access_log_line(envoy: ReadmeEnvoy) -> str:
    """The access-log line of the one request (stdout; Envoy flushes it on exit)."""
    envoy.stop()
    lines = [line for line in envoy.stdout().splitlines() if '"POST /' in line]
    assert len(lines) == 1, envoy.stdout()[-3000:]
    return lines[0]


# ------------------------------------------------------------------------------ the tests
def test_readme_section_has_both_blocks():
    aws, localstack = Steps(block("aws.yaml")), Steps(block("localstack.yaml"))
    assert aws.config() == "envoy/aws.yaml" and localstack.config() == "envoy/localstack.yaml"
    assert ["make", "wasm"] in aws.other
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(aws.exported)
    assert localstack.envoy_env == {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    for config in (ROOT / "envoy/aws.yaml", ROOT / "envoy/localstack.yaml"):
        (plugin,) = [json.loads(c["value"]) for c in walk(yaml.safe_load(config.read_text()))
                     if isinstance(c, dict) and c.get("@type", "").endswith("StringValue") and "function" in c.get("value", "")]
        assert plugin["function"] == FUNCTION and plugin["region"] == "us-east-1" and "credentials" not in plugin, plugin


def walk(obj):
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)


def test_localstack_block(started, lambda_standin, wasm_path, tmp_path):
    steps = Steps(block("localstack.yaml"))
    standin = lambda_standin({"test": "test"})
    listener, admin = eh.free_port(), eh.free_port()
    text = (ROOT / steps.config()).read_text()
    text = replace_once(text, "port_value: 10000", f"port_value: {listener}")
    text = replace_once(text, "port_value: 9901", f"port_value: {admin}")
    text = replace_once(text, "port_value: 4566", f"port_value: {standin.port}")
    text = replace_once(text, f"filename: {SHIPPED_WASM}", f"filename: {wasm_path}")
    config = tmp_path / "localstack.yaml"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(steps.exported, **steps.envoy_env)
    envoy = started(steps.envoy, config, env, admin, listener)

    out = run_curl(steps.curl, listener)
    assert json.loads(out) == BODY, out
    check_invoke(standin, "test")
    line = access_log_line(envoy)
    assert "function=my-function class=success" in line, line
    # LocalStack's key id is accepted, with one warning at load that it does not look like AWS's.
    warnings = [x for x in envoy.log().splitlines()
                if "[wasm]" in x and "[warning]" in x and "access key id" in x.lower()]
    assert len(warnings) == 1, "\n".join(warnings) or envoy.log()[-3000:]


@pytest.mark.parametrize("session_token", [None, "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKEN/+0123456789="],
                         ids=["long-term-keys", "temporary-keys"])
def test_aws_block(started, lambda_standin, wasm_path, tmp_path, session_token):
    steps = Steps(block("aws.yaml"))
    standin = lambda_standin({DEFAULT_ACCESS_KEY_ID: DEFAULT_SECRET_ACCESS_KEY})
    listener, admin = eh.free_port(), eh.free_port()
    bootstrap = yaml.safe_load((ROOT / steps.config()).read_text())
    assert bootstrap["admin"]["address"]["socket_address"]["port_value"] == 9901
    bootstrap["admin"]["address"]["socket_address"]["port_value"] = admin
    (api,) = bootstrap["static_resources"]["listeners"]
    assert api["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 10000}
    api["address"]["socket_address"]["port_value"] = listener
    (code,) = [c for c in walk(bootstrap) if c.get("filename") == SHIPPED_WASM]
    code["filename"] = wasm_path
    # Only the cluster changes: the stand-in over plain HTTP instead of Lambda over TLS.
    (cluster,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "lambda"]
    (endpoint,) = [e["endpoint"]["address"]["socket_address"]
                   for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"]]
    assert endpoint == {"address": LAMBDA_HOST, "port_value": 443}
    assert cluster["transport_socket"]["typed_config"]["sni"] == LAMBDA_HOST
    endpoint.update(address="127.0.0.1", port_value=standin.port)
    cluster["type"] = "STATIC"
    del cluster["transport_socket"], cluster["dns_lookup_family"]
    config = tmp_path / "aws.yaml"
    config.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
    # The export line's variables, with keys the stand-in knows (the README's are placeholders).
    keys = {"AWS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": DEFAULT_SECRET_ACCESS_KEY}
    assert set(keys) <= set(steps.exported), steps.exported
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({name: keys[name] for name in steps.exported if name in keys}, **steps.envoy_env)
    if session_token:
        env["AWS_SESSION_TOKEN"] = session_token
        log_audit.AUDIT.add_secret("session token", session_token, session_token=True)
    envoy = started(steps.envoy, config, env, admin, listener)

    out = run_curl(steps.curl, listener)
    assert json.loads(out) == BODY, out
    check_invoke(standin, DEFAULT_ACCESS_KEY_ID, session_token)
    line = access_log_line(envoy)
    assert "function=my-function class=success" in line, line
    # Keys that look like AWS's: no warning about the key id.
    assert not [x for x in envoy.log().splitlines() if "[warning]" in x and "access key id" in x.lower()]
