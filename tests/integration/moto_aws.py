#!/usr/bin/env python3
"""moto_server with IAM authentication turned on, bootstrapped for the Lambda filter tests.

How the IAM-auth bootstrap works
--------------------------------
moto decides per request whether to enforce authentication by comparing a global
request counter with ``INITIAL_NO_AUTH_ACTION_COUNT`` (moto/core/authorization.py,
``ActionAuthenticatorMixin._authenticate_and_authorize_action``): while
``request_count < INITIAL_NO_AUTH_ACTION_COUNT`` a request is let through unchecked
and the counter is incremented; from then on every AWS API call must carry a valid
SigV4 signature from a known IAM access key whose policies allow the action
(``<signing service>:<operation name>``, e.g. ``lambda:Invoke``).
With a count of 0 nothing can be bootstrapped (there is no built-in root key), so we
start moto_server with ``INITIAL_NO_AUTH_ACTION_COUNT=3`` and spend exactly those three
free calls on: CreateUser(admin), PutUserPolicy(admin, Allow */*), CreateAccessKey(admin).
Everything else is created with requests signed by the admin key, and afterwards we
check that an unsigned call and a call with a wrong secret are both rejected.
(The /moto-api/* endpoints are never authenticated and do not consume the count.)

Script use::

    python tests/integration/moto_aws.py --port 5000

prints one JSON object with endpoint, account id, credentials and function ARNs, then
keeps moto running until SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
import requests
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

REGION = "us-east-1"
# Free (unauthenticated) calls granted to the bootstrap; must match _bootstrap_admin().
BOOTSTRAP_FREE_CALLS = 3
INVOKER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "lambda:Invoke", "Resource": "*"}],
}
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
FUNCTION_NAMES = ("echo-fn", "other-fn")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_moto_server() -> str:
    env = os.environ.get("MOTO_SERVER")
    if env:
        return env
    candidate = Path(sys.executable).parent / "moto_server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("moto_server")
    if found:
        return found
    raise RuntimeError("moto_server not found: set MOTO_SERVER or install moto[server] into this venv")


@dataclass
class Credentials:
    access_key_id: str
    secret_access_key: str
    user_name: str = ""
    user_arn: str = ""

    def as_plugin_config(self) -> dict[str, str]:
        return {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key}


@dataclass
class MotoAWS:
    endpoint: str
    port: int
    region: str
    account_id: str
    admin: Credentials
    invoker: Credentials
    denied: Credentials
    role_arn: str
    function_arns: dict[str, str]
    alias_arn: str | None
    log_path: str
    proc: subprocess.Popen | None = field(default=None, repr=False)
    _log_file: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------ helpers
    def client(self, service: str, creds: Credentials | None = None):
        return make_client(self.endpoint, service, creds or self.admin, self.region)

    def queue_lambda_results(self, results: list[str | dict | list]) -> None:
        """Queue canned Invoke payloads (FIFO, shared by all functions of the account/region).

        moto API: POST /moto-api/static/lambda-simple/response with
        {"account_id": ..., "region": ..., "results": ["payload string", ...]}; each
        no-docker Invoke pops one string (used as the response body) instead of echoing.
        """
        norm = [r if isinstance(r, str) else json.dumps(r) for r in results]
        r = requests.post(
            f"{self.endpoint}/moto-api/static/lambda-simple/response",
            json={"account_id": self.account_id, "region": self.region, "results": norm},
            timeout=5,
        )
        assert r.status_code == 201, f"queueing lambda results failed: {r.status_code} {r.text}"

    def info(self) -> dict[str, Any]:
        d = {
            "endpoint": self.endpoint,
            "port": self.port,
            "region": self.region,
            "account_id": self.account_id,
            "role_arn": self.role_arn,
            "function_arns": self.function_arns,
            "alias_arn": self.alias_arn,
            "log_path": self.log_path,
        }
        for name in ("admin", "invoker", "denied"):
            d[name] = asdict(getattr(self, name))
        return d

    def log_text(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def make_client(endpoint: str, service: str, creds: Credentials, region: str = REGION):
    session = botocore.session.get_session()
    return session.create_client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        # No retries: every retried bootstrap call would consume a free call.
        config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )


def _lambda_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("lambda_function.py", "def lambda_handler(event, context):\n    return event\n")
    return buf.getvalue()


def _wait_up(endpoint: str, proc: subprocess.Popen, log_path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"moto_server exited with {proc.returncode}:\n{Path(log_path).read_text(errors='replace')}"
            )
        try:
            r = requests.get(f"{endpoint}/moto-api/config", timeout=1)
            if r.status_code < 500:
                return
        except requests.RequestException as e:  # not listening yet
            last_err = e
        time.sleep(0.1)
    raise RuntimeError(f"moto_server did not come up within {timeout}s: {last_err}")


def _bootstrap_admin(endpoint: str) -> Credentials:
    """Spend exactly BOOTSTRAP_FREE_CALLS unauthenticated calls on creating an admin key."""
    dummy = Credentials("AKIABOOTSTRAPDUMMY00", "bootstrap-dummy-secret")
    iam = make_client(endpoint, "iam", dummy)
    user = iam.create_user(UserName="admin")["User"]  # free call 1
    iam.put_user_policy(  # free call 2
        UserName="admin", PolicyName="admin-all", PolicyDocument=json.dumps(ADMIN_POLICY)
    )
    key = iam.create_access_key(UserName="admin")["AccessKey"]  # free call 3
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"], "admin", user["Arn"])


def _create_user(iam, name: str, policy: dict | None) -> Credentials:
    user = iam.create_user(UserName=name)["User"]
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"], name, user["Arn"])


def _verify_auth_enforced(endpoint: str, admin: Credentials) -> None:
    # 1. unsigned request: must not succeed
    r = requests.post(
        endpoint + "/",
        data={"Action": "ListUsers", "Version": "2010-05-08"},
        headers={"Host": "iam.amazonaws.com"},
        timeout=5,
    )
    if r.status_code < 400:
        raise RuntimeError(f"moto IAM auth not enforced: unsigned ListUsers -> {r.status_code} {r.text[:300]}")
    # 2. wrong secret: must be rejected with SignatureDoesNotMatch
    bad = make_client(endpoint, "iam", Credentials(admin.access_key_id, admin.secret_access_key + "x"))
    try:
        bad.list_users()
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code != "SignatureDoesNotMatch":
            raise RuntimeError(f"unexpected error for wrong secret: {code}") from e
    else:
        raise RuntimeError("moto IAM auth not enforced: wrongly signed ListUsers succeeded")


ASSUMER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
}
INVOKER_ROLE_NAME = "lambda-invoker"
ASSUMER_USER_NAME = "assumer"


@dataclass
class AssumeRoleSetup:
    """A source user that may only call sts:AssumeRole, and a role it may assume (with the
    right ExternalId) whose permissions allow lambda:Invoke."""

    assumer: Credentials
    role_arn: str
    external_id: str


def assume_role_trust_policy(principal_arn: str, external_id: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": principal_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def create_assume_role_setup(moto: "MotoAWS", external_id: str) -> AssumeRoleSetup:
    """Creates user 'assumer' (sts:AssumeRole only) and role 'lambda-invoker' (trusts the
    assumer when sts:ExternalId equals `external_id`; allows lambda:Invoke on *).

    moto checks the trust policy (principal and the sts:ExternalId condition) on AssumeRole
    when IAM auth is on (moto/iam/access_control.py, _check_role_trust_relationship), and
    answers AccessDenied (403) otherwise. Call once per moto (IAM names are unique)."""
    iam = moto.client("iam")
    assumer = _create_user(iam, ASSUMER_USER_NAME, ASSUMER_POLICY)
    role_arn = iam.create_role(
        RoleName=INVOKER_ROLE_NAME,
        AssumeRolePolicyDocument=json.dumps(assume_role_trust_policy(assumer.user_arn, external_id)),
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=INVOKER_ROLE_NAME,
        PolicyName=f"{INVOKER_ROLE_NAME}-invoke",
        PolicyDocument=json.dumps(INVOKER_POLICY),
    )
    return AssumeRoleSetup(assumer=assumer, role_arn=role_arn, external_id=external_id)


def start_moto(port: int | None = None, log_path: str | None = None, verify: bool = True) -> MotoAWS:
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    if log_path is None:
        fd, log_path = tempfile.mkstemp(prefix="moto-", suffix=".log")
        os.close(fd)
    env = dict(os.environ)
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(BOOTSTRAP_FREE_CALLS)
    # Don't let a developer's AWS env leak into moto's behaviour.
    for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "TEST_SERVER_MODE"):
        env.pop(k, None)
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(
        [find_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        _wait_up(endpoint, proc, log_path)
        # Lambda no-docker mode: Invoke echoes the payload (or pops a canned result).
        r = requests.post(f"{endpoint}/moto-api/config", json={"lambda": {"use_docker": False}}, timeout=5)
        r.raise_for_status()
        assert r.json().get("lambda", {}).get("use_docker") is False, r.text

        admin = _bootstrap_admin(endpoint)
        iam = make_client(endpoint, "iam", admin)
        invoker = _create_user(iam, "invoker", INVOKER_POLICY)
        denied = _create_user(iam, "denied", None)
        role_arn = iam.create_role(
            RoleName="lambda-exec", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY)
        )["Role"]["Arn"]
        account_id = make_client(endpoint, "sts", admin).get_caller_identity()["Account"]

        lam = make_client(endpoint, "lambda", admin)
        code = _lambda_zip()
        arns: dict[str, str] = {}
        for name in FUNCTION_NAMES:
            arns[name] = lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role_arn,
                Handler="lambda_function.lambda_handler",
                Code={"ZipFile": code},
                Publish=False,
            )["FunctionArn"]
        alias_arn = None
        try:
            version = lam.publish_version(FunctionName="echo-fn")["Version"]
            alias_arn = lam.create_alias(FunctionName="echo-fn", Name="live", FunctionVersion=version)["AliasArn"]
        except ClientError as e:  # pragma: no cover - moto without alias support
            print(f"moto_aws: alias 'live' not created: {e}", file=sys.stderr)

        if verify:
            _verify_auth_enforced(endpoint, admin)
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()
        raise
    return MotoAWS(
        endpoint=endpoint,
        port=port,
        region=REGION,
        account_id=account_id,
        admin=admin,
        invoker=invoker,
        denied=denied,
        role_arn=role_arn,
        function_arns=arns,
        alias_arn=alias_arn,
        log_path=log_path,
        proc=proc,
        _log_file=log_file,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--log", default=None, help="moto_server log file (default: a temp file)")
    args = ap.parse_args(argv)
    moto = start_moto(args.port or None, args.log)
    stop = {"flag": False}

    def _sig(_signo, _frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _sig)
    signal.signal(signal.SIGINT, _sig)
    print(json.dumps(moto.info(), indent=2), flush=True)
    try:
        while not stop["flag"]:
            if moto.proc is None or moto.proc.poll() is not None:
                print("moto_server exited", file=sys.stderr)
                return 1
            time.sleep(0.5)
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
