// The runner's settle steps (runner.hpp): settling decided messages on the transport, and the
// settle window (settle_window.hpp) that lets a worker take its next message while the
// publishes of the previous ones wait for their confirms.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "sidecar/batch_settle.hpp"
#include "sidecar/runner.hpp"

namespace asya::sidecar::detail {

namespace {

// Settling threads of the window: enough that a decided message rarely waits for one to be free
// (each waits about one confirm round trip per batch it takes).
constexpr std::size_t kSettleThreads = 4;
// Items handed over and not settled yet; the transport's prefetch is normally the bound.
constexpr std::size_t kSettlePending = 1024;
// Items one thread settles together (one send_many, one ack_many).
constexpr std::size_t kSettleBatch = 64;

}  // namespace

void Runner::count_decision(const transport::Delivery& delivery, const Decision& decision) {
  if (decision.failure == FailureCode::kMaxDeliveriesExceeded) metrics_.poison();
  if (decision.failure == FailureCode::kDeadlineExceeded) metrics_.deadline_exceeded();
  if (decision.retried) metrics_.retry();
  if (decision.consumed_copy) metrics_.consumed_copy_dropped();
  if (decision.failure) metrics_.failed(decision.failure.label());
  if (decision.failure && decision.status != ProcessedStatus::kRetry)
    spdlog::info("message failed: {} (delivery {}) -> {}", decision.failure.label(),
                 delivery.delivery_count, decision.then == Then::kAck ? "error-end" : "nack");
}

void Runner::settle_items(std::span<const SettleItem> items,
                          std::vector<const transport::Delivery*>* batch) {
  std::vector<SettleItem> held;
  for (const SettleItem& item : items) {
    if (transport_->still_held(*item.delivery)) {
      held.push_back(item);
      continue;
    }
    // Lost with its connection while it was processed: the broker delivers it again, and the
    // outputs sent now would be duplicates downstream of the ones that redelivery sends.
    spdlog::warn(
        "the connection that delivered this message from {} was lost while it was processed; "
        "its outputs are not sent (the broker delivers it again)",
        item.delivery->queue);
    metrics_.failed(label(FailureCode::kDeliveryLost));
  }
  SendHooks hooks;
  hooks.after_send = [&](const Outgoing& out, double seconds, const Status& st) {
    metrics_.send_duration(out.queue, seconds);
    record_publish(out, seconds, st.ok());
    if (st) {
      metrics_.sent(out.queue, message_type_label(out.type));
      metrics_.envelope_size("sent", out.body_size());
    }
  };
  std::vector<Settlement> settled = settle_batch(*router_, *transport_, held, hooks);
  for (std::size_t i = 0; i < held.size(); ++i) {
    log::EnvelopeScope scope(held[i].in ? std::string_view(held[i].in->id) : "unparseable");
    const transport::Delivery* none = nullptr;
    if (batch) std::replace(batch->begin(), batch->end(), held[i].delivery, none);
    record_settle(*held[i].delivery, settled[i].acked, settled[i].nacked);
    // Consumed: the hold token of its payload reference is released (payload/lifetime.hpp).
    if (settled[i].acked && held[i].in && payloads_.references)
      payloads_.references->consumed(*held[i].in, *held[i].decision);
    if (settled[i].too_large) {
      metrics_.failed(label(FailureCode::kMessageTooLarge));
      spdlog::warn("an output was refused by the transport as too large; sent to error-end");
    }
    if (!settled[i].error.empty()) {
      spdlog::error("{}", settled[i].error);
      if (!settled[i].acked && settled[i].nacked) metrics_.failed(label(FailureCode::kSendFailed));
    }
  }
}

void Runner::open_settle_window() {
  // Plain actors only: an end actor settles by storing, a join by its groups, a batch by its own
  // settler (batch_settler.hpp).
  if (!transport_->holds_until_settled() || config_.is_end_actor || config_.join.enabled ||
      batching_.enabled())
    return;
  settle_window_ = std::make_unique<SettleWindow>(
      [this](std::span<PendingSettle* const> pending) { settle_pending(pending); }, kSettleThreads,
      kSettlePending, kSettleBatch);
}

std::unique_ptr<PendingSettle> Runner::adopt(Slot& slot, transport::Delivery& delivery) {
  if (!settle_window_) return nullptr;
  auto pending = std::make_unique<PendingSettle>();
  pending->delivery = std::move(delivery);
  // Leased ahead with others: the shutdown path finds it at its new address.
  std::lock_guard lock(slot.mutex);
  std::replace(slot.batch.begin(), slot.batch.end(),
               static_cast<const transport::Delivery*>(&delivery),
               static_cast<const transport::Delivery*>(&pending->delivery));
  return pending;
}

void Runner::hand_over(Slot& slot, std::unique_ptr<PendingSettle> pending,
                       Result<envelope::Envelope>& parsed, Decision& decision, bool tracked,
                       Clock::time_point started) {
  count_decision(pending->delivery, decision);
  if (parsed) pending->in.emplace(std::move(*parsed));
  pending->decision = std::move(decision);
  pending->tracked = tracked;
  pending->started = started;
  {
    // From here the window holds it: the shutdown path returns it from there if not started.
    std::lock_guard lock(slot.mutex);
    // Past the shutdown grace: the shutdown path returned it already (and abandons the window,
    // whose submit() would keep it unsettled anyway).
    if (slot.abandoned) return;
    slot.in_flight = nullptr;
    std::replace(slot.batch.begin(), slot.batch.end(),
                 static_cast<const transport::Delivery*>(&pending->delivery),
                 static_cast<const transport::Delivery*>(nullptr));
  }
  const std::size_t settling = settle_window_->submit(std::move(pending));
  // For tests: a crash while more messages are settling than workers could hold (docs/sidecar.md,
  // "Crash points for fault-injection tests").
  if (settling > 2 * static_cast<std::size_t>(config_.concurrency))
    failpoint("sidecar.settles_pending");
}

void Runner::settle_pending(std::span<PendingSettle* const> pending) {
  std::vector<SettleItem> items;
  items.reserve(pending.size());
  for (PendingSettle* p : pending) {
    const envelope::Envelope* in = p->in ? &*p->in : nullptr;
    if (p->tracked && in) announce_fanout(*in, p->decision);
    items.push_back(SettleItem{&p->delivery, in, &p->decision, p->tracked});
  }
  settle_items(items, nullptr);
  for (PendingSettle* p : pending) {
    metrics_.processed(label(p->decision.status));
    metrics_.active_add(-1);
    metrics_.processing_duration(seconds_since(p->started));
  }
}

}  // namespace asya::sidecar::detail
