// ActorReader::read_batching (actor_reader.hpp): spec.batching {maxSize, maxWait}.
#include <fmt/format.h>

#include "common/env.hpp"
#include "manifest/actor_reader.hpp"

namespace asya::manifest::detail {

void ActorReader::read_batching(const YAML::Node& node, int line, Actor& actor) {
  const std::string f = "spec.batching";
  if (!mapping(node, line, f, {"maxSize", "maxWait"})) return;
  Batching batching;
  bool ok = true;
  if (auto n = node["maxSize"]) {
    if (auto v = integer(n, f + ".maxSize", 1, kMaxBatchSize))
      batching.max_size = *v;
    else
      ok = false;
  } else {
    error(node, line, f + ".maxSize",
          fmt::format("missing; give the largest batch the handler takes, 1 to {}", kMaxBatchSize));
    ok = false;
  }
  if (auto n = node["maxWait"]) {
    if (auto v = duration(n, f + ".maxWait", std::chrono::milliseconds(0)))
      batching.max_wait = *v;
    else
      ok = false;
  }
  if (ok && batching.max_wait > actor.timeout.processing) {
    auto at = node["maxWait"] ? node["maxWait"] : node;
    error(
        at, line, f + ".maxWait",
        fmt::format("{} is longer than spec.timeout.processing ({}); use a wait no longer than "
                    "the processing timeout (typically a few milliseconds)",
                    format_duration(batching.max_wait), format_duration(actor.timeout.processing)));
    ok = false;
  }
  if (ok) actor.batching = batching;
}

}  // namespace asya::manifest::detail
