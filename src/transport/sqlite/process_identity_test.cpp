// Which process a row names and whether it still runs (process_identity.hpp): the start time
// read from /proc, a pid reused by another process, a zombie, the kept pidfds, and a machine
// identity that cannot be established.
#include "transport/sqlite/process_identity.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

#include "transport/sqlite/test_support.hpp"

namespace asya::transport::sqlite {
namespace {

using namespace std::chrono_literals;

// A child that waits to be killed.
pid_t sleeper() {
  return test::spawn([] {
    ::pause();
    return 0;
  });
}

// Waits until `pid` is a zombie (killed, not reaped); fails the test after 20 s.
void wait_zombie(pid_t pid) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = text.rfind(") ");
    if (close != std::string::npos && text[close + 2] == 'Z') return;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "process " << pid << " never died";
    std::this_thread::sleep_for(2ms);
  }
}

TEST(ProcessIdentity, AProcessIsAliveOnlyWithItsOwnStartTime) {
  pid_t child = sleeper();
  std::string started = process_start_time(child);
  ASSERT_FALSE(started.empty());
  EXPECT_EQ(process_start_time(child), started);  // stable
  EXPECT_EQ(process_state(child, started), ProcessState::kAlive);
  EXPECT_EQ(process_state(child, "1"), ProcessState::kGone);  // the pid is another process now
  EXPECT_EQ(process_state(child, ""), ProcessState::kUnknown);
  EXPECT_EQ(process_state(0, started), ProcessState::kGone);
  ::kill(child, SIGKILL);
  wait_zombie(child);
  EXPECT_EQ(process_start_time(child), "");  // a zombie has exited
  EXPECT_EQ(process_state(child, started), ProcessState::kGone);
  ::waitpid(child, nullptr, 0);
  EXPECT_EQ(process_state(child, started), ProcessState::kGone);
}

TEST(ProcessIdentity, TheKeptPidfdTellsAnExitedProcessAndAnotherStartTime) {
  ProcessLiveness liveness;
  pid_t child = sleeper();
  std::string started = process_start_time(child);
  EXPECT_EQ(liveness.state(child, started), ProcessState::kAlive);  // kept from now on
  EXPECT_EQ(liveness.state(child, started), ProcessState::kAlive);
  EXPECT_EQ(liveness.state(child, "1"), ProcessState::kGone);
  ::kill(child, SIGKILL);
  wait_zombie(child);
  EXPECT_EQ(liveness.state(child, started), ProcessState::kGone);
  ::waitpid(child, nullptr, 0);
  EXPECT_EQ(liveness.state(child, started), ProcessState::kGone);
  EXPECT_EQ(liveness.state(::getpid(), process_start_time(::getpid())), ProcessState::kAlive);
  EXPECT_EQ(liveness.state(::getpid(), "1"), ProcessState::kGone);  // our pid, reused by us
}

TEST(ProcessIdentity, MoreProcessesThanAreKeptAreStillJudgedRight) {
  ProcessLiveness liveness;
  std::vector<pid_t> children;
  std::vector<std::string> started;
  for (std::size_t i = 0; i < ProcessLiveness::kMaxKept + 2; ++i) {
    children.push_back(sleeper());
    started.push_back(process_start_time(children.back()));
    ASSERT_EQ(liveness.state(children.back(), started.back()), ProcessState::kAlive);
  }
  for (pid_t child : children) ::kill(child, SIGKILL);
  for (pid_t child : children) ::waitpid(child, nullptr, 0);
  for (std::size_t i = 0; i < children.size(); ++i)
    EXPECT_EQ(liveness.state(children[i], started[i]), ProcessState::kGone) << i;
}

TEST(ProcessIdentity, TheMachineIdentityNamesTheBootAndThePidNamespace) {
  std::string identity = machine_identity();
  ASSERT_EQ(identity.find("unverified"), std::string::npos) << identity;
  auto slash = identity.find('/');
  ASSERT_NE(slash, std::string::npos);
  EXPECT_EQ(identity.size() - slash - 1 > 0, true);
  EXPECT_EQ(identity.substr(slash + 1, 5), "pid:[");
  EXPECT_EQ(machine_identity(), identity);  // the same for every call of this process
}

// A /proc made by hand: `self` names process `self_pid`, whose pid namespace is pid:[42].
void fake_proc(const std::filesystem::path& root, pid_t self_pid, bool with_boot_id) {
  std::filesystem::create_directories(root / "sys/kernel/random");
  if (with_boot_id) std::ofstream(root / "sys/kernel/random/boot_id") << "b00t-1d\n";
  std::filesystem::create_directories(root / std::to_string(self_pid) / "ns");
  std::filesystem::create_symlink("pid:[42]", root / std::to_string(self_pid) / "ns/pid");
  std::filesystem::create_symlink(std::to_string(self_pid), root / "self");
}

TEST(ProcessIdentity, AReadableProcGivesBootIdAndNamespace) {
  test::TempDir dir;
  fake_proc(dir.path(), ::getpid(), true);
  EXPECT_EQ(machine_identity(dir.path()), "b00t-1d/pid:[42]");
}

TEST(ProcessIdentity, WithoutABootIdTheIdentityMatchesNoOtherProcess) {
  test::TempDir dir;
  fake_proc(dir.path(), ::getpid(), false);
  std::string first = machine_identity(dir.path());
  EXPECT_EQ(first.rfind("unverified-", 0), 0u) << first;
  EXPECT_NE(machine_identity(dir.path()), first);  // each instance its own
}

TEST(ProcessIdentity, AProcOfAnotherPidNamespaceGivesAnIdentityMatchingNoOtherProcess) {
  test::TempDir dir;
  fake_proc(dir.path(), ::getpid() + 1, true);  // /proc/self is not this process's pid
  std::string identity = machine_identity(dir.path());
  EXPECT_EQ(identity.rfind("unverified-", 0), 0u) << identity;
}

}  // namespace
}  // namespace asya::transport::sqlite
