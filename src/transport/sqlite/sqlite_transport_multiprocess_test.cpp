// Several processes on one database file, as under `asya up`: each child opens its own transport
// after fork() and leaves with _exit(), so nothing of the parent's state crosses the fork.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include <sqlite3.h>

#include "transport/sqlite/hand_off.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::read_line;
using test::spawn;
using test::wait_exit;

// Appends one line with a single write(), so a line is complete even if the writer dies.
void append_line(int fd, const std::string& line) {
  std::string text = line + "\n";
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

TEST(SqliteMultiProcess, FourProducersThreeConsumersDeliverEveryMessageExactlyOnce) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  constexpr int kProducers = 4, kPerProducer = 500, kConsumers = 3;
  const std::string queue = "asya-mp";
  const std::string stop_file = (dir.path() / "stop").string();
  {
    auto setup = make_sqlite_transport(Options{}, settings);
    ASSERT_TRUE(setup->ensure_queue(queue).ok());
  }

  std::vector<pid_t> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    std::string record = (dir.path() / ("consumer-" + std::to_string(c))).string();
    consumers.push_back(spawn([&, c, record] {
      auto t = make_sqlite_transport(Options{}, settings);
      int fd = ::open(record.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0) return 3;
      const std::size_t batch = c == 0 ? 1 : c == 1 ? 5 : 16;
      for (;;) {
        auto got = t->receive(queue, batch, 100ms);
        if (!got.ok()) {
          std::fprintf(stderr, "receive: %s\n", got.error().message.c_str());
          return 4;
        }
        if (got->empty() && ::access(stop_file.c_str(), F_OK) == 0) return 0;
        for (const Delivery& d : *got) {
          append_line(fd, d.body + " " + std::to_string(d.delivery_count));
          Status s = t->ack(d);
          if (!s.ok()) {
            std::fprintf(stderr, "ack: %s\n", s.message().c_str());
            return 5;
          }
        }
      }
    }));
  }
  std::vector<pid_t> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(spawn([&, p] {
      auto t = make_sqlite_transport(Options{}, settings);
      for (int i = 0; i < kPerProducer; ++i) {
        Status s = t->send(queue, std::to_string(p) + "-" + std::to_string(i));
        if (!s.ok()) {
          std::fprintf(stderr, "send: %s\n", s.message().c_str());
          return 6;
        }
      }
      return 0;
    }));
  }

  Clock::time_point deadline = Clock::now() + 240s;
  for (pid_t pid : producers) EXPECT_EQ(wait_exit(pid, deadline), 0);
  auto observer = make_sqlite_transport(Options{}, settings);
  test::wait_drained(*observer, queue, deadline);
  if (HasFatalFailure()) return;
  { std::ofstream(stop_file) << "stop\n"; }
  for (pid_t pid : consumers) EXPECT_EQ(wait_exit(pid, deadline), 0);

  std::map<std::string, int> seen;
  int total = 0;
  for (int c = 0; c < kConsumers; ++c) {
    std::ifstream in(dir.path() / ("consumer-" + std::to_string(c)));
    std::string body;
    int count = 0;
    int mine = 0;
    while (in >> body >> count) {
      ++seen[body];
      ++total;
      ++mine;
      EXPECT_EQ(count, 1) << body << " was redelivered";
    }
    std::printf("consumer %d received %d messages\n", c, mine);
  }
  EXPECT_EQ(total, kProducers * kPerProducer);
  for (int p = 0; p < kProducers; ++p) {
    for (int i = 0; i < kPerProducer; ++i) {
      std::string body = std::to_string(p) + "-" + std::to_string(i);
      EXPECT_EQ(seen[body], 1) << body;
    }
  }
}

TEST(SqliteMultiProcess, MessageLeasedByAKilledConsumerIsDeliveredAgainAfterTheTimeout) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  Options options;
  options.visibility_timeout = 500ms;
  {
    auto producer = make_sqlite_transport(options, settings);
    ASSERT_TRUE(producer->send("asya-kill", "precious").ok());
  }
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  pid_t victim = spawn([&] {
    auto t = make_sqlite_transport(options, settings);
    auto got = t->receive("asya-kill", 1, 10000ms);
    if (!got.ok() || got->size() != 1) return 7;
    append_line(report[1], got->front().body + " " + std::to_string(got->front().delivery_count));
    for (;;) pause();  // holds the lease until killed
  });
  ::close(report[1]);
  std::string line = read_line(report[0], 10000ms);
  ::close(report[0]);
  ASSERT_EQ(line, "precious 1");
  Clock::time_point leased_before = Clock::now();
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  EXPECT_EQ(wait_exit(victim, Clock::now() + 10s), 128 + SIGKILL);

  auto survivor = make_sqlite_transport(options, settings);
  auto got = survivor->receive("asya-kill", 1, 10000ms);
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 1u) << "the killed consumer's message was lost";
  EXPECT_EQ(got->front().body, "precious");
  EXPECT_EQ(got->front().delivery_count, 2u);
  EXPECT_LT(Clock::now() - leased_before, 5000ms) << "redelivery should follow lease expiry";
  EXPECT_TRUE(survivor->ack(got->front()).ok());
  auto stats = survivor->stats("asya-kill");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready + stats->in_flight + stats->delayed, 0u);
}

