#include "local/queue_stats_poller.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "common/env.hpp"

namespace asya::local {

struct QueueStatsPoller::Shared {
  OpenTransport open;
  std::vector<Queue> queues;
  std::chrono::milliseconds answer_timeout;

  mutable std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool refresh = false;  // refresh_now() was called: every queue is due
  bool finished = false;
  std::condition_variable finished_cv;
  std::map<std::string, Sample> samples;
  // The call in progress: its queue (empty when none) and since when.
  std::string calling;
  Clock::time_point calling_since;

  void run();
};

void QueueStatsPoller::Shared::run() {
  std::unique_ptr<transport::Transport> transport;
  std::map<std::string, Clock::time_point> due;
  for (const auto& q : queues) due[q.name] = Clock::now();
  std::chrono::milliseconds shortest = std::chrono::seconds(1);
  for (const auto& q : queues) shortest = std::min(shortest, q.interval);
  std::unique_lock lock(mutex);
  while (!stopping) {
    if (!transport) {
      calling = "(opening the transport)";
      calling_since = Clock::now();
      lock.unlock();
      std::string error;
      try {
        transport = open();
      } catch (const std::exception& e) {
        error = e.what();
      }
      lock.lock();
      calling.clear();
      if (!transport) {
        for (const auto& q : queues) samples[q.name].error = "cannot open the transport: " + error;
        wake.wait_for(lock, shortest, [&] { return stopping; });
        continue;
      }
    }
    auto now = Clock::now();
    if (refresh) {
      refresh = false;
      for (auto& entry : due) entry.second = now;
    }
    auto next = now + std::chrono::hours(1);
    for (const auto& q : queues) {
      if (stopping) break;
      if (due[q.name] > now) {
        next = std::min(next, due[q.name]);
        continue;
      }
      calling = q.name;
      calling_since = Clock::now();
      lock.unlock();
      auto stats = transport->stats(q.name);
      lock.lock();
      calling.clear();
      Sample& sample = samples[q.name];
      if (stats) {
        sample.stats = *stats;
        sample.read_at = Clock::now();
        sample.error.clear();
      } else {
        sample.error = stats.error().message;
      }
      due[q.name] = Clock::now() + q.interval;
      next = std::min(next, due[q.name]);
    }
    if (stopping) break;
    wake.wait_until(lock, next, [&] { return stopping || refresh; });
  }
  lock.unlock();
  if (transport) transport->close();
  lock.lock();
  finished = true;
  finished_cv.notify_all();
}

QueueStatsPoller::QueueStatsPoller(OpenTransport open, std::vector<Queue> queues,
                                   std::chrono::milliseconds answer_timeout)
    : shared_(std::make_shared<Shared>()) {
  shared_->open = std::move(open);
  shared_->queues = std::move(queues);
  shared_->answer_timeout = answer_timeout;
  for (const auto& q : shared_->queues) shared_->samples[q.name];
}

QueueStatsPoller::~QueueStatsPoller() {
  stop(std::chrono::milliseconds(0));
}

void QueueStatsPoller::start() {
  // The thread keeps the shared state alive: it may outlive this object (see stop()).
  std::thread([shared = shared_] { shared->run(); }).detach();
}

QueueStatsPoller::Sample QueueStatsPoller::latest(const std::string& queue) const {
  std::lock_guard lock(shared_->mutex);
  Sample sample;
  if (auto it = shared_->samples.find(queue); it != shared_->samples.end()) sample = it->second;
  auto waited = Clock::now() - shared_->calling_since;
  if (!shared_->calling.empty() && waited > shared_->answer_timeout) {
    auto seconds = std::chrono::duration_cast<std::chrono::milliseconds>(waited);
    sample.error = fmt::format("no answer from the transport for {} (reading {})",
                               format_duration(seconds), shared_->calling);
  }
  return sample;
}

void QueueStatsPoller::refresh_now() {
  std::lock_guard lock(shared_->mutex);
  shared_->refresh = true;
  shared_->wake.notify_all();
}

void QueueStatsPoller::stop(std::chrono::milliseconds wait) {
  std::unique_lock lock(shared_->mutex);
  shared_->stopping = true;
  shared_->wake.notify_all();
  shared_->finished_cv.wait_for(lock, wait, [&] { return shared_->finished; });
}

}  // namespace asya::local
