#!/usr/bin/env python3
"""A stand-in for Lambda's InvokeWithResponseStream that streams event-stream frames.

``StreamingStandIn`` is the Invoke stand-in of lambda_standin.py (same SigV4 verification
with botocore, same recording, same LoopbackServer lifecycle and transport faults) whose
handler also answers

    POST /2021-11-15/functions/{fn}/response-streaming-invocations[?Qualifier=…]

with status 200, ``Transfer-Encoding: chunked`` and a body of
``application/vnd.amazon.eventstream`` frames, encoded here from the AWS event stream
format (prelude: total length, headers length, CRC32 of those 8 bytes; headers; payload;
CRC32 of the whole message, zlib's CRC32): one ``PayloadChunk`` event per function write,
then ``InvokeComplete`` (``ErrorCode`` / ``ErrorDetails`` / ``LogResult``). Each frame is
sent and flushed as its own HTTP chunk, ``StreamAnswer.delay_s`` apart.

What is streamed is scripted with ``StreamAnswer`` (``standin.script(...)``, FIFO like
``Answer``): the function's writes, an HTTP prelude (the Function URL format: JSON
statusCode/headers/cookies then 8 NUL bytes, with the stream content type
``application/vnd.awslambda.http-integration-response``), delays, an InvokeComplete
error, an exception frame, a corrupt frame, a break of the connection mid-stream, or a large
stream (``large_bytes`` generated on the fly in ``chunk_bytes`` pieces, never held whole).
A plain ``Answer`` scripted for a streaming request is sent as is (e.g. a 429 before any
frame). Without a script the function echoes the request body (64 KiB writes).

The ``Content-Type`` of the answer is, as in the Lambda API model
(``ResponseStreamContentType``), the function's stream content type:
``application/octet-stream`` by default, the HTTP-integration type with a prelude;
``StreamAnswer.lambda_content_type`` sends another (e.g. the event stream's own type).
The other paths (the 2015-03-31 Invoke) are served by the buffered stand-in unchanged.

Script use::

    python tests/integration/streaming_standin.py --port 9001 --key AKID:SECRET
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import struct
import sys
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlsplit

# As the tests import it (conftest puts this folder on sys.path), or run from this folder.
import lambda_standin as ls
from lambda_standin import Answer, RecordedRequest, StandIn, _Handler, verify_sigv4

EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
DEFAULT_STREAM_CONTENT_TYPE = "application/octet-stream"
PRELUDE_DELIMITER = b"\x00" * 8
STREAM_PATH_RE = re.compile(r"^/2021-11-15/functions/(?P<fn>[^/?]+)/response-streaming-invocations$")

CORRUPTIONS = ("prelude_crc", "message_crc", "lengths", "truncate")


# ------------------------------------------------------------------ event stream encoding
def encode_header(name: str, value: Any) -> bytes:
    """One header: name length u8, name, value type u8, value (types of the AWS spec)."""
    raw = name.encode()
    if not 0 < len(raw) < 256:
        raise ValueError(f"header name length {len(raw)}")
    out = struct.pack(">B", len(raw)) + raw
    if value is True:
        return out + b"\x00"
    if value is False:
        return out + b"\x01"
    if isinstance(value, int):
        return out + b"\x04" + struct.pack(">i", value)
    if isinstance(value, bytes):
        return out + b"\x06" + struct.pack(">H", len(value)) + value
    data = str(value).encode()
    return out + b"\x07" + struct.pack(">H", len(data)) + data


def encode_frame(headers: list[tuple[str, Any]], payload: bytes = b"") -> bytes:
    """One event stream message: prelude + prelude CRC + headers + payload + message CRC."""
    block = b"".join(encode_header(n, v) for n, v in headers)
    total = 12 + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + block + payload
    return message + struct.pack(">I", zlib.crc32(message))


def payload_chunk(data: bytes) -> bytes:
    return encode_frame(
        [(":event-type", "PayloadChunk"), (":content-type", "application/octet-stream"), (":message-type", "event")],
        data,
    )


def invoke_complete(error_code: str | None = None, error_details: str | None = None, log_result: str | None = None) -> bytes:
    body = {k: v for k, v in (("ErrorCode", error_code), ("ErrorDetails", error_details), ("LogResult", log_result)) if v is not None}
    return encode_frame(
        [(":event-type", "InvokeComplete"), (":content-type", "application/json"), (":message-type", "event")],
        json.dumps(body).encode(),
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    return encode_frame(
        [(":exception-type", exception_type), (":content-type", "application/json"), (":message-type", "exception")],
        json.dumps({"message": message}).encode(),
    )


def error_frame(error_code: str, error_message: str) -> bytes:
    return encode_frame([(":error-code", error_code), (":error-message", error_message), (":message-type", "error")])


def corrupt(frame: bytes, kind: str) -> bytes:
    """A damaged copy of `frame`: a prelude or message CRC that does not match, lengths that
    do not fit together (CRCs recomputed so only the lengths are wrong), or cut short."""
    b = bytearray(frame)
    if kind == "prelude_crc":
        b[8] ^= 0xFF
    elif kind == "message_crc":
        b[-1] ^= 0xFF
    elif kind == "lengths":
        struct.pack_into(">I", b, 4, len(b))  # headers longer than the frame
        struct.pack_into(">I", b, 8, zlib.crc32(bytes(b[:8])))
        struct.pack_into(">I", b, len(b) - 4, zlib.crc32(bytes(b[:-4])))
    elif kind == "truncate":
        return bytes(b[: len(b) // 2])
    else:
        raise ValueError(f"unknown corruption {kind!r}; one of {CORRUPTIONS}")
    return bytes(b)


def http_prelude(status_code: int | None = 200, headers: dict[str, Any] | None = None, cookies: list[str] | None = None) -> bytes:
    """The Function URL streaming prelude: JSON, then 8 NUL bytes (as Node's
    awslambda.HttpResponseStream.from writes it)."""
    prelude: dict[str, Any] = {}
    if status_code is not None:
        prelude["statusCode"] = status_code
    if headers is not None:
        prelude["headers"] = headers
    if cookies is not None:
        prelude["cookies"] = cookies
    return json.dumps(prelude, separators=(",", ":")).encode() + PRELUDE_DELIMITER


def large_piece(offset: int, size: int) -> bytes:
    """Bytes [offset, offset+size) of the large stream's body (a repeating 251-byte cycle,
    so any misplaced or lost byte shows)."""
    start = offset % 251
    reps = (start + size) // 251 + 1
    return (bytes(range(251)) * reps)[start : start + size]


def large_body_sha256(total: int, piece: int = 65536) -> str:
    """SHA-256 of the large stream's body, computed piece by piece."""
    h = hashlib.sha256()
    for offset in range(0, total, piece):
        h.update(large_piece(offset, min(piece, total - offset)))
    return h.hexdigest()


