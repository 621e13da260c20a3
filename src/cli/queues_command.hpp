// `asya queues`: ready, in-flight and delayed messages per queue of the state dir's transport;
// `asya queues purge QUEUE`: removes the messages waiting in one queue.
#pragma once

#include <string>

namespace asya::cli {

// Runs `asya queues`; returns the exit code (or throws Exit through fail()).
int run_queues(const std::string& state_dir, bool as_json);

struct PurgeArgs {
  std::string state_dir;
  std::string queue;  // a queue name as `asya queues` lists it, or an actor name
  bool json = false;
};

// Runs `asya queues purge`: prints the queue and how many messages were removed (when the
// transport can tell). An unknown queue is exit 3 listing the known ones.
int run_queues_purge(const PurgeArgs& args);

}  // namespace asya::cli
