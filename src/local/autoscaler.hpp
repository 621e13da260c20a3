// The autoscaling rule of one actor, KEDA's semantics on the actor's own queue. Pure logic: the
// caller observes the queue and passes the time, so tests drive it with a fake clock.
//
//   messages = ready + in flight (delayed retries are not counted, as KEDA's queue length)
//   active   = messages > activationQueueLength
//   from zero replicas: start only when active, then ceil(messages / queueLength) clamped to
//                       [max(minReplicas, 1), maxReplicas]
//   above zero: the recommendation ceil(messages / queueLength) clamped to
//               [max(minReplicas, 1), maxReplicas]; scaling down follows the highest
//               recommendation of the last cooldownPeriod (HPA's stabilization window), scaling
//               up is immediate
//   to zero (minReplicas 0 only): once cooldownPeriod has passed since the last active
//                                 observation
//
// Not thread-safe; one instance per actor.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>

#include "manifest/manifest.hpp"

namespace asya::local {

class Autoscaler {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Autoscaler(const manifest::Scaling& scaling) : scaling_(scaling) {}

  // The number of replicas the actor should run, given the replicas it runs now (`current`) and
  // the messages of its queue observed at `now`. Calls must have non-decreasing `now`.
  int desired(int current, std::uint64_t messages, Clock::time_point now);

  // True when the last observation counted as work (messages > activationQueueLength).
  bool active() const { return active_; }

 private:
  int recommendation(std::uint64_t messages) const;

  manifest::Scaling scaling_;
  std::optional<Clock::time_point> last_active_;
  bool active_ = false;
  // Recommendations of the stabilization window: (time, replicas).
  std::deque<std::pair<Clock::time_point, int>> history_;
};

}  // namespace asya::local
