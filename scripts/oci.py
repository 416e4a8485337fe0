#!/usr/bin/env python3
"""`make oci`: an OCI image of the filter, without Docker.

Writes an OCI image layout directory (https://github.com/opencontainers/image-spec,
image-layout.md) and a tarball of it:

    dist/oci/proxy-wasm-lambda/        oci-layout, index.json, blobs/sha256/<digest>…
    dist/proxy-wasm-lambda.oci.tar     the same layout as one file (skopeo's oci-archive:)

The image is the *compat* variant of the Wasm image specification
(https://github.com/solo-io/wasm/blob/master/spec/spec-compat.md), which both Istio
(pkg/wasm/imagefetcher.go) and Envoy Gateway (internal/wasm/imagefetcher.go) pull: a plain OCI
image manifest whose last (here: only) layer is an `application/vnd.oci.image.layer.v1.tar+gzip`
tar holding `plugin.wasm`. Standard registries and tools (skopeo, crane, oras, regctl) handle it
like any container image.

The build is reproducible: tar entries and the gzip header carry fixed times, owners and modes,
so the same .wasm always gives the same digests (SOURCE_DATE_EPOCH, when set, becomes the
config's `created` time and the tar mtime).

    python scripts/oci.py [--wasm PATH] [--out DIR] [--tag TAG] [--no-tar]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WASM = ROOT / "target/wasm32-wasip1/release/proxy_wasm_lambda.wasm"
NAME = "proxy-wasm-lambda"

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PLUGIN_FILE = "plugin.wasm"


def crate_version() -> str:
    m = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    return m.group(1) if m else "0.0.0"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(wasm: bytes, mtime: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(PLUGIN_FILE)
        info.size, info.mode, info.mtime = len(wasm), 0o644, mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(wasm))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def build(wasm_path: Path, out: Path, tag: str) -> dict:
    wasm = wasm_path.read_bytes()
    if wasm[:4] != b"\0asm":
        raise SystemExit(f"{wasm_path}: not a WebAssembly module")
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    mtime = int(epoch) if epoch else 0
    tar = layer_tar(wasm, mtime)
    layer = gzip_bytes(tar)
    version = crate_version()
    config_obj = {
        "architecture": "wasm",
        "os": "wasip1",
        "config": {"Labels": {"org.opencontainers.image.title": NAME, "org.opencontainers.image.version": version}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
    }
    if epoch:
        config_obj["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    config = canonical_json(config_obj)
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": MT_LAYER, "digest": sha256(layer), "size": len(layer)}],
        # Optional in the compat spec; tells this variant apart from the "oci" artifact variant.
        "annotations": {"org.opencontainers.image.title": NAME, "org.opencontainers.image.version": version,
                        "module.wasm.image/variant": "compat"},
    })
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{"mediaType": MT_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    })
    if out.exists():
        shutil.rmtree(out)
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (config, layer, manifest):
        (blobs / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    (out / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_bytes(index)
    return {"layout": str(out), "tag": tag, "manifest_digest": sha256(manifest),
            "wasm_sha256": hashlib.sha256(wasm).hexdigest(), "wasm_bytes": len(wasm), "layer_bytes": len(layer)}


def archive(layout: Path, dest: Path) -> None:
    """The layout as a tar (oci-archive), entries sorted, fixed metadata."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in layout.rglob("*")):
            rel = path.relative_to(layout).as_posix()
            info = tarfile.TarInfo(rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasm", type=Path, default=Path(os.environ.get("LAMBDA_WASM", WASM)))
    ap.add_argument("--out", type=Path, default=ROOT / "dist" / "oci" / NAME, help="layout directory")
    ap.add_argument("--tag", default=None, help="ref name in index.json (default: the crate version)")
    ap.add_argument("--no-tar", action="store_true", help="do not write the oci-archive tarball")
    args = ap.parse_args(argv)
    if not args.wasm.exists():
        print(f"{args.wasm} not found: run `make wasm` first", file=sys.stderr)
        return 1
    info = build(args.wasm, args.out, args.tag or crate_version())
    if not args.no_tar:
        tarball = args.out.parent.parent / f"{NAME}.oci.tar"
        archive(args.out, tarball)
        info["archive"] = str(tarball)
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
