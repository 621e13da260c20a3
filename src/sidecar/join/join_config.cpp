#include "sidecar/join/join_config.hpp"

#include <fmt/format.h>

namespace asya::sidecar::join {

JoinConfig load_join_config(const Environment& environment) {
  JoinConfig c;
  c.enabled = environment.boolean("ASYA_JOIN", false);
  if (!c.enabled) return c;
  c.timeout = environment.duration("ASYA_JOIN_TIMEOUT", c.timeout);
  if (c.timeout.count() <= 0)
    throw ConfigError(
        fmt::format("ASYA_JOIN_TIMEOUT=\"{}\" is not valid: use a positive duration (e.g. 30s, 5m)",
                    environment.string("ASYA_JOIN_TIMEOUT", "")));
  c.on_timeout =
      environment.choice("ASYA_JOIN_ON_TIMEOUT", "error", {"error", "partial"}) == "partial"
          ? OnTimeout::kPartial
          : OnTimeout::kError;
  const std::string queues = environment.string("ASYA_SQLITE_PATH", ".asya/queues.db");
  const auto slash = queues.rfind('/');
  const std::string_view dir = slash == std::string::npos ? std::string_view(".")
                               : slash == 0               ? std::string_view("")
                                            : std::string_view(queues).substr(0, slash);
  c.store_url = environment.string("ASYA_JOIN_STORE", fmt::format("sqlite://{}/joins.db", dir));
  return c;
}

}  // namespace asya::sidecar::join
