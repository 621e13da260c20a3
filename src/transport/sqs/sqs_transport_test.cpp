// The SQS transport against a real SQS API: moto's server, whose endpoint
// tests/transport/test_sqs.py puts in ASYA_TEST_AWS_ENDPOINT. Tests skip when it is unset.
// moto is slow (tens of ms per call), so the tests keep message counts small.
#include "transport/sqs/sqs_transport.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/env.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;

class SqsTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* endpoint = std::getenv("ASYA_TEST_AWS_ENDPOINT");
    if (endpoint == nullptr || *endpoint == '\0')
      GTEST_SKIP() << "ASYA_TEST_AWS_ENDPOINT is unset (tests/transport/test_sqs.py sets it)";
    settings_.aws.endpoint = endpoint;
    settings_.aws.region = "us-east-1";
    settings_.aws.credentials = {"testing", "testing", ""};
    settings_.wait_time_seconds = 1;
    options_.visibility_timeout = 30s;
    prefix_ = "t" + std::to_string(std::random_device()() % 1000000) + "-";
  }

  std::unique_ptr<Transport> make() { return make_sqs_transport(options_, settings_); }
  std::string queue(const std::string& name) { return prefix_ + name; }

  // Receives until `count` deliveries arrived or `timeout` passed.
  std::vector<Delivery> receive_n(Transport& t, const std::string& q, std::size_t count,
                                  std::chrono::milliseconds timeout = 10s) {
    std::vector<Delivery> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
      auto got = t.receive(q, count - out.size(), 1s);
      EXPECT_TRUE(got) << got.error().message;
      if (!got) break;
      for (auto& d : *got) out.push_back(std::move(d));
    }
    return out;
  }

  SqsSettings settings_;
  Options options_;
  std::string prefix_;
};

TEST_F(SqsTransportTest, SendReceiveAckRoundTripKeepsTheBodyByteForByte) {
  auto t = make();
  const std::string q = queue("echo");
  ASSERT_TRUE(t->ensure_queue(q));
  const std::string body =
      R"({"id":"m1","payload":{"text":"héllo \"quoted\" \\ \n tab\t","n":1.50}})";
  ASSERT_TRUE(t->send(q, body));
  auto got = receive_n(*t, q, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, body);
  EXPECT_EQ(got[0].queue, q);
  EXPECT_EQ(got[0].delivery_count, 1u);
  ASSERT_TRUE(t->ack(got[0]));
  auto after = t->receive(q, 10, 0ms);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->empty());
}

TEST_F(SqsTransportTest, QueueCreatedAtOnceWithOtherLeasesIsUsedByEveryone) {
  // An actor (30 s lease) and an end actor (10 s) creating one queue at the same moment: SQS
  // answers QueueNameExists to the CreateQueue whose attributes differ from the winner's.
  const std::string q = queue("race");
  std::vector<std::unique_ptr<Transport>> transports;
  for (int i = 0; i < 8; ++i) {
    options_.visibility_timeout = std::chrono::seconds(i % 2 == 0 ? 30 : 10);
    transports.push_back(make());
  }
  std::vector<std::string> errors(transports.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < transports.size(); ++i)
    threads.emplace_back([&, i] {
      if (Status st = transports[i]->ensure_queue(q); !st) errors[i] = st.message();
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  ASSERT_TRUE(transports[1]->send(q, "{}"));
  EXPECT_EQ(receive_n(*transports[0], q, 1).size(), 1u);
}

TEST_F(SqsTransportTest, QueueIsCreatedOnFirstUseAndListed) {
  auto t = make();
  const std::string q = queue("auto");
  ASSERT_TRUE(t->send(q, "{}"));
  auto names = t->list_queues();
  ASSERT_TRUE(names) << names.error().message;
  EXPECT_NE(std::find(names->begin(), names->end(), q), names->end());
}

TEST_F(SqsTransportTest, MissingQueueIsAnErrorWhenCreationIsOff) {
  settings_.create_queues = false;
  auto t = make();
  Status st = t->send(queue("absent"), "{}");
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("does not exist"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(queue("absent")), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("ASYA_SQS_CREATE_QUEUES"), std::string::npos) << st.message();
}

TEST_F(SqsTransportTest, NackRedeliversWithAGrowingDeliveryCount) {
  auto t = make();
  const std::string q = queue("nack");
  ASSERT_TRUE(t->send(q, "poison"));
  for (std::uint32_t expected = 1; expected <= 3; ++expected) {
    auto got = receive_n(*t, q, 1);
    ASSERT_EQ(got.size(), 1u) << "delivery " << expected;
    EXPECT_EQ(got[0].delivery_count, expected);
    ASSERT_TRUE(t->nack(got[0]));
  }
}

TEST_F(SqsTransportTest, NackWithDelayHidesTheMessageForThatLong) {
  auto t = make();
  const std::string q = queue("nackdelay");
  ASSERT_TRUE(t->send(q, "later"));
  auto got = receive_n(*t, q, 1);
  ASSERT_EQ(got.size(), 1u);
  auto nacked_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(t->nack(got[0], 2s));
  auto early = t->receive(q, 1, 0ms);
  ASSERT_TRUE(early);
  EXPECT_TRUE(early->empty()) << "visible again before the delay";
  auto again = receive_n(*t, q, 1, 15s);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - nacked_at, 1900ms);
  EXPECT_EQ(again[0].delivery_count, 2u);
}

TEST_F(SqsTransportTest, ExpiredLeaseIsRedeliveredAndExtendLeasePostponesIt) {
  options_.visibility_timeout = 1s;
  auto t = make();
  const std::string q = queue("lease");
  ASSERT_TRUE(t->send(q, "a"));
  auto first = receive_n(*t, q, 1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(t->extend_lease(first[0], 4s));
  std::this_thread::sleep_for(1500ms);  // past the original 1 s lease, inside the extended one
  auto hidden = t->receive(q, 1, 0ms);
  ASSERT_TRUE(hidden);
  EXPECT_TRUE(hidden->empty()) << "redelivered although the lease was extended";
  auto second = receive_n(*t, q, 1, 15s);  // after the extended lease expires
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].body, "a");
  EXPECT_EQ(second[0].delivery_count, 2u);
}

