#!/usr/bin/env python3
"""Every shipped Envoy config passes `envoy --mode validate` with the built filter, and the
filter accepts its plugin configuration (on_configure runs during validation)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WASM = os.environ.get("LAMBDA_WASM", str(ROOT / "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm"))
ENVOY = os.environ.get("ENVOY_BIN") or str(Path(sys.executable).parent / "envoy")
WASM_PATHS = ("target/wasm32-wasip1/release/proxy_wasm_lambda.wasm", "/etc/envoy/proxy_wasm_lambda.wasm")


def validate(config: Path) -> tuple[bool, str]:
    text = config.read_text()
    for path in WASM_PATHS:
        text = text.replace(f"filename: {path}", f"filename: {WASM}")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDVALIDATEONLY0001", AWS_SECRET_ACCESS_KEY="validate-only",
               LAMBDA_EXTERNAL_ID="validate-only-external-id")
    result = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", f.name, "--disable-hot-restart", "-l", "warn"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    os.unlink(f.name)
    return result.returncode == 0, result.stdout + result.stderr


def main() -> int:
    configs = sorted(ROOT.glob("envoy/*.yaml")) + sorted(ROOT.glob("examples/*/envoy.yaml"))
    failed = 0
    for config in configs:
        ok, output = validate(config)
        print(f"{'ok  ' if ok else 'FAIL'} {config.relative_to(ROOT)}")
        if not ok:
            failed += 1
            print(output[-3000:])
    # The check must be able to fail: a config with a bad plugin configuration is rejected.
    bad = Path(tempfile.mkdtemp()) / "bad.yaml"
    bad.write_text((ROOT / "envoy/local.yaml").read_text().replace('"region": "us-east-1"', '"region": "nowhere"'))
    ok, output = validate(bad)
    print(f"{'FAIL' if ok else 'ok  '} a bad plugin configuration is rejected")
    if ok:
        failed += 1
    print(f"{len(configs) + 1 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
