#include "sidecar/sidecar.hpp"

#include "sidecar/runner.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/env.hpp"
#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "common/shutdown_signals.hpp"
#include "envelope/envelope.hpp"
#include "sidecar/batch_hooks.hpp"
#include "sidecar/batch_runner.hpp"
#include "sidecar/body_fd.hpp"
#include "sidecar/end_actor.hpp"
#include "sidecar/gateway_reporter.hpp"
#include "sidecar/join/join_actor.hpp"
#include "sidecar/lease_keeper.hpp"
#include "sidecar/metrics.hpp"
#include "sidecar/payload_ref.hpp"
#include "sidecar/receive_ahead.hpp"
#include "sidecar/result_store.hpp"
#include "sidecar/router.hpp"
#include "sidecar/runner_state.hpp"
#include "sidecar/spooled_answer.hpp"
#include "sidecar/tracing.hpp"
#include "wire/runtime_client.hpp"
#include "wire/sidecar_features.hpp"

namespace asya::sidecar {
namespace detail {

static_assert(wire::FrameBuffer::kPadding >= envelope::kParsePadding,
              "the runtime answer buffer must be parseable in place");

Readiness Runner::readiness() const {
  if (stop_.stopping())
    return {false, "the sidecar is stopping (finishing its messages before it exits)"};
  if (!transport_ok_)
    return {false, fmt::format("receiving from {} failed; retrying (the sidecar's log says why)",
                               config_.input_queue())};
  if (config_.is_end_actor) return {true, {}};
  for (const auto& slot : slots_)
    if (!slot->runtime_ready)
      return {false,
              fmt::format("waiting for the runtime at {} to be ready (its ready file and a "
                          "connection), up to ASYA_RUNTIME_READY_TIMEOUT={}",
                          config_.socket_path, format_duration(config_.runtime_ready_timeout))};
  if (auto why = runtime_waits_.current())
    return {false, fmt::format("runtime unavailable ({}); a request waits for it to be ready "
                               "again, up to {}",
                               *why, runtime_call_wait_text())};
  return {true, {}};
}

int Runner::run() {
  const std::string input = config_.input_queue();
  for (const std::string& queue : {input, config_.happy_end_queue(), config_.error_end_queue()}) {
    if (Status st = transport_->ensure_queue(queue); !st) {
      spdlog::error("cannot ensure queue {} on transport {}: {}", queue, transport_->name(),
                    st.message());
      return kExitFatal;
    }
  }
  transport_ok_ = true;

  RouterOptions ro;
  ro.actor = config_.actor_name;
  ro.queue_prefix = config_.queue_prefix;
  ro.happy_end_queue = config_.happy_end_queue();
  ro.error_end_queue = config_.error_end_queue();
  ro.max_deliveries = config_.max_deliveries;
  ro.retry_max_attempts = config_.retry_max_attempts;
  ro.retry_backoff = config_.retry_backoff;
  ro.retry_backoff_max = config_.retry_backoff_max;
  ro.retry_on_processing_error = config_.retry_on_processing_error;
  ro.max_message_bytes = std::min(config_.max_message_bytes, transport_->max_message_bytes());
  ro.accept_payload_unchanged = !config_.join.enabled;
  router_.emplace(ro);

  payloads_ = make_payload_parts(config_.payload, config_.is_end_actor);
  if (config_.is_end_actor) {
    store_ = make_result_store(config_.result_store);
    end_actor_.emplace(
        config_.actor_name, config_.is_error_end(), *store_,
        [this](int count) { return router_->backoff(count); }, payloads_.references.get());
  }
  if (config_.join.enabled)
    join_ = join::JoinActor::open(
        config_.join, *router_, *transport_, config_.runtime_timeout,
        [this] { return reporter_.get(); }, payloads_.references.get());
  if (!config_.gateway_url.empty()) {
    GatewayReporterOptions go;
    go.base_url = config_.gateway_url;
    go.bearer_token = config_.gateway_internal_token;
    // Only an actor's sidecar checks for cancellations, so only its reports can be carried.
    if (!config_.is_end_actor) go.carry_wait = config_.gateway_carry_wait;
    go.on_dropped = [this] { metrics_.gateway_report_dropped(); };
    go.on_sent = [this] { metrics_.gateway_report_sent(); };
    reporter_ = std::make_unique<GatewayReporter>(std::move(go));
  }

  if (!config_.is_end_actor) declare_features();
  for (int i = 0; i < config_.concurrency; ++i) slots_.push_back(std::make_unique<Slot>());
  open_settle_window();

  std::optional<MetricsServer> server;
  if (!config_.metrics_addr.empty()) {
    server.emplace(metrics_, [this] { return readiness(); });
    if (Status st = server->start(config_.metrics_addr); !st) {
      spdlog::error("{}", st.message());
      return kExitFatal;
    }
  }

  // Signals are blocked in every thread (main blocked them before any thread started); the
  // watcher's thread alone takes them. Once stopping, later signals are left pending.
  std::optional<SignalWatcher> signal_watcher;
  signal_watcher.emplace(SignalSet(), [this](int sig) {
    if (stop_.stopping()) return;
    spdlog::info("received {}, draining (grace {})", signal_name(sig),
                 format_duration(config_.shutdown_grace));
    stop_.request(kExitOk);
  });

  spdlog::info(
      "sidecar started: actor={} mode={} queue={} transport={} concurrency={} socket={}",
      config_.actor_name,
      config_.is_end_actor ? (config_.is_error_end() ? "error-end" : "happy-end") : "actor", input,
      transport_->name(), config_.concurrency, config_.socket_path);

  std::thread lease_thread([this] {
    keep_leases(slots_, *transport_, metrics_, config_.visibility_timeout, leases_stop_);
  });
  std::vector<std::thread> workers;
  for (auto& slot : slots_) workers.emplace_back([this, s = slot.get()] { worker(*s); });

  while (!stop_.wait_for(std::chrono::milliseconds(500))) {
  }
  transport_->interrupt();

  auto deadline = Clock::now() + config_.shutdown_grace;
  auto all_finished = [this] {
    for (auto& s : slots_)
      if (!s->finished) return false;
    return !settle_window_ || settle_window_->idle();
  };
  while (!all_finished() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));

