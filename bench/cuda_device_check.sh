#!/bin/sh
# Runs the standalone CUDA kernel check (bench/cuda_kernel_check.cpp) on a machine with an NVIDIA
# GPU and prints its one JSON summary: parity of every kernel with the CPU reference, the 2B4T
# decode GEMV / LM head timings against 4.8 TB/s, a GEMV-only decode-step graph ("decode_step"),
# and the whole decode step ("decode_programs": the shared tiny models' logits against the CPU
# reference, then every case as a CUDA graph at several context lengths; --decode-only runs just
# this part; --models DIR holds bitnet-tiny-mha.i2_s.gguf and b158-tiny-gqa.i2_s.gguf).
#
#   bench/cuda_device_check.sh <path/to/cuda_kernel_check> [--iters N] [--decode-only] [--models DIR]
#
# Build the binary where the CUDA toolkit is (it embeds its kernels and needs only glibc >= 2.35
# and the driver's libcuda.so.1 on the GPU machine):
#   cmake -S . -B build-cuda -G Ninja -DBITNET_BUILD_BENCH=ON && cmake --build build-cuda --target cuda_kernel_check
# Exit code: the check's (0 ok, 1 parity failed, 2 no GPU or driver, 3 CUDA error, 4 usage), or
# 124 when it ran past BITNET_CHECK_TIMEOUT seconds (default 300).
#
# The CUDA backend itself (runtime/cuda: sessions, graphs per sequence, KV edits, CUDA plans):
#
#   bench/cuda_device_check.sh --backend DIR [SM]
#
# DIR is made here by bench/cuda_backend_bundle.sh (the check binary, its libraries, the tiny
# models and CUDA plans for sm_SM, default 90). Prints one JSON line per model: the tiny models'
# logits against the reference interpreter through two-sequence batches, seq_cp and the
# context shift (parity_differing_logits must be 0), and each model's decode tokens/s at batch
# 1, 8 and 64 and prompt tokens/s (also with every row's logits, as `bitnet eval` runs a text:
# all_logits_tokens_per_s); the 2B4T-shape model is generated on the machine first. Then
# the same for the plans whose batched GEMMs run on tensor cores (*.mma.bnplan), and the 2B4T
# decode at batch 1 over 32000 cached cells (*.c32k.bnplan, --depth 32000).
set -u
if [ "${1:-}" = "--backend" ]; then
  dir=${2:?usage: $0 --backend DIR [SM]}
  sm=${3:-90}
  limit=${BITNET_CHECK_TIMEOUT:-420}
  rc=0
  # Every plan twice where the bundle has both: the batched GEMMs with dp4a, then on tensor cores.
  for gemm in "" .mma; do
    for m in bitnet-tiny-mha b158-tiny-gqa; do
      [ -f "$dir/$m.sm$sm$gemm.bnplan" ] || continue
      timeout "$limit" "$dir/cuda_backend_check" --code "$dir/$m.sm$sm$gemm.bnplan" --model "$dir/$m.i2_s.gguf" \
        --parity || rc=$?
    done
    [ -f "$dir/bitnet-2b4t-seed4.sm$sm$gemm.bnplan" ] || continue
    timeout "$limit" "$dir/cuda_backend_check" --code "$dir/bitnet-2b4t-seed4.sm$sm$gemm.bnplan" \
      --model "${TMPDIR:-/tmp}/bitnet-2b4t-seed4.gguf" --gen-2b4t --steps 16 --prompt 512 || rc=$?
  done
  # Long context: batch-1 decode over 32000 cached cells (the separate softmax), after a timed fill.
  if [ -f "$dir/bitnet-2b4t-seed4.sm$sm.c32k.bnplan" ]; then
    timeout "$limit" "$dir/cuda_backend_check" --code "$dir/bitnet-2b4t-seed4.sm$sm.c32k.bnplan" \
      --model "${TMPDIR:-/tmp}/bitnet-2b4t-seed4.gguf" --gen-2b4t --batches 1 --steps 16 --prompt 512 \
      --depth 32000 || rc=$?
  fi
  exit "$rc"
fi
if [ $# -lt 1 ]; then
  echo "usage: $0 <cuda_kernel_check binary> [--iters N] [--decode-only] [--models DIR]" >&2
  exit 4
fi
bin=$1
shift
limit=${BITNET_CHECK_TIMEOUT:-300}
if [ ! -x "$bin" ]; then
  printf '{"status":"error","exit_code":4,"reason":"not an executable: %s"}\n' "$bin"
  exit 4
fi
timeout "$limit" "$bin" "$@"
rc=$?
if [ "$rc" -eq 124 ]; then
  printf '{"status":"timeout","exit_code":124,"limit_s":%s}\n' "$limit"
fi
exit "$rc"
