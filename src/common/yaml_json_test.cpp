#include "common/yaml_json.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>

namespace asya {
namespace {
namespace json = boost::json;

json::value converted(const std::string& text) {
  auto v = from_yaml(text, "t.yaml");
  EXPECT_TRUE(v.ok()) << v.error().message;
  return v.ok() ? *v : json::value();
}

std::string error_of(const std::string& text) {
  auto v = from_yaml(text, "t.yaml");
  EXPECT_FALSE(v.ok()) << json::serialize(*v);
  return v.ok() ? "" : v.error().message;
}

TEST(YamlJson, IntegersAtTheInt64LimitsStayInt64) {
  auto v = converted("max: 9223372036854775807\nmin: -9223372036854775808\nplus: +7\nzero: 007\n");
  EXPECT_TRUE(v.at("max").is_int64());
  EXPECT_EQ(v.at("max").as_int64(), INT64_MAX);
  EXPECT_TRUE(v.at("min").is_int64());
  EXPECT_EQ(v.at("min").as_int64(), INT64_MIN);
  EXPECT_EQ(v.at("plus"), json::value(7));
  EXPECT_EQ(v.at("zero"), json::value(7));
}

TEST(YamlJson, IntegersAboveInt64UpToUint64MaxAreUint64NotDoubles) {
  auto v = converted("a: 9223372036854775808\nb: 18446744073709551615\n");
  ASSERT_TRUE(v.at("a").is_uint64());
  EXPECT_EQ(v.at("a").as_uint64(), 9223372036854775808ull);
  ASSERT_TRUE(v.at("b").is_uint64());
  EXPECT_EQ(v.at("b").as_uint64(), UINT64_MAX);
}

TEST(YamlJson, IntegersBeyondEvery64BitTypeAreRefusedNamingFileLineAndField) {
  EXPECT_EQ(error_of("spec:\n  replicas: 18446744073709551616\n"),
            "t.yaml:2: spec.replicas: the integer 18446744073709551616 is outside the 64-bit "
            "range -9223372036854775808..18446744073709551615; quote it to keep it as text");
  EXPECT_NE(error_of("list:\n  - 1\n  - -9223372036854775809\n")
                .find("t.yaml:3: list[1]: the integer -9223372036854775809 is outside"),
            std::string::npos);
}

TEST(YamlJson, QuotedNumbersBooleansAndNullsStayStrings) {
  auto v = converted(
      "a: '5'\nb: \"9223372036854775808000\"\nc: \"true\"\nd: 'null'\ne: !!str 1.5\nf: ! 7\n"
      "g: ''\n");
  EXPECT_EQ(v, json::parse(R"({"a": "5", "b": "9223372036854775808000", "c": "true",
                               "d": "null", "e": "1.5", "f": "7", "g": ""})"));
}

TEST(YamlJson, PlainScalarsFollowTheCoreSchema) {
  auto v = converted(
      "t: true\nT: True\nf: FALSE\nyes: yes\nn1: ~\nn2: null\nn3:\nfl: 1.5\nexp: 1.5e3\n"
      "dot: .5\nneg: -2.0\nword: hello world\ninf: .inf\n");
  EXPECT_EQ(v, json::parse(R"({"t": true, "T": true, "f": false, "yes": "yes", "n1": null,
                               "n2": null, "n3": null, "fl": 1.5, "exp": 1500.0, "dot": 0.5,
                               "neg": -2.0, "word": "hello world", "inf": ".inf"})"));
  EXPECT_TRUE(v.at("neg").is_double());
}

TEST(YamlJson, AFloatNoDoubleHoldsIsRefusedNotKeptAsText) {
  EXPECT_EQ(error_of("a: 1e999\n"),
            "t.yaml:1: a: the number 1e999 is too large or too close to zero for a double; "
            "quote it to keep it as text");
  EXPECT_NE(error_of("b: -1e999\n").find("t.yaml:1: b: the number -1e999"), std::string::npos);
}

TEST(YamlJson, AnchorsAndAliasesAreExpandedEachUse) {
  auto v = converted("base: &b {t: 30, tags: [x]}\none: *b\ntwo: *b\nn: &n 5\nm: *n\n");
  EXPECT_EQ(v, json::parse(R"({"base": {"t": 30, "tags": ["x"]}, "one": {"t": 30, "tags": ["x"]},
                               "two": {"t": 30, "tags": ["x"]}, "n": 5, "m": 5})"));
}

TEST(YamlJson, AliasBombAndCycleAreRefusedBeforeExpansion) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char level = 'b'; level <= 'j'; ++level) {
    bomb += std::string(1, level) + ": &" + level + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + char(level - 1);
    bomb += "]\n";
  }
  auto v = from_yaml(bomb, "routes.yaml");  // 10^10 nodes if expanded
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("routes.yaml:"), std::string::npos) << v.error().message;
  EXPECT_NE(v.error().message.find("expand to more than 100000 nodes"), std::string::npos)
      << v.error().message;
  v = from_yaml("a: &a {b: *a}\n", "cycle.yaml");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("cycle.yaml:1: alias *a is used inside the node it names"),
            std::string::npos)
      << v.error().message;
}

TEST(YamlJson, DeepNestingSaysSoWithDepthAndLimit) {
  auto v = from_yaml("a:\n  b: " + std::string(500, '[') + std::string(500, ']') + "\n", "x.yaml");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(
      v.error().message.find("x.yaml:2: nested too deeply: depth 101 exceeds the limit of 100"),
      std::string::npos)
      << v.error().message;
}

TEST(YamlJson, SyntaxErrorNamesFileAndLine) {
  auto v = from_yaml("a: 1\nb: [1, 2\n", "routes.yaml");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("routes.yaml:"), std::string::npos) << v.error().message;
  EXPECT_NE(v.error().message.find(": invalid YAML: "), std::string::npos) << v.error().message;
}

TEST(YamlJson, ANonScalarMappingKeyIsRefused) {
  EXPECT_EQ(error_of("outer:\n  ? [a, b]\n  : 1\n"),
            "t.yaml:2: outer: a mapping key must be a scalar (a name), not a list or a mapping");
}

TEST(YamlJson, ANodeOfALoadedTreeIsNamedByTheCallersField) {
  YAML::Node root = YAML::Load("tools:\n  - metadata:\n      big: 99999999999999999999\n");
  auto v = from_yaml_node(root["tools"][0]["metadata"], "routes.yaml", "tools[ask].metadata");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().message.substr(0, 41), "routes.yaml:3: tools[ask].metadata.big: t");
  auto ok = from_yaml_node(YAML::Load("[1, x]"), "f", "list");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(*ok, json::parse(R"([1, "x"])"));
}

}  // namespace
}  // namespace asya
