"""The golden AssumeRole signature pinned in src/credentials/sts/tests.rs must be what botocore computes for the
same request: an independent SigV4 implementation checks our pinned value. The body is the
one botocore's own query serializer produces for AssumeRole, so the encoding is checked too."""
import datetime
import hashlib
import pathlib
import re
from unittest import mock
from urllib.parse import urlencode

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.serialize import create_serializer

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "src" / "credentials" / "sts" / "tests.rs"

PARAMS = {
    "RoleArn": "arn:aws:iam::123456789012:role/service/lambda-invoker",
    "RoleSessionName": "proxy-wasm-lambda",
    "DurationSeconds": 3600,
    "ExternalId": "ext:id/42",
}

# What src/credentials/sts/tests.rs's request_shape_and_body_encoding test pins.
PINNED_BODY = (
    "Action=AssumeRole&Version=2011-06-15"
    "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fservice%2Flambda-invoker"
    "&RoleSessionName=proxy-wasm-lambda&DurationSeconds=3600&ExternalId=ext%3Aid%2F42"
)


def botocore_body():
    model = botocore.session.get_session().get_service_model("sts")
    serialized = create_serializer("query").serialize_to_request(
        PARAMS, model.operation_model("AssumeRole")
    )
    return urlencode(serialized["body"]).encode()


def test_body_matches_botocore_query_serializer():
    assert botocore_body() == PINNED_BODY.encode()


def test_pinned_signature_matches_botocore():
    pinned = re.search(r"Signature=([0-9a-f]{64})", SOURCE.read_text())
    assert pinned, "golden signature not found in src/credentials/sts/tests.rs"
    creds = Credentials(
        "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "source-session-token"
    )
    body = botocore_body()
    request = AWSRequest(
        method="POST",
        url="https://sts.us-east-1.amazonaws.com/",
        data=body,
        headers={
            "content-type": "application/x-www-form-urlencoded; charset=utf-8",
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
        },
    )
    fixed = datetime.datetime(2026, 11, 23, 10, 0, 0)
    with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
        SigV4Auth(creds, "sts", "us-east-1").add_auth(request)
    authorization = request.headers["Authorization"]
    signed = "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
    assert f"SignedHeaders={signed}," in authorization
    signature = authorization.rsplit("Signature=", 1)[1]
    assert signature == pinned.group(1)

