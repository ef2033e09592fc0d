#!/usr/bin/env bash
# Fuzzes `bitnet convert`'s safetensors reader: scripts/fuzz-safetensors.sh BUILD_DIR SECONDS [CORPUS_DIR]
# BUILD_DIR is a clang-14 build configured with -DBITNET_BUILD_FUZZ=ON (see scripts/test.sh).
# The corpus starts from tests/fuzz/safetensors_seeds; crashes are written to the current directory
# as crash-* files, which reproduce with: BUILD_DIR/bin/fuzz_safetensors crash-FILE
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:?usage: fuzz-safetensors.sh BUILD_DIR SECONDS [CORPUS_DIR]}"
seconds="${2:?usage: fuzz-safetensors.sh BUILD_DIR SECONDS [CORPUS_DIR]}"
corpus="${3:-$(mktemp -d)}"
mkdir -p "$corpus"
cp tests/fuzz/safetensors_seeds/*.safetensors "$corpus/"
"$build/bin/fuzz_safetensors" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 "$corpus"
