// RabbitMQ transport: its settings (URL and ASYA_RABBITMQ_* variables, checked precisely), what
// a failed connection says (refused, lost during login, wrong password, unreachable broker; never
// the password), and a broker restart in the middle of a two-queue chain losing nothing. The
// broker tests use the fixture of rabbitmq_test_fixture.hpp; messaging is
// rabbitmq_transport_test.cpp.
#include "transport/rabbitmq/rabbitmq_transport.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/env.hpp"
#include "transport/rabbitmq/rabbitmq_test_fixture.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using rabbitmq_test::Clock;
using rabbitmq_test::numbered;
using rabbitmq_test::RabbitmqTransportTest;

// Receives from `queue`, acking each, counting bodies in `arrived` (guarded by `mutex`) until it
// holds `count` distinct ones or `deadline` passed; a failed receive (the broker is away) is
// retried.
void collect_until(Transport& collector, const std::string& queue, std::size_t count,
                   Clock::time_point deadline, std::mutex& mutex,
                   std::map<std::string, int>& arrived) {
  while (Clock::now() < deadline) {
    {
      std::lock_guard lock(mutex);
      if (arrived.size() == count) return;
    }
    auto got = collector.receive(queue, 50, 500ms);
    if (!got) {
      std::this_thread::sleep_for(100ms);
      continue;
    }
    for (auto& d : *got) {
      (void)collector.ack(d);
      std::lock_guard lock(mutex);
      ++arrived[d.body];
    }
  }
}

TEST(RabbitmqSettingsTest, UrlGivesHostPortCredentialsAndDecodedVhost) {
  RabbitmqSettings s;
  s.apply_url("amqp://alice:s3cret@broker.example:5673/%2F");
  EXPECT_EQ(s.host, "broker.example");
  EXPECT_EQ(s.port, 5673);
  EXPECT_EQ(s.username, "alice");
  EXPECT_EQ(s.password, "s3cret");
  EXPECT_EQ(s.vhost, "/");
  EXPECT_FALSE(s.tls);
  EXPECT_EQ(s.describe(), "amqp://alice@broker.example:5673/%2F");
  s.apply_url("amqps://bob:pw@tls.example/prod");
  EXPECT_TRUE(s.tls);
  EXPECT_EQ(s.port, 5671);
  EXPECT_EQ(s.vhost, "prod");
}

TEST(RabbitmqSettingsTest, InvalidUrlIsAConfigErrorWithoutThePassword) {
  RabbitmqSettings s;
  try {
    s.apply_url("http://user:topsecret@host/");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("ASYA_RABBITMQ_URL"), std::string::npos) << message;
    EXPECT_EQ(message.find("topsecret"), std::string::npos) << message;
  }
}

TEST(RabbitmqSettingsTest, EnvironmentVariablesAreReadAndCheckedPrecisely) {
  std::map<std::string, std::string, std::less<>> values{
      {"ASYA_RABBITMQ_HOST", "mq.internal"},  {"ASYA_RABBITMQ_PORT", "5999"},
      {"ASYA_RABBITMQ_USERNAME", "asya"},     {"ASYA_RABBITMQ_PASSWORD", "pw"},
      {"ASYA_RABBITMQ_QUEUE_TYPE", "quorum"}, {"ASYA_RABBITMQ_PREFETCH", "3"}};
  // Only these variables: the process environment (a broker URL of the test run) stays out.
  auto only = [](std::map<std::string, std::string, std::less<>> map) {
    return Environment(environment_with(
        std::move(map),
        [](std::string_view) -> std::optional<std::string> { return std::nullopt; }));
  };
  RabbitmqSettings s = RabbitmqSettings::from_env(only(values));
  EXPECT_EQ(s.host, "mq.internal");
  EXPECT_EQ(s.port, 5999);
  EXPECT_EQ(s.username, "asya");
  EXPECT_TRUE(s.quorum);
  EXPECT_EQ(s.prefetch, 3);
  values["ASYA_RABBITMQ_QUEUE_TYPE"] = "stream";
  EXPECT_THROW(RabbitmqSettings::from_env(only(values)), ConfigError);
}

TEST_F(RabbitmqTransportTest, UnreachableBrokerFailsSendWithinTheTimeoutNamingTheBroker) {
  RabbitmqSettings nowhere = settings_;
  nowhere.port = 1;  // nothing listens there
  nowhere.confirm_timeout = 500ms;
  auto t = make(nowhere);
  Status st = t->send(queue("x"), "m");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(":1/"), std::string::npos) << st.message();
  auto got = t->receive(queue("x"), 1, 100ms);
  EXPECT_FALSE(got.ok());
}

