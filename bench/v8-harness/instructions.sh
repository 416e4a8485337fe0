#!/bin/bash
# Instructions per request (valgrind's count, the harness's host included): steadier than
# time on a busy machine. The difference of two runs that differ only in request count.
#   bench/v8-harness/instructions.sh WASM [REQUESTS]
set -euo pipefail
wasm=$1
n=${2:-4000}
here=$(dirname "$0")
refs() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        --smc-check=all-non-file node --no-liftoff --single-threaded "$here/harness.cjs" \
        --warmup 3000 --rounds 1 --requests "$1" "$wasm" 2>&1 |
        grep -oP 'I\s+refs:\s+\K[0-9,]+' | tr -d ,
}
small=$(refs 1000)
large=$(refs $((1000 + n)))
echo "instructions/request: $(((large - small) / n))"
