// The gateway `asya up` runs with a routes file: asya-gateway on 127.0.0.1:<port> with its job
// store in <state>/gateway.db and its log in <state>/logs/gateway.log. It starts before any
// sidecar (start() + wait_ready()), is restarted with the shared backoff when it crashes
// (ManagedProcess), and stops after the end actors.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "local/managed_process.hpp"
#include "local/supervisor.hpp"

namespace asya::local {

class GatewayProcess {
 public:
  using Event = std::function<void(const std::string&)>;

  // `event` logs one line (the supervisor's event()).
  GatewayProcess(const SupervisorOptions& options, RestartPolicy policy, Event event);

  bool enabled() const { return !options_.routes_file.empty(); }

  // Starts the gateway with `base_env` (the sidecars' environment) and the supervisor's
  // transport and queue prefix. The error names the cause.
  Status start(const std::vector<std::string>& base_env, const std::string& queue_prefix);
  // Waits until it answers GET /readyz with 200 carrying options.gateway_instance_id (its job
  // store and transport work, and it is this gateway, not another process on the port), or prints
  // on stderr why not (it exited: a mistake in routes.yaml, a busy port; or it stayed unready,
  // then it is killed) and returns false.
  bool wait_ready();

  // When `pid` is the gateway: notes its end (while not shutting down: logs it and schedules
  // the restart) and returns true.
  bool on_exit(pid_t pid, int wait_status, bool shutting_down, SteadyClock::time_point now);
  // Restarts a crashed gateway after its backoff; once shutting down and `end_actors_gone`,
  // stops it (SIGTERM, SIGKILL after a grace period).
  void tick(SteadyClock::time_point now, bool shutting_down, bool end_actors_gone);
  void kill_now() { process_.kill_now(); }

  pid_t pid() const { return process_.pid(); }
  std::string log_path() const;

 private:
  const SupervisorOptions& options_;
  Event event_;
  ManagedProcess process_;
};

}  // namespace asya::local
