"""The golden signature pinned in src/invoke.rs must be what botocore computes for the same
request: an independent SigV4 implementation checks our pinned value."""
import datetime
import hashlib
import pathlib
import re
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "src" / "invoke.rs"


def test_pinned_signature_matches_botocore():
    pinned = re.search(r"Signature=([0-9a-f]{64})", SOURCE.read_text())
    assert pinned, "golden signature not found in src/invoke.rs"
    creds = Credentials(
        "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-value"
    )
    body = b'{"hello":"world"}'
    request = AWSRequest(
        method="POST",
        url="https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/my-fn/invocations",
        data=body,
        headers={
            "content-type": "application/json",
            "x-amz-invocation-type": "RequestResponse",
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
        },
    )
    fixed = datetime.datetime(2026, 11, 23, 10, 0, 0)
    with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
        SigV4Auth(creds, "lambda", "us-east-1").add_auth(request)
    signature = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    assert signature == pinned.group(1)
