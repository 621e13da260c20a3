// status.json (local::StatusDocument) from the supervisor's state, written by its control loop
// (about once a second, and at once when `asya status` asks for a fresh one). SupervisorSnapshot
// is what terminal_view.hpp renders too.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "local/actor_state.hpp"
#include "local/status_document.hpp"
#include "local/supervisor.hpp"

namespace asya::local {

// What the status document and the terminal view show besides the actors.
struct SupervisorSnapshot {
  const SupervisorOptions& options;
  const std::vector<std::unique_ptr<ActorState>>& actors;
  const std::deque<std::string>& events;  // recent events, oldest first
  std::string queue_prefix;
  bool ready = false;     // every initial replica has been started
  bool stopping = false;  // shutting down
  pid_t gateway_pid = 0;  // 0: no gateway, or it is being restarted
  std::chrono::system_clock::time_point started;
};

// The document `asya status` reads. `now` dates the queue counts' age.
StatusDocument make_status_document(const SupervisorSnapshot& snapshot,
                                    SteadyClock::time_point now);

// Writes status.json atomically and reports changes of its outcome once each.
class StatusWriter {
 public:
  explicit StatusWriter(std::filesystem::path file) : file_(std::move(file)) {}

  // Writes `document`. Returns an event to log when writing started to fail (with the cause) or
  // works again; empty otherwise (so a full disk is said once, not every second).
  std::string write(const StatusDocument& document);

 private:
  std::filesystem::path file_;
  std::string last_error_;  // the last failure (empty: none)
};

}  // namespace asya::local
