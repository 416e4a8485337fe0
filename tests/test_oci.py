"""`make oci` (scripts/oci.py) writes an OCI image layout that Istio and Envoy Gateway can pull:
every blob's digest matches its content, the media types are those of an OCI image, and the
last layer is a tar+gzip holding plugin.wasm identical to the built filter — checked the way
their image fetchers extract it (Istio pkg/wasm/imagefetcher.go, Envoy Gateway
internal/wasm/imagefetcher.go: last layer, media type application/vnd.oci.image.layer.v1.tar+gzip,
gunzip, the tar entry whose base name is plugin.wasm).

Run: .venv/bin/python -m pytest -q tests/test_oci.py   (part of `make validate-configs`)
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WASM = Path(os.environ.get("LAMBDA_WASM", ROOT / "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm"))

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def run_oci(out: Path, wasm: Path, *extra: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/oci.py"), "--wasm", str(wasm), "--out", str(out), *extra],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def wasm(tmp_path_factory) -> Path:
    if not WASM.exists():
        pytest.skip(f"{WASM} not built (make wasm)")
    # A private copy: a concurrent `make wasm` must not change the file under the test.
    copy = tmp_path_factory.mktemp("wasm") / "filter.wasm"
    copy.write_bytes(WASM.read_bytes())
    return copy


@pytest.fixture(scope="module")
def built(tmp_path_factory, wasm) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("oci")
    out = base / "oci" / "proxy-wasm-lambda"
    return out, run_oci(out, wasm, "--tag", "test")


def blob(layout: Path, digest: str) -> bytes:
    algo, hexdigest = digest.split(":", 1)
    assert algo == "sha256"
    data = (layout / "blobs" / "sha256" / hexdigest).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hexdigest, f"blob {digest} does not match its digest"
    return data


def descriptor_blob(layout: Path, desc: dict) -> bytes:
    data = blob(layout, desc["digest"])
    assert len(data) == desc["size"], f"{desc['digest']}: size {len(data)} != descriptor size {desc['size']}"
    return data


def test_layout_files(built):
    layout, _ = built
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["mediaType"] == MT_INDEX
    assert len(index["manifests"]) == 1
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "test"
    # Every blob is referenced, and every file under blobs/ is named by its own digest.
    names = {p.name for p in (layout / "blobs" / "sha256").iterdir()}
    for name in names:
        blob(layout, "sha256:" + name)
    assert len(names) == 3  # manifest, config, layer


def test_manifest_config_and_layer(built, wasm):
    layout, info = built
    index = json.loads((layout / "index.json").read_text())
    mdesc = index["manifests"][0]
    assert mdesc["mediaType"] == MT_MANIFEST
    assert mdesc["digest"] == info["manifest_digest"]
    manifest = json.loads(descriptor_blob(layout, mdesc))
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MT_MANIFEST
    assert manifest["config"]["mediaType"] == MT_CONFIG
    config = json.loads(descriptor_blob(layout, manifest["config"]))
    assert len(manifest["layers"]) == 1
    layer_desc = manifest["layers"][-1]  # the fetchers take the last layer
    assert layer_desc["mediaType"] == MT_LAYER
    layer = descriptor_blob(layout, layer_desc)
    tar_bytes = gzip.decompress(layer)
    # The config's diff_id is the digest of the uncompressed layer.
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"]
        assert members[0].isfile() and members[0].mode == 0o644
        extracted = tar.extractfile(members[0]).read()
    assert extracted == wasm.read_bytes(), "plugin.wasm differs from the built filter"
    assert info["wasm_sha256"] == hashlib.sha256(extracted).hexdigest()


def test_reproducible_and_archive(built, wasm, tmp_path):
    layout, info = built
    again = run_oci(tmp_path / "oci" / "proxy-wasm-lambda", wasm, "--tag", "test")
    assert again["manifest_digest"] == info["manifest_digest"], "same .wasm, different image digest"
    # The oci-archive holds exactly the layout's files, byte for byte.
    with tarfile.open(again["archive"]) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    expected = {p.relative_to(layout).as_posix(): p.read_bytes() for p in layout.rglob("*") if p.is_file()}
    assert files == expected


def test_rejects_a_non_wasm_file(tmp_path):
    bogus = tmp_path / "not.wasm"
    bogus.write_bytes(b"#!/bin/sh\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/oci.py"), "--wasm", str(bogus), "--out", str(tmp_path / "o" / "x")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0 and "not a WebAssembly module" in result.stderr
