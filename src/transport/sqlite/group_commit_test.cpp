// Group commit (group_commit.hpp): operations pending together share one transaction, a lone one
// is committed at once, a failing one fails only its caller; and through the transport, with
// several threads per process: producers and forwarding consumers in several processes lose and
// duplicate nothing, and a SIGKILL while commits are pending loses nothing (an input is acked
// only once its output is durable).
#include "transport/sqlite/group_commit.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport::sqlite {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::spawn;
using test::wait_exit;

// prefix + n, built by appending: GCC 12 at -O3 warns (-Wrestrict, a false positive) on
// "literal" + std::string.
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

struct Fixture {
  test::TempDir dir;
  SqliteSettings settings = [this] {
    SqliteSettings s = dir.settings();
    s.busy_timeout = 120s;  // the blocker below holds the lock until the test releases it
    return s;
  }();
  ConnectionPool pool{settings};
  GroupCommit group{pool};
  sqlite3* blocker = nullptr;

  Fixture() {
    auto first = Connection::open(settings, /*create_schema=*/true);
    EXPECT_TRUE(first.ok());
    sqlite3_exec(first.value()->db(), "CREATE TABLE t(v TEXT NOT NULL)", nullptr, nullptr, nullptr);
    pool.add(std::move(first.value()));
    EXPECT_EQ(sqlite3_open(settings.path.c_str(), &blocker), SQLITE_OK);
  }
  ~Fixture() { sqlite3_close(blocker); }

