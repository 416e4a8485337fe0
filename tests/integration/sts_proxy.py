#!/usr/bin/env python3
"""A recording, controllable stand-in for the STS endpoint, in front of moto.

Envoy's ``sts`` cluster points here.  Every request is forwarded byte-for-byte (method,
raw path, headers in received order including ``Host``, body) to moto, whose answer is
returned; the SigV4 check, the trust policy (incl. ``sts:ExternalId``) and the
credentials are moto's.  Each request is recorded (``StsProxy.calls``), AssumeRole calls
with their parsed form, the answer's status, error code, the credentials handed out and
their expiration (as moto wrote it and as returned).

Modes (``set_mode``), effective for requests that arrive afterwards:

* ``normal``  forward to moto.
* ``down``    no answer: close the connection after reading the request (``down_style=
              "close"``, Envoy sees a reset) or answer a bare 503 (``down_style="503"``).
* ``slow``    sleep ``delay_s`` seconds, then forward.
* ``fail``    answer ``fail_status`` with ``fail_body`` (see ``sts_error_xml``) without
              forwarding.
* ``refuse``  not listening: connects are refused (open connections are closed); any
              other mode listens again on the same port.

``delay_s`` applies to every mode but ``normal`` (a slow failure, a slow reset).

Independently, ``rewrite_expiration_s=N`` replaces ``<Expiration>`` in a successful
AssumeRole answer with now+N s (ISO 8601, ``Z``), so refresh can be tested without
waiting for moto's 15-minute minimum lifetime (a negative N hands out credentials that
have already expired).  moto keeps honouring the credentials for their real lifetime.

``on_credentials(call)`` is called (in the handler thread) with each successful
AssumeRole's record *before* its answer is sent, e.g. to register the temporary key in
the Lambda stand-in before Envoy can use it.

Script use::

    python tests/integration/sts_proxy.py --upstream-port 5000 [--port 0]
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qs

import lambda_standin as ls
from lambda_standin import LoopbackServer, TrackingServer

_EXPIRATION_RE = re.compile(rb"<Expiration>([^<]*)</Expiration>")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}


def sts_error_xml(code: str, message: str, kind: str = "Sender") -> bytes:
    """An STS (query protocol) error document, as AWS writes it."""
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
        f"  <Error>\n    <Type>{kind}</Type>\n    <Code>{code}</Code>\n    <Message>{message}</Message>\n  </Error>\n"
        "  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n"
        "</ErrorResponse>\n"
    ).encode()


def iso_z(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch_s), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    t = text.strip().replace("Z", "+00:00")
    return dt.datetime.fromisoformat(t).timestamp()


def _xml_field(body: bytes, name: str) -> str | None:
    m = re.search(rb"<" + name.encode() + rb">([^<]*)</" + name.encode() + rb">", body)
    return m.group(1).decode() if m else None


@dataclass
class StsCall:
    received_at: float  # time.time() when the request was read
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    form: dict[str, str]  # the parsed form body (first value of each key)
    mode: str  # the mode it was handled in
    answered_at: float | None = None  # when the answer was sent (None: connection closed)
    status: int | None = None
    answer: bytes = b""
    error_code: str | None = None
    access_key_id: str | None = None  # the temporary credentials handed out
    secret_access_key: str | None = None
    session_token: str | None = None
    moto_expiration: str | None = None  # <Expiration> as moto wrote it
    expiration: str | None = None  # <Expiration> as returned (rewritten or not)

    @property
    def action(self) -> str | None:
        return self.form.get("Action")

    @property
    def expiration_epoch(self) -> float | None:
        return parse_iso(self.expiration) if self.expiration else None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.access_key_id is not None

    def header(self, name: str) -> str | None:
        n = name.lower()
        vals = [v for k, v in self.headers if k.lower() == n]
        return ",".join(vals) if vals else None

    def summary(self) -> dict[str, Any]:
        """For failure messages: no secrets."""
        return {
            "received_at": round(self.received_at, 3),
            "answered_at": round(self.answered_at, 3) if self.answered_at else None,
            "mode": self.mode,
            "action": self.action,
            "status": self.status,
            "error_code": self.error_code,
            "access_key_id": self.access_key_id,
            "expiration": self.expiration,
            "form_keys": sorted(self.form),
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "StsProxy/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self) -> None:
        proxy: StsProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self._read_body()
        headers = list(self.headers.items())
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        with proxy._lock:
            mode, delay_s = proxy.mode, proxy.delay_s
            down_style, fail = proxy.down_style, (proxy.fail_status, proxy.fail_body)
            rewrite = proxy.rewrite_expiration_s
        call = StsCall(time.time(), self.command, self.path, headers, body, form, mode)
        proxy._record(call)

        if delay_s > 0 and mode != "normal":
            time.sleep(delay_s)
        if mode == "down" and down_style == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        if mode == "down":
            status, resp_headers, answer = 503, [("Content-Type", "text/plain")], b"service unavailable"
        elif mode == "fail":
            status, resp_headers, answer = fail[0], [("Content-Type", "text/xml")], fail[1]
        else:
            try:
                status, resp_headers, answer = self._forward(proxy, body)
            except OSError as e:  # moto unreachable: behave like a dead endpoint
                call.error_code = f"forward failed: {e}"
                self.close_connection = True
                return
            if status == 200 and call.action == "AssumeRole":
                call.moto_expiration = _xml_field(answer, "Expiration")
                if rewrite is not None:
                    new = iso_z(time.time() + rewrite).encode()
                    answer = _EXPIRATION_RE.sub(b"<Expiration>" + new + b"</Expiration>", answer, count=1)
        call.status = status
        call.answer = answer
        call.error_code = call.error_code or _xml_field(answer, "Code")
        call.access_key_id = _xml_field(answer, "AccessKeyId")
        call.secret_access_key = _xml_field(answer, "SecretAccessKey")
        call.session_token = _xml_field(answer, "SessionToken")
        call.expiration = _xml_field(answer, "Expiration")
        if call.ok and proxy.on_credentials is not None:
            proxy.on_credentials(call)
        try:
            self.send_response(status)
            for k, v in resp_headers:
                if k.lower() not in _HOP_BY_HOP and k.lower() not in ("server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        call.answered_at = time.time()
        proxy._notify()

    def _forward(self, proxy: "StsProxy", body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=proxy.upstream_timeout)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():  # received order, original case, Host included
                conn.putheader(k, v)
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    do_POST = do_GET = do_PUT = _handle


class _Server(TrackingServer):
    pass


class StsProxy(LoopbackServer):
    """Threaded STS stand-in forwarding to moto at upstream_host:upstream_port."""

    def __init__(
        self,
        upstream_port: int,
        upstream_host: str = "127.0.0.1",
        port: int = 0,
        on_credentials: Callable[[StsCall], None] | None = None,
        upstream_timeout: float = 10.0,
    ):
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.upstream_timeout = upstream_timeout
        self.on_credentials = on_credentials
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._calls: list[StsCall] = []
        self.mode = "normal"
        self.delay_s = 0.0
        self.down_style = "close"
        self.fail_status = 403
        self.fail_body = sts_error_xml("AccessDenied", "scripted AccessDenied")
        self.rewrite_expiration_s: float | None = None
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.proxy = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ control
    def set_mode(
        self,
        mode: str,
        *,
        delay_s: float | None = None,
        down_style: str | None = None,
        fail_status: int | None = None,
        fail_body: bytes | str | None = None,
    ) -> None:
        if mode not in ("normal", "down", "slow", "fail", "refuse"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode == "refuse":
            self.refuse_connections()
        else:
            self.accept_connections()
        with self._lock:
            self.mode = mode
            if delay_s is not None:
                self.delay_s = delay_s
            if down_style is not None:
                if down_style not in ("close", "503"):
                    raise ValueError(f"unknown down_style {down_style!r}")
                self.down_style = down_style
            if fail_status is not None:
                self.fail_status = fail_status
            if fail_body is not None:
                self.fail_body = fail_body.encode() if isinstance(fail_body, str) else fail_body

    def set_rewrite_expiration(self, seconds: float | None) -> None:
        with self._lock:
            self.rewrite_expiration_s = seconds

    def reset(self) -> None:
        self.accept_connections()
        with self._lock:
            self._calls.clear()
            self.mode, self.delay_s, self.down_style = "normal", 0.0, "close"
            self.rewrite_expiration_s = None

    # ------------------------------------------------------------ records
    @property
    def calls(self) -> list[StsCall]:
        with self._lock:
            return list(self._calls)

    @property
    def assume_roles(self) -> list[StsCall]:
        return [c for c in self.calls if c.action == "AssumeRole"]

    def wait_for(self, predicate: Callable[[list[StsCall]], bool], timeout: float) -> list[StsCall]:
        """Waits (bounded) until predicate(calls) holds; returns the calls either way."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self._calls)):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
            return list(self._calls)

    def describe(self) -> str:
        return "\n".join(json.dumps(c.summary()) for c in self.calls) or "(no STS calls)"

    # ------------------------------------------------------------ internals
    def _record(self, call: StsCall) -> None:
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream-port", type=int, required=True, help="moto's port on 127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rewrite-expiration-s", type=float, default=None)
    args = ap.parse_args(argv)
    p = StsProxy(args.upstream_port, port=args.port).start()
    p.set_rewrite_expiration(args.rewrite_expiration_s)
    return ls.serve_until_signalled(p, {"url": p.url, "port": p.port})


if __name__ == "__main__":
    sys.exit(main())
