// Which acks the consumer writes when (consumer.hpp: coalesce_acks, plan_acks): pure functions of
// the tags settled and held, tested without a broker (RabbitmqAckTest).
#include <algorithm>

#include "transport/rabbitmq/consumer.hpp"

namespace asya::transport::rabbitmq {

std::pair<std::uint64_t, std::vector<std::uint64_t>> coalesce_acks(
    const std::vector<std::uint64_t>& tags, std::uint64_t floor) {
  auto split = std::lower_bound(tags.begin(), tags.end(), floor);
  std::vector<std::uint64_t> singles;
  if (split - tags.begin() < 2) return {0, tags};
  singles.assign(split, tags.end());
  return {*(split - 1), std::move(singles)};
}

AckPlan plan_acks(const std::map<std::uint64_t, std::chrono::steady_clock::time_point>& settled,
                  std::uint64_t floor, int prefetch, bool others_held,
                  std::chrono::steady_clock::time_point now, bool all) {
  AckPlan plan;
  if (settled.empty()) return plan;
  const auto due = now - kAckHold;
  auto oldest = settled.begin()->second;
  for (const auto& [tag, when] : settled) oldest = std::min(oldest, when);
  const auto count = static_cast<std::int64_t>(settled.size());
  // Nothing else held (a lone message), a quarter of the prefetch settled, or one waiting long
  // enough: the acks below the floor go now.
  if (!all && others_held && count * 4 < prefetch && oldest > due) return plan;
  std::vector<std::uint64_t> tags;
  for (const auto& [tag, when] : settled) tags.push_back(tag);
  auto [multiple, singles] = coalesce_acks(tags, floor);
  plan.multiple = multiple;
  // Those above the floor wait for the deliveries below them (one basic.ack(multiple) covers
  // all once these are settled), unless half the prefetch is held up so (a slow message must not
  // stall the others) or one waited kAckHold.
  const bool pressed = all || count * 2 >= prefetch;
  std::erase_if(singles, [&](std::uint64_t tag) {
    return tag >= floor && !pressed && settled.at(tag) > due;
  });
  plan.singles = std::move(singles);
  return plan;
}

}  // namespace asya::transport::rabbitmq
