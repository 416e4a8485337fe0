"""The filter tells Envoy's access log what it did (docs/observability.md, Access logs): the filter state
`wasm.proxy_wasm_lambda` holds `function=… class=… profile=… lambda_request_id=…` (logfmt),
printed with %FILTER_STATE(wasm.proxy_wasm_lambda:PLAIN)% in both placements."""
from __future__ import annotations

import time

import requests

import envoy_harness as eh
from lambda_standin import Answer
from test_end_to_end import HTTP_TIMEOUT, plugin_config, show

# In the upstream placement the client's headers are gone from the rewritten request's map,
# so the lines are told apart by their order (the requests are sent one after the other).
FORMAT = "%RESPONSE_CODE% %FILTER_STATE(wasm.proxy_wasm_lambda:PLAIN)%\n"


def file_access_log(path) -> list[dict]:
    return [{"name": "envoy.access_loggers.file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": str(path), "log_format": {"text_format_source": {"inline_string": FORMAT}}}}]


def logged(path, count: int, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_function_class_profile_and_lambda_request_id_reach_the_access_log(envoy_factory, standin, tmp_path):
    path = tmp_path / "access.log"
    routes = [eh.Route("/orders", "lambda", metadata={"function": "orders", "qualifier": "live"}),
              eh.Route("/broken", "lambda", metadata={"function": "arn:aws:lambda:nope"}),
              eh.Route("/", "lambda")]
    envoy = envoy_factory(plugin_config(standin.credentials()), routes=routes, clusters={"lambda": standin.port},
                          access_log=file_access_log(path), extra_args=["--file-flush-interval-msec", "100"])

    def post(test_id: str, path_: str) -> requests.Response:
        return requests.post(envoy.url(path_), json={"id": test_id}, timeout=HTTP_TIMEOUT)

    assert post("ok", "/").status_code == 200
    standin.script(Answer(429, {"x-amzn-errortype": "TooManyRequestsException", "x-amzn-RequestId": "req-429-1",
                                "content-type": "application/json"}, {"message": "Rate Exceeded."}))
    r = post("throttled", "/orders")
    assert r.status_code == 429, show(r)
    assert post("broken", "/broken").status_code == 500
    lines = logged(path, 3)
    assert len(lines) == 3, lines
    status, state = lines[0].split(" ", 1)
    assert status == "200"
    fields = dict(kv.split("=", 1) for kv in state.split(" "))
    assert fields["function"] == "echo-fn" and fields["class"] == "success" and fields["profile"] == "default"
    assert len(fields["lambda_request_id"]) > 8, lines[0]
    assert lines[1] == "429 function=orders:live class=throttled profile=default lambda_request_id=req-429-1"
    # Refused before a function was known: the class alone.
    assert lines[2] == "500 class=route_config_invalid", lines[2]
