// Runs work items that arrive at the same moment as one batch, on an executor's thread, so that
// concurrent tool calls share one job-store transaction and one transport send (Service::
// start_call): group commit without a timer.
//
// How: push() queues an item. If no batch is running, it posts a drain to the executor at once;
// the drain takes every queued item (at most `max_batch`), runs them together, and goes on with
// whatever was queued meanwhile until nothing is left. An item pushed while a batch runs waits
// for that batch and joins the next one; a lone item runs at once, exactly as without batching.
//
// The runner must finish every item of the batch it is given (each item carries its own way of
// reporting its result) and must not throw: an item it dropped would never be answered.
//
// Thread-safe. push() never blocks on the work; the runner runs on the executor, one batch at a
// time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <mutex>
#include <utility>
#include <vector>

namespace asya::gateway {

// What a BatchQueue did so far.
struct BatchQueueStats {
  std::uint64_t items = 0;
  std::uint64_t batches = 0;
  std::size_t largest_batch = 0;
};

template <class Item>
class BatchQueue {
 public:
  // Runs one batch (1 to max_batch items, in the order they were pushed).
  using Runner = std::function<void(std::vector<Item>& batch)>;
  // Runs `drain` on another thread (e.g. asio::post to a thread pool).
  using Poster = std::function<void(std::function<void()> drain)>;

  using Stats = BatchQueueStats;

  BatchQueue(Poster post, Runner run, std::size_t max_batch)
      : post_(std::move(post)),
        run_(std::move(run)),
        max_batch_(std::max<std::size_t>(1, max_batch)) {}
  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  // Queues `item`; starts a drain when none is running.
  void push(Item item) {
    {
      std::lock_guard lock(mutex_);
      pending_.push_back(std::move(item));
      if (draining_) return;
      draining_ = true;
    }
    post_([this] { drain(); });
  }

  Stats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  void drain() {
    for (;;) {
      std::vector<Item> batch;
      {
        std::lock_guard lock(mutex_);
        if (pending_.empty()) {
          draining_ = false;
          return;
        }
        const std::size_t take = std::min(pending_.size(), max_batch_);
        batch.assign(std::make_move_iterator(pending_.begin()),
                     std::make_move_iterator(pending_.begin() + take));
        pending_.erase(pending_.begin(), pending_.begin() + take);
        ++stats_.batches;
        stats_.items += batch.size();
        stats_.largest_batch = std::max(stats_.largest_batch, batch.size());
      }
      run_(batch);
    }
  }

  Poster post_;
  Runner run_;
  std::size_t max_batch_;
  mutable std::mutex mutex_;
  std::vector<Item> pending_;
  bool draining_ = false;
  Stats stats_;
};

}  // namespace asya::gateway
