"""Response streaming through real Envoy: `invoke_mode: response_stream` with the filter as a
router upstream filter. The stand-in (streaming_standin.py) answers InvokeWithResponseStream
with event-stream frames, scripted with delays, preludes, errors and corrupt frames; the
filter decodes them as they arrive and the client reads the function's bytes as a stream."""
from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest
import requests

import envoy_harness as eh
import streaming_standin as ss
from lambda_standin import Answer
from streaming_standin import StreamAnswer
from test_end_to_end import HTTP_TIMEOUT, assert_error, plugin_config, show
from test_stats import PREFIX, wait_for_stats

STREAM_PATH = "/2021-11-15/functions/echo-fn/response-streaming-invocations"
BUFFERED_PATH = "/2015-03-31/functions/echo-fn/invocations"


@pytest.fixture(scope="module")
def streaming_standin():
    with ss.StreamingStandIn() as s:
        yield s


@pytest.fixture
def standin(streaming_standin):
    streaming_standin.reset()
    yield streaming_standin
    streaming_standin.reset()


def start(envoy_factory, standin, placement="upstream", timeout_s=30, **cfg_kw) -> eh.Envoy:
    cfg_kw.setdefault("invoke_mode", "response_stream")
    return envoy_factory(
        plugin_config(standin.credentials(), **cfg_kw),
        routes=[eh.Route("/", "lambda", timeout_s=timeout_s)],
        clusters={"lambda": standin.port},
        placement=placement,
    )


def stream_request(standin):
    rec = standin.wait_for_requests(1)[0]
    assert rec.verified, f"stand-in rejected the SigV4 signature: {rec.reason}"
    assert rec.path == STREAM_PATH, rec.path
    assert rec.header("x-amz-invocation-type") == "RequestResponse", rec.headers
    return rec


def read_until_broken(r: requests.Response) -> tuple[bytes, Exception | None]:
    """The body as far as it came, and the error that ended it (None: it ended well)."""
    got = b""
    try:
        for piece in r.iter_content(chunk_size=None):
            got += piece
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as e:
        return got, e
    return got, None


