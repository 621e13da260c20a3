// `asya status`: the actors of the running supervisor, from its status.json.
#pragma once

#include <string>

namespace asya::cli {

// Runs `asya status`; returns the exit code (3 when nothing runs; or throws Exit through fail()).
int run_status(const std::string& state_dir, bool as_json);

}  // namespace asya::cli