// Switching a new file to WAL needs an exclusive lock that SQLite does not wait for with the
// busy handler; the setup retries. Several rounds, since the race is timing-dependent.
TEST(SqliteMultiProcess, ProcessesCreatingTheSameNewFileAtOnceAllSucceed) {
  test::TempDir dir;
  constexpr int kProcesses = 6;
  constexpr int kRounds = 5;
  for (int round = 0; round < kRounds; ++round) {
    SqliteSettings settings = dir.settings();
    // Neither the directory nor the file exist.
    settings.path = (dir.path() / ("fresh" + std::to_string(round)) / "queues.db").string();
    std::vector<pid_t> children;
    for (int i = 0; i < kProcesses; ++i) {
      children.push_back(spawn([&, i] {
        auto t = make_sqlite_transport(Options{}, settings);
        if (!t->ensure_queue("asya-fresh").ok()) return 10;
        return t->send("asya-fresh", std::to_string(i)).ok() ? 0 : 11;
      }));
    }
    for (pid_t pid : children)
      EXPECT_EQ(wait_exit(pid, Clock::now() + 60s), 0) << "round " << round;
    auto t = make_sqlite_transport(Options{}, settings);
    auto stats = t->stats("asya-fresh");
    ASSERT_TRUE(stats.ok()) << stats.error().message;
    EXPECT_EQ(stats->ready, static_cast<std::uint64_t>(kProcesses));
    auto names = t->list_queues();
    ASSERT_TRUE(names.ok());
    EXPECT_EQ(*names, std::vector<std::string>{"asya-fresh"});
  }
}

// Publish in one process, a receiver blocked in another: the only signal is the queue's wake file.
TEST(SqliteMultiProcess, BlockedReceiverInAnotherProcessWakesWithinMilliseconds) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.poll_interval = 10000ms;  // a wake-up can only come from the wake file
  constexpr int kSamples = 40;
  {
    auto setup = make_sqlite_transport(Options{}, settings);
    ASSERT_TRUE(setup->ensure_queue("asya-lat").ok());
  }
  int ready[2], report[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(report), 0);
  pid_t consumer = spawn([&] {
    auto t = make_sqlite_transport(Options{}, settings);
    for (int i = 0; i < kSamples; ++i) {
      append_line(ready[1], "waiting");
      auto got = t->receive("asya-lat", 1, 20000ms);
      auto received = Clock::now().time_since_epoch().count();
      if (!got.ok() || got->size() != 1) return 8;
      // CLOCK_MONOTONIC is shared by all processes of the machine.
      long long sent = std::stoll(got->front().body);
      append_line(report[1], std::to_string(received - sent));
      if (!t->ack(got->front()).ok()) return 9;
    }
    return 0;
  });
  ::close(ready[1]);
  ::close(report[1]);
  auto producer = make_sqlite_transport(Options{}, settings);
  std::vector<double> latencies_ms;
  for (int i = 0; i < kSamples; ++i) {
    ASSERT_EQ(read_line(ready[0], 20000ms), "waiting");
    std::this_thread::sleep_for(5ms);  // let it block; only shapes the measurement
    ASSERT_TRUE(
        producer->send("asya-lat", std::to_string(Clock::now().time_since_epoch().count())).ok());
    std::string nanos = read_line(report[0], 20000ms);
    ASSERT_FALSE(nanos.empty()) << "the consumer did not receive message " << i;
    latencies_ms.push_back(std::stod(nanos) / 1e6);
  }
  EXPECT_EQ(wait_exit(consumer, Clock::now() + 20s), 0);
  ::close(ready[0]);
  ::close(report[0]);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  double median = latencies_ms[latencies_ms.size() / 2];
  std::printf("cross-process publish->receive latency: median %.3f ms, p90 %.3f ms, max %.3f ms\n",
              median, latencies_ms[latencies_ms.size() * 9 / 10], latencies_ms.back());
  EXPECT_LT(median, 50.0);
}

