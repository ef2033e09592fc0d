// Architecture lowering (see lowering.h). The graph mirrors llama.cpp's build_llama()
// and bitnet.cpp's build_bitnet() / build_bitnet_158(): same ops, same order, so the
// reference interpreter reproduces the reference numerics op by op.
#include "frontend_gguf/lowering.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

namespace bitnet::gguf {
namespace {

using ir::ValueId;

class Lowering {
 public:
  Lowering(const GgufFile& file, const ModelConfig& config, const LoweringOptions& options, ir::Graph& graph)
      : file_(file), c_(config), options_(options), b_(graph) {}

  Status run() {
    BITNET_ASSIGN_OR_RETURN(ValueId tokens, b_.input_tokens());
    BITNET_ASSIGN_OR_RETURN(ValueId embd_table, weight("token_embd.weight"));
    BITNET_ASSIGN_OR_RETURN(ValueId x, b_.embed(embd_table, tokens, "embd"));
    for (uint64_t il = 0; il < c_.n_layer; ++il) {
      BITNET_ASSIGN_OR_RETURN(x, layer(static_cast<int64_t>(il), x));
    }
    if (!options_.all_logits) {
      BITNET_ASSIGN_OR_RETURN(x, b_.select_rows(x, "last"));
    }
    BITNET_ASSIGN_OR_RETURN(ValueId y, norm(x, "output_norm.weight", "out"));
    BITNET_ASSIGN_OR_RETURN(ValueId head, weight(c_.separate_output ? "output.weight" : "token_embd.weight"));
    BITNET_ASSIGN_OR_RETURN(ValueId logits, b_.matmul(y, head, "logits.mm"));
    BITNET_RETURN_IF_ERROR(b_.output(logits, "logits"));
    return check_unused_tensors();
  }

 private:
  // The weight node of a GGUF tensor (one node per tensor, reused).
  Expected<ValueId> weight(const std::string& name) {
    if (auto it = weights_.find(name); it != weights_.end()) return it->second;
    const TensorInfo* t = file_.find_tensor(name);
    if (t == nullptr) return make_error("required tensor '{}' is missing", name);
    auto dtype = ir_dtype(t->type);
    if (!dtype)
      return make_error("tensor '{}' has type {}, which the engine cannot use", name, ggml_type_name(t->type));
    std::vector<ir::Dim> shape;  // ggml ne is innermost-first; the IR is row-major
    for (auto it = t->ne.rbegin(); it != t->ne.rend(); ++it) shape.push_back(ir::Dim{static_cast<int64_t>(*it)});
    auto v = b_.weight(name, ir::Type::of(*dtype, std::move(shape)));
    if (!v.ok()) return make_error("tensor '{}': {}", name, v.error().message);
    used_.insert(name);
    weights_.emplace(name, *v);
    return *v;
  }

  // rms_norm then the gain (two ops, as the reference computes them).
  Expected<ValueId> norm(ValueId x, const std::string& gain, const std::string& name) {
    BITNET_ASSIGN_OR_RETURN(ValueId n, b_.rms_norm(x, c_.rms_eps, name + ".rms"));
    BITNET_ASSIGN_OR_RETURN(ValueId g, weight(gain));
    return b_.mul(n, g, name);
  }

  // x times a projection weight. Ternary weights (I2_S, and TQ1_0/TQ2_0 with the same
  // semantics: docs/ternary-formats.md) get their activations quantized to int8 first (spec
  // 8.2), once per product as in the reference graph; the shared-quantize pass removes the
  // repeats later. An optional scalar `<proj>.scale` multiplies the result.
  Expected<ValueId> project(ValueId x, const std::string& tensor, const std::string& name) {
    BITNET_ASSIGN_OR_RETURN(ValueId w, weight(tensor));
    ValueId in = x;
    const ir::DType wt = b_.graph().value(w).type.dtype;
    if (wt == ir::DType::I2_S || wt == ir::DType::TQ1_0 || wt == ir::DType::TQ2_0) {
      BITNET_ASSIGN_OR_RETURN(in, b_.quantize_i8(x, name + ".q8"));
    }
    BITNET_ASSIGN_OR_RETURN(ValueId y, b_.matmul(in, w, name));
    const std::string scale = tensor.substr(0, tensor.size() - std::string(".weight").size()) + ".scale";
    if (file_.find_tensor(scale) != nullptr) {
      BITNET_ASSIGN_OR_RETURN(ValueId s, weight(scale));
      BITNET_ASSIGN_OR_RETURN(y, b_.mul(y, s, name + ".scaled"));
    }
    return y;
  }

