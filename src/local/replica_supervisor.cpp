#include "local/replica_supervisor.hpp"

#include <sys/statvfs.h>
#include <sys/wait.h>

#include <algorithm>

#include <fmt/format.h>

#include "common/env.hpp"
#include "common/sidecar_exit_code.hpp"

namespace asya::local {

namespace fs = std::filesystem;
using Clock = SteadyClock;
using namespace std::chrono_literals;

namespace {

// The backoff of a crash caused by a full disk is capped at this, and the restart happens at
// once when free space reappears: freeing the disk should not wait for a 30 s backoff.
constexpr std::chrono::milliseconds kNoSpaceBackoff = 5s;
constexpr std::size_t kCrashOutputLines = 10;  // last lines of a crashed child's output kept

}  // namespace

void ReplicaSupervisor::reload(ActorState& actor, const fs::path& file, Clock::time_point now) {
  int restarted = 0;
  // A crash-looping handler that was just fixed should not wait out its backoff.
  actor.restart_at = now;
  for (auto& r : actor.replicas) {
    if (!r->running()) continue;
    r->begin_stop(actor.spec.timeout.graceful_shutdown, now);
    ++restarted;
  }
  event_(fmt::format("reload: {}: {} changed; restarting {} replica(s) after they drain",
                     actor.spec.name, file.string(), restarted));
}

bool ReplicaSupervisor::on_exit(ActorState& actor, pid_t pid, int status, Clock::time_point now) {
  {
    for (auto& r : actor.replicas) {
      auto exit = r->on_exit(pid, now);
      if (!exit) continue;
      if (!exit->crashed) return true;
      const std::string& name = actor.spec.name;
      // Unexpected: a crash, or the sidecar giving up on a stuck runtime.
      if (exit->sidecar && WIFEXITED(status) &&
          sidecar_exit_from_code(WEXITSTATUS(status)) == SidecarExit::kRuntimeTimeout) {
        r->timeout_restart = true;
        event_(fmt::format("{}: replica {} hit the processing timeout; restarting the pair", name,
                           r->index));
      } else {
        // Its last words come through the pipe even when its log file could not take them.
        const char* which = exit->sidecar ? "sidecar" : "runtime";
        auto tail = output_.tail(exit->sidecar ? r->sidecar_output : r->runtime_output,
                                 kCrashOutputLines, 300ms);
        r->crash_output = std::move(tail.lines);
        r->crash_reason = fmt::format(
            "{} {} (see {}{})", which, describe_exit(status),
            (options_.paths.actor_logs(name) / fmt::format("{}.{}.log", r->index, which)).string(),
            tail.log_error.empty() ? "" : "; " + tail.log_error);
      }
      actor.restarts++;
      if (!r->timeout_restart) record_crash(actor, *r, now);
      return true;
    }
  }
  return false;
}

// Counts a crash of `replica` (just detected) and sets when the actor may start a replacement
// (the actor's CrashStreak); the replacement waits for it even while the crashed pair is still
// being stopped.
void ReplicaSupervisor::record_crash(ActorState& actor, const Replica& r, Clock::time_point now) {
  auto verdict = actor.streak.record_crash(r.started, now);
  auto backoff = verdict.backoff;
  // A full disk (the runtime cannot write runtime-ready, a log, ...): retry soon, and at once
  // when space is freed (watch_free_space), instead of after the whole backoff.
  std::uint64_t free_now = free_bytes(actor);
  bool no_space = free_now < 64 * 1024 ||
                  std::any_of(r.crash_output.begin(), r.crash_output.end(), [](const auto& line) {
                    return line.find("No space left on device") != std::string::npos;
                  });
  actor.waiting_for_space = no_space;
  actor.free_bytes_at_crash = free_now;
  if (no_space) backoff = std::min(backoff, kNoSpaceBackoff);
  actor.restart_at = no_space ? now + backoff : std::max(actor.restart_at, now + backoff);
  actor.last_crash = r.crash_reason;
  actor.last_crash_output = r.crash_output;
  actor.last_crash_at = std::chrono::system_clock::now();
  if (verdict.entered_crash_loop) {
    event_(fmt::format(
        "{}: CRASH-LOOPING: {} quick crashes in a row; last: {}; restarting with backoff up to {}",
        actor.spec.name, actor.streak.quick_crashes(), r.crash_reason,
        format_duration(options_.restart_backoff_max)));
  } else {
    event_(fmt::format("{}: replica {} crashed: {}; restart in {}", actor.spec.name, r.index,
                       r.crash_reason, format_duration(backoff)));
  }
}

void ReplicaSupervisor::advance_stopping(ActorState& actor, Clock::time_point now) {
  for (auto it = actor.replicas.begin(); it != actor.replicas.end();) {
    Replica& r = **it;
    r.enforce_deadline(now);
    if (r.gone()) {
      output_.release(r.sidecar_output);
      output_.release(r.runtime_output);
      actor.retired_processed += r.processed;
      actor.retired_errors += r.errors;
      it = actor.replicas.erase(it);
    } else {
      ++it;
    }
  }
  // A replica that has run long enough clears the crash-loop state.
  for (const auto& r : actor.replicas) {
    if (r->running() && actor.streak.note_running(r->started, now)) {
      event_(fmt::format("{}: recovered from crash loop", actor.spec.name));
      break;
    }
  }
}

std::uint64_t ReplicaSupervisor::free_bytes(const ActorState& actor) const {
  std::uint64_t least = UINT64_MAX;
  for (const fs::path& dir : {options_.paths.actor_logs(actor.spec.name),
                              launcher_.socket_dir(actor.spec.name, 0).parent_path()}) {
    struct statvfs info {};
    if (::statvfs(dir.c_str(), &info) == 0)
      least = std::min<std::uint64_t>(least, std::uint64_t{info.f_bavail} * info.f_frsize);
  }
  return least;
}

void ReplicaSupervisor::watch_free_space(ActorState& actor, Clock::time_point now) {
  if (!actor.waiting_for_space || now >= actor.restart_at) return;
  // Checked once per tick (100 ms) while a full disk holds the actor back: two statvfs calls.
  if (free_bytes(actor) > actor.free_bytes_at_crash + 16 * 1024) {
    actor.waiting_for_space = false;
    actor.restart_at = now;
    event_(fmt::format("{}: disk space is available again; restarting now", actor.spec.name));
  }
}

void ReplicaSupervisor::reconcile(ActorState& actor, Clock::time_point now) {
  int live = actor.live();
  // The replacement of a crashed pair waits for the backoff (record_crash), not for the crashed
  // pair to be gone: a sidecar whose runtime never became ready can take until its SIGKILL.
  if (live < actor.desired && now >= actor.restart_at) {
    for (int i = live; i < actor.desired; ++i) {
      // The lowest index not in use, so logs and sockets are reused after restarts.
      int index = 0;
      while (std::any_of(actor.replicas.begin(), actor.replicas.end(),
                         [&](const auto& r) { return r->index == index; }))
        ++index;
      auto replica = launcher_.launch(actor.spec, actor.end_actor, index, now);
      if (!replica) {
        const std::string& message = replica.error().message;
        actor.last_crash = message;
        actor.last_crash_output.clear();
        actor.last_crash_at = std::chrono::system_clock::now();
        auto verdict = actor.streak.record_start_failure();
        actor.restart_at = now + verdict.backoff;
        event_(fmt::format("{}: cannot start a replica: {}; retrying in {}", actor.spec.name,
                           message, format_duration(verdict.backoff)));
        if (verdict.entered_crash_loop)
          event_(fmt::format("{}: CRASH-LOOPING: cannot start", actor.spec.name));
        break;
      }
      actor.replicas.push_back(std::move(*replica));
    }
  } else if (live > actor.desired) {
    // Stop the newest replicas; each drains before it exits.
    int excess = live - actor.desired;
    for (auto it = actor.replicas.rbegin(); it != actor.replicas.rend() && excess > 0; ++it) {
      if ((*it)->running()) {
        (*it)->begin_stop(actor.spec.timeout.graceful_shutdown, now);
        --excess;
      }
    }
  }
}

}  // namespace asya::local
