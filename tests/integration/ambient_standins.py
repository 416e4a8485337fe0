#!/usr/bin/env python3
"""Local stand-ins of the two ambient credential endpoints, following AWS's documented
behaviour, recording every call.

``ImdsStandIn`` -- the EC2 Instance Metadata Service with IMDSv2 required
("HttpTokens: required"), as the EC2 user guide describes it:

* ``PUT /latest/api/token`` needs ``X-aws-ec2-metadata-token-ttl-seconds`` of 1-21600
  (else 400) and no ``X-Forwarded-For`` (else 403); it answers a fresh token and echoes the
  TTL in the same header. Any other method on that path is 405.
* every other path needs a live token in ``X-aws-ec2-metadata-token``: missing, unknown or
  expired → 401 (IMDSv1 is off);
* ``GET /latest/meta-data/iam/security-credentials/`` → the role name;
  ``…/<role>`` → the credentials JSON (``Code``, ``LastUpdated``, ``Type``, ``AccessKeyId``,
  ``SecretAccessKey``, ``Token``, ``Expiration``); any other role or path → 404.

``ContainerStandIn`` -- the ECS / EKS Pod Identity credentials endpoint: ``GET <path>`` with
``Authorization`` equal to the configured token (when one is configured) answers the
credentials JSON (``AccessKeyId``, ``SecretAccessKey``, ``Token``, ``Expiration``,
``RoleArn``/``AccountId``); a missing or wrong token → 401, another path → 404. Given
``identities={token: mint, ...}`` instead, it is EKS Pod Identity: one URI for every pod,
the ``Authorization`` token selects whose credentials are minted (each token its own,
cached until ``rotate()``); a token not in the table → 401.

Both mint the credentials they hand out with ``mint()`` (e.g. a moto AssumeRole of the
instance/task role, as EC2 and ECS do), cached until ``rotate()``. ``fail_next(status, n)``
answers the next n credential requests with that status.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from lambda_standin import LoopbackServer, TrackingServer

TOKEN_PATH = "/latest/api/token"
ROLE_PATH = "/latest/meta-data/iam/security-credentials/"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"


@dataclass
class Minted:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: str  # ISO 8601 UTC, "Z"


@dataclass
class Call:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    status: int

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


class _Base(LoopbackServer):
    def __init__(self, handler: type, mint: Callable[[], Minted] | None, port: int = 0):
        self._mint = mint
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        self.minted: list[Minted] = []
        self._current: Minted | None = None
        self._fail: list[tuple[int, bytes]] = []
        self.delay_s = 0.0
        # When set, every answer's Expiration is now + expires_in s (the credentials stay
        # valid for moto for their real lifetime), so refreshes come quickly.
        self.expires_in: float | None = None
        self._server = TrackingServer(("127.0.0.1", port), handler)
        self._server.standin = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]

    # ---------------------------------------------------------------- control
    def rotate(self) -> None:
        with self._lock:
            self._current = None

    def fail_next(self, status: int, n: int = 1, body: bytes = b"") -> None:
        with self._lock:
            self._fail = [(status, body)] * n

    def credentials(self) -> Minted:
        with self._lock:
            if self._current is None:
                self._current = self._mint()
                self.minted.append(self._current)
            current = self._current
        return self._expiring(current)

    def _expiring(self, current: Minted) -> Minted:
        if self.expires_in is not None:
            expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + self.expires_in))
            current = Minted(current.access_key_id, current.secret_access_key, current.session_token, expiration)
        return current

    def take_failure(self) -> tuple[int, bytes] | None:
        with self._lock:
            return self._fail.pop(0) if self._fail else None

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def credential_calls(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if self.is_credentials_path(c.path)]

    def is_credentials_path(self, path: str) -> bool:  # overridden
        return False

    @property
    def secrets(self) -> dict[str, str]:
        """Everything secret it handed out (for the suite's log audit)."""
        out = {}
        for i, m in enumerate(self.minted):
            out[f"secret {i}"] = m.secret_access_key
        return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmbientStandIn/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                content_type: str = "text/plain") -> None:
        standin: _Base = self.server.standin  # type: ignore[attr-defined]
        standin.record(Call(time.time(), self.command, self.path, dict(self.headers.items()), status))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drain(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)


