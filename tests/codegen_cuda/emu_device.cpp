// The host emulator as a runtime::cuda::Device (see emu_device.h).
#include "emu_device.h"

#include <cstdlib>
#include <cstring>

namespace bitnet::testing {

namespace rc = runtime::cuda;

namespace {

void* address(rc::DevicePtr p) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(p));
}

}  // namespace

EmuDevice::EmuDevice(bool graphs) {
  info_.name = "host emulator";
  info_.sm = 0;
  info_.memory = int64_t{1} << 34;
  info_.graphs = graphs;
  info_.programmatic_launch = false;
}

EmuDevice::~EmuDevice() {
  for (auto& [p, bytes] : allocations_) std::free(p);
}

Expected<rc::DevicePtr> EmuDevice::alloc(int64_t bytes) {
  if (bytes <= 0) return make_error("alloc of {} bytes", bytes);
  void* p = std::aligned_alloc(256, static_cast<size_t>((bytes + 255) / 256 * 256));
  if (p == nullptr) return make_error("out of host memory ({} bytes)", bytes);
  std::memset(p, 0xA5, static_cast<size_t>(bytes));  // "uninitialised": a session must not rely on it
  allocations_.emplace_back(p, bytes);
  return static_cast<rc::DevicePtr>(reinterpret_cast<uintptr_t>(p));
}

void EmuDevice::release(rc::DevicePtr p) {
  for (auto it = allocations_.begin(); it != allocations_.end(); ++it) {
    if (it->first == address(p)) {
      std::free(it->first);
      allocations_.erase(it);
      return;
    }
  }
}

// Whether [p, p + bytes) lies inside one allocation: a session's copies must stay in bounds.
bool EmuDevice::owns(rc::DevicePtr p, int64_t bytes) const {
  for (const auto& [base, size] : allocations_) {
    const auto b = static_cast<rc::DevicePtr>(reinterpret_cast<uintptr_t>(base));
    if (p >= b && p + static_cast<uint64_t>(bytes) <= b + static_cast<uint64_t>(size)) return true;
  }
  return false;
}

Status EmuDevice::upload(rc::DevicePtr dst, const void* src, int64_t bytes) {
  if (!owns(dst, bytes)) return make_error("upload of {} bytes outside any allocation", bytes);
  std::memcpy(address(dst), src, static_cast<size_t>(bytes));
  return Status::success();
}

Status EmuDevice::download(void* dst, rc::DevicePtr src, int64_t bytes) {
  if (!owns(src, bytes)) return make_error("download of {} bytes outside any allocation", bytes);
  std::memcpy(dst, address(src), static_cast<size_t>(bytes));
  return Status::success();
}

Status EmuDevice::fill_zero(rc::DevicePtr dst, int64_t bytes) {
  if (!owns(dst, bytes)) return make_error("fill of {} bytes outside any allocation", bytes);
  std::memset(address(dst), 0, static_cast<size_t>(bytes));
  return Status::success();
}

Status EmuDevice::copy(rc::DevicePtr dst, rc::DevicePtr src, int64_t bytes) {
  if (!owns(dst, bytes) || !owns(src, bytes)) return make_error("copy of {} bytes outside any allocation", bytes);
  std::memcpy(address(dst), address(src), static_cast<size_t>(bytes));
  return Status::success();
}

Status EmuDevice::copy_2d(rc::DevicePtr dst, int64_t dst_pitch, rc::DevicePtr src, int64_t src_pitch, int64_t width,
                          int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    BITNET_RETURN_IF_ERROR(
        copy(dst + static_cast<uint64_t>(r * dst_pitch), src + static_cast<uint64_t>(r * src_pitch), width));
  }
  return Status::success();
}

Expected<int> EmuDevice::load_module(const rc::ModuleImage& image) {
  std::string error;
  auto code = EmuModule::build(std::string(image.source), &error);
  if (!code) return make_error("host emulator: {}", error);
  Module m{code, {}, image.kernels};
  for (const std::string& name : image.kernels) {
    void* fn = code->symbol(name);
    if (fn == nullptr) return make_error("host emulator: no kernel {}", name);
    m.kernels.push_back(fn);
  }
  modules_.push_back(std::move(m));
  return static_cast<int>(modules_.size()) - 1;
}

Status EmuDevice::launch(int module, int kernel, rc::Dim3 grid, int threads, std::span<const rc::KernelArg> args,
                         bool /*programmatic*/) {
  if (module < 0 || module >= static_cast<int>(modules_.size()) || kernel < 0 ||
      kernel >= static_cast<int>(modules_[static_cast<size_t>(module)].kernels.size())) {
    return make_error("launch of kernel {} of module {}: no such kernel", kernel, module);
  }
  Launch l{module, kernel, grid, threads, std::vector<rc::KernelArg>(args.begin(), args.end())};
  if (recording_ != nullptr) {
    recording_->push_back(std::move(l));
    return Status::success();
  }
  return run(l);
}

Status EmuDevice::run(const Launch& l) {
  std::vector<void*> pointers;
  bool has_int = false;
  int value = 0;
  for (const rc::KernelArg& a : l.args) {
    if (has_int) return make_error("emulator: an int before a pointer");
    if (a.is_int) {
      has_int = true, value = a.value;
    } else {
      pointers.push_back(address(a.pointer));
    }
  }
  const Module& m = modules_[static_cast<size_t>(l.module)];
  if (++launches_ == fail_at_) return make_error("emulated device fault (an illegal address)");
  ++runs_by_kernel_[m.names[static_cast<size_t>(l.kernel)]];
  const std::string error = m.code->launch_pointers(
      m.names[static_cast<size_t>(l.kernel)], {l.grid.x, l.grid.y, l.grid.z}, l.threads, pointers, has_int, value);
  if (!error.empty()) return make_error("emulator: {}", error);
  return Status::success();
}

Expected<int> EmuDevice::capture(const std::function<Status()>& record) {
  if (!info_.graphs) return make_error("this emulator has no graphs");
  std::vector<Launch> graph;
  recording_ = &graph;
  const Status s = record();
  recording_ = nullptr;
  BITNET_RETURN_IF_ERROR(s);
  graphs_.push_back(std::move(graph));
  return static_cast<int>(graphs_.size()) - 1;
}

Status EmuDevice::replay(int graph) {
  if (graph < 0 || graph >= static_cast<int>(graphs_.size())) return make_error("no graph {}", graph);
  ++replays_;
  for (const Launch& l : graphs_[static_cast<size_t>(graph)]) BITNET_RETURN_IF_ERROR(run(l));
  return Status::success();
}

void EmuDevice::destroy_graph(int graph) {
  if (graph >= 0 && graph < static_cast<int>(graphs_.size())) graphs_[static_cast<size_t>(graph)].clear();
}

}  // namespace bitnet::testing
