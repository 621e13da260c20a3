// What the supervisor knows about each actor it runs and each replica (a sidecar + runtime pair)
// of it. Shared by the supervisor (which changes it), the status writer and the terminal view
// (which read it). Touched by the supervisor's control loop only.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "local/autoscaler.hpp"
#include "local/managed_process.hpp"
#include "manifest/manifest.hpp"
#include "transport/transport.hpp"

namespace asya::local {

enum class ReplicaPhase {
  kRunning,          // both processes up (or starting)
  kStoppingSidecar,  // scale-down/shutdown/reload: SIGTERM sent to the sidecar, it drains
  kStoppingRuntime,  // the sidecar is gone, SIGTERM sent to the runtime
  kCrashed,          // one process died unexpectedly; stopping the other
};

struct Replica {
  int index = 0;
  ManagedProcess sidecar{"sidecar"};
  ManagedProcess runtime{"runtime"};  // not running for end actors (no runtime)
  ReplicaPhase phase = ReplicaPhase::kRunning;
  SteadyClock::time_point started;
  SteadyClock::time_point deadline;  // of the current stopping phase; SIGKILL after it
  std::filesystem::path socket;
  int metrics_port = 0;
  double processed = 0;  // last read counters of the sidecar
  double errors = 0;
  std::string crash_reason;
  std::vector<std::string> crash_output;  // last lines the crashed process wrote
  bool timeout_restart = false;           // sidecar exit 3: restart at once, not a crash
  int sidecar_output = 0;                 // OutputCollector streams of the two processes (0: none)
  int runtime_output = 0;

  bool running() const { return phase == ReplicaPhase::kRunning; }
  // Running, and ready to take messages: an end actor's sidecar is; a runtime has written its
  // runtime-ready file.
  bool ready(bool end_actor) const;
  // Both processes have ended after a stop or a crash: the replica can be forgotten.
  bool gone() const { return !running() && !sidecar.running() && !runtime.running(); }
  // Starts the graceful stop: the sidecar drains (finishes or returns its in-flight messages)
  // within `grace`, then the runtime is stopped. No-op unless running.
  void begin_stop(std::chrono::milliseconds grace, SteadyClock::time_point now);
  // SIGKILL to both processes once the current stopping phase is past its deadline.
  void enforce_deadline(SteadyClock::time_point now);

  struct Exit {
    bool sidecar = false;  // which process ended
    bool crashed = false;  // it ended while the replica was running (the other is being stopped)
  };
  // When `pid` is one of the pair: advances the phase (a sidecar that drained → stop the runtime;
  // an unexpected end → stop the other) and says what happened; else nullopt.
  std::optional<Exit> on_exit(pid_t pid, SteadyClock::time_point now);
};

struct ActorState {
  ActorState(manifest::Actor actor, bool is_end_actor, RestartPolicy policy)
      : spec(std::move(actor)), end_actor(is_end_actor), streak(policy) {}

  manifest::Actor spec;
  bool end_actor = false;
  std::unique_ptr<Autoscaler> autoscaler;
  std::vector<std::unique_ptr<Replica>> replicas;
  int desired = 0;
  SteadyClock::time_point next_poll;
  transport::QueueStats stats;
  bool stats_ok = false;
  SteadyClock::time_point stats_read_at;  // of `stats`; {}: never read
  std::string stats_error;                // why `stats` are not current (empty: they are)
  // Crash handling: one streak for every replica of the actor.
  CrashStreak streak;
  int restarts = 0;  // every unexpected end of a pair since start-up
  SteadyClock::time_point restart_at;
  std::string last_crash;
  std::vector<std::string> last_crash_output;
  std::chrono::system_clock::time_point last_crash_at;
  // A crash on a full disk: free bytes of the fullest watched file system then; the restart
  // comes as soon as more is free (or after a short backoff at the latest).
  bool waiting_for_space = false;
  std::uint64_t free_bytes_at_crash = 0;
  // Counters of replicas that are gone, plus the rate estimate.
  double retired_processed = 0;
  double retired_errors = 0;
  double last_total = 0;
  SteadyClock::time_point last_total_at;
  double rate = 0;

  int live() const {
    return static_cast<int>(std::count_if(replicas.begin(), replicas.end(),
                                          [](const auto& r) { return r->running(); }));
  }
  int ready() const {
    return static_cast<int>(std::count_if(replicas.begin(), replicas.end(),
                                          [&](const auto& r) { return r->ready(end_actor); }));
  }
  double processed() const {
    double total = retired_processed;
    for (const auto& r : replicas) total += r->processed;
    return total;
  }
  double errors() const {
    double total = retired_errors;
    for (const auto& r : replicas) total += r->errors;
    return total;
  }
  // Updates `rate` (an exponential average of processed per second) from the counters now.
  void update_rate(SteadyClock::time_point now);
};

}  // namespace asya::local
