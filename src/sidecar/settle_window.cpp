#include "sidecar/settle_window.hpp"

#include <algorithm>
#include <utility>

namespace asya::sidecar {

SettleWindow::SettleWindow(Settle settle, std::size_t threads, std::size_t max_pending,
                           std::size_t max_batch)
    : settle_(std::move(settle)),
      max_threads_(std::max<std::size_t>(threads, 1)),
      max_pending_(std::max<std::size_t>(max_pending, 1)),
      max_batch_(std::max<std::size_t>(max_batch, 1)) {}

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
  // wake no other thread just to find nothing.
  const bool first = waiting_.size() == 1;
  lock.unlock();
  if (first) work_.notify_one();
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
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_threads_;
    work_.wait(lock, [this] { return stopping_ || (!waiting_.empty() && !abandoned_); });
    --idle_threads_;
    if (waiting_.empty() || abandoned_) return;  // stopping
    std::vector<std::unique_ptr<PendingSettle>> taken;
    while (!waiting_.empty() && taken.size() < max_batch_) {
      taken.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    settling_ += taken.size();
    const bool more = !waiting_.empty() && idle_threads_ > 0;
    lock.unlock();
    if (more) work_.notify_one();
    std::vector<PendingSettle*> items;
    items.reserve(taken.size());
    for (auto& item : taken) items.push_back(item.get());
    settle_(items);
    const std::size_t count = taken.size();
    taken.clear();  // what the items owned is released here, outside the lock
    lock.lock();
    settling_ -= count;
    settled_.notify_all();
  }
}

}  // namespace asya::sidecar
