#!/usr/bin/env python3
"""A local Lambda: the Invoke API in front of in-process Python handlers.

A threaded HTTP server that accepts ``POST /2015-03-31/functions/<fn>/invocations``, verifies
the request's SigV4 signature with botocore exactly as the stand-in does (it uses
``lambda_standin.verify_sigv4``), parses the payload as the event, picks the handler by function
name (default: ``powertools_app.FUNCTIONS``: app-v2, app-v1, app-alb), runs it in-process with a
minimal LambdaContext and answers like Lambda:

  * ``200`` with the handler's result as JSON (``x-amzn-requestid``,
    ``X-Amz-Executed-Version: $LATEST``);
  * a handler exception: ``200`` with ``X-Amz-Function-Error: Unhandled`` and
    ``{"errorMessage", "errorType", "requestId", "stackTrace"}``;
  * ``X-Amz-Invocation-Type: Event``: ``202`` (the handler runs afterwards), ``DryRun``: ``204``;
  * bad signature: ``403 InvalidSignatureException``; unknown function: ``404
    ResourceNotFoundException``; a payload that is not JSON: ``400 InvalidRequestContentException``.

Like Lambda, one execution environment runs one invocation at a time: handlers run under a
lock (Powertools' resolvers keep the current event in class attributes, so concurrent
invocations in one process would see each other's events).

Every Invoke is recorded (``LambdaRuntime.requests``, ``lambda_standin.RecordedRequest``) with
the event as received, so a test can show exactly what the filter sent.

Script use::

    python tests/integration/lambda_runtime.py --port 5000 [--key AKID:SECRET]

prints JSON {"url", "port", "keys", "functions"} (the access key it accepts is in "keys") and
serves until SIGINT/SIGTERM; each invocation is logged as one JSON line on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lambda_standin as ls  # noqa: E402

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

Handler = Callable[[dict, Any], Any]


class LambdaContext:
    """The attributes of the Python runtime's context object that handlers commonly use."""

    def __init__(self, function_name: str, request_id: str, timeout_s: float = 15.0, memory_mb: int = 128):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _Handler(ls._Handler):
    server_version = "LambdaRuntime/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.runtime.verbose:  # type: ignore[attr-defined]
            super(ls._Handler, self).log_message(format, *args)

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if status not in (204, 304):
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if status not in (204, 304):
                self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _handle(self) -> None:
        runtime: LambdaRuntime = self.server.runtime  # type: ignore[attr-defined]
        body = self._read_body()
        parts = urlsplit(self.path)
        headers = list(self.headers.items())
        ok, reason, akid, region = ls.verify_sigv4(self.command, self.path, headers, body, runtime.secrets)
        fm = ls._INVOKE_PATH_RE.match(parts.path)
        rec = ls.RecordedRequest(
            method=self.command, path=parts.path, query=parts.query, headers=headers, body=body,
            verified=ok, reason=reason, received_at=time.time(), access_key_id=akid, region=region,
            function=fm.group("fn") if fm else None,
        )
        runtime._record(rec)
        request_id = str(uuid.uuid4())
        base = {"x-amzn-requestid": request_id, "content-type": "application/json"}

        def error(status: int, errortype: str, message: str) -> None:
            self._send(status, {**base, "x-amzn-errortype": errortype},
                       json.dumps({"Type": "User", "message": message}).encode())

        if not ok:
            return error(403, "InvalidSignatureException",
                         "The request signature we calculated does not match the signature you provided. "
                         + reason.split("\n")[0])
        if self.command != "POST" or not fm:
            return error(404, "UnknownOperationException", f"unknown operation {self.command} {parts.path}")
        name = unquote(fm.group("fn"))
        # A full or partial ARN names the function by its last component(s).
        if ":function:" in name:
            name = name.split(":function:", 1)[1]
        name = name.split(":", 1)[0]
        handler = runtime.functions.get(name)
        if handler is None:
            return error(404, "ResourceNotFoundException",
                         f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}")
        try:
            event = json.loads(body) if body else {}
        except ValueError as e:
            return error(400, "InvalidRequestContentException", f"Could not parse request body into json: {e}")
        invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        executed = {"X-Amz-Executed-Version": "$LATEST"}
        if invocation_type == "DryRun":
            return self._send(204, {"x-amzn-requestid": request_id}, b"")
        if invocation_type == "Event":
            threading.Thread(target=runtime.invoke, args=(name, handler, event, request_id), daemon=True).start()
            return self._send(202, {"x-amzn-requestid": request_id, **executed}, b"")
        result, failed = runtime.invoke(name, handler, event, request_id)
        headers_out = {**base, **executed}
        if failed:
            headers_out["X-Amz-Function-Error"] = "Unhandled"
        self._send(200, headers_out, result)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class LambdaRuntime(ls.LoopbackServer):
    """Threaded local Invoke endpoint.  Use start()/stop() or as a context manager."""

    def __init__(
        self,
        port: int = 0,
        functions: dict[str, Handler] | None = None,
        keys: dict[str, str] | None = None,
        verbose: bool = False,
        on_invoke: Callable[[ls.RecordedRequest], None] | None = None,
    ):
        if functions is None:
            import powertools_app

            functions = powertools_app.FUNCTIONS
        self.functions: dict[str, Handler] = dict(functions)
        self.secrets: dict[str, str] = dict(keys or {ls.DEFAULT_ACCESS_KEY_ID: ls.DEFAULT_SECRET_ACCESS_KEY})
        self.verbose = verbose
        self.on_invoke = on_invoke
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._run_lock = threading.Lock()  # one invocation at a time, like one execution environment
        self._requests: list[ls.RecordedRequest] = []
        self._server = ls._Server(("127.0.0.1", port), _Handler)
        self._server.runtime = self  # type: ignore[attr-defined]
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

    @property
    def requests(self) -> list[ls.RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[ls.RecordedRequest]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self._requests)

    def invoke(self, name: str, handler: Handler, event: Any, request_id: str) -> tuple[bytes, bool]:
        """Run one invocation; returns (payload, failed) as Lambda would answer it."""
        context = LambdaContext(name, request_id)
        with self._run_lock:
            try:
                result = handler(event, context)
                return json.dumps(result).encode(), False
            except Exception as e:  # noqa: BLE001 - every handler failure is a function error
                return json.dumps({
                    "errorMessage": str(e),
                    "errorType": type(e).__name__,
                    "requestId": request_id,
                    "stackTrace": traceback.format_exception(e)[1:],
                }).encode(), True

    # -------------------------------------------------------------- internals
    def _record(self, rec: ls.RecordedRequest) -> None:
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()
        if self.on_invoke:
            self.on_invoke(rec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--key", action="append", default=[], metavar="AKID:SECRET",
                    help="accepted access key (repeatable); default " + ls.DEFAULT_ACCESS_KEY_ID)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    keys = dict(k.split(":", 1) for k in args.key) if args.key else None

    def log(rec: ls.RecordedRequest) -> None:
        d = {"function": rec.function, "verified": rec.verified, "reason": rec.reason.split("\n")[0],
             "event": rec.body.decode("utf-8", errors="replace")[:2000]}
        print(json.dumps(d), file=sys.stderr, flush=True)

    rt = LambdaRuntime(args.port, keys=keys, verbose=args.verbose, on_invoke=log).start()
    return ls.serve_until_signalled(
        rt, {"url": rt.url, "port": rt.port, "keys": rt.secrets, "functions": sorted(rt.functions)})


if __name__ == "__main__":
    sys.exit(main())
