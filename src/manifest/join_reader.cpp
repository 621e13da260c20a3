// spec.join (manifest.hpp Join): marks an actor as the join of a fan-out (PROTOCOL §4a).
#include <fmt/format.h>

#include "manifest/actor_reader.hpp"

namespace asya::manifest::detail {

void ActorReader::read_join(const YAML::Node& node, int line, Actor& actor) {
  const std::string f = "spec.join";
  Join join;
  if (node.IsNull()) {  // `join:` or `join: {}` with the defaults
    actor.join = join;
    return;
  }
  if (!mapping(node, line, f, {"timeout", "onTimeout", "store"})) return;
  if (auto n = node["timeout"]) {
    if (auto v = duration(n, f + ".timeout", std::chrono::milliseconds(1))) join.timeout = *v;
  }
  if (auto n = node["onTimeout"]) {
    if (auto v = string(n, f + ".onTimeout")) {
      if (*v == "error" || *v == "partial")
        join.on_timeout = *v;
      else
        error(n, line, f + ".onTimeout",
              fmt::format("\"{}\" is not allowed; use error (a timed-out group goes to error-end "
                          "as join_timeout) or partial (the handler gets what arrived)",
                          *v));
    }
  }
  if (auto n = node["store"]) {
    if (auto v = string(n, f + ".store")) {
      if (v->starts_with("postgresql://") || v->starts_with("postgres://") ||
          v->starts_with("sqlite://"))
        join.store = *v;
      else
        error(n, line, f + ".store",
              fmt::format("\"{}\" is not a join store URL; use postgresql://user@host:5432/db "
                          "(replicas on several hosts) or sqlite:///path/joins.db (one host)",
                          *v));
    }
  }
  actor.join = join;
}

}  // namespace asya::manifest::detail
