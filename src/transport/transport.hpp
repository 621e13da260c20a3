// The queue transport interface. A sidecar, the gateway and `asya up` talk to queues only through
// this interface; each implementation lives in its own folder (sqlite/, rabbitmq/, sqs/) and is
// registered by name in registry.cpp (`ASYA_TRANSPORT`; see register_transport below).
//
// Queue names passed here are full names, prefix included ("asya-echo"). All methods are
// blocking and thread-safe: a sidecar calls them from several worker threads on one instance.
// No method throws for a runtime failure; failures are returned as asya::Error/Status whose
// message names the queue and the cause.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.hpp"
#include "common/result.hpp"
#include "transport/body_spool.hpp"
#include "transport/delivery_body.hpp"

namespace asya::transport {

// One delivery of a message. `body` is the message exactly as sent. `delivery_count` is 1 on the
// first delivery and grows on each redelivery (lease expiry, nack, connection loss), so a consumer
// can stop a poison message. `receipt` is an opaque handle the transport uses to ack/nack; it is
// only valid on the instance that produced it. `body` may be kept outside the Delivery (a mapped
// file, transport/delivery_body.hpp) and stays valid while any copy of the Delivery lives.
struct Delivery {
  std::string queue;
  DeliveryBody body;
  std::uint32_t delivery_count = 1;
  std::string receipt;
};

// One message for send_many(): what send() takes. The views must outlive the call.
struct OutgoingMessage {
  std::string_view queue;
  std::string_view body;
  std::chrono::milliseconds delay{0};
  // A large body given in parts (the sidecar's output: the envelope's head, the payload where the
  // runtime's answer holds it, the closing brace), so that it is never assembled in memory: when
  // not empty, the body is these parts one after the other and `body` is empty. Only a transport
  // whose sends_parts() is true is given parts.
  std::span<const std::string_view> parts{};
  // The spool whose contents hold parts[1] (the payload), opened on this transport
  // (transport/body_spool.hpp): the transport may turn it into the body instead of writing the
  // parts anew. Null for none; a transport that did not open it ignores it.
  BodySpool* spool = nullptr;

  // The body's length in bytes, parts or not.
  std::size_t size() const {
    if (parts.empty()) return body.size();
    std::size_t total = 0;
    for (std::string_view part : parts) total += part.size();
    return total;
  }
  // The body as parts: `parts`, or `body` as the only part.
  std::span<const std::string_view> body_parts() const {
    return parts.empty() ? std::span<const std::string_view>(&body, 1) : parts;
  }
  // The body as one string (the parts joined; a copy of `body` without parts).
  std::string joined() const {
    if (parts.empty()) return std::string(body);
    std::string out;
    out.reserve(size());
    for (std::string_view part : parts) out.append(part);
    return out;
  }
};

struct QueueStats {
  std::uint64_t ready = 0;      // visible, waiting to be received
  std::uint64_t in_flight = 0;  // received and not yet acked/nacked (leased, unacked)
  std::uint64_t delayed = 0;    // sent with a delay or nacked with a delay, not yet visible
};

class Transport {
 public:
  virtual ~Transport() = default;

  // The registered name ("sqlite", "rabbitmq", "sqs").
  virtual std::string_view name() const = 0;

  // Creates the queue if it does not exist; idempotent. Sending to or receiving from a queue that
  // was never ensured may fail on some transports.
  virtual Status ensure_queue(std::string_view queue) = 0;

  // Waits up to `wait` for at least one message and returns up to `max_messages` of them (an
  // empty vector after the wait bound passed with nothing available). Every returned delivery is
  // leased/unacked until ack() or nack(); a lease that is neither acked nor nacked before the
  // transport's visibility timeout is delivered again. Returns early (possibly empty) after
  // close() or interrupt().
  virtual Result<std::vector<Delivery>> receive(std::string_view queue, std::size_t max_messages,
                                                std::chrono::milliseconds wait) = 0;

  // Publishes `body` to `queue`. Returns only once the message is durable (committed to disk,
  // confirmed by the broker). With a non-zero `delay`, the message becomes visible no earlier
  // than `delay` from now. A message larger than max_message_bytes() fails with an Error whose
  // message starts with "message_too_large:".
  virtual Status send(std::string_view queue, std::string_view body,
                      std::chrono::milliseconds delay = std::chrono::milliseconds(0)) = 0;

