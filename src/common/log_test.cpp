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

TEST(Log, ScopesAddEnvelopeTraceAndSpanIdsToEveryLineOfTheThread) {
  log::init("sidecar", "info", "a1");
  testing::internal::CaptureStderr();
  {
    log::EnvelopeScope envelope("E1");
    log::TraceScope trace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    spdlog::info("inside");
  }
  spdlog::info("outside");
  spdlog::default_logger()->flush();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find(R"("msg":"inside","id":"E1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",)"
                     R"("span_id":"00f067aa0ba902b7"})"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(R"("msg":"outside"})"), std::string::npos) << err;
}

}  // namespace
}  // namespace asya
