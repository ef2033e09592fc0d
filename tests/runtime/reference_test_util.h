// Shared pieces of the reference-kernel tests: exact comparison with a readable failure
// message, and access to a crossval model (GGUF + hyper-parameters + seq16 intermediates).
#pragma once

#include "frontend_gguf/gguf_file.h"
#include "npy.h"
#include "reference/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace bitnet::testing {

// Bit-exactness check: passes when every value is equal (numerically; NaN == NaN). The
// failure message gives the number of differing values, max |diff| and the first one.
inline ::testing::AssertionResult all_equal(const std::string& what, const float* got, const float* want, int64_t n) {
  double max_abs = 0;
  int64_t n_diff = 0;
  int64_t first = -1;
  for (int64_t i = 0; i < n; ++i) {
    const bool same = got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i]));
    if (same) continue;
    ++n_diff;
    if (first < 0) first = i;
    const double d = std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
    max_abs = std::isnan(d) || d > max_abs ? d : max_abs;
  }
  if (n_diff == 0) return ::testing::AssertionSuccess();
  std::ostringstream msg;
  msg.precision(9);
  msg << what << ": " << n_diff << " of " << n << " values differ, max |diff| = " << max_abs << " (first at " << first
      << ": got " << got[first] << ", want " << want[first] << ")";
  return ::testing::AssertionFailure() << msg.str();
}

inline ::testing::AssertionResult all_equal(const std::string& what, const std::vector<float>& got,
                                            const std::vector<float>& want) {
  if (want.empty()) return ::testing::AssertionFailure() << what << ": no reference values";
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << what << ": size " << got.size() << " != " << want.size();
  }
  return all_equal(what, got.data(), want.data(), static_cast<int64_t>(got.size()));
}

// seq16 of ../shared/crossval/index.json (BOS + "The quick brown fox jumps over the lazy dog. Once upon a").
inline const std::vector<int32_t>& seq16_tokens() {
  static const std::vector<int32_t> tokens = {1,   450, 4996,  17354, 1701,  29916, 432,  17204,
                                              975, 278, 17366, 11203, 29889, 9038,  2501, 263};
  return tokens;
}

inline const std::vector<int32_t>& seq7_tokens() {
  static const std::vector<int32_t> tokens = {1, 15043, 29892, 920, 526, 366, 29973};
  return tokens;
}

// seq64: BOS + 63 pseudo-random ids (numpy RandomState(20240617).randint(3, 32000)).
inline const std::vector<int32_t>& seq64_tokens() {
  static const std::vector<int32_t> tokens = {
      1,     9722,  10120, 5205,  5536,  483,   9565,  23409, 27658, 9014,  20659, 31749, 12252, 5184,  31001, 21018,
      10725, 1745,  19686, 27857, 24069, 31731, 30763, 17317, 21830, 25865, 15224, 1943,  29209, 11834, 11381, 12667,
      24373, 20275, 14748, 11316, 12558, 12342, 23023, 11593, 3746,  4256,  16586, 12239, 23896, 2929,  22079, 11579,
      19491, 9387,  16572, 12162, 29997, 7229,  31484, 27538, 1687,  29071, 24329, 13583, 8553,  14360, 24951, 26293};
  return tokens;
}

// One crossval model: its GGUF (tensors as zero-copy views), the hyper-parameters the kernels
// need, and the teacher-forcing data of intermediates_seq16 in graph order.
class CrossvalModel {
 public:
  struct Entry {
    std::string file, name, op;
  };