  // Removes a received message for good. Acking twice, or after the lease expired and the message
  // was redelivered elsewhere, is an error that loses nothing.
  virtual Status ack(const Delivery& delivery) = 0;

  // Several sends and acks at once, for a consumer that settles a batch of messages (the
  // sidecar's dynamic batching): one status per message, in order, each meaning exactly what
  // send()/ack() would have returned for it. The durability contract is send()'s and ack()'s per
  // message: a message reported Ok is durable when the call returns; one reported failed was not
  // sent (acked), and its failure does not stop the others. A consumer still acks an input only
  // after every output of *that* input was reported Ok. The defaults call send()/ack() in a loop;
  // SQLite commits the whole call in shared write transactions (at most 64 messages each, shared
  // with whatever else this process has pending; a statement failure rolls its transaction back
  // and runs each message of it alone, so a bad one fails only itself; a failed BEGIN or COMMIT
  // commits none of them and fails every message of that transaction). Thread-safe.
  // A message given in parts (OutgoingMessage::parts, only to a transport whose sends_parts() is
  // true) is sent exactly as its parts joined would be.
  virtual std::vector<Status> send_many(std::span<const OutgoingMessage> messages) {
    std::vector<Status> out;
    out.reserve(messages.size());
    for (const OutgoingMessage& m : messages)
      out.push_back(m.parts.empty() ? send(m.queue, m.body, m.delay)
                                    : send(m.queue, m.joined(), m.delay));
    return out;
  }

  // Sends started by start_send_many(). Not thread-safe: one caller starts, checks and finishes
  // it. Destroying one that was not finished finishes it first (the views it was given are used
  // until then).
  class SendsInFlight {
   public:
    virtual ~SendsInFlight() = default;
    // Whether finish() would return without waiting (every send durable or failed, or the
    // transport gave up on them). Never blocks for the broker.
    virtual bool ready() = 0;
    // What send_many() would have returned for the messages, one status per message, in order;
    // blocks until then (at most what send_many() would). Called once.
    virtual std::vector<Status> finish() = 0;
  };

  // send_many() in two steps, for a caller that starts more sends while these wait to become
  // durable (the sidecar's settle window): the messages are written (or queued to be written)
  // now, and finish() of the result waits for them. `on_ready` is called, from any thread and
  // possibly with the transport's locks held (so it must only wake someone, never call back into
  // the transport), whenever ready() may have turned true; the caller checks ready() once after
  // this returns too. The durability contract is send_many()'s: a message is durable only once
  // finish() reported it Ok. The default runs send_many() now and is ready at once. The views
  // must stay valid until finish() returns. Thread-safe.
  virtual std::unique_ptr<SendsInFlight> start_send_many(std::span<const OutgoingMessage> messages,
                                                         std::function<void()> on_ready);

  // Whether send_many() and send_then_ack() take a body in parts without joining it first (SQLite
  // writes a body file from the parts). A caller holding a large body in parts joins it itself for
  // a transport that answers false. Never blocks.
  virtual bool sends_parts() const { return false; }
  // A spool for an answer of about `expected_bytes` (transport/body_spool.hpp), or null when this
  // transport has none (every transport but SQLite), would not store such a body as a file (SQLite:
  // not above ASYA_SQLITE_FILE_BODY_BYTES) or cannot open one now (the reason is logged).
  // Thread-safe.
  virtual std::shared_ptr<BodySpool> open_body_spool(std::size_t /*expected_bytes*/) {
    return nullptr;
  }
  virtual std::vector<Status> ack_many(std::span<const Delivery* const> deliveries) {
    std::vector<Status> out;
    out.reserve(deliveries.size());
    for (const Delivery* d : deliveries) out.push_back(ack(*d));
    return out;
  }

