// The runner's deferred settling (runner.hpp): on a transport that settles together (SQLite), the
// decided messages of a group leased ahead wait until the group's last one is decided (or, when
// they have waited longer than ReceiveAhead::kBudget, until the call that made them wait ends:
// process_leased_ahead) and are then settled in one shared step (settle_batch: one
// send_then_ack_many, one write transaction), so each page the hop touches (the queues' tails, the
// index) is written once per group instead of once per message. Nothing waits for a message not yet
// received: a group is what one receive leased, and ReceiveAhead sizes it to about 10 ms of
// processing. A traced hop leaves the worker's thread when its decision is held (Hop::leave_thread)
// and records its publish and ack spans when the group settles, through a BatchHops that adopts it.
#include <algorithm>
#include <optional>

#include "sidecar/runner.hpp"

namespace asya::sidecar::detail {

namespace {

// The outputs held back at most, in bytes: a group of large outputs is settled as it goes.
constexpr std::size_t kDeferredBytes = 4u << 20;
// At most this many decisions wait (a group is at most ReceiveAhead's size, 8, today).
constexpr std::size_t kDeferredItems = 64;

std::size_t output_bytes(const Decision& decision) {
  std::size_t bytes = 0;
  for (const Outgoing& out : decision.sends) bytes += out.body_size();
  return bytes;
}

}  // namespace

bool Runner::may_defer(const std::vector<Deferred>& deferred, const Decision& decision) const {
  // A decision that stops the worker or makes it wait for the runtime is carried out at once.
  if (decision.runtime_unhealthy || decision.wait_for_runtime) return false;
  if (deferred.size() >= kDeferredItems) return false;
  std::size_t bytes = output_bytes(decision);
  for (const Deferred& d : deferred) bytes += output_bytes(d.decision);
  return bytes <= kDeferredBytes;
}

void Runner::settle_deferred(Slot& slot, wire::RuntimeClient& client,
                             std::vector<Deferred>& deferred, bool& need_ready) {
  if (deferred.empty()) return;
  // Traced hops: the group's publish and ack spans go to each item's own hop (as a batch's do),
  // and every hop exports its spans when `hops` goes, after the settle.
  std::optional<BatchHops> hops;
  for (Deferred& d : deferred) {
    if (!d.hop || !d.hop->active()) continue;
    if (!hops) hops.emplace(tracing_, 0);
    hops->adopt(std::move(d.hop));
  }
  std::vector<SettleItem> items;
  items.reserve(deferred.size());
  for (const Deferred& d : deferred)
    items.push_back(SettleItem{d.delivery, d.in ? &*d.in : nullptr, &d.decision, d.tracked});
  execute(slot, items);
  for (const Deferred& d : deferred)
    finish(slot, client, *d.delivery, d.in ? &*d.in : nullptr, d.decision, d.tracked, d.started,
           need_ready, /*settled=*/true);
  deferred.clear();
}

}  // namespace asya::sidecar::detail
