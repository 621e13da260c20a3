// The runner's batch path (runner.hpp): a gathered batch admitted into the worker's slot, sent,
// answered and settled (batch_runner.hpp), with the next full batch sent ahead on a second
// connection while the runtime works (batch_pipeline.hpp) when the runtime declares `pipeline`.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "sidecar/batch_hooks.hpp"
#include "sidecar/runner.hpp"

namespace asya::sidecar::detail {

struct Runner::AdmittedBatch {
  // Owned by the batch: a full batch is settled in the background, after process_batch moved on.
  // (Moved storage: pointers to deliveries leased ahead stay valid.)
  std::shared_ptr<std::vector<transport::Delivery>> owned;
  // Spans and payload references per item (batch_hooks.hpp); spans are exported when it goes,
  // after every item was settled (by the settling job, when that runs in the background).
  std::shared_ptr<BatchItemHooks> hooks;
  BatchSteps steps;
  wire::RuntimeClient* client = nullptr;
  double gathered_seconds = 0;
  bool full = false;  // max_size items: the queue is busy
  std::unique_ptr<StartedBatch> started;
  // When the runtime could begin it: when it was sent, or, sent ahead, when the batch ahead of it
  // was answered. Its runtime timeout counts from here.
  Clock::time_point began;
};

std::unique_ptr<Runner::AdmittedBatch> Runner::admit_batch(
    Slot& slot, wire::RuntimeClient& client, std::vector<transport::Delivery>& received,
    bool& need_ready, double gathered_seconds, BackgroundSettler& settler,
    Clock::time_point leased) {
  const auto started = Clock::now();
  auto batch = std::make_unique<AdmittedBatch>();
  batch->full = received.size() >= batching_.max_size;
  batch->client = &client;
  batch->gathered_seconds = gathered_seconds;
  batch->owned = std::make_shared<std::vector<transport::Delivery>>(std::move(received));
  std::vector<transport::Delivery>& deliveries = *batch->owned;
  {
    std::lock_guard lock(slot.mutex);
    // The previous batch's unsettled items stay (it may still be settling, or still be in the
    // runtime when this one is sent ahead), as do those leased ahead; they keep the older lease
    // time, so the lease keeper extends them in time.
    std::erase(slot.batch, nullptr);
    const bool holding = !slot.batch.empty();
    for (const auto& delivery : deliveries)
      if (std::find(slot.batch.begin(), slot.batch.end(), &delivery) == slot.batch.end())
        slot.batch.push_back(&delivery);
    if (!holding || leased < slot.lease_since) slot.lease_since = leased;
  }
  for (const auto& delivery : deliveries) count_received(delivery);
  batch->hooks = std::make_shared<BatchItemHooks>(tracing_, payloads_.references.get(), *router_,
                                                  deliveries.size());
  // The thread's current batch (for the spans of its settling) is the one being started or
  // completed: with a batch sent ahead, two are alive at once (process_batch attaches each in
  // turn).
  batch->hooks->hops().detach();
  BatchSteps& steps = batch->steps;
  steps.hooks = batch->hooks.get();
  steps.tracked = [this](const envelope::Envelope& in) {
    return reporter_ && tracked_by_gateway(in.route_metadata_raw);
  };
  steps.before_call = [this](const envelope::Envelope& in, bool t) {
    return gateway_before(in, t);
  };
  steps.after_call = [this](const envelope::Envelope& in, Decision& d, double seconds, bool t) {
    gateway_after(in, d, seconds, t);
  };
  // settle and finish may run on the settler's thread after this returns: they capture only what
  // outlives the batch (the slot, the batch's client, the worker's flag, values).
  steps.finish = [this, &slot, &client, &need_ready, started](const transport::Delivery& delivery,
                                                              const envelope::Envelope* in,
                                                              const Decision& decision, bool t) {
    finish(slot, client, delivery, in, decision, t, started, need_ready, /*settled=*/true);
  };
  steps.settle = [this, &slot](std::span<const SettleItem> items) { execute(slot, items); };
  steps.defer = [&settler, owned = batch->owned, hooks = batch->hooks, full = batch->full](
                    std::function<void()> job, bool background) {
    if (background && full) {
      hooks->hops().detach();  // the worker's next batch is its current one
      settler.hold([owned, hooks, job = std::move(job)] {
        hooks->hops().attach();  // publish and ack spans go to this batch's hops
        job();
        hooks->hops().detach();
      });
      return;
    }
    settler.wait();  // the previous batch's outputs go first
    job();
  };
  return batch;
}

void Runner::process_batch(Slot& slot, wire::RuntimeClient& client,
                           std::vector<transport::Delivery>& received, wire::FrameBuffer& scratch,
                           bool& need_ready, double gathered_seconds, BackgroundSettler& settler,
                           Clock::time_point leased, BatchAhead& ahead, BatchPipeline& pipeline) {
  const auto timeout = config_.runtime_timeout;
  auto start = [&](AdmittedBatch& batch, std::chrono::milliseconds deadline_margin) {
    batch.hooks->hops().attach();
    batch.started = start_batch(*router_, *batch.client, *batch.owned, scratch, timeout,
                                batch.gathered_seconds, batch.steps, deadline_margin);
    batch.hooks->hops().detach();
    if (batch.started) batch.began = batch.started->sent.started;
    return batch.started != nullptr;
  };
  auto complete = [&](AdmittedBatch& batch, const wire::CallResult& cut) {
    batch.hooks->hops().attach();  // detached again by steps.defer when settled in the background
    BatchCall call = complete_batch(*router_, *batch.started, scratch, batch.began, timeout,
                                    metrics_, batch_metrics_, cut);
    batch.hooks->hops().detach();
    return call;
  };
  // A full batch says the queue is busy: it is settled while the runtime works on the next one. A
  // smaller one (a light load) is settled at once, with no hand-over to delay its outputs. This
  // batch is leased: the previous one's settling may start (it runs during this call), and after
  // it, when this batch is full, the leasing of the next one.
  const bool full = received.size() >= batching_.max_size;
  settler.release(full && !join_ ? ahead.step() : nullptr);
  std::unique_ptr<AdmittedBatch> current =
      admit_batch(slot, client, received, need_ready, gathered_seconds, settler, leased);
  start(*current, std::chrono::milliseconds(0));
  while (current) {
    // The next batch, sent ahead on the other connection while the runtime works on this one.
    std::unique_ptr<AdmittedBatch> next;
    bool sent_ahead = false;
    if (pipeline.enabled() && current->full && current->started->size() > 0 &&
        current->started->sent.result.status == wire::CallStatus::kOk && !need_ready &&
        !stop_.stopping()) {
      settler.wait();  // the previous batch settled, and the next one leased (ahead.step())
      if (auto leased_next = ahead.take()) {
        next = admit_batch(slot, pipeline.other(client, *current->client), leased_next->deliveries,
                           need_ready, 0, settler, leased_next->leased);
        // Only once the runtime has read the batch ahead whole: it took that batch's place in its
        // call order before, so it runs the two in the order sent (PROTOCOL §3 "Order"). Read
        // at once unless both reached an idle runtime together. Not read before its answer (or
        // the timeout): the next batch is sent after the answer, as without pipelining.
        if (!current->client->wait_request_read(current->began + timeout)) {
          spdlog::debug(
              "batch of {} not sent ahead: the runtime had not read the batch ahead "
              "of it whole before answering it",
              next->owned->size());
        } else if (start(*next, pipeline.deadline_margin(timeout))) {
          sent_ahead = true;
          spdlog::debug(
              "batch of {} sent ahead on the second connection while the runtime works "
              "on a batch of {}",
              next->started->size(), current->started->size());
        } else {
          spdlog::debug("batch of {} not sent ahead: an item's deadline is within {} ms",
                        next->owned->size(), pipeline.deadline_margin(timeout).count());
        }
      }
    }
    BatchCall call = complete(*current, {});
    if (call.sent > 0 && call.status == wire::CallStatus::kOk)
      pipeline.record(call.runtime_seconds);
    if (next) {
      // This batch is leased and the one answered decided: the latter's settling may start, then
      // the leasing of the batch after next.
      settler.release(next->full && !join_ ? ahead.step() : nullptr);
      if (!sent_ahead) {
        start(*next, std::chrono::milliseconds(0));  // its deadlines checked now
      } else {
        // The runtime could begin it once it had answered the batch ahead.
        next->began = std::max(
            next->began, call.started + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(call.runtime_seconds)));
        if (call.status == wire::CallStatus::kTimeout) {
          // The runtime is stuck and the sidecar stops: the batch waiting behind is not waited
          // for; its items go back to the queue (runtime_unavailable, a counted delivery).
          complete(*next, wire::CallResult(wire::CallStatus::kUnavailable,
                                           "not answered: the runtime timed out on the batch "
                                           "ahead of it (ASYA_RUNTIME_TIMEOUT), and the sidecar "
                                           "stops"));
          next.reset();
        }
      }
    }
    current = std::move(next);
  }
}

}  // namespace asya::sidecar::detail
