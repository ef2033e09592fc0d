#include "bench/cuda_reference_decode.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "reference/kernels.h"

namespace bitnet::bench {
namespace {

// A bounds-checked cursor over the file.
struct Cursor {
  const std::vector<uint8_t>& b;
  size_t at = 0;
  bool ok = true;
  template <class T>
  T get() {
    T v{};
    if (at + sizeof(T) > b.size()) {
      ok = false;
      return v;
    }
    std::memcpy(&v, b.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string str() {
    const auto n = get<uint64_t>();
    if (!ok || n > b.size() - at) {
      ok = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(b.data() + at), n);
    at += n;
    return s;
  }
};

// Reads one metadata value of GGUF type `type`; numbers and strings are returned, arrays skipped.
bool read_value(Cursor& c, uint32_t type, double* number, std::string* text) {
  switch (type) {
    case 0:
      *number = c.get<uint8_t>();
      return true;
    case 1:
      *number = c.get<int8_t>();
      return true;
    case 2:
      *number = c.get<uint16_t>();
      return true;
    case 3:
      *number = c.get<int16_t>();
      return true;
    case 4:
      *number = c.get<uint32_t>();
      return true;
    case 5:
      *number = c.get<int32_t>();
      return true;
    case 6:
      *number = c.get<float>();
      return true;
    case 7:
      *number = c.get<uint8_t>();
      return true;
    case 8:
      *text = c.str();
      return true;
    case 9: {
      const auto elem = c.get<uint32_t>();
      const auto n = c.get<uint64_t>();
      double ignored_number;
      std::string ignored_text;
      for (uint64_t i = 0; i < n && c.ok; ++i) read_value(c, elem, &ignored_number, &ignored_text);
      return false;
    }
    case 10:
      *number = static_cast<double>(c.get<uint64_t>());
      return true;
    case 11:
      *number = static_cast<double>(c.get<int64_t>());
      return true;
    case 12:
      *number = c.get<double>();
      return true;
    default:
      c.ok = false;
      return false;
  }
}

}  // namespace

const uint8_t* GgufModel::data(const std::string& name) const {
  const auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : bytes.data() + it->second.offset;
}

Expected<GgufModel> read_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot open " + path};
  GgufModel m;
  m.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  Cursor c{m.bytes};
  if (c.get<uint32_t>() != 0x46554747u) return Error{path + ": not a GGUF file"};
  if (c.get<uint32_t>() != 3) return Error{path + ": only GGUF v3 is read here"};
  const auto n_tensors = c.get<uint64_t>();
  const auto n_kv = c.get<uint64_t>();
  for (uint64_t i = 0; i < n_kv && c.ok; ++i) {
    const std::string key = c.str();
    const auto type = c.get<uint32_t>();
    double number = 0;
    std::string text;
    if (read_value(c, type, &number, &text)) {
      if (type == 8) {
        m.strings[key] = text;
      } else {
        m.numbers[key] = number;
      }
    }
  }
  std::vector<std::pair<std::string, GgufModel::Tensor>> infos;
  for (uint64_t i = 0; i < n_tensors && c.ok; ++i) {
    GgufModel::Tensor t;
    const std::string name = c.str();
    const auto dims = c.get<uint32_t>();
    if (dims > 4) return Error{path + ": tensor " + name + " has too many dimensions"};
    for (uint32_t d = 0; d < dims; ++d) t.ne.push_back(static_cast<int64_t>(c.get<uint64_t>()));
    t.type = c.get<uint32_t>();
    t.offset = c.get<uint64_t>();
    infos.emplace_back(name, t);
  }
  if (!c.ok) return Error{path + ": truncated header"};
  const auto align_it = m.numbers.find("general.alignment");
  const uint64_t alignment = align_it == m.numbers.end() ? 32 : static_cast<uint64_t>(align_it->second);
  const uint64_t data_start = (c.at + alignment - 1) / alignment * alignment;
  for (auto& [name, t] : infos) {
    t.offset += data_start;
    if (t.offset > m.bytes.size()) return Error{path + ": tensor " + name + " lies past the end of the file"};
    m.tensors[name] = t;
  }
  return m;
}

Expected<codegen_cuda::DecodeModelConfig> decode_config(const GgufModel& model, int64_t n_ctx) {
  const auto arch_it = model.strings.find("general.architecture");
  if (arch_it == model.strings.end()) return Error{"no general.architecture"};
  const std::string arch = arch_it->second;
  auto number = [&](const std::string& key, double fallback) {
    const auto it = model.numbers.find(arch + "." + key);
    return it == model.numbers.end() ? fallback : it->second;
  };
  const auto embd = model.tensors.find("token_embd.weight");
  if (embd == model.tensors.end() || embd->second.ne.size() != 2 || embd->second.type != 1) {
    return Error{"token_embd.weight must be a 2-D F16 tensor"};
  }
  codegen_cuda::DecodeModelConfig c;
  if (const auto out = model.tensors.find("output.weight"); out != model.tensors.end()) {
    if (out->second.ne != embd->second.ne || out->second.type != 1)
      return Error{"output.weight must be F16 like token_embd.weight"};
    c.lm_head_tensor = "output.weight";
  }
  c.n_embd = static_cast<int64_t>(number("embedding_length", 0));
  c.n_ff = static_cast<int64_t>(number("feed_forward_length", 0));
  c.n_head = static_cast<int64_t>(number("attention.head_count", 0));
  c.n_head_kv = static_cast<int64_t>(number("attention.head_count_kv", static_cast<double>(c.n_head)));
  c.n_layer = static_cast<int64_t>(number("block_count", 0));
  c.n_vocab = embd->second.ne[1];
  c.n_ctx = n_ctx;
  c.eps = static_cast<float>(number("attention.layer_norm_rms_epsilon", 1e-5));
  c.freq_base = static_cast<float>(number("rope.freq_base", 10000.0));
  c.freq_scale = static_cast<float>(1.0 / number("rope.scaling.factor", 1.0));
  if (arch == "bitnet") {
    c.act = codegen_cuda::FfnActivation::kSilu;
  } else if (arch == "bitnet-b1.58" || arch == "bitnet-25") {
    c.act = codegen_cuda::FfnActivation::kRelu2;
  } else {
    return Error{"architecture " + arch + " is not a BitNet one"};
  }
  return c;
}

ReferenceDecoder::ReferenceDecoder(const codegen_cuda::DecodeModelConfig& config, codegen_cuda::TensorBytes tensors)
    : c_(config), tensors_(std::move(tensors)) {
  const int64_t n_embd_kv = c_.n_embd / c_.n_head * c_.n_head_kv;
  k_cache_.assign(static_cast<size_t>(c_.n_layer), std::vector<uint16_t>(static_cast<size_t>(c_.n_ctx * n_embd_kv), 0));
  v_cache_ = k_cache_;
}

std::vector<float> ReferenceDecoder::step(int32_t token, int64_t pos) {
  const int64_t n = c_.n_embd, ff = c_.n_ff, hd = n / c_.n_head, n_kv = hd * c_.n_head_kv;
  auto i2s = [&](const std::string& name, int64_t rows, int64_t cols) {
    return ref::WeightView{gguf::GgmlType::I2_S, tensors_(name), rows, cols};
  };
  auto gain = [&](const std::string& name) { return reinterpret_cast<const float*>(tensors_(name)); };
  // rms(v, g): RMSNorm, then the gain multiply as its own rounded op (spec 8.1).
  auto rms = [&](const std::vector<float>& v, const float* g) {
    std::vector<float> y(v.size());
    ref::rms_norm(v.data(), static_cast<int64_t>(v.size()), c_.eps, y.data());
    for (size_t i = 0; i < y.size(); ++i) y[i] = y[i] * g[i];
    return y;
  };
  auto product = [&](const std::vector<float>& x, const ref::WeightView& w) {
    std::vector<float> y(static_cast<size_t>(w.rows));
    ref::matmul(x.data(), 1, w, ref::Mode::kDecode, y.data());
    return y;
  };
  const uint16_t* table = reinterpret_cast<const uint16_t*>(tensors_("token_embd.weight"));
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = ref::fp16_to_fp32(table[token * n + i]);
  const ref::AttentionShape shape{c_.n_head, c_.n_head_kv, hd};
  for (int64_t layer = 0; layer < c_.n_layer; ++layer) {
    const std::string blk = "blk." + std::to_string(layer) + ".";
    const std::vector<float> h = rms(x, gain(blk + "attn_norm.weight"));
    std::vector<float> q = product(h, i2s(blk + "attn_q.weight", n, n));
    std::vector<float> k = product(h, i2s(blk + "attn_k.weight", n_kv, n));
    const std::vector<float> v = product(h, i2s(blk + "attn_v.weight", n_kv, n));
    ref::rope_neox(q.data(), hd, c_.n_head, pos, c_.freq_base, c_.freq_scale);
    ref::rope_neox(k.data(), hd, c_.n_head_kv, pos, c_.freq_base, c_.freq_scale);
    const ref::KvLayerView kv{k_cache_[static_cast<size_t>(layer)].data(), v_cache_[static_cast<size_t>(layer)].data(),
                              c_.n_ctx};
    ref::kv_store(k.data(), v.data(), 1, pos, shape, kv);
    std::vector<float> attn(static_cast<size_t>(n));
    ref::attention(q.data(), 1, pos, shape, kv, ref::Mode::kDecode, attn.data());
    const std::vector<float> o =
        product(rms(attn, gain(blk + "attn_sub_norm.weight")), i2s(blk + "attn_output.weight", n, n));
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] + o[i];
    const std::vector<float> h2 = rms(x, gain(blk + "ffn_norm.weight"));
    const std::vector<float> g = product(h2, i2s(blk + "ffn_gate.weight", ff, n));
    const std::vector<float> u = product(h2, i2s(blk + "ffn_up.weight", ff, n));
    std::vector<float> m(static_cast<size_t>(ff));
    if (c_.act == codegen_cuda::FfnActivation::kSilu) {
      ref::silu_row(g.data(), ff, m.data());
    } else {
      for (int64_t i = 0; i < ff; ++i) {
        const float r = g[i] > 0.0f ? g[i] : 0.0f;
        m[i] = r * r;
      }
    }
    for (int64_t i = 0; i < ff; ++i) m[i] = m[i] * u[i];
    const std::vector<float> d =
        product(rms(m, gain(blk + "ffn_sub_norm.weight")), i2s(blk + "ffn_down.weight", n, ff));
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] + d[i];
  }
  const std::vector<float> y = rms(x, gain("output_norm.weight"));
  const ref::WeightView head{gguf::GgmlType::F16, tensors_(c_.lm_head_tensor), c_.n_vocab, n};
  return product(y, head);
}

}  // namespace bitnet::bench