TEST_F(SqsTransportTest, DelayedSendIsCountedAsDelayedThenDelivered) {
  auto t = make();
  const std::string q = queue("delay");
  auto sent_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(t->send(q, "d", 2s));
  auto stats = t->stats(q);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->delayed, 1u);
  EXPECT_EQ(stats->ready, 0u);
  auto got = receive_n(*t, q, 1, 15s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - sent_at, 1900ms);
}

TEST_F(SqsTransportTest, DelayLongerThanSqsAllowsIsClampedNotRefused) {
  auto t = make();
  const std::string q = queue("longdelay");
  ASSERT_TRUE(t->send(q, "much later", std::chrono::minutes(20)));
  auto stats = t->stats(q);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->delayed, 1u);
}

TEST_F(SqsTransportTest, MoreThanTenRequestedGivesAtMostTenPerCall) {
  auto t = make();
  const std::string q = queue("batch");
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(t->send(q, std::to_string(i)));
  auto got = t->receive(q, 50, 2s);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_GE(got->size(), 1u);
  EXPECT_LE(got->size(), 10u);
}

TEST_F(SqsTransportTest, SendManyAndAckManyUseBatchCallsAndFailOnlyTheBadMessage) {
  // 23 messages over two queues (more than one SendMessageBatch of 10 each), one of them over the
  // size limit in the middle: it alone fails, as message_too_large; every other one arrives once.
  auto t = make();
  const std::string a = queue("many-a");
  const std::string b = queue("many-b");
  std::vector<std::string> bodies;
  for (int i = 0; i < 23; ++i) bodies.push_back(std::to_string(i) + "-m");
  bodies[11] = std::string(256 * 1024 + 1, 'x');
  std::vector<OutgoingMessage> messages;
  for (int i = 0; i < 23; ++i) messages.push_back({.queue = i % 3 == 0 ? b : a, .body = bodies[i]});
  std::vector<Status> sent = t->send_many(messages);
  ASSERT_EQ(sent.size(), 23u);
  for (int i = 0; i < 23; ++i) {
    if (i == 11) {
      EXPECT_TRUE(sent[i].message().starts_with("message_too_large:")) << sent[i].message();
    } else {
      EXPECT_TRUE(sent[i]) << i << ": " << sent[i].message();
    }
  }
  auto from_a = receive_n(*t, a, 14);
  auto from_b = receive_n(*t, b, 8);
  std::multiset<std::string> got;
  for (const auto& d : from_a) got.insert(d.body);
  for (const auto& d : from_b) got.insert(d.body);
  std::multiset<std::string> expected;
  for (int i = 0; i < 23; ++i)
    if (i != 11) expected.insert(bodies[i]);
  EXPECT_EQ(got, expected);

  // Every delivery acked in one ack_many (two DeleteMessageBatch calls for a, one for b), plus a
  // receipt SQS does not know: it alone fails.
  std::vector<const Delivery*> acks;
  for (const auto& d : from_a) acks.push_back(&d);
  for (const auto& d : from_b) acks.push_back(&d);
  Delivery bogus{.queue = a, .body = "", .delivery_count = 1, .receipt = "not-a-receipt-handle"};
  acks.insert(acks.begin() + 5, &bogus);
  std::vector<Status> acked = t->ack_many(acks);
  ASSERT_EQ(acked.size(), acks.size());
  for (std::size_t i = 0; i < acks.size(); ++i) {
    if (acks[i] == &bogus) {
      EXPECT_FALSE(acked[i]);
      EXPECT_NE(acked[i].message().find("DeleteMessageBatch on queue " + a), std::string::npos)
          << acked[i].message();
    } else {
      EXPECT_TRUE(acked[i]) << i << ": " << acked[i].message();
    }
  }
  for (const std::string& q : {a, b}) {
    auto stats = t->stats(q);
    ASSERT_TRUE(stats) << stats.error().message;
    EXPECT_EQ(stats->ready + stats->in_flight, 0u) << q;
  }
}

