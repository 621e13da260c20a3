#include "local/actor_state.hpp"

#include <signal.h>

namespace asya::local {

bool Replica::ready(bool end_actor) const {
  if (!running() || !sidecar.running()) return false;
  std::error_code ec;
  return end_actor || std::filesystem::exists(socket.parent_path() / "runtime-ready", ec);
}

void Replica::begin_stop(std::chrono::milliseconds grace, SteadyClock::time_point now) {
  if (!running()) return;
  if (sidecar.running()) {
    phase = ReplicaPhase::kStoppingSidecar;
    deadline = now + grace + kKillAfterExtra;
    sidecar.stop(deadline);
  } else {
    phase = ReplicaPhase::kStoppingRuntime;
    deadline = now + kKillAfterExtra;
    runtime.stop(deadline);
  }
}

void Replica::enforce_deadline(SteadyClock::time_point now) {
  if (running() || now < deadline) return;
  sidecar.kill_now();
  runtime.kill_now();
}

std::optional<Replica::Exit> Replica::on_exit(pid_t pid, SteadyClock::time_point now) {
  Exit exit;
  if (sidecar.on_exit(pid, now))
    exit.sidecar = true;
  else if (!runtime.on_exit(pid, now))
    return std::nullopt;
  if (phase == ReplicaPhase::kRunning) {
    // Unexpected: a crash, or the sidecar giving up on a stuck runtime.
    exit.crashed = true;
    phase = ReplicaPhase::kCrashed;
    deadline = now + kKillAfterExtra;
    (exit.sidecar ? runtime : sidecar).stop(deadline);
  } else if (phase == ReplicaPhase::kStoppingSidecar && exit.sidecar) {
    phase = ReplicaPhase::kStoppingRuntime;
    deadline = now + kKillAfterExtra;
    runtime.stop(deadline);
  }
  return exit;
}

void ActorState::update_rate(SteadyClock::time_point now) {
  double total = processed();
  if (last_total_at != SteadyClock::time_point{}) {
    double seconds = std::chrono::duration<double>(now - last_total_at).count();
    if (seconds > 0) {
      double instant = std::max(0.0, total - last_total) / seconds;
      rate = 0.5 * rate + 0.5 * instant;
    }
  }
  last_total = total;
  last_total_at = now;
}

}  // namespace asya::local
