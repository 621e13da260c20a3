// Leasing the next batch while the runtime works on the current one (internal to the sidecar).
//
// When a worker's batch is full (maxSize items: the queue is busy), the worker's settler thread
// (batch_settler.hpp) leases the next batch right after settling the previous one, while the
// runtime works on the current batch. The worker takes it as soon as it has decided the current
// batch's answers and sends it, instead of leasing between two runtime calls: on SQLite the lease
// is a write transaction, the largest part of a saturated batch's time between two calls, during
// which the runtime sat idle.
//
// A batch leased ahead is checked (parse, poison count, deadline, route, cancellation) only when
// the worker takes it, right before it is sent, like any batch. Its deliveries are added to the
// slot's batch as soon as they are leased, so the lease keeper extends them and a shutdown that
// gives up on the worker nacks them; a worker that stops first returns them (give_back).
//
// Threads: step()'s function runs on the settler's thread; take() and give_back() are called by
// the worker once that function has returned (the settler's job finished).
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sidecar/batcher.hpp"
#include "sidecar/metrics.hpp"
#include "sidecar/runner_state.hpp"
#include "transport/transport.hpp"

namespace asya::sidecar {

class BatchAhead {
 public:
  struct Leased {
    // Reserved for max_size deliveries: top_up() adds without moving the ones registered.
    std::vector<transport::Delivery> deliveries;
    std::chrono::steady_clock::time_point leased;  // when the receive began
  };

  // `stop` stops leasing; `metrics` (optional) gets the receive's duration.
  BatchAhead(transport::Transport& transport, std::string queue, BatchSettings settings, Slot& slot,
             const StopState& stop, Metrics* metrics = nullptr)
      : transport_(transport),
        queue_(std::move(queue)),
        settings_(settings),
        slot_(slot),
        stop_(stop),
        metrics_(metrics) {}

  // The step for the settler's thread: leases what is ready now (no wait), up to max_size, and
  // adds it to the slot's batch. Nothing when stopping or when a leased batch was not taken yet.
  // A failed receive leases nothing (the worker's own receive then reports the failure).
  std::function<void()> step() {
    return [this] { lease(); };
  }

  // What the last step leased, or nullopt (nothing was ready, or no step ran), topped up with
  // what is ready now (one receive, no wait) up to max_size: messages that came while the runtime
  // worked. The deliveries added so are not in the slot's batch yet (the caller adds them, as for
  // a receive). Redelivered ones are counted (Metrics::redelivered), as the worker's receive does.
  std::optional<Leased> take();

  // Nacks (returns to the queue) what a step leased and nobody took, and removes it from the
  // slot's batch. For a worker that stops.
  void give_back();

 private:
  void lease();
  std::optional<Leased> take_leased();
  void top_up(Leased& leased);
  void count_redelivered(const std::vector<transport::Delivery>& deliveries, std::size_t from);

  transport::Transport& transport_;
  const std::string queue_;
  const BatchSettings settings_;
  Slot& slot_;
  const StopState& stop_;
  Metrics* metrics_;
  std::mutex mutex_;
  std::optional<Leased> leased_;
};

}  // namespace asya::sidecar
