// The RabbitMQ transport (AMQP 0-9-1 through rabbitmq-c), PROTOCOL §2.
//
// Topology: one durable direct exchange (ASYA_RABBITMQ_EXCHANGE, default "asya"); every queue is
// durable, declared on first use (ensure_queue, send or receive) and bound to the exchange with
// routing key = its own name. Messages are published persistent (delivery mode 2), mandatory, with
// publisher confirms: send() returns only after the broker confirmed the message (or failed).
// Consumers use manual acks and a prefetch of ASYA_RABBITMQ_PREFETCH per queue. Queues are declared
// quorum (x-queue-type=quorum) unless ASYA_RABBITMQ_QUEUE_TYPE=classic; a queue that already exists
// with the other type is used as it is.
//
// Delays (send with a delay, nack with a delay) need no broker plugin: the message is published to
// a delay queue `<queue>.delay.<ms>` with a queue-wide message TTL of <ms> and dead-lettering to
// the exchange with routing key <queue>, so it lands back in <queue> when the TTL expires. RabbitMQ
// only expires messages at the head of a queue, so one queue holds one delay only: a delay is
// rounded UP to two significant digits (1234ms -> 1300ms, at most 10% late, never early), which
// bounds the number of delay queues per queue (90 per decade of delay) at the cost of that
// precision. Delay queues are deleted by the broker after an hour without use (x-expires).
//
// Delivery counts: a nack is "publish a copy carrying header x-asya-delivery-count = the count of
// this delivery (to the queue or its delay queue), wait for its confirm, then ack the original",
// so the count survives any number of nacks on classic and quorum queues. A delivery's count is
// x-asya-delivery-count (0 when absent) + 1 + the broker's own redelivery count: x-delivery-count
// on quorum queues (exact), or 1 when the `redelivered` flag is set on classic queues (a classic
// queue cannot say how many times a message came back after connection losses; use quorum queues
// when a message may crash its consumer repeatedly).
//
// Threads: rabbitmq-c is blocking and not thread-safe, so each of the two connections (one to
// publish and declare, one to consume and ack) is a Link (link.hpp): its use is serialized by a
// lock, and its own thread connects, reads what no caller reads and sends heartbeats. A calling
// thread that finds the connection free uses it directly (a send writes its publish and reads
// until its confirm, an ack is written and never waits, a receive reads the deliveries pushed
// meanwhile, and one that has to wait reads the socket itself when nobody else does; acks of
// messages settled close together share one basic.ack(multiple), see consumer.hpp plan_acks);
// otherwise it hands the work to the link thread. Both threads reconnect with backoff (100ms
// doubling to 5s) after any connection failure (each step of an attempt, from the host name
// lookup to the last declaration, waits at most step_timeout() for the broker, and so does every
// write on a connection; a stop cuts a connection attempt short),
// redeclare the topology they use, re-issue their
// consumers and republish every unconfirmed message (so a broker restart loses nothing; duplicates
// are possible, as always with at-least-once delivery). Deliveries received before a reconnect
// cannot be acked any more (the broker redelivers them); ack()/nack() on them fail and lose
// nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "transport/transport.hpp"

namespace asya::transport {

struct RabbitmqSettings {
  // From ASYA_RABBITMQ_URL (amqp://user:pass@host:port/vhost, amqps:// for TLS), else from
  // ASYA_RABBITMQ_HOST / _PORT / _USERNAME / _PASSWORD / _VHOST.
  std::string host = "localhost";
  int port = 5672;
  std::string username = "guest";
  std::string password = "guest";
  std::string vhost = "/";
  bool tls = false;
  std::string ca_file;  // ASYA_RABBITMQ_CA_FILE: CA bundle for amqps:// (system default when empty)

  std::string exchange = "asya";  // ASYA_RABBITMQ_EXCHANGE
  int prefetch = 10;              // ASYA_RABBITMQ_PREFETCH (1..65535)
  // ASYA_RABBITMQ_QUEUE_TYPE=quorum|classic (default quorum: a crashed broker redelivers only
  // what was in flight; a classic queue also redelivers what was acked since its last flush).
  bool quorum = true;
  // How long send()/ensure_queue()/stats() wait (including reconnects) before failing:
  // ASYA_RABBITMQ_CONFIRM_TIMEOUT.
  std::chrono::milliseconds confirm_timeout{std::chrono::seconds(30)};
  // Until the first connection succeeded, calls fail after this long with the reason the broker
  // could not be reached (a wrong URL, a broker that is down) instead of waiting confirm_timeout:
  // ASYA_RABBITMQ_CONNECT_TIMEOUT. Reconnects after a lost connection wait confirm_timeout.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  int confirm_window = 256;            // ASYA_RABBITMQ_CONFIRM_WINDOW (1..65535)
  std::chrono::seconds heartbeat{30};  // ASYA_RABBITMQ_HEARTBEAT (0 = off)
  // ASYA_RABBITMQ_RPC_TIMEOUT: how long one step of talking to the broker waits for its answer
  // (the host name lookup, the TCP connect, the TLS and the AMQP handshake, each channel open,
  // qos, consume, declaration and the connection.close), and how long a write may go without the
  // broker taking any of it. 0 (unset): step_timeout() derives it from the heartbeat.
  std::chrono::milliseconds rpc_timeout{0};
  std::size_t max_message_bytes =
      128u << 20;  // ASYA_RABBITMQ_MAX_MESSAGE_BYTES (broker's default limit)

  // Reads the variables above from `environment` (defaults when unset); throws ConfigError naming
  // a bad value.
  static RabbitmqSettings from_env(const Environment& environment = Environment());
  // Applies an amqp:// or amqps:// URL to the connection fields; throws ConfigError.
  void apply_url(std::string_view url);
  // "amqp://user@host:port/vhost" (no password), for messages.
  std::string describe() const;
  // The bound of one step (rpc_timeout): when unset, twice the heartbeat (an established
  // connection is given up after two silent heartbeats; one being opened gets no longer for an
  // answer), at least 5 s (a loaded broker still answers) and at most 10 s (RabbitMQ's own
  // handshake timeout); 10 s with heartbeats off.
  std::chrono::milliseconds step_timeout() const;
};

// The delay actually used for a requested delay: rounded up to two significant digits in
// milliseconds (0 stays 0). Exposed for tests.
std::chrono::milliseconds rabbitmq_delay_bucket(std::chrono::milliseconds delay);

// "<queue>.delay.<bucket ms>": the delay queue holding messages for `queue` with that delay.
std::string rabbitmq_delay_queue_name(std::string_view queue, std::chrono::milliseconds bucket);

// Starts the connection threads (they connect in the background; calls wait up to
// connect_timeout for the first connection, confirm_timeout for later ones). Throws ConfigError
// only for invalid settings.
std::unique_ptr<Transport> make_rabbitmq_transport(const Options& options,
                                                   const RabbitmqSettings& settings);

// The registered factory ("rabbitmq"): the settings read from options.environment.
std::unique_ptr<Transport> make_rabbitmq_transport(const Options& options);

}  // namespace asya::transport
