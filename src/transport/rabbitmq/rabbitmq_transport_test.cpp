// RabbitMQ transport: messaging against a real broker (send, confirm, receive, ack, nack with
// delay and delivery counts on classic and quorum queues, delayed sends, stats, prefetch, size
// limits, interrupt) and the delay buckets, which need no broker. Settings, connection failures
// and the broker restart are rabbitmq_connection_test.cpp; the fixture is
// rabbitmq_test_fixture.hpp.
#include "transport/rabbitmq/rabbitmq_transport.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "transport/rabbitmq/consumer.hpp"
#include "transport/rabbitmq/rabbitmq_test_fixture.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using rabbitmq_test::Clock;
using rabbitmq_test::numbered;
using rabbitmq_test::RabbitmqTransportTest;

TEST(RabbitmqDelayTest, DelaysRoundUpToTwoSignificantDigits) {
  EXPECT_EQ(rabbitmq_delay_bucket(0ms), 0ms);
  EXPECT_EQ(rabbitmq_delay_bucket(7ms), 7ms);
  EXPECT_EQ(rabbitmq_delay_bucket(99ms), 99ms);
  EXPECT_EQ(rabbitmq_delay_bucket(100ms), 100ms);
  EXPECT_EQ(rabbitmq_delay_bucket(101ms), 110ms);
  EXPECT_EQ(rabbitmq_delay_bucket(995ms), 1000ms);
  EXPECT_EQ(rabbitmq_delay_bucket(1234ms), 1300ms);
  EXPECT_EQ(rabbitmq_delay_bucket(60000ms), 60000ms);
  EXPECT_EQ(rabbitmq_delay_queue_name("asya-a", 1300ms), "asya-a.delay.1300");
}

TEST_F(RabbitmqTransportTest, SentMessageIsReceivedOnceAndAckRemovesIt) {
  auto t = make();
  const std::string q = queue("a");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  ASSERT_TRUE(t->send(q, "hello").ok());
  Delivery d = receive_one(*t, q);
  EXPECT_EQ(d.queue, q);
  EXPECT_EQ(d.body, "hello");
  EXPECT_EQ(d.delivery_count, 1u);
  auto none = t->receive(q, 1, 200ms);
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->empty()) << "an unacked message must not be delivered twice";
  EXPECT_EQ(stats(*t, q).in_flight, 1u);
  EXPECT_TRUE(t->still_held(d));
  ASSERT_TRUE(t->ack(d).ok());
  EXPECT_FALSE(t->still_held(d)) << "an acked delivery is not held any more";
  QueueStats s = stats(*t, q);
  EXPECT_EQ(s.ready + s.in_flight + s.delayed, 0u);
  Status again = t->ack(d);
  EXPECT_FALSE(again.ok()) << "acking twice must fail";
  EXPECT_NE(again.message().find("already"), std::string::npos) << again.message();
}

