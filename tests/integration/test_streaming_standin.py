"""The streaming stand-in's wire format, checked with botocore's own event stream decoder
(EventStreamBuffer for the frames and CRCs, EventStream with the Lambda model's shapes for
PayloadChunk / InvokeComplete), so the encoder is proven independently of the filter."""
from __future__ import annotations

import hashlib
import http.client
import json
import time

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import ChecksumMismatch, EventStream, EventStreamBuffer
from botocore.parsers import EventStreamJSONParser

import streaming_standin as ss
from lambda_standin import Answer

PATH = "/2021-11-15/functions/streamer/response-streaming-invocations"


@pytest.fixture(scope="module")
def standin():
    with ss.StreamingStandIn() as s:
        yield s


@pytest.fixture(autouse=True)
def fresh(standin):
    standin.reset()


def post(standin, body: bytes = b"{}", path: str = PATH, sign: bool = True) -> http.client.HTTPResponse:
    req = AWSRequest(method="POST", url=standin.url + path, data=body, headers={"content-type": "application/json"})
    if sign:
        creds = Credentials(standin.access_key_id, standin.secret_access_key)
        SigV4Auth(creds, "lambda", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=30)
    conn.request("POST", path, body=body, headers=dict(req.headers.items()))
    return conn.getresponse()


def messages(raw: bytes) -> list:
    buf = EventStreamBuffer()
    buf.add_data(raw)
    return list(buf)


class _Raw:
    def __init__(self, data: bytes):
        self._data = data

    def stream(self):
        yield self._data

    def close(self):
        pass


def lambda_events(raw: bytes) -> list[dict]:
    """The answer parsed as botocore parses InvokeWithResponseStream."""
    model = botocore.session.get_session().get_service_model("lambda")
    shape = model.operation_model("InvokeWithResponseStream").output_shape.members["EventStream"]
    return list(EventStream(_Raw(raw), shape, EventStreamJSONParser(), "InvokeWithResponseStream"))


def test_frames_decode_with_botocore():
    payloads = [b"hello", b"", bytes(range(256)) * 300, "héllo".encode()]
    for data in payloads:
        frame = ss.payload_chunk(data)
        (msg,) = messages(frame)
        assert msg.headers == {":event-type": "PayloadChunk", ":content-type": "application/octet-stream", ":message-type": "event"}
        assert msg.payload == data
    typed = ss.encode_frame([("t", True), ("f", False), ("i", -5), ("b", b"\x00\x01"), ("s", "x")], b"p")
    (msg,) = messages(typed)
    assert msg.headers == {"t": True, "f": False, "i": -5, "b": b"\x00\x01", "s": "x"}


def test_stream_through_http_with_the_lambda_model():
    standin_answer = ss.StreamAnswer(writes=["first ", b"second ", "third"], log_result="bG9n")
    with ss.StreamingStandIn() as s:
        s.script(standin_answer)
        resp = post(s)
        raw = resp.read()
        assert resp.status == 200
        assert resp.getheader("transfer-encoding") == "chunked"
        assert resp.getheader("content-type") == ss.DEFAULT_STREAM_CONTENT_TYPE
        assert resp.getheader("x-amzn-requestid")
        assert resp.getheader("x-amz-executed-version") == "$LATEST"
        (rec,) = s.requests
        assert rec.verified, rec.reason
        assert rec.function == "streamer"
    events = lambda_events(raw)
    assert events == [
        {"PayloadChunk": {"Payload": b"first "}},
        {"PayloadChunk": {"Payload": b"second "}},
        {"PayloadChunk": {"Payload": b"third"}},
        {"InvokeComplete": {"LogResult": "bG9n"}},
    ]


def test_echo_without_script_and_buffered_path_still_served(standin):
    resp = post(standin, b'{"k":"v"}')
    events = lambda_events(resp.read())
    assert events[0] == {"PayloadChunk": {"Payload": b'{"k":"v"}'}}
    assert events[-1] == {"InvokeComplete": {}}
    resp = post(standin, b'{"k":"v"}', path="/2015-03-31/functions/streamer/invocations")
    assert resp.status == 200 and resp.read() == b'{"k":"v"}'


def test_bad_signature_is_refused(standin):
    resp = post(standin, sign=False)
    assert resp.status == 403
    assert resp.getheader("x-amzn-errortype") == "InvalidSignatureException"
    assert not standin.requests[0].verified


