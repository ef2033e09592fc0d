// The C interface of the host emulator's launcher: what a test calls, through dlsym, in a
// shared object built from generated CUDA C++ + cuda_host_emu.h + the emulator runtime.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_emu_dim3 {
  unsigned x, y, z;
} bn_emu_dim3;

// Runs `body(arg)` once per thread of every block of `grid`, each block's threads as fibers of
// one OS thread (so __syncthreads and warp collectives interleave them), blocks spread over
// `workers` OS threads (0: all cores, at most 8). Returns 0, or non-zero with a message in
// `error` (a deadlock: a barrier or warp collective that not every thread reaches, or
// inconsistent shuffle masks; or a bad configuration). `body` calls the kernel with its arguments.
int bn_emu_launch(bn_emu_dim3 grid, bn_emu_dim3 block, void (*body)(void*), void* arg, int workers, char* error,
                  unsigned long error_size);

#ifdef __cplusplus
}
#endif
