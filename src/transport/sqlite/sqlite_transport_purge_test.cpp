// Transport::purge on SQLite (`asya queues purge`): waiting messages go, with their bodies (inline
// or files); leased ones and other queues stay; an unknown queue is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>

#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::size_t files_in(const fs::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n;
}

TEST(SqliteTransportPurgeTest, RemovesReadyAndDelayedKeepsLeasedAndOtherQueues) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.file_body_bytes = 16;  // bodies above 16 bytes are files
  auto t = make_sqlite_transport({}, settings);
  ASSERT_TRUE(t->ensure_queue("asya-a").ok());
  ASSERT_TRUE(t->send("asya-a", "leased").ok());
  ASSERT_TRUE(t->send("asya-a", "ready").ok());
  ASSERT_TRUE(t->send("asya-a", std::string(100, 'f')).ok());  // a body file
  ASSERT_TRUE(t->send("asya-a", "delayed", 60s).ok());
  ASSERT_TRUE(t->send("asya-b", "other queue").ok());
  auto leased = t->receive("asya-a", 1, 1s);
  ASSERT_TRUE(leased.ok() && leased->size() == 1);
  ASSERT_EQ(files_in(settings.path + ".bodies"), 1u);

  auto purged = t->purge("asya-a");
  ASSERT_TRUE(purged.ok()) << purged.error().message;
  ASSERT_TRUE(purged->has_value());
  EXPECT_EQ(**purged, 3u);  // ready, the body file one, delayed
  EXPECT_EQ(files_in(settings.path + ".bodies"), 0u) << "the purged body file is deleted";
  auto stats = t->stats("asya-a");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready + stats->delayed, 0u);
  EXPECT_EQ(stats->in_flight, 1u);
  EXPECT_TRUE(t->ack(leased->front()).ok()) << "the leased message was left to its consumer";
  auto other = t->stats("asya-b");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->ready, 1u);

  auto again = t->purge("asya-a");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(**again, 0u) << "an empty known queue purges to zero";
}

TEST(SqliteTransportPurgeTest, MessageWhoseLeaseExpiredIsPurgedAndItsAckFailsHarmlessly) {
  test::TempDir dir;
  Options options;
  options.visibility_timeout = 1ms;
  auto t = make_sqlite_transport(options, dir.settings());
  ASSERT_TRUE(t->send("asya-a", "m").ok());
  auto leased = t->receive("asya-a", 1, 1s);
  ASSERT_TRUE(leased.ok() && leased->size() == 1);
  std::this_thread::sleep_for(5ms);  // the 1 ms lease is over
  auto purged = t->purge("asya-a");
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(**purged, 1u);
  EXPECT_FALSE(t->ack(leased->front()).ok());
}

TEST(SqliteTransportPurgeTest, UnknownQueueIsRefusedAsNotFound) {
  test::TempDir dir;
  auto t = make_sqlite_transport({}, dir.settings());
  ASSERT_TRUE(t->ensure_queue("asya-known").ok());
  auto purged = t->purge("asya-nobody");
  ASSERT_FALSE(purged.ok());
  EXPECT_TRUE(purged.error().message.starts_with("queue_not_found:")) << purged.error().message;
  EXPECT_NE(purged.error().message.find("\"asya-nobody\""), std::string::npos);
  auto known = t->purge("asya-known");
  ASSERT_TRUE(known.ok()) << known.error().message;
  EXPECT_EQ(**known, 0u);
}

}  // namespace
}  // namespace asya::transport
