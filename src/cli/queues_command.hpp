// `asya queues`: ready, in-flight and delayed messages per queue of the state dir's transport.
#pragma once

#include <string>

namespace asya::cli {

// Runs `asya queues`; returns the exit code (or throws Exit through fail()).
int run_queues(const std::string& state_dir, bool as_json);

}  // namespace asya::cli
