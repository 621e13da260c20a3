#include "local/replica_launcher.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>

#include "local/replica_environment.hpp"

namespace asya::local {

namespace fs = std::filesystem;

fs::path ReplicaLauncher::socket_dir(const std::string& actor, int index) const {
  fs::path dir = options_.paths.run() / fmt::format("{}-{}", actor, index);
  // A Unix socket path has at most 107 bytes; deep temp dirs need a shorter home.
  if ((dir / "rt.sock").string().size() < 100) return dir;
  std::size_t hash = std::hash<std::string>{}(options_.paths.root.string());
  return fs::path("/tmp") / fmt::format("asya-{}-{:x}", ::getuid(), hash & 0xffffffffu) /
         fmt::format("{}-{}", actor, index);
}

Status ReplicaLauncher::start_collected(ManagedProcess& process, ProcessSpec spec, int& stream,
                                        SteadyClock::time_point now) {
  auto pipe = output_.open(spec.log_path);
  if (!pipe) return Error{fmt::format("{}: {}", process.name(), pipe.error().message)};
  stream = pipe->id;
  spec.output_fd = pipe->write_fd;
  Status started = process.start(spec, now);
  ::close(pipe->write_fd);
  return started;
}

void ReplicaLauncher::discard(Replica& replica) {
  for (ManagedProcess* process : {&replica.runtime, &replica.sidecar}) {
    if (!process->running()) continue;
    pid_t pid = process->pid();
    process->kill_now();
    ::waitpid(pid, nullptr, 0);
    process->on_exit(pid, SteadyClock::now());
  }
  output_.release(replica.runtime_output);
  output_.release(replica.sidecar_output);
}

Result<std::unique_ptr<Replica>> ReplicaLauncher::launch(const manifest::Actor& actor,
                                                         bool end_actor, int index,
                                                         SteadyClock::time_point now) {
  auto replica = std::make_unique<Replica>();
  replica->index = index;
  const std::string& name = actor.name;
  fs::path logs = options_.paths.actor_logs(name);
  std::error_code ec;
  fs::create_directories(logs, ec);
  fs::path run_dir = socket_dir(name, index);
  fs::create_directories(run_dir, ec);
  replica->socket = run_dir / "rt.sock";
  fs::remove(replica->socket, ec);
  fs::remove(run_dir / "runtime-ready", ec);
  // A stale sidecar-features file (docs/protocol.md §3) is replaced by the new sidecar; removed
  // here too, so an older sidecar binary never inherits a newer one's declaration.
  fs::remove(run_dir / "sidecar-features", ec);
  replica->metrics_port = free_local_port();
  replica->started = now;

  if (!end_actor) {
    const manifest::Container& c = actor.runtime();
    ProcessSpec rt;
    rt.argv = c.command.empty() ? options_.python_runtime : c.command;
    rt.argv.insert(rt.argv.end(), c.args.begin(), c.args.end());
    // The runtime gets only what the handler needs: basics, the manifest's env and its socket
    // (replica_environment.hpp; `asya up`'s pre-flight imports the handler with the same).
    auto env = runtime_environment(actor, replica->socket, current_environment());
    if (!env) return env.error();
    rt.env = std::move(*env);
    rt.working_dir = runtime_working_dir(actor).string();
    rt.log_path = (logs / fmt::format("{}.runtime.log", index)).string();
    rt.isolate_network = actor.isolation.network == manifest::RuntimeNetwork::kNone;
    if (Status st = start_collected(replica->runtime, std::move(rt), replica->runtime_output, now);
        !st) {
      discard(*replica);
      return Error{fmt::format("{}: {}", name, st.message())};
    }
  }

  ProcessSpec sc;
  sc.argv = {options_.sidecar_binary};
  // The manifest -> sidecar mapping shared with `asya render` (manifest/sidecar_environment.hpp).
  ReplicaSidecar host{end_actor, replica->socket, replica->metrics_port};
  auto sidecar_env = replica_sidecar_environment(actor, host, options_, prefix_, base_env_);
  if (!sidecar_env) {
    discard(*replica);
    return Error{fmt::format("{}: sidecar: {}", name, sidecar_env.error().message)};
  }
  sc.env = std::move(*sidecar_env);
  sc.working_dir = options_.paths.root.string();
  sc.log_path = (logs / fmt::format("{}.sidecar.log", index)).string();
  if (Status st = start_collected(replica->sidecar, std::move(sc), replica->sidecar_output, now);
      !st) {
    discard(*replica);
    return Error{fmt::format("{}: {}", name, st.message())};
  }
  return replica;
}

}  // namespace asya::local