TEST_F(SqsTransportTest, SendManyKeepsEachCallUnderSqsTotalSizeLimit) {
  // Four bodies of 100 KiB: SQS refuses a batch call whose bodies add up to more than 256 KiB, so
  // they go in more than one call, and all arrive.
  auto t = make();
  const std::string q = queue("many-big");
  std::vector<std::string> bodies;
  for (char c : std::string("abcd")) bodies.push_back(std::string(100 * 1024, c));
  std::vector<OutgoingMessage> messages;
  for (const auto& body : bodies) messages.push_back({.queue = q, .body = body});
  for (const Status& st : t->send_many(messages)) EXPECT_TRUE(st) << st.message();
  auto got = receive_n(*t, q, 4);
  std::set<char> firsts;
  for (const auto& d : got) {
    EXPECT_EQ(d.body.size(), 100u * 1024);
    firsts.insert(d.body.view().front());
  }
  EXPECT_EQ(firsts, (std::set<char>{'a', 'b', 'c', 'd'}));
}

TEST_F(SqsTransportTest, StatsCountReadyAndInFlight) {
  auto t = make();
  const std::string q = queue("stats");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(t->send(q, "m" + std::to_string(i)));
  auto one = receive_n(*t, q, 1);
  ASSERT_EQ(one.size(), 1u);
  auto stats = t->stats(q);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->ready, 2u);
  EXPECT_EQ(stats->in_flight, 1u);
  EXPECT_EQ(stats->delayed, 0u);
}

TEST_F(SqsTransportTest, StatsOfAQueueThatDoesNotExistAreZero) {
  auto t = make();
  auto stats = t->stats(queue("never"));
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->ready + stats->in_flight + stats->delayed, 0u);
}

TEST_F(SqsTransportTest, BodyOverTheLimitIsRefusedAsMessageTooLarge) {
  auto t = make();
  EXPECT_EQ(t->max_message_bytes(), 256u * 1024);
  const std::string q = queue("big");
  std::string at_limit(256 * 1024, 'x');
  ASSERT_TRUE(t->send(q, at_limit));
  Status st = t->send(q, at_limit + "x");
  ASSERT_FALSE(st);
  EXPECT_TRUE(st.message().starts_with("message_too_large:")) << st.message();
  auto got = receive_n(*t, q, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body.size(), at_limit.size());

  options_.max_message_bytes = 1000;
  auto small = make();
  EXPECT_EQ(small->max_message_bytes(), 1000u);
  Status refused = small->send(q, std::string(1001, 'y'));
  EXPECT_TRUE(refused.message().starts_with("message_too_large:")) << refused.message();
}

TEST_F(SqsTransportTest, ReceiveWaitsUpToTheBoundAndReturnsEmpty) {
  auto t = make();
  const std::string q = queue("idle");
  ASSERT_TRUE(t->ensure_queue(q));
  auto start = std::chrono::steady_clock::now();
  auto got = t->receive(q, 1, 1500ms);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(got->empty());
  EXPECT_GE(took, 1400ms);
  EXPECT_LT(took, 6s);
}

TEST_F(SqsTransportTest, InterruptWakesABlockedReceive) {
  settings_.wait_time_seconds = 20;
  auto t = make();
  const std::string q = queue("interrupt");
  ASSERT_TRUE(t->ensure_queue(q));
  std::thread waker([&] {
    std::this_thread::sleep_for(500ms);
    t->interrupt();
  });
  auto start = std::chrono::steady_clock::now();
  auto got = t->receive(q, 1, 20s);
  auto took = std::chrono::steady_clock::now() - start;
  waker.join();
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(got->empty());
  EXPECT_LT(took, 5s);
  auto later = t->receive(q, 1, 10s);
  ASSERT_TRUE(later);
  EXPECT_TRUE(later->empty());
}