  // Fails the calling test (ADD_FAILURE) and returns false when something is missing.
  bool load(const std::filesystem::path& shared, const std::string& model) {
    dir_ = shared / "crossval" / model;
    auto file = gguf::GgufFile::open((shared / "models" / "bitnet-i2s" / (model + ".i2_s.gguf")).string());
    if (!file.ok()) {
      ADD_FAILURE() << file.error().message;
      return false;
    }
    gguf_ = std::make_unique<gguf::GgufFile>(std::move(*file));
    arch = gguf_->architecture();
    n_embd = static_cast<int64_t>(gguf_->get_uint(arch + ".embedding_length").value_or(0));
    n_layer = static_cast<int64_t>(gguf_->get_uint(arch + ".block_count").value_or(0));
    n_head = static_cast<int64_t>(gguf_->get_uint(arch + ".attention.head_count").value_or(0));
    n_head_kv = static_cast<int64_t>(gguf_->get_uint(arch + ".attention.head_count_kv").value_or(n_head));
    eps = static_cast<float>(gguf_->get_float(arch + ".attention.layer_norm_rms_epsilon").value_or(0));
    freq_base = static_cast<float>(gguf_->get_float(arch + ".rope.freq_base").value_or(10000.0));
    head_dim = n_head > 0 ? n_embd / n_head : 0;

    std::ifstream manifest(dir_ / "intermediates_seq16" / "manifest.tsv");
    if (!manifest) {
      ADD_FAILURE() << "no manifest in " << dir_;
      return false;
    }
    std::string line;
    std::getline(manifest, line);  // header
    while (std::getline(manifest, line)) {
      std::istringstream fields(line);
      Entry e;
      std::getline(fields, e.file, '\t');
      std::getline(fields, e.name, '\t');
      std::getline(fields, e.op, '\t');
      if (!e.file.empty()) entries.push_back(e);
    }
    return true;
  }

  ref::WeightView weight(const std::string& name) const {
    const gguf::TensorInfo* t = gguf_->find_tensor(name);
    EXPECT_NE(t, nullptr) << name;
    if (t == nullptr) return {};
    ref::WeightView w;
    w.type = t->type;
    w.data = t->data.data();
    w.cols = static_cast<int64_t>(t->ne[0]);
    w.rows = t->ne.size() > 1 ? static_cast<int64_t>(t->ne[1]) : 1;
    return w;
  }

  // An F32 1-D tensor (norm gains) as floats.
  std::vector<float> vector_f32(const std::string& name) const {
    const gguf::TensorInfo* t = gguf_->find_tensor(name);
    EXPECT_NE(t, nullptr) << name;
    if (t == nullptr) return {};
    std::vector<float> out(t->data.size() / 4);
    std::memcpy(out.data(), t->data.data(), out.size() * 4);
    return out;
  }

  // Index of the `occurrence`-th entry with this name and op, or -1.
  int find(const std::string& name, const std::string& op, int occurrence = 0) const {
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].name == name && entries[i].op == op && occurrence-- == 0) return static_cast<int>(i);
    }
    return -1;
  }

  std::vector<float> tensor(int index) const {
    EXPECT_GE(index, 0);
    if (index < 0) return {};
    auto array = read_npy(dir_ / "intermediates_seq16" / entries[static_cast<size_t>(index)].file);
    EXPECT_TRUE(array.ok()) << (array.ok() ? "" : array.error().message);
    return array.ok() ? array->f32 : std::vector<float>{};
  }
  std::vector<float> tensor(const std::string& name, const std::string& op, int occurrence = 0) const {
    const int index = find(name, op, occurrence);
    EXPECT_GE(index, 0) << "no " << name << " " << op << " #" << occurrence;
    return tensor(index);
  }

  NpyArray array(const std::string& file) const {
    auto a = read_npy(dir_ / file);
    EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message);
    return a.ok() ? *a : NpyArray{};
  }

  bool bitnet_silu() const { return arch == "bitnet"; }

  std::string arch;
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
  float eps = 0, freq_base = 0;
  std::vector<Entry> entries;

 private:
  std::filesystem::path dir_;
  std::unique_ptr<gguf::GgufFile> gguf_;
};

inline std::vector<std::string> crossval_models() {
  return {"bitnet-tiny-mha", "b158-tiny-gqa"};
}

}  // namespace bitnet::testing