def credentials_json(m: Minted, **extra: str) -> bytes:
    doc = {"AccessKeyId": m.access_key_id, "SecretAccessKey": m.secret_access_key, "Token": m.session_token,
           "Expiration": m.expiration, **extra}
    return json.dumps(doc, indent=2).encode()


# ----------------------------------------------------------------------------- IMDSv2
class _ImdsHandler(_Handler):
    def _serve(self) -> None:
        self._drain()
        imds: ImdsStandIn = self.server.standin  # type: ignore[attr-defined]
        if imds.delay_s:
            time.sleep(imds.delay_s)
        if self.path == TOKEN_PATH:
            if self.command != "PUT":
                return self._answer(405)
            if self.headers.get("X-Forwarded-For"):
                return self._answer(403)
            ttl_text = self.headers.get(TTL_HEADER)
            try:
                ttl = int(ttl_text or "")
            except ValueError:
                return self._answer(400)
            if not 1 <= ttl <= 21600:
                return self._answer(400)
            token = imds.new_token(ttl)
            return self._answer(200, token.encode(), {TTL_HEADER: str(ttl)})
        if not imds.token_is_live(self.headers.get(TOKEN_HEADER)):
            return self._answer(401)
        if self.command not in ("GET", "HEAD"):
            return self._answer(405)
        if self.path == ROLE_PATH:
            return self._answer(200, imds.role_name.encode())
        if self.path == ROLE_PATH + imds.role_name:
            failure = imds.take_failure()
            if failure:
                return self._answer(failure[0], failure[1])
            m = imds.credentials()
            body = json.dumps({
                "Code": "Success",
                "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "Type": "AWS-HMAC",
                "AccessKeyId": m.access_key_id,
                "SecretAccessKey": m.secret_access_key,
                "Token": m.session_token,
                "Expiration": m.expiration,
            }, indent=2).encode()
            return self._answer(200, body)
        return self._answer(404)

    do_GET = do_PUT = do_POST = do_HEAD = _serve


class ImdsStandIn(_Base):
    def __init__(self, mint: Callable[[], Minted], role_name: str = "ec2-instance-role", port: int = 0):
        super().__init__(_ImdsHandler, mint, port)
        self.role_name = role_name
        self.tokens: dict[str, float] = {}  # token -> expires at (time.time())

    def new_token(self, ttl: int) -> str:
        token = "AQAEA" + secrets.token_urlsafe(40)
        with self._lock:
            self.tokens[token] = time.time() + ttl
        return token

    def token_is_live(self, token: str | None) -> bool:
        with self._lock:
            return token is not None and self.tokens.get(token, 0) > time.time()

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def is_credentials_path(self, path: str) -> bool:
        return path == ROLE_PATH + self.role_name

    @property
    def secrets(self) -> dict[str, str]:
        out = super().secrets
        with self._lock:
            for i, t in enumerate(self.tokens):
                out[f"imds token {i}"] = t
        return out


# ----------------------------------------------------------------------------- container
class _ContainerHandler(_Handler):
    def _serve(self) -> None:
        self._drain()
        c: ContainerStandIn = self.server.standin  # type: ignore[attr-defined]
        if c.delay_s:
            time.sleep(c.delay_s)
        if self.path != c.path:
            return self._answer(404, b'{"code":"NotFound","message":"no such credentials path"}', content_type="application/json")
        token = self.headers.get("Authorization")
        if (c.identities is not None and token not in c.identities) or (
                c.auth_token is not None and token != c.auth_token):
            return self._answer(401, b'{"code":"AccessDeniedException","message":"invalid authorization token"}',
                                content_type="application/json")
        if self.command != "GET":
            return self._answer(405)
        failure = c.take_failure()
        if failure:
            return self._answer(failure[0], failure[1], content_type="application/json")
        minted = c.credentials() if c.identities is None else c.credentials_for(token)
        return self._answer(200, credentials_json(minted, **c.extra), content_type="application/json")

    do_GET = do_PUT = do_POST = _serve


