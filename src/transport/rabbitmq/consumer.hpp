// The consuming side of the RabbitMQ transport: one connection owned by one thread, channel 1
// with basic.qos(prefetch) and one consumer (manual ack) per queue that receive() was called for.
//
// The connection is opened on the first receive(), so a process that only sends uses one
// connection. Deliveries pushed by the broker wait in a per-queue buffer until receive() hands them
// out. Every delivery (buffered or handed out) stays unacked at the broker until ack(). A receipt
// is
// "<connection generation>:<delivery tag>"; after a reconnect the old deliveries are redelivered
// by the broker, so acks for them fail ("stale") without sending anything.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "transport/rabbitmq/amqp_connection.hpp"
#include "transport/rabbitmq/link.hpp"
#include "transport/transport.hpp"

namespace asya::transport::rabbitmq {

class Consumer {
 public:
  explicit Consumer(const RabbitmqSettings& settings);
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;
  ~Consumer();

  // Starts consuming `queue` on first use, then waits up to `wait` for deliveries. Right after a
  // consumer starts on a queue that holds messages, waits (up to 2s) for the first of them even
  // when `wait` is shorter, so "receive what is there" works on a push-based broker. Fails when
  // not connected at the end of the wait, or when the queue cannot be consumed.
  Result<std::vector<Delivery>> receive(const std::string& queue, std::size_t max_messages,
                                        std::chrono::milliseconds wait);

  // Checks that `delivery` was handed out by this consumer on the current connection and is not
  // acked yet.
  Status check(const Delivery& delivery);

  // Sends basic.ack for it (waits until written, up to confirm_timeout).
  Status ack(const Delivery& delivery);

  // Deliveries of `queue` held unacked by this consumer (buffered or handed out).
  std::uint64_t in_flight(const std::string& queue);

  // Stops consuming (basic.cancel) and hands out every buffered delivery, so the caller can
  // return them without counting a delivery (see RabbitmqTransport::close).
  std::vector<Delivery> cancel_and_drain(std::chrono::milliseconds timeout);

  // Wakes receive() callers; later receive() calls return empty at once. Cancels the consumers
  // (in the background), so nothing more is pushed to this process.
  void interrupt();
  void stop();

 private:
  struct AckJob;
  struct QueueState {
    std::deque<std::pair<std::uint64_t, Delivery>> buffer;  // (delivery tag, delivery)
    bool wanted = false;                                    // receive() asked for it
    bool consuming = false;      // basic.consume-ok on the current connection
    bool settling = false;       // consuming; messages were ready and not all arrived yet
    std::uint64_t expected = 0;  // deliveries still expected from what was ready at consume time
    std::string error;           // consuming failed (reported once by receive)
  };

  void run();
  bool connect();
  void on_connection_lost(const std::string& why);
  void start_consumers();
  void send_acks();
  void handle_frame(const amqp_frame_t& frame);
  void on_deliver(const amqp_basic_deliver_t& deliver, amqp_channel_t channel);

  const RabbitmqSettings& settings_;
  Wakeup wakeup_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, QueueState, std::less<>> queues_;
  std::map<std::uint64_t, std::string> unacked_;  // tag -> queue, current connection
  std::set<std::uint64_t> handed_out_;            // tags given to receive() callers
  std::vector<std::shared_ptr<AckJob>> acks_;
  std::uint64_t generation_ = 1;
  bool connected_ = false;
  bool interrupted_ = false;
  bool stopping_ = false;
  bool cancel_requested_ = false;
  bool cancelled_ = false;
  std::string last_error_;

  // Owned by the thread.
  AmqpConnection connection_;
  Backoff backoff_;
  std::thread thread_;
};

}  // namespace asya::transport::rabbitmq
