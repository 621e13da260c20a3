#include "transport/sqlite/sqlite_transport.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/env.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class SqliteTransportTest : public ::testing::Test {
 protected:
  std::unique_ptr<Transport> make(Options options = {}) {
    return make_sqlite_transport(options, dir_.settings());
  }

  // Receives exactly one message, waiting up to `wait`.
  Delivery receive_one(Transport& t, std::string_view queue,
                       std::chrono::milliseconds wait = 5000ms) {
    auto got = t.receive(queue, 1, wait);
    EXPECT_TRUE(got.ok()) << got.error().message;
    if (!got.ok() || got->size() != 1) {
      ADD_FAILURE() << "expected one message on " << queue;
      return Delivery{};
    }
    return got->front();
  }

  test::TempDir dir_;
};

TEST_F(SqliteTransportTest, SentMessageIsReceivedOnceAndAckRemovesIt) {
  auto t = make();
  ASSERT_TRUE(t->ensure_queue("asya-a").ok());
  ASSERT_TRUE(t->send("asya-a", "hello").ok());
  Delivery d = receive_one(*t, "asya-a");
  EXPECT_EQ(d.queue, "asya-a");
  EXPECT_EQ(d.body, "hello");
  EXPECT_EQ(d.delivery_count, 1u);
  auto none = t->receive("asya-a", 1, 0ms);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty()) << "a leased message must not be delivered twice";
  ASSERT_TRUE(t->ack(d).ok());
  auto stats = t->stats("asya-a");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready + stats->in_flight + stats->delayed, 0u);
  Status again = t->ack(d);
  EXPECT_FALSE(again.ok());
  EXPECT_NE(again.message().find("lease is no longer held"), std::string::npos) << again.message();
}

TEST_F(SqliteTransportTest, BinaryAndEmptyBodiesRoundTripExactly) {
  auto t = make();
  std::string binary("a\0b\xff\n", 5);
  ASSERT_TRUE(t->send("asya-b", binary).ok());
  ASSERT_TRUE(t->send("asya-b", "").ok());
  Delivery first = receive_one(*t, "asya-b");
  Delivery second = receive_one(*t, "asya-b");
  EXPECT_EQ(first.body, binary);
  EXPECT_EQ(second.body, "");
  EXPECT_TRUE(t->ack(first).ok());
  EXPECT_TRUE(t->ack(second).ok());
}

TEST_F(SqliteTransportTest, MessagesComeOutFifoPerQueue) {
  auto t = make();
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(t->send("asya-one", "one-" + std::to_string(i)).ok());
    ASSERT_TRUE(t->send("asya-two", "two-" + std::to_string(i)).ok());
  }
  // Single receives on one queue, batches on the other.
  for (int i = 0; i < 40; ++i) {
    Delivery d = receive_one(*t, "asya-one");
    EXPECT_EQ(d.body, "one-" + std::to_string(i));
    ASSERT_TRUE(t->ack(d).ok());
  }
  int next = 0;
  while (next < 40) {
    auto batch = t->receive("asya-two", 7, 0ms);
    ASSERT_TRUE(batch.ok());
    ASSERT_FALSE(batch->empty());
    EXPECT_LE(batch->size(), 7u);
    for (const Delivery& d : *batch) {
      EXPECT_EQ(d.body, "two-" + std::to_string(next++));
      ASSERT_TRUE(t->ack(d).ok());
    }
  }
}

TEST_F(SqliteTransportTest, DelayedMessageBecomesVisibleOnlyAfterTheDelay) {
  auto t = make();
  Clock::time_point sent = Clock::now();
  ASSERT_TRUE(t->send("asya-d", "later", 300ms).ok());
  auto stats = t->stats("asya-d");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->delayed, 1u);
  EXPECT_EQ(stats->ready, 0u);
  auto early = t->receive("asya-d", 1, 0ms);
  ASSERT_TRUE(early.ok());
  EXPECT_TRUE(early->empty());
  Delivery d = receive_one(*t, "asya-d", 5000ms);
  // visible_at has millisecond resolution: allow the truncation of one millisecond.
  EXPECT_GE(Clock::now() - sent, 299ms);
  EXPECT_LT(Clock::now() - sent, 3000ms) << "the receiver should wake when the delay ends";
  EXPECT_EQ(d.body, "later");
  EXPECT_TRUE(t->ack(d).ok());
}

