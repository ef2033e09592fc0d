#!/usr/bin/env bash
# Speed floor of the reference interpreter: decode tok/s on the 2B4T-shape model.
# Usage: bench/interp_2b4t.sh [BUILD_DIR] [THREADS] [RUNS]
# Generates the model (about 1.18 GB, never committed) into $BITNET_BENCH_DIR (default /tmp) once.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
threads="${2:-2}"
runs="${3:-3}"
dir="${BITNET_BENCH_DIR:-/tmp}"
model="$dir/bitnet-2b4t-seed4.gguf"
[ -f "$model" ] || "$build/bin/bitnet" gen-model --preset 2b4t --seed 4 -o "$model"
for i in $(seq "$runs"); do
  "$build/bin/bitnet" run -m "$model" -p "The quick brown fox" -n 8 --greedy -t "$threads" --backend interp \
    --no-display-prompt 2>&1 >/dev/null | grep "tok/s"
done
