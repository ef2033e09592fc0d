// Test helpers (see test_support.h).
#include "test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

namespace bitnet::testing {

bool running_under_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0' && std::string_view(ci) != "false" && std::string_view(ci) != "0";
}

std::optional<std::filesystem::path> shared_dir() {
  std::filesystem::path p = BITNET_DEFAULT_SHARED_DIR;
  if (const char* env = std::getenv("BITNET_SHARED_DIR"); env && *env) p = env;
  if (std::filesystem::is_directory(p / "models")) return p;
  // CI always has the reference set: a check that would be skipped there is a failure.
  if (running_under_ci()) ADD_FAILURE() << p.string() << " is absent but CI is set: the reference set must be there";
  return std::nullopt;
}

std::filesystem::path source_dir() {
  return BITNET_SOURCE_DIR;
}
std::filesystem::path binary_dir() {
  return BITNET_BINARY_DIR;
}
std::filesystem::path bitnet_cli() {
  return binary_dir() / "bin" / "bitnet";
}
std::string cli() {
  return shell_quote(bitnet_cli().string());
}
std::string stories() {
  return shell_quote((source_dir() / "models/stories260K.gguf").string());
}

std::vector<std::filesystem::path> shared_gguf_files(const std::filesystem::path& shared) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(shared / "models")) {
    if (e.is_regular_file() && e.path().extension() == ".gguf") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  // Loops over this list must not pass by checking nothing: the set holds 14 models today.
  EXPECT_GE(out.size(), kMinSharedGgufFiles) << "expected the reference models under " << (shared / "models").string();
  return out;
}

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("bitnet-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

CommandResult run_command(const std::string& command_line) {
  TempDir dir;
  const auto out_path = dir / "stdout";
  const auto err_path = dir / "stderr";
  const std::string full =
      command_line + " >" + shell_quote(out_path.string()) + " 2>" + shell_quote(err_path.string());
  const int status = std::system(full.c_str());
  CommandResult r;
  if (WIFEXITED(status))
    r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    r.exit_code = 128 + WTERMSIG(status);
  auto out = read_file(out_path);
  auto err = read_file(err_path);
  r.out.assign(out.begin(), out.end());
  r.err.assign(err.begin(), err.end());
  return r;
}

}  // namespace bitnet::testing

#include <atomic>
#include <cstring>
#include <new>

namespace bitnet::testing {
namespace {
std::atomic<size_t> g_peak_allocation{0};
}  // namespace

void reset_peak_allocation() {
  g_peak_allocation = 0;
}
size_t peak_allocation() {
  return g_peak_allocation;
}

std::vector<uint8_t> random_tensor_data(gguf::GgmlType type, const std::vector<uint64_t>& ne, uint32_t seed) {
  auto nbytes = gguf::ggml_tensor_nbytes(type, ne);
  EXPECT_TRUE(nbytes.ok()) << nbytes.error().message;
  std::vector<uint8_t> data(nbytes.ok() ? *nbytes : 0);
  std::mt19937 rng(seed);
  if (type == gguf::GgmlType::I2_S) {
    const uint64_t n = *gguf::checked_element_count(ne);
    for (uint64_t i = 0; i < n / 4; ++i) {
      uint8_t b = 0;
      for (int k = 0; k < 4; ++k) b = static_cast<uint8_t>((b << 2) | (rng() % 3));  // codes 0..2 only
      data[i] = b;
    }
    const float scale = 0.5f + static_cast<float>(rng() % 100) / 100.0f;
    std::memcpy(data.data() + n / 4, &scale, sizeof scale);
  } else if (type == gguf::GgmlType::F32) {
    for (size_t i = 0; i + 4 <= data.size(); i += 4) {
      const float v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 1000.0f;
      std::memcpy(data.data() + i, &v, 4);
    }
  } else if (type == gguf::GgmlType::F16) {
    for (size_t i = 0; i + 2 <= data.size(); i += 2) {
      // finite halves only: exponent field below 0x1f
      const uint16_t h = static_cast<uint16_t>((rng() & 0x83ff) | ((rng() % 30) << 10));
      std::memcpy(data.data() + i, &h, 2);
    }
  } else if (type == gguf::GgmlType::BF16) {
    for (size_t i = 0; i + 2 <= data.size(); i += 2) {
      // finite values only: sign, exponent 0x70..0x8e (about 2^-15 .. 2^15), random mantissa
      const uint16_t v = static_cast<uint16_t>((rng() & 0x807f) | ((0x70 + rng() % 31) << 7));
      std::memcpy(data.data() + i, &v, 2);
    }
  } else {
    // Block-quantized types: random bytes (their F16 scales may be NaN/Inf; no test decodes them
    // expecting finite values).
    for (auto& b : data) b = static_cast<uint8_t>(rng());
  }
  return data;
}

SyntheticModel make_synthetic_model(const SyntheticModelOptions& o) {
  gguf::GeneratedModelSpec spec;
  spec.arch = o.arch;
  spec.n_embd = o.n_embd;
  spec.n_ff = o.n_ff;
  spec.n_head = o.n_head;
  spec.n_head_kv = o.n_head_kv;
  spec.n_layer = o.n_layer;
  spec.n_vocab = o.n_vocab;
  spec.n_ctx = 256;
  spec.seed = o.seed;
  spec.weight_type = o.weight_type;
  spec.tokenizer_model = o.tokenizer_model;
  auto model = gguf::build_model(spec);
  if (!model.ok()) ADD_FAILURE() << model.error().message;
  return model.ok() ? std::move(*model) : SyntheticModel{};
}

}  // namespace bitnet::testing

// Records the largest single allocation request (see peak_allocation()).
void* operator new(size_t size) {
  size_t prev = bitnet::testing::g_peak_allocation.load(std::memory_order_relaxed);
  while (size > prev && !bitnet::testing::g_peak_allocation.compare_exchange_weak(prev, size)) {
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
// Every form of delete must pair with these news (under ASan a mismatch aborts).
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