TEST_F(RabbitmqTransportTest, ConfirmedSendIsVisibleToAnotherConnectionAtOnce) {
  auto producer = make();
  auto observer = make();
  const std::string q = queue("confirm");
  ASSERT_TRUE(producer->ensure_queue(q).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(producer->send(q, numbered("m", i)).ok());
  // send() returned after the broker's confirm, so the broker already counts all of them.
  EXPECT_EQ(stats(*observer, q).ready, 5u);
}

// The link thread's acks: the tags below the lowest one still held (floor) share one
// basic.ack(multiple) when there are two or more; the others are acked one by one.
TEST(RabbitmqAckTest, OnlyTheTagsBelowTheFloorShareAMultipleAck) {
  using rabbitmq::coalesce_acks;
  using Tags = std::vector<std::uint64_t>;
  EXPECT_EQ(coalesce_acks({3, 4, 5, 9}, 7), (std::pair<std::uint64_t, Tags>{5, {9}}));
  EXPECT_EQ(coalesce_acks({3, 4, 5}, UINT64_MAX), (std::pair<std::uint64_t, Tags>{5, {}}));
  // One tag below the floor: a plain ack (nothing to share).
  EXPECT_EQ(coalesce_acks({3, 8, 9}, 4), (std::pair<std::uint64_t, Tags>{0, {3, 8, 9}}));
  // The floor below every tag (an earlier delivery is still held): no multiple ack.
  EXPECT_EQ(coalesce_acks({3, 4, 5}, 2), (std::pair<std::uint64_t, Tags>{0, {3, 4, 5}}));
  EXPECT_EQ(coalesce_acks({}, 2), (std::pair<std::uint64_t, Tags>{0, {}}));
}

// Which acks go now (plan_acks): a lone message's at once; with other deliveries held, they wait
// until a quarter of the prefetch is settled (then those below the floor share one
// basic.ack(multiple)); those above the floor until half the prefetch is settled or 50 ms passed.
TEST(RabbitmqAckTest, AcksWaitToBeWrittenTogetherWhileOtherDeliveriesAreHeld) {
  using rabbitmq::plan_acks;
  using Tags = std::vector<std::uint64_t>;
  const auto now = Clock::now();
  auto settled_at = [&](std::initializer_list<std::uint64_t> tags, Clock::duration ago) {
    std::map<std::uint64_t, Clock::time_point> settled;
    for (std::uint64_t tag : tags) settled[tag] = now - ago;
    return settled;
  };
  // A lone message (nothing else held): its ack goes at once, alone.
  auto lone = plan_acks(settled_at({7}, 0ms), UINT64_MAX, 10, false, now, false);
  EXPECT_EQ(lone.multiple, 0u);
  EXPECT_EQ(lone.singles, (Tags{7}));
  // Others held, 3 of prefetch 64 settled, none old: nothing yet.
  auto early = plan_acks(settled_at({3, 4, 5}, 1ms), 6, 64, true, now, false);
  EXPECT_EQ(early.multiple, 0u);
  EXPECT_TRUE(early.singles.empty());
  // A quarter of the prefetch settled: those below the floor as one multiple ack; the two above
  // it wait for the deliveries below them.
  auto quarter = plan_acks(settled_at({1, 2, 3, 4, 9, 10}, 1ms), 5, 24, true, now, false);
  EXPECT_EQ(quarter.multiple, 4u);
  EXPECT_TRUE(quarter.singles.empty());
  // Half the prefetch settled: those above the floor go too (a slow message stalls nothing).
  auto half = plan_acks(settled_at({1, 2, 9, 10}, 1ms), 5, 8, true, now, false);
  EXPECT_EQ(half.multiple, 2u);
  EXPECT_EQ(half.singles, (Tags{9, 10}));
  // Held 50 ms: written whatever the count.
  auto old = plan_acks(settled_at({9}, 60ms), 5, 64, true, now, false);
  EXPECT_EQ(old.singles, (Tags{9}));
  // Closing: every one now.
  auto closing = plan_acks(settled_at({1, 2, 9}, 0ms), 5, 64, true, now, true);
  EXPECT_EQ(closing.multiple, 2u);
  EXPECT_EQ(closing.singles, (Tags{9}));
}

// Eight threads receive and ack on one transport with prefetch 64: acks written by the threads
// themselves and by the link thread (several at once with `multiple`) ack every message exactly
// once: an ack of a tag already acked would close the channel and every held message would come
// back as a duplicate.
TEST_F(RabbitmqTransportTest, ConcurrentAckersWithAWidePrefetchAckEachMessageOnce) {
  RabbitmqSettings settings = settings_;
  settings.prefetch = 64;
  auto t = make(settings);
  auto producer = make();
  const std::string q = queue("acks");
  ASSERT_TRUE(producer->ensure_queue(q).ok());
  constexpr int kMessages = 1200, kThreads = 8;
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(producer->send(q, numbered("a", i)).ok());
  std::mutex mutex;
  std::map<std::string, int> seen;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto deadline = Clock::now() + 120s;
      while (Clock::now() < deadline) {
        {
          std::lock_guard lock(mutex);
          if (seen.size() == static_cast<std::size_t>(kMessages)) return;
        }
        auto got = t->receive(q, 1, 200ms);
        if (!got.ok()) {
          ++failures;
          continue;
        }
        for (const Delivery& d : *got) {
          {
            std::lock_guard lock(mutex);
            ++seen[d.body];
          }
          if (!t->ack(d).ok()) ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kMessages));
  for (const auto& [body, times] : seen) EXPECT_EQ(times, 1) << body;
  // Nothing held unacked by this consumer; closing it (its acks still queued are written
  // first) returns to the queue whatever the broker still counted as unacked: nothing.
  EXPECT_EQ(stats(*t, q).in_flight, 0u);
  t->close();
  auto observer = make();
  EXPECT_EQ(stats(*observer, q).ready, 0u);
}

TEST_F(RabbitmqTransportTest, ConcurrentSendersShareTheConfirmWindowAndLoseNothing) {
  auto t = make();
  auto observer = make();
  const std::string q = queue("window");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  constexpr int kThreads = 8, kEach = 250;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  auto started = Clock::now();
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < kEach; ++j)
        if (!t->send(q, numbered(numbered("", i) + "-", j)).ok()) ++failures;
    });
  }
  for (auto& th : threads) th.join();
  auto elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(stats(*observer, q).ready, static_cast<std::uint64_t>(kThreads * kEach));
  std::printf("%d confirmed sends from %d threads in %.2fs (%.0f msg/s)\n", kThreads * kEach,
              kThreads, elapsed, kThreads * kEach / elapsed);
}

