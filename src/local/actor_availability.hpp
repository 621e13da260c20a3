// Whether the actors a message is routed to can take it, judged from the running supervisor's
// status.json: `asya send --wait` and `asya call` stop with the reason (docs/cli.md) instead of
// waiting their whole timeout for an actor that does not exist or keeps crashing. Pure: reads
// only its arguments.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "local/status_document.hpp"

namespace asya::local {

enum class Unavailability {
  kUnknown,       // the supervisor does not run this actor: its queue has no consumer here
  kCrashLooping,  // its replicas keep crashing at start; restarts are backed off
};

struct UnavailableActor {
  std::string actor;
  Unavailability reason = Unavailability::kUnknown;
  // For users: what is wrong with the actor (for a crash loop: the last crash, its last output
  // lines and where its logs are) and what to do. One or more lines.
  std::string message;
};

// The first actor of `actors` that cannot take a message according to `status`: one that is
// not among the supervisor's actors (unless `allow_unknown`: `--force`, for an actor run
// elsewhere, e.g. by another host sharing the broker), or one that is crash-looping with no
// replica ready (one that is ready again takes messages). End actors are never targets. nullopt
// when every actor can take it.
std::optional<UnavailableActor> find_unavailable_actor(const StatusDocument& status,
                                                       const std::vector<std::string>& actors,
                                                       bool allow_unknown);

}  // namespace asya::local
