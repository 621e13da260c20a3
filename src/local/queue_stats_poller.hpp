// Reads the queue stats of the supervisor's actors on a thread of its own, so a slow or
// unreachable broker never holds up the control loop: signals (`asya down`), restarts, scaling of
// the replicas that exist and status.json go on while a stats call waits (on RabbitMQ a call
// waits up to ASYA_RABBITMQ_CONFIRM_TIMEOUT for a broker that is down).
//
// The thread opens its own transport (inside the thread: opening may wait for a broker too) and
// reads each queue at its own interval, one call at a time. latest() never blocks on the
// transport: it returns the last successful read with its time, and once a call has been waiting
// longer than `answer_timeout`, an error saying so.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace asya::local {

class QueueStatsPoller {
 public:
  using Clock = std::chrono::steady_clock;
  using OpenTransport = std::function<std::unique_ptr<transport::Transport>()>;

  struct Queue {
    std::string name;                    // full name, prefix included
    std::chrono::milliseconds interval;  // time between two reads of this queue
  };

  struct Sample {
    transport::QueueStats stats;  // of the last successful read (zeros before the first)
    Clock::time_point read_at;    // when that read returned; Clock::time_point{}: never
    // Why the stats are not current: the last read failed (its error), or a read has been
    // waiting longer than answer_timeout. Empty while the stats are current.
    std::string error;
    bool ok() const { return read_at != Clock::time_point{} && error.empty(); }
  };

  // `open` creates the transport on the poller's thread; it may throw (the message is reported
  // as the error of every queue, and opening is retried at the shortest interval).
  QueueStatsPoller(OpenTransport open, std::vector<Queue> queues,
                   std::chrono::milliseconds answer_timeout);
  QueueStatsPoller(const QueueStatsPoller&) = delete;
  QueueStatsPoller& operator=(const QueueStatsPoller&) = delete;
  // stop(0).
  ~QueueStatsPoller();

  // Starts the thread. Call once.
  void start();

  // The latest sample of `queue` (one of those given). Thread-safe; never waits for the
  // transport.
  Sample latest(const std::string& queue) const;

  // Asks the thread to read every queue now (a fresh status for `asya status`); the reads'
  // times are in the samples. Thread-safe; never waits.
  void refresh_now();

  // Asks the thread to stop and waits up to `wait` for it. A thread still inside a transport call
  // then is left to finish that call on its own (it closes its transport and ends afterwards);
  // nothing of this object is used by it any more.
  void stop(std::chrono::milliseconds wait);

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

}  // namespace asya::local
