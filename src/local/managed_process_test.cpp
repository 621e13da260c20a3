#include "local/managed_process.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace asya::local {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

RestartPolicy fast_policy() {
  RestartPolicy policy;
  policy.backoff_initial = 500ms;
  policy.backoff_max = 4s;
  policy.healthy_after = 10s;
  policy.crash_loop_after = 3;
  return policy;
}

TEST(CrashStreak, QuickCrashesDoubleTheBackoffUpToTheCap) {
  CrashStreak streak(fast_policy());
  auto t0 = SteadyClock::time_point{} + 1h;
  std::vector<ms> backoffs;
  for (int i = 0; i < 6; ++i) backoffs.push_back(streak.record_crash(t0, t0 + 1s).backoff);
  EXPECT_EQ(backoffs, (std::vector<ms>{500ms, 1s, 2s, 4s, 4s, 4s}));
  EXPECT_EQ(streak.quick_crashes(), 6);
}

TEST(CrashStreak, TheThirdQuickCrashInARowEntersTheCrashLoopOnce) {
  CrashStreak streak(fast_policy());
  auto t0 = SteadyClock::time_point{} + 1h;
  EXPECT_FALSE(streak.record_crash(t0, t0 + 1s).entered_crash_loop);
  EXPECT_FALSE(streak.record_crash(t0, t0 + 1s).entered_crash_loop);
  EXPECT_FALSE(streak.crash_looping());
  EXPECT_TRUE(streak.record_crash(t0, t0 + 1s).entered_crash_loop);
  EXPECT_TRUE(streak.crash_looping());
  EXPECT_FALSE(streak.record_crash(t0, t0 + 1s).entered_crash_loop);  // said once
}

TEST(CrashStreak, ACrashAfterAHealthyRunStartsANewStreakOfOne) {
  CrashStreak streak(fast_policy());
  auto t0 = SteadyClock::time_point{} + 1h;
  streak.record_crash(t0, t0 + 1s);
  streak.record_crash(t0, t0 + 1s);
  auto verdict = streak.record_crash(t0, t0 + 11s);
  EXPECT_EQ(verdict.backoff, 500ms);
  EXPECT_EQ(streak.quick_crashes(), 1);
}

TEST(CrashStreak, RunningHealthyEndsTheStreakAndReportsTheEndOfACrashLoop) {
  CrashStreak streak(fast_policy());
  auto t0 = SteadyClock::time_point{} + 1h;
  for (int i = 0; i < 3; ++i) streak.record_crash(t0, t0 + 1s);
  EXPECT_FALSE(streak.note_running(t0, t0 + 9s));  // not yet healthy
  EXPECT_TRUE(streak.crash_looping());
  EXPECT_TRUE(streak.note_running(t0, t0 + 10s));
  EXPECT_FALSE(streak.crash_looping());
  EXPECT_EQ(streak.quick_crashes(), 0);
  EXPECT_FALSE(streak.note_running(t0, t0 + 20s));  // nothing left to end
}

TEST(CrashStreak, AFailureToStartWaitsTheLongestBackoff) {
  CrashStreak streak(fast_policy());
  EXPECT_EQ(streak.record_start_failure().backoff, 4s);
  EXPECT_EQ(streak.quick_crashes(), 1);
}

ProcessSpec shell(const std::string& script) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.log_path = (std::filesystem::temp_directory_path() /
                   ("managed_process_test." + std::to_string(::getpid()) + ".log"))
                      .string();
  return spec;
}

// Waits for `process` to end (blocking waitpid, as the supervisor's loop does with WNOHANG).
std::optional<ManagedProcess::Exit> reap(ManagedProcess& process) {
  int status = 0;
  pid_t pid = process.pid();
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return process.on_exit(pid, SteadyClock::now());
}

