#!/usr/bin/env bash
# The main job for a newcomer: install dependencies, build the CLI, and run it on the
# small model that ships in models/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBITNET_BUILD_TESTS=OFF >/dev/null
cmake --build build -j "${BITNET_JOBS:-2}" --target bitnet
build/bin/bitnet inspect models/stories260K.gguf
