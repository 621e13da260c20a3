#include "common/failpoint.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

namespace asya {
namespace {

TEST(Failpoints, ParseSplitsAtCommasAndTrimsSpaces) {
  EXPECT_EQ(parse_failpoints(" a.b , c_d,,e-f "),
            (std::set<std::string, std::less<>>{"a.b", "c_d", "e-f"}));
  EXPECT_TRUE(parse_failpoints("").empty());
  EXPECT_TRUE(parse_failpoints(" , ").empty());
}

// Runs failpoint(name) in a child process whose environment arms `armed`; returns its wait status.
int child_status(const char* armed, const char* name) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("ASYA_FAILPOINTS", armed, 1);  // the child's own environment, before the first read
    failpoint(name);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(Failpoints, AnArmedPointKillsTheProcessWithSigkill) {
  int status = child_status("other, sidecar.before_ack", "sidecar.before_ack");
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(Failpoints, AnotherPointReturns) {
  int status = child_status("sidecar.before_ack", "payload.stored");
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Failpoints, UnsetReturns) {
  ASSERT_EQ(std::getenv("ASYA_FAILPOINTS"), nullptr);
  failpoint("sidecar.before_ack");  // still running
}

}  // namespace
}  // namespace asya
