// Writes a seed corpus for fuzz_gguf_reader into DIR: small valid GGUF files that
// cover every metadata value type, nested arrays, several tensor types and a
// complete (tiny) bitnet-b1.58 model.
#include "frontend_gguf/gguf_writer.h"

#include <fmt/format.h>

#include <cstdio>
#include <random>

using namespace bitnet::gguf;

namespace {

int write(const GgufWriter& w, const std::string& dir, const std::string& name) {
  auto s = w.write_file_atomic(dir + "/" + name);
  if (!s.ok()) {
    fmt::print(stderr, "make_gguf_seeds: {}\n", s.error().message);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: make_gguf_seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  int failures = 0;

  GgufWriter values;
  values.set("u8", uint8_t{1});
  values.set("i8", int8_t{-1});
  values.set("u16", uint16_t{2});
  values.set("i16", int16_t{-2});
  values.set("u32", uint32_t{3});
  values.set("i32", int32_t{-3});
  values.set("f32", 0.5f);
  values.set("bool", true);
  values.set("str", std::string("text"));
  values.set("u64", uint64_t{4});
  values.set("i64", int64_t{-4});
  values.set("f64", 0.25);
  Array nested;
  nested.elem_type = ValueType::Array;
  nested.arrays = {Array::of(std::vector<int32_t>{1, 2}), Array::of_strings({"a", "b"})};
  values.set("nested", nested);
  values.set("general.alignment", uint32_t{64});
  failures += write(values, dir, "values.gguf");

  // A tiny bitnet-b1.58 model: n_embd 128, n_ff 256, 1 layer, 8-token vocabulary.
  std::mt19937 rng(7);
  std::vector<std::vector<uint8_t>> buffers;
  buffers.reserve(16);
  GgufWriter model;
  const std::string p = "bitnet-b1.58.";
  model.set("general.architecture", std::string("bitnet-b1.58"));
  model.set(p + "context_length", uint32_t{64});
  model.set(p + "embedding_length", uint32_t{128});
  model.set(p + "block_count", uint32_t{1});
  model.set(p + "feed_forward_length", uint32_t{256});
  model.set(p + "attention.head_count", uint32_t{4});
  model.set(p + "attention.head_count_kv", uint32_t{2});
  model.set(p + "attention.layer_norm_rms_epsilon", 1e-5f);
  model.set("tokenizer.ggml.model", std::string("gpt2"));
  model.set("tokenizer.ggml.tokens", Array::of_strings({"a", "b", "c", "ab", "<s>", "</s>", "x", "y"}));
  model.set("tokenizer.ggml.merges", Array::of_strings({"a b"}));
  model.set("tokenizer.ggml.bos_token_id", uint32_t{4});
  model.set("tokenizer.ggml.eos_token_id", uint32_t{5});
  auto add = [&](const std::string& name, GgmlType type, std::vector<uint64_t> ne) {
    const uint64_t bytes = *ggml_tensor_nbytes(type, ne);
    buffers.emplace_back(bytes);
    for (auto& b : buffers.back()) b = static_cast<uint8_t>(type == GgmlType::I2_S ? 0x66 : rng());
    (void)model.add_tensor({name, type, ne, buffers.back()});
  };
  add("token_embd.weight", GgmlType::F16, {128, 8});
  add("output_norm.weight", GgmlType::F32, {128});
  add("blk.0.attn_norm.weight", GgmlType::F32, {128});
  add("blk.0.attn_q.weight", GgmlType::I2_S, {128, 128});
  add("blk.0.attn_k.weight", GgmlType::I2_S, {128, 64});
  add("blk.0.attn_v.weight", GgmlType::I2_S, {128, 64});
  add("blk.0.attn_output.weight", GgmlType::I2_S, {128, 128});
  add("blk.0.attn_sub_norm.weight", GgmlType::F32, {128});
  add("blk.0.ffn_norm.weight", GgmlType::F32, {128});
  add("blk.0.ffn_gate.weight", GgmlType::Q8_0, {128, 256});
  add("blk.0.ffn_up.weight", GgmlType::TQ2_0, {256, 128});
  add("blk.0.ffn_down.weight", GgmlType::I2_S, {256, 128});
  add("blk.0.ffn_sub_norm.weight", GgmlType::F32, {256});
  failures += write(model, dir, "bitnet-tiny.gguf");
  return failures == 0 ? 0 : 1;
}