TEST_F(SqliteTransportTest, NackWithDelayKeepsCountAndRedeliveryIncrementsIt) {
  auto t = make();
  ASSERT_TRUE(t->send("asya-n", "retry-me").ok());
  Delivery first = receive_one(*t, "asya-n");
  EXPECT_EQ(first.delivery_count, 1u);
  Clock::time_point nacked = Clock::now();
  ASSERT_TRUE(t->nack(first, 200ms).ok());
  auto stats = t->stats("asya-n");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->delayed, 1u);
  EXPECT_EQ(stats->in_flight, 0u);
  Delivery second = receive_one(*t, "asya-n");
  EXPECT_GE(Clock::now() - nacked, 199ms);
  EXPECT_EQ(second.body, "retry-me");
  EXPECT_EQ(second.delivery_count, 2u);
  EXPECT_FALSE(t->ack(first).ok()) << "the nacked delivery's receipt is spent";
  ASSERT_TRUE(t->nack(second).ok());  // no delay: visible at once
  Delivery third = receive_one(*t, "asya-n", 0ms);
  EXPECT_EQ(third.delivery_count, 3u);
  EXPECT_TRUE(t->ack(third).ok());
}

TEST_F(SqliteTransportTest, ExpiredLeaseIsRedeliveredWithCountPlusOne) {
  Options options;
  options.visibility_timeout = 200ms;
  auto t = make(options);
  ASSERT_TRUE(t->send("asya-e", "slow").ok());
  Delivery first = receive_one(*t, "asya-e");
  Clock::time_point leased = Clock::now();
  Delivery second = receive_one(*t, "asya-e", 5000ms);
  EXPECT_GE(Clock::now() - leased, 190ms);
  EXPECT_EQ(second.body, "slow");
  EXPECT_EQ(second.delivery_count, 2u);
  EXPECT_NE(second.receipt, first.receipt);
  EXPECT_TRUE(t->ack(second).ok());
}

TEST_F(SqliteTransportTest, AckAfterTheLeaseWasTakenByAnotherReceiverFailsAndLosesNothing) {
  Options options;
  options.visibility_timeout = 100ms;
  auto owner = make(options);
  auto thief = make(options);  // a second instance, as another process would have
  ASSERT_TRUE(owner->send("asya-s", "contested").ok());
  Delivery stale = receive_one(*owner, "asya-s");
  Delivery current = receive_one(*thief, "asya-s", 5000ms);
  EXPECT_EQ(current.delivery_count, 2u);
  Status ack = owner->ack(stale);
  EXPECT_FALSE(ack.ok());
  EXPECT_NE(ack.message().find("asya-s"), std::string::npos) << ack.message();
  EXPECT_FALSE(owner->nack(stale).ok());
  EXPECT_FALSE(owner->extend_lease(stale, 10000ms).ok());
  auto stats = thief->stats("asya-s");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->in_flight + stats->ready, 1u) << "the stale ack must not delete the message";
  EXPECT_TRUE(thief->ack(current).ok());
}

TEST_F(SqliteTransportTest, ExtendLeaseKeepsTheMessageHidden) {
  Options options;
  options.visibility_timeout = 150ms;
  auto t = make(options);
  ASSERT_TRUE(t->send("asya-x", "long job").ok());
  Delivery d = receive_one(*t, "asya-x");
  ASSERT_TRUE(t->extend_lease(d, 10000ms).ok());
  auto none = t->receive("asya-x", 1, 400ms);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty()) << "the extended lease must hide the message past 150ms";
  auto stats = t->stats("asya-x");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->in_flight, 1u);
  EXPECT_TRUE(t->ack(d).ok());
}