// The settle window's calls: send_many writes every publish before it waits for confirms (one
// status each, a bad one failing alone), ack_many acks each delivery once.
TEST_F(RabbitmqTransportTest, SendManyConfirmsEachMessageAndAckManyAcksEachOnce) {
  Options options;
  options.max_message_bytes = 1000;
  auto t = make(settings_, options);
  auto observer = make();
  const std::string a = queue("many-a"), b = queue("many-b");
  std::vector<std::string> bodies;
  for (int i = 0; i < 200; ++i) bodies.push_back(numbered("m", i));
  bodies[57] = std::string(1001, 'x');
  std::vector<OutgoingMessage> messages;
  for (int i = 0; i < 200; ++i) messages.push_back({i % 2 ? b : a, bodies[i]});
  std::vector<Status> sent = t->send_many(messages);
  ASSERT_EQ(sent.size(), 200u);
  for (int i = 0; i < 200; ++i) {
    if (i == 57) {
      EXPECT_EQ(sent[i].message().rfind("message_too_large:", 0), 0u) << sent[i].message();
    } else {
      EXPECT_TRUE(sent[i].ok()) << i << ": " << sent[i].message();
    }
  }
  EXPECT_EQ(stats(*observer, a).ready, 100u);
  EXPECT_EQ(stats(*observer, b).ready, 99u);

  // Acked as they come: the prefetch holds back the rest until then.
  std::vector<Delivery> received;
  auto deadline = Clock::now() + 30s;
  while (received.size() < 100 && Clock::now() < deadline) {
    auto got = t->receive(a, 100, 1s);
    ASSERT_TRUE(got.ok()) << got.error().message;
    std::vector<const Delivery*> pointers;
    for (const auto& d : *got) pointers.push_back(&d);
    for (const Status& st : t->ack_many(pointers)) EXPECT_TRUE(st.ok()) << st.message();
    for (auto& d : *got) received.push_back(std::move(d));
  }
  ASSERT_EQ(received.size(), 100u);
  std::vector<const Delivery*> pointers{&received.front()};
  std::vector<Status> again = t->ack_many(std::span<const Delivery* const>(pointers.data(), 1));
  EXPECT_FALSE(again.front().ok()) << "acking twice must fail";
  // The acks reached the broker: nothing of `a` is ready or held, on a fresh connection too.
  auto empty = Clock::now() + 30s;
  while (stats(*observer, a).ready != 0 && Clock::now() < empty) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(stats(*observer, a).ready, 0u);
  EXPECT_EQ(stats(*t, a).in_flight, 0u);
  t->close();
  auto back = observer->receive(a, 1, 1s);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(back->empty()) << "an acked message came back after its consumer closed";
}

