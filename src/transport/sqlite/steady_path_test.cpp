// The SQLite transport's per-message path at a steady rate: what one message costs when every
// transaction finds the page cache emptied by another connection's commit (docs/performance.md,
// sidecar_cpu_per_msg).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

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

// A consumer leasing ahead at a steady rate asks for several and finds one: that lease takes the
// path of a lease of one (its small body read inside the lease). Whatever the body's storage (in
// the table, in a file, or in the table but too large to read under the lock), the message comes
// whole with its delivery count, a nack brings it back counted again, and its receipt acks it.
TEST(SqliteSteadyPath, ALeaseOfSeveralThatFindsOneMessageDeliversItWholeAndCounted) {
  struct Case {
    const char* what;
    std::uint64_t file_body_bytes;
    std::size_t body_bytes;
  };
  for (const Case& c : {Case{"small, in the table", 1u << 20, 40}, Case{"in a body file", 64, 1000},
                        Case{"in the table, above what a lease reads", 0, 300u << 10}}) {
    SCOPED_TRACE(c.what);
    test::TempDir dir;
    SqliteSettings settings = dir.settings();
    settings.file_body_bytes = c.file_body_bytes;
    Options options;
    auto producer = make_sqlite_transport(options, settings);
    auto consumer = make_sqlite_transport(options, settings);
    std::string body(c.body_bytes, 'b');
    body.front() = '<';
    body.back() = '>';
    ASSERT_TRUE(producer->send("asya-in", body));
    for (std::uint32_t delivery = 1; delivery <= 2; ++delivery) {
      auto got = consumer->receive("asya-in", 8, 5s);
      ASSERT_TRUE(got) << got.error().message;
      ASSERT_EQ(got->size(), 1u);
      EXPECT_TRUE(got->front().body == body);
      EXPECT_EQ(got->front().delivery_count, delivery);
      if (delivery == 1) {
        ASSERT_TRUE(consumer->nack(got->front(), 0ms));
      } else {
        ASSERT_TRUE(consumer->ack(got->front()));
      }
    }
    auto left = consumer->receive("asya-in", 8, 0ms);
    ASSERT_TRUE(left);
    EXPECT_TRUE(left->empty());
  }
}

