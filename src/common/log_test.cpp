#include "common/log.hpp"

#include <gtest/gtest.h>

#include <string>

#include "common/env.hpp"

namespace asya {
namespace {

// Runs first in this binary (tests run in file order): nothing has called log::init yet.
TEST(Log, BeforeInitTheDefaultLoggerWritesJsonToStderrNotStdout) {
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  spdlog::warn("early \"warning\"");
  spdlog::default_logger()->flush();
  std::string out = testing::internal::GetCapturedStdout();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "");
  EXPECT_NE(err.find(R"("level":"warn","component":"common_test","msg":"early \"warning\""})"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.front(), '{') << err;
}

TEST(Log, InitSetsComponentLevelAndActor) {
  log::init("sidecar", "warn", "a1");
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  spdlog::info("hidden");
  spdlog::error("shown");
  spdlog::default_logger()->flush();
  std::string out = testing::internal::GetCapturedStdout();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "");
  EXPECT_EQ(err.find("hidden"), std::string::npos) << err;
  EXPECT_NE(err.find(R"("level":"error","component":"sidecar","actor":"a1","msg":"shown"})"),
            std::string::npos)
      << err;
  EXPECT_THROW(log::init("sidecar", "verbose"), ConfigError);
}

}  // namespace
}  // namespace asya
