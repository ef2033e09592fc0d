#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, build and run every test
# in Release, again under AddressSanitizer + UndefinedBehaviorSanitizer, then fuzz the
# GGUF reader, the server's request parser and the safetensors reader for a bounded time
# (BITNET_FUZZ_SECONDS for the first, half of it for each of the others; 0 skips fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${BITNET_JOBS:-2}"
fuzz_seconds="${BITNET_FUZZ_SECONDS:-40}"
scripts/install-deps.sh

stage() { echo "== $(date -u +%H:%M:%S) $*"; }

stage "Release build and tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBITNET_BUILD_TESTS=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build -j "$jobs" --output-on-failure

stage "ASan+UBSan build and tests"
# -g1 (line tables) keeps sanitizer reports readable at a fraction of the compile time of -g;
# -O1 (what the ASan documentation suggests) compiles the instrumented code in ~60% of the time
# of -O2 (measured on the heaviest files here: 31 s -> 17 s), which matters more on 2 cores than
# the slower test run.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBITNET_BUILD_TESTS=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DBITNET_SANITIZE=address,undefined \
  -DBITNET_BUILD_PYTHON=OFF >/dev/null  # an ASan extension module cannot load into the system python3
cmake --build build-asan -j "$jobs"
# The longest numeric comparisons (interpreter greedy runs, every pass re-checked on four models,
# the float matmul variants against the instrumented reference loops: 280 s under ASan, 3.5 s in
# Release; greedy ids along whole generations) add nothing to memory checking that the shorter
# tests of the same code do not: they run in the Release stage only.
asan_skip='CrossVal.GreedyGenerationBitExact|PassSemantics|InterpreterInThePlannedArenaIsBitIdentical'
asan_skip+='|MatmulKernels.FloatVariantsMatchTheReference|GreedyFollowsTheReferenceWhereTheMarginAllows'
asan_skip+='|JitEndToEnd.GreedyIdsMatchWhereTheMarginAllows|EverySequenceGetsTheLogitsItGetsAlone/interp'
asan_skip+='|capi.greedy_matches_cli'  # the C API's memory use is the other capi programs' to check
# Numeric comparisons of whole models (LM-head requantization, plan equivalence, prompt logits
# against the reference, the LM-head CLI's logits: 220 s under ASan) whose code paths shorter tests cover for memory.
asan_skip+='|LmHeadJit.LogitsAreCloseToTheF16Head|LmHeadJit.GenerationRunsOnEveryModel|PlanEquivalence.SharedBitnetModels'
asan_skip+='|JitEndToEnd.PromptLogitsMatchTheReference|LmHeadPlan.CommandLine'
# Batch invariance of the JIT and the LM-head sidecar's logits against the JIT (60 s under ASan):
# numeric; the executor's and the sidecar's memory use is Batch.*'s and PlanCorruption.*'s to check.
# The chat page in Chromium is a functional test; the HTTP code under it is server.http's.
asan_skip+='|BatchInvariance.EverySequenceGetsTheLogitsItGetsAlone/jit|LmHeadPlan.SidecarIsWrittenCheckedAndRunsLikeTheJit'
asan_skip+='|server.webui'
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j "$jobs" --output-on-failure -E "$asan_skip"

if [ "$fuzz_seconds" -gt 0 ]; then
  stage "libFuzzer: GGUF reader for ${fuzz_seconds}s, request parser and safetensors reader for $((fuzz_seconds / 2))s each"
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBITNET_BUILD_TESTS=OFF -DBITNET_BUILD_FUZZ=ON >/dev/null
  cmake --build build-fuzz -j "$jobs" --target fuzz_gguf_reader make_gguf_seeds fuzz_openai_request \
    fuzz_safetensors
  scripts/fuzz-gguf.sh build-fuzz "$fuzz_seconds"
  scripts/fuzz-openai.sh build-fuzz "$((fuzz_seconds / 2))"
  scripts/fuzz-safetensors.sh build-fuzz "$((fuzz_seconds / 2))"
fi
stage "all tests passed"
