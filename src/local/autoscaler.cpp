#include "local/autoscaler.hpp"

#include <algorithm>
#include <limits>

#include "common/scaling_policy.hpp"

namespace asya::local {

namespace {

// The replicas at the start of a policy's period: the current ones minus what was added and plus
// what was removed within the period (Kubernetes' getReplicasChangePerPeriod).
template <typename Events>
long replicas_at_period_start(int current, const Events& ups, const Events& downs,
                              std::chrono::seconds period, Autoscaler::Clock::time_point now) {
  long start = current;
  const auto cutoff = now - period;
  for (const auto& e : ups)
    if (e.at > cutoff) start -= e.change;
  for (const auto& e : downs)
    if (e.at > cutoff) start += e.change;
  return start;
}

}  // namespace

int Autoscaler::recommendation(std::uint64_t messages) const {
  const auto per_replica = static_cast<std::uint64_t>(std::max(scaling_.queue_length, 1));
  const std::uint64_t raw = (messages + per_replica - 1) / per_replica;
  return static_cast<int>(
      std::min<std::uint64_t>(raw, static_cast<std::uint64_t>(std::numeric_limits<int>::max())));
}

int Autoscaler::stabilized(int current, int recommended, Clock::time_point now) {
  // No scale-up window (kScaleUpStabilizationWindow is 0): a higher recommendation counts at once.
  static_assert(scaling::kScaleUpStabilizationWindow.count() == 0);
  const auto window = scaling::scale_down_stabilization_window(scaling_.cooldown_period);
  const auto cutoff = now - window;
  int highest = recommended;
  for (const auto& r : recommendations_)
    if (r.at > cutoff) highest = std::max(highest, r.replicas);
  recommendations_.push_back({now, recommended});
  while (!recommendations_.empty() && recommendations_.front().at <= cutoff)
    recommendations_.pop_front();
  return std::clamp(current, recommended, highest);
}

int Autoscaler::rate_limited(int current, int target, Clock::time_point now) const {
  const int floor = std::max(scaling_.min_replicas, 1);
  if (target > current) {
    long limit = std::numeric_limits<long>::min();  // selectPolicy Max: the largest step wins
    for (const scaling::Policy& p : scaling::kScaleUpPolicies) {
      long start = replicas_at_period_start(current, scale_ups_, scale_downs_, p.period, now);
      long proposed = p.type == scaling::PolicyType::kPods ? start + p.value
                                                           : (start * (100 + p.value) + 99) / 100;
      limit = std::max(limit, proposed);
    }
    limit = std::max<long>(limit, current);
    return static_cast<int>(std::min<long>({target, limit, scaling_.max_replicas}));
  }
  if (target < current) {
    long limit = std::numeric_limits<long>::max();  // selectPolicy Max: the largest step wins
    for (const scaling::Policy& p : scaling::kScaleDownPolicies) {
      long start = replicas_at_period_start(current, scale_ups_, scale_downs_, p.period, now);
      long proposed =
          p.type == scaling::PolicyType::kPods ? start - p.value : start * (100 - p.value) / 100;
      limit = std::min(limit, proposed);
    }
    limit = std::min<long>(limit, current);
    return static_cast<int>(std::max<long>({target, limit, floor}));
  }
  return target;
}

void Autoscaler::forget_old_events(Clock::time_point now) {
  std::chrono::seconds longest{0};
  for (const auto& p : scaling::kScaleUpPolicies) longest = std::max(longest, p.period);
  for (const auto& p : scaling::kScaleDownPolicies) longest = std::max(longest, p.period);
  for (auto* events : {&scale_ups_, &scale_downs_})
    while (!events->empty() && events->front().at <= now - longest) events->pop_front();
}

int Autoscaler::desired(int current, std::uint64_t messages, Clock::time_point now) {
  active_ = messages > static_cast<std::uint64_t>(scaling_.activation_queue_length);
  if (active_) last_active_ = now;

  // KEDA's part: activation from zero and deactivation to zero bypass the HPA.
  if (current == 0) return active_ ? std::max(scaling_.min_replicas, 1) : scaling_.min_replicas;
  if (!active_ && scaling_.min_replicas == 0 &&
      (!last_active_ || now - *last_active_ > scaling_.cooldown_period))
    return 0;

  // The HPA's part.
  forget_old_events(now);
  int next = current > scaling_.max_replicas ? scaling_.max_replicas
             : current < std::max(scaling_.min_replicas, 1)
                 ? std::max(scaling_.min_replicas, 1)
                 : rate_limited(current, stabilized(current, recommendation(messages), now), now);
  if (next > current) scale_ups_.push_back({now, next - current});
  if (next < current) scale_downs_.push_back({now, current - next});
  return next;
}

}  // namespace asya::local