TEST_F(SqliteTransportTest, StatsCountReadyInFlightAndDelayed) {
  auto t = make();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(t->send("asya-st", std::to_string(i)).ok());
  ASSERT_TRUE(t->send("asya-st", "delayed", 60000ms).ok());
  auto batch = t->receive("asya-st", 2, 0ms);
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->size(), 2u);
  auto stats = t->stats("asya-st");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready, 3u);
  EXPECT_EQ(stats->in_flight, 2u);
  EXPECT_EQ(stats->delayed, 1u);
  auto other = t->stats("asya-empty");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->ready + other->in_flight + other->delayed, 0u);
}

TEST_F(SqliteTransportTest, ListQueuesHasEnsuredQueuesAndQueuesHoldingMessages) {
  auto t = make();
  ASSERT_TRUE(t->ensure_queue("asya-b").ok());
  ASSERT_TRUE(t->ensure_queue("asya-b").ok());  // idempotent
  ASSERT_TRUE(t->send("asya-a", "x").ok());
  auto names = t->list_queues();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"asya-a", "asya-b"}));
}

TEST_F(SqliteTransportTest, OversizedMessageIsRejectedAsMessageTooLarge) {
  Options options;
  options.max_message_bytes = 16;
  auto t = make(options);
  EXPECT_EQ(t->max_message_bytes(), 16u);
  EXPECT_TRUE(t->send("asya-big", std::string(16, 'x')).ok());
  Status s = t->send("asya-big", std::string(17, 'x'));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("message_too_large:", 0), 0u) << s.message();
  EXPECT_NE(s.message().find("17 bytes"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("ASYA_MAX_MESSAGE_BYTES"), std::string::npos) << s.message();
  auto stats = t->stats("asya-big");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready, 1u);
}

TEST_F(SqliteTransportTest, InterruptWakesABlockedReceiveAndLaterReceivesReturnAtOnce) {
  auto t = make();
  auto blocked = std::async(std::launch::async, [&] {
    Clock::time_point start = Clock::now();
    auto got = t->receive("asya-i", 1, 60000ms);
    return std::make_pair(got.ok() && got->empty(), Clock::now() - start);
  });
  std::this_thread::sleep_for(100ms);  // let it block (the outcome does not depend on it)
  t->interrupt();
  ASSERT_EQ(blocked.wait_for(20s), std::future_status::ready);  // far less than the 60 s wait
  auto [empty, waited] = blocked.get();
  EXPECT_TRUE(empty);
  EXPECT_LT(waited, 20000ms);
  Clock::time_point start = Clock::now();
  auto later = t->receive("asya-i", 1, 60000ms);
  ASSERT_TRUE(later.ok());
  EXPECT_TRUE(later->empty());
  EXPECT_LT(Clock::now() - start, 10000ms);  // not the 60 s wait
}

TEST_F(SqliteTransportTest, MethodsAfterCloseReturnErrors) {
  auto t = make();
  t->close();
  Status s = t->send("asya-c", "x");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("closed"), std::string::npos) << s.message();
}

TEST_F(SqliteTransportTest, ReceiveWithZeroMaxMessagesIsAnError) {
  auto t = make();
  auto got = t->receive("asya-z", 0, 0ms);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("max_messages"), std::string::npos);
}

