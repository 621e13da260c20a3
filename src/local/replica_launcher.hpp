// Starts one replica of an actor: its runtime (the manifest's container command, or the Python
// runtime) with only the handler's environment and its socket, then its sidecar with the
// manifest -> sidecar mapping (replica_environment.hpp). End actors have a sidecar only. Both
// processes write through the supervisor's OutputCollector into logs/<actor>/<n>.*.log.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "local/actor_state.hpp"
#include "local/output_collector.hpp"
#include "local/replica_environment.hpp"
#include "local/supervisor.hpp"

namespace asya::local {

// runtime_working_dir() (replica_environment.hpp) is the directory a runtime runs in; its Python
// handler is imported from there (`asya up --reload` watches it).

class ReplicaLauncher {
 public:
  // `options`, `output` and `base_env` must outlive the launcher; `base_env` is the supervisor's
  // environment for sidecars (set once start-up has prepared it).
  ReplicaLauncher(const SupervisorOptions& options, OutputCollector& output,
                  const std::string& queue_prefix, const std::vector<std::string>& base_env)
      : options_(options), output_(output), prefix_(queue_prefix), base_env_(base_env) {}

  // Starts replica `index` of `actor` (runtime first, then the sidecar). On failure nothing of
  // it is left running, and the error names the actor, the process and the cause.
  Result<std::unique_ptr<Replica>> launch(const manifest::Actor& actor, bool end_actor, int index,
                                          SteadyClock::time_point now);

  // Where replica `index` of `actor` has its socket and runtime-ready file: run/<actor>-<n>, or
  // a short folder under /tmp when that path is too long for a Unix socket.
  std::filesystem::path socket_dir(const std::string& actor, int index) const;

 private:
  // spawn() of `process` with stdout and stderr through a pipe of output_ (into spec.log_path);
  // `stream` receives the stream id.
  Status start_collected(ManagedProcess& process, ProcessSpec spec, int& stream,
                         SteadyClock::time_point now);
  // Kills and reaps whatever of a half-started replica runs, and releases its output streams.
  void discard(Replica& replica);

  const SupervisorOptions& options_;
  OutputCollector& output_;
  const std::string& prefix_;
  const std::vector<std::string>& base_env_;
};

}  // namespace asya::local
