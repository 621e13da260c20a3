// `asya results [ID] [--failed] [--since WHEN] [--actor X]`: prints a stored final envelope, lists
// the finished ids, or lists the failed envelopes with the actor and error that ended them.
#pragma once

#include <string>

namespace asya::cli {

struct ResultsArgs {
  std::string state_dir;
  std::string id;
  bool json = false;
  bool failed = false;  // only error-end results, with actor, error type and message
  std::string since;    // a duration back from now or an RFC 3339 time; empty: all
  std::string actor;    // with --failed: only those that failed at this actor
};

// Runs `asya results`; returns the exit code (1 when ID ended in error-end; or throws Exit
// through fail()).
int run_results(const ResultsArgs& args);

}  // namespace asya::cli
