// How many messages a worker leases in one receive when it is not batching (internal to the
// sidecar): as many as it expects to process within a short budget, from the moving average of
// its recent messages, at most a few. A fast handler (about a millisecond) gets several per lease
// transaction (on SQLite one write transaction instead of one per message); a slow one gets one
// at a time, so a message is never held behind a slow one while another replica or worker is
// idle for more than about the budget. Not thread-safe: one per worker.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>

namespace asya::sidecar {

class ReceiveAhead {
 public:
  // Messages are leased ahead only while the expected work for all of them fits in `budget`.
  static constexpr std::chrono::microseconds kBudget{10'000};
  static constexpr std::size_t kMax = 8;

  // How many to ask for next: 1 until a message was processed, then budget / average, in
  // [1, kMax].
  std::size_t next() const {
    if (average_seconds_ <= 0) return 1;
    const double budget = std::chrono::duration<double>(kBudget).count();
    const double fits = budget / average_seconds_;
    return fits >= static_cast<double>(kMax)
               ? kMax
               : std::max<std::size_t>(1, static_cast<std::size_t>(fits));
  }

  // Records how long one message took to process (receive excluded).
  void record(double seconds) {
    seconds = std::max(seconds, 0.0);
    // A slow message counts at once (no message waits behind a slow handler for long); a fast
    // one brings the average down gradually.
    average_seconds_ = average_seconds_ <= 0 || seconds > average_seconds_
                           ? seconds
                           : average_seconds_ * 0.75 + seconds * 0.25;
    if (average_seconds_ <= 0) average_seconds_ = 1e-9;
  }

 private:
  double average_seconds_ = 0;
};

}  // namespace asya::sidecar
