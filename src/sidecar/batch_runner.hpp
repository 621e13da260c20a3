// The runner's batch path (internal to the sidecar binary): one gathered batch from
// prepare_batch() to every item settled, with the runner's own steps (gateway reports, settling,
// metrics) passed in, so sidecar.cpp keeps one copy of each step for single and batched messages.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "sidecar/batch_metrics.hpp"
#include "sidecar/batch_settle.hpp"
#include "sidecar/batcher.hpp"
#include "sidecar/metrics.hpp"

namespace asya::sidecar {

// Per-item steps that features add to a batch (sidecar/batch_hooks.hpp: trace spans and payload
// references), called by run_batch on its thread. `i` is the item's index in the batch.
class BatchHooks {
 public:
  virtual ~BatchHooks() = default;
  // After the batch was parsed, for every item in order (`tracked`: the gateway tracks it).
  virtual void received(std::size_t i, BatchItem& item, bool tracked) = 0;
  // For an item about to be sent to the runtime: a decision instead (it is not sent), or nullopt
  // (it is sent; item.request and item.offload may have been set).
  virtual std::optional<Decision> before_send(std::size_t i, BatchItem& item) = 0;
  // Right after the runtime call (call.sent == 0: none was made); the sent items are decided.
  virtual void called(std::span<BatchItem> items, const BatchCall& call) = 0;
  // When every item is decided (gateway steps included), right before they are settled; may
  // rewrite the outputs' bodies.
  virtual void decided(std::span<BatchItem> items) = 0;
};

struct BatchSteps {
  // Whether the gateway tracks the envelope (reports and cancellation checks).
  std::function<bool(const envelope::Envelope&)> tracked;
  // Before the call, for an item that would be sent: a decision when it must not be (cancelled).
  std::function<std::optional<Decision>(const envelope::Envelope&, bool tracked)> before_call;
  // After the call, for an item the runtime answered successfully (may change the decision).
  std::function<void(const envelope::Envelope&, Decision&, double runtime_seconds, bool tracked)>
      after_call;
  // Settles every decided item of the batch together (sends, then ack/nack; settle_batch).
  std::function<void(std::span<const SettleItem>)> settle;
  // After settle, for each item in order: metrics of the message, worker state.
  std::function<void(const transport::Delivery&, const envelope::Envelope*, const Decision&,
                     bool tracked)>
      finish;
  BatchHooks* hooks = nullptr;  // optional
  // Optional: how settle and finish run. When set, run_batch packs them (for every item, in
  // order) into one job that owns the batch's items and copies of `settle` and `finish`, and
  // hands it over: `background` is true when the worker may go on before the job ran (no item
  // asks the worker to wait for the runtime or to stop), false when the job must run before
  // run_batch returns. Unset: run_batch settles and finishes the items itself. Whatever the
  // steps and hooks use must outlive the job.
  std::function<void(std::function<void()> job, bool background)> defer;
};

// Runs one batch: prepare_batch, before_call (then hooks->before_send) for each item to be sent,
// call_batch (one runtime call bounded by `timeout`), after_call, settle for all the items at
// once, then finish for every item in order (through `steps.defer` when set); `steps.hooks`,
// when set, is called at the points its methods name. Records the
// runtime duration, the batch size and `gathered_seconds` (time spent gathering after the first
// message), and logs a failed call once for the batch. start_batch() then complete_batch().
void run_batch(const Router& router, wire::RuntimeClient& client,
               std::vector<transport::Delivery>& deliveries, wire::FrameBuffer& scratch,
               std::chrono::milliseconds timeout, double gathered_seconds, Metrics& metrics,
               BatchMetrics& batch_metrics, const BatchSteps& steps);

// A batch between start_batch() (its request written) and complete_batch() (its answer read and
// every item settled or handed to steps.defer). Points into the deliveries given to start_batch,
// which must outlive it.
struct StartedBatch {
  std::vector<BatchItem> items;
  std::vector<char> tracked, called;
  SentBatch sent;
  wire::RuntimeClient* client = nullptr;
  double gathered_seconds = 0;
  BatchSteps steps;
  std::size_t size() const { return sent.sent.size(); }
};

// run_batch's first half: everything up to the written request. `deadline_margin` (a batch sent
// while the runtime still works on another one, so it may wait up to about that long before the
// handler begins it): when an item that would be sent has a deadline within `deadline_margin` of
// now, nothing at all is done and nullptr is returned; the caller starts the batch once the
// runtime can begin it at once, so an item whose deadline passes while it would wait is never
// handed to the handler (section 5's deadline rule, per item, as for a batch sent at once).
std::unique_ptr<StartedBatch> start_batch(
    const Router& router, wire::RuntimeClient& client, std::vector<transport::Delivery>& deliveries,
    wire::FrameBuffer& scratch, std::chrono::milliseconds timeout, double gathered_seconds,
    const BatchSteps& steps,
    std::chrono::milliseconds deadline_margin = std::chrono::milliseconds(0));

// run_batch's second half: reads the answer, bounded by `began` + `timeout` (`began`: when the
// runtime could begin the batch: when it was sent, or when the batch ahead of it was answered),
// decides, settles or defers. `cut` (not kOk): the answer is not read; the connection is closed
// and every sent item is decided as that failure (the batch ahead of it timed out, or the
// runtime went away). Returns what the call did.
BatchCall complete_batch(const Router& router, StartedBatch& batch, wire::FrameBuffer& scratch,
                         std::chrono::steady_clock::time_point began,
                         std::chrono::milliseconds timeout, Metrics& metrics,
                         BatchMetrics& batch_metrics, const wire::CallResult& cut = {});

// Logs (info) that a runtime call (a single message's or a batch's) waited `waits` time(s),
// `waited` in all, for a runtime being restarted (wire::CallResult::runtime_waits), and then
// reached it.
void log_runtime_back(int waits, std::chrono::milliseconds waited);

}  // namespace asya::sidecar
