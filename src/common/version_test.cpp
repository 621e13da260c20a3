#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/version.hpp"

namespace {

struct Answer {
  std::optional<int> code;
  std::string out;
  std::string err;
};

Answer answer(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  auto code =
      asya::answer_informational_arguments(argv, "asya-thing", "usage: asya-thing\n", out, err, 2);
  return {code, out.str(), err.str()};
}

TEST(Version, IsTheProjectVersionFromCMake) {
  EXPECT_TRUE(std::regex_match(std::string(asya::version()), std::regex(R"(\d+\.\d+\.\d+)")))
      << asya::version();
}

TEST(InformationalArguments, NoArgumentLetsTheProgramGoOn) {
  auto a = answer({});
  EXPECT_FALSE(a.code.has_value());
  EXPECT_EQ(a.out, "");
  EXPECT_EQ(a.err, "");
}

TEST(InformationalArguments, HelpAndVersionPrintToStdoutAndExitZero) {
  for (const char* flag : {"--help", "-h"}) {
    auto a = answer({flag});
    EXPECT_EQ(a.code, 0);
    EXPECT_EQ(a.out, "usage: asya-thing\n");
    EXPECT_EQ(a.err, "");
  }
  auto v = answer({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out, "asya-thing " + std::string(asya::version()) + "\n");
}

TEST(InformationalArguments, AnythingElseIsAUsageErrorNamingTheArgument) {
  auto a = answer({"--port=9"});
  EXPECT_EQ(a.code, 2);
  EXPECT_EQ(a.out, "");
  EXPECT_NE(a.err.find("unknown argument \"--port=9\""), std::string::npos) << a.err;
  auto both = answer({"--help", "--version"});
  EXPECT_EQ(both.code, 2);
  EXPECT_NE(both.err.find("alone"), std::string::npos) << both.err;
}

}  // namespace