# ------------------------------------------------------------------ scripted answers
@dataclass
class StreamAnswer:
    """What the function streams and how Lambda ends the stream.

    * ``writes``: the function's writes, one PayloadChunk each (str is UTF-8 encoded);
    * ``prelude``: dict(status_code=…, headers=…, cookies=…) for ``http_prelude``, written as
      the first PayloadChunk (``prelude_split`` > 0 cuts it into two chunks at that byte,
      to exercise a prelude split across frames);
    * ``large_bytes``: then that many generated bytes (``large_piece``) in ``chunk_bytes``
      writes, produced on the fly;
    * ``first_delay_s`` before the first frame, ``delay_s`` between frames;
    * ``error_code`` / ``error_details``: InvokeComplete reports a failed function;
      ``log_result``: its LogResult; ``complete=False``: no InvokeComplete (stream just ends);
    * ``exception``: (type, message) of an exception frame sent instead of InvokeComplete;
    * ``corrupt_frame`` (index among the frames sent) damaged with ``corruption``
      (one of CORRUPTIONS); the stream ends after it;
    * ``break_after`` frames: the connection is reset (``break_reset``) or closed mid-body;
    * ``lambda_content_type``: the answer's Content-Type (default: the function's type,
      see the module doc); ``headers``: more answer headers.
    """

    writes: list[bytes | str] = field(default_factory=list)
    prelude: dict[str, Any] | None = None
    prelude_split: int = 0
    large_bytes: int = 0
    chunk_bytes: int = 65536
    first_delay_s: float = 0.0
    delay_s: float = 0.0
    error_code: str | None = None
    error_details: str | None = None
    log_result: str | None = None
    complete: bool = True
    exception: tuple[str, str] | None = None
    corrupt_frame: int | None = None
    corruption: str = "message_crc"
    break_after: int | None = None
    break_reset: bool = True
    lambda_content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.corruption not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {self.corruption!r}; one of {CORRUPTIONS}")

    def content_type(self) -> str:
        if self.lambda_content_type is not None:
            return self.lambda_content_type
        return HTTP_INTEGRATION_CONTENT_TYPE if self.prelude is not None else DEFAULT_STREAM_CONTENT_TYPE

    def payloads(self) -> Iterator[bytes]:
        """The function's writes, in order (the prelude first)."""
        if self.prelude is not None:
            data = http_prelude(**self.prelude)
            if 0 < self.prelude_split < len(data):
                yield data[: self.prelude_split]
                yield data[self.prelude_split :]
            else:
                yield data
        for w in self.writes:
            yield w.encode() if isinstance(w, str) else w
        for offset in range(0, self.large_bytes, self.chunk_bytes):
            yield large_piece(offset, min(self.chunk_bytes, self.large_bytes - offset))

    def body(self) -> bytes:
        """What the client should receive as body (not for large streams)."""
        return b"".join(w.encode() if isinstance(w, str) else w for w in self.writes)

    def frames(self) -> Iterator[bytes]:
        """Every frame of the answer, in order, damage included."""
        index = 0
        for data in self.payloads():
            frame = payload_chunk(data)
            if index == self.corrupt_frame:
                yield corrupt(frame, self.corruption)
                return
            yield frame
            index += 1
        if self.exception is not None:
            last = exception_frame(*self.exception)
        elif self.complete:
            last = invoke_complete(self.error_code, self.error_details, self.log_result)
        else:
            return
        yield corrupt(last, self.corruption) if index == self.corrupt_frame else last


