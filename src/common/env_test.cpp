#include "common/env.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace std::chrono_literals;

namespace asya {
namespace {

TEST(ParseDuration, AcceptsGoStyleUnits) {
  EXPECT_EQ(*parse_duration("300ms"), 300ms);
  EXPECT_EQ(*parse_duration("30s"), 30s);
  EXPECT_EQ(*parse_duration("5m"), 5min);
  EXPECT_EQ(*parse_duration("1h"), 1h);
  EXPECT_EQ(*parse_duration("1m30s"), 90s);
  EXPECT_EQ(*parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(*parse_duration("0"), 0ms);
}

TEST(ParseDuration, RejectsMissingUnitAndGarbageNamingTheInput) {
  for (const char* bad : {"", "30", "5 minutes", "s", "1x", "-1s"}) {
    auto parsed = parse_duration(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.error().message.find(std::string("\"") + bad + "\""), std::string::npos);
  }
}

TEST(FormatDuration, RoundTrips) {
  for (std::chrono::milliseconds d :
       {std::chrono::milliseconds(90s), std::chrono::milliseconds(250ms),
        std::chrono::milliseconds(1h), std::chrono::milliseconds(0s)})
    EXPECT_EQ(*parse_duration(format_duration(d)), d);
}

TEST(ParseBytes, AcceptsBinaryAndDecimalUnits) {
  EXPECT_EQ(*parse_bytes("1024"), 1024u);
  EXPECT_EQ(*parse_bytes("64KiB"), 65536u);
  EXPECT_EQ(*parse_bytes("256MiB"), 256u << 20);
  EXPECT_EQ(*parse_bytes("1GB"), 1000000000u);
  EXPECT_FALSE(parse_bytes("12 parsecs").ok());
}

TEST(EnvReaders, InvalidValueNamesVariableValueAndAccepted) {
  setenv("ASYA_TEST_INT", "eleven", 1);
  try {
    env_int("ASYA_TEST_INT", 1, 1, 10);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "ASYA_TEST_INT=\"eleven\" is not valid: use an integer from 1 to 10");
  }
  setenv("ASYA_TEST_BOOL", "maybe", 1);
  EXPECT_THROW(env_bool("ASYA_TEST_BOOL", false), ConfigError);
  setenv("ASYA_TEST_DUR", "5 minutes", 1);
  EXPECT_THROW(env_duration("ASYA_TEST_DUR", 1s), ConfigError);
  unsetenv("ASYA_TEST_MISSING");
  EXPECT_EQ(env_duration("ASYA_TEST_MISSING", 7s), 7s);
  EXPECT_THROW(env_required("ASYA_TEST_MISSING"), ConfigError);
  setenv("ASYA_TEST_CHOICE", "kafka", 1);
  try {
    env_choice("ASYA_TEST_CHOICE", "sqlite", {"sqlite", "rabbitmq", "sqs"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "ASYA_TEST_CHOICE=\"kafka\" is not valid: use one of sqlite, rabbitmq, sqs");
  }
}

TEST(Environment, ReadsOnlyTheInjectedLookupWithTheSameRules) {
  Environment env(environment_with({{"ASYA_TEST_INT", "7"},
                                    {"ASYA_TEST_BOOL", "yes"},
                                    {"ASYA_TEST_EMPTY", ""},
                                    {"ASYA_TEST_BAD", "eleven"},
                                    {"ASYA_TEST_DUR", "1m30s"},
                                    {"ASYA_TEST_BYTES", "64KiB"}},
                                   nullptr));
  EXPECT_EQ(env.integer("ASYA_TEST_INT", 1, 1, 10), 7);
  EXPECT_TRUE(env.boolean("ASYA_TEST_BOOL", false));
  EXPECT_EQ(env.duration("ASYA_TEST_DUR", 1s), 90s);
  EXPECT_EQ(env.bytes("ASYA_TEST_BYTES", 1), 64u << 10);
  EXPECT_EQ(env.get("ASYA_TEST_EMPTY"), std::optional<std::string>(""));
  EXPECT_EQ(env.string("ASYA_TEST_EMPTY", "fallback"), "fallback");
  ASSERT_NE(std::getenv("PATH"), nullptr);
  EXPECT_EQ(env.get("PATH"), std::nullopt) << "read the process environment";
  try {
    env.integer("ASYA_TEST_BAD", 1, 1, 10);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "ASYA_TEST_BAD=\"eleven\" is not valid: use an integer from 1 to 10");
  }
}

TEST(Environment, EnvironmentWithOverridesAndFallsBackToTheProcess) {
  ASSERT_NE(std::getenv("PATH"), nullptr);
  Environment overriding(environment_with({{"PATH", "/nowhere"}}));
  EXPECT_EQ(overriding.get("PATH"), std::optional<std::string>("/nowhere"));
  Environment adding(environment_with({{"ASYA_TEST_ONLY_HERE", "x"}}));
  EXPECT_EQ(adding.get("ASYA_TEST_ONLY_HERE"), std::optional<std::string>("x"));
  EXPECT_EQ(adding.get("PATH"), std::optional<std::string>(std::getenv("PATH")));
  EXPECT_EQ(Environment().get("ASYA_TEST_ONLY_HERE"), std::nullopt);
}

}  // namespace
}  // namespace asya
