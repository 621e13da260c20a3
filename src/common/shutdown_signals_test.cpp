#include "common/shutdown_signals.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace asya {
namespace {
using namespace std::chrono_literals;

// SIGUSR1/SIGUSR2 stand in for SIGTERM/SIGINT, so a failing test cannot stop the test runner.
const SignalSet& test_signals() {
  static const SignalSet signals = [] {
    SignalSet set{SIGUSR1, SIGUSR2};
    set.block();  // gtest runs the tests on the main thread, which is this one
    return set;
  }();
  return signals;
}

TEST(ShutdownSignals, ASignalSentBeforeTheWaitIsTakenByIt) {
  const SignalSet& signals = test_signals();
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  EXPECT_EQ(signals.wait_for(10s), SIGUSR1);
  EXPECT_EQ(signals.wait_for(0ms), 0);  // taken once
}

TEST(ShutdownSignals, WaitForReturnsZeroWhenNoSignalArrives) {
  const SignalSet& signals = test_signals();
  EXPECT_EQ(signals.wait_for(50ms), 0);
  EXPECT_TRUE(signals.contains(SIGUSR2));
  EXPECT_FALSE(signals.contains(SIGTERM));
}

TEST(ShutdownSignals, WatcherCallsBackOnItsThreadForEachSignal) {
  const SignalSet& signals = test_signals();
  std::atomic<int> last{0};
  std::atomic<int> calls{0};
  const auto test_thread = std::this_thread::get_id();
  std::atomic<bool> on_other_thread{true};
  {
    SignalWatcher watcher(signals, [&](int signal) {
      if (std::this_thread::get_id() == test_thread) on_other_thread = false;
      last = signal;
      ++calls;
    });
    auto wait_calls = [&](int n) {
      auto deadline = std::chrono::steady_clock::now() + 20s;
      while (calls.load() < n && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
      return calls.load();
    };
    ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
    ASSERT_EQ(wait_calls(1), 1);
    EXPECT_EQ(last.load(), SIGUSR2);
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
    ASSERT_EQ(wait_calls(2), 2);
    EXPECT_EQ(last.load(), SIGUSR1);
  }
  EXPECT_TRUE(on_other_thread.load());
  // After the watcher is gone a signal stays pending instead of being handled.
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(signals.wait_for(10s), SIGUSR1);
}

TEST(ShutdownSignals, NamesTheShutdownSignals) {
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
  EXPECT_EQ(signal_name(SIGHUP), "SIGHUP");
  EXPECT_EQ(signal_name(SIGUSR1), "signal " + std::to_string(SIGUSR1));
}

}  // namespace
}  // namespace asya
