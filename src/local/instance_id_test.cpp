#include "local/instance_id.hpp"

#include <gtest/gtest.h>

#include <set>

namespace asya::local {
namespace {

TEST(InstanceId, IsSixteenHexDigitsAndDiffersBetweenCalls) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string id = new_instance_id();
    ASSERT_EQ(id.size(), 16u) << id;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(InstanceId, OnlyTheAnswerCarryingTheExpectedIdIsFromOurProcess) {
  EXPECT_TRUE(answered_by_instance(R"({"status":"ready","instance":"ab12"})", "ab12"));
  // Another gateway on the same port (the second `asya up` of issue 19).
  EXPECT_FALSE(answered_by_instance(R"({"status":"ready","instance":"ffff"})", "ab12"));
  // Something that is no Asya gateway, or one started without an id.
  EXPECT_FALSE(answered_by_instance(R"({"status":"ready"})", "ab12"));
  EXPECT_FALSE(answered_by_instance("OK", "ab12"));
  EXPECT_FALSE(answered_by_instance(R"({"instance":7})", "ab12"));
  EXPECT_EQ(answer_instance(R"({"status":"ready","instance":"ffff"})"), "ffff");
  EXPECT_EQ(answer_instance("<html>"), "");
}

TEST(InstanceId, AnEmptyExpectedIdAcceptsAnyAnswer) {
  EXPECT_TRUE(answered_by_instance(R"({"status":"ready"})", ""));
}

}  // namespace
}  // namespace asya::local
