// RabbitmqTransport: the Transport interface over a Publisher (send, nack copies, declarations,
// stats) and a Consumer (receive, ack). See rabbitmq_transport.hpp for the design.
#include "transport/rabbitmq/rabbitmq_transport.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <set>

#include "common/env.hpp"
#include "transport/rabbitmq/consumer.hpp"
#include "transport/rabbitmq/publisher.hpp"

namespace asya::transport {

namespace {

using rabbitmq::Consumer;
using rabbitmq::Publisher;

// AMQP queue names are at most 255 bytes; keep room for ".delay.<ms>".
constexpr std::size_t kMaxQueueName = 255 - 17;

// start_send_many()'s result: the publisher's call, and the messages refused before it.
struct StartedSends final : Transport::SendsInFlight {
  std::unique_ptr<Publisher::InFlight> publishes;
  std::vector<Status> results;     // one per message (those refused at once are set)
  std::vector<std::size_t> index;  // the publisher's k-th message is message index[k]
  bool ready() override { return publishes->ready(); }
  std::vector<Status> finish() override {
    std::vector<Status> published = publishes->finish();
    for (std::size_t k = 0; k < index.size() && k < published.size(); ++k)
      results[index[k]] = std::move(published[k]);
    return std::move(results);
  }
};

class RabbitmqTransport final : public Transport {
 public:
  RabbitmqTransport(const Options& options, const RabbitmqSettings& settings)
      : options_(options), settings_(settings), publisher_(settings_), consumer_(settings_) {}

  ~RabbitmqTransport() override { close(); }

  std::string_view name() const override { return "rabbitmq"; }

  Status ensure_queue(std::string_view queue) override {
    if (Status st = check_name(queue); !st) return st;
    std::string name(queue);
    if (Status st = publisher_.ensure_queue(name); !st) return st;
    remember(name);
    return Status::Ok();
  }

  Result<std::vector<Delivery>> receive(std::string_view queue, std::size_t max_messages,
                                        std::chrono::milliseconds wait) override {
    if (Status st = check_name(queue); !st) return st.error();
    std::string name(queue);
    remember(name);
    return consumer_.receive(name, std::max<std::size_t>(max_messages, 1), wait);
  }

  Status send(std::string_view queue, std::string_view body,
              std::chrono::milliseconds delay) override {
    if (Status st = check_send(queue, body.size()); !st) return st;
    std::string name(queue);
    remember(name);
    return publisher_.publish(name, body, delay, 0);
  }

  // Every message is written before any confirm is awaited: they share the broker's round trips.
  std::vector<Status> send_many(std::span<const OutgoingMessage> messages) override {
    std::vector<Status> results(messages.size());
    std::vector<OutgoingMessage> valid;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (Status st = check_send(messages[i].queue, messages[i].body.size()); !st) {
        results[i] = st;
        continue;
      }
      remember(std::string(messages[i].queue));
      valid.push_back(messages[i]);
      index.push_back(i);
    }
    std::vector<Status> published = publisher_.publish_many(valid);
    for (std::size_t k = 0; k < index.size(); ++k) results[index[k]] = std::move(published[k]);
    return results;
  }

  // send_many() whose confirms are awaited by finish(): the caller may start more meanwhile.
  std::unique_ptr<SendsInFlight> start_send_many(std::span<const OutgoingMessage> messages,
                                                 std::function<void()> on_ready) override {
    auto call = std::make_unique<StartedSends>();
    call->results.resize(messages.size());
    std::vector<OutgoingMessage> valid;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (Status st = check_send(messages[i].queue, messages[i].body.size()); !st) {
        call->results[i] = st;
        continue;
      }
      remember(std::string(messages[i].queue));
      valid.push_back(messages[i]);
      call->index.push_back(i);
    }
    call->publishes = publisher_.start_many(valid, std::move(on_ready));
    return call;
  }

  Status ack(const Delivery& delivery) override { return consumer_.ack(delivery); }

  std::vector<Status> ack_many(std::span<const Delivery* const> deliveries) override {
    return consumer_.ack_many(deliveries);
  }

  bool holds_until_settled() const override { return true; }