TEST_F(RabbitmqTransportTest, AllMessagesAreReceivedInOrderFromOneProducer) {
  auto t = make();
  const std::string q = queue("order");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(t->send(q, std::to_string(i)).ok());
  std::vector<std::string> got;
  auto deadline = Clock::now() + 20s;
  while (got.size() < 50 && Clock::now() < deadline) {
    auto batch = t->receive(q, 7, 1s);
    ASSERT_TRUE(batch.ok()) << batch.error().message;
    EXPECT_LE(batch->size(), 7u);
    for (auto& d : *batch) {
      got.push_back(d.body);
      ASSERT_TRUE(t->ack(d).ok());
    }
  }
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[i], std::to_string(i));
}

TEST_F(RabbitmqTransportTest, NackWithDelayHidesTheMessageAndCountsTheDelivery) {
  auto t = make();
  const std::string q = queue("nackdelay");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  ASSERT_TRUE(t->send(q, "retry me").ok());
  Delivery first = receive_one(*t, q);
  EXPECT_EQ(first.delivery_count, 1u);
  auto nacked_at = Clock::now();
  ASSERT_TRUE(t->nack(first, 600ms).ok());
  auto early = t->receive(q, 1, 200ms);
  ASSERT_TRUE(early.ok()) << early.error().message;
  EXPECT_TRUE(early->empty()) << "the message came back before its delay";
  QueueStats s = stats(*t, q);
  EXPECT_EQ(s.delayed, 1u);
  EXPECT_EQ(s.in_flight, 0u);
  Delivery second = receive_one(*t, q, 10s);
  EXPECT_GE(Clock::now() - nacked_at, 600ms);
  EXPECT_EQ(second.body, "retry me");
  EXPECT_EQ(second.delivery_count, 2u);
  ASSERT_TRUE(t->ack(second).ok());
  EXPECT_FALSE(t->nack(second).ok()) << "nack after ack must fail";
}

TEST_F(RabbitmqTransportTest, ClassicQueueDeliveryCountGrowsAcrossRequeuesAndConnectionLoss) {
  RabbitmqSettings classic = settings_;
  classic.quorum = false;
  auto t = make(classic);
  const std::string q = queue("count");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  ASSERT_TRUE(t->send(q, "poison").ok());
  for (std::uint32_t expected = 1; expected <= 4; ++expected) {
    Delivery d = receive_one(*t, q);
    EXPECT_EQ(d.delivery_count, expected);
    ASSERT_TRUE(t->nack(d).ok());
  }
  // Received (count 5) and never acked: closing the connection returns it to the broker,
  // which marks it redelivered.
  Delivery fifth = receive_one(*t, q);
  EXPECT_EQ(fifth.delivery_count, 5u);
  t->close();
  t.reset();
  auto other = make(classic);
  Delivery sixth = receive_one(*other, q);
  EXPECT_EQ(sixth.delivery_count, 6u);
  EXPECT_EQ(sixth.body, "poison");
  ASSERT_TRUE(other->ack(sixth).ok());
}

TEST_F(RabbitmqTransportTest, QuorumQueueDeliveryCountGrowsAcrossRequeuesAndConnectionLoss) {
  RabbitmqSettings quorum = settings_;
  quorum.quorum = true;
  auto t = make(quorum);
  const std::string q = queue("quorum");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  ASSERT_TRUE(t->send(q, "poison").ok());
  for (std::uint32_t expected = 1; expected <= 3; ++expected) {
    Delivery d = receive_one(*t, q);
    EXPECT_EQ(d.delivery_count, expected);
    ASSERT_TRUE(t->nack(d, expected == 2 ? 100ms : 0ms).ok());
  }
  Delivery fourth = receive_one(*t, q);
  EXPECT_EQ(fourth.delivery_count, 4u);
  t->close();
  t.reset();
  auto other = make(quorum);
  Delivery fifth = receive_one(*other, q);
  EXPECT_EQ(fifth.delivery_count, 5u);
  ASSERT_TRUE(other->ack(fifth).ok());
}