// Receivers waiting for messages are handed them by the senders (hand_off.hpp); receivers killed
// at any moment (waiting, handed a message not read yet, between recording and acking) and
// restarted lose nothing, and no message is ever delivered twice as a first delivery.
TEST(SqliteMultiProcess, KilledAndRestartedWaitingReceiversLoseNothingAndGetNoMessageTwice) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  constexpr int kProducers = 2, kPerProducer = 300, kConsumers = 3, kKills = 6;
  const std::string queue = "asya-handoff";
  const std::string stop_file = (dir.path() / "stop").string();
  Options options;
  options.visibility_timeout = 2s;
  auto observer = make_sqlite_transport(options, settings);
  ASSERT_TRUE(observer->ensure_queue(queue).ok());
  int generation = 0;
  auto consumer = [&](int slot) {
    std::string record = (dir.path() / ("record-" + std::to_string(generation++))).string();
    return spawn([&, record, slot] {
      auto t = make_sqlite_transport(options, settings);
      std::uint64_t taken_before = sqlite::hand_offs_taken();
      int fd = ::open(record.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0) return 3;
      for (;;) {
        auto got = t->receive(queue, 1, 100ms);
        if (!got.ok()) return 4;
        if (got->empty() && ::access(stop_file.c_str(), F_OK) == 0) break;
        for (const Delivery& d : *got) {
          append_line(fd, d.body + " " + std::to_string(d.delivery_count));  // before the ack
          if (!t->ack(d).ok()) return 5;
        }
      }
      std::printf("consumer slot %d took %llu hand-offs\n", slot,
                  static_cast<unsigned long long>(sqlite::hand_offs_taken() - taken_before));
      return 0;
    });
  };
  std::vector<pid_t> consumers;
  for (int c = 0; c < kConsumers; ++c) consumers.push_back(consumer(c));
  // Every consumer waiting (registered) before the first send: the first messages are handed.
  auto waiting = [&] {
    sqlite3* db = nullptr;
    sqlite3_open(settings.path.c_str(), &db);
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM waiters WHERE message_id IS NULL", -1, &s,
                       nullptr);
    int count = s && sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    sqlite3_finalize(s);
    sqlite3_close(db);
    return count;
  };
  Clock::time_point deadline = Clock::now() + 240s;
  while (waiting() < kConsumers) {
    ASSERT_LT(Clock::now(), deadline) << "the consumers never waited";
    std::this_thread::sleep_for(5ms);
  }
  std::vector<pid_t> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(spawn([&, p] {
      auto t = make_sqlite_transport(options, settings);
      for (int i = 0; i < kPerProducer; ++i) {
        if (!t->send(queue, std::to_string(p) + "-" + std::to_string(i)).ok()) return 6;
      }
      return 0;
    }));
  }
  // Kill a consumer each time the queue's acked total grew, and start another in its place.
  auto recorded = [&] {
    int lines = 0;
    for (int g = 0; g < generation; ++g) {
      std::ifstream in(dir.path() / ("record-" + std::to_string(g)));
      std::string line;
      while (std::getline(in, line)) ++lines;
    }
    return lines;
  };
  for (int k = 0; k < kKills; ++k) {
    int target = (k + 1) * kProducers * kPerProducer / (kKills + 2);
    while (recorded() < target) {
      ASSERT_LT(Clock::now(), deadline) << "no progress before kill " << k;
      std::this_thread::sleep_for(1ms);
    }
    int slot = k % kConsumers;
    ::kill(consumers[slot], SIGKILL);
    EXPECT_EQ(wait_exit(consumers[slot], deadline), 128 + SIGKILL);
    consumers[slot] = consumer(slot);
  }
  for (pid_t pid : producers) EXPECT_EQ(wait_exit(pid, deadline), 0);
  test::wait_drained(*observer, queue, deadline);
  if (HasFatalFailure()) return;
  { std::ofstream(stop_file) << "stop\n"; }
  for (pid_t pid : consumers) EXPECT_EQ(wait_exit(pid, deadline), 0);

  std::map<std::string, int> first_deliveries, all;
  int total = 0;
  for (int g = 0; g < generation; ++g) {
    std::ifstream in(dir.path() / ("record-" + std::to_string(g)));
    std::string body;
    int count = 0;
    while (in >> body >> count) {
      ++all[body];
      ++total;
      if (count == 1) ++first_deliveries[body];
    }
  }
  for (int p = 0; p < kProducers; ++p) {
    for (int i = 0; i < kPerProducer; ++i) {
      std::string body = std::to_string(p) + "-" + std::to_string(i);
      EXPECT_GE(all[body], 1) << body << " was lost";
      EXPECT_LE(first_deliveries[body], 1) << body << " was delivered twice as new";
    }
  }
  // Each kill interrupts at most the one message its consumer recorded and had not acked.
  EXPECT_LE(total, kProducers * kPerProducer + kKills);
  EXPECT_EQ(waiting(), 0);  // every consumer removed its row (close) or was cleaned up
}

}  // namespace
}  // namespace asya::transport
