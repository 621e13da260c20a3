#include "common/yaml_limits.hpp"

#include <gtest/gtest.h>

#include <string>

namespace asya {
namespace {

// "Billion laughs": `levels` anchors, each a list of `width` aliases of the one before.
std::string alias_bomb(int levels, int width) {
  std::string text = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int level = 1; level < levels; ++level) {
    std::string name = "l", alias = "*l";
    name.append(std::to_string(level));
    alias.append(std::to_string(level - 1));
    text.append(name).append(": &").append(name).append(" [");
    for (int i = 0; i < width; ++i) text.append(i ? ", " : "").append(alias);
    text.append("]\n");
  }
  return text;
}

std::string nested_lists(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') +
         std::string(static_cast<std::size_t>(depth), ']') + "\n";
}

TEST(YamlLimits, PlainTextAndModestAliasesPass) {
  EXPECT_FALSE(check_yaml_limits("a: 1\nb: [x, y, {c: d}]\n"));
  EXPECT_FALSE(check_yaml_limits("defaults: &d {timeout: 30}\none: *d\ntwo: *d\n"));
  EXPECT_FALSE(check_yaml_limits(""));
  EXPECT_FALSE(check_yaml_limits("---\na: 1\n---\nb: 2\n"));
  EXPECT_FALSE(check_yaml_limits(alias_bomb(3, 9)));  // 9 * 9 * 9 nodes: fine
}

TEST(YamlLimits, NestedAnchorsStopAtTheNodeLimitNamingTheAliasAndLine) {
  std::string bomb = alias_bomb(9, 9);  // ~400 bytes expanding to 9^9 = 387 million nodes
  ASSERT_LT(bomb.size(), 700u);
  auto error = check_yaml_limits(bomb);
  ASSERT_TRUE(error);
  EXPECT_NE(error->message.find("expand to more than 100000 nodes"), std::string::npos)
      << error->message;
  EXPECT_NE(error->message.find("at alias *l"), std::string::npos) << error->message;
  EXPECT_GT(error->line, 1);
  EXPECT_LE(error->line, 9);
}

TEST(YamlLimits, ExpandedBytesAreLimitedToo) {
  std::string big(1 << 20, 'x');  // 1 MiB scalar repeated 17 times: 17 MiB
  std::string text = "a: &a " + big + "\nb: [";
  for (int i = 0; i < 17; ++i) text += i ? ", *a" : "*a";
  text += "]\n";
  auto error = check_yaml_limits(text);
  ASSERT_TRUE(error);
  EXPECT_NE(error->message.find("bytes of text"), std::string::npos) << error->message;
  EXPECT_EQ(error->line, 2);
}

TEST(YamlLimits, AliasUsesAreCounted) {
  std::string text = "a: &a x\nb: [";
  for (int i = 0; i < 10'001; ++i) text += i ? ",*a" : "*a";
  text += "]\n";
  auto error = check_yaml_limits(text);
  ASSERT_TRUE(error);
  EXPECT_NE(error->message.find("more than 10000 YAML alias uses"), std::string::npos)
      << error->message;
}

TEST(YamlLimits, ALimitCountsAllDocumentsOfTheText) {
  YamlLimits limits;
  limits.max_alias_uses = 3;
  EXPECT_FALSE(check_yaml_limits("a: &a 1\nb: [*a, *a, *a]\n", limits));
  auto error = check_yaml_limits("a: &a 1\nb: [*a, *a]\n---\nc: &c 1\nd: [*c, *c]\n", limits);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->line, 5);
}

TEST(YamlLimits, AnAliasInsideItsOwnAnchorIsACycle) {
  auto error = check_yaml_limits("a: &a [x, *a]\n");
  ASSERT_TRUE(error);
  EXPECT_NE(error->message.find("alias *a is used inside the node it names"), std::string::npos)
      << error->message;
  EXPECT_EQ(error->line, 1);
}

TEST(YamlLimits, DeepNestingNamesDepthAndLimit) {
  EXPECT_FALSE(check_yaml_limits(nested_lists(100)));
  auto error = check_yaml_limits("a: 1\nb: " + nested_lists(5000));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->message,
            "nested too deeply: depth 101 exceeds the limit of 100 mappings and lists inside "
            "each other");
  EXPECT_EQ(error->line, 2);
  std::string block;  // block style counts the same way
  for (int i = 0; i < 101; ++i) block += std::string(static_cast<std::size_t>(i), ' ') + "k:\n";
  error = check_yaml_limits(block);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->line, 101);
}

TEST(YamlLimits, SyntaxErrorsAreLeftToTheReader) {
  EXPECT_FALSE(check_yaml_limits("a: [unclosed\n"));
  EXPECT_FALSE(check_yaml_limits("a: *undefined\n"));
}

TEST(YamlLimits, AStrayFlowIndicatorThatYamlCppLoopsOnIsAnError) {
  // yaml-cpp 0.7 starts empty documents at the "," forever (LoadAll never returns).
  auto error = check_yaml_limits("a: {b: 1}\n---\n# comment\n   ,1 d: 30}\ne: 3\n");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->message, "invalid YAML: unexpected \",\" where a document should start");
  EXPECT_EQ(error->line, 4);
  error = check_yaml_limits("- a\n,\n");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->line, 2);
}

}  // namespace
}  // namespace asya
