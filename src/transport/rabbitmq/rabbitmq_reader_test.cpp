// RabbitMQ transport: a receive() caller that finds nobody reading the consumer's socket reads it
// itself (consumer_read.cpp). What must hold: waiters of one queue and of another queue on the
// same connection each get their deliveries once the reader leaves, without waiting for the link
// thread's one-second tick; a reader sees the connection go and gets the next message after the
// reconnect; an ack held to be written with the others' reaches the broker with no further call.
// Against a real broker (ASYA_TEST_RABBITMQ_URL; the restart test also needs
// ASYA_TEST_RABBITMQ_RESTART_COMMAND, see tests/transport/test_rabbitmq.py).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "transport/rabbitmq/rabbitmq_test_fixture.hpp"
#include "transport/rabbitmq/rabbitmq_transport.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using rabbitmq_test::Clock;
using rabbitmq_test::numbered;
using rabbitmq_test::RabbitmqTransportTest;

// Two queues consumed on one connection. A receiver of X waits first (so it reads the socket),
// then a receiver of Y (which waits for it); a message to X sends the X receiver away for good,
// then a message goes to Y. The X receiver leaving must hand the socket over: else Y's delivery
// waits for the link thread's next tick (up to a second, about half a second on average), and the
// 30 rounds take some 15 s, against well under a second per round here even on a loaded machine.
TEST_F(RabbitmqTransportTest, ReceiversOfTwoQueuesOnOneConnectionEachGetTheirDeliveriesAtOnce) {
  constexpr int kRounds = 30;
  const std::string x = queue("reader-x"), y = queue("reader-y");
  auto producer = make(), consumer = make();
  ASSERT_TRUE(producer->ensure_queue(x).ok());
  ASSERT_TRUE(producer->ensure_queue(y).ok());
  // Both consumers started (each queue's first receive starts its consumer).
  for (const std::string& q : {x, y}) {
    ASSERT_TRUE(producer->send(q, "warm").ok());
    Delivery d = receive_one(*consumer, q, 30s);
    ASSERT_TRUE(consumer->ack(d).ok());
  }
  auto take = [&](const std::string& q, std::string& body) {
    auto got = consumer->receive(q, 1, 30s);
    ASSERT_TRUE(got.ok()) << got.error().message;
    ASSERT_EQ(got->size(), 1u) << "nothing arrived on " << q;
    body = std::string(got->front().body.view());
    ASSERT_TRUE(consumer->ack(got->front()).ok());
  };
  Clock::duration waited{0};
  for (int i = 0; i < kRounds; ++i) {
    std::string got_x, got_y;
    std::thread rx(take, x, std::ref(got_x));
    std::this_thread::sleep_for(30ms);  // the X receiver reads the socket
    std::thread ry(take, y, std::ref(got_y));
    std::this_thread::sleep_for(30ms);  // the Y receiver waits for it
    ASSERT_TRUE(producer->send(x, numbered("x", i)).ok());
    rx.join();
    const auto sent = Clock::now();
    ASSERT_TRUE(producer->send(y, numbered("y", i)).ok());
    ry.join();
    waited += Clock::now() - sent;
    EXPECT_EQ(got_x, numbered("x", i));
    EXPECT_EQ(got_y, numbered("y", i));
  }
  EXPECT_LT(waited, 8s) << kRounds << " sends to a receiver left waiting took "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
                        << " ms: it waited for the link thread's tick, nobody read the socket";
}

// Eight receivers of one queue (a worker pool) waiting long: one reads the socket at a time, the
// others wait and take over in turn. 400 messages sent in small bursts arrive exactly once each;
// interrupt() then wakes every receiver still waiting, the reader among them.
TEST_F(RabbitmqTransportTest, EightReceiversOfOneQueueTakeTurnsReadingAndGetEveryMessageOnce) {
  constexpr int kMessages = 400, kThreads = 8;
  const std::string q = queue("reader-pool");
  RabbitmqSettings s = settings_;
  s.prefetch = 16;
  auto producer = make(), consumer = make(s);
  ASSERT_TRUE(producer->ensure_queue(q).ok());
  std::mutex mutex;
  std::map<std::string, int> got;
  std::atomic<int> received{0}, empty{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&] {
      while (true) {
        auto batch = consumer->receive(q, 1, 120s);
        ASSERT_TRUE(batch.ok()) << batch.error().message;
        if (batch->empty()) {
          ++empty;  // interrupted (or 120 s without a message: counted below)
          return;
        }
        for (const Delivery& d : *batch) {
          ASSERT_TRUE(consumer->ack(d).ok());
          std::lock_guard lock(mutex);
          ++got[std::string(d.body.view())];
          ++received;
        }
      }
    });
  }
  const auto started = Clock::now();
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(producer->send(q, numbered("m", i)).ok());
    if (i % 7 == 0) std::this_thread::sleep_for(2ms);  // a delivery now and then finds all idle
  }
  const auto deadline = Clock::now() + 120s;
  while (received < kMessages && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  consumer->interrupt();
  for (auto& w : workers) w.join();
  EXPECT_LT(Clock::now() - started, 110s) << "a receiver returned only at its 120 s deadline";
  ASSERT_EQ(received, kMessages);
  EXPECT_EQ(empty, kThreads);
  for (int i = 0; i < kMessages; ++i) EXPECT_EQ(got[numbered("m", i)], 1) << "message " << i;
}