  GroupCommit::Operation insert(std::string value) {
    return [value](Connection& db, bool& abort) -> Status {
      std::string sql = "INSERT INTO t(v) VALUES('";
      sql += value;
      sql += "')";
      if (sqlite3_exec(db.db(), sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        abort = true;
        std::string message = "insert ";
        message += value;
        message += ": ";
        message += db.error();
        return Error{message};
      }
      return Status::Ok();
    };
  }
  std::map<std::string, int> rows() {
    std::map<std::string, int> out;
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(blocker, "SELECT v FROM t", -1, &s, nullptr);
    while (sqlite3_step(s) == SQLITE_ROW) {
      ++out[reinterpret_cast<const char*>(sqlite3_column_text(s, 0))];
    }
    sqlite3_finalize(s);
    return out;
  }
};

TEST(SqliteGroupCommit, ALoneOperationIsCommittedAtOnceInItsOwnTransaction) {
  Fixture f;
  ASSERT_TRUE(f.group.run("lone", f.insert("a")).ok());
  GroupCommit::Stats stats = f.group.stats();
  EXPECT_EQ(stats.operations, 1u);
  EXPECT_EQ(stats.transactions, 1u);
  EXPECT_EQ(f.rows()["a"], 1);
}

// While one batch waits for the write lock (held by another connection), the operations of 7
// other threads queue up; when the lock is free they are committed together in one transaction.
TEST(SqliteGroupCommit, OperationsPendingTogetherShareOneTransaction) {
  Fixture f;
  ASSERT_EQ(sqlite3_exec(f.blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::vector<Status> results(8, Status::Ok());
  std::vector<std::thread> threads;
  threads.reserve(8);
  threads.emplace_back([&] { results[0] = f.group.run("first", f.insert("v0")); });
  wait_until([&] { return f.group.leading(); }, "the first batch to start");
  for (int i = 1; i < 8; ++i) {
    threads.emplace_back([&, i] { results[i] = f.group.run("later", f.insert(numbered("v", i))); });
  }
  wait_until([&] { return f.group.pending() == 7; }, "7 operations to queue");
  EXPECT_EQ(f.rows().size(), 0u) << "nothing may be visible before its commit";
  ASSERT_EQ(sqlite3_exec(f.blocker, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  for (auto& t : threads) t.join();
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.message();
  GroupCommit::Stats stats = f.group.stats();
  EXPECT_EQ(stats.operations, 8u);
  EXPECT_EQ(stats.transactions, 2u);
  EXPECT_EQ(stats.largest_batch, 7u);
  auto rows = f.rows();
  EXPECT_EQ(rows.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(rows[numbered("v", i)], 1) << i;
}

// A statement failure in a shared batch rolls it back and each operation runs again alone: only
// the failing caller sees an error, the others are committed once.
TEST(SqliteGroupCommit, AFailingOperationFailsOnlyItsOwnCaller) {
  Fixture f;
  ASSERT_EQ(sqlite3_exec(f.blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::vector<Status> results(4, Status::Ok());
  std::vector<std::thread> threads;
  threads.reserve(8);
  threads.emplace_back([&] { results[0] = f.group.run("first", f.insert("w0")); });
  wait_until([&] { return f.group.leading(); }, "the first batch to start");
  GroupCommit::Operation bad = [](Connection& db, bool& abort) -> Status {
    if (sqlite3_exec(db.db(), "INSERT INTO missing VALUES(1)", nullptr, nullptr, nullptr) !=
        SQLITE_OK) {
      abort = true;
      std::string message = "bad: ";
      message += db.error();
      return Error{message};
    }
    return Status::Ok();
  };
  threads.emplace_back([&] { results[1] = f.group.run("w1", f.insert("w1")); });
  wait_until([&] { return f.group.pending() == 1; }, "w1 to queue");
  threads.emplace_back([&] { results[2] = f.group.run("bad", bad); });
  wait_until([&] { return f.group.pending() == 2; }, "bad to queue");
  threads.emplace_back([&] { results[3] = f.group.run("w3", f.insert("w3")); });
  wait_until([&] { return f.group.pending() == 3; }, "w3 to queue");
  ASSERT_EQ(sqlite3_exec(f.blocker, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  for (auto& t : threads) t.join();
  EXPECT_TRUE(results[0].ok());
  EXPECT_TRUE(results[1].ok()) << results[1].message();
  EXPECT_FALSE(results[2].ok());
  EXPECT_NE(results[2].message().find("no such table: missing"), std::string::npos)
      << results[2].message();
  EXPECT_TRUE(results[3].ok()) << results[3].message();
  auto rows = f.rows();
  EXPECT_EQ(rows, (std::map<std::string, int>{{"w0", 1}, {"w1", 1}, {"w3", 1}}));
}

// A process of `threads` threads, each forwarding `in` → `out` (receive, send, ack) until
// `stop_file` exists and `in` is empty.
int forward(const SqliteSettings& settings, int threads, const std::string& stop_file) {
  auto t = make_sqlite_transport(Options{}, settings);
  std::atomic<int> failed{0};
  std::vector<std::thread> workers;
  workers.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&] {
      for (;;) {
        auto got = t->receive("asya-in", 1, 100ms);
        if (!got.ok()) {
          std::fprintf(stderr, "receive: %s\n", got.error().message.c_str());
          failed = 4;
          return;
        }
        if (got->empty() && ::access(stop_file.c_str(), F_OK) == 0) return;
        for (const Delivery& d : *got) {
          Status s = t->send("asya-out", d.body);
          if (s.ok()) s = t->ack(d);
          if (!s.ok()) {
            std::fprintf(stderr, "forward: %s\n", s.message().c_str());
            failed = 5;
            return;
          }
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return failed.load();
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

TEST(SqliteGroupCommit, ThreadedProducersAndForwardersInSeveralProcessesLoseAndDuplicateNothing) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  constexpr int kProducers = 2, kThreads = 4, kPerThread = 150, kForwarders = 2;
  const std::string stop_file = (dir.path() / "stop").string();
  { make_sqlite_transport(Options{}, settings); }
  std::vector<pid_t> forwarders;
  for (int i = 0; i < kForwarders; ++i) {
    forwarders.push_back(spawn([&] { return forward(settings, kThreads, stop_file); }));
  }
  std::vector<pid_t> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(spawn([&, p] {
      auto t = make_sqlite_transport(Options{}, settings);
      std::atomic<int> failed{0};
      std::vector<std::thread> threads;
      threads.reserve(kThreads);
      threads.reserve(8);
      for (int i = 0; i < kThreads; ++i) {
        threads.emplace_back([&, i] {
          for (int n = 0; n < kPerThread; ++n) {
            std::string body =
                std::to_string(p) + "-" + std::to_string(i) + "-" + std::to_string(n);
            if (!t->send("asya-in", body).ok()) failed = 6;
          }
        });
      }
      for (auto& thread : threads) thread.join();
      return failed.load();
    }));
  }
  Clock::time_point deadline = Clock::now() + 300s;
  for (pid_t pid : producers) EXPECT_EQ(wait_exit(pid, deadline), 0);
  auto observer = make_sqlite_transport(Options{}, settings);
  test::wait_drained(*observer, "asya-in", deadline);
  if (HasFatalFailure()) return;
  { std::ofstream(stop_file) << "stop\n"; }
  for (pid_t pid : forwarders) EXPECT_EQ(wait_exit(pid, deadline), 0);
  auto seen = drain(*observer, "asya-out");
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kProducers * kThreads * kPerThread));
  for (const auto& [body, times] : seen) EXPECT_EQ(times, 1) << body;
}

// SIGKILL of a forwarder of 8 threads while its sends and acks are being group-committed: every
// input still reaches the output (its ack was never committed without its output being durable
// first); at most one duplicate per thread that was between its send and its ack.
TEST(SqliteGroupCommit, SigkillWhileCommitsArePendingLosesNothing) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  constexpr int kMessages = 400, kThreads = 8;
  const std::string never = (dir.path() / "never").string();
  {
    auto t = make_sqlite_transport(Options{}, settings);
    for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(t->send("asya-in", numbered("m", i)).ok());
  }
  pid_t child = spawn([&] { return forward(settings, kThreads, never); });
  auto observer = make_sqlite_transport(Options{}, settings);
  wait_until(
      [&] {
        auto s = observer->stats("asya-out");
        return s.ok() && s->ready >= kMessages / 4;
      },
      "a quarter of the messages to be forwarded");
  ::kill(child, SIGKILL);
  EXPECT_EQ(wait_exit(child, Clock::now() + 60s), 128 + SIGKILL);
  // A new instance releases the dead process's leases; forward the rest here.
  auto rest = make_sqlite_transport(Options{}, settings);
  for (;;) {
    auto got = rest->receive("asya-in", 10, 200ms);
    ASSERT_TRUE(got.ok()) << got.error().message;
    if (got->empty()) break;
    for (const Delivery& d : *got) {
      ASSERT_TRUE(rest->send("asya-out", d.body).ok());
      ASSERT_TRUE(rest->ack(d).ok());
    }
  }
  auto in = rest->stats("asya-in");
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->ready + in->in_flight + in->delayed, 0u);
  auto seen = drain(*rest, "asya-out");
  int duplicates = 0;
  for (int i = 0; i < kMessages; ++i) {
    int times = seen[numbered("m", i)];
    EXPECT_GE(times, 1) << numbered("m", i) << " was lost";
    duplicates += std::max(0, times - 1);
  }
  EXPECT_LE(duplicates, kThreads);
  std::printf("duplicates after SIGKILL: %d\n", duplicates);
}

// Whether every thread of process `pid` but its first sleeps (state S or D), in two samples
// 20 ms apart: its workers are all waiting (here: for the write lock, or for the leader of a
// group commit that waits for it).
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

// SIGKILL of a forwarder of 8 threads while its group commits are pending: another connection
// holds the write lock, so every send and ack of the forwarder waits in (or for) a batch that
// cannot begin. Nothing of those batches is committed, and after the kill every input is still
// there or its output is (outputs durable → inputs acked, or neither): nothing lost.
TEST(SqliteGroupCommit, SigkillWhileAGroupCommitWaitsForTheLockLosesNothing) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.busy_timeout = 120s;  // the forwarder waits for the lock until it is killed
  constexpr int kMessages = 400, kThreads = 8;
  const std::string never = (dir.path() / "never").string();
  {
    auto t = make_sqlite_transport(Options{}, settings);
    for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(t->send("asya-in", numbered("m", i)).ok());
  }
  pid_t child = spawn([&] { return forward(settings, kThreads, never); });
  auto observer = make_sqlite_transport(Options{}, settings);
  wait_until(
      [&] {
        auto s = observer->stats("asya-out");
        return s.ok() && s->ready >= kMessages / 8;
      },
      "an eighth of the messages to be forwarded");
  sqlite3* blocker = nullptr;
  ASSERT_EQ(sqlite3_open(settings.path.c_str(), &blocker), SQLITE_OK);
  sqlite3_busy_timeout(blocker, 60000);
  ASSERT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(blocker);
  auto out_before = observer->stats("asya-out");
  ASSERT_TRUE(out_before.ok());
  wait_until([&] { return all_workers_waiting(child); }, "the forwarder's threads to wait");
  ::kill(child, SIGKILL);
  EXPECT_EQ(wait_exit(child, Clock::now() + 60s), 128 + SIGKILL);
  ASSERT_EQ(sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(blocker);
  // Nothing the forwarder had pending was committed.
  auto out_after = observer->stats("asya-out");
  ASSERT_TRUE(out_after.ok());
  EXPECT_EQ(out_after->ready, out_before->ready);
  // A new instance releases the dead process's leases; forward the rest here.
  auto rest = make_sqlite_transport(Options{}, settings);
  for (;;) {
    auto got = rest->receive("asya-in", 10, 200ms);
    ASSERT_TRUE(got.ok()) << got.error().message;
    if (got->empty()) break;
    for (const Delivery& d : *got) {
      ASSERT_TRUE(rest->send("asya-out", d.body).ok());
      ASSERT_TRUE(rest->ack(d).ok());
    }
  }
  auto seen = drain(*rest, "asya-out");
  int duplicates = 0;
  for (int i = 0; i < kMessages; ++i) {
    int times = seen[numbered("m", i)];
    EXPECT_GE(times, 1) << numbered("m", i) << " was lost";
    duplicates += std::max(0, times - 1);
  }
  // Only a thread whose send had committed before the lock was taken and whose ack was pending
  // can leave a duplicate.
  EXPECT_LE(duplicates, kThreads);
}

}  // namespace
}  // namespace asya::transport::sqlite
