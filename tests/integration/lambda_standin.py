#!/usr/bin/env python3
"""A stand-in for the AWS Lambda Invoke API that verifies SigV4 signatures.

Every request is checked independently with botocore's SigV4 implementation:
service "lambda", region and date from the credential scope of the Authorization
header, timestamp from X-Amz-Date, exactly the headers listed in SignedHeaders, the
raw request path/query as received and the received body (whose SHA-256 must also
match X-Amz-Content-Sha256 when that header is present).  The secret key is looked up
by access key id in a table of known keys.

Each request is recorded (``StandIn.requests``) and answered with
  * 403 + ``x-amzn-errortype: InvalidSignatureException`` if the signature is bad,
  * else the next scripted answer (``StandIn.script(...)``), if any (an ``Answer`` may also
    script a transport fault: see ``Answer.fault``),
  * else like Lambda for an echo function: 200 echoing the request body
    (``application/json``, ``x-amzn-requestid``, ``X-Amz-Executed-Version: $LATEST``);
    202 with an empty body for ``X-Amz-Invocation-Type: Event``; 204 for ``DryRun``.

Script use::

    python tests/integration/lambda_standin.py --port 9001 --key AKID:SECRET

prints JSON {"url", "port", "keys"} and serves until SIGINT/SIGTERM; every request is
logged as one JSON line on stderr.

Both this stand-in and the STS proxy can stop accepting connections and start again on the
same port (``refuse_connections()`` / ``accept_connections()``), for "endpoint down,
connection refused" faults.
"""
from __future__ import annotations

import argparse
import calendar
import hashlib
import json
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

DEFAULT_ACCESS_KEY_ID = "AKIDSTANDIN000000001"
DEFAULT_SECRET_ACCESS_KEY = "standin/secret+Key0123456789abcdefXYZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*SignedHeaders=(?P<sh>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-f]+)\s*$"
)
_INVOKE_PATH_RE = re.compile(r"^/2015-03-31/functions/(?P<fn>[^/?]+)/invocations$")


