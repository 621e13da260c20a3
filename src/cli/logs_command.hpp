// `asya logs [ACTOR] [-n N] [-f] [--pretty]`: the logs of every process (supervisor, gateway, each
// actor's sidecars and runtimes), or of one actor's, merged by time.
#pragma once

#include <string>

namespace asya::cli {

struct LogsArgs {
  std::string state_dir;
  std::string actor;  // empty: every process; "gateway", "supervisor": that process's log
  int lines = 0;      // > 0: only the last N lines of the merged output
  bool follow = false;
  bool pretty = false;
};

// Runs `asya logs`; with `follow` it prints until interrupted. Returns the exit code (or throws
// Exit through fail()).
int run_logs(const LogsArgs& args);

}  // namespace asya::cli