def echo_answer(body: bytes, line_delay_s: float = 0.0) -> StreamAnswer:
    """Without a script: the function streams the request body back (with ``line_delay_s``,
    one write per line, that far apart)."""
    if line_delay_s > 0:
        return StreamAnswer(writes=body.splitlines(keepends=True), delay_s=line_delay_s)
    return StreamAnswer(writes=[body[i : i + 65536] for i in range(0, len(body), 65536)])


# ------------------------------------------------------------------ server
class _StreamingHandler(_Handler):
    def _handle(self) -> None:
        parts = urlsplit(self.path)
        fm = STREAM_PATH_RE.match(parts.path)
        if fm is None:
            return super()._handle()
        standin: StreamingStandIn = self.server.standin  # type: ignore[attr-defined]
        body = self._read_body()
        headers = list(self.headers.items())
        ok, reason, akid, region = verify_sigv4(self.command, self.path, headers, body, standin.secrets)
        standin._record(
            RecordedRequest(
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
                function=fm.group("fn"),
            )
        )
        request_id = str(uuid.uuid4())
        if not ok:
            ans: Answer | StreamAnswer | None = Answer(
                403,
                {"x-amzn-errortype": "InvalidSignatureException", "content-type": "application/json"},
                {"message": "The request signature we calculated does not match the signature you provided. " + reason.split("\n")[0]},
            )
        else:
            ans = standin._next_answer() or echo_answer(body, standin.echo_line_delay_s)
        try:
            if isinstance(ans, StreamAnswer):
                self._stream(ans, request_id)
            else:
                self._plain(ans, request_id)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _plain(self, ans: Answer, request_id: str) -> None:
        """A scripted non-stream answer (an API error before the stream)."""
        if ans.delay_s:
            time.sleep(ans.delay_s)
        if ans.fault in ("close", "rst"):
            self._break_connection(reset=ans.fault == "rst")
            return
        payload = ans.body_bytes()
        self.send_response(ans.status)
        names = {k.lower() for k in ans.headers}
        if "x-amzn-requestid" not in names:
            self.send_header("x-amzn-requestid", request_id)
        if "content-type" not in names and payload:
            self.send_header("content-type", "application/json")
        for k, v in ans.headers.items():
            if k.lower() != "content-length" and v is not None:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _stream(self, ans: StreamAnswer, request_id: str) -> None:
        standin: StreamingStandIn = self.server.standin  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("x-amzn-requestid", request_id)
        self.send_header("X-Amz-Executed-Version", "$LATEST")
        self.send_header("Content-Type", ans.content_type())
        for k, v in ans.headers.items():
            self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        sent = 0
        if ans.first_delay_s:
            time.sleep(ans.first_delay_s)
        for frame in ans.frames():
            if sent and ans.delay_s:
                time.sleep(ans.delay_s)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
            standin._frame_sent(request_id, len(frame))
            sent += 1
            if ans.break_after is not None and sent >= ans.break_after:
                self._break_connection(reset=ans.break_reset)
                return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        standin._stream_ended(request_id)

    # The base class bound its own _handle to the verbs.
    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class StreamingStandIn(StandIn):
    """StandIn that also serves InvokeWithResponseStream (see the module doc).

    ``frame_times`` records (request id, time.monotonic(), frame bytes) for each frame sent
    and ``end_times`` the time each stream was completed, for timing assertions."""

    handler_class = _StreamingHandler

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.frame_times: list[tuple[str, float, int]] = []
        self.end_times: dict[str, float] = {}
        # Unscripted streams echo the body line by line, this far apart (0: in 64 KiB writes).
        self.echo_line_delay_s = 0.0

    def _frame_sent(self, request_id: str, size: int) -> None:
        with self._lock:
            self.frame_times.append((request_id, time.monotonic(), size))

    def _stream_ended(self, request_id: str) -> None:
        with self._lock:
            self.end_times[request_id] = time.monotonic()

    def script(self, *answers: Answer | StreamAnswer | dict) -> None:  # type: ignore[override]
        with self._lock:
            for a in answers:
                self._script.append(a if isinstance(a, (Answer, StreamAnswer)) else Answer(**a))

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.frame_times.clear()
            self.end_times.clear()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", action="append", default=[], metavar="AKID:SECRET")
    ap.add_argument("--echo-line-delay", type=float, default=0.0, metavar="SECONDS",
                    help="unscripted streams echo the request body one line per write, this far apart")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    keys = dict(k.split(":", 1) for k in args.key) if args.key else None
    s = StreamingStandIn(args.port, keys, verbose=args.verbose)
    s.echo_line_delay_s = args.echo_line_delay
    s.start()
    return ls.serve_until_signalled(s, {"url": s.url, "port": s.port, "keys": s.secrets})


if __name__ == "__main__":
    sys.exit(main())
