// send_then_ack on SQLite (transport.hpp): a message's outputs and its ack commit in one write
// transaction, all or nothing. A lost lease keeps the outputs and fails the ack alone (as send()
// then ack() would); a busy write lock, a message too large or a body stored as a file leave
// everything to the ordinary steps (nullopt, nothing committed); and a forwarder killed (SIGKILL)
// at any moment, or while its steps wait for the write lock, loses and duplicates nothing.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"
#include "transport/sqlite/write_lock_stats.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using sqlite::WriteLockStats;

// prefix + n, built by appending (GCC 12 -Wrestrict false positive on "literal" + std::string).
std::string numbered(std::string prefix, int n) {
  prefix += std::to_string(n);
  return prefix;
}

void wait_until(const std::function<bool()>& condition, const char* what) {
  Clock::time_point deadline = Clock::now() + 60s;
  while (!condition()) {
    ASSERT_LT(Clock::now(), deadline) << "timed out waiting for " << what;
    std::this_thread::sleep_for(1ms);
  }
}

Delivery receive_one(Transport& t, const std::string& queue) {
  auto got = t.receive(queue, 1, 5s);
  EXPECT_TRUE(got.ok() && got->size() == 1u);
  return got.ok() && !got->empty() ? (*got)[0] : Delivery{};
}

std::uint64_t held(Transport& t, const std::string& queue) {
  auto s = t.stats(queue);
  EXPECT_TRUE(s.ok());
  return s.ok() ? s->ready + s->in_flight + s->delayed : 0;
}

// Every message on `queue`, received and acked: body -> times seen.
std::map<std::string, int> drain(Transport& t, const std::string& queue) {
  std::map<std::string, int> seen;
  for (;;) {
    auto got = t.receive(queue, 100, 200ms);
    EXPECT_TRUE(got.ok());
    if (!got.ok() || got->empty()) return seen;
    for (const Delivery& d : *got) {
      ++seen[d.body];
      EXPECT_TRUE(t.ack(d).ok());
    }
  }
}

TEST(SqliteSendThenAck, TheOutputsAndTheAckCommitInOneTransaction) {
  test::TempDir dir;
  auto t = make_sqlite_transport(Options{}, dir.settings());
  ASSERT_TRUE(t->send("asya-in", "m").ok());
  Delivery in = receive_one(*t, "asya-in");
  std::vector<OutgoingMessage> outputs{
      {"asya-next", "out-1", 0ms}, {"asya-next", "out-2", 0ms}, {"asya-happy-end", "out-3", 0ms}};
  std::uint64_t before = WriteLockStats::snapshot().transactions;
  std::optional<Status> acked = t->send_then_ack(outputs, in);
  std::uint64_t after = WriteLockStats::snapshot().transactions;
  ASSERT_TRUE(acked.has_value());
  EXPECT_TRUE(acked->ok()) << acked->message();
  EXPECT_EQ(after - before, 1u) << "three sends and an ack, one write transaction";
  EXPECT_EQ(held(*t, "asya-in"), 0u);
  auto next = t->receive("asya-next", 10, 2s);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->size(), 2u);
  EXPECT_EQ((*next)[0].body, "out-1");  // in the order given
  EXPECT_EQ((*next)[1].body, "out-2");
  EXPECT_EQ(receive_one(*t, "asya-happy-end").body, "out-3");
}

// The lease is no longer held (acked already, or expired and received again): the outputs stay
// sent and the ack fails alone, exactly as send() then ack() would have done.
TEST(SqliteSendThenAck, ALostLeaseKeepsTheOutputsAndFailsTheAckAlone) {
  test::TempDir dir;
  auto t = make_sqlite_transport(Options{}, dir.settings());
  ASSERT_TRUE(t->send("asya-in", "m").ok());
  Delivery in = receive_one(*t, "asya-in");
  ASSERT_TRUE(t->ack(in).ok());
  std::vector<OutgoingMessage> outputs{{"asya-out", "out", 0ms}};
  std::optional<Status> acked = t->send_then_ack(outputs, in);
  ASSERT_TRUE(acked.has_value());
  ASSERT_FALSE(acked->ok());
  EXPECT_NE(acked->message().find("the lease is no longer held"), std::string::npos)
      << acked->message();
  EXPECT_EQ(receive_one(*t, "asya-out").body, "out");
}

