// `asya logs [ACTOR]`: prints (and with -f follows) an actor's logs or the supervisor's.
#pragma once

#include <string>

namespace asya::cli {

// Runs `asya logs`; with `follow` it prints until interrupted. Returns the exit code (or throws
// Exit through fail()).
int run_logs(const std::string& state_dir, const std::string& actor, int lines, bool follow);

}  // namespace asya::cli
