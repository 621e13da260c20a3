// A broker that stops reading, and a reconnect stuck on a broker that does not answer, under the
// transport's own callers. What must hold: with the heartbeat off a write the broker takes nothing
// of fails after ASYA_RABBITMQ_RPC_TIMEOUT naming the write and host:port, the link reconnects and
// nothing is lost; a receive() keeps returning within its wait while a reconnect is stuck. The
// broker is reached through a relay that can freeze (rabbitmq_relay.hpp). Against a real broker
// (ASYA_TEST_RABBITMQ_URL, see tests/transport/test_rabbitmq.py).
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "transport/rabbitmq/rabbitmq_relay.hpp"
#include "transport/rabbitmq/rabbitmq_test_fixture.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using rabbitmq_test::Clock;
using rabbitmq_test::FreezableRelay;
using rabbitmq_test::numbered;
using rabbitmq_test::RabbitmqTransportTest;

// The transport's log lines while it lives (spdlog's default logger, restored afterwards).
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256)) {
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink_));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  // The first line holding every one of `parts`, or "".
  std::string find(const std::vector<std::string>& parts) {
    for (const std::string& line : sink_->last_formatted()) {
      bool all = true;
      for (const std::string& part : parts) all = all && line.find(part) != std::string::npos;
      if (all) return line;
    }
    return "";
  }
  std::string all() {
    std::string text;
    for (const std::string& line : sink_->last_formatted()) text += line;
    return text;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

template <typename Condition>
bool wait_until(Condition condition, std::chrono::seconds deadline) {
  const auto end = Clock::now() + deadline;
  while (!condition()) {
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// Receives from `q` until every body in `want` came (each acked) or 60 s passed.
std::map<std::string, int> collect(Transport& t, const std::string& q,
                                   const std::vector<std::string>& want) {
  std::map<std::string, int> arrived;
  auto all_there = [&] {
    for (const std::string& w : want)
      if (!arrived.count(w)) return false;
    return true;
  };
  const auto deadline = Clock::now() + 60s;
  while (!all_there() && Clock::now() < deadline) {
    auto got = t.receive(q, 16, 500ms);
    if (!got.ok()) continue;
    for (auto& d : *got) {
      ++arrived[std::string(d.body.substr(0, d.body.find("|")))];
      EXPECT_TRUE(t.ack(d).ok());
    }
  }
  return arrived;
}

// Heartbeat off: rabbitmq-c bounds a write by the heartbeat only, so before this a publish the
// broker stopped reading (1 MiB bodies: written by rabbitmq-c, several frames each) waited
// forever, holding the connection. Now the kernel gives up after the step timeout
// (TCP_USER_TIMEOUT), the error names the write, host:port and the variable, the link reconnects
// once the broker reads again, and the publishes not confirmed are published again: every
// message arrives (duplicates allowed).
TEST_F(RabbitmqTransportTest, BlockedWriteWithHeartbeatOffFailsWithinTheStepAndLosesNothing) {
  LogCapture log;
  FreezableRelay relay(settings_.host, settings_.port);
  RabbitmqSettings through = settings_;
  through.host = "127.0.0.1";
  through.port = relay.port();
  through.heartbeat = 0s;
  through.rpc_timeout = 1s;
  through.confirm_timeout = 300s;  // the sends wait across the reconnect
  auto producer = make(through);
  const std::string q = queue("blocked");
  ASSERT_TRUE(producer->ensure_queue(q).ok());
  ASSERT_TRUE(producer->send(q, "before|").ok());

  relay.freeze(true);
  // More than the socket buffers on both sides of the relay hold.
  const std::string padding(1 << 20, 'x');
  std::vector<std::string> bodies;
  std::vector<std::string> names{"before"};
  for (int i = 0; i < 32; ++i) {
    names.push_back(numbered("m", i));
    bodies.push_back(names.back() + "|" + padding);
  }
  auto sending = std::async(std::launch::async, [&] {
    std::vector<OutgoingMessage> messages;
    for (const std::string& body : bodies) messages.push_back(OutgoingMessage{q, body, 0ms});
    return producer->send_many(messages);
  });
  const std::string where = "127.0.0.1:" + std::to_string(relay.port());
  const bool named = wait_until(
      [&] {
        return !log.find({"connection lost", where, "took nothing", "for 1s",
                          "ASYA_RABBITMQ_RPC_TIMEOUT"})
                    .empty();
      },
      60s);
  relay.freeze(false);  // also lets a transport that hangs finish
  EXPECT_TRUE(named) << "the blocked write was not given up naming it; log:\n" << log.all();

  ASSERT_EQ(sending.wait_for(240s), std::future_status::ready);
  for (const Status& st : sending.get()) EXPECT_TRUE(st.ok()) << st.message();
  auto consumer = make();  // straight to the broker
  auto arrived = collect(*consumer, q, names);
  for (const std::string& name : names) EXPECT_GE(arrived[name], 1) << name << " lost";
}

// A reconnect stuck on a broker that accepts and never answers holds the connection for a whole
// step (here 60 s). A receive() caller that was reading the socket when the connection dropped
// must not wait for it: receive() returns within its own wait (failing "not connected" while the
// link reconnects), again and again, and gets the next message once the broker answers.
TEST_F(RabbitmqTransportTest, ReceiveKeepsReturningWhileAReconnectIsStuck) {
  FreezableRelay relay(settings_.host, settings_.port);
  RabbitmqSettings through = settings_;
  through.host = "127.0.0.1";
  through.port = relay.port();
  through.rpc_timeout = 60s;
  auto consumer = make(through);
  auto producer = make();
  const std::string q = queue("stuck");
  ASSERT_TRUE(producer->ensure_queue(q).ok());
  ASSERT_TRUE(consumer->receive(q, 1, 200ms).ok());  // consuming

  // Each receiver counts its own returns: one stuck while the others return proves nothing.
  constexpr int kReceivers = 3;
  std::array<std::atomic<int>, kReceivers> returned{};
  std::atomic<bool> stop{false};
  std::mutex got_mutex;
  std::vector<std::string> got;
  std::vector<std::thread> receivers;
  for (int i = 0; i < kReceivers; ++i) {
    receivers.emplace_back([&, i] {
      while (!stop) {
        auto r = consumer->receive(q, 1, 300ms);
        ++returned[i];
        if (!r.ok()) continue;
        for (auto& d : *r) {
          std::lock_guard lock(got_mutex);
          got.push_back(std::string(d.body.view()));
          EXPECT_TRUE(consumer->ack(d).ok());
        }
      }
    });
  }
  auto each_returned = [&](const std::array<int, kReceivers>& since, int times) {
    for (int i = 0; i < kReceivers; ++i)
      if (returned[i] < since[i] + times) return false;
    return true;
  };
  ASSERT_TRUE(wait_until([&] { return each_returned({0, 0, 0}, 2); }, 30s));
  relay.cut_and_freeze();
  // A reconnect attempt waits in the relay's accept queue: its AMQP handshake gets no answer.
  ASSERT_TRUE(wait_until([&] { return relay.has_pending_connection(); }, 30s));
  std::array<int, kReceivers> before{};
  for (int i = 0; i < kReceivers; ++i) before[i] = returned[i];
  // Each receive() waits 300 ms: 8 returns each take about 2.5 s, far from the 60 s step.
  const bool responsive = wait_until([&] { return each_returned(before, 8); }, 20s);
  relay.freeze(false);
  EXPECT_TRUE(responsive) << "a receive() caller did not return 8 times in 20 s while the "
                             "reconnect was stuck: "
                          << returned[0] - before[0] << ", " << returned[1] - before[1] << ", "
                          << returned[2] - before[2];

  ASSERT_TRUE(producer->send(q, "after").ok());
  const bool arrived = wait_until(
      [&] {
        std::lock_guard lock(got_mutex);
        return std::find(got.begin(), got.end(), "after") != got.end();
      },
      120s);
  stop = true;
  for (auto& r : receivers) r.join();
  EXPECT_TRUE(arrived) << "the message sent after the reconnect did not arrive";
}

}  // namespace
}  // namespace asya::transport