TEST_F(SqsTransportTest, ConcurrentProducersAndConsumersLoseNothing) {
  auto t = make();
  const std::string q = queue("concurrent");
  ASSERT_TRUE(t->ensure_queue(q));
  constexpr int kPerProducer = 10;
  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i)
        EXPECT_TRUE(t->send(q, std::to_string(p) + ":" + std::to_string(i)));
    });
  }
  std::mutex mutex;
  std::multiset<std::string> seen;
  std::vector<std::thread> consumers;
  for (int c = 0; c < 2; ++c) {
    consumers.emplace_back([&] {
      auto deadline = std::chrono::steady_clock::now() + 30s;
      while (std::chrono::steady_clock::now() < deadline) {
        {
          std::lock_guard lock(mutex);
          if (seen.size() >= 2 * kPerProducer) return;
        }
        auto got = t->receive(q, 10, 1s);
        ASSERT_TRUE(got) << got.error().message;
        for (auto& d : *got) {
          EXPECT_TRUE(t->ack(d));
          std::lock_guard lock(mutex);
          seen.insert(d.body);
        }
      }
    });
  }
  for (auto& th : producers) th.join();
  for (auto& th : consumers) th.join();
  std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), 2u * kPerProducer);
}

// An environment holding only `values` (nothing of the process's).
EnvironmentLookup only(std::map<std::string, std::string, std::less<>> values) {
  return environment_with(std::move(values),
                          [](std::string_view) { return std::optional<std::string>{}; });
}

TEST_F(SqsTransportTest, RegisteredAsSqsAndConfiguredFromTheEnvironment) {
  options_.environment = only({{"ASYA_SQS_ENDPOINT", settings_.aws.endpoint},
                               {"AWS_ACCESS_KEY_ID", "testing"},
                               {"AWS_SECRET_ACCESS_KEY", "testing"},
                               {"AWS_REGION", "us-east-1"}});
  auto t = make_transport("sqs", options_);
  EXPECT_EQ(t->name(), "sqs");
  const std::string q = queue("registry");
  ASSERT_TRUE(t->send(q, "r"));
  EXPECT_EQ(receive_n(*t, q, 1).size(), 1u);
}

// Settings errors need no service.
TEST(SqsSettingsTest, MissingCredentialsNameTheVariables) {
  try {
    SqsSettings::from_env(Environment(only({{"ASYA_SQS_ENDPOINT", "http://127.0.0.1:1"}})));
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("AWS_ACCESS_KEY_ID"), std::string::npos) << e.what();
  }
}

TEST_F(SqsTransportTest, PurgeEmptiesTheQueueWithoutACountAndRefusesAnUnknownQueue) {
  auto t = make();
  const std::string q = queue("purge");
  ASSERT_TRUE(t->ensure_queue(q));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(t->send(q, "m" + std::to_string(i)));
  auto purged = t->purge(q);
  ASSERT_TRUE(purged) << purged.error().message;
  EXPECT_FALSE(purged->has_value()) << "SQS does not say how many it removed";
  auto deadline = std::chrono::steady_clock::now() + 60s;
  QueueStats stats{1, 0, 0};
  while (std::chrono::steady_clock::now() < deadline) {
    auto s = t->stats(q);
    ASSERT_TRUE(s) << s.error().message;
    stats = *s;
    if (stats.ready + stats.in_flight + stats.delayed == 0) break;
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(stats.ready + stats.in_flight + stats.delayed, 0u);
  auto missing = t->purge(queue("nobody"));
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().message.starts_with("queue_not_found:")) << missing.error().message;
}

TEST(SqsSettingsTest, BadValuesAreNamed) {
  std::map<std::string, std::string, std::less<>> values{{"AWS_ACCESS_KEY_ID", "a"},
                                                         {"AWS_SECRET_ACCESS_KEY", "b"},
                                                         {"ASYA_SQS_ENDPOINT", "localhost:5000"}};
  try {
    SqsSettings::from_env(Environment(only(values)));
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ASYA_SQS_ENDPOINT"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("localhost:5000"), std::string::npos) << e.what();
  }
  values["ASYA_SQS_ENDPOINT"] = "http://127.0.0.1:1";
  values["ASYA_SQS_WAIT_TIME_SECONDS"] = "21";
  EXPECT_THROW(SqsSettings::from_env(Environment(only(values))), ConfigError);
  values.erase("ASYA_SQS_WAIT_TIME_SECONDS");
  values.erase("ASYA_SQS_ENDPOINT");
  try {
    SqsSettings::from_env(Environment(only(values)));
    FAIL() << "no ConfigError without region";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("AWS_REGION"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace asya::transport
