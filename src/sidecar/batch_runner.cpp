#include "sidecar/batch_runner.hpp"

#include <spdlog/spdlog.h>

#include <memory>

#include "common/log.hpp"

namespace asya::sidecar {

namespace {

// A called batch on its way to being settled.
struct SettlingBatch {
  std::vector<BatchItem> items;
  std::vector<char> tracked;
  std::vector<SettleItem> settle;  // points into items
};

}  // namespace

void run_batch(const Router& router, wire::RuntimeClient& client,
               std::vector<transport::Delivery>& deliveries, wire::FrameBuffer& scratch,
               std::chrono::milliseconds timeout, double gathered_seconds, Metrics& metrics,
               BatchMetrics& batch_metrics, const BatchSteps& steps) {
  auto items = prepare_batch(router, deliveries, scratch, std::chrono::system_clock::now());
  std::vector<char> tracked(items.size()), called(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const envelope::Envelope* in = items[i].envelope();
    tracked[i] = in && steps.tracked(*in);
    if (steps.hooks) steps.hooks->received(i, items[i], tracked[i]);
    if (!items[i].decision) items[i].decision = steps.before_call(*in, tracked[i]);
    if (!items[i].decision && steps.hooks)
      items[i].decision = steps.hooks->before_send(i, items[i]);
    called[i] = !items[i].decision;
  }
  BatchCall call = call_batch(router, client, items, scratch, timeout);
  if (steps.hooks) steps.hooks->called(items, call);
  if (call.sent > 0) {
    metrics.runtime_duration(call.runtime_seconds);
    batch_metrics.batch(call.sent, gathered_seconds);
    if (!call.notice.empty()) {
      spdlog::warn("runtime_protocol_error on the connection kept from the previous batch: {}",
                   call.notice);
      metrics.runtime_error(label(FailureCode::kRuntimeProtocolError));
    }
    if (!call.error.empty())
      spdlog::warn("runtime call for a batch of {} failed: {}", call.sent, call.error);
  }
  std::vector<SettleItem> settle(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    BatchItem& item = items[i];
    const envelope::Envelope* in = item.envelope();
    log::EnvelopeScope scope(in ? std::string_view(in->id) : std::string_view("unparseable"));
    if (called[i]) {
      if (item.decision->failure) metrics.runtime_error(item.decision->failure.label());
      if (item.decision->status == ProcessedStatus::kSuccess)
        steps.after_call(*in, *item.decision, call.runtime_seconds, tracked[i]);
    }
    settle[i] = SettleItem{&*item.delivery, in, &*item.decision, tracked[i] != 0};
  }
  if (steps.hooks) steps.hooks->decided(items);
  // Settle and finish, in a job that owns the items (moving the vectors keeps every pointer into
  // their elements valid), so it may run after this returns (steps.defer).
  bool background = true;
  for (const BatchItem& item : items)
    if (item.decision->wait_for_runtime || item.decision->runtime_unhealthy) background = false;
  auto batch = std::make_shared<SettlingBatch>(
      SettlingBatch{std::move(items), std::move(tracked), std::move(settle)});
  auto job = [batch, settle_step = steps.settle, finish_step = steps.finish] {
    settle_step(batch->settle);
    for (std::size_t i = 0; i < batch->items.size(); ++i) {
      const BatchItem& item = batch->items[i];
      const envelope::Envelope* in = item.envelope();
      log::EnvelopeScope scope(in ? std::string_view(in->id) : std::string_view("unparseable"));
      finish_step(*item.delivery, in, *item.decision, batch->tracked[i]);
    }
  };
  if (steps.defer)
    steps.defer(std::move(job), background);
  else
    job();
  // A large buffer is not kept for the next batch.
  if (scratch.capacity() > (4u << 20)) scratch.release();
}

}  // namespace asya::sidecar
