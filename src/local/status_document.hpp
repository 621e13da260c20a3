// status.json: the state a running supervisor writes about once a second (StatePaths::
// status_file()), read by `asya status`, by `asya call` (the gateway's URL) and by the client
// commands (transport, queue prefix, the supervised queues). The supervisor fills a
// StatusDocument and writes to_text(); every reader goes through read_status_document(), so the
// file has one definition. `asya status --json` prints to_json() plus what the reader adds
// (running, age_seconds, stale).
#pragma once

#include <boost/json/fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace asya::local {

// What an actor is doing, as `asya status` shows it.
enum class ActorActivity {
  kRunning,       // its desired replicas run
  kStarting,      // fewer replicas run than desired
  kIdle,          // scaled to zero
  kStopping,      // the supervisor shuts down
  kCrashLooping,  // its replicas keep crashing; restarts are backed off
};

// "running", "starting", "idle", "stopping", "crash-looping".
std::string_view label(ActorActivity activity);
std::optional<ActorActivity> parse_actor_activity(std::string_view text);

struct StatusGateway {
  std::string url;     // http://host:port
  std::string routes;  // the routes file it serves
  int pid = 0;         // 0 while it is restarted
  bool running = false;
  bool operator==(const StatusGateway&) const = default;
};

// One replica's pair of processes (pids, 0 when that process is gone).
struct StatusProcess {
  int replica = 0;
  int sidecar = 0;
  int runtime = 0;
  bool running = false;
  bool operator==(const StatusProcess&) const = default;
};

struct StatusReplicas {
  int ready = 0;     // running, and the runtime reported ready
  int running = 0;   // running (not being stopped)
  int stopping = 0;  // asked to stop, still draining
  int desired = 0;   // what the autoscaler (or spec.replicas) asks for
  bool operator==(const StatusReplicas&) const = default;
};

struct StatusScaling {
  bool enabled = false;
  int min = 0;
  int max = 0;
  int queue_length = 0;
  bool operator==(const StatusScaling&) const = default;
};

struct StatusQueue {
  std::string name;
  std::uint64_t ready = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t delayed = 0;
  std::optional<double> age_seconds;  // how old the counts are; none before the first read
  std::string stats_error;            // why the counts are not current; empty when they are
  bool operator==(const StatusQueue&) const = default;
};

struct StatusActor {
  std::string name;
  bool end_actor = false;
  std::vector<StatusProcess> processes;
  StatusReplicas replicas;
  std::optional<StatusScaling> scaling;  // none for end actors
  StatusQueue queue;
  std::uint64_t processed = 0;
  std::uint64_t errors = 0;
  double rate = 0;  // messages per second, smoothed
  ActorActivity state = ActorActivity::kRunning;
  int restarts = 0;
  int crash_streak = 0;                        // quick crashes in a row
  std::string last_crash;                      // empty: none
  std::vector<std::string> last_crash_output;  // its last lines
  std::optional<std::int64_t> last_crash_at;   // seconds since the epoch
  bool operator==(const StatusActor&) const = default;
};

struct StatusDocument {
  int pid = 0;  // the supervisor
  std::string state_dir;
  std::string transport;
  std::string queue_prefix;
  bool ready = false;  // every actor started (asya up --detach returns then)
  std::optional<StatusGateway> gateway;
  bool stopping = false;
  std::int64_t started = 0;  // seconds since the epoch
  std::int64_t updated = 0;  // milliseconds since the epoch: when this was written
  std::vector<StatusActor> actors;
  std::vector<std::string> events;  // recent supervisor events, oldest first
  bool operator==(const StatusDocument&) const = default;

  boost::json::object to_json() const;
  // to_json() as one line of JSON text, with a trailing newline (the file's content).
  std::string to_text() const;

  // The document in `value`. The error names the field ("actors[1].queue.name: expected a
  // string, got 3"). Unknown fields are ignored (a newer writer may add some).
  static Result<StatusDocument> from_json(const boost::json::value& value);
  static Result<StatusDocument> parse(std::string_view text);
};

// Reads and parses `file` (normally StatePaths::status_file()). The error names the file and
// what is wrong with it (unreadable, not JSON, a field).
Result<StatusDocument> read_status_document(const std::filesystem::path& file);

}  // namespace asya::local
