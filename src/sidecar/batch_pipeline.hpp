// Pipelined batches (internal to the sidecar; PROTOCOL §3 "Pipelined batches"): a worker whose
// runtime declares `pipeline` sends its next full batch on a second connection while the runtime
// still works on the current one, so the runtime begins it as soon as it has answered, instead of
// waiting while the sidecar reads that answer, decides it and gathers and sends the next batch.
//
// Each connection still carries one request at a time with every integrity rule of §3; the two
// batches are answered on their own connections. What this class keeps per worker: the second
// connection, whether the runtime declared support, and how long a batch may wait in the runtime
// behind another (the deadline margin: an item sent ahead must not expire while it waits).
//
// Threads: the owning worker only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>

#include "wire/runtime_client.hpp"

namespace asya::sidecar {

class BatchPipeline {
 public:
  explicit BatchPipeline(wire::RuntimeClientOptions options) : second_(std::move(options)) {}

  // Set once the runtime is ready: whether its ready file declares `pipeline` (and batching is
  // on). Off: every batch is sent after the previous one was answered. On, the second connection
  // is opened at once (off when that fails), while the runtime is idle: the bundled Python
  // runtime accepts a new connection only between two requests of the one it serves, so a
  // connection opened while a handler runs would wait for that call.
  void enable(bool on) {
    enabled_ = on && second_.wait_ready(std::chrono::milliseconds(1000)).ok();
  }
  bool enabled() const { return enabled_; }

  // The connection for a batch sent while `busy` (one of `first` and the second connection) has
  // a request in flight: the other one.
  wire::RuntimeClient& other(wire::RuntimeClient& first, const wire::RuntimeClient& busy) {
    return &busy == &first ? second_ : first;
  }

  // Records the duration of an answered batch call (seconds, from when the runtime could begin
  // it).
  void record(double seconds) { last_seconds_ = seconds; }

  // How far away an item's deadline must be for the item to be sent ahead: twice the last
  // batch's call (a batch sent now waits at most for the rest of the one in the runtime, which
  // began before now), or `unknown` before any batch was answered.
  std::chrono::milliseconds deadline_margin(std::chrono::milliseconds unknown) const {
    if (last_seconds_ <= 0) return unknown;
    return std::chrono::milliseconds(
        std::max<long long>(1, static_cast<long long>(std::ceil(2000.0 * last_seconds_))));
  }

  // Closes the second connection (the runtime went away: the next send reconnects).
  void disconnect() { second_.disconnect(); }

 private:
  wire::RuntimeClient second_;
  bool enabled_ = false;
  double last_seconds_ = 0;
};

}  // namespace asya::sidecar
