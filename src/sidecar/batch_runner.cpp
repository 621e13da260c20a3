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

void log_runtime_back(int waits, std::chrono::milliseconds waited) {
  spdlog::info(
      "runtime ready again: the request was sent again after waiting {} ms for the runtime ({} "
      "wait(s)); no delivery was counted",
      waited.count(), waits);
}

std::unique_ptr<StartedBatch> start_batch(const Router& router, wire::RuntimeClient& client,
                                          std::vector<transport::Delivery>& deliveries,
                                          wire::FrameBuffer& scratch,
                                          std::chrono::milliseconds timeout,
                                          double gathered_seconds, const BatchSteps& steps,
                                          std::chrono::milliseconds deadline_margin) {
  const auto now = std::chrono::system_clock::now();
  auto items = prepare_batch(router, deliveries, scratch, now);
  if (deadline_margin.count() > 0) {
    for (const BatchItem& item : items)
      if (!item.decision && envelope::deadline_passed(*item.envelope(), now + deadline_margin))
        return nullptr;  // may expire while waiting: sent later, checked again then
  }
  auto batch = std::make_unique<StartedBatch>();
  batch->client = &client;
  batch->gathered_seconds = gathered_seconds;
  batch->steps = steps;
  batch->tracked.assign(items.size(), 0);
  batch->called.assign(items.size(), 0);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const envelope::Envelope* in = items[i].envelope();
    batch->tracked[i] = in && steps.tracked(*in);
    if (steps.hooks) steps.hooks->received(i, items[i], batch->tracked[i]);
    if (!items[i].decision) items[i].decision = steps.before_call(*in, batch->tracked[i]);
    if (!items[i].decision && steps.hooks)
      items[i].decision = steps.hooks->before_send(i, items[i]);
    batch->called[i] = !items[i].decision;
  }
  batch->sent = send_batch(items, client, timeout);
  batch->items = std::move(items);  // moved storage: the sent indexes and views stay valid
  return batch;
}

BatchCall complete_batch(const Router& router, StartedBatch& batch, wire::FrameBuffer& scratch,
                         std::chrono::steady_clock::time_point began,
                         std::chrono::milliseconds timeout, Metrics& metrics,
                         BatchMetrics& batch_metrics, const wire::CallResult& cut) {
  const BatchSteps& steps = batch.steps;
  std::vector<BatchItem>& items = batch.items;
  std::vector<char>& tracked = batch.tracked;
  const std::vector<char>& called = batch.called;
  if (batch.sent.started < began) batch.sent.started = began;
  if (cut.status != wire::CallStatus::kOk && batch.sent.result.status == wire::CallStatus::kOk) {
    batch.client->abandon();
    batch.sent.result = cut;
  }
  BatchCall call = answer_batch(router, *batch.client, items, batch.sent, scratch,
                                batch.sent.started + timeout, timeout);
  if (steps.hooks) steps.hooks->called(items, call);
  if (call.sent > 0) {
    metrics.runtime_duration(call.runtime_seconds);
    batch_metrics.batch(call.sent, batch.gathered_seconds);
    if (!call.notice.empty()) {
      spdlog::warn("runtime_protocol_error on the connection kept from the previous batch: {}",
                   call.notice);
      metrics.runtime_error(label(FailureCode::kRuntimeProtocolError));
    }
    if (!call.error.empty())
      spdlog::warn("runtime call for a batch of {} failed: {}", call.sent, call.error);
    if (call.runtime_waits > 0 && call.status != wire::CallStatus::kUnavailable)
      log_runtime_back(call.runtime_waits, call.runtime_waited);
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
  auto settling = std::make_shared<SettlingBatch>(
      SettlingBatch{std::move(items), std::move(tracked), std::move(settle)});
  auto job = [settling, settle_step = steps.settle, finish_step = steps.finish] {
    settle_step(settling->settle);
    for (std::size_t i = 0; i < settling->items.size(); ++i) {
      const BatchItem& item = settling->items[i];
      const envelope::Envelope* in = item.envelope();
      log::EnvelopeScope scope(in ? std::string_view(in->id) : std::string_view("unparseable"));
      finish_step(*item.delivery, in, *item.decision, settling->tracked[i]);
    }
  };
  if (steps.defer)
    steps.defer(std::move(job), background);
  else
    job();
  // A large buffer is not kept for the next batch.
  if (scratch.capacity() > (4u << 20)) scratch.release();
  return call;
}

void run_batch(const Router& router, wire::RuntimeClient& client,
               std::vector<transport::Delivery>& deliveries, wire::FrameBuffer& scratch,
               std::chrono::milliseconds timeout, double gathered_seconds, Metrics& metrics,
               BatchMetrics& batch_metrics, const BatchSteps& steps) {
  auto batch = start_batch(router, client, deliveries, scratch, timeout, gathered_seconds, steps);
  complete_batch(router, *batch, scratch, batch->sent.started, timeout, metrics, batch_metrics);
}

}  // namespace asya::sidecar
