#!/usr/bin/env bash
# Installs the Debian 12 packages this project builds with. Idempotent: when all are
# present it prints nothing and exits at once. Needs root (or sudo) to install.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config ccache
  clang-14 libclang-rt-14-dev          # libFuzzer target (tests/fuzz)
  libfmt-dev libcli11-dev nlohmann-json3-dev libpcre2-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  llvm-19-dev                          # codegen_cpu: ORC JIT (find_package(LLVM 19.1))
  libzstd-dev lld-19 liblld-19-dev     # linking kernel objects into plan images in-process
  libflatbuffers-dev flatbuffers-compiler flatbuffers-compiler-dev   # plans (FlatBuffers 2.0.8)
  python3 python3-jinja2               # tests: chat templates checked against their Jinja text
  pybind11-dev python3-dev python3-numpy  # the bitnet Python package (python/)
  python3-pytest python3-venv python3-wheel  # its tests; installing it into a virtualenv
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
