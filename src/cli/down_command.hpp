// `asya down`: stops a supervisor started with `asya up --detach` (its replicas drain first).
#pragma once

#include <string>

namespace asya::cli {

// Signals the supervisor of `state_dir` and waits up to `timeout_seconds` for it to stop; returns
// the exit code (or throws Exit through fail()).
int run_down(const std::string& state_dir, double timeout_seconds);

}  // namespace asya::cli
