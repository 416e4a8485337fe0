"""Whatever the function answers, the client gets exactly one well-formed HTTP/1.1 response
(issue 16), checked in real Envoy, in the placement the suite runs in, with a raw-socket client
that parses Envoy's byte stream strictly (RFC 9112) and sends its next request on the same
keep-alive connection:

* response framing: 204 and 304 carry no body and no content-length, an answer to HEAD
  carries no body, and statuses outside 200-599 are a JSON 502 ``bad_response``; a body the
  function gives them never reaches the wire, where a keep-alive client (or a proxy pooling
  connections) would read it as the answer to its next request;
* header limits: a proxy-integration answer's header lines (headers, multiValueHeaders
  values, cookies, after merging) and header bytes are bounded; at the limit all of them are
  delivered, above it the answer is a JSON 502 ``bad_response`` naming the limit, never a 200
  missing part of them and never Envoy's plain-text ``missing required header: :status``;
* the client's own ``x-envoy-original-path`` never reaches the Invoke (upstream placement,
  where the Invoke is the client's request rewritten in place, and Envoy's access log reads
  that header);
* apigw_v2 answers that are not JSON are a ``bad_response`` (a JSON string or an object
  without statusCode is API Gateway's inferred 200);
* passthrough answers without content-length over Lambda's 6 MB limit get the same JSON 502
  ``response_too_large`` in both placements; under the limit they are relayed exactly.

The limits are the constants below (src/proxy_response.rs and src/response.rs).
"""
from __future__ import annotations

import json
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

import envoy_harness as eh
import lambda_standin as ls
import log_audit
from lambda_standin import Answer
from raw_standins import RawAnswer, RawStandIn, body_bytes

# --------------------------------------------------------------------------- limits
# src/proxy_response.rs: MAX_RESPONSE_HEADERS (header lines after merging) and
# MAX_RESPONSE_HEADER_BYTES (sum of the lines' name and value lengths).
MAX_HEADER_LINES = 100
MAX_HEADER_BYTES = 60 * 1024
# src/response.rs MAX_ANSWER_BYTES: the largest answer Lambda sends.
MAX_ANSWER_BYTES = 6_291_556

