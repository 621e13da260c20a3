// Also: the first connection is bounded by connect_timeout (a wrong URL fails fast).
// Transport::purge on RabbitMQ against the broker at ASYA_TEST_RABBITMQ_URL (skips when unset;
// tests/transport/test_rabbitmq.py starts one): queue.purge counts the ready messages, leaves the
// unacked ones, and an unknown queue is refused as not found.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>

#include "transport/rabbitmq/rabbitmq_transport.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;

TEST(RabbitmqPurgeTest, RemovesReadyMessagesCountsThemAndKeepsUnacked) {
  const char* url = std::getenv("ASYA_TEST_RABBITMQ_URL");
  if (url == nullptr) GTEST_SKIP() << "ASYA_TEST_RABBITMQ_URL is not set (no broker)";
  RabbitmqSettings settings;
  settings.apply_url(url);
  std::string q = "tpurge-";
  q += std::to_string(std::random_device()() % 1000000);
  auto t = make_rabbitmq_transport({}, settings);
  // A consumer holds one message: with prefetch 1 the broker delivers it no other.
  RabbitmqSettings one = settings;
  one.prefetch = 1;
  auto consumer = make_rabbitmq_transport({}, one);
  ASSERT_TRUE(t->ensure_queue(q).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(t->send(q, std::to_string(i)).ok());
  auto held = consumer->receive(q, 1, 10s);
  ASSERT_TRUE(held.ok() && held->size() == 1);

  auto purged = t->purge(q);
  ASSERT_TRUE(purged.ok()) << purged.error().message;
  ASSERT_TRUE(purged->has_value());
  EXPECT_EQ(**purged, 3u);
  auto stats = t->stats(q);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready, 0u);
  EXPECT_TRUE(consumer->ack(held->front()).ok()) << "the unacked message was left to its consumer";

  const std::string nobody = q + "-nobody";
  auto missing = t->purge(nobody);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.error().message.starts_with("queue_not_found:")) << missing.error().message;
  EXPECT_NE(missing.error().message.find(nobody), std::string::npos);
  // The channel error of the missing queue did not break the transport.
  consumer->close();
  ASSERT_TRUE(t->send(q, "after").ok());
  auto after = t->purge(q);
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(**after, 1u);
}

// A broker that cannot be reached (here: a bound port nothing listens on) fails the first call
// within connect_timeout, naming the broker, the variable and the cause, although confirm_timeout
// is long.
TEST(RabbitmqConnectTimeoutTest, NeverReachedBrokerFailsWithinTheConnectTimeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  RabbitmqSettings s;
  s.host = "127.0.0.1";
  s.port = ntohs(address.sin_port);
  s.confirm_timeout = 300s;
  s.connect_timeout = 500ms;
  auto t = make_rabbitmq_transport({}, s);
  const auto started = std::chrono::steady_clock::now();
  Status st = t->ensure_queue("asya-x");
  const auto took = std::chrono::steady_clock::now() - started;
  ::close(fd);
  ASSERT_FALSE(st.ok());
  EXPECT_LT(took, 60s) << "bounded by connect_timeout, not the 300 s confirm_timeout";
  EXPECT_NE(st.message().find("within ASYA_RABBITMQ_CONNECT_TIMEOUT=500ms"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("connection refused"), std::string::npos) << st.message();
}

TEST(RabbitmqConnectTimeoutTest, TheVariableIsReadAndChecked) {
  auto settings = RabbitmqSettings::from_env(
      Environment(environment_with({{"ASYA_RABBITMQ_CONNECT_TIMEOUT", "3s"}})));
  EXPECT_EQ(settings.connect_timeout, 3s);
  EXPECT_EQ(RabbitmqSettings{}.connect_timeout, 10s);
  try {
    RabbitmqSettings::from_env(
        Environment(environment_with({{"ASYA_RABBITMQ_CONNECT_TIMEOUT", "10ms"}})));
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ASYA_RABBITMQ_CONNECT_TIMEOUT=\"10ms\" is too short"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace asya::transport