// With two or more ready, a lease of several takes as many as it asks for, oldest first, each
// counted once.
TEST(SqliteSteadyPath, ALeaseOfSeveralTakesTheReadyMessagesOldestFirst) {
  test::TempDir dir;
  Options options;
  auto producer = make_sqlite_transport(options, dir.settings());
  auto consumer = make_sqlite_transport(options, dir.settings());
  for (int i = 0; i < 5; ++i) {
    std::string body = "m";  // appended: GCC 12 warns (-Wrestrict, a false positive) on "m" + ...
    body += std::to_string(i);
    ASSERT_TRUE(producer->send("asya-in", body));
  }
  std::vector<std::string> bodies;
  for (std::size_t ask : {3u, 8u}) {
    auto got = consumer->receive("asya-in", ask, 5s);
    ASSERT_TRUE(got) << got.error().message;
    ASSERT_EQ(got->size(), ask == 3 ? 3u : 2u);
    for (const Delivery& d : *got) {
      EXPECT_EQ(d.delivery_count, 1u);
      bodies.emplace_back(d.body);
      ASSERT_TRUE(consumer->ack(d));
    }
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4"}));
}

// Two consumers leasing ahead from one queue while a producer sends one message at a time: every
// message is delivered exactly once, whichever path each lease took.
TEST(SqliteSteadyPath, ConsumersLeasingAheadTakeEachMessageOnce) {
  test::TempDir dir;
  Options options;
  auto producer = make_sqlite_transport(options, dir.settings());
  constexpr int kMessages = 200;
  std::vector<std::vector<std::string>> taken(2);  // each consumer's own
  std::atomic<int> total{0};
  std::vector<std::thread> consumers;
  for (int k = 0; k < 2; ++k) {
    consumers.emplace_back([&, k] {
      auto consumer = make_sqlite_transport(options, dir.settings());
      auto deadline = std::chrono::steady_clock::now() + 30s;
      while (total < kMessages && std::chrono::steady_clock::now() < deadline) {
        auto got = consumer->receive("asya-in", 8, 50ms);
        if (!got) continue;
        for (const Delivery& d : *got) {
          taken[k].emplace_back(d.body);
          ++total;
          (void)consumer->ack(d);
        }
      }
    });
  }
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(producer->send("asya-in", std::to_string(i)));
  for (auto& consumer : consumers) consumer.join();
  std::multiset<std::string> all(taken[0].begin(), taken[0].end());
  all.insert(taken[1].begin(), taken[1].end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) EXPECT_EQ(all.count(std::to_string(i)), 1u) << i;
}

// After a lease, the next receive() takes the queue's next visible time from that lease instead of
// reading it again. A delayed message the lease counted must still be received when its delay
// ends: with a poll interval of an hour, nothing else would wake the receiver.
TEST(SqliteSteadyPath, AfterALeaseTheNextReceiveWakesForADelayedMessage) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.poll_interval = 3600s;
  Options options;
  auto producer = make_sqlite_transport(options, settings);
  auto consumer = make_sqlite_transport(options, settings);
  ASSERT_TRUE(producer->send("asya-in", "delayed", 300ms));
  ASSERT_TRUE(producer->send("asya-in", "now"));
  auto first = consumer->receive("asya-in", 8, 5s);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ(std::string(first->front().body), "now");
  ASSERT_TRUE(consumer->ack(first->front()));
  // Nothing sent since that lease: this receive starts from what it read. Were the delayed row
  // missing from it, only the marker sent 5 s later would wake the receiver, which would then
  // lease both.
  std::mutex mutex;
  std::condition_variable done;
  bool received = false;
  std::thread marker([&] {
    std::unique_lock lock(mutex);
    if (!done.wait_for(lock, 5s, [&] { return received; }))
      (void)producer->send("asya-in", "marker");
  });
  auto second = consumer->receive("asya-in", 8, 30s);
  {
    std::lock_guard lock(mutex);
    received = true;
  }
  done.notify_all();
  marker.join();
  ASSERT_TRUE(second) << second.error().message;
  ASSERT_EQ(second->size(), 1u) << "the receiver was not woken when the delay ended";
  EXPECT_EQ(std::string(second->front().body), "delayed");
  EXPECT_EQ(second->front().delivery_count, 1u);
}

// Workers of one process share what a lease read: each message still goes to one of them once,
// delayed ones included, while a producer sends at a steady pace.
TEST(SqliteSteadyPath, WorkersOfOneProcessTakeEachMessageOnce) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.poll_interval = 3600s;
  Options options;
  auto producer = make_sqlite_transport(options, settings);
  auto consumer = make_sqlite_transport(options, settings);
  constexpr int kMessages = 120;
  std::vector<std::vector<std::string>> taken(3);
  std::atomic<int> total{0};
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < taken.size(); ++w) {
    workers.emplace_back([&, w] {
      auto deadline = std::chrono::steady_clock::now() + 30s;
      while (total < kMessages && std::chrono::steady_clock::now() < deadline) {
        auto got = consumer->receive("asya-in", w == 0 ? 1 : 8, 50ms);
        if (!got) continue;
        for (const Delivery& d : *got) {
          taken[w].emplace_back(d.body);
          ++total;
          (void)consumer->ack(d);
        }
      }
    });
  }
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(producer->send("asya-in", std::to_string(i), i % 10 == 0 ? 50ms : 0ms));
    std::this_thread::sleep_for(1ms);  // a steady pace: messages mostly come one at a time
  }
  for (auto& worker : workers) worker.join();
  std::multiset<std::string> all;
  for (const auto& bodies : taken) all.insert(bodies.begin(), bodies.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) EXPECT_EQ(all.count(std::to_string(i)), 1u) << i;
}

}  // namespace
}  // namespace asya::transport
