// One rabbitmq-c connection, used by exactly one thread (rabbitmq-c is not thread-safe). Wraps
// connect + login, channel (re)opening, topology declarations and the translation of rabbitmq-c
// replies into asya::Status with messages that name the broker, the queue and the cause.
#pragma once

#include <amqp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "transport/rabbitmq/dial.hpp"
#include "transport/rabbitmq/rabbitmq_transport.hpp"

namespace asya::transport::rabbitmq {

struct QueueCounts {
  std::uint64_t messages = 0;  // ready messages (queue.declare-ok message_count)
  std::uint32_t consumers = 0;
};

class AmqpConnection {
 public:
  explicit AmqpConnection(const RabbitmqSettings& settings);
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;
  ~AmqpConnection();

  // Opens the socket, logs in and opens `channels` channels numbered 1..channels. Each step (host
  // name lookup, TCP connect, TLS handshake, AMQP handshake, each channel open) and every later
  // RPC on the connection waits at most settings.step_timeout() for the broker, and so does every
  // write (the kernel aborts a connection whose peer takes nothing for that long); a failure names
  // the step and the bound.
  Status open(int channels);
  // Thread-safe, for a stop: from now on open() fails at once, a connect or RPC in progress on
  // another thread fails promptly (its socket is shut down) and close() skips connection.close.
  // There is no way back: the owner is stopping.
  void interrupt();
  bool interrupted() const { return interrupted_.load(); }
  bool is_open() const { return state_ != nullptr && !broken_; }
  // Marks the connection unusable (a socket or protocol error happened); the owner reconnects.
  void set_broken() { broken_ = true; }
  amqp_connection_state_t state() const { return state_; }
  int fd() const;
  // TCP_CORK on the socket: while on, what is written leaves in full segments; turning it off
  // sends the rest. False when the socket refuses it.
  bool set_cork(bool on);
  // Destroys the connection (sending connection.close first when it still works).
  void close();

  // Checks an RPC reply. A channel-level error (404, 406, ...) closes only that channel: it is
  // acknowledged and reopened here, and the error returned. A connection-level or library error
  // marks the connection broken.
  Status check(const amqp_rpc_reply_t& reply, amqp_channel_t channel, std::string_view what);
  // A library status code (amqp_basic_publish, amqp_basic_ack, ...); non-OK marks it broken.
  Status check_status(int status, std::string_view what);

  // exchange.declare (durable direct) of settings.exchange.
  Status declare_exchange(amqp_channel_t channel);
  // queue.declare (durable, quorum when configured) + queue.bind with routing key = queue. A queue
  // that exists with the other type is used as it is (passive declare, one warning per queue):
  // ASYA_RABBITMQ_QUEUE_TYPE applies to queues this process creates.
  Status declare_queue(amqp_channel_t channel, const std::string& queue);
  // The delay queue for `queue` with message TTL `bucket`, dead-lettering to the exchange with
  // routing key `queue` (not bound: published to through the default exchange).
  Status declare_delay_queue(amqp_channel_t channel, const std::string& delay_queue,
                             const std::string& queue, std::chrono::milliseconds bucket);
  // queue.declare passive: the counts, or an error ("... not found") when it does not exist.
  Result<QueueCounts> inspect_queue(amqp_channel_t channel, const std::string& queue);

  const RabbitmqSettings& settings() const { return settings_; }

 private:
  Result<QueueCounts> declare(amqp_channel_t channel, const std::string& queue, bool passive,
                              amqp_table_t arguments, std::string_view what);
  // What a failed amqp_login means: credentials only for 403 ACCESS_REFUSED, the vhost for 530
  // NOT_ALLOWED, otherwise what happened to the connection (reset, closed, timed out).
  std::string login_failure_text(const amqp_rpc_reply_t& login, int saved_errno) const;
  // What rabbitmq-c's AMQP_STATUS_HEARTBEAT_TIMEOUT means: for how long the broker sent nothing
  // (twice the negotiated heartbeat) and what to suspect.
  std::string heartbeat_timeout_text() const;

  const RabbitmqSettings& settings_;
  HostLookup lookup_;
  std::atomic<bool> interrupted_{false};
  std::mutex fd_mutex_;  // live_fd_: interrupt() may shut it down only while it is ours
  int live_fd_ = -1;
  amqp_connection_state_t state_ = nullptr;
  bool broken_ = false;
  std::set<std::string> warned_type_;  // queues adopted with another type (warned once each)
};

// A library status with the operating system's reason when there is one: rabbitmq-c reports
// every socket failure as "a socket error occurred", which hides a reset or a refused connection.
std::string library_error_text(int status, int saved_errno);

// A readable text for a rabbitmq-c RPC reply ("NOT_FOUND - no queue 'x' in vhost '/'", ...).
std::string reply_text(const amqp_rpc_reply_t& reply);

// The bytes of `text` (no copy; valid while `text` lives).
inline amqp_bytes_t bytes_of(std::string_view text) {
  return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}

inline std::string_view view_of(amqp_bytes_t bytes) {
  return std::string_view(static_cast<const char*>(bytes.bytes), bytes.len);
}

}  // namespace asya::transport::rabbitmq
