// What the publisher and consumer threads share: a wake-up eventfd, waiting for socket input or a
// wake-up, reading the frames rabbitmq-c has ready without blocking, and reconnect backoff.
#pragma once

#include <amqp.h>

#include <chrono>
#include <string>

#include "transport/rabbitmq/amqp_connection.hpp"

namespace asya::transport::rabbitmq {

// An eventfd another thread writes to wake the connection thread out of poll().
class Wakeup {
 public:
  Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  ~Wakeup();
  void notify();
  // Consumes pending notifications.
  void clear();
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Waits up to `timeout` until the connection has input (buffered by rabbitmq-c or on the socket)
// or `wakeup` fires. Returns at once when frames are already buffered.
void wait_for_input(AmqpConnection& connection, Wakeup& wakeup, std::chrono::milliseconds timeout);

// Reads one frame if one is complete, without blocking (rabbitmq-c also sends heartbeats here).
// Returns 1 with `frame` set, 0 when no frame is ready, or an error (the connection is marked
// broken).
Result<bool> read_frame(AmqpConnection& connection, amqp_frame_t& frame);

// Reconnect backoff: 100ms doubling to 5s, reset after a successful connect.
class Backoff {
 public:
  std::chrono::milliseconds next() {
    auto d = delay_;
    delay_ = std::min(delay_ * 2, std::chrono::milliseconds(5000));
    return d;
  }
  void reset() { delay_ = std::chrono::milliseconds(100); }

 private:
  std::chrono::milliseconds delay_{100};
};

}  // namespace asya::transport::rabbitmq