// ASYA_RABBITMQ_QUEUE_TYPE applies to queues a process creates: a queue that exists with the
// other type (an existing deployment after the default became quorum, or the reverse) is used as
// it is, for sending, receiving and delays, instead of failing with 406 PRECONDITION_FAILED.
TEST_F(RabbitmqTransportTest, QueueOfTheOtherTypeIsUsedAsItIs) {
  RabbitmqSettings classic = settings_, quorum = settings_;
  classic.quorum = false;
  quorum.quorum = true;
  for (bool classic_first : {true, false}) {
    const std::string q = queue(classic_first ? "made-classic" : "made-quorum");
    auto creator = make(classic_first ? classic : quorum);
    ASSERT_TRUE(creator->ensure_queue(q).ok());
    ASSERT_TRUE(creator->send(q, "before", 100ms).ok());  // its delay queue too
    creator->close();
    auto other = make(classic_first ? quorum : classic);
    Status st = other->ensure_queue(q);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_TRUE(other->send(q, "after").ok());
    ASSERT_TRUE(other->send(q, "delayed", 100ms).ok());
    std::multiset<std::string> got;
    auto until = Clock::now() + 20s;
    while (got.size() < 3 && Clock::now() < until) {
      auto batch = other->receive(q, 10, 1s);
      ASSERT_TRUE(batch.ok()) << batch.error().message;
      for (const Delivery& d : *batch) {
        got.insert(d.body);
        EXPECT_EQ(d.delivery_count, 1u) << d.body;
        ASSERT_TRUE(other->ack(d).ok());
      }
    }
    EXPECT_EQ(got, (std::multiset<std::string>{"after", "before", "delayed"}))
        << (classic_first ? "classic queue, quorum process" : "quorum queue, classic process");
  }
}

// A nack whose copy cannot be published (here: its delay queue exists with other arguments, so
// declaring it fails) must not leave the original unacked on the live connection, where RabbitMQ
// would hold it until the connection closes: the broker requeues it after the delay instead.
TEST_F(RabbitmqTransportTest, NackThatCannotPublishItsCopyRequeuesTheOriginalAfterTheDelay) {
  RabbitmqSettings classic = settings_;
  classic.quorum = false;
  auto t = make(classic);
  const std::string q = queue("requeue");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  ASSERT_TRUE(t->ensure_queue(rabbitmq_delay_queue_name(q, 1300ms)).ok());  // no TTL: conflicts
  ASSERT_TRUE(t->send(q, "m").ok());
  Delivery first = receive_one(*t, q);
  auto started = Clock::now();
  Status st = t->nack(first, 1300ms);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_FALSE(t->still_held(first));
  Delivery again = receive_one(*t, q, 20s);
  EXPECT_GE(Clock::now() - started, 1300ms);
  EXPECT_EQ(again.body, "m");
  EXPECT_EQ(again.delivery_count, 2u);
  ASSERT_TRUE(t->ack(again).ok());
}