@dataclass
class RecordedRequest:
    method: str
    path: str  # raw path without query, as received
    query: str  # raw query string ("" if none)
    headers: list[tuple[str, str]]  # in received order, original case
    body: bytes
    verified: bool
    reason: str
    received_at: float
    access_key_id: str | None = None
    region: str | None = None
    function: str | None = None  # from /2015-03-31/functions/<fn>/invocations (still percent-encoded)

    def header(self, name: str) -> str | None:
        vals = self.header_all(name)
        return ",".join(vals) if vals else None

    def header_all(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header_names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["body"] = self.body.decode("utf-8", errors="replace")
        return d


FAULTS = ("close", "rst", "truncate", "truncate_rst")


@dataclass
class Answer:
    """A scripted answer. ``fault`` breaks the transport instead of (or in the middle of)
    answering, after ``delay_s``:

    * ``"close"``: close the connection without answering (FIN);
    * ``"rst"``: reset it without answering (RST, SO_LINGER 0);
    * ``"truncate"``: send the status line and headers with the full ``Content-Length``,
      then ``truncate_at`` bytes of the body, then close (FIN);
    * ``"truncate_rst"``: the same, then reset (RST).

    For the truncating faults, ``stall_s`` holds the connection open (silent) for that long
    after the partial body, before breaking it.
    """

    status: int = 200
    # A None value leaves out a header the stand-in would add (x-amzn-requestid, content-type).
    headers: dict[str, str | None] = field(default_factory=dict)
    body: bytes | str | dict | list | None = None
    delay_s: float = 0.0
    fault: str | None = None
    truncate_at: int = 0
    stall_s: float = 0.0

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {FAULTS}")

    def body_bytes(self) -> bytes:
        b = self.body
        if b is None:
            return b""
        if isinstance(b, bytes):
            return b
        if isinstance(b, str):
            return b.encode()
        return json.dumps(b).encode()


def default_answer(invocation_type: str | None, body: bytes) -> Answer:
    """What Lambda answers for a successful Invoke of an echo function."""
    if invocation_type == "Event":
        return Answer(202, {"X-Amz-Executed-Version": "$LATEST"}, b"")
    if invocation_type == "DryRun":
        return Answer(204, {}, b"")
    return Answer(200, {"content-type": "application/json", "X-Amz-Executed-Version": "$LATEST"}, body)


class _SigV4Exact(SigV4Auth):
    """SigV4Auth that signs exactly the given header names (no blacklist, no added host)."""

    def __init__(self, credentials, service_name, region_name, signed_names: list[str]):
        super().__init__(credentials, service_name, region_name)
        self._signed_names = signed_names

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name in self._signed_names:
            for value in request.headers.get_all(name) or []:
                header_map[name] = value
        return header_map


def verify_sigv4(
    method: str,
    raw_target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    secrets: dict[str, str],
    expected_service: str = "lambda",
) -> tuple[bool, str, str | None, str | None]:
    """Return (ok, reason, access_key_id, region)."""
    hmap = {}
    for k, v in headers:
        hmap.setdefault(k.lower(), []).append(v)
    auth_vals = hmap.get("authorization", [])
    if len(auth_vals) != 1:
        return False, f"expected exactly one Authorization header, got {len(auth_vals)}", None, None
    m = _AUTH_RE.match(auth_vals[0].strip())
    if not m:
        return False, f"malformed Authorization header: {auth_vals[0]!r}", None, None
    cred_parts = m.group("cred").split("/")
    if len(cred_parts) != 5 or cred_parts[4] != "aws4_request":
        return False, f"malformed credential scope {m.group('cred')!r}", None, None
    akid, date, region, service, _ = cred_parts
    if akid not in secrets:
        return False, f"unknown access key id {akid!r}", akid, region
    if service != expected_service:
        return False, f"credential scope service is {service!r}, expected {expected_service!r}", akid, region
    amz_date = hmap.get("x-amz-date", [])
    if len(amz_date) != 1:
        return False, "missing or repeated X-Amz-Date header", akid, region
    ts = amz_date[0].strip()
    if not re.fullmatch(r"\d{8}T\d{6}Z", ts):
        return False, f"malformed X-Amz-Date {ts!r}", akid, region
    if ts[:8] != date:
        return False, f"credential scope date {date} does not match X-Amz-Date {ts}", akid, region
    try:
        skew = abs(time.time() - calendar.timegm(time.strptime(ts, "%Y%m%dT%H%M%SZ")))
    except (ValueError, OverflowError):
        return False, f"unparseable X-Amz-Date {ts!r}", akid, region
    if skew > 300:
        return False, f"X-Amz-Date {ts} is {skew:.0f}s away from now", akid, region
    signed_names = m.group("sh").split(";")
    if signed_names != sorted(signed_names) or any(n != n.lower() for n in signed_names):
        return False, f"SignedHeaders not sorted lowercase: {m.group('sh')}", akid, region
    if "host" not in signed_names:
        return False, "host is not a signed header", akid, region
    if "x-amz-date" not in signed_names:
        return False, "x-amz-date is not a signed header", akid, region
    missing = [n for n in signed_names if n not in hmap]
    if missing:
        return False, f"signed headers missing from request: {missing}", akid, region
    if "x-amz-security-token" in hmap and "x-amz-security-token" not in signed_names:
        return False, "x-amz-security-token present but not signed", akid, region
    body_hash = hashlib.sha256(body).hexdigest()
    declared = hmap.get("x-amz-content-sha256")
    if declared and declared[0].strip() != body_hash:
        return False, f"x-amz-content-sha256 {declared[0]!r} does not match body hash {body_hash}", akid, region

    host = hmap["host"][0]
    req_headers = HTTPHeaders()
    for k, v in headers:
        if k.lower() in signed_names:
            req_headers[k.lower()] = v
    req = AWSRequest(method=method, url=f"http://{host}{raw_target}", data=body, headers={})
    req.headers = req_headers
    req.context["timestamp"] = ts
    token = hmap.get("x-amz-security-token", [None])[0]
    auth = _SigV4Exact(Credentials(akid, secrets[akid], token), service, region, signed_names)
    canonical = auth.canonical_request(req)
    sts = auth.string_to_sign(req, canonical)
    expected = auth.signature(sts, req)
    if expected != m.group("sig"):
        return (
            False,
            "signature mismatch; canonical request was:\n" + canonical + "\n--- string to sign:\n" + sts,
            akid,
            region,
        )
    return True, "ok", akid, region


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LambdaStandIn/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        if self.server.standin.verbose:  # type: ignore[attr-defined]
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self) -> None:
        standin: StandIn = self.server.standin  # type: ignore[attr-defined]
        body = self._read_body()
        raw_target = self.path
        parts = urlsplit(raw_target)
        headers = list(self.headers.items())
        ok, reason, akid, region = verify_sigv4(self.command, raw_target, headers, body, standin.secrets)
        fm = _INVOKE_PATH_RE.match(parts.path)
        rec = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers=headers,
            body=body,
            verified=ok,
            reason=reason,
            received_at=time.time(),
            access_key_id=akid,
            region=region,
            function=fm.group("fn") if fm else None,
        )
        standin._record(rec)
        request_id = str(uuid.uuid4())
        if not ok:
            ans = Answer(
                403,
                {"x-amzn-errortype": "InvalidSignatureException", "content-type": "application/json"},
                {"message": "The request signature we calculated does not match the signature you provided. " + reason.split("\n")[0]},
            )
        else:
            ans = standin._next_answer() or default_answer(self.headers.get("X-Amz-Invocation-Type"), body)
        if ans.delay_s:
            time.sleep(ans.delay_s)
        payload = ans.body_bytes()
        if ans.fault in ("close", "rst"):
            self._break_connection(reset=ans.fault == "rst")
            return
        try:
            self.send_response(ans.status)
            names = {k.lower() for k in ans.headers}
            if "x-amzn-requestid" not in names:
                self.send_header("x-amzn-requestid", request_id)
            if "content-type" not in names and payload:
                self.send_header("content-type", "application/json")
            for k, v in ans.headers.items():
                if k.lower() != "content-length" and v is not None:
                    self.send_header(k, v)
            if ans.status not in (204, 304) and not (100 <= ans.status < 200):
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if ans.fault in ("truncate", "truncate_rst"):
                self.wfile.write(payload[: ans.truncate_at])
                self.wfile.flush()
                if ans.stall_s:
                    time.sleep(ans.stall_s)
                self._break_connection(reset=ans.fault == "truncate_rst")
                return
            if self.command != "HEAD" and ans.status not in (204, 304):
                self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def handle(self) -> None:
        self._broken = False
        try:
            super().handle()
        except (ValueError, OSError):
            if not self._broken:  # only a connection a scripted fault broke may fail here
                raise

    def _break_connection(self, reset: bool) -> None:
        """Ends the connection mid-exchange: FIN, or RST when `reset`."""
        self.close_connection = True
        self._broken = True
        try:
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # Close the file objects first: the socket only really closes (and sends
                # the RST) once nothing refers to it.
                self.wfile.close()
                self.rfile.close()
                self.connection.close()
            else:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class TrackingServer(ThreadingHTTPServer):
    """A threaded HTTP server that knows its open connections (to drop them all at once)."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of new connections
    # (Envoy's workers each open their own), and Envoy's 1 s connect timeout turns those
    # into connect failures.
    request_queue_size = 128

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.open_connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kw)

    def process_request(self, request, client_address):  # type: ignore[override]
        with self._connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[override]
        with self._connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # type: ignore[override]
        # A peer that resets or closes mid-request (Envoy giving up on a scripted fault, a
        # dropped connection) is expected here; anything else is still reported.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        with self._connections_lock:
            conns = list(self.open_connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Server(TrackingServer):
    pass


class LoopbackServer:
    """Lifecycle shared by the test servers: `self._server` is bound to 127.0.0.1 in __init__;
    start()/stop() run it on a daemon thread, or use the object as a context manager.

    refuse_connections() closes the listening socket and every open connection (new
    connects are refused, as by a dead host); accept_connections() listens again on the
    same port."""

    _server: ThreadingHTTPServer
    _thread: threading.Thread | None = None
    port: int
    refusing: bool = False

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.refusing:
            return
        self._server.shutdown()
        self._server.server_close()
        if isinstance(self._server, TrackingServer):
            self._server.drop_connections()
        if self._thread:
            self._thread.join(timeout=5)

    def refuse_connections(self) -> None:
        if self.refusing:
            return
        self.stop()
        self.refusing = True

    def accept_connections(self) -> None:
        if not self.refusing:
            return
        old = self._server
        new = type(old)(("127.0.0.1", self.port), old.RequestHandlerClass)
        for name in ("standin", "proxy"):  # the back-references the handlers use
            if hasattr(old, name):
                setattr(new, name, getattr(old, name))
        self._server = new
        self.refusing = False
        self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def serve_until_signalled(server, info: dict[str, Any]) -> int:
    """Command-line use of a started server: prints `info` as one JSON line, serves until
    SIGTERM or SIGINT, stops it."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(json.dumps(info), flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


