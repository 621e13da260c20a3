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

// The YAML -> JSON direction alone (numbers at the 64-bit limits, aliases, errors) is tested in
// src/common/yaml_json_test.cpp.

TEST(YamlJson, StreamSeparatesDocuments) {
  std::vector<json::object> docs{json::object{{"kind", "A"}}, json::object{{"kind", "B"}}};
  EXPECT_EQ(to_yaml_stream(docs), "---\nkind: A\n---\nkind: B\n");
}

}  // namespace
}  // namespace asya::k8s