TEST(ManagedProcess, ACrashedRestartingProcessIsDueAfterItsBackoffAndRestartsWithTheSameSpec) {
  RestartPolicy policy;
  policy.backoff_initial = 200ms;
  policy.backoff_max = 800ms;
  policy.healthy_after = 10s;
  policy.crash_loop_after = 2;
  ManagedProcess process("crasher", policy);
  auto started = SteadyClock::now();
  ASSERT_TRUE(process.start(shell("exit 7"), started));
  pid_t first = process.pid();
  ASSERT_GT(first, 0);
  EXPECT_FALSE(process.on_exit(first + 100000, started));  // not ours

  auto exit = reap(process);
  ASSERT_TRUE(exit);
  EXPECT_FALSE(exit->expected);
  EXPECT_EQ(exit->backoff, 200ms);
  EXPECT_FALSE(exit->entered_crash_loop);
  EXPECT_FALSE(process.running());
  auto ended = SteadyClock::now();
  EXPECT_FALSE(process.restart_due(ended));
  // The due time is ended + backoff (measured from the exit, so allow the reap's own time).
  EXPECT_TRUE(process.restart_due(ended + 200ms));

  ASSERT_TRUE(process.restart(ended + 200ms));
  EXPECT_NE(process.pid(), 0);
  auto second = reap(process);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->backoff, 400ms);  // doubled: the second quick crash in a row
  EXPECT_TRUE(second->entered_crash_loop);
  EXPECT_TRUE(process.streak().crash_looping());
}

TEST(ManagedProcess, ARestartingProcessRunningLongEnoughEndsItsStreak) {
  RestartPolicy policy;
  policy.backoff_initial = 100ms;
  policy.healthy_after = 300ms;
  ManagedProcess process("sleeper", policy);
  ASSERT_TRUE(process.start(shell("exit 1"), SteadyClock::now()));
  reap(process);
  EXPECT_EQ(process.streak().quick_crashes(), 1);
  auto restarted = SteadyClock::now();
  ASSERT_TRUE(process.restart(restarted));
  process.note_running(restarted + 100ms);
  EXPECT_EQ(process.streak().quick_crashes(), 1);
  process.note_running(restarted + 300ms);
  EXPECT_EQ(process.streak().quick_crashes(), 0);
  process.kill_now();
  reap(process);
}

TEST(ManagedProcess, AStoppedProcessEndsAsExpectedAndIsNotRestarted) {
  ManagedProcess process("sleeper", RestartPolicy{});
  ASSERT_TRUE(process.start(shell("exec sleep 30"), SteadyClock::now()));
  process.stop(SteadyClock::now() + 10s);
  EXPECT_TRUE(process.stopping());
  auto exit = reap(process);
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->expected);
  EXPECT_FALSE(process.restart_due(SteadyClock::now() + 1h));
  EXPECT_EQ(process.streak().quick_crashes(), 0);
}

TEST(ManagedProcess, AProcessIgnoringSigtermIsKilledAtItsDeadline) {
  ManagedProcess process("stubborn");
  // The shell ignores SIGTERM; it says so through a file once the trap is set.
  auto marker = std::filesystem::temp_directory_path() /
                ("managed_process_test.trap." + std::to_string(::getpid()));
  std::filesystem::remove(marker);
  ASSERT_TRUE(
      process.start(shell("trap '' TERM; touch " + marker.string() + "; while :; do sleep 1; done"),
                    SteadyClock::now()));
  auto wait_until = SteadyClock::now() + 30s;
  while (!std::filesystem::exists(marker) && SteadyClock::now() < wait_until)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(std::filesystem::exists(marker));
  auto deadline = SteadyClock::now() + 200ms;
  process.stop(deadline);
  process.enforce_deadline(deadline - 100ms);  // before the deadline: nothing
  int status = 0;
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(::waitpid(process.pid(), &status, WNOHANG), 0);  // SIGTERM was ignored
  process.enforce_deadline(deadline);
  pid_t pid = process.pid();
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  auto exit = process.on_exit(pid, SteadyClock::now());
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->expected);
  std::filesystem::remove(marker);
}

TEST(ManagedProcess, ANonRestartingProcessIsNeverDue) {
  ManagedProcess process("once");
  ASSERT_TRUE(process.start(shell("exit 1"), SteadyClock::now()));
  auto exit = reap(process);
  ASSERT_TRUE(exit);
  EXPECT_FALSE(exit->expected);
  EXPECT_FALSE(process.restart_due(SteadyClock::now() + 1h));
}

TEST(ManagedProcess, AProgramThatCannotRunIsAnErrorNamingTheProcess) {
  ManagedProcess process("gateway");
  ProcessSpec spec = shell("");
  spec.argv = {"/nonexistent/asya-gateway"};
  auto st = process.start(spec, SteadyClock::now());
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("gateway: "), std::string::npos) << st.message();
  EXPECT_FALSE(process.running());
}

}  // namespace
}  // namespace asya::local
