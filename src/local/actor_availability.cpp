#include "local/actor_availability.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace asya::local {
namespace {

bool is_end_actor(const StatusActor& actor) {
  return actor.end_actor || actor.name == "happy-end" || actor.name == "error-end";
}

std::string unknown_message(const StatusDocument& status, const std::string& actor) {
  std::string list;
  for (const auto& a : status.actors) {
    if (is_end_actor(a)) continue;
    list += (list.empty() ? "" : ", ") + a.name;
  }
  return fmt::format(
      "unknown actor \"{}\": the `asya up` running on {} runs {}; check the name, or add --force "
      "to queue the message for an actor that runs elsewhere (e.g. another host sharing the "
      "broker)",
      actor, status.state_dir, list.empty() ? std::string("no actors") : "only " + list);
}

std::string crash_loop_message(const StatusDocument& status, const StatusActor& actor) {
  std::string text = fmt::format(
      "actor \"{}\" is crash-looping ({} quick crash{} in a row, {} restart{}): its replicas "
      "exit right after they start, so nothing would process the message",
      actor.name, actor.crash_streak, actor.crash_streak == 1 ? "" : "es", actor.restarts,
      actor.restarts == 1 ? "" : "s");
  if (!actor.last_crash.empty()) text += fmt::format("\n  last crash: {}", actor.last_crash);
  for (const auto& line : actor.last_crash_output) text += fmt::format("\n  | {}", line);
  text += fmt::format(
      "\n  fix the cause (`asya logs {}` shows its logs in {}/logs/{}); the supervisor keeps "
      "restarting it with backoff, and a change to its manifest or handler needs a restart of "
      "`asya up`",
      actor.name, status.state_dir, actor.name);
  return text;
}

}  // namespace

std::optional<UnavailableActor> find_unavailable_actor(const StatusDocument& status,
                                                       const std::vector<std::string>& actors,
                                                       bool allow_unknown) {
  for (const auto& name : actors) {
    auto found = std::find_if(status.actors.begin(), status.actors.end(),
                              [&](const auto& a) { return a.name == name && !is_end_actor(a); });
    if (found == status.actors.end()) {
      if (allow_unknown) continue;
      return UnavailableActor{name, Unavailability::kUnknown, unknown_message(status, name)};
    }
    // A crash-looping actor whose replica is ready again (the cause went away, e.g. a full
    // disk was freed) takes messages; the state clears after it has run for a while.
    if (found->state == ActorActivity::kCrashLooping && found->replicas.ready == 0)
      return UnavailableActor{name, Unavailability::kCrashLooping,
                              crash_loop_message(status, *found)};
  }
  return std::nullopt;
}

}  // namespace asya::local
