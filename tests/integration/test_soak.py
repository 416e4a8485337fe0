"""One minute of `make soak` (scripts/soak.py) in the test suite: steady load through Envoy
--concurrency 2 to moto with IAM auth on, AssumeRole credentials rotating during the run."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import soak  # noqa: E402


def test_one_minute_soak_has_no_failures_and_rotates_credentials(wasm_path):
    result = soak.run_soak(seconds=60, credential_lifetime=70, clients=4, wasm=wasm_path, log=print)
    assert result.requests > 1000, f"only {result.requests} requests in a minute"
    assert result.failures == 0, f"{result.failures}/{result.requests} failed: {result.failure_examples}"
    assert result.assume_role_failures == 0
    # 70 s credentials are refreshed after half their lifetime: at least one rotation in 60 s,
    # and not a refresh loop.
    assert 2 <= result.assume_roles <= 3, result.assume_roles
    growth_mib = (result.rss_end_kib - result.rss_start_kib) / 1024
    assert growth_mib < 20, f"Envoy RSS grew by {growth_mib:.1f} MiB in a minute"