def wait_for_log(envoy, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout  # Envoy flushes its log file every few seconds
    while text not in envoy.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    return envoy.log()


def test_first_bytes_reach_the_client_long_before_the_last_frame(envoy_factory, standin):
    envoy = start(envoy_factory, standin)
    standin.script(StreamAnswer(writes=[f"event {i}\n" for i in range(5)], delay_s=0.5))
    t0 = time.monotonic()
    r = requests.post(envoy.url("/"), json={"go": 1}, stream=True, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    arrivals: list[tuple[float, bytes]] = []
    for piece in r.iter_content(chunk_size=None):
        arrivals.append((time.monotonic(), piece))
    body = b"".join(p for _, p in arrivals)
    assert body == b"".join(f"event {i}\n".encode() for i in range(5)), body
    first_at, last_at = arrivals[0][0], arrivals[-1][0]
    last_frame_sent = max(t for _, t, _ in standin.frame_times)
    gap = last_frame_sent - first_at
    print(f"first bytes at +{first_at - t0:.2f}s, last frame sent at +{last_frame_sent - t0:.2f}s, "
          f"stream ended at +{last_at - t0:.2f}s: gap {gap:.2f}s")
    assert b"event 0" in arrivals[0][1]
    assert gap >= 1.0, f"first bytes only {gap:.2f}s before the last frame: buffered, not streamed"
    assert r.headers.get("content-type") == "application/octet-stream", r.headers
    assert "content-length" not in r.headers and not any(h.startswith("x-amz") for h in r.headers), r.headers
    stream_request(standin)
    stats = wait_for_stats(envoy, {"invocations.success": 1, "invoke.in_place": 1})
    assert stats.get(PREFIX + "invocations.success") == 1, stats


def envoy_rss_kb(envoy) -> int:
    with open(f"/proc/{envoy.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_50_mb_stream_passes_with_envoy_rss_flat(envoy_factory, standin):
    envoy = start(envoy_factory, standin, timeout_s=120)
    # Warm up before the baseline: the first large stream takes Envoy's buffers, the VM's
    # linear memory (which never shrinks) and the allocator to their high-water marks (about
    # 40 MB here, whatever the stream's size); a stream that held its bytes would grow with it.
    started = envoy_rss_kb(envoy)
    total = 50 * 1024 * 1024
    standin.script(StreamAnswer(large_bytes=total, chunk_bytes=64 * 1024))
    with requests.post(envoy.url("/"), json={}, stream=True, timeout=120) as r:
        assert r.status_code == 200, show(r)
        assert sum(len(p) for p in r.iter_content(chunk_size=256 * 1024)) == total
    before = envoy_rss_kb(envoy)
    print(f"Envoy VmRSS at start {started} kB, after a first 50 MB stream {before} kB")
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], envoy_rss_kb(envoy))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    standin.script(StreamAnswer(large_bytes=total, chunk_bytes=64 * 1024))
    digest = hashlib.sha256()
    size = 0
    t0 = time.monotonic()
    with requests.post(envoy.url("/"), json={}, stream=True, timeout=120) as r:
        assert r.status_code == 200, show(r)
        for piece in r.iter_content(chunk_size=256 * 1024):
            digest.update(piece)
            size += len(piece)
    elapsed = time.monotonic() - t0
    done.set()
    sampler.join()
    after = envoy_rss_kb(envoy)
    peak[0] = max(peak[0], after)
    print(f"50 MB in {elapsed:.1f}s; Envoy VmRSS before {before} kB, peak {peak[0]} kB, after {after} kB "
          f"(peak growth {(peak[0] - before) / 1024:.1f} MB)")
    assert size == total
    assert digest.hexdigest() == ss.large_body_sha256(total)
    assert peak[0] - before < 30 * 1024, f"Envoy grew by {(peak[0] - before) / 1024:.1f} MB while streaming"
    stats = wait_for_stats(envoy, {"invocations.success": 2})
    assert stats.get(PREFIX + "invocations.success") == 2, stats


def test_prelude_status_headers_and_cookies_reach_the_client(envoy_factory, standin):
    envoy = start(envoy_factory, standin, payload="apigw_v2")
    standin.script(StreamAnswer(
        prelude=dict(status_code=201, headers={"content-type": "text/event-stream", "x-app": "yes"},
                     cookies=["a=1", "b=2; Path=/"]),
        prelude_split=12,
        writes=["data: one\n\n", "data: two\n\n"],
        delay_s=0.1,
    ))
    r = requests.post(envoy.url("/events?x=1"), data=b"hello", stream=True, timeout=HTTP_TIMEOUT)
    body, error = read_until_broken(r)
    assert error is None, error
    assert r.status_code == 201, show(r)
    assert r.headers.get("content-type") == "text/event-stream", r.headers
    assert r.headers.get("x-app") == "yes", r.headers
    assert r.raw.headers.getlist("set-cookie") == ["a=1", "b=2; Path=/"], r.raw.headers
    assert not any(h.lower().startswith(("x-amz", "x-amzn")) for h in r.headers), r.headers
    assert body == b"data: one\n\ndata: two\n\n", body
    rec = stream_request(standin)
    event = json.loads(rec.body)
    assert event["version"] == "2.0" and event["rawPath"] == "/events", event
    stats = wait_for_stats(envoy, {"invocations.success": 1})
    assert stats.get(PREFIX + "invocations.success") == 1, stats


def test_function_error_after_the_first_bytes_ends_the_stream_abnormally(envoy_factory, standin):
    envoy = start(envoy_factory, standin)
    standin.script(StreamAnswer(writes=["first part\n"], delay_s=0.3, error_code="Unhandled",
                                error_details='{"errorMessage":"late boom"}'))
    r = requests.post(envoy.url("/"), json={}, headers={"x-request-id": "mid-stream-1"}, stream=True,
                      timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    body, error = read_until_broken(r)
    assert body == b"first part\n", body
    assert error is not None, "the client must see a broken response, not a complete one"
    stats = wait_for_stats(envoy, {"invocations.function_error": 1})
    assert stats.get(PREFIX + "invocations.function_error") == 1, stats
    assert stats.get(PREFIX + "invocations.success", 0) == 0, stats
    log = wait_for_log(envoy, "request_id=mid-stream-1")
    line = next((ln for ln in log.splitlines() if "request_id=mid-stream-1" in ln), "")
    assert "function_error" in line and "ended abnormally" in line, line


@pytest.mark.parametrize("corruption", ["message_crc", "truncate"])
def test_corrupt_frame_after_the_first_bytes_ends_the_stream_abnormally(envoy_factory, standin, corruption):
    envoy = start(envoy_factory, standin)
    standin.script(StreamAnswer(writes=["good\n", "lost\n"], delay_s=0.2, corrupt_frame=1, corruption=corruption))
    r = requests.post(envoy.url("/"), json={}, headers={"x-request-id": "corrupt-1"}, stream=True,
                      timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, show(r)
    body, error = read_until_broken(r)
    assert body == b"good\n", body
    assert error is not None, "the client must see a broken response"
    stats = wait_for_stats(envoy, {"invocations.upstream_error": 1})
    assert stats.get(PREFIX + "invocations.upstream_error") == 1, stats
    expected_class = "crc_mismatch" if corruption == "message_crc" else "truncated"
    log = wait_for_log(envoy, expected_class)
    assert "request_id=corrupt-1" in log and expected_class in log, log[-3000:]


def test_errors_before_the_first_byte_are_json_errors(envoy_factory, standin):
    envoy = start(envoy_factory, standin, function_error_status=500)
    # InvokeComplete with an error before any byte.
    standin.script(StreamAnswer(error_code="Unhandled", error_details='{"errorMessage":"early boom"}'))
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    body = assert_error(r, 500, "function_error")
    assert body.get("message") == "early boom" and body.get("type") == "Unhandled", body
    # A corrupt first frame.
    standin.script(StreamAnswer(writes=["x"], corrupt_frame=0, corruption="prelude_crc"))
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    body = assert_error(r, 502, "bad_stream")
    assert body.get("reason") == "crc_mismatch", body
    # A prelude that is announced but missing.
    standin.script(StreamAnswer(writes=["no prelude"], lambda_content_type=ss.HTTP_INTEGRATION_CONTENT_TYPE))
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    assert_error(r, 502, "bad_response")
    # An API error before the stream: decoded as in buffered mode.
    standin.script(Answer(429, {"x-amzn-errortype": "TooManyRequestsException", "retry-after": "2"},
                          {"message": "Rate exceeded"}))
    r = requests.post(envoy.url("/"), json={}, timeout=HTTP_TIMEOUT)
    assert_error(r, 429, "throttled")
    assert r.headers.get("retry-after") == "2", r.headers
    expected = {"invocations.function_error": 1, "invocations.upstream_error": 1,
                "invocations.bad_response": 1, "invocations.throttled": 1}
    stats = wait_for_stats(envoy, expected)
    for name, value in expected.items():
        assert stats.get(PREFIX + name) == value, f"{name}: {stats}"


def test_route_timeout_mid_stream_cuts_the_response_and_is_counted(envoy_factory, standin):
    envoy = start(envoy_factory, standin, timeout_s=1)
    standin.script(StreamAnswer(writes=["a\n", "b\n", "c\n"], delay_s=0.8))
    r = requests.post(envoy.url("/"), json={}, stream=True, timeout=HTTP_TIMEOUT)
    body, error = read_until_broken(r)
    assert r.status_code == 200 and body.startswith(b"a\n") and error is not None, (body, error)
    stats = wait_for_stats(envoy, {"invocations.upstream_error": 1})
    assert stats.get(PREFIX + "invocations.upstream_error") == 1, stats


def test_downstream_placement_falls_back_to_the_buffered_invoke(envoy_factory, standin):
    envoy = start(envoy_factory, standin, placement="downstream")
    for n in range(2):
        standin.script(Answer(200, {"content-type": "application/json"}, {"n": n}))
        r = requests.post(envoy.url("/"), json={"n": n}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200 and r.json() == {"n": n}, show(r)
    recs = standin.wait_for_requests(2)
    assert [rec.path for rec in recs] == [BUFFERED_PATH, BUFFERED_PATH]
    assert all(rec.verified for rec in recs), [rec.reason for rec in recs]
    log = wait_for_log(envoy, "sent as the buffered Invoke")
    assert log.count("sent as the buffered Invoke") == 1, "one line per route, not per request"
    assert "upstream_http_filters" in log


def test_body_less_event_request_falls_back_even_upstream(envoy_factory, standin):
    envoy = start(envoy_factory, standin, payload="apigw_v2")
    standin.script(Answer(200, {"content-type": "application/json"}, {"statusCode": 200, "body": "got"}))
    r = requests.get(envoy.url("/things"), timeout=HTTP_TIMEOUT)
    assert (r.status_code, r.text) == (200, "got"), show(r)
    rec = standin.wait_for_requests(1)[0]
    assert rec.verified and rec.path == BUFFERED_PATH, (rec.path, rec.reason)
    assert "cannot carry the event payload" in wait_for_log(envoy, "sent as the buffered Invoke")


def test_stream_memory_is_bounded_by_the_cluster_buffer_limit(envoy_factory, standin):
    """The VM reads each chunk Envoy hands it, and Envoy's chunks grow up to the connection's
    buffer limit when the client is slower than Lambda; Wasm memory never shrinks, so the
    largest chunk sets the VM's high-water mark. With a small limit on the streaming cluster a
    first, cold 50 MB stream leaves Envoy's memory where it was (8 MiB: about +50 MB)."""
    envoy = envoy_factory(
        plugin_config(standin.credentials(), invoke_mode="response_stream"),
        routes=[eh.Route("/", "lambda", timeout_s=120)],
        clusters={"lambda": standin.port},
        placement="upstream",
        per_connection_buffer_limit_bytes=256 * 1024,
    )
    started = envoy_rss_kb(envoy)
    total = 50 * 1024 * 1024
    standin.script(StreamAnswer(large_bytes=total, chunk_bytes=64 * 1024))
    with requests.post(envoy.url("/"), json={}, stream=True, timeout=120) as r:
        assert r.status_code == 200, show(r)
        assert sum(len(p) for p in r.iter_content(chunk_size=256 * 1024)) == total
    growth_mb = (envoy_rss_kb(envoy) - started) / 1024
    assert growth_mb < 10, f"Envoy grew by {growth_mb:.1f} MB over a 50 MB stream"
