// `asya results [ID]`: prints a stored final envelope, or lists the finished ids.
#pragma once

#include <string>

namespace asya::cli {

// Runs `asya results`; returns the exit code (1 when ID ended in error-end; or throws Exit
// through fail()).
int run_results(const std::string& state_dir, const std::string& id, bool as_json);

}  // namespace asya::cli
