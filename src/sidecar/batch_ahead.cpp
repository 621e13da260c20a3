#include "sidecar/batch_ahead.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace asya::sidecar {

using Clock = std::chrono::steady_clock;

void BatchAhead::lease() {
  if (stop_.stopping()) return;
  {
    std::lock_guard lock(mutex_);
    if (leased_) return;  // the worker has not taken the previous one
  }
  const std::size_t max_size = std::max<std::size_t>(settings_.max_size, 1);
  Leased leased;
  leased.leased = Clock::now();
  auto received = transport_.receive(queue_, max_size, std::chrono::milliseconds(0));
  if (!received) {
    spdlog::debug("leasing the next batch ahead from {} failed: {}", queue_,
                  received.error().message);
    return;
  }
  if (received->empty()) return;
  if (metrics_)
    metrics_->receive_duration(std::chrono::duration<double>(Clock::now() - leased.leased).count());
  leased.deliveries.reserve(max_size);
  for (auto& delivery : *received) leased.deliveries.push_back(std::move(delivery));
  {
    std::lock_guard lock(slot_.mutex);
    // Abandoned: the shutdown path gave up on this worker and the process is about to exit; what
    // was just leased comes back after its lease.
    if (!slot_.abandoned)
      for (const auto& delivery : leased.deliveries) slot_.batch.push_back(&delivery);
  }
  std::lock_guard lock(mutex_);
  leased_ = std::move(leased);  // moves the vector's storage: the registered pointers stay valid
}

std::optional<BatchAhead::Leased> BatchAhead::take_leased() {
  std::lock_guard lock(mutex_);
  std::optional<Leased> out = std::move(leased_);
  leased_.reset();
  return out;
}

std::optional<BatchAhead::Leased> BatchAhead::take() {
  std::optional<Leased> leased = take_leased();
  if (leased) {
    count_redelivered(leased->deliveries, 0);
    top_up(*leased);
  }
  return leased;
}

void BatchAhead::count_redelivered(const std::vector<transport::Delivery>& deliveries,
                                   std::size_t from) {
  if (!metrics_) return;
  for (std::size_t i = from; i < deliveries.size(); ++i)
    if (deliveries[i].delivery_count > 1) metrics_->redelivered();
}

void BatchAhead::top_up(Leased& leased) {
  const std::size_t max_size = std::max<std::size_t>(settings_.max_size, 1);
  const std::size_t had = leased.deliveries.size();
  if (had >= max_size) return;
  // Within the capacity reserved when leased: the registered deliveries do not move.
  auto more = transport_.receive(queue_, max_size - had, std::chrono::milliseconds(0));
  if (!more) return;  // what was leased ahead goes as it is
  for (auto& delivery : *more) leased.deliveries.push_back(std::move(delivery));
  count_redelivered(leased.deliveries, had);
}

void BatchAhead::give_back() {
  std::optional<Leased> leased = take_leased();
  if (!leased) return;
  std::lock_guard lock(slot_.mutex);
  if (slot_.abandoned) return;
  for (const auto& delivery : leased->deliveries) {
    if (Status st = transport_.nack(delivery); !st)
      spdlog::warn("cannot return a message leased ahead to {}: {}", delivery.queue, st.message());
    std::replace(slot_.batch.begin(), slot_.batch.end(), &delivery,
                 static_cast<const transport::Delivery*>(nullptr));
  }
}

}  // namespace asya::sidecar
