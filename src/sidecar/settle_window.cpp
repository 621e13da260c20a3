#include "sidecar/settle_window.hpp"

#include <algorithm>
#include <utility>

namespace asya::sidecar {

namespace {

// Settle() as a Start: the batch is settled by start, finish has nothing left to do.
class SettledAtStart final : public SettleWindow::Started {
 public:
  bool ready() override { return true; }
  void finish() override {}
};

}  // namespace

// A batch a thread took: its items, and its settling once started.
struct SettleWindow::Batch {
  std::vector<std::unique_ptr<PendingSettle>> items;
  std::unique_ptr<Started> started;
  bool poked = true;  // mutex_: ready() is to be asked (its start said it may be ready)
};

SettleWindow::SettleWindow(Start start, std::size_t threads, std::size_t max_pending,
                           std::size_t max_batch, std::size_t batches_per_thread,
                           std::size_t min_batch)
    : start_(std::move(start)),
      max_threads_(std::max<std::size_t>(threads, 1)),
      max_pending_(std::max<std::size_t>(max_pending, 1)),
      max_batch_(std::max<std::size_t>(max_batch, 1)),
      batches_per_thread_(std::max<std::size_t>(batches_per_thread, 1)),
      min_batch_(std::max<std::size_t>(min_batch, 1)) {}

SettleWindow::SettleWindow(Settle settle, std::size_t threads, std::size_t max_pending,
                           std::size_t max_batch)
    : SettleWindow(
          [settle = std::move(settle)](std::span<PendingSettle* const> items,
                                       std::function<void()>) -> std::unique_ptr<Started> {
            settle(items);
            return std::make_unique<SettledAtStart>();
          },
          threads, max_pending, max_batch, 1, 1) {}

SettleWindow::~SettleWindow() {
  drain();
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

std::size_t SettleWindow::submit(std::unique_ptr<PendingSettle> item) {
  std::unique_lock lock(mutex_);
  settled_.wait(lock, [this] { return abandoned_ || waiting_.size() + settling_ < max_pending_; });
  waiting_.push_back(std::move(item));
  const std::size_t pending = waiting_.size() + settling_;
  if (abandoned_) return pending;
  // A thread that is idle takes it; else one more thread while the limit allows, so an item
  // never waits for a settle in progress when another could start now.
  if (idle_threads_ == 0 && threads_.size() < max_threads_) {
    threads_.emplace_back([this] { loop(); });
    return pending;
  }
  // Only the first item waiting wakes a thread: that thread takes every item waiting when it
  // runs (and wakes another for what is left over its batch), so the items handed over meanwhile
  // wake no other thread just to find nothing. With several threads, each of which may be
  // waiting for its own batches rather than for items, every one is woken.
  // A thread with batches in flight waits for min_batch_ items: woken when that many wait.
  const bool first = waiting_.size() == 1 || waiting_.size() == min_batch_;
  lock.unlock();
  if (first && max_threads_ == 1) work_.notify_one();
  if (first && max_threads_ > 1) work_.notify_all();
  return pending;
}

void SettleWindow::drain() {
  std::unique_lock lock(mutex_);
  settled_.wait(lock, [this] { return settling_ == 0 && (waiting_.empty() || abandoned_); });
}

bool SettleWindow::idle() const {
  std::lock_guard lock(mutex_);
  return settling_ == 0 && (waiting_.empty() || abandoned_);
}

std::size_t SettleWindow::pending() const {
  std::lock_guard lock(mutex_);
  return waiting_.size() + settling_;
}

std::vector<std::unique_ptr<PendingSettle>> SettleWindow::abandon() {
  std::vector<std::unique_ptr<PendingSettle>> left;
  {
    std::lock_guard lock(mutex_);
    abandoned_ = true;
    for (auto& item : waiting_) left.push_back(std::move(item));
    waiting_.clear();
  }
  settled_.notify_all();
  return left;
}

void SettleWindow::loop() {
  // This thread's batches, started and not finished, oldest first (finished in that order, so
  // the acks go out in delivery order and coalesce).
  std::deque<std::shared_ptr<Batch>> mine;
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!mine.empty() && mine.front()->poked) {
      std::shared_ptr<Batch> batch = mine.front();
      batch->poked = false;
      lock.unlock();
      const bool ready = batch->started->ready();
      if (ready) {
        batch->started->finish();
        const std::size_t count = batch->items.size();
        // What the items owned is released here, outside the lock; so is the start's callback
        // (which holds the batch).
        batch->started.reset();
        batch->items.clear();
        lock.lock();
        mine.pop_front();
        settling_ -= count;
        settled_.notify_all();
      } else {
        lock.lock();
      }
      continue;
    }
    const bool room = mine.size() < batches_per_thread_;
    // While its earlier batches are in flight, a new one only once min_batch_ items wait (one
    // write and one confirm wake-up for several messages, not one per message).
    if (room && !waiting_.empty() && !abandoned_ &&
        (mine.empty() || waiting_.size() >= min_batch_)) {
      auto batch = std::make_shared<Batch>();
      while (!waiting_.empty() && batch->items.size() < max_batch_) {
        batch->items.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
      settling_ += batch->items.size();
      const bool more = !waiting_.empty() && idle_threads_ > 0;
      mine.push_back(batch);
      lock.unlock();
      if (more) work_.notify_all();
      std::vector<PendingSettle*> items;
      items.reserve(batch->items.size());
      for (auto& item : batch->items) items.push_back(item.get());
      std::unique_ptr<Started> started = start_(items, [this, batch] {
        std::lock_guard poke(mutex_);
        batch->poked = true;
        work_.notify_all();
      });
      lock.lock();
      batch->started = std::move(started);
      batch->poked = true;  // asked once after its start
      continue;
    }
    if (mine.empty() && stopping_) return;
    // Waits for items (when there is room for a batch), for its oldest batch's start to say it
    // may be ready, or to stop. A batch whose start never says so is asked again every 200 ms
    // (its transport gives up on it within its own timeout).
    auto wake = [&] {
      return (stopping_ && mine.empty()) || (!mine.empty() && mine.front()->poked) ||
             (mine.size() < batches_per_thread_ && !waiting_.empty() && !abandoned_ &&
              (mine.empty() || waiting_.size() >= min_batch_));
    };
    if (room) ++idle_threads_;
    if (mine.empty()) {
      work_.wait(lock, wake);
    } else if (!work_.wait_for(lock, std::chrono::milliseconds(200), wake)) {
      mine.front()->poked = true;
    }
    if (room) --idle_threads_;
  }
}

}  // namespace asya::sidecar