// What a failed connection says: what happened and where; credentials only when the broker
// refused them.
TEST(RabbitmqConnectErrorTest, DeadPortIsConnectionRefusedNamingHostAndPortNotCredentials) {
  // A bound TCP socket that does not listen: a connect to it is refused, and the port stays ours.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);
  RabbitmqSettings s;
  s.host = "127.0.0.1";
  s.port = port;
  s.confirm_timeout = 1s;
  auto t = make_rabbitmq_transport({}, s);
  Status st = t->send("asya-x", "m");
  ::close(fd);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("connection refused"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << st.message();
  EXPECT_EQ(st.message().find("password"), std::string::npos) << st.message();
}

// A broker that dies while a client logs in (here: a listener that accepts and hangs up at once)
// is a lost connection, not a login failure.
TEST(RabbitmqConnectErrorTest, ConnectionLostDuringLoginDoesNotBlameCredentials) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  std::atomic<bool> stop{false};
  std::thread hang_up([&] {
    while (!stop) {
      pollfd p{listener, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int client = ::accept(listener, nullptr, nullptr);
      if (client >= 0) ::close(client);
    }
  });
  RabbitmqSettings s;
  s.host = "127.0.0.1";
  s.port = ntohs(address.sin_port);
  s.confirm_timeout = 1s;
  auto t = make_rabbitmq_transport({}, s);
  Status st = t->send("asya-x", "m");
  t.reset();
  stop = true;
  hang_up.join();
  ::close(listener);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("lost during the AMQP handshake"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("127.0.0.1:" + std::to_string(s.port)), std::string::npos)
      << st.message();
  EXPECT_EQ(st.message().find("password"), std::string::npos) << st.message();
}

TEST_F(RabbitmqTransportTest, WrongPasswordIsReportedAsRefusedCredentials) {
  RabbitmqSettings wrong = settings_;
  wrong.password = "not-the-password";
  wrong.confirm_timeout = 2s;
  auto t = make(wrong);
  Status st = t->send(queue("x"), "m");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("ACCESS_REFUSED"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("check the user and password"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("not-the-password"), std::string::npos) << st.message();
}

// Restarts the broker while a producer, a relay (queue a -> queue b, acking the input only after
// its output was confirmed) and a collector move 1,000 messages. Every message must arrive at the
// end; duplicates are allowed (at-least-once) and reported.
TEST_F(RabbitmqTransportTest, BrokerRestartLosesNothingInATwoQueueChain) {
  const char* restart = std::getenv("ASYA_TEST_RABBITMQ_RESTART_COMMAND");
  ASSERT_NE(restart, nullptr)
      << "ASYA_TEST_RABBITMQ_RESTART_COMMAND must name a command that restarts the broker at "
         "ASYA_TEST_RABBITMQ_URL (tests/transport/test_rabbitmq.py sets both)";
  constexpr int kMessages = 1000;
  const std::string a = queue("chain-a"), b = queue("chain-b");
  RabbitmqSettings s = settings_;
  s.confirm_timeout = 60s;
  auto producer = make(s), relay = make(s), collector = make(s);
  ASSERT_TRUE(producer->ensure_queue(a).ok());
  ASSERT_TRUE(producer->ensure_queue(b).ok());

  std::atomic<bool> done{false};
  std::atomic<int> send_retries{0}, relay_errors{0};
  std::mutex mutex;
  std::map<std::string, int> arrived;  // body -> times
  auto deadline = Clock::now() + 240s;

  std::thread produce([&] {
    for (int i = 0; i < kMessages && Clock::now() < deadline; ++i) {
      while (!producer->send(a, numbered("m", i)).ok() && Clock::now() < deadline) {
        ++send_retries;
        std::this_thread::sleep_for(100ms);
      }
      if (i % 4 == 0) std::this_thread::sleep_for(1ms);  // spread the flow over the restart
    }
  });
  std::thread forward([&] {
    while (!done && Clock::now() < deadline) {
      auto got = relay->receive(a, 10, 500ms);
      if (!got) {
        ++relay_errors;
        std::this_thread::sleep_for(100ms);
        continue;
      }
      for (auto& d : *got) {
        if (relay->send(b, d.body).ok()) {
          (void)relay->ack(d);  // a failed ack only means a duplicate later
        } else {
          ++relay_errors;
          (void)relay->nack(d);
        }
      }
    }
  });
  std::thread collect([&] {
    collect_until(*collector, b, static_cast<std::size_t>(kMessages), deadline, mutex, arrived);
    done = true;
  });

  // Restart once the chain is busy.
  while (Clock::now() < deadline) {
    {
      std::lock_guard lock(mutex);
      if (arrived.size() >= 150) break;
    }
    std::this_thread::sleep_for(20ms);
  }
  // A delivery held across the restart is known lost afterwards (its outputs would be duplicates).
  auto holder = make(s);
  const std::string held_queue = queue("chain-held");
  ASSERT_TRUE(holder->send(held_queue, "held").ok());
  Delivery held = receive_one(*holder, held_queue);
  EXPECT_TRUE(holder->still_held(held));
  std::printf("restarting the broker (%zu arrived so far)\n", arrived.size());
  int rc = std::system(restart);
  EXPECT_EQ(rc, 0) << "restart command failed: " << restart;
  EXPECT_FALSE(holder->still_held(held));
  produce.join();
  collect.join();
  done = true;
  forward.join();

  int duplicates = 0;
  for (auto& [body, times] : arrived) duplicates += times - 1;
  std::printf("arrived %zu/%d unique, %d duplicate(s), %d send retries, %d relay errors\n",
              arrived.size(), kMessages, duplicates, send_retries.load(), relay_errors.load());
  EXPECT_EQ(arrived.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) EXPECT_TRUE(arrived.count(numbered("m", i))) << "lost m" << i;
}

// Eight threads publish through one transport at once (four with send(), four with send_many()
// of ten), so their publishes share the confirm window and the reading of confirms passes from
// caller to caller; the broker restarts in the middle. Every message reported sent arrives, and
// duplicates are bounded by what can be in flight at the restart (the confirm window, the
// collector's prefetch) plus the sends retried after a failure.
TEST_F(RabbitmqTransportTest, BrokerRestartWhileEightSendersShareTheConfirmWindowLosesNothing) {
  const char* restart = std::getenv("ASYA_TEST_RABBITMQ_RESTART_COMMAND");
  ASSERT_NE(restart, nullptr) << "ASYA_TEST_RABBITMQ_RESTART_COMMAND must be set";
  constexpr int kThreads = 8, kPerThread = 250, kMessages = kThreads * kPerThread;
  const std::string q = queue("window");
  RabbitmqSettings s = settings_;
  s.confirm_timeout = 60s;
  auto producer = make(s), collector = make(s);
  ASSERT_TRUE(producer->ensure_queue(q).ok());
  const auto deadline = Clock::now() + 240s;
  std::atomic<int> sent{0}, retries{0};
  std::mutex mutex;
  std::map<std::string, int> arrived;  // body -> times
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      std::vector<std::string> bodies;
      for (int i = 0; i < kPerThread; ++i) bodies.push_back(numbered(numbered("w", t) + "-", i));
      const std::size_t chunk = t % 2 == 0 ? 1 : 10;
      for (std::size_t i = 0; i < bodies.size() && Clock::now() < deadline;) {
        std::vector<OutgoingMessage> batch;
        for (std::size_t k = i; k < std::min(bodies.size(), i + chunk); ++k)
          batch.push_back({q, bodies[k]});
        std::vector<Status> results;
        if (chunk == 1)
          results.push_back(producer->send(q, bodies[i]));
        else
          results = producer->send_many(batch);
        std::size_t ok = 0;
        while (ok < results.size() && results[ok].ok()) ++ok;
        sent += static_cast<int>(ok);
        i += ok;  // the first failure and what follows it are sent again
        if (ok < results.size()) {
          ++retries;
          std::this_thread::sleep_for(50ms);
        }
      }
    });
  }
  std::thread collect([&] {
    collect_until(*collector, q, static_cast<std::size_t>(kMessages), deadline, mutex, arrived);
  });
  while (sent < kMessages / 4 && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  std::printf("restarting the broker (%d sent so far)\n", sent.load());
  EXPECT_EQ(std::system(restart), 0) << "restart command failed: " << restart;
  for (auto& thread : senders) thread.join();
  collect.join();
  int duplicates = 0;
  for (auto& [body, times] : arrived) duplicates += times - 1;
  std::printf("window: arrived %zu/%d unique, %d duplicate(s), %d failed send calls retried\n",
              arrived.size(), kMessages, duplicates, retries.load());
  EXPECT_EQ(sent.load(), kMessages);
  EXPECT_EQ(arrived.size(), static_cast<std::size_t>(kMessages));
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kPerThread; ++i) {
      const std::string body = numbered(numbered("w", t) + "-", i);
      EXPECT_TRUE(arrived.count(body)) << "lost " << body;
    }
  EXPECT_LE(duplicates, s.confirm_window + s.prefetch + 10 * retries.load());
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
