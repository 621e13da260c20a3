#include "local/status_writer.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace asya::local {

StatusDocument make_status_document(const SupervisorSnapshot& snapshot,
                                    SteadyClock::time_point now) {
  const SupervisorOptions& options = snapshot.options;
  StatusDocument doc;
  doc.pid = ::getpid();
  doc.state_dir = options.paths.root.string();
  doc.transport = options.transport;
  doc.queue_prefix = snapshot.queue_prefix;
  doc.ready = snapshot.ready;
  if (!options.routes_file.empty())
    doc.gateway = StatusGateway{options.gateway_url(), options.routes_file, snapshot.gateway_pid,
                                snapshot.gateway_pid != 0};
  doc.stopping = snapshot.stopping;
  doc.started =
      std::chrono::duration_cast<std::chrono::seconds>(snapshot.started.time_since_epoch()).count();
  doc.updated = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  for (const auto& actor : snapshot.actors) {
    StatusActor a;
    a.name = actor->spec.name;
    a.end_actor = actor->end_actor;
    for (const auto& r : actor->replicas)
      a.processes.push_back({r->index, r->sidecar.pid(), r->runtime.pid(), r->running()});
    a.replicas = {actor->ready(), actor->live(),
                  static_cast<int>(actor->replicas.size()) - actor->live(), actor->desired};
    if (!actor->end_actor) {
      const auto& s = actor->spec.scaling;
      a.scaling = StatusScaling{s.enabled, s.min_replicas, s.max_replicas, s.queue_length};
    }
    a.queue.name = snapshot.queue_prefix + actor->spec.name;
    a.queue.ready = actor->stats.ready;
    a.queue.in_flight = actor->stats.in_flight;
    a.queue.delayed = actor->stats.delayed;
    // How old the counts are, and why they are not current (a broker that does not answer).
    if (actor->stats_read_at != SteadyClock::time_point{})
      a.queue.age_seconds =
          std::round(std::chrono::duration<double>(now - actor->stats_read_at).count() * 10) / 10;
    a.queue.stats_error = actor->stats_error;
    a.processed = static_cast<std::uint64_t>(actor->processed());
    a.errors = static_cast<std::uint64_t>(actor->errors());
    a.rate = std::round(actor->rate * 10) / 10;
    a.state = ActorActivity::kRunning;
    if (actor->streak.crash_looping())
      a.state = ActorActivity::kCrashLooping;
    else if (snapshot.stopping)
      a.state = ActorActivity::kStopping;
    else if (actor->live() == 0 && actor->desired == 0)
      a.state = ActorActivity::kIdle;
    else if (actor->live() < actor->desired)
      a.state = ActorActivity::kStarting;
    a.restarts = actor->restarts;
    a.crash_streak = actor->streak.quick_crashes();
    a.last_crash = actor->last_crash;
    a.last_crash_output.assign(actor->last_crash_output.begin(), actor->last_crash_output.end());
    if (!actor->last_crash.empty())
      a.last_crash_at =
          std::chrono::duration_cast<std::chrono::seconds>(actor->last_crash_at.time_since_epoch())
              .count();
    doc.actors.push_back(std::move(a));
  }
  doc.events.assign(snapshot.events.begin(), snapshot.events.end());
  return doc;
}

std::string StatusWriter::write(const StatusDocument& document) {
  Status written = write_file_atomic(file_, document.to_text());
  std::string event;
  // Said once per cause (and once when it works again): `asya status` shows the file's age.
  if (!written && written.message() != last_error_) {
    event = fmt::format(
        "cannot write status.json ({}); `asya status` shows the last written state and how old "
        "it is",
        written.message());
  } else if (written && !last_error_.empty()) {
    event = "status.json is written again";
  }
  last_error_ = written.message();
  return event;
}

}  // namespace asya::local
