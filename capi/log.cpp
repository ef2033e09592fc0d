// llama.h's process-wide pieces: logging, the handle registry, time, system information and
// the backend calls that have nothing to do here (ggml.h, ggml-backend.h).
#include "bitnet/log.h"

#include "capi/handles.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_set>

namespace capi {
namespace {

std::mutex registry_mutex;
std::unordered_set<const void*>& registry() {
  static auto* live = new std::unordered_set<const void*>;  // never destroyed: frees may run at exit
  return *live;
}

void log_to_stderr(ggml_log_level, const char* text, void*) {
  std::fputs(text, stderr);
  std::fflush(stderr);
}

std::mutex log_mutex;
ggml_log_callback log_callback = log_to_stderr;
void* log_user_data = nullptr;

}  // namespace

void register_handle(const void* handle) {
  std::lock_guard lock(registry_mutex);
  registry().insert(handle);
}
void unregister_handle(const void* handle) {
  std::lock_guard lock(registry_mutex);
  registry().erase(handle);
}
bool is_live(const void* handle) {
  if (handle == nullptr) return false;
  std::lock_guard lock(registry_mutex);
  return registry().count(handle) != 0;
}

void log(ggml_log_level level, const std::string& text) {
  std::lock_guard lock(log_mutex);
  log_callback(level, text.c_str(), log_user_data);
}

void connect_library_log() {
  static std::once_flag once;
  std::call_once(once, [] {
    bitnet::set_log_callback([](bitnet::LogLevel level, std::string_view message) {
      std::string line(message);
      if (line.empty() || line.back() != '\n') line += '\n';
      log(level == bitnet::LogLevel::kWarning ? GGML_LOG_LEVEL_WARN : GGML_LOG_LEVEL_INFO, line);
    });
  });
}

const llama_model* checked(const llama_model* model, const char* caller) {
  if (is_live(model)) return model;
  log_error("{}: {} model", caller, model == nullptr ? "NULL" : "invalid (freed?)");
  return nullptr;
}
const llama_vocab* checked(const llama_vocab* vocab, const char* caller) {
  if (is_live(vocab)) return vocab;
  log_error("{}: {} vocab", caller, vocab == nullptr ? "NULL" : "invalid (its model freed?)");
  return nullptr;
}
llama_context* checked(const llama_context* ctx, const char* caller) {
  if (is_live(ctx)) return const_cast<llama_context*>(ctx);
  log_error("{}: {} context", caller, ctx == nullptr ? "NULL" : "invalid (freed?)");
  return nullptr;
}

int32_t copy_string(const std::string& text, char* buf, size_t size) {
  if (buf != nullptr && size > 0) {
    const size_t n = std::min(text.size(), size - 1);
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return static_cast<int32_t>(text.size());
}

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace capi

extern "C" {

void llama_log_set(ggml_log_callback log_callback, void* user_data) {
  std::lock_guard lock(capi::log_mutex);
  capi::log_callback = log_callback != nullptr ? log_callback : capi::log_to_stderr;
  capi::log_user_data = log_callback != nullptr ? user_data : nullptr;
}

void llama_log_get(ggml_log_callback* log_callback, void** user_data) {
  std::lock_guard lock(capi::log_mutex);
  if (log_callback != nullptr) *log_callback = capi::log_callback;
  if (user_data != nullptr) *user_data = capi::log_user_data;
}

void llama_backend_init(void) {
  capi::connect_library_log();
}
void llama_backend_free(void) {}
void llama_numa_init(enum ggml_numa_strategy) {}
void ggml_backend_load_all(void) {}

int64_t ggml_time_us(void) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
int64_t ggml_time_ms(void) {
  return ggml_time_us() / 1000;
}
void ggml_time_init(void) {}
int64_t llama_time_us(void) {
  return ggml_time_us();
}

void ggml_abort(const char* file, int line, const char* fmt, ...) {
  std::fprintf(stderr, "%s:%d: ", file, line);
  va_list args;
  va_start(args, fmt);
  std::vfprintf(stderr, fmt, args);
  va_end(args);
  std::fputc('\n', stderr);
  std::fflush(stderr);
  std::abort();
}

size_t llama_max_devices(void) {
  return 1;
}
size_t llama_max_parallel_sequences(void) {
  return 256;  // llama.cpp's LLAMA_MAX_SEQ
}
bool llama_supports_mmap(void) {
  return true;
}
bool llama_supports_mlock(void) {
  return false;
}
bool llama_supports_gpu_offload(void) {
  return false;
}
bool llama_supports_rpc(void) {
  return false;
}

const char* llama_print_system_info(void) {
  static const std::string info = [] {
    std::string s = "CPU : ";
#if defined(__x86_64__)
    __builtin_cpu_init();
    // F16C by cpuid: clang 14's __builtin_cpu_supports does not know "f16c".
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    const std::pair<const char*, bool> features[] = {
        {"SSE3", __builtin_cpu_supports("sse3")},
        {"SSSE3", __builtin_cpu_supports("ssse3")},
        {"AVX", __builtin_cpu_supports("avx")},
        {"AVX2", __builtin_cpu_supports("avx2")},
        {"F16C", f16c},
        {"FMA", __builtin_cpu_supports("fma")},
        {"BMI2", __builtin_cpu_supports("bmi2")},
        {"AVX512", __builtin_cpu_supports("avx512f")},
        {"AVX512_VBMI", __builtin_cpu_supports("avx512vbmi")},
        {"AVX512_VNNI", __builtin_cpu_supports("avx512vnni")},
        {"AVX512_BF16", __builtin_cpu_supports("avx512bf16")},
    };
    for (const auto& [name, present] : features) s += fmt::format("{} = {} | ", name, present ? 1 : 0);
#endif
    s += "BITNET_CXX = 1 | ";
    return s;
  }();
  return info.c_str();
}

}  // extern "C"
