#include "local/terminal_view.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace asya::local {

namespace {

std::size_t user_actors(const SupervisorSnapshot& snapshot) {
  return static_cast<std::size_t>(std::count_if(snapshot.actors.begin(), snapshot.actors.end(),
                                                [](const auto& a) { return !a->end_actor; }));
}

}  // namespace

std::string render_terminal_view(const SupervisorSnapshot& snapshot) {
  const SupervisorOptions& options = snapshot.options;
  std::string out = "\x1b[H\x1b[2J";
  out += fmt::format("asya up: {} actors, transport {}, state {}   (Ctrl-C stops)\n",
                     user_actors(snapshot), options.transport, options.paths.root.string());
  if (!options.routes_file.empty())
    out += fmt::format("gateway: {} {}\n", options.gateway_url(),
                       snapshot.gateway_pid ? "(POST /tools/call, MCP /mcp)" : "(restarting)");
  out += "\n";
  out += fmt::format("{:<24} {:>9} {:>7} {:>9} {:>10} {:>7} {:>8}  {}\n", "ACTOR", "REPLICAS",
                     "QUEUE", "IN-FLIGHT", "PROCESSED", "ERRORS", "RATE/s", "STATE");
  for (const auto& actor : snapshot.actors) {
    std::string state = actor->streak.crash_looping()               ? "CRASH-LOOPING"
                        : snapshot.stopping                         ? "stopping"
                        : actor->live() == 0 && actor->desired == 0 ? "idle"
                                                                    : "running";
    out += fmt::format("{:<24} {:>9} {:>7} {:>9} {:>10} {:>7} {:>8.1f}  {}\n", actor->spec.name,
                       fmt::format("{}/{}", actor->ready(), actor->desired), actor->stats.ready,
                       actor->stats.in_flight, static_cast<std::uint64_t>(actor->processed()),
                       static_cast<std::uint64_t>(actor->errors()), actor->rate, state);
  }
  out += "\nrecent events:\n";
  for (const auto& e : snapshot.events) out += "  " + e + "\n";
  return out;
}

}  // namespace asya::local
