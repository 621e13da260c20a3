// State the sidecar's runner threads share (internal to sidecar.cpp): the stop request and, per
// worker, the slot of the messages in progress.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "transport/transport.hpp"

namespace asya::sidecar {

// The first non-zero exit code wins.
class StopState {
 public:
  void request(int exit_code) {
    {
      std::lock_guard lock(mutex_);
      if (exit_code != 0 && exit_code_ == 0) exit_code_ = exit_code;
      stopping_ = true;
    }
    cv_.notify_all();
  }
  bool stopping() const {
    std::lock_guard lock(mutex_);
    return stopping_;
  }
  int exit_code() const {
    std::lock_guard lock(mutex_);
    return exit_code_;
  }
  // Waits until stop was requested or `timeout` passed; returns stopping().
  bool wait_for(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [this] { return stopping_; });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  int exit_code_ = 0;
};

// The waits for the runtime in progress inside runtime calls (a request that never reached the
// runtime waits for it to be ready again: wire::RuntimeClientOptions::on_wait), for /readyz.
// Thread-safe.
class RuntimeWaits {
 public:
  // A wait began; `why`: what made the request wait.
  void begin(std::string_view why) {
    std::lock_guard lock(mutex_);
    ++waiting_;
    why_.assign(why);
  }
  // A wait that began ended (the runtime is ready again, or the wait gave up).
  void end() {
    std::lock_guard lock(mutex_);
    if (waiting_ > 0) --waiting_;
  }
  // While a wait is in progress: the why of the latest one begun.
  std::optional<std::string> current() const {
    std::lock_guard lock(mutex_);
    if (waiting_ == 0) return std::nullopt;
    return why_;
  }

 private:
  mutable std::mutex mutex_;
  int waiting_ = 0;
  std::string why_;
};

// What the main thread needs to nack a message a worker did not finish within the grace period,
// and the lease keeper to extend the lease of a message that takes long.
struct Slot {
  std::mutex mutex;
  const transport::Delivery* in_flight = nullptr;
  // With batching: the batch's deliveries not settled yet (settled ones are nullptr).
  std::vector<const transport::Delivery*> batch;
  std::chrono::steady_clock::time_point
      lease_since;  // when in_flight's lease was taken or last extended
  bool abandoned = false;
  std::atomic<bool> finished{false};
  std::atomic<bool> runtime_ready{false};
};

}  // namespace asya::sidecar
