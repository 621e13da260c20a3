// The live table `asya up` redraws on a terminal (instead of log lines): actors, replicas, queue
// counts, counters and the recent events, from the same snapshot as status.json.
#pragma once

#include <string>

#include "local/status_writer.hpp"

namespace asya::local {

// The whole screen: clears it first, then the table and the last events.
std::string render_terminal_view(const SupervisorSnapshot& snapshot);

}  // namespace asya::local