// Heartbeats every second, and nothing else on either connection for 6 s while a receive() reads
// the socket (polling it in slices) and a delivery is held unacked: the connections stay up (the
// broker closes one that misses two heartbeats), so the held delivery's ack still counts and the
// message is not delivered again.
TEST_F(RabbitmqTransportTest, IdleConnectionsUnderAReadingReceiveKeepTheirHeartbeats) {
  const std::string q = queue("reader-idle");
  RabbitmqSettings s = settings_;
  s.heartbeat = 1s;
  auto t = make(s);
  ASSERT_TRUE(t->ensure_queue(q).ok());
  ASSERT_TRUE(t->send(q, "held").ok());
  Delivery held = receive_one(*t, q);
  ASSERT_EQ(held.body.view(), "held");
  auto idle = t->receive(q, 1, 6s);  // nothing comes: this caller reads the socket meanwhile
  ASSERT_TRUE(idle.ok()) << idle.error().message;
  EXPECT_TRUE(idle->empty());
  EXPECT_TRUE(t->still_held(held)) << "the consumer's connection was lost while idle";
  ASSERT_TRUE(t->ack(held).ok());
  ASSERT_TRUE(t->send(q, "after").ok());
  Delivery next = receive_one(*t, q);
  EXPECT_EQ(next.body.view(), "after") << "the held message came again: its ack was lost";
  ASSERT_TRUE(t->ack(next).ok());
}

// A receive() reading the socket when the broker restarts: it sees the connection go, waits for
// the reconnect, and returns the message sent after it (nothing lost, no error).
TEST_F(RabbitmqTransportTest, BrokerRestartUnderAReceiveReadingTheSocketDeliversTheNextMessage) {
  const char* restart = std::getenv("ASYA_TEST_RABBITMQ_RESTART_COMMAND");
  ASSERT_NE(restart, nullptr) << "ASYA_TEST_RABBITMQ_RESTART_COMMAND must be set";
  const std::string q = queue("reader-restart");
  RabbitmqSettings s = settings_;
  s.confirm_timeout = 60s;
  auto producer = make(s), consumer = make(s);
  ASSERT_TRUE(producer->ensure_queue(q).ok());
  ASSERT_TRUE(producer->send(q, "before").ok());
  Delivery first = receive_one(*consumer, q);
  EXPECT_EQ(first.body.view(), "before");
  ASSERT_TRUE(consumer->ack(first).ok());

  Result<std::vector<Delivery>> got = std::vector<Delivery>{};
  std::thread rx([&] { got = consumer->receive(q, 1, 90s); });  // nothing queued: it reads
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(std::system(restart), 0) << restart;
  const auto deadline = Clock::now() + 60s;
  while (!producer->send(q, "after").ok() && Clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  rx.join();
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().body.view(), "after");
  EXPECT_TRUE(consumer->ack(got->front()).ok());
}

// Prefetch 5, six messages: five are held, the sixth stays at the broker until one of them is
// acked there. The first is acked while the other four are held, so its ack is held to be written
// with theirs (plan_acks); nothing else happens on the transport, yet the sixth arrives: the link
// thread wrote the held ack once it was due (the settle that held it woke the thread for that).
TEST_F(RabbitmqTransportTest, AnAckHeldForTheOthersIsWrittenWithoutAnotherSettle) {
  const std::string q = queue("held-ack");
  RabbitmqSettings s = settings_;
  s.prefetch = 5;
  auto producer = make(), consumer = make(s);
  ASSERT_TRUE(producer->ensure_queue(q).ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(producer->send(q, numbered("m", i)).ok());
  std::vector<Delivery> held;
  const auto deadline = Clock::now() + 20s;
  while (held.size() < 5 && Clock::now() < deadline) {
    auto got = consumer->receive(q, 5 - held.size(), 1s);
    ASSERT_TRUE(got.ok()) << got.error().message;
    for (auto& d : *got) held.push_back(std::move(d));
  }
  ASSERT_EQ(held.size(), 5u) << "the prefetch holds five";
  ASSERT_TRUE(consumer->ack(held.front()).ok());
  Delivery sixth = receive_one(*consumer, q, 20s);
  EXPECT_EQ(sixth.body.view(), numbered("m", 5)) << "the held ack never reached the broker";
  for (std::size_t i = 1; i < held.size(); ++i) ASSERT_TRUE(consumer->ack(held[i]).ok());
  ASSERT_TRUE(consumer->ack(sixth).ok());
  consumer->close();
  // Every ack reached the broker: nothing comes back to a new consumer.
  auto again = make();
  auto none = again->receive(q, 1, 500ms);
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->empty()) << "an acked message came back";
}

}  // namespace
}  // namespace asya::transport
