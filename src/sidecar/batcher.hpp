// Dynamic batching (docs/protocol.md §3 "Batches"): how a sidecar gathers several envelopes from
// its queue and calls the runtime once with all of them, keeping every per-message rule of
// PROTOCOL §4 and §5 per item. The runner (sidecar.cpp) receives with gather_batch(), then
// prepare_batch() decides what must not reach the runtime, call_batch() calls it once and decides
// each remaining item from its own answer, and each item is then settled on its own (acked only
// after its outputs are durable). No metrics, no gateway, no threads here: testable with
// fake_transport.hpp and a socket pair.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "envelope/envelope.hpp"
#include "sidecar/router.hpp"
#include "transport/transport.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar {

struct BatchSettings {
  std::size_t max_size = 1;                // ASYA_BATCH_MAX_SIZE; 1: no batching
  std::chrono::milliseconds max_wait{10};  // ASYA_BATCH_MAX_WAIT
  bool enabled() const { return max_size > 1; }
};

// Receives one batch from `queue`: waits up to `first_wait` for a first message (an empty vector
// when none came), then keeps taking what the transport has ready, without waiting, until the
// batch holds max_size messages, max_wait passed since the first one arrived, or a receive finds
// nothing more ready. So a lone message at low load is sent at once, and a busy queue fills
// batches up to max_size. An error is returned only when nothing was received; an error after
// some messages ends the gathering with what was received (they are leased and must be handled).
// `gathered_seconds`, when given, receives the time spent gathering after the first receive.
Result<std::vector<transport::Delivery>> gather_batch(transport::Transport& transport,
                                                      std::string_view queue,
                                                      const BatchSettings& settings,
                                                      std::chrono::milliseconds first_wait,
                                                      double* gathered_seconds = nullptr);

// Start-up check of a batching sidecar: Ok when the runtime at `socket_path` declares batch
// support in its ready file (PROTOCOL §3), or when batching is off; else an error saying what to
// change (the sidecar then exits with its configuration exit code, 2).
Status check_runtime_takes_batches(const std::string& socket_path, const BatchSettings& settings);

// Whether the runtime at `socket_path` declares `pipeline` in its ready file (PROTOCOL §3
// "Pipelined batches"): a batch may then be sent on a second connection while it works on
// another. False when the file cannot be read.
bool runtime_pipelines(const std::string& socket_path);

// One envelope of a batch. `parsed` points into delivery->body (which must not move while the
// item lives). `decision` is set once the item's outcome is known.
struct BatchItem {
  transport::Delivery* delivery = nullptr;
  std::optional<Result<envelope::Envelope>> parsed;
  std::optional<Decision> decision;
  // Set by the runner's hooks (sidecar/batch_hooks.hpp) before call_batch: the envelope to send
  // in place of delivery->body (its payload reference resolved; empty: the body as received),
  // and what replaces its large output payloads by references (nullptr: none).
  std::string_view request;
  PayloadOffload* offload = nullptr;

  const envelope::Envelope* envelope() const { return parsed && *parsed ? &**parsed : nullptr; }
};

// Parses every delivery and decides at once those that must not reach the runtime
// (Router::before_runtime: not an envelope, delivered more than ASYA_MAX_DELIVERIES times, deadline
// passed, route not at this actor). `scratch` is reused for the padded parse copies.
std::vector<BatchItem> prepare_batch(const Router& router,
                                     std::vector<transport::Delivery>& deliveries,
                                     wire::FrameBuffer& scratch,
                                     std::chrono::system_clock::time_point now);

// What the one runtime call of a batch did.
struct BatchCall {
  std::size_t sent = 0;        // envelopes in the request (0: nothing was sent, no call made)
  double runtime_seconds = 0;  // duration of the call
  std::chrono::steady_clock::time_point started;  // when the call began
  wire::CallStatus status = wire::CallStatus::kOk;
  std::string error;   // the call's or the answer's problem, when any
  std::string notice;  // CallResult::notice of the call
  // CallResult::runtime_waits/runtime_waited of the call (its send and its answer): waits for a
  // runtime being restarted, not counted in runtime_seconds.
  int runtime_waits = 0;
  std::chrono::milliseconds runtime_waited{0};
};

// Sends every item without a decision to the runtime in one batch request (PROTOCOL §3; each as
// its `request` when set) and decides each from its own answer with Router::after_runtime (with
// the item's `offload`), as if it had been called alone:
// outputs routed, fan-out, headers, a per-item error to error-end or a retry. When the call
// itself fails (runtime timeout: the whole call is bounded by `timeout`; runtime unavailable; a
// bad frame; an answer that is not an array of one answer per envelope), every sent item is
// decided as that failure (e.g. runtime_timeout for each). A connection that carried a rejected
// answer is closed, never reused.
BatchCall call_batch(const Router& router, wire::RuntimeClient& client,
                     std::vector<BatchItem>& items, wire::FrameBuffer& response,
                     std::chrono::milliseconds timeout);

// call_batch() in two halves, for a batch sent while the runtime still works on another one (on
// another connection: PROTOCOL §3 "Pipelined batches"). send_batch() writes the request of every
// item without a decision (result: kOk when written, else the failure). answer_batch() reads its
// answer, bounded by `deadline` (`timeout` names the bound in a timeout's message), and decides
// each sent item as call_batch() does (every sent item as the failure when the send failed).
// `items` must not change in between.
struct SentBatch {
  std::vector<std::size_t> sent;  // indexes into the items of the items sent, in request order
  std::string request;            // the request's body, kept until the answer is read
  // When the request was written; the caller may move it later (when the runtime could begin the
  // batch: after the batch ahead of it was answered); the call's duration counts from it.
  std::chrono::steady_clock::time_point started;
  wire::CallResult result;  // of the send
};
SentBatch send_batch(std::vector<BatchItem>& items, wire::RuntimeClient& client,
                     std::chrono::milliseconds timeout);
BatchCall answer_batch(const Router& router, wire::RuntimeClient& client,
                       std::vector<BatchItem>& items, SentBatch& sent, wire::FrameBuffer& response,
                       std::chrono::steady_clock::time_point deadline,
                       std::chrono::milliseconds timeout);

}  // namespace asya::sidecar
