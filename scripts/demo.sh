#!/usr/bin/env bash
# The main job for a newcomer: install dependencies, build the CLI, and tell a story with
# the small model that ships in models/ (stories260K, trained on TinyStories).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBITNET_BUILD_TESTS=OFF >/dev/null
cmake --build build -j "${BITNET_JOBS:-2}" --target bitnet
build/bin/bitnet run -m models/stories260K.gguf -p "Once upon a time" -n 200 --temperature 0.8 --seed 42
