#!/usr/bin/env python3
"""A local Lambda for examples/dispatcher, on 127.0.0.1:<port> (default 5000).

    .venv/bin/python examples/dispatcher/local_lambda.py            # runs handler.py
    .venv/bin/python examples/dispatcher/local_lambda.py --moto     # moto (local AWS)

Default: the in-process runtime of the test suite (tests/integration/lambda_runtime.py) runs
handler.lambda_handler as the function `dispatcher`, after verifying each Invoke's SigV4
signature with botocore; every invocation is logged as one JSON line on stderr.

--moto: moto_server with IAM auth on (tests/integration/moto_aws.py); the function
`dispatcher` is created from handler.py, and the user `invoker` (lambda:Invoke only) signs.
moto runs functions only with Docker; without it (as here) an Invoke answers the event itself,
which shows exactly what the function receives from the filter.

Prints one JSON line {"endpoint", "access_key_id", "secret_access_key", "mode"} and serves
until SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import io
import json
import signal
import sys
import threading
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "tests" / "integration"))

FUNCTION = "dispatcher"


def handler_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(HERE / "handler.py", "handler.py")
    return buf.getvalue()


def start_moto(port: int):
    import moto_aws

    aws = moto_aws.start_moto(port=port)
    aws.client("lambda").create_function(
        FunctionName=FUNCTION, Runtime="python3.12", Role=aws.role_arn, Handler="handler.lambda_handler",
        Code={"ZipFile": handler_zip()}, Publish=False,
    )
    info = {"mode": "moto", "endpoint": aws.endpoint, "access_key_id": aws.invoker.access_key_id,
            "secret_access_key": aws.invoker.secret_access_key}
    return info, aws.stop


def start_runtime(port: int):
    import handler
    import lambda_runtime

    def log(rec) -> None:
        print(json.dumps({"function": rec.function, "signature_verified": rec.verified,
                          "event": rec.body.decode("utf-8", errors="replace")[:2000]}), file=sys.stderr, flush=True)

    rt = lambda_runtime.LambdaRuntime(port, functions={FUNCTION: handler.lambda_handler}, on_invoke=log).start()
    info = {"mode": "runtime", "endpoint": rt.url, "access_key_id": rt.access_key_id,
            "secret_access_key": rt.secret_access_key}
    return info, rt.stop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--moto", action="store_true", help="moto (the Invoke answers the event) instead of handler.py")
    args = ap.parse_args(argv)
    info, stop_server = (start_moto if args.moto else start_runtime)(args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(json.dumps(info), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        stop_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
