#include "cli/down_command.hpp"

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "local/state.hpp"

namespace asya::cli {

using Clock = std::chrono::steady_clock;

int run_down(const std::string& state_dir, double timeout_seconds) {
  local::StatePaths paths(local::resolve_state_dir(state_dir));
  int pid = local::running_supervisor(paths);
  if (pid == 0) {
    std::cerr << fmt::format("asya: not running on {}; nothing to stop\n", paths.root.string());
    return 0;
  }
  if (pid < 0)
    fail(kExitError, fmt::format("asya down: the supervisor of {} holds its lock but "
                                 "its pid file is unreadable: {}",
                                 paths.root.string(), paths.pid_file().string()));
  if (::kill(pid, SIGTERM) != 0)
    fail(kExitError, fmt::format("asya down: cannot signal pid {}: {}", pid, std::strerror(errno)));
  std::cerr << fmt::format("asya: stopping (pid {}); replicas drain first\n", pid);
  auto deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<long>(timeout_seconds * 1000));
  while (Clock::now() < deadline) {
    if (local::running_supervisor(paths) == 0) {
      std::cerr << "asya: stopped\n";
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  fail(kExitError, fmt::format("asya down: pid {} still runs after {}s; run `asya down` again to "
                               "stop it at once (second signal), see {}",
                               pid, timeout_seconds, paths.supervisor_log().string()));
}

}  // namespace asya::cli
