// One child process of the supervisor and the restart rule every restartable part shares.
//
// CrashStreak is the rule: a process that ends unexpectedly before running `healthy_after` is a
// quick crash; each quick crash in a row doubles the backoff before the replacement (from
// `backoff_initial`, capped at `backoff_max`), and `crash_loop_after` of them in a row mark the
// part crash-looping (restarts go on at the capped backoff). An actor keeps one streak for all
// its replicas; a restarting ManagedProcess (the gateway) keeps its own.
//
// ManagedProcess owns one child: it spawns it, recognises its end (the supervisor reaps every
// child with waitpid(-1) and offers each pid to its owners), stops it gracefully (SIGTERM, then
// SIGKILL after a deadline) and, when built with a RestartPolicy, says when a process that ended
// unexpectedly is due to be started again. Neither class is thread-safe: the supervisor's control
// loop is their only user. Times are passed in, so the rule is tested without waiting.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "local/process.hpp"

namespace asya::local {

using SteadyClock = std::chrono::steady_clock;

// Extra time, beyond a graceful shutdown, before SIGKILL.
constexpr std::chrono::milliseconds kKillAfterExtra{5000};

struct RestartPolicy {
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30'000};
  std::chrono::milliseconds healthy_after{10'000};
  int crash_loop_after = 3;
};

class CrashStreak {
 public:
  explicit CrashStreak(RestartPolicy policy) : policy_(policy) {}

  struct Verdict {
    std::chrono::milliseconds backoff{0};  // before the replacement may start
    bool entered_crash_loop = false;       // this crash made the part crash-looping
  };

  // Counts an unexpected end of a process that started at `started` and ended at `now`.
  Verdict record_crash(SteadyClock::time_point started, SteadyClock::time_point now);
  // Counts a failure to start at all: a quick crash whose backoff is backoff_max.
  Verdict record_start_failure();
  // A process of the part has been running since `started`: once that is healthy_after, the
  // streak ends. Returns true when this ended a crash loop (said once).
  bool note_running(SteadyClock::time_point started, SteadyClock::time_point now);

  int quick_crashes() const { return quick_crashes_; }
  bool crash_looping() const { return crash_looping_; }
  const RestartPolicy& policy() const { return policy_; }

 private:
  RestartPolicy policy_;
  int quick_crashes_ = 0;
  bool crash_looping_ = false;
};

class ManagedProcess {
 public:
  // `name` appears in errors ("gateway: cannot run ..."). Without a policy the process is never
  // restarted by this object (a replica's pair restarts as a unit, by its actor's streak).
  explicit ManagedProcess(std::string name, std::optional<RestartPolicy> restart = std::nullopt);
  ManagedProcess(const ManagedProcess&) = delete;
  ManagedProcess& operator=(const ManagedProcess&) = delete;
  // A child still running is killed (SIGKILL) but not reaped: the supervisor's waitpid does it.
  ~ManagedProcess();

  // Spawns `spec` (spawn() of process.hpp) and remembers it for restarts. The error names the
  // process and the cause; the process is then not running.
  Status start(const ProcessSpec& spec, SteadyClock::time_point now);
  // Spawns the last spec again (restarting parts, when restart_due()).
  Status restart(SteadyClock::time_point now);

  // What an end of this process was.
  struct Exit {
    bool expected = false;                 // it was being stopped
    std::chrono::milliseconds backoff{0};  // restarting only: time until restart_due()
    bool entered_crash_loop = false;       // restarting only
  };
  // When `pid` is this process: forgets it and says what its end was; else nullopt.
  std::optional<Exit> on_exit(pid_t pid, SteadyClock::time_point now);

  // SIGTERM now; enforce_deadline() sends SIGKILL once `deadline` has passed. No-op when not
  // running; a second call keeps the first deadline.
  void stop(SteadyClock::time_point deadline);
  void enforce_deadline(SteadyClock::time_point now);
  // SIGKILL now (a second Ctrl-C, a failed start of the other half of a pair).
  void kill_now();
  // Sends `signal` when running.
  void signal(int signal) const;

  // Restarting only: the process ended unexpectedly and its backoff has passed.
  bool restart_due(SteadyClock::time_point now) const;
  // Restarting only: ends the crash streak once the process has run healthy_after.
  void note_running(SteadyClock::time_point now);
  // Restarting only: after a failed start, try again after backoff_max.
  void retry_later(SteadyClock::time_point now);

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ != 0; }
  bool stopping() const { return stopping_; }
  SteadyClock::time_point started() const { return started_; }
  const std::string& name() const { return name_; }
  // Restarting only (else an empty streak).
  const CrashStreak& streak() const { return streak_; }

 private:
  std::string name_;
  bool restarting_;
  CrashStreak streak_;
  std::optional<ProcessSpec> spec_;
  pid_t pid_ = 0;
  bool stopping_ = false;
  SteadyClock::time_point started_;
  SteadyClock::time_point deadline_;
  SteadyClock::time_point restart_at_;
  bool waiting_for_restart_ = false;
};

}  // namespace asya::local