  int exit_code = stop_.exit_code();
  if (!all_finished()) {
    int nacked = 0;
    for (auto& s : slots_) {
      std::lock_guard lock(s->mutex);
      s->abandoned = true;
      if (s->in_flight &&
          std::find(s->batch.begin(), s->batch.end(), s->in_flight) == s->batch.end())
        s->batch.push_back(s->in_flight);
      for (const transport::Delivery* unfinished : s->batch) {
        if (!unfinished) continue;
        if (Status st = transport_->nack(*unfinished); !st)
          spdlog::error("shutdown: cannot nack unfinished message: {}", st.message());
        ++nacked;
      }
    }
    // Handed over for settling and not started: returned too (those being settled finish or
    // are delivered again when the process exits).
    if (settle_window_)
      for (const auto& pending : settle_window_->abandon())
        if (transport_->nack(pending->delivery)) ++nacked;
    spdlog::warn("shutdown grace {} passed: nacked {} unfinished message(s)",
                 format_duration(config_.shutdown_grace), nacked);
    if (reporter_) reporter_->stop(std::chrono::milliseconds(1000));
    tracing_.stop(std::chrono::milliseconds(500));
    spdlog::default_logger()->flush();
    // Workers are stuck in runtime calls; they cannot be joined. Leave without running
    // destructors that would wait for them.
    std::_Exit(exit_code);
  }
  for (auto& t : workers) t.join();
  settle_window_.reset();  // every settle handed over has finished (all_finished)
  leases_stop_.request(kExitOk);
  lease_thread.join();
  signal_watcher.reset();
  if (reporter_) reporter_->stop(std::chrono::seconds(5));
  tracing_.stop(std::chrono::seconds(2));
  if (server) server->stop();
  transport_->close();
  spdlog::info("sidecar stopped (exit code {})", exit_code);
  return exit_code;
}

void Runner::declare_features() {
  // Before any connection (PROTOCOL §3): a runtime reads the file when it accepts one. A join
  // actor declares nothing (its router refuses payload_unchanged), replacing a stale file.
  Status written = router_->options().accept_payload_unchanged
                       ? wire::write_sidecar_features(config_.socket_path, ::getpid(),
                                                      {wire::kPayloadUnchangedFeature})
                       : wire::write_sidecar_features(config_.socket_path, ::getpid(), {});
  if (!written)
    spdlog::warn(
        "cannot declare this sidecar's features to the runtime ({}): runtimes will send every "
        "payload back whole (\"payload_unchanged\" off); make the socket's directory writable "
        "to enable it",
        written.message());
}

void Runner::worker(Slot& slot) {
  std::optional<wire::RuntimeClient> client;
  if (!config_.is_end_actor) client.emplace(runtime_client_options());
  // Per worker: the padded copy of the input that envelope::parse iterates, then (same storage) the
  // runtime's answer, parsed in place. One buffer serves both, so a large message allocates and
  // faults in its pages once instead of three times (parse copy, answer, parse_response copy).
  wire::FrameBuffer scratch;
  const std::string queue = config_.input_queue();
  BatchAhead batch_ahead(*transport_, queue, batching_, slot, stop_, &metrics_);  // outlives it
  BackgroundSettler settler;  // settles full batches, leases ahead on its thread (batch_*.hpp)
  // The second connection for a batch sent while the runtime works on another (batch_pipeline.hpp)
  BatchPipeline pipeline(runtime_client_options());
  bool need_ready = !config_.is_end_actor;
  int consecutive_errors = 0;
  // A plain actor with a fast handler leases several messages per receive (receive_ahead.hpp).
  ReceiveAhead ahead;
  const bool lease_ahead = !config_.is_end_actor && !join_ && !batching_.enabled();

  while (!stop_.stopping()) {
    if (need_ready) {
      slot.runtime_ready = false;
      // Wait in short slices so SIGTERM stops a sidecar whose runtime never became ready.
      Status st;
      const auto ready_deadline = Clock::now() + config_.runtime_ready_timeout;
      for (;;) {
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(ready_deadline - Clock::now());
        st = client->wait_ready(
            std::clamp(left, std::chrono::milliseconds(0), std::chrono::milliseconds(250)));
        if (st.ok() || stop_.stopping() || Clock::now() >= ready_deadline) break;
      }
      if (!st) {
        if (stop_.stopping()) break;
        spdlog::error("runtime not ready within ASYA_RUNTIME_READY_TIMEOUT={}: {}",
                      format_duration(config_.runtime_ready_timeout), st.message());
        stop_.request(kExitRuntimeNotReady);
        break;
      }
      if (Status st = check_runtime_takes_batches(config_.socket_path, batching_); !st) {
        spdlog::error("{}", st.message());
        stop_.request(kExitConfig);
        break;
      }
      pipeline.enable(batching_.enabled() && !join_ && runtime_pipelines(config_.socket_path));
      need_ready = false;
      slot.runtime_ready = true;
      spdlog::debug("runtime ready at {}", config_.socket_path);
    }
    // A join actor publishes the groups decided meanwhile: between messages and when idle.
    if (join_) {
      join::PublishReport published = join_->publish_decided(*client, scratch, stop_, need_ready);
      if (published.runtime_unhealthy) stop_.request(kExitRuntimeTimeout);
      // The call waited for the runtime already: not a second time before stopping.
      if (published.runtime_not_ready)
        stop_runtime_not_ready("the group was released, to be claimed again");
      if (stop_.stopping()) break;
    }
    auto started = Clock::now();
    double gathered_seconds = 0;
    // The next batch, leased while the runtime worked on the previous one (batch_ahead.hpp).
    if (auto leased = batching_.enabled() && client ? batch_ahead.take() : std::nullopt) {
      process_batch(slot, *client, leased->deliveries, scratch, need_ready, 0, settler,
                    leased->leased, batch_ahead, pipeline);
      continue;
    }
    // A held batch (batch_settler.hpp) is settled once the next one is leased, or at once when
    // nothing more is ready: only then may the receive wait.
    const bool held = settler.holding();
    auto receive = [&](std::chrono::milliseconds wait) {
      return batching_.enabled() && client
                 ? gather_batch(*transport_, queue, batching_, wait, &gathered_seconds)
                 : transport_->receive(queue, lease_ahead ? ahead.next() : 1, wait);
    };
    auto received = receive(held ? std::chrono::milliseconds(0) : std::chrono::milliseconds(1000));
    if (held && (!received || received->empty())) {
      settler.release();
      if (received) received = receive(std::chrono::milliseconds(1000));
    }
    if (!received) {
      ++consecutive_errors;
      transport_ok_ = false;
      spdlog::warn("receive from {} failed: {}", queue, received.error().message);
      stop_.wait_for(std::chrono::milliseconds(std::min(100 * consecutive_errors, 2000)));
      continue;
    }
    consecutive_errors = 0;
    transport_ok_ = true;
    if (received->empty()) continue;
    metrics_.receive_duration(seconds_since(started));
    for (auto& delivery : *received)
      if (delivery.delivery_count > 1) metrics_.redelivered();
    if (batching_.enabled() && client) {
      process_batch(slot, *client, *received, scratch, need_ready, gathered_seconds, settler,
                    started, batch_ahead, pipeline);
      continue;
    }
    if (received->size() > 1 && lease_ahead) {
      process_leased_ahead(slot, *client, *received, scratch, need_ready, ahead, started);
      continue;
    }
    for (auto& delivery : *received) {
      if (config_.is_end_actor) {
        process_end(slot, delivery);
      } else {
        const auto processing_started = Clock::now();
        process_actor(slot, *client, delivery, scratch, need_ready);
        ahead.record(seconds_since(processing_started));
      }
    }
  }
  settler.wait();
  batch_ahead.give_back();
  slot.finished = true;
}

void Runner::process_leased_ahead(Slot& slot, wire::RuntimeClient& client,
                                  std::vector<transport::Delivery>& deliveries,
                                  wire::FrameBuffer& scratch, bool& need_ready, ReceiveAhead& ahead,
                                  Clock::time_point leased) {
  // Leased together: the lease keeper extends every one not settled yet (from when they were
  // leased), and the shutdown path nacks them, as for a batch.
  {
    std::lock_guard lock(slot.mutex);
    slot.batch.clear();
    for (const auto& delivery : deliveries) slot.batch.push_back(&delivery);
    slot.lease_since = leased;
  }
  // On a transport that settles together (SQLite), the group's decisions are settled in one
  // shared step after its last one: one write transaction instead of one per message.
  std::vector<Deferred> deferred;
  const bool defer = transport_->settles_together();
  for (auto& delivery : deliveries) {
    if (need_ready || stop_.stopping()) {
      // The runtime went away or the sidecar is stopping: the rest go back to the queue at once
      // (each counts a delivery) instead of waiting here.
      std::lock_guard lock(slot.mutex);
      if (slot.abandoned) break;
      if (Status st = transport_->nack(delivery); !st)
        spdlog::warn("cannot return a message leased ahead to {}: {}", delivery.queue,
                     st.message());
      std::replace(slot.batch.begin(), slot.batch.end(),
                   static_cast<const transport::Delivery*>(&delivery),
                   static_cast<const transport::Delivery*>(nullptr));
      continue;
    }
    const auto processing_started = Clock::now();
    process_actor(slot, client, delivery, scratch, need_ready, defer ? &deferred : nullptr);
    ahead.record(seconds_since(processing_started));
    // A group is sized to about ReceiveAhead::kBudget of processing, but a handler's time varies:
    // decisions held longer than that are settled now, and a runtime call in progress settles
    // them once they have waited that long (process_actor), so an output waits about the budget
    // at most, never for a slow call after it nor for the rest of the group.
    if (!deferred.empty() && Clock::now() - deferred.front().started > ReceiveAhead::kBudget)
      settle_deferred(slot, client, deferred, need_ready);
  }
  settle_deferred(slot, client, deferred, need_ready);
  std::lock_guard lock(slot.mutex);
  slot.batch.clear();
}

void Runner::process_actor(Slot& slot, wire::RuntimeClient& client, transport::Delivery& received,
                           wire::FrameBuffer& scratch, bool& need_ready,
                           std::vector<Deferred>* deferred) {
  auto started = Clock::now();
  // With a settle window the message is settled after this returns: it moves first.
  std::unique_ptr<PendingSettle> pending = adopt(slot, received);
  transport::Delivery& delivery = pending ? pending->delivery : received;
  begin(slot, delivery);
  count_received(delivery);

  // The views of `parsed` point into delivery.body. A body with room for the parser's padding
  // after it (the SQLite transport's body files leave it) is parsed in place; otherwise from a
  // padded copy in `scratch`, which is free for the runtime's answer as soon as parse returns.
  const bool in_place = delivery.body.capacity() >= delivery.body.size() + envelope::kParsePadding;
  if (!in_place) scratch.assign(delivery.body);
  auto parsed = envelope::parse(delivery.body, in_place ? delivery.body.data() : scratch.data());
  log::EnvelopeScope scope(parsed ? std::string_view(parsed->id) : std::string_view("unparseable"));
  spdlog::debug("received {} bytes from {} (delivery {})", delivery.body.size(), delivery.queue,
                delivery.delivery_count);

  // Whether the gateway tracks this envelope: decided once, used for every report below.
  const bool tracked = reporter_ && parsed && tracked_by_gateway(parsed->route_metadata_raw);
  // On the heap: a hop whose settling is deferred outlives this call (runner_defer.cpp).
  auto hop = std::make_unique<Hop>(tracing_, parsed ? &*parsed : nullptr, delivery, tracked);
  Decision decision;
  auto early = router_->before_runtime(delivery, parsed, std::chrono::system_clock::now());
  if (early && !(join_ && join::JoinActor::stores_despite(*early))) {
    decision = std::move(*early);
  } else if (join_) {
    decision = join_->on_branch(delivery, *parsed);
  } else if (auto passing = router_->failed_branch_passing(*parsed)) {
    decision = std::move(*passing);  // PROTOCOL §4a: a failed branch on its way to its join
  } else if (auto cancelled = gateway_before(*parsed, tracked)) {
    decision = std::move(*cancelled);
  } else {
    // Decisions held for this group (runner_defer.cpp) wait for this call only until their
    // budget runs out: then they are settled from the call's wait for its answer, on this thread.
    // (Disarmed however the call ends: the hook refers to this step's locals.)
    struct Disarm {
      wire::RuntimeClient* client;
      ~Disarm() {
        if (client) client->disarm_while_waiting();
      }
    } disarm{deferred && !deferred->empty() ? &client : nullptr};
    if (disarm.client)
      client.arm_while_waiting(deferred->front().started + ReceiveAhead::kBudget,
                               [&] { settle_deferred(slot, client, *deferred, need_ready); });
    decision = call_runtime(*parsed, delivery, client, scratch, tracked);
  }
  // A large buffer is not kept for the next message.
  if (scratch.capacity() > (4u << 20)) scratch.release();
  hop->stamp(decision);
  // Settled here instead: a traced hop (it records its publish and ack spans on this thread),
  // and a decision that stops the worker or makes it wait for the runtime (as before the window).
  if (pending && !hop->active() && !decision.runtime_unhealthy && !decision.wait_for_runtime)
    return hand_over(slot, std::move(pending), parsed, decision, tracked, started);
  if (deferred && may_defer(*deferred, decision)) {
    hop->leave_thread();  // its publish and ack spans are recorded when the group settles
    deferred->push_back({&delivery, parsed ? std::optional(std::move(*parsed)) : std::nullopt,
                         std::move(decision), tracked, started, std::move(hop)});
    return;
  }
  if (deferred) settle_deferred(slot, client, *deferred, need_ready);  // in order
  finish(slot, client, delivery, parsed ? &*parsed : nullptr, decision, tracked, started,
         need_ready);
}

void Runner::finish(Slot& slot, wire::RuntimeClient& client, const transport::Delivery& delivery,
                    const envelope::Envelope* in, const Decision& decision, bool tracked,
                    Clock::time_point started, bool& need_ready, bool settled) {
  count_decision(delivery, decision);
  if (!settled) execute(slot, std::array{SettleItem{&delivery, in, &decision, tracked}});
  metrics_.processed(label(decision.status));
  metrics_.active_add(-1);
  metrics_.processing_duration(seconds_since(started));
  {
    std::lock_guard lock(slot.mutex);
    // A held decision may be settled while the next message is in flight (runner_defer.cpp).
    if (slot.in_flight == &delivery) slot.in_flight = nullptr;
    std::replace(slot.batch.begin(), slot.batch.end(), &delivery,
                 static_cast<const transport::Delivery*>(nullptr));
  }
  if (decision.runtime_unhealthy) {
    if (stop_.exit_code() != kExitRuntimeTimeout)  // once for all the items of a batch
      spdlog::error(
          "runtime timed out after ASYA_RUNTIME_TIMEOUT={}: stopping the sidecar (exit {})",
          format_duration(config_.runtime_timeout), kExitRuntimeTimeout);
    stop_.request(kExitRuntimeTimeout);
  }
  if (decision.runtime_not_ready)
    stop_runtime_not_ready(
        "the message was returned to the queue (runtime_unavailable, a counted delivery)");
  if (decision.wait_for_runtime) {
    client.disconnect();
    need_ready = true;
  }
}

bool Runner::execute(Slot& slot, std::span<const SettleItem> items) {
  // Before taking the slot's lock: announcing may wait for the gateway, and neither the lease
  // keeper nor the shutdown path should wait with it.
  for (const SettleItem& item : items)
    if (item.tracked && item.in) announce_fanout(*item.in, *item.decision);
  std::lock_guard lock(slot.mutex);
  if (slot.abandoned) return false;
  settle_items(items, &slot.batch);
  return true;
}

void Runner::process_end(Slot& slot, transport::Delivery& delivery) {
  auto started = Clock::now();
  begin(slot, delivery);
  metrics_.received();
  metrics_.active_add(1);
  metrics_.envelope_size("received", delivery.body.size());
  Hop hop(tracing_, delivery);
  EndOutcome outcome = end_actor_->handle(delivery);
  hop.set_outcome(label(outcome.status), outcome.failure.label());
  log::EnvelopeScope scope(outcome.id);
  {
    std::lock_guard lock(slot.mutex);
    if (!slot.abandoned) {
      if (outcome.then == Then::kAck && !outcome.final_body.empty())
        report(outcome.final_path, outcome.final_body);
      Status st = outcome.then == Then::kAck ? transport_->ack(delivery)
                                             : transport_->nack(delivery, outcome.nack_delay);
      record_settle(st && outcome.then == Then::kAck, st && outcome.then == Then::kNack);
      if (!st)
        spdlog::error("{} failed: {}", outcome.then == Then::kAck ? "ack" : "nack", st.message());
    }
    slot.in_flight = nullptr;
  }
  if (outcome.failure) metrics_.failed(outcome.failure.label());
  if (outcome.duplicate_kept) metrics_.end_duplicate_kept();
  metrics_.processed(label(outcome.status));
  metrics_.active_add(-1);
  metrics_.processing_duration(seconds_since(started));
  spdlog::debug("stored {} bytes", delivery.body.size());
}

}  // namespace detail

int run_sidecar(const Config& config, std::unique_ptr<transport::Transport> transport) {
  detail::Runner runner(config, std::move(transport));
  return runner.run();
}

}  // namespace asya::sidecar
