#include "local/autoscaler.hpp"

#include <algorithm>

namespace asya::local {

int Autoscaler::recommendation(std::uint64_t messages) const {
  const auto per_replica = static_cast<std::uint64_t>(std::max(scaling_.queue_length, 1));
  const std::uint64_t raw = (messages + per_replica - 1) / per_replica;
  const int floor = std::max(scaling_.min_replicas, 1);
  if (raw >= static_cast<std::uint64_t>(scaling_.max_replicas)) return scaling_.max_replicas;
  return std::clamp(static_cast<int>(raw), floor, std::max(floor, scaling_.max_replicas));
}

int Autoscaler::desired(int current, std::uint64_t messages, Clock::time_point now) {
  active_ = messages > static_cast<std::uint64_t>(scaling_.activation_queue_length);
  if (active_) last_active_ = now;

  if (current == 0 && !active_) {
    history_.clear();
    return scaling_.min_replicas;
  }

  // Keep the recommendations of the stabilization window, newest last.
  history_.emplace_back(now, recommendation(messages));
  while (!history_.empty() && now - history_.front().first > scaling_.cooldown_period)
    history_.pop_front();

  if (!active_ && scaling_.min_replicas == 0 &&
      (!last_active_ || now - *last_active_ >= scaling_.cooldown_period)) {
    history_.clear();
    return 0;
  }
  if (current == 0) return history_.back().second;  // activation: no window to respect
  int highest = 0;
  for (const auto& [when, replicas] : history_) highest = std::max(highest, replicas);
  return highest;
}

}  // namespace asya::local
