#include "runtime/string_index.h"

#include <gtest/gtest.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace bitnet::runtime {
namespace {

TEST(StringIndex, FindsEveryKeyAndNothingElse) {
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i)
    keys.push_back(i % 3 == 0 ? "w" + std::to_string(i) : std::string(i % 40, 'a' + i % 26));
  StringIndex index;  // from empty: grows as keys come
  std::unordered_map<std::string, int32_t> first;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto it = first.find(keys[i]);
    const int32_t expected = it == first.end() ? -1 : it->second;
    EXPECT_EQ(index.insert(keys, static_cast<int32_t>(i)), expected) << i;
    first.emplace(keys[i], static_cast<int32_t>(i));
  }
  EXPECT_EQ(index.size(), first.size());
  for (const auto& [key, id] : first) EXPECT_EQ(index.find(keys, key), id) << key;
  EXPECT_EQ(index.find(keys, "w1"), -1);  // 1 % 3 != 0: never a key
  EXPECT_EQ(index.find(keys, std::string(41, 'a')), -1);
}

TEST(StringIndex, SizedUpFrontAndEmpty) {
  const std::vector<std::string> keys = {"", "x", "xy", "y"};
  StringIndex index(keys.size());
  for (int32_t i = 0; i < 4; ++i) EXPECT_EQ(index.insert(keys, i), -1);
  EXPECT_EQ(index.find(keys, ""), 0);
  EXPECT_EQ(index.find(keys, "xy"), 2);
  EXPECT_EQ(index.find(keys, "yx"), -1);
  EXPECT_EQ(StringIndex().find(keys, "x"), -1);
}

// insert_all is insert() in order: same positions found, repeats reported in order.
TEST(StringIndex, InsertAllMatchesInsertingOneByOne) {
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; ++i) keys.push_back("k" + std::to_string(i * 7919 % 1000));
  StringIndex one_by_one, all;
  std::vector<std::pair<int32_t, int32_t>> expected, repeats;
  for (int32_t i = 0; i < 3000; ++i) {
    if (const int32_t first = one_by_one.insert(keys, i); first >= 0) expected.emplace_back(first, i);
  }
  all.insert(keys, 5);  // something already there: keys[5] is found again at its first repeat
  all.insert_all(keys, &repeats);
  ASSERT_FALSE(repeats.empty());
  EXPECT_EQ(repeats.front(), std::make_pair(5, 5));
  repeats.erase(repeats.begin());
  // keys[5]'s later repeats name 5 in both.
  EXPECT_EQ(repeats, expected);
  EXPECT_EQ(all.size(), one_by_one.size());
  for (const std::string& k : keys) EXPECT_EQ(all.find(keys, k), one_by_one.find(keys, k)) << k;
}

}  // namespace
}  // namespace bitnet::runtime
