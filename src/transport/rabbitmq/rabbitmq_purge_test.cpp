// Transport::purge on RabbitMQ against the broker at ASYA_TEST_RABBITMQ_URL (skips when unset;
// tests/transport/test_rabbitmq.py starts one): queue.purge counts the ready messages, leaves the
// unacked ones, and an unknown queue is refused as not found.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace asya::transport
