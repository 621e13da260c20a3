// Metrics of dynamic batching (sidecar/batcher.hpp), added to the sidecar's /metrics through
// common/process_metrics.hpp, so metrics.cpp stays as it is:
//   asya_actor_batch_size{queue}                  histogram: envelopes per runtime call
//   asya_actor_batch_wait_seconds{queue}          histogram: time spent gathering after the first
//   asya_actor_batch_items_total{queue}           counter: envelopes sent in batches
//                                                 (items per second: rate() of it)
// Thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace asya::sidecar {

class BatchMetrics {
 public:
  // `queue`: the input queue, full name. Registers the families with the process's metrics (they
  // stay registered, and valid, for the life of the process).
  explicit BatchMetrics(std::string queue);

  // One runtime call for `size` envelopes, gathered for `wait_seconds` after the first.
  void batch(std::size_t size, double wait_seconds);

  // Prometheus text of the families (also what the process's /metrics appends).
  std::string serialize() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace asya::sidecar
