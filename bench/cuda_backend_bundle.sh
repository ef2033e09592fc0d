#!/bin/sh
# Makes the folder the device machine needs to run the CUDA backend (bench/cuda_backend_check.cpp)
# without this project's build: the check binary and the shared libraries it loads from its own
# folder (fmt, xxhash, pcre2), the two tiny shared models and CUDA plans of them and of the
# 2B4T shape, compiled here for one SM (only the .bnplan files: the check repacks the weights on
# the device, and makes the 2B4T model there, where `gen-model --preset 2b4t --seed 4` gives the
# same bytes; the 2B4T plans for 1024 cells and, with dp4a GEMMs only, 32768). About 50 MB: small enough to carry (`run`'s carry limit is 64 MiB).
#
#   bench/cuda_backend_bundle.sh OUT_DIR [SM]        (SM: 90 by default)
#
# Needs build/bin/bitnet and build/bin/cuda_backend_check (-DBITNET_BUILD_BENCH=ON), NVRTC, and
# ../shared/models. Then on the GPU machine: bench/cuda_device_check.sh --backend OUT_DIR.
set -eu
out=${1:?usage: $0 OUT_DIR [SM]}
sm=${2:-90}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/build/bin
models=${BITNET_SHARED_DIR:-$here/../shared}/models/bitnet-i2s
mkdir -p "$out"
cp "$bin/cuda_backend_check" "$out/"
# The non-glibc shared libraries it needs, as this machine resolves them.
for lib in $(ldd "$bin/cuda_backend_check" | awk '/=>/ {print $3}'); do
  case $(basename "$lib") in
    libc.so*|libm.so*|ld-linux*|libdl.so*|libpthread.so*|librt.so*) ;;
    libstdc++.so*|libgcc_s.so*) ;;  # the machine's own (libfmt's dependency; the check links them statically)
    *) cp -L "$lib" "$out/" ;;
  esac
done
# Each also with the batched steps' GEMMs on tensor cores (--cuda-gemm mma: *.mma.bnplan).
for m in bitnet-tiny-mha b158-tiny-gqa; do
  cp "$models/$m.i2_s.gguf" "$out/"
  for gemm in dp4a mma; do
    plan="$out/$m.sm$sm.bnplan"
    [ "$gemm" = mma ] && plan="$out/$m.sm$sm.mma.bnplan"
    "$bin/bitnet" compile -m "$out/$m.i2_s.gguf" -o "$plan" --target "cuda-sm_$sm" -c 256 --cuda-gemm "$gemm" >/dev/null
    rm -f "$plan.weights"
  done
done
# The 2B4T shape: made here to compile its plan, then removed (the device makes its own).
tmp=$(mktemp -d)
"$bin/bitnet" gen-model --preset 2b4t --seed 4 -o "$tmp/bitnet-2b4t-seed4.gguf" >/dev/null
"$bin/bitnet" compile -m "$tmp/bitnet-2b4t-seed4.gguf" -o "$out/bitnet-2b4t-seed4.sm$sm.bnplan" \
  --target "cuda-sm_$sm" -c 1024 >/dev/null
"$bin/bitnet" compile -m "$tmp/bitnet-2b4t-seed4.gguf" -o "$out/bitnet-2b4t-seed4.sm$sm.mma.bnplan" \
  --target "cuda-sm_$sm" -c 1024 --cuda-gemm mma >/dev/null
# And for 32768 cells (past 8192 the softmax is a launch of its own): decode at depth 32000.
"$bin/bitnet" compile -m "$tmp/bitnet-2b4t-seed4.gguf" -o "$out/bitnet-2b4t-seed4.sm$sm.c32k.bnplan" \
  --target "cuda-sm_$sm" -c 32768 >/dev/null
rm -rf "$tmp" "$out"/*.bnplan.weights
du -sh "$out"
