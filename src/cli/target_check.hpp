// Fail fast for callers: `asya send --wait` and `asya call` check, before they send and while
// they wait, that the actors their message goes to can take it (local/actor_availability.hpp),
// from the status.json of the supervisor running on the state directory. Without a running
// supervisor nothing is known and nothing is checked (the message waits for one).
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "local/actor_availability.hpp"
#include "local/state.hpp"

namespace asya::cli {

// Why `actors` cannot take a message now, or nullopt (also when no supervisor runs on `paths` or
// its status.json cannot be read).
std::optional<local::UnavailableActor> unavailable_actor(const local::StatePaths& paths,
                                                         const std::vector<std::string>& actors,
                                                         bool allow_unknown);

// For `asya call`: the actors tool `tool` routes to, when `gateway_url` is the gateway of the
// supervisor running on `paths` (read from the routes file it serves); empty otherwise (another
// gateway, or a tool that file does not define: the gateway answers that).
std::vector<std::string> tool_actors(const local::StatePaths& paths, const std::string& gateway_url,
                                     const std::string& tool);

// Reads status.json every 500 ms in a thread of its own while a caller waits. When an actor of
// `actors` becomes unavailable it records why and sets cancel_flag(), which the caller gives to
// its blocking HTTP request (http::Request::cancel). Stops its thread on destruction.
class AvailabilityWatch {
 public:
  AvailabilityWatch(local::StatePaths paths, std::vector<std::string> actors, bool allow_unknown);
  ~AvailabilityWatch();
  AvailabilityWatch(const AvailabilityWatch&) = delete;
  AvailabilityWatch& operator=(const AvailabilityWatch&) = delete;

  const std::atomic<bool>* cancel_flag() const { return &unavailable_; }
  // Why the wait should stop; nullopt while every actor can take the message. Thread-safe.
  std::optional<local::UnavailableActor> unavailable() const;

 private:
  local::StatePaths paths_;
  std::vector<std::string> actors_;
  bool allow_unknown_;
  std::atomic<bool> unavailable_{false};
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::optional<local::UnavailableActor> why_;  // under mutex_
  std::thread thread_;
};

}  // namespace asya::cli
