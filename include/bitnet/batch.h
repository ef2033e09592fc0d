// Tokens to decode in one call: each with its position, the sequences it belongs to (the first
// is the one whose context it sees; a prompt shared by several sequences is computed once) and
// whether its logits are wanted, as llama.cpp's llama_batch. A sequence's positions continue
// its cache: 0, 1, 2, ... The engine's runtime uses this same type (runtime/batch.h).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

namespace bitnet {

struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int64_t> pos;
  std::vector<std::vector<int32_t>> seq_ids;
  std::vector<uint8_t> logits;  // 1: this token's logits are wanted

  void add(int32_t token, int64_t position, std::span<const int32_t> seqs, bool want_logits) {
    tokens.push_back(token);
    pos.push_back(position);
    seq_ids.emplace_back(seqs.begin(), seqs.end());
    logits.push_back(want_logits ? 1 : 0);
  }
  void add(int32_t token, int64_t position, std::initializer_list<int32_t> seqs, bool want_logits) {
    add(token, position, std::span<const int32_t>(seqs.begin(), seqs.size()), want_logits);
  }
  void clear() {
    tokens.clear();
    pos.clear();
    seq_ids.clear();
    logits.clear();
  }
  size_t size() const { return tokens.size(); }
};

}  // namespace bitnet
