#include "k8s/yaml_json.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace asya::k8s {
namespace {
namespace json = boost::json;

json::value round_trip(const json::value& v) {
  auto parsed = from_yaml(to_yaml(v), "test");
  EXPECT_TRUE(parsed.ok()) << (parsed.ok() ? "" : parsed.error().message) << "\n" << to_yaml(v);
  return parsed.ok() ? *parsed : json::value();
}

TEST(YamlJson, RoundTripKeepsEveryScalarType) {
  const json::value v = json::parse(R"({
    "strings": ["5", "true", "yes", "no", "on", "null", "~", "", "1.0", "0x10", "12:30", "a: b",
                "#c", "- x", "x:", "asya/asya-sidecar:0.1.0", "http://asya-gateway:8080",
                ":9090", "quote \" and \\ back", "tab\tin", "ünïcode", "-1", ".inf", "@at"],
    "numbers": [0, -3, 42, 1.5, 1e20, -0.25],
    "bools": [true, false], "nothing": null,
    "empty_object": {}, "empty_array": [],
    "nested": [{"name": "a", "list": [[1, 2], []], "map": {"k": {"deep": "v"}}}, [{"x": 1}]],
    "text": "line one\n  indented\n\nlast\n",
    "text_no_newline": "a\nb",
    "text_two_newlines": "a\nb\n\n",
    "text_leading_space": "  starts indented\nnext\n",
    "text_trailing_space": "a \nb\n",
    "text_cr": "a\r\nb\n",
    "app.kubernetes.io/name": "key with dots and slash"
  })");
  EXPECT_EQ(round_trip(v), v);
}

TEST(YamlJson, PlainWhereSafeQuotedWhereAmbiguousLiteralBlocksForText) {
  const json::value v = json::parse(
      R"({"image": "asya/asya-sidecar:0.1.0", "value": "5", "flag": "true", "count": 5,
          "script": "print(1)\nprint(2)\n", "list": [{"name": "a", "value": "b"}]})");
  EXPECT_EQ(to_yaml(v),
            "image: asya/asya-sidecar:0.1.0\n"
            "value: \"5\"\n"
            "flag: \"true\"\n"
            "count: 5\n"
            "script: |\n"
            "  print(1)\n"
            "  print(2)\n"
            "list:\n"
            "- name: a\n"
            "  value: b\n");
}

TEST(YamlJson, QuotedScalarsAreStringsAndPlainOnesFollowTheCoreSchema) {
  auto v = from_yaml("a: '5'\nb: 5\nc: \"true\"\nd: true\ne: yes\nf: 1.5\ng: ~\nh: ! 7\n", "t");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, json::parse(R"({"a": "5", "b": 5, "c": "true", "d": true, "e": "yes",
                                "f": 1.5, "g": null, "h": "7"})"));
}

TEST(YamlJson, AFloatNoJsonNumberHoldsStaysText) {
  auto v = from_yaml("a: 1e999\nb: -1e999\nc: 1.5e3\n", "t");
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(*v, json::parse(R"({"a": "1e999", "b": "-1e999", "c": 1500.0})"));
}

TEST(YamlJson, SyntaxErrorNamesTheText) {
  auto v = from_yaml("a: [1, 2\n", "routes.yaml");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("routes.yaml: invalid YAML"), std::string::npos)
      << v.error().message;
}

TEST(YamlJson, AliasBombIsRefusedBeforeExpansionNamingTheTextAndLine) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char level = 'b'; level <= 'j'; ++level) {
    bomb += std::string(1, level) + ": &" + level + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + char(level - 1);
    bomb += "]\n";
  }
  auto v = from_yaml(bomb, "routes.yaml");  // 10^10 nodes if expanded
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("routes.yaml: line "), std::string::npos) << v.error().message;
  EXPECT_NE(v.error().message.find("expand to more than 100000 nodes"), std::string::npos)
      << v.error().message;
  // A cycle (an alias inside its own anchor) would never finish converting.
  v = from_yaml("a: &a {b: *a}\n", "cycle.yaml");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("cycle.yaml: line 1: alias *a is used inside the node it names"),
            std::string::npos)
      << v.error().message;
  // Modest aliases still convert, each use expanded.
  v = from_yaml("d: &d {t: 30}\none: *d\ntwo: *d\n", "ok.yaml");
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(*v, json::parse(R"({"d": {"t": 30}, "one": {"t": 30}, "two": {"t": 30}})"));
}

TEST(YamlJson, DeepNestingSaysSoWithDepthAndLimit) {
  auto v = from_yaml("a:\n  b: " + std::string(500, '[') + std::string(500, ']') + "\n", "x.yaml");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("x.yaml: line 2: nested too deeply: depth 101 exceeds the "
                                   "limit of 100"),
            std::string::npos)
      << v.error().message;
}

TEST(YamlJson, StreamSeparatesDocuments) {
  std::vector<json::object> docs{json::object{{"kind", "A"}}, json::object{{"kind", "B"}}};
  EXPECT_EQ(to_yaml_stream(docs), "---\nkind: A\n---\nkind: B\n");
}

}  // namespace
}  // namespace asya::k8s
