// The autoscaling rule of one actor: what KEDA and the HPA do on Kubernetes with the ScaledObject
// `asya render` writes, applied on the actor's own queue. Pure logic: the caller observes the
// queue and passes the time, so tests drive it with a fake clock.
//
//   messages = ready + in flight (delayed retries are not counted, as KEDA's queue length)
//   active   = messages > activationQueueLength
//   KEDA's part, at zero and to zero:
//     from zero replicas: start max(minReplicas, 1) replicas, only when active
//     to zero (minReplicas 0 only): once cooldownPeriod has passed since the last active
//                                   observation
//   the HPA's part, above zero (its `behavior`, the numbers of common/scaling_policy.hpp):
//     recommendation ceil(messages / queueLength)
//     stabilized: never below the current replicas when the recommendation is higher (no
//                 scale-up window), never above the highest recommendation of the last
//                 cooldownPeriod (the scale-down stabilization window)
//     rate-limited: up by at most max(+100 %, +4) per 15 s, down by at most 50 % per 60 s,
//                   counted from the replicas at the start of each period (the scale events of
//                   this Autoscaler), and clamped to [max(minReplicas, 1), maxReplicas]
//
// `current` is the replica count decided before (the supervisor's desired count, as the HPA reads
// the workload's spec.replicas), not the replicas that happen to run at the moment.
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

  // The number of replicas the actor should run, given the replicas decided before (`current`)
  // and the messages of its queue observed at `now`. Calls must have non-decreasing `now`; the
  // caller is expected to apply the answer (it becomes the next call's `current`).
  int desired(int current, std::uint64_t messages, Clock::time_point now);

  // True when the last observation counted as work (messages > activationQueueLength).
  bool active() const { return active_; }

 private:
  struct Recommendation {
    Clock::time_point at;
    int replicas;
  };
  struct ScaleEvent {
    Clock::time_point at;
    int change;  // replicas added (scale-up events) or removed (scale-down events), > 0
  };

  int recommendation(std::uint64_t messages) const;
  int stabilized(int current, int recommended, Clock::time_point now);
  int rate_limited(int current, int target, Clock::time_point now) const;
  void forget_old_events(Clock::time_point now);

  manifest::Scaling scaling_;
  std::optional<Clock::time_point> last_active_;
  bool active_ = false;
  // Recommendations of the stabilization window, oldest first.
  std::deque<Recommendation> recommendations_;
  // Changes of the HPA part within the longest policy period, oldest first (KEDA's steps to and
  // from zero are not among them, as on Kubernetes).
  std::deque<ScaleEvent> scale_ups_;
  std::deque<ScaleEvent> scale_downs_;
};

}  // namespace asya::local
