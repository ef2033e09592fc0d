#!/usr/bin/env bash
# The library's threading contract under ThreadSanitizer: one Model shared by Contexts on
# several threads, Contexts with worker threads of their own, two threads loading one model
# through one plan cache, the Scheduler's thread beside its callers (tests/api/). Builds only what that test needs
# (build-tsan/, about 20 minutes on 2 cores from scratch); not part of scripts/test.sh, which
# runs the same tests in Release and under ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${BITNET_JOBS:-2}"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBITNET_BUILD_TESTS=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DBITNET_SANITIZE=thread >/dev/null
cmake --build build-tsan -j "$jobs" --target api_tests
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/bin/api_tests
