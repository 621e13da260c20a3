// Shutdown signals taken by one thread instead of by a signal handler: the one way the binaries
// of Asya (asya-sidecar, asya-gateway, asya-operator, the `asya up` supervisor) learn of
// SIGTERM/SIGINT.
//
// main() blocks the signals before it starts any thread (SignalSet::block), so every thread
// inherits the mask and no system call anywhere is interrupted; then either a loop the binary
// already has takes them (SignalSet::wait_for, the supervisor) or a SignalWatcher thread turns
// each into a call (set a stop flag, post to an io_context). A signal that arrives before anyone
// waits stays pending and is seen by the first wait.
//
// Not for libraries that run inside a user's process (the C++ runtime, src/wire): they cannot
// own the process's signal mask, and keep their own handler.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <initializer_list>
#include <string>
#include <thread>

namespace asya {

// A set of signals (by default SIGTERM and SIGINT). Copyable; thread-safe to use.
class SignalSet {
 public:
  SignalSet(std::initializer_list<int> signals = {SIGTERM, SIGINT});

  // Blocks the signals in the calling thread; threads started afterwards inherit the mask. Call
  // it in main() before any thread starts, or a signal may reach a thread that did not block it
  // and take its default action (terminate).
  void block() const;

  // Waits at most `timeout` for one of the signals (blocked in every thread) and takes it.
  // Returns its number, or 0 when none arrived in time.
  int wait_for(std::chrono::milliseconds timeout) const;

  bool contains(int signal) const;

 private:
  sigset_t set_;
};

// A thread that takes the signals of `signals` (blocked beforehand, see SignalSet::block) and
// calls `on_signal(number)` on that thread for each one, until the watcher is destroyed. Not
// copyable. The destructor returns within about 200 ms (the thread waits in slices so that it
// notices it must stop).
class SignalWatcher {
 public:
  SignalWatcher(SignalSet signals, std::function<void(int)> on_signal);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// "SIGTERM", "SIGINT", "SIGHUP", "SIGCHLD", or "signal <n>".
std::string signal_name(int signal);

}  // namespace asya
