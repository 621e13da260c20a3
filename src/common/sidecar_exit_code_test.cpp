#include "common/sidecar_exit_code.hpp"

#include <gtest/gtest.h>

namespace asya {
namespace {

// The numbers are a contract with supervisors and docs (docs/configuration.md): they never change.
TEST(SidecarExitCode, CodesAreTheDocumentedNumbers) {
  EXPECT_EQ(code(SidecarExit::kOk), 0);
  EXPECT_EQ(code(SidecarExit::kFatal), 1);
  EXPECT_EQ(code(SidecarExit::kConfig), 2);
  EXPECT_EQ(code(SidecarExit::kRuntimeTimeout), 3);
  EXPECT_EQ(code(SidecarExit::kRuntimeNotReady), 4);
}

TEST(SidecarExitCode, StatusesMapBackAndOthersAreUnknown) {
  for (auto exit : {SidecarExit::kOk, SidecarExit::kFatal, SidecarExit::kConfig,
                    SidecarExit::kRuntimeTimeout, SidecarExit::kRuntimeNotReady})
    EXPECT_EQ(sidecar_exit_from_code(code(exit)), exit) << label(exit);
  EXPECT_EQ(sidecar_exit_from_code(5), std::nullopt);
  EXPECT_EQ(sidecar_exit_from_code(137), std::nullopt);
  EXPECT_EQ(sidecar_exit_from_code(-1), std::nullopt);
  EXPECT_EQ(label(SidecarExit::kRuntimeTimeout), "runtime_timeout");
}

}  // namespace
}  // namespace asya
