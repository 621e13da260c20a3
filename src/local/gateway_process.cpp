#include "local/gateway_process.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "common/env.hpp"
#include "local/instance_id.hpp"
#include "local/sidecar_counters.hpp"

namespace asya::local {

using namespace std::chrono_literals;

GatewayProcess::GatewayProcess(const SupervisorOptions& options, RestartPolicy policy, Event event)
    : options_(options), event_(std::move(event)), process_("gateway", policy) {}

std::string GatewayProcess::log_path() const {
  return (options_.paths.logs() / "gateway.log").string();
}

Status GatewayProcess::start(const std::vector<std::string>& base_env,
                             const std::string& queue_prefix) {
  ProcessSpec gw;
  gw.argv = {options_.gateway_binary};
  gw.env = base_env;
  std::erase_if(gw.env, [](const std::string& e) {
    for (const char* key :
         {"ASYA_CONFIG_PATH=", "ASYA_GATEWAY_HOST=", "ASYA_GATEWAY_PORT=", "ASYA_GATEWAY_DB=",
          "ASYA_TRANSPORT=", "ASYA_QUEUE_PREFIX=", "ASYA_GATEWAY_INSTANCE_ID=",
          "ASYA_GATEWAY_STATUS_FILE=", "ASYA_PAYLOAD_STORE=", "ASYA_GATEWAY_SOCKET="}) {
      if (e.rfind(key, 0) == 0) return true;
    }
    return false;
  });
  gw.env.push_back("ASYA_CONFIG_PATH=" + options_.routes_file);
  gw.env.push_back("ASYA_GATEWAY_HOST=127.0.0.1");
  gw.env.push_back(fmt::format("ASYA_GATEWAY_PORT={}", options_.gateway_port));
  if (const std::string socket = options_.gateway_socket(); !socket.empty())
    gw.env.push_back("ASYA_GATEWAY_SOCKET=" + socket);
  gw.env.push_back("ASYA_GATEWAY_DB=" + (options_.paths.root / "gateway.db").string());
  gw.env.push_back("ASYA_TRANSPORT=" + options_.transport);
  gw.env.push_back("ASYA_QUEUE_PREFIX=" + queue_prefix);
  gw.env.push_back("ASYA_GATEWAY_INSTANCE_ID=" + options_.gateway_instance_id);
  // The dashboard's replica, processed and rate columns (GET /actors).
  gw.env.push_back("ASYA_GATEWAY_STATUS_FILE=" + options_.paths.status_file().string());
  if (!options_.payload_store.empty())
    gw.env.push_back("ASYA_PAYLOAD_STORE=" + options_.payload_store);
  gw.working_dir = options_.paths.root.string();
  gw.log_path = log_path();
  return process_.start(gw, SteadyClock::now());
}

bool GatewayProcess::wait_ready() {
  const auto deadline = SteadyClock::now() + 30s;
  std::string last = "no answer";
  auto log_tail = [&] {
    std::string log;
    read_file(log_path(), log);
    if (log.size() > 3000) log = log.substr(log.size() - 3000);
    return log;
  };
  while (SteadyClock::now() < deadline) {
    int status = 0;
    pid_t pid = process_.pid();
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      process_.on_exit(pid, SteadyClock::now());
      std::fprintf(stderr,
                   "%sasya up: the gateway %s before it was ready (log: %s); a busy port? use "
                   "--gateway-port N (0: any free port) or --no-gateway\n",
                   log_tail().c_str(), describe_exit(status).c_str(), log_path().c_str());
      return false;
    }
    if (auto got = http_get_local(options_.gateway_port, "/readyz")) {
      // Only an answer carrying the id it was given is from this gateway (instance_id.hpp).
      if (got->status == 200 && answered_by_instance(got->body, options_.gateway_instance_id))
        return true;
      last = got->status == 200 ? fmt::format(
                                      "port {} is answered by another process ({}), not "
                                      "by the gateway started here: the port is taken",
                                      options_.gateway_port, got->body)
                                : fmt::format("/readyz answered {}: {}", got->status, got->body);
    }
    std::this_thread::sleep_for(50ms);
  }
  std::fprintf(stderr, "%sasya up: the gateway on %s was not ready within 30s (%s; log: %s)\n",
               log_tail().c_str(), options_.gateway_url().c_str(), last.c_str(),
               log_path().c_str());
  pid_t pid = process_.pid();
  process_.kill_now();
  ::waitpid(pid, nullptr, 0);
  process_.on_exit(pid, SteadyClock::now());
  return false;
}

bool GatewayProcess::on_exit(pid_t pid, int wait_status, bool shutting_down,
                             SteadyClock::time_point now) {
  auto exit = process_.on_exit(pid, now);
  if (!exit) return false;
  if (shutting_down || exit->expected) return true;
  event_(fmt::format("gateway: {} (see {}); restart in {}", describe_exit(wait_status), log_path(),
                     format_duration(exit->backoff)));
  return true;
}

void GatewayProcess::tick(SteadyClock::time_point now, bool shutting_down, bool end_actors_gone) {
  if (!enabled()) return;
  if (!shutting_down) {
    if (process_.restart_due(now)) {
      if (Status st = process_.restart(now); !st) {
        process_.retry_later(now);
        event_(fmt::format("gateway: cannot start: {}", st.message()));
      } else {
        event_(fmt::format("gateway: restarted on {}", options_.gateway_url()));
      }
    }
    process_.note_running(now);
    return;
  }
  if (end_actors_gone) process_.stop(now + kKillAfterExtra + 5s);
  process_.enforce_deadline(now);
}

}  // namespace asya::local
