// The SQLite transport's per-message path at a steady rate: what one message costs when every
// transaction finds the page cache emptied by another connection's commit (docs/performance.md,
// sidecar_cpu_per_msg).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>

#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;

// Forwards one message from "asya-in" to "asya-out" the way a sidecar does: a producer instance
// sends (its commit empties the consumer's page cache, as another process's would), the consumer
// leases it, then sends its output and acks it in one step.
void forward_one(Transport& producer, Transport& consumer, int i) {
  ASSERT_TRUE(producer.send("asya-in", "message " + std::to_string(i)));
  auto got = consumer.receive("asya-in", 1, 5s);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  OutgoingMessage out{"asya-out", std::string_view(got->front().body)};
  auto settled = consumer.send_then_ack(std::span<const OutgoingMessage>(&out, 1), got->front());
  ASSERT_TRUE(settled && *settled) << (settled ? settled->message() : "not settled in one step");
}

// With SQLite's defaults every transaction after another connection's commit allocated its page
// cache again in one 87 KB block (20 pages), and every lease a 64 KiB statement journal; glibc gave
// both back to the kernel and faulted them in again per message. Neither may come back: no single
// allocation of 64 KiB or more on the steady path.
TEST(SqliteSteadyPath, AMessageForwardedAfterAnotherConnectionsCommitMakesNoLargeAllocation) {
  test::TempDir dir;
  Options options;
  auto producer = make_sqlite_transport(options, dir.settings());
  auto consumer = make_sqlite_transport(options, dir.settings());
  for (int i = 0; i < 3; ++i) forward_one(*producer, *consumer, i);  // statements prepared

  sqlite3_int64 current = 0;
  sqlite3_int64 largest = 0;
  ASSERT_EQ(sqlite3_status64(SQLITE_STATUS_MALLOC_SIZE, &current, &largest, /*reset=*/1),
            SQLITE_OK);
  for (int i = 3; i < 23; ++i) forward_one(*producer, *consumer, i);
  ASSERT_EQ(sqlite3_status64(SQLITE_STATUS_MALLOC_SIZE, &current, &largest, 0), SQLITE_OK);
  EXPECT_GT(largest, 0) << "SQLite's memory statistics are off: the check cannot see anything";
  EXPECT_LT(largest, 64 * 1024) << "the largest single SQLite allocation of 20 forwarded messages";

  auto stats = consumer->stats("asya-out");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->ready, 23u);  // every output arrived once
}

// A lease of several messages (a consumer leasing ahead) keeps its single UPDATE ... RETURNING,
// which must not need a statement journal (64 KiB per lease) either.
TEST(SqliteSteadyPath, ALeaseOfSeveralMessagesMakesNoLargeAllocation) {
  test::TempDir dir;
  Options options;
  auto producer = make_sqlite_transport(options, dir.settings());
  auto consumer = make_sqlite_transport(options, dir.settings());
  forward_one(*producer, *consumer, 0);  // statements prepared
  sqlite3_int64 current = 0;
  sqlite3_int64 largest = 0;
  ASSERT_EQ(sqlite3_status64(SQLITE_STATUS_MALLOC_SIZE, &current, &largest, /*reset=*/1),
            SQLITE_OK);
  std::size_t received = 0;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(producer->send("asya-in", std::to_string(i)));
    auto got = consumer->receive("asya-in", 8, 5s);
    ASSERT_TRUE(got) << got.error().message;
    ASSERT_EQ(got->size(), 8u);
    for (const Delivery& d : *got) {
      EXPECT_EQ(d.delivery_count, 1u);
      ASSERT_TRUE(consumer->ack(d));
    }
    received += got->size();
  }
  ASSERT_EQ(sqlite3_status64(SQLITE_STATUS_MALLOC_SIZE, &current, &largest, 0), SQLITE_OK);
  EXPECT_EQ(received, 24u);
  EXPECT_LT(largest, 64 * 1024) << "the largest single SQLite allocation of 3 leases of 8";
}

}  // namespace
}  // namespace asya::transport
