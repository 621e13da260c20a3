// The sidecar's runner (sidecar.cpp): worker threads that receive, call the runtime, settle, and
// report to the gateway. Internal to the sidecar; split over sidecar.cpp (the loop) and
// runner_gateway.cpp (the gateway steps: reports, cancellation checks, fan-out announcements).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sidecar/batch_ahead.hpp"
#include "sidecar/batch_pipeline.hpp"
#include "sidecar/batch_runner.hpp"
#include "sidecar/batch_settler.hpp"
#include "sidecar/config.hpp"
#include "sidecar/end_actor.hpp"
#include "sidecar/gateway_reporter.hpp"
#include "sidecar/join/join_actor.hpp"
#include "sidecar/metrics.hpp"
#include "sidecar/payload_ref.hpp"
#include "sidecar/receive_ahead.hpp"
#include "sidecar/result_store.hpp"
#include "sidecar/router.hpp"
#include "sidecar/runner_state.hpp"
#include "sidecar/settle_window.hpp"
#include "sidecar/tracing.hpp"
#include "transport/transport.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar::detail {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Fan-out announcements (PROTOCOL §7) wait for the gateway at most this long per child, in at most
// this many tries; a child that is not accepted in time is announced in the background instead.
constexpr std::chrono::milliseconds kAnnounceBudget = 2s;
constexpr int kAnnounceAttempts = 2;
// How long a sidecar waits for the gateway's answer to the report that tells it whether the job
// was cancelled (PROTOCOL §7), before it goes on without knowing.
constexpr std::chrono::milliseconds kCancelCheckBudget = 1s;
// The check after the handler (are its outputs still wanted?) is asked only when the handler ran
// at least this long: a cancel during a shorter call is seen by the next actor's check before its
// handler runs, and skipping it saves a gateway round trip per message (docs/performance.md,
// sidecar_cpu_per_msg).
constexpr std::chrono::milliseconds kRecheckAfter = 100ms;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class Runner {
 public:
  Runner(const Config& config, std::unique_ptr<transport::Transport> transport)
      : config_(config),
        transport_(std::move(transport)),
        metrics_(config.input_queue(), config.transport),
        tracing_(tracing_options(config)),
        batch_metrics_(config.input_queue()) {
    batching_.max_size = static_cast<std::size_t>(config.batch_max_size);
    batching_.max_wait = config.batch_max_wait;
  }

  int run();

 private:
  void worker(Slot& slot);
  // Writes the sidecar-features file next to the runtime's socket (wire/sidecar_features.hpp);
  // a failure is logged once and leaves the features off.
  void declare_features();
  // The settings of a worker's runtime clients: waiting for a runtime that is being restarted
  // (RuntimeClientOptions::undelivered_wait), logged (runner_runtime.cpp).
  wire::RuntimeClientOptions runtime_client_options();
  // How long a runtime call waits for a runtime that its request never reached
  // (ASYA_RUNTIME_READY_TIMEOUT; a join actor: at most half its claim margin), and that in words.
  std::chrono::milliseconds runtime_call_wait() const;
  std::string runtime_call_wait_text() const;
  // A decided message of a group leased ahead, held until the group's last one is decided (at
  // most one call past ReceiveAhead::kBudget) and then settled with the others in one shared step
  // (runner_defer.cpp).
  struct Deferred {
    const transport::Delivery* delivery = nullptr;
    std::optional<envelope::Envelope> in;  // views into delivery->body
    Decision decision;
    bool tracked = false;
    Clock::time_point started;
    std::unique_ptr<Hop> hop;  // its trace spans (Hop::leave_thread), finished after the settle
  };
  // `deferred`: where a decision that needs nothing more of the worker goes instead of being
  // settled at once (nullptr: settled at once).
  void process_actor(Slot& slot, wire::RuntimeClient& client, transport::Delivery& delivery,
                     wire::FrameBuffer& scratch, bool& need_ready,
                     std::vector<Deferred>* deferred = nullptr);
  // Whether a decision may wait in `deferred` (nothing more asked of the worker, the held
  // outputs under a bound), and settling every deferred one (execute, then finish).
  bool may_defer(const std::vector<Deferred>& deferred, const Decision& decision) const;
  void settle_deferred(Slot& slot, wire::RuntimeClient& client, std::vector<Deferred>& deferred,
                       bool& need_ready);
  // Several deliveries leased in one receive (ReceiveAhead), processed one by one as
  // process_actor does; those left when the runtime goes away or the sidecar stops are nacked.
  void process_leased_ahead(Slot& slot, wire::RuntimeClient& client,
                            std::vector<transport::Delivery>& deliveries,
                            wire::FrameBuffer& scratch, bool& need_ready, ReceiveAhead& ahead,
                            Clock::time_point leased);
  // Batching: one gathered batch, one runtime call, the items settled together (batch_settle).
  // `leased`: when the batch's receive began. A full batch has the next one leased meanwhile on
  // the settler's thread (`ahead`, batch_ahead.hpp).
  // With a runtime that declares `pipeline`, the next full batch is sent on the pipeline's
  // second connection before the current one's answer is read (batch_pipeline.hpp), and so on
  // while batches are full: this returns when nothing is in flight (runner_batch.cpp).
  void process_batch(Slot& slot, wire::RuntimeClient& client,
                     std::vector<transport::Delivery>& received, wire::FrameBuffer& scratch,
                     bool& need_ready, double gathered_seconds, BackgroundSettler& settler,
                     Clock::time_point leased, BatchAhead& ahead, BatchPipeline& pipeline);
  // A batch in the slot, counted, with its steps (runner_batch.cpp), before and after its start.
  struct AdmittedBatch;
  std::unique_ptr<AdmittedBatch> admit_batch(Slot& slot, wire::RuntimeClient& client,
                                             std::vector<transport::Delivery>& received,
                                             bool& need_ready, double gathered_seconds,
                                             BackgroundSettler& settler, Clock::time_point leased);
  // Metrics, execute() (unless `settled` already) and what the decision asks of the worker, for
  // one decided delivery.
  void finish(Slot& slot, wire::RuntimeClient& client, const transport::Delivery& delivery,
              const envelope::Envelope* in, const Decision& decision, bool tracked,
              Clock::time_point started, bool& need_ready, bool settled = false);
  void count_received(const transport::Delivery& delivery) {
    metrics_.received();
    metrics_.active_add(1);
    metrics_.envelope_size("received", delivery.body.size());
  }
  // Gateway reports of a tracked envelope around a runtime call; before: a decision when the job
  // was cancelled; after a success: error-end instead of the outputs when cancelled meanwhile.
  std::optional<Decision> gateway_before(const envelope::Envelope& in, bool tracked);
  void gateway_after(const envelope::Envelope& in, Decision& decision, double runtime_seconds,
                     bool tracked);
  void process_end(Slot& slot, transport::Delivery& delivery);
  // Sends every output of the items, then acks/nacks each per its decision (settle_batch: shared
  // transactions for a batch). Returns false when the slot was abandoned (shutdown grace passed)
  // and nothing was done. An item `tracked` by the gateway has its fan-out children announced.
  bool execute(Slot& slot, std::span<const SettleItem> items);
  // The core of execute() without the slot (runner_settle.cpp): skips items whose delivery the
  // transport no longer holds, settles the rest (settle_batch), logs and counts the outcome, and
  // clears each settled delivery from `batch` when given.
  void settle_items(std::span<const SettleItem> items,
                    std::vector<const transport::Delivery*>* batch);
  // settle_items()'s parts: the items whose delivery the transport still holds (the others are
  // logged and counted), the hooks that count and trace each send, and what follows the
  // settlement of the held items (log, count, release payload holds, clear from `batch`).
  std::vector<SettleItem> held_items(std::span<const SettleItem> items);
  SendHooks settle_hooks();
  void record_settled(std::span<const SettleItem> held, const std::vector<Settlement>& settled,
                      std::vector<const transport::Delivery*>* batch);
  // Settle window (settle_window.hpp; runner_settle.cpp). open_settle_window() creates it when
  // the transport holds messages until they are settled. adopt() moves a received delivery into
  // a PendingSettle (nullptr without a window) so it outlives process_actor; hand_over() passes
  // it with its decision to the window instead of finish() (for a decision that needs nothing more
  // of the worker), counting it as finish() does; start_pending() starts settling items on the
  // window's threads (their outputs written), the Started it returns finishes them (acks).
  void open_settle_window();
  std::unique_ptr<PendingSettle> adopt(Slot& slot, transport::Delivery& delivery);
  void hand_over(Slot& slot, std::unique_ptr<PendingSettle> pending,
                 Result<envelope::Envelope>& parsed, Decision& decision, bool tracked,
                 Clock::time_point started);
  std::unique_ptr<SettleWindow::Started> start_pending(std::span<PendingSettle* const> pending,
                                                       std::function<void()> ready);
  // Counts the failures a decision carries and logs a failed message (finish's first step).
  void count_decision(const transport::Delivery& delivery, const Decision& decision);
  // Announces every fan-out child of `decision` to the gateway (POST /envelopes) and waits for
  // each answer, so the gateway knows all branches before any output can reach an end actor.
  void announce_fanout(const envelope::Envelope& in, const Decision& decision);
  // Calls the runtime with the delivery and decides its outcome (for a `tracked` envelope the
  // outputs are not forwarded when the gateway says the job was cancelled meanwhile).
  Decision call_runtime(const envelope::Envelope& in, transport::Delivery& delivery,
                        wire::RuntimeClient& client, wire::FrameBuffer& scratch, bool tracked);
  // Asks the gateway (POST /envelopes/{id}/check, PROTOCOL §7) whether the envelope's job was
  // cancelled, handing it `progress` (a progress report body; empty: none) on the way; nothing
  // cancelled and nothing accepted when it does not answer within kCancelCheckBudget.
  CheckAnswer check_job(const envelope::Envelope& in, std::string_view progress);
  void begin(Slot& slot, const transport::Delivery& delivery) {
    std::lock_guard lock(slot.mutex);
    slot.in_flight = &delivery;
    // Leased ahead with others (slot.batch): its lease dates from that receive.
    if (slot.batch.empty()) slot.lease_since = Clock::now();
  }
  void report(std::string path, std::string body) {
    if (reporter_) reporter_->post(std::move(path), std::move(body));
  }
  // What /readyz answers: not ready while the transport fails, while stopping, and while a worker
  // waits for the runtime (at start, after a failure, or inside a call whose request never reached
  // it); liveness (/healthz) is not affected by any of these.
  Readiness readiness() const;
  // Stops the sidecar with exit 4 (kExitRuntimeNotReady) after a runtime call waited for the
  // runtime and it was not ready again; `what`: what happened to the work that waited.
  void stop_runtime_not_ready(std::string_view what);

  const Config& config_;
  std::unique_ptr<transport::Transport> transport_;
  Metrics metrics_;
  Tracing tracing_;
  BatchMetrics batch_metrics_;
  BatchSettings batching_;
  std::optional<Router> router_;
  // ASYA_PAYLOAD_STORE (references; end actors: sweeper). Before the end actor and the join, which
  // use it until they are destroyed (the join's hold renewals, join_holds.hpp).
  PayloadParts payloads_;
  std::unique_ptr<ResultStore> store_;
  std::optional<EndActor> end_actor_;
  std::unique_ptr<GatewayReporter> reporter_;
  std::unique_ptr<join::JoinActor> join_;  // set for a join actor (ASYA_JOIN)
  StopState stop_;
  StopState leases_stop_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<SettleWindow> settle_window_;  // RabbitMQ plain actors: see settle_window.hpp
  std::atomic<bool> transport_ok_{false};
  RuntimeWaits runtime_waits_;  // inside runtime calls, for readiness()
};

}  // namespace asya::sidecar::detail