REGION = "us-east-1"
FUNCTION = "echo-fn"
INVOKE_PATH = f"/2015-03-31/functions/{FUNCTION}/invocations"
PLACEMENT = eh.default_placement()
IO_TIMEOUT = 10.0  # no read on the raw connection waits longer: a hang fails the test
QUIET_S = 0.5  # how long the connection must stay silent after a complete response
LAMBDA_HEADERS = {"content-type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
# An HTTP/1.1 response hidden in the function's body: if these bytes reach the wire after a
# response that has no body, the client reads them as the answer to its next request.
SMUGGLED = "HTTP/1.1 200 OK\r\nX-Injected: yes\r\nContent-Length: 6\r\n\r\nsmugl!"


# --------------------------------------------------------------------------- raw HTTP/1.1
TOKEN_RE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
STATUS_LINE_RE = re.compile(rb"^HTTP/1\.1 ([0-9]{3}) ([\t !-~\x80-\xff]*)$")
MAX_HEAD_BYTES = 4 * 1024 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024


class FramingError(AssertionError):
    """Envoy's bytes are not a well-formed HTTP/1.1 response."""


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # as received (names lower-cased)
    body: bytes
    framing: str  # "none" (no body by RFC 9112 6.3), "chunked", "content-length", "close"

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return ",".join(values) if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    def describe(self, body_chars: int = 400) -> str:
        heads = "".join(f"\n  {k}: {v[:120]}" for k, v in self.headers[:30])
        more = f"\n  … {len(self.headers) - 30} more" if len(self.headers) > 30 else ""
        return (f"HTTP {self.status} {self.reason} ({len(self.headers)} header lines, {self.framing}, "
                f"{len(self.body)} body bytes){heads}{more}\nbody: {self.body[:body_chars]!r}")


class RawClient:
    """One HTTP/1.1 connection to Envoy. Requests are written as given; responses are read
    strictly by RFC 9112 section 6.3: a response to HEAD and a 1xx, 204 or 304 response end
    with their headers (whatever content-length they carry); otherwise chunked, then
    content-length, then the connection's close delimits the body. Every byte is accounted
    for: what arrives beyond a response is the start of the next one."""

    def __init__(self, port: int, timeout: float = IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.closed = False  # the peer closed the connection

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        lines = [f"{method} {path} HTTP/1.1", "host: framing.test"]
        hs = {"content-type": "application/json", **(headers or {})}
        if body or method in ("POST", "PUT", "PATCH"):
            hs["content-length"] = str(len(body))
        lines += [f"{k}: {v}" for k, v in hs.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _fill(self, deadline: float) -> bool:
        """Reads more bytes; False when the peer closed the connection."""
        if self.closed:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise FramingError(f"no complete response within {self.timeout}s; received so far: "
                               f"{bytes(self.buf[:300])!r}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise FramingError(f"no complete response within {self.timeout}s; received so far: "
                               f"{bytes(self.buf[:300])!r}") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def _line(self, deadline: float, limit: int) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit:
                raise FramingError(f"line longer than {limit} bytes")
            if not self._fill(deadline):
                raise FramingError(f"connection closed inside a response head: {bytes(self.buf[:300])!r}")

    def _exactly(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise FramingError(f"connection closed after {len(self.buf)} of {n} body bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_response(self, method: str) -> RawResponse:
        deadline = time.monotonic() + self.timeout
        status_line = self._line(deadline, MAX_HEAD_BYTES)
        m = STATUS_LINE_RE.match(status_line)
        if not m:
            raise FramingError(f"not an HTTP/1.1 status line: {status_line[:200]!r}")
        status = int(m.group(1))
        headers: list[tuple[str, str]] = []
        head_bytes = len(status_line)
        while True:
            line = self._line(deadline, MAX_HEAD_BYTES)
            head_bytes += len(line) + 2
            if head_bytes > MAX_HEAD_BYTES:
                raise FramingError("response head over 4 MiB")
            if line == b"":
                break
            name, sep, value = line.partition(b":")
            if not sep or not TOKEN_RE.match(name):
                raise FramingError(f"malformed header line {line[:200]!r}")
            if any(c in value for c in b"\r\n\x00"):
                raise FramingError(f"control character in header {name!r}")
            headers.append((name.decode().lower(), value.strip(b" \t").decode("latin-1")))
        resp = RawResponse(status, m.group(2).decode("latin-1"), headers, b"", "none")
        if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
            return resp
        te = resp.header_all("transfer-encoding")
        cl = resp.header_all("content-length")
        if te:
            if [v.lower() for v in te] != ["chunked"] or cl:
                raise FramingError(f"transfer-encoding {te} with content-length {cl}")
            resp.framing = "chunked"
            body = bytearray()
            while True:
                size_line = self._line(deadline, 1024)
                size_text = size_line.split(b";")[0].strip()
                if not re.fullmatch(rb"[0-9a-fA-F]+", size_text):
                    raise FramingError(f"bad chunk size line {size_line!r}")
                size = int(size_text, 16)
                if size == 0:
                    while self._line(deadline, 65536) != b"":  # trailers
                        pass
                    break
                if len(body) + size > MAX_BODY_BYTES:
                    raise FramingError("chunked body over 64 MiB")
                body += self._exactly(size, deadline)
                if self._line(deadline, 2) != b"":
                    raise FramingError("chunk not followed by CRLF")
            resp.body = bytes(body)
        elif cl:
            if len(set(cl)) != 1 or not re.fullmatch(r"[0-9]+", cl[0]):
                raise FramingError(f"bad content-length {cl}")
            n = int(cl[0])
            if n > MAX_BODY_BYTES:
                raise FramingError(f"content-length {n} over 64 MiB")
            resp.framing = "content-length"
            resp.body = self._exactly(n, deadline)
        else:
            resp.framing = "close"
            while self._fill(deadline):
                if len(self.buf) > MAX_BODY_BYTES:
                    raise FramingError("close-delimited body over 64 MiB")
            resp.body = bytes(self.buf)
            self.buf.clear()
        return resp

    def unsolicited(self, quiet_s: float = QUIET_S) -> bytes:
        """Bytes that arrive within quiet_s without a request (there must be none: every
        response belongs to a request)."""
        deadline = time.monotonic() + quiet_s
        while not self.closed and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                break
            self.buf += data
        return bytes(self.buf)


def exchange(port: int, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None) -> RawResponse:
    """One request on a new connection; its response, checked to be alone on the wire."""
    with RawClient(port) as c:
        c.send(method, path, body, headers)
        r = c.read_response(method)
        extra = c.unsolicited(0.2)
        assert extra == b"", f"bytes after the response:\n{r.describe()}\nthen: {extra[:300]!r}"
        return r


def assert_json_error(r: RawResponse, status: int, error: str) -> dict:
    assert r.status == status and (r.header("content-type") or "").startswith("application/json"), \
        f"expected a JSON {status} {error}, got:\n{r.describe()}"
    body = r.json()
    assert body.get("error") == error, f"expected error={error!r}, got:\n{r.describe()}"
    assert body.get("request_id"), f"error body without request_id:\n{r.describe()}"
    return body


# --------------------------------------------------------------------------- the module's Envoy
PREFIX = "wasmcustom.proxy_wasm_lambda."
# What must never appear in Envoy's log (as test_faults): a panic, a trap, a VM failure.
BAD_LOG = re.compile(r"panick|\]\[critical\]\[|uncaught|runtimeerror|unreachable|wasm vm|vm failed|"
                     r"failed to (start|load|configure)", re.IGNORECASE)
FORMAT_PATHS = {"apigw_v2": "/v2", "apigw_v1": "/v1", "alb": "/alb"}
ECHO_PATH = "/echo"  # passthrough: the echo function answers the request's body
RAW_PATH = "/raw"  # passthrough, to the RawStandIn (answers without content-length)


@dataclass
class Env:
    envoy: eh.Envoy
    standin: ls.StandIn
    raw: RawStandIn

    @property
    def port(self) -> int:
        return self.envoy.listener_port


@pytest.fixture(scope="module")
def framing_env(wasm_path) -> Iterator[Env]:
    """One Envoy for the framing, header-limit, apigw_v2 and size cases (each case leaves it
    serving for the next: the last test checks its log)."""
    standin = ls.StandIn().start()
    raw = RawStandIn().start()
    log_audit.AUDIT.standins += [standin, raw]
    meta = lambda payload: {"payload": payload}  # noqa: E731
    cfg = eh.EnvoyConfig(
        plugin_config={"function": FUNCTION, "region": REGION, "credentials": standin.credentials(),
                       "timeout_ms": 10_000},
        routes=[*(eh.Route(path, "lambda", metadata=meta(fmt)) for fmt, path in FORMAT_PATHS.items()),
                eh.Route(RAW_PATH, "raw", timeout_s=15),
                eh.Route("/", "lambda")],
        clusters={"lambda": ("127.0.0.1", standin.port), "raw": ("127.0.0.1", raw.port)},
        wasm_path=wasm_path,
    )
    envoy = eh.Envoy(cfg)
    log_audit.AUDIT.envoys.append(envoy)
    envoy.start()
    yield Env(envoy, standin, raw)
    envoy.stop()
    standin.stop()
    raw.stop()


@pytest.fixture
def env(request, framing_env: Env) -> Iterator[Env]:
    assert framing_env.envoy.is_running(), "the module's Envoy died in an earlier case"
    framing_env.standin.reset()
    framing_env.raw.reset()
    yield framing_env
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        sys.stderr.write(f"\n===== envoy log ({framing_env.envoy.log_path}) tail =====\n"
                         f"{framing_env.envoy.log()[-6000:]}\n===== end envoy log =====\n")


def counter(envoy: eh.Envoy, name: str) -> int:
    return int(envoy.stats("proxy_wasm_lambda").get(PREFIX + name, 0))


def wait_for_counter(envoy: eh.Envoy, name: str, value: int, timeout: float = 3.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got = counter(envoy, name)
        if got == value or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def second_request_is_intact(c: RawClient, first: RawResponse, extra: bytes) -> RawResponse:
    """After `first` (and `extra`, the bytes that followed it unasked), the next request on the
    same connection gets its own answer: the echo function's, and nothing the first answer's
    function wrote."""
    transcript = f"first response:\n{first.describe()}\nbytes after it, before the next request: {extra[:300]!r}"
    assert extra == b"", ("the first response is followed by bytes nobody asked for; a keep-alive "
                          "client reads them as the answer to its next request\n" + transcript)
    assert not c.closed, "Envoy closed the connection after the first response\n" + transcript
    second_body = b'{"second": "request"}'
    c.send("POST", f"{ECHO_PATH}/second", second_body)
    second = c.read_response("POST")
    transcript += f"\nsecond response:\n{second.describe()}"
    assert (second.status, second.body) == (200, second_body), \
        "the second request did not get its own answer\n" + transcript
    assert second.header("x-injected") is None, transcript
    after = c.unsolicited(0.2)
    assert after == b"", f"bytes after the second response: {after[:300]!r}\n{transcript}"
    return second


# --------------------------------------------------------------------------- 1. response framing
@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("status", [204, 304])
def test_bodyless_status_never_carries_the_functions_body(env: Env, status: int, method: str):
    """The function's body on a 204 / 304 is dropped with its length: the response ends with
    its headers, and the next request on the connection gets its own answer. (Upstream, POST
    is rewritten in place and GET, with no body for the event, is dispatched.)"""
    env.standin.script(Answer(200, LAMBDA_HEADERS, {"statusCode": status, "body": SMUGGLED}))
    with RawClient(env.port) as c:
        c.send(method, f"{FORMAT_PATHS['apigw_v2']}/first", b'{"n": 1}' if method == "POST" else b"")
        first = c.read_response(method)
        extra = c.unsolicited()
        assert first.status == status, first.describe()
        for name in ("content-length", "transfer-encoding"):
            assert first.header(name) is None, (
                f"a {status} must carry no {name} (RFC 9110); got {name}: {first.header(name)}, and then "
                f"{len(extra)} bytes: {extra[:120]!r}\n{first.describe()}")
        assert "x-injected" not in dict(first.headers), first.describe()
        second_request_is_intact(c, first, extra)


@pytest.mark.parametrize("fmt", ["apigw_v1", "alb"])
@pytest.mark.parametrize("status", [204, 304])
def test_bodyless_status_in_the_other_event_formats(env: Env, fmt: str, status: int):
    body = {"statusCode": status, "body": SMUGGLED, "headers": {"content-type": "text/plain"}}
    if fmt == "alb":
        body["statusDescription"] = f"{status} Whatever"
    env.standin.script(Answer(200, LAMBDA_HEADERS, body))
    with RawClient(env.port) as c:
        c.send("POST", f"{FORMAT_PATHS[fmt]}/first", b'{"n": 1}')
        first = c.read_response("POST")
        extra = c.unsolicited()
        assert first.status == status, first.describe()
        assert first.header("content-length") is None and first.header("transfer-encoding") is None, \
            f"{first.describe()}\nthen: {extra[:120]!r}"
        second_request_is_intact(c, first, extra)


@pytest.mark.parametrize("route", ["apigw_v2", "passthrough"])
def test_answer_to_head_carries_no_body(env: Env, route: str):
    """HEAD, then GET on the same connection: the HEAD's answer ends with its headers (its
    content-length, if any, is the GET's), and the GET gets its own answer whole. Upstream, a
    passthrough HEAD is rewritten in place into a POST Invoke, whose answer has a body."""
    path = FORMAT_PATHS["apigw_v2"] if route == "apigw_v2" else ECHO_PATH
    if route == "apigw_v2":
        head_answer = {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": SMUGGLED}
        get_answer: Any = {"statusCode": 200, "headers": {"x-second": "get"}, "body": "the GET's own answer"}
        get_body = b"the GET's own answer"
    else:
        head_answer = SMUGGLED
        get_answer = {"the": "GET's own answer"}
        get_body = json.dumps(get_answer).encode()
    env.standin.script(Answer(200, LAMBDA_HEADERS, head_answer), Answer(200, LAMBDA_HEADERS, get_answer))
    with RawClient(env.port) as c:
        c.send("HEAD", f"{path}/thing")
        head = c.read_response("HEAD")
        extra = c.unsolicited()
        transcript = f"HEAD response:\n{head.describe()}\nbytes after it, before the GET: {extra[:300]!r}"
        assert head.status == 200, transcript
        assert extra == b"", "the answer to HEAD carries a body, read as the next response\n" + transcript
        assert not c.closed, "Envoy closed the connection after the HEAD\n" + transcript
        c.send("GET", f"{path}/thing")
        get = c.read_response("GET")
        transcript += f"\nGET response:\n{get.describe()}"
        assert (get.status, get.body) == (200, get_body), transcript
        assert get.header("x-injected") is None, transcript
        assert c.unsolicited(0.2) == b"", transcript


BAD_STATUSES = [100, 101, 199, 600, 0, -1, "abc", 99, 1000, 200.5, "204x", None, True]


@pytest.mark.parametrize("status", BAD_STATUSES, ids=lambda s: json.dumps(s))
def test_status_outside_200_599_is_bad_response(env: Env, status: Any):
    """Stays working (the old build already refuses these): 1xx would announce another
    response, and anything outside 200-599 is not the function's to send."""
    env.standin.script(Answer(200, LAMBDA_HEADERS, {"statusCode": status, "body": SMUGGLED}))
    with RawClient(env.port) as c:
        c.send("POST", f"{FORMAT_PATHS['apigw_v2']}/first", b"{}")
        first = c.read_response("POST")
        extra = c.unsolicited()
        body = assert_json_error(first, 502, "bad_response")
        assert "statusCode" in body.get("message", ""), first.describe()
        second_request_is_intact(c, first, extra)


# --------------------------------------------------------------------------- 2. header limits
def v2_answer(headers: dict[str, str] | None = None, cookies: list[str] | None = None) -> dict:
    out: dict[str, Any] = {"statusCode": 200, "body": "ok"}
    if headers is not None:
        out["headers"] = headers
    if cookies is not None:
        out["cookies"] = cookies
    return out


def v1_answer(headers: dict[str, str] | None = None, multi: dict[str, list[str]] | None = None) -> dict:
    return {"statusCode": 200, "headers": headers or {}, "multiValueHeaders": multi or {}, "body": "ok"}


def cookies(n: int, size: int = 0) -> list[str]:
    """n distinct cookies; with size, each line `name=value` exactly size bytes."""
    out = []
    for i in range(n):
        c = f"c{i:04d}=v{i}"
        out.append(c + "x" * (size - len(c)) if size else c)
    return out


def headers(n: int, value_len: int = 0, name: str = "x-h-") -> dict[str, str]:
    """n distinct headers named x-h-0000…; with value_len, each value that long."""
    return {f"{name}{i:04d}": (f"v{i}".ljust(value_len, "a") if value_len else f"v{i}") for i in range(n)}


def headers_of_bytes(total: int, lines: int = 10) -> dict[str, str]:
    """`lines` headers whose names and values add up to exactly `total` bytes."""
    out = {}
    left = total
    for i in range(lines):
        name = f"x-h-{i:04d}"
        value_len = left // (lines - i) - len(name)
        out[name] = "b" * value_len
        left -= len(name) + value_len
    assert sum(len(k) + len(v) for k, v in out.items()) == total
    return out


@dataclass
class HeaderCase:
    id: str
    path: str
    answer: dict
    exceeds: str | None  # None: delivered whole; "lines" / "bytes": the limit it breaks
    cookies: list[str] = field(default_factory=list)  # expected set-cookie lines, in order
    headers: dict[str, list[str]] = field(default_factory=dict)  # expected header values


V2, V1 = FORMAT_PATHS["apigw_v2"], FORMAT_PATHS["apigw_v1"]
N = MAX_HEADER_LINES
_multi = [f"m{i}" for i in range(N)]
_at_bytes = headers_of_bytes(MAX_HEADER_BYTES)
_over_bytes = headers_of_bytes(MAX_HEADER_BYTES + 1)
HEADER_CASES = [
    # --- at the limits: everything delivered (stays working on the old build)
    HeaderCase(f"{N}-cookies", V2, v2_answer(cookies=cookies(N)), None, cookies=cookies(N)),
    HeaderCase(f"{N}-headers", V2, v2_answer(headers(N)), None,
               headers={k: [v] for k, v in headers(N).items()}),
    HeaderCase(f"{N // 2}-headers+{N // 2}-cookies", V2, v2_answer(headers(N // 2), cookies(N // 2)), None,
               cookies=cookies(N // 2), headers={k: [v] for k, v in headers(N // 2).items()}),
    HeaderCase(f"{N}-multiValueHeaders-values", V1, v1_answer(multi={"x-m": _multi}), None,
               headers={"x-m": _multi}),
    # multiValueHeaders replace the same-named header: N lines after merging.
    HeaderCase(f"{N}-after-merging", V1, v1_answer({"x-m": "single"}, {"x-m": _multi}), None,
               headers={"x-m": _multi}),
    HeaderCase(f"{MAX_HEADER_BYTES}-header-bytes", V2, v2_answer(_at_bytes), None,
               headers={k: [v] for k, v in _at_bytes.items()}),
    # --- above them: a JSON 502 naming the limit
    HeaderCase(f"{N + 1}-cookies", V2, v2_answer(cookies=cookies(N + 1)), "lines"),
    HeaderCase(f"{N + 1}-headers", V2, v2_answer(headers(N + 1)), "lines"),
    HeaderCase(f"{N // 2}-headers+{N // 2 + 1}-cookies", V2, v2_answer(headers(N // 2), cookies(N // 2 + 1)),
               "lines"),
    HeaderCase(f"{N + 1}-multiValueHeaders-values", V1, v1_answer(multi={"x-m": _multi + ["m-last"]}), "lines"),
    HeaderCase(f"{N}-multiValueHeaders+1-header", V1, v1_answer({"x-other": "1"}, {"x-m": _multi}), "lines"),
    # The case: past about 1000 lines the old build lost them all.
    HeaderCase("1500-cookies", V2, v2_answer(cookies=cookies(1500)), "lines"),
    HeaderCase("1200-headers", V2, v2_answer(headers(1200)), "lines"),
    HeaderCase("1200-multiValueHeaders-values", V1, v1_answer(multi={"set-cookie": cookies(1200)}), "lines"),
    HeaderCase(f"{MAX_HEADER_BYTES + 1}-header-bytes", V2, v2_answer(_over_bytes), "bytes"),
    HeaderCase("10-cookies-of-7000-bytes", V2, v2_answer(cookies=cookies(10, 7000)), "bytes"),
    # About 5 MB of headers (the answer itself is under Lambda's 6 MB): the old build lost them.
    HeaderCase("50-headers-of-100KB", V2, v2_answer(headers(50, 100_000)), "bytes"),
]


@pytest.mark.parametrize("case", HEADER_CASES, ids=lambda c: c.id)
def test_header_limits(env: Env, case: HeaderCase):
    before = counter(env.envoy, "invocations.bad_response")
    env.standin.script(Answer(200, LAMBDA_HEADERS, case.answer))
    with RawClient(env.port) as c:
        c.send("POST", f"{case.path}/headers", b"{}")
        r = c.read_response("POST")
        extra = c.unsolicited(0.2)
        assert extra == b"", f"{r.describe()}\nthen: {extra[:200]!r}"
        if case.exceeds is None:
            assert (r.status, r.body) == (200, b"ok"), r.describe()
            assert r.header_all("set-cookie") == case.cookies, \
                f"set-cookie lines: {len(r.header_all('set-cookie'))} of {len(case.cookies)}\n{r.describe()}"
            for name, values in case.headers.items():
                assert r.header_all(name) == values, f"header {name}: {r.header_all(name)[:5]}…\n{r.describe()}"
            assert counter(env.envoy, "invocations.bad_response") == before
        else:
            limit = MAX_HEADER_LINES if case.exceeds == "lines" else MAX_HEADER_BYTES
            assert r.status != 200, ("an answer whose headers exceed the limit was delivered as a 200 "
                                     f"({len(r.header_all('set-cookie'))} set-cookie lines)\n{r.describe()}")
            body = assert_json_error(r, 502, "bad_response")
            assert re.search(rf"\b{limit}\b", body.get("message", "")), \
                f"the message does not name the limit {limit}:\n{r.describe()}"
            assert wait_for_counter(env.envoy, "invocations.bad_response", before + 1) == before + 1
        second_request_is_intact(c, r, b"")


# --------------------------------------------------------------------------- 4. apigw_v2 answers that are not JSON
@pytest.mark.parametrize("payload", [b"not json at all", b'{"statusCode": 200, "body": "cut', b"<html>x</html>"],
                         ids=["text", "truncated-JSON", "html"])
def test_apigw_v2_answer_that_is_not_json_is_bad_response(env: Env, payload: bytes):
    env.standin.script(Answer(200, LAMBDA_HEADERS, payload))
    r = exchange(env.port, "POST", f"{FORMAT_PATHS['apigw_v2']}/x", b"{}")
    assert_json_error(r, 502, "bad_response")
    assert payload not in r.body, r.describe()


def test_apigw_v2_json_string_answer_is_its_text(env: Env):
    """Stays working: API Gateway's inference, a JSON string is the body."""
    env.standin.script(Answer(200, LAMBDA_HEADERS, b'"hello"'))
    r = exchange(env.port, "POST", f"{FORMAT_PATHS['apigw_v2']}/x", b"{}")
    assert (r.status, r.body) == (200, b"hello"), r.describe()


def test_apigw_v2_json_object_without_status_code_is_the_body(env: Env):
    """Stays working: API Gateway's inference, JSON without statusCode is a 200 JSON body."""
    answer = {"message": "hi", "items": [1, 2], "nested": {"statusCodes": 3}}
    env.standin.script(Answer(200, LAMBDA_HEADERS, answer))
    r = exchange(env.port, "POST", f"{FORMAT_PATHS['apigw_v2']}/x", b"{}")
    assert r.status == 200 and (r.header("content-type") or "").startswith("application/json"), r.describe()
    assert r.json() == answer, r.describe()


# --------------------------------------------------------------------------- 5. passthrough, no content-length
@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_passthrough_answer_without_length_over_the_limit_is_response_too_large(env: Env, framing: str):
    """A successful passthrough answer with no content-length (chunked, or ended by the
    connection's close) larger than Lambda's limit: the same JSON 502 response_too_large in
    both placements, before any of it reaches the client."""
    env.raw.script(RawAnswer(200, size=7_000_000, framing=framing))
    t0 = time.monotonic()
    with RawClient(env.port, timeout=20) as c:
        c.send("POST", f"{RAW_PATH}/big", b'{"big": true}')
        r = c.read_response("POST")
        elapsed = time.monotonic() - t0
        summary = f"{r.describe(200)}\nafter {elapsed:.2f}s"
        body = assert_json_error(r, 502, "response_too_large")
        assert body.get("limit") == MAX_ANSWER_BYTES, summary
        assert elapsed < 8, summary
    assert len(env.raw.requests) == 1, "the filter retried"
    # The same Envoy answers the next request.
    r = exchange(env.port, "POST", f"{ECHO_PATH}/after", b'{"after": "too large"}')
    assert (r.status, r.body) == (200, b'{"after": "too large"}'), r.describe()


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_passthrough_answer_without_length_past_envoys_buffers_is_refused(env: Env, framing: str):
    """40 MB without content-length: refused in both placements, never relayed
    (docs/failures.md). Which refusal depends on which bound it meets first: downstream,
    Envoy's 32 MiB limit on a dispatched call's answer (Envoy resets the call:
    503 upstream_unavailable); upstream, the filter's 6 MB bound (502 response_too_large), or
    the cluster's buffer limit when one read carries the answer past it first (Envoy's own
    500)."""
    env.raw.script(RawAnswer(200, size=40_000_000, framing=framing))
    with RawClient(env.port, timeout=20) as c:
        c.send("POST", f"{RAW_PATH}/big", b'{"big": true}')
        r = c.read_response("POST")
    assert r.status >= 500, r.describe(200)
    assert len(r.body) < 1024, f"{len(r.body)} bytes relayed\n{r.describe(200)}"
    if eh.default_placement() == "downstream":
        assert_json_error(r, 503, "upstream_unavailable")
    elif r.status == 502:
        assert_json_error(r, 502, "response_too_large")
    else:
        assert r.status == 500, r.describe(200)
    r = exchange(env.port, "POST", f"{ECHO_PATH}/after", b'{"after": "too large"}')
    assert (r.status, r.body) == (200, b'{"after": "too large"}'), r.describe()


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_passthrough_answer_without_length_under_the_limit_is_relayed_exactly(env: Env, framing: str):
    """Stays working: 1 MB without content-length, byte for byte."""
    size = 1_000_000
    env.raw.script(RawAnswer(200, size=size, framing=framing))
    r = exchange(env.port, "POST", f"{RAW_PATH}/ok", b"{}")
    assert r.status == 200, r.describe(200)
    assert len(r.body) == size and r.body == body_bytes(size), f"{len(r.body)} bytes\n{r.describe(200)}"


# --------------------------------------------------------------------------- 3. forged x-envoy-original-path
ACCESS_LOG = {
    "name": "envoy.access_loggers.file",
    # No format given: Envoy's default, which prints %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%.
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"},
}


@pytest.fixture
def logged_envoy_factory(request, wasm_path) -> Iterator[Any]:
    """envoy_factory's twin whose HCM writes Envoy's default access log to
    envoy.workdir/access.log (flushed every 100 ms). Returns (envoy, access log path)."""
    started: list[eh.Envoy] = []

    def make(standin: ls.StandIn, routes: list[eh.Route], **plugin: Any) -> tuple[eh.Envoy, Path]:
        cfg = eh.EnvoyConfig(
            plugin_config={"function": FUNCTION, "region": REGION, "credentials": standin.credentials(), **plugin},
            routes=routes,
            clusters={"lambda": ("127.0.0.1", standin.port)},
            wasm_path=wasm_path,
        )
        e = eh.Envoy(cfg, extra_args=["--file-flush-interval-msec", "100"])
        log_path = e.workdir / "access.log"
        hcm = e.bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["access_log"] = [{**ACCESS_LOG, "typed_config": {**ACCESS_LOG["typed_config"], "path": str(log_path)}}]
        started.append(e)
        log_audit.AUDIT.envoys.append(e)
        e.start()
        return e, log_path

    yield make
    rep = getattr(request.node, "rep_call", None)
    for e in started:
        e.stop()
        if rep is not None and rep.failed:
            sys.stderr.write(f"\n===== envoy log ({e.log_path}) tail =====\n{e.log()[-6000:]}\n===== end =====\n")


def access_log_lines(path: Path, n: int, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n:
            break
        time.sleep(0.05)
    return lines


FORGED = "/forged"
upstream_only = pytest.mark.skipif(
    PLACEMENT != "upstream",
    reason="by design upstream only: only the upstream placement rewrites the client's request (and "
           "its header map, which the access log reads) into the Invoke; downstream, the Invoke is a "
           "new request the filter builds, and the client's header map is Envoy's as received",
)


@upstream_only
@pytest.mark.parametrize("retry", [False, True], ids=["first-attempt", "retried"])
@pytest.mark.parametrize("payload", ["passthrough", "apigw_v2"])
@pytest.mark.parametrize("client_path", [INVOKE_PATH, "/orders/7?x=1"], ids=["path-is-the-Invoke-path", "other-path"])
def test_client_never_chooses_the_original_path(logged_envoy_factory, standin_factory, client_path: str,
                                                payload: str, retry: bool):
    """The client sends its own x-envoy-original-path. Every Invoke (the first attempt and the
    router's retry) carries the client's real path there, and Envoy's default access log
    prints that, never the client's choice. The "other-path" cases stay working on the old
    build: only a client path equal to the Invoke path took the client's header."""
    standin = standin_factory()
    policy = {"retry_on": "5xx", "num_retries": 1} if retry else None
    envoy, log_path = logged_envoy_factory(
        standin, [eh.Route("/", "lambda", timeout_s=5, retry_policy=policy)], payload=payload)
    ok = {"statusCode": 200, "body": "done"} if payload == "apigw_v2" else {"done": True}
    if retry:
        # A 503 without Lambda's request id: a proxy in front of Lambda, the router retries it.
        standin.script(Answer(503, {"x-amzn-requestid": None, "content-type": "text/plain"}, b"overloaded"))
    standin.script(Answer(200, LAMBDA_HEADERS, ok))
    r = exchange(envoy.listener_port, "POST", client_path, b'{"n": 1}', {"x-envoy-original-path": FORGED})
    assert r.status == 200, r.describe()
    attempts = standin.wait_for_requests(2 if retry else 1)
    assert len(attempts) == (2 if retry else 1), [a.to_json() for a in attempts]
    for attempt in attempts:
        assert attempt.verified and attempt.path == INVOKE_PATH, (attempt.path, attempt.reason)
    lines = access_log_lines(log_path, 1)
    invoked = [a.header_all("x-envoy-original-path") for a in attempts]
    seen = (f"the client's path: {client_path}\nx-envoy-original-path of each Invoke: {invoked}\n"
            f"Envoy's access log: {lines}")
    assert invoked == [[client_path]] * len(attempts), seen
    assert len(lines) == 1 and f'"POST {client_path} HTTP/1.1" 200' in lines[0], seen
    assert FORGED not in lines[0], seen


# --------------------------------------------------------------------------- streamed answers (upstream)
upstream_streaming_only = pytest.mark.skipif(
    PLACEMENT != "upstream",
    reason="by design upstream only: invoke_mode response_stream is served only in the upstream "
           "placement (downstream falls back to the buffered Invoke, which the cases above cover)",
)


@pytest.fixture
def streaming_envoy(envoy_factory) -> Iterator[tuple[eh.Envoy, Any]]:
    import streaming_standin as ss

    with ss.StreamingStandIn() as standin:
        log_audit.AUDIT.standins.append(standin)
        envoy = envoy_factory(
            {"function": FUNCTION, "region": REGION, "credentials": standin.credentials(),
             "invoke_mode": "response_stream"},
            routes=[eh.Route("/", "lambda", timeout_s=10)],
            clusters={"lambda": standin.port},
        )
        yield envoy, standin


@upstream_streaming_only
@pytest.mark.parametrize("split", [False, True], ids=["one-frame", "body-in-later-frames"])
@pytest.mark.parametrize("status", [204, 304])
def test_streamed_bodyless_status_never_carries_the_functions_body(streaming_envoy, status: int, split: bool):
    """A streaming function whose prelude says 204 / 304 and that then writes: none of its
    bytes reach the wire (without a content-length, Envoy writes a 204's data raw)."""
    from streaming_standin import StreamAnswer

    envoy, standin = streaming_envoy
    writes = ["HTTP/1.1 200 OK\r\n", "X-Injected: yes\r\nContent-Length: 6\r\n\r\n", "smugl!"] if split \
        else [SMUGGLED]
    standin.script(StreamAnswer(prelude={"status_code": status, "headers": {"content-type": "text/plain"}},
                                writes=writes, delay_s=0.05 if split else 0.0))
    with RawClient(envoy.listener_port) as c:
        c.send("POST", "/stream", b"{}")
        first = c.read_response("POST")
        extra = c.unsolicited()
        assert first.status == status, first.describe()
        assert first.header("content-length") is None and first.header("transfer-encoding") is None, \
            f"{first.describe()}\nthen: {extra[:120]!r}"
        transcript = f"{first.describe()}\nbytes after it, before the next request: {extra[:300]!r}"
        assert extra == b"", "the streamed 204/304 is followed by the function's bytes\n" + transcript
        assert not c.closed, transcript
        # The next request on the connection: the echo function, streamed.
        c.send("POST", "/stream", b'{"second": "request"}')
        second = c.read_response("POST")
        assert (second.status, second.body) == (200, b'{"second": "request"}'), second.describe()
        assert second.header("x-injected") is None and c.unsolicited(0.2) == b"", second.describe()


@upstream_streaming_only
@pytest.mark.parametrize("n", [MAX_HEADER_LINES + 1, 1500])
def test_streamed_prelude_over_the_header_limit_is_bad_response(streaming_envoy, n: int):
    """The prelude's cookies count like a buffered answer's: never a response missing them."""
    from streaming_standin import StreamAnswer

    envoy, standin = streaming_envoy
    standin.script(StreamAnswer(prelude={"status_code": 200, "cookies": cookies(n)}, writes=["body"]))
    r = exchange(envoy.listener_port, "POST", "/stream", b"{}")
    assert r.status != 200, f"delivered as a 200 with {len(r.header_all('set-cookie'))} of {n} cookies"
    body = assert_json_error(r, 502, "bad_response")
    assert re.search(rf"\b{MAX_HEADER_LINES}\b", body.get("message", "")), r.describe()


# --------------------------------------------------------------------------- last: the module's Envoy log
def test_framing_cases_left_no_panic(framing_env: Env):
    """Runs last in the module: after every case above, the module's Envoy still serves, and
    its log shows no panic, trap or VM failure."""
    assert framing_env.envoy.is_running()
    r = exchange(framing_env.port, "POST", f"{ECHO_PATH}/last", b'{"last": true}')
    assert (r.status, r.body) == (200, b'{"last": true}'), r.describe()
    rc = framing_env.envoy.stop()
    log = framing_env.envoy.log()
    bad = [line for line in log.splitlines() if BAD_LOG.search(line)]
    assert not bad, "Envoy logged a panic / VM failure:\n" + "\n".join(bad[:10])
    assert rc == 0, f"Envoy exited with {rc}\n{log[-3000:]}"
