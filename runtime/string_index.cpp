#include "runtime/string_index.h"

#include <bit>
#include <functional>

namespace bitnet::runtime {
namespace {

uint64_t hash_of(std::string_view s) {
  return std::hash<std::string_view>{}(s);
}

size_t table_size(size_t count) {
  return std::bit_ceil(std::max<size_t>(16, count * 2));
}

}  // namespace

StringIndex::StringIndex(size_t count) : slots_(table_size(count)) {}

int32_t StringIndex::insert(const std::vector<std::string>& keys, int32_t id) {
  return insert_hashed(keys, id, hash_of(keys[static_cast<size_t>(id)]));
}

void StringIndex::insert_all(const std::vector<std::string>& keys, std::vector<std::pair<int32_t, int32_t>>* repeats) {
  if ((size_ + keys.size()) * 2 > slots_.size()) {
    StringIndex bigger(size_ + keys.size());
    for (const Slot& s : slots_) {
      if (s.id >= 0) bigger.insert(keys, s.id);
    }
    *this = std::move(bigger);
  }
  std::vector<uint64_t> hashes(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) hashes[i] = hash_of(keys[i]);
  constexpr size_t kAhead = 16;
  const size_t mask = slots_.size() - 1;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i + kAhead < keys.size()) __builtin_prefetch(&slots_[hashes[i + kAhead] & mask]);
    const int32_t first = insert_hashed(keys, static_cast<int32_t>(i), hashes[i]);
    if (first >= 0 && repeats != nullptr) repeats->emplace_back(first, static_cast<int32_t>(i));
  }
}

int32_t StringIndex::insert_hashed(const std::vector<std::string>& keys, int32_t id, uint64_t h) {
  if ((size_ + 1) * 2 > slots_.size()) grow(keys);
  const std::string_view key = keys[static_cast<size_t>(id)];
  const auto tag = static_cast<uint32_t>(h >> 32);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.id < 0) {
      s = {tag, id};
      ++size_;
      return -1;
    }
    if (s.tag == tag && keys[static_cast<size_t>(s.id)] == key) return s.id;
  }
}

int32_t StringIndex::find(const std::vector<std::string>& keys, std::string_view text) const {
  if (slots_.empty()) return -1;
  const uint64_t h = hash_of(text);
  const auto tag = static_cast<uint32_t>(h >> 32);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.tag == tag && keys[static_cast<size_t>(s.id)] == text) return s.id;
  }
}

void StringIndex::grow(const std::vector<std::string>& keys) {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(table_size(std::max<size_t>(size_ + 1, old.size())), Slot{});
  size_ = 0;
  for (const Slot& s : old) {
    if (s.id >= 0) insert(keys, s.id);
  }
}

}  // namespace bitnet::runtime
