#include "common/random_id.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <thread>
#include <vector>

namespace asya {
namespace {

TEST(RandomId, UuidIsVersion4WithTheRfcVariantInLowercase) {
  static const std::regex kUuid(
      "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  for (int i = 0; i < 1000; ++i) {
    std::string id = new_uuid();
    ASSERT_TRUE(std::regex_match(id, kUuid)) << id;
  }
}

TEST(RandomId, UuidsFromSeveralThreadsAreDistinct) {
  std::vector<std::vector<std::string>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& ids : per_thread) {
    threads.emplace_back([&ids] {
      for (int i = 0; i < 2000; ++i) ids.push_back(new_uuid());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& ids : per_thread) all.insert(ids.begin(), ids.end());
  EXPECT_EQ(all.size(), 8000u);
}

TEST(RandomId, RandomHexHasTheAskedLengthAndOnlyHexDigits) {
  for (std::size_t digits : {0u, 1u, 16u, 17u, 32u, 100u}) {
    std::string hex = random_hex(digits);
    EXPECT_EQ(hex.size(), digits);
    EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << hex;
  }
}

TEST(RandomId, EveryDigitOfRandomHexVariesOddLengthsIncluded) {
  // Each position takes many values over 200 draws (a digit fixed by the encoding would not).
  for (std::size_t digits : {1u, 15u, 16u, 17u, 33u}) {
    std::vector<std::set<char>> seen(digits);
    for (int draw = 0; draw < 200; ++draw) {
      const std::string hex = random_hex(digits);
      for (std::size_t i = 0; i < digits; ++i) seen[i].insert(hex[i]);
    }
    for (std::size_t i = 0; i < digits; ++i)
      EXPECT_GE(seen[i].size(), 8u) << "digit " << i << " of " << digits;
  }
}

}  // namespace
}  // namespace asya
