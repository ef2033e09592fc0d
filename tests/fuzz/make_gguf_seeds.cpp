// Writes a seed corpus for fuzz_gguf_reader and fuzz_gguf_lowering into DIR: small valid GGUF
// files that cover every metadata value type, nested arrays, several tensor types and two
// complete (tiny) bitnet-b1.58 models.
#include "frontend_gguf/gguf_writer.h"

#include <fmt/format.h>

#include <cstdio>
#include <random>
#include <vector>

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

// A bitnet-b1.58 model of one layer with random weights (I2_S codes 1 and 2 only) whose
// tensors' buffers live as long as the writer (a static store: the tool writes a few files and exits).
GgufWriter tiny_bitnet(GgmlType gate, GgmlType up) {
  static std::vector<std::vector<uint8_t>> buffers;
  std::mt19937 rng(7);
  GgufWriter model;
  const std::string p = "bitnet-b1.58.";
  model.set("general.architecture", std::string("bitnet-b1.58"));
  model.set(p + "context_length", uint32_t{64});
  model.set(p + "embedding_length", uint32_t{256});
  model.set(p + "block_count", uint32_t{1});
  model.set(p + "feed_forward_length", uint32_t{512});
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
  add("token_embd.weight", GgmlType::F16, {256, 8});
  add("output_norm.weight", GgmlType::F32, {256});
  add("blk.0.attn_norm.weight", GgmlType::F32, {256});
  add("blk.0.attn_q.weight", GgmlType::I2_S, {256, 256});
  add("blk.0.attn_k.weight", GgmlType::I2_S, {256, 128});
  add("blk.0.attn_v.weight", GgmlType::I2_S, {256, 128});
  add("blk.0.attn_output.weight", GgmlType::I2_S, {256, 256});
  add("blk.0.attn_sub_norm.weight", GgmlType::F32, {256});
  add("blk.0.ffn_norm.weight", GgmlType::F32, {256});
  add("blk.0.ffn_gate.weight", gate, {256, 512});
  add("blk.0.ffn_up.weight", up, {256, 512});
  add("blk.0.ffn_down.weight", GgmlType::I2_S, {512, 256});
  add("blk.0.ffn_sub_norm.weight", GgmlType::F32, {512});
  return model;
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

  // Two tiny bitnet-b1.58 models (n_embd 256, n_ff 512, 1 layer, 8-token vocabulary) that load:
  // one with the FFN's gate and up as Q8_0 and TQ2_0 (more codecs for the reader), one all I2_S
  // (what the CUDA backend's planning takes, for fuzz_gguf_lowering).
  failures += write(tiny_bitnet(GgmlType::Q8_0, GgmlType::TQ2_0), dir, "bitnet-tiny.gguf");
  failures += write(tiny_bitnet(GgmlType::I2_S, GgmlType::I2_S), dir, "bitnet-tiny-i2s.gguf");
  return failures == 0 ? 0 : 1;
}
