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

// Settling threads of the window. Each starts the items handed over while its earlier batches
// wait for their confirms (kSettleBatchesPerThread), so a decided message does not wait for a
// thread to be free; one thread wakes least (docs/performance.md, "RabbitMQ hop c8: pipelined
// confirms").
constexpr std::size_t kSettleThreads = 1;
// Batches one settling thread keeps started (outputs written) and not finished (acked).
constexpr std::size_t kSettleBatchesPerThread = 16;
// Items handed over and not settled yet; the transport's prefetch is normally the bound.
constexpr std::size_t kSettlePending = 1024;
// Items one thread settles together (one send_many, one ack_many).
constexpr std::size_t kSettleBatch = 64;

// A batch of the settle window whose outputs were written (start_pending): finish() waits for
// them, acks, and counts the items as processed.
struct PendingBatch final : SettleWindow::Started {
  std::vector<PendingSettle*> pending;
  std::vector<SettleItem> held;  // those the transport still held at the start
  SendHooks hooks;
  std::unique_ptr<StartedSettle> settle;  // points into held and hooks
  std::function<void(PendingBatch&)> on_finish;
  bool ready() override { return settle->ready(); }
  void finish() override { on_finish(*this); }
};

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

std::vector<SettleItem> Runner::held_items(std::span<const SettleItem> items) {
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
  return held;
}

SendHooks Runner::settle_hooks() {
  SendHooks hooks;
  hooks.after_send = [this](const Outgoing& out, double seconds, const Status& st) {
    metrics_.send_duration(out.queue, seconds);
    record_publish(out, seconds, st.ok());
    if (st) {
      metrics_.sent(out.queue, message_type_label(out.type));
      metrics_.envelope_size("sent", out.body_size());
    }
  };
  return hooks;
}

void Runner::record_settled(std::span<const SettleItem> held,
                            const std::vector<Settlement>& settled,
                            std::vector<const transport::Delivery*>* batch) {
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

void Runner::settle_items(std::span<const SettleItem> items,
                          std::vector<const transport::Delivery*>* batch) {
  std::vector<SettleItem> held = held_items(items);
  SendHooks hooks = settle_hooks();
  std::vector<Settlement> settled = settle_batch(*router_, *transport_, held, hooks);
  record_settled(held, settled, batch);
}

void Runner::open_settle_window() {
  // Plain actors only: an end actor settles by storing, a join by its groups, a batch by its own
  // settler (batch_settler.hpp).
  if (!transport_->holds_until_settled() || config_.is_end_actor || config_.join.enabled ||
      batching_.enabled())
    return;
  settle_window_ = std::make_unique<SettleWindow>(
      [this](std::span<PendingSettle* const> pending, std::function<void()> ready) {
        return start_pending(pending, std::move(ready));
      },
      kSettleThreads, kSettlePending, kSettleBatch, kSettleBatchesPerThread,
      static_cast<std::size_t>(std::max(config_.concurrency, 1)));
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

std::unique_ptr<SettleWindow::Started> Runner::start_pending(
    std::span<PendingSettle* const> pending, std::function<void()> ready) {
  auto batch = std::make_unique<PendingBatch>();
  batch->pending.assign(pending.begin(), pending.end());
  std::vector<SettleItem> items;
  items.reserve(pending.size());
  for (PendingSettle* p : pending) {
    const envelope::Envelope* in = p->in ? &*p->in : nullptr;
    if (p->tracked && in) announce_fanout(*in, p->decision);
    items.push_back(SettleItem{&p->delivery, in, &p->decision, p->tracked});
  }
  batch->held = held_items(items);
  batch->hooks = settle_hooks();
  batch->settle = std::make_unique<StartedSettle>(*router_, *transport_, batch->held, batch->hooks,
                                                  std::move(ready));
  batch->on_finish = [this](PendingBatch& done) {
    record_settled(done.held, done.settle->finish(), nullptr);
    for (PendingSettle* p : done.pending) {
      metrics_.processed(label(p->decision.status));
      metrics_.active_add(-1);
      metrics_.processing_duration(seconds_since(p->started));
    }
  };
  return batch;
}

}  // namespace asya::sidecar::detail
