#include "sidecar/lease_keeper.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/env.hpp"

namespace asya::sidecar {

using namespace std::chrono_literals;

void keep_leases(std::vector<std::unique_ptr<Slot>>& slots, transport::Transport& transport,
                 Metrics& metrics, std::chrono::milliseconds visibility, StopState& stop) {
  // A failed extension (e.g. the SQLite write lock busy) is retried at the next tick: several
  // ticks fit between the extension and the expiry.
  const auto tick = std::clamp<std::chrono::milliseconds>(visibility / 10, 10ms, 5s);
  while (!stop.wait_for(tick)) {
    for (auto& slot : slots) {
      std::lock_guard lock(slot->mutex);
      if (slot->abandoned) continue;
      auto now = std::chrono::steady_clock::now();
      if (now - slot->lease_since < visibility / 3) continue;
      // The single message in progress, or every unsettled message of the batch in progress.
      std::vector<const transport::Delivery*> held = slot->batch;
      if (slot->in_flight) held.push_back(slot->in_flight);
      bool all_ok = true;
      for (const transport::Delivery* delivery : held) {
        if (!delivery) continue;
        Status st = transport.extend_lease(*delivery, visibility);
        metrics.lease_extension(st.ok());
        if (!st) {
          all_ok = false;
          spdlog::warn(
              "cannot extend the lease of a message in progress on {} "
              "(ASYA_VISIBILITY_TIMEOUT={}): {}; it may be delivered again meanwhile",
              delivery->queue, format_duration(visibility), st.message());
        }
      }
      if (all_ok) slot->lease_since = now;
    }
  }
}

}  // namespace asya::sidecar
