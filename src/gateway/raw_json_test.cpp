#include "gateway/raw_json.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace asya::gateway {
namespace {

namespace json = boost::json;

TEST(RawMembers, GivesEachValueAsSentNestedAndEscapedIncluded) {
  std::string text =
      R"( { "a" : 8.1 , "b":{"x":[1e30,"]}\"{"]},"c\u0041":"s\n","d":[ ],"e":-0.0,"f":true} )";
  auto members = raw_members(text);
  ASSERT_EQ(members.size(), 6u);
  EXPECT_EQ(members["a"], "8.1");
  EXPECT_EQ(members["b"], R"({"x":[1e30,"]}\"{"]})");
  EXPECT_EQ(members["cA"], R"("s\n")");
  EXPECT_EQ(members["d"], "[ ]");
  EXPECT_EQ(members["e"], "-0.0");
  EXPECT_EQ(members["f"], "true");
}

TEST(RawMembers, LastDuplicateWinsAsInTheParser) {
  auto members = raw_members(R"({"a":1,"a":2.50})");
  EXPECT_EQ(members["a"], "2.50");
  EXPECT_EQ(json::parse(R"({"a":1,"a":2.50})").as_object().at("a").as_double(), 2.5);
}

TEST(RawElements, GivesEachElementAsSentInOrder) {
  auto elements = raw_elements(R"( [ {"a": [1, "]"]}, 8.10 ,"x\"y", [] , null ] )");
  ASSERT_EQ(elements.size(), 5u);
  EXPECT_EQ(elements[0], R"({"a": [1, "]"]})");
  EXPECT_EQ(elements[1], "8.10");
  EXPECT_EQ(elements[2], R"("x\"y")");
  EXPECT_EQ(elements[3], "[]");
  EXPECT_EQ(elements[4], "null");
  EXPECT_TRUE(raw_elements("[]").empty());
  EXPECT_TRUE(raw_elements(R"({"a":1})").empty());
}

TEST(PayloadText, CopiesSentValuesByteForByteAndPrintsDefaultsAndNormalizedOnes) {
  std::string raw = R"({"rate":8.1,"big":123456789012345678901234567890,"n":4.0,"s":"\u00e9"})";
  json::object given = json::parse(raw).as_object();
  json::object validated = given;
  validated["n"] = 4;           // an integer written 4.0, normalized by validation
  validated["default"] = 0.25;  // a default
  EXPECT_EQ(payload_text(validated, given, raw),
            R"({"rate":8.1,"big":123456789012345678901234567890,"n":4,"s":"\u00e9",)"
            R"("default":0.25})");
}

TEST(PayloadText, NoArgumentsSentGivesDefaultsOnly) {
  json::object validated{{"count", 2}};
  EXPECT_EQ(payload_text(validated, json::object{}, ""), R"({"count":2})");
}

}  // namespace
}  // namespace asya::gateway