  Expected<ValueId> layer(int64_t il, ValueId x) {
    const std::string p = fmt::format("blk.{}.", il);
    const std::string n = fmt::format("blk{}.", il);
    const bool sub_norms = c_.arch->sub_norms;
    const std::string rope_style = c_.arch->rope_style == RopeStyle::kNeox ? "neox" : "normal";
    const auto heads = static_cast<int64_t>(c_.n_head);
    const auto kv_heads = static_cast<int64_t>(c_.n_head_kv);
    const auto head_dim = static_cast<int64_t>(c_.head_dim);

    // Attention block.
    BITNET_ASSIGN_OR_RETURN(ValueId h, norm(x, p + "attn_norm.weight", n + "attn_norm"));
    BITNET_ASSIGN_OR_RETURN(ValueId q, project(h, p + "attn_q.weight", n + "q"));
    BITNET_ASSIGN_OR_RETURN(ValueId k, project(h, p + "attn_k.weight", n + "k"));
    BITNET_ASSIGN_OR_RETURN(ValueId v, project(h, p + "attn_v.weight", n + "v"));
    BITNET_ASSIGN_OR_RETURN(
        q, b_.rope(q, rope_style, heads, head_dim, c_.rope_freq_base, c_.rope_freq_scale, n + "q.rope"));
    BITNET_ASSIGN_OR_RETURN(
        k, b_.rope(k, rope_style, kv_heads, head_dim, c_.rope_freq_base, c_.rope_freq_scale, n + "k.rope"));
    BITNET_ASSIGN_OR_RETURN(ValueId a, b_.attention(q, k, v, il, heads, kv_heads, head_dim, n + "attn"));
    if (sub_norms) {
      BITNET_ASSIGN_OR_RETURN(a, norm(a, p + "attn_sub_norm.weight", n + "attn_sub_norm"));
    }
    BITNET_ASSIGN_OR_RETURN(ValueId o, project(a, p + "attn_output.weight", n + "attn_out"));
    BITNET_ASSIGN_OR_RETURN(ValueId ffn_in, b_.add(x, o, n + "ffn_inp"));

    // Feed-forward block.
    BITNET_ASSIGN_OR_RETURN(ValueId f, norm(ffn_in, p + "ffn_norm.weight", n + "ffn_norm"));
    BITNET_ASSIGN_OR_RETURN(ValueId gate, project(f, p + "ffn_gate.weight", n + "gate"));
    BITNET_ASSIGN_OR_RETURN(ValueId up, project(f, p + "ffn_up.weight", n + "up"));
    ValueId act;
    if (c_.arch->ffn_activation == FfnActivation::kSilu) {
      BITNET_ASSIGN_OR_RETURN(act, b_.silu(gate, n + "gate.silu"));
    } else {
      BITNET_ASSIGN_OR_RETURN(act, b_.relu2(gate, n + "gate.relu2"));
    }
    BITNET_ASSIGN_OR_RETURN(ValueId m, b_.mul(act, up, n + "ffn_mul"));
    if (sub_norms) {
      BITNET_ASSIGN_OR_RETURN(m, norm(m, p + "ffn_sub_norm.weight", n + "ffn_sub_norm"));
    }
    BITNET_ASSIGN_OR_RETURN(ValueId down, project(m, p + "ffn_down.weight", n + "down"));
    return b_.add(ffn_in, down, n + "out");
  }

  // A tensor the graph does not use would be silently ignored: refuse instead, except
  // for the ones the reference itself loads and ignores.
  Status check_unused_tensors() {
    for (const auto& t : file_.tensors()) {
      if (used_.count(t.name)) continue;
      if (t.name == "output.weight" && !c_.arch->output_tensor_used) continue;  // bitnet-25/b1.58 ignore it
      if (t.name == "rope_freqs.weight" || t.name.ends_with(".bias")) {
        return make_error("tensor '{}' is not supported by this engine (it would change the model's output)", t.name);
      }
      if (t.name.starts_with("blk.")) {
        const auto dot = t.name.find('.', 4);
        const std::string idx = t.name.substr(4, dot == std::string::npos ? std::string::npos : dot - 4);
        char* end = nullptr;
        const unsigned long layer = std::strtoul(idx.c_str(), &end, 10);
        if (end != nullptr && *end == '\0' && layer >= c_.n_layer) {
          return make_error("tensor '{}' belongs to layer {} but block_count is {}", t.name, layer, c_.n_layer);
        }
      }
      return make_error("tensor '{}' is not part of the {} graph; refusing to ignore it", t.name, c_.arch->name);
    }
    return Status::success();
  }

  const GgufFile& file_;
  const ModelConfig& c_;
  const LoweringOptions& options_;
  ir::Builder b_;
  std::map<std::string, ValueId> weights_;
  std::set<std::string> used_;
};

}  // namespace

std::optional<ir::DType> ir_dtype(GgmlType type) {
  auto dtype = ir::dtype_from_ggml(static_cast<uint32_t>(type));
  if (!dtype || !ir::is_weight_dtype(*dtype)) return std::nullopt;
  return dtype;
}

Expected<ir::Graph> lower_to_ir(const GgufFile& file, const ModelConfig& config, const LoweringOptions& options) {
  const std::string* name = file.get_string("general.name");
  ir::Graph graph(name ? *name : std::string(config.arch->name));
  graph.properties().emplace_back("arch", std::string(config.arch->name));
  graph.properties().emplace_back("logits", options.all_logits ? "all" : "last");
  Lowering lowering(file, config, options, graph);
  BITNET_RETURN_IF_ERROR(lowering.run());
  return graph;
}

Expected<ir::Graph> lower_to_ir(const GgufFile& file, const LoweringOptions& options) {
  BITNET_ASSIGN_OR_RETURN(ModelConfig config, read_model_config(file));
  return lower_to_ir(file, config, options);
}

}  // namespace bitnet::gguf