  // Sends `messages`, then acks `delivery`, in one step where the transport has one (SQLite: the
  // outputs and the ack in one write transaction, one commit per message instead of two). All or
  // nothing: either every message was sent (durable, as send() says) and the ack was applied, or
  // nothing was sent and nothing acked. In the second case, and always on a transport without such
  // a step (the default), it returns nullopt: the caller then sends and acks one by one as it
  // would have without this call, so each failure (a message too large, the write lock busy) is
  // reported by the step it belongs to. Otherwise it returns the ack's Status: Ok, or an Error like
  // ack()'s when the lease was lost meanwhile (the messages stay sent, as after send() then
  // ack()). Thread-safe.
  virtual std::optional<Status> send_then_ack(std::span<const OutgoingMessage> messages,
                                              const Delivery& delivery) {
    (void)messages;
    (void)delivery;
    return std::nullopt;
  }

  // One step of send_then_ack_many(): the outputs of one received message and that message.
  struct SendThenAck {
    std::span<const OutgoingMessage> messages;
    const Delivery* delivery = nullptr;
  };

  // Several send_then_ack() steps at once, for a consumer holding several decided messages (the
  // sidecar's messages leased ahead, a batch): one result per step, in order, each meaning exactly
  // what send_then_ack() would have returned for it (all or nothing per step; nullopt: nothing of
  // that step was done, settle it one by one). SQLite runs them in shared write transactions (at
  // most 64 steps each, with whatever else the process has pending): one commit, and each page
  // the steps touch (the queues' tails, the index) written once, instead of once per step; a step
  // whose statements fail is run again alone and fails only itself. The default calls
  // send_then_ack() in a loop. Thread-safe.
  virtual std::vector<std::optional<Status>> send_then_ack_many(
      std::span<const SendThenAck> steps) {
    std::vector<std::optional<Status>> out;
    out.reserve(steps.size());
    for (const SendThenAck& step : steps)
      out.push_back(send_then_ack(step.messages, *step.delivery));
    return out;
  }

  // Whether settling several decided messages in one send_then_ack_many() call costs less than
  // settling them one by one (SQLite: true, one write transaction for all). A consumer may then
  // hold the decided messages of one receive and settle them together when the last is decided
  // (never waiting for messages it has not received). Never blocks.
  virtual bool settles_together() const { return false; }

  // Returns a received message to its queue, visible again after `delay`, with its delivery count
  // kept (the next receive reports it + 1).
  virtual Status nack(const Delivery& delivery,
                      std::chrono::milliseconds delay = std::chrono::milliseconds(0)) = 0;

  // Extends the lease of a message still being processed so it is not redelivered meanwhile.
  // Transports without leases (RabbitMQ) return Ok.
  virtual Status extend_lease(const Delivery& delivery, std::chrono::milliseconds visibility) = 0;

  // Whether `delivery` can still be acked. False when the transport already knows the message
  // will be delivered again (RabbitMQ: the connection it arrived on was lost): outputs sent for it
  // now would duplicate the ones its redelivery sends, so a consumer may drop the work instead.
  // Never blocks; thread-safe. Transports that learn it only from a failed ack return true.
  virtual bool still_held(const Delivery& delivery) {
    (void)delivery;
    return true;
  }

  // Whether a received message stays held, with no lease to extend, until it is acked or nacked
  // or the connection it came on closes (it is then delivered again), and send_many() shares the
  // round trip of its sends (publisher confirms). A consumer may then settle messages in the
  // background while it takes the next ones (the sidecar's settle window): nothing needs its
  // lease extended meanwhile, and a crash returns every message not acked. RabbitMQ: true.
  virtual bool holds_until_settled() const { return false; }

  // Counts for the autoscaler and `asya queues`.
  virtual Result<QueueStats> stats(std::string_view queue) = 0;

  // Removes every message waiting in `queue` (ready, and on SQLite also delayed) for good; for
  // `asya queues purge`. Messages being processed are not removed on SQLite and RabbitMQ (their
  // consumers settle them; a later ack of a purged SQLite message fails and loses nothing); SQS's
  // PurgeQueue removes them too. Returns how many messages were removed when the transport can
  // tell (SQLite, RabbitMQ), nullopt when it cannot (SQS purges asynchronously, within 60 s). A
  // queue that does not exist fails with an Error whose message starts with "queue_not_found:".
  // Blocking, thread-safe. Transports that cannot purge return an Error saying so.
  virtual Result<std::optional<std::uint64_t>> purge(std::string_view queue) {
    return Error{"purge of queue \"" + std::string(queue) + "\": the " + std::string(name()) +
                 " transport cannot purge queues"};
  }

