// An in-memory Transport for unit tests: queues are deques; sends, acks and nacks are recorded;
// a send can be made to fail; send_then_ack is taken in one step when `one_step` is set; bodies in
// parts are taken when `parts` is set.
#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace asya::sidecar::testing {

class FakeTransport : public transport::Transport {
 public:
  struct Sent {
    std::string queue;
    std::string body;
    std::chrono::milliseconds delay;
  };

  std::string_view name() const override { return "fake"; }
  Status ensure_queue(std::string_view) override { return Status::Ok(); }
  Result<std::vector<transport::Delivery>> receive(std::string_view queue, std::size_t max_messages,
                                                   std::chrono::milliseconds) override {
    std::lock_guard lock(mutex);
    std::vector<transport::Delivery> out;
    auto& q = queues[std::string(queue)];
    while (!q.empty() && out.size() < max_messages) {
      out.push_back(
          transport::Delivery{std::string(queue), q.front(), 1, std::to_string(next_receipt++)});
      q.pop_front();
    }
    return out;
  }
  Status send(std::string_view queue, std::string_view body,
              std::chrono::milliseconds delay) override {
    std::lock_guard lock(mutex);
    if (fail_send_number > 0 && ++send_attempts == fail_send_number)
      return Error{fail_send_message};
    if (body.size() > max_bytes)
      return Error{"message_too_large: body of " + std::to_string(body.size()) + " bytes"};
    sent.push_back(Sent{std::string(queue), std::string(body), delay});
    queues[std::string(queue)].push_back(std::string(body));
    return Status::Ok();
  }
  // Bodies in parts are recorded joined, and counted (sent_in_parts).
  std::vector<Status> send_many(std::span<const transport::OutgoingMessage> messages) override {
    std::vector<Status> out;
    for (const auto& m : messages) {
      if (!m.parts.empty()) {
        std::lock_guard lock(mutex);
        ++sent_in_parts;
      }
      out.push_back(send(m.queue, m.joined(), m.delay));
    }
    return out;
  }
  bool sends_parts() const override { return parts; }
  Status ack(const transport::Delivery& d) override {
    std::lock_guard lock(mutex);
    acked.push_back(d.receipt);
    return Status::Ok();
  }
  std::optional<Status> send_then_ack(std::span<const transport::OutgoingMessage> messages,
                                      const transport::Delivery& d) override {
    std::lock_guard lock(mutex);
    if (!one_step) return std::nullopt;
    ++one_step_calls;
    if (one_step_declines) return std::nullopt;
    for (const auto& m : messages) {
      sent.push_back(Sent{std::string(m.queue), m.joined(), m.delay});
      queues[std::string(m.queue)].push_back(m.joined());
    }
    acked.push_back(d.receipt);
    return Status::Ok();
  }
  Status nack(const transport::Delivery& d, std::chrono::milliseconds delay) override {
    std::lock_guard lock(mutex);
    nacked.push_back({d.receipt, delay});
    return Status::Ok();
  }
  Status extend_lease(const transport::Delivery&, std::chrono::milliseconds) override {
    return Status::Ok();
  }
  Result<transport::QueueStats> stats(std::string_view) override { return transport::QueueStats{}; }
  Result<std::vector<std::string>> list_queues() override { return std::vector<std::string>{}; }
  std::size_t max_message_bytes() const override { return max_bytes; }
  void interrupt() override {}
  void close() override {}

  std::mutex mutex;
  std::map<std::string, std::deque<std::string>> queues;
  std::vector<Sent> sent;
  std::vector<std::string> acked;
  std::vector<std::pair<std::string, std::chrono::milliseconds>> nacked;
  int fail_send_number = 0;  // the N-th send (1-based) fails
  int send_attempts = 0;
  std::string fail_send_message = "disk full";
  std::size_t max_bytes = 256u << 20;
  int next_receipt = 1;
  bool one_step = false;           // send_then_ack sends and acks (else: nullopt, as the default)
  bool one_step_declines = false;  // ... counts the call but does nothing (returns nullopt)
  int one_step_calls = 0;
  bool parts = false;     // sends_parts()
  int sent_in_parts = 0;  // messages send_many() was given in parts
};

}  // namespace asya::sidecar::testing
