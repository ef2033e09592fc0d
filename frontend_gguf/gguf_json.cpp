// JSON renderings for inspect and reports (see gguf_json.h).
#include "frontend_gguf/gguf_json.h"

#include "frontend_gguf/model_config.h"
#include "frontend_gguf/tokenizer_data.h"

#include <cmath>
#include <map>

namespace bitnet::gguf {
namespace {

using nlohmann::json;

json float_json(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

// Strings may hold arbitrary bytes; nlohmann throws on invalid UTF-8 at dump time, so
// invalid sequences are replaced here with U+FFFD.
std::string valid_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok && len == 2) ok = c >= 0xc2;
    if (ok && len == 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
    }
    if (ok && len == 4) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = c <= 0xf4 && !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

json array_item(const Array& a, size_t i, size_t max_items) {
  switch (a.elem_type) {
    case ValueType::String: return valid_utf8(a.strings[i]);
    case ValueType::Array: return value_to_json(Value(a.arrays[i]), max_items);
    case ValueType::Bool: return a.scalar_at<uint8_t>(i) != 0;
    case ValueType::F32: case ValueType::F64: return float_json(*a.float_at(i));
    case ValueType::U64: return a.scalar_at<uint64_t>(i);
    default: return *a.int_at(i);
  }
}

}  // namespace

json value_to_json(const Value& value, size_t max_items) {
  return std::visit(
      [&](const auto& v) -> json {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return valid_utf8(v);
        } else if constexpr (std::is_same_v<T, Array>) {
          const uint64_t n = v.size();
          json items = json::array();
          for (uint64_t i = 0; i < n && i < max_items; ++i) items.push_back(array_item(v, i, max_items));
          if (n <= max_items) return items;
          return json{{"elem_type", value_type_name(v.elem_type)}, {"count", n}, {"head", items}};
        } else if constexpr (std::is_floating_point_v<T>) {
          return float_json(v);
        } else {
          return v;
        }
      },
      value.storage());
}

json inspect_model(const GgufFile& file) {
  json doc;
  doc["schema_version"] = kInspectSchemaVersion;
  doc["file"] = {{"path", file.path()},          {"size", file.file_size()},
                 {"gguf_version", file.version()}, {"alignment", file.alignment()},
                 {"data_offset", file.data_offset()}, {"n_metadata", file.metadata().size()},
                 {"n_tensors", file.tensors().size()}};
  doc["architecture"] = file.architecture();
  const std::string* name = file.get_string("general.name");
  doc["name"] = name ? json(valid_utf8(*name)) : json(nullptr);

  // Hyper-parameters: the configuration the engine derives when the model is usable,
  // otherwise whatever {arch}.* keys are present.
  Findings findings;
  auto config = analyze_model(file, findings);
  json hp = json::object();
  if (config) {
    hp = {{"n_vocab", config->n_vocab},       {"n_ctx_train", config->n_ctx_train},
          {"n_embd", config->n_embd},         {"n_layer", config->n_layer},
          {"n_ff", config->n_ff},             {"n_head", config->n_head},
          {"n_head_kv", config->n_head_kv},   {"head_dim", config->head_dim},
          {"n_embd_kv", config->n_embd_kv},   {"n_rot", config->n_rot},
          {"rms_eps", config->rms_eps},       {"rope_freq_base", config->rope_freq_base},
          {"rope_freq_scale", config->rope_freq_scale},
          {"ffn_activation", config->arch->ffn_activation == FfnActivation::kSilu ? "silu" : "relu2"},
          {"rope_style", config->arch->rope_style == RopeStyle::kNeox ? "neox" : "normal"},
          {"tied_output", !config->separate_output}};
  } else {
    const std::string prefix = file.architecture() + ".";
    for (const auto& kv : file.metadata()) {
      if (!file.architecture().empty() && kv.key.rfind(prefix, 0) == 0) {
        hp[kv.key.substr(prefix.size())] = value_to_json(kv.value);
      }
    }
  }
  doc["hparams"] = hp;
  doc["supported"] = config.has_value();
  doc["problems"] = json::array();
  for (const auto& f : findings.items) {
    if (f.severity == Severity::kError) doc["problems"].push_back(f.message);
  }

  const TokenizerSummary tok = summarize_tokenizer(file);
  auto opt = [](const auto& o) { return o ? json(*o) : json(nullptr); };
  if (tok.present) {
    doc["tokenizer"] = {{"model", tok.model},
                        {"pre", tok.pre ? json(valid_utf8(*tok.pre)) : json(nullptr)},
                        {"n_tokens", tok.n_tokens},
                        {"n_merges", tok.n_merges},
                        {"bos_id", opt(tok.special.bos)},
                        {"eos_id", opt(tok.special.eos)},
                        {"unk_id", opt(tok.special.unk)},
                        {"pad_id", opt(tok.special.pad)},
                        {"sep_id", opt(tok.special.sep)},
                        {"eot_id", opt(tok.special.eot)},
                        {"add_bos", opt(tok.add_bos)},
                        {"add_eos", opt(tok.add_eos)},
                        {"has_chat_template", tok.has_chat_template}};
  } else {
    doc["tokenizer"] = nullptr;
  }

  json metadata = json::array();
  for (const auto& kv : file.metadata()) {
    metadata.push_back({{"key", valid_utf8(kv.key)},
                        {"type", value_type_name(kv.value.type())},
                        {"value", value_to_json(kv.value)}});
  }
  doc["metadata"] = metadata;

  json tensors = json::array();
  struct Totals {
    uint64_t count = 0, elements = 0, bytes = 0;
  };
  std::map<std::string, Totals> by_type;
  uint64_t params = 0, tensor_bytes = 0;
  for (const auto& t : file.tensors()) {
    const uint64_t n = t.element_count();
    tensors.push_back({{"name", valid_utf8(t.name)},
                       {"type", ggml_type_name(t.type)},
                       {"shape", t.ne},
                       {"elements", n},
                       {"bytes", t.nbytes},
                       {"offset", file.data_offset() + t.offset}});
    auto& tot = by_type[std::string(ggml_type_name(t.type))];
    tot.count += 1;
    tot.elements += n;
    tot.bytes += t.nbytes;
    params += n;
    tensor_bytes += t.nbytes;
  }
  doc["tensors"] = tensors;
  json totals = json::array();
  for (const auto& [type, tot] : by_type) {
    totals.push_back({{"type", type}, {"tensors", tot.count}, {"elements", tot.elements}, {"bytes", tot.bytes}});
  }
  doc["totals_by_type"] = totals;
  doc["parameter_count"] = params;
  doc["tensor_bytes"] = tensor_bytes;
  return doc;
}

}  // namespace bitnet::gguf
