#include "local/process.hpp"

#include <gtest/gtest.h>

#include <map>

namespace asya::local {
namespace {

Result<std::string> expand(std::string_view text) {
  static const std::map<std::string, std::string, std::less<>> vars{{"BUILD", "/b"}, {"E", ""}};
  return expand_references(text, [](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

TEST(ExpandReferences, ReplacesDefinedVariables) {
  EXPECT_EQ(*expand("$(BUILD)/examples/cpp-echo/asya-cpp-echo"),
            "/b/examples/cpp-echo/asya-cpp-echo");
  EXPECT_EQ(*expand("a$(E)b$(BUILD)"), "ab/b");
}

TEST(ExpandReferences, KeepsEverythingElse) {
  EXPECT_EQ(*expand("plain"), "plain");
  EXPECT_EQ(*expand("$HOME and $ and $(unclosed"), "$HOME and $ and $(unclosed");
  EXPECT_EQ(*expand("$$(BUILD) costs $$5"), "$(BUILD) costs $5");
}

TEST(ExpandReferences, UnsetVariableIsAnErrorNamingIt) {
  auto r = expand("$(NOPE)/bin");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "$(NOPE) in \"$(NOPE)/bin\" is not set: define NOPE in the container's env or in the "
            "environment of asya up (write $$(NOPE) for a literal $(NOPE))");
}

}  // namespace
}  // namespace asya::local