  // Names of the known queues (those ensured or holding messages).
  virtual Result<std::vector<std::string>> list_queues() = 0;

  // The largest body send() accepts.
  virtual std::size_t max_message_bytes() const = 0;

  // Wakes every thread blocked in receive() so it returns promptly; used on shutdown. Later
  // receive() calls return at once with no messages. A transport whose connection is down (a
  // reconnect in progress) also fails send() calls waiting for it to come back, at once rather
  // than after their timeout: the stopping process does not wait for a broker that does not
  // answer, and the inputs of those sends, not acked, are delivered again.
  virtual void interrupt() = 0;

  // Releases connections. After close() only the destructor may be called.
  virtual void close() = 0;
};

// What a transport factory is given. The settings shared by every transport, the lookup each
// transport reads its own variables from (ASYA_SQLITE_*, ASYA_RABBITMQ_*, ASYA_SQS_*, AWS_*), and
// explicit values that win over those variables. Nothing is read from anywhere else: a program
// configures a transport through these fields, never through setenv.
struct Options {
  std::chrono::milliseconds visibility_timeout{std::chrono::minutes(10)};
  std::size_t max_message_bytes = 256u << 20;
  // The binaries keep the default, the process environment; a test or a program that configures
  // the transport itself passes another lookup (environment_with() adds values to a lookup).
  EnvironmentLookup environment = process_environment();
  // The SQLite queue database; when set (non-empty) it wins over ASYA_SQLITE_PATH. `asya up` and
  // the CLI pass their project's `.asya/queues.db`. Other transports ignore it.
  std::optional<std::string> sqlite_path;
};

namespace detail {
// The default start_send_many()'s result: send_many() already ran.
class FinishedSends final : public Transport::SendsInFlight {
 public:
  explicit FinishedSends(std::vector<Status> results) : results_(std::move(results)) {}
  bool ready() override { return true; }
  std::vector<Status> finish() override { return std::move(results_); }

 private:
  std::vector<Status> results_;
};
}  // namespace detail

inline std::unique_ptr<Transport::SendsInFlight> Transport::start_send_many(
    std::span<const OutgoingMessage> messages, std::function<void()> /*on_ready*/) {
  return std::make_unique<detail::FinishedSends>(send_many(messages));
}

// Creates a transport from `options`. Throws asya::ConfigError for invalid settings, naming the
// variable (or option) and the bad value.
using Factory = std::function<std::unique_ptr<Transport>(const Options&)>;

// Registration of the built-in transports. Each built-in folder X (sqlite/, rabbitmq/, sqs/)
// builds a static library `asya_transport_X` defining
//   std::unique_ptr<Transport> make_X_transport(const Options&);
// (no static initialisers, which a static link can silently drop). registry.cpp declares these
// functions and puts them in the table the first time any function below runs; CMake links each
// library that exists into `asya_transport` and compiles the matching entry in
// (ASYA_TRANSPORT_HAVE_RABBITMQ / ..._SQS). Programs link `asya_transport_all`, and
// make_transport("X") then always finds every built-in.

// Registers (or replaces) a transport by name, e.g. a fake in a test. Thread-safe.
void register_transport(std::string name, Factory factory);

// Creates the transport registered as `name`. Throws asya::ConfigError for an unknown name
// (listing the known ones) or invalid transport settings.
std::unique_ptr<Transport> make_transport(std::string_view name, const Options& options);

// Reads and validates the settings transport `name` takes from options.environment (its
// variables in docs/configuration.md) without opening or contacting anything: `asya up` checks
// the environment of its sidecars with it before it starts them. Throws asya::ConfigError as
// make_transport() would (an unknown name lists the known ones). A transport added with
// register_transport() has no settings this function knows of: only its name is checked.
void check_transport_settings(std::string_view name, const Options& options);

// Names of the registered transports, sorted.
std::vector<std::string> transport_names();

}  // namespace asya::transport
