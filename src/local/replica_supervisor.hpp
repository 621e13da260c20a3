// The replicas of one actor over time: starts the missing ones (ReplicaLauncher) once the actor's
// crash backoff allows, stops the surplus (each drains first), notices crashes and counts them in
// the actor's CrashStreak (a crash on a full disk restarts as soon as space is freed), forgets
// replicas whose processes are gone, and replaces every replica when its handler changed
// (`asya up --reload`). The supervisor's control loop calls it; it logs through `event`.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "local/actor_state.hpp"
#include "local/output_collector.hpp"
#include "local/replica_launcher.hpp"
#include "local/supervisor.hpp"

namespace asya::local {

class ReplicaSupervisor {
 public:
  using Event = std::function<void(const std::string&)>;

  // Every argument must outlive this object.
  ReplicaSupervisor(const SupervisorOptions& options, ReplicaLauncher& launcher,
                    OutputCollector& output, Event event)
      : options_(options), launcher_(launcher), output_(output), event_(std::move(event)) {}

  // Starts replicas up to actor.desired (after the crash backoff) or stops the newest surplus.
  void reconcile(ActorState& actor, SteadyClock::time_point now);
  // Advances stopping replicas (SIGKILL past their deadline), forgets the gone ones (keeping
  // their counters) and ends the crash streak once a replica has run long enough.
  void advance_stopping(ActorState& actor, SteadyClock::time_point now);
  // When `pid` was a process of one of actor's replicas: handles its end (a crash is recorded,
  // with the last lines it wrote) and returns true.
  bool on_exit(ActorState& actor, pid_t pid, int wait_status, SteadyClock::time_point now);
  // Restarts a crashed actor at once when the disk it could not write has space again.
  void watch_free_space(ActorState& actor, SteadyClock::time_point now);
  // `file` (a handler source) changed: every running replica drains and stops; reconcile()
  // starts new ones, which import the new code.
  void reload(ActorState& actor, const std::filesystem::path& file, SteadyClock::time_point now);

 private:
  void record_crash(ActorState& actor, const Replica& replica, SteadyClock::time_point now);
  // Free bytes of the fullest file system a replica of `actor` writes to (its run directory
  // and its logs).
  std::uint64_t free_bytes(const ActorState& actor) const;

  const SupervisorOptions& options_;
  ReplicaLauncher& launcher_;
  OutputCollector& output_;
  Event event_;
};

}  // namespace asya::local
