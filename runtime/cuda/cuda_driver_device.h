// The Device (device.h) of a real GPU, through the CUDA driver API. libcuda.so.1 is loaded at run
// time with dlopen, and the few driver types and entry points used are declared in
// cuda_driver_device.cpp (no toolkit header), so the binaries build without the CUDA toolkit and
// start without a driver; opening a device then says what is missing.
//
// A device is the primary context of one GPU and one non-blocking stream, on which every
// operation is issued in order. Uploads of up to 64 KiB go through pinned staging slots and do not
// wait for the GPU; larger uploads, and every download, wait for the stream. The Device is not
// synchronised: one thread at a time (any thread: each call makes the context current).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ir/support/expected.h"
#include "runtime/cuda/device.h"

namespace bitnet::runtime::cuda {

// Opens CUDA device `ordinal` (as CUDA_VISIBLE_DEVICES numbers them). Fails, saying why, where
// there is no driver (or only the toolkit's stub libcuda), no such device, or a device older than
// compute capability 8.0.
Expected<std::unique_ptr<Device>> open_cuda_device(int ordinal = 0);

// One line for diagnostics: "CUDA driver 13.0, 1 device: NVIDIA H200 (sm_90, 139 GiB)", or why
// there is none ("no CUDA driver (libcuda.so.1: cannot open shared object file: ...)").
std::string cuda_driver_status();

// For tests: the same with the driver library at `library` (a path, or a name dlopen searches
// for) instead of libcuda.so.1: the toolkit's stub, or a fake driver.
Expected<std::unique_ptr<Device>> open_cuda_device_from(const std::string& library, int ordinal = 0);
std::string cuda_driver_status_from(const std::string& library);

// For tests: the sizes and field offsets of the driver structs declared without cuda.h
// ("sizeof(CUDA_MEMCPY2D)", "offsetof(CUlaunchConfig, hStream)", ...), to compare with cuda.h's.
std::vector<std::pair<std::string, size_t>> cuda_driver_abi_layout();

}  // namespace bitnet::runtime::cuda
