#!/usr/bin/env bash
# Fuzzes the GGUF reader (and, half as long, lowering): scripts/fuzz-gguf.sh BUILD_DIR SECONDS [CORPUS_DIR]
# BUILD_DIR is a clang-14 build configured with -DBITNET_BUILD_FUZZ=ON (see scripts/test.sh).
# Pass a CORPUS_DIR to keep the corpus between runs; crashes are written to the current
# directory as crash-* files, which reproduce with: BUILD_DIR/bin/fuzz_gguf_reader crash-FILE
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:?usage: fuzz-gguf.sh BUILD_DIR SECONDS [CORPUS_DIR]}"
seconds="${2:?usage: fuzz-gguf.sh BUILD_DIR SECONDS [CORPUS_DIR]}"
corpus="${3:-$(mktemp -d)}"
mkdir -p "$corpus"
"$build/bin/make_gguf_seeds" "$corpus"
cp models/stories260K.gguf "$corpus/"
"$build/bin/fuzz_gguf_reader" -max_total_time="$seconds" -max_len=1300000 -rss_limit_mb=3072 -timeout=20 \
  -print_final_stats=1 "$corpus"
# Then what a parsed file goes through before any kernel is made (lowering, the passes, the CUDA
# plan), for half the time, from the same corpus, where that target was built.
if [ -x "$build/bin/fuzz_gguf_lowering" ]; then
  "$build/bin/fuzz_gguf_lowering" -max_total_time="$(( (seconds + 1) / 2 ))" -max_len=1300000 -rss_limit_mb=3072 \
    -timeout=20 -print_final_stats=1 "$corpus"
fi
