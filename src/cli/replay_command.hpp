// `asya replay ID... [--from ACTOR]` and `asya replay --all-failed [--actor X] [--since WHEN]`:
// sends failed envelopes again (a dead-letter redrive). What a replayed envelope keeps and what it
// changes is in envelope/replay.hpp; the failed record moves to <state>/results/replayed/, so
// `asya results --failed` lists only failures that were not replayed, and a replay that fails
// again is listed again.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace asya::cli {

struct ReplayArgs {
  std::string state_dir;
  std::vector<std::string> ids;
  std::string from;         // start at this actor of the route; empty: the actor that failed
  bool all_failed = false;  // every failed envelope (filtered by actor and since)
  std::string actor;        // with --all-failed: only those that failed at this actor
  std::string since;        // with --all-failed: only those stored since then
  std::string deadline;     // a new deadline, a duration from now; empty: none
  bool force = false;       // also to an actor the running `asya up` does not run
};

// Adds the `replay` subcommand to `app`, filling `args`; the caller runs run_replay when it was
// given.
CLI::App* add_replay_command(CLI::App& app, ReplayArgs& args);

// Replays and prints each replayed id on stdout. Exit 0 when every envelope was sent, 1 when some
// could not be, 2 for usage errors (e.g. --from naming an actor outside the route of the only id),
// 3 when an ID has no failed result.
int run_replay(const ReplayArgs& args);

}  // namespace asya::cli
