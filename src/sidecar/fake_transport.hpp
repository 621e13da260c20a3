// An in-memory Transport for unit tests: queues are deques; sends, acks and nacks are recorded;
// a send can be made to fail.
#pragma once

#include <deque>
#include <map>
#include <mutex>
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
  Status ack(const transport::Delivery& d) override {
    std::lock_guard lock(mutex);
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
};

}  // namespace asya::sidecar::testing