// Another connection holds the write lock past the busy timeout: nothing is committed, and the
// caller is told to take the ordinary steps (nullopt); the input stays leased.
TEST(SqliteSendThenAck, ABusyWriteLockCommitsNothingAndLeavesTheStepsToTheCaller) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.busy_timeout = 200ms;
  auto t = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(t->ensure_queue("asya-out").ok());
  ASSERT_TRUE(t->send("asya-in", "m").ok());
  Delivery in = receive_one(*t, "asya-in");
  sqlite3* blocker = nullptr;
  ASSERT_EQ(sqlite3_open(settings.path.c_str(), &blocker), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::vector<OutgoingMessage> outputs{{"asya-out", "out", 0ms}};
  std::optional<Status> acked = t->send_then_ack(outputs, in);
  ASSERT_EQ(sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(blocker);
  EXPECT_FALSE(acked.has_value());
  EXPECT_EQ(held(*t, "asya-out"), 0u) << "no output may be committed";
  auto in_stats = t->stats("asya-in");
  ASSERT_TRUE(in_stats.ok());
  EXPECT_EQ(in_stats->in_flight, 1u) << "the input may not be acked";
  ASSERT_TRUE(t->send("asya-out", "out").ok());  // the ordinary steps, once the lock is free
  EXPECT_TRUE(t->ack(in).ok());
}

// What the ordinary send refuses or stores differently is left to it: nothing is done here.
TEST(SqliteSendThenAck, ATooLargeOutputOrABodyFileIsLeftToTheOrdinarySteps) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.file_body_bytes = 1024;
  Options options;
  options.max_message_bytes = 4096;
  auto t = make_sqlite_transport(options, settings);
  ASSERT_TRUE(t->ensure_queue("asya-out").ok());
  ASSERT_TRUE(t->send("asya-in", "m").ok());
  Delivery in = receive_one(*t, "asya-in");
  const std::string too_large(5000, 'x'), as_file(2000, 'y');
  for (const std::string* body : {&too_large, &as_file}) {
    std::vector<OutgoingMessage> outputs{{"asya-out", "small", 0ms}, {"asya-out", *body, 0ms}};
    EXPECT_FALSE(t->send_then_ack(outputs, in).has_value()) << body->size() << " bytes";
  }
  EXPECT_EQ(held(*t, "asya-out"), 0u);
  auto in_stats = t->stats("asya-in");
  ASSERT_TRUE(in_stats.ok());
  EXPECT_EQ(in_stats->in_flight, 1u);
}