// A blocked receiver notices a send from another instance (as from another process: the only
// signal is the queue's wake file) within a few milliseconds, not at the fallback poll.
TEST_F(SqliteTransportTest, SendFromAnotherInstanceWakesABlockedReceiverQuickly) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.poll_interval = 10000ms;  // so a wake-up can only come from the wake file
  auto consumer = make_sqlite_transport(Options{}, settings);
  auto producer = make_sqlite_transport(Options{}, settings);
  std::vector<double> latencies_ms;
  for (int i = 0; i < 20; ++i) {
    std::atomic<bool> started{false};
    auto waiter = std::async(std::launch::async, [&] {
      started = true;
      auto got = consumer->receive("asya-w", 1, 20000ms);
      Clock::time_point at = Clock::now();
      EXPECT_TRUE(got.ok() && got->size() == 1);
      if (got.ok() && !got->empty()) {
        EXPECT_TRUE(consumer->ack(got->front()).ok());
      }
      return at;
    });
    while (!started) std::this_thread::yield();
    std::this_thread::sleep_for(5ms);  // let it block; only shapes the measurement
    Clock::time_point sent = Clock::now();
    ASSERT_TRUE(producer->send("asya-w", "ping").ok());
    ASSERT_EQ(waiter.wait_for(15s), std::future_status::ready);
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(waiter.get() - sent).count());
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  double median = latencies_ms[latencies_ms.size() / 2];
  std::printf("cross-instance wake-up latency: median %.3f ms, max %.3f ms\n", median,
              latencies_ms.back());
  EXPECT_LT(median, 50.0);
}

TEST_F(SqliteTransportTest, ManyThreadsOnOneInstanceReceiveEveryMessageExactlyOnce) {
  auto t = make();
  constexpr int kProducers = 3, kPerProducer = 200, kConsumers = 3;
  std::mutex mutex;
  std::multiset<std::string> received;
  std::atomic<int> acked{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        Status s = t->send("asya-mt", std::to_string(p) + "-" + std::to_string(i));
        EXPECT_TRUE(s.ok()) << s.message();
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      while (acked < kProducers * kPerProducer) {
        auto got = t->receive("asya-mt", 1 + c * 4, 100ms);
        ASSERT_TRUE(got.ok()) << got.error().message;
        for (const Delivery& d : *got) {
          {
            std::lock_guard lock(mutex);
            received.insert(d.body);
          }
          Status s = t->ack(d);
          EXPECT_TRUE(s.ok()) << s.message();
          ++acked;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(received.size(), static_cast<std::size_t>(kProducers * kPerProducer));
  for (int p = 0; p < kProducers; ++p) {
    for (int i = 0; i < kPerProducer; ++i) {
      EXPECT_EQ(received.count(std::to_string(p) + "-" + std::to_string(i)), 1u);
    }
  }
}

TEST(SqliteSettingsTest, EnvironmentOverridesDefaultsAndRejectsBadValues) {
  std::map<std::string, std::string, std::less<>> values = {{"ASYA_SQLITE_PATH", "/tmp/x/q.db"},
                                                            {"ASYA_SQLITE_SYNCHRONOUS", "full"},
                                                            {"ASYA_SQLITE_BUSY_TIMEOUT", "2s"}};
  SqliteSettings s = SqliteSettings::from_env(Environment(environment_with(values, nullptr)));
  EXPECT_EQ(s.path, "/tmp/x/q.db");
  EXPECT_TRUE(s.synchronous_full);
  EXPECT_EQ(s.busy_timeout, std::chrono::milliseconds(2000));
  values["ASYA_SQLITE_POLL_INTERVAL"] = "0";
  EXPECT_THROW(SqliteSettings::from_env(Environment(environment_with(values, nullptr))),
               ConfigError);
  SqliteSettings d = SqliteSettings::from_env(Environment(environment_with({}, nullptr)));
  EXPECT_EQ(d.path, ".asya/queues.db");
  EXPECT_FALSE(d.synchronous_full);
  EXPECT_TRUE(d.hand_off);
  SqliteSettings off = SqliteSettings::from_env(
      Environment(environment_with({{"ASYA_SQLITE_HAND_OFF", "false"}}, nullptr)));
  EXPECT_FALSE(off.hand_off);
  EXPECT_THROW(SqliteSettings::from_env(
                   Environment(environment_with({{"ASYA_SQLITE_HAND_OFF", "maybe"}}, nullptr))),
               ConfigError);
}

TEST(SqliteOpenTest, UnwritableLocationIsAConfigErrorNamingThePath) {
  SqliteSettings s;
  s.path = "/proc/asya-cannot-exist/queues.db";
  try {
    (void)make_sqlite_transport(Options{}, s);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/proc/asya-cannot-exist"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace asya::transport
