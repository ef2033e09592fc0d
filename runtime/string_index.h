// A fixed list of strings, searchable by text: open addressing over the strings' positions,
// with no allocation per key. A 128K-token vocabulary indexes in a few milliseconds where a
// node-based std::unordered_map<std::string, int> took ~25 ms (most of a warm start).
// The index holds positions only; the strings stay with the caller, who passes the same list
// to every call (so copying or moving the owner never leaves the index pointing elsewhere).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bitnet::runtime {

class StringIndex {
 public:
  StringIndex() = default;
  // Room for `count` keys without growing (the table stays at most half full).
  explicit StringIndex(size_t count);

  // Indexes keys[id] unless an equal string is indexed already: returns that string's position
  // then (and leaves the index unchanged), -1 when keys[id] was added.
  int32_t insert(const std::vector<std::string>& keys, int32_t id);
  // insert() of keys[0], keys[1], ... in order, prefetching the slots ahead (a large table
  // misses the cache on nearly every insert). `repeats` gets (first position, later position)
  // for each key that was there already; may be null.
  void insert_all(const std::vector<std::string>& keys, std::vector<std::pair<int32_t, int32_t>>* repeats);
  // The position of `text` among the indexed keys, -1 when absent.
  int32_t find(const std::vector<std::string>& keys, std::string_view text) const;
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint32_t tag = 0;  // the hash's upper half: most mismatches skip the string compare
    int32_t id = -1;   // -1: empty
  };
  void grow(const std::vector<std::string>& keys);
  int32_t insert_hashed(const std::vector<std::string>& keys, int32_t id, uint64_t hash);

  std::vector<Slot> slots_;  // a power of two in size, or empty
  size_t size_ = 0;
};

}  // namespace bitnet::runtime