def test_prelude_and_split_prelude():
    prelude = {"status_code": 201, "headers": {"content-type": "text/html", "x-a": "1"}, "cookies": ["a=1", "b=2"]}
    for split in (0, 5):
        answer = ss.StreamAnswer(prelude=prelude, prelude_split=split, writes=["<p>hi</p>"])
        with ss.StreamingStandIn() as s:
            s.script(answer)
            resp = post(s)
            assert resp.getheader("content-type") == ss.HTTP_INTEGRATION_CONTENT_TYPE
            events = lambda_events(resp.read())
        data = b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)
        json_part, body = data.split(ss.PRELUDE_DELIMITER, 1)
        assert json.loads(json_part) == {"statusCode": 201, "headers": prelude["headers"], "cookies": ["a=1", "b=2"]}
        assert body == b"<p>hi</p>"
        assert len([e for e in events if "PayloadChunk" in e]) == (3 if split else 2)


def test_mid_stream_error_and_exception(standin):
    details = json.dumps({"errorType": "Error", "errorMessage": "boom"})
    standin.script(ss.StreamAnswer(writes=["partial"], error_code="Unhandled", error_details=details))
    events = lambda_events(post(standin).read())
    assert events[-1] == {"InvokeComplete": {"ErrorCode": "Unhandled", "ErrorDetails": details}}
    standin.script(ss.StreamAnswer(writes=["partial"], exception=("ServiceException", "internal")))
    msgs = messages(post(standin).read())
    assert msgs[-1].headers[":message-type"] == "exception"
    assert msgs[-1].headers[":exception-type"] == "ServiceException"
    assert json.loads(msgs[-1].payload) == {"message": "internal"}
    (msg,) = messages(ss.error_frame("InternalError", "try again"))
    assert msg.headers == {":error-code": "InternalError", ":error-message": "try again", ":message-type": "error"}


@pytest.mark.parametrize(
    "corruption,error",
    [("prelude_crc", ChecksumMismatch), ("message_crc", ChecksumMismatch), ("lengths", Exception)],  # botocore only bounds the header length: garbage headers
)
def test_corrupt_frames_are_caught_by_botocore(standin, corruption, error):
    standin.script(ss.StreamAnswer(writes=["ok", "bad"], corrupt_frame=1, corruption=corruption))
    raw = post(standin).read()
    buf = EventStreamBuffer()
    buf.add_data(raw)
    it = iter(buf)
    assert next(it).payload == b"ok"
    with pytest.raises(error):
        next(it)


def test_truncated_frame_and_missing_complete(standin):
    standin.script(ss.StreamAnswer(writes=["ok", "cut"], corrupt_frame=1, corruption="truncate"))
    raw = post(standin).read()
    assert [m.payload for m in messages(raw)] == [b"ok"]  # the half frame never completes
    assert len(raw) < 2 * len(ss.payload_chunk(b"ok"))
    standin.script(ss.StreamAnswer(writes=["a"], complete=False))
    assert [m.headers[":event-type"] for m in messages(post(standin).read())] == ["PayloadChunk"]


def test_frames_are_flushed_one_by_one_with_delays(standin):
    standin.script(ss.StreamAnswer(writes=["a", "b", "c"], delay_s=0.4))
    resp = post(standin)
    start = time.monotonic()
    first = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
    first_at = time.monotonic() - start
    rest = resp.read()
    total = time.monotonic() - start
    assert first_at < 0.3, first_at
    assert total > 1.0, total
    assert [m.payload for m in messages(first + rest)][:3] == [b"a", b"b", b"c"]
    times = [t for _, t, _ in standin.frame_times]
    assert len(times) == 4 and times[-1] - times[0] >= 1.1


def test_connection_break_mid_stream(standin):
    standin.script(ss.StreamAnswer(writes=["a", "b", "c"], break_after=2))
    resp = post(standin)
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        resp.read()


def test_api_error_before_the_stream(standin):
    standin.script(Answer(429, {"x-amzn-errortype": "TooManyRequestsException", "Retry-After": "3"}, {"Reason": "ConcurrentInvocationLimitExceeded"}))
    resp = post(standin)
    assert resp.status == 429
    assert resp.getheader("retry-after") == "3"
    assert json.loads(resp.read())["Reason"] == "ConcurrentInvocationLimitExceeded"


def test_large_stream_is_generated_on_the_fly(standin):
    size = 5 * 1024 * 1024 + 123
    answer = ss.StreamAnswer(large_bytes=size, chunk_bytes=65536)
    assert not isinstance(answer.frames(), list)
    standin.script(answer)
    resp = post(standin)
    buf = EventStreamBuffer()
    digest = hashlib.sha256()
    received = 0
    chunks = 0
    completed = False
    while True:
        data = resp.read(100_000)
        if not data:
            break
        buf.add_data(data)
        for msg in buf:
            if msg.headers[":event-type"] == "PayloadChunk":
                digest.update(msg.payload)
                received += len(msg.payload)
                chunks += 1
            else:
                completed = True
    assert completed
    assert received == size
    assert chunks == size // 65536 + 1
    assert digest.hexdigest() == ss.large_body_sha256(size)
