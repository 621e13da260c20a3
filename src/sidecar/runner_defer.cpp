// The runner's deferred settling (runner.hpp): on a transport that settles together (SQLite), the
// decided messages of a group leased ahead wait until the group's last one is decided, or until
// they have waited ReceiveAhead::kBudget (10 ms), and are then settled in one shared step
// (settle_batch: one send_then_ack_many, one write transaction), so each page the hop touches (the
// queues' tails, the index) is written once per group instead of once per message. Nothing waits
// for a message not yet received (a group is what one receive leased, and ReceiveAhead sizes it to
// about 10 ms of processing), and nothing waits for a slow call: when the budget runs out during a
// runtime call of the group's next message, the call's wait for its answer settles them, on the
// worker's thread (RuntimeClient::arm_while_waiting, armed in process_actor), and the call goes
// on; between calls process_leased_ahead settles them. So an output is held about the budget at
// most, whatever its siblings' handlers do (a handler of minutes, or one that waits for something
// downstream of the held output, would otherwise hold it, or deadlock on it). Settling from the
// call's wait is safe: it never uses the client in the call (finish uses it only for a decision
// that waits for the runtime, never held: may_defer), nor the worker's scratch buffer, and it
// leaves the message in flight in flight (finish clears slot.in_flight only for its own
// delivery). A traced hop leaves the worker's thread when its decision is held
// (Hop::leave_thread) and records its publish and ack spans when the group settles, through a
// BatchHops that adopts it.
#include <algorithm>

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
  // and every hop exports its spans when `hops` goes, after the settle. Always a current batch,
  // even of no traced hop: settled during the next message's call, none of the group's spans may
  // go to that message's hop (the thread's current one).
  BatchHops hops(tracing_, 0);
  for (Deferred& d : deferred)
    if (d.hop && d.hop->active()) hops.adopt(std::move(d.hop));
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
