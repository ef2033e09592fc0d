#!/usr/bin/env bash
# Installs the Debian 12 packages this project builds with, and the npm packages of the server's
# tests (tests/server, from its package-lock.json). Idempotent: when all are present it prints
# nothing. Needs root (or sudo) to install packages.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config ccache
  clang-14 libclang-rt-14-dev          # the ASan+UBSan stage and the libFuzzer targets (tests/fuzz)
  libfmt-dev libcli11-dev nlohmann-json3-dev libpcre2-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  llvm-19-dev                          # codegen_cpu: ORC JIT (find_package(LLVM 19.1))
  libzstd-dev lld-19 liblld-19-dev     # linking kernel objects into plan images in-process
  libflatbuffers-dev flatbuffers-compiler flatbuffers-compiler-dev   # plans (FlatBuffers 2.0.8)
  python3 python3-jinja2               # tests: chat templates checked against their Jinja text
  pybind11-dev python3-dev python3-numpy  # the bitnet Python package (python/)
  python3-pytest python3-venv python3-wheel  # its tests; installing it into a virtualenv
  libboost1.81-dev                     # bitnet serve: Boost.Beast/Asio (headers only)
  libssl-dev                           # bitnet download: https to the Hugging Face hub (OpenSSL)
  chromium curl                        # tests/server: the chat page in a browser; curl examples
)
# Node.js runs the server's tests (OpenAI's npm client); a machine that has node keeps its own.
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The exact versions package-lock.json records, from the npm registry.
server_tests="$(dirname "$0")/../tests/server"
if [ ! -d "$server_tests/node_modules" ] || [ "$server_tests/package-lock.json" -nt "$server_tests/node_modules" ]; then
  echo "install-deps: npm ci in tests/server"
  (cd "$server_tests" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && touch node_modules)
fi