TEST_F(RabbitmqTransportTest, DelayedSendBecomesVisibleAfterTheDelay) {
  auto t = make();
  const std::string q = queue("delayed");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  auto sent_at = Clock::now();
  // Delays far apart, so a loaded machine cannot blur the order: "sooner" must wait its 1 s and
  // still come long before "later" (5 s).
  ASSERT_TRUE(t->send(q, "later", 5s).ok());
  ASSERT_TRUE(t->send(q, "sooner", 1s).ok());  // its own delay queue: not stuck behind "later"
  QueueStats s = stats(*t, q);
  if (Clock::now() - sent_at < 1s) {
    EXPECT_EQ(s.ready, 0u);
  }
  EXPECT_EQ(s.delayed + s.ready, 2u);
  Delivery sooner = receive_one(*t, q, 20s);
  EXPECT_EQ(sooner.body, "sooner");
  EXPECT_GE(Clock::now() - sent_at, 1s);
  EXPECT_LT(Clock::now() - sent_at, 5s);
  Delivery later = receive_one(*t, q, 20s);
  EXPECT_EQ(later.body, "later");
  EXPECT_GE(Clock::now() - sent_at, 5s);
  EXPECT_EQ(later.delivery_count, 1u);
  ASSERT_TRUE(t->ack(sooner).ok());
  ASSERT_TRUE(t->ack(later).ok());
}

