// A broker that goes silent with the connection still open (a frozen host, a network partition):
// the transport talks to the test broker through a relay that can stop relaying without closing
// anything, so only the AMQP heartbeat can tell. The end-to-end version, with the broker's VM
// frozen by SIGSTOP under a real sidecar, is tests/sidecar/test_rabbitmq_silent_broker.py.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "transport/rabbitmq/rabbitmq_relay.hpp"
#include "transport/rabbitmq/rabbitmq_test_fixture.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using rabbitmq_test::Clock;
using rabbitmq_test::FreezableRelay;
using rabbitmq_test::RabbitmqTransportTest;

// A send while the broker is silent fails after the confirm timeout naming the missed heartbeat
// (not a bare "heartbeat timeout"); once the broker answers again the transport reconnects by
// itself, and what was confirmed before and sent after all arrives (the failed send's message may
// too: its bytes may reach the broker before the close, at-least-once).
TEST_F(RabbitmqTransportTest, SilentBrokerIsNamedByTheMissedHeartbeatAndTheLinkRecovers) {
  FreezableRelay relay(settings_.host, settings_.port);
  RabbitmqSettings through_relay = settings_;
  through_relay.host = "127.0.0.1";
  through_relay.port = relay.port();
  through_relay.heartbeat = 1s;
  // Longer than two heartbeats, shorter than the handshake of a reconnect attempt to the silent
  // broker (it waits rpc_timeout): the last error is still the lost heartbeat.
  through_relay.confirm_timeout = 6s;
  through_relay.rpc_timeout = 10s;
  auto producer = make(through_relay);
  const std::string q = queue("silent");
  ASSERT_TRUE(producer->ensure_queue(q).ok());
  ASSERT_TRUE(producer->send(q, "before").ok());

  relay.freeze(true);
  Status during = producer->send(q, "during");
  ASSERT_FALSE(during.ok());
  EXPECT_NE(during.message().find("no heartbeat from the broker for 2 s"), std::string::npos)
      << during.message();
  relay.freeze(false);

  Status after = Status::Ok();
  const auto deadline = Clock::now() + 90s;
  do {
    after = producer->send(q, "after");
  } while (!after.ok() && Clock::now() < deadline);
  ASSERT_TRUE(after.ok()) << after.message();

  auto consumer = make();  // straight to the broker
  std::map<std::string, int> arrived;
  const auto collect_deadline = Clock::now() + 60s;
  while ((!arrived.count("before") || !arrived.count("after")) && Clock::now() < collect_deadline) {
    auto got = consumer->receive(q, 10, 500ms);
    ASSERT_TRUE(got.ok()) << got.error().message;
    for (auto& d : *got) {
      ++arrived[d.body];
      ASSERT_TRUE(consumer->ack(d).ok());
    }
  }
  EXPECT_EQ(arrived.count("before"), 1u);
  EXPECT_EQ(arrived.count("after"), 1u);
  for (auto& [body, n] : arrived)
    EXPECT_TRUE(body == "before" || body == "during" || body == "after") << body;
}

}  // namespace
}  // namespace asya::transport
