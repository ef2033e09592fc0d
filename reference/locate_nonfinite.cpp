// Locating the first non-finite value (see locate_nonfinite.h).
#include "reference/locate_nonfinite.h"

#include "frontend_gguf/compat.h"
#include "frontend_gguf/lowering.h"
#include "reference/interpreter.h"
#include "runtime/nonfinite.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <thread>

namespace bitnet::reference {
namespace {

// "blk12.ffn_norm" -> 12
std::optional<int64_t> layer_of(std::string_view value_name) {
  if (!value_name.starts_with("blk")) return std::nullopt;
  int64_t layer = 0;
  const char* begin = value_name.data() + 3;
  const char* end = value_name.data() + value_name.size();
  auto [ptr, ec] = std::from_chars(begin, end, layer);
  if (ec != std::errc() || ptr == begin || ptr == end || *ptr != '.') return std::nullopt;
  return layer;
}

}  // namespace

std::string locate_first_non_finite(const runtime::Model& model, std::span<const int32_t> tokens,
                                    std::string_view backend) {
  const std::string plain = "logits are not finite (NaN or infinity)";
  if (tokens.empty()) return plain;
  auto graph = gguf::lower_to_ir(model.file(), model.config(), {.all_logits = false});
  if (!graph.ok())
    return fmt::format("{}; the reference graph to locate them failed: {}", plain, graph.error().message);
  const int threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  auto interp =
      Interpreter::create(*graph, model.file(), {.n_ctx = static_cast<int64_t>(tokens.size()), .threads = threads});
  if (!interp.ok())
    return fmt::format("{}; the reference interpreter could not start: {}", plain, interp.error().message);
  std::optional<size_t> bad_node;
  size_t bad_index = 0;
  auto status = (*interp)->run_observed(tokens, [&](size_t node, std::span<const float> values) {
    if (auto i = runtime::first_non_finite(values)) {
      bad_node = node;
      bad_index = *i;
      return false;
    }
    return true;
  });
  if (!status.ok()) return fmt::format("{}; the reference interpreter failed: {}", plain, status.error().message);
  if (!bad_node) {
    return fmt::format(
        "{} from the {} backend, but the reference interpreter computes finite values for the same {} "
        "tokens run as one batch (compare with --backend interp)",
        plain, backend.empty() ? "session's" : backend, tokens.size());
  }
  const ir::Node& node = graph->nodes()[*bad_node];
  const ir::Value& result = graph->value(node.result);
  std::string what = fmt::format("%{} ({}", result.name, ir::op_name(node.op));
  std::string weight_note;
  for (ir::ValueId operand : node.operands) {
    const ir::Node& def = graph->def(operand);
    if (def.op != ir::OpKind::Weight) continue;
    const std::string& tensor = def.attr_string("tensor");
    what += fmt::format(" with {}", tensor);
    if (const gguf::TensorInfo* t = model.file().find_tensor(tensor)) {
      if (auto at = gguf::first_non_finite_element(*t)) {
        weight_note = fmt::format(
            "; the weight '{}' itself holds a non-finite value at element {} (run `bitnet "
            "compat-check` on the model)",
            tensor, *at);
      }
    }
  }
  what += ")";
  const int64_t cols = result.type.shape.empty() ? 1 : std::max<int64_t>(1, result.type.shape.back().size);
  const auto token = static_cast<int64_t>(bad_index) / cols;
  std::string where;
  if (auto layer = layer_of(result.name)) {
    where = fmt::format("of layer {} (blk.{})", *layer, *layer);
  } else {
    where = "outside the layers";
  }
  return fmt::format("logits are not finite: the first non-finite value appears in {} {}, at token {} of {}{}", what,
                     where, token, tokens.size(), weight_note);
}

void install_nonfinite_locator(runtime::Model& model) {
  const runtime::Model* m = &model;  // the locator is owned by the model
  model.set_nonfinite_locator([m](std::span<const int32_t> tokens, std::string_view backend) {
    return locate_first_non_finite(*m, tokens, backend);
  });
}

}  // namespace bitnet::reference