  // A copy carrying this delivery's count goes back first (confirmed), then the original is
  // acked: the count survives, and a failure before the ack loses nothing (the broker redelivers
  // the original).
  Status nack(const Delivery& delivery, std::chrono::milliseconds delay) override {
    if (Status st = consumer_.check(delivery); !st) return st;
    if (Status st =
            publisher_.publish(delivery.queue, delivery.body, delay, delivery.delivery_count);
        !st) {
      // Left unacked, the original would be held until this connection closes (RabbitMQ has no
      // lease), taking a prefetch slot meanwhile: the broker requeues it after the delay instead
      // (and counts that delivery itself).
      if (Status requeued = consumer_.requeue(delivery, delay); !requeued) {
        return Error{"nack of a message from queue \"" + delivery.queue +
                     "\" failed (it is delivered again): " + st.message() + "; " +
                     requeued.message()};
      }
      spdlog::warn(
          "rabbitmq: nack of a message from {} could not publish its copy ({}); the original is "
          "returned to the queue by the broker (basic.nack) after {}ms instead",
          delivery.queue, st.message(), delay.count());
      return Status::Ok();
    }
    if (Status st = consumer_.ack(delivery); !st) {
      // The copy is queued; the original comes back too: a duplicate, nothing lost.
      spdlog::warn(
          "rabbitmq: nack of a message from {} requeued a copy but could not ack the "
          "original, which is delivered again as a duplicate: {}",
          delivery.queue, st.message());
    }
    return Status::Ok();
  }

  Status extend_lease(const Delivery&, std::chrono::milliseconds) override {
    return Status::Ok();  // unacked deliveries have no lease on RabbitMQ
  }

  bool still_held(const Delivery& delivery) override { return consumer_.holds(delivery); }

  Result<QueueStats> stats(std::string_view queue) override {
    if (Status st = check_name(queue); !st) return st.error();
    std::string name(queue);
    auto stats = publisher_.inspect(name);
    if (!stats) return stats;
    // Unacked messages are only known to the broker's management API; this instance reports
    // what it holds itself (see docs/transports.md).
    stats->in_flight = consumer_.in_flight(name);
    return stats;
  }

  Result<std::optional<std::uint64_t>> purge(std::string_view queue) override {
    if (Status st = check_name(queue); !st) return st.error();
    auto removed = publisher_.purge(std::string(queue));
    if (!removed) return removed.error();
    return std::optional<std::uint64_t>(*removed);
  }

  Result<std::vector<std::string>> list_queues() override {
    if (Status st = publisher_.ping(); !st) return st.error();
    std::lock_guard lock(mutex_);
    return std::vector<std::string>(known_.begin(), known_.end());
  }

  std::size_t max_message_bytes() const override {
    return std::min(options_.max_message_bytes, settings_.max_message_bytes);
  }

  // Also ends sends waiting for a lost connection to come back (a stop during a stuck reconnect
  // does not wait for confirm_timeout; the caller's input is not acked, so it is delivered again).
  void interrupt() override {
    consumer_.interrupt();
    publisher_.interrupt();
  }

  // Deliveries buffered by the prefetch but never handed out go back with their count unchanged
  // (a plain connection close would mark them redelivered and count them once more).
  void close() override {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      closed_ = true;
    }
    consumer_.interrupt();
    std::vector<Delivery> buffered = consumer_.cancel_and_drain(std::chrono::seconds(5));
    for (const Delivery& d : buffered) {
      if (publisher_.publish(d.queue, d.body, std::chrono::milliseconds(0), d.delivery_count - 1))
        (void)consumer_.ack(d);
    }
    consumer_.stop();
    publisher_.stop();
  }

 private:
  Status check_name(std::string_view queue) const {
    if (queue.empty() || queue.size() > kMaxQueueName) {
      return Error{"queue name \"" + std::string(queue) + "\" is not valid for RabbitMQ: use 1.." +
                   std::to_string(kMaxQueueName) + " bytes"};
    }
    return Status::Ok();
  }

  Status check_send(std::string_view queue, std::size_t bytes) const {
    if (Status st = check_name(queue); !st) return st;
    if (bytes > max_message_bytes()) {
      return Error{"message_too_large: a message of " + std::to_string(bytes) +
                   " bytes for queue \"" + std::string(queue) +
                   "\" exceeds the RabbitMQ limit of " + std::to_string(max_message_bytes()) +
                   " bytes (ASYA_MAX_MESSAGE_BYTES / ASYA_RABBITMQ_MAX_MESSAGE_BYTES)"};
    }
    return Status::Ok();
  }

  void remember(const std::string& queue) {
    std::lock_guard lock(mutex_);
    known_.insert(queue);
  }

  const Options options_;
  const RabbitmqSettings settings_;
  Publisher publisher_;
  Consumer consumer_;
  std::mutex mutex_;
  std::set<std::string> known_;
  bool closed_ = false;
};

}  // namespace

std::unique_ptr<Transport> make_rabbitmq_transport(const Options& options,
                                                   const RabbitmqSettings& settings) {
  return std::make_unique<RabbitmqTransport>(options, settings);
}

std::unique_ptr<Transport> make_rabbitmq_transport(const Options& options) {
  return make_rabbitmq_transport(options,
                                 RabbitmqSettings::from_env(Environment(options.environment)));
}

}  // namespace asya::transport