TEST_F(RabbitmqTransportTest, StatsCountReadyInFlightAndDelayed) {
  auto t = make();
  const std::string q = queue("stats");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(t->send(q, "m").ok());
  ASSERT_TRUE(t->send(q, "d", 30s).ok());
  auto got = t->receive(q, 1, 5s);
  ASSERT_TRUE(got.ok() && got->size() == 1);
  // Prefetched deliveries count as in flight (the broker holds them for this consumer).
  QueueStats s = stats(*t, q);
  EXPECT_EQ(s.delayed, 1u);
  EXPECT_EQ(s.ready + s.in_flight, 4u);
  EXPECT_GE(s.in_flight, 1u);
  auto missing = t->stats(queue("never-declared"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("never-declared"), std::string::npos);
  // The control channel recovers from the 404.
  EXPECT_EQ(stats(*t, q).delayed, 1u);
}

// ASYA_RABBITMQ_PREFETCH bounds what the broker pushes ahead to one consumer: with prefetch 3 and
// 10 messages, 3 are held by the consumer (handed out or buffered) and 7 stay ready in the broker
// for other replicas; each ack lets exactly one more through.
TEST_F(RabbitmqTransportTest, PrefetchBoundsTheDeliveriesHeldByOneConsumer) {
  RabbitmqSettings s = settings_;
  s.prefetch = 3;
  auto consumer = make(s);
  auto observer = make();
  const std::string q = queue("prefetch-bound");
  ASSERT_TRUE(consumer->ensure_queue(q).ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(consumer->send(q, numbered("m", i)).ok());
  Delivery d = receive_one(*consumer, q);
  auto deadline = Clock::now() + 10s;
  while (stats(*consumer, q).in_flight < 3u && Clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(stats(*consumer, q).in_flight, 3u);
  EXPECT_EQ(stats(*observer, q).ready, 7u) << "the broker pushed more than the prefetch";
  ASSERT_TRUE(consumer->ack(d).ok());
  deadline = Clock::now() + 10s;
  while ((stats(*observer, q).ready > 6u || stats(*consumer, q).in_flight < 3u) &&
         Clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(stats(*observer, q).ready, 6u);
  EXPECT_EQ(stats(*consumer, q).in_flight, 3u);
}

TEST_F(RabbitmqTransportTest, CloseReturnsPrefetchedMessagesWithoutCountingThem) {
  auto t = make();
  const std::string q = queue("prefetch");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(t->send(q, std::to_string(i)).ok());
  Delivery d = receive_one(*t, q);
  ASSERT_TRUE(t->ack(d).ok());
  t->close();
  t.reset();
  auto other = make();
  std::set<std::string> bodies;
  auto deadline = Clock::now() + 10s;
  while (bodies.size() < 4 && Clock::now() < deadline) {
    auto got = other->receive(q, 10, 1s);
    ASSERT_TRUE(got.ok()) << got.error().message;
    for (auto& m : *got) {
      EXPECT_EQ(m.delivery_count, 1u) << "message " << m.body << " was never handed out";
      bodies.insert(m.body);
      ASSERT_TRUE(other->ack(m).ok());
    }
  }
  EXPECT_EQ(bodies, (std::set<std::string>{"1", "2", "3", "4"}));
}

TEST_F(RabbitmqTransportTest, MessageOverTheLimitIsRefusedAsTooLarge) {
  Options options;
  options.max_message_bytes = 1000;
  auto t = make(settings_, options);
  const std::string q = queue("large");
  EXPECT_EQ(t->max_message_bytes(), 1000u);
  Status st = t->send(q, std::string(1001, 'x'));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind("message_too_large:", 0), 0u) << st.message();
  ASSERT_TRUE(t->send(q, std::string(1000, 'x')).ok()) << "a queue is declared on first send";
  EXPECT_EQ(receive_one(*t, q).body.size(), 1000u);
}

TEST_F(RabbitmqTransportTest, LargeMessageSpanningManyFramesArrivesIntact) {
  auto t = make();
  const std::string q = queue("big");
  std::string body(3u << 20, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE(t->send(q, body).ok());
  Delivery d = receive_one(*t, q);
  EXPECT_TRUE(d.body == body);
  ASSERT_TRUE(t->ack(d).ok());
}

// One send_many whose publishes are written partly by the transport (several per sendmsg,
// publish_frames.hpp) and partly by rabbitmq-c (a body over one frame), with a delayed one (the
// default exchange) among them: each confirm must settle its own message (the publish sequence
// numbers follow the order the bytes were written) and each queue gets its bodies whole, in order.
TEST_F(RabbitmqTransportTest, SendManyMixingFramedAndLargePublishesConfirmsEachInOrder) {
  auto t = make();
  const std::string a = queue("mixed-a"), b = queue("mixed-b");
  std::string large(300u << 10, '\0');
  for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>('a' + i % 26);
  std::vector<std::string> bodies;
  std::vector<OutgoingMessage> messages;
  for (int i = 0; i < 120; ++i)
    bodies.push_back(i % 17 == 5 ? numbered("L", i) + large
                                 : numbered("m", i) + std::string(i % 3 == 0 ? 6000 : 10, 'y'));
  for (int i = 0; i < 120; ++i) {
    OutgoingMessage m{i % 2 ? b : a, bodies[i]};
    if (i == 40) m.delay = 200ms;  // through its delay queue: it arrives last in `a`
    messages.push_back(m);
  }
  std::vector<Status> sent = t->send_many(messages);
  ASSERT_EQ(sent.size(), messages.size());
  for (std::size_t i = 0; i < sent.size(); ++i)
    EXPECT_TRUE(sent[i].ok()) << i << ": " << sent[i].message();
  for (const std::string& q : {a, b}) {
    std::vector<std::string> expected;
    for (int i = 0; i < 120; ++i)
      if ((i % 2 ? b : a) == q && i != 40) expected.push_back(bodies[i]);
    if (q == a) expected.push_back(bodies[40]);
    std::vector<std::string> got;
    auto deadline = Clock::now() + 30s;
    while (got.size() < expected.size() && Clock::now() < deadline) {
      auto batch = t->receive(q, 16, 1s);
      ASSERT_TRUE(batch.ok()) << batch.error().message;
      for (auto& d : *batch) {
        got.push_back(d.body);
        ASSERT_TRUE(t->ack(d).ok());
      }
    }
    ASSERT_EQ(got.size(), expected.size()) << q;
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(got[i] == expected[i]) << q << " message " << i << " differs";
  }
}

TEST_F(RabbitmqTransportTest, InterruptWakesABlockedReceive) {
  auto t = make();
  const std::string q = queue("interrupt");
  ASSERT_TRUE(t->ensure_queue(q).ok());
  auto started = Clock::now();
  std::thread waker([&] {
    std::this_thread::sleep_for(300ms);
    t->interrupt();
  });
  auto got = t->receive(q, 1, 30s);
  waker.join();
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
  EXPECT_LT(Clock::now() - started, 5s);
  auto later = t->receive(q, 1, 30s);
  ASSERT_TRUE(later.ok());
  EXPECT_TRUE(later->empty());
}

}  // namespace
}  // namespace asya::transport
