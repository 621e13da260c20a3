// Settling a whole batch at once (internal to the sidecar binary): the outputs of every item of a
// batch in one Transport::send_many, then the acks of the items whose outputs are all durable in
// one Transport::ack_many. On SQLite that is about two write transactions per batch instead of
// one per output and one per ack (transport.hpp); other transports loop.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "sidecar/router.hpp"

namespace asya::sidecar {

// One decided item of a batch.
struct SettleItem {
  const transport::Delivery* delivery = nullptr;
  const envelope::Envelope* in = nullptr;  // nullptr when the body did not parse
  const Decision* decision = nullptr;
  bool tracked = false;  // for the runner: the gateway tracks the envelope (not used here)
};

// What Router::settle() does for each item, with the same per-item guarantees: an item is acked
// only after every one of its own outputs was reported durable; an item one of whose sends failed
// is nacked (redelivered with its delivery count + 1), its outputs that were sent stay sent
// (at-least-once), and the other items are not affected; an output refused as message_too_large
// goes through Router::settle() for that item alone (rebuilt smaller, or the input to error-end
// instead); a decision to nack is carried out alone. A single item is settled by Router::settle()
// itself. On a transport that settles together (Transport::settles_together(): SQLite), the items
// to ack whose outputs fit its limit are settled first as steps of one send_then_ack_many() (each
// item's outputs and ack all or nothing, one shared write transaction); the rest, and any step the
// transport did not do, as above. Returns one Settlement per item, in order. `hooks.after_send` is
// given, for each output of the shared send, its share of the send_many call's time (the call's
// time / its outputs), so the send durations of a batch add up to the time it spent sending.
std::vector<Settlement> settle_batch(const Router& router, transport::Transport& transport,
                                     std::span<const SettleItem> items,
                                     const SendHooks& hooks = {});

// settle_batch() in two steps, for a caller that starts the next batch while this one's outputs
// wait to become durable (the settle window on RabbitMQ). The constructor hands every output of
// every item to Transport::start_send_many() (`on_ready` as there: called from any thread when
// ready() may have turned true); finish() waits for them and settles each item with the same
// per-item guarantees as settle_batch() (nack on a failed send, too large outputs settled again
// alone, a decision to nack carried out, the acks of the rest in one ack_many after the crash
// point sidecar.before_ack). Nothing is acked or nacked before finish(). The items (and what they
// point to) and the hooks must outlive it; finish() is called once, on the thread that owns it.
class StartedSettle {
 public:
  StartedSettle(const Router& router, transport::Transport& transport,
                std::span<const SettleItem> items, const SendHooks& hooks,
                std::function<void()> on_ready);
  StartedSettle(const StartedSettle&) = delete;
  StartedSettle& operator=(const StartedSettle&) = delete;
  // Whether finish() would not wait for the transport's sends.
  bool ready();
  // One Settlement per item, in order.
  std::vector<Settlement> finish();

 private:
  const Router& router_;
  transport::Transport& transport_;
  std::span<const SettleItem> items_;
  const SendHooks& hooks_;
  std::vector<MessageStorage> storage_;  // the messages point into it
  std::vector<transport::OutgoingMessage> messages_;
  std::vector<std::size_t> first_;  // item i's outputs: [first_[i], first_[i + 1])
  std::chrono::steady_clock::time_point started_;
  std::unique_ptr<transport::Transport::SendsInFlight> sends_;  // null: no outputs
};

}  // namespace asya::sidecar
