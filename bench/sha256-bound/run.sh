#!/usr/bin/env bash
# SHA-256 of 256 KiB: V8 Wasm (node, --liftoff off like Envoy), native without and with SHA
# extensions. Prints three lines; see BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")"
cargo build -q --release --target wasm32-wasip1
cargo build -q --release --example native
RUSTFLAGS='--cfg sha2_backend="soft"' cargo build -q --release --example native --target-dir target/soft
echo "V8 Wasm (TurboFan):            $(node --no-liftoff v8.js target/wasm32-wasip1/release/sha256_bound.wasm)"
echo "native, software SHA-256:      $(target/soft/release/examples/native)"
echo "native, SHA extensions if any: $(target/release/examples/native)   (CPU sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no))"