// A process of `threads` threads, each forwarding `asya-in` → `asya-out` with send_then_ack (the
// ordinary steps when it does nothing) until `asya-in` is empty.
int forward(const SqliteSettings& settings, int threads) {
  auto t = make_sqlite_transport(Options{}, settings);
  std::atomic<int> failed{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&] {
      for (;;) {
        auto got = t->receive("asya-in", 1, 100ms);
        if (!got.ok()) {
          failed = 4;
          return;
        }
        if (got->empty()) return;
        const Delivery& d = (*got)[0];
        std::vector<OutgoingMessage> outputs{{"asya-out", d.body, 0ms}};
        std::optional<Status> acked = t->send_then_ack(outputs, d);
        if (!acked) acked = t->send("asya-out", d.body).ok() ? t->ack(d) : Status(Error{"send"});
        if (!acked->ok()) {
          std::fprintf(stderr, "forward: %s\n", acked->message().c_str());
          failed = 5;
          return;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return failed.load();
}

// Forwards what is left in `asya-in` (a new instance releases a killed process's leases on open)
// and returns how often each input reached `asya-out`.
std::map<std::string, int> finish_and_count(const SqliteSettings& settings) {
  pid_t last = test::spawn([&] { return forward(settings, 1); });
  EXPECT_EQ(test::wait_exit(last, Clock::now() + 300s), 0);
  auto t = make_sqlite_transport(Options{}, settings);
  EXPECT_EQ(held(*t, "asya-in"), 0u);
  return drain(*t, "asya-out");
}

// SIGKILL of a 4-thread forwarder at several moments: an output and its input's ack commit
// together, so every input reaches the output exactly once (with send() then ack(), a kill between
// the two duplicates the output).
TEST(SqliteSendThenAck, SigkillOfAForwarderLosesAndDuplicatesNothing) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  constexpr int kMessages = 1200, kKills = 3;
  {
    auto t = make_sqlite_transport(Options{}, settings);
    std::vector<std::string> bodies;
    for (int i = 0; i < kMessages; ++i) bodies.push_back(numbered("m", i));
    std::vector<OutgoingMessage> all;
    for (const std::string& b : bodies) all.push_back(OutgoingMessage{"asya-in", b, 0ms});
    for (const Status& s : t->send_many(all)) ASSERT_TRUE(s.ok());
    ASSERT_TRUE(t->ensure_queue("asya-out").ok());
  }
  auto observer = make_sqlite_transport(Options{}, settings);
  for (int kill_number = 1; kill_number <= kKills; ++kill_number) {
    std::uint64_t target = kMessages * static_cast<std::uint64_t>(kill_number) / (kKills + 2);
    pid_t child = test::spawn([&] { return forward(settings, 4); });
    wait_until([&] { return held(*observer, "asya-out") >= target; }, "outputs");
    ::kill(child, SIGKILL);
    EXPECT_EQ(test::wait_exit(child, Clock::now() + 60s), 128 + SIGKILL);
  }
  std::map<std::string, int> seen = finish_and_count(settings);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) EXPECT_EQ(seen[numbered("m", i)], 1) << numbered("m", i);
}

// Whether every thread of process `pid` but its first sleeps (state S or D) in two samples 20 ms
// apart: here, its workers all wait for the write lock or for a group commit waiting for it.
bool all_workers_waiting(pid_t pid) {
  for (int sample = 0; sample < 2; ++sample) {
    if (sample) std::this_thread::sleep_for(20ms);
    int running = 0, threads = 0;
    for (const auto& task : std::filesystem::directory_iterator(std::filesystem::path("/proc") /
                                                                std::to_string(pid) / "task")) {
      if (task.path().filename() == std::to_string(pid)) continue;
      std::ifstream stat(task.path() / "stat");
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      auto close = text.rfind(')');
      if (close == std::string::npos || close + 2 >= text.size()) return false;
      ++threads;
      char state = text[close + 2];
      if (state != 'S' && state != 'D') ++running;
    }
    if (threads == 0 || running > 0) return false;
  }
  return true;
}

// SIGKILL while the forwarder's merged steps wait for the write lock (another connection holds
// it): none of them is committed, and afterwards every input reaches the output exactly once.
TEST(SqliteSendThenAck, SigkillWhileTheMergedStepWaitsForTheLockLosesNothing) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.busy_timeout = 120s;  // the forwarder waits for the lock until it is killed
  constexpr int kMessages = 400;
  {
    auto t = make_sqlite_transport(Options{}, settings);
    for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(t->send("asya-in", numbered("m", i)).ok());
    ASSERT_TRUE(t->ensure_queue("asya-out").ok());
  }
  auto observer = make_sqlite_transport(Options{}, settings);
  pid_t child = test::spawn([&] { return forward(settings, 4); });
  wait_until([&] { return held(*observer, "asya-out") >= kMessages / 8; }, "an eighth forwarded");
  sqlite3* blocker = nullptr;
  ASSERT_EQ(sqlite3_open(settings.path.c_str(), &blocker), SQLITE_OK);
  sqlite3_busy_timeout(blocker, 60000);
  ASSERT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(blocker);
  std::uint64_t out_before = held(*observer, "asya-out");
  std::uint64_t in_before = held(*observer, "asya-in");
  wait_until([&] { return all_workers_waiting(child); }, "the forwarder's threads to wait");
  ::kill(child, SIGKILL);
  EXPECT_EQ(test::wait_exit(child, Clock::now() + 60s), 128 + SIGKILL);
  ASSERT_EQ(sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(blocker);
  EXPECT_EQ(held(*observer, "asya-out"), out_before) << "nothing pending may be committed";
  EXPECT_EQ(held(*observer, "asya-in"), in_before) << "no input may be acked";
  EXPECT_EQ(out_before + in_before, static_cast<std::uint64_t>(kMessages));
  std::map<std::string, int> seen = finish_and_count(settings);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) EXPECT_EQ(seen[numbered("m", i)], 1) << numbered("m", i);
}

}  // namespace
}  // namespace asya::transport