class StandIn(LoopbackServer):
    """Threaded Lambda Invoke stand-in.  Use start()/stop() or as a context manager."""

    # The request handler (streaming_standin.py serves InvokeWithResponseStream with its own).
    handler_class: type[BaseHTTPRequestHandler] = _Handler

    def __init__(
        self,
        port: int = 0,
        keys: dict[str, str] | None = None,
        verbose: bool = False,
        on_request=None,
    ):
        self.secrets: dict[str, str] = dict(keys or {DEFAULT_ACCESS_KEY_ID: DEFAULT_SECRET_ACCESS_KEY})
        self.verbose = verbose
        self.on_request = on_request
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._script: list[Answer] = []
        self._server = _Server(("127.0.0.1", port), self.handler_class)
        self._server.standin = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def access_key_id(self) -> str:
        return next(iter(self.secrets))

    @property
    def secret_access_key(self) -> str:
        return self.secrets[self.access_key_id]

    def credentials(self) -> dict[str, str]:
        return {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key}

    def add_key(self, access_key_id: str, secret_access_key: str) -> None:
        with self._lock:
            self.secrets[access_key_id] = secret_access_key

    def script(self, *answers: Answer | dict) -> None:
        """Queue answers, consumed FIFO by validly signed requests."""
        with self._lock:
            for a in answers:
                self._script.append(a if isinstance(a, Answer) else Answer(**a))

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._script.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self._requests)

    # -------------------------------------------------------------- internals
    def _record(self, rec: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()
        if self.on_request:
            self.on_request(rec)

    def _next_answer(self) -> Answer | None:
        with self._lock:
            return self._script.pop(0) if self._script else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="AKID:SECRET",
        help="known access key (repeatable); default " + DEFAULT_ACCESS_KEY_ID,
    )
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    keys = dict(k.split(":", 1) for k in args.key) if args.key else None

    def log(rec: RecordedRequest) -> None:
        d = rec.to_json()
        if len(d["body"]) > 2000:
            d["body"] = d["body"][:2000] + "...(truncated)"
        print(json.dumps(d), file=sys.stderr, flush=True)

    s = StandIn(args.port, keys, verbose=args.verbose, on_request=log).start()
    return serve_until_signalled(s, {"url": s.url, "port": s.port, "keys": s.secrets})


if __name__ == "__main__":
    sys.exit(main())