class ContainerStandIn(_Base):
    def __init__(self, mint: Callable[[], Minted] | None, path: str = "/v1/credentials",
                 auth_token: str | None = None, extra: dict[str, str] | None = None, port: int = 0,
                 identities: dict[str, Callable[[], Minted]] | None = None):
        """identities: {authorization token: mint} (mint and auth_token then unused)."""
        if (mint is None) == (identities is None):
            raise ValueError("give either mint or identities")
        super().__init__(_ContainerHandler, mint, port)
        self.path = path
        self.auth_token = auth_token
        self.extra = extra or {}
        self.identities = dict(identities) if identities is not None else None
        self._by_token: dict[str, Minted] = {}

    def credentials_for(self, token: str) -> Minted:
        """The credentials of the identity that token selects (minted once, until rotate())."""
        assert self.identities is not None
        with self._lock:
            if token not in self._by_token:
                self._by_token[token] = self.identities[token]()
                self.minted.append(self._by_token[token])
            current = self._by_token[token]
        return self._expiring(current)

    def rotate(self) -> None:
        super().rotate()
        with self._lock:
            self._by_token.clear()

    def is_credentials_path(self, path: str) -> bool:
        return path == self.path


# ----------------------------------------------------------------------------- STS web identity
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


class _WebIdentityHandler(_Handler):
    def _serve(self) -> None:
        from urllib.parse import parse_qs, urlsplit
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        s: WebIdentityStsStandIn = self.server.standin  # type: ignore[attr-defined]
        params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}
        if self.command == "POST":
            params.update({k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()})
        elif self.command != "GET":
            return self._answer(405)
        if params.get("Action") != "AssumeRoleWithWebIdentity" or params.get("Version") != "2011-06-15":
            return self._error(400, "InvalidAction", "not AssumeRoleWithWebIdentity 2011-06-15")
        # AssumeRoleWithWebIdentity is unsigned: a signature means a client that signs it.
        if self.headers.get("Authorization") or "X-Amz-Signature" in params:
            return self._error(400, "InvalidParameterCombination", "the call is not signed")
        token = params.get("WebIdentityToken")
        s.tokens_seen.append(token)
        if not token:
            return self._error(400, "ValidationError", "1 validation error detected: WebIdentityToken")
        if token != s.current_token():
            return self._error(400, "InvalidIdentityToken", "the token is not the current one")
        if params.get("RoleArn") != s.role_arn:
            return self._error(403, "AccessDenied", "not authorized to assume the role")
        failure = s.take_failure()
        if failure:
            return self._answer(failure[0], failure[1], content_type="text/xml")
        m = s.credentials()
        doc = (f'<AssumeRoleWithWebIdentityResponse xmlns="{STS_NS}"><AssumeRoleWithWebIdentityResult>'
               f"<SubjectFromWebIdentityToken>system:serviceaccount:gw:envoy</SubjectFromWebIdentityToken>"
               f"<Audience>sts.amazonaws.com</Audience><Credentials>"
               f"<AccessKeyId>{m.access_key_id}</AccessKeyId><SecretAccessKey>{m.secret_access_key}</SecretAccessKey>"
               f"<SessionToken>{m.session_token}</SessionToken><Expiration>{m.expiration}</Expiration>"
               f"</Credentials></AssumeRoleWithWebIdentityResult>"
               f"<ResponseMetadata><RequestId>{secrets.token_hex(8)}</RequestId></ResponseMetadata>"
               f"</AssumeRoleWithWebIdentityResponse>")
        return self._answer(200, doc.encode(), content_type="text/xml")

    def _error(self, status: int, code: str, message: str) -> None:
        doc = (f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
               f"<Message>{message}</Message></Error><RequestId>{secrets.token_hex(8)}</RequestId></ErrorResponse>")
        return self._answer(status, doc.encode(), content_type="text/xml")

    do_GET = do_PUT = do_POST = _serve


class WebIdentityStsStandIn(_Base):
    """STS AssumeRoleWithWebIdentity as IRSA uses it: unsigned, GET or POST, the token in
    ``WebIdentityToken``. Only the token currently in ``token_file`` is accepted (an old one
    is 400 InvalidIdentityToken, none is 400 ValidationError), for ``role_arn`` only (else
    403 AccessDenied); the credentials are ``mint()``'s, cached until ``rotate()``."""

    def __init__(self, mint: Callable[[], Minted], token_file: str, role_arn: str, port: int = 0):
        super().__init__(_WebIdentityHandler, mint, port)
        self.token_file = token_file
        self.role_arn = role_arn
        self.tokens_seen: list[str | None] = []

    def current_token(self) -> str:
        with open(self.token_file) as f:
            return f.read()

    def is_credentials_path(self, path: str) -> bool:
        return "AssumeRoleWithWebIdentity" in path or path == "/"
