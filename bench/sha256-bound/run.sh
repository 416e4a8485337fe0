#!/usr/bin/env bash
# SHA-256 of 256 KiB: V8 Wasm (node, Liftoff off like Envoy) with the simd128 backend the
# filter is built with (.cargo/config.toml) and with the scalar one, then native without and
# with SHA extensions. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")"
cargo build -q --release --target wasm32-wasip1
RUSTFLAGS="-C target-feature=-simd128" cargo build -q --release --target wasm32-wasip1 --target-dir target/scalar
cargo build -q --release --example native
RUSTFLAGS='--cfg sha2_backend="soft"' cargo build -q --release --example native --target-dir target/soft
wasm=wasm32-wasip1/release/sha256_bound.wasm
echo "V8 Wasm, simd128 (the filter):  $(node --no-liftoff v8.js target/$wasm)"
echo "V8 Wasm, scalar:                $(node --no-liftoff v8.js target/scalar/$wasm)"
echo "native, software SHA-256:       $(target/soft/release/examples/native)"
echo "native, SHA extensions if any:  $(target/release/examples/native)   (CPU sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no))"
